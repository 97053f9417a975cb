//! The JSON `hv_observe` returns, and its mapping onto the observed model.
//!
//! Each cmdlet's output arrives as `ConvertTo-Json` wrote it (one object or
//! a list, `null` for none, enumerations as numbers in Windows PowerShell
//! 5.1 and PowerShell 7 alike); the readers of [`super::super::json`] accept
//! every shape, and the functions here give it meaning. Kept apart from the
//! provider so that the fixtures test it without a shell.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::json::{EnumValue, boolean, enum_value, mib, one_or_many, text, uint};
use super::super::{ObservedAdapter, ObservedHost, ObservedVm};
use super::storage::{Volumes, observed_disk};
use crate::spec::{
    Acl, AclAction, AddressMatch, CpuVendor, Direction, PortMatch, PowerState, ProtocolMatch,
    VmOperation,
};

// ------------------------------------------------------------ cmdlet JSON

/// What `hv_observe` returns: each cmdlet's output as `ConvertTo-Json`
/// wrote it (one object or a list, `null` for none).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostReport {
    /// Get-VMHost (absent when one VM was asked for).
    #[serde(default, deserialize_with = "one_or_many")]
    pub vm_host: Vec<VmHostJson>,
    /// The first Win32_Processor.
    #[serde(default, deserialize_with = "one_or_many")]
    pub processor: Vec<ProcessorJson>,
    /// Get-VMSwitch.
    #[serde(default, deserialize_with = "one_or_many")]
    pub switches: Vec<SwitchJson>,
    /// Get-VM.
    #[serde(default, deserialize_with = "one_or_many")]
    pub vms: Vec<VmJson>,
    /// Get-VMNetworkAdapter.
    #[serde(default, deserialize_with = "one_or_many")]
    pub adapters: Vec<AdapterJson>,
    /// Get-VMNetworkAdapterVlan.
    #[serde(default, deserialize_with = "one_or_many")]
    pub vlans: Vec<VlanJson>,
    /// Get-VMNetworkAdapterExtendedAcl.
    #[serde(default, deserialize_with = "one_or_many")]
    pub acls: Vec<AclJson>,
    /// Msvm_MigrationJob.
    #[serde(default, deserialize_with = "one_or_many")]
    pub migrations: Vec<MigrationJson>,
    /// Get-VMHost's default folders for VM files.
    #[serde(default, deserialize_with = "one_or_many")]
    pub paths: Vec<PathsJson>,
    /// Win32_OperatingSystem (absent from older scripts' output).
    #[serde(default, deserialize_with = "one_or_many")]
    pub os: Vec<OsJson>,
    /// MSCluster_Cluster: the failover cluster the host is a node of.
    #[serde(default, deserialize_with = "one_or_many")]
    pub cluster: Vec<ClusterJson>,
    /// Get-VMHardDiskDrive joined with Get-VHD.
    #[serde(default, deserialize_with = "one_or_many")]
    pub disks: Vec<DiskJson>,
    /// Win32_Volume, local volumes only.
    #[serde(default, deserialize_with = "one_or_many")]
    pub volumes: Vec<VolumeJson>,
    /// MSCluster_ResourceGroup of the virtual machines' roles.
    #[serde(default, deserialize_with = "one_or_many")]
    pub groups: Vec<GroupJson>,
}

/// Get-VMHost's folders, projected.
#[derive(Debug, Default, Deserialize)]
pub struct PathsJson {
    /// Default folder of VM configuration files.
    #[serde(rename = "VirtualMachinePath", default, deserialize_with = "text")]
    pub virtual_machine_path: Option<String>,
    /// Default folder of virtual hard disks.
    #[serde(rename = "VirtualHardDiskPath", default, deserialize_with = "text")]
    pub virtual_hard_disk_path: Option<String>,
}

/// Win32_OperatingSystem, projected.
#[derive(Debug, Default, Deserialize)]
pub struct OsJson {
    /// `10.0.20348`, `6.3.9600`.
    #[serde(rename = "Version", default, deserialize_with = "text")]
    pub version: Option<String>,
    /// `20348`, `9600`.
    #[serde(rename = "BuildNumber", default, deserialize_with = "uint")]
    pub build_number: Option<u64>,
}

/// MSCluster_Cluster, projected.
#[derive(Debug, Default, Deserialize)]
pub struct ClusterJson {
    /// The cluster's name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
}

/// One Get-VMHardDiskDrive with its Get-VHD.
#[derive(Debug, Default, Deserialize)]
pub struct DiskJson {
    /// The VM's GUID.
    #[serde(rename = "VMId", default, deserialize_with = "text")]
    pub vm_id: Option<String>,
    /// The VM's name.
    #[serde(rename = "VMName", default, deserialize_with = "text")]
    pub vm_name: Option<String>,
    /// The disk file (empty for a pass-through disk).
    #[serde(rename = "Path", default, deserialize_with = "text")]
    pub path: Option<String>,
    /// VhdType: Fixed 2, Dynamic 3, Differencing 4.
    #[serde(rename = "VhdType", default, deserialize_with = "enum_value")]
    pub vhd_type: Option<EnumValue>,
    /// Bytes the file takes.
    #[serde(rename = "FileSize", default, deserialize_with = "uint")]
    pub file_size: Option<u64>,
    /// Capacity, bytes.
    #[serde(rename = "Size", default, deserialize_with = "uint")]
    pub size: Option<u64>,
}

/// Win32_Volume, projected.
#[derive(Debug, Default, Deserialize)]
pub struct VolumeJson {
    /// Mount point: `D:\`, `C:\ClusterStorage\Volume1\`, `\\?\Volume{...}\`.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Free bytes.
    #[serde(rename = "FreeSpace", default, deserialize_with = "uint")]
    pub free_space: Option<u64>,
    /// Size, bytes.
    #[serde(rename = "Capacity", default, deserialize_with = "uint")]
    pub capacity: Option<u64>,
}

/// MSCluster_ResourceGroup, projected.
#[derive(Debug, Default, Deserialize)]
pub struct GroupJson {
    /// The role's name (a VM's role is named after the VM).
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Unknown -1, Online 0, Offline 1, Failed 2, PartialOnline 3, Pending 4.
    #[serde(rename = "State", default, deserialize_with = "enum_value")]
    pub state: Option<EnumValue>,
    /// The node that owns it.
    #[serde(rename = "OwnerNode", default, deserialize_with = "text")]
    pub owner_node: Option<String>,
}

/// Get-VMHost, projected.
#[derive(Debug, Default, Deserialize)]
pub struct VmHostJson {
    /// Host name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Physical memory, bytes.
    #[serde(rename = "MemoryCapacity", default, deserialize_with = "uint")]
    pub memory_capacity: Option<u64>,
    /// Simultaneous live migrations allowed.
    #[serde(
        rename = "MaximumVirtualMachineMigrations",
        default,
        deserialize_with = "uint"
    )]
    pub maximum_virtual_machine_migrations: Option<u64>,
    /// Simultaneous storage migrations allowed (moves that copy disks).
    #[serde(
        rename = "MaximumStorageMigrations",
        default,
        deserialize_with = "uint"
    )]
    pub maximum_storage_migrations: Option<u64>,
    /// Whether live migration is enabled (Enable-VMMigration).
    #[serde(
        rename = "VirtualMachineMigrationEnabled",
        default,
        deserialize_with = "boolean"
    )]
    pub virtual_machine_migration_enabled: Option<bool>,
}

/// Win32_Processor, projected.
#[derive(Debug, Default, Deserialize)]
pub struct ProcessorJson {
    /// `GenuineIntel`, `AuthenticAMD`.
    #[serde(rename = "Manufacturer", default, deserialize_with = "text")]
    pub manufacturer: Option<String>,
}

/// Get-VMSwitch, projected.
#[derive(Debug, Default, Deserialize)]
pub struct SwitchJson {
    /// Switch name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
}

/// Get-VM, projected.
#[derive(Debug, Default, Deserialize)]
pub struct VmJson {
    /// VM name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// VM GUID.
    #[serde(rename = "Id", default, deserialize_with = "text")]
    pub id: Option<String>,
    /// VMState (a number whose meaning depends on the Windows version).
    #[serde(rename = "State", default, deserialize_with = "enum_value")]
    pub state: Option<EnumValue>,
    /// VMState's name (`[string]$_.State`), unambiguous on every version.
    #[serde(rename = "StateName", default, deserialize_with = "enum_value")]
    pub state_name: Option<EnumValue>,
    /// Memory in use, bytes (0 when off).
    #[serde(rename = "MemoryAssigned", default, deserialize_with = "uint")]
    pub memory_assigned: Option<u64>,
    /// Startup memory, bytes.
    #[serde(rename = "MemoryStartup", default, deserialize_with = "uint")]
    pub memory_startup: Option<u64>,
    /// VMOperationalStatus.
    #[serde(
        rename = "PrimaryOperationalStatus",
        default,
        deserialize_with = "enum_value"
    )]
    pub primary_operational_status: Option<EnumValue>,
    /// VMOperationalStatus.
    #[serde(
        rename = "SecondaryOperationalStatus",
        default,
        deserialize_with = "enum_value"
    )]
    pub secondary_operational_status: Option<EnumValue>,
    /// A failover-cluster role.
    #[serde(rename = "IsClustered", default, deserialize_with = "boolean")]
    pub is_clustered: Option<bool>,
}

/// Get-VMNetworkAdapter, projected.
#[derive(Debug, Default, Deserialize)]
pub struct AdapterJson {
    /// Adapter name.
    #[serde(rename = "Name", default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Adapter id (`Microsoft:<vm guid>\<guid>`).
    #[serde(rename = "Id", default, deserialize_with = "text")]
    pub id: Option<String>,
    /// Owning VM's name.
    #[serde(rename = "VMName", default, deserialize_with = "text")]
    pub vm_name: Option<String>,
    /// Owning VM's GUID.
    #[serde(rename = "VMId", default, deserialize_with = "text")]
    pub vm_id: Option<String>,
    /// Connected switch, `null` when not connected.
    #[serde(rename = "SwitchName", default, deserialize_with = "text")]
    pub switch_name: Option<String>,
    /// Whether connected (newer hosts).
    #[serde(rename = "Connected", default, deserialize_with = "boolean")]
    pub connected: Option<bool>,
    /// MAC address (`00155D010203`).
    #[serde(rename = "MacAddress", default, deserialize_with = "text")]
    pub mac_address: Option<String>,
}

/// Get-VMNetworkAdapterVlan, projected.
#[derive(Debug, Default, Deserialize)]
pub struct VlanJson {
    /// VMNetworkAdapterVlanMode: Untagged 0, Access 1, Trunk 2, Private 3.
    #[serde(rename = "OperationMode", default, deserialize_with = "enum_value")]
    pub operation_mode: Option<EnumValue>,
    /// Access VLAN.
    #[serde(rename = "AccessVlanId", default, deserialize_with = "uint")]
    pub access_vlan_id: Option<u64>,
    /// The adapter's id.
    #[serde(rename = "AdapterId", default, deserialize_with = "text")]
    pub adapter_id: Option<String>,
}

/// Get-VMNetworkAdapterExtendedAcl, projected.
#[derive(Debug, Default, Deserialize)]
pub struct AclJson {
    /// VMNetworkAdapterExtendedAclDirection: Inbound 1, Outbound 2 (a rule
    /// that applies both ways is listed once per direction).
    #[serde(rename = "Direction", default, deserialize_with = "enum_value")]
    pub direction: Option<EnumValue>,
    /// Allow 1, Deny 2.
    #[serde(rename = "Action", default, deserialize_with = "enum_value")]
    pub action: Option<EnumValue>,
    /// Local address or network.
    #[serde(rename = "LocalIPAddress", default, deserialize_with = "text")]
    pub local_ip_address: Option<String>,
    /// Remote address or network.
    #[serde(rename = "RemoteIPAddress", default, deserialize_with = "text")]
    pub remote_ip_address: Option<String>,
    /// Local port or range.
    #[serde(rename = "LocalPort", default, deserialize_with = "text")]
    pub local_port: Option<String>,
    /// Remote port or range.
    #[serde(rename = "RemotePort", default, deserialize_with = "text")]
    pub remote_port: Option<String>,
    /// `TCP`, `UDP`, `ICMPv4`, `ICMPv6` or a number.
    #[serde(rename = "Protocol", default, deserialize_with = "text")]
    pub protocol: Option<String>,
    /// Weight.
    #[serde(rename = "Weight", default, deserialize_with = "uint")]
    pub weight: Option<u64>,
    /// Stateful.
    #[serde(rename = "Stateful", default, deserialize_with = "boolean")]
    pub stateful: Option<bool>,
    /// Idle timeout of a stateful rule, seconds.
    #[serde(rename = "IdleSessionTimeout", default, deserialize_with = "uint")]
    pub idle_session_timeout: Option<u64>,
    /// Isolation id.
    #[serde(rename = "IsolationID", default, deserialize_with = "uint")]
    pub isolation_id: Option<u64>,
    /// The adapter's id.
    #[serde(rename = "AdapterId", default, deserialize_with = "text")]
    pub adapter_id: Option<String>,
}

/// Msvm_MigrationJob, projected.
#[derive(Debug, Default, Deserialize)]
pub struct MigrationJson {
    /// CIM JobState: New 2, Starting 3, Running 4, Suspended 5,
    /// Shutting Down 6, Completed 7, Terminated 8, Killed 9, Exception 10,
    /// Service 11, Query Pending 12.
    #[serde(rename = "JobState", default, deserialize_with = "enum_value")]
    pub job_state: Option<EnumValue>,
    /// The VM's GUID.
    #[serde(rename = "VirtualSystemName", default, deserialize_with = "text")]
    pub virtual_system_name: Option<String>,
    /// Where it goes.
    #[serde(rename = "DestinationHost", default, deserialize_with = "text")]
    pub destination_host: Option<String>,
    /// VirtualSystem 32768, Storage 32769, Staged 32770, VirtualSystemAndStorage 32771.
    #[serde(rename = "MigrationType", default, deserialize_with = "enum_value")]
    pub migration_type: Option<EnumValue>,
}

// ------------------------------------------------------------ mapping

/// One host's report mapped onto the observed model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostView {
    /// The host (absent when only one VM was asked for).
    pub host: Option<ObservedHost>,
    /// Its VMs, `host` set to the name the report was asked under.
    pub vms: Vec<ObservedVm>,
    /// VM GUID (lowercase) → VM name.
    pub vm_ids: HashMap<String, String>,
    /// Clustered VMs by name.
    pub clustered: Vec<String>,
    /// Live migrations leaving this host: (VM name, destination as reported).
    pub outgoing: Vec<(String, String)>,
    /// (VM name, adapter name, MAC address as reported) of every adapter.
    pub macs: Vec<(String, String, String)>,
    /// (VM name, adapter name, Hyper-V adapter id) of every adapter.
    pub adapter_ids: Vec<(String, String, String)>,
    /// The failover cluster the host is a node of.
    pub cluster: Option<String>,
    /// Cluster roles of VMs on this host's cluster.
    pub groups: Vec<ClusterGroup>,
}

/// A VM's cluster role as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterGroup {
    /// The role's name.
    pub name: String,
    /// Whether the cluster is bringing it on- or offline, or moving it
    /// (state Pending): a move the cluster has started or queued.
    pub pending: bool,
    /// The node that owns it.
    pub owner: Option<String>,
}

/// The VMState numbering a host uses: Windows Server 2012 R2 and earlier
/// number the critical states from 32781; Windows Server 2016 inserted four
/// states there and numbers them from 32785.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateNumbering {
    /// Windows Server 2016 and later (build 10240 and up).
    #[default]
    Current,
    /// Windows Server 2012 R2 and earlier (build 9600 and below).
    Legacy,
}

impl StateNumbering {
    /// The numbering of a Windows build (`None`: unknown, the current one).
    pub fn of_build(build: Option<u64>) -> StateNumbering {
        match build {
            Some(b) if b < 10_000 => StateNumbering::Legacy,
            _ => StateNumbering::Current,
        }
    }
}

/// Maps `hv_observe`'s output for `host_name` onto the observed model.
pub fn parse_host_report(host_name: &str, value: &Value) -> Result<HostView, String> {
    let report: HostReport = serde_json::from_value(value.clone())
        .map_err(|e| format!("unexpected output from hv_observe: {e}"))?;
    map_host_report(host_name, report)
}

/// Maps a parsed report (see [`parse_host_report`]).
pub fn map_host_report(host_name: &str, report: HostReport) -> Result<HostView, String> {
    let mut view = HostView::default();
    // Asked under no name (the local machine): use the name it reports.
    let reported = report.vm_host.first().and_then(|h| h.name.clone());
    let host_name = match (host_name.is_empty(), reported) {
        (true, Some(name)) => name,
        (true, None) => "localhost".to_string(),
        (false, _) => host_name.to_string(),
    };
    let host_name = host_name.as_str();
    view.cluster = report
        .cluster
        .first()
        .and_then(|c| c.name.clone())
        .filter(|n| !n.trim().is_empty());
    let numbering = StateNumbering::of_build(report.os.first().and_then(|o| o.build_number));
    let volumes = Volumes::new(&report.volumes, &report.paths, &report.disks);
    view.groups = report
        .groups
        .iter()
        .filter_map(|g| {
            Some(ClusterGroup {
                name: g.name.clone()?,
                pending: g.state.as_ref().is_some_and(|s| s.is(4, "Pending")),
                owner: g.owner_node.clone(),
            })
        })
        .collect();
    if let Some(h) = report.vm_host.first() {
        let vendor = report
            .processor
            .first()
            .and_then(|p| p.manufacturer.as_deref())
            .map_or(CpuVendor::Intel, cpu_vendor);
        if h.virtual_machine_migration_enabled == Some(false) {
            tracing::warn!(
                host = host_name,
                "live migration is disabled on this host (Enable-VMMigration)"
            );
        }
        view.host = Some(ObservedHost {
            name: host_name.to_string(),
            memory_mib: h.memory_capacity.map_or(0, mib),
            max_migrations: h
                .maximum_virtual_machine_migrations
                .map_or(2, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            cpu_vendor: vendor,
            switches: report
                .switches
                .iter()
                .filter_map(|s| s.name.clone())
                .collect(),
            migration_rate_mibps: None,
            reachable: true,
            max_storage_migrations: h
                .maximum_storage_migrations
                .map_or(2, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            network_mibps: None,
            volumes: volumes.observed.clone(),
            cluster: view.cluster.clone(),
        });
    }

    // Adapters' VLANs and ACLs by adapter id.
    let mut vlans: HashMap<String, Option<u16>> = HashMap::new();
    for v in &report.vlans {
        let Some(id) = &v.adapter_id else { continue };
        let access = v.operation_mode.as_ref().is_some_and(|m| m.is(1, "Access"));
        let vlan = v
            .access_vlan_id
            .filter(|n| access && *n > 0)
            .and_then(|n| u16::try_from(n).ok());
        vlans.insert(id.to_ascii_lowercase(), vlan);
    }
    let mut acls: HashMap<String, Vec<Acl>> = HashMap::new();
    for a in &report.acls {
        let Some(id) = &a.adapter_id else {
            return Err("an extended ACL without its adapter's id".into());
        };
        acls.entry(id.to_ascii_lowercase())
            .or_default()
            .extend(map_acl(a)?);
    }

    let mut macs = Vec::new();
    let mut adapter_ids = Vec::new();
    for (i, vm) in report.vms.iter().enumerate() {
        let Some(name) = vm.name.clone() else {
            return Err(format!("VM #{} has no name", i + 1));
        };
        let id = vm.id.as_ref().map(|s| s.to_ascii_lowercase());
        if let Some(id) = &id {
            view.vm_ids.insert(id.clone(), name.clone());
        }
        if vm.is_clustered == Some(true) {
            view.clustered.push(name.clone());
        }
        let memory = match (vm.memory_assigned, vm.memory_startup) {
            (Some(a), _) if a > 0 => a,
            (_, Some(s)) => s,
            _ => 0,
        };
        let adapters = report
            .adapters
            .iter()
            .filter(|ad| match (&ad.vm_id, &id) {
                (Some(a), Some(v)) => a.eq_ignore_ascii_case(v),
                _ => ad.vm_name.as_deref() == Some(name.as_str()),
            })
            .map(|ad| {
                let key = ad.id.as_ref().map(|s| s.to_ascii_lowercase());
                let mut rules = key
                    .as_ref()
                    .and_then(|k| acls.get(k))
                    .cloned()
                    .unwrap_or_default();
                rules.sort();
                let adapter_name = ad
                    .name
                    .clone()
                    .unwrap_or_else(|| "Network Adapter".to_string());
                if let Some(mac) = &ad.mac_address {
                    macs.push((name.clone(), adapter_name.clone(), mac.clone()));
                }
                if let Some(adapter_id) = &ad.id {
                    adapter_ids.push((name.clone(), adapter_name.clone(), adapter_id.clone()));
                }
                ObservedAdapter {
                    name: adapter_name,
                    switch: if ad.connected == Some(false) {
                        None
                    } else {
                        ad.switch_name.clone()
                    },
                    vm_network: None,
                    vlan_id: key.as_ref().and_then(|k| vlans.get(k).copied().flatten()),
                    acls: rules,
                }
            })
            .collect();
        let disks = report
            .disks
            .iter()
            .filter(|d| match (&d.vm_id, &id) {
                (Some(a), Some(v)) => a.eq_ignore_ascii_case(v),
                _ => d.vm_name.as_deref() == Some(name.as_str()),
            })
            .filter_map(|d| observed_disk(d, &volumes))
            .collect();
        view.vms.push(ObservedVm {
            name,
            host: host_name.to_string(),
            state: match &vm.state_name {
                Some(n) => power_state(Some(n)),
                None => power_state_numbered(vm.state.as_ref(), numbering),
            },
            memory_mib: mib(memory),
            operation: operation(
                vm.primary_operational_status.as_ref(),
                vm.secondary_operational_status.as_ref(),
            ),
            migrating_to: None,
            job: None,
            disks,
            clustered: vm.is_clustered == Some(true),
            adapters,
        });
    }

    view.macs = macs;
    view.adapter_ids = adapter_ids;
    for m in &report.migrations {
        let running = m.job_state.as_ref().is_some_and(|s| {
            matches!(s, EnumValue::Number(2..=6 | 11 | 12))
                || [
                    "New",
                    "Starting",
                    "Running",
                    "Suspended",
                    "Shutting Down",
                    "ShuttingDown",
                    "Service",
                    "Query Pending",
                    "QueryPending",
                ]
                .iter()
                .any(|n| s.is(-1, n))
        });
        let storage_only = m
            .migration_type
            .as_ref()
            .is_some_and(|t| t.is(32769, "Storage"));
        if !running || storage_only {
            continue;
        }
        let (Some(vm_id), Some(dest)) = (&m.virtual_system_name, &m.destination_host) else {
            continue;
        };
        if let Some(name) = view.vm_ids.get(&vm_id.to_ascii_lowercase()) {
            view.outgoing.push((name.clone(), dest.clone()));
        }
    }
    Ok(view)
}

/// `GenuineIntel` → Intel, `AuthenticAMD` → AMD (anything else: Intel).
pub fn cpu_vendor(manufacturer: &str) -> CpuVendor {
    let m = manufacturer.to_ascii_lowercase();
    if m.contains("amd") {
        CpuVendor::Amd
    } else {
        CpuVendor::Intel
    }
}

/// VMState by number under a host's numbering → power state (see
/// [`power_state`]). Windows Server 2012 R2 numbers the critical states
/// RunningCritical 32781 … FastSavingCritical 32792; later versions use those
/// numbers for ForceShutdown, ForceReboot, Hibernated and ComponentServicing
/// and number the critical states from 32785.
pub fn power_state_numbered(state: Option<&EnumValue>, numbering: StateNumbering) -> PowerState {
    match (numbering, state) {
        (StateNumbering::Legacy, Some(EnumValue::Number(n))) => match n {
            3 | 32782 => PowerState::Off,
            6 | 32779 | 32784 | 32791 => PowerState::Saved,
            9 | 32785 => PowerState::Paused,
            _ => PowerState::Running,
        },
        _ => power_state(state),
    }
}

/// VMState → power state. Off and saved states (critical ones included) are
/// offline; paused is paused; every other state, transitions included, is
/// treated as running: such a VM holds memory and would move live.
pub fn power_state(state: Option<&EnumValue>) -> PowerState {
    const OFF: &[(i64, &str)] = &[(3, "Off"), (32786, "OffCritical")];
    const SAVED: &[(i64, &str)] = &[
        (6, "Saved"),
        (32779, "FastSaved"),
        (32783, "Hibernated"),
        (32788, "SavedCritical"),
        (32795, "FastSavedCritical"),
    ];
    const PAUSED: &[(i64, &str)] = &[(9, "Paused"), (32789, "PausedCritical")];
    let Some(s) = state else {
        return PowerState::Running;
    };
    let any = |set: &[(i64, &str)]| set.iter().any(|(n, name)| s.is(*n, name));
    if any(OFF) {
        PowerState::Off
    } else if any(SAVED) {
        PowerState::Saved
    } else if any(PAUSED) {
        PowerState::Paused
    } else {
        PowerState::Running
    }
}

/// VMOperationalStatus (primary or secondary) → a running operation.
pub fn operation(
    primary: Option<&EnumValue>,
    secondary: Option<&EnumValue>,
) -> Option<VmOperation> {
    const MIGRATING: &[(i64, &str)] = &[
        (32774, "MigratingVirtualMachine"),
        (32778, "StorageMigrationPhaseOne"),
        (32779, "StorageMigrationPhaseTwo"),
        (32780, "MigratingPlannedVm"),
    ];
    const BACKUP: (i64, &str) = (32776, "BackingUpVirtualMachine");
    let statuses = [primary, secondary];
    let has = |(n, name): (i64, &str)| statuses.iter().flatten().any(|s| s.is(n, name));
    if MIGRATING.iter().any(|m| has(*m)) {
        Some(VmOperation::Migrating)
    } else if has(BACKUP) {
        Some(VmOperation::BackingUp)
    } else {
        None
    }
}

/// One ACL entry → one rule per direction it applies to.
pub fn map_acl(a: &AclJson) -> Result<Vec<Acl>, String> {
    let directions = match &a.direction {
        Some(d) if d.is(1, "Inbound") => vec![Direction::Inbound],
        Some(d) if d.is(2, "Outbound") => vec![Direction::Outbound],
        other => return Err(format!("an extended ACL with direction {other:?}")),
    };
    let action = match &a.action {
        Some(x) if x.is(1, "Allow") => AclAction::Allow,
        Some(x) if x.is(2, "Deny") => AclAction::Deny,
        other => return Err(format!("an extended ACL with action {other:?}")),
    };
    let weight = a
        .weight
        .and_then(|w| u32::try_from(w).ok())
        .ok_or("an extended ACL without a weight")?;
    let address = |v: &Option<String>| -> Result<AddressMatch, String> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(AddressMatch::Any),
            Some(t) => crate::spec::parse_address(t),
        }
    };
    let port = |v: &Option<String>| -> Result<PortMatch, String> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(PortMatch::Any),
            Some(t) => crate::spec::parse_port(t),
        }
    };
    let protocol = match a.protocol.as_deref().map(str::trim) {
        None | Some("") => ProtocolMatch::Any,
        // Older hosts and hand-made rules may carry the names.
        Some(t) if t.eq_ignore_ascii_case("icmpv6") => ProtocolMatch::Number(58),
        Some(t) => crate::spec::parse_protocol(t)?,
    };
    let stateful = a.stateful.unwrap_or(false);
    let rule = Acl {
        direction: Direction::Inbound,
        weight,
        action,
        local_address: address(&a.local_ip_address)?,
        remote_address: address(&a.remote_ip_address)?,
        local_port: port(&a.local_port)?,
        remote_port: port(&a.remote_port)?,
        protocol,
        stateful,
        idle_session_timeout: if stateful {
            a.idle_session_timeout
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(0)
        } else {
            0
        },
        isolation_id: a
            .isolation_id
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
    };
    Ok(directions
        .into_iter()
        .map(|direction| Acl {
            direction,
            ..rule.clone()
        })
        .collect())
}

/// The arguments `hv_add_acl` takes for one rule. `ANY` is `null`: the
/// script then leaves that parameter out, which is Hyper-V's "any".
pub fn acl_args(acl: &Acl) -> Value {
    let address = |a: &AddressMatch| match a {
        AddressMatch::Any => Value::Null,
        net => Value::String(net.to_string()),
    };
    let port = |p: &PortMatch| match p {
        PortMatch::Any => Value::Null,
        range => Value::String(range.to_string()),
    };
    let protocol = match acl.protocol {
        ProtocolMatch::Any => Value::Null,
        ProtocolMatch::Number(6) => "TCP".into(),
        ProtocolMatch::Number(17) => "UDP".into(),
        // -Protocol takes TCP, UDP or an IP protocol number: ICMP is 1,
        // ICMPv6 58.
        ProtocolMatch::Number(n) => Value::String(n.to_string()),
    };
    json!({
        "action": match acl.action { AclAction::Allow => "Allow", AclAction::Deny => "Deny" },
        "direction": direction_name(acl.direction),
        "localIPAddress": address(&acl.local_address),
        "remoteIPAddress": address(&acl.remote_address),
        "localPort": port(&acl.local_port),
        "remotePort": port(&acl.remote_port),
        "protocol": protocol,
        "weight": acl.weight,
        "stateful": acl.stateful,
        // Undeclared (0): left out, and Hyper-V applies its own default.
        "idleSessionTimeout": (acl.stateful && acl.idle_session_timeout > 0).then_some(acl.idle_session_timeout),
        "isolationId": acl.isolation_id,
    })
}

/// Hyper-V's spelling of a direction.
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "Inbound",
        Direction::Outbound => "Outbound",
    }
}

/// The configured host that `reported` names (exactly, or by its first DNS
/// label: `hv02.contoso.com` is `hv02`).
pub fn match_host<'a>(hosts: impl IntoIterator<Item = &'a str>, reported: &str) -> Option<&'a str> {
    let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    let hosts: Vec<&str> = hosts.into_iter().collect();
    hosts
        .iter()
        .find(|h| h.eq_ignore_ascii_case(reported))
        .or_else(|| hosts.iter().find(|h| short(h) == short(reported)))
        .copied()
}
