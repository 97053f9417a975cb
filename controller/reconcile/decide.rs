//! What a pass decides once the spec is read: observe the fleet (or take
//! the look started when the files changed), plan (or reuse the last plan
//! when nothing it depends on changed), set the conditions, and choose
//! the [`Action`]: hand the plan to the executor, or requeue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use crate::execute;
use crate::plan;
use crate::provider::{Observed, Provider};
use crate::spec::{Desired, human_seconds};

use super::fleet_view::HostsSeen;
use super::status::{self, Condition};
use super::{Action, IN_FLIGHT_POLL, Memo, Outcome, Reconciler, Trigger, status_window};

/// An observation started when files changed, so that it runs while the
/// documents are read (at 100,000 VMs each takes about a tenth of a
/// second, on a core of its own). Only the next pass uses it, and after a
/// job only if the job changed nothing on the fleet since it started (no
/// move started or ended, no adapter fixed) and it is younger than
/// [`PREFETCH_FRESH`]; else it is dropped and the pass looks again.
pub(super) struct Prefetch {
    started: Instant,
    /// [`super::Live`]'s `changes` when it started.
    changes: u64,
    observation: tokio::task::JoinHandle<Observation>,
}

/// How old a prefetched observation may be when a job ends.
const PREFETCH_FRESH: Duration = Duration::from_secs(2);

pub(super) type Observation = Result<Observed, String>;

impl Reconciler {
    /// Starts observing the fleet on a task of its own, for the next pass
    /// (see [`Prefetch`]).
    pub(super) fn prefetch_observation(&mut self) {
        if self.prefetch.is_some() {
            return;
        }
        let provider = self.provider.clone();
        let timeout = self.settings.observe_timeout;
        self.prefetch = Some(Prefetch {
            started: Instant::now(),
            changes: self.live.changes.load(Ordering::SeqCst),
            observation: tokio::spawn(async move { observe(provider.as_ref(), timeout).await }),
        });
    }

    /// Drops the prefetched observation, if any (it would be stale).
    pub(super) fn drop_prefetch(&mut self) {
        if let Some(p) = self.prefetch.take() {
            p.observation.abort();
        }
    }

    /// After a job ended: drops the prefetched observation unless the job
    /// changed nothing on the fleet since it started and it is younger
    /// than [`PREFETCH_FRESH`].
    pub(super) fn drop_stale_prefetch(&mut self) {
        let changes = self.live.changes.load(Ordering::SeqCst);
        if self
            .prefetch
            .as_ref()
            .is_some_and(|p| p.changes != changes || p.started.elapsed() > PREFETCH_FRESH)
        {
            self.drop_prefetch();
        }
    }

    pub(super) async fn observe_and_decide(
        &mut self,
        desired: Arc<Desired>,
        trigger: Trigger,
    ) -> (Outcome, Action) {
        let t = std::time::Instant::now();
        let observation = match self.prefetch.take() {
            Some(p) => match p.observation.await {
                Ok(o) => o,
                Err(e) => Err(format!("cannot observe the fleet: {e}")),
            },
            None => observe(self.provider.as_ref(), self.settings.observe_timeout).await,
        };
        let observed = match observation {
            Ok(o) => o,
            Err(message) => return self.provider_down(message),
        };
        self.provider_up();
        self.phases.observe = t.elapsed();
        let t = std::time::Instant::now();
        let closed = execute::window::closed(&desired, self.provider.as_ref(), &self.settings.exec);
        let window = closed.as_ref().map(execute::window::waiting_reason);
        // The plan and the conditions are pure functions of the spec, the
        // holds, the observation and the move window: when none of them changed since the
        // last pass (a quiet resync), the last ones are reused.
        let holds = self
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .holds_for(&desired);
        // A memo that no longer holds is let go after the job starts: its
        // observation may be the last copy of 100,000 VMs, and freeing it
        // takes tens of milliseconds.
        let mut stale = None;
        let memo = match self.memo.take() {
            Some(m)
                if Arc::ptr_eq(&m.desired, &desired)
                    && m.holds == holds
                    && m.window == window
                    && m.observed.hosts == observed.hosts
                    && m.observed.vms == observed.vms =>
            {
                m
            }
            old => {
                stale = old;
                // The hosts' figures for the fleet page need only the spec
                // and the observation: they are summed on another core
                // while this one plans.
                let (plan, conditions, hosts) = std::thread::scope(|s| {
                    let hosts = s.spawn(|| HostsSeen::of(&desired, &observed));
                    let plan = plan::plan_with_holds(&desired, &observed, &holds);
                    let mut conditions =
                        status::conditions(&desired, &observed, &plan, desired.policy.suspend);
                    for (vm, reason) in &self.job_blocked {
                        if let Some(e) = conditions.get_mut(vm)
                            && e.condition == Condition::Pending
                        {
                            e.condition = Condition::Blocked;
                            e.reason = Some(reason.clone());
                        }
                    }
                    if let Some(why) = &window {
                        status_window::mark_waiting(&mut conditions, &plan, why);
                    }
                    let hosts = hosts
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e));
                    (plan, conditions, hosts)
                });
                self.live.touched.store(true, Ordering::SeqCst);
                Memo {
                    desired: desired.clone(),
                    holds,
                    observed: Arc::new(observed),
                    plan: Arc::new(plan),
                    conditions: Arc::new(conditions),
                    hosts,
                    window: window.clone(),
                }
            }
        };
        self.phases.plan = t.elapsed();
        let plan = &memo.plan;
        let suspended = desired.policy.suspend;
        let mut refused_vms = None;
        let interval = self.interval();
        let changes = plan.actions.len();
        let limit = desired.policy.max_moves_per_apply;
        let decision = if suspended {
            self.after_job = None;
            (Outcome::Suspended { changes }, Action::Requeue(interval))
        } else if changes == 0 && plan.in_flight.is_empty() {
            self.after_job = None;
            (Outcome::InSync, Action::Requeue(interval))
        } else if changes == 0 {
            (
                Outcome::Deferred { changes },
                Action::Requeue(interval.min(IN_FLIGHT_POLL)),
            )
        } else if let Some(closed) = &closed
            && plan::fixes_only(plan).actions.is_empty()
        {
            // Outside every move window with only moves to make: look
            // again when the window opens (or at the next resync).
            let opens = closed.wait(self.provider.now()).unwrap_or(interval);
            (
                Outcome::Deferred { changes },
                Action::Requeue(interval.min(opens).max(Duration::from_secs(1))),
            )
        } else if !trigger.may_act() {
            let delay = self
                .after_job
                .get_or_insert_with(|| {
                    ExponentialBuilder::new()
                        .with_min_delay(Duration::from_secs(5))
                        .with_max_delay(interval)
                        .with_factor(2.0)
                        .without_max_times()
                        .build()
                })
                .next()
                .unwrap_or(interval)
                .min(interval);
            (Outcome::Deferred { changes }, Action::Requeue(delay))
        } else if plan.moves() > limit as usize {
            let why = format!(
                "not started: the plan has {} moves, more than policy.maxMovesPerApply ({limit})",
                plan.moves()
            );
            tracing::error!("{why}; raise the limit or split the change; nothing was moved");
            let mut vms = (*memo.conditions).clone();
            for a in plan.actions.iter().filter(|a| a.kind.is_move()) {
                if let Some(vm) = vms.get_mut(a.kind.vm()) {
                    vm.reason = Some(format!(
                        "{}; {why}",
                        vm.reason.as_deref().unwrap_or("pending")
                    ));
                }
            }
            refused_vms = Some(vms);
            (
                Outcome::Refused {
                    moves: plan.moves(),
                    limit,
                },
                Action::Requeue(interval),
            )
        } else {
            (
                Outcome::Started {
                    actions: changes,
                    moves: plan.moves(),
                },
                Action::AwaitJob,
            )
        };
        // The conditions go in before the job starts: its first events
        // (on another thread) must land on top of them, not under them.
        // Unless a job's events changed them since, they are already there.
        let refused = refused_vms.is_some();
        let mut old_vms = None;
        let mut live = self.live.lock();
        if let Some(vms) = refused_vms {
            old_vms = Some(std::mem::replace(&mut live.vms, Arc::new(vms)));
            self.live.epoch.fetch_add(1, Ordering::SeqCst);
        } else if self.live.touched.swap(false, Ordering::SeqCst) {
            old_vms = Some(std::mem::replace(&mut live.vms, memo.conditions.clone()));
            self.live.epoch.fetch_add(1, Ordering::SeqCst);
        }
        live.suspended = suspended;
        live.fleet.install(memo.hosts.clone(), &memo.observed);
        drop(live);
        // A refusal's reasons are not the memo's: write the memo's next time.
        self.live.touched.store(refused, Ordering::SeqCst);
        self.metrics.set_suspended(suspended);
        if decision.1 == Action::AwaitJob {
            self.start_job(execute::Seed {
                desired: desired.clone(),
                observed: memo.observed.clone(),
                plan: memo.plan.clone(),
            });
        }
        self.memo = Some(memo);
        if stale.is_some() || old_vms.is_some() {
            let old = (stale, old_vms);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(old))),
                Err(_) => drop(old),
            }
        }
        decision
    }

    fn provider_down(&mut self, message: String) -> (Outcome, Action) {
        let delay = self
            .retry
            .get_or_insert_with(|| {
                ExponentialBuilder::new()
                    .with_min_delay(self.settings.retry_min)
                    .with_max_delay(self.settings.retry_max)
                    .with_factor(2.0)
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(self.settings.retry_max);
        let retry_in = human_seconds(delay.as_secs_f64());
        if self.provider_error.as_deref() == Some(message.as_str()) {
            tracing::warn!("{message}; retrying in {retry_in}");
        } else {
            tracing::error!("{message}; retrying in {retry_in}");
        }
        self.metrics.provider_failed(true);
        self.provider_error = Some(message);
        (Outcome::ProviderDown, Action::Requeue(delay))
    }

    fn provider_up(&mut self) {
        if self.provider_error.take().is_some() {
            tracing::info!("the provider answers again");
        }
        self.retry = None;
        self.metrics.provider_failed(false);
    }
}

/// One observation of the fleet, bounded by `timeout`.
async fn observe(provider: &dyn Provider, timeout: Duration) -> Observation {
    match tokio::time::timeout(timeout, provider.observe()).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(format!("cannot observe the fleet: {e}")),
        Err(_) => Err(format!(
            "cannot observe the fleet: no answer within {}",
            human_seconds(timeout.as_secs_f64())
        )),
    }
}
