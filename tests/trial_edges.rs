//! Issue 16: what a first trial ran into. One or more tests per item of the
//! issue, named `itemN_...` after it: output hygiene (control bytes,
//! colour), fallbacks, the change summary, argument edges, simulated time,
//! indentation errors, help, and the documented `set-vlan` action.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use berth::plan::{self, ActionKind, Plan, Reason};
use berth::provider::sim::Sim;
use berth::provider::{Observed, Provider};
use berth::spec::{self, Desired};
use common::{Docs, dedent};

// ----------------------------------------------------------------- helpers

fn berth() -> Command {
    let mut cmd = Command::cargo_bin("berth").expect("the berth binary");
    cmd.env_remove("NO_COLOR").env_remove("RUST_LOG");
    cmd
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Bytes a terminal would act on: C0 controls but line feed, DEL, and the
/// UTF-8 forms of C1 controls.
fn control_bytes(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .filter(|c| c.is_control() && *c != '\n')
        .map(|c| c as u32 as u8)
        .collect()
}

/// A copy of one of the repository's examples in a fresh directory.
fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(name);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
        &dir,
    );
    (root, dir)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &to.join(name));
        } else {
            std::fs::copy(e.path(), to.join(name)).expect("copy");
        }
    }
}

/// A fleet and a placement (YAML bodies below `spec:`), planned in memory.
struct Case {
    desired: Desired,
    observed: Observed,
}

fn case(fleet: &str, placement: &str) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("fleet.yaml");
    std::fs::write(
        &f,
        format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{fleet}"),
    )
    .expect("write");
    let p = dir.path().join("placement.yaml");
    std::fs::write(
        &p,
        format!("apiVersion: berth/v1\nkind: Placement\nspec:\n{placement}"),
    )
    .expect("write");
    let fleet = spec::load_fleet(&f).unwrap_or_else(|e| panic!("fleet: {e}"));
    let desired = spec::load(&[p]).unwrap_or_else(|e| panic!("placement: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let observed = rt.block_on(async { Sim::in_memory(&fleet).observe().await.expect("observe") });
    Case { desired, observed }
}

fn plan_of(c: &Case) -> Plan {
    plan::plan(&c.desired, &c.observed)
}

fn moves(p: &Plan) -> Vec<(String, String, String, Reason)> {
    p.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Move {
                vm,
                from,
                to,
                reason,
                ..
            } => Some((vm.clone(), from.clone(), to.clone(), *reason)),
            _ => None,
        })
        .collect()
}

// ------------------------------------------- item 1: control bytes escaped

#[test]
fn item1_a_file_holding_nul_is_refused_as_binary_without_quoting_it() {
    let docs = Docs::new();
    let mut bytes =
        b"apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: hv01".to_vec();
    bytes.extend_from_slice(b"\0\x1b[2J\x07");
    bytes.extend(std::iter::repeat_n(b'A', 4096));
    docs.write_bytes("image.yaml", &bytes);
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = &e.diagnostics[0];
    assert_eq!((d.origin.loc.line, d.origin.loc.column), (5, 17));
    let shown = docs.render(&e);
    assert!(control_bytes(shown.as_bytes()).is_empty(), "{shown:?}");
    assert!(!shown.contains("AAAA"), "the file is not quoted: {shown}");
    insta::assert_snapshot!(shown);
}

#[test]
fn item1_control_characters_in_snippets_and_messages_are_escaped() {
    let docs = Docs::new();
    // A raw escape sequence in the source line, and one in a name written
    // with YAML's own escape (`\e`), which reaches the message.
    docs.write(
        "a.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: \"hv\\e]0;pwned\\a01\"\n",
    );
    docs.write_bytes(
        "b.yaml",
        b"apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: \"hv\x1b[31m02\"\n",
    );
    let e = docs.err();
    let shown = docs.render(&e);
    assert!(control_bytes(shown.as_bytes()).is_empty(), "{shown:?}");
    assert!(shown.contains("\\u{1b}"), "{shown}");
    insta::assert_snapshot!(shown);
    // The one-line form (logs, the status file) is escaped too.
    let line = e.to_string();
    assert!(control_bytes(line.as_bytes()).is_empty(), "{line:?}");
}

#[test]
fn item1_berth_validate_prints_no_control_bytes_for_hostile_files() {
    let docs = Docs::new();
    docs.write_bytes(
        "a.yaml",
        b"apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: \"hv\x1b[31m01\x07\"\n",
    );
    let mut blob = vec![0x7f, b'E', b'L', b'F', 0, 1, 2];
    blob.extend(std::iter::repeat_n(0x9b_u8, 2048));
    docs.write_bytes("blob.yaml", &blob);
    let out = berth()
        .arg("validate")
        .arg(docs.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(control_bytes(&out.stderr).is_empty(), "{:?}", stderr(&out));
    assert!(
        stderr(&out).contains("not a YAML text file"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).len() < 4096,
        "the blob is not quoted: {}",
        stderr(&out)
    );
}

#[test]
fn item1_plan_text_escapes_names_from_the_hosts() {
    let c = case(
        "  hosts:\n    - { name: hv01, memoryGiB: 64 }\n    - { name: hv02, memoryGiB: 64 }\n  vms:\n    - { name: a, host: hv02, memoryGiB: 8 }\n",
        "  hosts: [{ name: hv01 }, { name: hv02 }]\n  vms:\n    - { name: a, host: hv01 }\n",
    );
    let mut p = plan_of(&c);
    // Names observed on real hosts are not validated like the spec's.
    if let ActionKind::Move { vm, .. } = &mut p.actions[0].kind {
        *vm = "a\u{1b}]0;title\u{7}".to_string();
    }
    p.unmanaged.push("evil\u{1b}[2J\u{9b}".to_string());
    let style = berth::cli::plan_output::Style::new(false);
    let text = berth::cli::plan_output::text(&p, style);
    assert!(control_bytes(text.as_bytes()).is_empty(), "{text:?}");
    assert!(text.contains("a\\u{1b}]0;title\\u{7}"), "{text}");
    let md = berth::cli::plan_output::markdown(&p, None);
    assert!(control_bytes(md.as_bytes()).is_empty(), "{md:?}");
}

// ------------------------------------------------------- item 2: colour

#[test]
fn item2_colour_only_on_a_terminal_and_never_with_no_color() {
    use berth::cli::render::colour_with;
    use std::ffi::OsStr;
    assert!(colour_with(true, None));
    assert!(!colour_with(false, None), "not a terminal: no colour");
    assert!(!colour_with(true, Some(OsStr::new("1"))), "NO_COLOR=1");
    assert!(!colour_with(false, Some(OsStr::new("1"))));
    // no-color.org: an empty NO_COLOR does not count.
    assert!(colour_with(true, Some(OsStr::new(""))));
}

#[cfg(unix)]
fn watch_stderr(format: &str) -> Vec<u8> {
    use std::io::Read;
    use std::process::{Command as Std, Stdio};
    // A world already in sync: the first pass writes the status and no
    // move holds up the shutdown.
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("spec");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), dedent(text)).expect("write");
    };
    write(
        "fleet.yaml",
        "
        apiVersion: berth/v1
        kind: Fleet
        spec:
          hosts: [{ name: hv01, memoryGiB: 64 }]
          vms: [{ name: a, host: hv01, memoryGiB: 4 }]
        ",
    );
    write(
        "controller.yaml",
        "
        apiVersion: berth/v1
        kind: Controller
        spec:
          provider: { sim: { fleet: fleet.yaml } }
        ",
    );
    write(
        "placement.yaml",
        "
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts: [{ name: hv01 }]
          vms: [{ name: a, host: hv01 }]
        ",
    );
    let status = root.path().join("status.json");
    let log = root.path().join("watch.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Std::new(env!("CARGO_BIN_EXE_berth"))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .arg("watch")
        .arg(&dir)
        .arg("--status-file")
        .arg(&status)
        .arg("--log-format")
        .arg(format)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start berth watch");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !status.exists() {
        assert!(std::time::Instant::now() < deadline, "no status file");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Std::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let code = child.wait().expect("wait");
    assert_eq!(code.code(), Some(0));
    let mut bytes = Vec::new();
    std::fs::File::open(&log)
        .expect("open log")
        .read_to_end(&mut bytes)
        .expect("read log");
    bytes
}

#[cfg(unix)]
#[test]
fn item2_watch_logs_redirected_to_a_file_carry_no_ansi_codes() {
    for format in ["text", "json"] {
        let log = watch_stderr(format);
        let text = String::from_utf8_lossy(&log);
        assert!(text.contains("watching"), "{format}: {text}");
        assert!(
            !log.contains(&0x1b),
            "{format} log has ANSI codes: {text:?}"
        );
    }
}

// ------------------------------------------------------ item 3: fallbacks

const FB_FLEET: &str = "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 20, switches: [Prod] }
    - { name: hv03, memoryGiB: 64, switches: [Mgmt] }
    - { name: hv04, memoryGiB: 64, switches: [Prod] }
    - { name: hv05, memoryGiB: 64, switches: [Prod] }
  vms:
    - name: web-01
      host: hv01
      memoryGiB: 16
      networkAdapters: [{ name: eth0, switch: Prod }]
    - { name: filler, host: hv02, memoryGiB: 8 }
";

#[test]
fn item3_full_fallbacks_block_the_vm_naming_each_fallback_and_what_it_lacks() {
    let c = case(
        FB_FLEET,
        "  hosts: [{ name: hv01, maintenance: true }, { name: hv02 }, { name: hv03 }, { name: hv04, maintenance: true }, { name: hv05 }]
  vms:
    - { name: web-01, host: hv01, fallback: [hv02, hv03, hv04] }
",
    );
    let p = plan_of(&c);
    // hv05 has room, but web-01 declares where it may wait: only there.
    assert_eq!(moves(&p), vec![]);
    assert_eq!(p.blocked.len(), 1, "{:?}", p.blocked);
    assert_eq!(
        p.blocked[0].reason,
        "no fallback can take it while hv01 is in maintenance: \
         hv02 has 12 GiB free of the 16 GiB it needs; \
         hv03 has no virtual switch Prod; \
         hv04 is in maintenance too"
    );
}

#[test]
fn item3_a_vm_blocked_off_its_fallbacks_keeps_its_memory_where_it_stays() {
    // web-01 waits on hv05 (not a fallback: put there by hand); its only
    // fallback hv02 is too small, so it is blocked and stays on hv05.
    // The unmanaged VM evacuated from hv01 must not count on web-01's
    // memory on hv05 being free.
    let fleet = "  hosts:
    - { name: hv01, memoryGiB: 64 }
    - { name: hv02, memoryGiB: 8 }
    - { name: hv05, memoryGiB: 48 }
    - { name: hv06, memoryGiB: 26 }
  vms:
    - { name: web-01, host: hv05, memoryGiB: 32 }
    - { name: u, host: hv01, memoryGiB: 20 }
";
    let c = case(
        fleet,
        "  hosts: [{ name: hv01, maintenance: true }, { name: hv02 }, { name: hv05 }, { name: hv06 }]
  vms:
    - { name: web-01, host: hv01, fallback: [hv02] }
",
    );
    let p = plan_of(&c);
    assert_eq!(
        p.blocked.iter().map(|b| b.vm.as_str()).collect::<Vec<_>>(),
        ["web-01"]
    );
    // With web-01's 32 GiB counted, hv05 has 16 GiB free: u (20) goes to
    // hv06, not to hv05, which looks emptier when web-01 is forgotten.
    assert_eq!(
        moves(&p),
        vec![(
            "u".into(),
            "hv01".into(),
            "hv06".into(),
            Reason::Maintenance
        )]
    );
}

#[test]
fn item3_a_fallback_with_room_is_used_in_order() {
    let c = case(
        FB_FLEET,
        "  hosts: [{ name: hv01, maintenance: true }, { name: hv02 }, { name: hv03 }, { name: hv04 }, { name: hv05 }]
  vms:
    - { name: web-01, host: hv01, fallback: [hv02, hv05, hv04] }
",
    );
    let p = plan_of(&c);
    assert_eq!(
        moves(&p),
        vec![(
            "web-01".into(),
            "hv01".into(),
            "hv05".into(),
            Reason::Maintenance
        )]
    );
}

#[test]
fn item3_without_fallback_the_planner_chooses_a_host_with_room() {
    let c = case(
        FB_FLEET,
        "  hosts: [{ name: hv01, maintenance: true }, { name: hv02 }, { name: hv03 }, { name: hv04 }, { name: hv05 }]
  vms:
    - { name: web-01, host: hv01 }
",
    );
    let p = plan_of(&c);
    let m = moves(&p);
    assert_eq!(m.len(), 1, "{p:?}");
    // Not hv02 (too small) nor hv03 (no Prod switch): hv04 or hv05, equal.
    assert!(["hv04", "hv05"].contains(&m[0].2.as_str()), "{m:?}");
    assert_eq!(m[0].3, Reason::Maintenance);
    assert!(p.blocked.is_empty());
}

#[test]
fn item3_coming_home_from_a_fallback_is_labelled_return() {
    let fleet = FB_FLEET.replace("host: hv01\n      memoryGiB", "host: hv05\n      memoryGiB");
    let c = case(
        &fleet,
        "  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }, { name: hv04 }, { name: hv05 }]
  vms:
    - { name: web-01, host: hv01, fallback: [hv02, hv05] }
",
    );
    assert_eq!(
        moves(&plan_of(&c)),
        vec![(
            "web-01".into(),
            "hv05".into(),
            "hv01".into(),
            Reason::Return
        )]
    );
}

// ---------------------------------------------- item 4: change summary

#[test]
fn item4_change_summary_counts_host_and_policy_changes() {
    let load = |text: &str| {
        let docs = Docs::new();
        docs.write("p.yaml", text);
        docs.ok()
    };
    let base = load(
        "
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts: [{ name: hv01 }, { name: hv02 }]
          vms: [{ name: a, host: hv01 }]
        ",
    );
    let maintenance = load(
        "
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts: [{ name: hv01, maintenance: true }, { name: hv02 }]
          vms: [{ name: a, host: hv01 }]
        ",
    );
    let policy_and_vm = load(
        "
        apiVersion: berth/v1
        kind: Placement
        spec:
          policy: { maxParallelMigrations: 1 }
          hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]
          vms: [{ name: a, host: hv02 }, { name: b, host: hv01 }]
        ",
    );
    let summary = |a: &Desired, b: &Desired| spec::SpecChanges::between(a, b).to_string();
    let flip = summary(&base, &maintenance);
    assert!(
        flip.contains("hosts: 0 added, 1 changed, 0 removed"),
        "{flip}"
    );
    insta::assert_snapshot!(
        [
            format!("maintenance on:  {flip}"),
            format!("maintenance off: {}", summary(&maintenance, &base)),
            format!("policy and VMs:  {}", summary(&base, &policy_and_vm)),
            format!("nothing:         {}", summary(&base, &base)),
        ]
        .join("\n")
    );
}

// ------------------------------------------------- item 5: argument edges

#[test]
fn item5_max_moves_0_is_refused() {
    let (_root, dir) = example("lab");
    let out = berth()
        .arg("apply")
        .arg(&dir)
        .args(["--auto-approve", "--max-moves", "0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stderr(&out));
    assert!(!dir.join(".berth").exists(), "nothing ran");
}

#[test]
fn item5_apply_help_offers_only_text_and_json() {
    let out = berth().args(["apply", "--help"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    assert!(
        help.contains("- text:") && help.contains("- json:"),
        "{help}"
    );
    assert!(!help.contains("markdown"), "{help}");
    let out = berth()
        .args(["apply", "x", "--output", "markdown"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("[possible values: text, json]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn item5_corrupt_state_hint_names_the_fleet_file() {
    let (_root, dir) = example("lab");
    std::fs::create_dir_all(dir.join(".berth")).expect("mkdir");
    std::fs::write(dir.join(".berth/state.json"), "{ not json").expect("write");
    let out = berth().arg("plan").arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let fleet = dir.join("fleet.yaml");
    let want = format!("run `berth sim reset {}` to start over", fleet.display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
fn item5_apply_summary_says_1_reconnect_not_1_reconnects() {
    let docs = Docs::new();
    docs.write(
        "fleet.yaml",
        "
        apiVersion: berth/v1
        kind: Fleet
        spec:
          hosts: [{ name: hv01, memoryGiB: 64, switches: [Prod] }]
          vms:
            - name: a
              host: hv01
              memoryGiB: 4
              state: off
              networkAdapters: [{ name: eth0, switch: Prod, connected: false }]
        ",
    );
    docs.write(
        "placement.yaml",
        "
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts: [{ name: hv01 }]
          vms:
            - name: a
              host: hv01
              networkAdapters: [{ name: eth0, switch: Prod }]
        ",
    );
    let out = berth()
        .arg("apply")
        .arg(docs.path().join("placement.yaml"))
        .arg("--provider")
        .arg(format!("sim:{}", docs.path().join("fleet.yaml").display()))
        .arg("--auto-approve")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("0 moves (0 attempts, 0 failed), 0 ACL changes, 1 reconnect in "),
        "{text}"
    );
}

// --------------------------------------------- item 6: simulated time

#[test]
fn item6_apply_labels_simulated_time_and_shows_the_wall_clock() {
    let (_root, dir) = example("lab");
    let out = berth()
        .arg("apply")
        .arg(&dir)
        .arg("--auto-approve")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let last = text
        .lines()
        .find(|l| l.starts_with("Apply complete"))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    // "... in 11m11s simulated (0.02 s)."
    let (_, tail) = last.rsplit_once(" in ").expect("a duration");
    let (sim, wall) = tail.split_once(" simulated (").expect("labelled simulated");
    assert!(sim.ends_with('s') && !sim.is_empty(), "{last}");
    let wall = wall.strip_suffix(" s).").expect("wall seconds");
    let secs: f64 = wall.parse().expect("a number of seconds");
    assert!(secs >= 0.0 && wall.split_once('.').is_some_and(|(_, f)| f.len() == 2));
}

#[test]
fn item6_elapsed_text_without_the_simulator_is_plain() {
    use berth::cli::render::elapsed;
    assert_eq!(elapsed(671.0, None), "11m11s");
    assert_eq!(
        elapsed(671.0, Some(std::time::Duration::from_millis(20))),
        "11m11s simulated (0.02 s)"
    );
}

// --------------------------------------- item 9: mis-indented fields

#[test]
fn item9_a_misindented_host_points_at_its_line_with_an_indentation_hint() {
    for (name, vms) in [
        // One column short of the entry's fields: a syntax error once the
        // parser gets there, but "missing field" came first.
        (
            "item9_short",
            "  vms:\n    - name: web-01\n     host: hv01\n",
        ),
        // Level with the dash.
        ("item9_dash", "  vms:\n    - name: web-01\n    host: hv01\n"),
        // Level with the parent's keys: a field of `spec`.
        ("item9_parent", "  vms:\n  - name: web-01\n  host: hv01\n"),
    ] {
        let docs = Docs::new();
        docs.write_bytes(
            &format!("{name}.yaml"),
            format!(
                "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: hv01\n{vms}"
            )
            .as_bytes(),
        );
        let e = docs.err();
        assert_eq!(e.diagnostics.len(), 1, "{name}: {e}");
        let d = &e.diagnostics[0];
        assert_eq!(d.origin.loc.line, 8, "{name}: points at the host line: {e}");
        assert!(d.message.contains("is indented less"), "{name}: {e}");
        assert!(
            d.help
                .as_deref()
                .is_some_and(|h| h.contains("indent `host` more"))
        );
        insta::assert_snapshot!(name, docs.render(&e));
    }
}

#[test]
fn item9_a_field_indented_too_deep_gets_an_indentation_hint() {
    let docs = Docs::new();
    docs.write_bytes(
        "deep.yaml",
        b"apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n    - name: hv01\n  vms:\n    - name: web-01\n        host: hv01\n",
    );
    let e = docs.err();
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = &e.diagnostics[0];
    assert_eq!(d.origin.loc.line, 8, "{e}");
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("indentation")),
        "{e}"
    );
}

// ------------------------------------------------------------ item 10: help

const COMMANDS: [&[&str]; 8] = [
    &[],
    &["validate"],
    &["plan"],
    &["apply"],
    &["watch"],
    &["observe"],
    &["schema"],
    &["sim", "reset"],
];

#[test]
fn item10_every_commands_help_has_examples_and_exit_codes() {
    for cmd in COMMANDS {
        let out = berth().args(cmd).arg("--help").output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        let help = stdout(&out);
        assert!(help.contains("\nExamples:\n"), "{cmd:?}: {help}");
        let examples = help
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .take_while(|l| !l.is_empty())
            .filter(|l| l.contains("berth ") || l.contains("rm -r"))
            .count();
        assert!((2..=3).contains(&examples), "{cmd:?}: {examples} examples");
        for code in [
            "    0  success",
            "    1  error",
            "    2  `plan --detailed-exitcode`",
            "  130  interrupted",
        ] {
            assert!(help.contains(code), "{cmd:?} lacks {code:?}: {help}");
        }
    }
    let plan = stdout(&berth().args(["plan", "--help"]).output().expect("run"));
    let tail = plan.split("\nExamples:\n").nth(1).unwrap_or("");
    insta::assert_snapshot!(format!("Examples:\n{tail}"));
}

#[test]
fn item10_help_examples_name_files_that_exist() {
    // Every `examples/...` path the help shows is in the repository.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for cmd in COMMANDS {
        let help = stdout(&berth().args(cmd).arg("--help").output().expect("run"));
        for word in help.split_whitespace() {
            if let Some(path) = word.strip_prefix("sim:").or(Some(word))
                && path.starts_with("examples/")
                && !path.contains("/.berth")
            {
                let path = path.trim_end_matches(['.', ',', ')']);
                assert!(root.join(path).exists(), "{cmd:?}: {path} does not exist");
            }
        }
    }
}

#[test]
fn item10_observe_without_a_path_or_provider_says_how_to_give_one() {
    let out = berth().arg("observe").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stderr(&out));
}

// ------------------------------------- item 11: set-vlan and observe docs

fn reference() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md"))
        .expect("docs/reference.md")
}

#[test]
fn item11_set_vlan_json_matches_the_reference() {
    let docs = Docs::new();
    docs.write(
        "fleet.yaml",
        "
        apiVersion: berth/v1
        kind: Fleet
        spec:
          hosts: [{ name: hv01, memoryGiB: 64, switches: [Prod] }]
          vms:
            - name: db-01
              host: hv01
              memoryGiB: 4
              networkAdapters: [{ name: Network Adapter, switch: Prod, vlanId: 10 }]
        ",
    );
    docs.write(
        "placement.yaml",
        "
        apiVersion: berth/v1
        kind: Placement
        spec:
          hosts: [{ name: hv01 }]
          vms:
            - name: db-01
              host: hv01
              networkAdapters: [{ name: Network Adapter, vlanId: 20 }]
        ",
    );
    let out = berth()
        .arg("plan")
        .arg(docs.path().join("placement.yaml"))
        .arg("--provider")
        .arg(format!("sim:{}", docs.path().join("fleet.yaml").display()))
        .args(["--output", "json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let action = &plan["actions"][0];
    assert_eq!(action["type"], "set-vlan", "{plan}");
    assert_eq!(action["vlanId"], 20);
    // The example in docs/reference.md has the same fields and values.
    let text = reference();
    let start = text
        .find("{\"id\": 4, \"type\": \"set-vlan\"")
        .expect("a set-vlan example in docs/reference.md");
    let end = start + text[start..].find('}').expect("end of the example") + 1;
    let documented: serde_json::Value =
        serde_json::from_str(&text[start..end]).expect("the example is JSON");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&documented), keys(action));
    for k in ["vm", "adapter", "vlanId", "reason", "after"] {
        assert_eq!(documented[k], action[k], "{k}");
    }
    let concepts =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/concepts.md"))
            .expect("docs/concepts.md");
    assert!(concepts.contains("`set-vlan`"), "concepts explain set-vlan");
}

#[test]
fn item11_observe_shows_network_adapters_empty_for_a_vm_without_adapters() {
    let docs = Docs::new();
    docs.write(
        "fleet.yaml",
        "
        apiVersion: berth/v1
        kind: Fleet
        spec:
          hosts: [{ name: hv01, memoryGiB: 64 }]
          vms: [{ name: bare-01, host: hv01, memoryGiB: 4 }]
        ",
    );
    let out = berth()
        .arg("observe")
        .arg("--provider")
        .arg(format!("sim:{}", docs.path().join("fleet.yaml").display()))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let yaml = stdout(&out);
    assert!(yaml.contains("networkAdapters: []"), "{yaml}");
    // What it means is documented.
    let text = reference();
    assert!(
        text.contains("`networkAdapters: []`"),
        "documented in reference.md"
    );
    // And the output is a valid document.
    let again = Docs::new();
    again.write_bytes("observed.yaml", dedent(&yaml).as_bytes());
    let d = again.ok();
    assert_eq!(d.vms["bare-01"].adapters.as_deref(), Some(&[][..]));
}
