//! Timing `plan::plan` for the planning benchmarks (`plan`, `intent`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth::plan::{self, Plan};
use berth::provider::Observed;
use berth::spec::Desired;

/// Plans `runs` times (at least once); the last plan, and the best and
/// median time.
pub fn time_plan(
    desired: &Desired,
    observed: &Observed,
    runs: usize,
) -> (Plan, Duration, Duration) {
    let mut times = Vec::new();
    let mut plan: Option<Plan> = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let p = plan::plan(black_box(desired), black_box(observed));
        times.push(start.elapsed());
        plan = Some(black_box(p));
    }
    times.sort();
    let p = plan.expect("at least one run");
    (p, times[0], times[times.len() / 2])
}

/// A duration in whole milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
