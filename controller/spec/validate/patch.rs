//! Patching the last clean desired state with the files that changed.
//!
//! A commit in a 100,000-VM spec usually edits a few VMs of one file, yet a
//! full [`Merger`](super::Merger) pass inserts every VM of every file again
//! and checks every reference (tens of milliseconds). [`patch`] instead takes
//! the desired state the last load returned, removes what the changed files
//! declared then and inserts what they declare now.
//!
//! It is exact only where the merge rules are local, so it refuses (returns
//! `false`, and the caller merges everything) unless all of this holds:
//!
//! * the last load had no problem at all, settled no intent (no host group,
//!   rule or choice in any document), and read the same files in the same
//!   order (the caller checks these);
//! * every changed part, old and new, is a Placement document with no
//!   problem of its own, no `status`, no intent, and only VMs that name a
//!   usable `host`: so the Controller, Fleets, status and intent of the last
//!   result stay what a full merge makes them;
//! * there is still at most one `policy` in all files (the last load had at
//!   most one, and the caller says whether it had one), and a new one has no
//!   problem: the policy in force is that one, or the default when none is
//!   left, as the full merge makes it;
//! * the changed files declare the same host names as before (in any order
//!   or file), so the host set is unchanged, no host is declared twice, and
//!   every reference from an unchanged file still resolves;
//! * every VM they declare now is new to the map (after their old VMs are
//!   taken out), so no VM is declared twice, and names only declared hosts.
//!
//! Under these, a full merge reports nothing either and builds the same
//! maps: an unchanged file's VMs and hosts are the ones kept (the very same
//! shared VMs), a changed file's are its new parts', and nothing else
//! differs. Any duplicate or bad reference makes it refuse, so every
//! diagnostic still comes from the full merge, in its order.

use std::collections::btree_map::Entry;
use std::sync::Arc;

use super::{Part, PartBody, PlacementPart};
use crate::spec::model::{Desired, Policy};

/// Replaces, in `desired` (the last clean, intent-free result), each changed
/// file's old parts by its new ones: `changes` holds `(old, new)` per
/// changed file. `has_policy` says whether the last result had a `policy`
/// document, and is updated. Returns `false` when the result could differ
/// from a full merge; `desired` may then be half patched and must be dropped.
pub(crate) fn patch(
    desired: &mut Desired,
    has_policy: &mut bool,
    changes: &[(&[Part], &[Part])],
) -> bool {
    let mut old_hosts: Vec<&str> = Vec::new();
    let mut new_hosts: Vec<&str> = Vec::new();
    let (mut old_docs, mut new_docs) = (0usize, 0usize);
    let mut old_policies = 0usize;
    let mut new_policies = Vec::new();
    for (old, new) in changes {
        for part in old.iter() {
            let Some(p) = plain(part) else {
                return false;
            };
            old_hosts.extend(p.hosts.iter().map(|h| h.name.as_str()));
            old_docs += 1;
            old_policies += usize::from(p.policy.is_some());
        }
        for part in new.iter() {
            let Some(p) = plain(part) else {
                return false;
            };
            new_hosts.extend(p.hosts.iter().map(|h| h.name.as_str()));
            new_docs += 1;
            new_policies.extend(p.policy.as_ref());
        }
    }
    // Policies in the files that did not change: the last load had at most
    // one (it was clean).
    let Some(kept_policies) = usize::from(*has_policy).checked_sub(old_policies) else {
        return false;
    };
    match (kept_policies, new_policies.as_slice()) {
        (_, []) if old_policies == 0 => {}
        (0, []) => {
            desired.policy = Policy::default();
            desired.intent.headroom = 0;
            *has_policy = false;
        }
        (0, [policy]) if policy.problems.is_empty() => {
            desired.policy = policy.policy.clone();
            desired.intent.headroom = policy.headroom.unwrap_or(0);
            *has_policy = true;
        }
        _ => return false,
    }
    old_hosts.sort_unstable();
    new_hosts.sort_unstable();
    // The old names were unique (the last load was clean), so equal sorted
    // lists mean the new names are unique and the host set is unchanged.
    if old_hosts != new_hosts {
        return false;
    }
    let Some(documents) = desired.placement_documents.checked_sub(old_docs) else {
        return false;
    };
    // Take out every old VM first: a VM may move between changed files.
    for (old, _) in changes {
        for p in old.iter().filter_map(plain) {
            for vm in &p.vms {
                match desired.vms.remove(&vm.spec.name) {
                    Some(kept) if Arc::ptr_eq(&kept, &vm.spec) => {}
                    _ => return false,
                }
            }
        }
    }
    for (_, new) in changes {
        for p in new.iter().filter_map(plain) {
            for host in &p.hosts {
                match desired.hosts.get_mut(&host.name) {
                    Some(slot) => *slot = host.clone(),
                    None => return false,
                }
            }
            for vm in &p.vms {
                let spec = &vm.spec;
                let named = |h: &String| desired.hosts.contains_key(h);
                if (vm.host_at.is_some() && !named(&spec.host))
                    || !spec.fallback.iter().all(named)
                    || vm.fallback_at.len() != spec.fallback.len()
                {
                    return false;
                }
                match desired.vms.entry(spec.name.clone()) {
                    Entry::Vacant(slot) => {
                        slot.insert(spec.clone());
                    }
                    Entry::Occupied(_) => return false,
                }
            }
        }
    }
    desired.placement_documents = documents + new_docs;
    true
}

/// The Placement a part declares, when it is one [`patch`] can take: no
/// problem, status or intent, and every VM pinned to a usable host.
fn plain(part: &Part) -> Option<&PlacementPart> {
    let PartBody::Placement(p) = &part.body else {
        return None;
    };
    let plain = part.local.is_empty()
        && p.status.is_none()
        && p.intent.is_empty()
        && p.vms.iter().all(|vm| vm.usable && vm.choice.is_none());
    plain.then_some(&**p)
}
