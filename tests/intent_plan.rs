//! Intent in the planner: VMs that may run in several places, rules between
//! VMs, headroom.
//!
//! Random small fleets with rules are planned and the plans replayed in the
//! simulator: every rule holds in the end for every VM not reported blocked,
//! `separate` holds at every moment of the execution (a VM in flight counts
//! on both hosts), and the number of VMs moved is compared with the exact
//! optimum found by exhaustive search.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use berth::plan::schedule::Scheduler;
use berth::plan::{self, Action, ActionKind, Caps, Plan, Reason};
use berth::provider::sim::{Event, EventKind, Sim};
use berth::provider::{MoveRequest, Observed, Provider};
use berth::spec::{self, Desired, FleetSpec, RuleKind};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tokio::task::JoinSet;

// ------------------------------------------------------------- loading

/// A Fleet and a Placement from YAML bodies, and the fleet as observed.
fn load(fleet: &str, placement: &str) -> Result<(FleetSpec, Desired, Observed), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let f = tmp.path().join("fleet.yaml");
    std::fs::write(&f, fleet).map_err(|e| e.to_string())?;
    let p = tmp.path().join("placement.yaml");
    std::fs::write(&p, placement).map_err(|e| e.to_string())?;
    let fleet = spec::load_fleet(&f).map_err(|e| format!("fleet: {e}"))?;
    let desired = spec::load(&[p]).map_err(|e| format!("placement: {e}"))?;
    let observed = runtime().block_on(async { Sim::in_memory(&fleet).observe().await });
    Ok((fleet, desired, observed.map_err(|e| e.to_string())?))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

/// (vm, from, to, reason, why, after) of a move.
type Move = (String, String, String, Reason, Option<String>, Vec<u32>);

/// Every move of a plan.
fn moves(p: &Plan) -> Vec<Move> {
    p.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Move {
                vm,
                from,
                to,
                reason,
                why,
                ..
            } => Some((
                vm.clone(),
                from.clone(),
                to.clone(),
                *reason,
                why.clone(),
                a.after.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Where the plan leaves each VM.
fn final_hosts(observed: &Observed, p: &Plan) -> BTreeMap<String, String> {
    let mut at: BTreeMap<String, String> = observed
        .vms
        .values()
        .map(|v| (v.name.clone(), v.host.clone()))
        .collect();
    for a in &p.actions {
        if let ActionKind::Move { vm, to, .. } = &a.kind {
            at.insert(vm.clone(), to.clone());
        }
    }
    at
}

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
    let (_, desired, observed) =
        load(&fleet(10), &placement("s01")).unwrap_or_else(|e| panic!("{e}"));
    let p = plan::plan(&desired, &observed);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
    let m = moves(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0.as_str(), m[0].2.as_str()), ("app", "s03"), "{m:?}");
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

// ------------------------------------------------------------- replay

struct Round {
    plan: Plan,
    before: Observed,
    after: Observed,
    journal: Vec<Event>,
}

fn replay(fleet: &FleetSpec, desired: &Desired, max: usize) -> Result<Vec<Round>, String> {
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(fleet));
        let mut rounds = Vec::new();
        let mut seen = 0;
        for _ in 0..max {
            let before = sim.observe().await.map_err(|e| e.to_string())?;
            let plan = plan::plan(desired, &before);
            let caps = Caps::new(desired, &before);
            let idle = plan.actions.is_empty();
            execute(&sim, &plan, &caps).await?;
            let after = sim.observe().await.map_err(|e| e.to_string())?;
            let journal = sim.journal().split_off(seen);
            seen += journal.len();
            rounds.push(Round {
                plan,
                before,
                after,
                journal,
            });
            if idle {
                break;
            }
        }
        Ok(rounds)
    })
}

/// Carries a plan out as an executor would: the shared scheduler picks,
/// moves run concurrently, an action starts once its `after` are done.
#[allow(clippy::needless_update)] // other branches add fields to MoveRequest
async fn execute(sim: &Arc<Sim>, plan: &Plan, caps: &Caps) -> Result<(), String> {
    let by_id: HashMap<u32, &Action> = plan.actions.iter().map(|a| (a.id, a)).collect();
    let mut waiting: HashMap<u32, usize> = HashMap::new();
    let mut succ: HashMap<u32, Vec<u32>> = HashMap::new();
    for a in &plan.actions {
        waiting.insert(a.id, a.after.len());
        for d in &a.after {
            if *d >= a.id {
                return Err(format!("#{} is after #{d}", a.id));
            }
            succ.entry(*d).or_default().push(a.id);
        }
    }
    let mut sched = Scheduler::new(plan, caps);
    for a in plan.actions.iter().filter(|a| a.after.is_empty()) {
        sched.make_ready(a.id);
    }
    let mut jobs = JoinSet::new();
    let mut done_now: Vec<u32> = Vec::new();
    let mut finished = 0usize;
    loop {
        for id in sched.pick() {
            match &by_id[&id].kind {
                ActionKind::Move {
                    vm,
                    from,
                    to,
                    method,
                    ..
                } => {
                    let request = MoveRequest {
                        vm: vm.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        kind: *method,
                        ..request_defaults()
                    };
                    let job = sim
                        .start_move(&request)
                        .await
                        .map_err(|e| format!("#{id}: {e}"))?;
                    let sim = Arc::clone(sim);
                    jobs.spawn(async move { (id, sim.wait_job(&job).await) });
                }
                _ => done_now.push(id),
            }
        }
        let id = match done_now.pop() {
            Some(id) => id,
            None => match jobs.join_next().await {
                None => break,
                Some(Ok((id, Ok(())))) => id,
                Some(Ok((id, Err(e)))) => return Err(format!("move #{id} failed: {e}")),
                Some(Err(e)) => return Err(format!("a job task died: {e}")),
            },
        };
        sched.finish(id);
        finished += 1;
        for s in succ.get(&id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    sched.make_ready(*s);
                }
            }
        }
    }
    if finished != plan.actions.len() {
        return Err(format!(
            "only {finished} of {} actions ran",
            plan.actions.len()
        ));
    }
    Ok(())
}

/// Fields of a move request beyond vm, from, to and kind.
fn request_defaults() -> MoveRequest {
    MoveRequest {
        vm: String::new(),
        from: String::new(),
        to: String::new(),
        kind: berth::provider::MoveKind::Offline,
        storage_path: None,
    }
}

/// The place of `host` under a separate rule: the host, or its label value.
fn place(desired: &Desired, by: &Option<String>, host: &str) -> Option<String> {
    match by {
        None => Some(host.to_string()),
        Some(label) => desired.hosts.get(host)?.labels.get(label).cloned(),
    }
}

/// Replays the journal: a VM occupies its host, and while it moves, both
/// hosts. Two members of a `separate` rule may share a place only while
/// both are still where they were before the plan (a violation the plan
/// inherited and is repairing); an arrival must never make one.
fn check_separate_at_every_moment(r: &Round, desired: &Desired) -> Result<(), String> {
    // vm -> [(host, arrived during the plan)]
    let mut on: BTreeMap<String, Vec<(String, bool)>> = r
        .before
        .vms
        .values()
        .map(|v| (v.name.clone(), vec![(v.host.clone(), false)]))
        .collect();
    for e in &r.journal {
        match &e.kind {
            EventKind::MigrationStarted { vm, to, .. } => {
                on.entry(vm.clone()).or_default().push((to.clone(), true));
            }
            EventKind::MigrationCompleted { vm, from, .. } => {
                if let Some(list) = on.get_mut(vm)
                    && let Some(i) = list.iter().position(|(h, _)| h == from)
                {
                    list.remove(i);
                }
            }
            EventKind::MigrationFailed { vm, error, .. } => {
                return Err(format!("t={}: the move of {vm} failed: {error}", e.t));
            }
            _ => continue,
        }
        for rule in &desired.intent.rules {
            let RuleKind::Separate { by } = &rule.kind else {
                continue;
            };
            let mut seen: HashMap<String, (&str, bool)> = HashMap::new();
            for vm in &rule.vms {
                for (h, arrived) in on.get(vm).into_iter().flatten() {
                    let Some(p) = place(desired, by, h) else {
                        continue;
                    };
                    if let Some((other, other_arrived)) = seen.get(&p)
                        && *other != vm
                        && (*arrived || *other_arrived)
                    {
                        return Err(format!(
                            "t={}: rule {}: {vm} and {other} are both on {p} ({:?})",
                            e.t, rule.name, on
                        ));
                    }
                    seen.insert(p, (vm, *arrived));
                }
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------- generation

#[derive(Debug, Clone)]
struct GenHost {
    gib: u64,
    rack: usize,
}

#[derive(Debug, Clone)]
enum Where {
    Pinned,
    Hosts(Vec<usize>),
    Group(usize),
}

#[derive(Debug, Clone)]
struct GenVm {
    gib: u64,
    host: usize,
    place: Where,
    live: bool,
}

#[derive(Debug, Clone)]
struct Gen {
    hosts: Vec<GenHost>,
    vms: Vec<GenVm>,
    maintenance: Option<usize>,
    /// (members, by rack)
    separate: Vec<(Vec<usize>, bool)>,
    together: Vec<(usize, usize)>,
    headroom: u32,
}

fn gen_case(max_vms: usize, headroom: bool) -> impl Strategy<Value = Gen> {
    (2usize..=6).prop_flat_map(move |n| {
        let host = (16u64..=64, 0usize..3).prop_map(|(gib, rack)| GenHost { gib, rack });
        let place = prop_oneof![
            1 => Just(Where::Pinned),
            3 => prop::collection::vec(0..n, 1..=n).prop_map(Where::Hosts),
            2 => (0usize..2).prop_map(Where::Group),
        ];
        let vm = (1u64..=16, 0..n, place, prop::bool::weighted(0.85)).prop_map(
            |(gib, host, place, live)| GenVm {
                gib,
                host,
                place,
                live,
            },
        );
        (
            prop::collection::vec(host, n),
            prop::collection::vec(vm, 2..=max_vms),
            prop::option::weighted(0.3, 0..n),
            prop::collection::vec(
                (prop::collection::vec(0usize..max_vms, 2..=3), any::<bool>()),
                0..=3,
            ),
            prop::collection::vec((0usize..max_vms, 0usize..max_vms), 0..=2),
            if headroom { 0u32..=1 } else { 0u32..=0 },
        )
            .prop_map(
                |(hosts, vms, maintenance, separate, together, headroom)| Gen {
                    hosts,
                    vms,
                    maintenance,
                    separate,
                    together,
                    headroom,
                },
            )
    })
}

fn hname(i: usize) -> String {
    format!("hv{:02}", i + 1)
}

fn vname(i: usize) -> String {
    format!("vm{:02}", i + 1)
}

/// The case as Fleet and Placement YAML. Running VMs that do not fit their
/// host are off; pinned VMs are on their host already and never on the
/// host in maintenance; rules name only existing VMs.
fn yaml(g: &Gen) -> (String, String) {
    let n = g.hosts.len();
    let mut fleet = String::from("apiVersion: berth/v1\nkind: Fleet\nspec:\n  hosts:\n");
    for (i, h) in g.hosts.iter().enumerate() {
        writeln!(
            fleet,
            "    - {{ name: {}, memoryGiB: {}, switches: [Prod] }}",
            hname(i),
            h.gib
        )
        .ok();
    }
    fleet.push_str("  vms:\n");
    let mut used = vec![0u64; n];
    let mut vms = g.vms.clone();
    for v in &mut vms {
        if matches!(v.place, Where::Pinned) && g.maintenance == Some(v.host) {
            v.place = Where::Group(1);
        }
    }
    for (i, v) in vms.iter().enumerate() {
        let live = v.live && used[v.host] + v.gib <= g.hosts[v.host].gib;
        if live {
            used[v.host] += v.gib;
        }
        writeln!(
            fleet,
            "    - {{ name: {}, host: {}, memoryGiB: {}, state: {} }}",
            vname(i),
            hname(v.host),
            v.gib,
            if live { "running" } else { "off" }
        )
        .ok();
    }
    let mut p = format!(
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  policy: {{ headroom: {} }}\n  hosts:\n",
        g.headroom
    );
    for (i, h) in g.hosts.iter().enumerate() {
        writeln!(
            p,
            "    - {{ name: {}, labels: {{ rack: r{} }}, maintenance: {} }}",
            hname(i),
            h.rack,
            g.maintenance == Some(i)
        )
        .ok();
    }
    let half: Vec<String> = (0..n.div_ceil(2)).map(hname).collect();
    let all: Vec<String> = (0..n).map(hname).collect();
    writeln!(
        p,
        "  hostGroups:\n    - {{ name: g0, hosts: [{}] }}\n    - {{ name: g1, hosts: [{}] }}",
        half.join(", "),
        all.join(", ")
    )
    .ok();
    p.push_str("  vms:\n");
    for (i, v) in vms.iter().enumerate() {
        let place = match &v.place {
            Where::Pinned => format!("host: {}", hname(v.host)),
            Where::Hosts(list) => {
                let mut l: Vec<usize> = list.clone();
                l.sort_unstable();
                l.dedup();
                let names: Vec<String> = l.into_iter().map(hname).collect();
                format!("hosts: [{}]", names.join(", "))
            }
            Where::Group(k) => format!("hostGroup: g{k}"),
        };
        writeln!(p, "    - {{ name: {}, {place} }}", vname(i)).ok();
    }
    let mut rules = Vec::new();
    for (k, (members, by_rack)) in g.separate.iter().enumerate() {
        let mut m: Vec<usize> = members.iter().copied().filter(|x| *x < vms.len()).collect();
        m.sort_unstable();
        m.dedup();
        if m.len() >= 2 {
            let names: Vec<String> = m.into_iter().map(vname).collect();
            rules.push(format!(
                "    - {{ name: s{k}, separate: [{}]{} }}",
                names.join(", "),
                if *by_rack { ", by: rack" } else { "" }
            ));
        }
    }
    for (k, (a, b)) in g.together.iter().enumerate() {
        if a != b && *a < vms.len() && *b < vms.len() {
            rules.push(format!(
                "    - {{ name: t{k}, together: [{}, {}] }}",
                vname(*a),
                vname(*b)
            ));
        }
    }
    if !rules.is_empty() {
        p.push_str("  rules:\n");
        for r in rules {
            p.push_str(&r);
            p.push('\n');
        }
    }
    (fleet, p)
}

/// Every rule holds where the plan leaves the VMs, except between VMs it
/// reports blocked; every VM with choices not blocked is on an allowed host
/// that is not in maintenance.
fn check_solution(desired: &Desired, observed: &Observed, p: &Plan) -> Result<(), String> {
    let at = final_hosts(observed, p);
    let blocked: BTreeSet<&str> = p.blocked.iter().map(|b| b.vm.as_str()).collect();
    for (name, spec) in &desired.vms {
        let Some(choice) = &spec.choice else { continue };
        if blocked.contains(name.as_str()) {
            continue;
        }
        let h = &at[name];
        if !choice.hosts.contains(h) {
            return Err(format!("{name} ends on {h}, not one of {:?}", choice.hosts));
        }
        if desired.hosts[h].maintenance {
            return Err(format!("{name} ends on {h}, which is in maintenance"));
        }
    }
    for rule in &desired.intent.rules {
        let members: Vec<&String> = rule
            .vms
            .iter()
            .filter(|v| !blocked.contains(v.as_str()))
            .collect();
        match &rule.kind {
            RuleKind::Separate { by } => {
                let mut seen: HashMap<Option<String>, &str> = HashMap::new();
                for vm in members {
                    let pl = place(desired, by, &at[vm.as_str()]);
                    if let Some(other) = seen.insert(pl.clone(), vm) {
                        return Err(format!(
                            "rule {}: {vm} and {other} both end on {pl:?}",
                            rule.name
                        ));
                    }
                }
            }
            RuleKind::Together => {
                let hosts: BTreeSet<&str> =
                    members.iter().map(|v| at[v.as_str()].as_str()).collect();
                if hosts.len() > 1 {
                    return Err(format!("rule {}: members end on {hosts:?}", rule.name));
                }
            }
        }
    }
    // Memory: running VMs fit where they end.
    let mut used: HashMap<&str, u64> = HashMap::new();
    for v in observed.vms.values().filter(|v| v.state.is_live()) {
        *used.entry(at[&v.name].as_str()).or_default() += v.memory_mib;
    }
    for (h, u) in used {
        if u > observed.hosts[h].memory_mib {
            return Err(format!(
                "{h} ends with {u} MiB of {}",
                observed.hosts[h].memory_mib
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------- the optimum

/// The fewest VMs moved over every placement that satisfies the rules,
/// memory, allowed hosts and maintenance (exhaustive search with a bound);
/// `None` when no placement does.
fn optimum(desired: &Desired, observed: &Observed, bound: usize) -> Option<usize> {
    let hosts: Vec<&str> = observed.hosts.keys().map(String::as_str).collect();
    let hi: HashMap<&str, usize> = hosts.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let mut load = vec![0u64; hosts.len()];
    let mut fixed: HashMap<&str, usize> = HashMap::new();
    let mut free: Vec<(&str, usize, u64, Vec<usize>)> = Vec::new();
    for v in observed.vms.values() {
        let mem = if v.state.is_live() { v.memory_mib } else { 0 };
        let spec = &desired.vms[&v.name];
        match &spec.choice {
            None => {
                load[hi[v.host.as_str()]] += mem;
                fixed.insert(&v.name, hi[v.host.as_str()]);
            }
            Some(c) => {
                let allowed: Vec<usize> = c
                    .hosts
                    .iter()
                    .filter(|h| !desired.hosts[*h].maintenance)
                    .map(|h| hi[h.as_str()])
                    .collect();
                free.push((&v.name, hi[v.host.as_str()], mem, allowed));
            }
        }
    }
    // Constrained first: fewer choices first.
    free.sort_by_key(|f| (f.3.len(), f.0));
    let caps: Vec<u64> = hosts
        .iter()
        .map(|h| observed.hosts[*h].memory_mib)
        .collect();
    struct S<'a> {
        desired: &'a Desired,
        hosts: Vec<&'a str>,
        free: Vec<(&'a str, usize, u64, Vec<usize>)>,
        caps: Vec<u64>,
        best: usize,
        found: bool,
    }
    fn ok(s: &S<'_>, at: &HashMap<&str, usize>) -> bool {
        for r in &s.desired.intent.rules {
            let placed: Vec<usize> = r
                .vms
                .iter()
                .filter_map(|v| at.get(v.as_str()).copied())
                .collect();
            match &r.kind {
                RuleKind::Together => {
                    if placed.windows(2).any(|w| w[0] != w[1]) {
                        return false;
                    }
                }
                RuleKind::Separate { by } => {
                    let mut seen = BTreeSet::new();
                    for h in placed {
                        let p = place(s.desired, by, s.hosts[h]);
                        if !seen.insert(p) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
    fn dfs<'a>(
        s: &mut S<'a>,
        i: usize,
        moved: usize,
        load: &mut Vec<u64>,
        at: &mut HashMap<&'a str, usize>,
    ) {
        if moved >= s.best {
            return;
        }
        if i == s.free.len() {
            s.best = moved;
            s.found = true;
            return;
        }
        let (name, home, mem, allowed) = s.free[i].clone();
        // Staying first, so good bounds come early.
        let mut order = allowed.clone();
        order.sort_by_key(|h| *h != home);
        for h in order {
            if load[h] + mem > s.caps[h] {
                continue;
            }
            load[h] += mem;
            at.insert(name, h);
            if ok(s, at) {
                dfs(s, i + 1, moved + usize::from(h != home), load, at);
            }
            at.remove(name);
            load[h] -= mem;
        }
    }
    let mut s = S {
        desired,
        hosts,
        free,
        caps,
        best: bound,
        found: false,
    };
    let mut at = fixed;
    dfs(&mut s, 0, 0, &mut load, &mut at);
    s.found.then_some(s.best)
}

/// VMs with choices whose host the plan changes.
fn moved(desired: &Desired, observed: &Observed, p: &Plan) -> usize {
    let at = final_hosts(observed, p);
    desired
        .vms
        .iter()
        .filter(|(n, s)| {
            s.choice.is_some() && observed.vms.get(*n).is_some_and(|v| v.host != at[*n])
        })
        .count()
}

#[test]
fn moves_are_within_five_percent_of_the_exact_optimum() {
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = gen_case(12, false);
    let (mut ours, mut best, mut cases, mut infeasible) = (0usize, 0usize, 0usize, 0usize);
    let mut ordering = 0usize;
    let mut report = String::new();
    let mut tries = 0;
    while cases < 60 && tries < 2000 {
        tries += 1;
        let g = strategy.new_tree(&mut runner).expect("a case").current();
        let (fleet, placement) = yaml(&g);
        let Ok((_, desired, observed)) = load(&fleet, &placement) else {
            continue; // contradictory rules: rejected by validation
        };
        if desired.intent.rules.is_empty() {
            continue;
        }
        let p = plan::plan(&desired, &observed);
        check_solution(&desired, &observed, &p).unwrap_or_else(|e| panic!("{e}\n{placement}"));
        // VMs blocked only on the way (their moves wait on each other and
        // no host can hold one meanwhile) have a chosen host: they count
        // as moved. The optimum below looks at end states only.
        let on_the_way: Vec<&str> = p
            .blocked
            .iter()
            .filter(|b| b.reason.contains("wait on each other") || b.reason.contains("yet ("))
            .map(|b| b.vm.as_str())
            .collect();
        if !on_the_way.is_empty() {
            ordering += 1;
        }
        let n = moved(&desired, &observed, &p) + on_the_way.len();
        let blocked_in_end = p.blocked.len() - on_the_way.len();
        match optimum(&desired, &observed, usize::MAX) {
            None => {
                infeasible += 1;
                assert!(
                    !p.blocked.is_empty(),
                    "no placement satisfies every rule, yet nothing is blocked:\n{fleet}\n{placement}"
                );
            }
            Some(opt) if blocked_in_end == 0 => {
                assert!(n >= opt, "fewer than the optimum? {n} < {opt}");
                cases += 1;
                ours += n;
                best += opt;
                if n > opt {
                    writeln!(report, "case {cases}: {n} moves, optimum {opt}").ok();
                }
            }
            Some(opt) => {
                panic!(
                    "blocked {:?} although a placement with {opt} moves exists:\n{fleet}\n{placement}",
                    p.blocked
                );
            }
        }
    }
    assert!(
        cases >= 50,
        "only {cases} comparable cases in {tries} tries"
    );
    println!(
        "{cases} cases ({infeasible} infeasible skipped, {ordering} with moves blocked on the way): {ours} moves, optimum {best}\n{report}"
    );
    assert!(
        ours as f64 <= best as f64 * 1.05,
        "{ours} moves against an optimum of {best}:\n{report}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn plans_keep_every_rule_in_the_end_and_separate_at_every_moment(g in gen_case(12, true)) {
        let (fleet_yaml, placement) = yaml(&g);
        let Ok((fleet, desired, observed)) = load(&fleet_yaml, &placement) else {
            return Ok(()); // contradictory rules: rejected by validation
        };
        let p = plan::plan(&desired, &observed);
        if let Err(e) = check_solution(&desired, &observed, &p) {
            prop_assert!(false, "{}\n{}", e, placement);
        }
        let rounds = match replay(&fleet, &desired, 3) {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{placement}"))),
        };
        for r in &rounds {
            if let Err(e) = check_separate_at_every_moment(r, &desired) {
                prop_assert!(false, "{}\n{}\n{}", e, fleet_yaml, placement);
            }
            if let Err(e) = check_solution(&desired, &r.before, &r.plan) {
                prop_assert!(false, "{}\n{}", e, placement);
            }
        }
        // Where the plan goes, it arrives: every VM ends where its round's
        // plan took it.
        for r in &rounds {
            let want = final_hosts(&r.before, &r.plan);
            for (vm, h) in want {
                prop_assert_eq!(&r.after.vms[&vm].host, &h, "{}", vm);
            }
        }
    }
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
