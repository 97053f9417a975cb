//! The PowerShell transport shared by the Hyper-V and SCVMM backends.
//!
//! One long-lived PowerShell process runs [`HOST_SCRIPT`] (passed with
//! `-EncodedCommand`) and speaks a line protocol on its standard streams:
//!
//! 1. berth writes a hello: a per-session random `marker`, the transport,
//!    and every script's text, once (`{"berth":1,"marker":..,"scripts":{..}}`);
//!    the host answers `<marker>{"id":0,"ok":true,"result":{"ready":true,..}}`.
//! 2. Each call is one request line `{"id":N,"script":"name","target":..,"args":{..}}`
//!    answered by one line `<marker>{"id":N,"ok":true,"result":..}` or
//!    `<marker>{"id":N,"ok":false,"error":{"category":..,"message":..,"fullyQualifiedErrorId":..}}`.
//!
//! Values only ever travel inside `args`, as JSON, and reach the scripts as
//! one parameter (`$a`): the script text is a constant of the build. Every
//! request is written as pure ASCII (other characters are `\u` escapes), so
//! a name can never end a line or depend on the console's code page.
//!
//! Only complete lines that start with the marker are replies; everything
//! else a cmdlet prints is logged and skipped. A reply is acted on only when
//! its line is complete, parses, and carries the id that was asked for. A
//! call that times out, a crash, or a malformed reply kills the process (its
//! next answer could not be trusted); the next call starts a fresh one.
//! Calls are serialised by an async mutex, so concurrent callers are safe.

mod errors;
pub mod scripts;

pub use errors::{PsError, RemoteError, classify};

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::spec::{ShellSettings, Transport};

/// The host script every session runs.
pub const HOST_SCRIPT: &str = include_str!("host.ps1");

/// Environment variable holding an explicit user name for remote sessions.
pub const USERNAME_ENV: &str = "BERTH_PS_USERNAME";
/// Environment variable holding the password that goes with it.
pub const PASSWORD_ENV: &str = "BERTH_PS_PASSWORD";

/// Longest reply line berth reads (64 MiB): a bigger one is an error.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// A script berth can run: a name and its constant text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// The name requests use.
    pub name: &'static str,
    /// The PowerShell text.
    pub text: &'static str,
}

/// Explicit credentials for remote sessions, from the environment only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name (`DOMAIN\user` or `user@domain`).
    pub username: String,
    /// Password; never logged, never written anywhere but the shell's stdin.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// Reads [`USERNAME_ENV`] and [`PASSWORD_ENV`]; `None` unless the user
    /// name is set (integrated authentication is the default).
    pub fn from_env() -> Option<Credential> {
        let username = std::env::var(USERNAME_ENV).ok().filter(|u| !u.is_empty())?;
        let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
        Some(Credential { username, password })
    }
}

/// How to start and talk to PowerShell.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The executable (`pwsh`, `powershell.exe`, or a full path).
    pub program: String,
    /// Arguments before `-EncodedCommand`; the defaults suit pwsh and
    /// Windows PowerShell alike.
    pub args: Vec<String>,
    /// How scripts reach hosts.
    pub transport: Transport,
    /// Time limit of one call, starting the process included.
    pub call_timeout: Duration,
    /// Extra environment variables for the process (tests use them).
    pub env: Vec<(String, String)>,
    /// Explicit credentials for remote sessions.
    pub credential: Option<Credential>,
}

impl SessionConfig {
    /// A configuration for `program` with the default arguments.
    pub fn new(program: impl Into<String>, transport: Transport, call_timeout: Duration) -> Self {
        SessionConfig {
            program: program.into(),
            args: [
                "-NoLogo",
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            transport,
            call_timeout,
            env: Vec::new(),
            credential: None,
        }
    }

    /// The configuration the Controller document's shell settings describe,
    /// with credentials from the environment.
    pub fn from_settings(settings: &ShellSettings) -> Self {
        let mut c = SessionConfig::new(
            settings.shell.clone(),
            settings.transport,
            settings.call_timeout,
        );
        c.credential = Credential::from_env();
        c
    }

    /// The full argument list, ending with the encoded host script.
    pub fn command_line(&self) -> Vec<String> {
        let mut args = self.args.clone();
        args.push("-EncodedCommand".into());
        args.push(encode_command(HOST_SCRIPT));
        args
    }
}

/// `-EncodedCommand`'s format: base64 of the UTF-16LE text.
pub fn encode_command(text: &str) -> String {
    let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes JSON as pure ASCII: every other character becomes a `\u` escape
/// (surrogate pairs beyond the BMP). serde_json already escapes control
/// characters, so the result is one line of printable ASCII.
pub fn to_ascii_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(value)?;
    if text.is_ascii() {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    Ok(out)
}

/// What the host reported about itself at the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct HostInfo {
    /// `$PSVersionTable.PSVersion`.
    pub version: String,
    /// `$PSVersionTable.PSEdition` (`Core` for pwsh, `Desktop` for Windows PowerShell).
    pub edition: String,
}

#[derive(Serialize)]
struct Hello<'a> {
    berth: u32,
    marker: &'a str,
    transport: &'a str,
    scripts: serde_json::Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

#[derive(Serialize)]
struct Request<'a> {
    id: u64,
    script: &'a str,
    target: Option<&'a str>,
    args: &'a Value,
}

#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<RemoteError>,
}

/// The last lines a process wrote to standard error.
#[derive(Default)]
struct StderrTail {
    lines: VecDeque<String>,
}

const STDERR_LINES: usize = 20;
const STDERR_LINE_CHARS: usize = 500;

impl StderrTail {
    fn push(&mut self, line: &str) {
        let mut line: String = line.trim_end().chars().take(STDERR_LINE_CHARS).collect();
        if line.is_empty() {
            return;
        }
        if self.lines.len() == STDERR_LINES {
            self.lines.pop_front();
        }
        line.shrink_to_fit();
        self.lines.push_back(line);
    }

    fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

/// One running PowerShell process.
struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Bytes of a reply line read so far (kept across cancelled calls).
    line: Vec<u8>,
    stderr: Arc<std::sync::Mutex<StderrTail>>,
    stderr_task: Option<JoinHandle<()>>,
    marker: String,
    generation: u64,
    /// A request was being written when its caller gave up: the stream
    /// may hold half a line, so the process must not be used again.
    torn_write: bool,
    info: HostInfo,
}

enum LineRead {
    Line(Vec<u8>),
    Eof { partial: bool },
}

impl Process {
    /// Reads one complete line (without its `\n`); cancellation-safe: bytes
    /// already read stay in `self.line`.
    async fn read_line(&mut self) -> std::io::Result<LineRead> {
        loop {
            let available = self.stdout.fill_buf().await?;
            if available.is_empty() {
                let partial = !self.line.is_empty();
                return Ok(LineRead::Eof { partial });
            }
            match available.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&available[..i]);
                    self.stdout.consume(i + 1);
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(LineRead::Line(line));
                }
                None => {
                    let n = available.len();
                    self.line.extend_from_slice(available);
                    self.stdout.consume(n);
                    if self.line.len() > MAX_LINE_BYTES {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("a line longer than {MAX_LINE_BYTES} bytes"),
                        ));
                    }
                }
            }
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().map(|t| t.text()).unwrap_or_default()
    }

    /// Waits (briefly) for the exit status and the rest of stderr after
    /// standard output closed.
    async fn exit_report(&mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        match status {
            Ok(Ok(s)) => describe_status(s),
            Ok(Err(e)) => format!("exit status unknown: {e}"),
            Err(_) => "standard output closed, process still running".to_string(),
        }
    }

    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

fn describe_status(s: ExitStatus) -> String {
    match s.code() {
        Some(0) => "exit code 0".to_string(),
        Some(c) => format!("exit code {c}"),
        None => format!("{s}"),
    }
}

struct State {
    process: Option<Process>,
    next_id: u64,
    generations: u64,
}

/// A long-lived PowerShell session: start it lazily, call scripts, restart
/// it after failures.
pub struct Session {
    config: SessionConfig,
    scripts: Vec<Script>,
    state: tokio::sync::Mutex<State>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("program", &self.config.program)
            .field("transport", &self.config.transport)
            .finish_non_exhaustive()
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Local => "local",
        Transport::WinRm => "winrm",
        Transport::Ssh => "ssh",
    }
}

fn random_marker() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a);
    format!("@@berth-{:016x}{:016x}@@", a, h2.finish())
}

impl Session {
    /// A session that will run `scripts`; nothing starts until the first call.
    pub fn new(config: SessionConfig, scripts: &[Script]) -> Session {
        Session {
            config,
            scripts: scripts.to_vec(),
            state: tokio::sync::Mutex::new(State {
                process: None,
                next_id: 1,
                generations: 0,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The scripts this session loads.
    pub fn scripts(&self) -> &[Script] {
        &self.scripts
    }

    /// Runs `script` with `args` against `target` (a host reached through
    /// the transport; `None` runs in the local process).
    pub async fn call(
        &self,
        script: &str,
        target: Option<&str>,
        args: &Value,
    ) -> Result<Value, PsError> {
        self.call_tagged(script, target, args, None)
            .await
            .map(|(v, _)| v.unwrap_or(Value::Null))
    }

    /// Like [`call`](Self::call), and tells which process generation ran
    /// it. With `only_in = Some(g)`, runs only if process generation `g` is
    /// still the live one, and returns `None` otherwise (what a job started
    /// in that process needs: a new process does not know it).
    pub async fn call_tagged(
        &self,
        script: &str,
        target: Option<&str>,
        args: &Value,
        only_in: Option<u64>,
    ) -> Result<(Option<Value>, u64), PsError> {
        self.call_inner(script, target, args, only_in, self.config.call_timeout)
            .await
    }

    /// Like [`call`](Self::call) with its own time limit instead of the
    /// configured one.
    pub async fn call_within(
        &self,
        script: &str,
        target: Option<&str>,
        args: &Value,
        timeout: Duration,
    ) -> Result<Value, PsError> {
        self.call_inner(script, target, args, None, timeout)
            .await
            .map(|(v, _)| v.unwrap_or(Value::Null))
    }

    async fn call_inner(
        &self,
        script: &str,
        target: Option<&str>,
        args: &Value,
        only_in: Option<u64>,
        timeout: Duration,
    ) -> Result<(Option<Value>, u64), PsError> {
        if !self.scripts.iter().any(|s| s.name == script) {
            return Err(PsError::UnknownScript(script.to_string()));
        }
        let mut state = self.state.lock().await;
        if state.process.as_ref().is_some_and(|p| p.torn_write)
            && let Some(p) = state.process.take()
        {
            tracing::debug!("discarding a PowerShell session left mid-request");
            p.kill().await;
        }
        if let Some(g) = only_in
            && state.process.as_ref().map(|p| p.generation) != Some(g)
        {
            return Ok((None, state.generations));
        }
        let deadline = Instant::now() + timeout;
        let outcome =
            tokio::time::timeout_at(deadline, self.call_locked(&mut state, script, target, args))
                .await;
        let generation = state.process.as_ref().map_or(0, |p| p.generation);
        match outcome {
            Ok(Ok(value)) => Ok((Some(value), generation)),
            Ok(Err(e)) => {
                if !matches!(e, PsError::Remote { .. })
                    && let Some(p) = state.process.take()
                {
                    p.kill().await;
                }
                Err(e)
            }
            Err(_) => {
                if let Some(p) = state.process.take() {
                    tracing::warn!(
                        script,
                        "PowerShell did not answer within {}s; stopping the session",
                        timeout.as_secs_f64()
                    );
                    p.kill().await;
                }
                Err(PsError::Timeout {
                    script: script.to_string(),
                    seconds: timeout.as_secs_f64(),
                })
            }
        }
    }

    async fn call_locked(
        &self,
        state: &mut State,
        script: &str,
        target: Option<&str>,
        args: &Value,
    ) -> Result<Value, PsError> {
        if state.process.is_none() {
            state.generations += 1;
            let generation = state.generations;
            state.process = Some(self.start(script, generation).await?);
        }
        let id = state.next_id;
        state.next_id += 1;
        let Some(process) = state.process.as_mut() else {
            return Err(PsError::Protocol {
                script: script.to_string(),
                detail: "no process".into(),
            });
        };
        let request = Request {
            id,
            script,
            target,
            args,
        };
        let mut line = to_ascii_json(&request).map_err(|e| PsError::Protocol {
            script: script.to_string(),
            detail: format!("cannot encode the request: {e}"),
        })?;
        line.push('\n');
        process.torn_write = true;
        if let Err(e) = process.stdin.write_all(line.as_bytes()).await {
            process.torn_write = false;
            return Err(self.gone(process, script, &e.to_string()).await);
        }
        if let Err(e) = process.stdin.flush().await {
            process.torn_write = false;
            return Err(self.gone(process, script, &e.to_string()).await);
        }
        process.torn_write = false;
        let reply = read_reply(process, script, id).await?;
        if reply.ok {
            Ok(reply.result)
        } else {
            Err(PsError::Remote {
                script: script.to_string(),
                target: target.map(str::to_string),
                error: reply.error.unwrap_or_else(|| RemoteError {
                    message: "the script failed without an error record".into(),
                    ..RemoteError::default()
                }),
            })
        }
    }

    /// Builds the error for a process whose pipes broke.
    async fn gone(&self, process: &mut Process, script: &str, why: &str) -> PsError {
        let status = process.exit_report().await;
        let mut stderr = process.stderr_text();
        if stderr.is_empty() {
            stderr = why.to_string();
        }
        PsError::Exited {
            script: script.to_string(),
            status,
            partial: false,
            stderr,
        }
    }

    async fn start(&self, script: &str, generation: u64) -> Result<Process, PsError> {
        let mut cmd = Command::new(&self.config.program);
        cmd.args(self.config.command_line())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| PsError::Spawn {
            program: self.config.program.clone(),
            message: e.to_string(),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.start_kill();
            return Err(PsError::Spawn {
                program: self.config.program.clone(),
                message: "its standard streams could not be opened".into(),
            });
        };
        let tail = Arc::new(std::sync::Mutex::new(StderrTail::default()));
        let stderr_task = tokio::spawn(collect_stderr(stderr, tail.clone()));
        let marker = random_marker();
        let mut process = Process {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            line: Vec::new(),
            stderr: tail,
            stderr_task: Some(stderr_task),
            marker,
            generation,
            torn_write: false,
            info: HostInfo::default(),
        };
        let mut scripts = serde_json::Map::new();
        for s in &self.scripts {
            scripts.insert(s.name.to_string(), Value::String(s.text.to_string()));
        }
        let hello = Hello {
            berth: 1,
            marker: &process.marker,
            transport: transport_name(self.config.transport),
            scripts,
            username: self.config.credential.as_ref().map(|c| c.username.as_str()),
            password: self.config.credential.as_ref().map(|c| c.password.as_str()),
        };
        let mut line = to_ascii_json(&hello).map_err(|e| PsError::Protocol {
            script: script.to_string(),
            detail: format!("cannot encode the hello: {e}"),
        })?;
        line.push('\n');
        let written = match process.stdin.write_all(line.as_bytes()).await {
            Ok(()) => process.stdin.flush().await,
            Err(e) => Err(e),
        };
        drop(line);
        if let Err(e) = written {
            let err = self.gone(&mut process, script, &e.to_string()).await;
            process.kill().await;
            return Err(err);
        }
        match read_reply(&mut process, script, 0).await {
            Ok(reply) if reply.ok => {
                process.info = serde_json::from_value(reply.result).unwrap_or_default();
                tracing::debug!(
                    program = %self.config.program,
                    version = %process.info.version,
                    edition = %process.info.edition,
                    generation,
                    "PowerShell session started"
                );
                Ok(process)
            }
            Ok(reply) => {
                process.kill().await;
                Err(PsError::Protocol {
                    script: script.to_string(),
                    detail: format!(
                        "the host refused berth's hello: {}",
                        reply.error.unwrap_or_default()
                    ),
                })
            }
            Err(e) => {
                process.kill().await;
                Err(e)
            }
        }
    }

    /// What the live process reported at its start, if one is running.
    pub async fn host_info(&self) -> Option<HostInfo> {
        let state = self.state.lock().await;
        state.process.as_ref().map(|p| p.info.clone())
    }

    /// How many processes this session has started.
    pub async fn generations(&self) -> u64 {
        self.state.lock().await.generations
    }

    /// Ends the process: closes its input (the host script then returns and
    /// closes its remote sessions) and kills it if it does not exit soon.
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        if let Some(mut p) = state.process.take() {
            let _ = p.stdin.shutdown().await;
            let Process {
                mut child,
                stdin,
                stderr_task,
                ..
            } = p;
            drop(stdin);
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            }
            if let Some(t) = stderr_task {
                t.abort();
            }
        }
    }
}

async fn collect_stderr(
    stderr: tokio::process::ChildStderr,
    tail: Arc<std::sync::Mutex<StderrTail>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bound each line: read at most 64 KiB of one line into memory.
        match (&mut reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                tracing::debug!(target: "berth::powershell", "stderr: {}", line.trim_end());
                if let Ok(mut t) = tail.lock() {
                    t.push(&line);
                }
            }
        }
    }
}

/// Reads lines until the marked reply to `id`; skips stray output and
/// replies to earlier (abandoned) requests.
async fn read_reply(process: &mut Process, script: &str, id: u64) -> Result<Reply, PsError> {
    loop {
        let line = process.read_line().await.map_err(|e| PsError::Protocol {
            script: script.to_string(),
            detail: format!("unreadable output: {e}"),
        })?;
        let bytes = match line {
            LineRead::Line(bytes) => bytes,
            LineRead::Eof { partial } => {
                let status = process.exit_report().await;
                return Err(PsError::Exited {
                    script: script.to_string(),
                    status,
                    partial,
                    stderr: process.stderr_text(),
                });
            }
        };
        let Some(body) = bytes.strip_prefix(process.marker.as_bytes()) else {
            let text = String::from_utf8_lossy(&bytes);
            let shown: String = text.chars().take(200).collect();
            tracing::debug!(target: "berth::powershell", script, "output that is not a reply: {shown}");
            continue;
        };
        let reply: Reply = serde_json::from_slice(body).map_err(|e| PsError::Protocol {
            script: script.to_string(),
            detail: format!("a reply that is not valid JSON ({e})"),
        })?;
        match reply.id {
            Some(got) if got == id => {
                if !reply.ok && reply.error.is_none() {
                    return Err(PsError::Protocol {
                        script: script.to_string(),
                        detail: "a failure reply without an error".into(),
                    });
                }
                return Ok(reply);
            }
            Some(got) if got < id => {
                tracing::debug!(script, got, "skipping the reply to an abandoned request");
            }
            other => {
                let detail = match other {
                    Some(got) => format!("a reply to request {got} while waiting for {id}"),
                    None => match reply.error {
                        Some(e) => format!("the host could not read a request: {e}"),
                        None => "a reply without an id".into(),
                    },
                };
                return Err(PsError::Protocol {
                    script: script.to_string(),
                    detail,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // PowerShell's documented example: "dir" as UTF-16LE.
        assert_eq!(encode_command("dir"), "ZABpAHIA");
    }

    #[test]
    fn ascii_json_escapes_everything_else() {
        let v = serde_json::json!({"n": "é\u{1F600}\n\u{2028}"});
        let s = to_ascii_json(&v).unwrap();
        assert!(s.is_ascii());
        assert!(!s.contains('\n'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    fn err(category: &str, fqid: &str, message: &str) -> RemoteError {
        RemoteError {
            category: category.into(),
            fully_qualified_error_id: fqid.into(),
            message: message.into(),
            ..RemoteError::default()
        }
    }

    #[test]
    fn classification_follows_the_documented_table() {
        use crate::provider::ErrorClass::*;
        use crate::provider::WaitReason;
        let cases = [
            (
                err(
                    "InvalidOperation",
                    "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM",
                    "The operation cannot be performed while the virtual machine is being backed up.",
                ),
                Wait(WaitReason::BackupInProgress),
            ),
            (
                err(
                    "OpenError",
                    "PSSessionOpenFailed",
                    "Connecting to remote server hv09 failed",
                ),
                Unreachable,
            ),
            (
                err(
                    "NotSpecified",
                    "RemoteException",
                    "WinRM cannot complete the operation.",
                ),
                Unreachable,
            ),
            (err("ResourceBusy", "x", "busy"), Wait(WaitReason::HostBusy)),
            (
                err(
                    "InvalidOperation",
                    "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM",
                    "Virtual machine migration operation failed: the operation cannot be performed while the object is in its current state.",
                ),
                Wait(WaitReason::HostBusy),
            ),
            (
                err(
                    "ObjectNotFound",
                    "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
                    "Hyper-V was unable to find a virtual machine with name \"x\".",
                ),
                Permanent,
            ),
            (
                err(
                    "InvalidOperation",
                    "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM",
                    "The virtual machine is using processor-specific features not supported on physical computer 'hv02'.",
                ),
                Permanent,
            ),
            (
                err(
                    "InvalidOperation",
                    "OperationFailed",
                    "Could not find a virtual switch named 'Prod'.",
                ),
                Permanent,
            ),
            (
                err(
                    "InvalidOperation",
                    "OperationFailed",
                    "Not enough memory in the system to start the virtual machine.",
                ),
                Permanent,
            ),
            (
                err(
                    "NotSpecified",
                    "801,Microsoft.SystemCenter.VirtualMachineManager.Cmdlets.MoveVmCmdlet",
                    "VMM cannot find the object.",
                ),
                Permanent,
            ),
            (
                err(
                    "NotSpecified",
                    "1730,Microsoft.SystemCenter.VirtualMachineManager.Cmdlets.MoveVmCmdlet",
                    "The selected action could not be completed.",
                ),
                Wait(WaitReason::HostBusy),
            ),
            (
                err(
                    "NotSpecified",
                    "OperationFailed",
                    "The migration was cancelled by a network glitch.",
                ),
                Retryable,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(classify(&e), want, "{e:?}");
        }
    }
}
