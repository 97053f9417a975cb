//! Choosing hosts for VMs that may run in several places.
//!
//! A VM with `hosts` or `hostGroup` gets its goal here; every other VM's goal
//! is already fixed by [`super::diff`] and only counts as load and as a rule
//! member in a known place. The solver keeps every VM that may stay where it
//! is, then repairs what must change, with the fewest moves:
//!
//! 1. VMs tied by `together` rules form one unit that moves as a whole.
//! 2. A unit stays when all its VMs are on one allowed host that is up and
//!    not in maintenance. From the staying units it evicts the fewest needed
//!    to fix what is wrong: a host over its memory once fixed VMs arrive
//!    (largest unit first, or the smallest that is enough), two members of
//!    a `separate` rule in one place (the member with the fewest other
//!    places stays), a host group short of `headroom` (units that can leave
//!    the group, largest first).
//! 3. Units that must move are placed most constrained first, each on the
//!    allowed host with the fewest moves, then the least memory moved, then
//!    the lowest memory use after it arrives (most even), then name.
//! 4. A unit with no host left may displace one or more staying units that
//!    are in its way (an ejection chain of depth one) when each of them can
//!    go elsewhere; the cheapest such repair wins.
//! 5. What still has no place is blocked, naming the rule or resource, and
//!    what the best candidate hosts lack.
//!
//! The result is deterministic: every choice breaks ties by name. Headroom
//! is the aggregate test "after losing the N largest hosts of a group, the
//! others hold all of its VMs' memory", which for a group does not depend on
//! where within the group VMs run; it decides whether VMs may enter a group
//! and which leave it.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::provider::{Observed, ObservedHost, ObservedVm};
use crate::spec::{Desired, RuleKind, VmSpec};

use super::diff::{gib, unfit};
use super::{Blocked, Caps, Reason};

/// A goal the solver chose for one VM with choices.
#[derive(Debug, Clone)]
pub(super) struct Chosen {
    pub vm: String,
    pub host: String,
    pub reason: Reason,
    pub why: Option<String>,
}

/// Headroom of one host group (or of all hosts): how much memory is to
/// spare after losing the `failures` largest hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Headroom {
    /// Host group, or `*` for every usable host.
    pub group: String,
    /// Host failures it must survive (the policy's `headroom`, at least 1
    /// in reports).
    pub failures: u32,
    /// Memory of the group's usable hosts, MiB.
    pub capacity_mib: u64,
    /// Memory the group's VMs use once the plan is carried out, MiB.
    pub used_mib: u64,
    /// Memory of the `failures` largest hosts, MiB.
    pub reserve_mib: u64,
    /// `capacity - reserve - used`, MiB; negative: short.
    pub margin_mib: i64,
    /// Whether the policy enforces it (`headroom` set).
    pub enforced: bool,
}

/// What the solver decided.
#[derive(Debug, Default)]
pub(super) struct Solution {
    pub chosen: Vec<Chosen>,
    pub blocked: Vec<Blocked>,
    pub headroom: Vec<Headroom>,
}

/// One candidate host and what it lacks for a VM (`plan --explain`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Host.
    pub host: String,
    /// Empty when the VM can run there; else each thing it lacks.
    pub lacks: Vec<String>,
    /// Where the plan puts the VM.
    pub chosen: bool,
    /// Where the VM is now.
    pub current: bool,
}

/// A VM with choices, as the solver sees it.
pub(super) struct Chooser<'a> {
    pub vm: &'a ObservedVm,
    pub spec: &'a VmSpec,
}

/// Everything the solver reads.
pub(super) struct Input<'a> {
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    pub caps: &'a Caps,
    /// Final memory per host of every VM the solver does not place.
    pub load: &'a HashMap<&'a str, u64>,
    /// Final host of VMs that are rule members but not placed here.
    pub fixed: HashMap<String, String>,
    /// VMs with choices, not in flight, not held.
    pub choosers: Vec<Chooser<'a>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Occ {
    Fixed(usize),
    Unit(usize),
}

struct HostInfo<'a> {
    obs: &'a ObservedHost,
    usable: bool,
    groups: Vec<usize>,
}

struct Unit {
    /// Indices into `Input::choosers`.
    members: Vec<usize>,
    /// Allowed hosts (indices), sorted.
    allowed: Vec<usize>,
    /// Memory it needs where it runs (live members), MiB.
    mem: u64,
    /// Forced host: a pinned, held or moving member of its together set.
    forced: Option<usize>,
    /// Cannot move at all (a member's host cannot be reached).
    frozen: bool,
    /// Where it is: a host all members share.
    home: Option<usize>,
}

struct SepRule {
    name: String,
    by: Option<String>,
    /// Per host: its domain (None: the host lacks the label).
    domain_of: Vec<Option<usize>>,
    domain_names: Vec<String>,
    /// Fixed members: (name, host).
    fixed: Vec<(String, usize)>,
}

struct GroupInfo {
    name: String,
    hosts: Vec<usize>,
    capacity: u64,
    reserve: u64,
}

/// Why a unit must move.
#[derive(Clone)]
struct Need {
    reason: Reason,
    why: String,
    /// A group it must not enter (headroom repair).
    avoid_group: Option<usize>,
}

struct Solver<'a> {
    inp: &'a Input<'a>,
    hosts: Vec<HostInfo<'a>>,
    host_idx: HashMap<&'a str, usize>,
    units: Vec<Unit>,
    rules: Vec<SepRule>,
    /// Rules per unit.
    unit_rules: Vec<Vec<usize>>,
    groups: Vec<GroupInfo>,
    /// Final load per host (fixed + placed units).
    load: Vec<u64>,
    /// Per rule, per domain: occupants.
    occ: Vec<HashMap<usize, Vec<Occ>>>,
    /// Current assignment per unit.
    at: Vec<Option<usize>>,
    headroom: u32,
}

impl<'a> Solver<'a> {
    fn new(inp: &'a Input<'a>) -> Solver<'a> {
        let d = inp.desired;
        let mut host_idx = HashMap::new();
        let mut hosts = Vec::new();
        for (i, h) in inp.observed.hosts.values().enumerate() {
            host_idx.insert(h.name.as_str(), i);
            hosts.push(HostInfo {
                obs: h,
                usable: h.reachable && !d.hosts.get(&h.name).is_some_and(|s| s.maintenance),
                groups: Vec::new(),
            });
        }
        let load: Vec<u64> = hosts
            .iter()
            .map(|h| inp.load.get(h.obs.name.as_str()).copied().unwrap_or(0))
            .collect();
        let headroom = d.intent.headroom;
        let failures = headroom.max(1) as usize;
        let mut groups = Vec::new();
        let mut add_group = |name: String, members: Vec<usize>, hosts: &mut Vec<HostInfo>| {
            let gi = groups.len();
            let mut caps: Vec<u64> = members
                .iter()
                .filter(|h| hosts[**h].usable)
                .map(|h| hosts[*h].obs.memory_mib)
                .collect();
            caps.sort_unstable_by(|a, b| b.cmp(a));
            for h in &members {
                hosts[*h].groups.push(gi);
            }
            groups.push(GroupInfo {
                name,
                hosts: members,
                capacity: caps.iter().sum(),
                reserve: caps.iter().take(failures).sum(),
            });
        };
        for g in d.intent.host_groups.values() {
            let members: Vec<usize> = g
                .hosts
                .iter()
                .filter_map(|h| host_idx.get(h.as_str()).copied())
                .collect();
            add_group(g.name.clone(), members, &mut hosts);
        }
        // Index of choosers by name.
        let by_name: HashMap<&str, usize> = inp
            .choosers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.vm.name.as_str(), i))
            .collect();
        // Together sets over choosers (fixed members force the host).
        let n = inp.choosers.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            let mut c = x;
            while p[c] != r {
                let nx = p[c];
                p[c] = r;
                c = nx;
            }
            r
        }
        let mut forced_by: HashMap<usize, usize> = HashMap::new();
        for r in d
            .intent
            .rules
            .iter()
            .filter(|r| r.kind == RuleKind::Together)
        {
            let members: Vec<usize> = r
                .vms
                .iter()
                .filter_map(|v| by_name.get(v.as_str()).copied())
                .collect();
            for w in members.windows(2) {
                let (a, b) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
                if a != b {
                    parent[a] = b;
                }
            }
            if let Some(host) = r
                .vms
                .iter()
                .find_map(|v| inp.fixed.get(v))
                .and_then(|h| host_idx.get(h.as_str()))
                && let Some(m) = members.first()
            {
                forced_by.insert(*m, *host);
            }
        }
        let mut unit_of: Vec<usize> = vec![usize::MAX; n];
        let mut units: Vec<Unit> = Vec::new();
        let mut root_unit: HashMap<usize, usize> = HashMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            let u = *root_unit.entry(r).or_insert_with(|| {
                units.push(Unit {
                    members: Vec::new(),
                    allowed: Vec::new(),
                    mem: 0,
                    forced: None,
                    frozen: false,
                    home: None,
                });
                units.len() - 1
            });
            unit_of[i] = u;
            units[u].members.push(i);
        }
        for (m, h) in &forced_by {
            let u = unit_of[*m];
            units[u].forced = Some(*h);
        }
        for u in &mut units {
            let mut allowed: Option<BTreeSet<usize>> = None;
            let mut homes = BTreeSet::new();
            for m in &u.members {
                let c = &inp.choosers[*m];
                let set: BTreeSet<usize> = c
                    .spec
                    .choice
                    .as_ref()
                    .map(|ch| {
                        ch.hosts
                            .iter()
                            .filter_map(|h| host_idx.get(h.as_str()).copied())
                            .collect()
                    })
                    .unwrap_or_default();
                allowed = Some(match allowed {
                    None => set,
                    Some(a) => a.intersection(&set).copied().collect(),
                });
                if c.vm.state.is_live() {
                    u.mem += c.vm.memory_mib;
                }
                let here = host_idx.get(c.vm.host.as_str()).copied();
                homes.insert(here);
                if here.is_none_or(|h| !hosts[h].obs.reachable) {
                    u.frozen = true;
                }
            }
            let mut allowed: Vec<usize> = allowed.unwrap_or_default().into_iter().collect();
            if let Some(f) = u.forced {
                allowed.retain(|h| *h == f);
            }
            u.allowed = allowed;
            u.home = match (homes.len(), homes.into_iter().next()) {
                (1, Some(Some(h))) => Some(h),
                _ => None,
            };
        }
        // Separate rules.
        let mut rules = Vec::new();
        let mut unit_rules: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for r in &d.intent.rules {
            let RuleKind::Separate { by } = &r.kind else {
                continue;
            };
            let mut names: Vec<String> = Vec::new();
            let mut ids: HashMap<String, usize> = HashMap::new();
            let domain_of: Vec<Option<usize>> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let key = match by {
                        None => Some(h.obs.name.clone()),
                        Some(label) => d
                            .hosts
                            .get(&h.obs.name)
                            .and_then(|s| s.labels.get(label).cloned()),
                    };
                    let _ = i;
                    key.map(|k| {
                        *ids.entry(k.clone()).or_insert_with(|| {
                            names.push(k);
                            names.len() - 1
                        })
                    })
                })
                .collect();
            let ri = rules.len();
            let mut fixed = Vec::new();
            let mut us = BTreeSet::new();
            for v in &r.vms {
                if let Some(c) = by_name.get(v.as_str()) {
                    us.insert(unit_of[*c]);
                } else if let Some(h) = inp.fixed.get(v).and_then(|h| host_idx.get(h.as_str())) {
                    fixed.push((v.clone(), *h));
                }
            }
            for u in &us {
                unit_rules[*u].push(ri);
            }
            rules.push(SepRule {
                name: r.name.clone(),
                by: by.clone(),
                domain_of,
                domain_names: names,
                fixed,
            });
        }
        let occ = vec![HashMap::new(); rules.len()];
        let at = vec![None; units.len()];
        let mut s = Solver {
            inp,
            hosts,
            host_idx,
            units,
            rules,
            unit_rules,
            groups,
            load,
            occ,
            at,
            headroom,
        };
        for ri in 0..s.rules.len() {
            for (fi, (_, h)) in s.rules[ri].fixed.iter().enumerate() {
                if let Some(dm) = s.rules[ri].domain_of[*h] {
                    s.occ[ri].entry(dm).or_default().push(Occ::Fixed(fi));
                }
            }
        }
        s
    }

    fn host_name(&self, h: usize) -> &str {
        &self.hosts[h].obs.name
    }

    fn place(&mut self, u: usize, h: usize) {
        self.at[u] = Some(h);
        self.load[h] += self.units[u].mem;
        for ri in self.unit_rules[u].clone() {
            if let Some(dm) = self.rules[ri].domain_of[h] {
                self.occ[ri].entry(dm).or_default().push(Occ::Unit(u));
            }
        }
    }

    fn unplace(&mut self, u: usize) {
        let Some(h) = self.at[u].take() else { return };
        self.load[h] -= self.units[u].mem;
        for ri in self.unit_rules[u].clone() {
            if let Some(dm) = self.rules[ri].domain_of[h]
                && let Some(v) = self.occ[ri].get_mut(&dm)
            {
                v.retain(|o| *o != Occ::Unit(u));
            }
        }
    }

    fn group_used(&self, g: usize) -> u64 {
        self.groups[g]
            .hosts
            .iter()
            .filter(|h| self.hosts[**h].usable)
            .map(|h| self.load[*h])
            .sum()
    }

    fn group_margin(&self, g: usize) -> i64 {
        let gi = &self.groups[g];
        gi.capacity as i64 - gi.reserve as i64 - self.group_used(g) as i64
    }

    fn occupant_name(&self, ri: usize, o: Occ) -> String {
        match o {
            Occ::Fixed(f) => self.rules[ri].fixed[f].0.clone(),
            Occ::Unit(u) => self.unit_names(u),
        }
    }

    fn unit_names(&self, u: usize) -> String {
        self.units[u]
            .members
            .iter()
            .map(|m| self.inp.choosers[*m].vm.name.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    fn place_words(&self, ri: usize, h: usize) -> String {
        let r = &self.rules[ri];
        match (&r.by, r.domain_of[h]) {
            (Some(label), Some(dm)) => format!("{label} {}", r.domain_names[dm]),
            _ => self.host_name(h).to_string(),
        }
    }

    /// What host `h` lacks for unit `u` (empty: it can go there), ignoring
    /// the occupants in `ignore`.
    fn lacks(&self, u: usize, h: usize, avoid: Option<usize>, ignore: &[usize]) -> Vec<String> {
        let unit = &self.units[u];
        let name = self.host_name(h).to_string();
        let mut out = Vec::new();
        if !unit.allowed.contains(&h) {
            if unit.forced.is_some() {
                out.push("not where the VMs it must be together with are".to_string());
            } else {
                out.push("not among its allowed hosts".to_string());
            }
            return out;
        }
        let hi = &self.hosts[h];
        if !hi.obs.reachable {
            out.push("cannot be reached".to_string());
            return out;
        }
        if self
            .inp
            .desired
            .hosts
            .get(&name)
            .is_some_and(|s| s.maintenance)
        {
            out.push("in maintenance".to_string());
            return out;
        }
        for m in &unit.members {
            let c = &self.inp.choosers[*m];
            if c.vm.host == name {
                continue;
            }
            let Some(from) = self.inp.observed.hosts.get(&c.vm.host) else {
                continue;
            };
            if let Some(why) = unfit(c.vm, Some(c.spec), from, hi.obs, self.inp.caps) {
                out.push(why);
            }
        }
        let here = if self.at[u] == Some(h) { unit.mem } else { 0 };
        let free = hi.obs.memory_mib.saturating_sub(self.load[h] - here);
        if unit.mem > free {
            let mut freed = 0u64;
            for o in ignore {
                if self.at[*o] == Some(h) {
                    freed += self.units[*o].mem;
                }
            }
            if unit.mem > free + freed {
                out.push(format!(
                    "memory: needs {}, {} free once the plan is done",
                    gib(unit.mem),
                    gib(free + freed)
                ));
            }
        }
        for ri in &self.unit_rules[u] {
            let r = &self.rules[*ri];
            let Some(dm) = r.domain_of[h] else {
                out.push(format!(
                    "rule {} separates by {}, and {name} has no such label",
                    r.name,
                    r.by.as_deref().unwrap_or("host")
                ));
                continue;
            };
            for o in self.occ[*ri].get(&dm).into_iter().flatten() {
                if *o == Occ::Unit(u) {
                    continue;
                }
                if let Occ::Unit(x) = o
                    && ignore.contains(x)
                {
                    continue;
                }
                out.push(format!(
                    "rule {}: {} is on {}",
                    r.name,
                    self.occupant_name(*ri, *o),
                    self.place_words(*ri, h)
                ));
            }
        }
        if self.at[u] != Some(h) {
            for g in &hi.groups {
                if Some(*g) == avoid {
                    out.push(format!(
                        "headroom: it is leaving group {} to restore its headroom",
                        self.groups[*g].name
                    ));
                    continue;
                }
                if self.headroom > 0 {
                    let margin = self.group_margin(*g) - unit.mem as i64;
                    if margin < 0 {
                        out.push(format!(
                            "headroom {} of group {}: {} short with it there",
                            self.headroom,
                            self.groups[*g].name,
                            gib(margin.unsigned_abs())
                        ));
                    }
                }
            }
        }
        out
    }

    /// How many of the unit's VMs move to reach `h`, and how much memory.
    fn cost(&self, u: usize, h: usize) -> (usize, u64) {
        let name = self.host_name(h);
        let mut moves = 0;
        let mut data = 0;
        for m in &self.units[u].members {
            let vm = self.inp.choosers[*m].vm;
            if vm.host != name {
                moves += 1;
                data += vm.memory_mib;
            }
        }
        (moves, data)
    }

    /// Memory use of `h` after unit `u` arrives, in millionths.
    fn use_after(&self, u: usize, h: usize) -> u64 {
        let cap = self.hosts[h].obs.memory_mib.max(1);
        (self.load[h] + self.units[u].mem).saturating_mul(1_000_000) / cap
    }

    fn best_host(&self, u: usize, avoid: Option<usize>) -> Option<usize> {
        self.units[u]
            .allowed
            .iter()
            .copied()
            .filter(|h| self.lacks(u, *h, avoid, &[]).is_empty())
            .min_by_key(|h| (self.cost(u, *h), self.use_after(u, *h), *h))
    }
}

impl Solver<'_> {
    fn why_here(&self, u: usize) -> String {
        let Some(h) = self.at[u] else {
            return String::new();
        };
        let unit = &self.units[u];
        let others = unit.allowed.len().saturating_sub(1);
        let pct = self.load[h].saturating_mul(100) / self.hosts[h].obs.memory_mib.max(1);
        let mut s = format!("to {}", self.host_name(h));
        if unit.members.len() > 1 {
            let (moves, _) = self.cost(u, h);
            if moves < unit.members.len() {
                write!(s, ", where the rest of its together set is").ok();
            }
        }
        if others == 0 {
            write!(s, ", its only allowed host").ok();
        } else {
            write!(
                s,
                ", the least used of the allowed hosts that fit ({pct}% memory after)"
            )
            .ok();
        }
        s
    }

    /// Units on `h` or in the way of `u` there, and whether any of the
    /// obstacles is fixed (cannot be moved).
    fn blockers(&self, u: usize, h: usize) -> Option<Vec<usize>> {
        let mut out: BTreeSet<usize> = BTreeSet::new();
        for ri in &self.unit_rules[u] {
            let dm = self.rules[*ri].domain_of[h]?;
            for o in self.occ[*ri].get(&dm).into_iter().flatten() {
                match o {
                    Occ::Fixed(_) => return None,
                    Occ::Unit(x) if *x == u => {}
                    Occ::Unit(x) if self.units[*x].frozen => return None,
                    Occ::Unit(x) => {
                        out.insert(*x);
                    }
                }
            }
        }
        // Memory: the fewest staying units on h that free enough.
        let cap = self.hosts[h].obs.memory_mib;
        let freed: u64 = out
            .iter()
            .filter(|x| self.at[**x] == Some(h))
            .map(|x| self.units[*x].mem)
            .sum();
        let mut load = self.load[h].saturating_sub(freed);
        if load + self.units[u].mem > cap {
            let mut on: Vec<usize> = (0..self.units.len())
                .filter(|x| {
                    self.at[*x] == Some(h) && !out.contains(x) && *x != u && !self.units[*x].frozen
                })
                .collect();
            on.sort_by_key(|x| (std::cmp::Reverse(self.units[*x].mem), *x));
            for x in on {
                if load + self.units[u].mem <= cap {
                    break;
                }
                load = load.saturating_sub(self.units[x].mem);
                out.insert(x);
            }
            if load + self.units[u].mem > cap {
                return None;
            }
        }
        Some(out.into_iter().collect())
    }

    /// Tries to place `u` on `h` by moving the units in its way elsewhere;
    /// returns the new hosts of the moved units, or undoes everything.
    fn try_eject(
        &mut self,
        u: usize,
        h: usize,
        avoid: Option<usize>,
    ) -> Option<Vec<(usize, usize)>> {
        let blockers = self.blockers(u, h)?;
        if blockers.is_empty() {
            return None;
        }
        let old: Vec<(usize, usize)> = blockers
            .iter()
            .filter_map(|b| self.at[*b].map(|x| (*b, x)))
            .collect();
        for b in &blockers {
            self.unplace(*b);
        }
        let mut done = Vec::new();
        let ok = self.lacks(u, h, avoid, &[]).is_empty() && {
            self.place(u, h);
            let mut all = true;
            for b in &blockers {
                match self.best_host(*b, None) {
                    Some(x) => {
                        self.place(*b, x);
                        done.push((*b, x));
                    }
                    None => {
                        all = false;
                        break;
                    }
                }
            }
            if !all {
                self.unplace(u);
            }
            all
        };
        if ok {
            return Some(done);
        }
        for (b, _) in done {
            self.unplace(b);
        }
        for (b, x) in old {
            self.place(b, x);
        }
        None
    }

    fn report_headroom(&self) -> Vec<Headroom> {
        let d = self.inp.desired;
        if d.intent.headroom == 0 && d.intent.host_groups.is_empty() {
            return Vec::new();
        }
        let failures = d.intent.headroom.max(1);
        let mut out: Vec<Headroom> = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, gi)| Headroom {
                group: gi.name.clone(),
                failures,
                capacity_mib: gi.capacity,
                used_mib: self.group_used(g),
                reserve_mib: gi.reserve,
                margin_mib: self.group_margin(g),
                enforced: d.intent.headroom > 0,
            })
            .collect();
        let mut caps: Vec<u64> = self
            .hosts
            .iter()
            .filter(|h| h.usable)
            .map(|h| h.obs.memory_mib)
            .collect();
        caps.sort_unstable_by(|a, b| b.cmp(a));
        let capacity: u64 = caps.iter().sum();
        let reserve: u64 = caps.iter().take(failures as usize).sum();
        let used: u64 = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].usable)
            .map(|h| self.load[h])
            .sum();
        out.push(Headroom {
            group: "*".to_string(),
            failures,
            capacity_mib: capacity,
            used_mib: used,
            reserve_mib: reserve,
            margin_mib: capacity as i64 - reserve as i64 - used as i64,
            enforced: d.intent.headroom > 0,
        });
        out
    }

    fn verdicts(&mut self, vm: &str) -> Option<Vec<Verdict>> {
        let m = self.inp.choosers.iter().position(|c| c.vm.name == vm)?;
        let u = self.units.iter().position(|x| x.members.contains(&m))?;
        let placed = self.at[u];
        let c = &self.inp.choosers[m];
        let names: Vec<String> = c
            .spec
            .choice
            .as_ref()
            .map(|ch| ch.hosts.clone())
            .unwrap_or_default();
        self.unplace(u);
        let mut out = Vec::new();
        for name in names {
            let lacks = match self.host_idx.get(name.as_str()) {
                Some(h) => self.lacks(u, *h, None, &[]),
                None => vec!["not observed".to_string()],
            };
            out.push(Verdict {
                chosen: placed.is_some_and(|p| self.host_name(p) == name),
                current: c.vm.host == name,
                host: name,
                lacks,
            });
        }
        if let Some(p) = placed {
            self.place(u, p);
        }
        Some(out)
    }

    fn run(&mut self) -> (Vec<Option<Need>>, Vec<Blocked>) {
        let n = self.units.len();
        let mut need: Vec<Option<Need>> = vec![None; n];
        let mut blocked = Vec::new();
        let maint = |s: &Self, h: usize| {
            s.inp
                .desired
                .hosts
                .get(s.host_name(h))
                .is_some_and(|x| x.maintenance)
        };
        // 1. Stay where allowed.
        for u in 0..n {
            let unit = &self.units[u];
            match unit.home {
                Some(h) if unit.frozen => self.place(u, h),
                Some(h)
                    if unit.allowed.contains(&h)
                        && self.hosts[h].usable
                        && unit.forced.is_none_or(|f| f == h) =>
                {
                    self.place(u, h)
                }
                Some(h) if maint(self, h) => {
                    need[u] = Some(Need {
                        reason: Reason::Maintenance,
                        why: format!("{} is in maintenance", self.host_name(h)),
                        avoid_group: None,
                    })
                }
                Some(h) if unit.forced.is_some() => {
                    need[u] = Some(Need {
                        reason: Reason::Rule,
                        why: format!(
                            "a together rule ties it to {}",
                            unit.forced.map_or("", |f| self.host_name(f))
                        ),
                        avoid_group: None,
                    });
                    let _ = h;
                }
                Some(h) => {
                    let group = self.units[u].members.first().and_then(|m| {
                        self.inp.choosers[*m]
                            .spec
                            .choice
                            .as_ref()
                            .and_then(|c| c.group.clone())
                    });
                    need[u] = Some(Need {
                        reason: Reason::Placement,
                        why: match group {
                            Some(g) if self.units[u].members.len() == 1 => {
                                format!("{} is not in host group {g}", self.host_name(h))
                            }
                            _ => format!("{} is not among its allowed hosts", self.host_name(h)),
                        },
                        avoid_group: None,
                    })
                }
                None => {
                    let mut hosts: Vec<&str> = unit
                        .members
                        .iter()
                        .map(|m| self.inp.choosers[*m].vm.host.as_str())
                        .collect();
                    hosts.sort_unstable();
                    hosts.dedup();
                    let rule = self.together_rule(u);
                    need[u] = Some(Need {
                        reason: Reason::Rule,
                        why: format!("rule {rule}: its VMs are on {}", hosts.join(" and ")),
                        avoid_group: None,
                    })
                }
            }
        }
        // 2. Hosts over their memory once fixed VMs arrive.
        for h in 0..self.hosts.len() {
            let cap = self.hosts[h].obs.memory_mib;
            while self.load[h] > cap {
                let over = self.load[h] - cap;
                let mut on: Vec<usize> = (0..n)
                    .filter(|x| {
                        self.at[*x] == Some(h) && !self.units[*x].frozen && self.units[*x].mem > 0
                    })
                    .collect();
                if on.is_empty() {
                    break;
                }
                on.sort_by_key(|x| (self.units[*x].mem, *x));
                let pick = on
                    .iter()
                    .copied()
                    .find(|x| self.units[*x].mem >= over)
                    .unwrap_or_else(|| on[on.len() - 1]);
                self.unplace(pick);
                need[pick] = Some(Need {
                    reason: Reason::Placement,
                    why: format!(
                        "{} would be {} over its memory once the plan's other moves are done",
                        self.host_name(h),
                        gib(over)
                    ),
                    avoid_group: None,
                });
            }
        }
        // 3. Separate rules broken now.
        for ri in 0..self.rules.len() {
            let mut domains: Vec<usize> = self.occ[ri]
                .iter()
                .filter(|(_, v)| v.len() > 1)
                .map(|(d, _)| *d)
                .collect();
            domains.sort_unstable();
            for dm in domains {
                let occ = self.occ[ri][&dm].clone();
                let staying = occ.iter().find_map(|o| match o {
                    Occ::Fixed(_) => Some(*o),
                    Occ::Unit(x) if self.units[*x].frozen => Some(*o),
                    _ => None,
                });
                let keep = staying.or_else(|| {
                    occ.iter().copied().min_by_key(|o| match o {
                        Occ::Unit(x) => (
                            self.units[*x].allowed.len(),
                            std::cmp::Reverse(self.units[*x].mem),
                            *x,
                        ),
                        Occ::Fixed(_) => (0, std::cmp::Reverse(u64::MAX), 0),
                    })
                });
                let Some(keep) = keep else { continue };
                for o in occ {
                    let Occ::Unit(x) = o else { continue };
                    if o == keep || self.units[x].frozen {
                        continue;
                    }
                    let Some(h) = self.at[x] else { continue };
                    let words = self.place_words(ri, h);
                    let other = self.occupant_name(ri, keep);
                    self.unplace(x);
                    need[x] = Some(Need {
                        reason: Reason::Rule,
                        why: format!("rule {}: {other} is also on {words}", self.rules[ri].name),
                        avoid_group: None,
                    });
                }
            }
        }
        // 4. Headroom of host groups.
        if self.headroom > 0 {
            for g in 0..self.groups.len() {
                if self.group_margin(g) >= 0 {
                    continue;
                }
                let mut inside: Vec<usize> = (0..n)
                    .filter(|x| {
                        self.at[*x].is_some_and(|h| self.groups[g].hosts.contains(&h))
                            && !self.units[*x].frozen
                            && self.units[*x].mem > 0
                            && self.units[*x]
                                .allowed
                                .iter()
                                .any(|h| !self.groups[g].hosts.contains(h))
                    })
                    .collect();
                inside.sort_by_key(|x| (std::cmp::Reverse(self.units[*x].mem), *x));
                for x in inside {
                    let short = self.group_margin(g);
                    if short >= 0 {
                        break;
                    }
                    let Some(old) = self.at[x] else { continue };
                    self.unplace(x);
                    match self.best_host(x, Some(g)) {
                        Some(to) => {
                            self.place(x, to);
                            need[x] = Some(Need {
                                reason: Reason::Headroom,
                                why: format!(
                                    "headroom {}: group {} is {} short of surviving {} host failure{}",
                                    self.headroom,
                                    self.groups[g].name,
                                    gib(short.unsigned_abs()),
                                    self.headroom,
                                    if self.headroom == 1 { "" } else { "s" }
                                ),
                                avoid_group: Some(g),
                            });
                        }
                        None => self.place(x, old),
                    }
                }
            }
        }
        // 5. Place what must move, most constrained first.
        let mut order: Vec<usize> = (0..n)
            .filter(|u| self.at[*u].is_none() && need[*u].is_some())
            .collect();
        order.sort_by_key(|u| {
            (
                self.units[*u].allowed.len(),
                std::cmp::Reverse(self.units[*u].mem),
                *u,
            )
        });
        let mut unplaced = Vec::new();
        for u in order {
            let avoid = need[u].as_ref().and_then(|x| x.avoid_group);
            match self.best_host(u, avoid) {
                Some(h) => self.place(u, h),
                None => unplaced.push(u),
            }
        }
        // 6. Repair: move what is in the way, when that is cheapest.
        for u in unplaced {
            let avoid = need[u].as_ref().and_then(|x| x.avoid_group);
            let mut best: Option<((usize, u64, u64, usize), usize)> = None;
            for h in self.units[u].allowed.clone() {
                if !self.hosts[h].usable {
                    continue;
                }
                let Some(blockers) = self.blockers(u, h) else {
                    continue;
                };
                let moves: usize = blockers.iter().map(|b| self.units[*b].members.len()).sum();
                let data: u64 = blockers.iter().map(|b| self.units[*b].mem).sum();
                let key = (moves, data, self.use_after(u, h), h);
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, h));
                }
            }
            let mut placed = false;
            // Try hosts in order of cost until one works.
            let mut tried: Vec<usize> = Vec::new();
            while let Some((_, h)) = best.take() {
                tried.push(h);
                if let Some(moved) = self.try_eject(u, h, avoid) {
                    let name = self.unit_names(u);
                    for (b, _) in moved {
                        need[b] = Some(Need {
                            reason: need[u].as_ref().map_or(Reason::Placement, |x| x.reason),
                            why: format!("makes room on {} for {name}", self.host_name(h)),
                            avoid_group: None,
                        });
                    }
                    placed = true;
                    break;
                }
                for h2 in self.units[u].allowed.clone() {
                    if tried.contains(&h2) || !self.hosts[h2].usable {
                        continue;
                    }
                    let Some(blockers) = self.blockers(u, h2) else {
                        continue;
                    };
                    let moves: usize = blockers.iter().map(|b| self.units[*b].members.len()).sum();
                    let data: u64 = blockers.iter().map(|b| self.units[*b].mem).sum();
                    let key = (moves, data, self.use_after(u, h2), h2);
                    if best.as_ref().is_none_or(|(k, _)| key < *k) {
                        best = Some((key, h2));
                    }
                }
                if tried.len() >= 8 {
                    break;
                }
            }
            if placed {
                continue;
            }
            let why = need[u].as_ref().map_or(String::new(), |x| x.why.clone());
            let mut verdicts: Vec<(usize, String, Vec<String>)> = self.units[u]
                .allowed
                .iter()
                .map(|h| {
                    let l = self.lacks(u, *h, avoid, &[]);
                    (l.len(), self.host_name(*h).to_string(), l)
                })
                .collect();
            verdicts.sort();
            let mut text = if why.is_empty() {
                "no allowed host can take it".to_string()
            } else {
                format!("it must move ({why}), but no allowed host can take it")
            };
            if verdicts.is_empty() {
                text.push_str(": it has no allowed host in the fleet");
            }
            for (i, (_, host, l)) in verdicts.iter().take(3).enumerate() {
                text.push_str(if i == 0 { ": " } else { "; " });
                write!(text, "{host}: {}", l.join(", ")).ok();
            }
            if verdicts.len() > 3 {
                write!(text, "; and {} more", verdicts.len() - 3).ok();
            }
            for m in &self.units[u].members {
                blocked.push(Blocked {
                    vm: self.inp.choosers[*m].vm.name.clone(),
                    reason: text.clone(),
                });
            }
        }
        // Frozen units that should move.
        for u in 0..n {
            if self.units[u].frozen && need[u].is_some() {
                let why = need[u].as_ref().map_or(String::new(), |x| x.why.clone());
                for m in &self.units[u].members {
                    let c = &self.inp.choosers[*m];
                    blocked.push(Blocked {
                        vm: c.vm.name.clone(),
                        reason: format!(
                            "it must move ({why}), but its host {} cannot be reached",
                            c.vm.host
                        ),
                    });
                }
            }
        }
        (need, blocked)
    }

    fn together_rule(&self, u: usize) -> String {
        let names: BTreeSet<&str> = self.units[u]
            .members
            .iter()
            .map(|m| self.inp.choosers[*m].vm.name.as_str())
            .collect();
        self.inp
            .desired
            .intent
            .rules
            .iter()
            .find(|r| {
                r.kind == RuleKind::Together && r.vms.iter().any(|v| names.contains(v.as_str()))
            })
            .map_or_else(|| "together".to_string(), |r| r.name.clone())
    }
}

/// Chooses hosts for the VMs with choices.
pub(super) fn solve(inp: &Input<'_>, explain: Option<&str>) -> (Solution, Option<Vec<Verdict>>) {
    let mut s = Solver::new(inp);
    let (need, blocked) = s.run();
    let mut sol = Solution {
        blocked,
        ..Solution::default()
    };
    let stuck: BTreeSet<&str> = sol.blocked.iter().map(|b| b.vm.as_str()).collect();
    for u in 0..s.units.len() {
        for m in &s.units[u].members {
            let c = &inp.choosers[*m];
            let host = match s.at[u] {
                Some(h) if !stuck.contains(c.vm.name.as_str()) => s.host_name(h).to_string(),
                _ => c.vm.host.clone(),
            };
            let moves = host != c.vm.host;
            let (reason, why) = match (&need[u], moves) {
                (Some(n), true) => (n.reason, Some(format!("{}; {}", n.why, s.why_here(u)))),
                _ => (Reason::Placement, None),
            };
            sol.chosen.push(Chosen {
                vm: c.vm.name.clone(),
                host,
                reason,
                why,
            });
        }
    }
    sol.headroom = s.report_headroom();
    let verdicts = explain.and_then(|vm| s.verdicts(vm));
    (sol, verdicts)
}
