//! The expected schedule of a plan, move by move, for the plan timeline.
//!
//! [`estimate_makespan`](super::estimate_makespan) only says how long the
//! whole plan takes; a reviewer also wants to see when each move should
//! start and end, which moves wait for a migration slot and why, and how
//! full each host gets on the way. This replays the plan exactly as the
//! estimate does (the same [`Scheduler`] and [`Dependencies`], every action
//! lasting its estimate) and records each action's times, and how memory
//! and volume space on each host a move touches rise and fall on the way.

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
    /// the first point is at 0 and holds the use now (a second point at 0
    /// follows when moves start at once).
    pub steps: Vec<(f64, u64)>,
}

/// Space taken on one host volume over the plan, as steps.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeTrack {
    /// The volume's path as the host names it.
    pub path: String,
    /// Space the volume has for VM disks: what their disks take on it now
    /// plus its free space, MiB.
    pub capacity_mib: u64,
    /// `(seconds from the start, MiB taken from then on)`, time ascending,
    /// starting as [`MemoryTrack::steps`] does. A copy takes its disks' size on the
    /// destination volume when it starts and gives it back on the source
    /// volume when the move completes (as Hyper-V and the simulator do).
    pub steps: Vec<(f64, u64)>,
}

/// The expected schedule of a plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// One slot per action, ids ascending.
    pub slots: Vec<Slot>,
    /// Memory in use per host that a move touches.
    pub memory: BTreeMap<String, MemoryTrack>,
    /// Per host, each of its volumes that a move copying disks fills or
    /// empties, in the host's order.
    pub volumes: BTreeMap<String, Vec<VolumeTrack>>,
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
/// Where a move copies through a shared migration network
/// (`networkMiBps`), the replay is the estimate's flow model, in which
/// copies sharing a network slow each other; elsewhere every move lasts its
/// own estimate.
pub fn timeline(plan: &Plan, caps: &Caps, observed: &Observed) -> Timeline {
    let shared = plan.actions.iter().any(|a| {
        move_of(plan, a.id).is_some_and(|m| {
            (m.live || m.disks.is_some())
                && (caps.network(m.from).is_some() || caps.network(m.to).is_some())
        })
    });
    let (slots, makespan) = if shared {
        let (makespan, times) = super::flow::replay(plan, caps);
        let slots = plan
            .actions
            .iter()
            .filter_map(|a| {
                let (ready, start, end) = *times.get(&a.id)?;
                Some(Slot {
                    id: a.id,
                    ready,
                    start,
                    end,
                    wait: None,
                })
            })
            .collect();
        (slots, makespan)
    } else {
        fixed(plan, caps)
    };
    finish(plan, caps, observed, slots, makespan)
}

/// Every move lasting its own estimate, as the estimate replays it where
/// no network is shared.
fn fixed(plan: &Plan, caps: &Caps) -> (Vec<Slot>, f64) {
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
    let slots: Vec<Slot> = plan
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
    let makespan = slots.iter().fold(0.0f64, |m, s| m.max(s.end));
    (slots, makespan)
}

/// Explains the waits and adds memory and volume use.
fn finish(
    plan: &Plan,
    caps: &Caps,
    observed: &Observed,
    mut slots: Vec<Slot>,
    makespan: f64,
) -> Timeline {
    let reasons: Vec<(usize, String)> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.start > s.ready + 1e-6)
        .map(|(i, s)| (i, wait_reason(plan, caps, &slots, s)))
        .collect();
    for (i, why) in reasons {
        slots[i].wait = Some(why);
    }
    Timeline {
        memory: memory_tracks(plan, observed, &slots),
        volumes: volume_tracks(plan, observed, &slots),
        slots,
        makespan,
    }
}

struct MoveEnds<'a> {
    vm: &'a str,
    from: &'a str,
    to: &'a str,
    live: bool,
    memory_mib: u64,
    /// Destination volume and MiB of disks copied, when it copies disks.
    disks: Option<(&'a str, u64)>,
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
            vm,
            from,
            to,
            method,
            memory_mib,
            disk_mib,
            volume,
            ..
        } => Some(MoveEnds {
            vm,
            from,
            to,
            live: *method == MoveKind::Live,
            memory_mib: *memory_mib,
            disks: volume
                .as_deref()
                .filter(|_| *disk_mib > 0)
                .map(|v| (v, *disk_mib)),
        }),
        _ => None,
    }
}

/// Why a move that was ready at `s.ready` did not start then: a full host
/// (live-migration or storage-migration slots), the fleet-wide limit, or
/// moves ahead of it in the queue.
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
    if m.disks.is_some() {
        for host in [m.from, m.to] {
            let busy = running
                .iter()
                .filter(|r| r.disks.is_some() && (r.from == host || r.to == host))
                .count();
            let cap = caps.storage(host);
            if busy as u64 >= u64::from(cap) {
                return format!(
                    "waits for a storage-migration slot on {host} ({busy} of {cap} in use)"
                );
            }
        }
    }
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
        .map(|(host, d)| {
            let steps = steps(base.get(host).copied().unwrap_or(0), d);
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

/// Space taken over time on each volume a move copying disks fills or
/// empties: the destination volume takes the disks' size when the copy
/// starts, the volume they leave gives it back when the move ends. The
/// second leg of a hop leaves the volume the first leg filled.
fn volume_tracks(
    plan: &Plan,
    observed: &Observed,
    slots: &[Slot],
) -> BTreeMap<String, Vec<VolumeTrack>> {
    let start: HashMap<u32, &Slot> = slots.iter().map(|s| (s.id, s)).collect();
    // Where each VM's travelling disks lie as the plan goes: (host, volume, MiB).
    let mut at: HashMap<&str, Vec<(&str, &str, u64)>> = HashMap::new();
    let mut deltas: BTreeMap<(&str, &str), Vec<(f64, i64)>> = BTreeMap::new();
    let mut ids: Vec<u32> = slots.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    for id in ids {
        let (Some(m), Some(s)) = (move_of(plan, id), start.get(&id)) else {
            continue;
        };
        let Some((volume, mib)) = m.disks else {
            continue;
        };
        let here = at.entry(m.vm).or_insert_with(|| {
            observed.vms.get(m.vm).map_or_else(Vec::new, |vm| {
                super::storage::disks_on(vm)
                    .into_iter()
                    .filter_map(|(v, mib)| {
                        let host = observed.hosts.get(&vm.host)?;
                        let v = host.volumes.iter().find(|x| x.path == v)?;
                        Some((vm.host.as_str(), v.path.as_str(), mib))
                    })
                    .collect()
            })
        });
        for (host, v, mib) in here.drain(..) {
            if host == m.from {
                let mib = i64::try_from(mib).unwrap_or(i64::MAX);
                deltas.entry((host, v)).or_default().push((s.end, -mib));
            }
        }
        let taken = i64::try_from(mib).unwrap_or(i64::MAX);
        deltas
            .entry((m.to, volume))
            .or_default()
            .push((s.start, taken));
        here.push((m.to, volume, mib));
    }
    // What the VMs' disks take on each volume now.
    let mut base: HashMap<(&str, &str), u64> = HashMap::new();
    for vm in observed.vms.values() {
        for d in &vm.disks {
            if let Some(v) = &d.volume {
                *base.entry((vm.host.as_str(), v.as_str())).or_default() += d.size_mib;
            }
        }
    }
    let mut out: BTreeMap<String, Vec<VolumeTrack>> = BTreeMap::new();
    for ((host, path), d) in deltas {
        let taken = base.get(&(host, path)).copied().unwrap_or(0);
        let free = observed
            .hosts
            .get(host)
            .and_then(|h| h.volumes.iter().find(|v| v.path == path))
            .map_or(0, |v| v.free_mib);
        out.entry(host.to_string()).or_default().push(VolumeTrack {
            path: path.to_string(),
            capacity_mib: taken + free,
            steps: steps(taken, d),
        });
    }
    // In the host's own order of volumes.
    for (host, tracks) in &mut out {
        if let Some(h) = observed.hosts.get(host) {
            tracks.sort_by_key(|t| h.volumes.iter().position(|v| v.path == t.path));
        }
    }
    out
}

/// Steps from a starting value and signed changes at times (gains first
/// at equal times, as a copy starting and one ending at once overlap).
/// The first point is the value before anything starts, even when moves
/// start at 0.
fn steps(start: u64, mut d: Vec<(f64, i64)>) -> Vec<(f64, u64)> {
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut used = i64::try_from(start).unwrap_or(i64::MAX);
    let mut out = vec![(0.0, used.max(0) as u64)];
    for (t, delta) in d {
        used = used.saturating_add(delta);
        let value = used.max(0) as u64;
        let merge = out.len() > 1;
        match out.last_mut() {
            Some(last) if merge && (last.0 - t).abs() < 1e-9 => last.1 = value,
            _ => out.push((t, value)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::steps;

    #[test]
    fn steps_start_from_now_and_merge_changes_at_one_time() {
        let s = steps(100, vec![(5.0, -40), (0.0, 30), (5.0, 10), (0.0, 20)]);
        assert_eq!(s, vec![(0.0, 100), (0.0, 150), (5.0, 120)]);
        assert_eq!(steps(7, Vec::new()), vec![(0.0, 7)]);
    }
}
