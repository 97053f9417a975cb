//! `berth sim import`: a snapshot of a fleet becomes a simulated world that
//! looks exactly like it. Round trip through the real binary: change a
//! world with `apply`, `observe` it, import the snapshot, and the imported
//! world observes the same and plans no change against the snapshot.

use std::path::Path;

use assert_cmd::Command;

fn berth() -> Command {
    Command::cargo_bin("berth").expect("the berth binary")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).expect("copy");
        }
    }
}

fn observe(fleet: &Path) -> String {
    let out = berth()
        .arg("observe")
        .arg("--provider")
        .arg(format!("sim:{}", fleet.display()))
        .output()
        .expect("observe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn an_imported_snapshot_observes_the_same_and_plans_no_change() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = tmp.path().join("lab");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab"),
        &lab,
    );
    // Move the world away from its Fleet file first, so the snapshot holds
    // state the Fleet file does not.
    let applied = berth()
        .arg("apply")
        .arg(&lab)
        .arg("--auto-approve")
        .output()
        .expect("apply");
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let before = observe(&lab.join("fleet.yaml"));
    let fleet_text = std::fs::read_to_string(lab.join("fleet.yaml")).expect("fleet");
    let snapshot = tmp.path().join("snapshot.yaml");
    std::fs::write(&snapshot, &before).expect("write snapshot");

    let imported = tmp.path().join("world").join("fleet.yaml");
    std::fs::create_dir_all(imported.parent().expect("parent")).expect("mkdir");
    berth()
        .args(["sim", "import"])
        .arg(&snapshot)
        .arg("--out")
        .arg(&imported)
        .assert()
        .success();
    berth().arg("validate").arg(&imported).assert().success();

    // The imported world starts where the observed one is now (its clock
    // starts at 0: only `observedAt` differs).
    let clockless = |s: &str| {
        s.lines()
            .filter(|l| !l.trim_start().starts_with("observedAt:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let after = observe(&imported);
    assert!(before.contains("observedAt: 6"), "{before}");
    assert_eq!(clockless(&after), clockless(&before));
    assert_ne!(
        fleet_text,
        std::fs::read_to_string(&imported).expect("imported"),
        "the import is written from the observation, not copied"
    );

    // The snapshot as desired state is in sync with the imported world.
    let plan = berth()
        .arg("plan")
        .arg(&snapshot)
        .arg("--provider")
        .arg(format!("sim:{}", imported.display()))
        .args(["--output", "json", "--detailed-exitcode"])
        .output()
        .expect("plan");
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("JSON");
    assert_eq!(json["inSync"], true, "{json}");
}

#[test]
fn printing_to_stdout_and_refusing_what_is_not_a_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab");
    let snapshot = tmp.path().join("snapshot.yaml");
    let fleet = tmp.path().join("fleet.yaml");
    std::fs::copy(lab.join("fleet.yaml"), &fleet).expect("copy");
    std::fs::write(&snapshot, observe(&fleet)).expect("write");
    let out = berth()
        .args(["sim", "import"])
        .arg(&snapshot)
        .output()
        .expect("import");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.contains("kind: Fleet"), "{text}");

    // A Placement without `status` is not an observation.
    let out = berth()
        .args(["sim", "import"])
        .arg(lab.join("placement"))
        .output()
        .expect("import");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a snapshot"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
