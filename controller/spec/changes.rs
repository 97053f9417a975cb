//! What changed between two valid versions of the desired state.
//!
//! `watch` logs one line when the documents change. Counting only VMs made
//! a flipped `maintenance` read as "0 added, 0 changed, 0 removed", which
//! says nothing happened when a whole host is about to be emptied; this
//! counts hosts, policy and settings too, and names maintenance flips.

use std::collections::BTreeMap;
use std::fmt;

use super::model::Desired;

/// Added, changed and removed entries of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Declared now, not before.
    pub added: usize,
    /// Declared in both, differently.
    pub changed: usize,
    /// Declared before, not now.
    pub removed: usize,
}

impl Counts {
    fn of<V: PartialEq>(old: &BTreeMap<String, V>, new: &BTreeMap<String, V>) -> Counts {
        Counts {
            added: new.keys().filter(|k| !old.contains_key(*k)).count(),
            changed: new
                .iter()
                .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
                .count(),
            removed: old.keys().filter(|k| !new.contains_key(*k)).count(),
        }
    }

    /// Whether nothing was added, changed or removed.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added, {} changed, {} removed",
            self.added, self.changed, self.removed
        )
    }
}

/// The difference between two versions of the desired state, for a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecChanges {
    /// Hosts in the new version.
    pub hosts_now: usize,
    /// VMs in the new version.
    pub vms_now: usize,
    /// VM changes.
    pub vms: Counts,
    /// Host changes (maintenance, limits, anything declared on a host).
    pub hosts: Counts,
    /// Hosts whose `maintenance` turned on (present in both versions).
    pub entering_maintenance: Vec<String>,
    /// Hosts whose `maintenance` turned off (present in both versions).
    pub leaving_maintenance: Vec<String>,
    /// Whether the policy changed.
    pub policy: bool,
    /// Whether the Controller settings changed.
    pub controller: bool,
}

impl SpecChanges {
    /// Compares two versions of the desired state.
    pub fn between(old: &Desired, new: &Desired) -> SpecChanges {
        let flips = |on: bool| -> Vec<String> {
            new.hosts
                .iter()
                .filter(|(k, h)| {
                    h.maintenance == on && old.hosts.get(*k).is_some_and(|o| o.maintenance != on)
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        SpecChanges {
            hosts_now: new.hosts.len(),
            vms_now: new.vms.len(),
            vms: Counts::of(&old.vms, &new.vms),
            hosts: Counts::of(&old.hosts, &new.hosts),
            entering_maintenance: flips(true),
            leaving_maintenance: flips(false),
            policy: old.policy != new.policy,
            controller: old.controller != new.controller,
        }
    }
}

/// At most ten names, then "...".
fn names(list: &[String]) -> String {
    let mut s = list
        .iter()
        .take(10)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > 10 {
        s.push_str(", ...");
    }
    s
}

impl fmt::Display for SpecChanges {
    /// "3 hosts, 5 VMs (VMs: 0 added, 0 changed, 0 removed; hosts: 0 added,
    /// 1 changed, 0 removed; hv01 enters maintenance; policy unchanged)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        write!(
            f,
            "{}, {} (VMs: {}; hosts: {}",
            n(self.hosts_now, "host", "hosts"),
            n(self.vms_now, "VM", "VMs"),
            self.vms,
            self.hosts
        )?;
        if !self.entering_maintenance.is_empty() {
            let verb = if self.entering_maintenance.len() == 1 {
                "enters"
            } else {
                "enter"
            };
            write!(
                f,
                "; {} {verb} maintenance",
                names(&self.entering_maintenance)
            )?;
        }
        if !self.leaving_maintenance.is_empty() {
            let verb = if self.leaving_maintenance.len() == 1 {
                "leaves"
            } else {
                "leave"
            };
            write!(
                f,
                "; {} {verb} maintenance",
                names(&self.leaving_maintenance)
            )?;
        }
        f.write_str(if self.policy {
            "; policy changed"
        } else {
            "; policy unchanged"
        })?;
        if self.controller {
            f.write_str("; Controller settings changed")?;
        }
        f.write_str(")")
    }
}
