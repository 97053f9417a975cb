//! How plans read, for the two examples, and `berth plan` end to end.
//!
//! Snapshots fix the text, diff, JSON and Markdown renderings of the lab and
//! maintenance examples; the assertions next to them check what the
//! contract fixes (fields, types, ids, reasons) and what the examples are
//! about, so a snapshot accepted in a hurry cannot hide a wrong plan. The
//! CLI tests run the binary on copies of the examples (the simulator writes
//! `.berth/` beside the Fleet file).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use berth::cli::plan_output::{self, Style};
use berth::plan::{self, Plan};
use berth::provider::sim::Sim;
use berth::provider::{Observed, Provider};
use berth::spec::{self, Desired};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The example's spec, its fleet as the simulator first observes it, and
/// the plan between them.
fn planned(name: &str) -> (Desired, Observed, Plan) {
    let dir = example(name);
    let desired = spec::load(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let fleet = spec::load_fleet(&dir.join("fleet.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let observed = rt.block_on(async { Sim::in_memory(&fleet).observe().await.expect("observe") });
    let plan = plan::plan(&desired, &observed);
    (desired, observed, plan)
}

/// Checks a `plan --output json` document against the contract; returns
/// the moves as (vm, from, to, method, reason).
fn check_contract(v: &Value) -> Vec<(String, String, String, String, String)> {
    let obj = v.as_object().expect("a JSON object");
    assert_eq!(v["formatVersion"], 1);
    assert!(v["inSync"].is_boolean());
    assert!(v["estimatedSeconds"].as_f64().is_some_and(|s| s >= 0.0));
    for key in ["actions", "blocked", "unmanaged"] {
        assert!(obj.get(key).is_some_and(Value::is_array), "{key} is a list");
    }
    for b in v["blocked"].as_array().into_iter().flatten() {
        assert!(b["vm"].is_string() && b["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    assert!(
        v["unmanaged"]
            .as_array()
            .into_iter()
            .flatten()
            .all(Value::is_string)
    );

    let mut moves = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, a) in v["actions"].as_array().expect("actions").iter().enumerate() {
        let id = a["id"].as_u64().expect("an integer id");
        assert_eq!(id, i as u64 + 1, "ids count up from 1: {a}");
        for dep in a["after"].as_array().expect("after is a list") {
            let dep = dep.as_u64().expect("after names ids");
            assert!(
                ids.contains(&dep),
                "#{id} is after #{dep}, not an earlier id"
            );
        }
        ids.insert(id);
        assert!(a["vm"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
        let s = |k: &str| {
            a[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {a}"))
                .to_string()
        };
        match a["type"].as_str().expect("a type") {
            "move" => {
                assert!(["live", "offline"].contains(&s("method").as_str()), "{a}");
                assert!(
                    ["placement", "maintenance", "return", "drift"].contains(&s("reason").as_str()),
                    "{a}"
                );
                assert_ne!(s("from"), s("to"), "{a}");
                let secs = a["estimatedSeconds"].as_f64().expect("estimatedSeconds");
                assert!(secs >= 5.0, "every move takes at least 5 s: {a}");
                if s("method") == "offline" {
                    assert_eq!(secs, 5.0, "{a}");
                }
                moves.push((s("vm"), s("from"), s("to"), s("method"), s("reason")));
            }
            "set-acls" => {
                let (add, remove) = (&a["add"], &a["remove"]);
                let rules: Vec<&Value> = [add, remove]
                    .into_iter()
                    .flat_map(|l| l.as_array().expect("add and remove are lists"))
                    .collect();
                assert!(!rules.is_empty(), "{a}");
                for r in rules {
                    assert!(
                        ["inbound", "outbound"].contains(&r["direction"].as_str().unwrap_or(""))
                    );
                    assert!(
                        r["weight"]
                            .as_u64()
                            .is_some_and(|w| (1..=65535).contains(&w))
                    );
                }
                s("adapter");
            }
            "connect" => {
                s("adapter");
                s("switch");
            }
            "set-vlan" => {
                s("adapter");
                assert!(
                    a["vlanId"]
                        .as_u64()
                        .is_some_and(|n| (1..=4094).contains(&n))
                );
            }
            other => panic!("unknown action type {other}"),
        }
    }
    let in_sync = v["inSync"].as_bool() == Some(true);
    assert_eq!(
        in_sync,
        ids.is_empty() && v["blocked"].as_array().is_some_and(|b| b.is_empty())
    );
    moves
}

fn json_of(plan: &Plan) -> Value {
    serde_json::from_str(&plan_output::json(plan, None)).expect("plan JSON parses")
}

fn owned(m: &[(&str, &str, &str, &str, &str)]) -> Vec<(String, String, String, String, String)> {
    m.iter()
        .map(|(a, b, c, d, e)| {
            (
                a.to_string(),
                b.to_string(),
                c.to_string(),
                d.to_string(),
                e.to_string(),
            )
        })
        .collect()
}

// ------------------------------------------------------------- lab

#[test]
fn lab_plan_moves_what_the_example_describes() {
    let (_, _, plan) = planned("lab");
    let v = json_of(&plan);
    let moves = check_contract(&v);
    assert_eq!(
        moves,
        owned(&[
            ("app-01", "hv03", "hv02", "live", "placement"),
            ("app-02", "hv03", "hv02", "live", "placement"),
            ("app-03", "hv03", "hv01", "live", "placement"),
            ("build-01", "hv02", "hv01", "offline", "placement"),
            ("cache-01", "hv05", "hv04", "live", "placement"),
            ("db-01", "hv01", "hv02", "live", "placement"),
            ("rpt-01", "hv03", "hv02", "offline", "placement"),
            ("sql-02", "hv04", "hv05", "live", "placement"),
            ("web-01", "hv01", "hv03", "live", "placement"),
            ("web-02", "hv01", "hv03", "live", "placement"),
        ])
    );
    assert_eq!(v["inSync"], false);
    assert_eq!(v["unmanaged"], serde_json::json!(["test-07"]));
    assert_eq!(v["blocked"], serde_json::json!([]));
    // web-03 stays: its drifted ACLs are set (SSH added, RDP removed);
    // mon-01 is reconnected to Mgmt.
    let acts = v["actions"].as_array().expect("actions");
    let set = acts
        .iter()
        .find(|a| a["type"] == "set-acls")
        .expect("a set-acls action");
    assert_eq!(set["vm"], "web-03");
    assert_eq!(set["reason"], "drift");
    assert_eq!(
        set["add"],
        serde_json::json!([{ "direction": "inbound", "weight": 20 }])
    );
    assert_eq!(
        set["remove"],
        serde_json::json!([{ "direction": "inbound", "weight": 30 }])
    );
    let connect = acts
        .iter()
        .find(|a| a["type"] == "connect")
        .expect("a connect action");
    assert_eq!(
        (&connect["vm"], &connect["switch"]),
        (&Value::from("mon-01"), &Value::from("Mgmt"))
    );
    // hv03 (limit 2, 100 MiB/s) carries five live moves of ~4m11s and
    // ~2m49s: at least (3 x 251 s + 2 x 169 s) / 2 slots.
    let est = v["estimatedSeconds"].as_f64().expect("estimate");
    assert!((545.0..=3.0 * 251.0 + 2.0 * 169.0).contains(&est), "{est}");
    assert_eq!(
        plan_output::summary(&plan).split(';').next(),
        Some("Plan: 10 moves, 2 ACL changes, 1 connection")
    );
}

#[test]
fn lab_text() {
    let (_, _, plan) = planned("lab");
    insta::assert_snapshot!(plan_output::text(&plan, Style::new(false)));
}

#[test]
fn lab_diff() {
    let (desired, observed, plan) = planned("lab");
    let diff = plan_output::diff(&desired, &observed, &plan);
    // Every move shows as its VM's host line changing, and nothing else
    // changes a host.
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| l.starts_with("+    host: "))
        .collect();
    assert_eq!(changed.len(), plan.moves());
    assert!(diff.starts_with("--- observed\n+++ desired\n"), "{diff}");
    insta::assert_snapshot!(diff);
}

#[test]
fn lab_json() {
    let (_, _, plan) = planned("lab");
    insta::assert_snapshot!(plan_output::json(&plan, None));
}

#[test]
fn lab_markdown() {
    let (_, _, plan) = planned("lab");
    let md = plan_output::markdown(&plan, None);
    // One table row per action.
    let rows = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .count();
    assert_eq!(rows, plan.actions.len());
    insta::assert_snapshot!(md);
}

// ------------------------------------------------------------- maintenance

#[test]
fn maintenance_plan_empties_hv02_onto_fallbacks() {
    let (_, observed, plan) = planned("maintenance");
    let v = json_of(&plan);
    let mut moves = check_contract(&v);
    moves.sort();
    assert_eq!(
        moves,
        owned(&[
            ("app-02", "hv02", "hv03", "live", "maintenance"),
            ("db-02", "hv02", "hv04", "live", "maintenance"),
            ("test-09", "hv02", "hv04", "live", "maintenance"),
            ("tmpl-01", "hv02", "hv04", "offline", "maintenance"),
            ("web-02", "hv02", "hv03", "live", "maintenance"),
        ])
    );
    // Every VM on hv02 leaves it, the unmanaged test-09 included.
    let on_hv02: BTreeSet<&str> = observed
        .vms
        .values()
        .filter(|v| v.host == "hv02")
        .map(|v| v.name.as_str())
        .collect();
    let moved: BTreeSet<&str> = moves.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(on_hv02, moved);
    assert_eq!(v["unmanaged"], serde_json::json!(["test-09"]));
    assert_eq!(v["blocked"], serde_json::json!([]));
    // Four live moves out of hv02 (limit 2): db-02 (70.5 s) in one slot,
    // the other three (29.6 + 21.4 + 13.2 s) in the other.
    assert_eq!(v["estimatedSeconds"], 70.5);
}

#[test]
fn maintenance_text() {
    let (_, _, plan) = planned("maintenance");
    insta::assert_snapshot!(plan_output::text(&plan, Style::new(false)));
}

#[test]
fn maintenance_diff() {
    let (desired, observed, plan) = planned("maintenance");
    insta::assert_snapshot!(plan_output::diff(&desired, &observed, &plan));
}

#[test]
fn maintenance_json() {
    let (_, _, plan) = planned("maintenance");
    insta::assert_snapshot!(plan_output::json(&plan, None));
}

#[test]
fn maintenance_markdown_with_diff() {
    let (desired, observed, plan) = planned("maintenance");
    let diff = plan_output::diff(&desired, &observed, &plan);
    let md = plan_output::markdown(&plan, Some(&diff));
    assert!(md.contains(&diff), "the diff is included verbatim");
    insta::assert_snapshot!(md);
}

#[test]
fn json_with_diff_carries_the_same_diff() {
    let (desired, observed, plan) = planned("maintenance");
    let diff = plan_output::diff(&desired, &observed, &plan);
    let v: Value = serde_json::from_str(&plan_output::json(&plan, Some(&diff))).expect("JSON");
    check_contract(&v);
    assert_eq!(v["diff"], Value::from(diff));
}

// ------------------------------------------------------------- a swap

/// A plan from inline Fleet and Placement bodies.
fn planned_inline(fleet: &str, placement: &str) -> Plan {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("fleet.yaml");
    std::fs::write(&f, fleet).expect("write");
    let p = tmp.path().join("placement.yaml");
    std::fs::write(&p, placement).expect("write");
    let fleet = spec::load_fleet(&f).unwrap_or_else(|e| panic!("{e}"));
    let desired = spec::load(&[p]).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let observed = rt.block_on(async { Sim::in_memory(&fleet).observe().await.expect("observe") });
    plan::plan(&desired, &observed)
}

const SWAP_FLEET: &str = "apiVersion: berth/v1
kind: Fleet
spec:
  hosts:
    - { name: hv01, memoryGiB: 32, switches: [Prod] }
    - { name: hv02, memoryGiB: 32, switches: [Prod] }
    - { name: hv03, memoryGiB: 32, switches: [Prod] }
    - { name: hv04, memoryGiB: 64, switches: [Prod], cpuVendor: amd }
  vms:
    - name: app-01
      host: hv01
      memoryGiB: 24
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          acls:
            - { action: allow, direction: inbound, protocol: tcp, localPort: \"8080\", weight: 10 }
    - { name: app-02, host: hv02, memoryGiB: 24 }
    - { name: batch-01, host: hv03, memoryGiB: 8 }
";

const SWAP_PLACEMENT: &str = "apiVersion: berth/v1
kind: Placement
spec:
  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }, { name: hv04 }]
  vms:
    - name: app-01
      host: hv02
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          acls:
            - { action: allow, direction: inbound, protocol: tcp, localPort: \"8443\", weight: 10 }
    - { name: app-02, host: hv01 }
    - { name: batch-01, host: hv04 }
";

/// Two VMs swap hosts with no room to do it directly: app-01 waits on hv03
/// meanwhile; its ACLs follow its last move; batch-01 cannot cross to an
/// AMD host while running. Shows `after` and `blocked` as operators see them.
#[test]
fn swap_text_and_json() {
    let plan = planned_inline(SWAP_FLEET, SWAP_PLACEMENT);
    let v = json_of(&plan);
    let moves = check_contract(&v);
    assert_eq!(
        moves,
        owned(&[
            ("app-01", "hv01", "hv03", "live", "placement"),
            ("app-02", "hv02", "hv01", "live", "placement"),
            ("app-01", "hv03", "hv02", "live", "placement"),
        ])
    );
    let after: Vec<&Value> = v["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| &a["after"])
        .collect();
    assert_eq!(
        after,
        [
            &serde_json::json!([]),
            &serde_json::json!([1]),
            &serde_json::json!([1, 2]),
            &serde_json::json!([3]),
        ]
    );
    assert_eq!(v["actions"][3]["type"], "set-acls");
    assert_eq!(v["blocked"][0]["vm"], "batch-01");
    insta::assert_snapshot!("swap_text", plan_output::text(&plan, Style::new(false)));
    insta::assert_snapshot!("swap_json", plan_output::json(&plan, None));
}

// ------------------------------------------------------------- CLI

/// Copies a directory tree, leaving out hidden entries (a `.berth/` world
/// left by someone's earlier run).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

/// A copy of an example in a fresh temporary directory.
fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    copy_dir(&example(name), &dir);
    (tmp, dir)
}

fn berth() -> Command {
    let mut cmd = Command::cargo_bin("berth").expect("the berth binary");
    cmd.env_remove("RUST_LOG");
    cmd
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn cli_plan_with_changes_exits_2_with_detailed_exitcode_and_changes_nothing() {
    let (_tmp, dir) = scratch("lab");
    let out = berth()
        .args(["plan", "--detailed-exitcode"])
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = stdout(&out);
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    // The CLI prints what the library renders for the same plan.
    let (_, _, plan) = planned("lab");
    assert_eq!(text, plan_output::text(&plan, Style::new(false)));

    // Without --detailed-exitcode, changes are still success.
    berth().arg("plan").arg(&dir).assert().code(0);

    // Planning wrote nothing: a fresh world gets no state from being read.
    assert!(
        !dir.join(".berth").exists(),
        "plan must not create or change the world"
    );
}

#[test]
fn cli_plan_json_parses_and_matches_the_library() {
    let (_tmp, dir) = scratch("lab");
    let out = berth()
        .args(["plan", "--output", "json"])
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&stdout(&out)).expect("plan --output json is JSON");
    check_contract(&v);
    let (_, _, plan) = planned("lab");
    assert_eq!(v, json_of(&plan));
}

#[test]
fn cli_plan_against_an_observe_snapshot_gives_the_same_plan() {
    let (tmp, dir) = scratch("lab");
    let out = berth().arg("observe").arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Outside the example directory, or it would be read as desired state.
    let snap = tmp.path().join("snap.yaml");
    std::fs::write(&snap, &out.stdout).expect("write the snapshot");
    berth().arg("validate").arg(&snap).assert().code(0);

    let json = |args: &[&str]| -> Value {
        let out = berth()
            .args(["plan", "--output", "json"])
            .args(args)
            .arg(&dir)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_str(&stdout(&out)).expect("JSON")
    };
    let snap_arg = snap.to_str().expect("a UTF-8 path");
    let from_snapshot = json(&["--observed", snap_arg]);
    let from_sim = json(&[]);
    check_contract(&from_snapshot);
    assert_eq!(from_snapshot["actions"], from_sim["actions"]);
    assert_eq!(from_snapshot["blocked"], from_sim["blocked"]);
    assert_eq!(from_snapshot["unmanaged"], from_sim["unmanaged"]);
    // The simulator also tells when running backups end, which a snapshot
    // does not record: its estimate may only be longer.
    let (mut a, mut b) = (from_snapshot.clone(), from_sim.clone());
    let (ea, eb) = (
        a["estimatedSeconds"].take().as_f64().unwrap_or(0.0),
        b["estimatedSeconds"].take().as_f64().unwrap_or(0.0),
    );
    assert_eq!(a, b);
    assert!(eb >= ea, "{eb} < {ea}");
    assert_eq!(check_contract(&from_sim).len(), 10);
}

const IN_SYNC_FLEET: &str = "apiVersion: berth/v1
kind: Fleet
spec:
  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
  vms:
    - name: web-01
      host: hv01
      memoryGiB: 8
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          vlanId: 10
          acls:
            - { action: allow, direction: inbound, protocol: tcp, localPort: \"443\", weight: 10 }
    - { name: build-01, host: hv02, memoryGiB: 4, state: \"off\" }
";

const IN_SYNC_PLACEMENT: &str = "apiVersion: berth/v1
kind: Placement
spec:
  hosts: [{ name: hv01 }, { name: hv02 }]
  vms:
    - name: web-01
      host: hv01
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          vlanId: 10
          acls:
            - { action: allow, direction: inbound, protocol: tcp, localPort: \"443\", weight: 10 }
    - { name: build-01, host: hv02 }
---
apiVersion: berth/v1
kind: Controller
spec:
  provider:
    sim: { fleet: fleet.yaml }
";

#[test]
fn cli_plan_on_a_fleet_in_sync_exits_0_and_says_no_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("fleet.yaml"), IN_SYNC_FLEET).expect("write");
    std::fs::write(tmp.path().join("placement.yaml"), IN_SYNC_PLACEMENT).expect("write");
    let out = berth()
        .args(["plan", "--detailed-exitcode"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        "No changes: the fleet matches the desired state.\n"
    );

    let out = berth()
        .args(["plan", "--detailed-exitcode", "--output", "json"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    check_contract(&v);
    assert_eq!(v["inSync"], true);
    assert_eq!(v["actions"], serde_json::json!([]));
    assert_eq!(v["estimatedSeconds"], 0.0);
}

#[test]
fn cli_plan_with_an_invalid_spec_exits_1_and_points_at_the_error() {
    let (_tmp, dir) = scratch("lab");
    let web = dir.join("placement").join("web.yaml");
    let text = std::fs::read_to_string(&web).expect("read");
    // web-01's host is on line 18, its value at column 13.
    let line = text.lines().nth(17).expect("line 18");
    assert_eq!(
        line,
        "      host: hv03                      # (a) moves hv01 -> hv03 (live)"
    );
    std::fs::write(&web, text.replacen("host: hv03  ", "host: hv33  ", 1)).expect("write");

    let out = berth()
        .args(["plan", "--detailed-exitcode"])
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "no plan is printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.yaml:18:13"), "{err}");
    assert!(err.contains("hv33"), "{err}");
    assert!(
        !dir.join(".berth").exists(),
        "an invalid spec stops before the provider is opened"
    );
}

#[test]
fn cli_plan_reports_the_spec_not_an_early_look_at_the_world_when_the_spec_is_invalid() {
    let (_tmp, dir) = scratch("lab");
    // `plan` starts reading the first Controller's world (here a missing
    // one) while the rest of the spec loads; a second Controller makes the
    // spec invalid, and only that is reported.
    std::fs::write(
        dir.join("a-first.yaml"),
        "apiVersion: berth/v1\nkind: Controller\nspec:\n  provider:\n    sim: { fleet: nowhere.yaml }\n",
    )
    .expect("write");
    let out = berth().arg("plan").arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than one Controller document"), "{err}");
    assert!(!err.contains("nowhere"), "{err}");

    // Valid again, with the Controller's world missing: the look's error.
    std::fs::remove_file(dir.join("a-first.yaml")).expect("rm");
    std::fs::remove_file(dir.join("fleet.yaml")).expect("rm");
    let out = berth().arg("plan").arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fleet.yaml"), "{err}");
}
