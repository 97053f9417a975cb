//! Desired state: loading, validating and describing berth's documents.
//!
//! This is the only module that reads YAML. It turns files into a validated
//! [`Desired`] model, reporting every problem with its file, line and column,
//! and it owns the JSON Schemas of the three document kinds. Everything
//! downstream (providers, planner, executor) consumes the typed model only.

mod cache;
#[cfg(test)]
mod cache_tests;
pub(crate) mod changes;
mod diag;
mod duration;
mod escape;
mod fast;
#[cfg(test)]
mod fast_agree;
mod fold;
mod intent;
mod load;
pub mod model;
pub mod raw;
mod split;
mod storage;
mod structure;
mod validate;
pub mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use cache::SpecCache;
pub use changes::{Counts, SpecChanges};
pub use diag::{Diagnostic, Loc, Origin, Related, SourceFile, SpecError};
pub use duration::{format_duration, human_seconds, parse_duration};
pub use escape::{escape_controls, escape_controls_keep_lines, is_unsafe_char};
pub(crate) use escape::{escape_snippet, map_offset};
pub use load::{API_VERSION, KINDS, MAX_FILE_BYTES, MAX_TOTAL_BYTES};
pub use model::*;
pub use storage::{is_shared_path, normalise_path, path_within, volume_of};
pub use validate::{DEFAULT_START_TIME, check_name, parse_address, parse_port, parse_protocol};
pub use window::{WindowState, window_state};

use diag::Sink;

/// Loads and validates every document found under `paths`.
///
/// A directory means every `*.yaml` / `*.yml` file below it (hidden entries
/// skipped) in sorted order. All problems are reported together.
pub fn load(paths: &[PathBuf]) -> Result<Desired, SpecError> {
    load_notify(paths, &mut |_| {})
}

/// [`load`], calling `on_controller` as soon as the first Controller
/// document is read, before the other files are, so a command can start
/// opening its provider while the rest of the spec loads. The Controller
/// is not final: the load may still fail (a later document may be a second
/// Controller), so what is started must change nothing and be dropped when
/// the load fails or the final Controller differs.
pub fn load_notify(
    paths: &[PathBuf],
    on_controller: &mut dyn FnMut(&ControllerSpec),
) -> Result<Desired, SpecError> {
    // Without a prior load there is no last result to stand.
    // Nothing else holds the result: it is taken, not copied.
    match load_with(paths, None, on_controller).0 {
        Some(result) => result.map(Arc::unwrap_or_clone),
        None => Err(SpecError {
            diagnostics: vec![Diagnostic::new(
                Origin::default(),
                "internal error: a load without a cache was skipped",
            )],
        }),
    }
}

/// [`load`], reusing the checked documents of files in `prior` whose text
/// is unchanged, and patching `prior`'s clean result when it can (see
/// `fold`). With `prior`, returns what to keep for the next load (files that
/// parsed without a problem, the result when it was clean, and what was
/// read; without it, nothing is kept) and how many files came from `prior`.
/// The result is `None` only when `prior` holds what the last load read
/// and every file read the same: that load's result stands.
pub(crate) fn load_with(
    paths: &[PathBuf],
    prior: Option<cache::Kept>,
    on_controller: &mut dyn FnMut(&ControllerSpec),
) -> (Option<Result<Arc<Desired>, SpecError>>, cache::Kept, usize) {
    let started = std::time::Instant::now();
    let mut sink = Sink::default();
    let files = load::discover(paths, &mut sink);
    let keep = prior.is_some();
    let cache::Kept {
        files: mut prior,
        merged,
        last,
        ..
    } = prior.unwrap_or_default();
    let slots: Vec<Mutex<Option<cache::Cached>>> =
        files.iter().map(|p| Mutex::new(prior.remove(p))).collect();
    drop(prior);
    let hits = AtomicUsize::new(0);
    let mut fold = fold::Fold::new(keep, sink, merged, last, &files);
    // Files are read, parsed and checked on their own on every core; the
    // parts are folded in file order as they arrive, so every message comes
    // out in a stable order. With `prior`, a file whose text is unchanged
    // is neither parsed nor checked again: its parts are taken from it.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    // The byte budget is shared: each thread counts under its lock.
    let total_bytes = Mutex::new(0u64);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let tx = tx.clone();
            let (files, next, total_bytes, slots, hits) =
                (&files, &next, &total_bytes, &slots, &hits);
            scope.spawn(move || {
                // Each thread reads into one buffer: an unchanged file's
                // bytes are compared with its kept text and dropped, so
                // a quiet pass makes no new text of them.
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(path) = files.get(i) else { break };
                    let mut file_sink = Sink::default();
                    let cached = slots
                        .get(i)
                        .and_then(|s| s.lock().ok().and_then(|mut s| s.take()));
                    let read = if load::read_bytes(path, total_bytes, &mut file_sink, &mut buf) {
                        match cached.map(|c| c.reuse(&buf, i)) {
                            Some(Ok((file, parts))) => {
                                hits.fetch_add(1, Ordering::Relaxed);
                                Some(fold::Read {
                                    file,
                                    parts,
                                    from: fold::From::Cache,
                                })
                            }
                            old => {
                                let bytes = std::mem::take(&mut buf);
                                load::source_file(path, i, bytes, &mut file_sink).map(|f| {
                                    let docs = load::parse_file(&f, &mut file_sink);
                                    fold::Read {
                                        file: f,
                                        parts: docs.iter().map(validate::convert).collect(),
                                        from: fold::From::Parsed(old.and_then(Result::err)),
                                    }
                                })
                            }
                        }
                    } else {
                        None
                    };
                    let arrived = fold::Arrived {
                        sink: file_sink,
                        read,
                    };
                    if tx.send((i, arrived)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = std::collections::BTreeMap::new();
        let mut want = 0usize;
        for (i, arrived) in rx {
            pending.insert(i, arrived);
            while let Some(arrived) = pending.remove(&want) {
                if let Some(path) = files.get(want) {
                    fold.add(want, path, arrived, on_controller);
                }
                want += 1;
            }
        }
    });
    let read = started.elapsed();
    let done = fold.finish(paths, &files, on_controller);
    tracing::debug!(
        "loaded {} files: read, parsed and merged in {:.1} ms (merging {:.1} ms), settled in {:.1} ms; {}",
        files.len(),
        read.as_secs_f64() * 1000.0,
        done.merging.as_secs_f64() * 1000.0,
        (started.elapsed() - read).as_secs_f64() * 1000.0,
        if done.result.is_none() {
            "nothing changed".to_string()
        } else if done.patched {
            format!("{} changed files patched into the last result", done.folded)
        } else {
            format!("{} files merged", done.folded)
        }
    );
    let kept = cache::Kept {
        files: if keep { done.kept } else { HashMap::new() },
        merged: done.merged.filter(|_| keep),
        last: done.last.filter(|_| keep),
        patched: done.patched,
    };
    (done.result, kept, hits.into_inner())
}

/// Loads the one Fleet document of a simulator world file.
pub fn load_fleet(path: &Path) -> Result<FleetSpec, SpecError> {
    let desired = load(&[path.to_path_buf()])?;
    let mut fleets = desired.fleets;
    match fleets.len() {
        1 => Ok(fleets.remove(0)),
        n => Err(SpecError {
            diagnostics: vec![Diagnostic::new(
                Origin::default(),
                format!(
                    "{} holds {n} Fleet documents; a simulator world is exactly one",
                    path.display()
                ),
            )],
        }),
    }
}

/// The JSON Schema of each document kind, by file name.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn one<T: schemars::JsonSchema>(kind: &str) -> serde_json::Value {
        let settings = schemars::generate::SchemaSettings::draft2020_12();
        let schema = settings.into_generator().into_root_schema_for::<T>();
        let mut value = serde_json::to_value(schema).unwrap_or_default();
        if let Some(props) = value
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        {
            props.insert(
                "apiVersion".into(),
                serde_json::json!({ "const": API_VERSION, "description": "Always `berth/v1`." }),
            );
            props.insert(
                "kind".into(),
                serde_json::json!({ "const": kind, "description": format!("Always `{kind}`.") }),
            );
        }
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "$id".into(),
                serde_json::json!(format!(
                    "https://berth.dev/schemas/{}.json",
                    kind.to_lowercase()
                )),
            );
        }
        value
    }
    vec![
        ("placement.json", one::<raw::PlacementDocument>("Placement")),
        (
            "controller.json",
            one::<raw::ControllerDocument>("Controller"),
        ),
        ("fleet.json", one::<raw::FleetDocument>("Fleet")),
    ]
}
