//! The fleet page and the plan timeline, in a real browser.
//!
//! A real `berth watch` runs on the simulator with a fleet in which one VM
//! is in the middle of a 22-minute live migration, one cannot be placed
//! (blocked) and one waits for its backup to end. Headless Chromium loads
//! the page from it, runs the page's script, and the test reads the DOM it
//! built; filters are driven through the URL fragment. The plan timeline is
//! loaded from the file `berth plan --output html` writes. Screenshots land
//! in `target/tmp/web/` for people to look at. Without Chromium these tests
//! fail and say how to install it.

#[path = "common/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use berth::reconcile::{Condition, Status};
use browser::{between, dump_dom, require_chromium, screenshot};

const FLEET: &str = "\
apiVersion: berth/v1
kind: Fleet
spec:
  seed: 3
  hosts:
    - { name: hv01, memoryGiB: 384, maxMigrations: 2, switches: [Prod], migrationRateMiBps: 50 }
    - { name: hv02, memoryGiB: 256, maxMigrations: 2, switches: [Prod], migrationRateMiBps: 50 }
    - { name: hv03, memoryGiB: 128, maxMigrations: 2, switches: [Prod], migrationRateMiBps: 50 }
  vms:
    - { name: sql-big, host: hv01, memoryGiB: 64 }
    - { name: huge-01, host: hv01, memoryGiB: 200 }
    - { name: web-01, host: hv02, memoryGiB: 4 }
    - { name: web-02, host: hv02, memoryGiB: 4 }
    - { name: app-01, host: hv03, memoryGiB: 8, backups: [{ at: 0s, for: 2h }] }
    - { name: test-07, host: hv03, memoryGiB: 2 }
";

/// sql-big moves for ~22 minutes at 50 MiB/s; huge-01 does not fit on
/// hv03 (blocked); app-01 waits for its backup; test-07 is unmanaged.
const PLACEMENT: &str = "\
apiVersion: berth/v1
kind: Placement
spec:
  hosts: [{ name: hv01 }, { name: hv02 }, { name: hv03 }]
  vms:
    - { name: sql-big, host: hv02 }
    - { name: huge-01, host: hv03 }
    - { name: web-01, host: hv02 }
    - { name: web-02, host: hv02 }
    - { name: app-01, host: hv01 }
";

const CONTROLLER: &str = "\
apiVersion: berth/v1
kind: Controller
spec:
  provider:
    sim: { fleet: ../fleet.yaml }
";

/// A running `berth watch --metrics-addr 127.0.0.1:0`, killed on drop.
struct Watch {
    child: Child,
    addr: String,
    status_file: PathBuf,
    log: Arc<Mutex<String>>,
    _root: tempfile::TempDir,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    fn start() -> Watch {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("fleet.yaml"), FLEET).expect("fleet");
        let spec = root.path().join("spec");
        std::fs::create_dir_all(&spec).expect("spec dir");
        std::fs::write(spec.join("placement.yaml"), PLACEMENT).expect("placement");
        std::fs::write(spec.join("controller.yaml"), CONTROLLER).expect("controller");
        let status_file = root.path().join("status.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("watch")
            .arg(&spec)
            .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"])
            .arg("--status-file")
            .arg(&status_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start berth watch");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("serving the fleet page on http://") {
                    let rest = &line[i + "serving the fleet page on http://".len()..];
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "berth watch did not say where it serves; log:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        Watch {
            child,
            addr,
            status_file,
            log,
            _root: root,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the move is under way and the blocked and waiting VMs
    /// are reported, and returns that status.
    fn until_moving(&self) -> Status {
        poll("sql-big moving, huge-01 blocked, app-01 waiting", || {
            let (code, _, body) = http(&self.addr, "GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n");
            if code != 200 {
                return None;
            }
            let s: Status = serde_json::from_slice(&body).ok()?;
            let cond = |vm: &str| s.vms.get(vm).map(|v| v.condition);
            (cond("sql-big") == Some(Condition::Moving)
                && cond("huge-01") == Some(Condition::Blocked)
                && cond("app-01") == Some(Condition::Waiting)
                && !s.fleet.moves.is_empty()
                && s.fleet.hosts.len() == 3)
                .then_some(s)
        })
        .unwrap_or_else(|| panic!("log:\n{}", self.log()))
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Polls `f` every 20 ms for up to 30 s of real time.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            eprintln!("timed out waiting for {what}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One raw HTTP exchange: status code, header block, body.
fn http(addr: &str, request: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, head, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("web")
}

fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    between(dom, &format!("<section id=\"{id}\">"), "</section>")
        .unwrap_or_else(|| panic!("no section #{id} in\n{dom}"))
}

#[test]
fn the_fleet_page_shows_hosts_moves_and_blocked_vms_and_filters() {
    require_chromium();
    let w = Watch::start();
    let status = w.until_moving();

    let dom = dump_dom(&w.url("/"), 3000);
    assert!(dom.contains("data-state=\"ready\""), "{dom}");

    // Every host with its capacity and slots, every VM on its host.
    let hosts = section(&dom, "hosts");
    for (host, capacity) in [
        ("hv01", "384 GiB"),
        ("hv02", "256 GiB"),
        ("hv03", "128 GiB"),
    ] {
        let card = between(hosts, &format!("data-host=\"{host}\""), "</article>")
            .unwrap_or_else(|| panic!("no card for {host} in\n{hosts}"));
        assert!(card.contains(&format!("/ {capacity}")), "{card}");
        assert!(card.contains("migrations "), "{card}");
    }
    for (vm, v) in &status.vms {
        let host = v.host.as_deref().expect("observed");
        let card = between(hosts, &format!("data-host=\"{host}\""), "</article>").expect("card");
        assert!(
            card.contains(&format!("data-vm=\"{vm}\"")),
            "{vm} not on {host}:\n{card}"
        );
    }
    // sql-big's live move takes a slot on both of its hosts.
    let hv01 = between(hosts, "data-host=\"hv01\"", "</article>").expect("hv01");
    assert!(hv01.contains("migrations 1/2"), "{hv01}");

    // The move in flight, with its progress and expected end.
    let moves = section(&dom, "moves");
    let row = between(moves, "data-vm=\"sql-big\"", "</tr>").expect("sql-big in flight");
    assert!(row.contains("hv01 → hv02"), "{row}");
    assert!(row.contains("live · 64 GiB"), "{row}");
    let pct: u32 = between(row, "data-pct=\"", "\"")
        .and_then(|s| s["data-pct=\"".len()..s.len() - 1].parse().ok())
        .unwrap_or_else(|| panic!("no progress in {row}"));
    assert!(pct < 100, "{row}");
    assert!(row.contains("<time data-until="), "{row}");
    assert!(row.contains("(in "), "an expected end in the future: {row}");

    // What needs attention comes first, with why.
    let attention = section(&dom, "attention");
    let at = |needle: &str| dom.find(needle).expect(needle);
    assert!(at("id=\"attention\"") < at("id=\"moves\"") && at("id=\"moves\"") < at("id=\"hosts\""));
    let blocked = between(attention, "data-vm=\"huge-01\"", "</tr>").expect("huge-01 listed");
    assert!(blocked.contains(">Blocked<"), "{blocked}");
    assert!(
        blocked.contains("huge-01 needs 200 GiB, more than hv03 has in all (128 GiB)"),
        "{blocked}"
    );
    let waiting = between(attention, "data-vm=\"app-01\"", "</tr>").expect("app-01 listed");
    assert!(
        waiting.contains(">Waiting<") && waiting.contains("backup"),
        "{waiting}"
    );
    assert!(!attention.contains("data-vm=\"web-01\""), "{attention}");
    // Counts per condition.
    let counts = between(&dom, "<nav id=\"counts\"", "</nav>").expect("counts");
    for chip in [
        "<b>6</b> VMs",
        "<b>1</b> Blocked",
        "<b>1</b> Waiting",
        "<b>1</b> Moving",
        "<b>2</b> InSync",
        "<b>1</b> Unmanaged",
    ] {
        assert!(counts.contains(chip), "{chip} in {counts}");
    }

    // The filter, driven by the URL fragment: text and condition.
    let dom = dump_dom(&w.url("/#q=web&c=InSync"), 3000);
    let hosts = section(&dom, "hosts");
    for vm in ["web-01", "web-02"] {
        assert!(
            hosts.contains(&format!("data-vm=\"{vm}\"")),
            "{vm}:\n{hosts}"
        );
    }
    for vm in ["huge-01", "sql-big", "app-01", "test-07"] {
        assert!(
            !dom.contains(&format!("data-vm=\"{vm}\"")),
            "{vm} filtered out:\n{dom}"
        );
    }
    assert!(!hosts.contains("data-host=\"hv03\""), "{hosts}");
    assert!(dom.contains("2 shown"), "{dom}");

    let dom = dump_dom(&w.url("/#c=Blocked"), 3000);
    let hosts = section(&dom, "hosts");
    assert!(hosts.contains("data-vm=\"huge-01\""), "{hosts}");
    assert!(!hosts.contains("data-host=\"hv02\""), "{hosts}");
    assert!(section(&dom, "moves").find("data-vm").is_none(), "{dom}");

    // A reason matches too.
    let dom = dump_dom(&w.url("/#q=backup"), 3000);
    assert!(
        section(&dom, "attention").contains("data-vm=\"app-01\""),
        "{dom}"
    );
    assert!(
        !section(&dom, "hosts").contains("data-vm=\"web-01\""),
        "{dom}"
    );

    let png = shots().join("fleet.png");
    screenshot(&w.url("/"), &png, (1280, 720), 3000);
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn status_json_is_the_status_file_and_only_get_and_head_are_served() {
    let w = Watch::start();
    w.until_moving();

    // The bytes of the file, exactly: read until two fetches around one
    // read of the file agree (the file may be rewritten in between).
    let same = poll("/status.json to equal the status file", || {
        let (_, _, a) = http(&w.addr, "GET /status.json HTTP/1.1\r\n\r\n");
        let file = std::fs::read(&w.status_file).ok()?;
        let (_, head, b) = http(&w.addr, "GET /status.json HTTP/1.1\r\n\r\n");
        (a == b && a == file).then_some(head)
    });
    let head = same.expect("/status.json never matched the status file");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    let etag = header(&head, "etag").expect("an ETag").to_string();
    let (code, _, body) = http(
        &w.addr,
        &format!("GET /status.json HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert!(code == 304 && body.is_empty() || code == 200, "{code}");

    // HEAD: the headers of GET, no body.
    let (code, head, body) = http(&w.addr, "HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(code, 200);
    assert!(body.is_empty());
    let (_, _, page) = http(&w.addr, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        header(&head, "content-length"),
        Some(page.len().to_string().as_str())
    );
    assert!(
        header(&head, "content-security-policy").is_some_and(|v| v.contains("default-src 'none'"))
    );

    // Offline: nothing the page loads comes from elsewhere.
    for path in ["/", "/fleet.js", "/fleet.css"] {
        let (code, _, body) = http(&w.addr, &format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert_eq!(code, 200, "{path}");
        let text = String::from_utf8_lossy(&body);
        for outside in ["http://", "https://", "//cdn", "@import"] {
            assert!(!text.contains(outside), "{path} refers to {outside}");
        }
    }

    // Unknown paths stay 404; only GET and HEAD are answered.
    for path in [
        "/nope",
        "/status.json/x",
        "/../etc/passwd",
        "/index.html",
        "/metrics/",
    ] {
        let (code, _, _) = http(&w.addr, &format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert_eq!(code, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/", "/status.json", "/metrics"] {
            let (code, head, _) = http(
                &w.addr,
                &format!("{method} {path} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            );
            assert_eq!(code, 405, "{method} {path}");
            assert_eq!(header(&head, "allow"), Some("GET, HEAD"));
        }
    }
    // The loop is unaffected by all of that.
    let (code, _, body) = http(&w.addr, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!((code, body.as_slice()), (200, &b"ok\n"[..]));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

#[test]
fn the_plan_timeline_shows_each_move_its_waits_and_memory() {
    require_chromium();
    let root = tempfile::tempdir().expect("tempdir");
    let lab = root.path().join("lab");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab"),
        &lab,
    );
    let plan = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("plan")
            .arg(&lab)
            .args(["--output", format])
            .output()
            .expect("run berth plan");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let json: serde_json::Value = serde_json::from_str(&plan("json")).expect("plan json");
    let html = plan("html");
    let file = root.path().join("plan.html");
    std::fs::write(&file, &html).expect("write html");

    // Self-contained: no script, nothing loaded from anywhere.
    assert!(!html.contains("<script"), "no script");
    for attr in [" src=", " href=", "url(http", "@import"] {
        assert!(!html.contains(attr), "{attr}");
    }

    let dom = dump_dom(&format!("file://{}", file.display()), 1000);
    let svg = between(&dom, "<svg", "</svg>").expect("an SVG timeline");
    let moves: Vec<&serde_json::Value> = json["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["type"] == "move")
        .collect();
    assert!(moves.len() >= 5, "the lab plan has moves");
    for m in &moves {
        let vm = m["vm"].as_str().expect("vm");
        // A bar on the source row and one on the destination row.
        for host in [
            m["from"].as_str().expect("from"),
            m["to"].as_str().expect("to"),
        ] {
            let row = between(svg, &format!("data-host=\"{host}\""), "<g class=\"row\"")
                .unwrap_or_else(|| panic!("no row for {host}"));
            assert!(row.contains(&format!("data-vm=\"{vm}\"")), "{vm} on {host}");
        }
        let title = format!(
            "#{} move {vm}: {} → {} ({}",
            m["id"],
            m["from"].as_str().expect("from"),
            m["to"].as_str().expect("to"),
            m["method"].as_str().expect("method")
        );
        assert!(svg.contains(&title), "{title} in the timeline");
    }
    // hv03 allows two live migrations at once; the lab queues five on it.
    assert!(
        svg.contains("waits for a live-migration slot on hv03 (2 of 2 in use)"),
        "a wait explained:\n{svg}"
    );
    assert!(svg.contains("class=\"wait\""), "waits shaded");
    assert!(svg.contains("memory in use:"), "memory over time");
    // The actions as the text output shows them, and the diff.
    let actions = section(&dom, "actions");
    assert!(actions.contains("#1 move"), "{actions}");
    assert!(
        actions.contains("blocked") || actions.contains("Plan:"),
        "{actions}"
    );
    let diff = section(&dom, "diff");
    assert!(diff.contains("<span class=\"add\">+"), "{diff}");

    let png = shots().join("plan.png");
    screenshot(
        &format!("file://{}", file.display()),
        &png,
        (1200, 820),
        1000,
    );
    eprintln!("screenshot: {}", png.display());
}
