//! Parsed documents kept between loads, so `watch` re-parses only the files
//! whose content changed.
//!
//! A 100,000-VM estate is some 30 MiB of YAML in a hundred files; a commit
//! usually touches one of them. [`SpecCache::load`] reads every file as
//! [`super::load`] does (the same walk, size budgets and order), but a file
//! whose bytes equal those of the last load reuses that load's parsed
//! documents instead of parsing them again. The whole desired state is
//! still validated on every load, because a change in one file can break a
//! reference in another (a removed host that VMs elsewhere name), so every
//! diagnostic stays as `load` reports it. Only files that parsed without a
//! problem are kept; a file with errors is parsed again next time, which
//! reports its errors again. Files that are no longer found are forgotten.
//!
//! The content is compared byte for byte against the text kept for
//! diagnostics (no hash, so no collision can hide a change).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::diag::SourceFile;
use super::load::ParsedDoc;
use super::{Desired, SpecError};

/// The documents of the files read by the last load, by path.
#[derive(Debug, Default)]
pub struct SpecCache {
    files: HashMap<PathBuf, Cached>,
    hits: usize,
    misses: usize,
}

/// One file as it was last read, and its parsed documents.
#[derive(Debug)]
pub(crate) struct Cached {
    pub file: Arc<SourceFile>,
    pub docs: Vec<ParsedDoc>,
}

impl Cached {
    /// The cached documents if `text` is what was parsed, re-pointed at a
    /// file of the current load order.
    pub(crate) fn reuse(
        self,
        text: &str,
        order: usize,
    ) -> Option<(Arc<SourceFile>, Vec<ParsedDoc>)> {
        if self.file.text != text {
            return None;
        }
        if self.file.order == order {
            return Some((self.file, self.docs));
        }
        // Diagnostics sort by load order: the same text at another place.
        let file = Arc::new(SourceFile {
            path: self.file.path.clone(),
            text: self.file.text.clone(),
            order,
        });
        let mut docs = self.docs;
        for d in &mut docs {
            d.ctx.file = file.clone();
        }
        Some((file, docs))
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
        let prior = std::mem::take(&mut self.files);
        let (result, kept, hits) = super::load_with(paths, Some(prior));
        self.hits = hits;
        self.misses = kept.len().saturating_sub(hits);
        self.files = kept;
        result
    }

    /// Files the last load took from the cache instead of parsing.
    pub fn reused(&self) -> usize {
        self.hits
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
