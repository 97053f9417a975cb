//! `berth apply`: confirm, execute with progress, report, exit.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::execute::{self, Control, Event, Observer, Options, Report};
use crate::spec::{self, human_seconds};

use super::{EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, PlanFormat, backend, plan_output, render};

/// How progress is shown.
enum Display {
    /// Bars on a terminal.
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        lines: Mutex<HashMap<String, ProgressBar>>,
    },
    /// One line per event, for logs and pipes.
    Lines { to_stderr: bool },
}

/// Shows executor events to a person.
struct Progress {
    display: Display,
    start: Instant,
}

impl Progress {
    fn new(bars: bool, to_stderr: bool) -> Progress {
        let display = if bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} moves {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix("apply");
            Display::Bars {
                multi,
                overall,
                lines: Mutex::new(HashMap::new()),
            }
        } else {
            Display::Lines { to_stderr }
        };
        Progress {
            display,
            start: Instant::now(),
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>7}]", human_seconds(self.start.elapsed().as_secs_f64()))
    }

    fn line(&self, text: &str) {
        let text = crate::spec::escape_controls(text);
        match &self.display {
            Display::Bars { multi, .. } => {
                let _ = multi.println(format!("{} {text}", self.stamp()));
            }
            Display::Lines { to_stderr: true } => eprintln!("{} {text}", self.stamp()),
            Display::Lines { to_stderr: false } => println!("{} {text}", self.stamp()),
        }
    }

    fn finish(&self) {
        if let Display::Bars { overall, multi, .. } = &self.display {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: &Event) {
        match event {
            Event::Planned { round, plan } => {
                if let Display::Bars { overall, .. } = &self.display {
                    overall.set_length(overall.position() + plan.moves() as u64);
                }
                if *round > 1 {
                    self.line(&format!("re-planned: {}", plan_output::summary(plan)));
                }
            }
            Event::MoveStarted {
                vm,
                from,
                to,
                kind,
                attempt,
                estimate,
            } => {
                let again = if *attempt > 1 {
                    format!(", attempt {attempt}")
                } else {
                    String::new()
                };
                let text = format!(
                    "move {vm}: {from} -> {to} ({kind}, ~{}{again})",
                    human_seconds(*estimate)
                );
                if let Display::Bars { overall, .. } = &self.display {
                    overall.set_message("");
                }
                self.line(&format!("{text} started"));
                if let Display::Bars { multi, lines, .. } = &self.display {
                    let pb = multi.add(ProgressBar::new_spinner());
                    pb.set_message(format!("{text}, running since {}", self.stamp()));
                    if let Ok(mut l) = lines.lock() {
                        l.insert(vm.clone(), pb);
                    }
                }
            }
            Event::MoveFinished {
                vm,
                from,
                to,
                error,
            } => {
                if let Display::Bars { lines, overall, .. } = &self.display {
                    if let Some(pb) = lines.lock().ok().and_then(|mut l| l.remove(vm)) {
                        pb.finish_and_clear();
                    }
                    if error.is_none() {
                        overall.inc(1);
                    }
                }
                match error {
                    None => self.line(&format!("move {vm}: {from} -> {to} done")),
                    Some(e) => self.line(&format!("move {vm}: {from} -> {to} failed: {e}")),
                }
            }
            Event::Waiting { vm, why } => self.line(&format!("wait {vm}: {why}")),
            Event::AdapterFixed { vm, adapter, what } => {
                self.line(&format!("fix  {vm} / {adapter}: {what}"))
            }
            Event::Blocked { vm, reason } => self.line(&format!("blocked {vm}: {reason}")),
            Event::Replanning { why } => self.line(&format!("re-plan: {why}")),
            Event::WindowWait {
                why,
                remaining,
                vms,
            } => {
                let left = remaining.map_or(String::new(), |d| {
                    format!(" (in {})", human_seconds(d.as_secs_f64()))
                });
                if let Display::Bars { overall, .. } = &self.display {
                    overall.set_message(format!("{why}{left}"));
                }
                if !vms.is_empty() {
                    self.line(&format!(
                        "wait: {why}{left}; {} wait{}, fixes go ahead",
                        plan_output::plural(vms.len(), "move", "moves"),
                        if vms.len() == 1 { "s" } else { "" }
                    ));
                }
            }
        }
    }
}

/// Arguments of `berth apply`.
pub struct ApplyArgs {
    /// Files or directories of documents.
    pub paths: Vec<PathBuf>,
    /// `--provider`.
    pub provider: Option<String>,
    /// `--auto-approve`.
    pub auto_approve: bool,
    /// `--max-moves`.
    pub max_moves: Option<u32>,
    /// `--output`.
    pub output: PlanFormat,
    /// `--ignore-windows`.
    pub ignore_windows: bool,
}

fn confirm() -> bool {
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

/// Runs `berth apply`; returns the exit code.
pub fn run(args: ApplyArgs) -> u8 {
    let desired = match spec::load(&args.paths) {
        Ok(d) => d,
        Err(e) => {
            render::spec_error(&e);
            return EXIT_ERROR;
        }
    };
    let choice = match backend::choose(args.provider.as_deref(), Some(&desired)) {
        Ok(c) => c,
        Err(m) => {
            render::error(&m);
            return EXIT_ERROR;
        }
    };
    let json = args.output == PlanFormat::Json;
    // The simulator's time is not the wall clock's: the summary shows both.
    let wall = matches!(choice, backend::Choice::Sim(_)).then(std::time::Instant::now);
    backend::block_on(&choice, async {
        let provider = match backend::open(&choice) {
            Ok(p) => p,
            Err(m) => {
                render::error(&m);
                return EXIT_ERROR;
            }
        };
        let code = apply(&desired, provider.clone(), &args, json, wall).await;
        if let Err(e) = provider.close().await {
            render::error(&format!("could not close the provider: {e}"));
            return EXIT_ERROR;
        }
        code
    })
}

async fn apply(
    desired: &spec::Desired,
    provider: Arc<dyn crate::provider::Provider>,
    args: &ApplyArgs,
    json: bool,
    wall: Option<std::time::Instant>,
) -> u8 {
    let observed = match provider.observe().await {
        Ok(o) => o,
        Err(e) => {
            render::error(&format!("cannot observe the fleet: {e}"));
            return EXIT_ERROR;
        }
    };
    let mut plan = crate::plan::plan(desired, &observed);
    if !args.ignore_windows {
        plan.move_window = crate::plan::window_status(desired, provider.now());
    }
    let say = |text: &str| {
        if json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    };
    let style = plan_output::Style::new(!json && std::io::stdout().is_terminal());
    say(&plan_output::text(&plan, style));
    if !plan.has_changes() && plan.in_flight.is_empty() {
        let report = Report {
            format_version: 1,
            converged: plan.in_sync,
            blocked: plan.blocked.clone(),
            ..Report::default()
        };
        return finish(&report, json, None, wall);
    }
    if desired.policy.suspend {
        render::error("policy.suspend is true: berth observes and reports, and changes nothing");
        return EXIT_ERROR;
    }
    let limit = args.max_moves.unwrap_or(desired.policy.max_moves_per_apply);
    if plan.moves() as u32 > limit {
        render::error(&format!(
            "the plan has {} moves, more than the limit of {limit} ({}); nothing was changed",
            plan.moves(),
            if args.max_moves.is_some() {
                "--max-moves"
            } else {
                "policy.maxMovesPerApply; raise it for this run with --max-moves"
            }
        ));
        return EXIT_ERROR;
    }
    if !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            render::error(
                "refusing to apply without confirmation: no terminal to ask; pass --auto-approve",
            );
            return EXIT_ERROR;
        }
        if !confirm() {
            println!("Apply cancelled; nothing was changed.");
            return EXIT_ERROR;
        }
    }
    let control = Control::new();
    spawn_interrupt_handler(control.clone());
    let bars = std::io::stderr().is_terminal() && !json;
    let progress = Progress::new(bars, json);
    let opts = Options {
        max_moves: Some(limit.saturating_mul(2).max(limit)),
        ignore_windows: args.ignore_windows,
        wait_for_window: true,
        ..Options::default()
    };
    let result = execute::converge(desired, provider, &opts, &progress, control.clone()).await;
    progress.finish();
    match result {
        Ok(report) => finish(&report, json, Some(&control), wall),
        Err(e) => {
            render::error(&e.to_string());
            EXIT_ERROR
        }
    }
}

/// First Ctrl-C: stop starting moves, let running ones finish. Second:
/// exit at once, naming the jobs still running on the hosts.
fn spawn_interrupt_handler(control: Arc<Control>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        let running = control.running_jobs().len();
        eprintln!(
            "\ninterrupted: starting no more moves; waiting for {running} running migration{} (Ctrl-C again to exit now)",
            if running == 1 { "" } else { "s" }
        );
        control.stop();
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        let jobs = control.running_jobs();
        if jobs.is_empty() {
            eprintln!("exiting now; no migrations are running");
        } else {
            eprintln!("exiting now; these migrations are still running on the hosts:");
            for j in jobs {
                eprintln!("  {}: {} -> {} (job {})", j.vm, j.from, j.to, j.job);
            }
            eprintln!("a later `berth apply` waits for them and does not start them again");
        }
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
}

fn finish(
    report: &Report,
    json: bool,
    control: Option<&Control>,
    wall: Option<std::time::Instant>,
) -> u8 {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else if control.is_some() {
        let n = |count: u32, one: &str, many: &str| plan_output::plural(count as usize, one, many);
        println!(
            "\nApply {}: {} ({}, {} failed), {}, {} in {}.",
            if report.converged {
                "complete"
            } else if report.interrupted {
                "interrupted"
            } else {
                "incomplete"
            },
            n(report.moves, "move", "moves"),
            n(report.attempts, "attempt", "attempts"),
            report.failed_attempts,
            n(report.acl_changes, "ACL change", "ACL changes"),
            n(report.reconnects, "reconnect", "reconnects"),
            render::elapsed(report.elapsed_seconds, wall.map(|w| w.elapsed()))
        );
    }
    if !report.blocked.is_empty() {
        eprintln!(
            "\nnot converged: {} VM{} blocked:",
            report.blocked.len(),
            if report.blocked.len() == 1 { "" } else { "s" }
        );
        for b in &report.blocked {
            let esc = crate::spec::escape_controls;
            eprintln!("  {}: {}", esc(&b.vm), esc(&b.reason));
        }
    }
    if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.converged {
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}
