//! What a PowerShell call's failure is, and what berth does about it.
//!
//! An `ErrorRecord` from the host ([`RemoteError`]) or a failure of the
//! session itself ([`PsError`]) is sorted into an [`ErrorClass`]: retried,
//! waited out, or final. The sorting follows the table in
//! `docs/backends.md`, which rests on Microsoft's documented error ids of
//! the Hyper-V and VMM cmdlets; it lives apart from the transport so the
//! table can be read (and tested) on its own.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::super::{ErrorClass, ProviderError, WaitReason};

/// An error PowerShell reported (an `ErrorRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteError {
    /// `CategoryInfo.Category` (`ObjectNotFound`, `InvalidArgument`, ...).
    pub category: String,
    /// The exception's message.
    pub message: String,
    /// `FullyQualifiedErrorId` (`InvalidParameter,Microsoft.HyperV.PowerShell.Commands.MoveVM`).
    pub fully_qualified_error_id: String,
    /// The exception's .NET type.
    pub exception_type: String,
    /// `CategoryInfo.Reason`.
    pub reason: String,
    /// `CategoryInfo.TargetName`.
    pub target_name: String,
}

impl RemoteError {
    /// The class of this error (see [`classify`]).
    pub fn class(&self) -> ErrorClass {
        classify(self)
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.trim();
        f.write_str(if message.is_empty() {
            "PowerShell reported an error without a message"
        } else {
            message
        })?;
        if !self.fully_qualified_error_id.is_empty() {
            write!(f, " ({})", self.fully_qualified_error_id)?;
        }
        Ok(())
    }
}

/// Why a PowerShell call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PsError {
    /// The process could not be started.
    #[error(
        "cannot start PowerShell `{program}`: {message} (set `shell` in the Controller document to the PowerShell executable)"
    )]
    Spawn {
        /// The executable.
        program: String,
        /// The operating system's reason.
        message: String,
    },
    /// No complete reply within the call's time limit; the process was killed.
    #[error(
        "PowerShell did not answer `{script}` within {seconds}s; the session was stopped and will be restarted"
    )]
    Timeout {
        /// The script.
        script: String,
        /// The limit, seconds.
        seconds: f64,
    },
    /// The process ended before answering.
    #[error("PowerShell exited during `{script}` ({status}){}{}", if *partial { " in the middle of its answer, which was discarded" } else { "" }, stderr_suffix(stderr))]
    Exited {
        /// The script.
        script: String,
        /// How it ended.
        status: String,
        /// Whether part of a reply line had arrived.
        partial: bool,
        /// The last lines it wrote to standard error.
        stderr: String,
    },
    /// The process broke the protocol; it was killed.
    #[error(
        "PowerShell broke berth's protocol during `{script}`: {detail}; the session was stopped"
    )]
    Protocol {
        /// The script.
        script: String,
        /// What was wrong.
        detail: String,
    },
    /// The script ran and reported an error.
    #[error("`{script}` failed{}: {error}", target.as_deref().map(|t| format!(" on {t}")).unwrap_or_default())]
    Remote {
        /// The script.
        script: String,
        /// The host it ran against, if any.
        target: Option<String>,
        /// PowerShell's error record.
        error: RemoteError,
    },
    /// berth asked for a script it did not load (a bug in berth).
    #[error("berth has no PowerShell script named `{0}`")]
    UnknownScript(String),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; its error output ends with: {}", stderr.trim())
    }
}

impl PsError {
    /// What the executor should do about it: transport failures are
    /// `Unreachable`; errors PowerShell reported are classified by
    /// [`classify`].
    pub fn class(&self) -> ErrorClass {
        match self {
            PsError::Remote { error, .. } => classify(error),
            PsError::UnknownScript(_) => ErrorClass::Permanent,
            PsError::Spawn { .. }
            | PsError::Timeout { .. }
            | PsError::Exited { .. }
            | PsError::Protocol { .. } => ErrorClass::Unreachable,
        }
    }

    /// The error record, when PowerShell reported one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            PsError::Remote { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<PsError> for ProviderError {
    fn from(e: PsError) -> Self {
        ProviderError::new(e.class(), e.to_string())
    }
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// Maps a PowerShell error record onto an [`ErrorClass`].
///
/// Rules, first match wins (text comparisons ignore case):
/// 1. a backup is running (`backup`, `backed up`, `backing up`,
///    `BackingUpVirtualMachine`, Volume Shadow Copy) →
///    `Wait(BackupInProgress)`;
/// 2. the host or VMM cannot be reached (categories `ConnectionError`,
///    `OpenError`; remoting and WinRM failures; VMM errors 2916, 2927) →
///    `Unreachable`;
/// 3. the VM or host is busy (category `ResourceBusy`; a migration already
///    running, the simultaneous-migration limit, an operation in progress,
///    the object's current state; VMM error 1730) → `Wait(HostBusy)`;
/// 4. asking again cannot help (categories `ObjectNotFound`,
///    `InvalidArgument`, `InvalidType`, `PermissionDenied`, `SecurityError`,
///    `NotImplemented`, `NotInstalled`; a missing cmdlet or module;
///    incompatible processor, a missing virtual switch, not enough memory,
///    failed authentication, access denied; VMM error 801) → `Permanent`;
/// 5. anything else → `Retryable`.
pub fn classify(e: &RemoteError) -> ErrorClass {
    let category = e.category.to_ascii_lowercase();
    let fqid = e.fully_qualified_error_id.to_ascii_lowercase();
    let message = e.message.to_ascii_lowercase();
    let exception = e.exception_type.to_ascii_lowercase();
    let all = format!("{fqid} {message} {exception}");
    let code: Option<u32> = fqid.split(',').next().and_then(|c| c.trim().parse().ok());

    if contains_any(
        &all,
        &[
            "backup",
            "backed up",
            "backing up",
            "backingupvirtualmachine",
            "volume shadow copy",
        ],
    ) {
        return ErrorClass::Wait(WaitReason::BackupInProgress);
    }
    if matches!(category.as_str(), "connectionerror" | "openerror")
        || matches!(code, Some(2916 | 2927))
        || contains_any(
            &all,
            &[
                "psremotingtransportexception",
                "pssessionopenfailed",
                "pssessionstatebroken",
                "winrmoperationtimeout",
                "cannotconnect",
                "winrm cannot",
                "ws-management service cannot",
                "rpc server is unavailable",
                "no such host is known",
                "network path was not found",
                "cannot connect to",
                "could not connect to",
                "unable to connect",
                "connection to the remote server",
                "is not responding",
                "host is unreachable",
            ],
        )
    {
        return ErrorClass::Unreachable;
    }
    if category == "resourcebusy"
        || code == Some(1730)
        || contains_any(
            &all,
            &[
                "already in progress",
                "migration is in progress",
                "is being migrated",
                "already being migrated",
                "undergoing migration",
                "maximum number of",
                "simultaneous",
                "operation is in progress",
                "another operation",
                "in its current state",
                "not in a state",
                "invalid state",
                "is busy",
            ],
        )
    {
        return ErrorClass::Wait(WaitReason::HostBusy);
    }
    if matches!(
        category.as_str(),
        "objectnotfound"
            | "invalidargument"
            | "invalidtype"
            | "permissiondenied"
            | "securityerror"
            | "notimplemented"
            | "notinstalled"
            | "parsererror"
    ) || code == Some(801)
        || contains_any(
            &all,
            &[
                "commandnotfoundexception",
                "modulenotfound",
                "processor",
                "incompatib",
                "not compatible",
                "virtual switch",
                "ethernet switch",
                "not enough memory",
                "insufficient memory",
                "insufficient system resources",
                "failed to authenticate",
                "access is denied",
                "access denied",
                "unauthorizedaccess",
                "could not find",
                "cannot find",
                "does not exist",
                "not found",
            ],
        )
    {
        return ErrorClass::Permanent;
    }
    ErrorClass::Retryable
}
