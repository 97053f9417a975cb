//! `berth watch`: the reconcile loop with a real directory and real file
//! events.
//!
//! The loop runs on a paused tokio clock, so its waits (the resync timer,
//! simulated migrations, backoffs) take no wall-clock time. File events come
//! from the OS on plain threads, though, so two kinds of waits are used:
//!
//! - [`Watch::after_files`] waits for what a file change causes while tokio's
//!   clock stands still (a blocking task inhibits auto-advance), so nothing
//!   timer-driven, such as a resync, can get there first;
//! - [`Watch::until`] lets the clock run (simulated moves finish at once).
//!
//! Both are bounded in real time and wait on a condition (a notice from the
//! loop), never for a fixed time. The last test runs the binary and sends
//! it SIGTERM in the middle of a move.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use berth::execute::{Event as ExecEvent, Options};
use berth::provider::sim::{EventKind, Sim};
use berth::provider::{
    JobId, MoveKind, MoveRequest, Observed, ObservedVm, Provider, ProviderError,
};
use berth::reconcile::{
    Action, Condition, Metrics, Notice, Outcome, PassReport, Reconciler, Settings, Signal, Status,
    Summary, Trigger, watcher,
};
use berth::spec::{self, Acl, Direction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Longest real time any one wait may take.
const REAL_TIMEOUT: Duration = Duration::from_secs(20);

const FLEET: &str = "\
apiVersion: berth/v1
kind: Fleet
spec:
  seed: 1
  faults:
    dropAclsOnMigration: true
  hosts:
    - { name: hv01, memoryGiB: 64, maxMigrations: 4, switches: [Prod], migrationRateMiBps: 100000 }
    - { name: hv02, memoryGiB: 64, maxMigrations: 4, switches: [Prod], migrationRateMiBps: 100000 }
    - { name: hv03, memoryGiB: 64, maxMigrations: 4, switches: [Prod], migrationRateMiBps: 100000 }
  vms:
    - name: web-01
      host: hv01
      memoryGiB: 1
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          connected: true
          acls: [{ action: deny, direction: inbound, weight: 1 }]
    - { name: web-02, host: hv01, memoryGiB: 1 }
    - { name: db-01, host: hv02, memoryGiB: 1 }
    - { name: test-07, host: hv03, memoryGiB: 1 }
";

/// A Placement: web-01 and web-02 on the given hosts, db-01 on hv02;
/// test-07 is unmanaged. `extra_acls` are added to web-01's adapter.
fn placement(web01: &str, web02: &str, policy: &str, extra_acls: &str) -> String {
    format!(
        "\
apiVersion: berth/v1
kind: Placement
spec:
  policy:
    maxParallelMigrations: 4
{policy}
  hosts: [{{ name: hv01 }}, {{ name: hv02 }}, {{ name: hv03 }}]
  vms:
    - name: web-01
      host: {web01}
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          acls:
            - {{ action: deny, direction: inbound, weight: 1 }}
{extra_acls}
    - {{ name: web-02, host: {web02} }}
    - {{ name: db-01, host: hv02 }}
"
    )
}

fn home() -> String {
    placement("hv01", "hv01", "", "")
}

/// Wraps the simulator; `down` makes the fleet unreachable.
struct Flaky {
    sim: Arc<Sim>,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), ProviderError> {
        if self.down.load(Ordering::SeqCst) {
            Err(ProviderError::unreachable("connection refused (test)"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Provider for Flaky {
    fn describe(&self) -> String {
        "flaky sim".into()
    }
    async fn observe(&self) -> Result<Observed, ProviderError> {
        self.check()?;
        self.sim.observe().await
    }
    async fn observe_vm(&self, vm: &str) -> Result<ObservedVm, ProviderError> {
        self.check()?;
        self.sim.observe_vm(vm).await
    }
    async fn start_move(&self, r: &MoveRequest) -> Result<JobId, ProviderError> {
        self.check()?;
        self.sim.start_move(r).await
    }
    async fn wait_job(&self, job: &JobId) -> Result<(), ProviderError> {
        self.sim.wait_job(job).await
    }
    async fn add_acl(&self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError> {
        self.check()?;
        self.sim.add_acl(vm, adapter, acl).await
    }
    async fn remove_acl(
        &self,
        vm: &str,
        adapter: &str,
        direction: Direction,
        weight: u32,
    ) -> Result<(), ProviderError> {
        self.check()?;
        self.sim.remove_acl(vm, adapter, direction, weight).await
    }
    async fn connect_adapter(
        &self,
        vm: &str,
        adapter: &str,
        switch: &str,
        vm_network: Option<&str>,
    ) -> Result<(), ProviderError> {
        self.check()?;
        self.sim
            .connect_adapter(vm, adapter, switch, vm_network)
            .await
    }
    async fn set_vlan(&self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError> {
        self.check()?;
        self.sim.set_vlan(vm, adapter, vlan_id).await
    }
}

/// A running watch loop over a scratch directory.
struct Watch {
    _root: tempfile::TempDir,
    spec_dir: PathBuf,
    status_path: PathBuf,
    provider: Arc<Flaky>,
    metrics: Arc<Metrics>,
    notices: Option<mpsc::UnboundedReceiver<Notice>>,
    /// Every notice received so far, in order.
    seen: Vec<Notice>,
    signals: mpsc::UnboundedSender<Signal>,
    task: Option<JoinHandle<Summary>>,
    _watcher: watcher::DirWatcher,
}

struct Setup {
    spec: String,
    interval: Duration,
    down: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            spec: home(),
            interval: Duration::from_secs(3600),
            down: false,
        }
    }
}

impl Watch {
    /// Starts a loop (and a file watcher) on a fresh directory and waits
    /// for its first pass.
    async fn start(setup: Setup) -> Watch {
        let root = tempfile::tempdir().expect("tempdir");
        let fleet_path = root.path().join("fleet.yaml");
        std::fs::write(&fleet_path, FLEET).expect("write fleet");
        let fleet = spec::load_fleet(&fleet_path).unwrap_or_else(|e| panic!("fleet: {e}"));
        let spec_dir = root.path().join("spec");
        std::fs::create_dir_all(&spec_dir).expect("mkdir");
        std::fs::write(spec_dir.join("placement.yaml"), &setup.spec).expect("write spec");
        let status_path = root.path().join("status.json");
        let provider = Arc::new(Flaky {
            sim: Arc::new(Sim::in_memory(&fleet)),
            down: AtomicBool::new(setup.down),
        });
        let metrics = Arc::new(Metrics::default());
        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        let w = watcher::watch(&spec_dir, Duration::from_millis(50), signal_tx.clone())
            .expect("watch the directory");
        let settings = Settings {
            interval: Some(setup.interval),
            status_file: Some(status_path.clone()),
            exec: Options {
                retry_min_delay: Duration::from_secs(1),
                retry_max_delay: Duration::from_secs(4),
                ..Options::default()
            },
            shutdown_timeout: Duration::from_secs(600),
            ..Settings::new(&spec_dir)
        };
        let reconciler = Reconciler::new(settings, provider.clone(), metrics.clone()).with_notices(
            Arc::new(move |n: &Notice| {
                let _ = notice_tx.send(n.clone());
            }),
        );
        let task = tokio::spawn(reconciler.run(signal_rx));
        let mut w = Watch {
            _root: root,
            spec_dir,
            status_path,
            provider,
            metrics,
            notices: Some(notice_rx),
            seen: Vec::new(),
            signals: signal_tx,
            task: Some(task),
            _watcher: w,
        };
        w.until("the first pass", |n| pass(n, Trigger::Startup).is_some())
            .await;
        w
    }

    fn first_pass(&self) -> PassReport {
        self.seen
            .iter()
            .find_map(|n| match n {
                Notice::Pass(p) => Some((**p).clone()),
                _ => None,
            })
            .expect("a first pass")
    }

    fn write_spec(&self, text: &str) {
        std::fs::write(self.spec_dir.join("placement.yaml"), text).expect("write spec");
    }

    /// Waits, with tokio's clock standing still, for a notice caused by a
    /// file change.
    async fn after_files(
        &mut self,
        what: &str,
        pred: impl Fn(&Notice) -> bool + Send + 'static,
    ) -> Notice {
        let mut rx = self.notices.take().expect("notices");
        let (rx, found, seen) = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + REAL_TIMEOUT;
            let mut seen = Vec::new();
            loop {
                match rx.try_recv() {
                    Ok(n) => {
                        seen.push(n.clone());
                        if pred(&n) {
                            return (rx, Some(n), seen);
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if std::time::Instant::now() > deadline {
                            return (rx, None, seen);
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => return (rx, None, seen),
                }
            }
        })
        .await
        .expect("waiting task");
        self.notices = Some(rx);
        self.seen.extend(seen);
        found.unwrap_or_else(|| panic!("timed out waiting for {what}; saw {:#?}", self.seen))
    }

    /// Waits for a notice while tokio's clock runs.
    async fn until(&mut self, what: &str, pred: impl Fn(&Notice) -> bool) -> Notice {
        let mut deadline = real_deadline(REAL_TIMEOUT);
        let rx = self.notices.as_mut().expect("notices");
        loop {
            tokio::select! {
                n = rx.recv() => {
                    let n = n.unwrap_or_else(|| panic!("the loop ended while waiting for {what}"));
                    self.seen.push(n.clone());
                    if pred(&n) {
                        return n;
                    }
                }
                _ = &mut deadline => panic!("timed out waiting for {what}; saw {:#?}", self.seen),
            }
        }
    }

    fn status(&self) -> Status {
        let text = std::fs::read(&self.status_path).expect("status file");
        serde_json::from_slice(&text).expect("status file is JSON")
    }

    fn journal(&self) -> Vec<EventKind> {
        self.provider
            .sim
            .journal()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    async fn host_of(&self, vm: &str) -> String {
        self.provider.sim.observe_vm(vm).await.expect("vm").host
    }

    async fn stop(&mut self) -> Summary {
        let _ = self.signals.send(Signal::Shutdown);
        let task = self.task.take().expect("task");
        let mut deadline = real_deadline(REAL_TIMEOUT);
        tokio::select! {
            s = task => s.expect("the loop does not panic"),
            _ = &mut deadline => panic!("the loop did not stop"),
        }
    }
}

/// A oneshot that fires after `d` of real time (a plain thread, so tokio's
/// paused clock does not move it).
fn real_deadline(d: Duration) -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    rx
}

fn pass(n: &Notice, trigger: Trigger) -> Option<&PassReport> {
    match n {
        Notice::Pass(p) if p.trigger == trigger => Some(p),
        _ => None,
    }
}

fn move_started(n: &Notice, vm: &str) -> bool {
    matches!(n, Notice::Exec(ExecEvent::MoveStarted { vm: v, .. }) if v == vm)
}

fn started_moves(journal: &[EventKind]) -> Vec<(String, String)> {
    journal
        .iter()
        .filter_map(|e| match e {
            EventKind::MigrationStarted { vm, to, .. } => Some((vm.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

/// Every migration_started is followed by exactly one completed or failed.
fn assert_moves_closed(journal: &[EventKind]) {
    let mut open: Vec<String> = Vec::new();
    for e in journal {
        match e {
            EventKind::MigrationStarted { vm, .. } => {
                assert!(!open.contains(vm), "{vm} started twice");
                open.push(vm.clone());
            }
            EventKind::MigrationCompleted { vm, .. } | EventKind::MigrationFailed { vm, .. } => {
                let i = open
                    .iter()
                    .position(|v| v == vm)
                    .unwrap_or_else(|| panic!("{vm} ended without starting"));
                open.remove(i);
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "migrations left open: {open:?}");
}

#[tokio::test(start_paused = true)]
async fn changing_a_vms_host_moves_it() {
    let mut w = Watch::start(Setup::default()).await;
    let first = w.status();
    assert_eq!(first.format_version, 1);
    assert_eq!(first.spec_error, None);
    assert_eq!(first.vms["web-01"].condition, Condition::InSync);
    assert_eq!(first.vms["test-07"].condition, Condition::Unmanaged);

    w.write_spec(&placement("hv02", "hv01", "", ""));
    w.after_files("the move of web-01", |n| move_started(n, "web-01"))
        .await;
    let acted = w
        .seen
        .iter()
        .filter_map(|n| pass(n, Trigger::Files))
        .next_back()
        .expect("a pass woken by the file change");
    assert!(
        matches!(acted.outcome, Outcome::Started { moves: 1, .. }),
        "{acted:?}"
    );
    assert_eq!(acted.next, Action::AwaitJob);

    let after = w
        .until("the pass after the job", |n| {
            pass(n, Trigger::JobEnded).is_some()
        })
        .await;
    let Notice::Pass(after) = after else {
        unreachable!()
    };
    assert_eq!(after.outcome, Outcome::InSync);
    assert_eq!(after.job.as_ref().map(|j| j.moves), Some(1));
    assert_eq!(w.host_of("web-01").await, "hv02");
    let status = w.status();
    assert_eq!(status.vms["web-01"].condition, Condition::InSync);
    assert_eq!(status.vms["web-01"].host.as_deref(), Some("hv02"));
    assert!(status.updated_at.ends_with('Z') && status.updated_at.len() == 20);
    let journal = w.journal();
    assert_eq!(
        started_moves(&journal),
        vec![("web-01".to_string(), "hv02".to_string())]
    );
    assert_moves_closed(&journal);
    assert!(
        w.metrics
            .render()
            .lines()
            .any(|l| l == "berth_moves_started_total 1")
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn editing_an_acl_applies_it() {
    let mut w = Watch::start(Setup::default()).await;
    w.write_spec(&placement(
        "hv01",
        "hv01",
        "",
        "            - { action: allow, direction: inbound, protocol: tcp, localPort: \"443\", weight: 10 }",
    ));
    w.after_files(
        "the ACL fix",
        |n| matches!(n, Notice::Exec(ExecEvent::AdapterFixed { vm, .. }) if vm == "web-01"),
    )
    .await;
    let Notice::Pass(after) = w
        .until("the pass after the job", |n| {
            pass(n, Trigger::JobEnded).is_some()
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(after.outcome, Outcome::InSync);
    assert_eq!(after.job.as_ref().map(|j| j.acl_changes), Some(1));
    let journal = w.journal();
    assert!(
        journal.iter().any(|e| matches!(
            e,
            EventKind::AclAdded { vm, weight: 10, .. } if vm == "web-01"
        )),
        "{journal:?}"
    );
    assert!(started_moves(&journal).is_empty());
    let weights: Vec<u32> = w
        .provider
        .sim
        .observe_vm("web-01")
        .await
        .expect("vm")
        .adapters[0]
        .acls
        .iter()
        .map(|a| a.weight)
        .collect();
    assert_eq!(weights, vec![1, 10]);
    assert!(
        w.metrics
            .render()
            .lines()
            .any(|l| l == "berth_acl_changes_total 1")
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_invalid_or_half_written_spec_changes_nothing_until_fixed() {
    let mut w = Watch::start(Setup::default()).await;
    let wanted = placement("hv02", "hv01", "", "");

    // Half of the file that would move web-01, cut inside web-02's entry
    // (a cut between two entries could still be valid YAML).
    let half = &wanted[..wanted.find("host: hv01 }").expect("cut point")];
    w.write_spec(half);
    let Notice::Pass(p) = w
        .after_files(
            "a pass with a spec error",
            |n| matches!(n, Notice::Pass(p) if p.spec_error.is_some()),
        )
        .await
    else {
        unreachable!()
    };
    let first_error = p.spec_error.clone().expect("error");
    // Plain invalid YAML.
    w.write_spec(&wanted.replace("    - { name: db-01", "  - { name: db-01: ["));
    let Notice::Pass(p) = w
        .after_files("a pass with the second spec error", move |n| {
            matches!(n, Notice::Pass(p) if p.spec_error.as_ref().is_some_and(|e| *e != first_error))
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        p.outcome,
        Outcome::InSync,
        "the last valid spec is in force"
    );
    let status = w.status();
    let error = status.spec_error.expect("specError in the status file");
    assert!(error.contains("placement.yaml"), "{error}");
    assert_eq!(status.vms["web-01"].condition, Condition::InSync);
    assert_eq!(status.vms["web-01"].host.as_deref(), Some("hv01"));
    assert!(w.journal().is_empty(), "nothing changed: {:?}", w.journal());
    let metrics = w.metrics.render();
    assert!(
        metrics.lines().any(|l| l == "berth_spec_errors_total 2"),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l == "berth_spec_error 1"));

    // Fixed: the next pass acts on it.
    w.write_spec(&wanted);
    w.after_files("the move once the spec is valid", |n| {
        move_started(n, "web-01")
    })
    .await;
    let Notice::Pass(after) = w
        .until("the pass after the job", |n| {
            pass(n, Trigger::JobEnded).is_some()
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(after.spec_error, None);
    assert_eq!(w.status().spec_error, None);
    assert_eq!(w.host_of("web-01").await, "hv02");
    assert!(
        w.metrics
            .render()
            .lines()
            .any(|l| l == "berth_spec_error 0")
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_emptied_or_vanished_directory_keeps_the_last_spec() {
    let mut w = Watch::start(Setup::default()).await;
    std::fs::remove_file(w.spec_dir.join("placement.yaml")).expect("rm");
    let Notice::Pass(p) = w
        .after_files(
            "a pass over the empty directory",
            |n| matches!(n, Notice::Pass(p) if p.spec_error.is_some()),
        )
        .await
    else {
        unreachable!()
    };
    assert_eq!(p.outcome, Outcome::InSync);
    let status = w.status();
    assert!(
        status
            .spec_error
            .as_deref()
            .is_some_and(|e| e.contains("no *.yaml")),
        "{status:?}"
    );
    assert_eq!(
        status.vms["web-01"].condition,
        Condition::InSync,
        "not unmanaged"
    );

    std::fs::remove_dir_all(&w.spec_dir).expect("rm -r");
    w.after_files("a pass over the vanished directory", |n| {
        matches!(n, Notice::Pass(p) if p.spec_error.as_deref().is_some_and(|e| e.contains("does not exist")))
    })
    .await;
    assert_eq!(w.status().vms["web-01"].condition, Condition::InSync);

    // It comes back (as a sync tool would re-create it), with a change.
    std::fs::create_dir_all(&w.spec_dir).expect("mkdir");
    w.write_spec(&placement("hv01", "hv03", "", ""));
    w.after_files("the move from the re-created directory", |n| {
        move_started(n, "web-02")
    })
    .await;
    w.until("the pass after the job", |n| {
        pass(n, Trigger::JobEnded).is_some()
    })
    .await;
    assert_eq!(w.status().spec_error, None);
    assert_eq!(w.host_of("web-02").await, "hv03");
    assert!(w.journal().iter().all(|e| !matches!(
        e,
        EventKind::MigrationStarted { vm, .. } if vm != "web-02"
    )));
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_vm_moved_behind_berths_back_returns_on_the_next_resync() {
    let mut w = Watch::start(Setup {
        interval: Duration::from_secs(60),
        ..Setup::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    // Someone moves web-02 by hand.
    let sim = w.provider.sim.clone();
    let job = sim
        .start_move(&MoveRequest {
            vm: "web-02".into(),
            from: "hv01".into(),
            to: "hv03".into(),
            kind: MoveKind::Live,
            storage_path: None,
        })
        .await
        .expect("manual move");
    sim.wait_job(&job).await.expect("manual move ends");
    assert_eq!(w.host_of("web-02").await, "hv03");

    let Notice::Pass(resync) = w
        .until("the resync pass", |n| pass(n, Trigger::Resync).is_some())
        .await
    else {
        unreachable!()
    };
    assert!(
        matches!(resync.outcome, Outcome::Started { moves: 1, .. }),
        "{resync:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(60));
    w.until("the pass after the job", |n| {
        pass(n, Trigger::JobEnded).is_some()
    })
    .await;
    assert_eq!(w.host_of("web-02").await, "hv01");
    assert_eq!(w.status().vms["web-02"].condition, Condition::InSync);
    assert_eq!(
        started_moves(&w.journal()),
        vec![
            ("web-02".to_string(), "hv03".to_string()),
            ("web-02".to_string(), "hv01".to_string())
        ]
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn suspend_reports_drift_without_acting() {
    let suspended = placement("hv02", "hv01", "    suspend: true", "");
    let mut w = Watch::start(Setup {
        spec: suspended.clone(),
        interval: Duration::from_secs(60),
        ..Setup::default()
    })
    .await;
    let first = w.first_pass();
    assert_eq!(first.outcome, Outcome::Suspended { changes: 1 });
    let status = w.status();
    assert!(status.suspended);
    let web = &status.vms["web-01"];
    assert_eq!(web.condition, Condition::Pending);
    assert_eq!(
        web.reason.as_deref(),
        Some("suspended: would move to hv02 (placement)")
    );
    // Resyncs keep reporting and still change nothing.
    for _ in 0..3 {
        w.until("a resync", |n| pass(n, Trigger::Resync).is_some())
            .await;
    }
    assert!(w.journal().is_empty());
    assert!(w.metrics.render().lines().any(|l| l == "berth_suspended 1"));

    // Lifting the suspension acts.
    w.write_spec(&suspended.replace("suspend: true", "suspend: false"));
    w.after_files("the move after the suspension", |n| {
        move_started(n, "web-01")
    })
    .await;
    w.until("the pass after the job", |n| {
        pass(n, Trigger::JobEnded).is_some()
    })
    .await;
    assert!(!w.status().suspended);
    assert_eq!(w.host_of("web-01").await, "hv02");
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_spec_mid_move_replans_at_once_and_the_running_move_finishes() {
    // One migration at a time: web-01 first, web-02 would follow.
    let mut w = Watch::start(Setup {
        spec: placement("hv02", "hv03", "    maxParallelMigrations: 1", "")
            .replace("    maxParallelMigrations: 4\n", ""),
        ..Setup::default()
    })
    .await;
    let started: Vec<String> = w
        .seen
        .iter()
        .filter_map(|n| match n {
            Notice::Exec(ExecEvent::MoveStarted { vm, .. }) => Some(vm.clone()),
            _ => None,
        })
        .collect();
    let first = if started.is_empty() {
        let Notice::Exec(ExecEvent::MoveStarted { vm, .. }) = w
            .after_files("the first move", |n| {
                matches!(n, Notice::Exec(ExecEvent::MoveStarted { .. }))
            })
            .await
        else {
            unreachable!()
        };
        vm
    } else {
        started[0].clone()
    };
    // While it moves, the spec changes: the other one stays home after all.
    let (other, new_spec) = if first == "web-01" {
        (
            "web-02",
            placement("hv02", "hv01", "    maxParallelMigrations: 1", ""),
        )
    } else {
        (
            "web-01",
            placement("hv01", "hv03", "    maxParallelMigrations: 1", ""),
        )
    };
    w.write_spec(&new_spec.replace("    maxParallelMigrations: 4\n", ""));
    w.after_files("the new spec", |n| {
        matches!(
            n,
            Notice::Spec {
                valid: true,
                changed: true
            }
        )
    })
    .await;
    let Notice::Pass(replanned) = w
        .until("the pass with the new spec", |n| {
            pass(n, Trigger::SpecChanged).is_some()
        })
        .await
    else {
        unreachable!()
    };
    let job = replanned.job.as_ref().expect("the job's report");
    assert_eq!(job.moves, 1, "the running move finished: {job:?}");
    assert!(!job.interrupted, "nothing was stopped or cancelled");
    assert_eq!(replanned.outcome, Outcome::InSync);
    let journal = w.journal();
    let moved: Vec<String> = started_moves(&journal).into_iter().map(|m| m.0).collect();
    assert_eq!(moved, vec![first.clone()], "{other} never started");
    assert_moves_closed(&journal);
    assert_ne!(w.host_of(&first).await, "hv01", "{first} finished its move");
    assert_eq!(w.host_of(other).await, "hv01");
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_provider_backs_off_and_recovers() {
    let mut w = Watch::start(Setup {
        down: true,
        ..Setup::default()
    })
    .await;
    let first = w.first_pass();
    assert_eq!(first.outcome, Outcome::ProviderDown);
    assert_eq!(first.next, Action::Requeue(Duration::from_secs(1)));
    let status = w.status();
    assert!(
        status
            .provider_error
            .as_deref()
            .is_some_and(|e| e.contains("connection refused")),
        "{status:?}"
    );
    let mut delays = vec![first.next];
    for _ in 0..3 {
        let Notice::Pass(p) = w
            .until("a retry", |n| pass(n, Trigger::Retry).is_some())
            .await
        else {
            unreachable!()
        };
        assert_eq!(p.outcome, Outcome::ProviderDown);
        delays.push(p.next);
    }
    assert_eq!(
        delays,
        [1, 2, 4, 8].map(|s| Action::Requeue(Duration::from_secs(s)))
    );
    assert!(
        w.metrics
            .render()
            .lines()
            .any(|l| l == "berth_provider_up 0")
    );
    w.provider.down.store(false, Ordering::SeqCst);
    let Notice::Pass(p) = w
        .until("a retry", |n| pass(n, Trigger::Retry).is_some())
        .await
    else {
        unreachable!()
    };
    assert_eq!(p.outcome, Outcome::InSync);
    assert_eq!(p.provider_error, None);
    assert_eq!(w.status().provider_error, None);
    assert!(
        w.metrics
            .render()
            .lines()
            .any(|l| l == "berth_provider_up 1")
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_file_writes_gives_one_pass() {
    let mut w = Watch::start(Setup::default()).await;
    // A git pull: many files replaced at once (here, 200 comment-only files
    // and the placement rewritten with a comment).
    for i in 0..200 {
        std::fs::write(
            w.spec_dir.join(format!("note-{i:03}.yaml")),
            format!("# note {i}\n"),
        )
        .expect("write");
    }
    // Comment-only YAML files hold no documents; the Placement still does.
    w.write_spec(&format!("# pulled\n{}", home()));
    let before = w.seen.len();
    w.after_files("the pass after the burst", |n| {
        pass(n, Trigger::Files).is_some()
    })
    .await;
    // A marker change afterwards: the next Files pass must be its own.
    w.write_spec(&placement("hv01", "hv02", "", ""));
    w.after_files("the marker's move", |n| move_started(n, "web-02"))
        .await;
    let files_passes = w.seen[before..]
        .iter()
        .filter(|n| pass(n, Trigger::Files).is_some())
        .count();
    assert_eq!(
        files_passes, 2,
        "one pass for the burst, one for the marker"
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_move_lets_it_finish_and_writes_the_final_status() {
    let mut w = Watch::start(Setup::default()).await;
    w.write_spec(&placement("hv03", "hv01", "", ""));
    w.after_files("the move", |n| move_started(n, "web-01"))
        .await;
    let status_path = w.status_path.clone();
    let provider = w.provider.clone();
    let summary = w.stop().await;
    // The task ended: the loop wrote its last status before returning.
    assert!(summary.abandoned.is_empty());
    let journal: Vec<EventKind> = provider.sim.journal().into_iter().map(|e| e.kind).collect();
    assert_moves_closed(&journal);
    assert!(
        journal
            .iter()
            .any(|e| matches!(e, EventKind::MigrationCompleted { vm, .. } if vm == "web-01"))
    );
    let status: Status =
        serde_json::from_slice(&std::fs::read(status_path).expect("status")).expect("json");
    assert_eq!(status.vms["web-01"].condition, Condition::InSync);
    assert_eq!(status.vms["web-01"].host.as_deref(), Some("hv03"));
}

// ------------------------------------------------------------ the binary

#[cfg(unix)]
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

/// Polls `f` every 20 ms of real time until it returns `Some`, or panics.
#[cfg(unix)]
fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn sigterm_mid_move_lets_the_move_finish_writes_the_status_and_exits_0() {
    use std::process::{Command, Stdio};

    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("maintenance");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/maintenance"),
        &dir,
    );
    // The same world with fast links, so a move takes about five seconds.
    let fleet = dir.join("fleet.yaml");
    let text = std::fs::read_to_string(&fleet).expect("fleet");
    let fast = text.replace(
        "cpuVendor: intel,",
        "cpuVendor: intel, migrationRateMiBps: 100000,",
    );
    assert_ne!(fast, text);
    std::fs::write(&fleet, fast).expect("write fleet");
    let status_path = root.path().join("status.json");

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("watch")
        .arg(&dir)
        .arg("--status-file")
        .arg(&status_path)
        .arg("--log-format")
        .arg("json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth watch");

    let read_status =
        || -> Option<Status> { serde_json::from_slice(&std::fs::read(&status_path).ok()?).ok() };
    let moving = poll("a VM shown Moving", Duration::from_secs(30), || {
        let s = read_status()?;
        let moving: Vec<String> = s
            .vms
            .iter()
            .filter(|(_, v)| v.condition == Condition::Moving)
            .map(|(k, _)| k.clone())
            .collect();
        (!moving.is_empty()).then_some((s, moving))
    });
    let (before, moving) = moving;

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(killed.success());
    let code = poll("berth watch to exit", Duration::from_secs(60), || {
        child.try_wait().expect("wait")
    });
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(code.code(), Some(0), "exit code; log:\n{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    for line in stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }

    // Every migration that started also ended: none was abandoned half-way.
    let journal = std::fs::read_to_string(dir.join(".berth/events.jsonl")).expect("events.jsonl");
    let events: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect();
    let mut open: Vec<String> = Vec::new();
    for e in &events {
        let vm = e["vm"].as_str().unwrap_or_default().to_string();
        match e["event"].as_str() {
            Some("migration_started") => open.push(vm),
            Some("migration_completed" | "migration_failed") => {
                let i = open
                    .iter()
                    .position(|v| *v == vm)
                    .unwrap_or_else(|| panic!("{vm} ended without starting"));
                open.remove(i);
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "moves left running: {open:?}\n{journal}");
    for vm in &moving {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "migration_completed" && e["vm"] == vm.as_str()),
            "{vm} was moving at SIGTERM and must have completed:\n{journal}"
        );
    }
    // Moves not started at SIGTERM were not started after it.
    let started = events
        .iter()
        .filter(|e| e["event"] == "migration_started")
        .count();
    assert!(
        started < 5,
        "the evacuation did not run to its end: {journal}"
    );

    // The final status was written after the moves ended, and shows no move running.
    let after = read_status().expect("final status");
    assert!(after.updated_at >= before.updated_at);
    assert!(
        after.vms.values().all(|v| v.condition != Condition::Moving),
        "{after:?}"
    );
    for vm in &moving {
        assert_ne!(
            after.vms[vm].host.as_deref(),
            Some("hv02"),
            "{vm} finished its move off hv02"
        );
    }
}
