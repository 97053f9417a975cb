//! Shared-nothing moves: the simulator's storage model, the Fleet's storage
//! validation and the `examples/shared-nothing` scenario, on paused time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth::execute::{self, Control, Event as RunEvent, Observer, Options};
use berth::plan;
use berth::provider::sim::{Event, EventKind, Sim};
use berth::provider::{ErrorClass, MoveKind, MoveRequest, Provider, WaitReason};
use berth::spec::{self, FleetSpec};

fn fleet(body: &str) -> FleetSpec {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fleet.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{body}"),
    )
    .expect("write");
    spec::load_fleet(&path).unwrap_or_else(|e| panic!("fleet invalid: {e}"))
}

fn fleet_error(body: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fleet.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{body}"),
    )
    .expect("write");
    match spec::load_fleet(&path) {
        Ok(_) => panic!("the fleet should be invalid"),
        Err(e) => berth::cli::render::spec_error_plain(&e),
    }
}

fn mv(vm: &str, from: &str, to: &str, kind: MoveKind, path: Option<&str>) -> MoveRequest {
    MoveRequest {
        vm: vm.into(),
        from: from.into(),
        to: to.into(),
        kind,
        storage_path: path.map(str::to_string),
    }
}

/// `(t, event, vm)` of migration events.
fn migrations(journal: &[Event]) -> Vec<(f64, &'static str, String)> {
    journal
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MigrationStarted { vm, .. } => Some((e.t, "started", vm.clone())),
            EventKind::MigrationCompleted { vm, .. } => Some((e.t, "completed", vm.clone())),
            EventKind::MigrationFailed { vm, .. } => Some((e.t, "failed", vm.clone())),
            _ => None,
        })
        .collect()
}

fn completed_at(journal: &[Event], vm: &str) -> f64 {
    journal
        .iter()
        .find(|e| matches!(&e.kind, EventKind::MigrationCompleted { vm: v, .. } if v == vm))
        .map(|e| e.t)
        .unwrap_or_else(|| panic!("{vm} never completed: {:?}", migrations(journal)))
}

/// Two hosts with one volume each; `net` is the shared network line, if any.
fn two_hosts(net: &str, extra: &str) -> String {
    format!(
        "  hosts:
    - {{ name: s01, memoryGiB: 256, switches: [Prod], migrationRateMiBps: 1000, {net} {extra} volumes: [{{ path: 'D:\\VMs', freeGiB: 1000 }}] }}
    - {{ name: s02, memoryGiB: 256, switches: [Prod], migrationRateMiBps: 1000, {net} {extra} volumes: [{{ path: 'D:\\VMs', freeGiB: 1000 }}, {{ path: 'E:\\VMs', freeGiB: 50 }}] }}
"
    )
}

fn vm_line(name: &str, state: &str, memory: u32, disk_gib: u32) -> String {
    format!(
        "    - {{ name: {name}, host: s01, memoryGiB: {memory}, state: {state}, disks: [{{ path: 'D:\\VMs\\{name}\\{name}.vhdx', sizeGiB: {disk_gib} }}] }}\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_move_with_storage_lasts_five_seconds_plus_disks_and_memory_over_rate() {
    let body = format!(
        "{}  vms:\n{}{}",
        two_hosts("", ""),
        vm_line("cold", "\"off\"", 8, 100),
        vm_line("warm", "running", 8, 100)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let job = sim
        .start_move(&mv(
            "cold",
            "s01",
            "s02",
            MoveKind::Offline,
            Some(r"D:\VMs\cold"),
        ))
        .await
        .expect("started");
    sim.wait_job(&job).await.expect("completes");
    // Off: the disks only: 5 s + 102400 MiB / 1000 MiB/s.
    assert!((completed_at(&sim.journal(), "cold") - 107.4).abs() < 1e-6);
    let t0 = sim.now_seconds();
    let job = sim
        .start_move(&mv(
            "warm",
            "s01",
            "s02",
            MoveKind::Live,
            Some(r"D:\VMs\warm"),
        ))
        .await
        .expect("started");
    sim.wait_job(&job).await.expect("completes");
    // Running: disks and memory: 5 s + (102400 + 8192) MiB / 1000 MiB/s.
    let took = completed_at(&sim.journal(), "warm") - t0;
    assert!((took - 115.592).abs() < 1e-6, "{took}");
}

#[tokio::test(start_paused = true)]
async fn copies_share_a_host_network_and_speed_up_when_one_ends() {
    let body = format!(
        "{}  vms:\n{}{}",
        two_hosts("networkMiBps: 1000,", ""),
        vm_line("a", "\"off\"", 8, 100),
        vm_line("b", "\"off\"", 8, 50)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let ja = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("a");
    let jb = sim
        .start_move(&mv("b", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("b");
    sim.wait_job(&jb).await.expect("b completes");
    sim.wait_job(&ja).await.expect("a completes");
    let j = sim.journal();
    // Both at 500 MiB/s until b's 51200 MiB are copied (102.4 s); b ends
    // 5 s later. a's other 51200 MiB then go at the full 1000 MiB/s.
    assert!((completed_at(&j, "b") - 107.4).abs() < 1e-3, "{j:?}");
    assert!((completed_at(&j, "a") - 158.6).abs() < 1e-3, "{j:?}");

    // Without a shared network each copy has its own 1000 MiB/s.
    let body = format!(
        "{}  vms:\n{}{}",
        two_hosts("", ""),
        vm_line("a", "\"off\"", 8, 100),
        vm_line("b", "\"off\"", 8, 50)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let ja = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("a");
    sim.start_move(&mv("b", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("b");
    sim.wait_job(&ja).await.expect("a completes");
    let j = sim.journal();
    assert!((completed_at(&j, "b") - 56.2).abs() < 1e-3);
    assert!((completed_at(&j, "a") - 107.4).abs() < 1e-3);
}

#[tokio::test(start_paused = true)]
async fn a_storage_move_waits_for_a_storage_slot_then_fails_after_over_limit_wait() {
    let body = format!(
        "  faults: {{ overLimitWait: 60s }}\n{}  vms:\n{}{}{}",
        two_hosts("", "maxStorageMigrations: 1,"),
        vm_line("a", "\"off\"", 8, 100),
        vm_line("b", "\"off\"", 8, 10),
        vm_line("c", "\"off\"", 8, 10)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let ja = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("a");
    let jb = sim
        .start_move(&mv("b", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("b");
    let err = sim.wait_job(&jb).await.expect_err("b waits past 60 s");
    assert_eq!(err.class, ErrorClass::Wait(WaitReason::HostBusy));
    assert!(
        err.message.contains("s01: 1 of 1 storage migrations"),
        "{}",
        err.message
    );
    sim.wait_job(&ja).await.expect("a completes");
    // A slot that frees in time lets the waiting copy start then.
    let ja2 = sim
        .start_move(&mv("a", "s02", "s01", MoveKind::Offline, None))
        .await
        .expect("a back");
    let jc = sim
        .start_move(&mv("c", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("c");
    sim.wait_job(&jc)
        .await
        .expect_err("a's 107 s copy outlasts c's 60 s wait");
    sim.wait_job(&ja2).await.expect("a back");
}

#[tokio::test(start_paused = true)]
async fn a_live_move_with_storage_needs_both_limits() {
    // Live limit 1, storage limit 2: the second live copy waits for the
    // live slot although a storage slot is free.
    let body = format!(
        "{}  vms:\n{}{}",
        two_hosts("", "maxMigrations: 1,"),
        vm_line("a", "running", 8, 10),
        vm_line("b", "running", 8, 10)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let ja = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Live, None))
        .await
        .expect("a");
    let jb = sim
        .start_move(&mv("b", "s01", "s02", MoveKind::Live, None))
        .await
        .expect("b");
    sim.wait_job(&ja).await.expect("a");
    sim.wait_job(&jb).await.expect("b");
    let j = sim.journal();
    let one = 5.0 + (10240.0 + 8192.0) / 1000.0;
    assert!((completed_at(&j, "a") - one).abs() < 1e-3);
    assert!((completed_at(&j, "b") - 2.0 * one).abs() < 1e-3, "{j:?}");
}

#[tokio::test(start_paused = true)]
async fn space_is_reserved_at_the_start_and_given_back_at_the_end() {
    let body = format!(
        "  faults: {{ overLimitWait: 60s }}\n{}  vms:\n{}    - {{ name: f, host: s01, memoryGiB: 8, state: \"off\", failNextMigrations: 1, disks: [{{ path: 'D:\\VMs\\f\\f.vhdx', sizeGiB: 30 }}] }}\n",
        two_hosts("", ""),
        vm_line("a", "\"off\"", 8, 100),
    );
    let sim = Sim::in_memory(&fleet(&body));
    let free = |o: &berth::provider::Observed, h: &str, v: &str| {
        o.hosts[h]
            .volumes
            .iter()
            .find(|x| x.path == v)
            .map(|x| x.free_mib)
            .expect("volume")
    };
    let job = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Offline, Some(r"D:\VMs\a")))
        .await
        .expect("a");
    let during = sim.observe().await.expect("observe");
    assert_eq!(free(&during, "s02", r"D:\VMs"), (1000 - 100) * 1024);
    assert_eq!(free(&during, "s01", r"D:\VMs"), 1000 * 1024);
    assert_eq!(during.vms["a"].local_disk_mib(), 100 * 1024);
    sim.wait_job(&job).await.expect("a");
    let after = sim.observe().await.expect("observe");
    assert_eq!(free(&after, "s01", r"D:\VMs"), (1000 + 100) * 1024);
    assert_eq!(free(&after, "s02", r"D:\VMs"), (1000 - 100) * 1024);
    let disk = &after.vms["a"].disks[0];
    assert_eq!(disk.path, r"D:\VMs\a\a.vhdx");
    assert_eq!(disk.volume.as_deref(), Some(r"D:\VMs"));
    assert_eq!(after.vms["a"].host, "s02");

    // A failed copy gives the destination its space back.
    let job = sim
        .start_move(&mv("f", "s01", "s02", MoveKind::Offline, Some(r"D:\VMs\f")))
        .await
        .expect("f");
    let during = sim.observe().await.expect("observe");
    assert_eq!(free(&during, "s02", r"D:\VMs"), (900 - 30) * 1024);
    let err = sim.wait_job(&job).await.expect_err("f fails once");
    assert_eq!(err.class, ErrorClass::Retryable);
    let after = sim.observe().await.expect("observe");
    assert_eq!(free(&after, "s02", r"D:\VMs"), 900 * 1024);
    assert_eq!(free(&after, "s01", r"D:\VMs"), 1100 * 1024);
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_does_not_fit_fails_at_once_and_is_not_retryable() {
    let body = format!(
        "{}  vms:\n{}",
        two_hosts("", ""),
        vm_line("a", "running", 8, 100)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let job = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Live, Some(r"E:\VMs\a")))
        .await
        .expect("requested");
    let err = sim.wait_job(&job).await.expect_err("E: has 50 GiB free");
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.message.contains(r"volume `E:\VMs` of `s02`"),
        "{}",
        err.message
    );
    let j = sim.journal();
    assert_eq!(j.last().map(|e| e.t), Some(0.0), "it failed at once");
    let o = sim.observe().await.expect("observe");
    let e = o.hosts["s02"].volumes.iter().find(|v| v.path == r"E:\VMs");
    assert_eq!(e.map(|v| v.free_mib), Some(50 * 1024), "nothing reserved");
}

#[tokio::test(start_paused = true)]
async fn migration_events_carry_storage_gib_and_volume() {
    let body = format!(
        "{}  vms:\n{}    - {{ name: m, host: s01, memoryGiB: 4, disks: [{{ path: '\\\\nas\\vms\\m.vhdx', sizeGiB: 20 }}] }}\n",
        two_hosts("", ""),
        vm_line("a", "\"off\"", 8, 12)
    );
    let sim = Sim::in_memory(&fleet(&body));
    let ja = sim
        .start_move(&mv("a", "s01", "s02", MoveKind::Offline, None))
        .await
        .expect("a");
    let jm = sim
        .start_move(&mv("m", "s01", "s02", MoveKind::Live, None))
        .await
        .expect("m");
    sim.wait_job(&ja).await.expect("a");
    sim.wait_job(&jm).await.expect("m");
    let lines: Vec<serde_json::Value> = sim
        .journal()
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect();
    for l in &lines {
        assert!(l.get("storageGiB").is_some(), "{l}");
        assert!(l.get("volume").is_some(), "{l}");
        if l["vm"] == "a" {
            assert_eq!(l["storageGiB"], 12.0);
            // No storagePath: the volume with the most free space.
            assert_eq!(l["volume"], r"D:\VMs");
        } else {
            // On a file share: nothing copied.
            assert_eq!(l["storageGiB"], 0.0);
            assert!(l["volume"].is_null());
        }
    }
    // Events read back.
    let text = serde_json::to_string(&sim.journal()[0]).expect("json");
    let back: Event = serde_json::from_str(&text).expect("parses");
    assert_eq!(back, sim.journal()[0]);
}

#[test]
fn a_disk_on_no_volume_of_its_host_is_an_error_with_its_position() {
    let text = fleet_error(
        "  hosts:
    - { name: s01, memoryGiB: 64, volumes: [{ path: 'D:\\VMs', freeGiB: 100 }] }
  vms:
    - name: a
      host: s01
      memoryGiB: 4
      disks:
        - { path: 'E:\\VMs\\a.vhdx', sizeGiB: 10 }
        - { path: 'D:\\VMs\\a2.vhdx', sizeGiB: 0 }
",
    );
    assert!(text.contains("fleet.yaml:11:19"), "{text}");
    assert!(
        text.contains(r"lies on no volume of host `s01` (D:\VMs)"),
        "{text}"
    );
    assert!(
        text.contains("`sizeGiB` must be a positive number"),
        "{text}"
    );
    assert!(text.contains("fleet.yaml:12:46"), "{text}");
    // Shared storage is fine without a volume.
    fleet(
        "  hosts:
    - { name: s01, memoryGiB: 64 }
  vms:
    - { name: a, host: s01, memoryGiB: 4, disks: [{ path: '\\\\nas\\vms\\a.vhdx', sizeGiB: 10 }, { path: 'C:\\ClusterStorage\\Volume1\\a.vhdx', sizeGiB: 10 }] }
",
    );
}

#[test]
fn volumes_and_networks_are_checked() {
    let text = fleet_error(
        "  hosts:
    - name: s01
      memoryGiB: 64
      networkMiBps: 0
      volumes:
        - { path: 'VMs', freeGiB: 10 }
        - { path: 'D:\\VMs', freeGiB: -1 }
        - { path: 'd:/vms/', freeGiB: 1 }
",
    );
    assert!(
        text.contains("`networkMiBps` must be a positive number"),
        "{text}"
    );
    assert!(text.contains("is not an absolute Windows path"), "{text}");
    assert!(
        text.contains("`freeGiB` must be a non-negative number"),
        "{text}"
    );
    assert!(text.contains("is declared twice on host `s01`"), "{text}");
}

// ------------------------------------------------------------- example

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shared-nothing")
}

#[derive(Default)]
struct Record(Mutex<Vec<RunEvent>>);

impl Observer for Record {
    fn event(&self, e: &RunEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e.clone());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_shared_nothing_example_waits_for_slots_blocks_what_cannot_fit_and_keeps_its_estimate()
{
    let root = example();
    let desired = spec::load(std::slice::from_ref(&root)).expect("valid example");
    let fleet = spec::load_fleet(&root.join("fleet.yaml")).expect("valid fleet");
    let sim = Arc::new(Sim::in_memory(&fleet));
    let observed = sim.observe().await.expect("observe");
    let p = plan::plan(&desired, &observed);
    let blocked: Vec<_> = p.blocked.iter().map(|b| (&*b.vm, &*b.reason)).collect();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0].0, "big-01");
    assert!(
        blocked[0].1.contains(r"volume D:\VMs of s04") && blocked[0].1.contains("200 GiB short"),
        "{}",
        blocked[0].1
    );
    let record = Record::default();
    let report = execute::converge(
        &desired,
        sim.clone(),
        &Options::default(),
        &record,
        Control::new(),
    )
    .await
    .expect("runs");
    assert_eq!(report.moves, 5);
    assert_eq!(report.failed_attempts, 0);
    let events = record.0.lock().expect("events").clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::Waiting { why, .. }
            if why.contains("s01: 2 of 2 storage migrations"))),
        "{events:?}"
    );
    let ratio = report.elapsed_seconds / p.estimated_seconds;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "estimate {} s, simulated run {} s",
        p.estimated_seconds,
        report.elapsed_seconds
    );
    // Never more than two copies on s01 at once.
    let mut on = 0i32;
    for e in sim.journal() {
        match &e.kind {
            EventKind::MigrationStarted { from, .. } if from == "s01" => on += 1,
            EventKind::MigrationCompleted { from, .. }
            | EventKind::MigrationFailed { from, .. }
                if from == "s01" =>
            {
                on -= 1
            }
            _ => {}
        }
        assert!(on <= 2);
    }
}

fn copy_example(to: &Path) -> PathBuf {
    let dir = to.join("shared-nothing");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in ["controller.yaml", "fleet.yaml", "placement.yaml"] {
        std::fs::copy(example().join(f), dir.join(f)).expect("copy");
    }
    dir
}

#[test]
fn observe_reports_disks_and_volumes_and_a_snapshot_plans_the_same() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = copy_example(tmp.path());
    let berth = env!("CARGO_BIN_EXE_berth");
    let out = std::process::Command::new(berth)
        .arg("observe")
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("freeGiB"), "{text}");
    assert!(text.contains("sizeGiB"), "{text}");
    assert!(text.contains("networkMiBps"), "{text}");
    let snap = tmp.path().join("snap.yaml");
    std::fs::write(&snap, &out.stdout).expect("write");
    let plan_json = |extra: &[&Path]| -> serde_json::Value {
        let out = std::process::Command::new(berth)
            .args(["plan", "--output", "json"])
            .args(extra.iter().flat_map(|p| [Path::new("--observed"), p]))
            .arg(&dir)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let from_sim = plan_json(&[]);
    let from_snapshot = plan_json(&[&snap]);
    assert_eq!(from_sim, from_snapshot);
    let moves = from_sim["actions"].as_array().expect("actions");
    assert!(
        moves
            .iter()
            .any(|a| a["storagePath"] == r"D:\VMs\Arriving\app-01" && a["storageGiB"] == 200.0),
        "{from_sim}"
    );
}
