//! The planner, rule by rule, against simulated fleets.

use berth::plan::{self, ActionKind, Plan, Reason};
use berth::provider::sim::Sim;
use berth::provider::{MoveKind, Observed, Provider};
use berth::spec::{self, Desired};

/// A fleet and a placement, from YAML bodies.
pub struct Case {
    pub desired: Desired,
    pub observed: Observed,
}

pub fn case(fleet: &str, placement: &str) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("fleet.yaml");
    std::fs::write(
        &f,
        format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{fleet}"),
    )
    .expect("write");
    let p = dir.path().join("placement.yaml");
    std::fs::write(
        &p,
        format!("apiVersion: berth/v1\nkind: Placement\nspec:\n{placement}"),
    )
    .expect("write");
    let fleet = spec::load_fleet(&f).unwrap_or_else(|e| panic!("fleet: {e}"));
    let desired = spec::load(&[p]).unwrap_or_else(|e| panic!("placement: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let observed = rt.block_on(async { Sim::in_memory(&fleet).observe().await.expect("observe") });
    Case { desired, observed }
}

fn plan_of(c: &Case) -> Plan {
    plan::plan(&c.desired, &c.observed)
}

fn moves(p: &Plan) -> Vec<(u32, String, String, String, Reason, Vec<u32>)> {
    p.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Move {
                vm,
                from,
                to,
                reason,
                ..
            } => Some((
                a.id,
                vm.clone(),
                from.clone(),
                to.clone(),
                *reason,
                a.after.clone(),
            )),
            _ => None,
        })
        .collect()
}

const HOSTS3: &str = "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
    - { name: hv03, memoryGiB: 64, switches: [Prod] }
";
const DECL3: &str = "  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]\n";

#[test]
fn a_fleet_that_matches_is_in_sync() {
    let c = case(
        &format!("{HOSTS3}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 8 }}\n"),
        &format!("{DECL3}  vms:\n    - {{ name: a, host: hv01 }}\n"),
    );
    let p = plan_of(&c);
    assert!(p.in_sync);
    assert!(p.actions.is_empty());
    assert_eq!(p.estimated_seconds, 0.0);
}

#[test]
fn a_vm_elsewhere_moves_live_with_the_contract_estimate() {
    let c = case(
        &format!(
            "{HOSTS3}  vms:\n    - {{ name: a, host: hv02, memoryGiB: 8 }}\n    - {{ name: b, host: hv02, memoryGiB: 8, state: off }}\n"
        ),
        &format!(
            "{DECL3}  vms:\n    - {{ name: a, host: hv01 }}\n    - {{ name: b, host: hv03 }}\n"
        ),
    );
    let p = plan_of(&c);
    assert!(!p.in_sync);
    let m: Vec<_> = p
        .actions
        .iter()
        .map(|a| match &a.kind {
            ActionKind::Move {
                vm,
                method,
                estimated_seconds,
                reason,
                ..
            } => (vm.clone(), *method, *estimated_seconds, *reason),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        m,
        vec![
            ("a".into(), MoveKind::Live, 13.192, Reason::Placement),
            ("b".into(), MoveKind::Offline, 5.0, Reason::Placement)
        ]
    );
    assert_eq!(p.estimated_seconds, 13.2);
}

const ACL_FLEET: &str = "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
  vms:
    - name: web
      host: hv01
      memoryGiB: 4
      networkAdapters:
        - name: nic
          switch: Prod
          acls:
            - { action: allow, direction: inbound, weight: 10, localPort: \"443\", protocol: tcp }
            - { action: allow, direction: inbound, weight: 30, localPort: \"3389\", protocol: tcp }
    - name: off
      host: hv01
      memoryGiB: 4
      state: off
      networkAdapters: [{ name: nic, switch: Prod, connected: false }]
    - { name: stray, host: hv02, memoryGiB: 2 }
";

#[test]
fn acl_drift_on_a_vm_that_stays_stands_alone() {
    let c = case(
        ACL_FLEET,
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - name: web
      host: hv01
      networkAdapters:
        - name: nic
          switch: Prod
          acls:
            - { action: allow, direction: inbound, weight: 10, localPort: \"443\", protocol: tcp }
            - { action: allow, direction: both, weight: 20, localPort: \"22\", protocol: tcp }
    - name: off
      host: hv01
      networkAdapters: [{ name: nic, switch: Prod }]
",
    );
    let p = plan_of(&c);
    assert_eq!(p.moves(), 0);
    assert_eq!(p.unmanaged, vec!["stray".to_string()]);
    let set = p
        .actions
        .iter()
        .find_map(|a| match &a.kind {
            ActionKind::SetAcls {
                add,
                remove,
                reason,
                ..
            } => Some((add.clone(), remove.clone(), *reason, a.after.clone())),
            _ => None,
        })
        .expect("a set-acls action");
    let keys = |v: &Vec<plan::AclChange>| {
        v.iter()
            .map(|c| (c.direction.to_string(), c.weight))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&set.0),
        vec![("inbound".into(), 20), ("outbound".into(), 20)]
    );
    assert_eq!(keys(&set.1), vec![("inbound".into(), 30)]);
    assert_eq!(set.2, Reason::Drift);
    assert!(set.3.is_empty());
    assert_eq!(p.acl_changes(), 3);
    assert_eq!(p.connections(), 1, "the disconnected adapter is connected");
}

#[test]
fn adapter_changes_of_a_moving_vm_follow_its_move() {
    let c = case(
        ACL_FLEET,
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - name: web
      host: hv02
      networkAdapters:
        - { name: nic, switch: Prod, vlanId: 10, acls: [] }
",
    );
    let p = plan_of(&c);
    let mv = moves(&p);
    assert_eq!(mv.len(), 1);
    let move_id = mv[0].0;
    for a in p.actions.iter().filter(|a| !a.kind.is_move()) {
        assert_eq!(a.after, vec![move_id], "{a:?}");
        assert!(a.id > move_id);
    }
    assert_eq!(p.vlan_changes(), 1);
    assert_eq!(p.acl_changes(), 2);
}

#[test]
fn a_declared_host_missing_from_the_fleet_blocks_the_vm() {
    let c = case(
        &format!("{HOSTS3}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 8 }}\n"),
        "  hosts: [{ name: hv01 }, { name: hv09 }]\n  vms:\n    - { name: a, host: hv09 }\n    - { name: ghost, host: hv01 }\n",
    );
    let p = plan_of(&c);
    assert!(p.actions.is_empty());
    let b: Vec<_> = p
        .blocked
        .iter()
        .map(|b| (b.vm.as_str(), b.reason.as_str()))
        .collect();
    assert_eq!(
        b,
        vec![
            ("a", "its host hv09 is not in the fleet"),
            ("ghost", "it is not in the fleet")
        ]
    );
    assert!(!p.in_sync);
}

const MAINT_FLEET: &str = "  hosts:
    - { name: hv01, memoryGiB: 64 }
    - { name: hv02, memoryGiB: 20 }
    - { name: hv03, memoryGiB: 64 }
    - { name: hv04, memoryGiB: 64 }
  vms:
    - { name: a, host: hv01, memoryGiB: 16 }
    - { name: b, host: hv01, memoryGiB: 16 }
    - { name: u, host: hv01, memoryGiB: 8 }
";

#[test]
fn maintenance_uses_the_first_fallback_with_room_then_the_best_host() {
    let c = case(
        MAINT_FLEET,
        "  hosts: [{ name: hv01, maintenance: true }, { name: hv02 }, { name: hv03 }, { name: hv04 }]
  vms:
    - { name: a, host: hv01, fallback: [hv02, hv03] }
    - { name: b, host: hv01, fallback: [hv02, hv04] }
",
    );
    let p = plan_of(&c);
    let mut dest: Vec<_> = moves(&p).into_iter().map(|m| (m.1, m.3, m.4)).collect();
    dest.sort();
    // a takes hv02 (first with room); hv02 is then too small for b: hv04.
    // The unmanaged u is evacuated too, to the host with the most room.
    assert_eq!(
        dest,
        vec![
            ("a".into(), "hv02".into(), Reason::Maintenance),
            ("b".into(), "hv04".into(), Reason::Maintenance),
            ("u".into(), "hv03".into(), Reason::Maintenance),
        ]
    );
}

#[test]
fn maintenance_without_room_blocks_with_the_reason() {
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 600 }
    - { name: hv02, memoryGiB: 256 }
  vms:
    - { name: big-01, host: hv01, memoryGiB: 512 }
",
        "  hosts: [{ name: hv01 }, { name: hv03, maintenance: true }]
  vms:
    - { name: big-01, host: hv03 }
",
    );
    // hv03 is declared but not in the fleet; use a fleet host instead.
    let _ = c;
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 256 }
    - { name: hv03, memoryGiB: 600 }
  vms:
    - { name: big-01, host: hv03, memoryGiB: 512 }
",
        "  hosts: [{ name: hv01 }, { name: hv03, maintenance: true }]
  vms:
    - { name: big-01, host: hv03, fallback: [hv01] }
",
    );
    let p = plan_of(&c);
    assert_eq!(p.moves(), 0);
    assert_eq!(p.blocked.len(), 1);
    // With `fallback` declared, only the fallbacks count (issue 16).
    assert_eq!(
        p.blocked[0].reason,
        "no fallback can take it while hv03 is in maintenance: big-01 needs 512 GiB, more than hv01 has in all (256 GiB)"
    );
}

#[test]
fn vms_return_home_when_maintenance_ends() {
    let c = case(
        MAINT_FLEET,
        "  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }, { name: hv04 }]
  vms:
    - { name: a, host: hv03, fallback: [hv01] }
",
    );
    let p = plan_of(&c);
    assert_eq!(moves(&p)[0].4, Reason::Return);
}

#[test]
fn a_move_waits_for_the_move_that_frees_its_memory() {
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 32 }
    - { name: hv02, memoryGiB: 32 }
    - { name: hv03, memoryGiB: 64 }
  vms:
    - { name: a, host: hv01, memoryGiB: 24 }
    - { name: b, host: hv02, memoryGiB: 24 }
",
        "  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]
  vms:
    - { name: a, host: hv02 }
    - { name: b, host: hv03 }
",
    );
    let p = plan_of(&c);
    let mv = moves(&p);
    let b = mv.iter().find(|m| m.1 == "b").expect("b moves");
    let a = mv.iter().find(|m| m.1 == "a").expect("a moves");
    assert!(b.5.is_empty());
    assert_eq!(a.5, vec![b.0], "a waits for b to leave hv02");
}

#[test]
fn a_swap_without_room_hops_through_a_third_host() {
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 32 }
    - { name: hv02, memoryGiB: 32 }
    - { name: hv03, memoryGiB: 32 }
  vms:
    - { name: a, host: hv01, memoryGiB: 24 }
    - { name: b, host: hv02, memoryGiB: 24 }
",
        "  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]
  vms:
    - { name: a, host: hv02 }
    - { name: b, host: hv01 }
",
    );
    let p = plan_of(&c);
    let mv: Vec<_> = moves(&p)
        .into_iter()
        .map(|m| (m.0, m.1, m.2, m.3, m.5))
        .collect();
    assert_eq!(
        mv,
        vec![
            (1, "a".into(), "hv01".into(), "hv03".into(), vec![]),
            (2, "b".into(), "hv02".into(), "hv01".into(), vec![1]),
            (3, "a".into(), "hv03".into(), "hv02".into(), vec![1, 2]),
        ]
    );
    assert!(p.blocked.is_empty());
}

#[test]
fn a_swap_with_no_host_to_hop_through_is_blocked() {
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 32 }
    - { name: hv02, memoryGiB: 32 }
  vms:
    - { name: a, host: hv01, memoryGiB: 24 }
    - { name: b, host: hv02, memoryGiB: 24 }
",
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - { name: a, host: hv02 }
    - { name: b, host: hv01 }
",
    );
    let p = plan_of(&c);
    assert_eq!(p.moves(), 0);
    assert_eq!(p.blocked.len(), 2);
    assert!(
        p.blocked[0].reason.contains("ring"),
        "{}",
        p.blocked[0].reason
    );
}

#[test]
fn an_overfull_destination_blocks_only_what_does_not_fit() {
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 64 }
    - { name: hv02, memoryGiB: 20 }
  vms:
    - { name: a, host: hv01, memoryGiB: 8 }
    - { name: b, host: hv01, memoryGiB: 16 }
",
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - { name: a, host: hv02 }
    - { name: b, host: hv02 }
",
    );
    let p = plan_of(&c);
    assert_eq!(
        moves(&p).iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        vec!["a".to_string()]
    );
    assert_eq!(p.blocked.len(), 1);
    assert_eq!(p.blocked[0].vm, "b");
    assert!(
        p.blocked[0].reason.contains("not enough memory on hv02"),
        "{}",
        p.blocked[0].reason
    );
}

#[test]
fn running_vms_do_not_cross_cpu_vendors_but_powered_down_ones_do() {
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 64, cpuVendor: intel }
    - { name: hv02, memoryGiB: 64, cpuVendor: amd }
  vms:
    - { name: run, host: hv01, memoryGiB: 8 }
    - { name: off, host: hv01, memoryGiB: 8, state: off }
",
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - { name: run, host: hv02 }
    - { name: off, host: hv02 }
",
    );
    let p = plan_of(&c);
    assert_eq!(moves(&p).len(), 1);
    assert_eq!(p.blocked[0].vm, "run");
    assert!(
        p.blocked[0].reason.contains("does not shut VMs down"),
        "{}",
        p.blocked[0].reason
    );
}

#[test]
fn the_estimate_respects_host_limits() {
    // Four 10 s live moves off one host with a cap of 2: two rounds.
    let c = case(
        "  hosts:
    - { name: hv01, memoryGiB: 256, maxMigrations: 2, migrationRateMiBps: 1024 }
    - { name: hv02, memoryGiB: 256, maxMigrations: 8, migrationRateMiBps: 1024 }
  vms:
    - { name: a, host: hv01, memoryGiB: 5 }
    - { name: b, host: hv01, memoryGiB: 5 }
    - { name: c, host: hv01, memoryGiB: 5 }
    - { name: d, host: hv01, memoryGiB: 5 }
",
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - { name: a, host: hv02 }
    - { name: b, host: hv02 }
    - { name: c, host: hv02 }
    - { name: d, host: hv02 }
",
    );
    assert_eq!(plan_of(&c).estimated_seconds, 20.0);
}
