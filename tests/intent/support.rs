//! Helpers shared by the intent tests: loading a Fleet and a Placement from
//! YAML, reading a plan's moves, and replaying plans in the simulator on
//! paused time while checking that `separate` holds at every moment.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth::plan::schedule::Scheduler;
use berth::plan::{self, Action, ActionKind, Caps, Plan, Reason};
use berth::provider::sim::{Event, EventKind, Sim};
use berth::provider::{MoveRequest, Observed, Provider};
use berth::spec::{self, Desired, FleetSpec, RuleKind};
use tokio::task::JoinSet;

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

/// A current-thread runtime on paused time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
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

/// One plan and its execution in the simulator.
pub struct Round {
    /// The plan made at the start of the round.
    pub plan: Plan,
    /// The fleet when it was made.
    pub before: Observed,
    /// The fleet after it ran.
    pub after: Observed,
    /// The simulator's events while it ran.
    pub journal: Vec<Event>,
}

/// Plans and executes up to `max` rounds, until the plan is in sync.
pub fn replay(fleet: &FleetSpec, desired: &Desired, max: usize) -> Result<Vec<Round>, String> {
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
pub async fn execute(sim: &Arc<Sim>, plan: &Plan, caps: &Caps) -> Result<(), String> {
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
                    storage_path,
                    ..
                } => {
                    let request = MoveRequest {
                        vm: vm.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        kind: *method,
                        storage_path: storage_path.clone(),
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
