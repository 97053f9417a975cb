//! How a plan reads: terraform-like text, JSON, Markdown and a unified diff.

use std::fmt::Write;

use crate::plan::{ActionKind, Plan};
use crate::provider::Observed;
use crate::spec::{Desired, escape_controls as esc, human_seconds};

/// Colours for the text output (ANSI), or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    /// Colour when asked to (on a terminal) and `NO_COLOR` is not set.
    pub fn new(color: bool) -> Style {
        Style {
            on: super::render::colour(color),
        }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn add(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn change(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn remove(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// "1 move", "2 moves": a count with the right form of its noun.
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The one-line summary: "Plan: 4 moves, 3 ACL changes, 1 connection; 1 blocked; about 2m10s".
pub fn summary(plan: &Plan) -> String {
    if plan.in_sync {
        return "No changes: the fleet matches the desired state.".to_string();
    }
    let mut parts = vec![
        plural(plan.moves(), "move", "moves"),
        plural(plan.acl_changes(), "ACL change", "ACL changes"),
        plural(plan.connections(), "connection", "connections"),
    ];
    if plan.vlan_changes() > 0 {
        parts.push(plural(plan.vlan_changes(), "VLAN change", "VLAN changes"));
    }
    let mut s = format!("Plan: {}", parts.join(", "));
    if !plan.blocked.is_empty() {
        write!(s, "; {} blocked", plan.blocked.len()).ok();
    }
    if !plan.in_flight.is_empty() {
        write!(s, "; {} in flight", plan.in_flight.len()).ok();
    }
    if plan.has_changes() {
        write!(s, "; about {}", human_seconds(plan.estimated_seconds)).ok();
    }
    s
}

fn after(a: &[u32]) -> String {
    if a.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = a.iter().map(|i| format!("#{i}")).collect();
        format!(", after {}", ids.join(" "))
    }
}

/// One line per action, plus ACL rule lines, for text and Markdown.
fn describe(kind: &ActionKind) -> (String, String, Vec<(bool, String)>) {
    match kind {
        ActionKind::Move {
            vm,
            from,
            to,
            method,
            reason,
            estimated_seconds,
            memory_mib,
            disk_mib,
            storage_path,
            ..
        } => {
            let mut line = format!(
                "{vm}: {from} -> {to} ({method}, ~{}, {reason})",
                human_seconds(*estimated_seconds)
            );
            // Moves that copy disks also say how much travels and where to.
            if *disk_mib > 0 {
                let gib = |mib: u64| format!("{:.0} GiB", mib as f64 / 1024.0);
                write!(line, "; copies {} of disks", gib(*disk_mib)).ok();
                if *memory_mib > 0 {
                    write!(line, " + {} of memory", gib(*memory_mib)).ok();
                }
                if let Some(p) = storage_path {
                    // Paths come from hosts: no control character reaches
                    // the terminal raw.
                    let shown: String = p
                        .chars()
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect();
                    write!(line, " to {shown}").ok();
                }
            }
            ("move".into(), line, Vec::new())
        }
        ActionKind::SetAcls {
            vm,
            adapter,
            add,
            remove,
            reason,
        } => {
            let mut rules = Vec::new();
            for r in remove {
                rules.push((
                    false,
                    r.rule
                        .as_ref()
                        .map_or(format!("{} weight {}", r.direction, r.weight), |a| {
                            a.to_string()
                        }),
                ));
            }
            for r in add {
                rules.push((
                    true,
                    r.rule
                        .as_ref()
                        .map_or(format!("{} weight {}", r.direction, r.weight), |a| {
                            a.to_string()
                        }),
                ));
            }
            (
                "set-acls".into(),
                format!(
                    "{vm} / {adapter} (+{} -{}, {reason})",
                    add.len(),
                    remove.len()
                ),
                rules,
            )
        }
        ActionKind::Connect {
            vm,
            adapter,
            switch,
            vm_network,
            reason,
        } => (
            "connect".into(),
            format!(
                "{vm} / {adapter} -> {switch}{} ({reason})",
                vm_network
                    .as_ref()
                    .map_or(String::new(), |n| format!(" (VM network {n})"))
            ),
            Vec::new(),
        ),
        ActionKind::SetVlan {
            vm,
            adapter,
            vlan_id,
            reason,
        } => (
            "set-vlan".into(),
            format!("{vm} / {adapter} -> VLAN {vlan_id} ({reason})"),
            Vec::new(),
        ),
    }
}

/// `plan --explain VM`: every candidate host of a VM with choices and its
/// verdict, as text (or JSON with `--output json`).
pub fn explain(
    desired: &Desired,
    observed: &Observed,
    vm: &str,
    output: super::PlanFormat,
) -> Result<String, String> {
    let Some(spec) = desired.vms.get(vm) else {
        return Err(format!("{vm:?} is not a declared VM"));
    };
    let Some(choice) = &spec.choice else {
        return Ok(format!(
            "{vm} is pinned to {} (`host`): berth does not choose its host.\n",
            spec.host
        ));
    };
    let Some(verdicts) = crate::plan::explain(desired, observed, vm) else {
        return Err(format!(
            "{vm} is not in the fleet, or it is moving or held now"
        ));
    };
    if matches!(output, super::PlanFormat::Json) {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            vm: &'a str,
            candidates: &'a [crate::plan::Verdict],
        }
        return Ok(serde_json::to_string_pretty(&Out {
            vm,
            candidates: &verdicts,
        })
        .unwrap_or_default()
            + "\n");
    }
    let now = observed.vms.get(vm).map_or("?", |v| v.host.as_str());
    let chosen = verdicts
        .iter()
        .find(|v| v.chosen)
        .map_or(now, |v| v.host.as_str());
    let from = match &choice.group {
        Some(g) => format!("host group {g}"),
        None => "its `hosts`".to_string(),
    };
    let mut out = format!(
        "{vm} may run on {} ({from}); it is on {now}, and the plan {}.\n\n",
        plural(verdicts.len(), "host", "hosts"),
        if chosen == now {
            format!("keeps it on {now}")
        } else {
            format!("moves it to {chosen}")
        }
    );
    let width = verdicts.iter().map(|v| v.host.len()).max().unwrap_or(0);
    for v in &verdicts {
        let mark = match (v.chosen, v.current) {
            (true, true) => " (chosen, now)",
            (true, false) => " (chosen)",
            (false, true) => " (now)",
            _ => "",
        };
        let verdict = if v.lacks.is_empty() {
            format!("fits{mark}")
        } else {
            format!("no{mark}: {}", v.lacks.join("; "))
        };
        writeln!(out, "  {:width$}  {verdict}", v.host).ok();
    }
    Ok(out)
}

/// One host group's N+1 margin, for people.
fn headroom_line(h: &crate::plan::Headroom) -> String {
    let group = if h.group == "*" {
        "all hosts".to_string()
    } else {
        format!("group {}", h.group)
    };
    let gib = |mib: u64| {
        let g = mib as f64 / 1024.0;
        if g.fract() == 0.0 {
            format!("{g:.0} GiB")
        } else {
            format!("{g:.1} GiB")
        }
    };
    let verdict = if h.margin_mib >= 0 {
        format!("{} to spare", gib(h.margin_mib.unsigned_abs()))
    } else {
        format!("{} short", gib(h.margin_mib.unsigned_abs()))
    };
    format!(
        "headroom N+{} {group}: {verdict} ({} used of {}, {} kept for {} failed host{}){}",
        h.failures,
        gib(h.used_mib),
        gib(h.capacity_mib),
        gib(h.reserve_mib),
        h.failures,
        if h.failures == 1 { "" } else { "s" },
        if h.enforced {
            ""
        } else {
            " (reported, not enforced)"
        }
    )
}

/// The plan for people, terraform style.
pub fn text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.actions.is_empty() {
        out.push_str("berth will perform the following actions:\n\n");
    }
    for a in &plan.actions {
        let (verb, what, rules) = describe(&a.kind);
        // Observed names come from the hosts: nothing of them reaches the
        // terminal raw.
        let what = esc(&what);
        let sym = match &a.kind {
            ActionKind::Move { .. } => style.change("~"),
            ActionKind::Connect { .. } => style.add("+"),
            _ => style.change("~"),
        };
        writeln!(
            out,
            "  {sym} #{} {} {what}{}",
            a.id,
            style.bold(&verb),
            after(&a.after)
        )
        .ok();
        for (add, rule) in rules {
            let rule = esc(&rule);
            let line = if add {
                style.add(&format!("+ {rule}"))
            } else {
                style.remove(&format!("- {rule}"))
            };
            writeln!(out, "        {line}").ok();
        }
        if let ActionKind::Move { why: Some(why), .. } = &a.kind {
            writeln!(out, "        why: {why}").ok();
        }
    }
    if !plan.in_flight.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        for f in &plan.in_flight {
            writeln!(
                out,
                "  {} in flight: {} {} -> {} (berth waits for it)",
                style.change("…"),
                esc(&f.vm),
                esc(&f.from),
                esc(&f.to)
            )
            .ok();
        }
    }
    if !plan.blocked.is_empty() {
        out.push('\n');
        for b in &plan.blocked {
            writeln!(
                out,
                "  {} blocked {}: {}",
                style.remove("!"),
                esc(&b.vm),
                esc(&b.reason)
            )
            .ok();
        }
    }
    if !plan.unmanaged.is_empty() {
        out.push('\n');
        writeln!(
            out,
            "  ? unmanaged (not in any Placement): {}",
            esc(&plan.unmanaged.join(", "))
        )
        .ok();
    }
    if !plan.headroom.is_empty() {
        out.push('\n');
        for h in &plan.headroom {
            let line = headroom_line(h);
            let line = if h.margin_mib < 0 {
                style.remove(&line)
            } else {
                line
            };
            writeln!(out, "  {line}").ok();
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&style.bold(&summary(plan)));
    out.push('\n');
    if let Some(w) = window_line(plan) {
        out.push_str(&w);
        out.push('\n');
    }
    out
}

/// What the move windows mean for this plan, when `policy.moveWindows` is set.
fn window_line(plan: &Plan) -> Option<String> {
    let w = plan.move_window.as_ref()?;
    let fixes = plan.actions.len() - plan.moves();
    Some(match (w.open, plan.moves(), w.opens_in_seconds) {
        (true, _, _) => format!("Move window: {}.", w.text),
        (false, 0, _) => format!("Move window: closed; {}.", w.text),
        (false, _, Some(secs)) => format!(
            "Move window: closed; {} (in {}). Moves wait for it{}.",
            w.text,
            human_seconds(secs),
            if fixes > 0 {
                "; fixes go ahead now"
            } else {
                ""
            }
        ),
        (false, _, None) => format!("Move window: closed; {}. Moves wait.", w.text),
    })
}

fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in esc(s).chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~'
        ) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// The plan as a pull-request comment.
pub fn markdown(plan: &Plan, diff: Option<&str>) -> String {
    let mut out = String::from("### berth plan\n\n");
    writeln!(out, "**{}**\n", md_escape(&summary(plan))).ok();
    if let Some(w) = window_line(plan) {
        writeln!(out, "{}\n", md_escape(&w)).ok();
    }
    if !plan.actions.is_empty() {
        out.push_str("| # | action | details | after |\n|---:|---|---|---|\n");
        for a in &plan.actions {
            let (verb, what, rules) = describe(&a.kind);
            let mut details = md_escape(&what);
            if let ActionKind::Move { why: Some(why), .. } = &a.kind {
                write!(details, "<br>why: {}", md_escape(why)).ok();
            }
            for (add, rule) in rules {
                write!(
                    details,
                    "<br>{} {}",
                    if add { "➕" } else { "➖" },
                    md_escape(&rule)
                )
                .ok();
            }
            let deps: Vec<String> = a.after.iter().map(|i| i.to_string()).collect();
            writeln!(
                out,
                "| {} | {verb} | {details} | {} |",
                a.id,
                deps.join(", ")
            )
            .ok();
        }
        out.push('\n');
    }
    if !plan.blocked.is_empty() {
        out.push_str("**Blocked**\n\n");
        for b in &plan.blocked {
            writeln!(out, "- {}: {}", md_escape(&b.vm), md_escape(&b.reason)).ok();
        }
        out.push('\n');
    }
    if !plan.in_flight.is_empty() {
        out.push_str("**In flight**\n\n");
        for f in &plan.in_flight {
            writeln!(
                out,
                "- {}: {} → {}",
                md_escape(&f.vm),
                md_escape(&f.from),
                md_escape(&f.to)
            )
            .ok();
        }
        out.push('\n');
    }
    if !plan.unmanaged.is_empty() {
        let names: Vec<String> = plan.unmanaged.iter().map(|n| md_escape(n)).collect();
        writeln!(out, "**Unmanaged:** {}\n", names.join(", ")).ok();
    }
    if !plan.headroom.is_empty() {
        out.push_str("**Headroom**\n\n");
        for h in &plan.headroom {
            writeln!(out, "- {}", md_escape(&headroom_line(h))).ok();
        }
        out.push('\n');
    }
    if let Some(d) = diff {
        let fence = if d.contains("```") { "~~~~" } else { "```" };
        writeln!(
            out,
            "<details><summary>Placement diff</summary>\n\n{fence}diff\n{d}{fence}\n\n</details>"
        )
        .ok();
    }
    out
}

/// The plan as JSON, as the contract fixes it (keys in the contract's
/// order: the plan is serialised directly, not through a sorted map).
pub fn json(plan: &Plan, diff: Option<&str>) -> String {
    #[derive(serde::Serialize)]
    struct WithDiff<'a> {
        #[serde(flatten)]
        plan: &'a Plan,
        #[serde(skip_serializing_if = "Option::is_none")]
        diff: Option<&'a str>,
    }
    serde_json::to_string_pretty(&WithDiff { plan, diff }).unwrap_or_default()
}

fn yaml_key(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
        && !s.starts_with([' ', '-'])
        && !s.ends_with(' ');
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Canonical YAML of a placement: VMs sorted, each with host and adapters.
fn canonical(observed: &Observed, desired: Option<(&Desired, &Plan)>) -> String {
    let mut out = String::from("vms:\n");
    for vm in observed.vms.values() {
        let spec = desired.and_then(|(d, _)| d.vms.get(&vm.name));
        let host = match desired {
            Some((_, plan)) => plan
                .actions
                .iter()
                .rev()
                .find_map(|a| match &a.kind {
                    ActionKind::Move { vm: v, to, .. } if *v == vm.name => Some(to.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| vm.host.clone()),
            None => vm.host.clone(),
        };
        writeln!(
            out,
            "  {}:\n    host: {}",
            yaml_key(&vm.name),
            yaml_key(&host)
        )
        .ok();
        if vm.adapters.is_empty() {
            continue;
        }
        out.push_str("    adapters:\n");
        for a in &vm.adapters {
            let d = spec
                .and_then(|s| s.adapters.as_ref())
                .and_then(|l| l.iter().find(|x| x.name == a.name));
            let switch = d
                .and_then(|d| d.switch.clone())
                .or_else(|| a.switch.clone());
            let vlan = d.and_then(|d| d.vlan_id).or(a.vlan_id);
            let acls = d
                .and_then(|d| d.acls.clone())
                .unwrap_or_else(|| a.acls.clone());
            writeln!(out, "      {}:", yaml_key(&a.name)).ok();
            match switch {
                Some(s) => writeln!(out, "        switch: {}", yaml_key(&s)).ok(),
                None => writeln!(out, "        switch: null  # not connected").ok(),
            };
            if let Some(v) = vlan {
                writeln!(out, "        vlanId: {v}").ok();
            }
            if acls.is_empty() {
                out.push_str("        acls: []\n");
            } else {
                out.push_str("        acls:\n");
                for acl in &acls {
                    writeln!(out, "          - {acl}").ok();
                }
            }
        }
    }
    out
}

/// A unified diff of the observed placement and the placement the plan
/// reaches, as canonical YAML.
pub fn diff(desired: &Desired, observed: &Observed, plan: &Plan) -> String {
    let old = canonical(observed, None);
    let new = canonical(observed, Some((desired, plan)));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("observed", "desired")
        .to_string()
}
