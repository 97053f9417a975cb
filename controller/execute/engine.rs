//! The one loop: observe, plan around moves in flight, start what may start.
//!
//! Level-triggered, in the manner of kube-runtime: every event (a move ends
//! or fails, a new spec, a resync, a retry deadline, a backup poll) leads to
//! a fresh observation and a fresh plan, at once. Moves in flight are facts,
//! not a job to wait for: the plan is made as if each had landed (so a new
//! spec that changes a moving VM's destination plans its next move from
//! where the running one lands), while the [`Gate`] still counts their
//! slots and the memory they hold on both hosts. Nothing in flight is ever
//! cancelled, and work that does not depend on it starts right away. What a
//! move went through (attempts, backoff, backup waits) lives in the
//! [`Book`], per VM and move, so no re-plan resets it.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::schedule::Scheduler;
use crate::plan::{self, Action, ActionKind, Blocked, Caps, InFlight, Plan};
use crate::provider::{ErrorClass, MoveKind, MoveRequest, Observed, Provider, WaitReason};
use crate::spec::{Desired, human_seconds};

use super::adapters::{self, Counts};
use super::book::{Book, MoveKey};
use super::gate::{Gate, RetryView, Wait};
use super::task::{self, Done};
use super::window;
use super::{Control, Event, ExecError, MovingVm, Observer, Options, Report, RunningJob, Snapshot};

/// How often a move found running without a job to follow is looked at.
const IN_FLIGHT_POLL: Duration = Duration::from_secs(15);
/// Fixes of one adapter before it counts as not staying fixed.
const MAX_FIXES: u32 = 3;

/// A move in flight: started by this loop, or found running and followed.
#[derive(Debug, Clone)]
struct Flight {
    from: String,
    to: String,
    kind: MoveKind,
    /// It copies disks (counts against the storage limits).
    storage: bool,
    attempt: u32,
    /// Followed with a task (ours, or a job the provider can follow).
    followed: bool,
}

/// The loop's state.
pub(super) struct Engine<'o> {
    desired: Arc<Desired>,
    provider: Arc<dyn Provider>,
    opts: Options,
    observer: &'o dyn Observer,
    control: Arc<Control>,
    book: Arc<Mutex<Book>>,
    report: Report,
    flights: BTreeMap<String, Flight>,
    fixing: BTreeSet<(String, String)>,
    fixes: HashMap<(String, String), u32>,
    tasks: JoinSet<Done>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    /// The kind of wait each VM was last told to be in (logged once).
    waits: HashMap<String, &'static str>,
    /// VMs not moved because the run reached `max_moves`.
    over_limit: BTreeMap<String, String>,
    moves_started: u32,
    /// Why the next re-plan runs, when it is worth saying.
    why: Option<String>,
    /// Until when to keep going: `false` ends the loop when nothing is
    /// left to do (apply); `true` waits for new specs (watch).
    forever: bool,
    /// The VMs last told they wait for a move window.
    window_told: Vec<String>,
}

/// What one re-plan decided.
struct Decision {
    started: usize,
    wake: Option<Instant>,
    waiting: BTreeMap<String, String>,
    blocked: BTreeMap<String, String>,
}

impl<'o> Engine<'o> {
    pub(super) fn new(
        desired: Arc<Desired>,
        provider: Arc<dyn Provider>,
        opts: &Options,
        observer: &'o dyn Observer,
        control: Arc<Control>,
        book: Arc<Mutex<Book>>,
    ) -> Engine<'o> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Engine {
            desired,
            provider,
            opts: opts.clone(),
            observer,
            control,
            book,
            report: Report {
                format_version: 1,
                ..Report::default()
            },
            flights: BTreeMap::new(),
            fixing: BTreeSet::new(),
            fixes: HashMap::new(),
            tasks: JoinSet::new(),
            events_tx,
            events_rx,
            waits: HashMap::new(),
            over_limit: BTreeMap::new(),
            moves_started: 0,
            why: None,
            forever: false,
            window_told: Vec::new(),
        }
    }

    /// Keep running when the fleet converges: wait for new specs (watch).
    pub(super) fn forever(mut self, on: bool) -> Self {
        self.forever = on;
        self
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs until the fleet converges (or only blocked work is left), or
    /// until a stop and the end of every move in flight.
    pub(super) async fn run(mut self) -> Result<Report, ExecError> {
        let started = Instant::now();
        let mut round: u32 = 0;
        let mut observe_failures = 0u32;
        loop {
            if let Some(d) = self.control.take_spec() {
                self.desired = d;
                self.why = Some("the spec changed".to_string());
            }
            let t = std::time::Instant::now();
            // The caller's first look, when it made one from this spec.
            let seed = self
                .control
                .take_seed()
                .filter(|s| round == 0 && Arc::ptr_eq(&s.desired, &self.desired));
            let (observed, seeded) = match seed {
                Some(s) => (s.observed, Some(s.plan)),
                None => match self.provider.observe().await {
                    Ok(o) => {
                        observe_failures = 0;
                        (Arc::new(o), None)
                    }
                    Err(e) if self.tasks.is_empty() => return Err(ExecError::Observe(e)),
                    Err(e) => {
                        observe_failures += 1;
                        tracing::warn!("cannot observe the fleet: {e}; looking again soon");
                        let wait = self.opts.retry_min_delay * observe_failures.min(12);
                        self.wait_for_event(Some(Instant::now() + wait)).await;
                        continue;
                    }
                },
            };
            let observing = t.elapsed();
            let t = std::time::Instant::now();
            self.adopt(&observed);
            let mut plan = match seeded {
                // Nothing in flight: the seed's plan is this round's.
                Some(plan) if self.flights.is_empty() => Arc::unwrap_or_clone(plan),
                _ => {
                    let holds = self.book().holds_for(&self.desired);
                    let projected = project(&observed, &self.flights);
                    plan::plan_with_holds(&self.desired, &projected, &holds)
                }
            };
            plan.in_flight = self
                .flights
                .iter()
                .map(|(vm, f)| InFlight {
                    vm: vm.clone(),
                    from: f.from.clone(),
                    to: f.to.clone(),
                })
                .collect();
            plan.in_sync =
                plan.actions.is_empty() && plan.blocked.is_empty() && plan.in_flight.is_empty();
            round += 1;
            if let Some(why) = self.why.take()
                && round > 1
            {
                self.observer.event(&Event::Replanning { why });
                self.observer.event(&Event::Planned {
                    round,
                    plan: Box::new(plan.clone()),
                });
            } else if round == 1 {
                self.observer.event(&Event::Planned {
                    round,
                    plan: Box::new(plan.clone()),
                });
            }
            let planning = t.elapsed();
            let t = std::time::Instant::now();
            let stopping = self.control.stopping();
            let decision = if stopping {
                Decision {
                    started: 0,
                    wake: None,
                    waiting: BTreeMap::new(),
                    blocked: BTreeMap::new(),
                }
            } else {
                self.decide(&plan, &observed)
            };
            let idle = self.tasks.is_empty() && decision.started == 0;
            if decision.started > 0 {
                // Let the moves just started reach the provider before the
                // round is reported: at 100,000 VMs the report (every VM's
                // condition) takes longer than starting them.
                tokio::task::yield_now().await;
            }
            if self.observer.wants_state() {
                self.observer.state(&Snapshot {
                    desired: self.desired.clone(),
                    observed: observed.clone(),
                    moving: self
                        .flights
                        .iter()
                        .map(|(vm, f)| {
                            (
                                vm.clone(),
                                MovingVm {
                                    from: f.from.clone(),
                                    to: f.to.clone(),
                                    attempt: f.attempt,
                                },
                            )
                        })
                        .collect(),
                    waiting: decision.waiting.clone(),
                    blocked: decision.blocked.clone(),
                    plan: Arc::new(plan.clone()),
                });
            }
            tracing::debug!(
                round,
                "observing {:.1} ms, planning {:.1} ms, starting and reporting {:.1} ms",
                observing.as_secs_f64() * 1000.0,
                planning.as_secs_f64() * 1000.0,
                t.elapsed().as_secs_f64() * 1000.0
            );
            let done = idle && (stopping || decision.wake.is_none());
            // A spec handed over during this round is planned now, not
            // after the loop ends and its caller starts another.
            if done && (stopping || !self.forever) && (stopping || !self.control.spec_pending()) {
                self.report.interrupted = stopping;
                // What still waits (a move window) says why it was not done.
                let mut left = decision.blocked;
                for (vm, why) in decision.waiting {
                    left.entry(vm).or_insert(why);
                }
                self.finish(plan, left);
                break;
            }
            self.wait_for_event(decision.wake).await;
        }
        self.report.elapsed_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        Ok(self.report)
    }

    /// The report's last word: what is blocked, whether it converged.
    fn finish(&mut self, plan: Plan, extra: BTreeMap<String, String>) {
        let mut blocked = plan.blocked;
        for (vm, reason) in extra {
            if !blocked.iter().any(|b| b.vm == vm) {
                blocked.push(Blocked { vm, reason });
            }
        }
        // Actions that were ready but could never start (nothing in flight
        // would free what they wait for).
        for a in &plan.actions {
            let vm = a.kind.vm();
            if !blocked.iter().any(|b| b.vm == vm) && !self.report.interrupted {
                blocked.push(Blocked {
                    vm: vm.to_string(),
                    reason: format!("could not start: {}", describe_short(&a.kind)),
                });
            }
        }
        blocked.sort_by(|a, b| a.vm.cmp(&b.vm));
        self.report.converged = plan.actions.is_empty() && blocked.is_empty();
        self.report.blocked = blocked;
    }

    /// Follows moves found running that this loop did not start.
    fn adopt(&mut self, observed: &Observed) {
        // A move followed without a job ends when the VM stops migrating.
        self.flights.retain(|vm, f| {
            f.followed
                || observed
                    .vms
                    .get(vm)
                    .is_some_and(|v| v.migrating_to.is_some())
        });
        for vm in observed.vms.values() {
            let Some(to) = &vm.migrating_to else {
                continue;
            };
            if self.flights.contains_key(&vm.name) {
                continue;
            }
            self.observer.event(&Event::Waiting {
                vm: vm.name.clone(),
                why: format!("a move to {to} is already running; following it"),
            });
            let followed = vm.job.is_some();
            if let Some(job) = &vm.job {
                let job = RunningJob {
                    vm: vm.name.clone(),
                    from: vm.host.clone(),
                    to: to.clone(),
                    job: job.clone(),
                };
                self.tasks.spawn(task::follow(
                    self.provider.clone(),
                    self.control.clone(),
                    job,
                    self.desired.policy.move_timeout,
                ));
            }
            self.flights.insert(
                vm.name.clone(),
                Flight {
                    from: vm.host.clone(),
                    to: to.clone(),
                    kind: MoveKind::for_state(vm.state),
                    storage: vm.local_disk_mib() > 0,
                    attempt: 0,
                    followed,
                },
            );
        }
    }

    /// Starts every ready action the gate allows, most urgent first.
    fn decide(&mut self, plan: &Plan, observed: &Observed) -> Decision {
        let now = Instant::now();
        let caps = Caps::new(&self.desired, observed);
        let mut gate = Gate::new(&caps, observed, now);
        let mut wake: Option<Instant> = None;
        let soon = |at: Instant, wake: &mut Option<Instant>| {
            *wake = Some(wake.map_or(at, |w| w.min(at)));
        };
        // Outside every move window no move starts; fixes go ahead.
        let mut window_left = None;
        if let Some(state) = window::closed(&self.desired, self.provider.as_ref(), &self.opts) {
            let left = state.wait(self.provider.now());
            window_left = Some(left);
            gate.window = Some(Wait::Window {
                why: window::waiting_reason(&state),
                opens: left.map(|d| now + d),
            });
        }
        let mut window_vms: Vec<String> = Vec::new();
        for f in self.flights.values() {
            gate.slots.take(&f.from, &f.to, f.kind, f.storage);
            if !f.followed {
                soon(now + IN_FLIGHT_POLL, &mut wake);
            }
        }
        let sched = Scheduler::new(plan, &caps);
        let mut ready: Vec<&Action> = plan.actions.iter().filter(|a| a.after.is_empty()).collect();
        ready.sort_by_key(|a| (Reverse(sched.priority(a.id)), a.id));
        let mut waiting = BTreeMap::new();
        let mut blocked = self.over_limit.clone();
        let mut started = 0;
        for action in ready {
            let vm = action.kind.vm().to_string();
            if let Some(adapter) = adapter_of(&action.kind) {
                if self.fixing.contains(&(vm.clone(), adapter.to_string())) {
                    continue;
                }
                if let Some(why) = self.book().fix_given_up(&vm, adapter) {
                    blocked.insert(vm.clone(), why.to_string());
                    continue;
                }
            }
            if self.over_limit.contains_key(&vm) {
                continue;
            }
            let key = move_key(&action.kind);
            let retry = RetryView {
                not_before: key
                    .as_ref()
                    .and_then(|k| self.book().get(k).and_then(|r| r.not_before)),
            };
            let moving_to = self.flights.get(&vm).map(|f| f.to.as_str());
            match gate.check(&action.kind, moving_to, retry) {
                Ok(()) => {
                    if action.kind.is_move()
                        && let Some(max) = self.opts.max_moves
                        && self.moves_started >= max
                    {
                        let why = format!("not moved: the run reached its limit of {max} moves");
                        self.over_limit.insert(vm.clone(), why.clone());
                        blocked.insert(vm.clone(), why);
                        continue;
                    }
                    gate.started(&action.kind);
                    self.start(action, observed);
                    self.waits.remove(&vm);
                    started += 1;
                }
                Err(wait) => {
                    match &wait {
                        Wait::Retry { at } => soon(*at, &mut wake),
                        Wait::Window { .. } => window_vms.push(vm.clone()),
                        Wait::Backup => {
                            if let Some(key) = &key
                                && let Some(reason) = self.backup_budget(key, now)
                            {
                                blocked.insert(vm.clone(), reason);
                                continue;
                            }
                            soon(now + self.opts.backup_poll, &mut wake);
                        }
                        _ => {}
                    }
                    let kind = wait.kind();
                    if kind != "moving" && self.waits.get(&vm) != Some(&kind) {
                        self.waits.insert(vm.clone(), kind);
                        self.observer.event(&Event::Waiting {
                            vm: vm.clone(),
                            why: wait.to_string(),
                        });
                    }
                    waiting.entry(vm).or_insert_with(|| wait.to_string());
                }
            }
        }
        if let (Some(left), Some(Wait::Window { why, .. })) = (window_left, &gate.window) {
            if window_vms.is_empty() {
                self.window_told.clear();
            } else if self.forever || self.opts.wait_for_window {
                // Look again at the opening; `apply` also every minute
                // before it, for the countdown.
                let left = left.unwrap_or(Duration::from_secs(86_400));
                let step = if self.forever {
                    left
                } else {
                    window::step(left)
                };
                soon(now + step.max(Duration::from_millis(1)), &mut wake);
                let first = self.window_told != window_vms;
                self.observer.event(&Event::WindowWait {
                    why: why.clone(),
                    remaining: Some(left),
                    vms: if first {
                        window_vms.clone()
                    } else {
                        Vec::new()
                    },
                });
                self.window_told = window_vms;
            }
        }
        Decision {
            started,
            wake,
            waiting,
            blocked,
        }
    }

    /// A backup wait past `backupWait` holds the VM; returns why, if so.
    fn backup_budget(&mut self, key: &MoveKey, now: Instant) -> Option<String> {
        let budget = self.desired.policy.backup_wait;
        let desired = self.desired.clone();
        let mut book = self.book();
        let since = *book.entry(key).waiting_since.get_or_insert(now);
        if now.saturating_duration_since(since) < budget {
            return None;
        }
        let reason = format!(
            "{} is being backed up (waited {}, the policy's backupWait)",
            key.vm,
            human_seconds(budget.as_secs_f64())
        );
        book.hold(&key.vm, reason.clone(), true, &desired);
        drop(book);
        self.observer.event(&Event::Blocked {
            vm: key.vm.clone(),
            reason: reason.clone(),
        });
        Some(reason)
    }

    /// Starts one action as a task.
    fn start(&mut self, action: &Action, observed: &Observed) {
        let provider = self.provider.clone();
        match &action.kind {
            ActionKind::Move {
                vm,
                from,
                to,
                method,
                estimated_seconds,
                storage_path,
                disk_mib,
                ..
            } => {
                let key = MoveKey {
                    vm: vm.clone(),
                    to: to.clone(),
                };
                let attempt = self.book().get(&key).map_or(0, |r| r.failures) + 1;
                let before = observed
                    .vms
                    .get(vm)
                    .map(|v| v.adapters.as_slice())
                    .unwrap_or(&[]);
                let targets =
                    adapters::after_move_targets(self.desired.vms.get(vm).map(Arc::as_ref), before);
                self.moves_started += 1;
                self.flights.insert(
                    vm.clone(),
                    Flight {
                        from: from.clone(),
                        to: to.clone(),
                        kind: *method,
                        storage: *disk_mib > 0,
                        attempt,
                        followed: true,
                    },
                );
                let started = Event::MoveStarted {
                    vm: vm.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    kind: *method,
                    attempt,
                    estimate: *estimated_seconds,
                };
                self.tasks.spawn(task::run_move(task::MoveTask {
                    provider,
                    request: MoveRequest {
                        vm: vm.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        kind: *method,
                        storage_path: storage_path.clone(),
                    },
                    targets,
                    timeout: self.desired.policy.move_timeout,
                    control: self.control.clone(),
                    started,
                    events: self.events_tx.clone(),
                }));
            }
            ActionKind::SetAcls { vm, adapter, .. }
            | ActionKind::Connect { vm, adapter, .. }
            | ActionKind::SetVlan { vm, adapter, .. } => {
                let target =
                    adapters::declared_target(self.desired.vms.get(vm).map(Arc::as_ref), adapter);
                let n = self.fixes.entry((vm.clone(), adapter.clone())).or_default();
                *n += 1;
                if *n > MAX_FIXES {
                    let why = format!(
                        "its adapter {adapter} does not stay as declared (fixed {MAX_FIXES} times)"
                    );
                    self.book().dead_fix(vm, adapter, why.clone());
                    self.observer.event(&Event::Blocked {
                        vm: vm.clone(),
                        reason: why,
                    });
                    return;
                }
                self.fixing.insert((vm.clone(), adapter.clone()));
                self.tasks.spawn(task::fix_adapter(
                    provider,
                    vm.clone(),
                    adapter.clone(),
                    target,
                ));
            }
        }
    }

    /// Sleeps until a task ends, the wake time passes, or the control is
    /// poked (a new spec, a resync, a stop). Events tasks send meanwhile are
    /// passed on in order.
    async fn wait_for_event(&mut self, wake: Option<Instant>) {
        loop {
            tokio::select! {
                biased;
                Some(ev) = self.events_rx.recv() => self.observer.event(&ev),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.drain_events();
                    if let Ok(done) = done {
                        self.handle(done);
                    }
                    // Everything else that ended at the same moment goes
                    // into the same re-plan.
                    while let Some(more) = self.tasks.try_join_next() {
                        self.drain_events();
                        if let Ok(done) = more {
                            self.handle(done);
                        }
                    }
                    return;
                }
                () = sleep_opt(wake), if wake.is_some() => return,
                () = self.control.woken() => return,
            }
        }
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.events_rx.try_recv() {
            self.observer.event(&ev);
        }
    }

    /// Takes in how a task ended.
    fn handle(&mut self, done: Done) {
        match done {
            Done::Moved {
                key,
                counts,
                problems,
            } => {
                let from = self.land(&key.vm);
                self.report.moves += 1;
                self.report.attempts += 1;
                self.book().completed(&key);
                self.observer.event(&Event::MoveFinished {
                    vm: key.vm.clone(),
                    from,
                    to: key.to.clone(),
                    error: None,
                });
                self.count(&key.vm, &counts);
                for p in problems {
                    tracing::warn!(vm = %key.vm, "{p}");
                }
            }
            Done::TimedOut { key } => {
                let from = self.land(&key.vm);
                let timeout = human_seconds(self.desired.policy.move_timeout.as_secs_f64());
                let error = format!("did not finish within moveTimeout ({timeout})");
                self.report.attempts += 1;
                self.report.failed_attempts += 1;
                self.observer.event(&Event::MoveFinished {
                    vm: key.vm.clone(),
                    from,
                    to: key.to.clone(),
                    error: Some(error.clone()),
                });
                self.failed_attempt(&key, &error);
            }
            Done::MoveFailed {
                key,
                error,
                requested,
            } => {
                let from = self.land(&key.vm);
                if requested || !matches!(error.class, ErrorClass::Wait(_)) {
                    self.observer.event(&Event::MoveFinished {
                        vm: key.vm.clone(),
                        from,
                        to: key.to.clone(),
                        error: Some(error.message.clone()),
                    });
                }
                match error.class {
                    ErrorClass::Wait(reason) => self.wait_failure(&key, reason, &error.message),
                    ErrorClass::Permanent => {
                        self.report.attempts += 1;
                        self.report.failed_attempts += 1;
                        // A stale plan looks permanent too: let a fresh
                        // observation decide, after a backoff (so a plan
                        // that stays stale cannot spin), before giving up.
                        let stale = error.message.contains(" is on ")
                            || error.message.contains("already migrating");
                        if stale {
                            self.failed_attempt(&key, &error.message);
                        } else {
                            self.hold(&key.vm, error.message.clone(), false);
                        }
                        self.why =
                            Some(format!("the move of {} failed: {}", key.vm, error.message));
                    }
                    _ => {
                        self.report.attempts += 1;
                        self.report.failed_attempts += 1;
                        self.failed_attempt(&key, &error.message);
                    }
                }
            }
            Done::Followed {
                vm,
                from,
                to,
                result,
            } => {
                self.flights.remove(&vm);
                let error = result.err().map(|e| e.message);
                if let Some(e) = &error {
                    tracing::info!(vm, "a move from an earlier run failed: {e}");
                }
                self.observer.event(&Event::MoveFinished {
                    vm,
                    from,
                    to,
                    error,
                });
            }
            Done::Adapter {
                vm,
                adapter,
                result,
            } => {
                self.fixing.remove(&(vm.clone(), adapter.clone()));
                match result {
                    Ok(counts) => self.count(&vm, &counts),
                    Err(e) => {
                        tracing::warn!(vm, "could not correct an adapter: {e}");
                        if e.class == ErrorClass::Permanent {
                            let why = format!("its adapters cannot be corrected: {e}");
                            self.book().dead_fix(&vm, &adapter, why.clone());
                            self.observer.event(&Event::Blocked { vm, reason: why });
                        }
                    }
                }
            }
        }
    }

    /// The move of `vm` ended one way or the other; returns its source.
    fn land(&mut self, vm: &str) -> String {
        self.waits.remove(vm);
        self.flights.remove(vm).map(|f| f.from).unwrap_or_default()
    }

    /// A failed attempt: back off, or give up after `maxAttempts`.
    fn failed_attempt(&mut self, key: &MoveKey, message: &str) {
        let max = self.desired.policy.max_attempts;
        let (failures, delay) = self.book().failed(
            key,
            message,
            self.opts.retry_min_delay,
            self.opts.retry_max_delay,
            max,
            Instant::now(),
        );
        if failures >= max {
            self.hold(
                &key.vm,
                format!("gave up after {failures} failed attempts; the last: {message}"),
                true,
            );
            self.why = Some(format!("{} is blocked", key.vm));
        } else {
            self.waits.insert(key.vm.clone(), "retry");
            self.observer.event(&Event::Waiting {
                vm: key.vm.clone(),
                why: format!(
                    "attempt {failures} of {max} failed; retrying in {}",
                    human_seconds(delay.as_secs_f64())
                ),
            });
        }
    }

    /// A move refused for a backup or a busy host: look again after a poll,
    /// within the policy's budget, without using an attempt.
    fn wait_failure(&mut self, key: &MoveKey, reason: WaitReason, message: &str) {
        let now = Instant::now();
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
        let since = {
            let mut book = self.book();
            let r = book.entry(key);
            let since = *r.waiting_since.get_or_insert(now);
            r.not_before = Some(now + poll);
            since
        };
        if now.saturating_duration_since(since) >= budget {
            self.hold(
                &key.vm,
                format!(
                    "{message} (waited {}, the policy's {what})",
                    human_seconds(budget.as_secs_f64())
                ),
                true,
            );
            return;
        }
        if self.waits.get(&key.vm) != Some(&"backup") {
            self.waits.insert(key.vm.clone(), "backup");
            self.observer.event(&Event::Waiting {
                vm: key.vm.clone(),
                why: message.to_string(),
            });
        }
    }

    fn hold(&mut self, vm: &str, reason: String, passing: bool) {
        self.observer.event(&Event::Blocked {
            vm: vm.to_string(),
            reason: reason.clone(),
        });
        let desired = self.desired.clone();
        self.book().hold(vm, reason, passing, &desired);
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

/// The observation as it will be when every move in flight has landed: the
/// plan starts from there.
fn project<'o>(observed: &'o Observed, flights: &BTreeMap<String, Flight>) -> Cow<'o, Observed> {
    if flights.is_empty() {
        // Nothing lands elsewhere: no copy of the whole fleet.
        return Cow::Borrowed(observed);
    }
    let mut projected = observed.clone();
    for (name, f) in flights {
        if let Some(vm) = projected.vms.get_mut(name) {
            vm.host = f.to.clone();
            vm.migrating_to = None;
            vm.job = None;
            if vm.operation == Some(crate::spec::VmOperation::Migrating) {
                vm.operation = None;
            }
        }
    }
    Cow::Owned(projected)
}

fn adapter_of(kind: &ActionKind) -> Option<&str> {
    match kind {
        ActionKind::SetAcls { adapter, .. }
        | ActionKind::Connect { adapter, .. }
        | ActionKind::SetVlan { adapter, .. } => Some(adapter),
        ActionKind::Move { .. } => None,
    }
}

fn move_key(kind: &ActionKind) -> Option<MoveKey> {
    match kind {
        ActionKind::Move { vm, to, .. } => Some(MoveKey {
            vm: vm.clone(),
            to: to.clone(),
        }),
        _ => None,
    }
}

fn describe_short(kind: &ActionKind) -> String {
    match kind {
        ActionKind::Move { from, to, .. } => format!("move {from} -> {to}"),
        ActionKind::SetAcls { adapter, .. } => format!("ACLs of {adapter}"),
        ActionKind::Connect { adapter, .. } => format!("connect {adapter}"),
        ActionKind::SetVlan { adapter, .. } => format!("VLAN of {adapter}"),
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
