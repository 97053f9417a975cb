//! Volumes, disks and storage paths: the checks of shared-nothing storage.
//!
//! Hyper-V names storage with Windows paths, compared without regard to
//! case and with `/` read as `\`. A disk lies on the host volume whose path
//! is the longest prefix of its own (ending at a `\`); a disk on no volume of
//! its host must be clearly shared (a UNC path `\\server\share\...` or a
//! Cluster Shared Volume `C:\ClusterStorage\...`), which is never copied.
//! Anything else is an error: berth would not know whether a move copies it.

use super::diag::{Diagnostic, Sink};
use super::load::DocCtx;
use super::model::{FleetDisk, FleetVolume};
use super::raw::{DiskRaw, Sp, VolumeRaw};

/// Largest size berth accepts for a disk or a volume, GiB (1 PiB).
const MAX_GIB: f64 = 1_048_576.0;

/// A path in the form used for comparisons: `\` separators, lower case,
/// no trailing separator (except a bare drive root such as `d:\`).
pub fn normalise_path(path: &str) -> String {
    let mut p = path.trim().replace('/', "\\").to_lowercase();
    while p.ends_with('\\') && p.len() > 3 && !p.ends_with(":\\") {
        p.pop();
    }
    p
}

/// Whether `path` lies at or below `folder` (Windows rules).
pub fn path_within(path: &str, folder: &str) -> bool {
    let (p, f) = (normalise_path(path), normalise_path(folder));
    if f.is_empty() {
        return false;
    }
    p == f || (p.starts_with(&f) && (f.ends_with('\\') || p[f.len()..].starts_with('\\')))
}

/// The volume (of `volumes`) that `path` lies on: the longest match.
pub fn volume_of<'a, I>(path: &str, volumes: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    volumes
        .into_iter()
        .filter(|v| path_within(path, v))
        .max_by_key(|v| normalise_path(v).len())
}

/// Whether a path is clearly on shared storage: UNC (SMB) or a Cluster
/// Shared Volume.
pub fn is_shared_path(path: &str) -> bool {
    let p = normalise_path(path);
    if p.starts_with("\\\\") {
        return true;
    }
    let b = p.as_bytes();
    b.len() > 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && b[2] == b'\\'
        && (p[3..] == *"clusterstorage" || p[3..].starts_with("clusterstorage\\"))
}

/// Whether a path is absolute in Windows terms (`D:\...` or `\\server\...`).
pub fn is_absolute_path(path: &str) -> bool {
    let p = normalise_path(path);
    let b = p.as_bytes();
    p.starts_with("\\\\")
        || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
}

/// Checks a storage path (a volume's, a disk's or `storagePath`).
pub(crate) fn check_path(ctx: &DocCtx, v: &Sp<String>, what: &str, sink: &mut Sink) -> bool {
    if let Some(c) = v.value.chars().find(|c| c.is_control()) {
        sink.error(
            ctx.at(v),
            format!("{what} contains the control character {c:?}"),
        );
        return false;
    }
    if !is_absolute_path(&v.value) {
        sink.push(
            Diagnostic::new(
                ctx.at(v),
                format!("{what} `{}` is not an absolute Windows path", v.value),
            )
            .with_help(r"write it as on the host: `D:\VMs` or `\\server\share\VMs`"),
        );
        return false;
    }
    true
}

fn gib(ctx: &DocCtx, v: &Sp<f64>, field: &str, zero_ok: bool, sink: &mut Sink) -> Option<u64> {
    let g = v.value;
    let ok = g.is_finite() && g <= MAX_GIB && (g > 0.0 || (zero_ok && g == 0.0));
    if !ok {
        let kind = if zero_ok {
            "a non-negative"
        } else {
            "a positive"
        };
        sink.error(
            ctx.at(v),
            format!("`{field}` must be {kind} number of GiB (up to 1048576), not {g}"),
        );
        return None;
    }
    Some((g * 1024.0).round() as u64)
}

/// Validates a host's volumes: absolute paths, unique, free space >= 0.
pub(crate) fn volumes(
    ctx: &DocCtx,
    host: &str,
    list: &[Sp<VolumeRaw>],
    sink: &mut Sink,
) -> Vec<FleetVolume> {
    let mut out: Vec<FleetVolume> = Vec::new();
    let mut seen: Vec<(String, super::diag::Origin)> = Vec::new();
    for v in list {
        let raw = &v.value;
        let path_ok = check_path(ctx, &raw.path, "volume path", sink);
        let free = gib(ctx, &raw.free_gib, "freeGiB", true, sink);
        if !path_ok {
            continue;
        }
        let key = normalise_path(&raw.path.value);
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            sink.push(
                Diagnostic::new(
                    ctx.at(&raw.path),
                    format!(
                        "volume `{}` is declared twice on host `{host}`",
                        raw.path.value
                    ),
                )
                .with_related("first declared here", first.clone()),
            );
            continue;
        }
        seen.push((key, ctx.at(&raw.path)));
        if let Some(free_mib) = free {
            out.push(FleetVolume {
                path: raw.path.value.clone(),
                free_mib,
            });
        }
    }
    out
}

/// Validates a VM's disks in a Fleet: positive sizes, unique paths, each on
/// a volume of `host` or on shared storage. `host` is `None` when the VM's
/// host is itself invalid (then only the disks' own fields are checked).
pub(crate) fn fleet_disks(
    ctx: &DocCtx,
    vm: &str,
    host: Option<(&str, &[FleetVolume])>,
    list: &[Sp<DiskRaw>],
    sink: &mut Sink,
) -> Vec<FleetDisk> {
    let mut out: Vec<FleetDisk> = Vec::new();
    for d in list {
        let raw = &d.value;
        let path_ok = check_path(ctx, &raw.path, "disk path", sink);
        let size = gib(ctx, &raw.size_gib, "sizeGiB", false, sink);
        if let Some(v) = &raw.volume {
            sink.push(
                Diagnostic::new(
                    ctx.at(v),
                    "a Fleet disk names no `volume`: it is worked out from its path",
                )
                .with_help("declare the volume under the host's `volumes`"),
            );
        }
        if !path_ok {
            continue;
        }
        let key = normalise_path(&raw.path.value);
        if out.iter().any(|o| normalise_path(&o.path) == key) {
            sink.error(
                ctx.at(&raw.path),
                format!("disk `{}` of VM `{vm}` is listed twice", raw.path.value),
            );
            continue;
        }
        let volume = host.and_then(|(_, vols)| {
            volume_of(&raw.path.value, vols.iter().map(|v| v.path.as_str())).map(str::to_string)
        });
        if let (None, Some((hname, vols))) = (&volume, host)
            && !is_shared_path(&raw.path.value)
        {
            let listed: Vec<&str> = vols.iter().map(|v| v.path.as_str()).collect();
            sink.push(
                Diagnostic::new(
                    ctx.at(&raw.path),
                    format!(
                        "disk `{}` of VM `{vm}` lies on no volume of host `{hname}` ({}) and is not on shared storage",
                        raw.path.value,
                        if listed.is_empty() {
                            "it declares none".to_string()
                        } else {
                            listed.join(", ")
                        }
                    ),
                )
                .with_help(
                    r"declare its volume under the host's `volumes`, or use a shared path: UNC (\\server\share\...) or a Cluster Shared Volume (C:\ClusterStorage\...)",
                ),
            );
            continue;
        }
        if let Some(size_mib) = size {
            out.push(FleetDisk {
                path: raw.path.value.clone(),
                size_mib,
                volume,
            });
        }
    }
    out
}

/// Validates the disks of a snapshot's VM status (volumes as written).
pub(crate) fn status_disks(ctx: &DocCtx, list: &[Sp<DiskRaw>], sink: &mut Sink) -> Vec<FleetDisk> {
    let mut out = Vec::new();
    for d in list {
        let raw = &d.value;
        let path_ok = check_path(ctx, &raw.path, "disk path", sink);
        let size = gib(ctx, &raw.size_gib, "sizeGiB", true, sink);
        if let (true, Some(size_mib)) = (path_ok, size) {
            out.push(FleetDisk {
                path: raw.path.value.clone(),
                size_mib,
                volume: raw.volume.as_ref().map(|v| v.value.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_by_windows_rules() {
        assert!(path_within(r"D:\VMs\web\a.vhdx", r"d:\vms"));
        assert!(path_within(r"D:/VMs/web/a.vhdx", r"D:\VMs\"));
        assert!(!path_within(r"D:\VMsOld\a.vhdx", r"D:\VMs"));
        assert!(path_within(r"D:\a.vhdx", r"D:\"));
        let vols = [r"D:\", r"D:\VMs"];
        assert_eq!(volume_of(r"D:\VMs\x.vhdx", vols), Some(r"D:\VMs"));
        assert_eq!(volume_of(r"D:\other\x.vhdx", vols), Some(r"D:\"));
        assert_eq!(volume_of(r"E:\x.vhdx", vols), None);
    }

    #[test]
    fn shared_paths_are_unc_or_csv() {
        assert!(is_shared_path(r"\\nas\vms\a.vhdx"));
        assert!(is_shared_path(r"C:\ClusterStorage\Volume1\a.vhdx"));
        assert!(!is_shared_path(r"C:\ClusterStorageX\a.vhdx"));
        assert!(!is_shared_path(r"D:\VMs\a.vhdx"));
        assert!(is_absolute_path(r"D:\VMs"));
        assert!(!is_absolute_path("VMs"));
        assert!(!is_absolute_path(""));
    }
}
