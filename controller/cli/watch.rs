//! `berth watch`: the reconcile loop as a long-running process.
//!
//! Wires the pieces together: logging (text or JSON), the provider (opened
//! once for the whole process; the simulator runs on the wall clock here),
//! the file watcher, the metrics endpoint, SIGTERM and Ctrl-C, and the loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::reconcile::{self, Metrics, Reconciler, Settings, Signal};
use crate::spec::{self, human_seconds};

use super::{EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, backend, render};

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event (for log shippers).
    Json,
}

/// Arguments of `berth watch`.
#[derive(Debug, Clone)]
pub struct WatchArgs {
    /// The directory of documents.
    pub dir: PathBuf,
    /// `--provider`.
    pub provider: Option<String>,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--status-file`.
    pub status_file: Option<PathBuf>,
    /// `--metrics-addr`.
    pub metrics_addr: Option<String>,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--debounce`.
    pub debounce: Duration,
    /// `--shutdown-timeout`.
    pub shutdown_timeout: Duration,
}

/// Parses a duration flag (`90s`, `5m`, `250ms`).
pub fn parse_duration_flag(text: &str) -> Result<Duration, String> {
    spec::parse_duration(text)
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A subscriber set earlier (tests) wins; that is fine.
    // Colour only on a terminal without NO_COLOR; JSON never.
    let _ = match format {
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(render::colour_stderr())
            .with_target(false)
            .try_init(),
    };
}

/// Runs `berth watch`; returns the exit code.
pub fn run(args: WatchArgs) -> u8 {
    init_logging(args.log_format);
    // The provider comes from --provider or the Controller document; both
    // are settled once, at start.
    let initial = spec::load(std::slice::from_ref(&args.dir));
    let choice = match (&initial, args.provider.as_deref()) {
        (Ok(desired), flag) => backend::choose(flag, Some(desired)),
        (Err(_), Some(flag)) => backend::choose(Some(flag), None),
        (Err(e), None) => {
            render::spec_error(e);
            render::error(&format!(
                "cannot start watching {}: the documents are invalid and no --provider was given, so there is no provider to talk to",
                args.dir.display()
            ));
            return EXIT_ERROR;
        }
    };
    let choice = match choice {
        Ok(c) => c,
        Err(m) => {
            render::error(&m);
            return EXIT_ERROR;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            render::error(&format!("cannot start the async runtime: {e}"));
            return EXIT_ERROR;
        }
    };
    // Not backend::block_on: that pauses the clock for the simulator, and
    // under watch simulated time follows the wall clock.
    runtime.block_on(watch(args, choice))
}

async fn watch(args: WatchArgs, choice: backend::Choice) -> u8 {
    let provider = match backend::open(&choice) {
        Ok(p) => p,
        Err(m) => {
            render::error(&m);
            return EXIT_ERROR;
        }
    };
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = &args.metrics_addr {
        match reconcile::metrics::bind(addr).await {
            Ok(listener) => {
                let shown = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| addr.clone());
                tracing::info!("serving /metrics and /healthz on http://{shown}");
                tokio::spawn(reconcile::metrics::serve(listener, metrics.clone()));
            }
            Err(e) => {
                render::error(&format!("cannot listen on {addr} for metrics: {e}"));
                return EXIT_ERROR;
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let _watcher = match reconcile::watcher::watch(&args.dir, args.debounce, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(
                "cannot watch {} for changes ({e}); changes are picked up at each resync only",
                args.dir.display()
            );
            None
        }
    };
    spawn_signal_handler(tx);
    let settings = Settings {
        interval: args.interval,
        status_file: args.status_file.clone(),
        shutdown_timeout: args.shutdown_timeout,
        ..Settings::new(args.dir.clone())
    };
    tracing::info!(
        "watching {} with {}{}",
        args.dir.display(),
        provider.describe(),
        match args.interval {
            Some(i) => format!(", resync every {}", human_seconds(i.as_secs_f64())),
            None => String::new(),
        }
    );
    let summary = Reconciler::new(settings, provider, metrics).run(rx).await;
    if summary.abandoned.is_empty() {
        tracing::info!("berth watch stopped after {} passes", summary.passes);
    }
    EXIT_OK
}

/// First SIGTERM or SIGINT: shut down gracefully. A second one exits at once
/// with 130, naming nothing more (the log already lists running moves).
fn spawn_signal_handler(tx: mpsc::UnboundedSender<Signal>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    None
                }
            };
        let mut seen = 0;
        loop {
            #[cfg(unix)]
            let name = tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_err() { return; }
                    "SIGINT"
                }
                Some(()) = async {
                    match term.as_mut() {
                        Some(t) => t.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGTERM",
            };
            #[cfg(not(unix))]
            let name = {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                "Ctrl-C"
            };
            seen += 1;
            if seen == 1 {
                tracing::info!(
                    "{name}: shutting down; running migrations finish first ({name} again to exit now)"
                );
                let _ = tx.send(Signal::Shutdown);
            } else {
                tracing::warn!("{name} again: exiting now");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        }
    });
}
