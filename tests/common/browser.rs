//! Headless Chromium for the browser tests and the web benchmark.
//!
//! Runs Debian's `chromium` (or `$BERTH_CHROMIUM`) once per page: the page
//! loads, its scripts run for a bounded stretch of virtual time
//! (`--virtual-time-budget`), then the DOM is printed (`--dump-dom`) or a
//! screenshot taken. Each run gets its own profile directory, so runs in
//! parallel do not meet. When no browser is installed, the caller fails with
//! a message saying how to install one: a browser test that silently passes
//! without a browser would test nothing.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single browser run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The browser to use, or a message saying how to get one.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("BERTH_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(
        "no headless browser found: these tests load the fleet page and the plan \
         timeline in a real browser. Install Chromium (Debian/Ubuntu: \
         `sudo apt-get install -y chromium`; `.ci/run` does this in CI) or point \
         BERTH_CHROMIUM at a Chromium or Chrome binary."
            .to_string(),
    )
}

/// The browser, or a panic with the installation hint.
pub fn require_chromium() -> PathBuf {
    chromium().unwrap_or_else(|m| panic!("{m}"))
}

fn base_command(profile: &Path, budget_ms: u64, window: (u32, u32)) -> Command {
    let mut cmd = Command::new(require_chromium());
    cmd.arg("--headless")
        .arg("--no-sandbox") // CI runs as root, where the sandbox refuses to start
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--no-default-browser-check")
        .arg("--disable-extensions")
        .arg("--disable-background-networking")
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", window.0, window.1))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(mut cmd: Command) -> (String, String) {
    let mut child = cmd.spawn().expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// Loads `url`, lets its scripts run for `budget_ms` of virtual time, and
/// returns the serialised DOM.
pub fn dump_dom(url: &str, budget_ms: u64) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = base_command(profile.path(), budget_ms, (1280, 900));
    cmd.arg("--dump-dom").arg(url);
    let (dom, err) = run(cmd);
    assert!(
        dom.contains("<html"),
        "chromium printed no DOM for {url}; stderr:\n{err}"
    );
    dom
}

/// Loads `url` and writes a PNG screenshot of the window to `png`.
pub fn screenshot(url: &str, png: &Path, window: (u32, u32), budget_ms: u64) {
    let profile = tempfile::tempdir().expect("profile dir");
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).expect("screenshot dir");
    }
    let _ = std::fs::remove_file(png);
    let mut cmd = base_command(profile.path(), budget_ms, window);
    cmd.arg(format!("--screenshot={}", png.display())).arg(url);
    let (_, err) = run(cmd);
    let bytes = std::fs::read(png).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}; chromium said:\n{err}",
            png.display()
        )
    });
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
}

/// The text from the first `start` in `text` to the next `end` after it
/// (`end` included); `None` when `start` does not occur.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = text.find(start)?;
    let rest = &text[i..];
    let j = rest[start.len()..]
        .find(end)
        .map_or(rest.len(), |j| start.len() + j + end.len());
    Some(&rest[..j])
}
