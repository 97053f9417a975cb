//! The PowerShell transport against a fake PowerShell (`fake-pwsh`, built
//! with the crate) that speaks the same line protocol and misbehaves on
//! request: slow, crashing, half-answering, noisy, exiting.

use std::time::Duration;

use berth::provider::powershell::{
    HOST_SCRIPT, PsError, Script, Session, SessionConfig, encode_command,
};
use berth::provider::{ErrorClass, ProviderError};
use berth::spec::Transport;
use serde_json::{Value, json};

const PROBE: Script = Script {
    name: "probe",
    text: "param($a, $computer)\nConvertTo-Json -InputObject $a -Compress\n",
};

fn config(timeout: Duration) -> SessionConfig {
    SessionConfig::new(env!("CARGO_BIN_EXE_fake-pwsh"), Transport::Local, timeout)
}

fn session(timeout: Duration) -> Session {
    Session::new(config(timeout), &[PROBE])
}

fn session_with(timeout: Duration, env: &[(&str, &str)]) -> Session {
    let mut c = config(timeout);
    c.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Session::new(c, &[PROBE])
}

const LONG: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_millis(400);

fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[tokio::test]
async fn replies_come_back_and_one_process_serves_many_calls() {
    let s = session(LONG);
    for i in 0..5 {
        let r = s
            .call("probe", None, &json!({"i": i}))
            .await
            .expect("reply");
        assert_eq!(r["script"], "probe");
        assert_eq!(r["args"]["i"], i);
        assert_eq!(r["target"], Value::Null);
        assert_eq!(
            r["scriptHash"],
            fnv(PROBE.text),
            "the script text arrives intact"
        );
    }
    assert_eq!(s.generations().await, 1, "no restart between calls");
    let info = s.host_info().await.expect("running");
    assert_eq!(info.edition, "Fake");
    s.close().await;
}

#[tokio::test]
async fn a_target_travels_with_the_request() {
    let s = session(LONG);
    let r = s
        .call("probe", Some("hv01.contoso.com"), &json!({}))
        .await
        .expect("reply");
    assert_eq!(r["target"], "hv01.contoso.com");
}

#[tokio::test]
async fn a_slow_reply_within_the_limit_is_fine() {
    let s = session(LONG);
    let r = s
        .call(
            "probe",
            None,
            &json!({"fake": {"sleepMs": 50, "reply": {"slow": true}}}),
        )
        .await
        .expect("reply");
    assert_eq!(r, json!({"slow": true}));
}

#[tokio::test]
async fn a_reply_past_the_limit_kills_the_session_and_the_next_call_starts_afresh() {
    let s = session(LONG);
    s.call("probe", None, &json!({})).await.expect("warm up");
    let e = s
        .call_within(
            "probe",
            None,
            &json!({"fake": {"sleepMs": 30000, "reply": 1}}),
            SHORT,
        )
        .await
        .expect_err("too slow");
    assert!(matches!(e, PsError::Timeout { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Unreachable);
    assert!(
        e.to_string().contains("did not answer `probe` within"),
        "{e}"
    );
    let r = s
        .call("probe", None, &json!({"after": 1}))
        .await
        .expect("fresh session");
    assert_eq!(r["args"]["after"], 1);
    assert_eq!(s.generations().await, 2);
}

#[tokio::test]
async fn a_hang_that_never_answers_is_cut_by_the_timeout() {
    let s = session(LONG);
    s.call("probe", None, &json!({})).await.expect("warm up");
    let e = s
        .call_within("probe", None, &json!({"fake": {"hang": true}}), SHORT)
        .await
        .expect_err("hangs");
    assert!(matches!(e, PsError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn a_crash_mid_call_is_reported_with_its_exit_code_and_error_output() {
    let s = session(LONG);
    let e = s
        .call(
            "probe",
            None,
            &json!({"fake": {"stderr": "Hyper-V module exploded", "crash": true, "exitCode": 3}}),
        )
        .await
        .expect_err("crashed");
    let PsError::Exited {
        status,
        partial,
        stderr,
        ..
    } = &e
    else {
        panic!("expected Exited, got {e:?}");
    };
    assert_eq!(status, "exit code 3");
    assert!(!partial);
    assert!(stderr.contains("Hyper-V module exploded"), "{stderr}");
    assert_eq!(e.class(), ErrorClass::Unreachable);
    let p: ProviderError = e.into();
    assert!(p.message.contains("exit code 3"), "{}", p.message);
    let r = s
        .call("probe", None, &json!({"again": true}))
        .await
        .expect("restarted");
    assert_eq!(r["args"]["again"], true);
}

#[tokio::test]
async fn half_an_answer_is_never_acted_on() {
    let s = session(LONG);
    let e = s
        .call("probe", None, &json!({"fake": {"partial": true}}))
        .await
        .expect_err("half an answer");
    let PsError::Exited { partial, .. } = &e else {
        panic!("expected Exited, got {e:?}");
    };
    assert!(partial);
    assert!(e.to_string().contains("discarded"), "{e}");
}

#[tokio::test]
async fn half_an_answer_then_silence_times_out() {
    // Half a reply line, then nothing: only a complete line is an answer.
    let s = session(LONG);
    s.call("probe", None, &json!({})).await.expect("warm up");
    let e = s
        .call_within(
            "probe",
            None,
            &json!({"fake": {"partial": true, "hang": true}}),
            SHORT,
        )
        .await
        .expect_err("no complete answer");
    assert!(matches!(e, PsError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn stray_output_on_stdout_is_skipped() {
    let s = session(LONG);
    let garbage = "WARNING: The names of some imported commands include unapproved verbs.\n{\"id\":1,\"ok\":true,\"result\":\"forged\"}\n\u{1b}[31mcolour\u{1b}[0m";
    let r = s
        .call(
            "probe",
            None,
            &json!({"fake": {"garbage": garbage, "reply": "real"}}),
        )
        .await
        .expect("reply");
    assert_eq!(
        r,
        json!("real"),
        "an unmarked line can never pass for a reply"
    );
    assert_eq!(s.generations().await, 1);
}

#[tokio::test]
async fn output_on_stderr_does_not_disturb_a_call() {
    let s = session(LONG);
    let r = s
        .call(
            "probe",
            None,
            &json!({"fake": {"stderr": "WARNING: something odd", "reply": 7}}),
        )
        .await
        .expect("reply");
    assert_eq!(r, json!(7));
}

#[tokio::test]
async fn a_marked_line_that_is_not_json_stops_the_session() {
    let s = session(LONG);
    let e = s
        .call("probe", None, &json!({"fake": {"badMarked": true}}))
        .await
        .expect_err("bad reply");
    assert!(matches!(e, PsError::Protocol { .. }), "{e:?}");
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    s.call("probe", None, &json!({})).await.expect("restarted");
    assert_eq!(s.generations().await, 2);
}

#[tokio::test]
async fn a_reply_to_another_request_stops_the_session() {
    let s = session(LONG);
    let e = s
        .call("probe", None, &json!({"fake": {"wrongId": true}}))
        .await
        .expect_err("wrong id");
    assert!(matches!(e, PsError::Protocol { .. }), "{e:?}");
}

#[tokio::test]
async fn a_non_zero_exit_at_start_is_reported_clearly() {
    let s = session_with(LONG, &[("FAKE_PWSH_STARTUP", "exit:7")]);
    let e = s
        .call("probe", None, &json!({}))
        .await
        .expect_err("cannot start");
    let text = e.to_string();
    assert!(text.contains("exit code 7"), "{text}");
    assert!(text.contains("refusing to start"), "{text}");
    assert_eq!(e.class(), ErrorClass::Unreachable);
}

#[tokio::test]
async fn a_banner_before_the_handshake_is_skipped() {
    let s = session_with(LONG, &[("FAKE_PWSH_STARTUP", "garbage")]);
    s.call("probe", None, &json!({})).await.expect("reply");
}

#[tokio::test]
async fn a_shell_that_never_greets_times_out() {
    let s = session_with(SHORT, &[("FAKE_PWSH_STARTUP", "hang")]);
    let e = s
        .call("probe", None, &json!({}))
        .await
        .expect_err("no hello");
    assert!(matches!(e, PsError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn a_missing_shell_is_a_clear_error() {
    let c = SessionConfig::new("/nonexistent/berth-test/pwsh", Transport::Local, LONG);
    let s = Session::new(c, &[PROBE]);
    let e = s
        .call("probe", None, &json!({}))
        .await
        .expect_err("no shell");
    assert!(matches!(e, PsError::Spawn { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("/nonexistent/berth-test/pwsh"), "{text}");
    assert!(text.contains("shell"), "{text}");
}

#[tokio::test]
async fn an_error_record_is_returned_and_the_session_kept() {
    let s = session(LONG);
    let e = s
        .call(
            "probe",
            Some("hv01"),
            &json!({"fake": {"error": {
                "category": "ObjectNotFound",
                "message": "Hyper-V was unable to find a virtual machine with name \"x\".",
                "fullyQualifiedErrorId": "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
            }}}),
        )
        .await
        .expect_err("error record");
    let remote = e.remote().expect("a remote error");
    assert_eq!(remote.category, "ObjectNotFound");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.to_string().contains("on hv01"), "{e}");
    s.call("probe", None, &json!({}))
        .await
        .expect("same session");
    assert_eq!(s.generations().await, 1);
}

#[tokio::test]
async fn unknown_scripts_are_refused_before_anything_runs() {
    let s = session(LONG);
    let e = s
        .call("Remove-Item", None, &json!({}))
        .await
        .expect_err("unknown");
    assert!(matches!(e, PsError::UnknownScript(_)), "{e:?}");
    assert_eq!(s.generations().await, 0, "nothing was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_get_their_own_answer() {
    let s = std::sync::Arc::new(session(LONG));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = s.clone();
        set.spawn(async move {
            let r = s
                .call("probe", None, &json!({"i": i}))
                .await
                .expect("reply");
            (i, r["args"]["i"].as_i64())
        });
    }
    let mut seen = 0;
    while let Some(done) = set.join_next().await {
        let (i, got) = done.expect("task");
        assert_eq!(got, Some(i));
        seen += 1;
    }
    assert_eq!(seen, 24);
    assert_eq!(s.generations().await, 1);
}

#[tokio::test]
async fn an_abandoned_call_does_not_leak_its_answer_into_the_next() {
    let s = session(LONG);
    s.call("probe", None, &json!({})).await.expect("warm up");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(20),
        s.call(
            "probe",
            None,
            &json!({"fake": {"sleepMs": 300, "reply": "stale"}}),
        ),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the fake sleeps longer than the caller waits"
    );
    let r = s
        .call("probe", None, &json!({"mine": 1}))
        .await
        .expect("reply");
    assert_eq!(r["args"]["mine"], 1, "got {r}");
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(value(*c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test]
async fn the_shell_is_started_with_the_host_script_encoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.jsonl");
    let s = session_with(LONG, &[("FAKE_PWSH_LOG", log.to_str().unwrap())]);
    s.call("probe", None, &json!({})).await.expect("reply");
    s.close().await;
    let text = std::fs::read_to_string(&log).expect("log");
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let argv: Vec<String> = serde_json::from_value(first["argv"].clone()).unwrap();
    for flag in [
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ] {
        assert!(
            argv.iter().any(|a| a == flag),
            "{flag} missing from {argv:?}"
        );
    }
    let encoded = argv.last().unwrap();
    assert_eq!(encoded, &encode_command(HOST_SCRIPT));
    let bytes = decode_base64(encoded);
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(String::from_utf16(&units).unwrap(), HOST_SCRIPT);
}

#[tokio::test]
async fn credentials_reach_the_shell_only_through_its_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.jsonl");
    let mut c = config(LONG);
    c.env = vec![("FAKE_PWSH_LOG".into(), log.to_str().unwrap().into())];
    c.credential = Some(berth::provider::powershell::Credential {
        username: "CONTOSO\\berth".into(),
        password: "s3cr\"et".into(),
    });
    assert!(
        !format!("{c:?}").contains("s3cr"),
        "Debug must not show the password"
    );
    let s = Session::new(c, &[PROBE]);
    s.call("probe", None, &json!({})).await.expect("reply");
    s.close().await;
    let text = std::fs::read_to_string(&log).expect("log");
    let mut lines = text.lines();
    let argv = lines.next().unwrap();
    assert!(
        !argv.contains("s3cr"),
        "the password must not be on the command line"
    );
    let hello: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(hello["username"], "CONTOSO\\berth");
    assert_eq!(hello["password"], "s3cr\"et");
}
