//! The simulated world: a deterministic discrete-event model of a fleet.
//!
//! Time is integer microseconds, so the same requests at the same times give
//! byte-identical journals. The world does no I/O and reads no clock: its
//! owner advances it to "now" before each operation, and every scheduled
//! event (a migration ending, a wait for a slot running out) is processed at
//! its exact time, whenever the owner happens to look.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::provider::{
    JobId, MoveKind, MoveRequest, Observed, ObservedAdapter, ObservedHost, ObservedVm,
    ProviderError, WaitReason,
};
use crate::spec::{Acl, CpuVendor, Direction, FleetSpec, PowerState, VmOperation};

use super::journal::{Event, EventKind};

/// Simulated time in microseconds since the world began.
pub type SimTime = u64;

/// Microseconds in a second.
pub const SECOND: SimTime = 1_000_000;

/// Fixed cost of any migration (5 s), and the whole cost of an offline one.
const BASE_MOVE: SimTime = 5 * SECOND;

/// Converts simulated time to seconds.
pub fn seconds(t: SimTime) -> f64 {
    t as f64 / SECOND as f64
}

/// Duration of a live migration by the contract's model:
/// `5 s + memoryMiB / min(rate of source, rate of destination)`.
pub fn live_duration(memory_mib: u64, rate_from: f64, rate_to: f64) -> SimTime {
    let rate = rate_from.min(rate_to).max(f64::MIN_POSITIVE);
    BASE_MOVE + (memory_mib as f64 / rate * SECOND as f64).round() as SimTime
}

/// The failure modes in force.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Faults {
    transient_failure_rate: f64,
    drop_acls_on_migration: bool,
    disconnect_on_offline_move: bool,
    over_limit_wait: SimTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Host {
    name: String,
    memory_mib: u64,
    max_migrations: u32,
    cpu_vendor: CpuVendor,
    switches: Vec<String>,
    rate: f64,
    down: bool,
    /// Memory held by live VMs here and by live migrations coming in.
    used_mib: u64,
    /// Live migrations touching this host that are transferring.
    active_live: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Vm {
    name: String,
    host: usize,
    memory_mib: u64,
    state: PowerState,
    backups: Vec<(SimTime, SimTime)>,
    fail_next: u32,
    attempts: u32,
    adapters: Vec<Adapter>,
    job: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Adapter {
    name: String,
    switch: Option<String>,
    connected: bool,
    vm_network: Option<String>,
    vlan_id: Option<u16>,
    acls: Vec<Acl>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Phase {
    /// Past a host's limit: waits for a slot until `deadline`.
    Waiting { deadline: SimTime },
    /// Moving; ends at `ends`, failing with `fail` when set.
    Transferring { ends: SimTime, fail: Option<String> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Migration {
    job: u64,
    vm: usize,
    from: usize,
    to: usize,
    kind: MoveKind,
    requested: SimTime,
    /// Outcome decided at request time (seeded), applied when it ends.
    fail: Option<String>,
    phase: Phase,
}

impl Migration {
    fn due(&self) -> SimTime {
        match self.phase {
            Phase::Waiting { deadline } => deadline,
            Phase::Transferring { ends, .. } => ends,
        }
    }
}

/// The whole simulated fleet and its clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    seed: u64,
    faults: Faults,
    now: SimTime,
    hosts: Vec<Host>,
    vms: Vec<Vm>,
    /// Migrations in flight, in request order.
    migrations: Vec<Migration>,
    next_job: u64,
    #[serde(skip)]
    host_index: HashMap<String, usize>,
    #[serde(skip)]
    vm_index: HashMap<String, usize>,
    /// Outcomes of jobs that ended during this process's life.
    #[serde(skip)]
    finished: HashMap<u64, Result<(), ProviderError>>,
    /// Journal events not yet taken by the owner.
    #[serde(skip)]
    events: Vec<Event>,
}

impl World {
    /// A world at time 0 as the Fleet document describes it.
    pub fn new(fleet: &FleetSpec) -> World {
        let hosts: Vec<Host> = fleet
            .hosts
            .iter()
            .map(|h| Host {
                name: h.name.clone(),
                memory_mib: h.memory_mib,
                max_migrations: h.max_migrations,
                cpu_vendor: h.cpu_vendor,
                switches: h.switches.clone(),
                rate: h.migration_rate_mibps,
                down: h.down,
                used_mib: 0,
                active_live: 0,
            })
            .collect();
        let host_index: HashMap<String, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        let mut world = World {
            seed: fleet.seed,
            faults: Faults {
                transient_failure_rate: fleet.faults.transient_failure_rate,
                drop_acls_on_migration: fleet.faults.drop_acls_on_migration,
                disconnect_on_offline_move: fleet.faults.disconnect_on_offline_move,
                over_limit_wait: fleet.faults.over_limit_wait.as_micros() as SimTime,
            },
            now: 0,
            hosts,
            vms: Vec::new(),
            migrations: Vec::new(),
            next_job: 1,
            host_index,
            vm_index: HashMap::new(),
            finished: HashMap::new(),
            events: Vec::new(),
        };
        for v in &fleet.vms {
            // Validation guarantees the host exists; skip defensively if not.
            let Some(&host) = world.host_index.get(&v.host) else {
                continue;
            };
            if v.state.is_live() {
                world.hosts[host].used_mib += v.memory_mib;
            }
            world.vms.push(Vm {
                name: v.name.clone(),
                host,
                memory_mib: v.memory_mib,
                state: v.state,
                backups: v
                    .backups
                    .iter()
                    .map(|(at, len)| (at.as_micros() as SimTime, len.as_micros() as SimTime))
                    .collect(),
                fail_next: v.fail_next_migrations,
                attempts: 0,
                adapters: v
                    .adapters
                    .iter()
                    .map(|a| Adapter {
                        name: a.name.clone(),
                        switch: a.switch.clone(),
                        connected: a.connected,
                        vm_network: a.vm_network.clone(),
                        vlan_id: a.vlan_id,
                        acls: a.acls.clone(),
                    })
                    .collect(),
                job: None,
            });
        }
        world.reindex();
        world
    }

    /// Rebuilds the name indexes (after deserialising a saved world).
    pub fn reindex(&mut self) {
        self.host_index = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        self.vm_index = self
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), i))
            .collect();
    }

    /// The world's current time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The time of the next scheduled event, if any.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.migrations.iter().map(Migration::due).min()
    }

    /// Takes the journal events produced so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Number of migrations in flight (transferring or waiting).
    pub fn in_flight(&self) -> usize {
        self.migrations.len()
    }

    /// Processes every scheduled event up to `to`, each at its own time.
    pub fn advance(&mut self, to: SimTime) {
        while let Some(t) = self.next_event_time() {
            if t > to {
                break;
            }
            self.now = self.now.max(t);
            self.process_due(t);
        }
        self.now = self.now.max(to);
    }

    fn process_due(&mut self, t: SimTime) {
        // 1. Transfers ending now complete or fail, freeing slots.
        let mut i = 0;
        while i < self.migrations.len() {
            if matches!(self.migrations[i].phase, Phase::Transferring { ends, .. } if ends <= t) {
                let m = self.migrations.remove(i);
                self.finish_transfer(m);
            } else {
                i += 1;
            }
        }
        // 2. Waiting migrations take freed slots, first come first served.
        self.start_waiting();
        // 3. Waits that ran out fail.
        let mut i = 0;
        while i < self.migrations.len() {
            if matches!(self.migrations[i].phase, Phase::Waiting { deadline } if deadline <= t) {
                let m = self.migrations.remove(i);
                let msg = format!(
                    "no live-migration slot freed on {} or {} within {}s; the job gave up",
                    self.hosts[m.from].name,
                    self.hosts[m.to].name,
                    seconds(self.faults.over_limit_wait)
                );
                self.release_reservation(&m);
                self.fail(&m, ProviderError::wait(WaitReason::HostBusy, msg));
            } else {
                i += 1;
            }
        }
    }

    fn start_waiting(&mut self) {
        for i in 0..self.migrations.len() {
            let (from, to, vm) = {
                let m = &self.migrations[i];
                if !matches!(m.phase, Phase::Waiting { .. }) {
                    continue;
                }
                (m.from, m.to, m.vm)
            };
            if self.has_slot(from) && self.has_slot(to) {
                self.hosts[from].active_live += 1;
                self.hosts[to].active_live += 1;
                let ends = self.now
                    + live_duration(
                        self.vms[vm].memory_mib,
                        self.hosts[from].rate,
                        self.hosts[to].rate,
                    );
                let fail = self.migrations[i].fail.clone();
                self.migrations[i].phase = Phase::Transferring { ends, fail };
            }
        }
    }

    fn has_slot(&self, host: usize) -> bool {
        self.hosts[host].active_live < self.hosts[host].max_migrations
    }

    fn release_reservation(&mut self, m: &Migration) {
        if m.kind == MoveKind::Live {
            let mem = self.vms[m.vm].memory_mib;
            let to = &mut self.hosts[m.to];
            to.used_mib = to.used_mib.saturating_sub(mem);
        }
    }

    fn finish_transfer(&mut self, m: Migration) {
        if m.kind == MoveKind::Live {
            self.hosts[m.from].active_live = self.hosts[m.from].active_live.saturating_sub(1);
            self.hosts[m.to].active_live = self.hosts[m.to].active_live.saturating_sub(1);
        }
        if let Some(msg) = m.fail.clone() {
            self.release_reservation(&m);
            self.fail(&m, ProviderError::retryable(msg));
            return;
        }
        let mem = self.vms[m.vm].memory_mib;
        if m.kind == MoveKind::Live {
            let from = &mut self.hosts[m.from];
            from.used_mib = from.used_mib.saturating_sub(mem);
        }
        self.vms[m.vm].host = m.to;
        self.vms[m.vm].job = None;
        let (vm, from, to) = (
            self.vms[m.vm].name.clone(),
            self.hosts[m.from].name.clone(),
            self.hosts[m.to].name.clone(),
        );
        self.emit(EventKind::MigrationCompleted {
            vm: vm.clone(),
            from,
            to,
            kind: m.kind,
        });
        self.finished.insert(m.job, Ok(()));
        if self.faults.drop_acls_on_migration {
            let adapters = std::mem::take(&mut self.vms[m.vm].adapters);
            let mut kept = Vec::with_capacity(adapters.len());
            for mut a in adapters {
                for acl in std::mem::take(&mut a.acls) {
                    self.emit(EventKind::AclRemoved {
                        vm: vm.clone(),
                        adapter: a.name.clone(),
                        direction: acl.direction,
                        weight: acl.weight,
                    });
                }
                kept.push(a);
            }
            self.vms[m.vm].adapters = kept;
        }
        if m.kind == MoveKind::Offline && self.faults.disconnect_on_offline_move {
            let mut events = Vec::new();
            for a in &mut self.vms[m.vm].adapters {
                if a.connected {
                    a.connected = false;
                    events.push(EventKind::AdapterDisconnected {
                        vm: vm.clone(),
                        adapter: a.name.clone(),
                        switch: a.switch.clone().unwrap_or_default(),
                    });
                }
            }
            for e in events {
                self.emit(e);
            }
        }
    }

    fn fail(&mut self, m: &Migration, error: ProviderError) {
        self.vms[m.vm].job = None;
        self.emit(EventKind::MigrationFailed {
            vm: self.vms[m.vm].name.clone(),
            from: self.hosts[m.from].name.clone(),
            to: self.hosts[m.to].name.clone(),
            kind: m.kind,
            error: error.message.clone(),
        });
        self.finished.insert(m.job, Err(error));
    }

    fn emit(&mut self, kind: EventKind) {
        self.events.push(Event {
            t: seconds(self.now),
            kind,
        });
    }

    fn vm_index(&self, name: &str) -> Result<usize, ProviderError> {
        self.vm_index
            .get(name)
            .copied()
            .ok_or_else(|| ProviderError::permanent(format!("no VM named `{name}` in the fleet")))
    }

    /// Seconds until the backup running now on a VM ends, if one runs.
    fn backup_end(&self, vm: usize) -> Option<f64> {
        self.vms[vm]
            .backups
            .iter()
            .filter(|(at, len)| self.now >= *at && self.now < at.saturating_add(*len))
            .map(|(at, len)| seconds(at.saturating_add(*len) - self.now))
            .reduce(f64::max)
    }

    fn in_backup(&self, vm: usize) -> bool {
        self.vms[vm]
            .backups
            .iter()
            .any(|(at, len)| self.now >= *at && self.now < at.saturating_add(*len))
    }

    /// Requests a move at the current time; the job's outcome comes later
    /// (or at once, for requests that fail on the spot).
    pub fn request_move(&mut self, req: &MoveRequest) -> Result<JobId, ProviderError> {
        let vm = self.vm_index(&req.vm)?;
        if self.vms[vm].job.is_some() {
            return Err(ProviderError::wait(
                WaitReason::HostBusy,
                format!("VM `{}` is already migrating", req.vm),
            ));
        }
        let from = self.vms[vm].host;
        if self.hosts[from].name != req.from {
            return Err(ProviderError::permanent(format!(
                "VM `{}` is on `{}`, not `{}`",
                req.vm, self.hosts[from].name, req.from
            )));
        }
        let to = *self.host_index.get(&req.to).ok_or_else(|| {
            ProviderError::permanent(format!("no host named `{}` in the fleet", req.to))
        })?;
        let kind = MoveKind::for_state(self.vms[vm].state);
        if kind != req.kind {
            return Err(ProviderError::permanent(format!(
                "VM `{}` is {}: it moves {kind}, not {}",
                req.vm, self.vms[vm].state, req.kind
            )));
        }
        let job = self.next_job;
        self.next_job += 1;
        self.vms[vm].attempts += 1;
        let attempt = self.vms[vm].attempts;
        self.emit(EventKind::MigrationStarted {
            vm: req.vm.clone(),
            from: req.from.clone(),
            to: req.to.clone(),
            kind,
        });
        let mut m = Migration {
            job,
            vm,
            from,
            to,
            kind,
            requested: self.now,
            fail: None,
            phase: Phase::Waiting { deadline: self.now },
        };
        if let Some(error) = self.refusal(vm, from, to, kind) {
            self.fail(&m, error);
            return Ok(JobId(job.to_string()));
        }
        if self.vms[vm].fail_next > 0 {
            self.vms[vm].fail_next -= 1;
            m.fail = Some("migration failed (simulated: failNextMigrations)".to_string());
        } else if self.faults.transient_failure_rate > 0.0
            && unit_random(self.seed, &req.vm, attempt) < self.faults.transient_failure_rate
        {
            m.fail = Some("migration failed: the connection to the destination was lost (simulated transient failure)".to_string());
        }
        self.vms[vm].job = Some(job);
        match kind {
            MoveKind::Offline => {
                m.phase = Phase::Transferring {
                    ends: self.now + BASE_MOVE,
                    fail: m.fail.clone(),
                };
            }
            MoveKind::Live => {
                self.hosts[to].used_mib += self.vms[vm].memory_mib;
                if self.has_slot(from) && self.has_slot(to) {
                    self.hosts[from].active_live += 1;
                    self.hosts[to].active_live += 1;
                    m.phase = Phase::Transferring {
                        ends: self.now
                            + live_duration(
                                self.vms[vm].memory_mib,
                                self.hosts[from].rate,
                                self.hosts[to].rate,
                            ),
                        fail: m.fail.clone(),
                    };
                } else {
                    m.phase = Phase::Waiting {
                        deadline: self.now + self.faults.over_limit_wait,
                    };
                }
            }
        }
        self.migrations.push(m);
        Ok(JobId(job.to_string()))
    }

    /// Why a move cannot even begin, if it cannot.
    fn refusal(&self, vm: usize, from: usize, to: usize, kind: MoveKind) -> Option<ProviderError> {
        let (v, src, dst) = (&self.vms[vm], &self.hosts[from], &self.hosts[to]);
        if from == to {
            return Some(ProviderError::permanent(format!(
                "VM `{}` is already on `{}`",
                v.name, dst.name
            )));
        }
        for h in [src, dst] {
            if h.down {
                return Some(ProviderError::unreachable(format!(
                    "host `{}` cannot be reached",
                    h.name
                )));
            }
        }
        if self.in_backup(vm) {
            return Some(ProviderError::wait(
                WaitReason::BackupInProgress,
                format!("VM `{}` is being backed up and cannot be moved now", v.name),
            ));
        }
        if kind == MoveKind::Live && src.cpu_vendor != dst.cpu_vendor {
            return Some(ProviderError::permanent(format!(
                "cannot live-migrate `{}` from {} ({}) to {} ({}): processors are incompatible",
                v.name, src.name, src.cpu_vendor, dst.name, dst.cpu_vendor
            )));
        }
        for a in &v.adapters {
            if let (true, Some(sw)) = (a.connected, &a.switch)
                && !dst.switches.contains(sw)
            {
                return Some(ProviderError::permanent(format!(
                    "host `{}` has no virtual switch `{sw}` for adapter `{}` of `{}`",
                    dst.name, a.name, v.name
                )));
            }
        }
        if kind == MoveKind::Live {
            let free = dst.memory_mib.saturating_sub(dst.used_mib);
            if free < v.memory_mib {
                return Some(ProviderError::permanent(format!(
                    "not enough memory on `{}` for `{}`: needs {} MiB, {} MiB free",
                    dst.name, v.name, v.memory_mib, free
                )));
            }
        }
        None
    }

    /// The outcome of a job, or `None` while it runs.
    pub fn job_result(&self, job: &JobId) -> Option<Result<(), ProviderError>> {
        let id: u64 = job.0.parse().ok()?;
        self.finished.get(&id).cloned()
    }

    /// Whether a job is in flight.
    pub fn job_running(&self, job: &JobId) -> bool {
        job.0
            .parse::<u64>()
            .is_ok_and(|id| self.migrations.iter().any(|m| m.job == id))
    }

    /// The fleet as it is now.
    pub fn observe(&self) -> Observed {
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    ObservedHost {
                        name: h.name.clone(),
                        memory_mib: h.memory_mib,
                        max_migrations: h.max_migrations,
                        cpu_vendor: h.cpu_vendor,
                        switches: h.switches.clone(),
                        migration_rate_mibps: Some(h.rate),
                        reachable: !h.down,
                        max_storage_migrations: 2,
                        network_mibps: None,
                        volumes: Vec::new(),
                        cluster: None,
                    },
                )
            })
            .collect();
        let vms = self
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), self.vm_view(i)))
            .collect();
        let backups_end_in = (0..self.vms.len())
            .filter_map(|i| {
                self.backup_end(i)
                    .map(|end| (self.vms[i].name.clone(), end))
            })
            .collect();
        Observed {
            at: seconds(self.now),
            hosts,
            vms,
            backups_end_in,
        }
    }

    /// One VM as it is now.
    pub fn observe_vm(&self, name: &str) -> Result<ObservedVm, ProviderError> {
        Ok(self.vm_view(self.vm_index(name)?))
    }

    fn vm_view(&self, i: usize) -> ObservedVm {
        let v = &self.vms[i];
        let migration = v
            .job
            .and_then(|job| self.migrations.iter().find(|m| m.job == job));
        let operation = if migration.is_some() {
            Some(VmOperation::Migrating)
        } else if self.in_backup(i) {
            Some(VmOperation::BackingUp)
        } else {
            None
        };
        ObservedVm {
            name: v.name.clone(),
            host: self.hosts[v.host].name.clone(),
            state: v.state,
            memory_mib: v.memory_mib,
            operation,
            migrating_to: migration.map(|m| self.hosts[m.to].name.clone()),
            job: migration.map(|m| JobId(m.job.to_string())),
            disks: Vec::new(),
            clustered: false,
            adapters: v
                .adapters
                .iter()
                .map(|a| ObservedAdapter {
                    name: a.name.clone(),
                    switch: if a.connected { a.switch.clone() } else { None },
                    vm_network: a.vm_network.clone(),
                    vlan_id: a.vlan_id,
                    acls: a.acls.clone(),
                })
                .collect(),
        }
    }

    fn adapter_mut(&mut self, vm: &str, adapter: &str) -> Result<(usize, usize), ProviderError> {
        let v = self.vm_index(vm)?;
        let host = self.vms[v].host;
        if self.hosts[host].down {
            return Err(ProviderError::unreachable(format!(
                "host `{}` of VM `{vm}` cannot be reached",
                self.hosts[host].name
            )));
        }
        let a = self.vms[v]
            .adapters
            .iter()
            .position(|a| a.name == adapter)
            .ok_or_else(|| {
                ProviderError::permanent(format!("VM `{vm}` has no adapter `{adapter}`"))
            })?;
        Ok((v, a))
    }

    /// Adds an extended ACL rule.
    pub fn add_acl(&mut self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let acls = &mut self.vms[v].adapters[a].acls;
        if acls.iter().any(|x| x.key() == acl.key()) {
            return Err(ProviderError::permanent(format!(
                "adapter `{adapter}` of `{vm}` already has an {} ACL with weight {}",
                acl.direction, acl.weight
            )));
        }
        acls.push(acl.clone());
        acls.sort();
        self.emit(EventKind::AclAdded {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            direction: acl.direction,
            weight: acl.weight,
            rule: Box::new(acl.clone()),
        });
        Ok(())
    }

    /// Removes the extended ACL rule with this identity.
    pub fn remove_acl(
        &mut self,
        vm: &str,
        adapter: &str,
        direction: Direction,
        weight: u32,
    ) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let acls = &mut self.vms[v].adapters[a].acls;
        let Some(pos) = acls.iter().position(|x| x.key() == (direction, weight)) else {
            return Err(ProviderError::permanent(format!(
                "adapter `{adapter}` of `{vm}` has no {direction} ACL with weight {weight}"
            )));
        };
        acls.remove(pos);
        self.emit(EventKind::AclRemoved {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            direction,
            weight,
        });
        Ok(())
    }

    /// Connects an adapter to a switch on the VM's current host.
    pub fn connect(
        &mut self,
        vm: &str,
        adapter: &str,
        switch: &str,
        vm_network: Option<&str>,
    ) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let host = &self.hosts[self.vms[v].host];
        if !host.switches.iter().any(|s| s == switch) {
            return Err(ProviderError::permanent(format!(
                "host `{}` has no virtual switch `{switch}`",
                host.name
            )));
        }
        let ad = &mut self.vms[v].adapters[a];
        let network_ok = vm_network.is_none() || ad.vm_network.as_deref() == vm_network;
        if ad.connected && ad.switch.as_deref() == Some(switch) && network_ok {
            return Ok(());
        }
        ad.connected = true;
        ad.switch = Some(switch.to_string());
        if let Some(n) = vm_network {
            ad.vm_network = Some(n.to_string());
        }
        self.emit(EventKind::AdapterConnected {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            switch: switch.to_string(),
        });
        Ok(())
    }

    /// Sets an adapter's access VLAN.
    pub fn set_vlan(&mut self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let ad = &mut self.vms[v].adapters[a];
        if ad.vlan_id == Some(vlan_id) {
            return Ok(());
        }
        ad.vlan_id = Some(vlan_id);
        self.emit(EventKind::VlanSet {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            vlan_id,
        });
        Ok(())
    }
}

/// A deterministic number in [0, 1) for a VM's n-th attempt (SplitMix64).
fn unit_random(seed: u64, vm: &str, attempt: u32) -> f64 {
    // A hash of the name, so the draw does not depend on declaration order.
    let h = super::fnv1a(vm.as_bytes());
    let mut z = seed ^ h ^ (u64::from(attempt) << 32).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
