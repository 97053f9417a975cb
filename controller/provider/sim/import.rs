//! `berth sim import`: a copy of the real fleet as a simulated world.
//!
//! A change is safest tried on a copy of the estate it will touch. This
//! turns an observation written by `berth observe` (a Placement document
//! with a `status`) into a Fleet document that starts as the observed fleet:
//! the same hosts (memory, migration limit, CPU vendor, switches, migration
//! rate, reachability) and VMs (host, power state, memory, adapters with
//! their switch, VM network, VLAN and extended ACLs). `berth plan` and
//! `berth apply` with `--provider sim:FLEET` then show what a spec would do
//! to the real estate, with no host touched.
//!
//! What an observation cannot say is left at the simulator's quiet
//! defaults: no injected faults (seed 0), no migrations in flight (a VM
//! observed migrating starts on its source host), and a VM observed during
//! a backup gets one backup window from the start of simulated time, as
//! long as the policy's default `backupWait`, so the first moves meet it.

// Fields an observation says nothing about (and fields added to the Fleet
// later) keep their defaults: `..Default::default()` stays on purpose.
#![allow(clippy::needless_update)]

use crate::provider::snapshot::acl_raw;
use crate::provider::{Observed, ObservedVm};
use crate::spec::VmOperation;
use crate::spec::raw::{
    BackupRaw, FaultsRaw, FleetAdapterRaw, FleetDocument, FleetHostRaw, FleetSpecRaw, FleetVmRaw,
    Metadata, Sp,
};

/// The Fleet document of a simulated world that starts as `observed`.
pub fn fleet_document(observed: &Observed) -> FleetDocument {
    let sp = |s: &str| Sp::new(s.to_string());
    let gib = |mib: u64| Sp::new(mib as f64 / 1024.0);
    let hosts = observed
        .hosts
        .values()
        .map(|h| FleetHostRaw {
            name: sp(&h.name),
            memory_gib: gib(h.memory_mib),
            max_migrations: Some(Sp::new(i64::from(h.max_migrations))),
            cpu_vendor: Some(sp(&h.cpu_vendor.to_string())),
            switches: h.switches.iter().map(|s| sp(s)).collect(),
            migration_rate_mibps: h.migration_rate_mibps.map(Sp::new),
            down: (!h.reachable).then_some(true),
            ..FleetHostRaw::default()
        })
        .collect();
    let vms = observed.vms.values().map(vm).collect();
    FleetDocument {
        api_version: sp(crate::spec::API_VERSION),
        kind: sp("Fleet"),
        metadata: Some(Metadata {
            name: Some("imported".to_string()),
        }),
        spec: Sp::new(FleetSpecRaw {
            seed: Some(0),
            faults: Some(FaultsRaw {
                transient_failure_rate: None,
                drop_acls_on_migration: Some(false),
                disconnect_on_offline_move: Some(false),
                over_limit_wait: None,
            }),
            hosts,
            vms,
            ..FleetSpecRaw::default()
        }),
    }
}

fn vm(v: &ObservedVm) -> FleetVmRaw {
    let sp = |s: &str| Sp::new(s.to_string());
    let backups = match v.operation {
        Some(VmOperation::BackingUp) => vec![Sp::new(BackupRaw {
            at: sp("0s"),
            r#for: sp(&crate::spec::format_duration(
                crate::spec::Policy::default().backup_wait,
            )),
        })],
        _ => Vec::new(),
    };
    FleetVmRaw {
        name: sp(&v.name),
        host: sp(&v.host),
        memory_gib: Sp::new(v.memory_mib as f64 / 1024.0),
        state: Some(sp(&v.state.to_string())),
        backups,
        fail_next_migrations: None,
        network_adapters: v
            .adapters
            .iter()
            .map(|a| FleetAdapterRaw {
                name: sp(&a.name),
                switch: a.switch.as_deref().map(sp),
                connected: a.switch.as_ref().map(|_| true),
                vm_network: a.vm_network.as_deref().map(sp),
                vlan_id: a.vlan_id.map(|v| Sp::new(i64::from(v))),
                acls: a.acls.iter().map(|acl| Sp::new(acl_raw(acl))).collect(),
                ..FleetAdapterRaw::default()
            })
            .collect(),
        ..FleetVmRaw::default()
    }
}
