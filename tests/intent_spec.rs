//! Validation of intent: host choices, host groups, labels and rules, each
//! problem reported at its file:line:col.

mod common;

use berth::spec::{RuleKind, RuleSpec};
use common::{Docs, expect_at, list};

const HOSTS: &str = r#"
    apiVersion: berth/v1
    kind: Placement
    spec:
      hosts:
        - { name: hv01, labels: { rack: r1 } }
        - { name: hv02, labels: { rack: r1 } }
        - { name: hv03, labels: { rack: r2 } }
      hostGroups:
        - { name: prod, hosts: [hv01, hv02, hv03] }
    "#;

#[test]
fn choices_groups_labels_and_rules_load_into_the_model() {
    let docs = Docs::new();
    docs.write("hosts.yaml", HOSTS);
    docs.write(
        "vms.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy: { headroom: 1 }
          vms:
            - { name: dc-01, hosts: [hv01, hv03] }
            - { name: dc-02, hostGroup: prod }
            - { name: app-01, host: hv02 }
            - { name: db-01, hosts: [hv02, hv03] }
          rules:
            - { name: dcs-apart, separate: [dc-01, dc-02], by: rack }
            - { name: app-with-db, together: [app-01, db-01] }
        "#,
    );
    let d = docs.ok();
    assert_eq!(d.intent.headroom, 1);
    assert_eq!(d.intent.host_groups["prod"].hosts, ["hv01", "hv02", "hv03"]);
    assert_eq!(d.hosts["hv03"].labels["rack"], "r2");
    let dc1 = d.vms["dc-01"].choice.as_ref().expect("dc-01 chooses");
    assert_eq!(dc1.hosts, ["hv01", "hv03"]);
    assert_eq!(dc1.group, None);
    let dc2 = d.vms["dc-02"].choice.as_ref().expect("dc-02 chooses");
    assert_eq!(dc2.group.as_deref(), Some("prod"));
    assert_eq!(dc2.hosts, ["hv01", "hv02", "hv03"]);
    assert!(d.vms["app-01"].choice.is_none());
    let rules: Vec<(&str, &RuleKind, &[String])> = d
        .intent
        .rules
        .iter()
        .map(|r: &RuleSpec| (r.name.as_str(), &r.kind, r.vms.as_slice()))
        .collect();
    assert_eq!(
        rules,
        vec![
            (
                "dcs-apart",
                &RuleKind::Separate {
                    by: Some("rack".to_string())
                },
                &["dc-01".to_string(), "dc-02".to_string()][..]
            ),
            (
                "app-with-db",
                &RuleKind::Together,
                &["app-01".to_string(), "db-01".to_string()][..]
            ),
        ]
    );
}

#[test]
fn unknown_vms_groups_hosts_and_labels_are_reported_where_written() {
    let docs = Docs::new();
    docs.write("hosts.yaml", HOSTS);
    docs.write(
        "vms.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - { name: dc-01, hosts: [hv01, hv09] }
            - { name: dc-02, hostGroup: prd }
          hostGroups:
            - { name: edge, hosts: [hv1] }
          rules:
            - { name: apart, separate: [dc-01, dc-03] }
            - { name: racks, separate: [dc-01, dc-02], by: rak }
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 5, "{}", list(&e));
    expect_at(
        &e,
        "vms.yaml",
        5,
        36,
        "VM `dc-01` names `hv09`, which is not a declared host",
    );
    let d = expect_at(
        &e,
        "vms.yaml",
        6,
        33,
        "host group `prd`, which is not declared",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `prod`?"));
    let d = expect_at(&e, "vms.yaml", 8, 29, "host group `edge` names `hv1`");
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("hv0")),
        "{d:?}"
    );
    let d = expect_at(
        &e,
        "vms.yaml",
        10,
        40,
        "names VM `dc-03`, which is not declared",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `dc-02`?"));
    let d = expect_at(&e, "vms.yaml", 11, 52, "label `rak`, which no host has");
    assert_eq!(d.help.as_deref(), Some("did you mean `rack`?"));
}

#[test]
fn a_vm_has_exactly_one_of_host_hosts_and_host_group() {
    let docs = Docs::new();
    docs.write("hosts.yaml", HOSTS);
    docs.write(
        "vms.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - { name: a, host: hv01, hosts: [hv02] }
            - { name: b, hosts: [hv01], hostGroup: prod }
            - { name: c }
            - { name: d, hosts: [] }
            - { name: e, hosts: [hv01, hv01] }
            - { name: f, hosts: [hv01, hv02], fallback: [hv03] }
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 6, "{}", list(&e));
    for (line, vm) in [(5, "a"), (6, "b"), (7, "c")] {
        expect_at(
            &e,
            "vms.yaml",
            line,
            15,
            &format!("VM `{vm}` must have exactly one of `host`, `hosts`, `hostGroup`"),
        );
    }
    expect_at(&e, "vms.yaml", 8, 25, "VM `d` has an empty `hosts` list");
    expect_at(
        &e,
        "vms.yaml",
        9,
        32,
        "host `hv01` is listed twice for VM `e`",
    );
    expect_at(
        &e,
        "vms.yaml",
        10,
        15,
        "`fallback`, which only applies with `host`",
    );
}

#[test]
fn contradictory_rules_are_reported_with_both_rules() {
    let docs = Docs::new();
    docs.write("hosts.yaml", HOSTS);
    docs.write(
        "vms.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - { name: a, hostGroup: prod }
            - { name: b, hostGroup: prod }
            - { name: c, host: hv01 }
            - { name: d, hosts: [hv02, hv03] }
            - { name: p1, host: hv01 }
            - { name: p2, host: hv02 }
          rules:
            - { name: with, together: [a, b] }
            - { name: apart, separate: [a, b] }
            - { name: pair, together: [c, d] }
            - { name: racks, separate: [p1, p2], by: rack }
            - { name: odd, separate: [a], together: [b, c] }
            - { name: alone, separate: [a] }
            - { name: bytogether, together: [a, b], by: rack }
        "#,
    );
    let e = docs.err();
    let d = expect_at(
        &e,
        "vms.yaml",
        13,
        15,
        "contradictory rules: `apart` separates a and b, which `together` rules keep on one host",
    );
    assert_eq!(d.related.len(), 1, "{d:?}");
    expect_at(
        &e,
        "vms.yaml",
        14,
        15,
        "rule `pair` keeps c, d together, but no host is allowed for all of them",
    );
    expect_at(
        &e,
        "vms.yaml",
        10,
        15,
        "rule `racks` separates p1 and p2, but both are pinned to rack `r1`",
    );
    expect_at(
        &e,
        "vms.yaml",
        16,
        15,
        "rule `odd` must have exactly one of `separate` and `together`",
    );
    expect_at(
        &e,
        "vms.yaml",
        17,
        32,
        "rule `alone` needs at least two VMs",
    );
    expect_at(&e, "vms.yaml", 18, 49, "`by` belongs to `separate` rules");
}

#[test]
fn rule_and_group_names_are_unique() {
    let docs = Docs::new();
    docs.write("hosts.yaml", HOSTS);
    docs.write(
        "vms.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hostGroups:
            - { name: prod, hosts: [hv01] }
          vms:
            - { name: a, hostGroup: prod }
            - { name: b, hostGroup: prod }
          rules:
            - { name: r, separate: [a, b] }
            - { name: r, together: [a, b] }
          policy: { headroom: -1 }
        "#,
    );
    let e = docs.err();
    let d = expect_at(&e, "vms.yaml", 5, 15, "host group `prod` is declared twice");
    assert_eq!(d.related.len(), 1);
    expect_at(&e, "vms.yaml", 11, 15, "rule `r` is declared twice");
    expect_at(
        &e,
        "vms.yaml",
        12,
        23,
        "`headroom` must be between 0 and 1000, not -1",
    );
}
