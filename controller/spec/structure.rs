//! A second look at a document that failed to parse, to report every
//! structural problem in it at once.
//!
//! serde stops at the first unknown field or wrong type in a document. When
//! that happens, the document is read again into a generic tree that keeps
//! every position, and the tree is walked against the document's own JSON
//! Schema (the one `berth schema` writes), collecting every unknown field
//! (with a "did you mean"), missing field and wrong shape. This runs only on
//! the error path, so valid documents pay nothing for it.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::diag::{Diagnostic, Loc, Origin, Sink};
use super::load::{DocCtx, closest};
use super::raw::Sp;

/// A YAML node with positions everywhere.
#[derive(Debug)]
enum Node {
    Map(Vec<(Sp<String>, Sp<Node>)>),
    Seq(Vec<Sp<Node>>),
    Str(String),
    Int,
    Float,
    Bool,
    Null,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Int)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Int)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Int)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Int)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Float)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Bool)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = m.next_key::<Sp<String>>()? {
                    entries.push((k, m.next_value::<Sp<Node>>()?));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = s.next_element::<Sp<Node>>()? {
                    items.push(x);
                }
                Ok(Node::Seq(items))
            }
        }
        d.deserialize_any(V)
    }
}

fn schema_of(kind: &str) -> Option<&'static Value> {
    static SCHEMAS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            super::schemas()
                .into_iter()
                .map(|(file, v)| (file.trim_end_matches(".json").to_string(), v))
                .collect()
        })
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(kind))
        .map(|(_, v)| v)
}

/// Walks a failed document against its schema; returns how many problems
/// it reported (0: it found nothing the parser's own message does not say).
pub(crate) fn check(
    ctx: &DocCtx,
    text: &str,
    kind: &str,
    options: serde_saphyr::Options,
    sink: &mut Sink,
) -> usize {
    let Some(root) = schema_of(kind) else {
        return 0;
    };
    let Ok(tree) = serde_saphyr::from_str_with_options::<Sp<Node>>(text, options) else {
        return 0;
    };
    let before = sink.len();
    let mut w = Walker {
        ctx,
        root,
        sink,
        missing: Vec::new(),
        unknown: Vec::new(),
    };
    w.walk(&tree, root);
    w.finish();
    sink.len() - before
}

struct Walker<'a> {
    ctx: &'a DocCtx,
    root: &'static Value,
    sink: &'a mut Sink,
    /// Missing required fields, held back until [`Walker::finish`].
    missing: Vec<Missing>,
    /// Unknown fields (name, diagnostic), held back likewise.
    unknown: Vec<(String, Diagnostic)>,
}

/// A required field a mapping lacks.
struct Missing {
    field: String,
    /// The mapping's own diagnostic ("missing field `host`").
    diagnostic: Diagnostic,
    /// Column of the mapping's keys (1-based), 0 when it has none.
    key_column: u32,
    /// Line of the mapping's first key.
    first_line: u32,
}

impl Walker<'_> {
    /// Follows `$ref`s and picks the non-null branch of an optional.
    fn resolve<'v>(&self, mut schema: &'v Value, node: &Node) -> &'v Value {
        for _ in 0..16 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or("");
                match self.root.get("$defs").and_then(|d| d.get(name)) {
                    Some(s) => {
                        schema = s;
                        continue;
                    }
                    None => return schema,
                }
            }
            let alternatives = schema
                .get("anyOf")
                .or_else(|| schema.get("oneOf"))
                .and_then(Value::as_array);
            if let Some(alts) = alternatives {
                let pick = alts.iter().find(|a| {
                    let null = a.get("type").and_then(Value::as_str) == Some("null");
                    null == matches!(node, Node::Null)
                });
                match pick {
                    Some(p) => {
                        schema = p;
                        continue;
                    }
                    None => return schema,
                }
            }
            return schema;
        }
        schema
    }

    fn types(schema: &Value) -> BTreeSet<&str> {
        match schema.get("type") {
            Some(Value::String(t)) => [t.as_str()].into(),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => BTreeSet::new(),
        }
    }

    fn walk(&mut self, node: &Sp<Node>, schema: &Value) {
        let schema = self.resolve(schema, &node.value);
        let types = Self::types(schema);
        let at = self.ctx.at(node);
        let fits = |t: &str| types.is_empty() || types.contains(t);
        match &node.value {
            Node::Map(entries) => {
                if !fits("object") {
                    self.sink.error(
                        at,
                        format!("expected {}, found a mapping", describe(&types)),
                    );
                    return;
                }
                let props = schema.get("properties").and_then(Value::as_object);
                let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
                // Fields a misspelt key already points at ("did you mean").
                let mut suggested: Vec<&str> = Vec::new();
                for (key, value) in entries {
                    match props.and_then(|p| p.get(&key.value)) {
                        Some(s) => self.walk(value, s),
                        None if closed => {
                            let names = props
                                .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>())
                                .unwrap_or_default();
                            let mut d = Diagnostic::new(
                                self.ctx.at(key),
                                format!("unknown field `{}`", key.value),
                            );
                            d = match closest(&key.value, names.iter().copied()) {
                                Some(best) => {
                                    suggested.push(best);
                                    d.with_help(format!("did you mean `{best}`?"))
                                }
                                None => {
                                    d.with_help(format!("expected one of: {}", names.join(", ")))
                                }
                            };
                            self.unknown.push((key.value.clone(), d));
                        }
                        None => {}
                    }
                }
                for req in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !entries.iter().any(|(k, _)| k.value == req) && !suggested.contains(&req) {
                        let first = entries.first().map(|(k, _)| self.ctx.at(k).loc);
                        self.missing.push(Missing {
                            field: req.to_string(),
                            diagnostic: Diagnostic::new(
                                at.clone(),
                                format!("missing field `{req}`"),
                            ),
                            key_column: first.map_or(0, |l| l.column),
                            first_line: first.map_or(at.loc.line, |l| l.line),
                        });
                    }
                }
            }
            Node::Seq(items) => {
                if !fits("array") {
                    self.sink
                        .error(at, format!("expected {}, found a list", describe(&types)));
                    return;
                }
                if let Some(item) = schema.get("items") {
                    for x in items {
                        self.walk(x, item);
                    }
                }
            }
            Node::Null => {
                if !fits("null") {
                    self.sink.error(
                        at,
                        format!("expected {}, found nothing (null)", describe(&types)),
                    );
                }
            }
            Node::Bool => {
                if !fits("boolean") && !fits("string") {
                    self.sink.error(
                        at,
                        format!("expected {}, found true/false", describe(&types)),
                    );
                }
            }
            Node::Int | Node::Float | Node::Str(_) => {
                let number = matches!(node.value, Node::Int | Node::Float);
                let ok = fits("string")
                    || (matches!(node.value, Node::Int) && (fits("integer") || fits("number")))
                    || (matches!(node.value, Node::Float) && fits("number"));
                if !ok {
                    let found = match &node.value {
                        Node::Str(s) => format!("`{s}`"),
                        _ if number => "a number".to_string(),
                        _ => "a value".to_string(),
                    };
                    self.sink
                        .error(at, format!("expected {}, found {found}", describe(&types)));
                }
            }
        }
    }
}

impl Walker<'_> {
    /// Reports the held-back fields. A field one mapping lacks that appears
    /// below it as an unknown field of another mapping, at another
    /// indentation, is one mistake, not two: it is reported once, at the
    /// mis-indented line, with a hint about indentation.
    fn finish(&mut self) {
        let mut unknown: Vec<Option<(String, Diagnostic)>> = std::mem::take(&mut self.unknown)
            .into_iter()
            .map(Some)
            .collect();
        for m in std::mem::take(&mut self.missing) {
            let stray = unknown
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.as_ref().map(|u| (i, u)))
                .filter(|(_, (name, d))| {
                    *name == m.field
                        && d.origin.loc.line > m.first_line
                        && d.origin.loc.column != m.key_column
                        && m.key_column > 0
                })
                .min_by_key(|(_, (_, d))| d.origin.loc.line)
                .map(|(i, _)| i);
            let Some(i) = stray else {
                self.sink.push(m.diagnostic);
                continue;
            };
            let Some((_, d)) = unknown[i].take() else {
                continue;
            };
            self.sink.push(misindented(
                &m.field,
                d.origin,
                m.key_column,
                m.first_line,
                m.diagnostic.origin,
            ));
        }
        for (_, d) in unknown.into_iter().flatten() {
            self.sink.push(d);
        }
    }
}

/// One diagnostic for a field written at the wrong indentation: at the
/// mis-indented line, with the entry that lacks it as a related position.
fn misindented(
    field: &str,
    at: Origin,
    key_column: u32,
    entry_line: u32,
    entry: Origin,
) -> Diagnostic {
    let column = at.loc.column;
    let (fix, now) = if column < key_column {
        ("more", "less")
    } else {
        ("less", "more")
    };
    Diagnostic::new(
        at,
        format!(
            "`{field}` is indented {now} than the fields of the entry above (column {column}, not {key_column}), so it is not part of it"
        ),
    )
    .with_help(format!(
        "indent `{field}` {fix}, to column {key_column} to line up with the fields of the entry at line {entry_line}, which needs it"
    ))
    .with_related("the entry that lacks it", entry)
}

/// For a parser's "missing field `X`" at a mapping's first key: the line
/// below it that holds `X:` at another indentation, as one diagnostic. This
/// reads the text, for the case the generic tree cannot be built (a key
/// indented between two levels is a syntax error once the parser gets there,
/// but the missing field is reported first).
pub(crate) fn misindented_in_text(
    ctx: &DocCtx,
    text: &str,
    missing: &Diagnostic,
) -> Option<Diagnostic> {
    let field = missing
        .message
        .strip_prefix("missing field `")?
        .strip_suffix('`')?;
    let key_column = missing.origin.loc.column;
    let doc_line = missing.origin.loc.line.checked_sub(ctx.line_offset)? as usize;
    if key_column == 0 || doc_line == 0 {
        return None;
    }
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let here = offset;
        offset += line.len();
        if i < doc_line {
            continue;
        }
        if i > doc_line + 50 {
            return None;
        }
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = body.len() - trimmed.len();
        let column = u32::try_from(indent + 1).ok()?;
        if trimmed.starts_with("- ") || trimmed == "-" || indent == 0 {
            return None;
        }
        let key = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim_matches(['"', '\'']);
        if key == field
            && trimmed[key.len()..]
                .trim_start_matches(['"', '\''])
                .starts_with(':')
        {
            if column == key_column {
                return None;
            }
            let at = ctx.origin(Loc {
                line: u32::try_from(i + 1).ok()?,
                column,
                offset: here + indent,
                len: field.len(),
            });
            return Some(misindented(
                field,
                at,
                key_column,
                missing.origin.loc.line,
                missing.origin.clone(),
            ));
        }
    }
    None
}

fn describe(types: &BTreeSet<&str>) -> String {
    let words: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "object" => "a mapping",
            "array" => "a list",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            "string" => "text",
            other => other,
        })
        .collect();
    if words.is_empty() {
        "something else".to_string()
    } else {
        words.join(" or ")
    }
}

/// For a syntax error at a `key:` line indented between two levels below a
/// list entry (a VM whose `host` is one column short: `host` is optional
/// since `hosts` and `hostGroup` exist, so no "missing field" comes first):
/// the same diagnostic as [`misindented_in_text`], at the error's line.
pub(crate) fn misindented_at_error(
    ctx: &DocCtx,
    text: &str,
    error: &Diagnostic,
) -> Option<Diagnostic> {
    let doc_line = error.origin.loc.line.checked_sub(ctx.line_offset)? as usize;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let body = lines
        .get(doc_line.checked_sub(1)?)?
        .trim_end_matches(['\n', '\r']);
    let trimmed = body.trim_start_matches(' ');
    let indent = body.len() - trimmed.len();
    let field = trimmed.split(':').next()?.trim_matches(['"', '\'']);
    if field.is_empty() || trimmed.starts_with('-') || !trimmed[field.len()..].starts_with(':') {
        return None;
    }
    // The list entry above: the nearest line starting with "- " that is
    // indented less.
    for i in (0..doc_line - 1).rev() {
        let above = lines[i].trim_end_matches(['\n', '\r']);
        let t = above.trim_start_matches(' ');
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let dash = above.len() - t.len();
        if !t.starts_with("- ") || dash > indent {
            if dash < indent {
                return None;
            }
            continue;
        }
        let key_column = u32::try_from(dash + 3).ok()?;
        let column = u32::try_from(indent + 1).ok()?;
        // Deeper than the entry's fields is another parser error, with its
        // own hint.
        if column >= key_column {
            return None;
        }
        let start: usize = lines[..i].iter().map(|l| l.len()).sum();
        let first_key = t[2..].split(':').next().unwrap_or("").len().max(1);
        let entry = ctx.origin(Loc {
            line: u32::try_from(i + 1).ok()?,
            column: key_column,
            offset: start + dash + 2,
            len: first_key,
        });
        let here: usize = lines[..doc_line - 1].iter().map(|l| l.len()).sum();
        let at = ctx.origin(Loc {
            line: u32::try_from(doc_line).ok()?,
            column,
            offset: here + indent,
            len: field.len(),
        });
        let entry_line = entry.loc.line;
        return Some(misindented(field, at, key_column, entry_line, entry));
    }
    None
}

/// Fields of list entries (VMs, hosts) that are not fields of the mapping
/// that holds the list: written at the list's level, they are a VM's or a
/// host's field indented too little, not a misspelling.
const ENTRY_FIELDS: [&str; 7] = [
    "host",
    "hostGroup",
    "fallback",
    "networkAdapters",
    "maintenance",
    "maxMigrations",
    "labels",
];

/// Replaces "unknown field `host`" (and the like) just below a list entry
/// by the indentation diagnostic of [`misindented_at_error`].
pub(crate) fn unknown_as_misindented(ctx: &DocCtx, text: &str, sink: &mut Sink, from: usize) {
    let found: Vec<(usize, Diagnostic)> = sink.diagnostics()[from..]
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let field = d
                .message
                .strip_prefix("unknown field `")?
                .split('`')
                .next()?;
            if !ENTRY_FIELDS.contains(&field) {
                return None;
            }
            // The entry is marked by one character, as a missing field is.
            misindented_at_error(ctx, text, d).map(|mut m| {
                for r in &mut m.related {
                    r.origin.loc.len = 1;
                }
                (from + i, m)
            })
        })
        .collect();
    for (i, d) in found {
        sink.replace(i, d);
    }
}
