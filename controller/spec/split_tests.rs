//! A document read with its `spec.vms` list in parts must read exactly as
//! the whole document does on the fast path (values and positions), and
//! shapes the split cannot vouch for must be read whole.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;

use super::super::fast::{self, Budget, Place};
use super::super::raw::{FleetDocument, FleetVmRaw, PlacementDocument, VmRaw};
use super::{ENDS_THE_LIST, Shape, Sizes, read, read_split, shape};

/// Cuts at every item start that the size allows.
const EVERY_ITEM: Sizes = Sizes {
    min_doc: 0,
    min_part: 1,
    parts: usize::MAX,
};

fn sizes(parts: usize) -> Sizes {
    Sizes {
        parts,
        ..EVERY_ITEM
    }
}

fn budget(text: &str) -> Budget {
    Budget::for_bytes(text.len())
}

fn set_fleet(d: &mut FleetDocument, vms: Vec<FleetVmRaw>) {
    d.spec.value.vms = vms;
}

fn set_placement(d: &mut PlacementDocument, vms: Vec<VmRaw>) {
    d.spec.value.vms = vms;
}

/// The whole read, as text (positions included).
fn whole<T: DeserializeOwned + Debug>(text: &str, budget: Budget) -> Result<String, String> {
    fast::from_str::<T>(text, budget)
        .map(|d| format!("{d:#?}"))
        .map_err(|e| e.0)
}

/// The split read alone (no fallback), as text.
fn split<T, V>(text: &str, budget: Budget, sizes: Sizes, set: fn(&mut T, Vec<V>)) -> Option<String>
where
    T: DeserializeOwned + Debug,
    V: DeserializeOwned + Send,
{
    read_split(text, budget, sizes, set)
        .ok()
        .map(|d| format!("{d:#?}"))
}

/// The kind of document a test generates.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Fleet,
    Placement,
}

/// One VM entry of a generated list.
#[derive(Debug, Clone)]
enum Item {
    /// Block style, with a name in one of several styles, adapters in flow
    /// or block style or none, and a nested list.
    Block {
        name: usize,
        adapters: usize,
        list: bool,
    },
    /// One flow mapping.
    Flow { name: usize },
    /// A double-quoted name over two lines.
    MultiLine,
    /// A flow mapping whose quoted name holds a line that looks like the
    /// next item: a cut there must give up.
    Spanning { single: bool },
}

/// What goes between items.
#[derive(Debug, Clone, Copy)]
enum Gap {
    None,
    Blank,
    /// A comment at column 0, at the items' column, or deeper.
    Comment(usize),
}

/// A generated document.
#[derive(Debug, Clone)]
struct Doc {
    kind: Kind,
    /// The `vms` key's indentation.
    key: usize,
    /// How much deeper than the key the items' `-` is.
    deeper: usize,
    items: Vec<(Gap, Item)>,
    /// A comment after the `vms:` key.
    key_comment: bool,
    /// Blanks and comments after the last item.
    trailer: bool,
    crlf: bool,
}

const NAMES: &[&str] = &[
    "vm-{i}",
    "vm-é-{i}",
    "\"vm {i} \\u00e9\"",
    "'vm ''{i}'''",
    "名前-{i}",
    "\"a: {i}\"",
];

impl Doc {
    /// Whether an item holds a line that looks like an item start.
    fn spans(&self) -> bool {
        self.items
            .iter()
            .any(|(_, i)| matches!(i, Item::Spanning { .. }))
    }

    fn render(&self) -> String {
        let (k, j) = (self.key, self.key + self.deeper);
        let (pad, col) = (" ".repeat(k), " ".repeat(j));
        let f = " ".repeat(j + 2);
        let fleet = matches!(self.kind, Kind::Fleet);
        let mut s = String::from("# a world é\napiVersion: berth/v1\n");
        s += if fleet {
            "kind: Fleet\n"
        } else {
            "kind: Placement\n"
        };
        s += "metadata: { name: \"w é\" }\nspec:\n";
        if fleet {
            s += &format!(
                "{pad}seed: 7\n{pad}hosts:\n{pad}  - {{ name: hv01, memoryGiB: 256, switches: [Prod] }}\n"
            );
        } else {
            s += &format!("{pad}hosts:\n{pad}  - name: hv01\n{pad}    labels: {{ rack: r1 }}\n");
        }
        s += &format!("{pad}vms:");
        if self.key_comment {
            s += "   # the VMs: - x";
        }
        s += "\n";
        // Fields every VM of the kind needs, after its name.
        let needs = |at: &str| {
            if fleet {
                format!("{at}host: hv01\n{at}memoryGiB: 4\n")
            } else {
                format!("{at}host: hv01\n")
            }
        };
        let flow_needs = if fleet {
            "host: hv01, memoryGiB: 2.5"
        } else {
            "host: hv01"
        };
        for (i, (gap, item)) in self.items.iter().enumerate() {
            match gap {
                Gap::None => {}
                Gap::Blank => s += "\n",
                Gap::Comment(0) => s += "# between é\n",
                Gap::Comment(1) => s += &format!("{col}# - not an item\n"),
                Gap::Comment(_) => s += &format!("{f}  # deeper\n"),
            }
            match item {
                Item::Block {
                    name,
                    adapters,
                    list,
                } => {
                    let name = NAMES[name % NAMES.len()].replace("{i}", &i.to_string());
                    s += &format!("{col}- name: {name}\n");
                    s += &needs(&f);
                    match adapters % 3 {
                        0 => {}
                        1 => {
                            s += &format!(
                                "{f}networkAdapters: [{{ name: \"Nic é\", switch: 'Prod', vlanId: 10, acls: [{{ action: allow, direction: both, weight: 10 }}] }}]\n"
                            );
                        }
                        _ => {
                            s += &format!(
                                "{f}networkAdapters:\n{f}  - name: Network Adapter\n{f}    switch: Prod-{i}\n{f}    acls:\n{f}      - action: deny\n{f}        direction: both\n{f}        weight: {i}\n{f}      - {{ action: allow, direction: inbound, weight: 100, remoteAddress: 10.0.0.0/8 }}\n"
                            );
                        }
                    }
                    if *list {
                        s += &if fleet {
                            format!(
                                "{f}backups:\n{f}  - {{ at: 0s, for: 20m }}\n{f}  - at: 1h\n{f}    for: 5m\n"
                            )
                        } else {
                            format!("{f}fallback:\n{f}- hv02\n{f}- \"hv03\"\n")
                        };
                    }
                }
                Item::Flow { name } => {
                    let name = NAMES[name % NAMES.len()].replace("{i}", &i.to_string());
                    s += &format!("{col}- {{ name: {name}, {flow_needs} }}\n");
                }
                Item::MultiLine => {
                    s += &format!("{col}- name: \"first é\n{f}  second {i}\"\n");
                    s += &needs(&f);
                }
                Item::Spanning { single } => {
                    let q = if *single { '\'' } else { '"' };
                    s += &format!("{col}- {{ name: {q}x{i}\n{col}- y{q}, {flow_needs} }}\n");
                }
            }
        }
        if self.trailer {
            s += "\n# the end\n   \n  # really\n";
        }
        if self.crlf {
            s = s.replace('\n', "\r\n");
        }
        s
    }
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (0..NAMES.len(), 0..3usize, any::<bool>())
            .prop_map(|(name, adapters, list)| Item::Block { name, adapters, list }),
        2 => (0..NAMES.len()).prop_map(|name| Item::Flow { name }),
        1 => Just(Item::MultiLine),
        1 => any::<bool>().prop_map(|single| Item::Spanning { single }),
    ]
}

fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        4 => Just(Gap::None),
        1 => Just(Gap::Blank),
        1 => (0..3usize).prop_map(Gap::Comment),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop_oneof![Just(Kind::Fleet), Just(Kind::Placement)],
        prop_oneof![Just(1usize), Just(2), Just(4)],
        prop_oneof![Just(0usize), Just(2), Just(3)],
        proptest::collection::vec((gap(), item()), 2..12),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(kind, key, deeper, items, key_comment, trailer, crlf)| Doc {
                kind,
                key,
                deeper,
                items,
                key_comment,
                trailer,
                crlf,
            },
        )
}

/// The split read of a generated document against its whole read.
fn check_doc(doc: &Doc) -> Result<(), TestCaseError> {
    match doc.kind {
        Kind::Fleet => check::<FleetDocument, FleetVmRaw>(doc, set_fleet),
        Kind::Placement => check::<PlacementDocument, VmRaw>(doc, set_placement),
    }
}

fn check<T, V>(doc: &Doc, set: fn(&mut T, Vec<V>)) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Debug,
    V: DeserializeOwned + Send,
{
    let text = doc.render();
    let b = budget(&text);
    let whole = whole::<T>(&text, b);
    prop_assert!(whole.is_ok(), "{whole:?}\n{text}");
    let whole = whole.unwrap_or_default();
    for parts in [2, 3, 5, usize::MAX] {
        let got = split::<T, V>(&text, b, sizes(parts), set);
        if parts == usize::MAX {
            // Every item start is a cut: that fails only inside a quoted
            // name, and must fail there.
            prop_assert_eq!(got.is_some(), !doc.spans(), "{}", text);
        }
        if let Some(got) = got {
            prop_assert_eq!(&got, &whole, "{} parts of\n{}", parts, text);
        }
        let read = read(&text, b, sizes(parts), set).map(|d| format!("{d:#?}"));
        prop_assert_eq!(read.ok(), Some(whole.clone()));
    }
    Ok(())
}

proptest! {
    // Failures found are kept beside this file (not in a folder of their
    // own at the top of the repository).
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn split_reads_generated_documents_as_the_whole_read(doc in doc()) {
        check_doc(&doc)?;
    }
}

#[test]
fn a_quoted_name_across_an_item_start_is_split_only_elsewhere() {
    let block = |name| Item::Block {
        name,
        adapters: 2,
        list: true,
    };
    let doc = Doc {
        kind: Kind::Fleet,
        key: 2,
        deeper: 2,
        items: vec![
            (Gap::None, Item::Spanning { single: false }),
            (Gap::None, block(0)),
            (Gap::None, block(1)),
            (Gap::None, block(2)),
            (Gap::None, block(3)),
        ],
        key_comment: false,
        trailer: false,
        crlf: false,
    };
    let text = doc.render();
    let b = budget(&text);
    let whole = whole::<FleetDocument>(&text, b).expect("valid");
    assert!(whole.contains("\"x0 - y\""), "{whole}");
    // Cut at every item start, the cut inside the name gives up ...
    assert_eq!(split(&text, b, EVERY_ITEM, set_fleet), None);
    // ... and cut in two, after the name, the split reads it.
    assert_eq!(split(&text, b, sizes(2), set_fleet), Some(whole));
}

/// A Fleet whose `startTime` is a block scalar holding a `vms:` line and
/// item-like lines: the list is empty, and a split must not find one.
const VMS_IN_A_BLOCK_SCALAR: &str = "apiVersion: berth/v1
kind: Fleet
spec:
  seed: 1
  startTime: |
    vms:
    - name: a
      host: hv01
      memoryGiB: 1
    - name: b
      host: hv01
      memoryGiB: 1
";

#[test]
fn a_vms_line_inside_a_scalar_is_not_the_list() {
    let quoted = VMS_IN_A_BLOCK_SCALAR
        .replace("startTime: |", "startTime: \"x")
        .replace("memoryGiB: 1\n", "memoryGiB: 1\"\n")
        .replacen("memoryGiB: 1\"\n", "memoryGiB: 1\n", 1);
    for text in [VMS_IN_A_BLOCK_SCALAR, quoted.as_str()] {
        let b = budget(text);
        let whole = whole::<FleetDocument>(text, b).expect("valid");
        assert!(whole.contains("vms: [],"), "{whole}");
        // The scan takes the scalar's line for the key ...
        let found = shape(text).expect("the plain shape, to the scan");
        assert_eq!(&text[found.head_end - 4..found.head_end], "vms:");
        // ... and the head's read finds no list there.
        assert_eq!(split(text, b, EVERY_ITEM, set_fleet), None, "{text}");
        let read = read(text, b, EVERY_ITEM, set_fleet).map(|d| format!("{d:#?}"));
        assert_eq!(read.ok(), Some(whole));
    }
}

#[test]
fn shapes_the_split_cannot_vouch_for_are_read_whole() {
    let base = "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: hv01\n  vms:\n    - name: a\n      host: hv01\n    - name: b\n      host: hv01\n";
    let cases = [
        // A key of `spec` after the list, at the key's column or the items'.
        format!("{base}  rules: []\n"),
        base.replace("    - ", "  - ").replace("      ", "    ") + "  rules: []\n",
        // A key of the root after `spec`.
        format!("{base}status: {{}}\n"),
        // Text after the list at the items' column that is no item.
        format!("{base}    -x\n"),
        // A lone carriage return (a line break to YAML) in an item or in
        // the head: the lines after it would be counted wrong.
        base.replace("    - name: a\n", "    - name: a\r      fallback: [hv02]\n"),
        base.replace("  hosts:\n", "  hosts:\r"),
        // The list in flow style, or something else on the key's line.
        base.replace("  vms:\n", "  vms: [\n") + "  ]\n",
        base.replace("  vms:\n", "  vms: &a\n"),
        base.replace("  vms:\n", "  vms:#\n"),
        // No plain `spec:` line.
        base.replace("spec:\n", "\"spec\":\n"),
        // Items less indented than the key (not YAML).
        base.replace("    - ", " - ").replace("      ", "   "),
        // A tab before an item.
        base.replace("    - name: b", "\t- name: b"),
    ];
    for (i, text) in cases.iter().enumerate() {
        let b = budget(text);
        let why = read_split(text, b, EVERY_ITEM, set_placement).map(|_| ());
        let why = why.expect_err(text).0;
        // What follows the list is refused before the parts are read (they
        // would give up too, later).
        if i < 5 {
            assert_eq!(why, ENDS_THE_LIST, "{text}");
        }
        let read = read(text, b, EVERY_ITEM, set_placement)
            .map(|d| format!("{d:#?}"))
            .map_err(|e| e.0);
        assert_eq!(read, whole::<PlacementDocument>(text, b), "{text}");
    }
    // The base itself splits, and some cases read well whole.
    assert!(split(base, budget(base), EVERY_ITEM, set_placement).is_some());
    assert!(whole::<PlacementDocument>(&cases[0], budget(&cases[0])).is_ok());
    assert!(whole::<PlacementDocument>(&cases[4], budget(&cases[4])).is_ok());
    assert!(whole::<PlacementDocument>(&cases[5], budget(&cases[5])).is_ok());
}

#[test]
fn the_scan_finds_the_head_and_the_items() {
    let text = "kind: Fleet\nspec:   # s\n  seed: 1\n\n  vms:  # v\n# c\n\n    - name: a\n";
    let items = text.find("# c").expect("comment");
    assert_eq!(
        shape(text),
        Some(Shape {
            head_end: text.find("vms:").expect("key") + 4,
            items,
            first_item: text.find("    - name").expect("item"),
            indent: 4,
        })
    );
    assert_eq!(shape("spec:\n  vms:\n  - a\n").map(|s| s.indent), Some(2));
    for no in [
        "spec:\n  vms:\n",
        "spec:\n  vms:\n  x: 1\n",
        "spec:\nother:\n  vms:\n  - a\n",
        "spec: {}\n  vms:\n  - a\n",
        "spec:\n  vms: []\n",
        "spec:\n    vms:\n  - a\n",
    ] {
        assert_eq!(shape(no), None, "{no:?}");
    }
}

/// A Fleet with `n` VMs whose adapters nest to depth 8 (root, spec, vms, a
/// VM, its adapters, an adapter, its ACLs, an ACL).
fn deep_fleet(n: usize) -> String {
    let mut s = String::from("apiVersion: berth/v1\nkind: Fleet\nspec:\n  hosts: []\n  vms:\n");
    for i in 0..n {
        s += &format!(
            "    - name: vm-é{i}\n      host: hv01\n      memoryGiB: 1\n      networkAdapters:\n        - name: nic\n          acls:\n            - {{ action: allow, direction: both, weight: {i} }}\n"
        );
    }
    s
}

#[test]
fn budgets_bind_the_split_as_they_bind_the_whole_read() {
    let text = deep_fleet(12);
    let full = fast::read_part::<FleetDocument>(&text, budget(&text), Place::default())
        .expect("valid")
        .events;
    for (depth, events, ok) in [
        (8, full, true),
        (7, full, false),
        (8, full - 1, false),
        (48, full + 1, true),
    ] {
        let b = Budget { depth, events };
        let whole = whole::<FleetDocument>(&text, b).ok();
        assert_eq!(whole.is_some(), ok, "depth {depth}, events {events}");
        let got = split(&text, b, sizes(3), set_fleet);
        assert_eq!(got, whole, "depth {depth}, events {events}");
    }
}

#[test]
fn small_documents_and_few_items_are_read_whole() {
    let text = deep_fleet(3);
    let b = budget(&text);
    let big = Sizes {
        min_doc: text.len() + 1,
        ..EVERY_ITEM
    };
    let whole = whole::<FleetDocument>(&text, b).ok();
    for sizes in [
        big,
        sizes(1),
        Sizes {
            min_part: text.len(),
            ..EVERY_ITEM
        },
    ] {
        super::SPLITS.with(|c| c.set(0));
        let got = read(&text, b, sizes, set_fleet).map(|d| format!("{d:#?}"));
        assert_eq!(got.ok(), whole);
        assert_eq!(super::SPLITS.with(std::cell::Cell::get), 0, "{sizes:?}");
    }
    super::SPLITS.with(|c| c.set(0));
    let _ = read(&text, b, EVERY_ITEM, set_fleet);
    assert_eq!(super::SPLITS.with(std::cell::Cell::get), 1);
}

/// A world shaped like the scale benchmark's (hosts in flow style, VMs in
/// block style with adapters and ACLs), of at least `bytes` bytes.
fn world(bytes: usize) -> String {
    let mut s = String::from(
        "apiVersion: berth/v1\nkind: Fleet\nspec:\n  seed: 1\n  faults: { dropAclsOnMigration: false }\n  hosts:\n",
    );
    for h in 0..100 {
        s += &format!(
            "    - {{ name: hv-{h:04}, memoryGiB: 1024, maxMigrations: 4, switches: [Prod-0, Prod-1], migrationRateMiBps: 100000 }}\n"
        );
    }
    s += "  vms:\n";
    let mut id = 0;
    while s.len() < bytes {
        s += &format!(
            "    - name: vm-{id:06}\n      host: hv-{:04}\n      memoryGiB: 4\n      networkAdapters:\n        - name: Network Adapter\n          switch: Prod-{}\n          vlanId: {}\n          acls:\n            - {{ action: allow, direction: inbound, remoteAddress: 10.{}.0.0/16, localPort: \"443\", protocol: tcp, weight: 10, stateful: true }}\n            - {{ action: deny, direction: both, weight: 100 }}\n",
            id % 100,
            id % 2,
            10 + id % 4_000,
            id % 256
        );
        id += 1;
    }
    s
}

#[test]
fn the_standard_sizes_split_a_large_world_as_the_whole_read() {
    let text = world(super::SPLIT_BYTES);
    let b = budget(&text);
    // As on a machine of two cores (one reads documents whole).
    let standard = Sizes {
        parts: 4,
        ..Sizes::standard()
    };
    // Plain `Debug` (positions included): the pretty form of 25,000 VMs
    // takes seconds to write in a debug build.
    let got = read_split(&text, b, standard, set_fleet).map(|d| format!("{d:?}"));
    let whole = fast::from_str::<FleetDocument>(&text, b).map(|d| format!("{d:?}"));
    assert!(
        got.as_ref()
            .is_ok_and(|g| whole.as_ref().is_ok_and(|w| g == w)),
        "split {:?}, whole {:?}",
        got.err(),
        whole.err()
    );
}
