//! The command line: arguments, rendering and exit codes.
//!
//! This is the edge of berth. It parses arguments with clap, calls the
//! library, renders results for people (miette diagnostics, tables) and for
//! machines (JSON), and maps outcomes onto the contract's exit codes.

pub mod apply;
pub mod backend;
pub mod help;
pub mod plan_html;
pub mod plan_output;
pub mod render;
pub mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::spec;

/// Exit code: success (for `plan`, also "in sync").
pub const EXIT_OK: u8 = 0;
/// Exit code: invalid input, provider failure, refused, or not converged.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: `plan --detailed-exitcode` found changes.
pub const EXIT_CHANGES: u8 = 2;
/// Exit code: interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// berth: declarative VM placement for Hyper-V fleets.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None, after_long_help = help::BERTH)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of the contract.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check documents and report every problem with its position.
    #[command(after_long_help = help::VALIDATE)]
    Validate {
        /// Files or directories of documents.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show what would change, and in which order, to reach the desired state.
    #[command(after_long_help = help::PLAN)]
    Plan {
        /// Files or directories of documents.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Provider: `sim:FLEET`, `hyperv` or `scvmm` (default: the Controller document).
        #[arg(long)]
        provider: Option<String>,
        /// Plan against a snapshot written by `berth observe` instead of a provider.
        #[arg(long, conflicts_with = "provider")]
        observed: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        output: PlanFormat,
        /// Also show a unified diff of the observed and the desired placement.
        #[arg(long)]
        diff: bool,
        /// Exit 2 when there are changes to make (0: in sync, 1: error).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Instead of the plan, show every candidate host of this VM (one
        /// with `hosts` or `hostGroup`) and what each lacks for it.
        #[arg(long, value_name = "VM")]
        explain: Option<String>,
    },
    /// Carry the plan out: move, throttle, retry and re-assert until the fleet converges.
    #[command(after_long_help = help::APPLY)]
    Apply {
        /// Files or directories of documents.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Provider: `sim:FLEET`, `hyperv` or `scvmm` (default: the Controller document).
        #[arg(long)]
        provider: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Largest plan to carry out, at least 1 (replaces policy.maxMovesPerApply for this run).
        #[arg(long, value_parser = parse_max_moves)]
        max_moves: Option<u32>,
        /// Output format of the final report.
        #[arg(long, value_enum, default_value_t = ApplyFormat::Text)]
        output: ApplyFormat,
        /// Start moves outside policy.moveWindows too (instead of waiting for the next window).
        #[arg(long)]
        ignore_windows: bool,
    },
    /// Keep the fleet converged as the documents in DIR change (runs until SIGTERM or Ctrl-C).
    #[command(after_long_help = help::WATCH)]
    Watch {
        /// The directory of documents (kept current by a git sync, for example).
        dir: PathBuf,
        /// Provider: `sim:FLEET`, `hyperv` or `scvmm` (default: the Controller document).
        #[arg(long)]
        provider: Option<String>,
        /// Full re-check period (replaces the Controller's resyncInterval), e.g. `60s`.
        #[arg(long, value_parser = watch::parse_duration_flag)]
        interval: Option<std::time::Duration>,
        /// Keep this JSON file current with each VM's condition (replaced atomically).
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// Serve /metrics (Prometheus) and /healthz on this address, e.g. `127.0.0.1:9184`.
        #[arg(long)]
        metrics_addr: Option<String>,
        /// Log format (to stderr; the level comes from RUST_LOG, default `info`).
        #[arg(long, value_enum, default_value_t = watch::LogFormat::Text)]
        log_format: watch::LogFormat,
        /// Quiet time that ends a burst of file changes (a save, a git pull).
        #[arg(long, value_parser = watch::parse_duration_flag, default_value = "100ms")]
        debounce: std::time::Duration,
        /// Longest wait for running migrations on SIGTERM or Ctrl-C.
        #[arg(long, value_parser = watch::parse_duration_flag, default_value = "5m")]
        shutdown_timeout: std::time::Duration,
    },
    /// Print the fleet as it is now, as a Placement document.
    #[command(after_long_help = help::OBSERVE)]
    Observe {
        /// Provider: `sim:FLEET`, `hyperv` or `scvmm`.
        #[arg(long)]
        provider: Option<String>,
        /// Documents holding a Controller (used when --provider is absent).
        paths: Vec<PathBuf>,
    },
    /// Manage simulated worlds.
    #[command(after_long_help = help::SIM)]
    Sim {
        /// What to do with the world.
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Write the JSON Schemas of the documents.
    #[command(after_long_help = help::SCHEMA)]
    Schema {
        /// Directory to write `placement.json`, `controller.json`, `fleet.json` to;
        /// without it, print them as one JSON object.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Output formats of `berth plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// For people (colour on a terminal).
    Text,
    /// For machines, as the contract fixes it.
    Json,
    /// For pull-request comments.
    Markdown,
    /// One self-contained HTML file: the actions, the diff and a timeline
    /// of the expected schedule (for CI artifacts).
    Html,
}

/// Output formats of `berth apply`: only those it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApplyFormat {
    /// For people: progress, then a summary.
    Text,
    /// For machines: the contract's report on stdout, progress on stderr.
    Json,
}

impl From<ApplyFormat> for PlanFormat {
    fn from(f: ApplyFormat) -> PlanFormat {
        match f {
            ApplyFormat::Text => PlanFormat::Text,
            ApplyFormat::Json => PlanFormat::Json,
        }
    }
}

/// Parses `--max-moves`: a whole number of at least 1, as the policy's
/// `maxMovesPerApply` (a plan of 0 moves needs no limit).
pub fn parse_max_moves(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err(
            "must be at least 1, as policy.maxMovesPerApply (to change nothing, use `berth plan`)"
                .to_string(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{text}` is not a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

/// Subcommands of `berth sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Forget a simulated world's state: the next run starts from the Fleet file.
    #[command(after_long_help = help::SIM)]
    Reset {
        /// The Fleet file.
        fleet: PathBuf,
    },
    /// Turn a snapshot written by `berth observe` into a Fleet document: a
    /// simulated copy of the real fleet to try changes on.
    Import {
        /// The snapshot (`berth observe > SNAPSHOT`).
        snapshot: PathBuf,
        /// Write the Fleet here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate { paths } => validate(&paths),
        Command::Schema { out } => schema(out),
        Command::Observe { provider, paths } => observe(provider.as_deref(), &paths),
        Command::Watch {
            dir,
            provider,
            interval,
            status_file,
            metrics_addr,
            log_format,
            debounce,
            shutdown_timeout,
        } => watch::run(watch::WatchArgs {
            dir,
            provider,
            interval,
            status_file,
            metrics_addr,
            log_format,
            debounce,
            shutdown_timeout,
        }),
        Command::Apply {
            paths,
            provider,
            auto_approve,
            max_moves,
            output,
            ignore_windows,
        } => apply::run(apply::ApplyArgs {
            paths,
            provider,
            auto_approve,
            max_moves,
            output: output.into(),
            ignore_windows,
        }),
        Command::Plan {
            paths,
            provider,
            observed,
            output,
            diff,
            detailed_exitcode,
            explain,
        } => plan_command(
            &paths,
            provider.as_deref(),
            observed.as_deref(),
            output,
            diff,
            detailed_exitcode,
            explain.as_deref(),
        ),
        Command::Sim {
            command: SimCommand::Import { snapshot, out },
        } => sim_import(&snapshot, out.as_deref()),
        Command::Sim {
            command: SimCommand::Reset { fleet },
        } => match crate::provider::sim::reset(&fleet) {
            Ok(true) => {
                println!("reset the simulated world of {}", fleet.display());
                EXIT_OK
            }
            Ok(false) => {
                println!("{} has no saved world; nothing to reset", fleet.display());
                EXIT_OK
            }
            Err(e) => {
                render::error(&e.to_string());
                EXIT_ERROR
            }
        },
    }
}

/// What `observe_for_plan` gives: the fleet and the provider's time, or
/// why not (with an invalid Fleet file's problems, shown by the caller).
type Looked =
    Result<(crate::provider::Observed, jiff::Timestamp), (Option<spec::SpecError>, String)>;

/// Observes the fleet through the chosen provider, or reads a snapshot;
/// with the provider's current time (the wall clock for a snapshot).
/// `early` is an observation of the simulator started while the spec was
/// loading (`EarlyLook`), used when the spec chose the same world.
fn observe_for_plan(
    desired: &spec::Desired,
    flag: Option<&str>,
    snapshot: Option<&std::path::Path>,
    early: EarlyLook,
) -> Looked {
    if let Some(path) = snapshot {
        let snap = spec::load(&[path.to_path_buf()]).map_err(|e| {
            (
                Some(e),
                format!("the snapshot {} is invalid", path.display()),
            )
        })?;
        let provider =
            crate::provider::snapshot::Snapshot::from_desired(&path.display().to_string(), &snap)
                .map_err(|m| (None, m))?;
        let choice = backend::Choice::Sim(PathBuf::new());
        return backend::block_on(&choice, async {
            let observed = crate::provider::Provider::observe(&provider)
                .await
                .map_err(|e| (None, e.to_string()))?;
            Ok((observed, crate::provider::Provider::now(&provider)))
        });
    }
    let choice = backend::choose(flag, Some(desired)).map_err(|m| (None, m))?;
    if let Some(looked) = early.take(&choice) {
        return looked;
    }
    observe_choice(&choice)
}

/// Opens the provider to read, observes it, and closes it.
fn observe_choice(choice: &backend::Choice) -> Looked {
    backend::block_on(choice, async {
        let provider = backend::open_to_read_quietly(choice)?;
        let observed = provider.observe().await.map_err(|e| (None, e.to_string()));
        let now = provider.now();
        provider.close().await.map_err(|e| (None, e.to_string()))?;
        Ok((observed?, now))
    })
}

/// A look at a simulated world taken on another thread while the spec
/// loads: reading a large Fleet file takes as long as reading the spec,
/// and neither needs the other until planning. Only the simulator is read
/// early (a local file, opened read-only); a real backend is asked only
/// once the spec is known to be valid. The look prints nothing: its
/// failure is shown only if it is used.
#[derive(Default)]
struct EarlyLook(Option<(backend::Choice, std::thread::JoinHandle<Looked>)>);

impl EarlyLook {
    /// Starts reading the simulated world `choice` names, once.
    fn start(&mut self, choice: backend::Choice) {
        if self.0.is_some() || !matches!(choice, backend::Choice::Sim(_)) {
            return;
        }
        let on_thread = choice.clone();
        if let Ok(handle) = std::thread::Builder::new()
            .name("berth-observe".into())
            .spawn(move || observe_choice(&on_thread))
        {
            self.0 = Some((choice, handle));
        }
    }

    /// The look, if one was started for `choice`; a look at another world
    /// (the final spec chose differently) is dropped.
    fn take(self, choice: &backend::Choice) -> Option<Looked> {
        let (started, handle) = self.0?;
        if &started != choice {
            return None;
        }
        handle.join().ok()
    }
}

fn plan_command(
    paths: &[PathBuf],
    flag: Option<&str>,
    snapshot: Option<&std::path::Path>,
    output: PlanFormat,
    with_diff: bool,
    detailed: bool,
    explain: Option<&str>,
) -> u8 {
    let mut early = EarlyLook::default();
    if snapshot.is_none()
        && let Some(f) = flag.filter(|f| f.starts_with("sim:"))
        && let Ok(choice) = backend::choose(Some(f), None)
    {
        early.start(choice);
    }
    let loaded = spec::load_notify(paths, &mut |controller| {
        if snapshot.is_none()
            && flag.is_none()
            && let spec::ProviderSpec::Sim { fleet } = &controller.provider
        {
            early.start(backend::Choice::Sim(fleet.clone()));
        }
    });
    let desired = match loaded {
        Ok(d) => d,
        Err(e) => {
            render::spec_error(&e);
            return EXIT_ERROR;
        }
    };
    let (observed, now) = match observe_for_plan(&desired, flag, snapshot, early) {
        Ok(o) => o,
        Err((problems, message)) => {
            if let Some(e) = problems {
                render::spec_error(&e);
            }
            render::error(&message);
            return EXIT_ERROR;
        }
    };
    if let Some(vm) = explain {
        return match plan_output::explain(&desired, &observed, vm, output) {
            Ok(text) => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
                EXIT_OK
            }
            Err(message) => {
                render::error(&message);
                EXIT_ERROR
            }
        };
    }
    let mut plan = crate::plan::plan(&desired, &observed);
    plan.move_window = crate::plan::window_status(&desired, now);
    let diff = with_diff.then(|| plan_output::diff(&desired, &observed, &plan));
    let text = match output {
        PlanFormat::Json => plan_output::json(&plan, diff.as_deref()) + "\n",
        PlanFormat::Markdown => plan_output::markdown(&plan, diff.as_deref()),
        PlanFormat::Html => plan_html::html(&desired, &observed, &plan),
        PlanFormat::Text => {
            use std::io::IsTerminal;
            let style = plan_output::Style::new(std::io::stdout().is_terminal());
            let mut t = plan_output::text(&plan, style);
            if let Some(d) = &diff {
                t.push('\n');
                t.push_str(d);
            }
            t
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if detailed && !plan.in_sync {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}

fn observe(flag: Option<&str>, paths: &[PathBuf]) -> u8 {
    if flag.is_none() && paths.is_empty() {
        render::error(
            "observe needs a provider: name one with `--provider sim:FLEET` (a Fleet file), \
             `--provider hyperv` or `--provider scvmm`, or give the path of a directory or file \
             holding a Controller document, as in `berth observe examples/lab`",
        );
        return EXIT_ERROR;
    }
    let desired = if paths.is_empty() {
        None
    } else {
        match spec::load(paths) {
            Ok(d) => Some(d),
            Err(e) => {
                render::spec_error(&e);
                return EXIT_ERROR;
            }
        }
    };
    let choice = match backend::choose(flag, desired.as_ref()) {
        Ok(c) => c,
        Err(message) => {
            render::error(&message);
            return EXIT_ERROR;
        }
    };
    let result = backend::block_on(&choice, async {
        let provider = backend::open_to_read(&choice)?;
        let observed = provider.observe().await.map_err(|e| e.to_string());
        provider.close().await.map_err(|e| e.to_string())?;
        observed
    });
    match result {
        Ok(observed) => {
            let doc = crate::provider::snapshot::to_document(&observed);
            match serde_saphyr::to_string(&doc) {
                Ok(text) => {
                    print!("{text}");
                    EXIT_OK
                }
                Err(e) => {
                    render::error(&format!("cannot write the observation: {e}"));
                    EXIT_ERROR
                }
            }
        }
        Err(message) => {
            render::error(&message);
            EXIT_ERROR
        }
    }
}

/// `berth sim import`: reads a snapshot, writes the Fleet of a simulated
/// world that starts as it.
fn sim_import(snapshot: &std::path::Path, out: Option<&std::path::Path>) -> u8 {
    let snap = match spec::load(&[snapshot.to_path_buf()]) {
        Ok(d) => d,
        Err(e) => {
            render::spec_error(&e);
            return EXIT_ERROR;
        }
    };
    let source = snapshot.display().to_string();
    let observed = match crate::provider::snapshot::Snapshot::from_desired(&source, &snap) {
        Ok(p) => p.into_observed(),
        Err(message) => {
            render::error(&message);
            return EXIT_ERROR;
        }
    };
    let doc = crate::provider::sim::import::fleet_document(&observed);
    let text = match serde_saphyr::to_string(&doc) {
        Ok(t) => {
            format!("# A simulated copy of the fleet observed in {source} (berth sim import).\n{t}")
        }
        Err(e) => {
            render::error(&format!("cannot write the Fleet: {e}"));
            return EXIT_ERROR;
        }
    };
    match out {
        None => {
            print!("{text}");
            EXIT_OK
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => {
                eprintln!(
                    "wrote {} ({} hosts, {} VMs)",
                    path.display(),
                    observed.hosts.len(),
                    observed.vms.len()
                );
                EXIT_OK
            }
            Err(e) => {
                render::error(&format!("cannot write {}: {e}", path.display()));
                EXIT_ERROR
            }
        },
    }
}

fn validate(paths: &[PathBuf]) -> u8 {
    match spec::load(paths) {
        Ok(desired) => {
            let n = plan_output::plural;
            let mut parts = vec![
                n(desired.hosts.len(), "host", "hosts"),
                n(desired.vms.len(), "VM", "VMs"),
                n(
                    desired.placement_documents,
                    "Placement document",
                    "Placement documents",
                ),
            ];
            if desired.controller.is_some() {
                parts.push("1 Controller".to_string());
            }
            if !desired.fleets.is_empty() {
                parts.push(n(desired.fleets.len(), "Fleet", "Fleets"));
            }
            println!("valid: {}", parts.join(", "));
            EXIT_OK
        }
        Err(e) => {
            render::spec_error(&e);
            EXIT_ERROR
        }
    }
}

fn schema(out: Option<PathBuf>) -> u8 {
    let schemas = spec::schemas();
    match out {
        None => {
            let map: serde_json::Map<String, serde_json::Value> = schemas
                .into_iter()
                .map(|(name, v)| (name.to_string(), v))
                .collect();
            let text = serde_json::to_string_pretty(&map).unwrap_or_default();
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
            EXIT_OK
        }
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                render::error(&format!("cannot create {}: {e}", dir.display()));
                return EXIT_ERROR;
            }
            for (name, value) in schemas {
                let path = dir.join(name);
                let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
                if let Err(e) = std::fs::write(&path, text) {
                    render::error(&format!("cannot write {}: {e}", path.display()));
                    return EXIT_ERROR;
                }
                println!("wrote {}", path.display());
            }
            EXIT_OK
        }
    }
}
