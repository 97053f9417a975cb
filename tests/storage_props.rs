//! Shared-nothing promises, checked on random fleets with volumes and disks.
//!
//! - Planner: no execution of a plan that respects `after` can overcommit a
//!   destination volume, whatever runs in parallel and in whatever order
//!   (random interleavings of starts and completions are replayed against
//!   the volumes' free space).
//! - Executor: under 20% transient failures, the simulator's journal never
//!   shows more moves with storage on a host than its effective storage cap,
//!   nor more live migrations than its live cap.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use berth::execute::{self, Control, Options, Quiet};
use berth::plan::{self, ActionKind, Plan};
use berth::provider::Observed;
use berth::provider::sim::{EventKind, Sim, World};
use berth::spec::{
    CpuVendor, Desired, Faults, FleetDisk, FleetHost, FleetSpec, FleetVm, FleetVolume, HostSpec,
    Origin, Policy, PowerState, VmSpec,
};
use proptest::prelude::*;

const GIB: u64 = 1024;
const VOLS: [&str; 2] = [r"D:\VMs", r"E:\VMs"];

#[derive(Debug, Clone)]
struct GenHost {
    memory: u64,
    volumes: Vec<u64>,
    cap: u32,
    network: bool,
    declare_path: bool,
}

#[derive(Debug, Clone)]
struct GenVm {
    host: usize,
    want: usize,
    memory: u64,
    live: bool,
    disks: Vec<(usize, u64)>,
    shared: bool,
}

#[derive(Debug, Clone)]
struct Gen {
    hosts: Vec<GenHost>,
    vms: Vec<GenVm>,
    maintenance: Option<usize>,
    policy_cap: u32,
    seed: u64,
}

fn gen_host() -> impl Strategy<Value = GenHost> {
    (
        64u64..256,
        prop::collection::vec(0u64..700, 1..=2),
        1u32..=3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(memory, volumes, cap, network, declare_path)| GenHost {
            memory,
            volumes,
            cap,
            network,
            declare_path,
        })
}

fn gen_vm(hosts: usize) -> impl Strategy<Value = GenVm> {
    (
        0..hosts,
        0..hosts,
        1u64..48,
        any::<bool>(),
        prop::collection::vec((0usize..2, 1u64..300), 0..=2),
        any::<bool>(),
    )
        .prop_map(|(host, want, memory, live, disks, shared)| GenVm {
            host,
            want,
            memory,
            live,
            disks,
            shared,
        })
}

fn gen_fleet() -> impl Strategy<Value = Gen> {
    (2usize..6).prop_flat_map(|n| {
        (
            prop::collection::vec(gen_host(), n),
            prop::collection::vec(gen_vm(n), 1..14),
            prop::option::of(0..n),
            1u32..=3,
            any::<u64>(),
        )
            .prop_map(|(hosts, vms, maintenance, policy_cap, seed)| Gen {
                hosts,
                vms,
                maintenance,
                policy_cap,
                seed,
            })
    })
}

fn host_name(i: usize) -> String {
    format!("s{i:02}")
}

fn vm_name(i: usize) -> String {
    format!("vm-{i:02}")
}

fn build(g: &Gen, failure_rate: f64) -> (FleetSpec, Desired) {
    let hosts: Vec<FleetHost> = g
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| FleetHost {
            name: host_name(i),
            memory_mib: h.memory * GIB,
            max_migrations: 2,
            cpu_vendor: CpuVendor::Intel,
            switches: vec!["Prod".into()],
            migration_rate_mibps: 1000.0,
            down: false,
            max_storage_migrations: h.cap,
            network_mibps: h.network.then_some(1200.0),
            volumes: h
                .volumes
                .iter()
                .enumerate()
                .map(|(k, free)| FleetVolume {
                    path: VOLS[k].to_string(),
                    free_mib: free * GIB,
                })
                .collect(),
        })
        .collect();
    let mut used = vec![0u64; hosts.len()];
    let mut vms = Vec::new();
    for (i, v) in g.vms.iter().enumerate() {
        let mut state = if v.live {
            PowerState::Running
        } else {
            PowerState::Off
        };
        if v.live {
            if used[v.host] + v.memory * GIB > hosts[v.host].memory_mib {
                state = PowerState::Off;
            } else {
                used[v.host] += v.memory * GIB;
            }
        }
        let nvols = g.hosts[v.host].volumes.len();
        let mut disks: Vec<FleetDisk> = v
            .disks
            .iter()
            .enumerate()
            .map(|(k, (vol, size))| {
                let vol = VOLS[vol % nvols];
                FleetDisk {
                    path: format!(r"{vol}\{}\d{k}.vhdx", vm_name(i)),
                    size_mib: size * GIB,
                    volume: Some(vol.to_string()),
                }
            })
            .collect();
        if v.shared {
            disks.push(FleetDisk {
                path: format!(r"\\nas\vms\{}.vhdx", vm_name(i)),
                size_mib: 40 * GIB,
                volume: None,
            });
        }
        vms.push(FleetVm {
            name: vm_name(i),
            host: host_name(v.host),
            memory_mib: v.memory * GIB,
            state,
            backups: Vec::new(),
            fail_next_migrations: 0,
            adapters: Vec::new(),
            disks,
        });
    }
    let fleet = FleetSpec {
        seed: g.seed,
        start_time: berth::spec::DEFAULT_START_TIME,
        faults: Faults {
            transient_failure_rate: failure_rate,
            over_limit_wait: Duration::from_secs(300),
            ..Faults::default()
        },
        hosts,
        vms,
        origin: Origin::default(),
    };
    let hosts: BTreeMap<String, HostSpec> = g
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                host_name(i),
                HostSpec {
                    name: host_name(i),
                    maintenance: g.maintenance == Some(i),
                    max_migrations: None,
                    max_storage_migrations: None,
                    storage_path: h.declare_path.then(|| format!(r"{}\in", VOLS[0])),
                    labels: Default::default(),
                    origin: Origin::default(),
                },
            )
        })
        .collect();
    let vms = g
        .vms
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                vm_name(i),
                std::sync::Arc::new(VmSpec {
                    name: vm_name(i),
                    host: host_name(v.want),
                    choice: None,
                    fallback: Vec::new(),
                    adapters: None,
                    origin: Origin::default(),
                    priority: 0,
                }),
            )
        })
        .collect();
    let desired = Desired {
        policy: Policy {
            max_storage_migrations_per_host: g.policy_cap,
            max_moves_per_apply: 1000,
            ..Policy::default()
        },
        hosts,
        vms,
        ..Desired::default()
    };
    (fleet, desired)
}

/// xorshift64*: the interleavings to try.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// Replays one random execution that respects `after`: at each step either
/// a ready move starts (reserving its disks on its destination volume) or a
/// running one completes (giving its source volumes their space back).
fn replay_once(plan: &Plan, observed: &Observed, rng: &mut Rng) -> Result<(), String> {
    let mut free: HashMap<(String, String), i64> = HashMap::new();
    for h in observed.hosts.values() {
        for v in &h.volumes {
            free.insert((h.name.clone(), v.path.clone()), v.free_mib as i64);
        }
    }
    // Where each VM's travelling disks are: (host, [(volume, MiB)]).
    let mut place: HashMap<String, (String, Vec<(String, u64)>)> = HashMap::new();
    for vm in observed.vms.values() {
        let mut on: Vec<(String, u64)> = Vec::new();
        for d in &vm.disks {
            if let Some(v) = &d.volume {
                on.push((v.clone(), d.size_mib));
            }
        }
        place.insert(vm.name.clone(), (vm.host.clone(), on));
    }
    let by_id: HashMap<u32, &berth::plan::Action> =
        plan.actions.iter().map(|a| (a.id, a)).collect();
    let mut done: Vec<u32> = Vec::new();
    let mut running: Vec<u32> = Vec::new();
    let mut waiting: Vec<u32> = plan.actions.iter().map(|a| a.id).collect();
    while !waiting.is_empty() || !running.is_empty() {
        let ready: Vec<u32> = waiting
            .iter()
            .copied()
            .filter(|id| by_id[id].after.iter().all(|a| done.contains(a)))
            .collect();
        let start = !ready.is_empty() && (running.is_empty() || rng.below(2) == 0);
        if start {
            let id = ready[rng.below(ready.len())];
            waiting.retain(|x| *x != id);
            if let ActionKind::Move {
                vm,
                to,
                volume,
                disk_mib,
                ..
            } = &by_id[&id].kind
                && *disk_mib > 0
            {
                let Some(v) = volume else {
                    return Err(format!("#{id}: {vm} copies disks but names no volume"));
                };
                let f = free
                    .get_mut(&(to.clone(), v.clone()))
                    .ok_or_else(|| format!("#{id}: {to} has no volume {v}"))?;
                *f -= *disk_mib as i64;
                if *f < 0 {
                    return Err(format!(
                        "#{id} overcommits {v} of {to} by {} MiB (done {done:?}, running {running:?})",
                        -*f
                    ));
                }
            }
            running.push(id);
        } else {
            let k = rng.below(running.len());
            let id = running.swap_remove(k);
            if let ActionKind::Move {
                vm,
                from,
                to,
                volume,
                disk_mib,
                ..
            } = &by_id[&id].kind
            {
                let (host, on) = place.get(vm).cloned().unwrap_or_default();
                if &host != from {
                    return Err(format!("#{id}: {vm} is on {host}, not {from}"));
                }
                let moved: u64 = on.iter().map(|(_, m)| m).sum();
                if moved != *disk_mib {
                    return Err(format!(
                        "#{id}: {vm} carries {moved} MiB, plan says {disk_mib}"
                    ));
                }
                for (v, mib) in &on {
                    *free.entry((from.clone(), v.clone())).or_default() += *mib as i64;
                }
                let on = match volume {
                    Some(v) if *disk_mib > 0 => vec![(v.clone(), *disk_mib)],
                    _ => Vec::new(),
                };
                place.insert(vm.clone(), (to.clone(), on));
            }
            done.push(id);
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_after_respecting_execution_overcommits_a_volume(g in gen_fleet()) {
        let (fleet, desired) = build(&g, 0.0);
        let observed = World::new(&fleet).observe();
        let plan = plan::plan(&desired, &observed);
        let mut rng = Rng(g.seed | 1);
        for _ in 0..24 {
            if let Err(e) = replay_once(&plan, &observed, &mut rng) {
                prop_assert!(false, "{}\nplan: {:#?}", e, plan.actions);
            }
        }
        // Every VM the spec wants elsewhere moves or is reported.
        for (name, spec) in &desired.vms {
            let vm = &observed.vms[name];
            let maintenance = desired.hosts[&spec.host].maintenance;
            if vm.host != spec.host && !maintenance {
                let moved = plan.actions.iter().any(|a| a.kind.vm() == name);
                let blocked = plan.blocked.iter().any(|b| &b.vm == name);
                prop_assert!(moved || blocked, "{} neither moves nor is blocked", name);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn under_transient_failures_no_move_starts_past_a_storage_limit(g in gen_fleet()) {
        let (fleet, desired) = build(&g, 0.2);
        let sim = Arc::new(Sim::in_memory(&fleet));
        let opts = Options::default();
        let report = runtime().block_on(async {
            execute::converge(&desired, sim.clone(), &opts, &Quiet, Control::new()).await
        });
        prop_assert!(report.is_ok());
        let live_cap = |h: &str| fleet.hosts.iter().find(|x| x.name == h).map_or(0, |x| {
            x.max_migrations.min(desired.policy.max_migrations_per_host) as i64
        });
        let storage_cap = |h: &str| fleet.hosts.iter().find(|x| x.name == h).map_or(0, |x| {
            x.max_storage_migrations.min(desired.policy.max_storage_migrations_per_host) as i64
        });
        let mut storage: HashMap<String, i64> = HashMap::new();
        let mut live: HashMap<String, i64> = HashMap::new();
        for e in sim.journal() {
            let copies = e.storage.as_ref().is_some_and(|s| s.storage_gib > 0.0);
            let (from, to, kind, delta) = match &e.kind {
                EventKind::MigrationStarted { from, to, kind, .. } => (from, to, kind, 1),
                EventKind::MigrationCompleted { from, to, kind, .. }
                | EventKind::MigrationFailed { from, to, kind, .. } => (from, to, kind, -1),
                _ => continue,
            };
            if let EventKind::MigrationFailed { error, .. } = &e.kind {
                prop_assert!(!error.contains("slot freed"), "a move waited for a slot: {}", error);
            }
            for h in [from, to] {
                if copies {
                    let n = storage.entry(h.clone()).or_default();
                    *n += delta;
                    prop_assert!(*n <= storage_cap(h), "t={}: {} storage moves on {}", e.t, n, h);
                }
                if *kind == berth::provider::MoveKind::Live {
                    let n = live.entry(h.clone()).or_default();
                    *n += delta;
                    prop_assert!(*n <= live_cap(h), "t={}: {} live migrations on {}", e.t, n, h);
                }
            }
        }
    }
}
