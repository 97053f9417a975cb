//! Limits and priorities: which ready move starts first.
//!
//! The executor and the plan's estimate share this code, so the estimate is
//! the schedule the executor will actually try to follow. A live move needs
//! a free slot on both hosts (effective cap: the least of the policy's
//! `maxMigrationsPerHost`, the host's declared `maxMigrations` and its own
//! reported limit) and one of `maxParallelMigrations`. Among ready moves,
//! the one on the busiest remaining host, or with the longest chain behind
//! it, goes first: list scheduling toward the makespan lower bound.
//!
//! A move that copies disks also needs a storage-migration slot on both
//! hosts (effective cap: the least of the policy's
//! `maxStorageMigrationsPerHost`, the host's declared `maxStorageMigrations`
//! and its own reported limit). Where a host has a shared migration network,
//! its work is bandwidth-bound (bytes through it / `networkMiBps`), and the
//! estimate shares each network among the copies running through it, as the
//! simulator and real networks do.

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
    /// Storage-migration caps per host (absent: 2).
    storage: HashMap<String, u32>,
    /// Rate of one migration per host, MiB/s (absent: 1000).
    rates: HashMap<String, f64>,
    /// Shared migration networks per host, MiB/s (absent: not shared).
    networks: HashMap<String, f64>,
    /// `vms[].priority` where it is not 0.
    priority: HashMap<String, i64>,
}

impl Caps {
    /// The limits in force for this spec and fleet.
    pub fn new(desired: &Desired, observed: &Observed) -> Caps {
        let policy = &desired.policy;
        // Effective cap per host: min(policy, declared, reported).
        let caps_of = |policy_cap: u32,
                       declared: fn(&crate::spec::HostSpec) -> Option<u32>,
                       reported: fn(&crate::provider::ObservedHost) -> u32| {
            observed
                .hosts
                .values()
                .map(|h| {
                    let declared = desired
                        .hosts
                        .get(&h.name)
                        .and_then(declared)
                        .unwrap_or(u32::MAX);
                    (h.name.clone(), policy_cap.min(declared).min(reported(h)))
                })
                .collect()
        };
        let per_host = caps_of(
            policy.max_migrations_per_host,
            |d| d.max_migrations,
            |h| h.max_migrations,
        );
        let storage = caps_of(
            policy.max_storage_migrations_per_host,
            |d| d.max_storage_migrations,
            |h| h.max_storage_migrations,
        );
        let rates = observed
            .hosts
            .values()
            .filter_map(|h| h.migration_rate_mibps.map(|r| (h.name.clone(), r)))
            .collect();
        let networks = observed
            .hosts
            .values()
            .filter_map(|h| h.network_mibps.map(|n| (h.name.clone(), n)))
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
            storage,
            rates,
            networks,
            priority,
        }
    }

    /// Limits from explicit numbers (tests, benchmarks).
    pub fn from_parts(per_host: HashMap<String, u32>, max_parallel: u32) -> Caps {
        Caps {
            per_host,
            max_parallel,
            storage: HashMap::new(),
            rates: HashMap::new(),
            networks: HashMap::new(),
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

    /// Moves that copy disks allowed at once on `host` (in + out).
    pub fn storage(&self, host: &str) -> u32 {
        self.storage.get(host).copied().unwrap_or(2)
    }

    /// The host's shared migration network, MiB/s, if it has one.
    pub fn network(&self, host: &str) -> Option<f64> {
        self.networks.get(host).copied()
    }

    /// The rate of one migration between two hosts, MiB/s, before any
    /// network sharing (the lesser of their rates).
    pub fn rate(&self, from: &str, to: &str) -> f64 {
        let r = |h: &str| self.rates.get(h).copied().unwrap_or(1000.0);
        r(from).min(r(to)).max(f64::MIN_POSITIVE)
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
    /// It copies disks: it needs storage-migration slots.
    storage: bool,
    /// MiB it transfers (memory when live, plus disks).
    mib: f64,
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
            memory_mib,
            disk_mib,
            ..
        } => Some(MoveInfo {
            vm: vm.clone(),
            from: from.clone(),
            to: to.clone(),
            live: *method == MoveKind::Live,
            storage: *disk_mib > 0,
            mib: (*disk_mib
                + if *method == MoveKind::Live {
                    *memory_mib
                } else {
                    0
                }) as f64,
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
/// behind a move and the work on its busier host (live-migration and
/// storage-migration time per slot, and bytes over a shared network), then
/// the move's own length. Ready moves that do not fit because a host is
/// full are parked on that host until one of its migrations ends, so each
/// pick costs a few set operations, not a scan of every ready move.
#[derive(Debug, Clone)]
pub struct Scheduler {
    caps: Caps,
    moves: HashMap<u32, MoveInfo>,
    priority: HashMap<u32, Urgency>,
    ready: BTreeSet<(Reverse<Urgency>, u32)>,
    parked: HashMap<String, Vec<u32>>,
    running_on: HashMap<String, u32>,
    storage_on: HashMap<String, u32>,
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
        let load = host_load(moves.values(), caps);
        let millis = |s: f64| (s.max(0.0) * 1000.0).round() as u64;
        let priority = plan
            .actions
            .iter()
            .map(|a| {
                let t = tail.get(&a.id).copied().unwrap_or(0.0);
                let d = declared.get(&a.id).copied().unwrap_or(0);
                let p = match moves.get(&a.id) {
                    Some(m) if m.live || m.storage => {
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
            storage_on: HashMap::new(),
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

    fn storage_busy(&self, host: &str) -> u32 {
        self.storage_on.get(host).copied().unwrap_or(0)
    }

    /// The host that keeps a move from starting, if one does, and which of
    /// its limits is full.
    fn full_host(&self, m: &MoveInfo) -> Option<(String, String)> {
        for h in [&m.from, &m.to] {
            if m.storage {
                let (n, cap) = (self.storage_busy(h), self.caps.storage(h));
                if n >= cap {
                    return Some((h.clone(), format!("{h}: {n} of {cap} storage migrations")));
                }
            }
            if m.live {
                let (n, cap) = (self.busy(h), self.caps.host(h));
                if n >= cap {
                    return Some((h.clone(), format!("{h}: {n} of {cap} live migrations")));
                }
            }
        }
        None
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
            if let Some((h, _)) = self.full_host(&m) {
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
        for h in [&m.from, &m.to] {
            if m.live {
                *self.running_on.entry(h.clone()).or_default() += 1;
            }
            if m.storage {
                *self.storage_on.entry(h.clone()).or_default() += 1;
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
        if m.live || m.storage {
            for h in [&m.from, &m.to] {
                if m.live
                    && let Some(n) = self.running_on.get_mut(h.as_str())
                {
                    *n = n.saturating_sub(1);
                }
                if m.storage
                    && let Some(n) = self.storage_on.get_mut(h.as_str())
                {
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

    /// Moves with storage now counted on a host.
    pub fn storage_running_on(&self, host: &str) -> u32 {
        self.storage_busy(host)
    }
}

/// Work per host, seconds: the most of live-migration time per live slot,
/// storage-migration time per storage slot, and bytes over its shared
/// network (each a lower bound on how long the host stays busy).
fn host_load<'a>(moves: impl Iterator<Item = &'a MoveInfo>, caps: &Caps) -> HashMap<&'a str, f64> {
    let mut live: HashMap<&str, f64> = HashMap::new();
    let mut storage: HashMap<&str, f64> = HashMap::new();
    let mut bytes: HashMap<&str, f64> = HashMap::new();
    for m in moves {
        for h in [&m.from, &m.to] {
            if m.live {
                let cap = f64::from(caps.host(h).max(1));
                *live.entry(h.as_str()).or_default() += m.seconds / cap;
            }
            if m.storage {
                let cap = f64::from(caps.storage(h).max(1));
                *storage.entry(h.as_str()).or_default() += m.seconds / cap;
            }
            if let (true, Some(net)) = (m.live || m.storage, caps.network(h)) {
                *bytes.entry(h.as_str()).or_default() += m.mib / net;
            }
        }
    }
    let mut load = live;
    for (h, v) in storage.into_iter().chain(bytes) {
        let e = load.entry(h).or_default();
        *e = e.max(v);
    }
    load
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
/// scheduler picks as the executor does, seconds. Where a move runs through
/// a shared network, its copy slows while others share it.
pub fn estimate_makespan(plan: &Plan, caps: &Caps) -> f64 {
    estimate_makespan_from(plan, caps, &HashMap::new())
}

/// Like [`estimate_makespan`], with actions that may not start before a
/// time (seconds from now): a move of a VM whose backup ends then. (On
/// shared networks the replay does not hold such moves back yet.)
pub fn estimate_makespan_from(plan: &Plan, caps: &Caps, release: &HashMap<u32, f64>) -> f64 {
    let shared = plan.actions.iter().filter_map(move_info).any(|m| {
        (m.live || m.storage) && (caps.network(&m.from).is_some() || caps.network(&m.to).is_some())
    });
    let secs = if shared {
        super::flow::makespan(plan, caps)
    } else {
        fixed_makespan(plan, caps, release)
    };
    (secs * 10.0).round() / 10.0
}

/// The makespan when every action lasts its own estimate.
fn fixed_makespan(plan: &Plan, caps: &Caps, release: &HashMap<u32, f64>) -> f64 {
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
    now
}

/// What the shared-network estimate needs to know of a move.
pub(super) struct Transfer {
    pub from: String,
    pub to: String,
    pub mib: f64,
}

/// The transfer of an action, when it is a move.
pub(super) fn transfer(a: &Action) -> Option<Transfer> {
    move_info(a).map(|m| Transfer {
        from: m.from,
        to: m.to,
        mib: if m.live || m.storage { m.mib } else { 0.0 },
    })
}
