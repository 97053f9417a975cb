//! Validation of intent: host choices, host groups, labels, rules, headroom.
//!
//! A VM may let berth choose its host (`hosts`, `hostGroup`), and rules tie
//! VMs together or keep them apart. Most of this can only be checked once
//! every document is read (a rule may name a VM of another file), so the
//! validator collects what it saw here with positions ([`Collected`]) and
//! [`Collected::resolve`] settles it at the end: unknown names, empty or
//! repeated members, labels no host has, and rules that contradict each
//! other (two VMs both kept apart and kept together, a `together` set whose
//! VMs share no candidate host, pinned VMs that already break a rule).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::diag::{Diagnostic, Origin, Sink};
use super::load::{DocCtx, closest};
use super::model::{Choice, Desired, HostGroupSpec, RuleKind, RuleSpec};
use super::raw::{HostGroupRaw, RuleRaw, Sp};

/// A name and where it was written.
type Named = (String, Origin);

/// Where a VM may go, as written.
#[derive(Debug, Clone)]
pub(crate) enum ChoiceRaw {
    Hosts(Vec<Named>, Origin),
    Group(Named),
}

#[derive(Debug, Clone)]
struct PendingRule {
    name: Named,
    kind: Option<RuleKind>,
    members: Vec<Named>,
    by: Option<Named>,
}

/// What the documents said about intent, kept until every host and VM is
/// known.
#[derive(Debug, Clone, Default)]
pub(crate) struct Collected {
    groups: Vec<(Named, Vec<Named>)>,
    rules: Vec<PendingRule>,
    choices: Vec<(String, ChoiceRaw)>,
}

fn named(ctx: &DocCtx, sp: &Sp<String>) -> Named {
    (sp.value.clone(), ctx.at(sp))
}

impl Collected {
    /// A VM's `hosts` list, as written.
    pub(crate) fn hosts_choice(ctx: &DocCtx, list: &Sp<Vec<Sp<String>>>) -> ChoiceRaw {
        let hosts = list.value.iter().map(|h| named(ctx, h)).collect();
        ChoiceRaw::Hosts(hosts, ctx.at(list))
    }

    /// A VM's `hostGroup`, as written.
    pub(crate) fn group_choice(ctx: &DocCtx, group: &Sp<String>) -> ChoiceRaw {
        ChoiceRaw::Group(named(ctx, group))
    }

    /// Records where a VM may go.
    pub(crate) fn choose(&mut self, vm: &str, choice: ChoiceRaw) {
        self.choices.push((vm.to_string(), choice));
    }

    /// Whether nothing was said about intent: no host group, rule or
    /// VM choosing among hosts.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.rules.is_empty() && self.choices.is_empty()
    }

    /// Adds what a later document said.
    pub(crate) fn extend(&mut self, other: Collected) {
        self.groups.extend(other.groups);
        self.rules.extend(other.rules);
        self.choices.extend(other.choices);
    }

    /// Records a document's host groups.
    pub(crate) fn groups(&mut self, ctx: &DocCtx, groups: &[HostGroupRaw]) {
        for g in groups {
            let hosts = g.hosts.iter().map(|h| named(ctx, h)).collect();
            self.groups.push((named(ctx, &g.name), hosts));
        }
    }

    /// Records a document's rules, checking their shape.
    pub(crate) fn rules(&mut self, ctx: &DocCtx, rules: &[RuleRaw], sink: &mut Sink) {
        for r in rules {
            let name = named(ctx, &r.name);
            let (kind, members) = match (&r.separate, &r.together) {
                (Some(s), None) => (
                    Some(RuleKind::Separate {
                        by: r.by.as_ref().map(|b| b.value.clone()),
                    }),
                    Some(s),
                ),
                (None, Some(t)) => {
                    if let Some(by) = &r.by {
                        sink.push(
                            Diagnostic::new(
                                ctx.at(by),
                                format!("rule `{}`: `by` belongs to `separate` rules", name.0),
                            )
                            .with_help("`together` always means one host"),
                        );
                    }
                    (Some(RuleKind::Together), Some(t))
                }
                (Some(_), Some(_)) | (None, None) => {
                    sink.push(
                        Diagnostic::new(
                            name.1.clone(),
                            format!(
                                "rule `{}` must have exactly one of `separate` and `together`",
                                name.0
                            ),
                        )
                        .with_help("write two rules to ask for both"),
                    );
                    (None, None)
                }
            };
            let members = members.map_or_else(Vec::new, |m| {
                if m.value.len() < 2 {
                    sink.push(
                        Diagnostic::new(
                            ctx.at(m),
                            format!("rule `{}` needs at least two VMs", name.0),
                        )
                        .with_help("a rule with one VM asks nothing"),
                    );
                }
                m.value.iter().map(|v| named(ctx, v)).collect()
            });
            self.rules.push(PendingRule {
                name,
                kind,
                members,
                by: r.by.as_ref().map(|b| named(ctx, b)),
            });
        }
    }

    /// Settles every intent rule that needs all documents, filling in
    /// `desired.intent` and each VM's [`Choice`].
    pub(crate) fn resolve(self, desired: &mut Desired, sink: &mut Sink) {
        let host_names: Vec<String> = desired.hosts.keys().cloned().collect();
        let unknown_host = |(h, at): &Named, what: &str, sink: &mut Sink| {
            let mut d = Diagnostic::new(
                at.clone(),
                format!("{what} names `{h}`, which is not a declared host"),
            );
            d = match closest(h, host_names.iter().map(String::as_str)) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help("declare it under `spec.hosts`"),
            };
            sink.push(d);
        };

        // Host groups.
        for ((name, at), hosts) in self.groups {
            if let Err(problem) = super::validate::check_name(&name) {
                sink.error(at, format!("host group name {problem}"));
                continue;
            }
            if let Some(prev) = desired.intent.host_groups.get(&name) {
                sink.push(
                    Diagnostic::new(at, format!("host group `{name}` is declared twice"))
                        .with_related("first declared here", prev.origin.clone()),
                );
                continue;
            }
            let mut list = Vec::new();
            for h in &hosts {
                if !desired.hosts.contains_key(&h.0) {
                    unknown_host(h, &format!("host group `{name}`"), sink);
                } else if list.contains(&h.0) {
                    sink.error(
                        h.1.clone(),
                        format!("host `{}` is listed twice in group `{name}`", h.0),
                    );
                } else {
                    list.push(h.0.clone());
                }
            }
            if hosts.is_empty() {
                sink.error(at.clone(), format!("host group `{name}` has no hosts"));
            }
            desired.intent.host_groups.insert(
                name.clone(),
                HostGroupSpec {
                    name,
                    hosts: list,
                    origin: at,
                },
            );
        }

        // Choices.
        for (vm, raw) in self.choices {
            let choice = match raw {
                ChoiceRaw::Hosts(list, at) => {
                    let mut hosts: Vec<String> = Vec::new();
                    for h in &list {
                        if !desired.hosts.contains_key(&h.0) {
                            unknown_host(h, &format!("VM `{vm}`"), sink);
                        } else if hosts.contains(&h.0) {
                            sink.error(
                                h.1.clone(),
                                format!("host `{}` is listed twice for VM `{vm}`", h.0),
                            );
                        } else {
                            hosts.push(h.0.clone());
                        }
                    }
                    if list.is_empty() {
                        sink.push(
                            Diagnostic::new(at, format!("VM `{vm}` has an empty `hosts` list"))
                                .with_help("name at least one declared host, or use `host`"),
                        );
                    }
                    Choice { hosts, group: None }
                }
                ChoiceRaw::Group((g, at)) => match desired.intent.host_groups.get(&g) {
                    Some(group) => Choice {
                        hosts: group.hosts.clone(),
                        group: Some(g),
                    },
                    None => {
                        let mut d = Diagnostic::new(
                            at,
                            format!("VM `{vm}` names host group `{g}`, which is not declared"),
                        );
                        d = match closest(&g, desired.intent.host_groups.keys().map(String::as_str))
                        {
                            Some(best) => d.with_help(format!("did you mean `{best}`?")),
                            None => d.with_help("declare it under `spec.hostGroups`"),
                        };
                        sink.push(d);
                        continue;
                    }
                },
            };
            if let Some(spec) = desired.vms.get_mut(&vm).map(std::sync::Arc::make_mut) {
                if let Some(first) = choice.hosts.first() {
                    spec.host = first.clone();
                }
                if !spec.fallback.is_empty() {
                    sink.push(
                        Diagnostic::new(
                            spec.origin.clone(),
                            format!("VM `{vm}` has `fallback`, which only applies with `host`"),
                        )
                        .with_help("berth chooses among its hosts when one is in maintenance"),
                    );
                }
                spec.choice = Some(choice);
            }
        }

        // Rules.
        let vm_names: Vec<&str> = desired.vms.keys().map(String::as_str).collect();
        let mut rule_at: HashMap<String, Origin> = HashMap::new();
        let mut rules = Vec::new();
        for r in self.rules {
            let (name, at) = r.name;
            if let Err(problem) = super::validate::check_name(&name) {
                sink.error(at, format!("rule name {problem}"));
                continue;
            }
            if let Some(prev) = rule_at.get(&name) {
                sink.push(
                    Diagnostic::new(at, format!("rule `{name}` is declared twice"))
                        .with_related("first declared here", prev.clone()),
                );
                continue;
            }
            rule_at.insert(name.clone(), at.clone());
            let Some(kind) = r.kind else { continue };
            let mut vms: Vec<String> = Vec::new();
            for (vm, vat) in r.members {
                if !desired.vms.contains_key(&vm) {
                    let mut d = Diagnostic::new(
                        vat,
                        format!("rule `{name}` names VM `{vm}`, which is not declared"),
                    );
                    if let Some(best) = closest(&vm, vm_names.iter().copied()) {
                        d = d.with_help(format!("did you mean `{best}`?"));
                    }
                    sink.push(d);
                } else if vms.contains(&vm) {
                    sink.error(vat, format!("VM `{vm}` is listed twice in rule `{name}`"));
                } else {
                    vms.push(vm);
                }
            }
            if let (Some((label, lat)), RuleKind::Separate { .. }) = (&r.by, &kind)
                && !desired.hosts.values().any(|h| h.labels.contains_key(label))
            {
                let labels: BTreeSet<&str> = desired
                    .hosts
                    .values()
                    .flat_map(|h| h.labels.keys().map(String::as_str))
                    .collect();
                let mut d = Diagnostic::new(
                    lat.clone(),
                    format!("rule `{name}` separates by label `{label}`, which no host has"),
                );
                d = match closest(label, labels.into_iter()) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help("give hosts `labels`, e.g. `labels: { rack: r1 }`"),
                };
                sink.push(d);
                continue;
            }
            rules.push(RuleSpec {
                name,
                kind,
                vms,
                origin: at,
            });
        }
        contradictions(desired, &rules, sink);
        desired.intent.rules = rules;
    }
}

/// Union-find root.
fn root(parent: &mut HashMap<String, String>, x: &str) -> String {
    let mut cur = x.to_string();
    while let Some(p) = parent.get(&cur) {
        if *p == cur {
            break;
        }
        cur = p.clone();
    }
    parent.insert(x.to_string(), cur.clone());
    cur
}

/// Where a VM may end: its candidates, or its one host.
fn places(desired: &Desired, vm: &str) -> Vec<String> {
    match desired.vms.get(vm) {
        Some(s) => match &s.choice {
            Some(c) => c.hosts.clone(),
            None => vec![s.host.clone()],
        },
        None => Vec::new(),
    }
}

/// Rules that no placement can satisfy, whatever the fleet looks like.
fn contradictions(desired: &Desired, rules: &[RuleSpec], sink: &mut Sink) {
    // Together sets (a VM in two `together` rules joins them).
    let mut parent: HashMap<String, String> = HashMap::new();
    let mut via: HashMap<String, &RuleSpec> = HashMap::new();
    for r in rules.iter().filter(|r| r.kind == RuleKind::Together) {
        for vm in &r.vms {
            via.entry(vm.clone()).or_insert(r);
        }
        for pair in r.vms.windows(2) {
            let (a, b) = (root(&mut parent, &pair[0]), root(&mut parent, &pair[1]));
            if a != b {
                parent.insert(a, b);
            }
        }
    }
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let members: Vec<String> = via.keys().cloned().collect();
    for vm in members {
        let r = root(&mut parent, &vm);
        sets.entry(r).or_default().push(vm);
    }
    for set in sets.values_mut() {
        set.sort();
        // Candidate hosts shared by all.
        let mut common: Option<BTreeSet<String>> = None;
        for vm in set.iter() {
            let p: BTreeSet<String> = places(desired, vm).into_iter().collect();
            common = Some(match common {
                None => p,
                Some(c) => c.intersection(&p).cloned().collect(),
            });
        }
        if common.is_some_and(|c| c.is_empty())
            && let Some(r) = set.first().and_then(|v| via.get(v))
        {
            sink.push(
                Diagnostic::new(
                    r.origin.clone(),
                    format!(
                        "rule `{}` keeps {} together, but no host is allowed for all of them",
                        r.name,
                        set.join(", ")
                    ),
                )
                .with_help("give them at least one common host (`host`, `hosts` or `hostGroup`)"),
            );
        }
    }
    for r in rules {
        let RuleKind::Separate { by } = &r.kind else {
            continue;
        };
        // Two members kept together.
        let mut seen: HashMap<String, &str> = HashMap::new();
        for vm in &r.vms {
            if !via.contains_key(vm) {
                continue;
            }
            let set = root(&mut parent, vm);
            if let Some(other) = seen.get(&set) {
                let mut d = Diagnostic::new(
                    r.origin.clone(),
                    format!(
                        "contradictory rules: `{}` separates {other} and {vm}, which `together` rules keep on one host",
                        r.name
                    ),
                );
                if let Some(t) = via.get(vm) {
                    d = d.with_related(format!("rule `{}` is here", t.name), t.origin.clone());
                }
                sink.push(d.with_help("remove one of them from one of the rules"));
                break;
            }
            seen.insert(set, vm);
        }
        // Two pinned members already in one place.
        let mut pinned: HashMap<String, &str> = HashMap::new();
        for vm in &r.vms {
            let Some(spec) = desired.vms.get(vm) else {
                continue;
            };
            if spec.choice.is_some() {
                continue;
            }
            let domain = match by {
                None => Some(spec.host.clone()),
                Some(label) => desired
                    .hosts
                    .get(&spec.host)
                    .and_then(|h| h.labels.get(label).cloned()),
            };
            let Some(domain) = domain else {
                if let Some(label) = by {
                    sink.push(
                        Diagnostic::new(
                            spec.origin.clone(),
                            format!(
                                "rule `{}` separates by `{label}`, but VM `{vm}` is pinned to host `{}`, which has no label `{label}`",
                                r.name, spec.host
                            ),
                        )
                        .with_related(format!("rule `{}` is here", r.name), r.origin.clone()),
                    );
                }
                continue;
            };
            if let Some(other) = pinned.get(&domain) {
                let place = match by {
                    None => format!("host `{domain}`"),
                    Some(label) => format!("{label} `{domain}`"),
                };
                sink.push(
                    Diagnostic::new(
                        spec.origin.clone(),
                        format!(
                            "rule `{}` separates {other} and {vm}, but both are pinned to {place}",
                            r.name
                        ),
                    )
                    .with_related(format!("rule `{}` is here", r.name), r.origin.clone())
                    .with_help("give one of them another host, or `hosts` to let berth choose"),
                );
                continue;
            }
            pinned.insert(domain, vm);
        }
    }
}
