//! The fleet page of `berth watch --metrics-addr`: read-only, offline.
//!
//! `GET /` is one page whose script and style sheet (`/fleet.js`,
//! `/fleet.css`) are compiled into the binary (`include_str!`): no CDN, no
//! framework, nothing fetched from outside. The script polls
//! `GET /status.json`, which serves exactly the bytes of the status file
//! (also when no `--status-file` is written), with an `ETag` so an
//! unchanged status costs a `304`. No route changes anything; only `GET`
//! and `HEAD` are answered. Responses forbid framing and inline code
//! (`Content-Security-Policy`), so the page stays harmless behind a proxy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::metrics::Metrics;

const PAGE: &str = include_str!("web/fleet.html");
const SCRIPT: &str = include_str!("web/fleet.js");
const STYLE: &str = include_str!("web/fleet.css");

/// Headers every page response carries.
const PAGE_HEADERS: &str = "Cache-Control: no-cache\r\n\
X-Content-Type-Options: nosniff\r\n\
Referrer-Policy: no-referrer\r\n\
Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n";

/// One HTTP response of the metrics listener.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status line without the version (`200 OK`).
    pub status: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body (left out for `HEAD`; `Content-Length` still counts it).
    pub body: Arc<[u8]>,
    /// Whether to leave the body out.
    pub head_only: bool,
    /// More header lines, each ending in CRLF.
    pub headers: String,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: &'static str, body: &str, head_only: bool) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().into(),
            head_only,
            headers: String::new(),
        }
    }
}

/// The latest status document, shared by the loop and the server.
#[derive(Debug, Default)]
pub struct StatusFeed {
    enabled: AtomicBool,
    /// Version counter (the `ETag`) and the bytes.
    latest: Mutex<Option<(u64, Arc<[u8]>)>>,
}

impl StatusFeed {
    /// Starts keeping each status write.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether status writes are kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Keeps `bytes` as the current document (when enabled and changed).
    pub fn publish(&self, bytes: &[u8]) {
        if !self.enabled() {
            return;
        }
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        match latest.as_ref() {
            Some((_, old)) if **old == *bytes => {}
            Some((n, _)) => *latest = Some((n + 1, bytes.into())),
            None => *latest = Some((1, bytes.into())),
        }
    }

    /// The current document and its version.
    pub fn latest(&self) -> Option<(u64, Arc<[u8]>)> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The page's routes; `None` for any other path (the caller answers 404).
pub fn route(path: &str, request: &[u8], metrics: &Metrics, head: bool) -> Option<Response> {
    let asset = |content_type: &'static str, body: &'static str| Response {
        status: "200 OK",
        content_type,
        body: body.as_bytes().into(),
        head_only: head,
        headers: PAGE_HEADERS.to_string(),
    };
    Some(match path {
        "/" => asset("text/html; charset=utf-8", PAGE),
        "/fleet.js" => asset("text/javascript; charset=utf-8", SCRIPT),
        "/fleet.css" => asset("text/css; charset=utf-8", STYLE),
        "/status.json" => status_json(request, metrics, head),
        _ => return None,
    })
}

fn status_json(request: &[u8], metrics: &Metrics, head: bool) -> Response {
    let Some((version, bytes)) = metrics.status_feed().latest() else {
        let mut r = Response::text(
            "503 Service Unavailable",
            "no status yet: the first pass has not ended\n",
            head,
        );
        r.headers = "Retry-After: 1\r\nCache-Control: no-store\r\n".into();
        return r;
    };
    let etag = format!("\"s{version}\"");
    let headers =
        format!("ETag: {etag}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n");
    if header(request, "if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Response {
            status: "304 Not Modified",
            content_type: "application/json",
            body: Arc::from(&b""[..]),
            head_only: true,
            headers,
        };
    }
    Response {
        status: "200 OK",
        content_type: "application/json",
        body: bytes,
        head_only: head,
        headers,
    }
}

/// The value of a request header (first occurrence, name case-insensitive).
fn header<'a>(request: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(request).ok()?;
    text.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// An HTTP `Date` value (IMF-fixdate, RFC 9110 §5.6.7): the page reads it
/// to show progress in the server's time even when the clocks differ.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let weekday = DAYS[(secs / 86_400 % 7) as usize];
    // `2026-11-22T10:00:00Z`, taken apart.
    let iso = super::status::rfc3339(t);
    let field = |r: std::ops::Range<usize>| iso.get(r).unwrap_or("00");
    let month = field(5..7)
        .parse::<usize>()
        .ok()
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .unwrap_or(&"Jan");
    format!(
        "{weekday}, {} {month} {} {} GMT",
        field(8..10),
        field(0..4),
        field(11..19)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_imf_fixdate() {
        let at = |s: u64| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(1_795_341_600), "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn status_json_is_the_published_bytes_with_an_etag() {
        let m = Metrics::default();
        let get = |req: &str| route("/status.json", req.as_bytes(), &m, false);
        let r = get("GET /status.json HTTP/1.1\r\n\r\n").expect("route");
        assert_eq!(r.status, "503 Service Unavailable");
        m.enable_status_page();
        m.publish_status(b"{\"a\":1}\n");
        let r = get("GET /status.json HTTP/1.1\r\n\r\n").expect("route");
        assert_eq!(r.status, "200 OK");
        assert_eq!(&*r.body, b"{\"a\":1}\n");
        assert!(r.headers.contains("ETag: \"s1\""), "{}", r.headers);
        let r = get("GET /status.json HTTP/1.1\r\nIf-None-Match: \"s1\"\r\n\r\n").expect("route");
        assert_eq!(r.status, "304 Not Modified");
        m.publish_status(b"{\"a\":1}\n");
        m.publish_status(b"{\"a\":2}\n");
        let r = get("GET /status.json HTTP/1.1\r\nif-none-match: \"s1\"\r\n\r\n").expect("route");
        assert_eq!(r.status, "200 OK");
        assert!(r.headers.contains("ETag: \"s2\""), "{}", r.headers);
    }

    #[test]
    fn unknown_paths_are_not_routed() {
        let m = Metrics::default();
        assert!(route("/admin", b"GET /admin HTTP/1.1\r\n\r\n", &m, false).is_none());
        assert!(route("/fleet.js", b"", &m, true).is_some_and(|r| r.head_only));
    }
}
