//! The executor on the simulator, judged by the simulator's journal.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use berth::execute::{self, Control, Options, Quiet, Report};
use berth::provider::sim::{Event, EventKind, Sim};
use berth::provider::{MoveKind, MoveRequest, Provider};
use berth::spec::{self, Desired, FleetSpec};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn load(fleet: &str, placement: &str) -> (FleetSpec, Desired) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "fleet.yaml",
        &format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{fleet}"),
    );
    let p = write(
        dir.path(),
        "placement.yaml",
        &format!("apiVersion: berth/v1\nkind: Placement\nspec:\n{placement}"),
    );
    let fleet = spec::load_fleet(&f).unwrap_or_else(|e| panic!("fleet: {e}"));
    let desired = spec::load(&[p]).unwrap_or_else(|e| panic!("placement: {e}"));
    (fleet, desired)
}

fn lab() -> (FleetSpec, Desired) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab");
    let desired = spec::load(std::slice::from_ref(&root)).expect("lab is valid");
    let fleet = spec::load_fleet(&root.join("fleet.yaml")).expect("lab fleet is valid");
    (fleet, desired)
}

async fn converge(sim: &Arc<Sim>, desired: &Desired, opts: &Options) -> Report {
    execute::converge(desired, sim.clone(), opts, &Quiet, Control::new())
        .await
        .expect("converge runs")
}

/// The limits the journal must respect: the least of policy, spec and host.
fn caps(fleet: &FleetSpec, desired: &Desired) -> HashMap<String, u32> {
    fleet
        .hosts
        .iter()
        .map(|h| {
            let declared = desired
                .hosts
                .get(&h.name)
                .and_then(|d| d.max_migrations)
                .unwrap_or(u32::MAX);
            (
                h.name.clone(),
                h.max_migrations
                    .min(declared)
                    .min(desired.policy.max_migrations_per_host),
            )
        })
        .collect()
}

/// Replays the journal and checks every invariant the executor promises.
fn check_journal(journal: &[Event], fleet: &FleetSpec, desired: &Desired) {
    let caps = caps(fleet, desired);
    let capacity: HashMap<&str, u64> = fleet
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.memory_mib))
        .collect();
    let memory: HashMap<&str, u64> = fleet
        .vms
        .iter()
        .map(|v| (v.name.as_str(), v.memory_mib))
        .collect();
    let mut used: HashMap<String, u64> = HashMap::new();
    for v in fleet.vms.iter().filter(|v| v.state.is_live()) {
        *used.entry(v.host.clone()).or_default() += v.memory_mib;
    }
    let mut live: HashMap<String, u32> = HashMap::new();
    let mut open: HashMap<String, (String, String, MoveKind)> = HashMap::new();
    let mut total_open = 0u32;
    let mut last_t = 0.0f64;
    for e in journal {
        assert!(e.t >= last_t, "journal goes back in time at {e:?}");
        last_t = e.t;
        match &e.kind {
            EventKind::MigrationStarted { vm, from, to, kind } => {
                assert!(
                    open.insert(vm.clone(), (from.clone(), to.clone(), *kind))
                        .is_none(),
                    "{vm} started twice at {}",
                    e.t
                );
                total_open += 1;
                assert!(
                    total_open <= desired.policy.max_parallel_migrations,
                    "more than maxParallelMigrations at {}",
                    e.t
                );
                if *kind == MoveKind::Live {
                    for h in [from, to] {
                        let n = live.entry(h.clone()).or_default();
                        *n += 1;
                        assert!(
                            *n <= caps[h],
                            "host {h} over its limit ({} > {}) at t={}",
                            n,
                            caps[h],
                            e.t
                        );
                    }
                    *used.entry(to.clone()).or_default() += memory[vm.as_str()];
                    assert!(
                        used[to] <= capacity[to.as_str()],
                        "host {to} memory overcommitted at t={}",
                        e.t
                    );
                }
            }
            EventKind::MigrationCompleted { vm, from, to, kind }
            | EventKind::MigrationFailed {
                vm, from, to, kind, ..
            } => {
                let started = open
                    .remove(vm)
                    .unwrap_or_else(|| panic!("{vm} ended without a start at {}", e.t));
                assert_eq!(started, (from.clone(), to.clone(), *kind));
                total_open -= 1;
                if let EventKind::MigrationFailed { error, .. } = &e.kind {
                    assert!(
                        !error.contains("not enough memory"),
                        "a move was started without room: {error}"
                    );
                    assert!(
                        !error.contains("no live-migration slot"),
                        "a move was started past a limit: {error}"
                    );
                }
                if *kind == MoveKind::Live {
                    for h in [from, to] {
                        *live.get_mut(h).expect("counted") -= 1;
                    }
                    let mem = memory[vm.as_str()];
                    if matches!(e.kind, EventKind::MigrationCompleted { .. }) {
                        *used.get_mut(from).expect("source") -= mem;
                    } else {
                        *used.get_mut(to).expect("destination") -= mem;
                    }
                }
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "migrations never ended: {open:?}");
}

/// Every converged managed VM is where, and as, the spec says.
async fn check_converged(sim: &Sim, desired: &Desired, report: &Report) {
    let observed = sim.observe().await.expect("observe");
    let blocked: Vec<&str> = report.blocked.iter().map(|b| b.vm.as_str()).collect();
    for (name, spec) in &desired.vms {
        if blocked.contains(&name.as_str()) {
            continue;
        }
        let vm = &observed.vms[name];
        let in_maintenance = desired.hosts.get(&spec.host).is_some_and(|h| h.maintenance);
        if !in_maintenance {
            assert_eq!(vm.host, spec.host, "{name} is not home");
        }
        for a in spec.adapters.iter().flatten() {
            let have = vm
                .adapters
                .iter()
                .find(|x| x.name == a.name)
                .expect("adapter");
            if let Some(acls) = &a.acls {
                assert_eq!(&have.acls, acls, "{name}/{} ACLs", a.name);
            }
            if let Some(sw) = &a.switch {
                assert_eq!(
                    have.switch.as_ref(),
                    Some(sw),
                    "{name}/{} connection",
                    a.name
                );
            }
            if let Some(v) = a.vlan_id {
                assert_eq!(have.vlan_id, Some(v));
            }
        }
    }
}

fn count(journal: &[Event], f: impl Fn(&EventKind) -> bool) -> usize {
    journal.iter().filter(|e| f(&e.kind)).count()
}

#[test]
fn the_lab_converges_with_every_problem_handled() {
    let (fleet, desired) = lab();
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let report = converge(&sim, &desired, &Options::default()).await;
        assert!(report.converged, "{report:?}");
        assert!(report.blocked.is_empty());
        let journal = sim.journal();
        check_journal(&journal, &fleet, &desired);
        check_converged(&sim, &desired, &report).await;
        // Backups: db-01 was not asked to move during its backup window.
        let db = journal.iter().find(|e| matches!(&e.kind, EventKind::MigrationStarted { vm, .. } if vm == "db-01")).expect("db-01 moved");
        assert!(db.t >= 600.0, "db-01 moved during its backup, at {}", db.t);
        // Disconnected after offline moves, and connected again at once.
        for vm in ["build-01", "rpt-01"] {
            let disc = journal.iter().position(|e| matches!(&e.kind, EventKind::AdapterDisconnected { vm: v, .. } if v == vm)).expect("disconnected by the move");
            let conn = journal.iter().position(|e| matches!(&e.kind, EventKind::AdapterConnected { vm: v, .. } if v == vm)).expect("reconnected");
            assert!(conn > disc);
            assert_eq!(journal[conn].t, journal[disc].t, "{vm} reconnected the moment it arrived");
        }
        // ACLs dropped by a move come back in the same instant.
        for (i, e) in journal.iter().enumerate() {
            if let EventKind::AclRemoved { vm, weight, direction, .. } = &e.kind {
                let declared = desired.vms.get(vm).and_then(|v| v.adapters.as_ref()).map(|l| l.iter().any(|a| a.acls.iter().flatten().any(|r| r.weight == *weight && r.direction == *direction))).unwrap_or(false);
                if declared {
                    let back = journal[i..].iter().find(|x| matches!(&x.kind, EventKind::AclAdded { vm: v, weight: w, direction: d, .. } if v == vm && w == weight && d == direction)).expect("ACL re-added");
                    assert_eq!(back.t, e.t, "{vm} ran without ACL {weight} from {} to {}", e.t, back.t);
                }
            }
        }
        // Retries bounded.
        let failed: BTreeMap<&str, usize> = journal.iter().filter_map(|e| match &e.kind { EventKind::MigrationFailed { vm, .. } => Some(vm.as_str()), _ => None }).fold(BTreeMap::new(), |mut m, v| { *m.entry(v).or_default() += 1; m });
        assert!(failed.values().all(|n| *n < desired.policy.max_attempts as usize), "{failed:?}");
        assert!(failed.contains_key("sql-02"), "failNextMigrations was retried");
        assert_eq!(report.failed_attempts as usize, failed.values().sum::<usize>());
        assert_eq!(report.moves as usize, count(&journal, |k| matches!(k, EventKind::MigrationCompleted { .. })));
        assert_eq!(report.attempts as usize, count(&journal, |k| matches!(k, EventKind::MigrationStarted { .. })));
        // A second run finds nothing to do and changes nothing.
        let again = converge(&sim, &desired, &Options::default()).await;
        assert!(again.converged);
        assert_eq!((again.moves, again.attempts, again.acl_changes), (0, 0, 0));
        assert_eq!(sim.journal().len(), journal.len());
    });
}

const TWO: &str = "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
";
const DECL2: &str = "  hosts: [{ name: hv01 }, { name: hv02 }]\n";

#[test]
fn a_move_already_running_is_followed_not_issued_again() {
    let (fleet, desired) = load(
        &format!("{TWO}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 8 }}\n"),
        &format!("{DECL2}  vms:\n    - {{ name: a, host: hv02 }}\n"),
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        // An earlier run started the move and was killed.
        sim.start_move(&MoveRequest {
            vm: "a".into(),
            from: "hv01".into(),
            to: "hv02".into(),
            kind: MoveKind::Live,
            storage_path: None,
        })
        .await
        .expect("started");
        let report = converge(&sim, &desired, &Options::default()).await;
        assert!(report.converged);
        assert_eq!(report.attempts, 0, "nothing was issued again");
        let j = sim.journal();
        assert_eq!(
            count(&j, |k| matches!(k, EventKind::MigrationStarted { .. })),
            1
        );
        check_journal(&j, &fleet, &desired);
    });
}

#[test]
fn a_backup_longer_than_backup_wait_blocks_the_vm_without_using_attempts() {
    let (fleet, desired) = load(
        &format!(
            "{TWO}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 8, backups: [{{ at: 0s, for: 3h }}] }}\n"
        ),
        &format!(
            "  policy: {{ backupWait: 10m }}\n{DECL2}  vms:\n    - {{ name: a, host: hv02 }}\n"
        ),
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let report = converge(&sim, &desired, &Options::default()).await;
        assert!(!report.converged);
        assert_eq!(report.blocked.len(), 1);
        assert!(
            report.blocked[0].reason.contains("backed up"),
            "{}",
            report.blocked[0].reason
        );
        assert!(
            report.blocked[0].reason.contains("backupWait"),
            "{}",
            report.blocked[0].reason
        );
        assert_eq!(report.attempts, 0);
        assert!(sim.journal().is_empty(), "no migration was even requested");
        assert!(
            (600.0..700.0).contains(&report.elapsed_seconds),
            "{}",
            report.elapsed_seconds
        );
    });
}

#[test]
fn a_backup_that_ends_in_time_is_waited_out() {
    let (fleet, desired) = load(
        &format!(
            "{TWO}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 8, backups: [{{ at: 0s, for: 20m }}] }}\n"
        ),
        &format!("{DECL2}  vms:\n    - {{ name: a, host: hv02 }}\n"),
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let report = converge(&sim, &desired, &Options::default()).await;
        assert!(report.converged, "{report:?}");
        assert_eq!((report.attempts, report.failed_attempts), (1, 0));
        let started = sim.journal()[0].t;
        assert!(
            (1200.0..1200.0 + 31.0).contains(&started),
            "moved at {started}"
        );
    });
}

#[test]
fn retries_stop_at_max_attempts_with_the_last_error() {
    let (fleet, desired) = load(
        &format!(
            "{TWO}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 1, failNextMigrations: 10 }}\n    - {{ name: b, host: hv01, memoryGiB: 1 }}\n"
        ),
        &format!(
            "  policy: {{ maxAttempts: 3 }}\n{DECL2}  vms:\n    - {{ name: a, host: hv02 }}\n    - {{ name: b, host: hv02 }}\n"
        ),
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let report = converge(&sim, &desired, &Options::default()).await;
        assert!(!report.converged);
        assert_eq!(report.blocked.len(), 1);
        assert_eq!(report.blocked[0].vm, "a");
        assert!(
            report.blocked[0]
                .reason
                .contains("gave up after 3 failed attempts"),
            "{}",
            report.blocked[0].reason
        );
        assert_eq!(report.failed_attempts, 3);
        assert_eq!(report.moves, 1, "b still moved");
        let j = sim.journal();
        assert_eq!(
            count(
                &j,
                |k| matches!(k, EventKind::MigrationStarted { vm, .. } if vm == "a")
            ),
            3
        );
        // Backoff: the retries are spaced out, growing.
        let starts: Vec<f64> = j
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::MigrationStarted { vm, .. } if vm == "a"))
            .map(|e| e.t)
            .collect();
        let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g > 5.0), "{gaps:?}");
        check_journal(&j, &fleet, &desired);
    });
}

#[test]
fn a_stop_lets_running_moves_finish_and_starts_no_more() {
    let (fleet, desired) = load(
        "  hosts:
    - { name: hv01, memoryGiB: 256, maxMigrations: 1 }
    - { name: hv02, memoryGiB: 256, maxMigrations: 1 }
  vms:
    - { name: a, host: hv01, memoryGiB: 8 }
    - { name: b, host: hv01, memoryGiB: 8 }
    - { name: c, host: hv01, memoryGiB: 8 }
",
        &format!(
            "{DECL2}  vms:\n    - {{ name: a, host: hv02 }}\n    - {{ name: b, host: hv02 }}\n    - {{ name: c, host: hv02 }}\n"
        ),
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let control = Control::new();
        let stopper = control.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            stopper.stop();
        });
        let report = execute::converge(&desired, sim.clone(), &Options::default(), &Quiet, control)
            .await
            .expect("runs");
        assert!(report.interrupted);
        assert!(!report.converged);
        assert_eq!(
            report.moves, 1,
            "the running move finished; no other started"
        );
        let j = sim.journal();
        check_journal(&j, &fleet, &desired);
        assert_eq!(
            count(&j, |k| matches!(k, EventKind::MigrationStarted { .. })),
            1
        );
    });
}

#[test]
fn max_moves_caps_a_run() {
    let (fleet, desired) = load(
        &format!(
            "{TWO}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 1 }}\n    - {{ name: b, host: hv01, memoryGiB: 1 }}\n    - {{ name: c, host: hv01, memoryGiB: 1 }}\n"
        ),
        &format!(
            "{DECL2}  vms:\n    - {{ name: a, host: hv02 }}\n    - {{ name: b, host: hv02 }}\n    - {{ name: c, host: hv02 }}\n"
        ),
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let opts = Options {
            max_moves: Some(2),
            ..Options::default()
        };
        let report = converge(&sim, &desired, &opts).await;
        assert_eq!(report.moves, 2);
        assert!(!report.converged);
        assert_eq!(report.blocked.len(), 1);
        assert!(report.blocked[0].reason.contains("limit of 2 moves"));
    });
}

#[test]
fn drift_is_corrected_on_vms_that_stay_and_unmanaged_adapters_survive_moves() {
    let (fleet, desired) = load(
        "  faults: { dropAclsOnMigration: true, disconnectOnOfflineMove: true }
  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
  vms:
    - name: keep
      host: hv01
      memoryGiB: 2
      networkAdapters: [{ name: nic, switch: Prod, acls: [{ action: deny, direction: inbound, weight: 5 }] }]
    - name: mover
      host: hv01
      memoryGiB: 2
      state: off
      networkAdapters: [{ name: nic, switch: Prod, acls: [{ action: allow, direction: outbound, weight: 7 }] }]
",
        "  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - name: keep
      host: hv01
      networkAdapters: [{ name: nic, switch: Prod, vlanId: 12, acls: [] }]
    - { name: mover, host: hv02 }
",
    );
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        let report = converge(&sim, &desired, &Options::default()).await;
        assert!(report.converged, "{report:?}");
        let o = sim.observe().await.expect("observe");
        assert!(o.vms["keep"].adapters[0].acls.is_empty());
        assert_eq!(o.vms["keep"].adapters[0].vlan_id, Some(12));
        // Adapters of `mover` are not managed: the move must not cost it
        // its ACL or its connection.
        let m = &o.vms["mover"].adapters[0];
        assert_eq!(m.switch.as_deref(), Some("Prod"));
        assert_eq!(m.acls.len(), 1);
        assert_eq!(m.acls[0].weight, 7);
    });
}

// ---------------------------------------------------------------- chaos

#[derive(Debug, Clone)]
struct World {
    fleet: String,
    placement: String,
}

fn world() -> impl Strategy<Value = World> {
    (2usize..6, 2usize..12, any::<u64>(), 0u8..4).prop_flat_map(|(nhosts, nvms, seed, fault_mix)| {
        let hosts = proptest::collection::vec((32u32..160, 1u32..4, any::<bool>(), prop::bool::weighted(0.1)), nhosts);
        let vms = proptest::collection::vec(
            (1u32..24, 0..nhosts, 0..nhosts, prop::bool::weighted(0.7), prop::bool::weighted(0.2), 0u32..3, prop::bool::weighted(0.3)),
            nvms,
        );
        (Just(seed), Just(fault_mix), hosts, vms, 0..nhosts, prop::bool::weighted(0.3)).prop_map(
            |(seed, fault_mix, hosts, vms, maint, use_maint)| {
                let rate = [0.0, 0.1, 0.3, 0.5][fault_mix as usize];
                let mut fleet = format!(
                    "  seed: {seed}\n  faults: {{ transientFailureRate: {rate}, dropAclsOnMigration: true, disconnectOnOfflineMove: true, overLimitWait: 2m }}\n  hosts:\n"
                );
                let mut placement = String::from("  policy: { maxAttempts: 3, backupWait: 15m }\n  hosts:\n");
                for (i, (mem, cap, amd, down)) in hosts.iter().enumerate() {
                    fleet.push_str(&format!(
                        "    - {{ name: h{i}, memoryGiB: {mem}, maxMigrations: {cap}, cpuVendor: {}, switches: [Prod], down: {down} }}\n",
                        if *amd { "amd" } else { "intel" }
                    ));
                    placement.push_str(&format!("    - {{ name: h{i}, maintenance: {} }}\n", use_maint && i == maint));
                }
                fleet.push_str("  vms:\n");
                placement.push_str("  vms:\n");
                let mut load = vec![0u32; hosts.len()];
                for (i, (mem, at, want, running, backup, fail_next, acl)) in vms.iter().enumerate() {
                    // Keep the starting world valid: running VMs fit where they start.
                    let running = *running && load[*at] + mem <= hosts[*at].0;
                    if running {
                        load[*at] += mem;
                    }
                    let backups = if *backup { "backups: [{ at: 0s, for: 5m }], " } else { "" };
                    fleet.push_str(&format!(
                        "    - {{ name: vm{i}, host: h{at}, memoryGiB: {mem}, state: {}, {backups}failNextMigrations: {fail_next}, networkAdapters: [{{ name: nic, switch: Prod }}] }}\n",
                        if running { "running" } else { "off" }
                    ));
                    let acls = if *acl { ", acls: [{ action: allow, direction: both, weight: 10, protocol: tcp }]" } else { "" };
                    let fallback = (want + 1) % hosts.len();
                    let fb = if fallback != *want { format!(", fallback: [h{fallback}]") } else { String::new() };
                    placement.push_str(&format!(
                        "    - {{ name: vm{i}, host: h{want}{fb}, networkAdapters: [{{ name: nic, switch: Prod{acls} }}] }}\n"
                    ));
                }
                World { fleet, placement }
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn chaos_ends_converged_or_with_every_straggler_blocked(w in world()) {
        let (fleet, desired) = load(&w.fleet, &w.placement);
        runtime().block_on(async {
            let sim = Arc::new(Sim::in_memory(&fleet));
            let report = converge(&sim, &desired, &Options::default()).await;
            let journal = sim.journal();
            check_journal(&journal, &fleet, &desired);
            check_converged(&sim, &desired, &report).await;
            if !report.converged {
                // Every VM that is not where it belongs is blocked, with a reason.
                let observed = sim.observe().await.expect("observe");
                let plan = berth::plan::plan(&desired, &observed);
                for a in plan.actions.iter().filter(|a| a.kind.is_move()) {
                    let vm = a.kind.vm();
                    assert!(report.blocked.iter().any(|b| b.vm == vm), "{vm} still has to move but is not blocked: {report:?}");
                }
            }
            for b in &report.blocked {
                assert!(!b.reason.trim().is_empty());
            }
        });
    }
}
