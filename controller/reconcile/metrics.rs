//! Prometheus metrics and a health check, over a tiny HTTP server.
//!
//! Two routes on one listener: `GET /metrics` (the Prometheus text
//! exposition format, version 0.0.4) and `GET /healthz`. The server reads
//! only the request line and the headers' end, answers, and closes the
//! connection; a web framework would add far more than these two routes
//! need.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::status::Condition;

/// Upper bounds of the pass-duration histogram, seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Everything `/metrics` reports. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    passes: AtomicU64,
    pass_seconds: Mutex<Histogram>,
    moves_started: AtomicU64,
    moves_failed: AtomicU64,
    acl_changes: AtomicU64,
    reconnects: AtomicU64,
    spec_errors: AtomicU64,
    spec_error: AtomicBool,
    provider_errors: AtomicU64,
    provider_error: AtomicBool,
    suspended: AtomicBool,
    last_pass_unix: AtomicU64,
    vms: Mutex<[u64; 6]>,
    revisions: Mutex<(Option<String>, Option<String>)>,
}

impl Metrics {
    /// A pass ended after `seconds`.
    pub fn pass(&self, seconds: f64) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.pass_seconds.lock() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.last_pass_unix.store(now, Ordering::Relaxed);
    }

    /// Passes so far.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// A migration was requested.
    pub fn move_started(&self) {
        self.moves_started.fetch_add(1, Ordering::Relaxed);
    }

    /// A requested migration failed.
    pub fn move_failed(&self) {
        self.moves_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// ACL rules added or removed, adapters reconnected.
    pub fn corrections(&self, acl_changes: u32, reconnects: u32) {
        self.acl_changes
            .fetch_add(u64::from(acl_changes), Ordering::Relaxed);
        self.reconnects
            .fetch_add(u64::from(reconnects), Ordering::Relaxed);
    }

    /// A new invalid version of the spec was found.
    pub fn spec_error_seen(&self) {
        self.spec_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the spec on disk is invalid now.
    pub fn set_spec_error(&self, on: bool) {
        self.spec_error.store(on, Ordering::Relaxed);
    }

    /// The provider could not be reached (`false`: it answered again).
    pub fn provider_failed(&self, failed: bool) {
        if failed {
            self.provider_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.provider_error.store(failed, Ordering::Relaxed);
    }

    /// `policy.suspend` is in force.
    pub fn set_suspended(&self, on: bool) {
        self.suspended.store(on, Ordering::Relaxed);
    }

    /// VMs by condition, in [`Condition::ALL`] order.
    pub fn set_vms(&self, counts: [u64; 6]) {
        if let Ok(mut v) = self.vms.lock() {
            *v = counts;
        }
    }

    /// The git commits of the spec in force and the latest seen.
    pub fn set_revisions(&self, revision: Option<&str>, attempted: Option<&str>) {
        if let Ok(mut r) = self.revisions.lock() {
            *r = (revision.map(str::to_string), attempted.map(str::to_string));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flag = |a: &AtomicBool| u64::from(a.load(Ordering::Relaxed));
        counter(
            &mut out,
            "berth_passes_total",
            "Reconcile passes (observe, plan, act or report).",
            load(&self.passes),
        );
        if let Ok(h) = self.pass_seconds.lock() {
            let name = "berth_pass_duration_seconds";
            let _ = write!(
                out,
                "# HELP {name} Wall time of one pass, not counting the moves it hands to the executor.\n# TYPE {name} histogram\n"
            );
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum {}", h.sum);
            let _ = writeln!(out, "{name}_count {}", h.count);
        }
        gauge(
            &mut out,
            "berth_last_pass_timestamp_seconds",
            "Unix time at which the last pass ended.",
            load(&self.last_pass_unix),
        );
        if let Ok(v) = self.vms.lock() {
            let name = "berth_vms";
            let _ = write!(
                out,
                "# HELP {name} VMs by condition at the last update.\n# TYPE {name} gauge\n"
            );
            for c in Condition::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{condition=\"{}\"}} {}",
                    c.as_str(),
                    v[c as usize]
                );
            }
        }
        counter(
            &mut out,
            "berth_moves_started_total",
            "Migrations requested.",
            load(&self.moves_started),
        );
        counter(
            &mut out,
            "berth_moves_failed_total",
            "Requested migrations that failed.",
            load(&self.moves_failed),
        );
        counter(
            &mut out,
            "berth_acl_changes_total",
            "Extended port ACL rules added or removed to match the spec.",
            load(&self.acl_changes),
        );
        counter(
            &mut out,
            "berth_reconnects_total",
            "Network adapters reconnected to their declared switch.",
            load(&self.reconnects),
        );
        counter(
            &mut out,
            "berth_spec_errors_total",
            "Invalid versions of the spec found (the last valid one stayed in force).",
            load(&self.spec_errors),
        );
        gauge(
            &mut out,
            "berth_spec_error",
            "1 while the spec on disk is invalid and the last valid one is in force.",
            flag(&self.spec_error),
        );
        counter(
            &mut out,
            "berth_provider_errors_total",
            "Passes in which the provider could not be reached.",
            load(&self.provider_errors),
        );
        gauge(
            &mut out,
            "berth_provider_up",
            "1 when the last attempt to observe the fleet succeeded.",
            1 - flag(&self.provider_error),
        );
        gauge(
            &mut out,
            "berth_suspended",
            "1 while policy.suspend is in force.",
            flag(&self.suspended),
        );
        if let Ok(r) = self.revisions.lock()
            && r.1.is_some()
        {
            // Commit ids are hex digits: nothing to escape in a label.
            let name = "berth_spec_revision_info";
            let _ = write!(
                out,
                "# HELP {name} The git commit of the spec in force (revision) and the latest seen (attempted_revision).\n# TYPE {name} gauge\n{name}{{revision=\"{}\",attempted_revision=\"{}\"}} 1\n",
                r.0.as_deref().unwrap_or(""),
                r.1.as_deref().unwrap_or("")
            );
        }
        out
    }
}

/// Binds the metrics listener (`127.0.0.1:9184`, `[::]:9184`, ...).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` and `/healthz` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // A slow or silent client gets a few seconds, then is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &metrics)).await;
        });
    }
}

/// Reads one request and writes the response.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // The request line and headers; bodies are not expected.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 16 * 1024 {
            break;
        }
    }
    let (status, content_type, body, head_only) = respond(&buf, metrics);
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Status line, content type, body, and whether to leave the body out (HEAD).
fn respond(request: &[u8], metrics: &Metrics) -> (&'static str, &'static str, String, bool) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let line = request
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return ("400 Bad Request", TEXT, "bad request\n".into(), false);
    };
    let head = method == "HEAD";
    if method != "GET" && !head {
        return (
            "405 Method Not Allowed",
            TEXT,
            "only GET and HEAD\n".into(),
            false,
        );
    }
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
            head,
        ),
        "/healthz" => ("200 OK", TEXT, "ok\n".into(), head),
        _ => (
            "404 Not Found",
            TEXT,
            "not found: try /metrics or /healthz\n".into(),
            head,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_metric_once() {
        let m = Metrics::default();
        m.pass(0.003);
        m.pass(0.2);
        m.move_started();
        m.move_failed();
        m.corrections(3, 1);
        m.spec_error_seen();
        m.set_spec_error(true);
        m.set_vms([5, 1, 0, 0, 2, 1]);
        let text = m.render();
        for line in [
            "berth_passes_total 2",
            "berth_pass_duration_seconds_bucket{le=\"0.005\"} 1",
            "berth_pass_duration_seconds_bucket{le=\"0.25\"} 2",
            "berth_pass_duration_seconds_bucket{le=\"+Inf\"} 2",
            "berth_pass_duration_seconds_count 2",
            "berth_vms{condition=\"InSync\"} 5",
            "berth_vms{condition=\"Blocked\"} 2",
            "berth_moves_started_total 1",
            "berth_moves_failed_total 1",
            "berth_acl_changes_total 3",
            "berth_reconnects_total 1",
            "berth_spec_errors_total 1",
            "berth_spec_error 1",
            "berth_provider_up 1",
            "berth_suspended 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
    }

    #[test]
    fn routes() {
        let m = Metrics::default();
        let r = |req: &str| {
            let (s, _, body, head) = respond(req.as_bytes(), &m);
            (s, body, head)
        };
        assert_eq!(r("GET /healthz HTTP/1.1\r\n\r\n").0, "200 OK");
        assert!(
            r("GET /metrics HTTP/1.1\r\n\r\n")
                .1
                .contains("berth_passes_total 0")
        );
        assert!(r("HEAD /metrics HTTP/1.1\r\n\r\n").2);
        assert_eq!(r("GET /nope HTTP/1.1\r\n\r\n").0, "404 Not Found");
        assert_eq!(
            r("POST /metrics HTTP/1.1\r\n\r\n").0,
            "405 Method Not Allowed"
        );
        assert_eq!(r("\r\n").0, "400 Bad Request");
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = std::sync::Arc::new(Metrics::default());
        m.pass(0.01);
        let server = tokio::spawn(serve(listener, m));
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).await.expect("read");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("berth_passes_total 1"), "{text}");
        server.abort();
    }
}
