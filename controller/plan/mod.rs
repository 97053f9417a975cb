//! The planner: what must change, and in which order, to reach the spec.
//!
//! [`plan`] diffs the validated desired state against an observation and
//! returns a [`Plan`]: a partial order of actions (moves, ACL changes,
//! connections, VLANs) that never overcommits a host's memory or a volume's
//! space when executed under the host limits, plus the VMs it cannot place ([`Blocked`]) and
//! the ones it does not manage. It is pure: no I/O, no clock.

mod diff;
mod fallback;
mod flow;
mod order;
pub mod schedule;
mod separate;
mod solve;
mod storage;
pub mod timeline;
pub mod window;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::provider::{MoveKind, Observed};
use crate::spec::{Acl, Desired, Direction};

pub use diff::acl_diff as diff_acls;
pub use schedule::{Caps, estimate_makespan};
pub use solve::{Headroom, Verdict};
pub use window::{MoveWindowStatus, fixes_only, window_status};

/// Why a VM moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The spec puts it elsewhere.
    Placement,
    /// Its host is in maintenance.
    Maintenance,
    /// Its host's maintenance ended: back home.
    Return,
    /// It stays, but something about it drifted from the spec.
    Drift,
    /// A rule between VMs (`separate`, `together`) makes it move.
    Rule,
    /// It leaves a host group to keep that group's `headroom`.
    Headroom,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Placement => "placement",
            Reason::Maintenance => "maintenance",
            Reason::Return => "return",
            Reason::Drift => "drift",
            Reason::Rule => "rule",
            Reason::Headroom => "headroom",
        })
    }
}

/// One ACL rule to add, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AclChange {
    /// Direction.
    pub direction: Direction,
    /// Weight.
    pub weight: u32,
    /// The whole rule (for additions).
    #[serde(skip)]
    pub rule: Option<Acl>,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ActionKind {
    /// Move a VM.
    #[serde(rename_all = "camelCase")]
    Move {
        /// VM.
        vm: String,
        /// Where it is (or will be, for the second leg of a hop).
        from: String,
        /// Where it goes.
        to: String,
        /// `live` or `offline`.
        method: MoveKind,
        /// Why.
        reason: Reason,
        /// For a VM with choices: one line on why it moves and why there.
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<String>,
        /// Expected duration, seconds.
        estimated_seconds: f64,
        /// Memory it needs on the destination, MiB (live moves).
        #[serde(skip)]
        memory_mib: u64,
        /// GiB of disks copied with the VM; omitted: none (shared storage).
        #[serde(rename = "storageGiB", skip_serializing_if = "is_zero")]
        storage_gib: f64,
        /// The destination volume the disks go to.
        #[serde(skip_serializing_if = "Option::is_none")]
        volume: Option<String>,
        /// The folder the VM's files go to (`<storagePath>\<vm>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        storage_path: Option<String>,
        /// MiB of disks copied (0: memory only).
        #[serde(skip)]
        disk_mib: u64,
    },
    /// Make an adapter's extended ACLs exactly the declared set.
    #[serde(rename_all = "camelCase")]
    SetAcls {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// Rules to add.
        add: Vec<AclChange>,
        /// Rules to remove.
        remove: Vec<AclChange>,
        /// Why.
        reason: Reason,
    },
    /// Connect an adapter to its switch.
    #[serde(rename_all = "camelCase")]
    Connect {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// Switch.
        switch: String,
        /// SCVMM VM network.
        #[serde(skip_serializing_if = "Option::is_none")]
        vm_network: Option<String>,
        /// Why.
        reason: Reason,
    },
    /// Set an adapter's access VLAN.
    #[serde(rename_all = "camelCase")]
    SetVlan {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// VLAN id.
        vlan_id: u16,
        /// Why.
        reason: Reason,
    },
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl ActionKind {
    /// The VM the action is about.
    pub fn vm(&self) -> &str {
        match self {
            ActionKind::Move { vm, .. }
            | ActionKind::SetAcls { vm, .. }
            | ActionKind::Connect { vm, .. }
            | ActionKind::SetVlan { vm, .. } => vm,
        }
    }

    /// Whether this is a move.
    pub fn is_move(&self) -> bool {
        matches!(self, ActionKind::Move { .. })
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// 1-based id, unique in the plan.
    pub id: u32,
    /// What it does.
    #[serde(flatten)]
    pub kind: ActionKind,
    /// Ids that must finish first.
    pub after: Vec<u32>,
}

/// A VM the plan cannot bring to its desired state, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// VM.
    pub vm: String,
    /// Why, in words an operator can act on.
    pub reason: String,
}

/// A move already under way, which the plan waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// VM.
    pub vm: String,
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
}

/// A partial order of actions that brings the fleet to the spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Always 1.
    pub format_version: u32,
    /// Nothing to do, nothing blocked, nothing in flight.
    pub in_sync: bool,
    /// The actions, ids ascending; `after` only names smaller ids.
    pub actions: Vec<Action>,
    /// VMs that cannot reach their desired state.
    pub blocked: Vec<Blocked>,
    /// VMs observed but not declared.
    pub unmanaged: Vec<String>,
    /// Moves running now (from an earlier run or another tool).
    pub in_flight: Vec<InFlight>,
    /// Expected duration of the whole plan under the limits, seconds.
    pub estimated_seconds: f64,
    /// Memory to spare per host group after its largest hosts fail (only
    /// when host groups or `headroom` are declared).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headroom: Vec<Headroom>,
    /// Move windows at planning time; omitted when none are declared (set
    /// by callers that know the time: see [`window_status`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_window: Option<MoveWindowStatus>,
}

impl Plan {
    /// Number of moves.
    pub fn moves(&self) -> usize {
        self.actions.iter().filter(|a| a.kind.is_move()).count()
    }

    /// Number of ACL rules added or removed.
    pub fn acl_changes(&self) -> usize {
        self.actions
            .iter()
            .map(|a| match &a.kind {
                ActionKind::SetAcls { add, remove, .. } => add.len() + remove.len(),
                _ => 0,
            })
            .sum()
    }

    /// Number of adapter connections.
    pub fn connections(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::Connect { .. }))
            .count()
    }

    /// Number of VLAN changes.
    pub fn vlan_changes(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::SetVlan { .. }))
            .count()
    }

    /// Whether there is anything to do.
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }
}

/// Plans the way from `observed` to `desired`.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    plan_with_holds(desired, observed, &BTreeMap::new())
}

/// Plans like [`plan`], but leaves the VMs in `holds` where they are and
/// reports them as blocked with the given reason (the executor holds VMs
/// whose moves failed for good, so a re-plan routes around them).
pub fn plan_with_holds(
    desired: &Desired,
    observed: &Observed,
    holds: &BTreeMap<String, String>,
) -> Plan {
    let caps = Caps::new(desired, observed);
    let targets = diff::targets(desired, observed, &caps, holds, None);
    let mut builder = order::Builder::new(desired, observed, &caps);
    builder.add_moves(&targets.moves);
    let mut plan = builder.finish(targets.adapter_changes);
    plan.blocked.extend(targets.blocked);
    plan.blocked.sort_by(|a, b| a.vm.cmp(&b.vm));
    plan.blocked.dedup_by(|a, b| a.vm == b.vm);
    plan.unmanaged = targets.unmanaged;
    plan.in_flight = targets.in_flight;
    plan.headroom = targets.headroom;
    // A move of a VM being backed up starts when its backup ends, where
    // the provider can tell when that is.
    let release: std::collections::HashMap<u32, f64> = plan
        .actions
        .iter()
        .filter(|a| a.kind.is_move())
        .filter_map(|a| {
            let end = observed.backups_end_in.get(a.kind.vm())?;
            Some((a.id, *end))
        })
        .collect();
    plan.estimated_seconds = schedule::estimate_makespan_from(&plan, &caps, &release);
    plan.in_sync = plan.actions.is_empty() && plan.blocked.is_empty() && plan.in_flight.is_empty();
    plan
}

/// Every candidate host of a VM with choices and what each lacks for it,
/// against the fleet as the plan leaves it (`plan --explain VM`). `None`
/// when the VM is not a VM with choices in the fleet.
pub fn explain(desired: &Desired, observed: &Observed, vm: &str) -> Option<Vec<Verdict>> {
    let caps = Caps::new(desired, observed);
    diff::targets(desired, observed, &caps, &BTreeMap::new(), Some(vm)).verdicts
}
