//! The one loop on the simulator (paused clock): re-plans around moves in
//! flight, retry state that outlives re-plans and new specs, the reasons a
//! ready move waits, and a journal repaired after a kill.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::execute::{self, Control, Event, Observer, Options, Snapshot};
use berth::provider::sim::{EventKind, Sim};
use berth::spec::{self, Desired, FleetSpec};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn load(dir: &Path, fleet: &str, placement: &str) -> (FleetSpec, Desired) {
    let f = dir.join("fleet.yaml");
    std::fs::write(
        &f,
        format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{fleet}"),
    )
    .expect("write");
    let p = dir.join("placement.yaml");
    std::fs::write(
        &p,
        format!("apiVersion: berth/v1\nkind: Placement\nspec:\n{placement}"),
    )
    .expect("write");
    let fleet = spec::load_fleet(&f).unwrap_or_else(|e| panic!("fleet: {e}"));
    let desired = spec::load(&[p]).unwrap_or_else(|e| panic!("placement: {e}"));
    (fleet, desired)
}

fn spec_only(dir: &Path, placement: &str) -> Desired {
    let p = dir.join("placement2.yaml");
    std::fs::write(
        &p,
        format!("apiVersion: berth/v1\nkind: Placement\nspec:\n{placement}"),
    )
    .expect("write");
    spec::load(&[p]).unwrap_or_else(|e| panic!("placement: {e}"))
}

/// Records events (with the simulated second they came at) and pictures.
#[derive(Default)]
struct Record {
    start: Mutex<Option<tokio::time::Instant>>,
    events: Mutex<Vec<(f64, Event)>>,
    waiting: Mutex<Vec<(String, String)>>,
}

impl Record {
    fn t(&self) -> f64 {
        let mut s = self.start.lock().expect("lock");
        let start = *s.get_or_insert_with(tokio::time::Instant::now);
        start.elapsed().as_secs_f64()
    }

    fn starts(&self, vm: &str) -> Vec<(f64, u32)> {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(t, e)| match e {
                Event::MoveStarted { vm: v, attempt, .. } if v == vm => Some((*t, *attempt)),
                _ => None,
            })
            .collect()
    }

    fn finished(&self, vm: &str) -> Vec<(f64, bool)> {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(t, e)| match e {
                Event::MoveFinished { vm: v, error, .. } if v == vm => Some((*t, error.is_none())),
                _ => None,
            })
            .collect()
    }

    fn reasons(&self, vm: &str) -> Vec<String> {
        self.waiting
            .lock()
            .expect("lock")
            .iter()
            .filter(|(v, _)| v == vm)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Observer for Record {
    fn event(&self, event: &Event) {
        let t = self.t();
        self.events.lock().expect("lock").push((t, event.clone()));
    }

    fn wants_state(&self) -> bool {
        true
    }

    fn state(&self, s: &Snapshot) {
        let mut w = self.waiting.lock().expect("lock");
        for (vm, why) in &s.waiting {
            w.push((vm.clone(), why.clone()));
        }
    }
}

const HOSTS: &str = "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod], migrationRateMiBps: 100 }
    - { name: hv02, memoryGiB: 64, switches: [Prod], migrationRateMiBps: 100 }
    - { name: hv03, memoryGiB: 64, switches: [Prod], migrationRateMiBps: 100 }
";
const DECL: &str = "  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]\n";

#[test]
fn a_failed_move_is_retried_while_long_moves_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `long` takes 5 + 20480 / 100 = 210 s; `flaky` fails once, then moves.
    let (fleet, desired) = load(
        dir.path(),
        &format!(
            "{HOSTS}  vms:\n    - {{ name: long, host: hv01, memoryGiB: 20 }}\n    - {{ name: flaky, host: hv03, memoryGiB: 1, failNextMigrations: 1 }}\n"
        ),
        &format!(
            "{DECL}  vms:\n    - {{ name: long, host: hv02 }}\n    - {{ name: flaky, host: hv02 }}\n"
        ),
    );
    let rec = Record::default();
    let report = runtime().block_on(async {
        rec.t();
        let sim = Arc::new(Sim::in_memory(&fleet));
        execute::converge(&desired, sim, &Options::default(), &rec, Control::new())
            .await
            .expect("converge")
    });
    assert!(report.converged, "{report:?}");
    let flaky = rec.starts("flaky");
    assert_eq!(flaky.len(), 2, "{flaky:?}");
    assert_eq!(flaky[1].1, 2, "the second start is attempt 2");
    let long_done = rec.finished("long")[0].0;
    assert!(
        flaky[1].0 < long_done,
        "the retry ({}) did not wait for the long move (done at {long_done})",
        flaky[1].0
    );
    assert!(
        rec.reasons("flaky")
            .iter()
            .any(|r| r.starts_with("retry in ")),
        "{:?}",
        rec.reasons("flaky")
    );
}

#[test]
fn a_new_spec_keeps_a_retrys_attempt_count_and_starts_unrelated_work_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fleet, desired) = load(
        dir.path(),
        &format!(
            "{HOSTS}  vms:\n    - {{ name: long, host: hv01, memoryGiB: 20 }}\n    - {{ name: flaky, host: hv03, memoryGiB: 1, failNextMigrations: 1 }}\n    - {{ name: other, host: hv03, memoryGiB: 1 }}\n"
        ),
        &format!(
            "{DECL}  policy: {{ maxMigrationsPerHost: 4 }}\n  vms:\n    - {{ name: long, host: hv02 }}\n    - {{ name: flaky, host: hv02 }}\n    - {{ name: other, host: hv03 }}\n"
        ),
    );
    // The commit: `other` goes to hv01 too; `flaky`'s move is unchanged.
    let next = Arc::new(spec_only(
        dir.path(),
        &format!(
            "{DECL}  policy: {{ maxMigrationsPerHost: 4 }}\n  vms:\n    - {{ name: long, host: hv02 }}\n    - {{ name: flaky, host: hv02 }}\n    - {{ name: other, host: hv01 }}\n"
        ),
    ));
    let opts = Options {
        retry_min_delay: Duration::from_secs(60),
        retry_max_delay: Duration::from_secs(60),
        ..Options::default()
    };
    let rec = Record::default();
    let report = runtime().block_on(async {
        rec.t();
        let sim = Arc::new(Sim::in_memory(&fleet));
        let control = Control::new();
        let c = control.clone();
        tokio::spawn(async move {
            // Flaky's first attempt (15 s) has failed; its retry waits.
            tokio::time::sleep(Duration::from_secs(30)).await;
            c.set_spec(next);
        });
        execute::converge(&desired, sim, &opts, &rec, control)
            .await
            .expect("converge")
    });
    assert!(report.converged, "{report:?}");
    let other = rec.starts("other");
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(
        other[0].0 < 31.0,
        "other started at {} s, not at once after the commit at 30 s",
        other[0].0
    );
    let flaky = rec.starts("flaky");
    assert_eq!(
        flaky.iter().map(|f| f.1).collect::<Vec<_>>(),
        vec![1, 2],
        "the attempt count survived the new spec"
    );
    assert!(flaky[1].0 >= 75.0, "the backoff survived too: {flaky:?}");
    let long = rec.starts("long");
    assert_eq!(
        long.len(),
        1,
        "the long move was never stopped or issued again"
    );
}

/// Hands a new spec to the loop from inside its first round's report,
/// that is after the round planned and before it decides to end.
struct HandOver {
    control: Arc<Control>,
    next: Mutex<Option<Arc<Desired>>>,
    starts: Mutex<Vec<String>>,
}

impl Observer for HandOver {
    fn event(&self, event: &Event) {
        if let Event::MoveStarted { vm, .. } = event {
            self.starts.lock().expect("lock").push(vm.clone());
        }
    }

    fn wants_state(&self) -> bool {
        true
    }

    fn state(&self, _: &Snapshot) {
        if let Some(next) = self.next.lock().expect("lock").take() {
            self.control.set_spec(next);
        }
    }
}

#[test]
fn a_spec_handed_over_during_the_last_round_is_planned_before_the_loop_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fleet, desired) = load(
        dir.path(),
        &format!("{HOSTS}  vms:\n    - {{ name: web, host: hv01, memoryGiB: 1 }}\n"),
        &format!("{DECL}  vms:\n    - {{ name: web, host: hv01 }}\n"),
    );
    let next = Arc::new(spec_only(
        dir.path(),
        &format!("{DECL}  vms:\n    - {{ name: web, host: hv02 }}\n"),
    ));
    let control = Control::new();
    let observer = HandOver {
        control: control.clone(),
        next: Mutex::new(Some(next)),
        starts: Mutex::new(Vec::new()),
    };
    let report = runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        execute::converge(&desired, sim, &Options::default(), &observer, control)
            .await
            .expect("converge")
    });
    // In sync with the first spec, the loop would have ended after its
    // first round; it plans the spec handed over meanwhile instead.
    assert_eq!(
        *observer.starts.lock().expect("lock"),
        vec!["web".to_string()]
    );
    assert_eq!(report.moves, 1, "{report:?}");
    assert!(report.converged, "{report:?}");
}

#[test]
fn waits_say_why_slot_backup_and_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fleet, desired) = load(
        dir.path(),
        "  hosts:
    - { name: hv01, memoryGiB: 64, maxMigrations: 1, migrationRateMiBps: 100 }
    - { name: hv02, memoryGiB: 64, migrationRateMiBps: 100 }
    - { name: hv03, memoryGiB: 64, migrationRateMiBps: 100 }
  vms:
    - { name: a, host: hv01, memoryGiB: 4 }
    - { name: b, host: hv01, memoryGiB: 1 }
    - { name: c, host: hv03, memoryGiB: 1, backups: [{ at: 0s, for: 2m }] }
    - { name: d, host: hv03, memoryGiB: 1, failNextMigrations: 1 }
",
        &format!(
            "{DECL}  vms:\n    - {{ name: a, host: hv02 }}\n    - {{ name: b, host: hv02 }}\n    - {{ name: c, host: hv02 }}\n    - {{ name: d, host: hv02 }}\n"
        ),
    );
    let rec = Record::default();
    let report = runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(&fleet));
        execute::converge(&desired, sim, &Options::default(), &rec, Control::new())
            .await
            .expect("converge")
    });
    assert!(report.converged, "{report:?}");
    let slot = rec.reasons("a").into_iter().chain(rec.reasons("b"));
    assert!(
        slot.clone().any(|r| r == "hv01: 1 of 1 live migrations"),
        "{:?}",
        slot.collect::<Vec<_>>()
    );
    assert!(
        rec.reasons("c").iter().any(|r| r == "backup"),
        "{:?}",
        rec.reasons("c")
    );
    assert!(
        rec.reasons("d").iter().any(|r| r.starts_with("retry in ")),
        "{:?}",
        rec.reasons("d")
    );
    // Each wait is told once when it begins, not at every re-plan.
    let told: Vec<String> = rec
        .events
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Waiting { vm, why } if vm == "c" => Some(why.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(told, vec!["backup".to_string()], "{told:?}");
}

#[test]
fn a_truncated_or_short_journal_is_repaired_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, desired) = load(
        dir.path(),
        &format!("{HOSTS}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 1 }}\n"),
        &format!("{DECL}  vms:\n    - {{ name: a, host: hv02 }}\n"),
    );
    let fleet_path = dir.path().join("fleet.yaml");
    let journal = dir.path().join(".berth/events.jsonl");
    runtime().block_on(async {
        let sim = Arc::new(Sim::open(&fleet_path).expect("open"));
        let report = execute::converge(
            &desired,
            sim.clone(),
            &Options::default(),
            &execute::Quiet,
            Control::new(),
        )
        .await
        .expect("converge");
        assert!(report.converged);
    });
    let whole = std::fs::read_to_string(&journal).expect("journal");
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(lines.len(), 2, "{whole}");
    assert!(lines[1].contains("migration_completed"));

    // A kill in the middle of writing the last line: cut, then restored
    // from the state, which accounts for it.
    let half = &whole[..whole.len() - 10];
    std::fs::write(&journal, half).expect("write");
    runtime().block_on(async {
        drop(Sim::open(&fleet_path).expect("reopen"));
    });
    assert_eq!(std::fs::read_to_string(&journal).expect("journal"), whole);

    // A line the state does not know (written after it): dropped.
    std::fs::write(
        &journal,
        format!("{whole}{{\"t\":1.0,\"event\":\"migration_started\"}}\n"),
    )
    .expect("write");
    runtime().block_on(async {
        drop(Sim::open(&fleet_path).expect("reopen"));
    });
    assert_eq!(std::fs::read_to_string(&journal).expect("journal"), whole);

    // A garbage half line with nothing to restore: cut.
    std::fs::write(&journal, format!("{whole}{{\"t\":")).expect("write");
    runtime().block_on(async {
        drop(Sim::open(&fleet_path).expect("reopen"));
    });
    let repaired = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(repaired, whole);
    for line in repaired.lines() {
        let e: berth::provider::sim::Event = serde_json::from_str(line).expect("a whole line");
        assert!(matches!(
            e.kind,
            EventKind::MigrationStarted { .. } | EventKind::MigrationCompleted { .. }
        ));
    }
}

#[test]
fn the_plans_estimate_waits_for_a_backup_it_can_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fleet, desired) = load(
        dir.path(),
        &format!(
            "{HOSTS}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 1, backups: [{{ at: 0s, for: 10m }}] }}\n"
        ),
        &format!("{DECL}  vms:\n    - {{ name: a, host: hv02 }}\n"),
    );
    let plan = runtime().block_on(async {
        let sim = Sim::in_memory(&fleet);
        let observed = berth::provider::Provider::observe(&sim)
            .await
            .expect("observe");
        assert_eq!(observed.backups_end_in.get("a"), Some(&600.0));
        berth::plan::plan(&desired, &observed)
    });
    // 10 minutes of backup, then 5 + 1024 / 100 s of migration.
    assert!(
        (plan.estimated_seconds - 615.2).abs() < 0.2,
        "{}",
        plan.estimated_seconds
    );
}
