//! One test per validation rule of `spec::load`: each writes small documents
//! into a scratch directory, checks the diagnostics (message, file, line and
//! column) and snapshots the plain rendering users see.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use berth::spec::{
    AclAction, AddressMatch, CpuVendor, Direction, Policy, PortMatch, PowerState, ProtocolMatch,
    ProviderSpec,
};
use common::{Docs, dedent, expect_at, expect_msg, file_name, list};

/// (line, column) of the only occurrence of `needle` in `text` (1-based,
/// columns in characters), so positions in longer documents stay readable.
#[track_caller]
fn pos(text: &str, needle: &str) -> (u32, u32) {
    let text = dedent(text);
    let hits: Vec<usize> = text.match_indices(needle).map(|(i, _)| i).collect();
    assert_eq!(
        hits.len(),
        1,
        "`{needle}` must occur exactly once in the document"
    );
    let before = &text[..hits[0]];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u32, col as u32)
}

/// A Placement with host hv01 and VM web-01 whose one adapter carries `acls`
/// (one flow mapping per line); the first ACL is on line 12, column 13.
fn acl_doc(acls: &str) -> String {
    let mut doc = String::from(
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: hv01\n  vms:\n    - name: web-01\n      host: hv01\n      networkAdapters:\n        - name: Network Adapter\n          acls:\n",
    );
    for line in dedent(acls).lines().filter(|l| !l.trim().is_empty()) {
        doc.push_str("            ");
        doc.push_str(line);
        doc.push('\n');
    }
    doc
}

/// Writes `acls` on one adapter as `acl.yaml`; returns the documents and
/// the text written (for `pos`).
fn acl_err(acls: &str) -> (Docs, String) {
    let docs = Docs::new();
    let text = acl_doc(acls);
    docs.write("acl.yaml", &text);
    (docs, text)
}

// ------------------------------------------------------------ parse-level rules

#[test]
fn unknown_field_suggests_the_closest_name() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
          vms:
            - name: web-01
              hsot: hv01
        "#,
    );
    docs.write(
        "b.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - name: db-01
              host: hv01
              networkAdapters:
                - name: eth0
                  acls:
                    - { action: deny, direction: inbound, wieght: 5 }
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let d = expect_at(&e, "a.yaml", 8, 7, "unknown field `hsot`");
    assert_eq!(d.help.as_deref(), Some("did you mean `host`?"));
    let d = expect_at(&e, "b.yaml", 10, 51, "unknown field `wieght`");
    assert_eq!(d.help.as_deref(), Some("did you mean `weight`?"));
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn wrong_api_version_and_kind_name_the_supported_ones() {
    let docs = Docs::new();
    docs.write(
        "k.yaml",
        r#"
        apiVersion: berth/v2
        kind: Placement
        ---
        apiVersion: berth/v1
        kind: Deployment
        ---
        apiVersion: berth/v1
        kind: placement
        ---
        kind: Fleet
        spec: {}
        ---
        apiVersion: berth/v1
        spec: {}
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 5, "{}", list(&e));
    let d = expect_at(&e, "k.yaml", 1, 13, "unsupported apiVersion `berth/v2`");
    assert_eq!(
        d.help.as_deref(),
        Some("the supported apiVersion is `berth/v1`")
    );
    let d = expect_at(&e, "k.yaml", 5, 7, "unsupported kind `Deployment`");
    assert_eq!(
        d.help.as_deref(),
        Some("the supported kinds are Placement, Controller, Fleet")
    );
    let d = expect_at(&e, "k.yaml", 8, 7, "unsupported kind `placement`");
    assert_eq!(d.help.as_deref(), Some("did you mean `Placement`?"));
    let d = expect_at(&e, "k.yaml", 10, 1, "document has no `apiVersion`");
    assert_eq!(d.help.as_deref(), Some("add `apiVersion: berth/v1`"));
    let d = expect_at(&e, "k.yaml", 13, 1, "document has no `kind`");
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .contains("Placement, Controller, Fleet")
    );
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn a_syntax_error_points_at_its_position() {
    let docs = Docs::new();
    docs.write(
        "s.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts: [{ name: hv01 }
          vms: []
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    let d = &e.diagnostics[0];
    assert_eq!(file_name(&d.origin), "s.yaml");
    // The highlighted range must be on the reported line, not at the top of
    // the file.
    let text = &d.origin.file.as_ref().expect("file").text;
    let line_of_offset = text[..d.origin.loc.offset].matches('\n').count() as u32 + 1;
    assert_eq!(line_of_offset, d.origin.loc.line, "{}", list(&e));
    assert!(d.origin.loc.line >= 4, "{}", list(&e));
    insta::assert_snapshot!(docs.render(&e));
}

// ------------------------------------------------------------ duplicates

#[test]
fn duplicate_host_and_vm_in_one_file_name_both_places() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
            - name: hv02
            - name: hv01
          vms:
            - name: web-01
              host: hv01
            - name: web-01
              host: hv02
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let d = expect_at(&e, "a.yaml", 7, 13, "host `hv01` is declared twice");
    assert_eq!(d.related.len(), 1);
    assert_eq!(d.related[0].label, "first declared here");
    assert_eq!(
        (d.related[0].origin.loc.line, d.related[0].origin.loc.column),
        (5, 13)
    );
    let d = expect_at(&e, "a.yaml", 11, 13, "VM `web-01` is declared twice");
    assert_eq!(
        (d.related[0].origin.loc.line, d.related[0].origin.loc.column),
        (9, 13)
    );
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn duplicate_host_and_vm_across_files_name_both_files() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
          vms:
            - name: web-01
              host: hv01
        "#,
    );
    docs.write(
        "b.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        metadata:
          name: rack-b
        spec:
          hosts:
            - name: hv02
            - name: hv01
          vms:
            - name: web-01
              host: hv02
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let d = expect_at(&e, "b.yaml", 8, 13, "host `hv01` is declared twice");
    assert_eq!(file_name(&d.related[0].origin), "a.yaml");
    assert_eq!(d.related[0].origin.loc.line, 5);
    let d = expect_at(&e, "b.yaml", 10, 13, "VM `web-01` is declared twice");
    assert_eq!(file_name(&d.related[0].origin), "a.yaml");
    assert_eq!(d.related[0].origin.loc.line, 7);
    let shown = docs.render(&e);
    assert!(
        shown.contains("first declared here ([DIR]/a.yaml:5:13)"),
        "{shown}"
    );
    assert!(
        shown.contains("first declared here ([DIR]/a.yaml:7:13)"),
        "{shown}"
    );
    insta::assert_snapshot!(shown);
}

// ------------------------------------------------------------ references

#[test]
fn vm_host_must_be_declared() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
            - name: hv02
          vms:
            - name: web-01
              host: hv09
            - name: web-02
              host: storage-array
        "#,
    );
    // A host declared in another file is a declared host.
    docs.write(
        "b.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - name: web-03
              host: hv02
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let d = expect_at(
        &e,
        "a.yaml",
        9,
        13,
        "VM `web-01` names host `hv09`, which is not a declared host",
    );
    // hv01 and hv02 are equally close; either is a good hint.
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .starts_with("did you mean `hv0"),
        "{d}"
    );
    let d = expect_at(&e, "a.yaml", 11, 13, "names host `storage-array`");
    assert_eq!(d.help.as_deref(), Some("declare it under `spec.hosts`"));
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn fallback_must_be_declared_and_not_the_vms_own_host() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
            - name: hv02
          vms:
            - name: web-01
              host: hv01
              fallback: [hv02, hv07]
            - name: web-02
              host: hv01
              fallback:
                - hv01
                - hv02
                - hv02
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 3, "{}", list(&e));
    expect_at(
        &e,
        "a.yaml",
        10,
        24,
        "VM `web-01` names fallback `hv07`, which is not a declared host",
    );
    let d = expect_at(
        &e,
        "a.yaml",
        14,
        11,
        "VM `web-02` lists its own host `hv01` as a fallback",
    );
    assert!(d.help.is_some());
    expect_at(
        &e,
        "a.yaml",
        16,
        11,
        "fallback `hv02` is listed twice for VM `web-02`",
    );
    insta::assert_snapshot!(docs.render(&e));
}

// ------------------------------------------------------------ singletons

#[test]
fn more_than_one_policy_is_refused() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            maxParallelMigrations: 4
        "#,
    );
    docs.write(
        "b.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            maxAttempts: 5
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    let d = expect_at(
        &e,
        "b.yaml",
        5,
        5,
        "more than one `policy` in the documents",
    );
    assert_eq!(file_name(&d.related[0].origin), "a.yaml");
    assert_eq!(d.related[0].origin.loc.line, 5);
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn more_than_one_controller_is_refused() {
    let docs = Docs::new();
    docs.write(
        "controller.yaml",
        r#"
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            sim: { fleet: fleet.yaml }
        ---
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            hyperv: { hosts: [hv01] }
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    let d = expect_at(
        &e,
        "controller.yaml",
        8,
        7,
        "more than one Controller document",
    );
    assert_eq!(
        (d.related[0].origin.loc.line, d.related[0].origin.loc.column),
        (2, 7)
    );
    insta::assert_snapshot!(docs.render(&e));
}

// ------------------------------------------------------------ ACLs

#[test]
fn acl_action_and_direction_are_checked() {
    let acls = r#"
        - { action: permit, direction: inbound, weight: 1 }
        - { action: DENY, direction: ingress, weight: 2 }
        - { action: Allow, direction: Outbound, weight: 3 }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let (l, c) = pos(&t, "permit");
    let d = expect_at(&e, "acl.yaml", l, c, "unknown ACL action `permit`");
    assert_eq!(d.help.as_deref(), Some("expected `allow` or `deny`"));
    let (l, c) = pos(&t, "ingress");
    let d = expect_at(&e, "acl.yaml", l, c, "unknown ACL direction `ingress`");
    assert_eq!(
        d.help.as_deref(),
        Some("expected `inbound`, `outbound` or `both`")
    );
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn acl_addresses_accept_ip_cidr_and_any() {
    let docs = Docs::new();
    docs.write(
        "acl.yaml",
        &acl_doc(
            r#"
            - { action: allow, direction: inbound, weight: 1, remoteAddress: 10.1.2.3 }
            - { action: allow, direction: inbound, weight: 2, remoteAddress: 10.0.0.0/8 }
            - { action: allow, direction: inbound, weight: 3, remoteAddress: 192.168.1.77/24 }
            - { action: allow, direction: inbound, weight: 4, localAddress: "fe80::/10" }
            - { action: allow, direction: inbound, weight: 5, localAddress: "::1" }
            - { action: allow, direction: inbound, weight: 6, remoteAddress: ANY, localAddress: any }
            - { action: allow, direction: inbound, weight: 7 }
            "#,
        ),
    );
    let d = docs.ok();
    let acls = d.vms["web-01"].adapters.as_ref().expect("managed")[0]
        .acls
        .clone()
        .expect("ACLs managed");
    let net = |s: &str| AddressMatch::Net(s.parse().expect("a network"));
    let ip = |s: &str| AddressMatch::Net(s.parse::<IpAddr>().expect("an IP").into());
    let got: Vec<(u32, AddressMatch, AddressMatch)> = acls
        .iter()
        .map(|a| (a.weight, a.local_address, a.remote_address))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, AddressMatch::Any, ip("10.1.2.3")),
            (2, AddressMatch::Any, net("10.0.0.0/8")),
            // A CIDR with host bits set names its network.
            (3, AddressMatch::Any, net("192.168.1.0/24")),
            (4, net("fe80::/10"), AddressMatch::Any),
            (5, ip("::1"), AddressMatch::Any),
            (6, AddressMatch::Any, AddressMatch::Any),
            (7, AddressMatch::Any, AddressMatch::Any),
        ]
    );
    assert_eq!(ip("10.1.2.3"), net("10.1.2.3/32"));
}

#[test]
fn acl_addresses_reject_what_is_not_an_address() {
    let acls = r#"
        - { action: allow, direction: inbound, weight: 1, remoteAddress: 10.0.0.300 }
        - { action: allow, direction: inbound, weight: 2, remoteAddress: 10.0.0.0/33 }
        - { action: allow, direction: inbound, weight: 3, localAddress: db.example.com }
        - { action: allow, direction: inbound, weight: 4, localAddress: "" }
        - { action: allow, direction: inbound, weight: 5, remoteAddress: "10.0.0.0/8,10.1.0.0/16" }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 5, "{}", list(&e));
    for needle in [
        "10.0.0.300",
        "10.0.0.0/33",
        "db.example.com",
        "\"\"",
        "\"10.0.0.0/8,10.1.0.0/16\"",
    ] {
        let (l, c) = pos(&t, needle);
        let d = expect_at(&e, "acl.yaml", l, c, "invalid address `");
        assert!(d.help.as_deref().unwrap_or("").contains("CIDR"), "{needle}");
    }
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn acl_ports_accept_numbers_ranges_and_any() {
    let docs = Docs::new();
    docs.write(
        "acl.yaml",
        &acl_doc(
            r#"
            - { action: allow, direction: inbound, weight: 1, localPort: "443" }
            - { action: allow, direction: inbound, weight: 2, localPort: 8080 }
            - { action: allow, direction: inbound, weight: 3, remotePort: "49152-49182" }
            - { action: allow, direction: inbound, weight: 4, remotePort: "80-80", localPort: ANY }
            - { action: allow, direction: inbound, weight: 5, localPort: "0", remotePort: "65535" }
            - { action: allow, direction: inbound, weight: 6 }
            "#,
        ),
    );
    let d = docs.ok();
    let acls = d.vms["web-01"].adapters.as_ref().expect("managed")[0]
        .acls
        .clone()
        .expect("ACLs managed");
    let got: Vec<(u32, PortMatch, PortMatch)> = acls
        .iter()
        .map(|a| (a.weight, a.local_port, a.remote_port))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, PortMatch::Range(443, 443), PortMatch::Any),
            (2, PortMatch::Range(8080, 8080), PortMatch::Any),
            (3, PortMatch::Any, PortMatch::Range(49152, 49182)),
            (4, PortMatch::Any, PortMatch::Range(80, 80)),
            (5, PortMatch::Range(0, 0), PortMatch::Range(65535, 65535)),
            (6, PortMatch::Any, PortMatch::Any),
        ]
    );
}

#[test]
fn acl_ports_reject_backwards_ranges_and_non_ports() {
    let acls = r#"
        - { action: allow, direction: inbound, weight: 1, localPort: "50000-40000" }
        - { action: allow, direction: inbound, weight: 2, localPort: "65536" }
        - { action: allow, direction: inbound, weight: 3, remotePort: "80-" }
        - { action: allow, direction: inbound, weight: 4, remotePort: https }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 4, "{}", list(&e));
    let (l, c) = pos(&t, "\"50000-40000\"");
    expect_at(
        &e,
        "acl.yaml",
        l,
        c,
        "port range `50000-40000` runs backwards (50000 > 40000)",
    );
    let (l, c) = pos(&t, "\"65536\"");
    expect_at(&e, "acl.yaml", l, c, "invalid port `65536`");
    let (l, c) = pos(&t, "\"80-\"");
    expect_at(&e, "acl.yaml", l, c, "invalid port `80-`");
    let (l, c) = pos(&t, "https");
    let d = expect_at(&e, "acl.yaml", l, c, "invalid port `https`");
    assert!(d.help.as_deref().unwrap_or("").contains("49152-49182"));
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn acl_protocols_accept_names_numbers_and_any() {
    let docs = Docs::new();
    docs.write(
        "acl.yaml",
        &acl_doc(
            r#"
            - { action: allow, direction: inbound, weight: 1, protocol: tcp }
            - { action: allow, direction: inbound, weight: 2, protocol: UDP }
            - { action: allow, direction: inbound, weight: 3, protocol: icmp }
            - { action: allow, direction: inbound, weight: 4, protocol: 0 }
            - { action: allow, direction: inbound, weight: 5, protocol: "255" }
            - { action: allow, direction: inbound, weight: 6, protocol: ANY }
            - { action: allow, direction: inbound, weight: 7, protocol: 47 }
            - { action: allow, direction: inbound, weight: 8 }
            "#,
        ),
    );
    let d = docs.ok();
    let acls = d.vms["web-01"].adapters.as_ref().expect("managed")[0]
        .acls
        .clone()
        .expect("ACLs managed");
    let got: Vec<ProtocolMatch> = acls.iter().map(|a| a.protocol).collect();
    use ProtocolMatch::{Any, Number};
    assert_eq!(
        got,
        vec![
            Number(6),
            Number(17),
            Number(1),
            Number(0),
            Number(255),
            Any,
            Number(47),
            Any
        ]
    );
}

#[test]
fn acl_protocols_reject_256_and_unknown_names() {
    let acls = r#"
        - { action: allow, direction: inbound, weight: 1, protocol: 256 }
        - { action: allow, direction: inbound, weight: 2, protocol: sctp }
        - { action: allow, direction: inbound, weight: 3, protocol: -1 }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 3, "{}", list(&e));
    for (needle, shown) in [("256", "256"), ("sctp", "sctp"), ("-1 ", "-1")] {
        let (l, c) = pos(&t, needle);
        let d = expect_at(&e, "acl.yaml", l, c, &format!("invalid protocol `{shown}`"));
        assert!(d.help.as_deref().unwrap_or("").contains("0-255"));
    }
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn acl_weight_must_be_1_to_65535() {
    let acls = r#"
        - { action: allow, direction: inbound, weight: 0 }
        - { action: allow, direction: inbound, weight: 1 }
        - { action: allow, direction: inbound, weight: 65535 }
        - { action: allow, direction: inbound, weight: 65536 }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let (l, c) = pos(&t, "weight: 0 ");
    expect_at(
        &e,
        "acl.yaml",
        l,
        c + 8,
        "`weight` must be between 1 and 65535, not 0",
    );
    let (l, c) = pos(&t, "65536");
    expect_at(
        &e,
        "acl.yaml",
        l,
        c,
        "`weight` must be between 1 and 65535, not 65536",
    );
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn idle_session_timeout_needs_a_stateful_rule() {
    let acls = r#"
        - { action: allow, direction: inbound, weight: 1, idleSessionTimeout: 30 }
        - { action: allow, direction: inbound, weight: 2, stateful: false, idleSessionTimeout: 0 }
        - { action: allow, direction: outbound, weight: 1, stateful: true, idleSessionTimeout: 45 }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let (l, c) = pos(&t, "30 }");
    let d = expect_at(
        &e,
        "acl.yaml",
        l,
        c,
        "`idleSessionTimeout` is set on a rule that is not stateful",
    );
    assert_eq!(
        d.help.as_deref(),
        Some("add `stateful: true` or remove `idleSessionTimeout`")
    );
    let (l, c) = pos(&t, "idleSessionTimeout: 0 }");
    expect_at(&e, "acl.yaml", l, c + 20, "not stateful");
    insta::assert_snapshot!(docs.render(&e));

    // The stateful rule on its own is fine and keeps its timeout.
    let ok = Docs::new();
    ok.write(
        "acl.yaml",
        &acl_doc("- { action: allow, direction: outbound, weight: 1, stateful: true, idleSessionTimeout: 45 }"),
    );
    let d = ok.ok();
    let acl = &d.vms["web-01"].adapters.as_ref().expect("managed")[0]
        .acls
        .as_ref()
        .expect("ACLs")[0];
    assert!(acl.stateful);
    assert_eq!(acl.idle_session_timeout, 45);
}

#[test]
fn acl_weights_are_unique_per_adapter_and_direction() {
    let acls = r#"
        - { action: allow, direction: inbound, weight: 10, protocol: tcp }
        - { action: deny, direction: inbound, weight: 10, protocol: udp }
        - { action: allow, direction: outbound, weight: 10 }
        - { action: allow, direction: inbound, weight: 20 }
        - { action: deny, direction: both, weight: 20, remoteAddress: 10.9.9.9 }
        "#;
    let (docs, t) = acl_err(acls);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    let second = pos(&t, "weight: 10, protocol: udp").0;
    let first = pos(&t, "weight: 10, protocol: tcp").0;
    let d = expect_at(
        &e,
        "acl.yaml",
        second,
        59,
        "two inbound ACLs with weight 10 on one adapter",
    );
    assert_eq!(d.related[0].origin.loc.line, first);
    let both = pos(&t, "both").0;
    let d = expect_at(
        &e,
        "acl.yaml",
        both,
        56,
        "two inbound ACLs with weight 20 on one adapter",
    );
    assert_eq!(d.related[0].origin.loc.line, pos(&t, "weight: 20 }").0);
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .contains("`both` counts for each direction")
    );
    insta::assert_snapshot!(docs.render(&e));

    // A `both` rule collides with an `outbound` one the same way, and the
    // same weight in the two directions is fine.
    let (docs, _) = acl_err(
        r#"
        - { action: allow, direction: both, weight: 7 }
        - { action: allow, direction: outbound, weight: 7 }
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    expect_msg(&e, "two outbound ACLs with weight 7");
}

#[test]
fn acl_both_normalises_into_inbound_and_outbound_rules() {
    let docs = Docs::new();
    docs.write(
        "acl.yaml",
        &acl_doc(
            r#"
            - { action: deny, direction: outbound, weight: 5 }
            - { action: allow, direction: both, weight: 100, remoteAddress: 10.0.0.0/8, localPort: "443", protocol: tcp, stateful: true, idleSessionTimeout: 60, isolationId: 3 }
            - { action: allow, direction: inbound, weight: 1 }
            "#,
        ),
    );
    let d = docs.ok();
    let acls = d.vms["web-01"].adapters.as_ref().expect("managed")[0]
        .acls
        .clone()
        .expect("ACLs managed");
    let keys: Vec<(Direction, u32)> = acls.iter().map(|a| a.key()).collect();
    // Sorted by (direction, weight); `both` became one rule per direction.
    assert_eq!(
        keys,
        vec![
            (Direction::Inbound, 1),
            (Direction::Inbound, 100),
            (Direction::Outbound, 5),
            (Direction::Outbound, 100),
        ]
    );
    let (inb, out) = (&acls[1], &acls[3]);
    assert_eq!(inb.action, AclAction::Allow);
    assert_eq!(
        inb.remote_address,
        AddressMatch::Net("10.0.0.0/8".parse().expect("net"))
    );
    assert_eq!(inb.local_port, PortMatch::Range(443, 443));
    assert_eq!(inb.protocol, ProtocolMatch::Number(6));
    assert!(inb.stateful);
    assert_eq!(inb.idle_session_timeout, 60);
    assert_eq!(inb.isolation_id, 3);
    // Apart from the direction the two halves are the same rule.
    let mut flipped = out.clone();
    flipped.direction = Direction::Inbound;
    assert_eq!(&flipped, inb);
    assert_eq!(acls[0].action, AclAction::Allow);
    assert_eq!(acls[2].action, AclAction::Deny);
}

#[test]
fn empty_acl_list_means_no_acls_and_omitted_means_unmanaged() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
          vms:
            - name: web-01
              host: hv01
              networkAdapters:
                - name: eth0
                  switch: Prod
                  acls: []
                - name: eth1
            - name: web-02
              host: hv01
        "#,
    );
    let d = docs.ok();
    let adapters = d.vms["web-01"].adapters.as_ref().expect("managed");
    assert_eq!(adapters[0].acls, Some(vec![]));
    assert_eq!(adapters[0].switch.as_deref(), Some("Prod"));
    assert_eq!(adapters[1].acls, None);
    assert_eq!(adapters[1].switch, None);
    assert_eq!(d.vms["web-02"].adapters, None);
}

// ------------------------------------------------------------ values

#[test]
fn durations_with_bad_spellings_are_refused() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            moveTimeout: 30 minutes
            backupWait: 1h1h
        "#,
    );
    docs.write(
        "b.yaml",
        r#"
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            hyperv:
              hosts: [hv01]
              callTimeout: 1.5m
          resyncInterval: 90
        "#,
    );
    docs.write(
        "c.yaml",
        r#"
        apiVersion: berth/v1
        kind: Fleet
        spec:
          faults:
            overLimitWait: 5y
          hosts:
            - { name: hv01, memoryGiB: 64 }
          vms:
            - name: web-01
              host: hv01
              memoryGiB: 4
              backups: [{ at: 0s, for: "-20m" }]
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 6, "{}", list(&e));
    // A space or a decimal point ends the number: the unit is missing.
    expect_at(&e, "a.yaml", 5, 18, "duration `30 minutes` lacks a unit");
    expect_at(
        &e,
        "a.yaml",
        6,
        17,
        "duration `1h1h` repeats a unit or has them out of order",
    );
    expect_at(&e, "b.yaml", 7, 20, "duration `1.5m` lacks a unit");
    expect_at(&e, "b.yaml", 8, 19, "duration `90` lacks a unit");
    expect_at(&e, "c.yaml", 5, 20, "unknown unit `y` in `5y`");
    expect_at(&e, "c.yaml", 12, 32, "invalid duration `-20m`");
    for d in &e.diagnostics {
        assert!(d.message.contains("`90s`, `5m` or `1h30m`"), "{d}");
    }
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn zero_timeouts_are_refused() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            moveTimeout: 0s
            maxAttempts: 0
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 2, "{}", list(&e));
    expect_at(&e, "a.yaml", 5, 18, "the duration must be longer than 0s");
    expect_at(
        &e,
        "a.yaml",
        6,
        18,
        "`maxAttempts` must be between 1 and 100, not 0",
    );
}

#[test]
fn durations_become_durations() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            moveTimeout: 1h30m
            backupWait: 250ms
        ---
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            scvmm: { server: vmm01, callTimeout: 2d }
          resyncInterval: 90s
        "#,
    );
    docs.write(
        "fleet.yaml",
        r#"
        apiVersion: berth/v1
        kind: Fleet
        spec:
          faults:
            overLimitWait: 5m
          hosts:
            - { name: hv01, memoryGiB: 64 }
          vms:
            - name: web-01
              host: hv01
              memoryGiB: 4
              backups: [{ at: 0s, for: 20m }, { at: 1h, for: 1m30s }]
        "#,
    );
    let d = docs.ok();
    assert_eq!(d.policy.move_timeout, Duration::from_secs(5400));
    assert_eq!(d.policy.backup_wait, Duration::from_millis(250));
    let c = d.controller.expect("a Controller");
    assert_eq!(c.resync_interval, Duration::from_secs(90));
    match c.provider {
        ProviderSpec::Scvmm(s) => {
            assert_eq!(s.server, "vmm01");
            assert_eq!(s.shell.call_timeout, Duration::from_secs(2 * 86_400));
        }
        other => panic!("expected scvmm, got {other:?}"),
    }
    let f = &d.fleets[0];
    assert_eq!(f.faults.over_limit_wait, Duration::from_secs(300));
    assert_eq!(
        f.vms[0].backups,
        vec![
            (Duration::ZERO, Duration::from_secs(1200)),
            (Duration::from_secs(3600), Duration::from_secs(90)),
        ]
    );
}

#[test]
fn policy_defaults_apply() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
        "#,
    );
    let d = docs.ok();
    assert_eq!(
        d.policy,
        Policy {
            max_parallel_migrations: 8,
            max_migrations_per_host: 2,
            max_attempts: 3,
            move_timeout: Duration::from_secs(30 * 60),
            backup_wait: Duration::from_secs(60 * 60),
            max_moves_per_apply: 50,
            suspend: false,
            move_windows: Vec::new(),
        }
    );
    assert_eq!(d.controller, None);

    // A partial policy keeps the defaults of what it leaves out.
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            maxParallelMigrations: 4
            suspend: true
        "#,
    );
    let d = docs.ok();
    assert_eq!(
        d.policy,
        Policy {
            max_parallel_migrations: 4,
            suspend: true,
            ..Policy::default()
        }
    );
    assert_eq!(d.policy.max_attempts, 3);
}

#[test]
fn vlan_ids_must_be_1_to_4094() {
    let docs = Docs::new();
    let text = r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
          vms:
            - name: web-01
              host: hv01
              networkAdapters:
                - { name: a, switch: Prod, vlanId: 0 }
                - { name: b, switch: Prod, vlanId: 1 }
                - { name: c, switch: Prod, vlanId: 4094 }
                - { name: d, switch: Prod, vlanId: 4095 }
                - { name: e, switch: Prod, vlanId: -10 }
        "#;
    docs.write("a.yaml", text);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 3, "{}", list(&e));
    expect_at(
        &e,
        "a.yaml",
        10,
        44,
        "`vlanId` must be between 1 and 4094, not 0",
    );
    expect_at(
        &e,
        "a.yaml",
        13,
        44,
        "`vlanId` must be between 1 and 4094, not 4095",
    );
    expect_at(&e, "a.yaml", 14, 44, "not -10");
    insta::assert_snapshot!(docs.render(&e));

    let ok = Docs::new();
    ok.write(
        "a.yaml",
        &text
            .replace(
                "                - { name: a, switch: Prod, vlanId: 0 }\n",
                "",
            )
            .replace(
                "                - { name: d, switch: Prod, vlanId: 4095 }\n",
                "",
            )
            .replace(
                "                - { name: e, switch: Prod, vlanId: -10 }\n",
                "",
            ),
    );
    let d = ok.ok();
    let ids: Vec<Option<u16>> = d.vms["web-01"]
        .adapters
        .as_ref()
        .expect("managed")
        .iter()
        .map(|a| a.vlan_id)
        .collect();
    assert_eq!(ids, vec![Some(1), Some(4094)]);
}

#[test]
fn names_must_be_non_empty_without_control_characters() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: ""
            - name: "   "
            - name: "hv\t01"
            - name: hv01
          vms:
            - name: "web\a01"
              host: hv01
            - name: web-02
              host: ""
              networkAdapters:
                - name: "eth\n0"
                - name: eth1
                  switch: "Prod\0"
                  vmNetwork: "Prod\x7f"
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 8, "{}", list(&e));
    expect_at(&e, "a.yaml", 5, 13, "host name is empty");
    expect_at(&e, "a.yaml", 6, 13, "host name is empty");
    expect_at(
        &e,
        "a.yaml",
        7,
        13,
        "host name contains the control character '\\t'",
    );
    expect_at(
        &e,
        "a.yaml",
        10,
        13,
        "VM name contains the control character '\\u{7}'",
    );
    expect_at(&e, "a.yaml", 13, 13, "host name is empty");
    expect_at(
        &e,
        "a.yaml",
        15,
        17,
        "adapter name contains the control character '\\n'",
    );
    expect_at(
        &e,
        "a.yaml",
        17,
        19,
        "switch name contains the control character '\\0'",
    );
    expect_at(
        &e,
        "a.yaml",
        18,
        22,
        "VM network name contains the control character '\\u{7f}'",
    );
    insta::assert_snapshot!(docs.render(&e));

    // Names are capped at 256 characters.
    let docs = Docs::new();
    let text = format!(
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: {}\n    - name: {}\n",
        "x".repeat(256),
        "y".repeat(257)
    );
    docs.write("a.yaml", &text);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    expect_at(
        &e,
        "a.yaml",
        6,
        13,
        "host name is longer than 256 characters",
    );
}

#[test]
fn names_with_quotes_dollars_unicode_and_spaces_are_fine() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: "hv 01"
            - name: Hôte-北京
          vms:
            - name: O'Brien "db"
              host: hv 01
              fallback: [Hôte-北京]
            - name: $web-01; rm -rf /
              host: Hôte-北京
              networkAdapters:
                - name: Network Adapter
                  switch: 'Prod ''external'''
                  vmNetwork: Prod-10 (tenant `a`)
        "#,
    );
    let d = docs.ok();
    assert_eq!(
        d.hosts.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["Hôte-北京", "hv 01"]
    );
    let vm = &d.vms["O'Brien \"db\""];
    assert_eq!(vm.host, "hv 01");
    assert_eq!(vm.fallback, vec!["Hôte-北京".to_string()]);
    let vm = &d.vms["$web-01; rm -rf /"];
    let a = &vm.adapters.as_ref().expect("managed")[0];
    assert_eq!(a.switch.as_deref(), Some("Prod 'external'"));
    assert_eq!(a.vm_network.as_deref(), Some("Prod-10 (tenant `a`)"));
}

// ------------------------------------------------------------ all at once

#[test]
fn a_file_with_several_errors_reports_all_of_them() {
    let docs = Docs::new();
    docs.write(
        "a.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            maxParallelMigrations: 0
            moveTimeout: soon
          hosts:
            - name: hv01
              maxMigrations: 99
            - name: hv01
          vms:
            - name: web-01
              host: hv02
              fallback: [hv01, hv03]
              networkAdapters:
                - name: eth0
                  vlanId: 5000
                  acls:
                    - { action: allow, direction: sideways, weight: 1 }
                    - { action: allow, direction: inbound, weight: 70000, protocol: tcpp }
        "#,
    );
    let e = docs.err();
    let expected = [
        (
            5,
            28,
            "`maxParallelMigrations` must be between 1 and 10000, not 0",
        ),
        (6, 18, "invalid duration `soon`"),
        (9, 22, "`maxMigrations` must be between 1 and 64, not 99"),
        (10, 13, "host `hv01` is declared twice"),
        (
            13,
            13,
            "VM `web-01` names host `hv02`, which is not a declared host",
        ),
        (
            14,
            24,
            "VM `web-01` names fallback `hv03`, which is not a declared host",
        ),
        (17, 19, "`vlanId` must be between 1 and 4094, not 5000"),
        (19, 43, "unknown ACL direction `sideways`"),
        (20, 60, "`weight` must be between 1 and 65535, not 70000"),
        (20, 77, "invalid protocol `tcpp`"),
    ];
    assert_eq!(e.diagnostics.len(), expected.len(), "{}", list(&e));
    for (line, col, msg) in expected {
        expect_at(&e, "a.yaml", line, col, msg);
    }
    // Reported in file order, whichever rule found them.
    let order: Vec<(u32, u32)> = e
        .diagnostics
        .iter()
        .map(|d| (d.origin.loc.line, d.origin.loc.column))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let shown = docs.render(&e);
    assert!(
        shown.ends_with("error: 10 problems found; nothing was changed\n"),
        "{shown}"
    );
    insta::assert_snapshot!(shown);
}

#[test]
fn a_broken_document_does_not_hide_the_next_one() {
    let docs = Docs::new();
    docs.write(
        "multi.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
              maintenence: true
        ---
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv02
          vms:
            - name: web-01
              host: hv03
        ---
        apiVersion: berth/v1
        kind: Fleet
        spec:
          hosts:
            - { name: hv01, memoryGiB: lots }
        ---
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - name: web-02
              host: hv02
              networkAdapters:
                - { name: eth0, vlanId: 4095 }
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 4, "{}", list(&e));
    let d = expect_at(&e, "multi.yaml", 6, 7, "unknown field `maintenence`");
    assert_eq!(d.help.as_deref(), Some("did you mean `maintenance`?"));
    expect_at(&e, "multi.yaml", 15, 13, "names host `hv03`");
    expect_at(&e, "multi.yaml", 21, 32, "expected a number, found `lots`");
    expect_at(
        &e,
        "multi.yaml",
        30,
        33,
        "`vlanId` must be between 1 and 4094",
    );
    insta::assert_snapshot!(docs.render(&e));
}

// ------------------------------------------------------------ hostile input

fn alias_bomb(header: &str) -> String {
    let mut text = format!(
        "{header}spec:\n  hosts: &l0 [{{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}, {{name: lol}}]\n",
    );
    for i in 1..=9 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        text.push_str(&format!("  x{i}: &l{i} [{refs}]\n"));
    }
    text.push_str("  vms: *l9\n");
    text
}

#[test]
fn an_alias_bomb_is_refused_quickly() {
    // Ordinary keys: the document is parsed straight into its type, which
    // refuses the bomb's first stray key before expanding anything.
    // Quoted keys: the careful path reads the whole document first, and the
    // alias budget stops the expansion.
    for (header, expect) in [
        (
            "apiVersion: berth/v1\nkind: Placement\n",
            "unknown field `x1`",
        ),
        ("\"apiVersion\": berth/v1\n\"kind\": Placement\n", "alias"),
    ] {
        let docs = Docs::new();
        docs.write_bytes("bomb.yaml", alias_bomb(header).as_bytes());
        let started = Instant::now();
        let e = docs.err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
        let d = &e.diagnostics[0];
        assert_eq!(file_name(&d.origin), "bomb.yaml");
        assert!(d.message.contains(expect), "{}", d.message);
        // No parser internals or dangling fragments in the message.
        assert!(!d.message.contains("(used"), "{}", d.message);
        assert!(!d.message.contains(" at line "), "{}", d.message);
        if expect == "alias" {
            insta::assert_snapshot!(docs.render(&e));
        }
    }
}

#[test]
fn deep_nesting_is_refused() {
    let docs = Docs::new();
    let depth = 100_000;
    let text = format!(
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    docs.write_bytes("deep.yaml", text.as_bytes());
    let started = Instant::now();
    let e = docs.err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    assert_eq!(e.diagnostics[0].origin.loc.line, 4, "{}", list(&e));
}

#[test]
fn a_file_over_16_mib_is_refused_before_parsing() {
    let docs = Docs::new();
    let mut text = String::from("apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n");
    let mut i = 0u64;
    while text.len() < 17 * 1024 * 1024 {
        text.push_str(&format!("    - name: host-{i:010}\n"));
        i += 1;
    }
    docs.write_bytes("big.yaml", text.as_bytes());
    let started = Instant::now();
    let e = docs.err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    let d = expect_msg(&e, "is 17.0 MiB, over the 16 MiB limit for a document file");
    assert!(d.message.contains("big.yaml"));
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn invalid_utf8_is_refused_with_its_position() {
    let docs = Docs::new();
    docs.write_bytes(
        "bad.yaml",
        b"apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: h\xc3\xa9\xff\xfe01\n",
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    // Column 14 counts characters: `h` and `é` come before the bad byte.
    // Refused as binary (issue 16): the position, but no quoted bytes.
    expect_at(&e, "bad.yaml", 5, 15, "a byte that is not valid UTF-8");
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn an_empty_directory_is_an_error() {
    let docs = Docs::new();
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    expect_msg(&e, "no *.yaml or *.yml files in directory");
    insta::assert_snapshot!(docs.render(&e));

    // Hidden files and other extensions do not count.
    docs.write(
        ".hidden.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec: {}\n",
    );
    docs.write(
        ".git/config.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec: {}\n",
    );
    docs.write("README.md", "# notes\n");
    docs.write("placement.yaml.bak", "apiVersion: berth/v1\n");
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    expect_msg(&e, "no *.yaml or *.yml files in directory");
}

#[test]
fn files_without_documents_and_missing_paths_are_errors() {
    let docs = Docs::new();
    docs.write("empty.yaml", "# nothing here yet\n");
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{}", list(&e));
    expect_msg(&e, "no berth documents found in");

    let missing = docs.path().join("nope.yaml");
    let e = berth::spec::load(&[missing]).expect_err("a missing file is an error");
    expect_msg(&e, "cannot read");
    expect_msg(&e, "nope.yaml");
}

// ------------------------------------------------------------ Fleet

#[test]
fn fleet_world_is_checked() {
    let docs = Docs::new();
    docs.write(
        "fleet.yaml",
        r#"
        apiVersion: berth/v1
        kind: Fleet
        spec:
          seed: 7
          hosts:
            - name: hv01
              memoryGiB: 256
              switches: [Prod]
              migrationRateMiBps: -100
            - name: hv02
              memoryGiB: 128
              cpuVendor: amd
          vms:
            - name: web-01
              host: hv03
              memoryGiB: 8
            - name: big-01
              host: hv01
              memoryGiB: 512
              state: off
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 3, "{}", list(&e));
    expect_at(
        &e,
        "fleet.yaml",
        9,
        27,
        "`migrationRateMiBps` must be a positive number, not -100",
    );
    let d = expect_at(
        &e,
        "fleet.yaml",
        15,
        13,
        "VM `web-01` is on host `hv03`, which the fleet does not declare",
    );
    assert!(d.help.as_deref().unwrap_or("").starts_with("did you mean"));
    expect_at(
        &e,
        "fleet.yaml",
        19,
        18,
        "VM `big-01` needs 512 GiB, more than any host has (256 GiB)",
    );
    insta::assert_snapshot!(docs.render(&e));
}

// ------------------------------------------------------------ a valid tree

#[test]
fn a_valid_multi_file_directory_loads() {
    let docs = Docs::new();
    docs.write(
        "hosts.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        metadata:
          name: hosts
        spec:
          policy:
            maxParallelMigrations: 4
            maxMigrationsPerHost: 1
          hosts:
            - name: hv01
            - name: hv02
              maxMigrations: 1
            - name: hv03
              maintenance: true
        "#,
    );
    docs.write(
        "vms/web.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - name: web-01
              host: hv01
              fallback: [hv03, hv02]
              networkAdapters:
                - name: Network Adapter
                  switch: Prod
                  vmNetwork: Prod-10
                  vlanId: 10
                  acls:
                    - action: allow
                      direction: inbound
                      remoteAddress: 10.0.0.0/8
                      localPort: "443"
                      protocol: tcp
                      weight: 10
                      stateful: true
                      idleSessionTimeout: 0
                      isolationId: 0
        ---
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - name: web-02
              host: hv02
        "#,
    );
    docs.write(
        "vms/db.yml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          vms:
            - { name: db-01, host: hv03 }
        "#,
    );
    docs.write(
        "controller.yaml",
        r#"
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            sim: { fleet: world/fleet.yaml }
          resyncInterval: 30s
        "#,
    );
    docs.write(
        "world/fleet.yaml",
        r#"
        apiVersion: berth/v1
        kind: Fleet
        spec:
          seed: 7
          faults:
            transientFailureRate: 0.1
            dropAclsOnMigration: true
          hosts:
            - { name: hv01, memoryGiB: 256, cpuVendor: amd, switches: [Prod] }
          vms:
            - name: web-01
              host: hv01
              memoryGiB: 8
              state: saved
              networkAdapters:
                - { name: Network Adapter, switch: Prod, connected: true, vlanId: 10, acls: [] }
        "#,
    );
    // Skipped: hidden entries and files that are not YAML.
    docs.write(".draft.yaml", "this: [is not valid\n");
    docs.write(".old/placement.yaml", "apiVersion: berth/v1\nkind: Nope\n");
    docs.write("notes.txt", "kind: Placement\n");

    let d = docs.ok();
    assert_eq!(d.placement_documents, 4);
    assert_eq!(d.hosts.keys().collect::<Vec<_>>(), ["hv01", "hv02", "hv03"]);
    assert_eq!(
        d.vms.keys().collect::<Vec<_>>(),
        ["db-01", "web-01", "web-02"]
    );
    assert_eq!(d.hosts["hv02"].max_migrations, Some(1));
    assert!(d.hosts["hv03"].maintenance);
    assert!(!d.hosts["hv01"].maintenance);
    assert_eq!(d.hosts["hv01"].max_migrations, None);
    let web = &d.vms["web-01"];
    assert_eq!(web.name, "web-01");
    assert_eq!(web.host, "hv01");
    assert_eq!(web.fallback, ["hv03", "hv02"]);
    assert_eq!(file_name(&web.origin), "web.yaml");
    assert_eq!((web.origin.loc.line, web.origin.loc.column), (5, 13));
    let a = &web.adapters.as_ref().expect("managed")[0];
    assert_eq!(a.name, "Network Adapter");
    assert_eq!(a.vlan_id, Some(10));
    assert_eq!(a.vm_network.as_deref(), Some("Prod-10"));
    assert_eq!(a.acls.as_ref().expect("ACLs").len(), 1);
    assert_eq!(d.vms["db-01"].host, "hv03");
    assert_eq!(d.vms["web-02"].adapters, None);
    assert_eq!(d.policy.max_parallel_migrations, 4);
    assert_eq!(d.policy.max_migrations_per_host, 1);
    let c = d.controller.as_ref().expect("a Controller");
    assert_eq!(c.resync_interval, Duration::from_secs(30));
    assert_eq!(
        c.provider,
        ProviderSpec::Sim {
            fleet: docs.path().join("world/fleet.yaml")
        }
    );
    assert_eq!(d.fleets.len(), 1);
    let f = &d.fleets[0];
    assert_eq!(f.seed, 7);
    assert_eq!(f.faults.transient_failure_rate, 0.1);
    assert!(f.faults.drop_acls_on_migration);
    assert_eq!(f.hosts[0].memory_mib, 256 * 1024);
    assert_eq!(f.hosts[0].cpu_vendor, CpuVendor::Amd);
    assert_eq!(f.hosts[0].max_migrations, 2);
    assert_eq!(f.hosts[0].migration_rate_mibps, 1000.0);
    assert_eq!(f.vms[0].state, PowerState::Saved);
    assert_eq!(f.vms[0].adapters[0].acls, vec![]);

    // Loading the files one by one gives the same result as the directory.
    let files = [
        docs.path().join("hosts.yaml"),
        docs.path().join("vms/web.yaml"),
        docs.path().join("vms/db.yml"),
    ];
    let by_file = berth::spec::load(&files).expect("valid");
    assert_eq!(by_file.hosts, d.hosts);
    assert_eq!(by_file.vms, d.vms);
}

#[test]
fn every_structural_problem_of_a_document_is_reported_at_once() {
    let docs = Docs::new();
    docs.write(
        "typos.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts:
            - name: hv01
              maintenence: true
          vms:
            - name: web-01
              hsot: hv01
              networkAdapters:
                - name: nic
                  swtich: Prod
                  vlanId: ten
                  acls: { action: allow }
            - host: hv01
        "#,
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 6, "{}", list(&e));
    expect_at(&e, "typos.yaml", 6, 7, "unknown field `maintenence`");
    expect_at(&e, "typos.yaml", 9, 7, "unknown field `hsot`");
    expect_at(&e, "typos.yaml", 12, 11, "unknown field `swtich`");
    expect_at(
        &e,
        "typos.yaml",
        13,
        19,
        "expected a whole number, found `ten`",
    );
    expect_at(&e, "typos.yaml", 14, 17, "expected a list, found a mapping");
    expect_at(&e, "typos.yaml", 15, 7, "missing field `name`");
    insta::assert_snapshot!(docs.render(&e));
}

#[test]
fn hyperv_storage_paths_per_host() {
    let docs = Docs::new();
    let text = r#"
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            hyperv:
              hosts: [hv01, hv02]
              transport: winrm
              destinationStoragePath: 'D:\VMs'
              destinationStoragePaths:
                hv02: 'E:\Hyper-V'
        "#;
    docs.write("controller.yaml", text);
    let d = docs.ok();
    match d.controller.expect("a Controller").provider {
        ProviderSpec::HyperV(h) => {
            assert_eq!(h.hosts, ["hv01", "hv02"]);
            assert_eq!(h.destination_storage_path.as_deref(), Some("D:\\VMs"));
            assert_eq!(h.destination_storage_paths["hv02"], "E:\\Hyper-V");
            assert_eq!(h.shell.transport, berth::spec::Transport::WinRm);
        }
        other => panic!("expected hyperv, got {other:?}"),
    }

    let docs = Docs::new();
    let text = r#"
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider:
            hyperv:
              hosts: [hv01]
              destinationStoragePaths:
                hv09: 'E:\VMs'
        "#;
    docs.write("controller.yaml", text);
    let e = docs.err();
    let (line, col) = pos(text, "'E:\\VMs'");
    expect_at(
        &e,
        "controller.yaml",
        line,
        col,
        "`hv09` is not one of `hosts`",
    );
}
