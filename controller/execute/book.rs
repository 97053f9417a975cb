//! Retry state that outlives re-plans: per VM and move, never per pass.
//!
//! A re-plan builds a new plan from scratch, so nothing about a move's past
//! may live in the plan. The [`Book`] keeps it instead, keyed by the VM and
//! the destination it is going to: failed attempts, the backoff deadline,
//! when the VM started waiting for a backup or a busy host, and the moves
//! and fixes given up on. A new spec that sends the VM somewhere else is a
//! new move with a fresh record; one that leaves its destination alone
//! keeps the count. Under `watch` one book lives as long as the process.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use crate::spec::Desired;

/// A move as the book knows it: the VM and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MoveKey {
    /// VM.
    pub vm: String,
    /// Destination.
    pub to: String,
}

/// What the book remembers about one move.
#[derive(Default)]
pub struct Record {
    /// Failed attempts (waits for backups and busy hosts do not count).
    pub failures: u32,
    /// The next attempt may not start before this.
    pub not_before: Option<Instant>,
    /// The last error, for the reason text.
    pub last_error: Option<String>,
    /// When the VM began to wait for a backup or a busy host.
    pub waiting_since: Option<Instant>,
    backoff: Option<backon::ExponentialBackoff>,
}

/// A VM given up on, and under which spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// Why.
    pub reason: String,
    /// The VM's declared host when it was given up on; a spec that changes
    /// it lifts the hold.
    pub declared: Option<String>,
    /// The cause may pass (retries used up, a wait past its budget): a
    /// resync lifts it. Otherwise only a new spec for the VM does.
    pub passing: bool,
}

/// Retry state and holds, shared by every re-plan of a run (or a watch).
#[derive(Default)]
pub struct Book {
    records: HashMap<MoveKey, Record>,
    holds: BTreeMap<String, Hold>,
    /// Adapter fixes given up on: (VM, adapter) and why.
    dead_fixes: BTreeMap<(String, String), String>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book::default()
    }

    /// The record of a move, if it has one.
    pub fn get(&self, key: &MoveKey) -> Option<&Record> {
        self.records.get(key)
    }

    /// The record of a move, made on first use.
    pub fn entry(&mut self, key: &MoveKey) -> &mut Record {
        self.records.entry(key.clone()).or_default()
    }

    /// A move completed: its record is done with.
    pub fn completed(&mut self, key: &MoveKey) {
        self.records.remove(key);
    }

    /// Records a failed attempt; returns the attempt count and the delay
    /// before the next one.
    pub fn failed(
        &mut self,
        key: &MoveKey,
        error: &str,
        min: Duration,
        max: Duration,
        attempts: u32,
        now: Instant,
    ) -> (u32, Duration) {
        let seed = key
            .vm
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let r = self.entry(key);
        r.failures += 1;
        r.last_error = Some(error.to_string());
        r.waiting_since = None;
        let delay = r
            .backoff
            .get_or_insert_with(|| {
                ExponentialBuilder::new()
                    .with_min_delay(min)
                    .with_max_delay(max)
                    .with_factor(2.0)
                    .with_jitter_seed(seed)
                    .with_max_times(attempts.max(1) as usize)
                    .build()
            })
            .next()
            .unwrap_or(max);
        r.not_before = Some(now + delay);
        (r.failures, delay)
    }

    /// Gives up on a VM's moves until the spec sends it elsewhere.
    pub fn hold(&mut self, vm: &str, reason: String, passing: bool, desired: &Desired) {
        self.holds.insert(
            vm.to_string(),
            Hold {
                reason,
                declared: desired.vms.get(vm).map(|s| s.host.clone()),
                passing,
            },
        );
        // The next try starts with a fresh count.
        self.records.retain(|k, _| k.vm != vm);
    }

    /// Lifts the holds whose cause may have passed (a resync).
    pub fn lift_passing_holds(&mut self) {
        self.holds.retain(|_, h| !h.passing);
    }

    /// Gives up on fixing one adapter.
    pub fn dead_fix(&mut self, vm: &str, adapter: &str, reason: String) {
        self.dead_fixes
            .insert((vm.to_string(), adapter.to_string()), reason);
    }

    /// Why fixing this adapter was given up on, if it was.
    pub fn fix_given_up(&self, vm: &str, adapter: &str) -> Option<&str> {
        self.dead_fixes
            .get(&(vm.to_string(), adapter.to_string()))
            .map(String::as_str)
    }

    /// The holds in force under `desired`, as the planner takes them.
    /// Holds made under a different declared host have lapsed and go.
    pub fn holds_for(&mut self, desired: &Desired) -> BTreeMap<String, String> {
        self.holds
            .retain(|vm, h| desired.vms.get(vm).map(|s| &s.host) == h.declared.as_ref());
        self.holds
            .iter()
            .map(|(vm, h)| (vm.clone(), h.reason.clone()))
            .collect()
    }
}
