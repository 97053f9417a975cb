//! Why a VM's declared fallbacks cannot take it.
//!
//! A VM that declares `fallback` waits out its host's maintenance only on
//! those hosts; when none can take it, it is blocked rather than sent to a
//! host nobody chose. The reason names each fallback and what it lacks, so
//! the person reading the plan knows which host to make room on.

use crate::provider::{Observed, ObservedHost, ObservedVm};
use crate::spec::{Desired, VmSpec};

use super::Caps;
use super::diff::{gib, in_maintenance, unfit};

/// "no fallback can take web-01 while hv01 is in maintenance: hv02 has 4 GiB
/// free of the 8 GiB it needs; hv03 is in maintenance".
pub(super) fn none_fits(
    desired: &Desired,
    observed: &Observed,
    caps: &Caps,
    vm: &ObservedVm,
    spec: Option<&VmSpec>,
    need_mib: u64,
    room_mib: &dyn Fn(&ObservedHost) -> u64,
) -> String {
    let Some(spec) = spec else {
        return format!("no host can take {}", vm.name);
    };
    let from = observed.hosts.get(&vm.host);
    let lacks: Vec<String> = spec
        .fallback
        .iter()
        .map(|f| {
            let Some(h) = observed.hosts.get(f) else {
                return format!("{f} is not in the fleet");
            };
            if in_maintenance(desired, f) {
                return format!("{f} is in maintenance too");
            }
            if h.name != vm.host
                && let Some(why) = from.and_then(|from| unfit(vm, Some(spec), from, h, caps))
            {
                return why;
            }
            let room = room_mib(h);
            if room < need_mib {
                return format!(
                    "{f} has {} free of the {} it needs",
                    gib(room),
                    gib(need_mib)
                );
            }
            format!("{f} cannot take it")
        })
        .collect();
    format!(
        "no fallback can take it while {} is in maintenance: {}",
        spec.host,
        lacks.join("; ")
    )
}
