//! Room on volumes: storage as a resource, like memory.
//!
//! A VM whose disks lie on a volume of its host copies them when it moves
//! (shared-nothing live migration, `Move-VM -IncludeStorage`). Each volume
//! keeps a ledger of the space it can give: what is free now, plus what each
//! planned move out of it frees when it completes. A move with storage takes
//! its disks' size from its destination volume's ledger and waits (`after`)
//! for every move whose space it takes. No two moves take the same space, so
//! no execution that respects `after` can overcommit a volume, whatever runs
//! in parallel (the simulator, like Hyper-V, reserves the space when a copy
//! starts and gives the source's back when it completes).

use std::collections::{BTreeSet, HashMap};

use crate::provider::{Observed, ObservedHost, ObservedVm};
use crate::spec::{Desired, volume_of};

use super::Caps;
use super::diff::gib;

/// Space a volume can give, and the move that frees it.
#[derive(Debug, Clone)]
struct Room {
    freed_by: Option<u32>,
    mib: u64,
}

/// The ledgers of every volume of every host.
#[derive(Debug, Default)]
pub(super) struct StorageLedger {
    /// Host -> (volume path, its ledger), in the host's order.
    hosts: HashMap<String, Vec<(String, Vec<Room>)>>,
}

impl StorageLedger {
    /// Ledgers holding each volume's free space now.
    pub fn new(observed: &Observed) -> StorageLedger {
        let hosts = observed
            .hosts
            .values()
            .filter(|h| !h.volumes.is_empty())
            .map(|h| {
                let vols = h
                    .volumes
                    .iter()
                    .map(|v| {
                        (
                            v.path.clone(),
                            vec![Room {
                                freed_by: None,
                                mib: v.free_mib,
                            }],
                        )
                    })
                    .collect();
                (h.name.clone(), vols)
            })
            .collect();
        StorageLedger { hosts }
    }

    fn ledger(&self, host: &str, volume: &str) -> Option<&Vec<Room>> {
        self.hosts
            .get(host)?
            .iter()
            .find(|(p, _)| p == volume)
            .map(|(_, l)| l)
    }

    /// Space a volume can give, now or once planned moves free it, MiB.
    pub fn available(&self, host: &str, volume: &str) -> u64 {
        self.ledger(host, volume)
            .map_or(0, |l| l.iter().map(|r| r.mib).sum())
    }

    /// Space free on a volume now, without waiting for any move, MiB.
    pub fn free_now(&self, host: &str, volume: &str) -> u64 {
        self.ledger(host, volume).map_or(0, |l| {
            l.iter()
                .filter(|r| r.freed_by.is_none())
                .map(|r| r.mib)
                .sum()
        })
    }

    /// The volume a VM's disks go to on `host`: the one holding the
    /// declared `storagePath`, else the one with the most space to give.
    pub fn target(&self, host: &str, declared: Option<&str>) -> Option<String> {
        let vols = self.hosts.get(host)?;
        match declared {
            Some(path) => volume_of(path, vols.iter().map(|(p, _)| p.as_str())).map(str::to_string),
            None => vols
                .iter()
                .map(|(p, _)| (p, self.available(host, p)))
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(p, _)| p.clone()),
        }
    }

    /// Takes `mib` from a volume; returns the moves it waits for.
    pub fn take(&mut self, host: &str, volume: &str, mut mib: u64) -> BTreeSet<u32> {
        let mut deps = BTreeSet::new();
        let Some(ledger) = self
            .hosts
            .get_mut(host)
            .and_then(|v| v.iter_mut().find(|(p, _)| p == volume))
            .map(|(_, l)| l)
        else {
            return deps;
        };
        for r in ledger.iter_mut() {
            if mib == 0 {
                break;
            }
            if r.mib == 0 {
                continue;
            }
            let part = r.mib.min(mib);
            r.mib -= part;
            mib -= part;
            if let Some(id) = r.freed_by {
                deps.insert(id);
            }
        }
        ledger.retain(|r| r.mib > 0 || r.freed_by.is_none());
        deps
    }

    /// Records that move `id` frees `mib` on a volume when it completes.
    pub fn freed_by(&mut self, host: &str, volume: &str, mib: u64, id: u32) {
        if mib == 0 {
            return;
        }
        if let Some((_, l)) = self
            .hosts
            .get_mut(host)
            .and_then(|v| v.iter_mut().find(|(p, _)| p == volume))
        {
            l.push(Room {
                freed_by: Some(id),
                mib,
            });
        }
    }
}

/// The folder a VM's files go to on a host: `<storagePath>\<vm>`, or
/// `<volume>\<vm>` when the host declares no `storagePath`.
pub(super) fn storage_folder(declared: Option<&str>, volume: &str, vm: &str) -> String {
    let base = declared.unwrap_or(volume);
    format!("{}\\{vm}", base.trim_end_matches(['\\', '/']))
}

/// The `storagePath` declared for a host, if any.
pub(super) fn declared_path<'a>(desired: &'a Desired, host: &str) -> Option<&'a str> {
    desired
        .hosts
        .get(host)
        .and_then(|h| h.storage_path.as_deref())
}

/// Disks of a VM that travel with it: (volume on its host, MiB) per volume.
pub(super) fn disks_on(vm: &ObservedVm) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for d in &vm.disks {
        let Some(v) = &d.volume else { continue };
        match out.iter_mut().find(|(p, _)| p == v) {
            Some((_, mib)) => *mib += d.size_mib,
            None => out.push((v.clone(), d.size_mib)),
        }
    }
    out
}

/// Why a VM's disks cannot go from `from` to `to`, if they cannot (space
/// aside: the ledger decides that).
pub(super) fn unfit(
    vm: &ObservedVm,
    from: &ObservedHost,
    to: &ObservedHost,
    declared: Option<&str>,
    caps: &Caps,
) -> Option<String> {
    let disks = vm.local_disk_mib();
    if disks == 0 {
        return None;
    }
    for h in [from, to] {
        if caps.storage(&h.name) == 0 {
            return Some(format!(
                "{} copies {} of disks, and storage migration is disabled on {} (its storage-migration limit is 0)",
                vm.name,
                gib(disks),
                h.name
            ));
        }
    }
    if to.volumes.is_empty() {
        return Some(format!(
            "{} copies {} of disks, and {} reports no volume to hold them",
            vm.name,
            gib(disks),
            to.name
        ));
    }
    if let Some(path) = declared
        && volume_of(path, to.volumes.iter().map(|v| v.path.as_str())).is_none()
    {
        let vols: Vec<&str> = to.volumes.iter().map(|v| v.path.as_str()).collect();
        return Some(format!(
            "the storagePath {path} of {} lies on none of its volumes ({})",
            to.name,
            vols.join(", ")
        ));
    }
    None
}

/// Room for disks on a host as the goals stand: the free space of the
/// volume they would go to, less the disks already headed there.
pub(super) fn room(host: &ObservedHost, declared: Option<&str>, planned_mib: u64) -> u64 {
    let free = match declared {
        Some(path) => volume_of(path, host.volumes.iter().map(|v| v.path.as_str()))
            .and_then(|p| host.volumes.iter().find(|v| v.path == p))
            .map_or(0, |v| v.free_mib),
        None => host.volumes.iter().map(|v| v.free_mib).max().unwrap_or(0),
    };
    free.saturating_sub(planned_mib)
}
