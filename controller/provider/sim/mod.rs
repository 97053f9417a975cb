//! The built-in simulator: a faithful, deterministic Hyper-V fleet.
//!
//! The world ([`World`]) is a discrete-event model on simulated time. [`Sim`]
//! puts it behind the [`Provider`] trait: it maps simulated time onto tokio's
//! clock (paused for `plan` and `apply`, so waits take no wall-clock time;
//! real under `watch`), persists the world between commands in `.berth/`
//! beside the Fleet file, and appends every change to `events.jsonl`. A lock
//! file keeps two processes from using one world at once.

pub mod journal;
pub mod world;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::provider::{JobId, MoveRequest, Observed, ObservedVm, Provider, ProviderError};
use crate::spec::{self, Acl, Direction, FleetSpec, SpecError};

pub use journal::{Event, EventKind};
pub use world::{SimTime, World};

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
    world: World,
}

/// Where a world's files live.
struct Files {
    dir: PathBuf,
    fingerprint: String,
    journal: BufWriter<File>,
    journal_lines: u64,
    _lock: File,
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
}

impl Inner {
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
        match &mut self.files {
            Some(files) => {
                for e in &events {
                    // Serialising plain data cannot fail; a write error is
                    // caught at the next flush in `save`.
                    if serde_json::to_writer(&mut files.journal, e).is_ok() {
                        let _ = files.journal.write_all(b"\n");
                        files.journal_lines += 1;
                    }
                }
            }
            None => self.memory_journal.extend(events),
        }
    }

    fn save(&mut self) -> Result<(), SimError> {
        self.flush_events();
        let Some(files) = &mut self.files else {
            return Ok(());
        };
        let journal_path = files.dir.join(JOURNAL_FILE);
        files.journal.flush().map_err(io_err(&journal_path))?;
        let saved = Saved {
            format_version: 1,
            fleet_fingerprint: files.fingerprint.clone(),
            journal_lines: files.journal_lines,
            world: self.world.clone(),
        };
        let path = files.dir.join(STATE_FILE);
        let tmp = files.dir.join("state.json.tmp");
        let text = serde_json::to_vec(&saved).map_err(|e| SimError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.last_save = std::time::Instant::now();
        Ok(())
    }

    fn save_now_and_then(&mut self) {
        if self.files.is_some()
            && self.last_save.elapsed() >= std::time::Duration::from_secs(1)
            && let Err(e) = self.save()
        {
            tracing::warn!("could not save the simulated world: {e}");
        }
    }
}

/// The simulator behind the [`Provider`] trait.
pub struct Sim {
    fleet_path: PathBuf,
    inner: Mutex<Inner>,
}

impl Sim {
    /// Opens the world of a Fleet file, resuming its saved state if any.
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
        let state_path = dir.join(STATE_FILE);
        let journal_path = dir.join(JOURNAL_FILE);
        let (world, journal_lines) = match std::fs::read(&state_path) {
            Ok(text) => {
                let saved: Saved =
                    serde_json::from_slice(&text).map_err(|e| SimError::Corrupt {
                        path: state_path.display().to_string(),
                        fleet: fleet_path.display().to_string(),
                        message: e.to_string(),
                    })?;
                if saved.fleet_fingerprint != fingerprint {
                    return Err(SimError::FleetChanged {
                        fleet: fleet_path.display().to_string(),
                    });
                }
                let mut world = saved.world;
                world.reindex();
                truncate_journal(&journal_path, saved.journal_lines)?;
                (world, saved.journal_lines)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(&journal_path, b"").map_err(io_err(&journal_path))?;
                (World::new(&fleet), 0)
            }
            Err(e) => return Err(io_err(&state_path)(e)),
        };
        let journal = File::options()
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        let base_sim = world.now();
        let mut inner = Inner {
            world,
            base_instant: Instant::now(),
            base_sim,
            files: Some(Files {
                dir,
                fingerprint,
                journal: BufWriter::new(journal),
                journal_lines,
                _lock: lock,
            }),
            memory_journal: Vec::new(),
            last_save: std::time::Instant::now(),
        };
        inner.save()?;
        Ok(Sim {
            fleet_path: fleet_path.to_path_buf(),
            inner: Mutex::new(inner),
        })
    }

    /// A world that lives only in memory (tests, benchmarks).
    pub fn in_memory(fleet: &FleetSpec) -> Sim {
        Sim {
            fleet_path: PathBuf::from("<memory>"),
            inner: Mutex::new(Inner {
                world: World::new(fleet),
                base_instant: Instant::now(),
                base_sim: 0,
                files: None,
                memory_journal: Vec::new(),
                last_save: std::time::Instant::now(),
            }),
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
        inner.memory_journal.clone()
    }

    /// Simulated seconds since the world began.
    pub fn now_seconds(&self) -> f64 {
        let mut inner = self.lock();
        inner.catch_up();
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
        out
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
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

/// Cuts a journal back to the lines its saved state accounts for (after a
/// crash between a journal write and a save), keeping the two consistent.
fn truncate_journal(path: &Path, lines: u64) -> Result<(), SimError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut seen = 0u64;
    let mut cut = 0usize;
    for (i, b) in text.iter().enumerate() {
        if seen == lines {
            break;
        }
        if *b == b'\n' {
            seen += 1;
            cut = i + 1;
        }
    }
    if seen == lines && cut < text.len() {
        tracing::warn!(
            "{}: dropping {} journal bytes written after the last save",
            path.display(),
            text.len() - cut
        );
        let f = File::options()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(cut as u64).map_err(io_err(path))?;
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
                if let Some(result) = inner.world.job_result(job) {
                    inner.save_now_and_then();
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
