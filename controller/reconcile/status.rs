//! The status file of `berth watch`: what each VM's condition is, now.
//!
//! The model follows the contract (`formatVersion` 1, `updatedAt` in RFC 3339
//! UTC, `specError`, and a condition per VM) and adds two fields the
//! contract allows: `providerError` and `suspended`. The file is replaced
//! atomically: written to a temporary file beside it, then renamed over it,
//! so a reader sees either the old or the new version, never half of one.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::plan::{ActionKind, Plan};
use crate::provider::Observed;
use crate::spec::{Desired, VmOperation};

/// A VM's condition, as the contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Condition {
    /// Where it belongs, adapters as declared.
    InSync,
    /// Planned, not started.
    Pending,
    /// A migration is running.
    Moving,
    /// Waiting for a backup to end or a migration slot to free.
    Waiting,
    /// berth cannot bring it to its desired state; `reason` says why.
    Blocked,
    /// Observed but declared in no Placement.
    Unmanaged,
}

impl Condition {
    /// Every condition, in a fixed order (metrics labels).
    pub const ALL: [Condition; 6] = [
        Condition::InSync,
        Condition::Pending,
        Condition::Moving,
        Condition::Waiting,
        Condition::Blocked,
        Condition::Unmanaged,
    ];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::InSync => "InSync",
            Condition::Pending => "Pending",
            Condition::Moving => "Moving",
            Condition::Waiting => "Waiting",
            Condition::Blocked => "Blocked",
            Condition::Unmanaged => "Unmanaged",
        }
    }
}

/// One VM in the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmStatus {
    /// Its condition.
    pub condition: Condition,
    /// The host it is on (the source while it moves); `null` when it was not observed.
    pub host: Option<String>,
    /// Why it is not in sync, for people.
    pub reason: Option<String>,
}

/// The whole status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always 1.
    pub format_version: u32,
    /// When this version was written, RFC 3339 UTC.
    pub updated_at: String,
    /// The latest invalid-spec message while the last valid spec stays in force.
    pub spec_error: Option<String>,
    /// The latest failure to reach the provider, while it lasts.
    #[serde(default)]
    pub provider_error: Option<String>,
    /// `policy.suspend` is in force: berth reports and changes nothing.
    #[serde(default)]
    pub suspended: bool,
    /// Each VM by name. Shared: the loop keeps the conditions it computed
    /// and the status file shows them without copying 100,000 entries.
    pub vms: Arc<BTreeMap<String, VmStatus>>,
    /// Hosts, moves in flight, last pass: optional additions for the fleet page.
    #[serde(flatten)]
    pub fleet: super::fleet_view::FleetView,
    /// The git commit of the spec in force, when the watched directory is
    /// in a git work tree.
    #[serde(default)]
    pub revision: Option<String>,
    /// The latest git commit seen, valid or not.
    #[serde(default)]
    pub attempted_revision: Option<String>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            format_version: 1,
            updated_at: rfc3339(SystemTime::now()),
            spec_error: None,
            provider_error: None,
            suspended: false,
            vms: Arc::default(),
            fleet: Default::default(),
            revision: None,
            attempted_revision: None,
        }
    }
}

impl Status {
    /// How many VMs are in each condition, in [`Condition::ALL`] order.
    pub fn counts(&self) -> [u64; 6] {
        let mut counts = [0u64; 6];
        for vm in self.vms.values() {
            counts[vm.condition as usize] += 1;
        }
        counts
    }
}

/// The conditions a fresh observation and its plan imply.
///
/// `suspended` marks planned work as not going to happen while
/// `policy.suspend` is on.
pub fn conditions(
    desired: &Desired,
    observed: &Observed,
    plan: &Plan,
    suspended: bool,
) -> BTreeMap<String, VmStatus> {
    let mut vms: BTreeMap<String, VmStatus> = observed
        .vms
        .values()
        .map(|vm| {
            let managed = desired.vms.contains_key(&vm.name);
            (
                vm.name.clone(),
                VmStatus {
                    condition: if managed {
                        Condition::InSync
                    } else {
                        Condition::Unmanaged
                    },
                    host: Some(vm.host.clone()),
                    reason: None,
                },
            )
        })
        .collect();
    for action in &plan.actions {
        let name = action.kind.vm();
        let entry = vms.entry(name.to_string()).or_insert_with(|| VmStatus {
            condition: Condition::Pending,
            host: None,
            reason: None,
        });
        if entry.condition == Condition::Pending && entry.reason.is_some() {
            continue; // the first action says it best (a move before its ACLs)
        }
        let what = describe(&action.kind);
        entry.condition = Condition::Pending;
        entry.reason = Some(if suspended {
            format!("suspended: would {what}")
        } else {
            what
        });
        if !suspended
            && action.kind.is_move()
            && observed
                .vms
                .get(name)
                .is_some_and(|v| v.operation == Some(VmOperation::BackingUp))
        {
            entry.condition = Condition::Waiting;
            entry.reason = Some(format!("being backed up; then {}", describe(&action.kind)));
        }
    }
    for b in &plan.blocked {
        let entry = vms.entry(b.vm.clone()).or_insert_with(|| VmStatus {
            condition: Condition::Blocked,
            host: None,
            reason: None,
        });
        entry.condition = Condition::Blocked;
        entry.reason = Some(b.reason.clone());
    }
    for f in &plan.in_flight {
        if let Some(entry) = vms.get_mut(&f.vm) {
            entry.condition = Condition::Moving;
            entry.reason = Some(format!("moving to {}", f.to));
        }
    }
    vms
}

/// A short description of a planned action ("move to hv01 (placement)").
pub fn describe(kind: &ActionKind) -> String {
    match kind {
        ActionKind::Move { to, reason, .. } => format!("move to {to} ({reason})"),
        ActionKind::SetAcls {
            adapter,
            add,
            remove,
            reason,
            ..
        } => format!(
            "correct the ACLs of {adapter}: {} to add, {} to remove ({reason})",
            add.len(),
            remove.len()
        ),
        ActionKind::Connect {
            adapter,
            switch,
            reason,
            ..
        } => format!("connect {adapter} to {switch} ({reason})"),
        ActionKind::SetVlan {
            adapter,
            vlan_id,
            reason,
            ..
        } => format!("set the VLAN of {adapter} to {vlan_id} ({reason})"),
    }
}

/// The file's bytes: pretty JSON and a final newline.
pub fn to_bytes(status: &Status) -> Vec<u8> {
    // Plain data always serialises.
    let mut text = serde_json::to_vec_pretty(status).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Replaces `path` with `status` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, status: &Status) -> io::Result<()> {
    write_bytes_atomic(path, &to_bytes(status))
}

/// Replaces `path` with `bytes` atomically: a reader sees the old file or
/// the new one, never a mix.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `dir/.name.tmp`: beside the target, so the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "status".to_string());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Formats a time as RFC 3339 in UTC with whole seconds (`2026-11-22T10:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        // Before 1970: round down to the whole second.
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_795_341_600), "2026-11-22T10:00:00Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn the_file_has_the_contract_shape() {
        let mut status = Status {
            updated_at: "2026-11-22T10:00:00Z".into(),
            ..Status::default()
        };
        Arc::make_mut(&mut status.vms).insert(
            "web-01".into(),
            VmStatus {
                condition: Condition::InSync,
                host: Some("hv01".into()),
                reason: None,
            },
        );
        let v = serde_json::to_value(&status).expect("serialise");
        assert_eq!(
            v,
            serde_json::json!({
                "formatVersion": 1, "updatedAt": "2026-11-22T10:00:00Z", "specError": null,
                "providerError": null, "suspended": false,
                "vms": {"web-01": {"condition": "InSync", "host": "hv01", "reason": null}},
                "revision": null, "attemptedRevision": null
            })
        );
    }

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        std::fs::write(&path, "old").expect("write");
        let status = Status::default();
        write_atomic(&path, &status).expect("write status");
        let back: Status =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
        assert_eq!(back, status);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status.json")]);
    }
}
