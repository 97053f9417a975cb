//! The cache's shortcuts against a fresh load: whatever happens to the files
//! (edits, new files, removed, renamed or reordered ones, duplicates across
//! files, broken references, a second policy, intent, syntax errors), a
//! [`SpecCache`] that patched, merged or said "unchanged" must give what
//! [`load`](super::load) gives, diagnostics and all.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::{Desired, SpecCache, SpecError};

/// One generated file: hosts, VMs (name, host, fallback), maybe a policy,
/// a rule or a host choice, or broken YAML.
#[derive(Debug, Clone)]
struct Gen {
    hosts: Vec<u8>,
    vms: Vec<(u8, u8, Option<u8>)>,
    policy: Option<u8>,
    rule: Option<(u8, u8)>,
    choice: Option<(u8, u8)>,
    broken: bool,
}

impl Gen {
    fn render(&self) -> String {
        if self.broken {
            return "apiVersion: berth/v1\nkind: Placement\nspec: { vms: [ }\n".into();
        }
        let mut s = String::from("apiVersion: berth/v1\nkind: Placement\nspec:\n");
        if self.hosts.is_empty() && self.vms.is_empty() && self.policy.is_none() {
            s.pop();
            s += " {}\n";
            return s;
        }
        if let Some(n) = self.policy {
            s += &format!("  policy:\n    maxParallelMigrations: {}\n", n % 70);
        }
        if !self.hosts.is_empty() {
            s += "  hosts:\n";
            for h in &self.hosts {
                s += &format!("    - name: hv{h}\n");
            }
        }
        if !self.vms.is_empty() || self.choice.is_some() {
            s += "  vms:\n";
            for (n, h, f) in &self.vms {
                s += &format!("    - name: vm{n}\n      host: hv{h}\n");
                if let Some(f) = f {
                    s += &format!("      fallback: [hv{f}]\n");
                }
            }
            if let Some((n, h)) = self.choice {
                s += &format!("    - name: vm{n}\n      hosts: [hv{h}, hv0]\n");
            }
        }
        if let Some((a, b)) = self.rule {
            s += &format!("  rules:\n    - name: r{a}\n      separate: [vm{a}, vm{b}]\n");
        }
        s
    }
}

fn gen_file() -> impl Strategy<Value = Gen> {
    (
        // Hosts beyond the host file's hv0-hv6, now and then twice.
        prop::option::weighted(0.15, 7u8..12).prop_map(|h| h.into_iter().collect::<Vec<_>>()),
        prop::collection::vec((0u8..24, 0u8..7, prop::option::weighted(0.1, 0u8..7)), 0..4),
        prop::option::weighted(0.1, 0u8..200),
        prop::option::weighted(0.05, (0u8..24, 0u8..24)),
        prop::option::weighted(0.05, (0u8..24, 0u8..7)),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(hosts, vms, policy, rule, choice, broken)| Gen {
            hosts,
            vms,
            policy,
            rule,
            choice,
            broken,
        })
}

/// A change to the directory.
#[derive(Debug, Clone)]
enum Op {
    /// Rewrites the `i`th file (modulo the count) with new content.
    Edit(usize, Gen),
    /// Changes one VM's host in the `i`th file, as a commit usually does.
    Move(usize, u8),
    /// Writes a file named `n`.
    Add(u8, Gen),
    /// Removes the `i`th file.
    Remove(usize),
    /// Renames the `i`th file to `n` (which reorders the load).
    Rename(usize, u8),
    /// Rewrites the host file with these of hv0-hv6 (a host VMs name may go).
    Hosts(Vec<u8>),
    /// Touches nothing.
    Nothing,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<usize>(), gen_file()).prop_map(|(i, g)| Op::Edit(i, g)),
        4 => (any::<usize>(), 0u8..8).prop_map(|(i, h)| Op::Move(i, h)),
        1 => (0u8..8, gen_file()).prop_map(|(n, g)| Op::Add(n, g)),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (any::<usize>(), 0u8..8).prop_map(|(i, n)| Op::Rename(i, n)),
        1 => prop::collection::vec(prop::bool::weighted(0.9), 7).prop_map(|keep| {
            Op::Hosts((0u8..7).filter(|h| keep[usize::from(*h)]).collect())
        }),
        1 => Just(Op::Nothing),
    ]
}

/// The VM files (not the host file, `a-hosts.yaml`).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "a-hosts.yaml"))
        .collect();
    v.sort();
    v
}

fn name(dir: &Path, n: u8) -> PathBuf {
    dir.join(format!("f{n}.yaml"))
}

fn apply(dir: &Path, op: &Op) {
    let now = files(dir);
    let pick = |i: usize| now.get(i % now.len().max(1)).cloned();
    match op {
        Op::Edit(i, g) => {
            if let Some(p) = pick(*i) {
                std::fs::write(p, g.render()).expect("write");
            }
        }
        Op::Move(i, h) => {
            if let Some(p) = pick(*i) {
                let text = std::fs::read_to_string(&p).expect("read");
                if let Some(at) = text.find("      host: hv") {
                    let end = text[at..].find('\n').map_or(text.len(), |e| at + e);
                    let moved = format!("{}      host: hv{h}{}", &text[..at], &text[end..]);
                    std::fs::write(p, moved).expect("write");
                }
            }
        }
        Op::Add(n, g) => std::fs::write(name(dir, *n), g.render()).expect("write"),
        Op::Remove(i) => {
            if let Some(p) = pick(*i) {
                std::fs::remove_file(p).expect("remove");
            }
        }
        Op::Rename(i, n) => {
            if let Some(p) = pick(*i) {
                std::fs::rename(p, name(dir, *n)).expect("rename");
            }
        }
        Op::Hosts(hosts) => write_hosts(dir, hosts),
        Op::Nothing => {}
    }
}

fn write_hosts(dir: &Path, hosts: &[u8]) {
    let g = Gen {
        hosts: hosts.to_vec(),
        vms: vec![],
        policy: None,
        rule: None,
        choice: None,
        broken: false,
    };
    std::fs::write(dir.join("a-hosts.yaml"), g.render()).expect("write");
}

/// Everything a load says, positions of related places included.
fn said(r: &Result<Desired, SpecError>) -> String {
    match r {
        Ok(d) => format!("{d:?}"),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| format!("{d} [{:?} {:?}]\n", d.origin.loc, d.help))
            .collect(),
    }
}

/// [`said`] of a shared result.
fn said_shared(r: &Result<std::sync::Arc<Desired>, SpecError>) -> String {
    said(
        &r.as_ref()
            .map(|d| Desired::clone(d))
            .map_err(SpecError::clone),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_cache_gives_what_a_fresh_load_gives_whatever_the_files_do(
        start in prop::collection::vec(gen_file(), 1..5),
        ops in prop::collection::vec(op(), 1..12),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = vec![dir.path().to_path_buf()];
        write_hosts(dir.path(), &[0, 1, 2, 3, 4, 5, 6]);
        for (n, g) in start.iter().enumerate() {
            std::fs::write(name(dir.path(), n as u8), g.render()).expect("write");
        }
        let mut cache = SpecCache::new();
        let mut last = said(&cache.load(&root));
        prop_assert_eq!(&last, &said(&super::load(&root)));
        for op in &ops {
            apply(dir.path(), op);
            let fresh = said(&super::load(&root));
            // `None`: nothing changed, so the last result stands, and must
            // be the fresh load's.
            if let Some(r) = cache.reload(&root) {
                last = said_shared(&r);
            }
            prop_assert_eq!(&last, &fresh, "after {:?}", op);
        }
    }
}

/// Reloads changed files that the patch must refuse: merged in full, with
/// a fresh load's result, which names `problem`.
fn merged_in_full_and_reports(cache: &mut SpecCache, root: &[PathBuf], problem: &str) {
    let e = cache.reload(root).expect("changed");
    assert!(!cache.patched());
    let said_now = said_shared(&e);
    assert_eq!(said_now, said(&super::load(root)));
    assert!(said_now.contains(problem), "{said_now}");
}

/// A one-VM move in a clean spec is patched, not merged, and equals a load;
/// a move that breaks a reference, or a duplicate, is merged in full.
#[test]
fn a_move_is_patched_and_a_broken_one_is_reported_as_a_load_reports_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = vec![dir.path().to_path_buf()];
    let hosts = Gen {
        hosts: vec![0, 1, 2],
        vms: vec![],
        policy: Some(3),
        rule: None,
        choice: None,
        broken: false,
    };
    let vms = Gen {
        hosts: vec![],
        vms: vec![(1, 0, Some(2)), (2, 1, None)],
        policy: None,
        rule: None,
        choice: None,
        broken: false,
    };
    std::fs::write(name(dir.path(), 0), hosts.render()).expect("write");
    std::fs::write(name(dir.path(), 1), vms.render()).expect("write");
    let mut cache = SpecCache::new();
    cache.load(&root).expect("valid");
    assert!(cache.reload(&root).is_none(), "nothing changed");

    apply(dir.path(), &Op::Move(1, 1));
    let moved = cache.reload(&root).expect("changed").expect("valid");
    assert!(cache.patched());
    assert_eq!(moved.vms["vm1"].host, "hv1");
    assert_eq!(
        format!("{moved:?}"),
        format!("{:?}", super::load(&root).expect("valid"))
    );

    // The policy moves to the VMs' file: still one policy, patched.
    let mut both = vms.clone();
    both.policy = Some(9);
    std::fs::write(
        name(dir.path(), 0),
        Gen {
            policy: None,
            ..hosts.clone()
        }
        .render(),
    )
    .expect("write");
    std::fs::write(name(dir.path(), 1), both.render()).expect("write");
    let r = cache.reload(&root).expect("changed");
    assert!(cache.patched());
    assert_eq!(said_shared(&r), said(&super::load(&root)));

    // A host that is not declared: the full merge reports it.
    apply(dir.path(), &Op::Move(1, 5));
    merged_in_full_and_reports(&mut cache, &root, "not a declared host");

    // Back to valid, then the earlier file declares vm2 too.
    // (After an invalid load there is nothing to patch: merged in full.)
    apply(dir.path(), &Op::Move(1, 0));
    cache.reload(&root).expect("changed").expect("valid");
    assert!(!cache.patched());
    let dup = Gen {
        vms: vec![(2, 1, None)],
        policy: None,
        ..hosts.clone()
    };
    std::fs::write(name(dir.path(), 0), dup.render()).expect("write");
    merged_in_full_and_reports(&mut cache, &root, "declared twice");
    // The invalid spec reads the same: nothing to report again.
    assert!(cache.reload(&root).is_none());
}
