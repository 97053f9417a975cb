//! The planner's promise, checked by replaying its plans in the simulator.
//!
//! For random fleets and random desired placements, a small executor (the
//! shared [`Scheduler`] plus the simulator's provider calls) carries the plan
//! out on paused time. The simulator's journal must show no failed migration,
//! no host over its memory, its migration cap or the fleet-wide cap; every VM
//! must end where the plan said, and every managed VM that is not where the
//! spec wants it must be reported as blocked.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use berth::plan::{ActionKind, Plan};
use berth::provider::MoveKind;
use berth::provider::sim::EventKind;
use berth::spec::{
    Acl, AclAction, AdapterSpec, AddressMatch, CpuVendor, Desired, Direction, Faults, FleetAdapter,
    FleetHost, FleetSpec, FleetVm, HostSpec, Origin, Policy, PortMatch, PowerState, ProtocolMatch,
    VmSpec,
};
use proptest::prelude::*;

#[path = "common/replay.rs"]
mod replay;
use replay::{Round, replay};

const GIB: u64 = 1024;

// ------------------------------------------------------------- generation

#[derive(Debug, Clone)]
struct GenHost {
    gib: u64,
    own_cap: u32,
    declared_cap: Option<u32>,
    amd: bool,
    storage: bool,
    fast: bool,
    down: bool,
}

#[derive(Debug, Clone)]
struct GenVm {
    gib: u64,
    state: PowerState,
    host: usize,
    want: usize,
    managed: bool,
    /// The adapter is on the `Storage` switch (else `Prod`).
    on_storage: bool,
    connected: bool,
    /// ACLs it has now, as a bitmask over [`rules`].
    have_acls: u8,
    /// Managed adapter: (VLAN, ACL bitmask) when declared.
    adapter: Option<(Option<u16>, Option<u8>)>,
    fallback: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Gen {
    hosts: Vec<GenHost>,
    vms: Vec<GenVm>,
    maintenance: Option<usize>,
    per_host: u32,
    parallel: u32,
}

fn gen_host() -> impl Strategy<Value = GenHost> {
    (
        16u64..=128,
        1u32..=3,
        prop::option::weighted(0.3, 1u32..=3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        any::<bool>(),
        prop::bool::weighted(0.07),
    )
        .prop_map(
            |(gib, own_cap, declared_cap, amd, storage, fast, down)| GenHost {
                gib,
                own_cap,
                declared_cap,
                amd,
                storage,
                fast,
                down,
            },
        )
}

fn gen_vm(hosts: usize) -> impl Strategy<Value = GenVm> {
    let state = prop_oneof![
        6 => Just(PowerState::Running),
        2 => Just(PowerState::Off),
        1 => Just(PowerState::Saved),
        1 => Just(PowerState::Paused),
    ];
    let adapter = prop::option::weighted(
        0.5,
        (
            prop::option::of(prop_oneof![Just(10u16), Just(20u16)]),
            prop::option::weighted(0.7, 0u8..8),
        ),
    );
    (
        (
            1u64..=32,
            state,
            0..hosts,
            0..hosts,
            prop::bool::weighted(0.85),
        ),
        (
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.85),
            0u8..8,
            adapter,
            prop::collection::vec(0..hosts, 0..=2),
        ),
    )
        .prop_map(
            |(
                (gib, state, host, want, managed),
                (on_storage, connected, have_acls, adapter, fallback),
            )| GenVm {
                gib,
                state,
                host,
                want,
                managed,
                on_storage,
                connected,
                have_acls,
                adapter,
                fallback,
            },
        )
}

fn gen_fleet() -> impl Strategy<Value = Gen> {
    (2usize..=6).prop_flat_map(|n| {
        (
            prop::collection::vec(gen_host(), n),
            prop::collection::vec(gen_vm(n), 2..=12),
            prop::option::weighted(0.35, 0..n),
            1u32..=3,
            1u32..=8,
        )
            .prop_map(|(hosts, vms, maintenance, per_host, parallel)| Gen {
                hosts,
                vms,
                maintenance,
                per_host,
                parallel,
            })
    })
}

/// Fleets where everything fits anywhere: one CPU vendor, every switch on
/// every host, all hosts up and each big enough for every VM at once.
fn gen_roomy_fleet() -> impl Strategy<Value = Gen> {
    gen_fleet().prop_map(|mut g| {
        for h in &mut g.hosts {
            h.gib = 512;
            h.amd = false;
            h.storage = true;
            h.down = false;
        }
        g
    })
}

fn host_name(i: usize) -> String {
    format!("hv{:02}", i + 1)
}

fn vm_name(i: usize) -> String {
    format!("vm{:02}", i + 1)
}

/// The ACL rules a bitmask picks.
fn rules(mask: u8) -> Vec<Acl> {
    let rule = |direction, weight, action, port| Acl {
        direction,
        weight,
        action,
        local_address: AddressMatch::Any,
        remote_address: AddressMatch::Any,
        local_port: port,
        remote_port: PortMatch::Any,
        protocol: ProtocolMatch::Number(6),
        stateful: false,
        idle_session_timeout: 0,
        isolation_id: 0,
    };
    let all = [
        rule(Direction::Inbound, 1, AclAction::Deny, PortMatch::Any),
        rule(
            Direction::Inbound,
            10,
            AclAction::Allow,
            PortMatch::Range(443, 443),
        ),
        rule(
            Direction::Outbound,
            10,
            AclAction::Allow,
            PortMatch::Range(53, 53),
        ),
    ];
    let mut out: Vec<Acl> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| r)
        .collect();
    out.sort();
    out
}

/// The simulator's world and the spec a generated case describes.
fn build(g: &Gen) -> (FleetSpec, Desired) {
    let hosts: Vec<FleetHost> = g
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| FleetHost {
            name: host_name(i),
            memory_mib: h.gib * GIB,
            max_migrations: h.own_cap,
            cpu_vendor: if h.amd {
                CpuVendor::Amd
            } else {
                CpuVendor::Intel
            },
            switches: if h.storage {
                vec!["Prod".into(), "Storage".into()]
            } else {
                vec!["Prod".into()]
            },
            migration_rate_mibps: if h.fast { 1000.0 } else { 100.0 },
            down: h.down,
            max_storage_migrations: 2,
            network_mibps: None,
            volumes: Vec::new(),
        })
        .collect();
    // The fleet as it is must be possible: a running VM that does not fit
    // on its host is powered off, an adapter on a switch its host lacks is
    // on Prod.
    let mut used = vec![0u64; hosts.len()];
    let mut vms = Vec::new();
    for (i, v) in g.vms.iter().enumerate() {
        let mut state = v.state;
        if state.is_live() {
            if used[v.host] + v.gib * GIB > hosts[v.host].memory_mib {
                state = PowerState::Off;
            } else {
                used[v.host] += v.gib * GIB;
            }
        }
        let switch = if v.on_storage && g.hosts[v.host].storage {
            "Storage"
        } else {
            "Prod"
        };
        vms.push(FleetVm {
            name: vm_name(i),
            host: host_name(v.host),
            memory_mib: v.gib * GIB,
            state,
            backups: Vec::new(),
            fail_next_migrations: 0,
            adapters: vec![FleetAdapter {
                name: "nic".into(),
                switch: Some(switch.into()),
                connected: v.connected,
                vm_network: None,
                vlan_id: Some(10),
                acls: rules(v.have_acls),
            }],
            disks: Vec::new(),
        });
    }
    let fleet = FleetSpec {
        seed: 1,
        start_time: berth::spec::DEFAULT_START_TIME,
        faults: Faults {
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
            let name = host_name(i);
            (
                name.clone(),
                HostSpec {
                    name,
                    maintenance: g.maintenance == Some(i),
                    max_migrations: h.declared_cap,
                    max_storage_migrations: None,
                    storage_path: None,
                    origin: Origin::default(),
                    labels: Default::default(),
                },
            )
        })
        .collect();
    let mut vms = BTreeMap::new();
    for (i, v) in g.vms.iter().enumerate().filter(|(_, v)| v.managed) {
        let mut fallback = Vec::new();
        for f in &v.fallback {
            let f = host_name(*f);
            if f != host_name(v.want) && !fallback.contains(&f) {
                fallback.push(f);
            }
        }
        let adapters = v.adapter.map(|(vlan, acls)| {
            vec![AdapterSpec {
                name: "nic".into(),
                switch: Some("Prod".into()),
                vm_network: None,
                vlan_id: vlan,
                acls: acls.map(rules),
            }]
        });
        vms.insert(
            vm_name(i),
            std::sync::Arc::new(VmSpec {
                name: vm_name(i),
                host: host_name(v.want),
                choice: None,
                fallback,
                adapters,
                origin: Origin::default(),
                priority: 0,
            }),
        );
    }
    let desired = Desired {
        policy: Policy {
            max_parallel_migrations: g.parallel,
            max_migrations_per_host: g.per_host,
            ..Policy::default()
        },
        hosts,
        vms,
        ..Desired::default()
    };
    (fleet, desired)
}

// ------------------------------------------------------------- invariants

/// Replays the journal: no failure, and at every event no host over its
/// memory or its live-migration cap, and no more moves at once than the
/// fleet-wide cap.
fn check_journal(r: &Round) -> Result<(), String> {
    let mut used: HashMap<&str, u64> = r.before.memory_used().into_iter().collect();
    let mut live_on: HashMap<&str, u32> = HashMap::new();
    let mut running = 0u32;
    for e in &r.journal {
        match &e.kind {
            EventKind::MigrationStarted { vm, from, to, kind } => {
                running += 1;
                if running > r.caps.max_parallel {
                    return Err(format!(
                        "t={}: {running} moves at once, over maxParallelMigrations {}",
                        e.t, r.caps.max_parallel
                    ));
                }
                if *kind == MoveKind::Live {
                    let mem = r.before.vms[vm].memory_mib;
                    let u = used.entry(to.as_str()).or_default();
                    *u += mem;
                    let total = r.before.hosts[to].memory_mib;
                    if *u > total {
                        return Err(format!(
                            "t={}: {vm} moving to {to} holds {u} MiB there, of {total} MiB",
                            e.t
                        ));
                    }
                    for h in [from, to] {
                        let n = live_on.entry(h.as_str()).or_default();
                        *n += 1;
                        if *n > r.caps.host(h) {
                            return Err(format!(
                                "t={}: {n} live migrations on {h}, over its cap {}",
                                e.t,
                                r.caps.host(h)
                            ));
                        }
                    }
                }
            }
            EventKind::MigrationCompleted { vm, from, to, kind } => {
                running -= 1;
                if *kind == MoveKind::Live {
                    let mem = r.before.vms[vm].memory_mib;
                    *used.entry(from.as_str()).or_default() -= mem;
                    for h in [from, to] {
                        *live_on.entry(h.as_str()).or_default() -= 1;
                    }
                }
            }
            EventKind::MigrationFailed { vm, error, .. } => {
                return Err(format!("t={}: the move of {vm} failed: {error}", e.t));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where the plan leaves each VM: its last move's destination, else where
/// it is.
fn goals(r: &Round) -> BTreeMap<String, String> {
    let mut goal: BTreeMap<String, String> = r
        .before
        .vms
        .values()
        .map(|v| (v.name.clone(), v.host.clone()))
        .collect();
    for a in &r.plan.actions {
        if let ActionKind::Move { vm, to, .. } = &a.kind {
            goal.insert(vm.clone(), to.clone());
        }
    }
    goal
}

fn check_outcome(r: &Round, desired: &Desired) -> Result<(), String> {
    let in_maintenance = |h: &str| desired.hosts.get(h).is_some_and(|h| h.maintenance);
    for (vm, goal) in goals(r) {
        let now = &r.after.vms[&vm].host;
        if *now != goal {
            return Err(format!("{vm} ended on {now}, the plan took it to {goal}"));
        }
        let was = &r.before.vms[&vm].host;
        let why = r.plan.blocked.iter().find(|b| b.vm == vm);
        // A blocked VM stays where it is, or (it hopped to make room and
        // could go no further) its reason says where it is left.
        if let Some(b) = why
            && now != was
            && !b.reason.starts_with(&format!("it stays on {now},"))
        {
            return Err(format!(
                "{vm} was moved from {was} to {now}, and is reported blocked: {}",
                b.reason
            ));
        }
        if why.is_some() {
            continue;
        }
        match desired.vms.get(&vm) {
            Some(spec) if !in_maintenance(&spec.host) && *now != spec.host => {
                return Err(format!(
                    "{vm} belongs on {} but ended on {now}, and is not reported blocked",
                    spec.host
                ));
            }
            Some(_) | None if in_maintenance(now) => {
                return Err(format!(
                    "{vm} ended on {now}, which is in maintenance, and is not reported blocked"
                ));
            }
            Some(_) => {}
            None if now != was && !in_maintenance(was) => {
                return Err(format!(
                    "unmanaged {vm} moved from {was} to {now} without maintenance"
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// Replays up to four rounds; checks every round's safety and outcome, that
/// no VM goes back to a host it left (ping-pong between runs), and that the
/// fleet converges: the last plan has nothing to do, and anything it cannot
/// do is reported blocked.
fn check(g: &Gen) -> Result<Vec<Round>, String> {
    let (fleet, desired) = build(g);
    let rounds = replay(&fleet, &desired, 4)?;
    let mut path: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (i, r) in rounds.iter().enumerate() {
        let round = |e: String| format!("round {}: {e}", i + 1);
        check_journal(r).map_err(round)?;
        check_outcome(r, &desired).map_err(round)?;
        for (name, vm) in &r.after.vms {
            let hosts = path
                .entry(name.as_str())
                .or_insert_with(|| vec![r.before.vms[name].host.as_str()]);
            let now = vm.host.as_str();
            if hosts.last() != Some(&now) {
                if hosts.contains(&now) {
                    return Err(round(format!(
                        "{name} went back to {now}; it was on {hosts:?}"
                    )));
                }
                hosts.push(now);
            }
        }
    }
    let last = rounds.last().ok_or("no round ran")?;
    if !last.plan.actions.is_empty() {
        return Err(format!(
            "not converged after {} rounds; still planned: {:?}",
            rounds.len(),
            last.plan.actions
        ));
    }
    if last.plan.blocked.is_empty() != last.plan.in_sync {
        return Err(format!(
            "a plan with no actions is in sync exactly when nothing is blocked: {:?}",
            last.plan.blocked
        ));
    }
    Ok(rounds)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replaying_a_plan_is_safe_and_reaches_the_goal_or_reports_blocked(g in gen_fleet()) {
        if let Err(e) = check(&g) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn with_room_everywhere_nothing_is_blocked_and_the_spec_is_reached(g in gen_roomy_fleet()) {
        let (_, desired) = build(&g);
        let rounds = match check(&g) {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(e)),
        };
        let r = &rounds[0];
        prop_assert!(r.plan.blocked.is_empty(), "blocked: {:?}", r.plan.blocked);
        // One round is enough when nothing is in the way.
        prop_assert!(rounds.len() <= 2, "{} rounds", rounds.len());
        for (name, spec) in &desired.vms {
            let now = &r.after.vms[name].host;
            if !desired.hosts[&spec.host].maintenance {
                prop_assert_eq!(now, &spec.host);
            } else if let Some(first) = spec.fallback.first() {
                // With room everywhere, a VM waits on its first fallback.
                prop_assert_eq!(now, first, "{} waits on its first fallback", name);
            }
        }
    }
}

// ------------------------------------------------------------- regressions
//
// Cases the properties found, kept as plain tests.

fn host(gib: u64) -> GenHost {
    GenHost {
        gib,
        own_cap: 2,
        declared_cap: None,
        amd: false,
        storage: false,
        fast: true,
        down: false,
    }
}

fn vm(gib: u64, host: usize, want: usize) -> GenVm {
    GenVm {
        gib,
        state: PowerState::Running,
        host,
        want,
        managed: true,
        on_storage: false,
        connected: true,
        have_acls: 0,
        adapter: None,
        fallback: Vec::new(),
    }
}

fn fleet(hosts: Vec<GenHost>, vms: Vec<GenVm>, maintenance: Option<usize>) -> Gen {
    Gen {
        hosts,
        vms,
        maintenance,
        per_host: 2,
        parallel: 8,
    }
}

fn blocked(p: &Plan) -> Vec<(&str, &str)> {
    p.blocked
        .iter()
        .map(|b| (b.vm.as_str(), b.reason.as_str()))
        .collect()
}

/// A VM already waiting on its first fallback while its host is in
/// maintenance stays there. It used to move on to another host, and back
/// on the next run, forever; with no other host it was reported blocked.
#[test]
fn a_vm_waiting_on_its_fallback_stays_there() {
    let g = fleet(
        vec![host(64), host(64), host(64)],
        vec![GenVm {
            fallback: vec![1, 2],
            ..vm(8, 1, 0)
        }],
        Some(0),
    );
    let rounds = check(&g).unwrap_or_else(|e| panic!("{e}"));
    let p = &rounds[0].plan;
    assert!(p.in_sync, "vm01 waits on hv02, its first fallback: {p:?}");

    // With two hosts, the one it is on is the only place to wait.
    let g = fleet(vec![host(64), host(64)], vec![vm(8, 1, 0)], Some(0));
    let rounds = check(&g).unwrap_or_else(|e| panic!("{e}"));
    assert!(rounds[0].plan.in_sync, "{:?}", rounds[0].plan);
}

/// A VM connected to a switch the destination lacks cannot move there,
/// even when the spec connects it elsewhere afterwards: the move itself
/// fails. The plan reconnects it now and moves it on the next run.
#[test]
fn a_move_needs_the_switch_the_vm_is_connected_to_now() {
    let mut storage = host(64);
    storage.storage = true;
    let g = fleet(
        vec![host(64), storage],
        vec![GenVm {
            on_storage: true,
            adapter: Some((None, None)),
            ..vm(8, 1, 0)
        }],
        None,
    );
    let rounds = check(&g).unwrap_or_else(|e| panic!("{e}"));
    let first = &rounds[0].plan;
    assert_eq!(first.moves(), 0, "{first:?}");
    assert_eq!(first.connections(), 1, "{first:?}");
    assert_eq!(
        blocked(first),
        vec![("vm01", "hv01 has no virtual switch Storage")]
    );
    let second = &rounds[1].plan;
    assert_eq!(second.moves(), 1, "{second:?}");
    assert!(second.blocked.is_empty());
    assert_eq!(rounds[1].after.vms["vm01"].host, "hv01");
}

/// Only a VM of a ring hops. Here vm01 and vm04 swap hv01 and hv02 with no
/// room to do it, and hv03 is in maintenance; the unmanaged vm03 leaving
/// hv03 used to hop onto hv02, which helped nobody, and was then reported
/// blocked "in a ring" while the plan had moved it.
#[test]
fn a_vm_outside_a_ring_does_not_hop() {
    let g = fleet(
        vec![host(57), host(60), host(34)],
        vec![
            vm(6, 1, 0),
            GenVm {
                managed: false,
                ..vm(26, 0, 0)
            },
            GenVm {
                managed: false,
                ..vm(3, 2, 0)
            },
            vm(29, 0, 1),
            GenVm {
                managed: false,
                ..vm(26, 1, 1)
            },
        ],
        Some(2),
    );
    let rounds = check(&g).unwrap_or_else(|e| panic!("{e}"));
    let p = &rounds[0].plan;
    assert_eq!(p.moves(), 0, "{p:?}");
    let names: Vec<&str> = blocked(p).into_iter().map(|b| b.0).collect();
    assert_eq!(names, vec!["vm01", "vm03", "vm04"]);
    assert!(p.blocked.iter().all(|b| b.reason.contains("ring")), "{p:?}");
}
