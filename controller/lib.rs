//! berth: a declarative placement controller for Microsoft Hyper-V.
//!
//! Data flows one way through the modules: [`spec`] loads and validates the
//! desired state; providers observe the fleet and run jobs; the planner diffs
//! and orders; the executor carries the plan out; the reconciler loops. The
//! [`cli`] module is the edge where arguments, exit codes and rendering live.

pub mod cli;
pub mod execute;
pub mod plan;
pub mod provider;
pub mod reconcile;
pub mod spec;
