//! The JSON `scvmm_observe` returns, and its mapping onto the observed
//! model: VMM's hosts, VMs, adapters, disks and volumes, and the join of
//! VMM's adapters with the hosts' own Hyper-V adapters. Kept apart from the
//! provider so that the fixtures test it without a shell.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::hyperv::{
    DiskJson, HostView, PathsJson, VolumeJson, Volumes, cpu_vendor, is_shared_path,
};
use super::super::json::{boolean, mib, one_or_many, text, uint};
use super::super::{ObservedAdapter, ObservedDisk, ObservedHost, ObservedVm};
use crate::spec::{CpuVendor, PowerState, VmOperation};

// ------------------------------------------------------------ cmdlet JSON

/// What `scvmm_observe` returns.
#[derive(Debug, Default, Deserialize)]
pub struct ScvmmReport {
    /// Get-SCVMHost, projected.
    #[serde(default, deserialize_with = "one_or_many")]
    pub hosts: Vec<ScHostJson>,
    /// Get-SCVirtualMachine, projected, with each VM's adapters.
    #[serde(default, deserialize_with = "one_or_many")]
    pub vms: Vec<ScVmJson>,
}

/// Get-SCVMHost, projected.
#[derive(Debug, Default, Deserialize)]
pub struct ScHostJson {
    /// VMM's name for the host (usually its FQDN).
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// The computer name.
    #[serde(rename = "ComputerName", default, deserialize_with = "text")]
    pub computer_name: Option<String>,
    /// Physical memory, bytes.
    #[serde(rename = "TotalMemory", default, deserialize_with = "uint")]
    pub total_memory: Option<u64>,
    /// Free memory, MB.
    #[serde(rename = "AvailableMemory", default, deserialize_with = "uint")]
    pub available_memory: Option<u64>,
    /// Simultaneous live migrations allowed.
    #[serde(rename = "LiveMigrationMaximum", default, deserialize_with = "uint")]
    pub live_migration_maximum: Option<u64>,
    /// `GenuineIntel`, `AuthenticAMD`.
    #[serde(rename = "ProcessorManufacturer", default, deserialize_with = "text")]
    pub processor_manufacturer: Option<String>,
    /// `OK`, `NeedsAttention`, `NotResponding`, ...
    #[serde(rename = "OverallState", default, deserialize_with = "text")]
    pub overall_state: Option<String>,
    /// `Responding`, `NotResponding`, `AccessDenied`, ...
    #[serde(rename = "CommunicationState", default, deserialize_with = "text")]
    pub communication_state: Option<String>,
    /// Host virtual switches (Get-SCVirtualNetwork).
    #[serde(rename = "VirtualSwitches", default, deserialize_with = "one_or_many")]
    pub virtual_switches: Vec<String>,
    /// Simultaneous storage migrations allowed.
    #[serde(
        rename = "LiveStorageMigrationMaximum",
        default,
        deserialize_with = "uint"
    )]
    pub live_storage_migration_maximum: Option<u64>,
    /// The host cluster's name (empty for a standalone host).
    #[serde(rename = "HostCluster", default, deserialize_with = "text")]
    pub host_cluster: Option<String>,
    /// Placement paths for VM files.
    #[serde(rename = "VMPaths", default, deserialize_with = "one_or_many")]
    pub vm_paths: Vec<String>,
    /// The host's volumes.
    #[serde(rename = "DiskVolumes", default, deserialize_with = "one_or_many")]
    pub disk_volumes: Vec<ScVolumeJson>,
}

/// A host volume as VMM reports it (the host's `DiskVolumes`).
#[derive(Debug, Default, Deserialize)]
pub struct ScVolumeJson {
    /// Mount point (`D:\`, `C:\ClusterStorage\Volume1`).
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Free bytes.
    #[serde(rename = "FreeSpace", default, deserialize_with = "uint")]
    pub free_space: Option<u64>,
    /// Size, bytes.
    #[serde(rename = "Capacity", default, deserialize_with = "uint")]
    pub capacity: Option<u64>,
    /// A cluster shared volume.
    #[serde(
        rename = "IsClusterSharedVolume",
        default,
        deserialize_with = "boolean"
    )]
    pub is_cluster_shared_volume: Option<bool>,
}

/// Get-SCVirtualHardDisk, projected.
#[derive(Debug, Default, Deserialize)]
pub struct ScDiskJson {
    /// The disk file.
    #[serde(rename = "Location", default, deserialize_with = "text")]
    pub location: Option<String>,
    /// Bytes the file takes now.
    #[serde(rename = "Size", default, deserialize_with = "uint")]
    pub size: Option<u64>,
    /// Capacity, bytes.
    #[serde(rename = "MaximumSize", default, deserialize_with = "uint")]
    pub maximum_size: Option<u64>,
    /// `DynamicallyExpanding`, `FixedSize`, `Differencing`.
    #[serde(rename = "VHDType", default, deserialize_with = "text")]
    pub vhd_type: Option<String>,
}

/// Get-SCVirtualMachine, projected.
#[derive(Debug, Default, Deserialize)]
pub struct ScVmJson {
    /// VM name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// VMM's id.
    #[serde(rename = "ID", default, deserialize_with = "text")]
    pub id: Option<String>,
    /// Hyper-V's VM GUID.
    #[serde(rename = "VMId", default, deserialize_with = "text")]
    pub vm_id: Option<String>,
    /// The host (VMM's name for it).
    #[serde(rename = "HostName", default, deserialize_with = "text")]
    pub host_name: Option<String>,
    /// `Running`, `PowerOff`, `UnderMigration`, `MigrationFailed`, ...
    #[serde(rename = "Status", default, deserialize_with = "text")]
    pub status: Option<String>,
    /// `Running`, `PowerOff`, `Saved`, `Paused`.
    #[serde(rename = "VirtualMachineState", default, deserialize_with = "text")]
    pub virtual_machine_state: Option<String>,
    /// Startup memory, MB.
    #[serde(rename = "Memory", default, deserialize_with = "uint")]
    pub memory: Option<u64>,
    /// Memory in use, MB.
    #[serde(rename = "MemoryAssignedMB", default, deserialize_with = "uint")]
    pub memory_assigned_mb: Option<u64>,
    /// Highly available (clustered).
    #[serde(rename = "IsHighlyAvailable", default, deserialize_with = "boolean")]
    pub is_highly_available: Option<bool>,
    /// Its host's cluster.
    #[serde(rename = "HostCluster", default, deserialize_with = "text")]
    pub host_cluster: Option<String>,
    /// Its virtual hard disks.
    #[serde(rename = "VirtualHardDisks", default, deserialize_with = "one_or_many")]
    pub virtual_hard_disks: Vec<ScDiskJson>,
    /// The VM's most recent VMM job.
    #[serde(rename = "MostRecentTaskId", default, deserialize_with = "text")]
    pub most_recent_task_id: Option<String>,
    /// Its status.
    #[serde(rename = "MostRecentTaskStatus", default, deserialize_with = "text")]
    pub most_recent_task_status: Option<String>,
    /// Its virtual network adapters.
    #[serde(rename = "Adapters", default, deserialize_with = "one_or_many")]
    pub adapters: Vec<ScAdapterJson>,
}

/// Get-SCVirtualNetworkAdapter, projected.
#[derive(Debug, Default, Deserialize)]
pub struct ScAdapterJson {
    /// VMM's id.
    #[serde(rename = "ID", default, deserialize_with = "text")]
    pub id: Option<String>,
    /// The adapter's name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Hyper-V's id of the adapter (`Microsoft:<vm guid>\<guid>`), when
    /// VMM reports it.
    #[serde(rename = "DeviceID", default, deserialize_with = "text")]
    pub device_id: Option<String>,
    /// MAC address (`00:15:5D:01:02:03`).
    #[serde(rename = "MACAddress", default, deserialize_with = "text")]
    pub mac_address: Option<String>,
    /// Slot.
    #[serde(rename = "SlotId", default, deserialize_with = "uint")]
    pub slot_id: Option<u64>,
    /// Host virtual switch.
    #[serde(rename = "VirtualNetwork", default, deserialize_with = "text")]
    pub virtual_network: Option<String>,
    /// VM network.
    #[serde(rename = "VMNetwork", default, deserialize_with = "text")]
    pub vm_network: Option<String>,
    /// Whether the VLAN is set.
    #[serde(rename = "VLanEnabled", default, deserialize_with = "boolean")]
    pub vlan_enabled: Option<bool>,
    /// The VLAN.
    #[serde(rename = "VLanID", default, deserialize_with = "uint")]
    pub vlan_id: Option<u64>,
}

/// `scvmm_job`'s answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScJobJson {
    /// `Running`, `Completed`, `SucceedWithInfo`, `Failed`, `Canceled`, `Missing`, ...
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    /// VMM's error code.
    #[serde(default, deserialize_with = "text")]
    pub error_code: Option<String>,
    /// What went wrong.
    #[serde(default, deserialize_with = "text")]
    pub problem: Option<String>,
    /// What VMM recommends.
    #[serde(default, deserialize_with = "text")]
    pub recommended_action: Option<String>,
    /// Whether a MigrationFailed state was dismissed.
    #[serde(default, deserialize_with = "boolean")]
    pub dismissed: Option<bool>,
}

// ------------------------------------------------------------ mapping

/// A VMM adapter, for the calls that change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScAdapter {
    /// VMM's id.
    pub id: String,
    /// The adapter's name, as VMM reports it.
    pub name: Option<String>,
    /// Hyper-V's id of the adapter, when VMM reports it.
    pub device_id: Option<String>,
    /// MAC address, normalised (upper-case hex digits only).
    pub mac: String,
    /// Host virtual switch.
    pub switch: Option<String>,
    /// VM network.
    pub vm_network: Option<String>,
    /// VLAN.
    pub vlan_id: Option<u16>,
}

/// One VMM VM.
#[derive(Debug, Clone, PartialEq)]
pub struct ScVm {
    /// The VM as VMM sees it (adapters filled in by [`join`]).
    pub vm: ObservedVm,
    /// Hyper-V's GUID.
    pub vm_id: Option<String>,
    /// VMM's name for its host (what host-side calls address).
    pub host_address: String,
    /// Its VMM adapters.
    pub adapters: Vec<ScAdapter>,
}

/// `scvmm_observe`'s output mapped onto the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScvmmView {
    /// Hosts with VMM's name for each (the address of host-side calls).
    pub hosts: Vec<(ObservedHost, String)>,
    /// VMs.
    pub vms: Vec<ScVm>,
}

/// Upper-case hex digits only: `00:15:5d:01:02:03` → `00155D010203`.
pub fn normalise_mac(mac: &str) -> String {
    mac.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The name berth uses for a VMM host: its computer name, else the first
/// label of VMM's name.
pub fn host_label(name: Option<&str>, computer_name: Option<&str>) -> Option<String> {
    computer_name
        .filter(|c| !c.trim().is_empty())
        .map(str::to_string)
        .or_else(|| name.map(|n| n.split('.').next().unwrap_or(n).to_string()))
}

fn sc_state(vm: &ScVmJson) -> PowerState {
    let pick = |s: &str| match s.to_ascii_lowercase().as_str() {
        "running" => Some(PowerState::Running),
        "poweroff" | "stopped" | "off" => Some(PowerState::Off),
        "saved" => Some(PowerState::Saved),
        "paused" => Some(PowerState::Paused),
        _ => None,
    };
    vm.virtual_machine_state
        .as_deref()
        .and_then(pick)
        .or_else(|| vm.status.as_deref().and_then(pick))
        .unwrap_or(PowerState::Running)
}

/// Maps `scvmm_observe`'s output onto the model.
pub fn parse_scvmm_report(value: &Value) -> Result<ScvmmView, String> {
    let report: ScvmmReport = serde_json::from_value(value.clone())
        .map_err(|e| format!("unexpected output from scvmm_observe: {e}"))?;
    let mut view = ScvmmView::default();
    let mut labels: HashMap<String, String> = HashMap::new();
    // Each host's volumes, to place its VMs' disks on.
    let mut host_volumes: HashMap<String, Volumes> = HashMap::new();
    for h in &report.hosts {
        let Some(label) = host_label(h.name.as_deref(), h.computer_name.as_deref()) else {
            return Err("a VMM host without a name".into());
        };
        let address = h.name.clone().unwrap_or_else(|| label.clone());
        labels.insert(address.to_ascii_lowercase(), label.clone());
        let volumes = sc_volumes(h, &report.vms, &address);
        let cluster = h.host_cluster.clone().filter(|c| !c.trim().is_empty());

        let responding = h
            .communication_state
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("Responding"));
        let not_responding = h
            .overall_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("NotResponding"));
        view.hosts.push((
            ObservedHost {
                name: label,
                memory_mib: h.total_memory.map_or(0, mib),
                max_migrations: h
                    .live_migration_maximum
                    .map_or(2, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                cpu_vendor: h
                    .processor_manufacturer
                    .as_deref()
                    .map_or(CpuVendor::Intel, cpu_vendor),
                switches: h.virtual_switches.clone(),
                migration_rate_mibps: None,
                reachable: responding && !not_responding,
                max_storage_migrations: h
                    .live_storage_migration_maximum
                    .map_or(2, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                network_mibps: None,
                volumes: volumes.observed.clone(),
                cluster,
            },
            address.clone(),
        ));
        host_volumes.insert(address.to_ascii_lowercase(), volumes);
    }
    for (i, vm) in report.vms.iter().enumerate() {
        let Some(name) = vm.name.clone() else {
            return Err(format!("VMM VM #{} has no name", i + 1));
        };
        let address = vm.host_name.clone().unwrap_or_default();
        let host = labels
            .get(&address.to_ascii_lowercase())
            .cloned()
            .or_else(|| host_label(Some(&address), None))
            .unwrap_or_default();
        let memory_mb = match (vm.memory_assigned_mb, vm.memory) {
            (Some(a), _) if a > 0 => a,
            (_, Some(m)) => m,
            _ => 0,
        };
        let migrating = vm
            .status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("UnderMigration"));
        let adapters = vm
            .adapters
            .iter()
            .map(|a| ScAdapter {
                id: a.id.clone().unwrap_or_default(),
                name: a.name.clone(),
                device_id: a.device_id.clone(),
                mac: a
                    .mac_address
                    .as_deref()
                    .map(normalise_mac)
                    .unwrap_or_default(),
                switch: a.virtual_network.clone(),
                vm_network: a.vm_network.clone(),
                vlan_id: a
                    .vlan_id
                    .filter(|v| a.vlan_enabled == Some(true) && *v > 0)
                    .and_then(|v| u16::try_from(v).ok()),
            })
            .collect();
        view.vms.push(ScVm {
            vm: ObservedVm {
                name,
                host,
                state: sc_state(vm),
                // VMM reports MB (MiB).
                memory_mib: memory_mb,
                operation: migrating.then_some(VmOperation::Migrating),
                migrating_to: None,
                job: None,
                disks: {
                    let on = host_volumes.get(&address.to_ascii_lowercase());
                    vm.virtual_hard_disks
                        .iter()
                        .filter_map(|d| {
                            let path = d
                                .location
                                .as_deref()
                                .map(str::trim)
                                .filter(|p| !p.is_empty())?;
                            Some(ObservedDisk {
                                path: path.to_string(),
                                size_mib: sc_disk_mib(d),
                                volume: match on {
                                    Some(v) => v.of(path),
                                    None if is_shared_path(path) => None,
                                    None => Volumes::new(&[], &[], &[]).of(path),
                                },
                            })
                        })
                        .collect()
                },
                clustered: vm.is_highly_available == Some(true),
                adapters: Vec::new(),
            },
            vm_id: vm.vm_id.clone(),
            host_address: address,
            adapters,
        });
    }
    Ok(view)
}

/// A VMM host's volumes: those under its placement paths and those
/// holding a disk of one of its VMs; cluster shared volumes are shared
/// storage and never listed.
fn sc_volumes(h: &ScHostJson, vms: &[ScVmJson], address: &str) -> Volumes {
    let volumes: Vec<VolumeJson> = h
        .disk_volumes
        .iter()
        .filter(|v| v.is_cluster_shared_volume != Some(true))
        .map(|v| VolumeJson {
            name: v.name.clone(),
            free_space: v.free_space,
            capacity: v.capacity,
        })
        .collect();
    let paths: Vec<PathsJson> = h
        .vm_paths
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| PathsJson {
            virtual_machine_path: None,
            virtual_hard_disk_path: Some(p.clone()),
        })
        .collect();
    let disks: Vec<DiskJson> = vms
        .iter()
        .filter(|vm| {
            vm.host_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(address))
        })
        .flat_map(|vm| &vm.virtual_hard_disks)
        .map(|d| DiskJson {
            path: d.location.clone(),
            ..DiskJson::default()
        })
        .collect();
    Volumes::new(&volumes, &paths, &disks)
}

/// The space a VMM virtual hard disk takes: its file's `Size` (a fixed
/// disk's file is its `MaximumSize`).
pub fn sc_disk_mib(d: &ScDiskJson) -> u64 {
    let fixed = d
        .vhd_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("FixedSize") || t.eq_ignore_ascii_case("Fixed"));
    let bytes = if fixed {
        d.maximum_size.or(d.size)
    } else {
        d.size.or(d.maximum_size)
    };
    bytes.map_or(0, super::super::json::mib_ceil)
}

/// The VMM adapter that is Hyper-V's adapter `adapter` of VM `vm`: by
/// Hyper-V's adapter id when VMM reports it, else by name when the name is
/// unique on both sides, else by MAC address when it is unique on both
/// sides and not all zeros (a dynamic MAC is all zeros until the VM first
/// starts, so never-started VMs share it).
pub fn match_adapter<'a>(
    adapters: &'a [ScAdapter],
    host: &HostView,
    vm: &str,
    adapter: &str,
) -> Option<&'a ScAdapter> {
    let hv_id = host
        .adapter_ids
        .iter()
        .find(|(v, n, _)| v == vm && n == adapter)
        .map(|(_, _, id)| id.as_str());
    if let Some(id) = hv_id
        && let Some(found) = adapters.iter().find(|s| {
            s.device_id
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(id))
        })
    {
        return Some(found);
    }
    // An adapter VMM ties to another Hyper-V adapter by id is not a
    // candidate for a match by name or MAC.
    let free: Vec<&ScAdapter> = adapters
        .iter()
        .filter(|s| {
            s.device_id
                .as_deref()
                .is_none_or(|d| hv_id.is_some_and(|id| d.eq_ignore_ascii_case(id)))
        })
        .collect();
    let hv_named = host
        .vms
        .iter()
        .filter(|v| v.name == vm)
        .flat_map(|v| &v.adapters)
        .filter(|a| a.name == adapter)
        .count();
    let sc_named: Vec<&ScAdapter> = free
        .iter()
        .copied()
        .filter(|s| s.name.as_deref() == Some(adapter))
        .collect();
    if sc_named.len() == 1 && hv_named == 1 {
        return Some(sc_named[0]);
    }
    let mac = host
        .macs
        .iter()
        .find(|(v, n, _)| v == vm && n == adapter)
        .map(|(_, _, m)| normalise_mac(m))
        .filter(|m| !m.is_empty() && m.chars().any(|c| c != '0'))?;
    let hv_same = host
        .macs
        .iter()
        .filter(|(v, _, m)| v == vm && normalise_mac(m) == mac)
        .count();
    let sc_same: Vec<&ScAdapter> = free.iter().copied().filter(|s| s.mac == mac).collect();
    (hv_same == 1 && sc_same.len() == 1).then(|| sc_same[0])
}

/// Completes a VMM VM with what its host reports: adapter names, extended
/// ACLs and backups from Hyper-V, VM networks from VMM (joined by MAC).
/// Returns the adapters' VMM ids by adapter name.
pub fn join(vm: &mut ScVm, host: Option<&HostView>) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    let Some(host) = host else {
        return ids;
    };
    let by_id = |v: &&ObservedVm| {
        vm.vm_id.as_ref().is_some_and(|id| {
            host.vm_ids
                .get(&id.to_ascii_lowercase())
                .is_some_and(|n| *n == v.name)
        })
    };
    let Some(hv) = host
        .vms
        .iter()
        .find(by_id)
        .or_else(|| host.vms.iter().find(|v| v.name == vm.vm.name))
    else {
        return ids;
    };
    if vm.vm.operation.is_none() {
        vm.vm.operation = hv.operation;
    }
    vm.vm.adapters = hv
        .adapters
        .iter()
        .map(|a| {
            let sc = match_adapter(&vm.adapters, host, &hv.name, &a.name);
            if let Some(sc) = sc {
                ids.push((a.name.clone(), sc.id.clone()));
            }
            ObservedAdapter {
                name: a.name.clone(),
                switch: a.switch.clone(),
                vm_network: sc.and_then(|s| s.vm_network.clone()),
                vlan_id: a.vlan_id.or(sc.and_then(|s| s.vlan_id)),
                acls: a.acls.clone(),
            }
        })
        .collect();
    ids
}
