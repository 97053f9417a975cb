//! Helpers shared by the `spec_*` integration tests: a scratch directory of
//! documents, loading it, and rendering errors with stable paths.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth::cli::render::spec_error_plain;
use berth::spec::{self, Desired, Diagnostic, Origin, SourceFile, SpecError};

/// A temporary directory of documents; removed when dropped.
pub struct Docs {
    dir: tempfile::TempDir,
}

impl Docs {
    /// An empty scratch directory.
    pub fn new() -> Self {
        Docs {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` (dedented, see [`dedent`]) to `name` below the directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        self.write_bytes(name, dedent(text).as_bytes())
    }

    /// Writes raw bytes to `name` below the directory.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, bytes).expect("write a document");
        path
    }

    /// Loads the whole directory.
    pub fn load(&self) -> Result<Desired, SpecError> {
        spec::load(&[self.dir.path().to_path_buf()])
    }

    /// Loads the directory and expects it to be valid.
    pub fn ok(&self) -> Desired {
        match self.load() {
            Ok(d) => d,
            Err(e) => panic!("expected a valid spec, got:\n{}", self.render(&e)),
        }
    }

    /// Loads the directory and expects errors.
    pub fn err(&self) -> SpecError {
        match self.load() {
            Ok(d) => panic!(
                "expected errors, but the spec loaded: {} hosts, {} VMs, {} fleets",
                d.hosts.len(),
                d.vms.len(),
                d.fleets.len()
            ),
            Err(e) => e,
        }
    }

    /// The plain rendering of `e`, with this directory shown as `[DIR]`.
    ///
    /// Paths are replaced before rendering (not only after), so that miette's
    /// line wrapping does not depend on where the temporary directory is.
    pub fn render(&self, e: &SpecError) -> String {
        let prefix = self.dir.path().display().to_string();
        let redacted = redact(e, &prefix);
        spec_error_plain(&redacted).replace(&prefix, "[DIR]")
    }
}

/// Replaces `prefix` by `[DIR]` in every path and message of `e`, keeping
/// "same file" identity between diagnostics and their related positions.
fn redact(e: &SpecError, prefix: &str) -> SpecError {
    let mut files: HashMap<*const SourceFile, Arc<SourceFile>> = HashMap::new();
    let mut origin = |o: &Origin| -> Origin {
        let file = o.file.as_ref().map(|f| {
            files
                .entry(Arc::as_ptr(f))
                .or_insert_with(|| {
                    let shown = f.path.display().to_string().replace(prefix, "[DIR]");
                    Arc::new(SourceFile::new(
                        PathBuf::from(shown.replace('\\', "/")),
                        f.text.clone(),
                        f.order(),
                    ))
                })
                .clone()
        });
        Origin { file, loc: o.loc }
    };
    let diagnostics = e
        .diagnostics
        .iter()
        .map(|d| {
            let mut out = Diagnostic::new(origin(&d.origin), d.message.replace(prefix, "[DIR]"));
            out.help = d.help.as_ref().map(|h| h.replace(prefix, "[DIR]"));
            for r in &d.related {
                out = out.with_related(r.label.replace(prefix, "[DIR]"), origin(&r.origin));
            }
            out
        })
        .collect();
    SpecError { diagnostics }
}

/// Strips a leading newline and the common indentation, so documents can be
/// written indented inside test code. Line 1 is the first line after the
/// opening quote's newline.
pub fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    // The closing quote's indentation is not a line of the document.
    let text = text.trim_end_matches(' ');
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The file name (last component) of a diagnostic's origin.
pub fn file_name(o: &Origin) -> String {
    o.path()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One line per diagnostic: `file:line:col: message`, for failure messages.
pub fn list(e: &SpecError) -> String {
    e.diagnostics
        .iter()
        .map(|d| {
            format!(
                "  {}:{}:{}: {}",
                file_name(&d.origin),
                d.origin.loc.line,
                d.origin.loc.column,
                d.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `e` holds a diagnostic in `file` at `line:col` whose message
/// contains `needle`; returns it.
#[track_caller]
pub fn expect_at<'a>(
    e: &'a SpecError,
    file: &str,
    line: u32,
    col: u32,
    needle: &str,
) -> &'a Diagnostic {
    match e.diagnostics.iter().find(|d| {
        file_name(&d.origin) == file
            && d.origin.loc.line == line
            && d.origin.loc.column == col
            && d.message.contains(needle)
    }) {
        Some(d) => d,
        None => panic!(
            "no diagnostic `{needle}` at {file}:{line}:{col}; got:\n{}",
            list(e)
        ),
    }
}

/// Asserts that `e` holds a diagnostic (anywhere) whose message contains
/// `needle`; returns it.
#[track_caller]
pub fn expect_msg<'a>(e: &'a SpecError, needle: &str) -> &'a Diagnostic {
    match e.diagnostics.iter().find(|d| d.message.contains(needle)) {
        Some(d) => d,
        None => panic!("no diagnostic `{needle}`; got:\n{}", list(e)),
    }
}
