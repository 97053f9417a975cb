//! How long `plan::plan` takes on large fleets, and how much memory.
//!
//! Run with `cargo bench --bench plan` (release build). Two fleets, built
//! directly as structs: 10,000 VMs on 500 hosts and 100,000 VMs on 5,000
//! hosts, with 30% of the VMs placed elsewhere in the spec, three extended
//! ACLs on every VM (drifted on a few), one VM in ten powered off, and two
//! CPU vendors. Hosts have room for the moves. A third run gives every VM
//! 40-530 GiB of local disks and every host a volume and a shared 1200 MiB/s
//! migration network (shared-nothing: every move copies disks, and the
//! estimate shares networks). Prints the best and median of several runs and
//! the process's peak resident memory (VmHWM).

#[path = "common/timing.rs"]
mod timing;

use std::collections::BTreeMap;
use std::time::Duration;

use berth::provider::{Observed, ObservedAdapter, ObservedHost, ObservedVm};
use berth::spec::{
    Acl, AclAction, AdapterSpec, AddressMatch, CpuVendor, Desired, Direction, HostSpec, Origin,
    Policy, PortMatch, PowerState, ProtocolMatch, VmSpec,
};
use timing::ms;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn acls() -> Vec<Acl> {
    let rule = |weight, action, port, remote| Acl {
        direction: Direction::Inbound,
        weight,
        action,
        local_address: AddressMatch::Any,
        remote_address: remote,
        local_port: port,
        remote_port: PortMatch::Any,
        protocol: ProtocolMatch::Number(6),
        stateful: false,
        idle_session_timeout: 0,
        isolation_id: 0,
    };
    let mgmt = AddressMatch::Net("10.100.0.0/16".parse().expect("a network"));
    let mut out = vec![
        rule(1, AclAction::Deny, PortMatch::Any, AddressMatch::Any),
        rule(
            10,
            AclAction::Allow,
            PortMatch::Range(443, 443),
            AddressMatch::Any,
        ),
        rule(20, AclAction::Allow, PortMatch::Range(22, 22), mgmt),
    ];
    out.sort();
    out
}

/// A fleet of `vms` VMs on `hosts` hosts and a spec that moves
/// `moving` of them (a fraction) to another host of the same CPU vendor.
fn fleet(vms: usize, hosts: usize, moving: f64, disks: bool) -> (Desired, Observed) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let host_name = |i: usize| format!("hv{i:04}");
    let half = hosts / 2;
    let vendor = |i: usize| {
        if i < half {
            CpuVendor::Intel
        } else {
            CpuVendor::Amd
        }
    };
    let mut observed = Observed::default();
    let mut desired = Desired {
        policy: Policy::default(),
        ..Desired::default()
    };
    for i in 0..hosts {
        let name = host_name(i);
        observed.hosts.insert(
            name.clone(),
            ObservedHost {
                name: name.clone(),
                memory_mib: 512 * 1024,
                max_migrations: 2,
                cpu_vendor: vendor(i),
                switches: vec!["Prod".into(), "Mgmt".into()],
                migration_rate_mibps: Some(if i % 10 == 0 { 100.0 } else { 1000.0 }),
                reachable: true,
                max_storage_migrations: 2,
                network_mibps: disks.then_some(1200.0),
                volumes: if disks {
                    vec![berth::provider::ObservedVolume {
                        path: r"D:\VMs".into(),
                        free_mib: 8000 * 1024,
                    }]
                } else {
                    Vec::new()
                },
                cluster: None,
            },
        );
        desired.hosts.insert(
            name.clone(),
            HostSpec {
                name,
                maintenance: false,
                max_migrations: None,
                max_storage_migrations: None,
                storage_path: None,
                origin: Origin::default(),
                labels: Default::default(),
            },
        );
    }
    let rules = acls();
    let sizes = [4u64, 8, 8, 16, 16, 16, 32];
    let mut vms_map = BTreeMap::new();
    for i in 0..vms {
        let name = format!("vm{i:06}");
        let host = i % hosts;
        let group = if host < half { 0..half } else { half..hosts };
        let want = if (rng.below(1000) as f64) < moving * 1000.0 {
            let len = group.len();
            let offset = 1 + rng.below(len as u64 - 1) as usize;
            group.start + (host - group.start + offset) % len
        } else {
            host
        };
        let state = if rng.below(10) == 0 {
            PowerState::Off
        } else {
            PowerState::Running
        };
        let mut have = rules.clone();
        if rng.below(20) == 0 {
            have.pop();
        }
        vms_map.insert(
            name.clone(),
            ObservedVm {
                name: name.clone(),
                host: host_name(host),
                state,
                memory_mib: sizes[rng.below(sizes.len() as u64) as usize] * 1024,
                operation: None,
                migrating_to: None,
                job: None,
                disks: if disks {
                    vec![berth::provider::ObservedDisk {
                        path: format!(r"D:\VMs\{name}\{name}.vhdx"),
                        size_mib: (40 + rng.below(491)) * 1024,
                        volume: Some(r"D:\VMs".into()),
                    }]
                } else {
                    Vec::new()
                },
                clustered: false,
                adapters: vec![ObservedAdapter {
                    name: "Network Adapter".into(),
                    switch: Some("Prod".into()),
                    vm_network: None,
                    vlan_id: Some(10),
                    acls: have,
                }],
            },
        );
        desired.vms.insert(
            name.clone(),
            std::sync::Arc::new(VmSpec {
                name,
                host: host_name(want),
                choice: None,
                fallback: Vec::new(),
                adapters: Some(vec![AdapterSpec {
                    name: "Network Adapter".into(),
                    switch: Some("Prod".into()),
                    vm_network: None,
                    vlan_id: Some(10),
                    acls: Some(rules.clone()),
                }]),
                origin: Origin::default(),
                priority: 0,
            }),
        );
    }
    observed.vms = vms_map;
    (desired, observed)
}

/// Peak resident memory of this process so far, MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn main() {
    let mut missed = false;
    for (vms, hosts, runs, target, disks) in [
        (10_000, 500, 5, Duration::from_millis(100), false),
        (100_000, 5_000, 3, Duration::from_millis(1500), false),
        (10_000, 500, 5, Duration::from_millis(150), true),
    ] {
        let (desired, observed) = fleet(vms, hosts, 0.3, disks);
        let (p, best, median) = timing::time_plan(&desired, &observed, runs);
        let rss = peak_rss_mib().map_or("?".to_string(), |m| format!("{m} MiB"));
        println!(
            "plan: {vms} VMs{} / {hosts} hosts, {} moves: best {}, median {}; peak RSS {rss}",
            if disks { " with disks" } else { "" },
            p.moves(),
            ms(best),
            ms(median),
        );
        println!(
            "      {} actions, {} ACL changes, {} blocked, estimate {:.0} s; target {}{}",
            p.actions.len(),
            p.acl_changes(),
            p.blocked.len(),
            p.estimated_seconds,
            ms(target),
            if median <= target { "" } else { " MISSED" }
        );
        missed |= median > target;
    }
    if peak_rss_mib().is_some_and(|m| m >= 1024) {
        println!("peak RSS over 1 GiB: MISSED");
        missed = true;
    }
    if missed {
        std::process::exit(1);
    }
}
