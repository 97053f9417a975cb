//! The simulator's own cost: observing a large world, and simulating many
//! migrations. Run with `cargo bench --bench sim`.
//!
//! Targets (issue 3): observe a 10,000-VM / 500-host world in under 20 ms;
//! under 50 microseconds of simulator time per migration.

use std::time::{Duration, Instant};

use berth::provider::sim::{Sim, World};
use berth::provider::{MoveKind, MoveRequest, Provider};
use berth::spec::*;

fn fleet(hosts: usize, vms: usize) -> FleetSpec {
    let acl = |weight: u32, direction: Direction| Acl {
        direction,
        weight,
        action: AclAction::Allow,
        local_address: AddressMatch::Any,
        remote_address: AddressMatch::Any,
        local_port: PortMatch::Range(443, 443),
        remote_port: PortMatch::Any,
        protocol: ProtocolMatch::Number(6),
        stateful: false,
        idle_session_timeout: 0,
        isolation_id: 0,
    };
    FleetSpec {
        seed: 1,
        start_time: berth::spec::DEFAULT_START_TIME,
        faults: Faults::default(),
        hosts: (0..hosts)
            .map(|i| FleetHost {
                name: format!("hv{i:04}"),
                memory_mib: 1024 * 1024,
                max_migrations: 2,
                cpu_vendor: CpuVendor::Intel,
                switches: vec!["Prod".into()],
                migration_rate_mibps: 1000.0,
                down: false,
            })
            .collect(),
        vms: (0..vms)
            .map(|i| FleetVm {
                name: format!("vm-{i:06}"),
                host: format!("hv{:04}", i % hosts),
                memory_mib: 4096,
                state: PowerState::Running,
                backups: Vec::new(),
                fail_next_migrations: 0,
                adapters: vec![FleetAdapter {
                    name: "Network Adapter".into(),
                    switch: Some("Prod".into()),
                    connected: true,
                    vm_network: None,
                    vlan_id: Some(10),
                    acls: vec![acl(10, Direction::Inbound), acl(20, Direction::Outbound)],
                }],
            })
            .collect(),
        origin: Origin::default(),
    }
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"sim".contains(a.as_str()))
    {
        return;
    }
    let (hosts, vms) = (500, 10_000);
    let f = fleet(hosts, vms);

    // Observing: the pure model, and through the provider interface.
    let world = World::new(&f);
    let runs: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(world.observe());
            t.elapsed()
        })
        .collect();
    let (best, median) = stats(runs);
    println!(
        "sim observe: {vms} VMs / {hosts} hosts: best {:.2} ms, median {:.2} ms (target < 20 ms)",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );

    // Migrations: 5,000 live moves, each to the next host, run to the end
    // on simulated time. Only the simulator's CPU time is measured.
    let moves = 5_000;
    let mut world = World::new(&f);
    let t = Instant::now();
    for batch in (0..moves).collect::<Vec<_>>().chunks(hosts / 2) {
        for i in batch {
            let from = i % hosts;
            let req = MoveRequest {
                vm: format!("vm-{i:06}"),
                from: format!("hv{from:04}"),
                to: format!("hv{:04}", (from + 1) % hosts),
                kind: MoveKind::Live,
                storage_path: None,
            };
            world.request_move(&req).expect("requested");
        }
        while let Some(next) = world.next_event_time() {
            world.advance(next);
        }
        std::hint::black_box(world.take_events());
    }
    let per = t.elapsed() / moves as u32;
    println!(
        "sim migrate: {moves} live migrations in batches of {}: {:.1} us each (target < 50 us)",
        hosts / 2,
        per.as_secs_f64() * 1e6
    );

    // The same through the provider on tokio's paused clock.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let sim = Sim::in_memory(&f);
    let t = Instant::now();
    rt.block_on(async {
        for i in 0..1_000 {
            let from = i % hosts;
            let req = MoveRequest {
                vm: format!("vm-{i:06}"),
                from: format!("hv{from:04}"),
                to: format!("hv{:04}", (from + 1) % hosts),
                kind: MoveKind::Live,
                storage_path: None,
            };
            let job = sim.start_move(&req).await.expect("requested");
            sim.wait_job(&job).await.expect("moved");
        }
    });
    let per = t.elapsed() / 1_000;
    let sim_seconds = sim.now_seconds();
    println!(
        "sim provider: 1000 moves one after another through start_move/wait_job: {:.1} us each; {:.0} simulated seconds took {:.1} ms",
        per.as_secs_f64() * 1e6,
        sim_seconds,
        t.elapsed().as_secs_f64() * 1e3
    );
}
