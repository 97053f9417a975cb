//! The Hyper-V backend: Hyper-V's cmdlets through PowerShell.
//!
//! Observation runs `hv_observe` once per host (Get-VMHost, Get-VM,
//! Get-VMSwitch, Get-VMNetworkAdapter, Get-VMNetworkAdapterVlan,
//! Get-VMNetworkAdapterExtendedAcl and the host's running `Msvm_MigrationJob`s)
//! and maps the cmdlets' JSON onto the observed model here, in Rust, where
//! it is tested against recorded-shape fixtures ([`parse_host_report`]).
//!
//! Moves: `Move-VM -AsJob` in the PowerShell session (on the source host's
//! remote session under WinRM or SSH), followed with `Get-Job` and
//! `Receive-Job` by [`Provider::wait_job`], which polls every few seconds
//! with short calls so one session serves many moves at once. The job lives
//! in that session: if the session is restarted (a timeout, a crash) the
//! wait carries on by watching the VM itself: done when it runs on the
//! destination, failed when it stays on the source without migrating. The
//! migration itself is carried out by the hosts' migration service and does
//! not depend on the session. Clustered VMs move with
//! `Move-ClusterVirtualMachineRole -Wait 0` and are followed the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::json::{EnumValue, boolean, enum_value, mib, one_or_many, text, uint};
use super::powershell::{PsError, Session, SessionConfig, scripts};
use super::{
    ErrorClass, JobId, MoveKind, MoveRequest, Observed, ObservedAdapter, ObservedHost, ObservedVm,
    Provider, ProviderError,
};
use crate::spec::{
    Acl, AclAction, AddressMatch, CpuVendor, Direction, HyperVSettings, PortMatch, PowerState,
    ProtocolMatch, Transport, VmOperation,
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
    /// VMState.
    #[serde(rename = "State", default, deserialize_with = "enum_value")]
    pub state: Option<EnumValue>,
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
    /// Inbound 1, Outbound 2 (Both 3 is read as both).
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
    /// Shutting Down 6, Completed 7, Terminated 8, Killed 9, Exception 10.
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
            max_storage_migrations: 2,
            network_mibps: None,
            volumes: Vec::new(),
            cluster: None,
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
        view.vms.push(ObservedVm {
            name,
            host: host_name.to_string(),
            state: power_state(vm.state.as_ref()),
            memory_mib: mib(memory),
            operation: operation(
                vm.primary_operational_status.as_ref(),
                vm.secondary_operational_status.as_ref(),
            ),
            migrating_to: None,
            job: None,
            disks: Vec::new(),
            clustered: false,
            adapters,
        });
    }

    view.macs = macs;
    for m in &report.migrations {
        let running = m.job_state.as_ref().is_some_and(|s| {
            matches!(s, EnumValue::Number(2..=6))
                || [
                    "New",
                    "Starting",
                    "Running",
                    "Suspended",
                    "Shutting Down",
                    "ShuttingDown",
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
        Some(d) if d.is(3, "Both") => vec![Direction::Inbound, Direction::Outbound],
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
        ProtocolMatch::Number(1) => "ICMPv4".into(),
        ProtocolMatch::Number(58) => "ICMPv6".into(),
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
        "idleSessionTimeout": acl.idle_session_timeout,
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

/// `hv_job`'s answer.
#[derive(Debug, Deserialize)]
struct JobStatus {
    state: String,
    #[serde(default)]
    error: Option<super::powershell::RemoteError>,
}

/// `hv_move`'s answer.
#[derive(Debug, Deserialize)]
struct MoveStarted {
    kind: String,
    #[serde(default, rename = "jobId")]
    job_id: Option<i64>,
}

// ------------------------------------------------------------ the provider

/// A move this provider started (or found running) and follows.
#[derive(Debug, Clone)]
pub(crate) struct MoveJob {
    pub(crate) vm: String,
    pub(crate) from: String,
    pub(crate) to: String,
    /// The Move-VM job: (session generation, PowerShell job id).
    pub(crate) ps: Option<(u64, i64)>,
    pub(crate) finished: bool,
}

#[derive(Default)]
struct Book {
    next_job: u64,
    jobs: HashMap<String, MoveJob>,
    /// Where each VM was last seen.
    located: HashMap<String, String>,
    /// The local host's name, when no hosts are configured.
    local_name: Option<String>,
}

/// How often a running move is checked.
pub const DEFAULT_POLL: Duration = Duration::from_secs(3);

/// Consecutive failed checks a wait tolerates before it gives up.
const WAIT_ERRORS: u32 = 3;

/// Hyper-V hosts through PowerShell.
pub struct HyperV {
    settings: HyperVSettings,
    session: Session,
    book: Mutex<Book>,
    poll: Duration,
}

impl HyperV {
    /// A provider for the Controller document's settings. Nothing starts
    /// until the first call.
    pub fn new(settings: HyperVSettings) -> HyperV {
        let config = SessionConfig::from_settings(&settings.shell);
        HyperV::with_session(settings, config)
    }

    /// A provider with an explicit session configuration (tests point it at
    /// a fake PowerShell).
    pub fn with_session(settings: HyperVSettings, config: SessionConfig) -> HyperV {
        HyperV {
            settings,
            session: Session::new(config, scripts::HYPERV),
            book: Mutex::new(Book::default()),
            poll: DEFAULT_POLL,
        }
    }

    /// Sets how often running moves are checked.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The PowerShell session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hosts to observe: the configured ones, or the local machine.
    fn hosts(&self) -> Vec<String> {
        if self.settings.hosts.is_empty() {
            vec![self.book().local_name.clone().unwrap_or_default()]
        } else {
            self.settings.hosts.clone()
        }
    }

    /// Where a host's scripts run: `None` is the local machine; a name is
    /// reached with `-ComputerName` (local transport) or a remote session
    /// (WinRM, SSH), which the host script chooses.
    fn route(&self, host: &str) -> Option<String> {
        if self.settings.hosts.is_empty() {
            None
        } else {
            Some(host.to_string())
        }
    }

    async fn run(&self, script: &str, host: &str, args: Value) -> Result<Value, PsError> {
        let target = self.route(host);
        self.session.call(script, target.as_deref(), &args).await
    }

    async fn observe_host(&self, host: &str, vm: Option<&str>) -> Result<HostView, ProviderError> {
        let value = self
            .run(scripts::HV_OBSERVE.name, host, json!({ "vm": vm }))
            .await?;
        let view = parse_host_report(host, &value)
            .map_err(|e| ProviderError::unreachable(format!("{host}: {e}")))?;
        Ok(view)
    }

    /// Finds the host a VM runs on: the only host, the last place it was
    /// seen, or by asking every host.
    async fn locate(&self, vm: &str, fresh: bool) -> Result<String, ProviderError> {
        let hosts = self.hosts();
        if hosts.len() == 1 {
            return Ok(hosts[0].clone());
        }
        if !fresh && let Some(h) = self.book().located.get(vm).cloned() {
            return Ok(h);
        }
        let mut last_error = None;
        for host in &hosts {
            match self.observe_host(host, Some(vm)).await {
                Ok(view) if view.vms.iter().any(|v| v.name == vm) => {
                    self.book().located.insert(vm.to_string(), host.clone());
                    return Ok(host.clone());
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            ProviderError::permanent(format!("no VM named `{vm}` on any configured host"))
        }))
    }

    /// Runs a script against the VM's host; if the VM is no longer there
    /// (it moved since it was last seen), finds it again and retries once.
    async fn on_vm_host(
        &self,
        vm: &str,
        script: &str,
        args: Value,
    ) -> Result<Value, ProviderError> {
        let host = self.locate(vm, false).await?;
        match self.run(script, &host, args.clone()).await {
            Err(e) if is_not_found(&e) && self.hosts().len() > 1 => {
                let host = self.locate(vm, true).await?;
                Ok(self.run(script, &host, args).await?)
            }
            other => Ok(other?),
        }
    }

    /// Marks running moves on the VMs they concern.
    fn overlay_jobs(&self, vm: &mut ObservedVm) {
        let book = self.book();
        if let Some((id, job)) = book
            .jobs
            .iter()
            .find(|(_, j)| !j.finished && j.vm == vm.name && j.from == vm.host)
        {
            vm.operation = Some(VmOperation::Migrating);
            vm.migrating_to = Some(job.to.clone());
            vm.job = Some(JobId(id.clone()));
        }
    }

    fn record_job(&self, job: MoveJob) -> JobId {
        let mut book = self.book();
        book.next_job += 1;
        let id = format!("hyperv-{}", book.next_job);
        book.jobs.insert(id.clone(), job);
        JobId(id)
    }

    fn finish(&self, id: &JobId, at: Option<&str>) {
        let mut book = self.book();
        let vm = book.jobs.get_mut(&id.0).map(|j| {
            j.finished = true;
            j.vm.clone()
        });
        if let (Some(vm), Some(host)) = (vm, at) {
            book.located.insert(vm, host.to_string());
        }
    }

    /// Follows a move by watching the VM: `Some(result)` once it is over.
    async fn check_vm(
        &self,
        job: &MoveJob,
    ) -> Result<Option<Result<(), ProviderError>>, ProviderError> {
        let at_destination = self.observe_host(&job.to, Some(&job.vm)).await?;
        if let Some(v) = at_destination.vms.iter().find(|v| v.name == job.vm)
            && v.operation != Some(VmOperation::Migrating)
        {
            return Ok(Some(Ok(())));
        }
        let at_source = self.observe_host(&job.from, Some(&job.vm)).await?;
        match at_source.vms.iter().find(|v| v.name == job.vm) {
            Some(v) if v.operation == Some(VmOperation::Migrating) => Ok(None),
            Some(_) => Ok(Some(Err(ProviderError::retryable(format!(
                "the move of {} to {} ended with the VM still on {}",
                job.vm, job.to, job.from
            ))))),
            None => Ok(None),
        }
    }
}

fn is_not_found(e: &PsError) -> bool {
    e.remote()
        .is_some_and(|r| r.fully_qualified_error_id.starts_with("BerthVmNotFound"))
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn transport_label(t: Transport) -> &'static str {
    match t {
        Transport::Local => "local",
        Transport::WinRm => "winrm",
        Transport::Ssh => "ssh",
    }
}

/// Merges host views into one observation; `hosts` are the configured
/// names, which destinations reported by the hosts are matched against.
pub fn merge_views(hosts: &[String], views: Vec<HostView>) -> Observed {
    let mut observed = Observed {
        at: now_seconds(),
        hosts: BTreeMap::new(),
        vms: BTreeMap::new(),
    };
    let mut outgoing = Vec::new();
    for view in views {
        if let Some(h) = view.host {
            observed.hosts.insert(h.name.clone(), h);
        }
        for vm in view.vms {
            if let Some(first) = observed.vms.get(&vm.name) {
                tracing::warn!(
                    vm = %vm.name,
                    "a VM of this name is on both {} and {}; berth manages the first",
                    first.host,
                    vm.host
                );
                continue;
            }
            observed.vms.insert(vm.name.clone(), vm);
        }
        outgoing.extend(view.outgoing);
    }
    for (vm, dest) in outgoing {
        let Some(to) = match_host(hosts.iter().map(String::as_str), &dest) else {
            continue;
        };
        if let Some(v) = observed.vms.get_mut(&vm)
            && v.job.is_none()
            && v.host != to
        {
            v.operation = Some(VmOperation::Migrating);
            v.migrating_to = Some(to.to_string());
        }
    }
    observed
}

#[async_trait]
impl Provider for HyperV {
    fn describe(&self) -> String {
        let hosts = if self.settings.hosts.is_empty() {
            "the local host".to_string()
        } else {
            self.settings.hosts.join(", ")
        };
        format!(
            "hyperv: {hosts} ({} through {})",
            self.session.config().program,
            transport_label(self.settings.shell.transport)
        )
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        let hosts = self.hosts();
        let mut views = Vec::new();
        let mut failures: Vec<(String, ProviderError)> = Vec::new();
        for host in &hosts {
            match self.observe_host(host, None).await {
                Ok(view) => {
                    if self.settings.hosts.is_empty()
                        && let Some(h) = &view.host
                    {
                        // The local machine: remember the name it reports.
                        self.book().local_name = Some(h.name.clone());
                    }
                    views.push(view);
                }
                Err(e) => {
                    tracing::warn!(host, "cannot observe: {e}");
                    failures.push((host.clone(), e));
                }
            }
        }
        if views.is_empty()
            && let Some((host, first)) = failures.first()
        {
            let label = |h: &str| {
                if h.is_empty() {
                    "the local host".to_string()
                } else {
                    h.to_string()
                }
            };
            let mut message = format!("cannot observe {}: {}", label(host), first.message);
            for (h, e) in failures.iter().skip(1) {
                message.push_str(&format!("; {}: {}", label(h), e.message));
            }
            return Err(ProviderError::new(first.class, message));
        }
        let configured: Vec<String> = if self.settings.hosts.is_empty() {
            views
                .iter()
                .filter_map(|v| v.host.as_ref().map(|h| h.name.clone()))
                .collect()
        } else {
            self.settings.hosts.clone()
        };
        let mut observed = merge_views(&configured, views);
        for (host, _) in failures {
            observed.hosts.insert(
                host.clone(),
                ObservedHost {
                    name: host,
                    memory_mib: 0,
                    max_migrations: 0,
                    cpu_vendor: CpuVendor::Intel,
                    switches: Vec::new(),
                    migration_rate_mibps: None,
                    reachable: false,
                    max_storage_migrations: 2,
                    network_mibps: None,
                    volumes: Vec::new(),
                    cluster: None,
                },
            );
        }
        // Foreign migrations seen on the hosts become jobs to follow.
        let found: Vec<(String, String, String)> = observed
            .vms
            .values()
            .filter_map(|v| {
                v.migrating_to
                    .clone()
                    .map(|to| (v.name.clone(), v.host.clone(), to))
            })
            .collect();
        for (vm, from, to) in found {
            let known = self
                .book()
                .jobs
                .values()
                .any(|j| !j.finished && j.vm == vm && j.from == from);
            if !known {
                self.record_job(MoveJob {
                    vm,
                    from,
                    to,
                    ps: None,
                    finished: false,
                });
            }
        }
        {
            let mut book = self.book();
            for vm in observed.vms.values() {
                book.located.insert(vm.name.clone(), vm.host.clone());
            }
        }
        for vm in observed.vms.values_mut() {
            self.overlay_jobs(vm);
        }
        Ok(observed)
    }

    async fn observe_vm(&self, vm: &str) -> Result<ObservedVm, ProviderError> {
        for fresh in [false, true] {
            let host = self.locate(vm, fresh).await?;
            let view = self.observe_host(&host, Some(vm)).await?;
            if let Some(mut found) = view.vms.into_iter().find(|v| v.name == vm) {
                self.book()
                    .located
                    .insert(vm.to_string(), found.host.clone());
                self.overlay_jobs(&mut found);
                return Ok(found);
            }
            if self.hosts().len() == 1 {
                break;
            }
        }
        Err(ProviderError::permanent(format!(
            "no VM named `{vm}` on any configured host"
        )))
    }

    async fn start_move(&self, request: &MoveRequest) -> Result<JobId, ProviderError> {
        let storage = self
            .settings
            .destination_storage_paths
            .get(&request.to)
            .or(self.settings.destination_storage_path.as_ref())
            .cloned();
        let args = json!({
            "vm": request.vm,
            "to": request.to,
            "includeStorage": storage.is_some(),
            "storagePath": storage,
            "clusterMigrationType": match request.kind { MoveKind::Live => "Live", MoveKind::Offline => "Quick" },
        });
        let target = self.route(&request.from);
        let (value, generation) = self
            .session
            .call_tagged(scripts::HV_MOVE.name, target.as_deref(), &args, None)
            .await?;
        let started: MoveStarted =
            serde_json::from_value(value.unwrap_or(Value::Null)).map_err(|e| {
                ProviderError::unreachable(format!("unexpected output from hv_move: {e}"))
            })?;
        let ps = match (started.kind.as_str(), started.job_id) {
            ("job", Some(id)) => Some((generation, id)),
            ("cluster", _) => None,
            (kind, _) => {
                return Err(ProviderError::unreachable(format!(
                    "unexpected output from hv_move: kind `{kind}` without a job"
                )));
            }
        };
        Ok(self.record_job(MoveJob {
            vm: request.vm.clone(),
            from: request.from.clone(),
            to: request.to.clone(),
            ps,
            finished: false,
        }))
    }

    async fn wait_job(&self, job: &JobId) -> Result<(), ProviderError> {
        let mut errors = 0u32;
        loop {
            let Some(record) = self.book().jobs.get(&job.0).cloned() else {
                return Err(ProviderError::permanent(format!("no move job `{job}`")));
            };
            let step: Result<Option<Result<(), ProviderError>>, ProviderError> = match record.ps {
                Some((generation, ps_id)) => {
                    let target = self.route(&record.from);
                    match self
                        .session
                        .call_tagged(
                            scripts::HV_JOB.name,
                            target.as_deref(),
                            &json!({ "jobId": ps_id }),
                            Some(generation),
                        )
                        .await
                    {
                        Ok((None, _)) => {
                            // The session that ran Move-VM is gone: watch the VM.
                            if let Some(j) = self.book().jobs.get_mut(&job.0) {
                                j.ps = None;
                            }
                            continue;
                        }
                        Ok((Some(v), _)) => match serde_json::from_value::<JobStatus>(v) {
                            Ok(s) => match s.state.as_str() {
                                "completed" => Ok(Some(Ok(()))),
                                "failed" => {
                                    let e = s.error.unwrap_or_default();
                                    Ok(Some(Err(ProviderError::new(
                                        e.class(),
                                        format!(
                                            "the move of {} to {} failed: {e}",
                                            record.vm, record.to
                                        ),
                                    ))))
                                }
                                "missing" => {
                                    if let Some(j) = self.book().jobs.get_mut(&job.0) {
                                        j.ps = None;
                                    }
                                    continue;
                                }
                                _ => Ok(None),
                            },
                            Err(e) => Err(ProviderError::unreachable(format!(
                                "unexpected output from hv_job: {e}"
                            ))),
                        },
                        Err(e) => Err(e.into()),
                    }
                }
                None => self.check_vm(&record).await,
            };
            match step {
                Ok(Some(result)) => {
                    let at = if result.is_ok() {
                        Some(record.to.as_str())
                    } else {
                        Some(record.from.as_str())
                    };
                    self.finish(job, at);
                    return result;
                }
                Ok(None) => errors = 0,
                Err(e) => {
                    errors += 1;
                    if errors >= WAIT_ERRORS || e.class == ErrorClass::Permanent {
                        self.finish(job, None);
                        return Err(e);
                    }
                    tracing::debug!(job = %job, "checking the move failed ({e}); trying again");
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn add_acl(&self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError> {
        let args = json!({ "vm": vm, "adapter": adapter, "acl": acl_args(acl) });
        self.on_vm_host(vm, scripts::HV_ADD_ACL.name, args).await?;
        Ok(())
    }

    async fn remove_acl(
        &self,
        vm: &str,
        adapter: &str,
        direction: Direction,
        weight: u32,
    ) -> Result<(), ProviderError> {
        let args = json!({
            "vm": vm,
            "adapter": adapter,
            "direction": direction_name(direction),
            "weight": weight,
        });
        self.on_vm_host(vm, scripts::HV_REMOVE_ACL.name, args)
            .await?;
        Ok(())
    }

    async fn connect_adapter(
        &self,
        vm: &str,
        adapter: &str,
        switch: &str,
        _vm_network: Option<&str>,
    ) -> Result<(), ProviderError> {
        let args = json!({ "vm": vm, "adapter": adapter, "switch": switch });
        self.on_vm_host(vm, scripts::HV_CONNECT.name, args).await?;
        Ok(())
    }

    async fn set_vlan(&self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError> {
        let args = json!({ "vm": vm, "adapter": adapter, "vlanId": vlan_id });
        self.on_vm_host(vm, scripts::HV_SET_VLAN.name, args).await?;
        Ok(())
    }

    async fn close(&self) -> Result<(), ProviderError> {
        self.session.close().await;
        Ok(())
    }
}
