//! Checked documents kept between loads, so `watch` parses and checks only
//! the files whose content changed, and merges only what they changed.
//!
//! A 100,000-VM estate is some 35 MiB of YAML in a hundred files; a commit
//! usually touches one of them. [`SpecCache::load`] reads every file as
//! [`super::load`] does (the same walk, size budgets and order), but a file
//! whose bytes equal those of the last load reuses that load's checked
//! documents (its parts, see `validate`) instead of parsing and checking
//! them again, wherever it now is in the load order. The content is
//! compared byte for byte with the text kept for diagnostics (no hash, so no
//! collision can hide a change), before any new text is made of the bytes.
//! Only files that parsed without a problem are kept; a file with errors is
//! parsed again next time, which reports its errors again. Files that are no
//! longer found are forgotten.
//!
//! Two shortcuts follow, both exact (`fold` and `validate/patch.rs` say
//! why), and both checked against a fresh load by a property test that
//! edits, adds, removes, renames and reorders files (`cache_tests.rs`):
//!
//! * **Nothing changed.** The cache remembers how each file read (its text,
//!   or the problem reading it) and what the walk found. When a load finds
//!   the same files reading the same, its result is the last one's, so
//!   [`SpecCache::reload`] returns `None` without merging anything. `watch`
//!   asks it on every pass instead of fingerprinting the directory first,
//!   so each file is read once a pass.
//! * **Incremental merge.** After a load with no problem at all and no
//!   intent (host groups, rules, host choices), the cache keeps its result
//!   (a copy, made on a thread of its own after the load returns: see
//!   [`Base`]). A later load of the same files in the same order in which
//!   every file reads cleanly takes the VMs and hosts of the changed files
//!   out of that result and puts their new ones in (`validate::patch`),
//!   instead of merging 100,000 VMs and checking every reference again.
//!   Rules that need every document are local under these conditions:
//!   duplicates can only involve the changed files' names (checked as they
//!   go in), references can only break if the host names change (they must
//!   not) or in a changed file (checked), the policy can only change if a
//!   changed file holds one (at most one in all, and no problem in it). Any
//!   case the patch cannot vouch for (a duplicate, an unknown host, a file
//!   added, removed or renamed, a syntax error, intent, a Controller or Fleet
//!   in a changed file) makes the load merge every file as `load` does, so
//!   every diagnostic comes from the full merge, in its order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::diag::SourceFile;
use super::validate::Part;
use super::{Desired, SpecError};

/// The documents of the files read by the last load, by path, and its
/// result when it was clean.
#[derive(Debug, Default)]
pub struct SpecCache {
    files: HashMap<PathBuf, Cached>,
    merged: Option<Merged>,
    last: Option<LastRead>,
    hits: usize,
    misses: usize,
    patched: bool,
}

/// The last load's result, kept when it had no problem and settled no
/// intent, so the next load of the same files can patch it.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The files it was merged from, in load order.
    pub paths: Vec<PathBuf>,
    /// What the load returned, or its copy in the making.
    pub desired: Base,
    /// Whether a document declared a `policy`.
    pub has_policy: bool,
}

/// One file as it was last read, and its checked documents.
#[derive(Debug)]
pub(crate) struct Cached {
    pub file: Arc<SourceFile>,
    pub parts: Vec<Part>,
}

/// The cache's own copy of a clean result (the caller owns the one
/// returned, and a patch changes its copy in place). Copying 100,000 VMs'
/// names takes some 10 ms, so it is done on a thread of its own after the
/// load returns, while the caller plans; the next load that patches waits
/// for it (seconds later, it is long done).
#[derive(Debug)]
pub(crate) enum Base {
    /// The result as returned, not copied yet.
    Shared(Arc<Desired>),
    /// Being copied.
    Copying(std::thread::JoinHandle<Desired>),
}

impl Base {
    /// Starts copying a shared result on a thread of its own (or copies it
    /// here if no thread can be started).
    fn copy(self) -> Base {
        let Base::Shared(shared) = self else {
            return self;
        };
        let keep = shared.clone();
        match std::thread::Builder::new()
            .name("berth-spec-copy".into())
            .spawn(move || Desired::clone(&keep))
        {
            Ok(handle) => Base::Copying(handle),
            Err(_) => Base::Shared(Arc::new(Desired::clone(&shared))),
        }
    }

    /// The copy, to patch; `None` if copying failed (the load then merges
    /// in full).
    pub(crate) fn take(self) -> Option<Desired> {
        match self {
            Base::Shared(shared) => Some(Arc::unwrap_or_clone(shared)),
            Base::Copying(handle) => handle.join().ok(),
        }
    }
}

/// What one load keeps for the next.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// Files that read and parsed cleanly, by path.
    pub files: HashMap<PathBuf, Cached>,
    /// The result, when it was clean and settled no intent.
    pub merged: Option<Merged>,
    /// What the load read, to tell whether the next one reads the same.
    pub last: Option<LastRead>,
    /// Whether this load patched the last result.
    pub patched: bool,
}

/// What one load read: the walk's problems and each file, in load order.
#[derive(Debug)]
pub(crate) struct LastRead {
    /// The walk's problems, as reported.
    pub walk: String,
    /// Each file the walk found, and how it read.
    pub files: Vec<(PathBuf, Seen)>,
}

/// How one file read.
#[derive(Debug)]
pub(crate) enum Seen {
    /// Its text (parsed or not).
    Text(Arc<SourceFile>),
    /// It could not be read: the problems, as reported.
    Failed(String),
}

impl Seen {
    /// Whether a file read the same both times: a load that reads the same
    /// files the same returns the same.
    pub(crate) fn same(&self, now: &Seen) -> bool {
        match (self, now) {
            (Seen::Text(a), Seen::Text(b)) => Arc::ptr_eq(a, b) || a.text == b.text,
            (Seen::Failed(a), Seen::Failed(b)) => a == b,
            _ => false,
        }
    }
}

impl Cached {
    /// The kept file and its parts if `now` (a file's bytes) is the same
    /// text, moved to `order` in the new load (diagnostics sort by it);
    /// else the parts of the text it had. Equal bytes make the same file:
    /// the kept text was read as UTF-8 without NUL.
    pub(crate) fn reuse(
        self,
        now: &[u8],
        order: usize,
    ) -> Result<(Arc<SourceFile>, Vec<Part>), Vec<Part>> {
        if self.file.text.as_bytes() != now {
            return Err(self.parts);
        }
        self.file.move_to(order);
        Ok((self.file, self.parts))
    }
}

impl SpecCache {
    /// An empty cache: the first load parses everything.
    pub fn new() -> Self {
        SpecCache::default()
    }

    /// Loads and validates every document under `paths`, exactly as
    /// [`super::load`] does, parsing only files that changed since the
    /// last call.
    pub fn load(&mut self, paths: &[PathBuf]) -> Result<Desired, SpecError> {
        self.last = None;
        match self.run(paths) {
            Some(result) => result.map(Arc::unwrap_or_clone),
            // Unreachable: without what the last load read, nothing stands.
            None => super::load(paths),
        }
    }

    /// [`SpecCache::load`], or `None` when every file under `paths` reads
    /// exactly as in the last call (the same files, each with the same text
    /// or the same failure to read): that call's result stands, and nothing
    /// is parsed or merged. This is how `watch` tells a commit from a quiet
    /// pass, reading each file once.
    /// The result is shared with the cache, which keeps a copy of a clean
    /// one to patch next time.
    pub fn reload(&mut self, paths: &[PathBuf]) -> Option<Result<Arc<Desired>, SpecError>> {
        self.run(paths)
    }

    fn run(&mut self, paths: &[PathBuf]) -> Option<Result<Arc<Desired>, SpecError>> {
        let prior = Kept {
            files: std::mem::take(&mut self.files),
            merged: self.merged.take(),
            last: self.last.take(),
            patched: false,
        };
        let (result, kept, hits) = super::load_with(paths, Some(prior), &mut |_| {});
        self.hits = hits;
        self.misses = kept.files.len().saturating_sub(hits);
        self.patched = kept.patched;
        self.files = kept.files;
        self.merged = kept.merged.map(|m| Merged {
            desired: m.desired.copy(),
            ..m
        });
        self.last = kept.last;
        result
    }

    /// Whether the last load patched the one before's result instead of
    /// merging every file.
    pub fn patched(&self) -> bool {
        self.patched
    }

    /// Forgets what the last call read (not the parsed files), so the next
    /// [`SpecCache::reload`] returns a result even if nothing changed.
    pub fn forget_last_read(&mut self) {
        self.last = None;
    }

    /// Files the last load took from the cache instead of parsing.
    pub fn reused(&self) -> usize {
        self.hits
    }

    /// Files the last load parsed (and now holds) because they changed.
    pub fn parsed(&self) -> usize {
        self.misses
    }

    /// Files the cache holds now (those that parsed without a problem).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: hv01\n    - name: hv02\n";

    fn vms(host: &str) -> String {
        format!(
            "apiVersion: berth/v1\nkind: Placement\nspec:\n  vms:\n    - name: web-01\n      host: {host}\n"
        )
    }

    #[test]
    fn only_changed_files_are_parsed_again_and_the_result_is_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = vec![dir.path().to_path_buf()];
        std::fs::write(dir.path().join("a-hosts.yaml"), HOSTS).expect("write");
        std::fs::write(dir.path().join("b-vms.yaml"), vms("hv01")).expect("write");
        let mut cache = SpecCache::new();

        let first = cache.load(&root).expect("valid");
        assert_eq!((cache.reused(), cache.len()), (0, 2));
        assert_eq!(first.vms["web-01"].host, "hv01");

        // Nothing changed: nothing parsed, same result as `load`.
        let again = cache.load(&root).expect("valid");
        assert_eq!(cache.reused(), 2);
        assert_eq!(
            format!("{again:?}"),
            format!("{:?}", super::super::load(&root).expect("valid"))
        );

        // One file changed: only it is parsed.
        std::fs::write(dir.path().join("b-vms.yaml"), vms("hv02")).expect("write");
        let changed = cache.load(&root).expect("valid");
        assert_eq!(cache.reused(), 1);
        assert_eq!(changed.vms["web-01"].host, "hv02");
    }

    #[test]
    fn errors_are_reported_every_time_and_across_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = vec![dir.path().to_path_buf()];
        std::fs::write(dir.path().join("a-hosts.yaml"), HOSTS).expect("write");
        std::fs::write(dir.path().join("b-vms.yaml"), vms("hv02")).expect("write");
        let mut cache = SpecCache::new();
        cache.load(&root).expect("valid");

        // A change in one file breaks a reference from the other, cached one.
        std::fs::write(
            dir.path().join("a-hosts.yaml"),
            HOSTS.replace("    - name: hv02\n", ""),
        )
        .expect("write");
        let e = cache.load(&root).expect_err("hv02 is gone");
        assert_eq!(cache.reused(), 1);
        let expected = super::super::load(&root).expect_err("same error");
        assert_eq!(e.to_string(), expected.to_string());
        assert!(e.to_string().contains("b-vms.yaml:6:13"), "{e}");

        // A file that does not parse is not kept, and says so again.
        std::fs::write(
            dir.path().join("b-vms.yaml"),
            "apiVersion: berth/v1\nkind: Placement\nspec: { vms: [ }\n",
        )
        .expect("write");
        let first = cache.load(&root).expect_err("syntax").to_string();
        assert_eq!(cache.len(), 1);
        let second = cache.load(&root).expect_err("syntax").to_string();
        assert_eq!(first, second);
    }

    #[test]
    fn a_kept_file_reports_its_own_problems_and_duplicates_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = vec![dir.path().to_path_buf()];
        // Parses cleanly, but a value is out of range: the file is kept
        // with its problem, which every later load reports again.
        let bad_priority = format!("{}      priority: 5000000\n", vms("hv01"));
        std::fs::write(dir.path().join("a-hosts.yaml"), HOSTS).expect("write");
        std::fs::write(dir.path().join("b-vms.yaml"), &bad_priority).expect("write");
        let mut cache = SpecCache::new();
        let first = cache.load(&root).expect_err("priority").to_string();
        assert!(first.contains("b-vms.yaml:7:"), "{first}");
        assert_eq!(cache.len(), 2);
        let again = cache.load(&root).expect_err("priority").to_string();
        assert_eq!((cache.reused(), first.clone()), (2, again));

        // A new file declares the same VM: the duplicate is found against
        // the kept file, as a fresh load finds it.
        std::fs::write(dir.path().join("b-vms.yaml"), vms("hv01")).expect("write");
        std::fs::write(dir.path().join("c-more.yaml"), vms("hv02")).expect("write");
        let e = cache.load(&root).expect_err("twice").to_string();
        assert_eq!(e, super::super::load(&root).expect_err("same").to_string());
        assert!(e.contains("declared twice"), "{e}");
        assert_eq!(cache.reused(), 1);
    }

    #[test]
    fn a_file_that_moves_in_the_load_order_keeps_its_diagnostics_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = vec![dir.path().to_path_buf()];
        std::fs::write(dir.path().join("m-hosts.yaml"), HOSTS).expect("write");
        std::fs::write(dir.path().join("n-vms.yaml"), vms("hv09")).expect("write");
        let mut cache = SpecCache::new();
        let _ = cache.load(&root);
        // A new first file shifts both cached files one place later.
        std::fs::write(
            dir.path().join("a-more.yaml"),
            vms("hv08").replace("web-01", "web-00"),
        )
        .expect("write");
        let e = cache.load(&root).expect_err("unknown hosts").to_string();
        assert_eq!(
            cache.reused(),
            2,
            "both kept files are reused in their new places"
        );
        assert_eq!(e, super::super::load(&root).expect_err("same").to_string());
        let (a, n) = (
            e.find("a-more.yaml").expect("a"),
            e.find("n-vms.yaml").expect("n"),
        );
        assert!(a < n, "{e}");
    }
}
