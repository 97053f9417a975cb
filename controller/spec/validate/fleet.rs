//! Checks of Fleet documents (the simulator's world) and of the observed
//! `status` a Placement may carry. Neither needs any other document.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::super::diag::{Diagnostic, Origin, Sink};
use super::super::load::{DocCtx, closest};
use super::super::model::*;
use super::super::raw::*;
use super::DEFAULT_START_TIME;
use super::fields::*;

/// Validates a Fleet document (the simulator's world).
pub(super) fn fleet(ctx: &DocCtx, doc: &FleetDocument, sink: &mut Sink) -> Option<FleetSpec> {
    let before = sink.len();
    let spec = &doc.spec.value;
    let faults_raw = spec.faults.clone().unwrap_or_default();
    let rate = faults_raw.transient_failure_rate.as_ref().map_or(0.0, |r| {
        if !(0.0..=1.0).contains(&r.value) {
            sink.error(
                ctx.at(r),
                format!(
                    "`transientFailureRate` must be between 0 and 1, not {}",
                    r.value
                ),
            );
            0.0
        } else {
            r.value
        }
    });
    let faults = Faults {
        transient_failure_rate: rate,
        drop_acls_on_migration: faults_raw.drop_acls_on_migration.unwrap_or(false),
        disconnect_on_offline_move: faults_raw.disconnect_on_offline_move.unwrap_or(false),
        over_limit_wait: faults_raw
            .over_limit_wait
            .as_ref()
            .and_then(|d| duration(ctx, d, sink))
            .unwrap_or(Duration::from_secs(300)),
    };
    let mut hosts: Vec<FleetHost> = Vec::new();
    let mut host_at: BTreeMap<String, (Origin, usize)> = BTreeMap::new();
    for h in &spec.hosts {
        let Some(hname) = name(ctx, &h.name, "host", sink) else {
            continue;
        };
        if let Some((prev, _)) = host_at.get(&hname) {
            sink.push(
                Diagnostic::new(ctx.at(&h.name), format!("host `{hname}` is declared twice"))
                    .with_related("first declared here", prev.clone()),
            );
            continue;
        }
        let memory_mib = gib_to_mib(ctx, &h.memory_gib, "memoryGiB", sink).unwrap_or(0);
        let max_migrations = h
            .max_migrations
            .as_ref()
            .and_then(|m| int_in(ctx, m, "maxMigrations", 0, 64, sink))
            .unwrap_or(2) as u32;
        let rate =
            positive(ctx, &h.migration_rate_mibps, "migrationRateMiBps", sink).unwrap_or(1000.0);
        let switches = h
            .switches
            .iter()
            .filter_map(|s| name(ctx, s, "switch", sink))
            .collect();
        let max_storage_migrations = h
            .max_storage_migrations
            .as_ref()
            .and_then(|m| int_in(ctx, m, "maxStorageMigrations", 0, 64, sink))
            .unwrap_or(2) as u32;
        let network_mibps = positive(ctx, &h.network_mibps, "networkMiBps", sink);
        let volumes = super::super::storage::volumes(ctx, &hname, &h.volumes, sink);
        host_at.insert(hname.clone(), (ctx.at(&h.name), hosts.len()));
        hosts.push(FleetHost {
            name: hname,
            memory_mib,
            max_migrations,
            cpu_vendor: cpu_vendor(ctx, &h.cpu_vendor, sink),
            switches,
            migration_rate_mibps: rate,
            down: h.down.unwrap_or(false),
            max_storage_migrations,
            network_mibps,
            volumes,
        });
    }
    let largest = hosts.iter().map(|h| h.memory_mib).max().unwrap_or(0);
    // Each VM is checked on its own, on every core for a large world (at
    // 100,000 VMs this was a second's work on one thread of `berth
    // plan`); duplicates are then found in document order, and a
    // duplicate's own problems are not reported, as before.
    let hosts_ref = &hosts;
    let host_at_ref = &host_at;
    let check = |v: &FleetVmRaw| -> (Option<FleetVm>, Vec<Diagnostic>) {
        let mut sink = Sink::default();
        let vm = fleet_vm(ctx, v, hosts_ref, host_at_ref, largest, &mut sink);
        (vm, sink.into_diagnostics())
    };
    let checked: Vec<(Option<FleetVm>, Vec<Diagnostic>)> = on_every_core(&spec.vms, &check);
    let mut vms = Vec::with_capacity(checked.len());
    let mut vm_at: HashMap<String, Origin> = HashMap::new();
    for (v, (vm, problems)) in spec.vms.iter().zip(checked) {
        let Some(vm) = vm else {
            sink.extend(problems);
            continue;
        };
        if let Some(prev) = vm_at.get(&vm.name) {
            sink.push(
                Diagnostic::new(
                    ctx.at(&v.name),
                    format!("VM `{}` is declared twice", vm.name),
                )
                .with_related("first declared here", prev.clone()),
            );
            continue;
        }
        vm_at.insert(vm.name.clone(), ctx.at(&v.name));
        sink.extend(problems);
        vms.push(vm);
    }
    // Running VMs must fit their starting host.
    let mut used: HashMap<&str, u64> = HashMap::new();
    for (vm, raw) in vms.iter().zip(spec.vms.iter()) {
        if vm.state.is_live() {
            *used.entry(vm.host.as_str()).or_default() += vm.memory_mib;
            if let Some((origin, i)) = host_at.get(&vm.host) {
                let total = used[vm.host.as_str()];
                if total > hosts[*i].memory_mib && total - vm.memory_mib <= hosts[*i].memory_mib {
                    sink.push(
                        Diagnostic::new(
                            ctx.at(&raw.name),
                            format!(
                                "running VMs on host `{}` need more memory than it has",
                                vm.host
                            ),
                        )
                        .with_related("the host is declared here", origin.clone()),
                    );
                }
            }
        }
    }
    let start_time = match &spec.start_time {
        None => DEFAULT_START_TIME,
        Some(t) => match t.value.trim().parse::<jiff::Timestamp>() {
            Ok(ts) => ts,
            Err(e) => {
                sink.push(
                    Diagnostic::new(
                        ctx.at(t),
                        format!("`startTime` is not an RFC 3339 instant: {e}"),
                    )
                    .with_help("for example `2026-01-05T22:00:00+01:00` or `2026-01-05T21:00:00Z`"),
                );
                DEFAULT_START_TIME
            }
        },
    };
    if sink.len() != before {
        return None;
    }
    Some(FleetSpec {
        seed: spec.seed.unwrap_or(0),
        start_time,
        faults,
        hosts,
        vms,
        origin: ctx.at(&doc.kind),
    })
}

/// Checks one VM of a Fleet on its own (duplicates aside); `None` when its
/// name is not usable.
fn fleet_vm(
    ctx: &DocCtx,
    v: &FleetVmRaw,
    hosts: &[FleetHost],
    host_at: &BTreeMap<String, (Origin, usize)>,
    largest: u64,
    sink: &mut Sink,
) -> Option<FleetVm> {
    let vname = name(ctx, &v.name, "VM", sink)?;
    let host_idx = match host_at.get(&v.host.value) {
        Some((_, i)) => Some(*i),
        None => {
            let mut d = Diagnostic::new(
                ctx.at(&v.host),
                format!(
                    "VM `{vname}` is on host `{}`, which the fleet does not declare",
                    v.host.value
                ),
            );
            if let Some(best) = closest(&v.host.value, host_at.keys().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            sink.push(d);
            None
        }
    };
    let memory_mib = gib_to_mib(ctx, &v.memory_gib, "memoryGiB", sink).unwrap_or(0);
    if memory_mib > largest && largest > 0 {
        sink.error(
            ctx.at(&v.memory_gib),
            format!(
                "VM `{vname}` needs {} GiB, more than any host has ({} GiB)",
                v.memory_gib.value,
                largest as f64 / 1024.0
            ),
        );
    }
    let state = v
        .state
        .as_ref()
        .map_or(PowerState::Running, |s| power_state(ctx, s, sink));
    let mut backups = Vec::new();
    for b in &v.backups {
        let at = duration(ctx, &b.value.at, sink);
        let len = duration(ctx, &b.value.r#for, sink);
        if let (Some(at), Some(len)) = (at, len) {
            backups.push((at, len));
        }
    }
    let fail_next = v
        .fail_next_migrations
        .as_ref()
        .and_then(|n| int_in(ctx, n, "failNextMigrations", 0, 1_000_000, sink))
        .unwrap_or(0) as u32;
    let mut adapters = Vec::new();
    let mut seen = HashMap::new();
    for a in &v.network_adapters {
        let Some(aname) = name(ctx, &a.name, "adapter", sink) else {
            continue;
        };
        if seen.insert(aname.clone(), ()).is_some() {
            sink.error(
                ctx.at(&a.name),
                format!("adapter `{aname}` of VM `{vname}` is declared twice"),
            );
            continue;
        }
        let switch = a.switch.as_ref().and_then(|s| name(ctx, s, "switch", sink));
        let connected = a.connected.unwrap_or(switch.is_some());
        if connected && switch.is_none() {
            sink.error(
                ctx.at(&a.name),
                format!("adapter `{aname}` is connected but names no switch"),
            );
        }
        if let (Some(sw), Some(i), true) = (&switch, host_idx, connected)
            && !hosts[i].switches.contains(sw)
            && let Some(s) = &a.switch
        {
            sink.error(
                ctx.at(s),
                format!(
                    "adapter `{aname}` is connected to `{sw}`, which host `{}` does not have",
                    hosts[i].name
                ),
            );
        }
        adapters.push(FleetAdapter {
            name: aname,
            switch,
            connected,
            vm_network: a.vm_network.as_ref().map(|n| n.value.clone()),
            vlan_id: a.vlan_id.as_ref().and_then(|v| vlan(ctx, v, sink)),
            acls: acl_list(ctx, &a.acls, sink),
        });
    }
    let disks = super::super::storage::fleet_disks(
        ctx,
        &vname,
        host_idx.map(|i| (hosts[i].name.as_str(), hosts[i].volumes.as_slice())),
        &v.disks,
        sink,
    );
    Some(FleetVm {
        name: vname,
        host: v.host.value.clone(),
        memory_mib,
        state,
        backups,
        fail_next_migrations: fail_next,
        adapters,
        disks,
    })
}

/// Maps `f` over `items` in order, on every core when there are many.
fn on_every_core<T: Sync, U: Send>(items: &[T], f: &(dyn Fn(&T) -> U + Sync)) -> Vec<U> {
    const PER_THREAD: usize = 4096;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 * PER_THREAD {
        return items.iter().map(f).collect();
    }
    let size = items.len().div_ceil(threads).max(PER_THREAD);
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(size)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for part in parts {
            match part.join() {
                Ok(v) => out.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

pub(super) fn fleet_status(ctx: &DocCtx, st: &FleetStatus, sink: &mut Sink) -> FleetStatusSpec {
    let mut out = FleetStatusSpec {
        observed_at: st.observed_at,
        ..Default::default()
    };
    for h in &st.hosts {
        let Some(hname) = name(ctx, &h.name, "host", sink) else {
            continue;
        };
        out.hosts.insert(
            hname,
            HostStatusSpec {
                memory_mib: gib_to_mib(ctx, &h.memory_gib, "memoryGiB", sink).unwrap_or(0),
                max_migrations: int_in(ctx, &h.max_migrations, "maxMigrations", 0, 64, sink)
                    .unwrap_or(0) as u32,
                cpu_vendor: cpu_vendor(ctx, &Some(h.cpu_vendor.clone()), sink),
                switches: h
                    .switches
                    .iter()
                    .filter_map(|s| name(ctx, s, "switch", sink))
                    .collect(),
                migration_rate_mibps: h.migration_rate_mibps.as_ref().map(|r| r.value),
                reachable: h.reachable,
                max_storage_migrations: h
                    .max_storage_migrations
                    .as_ref()
                    .and_then(|m| int_in(ctx, m, "maxStorageMigrations", 0, 64, sink))
                    .unwrap_or(2) as u32,
                network_mibps: h
                    .network_mibps
                    .as_ref()
                    .map(|r| r.value)
                    .filter(|r| r.is_finite() && *r > 0.0),
                volumes: super::super::storage::volumes(ctx, &h.name.value, &h.volumes, sink),
            },
        );
    }
    for v in &st.vms {
        let Some(vname) = name(ctx, &v.name, "VM", sink) else {
            continue;
        };
        let operation = match v.operation.as_ref().map(|o| o.value.as_str()) {
            None => None,
            Some("migrating") => Some(VmOperation::Migrating),
            Some("backingUp") => Some(VmOperation::BackingUp),
            Some(other) => {
                if let Some(o) = &v.operation {
                    sink.push(
                        Diagnostic::new(ctx.at(o), format!("unknown operation `{other}`"))
                            .with_help("expected `migrating` or `backingUp`"),
                    );
                }
                None
            }
        };
        out.vms.insert(
            vname,
            VmStatusSpec {
                state: power_state(ctx, &v.state, sink),
                memory_mib: gib_to_mib(ctx, &v.memory_gib, "memoryGiB", sink).unwrap_or(0),
                operation,
                migrating_to: v.migrating_to.as_ref().map(|m| m.value.clone()),
                disks: super::super::storage::status_disks(ctx, &v.disks, sink),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_keeps_the_order() {
        let items: Vec<usize> = (0..50_000).collect();
        let out = on_every_core(&items, &|i: &usize| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_large_world_reports_each_vms_problem_and_duplicates_in_place() {
        // Large enough for the VMs to be checked on several threads.
        let mut text = String::from(
            "apiVersion: berth/v1\nkind: Fleet\nspec:\n  hosts:\n    - { name: hv01, memoryGiB: 100000 }\n  vms:\n",
        );
        let vms = 20_000;
        for i in 0..vms {
            let host = if i == 15_000 { "hv09" } else { "hv01" };
            text.push_str(&format!(
                "    - {{ name: vm-{i:05}, host: {host}, memoryGiB: 1 }}\n"
            ));
        }
        text.push_str("    - { name: vm-00007, host: hv01, memoryGiB: 1 }\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.yaml");
        std::fs::write(&path, text).expect("write");
        let e = crate::spec::load_fleet(&path)
            .expect_err("an unknown host and a duplicate")
            .to_string();
        // Line 7 holds vm-00000.
        assert!(
            e.contains(&format!("fleet.yaml:{}:", 7 + 15_000))
                && e.contains("`vm-15000` is on host `hv09`"),
            "{e}"
        );
        assert!(
            e.contains(&format!("fleet.yaml:{}:", 7 + vms))
                && e.contains("`vm-00007` is declared twice"),
            "{e}"
        );
    }
}
