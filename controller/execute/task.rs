//! The tasks the loop starts: one per move, adapter fix or followed job.
//!
//! A task does one thing against the provider and reports how it ended as a
//! [`Done`]; it decides nothing. What a failure means (wait, retry, give
//! up) is the loop's business, on its next re-plan.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::provider::{MoveRequest, Provider, ProviderError};

use super::adapters::{self, AdapterTarget, Counts, ensure_adapter};
use super::book::MoveKey;
use super::{Control, Event, RunningJob};

/// How a task ended.
pub(super) enum Done {
    /// The move completed and the adapters were put back.
    Moved {
        key: MoveKey,
        counts: Counts,
        problems: Vec<String>,
    },
    /// The move could not be requested, or it failed.
    MoveFailed {
        key: MoveKey,
        error: ProviderError,
        /// The provider accepted the request (a migration was started).
        requested: bool,
    },
    /// The move did not end within `moveTimeout`.
    TimedOut { key: MoveKey },
    /// A move found running (started elsewhere or before a restart) ended.
    Followed {
        vm: String,
        from: String,
        to: String,
        result: Result<(), ProviderError>,
    },
    /// An adapter fix ended.
    Adapter {
        vm: String,
        adapter: String,
        result: Result<Counts, ProviderError>,
    },
}

/// Everything one move task needs.
pub(super) struct MoveTask {
    pub provider: Arc<dyn Provider>,
    pub request: MoveRequest,
    pub targets: Vec<(String, AdapterTarget)>,
    pub timeout: Duration,
    pub control: Arc<Control>,
    pub started: Event,
    pub events: mpsc::UnboundedSender<Event>,
}

/// One move: request it, follow the job, then put the VM's adapters back
/// at once and verify.
pub(super) async fn run_move(task: MoveTask) -> Done {
    let MoveTask {
        provider,
        request,
        targets,
        timeout,
        control,
        started,
        events,
    } = task;
    let key = MoveKey {
        vm: request.vm.clone(),
        to: request.to.clone(),
    };
    let job = match provider.start_move(&request).await {
        Ok(job) => {
            let _ = events.send(started);
            job
        }
        Err(error) => {
            return Done::MoveFailed {
                key,
                error,
                requested: false,
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
        Err(_) => Done::TimedOut { key },
        Ok(Err(error)) => Done::MoveFailed {
            key,
            error,
            requested: true,
        },
        Ok(Ok(())) => {
            let (counts, problems) =
                adapters::reassert(provider.as_ref(), &request.vm, &targets).await;
            Done::Moved {
                key,
                counts,
                problems,
            }
        }
    }
}

/// Follows a move that was running before this process looked at it
/// (restart safety: it is followed, never issued again).
pub(super) async fn follow(
    provider: Arc<dyn Provider>,
    control: Arc<Control>,
    job: RunningJob,
    timeout: Duration,
) -> Done {
    control.track(job.clone());
    let result = match tokio::time::timeout(timeout, provider.wait_job(&job.job)).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::retryable(
            "the move did not finish within moveTimeout",
        )),
    };
    control.untrack(&job.vm);
    Done::Followed {
        vm: job.vm,
        from: job.from,
        to: job.to,
        result,
    }
}

/// Makes one adapter as declared, from a fresh look at it.
pub(super) async fn fix_adapter(
    provider: Arc<dyn Provider>,
    vm: String,
    adapter: String,
    target: AdapterTarget,
) -> Done {
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
    Done::Adapter {
        vm,
        adapter,
        result,
    }
}
