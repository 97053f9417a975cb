//! What the backends' fidelity fixes (issue #12) mean beyond the backends:
//! the planner keeps clustered VMs inside their cluster, compares an ACL's
//! idle timeout only when the spec declares one, and the scvmm backend is
//! refused the shells its module cannot load in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth::plan::{self, ActionKind};
use berth::provider::{Observed, ObservedAdapter, ObservedDisk, ObservedHost, ObservedVm};
use berth::spec::{self, CpuVendor, PowerState, ProviderSpec};

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, body).expect("write");
    p
}

fn host(name: &str, cluster: Option<&str>) -> ObservedHost {
    ObservedHost {
        name: name.into(),
        memory_mib: 64 * 1024,
        max_migrations: 2,
        cpu_vendor: CpuVendor::Intel,
        switches: vec!["Prod".into()],
        migration_rate_mibps: None,
        reachable: true,
        max_storage_migrations: 2,
        network_mibps: None,
        volumes: Vec::new(),
        cluster: cluster.map(str::to_string),
    }
}

fn vm(name: &str, on: &str, clustered: bool) -> ObservedVm {
    ObservedVm {
        name: name.into(),
        host: on.into(),
        state: PowerState::Running,
        memory_mib: 4096,
        operation: None,
        migrating_to: None,
        job: None,
        adapters: Vec::new(),
        disks: Vec::new(),
        clustered,
    }
}

fn observed(hosts: Vec<ObservedHost>, vms: Vec<ObservedVm>) -> Observed {
    Observed {
        at: 0.0,
        hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
        vms: vms
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect::<BTreeMap<_, _>>(),
        backups_end_in: BTreeMap::new(),
    }
}

fn moved(p: &plan::Plan) -> Vec<(String, String)> {
    p.actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Move { vm, to, .. } => Some((vm.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_clustered_vm_moves_only_between_nodes_of_its_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        &dir,
        "placement.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv09 }]\n  vms:\n    - { name: web-01, host: hv09 }\n    - { name: web-02, host: hv02 }\n    - { name: app-01, host: hv09 }\n",
    );
    let desired = spec::load(&[p]).expect("valid");
    let o = observed(
        vec![
            host("hv01", Some("CL1")),
            host("hv02", Some("CL1")),
            host("hv09", None),
        ],
        vec![
            vm("web-01", "hv01", true),
            vm("web-02", "hv01", true),
            vm("app-01", "hv01", false),
        ],
    );
    let plan = plan::plan(&desired, &o);
    let moves = moved(&plan);
    assert!(
        moves.contains(&("web-02".into(), "hv02".into())),
        "{moves:?}"
    );
    assert!(
        moves.contains(&("app-01".into(), "hv09".into())),
        "a VM that is not clustered may leave: {moves:?}"
    );
    assert!(!moves.iter().any(|(v, _)| v == "web-01"), "{moves:?}");
    let blocked = plan
        .blocked
        .iter()
        .find(|b| b.vm == "web-01")
        .expect("web-01 blocked");
    assert!(
        blocked
            .reason
            .contains("web-01 is clustered in CL1; hv09 is not a node of CL1"),
        "{}",
        blocked.reason
    );
}

#[test]
fn a_vm_on_a_cluster_shared_volume_stays_in_its_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        &dir,
        "placement.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts: [{ name: hv01 }, { name: hv09 }]\n  vms:\n    - { name: app-01, host: hv09 }\n",
    );
    let desired = spec::load(&[p]).expect("valid");
    let mut app = vm("app-01", "hv01", false);
    app.disks = vec![ObservedDisk {
        path: r"C:\ClusterStorage\Volume1\app-01\app-01.vhdx".into(),
        size_mib: 10_240,
        volume: None,
    }];
    let o = observed(
        vec![host("hv01", Some("CL1")), host("hv09", None)],
        vec![app],
    );
    let plan = plan::plan(&desired, &o);
    assert!(moved(&plan).is_empty());
    assert!(
        plan.blocked[0].reason.contains(
            "app-01's disks are on a cluster shared volume of CL1; hv09 is not a node of CL1"
        ),
        "{}",
        plan.blocked[0].reason
    );
}

#[test]
fn an_undeclared_idle_timeout_is_hyper_vs_to_choose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        &dir,
        "placement.yaml",
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts: [{ name: hv01 }]\n  vms:\n    - name: web-01\n      host: hv01\n      networkAdapters:\n        - name: Network Adapter\n          switch: Prod\n          acls:\n            - { action: allow, direction: inbound, localPort: '443', protocol: tcp, weight: 10, stateful: true }\n            - { action: allow, direction: inbound, localPort: '22', protocol: tcp, weight: 20, stateful: true, idleSessionTimeout: 60 }\n",
    );
    let desired = spec::load(&[p]).expect("valid");
    let declared = &desired.vms["web-01"].adapters.as_ref().expect("adapters")[0];
    let mut observed_acls = declared.acls.clone().expect("acls");
    // Hyper-V filled in its default (the WMI class's 255) for the first and
    // kept 60 for the second, which then changed by hand to 30.
    observed_acls[0].idle_session_timeout = 255;
    observed_acls[1].idle_session_timeout = 30;
    let mut web = vm("web-01", "hv01", false);
    web.adapters = vec![ObservedAdapter {
        name: "Network Adapter".into(),
        switch: Some("Prod".into()),
        vm_network: None,
        vlan_id: None,
        acls: observed_acls,
    }];
    let plan = plan::plan(&desired, &observed(vec![host("hv01", None)], vec![web]));
    let changes: Vec<(Vec<u32>, Vec<u32>)> = plan
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::SetAcls { add, remove, .. } => Some((
                add.iter().map(|c| c.weight).collect(),
                remove.iter().map(|c| c.weight).collect(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [(vec![20], vec![20])],
        "only the declared timeout is compared"
    );
}

fn controller(body: &str) -> Result<spec::Desired, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        &dir,
        "controller.yaml",
        &format!("apiVersion: berth/v1\nkind: Controller\nspec:\n  provider:\n    scvmm:\n{body}"),
    );
    spec::load(&[p]).map_err(|e| e.to_string())
}

#[test]
fn scvmm_runs_in_windows_powershell_and_refuses_ssh_and_pwsh() {
    let d = controller("      server: vmm01\n").expect("valid");
    match d.controller.expect("controller").provider {
        ProviderSpec::Scvmm(s) => assert_eq!(s.shell.shell, "powershell.exe"),
        other => panic!("{other:?}"),
    }
    let e = controller("      server: vmm01\n      transport: ssh\n").expect_err("ssh");
    assert!(e.contains("controller.yaml:7:18"), "{e}");
    assert!(e.contains("cannot use transport `ssh`"), "{e}");
    for shell in [
        "pwsh",
        "pwsh.exe",
        "/usr/bin/pwsh",
        "C:\\\\Program Files\\\\PowerShell\\\\7\\\\pwsh.exe",
    ] {
        let e = controller(&format!("      server: vmm01\n      shell: \"{shell}\"\n"))
            .expect_err("pwsh");
        assert!(e.contains("controller.yaml:7:14"), "{e}");
        assert!(e.contains("PowerShell 7"), "{e}");
    }
    let d =
        controller("      server: vmm01\n      transport: winrm\n      shell: powershell.exe\n")
            .expect("winrm with Windows PowerShell");
    assert!(d.controller.is_some());
}
