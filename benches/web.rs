//! The fleet page: how heavy it is, and how fast a big fleet renders.
//!
//! 1. Page weight: the bytes of `/`, `/fleet.js` and `/fleet.css` as the
//!    server sends them (everything the page loads besides its data).
//!    Target: under 200 KB.
//! 2. Render time for 1,000 hosts and 20,000 VMs: a status document of that
//!    size (1 % blocked, 2 % waiting, 200 moves in flight, 3 % pending, the
//!    rest in sync, every host with memory and slots) is served by the real
//!    server code on a loopback port, and headless Chromium loads the page
//!    and prints the DOM once the page's script has run. Inside the page
//!    every clock follows the virtual clock that `--virtual-time-budget`
//!    uses to let the script run (it stands still during a task), so the
//!    page cannot time itself there; the benchmark times whole browser runs
//!    instead, with the 20,000-VM document and with an empty fleet, and
//!    reports the difference, in wall time and in CPU time of all the
//!    browser's processes (sampled from `/proc`) and of its renderer:
//!    fetching, parsing and rendering the data (counts, the first rows of
//!    what needs attention and of the moves, the first 60 host cards; more
//!    come on demand), style and layout included. Target: under 1 s. In an
//!    ordinary browser the page records its own render time as
//!    `data-render-ms` on `<body>`.
//!
//! Run with `cargo bench --bench web` (needs Chromium, as the browser
//! tests do). WEB_BENCH_VMS (default 20000), WEB_BENCH_HOSTS (default 1000)
//! and WEB_BENCH_RUNS (default 5) resize it.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use berth::provider::MoveKind;
use berth::reconcile::fleet_view::{FleetView, HostView, MoveView};
use berth::reconcile::{Condition, Metrics, Status, VmStatus, metrics, status, web};

const TARGET_PAGE_BYTES: usize = 200 * 1024;
const TARGET_RENDER_MS: f64 = 1000.0;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let vms = env("WEB_BENCH_VMS", 20_000);
    let hosts = env("WEB_BENCH_HOSTS", 1_000).max(2);
    let runs = env("WEB_BENCH_RUNS", 5).max(1);

    // 1. Page weight.
    let m = Metrics::default();
    let mut total = 0;
    let mut parts = Vec::new();
    for path in ["/", "/fleet.js", "/fleet.css"] {
        let r = web::route(path, b"", &m, false).expect("a page route");
        total += r.body.len();
        parts.push(format!("{path} {} B", r.body.len()));
    }
    println!(
        "page weight: {total} bytes ({}); target under {} bytes: {}",
        parts.join(", "),
        TARGET_PAGE_BYTES,
        if total < TARGET_PAGE_BYTES {
            "met"
        } else {
            "MISSED"
        }
    );

    // 2. Render time.
    if let Err(m) = browser::chromium() {
        eprintln!("{m}");
        std::process::exit(1);
    }
    let doc = synthetic(hosts, vms);
    let bytes = status::to_bytes(&doc);
    println!(
        "status.json for {hosts} hosts / {vms} VMs / {} moves: {} bytes",
        doc.fleet.moves.len(),
        bytes.len()
    );
    let metrics = Arc::new(Metrics::default());
    metrics.enable_status_page();
    metrics.publish_status(&bytes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(metrics::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    rt.spawn(metrics::serve(listener, metrics.clone()));

    let empty = status::to_bytes(&synthetic(0, 0));
    let mut medians = Vec::new();
    for (label, doc, fragment) in [
        ("empty fleet", &empty, ""),
        ("all VMs", &bytes, ""),
        ("filter c=Blocked", &bytes, "#c=Blocked"),
    ] {
        metrics.publish_status(doc);
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let sampler = CpuSampler::start();
            let dom = browser::dump_dom(&format!("http://{addr}/{fragment}"), 2_500);
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            if let Some(c) = sampler.stop() {
                cpu.push(c);
            }
            assert!(
                dom.contains("data-state=\"ready\""),
                "the page did not render"
            );
            if doc.len() == bytes.len() && fragment.is_empty() {
                // Attention rows, moves, and the first page of host cards.
                assert!(
                    dom.contains("class=\"vmrow\""),
                    "no VM needing attention shown"
                );
                assert!(dom.contains("class=\"move\""), "no move shown");
                assert!(dom.contains("id=\"morehosts\""), "host cards not paged");
            }
        }
        wall.sort_by(f64::total_cmp);
        let median = wall[wall.len() / 2];
        let all: Vec<f64> = cpu.iter().map(|c| c.0).collect();
        let renderer: Vec<f64> = cpu.iter().map(|c| c.1).collect();
        let cpu_median = median_of(all);
        let renderer_median = median_of(renderer);
        medians.push((median, cpu_median, renderer_median));
        println!(
            "browser run, {label}: median {median:.0} ms wall (min {:.0}, max {:.0}); \
             CPU {cpu_median:.0} ms in all browser processes, {renderer_median:.0} ms in \
             renderers; {runs} runs",
            wall[0],
            wall[wall.len() - 1]
        );
    }
    for (label, (m, c, r)) in [("all VMs", medians[1]), ("filter c=Blocked", medians[2])] {
        let cost = m - medians[0].0;
        println!(
            "render of {vms} VMs on {hosts} hosts, {label} (fetch, parse, DOM, layout): \
             {cost:.0} ms wall, {:.0} ms CPU ({:.0} ms in the renderer) over the empty \
             fleet; target under {TARGET_RENDER_MS} ms wall: {}",
            c - medians[0].1,
            r - medians[0].2,
            if cost < TARGET_RENDER_MS {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time of every process below this one (the browser and all its
/// helpers), sampled from `/proc` every 5 ms while a run lasts: Chromium's
/// renderers are reaped by its zygote, not by us, so `getrusage` of our
/// children misses them. Each process counts with the last value seen
/// (at most a sampling period short). `None` off Linux.
struct CpuSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<(f64, f64)>>,
}

impl CpuSampler {
    fn start() -> CpuSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let me = std::process::id();
            // (pid, start time) -> (CPU ticks, is a renderer)
            let mut seen: std::collections::HashMap<(u32, u64), (u64, bool)> = Default::default();
            loop {
                let done = flag.load(std::sync::atomic::Ordering::Relaxed);
                let procs = proc_table()?;
                let mut parent: std::collections::HashMap<u32, u32> = Default::default();
                for p in &procs {
                    parent.insert(p.pid, p.ppid);
                }
                for p in &procs {
                    let mut up = p.ppid;
                    let mut ours = false;
                    for _ in 0..16 {
                        if up == me {
                            ours = true;
                            break;
                        }
                        match parent.get(&up) {
                            Some(next) if *next != up => up = *next,
                            _ => break,
                        }
                    }
                    if ours {
                        let e = seen.entry((p.pid, p.start)).or_insert_with(|| {
                            let cmd = std::fs::read(format!("/proc/{}/cmdline", p.pid))
                                .unwrap_or_default();
                            let renderer =
                                String::from_utf8_lossy(&cmd).contains("--type=renderer");
                            (0, renderer)
                        });
                        e.0 = e.0.max(p.ticks);
                    }
                }
                if done {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let ms = |t: u64| t as f64 * 1000.0 / clock_ticks();
            let all = seen.values().map(|v| v.0).sum();
            let renderer = seen.values().filter(|v| v.1).map(|v| v.0).sum();
            Some((ms(all), ms(renderer)))
        });
        CpuSampler { stop, thread }
    }

    /// Stops sampling; `(all processes, renderers)` CPU ms.
    fn stop(self) -> Option<(f64, f64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

struct Proc {
    pid: u32,
    ppid: u32,
    start: u64,
    ticks: u64,
}

/// Every process's parent, start time and CPU ticks (user + system).
fn proc_table() -> Option<Vec<Proc>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the command name: ppid is field 4, utime 14, stime 15,
        // starttime 22 (1-based over the whole line).
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        if let (Some(ppid), Some(u), Some(s), Some(start)) = (num(1), num(11), num(12), num(19)) {
            out.push(Proc {
                pid,
                ppid: ppid as u32,
                start,
                ticks: u + s,
            });
        }
    }
    Some(out)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A status document for `hosts` hosts and `vms` VMs, every condition
/// represented, as a long drain would look.
fn synthetic(hosts: usize, vms: usize) -> Status {
    let host = |i: usize| format!("hv{i:04}");
    let mut doc = Status {
        updated_at: status::rfc3339(std::time::SystemTime::now()),
        ..Status::default()
    };
    let mut fleet = FleetView::default();
    let now = std::time::SystemTime::now();
    for i in 0..vms {
        let name = format!("vm-{i:05}");
        let h = host(i % hosts);
        let (condition, reason) = match i % 100 {
            0 => (
                Condition::Blocked,
                Some(format!(
                    "{name} needs 96 GiB, more than {} has free (64 GiB)",
                    host((i + 1) % hosts)
                )),
            ),
            1 | 2 => (
                Condition::Waiting,
                Some(format!(
                    "waiting for a live-migration slot on {}",
                    host((i + 1) % hosts)
                )),
            ),
            3 if fleet.moves.len() < 200 => {
                let to = host((i + 7) % hosts);
                fleet.moves.push(MoveView {
                    vm: name.clone(),
                    from: h.clone(),
                    to: to.clone(),
                    method: MoveKind::Live,
                    attempt: 1,
                    memory_mib: 16_384,
                    started_at: status::rfc3339(now - std::time::Duration::from_secs(60)),
                    estimated_seconds: Some(300.0),
                    expected_end: Some(status::rfc3339(now + std::time::Duration::from_secs(240))),
                    started_elsewhere: false,
                });
                (Condition::Moving, Some(format!("moving to {to}")))
            }
            4..=6 => (
                Condition::Pending,
                Some(format!("move to {} (placement)", host((i + 3) % hosts))),
            ),
            7 => (Condition::Unmanaged, None),
            _ => (Condition::InSync, None),
        };
        std::sync::Arc::make_mut(&mut doc.vms).insert(
            name,
            VmStatus {
                condition,
                host: Some(h),
                reason,
            },
        );
    }
    let mut busy: BTreeMap<String, u32> = BTreeMap::new();
    for m in &fleet.moves {
        *busy.entry(m.from.clone()).or_default() += 1;
        *busy.entry(m.to.clone()).or_default() += 1;
    }
    for i in 0..hosts {
        let name = host(i);
        fleet.hosts.insert(
            name.clone(),
            HostView {
                memory_mib: 512 * 1024,
                memory_used_mib: ((i * 37) % 480 + 16) as u64 * 1024,
                migration_slots: 2,
                migrations_in_use: busy.get(&name).copied().unwrap_or(0),
                reachable: i % 250 != 17,
                maintenance: i % 100 == 5,
                volumes: Vec::new(),
            },
        );
    }
    fleet.pass_ended();
    doc.fleet = fleet;
    doc
}
