//! Limits and priorities: which ready move starts first.
//!
//! The executor and the plan's estimate share this code, so the estimate is
//! the schedule the executor will actually try to follow. A live move needs
//! a free slot on both hosts (effective cap: the least of the policy's
//! `maxMigrationsPerHost`, the host's declared `maxMigrations` and its own
//! reported limit) and one of `maxParallelMigrations`. Among ready moves,
//! the one on the busiest remaining host, or with the longest chain behind
//! it, goes first: list scheduling toward the makespan lower bound.

use std::cmp::Ordering;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::provider::{MoveKind, Observed};
use crate::spec::Desired;

use super::{Action, ActionKind, Plan};

/// Effective migration limits, and the VMs' declared priorities (which
/// decide among moves ready at once).
#[derive(Debug, Clone, PartialEq)]
pub struct Caps {
    per_host: HashMap<String, u32>,
    /// Moves in flight across the fleet.
    pub max_parallel: u32,
    /// `vms[].priority` where it is not 0.
    priority: HashMap<String, i64>,
}

impl Caps {
    /// The limits in force for this spec and fleet.
    pub fn new(desired: &Desired, observed: &Observed) -> Caps {
        let policy = &desired.policy;
        let per_host = observed
            .hosts
            .values()
            .map(|h| {
                let declared = desired
                    .hosts
                    .get(&h.name)
                    .and_then(|d| d.max_migrations)
                    .unwrap_or(u32::MAX);
                let cap = policy
                    .max_migrations_per_host
                    .min(declared)
                    .min(h.max_migrations);
                (h.name.clone(), cap)
            })
            .collect();
        let priority = desired
            .vms
            .values()
            .filter(|v| v.priority != 0)
            .map(|v| (v.name.clone(), v.priority))
            .collect();
        Caps {
            per_host,
            max_parallel: policy.max_parallel_migrations,
            priority,
        }
    }

    /// Limits from explicit numbers (tests, benchmarks).
    pub fn from_parts(per_host: HashMap<String, u32>, max_parallel: u32) -> Caps {
        Caps {
            per_host,
            max_parallel,
            priority: HashMap::new(),
        }
    }

    /// The same limits with these VM priorities (tests, benchmarks).
    pub fn with_priorities(mut self, priority: HashMap<String, i64>) -> Caps {
        self.priority = priority;
        self
    }

    /// A VM's declared priority (0 unless declared).
    pub fn priority(&self, vm: &str) -> i64 {
        self.priority.get(vm).copied().unwrap_or(0)
    }

    /// Live migrations allowed at once on `host` (in + out).
    pub fn host(&self, host: &str) -> u32 {
        self.per_host.get(host).copied().unwrap_or(0)
    }
}

/// Which actions wait on which: the plan's `after` edges, counted down as
/// actions finish. Shared by the executor and the estimate.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    waiting_on: HashMap<u32, usize>,
    succ: HashMap<u32, Vec<u32>>,
}

impl Dependencies {
    /// The dependencies of a plan; nothing has finished yet.
    pub fn new(plan: &Plan) -> Dependencies {
        let mut d = Dependencies::default();
        for a in &plan.actions {
            d.waiting_on.insert(a.id, a.after.len());
            for before in &a.after {
                d.succ.entry(*before).or_default().push(a.id);
            }
        }
        d
    }

    /// Actions that wait on nothing, ascending.
    pub fn roots(&self) -> Vec<u32> {
        let mut r: Vec<u32> = self
            .waiting_on
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| *id)
            .collect();
        r.sort_unstable();
        r
    }

    /// Actions that wait on `id`.
    pub fn successors(&self, id: u32) -> &[u32] {
        self.succ.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Records that `id` finished; returns the actions that became ready.
    pub fn done(&mut self, id: u32) -> Vec<u32> {
        let mut ready = Vec::new();
        for s in self.succ.get(&id).into_iter().flatten() {
            if let Some(n) = self.waiting_on.get_mut(s) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    ready.push(*s);
                }
            }
        }
        ready
    }
}

/// A move's view for scheduling.
#[derive(Debug, Clone)]
struct MoveInfo {
    vm: String,
    from: String,
    to: String,
    live: bool,
    seconds: f64,
}

fn move_info(a: &Action) -> Option<MoveInfo> {
    match &a.kind {
        ActionKind::Move {
            vm,
            from,
            to,
            method,
            estimated_seconds,
            ..
        } => Some(MoveInfo {
            vm: vm.clone(),
            from: from.clone(),
            to: to.clone(),
            live: *method == MoveKind::Live,
            seconds: *estimated_seconds,
        }),
        _ => None,
    }
}

/// How urgent an action is: declared priority, then critical path, then
/// length (greater first).
type Urgency = (i64, u64, u64);

/// Tracks ready and running actions and picks which start next.
///
/// Priorities are fixed when the plan is loaded: first the VM's declared
/// `priority` (a move that must finish before a more important one starts
/// inherits that one's priority), then the longer of the chain of work
/// behind a move and the live-migration work on its busier host (per
/// slot), then the move's own length. Ready moves that do not fit because a
/// host is full are parked on that host until one of its migrations ends,
/// so each pick costs a few set operations, not a scan of every ready move.
#[derive(Debug, Clone)]
pub struct Scheduler {
    caps: Caps,
    moves: HashMap<u32, MoveInfo>,
    priority: HashMap<u32, Urgency>,
    ready: BTreeSet<(Reverse<Urgency>, u32)>,
    parked: HashMap<String, Vec<u32>>,
    running_on: HashMap<String, u32>,
    running: u32,
}

impl Scheduler {
    /// A scheduler for a plan under these limits; nothing is ready yet.
    pub fn new(plan: &Plan, caps: &Caps) -> Scheduler {
        let moves: HashMap<u32, MoveInfo> = plan
            .actions
            .iter()
            .filter_map(|a| move_info(a).map(|m| (a.id, m)))
            .collect();
        // Tails in reverse id order (`after` only names smaller ids, so this
        // is a topological order).
        let deps = Dependencies::new(plan);
        let mut tail: HashMap<u32, f64> = HashMap::new();
        let mut declared: HashMap<u32, i64> = HashMap::new();
        for a in plan.actions.iter().rev() {
            let own = moves.get(&a.id).map_or(0.0, |m| m.seconds);
            let next = deps
                .successors(a.id)
                .iter()
                .filter_map(|x| tail.get(x))
                .fold(0.0f64, |m, v| m.max(*v));
            tail.insert(a.id, own + next);
            if let Some(m) = moves.get(&a.id) {
                let inherited = deps
                    .successors(a.id)
                    .iter()
                    .filter_map(|x| declared.get(x))
                    .copied()
                    .max();
                let own = caps.priority(&m.vm);
                declared.insert(a.id, inherited.map_or(own, |i| i.max(own)));
            }
        }
        let mut load: HashMap<&str, f64> = HashMap::new();
        for m in moves.values().filter(|m| m.live) {
            for h in [&m.from, &m.to] {
                let cap = f64::from(caps.host(h).max(1));
                *load.entry(h.as_str()).or_default() += m.seconds / cap;
            }
        }
        let millis = |s: f64| (s.max(0.0) * 1000.0).round() as u64;
        let priority = plan
            .actions
            .iter()
            .map(|a| {
                let t = tail.get(&a.id).copied().unwrap_or(0.0);
                let d = declared.get(&a.id).copied().unwrap_or(0);
                let p = match moves.get(&a.id) {
                    Some(m) if m.live => {
                        let l = |h: &str| load.get(h).copied().unwrap_or(0.0);
                        (
                            d,
                            millis(t.max(l(&m.from)).max(l(&m.to))),
                            millis(m.seconds),
                        )
                    }
                    Some(m) => (d, millis(t), millis(m.seconds)),
                    // Adapter changes are quick and urgent (a moved VM
                    // without its ACLs is exposed): first, always.
                    None => (i64::MAX, u64::MAX, 0),
                };
                (a.id, p)
            })
            .collect();
        Scheduler {
            caps: caps.clone(),
            moves,
            priority,
            ready: BTreeSet::new(),
            parked: HashMap::new(),
            running_on: HashMap::new(),
            running: 0,
        }
    }

    /// How urgent an action is (higher first); the executor orders ready
    /// actions by it.
    pub fn priority(&self, id: u32) -> (i64, u64, u64) {
        self.priority.get(&id).copied().unwrap_or((0, 0, 0))
    }

    /// Marks an action whose `after` are all done as ready.
    pub fn make_ready(&mut self, id: u32) {
        let p = self.priority.get(&id).copied().unwrap_or((0, 0, 0));
        self.ready.insert((Reverse(p), id));
    }

    /// Whether any action is ready or parked.
    pub fn has_waiting(&self) -> bool {
        !self.ready.is_empty() || self.parked.values().any(|v| !v.is_empty())
    }

    fn busy(&self, host: &str) -> u32 {
        self.running_on.get(host).copied().unwrap_or(0)
    }

    /// The host that keeps a live move from starting, if one does.
    fn full_host(&self, m: &MoveInfo) -> Option<String> {
        [&m.from, &m.to]
            .into_iter()
            .find(|h| self.busy(h) >= self.caps.host(h))
            .cloned()
    }

    /// Starts, most urgent first, every ready action that fits under the
    /// limits now; returns their ids.
    pub fn pick(&mut self) -> Vec<u32> {
        let mut started = Vec::new();
        let mut skipped = Vec::new();
        while let Some(entry) = self.ready.pop_first() {
            let id = entry.1;
            let Some(m) = self.moves.get(&id).cloned() else {
                started.push(id);
                continue;
            };
            if self.running >= self.caps.max_parallel {
                // Non-move actions sort first, so nothing behind this
                // entry can start either.
                skipped.push(entry);
                break;
            }
            if m.live
                && let Some(h) = self.full_host(&m)
            {
                self.parked.entry(h).or_default().push(id);
                continue;
            }
            self.start(id);
            started.push(id);
        }
        self.ready.extend(skipped);
        started
    }

    /// Counts `id` as running (for moves started outside [`Self::pick`]).
    pub fn start(&mut self, id: u32) {
        let Some(m) = self.moves.get(&id).cloned() else {
            return;
        };
        self.running += 1;
        if m.live {
            for h in [&m.from, &m.to] {
                *self.running_on.entry(h.clone()).or_default() += 1;
            }
        }
    }

    /// Frees the slots of a finished (or failed) action; moves parked on
    /// its hosts become ready again.
    pub fn finish(&mut self, id: u32) {
        let Some(m) = self.moves.get(&id).cloned() else {
            return;
        };
        self.running = self.running.saturating_sub(1);
        if m.live {
            for h in [&m.from, &m.to] {
                if let Some(n) = self.running_on.get_mut(h.as_str()) {
                    *n = n.saturating_sub(1);
                }
                for p in self.parked.remove(h.as_str()).unwrap_or_default() {
                    self.make_ready(p);
                }
            }
        }
    }

    /// Live migrations now counted on a host.
    pub fn running_on(&self, host: &str) -> u32 {
        self.busy(host)
    }
}

#[derive(PartialEq)]
struct Ends(f64, u32);
impl Eq for Ends {}
impl PartialOrd for Ends {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ends {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on time.
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

/// How long the plan takes when every action lasts its estimate and the
/// scheduler picks as the executor does, seconds.
pub fn estimate_makespan(plan: &Plan, caps: &Caps) -> f64 {
    estimate_makespan_from(plan, caps, &HashMap::new())
}

/// Like [`estimate_makespan`], with actions that may not start before a
/// time (seconds from now): a move of a VM whose backup ends then.
pub fn estimate_makespan_from(plan: &Plan, caps: &Caps, release: &HashMap<u32, f64>) -> f64 {
    let mut sched = Scheduler::new(plan, caps);
    let mut deps = Dependencies::new(plan);
    let seconds: HashMap<u32, f64> = plan
        .actions
        .iter()
        .map(|a| (a.id, move_info(a).map_or(0.0, |m| m.seconds)))
        .collect();
    // Ready actions held until their release time.
    let mut held = BinaryHeap::new();
    let ready =
        |id: u32, now: f64, sched: &mut Scheduler, held: &mut BinaryHeap<Ends>| match release
            .get(&id)
        {
            Some(at) if *at > now => held.push(Ends(*at, id)),
            _ => sched.make_ready(id),
        };
    for id in deps.roots() {
        ready(id, 0.0, &mut sched, &mut held);
    }
    let mut heap = BinaryHeap::new();
    let mut now = 0.0f64;
    let mut done = 0usize;
    loop {
        for id in sched.pick() {
            heap.push(Ends(now + seconds.get(&id).copied().unwrap_or(0.0), id));
        }
        let next_end = heap.peek().map(|e: &Ends| e.0);
        let next_release = held.peek().map(|e: &Ends| e.0);
        match (next_end, next_release) {
            (_, Some(r)) if next_end.is_none_or(|e| r < e) => {
                if let Some(Ends(t, id)) = held.pop() {
                    now = now.max(t);
                    sched.make_ready(id);
                }
                continue;
            }
            _ => {}
        }
        let Some(Ends(t, id)) = heap.pop() else {
            break;
        };
        now = now.max(t);
        sched.finish(id);
        done += 1;
        for r in deps.done(id) {
            ready(r, now, &mut sched, &mut held);
        }
    }
    if done < plan.actions.len() {
        // Unreachable for valid plans; report what is known.
        tracing::debug!(
            "estimate: {} actions never became ready",
            plan.actions.len() - done
        );
    }
    (now * 10.0).round() / 10.0
}
