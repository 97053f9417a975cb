//! Parsing the cmdlets' JSON: recorded-shape fixtures (Windows PowerShell
//! 5.1 with enumerations as numbers, PowerShell 7 with names, single objects
//! where lists are expected, nulls, numbers as strings) mapped onto the
//! observed model.

use berth::provider::hyperv::{HostView, merge_views, operation, parse_host_report, power_state};
use berth::provider::json::EnumValue;
use berth::provider::scvmm::{join, normalise_mac, parse_scvmm_report};
use berth::provider::{ObservedAdapter, ObservedVm};
use berth::spec::{CpuVendor, PowerState, VmOperation};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/powershell/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vm<'a>(view: &'a HostView, name: &str) -> &'a ObservedVm {
    view.vms
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no VM {name} in {:?}", view.vms))
}

fn adapter<'a>(vm: &'a ObservedVm, name: &str) -> &'a ObservedAdapter {
    vm.adapters
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no adapter {name} on {}", vm.name))
}

fn rules(a: &ObservedAdapter) -> Vec<String> {
    a.acls.iter().map(ToString::to_string).collect()
}

#[test]
fn windows_powershell_output_with_numeric_enums() {
    let view = parse_host_report("hv01", &fixture("hv_observe_ps51.json")).expect("parses");
    let host = view.host.as_ref().expect("host");
    assert_eq!(
        host.name, "hv01",
        "the configured name, not the reported one"
    );
    assert_eq!(host.memory_mib, 256 * 1024);
    assert_eq!(host.max_migrations, 4);
    assert_eq!(host.cpu_vendor, CpuVendor::Intel);
    assert_eq!(host.switches, ["Prod", "Mgmt"]);
    assert!(host.reachable);
    assert_eq!(host.migration_rate_mibps, None);

    let web = vm(&view, "web-01");
    assert_eq!(web.host, "hv01");
    assert_eq!(web.state, PowerState::Running);
    assert_eq!(web.memory_mib, 8192, "MemoryAssigned of a running VM");
    assert_eq!(web.operation, None);
    assert_eq!(web.adapters.len(), 2);
    let nic = adapter(web, "Network Adapter");
    assert_eq!(nic.switch.as_deref(), Some("Prod"));
    assert_eq!(nic.vlan_id, Some(10));
    assert_eq!(nic.vm_network, None);
    assert_eq!(
        rules(nic),
        [
            "deny inbound weight 1 ANY local ANY:ANY remote ANY:ANY",
            "allow inbound weight 10 tcp local ANY:443 remote 10.0.0.0/8:ANY stateful (idle 0s)",
            "allow inbound weight 20 icmp local ANY:ANY remote 192.168.1.5:ANY",
            "allow outbound weight 20 udp local ANY:ANY remote ANY:49152-65535",
        ],
        "sorted by direction and weight; the lower-case adapter id still joins"
    );
    let backup = adapter(web, "Backup");
    assert_eq!(backup.switch.as_deref(), Some("Mgmt"));
    assert_eq!(backup.vlan_id, None, "untagged");
    assert!(backup.acls.is_empty());

    let db = vm(&view, "db-01");
    assert_eq!(db.state, PowerState::Off);
    assert_eq!(
        db.memory_mib,
        16 * 1024,
        "an off VM counts its startup memory"
    );
    let nic = adapter(db, "Network Adapter");
    assert_eq!(nic.switch, None, "not connected");
    assert_eq!(nic.vlan_id, None, "trunk mode is not an access VLAN");

    assert_eq!(vm(&view, "app-01").operation, Some(VmOperation::BackingUp));
    let mig = vm(&view, "mig-01");
    assert_eq!(mig.state, PowerState::Paused);
    assert_eq!(mig.operation, Some(VmOperation::Migrating));
    assert_eq!(
        view.outgoing,
        [
            ("mig-01".to_string(), "HV02.contoso.com".to_string()),
            ("db-01".to_string(), "hv03".to_string())
        ],
        "running migrations only (JobState 11, Service, is running); the completed one is ignored"
    );
    assert_eq!(view.macs.len(), 3);
}

#[test]
fn a_running_migration_names_its_destination_among_the_configured_hosts() {
    let view = parse_host_report("hv01", &fixture("hv_observe_ps51.json")).expect("parses");
    let observed = merge_views(&["hv01".to_string(), "hv02".to_string()], vec![view]);
    let mig = &observed.vms["mig-01"];
    assert_eq!(mig.migrating_to.as_deref(), Some("hv02"));
    assert_eq!(observed.vms["web-01"].migrating_to, None);
    // A destination berth does not manage is not invented.
    let view = parse_host_report("hv01", &fixture("hv_observe_ps51.json")).expect("parses");
    let observed = merge_views(&["hv01".to_string()], vec![view]);
    assert_eq!(observed.vms["mig-01"].migrating_to, None);
    assert_eq!(
        observed.vms["mig-01"].operation,
        Some(VmOperation::Migrating)
    );
}

#[test]
fn powershell_7_output_numbers_enumerations_too() {
    // ConvertTo-Json writes enumerations as numbers in PowerShell 7 as in
    // 5.1 (names only with -EnumsAsStrings, which berth does not use).
    let view = parse_host_report("hv02", &fixture("hv_observe_ps7.json")).expect("parses");
    let host = view.host.as_ref().expect("host");
    assert_eq!(host.memory_mib, 128 * 1024);
    assert_eq!(host.max_migrations, 2);
    assert_eq!(host.cpu_vendor, CpuVendor::Amd);
    assert_eq!(host.switches, ["Prod"]);
    assert_eq!(host.cluster.as_deref(), Some("CL2"));
    assert!(
        host.volumes.is_empty(),
        "only a CSV under the VM path: shared"
    );
    assert_eq!(view.vms.len(), 1);
    let solo = vm(&view, "solo");
    assert_eq!(solo.state, PowerState::Saved);
    assert_eq!(solo.memory_mib, 1024);
    assert_eq!(solo.operation, None);
    assert!(solo.clustered);
    assert_eq!(solo.disks.len(), 1);
    assert_eq!(solo.disks[0].volume, None, "a CSV is shared storage");
    assert_eq!(solo.local_disk_mib(), 0);
    let nic = adapter(solo, "Network Adapter");
    assert_eq!(
        nic.switch.as_deref(),
        Some("Prod"),
        "no Connected property: SwitchName decides"
    );
    assert_eq!(view.groups.len(), 1);
    assert!(!view.groups[0].pending, "Online");
    assert_eq!(nic.vlan_id, Some(42));
    assert_eq!(
        rules(nic),
        ["deny outbound weight 5 58 local ANY:ANY remote fd00::/8:ANY isolation 7"],
        "a stateless rule has no idle timeout"
    );
    assert!(view.outgoing.is_empty(), "migrations: null");
}

#[test]
fn an_acl_applying_both_ways_is_two_rules_and_nulls_are_defaults() {
    let view = parse_host_report("hv03", &fixture("hv_observe_both.json")).expect("parses");
    let host = view.host.as_ref().expect("host");
    assert_eq!(
        host.cpu_vendor,
        CpuVendor::Intel,
        "no processor: the default"
    );
    assert!(host.switches.is_empty(), "switches: null");
    let edge = vm(&view, "edge-01");
    assert_eq!(
        edge.state,
        PowerState::Running,
        "RunningCritical is running"
    );
    assert_eq!(edge.memory_mib, 512);
    let nic = adapter(edge, "Network Adapter");
    assert_eq!(
        rules(nic),
        [
            "allow inbound weight 100 tcp local ANY:22 remote 0.0.0.0/0:ANY stateful (idle 300s)",
            "allow outbound weight 100 tcp local ANY:22 remote 0.0.0.0/0:ANY stateful (idle 300s)",
        ]
    );
}

#[test]
fn one_vm_without_host_details() {
    let view = parse_host_report("hv01", &fixture("hv_observe_one_vm.json")).expect("parses");
    assert!(view.host.is_none());
    assert_eq!(view.vms.len(), 1);
    assert!(vm(&view, "web-01").adapters.is_empty());
}

#[test]
fn the_local_host_takes_the_name_it_reports() {
    let view = parse_host_report("", &fixture("hv_observe_ps51.json")).expect("parses");
    assert_eq!(view.host.as_ref().unwrap().name, "HV01");
    assert!(view.vms.iter().all(|v| v.host == "HV01"));
}

#[test]
fn malformed_output_is_an_error_not_a_guess() {
    let cases = [
        json!([1, 2, 3]),
        json!({"vms": [{"State": 2}]}),
        json!({"vms": [{"Name": "x", "MemoryAssigned": -5}]}),
        json!({"acls": [{"Direction": 1, "Action": 1, "AdapterId": "a"}]}),
        json!({"acls": [{"Direction": 9, "Action": 1, "Weight": 1, "AdapterId": "a"}]}),
        // VMNetworkAdapterExtendedAclDirection has no Both (3): a rule that
        // applies both ways is listed once per direction.
        json!({"acls": [{"Direction": 3, "Action": 1, "Weight": 1, "AdapterId": "a"}]}),
        json!({"acls": [{"Direction": "Both", "Action": 1, "Weight": 1, "AdapterId": "a"}]}),
        json!({"acls": [{"Direction": 1, "Action": 3, "Weight": 1, "AdapterId": "a"}]}),
        json!({"acls": [{"Direction": 1, "Action": 1, "Weight": 1}]}),
        json!({"acls": [{"Direction": 1, "Action": 1, "Weight": 1, "AdapterId": "a", "RemoteIPAddress": "not-an-ip"}]}),
        json!({"acls": [{"Direction": 1, "Action": 1, "Weight": 1, "AdapterId": "a", "LocalPort": "70000"}]}),
    ];
    for c in cases {
        assert!(parse_host_report("hv01", &c).is_err(), "accepted {c}");
    }
    // Nothing at all is an empty host, not an error.
    let view = parse_host_report("hv01", &json!({})).expect("empty");
    assert!(view.vms.is_empty());
}

#[test]
fn vm_states_by_number_and_by_name() {
    let cases = [
        (json!(2), PowerState::Running),
        (json!("Running"), PowerState::Running),
        (json!(3), PowerState::Off),
        (json!("off"), PowerState::Off),
        (json!(32786), PowerState::Off),
        (json!(6), PowerState::Saved),
        (json!("FastSaved"), PowerState::Saved),
        (json!(32779), PowerState::Saved),
        (json!(32783), PowerState::Saved),
        (json!(9), PowerState::Paused),
        (json!("PausedCritical"), PowerState::Paused),
        (json!(4), PowerState::Running),
        (json!("Starting"), PowerState::Running),
        (json!(32773), PowerState::Running),
        (json!("9"), PowerState::Paused),
    ];
    for (v, want) in cases {
        let e = EnumValue::from_value(&v);
        assert_eq!(power_state(e.as_ref()), want, "{v}");
    }
    assert_eq!(power_state(None), PowerState::Running);
}

#[test]
fn operational_statuses_by_number_and_by_name() {
    let e = |v: Value| EnumValue::from_value(&v);
    assert_eq!(
        operation(e(json!(11)).as_ref(), e(json!(32776)).as_ref()),
        Some(VmOperation::BackingUp)
    );
    assert_eq!(
        operation(
            e(json!("InService")).as_ref(),
            e(json!("BackingUpVirtualMachine")).as_ref()
        ),
        Some(VmOperation::BackingUp)
    );
    for m in [
        json!(32774),
        json!("MigratingVirtualMachine"),
        json!(32778),
        json!("StorageMigrationPhaseTwo"),
        json!(32780),
    ] {
        assert_eq!(
            operation(e(json!(11)).as_ref(), e(m.clone()).as_ref()),
            Some(VmOperation::Migrating),
            "{m}"
        );
    }
    assert_eq!(operation(e(json!(2)).as_ref(), None), None);
    assert_eq!(operation(None, None), None);
}

#[test]
fn vmm_output_maps_hosts_vms_and_adapters() {
    let view = parse_scvmm_report(&fixture("scvmm_observe.json")).expect("parses");
    assert_eq!(view.hosts.len(), 2);
    let (hv01, address) = &view.hosts[0];
    assert_eq!(hv01.name, "hv01", "the computer name");
    assert_eq!(address, "hv01.contoso.com", "VMM's name stays the address");
    assert_eq!(hv01.memory_mib, 256 * 1024);
    assert_eq!(hv01.max_migrations, 4);
    assert_eq!(hv01.cpu_vendor, CpuVendor::Intel);
    assert_eq!(hv01.switches, ["Prod", "Mgmt"]);
    assert!(hv01.reachable);
    let (hv02, _) = &view.hosts[1];
    assert_eq!(hv02.name, "hv02", "no computer name: the first label");
    assert_eq!(hv02.max_migrations, 2);
    assert_eq!(hv02.cpu_vendor, CpuVendor::Amd);
    assert_eq!(hv02.switches, ["Prod"]);
    assert!(!hv02.reachable, "not responding");

    let web = view.vms.iter().find(|v| v.vm.name == "web-01").unwrap();
    assert_eq!(web.vm.host, "hv01");
    assert_eq!(web.vm.state, PowerState::Running);
    assert_eq!(web.vm.memory_mib, 8192);
    assert_eq!(web.adapters[0].mac, "00155D010203");
    assert_eq!(web.adapters[0].vlan_id, Some(10));
    assert_eq!(web.adapters[1].vlan_id, None, "VLAN not enabled");
    let db = view.vms.iter().find(|v| v.vm.name == "db-01").unwrap();
    assert_eq!(db.vm.state, PowerState::Off);
    assert_eq!(db.vm.memory_mib, 16384);
    assert_eq!(
        db.vm.operation, None,
        "MigrationFailed is not a running migration"
    );
    assert_eq!(db.adapters.len(), 1, "one adapter written as an object");
    let far = view.vms.iter().find(|v| v.vm.name == "far-01").unwrap();
    assert_eq!(far.vm.host, "hv02");
    assert_eq!(far.vm.operation, Some(VmOperation::Migrating));
}

#[test]
fn vmm_adapters_join_hyper_v_adapters_by_mac() {
    let mut view = parse_scvmm_report(&fixture("scvmm_observe.json")).expect("parses");
    let host = parse_host_report("hv01", &fixture("hv_observe_ps51.json")).expect("parses");
    let web = view.vms.iter_mut().find(|v| v.vm.name == "web-01").unwrap();
    let ids = join(web, Some(&host));
    assert_eq!(
        ids,
        [
            (
                "Network Adapter".to_string(),
                "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b".to_string()
            ),
            (
                "Backup".to_string(),
                "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a".to_string()
            ),
        ]
    );
    let nic = adapter(&web.vm, "Network Adapter");
    assert_eq!(nic.vm_network.as_deref(), Some("Prod-10"));
    assert_eq!(nic.vlan_id, Some(10));
    assert_eq!(nic.acls.len(), 4, "extended ACLs come from the host");
    let db = view.vms.iter_mut().find(|v| v.vm.name == "db-01").unwrap();
    let ids = join(db, Some(&host));
    assert_eq!(ids.len(), 1, "00-15-5D-01-02-05 is 00155D010205");
    // Without the host's view, no adapters are invented.
    let far = view.vms.iter_mut().find(|v| v.vm.name == "far-01").unwrap();
    assert!(join(far, None).is_empty());
    assert!(far.vm.adapters.is_empty());
}

#[test]
fn mac_addresses_normalise() {
    assert_eq!(normalise_mac("00:15:5d:01:02:03"), "00155D010203");
    assert_eq!(normalise_mac("00-15-5D-01-02-03"), "00155D010203");
    assert_eq!(normalise_mac("00155d010203"), "00155D010203");
}

#[test]
fn storage_limits_disks_and_volumes_from_windows_powershell() {
    let view = parse_host_report("hv01", &fixture("hv_observe_ps51.json")).expect("parses");
    let host = view.host.as_ref().expect("host");
    assert_eq!(host.max_storage_migrations, 3, "MaximumStorageMigrations");
    assert_eq!(host.cluster, None);
    let volumes: Vec<(&str, u64)> = host
        .volumes
        .iter()
        .map(|v| (v.path.as_str(), v.free_mib))
        .collect();
    assert_eq!(
        volumes,
        [
            (r"D:\Hyper-V\Virtual Hard Disks", 800 * 1024),
            (r"E:\", 200 * 1024)
        ],
        "the volume under the VM folders (named by it) and the one holding a disk; \
         not C:, F:, the CSV or an unmounted volume"
    );
    let web = vm(&view, "web-01");
    let disks: Vec<(&str, u64, Option<&str>)> = web
        .disks
        .iter()
        .map(|d| (d.path.as_str(), d.size_mib, d.volume.as_deref()))
        .collect();
    assert_eq!(
        disks,
        [
            (
                r"D:\Hyper-V\Virtual Hard Disks\web-01.vhdx",
                40 * 1024,
                Some(r"D:\Hyper-V\Virtual Hard Disks")
            ),
            (r"E:\Data\web-01-data.vhdx", 100 * 1024, Some(r"E:\")),
        ],
        "a dynamic disk takes its FileSize, a fixed one its Size"
    );
    let db = vm(&view, "db-01");
    assert_eq!(db.disks.len(), 1, "a pass-through disk has no file");
    assert_eq!(db.disks[0].volume, None, "an SMB share is shared storage");
    assert_eq!(vm(&view, "app-01").local_disk_mib(), 0, "a CSV is shared");
}

#[test]
fn cim_job_state_service_counts_as_running() {
    // CIM_ConcreteJob.JobState 11 is Service, 12 Query Pending: running.
    let view = parse_host_report("hv01", &fixture("hv_observe_ps51.json")).expect("parses");
    assert!(
        view.outgoing
            .iter()
            .any(|(vm, to)| vm == "db-01" && to == "hv03"),
        "{:?}",
        view.outgoing
    );
}

#[test]
fn windows_server_2012_r2_numbers_vm_states_differently() {
    let report = |build: &str, state: u32| {
        json!({"os": {"Version": "x", "BuildNumber": build},
               "vms": [{"Name": "x", "State": state}]})
    };
    let state = |build: &str, n: u32| {
        parse_host_report("hv01", &report(build, n))
            .expect("parses")
            .vms[0]
            .state
    };
    // 2012 R2 (build 9600): OffCritical 32782, SavedCritical 32784,
    // PausedCritical 32785, FastSavedCritical 32791.
    assert_eq!(state("9600", 32782), PowerState::Off);
    assert_eq!(state("9600", 32784), PowerState::Saved);
    assert_eq!(state("9600", 32785), PowerState::Paused);
    assert_eq!(state("9600", 32791), PowerState::Saved);
    assert_eq!(state("9600", 32781), PowerState::Running, "RunningCritical");
    // 2016 and later: 32782 ForceReboot, 32784 ComponentServicing,
    // 32785 RunningCritical, 32786 OffCritical.
    assert_eq!(state("20348", 32782), PowerState::Running);
    assert_eq!(state("20348", 32785), PowerState::Running);
    assert_eq!(state("20348", 32786), PowerState::Off);
    // The name, when sent, decides whatever the number.
    let named = json!({"os": {"BuildNumber": "9600"},
                       "vms": [{"Name": "x", "State": 32786, "StateName": "StartingCritical"}]});
    assert_eq!(
        parse_host_report("hv01", &named).expect("parses").vms[0].state,
        PowerState::Running
    );
}

#[test]
fn vmm_reports_storage_limits_volumes_disks_and_clusters() {
    let view = parse_scvmm_report(&fixture("scvmm_observe.json")).expect("parses");
    let (hv01, _) = &view.hosts[0];
    assert_eq!(hv01.max_storage_migrations, 3);
    let volumes: Vec<&str> = hv01.volumes.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(volumes, [r"D:\VMs", r"E:\"]);
    let (hv02, _) = &view.hosts[1];
    assert_eq!(hv02.max_storage_migrations, 2, "not reported: the default");
    assert_eq!(hv02.cluster.as_deref(), Some("CL1"));
    assert!(hv02.volumes.is_empty(), "a CSV is shared storage");
    let web = view.vms.iter().find(|v| v.vm.name == "web-01").unwrap();
    let disks: Vec<(u64, Option<&str>)> = web
        .vm
        .disks
        .iter()
        .map(|d| (d.size_mib, d.volume.as_deref()))
        .collect();
    assert_eq!(
        disks,
        [(40 * 1024, Some(r"D:\VMs")), (100 * 1024, Some(r"E:\"))]
    );
    let far = view.vms.iter().find(|v| v.vm.name == "far-01").unwrap();
    assert!(far.vm.clustered, "IsHighlyAvailable");
    assert_eq!(far.vm.disks[0].volume, None);
}

#[test]
fn vmm_adapters_with_dynamic_macs_join_by_name_never_by_zeros() {
    // Never-started VMs with dynamic MACs report 00:00:00:00:00:00 for
    // every adapter: joining by MAC would pair them at random.
    let host = parse_host_report(
        "hv01",
        &json!({
            "vms": [{"Name": "new-01", "Id": "6b6b6b6b-0000-4000-8000-000000000001", "State": 3}],
            "adapters": [
                {"Name": "Front", "Id": "Microsoft:6B6B6B6B-0000-4000-8000-000000000001\\AAAA", "VMId": "6b6b6b6b-0000-4000-8000-000000000001", "MacAddress": "000000000000"},
                {"Name": "Back", "Id": "Microsoft:6B6B6B6B-0000-4000-8000-000000000001\\BBBB", "VMId": "6b6b6b6b-0000-4000-8000-000000000001", "MacAddress": "000000000000"}
            ]
        }),
    )
    .expect("parses");
    let vmm = json!({"vms": [{"Name": "new-01", "VMId": "6b6b6b6b-0000-4000-8000-000000000001", "HostName": "hv01", "Adapters": [
        {"ID": "vmm-back", "Name": "Back", "MACAddress": "00:00:00:00:00:00", "VMNetwork": "Back-Net"},
        {"ID": "vmm-front", "Name": "Front", "MACAddress": "00:00:00:00:00:00", "VMNetwork": "Front-Net"}
    ]}]});
    let mut view = parse_scvmm_report(&vmm).expect("parses");
    let ids = join(&mut view.vms[0], Some(&host));
    assert_eq!(
        ids,
        [
            ("Front".to_string(), "vmm-front".to_string()),
            ("Back".to_string(), "vmm-back".to_string())
        ]
    );
    // Without names, zero MACs join nothing rather than the wrong thing.
    let anonymous = json!({"vms": [{"Name": "new-01", "VMId": "6b6b6b6b-0000-4000-8000-000000000001", "HostName": "hv01", "Adapters": [
        {"ID": "vmm-1", "MACAddress": "00:00:00:00:00:00"},
        {"ID": "vmm-2", "MACAddress": "00:00:00:00:00:00"}
    ]}]});
    let mut view = parse_scvmm_report(&anonymous).expect("parses");
    assert!(join(&mut view.vms[0], Some(&host)).is_empty());
    // Hyper-V's adapter id, when VMM reports it, decides first.
    let by_id = json!({"vms": [{"Name": "new-01", "VMId": "6b6b6b6b-0000-4000-8000-000000000001", "HostName": "hv01", "Adapters": [
        {"ID": "vmm-x", "Name": "Front", "DeviceID": "microsoft:6b6b6b6b-0000-4000-8000-000000000001\\bbbb"}
    ]}]});
    let mut view = parse_scvmm_report(&by_id).expect("parses");
    assert_eq!(
        join(&mut view.vms[0], Some(&host)),
        [("Back".to_string(), "vmm-x".to_string())]
    );
}
