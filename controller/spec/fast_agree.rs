//! The fast path must read every document exactly as the careful path does:
//! same values, same positions, same diagnostics. These tests parse each
//! input three times, once as `load` does, once with every Fleet and
//! Placement document's `spec.vms` list cut at every item start
//! (`split.rs`), and once with the fast path off, and compare everything
//! the loader hands on.

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;

use super::diag::{Sink, SourceFile};
use super::load::{CAREFUL_ONLY, parse_file};
use super::split::{SPLITS, Sizes, TEST_SIZES};

/// How a test has the loader read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// As `load` does.
    Fast,
    /// As `load` does, with every document split where it can be.
    Split,
    /// The careful path alone.
    Careful,
}

/// Split every document, at every item start.
const SPLIT_ALWAYS: Sizes = Sizes {
    min_doc: 0,
    min_part: 1,
    parts: usize::MAX,
};

/// Everything the loader produces for `text`, as text.
fn parsed(text: &str, path: Path) -> String {
    let file = Arc::new(SourceFile::new(
        PathBuf::from("t.yaml"),
        text.to_string(),
        0,
    ));
    CAREFUL_ONLY.with(|c| c.set(path == Path::Careful));
    TEST_SIZES.with(|c| c.set((path == Path::Split).then_some(SPLIT_ALWAYS)));
    let mut sink = Sink::default();
    let docs = parse_file(&file, &mut sink);
    CAREFUL_ONLY.with(|c| c.set(false));
    TEST_SIZES.with(|c| c.set(None));
    let bodies: Vec<String> = docs
        .iter()
        .map(|d| format!("{} {} {:?}", d.ctx.line_offset, d.ctx.byte_offset, d.body))
        .collect();
    let diags: Vec<String> = sink
        .diagnostics()
        .iter()
        .map(|d| format!("{d} {:?} {:?}", d.origin.loc, d.help))
        .collect();
    format!("{bodies:#?}\n{diags:#?}")
}

fn agree(text: &str) -> Result<(), TestCaseError> {
    let careful = parsed(text, Path::Careful);
    for path in [Path::Fast, Path::Split] {
        agree_with(text, path, &careful)?;
    }
    Ok(())
}

fn agree_with(text: &str, path: Path, careful: &str) -> Result<(), TestCaseError> {
    let fast = parsed(text, path);
    if fast != careful {
        // Point at the first difference; the whole dump is long.
        let at = fast
            .bytes()
            .zip(careful.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(fast.len().min(careful.len()));
        let from = at.saturating_sub(300);
        let near = |s: &str| {
            s.get(from..(at + 80).min(s.len()))
                .unwrap_or("")
                .to_string()
        };
        prop_assert!(
            false,
            "the paths differ:\n{:?}: ...{}\ncareful: ...{}\ninput:\n{}",
            path,
            near(&fast),
            near(careful),
            text
        );
    }
    Ok(())
}

/// A document with every kind of node the raw types read: block and flow
/// mappings and lists, quoted and plain scalars, numbers as text, floats,
/// booleans, comments, non-ASCII text and several documents in one file;
/// intent too (labels, host groups, rules, `hosts`, `hostGroup`).
const RICH: &str = r#"# yaml-language-server: $schema=placement.json
apiVersion: berth/v1
kind: Placement
metadata: { name: "rack é" }
spec:
  policy:
    maxParallelMigrations: 8
    moveTimeout: 30m
    suspend: false
    headroom: 1
  hosts:
    - name: hv01   # first
      maintenance: true
      labels: { rack: r1, "zone": 'a' }
    - { name: hv02, maxMigrations: 1, labels: { rack: r2 } }
  hostGroups:
    - { name: prod, hosts: [hv01, hv02] }
  rules:
    - name: dcs-apart
      separate: [dc-01, "dc-02"]
      by: rack
    - { name: app-with-db, together: [app, db] }
  vms:
    - { name: dc-01, hostGroup: prod }
    - name: dc-02
      hosts:
        - hv01
        - 'hv02'
    - name: 'wéb-01'
      host: hv01
      fallback: [hv02, "hv01"]
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          vlanId: 10
          acls:
            - action: allow
              direction: both
              remoteAddress: 10.0.0.0/8
              localPort: 443
              remotePort: "49152-49182"
              protocol: 6
              weight: 10
              stateful: true
            - { action: deny, direction: inbound, weight: 20 }
    - name: db
      host: >-
        hv02
---
apiVersion: berth/v1
kind: Fleet
spec:
  seed: 7
  faults: { transientFailureRate: 0.25, dropAclsOnMigration: true, overLimitWait: 5m }
  hosts:
    - { name: hv01, memoryGiB: 256.5, cpuVendor: amd, switches: [Prod], migrationRateMiBps: 1000 }
  vms:
    - name: web-01
      host: hv01
      memoryGiB: 8
      backups: [{ at: 0s, for: 20m }]
      networkAdapters:
        - { name: Network Adapter, switch: Prod, connected: true, vlanId: 10, acls: [] }
---
apiVersion: berth/v1
kind: Controller
spec:
  provider:
    hyperv:
      hosts: [hv01]
      destinationStoragePaths: { hv01: 'D:\VMs' }
  resyncInterval: 60s
"#;

#[test]
fn the_fast_path_reads_the_examples_exactly_as_the_careful_path() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["examples", "tests", "schemas/examples"] {
        collect(&root.join(dir), &mut files);
    }
    assert!(files.len() >= 5, "found {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read an example");
        agree(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    agree(RICH).expect("agree");
}

#[test]
fn the_split_path_takes_the_rich_documents() {
    // Or the property tests would not exercise it.
    SPLITS.with(|n| n.set(0));
    let _ = parsed(RICH, Path::Split);
    // The Placement document (the Fleet has one VM: nothing to split).
    assert_eq!(SPLITS.with(std::cell::Cell::get), 1);
    let _ = parsed(RICH, Path::Fast);
    assert_eq!(
        SPLITS.with(std::cell::Cell::get),
        1,
        "small documents are read whole"
    );
}

#[test]
fn the_fast_path_takes_ordinary_documents() {
    // It must not give up on what berth's users write, or it is no faster.
    CAREFUL_ONLY.with(|c| c.set(false));
    let doc = RICH.split("---\n").next().expect("a document");
    let r = super::fast::from_str::<super::raw::PlacementDocument>(
        doc,
        super::fast::Budget::for_bytes(doc.len()),
    );
    assert!(r.is_ok(), "{:?}", r.err());
}

fn collect(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// Scalars YAML reads in surprising ways, and bits of syntax.
const TRICKY: &[&str] = &[
    "yes",
    "no",
    "on",
    "~",
    "null",
    "Null",
    "",
    "0x10",
    "0o17",
    "1e3",
    "1_000",
    "+5",
    "-0",
    "007",
    "1.5",
    "-2.5",
    ".inf",
    ".nan",
    "\"443\"",
    "'x'",
    "true",
    "True",
    "FALSE",
    "{}",
    "[]",
    "&a x",
    "*a",
    "!!str 5",
    "!!int 5",
    "é",
    "\"\\u00e9\"",
    "a: b",
    "- x",
    "[a, b]",
    "{a: 1}",
    "<<: {}",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "2.5e-3",
    "|\n  x",
    "#",
    "'",
    "\"",
    "\t",
    "? x",
    "--- ",
    "...",
    "%YAML 1.2",
    "\"a\u{1b}b\"",
    "'\u{7f}'",
    "\u{85}x",
    "\"\u{9f}\"",
    "\"\\e[31m\"",
    "x\r\ny",
    "\u{feff}",
];

fn mutated() -> impl Strategy<Value = String> {
    let n = RICH.len();
    (0..n, 0..8usize, 0..TRICKY.len(), 0..n).prop_map(move |(at, op, pick, to)| {
        let at = floor(RICH, at);
        let to = floor(RICH, to.max(at));
        let mut s = RICH.to_string();
        match op {
            // Replace the value after a `: ` with a tricky one.
            0..=3 => {
                if let Some(i) = RICH[at..].find(": ") {
                    let start = at + i + 2;
                    let end = RICH[start..].find('\n').map_or(RICH.len(), |e| start + e);
                    s.replace_range(start..end, TRICKY[pick]);
                }
            }
            4 => s.insert_str(at, TRICKY[pick]),
            5 => s.replace_range(at..floor(RICH, to.min(at + 3)), ""),
            6 => s.replace_range(at..to, ""),
            _ => {
                // Duplicate a line.
                let start = RICH[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = RICH[at..].find('\n').map_or(RICH.len(), |e| at + e + 1);
                s.insert_str(end, &RICH[start..end]);
            }
        }
        s
    })
}

fn floor(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at.min(s.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_documents_read_the_same_on_both_paths(text in mutated()) {
        agree(&text)?;
    }

    #[test]
    fn arbitrary_scalars_read_the_same_on_both_paths(
        value in "[ -~é\t]{0,12}",
        field in 0..6usize,
    ) {
        let line = [
            "      host: ", "      memoryGiB: ", "  seed: ", "      maxMigrations: ",
            "      name: ", "      state: ",
        ][field];
        let text = "apiVersion: berth/v1\nkind: Fleet\nspec:\n  vms:\n    - name: a\n      host: h\n      memoryGiB: 1\n  hosts:\n    - name: h\n      memoryGiB: 4\n".to_string();
        let text = match field {
            2 => text.replace("spec:\n", &format!("spec:\n{line}{value}\n")),
            3 => format!("{text}{line}{value}\n"),
            0 | 4 | 5 => text.replacen(
                "      host: h\n",
                &format!("      host: h\n{}{value}\n", if field == 0 { "      fallback: " } else { line }),
                1,
            ),
            _ => text.replacen("      memoryGiB: 1\n", &format!("{line}{value}\n"), 1),
        };
        agree(&text)?;
    }
}

#[test]
fn a_block_scalar_inside_a_flow_mapping_reads_the_same_on_both_paths() {
    let text = RICH.replacen(
        "    - { name: prod, hosts: [hv01, hv02] }",
        "    - { name: |\n  xprod, hosts: [hv01, hv02] }",
        1,
    );
    // saphyr-parser reads `|` there as the start of plain text.
    assert_ne!(text, RICH, "the sample changed: update this test");
    agree(&text).expect("the same on both paths");
}
