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
//! not depend on the session. A job that completed is confirmed by the VM
//! too (a failed Move-VM job can end `Completed`, its errors in its Error
//! stream, which `hv_job` reads). Clustered VMs move with
//! `Move-ClusterVirtualMachineRole -Wait 0` and are followed the same way,
//! with a grace period and the cluster group's state, since the cluster may
//! queue the move before it starts.
//!
//! The cmdlets' JSON and its mapping live in `hyperv/report.rs`, where each
//! disk is placed on its volume by `hyperv/storage.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::powershell::{PsError, Session, SessionConfig, scripts};
use super::{
    ErrorClass, JobId, MoveKind, MoveRequest, Observed, ObservedHost, ObservedVm, Provider,
    ProviderError,
};
use crate::spec::{Acl, CpuVendor, Direction, HyperVSettings, Transport, VmOperation};

mod report;
mod storage;

pub use report::*;
pub use storage::{Volumes, disk_mib, is_shared_path, observed_disk, vm_folder};

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
    /// A cluster role move: the cluster may queue it before it starts.
    pub(crate) cluster: bool,
    /// When berth started (or found) it.
    pub(crate) since: tokio::time::Instant,
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

/// How long a cluster role move may show no sign of starting before berth
/// judges it failed.
pub const DEFAULT_CLUSTER_GRACE: Duration = Duration::from_secs(300);

/// Consecutive failed checks a wait tolerates before it gives up.
const WAIT_ERRORS: u32 = 3;

/// Hyper-V hosts through PowerShell.
pub struct HyperV {
    settings: HyperVSettings,
    session: Session,
    book: Mutex<Book>,
    poll: Duration,
    cluster_grace: Duration,
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
            cluster_grace: DEFAULT_CLUSTER_GRACE,
        }
    }

    /// Sets how long a cluster role move may show no sign of starting
    /// before it is judged failed.
    pub fn with_cluster_grace(mut self, grace: Duration) -> Self {
        self.cluster_grace = grace;
        self
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
        let outgoing = at_source.outgoing.iter().any(|(n, _)| *n == job.vm);
        match at_source.vms.iter().find(|v| v.name == job.vm) {
            Some(v) if v.operation == Some(VmOperation::Migrating) || outgoing => Ok(None),
            Some(_) if job.cluster && cluster_still_moving(&at_source, job, self.cluster_grace) => {
                Ok(None)
            }
            Some(_) => Ok(Some(Err(ProviderError::retryable(format!(
                "the move of {} to {} ended with the VM still on {}",
                job.vm, job.to, job.from
            ))))),
            None => Ok(None),
        }
    }
}

/// Whether a cluster role move may still be under way although the VM has
/// not left its source yet: `Move-ClusterVirtualMachineRole -Wait 0`
/// returns once the move is initiated, and the cluster may queue it (since
/// Windows Server 2022 a cluster runs one live migration at a time by
/// default). The role's group in state Pending, or a grace period since the
/// move was asked for, means the cluster still has it: berth keeps waiting
/// rather than judging (and retrying) a move the cluster will carry out.
fn cluster_still_moving(at_source: &HostView, job: &MoveJob, grace: Duration) -> bool {
    let pending = at_source
        .groups
        .iter()
        .any(|g| g.name == job.vm && g.pending);
    pending || job.since.elapsed() < grace
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
        backups_end_in: BTreeMap::new(),
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
                    cluster: false,
                    since: tokio::time::Instant::now(),
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
        // The planner's folder for this VM; else the settings' path for the
        // destination, read as the default of Placement `storagePath`, with
        // the VM's own folder under it (all of a VM's files go to
        // -DestinationStoragePath, so VMs never share one).
        let storage = request.storage_path.clone().or_else(|| {
            self.settings
                .destination_storage_paths
                .get(&request.to)
                .or(self.settings.destination_storage_path.as_ref())
                .map(|base| vm_folder(base, &request.vm))
        });
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
        let cluster = started.kind == "cluster";
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
            cluster,
            since: tokio::time::Instant::now(),
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
                                // A completed job is confirmed by the VM
                                // itself: done only once it runs on the
                                // destination.
                                "completed" => match self.check_vm(&record).await {
                                    Ok(None) => {
                                        if let Some(j) = self.book().jobs.get_mut(&job.0) {
                                            j.ps = None;
                                        }
                                        continue;
                                    }
                                    other => other,
                                },
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
