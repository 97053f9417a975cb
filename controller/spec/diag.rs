//! Positioned diagnostics for desired-state documents.
//!
//! Every input error berth reports names the file, line and column it comes
//! from. The library keeps diagnostics as plain data ([`Diagnostic`]); the CLI
//! turns them into rich `miette` reports with a source snippet.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::escape::escape_controls;

/// One loaded source file: its path (as the user named it) and its text.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as given on the command line or found in a directory walk.
    pub path: PathBuf,
    /// The whole text of the file, for snippets; empty for a file refused
    /// as binary (not UTF-8, or holding NUL), which is never quoted, so its
    /// diagnostics' positions point into the bytes on disk.
    pub text: String,
    /// Position of the file in load order (diagnostics are sorted by it).
    /// A file kept between loads (`SpecCache`) moves to its place in the
    /// new order, and every position that points into it with it.
    order: AtomicUsize,
}

impl SourceFile {
    /// A file read at `order` in its load.
    pub fn new(path: PathBuf, text: String, order: usize) -> Self {
        SourceFile {
            path,
            text,
            order: AtomicUsize::new(order),
        }
    }

    /// Position of the file in load order.
    pub fn order(&self) -> usize {
        self.order.load(Ordering::Relaxed)
    }

    /// Puts a kept file at its place in a new load.
    pub(crate) fn move_to(&self, order: usize) {
        self.order.store(order, Ordering::Relaxed);
    }
}

/// A position in a source file: 1-based line and column plus a byte range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column (in characters); 0 when unknown.
    pub column: u32,
    /// Byte offset into the file.
    pub offset: usize,
    /// Length in bytes of the highlighted range (at least 1 when known).
    pub len: usize,
}

impl Loc {
    /// Whether the position is known.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

/// Where something came from: a file and a position in it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The file; `None` for values that were not read from a file.
    pub file: Option<Arc<SourceFile>>,
    /// The position within the file.
    pub loc: Loc,
}

impl Origin {
    /// An origin at `loc` in `file`.
    pub fn new(file: &Arc<SourceFile>, loc: Loc) -> Self {
        Origin {
            file: Some(file.clone()),
            loc,
        }
    }

    /// The file's path, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref().map(|f| f.path.as_path())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.loc.is_known()) {
            (Some(file), true) => write!(
                f,
                "{}:{}:{}",
                escape_controls(&file.path.display().to_string()),
                self.loc.line,
                self.loc.column
            ),
            (Some(file), false) => {
                write!(f, "{}", escape_controls(&file.path.display().to_string()))
            }
            (None, _) => f.write_str("<input>"),
        }
    }
}

/// A secondary position shown with a diagnostic ("first declared here").
#[derive(Debug, Clone)]
pub struct Related {
    /// What the position shows.
    pub label: String,
    /// Where it is.
    pub origin: Origin,
}

/// One problem found in the input, with its position.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where it is.
    pub origin: Origin,
    /// A hint on how to fix it ("did you mean `host`?").
    pub help: Option<String>,
    /// Other positions that explain the problem.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A diagnostic with a message at a position.
    pub fn new(origin: Origin, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            origin,
            help: None,
            related: Vec::new(),
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a related position.
    pub fn with_related(mut self, label: impl Into<String>, origin: Origin) -> Self {
        self.related.push(Related {
            label: label.into(),
            origin,
        });
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Input text never reaches a terminal or a log raw.
        write!(f, "{}: {}", self.origin, escape_controls(&self.message))?;
        for r in &self.related {
            write!(f, " ({} at {})", escape_controls(&r.label), r.origin)?;
        }
        if let Some(help) = &self.help {
            write!(f, "; help: {}", escape_controls(help))?;
        }
        Ok(())
    }
}

/// Every problem found in one run of loading and validation.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecError {
    /// The problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        match self.diagnostics.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                writeln!(f, "{n} errors in the desired state:")?;
                for d in many {
                    writeln!(f, "  {d}")?;
                }
                Ok(())
            }
        }
    }
}

/// Collects diagnostics during a load so that one run reports all of them.
#[derive(Debug, Default)]
pub struct Sink {
    diagnostics: Vec<Diagnostic>,
}

impl Sink {
    /// Records a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Records a problem at `origin`.
    pub fn error(&mut self, origin: Origin, message: impl Into<String>) {
        self.push(Diagnostic::new(origin, message));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Records problems found elsewhere, after its own.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(problems);
    }

    /// The problems recorded, in the order they were found.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    /// Moves every problem of `other` into this sink, after its own.
    pub fn append(&mut self, other: Sink) {
        self.diagnostics.extend(other.diagnostics);
    }

    /// Replaces the `i`th problem (a better diagnosis of the same thing).
    pub(crate) fn replace(&mut self, i: usize, d: Diagnostic) {
        if let Some(slot) = self.diagnostics.get_mut(i) {
            *slot = d;
        }
    }

    /// The problems recorded so far.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Number of problems recorded so far.
    pub fn len(&self) -> usize {
        self.diagnostics.len()
    }

    /// `Ok(value)` when nothing was recorded, else every recorded problem.
    /// Problems come out in file order (files in load order, then line and
    /// column), whichever rule found them.
    pub fn finish<T>(self, value: T) -> Result<T, SpecError> {
        if self.diagnostics.is_empty() {
            return Ok(value);
        }
        let mut diagnostics = self.diagnostics;
        diagnostics.sort_by_key(|d| {
            let file = d.origin.file.as_ref().map_or(0, |f| f.order() + 1);
            (file, d.origin.loc.line, d.origin.loc.column)
        });
        Err(SpecError { diagnostics })
    }
}
