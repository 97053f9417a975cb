//! What the loop's progress does to the status, the metrics and the logs.
//!
//! The executor's loop hands its whole picture to [`JobObserver::state`]
//! after every re-plan: the conditions come from that (a VM in flight is
//! `Moving`, a ready one held back is `Waiting` with the gate's reason, a
//! fix done is `InSync` at once), so the status file is never older than
//! the last event. Events feed the metrics, the log and the notices.
//!
//! Turning a picture into conditions takes longer than the re-plan at
//! 100,000 VMs, so it is not done on the executor's loop: pictures go to a
//! task of their own ([`Pictures`]), which applies the newest one and
//! drops those a newer one replaced before it got to them. The loop goes
//! straight back to waiting, and a commit that arrives meanwhile is
//! planned at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::execute::{Event, Observer, Snapshot};
use crate::spec::human_seconds;

use super::fleet_view::HostsSeen;
use super::status::{self, Condition, VmStatus};
use super::{Live, Metrics, Notice, NoticeFn};

/// Turns the loop's events and pictures into live conditions, metrics,
/// logs and notices.
pub(super) struct JobObserver {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub notices: Option<NoticeFn>,
    pub pictures: Arc<Pictures>,
}

/// Pictures of the executor's loop on their way to the live status.
#[derive(Default)]
pub(super) struct Pictures {
    /// The newest picture not yet applied, with the [`Live::epoch`] it was
    /// taken in.
    next: Mutex<Option<(Snapshot, u64)>>,
    /// A task is applying pictures.
    busy: AtomicBool,
}

impl Pictures {
    fn take(&self) -> Option<(Snapshot, u64)> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Applies pictures until none is left. Exactly one caller runs this at
    /// a time (`busy`); a picture left after it stops starts another.
    fn drain(self: Arc<Self>, live: Arc<Live>) {
        loop {
            while let Some((s, epoch)) = self.take() {
                apply(&live, &s, epoch);
            }
            self.busy.store(false, Ordering::SeqCst);
            // A picture put in after the last take and before `busy` fell
            // found the task still busy: take it here.
            let left = self
                .next
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
            if !left || self.busy.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// Sets the live conditions from a picture, unless a pass has set them
/// since it was taken.
fn apply(live: &Live, s: &Snapshot, epoch: u64) {
    // A picture a pass has already replaced is not worth working out (the
    // epoch is checked again under the lock, where it counts).
    if live.epoch.load(Ordering::SeqCst) != epoch {
        return;
    }
    let vms = conditions_of(s);
    // Summed before the lock is taken: the loop's own events wait on it.
    let hosts = HostsSeen::of(&s.desired, &s.observed);
    {
        let mut status = live.lock();
        if live.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        status.fleet.install(hosts, &s.observed);
        if *status.vms == vms {
            return;
        }
        status.vms = Arc::new(vms);
    }
    live.touched.store(true, Ordering::SeqCst);
    live.changed.notify_one();
}

impl Observer for JobObserver {
    fn event(&self, event: &Event) {
        log_event(event);
        match event {
            Event::MoveStarted { .. } => self.metrics.move_started(),
            Event::MoveFinished { error: Some(_), .. } => self.metrics.move_failed(),
            _ => {}
        }
        if matches!(
            event,
            Event::MoveStarted { .. } | Event::MoveFinished { .. } | Event::AdapterFixed { .. }
        ) {
            self.live.changes.fetch_add(1, Ordering::SeqCst);
        }
        if matches!(
            event,
            Event::MoveStarted { .. } | Event::MoveFinished { .. }
        ) {
            // Moves in flight, slots and memory for the fleet page.
            self.live.lock().fleet.event(event);
            self.live.changed.notify_one();
        }
        if let Some(f) = &self.notices {
            f(&Notice::Exec(event.clone()));
        }
    }

    fn wants_state(&self) -> bool {
        true
    }

    fn state(&self, s: &Snapshot) {
        let epoch = self.live.epoch.load(Ordering::SeqCst);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            apply(&self.live, s, epoch);
            return;
        };
        *self.pictures.next.lock().unwrap_or_else(|e| e.into_inner()) = Some((s.clone(), epoch));
        if self.pictures.busy.swap(true, Ordering::SeqCst) {
            return;
        }
        let (pictures, live) = (self.pictures.clone(), self.live.clone());
        runtime.spawn(async move { pictures.drain(live) });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use crate::provider::sim::Sim;
    use crate::spec::Desired;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    /// A picture of a one-VM world that berth does not manage.
    async fn picture() -> Snapshot {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.yaml");
        std::fs::write(
            &path,
            "apiVersion: berth/v1\nkind: Fleet\nspec:\n  hosts:\n    - { name: hv01, memoryGiB: 64 }\n  vms:\n    - { name: web, host: hv01, memoryGiB: 1 }\n",
        )
        .expect("write");
        let fleet = crate::spec::load_fleet(&path).expect("fleet");
        let observed = Sim::in_memory(&fleet).observe().await.expect("observe");
        let desired = Desired::default();
        let plan = crate::plan::plan(&desired, &observed);
        Snapshot {
            desired: Arc::new(desired),
            observed: Arc::new(observed),
            plan: Arc::new(plan),
            moving: BTreeMap::new(),
            waiting: BTreeMap::new(),
            blocked: BTreeMap::new(),
        }
    }

    #[test]
    fn a_picture_taken_before_a_pass_set_the_conditions_is_dropped() {
        runtime().block_on(async {
            let live = Live::default();
            let s = picture().await;
            apply(&live, &s, 0);
            assert_eq!(live.lock().vms.len(), 1, "applied in its own epoch");
            // A pass sets the conditions (here: none) and moves the epoch on.
            live.lock().vms = Arc::default();
            live.epoch.fetch_add(1, Ordering::SeqCst);
            apply(&live, &s, 0);
            assert!(live.lock().vms.is_empty(), "the older picture is dropped");
            apply(&live, &s, 1);
            assert_eq!(live.lock().vms.len(), 1);
        });
    }

    #[test]
    fn pictures_are_applied_on_a_task_of_their_own_newest_last() {
        runtime().block_on(async {
            let live = Arc::new(Live::default());
            let observer = JobObserver {
                live: live.clone(),
                metrics: Arc::new(Metrics::default()),
                notices: None,
                pictures: Arc::default(),
            };
            let s = picture().await;
            let mut empty = s.clone();
            empty.observed = Arc::new(crate::provider::Observed::default());
            observer.state(&empty);
            observer.state(&s);
            assert!(
                live.lock().vms.is_empty(),
                "nothing is computed on the caller's task"
            );
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(live.lock().vms.len(), 1, "the newest picture is in force");
            assert!(!observer.pictures.busy.load(Ordering::SeqCst));
        });
    }
}
