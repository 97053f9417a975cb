//! Rendering for people: miette diagnostics with source snippets.

use std::io::IsTerminal;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use crate::spec::{self, Diagnostic, Origin, SpecError, escape_controls};

/// One diagnostic in miette's terms.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Report {
    message: String,
    severity: miette::Severity,
    code: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
    related: Vec<Report>,
}

impl miette::Diagnostic for Report {
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.code.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

/// The highlighted range of `origin`, in the escaped text [`source`] shows.
/// `None` when the file has no text (a binary file is not quoted).
fn span(origin: &Origin) -> Option<SourceSpan> {
    let file = origin.file.as_ref()?;
    if !origin.loc.is_known() {
        return None;
    }
    if file.text.is_empty() {
        return None;
    }
    let offset = origin.loc.offset.min(file.text.len());
    let len = origin.loc.len.min(file.text.len() - offset);
    match spec::escape_snippet(&file.text) {
        None => Some(SourceSpan::new(offset.into(), len)),
        Some((_, map)) => {
            let start = spec::map_offset(&map, offset);
            let end = spec::map_offset(&map, offset + len);
            Some(SourceSpan::new(start.into(), end - start))
        }
    }
}

/// The file's text for a snippet, control characters escaped.
fn source(origin: &Origin) -> Option<NamedSource<String>> {
    let file = origin.file.as_ref()?;
    let text = match spec::escape_snippet(&file.text) {
        Some((escaped, _)) => escaped,
        None => file.text.clone(),
    };
    let name = spec::escape_controls(&file.path.display().to_string()).into_owned();
    Some(NamedSource::new(name, text).with_language("yaml"))
}

fn report(d: &Diagnostic) -> Report {
    let mut labels = Vec::new();
    if let Some(s) = span(&d.origin) {
        labels.push(LabeledSpan::new_primary_with_span(Some("here".into()), s));
    }
    let mut related = Vec::new();
    for r in &d.related {
        let same_file = match (&r.origin.file, &d.origin.file) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        };
        match span(&r.origin) {
            Some(s) if same_file => labels.push(LabeledSpan::new_with_span(
                Some(escape_controls(&r.label).into_owned()),
                s,
            )),
            Some(s) => related.push(Report {
                message: format!("{} ({})", escape_controls(&r.label), r.origin),
                severity: miette::Severity::Advice,
                code: source(&r.origin),
                labels: vec![LabeledSpan::new_primary_with_span(
                    Some(escape_controls(&r.label).into_owned()),
                    s,
                )],
                help: None,
                related: Vec::new(),
            }),
            None => related.push(Report {
                message: format!("{}: {}", escape_controls(&r.label), r.origin),
                severity: miette::Severity::Advice,
                code: None,
                labels: Vec::new(),
                help: None,
                related: Vec::new(),
            }),
        }
    }
    // Messages quote input (names, values): escape what a terminal acts on.
    let message = if d.origin.file.is_some() {
        format!("{}: {}", d.origin, escape_controls(&d.message))
    } else {
        escape_controls(&d.message).into_owned()
    };
    Report {
        message,
        severity: miette::Severity::Error,
        code: if labels.is_empty() {
            None
        } else {
            source(&d.origin)
        },
        labels,
        help: d.help.as_deref().map(|h| escape_controls(h).into_owned()),
        related,
    }
}

/// Whether output to a stream may be coloured: only on a terminal, and
/// never when `NO_COLOR` is set to anything but the empty string (as
/// <https://no-color.org> defines it). Logs redirected to a file get no
/// ANSI codes.
pub fn colour_with(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`colour_with`] for this process's `NO_COLOR`.
pub fn colour(is_terminal: bool) -> bool {
    colour_with(is_terminal, std::env::var_os("NO_COLOR").as_deref())
}

/// [`colour`] for stderr, where diagnostics, progress and `watch` logs go.
pub fn colour_stderr() -> bool {
    colour(std::io::stderr().is_terminal())
}

/// [`colour`] for stdout, where plans and reports go.
pub fn colour_stdout() -> bool {
    colour(std::io::stdout().is_terminal())
}

fn handler() -> GraphicalReportHandler {
    if !std::io::stderr().is_terminal() {
        return GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_context_lines(1)
            .with_width(120);
    }
    let theme = if colour_stderr() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    GraphicalReportHandler::new_themed(theme).with_context_lines(1)
}

/// Renders every diagnostic of a spec error without colour, as CI logs and
/// snapshot tests see it.
pub fn spec_error_plain(e: &SpecError) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_context_lines(1)
        .with_width(120);
    spec_error_to_string(e, &handler)
}

fn spec_error_to_string(e: &SpecError, handler: &GraphicalReportHandler) -> String {
    let mut out = String::new();
    for d in &e.diagnostics {
        let _ = handler.render_report(&mut out, &report(d));
    }
    let n = e.diagnostics.len();
    out.push_str(&format!(
        "error: {n} problem{} found; nothing was changed\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// Prints every diagnostic of a spec error to stderr.
pub(crate) fn spec_error(e: &SpecError) {
    eprint!("{}", spec_error_to_string(e, &handler()));
}

/// How long something took: `11m11s`, or with the simulator, whose time is
/// not the wall clock's, `11m11s simulated (0.02 s)`.
pub fn elapsed(seconds: f64, wall: Option<std::time::Duration>) -> String {
    let shown = spec::human_seconds(seconds);
    match wall {
        Some(w) => format!("{shown} simulated ({:.2} s)", w.as_secs_f64()),
        None => shown,
    }
}

/// Prints a one-line error to stderr (control characters escaped).
pub(crate) fn error(message: &str) {
    eprintln!("error: {}", spec::escape_controls_keep_lines(message));
}
