//! What the fleet page shows beyond each VM's condition.
//!
//! The status file's contract fields say how each VM stands; a person
//! looking at a drain also wants each host's capacity and use, the moves in
//! flight with when they started and when they should end, and when the
//! loop last looked. [`FleetView`] holds exactly that, as optional fields
//! the status document gains (`lastPassAt`, `hosts`, `moves`; the contract
//! allows additions). It is refreshed from each observation and kept
//! current between passes from the executor's events, so the page moves
//! while a long job runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::execute::Event;
use crate::plan::Caps;
use crate::provider::{MoveKind, Observed};
use crate::spec::Desired;

use super::status::rfc3339;

/// Hosts, moves in flight and the time of the last pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    /// When the last pass ended, RFC 3339 UTC (`updatedAt` also moves with
    /// every executor event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pass_at: Option<String>,
    /// Each observed host by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostView>,
    /// Migrations running now, by VM name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<MoveView>,
    /// Memory of each running VM at the last observation, MiB (for the
    /// memory a live move takes on its destination).
    #[serde(skip)]
    vm_memory: Arc<HashMap<String, u64>>,
}

impl PartialEq for FleetView {
    fn eq(&self, other: &Self) -> bool {
        // What the file holds; the memory index is derived.
        self.last_pass_at == other.last_pass_at
            && self.hosts == other.hosts
            && self.moves == other.moves
    }
}

/// One host: capacity, use and migration slots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Memory for VMs, MiB.
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
    /// Memory held by running VMs and by live migrations coming in, MiB.
    #[serde(rename = "memoryUsedMiB")]
    pub memory_used_mib: u64,
    /// Live migrations allowed at once (in + out): the least of the
    /// policy's, the declared and the host's own limit.
    pub migration_slots: u32,
    /// Live migrations in or out of it now.
    pub migrations_in_use: u32,
    /// Whether the host answered the last observation.
    pub reachable: bool,
    /// The spec puts it in maintenance.
    #[serde(default)]
    pub maintenance: bool,
    /// Volumes where VM files live, when the provider reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeView>,
}

/// One volume of a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeView {
    /// Path as the host names it.
    pub path: String,
    /// Free space, MiB.
    #[serde(rename = "freeMiB")]
    pub free_mib: u64,
    /// Space the disks of the VMs on it take, MiB.
    #[serde(rename = "vmMiB")]
    pub vm_mib: u64,
}

/// A migration in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveView {
    /// VM.
    pub vm: String,
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
    /// `live` or `offline`.
    pub method: MoveKind,
    /// Attempt number for this VM (0: started by someone else).
    pub attempt: u32,
    /// Memory it takes on the destination while it moves, MiB (0 offline).
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
    /// When berth requested it, or, for a move started elsewhere, when
    /// berth first saw it; RFC 3339 UTC.
    pub started_at: String,
    /// Expected duration, seconds; `null` for a move started elsewhere.
    pub estimated_seconds: Option<f64>,
    /// `startedAt` plus the estimate; `null` when there is no estimate.
    pub expected_end: Option<String>,
    /// Started by an earlier run or another tool: berth waits for it.
    #[serde(default)]
    pub started_elsewhere: bool,
}

/// Each host's capacity and use as one observation shows them, and the
/// memory of each running VM: the part of [`FleetView::observe`] that reads
/// every VM (some 40 ms at 100,000 VMs). It depends only on the spec and
/// the observation, so the loop computes it beside the plan and keeps it
/// while neither changes.
#[derive(Debug, Clone, Default)]
pub(super) struct HostsSeen {
    hosts: BTreeMap<String, HostView>,
    vm_memory: Arc<HashMap<String, u64>>,
}

impl HostsSeen {
    /// Sums up `observed`'s hosts.
    pub(super) fn of(desired: &Desired, observed: &Observed) -> Self {
        let caps = Caps::new(desired, observed);
        let used = observed.memory_used();
        let vm_memory = observed
            .vms
            .values()
            .filter(|v| v.state.is_live())
            .map(|v| (v.name.clone(), v.memory_mib))
            .collect();
        // Disk space each host volume gives to the VMs on it.
        let mut on_volume: HashMap<(&str, &str), u64> = HashMap::new();
        for vm in observed.vms.values() {
            for d in &vm.disks {
                if let Some(v) = &d.volume {
                    *on_volume.entry((vm.host.as_str(), v.as_str())).or_default() += d.size_mib;
                }
            }
        }
        let hosts = observed
            .hosts
            .values()
            .map(|h| {
                let volumes = h
                    .volumes
                    .iter()
                    .map(|v| VolumeView {
                        path: v.path.clone(),
                        free_mib: v.free_mib,
                        vm_mib: on_volume
                            .get(&(h.name.as_str(), v.path.as_str()))
                            .copied()
                            .unwrap_or(0),
                    })
                    .collect();
                let view = HostView {
                    memory_mib: h.memory_mib,
                    memory_used_mib: used.get(h.name.as_str()).copied().unwrap_or(0),
                    migration_slots: caps.host(&h.name),
                    migrations_in_use: 0,
                    reachable: h.reachable,
                    maintenance: desired.hosts.get(&h.name).is_some_and(|d| d.maintenance),
                    volumes,
                };
                (h.name.clone(), view)
            })
            .collect();
        HostsSeen {
            hosts,
            vm_memory: Arc::new(vm_memory),
        }
    }
}

impl FleetView {
    /// Refreshes hosts and moves from an observation.
    pub fn observe(&mut self, desired: &Desired, observed: &Observed) {
        self.install(HostsSeen::of(desired, observed), observed);
    }

    /// Refreshes hosts and moves from an observation whose hosts were
    /// already summed up (off the loop's path, see [`HostsSeen::of`]).
    pub(super) fn install(&mut self, seen: HostsSeen, observed: &Observed) {
        self.hosts = seen.hosts;
        self.vm_memory = seen.vm_memory;
        // A move berth follows stays until its end event, while the VM is
        // still on its source; one started elsewhere stays while the fleet
        // shows it. An observation older than a move's start does not show
        // its memory on the destination yet: add it.
        self.moves.retain(|m| match observed.vms.get(&m.vm) {
            Some(v) if m.started_elsewhere => v.migrating_to.as_deref() == Some(m.to.as_str()),
            Some(v) => v.host == m.from,
            None => false,
        });
        for m in &self.moves {
            let seen = observed
                .vms
                .get(&m.vm)
                .is_some_and(|v| v.migrating_to.is_some());
            if !seen && let Some(h) = self.hosts.get_mut(&m.to) {
                h.memory_used_mib += m.memory_mib;
            }
        }
        let now = rfc3339(SystemTime::now());
        for vm in observed.vms.values() {
            let Some(to) = &vm.migrating_to else {
                continue;
            };
            if self.moves.iter().any(|m| m.vm == vm.name) {
                continue;
            }
            let method = MoveKind::for_state(vm.state);
            self.moves.push(MoveView {
                vm: vm.name.clone(),
                from: vm.host.clone(),
                to: to.clone(),
                method,
                attempt: 0,
                memory_mib: if method == MoveKind::Live {
                    vm.memory_mib
                } else {
                    0
                },
                started_at: now.clone(),
                estimated_seconds: None,
                expected_end: None,
                started_elsewhere: true,
            });
        }
        self.moves.sort_by(|a, b| a.vm.cmp(&b.vm));
        self.recount();
    }

    /// Follows the executor between passes.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::MoveStarted {
                vm,
                from,
                to,
                kind,
                attempt,
                estimate,
            } => {
                self.finish(vm, None);
                let now = SystemTime::now();
                let memory_mib = match kind {
                    MoveKind::Live => self.vm_memory.get(vm).copied().unwrap_or(0),
                    MoveKind::Offline => 0,
                };
                if let Some(h) = self.hosts.get_mut(to) {
                    h.memory_used_mib += memory_mib;
                }
                let end = Duration::try_from_secs_f64(*estimate)
                    .ok()
                    .and_then(|d| now.checked_add(d));
                let view = MoveView {
                    vm: vm.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    method: *kind,
                    attempt: *attempt,
                    memory_mib,
                    started_at: rfc3339(now),
                    estimated_seconds: Some(*estimate),
                    expected_end: end.map(rfc3339),
                    started_elsewhere: false,
                };
                let at = self.moves.partition_point(|m| m.vm < view.vm);
                self.moves.insert(at, view);
                self.recount();
            }
            Event::MoveFinished { vm, error, .. } => {
                self.finish(vm, Some(error.is_none()));
                self.recount();
            }
            _ => {}
        }
    }

    /// Takes a VM's move out of the list; its memory leaves the source
    /// (`Some(true)`: it arrived) or the destination (it failed, or it is
    /// replaced by a new attempt).
    fn finish(&mut self, vm: &str, arrived: Option<bool>) {
        let Some(i) = self.moves.iter().position(|m| m.vm == vm) else {
            return;
        };
        let m = self.moves.remove(i);
        let host = if arrived == Some(true) {
            &m.from
        } else {
            &m.to
        };
        if let Some(h) = self.hosts.get_mut(host) {
            h.memory_used_mib = h.memory_used_mib.saturating_sub(m.memory_mib);
        }
    }

    /// Live migrations per host from the moves in flight.
    fn recount(&mut self) {
        for h in self.hosts.values_mut() {
            h.migrations_in_use = 0;
        }
        for m in self.moves.iter().filter(|m| m.method == MoveKind::Live) {
            for name in [&m.from, &m.to] {
                if let Some(h) = self.hosts.get_mut(name) {
                    h.migrations_in_use += 1;
                }
            }
        }
    }

    /// Records that a pass ended now.
    pub fn pass_ended(&mut self) {
        self.last_pass_at = Some(rfc3339(SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(memory_used_mib: u64) -> HostView {
        HostView {
            memory_mib: 65_536,
            memory_used_mib,
            migration_slots: 2,
            migrations_in_use: 0,
            reachable: true,
            maintenance: false,
            volumes: Vec::new(),
        }
    }

    fn started(vm: &str, kind: MoveKind, attempt: u32) -> Event {
        Event::MoveStarted {
            vm: vm.into(),
            from: "hv01".into(),
            to: "hv02".into(),
            kind,
            attempt,
            estimate: 90.0,
        }
    }

    fn finished(vm: &str, error: Option<&str>) -> Event {
        Event::MoveFinished {
            vm: vm.into(),
            from: "hv01".into(),
            to: "hv02".into(),
            error: error.map(str::to_string),
        }
    }

    fn view() -> FleetView {
        let mut v = FleetView::default();
        v.hosts.insert("hv01".into(), host(8192));
        v.hosts.insert("hv02".into(), host(0));
        v.vm_memory = Arc::new(HashMap::from([
            ("web-01".into(), 4096),
            ("db-01".into(), 2048),
        ]));
        v
    }

    #[test]
    fn a_live_move_takes_memory_and_slots_until_it_arrives() {
        let mut v = view();
        v.event(&started("web-01", MoveKind::Live, 1));
        assert_eq!(v.moves.len(), 1);
        let m = &v.moves[0];
        assert_eq!((m.memory_mib, m.attempt), (4096, 1));
        assert_eq!(m.estimated_seconds, Some(90.0));
        assert!(m.expected_end.as_deref() >= Some(m.started_at.as_str()));
        assert_eq!(v.hosts["hv02"].memory_used_mib, 4096);
        assert_eq!(v.hosts["hv01"].migrations_in_use, 1);
        assert_eq!(v.hosts["hv02"].migrations_in_use, 1);
        v.event(&finished("web-01", None));
        assert!(v.moves.is_empty());
        assert_eq!(v.hosts["hv01"].memory_used_mib, 4096);
        assert_eq!(v.hosts["hv02"].memory_used_mib, 4096);
        assert_eq!(v.hosts["hv01"].migrations_in_use, 0);
    }

    #[test]
    fn a_failed_move_gives_the_destination_its_memory_back() {
        let mut v = view();
        v.event(&started("web-01", MoveKind::Live, 1));
        v.event(&finished("web-01", Some("backup running")));
        assert_eq!(v.hosts["hv01"].memory_used_mib, 8192);
        assert_eq!(v.hosts["hv02"].memory_used_mib, 0);
        v.event(&started("web-01", MoveKind::Live, 2));
        assert_eq!(v.moves[0].attempt, 2);
        assert_eq!(v.hosts["hv02"].memory_used_mib, 4096);
    }

    #[test]
    fn offline_moves_take_no_memory_and_no_slot() {
        let mut v = view();
        v.event(&started("db-01", MoveKind::Offline, 1));
        v.event(&started("web-01", MoveKind::Live, 1));
        assert_eq!(
            v.moves.iter().map(|m| m.vm.as_str()).collect::<Vec<_>>(),
            ["db-01", "web-01"],
            "sorted by VM"
        );
        assert_eq!(v.moves[0].memory_mib, 0);
        assert_eq!(v.hosts["hv02"].memory_used_mib, 4096);
        assert_eq!(v.hosts["hv02"].migrations_in_use, 1);
    }

    #[test]
    fn the_additions_are_optional_in_the_file() {
        let v = FleetView::default();
        assert_eq!(
            serde_json::to_value(&v).expect("json"),
            serde_json::json!({})
        );
        let mut v = view();
        v.event(&started("web-01", MoveKind::Live, 1));
        v.pass_ended();
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["hosts"]["hv02"]["memoryUsedMiB"], 4096);
        assert_eq!(json["hosts"]["hv01"]["migrationSlots"], 2);
        assert_eq!(json["moves"][0]["method"], "live");
        assert_eq!(json["moves"][0]["startedElsewhere"], false);
        assert!(json["lastPassAt"].is_string());
        let back: FleetView = serde_json::from_value(json).expect("read back");
        assert_eq!(back, v);
    }

    fn observed(web_migrating: bool) -> Observed {
        use crate::provider::{ObservedDisk, ObservedHost, ObservedVm, ObservedVolume};
        let host = |name: &str| ObservedHost {
            name: name.into(),
            memory_mib: 65_536,
            max_migrations: 2,
            cpu_vendor: Default::default(),
            switches: Vec::new(),
            migration_rate_mibps: None,
            reachable: true,
            max_storage_migrations: 2,
            network_mibps: None,
            volumes: vec![ObservedVolume {
                path: "D:\\VMs".into(),
                free_mib: 100_000,
            }],
            cluster: None,
        };
        let vm = |name: &str, to: Option<&str>, disk: u64| ObservedVm {
            name: name.into(),
            host: "hv01".into(),
            state: Default::default(),
            memory_mib: 4096,
            operation: None,
            migrating_to: to.map(str::to_string),
            job: None,
            adapters: Vec::new(),
            disks: vec![ObservedDisk {
                path: format!("D:\\VMs\\{name}.vhdx"),
                size_mib: disk,
                volume: Some("D:\\VMs".into()),
            }],
            clustered: false,
        };
        let mut o = Observed::default();
        for h in ["hv01", "hv02"] {
            o.hosts.insert(h.into(), host(h));
        }
        o.vms.insert(
            "web-01".into(),
            vm("web-01", web_migrating.then_some("hv02"), 1000),
        );
        o.vms.insert("db-01".into(), vm("db-01", None, 500));
        o
    }

    #[test]
    fn an_observation_gives_hosts_and_moves_started_elsewhere() {
        let desired = Desired::default();
        let mut v = FleetView::default();
        v.observe(&desired, &observed(true));
        let hv01 = &v.hosts["hv01"];
        assert_eq!(hv01.memory_used_mib, 8192);
        assert_eq!(hv01.volumes[0].vm_mib, 1500);
        assert_eq!(hv01.volumes[0].free_mib, 100_000);
        assert_eq!(v.hosts["hv02"].memory_used_mib, 4096, "web-01 arriving");
        assert_eq!(v.moves.len(), 1);
        assert!(v.moves[0].started_elsewhere && v.moves[0].estimated_seconds.is_none());
        assert_eq!(v.hosts["hv02"].migrations_in_use, 1);
        // berth starts db-01; an observation from before that start keeps
        // the move and its memory on the destination.
        v.event(&started("db-01", MoveKind::Live, 1));
        v.observe(&desired, &observed(false));
        assert_eq!(
            v.moves.iter().map(|m| m.vm.as_str()).collect::<Vec<_>>(),
            ["db-01"],
            "web-01's move ended; db-01's goes on"
        );
        assert_eq!(v.hosts["hv02"].memory_used_mib, 4096);
        assert_eq!(v.hosts["hv01"].migrations_in_use, 1);
    }
}
