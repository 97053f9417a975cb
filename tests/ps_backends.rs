//! The Hyper-V and SCVMM providers end to end against the fake PowerShell:
//! what they send (scripts, targets, arguments), how they read the answers,
//! how they follow jobs, and that no name can ever become code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth::provider::hyperv::HyperV;
use berth::provider::powershell::{SessionConfig, scripts};
use berth::provider::scvmm::Scvmm;
use berth::provider::{ErrorClass, MoveKind, MoveRequest, Provider, WaitReason};
use berth::spec::{
    Acl, AclAction, AddressMatch, Direction, HyperVSettings, PortMatch, ProtocolMatch,
    ScvmmSettings, ShellSettings, Transport,
};
use serde_json::{Value, json};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-pwsh");

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/powershell/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(behaviour: Value) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("behaviour.json"), behaviour.to_string()).expect("write");
        Fake { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log.jsonl")
    }

    fn config(&self, transport: Transport) -> SessionConfig {
        let mut c = SessionConfig::new(FAKE, transport, Duration::from_secs(20));
        c.env = vec![
            ("FAKE_PWSH_LOG".into(), path_text(&self.log())),
            (
                "FAKE_PWSH_BEHAVIOUR".into(),
                path_text(&self.dir.path().join("behaviour.json")),
            ),
        ];
        c
    }

    fn hyperv(&self, hosts: &[&str], transport: Transport) -> HyperV {
        self.hyperv_with(hosts, transport, BTreeMap::new())
    }

    fn hyperv_with(
        &self,
        hosts: &[&str],
        transport: Transport,
        paths: BTreeMap<String, String>,
    ) -> HyperV {
        let settings = HyperVSettings {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            destination_storage_path: None,
            destination_storage_paths: paths,
            shell: ShellSettings {
                transport,
                shell: FAKE.into(),
                call_timeout: Duration::from_secs(20),
            },
        };
        HyperV::with_session(settings, self.config(transport))
            .with_poll_interval(Duration::from_millis(1))
            .with_cluster_grace(Duration::ZERO)
    }

    fn scvmm(&self, transport: Transport) -> Scvmm {
        let settings = ScvmmSettings {
            server: "vmm01".into(),
            destination_storage_path: Some("C:\\ClusterStorage\\Volume1".into()),
            shell: ShellSettings {
                transport,
                shell: FAKE.into(),
                call_timeout: Duration::from_secs(20),
            },
        };
        Scvmm::with_session(settings, self.config(transport))
            .with_poll_interval(Duration::from_millis(1))
    }

    /// Every line the fake read, in order: argv, hello, requests (across
    /// restarts).
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn hellos(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("marker").is_some())
            .collect()
    }

    fn requests(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("script").is_some())
            .collect()
    }

    fn requests_for(&self, script: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["script"] == script)
            .collect()
    }
}

fn path_text(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
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

fn acl() -> Acl {
    Acl {
        direction: Direction::Inbound,
        weight: 10,
        action: AclAction::Allow,
        local_address: AddressMatch::Any,
        remote_address: AddressMatch::Net("10.0.0.0/8".parse().unwrap()),
        local_port: PortMatch::Range(443, 443),
        remote_port: PortMatch::Range(49152, 65535),
        protocol: ProtocolMatch::Number(6),
        stateful: true,
        idle_session_timeout: 30,
        isolation_id: 4,
    }
}

// ------------------------------------------------------------ Hyper-V

#[tokio::test]
async fn observe_asks_every_host_and_maps_the_answers() {
    let fake = Fake::new(json!({
        "hv_observe": [
            {"reply": fixture("hv_observe_ps51.json")},
            {"reply": fixture("hv_observe_ps7.json")},
            {"reply": {"vms": {"Name": "mig-01", "State": 9, "PrimaryOperationalStatus": 2}}}
        ]
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let observed = p.observe().await.expect("observe");
    assert_eq!(observed.hosts.keys().collect::<Vec<_>>(), ["hv01", "hv02"]);
    assert_eq!(
        observed.hosts["hv02"].cpu_vendor,
        berth::spec::CpuVendor::Amd
    );
    assert_eq!(observed.vms.len(), 5);
    assert_eq!(observed.vms["solo"].host, "hv02");
    // A migration already running (seen on the host) is followed, not re-issued.
    let mig = &observed.vms["mig-01"];
    assert_eq!(mig.migrating_to.as_deref(), Some("hv02"));
    let job = mig.job.clone().expect("a job to follow");
    p.wait_job(&job).await.expect("the VM arrived");
    p.close().await.expect("close");

    let calls = fake.requests_for("hv_observe");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["target"], "hv01");
    assert_eq!(calls[0]["args"]["vm"], Value::Null);
    assert_eq!(calls[1]["target"], "hv02");
    assert_eq!(calls[2]["target"], "hv02", "the destination is checked");
    assert_eq!(calls[2]["args"]["vm"], "mig-01");
    assert_eq!(fake.hellos().len(), 1, "one session for everything");
    assert_eq!(fake.hellos()[0]["transport"], "winrm");
}

#[tokio::test]
async fn an_unreachable_host_is_reported_and_the_rest_observed() {
    let fake = Fake::new(json!({
        "hv_observe": [
            {"reply": fixture("hv_observe_ps51.json")},
            {"error": {"category": "OpenError", "message": "Connecting to remote server hv02 failed: WinRM cannot complete the operation.", "fullyQualifiedErrorId": "PSSessionOpenFailed"}}
        ]
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let observed = p.observe().await.expect("observe");
    assert!(observed.hosts["hv01"].reachable);
    assert!(!observed.hosts["hv02"].reachable);
}

#[tokio::test]
async fn when_no_host_answers_observe_fails_with_every_reason() {
    let fake = Fake::new(json!({
        "hv_observe": {"error": {"category": "OpenError", "message": "WinRM cannot complete the operation.", "fullyQualifiedErrorId": "PSSessionOpenFailed"}}
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let e = p.observe().await.expect_err("nothing answered");
    assert_eq!(e.class, ErrorClass::Unreachable);
    assert!(
        e.message.contains("hv01") && e.message.contains("hv02"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_missing_shell_fails_observe_clearly() {
    let settings = HyperVSettings {
        hosts: vec!["hv01".into()],
        shell: ShellSettings {
            shell: "/nonexistent/berth-test/pwsh".into(),
            ..ShellSettings::default()
        },
        ..HyperVSettings::default()
    };
    let p = HyperV::new(settings);
    let e = p.observe().await.expect_err("no shell");
    assert!(
        e.message.contains("cannot start PowerShell"),
        "{}",
        e.message
    );
    assert!(p.describe().contains("hv01"));
}

#[tokio::test]
async fn a_move_is_started_as_a_job_and_followed_to_its_end() {
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "job", "jobId": 5}},
        "hv_job": [
            {"reply": {"state": "running", "error": null}},
            {"reply": {"state": "running", "error": null}},
            {"reply": {"state": "completed", "error": null}}
        ],
        "hv_observe": {"reply": {"vms": {"Name": "web-01", "State": 2, "PrimaryOperationalStatus": 2}}}
    }));
    let mut paths = BTreeMap::new();
    paths.insert("hv02".to_string(), "D:\\VMs".to_string());
    let p = fake.hyperv_with(&["hv01", "hv02"], Transport::Local, paths);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    p.wait_job(&job).await.expect("completed");
    let moves = fake.requests_for("hv_move");
    assert_eq!(moves.len(), 1);
    assert_eq!(
        moves[0]["target"], "hv01",
        "Move-VM runs against the source"
    );
    assert_eq!(
        moves[0]["args"],
        json!({"vm": "web-01", "to": "hv02", "includeStorage": true, "storagePath": "D:\\VMs\\web-01", "clusterMigrationType": "Live"}),
        "the settings' path is the default folder, each VM in its own"
    );
    let checks = fake.requests_for("hv_observe");
    assert_eq!(
        (checks[0]["target"].clone(), checks[0]["args"]["vm"].clone()),
        (json!("hv02"), json!("web-01")),
        "a completed job is confirmed on the destination"
    );
    let polls = fake.requests_for("hv_job");
    assert_eq!(polls.len(), 3);
    assert!(
        polls
            .iter()
            .all(|r| r["args"]["jobId"] == 5 && r["target"] == "hv01")
    );
    assert_eq!(fake.hellos()[0]["transport"], "local");
}

#[tokio::test]
async fn an_offline_move_without_storage_paths_keeps_the_storage() {
    let fake = Fake::new(json!({"hv_move": {"reply": {"kind": "cluster", "jobId": null}}}));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::Local);
    let mut request = mv("db-01", "hv01", "hv02");
    request.kind = MoveKind::Offline;
    p.start_move(&request).await.expect("started");
    let args = &fake.requests_for("hv_move")[0]["args"];
    assert_eq!(args["includeStorage"], false);
    assert_eq!(args["storagePath"], Value::Null);
    assert_eq!(args["clusterMigrationType"], "Quick");
}

#[tokio::test]
async fn a_failed_job_carries_its_error_record_and_class() {
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "job", "jobId": 8}},
        "hv_job": {"reply": {"state": "failed", "error": {
            "category": "InvalidOperation",
            "message": "The virtual machine 'web-01' is using processor-specific features not supported on physical computer 'HV02'.",
            "fullyQualifiedErrorId": "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM"
        }}}
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    let e = p.wait_job(&job).await.expect_err("failed");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("processor-specific"), "{}", e.message);
}

#[tokio::test]
async fn a_move_refused_during_a_backup_is_a_wait() {
    let fake = Fake::new(json!({
        "hv_move": {"error": {
            "category": "InvalidOperation",
            "message": "The operation cannot be performed while the virtual machine is being backed up.",
            "fullyQualifiedErrorId": "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM"
        }}
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let e = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::Wait(WaitReason::BackupInProgress));
}

#[tokio::test]
async fn a_session_lost_mid_wait_is_followed_by_watching_the_vm() {
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "job", "jobId": 5}},
        "hv_job": {"crash": true, "exitCode": 9},
        "hv_observe": {"reply": {"vms": {"Name": "web-01", "State": 2, "PrimaryOperationalStatus": 2}}}
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    p.wait_job(&job).await.expect("the VM runs on hv02");
    assert_eq!(p.session().generations().await, 2, "restarted once");
    let checks = fake.requests_for("hv_observe");
    assert_eq!(checks[0]["target"], "hv02");
    assert_eq!(checks[0]["args"]["vm"], "web-01");
    assert_eq!(
        fake.requests_for("hv_job").len(),
        1,
        "the lost job is not asked for again"
    );
}

#[tokio::test]
async fn a_move_that_ends_with_the_vm_still_on_its_source_is_retryable() {
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "cluster", "jobId": null}},
        "hv_observe": [
            {"reply": {"vms": null}},
            {"reply": {"vms": {"Name": "web-01", "State": 2, "SecondaryOperationalStatus": 32774}}},
            {"reply": {"vms": null}},
            {"reply": {"vms": {"Name": "web-01", "State": 2}}}
        ]
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    let e = p.wait_job(&job).await.expect_err("stayed");
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(e.message.contains("still on hv01"), "{}", e.message);
}

#[tokio::test]
async fn adapter_changes_send_every_acl_field() {
    let fake = Fake::new(json!({}));
    let p = fake.hyperv(&["hv01"], Transport::Local);
    p.add_acl("web-01", "Network Adapter", &acl())
        .await
        .expect("add");
    let mut any = acl();
    any.remote_address = AddressMatch::Any;
    any.local_port = PortMatch::Any;
    any.remote_port = PortMatch::Any;
    any.protocol = ProtocolMatch::Any;
    any.direction = Direction::Outbound;
    any.action = AclAction::Deny;
    p.add_acl("web-01", "Network Adapter", &any)
        .await
        .expect("add");
    p.remove_acl("web-01", "Network Adapter", Direction::Outbound, 20)
        .await
        .expect("remove");
    p.connect_adapter("web-01", "Network Adapter", "Prod", Some("ignored"))
        .await
        .expect("connect");
    p.set_vlan("web-01", "Network Adapter", 42)
        .await
        .expect("vlan");
    let adds = fake.requests_for("hv_add_acl");
    assert_eq!(
        adds[0]["args"]["acl"],
        json!({
            "action": "Allow", "direction": "Inbound",
            "localIPAddress": null, "remoteIPAddress": "10.0.0.0/8",
            "localPort": "443", "remotePort": "49152-65535",
            "protocol": "TCP", "weight": 10, "stateful": true,
            "idleSessionTimeout": 30, "isolationId": 4
        })
    );
    assert_eq!(adds[0]["args"]["adapter"], "Network Adapter");
    assert_eq!(adds[0]["target"], "hv01");
    let a = &adds[1]["args"]["acl"];
    assert_eq!(
        (a["action"].clone(), a["direction"].clone()),
        (json!("Deny"), json!("Outbound"))
    );
    for k in ["remoteIPAddress", "localPort", "remotePort", "protocol"] {
        assert_eq!(a[k], Value::Null, "ANY is left out ({k})");
    }
    assert_eq!(
        fake.requests_for("hv_remove_acl")[0]["args"],
        json!({"vm": "web-01", "adapter": "Network Adapter", "direction": "Outbound", "weight": 20})
    );
    assert_eq!(
        fake.requests_for("hv_connect")[0]["args"],
        json!({"vm": "web-01", "adapter": "Network Adapter", "switch": "Prod"})
    );
    assert_eq!(fake.requests_for("hv_set_vlan")[0]["args"]["vlanId"], 42);
}

#[tokio::test]
async fn a_vm_that_moved_is_found_again_before_its_adapter_is_changed() {
    let fake = Fake::new(json!({
        "hv_observe": [
            {"reply": {"vms": {"Name": "web-01", "State": 2}}},
            {"reply": {"vms": null}},
            {"reply": {"vms": {"Name": "web-01", "State": 2}}}
        ],
        "hv_set_vlan": [
            {"error": {"category": "ObjectNotFound", "message": "no VM named \"web-01\" on this host", "fullyQualifiedErrorId": "BerthVmNotFound"}},
            {"reply": {"vlanId": 7}}
        ]
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    p.set_vlan("web-01", "Network Adapter", 7)
        .await
        .expect("found again");
    let sets = fake.requests_for("hv_set_vlan");
    assert_eq!(sets[0]["target"], "hv01");
    assert_eq!(sets[1]["target"], "hv02");
}

// ------------------------------------------------------------ injection

const NASTY: &[&str] = &[
    "it's \"quoted\"",
    "$(Remove-Item -Recurse -Force C:\\)",
    "back`tick`n`$x",
    "semi; Stop-Computer -Force",
    "new\nline\r\nand\u{2028}separator",
    "ünïcødé 名前 😀",
    "' + $(calc) + '",
    "${env:PATH} @{a=1} @(1)",
    "-Force",
    "[a-z]*?",
    "\\\\server\\share",
    "\u{0}nul",
];

#[tokio::test]
async fn names_reach_the_shell_as_data_and_never_change_the_scripts() {
    let mut hellos = Vec::new();
    for name in NASTY {
        let fake = Fake::new(json!({"hv_move": {"reply": {"kind": "job", "jobId": 1}}}));
        let p = fake.hyperv(&["hv01"], Transport::WinRm);
        p.add_acl(name, name, &acl()).await.expect("add");
        p.remove_acl(name, name, Direction::Inbound, 10)
            .await
            .expect("remove");
        p.connect_adapter(name, name, name, None)
            .await
            .expect("connect");
        p.set_vlan(name, name, 10).await.expect("vlan");
        p.start_move(&mv(name, "hv01", name)).await.expect("move");
        p.close().await.expect("close");

        // The script texts the shell received are exactly the embedded ones.
        let hello = fake.hellos().pop().expect("hello");
        for s in scripts::HYPERV {
            assert_eq!(
                hello["scripts"][s.name].as_str(),
                Some(s.text),
                "{}",
                s.name
            );
        }
        assert_eq!(
            hello["scripts"].as_object().unwrap().len(),
            scripts::HYPERV.len()
        );
        hellos.push(hello["scripts"].clone());

        // Each request is one ASCII line holding the name only as a value.
        let raw: Vec<String> = fake
            .lines()
            .into_iter()
            .filter(|l| l.contains("\"script\""))
            .collect();
        assert_eq!(raw.len(), 5, "{name:?}");
        for line in &raw {
            assert!(line.is_ascii(), "{line}");
            assert!(!line.contains('\n') && !line.contains('\r'));
        }
        for r in fake.requests() {
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["args", "id", "script", "target"]);
            assert!(scripts::HYPERV.iter().any(|s| r["script"] == s.name));
            assert_eq!(r["args"]["vm"], *name, "{r}");
            match r["script"].as_str().unwrap() {
                "hv_move" => assert_eq!(r["args"]["to"], *name),
                "hv_connect" => {
                    assert_eq!(r["args"]["adapter"], *name);
                    assert_eq!(r["args"]["switch"], *name);
                }
                _ => assert_eq!(r["args"]["adapter"], *name),
            }
        }
    }
    assert!(
        hellos.windows(2).all(|w| w[0] == w[1]),
        "scripts identical whatever the names"
    );
}

#[tokio::test]
async fn vmm_names_are_data_too() {
    for name in NASTY {
        let fake = Fake::new(json!({
            "scvmm_observe": {"reply": {"hosts": null, "vms": {"Name": name, "HostName": "hv01.contoso.com", "Status": "Running", "VMId": "x"}}},
            "hv_observe": {"reply": {"vms": {"Name": name, "Id": "x", "State": 2}, "adapters": {"Name": name, "Id": "a", "VMId": "x", "MacAddress": "00155D000001"}}},
            "scvmm_move": {"reply": {"jobId": "0a1b2c3d-0000-4000-8000-000000000000", "dismissed": false}}
        }));
        let p = fake.scvmm(Transport::Local);
        p.add_acl(name, name, &acl()).await.expect("add");
        p.start_move(&mv(name, "hv01", name)).await.expect("move");
        p.close().await.expect("close");
        let hello = fake.hellos().pop().expect("hello");
        for s in scripts::SCVMM {
            assert_eq!(
                hello["scripts"][s.name].as_str(),
                Some(s.text),
                "{}",
                s.name
            );
        }
        for r in fake.requests() {
            assert_eq!(r["args"]["vm"], *name, "{r}");
        }
        assert_eq!(fake.requests_for("scvmm_move")[0]["args"]["to"], *name);
        assert_eq!(fake.requests_for("hv_add_acl")[0]["args"]["adapter"], *name);
    }
}

// ------------------------------------------------------------ SCVMM

fn scvmm_fake(extra: Value) -> Fake {
    let mut behaviour = json!({
        "scvmm_observe": {"reply": fixture("scvmm_observe.json")},
        "hv_observe": {"reply": fixture("hv_observe_ps51.json")}
    });
    for (k, v) in extra.as_object().unwrap() {
        behaviour[k] = v.clone();
    }
    Fake::new(behaviour)
}

#[tokio::test]
async fn vmm_observe_joins_vmm_and_the_hosts() {
    let fake = scvmm_fake(json!({}));
    let p = fake.scvmm(Transport::Local);
    let observed = p.observe().await.expect("observe");
    assert!(observed.hosts["hv01"].reachable);
    assert!(!observed.hosts["hv02"].reachable);
    let web = &observed.vms["web-01"];
    assert_eq!(web.adapters.len(), 2);
    assert_eq!(web.adapters[0].name, "Network Adapter");
    assert_eq!(web.adapters[0].vm_network.as_deref(), Some("Prod-10"));
    assert_eq!(web.adapters[0].acls.len(), 4);
    assert_eq!(
        observed.vms["far-01"].operation,
        Some(berth::spec::VmOperation::Migrating)
    );
    let vmm = fake.requests_for("scvmm_observe");
    assert_eq!(
        vmm[0]["target"],
        Value::Null,
        "local transport: VMM cmdlets run here"
    );
    assert_eq!(vmm[0]["args"]["server"], "vmm01");
    let hosts = fake.requests_for("hv_observe");
    assert_eq!(hosts.len(), 1, "a host VMM cannot reach is not asked");
    assert_eq!(hosts[0]["target"], "hv01.contoso.com");

    p.connect_adapter("web-01", "Network Adapter", "Prod", Some("Prod-10"))
        .await
        .expect("connect");
    p.set_vlan("web-01", "Backup", 20).await.expect("vlan");
    p.add_acl("web-01", "Network Adapter", &acl())
        .await
        .expect("acl");
    assert_eq!(
        fake.requests_for("scvmm_connect")[0]["args"],
        json!({"vm": "web-01", "adapterId": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "switch": "Prod", "vmNetwork": "Prod-10", "server": "vmm01"})
    );
    assert_eq!(
        fake.requests_for("scvmm_set_vlan")[0]["args"]["adapterId"],
        "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"
    );
    assert_eq!(
        fake.requests_for("hv_add_acl")[0]["target"],
        "hv01.contoso.com"
    );
}

#[tokio::test]
async fn vmm_over_winrm_runs_on_the_server() {
    let fake = scvmm_fake(json!({}));
    let p = fake.scvmm(Transport::WinRm);
    p.observe().await.expect("observe");
    let vmm = fake.requests_for("scvmm_observe");
    assert_eq!(vmm[0]["target"], "vmm01");
    assert_eq!(vmm[0]["args"]["server"], "localhost");
}

#[tokio::test]
async fn a_vmm_move_is_a_vmm_job_followed_to_its_end() {
    let fake = scvmm_fake(json!({
        "scvmm_move": {"reply": {"jobId": "5c6d7e8f-0000-4000-8000-000000000001", "dismissed": true}},
        "scvmm_job": [
            {"reply": {"status": "Running"}},
            {"reply": {"status": "Completed"}}
        ]
    }));
    let p = fake.scvmm(Transport::Local);
    p.observe().await.expect("observe");
    let job = p
        .start_move(&mv("db-01", "hv01", "hv02"))
        .await
        .expect("started");
    assert_eq!(job.0, "scvmm:5c6d7e8f-0000-4000-8000-000000000001");
    p.wait_job(&job).await.expect("completed");
    let args = &fake.requests_for("scvmm_move")[0]["args"];
    assert_eq!(
        args["to"], "hv02.contoso.com",
        "VMM's name for the destination"
    );
    assert_eq!(args["path"], "C:\\ClusterStorage\\Volume1");
    let polls = fake.requests_for("scvmm_job");
    assert_eq!(polls.len(), 2);
    assert_eq!(
        polls[0]["args"]["vm"], "db-01",
        "so a MigrationFailed state can be dismissed"
    );
}

#[tokio::test]
async fn a_failed_vmm_job_is_classified_by_its_error() {
    let fake = scvmm_fake(json!({
        "scvmm_move": {"reply": {"jobId": "5c6d7e8f-0000-4000-8000-000000000002"}},
        "scvmm_job": {"reply": {
            "status": "Failed", "errorCode": "10698", "dismissed": true,
            "problem": "The virtual machine (web-01) is using processor-specific features not supported on host hv02.",
            "recommendedAction": "Turn on processor compatibility mode."
        }}
    }));
    let p = fake.scvmm(Transport::Local);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    let e = p.wait_job(&job).await.expect_err("failed");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(
        e.message.contains("processor compatibility"),
        "{}",
        e.message
    );
}

// ------------------------------------------------------------ fidelity (#12)

#[tokio::test]
async fn a_completed_job_is_done_only_when_the_vm_is_on_the_destination() {
    // Move-VM's job can end Completed although the move failed; the VM
    // itself says whether it moved.
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "job", "jobId": 3}},
        "hv_job": {"reply": {"state": "completed", "jobState": "Completed", "error": null, "errors": 0}},
        "hv_observe": [
            {"reply": {"vms": null}},
            {"reply": {"vms": {"Name": "web-01", "State": 2, "PrimaryOperationalStatus": 2}}}
        ]
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    let e = p.wait_job(&job).await.expect_err("not moved");
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(e.message.contains("still on hv01"), "{}", e.message);
    let checks = fake.requests_for("hv_observe");
    assert_eq!(checks[0]["target"], "hv02");
    assert_eq!(checks[1]["target"], "hv01");
}

#[tokio::test]
async fn a_job_with_errors_in_its_error_stream_fails_with_their_class() {
    // hv_job reports a Completed job whose Error stream holds records as
    // failed; the record is classified like any other.
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "job", "jobId": 4}},
        "hv_job": {"reply": {"state": "failed", "jobState": "Completed", "errors": 1, "error": {
            "category": "InvalidOperation",
            "message": "The operation cannot be performed while the virtual machine is being backed up.",
            "fullyQualifiedErrorId": "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM"
        }}}
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    let e = p.wait_job(&job).await.expect_err("failed");
    assert_eq!(e.class, ErrorClass::Wait(WaitReason::BackupInProgress));
}

#[tokio::test]
async fn a_cluster_move_the_cluster_still_has_is_not_judged() {
    // Move-ClusterVirtualMachineRole -Wait 0 returns at once; the cluster
    // may queue the move. While its group is Pending the VM staying on its
    // source is no failure.
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "cluster", "jobId": null}},
        "hv_observe": [
            {"reply": {"vms": null}},
            {"reply": {"vms": {"Name": "web-01", "State": 2, "IsClustered": true},
                       "cluster": {"Name": "CL1"},
                       "groups": {"Name": "web-01", "State": 4, "OwnerNode": "hv01"}}},
            {"reply": {"vms": {"Name": "web-01", "State": 2, "IsClustered": true}}}
        ]
    }));
    let p = fake.hyperv(&["hv01", "hv02"], Transport::WinRm);
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    p.wait_job(&job).await.expect("the cluster carried it out");
    assert_eq!(fake.requests_for("hv_move").len(), 1, "never asked twice");
}

#[tokio::test]
async fn a_cluster_move_gets_a_grace_period_before_it_is_judged() {
    let fake = Fake::new(json!({
        "hv_move": {"reply": {"kind": "cluster", "jobId": null}},
        "hv_observe": [
            {"reply": {"vms": null}},
            {"reply": {"vms": {"Name": "web-01", "State": 2, "IsClustered": true}}},
            {"reply": {"vms": {"Name": "web-01", "State": 2, "IsClustered": true}}}
        ]
    }));
    let p = fake
        .hyperv(&["hv01", "hv02"], Transport::WinRm)
        .with_cluster_grace(Duration::from_secs(3600));
    let job = p
        .start_move(&mv("web-01", "hv01", "hv02"))
        .await
        .expect("started");
    p.wait_job(&job).await.expect("arrived within the grace");
}

#[tokio::test]
async fn a_move_with_storage_goes_to_the_folder_the_planner_chose() {
    let fake = Fake::new(json!({"hv_move": {"reply": {"kind": "job", "jobId": 1}}}));
    let mut paths = BTreeMap::new();
    paths.insert("hv02".to_string(), "E:\\Ignored".to_string());
    let p = fake.hyperv_with(&["hv01", "hv02"], Transport::Local, paths);
    let mut request = mv("web-01", "hv01", "hv02");
    request.storage_path = Some("D:\\VMs\\web-01".into());
    p.start_move(&request).await.expect("started");
    let other = mv("db-01", "hv01", "hv03");
    p.start_move(&other).await.expect("started");
    let moves = fake.requests_for("hv_move");
    assert_eq!(moves[0]["args"]["includeStorage"], true);
    assert_eq!(moves[0]["args"]["storagePath"], "D:\\VMs\\web-01");
    assert_eq!(
        moves[1]["args"]["includeStorage"], false,
        "no path: a live move"
    );
    assert_eq!(moves[1]["args"]["storagePath"], Value::Null);
}

#[tokio::test]
async fn icmp_goes_out_as_a_protocol_number_and_idle_timeouts_only_when_declared() {
    let fake = Fake::new(json!({}));
    let p = fake.hyperv(&["hv01"], Transport::Local);
    let mut icmp = acl();
    icmp.protocol = ProtocolMatch::Number(1);
    icmp.idle_session_timeout = 0;
    p.add_acl("web-01", "Network Adapter", &icmp)
        .await
        .expect("add");
    let mut v6 = acl();
    v6.protocol = ProtocolMatch::Number(58);
    v6.stateful = false;
    v6.idle_session_timeout = 0;
    p.add_acl("web-01", "Network Adapter", &v6)
        .await
        .expect("add");
    let adds = fake.requests_for("hv_add_acl");
    assert_eq!(adds[0]["args"]["acl"]["protocol"], "1");
    assert_eq!(adds[0]["args"]["acl"]["idleSessionTimeout"], Value::Null);
    assert_eq!(adds[1]["args"]["acl"]["protocol"], "58");
    assert_eq!(adds[1]["args"]["acl"]["idleSessionTimeout"], Value::Null);
}

#[tokio::test]
async fn vmm_moves_with_storage_give_vmm_the_parent_folder() {
    let fake = scvmm_fake(json!({
        "scvmm_move": {"reply": {"jobId": "5c6d7e8f-0000-4000-8000-000000000003", "dismissed": false}}
    }));
    let p = fake.scvmm(Transport::Local);
    let mut request = mv("web-01", "hv01", "hv02");
    request.storage_path = Some("D:\\VMs\\web-01".into());
    p.start_move(&request).await.expect("started");
    assert_eq!(
        fake.requests_for("scvmm_move")[0]["args"]["path"],
        "D:\\VMs",
        "VMM makes the VM's own folder under -Path"
    );
}

#[tokio::test]
async fn vmm_observe_reads_storage_limits_disks_volumes_and_clusters() {
    let fake = scvmm_fake(json!({}));
    let p = fake.scvmm(Transport::Local);
    let observed = p.observe().await.expect("observe");
    let hv01 = &observed.hosts["hv01"];
    assert_eq!(hv01.max_storage_migrations, 3);
    assert_eq!(hv01.cluster, None);
    assert_eq!(observed.hosts["hv02"].cluster.as_deref(), Some("CL1"));
    let web = &observed.vms["web-01"];
    assert_eq!(web.disks.len(), 2);
    assert_eq!(web.local_disk_mib(), 40 * 1024 + 100 * 1024);
    assert!(observed.vms["far-01"].clustered);
    assert_eq!(observed.vms["far-01"].local_disk_mib(), 0, "on a CSV");
}
