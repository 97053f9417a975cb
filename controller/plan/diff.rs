//! Where every VM should be, and what about its adapters must change.
//!
//! This decides goals only: the host each VM should end on (its declared
//! host, a fallback or another host during maintenance, or where it is for
//! unmanaged VMs) and the adapter changes. Ordering is [`super::order`]'s job.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use crate::provider::{MoveKind, Observed, ObservedHost, ObservedVm};
use crate::spec::{Acl, Desired, VmSpec};

use super::storage::{self, declared_path};
use super::{AclChange, ActionKind, Blocked, Caps, InFlight, Reason, solve};

/// A move the goals require (from the current host to the goal).
#[derive(Debug, Clone)]
pub(super) struct WantedMove {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub kind: MoveKind,
    pub reason: Reason,
    pub memory_mib: u64,
    pub seconds: f64,
    /// MiB of disks copied with the VM (0: shared storage).
    pub disk_mib: u64,
    /// For a VM with choices: why it moves and why there.
    pub why: Option<String>,
}

/// What the diff found.
#[derive(Debug, Default)]
pub(super) struct Targets {
    pub moves: Vec<WantedMove>,
    /// Adapter changes per VM (reason filled in by the order builder).
    pub adapter_changes: BTreeMap<String, Vec<ActionKind>>,
    pub blocked: Vec<Blocked>,
    pub unmanaged: Vec<String>,
    pub in_flight: Vec<InFlight>,
    /// Headroom per host group, when declared.
    pub headroom: Vec<super::Headroom>,
    /// Candidate hosts of the VM asked about (`plan --explain`).
    pub verdicts: Option<Vec<super::Verdict>>,
}

/// Expected duration of a move by the contract's model, alone on its
/// hosts' networks: `5 s + transferred MiB / rate`, where a live move
/// transfers its memory, a move with storage its disks too, and the rate is
/// the lesser of the hosts' rates and shared networks.
pub(super) fn move_seconds(vm: &ObservedVm, from: &ObservedHost, to: &ObservedHost) -> f64 {
    let memory = if vm.state.is_live() { vm.memory_mib } else { 0 };
    let mib = memory + vm.local_disk_mib();
    if mib == 0 {
        return 5.0;
    }
    let mut rate = from
        .migration_rate_mibps
        .unwrap_or(1000.0)
        .min(to.migration_rate_mibps.unwrap_or(1000.0));
    for net in [from.network_mibps, to.network_mibps].into_iter().flatten() {
        rate = rate.min(net);
    }
    let secs = 5.0 + mib as f64 / rate.max(f64::MIN_POSITIVE);
    (secs * 1000.0).round() / 1000.0
}

/// Memory for messages: `8 GiB`, `1.5 GiB`.
pub(super) fn gib(mib: u64) -> String {
    let g = mib as f64 / 1024.0;
    if g.fract() == 0.0 {
        format!("{g:.0} GiB")
    } else {
        format!("{g:.1} GiB")
    }
}

pub(super) fn in_maintenance(desired: &Desired, host: &str) -> bool {
    desired.hosts.get(host).is_some_and(|h| h.maintenance)
}

/// Switches a VM needs wherever it goes: those it is connected to now (the
/// move itself fails on a host without them; it is reconnected only after
/// it arrives) and the declared ones (it is connected to them on arrival).
pub(super) fn needed_switches<'a>(spec: Option<&'a VmSpec>, vm: &'a ObservedVm) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for a in &vm.adapters {
        let declared = spec
            .and_then(|s| s.adapters.as_ref())
            .and_then(|list| list.iter().find(|d| d.name == a.name))
            .and_then(|d| d.switch.as_deref());
        for sw in [a.switch.as_deref(), declared].into_iter().flatten() {
            if !out.contains(&sw) {
                out.push(sw);
            }
        }
    }
    out
}

/// Why `vm` cannot go from `from` to `to`, if it cannot (memory aside).
pub(super) fn unfit(
    vm: &ObservedVm,
    spec: Option<&VmSpec>,
    from: &ObservedHost,
    to: &ObservedHost,
    caps: &Caps,
) -> Option<String> {
    if !from.reachable {
        return Some(format!("host {} cannot be reached", from.name));
    }
    if !to.reachable {
        return Some(format!("host {} cannot be reached", to.name));
    }
    if vm.clustered && to.cluster != from.cluster {
        return Some(match &from.cluster {
            Some(c) => format!(
                "{} is clustered in {c}; {} is not a node of {c}",
                vm.name, to.name
            ),
            None => format!(
                "{} is clustered; {} is not a node of its cluster",
                vm.name, to.name
            ),
        });
    }
    // A VM that is not clustered leaves its cluster only with its disks:
    // those on a cluster shared volume are not reachable elsewhere.
    if let Some(c) = from
        .cluster
        .as_ref()
        .filter(|c| to.cluster.as_ref() != Some(*c))
        && vm
            .disks
            .iter()
            .any(|d| d.volume.is_none() && is_csv_path(&d.path))
    {
        return Some(format!(
            "{}'s disks are on a cluster shared volume of {c}; {} is not a node of {c}",
            vm.name, to.name
        ));
    }
    if vm.state.is_live() {
        if from.cpu_vendor != to.cpu_vendor {
            return Some(format!(
                "{} is {} and cannot live-migrate from {} ({}) to {} ({}); berth does not shut VMs down",
                vm.name, vm.state, from.name, from.cpu_vendor, to.name, to.cpu_vendor
            ));
        }
        for h in [from, to] {
            if caps.host(&h.name) == 0 {
                return Some(format!(
                    "live migration is disabled on {} (its migration limit is 0)",
                    h.name
                ));
            }
        }
        if vm.memory_mib > to.memory_mib {
            return Some(format!(
                "{} needs {}, more than {} has in all ({})",
                vm.name,
                gib(vm.memory_mib),
                to.name,
                gib(to.memory_mib)
            ));
        }
    }
    for sw in needed_switches(spec, vm) {
        if !to.switches.iter().any(|s| s == sw) {
            return Some(format!("{} has no virtual switch {sw}", to.name));
        }
    }
    None
}

/// A path on a cluster shared volume (`C:\ClusterStorage\...`).
fn is_csv_path(path: &str) -> bool {
    let p = path.trim().to_ascii_lowercase().replace('/', "\\");
    p.len() > 2 && p.as_bytes()[1] == b':' && p[2..].starts_with("\\clusterstorage\\")
}

/// Where one VM should end, and why.
struct Goal<'a> {
    vm: &'a ObservedVm,
    spec: Option<&'a VmSpec>,
    to: Cow<'a, str>,
    reason: Reason,
}

/// Computes goals, moves and adapter changes.
pub(super) fn targets(
    desired: &Desired,
    observed: &Observed,
    caps: &Caps,
    holds: &BTreeMap<String, String>,
    explain: Option<&str>,
) -> Targets {
    let mut t = Targets::default();
    // Final memory per host if every VM that is not evacuated reaches its goal.
    let mut load: HashMap<&str, u64> = observed.hosts.keys().map(|h| (h.as_str(), 0)).collect();
    // Disks headed to each host (for evacuation choices).
    let mut disk_load: HashMap<String, u64> = HashMap::new();
    // (vm, from) needing a new host because of maintenance.
    let mut evacuate: Vec<&ObservedVm> = Vec::new();
    let mut goals: Vec<Goal> = Vec::new();
    // VMs berth chooses hosts for (see `solve`).
    let mut choosers: Vec<solve::Chooser> = Vec::new();
    // Each host's facts, found once: at 100,000 VMs on 5,000 hosts,
    // searching both maps for every VM was most of the planner's time.
    let facts: HashMap<&str, (&ObservedHost, bool)> = observed
        .hosts
        .iter()
        .map(|(name, h)| (name.as_str(), (h, in_maintenance(desired, name))))
        .collect();
    let observed_host = |name: &str| facts.get(name).map(|f| f.0);
    let not_in_fleet = |name: &str| Blocked {
        vm: name.to_string(),
        reason: "it is not in the fleet".to_string(),
    };

    // Both maps are in name order: they are walked together.
    let mut specs = desired.vms.iter().peekable();
    for (name, vm) in &observed.vms {
        let mut spec: Option<&VmSpec> = None;
        while let Some(&(declared, s)) = specs.peek() {
            match declared.as_str().cmp(name.as_str()) {
                Ordering::Less => t.blocked.push(not_in_fleet(declared)),
                Ordering::Equal => spec = Some(s.as_ref()),
                Ordering::Greater => break,
            }
            specs.next();
            if spec.is_some() {
                break;
            }
        }
        if spec.is_none() {
            t.unmanaged.push(vm.name.clone());
        }
        // Where it is, looked up once (a VM's host is looked up for its
        // load, its goal and its reason).
        let Some(&(here, here_maintenance)) = facts.get(vm.host.as_str()) else {
            if spec.is_some() {
                t.blocked.push(Blocked {
                    vm: vm.name.clone(),
                    reason: format!("its current host {} was not observed", vm.host),
                });
            }
            continue;
        };
        if let Some(to) = &vm.migrating_to {
            t.in_flight.push(InFlight {
                vm: vm.name.clone(),
                from: vm.host.clone(),
                to: to.clone(),
            });
            if vm.state.is_live() {
                *load.entry(to.as_str()).or_default() += vm.memory_mib;
            }
            continue;
        }
        if let Some(why) = holds.get(&vm.name) {
            t.blocked.push(Blocked {
                vm: vm.name.clone(),
                reason: why.clone(),
            });
            if vm.state.is_live() {
                *load.entry(here.name.as_str()).or_default() += vm.memory_mib;
            }
            if let Some(s) = spec {
                adapter_changes(s, vm, &mut t);
            }
            continue;
        }
        if let Some(s) = spec.filter(|s| s.choice.is_some()) {
            // Counted where it is while pinned VMs are placed (most stay).
            if vm.state.is_live() && !here_maintenance {
                *load.entry(here.name.as_str()).or_default() += vm.memory_mib;
            }
            choosers.push(solve::Chooser { vm, spec: s });
            continue;
        }
        // The declared host's facts: most VMs are where they belong.
        let home = spec.map(|s| {
            if s.host == vm.host {
                Some((here, here_maintenance))
            } else {
                facts.get(s.host.as_str()).copied()
            }
        });
        let goal: Option<&ObservedHost> = match (spec, home) {
            (Some(s), Some(None)) => {
                t.blocked.push(Blocked {
                    vm: vm.name.clone(),
                    reason: format!("its host {} is not in the fleet", s.host),
                });
                None
            }
            // Home in maintenance: wait on a fallback (or, when none has
            // room, stay on a host that is fine): chosen below.
            (Some(_), Some(Some((_, true)))) => None,
            (Some(_), Some(Some((h, false)))) => Some(h),
            _ if here_maintenance => None,
            _ => Some(here),
        };
        match goal {
            Some(h) => {
                let g = h.name.as_str();
                if vm.state.is_live() {
                    *load.entry(g).or_default() += vm.memory_mib;
                }
                if g != vm.host {
                    *disk_load.entry(g.to_string()).or_default() += vm.local_disk_mib();
                }
                let reason = match spec {
                    Some(s) if g == s.host && s.fallback.contains(&vm.host) => Reason::Return,
                    _ if here_maintenance => Reason::Maintenance,
                    _ => Reason::Placement,
                };
                goals.push(Goal {
                    vm,
                    spec,
                    to: Cow::Borrowed(g),
                    reason,
                });
            }
            None if matches!(home, Some(None)) => {
                // Blocked above; it stays where it is.
                if vm.state.is_live() {
                    *load.entry(here.name.as_str()).or_default() += vm.memory_mib;
                }
            }
            None => evacuate.push(vm),
        }
    }
    for (declared, _) in specs {
        t.blocked.push(not_in_fleet(declared));
    }

    // Maintenance: the highest `priority` first, then the largest VMs. A
    // VM that declares `fallback` waits only on those hosts (the first that
    // can take it, in order) and is blocked where it is when none can;
    // without `fallback` the planner chooses: where it is if that is fine,
    // else the eligible host with the most room left.
    let prio = |vm: &ObservedVm| desired.vms.get(&vm.name).map_or(0, |s| s.priority);
    evacuate.sort_by(|a, b| {
        prio(b)
            .cmp(&prio(a))
            .then(b.memory_mib.cmp(&a.memory_mib))
            .then(a.name.cmp(&b.name))
    });
    for vm in evacuate {
        let spec = desired.vms.get(&vm.name).map(|s| &**s);
        let from = &observed.hosts[&vm.host];
        let need = if vm.state.is_live() { vm.memory_mib } else { 0 };
        let room = |h: &ObservedHost, load: &HashMap<&str, u64>| {
            h.memory_mib
                .saturating_sub(load.get(h.name.as_str()).copied().unwrap_or(0))
        };
        // The VM's own host qualifies when it is not in maintenance: a VM
        // already waiting on a fallback stays there rather than moving on
        // (and back again on the next run).
        let disks = vm.local_disk_mib();
        let eligible = |h: &ObservedHost, load: &HashMap<&str, u64>| {
            !in_maintenance(desired, &h.name)
                && room(h, load) >= need
                && (h.name == vm.host
                    || (unfit(vm, spec, from, h, caps).is_none()
                        && storage::unfit(vm, from, h, declared_path(desired, &h.name), caps)
                            .is_none()
                        && storage::room(
                            h,
                            declared_path(desired, &h.name),
                            disk_load.get(&h.name).copied().unwrap_or(0),
                        ) >= disks))
        };
        let fallbacks = spec.map_or(&[][..], |s| s.fallback.as_slice());
        let mut choice: Option<&ObservedHost> = None;
        if !fallbacks.is_empty() {
            choice = fallbacks
                .iter()
                .filter_map(|f| observed.hosts.get(f))
                .find(|h| eligible(h, &load));
        } else if eligible(from, &load) {
            choice = Some(from);
        }
        if choice.is_none() && fallbacks.is_empty() {
            choice = observed
                .hosts
                .values()
                .filter(|h| eligible(h, &load))
                .max_by(|a, b| {
                    room(a, &load)
                        .cmp(&room(b, &load))
                        .then_with(|| b.name.cmp(&a.name))
                });
        }
        match choice {
            Some(h) => {
                *load.entry(h.name.as_str()).or_default() += need;
                if h.name != vm.host {
                    *disk_load.entry(h.name.clone()).or_default() += disks;
                }
                goals.push(Goal {
                    vm,
                    spec,
                    to: Cow::Borrowed(h.name.as_str()),
                    reason: Reason::Maintenance,
                });
            }
            None if !fallbacks.is_empty() => {
                let room_of = |h: &ObservedHost| room(h, &load);
                t.blocked.push(Blocked {
                    vm: vm.name.clone(),
                    reason: super::fallback::none_fits(
                        desired, observed, caps, vm, spec, need, &room_of,
                    ),
                });
                // It stays where it is, holding its memory there.
                *load.entry(vm.host.as_str()).or_default() += need;
            }
            None => {
                let home = spec.map_or(vm.host.as_str(), |s| s.host.as_str());
                t.blocked.push(Blocked {
                    vm: vm.name.clone(),
                    reason: if need > 0 {
                        format!("no host with {} free for maintenance of {home}", gib(need))
                    } else {
                        format!("no compatible host for maintenance of {home}")
                    },
                });
            }
        }
    }

    // Hosts for the VMs with choices, around everything placed above.
    let mut whys: HashMap<String, String> = HashMap::new();
    if !choosers.is_empty() || !desired.intent.is_empty() || explain.is_some() {
        let mut fixed: HashMap<String, String> = HashMap::new();
        let members: std::collections::HashSet<&str> = desired
            .intent
            .rules
            .iter()
            .flat_map(|r| r.vms.iter().map(String::as_str))
            .collect();
        for vm in observed.vms.values() {
            if members.contains(vm.name.as_str()) {
                let at = vm.migrating_to.clone().unwrap_or_else(|| vm.host.clone());
                fixed.insert(vm.name.clone(), at);
            }
        }
        for g in &goals {
            if members.contains(g.vm.name.as_str()) {
                fixed.insert(g.vm.name.clone(), g.to.to_string());
            }
        }
        for c in &choosers {
            fixed.remove(&c.vm.name);
            if c.vm.state.is_live()
                && !in_maintenance(desired, &c.vm.host)
                && let Some(l) = load.get_mut(c.vm.host.as_str())
            {
                *l = l.saturating_sub(c.vm.memory_mib);
            }
        }
        let input = solve::Input {
            desired,
            observed,
            caps,
            load: &load,
            disk_load: &disk_load,
            fixed,
            choosers,
        };
        let (solution, verdicts) = solve::solve(&input, explain);
        t.blocked.extend(solution.blocked);
        t.headroom = solution.headroom;
        t.verdicts = verdicts;
        for c in solution.chosen {
            let Some(vm) = observed.vms.get(&c.vm) else {
                continue;
            };
            if let Some(w) = c.why {
                whys.insert(c.vm.clone(), w);
            }
            goals.push(Goal {
                vm,
                spec: desired.vms.get(&c.vm).map(|s| s.as_ref()),
                to: Cow::Owned(c.host),
                reason: c.reason,
            });
        }
    }

    for Goal {
        vm,
        spec,
        to: goal,
        reason,
    } in goals
    {
        // Goals are observed hosts, and so is every VM's current host here.
        if *goal != vm.host
            && let (Some(from), Some(to)) = (observed_host(&vm.host), observed_host(&goal))
        {
            let why = unfit(vm, spec, from, to, caps)
                .or_else(|| storage::unfit(vm, from, to, declared_path(desired, &to.name), caps));
            match why {
                Some(why) => t.blocked.push(Blocked {
                    vm: vm.name.clone(),
                    reason: why,
                }),
                None => t.moves.push(WantedMove {
                    vm: vm.name.clone(),
                    from: vm.host.clone(),
                    to: goal.to_string(),
                    kind: MoveKind::for_state(vm.state),
                    reason,
                    memory_mib: if vm.state.is_live() { vm.memory_mib } else { 0 },
                    seconds: move_seconds(vm, from, to),
                    disk_mib: vm.local_disk_mib(),
                    why: whys.get(&vm.name).cloned(),
                }),
            }
        }
        if let Some(spec) = spec {
            adapter_changes(spec, vm, &mut t);
            let host_ok = observed_host(&vm.host).is_some_and(|h| h.reachable);
            if !host_ok && t.adapter_changes.remove(&vm.name).is_some() {
                t.blocked.push(Blocked {
                    vm: vm.name.clone(),
                    reason: format!(
                        "its adapters differ from the spec, and its host {} cannot be reached",
                        vm.host
                    ),
                });
            }
        }
    }
    t.moves.sort_by(|a, b| a.vm.cmp(&b.vm));
    t.unmanaged.sort();
    t
}

/// Diffs declared adapters against observed ones.
fn adapter_changes(spec: &VmSpec, vm: &ObservedVm, t: &mut Targets) {
    let Some(declared) = &spec.adapters else {
        return;
    };
    let mut changes = Vec::new();
    for d in declared {
        let Some(o) = vm.adapters.iter().find(|a| a.name == d.name) else {
            t.blocked.push(Blocked {
                vm: vm.name.clone(),
                reason: format!("it has no network adapter named {:?}", d.name),
            });
            continue;
        };
        if let Some(sw) = &d.switch {
            let network_differs = d.vm_network.is_some() && d.vm_network != o.vm_network;
            if o.switch.as_deref() != Some(sw.as_str()) || network_differs {
                changes.push(ActionKind::Connect {
                    vm: vm.name.clone(),
                    adapter: d.name.clone(),
                    switch: sw.clone(),
                    vm_network: d.vm_network.clone(),
                    reason: Reason::Drift,
                });
            }
        }
        if let Some(vlan) = d.vlan_id
            && o.vlan_id != Some(vlan)
        {
            changes.push(ActionKind::SetVlan {
                vm: vm.name.clone(),
                adapter: d.name.clone(),
                vlan_id: vlan,
                reason: Reason::Drift,
            });
        }
        if let Some(want) = &d.acls {
            let (add, remove) = acl_diff(want, &o.acls);
            if !add.is_empty() || !remove.is_empty() {
                changes.push(ActionKind::SetAcls {
                    vm: vm.name.clone(),
                    adapter: d.name.clone(),
                    add,
                    remove,
                    reason: Reason::Drift,
                });
            }
        }
    }
    if !changes.is_empty() {
        t.adapter_changes.insert(vm.name.clone(), changes);
    }
}

/// Rules to add and to remove so that `have` becomes exactly `want`.
/// A rule whose identity exists with other fields is removed and re-added.
pub fn acl_diff(want: &[Acl], have: &[Acl]) -> (Vec<AclChange>, Vec<AclChange>) {
    // An idle timeout the spec leaves out (0) is Hyper-V's to choose: it is
    // compared only when declared.
    let same = |w: &Acl, h: &Acl| {
        w == h
            || (w.idle_session_timeout == 0
                && w.stateful
                && *w
                    == Acl {
                        idle_session_timeout: 0,
                        ..h.clone()
                    })
    };
    let add = want
        .iter()
        .filter(|w| !have.iter().any(|h| same(w, h)))
        .map(|w| AclChange {
            direction: w.direction,
            weight: w.weight,
            rule: Some(w.clone()),
        })
        .collect();
    let remove = have
        .iter()
        .filter(|h| !want.iter().any(|w| same(w, h)))
        .map(|h| AclChange {
            direction: h.direction,
            weight: h.weight,
            rule: Some(h.clone()),
        })
        .collect();
    (add, remove)
}
