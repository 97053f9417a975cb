//! The one loop, end to end: the real `berth watch` process on the
//! simulator, which under `watch` runs on the wall clock.
//!
//! While a minute-long migration runs, a commit that moves an unrelated VM
//! starts that move within a second; the long move completes once; and the
//! same holds after `kill -9` of the watch and a restart (the long move is
//! followed, never issued again). Meanwhile `plan` and `observe` read the
//! world without waiting for the watch's lock.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::reconcile::{Condition, Status};

const FLEET: &str = "\
apiVersion: berth/v1
kind: Fleet
spec:
  seed: 1
  hosts:
    - { name: hv01, memoryGiB: 64, cpuVendor: intel, switches: [Prod], migrationRateMiBps: 100 }
    - { name: hv02, memoryGiB: 64, cpuVendor: intel, switches: [Prod], migrationRateMiBps: 100 }
    - { name: hv03, memoryGiB: 64, cpuVendor: intel, switches: [Prod], migrationRateMiBps: 100000 }
    - { name: hv04, memoryGiB: 64, cpuVendor: intel, switches: [Prod], migrationRateMiBps: 100000 }
  vms:
    - { name: big, host: hv01, memoryGiB: 6 }
    - { name: small-a, host: hv03, memoryGiB: 1 }
    - { name: small-b, host: hv03, memoryGiB: 1 }
";

const CONTROLLER: &str = "\
apiVersion: berth/v1
kind: Controller
spec:
  provider:
    sim: { fleet: fleet.yaml }
  resyncInterval: 1h
";

/// The Placement with each VM's host.
fn placement(big: &str, a: &str, b: &str) -> String {
    format!(
        "apiVersion: berth/v1
kind: Placement
spec:
  hosts: [{{ name: hv01 }}, {{ name: hv02 }}, {{ name: hv03 }}, {{ name: hv04 }}]
  vms:
    - {{ name: big, host: {big} }}
    - {{ name: small-a, host: {a} }}
    - {{ name: small-b, host: {b} }}
"
    )
}

struct World {
    _root: tempfile::TempDir,
    dir: PathBuf,
    status: PathBuf,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("fleet");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("fleet.yaml"), FLEET).expect("fleet");
        std::fs::write(dir.join("controller.yaml"), CONTROLLER).expect("controller");
        std::fs::write(
            dir.join("placement.yaml"),
            placement("hv02", "hv03", "hv03"),
        )
        .expect("placement");
        let status = root.path().join("status.json");
        World {
            _root: root,
            dir,
            status,
        }
    }

    fn watch(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("watch")
            .arg(&self.dir)
            .arg("--status-file")
            .arg(&self.status)
            .arg("--debounce")
            .arg("50ms")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start berth watch")
    }

    /// Writes a new placement the way a sync tool does (write, rename).
    fn commit(&self, text: &str) {
        let tmp = self.dir.join(".placement.yaml.tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.dir.join("placement.yaml")).expect("rename");
    }

    fn journal(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.join(".berth/events.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn count(&self, event: &str, vm: &str) -> usize {
        self.journal()
            .iter()
            .filter(|e| e["event"] == event && e["vm"] == vm)
            .count()
    }

    fn status(&self) -> Option<Status> {
        serde_json::from_slice(&std::fs::read(&self.status).ok()?).ok()
    }

    fn berth(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run berth")
    }
}

/// Polls `f` every 10 ms of real time until it returns `Some`, or panics.
fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill9(child: &mut Child) {
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    let _ = child.wait();
}

/// Waits for a commit's move to start; returns how long it took.
fn starts_within(w: &World, vm: &str, text: &str) -> Duration {
    let before = w.count("migration_started", vm);
    let t0 = Instant::now();
    w.commit(text);
    poll(
        &format!("{vm}'s move to start"),
        Duration::from_secs(10),
        || (w.count("migration_started", vm) > before).then_some(()),
    );
    t0.elapsed()
}

#[test]
fn a_commit_during_a_long_move_starts_at_once_also_after_kill_9() {
    let w = World::new();
    let mut watch = w.watch();
    // The long move starts (and the journal shows it at once).
    poll("big's move to start", Duration::from_secs(20), || {
        (w.count("migration_started", "big") == 1).then_some(())
    });
    poll("big shown Moving", Duration::from_secs(5), || {
        let s = w.status()?;
        (s.vms.get("big")?.condition == Condition::Moving).then_some(())
    });

    // A reader does not need the lock, and writes nothing.
    let out = w.berth(&["observe", "--provider", "sim:fleet.yaml"]);
    assert!(
        out.status.success(),
        "observe while watch runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.berth(&["plan", "."]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(2),
        "plan while watch runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A commit that moves an unrelated VM starts within a second.
    let took = starts_within(&w, "small-a", &placement("hv02", "hv04", "hv03"));
    assert!(
        took < Duration::from_secs(1),
        "small-a started after {took:?}"
    );
    poll("small-a to land", Duration::from_secs(10), || {
        (w.count("migration_completed", "small-a") == 1).then_some(())
    });
    poll("small-a InSync", Duration::from_secs(2), || {
        let s = w.status()?;
        (s.vms.get("small-a")?.condition == Condition::InSync).then_some(())
    });
    assert_eq!(w.count("migration_completed", "big"), 0, "big still moves");

    // kill -9 and a restart: big is followed, not issued again, and a new
    // commit still starts at once.
    kill9(&mut watch);
    let mut watch = w.watch();
    poll(
        "big shown Moving after the restart",
        Duration::from_secs(10),
        || {
            let s = w.status()?;
            (s.vms.get("big")?.condition == Condition::Moving).then_some(())
        },
    );
    let took = starts_within(&w, "small-b", &placement("hv02", "hv04", "hv04"));
    assert!(
        took < Duration::from_secs(1),
        "small-b started after {took:?} (after a restart)"
    );

    // The long move completes, once.
    poll("big to land", Duration::from_secs(120), || {
        (w.count("migration_completed", "big") == 1).then_some(())
    });
    kill9(&mut watch);
    assert_eq!(w.count("migration_started", "big"), 1, "{:#?}", w.journal());
    assert_eq!(w.count("migration_failed", "big"), 0);
    // Every start has exactly one end.
    for vm in ["big", "small-a", "small-b"] {
        assert_eq!(
            w.count("migration_started", vm),
            w.count("migration_completed", vm) + w.count("migration_failed", vm),
            "{vm}: {:#?}",
            w.journal()
        );
    }
}

#[test]
fn plan_on_a_fresh_world_creates_nothing() {
    let w = World::new();
    let out = w.berth(&["plan", "."]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.berth(&["observe", "--provider", "sim:fleet.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !Path::new(&w.dir).join(".berth").exists(),
        "reading must not create .berth/"
    );
}
