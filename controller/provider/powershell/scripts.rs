//! The PowerShell scripts berth runs, embedded at build time.
//!
//! Each script sent to PowerShell is `scripts/common.ps1` (the parameter
//! block and shared helpers) followed by one script file. The text is a
//! compile-time constant: values reach PowerShell only as JSON arguments.

use super::Script;

macro_rules! script {
    ($name:literal) => {
        Script {
            name: $name,
            text: concat!(
                include_str!("../scripts/common.ps1"),
                include_str!(concat!("../scripts/", $name, ".ps1"))
            ),
        }
    };
}

/// Observe a Hyper-V host (or one VM on it).
pub const HV_OBSERVE: Script = script!("hv_observe");
/// Start a Hyper-V move (Move-VM -AsJob, or a cluster role move).
pub const HV_MOVE: Script = script!("hv_move");
/// Follow a Move-VM job.
pub const HV_JOB: Script = script!("hv_job");
/// Add an extended port ACL rule.
pub const HV_ADD_ACL: Script = script!("hv_add_acl");
/// Remove an extended port ACL rule.
pub const HV_REMOVE_ACL: Script = script!("hv_remove_acl");
/// Connect an adapter to a switch.
pub const HV_CONNECT: Script = script!("hv_connect");
/// Set an adapter's access VLAN.
pub const HV_SET_VLAN: Script = script!("hv_set_vlan");
/// Observe the fleet through VMM.
pub const SCVMM_OBSERVE: Script = script!("scvmm_observe");
/// Start a VMM move.
pub const SCVMM_MOVE: Script = script!("scvmm_move");
/// Follow a VMM job.
pub const SCVMM_JOB: Script = script!("scvmm_job");
/// Connect a VMM adapter to a switch and VM network.
pub const SCVMM_CONNECT: Script = script!("scvmm_connect");
/// Set a VMM adapter's VLAN.
pub const SCVMM_SET_VLAN: Script = script!("scvmm_set_vlan");

/// The scripts of the Hyper-V backend.
pub const HYPERV: &[Script] = &[
    HV_OBSERVE,
    HV_MOVE,
    HV_JOB,
    HV_ADD_ACL,
    HV_REMOVE_ACL,
    HV_CONNECT,
    HV_SET_VLAN,
];

/// The scripts of the SCVMM backend (VMM's own, and Hyper-V's for the
/// extended ACLs VMM does not manage).
pub const SCVMM: &[Script] = &[
    HV_OBSERVE,
    HV_ADD_ACL,
    HV_REMOVE_ACL,
    SCVMM_OBSERVE,
    SCVMM_MOVE,
    SCVMM_JOB,
    SCVMM_CONNECT,
    SCVMM_SET_VLAN,
];

/// Every `.ps1` source file as written in the repository (file name, text),
/// the host script included: what the syntax check parses.
pub const SOURCES: &[(&str, &str)] = &[
    ("powershell/host.ps1", super::HOST_SCRIPT),
    ("scripts/common.ps1", include_str!("../scripts/common.ps1")),
    (
        "scripts/hv_observe.ps1",
        include_str!("../scripts/hv_observe.ps1"),
    ),
    (
        "scripts/hv_move.ps1",
        include_str!("../scripts/hv_move.ps1"),
    ),
    ("scripts/hv_job.ps1", include_str!("../scripts/hv_job.ps1")),
    (
        "scripts/hv_add_acl.ps1",
        include_str!("../scripts/hv_add_acl.ps1"),
    ),
    (
        "scripts/hv_remove_acl.ps1",
        include_str!("../scripts/hv_remove_acl.ps1"),
    ),
    (
        "scripts/hv_connect.ps1",
        include_str!("../scripts/hv_connect.ps1"),
    ),
    (
        "scripts/hv_set_vlan.ps1",
        include_str!("../scripts/hv_set_vlan.ps1"),
    ),
    (
        "scripts/scvmm_observe.ps1",
        include_str!("../scripts/scvmm_observe.ps1"),
    ),
    (
        "scripts/scvmm_move.ps1",
        include_str!("../scripts/scvmm_move.ps1"),
    ),
    (
        "scripts/scvmm_job.ps1",
        include_str!("../scripts/scvmm_job.ps1"),
    ),
    (
        "scripts/scvmm_connect.ps1",
        include_str!("../scripts/scvmm_connect.ps1"),
    ),
    (
        "scripts/scvmm_set_vlan.ps1",
        include_str!("../scripts/scvmm_set_vlan.ps1"),
    ),
];
