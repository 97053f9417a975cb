//! Property tests: `spec::load` answers every input with `Ok` or `Err` (never
//! a panic), its positions stay inside the file, and the plain rendering of
//! its errors never panics either.

mod common;

use berth::cli::render::spec_error_plain;
use berth::spec::{self, SpecError};
use common::Docs;
use proptest::prelude::*;
use proptest::sample::Index;

/// A valid Placement with every field the contract lists, plus a Controller
/// and a Fleet document, so mutations reach every part of the loader.
const VALID: &str = r#"apiVersion: berth/v1
kind: Placement
metadata:
  name: rack-a
spec:
  policy:
    maxParallelMigrations: 8
    maxMigrationsPerHost: 2
    maxAttempts: 3
    moveTimeout: 30m
    backupWait: 1h
    maxMovesPerApply: 50
    suspend: false
  hosts:
    - name: hv01
      maintenance: false
      maxMigrations: 2
    - name: hv02
  vms:
    - name: web-01
      host: hv01
      fallback: [hv02]
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          vmNetwork: Prod-10
          vlanId: 10
          acls:
            - action: allow
              direction: both
              remoteAddress: 10.0.0.0/8
              localAddress: ANY
              localPort: "443"
              remotePort: "49152-49182"
              protocol: tcp
              weight: 10
              stateful: true
              idleSessionTimeout: 0
              isolationId: 0
            - { action: deny, direction: inbound, weight: 20, protocol: "17" }
    - name: &db db-01
      host: hv02
---
apiVersion: berth/v1
kind: Controller
spec:
  provider:
    sim: { fleet: fleet.yaml }
  resyncInterval: 60s
---
apiVersion: berth/v1
kind: Fleet
spec:
  seed: 7
  faults: { transientFailureRate: 0.0, dropAclsOnMigration: true, overLimitWait: 5m }
  hosts:
    - { name: hv01, memoryGiB: 256, maxMigrations: 2, cpuVendor: intel, switches: [Prod] }
  vms:
    - name: web-01
      host: hv01
      memoryGiB: 8
      state: running
      backups: [{ at: 0s, for: 20m }]
      networkAdapters:
        - { name: Network Adapter, switch: Prod, connected: true, vlanId: 10, acls: [] }
"#;

/// Characters that change the meaning of YAML.
const SPECIAL: &[char] = &[
    ':', '-', '&', '*', '[', ']', '{', '}', '"', '\'', '\t', '\n', ' ', '#', '|', '>', '!', '%',
    '@', '`', ',', '?', '<', '\\', '\0', 'é', '\u{feff}', '\u{2028}',
];

/// One edit of a document's text.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    InsertChar(Index, Index),
    DeleteBytes(Index, usize),
    Indent(Index, usize),
    Dedent(Index, usize),
    TabIndent(Index),
    Truncate(Index),
    ReplaceValue(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::DeleteLine),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, c)| Mutation::InsertChar(at, c)),
        (any::<Index>(), 1usize..16).prop_map(|(at, n)| Mutation::DeleteBytes(at, n)),
        (any::<Index>(), 1usize..5).prop_map(|(l, n)| Mutation::Indent(l, n)),
        (any::<Index>(), 1usize..5).prop_map(|(l, n)| Mutation::Dedent(l, n)),
        any::<Index>().prop_map(Mutation::TabIndent),
        any::<Index>().prop_map(Mutation::Truncate),
        (
            any::<Index>(),
            prop_oneof![
                Just(String::new()),
                Just("~".to_string()),
                Just("-1".to_string()),
                Just("99999999999999999999999".to_string()),
                Just("1e400".to_string()),
                Just(".nan".to_string()),
                Just("*db".to_string()),
                Just("&x".to_string()),
                Just("[]".to_string()),
                Just("{}".to_string()),
                Just("!!binary aGVsbG8=".to_string()),
                Just("yes".to_string()),
                "[a-z0-9:/*&-]{0,12}",
            ]
        )
            .prop_map(|(l, v)| Mutation::ReplaceValue(l, v)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i.index(n));
        }
        Mutation::DuplicateLine(i) => {
            let i = i.index(n);
            lines.insert(i, lines[i].clone());
        }
        Mutation::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
        Mutation::InsertChar(at, c) => {
            let at = boundary(text, at.index(text.len() + 1));
            let c = SPECIAL[c.index(SPECIAL.len())];
            return format!("{}{c}{}", &text[..at], &text[at..]);
        }
        Mutation::DeleteBytes(at, len) => {
            let start = boundary(text, at.index(text.len() + 1));
            let end = boundary(text, (start + len).min(text.len()));
            return format!("{}{}", &text[..start], &text[end..]);
        }
        Mutation::Indent(i, k) => {
            let i = i.index(n);
            lines[i] = format!("{}{}", " ".repeat(*k), lines[i]);
        }
        Mutation::Dedent(i, k) => {
            let i = i.index(n);
            let spaces = lines[i].len() - lines[i].trim_start_matches(' ').len();
            lines[i] = lines[i][spaces.min(*k)..].to_string();
        }
        Mutation::TabIndent(i) => {
            let i = i.index(n);
            lines[i] = format!("\t{}", lines[i].trim_start_matches(' '));
        }
        Mutation::Truncate(at) => {
            let at = boundary(text, at.index(text.len() + 1));
            return text[..at].to_string();
        }
        Mutation::ReplaceValue(i, v) => {
            let i = i.index(n);
            if let Some(colon) = lines[i].find(": ") {
                lines[i] = format!("{}: {v}", &lines[i][..colon]);
            } else {
                lines[i].push_str(v);
            }
        }
    }
    lines.join("\n")
}

/// The largest char boundary at or before `at`.
fn boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Loads `bytes` as one file and checks what must hold whatever the input.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let docs = Docs::new();
    docs.write_bytes("input.yaml", bytes);
    // A panic here fails the property (proptest reports it with the input).
    let result = spec::load(&[docs.path().to_path_buf()]);
    if let Err(e) = result {
        check_error(&e)?;
    }
    Ok(())
}

fn check_error(e: &SpecError) -> Result<(), TestCaseError> {
    prop_assert!(!e.diagnostics.is_empty(), "an error without diagnostics");
    for d in &e.diagnostics {
        prop_assert!(!d.message.trim().is_empty(), "an empty message: {d}");
        let origins = std::iter::once(&d.origin).chain(d.related.iter().map(|r| &r.origin));
        for o in origins {
            let (Some(file), true) = (&o.file, o.loc.is_known()) else {
                continue;
            };
            // A file refused as binary keeps no text (it is never quoted);
            // its position is in the bytes on disk.
            if file.text.is_empty() && d.message.starts_with("not a YAML text file") {
                continue;
            }
            let lines = file.text.split('\n').count() as u32;
            prop_assert!(
                o.loc.line <= lines,
                "line {} of a {lines}-line file: {d}",
                o.loc.line
            );
            prop_assert!(o.loc.column >= 1, "column 0: {d}");
            prop_assert!(
                o.loc.offset <= file.text.len(),
                "offset {} past the end ({} bytes): {d}",
                o.loc.offset,
                file.text.len()
            );
        }
    }
    let shown = spec_error_plain(e);
    prop_assert!(shown.contains("problem"), "{shown}");
    Ok(())
}

/// 256 cases keep a debug run to a few seconds; `PROPTEST_CASES=N` asks for
/// a longer hunt.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

#[test]
fn the_valid_document_is_valid() {
    let docs = Docs::new();
    docs.write_bytes("input.yaml", VALID.as_bytes());
    let d = docs.ok();
    assert_eq!(d.vms.len(), 2);
    assert_eq!(d.fleets.len(), 1);
    assert!(d.controller.is_some());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    #[test]
    fn yaml_like_text_never_panics(
        text in r#"(apiVersion: berth/v1\nkind: (Placement|Fleet|Controller)\n)?([ a-z:\-\[\]{},&*"'#|>!0-9\n\t]|spec|hosts|vms|name|host|acls|weight|---){0,200}"#
    ) {
        check(text.as_bytes())?;
    }

    #[test]
    fn mutated_valid_documents_never_panic(
        mutations in proptest::collection::vec(mutation(), 1..8)
    ) {
        let mut text = VALID.to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        check(text.as_bytes())?;
    }
}
