//! Replaying plans in the simulator, as an executor would, on paused time:
//! shared by the property tests of planning (`plan_props.rs`) and of intent
//! (`intent_plan.rs`, `intent_props.rs`), which include it with `#[path]`.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use berth::plan::schedule::Scheduler;
use berth::plan::{self, Action, ActionKind, Caps, Plan};
use berth::provider::sim::{Event, Sim};
use berth::provider::{MoveRequest, Observed, Provider};
use berth::spec::{Desired, FleetSpec};
use tokio::task::JoinSet;

/// One round: a plan made against the fleet as it was, carried out.
pub struct Round {
    /// The plan made at the start of the round.
    pub plan: Plan,
    /// The limits it was made under.
    pub caps: Caps,
    /// The fleet when it was made.
    pub before: Observed,
    /// The fleet after it ran.
    pub after: Observed,
    /// What the simulator recorded during this round.
    pub journal: Vec<Event>,
}

/// A current-thread runtime on paused time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

/// Plans and carries the plan out, again and again as `apply` would, until
/// a plan has nothing to do or `max` rounds have run. The last round's plan
/// is the first with no actions, if the fleet converged.
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
                caps,
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

/// Carries a plan out in the simulator as an executor would: the shared
/// scheduler picks, moves run concurrently, and an action starts only when
/// everything in its `after` has finished.
pub async fn execute(sim: &Arc<Sim>, plan: &Plan, caps: &Caps) -> Result<(), String> {
    let by_id: HashMap<u32, &Action> = plan.actions.iter().map(|a| (a.id, a)).collect();
    let mut waiting: HashMap<u32, usize> = HashMap::new();
    let mut succ: HashMap<u32, Vec<u32>> = HashMap::new();
    for a in &plan.actions {
        waiting.insert(a.id, a.after.len());
        for d in &a.after {
            if *d >= a.id || !by_id.contains_key(d) {
                return Err(format!("#{} is after #{d}, which it may not name", a.id));
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
    let mut finished: BTreeSet<u32> = BTreeSet::new();
    loop {
        for id in sched.pick() {
            let a = by_id[&id];
            let failed = |e: berth::provider::ProviderError| format!("#{id} {:?}: {e}", a.kind);
            match &a.kind {
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
                    let job = sim.start_move(&request).await.map_err(failed)?;
                    let sim = Arc::clone(sim);
                    jobs.spawn(async move { (id, sim.wait_job(&job).await) });
                }
                ActionKind::SetAcls {
                    vm,
                    adapter,
                    add,
                    remove,
                    ..
                } => {
                    for r in remove {
                        sim.remove_acl(vm, adapter, r.direction, r.weight)
                            .await
                            .map_err(failed)?;
                    }
                    for r in add {
                        let rule = r
                            .rule
                            .as_ref()
                            .ok_or(format!("#{id}: a rule to add is empty"))?;
                        sim.add_acl(vm, adapter, rule).await.map_err(failed)?;
                    }
                    done_now.push(id);
                }
                ActionKind::Connect {
                    vm,
                    adapter,
                    switch,
                    vm_network,
                    ..
                } => {
                    sim.connect_adapter(vm, adapter, switch, vm_network.as_deref())
                        .await
                        .map_err(failed)?;
                    done_now.push(id);
                }
                ActionKind::SetVlan {
                    vm,
                    adapter,
                    vlan_id,
                    ..
                } => {
                    sim.set_vlan(vm, adapter, *vlan_id).await.map_err(failed)?;
                    done_now.push(id);
                }
            }
        }
        let id = match done_now.pop() {
            Some(id) => id,
            None => match jobs.join_next().await {
                None => break,
                Some(Ok((id, Ok(())))) => id,
                Some(Ok((id, Err(e)))) => {
                    return Err(format!("move #{id} {:?} failed: {e}", by_id[&id].kind));
                }
                Some(Err(e)) => return Err(format!("a job task died: {e}")),
            },
        };
        sched.finish(id);
        finished.insert(id);
        for s in succ.get(&id).into_iter().flatten() {
            let n = waiting.get_mut(s).expect("every action counts its deps");
            *n -= 1;
            if *n == 0 {
                sched.make_ready(*s);
            }
        }
    }
    if finished.len() != plan.actions.len() || sched.has_waiting() {
        let stuck: Vec<u32> = plan
            .actions
            .iter()
            .map(|a| a.id)
            .filter(|id| !finished.contains(id))
            .collect();
        return Err(format!("the scheduler never started {stuck:?}"));
    }
    Ok(())
}
