//! The expected schedule of a plan, move by move, for the plan timeline.
//!
//! [`estimate_makespan`](super::estimate_makespan) only says how long the
//! whole plan takes; a reviewer also wants to see when each move should
//! start and end, which moves wait for a migration slot and why, and how
//! full each host gets on the way. This replays the plan exactly as the
//! estimate does (the same [`Scheduler`] and [`Dependencies`], every action
//! lasting its estimate) and records each action's times.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use crate::provider::{MoveKind, Observed};

use super::schedule::{Caps, Dependencies, Scheduler};
use super::{ActionKind, Plan};

/// When one action is expected to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The action's id.
    pub id: u32,
    /// When everything it waits on (`after`) is done, seconds from the start.
    pub ready: f64,
    /// When it starts.
    pub start: f64,
    /// When it ends.
    pub end: f64,
    /// Why it started later than it was ready, when it did.
    pub wait: Option<String>,
}

/// Memory in use on one host over the plan, as steps.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTrack {
    /// Memory for VMs, MiB.
    pub capacity_mib: u64,
    /// `(seconds from the start, MiB in use from then on)`, time ascending;
    /// the first point is at 0.
    pub steps: Vec<(f64, u64)>,
}

/// The expected schedule of a plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// One slot per action, ids ascending.
    pub slots: Vec<Slot>,
    /// Memory in use per host that a move touches.
    pub memory: BTreeMap<String, MemoryTrack>,
    /// When the last action ends, seconds.
    pub makespan: f64,
}

#[derive(PartialEq)]
struct Ends(f64, u32);
impl Eq for Ends {}
impl PartialOrd for Ends {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ends {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

/// Replays `plan` under `caps` as the estimate does and records each
/// action's times, the reason of each wait, and memory per host over time.
pub fn timeline(plan: &Plan, caps: &Caps, observed: &Observed) -> Timeline {
    let seconds: HashMap<u32, f64> = plan
        .actions
        .iter()
        .map(|a| {
            let s = match &a.kind {
                ActionKind::Move {
                    estimated_seconds, ..
                } => *estimated_seconds,
                _ => 0.0,
            };
            (a.id, s)
        })
        .collect();
    let mut sched = Scheduler::new(plan, caps);
    let mut deps = Dependencies::new(plan);
    let mut ready: HashMap<u32, f64> = HashMap::new();
    let mut started: HashMap<u32, f64> = HashMap::new();
    for id in deps.roots() {
        ready.insert(id, 0.0);
        sched.make_ready(id);
    }
    let mut heap = BinaryHeap::new();
    let mut now = 0.0f64;
    loop {
        for id in sched.pick() {
            started.insert(id, now);
            heap.push(Ends(now + seconds.get(&id).copied().unwrap_or(0.0), id));
        }
        let Some(Ends(t, id)) = heap.pop() else {
            break;
        };
        now = now.max(t);
        sched.finish(id);
        for r in deps.done(id) {
            ready.insert(r, now);
            sched.make_ready(r);
        }
    }
    let mut slots: Vec<Slot> = plan
        .actions
        .iter()
        .filter_map(|a| {
            let start = *started.get(&a.id)?;
            Some(Slot {
                id: a.id,
                ready: ready.get(&a.id).copied().unwrap_or(start),
                start,
                end: start + seconds.get(&a.id).copied().unwrap_or(0.0),
                wait: None,
            })
        })
        .collect();
    let reasons: Vec<(usize, String)> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.start > s.ready + 1e-6)
        .map(|(i, s)| (i, wait_reason(plan, caps, &slots, s)))
        .collect();
    for (i, why) in reasons {
        slots[i].wait = Some(why);
    }
    let makespan = slots.iter().fold(0.0f64, |m, s| m.max(s.end));
    Timeline {
        memory: memory_tracks(plan, observed, &slots),
        slots,
        makespan,
    }
}

struct MoveEnds<'a> {
    from: &'a str,
    to: &'a str,
    live: bool,
    memory_mib: u64,
}

fn move_of(plan: &Plan, id: u32) -> Option<MoveEnds<'_>> {
    let a = plan.actions.get((id as usize).checked_sub(1)?)?;
    let a = if a.id == id {
        a
    } else {
        plan.actions.iter().find(|a| a.id == id)?
    };
    match &a.kind {
        ActionKind::Move {
            from,
            to,
            method,
            memory_mib,
            ..
        } => Some(MoveEnds {
            from,
            to,
            live: *method == MoveKind::Live,
            memory_mib: *memory_mib,
        }),
        _ => None,
    }
}

/// Why a move that was ready at `s.ready` did not start then: a full host,
/// the fleet-wide limit, or moves ahead of it in the queue.
fn wait_reason(plan: &Plan, caps: &Caps, slots: &[Slot], s: &Slot) -> String {
    let Some(m) = move_of(plan, s.id) else {
        return "waits for other actions".to_string();
    };
    let at = s.ready;
    let running: Vec<MoveEnds<'_>> = slots
        .iter()
        .filter(|o| o.id != s.id && o.start <= at + 1e-6 && o.end > at + 1e-6)
        .filter_map(|o| move_of(plan, o.id))
        .collect();
    if m.live {
        for host in [m.from, m.to] {
            let busy = running
                .iter()
                .filter(|r| r.live && (r.from == host || r.to == host))
                .count();
            let cap = caps.host(host);
            if busy as u64 >= u64::from(cap) {
                return format!(
                    "waits for a live-migration slot on {host} ({busy} of {cap} in use)"
                );
            }
        }
    }
    if running.len() as u64 >= u64::from(caps.max_parallel) {
        return format!(
            "waits for one of the {} moves allowed at once (maxParallelMigrations)",
            caps.max_parallel
        );
    }
    "waits behind more urgent moves for the same slots".to_string()
}

/// Memory in use over time on each host a live move touches: a live move
/// holds the VM's memory on its destination from its start, and frees it
/// on its source at its end.
fn memory_tracks(
    plan: &Plan,
    observed: &Observed,
    slots: &[Slot],
) -> BTreeMap<String, MemoryTrack> {
    let base = observed.memory_used();
    let mut deltas: BTreeMap<&str, Vec<(f64, i64)>> = BTreeMap::new();
    for s in slots {
        let Some(m) = move_of(plan, s.id) else {
            continue;
        };
        deltas.entry(m.from).or_default();
        deltas.entry(m.to).or_default();
        if !m.live || m.memory_mib == 0 {
            continue;
        }
        let mem = i64::try_from(m.memory_mib).unwrap_or(i64::MAX);
        if let Some(d) = deltas.get_mut(m.to) {
            d.push((s.start, mem));
        }
        if let Some(d) = deltas.get_mut(m.from) {
            d.push((s.end, -mem));
        }
    }
    deltas
        .into_iter()
        .map(|(host, mut d)| {
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
            let mut used = i64::try_from(base.get(host).copied().unwrap_or(0)).unwrap_or(0);
            let mut steps = vec![(0.0, used.max(0) as u64)];
            for (t, delta) in d {
                used += delta;
                let value = used.max(0) as u64;
                match steps.last_mut() {
                    Some(last) if (last.0 - t).abs() < 1e-9 => last.1 = value,
                    _ => steps.push((t, value)),
                }
            }
            let capacity_mib = observed.hosts.get(host).map_or(0, |h| h.memory_mib);
            (
                host.to_string(),
                MemoryTrack {
                    capacity_mib,
                    steps,
                },
            )
        })
        .collect()
}
