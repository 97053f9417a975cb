//! `berth watch`: how fast it reacts, what a quiet pass costs, and whether
//! it grows.
//!
//! 1. Latency from a file write to the first move started: the loop runs as
//!    under `berth watch` (ordinary clock, multi-thread runtime, real file
//!    watcher with the default 100 ms debounce) on a small simulated fleet;
//!    the spec is rewritten to move one VM, and the time until the executor
//!    reports the move started is measured. Target: under 500 ms.
//! 2. A no-change resync pass on a 10,000-VM fleet (200 hosts, every VM
//!    with an adapter, a VLAN and two ACLs, all in sync): re-reading the
//!    documents (unchanged, so not re-parsed), observing, planning, the
//!    conditions and the status file. CPU time of the thread that runs the
//!    pass. Target: under 50 ms.
//! 3. Memory of the watch loop on that fleet: passes driven through the
//!    loop itself (file-change signals), resident set and live heap after
//!    10 and after 1,000 passes. Target: no growth.
//!
//! Run with `cargo bench --bench watch`. WATCH_BENCH_WRITES (default 6),
//! WATCH_BENCH_VMS (default 10000) and WATCH_BENCH_PASSES (default 1000)
//! resize it.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::execute::Event as ExecEvent;
use berth::provider::Provider;
use berth::provider::sim::Sim;
use berth::reconcile::{
    Metrics, Notice, Outcome, PassReport, Reconciler, Settings, Signal, Trigger, watcher,
};
use berth::spec;
use tokio::sync::mpsc;

const TARGET_LATENCY_MS: f64 = 500.0;
const TARGET_PASS_CPU_MS: f64 = 50.0;

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"watch".contains(f.as_str())) {
        return;
    }
    let size = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    latency(size("WATCH_BENCH_WRITES", 6));
    let vms = size("WATCH_BENCH_VMS", 10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = big_fleet(dir.path(), vms);
    quiet_pass(dir.path(), &fleet, vms);
    memory(dir.path(), &fleet, vms, size("WATCH_BENCH_PASSES", 1000));
}

// ------------------------------------------------------------ 1. latency

const SMALL_FLEET: &str = "\
apiVersion: berth/v1
kind: Fleet
spec:
  seed: 1
  hosts:
    - { name: hv01, memoryGiB: 64, maxMigrations: 4, switches: [Prod], migrationRateMiBps: 100000 }
    - { name: hv02, memoryGiB: 64, maxMigrations: 4, switches: [Prod], migrationRateMiBps: 100000 }
  vms:
    - { name: web-01, host: hv01, memoryGiB: 1 }
    - { name: web-02, host: hv01, memoryGiB: 1 }
";

fn small_placement(web01: &str) -> String {
    format!(
        "apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts: [{{ name: hv01 }}, {{ name: hv02 }}]\n  vms:\n    - {{ name: web-01, host: {web01} }}\n    - {{ name: web-02, host: hv01 }}\n"
    )
}

fn latency(writes: usize) {
    let root = tempfile::tempdir().expect("tempdir");
    let fleet_path = root.path().join("fleet.yaml");
    std::fs::write(&fleet_path, SMALL_FLEET).expect("write fleet");
    let spec_dir = root.path().join("spec");
    std::fs::create_dir_all(&spec_dir).expect("mkdir");
    let file = spec_dir.join("placement.yaml");
    std::fs::write(&file, small_placement("hv01")).expect("write spec");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let samples = runtime.block_on(async {
        let fleet = spec::load_fleet(&fleet_path).expect("fleet");
        let provider: Arc<dyn Provider> = Arc::new(Sim::in_memory(&fleet));
        // The notice carries the instant it was sent, so the channel hop
        // does not count.
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Notice)>();
        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        let _watch = watcher::watch(&spec_dir, Duration::from_millis(100), signals_tx.clone())
            .expect("watch");
        let reconciler = Reconciler::new(
            Settings::new(&spec_dir),
            provider,
            Arc::new(Metrics::default()),
        )
        .with_notices(Arc::new(move |n: &Notice| {
            let _ = tx.send((Instant::now(), n.clone()));
        }));
        let task = tokio::spawn(reconciler.run(signals_rx));
        wait_for(&mut rx, |n| matches!(n, Notice::Pass(_))).await;
        let mut samples = Vec::with_capacity(writes);
        for i in 0..writes {
            let to = if i % 2 == 0 { "hv02" } else { "hv01" };
            let written = Instant::now();
            std::fs::write(&file, small_placement(to)).expect("write spec");
            let (at, _) = wait_for(
                &mut rx,
                |n| matches!(n, Notice::Exec(ExecEvent::MoveStarted { vm, .. }) if vm == "web-01"),
            )
            .await;
            samples.push(at.duration_since(written));
            // The move takes about 5 s of the simulator's (wall-clock) time;
            // the next write comes after the job.
            wait_for(
                &mut rx,
                |n| matches!(n, Notice::Pass(p) if p.trigger == Trigger::JobEnded),
            )
            .await;
        }
        let _ = signals_tx.send(Signal::Shutdown);
        let _ = task.await;
        samples
    });
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let worst = ms.last().copied().unwrap_or(0.0);
    println!(
        "watch: file write -> first move started ({} writes, debounce 100 ms): median {:.0} ms, min {:.0} ms, max {:.0} ms (target < {TARGET_LATENCY_MS:.0} ms: {})",
        ms.len(),
        median(&ms),
        ms.first().copied().unwrap_or(0.0),
        worst,
        verdict(worst < TARGET_LATENCY_MS)
    );
}

async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(Instant, Notice)>,
    pred: impl Fn(&Notice) -> bool,
) -> (Instant, Notice) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((at, n))) if pred(&n) => return (at, n),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the loop ended"),
            Err(_) => panic!("timed out"),
        }
    }
}

// ------------------------------------------------------- 2. a quiet pass

/// Writes a fleet of `vms` VMs on `vms / 50` hosts and a Placement that
/// matches it exactly (20 files); returns the Fleet.
fn big_fleet(dir: &Path, vms: usize) -> spec::FleetSpec {
    let hosts = (vms / 50).max(2);
    let acls = "[{ action: deny, direction: inbound, weight: 1 }, { action: allow, direction: inbound, protocol: tcp, localPort: \"443\", remoteAddress: 10.0.0.0/8, weight: 10 }]";
    let mut fleet = String::from("apiVersion: berth/v1\nkind: Fleet\nspec:\n  seed: 1\n  hosts:\n");
    for h in 0..hosts {
        let _ = writeln!(
            fleet,
            "    - {{ name: hv{h:04}, memoryGiB: 1024, maxMigrations: 2, switches: [Prod] }}"
        );
    }
    fleet.push_str("  vms:\n");
    for v in 0..vms {
        let _ = writeln!(
            fleet,
            "    - {{ name: vm-{v:05}, host: hv{:04}, memoryGiB: 4, networkAdapters: [{{ name: Network Adapter, switch: Prod, connected: true, vlanId: 10, acls: {acls} }}] }}",
            v % hosts
        );
    }
    let fleet_path = dir.join("fleet.yaml");
    std::fs::write(&fleet_path, fleet).expect("write fleet");
    let spec_dir = dir.join("spec");
    std::fs::create_dir_all(&spec_dir).expect("mkdir");
    let mut head = String::from("apiVersion: berth/v1\nkind: Placement\nspec:\n  hosts:\n");
    for h in 0..hosts {
        let _ = writeln!(head, "    - {{ name: hv{h:04} }}");
    }
    std::fs::write(spec_dir.join("hosts.yaml"), head).expect("write hosts");
    let files = 20;
    for f in 0..files {
        let mut text = String::from("apiVersion: berth/v1\nkind: Placement\nspec:\n  vms:\n");
        for v in (f..vms).step_by(files) {
            let _ = writeln!(
                text,
                "    - {{ name: vm-{v:05}, host: hv{:04}, networkAdapters: [{{ name: Network Adapter, switch: Prod, vlanId: 10, acls: {acls} }}] }}",
                v % hosts
            );
        }
        std::fs::write(spec_dir.join(format!("vms-{f:02}.yaml")), text).expect("write vms");
    }
    spec::load_fleet(&fleet_path).expect("the generated fleet is valid")
}

fn quiet_pass(dir: &Path, fleet: &spec::FleetSpec, vms: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let provider: Arc<dyn Provider> = Arc::new(Sim::in_memory(fleet));
        let settings = Settings {
            status_file: Some(dir.join("status.json")),
            ..Settings::new(dir.join("spec"))
        };
        let mut r = Reconciler::new(settings, provider, Arc::new(Metrics::default()));
        let cpu = thread_cpu();
        let started = Instant::now();
        let first = r.pass(Trigger::Startup).await;
        let first_cpu = thread_cpu().zip(cpu).map(|(b, a)| b - a);
        assert_eq!(first.outcome, Outcome::InSync, "{first:?}");
        assert_eq!(first.counts[0] as usize, vms, "every VM in sync");
        println!(
            "watch: first pass on {vms} VMs (parses the spec): {:.0} ms wall{}",
            started.elapsed().as_secs_f64() * 1000.0,
            first_cpu
                .map(|c| format!(", {:.0} ms CPU", c.as_secs_f64() * 1000.0))
                .unwrap_or_default()
        );
        let runs = 50;
        let mut cpu_ms = Vec::with_capacity(runs);
        let mut wall_ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let before = thread_cpu();
            let started = Instant::now();
            let report: PassReport = r.pass(Trigger::Resync).await;
            wall_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if let (Some(a), Some(b)) = (before, thread_cpu()) {
                cpu_ms.push((b - a).as_secs_f64() * 1000.0);
            }
            assert_eq!(report.outcome, Outcome::InSync);
        }
        wall_ms.sort_by(f64::total_cmp);
        cpu_ms.sort_by(f64::total_cmp);
        let status_kib = std::fs::metadata(dir.join("status.json"))
            .map(|m| m.len() / 1024)
            .unwrap_or(0);
        if cpu_ms.is_empty() {
            println!(
                "watch: no-change resync pass on {vms} VMs ({runs} runs): median {:.1} ms wall, p95 {:.1} ms (CPU time n/a here; target < {TARGET_PASS_CPU_MS:.0} ms)",
                median(&wall_ms),
                p95(&wall_ms)
            );
        } else {
            let p = p95(&cpu_ms);
            println!(
                "watch: no-change resync pass on {vms} VMs ({runs} runs, status file {status_kib} KiB): CPU median {:.1} ms, p95 {:.1} ms; wall median {:.1} ms (target < {TARGET_PASS_CPU_MS:.0} ms CPU: {})",
                median(&cpu_ms),
                p,
                median(&wall_ms),
                verdict(p < TARGET_PASS_CPU_MS)
            );
        }
        breakdown(dir, fleet, &r).await;
    });
}

/// Where a quiet pass spends its time (best of 10 of each step).
async fn breakdown(dir: &Path, fleet: &spec::FleetSpec, r: &Reconciler) {
    let spec_dir = dir.join("spec");
    let desired = spec::load(std::slice::from_ref(&spec_dir)).expect("valid");
    let sim = Sim::in_memory(fleet);
    let best = |mut f: Box<dyn FnMut() + '_>| {
        (0..10)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .fold(f64::INFINITY, f64::min)
    };
    let read = best(Box::new(|| {
        for e in std::fs::read_dir(&spec_dir).expect("dir") {
            let _ = std::fs::read(e.expect("entry").path());
        }
    }));
    let mut observed = None;
    let mut observe_ms = f64::INFINITY;
    for _ in 0..10 {
        let t = Instant::now();
        observed = Some(sim.observe().await.expect("observe"));
        observe_ms = observe_ms.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    let observed = observed.expect("observed");
    let plan_ms = best(Box::new(|| {
        std::hint::black_box(berth::plan::plan(&desired, &observed));
    }));
    let plan = berth::plan::plan(&desired, &observed);
    let conditions_ms = best(Box::new(|| {
        std::hint::black_box(berth::reconcile::status::conditions(
            &desired, &observed, &plan, false,
        ));
    }));
    let status = r.status();
    let serialise_ms = best(Box::new(|| {
        std::hint::black_box(berth::reconcile::status::to_bytes(&status));
    }));
    let bytes = berth::reconcile::status::to_bytes(&status);
    let write_ms = best(Box::new(|| {
        berth::reconcile::status::write_bytes_atomic(&dir.join("status-b.json"), &bytes)
            .expect("write");
    }));
    println!(
        "watch:   breakdown (best of 10): read the documents {read:.1} ms, observe {observe_ms:.1} ms, plan {plan_ms:.1} ms, conditions {conditions_ms:.1} ms, status JSON {serialise_ms:.1} ms, status write {write_ms:.1} ms"
    );
}

// ---------------------------------------------------------- 3. memory

fn memory(dir: &Path, fleet: &spec::FleetSpec, vms: usize, passes: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let provider: Arc<dyn Provider> = Arc::new(Sim::in_memory(fleet));
        let settings = Settings {
            status_file: Some(dir.join("status.json")),
            ..Settings::new(dir.join("spec"))
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Notice)>();
        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        let reconciler = Reconciler::new(settings, provider, Arc::new(Metrics::default()))
            .with_notices(Arc::new(move |n: &Notice| {
                if matches!(n, Notice::Pass(_)) {
                    let _ = tx.send((Instant::now(), n.clone()));
                }
            }));
        let task = tokio::spawn(reconciler.run(signals_rx));
        wait_for(&mut rx, |_| true).await;
        let mut after_10 = None;
        let mut checkpoints = Vec::new();
        let started = Instant::now();
        for i in 1..=passes {
            let _ = signals_tx.send(Signal::FilesChanged);
            wait_for(&mut rx, |n| {
                matches!(n, Notice::Pass(p) if p.trigger == Trigger::Files && p.outcome == Outcome::InSync)
            })
            .await;
            if i == 10 {
                after_10 = Some((rss(), heap::current()));
            }
            if i == passes / 4 || i == passes / 2 {
                checkpoints.push(format!(
                    "{:.1} MiB after {i}",
                    rss().unwrap_or(0) as f64 / 1_048_576.0
                ));
            }
        }
        let elapsed = started.elapsed();
        let after_all = (rss(), heap::current());
        let _ = signals_tx.send(Signal::Shutdown);
        let _ = task.await;
        let (rss_10, heap_10) = after_10.unwrap_or((None, 0));
        let mib = |b: u64| b as f64 / 1_048_576.0;
        let rss_text = match (rss_10, after_all.0) {
            (Some(a), Some(b)) => format!(
                "RSS {:.1} MiB after 10, {}, {:.1} MiB after {passes} ({:+.1} MiB)",
                mib(a),
                checkpoints.join(", "),
                mib(b),
                mib(b) - mib(a)
            ),
            _ => "RSS n/a".to_string(),
        };
        let heap_growth = after_all.1 as i64 - heap_10 as i64;
        println!(
            "watch: memory of the loop on {vms} VMs over {passes} passes ({:.1} s, {:.1} ms a pass): {rss_text}; live heap {:.1} MiB after 10, {:.1} MiB after {passes} ({:+.2} MiB) (target: no growth: {})",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / passes as f64,
            mib(heap_10 as u64),
            mib(after_all.1 as u64),
            heap_growth as f64 / 1_048_576.0,
            verdict(heap_growth < 1_048_576)
        );
    });
}

// ---------------------------------------------------------- helpers

fn median(sorted: &[f64]) -> f64 {
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

fn p95(sorted: &[f64]) -> f64 {
    let i = ((sorted.len() as f64) * 0.95).ceil() as usize;
    sorted
        .get(i.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// CPU time of the calling thread (Linux: /proc/thread-self/schedstat, ns).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The process's resident set size in bytes (Linux).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Counts live heap bytes (resident set sizes include memory freed but not
/// returned to the system, so they can hide or exaggerate growth).
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    static CURRENT: AtomicUsize = AtomicUsize::new(0);

    struct Counting;

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    // SAFETY: every call is forwarded to the system allocator unchanged;
    // only the counter is added.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is passed on to `System`.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                CURRENT.fetch_add(layout.size(), Relaxed);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is passed on to `System`.
            unsafe { System.dealloc(ptr, layout) };
            CURRENT.fetch_sub(layout.size(), Relaxed);
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract is passed on to `System`.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                CURRENT.fetch_sub(layout.size(), Relaxed);
                CURRENT.fetch_add(new_size, Relaxed);
            }
            p
        }
    }

    /// Bytes allocated now.
    pub fn current() -> usize {
        CURRENT.load(Relaxed)
    }
}
