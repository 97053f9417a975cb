//! `plan --output html`: one self-contained file for review.
//!
//! A reviewer of a pull request that proposes sixty moves wants to see
//! when they happen, not only what they are. The file holds the plan as the
//! text output shows it, the placement diff, and an inline SVG timeline of
//! the expected schedule ([`crate::plan::timeline`]): one row per host a
//! move touches, a bar per move (VM, method, estimated duration), the time
//! a move waits for a slot shaded and explained on hover (SVG `<title>`),
//! and each host's memory in use over time, with the space taken on each
//! volume that disks are copied to or from. No script, no external asset:
//! it opens offline and can be kept as a CI artifact.

use std::fmt::Write;

use crate::plan::timeline::{Slot, Timeline, VolumeTrack, timeline};
use crate::plan::{ActionKind, Caps, Plan};
use crate::provider::{MoveKind, Observed};
use crate::spec::{Desired, human_seconds};

use super::plan_output;

const STYLE: &str = include_str!("plan_html.css");

/// Width of the host labels, px.
const LABEL_W: f64 = 200.0;
/// Width of the time axis, px.
const CHART_W: f64 = 900.0;
/// Height of one bar lane, px.
const LANE_H: f64 = 18.0;
/// Height of a host's memory strip, px.
const MEM_H: f64 = 26.0;
/// Height of a volume's strip, px.
const VOL_H: f64 = 20.0;
/// Height of the time axis, px.
const AXIS_H: f64 = 24.0;

/// Escapes text for HTML and SVG (element content and attribute values).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters from input never reach the reader raw.
            c if c.is_control() && c != '\n' && c != '\t' => {
                write!(o, "\\u{{{:x}}}", u32::from(c)).ok();
            }
            c => o.push(c),
        }
    }
    o
}

/// The whole HTML document.
pub fn html(desired: &Desired, observed: &Observed, plan: &Plan) -> String {
    let caps = Caps::new(desired, observed);
    let tl = timeline(plan, &caps, observed);
    let diff = plan_output::diff(desired, observed, plan);
    let text = plan_output::text(plan, plan_output::Style::new(false));
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
<title>berth plan</title>\n<style>\n",
    );
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n");
    writeln!(
        out,
        "<header><h1>berth plan</h1><p class=\"summary\">{}</p></header>",
        escape(&plan_output::summary(plan))
    )
    .ok();
    out.push_str("<main>\n<section id=\"timeline\">\n<h2>Expected schedule</h2>\n");
    if tl.memory.is_empty() {
        out.push_str("<p class=\"muted\">No moves: nothing to schedule.</p>\n");
    } else {
        writeln!(
            out,
            "<p class=\"muted\">Every move started in the order and under the limits the executor uses (maxParallelMigrations {}), lasting its estimate, or longer where copies share a migration network (networkMiBps). Hover over a bar or a shaded wait for details.</p>",
            caps.max_parallel
        )
        .ok();
        svg(&mut out, plan, &caps, &tl);
        out.push_str(LEGEND);
    }
    out.push_str("</section>\n<section id=\"actions\">\n<h2>Actions</h2>\n<pre class=\"plan\">");
    for line in text.lines() {
        let t = line.trim_start();
        let class = if t.starts_with("+ ") {
            "add"
        } else if t.starts_with("- ") {
            "rm"
        } else if t.starts_with('~') || t.starts_with('…') {
            "chg"
        } else if t.starts_with('!') {
            "blk"
        } else if t.starts_with('?') {
            "unm"
        } else {
            ""
        };
        if class.is_empty() {
            writeln!(out, "{}", escape(line)).ok();
        } else {
            writeln!(out, "<span class=\"{class}\">{}</span>", escape(line)).ok();
        }
    }
    out.push_str("</pre>\n</section>\n<section id=\"diff\">\n<details open><summary>Placement diff</summary>\n<pre class=\"diff\">");
    if diff.is_empty() {
        out.push_str("(no difference)\n");
    }
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "hdr"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "rm"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            ""
        };
        if class.is_empty() {
            writeln!(out, "{}", escape(line)).ok();
        } else {
            writeln!(out, "<span class=\"{class}\">{}</span>", escape(line)).ok();
        }
    }
    out.push_str("</pre>\n</details>\n</section>\n</main>\n");
    writeln!(
        out,
        "<footer>berth {} · estimates assume each move lasts its estimate; real moves vary.</footer>",
        env!("CARGO_PKG_VERSION")
    )
    .ok();
    out.push_str("</body>\n</html>\n");
    out
}

const LEGEND: &str = "<p class=\"legend\">\
<span class=\"k in\"></span> live move in (destination) \
<span class=\"k out\"></span> live move out (source) \
<span class=\"k off\"></span> offline move \
<span class=\"k wait\"></span> waiting for a slot \
<span class=\"k mem\"></span> memory in use (line: capacity) \
<span class=\"k vol\"></span> volume space taken by VM disks (line: free now plus VM disks)</p>\n";

/// One bar or wait on a host row.
struct Item<'a> {
    slot: &'a Slot,
    vm: &'a str,
    from: &'a str,
    to: &'a str,
    method: MoveKind,
    reason: String,
    seconds: f64,
    incoming: bool,
}

/// Assigns lanes so that no two items on a row overlap (wait included).
fn lanes(items: &[Item<'_>]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| {
        items[*a]
            .slot
            .ready
            .total_cmp(&items[*b].slot.ready)
            .then(items[*a].slot.id.cmp(&items[*b].slot.id))
    });
    let mut lane_end: Vec<f64> = Vec::new();
    let mut lane = vec![0usize; items.len()];
    for i in order {
        let begin = items[i].slot.ready;
        let end = items[i].slot.end.max(items[i].slot.start + 1e-3);
        match lane_end.iter().position(|e| *e <= begin + 1e-9) {
            Some(l) => {
                lane_end[l] = end;
                lane[i] = l;
            }
            None => {
                lane[i] = lane_end.len();
                lane_end.push(end);
            }
        }
    }
    (lane, lane_end.len().max(1))
}

fn svg(out: &mut String, plan: &Plan, caps: &Caps, tl: &Timeline) {
    let span = tl.makespan.max(1.0);
    let scale = CHART_W / span;
    let x = |t: f64| LABEL_W + t * scale;
    // Items per host.
    let mut rows: Vec<(&str, Vec<Item<'_>>)> =
        tl.memory.keys().map(|h| (h.as_str(), Vec::new())).collect();
    for slot in &tl.slots {
        let Some(action) = plan.actions.iter().find(|a| a.id == slot.id) else {
            continue;
        };
        let ActionKind::Move {
            vm,
            from,
            to,
            method,
            reason,
            estimated_seconds,
            ..
        } = &action.kind
        else {
            continue;
        };
        for (host, incoming) in [(from, false), (to, true)] {
            if let Some((_, items)) = rows.iter_mut().find(|(h, _)| *h == host.as_str()) {
                items.push(Item {
                    slot,
                    vm,
                    from,
                    to,
                    method: *method,
                    reason: reason.to_string(),
                    seconds: *estimated_seconds,
                    incoming,
                });
            }
        }
    }
    let layout: Vec<(Vec<usize>, usize)> = rows.iter().map(|(_, items)| lanes(items)).collect();
    let volumes = |host: &str| tl.volumes.get(host).map_or(&[][..], Vec::as_slice);
    let row_height = |host: &str, n: usize| {
        n as f64 * LANE_H + MEM_H + volumes(host).len() as f64 * VOL_H + 14.0
    };
    let height: f64 = AXIS_H
        + rows
            .iter()
            .zip(&layout)
            .map(|((host, _), (_, n))| row_height(host, *n))
            .sum::<f64>()
        + 4.0;
    let width = LABEL_W + CHART_W + 20.0;
    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"tl\" width=\"{width}\" height=\"{height:.0}\" viewBox=\"0 0 {width} {height:.0}\" role=\"img\" aria-label=\"Expected schedule: {} moves over about {}\">",
        plan.moves(),
        escape(&human_seconds(tl.makespan))
    )
    .ok();
    out.push_str(
        "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"6\" height=\"6\" fill=\"#fff4d6\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d9a21b\" stroke-width=\"2\"/></pattern></defs>\n",
    );
    // Axis.
    let step = tick_step(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2:.0}\"/><text class=\"tick\" x=\"{0:.1}\" y=\"14\">{3}</text>",
            x(t),
            AXIS_H - 4.0,
            height,
            escape(&human_seconds(t))
        )
        .ok();
        t += step;
    }
    let mut y = AXIS_H;
    for ((host, items), (lane, n)) in rows.iter().zip(&layout) {
        let row_h = row_height(host, *n);
        writeln!(
            out,
            "<g class=\"row\" data-host=\"{0}\"><rect class=\"rowbg\" x=\"0\" y=\"{1:.1}\" width=\"{width}\" height=\"{2:.1}\"/>\
<text class=\"host\" x=\"8\" y=\"{3:.1}\">{0}</text>",
            escape(host),
            y,
            row_h,
            y + 16.0
        )
        .ok();
        let cap = caps.host(host);
        writeln!(
            out,
            "<text class=\"sub\" x=\"8\" y=\"{:.1}\">{} live migration{} at once</text>",
            y + 30.0,
            cap,
            if cap == 1 { "" } else { "s" }
        )
        .ok();
        for (item, l) in items.iter().zip(lane) {
            let top = y + 5.0 + *l as f64 * LANE_H;
            let s = item.slot;
            if s.start > s.ready + 1e-6 {
                let why = s.wait.as_deref().unwrap_or("waits");
                writeln!(
                    out,
                    "<rect class=\"wait\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} waits {} from {} to {}: {}</title></rect>",
                    x(s.ready),
                    ((s.start - s.ready) * scale).max(1.0),
                    LANE_H - 3.0,
                    escape(item.vm),
                    escape(&human_seconds(s.start - s.ready)),
                    escape(&human_seconds(s.ready)),
                    escape(&human_seconds(s.start)),
                    escape(why)
                )
                .ok();
            }
            let class = match (item.method, item.incoming) {
                (MoveKind::Offline, _) => "bar off",
                (MoveKind::Live, true) => "bar in",
                (MoveKind::Live, false) => "bar out",
            };
            let w = ((s.end - s.start) * scale).max(2.0);
            let label = if item.incoming {
                format!("{} ← {}", item.vm, item.from)
            } else {
                format!("{} → {}", item.vm, item.to)
            };
            writeln!(
                out,
                "<g class=\"{class}\" data-vm=\"{vm}\"><rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\"/>\
<title>#{} move {vm}: {} → {} ({}, ~{}, {}); starts at {}, ends at {}</title>",
                x(s.start),
                LANE_H - 3.0,
                s.id,
                escape(item.from),
                escape(item.to),
                item.method,
                escape(&human_seconds(item.seconds)),
                escape(&item.reason),
                escape(&human_seconds(s.start)),
                escape(&human_seconds(s.end)),
                vm = escape(item.vm),
            )
            .ok();
            // A label only where it fits (about 6.5 px a character).
            if w > 6.5 * label.chars().count() as f64 + 8.0 {
                writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    x(s.start) + 4.0,
                    top + LANE_H - 7.0,
                    escape(&label)
                )
                .ok();
            }
            out.push_str("</g>\n");
        }
        // Memory strip, then one strip per volume disks go to or leave.
        let top = y + 5.0 + *n as f64 * LANE_H + 2.0;
        if let Some(track) = tl.memory.get(*host) {
            memory_strip(out, host, track, top, span, scale);
        }
        for (i, track) in volumes(host).iter().enumerate() {
            volume_strip(
                out,
                host,
                track,
                top + MEM_H + i as f64 * VOL_H,
                span,
                scale,
            );
        }
        out.push_str("</g>\n");
        y += row_h;
    }
    out.push_str("</svg>\n");
}

/// The SVG path of a step function filling `h` px below `top`, full at
/// `cap`.
fn step_path(steps: &[(f64, u64)], cap: u64, top: f64, h: f64, span: f64, scale: f64) -> String {
    let cap = cap.max(1) as f64;
    let yv = |v: u64| top + h - (v as f64 / cap).min(1.0) * h;
    let mut d = format!("M{LABEL_W:.1},{:.1}", top + h);
    for (i, (t, v)) in steps.iter().enumerate() {
        let xt = LABEL_W + t * scale;
        if i > 0 {
            // Step: hold the previous value until t.
            let prev = steps[i - 1].1;
            write!(d, " L{xt:.1},{:.1}", yv(prev)).ok();
        }
        write!(d, " L{xt:.1},{:.1}", yv(*v)).ok();
    }
    let end = LABEL_W + span * scale;
    let last = steps.last().map_or(0, |s| s.1);
    write!(d, " L{end:.1},{:.1} L{end:.1},{:.1} Z", yv(last), top + h).ok();
    d
}

/// First, last and highest value of a step function.
fn first_last_peak(steps: &[(f64, u64)]) -> (u64, u64, u64) {
    (
        steps.first().map_or(0, |s| s.1),
        steps.last().map_or(0, |s| s.1),
        steps.iter().map(|s| s.1).max().unwrap_or(0),
    )
}

fn percent(v: u64, cap: u64) -> f64 {
    (v as f64 / cap.max(1) as f64 * 100.0).round()
}

fn gib(v: u64) -> f64 {
    (v as f64 / 1024.0).round()
}

fn memory_strip(
    out: &mut String,
    host: &str,
    track: &crate::plan::timeline::MemoryTrack,
    top: f64,
    span: f64,
    scale: f64,
) {
    let (first, last, peak) = first_last_peak(&track.steps);
    let h = MEM_H - 4.0;
    let d = step_path(&track.steps, track.capacity_mib, top, h, span, scale);
    let end = LABEL_W + span * scale;
    let pct = |v: u64| percent(v, track.capacity_mib);
    let over = if peak > track.capacity_mib {
        "mem over"
    } else {
        "mem"
    };
    writeln!(
        out,
        "<g class=\"{over}\"><rect class=\"membg\" x=\"{LABEL_W}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/><path d=\"{d}\"/>\
<line class=\"cap\" x1=\"{LABEL_W}\" y1=\"{top:.1}\" x2=\"{end:.1}\" y2=\"{top:.1}\"/>\
<title>{} memory in use: {} GiB → {} GiB of {} GiB (peak {} GiB, {}%)</title></g>",
        span * scale,
        escape(host),
        gib(first),
        gib(last),
        gib(track.capacity_mib),
        gib(peak),
        pct(peak)
    )
    .ok();
    writeln!(
        out,
        "<text class=\"sub\" x=\"8\" y=\"{:.1}\">memory {}% → {}%, peak {}%</text>",
        top + h - 3.0,
        pct(first),
        pct(last),
        pct(peak)
    )
    .ok();
}

/// One volume's space over time: what VM disks take on it, against what
/// it has for them (their size now plus its free space).
fn volume_strip(
    out: &mut String,
    host: &str,
    track: &VolumeTrack,
    top: f64,
    span: f64,
    scale: f64,
) {
    let (first, last, peak) = first_last_peak(&track.steps);
    let h = VOL_H - 4.0;
    let d = step_path(&track.steps, track.capacity_mib, top, h, span, scale);
    let end = LABEL_W + span * scale;
    let pct = |v: u64| percent(v, track.capacity_mib);
    let over = if peak > track.capacity_mib {
        "vol over"
    } else {
        "vol"
    };
    writeln!(
        out,
        "<g class=\"{over}\" data-volume=\"{path}\"><rect class=\"membg\" x=\"{LABEL_W}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/><path d=\"{d}\"/>\
<line class=\"cap\" x1=\"{LABEL_W}\" y1=\"{top:.1}\" x2=\"{end:.1}\" y2=\"{top:.1}\"/>\
<title>{host} {path} space taken by VM disks: {} GiB → {} GiB of {} GiB (peak {} GiB, {}%; {} GiB free at the peak)</title></g>",
        span * scale,
        gib(first),
        gib(last),
        gib(track.capacity_mib),
        gib(peak),
        pct(peak),
        gib(track.capacity_mib.saturating_sub(peak)),
        host = escape(host),
        path = escape(&track.path),
    )
    .ok();
    writeln!(
        out,
        "<text class=\"sub\" x=\"8\" y=\"{:.1}\">{} {}% → {}%, peak {}%</text>",
        top + h - 3.0,
        escape(&short_path(&track.path)),
        pct(first),
        pct(last),
        pct(peak)
    )
    .ok();
}

/// A volume path cut to fit the label column (about 14 characters).
fn short_path(path: &str) -> String {
    let n = path.chars().count();
    if n <= 14 {
        path.to_string()
    } else {
        let tail: String = path.chars().skip(n - 13).collect();
        format!("…{tail}")
    }
}

/// A round step for about eight ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 14] = [
        5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
        43200.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 10.0)
        .unwrap_or(86400.0 * (span / 86400.0 / 10.0).ceil().max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1b}[31mb"), "a\\u{1b}[31mb");
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step(40.0), 5.0);
        assert_eq!(tick_step(600.0), 60.0);
        assert_eq!(tick_step(4000.0), 600.0);
        assert!(200_000.0 / tick_step(200_000.0) <= 10.0);
    }
}
