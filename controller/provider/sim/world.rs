//! The simulated world: a deterministic discrete-event model of a fleet.
//!
//! Time is integer microseconds, so the same requests at the same times give
//! byte-identical journals. The world does no I/O and reads no clock: its
//! owner advances it to "now" before each operation, and every scheduled
//! event (a migration ending, a wait for a slot running out) is processed at
//! its exact time, whenever the owner happens to look.
//!
//! A migration that transfers data (a live one, or one that copies disks)
//! first copies, then takes the fixed 5 s to finish. While copying it moves
//! at `min(rate of source, rate of destination)`, and where a host has a
//! shared migration network (`networkMiBps`) at most `networkMiBps / n`, n
//! being the migrations copying through that host at that moment; rates are
//! recomputed whenever a copy starts or ends, so durations are dynamic and
//! each copy's end is re-scheduled event by event.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::provider::{JobId, MoveKind, MoveRequest, ProviderError, WaitReason};
use crate::spec::{Acl, CpuVendor, FleetSpec, PowerState};

use super::journal::{Event, EventKind, MoveStorage};

mod adapters;
mod view;

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

/// Duration of a live migration alone on its hosts' networks:
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
    /// Own limit for moves that copy disks.
    #[serde(default = "two")]
    max_storage: u32,
    /// Shared migration network, MiB/s.
    #[serde(default)]
    network: Option<f64>,
    /// Volumes where VM files live.
    #[serde(default)]
    volumes: Vec<Volume>,
    /// Moves with storage touching this host that hold a slot.
    #[serde(default)]
    active_storage: u32,
    /// Migrations touching this host that are copying data now.
    #[serde(default)]
    copying: u32,
}

fn two() -> u32 {
    2
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Volume {
    path: String,
    free_mib: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Disk {
    path: String,
    size_mib: u64,
    /// Index of the volume of the VM's host it lies on; `None`: shared.
    volume: Option<usize>,
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
    #[serde(default)]
    disks: Vec<Disk>,
}

impl Vm {
    fn local_disk_mib(&self) -> u64 {
        self.disks
            .iter()
            .filter(|d| d.volume.is_some())
            .map(|d| d.size_mib)
            .sum()
    }
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
    /// Copying data (memory and/or disks) at the migration's current rate;
    /// then `Transferring` for the fixed 5 s.
    Copying,
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
    /// MiB of disks copied (0: memory only or a plain offline move).
    #[serde(default)]
    storage_mib: u64,
    /// The destination volume (index on the destination host).
    #[serde(default)]
    volume: Option<usize>,
    /// The folder the VM's files go to on the destination.
    #[serde(default)]
    storage_path: Option<String>,
    /// While copying: MiB left at `since`, and the rate since then.
    #[serde(default)]
    left_mib: f64,
    #[serde(default)]
    rate: f64,
    #[serde(default)]
    since: SimTime,
}

impl Migration {
    fn due(&self) -> SimTime {
        match self.phase {
            Phase::Waiting { deadline } => deadline,
            Phase::Transferring { ends, .. } => ends,
            Phase::Copying => {
                self.since
                    + (self.left_mib / self.rate.max(f64::MIN_POSITIVE) * SECOND as f64).round()
                        as SimTime
            }
        }
    }

    fn live(&self) -> bool {
        self.kind == MoveKind::Live
    }

    fn with_storage(&self) -> bool {
        self.storage_mib > 0
    }

    /// What it reports in the journal.
    fn storage(&self, hosts: &[Host]) -> MoveStorage {
        MoveStorage {
            storage_gib: (self.storage_mib as f64 / 1024.0 * 1000.0).round() / 1000.0,
            volume: self
                .volume
                .and_then(|v| hosts[self.to].volumes.get(v))
                .map(|v| v.path.clone()),
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
                max_storage: h.max_storage_migrations,
                network: h.network_mibps,
                volumes: h
                    .volumes
                    .iter()
                    .map(|v| Volume {
                        path: v.path.clone(),
                        free_mib: v.free_mib,
                    })
                    .collect(),
                active_storage: 0,
                copying: 0,
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
            let disks =
                v.disks
                    .iter()
                    .map(|d| Disk {
                        path: d.path.clone(),
                        size_mib: d.size_mib,
                        volume: d.volume.as_ref().and_then(|p| {
                            world.hosts[host].volumes.iter().position(|x| &x.path == p)
                        }),
                    })
                    .collect();
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
                disks,
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
        let mut changed = false;
        // 1. Copies ending now enter their fixed 5 s, freeing network share.
        for i in 0..self.migrations.len() {
            let m = &self.migrations[i];
            if matches!(m.phase, Phase::Copying) && m.due() <= t {
                let (from, to) = (m.from, m.to);
                let fail = m.fail.clone();
                self.hosts[from].copying = self.hosts[from].copying.saturating_sub(1);
                self.hosts[to].copying = self.hosts[to].copying.saturating_sub(1);
                self.migrations[i].left_mib = 0.0;
                self.migrations[i].phase = Phase::Transferring {
                    ends: t + BASE_MOVE,
                    fail,
                };
                changed = true;
            }
        }
        // 2. Transfers ending now complete or fail, freeing slots.
        let mut i = 0;
        while i < self.migrations.len() {
            if matches!(self.migrations[i].phase, Phase::Transferring { ends, .. } if ends <= t) {
                let m = self.migrations.remove(i);
                self.finish_transfer(m);
            } else {
                i += 1;
            }
        }
        // 3. Waiting migrations take freed slots, first come first served.
        changed |= self.start_waiting();
        // 4. Waits that ran out fail.
        let mut i = 0;
        while i < self.migrations.len() {
            if matches!(self.migrations[i].phase, Phase::Waiting { deadline } if deadline <= t) {
                let m = self.migrations.remove(i);
                let msg = if m.with_storage() {
                    format!(
                        "no migration slot freed within {}s ({}); the job gave up",
                        seconds(self.faults.over_limit_wait),
                        self.held_by(&m).join("; ")
                    )
                } else {
                    format!(
                        "no live-migration slot freed on {} or {} within {}s; the job gave up",
                        self.hosts[m.from].name,
                        self.hosts[m.to].name,
                        seconds(self.faults.over_limit_wait)
                    )
                };
                self.release_reservation(&m);
                self.fail(&m, ProviderError::wait(WaitReason::HostBusy, msg));
            } else {
                i += 1;
            }
        }
        // 5. Shares of shared networks follow the new number of copies.
        if changed {
            self.rerate();
        }
    }

    /// Starts waiting migrations that now have their slots; returns whether
    /// any started.
    fn start_waiting(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.migrations.len() {
            if matches!(self.migrations[i].phase, Phase::Waiting { .. })
                && self.has_slots(&self.migrations[i])
            {
                self.begin(i);
                any = true;
            }
        }
        any
    }

    /// Whether both hosts have every slot a migration needs.
    fn has_slots(&self, m: &Migration) -> bool {
        [m.from, m.to].into_iter().all(|h| {
            let host = &self.hosts[h];
            (!m.live() || host.active_live < host.max_migrations)
                && (!m.with_storage() || host.active_storage < host.max_storage)
        })
    }

    /// Which limits keep a migration waiting, for messages
    /// (`s01: 2 of 2 storage migrations`).
    fn held_by(&self, m: &Migration) -> Vec<String> {
        let mut out = Vec::new();
        for h in [m.from, m.to] {
            let host = &self.hosts[h];
            if m.with_storage() && host.active_storage >= host.max_storage {
                out.push(format!(
                    "{}: {} of {} storage migrations",
                    host.name, host.active_storage, host.max_storage
                ));
            }
            if m.live() && host.active_live >= host.max_migrations {
                out.push(format!(
                    "{}: {} of {} live migrations",
                    host.name, host.active_live, host.max_migrations
                ));
            }
        }
        out
    }

    /// Takes a migration's slots and starts its copy (or, with nothing to
    /// copy, its fixed 5 s).
    fn begin(&mut self, i: usize) {
        let m = &self.migrations[i];
        let (from, to, live, storage) = (m.from, m.to, m.live(), m.with_storage());
        for h in [from, to] {
            if live {
                self.hosts[h].active_live += 1;
            }
            if storage {
                self.hosts[h].active_storage += 1;
            }
        }
        let mib = m.storage_mib + if live { self.vms[m.vm].memory_mib } else { 0 };
        if mib == 0 {
            let fail = m.fail.clone();
            self.migrations[i].phase = Phase::Transferring {
                ends: self.now + BASE_MOVE,
                fail,
            };
            return;
        }
        self.hosts[from].copying += 1;
        self.hosts[to].copying += 1;
        let rate = self.rate_of(from, to);
        let m = &mut self.migrations[i];
        m.left_mib = mib as f64;
        m.rate = rate;
        m.since = self.now;
        m.phase = Phase::Copying;
    }

    /// The rate a copy between two hosts gets now.
    fn rate_of(&self, from: usize, to: usize) -> f64 {
        let mut rate = self.hosts[from].rate.min(self.hosts[to].rate);
        for h in [from, to] {
            if let Some(net) = self.hosts[h].network {
                rate = rate.min(net / f64::from(self.hosts[h].copying.max(1)));
            }
        }
        rate.max(f64::MIN_POSITIVE)
    }

    /// Recomputes the rate of every copy whose share changed, booking the
    /// progress made at the old rate first.
    fn rerate(&mut self) {
        let now = self.now;
        for i in 0..self.migrations.len() {
            if !matches!(self.migrations[i].phase, Phase::Copying) {
                continue;
            }
            let rate = self.rate_of(self.migrations[i].from, self.migrations[i].to);
            let m = &mut self.migrations[i];
            if rate == m.rate {
                continue;
            }
            let done = m.rate * seconds(now.saturating_sub(m.since));
            m.left_mib = (m.left_mib - done).max(0.0);
            m.since = now;
            m.rate = rate;
        }
    }

    fn release_reservation(&mut self, m: &Migration) {
        if m.kind == MoveKind::Live {
            let mem = self.vms[m.vm].memory_mib;
            let to = &mut self.hosts[m.to];
            to.used_mib = to.used_mib.saturating_sub(mem);
        }
        if let Some(v) = m.volume
            && let Some(vol) = self.hosts[m.to].volumes.get_mut(v)
        {
            vol.free_mib += m.storage_mib;
        }
    }

    fn finish_transfer(&mut self, m: Migration) {
        for h in [m.from, m.to] {
            let host = &mut self.hosts[h];
            if m.live() {
                host.active_live = host.active_live.saturating_sub(1);
            }
            if m.with_storage() {
                host.active_storage = host.active_storage.saturating_sub(1);
            }
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
        if m.with_storage() {
            self.move_disks(&m);
        }
        self.vms[m.vm].host = m.to;
        self.vms[m.vm].job = None;
        let (vm, from, to) = (
            self.vms[m.vm].name.clone(),
            self.hosts[m.from].name.clone(),
            self.hosts[m.to].name.clone(),
        );
        let storage = m.storage(&self.hosts);
        self.emit_storage(
            EventKind::MigrationCompleted {
                vm: vm.clone(),
                from,
                to,
                kind: m.kind,
            },
            storage,
        );
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

    /// A completed move with storage: the source volumes get the disks'
    /// space back, and the disks now lie in the destination folder.
    fn move_disks(&mut self, m: &Migration) {
        let folder = m.storage_path.clone().or_else(|| {
            m.volume
                .and_then(|v| self.hosts[m.to].volumes.get(v))
                .map(|v| format!("{}\\{}", v.path.trim_end_matches('\\'), self.vms[m.vm].name))
        });
        let mut disks = std::mem::take(&mut self.vms[m.vm].disks);
        for d in &mut disks {
            let Some(v) = d.volume else { continue };
            if let Some(vol) = self.hosts[m.from].volumes.get_mut(v) {
                vol.free_mib += d.size_mib;
            }
            d.volume = m.volume;
            if let Some(folder) = &folder {
                let file = d.path.rsplit(['\\', '/']).next().unwrap_or(&d.path);
                d.path = format!("{}\\{file}", folder.trim_end_matches('\\'));
            }
        }
        self.vms[m.vm].disks = disks;
    }

    fn fail(&mut self, m: &Migration, error: ProviderError) {
        self.vms[m.vm].job = None;
        let storage = m.storage(&self.hosts);
        self.emit_storage(
            EventKind::MigrationFailed {
                vm: self.vms[m.vm].name.clone(),
                from: self.hosts[m.from].name.clone(),
                to: self.hosts[m.to].name.clone(),
                kind: m.kind,
                error: error.message.clone(),
            },
            storage,
        );
        self.finished.insert(m.job, Err(error));
    }

    fn emit(&mut self, kind: EventKind) {
        self.events.push(Event {
            t: seconds(self.now),
            kind,
            storage: None,
        });
    }

    fn emit_storage(&mut self, kind: EventKind, storage: MoveStorage) {
        self.events.push(Event {
            t: seconds(self.now),
            kind,
            storage: Some(storage),
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

    /// The destination volume of a move with storage: the one holding the
    /// requested folder, or else the one with the most free space.
    fn target_volume(&self, to: usize, path: Option<&str>) -> Result<usize, ProviderError> {
        let host = &self.hosts[to];
        let paths = host.volumes.iter().map(|v| v.path.as_str());
        let found = match path {
            Some(p) => crate::spec::volume_of(p, paths)
                .and_then(|v| host.volumes.iter().position(|x| x.path == v)),
            None => (0..host.volumes.len()).max_by(|a, b| {
                host.volumes[*a]
                    .free_mib
                    .cmp(&host.volumes[*b].free_mib)
                    .then(b.cmp(a))
            }),
        };
        found.ok_or_else(|| {
            ProviderError::permanent(match path {
                Some(p) => format!("`{p}` lies on no volume of `{}`", host.name),
                None => format!("`{}` has no volume for VM files", host.name),
            })
        })
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
        let storage_mib = if from == to {
            0
        } else {
            self.vms[vm].local_disk_mib()
        };
        let mut m = Migration {
            job,
            vm,
            from,
            to,
            kind,
            requested: self.now,
            fail: None,
            phase: Phase::Waiting { deadline: self.now },
            storage_mib,
            volume: None,
            storage_path: req.storage_path.clone(),
            left_mib: 0.0,
            rate: 0.0,
            since: self.now,
        };
        let target = if storage_mib > 0 {
            match self.target_volume(to, req.storage_path.as_deref()) {
                Ok(v) => {
                    m.volume = Some(v);
                    Ok(v)
                }
                Err(e) => Err(e),
            }
        } else {
            Ok(0)
        };
        let storage = m.storage(&self.hosts);
        self.emit_storage(
            EventKind::MigrationStarted {
                vm: req.vm.clone(),
                from: req.from.clone(),
                to: req.to.clone(),
                kind,
            },
            storage,
        );
        let refused = match target {
            Err(e) => Some(e),
            Ok(_) => self.refusal(vm, from, to, kind, m.volume, storage_mib),
        };
        if let Some(error) = refused {
            m.volume = None;
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
        if kind == MoveKind::Offline && storage_mib == 0 {
            m.phase = Phase::Transferring {
                ends: self.now + BASE_MOVE,
                fail: m.fail.clone(),
            };
            self.migrations.push(m);
            return Ok(JobId(job.to_string()));
        }
        if kind == MoveKind::Live {
            self.hosts[to].used_mib += self.vms[vm].memory_mib;
        }
        if let Some(v) = m.volume
            && let Some(vol) = self.hosts[to].volumes.get_mut(v)
        {
            vol.free_mib = vol.free_mib.saturating_sub(storage_mib);
        }
        let ready = self.has_slots(&m);
        m.phase = Phase::Waiting {
            deadline: self.now + self.faults.over_limit_wait,
        };
        self.migrations.push(m);
        if ready {
            let i = self.migrations.len() - 1;
            self.begin(i);
            self.rerate();
        }
        Ok(JobId(job.to_string()))
    }

    /// Why a move cannot even begin, if it cannot.
    fn refusal(
        &self,
        vm: usize,
        from: usize,
        to: usize,
        kind: MoveKind,
        volume: Option<usize>,
        storage_mib: u64,
    ) -> Option<ProviderError> {
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
        if let Some(vol) = volume.and_then(|i| dst.volumes.get(i))
            && vol.free_mib < storage_mib
        {
            return Some(ProviderError::permanent(format!(
                "not enough space on volume `{}` of `{}` for the disks of `{}`: needs {} MiB, {} MiB free",
                vol.path, dst.name, v.name, storage_mib, vol.free_mib
            )));
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
