//! Calls per second through one long-lived PowerShell session, against
//! starting one process per call, both with the fake PowerShell
//! (`fake-pwsh`) and the Hyper-V backend's real scripts in the hello.
//!
//! `cargo bench --bench powershell`. A real pwsh takes hundreds of
//! milliseconds to start where the fake takes about one, so the ratio on
//! real hosts is far larger than the one printed here.

use std::time::{Duration, Instant};

use berth::provider::powershell::{Session, SessionConfig, scripts};
use berth::spec::Transport;
use serde_json::json;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-pwsh");

fn config() -> SessionConfig {
    SessionConfig::new(FAKE, Transport::Local, Duration::from_secs(30))
}

fn args(i: usize) -> serde_json::Value {
    json!({"vm": format!("web-{i:03}"), "adapter": "Network Adapter", "vlanId": 10})
}

async fn long_lived(calls: usize) -> Duration {
    let session = Session::new(config(), scripts::HYPERV);
    session
        .call(scripts::HV_SET_VLAN.name, Some("hv01"), &args(0))
        .await
        .expect("warm up");
    let start = Instant::now();
    for i in 0..calls {
        session
            .call(scripts::HV_SET_VLAN.name, Some("hv01"), &args(i))
            .await
            .expect("call");
    }
    let elapsed = start.elapsed();
    session.close().await;
    elapsed
}

async fn process_per_call(calls: usize) -> Duration {
    let start = Instant::now();
    for i in 0..calls {
        let session = Session::new(config(), scripts::HYPERV);
        session
            .call(scripts::HV_SET_VLAN.name, Some("hv01"), &args(i))
            .await
            .expect("call");
        session.close().await;
    }
    start.elapsed()
}

fn rate(calls: usize, d: Duration) -> f64 {
    calls as f64 / d.as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs this with `--test`: keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    let (long_calls, spawn_calls) = if quick { (20, 5) } else { (5000, 300) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let long = rt.block_on(long_lived(long_calls));
    let spawn = rt.block_on(process_per_call(spawn_calls));
    let long_rate = rate(long_calls, long);
    let spawn_rate = rate(spawn_calls, spawn);
    println!(
        "powershell transport against fake-pwsh ({} scripts in the hello)",
        scripts::HYPERV.len()
    );
    println!(
        "  long-lived session:  {long_calls:>5} calls in {:>8.3} s = {long_rate:>9.0} calls/s ({:.1} µs/call)",
        long.as_secs_f64(),
        1e6 / long_rate
    );
    println!(
        "  process per call:    {spawn_calls:>5} calls in {:>8.3} s = {spawn_rate:>9.0} calls/s ({:.1} µs/call)",
        spawn.as_secs_f64(),
        1e6 / spawn_rate
    );
    println!(
        "  ratio (long-lived / process per call): {:.1}x",
        long_rate / spawn_rate
    );
}
