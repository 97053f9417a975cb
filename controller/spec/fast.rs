//! The fast path: well-formed documents straight from parser events into
//! the raw types, several times faster than the careful path.
//!
//! The careful path (serde-saphyr, then the schema walk of `structure.rs`)
//! reads about 3.5 MiB of berth's YAML a second per core; a 100,000-VM
//! estate is over 30 MiB. This module drives the same `serde` derives of
//! `raw.rs` from the event stream of `saphyr-parser` (a maintained,
//! pure-Rust YAML 1.2 parser that works on borrowed input), with a
//! deserializer that is deliberately narrow: it accepts only what it can
//! read exactly as serde-saphyr would (plain decimal numbers, `true` and
//! `false`, text, mappings and lists) and gives up on anything else:
//! anchors, aliases, tags, `null`, YAML 1.1 words such as `yes`, numbers in
//! other notations, duplicate keys, nesting past the depth budget, more
//! events than the budget allows, and every error. Giving up costs nothing
//! but time: the caller then parses the document again on the careful
//! path, which produces the diagnostics (file:line:col, every problem in
//! one run, budgets against hostile input) exactly as before. So a valid
//! document reads the same either way, and an invalid one reads through
//! the careful path only.
//!
//! Positions: [`super::raw::Sp`] asks for its value as a newtype struct
//! named [`SP_NAME`]; this deserializer answers with a two-element sequence
//! (the position, then the value), while serde-saphyr treats the name like
//! any other newtype and hands over its own spans. Positions are the same
//! as serde-saphyr's (line, 1-based column in characters, byte offset and
//! byte length of the node), which a test checks document by document.
//! New fields in the raw types need no code here.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, StrInput};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// The newtype name [`super::raw::Sp`] deserializes through.
pub(crate) const SP_NAME: &str = "$berth::Sp";

/// The parser budgets of one document, scaled to its size (and so bounded
/// by the file size limit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Deepest nesting of mappings and lists.
    pub depth: usize,
    /// Most parser events.
    pub events: usize,
}

impl Budget {
    /// The budget of a document of `bytes` bytes: the same depth as the
    /// careful path, and events proportional to the size (a node takes at
    /// least two bytes of block YAML; flow lists of empty lists come
    /// closest to one event a byte).
    pub fn for_bytes(bytes: usize) -> Self {
        Budget {
            depth: super::load::MAX_DEPTH_NODES,
            events: super::load::scaled_events(bytes),
        }
    }
}

/// Why the fast path gave up (only tests look at the text).
#[derive(Debug)]
pub(crate) struct GiveUp(pub String);

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        GiveUp(msg.to_string())
    }
}

fn give_up<T>(why: &str) -> Result<T, GiveUp> {
    Err(GiveUp(why.to_string()))
}

/// Reads one YAML document (the slice of a file that the pre-scan found)
/// into `T`, or gives up; positions are relative to `text`.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str, budget: Budget) -> Result<T, GiveUp> {
    read(text, budget, Place::default(), None).map(|r| r.value)
}

/// Where a text that is one part of a document sits in that document
/// (all zero for a whole document): `split.rs` reads a long list in parts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Place {
    /// Lines of the document before the text's first line.
    pub line: u64,
    /// Bytes of the document before the text's first byte.
    pub byte: u64,
    /// Mappings and lists around the text's root node in the document,
    /// which count towards the depth budget as they would there.
    pub depth: usize,
}

/// A value read, and how many parser events reading it took (stream and
/// document events included).
#[derive(Debug)]
pub(crate) struct Read<T> {
    pub value: T,
    pub events: usize,
}

/// Reads `text`, one part of a document that starts at a line start, as if
/// it stood at `place` in that document: positions are the document's,
/// and the depth budget counts the nodes around it. The text must be one
/// YAML document on its own (for a part, its root is a list).
pub(crate) fn read_part<T: DeserializeOwned>(
    text: &str,
    budget: Budget,
    place: Place,
) -> Result<Read<T>, GiveUp> {
    read(text, budget, place, None)
}

/// Reads `text` as a whole document, and gives up unless the list that
/// starts at byte `list_at` is read, as a list, as the value of `vms` in
/// the mapping that is the value of `spec` in the root mapping: how
/// `split.rs` knows that the `[]` it put into the head of a document is
/// `spec.vms` and not, say, text inside a scalar.
pub(crate) fn read_head<T: DeserializeOwned>(
    text: &str,
    budget: Budget,
    list_at: usize,
) -> Result<Read<T>, GiveUp> {
    let watch = Watch {
        at: list_at,
        path: Vec::new(),
        found: false,
    };
    read(text, budget, Place::default(), Some(watch))
}

fn read<T: DeserializeOwned>(
    text: &str,
    budget: Budget,
    place: Place,
    watch: Option<Watch>,
) -> Result<Read<T>, GiveUp> {
    // saphyr-parser lets some characters through that YAML forbids and
    // serde-saphyr refuses (raw control characters in quoted scalars):
    // such a document is the careful path's.
    if !printable(text) {
        return give_up("a character YAML does not allow");
    }
    let mut de = De {
        parser: Parser::new_from_str(text),
        peeked: None,
        depth: place.depth,
        events: 0,
        budget,
        text,
        ascii: text.is_ascii(),
        cursor: (0, 0),
        place,
        watch,
    };
    match de.next()?.0 {
        Event::StreamStart => {}
        _ => return give_up("no stream start"),
    }
    match de.next()?.0 {
        Event::DocumentStart(_) => {}
        _ => return give_up("not exactly one document"),
    }
    let value = T::deserialize(&mut de)?;
    match de.next()?.0 {
        Event::DocumentEnd => {}
        _ => return give_up("trailing content"),
    }
    match de.next()?.0 {
        Event::StreamEnd => {}
        _ => return give_up("more than one document"),
    }
    if de.watch.as_ref().is_some_and(|w| !w.found) {
        return give_up("the list looked for is not spec.vms");
    }
    Ok(Read {
        value,
        events: de.events,
    })
}

/// Whether every character is one YAML allows in a stream (`c-printable`:
/// tab, line feed, carriage return, the printable ASCII range, NEL and the
/// printable rest of Unicode).
pub(crate) fn printable(text: &str) -> bool {
    if text
        .bytes()
        .all(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
    {
        return true;
    }
    text.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}')
            || ('\u{a0}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    })
}

struct De<'a> {
    parser: Parser<'a, StrInput<'a>>,
    peeked: Option<(Event<'a>, Span)>,
    depth: usize,
    events: usize,
    budget: Budget,
    text: &'a str,
    ascii: bool,
    /// The last (character index, byte offset) converted, for non-ASCII text.
    cursor: (usize, usize),
    /// Where `text` sits in its document.
    place: Place,
    /// The list [`read_head`] looks for, if any.
    watch: Option<Watch>,
}

/// What [`read_head`] looks for, and the keys it has seen on the way.
struct Watch {
    /// Byte offset of the list's `[`.
    at: usize,
    /// For each open mapping or list, from the root: whether the last key
    /// read in it is the one on the way to `spec.vms` (`spec` in the root,
    /// `vms` one level down); always false for a list.
    path: Vec<bool>,
    found: bool,
}

/// The keys on the way from the root to the list [`read_head`] looks for.
const WATCHED_PATH: [&str; 2] = ["spec", "vms"];

/// A scalar's text and style.
struct Scalar<'a> {
    text: Cow<'a, str>,
    plain: bool,
}

impl<'a> De<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), GiveUp> {
        if let Some(e) = self.peeked.take() {
            return Ok(e);
        }
        self.events += 1;
        if self.events > self.budget.events {
            return give_up("event budget");
        }
        match self.parser.next() {
            Some(Ok((Event::Scalar(text, ScalarStyle::Plain, ..), _)))
                if not_plain_start(&text) =>
            {
                give_up("a plain scalar YAML does not allow")
            }
            Some(Ok(e)) => Ok(e),
            Some(Err(e)) => Err(GiveUp(e.to_string())),
            None => give_up("unexpected end of input"),
        }
    }

    fn peek(&mut self) -> Result<&(Event<'a>, Span), GiveUp> {
        if self.peeked.is_none() {
            let e = self.next()?;
            self.peeked = Some(e);
        }
        match &self.peeked {
            Some(e) => Ok(e),
            None => give_up("nothing to peek"),
        }
    }

    /// The byte offset of a character index.
    fn byte(&mut self, chars: usize) -> usize {
        if self.ascii {
            return chars;
        }
        let (mut c, mut b) = self.cursor;
        if chars < c {
            (c, b) = (0, 0);
        }
        for ch in self.text.get(b..).unwrap_or("").chars() {
            if c >= chars {
                break;
            }
            c += 1;
            b += ch.len_utf8();
        }
        self.cursor = (c, b);
        b
    }

    /// The position of a node as serde-saphyr reports it, relative to
    /// `text` (see [`Place`] for the document's).
    fn loc(&mut self, span: Span) -> [u64; 4] {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index());
        [
            span.start.line() as u64,
            span.start.col() as u64 + 1,
            start as u64,
            end.saturating_sub(start) as u64,
        ]
    }

    /// The next node as a scalar; anything else gives up.
    fn scalar(&mut self) -> Result<Scalar<'a>, GiveUp> {
        match self.next()?.0 {
            Event::Scalar(text, style, 0, None) => Ok(Scalar {
                text,
                plain: style == ScalarStyle::Plain,
            }),
            _ => give_up("not a plain scalar"),
        }
    }

    fn enter(&mut self) -> Result<(), GiveUp> {
        self.depth += 1;
        if self.depth > self.budget.depth {
            return give_up("depth budget");
        }
        if let Some(w) = &mut self.watch {
            w.path.push(false);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
        if let Some(w) = &mut self.watch {
            w.path.pop();
        }
    }

    /// For [`read_head`]: notes the list starting at `span`, giving up if
    /// it is the one looked for but not where it should be.
    fn watch_list(&mut self, span: Span) -> Result<(), GiveUp> {
        if self.watch.is_none() {
            return Ok(());
        }
        let at = self.byte(span.start.index());
        if let Some(w) = &mut self.watch
            && w.at == at
        {
            if w.path != [true, true] {
                return give_up("the list looked for is not spec.vms");
            }
            w.found = true;
        }
        Ok(())
    }

    /// For [`read_head`]: notes the key just read in the innermost mapping.
    fn watch_key(&mut self, key: &str) {
        if let Some(w) = &mut self.watch {
            let level = w.path.len();
            if let Some(last) = w.path.last_mut() {
                *last = WATCHED_PATH.get(level - 1) == Some(&key);
            }
        }
    }

    /// Skips one node and everything in it.
    fn skip(&mut self) -> Result<(), GiveUp> {
        let mut open = 0usize;
        loop {
            match self.next()?.0 {
                Event::Scalar(_, _, 0, None) => {}
                Event::SequenceStart(0, None) | Event::MappingStart(0, None) => {
                    open += 1;
                    if open > self.budget.depth {
                        return give_up("depth budget");
                    }
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => open = open.saturating_sub(1),
                _ => return give_up("anchor, alias or tag"),
            }
            if open == 0 {
                return Ok(());
            }
        }
    }
}

/// Whether a plain scalar begins with an indicator that YAML 1.2 does not
/// allow there (`|`, `>`, quotes, flow brackets, ...). saphyr-parser reads
/// some of these as plain text, for instance `|` inside a flow mapping,
/// where serde-saphyr reports an error: such a document is the careful
/// path's.
fn not_plain_start(s: &str) -> bool {
    s.starts_with(|c: char| "|>@`%!&*#'\"{}[],".contains(c))
}

/// Words YAML reads as null, or as booleans in YAML 1.1: serde-saphyr may
/// treat them specially, so the fast path does not guess.
fn special_word(s: &str) -> bool {
    matches!(
        s,
        "" | "~"
            | "null"
            | "Null"
            | "NULL"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
    ) || matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | ".nan" | ".inf" | "-.inf" | "+.inf"
    )
}

/// Words YAML reads as null.
fn null_word(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// A plain decimal integer without sign tricks or leading zeros.
fn decimal(s: &str) -> bool {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" && !negative || !digits.starts_with('0'))
}

/// A plain decimal number: an integer, optionally with a fraction.
fn decimal_float(s: &str) -> bool {
    match s.split_once('.') {
        None => decimal(s),
        Some((int, frac)) => {
            decimal(int.strip_prefix('-').unwrap_or(int))
                && !frac.is_empty()
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

macro_rules! integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
            let s = self.scalar()?;
            if !s.plain || !decimal(&s.text) {
                return give_up("not a decimal integer");
            }
            if s.text.starts_with('-') {
                match s.text.parse::<i64>() {
                    Ok(n) => v.visit_i64(n),
                    Err(_) => give_up("integer out of range"),
                }
            } else {
                match s.text.parse::<u64>() {
                    Ok(n) => v.visit_u64(n),
                    Err(_) => give_up("integer out of range"),
                }
            }
        }
    )*};
}

macro_rules! unsupported {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, GiveUp> {
            give_up(stringify!($method))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut De<'_> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        match self.peek()?.0 {
            Event::SequenceStart(..) => self.deserialize_seq(v),
            Event::MappingStart(..) => self.deserialize_map(v),
            _ => {
                let s = self.scalar()?;
                if !s.plain {
                    return v.visit_str(&s.text);
                }
                if decimal(&s.text) {
                    if s.text.starts_with('-') {
                        if let Ok(n) = s.text.parse::<i64>() {
                            return v.visit_i64(n);
                        }
                    } else if let Ok(n) = s.text.parse::<u64>() {
                        return v.visit_u64(n);
                    }
                    return give_up("integer out of range");
                }
                match s.text.as_ref() {
                    "true" => v.visit_bool(true),
                    "false" => v.visit_bool(false),
                    t if special_word(t) || looks_numeric(t) => give_up("ambiguous scalar"),
                    t => v.visit_str(t),
                }
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        let s = self.scalar()?;
        match (s.plain, s.text.as_ref()) {
            (true, "true") => v.visit_bool(true),
            (true, "false") => v.visit_bool(false),
            _ => give_up("not true or false"),
        }
    }

    integer!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
             deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        let s = self.scalar()?;
        if !s.plain || !decimal_float(&s.text) {
            return give_up("not a decimal number");
        }
        match s.text.parse::<f64>() {
            Ok(n) if n.is_finite() => v.visit_f64(n),
            _ => give_up("number out of range"),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        self.deserialize_f64(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        let s = self.scalar()?;
        if s.plain && special_word(&s.text) {
            return give_up("null or boolean as text");
        }
        v.visit_str(&s.text)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        if let Event::Scalar(text, ScalarStyle::Plain, ..) = &self.peek()?.0
            && null_word(text)
        {
            return give_up("null");
        }
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, GiveUp> {
        if name == SP_NAME {
            let (event, span) = self.peek()?;
            let collection = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
            let quote = match event {
                Event::Scalar(_, ScalarStyle::SingleQuoted, ..) => Some('\''),
                Event::Scalar(_, ScalarStyle::DoubleQuoted, ..) => Some('"'),
                _ => None,
            };
            let span = *span;
            let mut loc = self.loc(span);
            if collection {
                // serde-saphyr spans a mapping or list by its first
                // character (none for block style, which `Sp` makes 1).
                loc[3] = loc[3].min(1);
            } else if let Some(quote) = quote {
                // A quoted scalar ends at its closing quote (saphyr-parser's
                // span can take in the blanks after it).
                let start = loc[2] as usize;
                let spanned = self.text.get(start..start + loc[3] as usize).unwrap_or("");
                if let Some(end) = spanned.rfind(quote) {
                    loc[3] = end as u64 + 1;
                }
            }
            loc[0] += self.place.line;
            loc[2] += self.place.byte;
            return v.visit_seq(Spanned {
                de: self,
                loc: Some(loc),
                value_done: false,
            });
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        match self.next()? {
            (Event::SequenceStart(0, None), span) => self.watch_list(span)?,
            _ => return give_up("not a list"),
        }
        self.enter()?;
        let value = v.visit_seq(Items { de: self })?;
        match self.next()?.0 {
            Event::SequenceEnd => {}
            _ => return give_up("list not finished"),
        }
        self.leave();
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, GiveUp> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, GiveUp> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        self.mapping(v, true)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, GiveUp> {
        // serde's derive rejects duplicate and unknown fields itself.
        self.mapping(v, false)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, GiveUp> {
        let s = self.scalar()?;
        if s.plain && special_word(&s.text) {
            return give_up("null or boolean as a variant");
        }
        let text: String = s.text.into_owned();
        v.visit_enum(text.into_deserializer())
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, GiveUp> {
        self.skip()?;
        v.visit_unit()
    }

    unsupported!(deserialize_char deserialize_bytes deserialize_byte_buf deserialize_unit);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, GiveUp> {
        give_up("unit struct")
    }
}

/// Numbers in notations the fast path leaves to serde-saphyr.
fn looks_numeric(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']);
    t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

impl<'a> De<'a> {
    fn mapping<'de, V: Visitor<'de>>(
        &mut self,
        v: V,
        check_keys: bool,
    ) -> Result<V::Value, GiveUp> {
        match self.next()?.0 {
            Event::MappingStart(0, None) => {}
            _ => return give_up("not a mapping"),
        }
        self.enter()?;
        let value = v.visit_map(Entries {
            de: &mut *self,
            seen: check_keys.then(Vec::new),
        })?;
        match self.next()?.0 {
            Event::MappingEnd => {}
            _ => return give_up("mapping not finished"),
        }
        self.leave();
        Ok(value)
    }
}

struct Items<'d, 'a> {
    de: &'d mut De<'a>,
}

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GiveUp> {
        if matches!(self.de.peek()?.0, Event::SequenceEnd) {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

struct Entries<'d, 'a> {
    de: &'d mut De<'a>,
    /// Keys read so far, for maps (serde's derive checks structs itself).
    seen: Option<Vec<String>>,
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, GiveUp> {
        let watching = self.de.watch.is_some();
        let watched = match &self.de.peek()?.0 {
            Event::MappingEnd => return Ok(None),
            Event::Scalar(key, ..) => {
                if key == "<<" {
                    return give_up("merge key");
                }
                if let Some(seen) = &mut self.seen {
                    if seen.iter().any(|k| k == key) {
                        return give_up("duplicate key");
                    }
                    seen.push(key.to_string());
                }
                watching.then(|| key.to_string())
            }
            _ => return give_up("complex key"),
        };
        if let Some(key) = watched {
            self.de.watch_key(&key);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, GiveUp> {
        seed.deserialize(&mut *self.de)
    }
}

/// The two elements [`super::raw::Sp`] reads: the position, then the value.
struct Spanned<'d, 'a> {
    de: &'d mut De<'a>,
    loc: Option<[u64; 4]>,
    value_done: bool,
}

impl<'de> de::SeqAccess<'de> for Spanned<'_, '_> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GiveUp> {
        if let Some(loc) = self.loc.take() {
            let d = de::value::SeqDeserializer::<_, GiveUp>::new(loc.into_iter());
            return seed.deserialize(d).map(Some);
        }
        if self.value_done {
            return Ok(None);
        }
        self.value_done = true;
        seed.deserialize(&mut *self.de).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_other_notations_are_left_to_the_careful_path() {
        for s in ["010", "+1", "0x10", "1_000", "1e3", ".5", "1.", "-", "-0"] {
            assert!(!decimal_float(s), "{s}");
        }
        for s in ["0", "-3", "42", "2.5", "-0.25"] {
            assert!(decimal_float(s), "{s}");
        }
        assert!(special_word("Yes") && special_word("~") && special_word(""));
        assert!(!special_word("hv01"));
        assert!(printable("a\tb\r\n é \u{feff} \u{1f600}"));
        for c in ['\u{0}', '\u{1b}', '\u{7f}', '\u{84}', '\u{9f}', '\u{fffe}'] {
            assert!(!printable(&format!("x{c}")), "{c:?}");
        }
    }
}
