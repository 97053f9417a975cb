//! Reading one large document's `spec.vms` list on several threads.
//!
//! The loader reads files in parallel, one file per worker, but a
//! simulated world of 100,000 VMs is one Fleet document of some 37 MiB:
//! one thread reading it was the longest step of `berth plan`. So the fast
//! path reads a large document in parts when its text has the plain shape
//! berth and its users write: a `spec:` line at column 0, then, as the last
//! key of that mapping, a `vms:` line followed by block list items
//! (`- ` at one column `j`) up to the end of the document. The items are
//! cut into parts at lines that start an item, each part is read on its
//! own thread as a list, the rest of the document (its head, with
//! `vms: []`) on the calling thread, and the lists are joined.
//!
//! A split must never read differently from the whole document, and where
//! it could it gives up and the document is read whole, as before (fast,
//! then careful with its diagnostics). Why a successful split reads the
//! same:
//!
//! - The head is the document's text up to the `vms` key, then ` []`. The
//!   head's reader checks that this `[]` is read as a list, as the value of
//!   `vms` in the mapping that is `spec`'s value in the root mapping
//!   ([`fast::read_head`]); so `vms:` is not text inside a scalar (a quoted
//!   scalar left open there would also leave the head unterminated). The
//!   `vms:` line holds nothing else but a comment, so in the document the
//!   key's value is what the following lines hold.
//! - Every line after the `vms:` line is blank, a comment, indented past
//!   `j`, or an item start at `j` (checked line by line): no line can end
//!   the list, so it is the last value of `spec`, and `spec` the last of
//!   the document, and the head's events are the document's but for the
//!   list.
//! - A part starts at a line that starts an item; read on its own, it is a
//!   list at column `j` as in the document. If a cut fell inside a quoted
//!   scalar or a flow collection (a line inside one may look like an item
//!   start), the part before it ends inside it and gives up; a block
//!   scalar's or plain scalar's lines are indented past the node that holds
//!   it, which is the list at `j` or deeper, so a line at `j` ends it. A
//!   part is read with the depth of the list in the document, its
//!   positions moved by the lines and bytes before it (a part starts at a
//!   line start, so columns stay), and the events of the parts and the
//!   head together must fit the document's budget, counted as one read
//!   would count them.
//! - Only what lies outside the list differs between a part and the
//!   document. Inside an item, saphyr-parser checks indentation against the
//!   innermost block collection, which is the list or deeper in both; and
//!   the lines indented less than `j` that are let through are blanks and
//!   comments, which end nothing.
//! - Lone carriage returns (line breaks to YAML, not to a line scan) are
//!   refused; the printable check covers every byte: the head, the rest of
//!   the `vms:` line, and every part.

use std::thread;

use serde::de::DeserializeOwned;

use super::fast::{self, Budget, GiveUp, Place};
use super::raw::{ControllerDocument, FleetDocument, PlacementDocument};

/// Documents smaller than this are read whole (bytes).
pub(crate) const SPLIT_BYTES: usize = 4 << 20;

/// The smallest part worth a thread of its own (bytes).
const PART_BYTES: usize = 1 << 20;

/// The mappings around `spec.vms`'s list: the root's and `spec`'s.
const LIST_DEPTH: usize = 2;

/// Events a part counts that a whole read does not: its stream's and
/// document's starts and ends, and its own list's start and end (which in
/// the whole document replace those of the head's `[]`).
const PART_EVENTS: usize = 6;

/// Why a split gives up when a line may end the list (tests look at it).
const ENDS_THE_LIST: &str = "a line that may end the list, before any part is read";

/// When to split a document, and how finely.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Documents smaller than this (bytes) are read whole.
    pub min_doc: usize,
    /// The smallest part (bytes).
    pub min_part: usize,
    /// The most parts.
    pub parts: usize,
}

impl Sizes {
    /// [`SPLIT_BYTES`], parts of [`PART_BYTES`] or more, and two parts a
    /// core, so a core that finishes early takes another; one core reads
    /// documents whole.
    pub fn standard() -> Self {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        Sizes {
            min_doc: SPLIT_BYTES,
            min_part: PART_BYTES,
            parts: if cores > 1 { cores * 2 } else { 1 },
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests split small documents into small parts.
    pub(crate) static TEST_SIZES: std::cell::Cell<Option<Sizes>> =
        const { std::cell::Cell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// How many documents were read in parts, for tests that must not
    /// pass by never splitting.
    pub(crate) static SPLITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn sizes() -> Sizes {
    TEST_SIZES
        .with(std::cell::Cell::get)
        .unwrap_or_else(Sizes::standard)
}

#[cfg(not(test))]
fn sizes() -> Sizes {
    Sizes::standard()
}

/// How the fast path reads a kind of document.
pub(crate) trait FastRead: DeserializeOwned {
    /// Reads a document, or gives up (see [`fast::from_str`]).
    fn read_fast(text: &str, budget: Budget) -> Result<Self, GiveUp> {
        fast::from_str(text, budget)
    }
}

impl FastRead for ControllerDocument {}

impl FastRead for FleetDocument {
    fn read_fast(text: &str, budget: Budget) -> Result<Self, GiveUp> {
        read(text, budget, sizes(), |d: &mut Self, vms| {
            d.spec.value.vms = vms
        })
    }
}

impl FastRead for PlacementDocument {
    fn read_fast(text: &str, budget: Budget) -> Result<Self, GiveUp> {
        read(text, budget, sizes(), |d: &mut Self, vms| {
            d.spec.value.vms = vms
        })
    }
}

/// Reads a document on the fast path, its `spec.vms` list in parts when
/// the document is large and plainly shaped, else whole. `set_vms` puts
/// the list into the document read without it. Reads what the whole
/// document's fast read reads, and gives up where it does.
pub(crate) fn read<T, V>(
    text: &str,
    budget: Budget,
    sizes: Sizes,
    set_vms: impl FnOnce(&mut T, Vec<V>),
) -> Result<T, GiveUp>
where
    T: DeserializeOwned,
    V: DeserializeOwned + Send,
{
    if text.len() >= sizes.min_doc
        && let Ok(doc) = read_split(text, budget, sizes, set_vms)
    {
        #[cfg(test)]
        SPLITS.with(|n| n.set(n.get() + 1));
        return Ok(doc);
    }
    fast::from_str(text, budget)
}

/// Where the head and the items of a plainly shaped document are.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    /// The byte after the `vms` key's colon: the head is the text before
    /// it, then ` []`.
    head_end: usize,
    /// The start of the line after the `vms:` line, where the items begin.
    items: usize,
    /// The start of the first item's line (after blanks and comments).
    first_item: usize,
    /// The column of the items' `-`.
    indent: usize,
}

/// Reads a document with its `spec.vms` list in parts, or gives up (then
/// the caller reads it whole).
fn read_split<T, V>(
    text: &str,
    budget: Budget,
    sizes: Sizes,
    set_vms: impl FnOnce(&mut T, Vec<V>),
) -> Result<T, GiveUp>
where
    T: DeserializeOwned,
    V: DeserializeOwned + Send,
{
    let not = |why: &str| GiveUp(why.to_string());
    let shape = shape(text).ok_or_else(|| not("not the plain shape"))?;
    let parts = parts(text, shape, sizes);
    if parts.len() < 2 {
        return Err(not("too little to split"));
    }
    let before = &text[..shape.items];
    let vms_line = &text[shape.head_end..shape.items];
    if lone_cr(before) || !fast::printable(vms_line) {
        return Err(not("a line break or character the scan does not follow"));
    }
    // First each part's lines are checked and counted, then the parts are
    // read knowing the lines before them.
    let (counts, head_lines) = on_threads(
        text,
        &parts,
        |_, part| check_lines(part, shape.indent),
        || count_lines(before),
    );
    let mut lines = head_lines as u64;
    let mut places = Vec::with_capacity(parts.len());
    for (&(start, _), count) in parts.iter().zip(counts) {
        let count = count.ok_or_else(|| not(ENDS_THE_LIST))?;
        places.push(Place {
            line: lines,
            byte: start as u64,
            depth: LIST_DEPTH,
        });
        lines += count as u64;
    }
    let (read, head) = on_threads(
        text,
        &parts,
        |i, part| fast::read_part::<Vec<V>>(part, budget, places[i]),
        || {
            let mut head = String::with_capacity(shape.head_end + 4);
            head.push_str(&text[..shape.head_end]);
            head.push_str(" []\n");
            fast::read_head::<T>(&head, budget, shape.head_end + 1)
        },
    );
    let head = head?;
    let read = read.into_iter().collect::<Result<Vec<_>, _>>()?;
    let events = read.iter().fold(head.events, |n, part| {
        n + part.events.saturating_sub(PART_EVENTS)
    });
    if events > budget.events {
        return Err(not("event budget"));
    }
    let mut vms = Vec::with_capacity(read.iter().map(|part| part.value.len()).sum());
    for part in read {
        vms.extend(part.value);
    }
    let mut doc = head.value;
    set_vms(&mut doc, vms);
    Ok(doc)
}

/// Runs `f` on each part of `text`, each on a thread of its own, and
/// `meanwhile` on the calling thread; `f`'s answers in the parts' order.
fn on_threads<R: Send, M>(
    text: &str,
    parts: &[(usize, usize)],
    f: impl Fn(usize, &str) -> R + Sync,
    meanwhile: impl FnOnce() -> M,
) -> (Vec<R>, M) {
    let f = &f;
    thread::scope(|s| {
        let threads: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| {
                let part = &text[start..end];
                s.spawn(move || f(i, part))
            })
            .collect();
        let m = meanwhile();
        let answers = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (answers, m)
    })
}

/// Finds the head and the items of a plainly shaped document: a `spec:`
/// line at column 0, then (before any other line at column 0) a `vms:`
/// line indented by `k > 0`, then, first after blanks and comments, an item
/// start indented by `j >= k`. Each key line holds nothing more but a
/// comment. What the scan cannot see (scalars, flow collections) the reads
/// check.
fn shape(text: &str) -> Option<Shape> {
    let mut lines = Lines { text, at: 0 };
    lines.find(|&(_, line)| key_line(line, "spec") == Some(0))?;
    let (vms_start, k) = loop {
        let (start, line) = lines.next()?;
        if !matters(line) {
            continue;
        }
        if indent(line) == 0 {
            // `spec` ended before a `vms` key.
            return None;
        }
        if let Some(k) = key_line(line, "vms") {
            break (start, k);
        }
    };
    let items = lines.at;
    let (first_item, first) = lines.find(|&(_, line)| matters(line))?;
    let j = indent(first);
    if j < k || !item_start(&first[j..]) {
        return None;
    }
    Some(Shape {
        head_end: vms_start + k + "vms:".len(),
        items,
        first_item,
        indent: j,
    })
}

/// The lines of a text with their start, without their line break
/// (`\n` or `\r\n`).
struct Lines<'a> {
    text: &'a str,
    /// Where the next line starts.
    at: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let start = self.at;
        let rest = self.text.get(start..).filter(|r| !r.is_empty())?;
        let line = match rest.find('\n') {
            Some(n) => {
                self.at = start + n + 1;
                &rest[..n]
            }
            None => {
                self.at = self.text.len();
                rest
            }
        };
        Some((start, line.strip_suffix('\r').unwrap_or(line)))
    }
}

/// The line's indentation in spaces.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether a line holds anything but blanks and a comment.
fn matters(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    !rest.is_empty() && !rest.starts_with('#')
}

/// The indentation of a line that is `key:` and at most blanks and a
/// comment after it.
fn key_line(line: &str, key: &str) -> Option<usize> {
    let n = indent(line);
    let rest = line[n..].strip_prefix(key)?.strip_prefix(':')?;
    let after = rest.trim_start_matches([' ', '\t']);
    let separated = rest.is_empty() || rest.starts_with([' ', '\t']);
    (separated && (after.is_empty() || after.starts_with('#'))).then_some(n)
}

/// Whether a line, from its indentation on, starts a block list item:
/// `-` then a space or nothing.
fn item_start(from_indent: &str) -> bool {
    from_indent
        .strip_prefix('-')
        .is_some_and(|r| r.is_empty() || r.starts_with(' '))
}

/// Whether a carriage return stands alone: a line break to YAML, not to
/// [`Lines`].
fn lone_cr(text: &str) -> bool {
    text.match_indices('\r')
        .any(|(i, _)| text.as_bytes().get(i + 1) != Some(&b'\n'))
}

/// The line breaks in a text without lone carriage returns.
fn count_lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

/// Cuts the items into parts of about equal size, each with one item or
/// more: the first from `shape.items`, the others from a line that starts
/// an item at the items' indentation; (start, end) byte ranges up to the
/// end of the text.
fn parts(text: &str, shape: Shape, sizes: Sizes) -> Vec<(usize, usize)> {
    let region = text.len() - shape.items;
    let n = sizes.parts.min(region / sizes.min_part.max(1)).max(1);
    let mut starts = vec![shape.items];
    let mut last_item = shape.first_item;
    for i in 1..n {
        let target = (shape.items + region / n * i).max(last_item + 1);
        match next_item(text, target, shape.indent) {
            Some(at) => {
                starts.push(at);
                last_item = at;
            }
            None => break,
        }
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    starts.iter().copied().zip(ends).collect()
}

/// The start of the first line at or after byte `from` that starts an item
/// at column `col`.
fn next_item(text: &str, from: usize, col: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = from;
    if at > 0 && bytes.get(at - 1) != Some(&b'\n') {
        at += bytes.get(at..)?.iter().position(|&b| b == b'\n')? + 1;
    }
    let lines = Lines { text, at };
    for (start, line) in lines {
        if indent(line) == col && item_start(&line[col..]) {
            return Some(start);
        }
    }
    None
}

/// Checks that no line of a part can end the list of items at column
/// `col`: each is blank, a comment, indented past it, or an item start at
/// it, and no carriage return stands alone. Returns the part's line breaks.
fn check_lines(part: &str, col: usize) -> Option<usize> {
    if part.as_bytes().contains(&b'\r') && lone_cr(part) {
        return None;
    }
    let mut lines = 0;
    for (_, line) in (Lines { text: part, at: 0 }) {
        lines += 1;
        let n = indent(line);
        if n > col || !matters(line) || n == col && item_start(&line[n..]) {
            continue;
        }
        return None;
    }
    // The last line has no break unless the part ends with one.
    Some(if part.ends_with('\n') {
        lines
    } else {
        lines.saturating_sub(1)
    })
}

#[cfg(test)]
#[path = "split_tests.rs"]
mod tests;
