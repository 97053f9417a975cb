//! Choosing and opening a provider, and the runtime it runs on.
//!
//! The simulator runs on tokio's paused clock, so simulated waits take no
//! wall-clock time in `plan` and `apply`; real backends (and `watch`) run on
//! the ordinary clock.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::provider::Provider;
use crate::provider::hyperv::HyperV;
use crate::provider::scvmm::Scvmm;
use crate::provider::sim::Sim;
use crate::spec::{Desired, ProviderSpec};

/// The backend a command runs against.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The simulator with this Fleet file.
    Sim(PathBuf),
    /// Hyper-V or SCVMM, with settings from the Controller document.
    Real(ProviderSpec),
}

/// Resolves `--provider` or the one Controller document among the paths.
pub fn choose(flag: Option<&str>, desired: Option<&Desired>) -> Result<Choice, String> {
    let from_controller = desired
        .and_then(|d| d.controller.as_ref())
        .map(|c| c.provider.clone());
    match flag {
        Some(p) => {
            if let Some(fleet) = p.strip_prefix("sim:") {
                if fleet.is_empty() {
                    return Err("`--provider sim:` needs a Fleet file, as in `sim:fleet.yaml`".into());
                }
                return Ok(Choice::Sim(PathBuf::from(fleet)));
            }
            match (p, from_controller) {
                ("hyperv", Some(spec @ ProviderSpec::HyperV(_)))
                | ("scvmm", Some(spec @ ProviderSpec::Scvmm(_))) => Ok(Choice::Real(spec)),
                ("hyperv", _) => Ok(Choice::Real(ProviderSpec::HyperV(Default::default()))),
                ("scvmm", _) => Err(
                    "`--provider scvmm` needs a Controller document with `provider.scvmm.server`"
                        .into(),
                ),
                (other, _) => Err(format!(
                    "unknown provider `{other}`: use `sim:FLEET`, `hyperv` or `scvmm`"
                )),
            }
        }
        None => match from_controller {
            Some(ProviderSpec::Sim { fleet }) => Ok(Choice::Sim(fleet)),
            Some(spec) => Ok(Choice::Real(spec)),
            None => Err(
                "no provider: pass `--provider sim:FLEET`, `--provider hyperv` or `--provider scvmm`, \
                 or include a Controller document among the paths"
                    .into(),
            ),
        },
    }
}

/// Runs a future on the runtime the backend needs.
pub fn block_on<T>(choice: &Choice, fut: impl Future<Output = T>) -> T {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if matches!(choice, Choice::Sim(_)) {
        builder.start_paused(true);
    }
    match builder.build() {
        Ok(rt) => rt.block_on(fut),
        // Building a current-thread runtime only fails when the OS refuses
        // basic resources; nothing sensible can continue.
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(i32::from(super::EXIT_ERROR));
        }
    }
}

/// Opens the provider to look only (`plan`, `observe`): the simulator is
/// read without its lock and without writing, so it works while `watch`
/// acts on the same world.
pub fn open_to_read(choice: &Choice) -> Result<Arc<dyn Provider>, String> {
    open_to_read_quietly(choice).map_err(|(problems, message)| {
        if let Some(e) = problems {
            super::render::spec_error(&e);
        }
        message
    })
}

/// [`open_to_read`] that prints nothing: an invalid Fleet file's problems
/// come back with the message, for the caller to show if it reports the
/// failure at all.
pub fn open_to_read_quietly(
    choice: &Choice,
) -> Result<Arc<dyn Provider>, (Option<crate::spec::SpecError>, String)> {
    match choice {
        Choice::Sim(fleet) | Choice::Real(ProviderSpec::Sim { fleet }) => {
            match Sim::open_to_read(fleet) {
                Ok(sim) => Ok(Arc::new(sim)),
                Err(crate::provider::sim::SimError::Spec(e)) => Err((
                    Some(e),
                    format!("the Fleet file {} is invalid", fleet.display()),
                )),
                Err(e) => Err((None, e.to_string())),
            }
        }
        other => open(other).map_err(|m| (None, m)),
    }
}

/// Opens the backend. Must run inside [`block_on`].
pub fn open(choice: &Choice) -> Result<Arc<dyn Provider>, String> {
    match choice {
        Choice::Sim(fleet) => match Sim::open(fleet) {
            Ok(sim) => Ok(Arc::new(sim)),
            Err(crate::provider::sim::SimError::Spec(e)) => {
                super::render::spec_error(&e);
                Err(format!("the Fleet file {} is invalid", fleet.display()))
            }
            Err(e) => Err(e.to_string()),
        },
        Choice::Real(ProviderSpec::HyperV(settings)) => Ok(Arc::new(HyperV::new(settings.clone()))),
        Choice::Real(ProviderSpec::Scvmm(settings)) => Ok(Arc::new(Scvmm::new(settings.clone()))),
        Choice::Real(ProviderSpec::Sim { fleet }) => open(&Choice::Sim(fleet.clone())),
    }
}
