//! Reading files: directory walks, size budgets, YAML parsing per document.
//!
//! A file may hold several documents of different kinds. The YAML is read
//! once to find each document's kind and where it starts, then each document
//! is parsed on its own into its kind's type, so one broken document does not
//! hide errors in the next, and every position stays exact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diagnostic, Loc, Origin, Sink, SourceFile};
use super::raw::{ControllerDocument, FleetDocument, Header, PlacementDocument, Sp};
use super::split::FastRead;

/// The one supported `apiVersion`.
pub const API_VERSION: &str = "berth/v1";
/// The supported kinds.
pub const KINDS: [&str; 3] = ["Placement", "Controller", "Fleet"];

/// Largest file berth reads as a document (bytes): room for a Fleet or
/// Placement of well over 100,000 VMs in one file.
pub const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;
/// Largest total size of all files of one load (bytes).
pub const MAX_TOTAL_BYTES: u64 = 512 * 1024 * 1024;
/// Most files one load reads.
pub const MAX_FILES: usize = 20_000;
/// Deepest directory nesting a walk descends into.
const MAX_DEPTH: usize = 32;

/// A parsed document and where it came from.
#[derive(Debug)]
pub(crate) struct ParsedDoc {
    pub ctx: DocCtx,
    pub body: DocBody,
}

/// The three kinds of document.
#[derive(Debug)]
pub(crate) enum DocBody {
    Placement(Box<PlacementDocument>),
    Controller(Box<ControllerDocument>),
    Fleet(Box<FleetDocument>),
}

/// Maps positions inside one document back to its file.
#[derive(Debug, Clone)]
pub(crate) struct DocCtx {
    pub file: Arc<SourceFile>,
    /// Lines before the document's first line.
    pub line_offset: u32,
    /// Bytes before the document's first byte.
    pub byte_offset: usize,
}

impl DocCtx {
    /// The file position of a position read inside this document.
    pub fn origin(&self, loc: Loc) -> Origin {
        if !loc.is_known() {
            return Origin::new(&self.file, Loc::default());
        }
        Origin::new(
            &self.file,
            Loc {
                line: loc.line.saturating_add(self.line_offset),
                column: loc.column,
                offset: loc.offset.saturating_add(self.byte_offset),
                len: loc.len,
            },
        )
    }

    /// The file position of a spanned value.
    pub fn at<T>(&self, sp: &Sp<T>) -> Origin {
        self.origin(sp.loc)
    }
}

/// Expands the given paths into the files to read, in order.
pub(crate) fn discover(paths: &[PathBuf], sink: &mut Sink) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let before = files.len();
                walk(path, 0, &mut files, sink);
                if files.len() == before {
                    sink.push(Diagnostic::new(
                        Origin::default(),
                        format!("no *.yaml or *.yml files in directory {}", path.display()),
                    ));
                }
            }
            Ok(_) => files.push(path.clone()),
            Err(e) => sink.push(Diagnostic::new(
                Origin::default(),
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }
    files
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, sink: &mut Sink) {
    if depth > MAX_DEPTH {
        sink.push(Diagnostic::new(
            Origin::default(),
            format!(
                "{} is nested more than {MAX_DEPTH} directories deep",
                dir.display()
            ),
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            sink.push(Diagnostic::new(
                Origin::default(),
                format!("cannot read directory {}: {e}", dir.display()),
            ));
            return;
        }
    };
    let mut children: Vec<(String, PathBuf, std::fs::FileType)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Ok(ft) = entry.file_type() {
            children.push((name, entry.path(), ft));
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, path, ft) in children {
        if files.len() >= MAX_FILES {
            sink.push(Diagnostic::new(
                Origin::default(),
                format!("more than {MAX_FILES} files below {}", dir.display()),
            ));
            return;
        }
        if ft.is_dir() {
            walk(&path, depth + 1, files, sink);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            // Symlinked files are followed; symlinked directories are not
            // (`ft` does not follow links), which keeps walks finite.
            if ft.is_symlink()
                && std::fs::metadata(&path)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
            {
                continue;
            }
            files.push(path);
        }
    }
}

/// Reads one file's bytes into `buf` (its old content dropped, its room
/// reused), counting its size against `total`, the budget of the whole load
/// (shared by the reading threads); `false`, with the problem in `sink`,
/// when it cannot be read. [`source_file`] makes the file of the bytes: two
/// steps, so a caller that holds the file's last text compares the bytes
/// with it first, and an unchanged file is not made again.
pub(crate) fn read_bytes(
    path: &Path,
    total: &std::sync::Mutex<u64>,
    sink: &mut Sink,
    buf: &mut Vec<u8>,
) -> bool {
    let display = path.display();
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => {
            sink.error(Origin::default(), format!("cannot read {display}: {e}"));
            return false;
        }
    };
    if size > MAX_FILE_BYTES {
        sink.error(
            Origin::default(),
            format!(
                "{display} is {:.1} MiB, over the {} MiB limit for a document file",
                size as f64 / 1_048_576.0,
                MAX_FILE_BYTES / 1_048_576
            ),
        );
        return false;
    }
    let over = match total.lock() {
        Ok(mut total) => {
            *total += size;
            *total > MAX_TOTAL_BYTES
        }
        Err(_) => true,
    };
    if over {
        sink.error(
            Origin::default(),
            format!(
                "the documents add up to more than {} MiB; refusing to read {display}",
                MAX_TOTAL_BYTES / 1_048_576
            ),
        );
        return false;
    }
    // `size` is at most MAX_FILE_BYTES, so it fits; one byte more shows a
    // file that grew while being read.
    buf.clear();
    buf.reserve(usize::try_from(size).unwrap_or(0).saturating_add(1));
    match read_capped(path, buf) {
        Ok(()) => true,
        Err(e) => {
            sink.error(Origin::default(), format!("cannot read {display}: {e}"));
            false
        }
    }
}

/// The file read at `order` from `bytes`, or `None` (with the problem in
/// `sink`) when they are not text.
pub(crate) fn source_file(
    path: &Path,
    order: usize,
    bytes: Vec<u8>,
    sink: &mut Sink,
) -> Option<Arc<SourceFile>> {
    match text_or_binary(bytes) {
        Ok(text) => Some(Arc::new(SourceFile::new(path.to_path_buf(), text, order))),
        Err(binary) => {
            // The file is not quoted: a binary file's bytes (NUL, escape
            // sequences) must not reach a terminal, and kilobytes of them
            // explain nothing. The source is left empty, so the diagnostic
            // names the position and shows no snippet.
            let file = Arc::new(SourceFile::new(path.to_path_buf(), String::new(), order));
            sink.push(
                Diagnostic::new(
                    Origin::new(&file, binary.loc),
                    format!(
                        "not a YAML text file: it holds {} here; binary files are refused and not shown",
                        binary.what
                    ),
                )
                .with_help("berth reads UTF-8 YAML text; is this the right file?"),
            );
            None
        }
    }
}

/// Where a file stops being text.
struct Binary {
    loc: Loc,
    what: &'static str,
}

/// The file's text, or where it stops being text: the first byte that is
/// not valid UTF-8, or the first NUL, whichever comes first.
fn text_or_binary(bytes: Vec<u8>) -> Result<String, Binary> {
    let (bytes, bad, what) = match String::from_utf8(bytes) {
        Ok(text) => match text.find('\0') {
            None => return Ok(text),
            Some(n) => (text.into_bytes(), n, "a NUL byte"),
        },
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            match bytes[..valid].iter().position(|&b| b == 0) {
                Some(n) => (bytes, n, "a NUL byte"),
                None => (bytes, valid, "a byte that is not valid UTF-8"),
            }
        }
    };
    let prefix = String::from_utf8_lossy(&bytes[..bad]);
    let line = prefix.matches('\n').count() + 1;
    let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(Binary {
        loc: Loc {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            offset: bad,
            len: 1,
        },
        what,
    })
}

/// Reads at most `MAX_FILE_BYTES + 1` bytes, so a file that grows while being
/// read (or lies about its size) cannot exhaust memory.
fn read_capped(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    file.take(MAX_FILE_BYTES + 1).read_to_end(buf)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "file is over the {} MiB limit",
            MAX_FILE_BYTES / 1_048_576
        )));
    }
    Ok(())
}

/// Deepest nesting of mappings and lists in a document.
pub(crate) const MAX_DEPTH_NODES: usize = 48;

/// The parser's event budget for a document of `bytes` bytes: one event a
/// byte, and never less than 4 million. Without aliases a document cannot
/// produce more events than that (every node takes at least a byte or two
/// of text), so only alias amplification and pathological compact input hit
/// it; the file size limit bounds it.
pub(crate) fn scaled_events(bytes: usize) -> usize {
    bytes.max(4_000_000)
}

/// The parser options for a document of `bytes` bytes: strict where YAML
/// is surprising, budgets on. Counts scale with the document's size (a
/// 100,000-VM Fleet has millions of nodes), bounded by the file size limit;
/// aliases and anchors stay fixed, small caps.
fn options(bytes: usize) -> serde_saphyr::Options {
    serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_events: scaled_events(bytes),
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_depth: MAX_DEPTH_NODES,
            max_documents: 1_024,
            max_nodes: (bytes / 2).max(2_000_000),
            max_total_scalar_bytes: bytes.max(16 * 1024 * 1024),
            max_merge_keys: 1_000,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 4 * 1024 * 1024,
        },
    }
}

/// Parses every document of a file; problems go to `sink`.
pub(crate) fn parse_file(file: &Arc<SourceFile>, sink: &mut Sink) -> Vec<ParsedDoc> {
    if let Some(plain) = prescan(&file.text) {
        return parse_plain(file, &plain, sink);
    }
    parse_careful(file, sink)
}

/// A document found by [`prescan`]: its first line (1-based), the line
/// after its last, and its kind.
struct PlainDoc {
    first_line: usize,
    end_line: usize,
    kind: &'static str,
}

/// Finds documents and their kinds without a YAML parser, for the common
/// shape: `---` lines between documents, `apiVersion: berth/v1` and a known
/// `kind:` as top-level keys at column 0. Anything else (flow-style roots,
/// directives, `...`, content after `---`, unknown kinds or versions,
/// repeated keys) returns `None`, and the file takes the careful path,
/// which parses it twice but explains every problem precisely. A wrong
/// guess here cannot hide an error: the document is still parsed in full.
fn prescan(text: &str) -> Option<Vec<PlainDoc>> {
    fn value(line: &str, key: &str) -> Option<Option<String>> {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let v = rest.split(" #").next().unwrap_or("").trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        Some(Some(v.to_string()))
    }
    struct Open {
        first_line: usize,
        content: bool,
        api: Option<String>,
        kind: Option<String>,
        repeated: bool,
    }
    let close = |o: Open, end_line: usize, out: &mut Vec<PlainDoc>| -> Option<()> {
        if !o.content {
            return Some(());
        }
        if o.repeated || o.api.as_deref() != Some(API_VERSION) {
            return None;
        }
        let kind = KINDS.iter().find(|k| o.kind.as_deref() == Some(**k))?;
        out.push(PlainDoc {
            first_line: o.first_line,
            end_line,
            kind,
        });
        Some(())
    };
    let mut out = Vec::new();
    let mut open = Open {
        first_line: 1,
        content: false,
        api: None,
        kind: None,
        repeated: false,
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let n = i + 1;
        if let Some(rest) = line.strip_prefix("---") {
            let after = rest.trim_start();
            let separated = rest.is_empty() || rest.starts_with([' ', '\t']);
            if !separated || !(after.is_empty() || after.starts_with('#')) {
                return None;
            }
            let prev = std::mem::replace(
                &mut open,
                Open {
                    first_line: n,
                    content: false,
                    api: None,
                    kind: None,
                    repeated: false,
                },
            );
            close(prev, n, &mut out)?;
            continue;
        }
        if line.starts_with("...") || line.starts_with('%') || line.starts_with('\u{feff}') {
            return None;
        }
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !open.content && line.starts_with(['{', '[', '"', '\'', '!', '&', '*', '?']) {
            return None;
        }
        open.content = true;
        if let Some(v) = value(line, "apiVersion") {
            open.repeated |= open.api.is_some();
            open.api = v;
        } else if let Some(v) = value(line, "kind") {
            open.repeated |= open.kind.is_some();
            open.kind = v;
        }
    }
    let total = text.split('\n').count() + 1;
    close(open, total, &mut out)?;
    Some(out)
}

fn parse_plain(file: &Arc<SourceFile>, docs: &[PlainDoc], sink: &mut Sink) -> Vec<ParsedDoc> {
    let line_starts = line_starts(&file.text);
    let offset = |line: usize| {
        line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(file.text.len())
    };
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let (begin, end) = (offset(d.first_line), offset(d.end_line));
        let ctx = DocCtx {
            file: file.clone(),
            line_offset: (d.first_line - 1) as u32,
            byte_offset: begin,
        };
        let text = &file.text[begin..end.max(begin)];
        let body = match d.kind {
            "Placement" => parse_as::<PlacementDocument>(&ctx, text, "Placement", sink)
                .map(|d| DocBody::Placement(Box::new(d))),
            "Controller" => parse_as::<ControllerDocument>(&ctx, text, "Controller", sink)
                .map(|d| DocBody::Controller(Box::new(d))),
            _ => parse_as::<FleetDocument>(&ctx, text, "Fleet", sink)
                .map(|d| DocBody::Fleet(Box::new(d))),
        };
        if let Some(body) = body {
            out.push(ParsedDoc { ctx, body });
        }
    }
    out
}

/// Parses a file whose shape the pre-scan did not recognise: once to find
/// each document's kind and position, then each document into its type.
fn parse_careful(file: &Arc<SourceFile>, sink: &mut Sink) -> Vec<ParsedDoc> {
    let whole = DocCtx {
        file: file.clone(),
        line_offset: 0,
        byte_offset: 0,
    };
    let headers: Vec<Sp<Header>> =
        match serde_saphyr::from_multiple_with_options(&file.text, options(file.text.len())) {
            Ok(h) => h,
            Err(e) => {
                sink.push(yaml_error(&whole, &e));
                return Vec::new();
            }
        };
    let line_starts = line_starts(&file.text);
    let lines: Vec<&str> = file.text.split('\n').collect();
    // First line (1-based) of each document's slice.
    let mut starts = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let root = h.loc.line.max(1) as usize;
        if i == 0 {
            starts.push(1);
            continue;
        }
        let prev = *starts.last().unwrap_or(&1);
        let mut start = root;
        if !lines.get(root - 1).is_some_and(|l| l.starts_with("---")) {
            let mut l = root - 1;
            while l > prev {
                if lines.get(l - 1).is_some_and(|t| t.starts_with("---")) {
                    start = l;
                    break;
                }
                l -= 1;
            }
        }
        starts.push(start.max(prev + 1));
    }
    let mut docs = Vec::with_capacity(headers.len());
    for (i, header) in headers.iter().enumerate() {
        let first_line = starts[i];
        let begin = line_starts
            .get(first_line - 1)
            .copied()
            .unwrap_or(file.text.len());
        let end = starts
            .get(i + 1)
            .and_then(|l| line_starts.get(l - 1).copied())
            .unwrap_or(file.text.len());
        let ctx = DocCtx {
            file: file.clone(),
            line_offset: (first_line - 1) as u32,
            byte_offset: begin,
        };
        let text = &file.text[begin..end.max(begin)];
        if let Some(body) = parse_document(&whole, &ctx, header, text, sink) {
            docs.push(ParsedDoc { ctx, body });
        }
    }
    docs
}

fn parse_document(
    whole: &DocCtx,
    ctx: &DocCtx,
    header: &Sp<Header>,
    text: &str,
    sink: &mut Sink,
) -> Option<DocBody> {
    let doc_origin = whole.at(header);
    let Some(api) = &header.value.api_version else {
        sink.push(
            Diagnostic::new(doc_origin, "document has no `apiVersion`")
                .with_help(format!("add `apiVersion: {API_VERSION}`")),
        );
        return None;
    };
    if api.value != API_VERSION {
        sink.push(
            Diagnostic::new(
                whole.at(api),
                format!("unsupported apiVersion `{}`", api.value),
            )
            .with_help(format!("the supported apiVersion is `{API_VERSION}`")),
        );
        return None;
    }
    let Some(kind) = &header.value.kind else {
        sink.push(
            Diagnostic::new(doc_origin, "document has no `kind`")
                .with_help(format!("add `kind:` with one of {}", KINDS.join(", "))),
        );
        return None;
    };
    match kind.value.as_str() {
        "Placement" => parse_as::<PlacementDocument>(ctx, text, "Placement", sink)
            .map(|d| DocBody::Placement(Box::new(d))),
        "Controller" => parse_as::<ControllerDocument>(ctx, text, "Controller", sink)
            .map(|d| DocBody::Controller(Box::new(d))),
        "Fleet" => {
            parse_as::<FleetDocument>(ctx, text, "Fleet", sink).map(|d| DocBody::Fleet(Box::new(d)))
        }
        other => {
            let mut d = Diagnostic::new(whole.at(kind), format!("unsupported kind `{other}`"));
            d = match closest(other, KINDS.iter().copied()) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(format!("the supported kinds are {}", KINDS.join(", "))),
            };
            sink.push(d);
            None
        }
    }
}

fn parse_as<T: FastRead>(ctx: &DocCtx, text: &str, kind: &str, sink: &mut Sink) -> Option<T> {
    // Well-formed documents take the fast path; anything it does not read
    // exactly as the careful path would, it leaves to the careful path.
    if fast_path_on()
        && let Ok(v) = T::read_fast(text, super::fast::Budget::for_bytes(text.len()))
    {
        return Some(v);
    }
    match serde_saphyr::from_str_with_options::<T>(text, options(text.len())) {
        Ok(v) => Some(v),
        Err(e) => {
            // serde stops at the first problem; look for all of them.
            let first = yaml_error(ctx, &e);
            let before = sink.len();
            let found = super::structure::check(ctx, text, kind, options(text.len()), sink);
            // A diagnostic at the parser's line, or one that points at it
            // (a mis-indented field names the entry that lacks it).
            // An entry's field indented to its parent's level reads as an
            // unknown field of the parent: say what happened instead.
            super::structure::unknown_as_misindented(ctx, text, sink, before);
            let line = first.origin.loc.line;
            let covered = found > 0
                && sink.diagnostics()[before..].iter().any(|d| {
                    d.origin.loc.line == line || d.related.iter().any(|r| r.origin.loc.line == line)
                });
            if !covered {
                match super::structure::misindented_in_text(ctx, text, &first)
                    .or_else(|| super::structure::misindented_at_error(ctx, text, &first))
                {
                    Some(d) => sink.push(d),
                    None => sink.push(first),
                }
            }
            None
        }
    }
}

#[cfg(not(test))]
fn fast_path_on() -> bool {
    true
}

#[cfg(test)]
thread_local! {
    /// Tests compare the fast path against the careful path alone.
    pub(crate) static CAREFUL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn fast_path_on() -> bool {
    !CAREFUL_ONLY.with(std::cell::Cell::get)
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    v
}

/// Turns a parser error into a positioned diagnostic with a hint.
fn yaml_error(ctx: &DocCtx, e: &serde_saphyr::Error) -> Diagnostic {
    let loc = e.location().map_or(Loc::default(), |l| {
        let span = l.span();
        let line = u32::try_from(l.line()).unwrap_or(0);
        let column = u32::try_from(l.column()).unwrap_or(0);
        Loc {
            line,
            column,
            // Syntax errors come without a byte span: derive it from the
            // line and column, or the snippet would point at the top.
            offset: span
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or_else(|| offset_of(ctx, line, column)),
            len: span
                .byte_len()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or(1)
                .max(1),
        }
    });
    let message = strip_location(&e.to_string());
    let message = budget_message(&message).unwrap_or(message);
    let origin = ctx.origin(loc);
    if let Some((field, expected)) = unknown_field(&message) {
        let mut d = Diagnostic::new(origin, format!("unknown field `{field}`"));
        d = match closest(&field, expected.iter().map(String::as_str)) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None if expected.is_empty() => d,
            None => d.with_help(format!("expected one of: {}", expected.join(", "))),
        };
        return d;
    }
    if message.contains("mapping values are not allowed") {
        // What a key indented deeper than its siblings looks like to YAML.
        return Diagnostic::new(origin, message).with_help(
            "check this line's indentation: a field lines up with the other fields of its entry",
        );
    }
    Diagnostic::new(origin, message)
}

/// Byte offset within the document of a 1-based line and column
/// (in characters).
fn offset_of(ctx: &DocCtx, line: u32, column: u32) -> usize {
    let text = ctx.file.text.get(ctx.byte_offset..).unwrap_or("");
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let rest = text.get(start..).unwrap_or("");
    let line_text = rest.split('\n').next().unwrap_or("");
    let col = line_text
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map_or(line_text.len(), |(i, _)| i);
    start + col
}

/// Removes the position suffixes the parser appends (" at line N, column M",
/// " (defined at line N, column M)", " (used at line N, column M)"); the
/// diagnostic carries its position itself.
fn strip_location(message: &str) -> String {
    fn is_line_column(t: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        t.strip_prefix("line ")
            .and_then(|r| r.split_once(", column "))
            .is_some_and(|(l, c)| digits(l) && digits(c))
    }
    let mut s = message.lines().next().unwrap_or(message).trim_end();
    'strip: loop {
        for (open, close) in [(" (used at ", ")"), (" (defined at ", ")"), (" at ", "")] {
            if let Some(i) = s.rfind(open) {
                let tail = &s[i + open.len()..];
                if tail.strip_suffix(close).is_some_and(is_line_column) {
                    s = s[..i].trim_end();
                    continue 'strip;
                }
            }
        }
        return s.to_string();
    }
}

/// A readable message for a breached parser budget ("budget breached:
/// RecordedAnchorEvents { .. }"), which is how hostile input is refused.
fn budget_message(message: &str) -> Option<String> {
    let what = message.strip_prefix("budget breached: ")?;
    let limit = what.split([' ', '{']).next().unwrap_or(what);
    let reason = match limit {
        "Aliases"
        | "Anchors"
        | "AliasAnchorRatio"
        | "RecordedAnchorEvents"
        | "RecordedAnchorBytes"
        | "MergeKeys" => "expands too many aliases (an alias bomb?)",
        "Depth" => "is nested too deeply",
        "Documents" => "holds too many documents",
        _ => "is too large",
    };
    Some(format!(
        "refused: the YAML {reason}; berth caps aliases, nesting and size (limit `{limit}` exceeded)"
    ))
}

/// Splits "unknown field `x`, expected one of a, b" into (x, [a, b]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected")
        .map(|(_, list)| {
            list.split([',', ' ', '`'])
                .map(str::trim)
                .filter(|w| !w.is_empty() && !matches!(*w, "one" | "of" | "or"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some((field.to_string(), expected))
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_parser_location_suffix() {
        assert_eq!(
            strip_location("invalid u32 at line 3, column 9"),
            "invalid u32"
        );
        assert_eq!(strip_location("plain message"), "plain message");
        assert_eq!(
            strip_location("invalid u16 (defined at line 1, column 10) (used at line 3, column 7)"),
            "invalid u16"
        );
        assert_eq!(
            strip_location(
                "budget breached: X at line 4, column 68 (defined at line 7, column 11) (used at line 11, column 8)"
            ),
            "budget breached: X"
        );
        assert_eq!(strip_location("look at line 3"), "look at line 3");
    }

    #[test]
    fn budget_breaches_read_as_refusals() {
        let m = budget_message("budget breached: Aliases { aliases: 1001 }").expect("a budget");
        assert!(m.contains("alias bomb"), "{m}");
        assert!(m.contains("`Aliases`"), "{m}");
        assert_eq!(budget_message("invalid u16"), None);
    }

    #[test]
    fn parses_unknown_field_messages() {
        let (f, e) = unknown_field("unknown field `hsot`, expected one of name, host, weight")
            .expect("recognised");
        assert_eq!(f, "hsot");
        assert_eq!(e, ["name", "host", "weight"]);
        assert_eq!(closest("hsot", e.iter().map(String::as_str)), Some("host"));
        assert_eq!(closest("zzzzzz", e.iter().map(String::as_str)), None);
    }
}

#[cfg(test)]
mod prescan_tests {
    use super::prescan;

    #[test]
    fn recognises_ordinary_files_and_defers_unusual_ones() {
        let ok = "# yaml-language-server: $schema=x\napiVersion: berth/v1\nkind: Placement\nspec: {}\n---\n# c\napiVersion: \"berth/v1\"\nkind: Fleet # world\nspec: {}\n";
        let docs = prescan(ok).expect("ordinary");
        let found: Vec<_> = docs
            .iter()
            .map(|d| (d.first_line, d.end_line, d.kind))
            .collect();
        assert_eq!(found, vec![(1, 5, "Placement"), (5, 11, "Fleet")]);
        for unusual in [
            "{apiVersion: berth/v1, kind: Placement}\n",
            "apiVersion: berth/v1\nkind: Placment\n",
            "apiVersion: berth/v2\nkind: Placement\n",
            "kind: Placement\n",
            "apiVersion: berth/v1\nkind: Placement\nkind: Fleet\n",
            "--- !x\napiVersion: berth/v1\nkind: Placement\n",
            "%YAML 1.2\n---\napiVersion: berth/v1\nkind: Placement\n",
            "apiVersion: berth/v1\nkind: Placement\n...\n",
        ] {
            assert!(prescan(unusual).is_none(), "{unusual:?}");
        }
        assert_eq!(prescan("# only a comment\n").map(|d| d.len()), Some(0));
    }
}
