//! Ordering moves so that no host is ever overcommitted.
//!
//! Each host keeps a ledger of memory it can give: what is free now, plus
//! what each planned move out of it frees when it completes. A live move
//! into a host takes its memory from that ledger and waits (`after`) for
//! every move whose memory it takes. Since no two moves take the same
//! memory, any execution that respects `after` keeps every host within its
//! memory, whatever runs in parallel. When moves wait on each other in a
//! ring (a swap with no room), one VM hops through a host with room; when no
//! host has room, the ring's VMs are blocked with the reason.
//! Disks that travel with their VM take space from a volume ledger the same
//! way ([`super::storage`]); a move starts only when both fit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::provider::{MoveKind, Observed, ObservedHost};
use crate::spec::Desired;

use super::diff::{WantedMove, gib, move_seconds, needed_switches};
use super::separate::Guard;
use super::storage::{StorageLedger, declared_path, disks_on, storage_folder};
use super::{Action, ActionKind, Blocked, Caps, Plan, Reason};

/// A piece of memory a host can give, and the move that frees it.
#[derive(Debug, Clone)]
struct Entry {
    freed_by: Option<u32>,
    mib: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    want: WantedMove,
    /// Where the VM is when this leg starts (differs after a hop).
    from: String,
    /// The previous leg, for the second leg of a hop.
    prev: Option<u32>,
    /// Where its travelling disks lie now: (volume of `from`, MiB).
    disks: Vec<(String, u64)>,
}

/// Builds a plan's actions in a valid order.
pub(super) struct Builder<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    caps: &'a Caps,
    ledgers: HashMap<String, Vec<Entry>>,
    storage: StorageLedger,
    actions: Vec<Action>,
    /// Final move id per VM.
    last_move: HashMap<String, u32>,
    pub blocked: Vec<Blocked>,
    /// Keeps `separate` rules at every moment.
    guard: Guard,
}

impl<'a> Builder<'a> {
    pub fn new(desired: &'a Desired, observed: &'a Observed, caps: &'a Caps) -> Self {
        let used = observed.memory_used();
        let ledgers = observed
            .hosts
            .values()
            .map(|h| {
                let free = h
                    .memory_mib
                    .saturating_sub(used.get(h.name.as_str()).copied().unwrap_or(0));
                (
                    h.name.clone(),
                    vec![Entry {
                        freed_by: None,
                        mib: free,
                    }],
                )
            })
            .collect();
        Builder {
            desired,
            observed,
            caps,
            ledgers,
            storage: StorageLedger::new(observed),
            actions: Vec::new(),
            last_move: HashMap::new(),
            blocked: Vec::new(),
            guard: Guard::new(desired, observed),
        }
    }

    fn available(&self, host: &str) -> u64 {
        self.ledgers
            .get(host)
            .map_or(0, |l| l.iter().map(|e| e.mib).sum())
    }

    /// Takes `mib` from a host's ledger; returns the moves it waits for.
    fn take(&mut self, host: &str, mut mib: u64) -> BTreeSet<u32> {
        let mut deps = BTreeSet::new();
        let Some(ledger) = self.ledgers.get_mut(host) else {
            return deps;
        };
        // Free memory first (no waiting), then memory freed by moves.
        for e in ledger.iter_mut() {
            if mib == 0 {
                break;
            }
            if e.mib == 0 {
                continue;
            }
            let part = e.mib.min(mib);
            e.mib -= part;
            mib -= part;
            if let Some(id) = e.freed_by {
                deps.insert(id);
            }
        }
        ledger.retain(|e| e.mib > 0 || e.freed_by.is_none());
        deps
    }

    /// The volume `p`'s disks would go to on `to`, when it has disks.
    fn volume_for(&self, p: &Pending, to: &str) -> Option<String> {
        if p.want.disk_mib == 0 {
            return None;
        }
        self.storage.target(to, declared_path(self.desired, to))
    }

    /// Whether `p` fits on `to` now (memory and, with disks, space).
    fn fits(&self, p: &Pending, to: &str) -> bool {
        let need = p.want.memory_mib;
        let memory = need == 0 || self.available(to) >= need;
        let disks = p.want.disk_mib == 0
            || self
                .volume_for(p, to)
                .is_some_and(|v| self.storage.available(to, &v) >= p.want.disk_mib);
        memory && disks
    }

    /// Takes memory and space for `p` on `to`; returns the moves it waits for.
    fn take_all(&mut self, p: &Pending, to: &str) -> (BTreeSet<u32>, Option<String>) {
        let mut deps = self.take(to, p.want.memory_mib);
        let volume = self.volume_for(p, to);
        if let Some(v) = &volume {
            deps.extend(self.storage.take(to, v, p.want.disk_mib));
        }
        (deps, volume)
    }

    fn push_move(
        &mut self,
        p: &Pending,
        to: &str,
        (deps, volume): (BTreeSet<u32>, Option<String>),
        reason: Reason,
    ) -> u32 {
        let id = self.actions.len() as u32 + 1;
        let mut after: BTreeSet<u32> = deps;
        if let Some(prev) = p.prev {
            after.insert(prev);
        }
        let seconds = match (
            self.observed.vms.get(&p.want.vm),
            self.observed.hosts.get(&p.from),
            self.observed.hosts.get(to),
        ) {
            (Some(vm), Some(f), Some(t)) => move_seconds(vm, f, t),
            _ => p.want.seconds,
        };
        let storage_path = volume
            .as_deref()
            .map(|v| storage_folder(declared_path(self.desired, to), v, &p.want.vm));
        self.actions.push(Action {
            id,
            kind: ActionKind::Move {
                vm: p.want.vm.clone(),
                from: p.from.clone(),
                to: to.to_string(),
                method: p.want.kind,
                reason,
                why: p.want.why.clone(),
                estimated_seconds: seconds,
                memory_mib: p.want.memory_mib,
                storage_gib: (p.want.disk_mib as f64 / 1024.0 * 1000.0).round() / 1000.0,
                volume,
                storage_path,
                disk_mib: p.want.disk_mib,
            },
            after: after.into_iter().collect(),
        });
        for (v, mib) in &p.disks {
            self.storage.freed_by(&p.from, v, *mib, id);
        }
        if p.want.kind == MoveKind::Live && p.want.memory_mib > 0 {
            self.ledgers.entry(p.from.clone()).or_default().push(Entry {
                freed_by: Some(id),
                mib: p.want.memory_mib,
            });
        }
        self.last_move.insert(p.want.vm.clone(), id);
        self.guard.moved(&p.want.vm, &p.from, to, id);
        id
    }

    /// Orders the wanted moves, adding hops and blocking what cannot move.
    pub fn add_moves(&mut self, wanted: &[WantedMove]) {
        let mut pending: Vec<Pending> = wanted
            .iter()
            .map(|w| Pending {
                want: w.clone(),
                from: w.from.clone(),
                prev: None,
                disks: self
                    .observed
                    .vms
                    .get(&w.vm)
                    .map(disks_on)
                    .unwrap_or_default(),
            })
            .collect();
        // Higher `priority` first (stable: ties keep the diff's order), so
        // the most important VMs take the memory that is free now and wait
        // for no other move.
        pending.sort_by_key(|p| std::cmp::Reverse(self.caps.priority(&p.want.vm)));
        while !pending.is_empty() {
            let mut progressed = false;
            // One pass in order; what does not fit yet waits for the next
            // (rebuilding the list, not removing from it: O(n) a pass).
            let mut waiting = Vec::with_capacity(pending.len());
            for p in std::mem::take(&mut pending) {
                let apart = self.guard.admit(&p.want.vm, &p.want.to);
                if let (true, Ok(apart)) = (self.fits(&p, &p.want.to), apart) {
                    let to = p.want.to.clone();
                    let mut taken = self.take_all(&p, &to);
                    taken.0.extend(apart);
                    self.push_move(&p, &to, taken, p.want.reason);
                    progressed = true;
                } else {
                    waiting.push(p);
                }
            }
            pending = waiting;
            if progressed {
                continue;
            }
            // Stalled: first block moves that can never fit, then break rings.
            if self.block_shortages(&mut pending) || self.block_space_shortages(&mut pending) {
                continue;
            }
            if !self.hop_one(&mut pending) {
                for p in pending.drain(..) {
                    if let Err(rule) = self.guard.admit(&p.want.vm, &p.want.to) {
                        self.blocked.push(Blocked {
                            vm: p.want.vm.clone(),
                            reason: format!(
                                "{}it cannot go to {} yet ({rule}), and no host can hold one of them meanwhile without breaking the rule",
                                stranded(&p),
                                p.want.to
                            ),
                        });
                        continue;
                    }
                    self.blocked.push(Blocked {
                        vm: p.want.vm.clone(),
                        reason: format!(
                            "{}moves to {} wait on each other in a ring, and no host has {} free to hold one of them meanwhile",
                            stranded(&p),
                            p.want.to,
                            gib(p.want.memory_mib)
                        ),
                    });
                }
            }
        }
    }

    /// Blocks moves into hosts that lack memory even after every planned
    /// move out of them; returns whether any was blocked.
    fn block_shortages(&mut self, pending: &mut Vec<Pending>) -> bool {
        let mut leaving: BTreeMap<&str, u64> = BTreeMap::new();
        for p in pending.iter() {
            *leaving.entry(p.from.as_str()).or_default() += p.want.memory_mib;
        }
        let mut incoming: BTreeMap<&str, u64> = BTreeMap::new();
        for p in pending.iter() {
            *incoming.entry(p.want.to.as_str()).or_default() += p.want.memory_mib;
        }
        let mut short: Vec<(String, u64, u64)> = Vec::new();
        for (host, need) in &incoming {
            let potential = self.available(host) + leaving.get(host).copied().unwrap_or(0);
            if potential < *need {
                short.push((host.to_string(), *need, potential));
            }
        }
        if short.is_empty() {
            return false;
        }
        // On each short host, block the largest incoming VMs until the rest fit.
        for (host, mut need, potential) in short {
            let mut incoming: Vec<usize> = (0..pending.len())
                .filter(|i| pending[*i].want.to == host)
                .collect();
            // The least important first, then the largest.
            incoming.sort_by(|a, b| {
                let prio = |i: &usize| self.caps.priority(&pending[*i].want.vm);
                prio(a)
                    .cmp(&prio(b))
                    .then(
                        pending[*b]
                            .want
                            .memory_mib
                            .cmp(&pending[*a].want.memory_mib),
                    )
                    .then(pending[*a].want.vm.cmp(&pending[*b].want.vm))
            });
            let mut drop = Vec::new();
            for i in incoming {
                if need <= potential {
                    break;
                }
                need -= pending[i].want.memory_mib;
                drop.push(i);
            }
            drop.sort_unstable_by(|a, b| b.cmp(a));
            for i in drop {
                let p = pending.remove(i);
                let total = self
                    .observed
                    .hosts
                    .get(&host)
                    .map_or(0, |h: &ObservedHost| h.memory_mib);
                self.blocked.push(Blocked {
                    vm: p.want.vm.clone(),
                    reason: format!(
                        "{}not enough memory on {host}: it needs {}, and the desired placement leaves at most {} of {host}'s {} free",
                        stranded(&p),
                        gib(p.want.memory_mib),
                        gib(potential),
                        gib(total)
                    ),
                });
            }
        }
        true
    }

    /// Blocks moves with disks into volumes that lack space even after every
    /// planned move out of them; returns whether any was blocked.
    fn block_space_shortages(&mut self, pending: &mut Vec<Pending>) -> bool {
        // (host, volume) -> incoming MiB, and the pending moves headed there.
        let mut incoming: BTreeMap<(String, String), (u64, Vec<usize>)> = BTreeMap::new();
        for (i, p) in pending.iter().enumerate() {
            if let Some(v) = self.volume_for(p, &p.want.to) {
                let e = incoming.entry((p.want.to.clone(), v)).or_default();
                e.0 += p.want.disk_mib;
                e.1.push(i);
            }
        }
        let mut leaving: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for p in pending.iter() {
            for (v, mib) in &p.disks {
                *leaving.entry((p.from.as_str(), v.as_str())).or_default() += mib;
            }
        }
        let mut drop: Vec<(usize, String)> = Vec::new();
        for ((host, volume), (mut need, mut idx)) in incoming {
            let potential = self.storage.available(&host, &volume)
                + leaving
                    .get(&(host.as_str(), volume.as_str()))
                    .copied()
                    .unwrap_or(0);
            if potential >= need {
                continue;
            }
            // Block the largest incoming VMs until the rest fit.
            idx.sort_by(|a, b| {
                pending[*b]
                    .want
                    .disk_mib
                    .cmp(&pending[*a].want.disk_mib)
                    .then(pending[*a].want.vm.cmp(&pending[*b].want.vm))
            });
            for i in idx {
                if need <= potential {
                    break;
                }
                let p = &pending[i];
                let left = potential.saturating_sub(need - p.want.disk_mib);
                need -= p.want.disk_mib;
                drop.push((
                    i,
                    format!(
                        "{}not enough space on volume {volume} of {host}: its disks need {}, and the desired placement leaves at most {} free there ({} short)",
                        stranded(p),
                        gib(p.want.disk_mib),
                        gib(left),
                        gib(p.want.disk_mib.saturating_sub(left))
                    ),
                ));
            }
        }
        if drop.is_empty() {
            return false;
        }
        drop.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        for (i, reason) in drop {
            let p = pending.remove(i);
            self.blocked.push(Blocked {
                vm: p.want.vm.clone(),
                reason,
            });
        }
        true
    }

    /// Breaks a ring by moving one VM to a host with room first. Only a VM
    /// of a ring hops (one whose host another pending move waits for): moving
    /// any other frees memory nobody is waiting for.
    fn hop_one(&mut self, pending: &mut [Pending]) -> bool {
        let awaited: BTreeSet<&str> = pending.iter().map(|p| p.want.to.as_str()).collect();
        let mut order: Vec<usize> = (0..pending.len())
            .filter(|i| {
                let p = &pending[*i];
                // With separate rules, a VM hops at most once: a wait on a
                // rule is not memory, and hopping on would never end.
                (awaited.contains(p.from.as_str()) && (self.guard.is_empty() || p.prev.is_none()))
                    || (p.prev.is_none()
                        && !self.guard.is_empty()
                        && self.guard.in_the_way(
                            &p.want.vm,
                            &p.from,
                            pending
                                .iter()
                                .map(|q| (q.want.vm.as_str(), q.want.to.as_str())),
                        ))
            })
            .collect();
        order.sort_by(|a, b| {
            pending[*a]
                .want
                .memory_mib
                .cmp(&pending[*b].want.memory_mib)
                .then(pending[*a].want.vm.cmp(&pending[*b].want.vm))
        });
        for i in order {
            let p = pending[i].clone();
            let Some(via) = self.hop_host(&p) else {
                continue;
            };
            let Ok(apart) = self.guard.admit(&p.want.vm, &via) else {
                continue;
            };
            let mut taken = self.take_all(&p, &via);
            taken.0.extend(apart);
            let via_volume = taken.1.clone();
            let id = self.push_move(&p, &via, taken, p.want.reason);
            pending[i].disks = via_volume
                .map(|v| vec![(v, p.want.disk_mib)])
                .unwrap_or_default();
            pending[i].from = via;
            pending[i].prev = Some(id);
            return true;
        }
        false
    }

    /// A host that can hold `p`'s VM for a while: reachable, not in
    /// maintenance, compatible, with the memory free now.
    fn hop_host(&self, p: &Pending) -> Option<String> {
        let vm = self.observed.vms.get(&p.want.vm)?;
        let from = self.observed.hosts.get(&p.from)?;
        let switches = needed_switches(self.desired.vms.get(&p.want.vm).map(|s| &**s), vm);
        self.observed
            .hosts
            .values()
            .filter(|h| {
                h.name != p.from
                    && h.name != p.want.to
                    && h.reachable
                    && !self
                        .desired
                        .hosts
                        .get(&h.name)
                        .is_some_and(|d| d.maintenance)
                    && h.cpu_vendor == from.cpu_vendor
                    && self.caps.host(&h.name) > 0
                    && switches.iter().all(|s| h.switches.iter().any(|x| x == s))
                    && self.guard.admit(&p.want.vm, &h.name).is_ok()
                    && self.guard.leaves(&p.want.vm, &p.from, &h.name)
                    && self
                        .ledgers
                        .get(&h.name)
                        .and_then(|l| l.first())
                        .map_or(0, |e| if e.freed_by.is_none() { e.mib } else { 0 })
                        >= p.want.memory_mib
                    && (p.want.disk_mib == 0
                        || (self.caps.storage(&h.name) > 0
                            && self.volume_for(p, &h.name).is_some_and(|v| {
                                self.storage.free_now(&h.name, &v) >= p.want.disk_mib
                            })))
            })
            .max_by(|a, b| {
                self.available(&a.name)
                    .cmp(&self.available(&b.name))
                    .then_with(|| b.name.cmp(&a.name))
            })
            .map(|h| h.name.clone())
    }

    /// Appends adapter changes (after the VM's last move, if it moves).
    pub fn finish(mut self, adapter_changes: BTreeMap<String, Vec<ActionKind>>) -> Plan {
        let move_reasons: HashMap<String, Reason> = self
            .actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::Move { vm, reason, .. } => Some((vm.clone(), *reason)),
                _ => None,
            })
            .collect();
        for (vm, changes) in adapter_changes {
            let after: Vec<u32> = self.last_move.get(&vm).copied().into_iter().collect();
            let reason = move_reasons.get(&vm).copied().unwrap_or(Reason::Drift);
            for mut kind in changes {
                match &mut kind {
                    ActionKind::SetAcls { reason: r, .. }
                    | ActionKind::Connect { reason: r, .. }
                    | ActionKind::SetVlan { reason: r, .. } => *r = reason,
                    ActionKind::Move { .. } => {}
                }
                let id = self.actions.len() as u32 + 1;
                self.actions.push(Action {
                    id,
                    kind,
                    after: after.clone(),
                });
            }
        }
        Plan {
            format_version: 1,
            in_sync: false,
            actions: self.actions,
            blocked: self.blocked,
            unmanaged: Vec::new(),
            in_flight: Vec::new(),
            estimated_seconds: 0.0,
            headroom: Vec::new(),
            move_window: None,
        }
    }
}

/// For a VM that already hopped and can go no further: where it is left.
fn stranded(p: &Pending) -> String {
    match p.prev {
        Some(_) => format!("it stays on {}, where it moved to make room; ", p.from),
        None => String::new(),
    }
}
