//! How long `spec::load` takes on a large fleet, and how much memory it uses.
//!
//! Generates 100,000 VMs on 5,000 hosts split over 100 Placement files (each
//! VM with one adapter on a switch, a VLAN and two ACLs), then loads the
//! directory three times and reports the best and median wall time and the
//! process's peak resident memory. Targets: under 1 s and under 500 MB.
//!
//! Run with `cargo bench --bench load_spec`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::spec;

const RUNS: usize = 3;

const TARGET_SECONDS: f64 = 1.0;
const TARGET_BYTES: u64 = 500 * 1000 * 1000;

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this
    // benchmark means another one was asked for.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"load_spec".contains(f.as_str())) {
        return;
    }

    // The size can be changed for profiling: LOAD_SPEC_VMS, LOAD_SPEC_HOSTS,
    // LOAD_SPEC_FILES; LOAD_SPEC_LEAN=1 writes placement only (name and host
    // per VM), which shows the loader's cost apart from the YAML parser's
    // cost per byte of adapters and ACLs.
    let size = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let shape = Shape {
        vms: size("LOAD_SPEC_VMS", 100_000),
        hosts: size("LOAD_SPEC_HOSTS", 5_000),
        files: size("LOAD_SPEC_FILES", 100),
        lean: std::env::var_os("LOAD_SPEC_LEAN").is_some(),
    };
    let Shape {
        vms, hosts, files, ..
    } = shape;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    let bytes = generate(dir.path(), shape);
    let generated_in = started.elapsed();
    let mib = bytes as f64 / 1_048_576.0;
    println!(
        "load_spec: generated {vms} VMs / {hosts} hosts in {files} files, {mib:.1} MiB, in {:.2} s",
        generated_in.as_secs_f64()
    );

    let hwm_before = vm_hwm();
    let mut times = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        let heap_before = heap::reset_peak();
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let desired = spec::load(&[dir.path().to_path_buf()]);
        let cpu = cpu_seconds() - cpu_before;
        let took = started.elapsed();
        let desired = match desired {
            Ok(d) => d,
            Err(e) => {
                eprint!("{}", berth::cli::render::spec_error_plain(&e));
                panic!("the generated spec is invalid");
            }
        };
        assert_eq!(desired.vms.len(), vms);
        assert_eq!(desired.hosts.len(), hosts);
        let acls: usize = desired
            .vms
            .values()
            .flat_map(|v| v.adapters.iter().flatten())
            .map(|a| a.acls.as_ref().map_or(0, Vec::len))
            .sum();
        let held = heap::current().saturating_sub(heap_before);
        let peak = heap::peak().saturating_sub(heap_before);
        println!(
            "load_spec: run {run}: {:.3} s, {cpu:.2} s of CPU ({} VMs, {} hosts, {acls} normalised ACL rules; heap: peak {} MiB during load, {} MiB held by the result)",
            took.as_secs_f64(),
            desired.vms.len(),
            desired.hosts.len(),
            peak / 1_048_576,
            held / 1_048_576
        );
        drop(desired);
        times.push(took);
    }
    let hwm_after = vm_hwm();

    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    let peak = match (hwm_before, hwm_after) {
        (Some(b), Some(a)) => format!(
            "peak RSS {} MiB (+{} MiB during load)",
            a / 1_048_576,
            a.saturating_sub(b) / 1_048_576
        ),
        _ => "peak RSS n/a (no /proc/self/status)".to_string(),
    };
    println!(
        "load_spec: {vms} VMs / {hosts} hosts / {files} files ({mib:.1} MiB): best {:.2} s, median {:.2} s, {peak}",
        best.as_secs_f64(),
        median.as_secs_f64()
    );

    breakdown(dir.path(), best);

    let time_ok = median.as_secs_f64() < TARGET_SECONDS;
    let mem_ok = hwm_after.is_none_or(|b| b < TARGET_BYTES);
    println!(
        "load_spec: targets: time < {TARGET_SECONDS} s {}, memory < {} MB {}",
        if time_ok { "met" } else { "MISSED" },
        TARGET_BYTES / 1_000_000,
        if mem_ok { "met" } else { "MISSED" }
    );
}

/// Counts heap bytes, to tell the load's transient peak from what its
/// result keeps (resident set sizes include memory freed but not returned).
/// Allocates with mimalloc, as the `berth` binary does.
mod heap {
    use std::alloc::{GlobalAlloc, Layout};

    use mimalloc::MiMalloc as System;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    static CURRENT: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    struct Counting;

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    fn grow(n: usize) {
        let now = CURRENT.fetch_add(n, Relaxed) + n;
        PEAK.fetch_max(now, Relaxed);
    }

    // SAFETY: every call is forwarded to mimalloc unchanged;
    // only the counters are added.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is passed on to mimalloc.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grow(layout.size());
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is passed on to mimalloc.
            unsafe { System.dealloc(ptr, layout) };
            CURRENT.fetch_sub(layout.size(), Relaxed);
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract is passed on to mimalloc.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                CURRENT.fetch_sub(layout.size(), Relaxed);
                grow(new_size);
            }
            p
        }
    }

    /// Bytes allocated now.
    pub fn current() -> usize {
        CURRENT.load(Relaxed)
    }

    /// The most bytes allocated at once since the last [`reset_peak`].
    pub fn peak() -> usize {
        PEAK.load(Relaxed)
    }

    /// Starts a new peak measurement; returns the bytes allocated now.
    pub fn reset_peak() -> usize {
        let now = current();
        PEAK.store(now, Relaxed);
        now
    }
}

/// How big a spec to generate.
#[derive(Debug, Clone, Copy)]
struct Shape {
    vms: usize,
    hosts: usize,
    files: usize,
    /// Placement only (name and host per VM), no adapters or ACLs.
    lean: bool,
}

/// Writes the spec; returns the total size in bytes.
fn generate(dir: &Path, shape: Shape) -> u64 {
    let Shape {
        vms,
        hosts,
        files,
        lean,
    } = shape;
    let per_file_hosts = hosts / files;
    let per_file_vms = vms / files;
    let mut total = 0u64;
    let mut text = String::with_capacity(1 << 20);
    for f in 0..files {
        text.clear();
        let _ = write!(
            text,
            "# Rack {f:03}: generated by benches/load_spec.rs\napiVersion: berth/v1\nkind: Placement\nmetadata:\n  name: rack-{f:03}\nspec:\n"
        );
        if f == 0 {
            text.push_str(
                "  policy:\n    maxParallelMigrations: 16\n    maxMigrationsPerHost: 2\n    moveTimeout: 30m\n    backupWait: 1h\n",
            );
        }
        text.push_str("  hosts:\n");
        for h in 0..per_file_hosts {
            let id = f * per_file_hosts + h;
            let _ = writeln!(text, "    - name: hv-{id:04}");
            if id % 10 == 0 {
                text.push_str("      maxMigrations: 1\n");
            }
            if id % 97 == 0 {
                text.push_str("      maintenance: true\n");
            }
        }
        text.push_str("  vms:\n");
        for v in 0..per_file_vms {
            let id = f * per_file_vms + v;
            // Spread VMs over all hosts, most of them in other files.
            let host = (id * 7_919) % hosts;
            let vlan = 10 + id % 4_000;
            if lean {
                let _ = writeln!(text, "    - {{ name: vm-{id:06}, host: hv-{host:04} }}");
                continue;
            }
            let _ = write!(
                text,
                "    - name: vm-{id:06}
      host: hv-{host:04}
      fallback: [hv-{f1:04}, hv-{f2:04}]
      networkAdapters:
        - name: Network Adapter
          switch: Prod-{sw}
          vlanId: {vlan}
          acls:
            - action: allow
              direction: inbound
              remoteAddress: 10.{a}.0.0/16
              localPort: \"443\"
              protocol: tcp
              weight: 10
              stateful: true
            - action: deny
              direction: both
              remoteAddress: ANY
              weight: 100
",
                f1 = (host + 1) % hosts,
                f2 = (host + 2) % hosts,
                sw = id % 4,
                a = id % 256,
            );
        }
        let path = dir.join(format!("rack-{f:03}.yaml"));
        let mut file = std::fs::File::create(&path).expect("create a spec file");
        file.write_all(text.as_bytes()).expect("write a spec file");
        total += text.len() as u64;
    }
    total
}

/// The process's peak resident set size in bytes (Linux).
/// CPU seconds this process has used so far, all threads (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 a second).
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn vm_hwm() -> Option<u64> {
    proc_status("VmHWM:")
}

/// A `kB` field of /proc/self/status, in bytes (Linux).
fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Roughly where the time goes: reading, YAML parsing into the document
/// types (as the loader does it: a header pass that finds each document's
/// kind, then a typed pass with positions), and the rest of `spec::load`
/// (splitting documents and validation), against the best whole load.
/// Each pass is timed twice and the faster run counts, to damp noise from
/// other processes.
fn breakdown(dir: &Path, best_load: Duration) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Header {
        api_version: Option<String>,
        kind: Option<String>,
    }

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the spec directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();

    let started = Instant::now();
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read a spec file"))
        .collect();
    let read = started.elapsed();

    let mut header_pass = Duration::MAX;
    let mut typed_pass = Duration::MAX;
    let mut raw_bytes = 0;
    for _ in 0..2 {
        let started = Instant::now();
        for t in &texts {
            let headers: Vec<Header> = serde_saphyr::from_multiple(t).expect("headers parse");
            std::hint::black_box(headers);
        }
        header_pass = header_pass.min(started.elapsed());

        let before = heap::current();
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let docs: Vec<spec::raw::PlacementDocument> = texts
            .iter()
            .map(|t| serde_saphyr::from_str(t).expect("documents parse"))
            .collect();
        typed_pass = typed_pass.min(started.elapsed());
        println!(
            "load_spec: one single-threaded typed pass over every file: {:.2} s of CPU",
            cpu_seconds() - cpu_before
        );
        raw_bytes = heap::current().saturating_sub(before);
        drop(docs);
    }

    let parse = read + header_pass + typed_pass;
    let rest = best_load.saturating_sub(parse);
    let s = Duration::as_secs_f64;
    let share = |d: Duration| 100.0 * s(&d) / s(&best_load);
    println!(
        "load_spec: breakdown: read {:.3} s, YAML header pass {:.3} s, YAML typed pass {:.3} s ({:.0}% parsing), rest (split + validate) ~{:.3} s, of the best load {:.3} s",
        s(&read),
        s(&header_pass),
        s(&typed_pass),
        share(parse).min(100.0),
        s(&rest),
        s(&best_load)
    );
    println!(
        "load_spec: breakdown: the typed documents of all files take {} MiB of heap at once (the loader holds them all until validation)",
        raw_bytes / 1_048_576
    );
}
