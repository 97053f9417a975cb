//! Helpers shared by the intent tests: loading a Fleet and a Placement from
//! YAML, reading a plan's moves, and replaying plans in the simulator on
//! paused time while checking that `separate` holds at every moment.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use berth::plan::{ActionKind, Plan, Reason};
use berth::provider::sim::{EventKind, Sim};
use berth::provider::{Observed, Provider};
use berth::spec::{self, Desired, FleetSpec, RuleKind};

// ------------------------------------------------------------- loading

/// A Fleet and a Placement from YAML bodies, and the fleet as observed.
pub fn load(fleet: &str, placement: &str) -> Result<(FleetSpec, Desired, Observed), String> {
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

/// (vm, from, to, reason, why, after) of a move.
pub type Move = (String, String, String, Reason, Option<String>, Vec<u32>);

/// Every move of a plan.
pub fn moves(p: &Plan) -> Vec<Move> {
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
pub fn final_hosts(observed: &Observed, p: &Plan) -> BTreeMap<String, String> {
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

// ------------------------------------------------------------- replay

pub use crate::replay::{Round, replay, runtime};

/// The place of `host` under a separate rule: the host, or its label value.
pub fn place(desired: &Desired, by: &Option<String>, host: &str) -> Option<String> {
    match by {
        None => Some(host.to_string()),
        Some(label) => desired.hosts.get(host)?.labels.get(label).cloned(),
    }
}

/// Replays the journal: a VM occupies its host, and while it moves, both
/// hosts. Two members of a `separate` rule may share a place only while
/// both are still where they were before the plan (a violation the plan
/// inherited and is repairing); an arrival must never make one.
pub fn check_separate_at_every_moment(r: &Round, desired: &Desired) -> Result<(), String> {
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
