//! The reconcile loop of `berth watch`: level-triggered passes, for ever.
//!
//! A pass loads the documents (keeping the last valid spec when the new one
//! is invalid, empty or gone), observes the fleet, plans, writes the status
//! file, and decides what happens next, in the spirit of kube-runtime's
//! `reconcile -> Action`: either the plan is handed to the executor
//! ([`Action::AwaitJob`]) or the loop sleeps until the next pass is due
//! ([`Action::Requeue`]). A pass never relies on what woke it: every pass
//! starts from the files and a fresh observation. What woke it only limits
//! what it may do; the pass right after a job reports and does not start
//! another job at once, so a move that keeps failing cannot spin the loop.
//!
//! Passes are woken by file changes ([`watcher`]), by the resync timer
//! (`--interval`, else the Controller's `resyncInterval`, else 60 s), by the
//! end of each executor job, and by retries after the provider failed
//! (exponential backoff up to five minutes).
//!
//! The executor ([`execute::converge`]) runs as a task with its own
//! [`Control`]. A new valid spec while it runs stops it from starting moves;
//! running moves finish, then the next pass plans the rest from the new
//! spec. Shutdown does the same, bounded by a timeout, and writes the final
//! status.

mod decide;
pub mod fleet_view;
pub mod metrics;
mod progress;
pub mod revision;
mod specs;
pub mod status;
mod status_window;
pub mod watcher;
pub mod web;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::ExponentialBackoff;

use decide::Prefetch;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::execute::{self, Book, Control, Event, ExecError, Options, Report, RunningJob};
use crate::plan;
use crate::provider::{Observed, Provider};
use crate::spec::{Desired, human_seconds};

use progress::JobObserver;
use specs::{SpecChange, SpecState};

pub use metrics::Metrics;
pub use status::{Condition, Status, VmStatus};

/// Resync interval when neither `--interval` nor a Controller says one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How often a move started by someone else is looked at again.
const IN_FLIGHT_POLL: Duration = Duration::from_secs(15);

/// What wakes the loop from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Documents below the directory changed.
    FilesChanged,
    /// Stop: start no more moves, let running ones finish, write the final status.
    Shutdown,
}

/// Why a pass ran. It limits what the pass may start, never what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first pass.
    Startup,
    /// Documents changed.
    Files,
    /// The resync timer.
    Resync,
    /// A retry after the provider could not be reached.
    Retry,
    /// The executor's job ended; this pass reports and starts nothing.
    JobEnded,
    /// The job was stopped for a new spec; this pass plans the rest.
    SpecChanged,
    /// The last pass before exiting; it reports and starts nothing.
    Final,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Files => "files",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
            Trigger::JobEnded => "job-ended",
            Trigger::SpecChanged => "spec-changed",
            Trigger::Final => "final",
        }
    }

    /// Whether a pass with this trigger may hand work to the executor.
    fn may_act(self) -> bool {
        !matches!(self, Trigger::JobEnded | Trigger::Final)
    }
}

/// What a pass decided should happen next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the next pass after this long (unless something wakes it sooner).
    Requeue(Duration),
    /// A job is running; the next pass runs when it ends.
    AwaitJob,
}

/// What a pass found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No valid spec has been loaded yet; nothing was observed.
    NoSpec,
    /// The provider could not be reached.
    ProviderDown,
    /// Nothing to do.
    InSync,
    /// The plan was handed to the executor.
    Started {
        /// Actions planned.
        actions: usize,
        /// Moves among them.
        moves: usize,
    },
    /// `policy.suspend`: the changes were reported, not made.
    Suspended {
        /// Actions that would have been carried out.
        changes: usize,
    },
    /// The plan moves more VMs than `policy.maxMovesPerApply`; nothing was started.
    Refused {
        /// Moves planned.
        moves: usize,
        /// The policy's limit.
        limit: u32,
    },
    /// Work remains, but this pass may not start it (right after a job, or
    /// while moves started elsewhere run); a later pass will.
    Deferred {
        /// Actions planned.
        changes: usize,
    },
}

/// One pass, for logs, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct PassReport {
    /// Pass number, from 1.
    pub number: u64,
    /// What woke it.
    pub trigger: Trigger,
    /// What it found and did.
    pub outcome: Outcome,
    /// The spec error in force (the last valid spec is used meanwhile).
    pub spec_error: Option<String>,
    /// The provider error, when the provider could not be reached.
    pub provider_error: Option<String>,
    /// VMs by condition, in [`Condition::ALL`] order.
    pub counts: [u64; 6],
    /// The report of the job that ended just before this pass.
    pub job: Option<Report>,
    /// What happens next.
    pub next: Action,
    /// Wall time the pass took.
    pub elapsed: Duration,
}

/// Something the loop reports to a subscriber (tests, benchmarks).
#[derive(Debug, Clone)]
pub enum Notice {
    /// A pass ended (after the status file was written).
    Pass(Box<PassReport>),
    /// The documents were read again because their bytes changed.
    Spec {
        /// They are valid (else the last valid spec stays in force).
        valid: bool,
        /// They want something different from the spec in force until now.
        changed: bool,
    },
    /// The executor reported progress.
    Exec(Event),
}

/// Receives [`Notice`]s; called on the loop's and the executor's tasks.
pub type NoticeFn = Arc<dyn Fn(&Notice) + Send + Sync>;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The directory of documents.
    pub dir: PathBuf,
    /// `--interval`: replaces the Controller's `resyncInterval`.
    pub interval: Option<Duration>,
    /// `--status-file`.
    pub status_file: Option<PathBuf>,
    /// Executor tunables.
    pub exec: Options,
    /// First retry delay after the provider failed.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Longest wait for one observation of the fleet.
    pub observe_timeout: Duration,
    /// Longest wait for running moves at shutdown.
    pub shutdown_timeout: Duration,
    /// Shortest time between two status writes while moves run.
    pub status_every: Duration,
}

impl Settings {
    /// Defaults for a directory.
    pub fn new(dir: impl Into<PathBuf>) -> Settings {
        Settings {
            dir: dir.into(),
            interval: None,
            status_file: None,
            exec: Options::default(),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            observe_timeout: Duration::from_secs(120),
            shutdown_timeout: Duration::from_secs(300),
            status_every: Duration::from_millis(250),
        }
    }
}

/// How a watch ended.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Passes run.
    pub passes: u64,
    /// Migrations still running when the shutdown timeout ran out.
    pub abandoned: Vec<RunningJob>,
}

/// The status shared between the loop and the executor's observer.
#[derive(Default)]
struct Live {
    status: Mutex<Status>,
    changed: Notify,
    /// The VM conditions differ from the last pass's (a job's events
    /// changed them, or the pass computed new ones).
    touched: AtomicBool,
    /// Counts the passes that set the conditions (changed under the status
    /// lock): a job's picture taken before the last such pass is out of
    /// date and is not applied (see [`progress::Pictures`]).
    epoch: std::sync::atomic::AtomicU64,
    /// Counts what a job changed on the fleet (moves started and ended,
    /// adapters fixed), for [`Prefetch`].
    changes: std::sync::atomic::AtomicU64,
}

/// The last pass's plan and conditions, and what they were computed from.
struct Memo {
    desired: Arc<Desired>,
    /// The holds the plan was made under.
    holds: BTreeMap<String, String>,
    observed: Arc<Observed>,
    plan: Arc<plan::Plan>,
    conditions: Arc<BTreeMap<String, VmStatus>>,
    /// The hosts' figures for the fleet page.
    hosts: fleet_view::HostsSeen,
    /// Why moves wait for a move window, when they do.
    window: Option<String>,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Job {
    control: Arc<Control>,
    /// A new spec was handed to it while it ran: plan again as soon as it ends.
    restart: bool,
}

/// How a job ended.
type JobResult = Result<Report, ExecError>;

/// The loop's state.
pub struct Reconciler {
    settings: Settings,
    provider: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
    notices: Option<NoticeFn>,
    spec: SpecState,
    /// Retry state and holds, per VM and move, for the life of the process:
    /// no pass, re-plan or new spec resets an attempt count.
    book: Arc<Mutex<Book>>,
    /// What the last job reported blocked, shown until the next resync.
    job_blocked: BTreeMap<String, String>,
    live: Arc<Live>,
    provider_error: Option<String>,
    retry: Option<ExponentialBackoff>,
    /// Delays between jobs while work remains after one.
    after_job: Option<ExponentialBackoff>,
    last_job: Option<Report>,
    passes: u64,
    job: Option<Job>,
    job_tx: mpsc::UnboundedSender<JobResult>,
    job_rx: Option<mpsc::UnboundedReceiver<JobResult>>,
    last_write: Option<Instant>,
    memo: Option<Memo>,
    prefetch: Option<Prefetch>,
    /// How long the parts of the current pass took (logged at debug).
    phases: Phases,
    revisions: revision::Revisions,
}

impl Reconciler {
    /// A loop over `settings.dir` against an open provider.
    pub fn new(settings: Settings, provider: Arc<dyn Provider>, metrics: Arc<Metrics>) -> Self {
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        Reconciler {
            settings,
            provider,
            metrics,
            notices: None,
            spec: SpecState::default(),
            book: Arc::new(Mutex::new(Book::new())),
            job_blocked: BTreeMap::new(),
            live: Arc::new(Live::default()),
            provider_error: None,
            retry: None,
            after_job: None,
            last_job: None,
            passes: 0,
            phases: Phases::default(),
            job: None,
            job_tx,
            job_rx: Some(job_rx),
            last_write: None,
            memo: None,
            prefetch: None,
            revisions: revision::Revisions::default(),
        }
    }

    /// Sends every [`Notice`] to `f`.
    pub fn with_notices(mut self, f: NoticeFn) -> Self {
        self.notices = Some(f);
        self
    }

    /// The status as last computed.
    pub fn status(&self) -> Status {
        self.live.lock().clone()
    }

    /// The resync interval in force.
    pub fn interval(&self) -> Duration {
        self.settings
            .interval
            .or_else(|| {
                self.spec
                    .desired
                    .as_ref()
                    .and_then(|d| d.controller.as_ref())
                    .map(|c| c.resync_interval)
            })
            .unwrap_or(DEFAULT_INTERVAL)
            .max(Duration::from_millis(100))
    }

    /// Runs until [`Signal::Shutdown`] (or until every sender is dropped),
    /// then stops starting moves, waits for running ones (bounded by
    /// `shutdown_timeout`), writes the final status and closes the provider.
    pub async fn run(mut self, mut signals: mpsc::UnboundedReceiver<Signal>) -> Summary {
        let mut job_rx = match self.job_rx.take() {
            Some(rx) => rx,
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.job_tx = tx;
                rx
            }
        };
        let live = self.live.clone();
        let report = self.pass(Trigger::Startup).await;
        let mut wake_at = wake_at_of(report.next);
        let mut flush_at: Option<Instant> = None;
        // While the executor's loop runs, a resync wakes it to look again
        // (drift behind berth's back is corrected without waiting for a
        // move to end).
        let mut resync_at = Some(Instant::now() + self.interval());
        loop {
            tokio::select! {
                biased;
                signal = signals.recv() => {
                    let mut stop = signal != Some(Signal::FilesChanged);
                    while let Ok(s) = signals.try_recv() {
                        stop |= s == Signal::Shutdown;
                    }
                    if stop {
                        break;
                    }
                    self.prefetch_observation();
                    if self.job.is_some() {
                        self.files_changed_during_job();
                    } else {
                        wake_at = wake_at_of(self.pass(Trigger::Files).await.next);
                    }
                }
                Some(result) = job_rx.recv() => {
                    self.drop_stale_prefetch();
                    let trigger = if self.job_ended(result) {
                        Trigger::SpecChanged
                    } else {
                        Trigger::JobEnded
                    };
                    wake_at = wake_at_of(self.pass(trigger).await.next);
                    resync_at = Some(Instant::now() + self.interval());
                }
                () = sleep_opt(resync_at), if self.job.is_some() => {
                    if let Some(job) = &self.job {
                        job.control.wake();
                    }
                    resync_at = Some(Instant::now() + self.interval());
                }
                () = sleep_opt(wake_at), if self.job.is_none() && wake_at.is_some() => {
                    let trigger = if self.provider_error.is_some() {
                        Trigger::Retry
                    } else {
                        Trigger::Resync
                    };
                    wake_at = wake_at_of(self.pass(trigger).await.next);
                }
                () = live.changed.notified() => {
                    let due = self.last_write.map(|t| t + self.settings.status_every);
                    match due {
                        Some(due) if due > Instant::now() => {
                            flush_at.get_or_insert(due);
                        }
                        _ => {
                            self.write_status();
                            flush_at = None;
                        }
                    }
                }
                () = sleep_opt(flush_at), if flush_at.is_some() => {
                    self.write_status();
                    flush_at = None;
                }
            }
        }
        self.shutdown(&mut job_rx).await
    }

    /// Files changed while a job runs: a new valid spec goes to the running
    /// loop, which re-plans at once around the moves in flight (nothing is
    /// cancelled); an invalid one is reported and changes nothing.
    fn files_changed_during_job(&mut self) {
        match self.reload_spec() {
            SpecChange::Changed => {
                if let (Some(job), Some(desired)) = (self.job.as_mut(), self.spec.desired.clone()) {
                    let running = job.control.running_jobs().len();
                    tracing::info!(
                        "the spec changed: re-planning now around {running} migration{} in flight",
                        plural(running)
                    );
                    job.control.set_spec(desired);
                    job.restart = true;
                }
            }
            SpecChange::Invalid | SpecChange::Same => {}
        }
        // A commit that arrives while a job runs is reported now, not when
        // the job ends: a valid one is in force from here on. The status is
        // written by the loop's next turn, after a job that ended meanwhile
        // has been taken in (at 100,000 VMs, writing it takes a while).
        self.refresh_revisions();
        self.live.changed.notify_one();
    }

    /// Reads the commit checked out now and takes it in as the revision in
    /// force (when the spec loaded is valid) and the latest seen.
    fn refresh_revisions(&mut self) {
        let head = revision::head(&self.settings.dir);
        if self.revisions.update(head, self.spec.error.is_none()) {
            self.revisions.log();
        }
    }

    /// Stops, waits for running moves (bounded), writes the final status.
    async fn shutdown(mut self, job_rx: &mut mpsc::UnboundedReceiver<JobResult>) -> Summary {
        let mut abandoned = Vec::new();
        self.drop_prefetch();
        if let Some(control) = self.job.as_ref().map(|j| j.control.clone()) {
            control.stop();
            let running = control.running_jobs();
            let timeout = self.settings.shutdown_timeout;
            tracing::info!(
                "stopping: starting no more moves; waiting up to {} for {} running migration{}",
                human_seconds(timeout.as_secs_f64()),
                running.len(),
                plural(running.len())
            );
            let deadline = Instant::now() + timeout;
            let live = self.live.clone();
            loop {
                tokio::select! {
                    biased;
                    result = job_rx.recv() => {
                        if let Some(result) = result {
                            self.job_ended(result);
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        abandoned = control.running_jobs();
                        for j in &abandoned {
                            tracing::warn!(
                                vm = %j.vm,
                                "exiting while the migration {} -> {} (job {}) still runs on the hosts; the next start waits for it",
                                j.from, j.to, j.job
                            );
                        }
                        break;
                    }
                    () = live.changed.notified() => {
                        self.write_status();
                    }
                }
            }
        }
        let report = self.pass(Trigger::Final).await;
        tracing::info!(
            passes = self.passes,
            "stopped; final status: {}",
            counts_text(&report.counts)
        );
        if let Err(e) = self.provider.close().await {
            tracing::warn!("closing the provider: {e}");
        }
        Summary {
            passes: self.passes,
            abandoned,
        }
    }

    /// One pass: load, observe, plan, report, decide. Public for benchmarks.
    pub async fn pass(&mut self, trigger: Trigger) -> PassReport {
        let started = std::time::Instant::now();
        self.passes += 1;
        self.phases = Phases::default();
        let t = std::time::Instant::now();
        self.reload_spec();
        self.phases.spec = t.elapsed();
        self.refresh_revisions();
        if trigger == Trigger::Resync {
            // Moves given up on for a passing cause (retries used up, a
            // backup longer than backupWait) get another chance; moves that
            // cannot succeed stay blocked until the spec sends the VM
            // elsewhere.
            self.book
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .lift_passing_holds();
            self.job_blocked.clear();
        }
        let (outcome, next) = match self.spec.desired.clone() {
            None => {
                let mut live = self.live.lock();
                live.vms = Arc::default();
                self.live.epoch.fetch_add(1, Ordering::SeqCst);
                drop(live);
                self.live.touched.store(true, Ordering::SeqCst);
                (Outcome::NoSpec, Action::Requeue(self.interval()))
            }
            Some(desired) => self.observe_and_decide(desired, trigger).await,
        };
        // An observation started for this pass and not used (no valid
        // spec) would be stale by the next one.
        self.drop_prefetch();
        self.live.lock().fleet.pass_ended();
        let t = std::time::Instant::now();
        let counts = self.write_status();
        self.phases.status = t.elapsed();
        let elapsed = started.elapsed();
        tracing::debug!(
            pass = self.passes,
            "pass took {}",
            self.phases.text(elapsed)
        );
        self.metrics.pass(elapsed.as_secs_f64());
        let report = PassReport {
            number: self.passes,
            trigger,
            outcome,
            spec_error: self.spec.error.clone(),
            provider_error: self.provider_error.clone(),
            counts,
            job: self.last_job.take(),
            next,
            elapsed,
        };
        log_pass(&report);
        if let Some(f) = &self.notices {
            f(&Notice::Pass(Box::new(report.clone())));
        }
        report
    }

    /// Hands the plan to the executor as a task with its own [`Control`];
    /// its first round is this pass's look and plan (`seed`).
    fn start_job(&mut self, seed: execute::Seed) {
        let desired = seed.desired.clone();
        let control = Control::new();
        control.seed(seed);
        let limit = desired.policy.max_moves_per_apply;
        let opts = Options {
            // Hops count as moves; the plan itself was checked against the limit.
            max_moves: Some(limit.saturating_mul(2).max(limit)),
            ..self.settings.exec.clone()
        };
        let observer = Arc::new(JobObserver {
            live: self.live.clone(),
            metrics: self.metrics.clone(),
            notices: self.notices.clone(),
            pictures: Arc::default(),
        });
        let provider = self.provider.clone();
        let tx = self.job_tx.clone();
        let task_control = control.clone();
        let book = self.book.clone();
        tokio::spawn(async move {
            let result = execute::run(
                desired,
                provider,
                &opts,
                observer.as_ref(),
                task_control,
                book,
                false,
            )
            .await;
            let _ = tx.send(result);
        });
        self.job = Some(Job {
            control,
            restart: false,
        });
    }

    /// Takes in the result of the job; returns whether it was stopped for a
    /// new spec.
    fn job_ended(&mut self, result: JobResult) -> bool {
        let restart = self.job.take().is_some_and(|j| j.restart);
        match result {
            Ok(report) => {
                self.metrics
                    .corrections(report.acl_changes, report.reconnects);
                self.job_blocked = report
                    .blocked
                    .iter()
                    .map(|b| (b.vm.clone(), b.reason.clone()))
                    .collect();
                tracing::info!(
                    converged = report.converged,
                    "job ended: {} moves ({} attempts, {} failed), {} ACL changes, {} reconnects{}",
                    report.moves,
                    report.attempts,
                    report.failed_attempts,
                    report.acl_changes,
                    report.reconnects,
                    match report.blocked.len() {
                        0 => String::new(),
                        n => format!(", {n} blocked"),
                    }
                );
                self.last_job = Some(report);
            }
            Err(e) => {
                tracing::error!("the job stopped: {e}");
                self.metrics.provider_failed(true);
                self.provider_error = Some(e.to_string());
            }
        }
        restart
    }

    /// Writes the status file (when there is one) and updates the VM gauges.
    fn write_status(&mut self) -> [u64; 6] {
        // A copy is taken under the lock (the VMs are shared, the rest is
        // small) and written out after it: the job's events wait on the lock,
        // and at 100,000 VMs serialising takes tens of milliseconds.
        let s = {
            let mut s = self.live.lock();
            s.updated_at = status::rfc3339(std::time::SystemTime::now());
            s.spec_error = self.spec.error.clone();
            s.provider_error = self.provider_error.clone();
            s.revision = self.revisions.revision.clone();
            s.attempted_revision = self.revisions.attempted.clone();
            s.clone()
        };
        let bytes = (self.settings.status_file.is_some() || self.metrics.serves_status())
            .then(|| status::to_bytes(&s));
        let counts = s.counts();
        self.metrics.set_vms(counts);
        self.metrics.set_revisions(
            self.revisions.revision.as_deref(),
            self.revisions.attempted.as_deref(),
        );
        if let Some(bytes) = &bytes {
            self.metrics.publish_status(bytes);
        }
        if let (Some(path), Some(bytes)) = (&self.settings.status_file, bytes)
            && let Err(e) = status::write_bytes_atomic(path, &bytes)
        {
            tracing::warn!("cannot write the status file {}: {e}", path.display());
        }
        self.last_write = Some(Instant::now());
        counts
    }
}

/// Where one pass spent its time: at a hundred thousand VMs each part is
/// worth knowing (`RUST_LOG=berth=debug`).
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    spec: Duration,
    observe: Duration,
    plan: Duration,
    status: Duration,
}

impl Phases {
    fn text(&self, total: Duration) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:.1} ms: reading the spec {:.1} ms, observing {:.1} ms, planning {:.1} ms, writing the status {:.1} ms",
            ms(total),
            ms(self.spec),
            ms(self.observe),
            ms(self.plan),
            ms(self.status)
        )
    }
}

fn wake_at_of(next: Action) -> Option<Instant> {
    match next {
        Action::Requeue(d) => Some(Instant::now() + d),
        Action::AwaitJob => None,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn counts_text(counts: &[u64; 6]) -> String {
    let parts: Vec<String> = Condition::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{n} {}", c.as_str()))
        .collect();
    if parts.is_empty() {
        "no VMs".to_string()
    } else {
        parts.join(", ")
    }
}

fn log_pass(r: &PassReport) {
    let took = format!("{:.1} ms", r.elapsed.as_secs_f64() * 1000.0);
    let next = match r.next {
        _ if r.trigger == Trigger::Final => "exiting".to_string(),
        Action::Requeue(d) => format!("next pass in {}", human_seconds(d.as_secs_f64())),
        Action::AwaitJob => "next pass when the job ends".to_string(),
    };
    let counts = counts_text(&r.counts);
    let trigger = r.trigger.name();
    match &r.outcome {
        Outcome::InSync if r.spec_error.is_none() => {
            tracing::debug!(
                pass = r.number,
                trigger,
                "in sync ({counts}) in {took}; {next}"
            )
        }
        Outcome::InSync => {
            tracing::info!(
                pass = r.number,
                trigger,
                "in sync with the last valid spec ({counts}); {next}"
            )
        }
        Outcome::NoSpec => {
            tracing::warn!(pass = r.number, trigger, "no valid spec yet; {next}")
        }
        Outcome::ProviderDown => {}
        Outcome::Started { actions, moves } => tracing::info!(
            pass = r.number,
            trigger,
            "started {actions} action{} ({moves} move{}) in {took}",
            plural(*actions),
            plural(*moves)
        ),
        Outcome::Suspended { changes } => tracing::info!(
            pass = r.number,
            trigger,
            "policy.suspend is on: {changes} change{} not made ({counts}); {next}",
            plural(*changes)
        ),
        Outcome::Refused { .. } => {}
        Outcome::Deferred { changes } => tracing::info!(
            pass = r.number,
            trigger,
            "{changes} change{} left ({counts}); {next}",
            plural(*changes)
        ),
    }
}
