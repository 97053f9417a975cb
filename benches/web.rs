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
//!    browser's processes: fetching, parsing and rendering the data
//!    (counts, what needs attention, moves, the first 60 host cards; more
//!    come as the list scrolls), style and layout included. Target: under 1 s. In an ordinary browser
//!    the page records its own render time as `data-render-ms` on `<body>`.
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
            let c = children_cpu_ms();
            let dom = browser::dump_dom(&format!("http://{addr}/{fragment}"), 2_500);
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            if let (Some(before), Some(after)) = (c, children_cpu_ms()) {
                cpu.push(after - before);
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
        medians.push(median);
        println!(
            "browser run, {label}: median {median:.0} ms (min {:.0}, max {:.0}, {runs} runs)",
            wall[0],
            wall[wall.len() - 1]
        );
    }
    for (label, m) in [("all VMs", medians[1]), ("filter c=Blocked", medians[2])] {
        let cost = m - medians[0];
        println!(
            "render of {vms} VMs on {hosts} hosts, {label} (fetch, parse, DOM, layout): \
             {cost:.0} ms over the empty fleet; target under {TARGET_RENDER_MS} ms: {}",
            if cost < TARGET_RENDER_MS {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

/// CPU time used by finished child processes (and theirs) so far, ms:
/// `cutime + cstime` of `/proc/self/stat`. `None` off Linux.
fn children_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, cutime 16, cstime 17.
    let ticks: f64 = fields.get(13)?.parse::<f64>().ok()? + fields.get(14)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / clock_ticks())
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
        doc.vms.insert(
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
