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
//!    allowed host with the fewest moves, then the least data moved (memory
//!    and disks that travel with the VM), then
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

// Units, hosts and rules are indices into parallel vectors (`at`, `need`,
// `units`), so loops run over indices.
#![allow(clippy::needless_range_loop)]

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::provider::{Observed, ObservedHost, ObservedVm};
use crate::spec::{Desired, RuleKind, VmSpec};

use super::diff::{gib, unfit};
use super::storage::{self, declared_path};

mod build;
mod report;
mod search;
mod state;
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
    /// Disks headed to each host with the moves of VMs the solver does not
    /// place, MiB (in-flight copies already hold their space in the
    /// volumes' observed free space).
    pub disk_load: &'a HashMap<String, u64>,
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
    /// Cannot move at all (a member's host cannot be reached, or an
    /// earlier round found no place for it).
    frozen: bool,
    /// Frozen because an earlier round blocked it (its reason is known).
    stuck: bool,
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
    /// Disks arriving per host (fixed moves + placed units that move), MiB.
    disk_in: Vec<u64>,
    /// Per rule, per domain: occupants.
    occ: Vec<HashMap<usize, Vec<Occ>>>,
    /// Current assignment per unit.
    at: Vec<Option<usize>>,
    /// Units placed on each host.
    on: Vec<BTreeSet<usize>>,
    /// Changes since the last [`Solver::mark`]: (unit, where it was).
    log: Vec<(usize, Option<usize>)>,
    headroom: u32,
}

/// Chooses hosts for the VMs with choices.
///
/// A VM that finds no place stays where it is and keeps its memory there;
/// the others are then placed again around it (at most a few rounds), so
/// no VM is sent into room a blocked VM does not leave.
pub(super) fn solve(inp: &Input<'_>, explain: Option<&str>) -> (Solution, Option<Vec<Verdict>>) {
    let mut stuck: BTreeSet<String> = BTreeSet::new();
    let mut blocked: Vec<Blocked> = Vec::new();
    let mut round = 0;
    let (mut s, need) = loop {
        round += 1;
        let mut s = Solver::new(inp, &stuck);
        let (need, found) = s.run();
        let new: Vec<Blocked> = found
            .into_iter()
            .filter(|b| !stuck.contains(&b.vm))
            .collect();
        let done = new.is_empty() || round >= 4;
        for b in new {
            stuck.insert(b.vm.clone());
            blocked.push(b);
        }
        if done {
            break (s, need);
        }
    };
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
