//! Folding one load's files, in load order, into the desired state.
//!
//! Files arrive from the reading threads in any order; [`Fold`] takes them in
//! load order (the caller reorders) and merges each file's parts as it comes,
//! so every message comes out in a stable order.
//!
//! With what the last load of the same cache kept, it first only holds the
//! files, for two shortcuts:
//!
//! * **Unchanged.** When the walk found the same files and every file read
//!   exactly as last time (the same text, or the same failure to read), the
//!   load would return what the last one did; [`Finished::result`] is then
//!   `None` and nothing is merged at all.
//! * **Patch.** When the last load was clean ([`Merged`]), read the same
//!   files, and every file read cleanly now, the files whose text changed
//!   are patched into that result ([`validate::patch`]) instead of merging a
//!   hundred thousand VMs again.
//!
//! The moment neither can be vouched for (or the patch refuses), the files
//! held so far are merged in order and the load goes on as a full one, so
//! the outcome is always what a full merge gives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SpecError;
use super::cache::{Base, Cached, LastRead, Merged, Seen};
use super::diag::{Origin, Sink, SourceFile};
use super::model::{ControllerSpec, Desired};
use super::validate::{self, Merger, Part};

/// One file as the reading threads hand it over.
pub(crate) struct Arrived {
    /// Problems reading or parsing it (its documents' own are in the parts).
    pub sink: Sink,
    /// What was read; `None` when the file could not be read.
    pub read: Option<Read>,
}

/// A file that was read, and its checked documents.
pub(crate) struct Read {
    /// The file (the kept one when its text is unchanged).
    pub file: Arc<SourceFile>,
    /// Its checked documents.
    pub parts: Vec<Part>,
    /// How it was had: taken from the cache, or parsed (with the parts the
    /// cache held for the file's earlier text, if any).
    pub from: From,
}

impl std::convert::From<Read> for Cached {
    fn from(read: Read) -> Cached {
        Cached {
            file: read.file,
            parts: read.parts,
        }
    }
}

/// Problems as they are reported, one a line: how a load remembers a walk
/// or a file that went wrong, to tell whether the next one goes the same.
fn as_text(sink: &Sink) -> String {
    sink.diagnostics()
        .iter()
        .map(|d| format!("{d}\n"))
        .collect()
}

/// Where a file's parts come from.
pub(crate) enum From {
    /// The cache: the text is unchanged.
    Cache,
    /// Parsed now; the parts of the text it replaces, if the cache had any.
    Parsed(Option<Vec<Part>>),
}

/// What a fold ends with.
pub(crate) struct Finished {
    /// The load's result; `None` when every file read as in the last load,
    /// whose result stands.
    pub result: Option<Result<Arc<Desired>, SpecError>>,
    /// Files that read and parsed cleanly, to keep (when keeping).
    pub kept: HashMap<PathBuf, Cached>,
    /// The result to patch next time, when keeping and it may be.
    pub merged: Option<Merged>,
    /// What this load read, to tell the next one whether anything changed.
    pub last: Option<LastRead>,
    /// Whether the last result was patched (else every file was merged).
    pub patched: bool,
    /// Time spent merging or patching.
    pub merging: Duration,
    /// Files merged, or changed files patched in.
    pub folded: usize,
}

/// A file taken while the load may still end without merging.
struct Held {
    path: PathBuf,
    sink: Sink,
    read: Option<Read>,
}

/// The fold of one load; see the module documentation.
pub(crate) struct Fold {
    keep: bool,
    merger: Merger,
    sink: Sink,
    documents: usize,
    kept: HashMap<PathBuf, Cached>,
    /// Files taken but not merged, while a shortcut is still possible.
    held: Option<Vec<Held>>,
    /// The last clean result, while patching it is still possible.
    base: Option<Merged>,
    /// What the last load read, while this one may still be the same.
    last: Option<LastRead>,
    /// What this one read (kept for the next, when keeping).
    seen: Vec<(PathBuf, Seen)>,
    walk: String,
    told: bool,
    /// Whether the patched result has a `policy` document.
    has_policy: bool,
    merging: Duration,
    folded: usize,
}

impl Fold {
    /// A fold that keeps clean files for the next load when `keep`. `walk`
    /// holds the directory walk's problems; `base` and `last` are what the
    /// last load kept, used only if it found the same `files`.
    pub(crate) fn new(
        keep: bool,
        walk: Sink,
        base: Option<Merged>,
        last: Option<LastRead>,
        files: &[PathBuf],
    ) -> Self {
        let walk_text = as_text(&walk);
        let base = base.filter(|b| walk.is_empty() && b.paths == files);
        let last = last.filter(|l| {
            l.walk == walk_text
                && l.files.len() == files.len()
                && l.files.iter().zip(files).all(|((p, _), f)| p == f)
        });
        let held =
            (keep && (base.is_some() || last.is_some())).then(|| Vec::with_capacity(files.len()));
        let mut sink = Sink::default();
        sink.append(walk);
        Fold {
            keep,
            merger: Merger::default(),
            sink,
            documents: 0,
            kept: HashMap::new(),
            held,
            base,
            last,
            seen: Vec::with_capacity(if keep { files.len() } else { 0 }),
            walk: walk_text,
            told: false,
            has_policy: false,
            merging: Duration::ZERO,
            folded: 0,
        }
    }

    /// Takes the next file (the `i`th) in load order.
    pub(crate) fn add(
        &mut self,
        i: usize,
        path: &Path,
        arrived: Arrived,
        on_controller: &mut dyn FnMut(&ControllerSpec),
    ) {
        if self.keep {
            let seen = match &arrived.read {
                Some(read) => Seen::Text(read.file.clone()),
                None => Seen::Failed(as_text(&arrived.sink)),
            };
            if let Some(last) = &self.last
                && !last.files.get(i).is_some_and(|(_, was)| was.same(&seen))
            {
                self.last = None;
            }
            self.seen.push((path.to_path_buf(), seen));
        }
        if self.base.is_some() {
            let clean = arrived.sink.is_empty()
                && arrived
                    .read
                    .as_ref()
                    .is_some_and(|r| !matches!(r.from, From::Parsed(None)));
            if !clean {
                self.base = None;
            }
        }
        if self.base.is_none() && self.last.is_none() {
            self.merge_held(on_controller);
        }
        match &mut self.held {
            Some(held) => held.push(Held {
                path: path.to_path_buf(),
                sink: arrived.sink,
                read: arrived.read,
            }),
            None => self.merge(path, arrived.sink, arrived.read, on_controller),
        }
    }

    /// Merges one file's parts, and keeps it when it read cleanly.
    fn merge(
        &mut self,
        path: &Path,
        sink: Sink,
        read: Option<Read>,
        on_controller: &mut dyn FnMut(&ControllerSpec),
    ) {
        let clean = sink.is_empty();
        self.sink.append(sink);
        if let Some(read) = read {
            self.documents += read.parts.len();
            let t = Instant::now();
            for part in &read.parts {
                self.merger.add(part, &mut self.sink);
            }
            self.merging += t.elapsed();
            self.folded += 1;
            if self.keep && clean {
                self.kept.insert(path.to_path_buf(), read.into());
            }
        }
        if !self.told
            && let Some(c) = self.merger.controller()
        {
            self.told = true;
            on_controller(c);
        }
    }

    /// Gives up the shortcuts: merges the files held so far, in order.
    fn merge_held(&mut self, on_controller: &mut dyn FnMut(&ControllerSpec)) {
        self.base = None;
        self.last = None;
        for h in self.held.take().unwrap_or_default() {
            self.merge(&h.path, h.sink, h.read, on_controller);
        }
    }

    /// The result (`None`: the last one stands), what to keep, and what
    /// this load read.
    pub(crate) fn finish(
        mut self,
        paths: &[PathBuf],
        files: &[PathBuf],
        on_controller: &mut dyn FnMut(&ControllerSpec),
    ) -> Finished {
        let keep = self.keep;
        let last = |walk: String, seen: Vec<(PathBuf, Seen)>| {
            keep.then_some(LastRead { walk, files: seen })
        };
        if self.last.is_some()
            && let Some(held) = self.held.take()
        {
            // Everything read as last time: keep what was held, as it was.
            let base = self.base.take();
            for h in held {
                if let Some(read) = h.read.filter(|_| h.sink.is_empty()) {
                    self.kept.insert(h.path, read.into());
                }
            }
            return Finished {
                result: None,
                kept: self.kept,
                merged: base,
                last: last(self.walk, self.seen),
                patched: false,
                merging: self.merging,
                folded: 0,
            };
        }
        if let Some(base) = self.base.take()
            && let Some(held) = self.held.take()
        {
            let t = Instant::now();
            let patched = self.patch(base, &held);
            self.merging += t.elapsed();
            match patched {
                Some(desired) => {
                    if let Some(c) = &desired.controller {
                        on_controller(c);
                    }
                    let desired = Arc::new(desired);
                    for h in held {
                        if let Some(read) = h.read {
                            self.kept.insert(h.path, read.into());
                        }
                    }
                    let merged = Merged {
                        paths: files.to_vec(),
                        desired: Base::Shared(desired.clone()),
                        has_policy: self.has_policy,
                    };
                    return Finished {
                        result: Some(Ok(desired)),
                        kept: self.kept,
                        merged: Some(merged),
                        last: last(self.walk, self.seen),
                        patched: true,
                        merging: self.merging,
                        folded: self.folded,
                    };
                }
                None => self.held = Some(held),
            }
        }
        self.merge_held(on_controller);
        if self.documents == 0 && self.sink.is_empty() {
            self.sink.error(
                Origin::default(),
                format!(
                    "no berth documents found in {}",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let intent_free = self.merger.intent_free();
        let has_policy = self.merger.has_policy();
        let desired = Arc::new(self.merger.finish(&mut self.sink));
        let clean = self.sink.is_empty();
        let merged = (self.keep && clean && intent_free).then(|| Merged {
            paths: files.to_vec(),
            desired: Base::Shared(desired.clone()),
            has_policy,
        });
        Finished {
            result: Some(self.sink.finish(desired)),
            kept: self.kept,
            merged,
            last: last(self.walk, self.seen),
            patched: false,
            merging: self.merging,
            folded: self.folded,
        }
    }

    /// The last result with the changed files patched in, or `None` when
    /// the patch cannot vouch for it. Every held file read cleanly and was
    /// in the cache (else `base` was dropped).
    fn patch(&mut self, base: Merged, held: &[Held]) -> Option<Desired> {
        let mut documents = 0;
        let mut changes: Vec<(&[Part], &[Part])> = Vec::new();
        for h in held {
            let read = h.read.as_ref()?;
            documents += read.parts.len();
            match &read.from {
                From::Cache => {}
                From::Parsed(Some(old)) => changes.push((old, &read.parts)),
                From::Parsed(None) => return None,
            }
        }
        if documents == 0 {
            return None;
        }
        let mut desired = base.desired.take()?;
        self.has_policy = base.has_policy;
        if validate::patch(&mut desired, &mut self.has_policy, &changes) {
            self.folded = changes.len();
            Some(desired)
        } else {
            None
        }
    }
}
