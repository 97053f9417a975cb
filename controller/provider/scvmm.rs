//! The SCVMM backend: Virtual Machine Manager's cmdlets through PowerShell,
//! and the hosts' own Hyper-V cmdlets for what VMM does not manage.
//!
//! VMM is the source of truth for hosts, VMs, placement, VM networks and
//! VLANs (`Get-SCVMHost`, `Get-SCVirtualMachine`,
//! `Get-SCVirtualNetworkAdapter`, `Set-SCVirtualNetworkAdapter`). Moves run
//! as VMM jobs (`Move-SCVirtualMachine -RunAsynchronously`), followed with
//! `Get-SCJob`; VMM keeps its jobs, so a move outlives berth. A VM left in
//! `MigrationFailed` is dismissed (`Repair-SCVirtualMachine -Dismiss`)
//! before the next attempt. VMM knows nothing of Hyper-V's extended port
//! ACLs, so berth reads and writes them on the hosts themselves
//! (`hv_observe`, `hv_add_acl`, `hv_remove_acl`), joining VMM's adapters to
//! Hyper-V's by MAC address; a host berth cannot reach that way is reported
//! unreachable, since moving a VM there would cost it its rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::hyperv::{HostView, acl_args, cpu_vendor, direction_name, parse_host_report};
use super::json::{boolean, mib, one_or_many, text, uint};
use super::powershell::{PsError, RemoteError, Session, SessionConfig, scripts};
use super::{
    ErrorClass, JobId, MoveRequest, Observed, ObservedAdapter, ObservedHost, ObservedVm, Provider,
    ProviderError,
};
use crate::spec::{Acl, CpuVendor, Direction, PowerState, ScvmmSettings, Transport, VmOperation};

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
    for h in &report.hosts {
        let Some(label) = host_label(h.name.as_deref(), h.computer_name.as_deref()) else {
            return Err("a VMM host without a name".into());
        };
        let address = h.name.clone().unwrap_or_else(|| label.clone());
        labels.insert(address.to_ascii_lowercase(), label.clone());
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
                max_storage_migrations: 2,
                network_mibps: None,
                volumes: Vec::new(),
                cluster: None,
            },
            address,
        ));
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
                disks: Vec::new(),
                clustered: false,
                adapters: Vec::new(),
            },
            vm_id: vm.vm_id.clone(),
            host_address: address,
            adapters,
        });
    }
    Ok(view)
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
            let mac = host
                .macs
                .iter()
                .find(|(v, n, _)| *v == hv.name && *n == a.name)
                .map(|(_, _, m)| normalise_mac(m));
            let sc = mac.and_then(|m| vm.adapters.iter().find(|s| !m.is_empty() && s.mac == m));
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

// ------------------------------------------------------------ the provider

#[derive(Debug, Clone)]
struct ScJob {
    vm: String,
    from: String,
    to: String,
    vmm_id: String,
    finished: bool,
}

#[derive(Debug, Clone, Default)]
struct VmRef {
    host_address: String,
    adapters: Vec<(String, String)>,
}

#[derive(Default)]
struct Book {
    jobs: HashMap<String, ScJob>,
    /// berth's host name → VMM's.
    hosts: HashMap<String, String>,
    vms: HashMap<String, VmRef>,
}

/// Virtual Machine Manager through PowerShell.
pub struct Scvmm {
    settings: ScvmmSettings,
    session: Session,
    book: Mutex<Book>,
    poll: Duration,
}

const WAIT_ERRORS: u32 = 3;

impl Scvmm {
    /// A provider for the Controller document's settings. Nothing starts
    /// until the first call.
    pub fn new(settings: ScvmmSettings) -> Scvmm {
        let config = SessionConfig::from_settings(&settings.shell);
        Scvmm::with_session(settings, config)
    }

    /// A provider with an explicit session configuration.
    pub fn with_session(settings: ScvmmSettings, config: SessionConfig) -> Scvmm {
        Scvmm {
            settings,
            session: Session::new(config, scripts::SCVMM),
            book: Mutex::new(Book::default()),
            poll: super::hyperv::DEFAULT_POLL,
        }
    }

    /// Sets how often running jobs are checked.
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

    /// Runs a VMM script: in the local process against the server, or on
    /// the server itself over WinRM or SSH.
    async fn vmm(&self, script: &str, mut args: Value) -> Result<Value, PsError> {
        let (target, server) = match self.settings.shell.transport {
            Transport::Local => (None, self.settings.server.clone()),
            Transport::WinRm | Transport::Ssh => {
                (Some(self.settings.server.as_str()), "localhost".to_string())
            }
        };
        if let Value::Object(m) = &mut args {
            m.insert("server".into(), Value::String(server));
        }
        self.session.call(script, target, &args).await
    }

    /// Runs a Hyper-V script on a host (VMM's name for it).
    async fn host(&self, script: &str, address: &str, args: Value) -> Result<Value, PsError> {
        self.session.call(script, Some(address), &args).await
    }

    async fn host_view(
        &self,
        label: &str,
        address: &str,
        vm: Option<&str>,
    ) -> Result<HostView, ProviderError> {
        let value = self
            .host(scripts::HV_OBSERVE.name, address, json!({ "vm": vm }))
            .await?;
        parse_host_report(label, &value)
            .map_err(|e| ProviderError::unreachable(format!("{label}: {e}")))
    }

    fn remember(&self, vm: &ScVm, ids: Vec<(String, String)>) {
        self.book().vms.insert(
            vm.vm.name.clone(),
            VmRef {
                host_address: vm.host_address.clone(),
                adapters: ids,
            },
        );
    }

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

    /// The VM's host address and its adapters' VMM ids, observing it when
    /// they are not known yet.
    async fn vm_ref(&self, vm: &str) -> Result<VmRef, ProviderError> {
        if let Some(r) = self.book().vms.get(vm).cloned() {
            return Ok(r);
        }
        self.observe_vm(vm).await?;
        self.book()
            .vms
            .get(vm)
            .cloned()
            .ok_or_else(|| ProviderError::permanent(format!("no VM named `{vm}` in VMM")))
    }

    async fn adapter_id(&self, vm: &str, adapter: &str) -> Result<String, ProviderError> {
        for refresh in [false, true] {
            if refresh {
                self.observe_vm(vm).await?;
            }
            let r = self.vm_ref(vm).await?;
            if let Some((_, id)) = r.adapters.iter().find(|(n, _)| n == adapter) {
                return Ok(id.clone());
            }
        }
        Err(ProviderError::permanent(format!(
            "VM `{vm}` has no network adapter `{adapter}` that VMM knows"
        )))
    }

    /// Runs a Hyper-V script on the VM's host, finding the host again once
    /// if the VM is no longer there.
    async fn on_vm_host(&self, vm: &str, script: &str, args: Value) -> Result<(), ProviderError> {
        let r = self.vm_ref(vm).await?;
        match self.host(script, &r.host_address, args.clone()).await {
            Err(e) if is_not_found(&e) => {
                self.observe_vm(vm).await?;
                let r = self.vm_ref(vm).await?;
                self.host(script, &r.host_address, args).await?;
                Ok(())
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }
}

fn is_not_found(e: &PsError) -> bool {
    e.remote()
        .is_some_and(|r| r.fully_qualified_error_id.starts_with("BerthVmNotFound"))
}

/// A failed VMM job as an error record, so the same rules classify it.
pub fn job_error(job: &ScJobJson) -> RemoteError {
    let mut message = job
        .problem
        .clone()
        .unwrap_or_else(|| "the VMM job failed".into());
    if let Some(r) = &job.recommended_action {
        message.push(' ');
        message.push_str(r);
    }
    RemoteError {
        category: String::new(),
        message,
        fully_qualified_error_id: format!("{},VMMJob", job.error_code.as_deref().unwrap_or("0")),
        ..RemoteError::default()
    }
}

#[async_trait]
impl Provider for Scvmm {
    fn describe(&self) -> String {
        format!(
            "scvmm: {} ({})",
            self.settings.server,
            self.session.config().program
        )
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        let value = self
            .vmm(scripts::SCVMM_OBSERVE.name, json!({ "vm": null }))
            .await?;
        let view = parse_scvmm_report(&value).map_err(ProviderError::unreachable)?;
        let mut hosts: BTreeMap<String, ObservedHost> = BTreeMap::new();
        let mut host_views: HashMap<String, HostView> = HashMap::new();
        for (mut host, address) in view.hosts {
            if host.reachable {
                match self.host_view(&host.name, &address, None).await {
                    Ok(v) => {
                        host_views.insert(host.name.clone(), v);
                    }
                    Err(e) => {
                        tracing::warn!(
                            host = %host.name,
                            "VMM reaches this host but berth cannot (its extended ACLs are unknown); treating it as unreachable: {e}"
                        );
                        host.reachable = false;
                    }
                }
            }
            self.book().hosts.insert(host.name.clone(), address);
            hosts.insert(host.name.clone(), host);
        }
        let mut vms = BTreeMap::new();
        for mut vm in view.vms {
            let host = vm.vm.host.clone();
            let ids = join(&mut vm, host_views.get(&host));
            self.remember(&vm, ids);
            self.overlay_jobs(&mut vm.vm);
            vms.insert(vm.vm.name.clone(), vm.vm);
        }
        Ok(Observed {
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            hosts,
            vms,
        })
    }

    async fn observe_vm(&self, vm: &str) -> Result<ObservedVm, ProviderError> {
        let value = self
            .vmm(scripts::SCVMM_OBSERVE.name, json!({ "vm": vm }))
            .await?;
        let view = parse_scvmm_report(&value).map_err(ProviderError::unreachable)?;
        let Some(mut found) = view.vms.into_iter().find(|v| v.vm.name == vm) else {
            return Err(ProviderError::permanent(format!(
                "no VM named `{vm}` in VMM"
            )));
        };
        let host_view = if found.host_address.is_empty() {
            None
        } else {
            Some(
                self.host_view(&found.vm.host, &found.host_address, Some(vm))
                    .await?,
            )
        };
        let ids = join(&mut found, host_view.as_ref());
        self.remember(&found, ids);
        self.overlay_jobs(&mut found.vm);
        Ok(found.vm)
    }

    async fn start_move(&self, request: &MoveRequest) -> Result<JobId, ProviderError> {
        let to = self
            .book()
            .hosts
            .get(&request.to)
            .cloned()
            .unwrap_or_else(|| request.to.clone());
        let value = self
            .vmm(
                scripts::SCVMM_MOVE.name,
                json!({ "vm": request.vm, "to": to, "path": self.settings.destination_storage_path }),
            )
            .await?;
        let job_id = value
            .get("jobId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ProviderError::unreachable("unexpected output from scvmm_move: no job id")
            })?
            .to_string();
        let id = format!("scvmm:{job_id}");
        self.book().jobs.insert(
            id.clone(),
            ScJob {
                vm: request.vm.clone(),
                from: request.from.clone(),
                to: request.to.clone(),
                vmm_id: job_id,
                finished: false,
            },
        );
        Ok(JobId(id))
    }

    async fn wait_job(&self, job: &JobId) -> Result<(), ProviderError> {
        let Some(record) = self.book().jobs.get(&job.0).cloned() else {
            return Err(ProviderError::permanent(format!("no move job `{job}`")));
        };
        let mut errors = 0;
        loop {
            let step = self
                .vmm(
                    scripts::SCVMM_JOB.name,
                    json!({ "jobId": record.vmm_id, "vm": record.vm }),
                )
                .await
                .map_err(ProviderError::from)
                .and_then(|v| {
                    serde_json::from_value::<ScJobJson>(v).map_err(|e| {
                        ProviderError::unreachable(format!("unexpected output from scvmm_job: {e}"))
                    })
                });
            match step {
                Ok(status) => {
                    errors = 0;
                    let s = status
                        .status
                        .clone()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let result = match s.as_str() {
                        "completed" | "succeedwithinfo" => Some(Ok(())),
                        "failed" | "canceled" | "cancelled" => {
                            let e = job_error(&status);
                            Some(Err(ProviderError::new(
                                e.class(),
                                format!("the move of {} to {} failed: {e}", record.vm, record.to),
                            )))
                        }
                        "missing" => Some(Err(ProviderError::permanent(format!(
                            "VMM has no job {}",
                            record.vmm_id
                        )))),
                        _ => None,
                    };
                    if let Some(result) = result {
                        if let Some(j) = self.book().jobs.get_mut(&job.0) {
                            j.finished = true;
                        }
                        self.book().vms.remove(&record.vm);
                        return result;
                    }
                }
                Err(e) => {
                    errors += 1;
                    if errors >= WAIT_ERRORS || e.class == ErrorClass::Permanent {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn add_acl(&self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError> {
        let args = json!({ "vm": vm, "adapter": adapter, "acl": acl_args(acl) });
        self.on_vm_host(vm, scripts::HV_ADD_ACL.name, args).await
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
        self.on_vm_host(vm, scripts::HV_REMOVE_ACL.name, args).await
    }

    async fn connect_adapter(
        &self,
        vm: &str,
        adapter: &str,
        switch: &str,
        vm_network: Option<&str>,
    ) -> Result<(), ProviderError> {
        let id = self.adapter_id(vm, adapter).await?;
        self.vmm(
            scripts::SCVMM_CONNECT.name,
            json!({ "vm": vm, "adapterId": id, "switch": switch, "vmNetwork": vm_network }),
        )
        .await?;
        Ok(())
    }

    async fn set_vlan(&self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError> {
        let id = self.adapter_id(vm, adapter).await?;
        self.vmm(
            scripts::SCVMM_SET_VLAN.name,
            json!({ "vm": vm, "adapterId": id, "vlanId": vlan_id }),
        )
        .await?;
        Ok(())
    }

    async fn close(&self) -> Result<(), ProviderError> {
        self.session.close().await;
        Ok(())
    }
}
