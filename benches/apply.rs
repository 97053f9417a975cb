//! Convergence speed: the executor's simulated makespan against the lower
//! bound, and against the one-pair-at-a-time way of the seed scripts.
//! Run with `cargo bench --bench apply`.
//!
//! LB = max(for each host, the sum of its live-migration durations divided
//! by its cap; the longest single move; total duration divided by
//! maxParallelMigrations). Targets (issue 5): makespan within 1.10 x LB on
//! drain and rebalance, at least 2x faster than the baseline on rebalance,
//! zero over-limit starts. Under a stream of 100 commits (one every 2 s of
//! simulated time, each a re-plan around the moves in flight) the
//! rebalance stays within 1.15 x LB (issue 11).
//!
//! Shared-nothing drain (issue 10): 24 running VMs with 40-530 GiB of local
//! disks leave one host for four; every host's migration network (1000
//! MiB/s) is shared by the copies through it. LB = max(per host, the bytes
//! through it / its networkMiBps; per host, the sum of its moves' durations
//! (alone) / its storage cap; the longest move). Target: within 1.10 x LB.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth::execute::{self, Control, Options, Quiet};
use berth::provider::sim::{EventKind, Sim};
use berth::provider::{MoveKind, MoveRequest, Provider};
use berth::spec::*;

/// A small deterministic generator (SplitMix64), so every run is the same.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

struct Scenario {
    name: &'static str,
    fleet: FleetSpec,
    desired: Desired,
}

fn host(name: String, memory_gib: u64, cap: u32) -> FleetHost {
    FleetHost {
        name,
        memory_mib: memory_gib * 1024,
        max_migrations: cap,
        cpu_vendor: CpuVendor::Intel,
        switches: vec!["Prod".into()],
        migration_rate_mibps: 1000.0,
        down: false,
        max_storage_migrations: 2,
        network_mibps: None,
        volumes: Vec::new(),
    }
}

fn vm(name: String, host: String, memory_gib: u64) -> FleetVm {
    FleetVm {
        name,
        host,
        memory_mib: memory_gib * 1024,
        state: PowerState::Running,
        backups: Vec::new(),
        fail_next_migrations: 0,
        adapters: Vec::new(),
        disks: Vec::new(),
    }
}

fn desired(fleet: &FleetSpec, goal: &BTreeMap<String, String>, policy: Policy) -> Desired {
    Desired {
        policy,
        hosts: fleet
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    HostSpec {
                        name: h.name.clone(),
                        maintenance: false,
                        max_migrations: None,
                        max_storage_migrations: None,
                        storage_path: None,
                        origin: Origin::default(),
                        labels: Default::default(),
                    },
                )
            })
            .collect(),
        vms: goal
            .iter()
            .map(|(v, h)| {
                (
                    v.clone(),
                    std::sync::Arc::new(VmSpec {
                        name: v.clone(),
                        host: h.clone(),
                        choice: None,
                        fallback: Vec::new(),
                        adapters: None,
                        origin: Origin::default(),
                        priority: 0,
                    }),
                )
            })
            .collect(),
        ..Desired::default()
    }
}

fn drain() -> Scenario {
    let mut rng = Rng(40);
    let mut hosts = vec![host("src".into(), 2048, 2)];
    hosts.extend((0..8).map(|i| host(format!("dst{i}"), 512, 2)));
    let vms: Vec<FleetVm> = (0..40)
        .map(|i| vm(format!("vm{i:02}"), "src".into(), rng.range(2, 64)))
        .collect();
    // Spread by memory: each VM to the destination with the least so far.
    let mut load = [0u64; 8];
    let mut goal = BTreeMap::new();
    let mut order: Vec<&FleetVm> = vms.iter().collect();
    order.sort_by_key(|v| std::cmp::Reverse(v.memory_mib));
    for v in order {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| **l)
            .expect("8 hosts");
        load[i] += v.memory_mib;
        goal.insert(v.name.clone(), format!("dst{i}"));
    }
    let fleet = FleetSpec {
        seed: 1,
        start_time: berth::spec::DEFAULT_START_TIME,
        faults: Faults::default(),
        hosts,
        vms,
        origin: Origin::default(),
    };
    let d = desired(&fleet, &goal, Policy::default());
    Scenario {
        name: "drain",
        fleet,
        desired: d,
    }
}

fn rebalance() -> Scenario {
    let mut rng = Rng(400);
    let hosts: Vec<FleetHost> = (0..20)
        .map(|i| host(format!("hv{i:02}"), 1024, rng.range(1, 4) as u32))
        .collect();
    let vms: Vec<FleetVm> = (0..400)
        .map(|i| {
            vm(
                format!("vm{i:03}"),
                format!("hv{:02}", i % 20),
                rng.range(2, 32),
            )
        })
        .collect();
    let mut goal = BTreeMap::new();
    for v in &vms {
        let to = if rng.range(0, 99) < 30 {
            let here: u64 = v.host[2..].parse().unwrap_or(0);
            let mut t = rng.range(0, 19);
            if t == here {
                t = (t + 1 + rng.range(0, 18)) % 20;
            }
            format!("hv{t:02}")
        } else {
            v.host.clone()
        };
        goal.insert(v.name.clone(), to);
    }
    let fleet = FleetSpec {
        seed: 2,
        start_time: berth::spec::DEFAULT_START_TIME,
        faults: Faults::default(),
        hosts,
        vms,
        origin: Origin::default(),
    };
    let policy = Policy {
        max_parallel_migrations: 32,
        max_migrations_per_host: 4,
        max_moves_per_apply: 1000,
        ..Policy::default()
    };
    let d = desired(&fleet, &goal, policy);
    Scenario {
        name: "rebalance",
        fleet,
        desired: d,
    }
}

/// Twenty-four VMs with 40-530 GiB of disks from one host to four, on
/// shared 1000 MiB/s networks.
fn shared_nothing_drain() -> Scenario {
    let mut rng = Rng(10);
    let with_storage = |mut h: FleetHost, free_gib: u64| {
        h.network_mibps = Some(1000.0);
        h.volumes = vec![FleetVolume {
            path: r"D:\VMs".into(),
            free_mib: free_gib * 1024,
        }];
        h
    };
    let mut hosts = vec![with_storage(host("src".into(), 2048, 2), 200)];
    hosts.extend((0..4).map(|i| with_storage(host(format!("dst{i}"), 512, 2), 8000)));
    let vms: Vec<FleetVm> = (0..24)
        .map(|i| {
            let name = format!("vm{i:02}");
            let mut v = vm(name.clone(), "src".into(), rng.range(4, 32));
            v.disks = vec![FleetDisk {
                path: format!(r"D:\VMs\{name}\{name}.vhdx"),
                size_mib: rng.range(40, 530) * 1024,
                volume: Some(r"D:\VMs".into()),
            }];
            v
        })
        .collect();
    // Spread by bytes: each VM to the destination with the least so far.
    let mut load = [0u64; 4];
    let mut goal = BTreeMap::new();
    let mut order: Vec<&FleetVm> = vms.iter().collect();
    order.sort_by_key(|v| std::cmp::Reverse(v.memory_mib + v.disks[0].size_mib));
    for v in order {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| **l)
            .expect("4 hosts");
        load[i] += v.memory_mib + v.disks[0].size_mib;
        goal.insert(v.name.clone(), format!("dst{i}"));
    }
    let fleet = FleetSpec {
        seed: 1,
        start_time: DEFAULT_START_TIME,
        faults: Faults::default(),
        hosts,
        vms,
        origin: Origin::default(),
    };
    let policy = Policy {
        move_timeout: std::time::Duration::from_secs(4 * 3600),
        ..Policy::default()
    };
    let d = desired(&fleet, &goal, policy);
    Scenario {
        name: "shared-nothing drain",
        fleet,
        desired: d,
    }
}

/// LB of a shared-nothing drain: max(per-host bytes / networkMiBps,
/// per-host durations / storage cap, longest move).
fn storage_lower_bound(s: &Scenario) -> f64 {
    let hosts: HashMap<&str, &FleetHost> =
        s.fleet.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let mut bytes: HashMap<&str, f64> = HashMap::new();
    let mut durations: HashMap<&str, f64> = HashMap::new();
    let mut longest = 0.0f64;
    for v in &s.fleet.vms {
        let to = s.desired.vms[&v.name].host.as_str();
        if to == v.host {
            continue;
        }
        let mib = (v.memory_mib + v.disks.iter().map(|d| d.size_mib).sum::<u64>()) as f64;
        let (f, t) = (hosts[v.host.as_str()], hosts[to]);
        let mut rate = f.migration_rate_mibps.min(t.migration_rate_mibps);
        for n in [f.network_mibps, t.network_mibps].into_iter().flatten() {
            rate = rate.min(n);
        }
        let d = 5.0 + mib / rate;
        longest = longest.max(d);
        for h in [f, t] {
            *bytes.entry(h.name.as_str()).or_default() += mib;
            *durations.entry(h.name.as_str()).or_default() += d;
        }
    }
    let mut lb = longest;
    for (h, b) in &bytes {
        let host = hosts[h];
        if let Some(n) = host.network_mibps {
            lb = lb.max(b / n);
        }
        let cap = host
            .max_storage_migrations
            .min(s.desired.policy.max_storage_migrations_per_host)
            .max(1);
        lb = lb.max(durations[h] / f64::from(cap));
    }
    lb
}

fn seconds(mem_mib: u64) -> f64 {
    5.0 + mem_mib as f64 / 1000.0
}

fn lower_bound(s: &Scenario) -> f64 {
    let cap: HashMap<&str, f64> = s
        .fleet
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                f64::from(
                    h.max_migrations
                        .min(s.desired.policy.max_migrations_per_host),
                ),
            )
        })
        .collect();
    let mut per_host: HashMap<&str, f64> = HashMap::new();
    let (mut longest, mut total) = (0.0f64, 0.0f64);
    for v in &s.fleet.vms {
        let to = &s.desired.vms[&v.name].host;
        if *to == v.host {
            continue;
        }
        let d = seconds(v.memory_mib);
        *per_host.entry(v.host.as_str()).or_default() += d;
        *per_host.entry(to.as_str()).or_default() += d;
        longest = longest.max(d);
        total += d;
    }
    let host_bound = per_host
        .iter()
        .map(|(h, sum)| sum / cap[h])
        .fold(0.0f64, f64::max);
    host_bound
        .max(longest)
        .max(total / f64::from(s.desired.policy.max_parallel_migrations))
}

/// Live migrations started while a host was at its limit, from the journal.
fn over_limit_starts(sim: &Sim, s: &Scenario) -> usize {
    let cap: HashMap<&str, u32> = s
        .fleet
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.max_migrations
                    .min(s.desired.policy.max_migrations_per_host),
            )
        })
        .collect();
    let mut running: HashMap<String, u32> = HashMap::new();
    let mut over = 0;
    for e in sim.journal() {
        match e.kind {
            EventKind::MigrationStarted { from, to, .. } => {
                for h in [from, to] {
                    let n = running.entry(h.clone()).or_default();
                    *n += 1;
                    if *n > cap[h.as_str()] {
                        over += 1;
                    }
                }
            }
            EventKind::MigrationCompleted { from, to, .. }
            | EventKind::MigrationFailed { from, to, .. } => {
                for h in [from, to] {
                    if let Some(n) = running.get_mut(&h) {
                        *n -= 1;
                    }
                }
            }
            _ => {}
        }
    }
    over
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn berth_makespan(s: &Scenario) -> (f64, usize) {
    let sim = Arc::new(Sim::in_memory(&s.fleet));
    let report = runtime().block_on(execute::converge(
        &s.desired,
        sim.clone(),
        &Options::default(),
        &Quiet,
        Control::new(),
    ));
    let report = report.expect("converge runs");
    assert!(report.converged, "{} did not converge: {report:?}", s.name);
    (report.elapsed_seconds, over_limit_starts(&sim, s))
}

/// The rebalance while commits arrive: every 2 s of simulated time a new
/// spec (the same placement, a new document) reaches the loop, which
/// re-plans around the moves in flight.
fn berth_makespan_under_commits(s: &Scenario, commits: u32) -> (f64, usize) {
    let sim = Arc::new(Sim::in_memory(&s.fleet));
    let control = Control::new();
    let feeder = control.clone();
    let next = Arc::new(s.desired.clone());
    let report = runtime().block_on(async {
        tokio::spawn(async move {
            for _ in 0..commits {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                feeder.set_spec(next.clone());
            }
        });
        execute::converge(
            &s.desired,
            sim.clone(),
            &Options::default(),
            &Quiet,
            control,
        )
        .await
    });
    let report = report.expect("converge runs");
    assert!(report.converged, "{} did not converge: {report:?}", s.name);
    (report.elapsed_seconds, over_limit_starts(&sim, s))
}

/// The seed scripts' way: one source-destination pair at a time, its moves
/// in parallel up to the smaller of the two hosts' limits, one pass at a time.
fn baseline_makespan(s: &Scenario) -> f64 {
    let sim = Sim::in_memory(&s.fleet);
    let cap: HashMap<&str, u32> = s
        .fleet
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.max_migrations
                    .min(s.desired.policy.max_migrations_per_host),
            )
        })
        .collect();
    let mut pairs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for v in &s.fleet.vms {
        let to = &s.desired.vms[&v.name].host;
        if *to != v.host {
            pairs
                .entry((v.host.clone(), to.clone()))
                .or_default()
                .push(v.name.clone());
        }
    }
    runtime().block_on(async {
        let start = tokio::time::Instant::now();
        for ((from, to), vms) in &pairs {
            let width = cap[from.as_str()].min(cap[to.as_str()]).max(1) as usize;
            for chunk in vms.chunks(width) {
                let mut jobs = Vec::new();
                for vm in chunk {
                    let req = MoveRequest {
                        vm: vm.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        kind: MoveKind::Live,
                        storage_path: None,
                    };
                    jobs.push(sim.start_move(&req).await.expect("requested"));
                }
                for j in jobs {
                    sim.wait_job(&j).await.expect("moved");
                }
            }
        }
        start.elapsed().as_secs_f64()
    })
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"apply".contains(a.as_str()))
    {
        return;
    }
    for s in [drain(), rebalance(), shared_nothing_drain()] {
        let lb = if s.name == "shared-nothing drain" {
            storage_lower_bound(&s)
        } else {
            lower_bound(&s)
        };
        let wall = std::time::Instant::now();
        let (makespan, over) = berth_makespan(&s);
        let wall = wall.elapsed();
        let moves = s
            .fleet
            .vms
            .iter()
            .filter(|v| s.desired.vms[&v.name].host != v.host)
            .count();
        println!(
            "apply {}: {moves} moves, makespan {makespan:.1} s, LB {lb:.1} s, ratio {:.3} (target <= 1.10), over-limit starts {over}, wall {:.0} ms",
            s.name,
            makespan / lb,
            wall.as_secs_f64() * 1e3
        );
        if s.name == "rebalance" {
            let wall = std::time::Instant::now();
            let (under, over) = berth_makespan_under_commits(&s, 100);
            println!(
                "apply rebalance under 100 commits (one every 2 s): makespan {under:.1} s, LB {lb:.1} s, ratio {:.3} (target <= 1.15), over-limit starts {over}, wall {:.0} ms",
                under / lb,
                wall.elapsed().as_secs_f64() * 1e3
            );
            let base = baseline_makespan(&s);
            println!(
                "apply rebalance baseline (one pair at a time): makespan {base:.1} s; berth is {:.2}x faster (target >= 2x)",
                base / makespan
            );
        }
    }
}
