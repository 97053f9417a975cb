//! The spec in force: read the watched directory again when its bytes
//! change, keep the last valid spec when the new one is invalid, empty or
//! gone, and say what changed.
//!
//! Every pass reads the files once, through the [`spec::SpecCache`]: it
//! compares each file with what the last pass read, so a quiet pass parses
//! nothing (and reports an invalid spec only once), and a commit's files
//! are not read a second time to find out that they changed.

use std::sync::Arc;

use crate::spec::{self, Desired};

use super::{Notice, Reconciler};

/// The last valid spec, and what the files hold now.
#[derive(Default)]
pub(super) struct SpecState {
    /// Counts the reads that found the files changed (valid or not).
    pub(super) generation: u64,
    /// Whether the last read found the directory missing.
    pub(super) missing: bool,
    /// The last valid spec: the one in force.
    pub(super) desired: Option<Arc<Desired>>,
    /// Why the files on disk are not in force, while they are not.
    pub(super) error: Option<String>,
    /// Parsed documents of the last read: only changed files are parsed.
    pub(super) cache: spec::SpecCache,
}

/// What reading the files again found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpecChange {
    /// Nothing that changes the desired state.
    Same,
    /// A new valid desired state.
    Changed,
    /// An invalid one; the last valid stays in force.
    Invalid,
}

impl Reconciler {
    /// Reads the files again; keeps the last valid spec in force when they
    /// are invalid, empty or gone.
    pub(super) fn reload_spec(&mut self) -> SpecChange {
        let generation = self.spec.generation;
        let change = self.read_spec();
        if self.spec.generation != generation
            && let Some(f) = &self.notices
        {
            f(&Notice::Spec {
                valid: change != SpecChange::Invalid,
                changed: change == SpecChange::Changed,
            });
        }
        change
    }

    fn read_spec(&mut self) -> SpecChange {
        let dir = &self.settings.dir;
        let t = std::time::Instant::now();
        let missing =
            std::fs::metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        let loaded = if missing {
            // Said once; a directory that comes back is read in full.
            self.spec.cache.forget_last_read();
            (!self.spec.missing)
                .then(|| Err(format!("the directory {} does not exist", dir.display())))
        } else {
            self.spec
                .cache
                .reload(std::slice::from_ref(dir))
                .map(|r| r.map_err(|e| e.to_string().trim_end().to_string()))
        };
        self.spec.missing = missing;
        let Some(loaded) = loaded else {
            return if self.spec.error.is_some() {
                SpecChange::Invalid
            } else {
                SpecChange::Same
            };
        };
        self.spec.generation += 1;
        let loaded = loaded.and_then(|d| {
                if d.placement_documents == 0 {
                    Err(format!(
                        "{} holds no Placement document; an empty desired state would unmanage every VM",
                        dir.display()
                    ))
                } else {
                    Ok(d)
                }
            });
        let loading = t.elapsed();
        tracing::debug!(
            "read the spec: load and validate {:.1} ms ({} of {} files parsed again{})",
            loading.as_secs_f64() * 1000.0,
            self.spec.cache.parsed(),
            self.spec.cache.len(),
            if self.spec.cache.patched() {
                ", the last spec patched"
            } else {
                ""
            }
        );
        match loaded {
            Ok(desired) => {
                if self.spec.error.take().is_some() {
                    tracing::info!("the spec in {} is valid again", dir.display());
                    self.metrics.set_spec_error(false);
                }
                if let Some(old) = &self.spec.desired {
                    if same_spec(old, &desired) {
                        return SpecChange::Same;
                    }
                    log_spec_change(old, &desired);
                } else {
                    tracing::info!(
                        "loaded the spec from {}: {} hosts, {} VMs",
                        dir.display(),
                        desired.hosts.len(),
                        desired.vms.len()
                    );
                }
                self.spec.desired = Some(desired);
                SpecChange::Changed
            }
            Err(message) => {
                if self.spec.desired.is_some() {
                    tracing::error!(
                        "the spec in {} is invalid; the last valid spec stays in force: {message}",
                        dir.display()
                    );
                } else {
                    tracing::error!(
                        "the spec in {} is invalid; nothing is managed until it is valid: {message}",
                        dir.display()
                    );
                }
                self.metrics.spec_error_seen();
                self.metrics.set_spec_error(true);
                self.spec.error = Some(message);
                SpecChange::Invalid
            }
        }
    }
}

/// Whether two valid specs want the same thing (positions do not count).
fn same_spec(a: &Desired, b: &Desired) -> bool {
    a.policy == b.policy && a.hosts == b.hosts && a.vms == b.vms && a.controller == b.controller
}

fn log_spec_change(old: &Desired, new: &Desired) {
    let mut gone: Vec<&str> = Vec::new();
    crate::spec::changes::zip_maps(&old.vms, &new.vms, |k, _, now| {
        if now.is_none() {
            gone.push(k);
        }
    });
    tracing::info!(
        "the spec changed: {}",
        crate::spec::SpecChanges::between(old, new)
    );
    if !gone.is_empty() {
        let mut names = gone.iter().take(10).copied().collect::<Vec<_>>().join(", ");
        if gone.len() > 10 {
            names.push_str(", ...");
        }
        tracing::warn!(
            "{} VM{} no longer declared and now unmanaged (not moved back, not deleted): {names}",
            gone.len(),
            if gone.len() == 1 { " is" } else { "s are" }
        );
    }
    if old.controller.as_ref().map(|c| &c.provider) != new.controller.as_ref().map(|c| &c.provider)
    {
        tracing::warn!(
            "the Controller's provider changed; berth watch keeps the provider it started with until it is restarted"
        );
    }
    if old.policy.suspend != new.policy.suspend {
        tracing::info!(
            "policy.suspend is now {}",
            if new.policy.suspend {
                "on: observing and reporting only"
            } else {
                "off: acting again"
            }
        );
    }
}
