//! What the loop's progress does to the status, the metrics and the logs.
//!
//! The executor's loop hands its whole picture to [`JobObserver::state`]
//! after every re-plan: the conditions come from that (a VM in flight is
//! `Moving`, a ready one held back is `Waiting` with the gate's reason, a
//! fix done is `InSync` at once), so the status file is never older than
//! the last event. Events feed the metrics, the log and the notices.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::execute::{Event, Observer, Snapshot};
use crate::spec::human_seconds;

use super::status::{self, Condition, VmStatus};
use super::{Live, Metrics, Notice, NoticeFn};

/// Turns the loop's events and pictures into live conditions, metrics,
/// logs and notices.
pub(super) struct JobObserver {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub notices: Option<NoticeFn>,
}

impl Observer for JobObserver {
    fn event(&self, event: &Event) {
        log_event(event);
        match event {
            Event::MoveStarted { .. } => self.metrics.move_started(),
            Event::MoveFinished { error: Some(_), .. } => self.metrics.move_failed(),
            _ => {}
        }
        if let Some(f) = &self.notices {
            f(&Notice::Exec(event.clone()));
        }
    }

    fn wants_state(&self) -> bool {
        true
    }

    fn state(&self, s: &Snapshot) {
        let vms = conditions_of(s);
        {
            let mut live = self.live.lock();
            if live.vms == vms {
                return;
            }
            live.vms = vms;
        }
        self.live.touched.store(true, Ordering::SeqCst);
        self.live.changed.notify_one();
    }
}

/// Each VM's condition in a picture of the loop.
pub(super) fn conditions_of(s: &Snapshot) -> BTreeMap<String, VmStatus> {
    let mut vms = status::conditions(&s.desired, &s.observed, &s.plan, false);
    for (vm, why) in &s.waiting {
        if let Some(e) = vms.get_mut(vm)
            && matches!(e.condition, Condition::Pending | Condition::Waiting)
        {
            e.condition = Condition::Waiting;
            e.reason = Some(why.clone());
        }
    }
    for (vm, why) in &s.blocked {
        if let Some(e) = vms.get_mut(vm) {
            e.condition = Condition::Blocked;
            e.reason = Some(why.clone());
        }
    }
    for (vm, m) in &s.moving {
        if let Some(e) = vms.get_mut(vm) {
            e.condition = Condition::Moving;
            e.host = Some(m.from.clone());
            e.reason = Some(if m.attempt > 1 {
                format!("moving to {} (attempt {})", m.to, m.attempt)
            } else {
                format!("moving to {}", m.to)
            });
        }
    }
    vms
}

fn log_event(event: &Event) {
    match event {
        Event::Planned { round, plan } => tracing::debug!(
            round,
            "planned {} actions ({} moves)",
            plan.actions.len(),
            plan.moves()
        ),
        Event::MoveStarted {
            vm,
            from,
            to,
            kind,
            attempt,
            estimate,
        } => tracing::info!(
            vm = %vm,
            "move {vm}: {from} -> {to} ({kind}, ~{}, attempt {attempt}) started",
            human_seconds(*estimate)
        ),
        Event::MoveFinished {
            vm,
            from,
            to,
            error: None,
        } => tracing::info!(vm = %vm, "move {vm}: {from} -> {to} done"),
        Event::MoveFinished {
            vm,
            from,
            to,
            error: Some(e),
        } => tracing::warn!(vm = %vm, "move {vm}: {from} -> {to} failed: {e}"),
        Event::Waiting { vm, why } => tracing::info!(vm = %vm, "wait {vm}: {why}"),
        Event::AdapterFixed { vm, adapter, what } => {
            tracing::info!(vm = %vm, "fixed {vm} / {adapter}: {what}")
        }
        Event::Blocked { vm, reason } => tracing::warn!(vm = %vm, "blocked {vm}: {reason}"),
        Event::Replanning { why } => tracing::info!("re-planning: {why}"),
        Event::WindowWait { why, vms, .. } if !vms.is_empty() => {
            tracing::info!("{} move(s) wait: {why}", vms.len())
        }
        Event::WindowWait { .. } => {}
    }
}
