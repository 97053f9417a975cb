//! Providers: observe the fleet, start and follow jobs, change adapters.
//!
//! A provider is berth's only contact with hosts. It knows nothing of specs
//! or plans: it reports what is ([`Observed`]) and carries out one small
//! operation at a time, classifying every failure ([`ErrorClass`]) so the
//! executor can decide whether to retry, wait, give up or re-observe.
//! Backends: the built-in simulator ([`sim`]), read-only snapshots written by
//! `berth observe` ([`snapshot`]), and real Hyper-V and SCVMM.

pub mod hyperv;
pub mod json;
pub mod powershell;
pub mod scvmm;
pub mod sim;
pub mod snapshot;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::spec::{Acl, CpuVendor, Direction, PowerState, VmOperation};

/// The fleet as a provider sees it at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Provider time of the observation, seconds (simulated with `sim`).
    pub at: f64,
    /// Hosts by name.
    pub hosts: BTreeMap<String, ObservedHost>,
    /// VMs by name.
    pub vms: BTreeMap<String, ObservedVm>,
    /// Seconds until the running backup of a VM ends, for the VMs whose
    /// backup end the provider can tell (the simulator can; Hyper-V cannot).
    pub backups_end_in: BTreeMap<String, f64>,
}

/// One host as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedHost {
    /// Name.
    pub name: String,
    /// Memory for VMs, MiB.
    pub memory_mib: u64,
    /// The host's own live-migration limit.
    pub max_migrations: u32,
    /// CPU vendor.
    pub cpu_vendor: CpuVendor,
    /// Virtual switches.
    pub switches: Vec<String>,
    /// Throughput of one live migration, MiB/s, when known.
    pub migration_rate_mibps: Option<f64>,
    /// Whether the host answered.
    pub reachable: bool,
    /// The host's own limit for moves that copy storage (Hyper-V default 2).
    pub max_storage_migrations: u32,
    /// The host's migration network, shared by every migration in or out
    /// of it at the same moment, MiB/s; `None`: not shared.
    pub network_mibps: Option<f64>,
    /// Volumes where VM files live.
    pub volumes: Vec<ObservedVolume>,
    /// The failover cluster the host is a node of, if any.
    pub cluster: Option<String>,
}

/// One volume of a host where VM files live.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedVolume {
    /// Path as the host names it (`D:\VMs`).
    pub path: String,
    /// Free space, MiB.
    pub free_mib: u64,
}

/// One virtual disk of a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedDisk {
    /// Path of the disk file.
    pub path: String,
    /// Space it takes on its volume, MiB (the file size for dynamic disks).
    pub size_mib: u64,
    /// The host volume it lies on; `None` for shared storage (CSV, SMB),
    /// which is never copied.
    pub volume: Option<String>,
}

/// One VM as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedVm {
    /// Name.
    pub name: String,
    /// The host it is on (the source while it migrates).
    pub host: String,
    /// Power state.
    pub state: PowerState,
    /// Assigned memory, MiB.
    pub memory_mib: u64,
    /// An operation under way (migration, backup).
    pub operation: Option<VmOperation>,
    /// While migrating: the destination.
    pub migrating_to: Option<String>,
    /// While migrating: the job to follow, when the provider can follow it.
    pub job: Option<JobId>,
    /// Network adapters.
    pub adapters: Vec<ObservedAdapter>,
    /// Virtual disks; those on a volume of its host travel with it.
    pub disks: Vec<ObservedDisk>,
    /// A clustered (highly available) VM: it moves only between nodes of
    /// its cluster.
    pub clustered: bool,
}

impl ObservedVm {
    /// MiB of disks that travel with the VM when it moves (0: shared storage).
    pub fn local_disk_mib(&self) -> u64 {
        self.disks
            .iter()
            .filter(|d| d.volume.is_some())
            .map(|d| d.size_mib)
            .sum()
    }
}

/// One network adapter as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAdapter {
    /// Name.
    pub name: String,
    /// The switch it is connected to; `None` when not connected.
    pub switch: Option<String>,
    /// SCVMM VM network, when known.
    pub vm_network: Option<String>,
    /// Access VLAN, when set.
    pub vlan_id: Option<u16>,
    /// Extended ACLs, normalised and sorted.
    pub acls: Vec<Acl>,
}

impl Observed {
    /// Memory held on each host by running VMs on it and by live migrations
    /// coming in (a live migration holds memory on both ends), MiB.
    pub fn memory_used(&self) -> BTreeMap<&str, u64> {
        // Summed in a hash map: a search of the ordered map for each of
        // 100,000 VMs cost more than the rest of this.
        let mut used: std::collections::HashMap<&str, u64> =
            self.hosts.keys().map(|h| (h.as_str(), 0)).collect();
        for vm in self.vms.values() {
            if !vm.state.is_live() {
                continue;
            }
            *used.entry(vm.host.as_str()).or_default() += vm.memory_mib;
            if let Some(to) = &vm.migrating_to {
                *used.entry(to.as_str()).or_default() += vm.memory_mib;
            }
        }
        used.into_iter().collect()
    }
}

/// How a VM moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveKind {
    /// The VM keeps running (running or paused VMs).
    Live,
    /// The VM is off or saved.
    Offline,
}

impl MoveKind {
    /// The kind of move a VM in `state` makes.
    pub fn for_state(state: PowerState) -> Self {
        if state.is_live() {
            MoveKind::Live
        } else {
            MoveKind::Offline
        }
    }
}

impl fmt::Display for MoveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoveKind::Live => "live",
            MoveKind::Offline => "offline",
        })
    }
}

/// A request to move a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRequest {
    /// The VM.
    pub vm: String,
    /// The host it is on.
    pub from: String,
    /// The host it goes to.
    pub to: String,
    /// Live or offline.
    pub kind: MoveKind,
    /// With storage: the folder on the destination that the VM's files go
    /// to (`<storagePath>\<vm name>`); `None`: memory only (shared storage).
    pub storage_path: Option<String>,
}

/// An opaque handle on a running job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a provider asks to wait rather than retry at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WaitReason {
    /// The VM is being backed up.
    BackupInProgress,
    /// A host has no free migration slot, or the VM is busy.
    HostBusy,
}

/// What the executor should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorClass {
    /// Try again after a backoff; counts as a failed attempt.
    Retryable,
    /// Wait and try again; not a failed attempt.
    Wait(WaitReason),
    /// Will not succeed as asked (incompatible CPU, missing switch, not
    /// enough memory, object missing): block with the reason.
    Permanent,
    /// The provider or a host cannot be reached.
    Unreachable,
}

/// A classified provider failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What to do about it.
    pub class: ErrorClass,
    /// What happened, for people.
    pub message: String,
}

impl ProviderError {
    /// A retryable failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }
    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }
    /// An unreachable provider or host.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Unreachable, message)
    }
    /// A failure to wait out.
    pub fn wait(reason: WaitReason, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Wait(reason), message)
    }
    /// A failure of a given class.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            message: message.into(),
        }
    }
}

/// The operations every backend offers.
///
/// Calls may run concurrently. Nothing here blocks a thread: waits are
/// async, so the simulator can run on a paused clock.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short description for messages (`sim:examples/lab/fleet.yaml`).
    fn describe(&self) -> String;

    /// The current instant on the fleet's clock: the wall clock for real
    /// hosts, simulated time for the simulator (move windows are judged
    /// on it).
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    /// The fleet as it is now.
    async fn observe(&self) -> Result<Observed, ProviderError>;

    /// One VM as it is now (after a move, before a retry).
    async fn observe_vm(&self, vm: &str) -> Result<ObservedVm, ProviderError> {
        self.observe()
            .await?
            .vms
            .remove(vm)
            .ok_or_else(|| ProviderError::permanent(format!("no VM named `{vm}` in the fleet")))
    }

    /// Requests a move and returns the job that carries it out.
    async fn start_move(&self, request: &MoveRequest) -> Result<JobId, ProviderError>;

    /// Follows a job to its end: `Ok` when the move completed.
    async fn wait_job(&self, job: &JobId) -> Result<(), ProviderError>;

    /// Adds one extended ACL rule to an adapter.
    async fn add_acl(&self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError>;

    /// Removes the rule with this identity from an adapter.
    async fn remove_acl(
        &self,
        vm: &str,
        adapter: &str,
        direction: Direction,
        weight: u32,
    ) -> Result<(), ProviderError>;

    /// Connects an adapter to a switch (and, with SCVMM, a VM network).
    async fn connect_adapter(
        &self,
        vm: &str,
        adapter: &str,
        switch: &str,
        vm_network: Option<&str>,
    ) -> Result<(), ProviderError>;

    /// Sets an adapter's access VLAN.
    async fn set_vlan(&self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError>;

    /// Flushes state and ends sessions; called once at the end of a command.
    async fn close(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}
