//! The simulator, behaviour by behaviour, on paused tokio time.

use std::path::PathBuf;

use berth::provider::sim::{Event, EventKind, Sim, SimError};
use berth::provider::{ErrorClass, MoveKind, MoveRequest, Provider, WaitReason};
use berth::spec::{self, FleetSpec, VmOperation};

fn fleet_file(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("fleet.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: berth/v1\nkind: Fleet\nspec:\n{body}"),
    )
    .expect("write");
    path
}

fn fleet(body: &str) -> FleetSpec {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fleet_file(&dir, body);
    spec::load_fleet(&path).unwrap_or_else(|e| panic!("fleet invalid: {e}"))
}

fn mv(vm: &str, from: &str, to: &str) -> MoveRequest {
    MoveRequest {
        vm: vm.into(),
        from: from.into(),
        to: to.into(),
        kind: MoveKind::Live,
        storage_path: None,
    }
}

fn offline(vm: &str, from: &str, to: &str) -> MoveRequest {
    MoveRequest {
        kind: MoveKind::Offline,
        storage_path: None,
        ..mv(vm, from, to)
    }
}

/// `(t, event, vm)` triples, for compact assertions.
fn summary(journal: &[Event]) -> Vec<(f64, &'static str, String)> {
    journal
        .iter()
        .map(|e| {
            let (name, vm) = match &e.kind {
                EventKind::MigrationStarted { vm, .. } => ("migration_started", vm),
                EventKind::MigrationCompleted { vm, .. } => ("migration_completed", vm),
                EventKind::MigrationFailed { vm, .. } => ("migration_failed", vm),
                EventKind::AclAdded { vm, .. } => ("acl_added", vm),
                EventKind::AclRemoved { vm, .. } => ("acl_removed", vm),
                EventKind::AdapterConnected { vm, .. } => ("adapter_connected", vm),
                EventKind::AdapterDisconnected { vm, .. } => ("adapter_disconnected", vm),
                EventKind::VlanSet { vm, .. } => ("vlan_set", vm),
            };
            (e.t, name, vm.clone())
        })
        .collect()
}

const TWO_HOSTS: &str = "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
";

#[tokio::test(start_paused = true)]
async fn live_migration_lasts_five_seconds_plus_memory_over_rate() {
    let sim = Sim::in_memory(&fleet(&format!(
        "{TWO_HOSTS}  vms:\n    - {{ name: web-01, host: hv01, memoryGiB: 8 }}\n"
    )));
    let job = sim
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    let during = sim.observe().await.expect("observe");
    assert_eq!(during.vms["web-01"].operation, Some(VmOperation::Migrating));
    assert_eq!(during.vms["web-01"].migrating_to.as_deref(), Some("hv02"));
    sim.wait_job(&job).await.expect("completes");
    // 5 s + 8192 MiB / 1000 MiB/s
    assert_eq!(
        summary(&sim.journal()),
        vec![
            (0.0, "migration_started", "web-01".into()),
            (13.192, "migration_completed", "web-01".into())
        ]
    );
    let after = sim.observe().await.expect("observe");
    assert_eq!(after.vms["web-01"].host, "hv02");
    assert_eq!(after.vms["web-01"].operation, None);
}

#[tokio::test(start_paused = true)]
async fn rate_is_the_slower_of_the_two_hosts() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 64, migrationRateMiBps: 2000 }
    - { name: hv02, memoryGiB: 64, migrationRateMiBps: 500 }
  vms:
    - { name: a, host: hv01, memoryGiB: 1 }
",
    ));
    let job = sim
        .start_move(&mv("a", "hv01", "hv02"))
        .await
        .expect("started");
    sim.wait_job(&job).await.expect("completes");
    assert_eq!(
        sim.journal().last().map(|e| e.t),
        Some(5.0 + 1024.0 / 500.0)
    );
}

#[tokio::test(start_paused = true)]
async fn offline_moves_take_five_seconds_and_count_against_no_limit() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 64, maxMigrations: 0 }
    - { name: hv02, memoryGiB: 1, maxMigrations: 0 }
  vms:
    - { name: a, host: hv01, memoryGiB: 32, state: off }
    - { name: b, host: hv01, memoryGiB: 32, state: saved }
",
    ));
    let ja = sim
        .start_move(&offline("a", "hv01", "hv02"))
        .await
        .expect("a");
    let jb = sim
        .start_move(&offline("b", "hv01", "hv02"))
        .await
        .expect("b");
    sim.wait_job(&ja).await.expect("a completes");
    sim.wait_job(&jb).await.expect("b completes");
    let s = summary(&sim.journal());
    assert_eq!(s[2], (5.0, "migration_completed", "a".into()));
    assert_eq!(s[3], (5.0, "migration_completed", "b".into()));
}

#[tokio::test(start_paused = true)]
async fn requests_past_the_limit_wait_for_a_slot_counting_both_directions() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 256, maxMigrations: 2, migrationRateMiBps: 1024 }
    - { name: hv02, memoryGiB: 256, maxMigrations: 2, migrationRateMiBps: 1024 }
  vms:
    - { name: a, host: hv01, memoryGiB: 10 }
    - { name: b, host: hv01, memoryGiB: 10 }
    - { name: c, host: hv02, memoryGiB: 10 }
",
    ));
    let ja = sim.start_move(&mv("a", "hv01", "hv02")).await.expect("a");
    let jb = sim.start_move(&mv("b", "hv01", "hv02")).await.expect("b");
    // hv02 has 2 incoming: c going out is the third migration touching it.
    let jc = sim.start_move(&mv("c", "hv02", "hv01")).await.expect("c");
    for j in [&ja, &jb, &jc] {
        sim.wait_job(j).await.expect("completes");
    }
    let s = summary(&sim.journal());
    assert_eq!(s.iter().filter(|e| e.1 == "migration_started").count(), 3);
    // a and b take 15 s; c gets a slot only then and takes 15 s more.
    assert_eq!(s[3], (15.0, "migration_completed", "a".into()));
    assert_eq!(s[4], (15.0, "migration_completed", "b".into()));
    assert_eq!(s[5], (30.0, "migration_completed", "c".into()));
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_a_slot_longer_than_over_limit_wait_fails() {
    let sim = Sim::in_memory(&fleet(
        "  faults: { overLimitWait: 10s }
  hosts:
    - { name: hv01, memoryGiB: 256, maxMigrations: 1, migrationRateMiBps: 100 }
    - { name: hv02, memoryGiB: 256, maxMigrations: 4, migrationRateMiBps: 100 }
  vms:
    - { name: a, host: hv01, memoryGiB: 4 }
    - { name: b, host: hv01, memoryGiB: 4 }
",
    ));
    let ja = sim.start_move(&mv("a", "hv01", "hv02")).await.expect("a");
    let jb = sim.start_move(&mv("b", "hv01", "hv02")).await.expect("b");
    let err = sim.wait_job(&jb).await.expect_err("b gives up");
    assert_eq!(err.class, ErrorClass::Wait(WaitReason::HostBusy));
    sim.wait_job(&ja).await.expect("a completes");
    let s = summary(&sim.journal());
    assert_eq!(s[2], (10.0, "migration_failed", "b".into()));
    assert_eq!(s[3].1, "migration_completed");
    // b's reserved memory came back: hv02 now holds only a.
    let o = sim.observe().await.expect("observe");
    assert_eq!(o.memory_used()["hv02"], 4096);
}

#[tokio::test(start_paused = true)]
async fn backups_block_migration_and_show_in_observation() {
    let sim = Sim::in_memory(&fleet(&format!(
        "{TWO_HOSTS}  vms:\n    - {{ name: db-01, host: hv01, memoryGiB: 4, backups: [{{ at: 0s, for: 20m }}] }}\n"
    )));
    let o = sim.observe().await.expect("observe");
    assert_eq!(o.vms["db-01"].operation, Some(VmOperation::BackingUp));
    let job = sim
        .start_move(&mv("db-01", "hv01", "hv02"))
        .await
        .expect("requested");
    let err = sim.wait_job(&job).await.expect_err("backup in progress");
    assert_eq!(err.class, ErrorClass::Wait(WaitReason::BackupInProgress));
    tokio::time::sleep(std::time::Duration::from_secs(20 * 60)).await;
    assert_eq!(
        sim.observe().await.expect("observe").vms["db-01"].operation,
        None
    );
    let job = sim
        .start_move(&mv("db-01", "hv01", "hv02"))
        .await
        .expect("requested");
    sim.wait_job(&job).await.expect("moves after the backup");
    let s = summary(&sim.journal());
    assert_eq!(
        s[0..2],
        [
            (0.0, "migration_started", "db-01".into()),
            (0.0, "migration_failed", "db-01".into())
        ]
    );
    assert_eq!(s[2], (1200.0, "migration_started", "db-01".into()));
}

#[tokio::test(start_paused = true)]
async fn memory_is_reserved_on_the_destination_from_the_start() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 64 }
    - { name: hv02, memoryGiB: 12 }
  vms:
    - { name: a, host: hv01, memoryGiB: 8 }
    - { name: b, host: hv01, memoryGiB: 8 }
    - { name: c, host: hv01, memoryGiB: 8, state: off }
",
    ));
    let ja = sim.start_move(&mv("a", "hv01", "hv02")).await.expect("a");
    let jb = sim.start_move(&mv("b", "hv01", "hv02")).await.expect("b");
    let err = sim.wait_job(&jb).await.expect_err("no room for b");
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("not enough memory"), "{}", err.message);
    sim.wait_job(&ja).await.expect("a fits");
    // An off VM needs no memory.
    let jc = sim
        .start_move(&offline("c", "hv01", "hv02"))
        .await
        .expect("c");
    sim.wait_job(&jc).await.expect("c moves");
}

#[tokio::test(start_paused = true)]
async fn live_migration_between_cpu_vendors_fails_for_good_but_offline_works() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 64, cpuVendor: intel }
    - { name: hv02, memoryGiB: 64, cpuVendor: amd }
  vms:
    - { name: a, host: hv01, memoryGiB: 4 }
    - { name: b, host: hv01, memoryGiB: 4, state: off }
",
    ));
    let ja = sim.start_move(&mv("a", "hv01", "hv02")).await.expect("a");
    let err = sim.wait_job(&ja).await.expect_err("incompatible");
    assert_eq!(err.class, ErrorClass::Permanent);
    let jb = sim
        .start_move(&offline("b", "hv01", "hv02"))
        .await
        .expect("b");
    sim.wait_job(&jb).await.expect("offline crosses vendors");
}

#[tokio::test(start_paused = true)]
async fn a_destination_without_the_switch_fails_for_good() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Mgmt] }
  vms:
    - name: a
      host: hv01
      memoryGiB: 4
      networkAdapters: [{ name: Network Adapter, switch: Prod }]
",
    ));
    let ja = sim.start_move(&mv("a", "hv01", "hv02")).await.expect("a");
    let err = sim.wait_job(&ja).await.expect_err("no switch");
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("Prod"), "{}", err.message);
}

#[tokio::test(start_paused = true)]
async fn down_hosts_cannot_send_or_receive() {
    let sim = Sim::in_memory(&fleet(
        "  hosts:
    - { name: hv01, memoryGiB: 64 }
    - { name: hv02, memoryGiB: 64, down: true }
  vms:
    - { name: a, host: hv01, memoryGiB: 4 }
    - name: b
      host: hv02
      memoryGiB: 4
      networkAdapters: [{ name: n, acls: [] }]
",
    ));
    assert!(!sim.observe().await.expect("observe").hosts["hv02"].reachable);
    let ja = sim.start_move(&mv("a", "hv01", "hv02")).await.expect("a");
    assert_eq!(
        sim.wait_job(&ja).await.expect_err("down").class,
        ErrorClass::Unreachable
    );
    let acl = spec::Acl {
        direction: spec::Direction::Inbound,
        weight: 1,
        action: spec::AclAction::Allow,
        local_address: spec::AddressMatch::Any,
        remote_address: spec::AddressMatch::Any,
        local_port: spec::PortMatch::Any,
        remote_port: spec::PortMatch::Any,
        protocol: spec::ProtocolMatch::Any,
        stateful: false,
        idle_session_timeout: 0,
        isolation_id: 0,
    };
    let err = sim.add_acl("b", "n", &acl).await.expect_err("host down");
    assert_eq!(err.class, ErrorClass::Unreachable);
}

const ACL_FLEET: &str = "  faults: { dropAclsOnMigration: true, disconnectOnOfflineMove: true }
  hosts:
    - { name: hv01, memoryGiB: 64, switches: [Prod] }
    - { name: hv02, memoryGiB: 64, switches: [Prod] }
  vms:
    - name: web-01
      host: hv01
      memoryGiB: 2
      networkAdapters:
        - name: Network Adapter
          switch: Prod
          acls:
            - { action: allow, direction: both, weight: 10, localPort: \"443\", protocol: tcp }
    - name: build-01
      host: hv01
      memoryGiB: 2
      state: off
      networkAdapters:
        - { name: Network Adapter, switch: Prod }
";

#[tokio::test(start_paused = true)]
async fn acls_are_lost_in_a_move_and_offline_moves_disconnect() {
    let sim = Sim::in_memory(&fleet(ACL_FLEET));
    let j1 = sim
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("web");
    let j2 = sim
        .start_move(&offline("build-01", "hv01", "hv02"))
        .await
        .expect("build");
    sim.wait_job(&j1).await.expect("web moves");
    sim.wait_job(&j2).await.expect("build moves");
    let o = sim.observe().await.expect("observe");
    assert!(o.vms["web-01"].adapters[0].acls.is_empty());
    assert_eq!(
        o.vms["web-01"].adapters[0].switch.as_deref(),
        Some("Prod"),
        "live moves stay connected"
    );
    assert_eq!(
        o.vms["build-01"].adapters[0].switch, None,
        "offline move disconnects"
    );
    let names: Vec<_> = summary(&sim.journal())
        .into_iter()
        .map(|e| (e.1, e.2))
        .collect();
    assert!(names.contains(&("adapter_disconnected", "build-01".into())));
    assert_eq!(
        names.iter().filter(|e| e.0 == "acl_removed").count(),
        2,
        "inbound and outbound rule"
    );
}

#[tokio::test(start_paused = true)]
async fn acls_and_connections_can_be_put_back() {
    let sim = Sim::in_memory(&fleet(ACL_FLEET));
    let before = sim.observe().await.expect("observe").vms["web-01"].adapters[0]
        .acls
        .clone();
    let j = sim
        .start_move(&offline("build-01", "hv01", "hv02"))
        .await
        .expect("build");
    sim.wait_job(&j).await.expect("moves");
    sim.connect_adapter("build-01", "Network Adapter", "Prod", None)
        .await
        .expect("connect");
    let err = sim
        .connect_adapter("build-01", "Network Adapter", "Nope", None)
        .await
        .expect_err("no switch");
    assert_eq!(err.class, ErrorClass::Permanent);
    let j = sim
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("web");
    sim.wait_job(&j).await.expect("moves");
    for acl in &before {
        sim.add_acl("web-01", "Network Adapter", acl)
            .await
            .expect("add");
    }
    let dup = sim
        .add_acl("web-01", "Network Adapter", &before[0])
        .await
        .expect_err("duplicate");
    assert_eq!(dup.class, ErrorClass::Permanent);
    sim.set_vlan("web-01", "Network Adapter", 10)
        .await
        .expect("vlan");
    let o = sim.observe().await.expect("observe");
    assert_eq!(o.vms["web-01"].adapters[0].acls, before);
    assert_eq!(o.vms["web-01"].adapters[0].vlan_id, Some(10));
    assert_eq!(
        o.vms["build-01"].adapters[0].switch.as_deref(),
        Some("Prod")
    );
    sim.remove_acl(
        "web-01",
        "Network Adapter",
        before[0].direction,
        before[0].weight,
    )
    .await
    .expect("remove");
    assert_eq!(
        sim.observe().await.expect("observe").vms["web-01"].adapters[0]
            .acls
            .len(),
        before.len() - 1
    );
}

#[tokio::test(start_paused = true)]
async fn fail_next_migrations_fails_exactly_that_many_attempts() {
    let sim = Sim::in_memory(&fleet(&format!(
        "{TWO_HOSTS}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 1, failNextMigrations: 2 }}\n"
    )));
    for _ in 0..2 {
        let j = sim
            .start_move(&mv("a", "hv01", "hv02"))
            .await
            .expect("requested");
        let e = sim.wait_job(&j).await.expect_err("fails");
        assert_eq!(e.class, ErrorClass::Retryable);
    }
    let j = sim
        .start_move(&mv("a", "hv01", "hv02"))
        .await
        .expect("requested");
    sim.wait_job(&j).await.expect("third attempt succeeds");
}

async fn transient_outcomes(seed: u64) -> Vec<bool> {
    let sim = Sim::in_memory(&fleet(&format!(
        "  seed: {seed}\n  faults: {{ transientFailureRate: 0.5 }}\n{TWO_HOSTS}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 1 }}\n"
    )));
    let mut out = Vec::new();
    let mut at = "hv01";
    for _ in 0..40 {
        let to = if at == "hv01" { "hv02" } else { "hv01" };
        let j = sim.start_move(&mv("a", at, to)).await.expect("requested");
        let ok = sim.wait_job(&j).await.is_ok();
        if ok {
            at = to;
        }
        out.push(ok);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn transient_failures_follow_the_seed() {
    let a = transient_outcomes(7).await;
    assert_eq!(a, transient_outcomes(7).await, "same seed, same outcomes");
    assert_ne!(
        a,
        transient_outcomes(8).await,
        "another seed, other outcomes"
    );
    let failures = a.iter().filter(|ok| !**ok).count();
    assert!(
        (8..=32).contains(&failures),
        "about half of 40 fail, got {failures}"
    );
}

async fn scripted_journal() -> String {
    let sim = Sim::in_memory(&fleet(ACL_FLEET));
    let j1 = sim
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("web");
    let j2 = sim
        .start_move(&offline("build-01", "hv01", "hv02"))
        .await
        .expect("build");
    sim.wait_job(&j2).await.expect("build");
    sim.connect_adapter("build-01", "Network Adapter", "Prod", None)
        .await
        .expect("connect");
    sim.wait_job(&j1).await.expect("web");
    sim.journal()
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(start_paused = true)]
async fn the_same_operations_give_a_byte_identical_journal() {
    let first = scripted_journal().await;
    assert_eq!(first, scripted_journal().await);
    assert!(first.contains(r#""event":"migration_started""#), "{first}");
}

/// A saved world on two hosts: VM `a` (8 GiB) on hv01.
fn one_vm_world(dir: &tempfile::TempDir) -> PathBuf {
    fleet_file(
        dir,
        &format!("{TWO_HOSTS}  vms:\n    - {{ name: a, host: hv01, memoryGiB: 8 }}\n"),
    )
}

#[tokio::test(start_paused = true)]
async fn the_world_persists_between_runs_and_one_process_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = one_vm_world(&dir);
    {
        let sim = Sim::open(&path).expect("open");
        assert!(
            matches!(Sim::open(&path), Err(SimError::Locked { .. })),
            "second opener is refused"
        );
        let j = sim
            .start_move(&mv("a", "hv01", "hv02"))
            .await
            .expect("move");
        sim.wait_job(&j).await.expect("moves");
        sim.close().await.expect("close");
    }
    let journal = dir.path().join(".berth/events.jsonl");
    let lines = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(lines.lines().count(), 2);
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("line")).expect("json");
    assert_eq!(first["event"], "migration_started");
    assert_eq!(first["kind"], "live");
    assert_eq!(first["t"], 0.0);
    {
        let sim = Sim::open(&path).expect("reopen");
        let o = sim.observe().await.expect("observe");
        assert_eq!(o.vms["a"].host, "hv02", "the move persisted");
        assert_eq!(o.at, 13.192, "the clock resumes where it stopped");
        let j = sim
            .start_move(&mv("a", "hv02", "hv01"))
            .await
            .expect("move back");
        sim.wait_job(&j).await.expect("moves");
    }
    let lines = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(lines.lines().count(), 4, "the journal continues");
    assert!(berth::provider::sim::reset(&path).expect("reset"));
    assert!(!dir.path().join(".berth").exists());
    let sim = Sim::open(&path).expect("fresh");
    assert_eq!(sim.observe().await.expect("observe").vms["a"].host, "hv01");
}

#[tokio::test(start_paused = true)]
async fn a_changed_fleet_file_asks_for_a_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = one_vm_world(&dir);
    drop(Sim::open(&path).expect("open"));
    fleet_file(
        &dir,
        &format!("{TWO_HOSTS}  vms:\n    - {{ name: a, host: hv02, memoryGiB: 8 }}\n"),
    );
    let err = Sim::open(&path).err().expect("refused");
    assert!(err.to_string().contains("berth sim reset"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_move_is_observed_as_migrating_by_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = one_vm_world(&dir);
    {
        let sim = Sim::open(&path).expect("open");
        sim.start_move(&mv("a", "hv01", "hv02"))
            .await
            .expect("move");
        sim.close().await.expect("close");
    }
    let sim = Sim::open(&path).expect("reopen");
    let o = sim.observe().await.expect("observe");
    let job = o.vms["a"].job.clone().expect("a job to follow");
    assert_eq!(o.vms["a"].operation, Some(VmOperation::Migrating));
    sim.wait_job(&job).await.expect("it completes");
    assert_eq!(sim.observe().await.expect("observe").vms["a"].host, "hv02");
}

#[tokio::test(start_paused = true)]
async fn the_state_follows_the_journal_without_a_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = one_vm_world(&dir);
    let sim = Sim::open(&path).expect("open");
    sim.start_move(&mv("a", "hv01", "hv02"))
        .await
        .expect("move");
    // The save is deferred and written off the world's lock; it lands
    // without a close, and the world answers meanwhile.
    let state = dir.path().join(".berth/state.json");
    let lines = |state: &std::path::Path| -> Option<u64> {
        let text = std::fs::read_to_string(state).ok()?;
        let saved: serde_json::Value = serde_json::from_str(&text).ok()?;
        saved["journalLines"].as_u64()
    };
    let mut saved = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(sim.observe().await.expect("observe").vms["a"].host, "hv01");
        saved = lines(&state);
        if saved == Some(1) {
            break;
        }
    }
    assert_eq!(saved, Some(1), "the state accounts for the journal's line");
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("json");
    assert!(
        on_disk["world"].to_string().contains("migrat"),
        "the saved world has the move running: {}",
        on_disk["world"]
    );
}
