//! Move windows as the plan shows them, and the part of a plan that may
//! run outside one.
//!
//! The planner itself stays a pure function of spec and observation; the
//! window state depends on the clock too, so callers that know the time
//! (`plan`, `apply`, `watch`) attach it with [`window_status`]. Outside every
//! window only the plan's adapter fixes (ACLs, VLANs, connections of VMs
//! that do not move first) may run: [`fixes_only`].

use serde::Serialize;

use crate::spec::window::local;
use crate::spec::{Desired, WindowState, window_state};

use super::{Action, Plan};

/// The move windows at planning time (the plan's `moveWindow` in JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveWindowStatus {
    /// Whether moves may start now.
    pub open: bool,
    /// When the window open now closes (RFC 3339 with the zone's offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<String>,
    /// When the next window opens, while outside every window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// Seconds from planning until `opensAt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_in_seconds: Option<f64>,
    /// For people: `opens Mon 22:00 Europe/Amsterdam`, `open until Tue 06:00 Europe/Amsterdam`.
    pub text: String,
}

/// The window state at `now` for a spec with `policy.moveWindows`; `None`
/// when the policy declares none (moves may start at any time).
pub fn window_status(desired: &Desired, now: jiff::Timestamp) -> Option<MoveWindowStatus> {
    let state = window_state(&desired.policy.move_windows, now);
    let rfc = |z: &jiff::Zoned| z.timestamp().display_with_offset(z.offset()).to_string();
    match &state {
        WindowState::Always => None,
        WindowState::Open { closes } => Some(MoveWindowStatus {
            open: true,
            closes_at: Some(rfc(closes)),
            opens_at: None,
            opens_in_seconds: None,
            text: format!("open until {}", local(closes)),
        }),
        WindowState::Closed { opens } => Some(MoveWindowStatus {
            open: false,
            closes_at: None,
            opens_at: opens.as_ref().map(rfc),
            opens_in_seconds: state.wait(now).map(|d| d.as_secs_f64().round()),
            text: state.opens_text().unwrap_or_default(),
        }),
    }
}

/// The actions of `plan` that are not moves and wait for no move: what
/// runs while outside every move window.
pub fn fixes_only(plan: &Plan) -> Plan {
    let actions: Vec<Action> = plan
        .actions
        .iter()
        .filter(|a| !a.kind.is_move() && a.after.is_empty())
        .cloned()
        .collect();
    Plan {
        actions,
        estimated_seconds: 0.0,
        ..plan.clone()
    }
}
