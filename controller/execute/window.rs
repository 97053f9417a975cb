//! Move windows in the executor: where "may this move start now" is decided.
//!
//! Outside every window of `policy.moveWindows` no move starts; adapter
//! fixes are not moves and go ahead, and a move already running finishes.
//! The clock is the provider's ([`Provider::now`]), so the simulator's
//! windows run on simulated time. `apply` waits for the next window
//! ([`Options::wait_for_window`]), reporting a countdown; `watch` does not
//! wait inside a job: its next pass comes when the window opens.

use std::time::Duration;

use crate::plan::Plan;
use crate::provider::Provider;
use crate::spec::{Desired, WindowState, window_state};

use super::{Event, Options, Run};

/// Why moves may not start now, when they may not.
pub fn closed(desired: &Desired, provider: &dyn Provider, opts: &Options) -> Option<WindowState> {
    if opts.ignore_windows || desired.policy.move_windows.is_empty() {
        return None;
    }
    let state = window_state(&desired.policy.move_windows, provider.now());
    (!state.is_open()).then_some(state)
}

/// The reason a VM waits, as the status file and logs say it:
/// `outside the move window; opens Mon 22:00 Europe/Amsterdam`.
pub fn waiting_reason(state: &WindowState) -> String {
    match state.opens_text() {
        Some(opens) => format!("outside the move window; {opens}"),
        None => "inside a move window".to_string(),
    }
}

/// How long to sleep before the countdown is reported again: to the next
/// whole minute before the opening, or to the opening itself.
fn step(remaining: Duration) -> Duration {
    let minute = Duration::from_secs(60);
    if remaining <= minute {
        return remaining;
    }
    let rest = Duration::from_nanos((remaining.as_nanos() % minute.as_nanos()) as u64);
    if rest.is_zero() { minute } else { rest }
}

impl Run<'_> {
    /// Waits until a move window opens; `false` when a stop came first.
    pub(super) async fn wait_for_window(&mut self, plan: &Plan) -> bool {
        let vms: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| a.kind.is_move())
            .map(|a| a.kind.vm().to_string())
            .collect();
        let mut first = true;
        loop {
            let now = self.provider.now();
            let state = window_state(&self.desired.policy.move_windows, now);
            if state.is_open() {
                return true;
            }
            // No opening within a week (every one falls into a clock
            // change): look again in a day.
            let remaining = state.wait(now);
            self.observer.event(&Event::WindowWait {
                why: waiting_reason(&state),
                remaining,
                vms: if first { vms.clone() } else { Vec::new() },
            });
            first = false;
            let sleep = step(remaining.unwrap_or(Duration::from_secs(86_400)))
                .max(Duration::from_millis(1));
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.control.stopped() => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_countdown_steps_to_whole_minutes() {
        let s = Duration::from_secs;
        assert_eq!(step(s(3 * 3600 + 90)), s(30));
        assert_eq!(step(s(3600)), s(60));
        assert_eq!(step(s(59)), s(59));
        assert_eq!(step(Duration::ZERO), Duration::ZERO);
    }
}
