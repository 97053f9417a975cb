//! Folding one load's files, in load order, into the desired state.
//!
//! Files arrive from the reading threads in any order; [`Fold`] takes them in
//! load order (the caller reorders) and merges each file's parts as it comes,
//! so every message comes out in a stable order. With a cache that holds the
//! last load's clean result for the same files ([`Merged`]), it first only
//! collects: if every file was read cleanly, the files whose text changed are
//! patched into that result ([`validate::patch`]) instead of merging a
//! hundred thousand VMs again. The moment that cannot be vouched for (a file
//! that did not read or parse cleanly, one not in the cache, a patch that
//! refuses), the files collected so far are merged in order and the load
//! goes on as a full one, so the outcome is always what a full merge gives.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SpecError;
use super::cache::{Cached, Merged};
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

/// Where a file's parts come from.
pub(crate) enum From {
    /// The cache: the text is unchanged.
    Cache,
    /// Parsed now; the parts of the text it replaces, if the cache had any.
    Parsed(Option<Vec<Part>>),
}

/// What a fold ends with.
pub(crate) struct Finished {
    /// The load's result.
    pub result: Result<Desired, SpecError>,
    /// Files that read and parsed cleanly, to keep (when keeping).
    pub kept: HashMap<PathBuf, Cached>,
    /// The result to patch next time, when keeping and it may be.
    pub merged: Option<Merged>,
    /// Whether the last result was patched (else every file was merged).
    pub patched: bool,
    /// Time spent merging or patching.
    pub merging: Duration,
    /// Files merged, or changed files patched in.
    pub folded: usize,
}

/// The fold of one load; see the module documentation.
pub(crate) struct Fold {
    keep: bool,
    merger: Merger,
    sink: Sink,
    documents: usize,
    kept: HashMap<PathBuf, Cached>,
    /// While the last result may still be patched: it, the files taken so
    /// far (all clean and kept, none merged yet) and the changed ones among
    /// them with their old parts.
    patching: Option<Patching>,
    told: bool,
    /// Whether the patched result has a `policy` document.
    has_policy: bool,
    merging: Duration,
    folded: usize,
}

struct Patching {
    base: Merged,
    taken: Vec<PathBuf>,
    changed: Vec<(PathBuf, Vec<Part>)>,
}

impl Fold {
    /// A fold that keeps clean files for the next load when `keep`, and may
    /// patch `base` when it was merged from exactly `files`.
    pub(crate) fn new(keep: bool, base: Option<Merged>, files: &[PathBuf]) -> Self {
        let patching = base.filter(|b| b.paths == files).map(|base| Patching {
            base,
            taken: Vec::with_capacity(files.len()),
            changed: Vec::new(),
        });
        Fold {
            keep,
            merger: Merger::default(),
            sink: Sink::default(),
            documents: 0,
            kept: HashMap::new(),
            patching,
            told: false,
            has_policy: false,
            merging: Duration::ZERO,
            folded: 0,
        }
    }

    /// Problems found before any file was read (the directory walk).
    pub(crate) fn take_sink(&mut self, sink: Sink) {
        self.sink.append(sink);
    }

    /// Takes the next file in load order.
    pub(crate) fn add(
        &mut self,
        path: &PathBuf,
        arrived: Arrived,
        on_controller: &mut dyn FnMut(&ControllerSpec),
    ) {
        let Arrived { sink, read } = arrived;
        if self.patching.is_none() {
            return self.add_full(path, sink, read, on_controller);
        }
        let read = match read {
            Some(read) if sink.is_empty() => read,
            read => {
                self.merge_taken();
                return self.add_full(path, sink, read, on_controller);
            }
        };
        // `None`: the file was not in the cache, so there is nothing to
        // patch against; `Some(old)`: unchanged, or changed from `old`.
        let change = match read.from {
            From::Cache => Some(None),
            From::Parsed(Some(old)) => Some(Some(old)),
            From::Parsed(None) => None,
        };
        self.documents += read.parts.len();
        self.keep_file(read.file, read.parts);
        match (change, &mut self.patching) {
            (Some(old), Some(p)) => {
                p.taken.push(path.clone());
                if let Some(old) = old {
                    p.changed.push((path.clone(), old));
                }
            }
            _ => {
                self.merge_taken();
                self.merge_file(path, on_controller);
            }
        }
    }

    fn add_full(
        &mut self,
        path: &PathBuf,
        sink: Sink,
        read: Option<Read>,
        on_controller: &mut dyn FnMut(&ControllerSpec),
    ) {
        let clean = sink.is_empty();
        self.sink.append(sink);
        if let Some(read) = read {
            self.documents += read.parts.len();
            if self.keep && clean {
                self.keep_file(read.file, read.parts);
                self.merge_file(path, on_controller);
            } else {
                self.merge_parts(&read.parts, on_controller);
            }
        } else {
            self.tell(on_controller);
        }
    }

    fn keep_file(&mut self, file: Arc<SourceFile>, parts: Vec<Part>) {
        self.kept.insert(file.path.clone(), Cached { file, parts });
    }

    /// Merges a kept file's parts.
    fn merge_file(&mut self, path: &PathBuf, on_controller: &mut dyn FnMut(&ControllerSpec)) {
        let t = Instant::now();
        if let Some(c) = self.kept.get(path) {
            for part in &c.parts {
                self.merger.add(part, &mut self.sink);
            }
        }
        self.merging += t.elapsed();
        self.folded += 1;
        self.tell(on_controller);
    }

    fn merge_parts(&mut self, parts: &[Part], on_controller: &mut dyn FnMut(&ControllerSpec)) {
        let t = Instant::now();
        for part in parts {
            self.merger.add(part, &mut self.sink);
        }
        self.merging += t.elapsed();
        self.folded += 1;
        self.tell(on_controller);
    }

    fn tell(&mut self, on_controller: &mut dyn FnMut(&ControllerSpec)) {
        if !self.told
            && let Some(c) = self.merger.controller()
        {
            self.told = true;
            on_controller(c);
        }
    }

    /// Gives up patching: merges the files taken so far, in order (they
    /// were all read cleanly, so they have no problems of their own to add).
    fn merge_taken(&mut self) {
        if let Some(p) = self.patching.take() {
            self.merge_paths(&p.taken);
        }
    }

    fn merge_paths(&mut self, taken: &[PathBuf]) {
        let t = Instant::now();
        for path in taken {
            if let Some(c) = self.kept.get(path) {
                for part in &c.parts {
                    self.merger.add(part, &mut self.sink);
                }
            }
        }
        self.merging += t.elapsed();
        self.folded += taken.len();
    }

    /// The result, the files to keep and the clean result to patch next
    /// time (kept only when `keep`, the load was clean and settled no intent).
    pub(crate) fn finish(
        mut self,
        paths: &[PathBuf],
        files: &[PathBuf],
        on_controller: &mut dyn FnMut(&ControllerSpec),
    ) -> Finished {
        if let Some(p) = self.patching.take() {
            let t = Instant::now();
            let patched = self.patch(p);
            self.merging += t.elapsed();
            match patched {
                Ok(desired) => {
                    if let Some(c) = &desired.controller {
                        on_controller(c);
                    }
                    let merged = Merged {
                        paths: files.to_vec(),
                        desired: desired.clone(),
                        has_policy: self.has_policy,
                    };
                    return Finished {
                        result: Ok(desired),
                        kept: self.kept,
                        merged: Some(merged),
                        patched: true,
                        merging: self.merging,
                        folded: self.folded,
                    };
                }
                Err(taken) => self.merge_paths(&taken),
            }
        }
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
        let desired = self.merger.finish(&mut self.sink);
        let clean = self.sink.is_empty();
        let merged = (self.keep && clean && intent_free).then(|| Merged {
            paths: files.to_vec(),
            desired: desired.clone(),
            has_policy,
        });
        Finished {
            result: self.sink.finish(desired),
            kept: self.kept,
            merged,
            patched: false,
            merging: self.merging,
            folded: self.folded,
        }
    }

    /// The last result with the changed files patched in, or the files
    /// taken (to merge in full) when the patch cannot vouch for it.
    fn patch(&mut self, p: Patching) -> Result<Desired, Vec<PathBuf>> {
        let Patching {
            base,
            taken,
            changed,
        } = p;
        if self.documents == 0 {
            return Err(taken);
        }
        let mut changes: Vec<(&[Part], &[Part])> = Vec::with_capacity(changed.len());
        for (path, old) in &changed {
            match self.kept.get(path) {
                Some(c) => changes.push((old, &c.parts)),
                None => return Err(taken),
            }
        }
        let mut desired = base.desired;
        self.has_policy = base.has_policy;
        if validate::patch(&mut desired, &mut self.has_policy, &changes) {
            self.folded = changed.len();
            Ok(desired)
        } else {
            Err(taken)
        }
    }
}
