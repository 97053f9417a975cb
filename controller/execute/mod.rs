//! The executor: carries plans out, in one level-triggered loop.
//!
//! [`converge`] (for `apply`) and [`run`] (for `watch`) drive the same loop
//! ([`engine`]): every event (a move ends or fails, a new spec, a resync, a
//! retry deadline, a backup poll) re-observes the fleet and re-plans at
//! once, with moves in flight as facts of the new plan (their slots and
//! memory stay taken; their destinations count as where the VMs will be),
//! so work that does not depend on them starts at once and nothing is
//! cancelled. Whether a ready action may start now is decided in one
//! place ([`gate::Gate::check`]): no live migration ever starts past a
//! limit, a VM being backed up waits, a failed move waits out its backoff.
//! Failures are handled by class: backups and busy hosts are waited out
//! (no attempt used), retryable errors back off exponentially (backon) up
//! to `maxAttempts`, permanent ones hold the VM where it is with the
//! provider's reason. Retry state lives in a [`Book`] per VM and move, so
//! a re-plan or a new spec never resets it. Right after each move the VM's
//! ACLs, VLANs and connections are put back at once and verified.

mod adapters;
pub mod book;
mod engine;
pub mod gate;
mod task;
pub mod window;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use crate::plan::{Blocked, Plan};
use crate::provider::{JobId, MoveKind, Observed, Provider, ProviderError};
use crate::spec::Desired;

pub use adapters::{AdapterTarget, Counts, ensure_adapter};
pub use book::Book;
pub use gate::{LimitKind, Wait};

/// Tunables of a run (the policy itself comes from the spec).
#[derive(Debug, Clone)]
pub struct Options {
    /// Most moves this run may start (blast-radius guard), hops included.
    pub max_moves: Option<u32>,
    /// First retry delay after a retryable failure.
    pub retry_min_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// How often a move waiting for a backup looks again.
    pub backup_poll: Duration,
    /// How long a move waits when a host reports it is busy.
    pub busy_retry: Duration,
    /// Start moves outside `policy.moveWindows` too (`apply --ignore-windows`).
    pub ignore_windows: bool,
    /// Outside every move window, wait for the next one (`apply`) instead
    /// of returning once the fixes that may run are done.
    pub wait_for_window: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_moves: None,
            retry_min_delay: Duration::from_secs(10),
            retry_max_delay: Duration::from_secs(120),
            backup_poll: Duration::from_secs(30),
            busy_retry: Duration::from_secs(15),
            ignore_windows: false,
            wait_for_window: false,
        }
    }
}

/// What a run did (the contract's `apply --output json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always 1.
    pub format_version: u32,
    /// The fleet matches the desired state.
    pub converged: bool,
    /// Moves completed (hops included).
    pub moves: u32,
    /// Migrations requested.
    pub attempts: u32,
    /// Requested migrations that failed.
    pub failed_attempts: u32,
    /// ACL rules added or removed.
    pub acl_changes: u32,
    /// Adapters connected.
    pub reconnects: u32,
    /// VMs left unconverged, and why.
    pub blocked: Vec<Blocked>,
    /// Time the run took, seconds (simulated time with the simulator).
    pub elapsed_seconds: f64,
    /// The run was interrupted before it finished.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// Something worth telling the operator while a run goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A round planned these actions.
    Planned {
        /// Round number, from 1.
        round: u32,
        /// The plan.
        plan: Box<Plan>,
    },
    /// A migration was requested.
    MoveStarted {
        /// VM.
        vm: String,
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// Live or offline.
        kind: MoveKind,
        /// Attempt number for this VM.
        attempt: u32,
        /// Expected seconds.
        estimate: f64,
    },
    /// A migration ended.
    MoveFinished {
        /// VM.
        vm: String,
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// Error message when it failed.
        error: Option<String>,
    },
    /// A move waits (backup, busy host, a move from an earlier run).
    Waiting {
        /// VM.
        vm: String,
        /// Why.
        why: String,
    },
    /// An adapter was corrected.
    AdapterFixed {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// What was done.
        what: String,
    },
    /// A VM was given up on.
    Blocked {
        /// VM.
        vm: String,
        /// Why.
        reason: String,
    },
    /// A round ended early; the next one re-observes.
    Replanning {
        /// Why.
        why: String,
    },
    /// Outside every move window: moves wait for the next one (reported
    /// when the wait begins, then about once a minute as a countdown).
    WindowWait {
        /// `outside the move window; opens Mon 22:00 Europe/Amsterdam`.
        why: String,
        /// Time left until it opens (`None`: no window opens within a week).
        remaining: Option<Duration>,
        /// The VMs whose moves wait (on the first report of a wait only).
        vms: Vec<String>,
    },
}

/// Receives progress events (the CLI draws bars or log lines).
pub trait Observer: Send + Sync {
    /// Called for each event, in order.
    fn event(&self, event: &Event);

    /// Whether [`Observer::state`] is wanted (building a snapshot costs a
    /// copy of the plan).
    fn wants_state(&self) -> bool {
        false
    }

    /// Called after each re-plan with the loop's whole picture.
    fn state(&self, _snapshot: &Snapshot) {}
}

/// A VM whose move is in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovingVm {
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
    /// Attempt number (0: found running, not started by this loop).
    pub attempt: u32,
}

/// The loop's picture after one re-plan: enough for a status file.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The spec in force.
    pub desired: Arc<Desired>,
    /// The fleet as observed (a moving VM is on its source).
    pub observed: Arc<Observed>,
    /// The plan, made from where moves in flight land.
    pub plan: Arc<Plan>,
    /// VMs in flight.
    pub moving: BTreeMap<String, MovingVm>,
    /// Ready actions that wait, by VM, with the reason.
    pub waiting: BTreeMap<String, String>,
    /// VMs held back by the loop itself (a fix given up on, the run's move limit).
    pub blocked: BTreeMap<String, String>,
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event) {}
}

/// A migration running on the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    /// VM.
    pub vm: String,
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
    /// Provider job.
    pub job: JobId,
}

/// Shared between a run and whoever may stop it (Ctrl-C, SIGTERM).
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    notify: Notify,
    /// Wakes the loop for a re-plan (a permit is kept until it looks).
    wake: Notify,
    /// A new spec for the loop to take at its next re-plan.
    spec: Mutex<Option<Arc<Desired>>>,
    /// A first look the caller already has (see [`Control::seed`]).
    seed: Mutex<Option<Seed>>,
    running: Mutex<BTreeMap<String, RunningJob>>,
}

impl Control {
    /// A control that has not been stopped.
    pub fn new() -> Arc<Control> {
        Arc::new(Control::default())
    }

    /// Stop starting moves; running ones finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.wake.notify_one();
    }

    /// Hands the loop a new spec: it re-plans at once, moves in flight
    /// going on as they are.
    pub fn set_spec(&self, desired: Arc<Desired>) {
        if let Ok(mut s) = self.spec.lock() {
            *s = Some(desired);
        }
        self.wake.notify_one();
    }

    /// Hands the loop, before it starts, the observation and plan its
    /// caller just made from the same spec and holds: its first round uses
    /// them instead of observing and planning again (at 100,000 VMs that
    /// is most of a second). Ignored when a move is found already running
    /// (the plan must then be made from where it lands) or after the
    /// first round.
    pub fn seed(&self, seed: Seed) {
        if let Ok(mut s) = self.seed.lock() {
            *s = Some(seed);
        }
    }

    fn take_seed(&self) -> Option<Seed> {
        self.seed.lock().ok().and_then(|mut s| s.take())
    }

    /// Asks the loop to observe and re-plan now (a resync).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether a new spec waits for the loop's next re-plan.
    fn spec_pending(&self) -> bool {
        self.spec.lock().is_ok_and(|s| s.is_some())
    }

    fn take_spec(&self) -> Option<Arc<Desired>> {
        self.spec.lock().ok().and_then(|mut s| s.take())
    }

    async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Migrations now running on the hosts.
    pub fn running_jobs(&self) -> Vec<RunningJob> {
        self.running
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    fn track(&self, job: RunningJob) {
        if let Ok(mut r) = self.running.lock() {
            r.insert(job.vm.clone(), job);
        }
    }

    fn untrack(&self, vm: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(vm);
        }
    }
}

/// The executor could not do its work at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The fleet could not be observed.
    #[error("cannot observe the fleet: {0}")]
    Observe(ProviderError),
}

/// An observation and the plan made from it, for [`Control::seed`].
#[derive(Debug, Clone)]
pub struct Seed {
    /// The spec the plan was made from (a seed for another is ignored).
    pub desired: Arc<Desired>,
    /// The fleet as observed.
    pub observed: Arc<Observed>,
    /// The plan of the spec in force, with the loop's holds, from it.
    pub plan: Arc<Plan>,
}

/// Brings the fleet to the desired state and returns when nothing is left
/// to do (or only blocked VMs remain), or after a stop once every move in
/// flight has ended.
pub async fn converge(
    desired: &Desired,
    provider: Arc<dyn Provider>,
    opts: &Options,
    observer: &dyn Observer,
    control: Arc<Control>,
) -> Result<Report, ExecError> {
    let book = Arc::new(Mutex::new(Book::new()));
    run(
        Arc::new(desired.clone()),
        provider,
        opts,
        observer,
        control,
        book,
        false,
    )
    .await
}

/// The loop itself, with retry state that outlives it (`book`) and, with
/// `forever`, no end but a stop: it then waits for new specs
/// ([`Control::set_spec`]) and resyncs ([`Control::wake`]) when the fleet
/// has converged.
pub async fn run(
    desired: Arc<Desired>,
    provider: Arc<dyn Provider>,
    opts: &Options,
    observer: &dyn Observer,
    control: Arc<Control>,
    book: Arc<Mutex<Book>>,
    forever: bool,
) -> Result<Report, ExecError> {
    engine::Engine::new(desired, provider, opts, observer, control, book)
        .forever(forever)
        .run()
        .await
}
