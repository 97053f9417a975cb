//! Time and GitOps: move windows, priorities, the simulator's start time
//! and the git revision in force.
//!
//! Executor tests run on the simulator with tokio's paused clock, so a wait
//! of hours for a window takes no wall-clock time and the journal's `t`
//! says when (in simulated seconds since `startTime`) each thing happened.

mod common;
#[path = "common/git.rs"]
mod git;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use berth::execute::{self, Control, Event, Observer, Options, Report};
use berth::provider::Provider;
use berth::provider::sim::{EventKind, Sim};
use berth::reconcile::{Action, Condition, Metrics, Outcome, Reconciler, Settings, Trigger};
use berth::spec::{self, Desired, FleetSpec};
use common::{Docs, expect_at};

/// Monday 2026-01-05, 13:00 in Amsterdam: nine hours before the window.
const NOON: &str = "2026-01-05T12:00:00Z";
/// Weeknights 22:00-06:00 in Amsterdam.
const WEEKNIGHTS: &str = "      - { days: [mon, tue, wed, thu, fri], start: \"22:00\", end: \"06:00\", timeZone: Europe/Amsterdam }\n";
/// Seconds from [`NOON`] to the window's opening (21:00 UTC).
const NINE_HOURS: f64 = 9.0 * 3600.0;

fn fleet_yaml(start: &str, vms: &str) -> String {
    format!(
        "apiVersion: berth/v1\nkind: Fleet\nspec:\n  seed: 1\n  startTime: \"{start}\"\n  hosts:\n    - {{ name: hv01, memoryGiB: 64, maxMigrations: 4, switches: [Prod] }}\n    - {{ name: hv02, memoryGiB: 64, maxMigrations: 4, switches: [Prod] }}\n  vms:\n{vms}"
    )
}

fn placement_yaml(policy: &str, vms: &str) -> String {
    format!(
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  policy:\n{policy}  hosts: [{{ name: hv01 }}, {{ name: hv02 }}]\n  vms:\n{vms}"
    )
}

fn load(fleet: &str, placement: &str) -> (FleetSpec, Desired) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("fleet.yaml");
    let p = dir.path().join("placement.yaml");
    std::fs::write(&f, fleet).expect("write");
    std::fs::write(&p, placement).expect("write");
    let fleet = spec::load_fleet(&f).unwrap_or_else(|e| panic!("fleet: {e}"));
    let desired = spec::load(&[p]).unwrap_or_else(|e| panic!("placement: {e}"));
    (fleet, desired)
}

/// Records every executor event.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Observer for Recorder {
    fn event(&self, e: &Event) {
        self.0.lock().expect("lock").push(e.clone());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn run(
    fleet: &FleetSpec,
    desired: &Desired,
    opts: Options,
) -> (Report, Vec<berth::provider::sim::Event>, Vec<Event>) {
    runtime().block_on(async {
        let sim = Arc::new(Sim::in_memory(fleet));
        let rec = Recorder::default();
        let report = execute::converge(desired, sim.clone(), &opts, &rec, Control::new())
            .await
            .expect("converge runs");
        let events = rec.0.lock().expect("lock").clone();
        (report, sim.journal(), events)
    })
}

fn started(journal: &[berth::provider::sim::Event]) -> Vec<(String, f64)> {
    journal
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MigrationStarted { vm, .. } => Some((vm.clone(), e.t)),
            _ => None,
        })
        .collect()
}

/// web-01 must move to hv02; db-01 stays but lacks its declared ACL.
fn move_and_fix(start: &str, policy: &str) -> (FleetSpec, Desired) {
    load(
        &fleet_yaml(
            start,
            "    - { name: web-01, host: hv01, memoryGiB: 1 }\n    - { name: db-01, host: hv01, memoryGiB: 1, networkAdapters: [{ name: nic, switch: Prod }] }\n",
        ),
        &placement_yaml(
            policy,
            "    - { name: web-01, host: hv02 }\n    - { name: db-01, host: hv01, networkAdapters: [{ name: nic, switch: Prod, acls: [{ action: deny, direction: inbound, weight: 1 }] }] }\n",
        ),
    )
}

fn windows(list: &str) -> String {
    format!("    moveWindows:\n{list}")
}

#[test]
fn outside_the_window_fixes_go_ahead_and_moves_wait_for_it() {
    let (fleet, desired) = move_and_fix(NOON, &windows(WEEKNIGHTS));
    let opts = Options {
        wait_for_window: true,
        ..Options::default()
    };
    let (report, journal, events) = run(&fleet, &desired, opts);
    assert!(report.converged, "{report:?}");
    let acl = journal
        .iter()
        .find(|e| matches!(e.kind, EventKind::AclAdded { .. }))
        .expect("the ACL fix");
    assert!(acl.t < 1.0, "the fix waited for the window: {}", acl.t);
    let moves = started(&journal);
    assert_eq!(moves.len(), 1);
    assert!(
        (NINE_HOURS..NINE_HOURS + 1.0).contains(&moves[0].1),
        "the move started at {} s, not when the window opened",
        moves[0].1
    );
    assert!(report.elapsed_seconds >= NINE_HOURS);
    // The wait is reported with the reason and a countdown to the opening.
    let waits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::WindowWait {
                why,
                remaining,
                vms,
            } => Some((why.clone(), *remaining, vms.clone())),
            _ => None,
        })
        .collect();
    let (why, remaining, vms) = &waits[0];
    assert_eq!(
        why,
        "outside the move window; opens Mon 22:00 Europe/Amsterdam"
    );
    assert_eq!(vms, &vec!["web-01".to_string()]);
    let first = remaining.expect("a countdown").as_secs_f64();
    assert!((NINE_HOURS - 2.0..=NINE_HOURS).contains(&first), "{first}");
    let last = waits.last().and_then(|w| w.1).expect("a countdown");
    assert!(last <= Duration::from_secs(60), "{last:?}");
    assert!(
        waits.len() > 500,
        "a countdown once a minute: {}",
        waits.len()
    );
}

#[test]
fn ignore_windows_moves_at_once() {
    let (fleet, desired) = move_and_fix(NOON, &windows(WEEKNIGHTS));
    let opts = Options {
        wait_for_window: true,
        ignore_windows: true,
        ..Options::default()
    };
    let (report, journal, events) = run(&fleet, &desired, opts);
    assert!(report.converged);
    assert!(started(&journal)[0].1 < 1.0);
    assert!(report.elapsed_seconds < 60.0, "{}", report.elapsed_seconds);
    assert!(!events.iter().any(|e| matches!(e, Event::WindowWait { .. })));
}

#[test]
fn without_waiting_only_the_fixes_run() {
    let (fleet, desired) = move_and_fix(NOON, &windows(WEEKNIGHTS));
    let (report, journal, _) = run(&fleet, &desired, Options::default());
    assert!(!report.converged);
    assert_eq!(report.blocked.len(), 1, "{:?}", report.blocked);
    assert_eq!(report.blocked[0].vm, "web-01");
    assert_eq!(
        report.blocked[0].reason,
        "outside the move window; opens Mon 22:00 Europe/Amsterdam"
    );
    assert!(started(&journal).is_empty(), "{journal:?}");
    assert!(
        journal
            .iter()
            .any(|e| matches!(e.kind, EventKind::AclAdded { .. }))
    );
}

#[test]
fn inside_the_window_moves_start_at_once() {
    // Monday 23:30 in Amsterdam.
    let (fleet, desired) = move_and_fix("2026-01-05T22:30:00Z", &windows(WEEKNIGHTS));
    let opts = Options {
        wait_for_window: true,
        ..Options::default()
    };
    let (report, journal, _) = run(&fleet, &desired, opts);
    assert!(report.converged);
    assert!(started(&journal)[0].1 < 1.0);
}

#[test]
fn a_running_move_finishes_after_the_window_closes_and_the_next_waits() {
    // Every day 01:00-02:00 UTC; the clock starts 3 s before the close.
    // One move at a time; each lasts about 6 s.
    let (fleet, desired) = load(
        &fleet_yaml(
            "2026-01-05T01:59:57Z",
            "    - { name: a-01, host: hv01, memoryGiB: 1 }\n    - { name: b-01, host: hv01, memoryGiB: 1 }\n",
        ),
        &placement_yaml(
            "    maxParallelMigrations: 1\n    moveWindows:\n      - { days: [mon, tue, wed, thu, fri, sat, sun], start: \"01:00\", end: \"02:00\", timeZone: UTC }\n",
            "    - { name: a-01, host: hv02 }\n    - { name: b-01, host: hv02 }\n",
        ),
    );
    let opts = Options {
        wait_for_window: true,
        ..Options::default()
    };
    let (report, journal, _) = run(&fleet, &desired, opts);
    assert!(report.converged, "{report:?}");
    let moves = started(&journal);
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(moves[0].1 < 1.0);
    let done = journal
        .iter()
        .find(|e| matches!(&e.kind, EventKind::MigrationCompleted { vm, .. } if *vm == moves[0].0))
        .expect("the first move completed");
    assert!(done.t > 3.0, "it ran past the close: {}", done.t);
    assert!(
        !journal
            .iter()
            .any(|e| matches!(e.kind, EventKind::MigrationFailed { .. }))
    );
    // Tuesday 01:00 UTC is 23 h and 3 s after the start.
    let next = 23.0 * 3600.0 + 3.0;
    assert!(
        (next..next + 1.0).contains(&moves[1].1),
        "the second move started at {}",
        moves[1].1
    );
}

#[test]
fn higher_priority_moves_first() {
    let vms = "    - { name: a-01, host: hv01, memoryGiB: 1 }\n    - { name: b-01, host: hv01, memoryGiB: 1 }\n    - { name: c-01, host: hv01, memoryGiB: 1 }\n    - { name: d-01, host: hv01, memoryGiB: 1 }\n";
    let want = |prio: [i64; 4]| {
        let names = ["a-01", "b-01", "c-01", "d-01"];
        names
            .iter()
            .zip(prio)
            .map(|(n, p)| format!("    - {{ name: {n}, host: hv02, priority: {p} }}\n"))
            .collect::<String>()
    };
    let order = |prio: [i64; 4]| {
        let (fleet, desired) = load(
            &fleet_yaml(NOON, vms),
            &placement_yaml("    maxParallelMigrations: 1\n", &want(prio)),
        );
        let (report, journal, _) = run(&fleet, &desired, Options::default());
        assert!(report.converged);
        started(&journal)
            .into_iter()
            .map(|(vm, _)| vm)
            .collect::<Vec<_>>()
    };
    // Ties keep today's order (by name here); priorities override it.
    assert_eq!(order([0, 0, 0, 0]), ["a-01", "b-01", "c-01", "d-01"]);
    assert_eq!(order([0, 50, 100, -5]), ["c-01", "b-01", "a-01", "d-01"]);
    assert_eq!(order([1, 1, 0, 2]), ["d-01", "a-01", "b-01", "c-01"]);
}

#[test]
fn a_maintenance_drain_serves_the_higher_priority_first() {
    // hv02 is drained; hv01 has room for one of the two 40 GiB VMs.
    let fleet = "apiVersion: berth/v1\nkind: Fleet\nspec:\n  hosts:\n    - { name: hv01, memoryGiB: 64, switches: [Prod] }\n    - { name: hv02, memoryGiB: 128, switches: [Prod] }\n  vms:\n    - { name: a-low, host: hv02, memoryGiB: 40 }\n    - { name: b-high, host: hv02, memoryGiB: 40 }\n";
    let placement = |p: i64| {
        format!(
            "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts: [{{ name: hv01 }}, {{ name: hv02, maintenance: true }}]\n  vms:\n    - {{ name: a-low, host: hv02, fallback: [hv01] }}\n    - {{ name: b-high, host: hv02, fallback: [hv01], priority: {p} }}\n"
        )
    };
    let plan = |p: i64| {
        let (fleet, desired) = load(fleet, &placement(p));
        runtime().block_on(async {
            let sim = Sim::in_memory(&fleet);
            let observed = sim.observe().await.expect("observe");
            berth::plan::plan(&desired, &observed)
        })
    };
    let moved = |p: &berth::plan::Plan| -> Vec<String> {
        p.actions
            .iter()
            .filter(|a| a.kind.is_move())
            .map(|a| a.kind.vm().to_string())
            .collect()
    };
    let blocked =
        |p: &berth::plan::Plan| -> Vec<String> { p.blocked.iter().map(|b| b.vm.clone()).collect() };
    let even = plan(0);
    assert_eq!(moved(&even), ["a-low"]);
    assert_eq!(blocked(&even), ["b-high"]);
    let ranked = plan(10);
    assert_eq!(moved(&ranked), ["b-high"]);
    assert_eq!(blocked(&ranked), ["a-low"]);
}

#[test]
fn bad_windows_priorities_and_start_times_are_reported_where_they_are() {
    let docs = Docs::new();
    docs.write(
        "placement.yaml",
        r#"
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy:
            moveWindows:
              - { days: [mon, funday, mon], start: "25:00", end: "6pm", timeZone: Europe/Amsterdm }
              - { days: [], start: "22:00", end: "24:00", timeZone: Mars/Olympus }
          hosts: [{ name: hv01 }]
          vms:
            - { name: web-01, host: hv01, priority: 5000000 }
        "#,
    );
    docs.write(
        "fleet.yaml",
        r#"
        apiVersion: berth/v1
        kind: Fleet
        spec:
          startTime: "next monday"
          hosts: [{ name: hv01, memoryGiB: 8 }]
        "#,
    );
    let e = docs.err();
    expect_at(&e, "placement.yaml", 6, 23, "unknown day `funday`");
    expect_at(&e, "placement.yaml", 6, 31, "`mon` is listed twice");
    expect_at(&e, "placement.yaml", 6, 44, "`25:00` is not a time of day");
    expect_at(&e, "placement.yaml", 6, 58, "`6pm` is not a time of day");
    let tz = expect_at(
        &e,
        "placement.yaml",
        6,
        75,
        "unknown time zone `Europe/Amsterdm`",
    );
    assert_eq!(tz.help.as_deref(), Some("did you mean `Europe/Amsterdam`?"));
    expect_at(&e, "placement.yaml", 7, 9, "at least one day");
    expect_at(
        &e,
        "placement.yaml",
        7,
        61,
        "unknown time zone `Mars/Olympus`",
    );
    expect_at(&e, "placement.yaml", 10, 45, "`priority` must be between");
    expect_at(
        &e,
        "fleet.yaml",
        4,
        14,
        "`startTime` is not an RFC 3339 instant",
    );

    let docs = Docs::new();
    docs.write(
        "placement.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  policy:\n    moveWindows: []\n",
    );
    let e = docs.err();
    expect_at(&e, "placement.yaml", 5, 18, "`moveWindows` is empty");
}

#[test]
fn valid_windows_and_start_time_load() {
    let (fleet, desired) = move_and_fix("2026-03-01T08:00:00+01:00", &windows(WEEKNIGHTS));
    assert_eq!(fleet.start_time.to_string(), "2026-03-01T07:00:00Z");
    assert_eq!(desired.policy.move_windows.len(), 1);
    assert_eq!(
        desired.policy.move_windows[0].to_string(),
        "mon,tue,wed,thu,fri 22:00-06:00 Europe/Amsterdam"
    );
    let (fleet, _) = load(
        "apiVersion: berth/v1\nkind: Fleet\nspec:\n  hosts: [{ name: hv01, memoryGiB: 8 }]\n",
        "apiVersion: berth/v1\nkind: Placement\nspec: {}\n",
    );
    assert_eq!(fleet.start_time.to_string(), "2026-01-05T00:00:00Z");
    // The simulator's clock is a real instant that follows simulated time.
    runtime().block_on(async {
        let sim = Sim::in_memory(&fleet);
        assert_eq!(sim.now().to_string(), "2026-01-05T00:00:00Z");
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(sim.now().to_string(), "2026-01-05T00:01:30Z");
    });
}

// ------------------------------------------------------------- the CLI

/// A directory with a Controller, a Fleet starting at `start` and the
/// move-and-fix Placement with weeknight windows.
fn cli_dir(start: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let (f, p) = (
        fleet_yaml(
            start,
            "    - { name: web-01, host: hv01, memoryGiB: 1 }\n    - { name: db-01, host: hv01, memoryGiB: 1, networkAdapters: [{ name: nic, switch: Prod }] }\n",
        ),
        placement_yaml(
            &windows(WEEKNIGHTS),
            "    - { name: web-01, host: hv02 }\n    - { name: db-01, host: hv01, networkAdapters: [{ name: nic, switch: Prod, acls: [{ action: deny, direction: inbound, weight: 1 }] }] }\n",
        ),
    );
    std::fs::create_dir_all(dir.path().join("world")).expect("mkdir");
    std::fs::write(dir.path().join("world/fleet.yaml"), f).expect("write");
    std::fs::write(dir.path().join("placement.yaml"), p).expect("write");
    std::fs::write(
        dir.path().join("controller.yaml"),
        "apiVersion: berth/v1\nkind: Controller\nspec:\n  provider: { sim: { fleet: world/fleet.yaml } }\n",
    )
    .expect("write");
    dir
}

fn berth(dir: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::cargo_bin("berth")
        .expect("binary")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn plan_shows_the_next_window() {
    let dir = cli_dir(NOON);
    let (text, _, code) = berth(dir.path(), &["plan", "."]);
    assert_eq!(code, 0);
    assert!(
        text.contains(
            "Move window: closed; opens Mon 22:00 Europe/Amsterdam (in 9h00m). Moves wait for it; fixes go ahead now."
        ),
        "{text}"
    );
    let (json, _, _) = berth(dir.path(), &["plan", ".", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        v["moveWindow"],
        serde_json::json!({"open": false, "opensAt": "2026-01-05T22:00:00+01:00",
                           "opensInSeconds": 32400.0, "text": "opens Mon 22:00 Europe/Amsterdam"})
    );
    let inside = cli_dir("2026-01-05T22:30:00Z");
    let (json, _, _) = berth(inside.path(), &["plan", ".", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["moveWindow"]["open"], true);
    assert_eq!(v["moveWindow"]["closesAt"], "2026-01-06T06:00:00+01:00");
    assert_eq!(
        v["moveWindow"]["text"],
        "open until Tue 06:00 Europe/Amsterdam"
    );
}

#[test]
fn apply_waits_for_the_window_unless_told_to_ignore_it() {
    let dir = cli_dir(NOON);
    let (json, err, code) = berth(
        dir.path(),
        &["apply", ".", "--auto-approve", "--output", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["converged"], true);
    assert!(
        v["elapsedSeconds"].as_f64().unwrap_or(0.0) >= NINE_HOURS,
        "{v}"
    );
    assert!(
        err.contains("wait: outside the move window; opens Mon 22:00 Europe/Amsterdam (in 9h00m); 1 move waits, fixes go ahead"),
        "{err}"
    );

    let dir = cli_dir(NOON);
    let (json, err, code) = berth(
        dir.path(),
        &[
            "apply",
            ".",
            "--auto-approve",
            "--output",
            "json",
            "--ignore-windows",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["converged"], true);
    assert!(
        v["elapsedSeconds"].as_f64().unwrap_or(f64::MAX) < 60.0,
        "{v}"
    );
    assert!(!err.contains("outside the move window"), "{err}");
}

// ------------------------------------------------------------- watch

fn reconciler(dir: &Path, fleet: &FleetSpec) -> (Reconciler, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let sim: Arc<dyn Provider> = Arc::new(Sim::in_memory(fleet));
    (
        Reconciler::new(Settings::new(dir), sim, metrics.clone()),
        metrics,
    )
}

#[tokio::test(start_paused = true)]
async fn watch_reports_waiting_outside_the_window_and_moves_when_it_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fleet, _) = move_and_fix(NOON, &windows(WEEKNIGHTS));
    std::fs::write(
        dir.path().join("placement.yaml"),
        placement_yaml(
            &windows(WEEKNIGHTS),
            "    - { name: web-01, host: hv02 }\n    - { name: db-01, host: hv01 }\n",
        ),
    )
    .expect("write");
    let (mut r, _) = reconciler(dir.path(), &fleet);
    let first = r.pass(Trigger::Startup).await;
    assert_eq!(first.outcome, Outcome::Deferred { changes: 1 });
    // The next pass is due at the opening (the resync interval is longer
    // than nine hours only when set so; the default is 60 s).
    assert_eq!(first.next, Action::Requeue(Duration::from_secs(60)));
    let web = &r.status().vms["web-01"];
    assert_eq!(web.condition, Condition::Waiting);
    assert_eq!(
        web.reason.as_deref(),
        Some("outside the move window; opens Mon 22:00 Europe/Amsterdam")
    );
    assert_eq!(r.status().vms["db-01"].condition, Condition::InSync);

    tokio::time::sleep(Duration::from_secs(9 * 3600 - 30)).await;
    let before = r.pass(Trigger::Resync).await;
    assert_eq!(before.outcome, Outcome::Deferred { changes: 1 });
    assert_eq!(before.next, Action::Requeue(Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_secs(30)).await;
    let open = r.pass(Trigger::Resync).await;
    assert_eq!(
        open.outcome,
        Outcome::Started {
            actions: 1,
            moves: 1
        }
    );
    assert_eq!(r.status().vms["web-01"].condition, Condition::Pending);
}

// ------------------------------------------------------------- git

/// `git` in `dir` (`common/git.rs`); `None` when there is no git binary.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    git::git(dir, args).ok()
}

#[tokio::test(start_paused = true)]
async fn the_revision_in_force_and_the_latest_seen() {
    let repo = tempfile::tempdir().expect("tempdir");
    if git(repo.path(), &["init", "-q"]).is_none() {
        eprintln!("skipped: no git binary to build the fixture repository");
        return;
    }
    let dir = repo.path().join("fleet");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (fleet, _) = move_and_fix(NOON, "");
    let valid = placement_yaml("", "    - { name: web-01, host: hv01 }\n");
    std::fs::write(dir.join("placement.yaml"), &valid).expect("write");
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "valid"]);
    let first = git(repo.path(), &["rev-parse", "HEAD"]).expect("head");

    let (mut r, metrics) = reconciler(&dir, &fleet);
    r.pass(Trigger::Startup).await;
    let s = r.status();
    assert_eq!(s.revision.as_deref(), Some(first.as_str()));
    assert_eq!(s.attempted_revision.as_deref(), Some(first.as_str()));
    let info = format!(
        "berth_spec_revision_info{{revision=\"{first}\",attempted_revision=\"{first}\"}} 1"
    );
    assert!(metrics.render().lines().any(|l| l == info));

    // An invalid commit: the last valid one stays in force.
    std::fs::write(
        dir.join("placement.yaml"),
        valid.replace("host: hv01", "host: hv09"),
    )
    .expect("write");
    git(repo.path(), &["commit", "-q", "-am", "invalid"]);
    let second = git(repo.path(), &["rev-parse", "HEAD"]).expect("head");
    r.pass(Trigger::Files).await;
    let s = r.status();
    assert!(s.spec_error.is_some());
    assert_eq!(s.revision.as_deref(), Some(first.as_str()));
    assert_eq!(s.attempted_revision.as_deref(), Some(second.as_str()));
    let info = format!(
        "berth_spec_revision_info{{revision=\"{first}\",attempted_revision=\"{second}\"}} 1"
    );
    assert!(
        metrics.render().lines().any(|l| l == info),
        "{}",
        metrics.render()
    );

    // Fixed in a third commit: it is in force.
    std::fs::write(dir.join("placement.yaml"), &valid).expect("write");
    git(repo.path(), &["commit", "-q", "-am", "fixed"]);
    let third = git(repo.path(), &["rev-parse", "HEAD"]).expect("head");
    r.pass(Trigger::Files).await;
    let s = r.status();
    assert_eq!(s.spec_error, None);
    assert_eq!(s.revision.as_deref(), Some(third.as_str()));
    assert_eq!(s.attempted_revision.as_deref(), Some(third.as_str()));
}

#[tokio::test(start_paused = true)]
async fn a_directory_outside_git_has_no_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fleet, _) = move_and_fix(NOON, "");
    std::fs::write(
        dir.path().join("placement.yaml"),
        placement_yaml("", "    - { name: web-01, host: hv01 }\n"),
    )
    .expect("write");
    let (mut r, metrics) = reconciler(dir.path(), &fleet);
    r.pass(Trigger::Startup).await;
    let s = r.status();
    assert_eq!(s.spec_error, None);
    assert_eq!((s.revision, s.attempted_revision), (None, None));
    assert!(!metrics.render().contains("berth_spec_revision_info"));
    let json = serde_json::to_value(r.status()).expect("json");
    assert_eq!(json["revision"], serde_json::Value::Null);
    assert_eq!(json["attemptedRevision"], serde_json::Value::Null);
}
