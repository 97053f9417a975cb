//! Intent in the planner, on small hand-made fleets: VMs that may run in
//! several places, rules between VMs, headroom, disks that travel, and the
//! shipped example (`examples/intent`). Random instances and the comparison
//! with the exact optimum are in `intent_props.rs`.

#[path = "common/replay.rs"]
mod replay;
#[path = "intent/support.rs"]
mod support;

use berth::plan::{self, Reason};
use berth::provider::Provider;
use berth::provider::sim::Sim;
use berth::spec;
use support::*;

// ------------------------------------------------------------- examples

const RACKS_FLEET: &str = "apiVersion: berth/v1
kind: Fleet
spec:
  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
    - { name: hv03, memoryGiB: 64, switches: [Prod] }
    - { name: hv04, memoryGiB: 64, switches: [Prod] }
  vms:
    - { name: dc-01, host: hv01, memoryGiB: 8 }
    - { name: dc-02, host: hv02, memoryGiB: 8 }
    - { name: dc-03, host: hv02, memoryGiB: 4 }
    - { name: app-01, host: hv01, memoryGiB: 16 }
    - { name: db-01, host: hv03, memoryGiB: 32 }
";

fn racks_placement(extra: &str) -> String {
    format!(
        "apiVersion: berth/v1
kind: Placement
spec:
  hosts:
    - {{ name: hv01, labels: {{ rack: r1 }} }}
    - {{ name: hv02, labels: {{ rack: r1 }} }}
    - {{ name: hv03, labels: {{ rack: r2 }} }}
    - {{ name: hv04, labels: {{ rack: r2 }} }}
  hostGroups:
    - {{ name: all, hosts: [hv01, hv02, hv03, hv04] }}
{extra}"
    )
}

#[test]
fn a_vm_that_may_stay_stays_and_rules_move_the_fewest() {
    let placement = racks_placement(
        "  vms:
    - { name: dc-01, hostGroup: all }
    - { name: dc-02, hostGroup: all }
    - { name: dc-03, hostGroup: all }
    - { name: app-01, hostGroup: all }
    - { name: db-01, hosts: [hv03, hv04] }
  rules:
    - { name: dcs-apart, separate: [dc-01, dc-02], by: rack }
    - { name: app-with-db, together: [app-01, db-01] }
",
    );
    let (_, desired, observed) = load(RACKS_FLEET, &placement).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let m = moves(&p);
    // One DC leaves rack r1 (the smaller data moved is equal: by name, the
    // one with fewer places left stays), the app joins its database: two
    // moves; dc-03 has no rule and stays.
    assert_eq!(m.len(), 2, "{m:?}");
    let at = final_hosts(&observed, &p);
    assert_eq!(at["app-01"], at["db-01"]);
    assert_eq!(at["db-01"], "hv03", "the database stays; the app joins it");
    assert_eq!(at["dc-03"], "hv02");
    let rack = |h: &str| desired.hosts[h].labels["rack"].clone();
    assert_ne!(rack(&at["dc-01"]), rack(&at["dc-02"]));
    for (vm, _, _, reason, why, _) in &m {
        assert_eq!(*reason, Reason::Rule, "{vm}");
        let why = why.as_deref().unwrap_or_default();
        assert!(
            why.starts_with("rule dcs-apart:") || why.starts_with("rule app-with-db:"),
            "{vm}: {why}"
        );
    }
    // The JSON carries reason and why.
    let json = serde_json::to_value(&p).expect("JSON");
    let first = &json["actions"][0];
    assert_eq!(first["reason"], "rule");
    assert!(first["why"].as_str().is_some_and(|w| w.contains(" to hv0")));
}

#[test]
fn an_infeasible_rule_blocks_only_its_vms_by_name() {
    // Three DCs, two racks: one DC cannot be placed. The rest of the plan
    // (the app joining its database) goes ahead.
    let placement = racks_placement(
        "  vms:
    - { name: dc-01, hostGroup: all }
    - { name: dc-02, hostGroup: all }
    - { name: dc-03, hostGroup: all }
    - { name: app-01, hostGroup: all }
    - { name: db-01, hosts: [hv03, hv04] }
  rules:
    - { name: dcs-apart, separate: [dc-01, dc-02, dc-03], by: rack }
    - { name: app-with-db, together: [app-01, db-01] }
",
    );
    let (_, desired, observed) = load(RACKS_FLEET, &placement).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert_eq!(p.blocked.len(), 1, "{:?}", p.blocked);
    let b = &p.blocked[0];
    assert!(b.vm.starts_with("dc-0"), "{b:?}");
    assert!(
        b.reason.contains("rule dcs-apart") && b.reason.contains("hv0"),
        "the reason names the rule and hosts: {}",
        b.reason
    );
    let at = final_hosts(&observed, &p);
    assert_eq!(at["app-01"], at["db-01"]);
    let rack = |h: &str| desired.hosts[h].labels["rack"].clone();
    let placed: Vec<&str> = ["dc-01", "dc-02", "dc-03"]
        .into_iter()
        .filter(|v| *v != b.vm)
        .collect();
    assert_ne!(rack(&at[placed[0]]), rack(&at[placed[1]]));
}

#[test]
fn two_members_that_swap_hop_through_a_third_host() {
    let fleet = "apiVersion: berth/v1
kind: Fleet
spec:
  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
    - { name: hv03, memoryGiB: 64, switches: [Prod] }
  vms:
    - { name: a, host: hv01, memoryGiB: 8 }
    - { name: b, host: hv02, memoryGiB: 8 }
";
    let placement = "apiVersion: berth/v1
kind: Placement
spec:
  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]
  vms:
    - { name: a, hosts: [hv02] }
    - { name: b, hosts: [hv01] }
  rules:
    - { name: apart, separate: [a, b] }
";
    let (fleet, desired, observed) = load(fleet, placement).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let m = moves(&p);
    assert_eq!(m.len(), 3, "one VM hops through hv03: {m:?}");
    assert!(m.iter().any(|x| x.2 == "hv03"), "{m:?}");
    let rounds = replay(&fleet, &desired, 3).unwrap_or_else(|e| panic!("{e}"));
    for r in &rounds {
        check_separate_at_every_moment(r, &desired).unwrap_or_else(|e| panic!("{e}"));
    }
    let last = rounds.last().expect("a round");
    assert!(last.plan.in_sync, "{:?}", last.plan);
    assert_eq!(last.after.vms["a"].host, "hv02");
    assert_eq!(last.after.vms["b"].host, "hv01");
}

#[test]
fn headroom_keeps_vms_out_of_a_group_that_would_fall_short_and_is_reported() {
    let fleet = "apiVersion: berth/v1
kind: Fleet
spec:
  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
    - { name: hv03, memoryGiB: 64, switches: [Prod] }
    - { name: hv04, memoryGiB: 128, switches: [Prod] }
  vms:
    - { name: a, host: hv01, memoryGiB: 40 }
    - { name: b, host: hv02, memoryGiB: 20 }
    - { name: c, host: hv03, memoryGiB: 20 }
";
    let placement = |headroom: u32| {
        format!(
            "apiVersion: berth/v1
kind: Placement
spec:
  policy: {{ headroom: {headroom} }}
  hosts: [{{ name: hv01 }}, {{ name: hv02 }}, {{ name: hv03, maintenance: true }}, {{ name: hv04 }}]
  hostGroups:
    - {{ name: pair, hosts: [hv01, hv02] }}
  vms:
    - {{ name: a, hosts: [hv01, hv04] }}
    - {{ name: b, hosts: [hv01, hv02] }}
    - {{ name: c, hosts: [hv01, hv02, hv04] }}
"
        )
    };
    // Without headroom, c leaves maintenance for the least used host.
    let (_, desired, observed) = load(fleet, &placement(0)).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    let pair = p.headroom.iter().find(|h| h.group == "pair").expect("pair");
    assert!(!pair.enforced);
    assert_eq!(pair.failures, 1);
    // Pair: 128 GiB, one 64 GiB host kept, 60 GiB used (a, b) before c.
    assert_eq!(pair.capacity_mib, 128 * 1024);
    assert_eq!(pair.reserve_mib, 64 * 1024);

    // With headroom 1, the pair (64 GiB left after one failure) holds a
    // (40) and b (20) but not c (20) too: c goes to hv04, outside it.
    let (_, desired, observed) = load(fleet, &placement(1)).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let at = final_hosts(&observed, &p);
    assert_eq!(at["c"], "hv04");
    let pair = p.headroom.iter().find(|h| h.group == "pair").expect("pair");
    assert!(pair.enforced);
    assert!(pair.margin_mib >= 0, "{pair:?}");
    let m = moves(&p);
    assert_eq!(
        m.len(),
        1,
        "only c moves: the pair keeps its headroom: {m:?}"
    );
    assert_eq!(m[0].3, Reason::Maintenance);

    // Shrink hv04 so that c fits only into the pair. Leaving maintenance,
    // c goes there anyway (the host must be emptied), and the pair is
    // reported short.
    let small = fleet.replace("hv04, memoryGiB: 128", "hv04, memoryGiB: 16");
    let (_, desired, observed) = load(&small, &placement(1)).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let m = moves(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].2 == "hv01" || m[0].2 == "hv02", "{m:?}");
    let pair = p.headroom.iter().find(|h| h.group == "pair").expect("pair");
    assert!(pair.margin_mib < 0, "{pair:?}");

    // Without maintenance, c must still leave hv03 (not among its hosts):
    // that move keeps headroom, so c is blocked by it, by name.
    let placement = placement(1).replace("hv03, maintenance: true", "hv03");
    let (_, desired, observed) = load(&small, &placement).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    let blocked: Vec<&str> = p.blocked.iter().map(|b| b.vm.as_str()).collect();
    assert_eq!(blocked, ["c"], "{:?}", p.blocked);
    assert!(
        p.blocked[0].reason.contains("headroom 1 of group pair"),
        "{}",
        p.blocked[0].reason
    );
}

#[test]
fn explain_gives_every_candidate_host_a_verdict() {
    let placement = racks_placement(
        "  vms:
    - { name: dc-01, hostGroup: all }
    - { name: dc-02, hostGroup: all }
    - { name: dc-03, host: hv02 }
    - { name: app-01, host: hv01 }
    - { name: db-01, host: hv03 }
  rules:
    - { name: dcs-apart, separate: [dc-01, dc-02], by: rack }
",
    );
    let (_, desired, observed) = load(RACKS_FLEET, &placement).unwrap_or_else(|e| panic!("{e}"));
    let v = plan::explain(&desired, &observed, "dc-02").expect("dc-02 chooses");
    let hosts: Vec<&str> = v.iter().map(|x| x.host.as_str()).collect();
    assert_eq!(hosts, ["hv01", "hv02", "hv03", "hv04"]);
    let chosen: Vec<&str> = v
        .iter()
        .filter(|x| x.chosen)
        .map(|x| x.host.as_str())
        .collect();
    assert_eq!(chosen.len(), 1);
    for x in &v {
        if x.host == "hv01" || x.host == "hv02" {
            assert!(
                x.lacks.iter().any(|l| l.contains("rule dcs-apart")),
                "{x:?}"
            );
        }
        if x.chosen {
            assert!(x.lacks.is_empty(), "{x:?}");
        }
    }
    assert!(plan::explain(&desired, &observed, "dc-03").is_none());
}

#[test]
fn a_host_whose_volume_cannot_hold_the_disks_is_not_chosen() {
    // app must leave s01 for s02 or s03. s02 has the most memory free (the
    // even-use tie-break prefers it) but its volume holds 50 GiB, and app's
    // disks, which travel with it, take 200 GiB.
    let fleet = |bulk_gib: u32| {
        format!(
            "apiVersion: berth/v1
kind: Fleet
spec:
  hosts:
    - {{ name: s01, memoryGiB: 64, switches: [Prod], volumes: [{{ path: 'D:\\VMs', freeGiB: 1000 }}] }}
    - {{ name: s02, memoryGiB: 256, switches: [Prod], volumes: [{{ path: 'D:\\VMs', freeGiB: 50 }}] }}
    - {{ name: s03, memoryGiB: 64, switches: [Prod], volumes: [{{ path: 'D:\\VMs', freeGiB: 300 }}] }}
  vms:
    - {{ name: app, host: s01, memoryGiB: 8, disks: [{{ path: 'D:\\VMs\\app\\app.vhdx', sizeGiB: 200 }}] }}
    - {{ name: bulk, host: s01, memoryGiB: 4, disks: [{{ path: 'D:\\VMs\\bulk\\bulk.vhdx', sizeGiB: {bulk_gib} }}] }}
"
        )
    };
    let placement = |bulk_host: &str| {
        format!(
            "apiVersion: berth/v1
kind: Placement
spec:
  hosts: [{{ name: s01 }}, {{ name: s02 }}, {{ name: s03 }}]
  vms:
    - {{ name: app, hosts: [s02, s03] }}
    - {{ name: bulk, host: {bulk_host} }}
"
        )
    };
    let (sim_fleet, desired, observed) =
        load(&fleet(10), &placement("s01")).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let m = moves(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0.as_str(), m[0].2.as_str()), ("app", "s03"), "{m:?}");
    let rounds = replay(&sim_fleet, &desired, 2).unwrap_or_else(|e| panic!("{e}"));
    let last = rounds.last().expect("a round");
    assert!(last.plan.in_sync, "{:?}", last.plan);
    assert_eq!(last.after.vms["app"].host, "s03");
    let v = plan::explain(&desired, &observed, "app").expect("app chooses");
    let s02 = v.iter().find(|x| x.host == "s02").expect("s02");
    assert!(
        s02.lacks.iter().any(|l| l.contains("disk space")),
        "{s02:?}"
    );

    // bulk (150 GiB) is planned to s03 first: 150 GiB are left there,
    // less than app needs, and s02 is still too small. app is blocked
    // where it is, naming the space; bulk still moves.
    let (_, desired, observed) =
        load(&fleet(150), &placement("s03")).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    let blocked: Vec<&str> = p.blocked.iter().map(|b| b.vm.as_str()).collect();
    assert_eq!(blocked, ["app"], "{:?}", p.blocked);
    assert!(
        p.blocked[0].reason.contains("disk space"),
        "{}",
        p.blocked[0].reason
    );
    let m = moves(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0.as_str(), m[0].2.as_str()), ("bulk", "s03"), "{m:?}");
}

// ------------------------------------------------------------- the example

#[test]
fn the_intent_example_moves_one_vm_per_broken_intent() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/intent");
    let desired = spec::load(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let fleet = desired.fleets.first().expect("the example's fleet").clone();
    let observed = runtime()
        .block_on(async { Sim::in_memory(&fleet).observe().await })
        .expect("observe");
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let m: Vec<(String, String, String, Reason)> = moves(&p)
        .into_iter()
        .map(|(vm, from, to, reason, _, _)| (vm, from, to, reason))
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        m,
        vec![
            (s("app-01"), s("hv03"), s("hv04"), Reason::Rule),
            (s("dc-02"), s("hv02"), s("hv06"), Reason::Rule),
            (s("sql-01"), s("hv05"), s("hv03"), Reason::Maintenance),
            (s("web-02"), s("hv03"), s("hv01"), Reason::Rule),
        ]
    );
    let groups: Vec<(&str, i64)> = p
        .headroom
        .iter()
        .map(|h| (h.group.as_str(), h.margin_mib / 1024))
        .collect();
    assert_eq!(groups, [("prod", 568), ("web", 88), ("*", 568)]);
    let replayed = replay(&fleet, &desired, 3).unwrap_or_else(|e| panic!("{e}"));
    for r in &replayed {
        check_separate_at_every_moment(r, &desired).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(replayed.last().is_some_and(|r| r.plan.in_sync));
}

#[test]
fn plan_explain_prints_every_candidate_with_its_verdict() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/intent");
    let out = assert_cmd::Command::cargo_bin("berth")
        .expect("the berth binary")
        .arg("plan")
        .arg(&dir)
        .args(["--explain", "dc-02"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run berth");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("dc-02 may run on 6 hosts (host group prod); it is on hv02, and the plan moves it to hv06."), "{text}");
    assert!(
        text.contains("  hv01  no: rule dcs-apart: dc-01 is on rack r1\n"),
        "{text}"
    );
    assert!(text.contains("  hv05  no: in maintenance\n"), "{text}");
    assert!(text.contains("  hv06  fits (chosen)\n"), "{text}");
    // A pinned VM has nothing to choose; an unknown one is an error.
    let pinned = assert_cmd::Command::cargo_bin("berth")
        .expect("the berth binary")
        .arg("plan")
        .arg(&dir)
        .args(["--explain", "file-01"])
        .output()
        .expect("run berth");
    assert!(pinned.status.success());
    assert!(String::from_utf8_lossy(&pinned.stdout).contains("file-01 is pinned to hv01"));
    let unknown = assert_cmd::Command::cargo_bin("berth")
        .expect("the berth binary")
        .arg("plan")
        .arg(&dir)
        .args(["--explain", "nope"])
        .output()
        .expect("run berth");
    assert_eq!(unknown.status.code(), Some(1));
}
