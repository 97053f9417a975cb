//! Where a Hyper-V VM's disks lie: the host's volumes and the disks on them.
//!
//! A disk on a host volume travels with its VM in a shared-nothing move; a
//! disk on shared storage never does. Shared storage is recognised by its
//! path, the way Windows names it: a cluster shared volume is mounted under
//! `C:\ClusterStorage\` on every node, an SMB 3 share is a UNC path
//! (`\\server\share\...`). Everything else lies on a local volume, found by
//! the longest mount point (`Win32_Volume.Name`) its path starts with.

use super::super::json::mib_ceil;
use super::super::{ObservedDisk, ObservedVolume};
use super::{DiskJson, PathsJson, VolumeJson};

/// Whether a path lies on storage every host (or every node) reaches: a UNC
/// path, or a cluster shared volume under `<drive>:\ClusterStorage\`.
pub fn is_shared_path(path: &str) -> bool {
    let p = path.trim();
    if p.starts_with("\\\\") || p.starts_with("//") {
        // `\\?\C:\...` is a local path in long form; `\\?\UNC\...` is SMB.
        if let Some(rest) = p.get(4..)
            && (p.starts_with("\\\\?\\") || p.starts_with("\\\\.\\"))
        {
            return rest.to_ascii_lowercase().starts_with("unc\\") || is_shared_path(rest);
        }
        return true;
    }
    let lower = p.to_ascii_lowercase().replace('/', "\\");
    lower.len() > 2 && lower.as_bytes()[1] == b':' && lower[2..].starts_with("\\clusterstorage\\")
}

/// Case-insensitive, separator-agnostic form used for prefix matching,
/// always ending in one backslash.
fn folder_key(path: &str) -> String {
    let mut k = path.trim().replace('/', "\\").to_ascii_lowercase();
    if !k.ends_with('\\') {
        k.push('\\');
    }
    k
}

/// A path as the host names it, without a trailing backslash unless it is a
/// drive root (`D:\`).
fn tidy(path: &str) -> String {
    let t = path.trim();
    let trimmed = t.trim_end_matches(['\\', '/']);
    if trimmed.ends_with(':') || trimmed.is_empty() {
        format!("{trimmed}\\")
    } else {
        trimmed.to_string()
    }
}

/// The index of the local volume `path` lies on: the longest mount point
/// it starts with.
fn volume_of(volumes: &[(String, &VolumeJson)], path: &str) -> Option<usize> {
    let key = folder_key(path);
    volumes
        .iter()
        .enumerate()
        .filter(|(_, (mount, _))| key.starts_with(mount.as_str()))
        .max_by_key(|(_, (mount, _))| mount.len())
        .map(|(i, _)| i)
}

/// The host's volumes as berth reports them, and a function naming the
/// volume of any path.
pub struct Volumes {
    /// The volumes berth reports: those under the host's VM folders and
    /// those holding a VM's disk.
    pub observed: Vec<ObservedVolume>,
    mounts: Vec<String>,
    labels: Vec<String>,
}

impl Volumes {
    /// Builds the host's volumes from `Win32_Volume` and `Get-VMHost`'s
    /// folders. A volume under a VM folder is named by that folder (the
    /// virtual hard disk folder first), so that a destination path built
    /// from it lands where Hyper-V keeps VM files; any other volume by its
    /// mount point.
    pub fn new(volumes: &[VolumeJson], paths: &[PathsJson], disks: &[DiskJson]) -> Volumes {
        let local: Vec<(String, &VolumeJson)> = volumes
            .iter()
            .filter_map(|v| {
                let name = v.name.as_deref()?.trim();
                if name.is_empty() || name.starts_with("\\\\") || is_shared_path(name) {
                    return None;
                }
                Some((folder_key(name), v))
            })
            .collect();
        let folders: Vec<&str> = paths
            .iter()
            .flat_map(|p| {
                [
                    p.virtual_hard_disk_path.as_deref(),
                    p.virtual_machine_path.as_deref(),
                ]
            })
            .flatten()
            .filter(|p| !p.trim().is_empty() && !is_shared_path(p))
            .collect();
        let mut labels: Vec<Option<String>> = vec![None; local.len()];
        let mut keep = vec![false; local.len()];
        for folder in &folders {
            if let Some(i) = volume_of(&local, folder) {
                keep[i] = true;
                if labels[i].is_none() {
                    labels[i] = Some(tidy(folder));
                }
            }
        }
        for d in disks {
            if let Some(path) = d.path.as_deref().filter(|p| !is_shared_path(p))
                && let Some(i) = volume_of(&local, path)
            {
                keep[i] = true;
            }
        }
        let labels: Vec<String> = labels
            .into_iter()
            .zip(&local)
            .map(|(l, (_, v))| l.unwrap_or_else(|| tidy(v.name.as_deref().unwrap_or_default())))
            .collect();
        let observed = local
            .iter()
            .zip(&labels)
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(((_, v), label), _)| ObservedVolume {
                path: label.clone(),
                free_mib: v.free_space.map_or(0, super::super::json::mib),
            })
            .collect();
        Volumes {
            observed,
            mounts: local.into_iter().map(|(m, _)| m).collect(),
            labels,
        }
    }

    /// The volume (as reported in [`Volumes::observed`]) a file lies on;
    /// `None` for shared storage. A local path on no known volume is named
    /// by its drive root, so that it still counts as local.
    pub fn of(&self, path: &str) -> Option<String> {
        if path.trim().is_empty() || is_shared_path(path) {
            return None;
        }
        let key = folder_key(path);
        let found = self
            .mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| key.starts_with(m.as_str()))
            .max_by_key(|(_, m)| m.len())
            .map(|(i, _)| self.labels[i].clone());
        found.or_else(|| {
            let t = path.trim();
            (t.len() >= 2 && t.as_bytes()[1] == b':').then(|| format!("{}\\", &t[..2]))
        })
    }
}

/// The folder a VM's files go to under `base`: `<base>\<vm name>`.
pub fn vm_folder(base: &str, vm: &str) -> String {
    let b = base.trim().trim_end_matches(['\\', '/']);
    format!("{b}\\{vm}")
}

/// The space a disk takes on its volume, MiB: a fixed disk's `Size`, any
/// other disk's `FileSize` (a dynamic or differencing disk's file), else
/// whichever is known.
pub fn disk_mib(d: &DiskJson) -> u64 {
    let fixed = d.vhd_type.as_ref().is_some_and(|t| t.is(2, "Fixed"));
    let bytes = if fixed {
        d.size.or(d.file_size)
    } else {
        d.file_size.or(d.size)
    };
    bytes.map_or(0, mib_ceil)
}

/// One disk mapped onto the model, or `None` for a pass-through disk (no
/// file).
pub fn observed_disk(d: &DiskJson, volumes: &Volumes) -> Option<ObservedDisk> {
    let path = d.path.as_deref().map(str::trim).filter(|p| !p.is_empty())?;
    Some(ObservedDisk {
        path: path.to_string(),
        size_mib: disk_mib(d),
        volume: volumes.of(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_paths() {
        assert!(is_shared_path(r"C:\ClusterStorage\Volume1\web\web.vhdx"));
        assert!(is_shared_path(r"c:\clusterstorage\vol2\x.vhdx"));
        assert!(is_shared_path(r"\\fs01\vms\web.vhdx"));
        assert!(is_shared_path(r"\\?\UNC\fs01\vms\web.vhdx"));
        assert!(!is_shared_path(r"\\?\D:\VMs\web.vhdx"));
        assert!(!is_shared_path(r"D:\VMs\web.vhdx"));
        assert!(!is_shared_path(r"D:\ClusterStorageX\web.vhdx"));
    }

    #[test]
    fn each_vm_has_a_folder_of_its_own() {
        assert_eq!(vm_folder(r"D:\VMs", "web-01"), r"D:\VMs\web-01");
        assert_eq!(vm_folder(r"D:\VMs\", "web-01"), r"D:\VMs\web-01");
        assert_eq!(vm_folder(r"D:\", "web-01"), r"D:\web-01");
    }

    #[test]
    fn paths_are_tidied() {
        assert_eq!(tidy(r"D:\VMs\"), r"D:\VMs");
        assert_eq!(tidy(r"D:\"), r"D:\");
        assert_eq!(tidy("D:"), r"D:\");
    }
}
