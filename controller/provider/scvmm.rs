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
//! Hyper-V's by adapter id, else a unique name, else a unique non-zero MAC
//! ([`match_adapter`]); a host berth cannot reach that way is reported
//! unreachable, since moving a VM there would cost it its rules.
//!
//! VMM's module loads only in Windows PowerShell 5.1: this backend runs in
//! `powershell.exe` locally or over WinRM, never in PowerShell 7 nor over
//! SSH (refused when the Controller document is validated). The parsing of
//! `scvmm_observe`'s output lives in [`report`](self) (`scvmm/report.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::hyperv::{HostView, acl_args, direction_name, parse_host_report};
use super::powershell::{PsError, RemoteError, Session, SessionConfig, scripts};
use super::{
    ErrorClass, JobId, MoveRequest, Observed, ObservedHost, ObservedVm, Provider, ProviderError,
};
use crate::spec::{Acl, Direction, ScvmmSettings, Transport, VmOperation};

mod report;

pub use report::*;

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

/// `Move-SCVirtualMachine -Path` for a move: VMM puts a VM's files in a
/// folder of the VM's name under `-Path`, so the planner's
/// `<storagePath>\<vm name>` is given as `<storagePath>`; without one, the
/// settings' `destinationStoragePath`, else nothing (the files stay where
/// they are).
pub fn vmm_path(request: &MoveRequest, settings: &ScvmmSettings) -> Option<String> {
    match &request.storage_path {
        Some(p) => {
            let t = p.trim().trim_end_matches(['\\', '/']);
            let parent = t
                .rsplit_once(['\\', '/'])
                .filter(|(_, last)| last.eq_ignore_ascii_case(&request.vm))
                .map(|(parent, _)| {
                    if parent.ends_with(':') {
                        format!("{parent}\\")
                    } else {
                        parent.to_string()
                    }
                });
            Some(parent.unwrap_or_else(|| t.to_string()))
        }
        None => settings.destination_storage_path.clone(),
    }
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
            backups_end_in: BTreeMap::new(),
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
                json!({ "vm": request.vm, "to": to, "path": vmm_path(request, &self.settings) }),
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
