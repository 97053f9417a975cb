//! The built-in simulator: a faithful, deterministic Hyper-V fleet.
//!
//! The world ([`World`]) is a discrete-event model on simulated time. [`Sim`]
//! puts it behind the [`Provider`] trait: it maps simulated time onto tokio's
//! clock (paused for `plan` and `apply`, so waits take no wall-clock time;
//! real under `watch`), persists the world between commands in `.berth/`
//! beside the Fleet file, and appends every change to `events.jsonl` as it
//! happens. A lock file keeps two processes from acting on one world at
//! once; readers (`plan`, `observe`) open it with [`Sim::open_to_read`],
//! without the lock and without writing anything.
//!
//! State and journal stay consistent after a kill at any point: each batch
//! of events is appended to the journal at once, and `state.json`
//! (atomically replaced, with the last batch as its `tail` and the journal
//! length it accounts for) follows within a quarter of a second; writing
//! a 100,000-VM world on every event would cost more than the event.
//! Opening the world repairs the journal to match the state: a truncated
//! last line is cut (and restored from the tail when the state accounts
//! for it), and lines the state does not know are dropped, so a kill
//! takes the world and its journal back to the last save together.

pub mod import;
pub mod journal;
pub mod world;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::provider::{JobId, MoveRequest, Observed, ObservedVm, Provider, ProviderError};
use crate::spec::{self, Acl, Direction, FleetSpec, SpecError};

pub use journal::{Event, EventKind, MoveStorage};
pub use world::{SimTime, World};

/// How long the saved state may lag behind the journal, at least.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Saving may take at most one part in this many of the time: a large
/// world (100,000 VMs takes a few hundred milliseconds to copy and write)
/// is saved less often than every [`SAVE_EVERY`]. At one part in five, the
/// saves of a 100,000-VM world took a third of a core under `watch` on a
/// 2-core machine, from the planning that a commit waits for; at one in
/// twenty they take 5%, and a kill loses at most the last ten seconds or
/// so of such a world (the journal is cut back to the state).
const SAVE_SHARE: u32 = 20;

/// Folder beside the Fleet file that holds a world's state.
pub const STATE_DIR: &str = ".berth";
/// The journal's file name inside [`STATE_DIR`].
pub const JOURNAL_FILE: &str = "events.jsonl";
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// Why a simulated world could not be opened or saved.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The Fleet file is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Another process holds the world.
    #[error(
        "the simulated world of {fleet} is in use by another berth process (lock: {lock}); wait for it to finish"
    )]
    Locked {
        /// The Fleet file.
        fleet: String,
        /// The lock file.
        lock: String,
    },
    /// The saved world belongs to a different Fleet file.
    #[error(
        "{fleet} changed since its simulated world began; run `berth sim reset {fleet}` to start over"
    )]
    FleetChanged {
        /// The Fleet file.
        fleet: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The saved state is unreadable.
    #[error(
        "{path}: the saved world is unreadable ({message}); run `berth sim reset {fleet}` to start over"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// The Fleet file whose world it is (for the `sim reset` hint).
        fleet: String,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What `state.json` holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    format_version: u32,
    /// FNV-1a of the Fleet file's bytes: a changed file needs a reset.
    fleet_fingerprint: String,
    /// Journal lines that belong to this state.
    journal_lines: u64,
    /// The last batch of journal lines (the end of the `journal_lines`),
    /// restored on open if a kill came between the state and the journal.
    #[serde(default)]
    tail: Vec<Event>,
    world: World,
}

/// [`Saved`] by reference, for writing: the world is not copied to save it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SavedRef<'a> {
    format_version: u32,
    fleet_fingerprint: &'a str,
    journal_lines: u64,
    tail: &'a [Event],
    world: &'a World,
}

/// Where a world's files live.
struct Files {
    dir: PathBuf,
    fingerprint: String,
    journal: BufWriter<File>,
    journal_lines: u64,
    lock: File,
    /// The last batch written, kept in every save as the state's tail.
    tail: Vec<Event>,
    /// The folder (or the directory above it) is gone: the world lives in
    /// memory, these events wait for it to return.
    missing: Option<Vec<Event>>,
}

struct Inner {
    world: World,
    /// Tokio instant at which the world's clock read `base_sim`.
    base_instant: Instant,
    base_sim: SimTime,
    files: Option<Files>,
    /// Journal of an in-memory world (tests and benchmarks).
    memory_journal: Vec<Event>,
    last_save: std::time::Instant,
    /// How long the last save took.
    last_save_took: std::time::Duration,
    /// The journal holds lines the saved state does not account for yet.
    dirty: bool,
    /// A deferred save is scheduled or being written.
    save_scheduled: bool,
    /// Numbers each state taken for writing, so that an older one written
    /// off the lock never replaces a newer one.
    generation: u64,
    /// The generation of the state on disk; held while one is written.
    written: Arc<Mutex<u64>>,
}

impl Inner {
    /// A world whose clock reads `base_sim` now, saved in `files` if any.
    fn new(world: World, base_sim: SimTime, files: Option<Files>) -> Inner {
        Inner {
            world,
            base_instant: Instant::now(),
            base_sim,
            files,
            memory_journal: Vec::new(),
            last_save: std::time::Instant::now(),
            last_save_took: std::time::Duration::ZERO,
            dirty: false,
            save_scheduled: false,
            generation: 0,
            written: Arc::new(Mutex::new(0)),
        }
    }

    fn sim_now(&self) -> SimTime {
        let elapsed = Instant::now().saturating_duration_since(self.base_instant);
        self.base_sim + elapsed.as_micros() as SimTime
    }

    fn instant_at(&self, t: SimTime) -> Instant {
        self.base_instant + std::time::Duration::from_micros(t.saturating_sub(self.base_sim))
    }

    /// Brings the world to the current time and records what happened.
    fn catch_up(&mut self) {
        let now = self.sim_now();
        self.world.advance(now);
        self.flush_events();
    }

    fn flush_events(&mut self) {
        let events = self.world.take_events();
        if events.is_empty() {
            return;
        }
        if self.files.is_none() {
            self.memory_journal.extend(events);
            return;
        }
        if let Err(e) = self.write_through(events) {
            tracing::warn!("could not save the simulated world: {e}");
        }
    }

    /// Writes a batch of events to the journal; the state (with the batch
    /// as its tail) follows when [`Sim::schedule_save`] says. A kill before the state is written loses those
    /// lines on open (the world and its journal go back to the last save
    /// together); a kill while the journal is written is repaired from the
    /// state's tail.
    fn write_through(&mut self, events: Vec<Event>) -> Result<(), SimError> {
        let Some(files) = &mut self.files else {
            return Ok(());
        };
        if let Some(pending) = &mut files.missing {
            pending.extend(events);
            return self.come_back();
        }
        if !files.dir.exists() {
            return self.went_away(events);
        }
        let lines = files.journal_lines + events.len() as u64;
        let journal_path = files.dir.join(JOURNAL_FILE);
        for e in &events {
            let mut line = serde_json::to_vec(e).map_err(|e| SimError::Io {
                path: journal_path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            line.push(b'\n');
            files
                .journal
                .write_all(&line)
                .map_err(io_err(&journal_path))?;
        }
        files.journal.flush().map_err(io_err(&journal_path))?;
        files.journal_lines = lines;
        files.tail = events;
        // The state follows soon (`Sim::schedule_save`):
        // writing a big world on every event costs more than the event.
        self.dirty = true;
        Ok(())
    }

    /// The folder vanished (the watched directory was deleted): keep the
    /// world in memory, say so once, and keep the events for later.
    fn went_away(&mut self, events: Vec<Event>) -> Result<(), SimError> {
        if let Some(files) = &mut self.files {
            let above = files.dir.parent().unwrap_or(Path::new("."));
            tracing::warn!(
                "the directory {} does not exist; the simulated world stays in memory and is saved again when it returns",
                above.display()
            );
            files.missing = Some(events);
        }
        Ok(())
    }

    /// Saves again once the folder's directory exists again: a new folder,
    /// lock and journal (holding what happened meanwhile), and the state.
    fn come_back(&mut self) -> Result<(), SimError> {
        let Some(files) = &mut self.files else {
            return Ok(());
        };
        let above = files.dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        if !above.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&files.dir).map_err(io_err(&files.dir))?;
        let lock_path = files.dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock() {
            return Err(SimError::Locked {
                fleet: above.display().to_string(),
                lock: lock_path.display().to_string(),
            });
        }
        let journal_path = files.dir.join(JOURNAL_FILE);
        std::fs::write(&journal_path, b"").map_err(io_err(&journal_path))?;
        let journal = File::options()
            .append(true)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        files.lock = lock;
        files.journal = BufWriter::new(journal);
        files.journal_lines = 0;
        let pending = files.missing.take().unwrap_or_default();
        tracing::info!(
            "the directory {} is back; the simulated world is saved there again ({} events since it went)",
            above.display(),
            pending.len()
        );
        self.write_through(pending)
    }

    fn write_state(&mut self, journal_lines: u64, tail: &[Event]) -> Result<(), SimError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        self.generation += 1;
        let saved = SavedRef {
            format_version: 1,
            fleet_fingerprint: &files.fingerprint,
            journal_lines,
            tail,
            world: &self.world,
        };
        write_saved(&files.dir, &saved, self.generation, &self.written)?;
        self.last_save = std::time::Instant::now();
        self.last_save_took = started.elapsed();
        self.dirty = false;
        Ok(())
    }

    /// A copy of the state to write without the world's lock
    /// ([`Snapshot::write`]); `None` when the folder is missing or coming
    /// back, which [`Inner::save`] handles.
    fn snapshot(&mut self) -> Option<Snapshot> {
        self.flush_events();
        let files = self.files.as_ref()?;
        if files.missing.is_some() || !files.dir.exists() {
            return None;
        }
        self.generation += 1;
        let snapshot = Snapshot {
            dir: files.dir.clone(),
            generation: self.generation,
            written: self.written.clone(),
            saved: Saved {
                format_version: 1,
                fleet_fingerprint: files.fingerprint.clone(),
                journal_lines: files.journal_lines,
                tail: files.tail.clone(),
                world: self.world.clone(),
            },
        };
        self.dirty = false;
        Some(snapshot)
    }

    fn save(&mut self) -> Result<(), SimError> {
        self.flush_events();
        let Some(files) = &mut self.files else {
            return Ok(());
        };
        if files.missing.is_some() {
            return self.come_back();
        }
        if !files.dir.exists() {
            return self.went_away(Vec::new());
        }
        let lines = files.journal_lines;
        let tail = files.tail.clone();
        self.write_state(lines, &tail)
    }
}

/// The state as it was when a deferred save took it, to be written on a
/// blocking thread while the world goes on.
struct Snapshot {
    dir: PathBuf,
    generation: u64,
    written: Arc<Mutex<u64>>,
    saved: Saved,
}

impl Snapshot {
    fn write(self) -> Result<(), SimError> {
        write_saved(&self.dir, &self.saved, self.generation, &self.written)
    }
}

/// Writes a state (to a temporary file, then renamed over `state.json`)
/// unless a newer generation is already on disk.
fn write_saved(
    dir: &Path,
    saved: &impl Serialize,
    generation: u64,
    written: &Mutex<u64>,
) -> Result<(), SimError> {
    let mut on_disk = written.lock().unwrap_or_else(|e| e.into_inner());
    if *on_disk >= generation {
        return Ok(());
    }
    let path = dir.join(STATE_FILE);
    let tmp = dir.join("state.json.tmp");
    let text = serde_json::to_vec(saved).map_err(|e| SimError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    *on_disk = generation;
    Ok(())
}

/// The simulator behind the [`Provider`] trait.
pub struct Sim {
    fleet_path: PathBuf,
    /// Shared with the deferred save (`Sim::schedule_save`).
    inner: Arc<Mutex<Inner>>,
    /// The instant the world's clock started at (`spec.startTime`).
    start: jiff::Timestamp,
}

impl Sim {
    /// Opens the world of a Fleet file to act on it, resuming its saved
    /// state if any; takes the world's lock.
    ///
    /// Must be called inside a tokio runtime (it reads tokio's clock).
    pub fn open(fleet_path: &Path) -> Result<Sim, SimError> {
        let fleet = spec::load_fleet(fleet_path)?;
        let bytes = std::fs::read(fleet_path).map_err(io_err(fleet_path))?;
        let fingerprint = format!("{:016x}", fnv1a(&bytes));
        let dir = state_dir(fleet_path);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SimError::Locked {
                    fleet: fleet_path.display().to_string(),
                    lock: lock_path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let journal_path = dir.join(JOURNAL_FILE);
        let (world, journal_lines) = match read_saved(fleet_path, &fingerprint)? {
            Some(saved) => {
                let mut world = saved.world;
                world.reindex();
                repair_journal(&journal_path, saved.journal_lines, &saved.tail)?;
                (world, saved.journal_lines)
            }
            None => {
                std::fs::write(&journal_path, b"").map_err(io_err(&journal_path))?;
                (World::new(&fleet), 0)
            }
        };
        let journal = File::options()
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        let base_sim = world.now();
        let mut inner = Inner::new(
            world,
            base_sim,
            Some(Files {
                dir,
                fingerprint,
                journal: BufWriter::new(journal),
                journal_lines,
                lock,
                tail: Vec::new(),
                missing: None,
            }),
        );
        inner.save()?;
        Ok(Sim {
            fleet_path: fleet_path.to_path_buf(),
            inner: Arc::new(Mutex::new(inner)),
            start: fleet.start_time,
        })
    }

    /// Opens the world of a Fleet file to look at it (`plan`, `observe`):
    /// the saved state as the acting process last wrote it, or the world's
    /// beginning. Takes no lock and writes nothing, so it works while
    /// `watch` runs on the world, and never creates `.berth/`.
    ///
    /// Must be called inside a tokio runtime (it reads tokio's clock).
    pub fn open_to_read(fleet_path: &Path) -> Result<Sim, SimError> {
        let fleet = spec::load_fleet(fleet_path)?;
        let bytes = std::fs::read(fleet_path).map_err(io_err(fleet_path))?;
        let fingerprint = format!("{:016x}", fnv1a(&bytes));
        let world = match read_saved(fleet_path, &fingerprint)? {
            Some(saved) => {
                let mut world = saved.world;
                world.reindex();
                world
            }
            None => World::new(&fleet),
        };
        let base_sim = world.now();
        Ok(Sim {
            fleet_path: fleet_path.to_path_buf(),
            inner: Arc::new(Mutex::new(Inner::new(world, base_sim, None))),
            start: fleet.start_time,
        })
    }

    /// A world that lives only in memory (tests, benchmarks).
    pub fn in_memory(fleet: &FleetSpec) -> Sim {
        Sim {
            fleet_path: PathBuf::from("<memory>"),
            inner: Arc::new(Mutex::new(Inner::new(World::new(fleet), 0, None))),
            start: fleet.start_time,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent-enough world;
        // keep going rather than poison every later call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The journal of an in-memory world, brought up to now.
    pub fn journal(&self) -> Vec<Event> {
        let mut inner = self.lock();
        inner.catch_up();
        self.schedule_save(&mut inner);
        inner.memory_journal.clone()
    }

    /// Simulated seconds since the world began.
    pub fn now_seconds(&self) -> f64 {
        let mut inner = self.lock();
        inner.catch_up();
        self.schedule_save(&mut inner);
        world::seconds(inner.world.now())
    }

    /// Saves the world and flushes the journal.
    pub fn save(&self) -> Result<(), SimError> {
        self.lock().save()
    }

    /// Runs a closure on the world after bringing it up to now.
    fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut inner = self.lock();
        inner.catch_up();
        let out = f(&mut inner.world);
        inner.flush_events();
        self.schedule_save(&mut inner);
        out
    }

    /// Saves the state when the journal is ahead of it, on a task of the
    /// runtime: at once when the last save is [`SAVE_EVERY`] old (or
    /// [`SAVE_SHARE`] times as old as it took to write), else when it will
    /// be, so a burst of events (a drain starting moves) writes the world
    /// once. The task copies the world under the lock and writes the copy
    /// on a blocking thread, so the caller (a move being started) never
    /// waits for a write. Outside a runtime it saves at once.
    fn schedule_save(&self, inner: &mut Inner) {
        schedule_save(&self.inner, inner);
    }
}

/// [`Sim::schedule_save`] for the world behind `shared`.
fn schedule_save(shared: &Arc<Mutex<Inner>>, inner: &mut Inner) {
    if !inner.dirty || inner.save_scheduled {
        return;
    }
    let every = SAVE_EVERY.max(inner.last_save_took * SAVE_SHARE);
    let delay = every.saturating_sub(inner.last_save.elapsed());
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        if let Err(e) = inner.save() {
            tracing::warn!("could not save the simulated world: {e}");
        }
        return;
    };
    inner.save_scheduled = true;
    let weak = Arc::downgrade(shared);
    runtime.spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let started = std::time::Instant::now();
        let snapshot = {
            let mut inner = shared.lock().unwrap_or_else(|e| e.into_inner());
            if !inner.dirty {
                inner.save_scheduled = false;
                return;
            }
            match inner.snapshot() {
                Some(s) => s,
                None => {
                    inner.save_scheduled = false;
                    if let Err(e) = inner.save() {
                        tracing::warn!("could not save the simulated world: {e}");
                    }
                    return;
                }
            }
        };
        drop(shared);
        // Serialising and writing a large world takes longer than
        // copying it: done off the lock, so the world goes on.
        let result = tokio::task::spawn_blocking(move || snapshot.write()).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut inner = shared.lock().unwrap_or_else(|e| e.into_inner());
        inner.save_scheduled = false;
        match result {
            Ok(Ok(())) => {
                inner.last_save = std::time::Instant::now();
                inner.last_save_took = started.elapsed();
            }
            Ok(Err(e)) => {
                inner.dirty = true;
                tracing::warn!("could not save the simulated world: {e}");
            }
            Err(e) => {
                inner.dirty = true;
                tracing::warn!("could not save the simulated world: {e}");
            }
        }
        // What happened while the copy was written is saved in turn.
        schedule_save(&shared, &mut inner);
    });
}

impl Drop for Sim {
    fn drop(&mut self) {
        let mut inner = self.lock();
        if let Err(e) = inner.save() {
            tracing::warn!("could not save the simulated world: {e}");
        }
    }
}

/// The folder holding the world of a Fleet file.
pub fn state_dir(fleet_path: &Path) -> PathBuf {
    fleet_path.parent().unwrap_or(Path::new("")).join(STATE_DIR)
}

/// Deletes a world's saved state (`berth sim reset`).
pub fn reset(fleet_path: &Path) -> Result<bool, SimError> {
    let dir = state_dir(fleet_path);
    if !dir.exists() {
        return Ok(false);
    }
    let lock_path = dir.join(LOCK_FILE);
    if let Ok(lock) = File::options().write(true).open(&lock_path)
        && let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock()
    {
        return Err(SimError::Locked {
            fleet: fleet_path.display().to_string(),
            lock: lock_path.display().to_string(),
        });
    }
    std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    Ok(true)
}

/// Reads a world's saved state, if it has one (`None`: it starts over).
fn read_saved(fleet_path: &Path, fingerprint: &str) -> Result<Option<Saved>, SimError> {
    let state_path = state_dir(fleet_path).join(STATE_FILE);
    let text = match std::fs::read(&state_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&state_path)(e)),
    };
    let saved: Saved = serde_json::from_slice(&text).map_err(|e| SimError::Corrupt {
        path: state_path.display().to_string(),
        fleet: fleet_path.display().to_string(),
        message: e.to_string(),
    })?;
    if saved.fleet_fingerprint != fingerprint {
        return Err(SimError::FleetChanged {
            fleet: fleet_path.display().to_string(),
        });
    }
    Ok(Some(saved))
}

/// Brings a journal in line with its saved state after a kill at any
/// point: a truncated last line is cut, lines written after the state are
/// dropped, and lines the state accounts for but the journal lacks (a kill
/// between the state and the journal) are restored from the state's tail.
pub(crate) fn repair_journal(path: &Path, lines: u64, tail: &[Event]) -> Result<(), SimError> {
    let mut text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut changed = false;
    if !text.is_empty() && !text.ends_with(b"\n") {
        let cut = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        tracing::warn!(
            "{}: repaired a truncated last line ({} bytes cut)",
            path.display(),
            text.len() - cut
        );
        text.truncate(cut);
        changed = true;
    }
    let have = text.iter().filter(|b| **b == b'\n').count() as u64;
    if have > lines {
        let mut seen = 0u64;
        let mut cut = 0usize;
        for (i, b) in text.iter().enumerate() {
            if *b == b'\n' {
                seen += 1;
                if seen == lines {
                    cut = i + 1;
                    break;
                }
            }
        }
        if lines == 0 {
            cut = 0;
        }
        tracing::warn!(
            "{}: dropping {} journal lines written after the last save",
            path.display(),
            have - lines
        );
        text.truncate(cut);
        changed = true;
    } else if have < lines {
        let missing = (lines - have) as usize;
        if missing <= tail.len() {
            for e in &tail[tail.len() - missing..] {
                let line = serde_json::to_vec(e).map_err(|e| SimError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(e),
                })?;
                text.extend_from_slice(&line);
                text.push(b'\n');
            }
            tracing::warn!(
                "{}: restored {missing} journal line{} the saved state accounts for",
                path.display(),
                if missing == 1 { "" } else { "s" }
            );
            changed = true;
        } else {
            tracing::warn!(
                "{}: the journal lacks {missing} lines the saved state accounts for",
                path.display()
            );
        }
    }
    if changed {
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, &text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
    }
    Ok(())
}

/// FNV-1a: the Fleet file's fingerprint and the seed of per-VM draws.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[async_trait]
impl Provider for Sim {
    fn describe(&self) -> String {
        format!("sim:{}", self.fleet_path.display())
    }

    fn now(&self) -> jiff::Timestamp {
        let t = self.lock().sim_now();
        crate::spec::window::after(self.start, world::seconds(t))
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        Ok(self.with_world(|w| w.observe()))
    }

    async fn observe_vm(&self, vm: &str) -> Result<ObservedVm, ProviderError> {
        self.with_world(|w| w.observe_vm(vm))
    }

    async fn start_move(&self, request: &MoveRequest) -> Result<JobId, ProviderError> {
        self.with_world(|w| w.request_move(request))
    }

    async fn wait_job(&self, job: &JobId) -> Result<(), ProviderError> {
        loop {
            let wake = {
                let mut inner = self.lock();
                inner.catch_up();
                self.schedule_save(&mut inner);
                if let Some(result) = inner.world.job_result(job) {
                    return result;
                }
                if !inner.world.job_running(job) {
                    return Err(ProviderError::permanent(format!(
                        "no migration job `{job}` in the simulated world"
                    )));
                }
                match inner.world.next_event_time() {
                    Some(t) => inner.instant_at(t),
                    None => {
                        return Err(ProviderError::permanent(format!(
                            "migration job `{job}` has nothing scheduled"
                        )));
                    }
                }
            };
            tokio::time::sleep_until(wake).await;
        }
    }

    async fn add_acl(&self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError> {
        self.with_world(|w| w.add_acl(vm, adapter, acl))
    }

    async fn remove_acl(
        &self,
        vm: &str,
        adapter: &str,
        direction: Direction,
        weight: u32,
    ) -> Result<(), ProviderError> {
        self.with_world(|w| w.remove_acl(vm, adapter, direction, weight))
    }

    async fn connect_adapter(
        &self,
        vm: &str,
        adapter: &str,
        switch: &str,
        vm_network: Option<&str>,
    ) -> Result<(), ProviderError> {
        self.with_world(|w| w.connect(vm, adapter, switch, vm_network))
    }

    async fn set_vlan(&self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError> {
        self.with_world(|w| w.set_vlan(vm, adapter, vlan_id))
    }

    async fn close(&self) -> Result<(), ProviderError> {
        let mut inner = self.lock();
        inner.catch_up();
        inner
            .save()
            .map_err(|e| ProviderError::permanent(e.to_string()))
    }
}
