//! Control characters from input never reach a terminal raw.
//!
//! Names, messages and source snippets can carry bytes a terminal acts on
//! (escape sequences that recolour, move the cursor or retitle the window,
//! bidirectional overrides that reorder what is shown). Everything berth
//! prints that holds input text goes through [`escape_controls`] first, which
//! shows such characters the way Rust writes them (`\u{1b}`), so they stay
//! visible and harmless.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 and C1 controls, DEL, and
/// the Unicode bidirectional controls.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character (see [`is_unsafe_char`]) written as an
/// escape (`\u{1b}`, `\0`, `\t`, `\n`); text without one is returned as is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape_with(text, |_, _| false)
}

/// Like [`escape_controls`] but keeps line breaks (`\n`, and `\r` right
/// before one) and tabs: for multi-line text such as source snippets and
/// provider messages. A lone `\r`, which would overwrite the line shown,
/// is escaped.
pub fn escape_controls_keep_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, |i, c| line_break_or_tab(text, i, c))
}

/// Whether the character at byte `i` of `text` is a tab or part of a line
/// break.
fn line_break_or_tab(text: &str, i: usize, c: char) -> bool {
    match c {
        '\n' | '\t' => true,
        '\r' => text[i + 1..].starts_with('\n'),
        _ => false,
    }
}

fn escape_with(text: &str, keep: impl Fn(usize, char) -> bool) -> Cow<'_, str> {
    if !text
        .char_indices()
        .any(|(i, c)| is_unsafe_char(c) && !keep(i, c))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (i, c) in text.char_indices() {
        if is_unsafe_char(c) && !keep(i, c) {
            let escaped = c.escape_debug();
            if escaped.clone().next() == Some('\\') {
                out.extend(escaped);
            } else {
                // escape_debug leaves some format characters as they are.
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` escaped for a source snippet, and a map from byte offsets in
/// `text` to byte offsets in the result, so highlighted ranges stay on the
/// characters they pointed at. `None` when nothing needed escaping.
pub(crate) fn escape_snippet(text: &str) -> Option<(String, Vec<(usize, usize)>)> {
    let keep = |i: usize, c: char| line_break_or_tab(text, i, c);
    if !text
        .char_indices()
        .any(|(i, c)| is_unsafe_char(c) && !keep(i, c))
    {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 16);
    // (offset in text, offset in out) at each escaped character and after it.
    let mut map = Vec::new();
    for (i, c) in text.char_indices() {
        if is_unsafe_char(c) && !keep(i, c) {
            map.push((i, out.len()));
            out.push_str(&escape_controls(c.encode_utf8(&mut [0; 4])));
            map.push((i + c.len_utf8(), out.len()));
        } else {
            out.push(c);
        }
    }
    Some((out, map))
}

/// Where byte `offset` of the original text lands in the escaped text,
/// given the map of [`escape_snippet`].
pub(crate) fn map_offset(map: &[(usize, usize)], offset: usize) -> usize {
    match map.binary_search_by(|(o, _)| o.cmp(&offset)) {
        Ok(i) => map[i].1,
        Err(0) => offset,
        Err(i) => {
            let (o, n) = map[i - 1];
            n + (offset - o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_keeps_plain_text() {
        assert_eq!(escape_controls("web-01"), "web-01");
        assert!(matches!(escape_controls("web-01"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape_controls("a\0b\tc\nd"), "a\\0b\\tc\\nd");
        assert_eq!(escape_controls("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
        assert_eq!(escape_controls("ab\u{202e}cd"), "ab\\u{202e}cd");
        assert_eq!(escape_controls_keep_lines("a\nb\u{7}"), "a\nb\\u{7}");
        assert_eq!(
            escape_controls_keep_lines("a\r\nb\rfake\tc"),
            "a\r\nb\\rfake\tc"
        );
    }

    #[test]
    fn snippet_offsets_follow_the_escapes() {
        let text = "name: a\u{1b}b\nnext: c\n";
        let (out, map) = escape_snippet(text).expect("needs escaping");
        assert_eq!(out, "name: a\\u{1b}b\nnext: c\n");
        // `b` is byte 8 before and byte 13 after.
        assert_eq!(&out[map_offset(&map, 8)..map_offset(&map, 9)], "b");
        assert_eq!(map_offset(&map, 3), 3);
        let esc = 7;
        assert_eq!(
            &out[map_offset(&map, esc)..map_offset(&map, esc + 1)],
            "\\u{1b}"
        );
        assert_eq!(&out[map_offset(&map, 10)..], "next: c\n");
        assert!(escape_snippet("plain\n").is_none());
    }
}
