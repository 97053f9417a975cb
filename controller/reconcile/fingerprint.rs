//! Fingerprints of a directory of documents: has anything `spec::load`
//! would read changed since the last pass?
//!
//! No longer used by the reconciler: `specs.rs` asks `SpecCache::reload`,
//! which compares each file with the last pass's text as it reads it, so
//! the files are read once a pass, not twice. Built only for its tests
//! until its `mod` line in `reconcile/mod.rs` is removed with it.
#![cfg(test)]

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

/// A cheap fingerprint of what `spec::load` would read: the names and bytes
/// of every `*.yaml`/`*.yml` below `path` (hidden entries skipped), so an
/// unchanged directory is not parsed again.
pub(super) fn fingerprint(path: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            1u8.hash(&mut h);
            walk(path, 0, &mut h);
        }
        Ok(_) => {
            2u8.hash(&mut h);
            hash_file(path, &mut h);
        }
        Err(e) => {
            3u8.hash(&mut h);
            e.kind().hash(&mut h);
        }
    }
    h.finish()
}

fn walk(dir: &Path, depth: usize, h: &mut DefaultHasher) {
    if depth > 40 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        0xffu8.hash(h);
        return;
    };
    let mut children: Vec<(String, PathBuf, std::fs::FileType)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            e.file_type().ok().map(|ft| (name, e.path(), ft))
        })
        .collect();
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, path, ft) in children {
        if ft.is_dir() {
            name.hash(h);
            b'/'.hash(h);
            walk(&path, depth + 1, h);
            b'\\'.hash(h);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            name.hash(h);
            hash_file(&path, h);
        }
    }
}

fn hash_file(path: &Path, h: &mut DefaultHasher) {
    match std::fs::read(path) {
        Ok(bytes) => bytes.hash(h),
        Err(e) => e.kind().hash(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_yaml_content_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), "x: 1\n").expect("write");
        let first = fingerprint(d);
        assert_eq!(first, fingerprint(d));
        std::fs::write(d.join("notes.txt"), "hello").expect("write");
        std::fs::create_dir_all(d.join(".berth")).expect("mkdir");
        std::fs::write(d.join(".berth/events.jsonl"), "{}").expect("write");
        assert_eq!(first, fingerprint(d), "non-documents do not count");
        std::fs::write(d.join("a.yaml"), "x: 2\n").expect("write");
        let second = fingerprint(d);
        assert_ne!(first, second);
        std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/b.yml"), "y: 1\n").expect("write");
        assert_ne!(second, fingerprint(d));
        let gone = d.join("missing");
        assert_ne!(fingerprint(&gone), fingerprint(d));
    }
}
