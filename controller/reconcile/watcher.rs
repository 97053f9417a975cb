//! Noticing changes to the documents: notify, debounced, then settled.
//!
//! notify reports raw file-system events; notify-debouncer-full merges the
//! events of each path (an editor's save-to-temporary-then-rename becomes
//! one event). A `git pull` touching 200 files still yields several
//! debounced batches, a tick apart, so a settler thread waits until no
//! batch has arrived for a quiet period and only then sends one
//! [`Signal::FilesChanged`]: one pass per burst, not one per file.
//!
//! Only events that can change what `spec::load` reads count: paths below
//! the directory with no hidden component (so `.git/` and the simulator's
//! `.berth/` are ignored), naming a `*.yaml`/`*.yml` file or something
//! without an extension (a directory). Reads (berth's own included) and
//! metadata changes are ignored.
//!
//! The directory's parent is watched too, without recursion, for one name:
//! the directory itself. A directory that is deleted and created again, or a
//! symlink that a sync tool swaps to a new checkout, is watched again
//! (re-armed) and reported. Everything here runs on plain threads with the
//! wall clock, independent of the tokio clock of the loop.

use std::path::{Component, Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::Signal;

/// How often an unarmed watcher (the directory is missing) looks again.
const REARM_EVERY: Duration = Duration::from_secs(10);
/// The longest a steady stream of changes can delay the signal.
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// What the debouncer callback tells the settler.
enum Msg {
    /// Relevant changes; `rearm` when the directory itself was replaced.
    Changed { rearm: bool },
    /// The watcher is dropped.
    Stop,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct DirWatcher {
    tx: std_mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts watching `dir`: a burst of relevant changes sends one
/// [`Signal::FilesChanged`] to `out` once it has been quiet for `debounce`.
/// The quiet time is split in two halves: the debouncer's own window (each
/// path quiet for half of it) and the settler's (no batch for the other
/// half), so a single save is reported about `debounce` after it, not
/// twice that.
pub fn watch(
    dir: &Path,
    debounce: Duration,
    out: mpsc::UnboundedSender<Signal>,
) -> Result<DirWatcher, notify::Error> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let parent = dir.parent().map(Path::to_path_buf);
    let (tx, rx) = std_mpsc::channel::<Msg>();
    let callback_tx = tx.clone();
    let filter_dir = dir.clone();
    let half = (debounce / 2).max(Duration::from_millis(5));
    let debouncer = new_debouncer(half, None, move |result: DebounceEventResult| {
        let msg = match result {
            Ok(events) => {
                let mut relevant = false;
                let mut rearm = false;
                for e in &events {
                    if e.need_rescan() {
                        relevant = true;
                        rearm = true;
                        continue;
                    }
                    if !kind_matters(&e.kind) {
                        continue;
                    }
                    for p in &e.paths {
                        if p == &filter_dir {
                            relevant = true;
                            rearm = true;
                        } else if path_matters(&filter_dir, p) {
                            relevant = true;
                        }
                    }
                }
                relevant.then_some(Msg::Changed { rearm })
            }
            Err(errors) => {
                for e in &errors {
                    tracing::warn!("watching the documents: {e}");
                }
                // Something may have been missed: look again.
                Some(Msg::Changed { rearm: true })
            }
        };
        if let Some(m) = msg {
            let _ = callback_tx.send(m);
        }
    })?;
    let mut settler = Settler {
        debouncer,
        dir,
        parent,
        armed: false,
        parent_armed: false,
        quiet: half,
    };
    settler.arm();
    if !settler.armed {
        tracing::warn!(
            "{} cannot be watched yet; it is watched as soon as it exists",
            settler.dir.display()
        );
    }
    let thread = std::thread::Builder::new()
        .name("berth-watch".into())
        .spawn(move || settler.run(&rx, &out))
        .map_err(|e| notify::Error::generic(&format!("cannot start the watcher thread: {e}")))?;
    Ok(DirWatcher {
        tx,
        thread: Some(thread),
    })
}

struct Settler {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    dir: PathBuf,
    parent: Option<PathBuf>,
    armed: bool,
    parent_armed: bool,
    quiet: Duration,
}

impl Settler {
    /// (Re-)establishes the watches; `armed` says whether `dir` is watched.
    fn arm(&mut self) {
        if !self.parent_armed
            && let Some(p) = &self.parent
            && p.is_dir()
        {
            self.parent_armed = self.debouncer.watch(p, RecursiveMode::NonRecursive).is_ok();
        }
        let _ = self.debouncer.unwatch(&self.dir);
        self.armed = self.dir.is_dir()
            && match self.debouncer.watch(&self.dir, RecursiveMode::Recursive) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("cannot watch {}: {e}", self.dir.display());
                    false
                }
            };
    }

    fn run(&mut self, rx: &std_mpsc::Receiver<Msg>, out: &mpsc::UnboundedSender<Signal>) {
        loop {
            let first = if self.armed {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(REARM_EVERY) {
                    Ok(m) => Some(m),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        self.arm();
                        if self.armed {
                            tracing::info!("watching {} again", self.dir.display());
                            if out.send(Signal::FilesChanged).is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => None,
                }
            };
            let Some(Msg::Changed { mut rearm }) = first else {
                return;
            };
            // Settle: wait until the burst has been quiet for a while.
            let started = Instant::now();
            loop {
                let left = MAX_SETTLE.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(self.quiet.min(left)) {
                    Ok(Msg::Changed { rearm: r }) => rearm |= r,
                    Ok(Msg::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                }
            }
            if rearm || !self.armed {
                let was = self.armed;
                self.arm();
                if was != self.armed {
                    tracing::info!(
                        "{} {}",
                        self.dir.display(),
                        if self.armed {
                            "is back; watching it again"
                        } else {
                            "is gone; watching for it to come back"
                        }
                    );
                }
            }
            if out.send(Signal::FilesChanged).is_err() {
                return;
            }
        }
    }
}

/// Whether an event of this kind can change what the loader reads.
fn kind_matters(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

/// Whether a path below `dir` can hold documents the loader reads.
pub(crate) fn path_matters(dir: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(dir) else {
        return false;
    };
    for c in rel.components() {
        match c {
            Component::Normal(name) if name.to_string_lossy().starts_with('.') => return false,
            Component::Normal(_) => {}
            _ => return false,
        }
    }
    match path.extension() {
        None => true,
        Some(ext) => ext == "yaml" || ext == "yml",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_paths_matter() {
        let dir = Path::new("/srv/berth");
        let yes = ["web.yaml", "sub/db.yml", "sub", "newdir"];
        let no = [
            ".git/index",
            ".berth/events.jsonl",
            "sub/.web.yaml.swp",
            ".hidden/web.yaml",
            "status.json",
            "web.yaml~",
            "notes.txt",
        ];
        for p in yes {
            assert!(path_matters(dir, &dir.join(p)), "{p} should matter");
        }
        for p in no {
            assert!(!path_matters(dir, &dir.join(p)), "{p} should not matter");
        }
        assert!(!path_matters(dir, Path::new("/srv/other/web.yaml")));
        assert!(!path_matters(dir, Path::new("/srv/berth-old/web.yaml")));
    }

    #[test]
    fn reads_and_metadata_do_not_matter() {
        use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, RemoveKind};
        assert!(!kind_matters(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!kind_matters(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!kind_matters(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
        assert!(kind_matters(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(kind_matters(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(kind_matters(&EventKind::Create(CreateKind::File)));
        assert!(kind_matters(&EventKind::Remove(RemoveKind::Any)));
    }
}
