//! Checks documents and builds the typed [`Desired`] model.
//!
//! Validation has two halves. [`convert`] checks one parsed document on its
//! own and turns it into a [`Part`]: every rule that needs only that
//! document (names, numbers, ACLs, durations, a Fleet's own consistency)
//! runs here, on the loader's worker threads, and a part can be kept
//! between loads, so `watch` converts only the files that changed.
//! [`Merger`] folds parts in load order into one desired state and settles
//! what needs every document: duplicates across files, the single policy
//! and Controller, references to hosts, and intent.
//!
//! Every rule reports into a [`Sink`], so a run shows all problems at once,
//! each at the position of the offending value, with the other position when
//! two places disagree (a duplicate names both).

mod document;
mod fields;
mod fleet;
mod patch;

use super::diag::{Diagnostic, Origin, Sink};
use super::intent::{ChoiceRaw, Collected};
use super::load::{DocBody, ParsedDoc, closest};
use super::model::*;

pub use fields::{check_name, parse_address, parse_port, parse_protocol};
pub(crate) use patch::patch;

/// Where a simulated clock starts when the Fleet does not say:
/// `2026-01-05T00:00:00Z`, a Monday.
pub const DEFAULT_START_TIME: jiff::Timestamp = jiff::Timestamp::constant(1_767_571_200, 0);

/// One document, checked on its own: what it declares and the problems
/// found in it alone (reported on every load that includes it).
#[derive(Debug, Clone)]
pub(crate) struct Part {
    body: PartBody,
    local: Vec<Diagnostic>,
}

#[derive(Debug, Clone)]
enum PartBody {
    Placement(Box<PlacementPart>),
    Controller(Box<ControllerPart>),
    Fleet(Option<Box<FleetSpec>>),
}

/// What a Placement document declares.
#[derive(Debug, Clone)]
struct PlacementPart {
    policy: Option<PolicyPart>,
    hosts: Vec<HostSpec>,
    vms: Vec<VmPart>,
    intent: Collected,
    status: Option<FleetStatusSpec>,
}

/// A policy and its problems, which count only for the first policy (a
/// second one is reported as such, not checked).
#[derive(Debug, Clone)]
struct PolicyPart {
    at: Origin,
    policy: Policy,
    headroom: Option<u32>,
    problems: Vec<Diagnostic>,
}

/// A Controller and its problems, which count only for the first one.
#[derive(Debug, Clone)]
struct ControllerPart {
    at: Origin,
    spec: Option<ControllerSpec>,
    problems: Vec<Diagnostic>,
}

/// One VM entry with a usable name.
#[derive(Debug, Clone)]
struct VmPart {
    /// Shared with every load that keeps this document (see [`Desired::vms`]).
    spec: std::sync::Arc<VmSpec>,
    /// Whether its `host` (if any) is a valid name; an entry with a bad
    /// host still takes its name (a later entry of it is a duplicate).
    usable: bool,
    /// Where `host` and each fallback were written, for references.
    host_at: Option<Origin>,
    fallback_at: Vec<Origin>,
    choice: Option<ChoiceRaw>,
}

/// Checks one document on its own.
pub(crate) fn convert(doc: &ParsedDoc) -> Part {
    let mut sink = Sink::default();
    let body = match &doc.body {
        DocBody::Placement(p) => {
            PartBody::Placement(Box::new(document::placement(&doc.ctx, p, &mut sink)))
        }
        DocBody::Controller(c) => PartBody::Controller(Box::new(document::controller(&doc.ctx, c))),
        DocBody::Fleet(f) => PartBody::Fleet(fleet::fleet(&doc.ctx, f, &mut sink).map(Box::new)),
    };
    Part {
        body,
        local: sink.into_diagnostics(),
    }
}

/// Folds parts, in load order, into one desired state.
#[derive(Default)]
pub(crate) struct Merger {
    desired: Desired,
    policy_at: Option<Origin>,
    controller_at: Option<Origin>,
    /// VMs whose host and fallbacks are checked once all hosts are known.
    vm_refs: Vec<VmRefs>,
    /// Host choices, groups and rules, settled once every VM is known.
    intent: Collected,
}

struct VmRefs {
    vm: std::sync::Arc<VmSpec>,
    host_at: Option<Origin>,
    fallback_at: Vec<Origin>,
}

impl Merger {
    /// Adds the next document's part. The part is only read (its VMs are
    /// shared, the rest copied), so a load can keep it for the next one.
    pub(crate) fn add(&mut self, part: &Part, sink: &mut Sink) {
        sink.extend(part.local.iter().cloned());
        match &part.body {
            PartBody::Placement(p) => self.placement(p, sink),
            PartBody::Controller(c) => self.add_controller(c, sink),
            PartBody::Fleet(f) => self.desired.fleets.extend(f.as_deref().cloned()),
        }
    }

    /// Whether a document merged so far declares a `policy`.
    pub(crate) fn has_policy(&self) -> bool {
        self.policy_at.is_some()
    }

    /// Whether no document merged so far says anything about intent (host
    /// groups, rules, VMs choosing among hosts), so settling it changes
    /// nothing; see [`patch`].
    pub(crate) fn intent_free(&self) -> bool {
        self.intent.is_empty()
    }

    /// The Controller merged so far (the first one, when it was valid).
    pub(crate) fn controller(&self) -> Option<&ControllerSpec> {
        self.desired.controller.as_ref()
    }

    /// Settles the rules that need every document, and returns the result.
    pub(crate) fn finish(mut self, sink: &mut Sink) -> Desired {
        self.references(sink);
        let intent = std::mem::take(&mut self.intent);
        intent.resolve(&mut self.desired, sink);
        self.desired
    }

    fn placement(&mut self, part: &PlacementPart, sink: &mut Sink) {
        self.desired.placement_documents += 1;
        if let Some(policy) = &part.policy {
            if let Some(first) = &self.policy_at {
                sink.push(
                    Diagnostic::new(policy.at.clone(), "more than one `policy` in the documents")
                        .with_related("the first policy is here", first.clone())
                        .with_help("keep a single policy; it applies to the whole fleet"),
                );
            } else {
                self.policy_at = Some(policy.at.clone());
                self.desired.policy = policy.policy.clone();
                if let Some(headroom) = policy.headroom {
                    self.desired.intent.headroom = headroom;
                }
                sink.extend(policy.problems.iter().cloned());
            }
        }
        for host in &part.hosts {
            if let Some(prev) = self.desired.hosts.get(&host.name) {
                sink.push(
                    Diagnostic::new(
                        host.origin.clone(),
                        format!("host `{}` is declared twice", host.name),
                    )
                    .with_related("first declared here", prev.origin.clone()),
                );
                continue;
            }
            self.desired.hosts.insert(host.name.clone(), host.clone());
        }
        for vm in &part.vms {
            use std::collections::btree_map::Entry;
            let slot = match self.desired.vms.entry(vm.spec.name.clone()) {
                Entry::Occupied(prev) => {
                    sink.push(
                        Diagnostic::new(
                            vm.spec.origin.clone(),
                            format!("VM `{}` is declared twice", vm.spec.name),
                        )
                        .with_related("first declared here", prev.get().origin.clone()),
                    );
                    continue;
                }
                Entry::Vacant(slot) => slot,
            };
            if !vm.usable {
                continue;
            }
            if let Some(choice) = &vm.choice {
                self.intent.choose(&vm.spec.name, choice.clone());
            }
            self.vm_refs.push(VmRefs {
                vm: vm.spec.clone(),
                host_at: vm.host_at.clone(),
                fallback_at: vm.fallback_at.clone(),
            });
            slot.insert(vm.spec.clone());
        }
        self.intent.extend(part.intent.clone());
        if let Some(st) = &part.status {
            match &mut self.desired.status {
                None => self.desired.status = Some(st.clone()),
                Some(existing) => {
                    existing.hosts.extend(st.hosts.clone());
                    existing.vms.extend(st.vms.clone());
                }
            }
        }
    }

    fn add_controller(&mut self, part: &ControllerPart, sink: &mut Sink) {
        if let Some(first) = &self.controller_at {
            sink.push(
                Diagnostic::new(part.at.clone(), "more than one Controller document")
                    .with_related("the first Controller is here", first.clone())
                    .with_help("berth reads its settings from exactly one Controller document"),
            );
            return;
        }
        self.controller_at = Some(part.at.clone());
        sink.extend(part.problems.iter().cloned());
        self.desired.controller = part.spec.clone();
    }

    /// Checks that VM hosts and fallbacks name declared hosts.
    fn references(&mut self, sink: &mut Sink) {
        let hosts: Vec<&str> = self.desired.hosts.keys().map(String::as_str).collect();
        // One hash lookup a reference, not a search of the ordered map.
        let declared: std::collections::HashSet<&str> = hosts.iter().copied().collect();
        for r in &self.vm_refs {
            let vm = &r.vm;
            let mut check = |host: &str, origin: &Origin, what: &str| {
                if declared.contains(host) {
                    return;
                }
                let mut d = Diagnostic::new(
                    origin.clone(),
                    format!(
                        "VM `{}` names {what} `{host}`, which is not a declared host",
                        vm.name
                    ),
                );
                d = match closest(host, hosts.iter().copied()) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help("declare it under `spec.hosts`"),
                };
                sink.push(d);
            };
            if let Some(at) = &r.host_at {
                check(&vm.host, at, "host");
            }
            for (f, o) in vm.fallback.iter().zip(&r.fallback_at) {
                check(f, o, "fallback");
            }
        }
    }
}
