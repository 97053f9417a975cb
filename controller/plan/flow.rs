//! The estimate on shared networks: copies that slow each other down.
//!
//! Where a host has a shared migration network (`networkMiBps`), every copy
//! running through it at a moment gets at most `networkMiBps / n`, so how
//! long a move lasts depends on what else runs. This replays the plan as the
//! executor runs it (the same [`Scheduler`]) and the simulator models it: a
//! move copies its memory (when live) and disks at the lesser of its hosts'
//! rates and network shares, recomputed whenever a copy starts or ends, then
//! takes the fixed 5 s to finish; a move with nothing to copy takes 5 s.

use std::collections::HashMap;

use super::schedule::{Caps, Dependencies, Scheduler, transfer};
use super::{ActionKind, Plan};

/// Fixed cost of every move, seconds.
const BASE: f64 = 5.0;

/// A move under way.
struct Running {
    from: String,
    to: String,
    /// MiB still to copy; `None` once copied (in the fixed 5 s).
    left: Option<f64>,
    /// When the fixed 5 s end (once copied).
    ends: f64,
    rate: f64,
}

/// How long the plan takes on shared networks, seconds.
pub(super) fn makespan(plan: &Plan, caps: &Caps) -> f64 {
    replay(plan, caps).0
}

/// When each action is ready, starts and ends in the replay, seconds.
pub(super) type Times = HashMap<u32, (f64, f64, f64)>;

/// The replay: how long the plan takes, and each action's times (for the
/// plan timeline).
pub(super) fn replay(plan: &Plan, caps: &Caps) -> (f64, Times) {
    let mut times: Times = HashMap::new();
    let mut sched = Scheduler::new(plan, caps);
    let mut deps = Dependencies::new(plan);
    let mut mib: HashMap<u32, (String, String, f64)> = HashMap::new();
    for a in &plan.actions {
        if let (ActionKind::Move { .. }, Some(t)) = (&a.kind, transfer(a)) {
            mib.insert(a.id, (t.from, t.to, t.mib));
        }
    }
    for id in deps.roots() {
        times.insert(id, (0.0, 0.0, 0.0));
        sched.make_ready(id);
    }
    let mut running: HashMap<u32, Running> = HashMap::new();
    let mut instant: Vec<u32> = Vec::new();
    let mut copying: HashMap<String, u32> = HashMap::new();
    let mut now = 0.0f64;
    loop {
        for id in sched.pick() {
            let t = times.entry(id).or_insert((now, now, now));
            t.1 = now;
            t.2 = now;
            match mib.get(&id) {
                None => instant.push(id),
                Some((from, to, m)) => {
                    let left = (*m > 0.0).then_some(*m);
                    if left.is_some() {
                        for h in [from, to] {
                            *copying.entry(h.clone()).or_default() += 1;
                        }
                    }
                    running.insert(
                        id,
                        Running {
                            from: from.clone(),
                            to: to.clone(),
                            left,
                            ends: now + BASE,
                            rate: 0.0,
                        },
                    );
                }
            }
        }
        // Actions without duration finish at once.
        if !instant.is_empty() {
            for id in std::mem::take(&mut instant) {
                sched.finish(id);
                for r in deps.done(id) {
                    times.insert(r, (now, now, now));
                    sched.make_ready(r);
                }
            }
            continue;
        }
        // Shares as they stand now.
        for r in running.values_mut() {
            if r.left.is_some() {
                let mut rate = caps.rate(&r.from, &r.to);
                for h in [&r.from, &r.to] {
                    if let Some(net) = caps.network(h) {
                        let n = copying.get(h.as_str()).copied().unwrap_or(1).max(1);
                        rate = rate.min(net / f64::from(n));
                    }
                }
                r.rate = rate.max(f64::MIN_POSITIVE);
            }
        }
        let next = running
            .values()
            .map(|r| match r.left {
                Some(left) => now + left / r.rate,
                None => r.ends,
            })
            .fold(f64::INFINITY, f64::min);
        if !next.is_finite() {
            break;
        }
        let dt = (next - now).max(0.0);
        let prev = now;
        now = next;
        let mut finished: Vec<u32> = Vec::new();
        let mut ids: Vec<u32> = running.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(r) = running.get_mut(&id) else {
                continue;
            };
            match r.left {
                Some(left) => {
                    let rest = left - r.rate * dt;
                    // Done when its own end is the event (compared as the
                    // event was chosen, so rounding cannot stall the loop).
                    if prev + left / r.rate <= next || rest <= left * 1e-12 + 1e-9 {
                        r.left = None;
                        r.ends = now + BASE;
                        for h in [&r.from, &r.to] {
                            if let Some(n) = copying.get_mut(h.as_str()) {
                                *n = n.saturating_sub(1);
                            }
                        }
                    } else {
                        r.left = Some(rest);
                    }
                }
                None if r.ends <= now + 1e-9 => finished.push(id),
                None => {}
            }
        }
        for id in finished {
            running.remove(&id);
            if let Some(t) = times.get_mut(&id) {
                t.2 = now;
            }
            sched.finish(id);
            for r in deps.done(id) {
                times.insert(r, (now, now, now));
                sched.make_ready(r);
            }
        }
    }
    (now, times)
}
