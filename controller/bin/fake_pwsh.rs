//! A stand-in for PowerShell that speaks berth's line protocol, for tests
//! and benchmarks on machines without PowerShell.
//!
//! It reads the hello and the requests exactly as `host.ps1` does, and
//! answers each request by a "step" that says how to misbehave:
//!
//! - from the request itself: `args.fake` (an object), or else
//! - from a behaviour file (`FAKE_PWSH_BEHAVIOUR`): `{"script": step or [steps]}`,
//!   the n-th call of a script taking the n-th step (the last one repeats),
//! - or else an echo: `{"script":..,"target":..,"args":..,"scriptHash":..}`.
//!
//! A step is an object with any of, in this order: `stderr` (text written to
//! standard error), `garbage` (a line written to standard output without
//! the marker), `sleepMs`, then one ending: `crash` (exit with `exitCode`,
//! default 101, without answering), `partial` (half a reply, no newline,
//! then exit, or hang with `hang`), `hang` (never answer), `badMarked` (a marked line that is not
//! JSON), `wrongId` (a reply to another request), `reply` (a success with
//! that result), `error` (a failure with that error record), or the echo.
//!
//! `FAKE_PWSH_STARTUP`: `exit:N` exits with N before the hello, `hang` never
//! answers the hello, `garbage` prints stray lines first.
//! `FAKE_PWSH_LOG`: a file that receives the arguments and every line read.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::{Value, json};

fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

struct Log(Option<std::fs::File>);

impl Log {
    fn line(&mut self, text: &str) {
        if let Some(f) = &mut self.0 {
            let _ = writeln!(f, "{text}");
            let _ = f.flush();
        }
    }
}

fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    let mut log = Log(std::env::var_os("FAKE_PWSH_LOG").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    }));
    let argv: Vec<String> = std::env::args().skip(1).collect();
    log.line(&json!({ "argv": argv }).to_string());

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match std::env::var("FAKE_PWSH_STARTUP").as_deref() {
        Ok(s) if s.starts_with("exit:") => {
            eprintln!("fake-pwsh: refusing to start");
            std::process::exit(s[5..].parse().unwrap_or(1));
        }
        Ok("hang") => hang(),
        Ok("garbage") => {
            let _ = writeln!(
                out,
                "Windows PowerShell\r\nCopyright (C) Microsoft Corporation."
            );
        }
        _ => {}
    }

    let behaviour: HashMap<String, Value> = std::env::var_os("FAKE_PWSH_BEHAVIOUR")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut calls: HashMap<String, usize> = HashMap::new();

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let Some(Ok(hello_line)) = lines.next() else {
        return;
    };
    log.line(&hello_line);
    let hello: Value = match serde_json::from_str(&hello_line) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("fake-pwsh: the hello is not JSON: {e}");
            std::process::exit(2);
        }
    };
    let marker = hello["marker"].as_str().unwrap_or_default().to_string();
    let scripts: HashMap<String, String> = hello["scripts"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{marker}{}",
        json!({"id": 0, "ok": true, "result": {"ready": true, "version": "7.4.0-fake", "edition": "Fake"}})
    );
    let _ = out.flush();

    for line in lines {
        let Ok(line) = line else { break };
        log.line(&line);
        if line.is_empty() {
            continue;
        }
        let request: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "{marker}{}",
                    json!({"id": null, "ok": false, "error": {"category": "ParserError", "message": e.to_string(), "fullyQualifiedErrorId": "BerthBadRequest"}})
                );
                let _ = out.flush();
                continue;
            }
        };
        let id = request["id"].as_u64().unwrap_or(0);
        let name = request["script"].as_str().unwrap_or_default().to_string();
        let Some(text) = scripts.get(&name) else {
            let _ = writeln!(
                out,
                "{marker}{}",
                json!({"id": id, "ok": false, "error": {"category": "InvalidArgument", "message": format!("berth has no script named {name}"), "fullyQualifiedErrorId": "BerthUnknownScript"}})
            );
            let _ = out.flush();
            continue;
        };
        let n = calls.entry(name.clone()).or_default();
        let step = match request["args"].get("fake") {
            Some(v) if v.is_object() => v.clone(),
            _ => match behaviour.get(&name) {
                Some(Value::Array(steps)) if !steps.is_empty() => {
                    steps[(*n).min(steps.len() - 1)].clone()
                }
                Some(step) => step.clone(),
                None => json!({}),
            },
        };
        *n += 1;

        if let Some(text) = step["stderr"].as_str() {
            eprintln!("{text}");
        }
        if let Some(text) = step["garbage"].as_str() {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        if let Some(ms) = step["sleepMs"].as_u64() {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let echo = json!({
            "script": name,
            "target": request["target"],
            "args": request["args"],
            "scriptHash": fnv(text),
        });
        let reply = if step["crash"].as_bool() == Some(true) {
            std::process::exit(step["exitCode"].as_i64().unwrap_or(101) as i32);
        } else if step["partial"].as_bool() == Some(true) {
            let full = json!({"id": id, "ok": true, "result": echo}).to_string();
            let _ = write!(out, "{marker}{}", &full[..full.len() / 2]);
            let _ = out.flush();
            if step["hang"].as_bool() == Some(true) {
                hang();
            }
            std::process::exit(step["exitCode"].as_i64().unwrap_or(0) as i32);
        } else if step["hang"].as_bool() == Some(true) {
            hang();
        } else if step["badMarked"].as_bool() == Some(true) {
            let _ = writeln!(out, "{marker}{{\"id\":{id},\"ok\":tr");
            let _ = out.flush();
            continue;
        } else if step["wrongId"].as_bool() == Some(true) {
            json!({"id": id + 1000, "ok": true, "result": echo})
        } else if let Some(error) = step.get("error") {
            json!({"id": id, "ok": false, "error": error})
        } else if let Some(result) = step.get("reply") {
            json!({"id": id, "ok": true, "result": result})
        } else {
            json!({"id": id, "ok": true, "result": echo})
        };
        let _ = writeln!(out, "{marker}{reply}");
        let _ = out.flush();
    }
}
