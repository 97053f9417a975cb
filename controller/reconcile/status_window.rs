//! Move windows in the status: a VM whose move waits for the next window
//! is `Waiting`, and its reason says when the window opens.

use std::collections::BTreeMap;

use crate::plan::Plan;

use super::status::{Condition, VmStatus};

/// Marks every VM with a planned move as waiting for the window, `why`
/// being `outside the move window; opens Mon 22:00 Europe/Amsterdam`.
/// VMs that are blocked or already moving keep their condition.
pub(super) fn mark_waiting(vms: &mut BTreeMap<String, VmStatus>, plan: &Plan, why: &str) {
    for a in plan.actions.iter().filter(|a| a.kind.is_move()) {
        if let Some(vm) = vms.get_mut(a.kind.vm())
            && matches!(vm.condition, Condition::Pending | Condition::Waiting)
        {
            vm.condition = Condition::Waiting;
            vm.reason = Some(why.to_string());
        }
    }
}
