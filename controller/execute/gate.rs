//! May this move start now? The one place that decides.
//!
//! Every re-plan asks [`Gate::check`] about each ready action, most urgent
//! first, and starts those it allows. A refusal is a [`Wait`]: something
//! that will pass (a slot, memory, a backup, a retry deadline) and that the
//! status file shows as the VM's reason. Per-host limits are a list of
//! [`LimitKind`]s counted in one [`Slots`] table, so another kind of
//! migration limit (storage migrations) is one more variant and one more
//! cap, not a new code path. Move windows and priorities add their checks
//! to [`Gate::check`] too.

use std::collections::HashMap;
use std::fmt;

use tokio::time::Instant;

use crate::plan::{ActionKind, Caps};
use crate::provider::{MoveKind, Observed};
use crate::spec::{VmOperation, human_seconds};

/// A kind of per-host migration limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    /// Live migrations in and out of a host (`maxMigrations`).
    Live,
}

impl LimitKind {
    /// How the limit's migrations are called in reasons.
    pub fn noun(self) -> &'static str {
        match self {
            LimitKind::Live => "live migrations",
        }
    }

    /// The limits a move counts against.
    pub fn of(kind: MoveKind) -> &'static [LimitKind] {
        match kind {
            MoveKind::Live => &[LimitKind::Live],
            MoveKind::Offline => &[],
        }
    }

    /// The cap of this kind on a host.
    fn cap(self, caps: &Caps, host: &str) -> u32 {
        match self {
            LimitKind::Live => caps.host(host),
        }
    }
}

/// Why a ready action does not start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// A host has no free slot of this kind.
    Slot {
        /// The host.
        host: String,
        /// Which limit.
        kind: LimitKind,
        /// Counted now.
        used: u32,
        /// The cap.
        cap: u32,
    },
    /// `maxParallelMigrations` is reached.
    Fleet {
        /// Counted now.
        used: u32,
        /// The cap.
        cap: u32,
    },
    /// The destination's memory is still held by a move in flight.
    Memory {
        /// The destination.
        host: String,
        /// What the move needs, MiB.
        need_mib: u64,
    },
    /// The VM is being backed up.
    Backup,
    /// A failed attempt backs off until then.
    Retry {
        /// When the next attempt may start.
        at: Instant,
    },
    /// The VM's own move is in flight; this action follows when it lands.
    Moving {
        /// Where it lands.
        to: String,
    },
    /// Outside every move window (`policy.moveWindows`).
    Window {
        /// `outside the move window; opens Mon 22:00 Europe/Amsterdam`.
        why: String,
        /// When the next window opens, if one does within a week.
        opens: Option<Instant>,
    },
}

impl Wait {
    /// A short name of the kind of wait (logged once when a VM starts it).
    pub fn kind(&self) -> &'static str {
        match self {
            Wait::Slot { .. } | Wait::Fleet { .. } => "slot",
            Wait::Memory { .. } => "memory",
            Wait::Backup => "backup",
            Wait::Retry { .. } => "retry",
            Wait::Moving { .. } => "moving",
            Wait::Window { .. } => "window",
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Slot {
                host,
                kind,
                used,
                cap,
            } => write!(f, "{host}: {used} of {cap} {}", kind.noun()),
            Wait::Fleet { used, cap } => {
                write!(f, "fleet: {used} of {cap} parallel migrations")
            }
            Wait::Memory { host, need_mib } => write!(
                f,
                "{host}: waiting for {} of memory held by a move in flight",
                gib(*need_mib)
            ),
            Wait::Backup => f.write_str("backup"),
            Wait::Retry { at } => {
                let left = at.saturating_duration_since(Instant::now()).as_secs_f64();
                write!(f, "retry in {}", human_seconds(left.ceil()))
            }
            Wait::Moving { to } => write!(f, "moving to {to}; the next step follows"),
            Wait::Window { why, .. } => f.write_str(why),
        }
    }
}

/// Migrations counted per host and limit kind, and fleet-wide.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    used: HashMap<(String, LimitKind), u32>,
    fleet: u32,
}

impl Slots {
    /// Counts a migration (in flight or starting) on both its hosts.
    pub fn take(&mut self, from: &str, to: &str, kind: MoveKind) {
        self.fleet += 1;
        for k in LimitKind::of(kind) {
            for h in [from, to] {
                *self.used.entry((h.to_string(), *k)).or_default() += 1;
            }
        }
    }

    fn used(&self, host: &str, kind: LimitKind) -> u32 {
        self.used
            .get(&(host.to_string(), kind))
            .copied()
            .unwrap_or(0)
    }
}

/// Everything "may this start now" looks at, for one re-plan.
pub struct Gate<'a> {
    /// The limits in force.
    pub caps: &'a Caps,
    /// The fleet as observed (memory: in-flight moves hold both ends).
    pub observed: &'a Observed,
    /// Migrations in flight and started in this re-plan.
    pub slots: Slots,
    /// Memory taken per host by moves started in this re-plan, MiB.
    pub reserved: HashMap<String, u64>,
    /// Memory in use per host as observed, MiB.
    pub used: HashMap<String, u64>,
    /// Now.
    pub now: Instant,
    /// Set while outside every move window: no move starts.
    pub window: Option<Wait>,
}

/// What the retry book says about one move.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryView {
    /// The next attempt may not start before this.
    pub not_before: Option<Instant>,
}

impl<'a> Gate<'a> {
    /// A gate over one observation.
    pub fn new(caps: &'a Caps, observed: &'a Observed, now: Instant) -> Gate<'a> {
        let used = observed
            .memory_used()
            .into_iter()
            .map(|(h, m)| (h.to_string(), m))
            .collect();
        Gate {
            caps,
            observed,
            slots: Slots::default(),
            reserved: HashMap::new(),
            used,
            now,
            window: None,
        }
    }

    /// May this action start now? `moving_to` is where the VM's own move in
    /// flight lands, if one is.
    pub fn check(
        &self,
        action: &ActionKind,
        moving_to: Option<&str>,
        retry: RetryView,
    ) -> Result<(), Wait> {
        if let Some(to) = moving_to {
            return Err(Wait::Moving { to: to.to_string() });
        }
        let ActionKind::Move {
            vm,
            from,
            to,
            method,
            memory_mib,
            ..
        } = action
        else {
            return Ok(());
        };
        if let Some(w) = &self.window {
            return Err(w.clone());
        }
        if let Some(at) = retry.not_before
            && at > self.now
        {
            return Err(Wait::Retry { at });
        }
        if self
            .observed
            .vms
            .get(vm)
            .is_some_and(|v| v.operation == Some(VmOperation::BackingUp))
        {
            return Err(Wait::Backup);
        }
        if self.slots.fleet >= self.caps.max_parallel {
            return Err(Wait::Fleet {
                used: self.slots.fleet,
                cap: self.caps.max_parallel,
            });
        }
        for kind in LimitKind::of(*method) {
            for h in [from, to] {
                let (used, cap) = (self.slots.used(h, *kind), kind.cap(self.caps, h));
                if used >= cap {
                    return Err(Wait::Slot {
                        host: h.clone(),
                        kind: *kind,
                        used,
                        cap,
                    });
                }
            }
        }
        if *method == MoveKind::Live && *memory_mib > 0 {
            let total = self.observed.hosts.get(to).map_or(0, |h| h.memory_mib);
            let taken = self.used.get(to).copied().unwrap_or(0)
                + self.reserved.get(to).copied().unwrap_or(0);
            if taken + memory_mib > total {
                return Err(Wait::Memory {
                    host: to.clone(),
                    need_mib: *memory_mib,
                });
            }
        }
        Ok(())
    }

    /// Counts an action that starts now.
    pub fn started(&mut self, action: &ActionKind) {
        if let ActionKind::Move {
            from,
            to,
            method,
            memory_mib,
            ..
        } = action
        {
            self.slots.take(from, to, *method);
            if *method == MoveKind::Live {
                *self.reserved.entry(to.clone()).or_default() += memory_mib;
            }
        }
    }
}

/// Memory for reasons: `8 GiB`, `1.5 GiB`.
fn gib(mib: u64) -> String {
    let g = mib as f64 / 1024.0;
    if g.fract() == 0.0 {
        format!("{g:.0} GiB")
    } else {
        format!("{g:.1} GiB")
    }
}
