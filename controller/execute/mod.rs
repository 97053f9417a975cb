//! The executor: carries plans out until the fleet converges.
//!
//! [`converge`] is level-triggered: each round observes, plans and runs the
//! plan's partial order, and anything unexpected ends the round early so the
//! next one starts from a fresh observation rather than a stale plan. Within
//! a round, moves start only when their `after` are done and a slot is free
//! on both hosts and fleet-wide (the planner's [`Scheduler`]), so no live
//! migration ever starts past a limit. Failures are handled by class:
//! backups and busy hosts are waited out (no attempt used), retryable errors
//! back off exponentially (backon) up to `maxAttempts`, permanent ones hold
//! the VM where it is with the provider's reason. Right after each move the
//! VM's ACLs, VLANs and connections are put back at once and verified.

mod adapters;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::schedule::{Caps, Dependencies, Scheduler};
use crate::plan::{self, Action, ActionKind, Blocked, Plan};
use crate::provider::{
    ErrorClass, JobId, MoveKind, MoveRequest, ObservedVm, Provider, ProviderError, WaitReason,
};
use crate::spec::{Desired, VmOperation, human_seconds};

pub use adapters::{AdapterTarget, Counts, ensure_adapter};

/// Tunables of a run (the policy itself comes from the spec).
#[derive(Debug, Clone)]
pub struct Options {
    /// Most moves this run may start (blast-radius guard), hops included.
    pub max_moves: Option<u32>,
    /// Rounds of observe-plan-run before giving up.
    pub max_rounds: u32,
    /// First retry delay after a retryable failure.
    pub retry_min_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// How often a move waiting for a backup looks again.
    pub backup_poll: Duration,
    /// How long a move waits when a host reports it is busy.
    pub busy_retry: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_moves: None,
            max_rounds: 10,
            retry_min_delay: Duration::from_secs(10),
            retry_max_delay: Duration::from_secs(120),
            backup_poll: Duration::from_secs(30),
            busy_retry: Duration::from_secs(15),
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
}

/// Receives progress events (the CLI draws bars or log lines).
pub trait Observer: Send + Sync {
    /// Called for each event, in order.
    fn event(&self, event: &Event);
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

    async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.stopping() {
                return;
            }
            notified.await;
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

/// State that lasts across rounds.
struct Run<'a> {
    desired: &'a Desired,
    provider: Arc<dyn Provider>,
    opts: &'a Options,
    observer: &'a dyn Observer,
    control: Arc<Control>,
    report: Report,
    /// VMs held where they are, and why.
    holds: BTreeMap<String, String>,
    /// Failed attempts per VM.
    failures: HashMap<String, u32>,
    /// Backoff delays per VM.
    backoff: HashMap<String, backon::ExponentialBackoff>,
    /// When a VM first had to wait (backup or busy host).
    waiting_since: HashMap<String, Instant>,
    moves_started: u32,
}

/// How a round ended.
enum RoundEnd {
    /// Every action ran.
    Done,
    /// Something unexpected: observe and plan again.
    Replan(String),
    /// A stop was asked for.
    Stopped,
}

/// What handling a task's outcome decided.
enum Handled {
    /// The action is done; its successors may start.
    Done,
    /// The action will be tried again (after a wait or a backoff).
    Again,
    /// The action is not done and the round must end.
    End(RoundEnd),
}

/// What a task reports back.
enum Outcome {
    Moved {
        id: u32,
        counts: Counts,
        problems: Vec<String>,
    },
    MoveFailed {
        id: u32,
        error: ProviderError,
        requested: bool,
    },
    TimedOut {
        id: u32,
    },
    AdapterDone {
        id: u32,
        result: Result<Counts, ProviderError>,
    },
}

/// Brings the fleet to the desired state: observe, plan, execute, repeat,
/// until nothing is left to do or only blocked VMs remain.
pub async fn converge(
    desired: &Desired,
    provider: Arc<dyn Provider>,
    opts: &Options,
    observer: &dyn Observer,
    control: Arc<Control>,
) -> Result<Report, ExecError> {
    let started = Instant::now();
    let mut run = Run {
        desired,
        provider,
        opts,
        observer,
        control: control.clone(),
        report: Report {
            format_version: 1,
            ..Report::default()
        },
        holds: BTreeMap::new(),
        failures: HashMap::new(),
        backoff: HashMap::new(),
        waiting_since: HashMap::new(),
        moves_started: 0,
    };
    let mut round = 0;
    loop {
        round += 1;
        let observed = run.provider.observe().await.map_err(ExecError::Observe)?;
        if observed.vms.values().any(|v| v.job.is_some()) {
            if control.stopping() {
                run.report.interrupted = true;
                break;
            }
            if round > opts.max_rounds {
                for vm in observed.vms.values().filter(|v| v.job.is_some()) {
                    run.report.blocked.push(Blocked {
                        vm: vm.name.clone(),
                        reason: "a move started outside this run is still running".to_string(),
                    });
                }
                break;
            }
            run.wait_for_running(&observed.vms).await;
            continue;
        }
        let plan = plan::plan_with_holds(desired, &observed, &run.holds);
        run.report.blocked = plan.blocked.clone();
        if !plan.has_changes() {
            run.report.converged = plan.in_sync;
            break;
        }
        if control.stopping() {
            run.report.interrupted = true;
            break;
        }
        if round > opts.max_rounds {
            let why = format!(
                "not converged after {} rounds of observe, plan and execute",
                opts.max_rounds
            );
            observer.event(&Event::Replanning { why: why.clone() });
            for a in &plan.actions {
                let vm = a.kind.vm();
                if !run.report.blocked.iter().any(|b| b.vm == vm) {
                    run.report.blocked.push(Blocked {
                        vm: vm.to_string(),
                        reason: why.clone(),
                    });
                }
            }
            break;
        }
        observer.event(&Event::Planned {
            round,
            plan: Box::new(plan.clone()),
        });
        let caps = Caps::new(desired, &observed);
        match run.round(&plan, &caps, &observed.vms).await {
            RoundEnd::Done => {}
            RoundEnd::Replan(why) => observer.event(&Event::Replanning { why }),
            RoundEnd::Stopped => {
                run.report.interrupted = true;
                // One last look, so the report's blocked list is current.
                if let Ok(o) = run.provider.observe().await {
                    let p = plan::plan_with_holds(desired, &o, &run.holds);
                    run.report.blocked = p.blocked;
                    run.report.converged = p.in_sync;
                }
                break;
            }
        }
    }
    run.report.elapsed_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    Ok(run.report)
}

impl Run<'_> {
    /// Waits for migrations that were running before this run looked
    /// (restart safety: they are followed, never issued again).
    async fn wait_for_running(&mut self, vms: &BTreeMap<String, ObservedVm>) {
        let mut set = JoinSet::new();
        for vm in vms.values() {
            let (Some(job), Some(to)) = (&vm.job, &vm.migrating_to) else {
                continue;
            };
            self.observer.event(&Event::Waiting {
                vm: vm.name.clone(),
                why: format!("a move to {to} is already running; waiting for it"),
            });
            self.control.track(RunningJob {
                vm: vm.name.clone(),
                from: vm.host.clone(),
                to: to.clone(),
                job: job.clone(),
            });
            let provider = self.provider.clone();
            let job = job.clone();
            let timeout = self.desired.policy.move_timeout;
            let name = vm.name.clone();
            set.spawn(async move {
                let r = tokio::time::timeout(timeout, provider.wait_job(&job)).await;
                (name, r)
            });
        }
        while let Some(done) = set.join_next().await {
            if let Ok((vm, result)) = done {
                self.control.untrack(&vm);
                if let Ok(Err(e)) | Err(e) = result.map_err(|_| {
                    ProviderError::retryable("the move did not finish within moveTimeout")
                }) {
                    tracing::info!(vm, "a move from an earlier run failed: {e}");
                }
            }
        }
    }

    fn delay_for(&mut self, vm: &str) -> Duration {
        let attempts = self.desired.policy.max_attempts as usize;
        let (min, max) = (self.opts.retry_min_delay, self.opts.retry_max_delay);
        let seed = vm
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        self.backoff
            .entry(vm.to_string())
            .or_insert_with(|| {
                ExponentialBuilder::new()
                    .with_min_delay(min)
                    .with_max_delay(max)
                    .with_factor(2.0)
                    .with_jitter_seed(seed)
                    .with_max_times(attempts.max(1))
                    .build()
            })
            .next()
            .unwrap_or(max)
    }

    fn hold(&mut self, vm: &str, reason: String) {
        self.observer.event(&Event::Blocked {
            vm: vm.to_string(),
            reason: reason.clone(),
        });
        self.holds.insert(vm.to_string(), reason);
    }

    /// Runs one plan; returns how it ended.
    async fn round(
        &mut self,
        plan: &Plan,
        caps: &Caps,
        observed: &BTreeMap<String, ObservedVm>,
    ) -> RoundEnd {
        let actions: HashMap<u32, &Action> = plan.actions.iter().map(|a| (a.id, a)).collect();
        let mut sched = Scheduler::new(plan, caps);
        let mut deps = Dependencies::new(plan);
        for id in deps.roots() {
            sched.make_ready(id);
        }
        // Adapter state before the round, restored after a move where the
        // spec does not manage it.
        let before: HashMap<String, Vec<crate::provider::ObservedAdapter>> = plan
            .actions
            .iter()
            .filter(|a| a.kind.is_move())
            .filter_map(|a| observed.get(a.kind.vm()))
            .map(|v| (v.name.clone(), v.adapters.clone()))
            .collect();
        let mut jobs: JoinSet<Outcome> = JoinSet::new();
        let mut timers: JoinSet<u32> = JoinSet::new();
        // Tasks report what they start here, so "started" is said only
        // when a migration was really requested.
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let mut remaining = plan.actions.len();
        let mut end: Option<RoundEnd> = None;
        loop {
            if end.is_none() && self.control.stopping() {
                end = Some(RoundEnd::Stopped);
            }
            if end.is_none() {
                for id in sched.pick() {
                    let Some(action) = actions.get(&id) else {
                        continue;
                    };
                    if let ActionKind::Move { .. } = action.kind
                        && let Some(max) = self.opts.max_moves
                        && self.moves_started >= max
                    {
                        sched.finish(id);
                        end = Some(RoundEnd::Replan(format!(
                            "the run reached its limit of {max} moves"
                        )));
                        self.holds.insert(
                            action.kind.vm().to_string(),
                            format!("not moved: the run reached its limit of {max} moves"),
                        );
                        break;
                    }
                    self.spawn(&mut jobs, action, &before, &tx);
                }
            }
            if end.is_some() {
                timers.abort_all();
            }
            if jobs.is_empty() && (end.is_some() || timers.is_empty()) {
                while let Ok(ev) = rx.try_recv() {
                    self.observer.event(&ev);
                }
                break;
            }
            tokio::select! {
                biased;
                Some(ev) = rx.recv() => self.observer.event(&ev),
                Some(done) = jobs.join_next() => {
                    while let Ok(ev) = rx.try_recv() {
                        self.observer.event(&ev);
                    }
                    let Ok(outcome) = done else { continue };
                    match self.handle(outcome, &actions, &mut sched, &mut deps, &mut timers) {
                        Handled::Done => remaining = remaining.saturating_sub(1),
                        Handled::Again => {}
                        Handled::End(e) => {
                            if end.is_none() {
                                end = Some(e);
                            }
                        }
                    }
                }
                Some(done) = timers.join_next(), if end.is_none() => {
                    if let Ok(id) = done {
                        sched.make_ready(id);
                    }
                }
                _ = self.control.stopped(), if end.is_none() => {
                    end = Some(RoundEnd::Stopped);
                }
            }
        }
        match end {
            Some(e) => e,
            None if remaining == 0 => RoundEnd::Done,
            None => RoundEnd::Replan("some actions could not start".to_string()),
        }
    }

    /// Starts one action as a task.
    fn spawn(
        &mut self,
        jobs: &mut JoinSet<Outcome>,
        action: &Action,
        before: &HashMap<String, Vec<crate::provider::ObservedAdapter>>,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let provider = self.provider.clone();
        let id = action.id;
        match &action.kind {
            ActionKind::Move {
                vm,
                from,
                to,
                method,
                estimated_seconds,
                ..
            } => {
                let request = MoveRequest {
                    vm: vm.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    kind: *method,
                    storage_path: None,
                };
                let targets = adapters::after_move_targets(
                    self.desired.vms.get(vm),
                    before.get(vm).map(Vec::as_slice).unwrap_or(&[]),
                );
                let timeout = self.desired.policy.move_timeout;
                let attempt = self.failures.get(vm).copied().unwrap_or(0) + 1;
                let estimate = *estimated_seconds;
                let control = self.control.clone();
                self.moves_started += 1;
                let started = Event::MoveStarted {
                    vm: vm.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    kind: *method,
                    attempt,
                    estimate,
                };
                let events = events.clone();
                jobs.spawn(async move {
                    run_move(MoveTask {
                        provider,
                        request,
                        targets,
                        timeout,
                        control,
                        id,
                        started,
                        events,
                    })
                    .await
                });
            }
            ActionKind::SetAcls { vm, adapter, .. }
            | ActionKind::Connect { vm, adapter, .. }
            | ActionKind::SetVlan { vm, adapter, .. } => {
                let target = adapters::declared_target(self.desired.vms.get(vm), adapter);
                let (vm, adapter) = (vm.clone(), adapter.clone());
                jobs.spawn(async move {
                    let result = async {
                        let now = provider.observe_vm(&vm).await?;
                        let Some(have) = now.adapters.iter().find(|a| a.name == adapter) else {
                            return Err(ProviderError::permanent(format!(
                                "VM `{vm}` has no adapter `{adapter}`"
                            )));
                        };
                        ensure_adapter(provider.as_ref(), &vm, have, &target).await
                    }
                    .await;
                    Outcome::AdapterDone { id, result }
                });
            }
        }
    }

    /// Handles a finished task; returns how the round must end, if it must.
    fn handle(
        &mut self,
        outcome: Outcome,
        actions: &HashMap<u32, &Action>,
        sched: &mut Scheduler,
        deps: &mut Dependencies,
        timers: &mut JoinSet<u32>,
    ) -> Handled {
        let done = |id: u32, sched: &mut Scheduler, deps: &mut Dependencies| {
            sched.finish(id);
            for ready in deps.done(id) {
                sched.make_ready(ready);
            }
        };
        let (vm, from, to) = match actions.get(&outcome_id(&outcome)).map(|a| &a.kind) {
            Some(ActionKind::Move { vm, from, to, .. }) => (vm.clone(), from.clone(), to.clone()),
            Some(other) => (other.vm().to_string(), String::new(), String::new()),
            None => return Handled::Done,
        };
        match outcome {
            Outcome::Moved {
                id,
                counts,
                problems,
            } => {
                self.report.moves += 1;
                self.report.attempts += 1;
                self.waiting_since.remove(&vm);
                self.observer.event(&Event::MoveFinished {
                    vm: vm.clone(),
                    from,
                    to,
                    error: None,
                });
                self.count(&vm, &counts);
                for p in problems {
                    tracing::warn!(vm, "{p}");
                }
                done(id, sched, deps);
                Handled::Done
            }
            Outcome::AdapterDone { id, result } => {
                match result {
                    Ok(counts) => self.count(&vm, &counts),
                    Err(e) => {
                        tracing::warn!(vm, "could not correct an adapter: {e}");
                        if e.class == ErrorClass::Permanent {
                            self.hold(&vm, format!("its adapters cannot be corrected: {e}"));
                        }
                    }
                }
                done(id, sched, deps);
                Handled::Done
            }
            Outcome::TimedOut { id } => {
                self.report.attempts += 1;
                self.report.failed_attempts += 1;
                *self.failures.entry(vm.clone()).or_default() += 1;
                let timeout = human_seconds(self.desired.policy.move_timeout.as_secs_f64());
                self.observer.event(&Event::MoveFinished {
                    vm: vm.clone(),
                    from,
                    to,
                    error: Some(format!("did not finish within moveTimeout ({timeout})")),
                });
                sched.finish(id);
                Handled::End(RoundEnd::Replan(format!(
                    "the move of {vm} did not finish within moveTimeout ({timeout})"
                )))
            }
            Outcome::MoveFailed {
                id,
                error,
                requested,
            } => {
                sched.finish(id);
                if let ErrorClass::Wait(reason) = error.class {
                    let first = !self.waiting_since.contains_key(&vm);
                    let since = *self
                        .waiting_since
                        .entry(vm.clone())
                        .or_insert_with(Instant::now);
                    let (budget, poll, what) = match reason {
                        WaitReason::BackupInProgress => (
                            self.desired.policy.backup_wait,
                            self.opts.backup_poll,
                            "backupWait",
                        ),
                        WaitReason::HostBusy => (
                            self.desired.policy.move_timeout,
                            self.opts.busy_retry,
                            "moveTimeout",
                        ),
                    };
                    if requested {
                        self.observer.event(&Event::MoveFinished {
                            vm: vm.clone(),
                            from,
                            to,
                            error: Some(error.message.clone()),
                        });
                    }
                    if since.elapsed() >= budget {
                        self.hold(
                            &vm,
                            format!(
                                "{} (waited {}, the policy's {what})",
                                error.message,
                                human_seconds(budget.as_secs_f64())
                            ),
                        );
                        return Handled::End(RoundEnd::Replan(format!("{vm} is blocked")));
                    }
                    if first {
                        self.observer.event(&Event::Waiting {
                            vm: vm.clone(),
                            why: error.message.clone(),
                        });
                    }
                    timers.spawn(async move {
                        tokio::time::sleep(poll).await;
                        id
                    });
                    return Handled::Again;
                }
                self.report.attempts += 1;
                self.report.failed_attempts += 1;
                let failures = {
                    let f = self.failures.entry(vm.clone()).or_default();
                    *f += 1;
                    *f
                };
                self.observer.event(&Event::MoveFinished {
                    vm: vm.clone(),
                    from,
                    to,
                    error: Some(error.message.clone()),
                });
                match error.class {
                    ErrorClass::Permanent => {
                        // A stale plan looks permanent too: let a fresh
                        // observation decide before giving up on the VM.
                        let stale = error.message.contains(" is on ")
                            || error.message.contains("already migrating");
                        if !stale {
                            self.hold(&vm, error.message.clone());
                        }
                        Handled::End(RoundEnd::Replan(format!(
                            "the move of {vm} failed: {}",
                            error.message
                        )))
                    }
                    _ if failures >= self.desired.policy.max_attempts => {
                        self.hold(
                            &vm,
                            format!(
                                "gave up after {failures} failed attempts; the last: {}",
                                error.message
                            ),
                        );
                        Handled::End(RoundEnd::Replan(format!("{vm} is blocked")))
                    }
                    _ => {
                        let delay = self.delay_for(&vm);
                        self.observer.event(&Event::Waiting {
                            vm: vm.clone(),
                            why: format!(
                                "attempt {failures} of {} failed; retrying in {}",
                                self.desired.policy.max_attempts,
                                human_seconds(delay.as_secs_f64())
                            ),
                        });
                        timers.spawn(async move {
                            tokio::time::sleep(delay).await;
                            id
                        });
                        Handled::Again
                    }
                }
            }
        }
    }

    fn count(&mut self, vm: &str, counts: &Counts) {
        self.report.acl_changes += counts.acl_changes;
        self.report.reconnects += counts.reconnects;
        for what in &counts.done {
            self.observer.event(&Event::AdapterFixed {
                vm: vm.to_string(),
                adapter: what.0.clone(),
                what: what.1.clone(),
            });
        }
    }
}

fn outcome_id(o: &Outcome) -> u32 {
    match o {
        Outcome::Moved { id, .. }
        | Outcome::MoveFailed { id, .. }
        | Outcome::TimedOut { id }
        | Outcome::AdapterDone { id, .. } => *id,
    }
}

/// One move: wait out a backup without requesting it, request it, follow
/// the job, then put the VM's adapters back at once and verify.
/// Everything one move task needs.
struct MoveTask {
    provider: Arc<dyn Provider>,
    request: MoveRequest,
    targets: Vec<(String, AdapterTarget)>,
    timeout: Duration,
    control: Arc<Control>,
    id: u32,
    started: Event,
    events: mpsc::UnboundedSender<Event>,
}

async fn run_move(task: MoveTask) -> Outcome {
    let MoveTask {
        provider,
        request,
        targets,
        timeout,
        control,
        id,
        started,
        events,
    } = task;
    // Do not even ask while a backup runs: it would only fail.
    match provider.observe_vm(&request.vm).await {
        Ok(vm) if vm.operation == Some(VmOperation::BackingUp) => {
            return Outcome::MoveFailed {
                id,
                error: ProviderError::wait(
                    WaitReason::BackupInProgress,
                    format!(
                        "{} is being backed up; waiting for the backup to end",
                        request.vm
                    ),
                ),
                requested: false,
            };
        }
        _ => {}
    }
    let job = match provider.start_move(&request).await {
        Ok(job) => {
            let _ = events.send(started);
            job
        }
        Err(error) => {
            return Outcome::MoveFailed {
                id,
                error,
                requested: true,
            };
        }
    };
    control.track(RunningJob {
        vm: request.vm.clone(),
        from: request.from.clone(),
        to: request.to.clone(),
        job: job.clone(),
    });
    let result = tokio::time::timeout(timeout, provider.wait_job(&job)).await;
    control.untrack(&request.vm);
    match result {
        Err(_) => Outcome::TimedOut { id },
        Ok(Err(error)) => Outcome::MoveFailed {
            id,
            error,
            requested: true,
        },
        Ok(Ok(())) => {
            let (counts, problems) =
                adapters::reassert(provider.as_ref(), &request.vm, &targets).await;
            Outcome::Moved {
                id,
                counts,
                problems,
            }
        }
    }
}
