//! Move windows in the executor: where "may this move start now" is decided.
//!
//! Outside every window of `policy.moveWindows` no move starts; adapter
//! fixes are not moves and go ahead, and a move already running finishes.
//! The clock is the provider's ([`Provider::now`]), so the simulator's
//! windows run on simulated time. The [`super::gate::Gate`] refuses moves
//! with [`super::gate::Wait::Window`] while [`closed`] says so; the engine
//! then wakes at the opening (`watch`, and `apply`, which also wakes once a
//! minute before it for the countdown) unless [`Options::wait_for_window`]
//! is off and it does not run for ever.

use std::time::Duration;

use crate::provider::Provider;
use crate::spec::{Desired, WindowState, window_state};

use super::Options;

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
pub(super) fn step(remaining: Duration) -> Duration {
    let minute = Duration::from_secs(60);
    if remaining <= minute {
        return remaining;
    }
    let rest = Duration::from_nanos((remaining.as_nanos() % minute.as_nanos()) as u64);
    if rest.is_zero() { minute } else { rest }
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
