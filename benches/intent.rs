//! How long planning takes when berth chooses hosts under rules.
//!
//! Run with `cargo bench --bench intent` (release build). Two fleets, built
//! directly as structs: 10,000 VMs on 500 hosts with 2,000 VMs that may run
//! anywhere in their host group and 200 rules, and 100,000 VMs on 5,000
//! hosts with 20,000 and 2,000. Hosts carry a `rack` label (10 hosts a
//! rack), groups are 50 hosts of one CPU vendor, and `headroom: 1` is set.
//! The fleet breaks its intent on purpose: three in four `separate` rules
//! (by rack) have two members in one rack, every `together` pair starts on
//! two hosts, and one host per group is in maintenance. Prints the time of
//! `plan::plan` (solve and order), the moves, and a lower bound on the moves:
//! members over one per rack, one per split pair, and every VM with choices
//! on a host in maintenance.

#[path = "common/timing.rs"]
mod timing;

use std::time::Duration;

use berth::provider::{Observed, ObservedHost, ObservedVm};
use berth::spec::{
    Choice, CpuVendor, Desired, HostGroupSpec, HostSpec, Origin, Policy, PowerState, RuleKind,
    RuleSpec, VmSpec,
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
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const GROUP: usize = 50;
const RACK: usize = 10;

/// The fleet and spec, and the lower bound on moves.
fn fleet(vms: usize, hosts: usize, choosers: usize, rules: usize) -> (Desired, Observed, usize) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let host_name = |i: usize| format!("hv{i:04}");
    let vm_name = |i: usize| format!("vm{i:06}");
    let mut observed = Observed::default();
    let mut desired = Desired {
        policy: Policy {
            max_moves_per_apply: 1_000_000,
            ..Policy::default()
        },
        ..Desired::default()
    };
    desired.intent.headroom = 1;
    let groups = hosts / GROUP;
    for i in 0..hosts {
        let name = host_name(i);
        let g = i / GROUP;
        observed.hosts.insert(
            name.clone(),
            ObservedHost {
                name: name.clone(),
                memory_mib: 512 * 1024,
                max_migrations: 2,
                cpu_vendor: if g.is_multiple_of(2) {
                    CpuVendor::Intel
                } else {
                    CpuVendor::Amd
                },
                switches: vec!["Prod".into()],
                migration_rate_mibps: Some(1000.0),
                max_storage_migrations: 2,
                network_mibps: None,
                volumes: Vec::new(),
                cluster: None,
                reachable: true,
            },
        );
        desired.hosts.insert(
            name.clone(),
            HostSpec {
                name,
                // The first host of every group is in maintenance.
                maintenance: i.is_multiple_of(GROUP),
                max_migrations: None,
                max_storage_migrations: None,
                storage_path: None,
                labels: [("rack".to_string(), format!("r{}", i / RACK))].into(),
                origin: Origin::default(),
            },
        );
    }
    for g in 0..groups {
        let name = format!("g{g:03}");
        desired.intent.host_groups.insert(
            name.clone(),
            HostGroupSpec {
                name,
                hosts: (g * GROUP..(g + 1) * GROUP).map(host_name).collect(),
                origin: Origin::default(),
            },
        );
    }
    // VMs: each on a random host that is not in maintenance, except the
    // choosers placed on purpose below.
    let mut host_of: Vec<usize> = (0..vms)
        .map(|_| {
            loop {
                let h = rng.below(hosts);
                if !h.is_multiple_of(GROUP) {
                    break h;
                }
            }
        })
        .collect();
    let mut bound = 0usize;
    // Rules over disjoint choosers: separate rules of 3 (by rack), together
    // pairs.
    let separates = rules * 3 / 4;
    let togethers = rules - separates;
    let mut next = 0usize;
    let mut rule_specs = Vec::new();
    for r in 0..separates {
        let members: Vec<usize> = (next..next + 3).collect();
        next += 3;
        let g = rng.below(groups);
        // Three distinct racks of the group, or (three in four) two members
        // in one rack.
        for (k, m) in members.iter().enumerate() {
            let rack_in_group = if r % 4 != 3 && k == 1 { 0 } else { k };
            host_of[*m] = g * GROUP + rack_in_group * RACK + 1 + rng.below(RACK - 1);
        }
        if r % 4 != 3 {
            bound += 1;
        }
        rule_specs.push(RuleSpec {
            name: format!("apart-{r}"),
            kind: RuleKind::Separate {
                by: Some("rack".into()),
            },
            vms: members.iter().map(|m| vm_name(*m)).collect(),
            origin: Origin::default(),
        });
    }
    for r in 0..togethers {
        let (a, b) = (next, next + 1);
        next += 2;
        let g = rng.below(groups);
        host_of[a] = g * GROUP + 1 + rng.below(GROUP - 1);
        host_of[b] = g * GROUP + 1 + (host_of[a] - g * GROUP) % (GROUP - 1);
        bound += 1;
        rule_specs.push(RuleSpec {
            name: format!("with-{r}"),
            kind: RuleKind::Together,
            vms: vec![vm_name(a), vm_name(b)],
            origin: Origin::default(),
        });
    }
    desired.intent.rules = rule_specs;
    // Choosers on a host in maintenance: one in 20 of those not in rules.
    for (i, h) in host_of.iter_mut().enumerate().take(choosers).skip(next) {
        if i.is_multiple_of(20) {
            *h = (*h / GROUP) * GROUP;
            bound += 1;
        }
    }
    for (i, h) in host_of.iter().enumerate() {
        let name = vm_name(i);
        let g = h / GROUP;
        observed.vms.insert(
            name.clone(),
            ObservedVm {
                name: name.clone(),
                host: host_name(*h),
                state: PowerState::Running,
                memory_mib: (4 + rng.below(13) as u64) * 1024,
                operation: None,
                migrating_to: None,
                job: None,
                adapters: Vec::new(),
                disks: Vec::new(),
                clustered: false,
            },
        );
        let choice = (i < choosers).then(|| Choice {
            hosts: (g * GROUP..(g + 1) * GROUP).map(host_name).collect(),
            group: Some(format!("g{g:03}")),
        });
        desired.vms.insert(
            name.clone(),
            std::sync::Arc::new(VmSpec {
                name,
                host: if choice.is_some() {
                    host_name(g * GROUP)
                } else {
                    host_name(*h)
                },
                choice,
                priority: 0,
                fallback: Vec::new(),
                adapters: None,
                origin: Origin::default(),
            }),
        );
    }
    (desired, observed, bound)
}

fn main() {
    let mut missed = false;
    for (vms, hosts, choosers, rules, runs, target) in [
        (10_000, 500, 2_000, 200, 5, Duration::from_secs(1)),
        (100_000, 5_000, 20_000, 2_000, 3, Duration::from_secs(10)),
    ] {
        let (desired, observed, bound) = fleet(vms, hosts, choosers, rules);
        let (p, best, median) = timing::time_plan(&desired, &observed, runs);
        let moved: std::collections::BTreeSet<&str> = p
            .actions
            .iter()
            .filter(|a| a.kind.is_move())
            .map(|a| a.kind.vm())
            .collect();
        println!(
            "intent: {vms} VMs / {hosts} hosts, {choosers} with choices, {rules} rules: best {}, median {}; target {}{}",
            ms(best),
            ms(median),
            ms(target),
            if median <= target { "" } else { " MISSED" }
        );
        println!(
            "        {} moves ({} VMs moved), lower bound {bound}; {} blocked",
            p.moves(),
            moved.len(),
            p.blocked.len(),
        );
        missed |= median > target;
    }
    if missed {
        std::process::exit(1);
    }
}
