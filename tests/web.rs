//! The fleet page and the plan timeline, in a real browser.
//!
//! A real `berth watch` runs on the simulator with a fleet in which one VM
//! is in the middle of a 22-minute live migration, one cannot be placed
//! (blocked) and one waits for its backup to end. Headless Chromium loads
//! the page from it, runs the page's script, and the test reads the DOM it
//! built; filters are driven through the URL fragment. The spec lives in a
//! git repository (made with the `git` binary), so the page shows the
//! revision in force, and a broken commit shows as a spec error. The plan
//! timeline is loaded from the file `berth plan --output html` writes. Screenshots land
//! in `target/tmp/web/` for people to look at. Without Chromium these tests
//! fail and say how to install it.

#[path = "common/browser.rs"]
mod browser;
#[path = "common/git.rs"]
mod git;

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

/// Runs `git` in `dir` (`common/git.rs`); panics (with how to get git)
/// when it cannot.
fn git(dir: &Path, args: &[&str]) -> String {
    git::git(dir, args).unwrap_or_else(|e| {
        panic!("these tests keep the spec in a git repository and need the `git` binary: {e}")
    })
}

/// A running `berth watch --metrics-addr 127.0.0.1:0`, killed on drop.
struct Watch {
    child: Child,
    addr: String,
    status_file: PathBuf,
    /// The commit holding the spec it started with.
    revision: String,
    /// The spec directory (in the git work tree).
    spec: PathBuf,
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
        git(root.path(), &["init", "-q"]);
        git(root.path(), &["add", "fleet.yaml", "spec"]);
        git(root.path(), &["commit", "-q", "-m", "the fleet"]);
        let revision = git(root.path(), &["rev-parse", "HEAD"]);
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
            revision,
            spec,
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

    // The revision in force: the commit watch started on.
    assert_eq!(status.revision.as_deref(), Some(w.revision.as_str()));
    let meta = between(&dom, "<div id=\"meta\"", "</div>").expect("meta");
    assert!(
        meta.contains(&format!(
            "revision <code title=\"{}\">{}</code>",
            w.revision,
            &w.revision[..12]
        )),
        "{meta}"
    );
    assert!(meta.contains("last pass <time"), "{meta}");
    assert!(!dom.contains("Spec error"), "{dom}");

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
    for (vm, v) in status.vms.iter() {
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

    // A broken commit arrives as a git sync brings one: HEAD moves, then
    // the files change. The spec error shows, and the last valid commit
    // stays the revision in force.
    let root = w.spec.parent().expect("repository root").to_path_buf();
    let staged = root.join("broken.yaml");
    std::fs::write(
        &staged,
        PLACEMENT.replace(
            "host: hv02 }\n    - { name: huge-01",
            "host: hv09 }\n    - { name: huge-01",
        ),
    )
    .expect("write");
    let blob = git(&root, &["hash-object", "-w", "broken.yaml"]);
    git(
        &root,
        &[
            "update-index",
            "--cacheinfo",
            &format!("100644,{blob},spec/placement.yaml"),
        ],
    );
    git(&root, &["commit", "-q", "-m", "a host that does not exist"]);
    git(&root, &["checkout", "--", "spec/placement.yaml"]);
    let broken = git(&root, &["rev-parse", "HEAD"]);
    poll("the broken commit to be seen", || {
        let (_, _, body) = http(&w.addr, "GET /status.json HTTP/1.1\r\n\r\n");
        let s: Status = serde_json::from_slice(&body).ok()?;
        (s.attempted_revision.as_deref() == Some(broken.as_str()) && s.spec_error.is_some())
            .then_some(())
    })
    .unwrap_or_else(|| panic!("log:\n{}", w.log()));
    let dom = dump_dom(&w.url("/"), 3000);
    let banners = between(&dom, "<div id=\"banners\"", "<div class=\"bar\"").expect("banners");
    assert!(banners.contains("<b>Spec error</b>"), "{banners}");
    assert!(banners.contains("hv09"), "{banners}");
    assert!(
        banners.contains(&format!(
            "<code>{}</code> was seen; <code>{}</code> is in force",
            &broken[..12],
            &w.revision[..12]
        )),
        "{banners}"
    );
    let meta = between(&dom, "<div id=\"meta\"", "</div>").expect("meta");
    assert!(meta.contains(&w.revision[..12]), "{meta}");
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
    let plan = |format: &str| plan_of(&lab, format);
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

/// `berth plan DIR --output FORMAT` on a copy of an example; stdout.
fn plan_of(dir: &Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("plan")
        .arg(dir)
        .args(["--output", format])
        .output()
        .expect("run berth plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The `<title>` text of the volume strip for `path` on `host`'s row.
fn volume_title<'a>(svg: &'a str, host: &str, path: &str) -> &'a str {
    let row = between(svg, &format!("data-host=\"{host}\""), "<g class=\"row\"")
        .unwrap_or_else(|| panic!("no row for {host}"));
    let strip = between(row, &format!("data-volume=\"{path}\""), "</g>")
        .unwrap_or_else(|| panic!("no strip for {path} on {host}:\n{row}"));
    between(strip, "<title>", "</title>").expect("a title")
}

/// `(first, last, peak, capacity)` GiB from a volume strip's title
/// (`… 480 GiB → 0 GiB of 680 GiB (peak 480 GiB, …`).
fn volume_gib(title: &str) -> (u64, u64, u64, u64) {
    let nums: Vec<u64> = title
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a number"))
        .collect();
    // Leading digits of the host name (s01) come first.
    let n = nums.len();
    assert!(n >= 6, "{title}");
    (nums[n - 6], nums[n - 5], nums[n - 3], nums[n - 4])
}

#[test]
fn the_plan_timeline_shows_volume_space_for_shared_nothing_moves() {
    require_chromium();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("shared-nothing");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shared-nothing"),
        &dir,
    );
    let json: serde_json::Value = serde_json::from_str(&plan_of(&dir, "json")).expect("plan json");
    let file = root.path().join("plan.html");
    std::fs::write(&file, plan_of(&dir, "html")).expect("write html");
    let dom = dump_dom(&format!("file://{}", file.display()), 1000);
    let svg = between(&dom, "<svg", "</svg>").expect("an SVG timeline");

    // Every move that copies disks fills a volume on its destination and
    // empties one on its source.
    let copies: Vec<&serde_json::Value> = json["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["type"] == "move" && a["storageGiB"].as_f64().is_some_and(|g| g > 0.0))
        .collect();
    assert!(copies.len() >= 3, "the example copies disks: {json}");
    let mut arriving: std::collections::BTreeMap<(String, String), f64> = Default::default();
    for m in &copies {
        let to = m["to"].as_str().expect("to").to_string();
        let volume = m["volume"]
            .as_str()
            .expect("a destination volume")
            .to_string();
        *arriving.entry((to, volume)).or_default() += m["storageGiB"].as_f64().expect("GiB");
    }
    for ((host, volume), gib) in &arriving {
        let title = volume_title(svg, host, volume);
        assert!(
            title.contains("space taken by VM disks"),
            "{host} {volume}: {title}"
        );
        let (first, last, peak, capacity) = volume_gib(title);
        assert_eq!(last as f64, (first as f64 + gib).round(), "{title}");
        assert!(peak >= last && peak <= capacity, "{title}");
    }
    // s01 is being emptied: its D:\VMs gives back all its VMs' disks
    // (app-01 200 GiB, app-02 180, app-03 60, db-01 320) next to its
    // 200 GiB free.
    let title = volume_title(svg, "s01", "D:\\VMs");
    let (first, last, peak, capacity) = volume_gib(title);
    assert_eq!((first, last, peak, capacity), (760, 0, 760, 960), "{title}");
    let leaving: f64 = copies
        .iter()
        .filter(|m| m["from"] == "s01")
        .map(|m| m["storageGiB"].as_f64().expect("GiB"))
        .sum();
    assert_eq!(leaving, 760.0);
    // Two storage migrations at a time on s01: the others wait, and say so.
    assert!(
        svg.contains("waits for a storage-migration slot on s01 (2 of 2 in use)"),
        "a storage wait explained:\n{svg}"
    );
    assert!(svg.contains("memory in use:"), "memory next to the volumes");
    // The copies share each host's 10 GbE network: the timeline spans the
    // plan's estimate, which accounts for that, not the sum of lone moves.
    let span = between(svg, "over about ", "\"").expect("the span in the label");
    let span = &span["over about ".len()..span.len() - 1];
    let summary = between(&dom, "<p class=\"summary\">", "</p>").expect("summary");
    assert!(
        summary.ends_with(&format!("about {span}</p>")),
        "{span} vs {summary}"
    );

    let png = shots().join("plan-shared-nothing.png");
    screenshot(
        &format!("file://{}", file.display()),
        &png,
        (1200, 900),
        1000,
    );
    eprintln!("screenshot: {}", png.display());
}

/// A status document of `vms` VMs over `hosts` hosts: every 50th VM
/// blocked, every 50th (offset 1) waiting, 120 moves in flight.
fn big_status(hosts: usize, vms: usize) -> Vec<u8> {
    let host = |i: usize| format!("hv{i:04}");
    let now = std::time::SystemTime::now();
    let at = |secs: i64| {
        berth::reconcile::status::rfc3339(if secs >= 0 {
            now + Duration::from_secs(secs as u64)
        } else {
            now - Duration::from_secs(secs.unsigned_abs())
        })
    };
    let mut doc = serde_json::json!({
        "formatVersion": 1,
        "updatedAt": at(0),
        "lastPassAt": at(0),
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "vms": {},
        "hosts": {},
        "moves": [],
    });
    for i in 0..vms {
        let name = format!("vm-{i:05}");
        let (condition, reason) = match i % 50 {
            0 => ("Blocked", Some(format!("{name} does not fit anywhere"))),
            1 => (
                "Waiting",
                Some("waiting for a live-migration slot".to_string()),
            ),
            2 if doc["moves"].as_array().is_some_and(|m| m.len() < 120) => {
                doc["moves"]
                    .as_array_mut()
                    .expect("moves")
                    .push(serde_json::json!({
                        "vm": name, "from": host(i % hosts), "to": host((i + 1) % hosts),
                        "method": "live", "attempt": 1, "memoryMiB": 4096,
                        "startedAt": at(-60), "estimatedSeconds": 600.0, "expectedEnd": at(540),
                    }));
                ("Moving", Some("moving".to_string()))
            }
            _ => ("InSync", None),
        };
        doc["vms"][&name] = serde_json::json!({ "condition": condition, "host": host(i % hosts), "reason": reason });
    }
    for i in 0..hosts {
        doc["hosts"][host(i)] = serde_json::json!({
            "memoryMiB": 262_144, "memoryUsedMiB": 131_072, "migrationSlots": 2,
            "migrationsInUse": 0, "reachable": true,
        });
    }
    serde_json::to_vec_pretty(&doc).expect("json")
}

#[test]
fn a_large_fleet_is_drawn_a_page_at_a_time() {
    require_chromium();
    let metrics = Arc::new(berth::reconcile::Metrics::default());
    metrics.enable_status_page();
    metrics.publish_status(&big_status(300, 6_000));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(berth::reconcile::metrics::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    rt.spawn(berth::reconcile::metrics::serve(listener, metrics));

    let dom = dump_dom(&format!("http://{addr}/"), 3000);
    assert!(dom.contains("data-state=\"ready\""), "{dom}");
    // The counts are of everything; the lists start with their first rows.
    let counts = between(&dom, "<nav id=\"counts\"", "</nav>").expect("counts");
    for chip in [
        "<b>6000</b> VMs",
        "<b>120</b> Blocked",
        "<b>120</b> Waiting",
    ] {
        assert!(counts.contains(chip), "{chip} in {counts}");
    }
    let attention = section(&dom, "attention");
    assert!(attention.contains("Needs attention <small>240</small>"));
    assert_eq!(attention.matches("class=\"vmrow\"").count(), 50);
    assert!(
        attention.contains(
            "190 more: <button type=\"button\" data-more=\"attention\">show 190 more</button>"
        ),
        "{attention}"
    );
    let moves = section(&dom, "moves");
    assert!(moves.contains("Moves in flight <small>120</small>"));
    assert_eq!(moves.matches("class=\"move\"").count(), 50);
    assert!(
        moves.contains("data-more=\"moves\">show 70 more</button>"),
        "{moves}"
    );
    let hosts = section(&dom, "hosts");
    assert_eq!(hosts.matches("<article class=\"host").count(), 60);
    assert!(hosts.contains("240 more hosts below"), "{hosts}");
    // Blocked VMs sort first in the attention list.
    let first = between(attention, "<tr class=\"vmrow\"", "</tr>").expect("a row");
    assert!(first.contains(">Blocked<"), "{first}");

    // A filter narrows the lists before they are cut.
    let dom = dump_dom(&format!("http://{addr}/#q=vm-0005"), 3000);
    let attention = section(&dom, "attention");
    // vm-00050 (blocked) and vm-00051 (waiting) match "vm-0005".
    assert_eq!(
        attention.matches("class=\"vmrow\"").count(),
        2,
        "{attention}"
    );
    assert!(!attention.contains("data-more"), "{attention}");
}
