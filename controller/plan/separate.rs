//! Keeping `separate` rules at every moment of a plan's execution.
//!
//! The solver makes the end state keep every rule; this makes the way there
//! keep them too. A VM in flight counts on both its hosts: a member of a
//! `separate` rule may start a move into a place (a host, or a value of the
//! rule's label) only once every other member there has finished leaving.
//! [`Guard`] tracks, while [`super::order`] emits moves one by one, who
//! occupies each place and which move ends each stay; an arrival waits
//! (`after`) for those moves, or cannot be emitted yet. Since every
//! execution that respects `after` finishes a leaving move before the next
//! member's arrival starts, no two members share a place at any moment.
//! When two members must swap places, the order builder first sends one of
//! them to a third place (a hop) that this guard admits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::provider::Observed;
use crate::spec::{Desired, RuleKind};

/// One `separate` rule as the guard sees it.
struct Rule {
    name: String,
    /// Label it separates by; `None`: hosts.
    by: Option<String>,
}

/// Who is where, per rule and place, and which move ends each stay.
#[derive(Default)]
pub(super) struct Guard {
    rules: Vec<Rule>,
    /// Rules each member VM is in.
    member_of: HashMap<String, Vec<usize>>,
    /// Host labels, for rules with `by`.
    labels: HashMap<String, BTreeMap<String, String>>,
    /// Per rule, per place: member -> the move that ends its stay there
    /// (`None`: it stays, or leaves in no move of this plan).
    occ: Vec<HashMap<String, BTreeMap<String, Option<u32>>>>,
}

impl Guard {
    /// The guard for a spec and the fleet as observed: every member where
    /// it is, and a member in flight on both its hosts.
    pub fn new(desired: &Desired, observed: &Observed) -> Guard {
        let mut g = Guard {
            labels: desired
                .hosts
                .iter()
                .map(|(n, h)| (n.clone(), h.labels.clone()))
                .collect(),
            ..Guard::default()
        };
        for r in &desired.intent.rules {
            let RuleKind::Separate { by } = &r.kind else {
                continue;
            };
            let ri = g.rules.len();
            g.rules.push(Rule {
                name: r.name.clone(),
                by: by.clone(),
            });
            g.occ.push(HashMap::new());
            for vm in &r.vms {
                g.member_of.entry(vm.clone()).or_default().push(ri);
                let Some(o) = observed.vms.get(vm) else {
                    continue;
                };
                for host in std::iter::once(&o.host).chain(o.migrating_to.iter()) {
                    if let Some(place) = g.place(ri, host) {
                        g.occ[ri].entry(place).or_default().insert(vm.clone(), None);
                    }
                }
            }
        }
        g
    }

    /// The place of `host` under rule `ri`.
    fn place(&self, ri: usize, host: &str) -> Option<String> {
        match &self.rules[ri].by {
            None => Some(host.to_string()),
            Some(label) => self.labels.get(host).and_then(|l| l.get(label).cloned()),
        }
    }

    /// Whether `vm` may start a move to `to` now. `Ok`: the moves it must
    /// wait for; `Err`: why not yet (a member there that has not left).
    pub fn admit(&self, vm: &str, to: &str) -> Result<BTreeSet<u32>, String> {
        let mut deps = BTreeSet::new();
        for ri in self.member_of.get(vm).into_iter().flatten() {
            let Some(place) = self.place(*ri, to) else {
                continue;
            };
            // Also within its own place: a member moving inside a place it
            // already shares (a break the plan inherited) waits until the
            // other has left, so no arrival ever joins another member.
            for (other, leave) in self.occ[*ri].get(&place).into_iter().flatten() {
                if other == vm {
                    continue;
                }
                match leave {
                    Some(id) => {
                        deps.insert(*id);
                    }
                    None => {
                        let r = &self.rules[*ri];
                        let at = match &r.by {
                            Some(label) => format!("{label} {place}"),
                            None => place.clone(),
                        };
                        return Err(format!("rule {}: {other} is on {at}", r.name));
                    }
                }
            }
        }
        Ok(deps)
    }

    /// Records move `id` of `vm` from `from` to `to`.
    pub fn moved(&mut self, vm: &str, from: &str, to: &str, id: u32) {
        let Some(rules) = self.member_of.get(vm).cloned() else {
            return;
        };
        for ri in rules {
            let (pf, pt) = (self.place(ri, from), self.place(ri, to));
            if pf == pt {
                continue;
            }
            if let Some(pf) = pf
                && let Some(slot) = self.occ[ri].get_mut(&pf).and_then(|m| m.get_mut(vm))
            {
                *slot = Some(id);
            }
            if let Some(pt) = pt {
                self.occ[ri]
                    .entry(pt)
                    .or_default()
                    .insert(vm.to_string(), None);
            }
        }
    }

    /// Whether `vm`, on `from`, keeps one of the `wanted` moves (vm, to)
    /// of another member from starting.
    pub fn in_the_way<'a>(
        &self,
        vm: &str,
        from: &str,
        wanted: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        let Some(rules) = self.member_of.get(vm) else {
            return false;
        };
        let here: Vec<(usize, Option<String>)> =
            rules.iter().map(|r| (*r, self.place(*r, from))).collect();
        for (other, to) in wanted {
            if other == vm {
                continue;
            }
            let Some(theirs) = self.member_of.get(other) else {
                continue;
            };
            for (ri, place) in &here {
                if place.is_some() && theirs.contains(ri) && self.place(*ri, to) == *place {
                    return true;
                }
            }
        }
        false
    }

    /// Whether a move of `vm` from `from` to `to` takes it out of its place
    /// under every rule it is in (a hop that helps another member in).
    pub fn leaves(&self, vm: &str, from: &str, to: &str) -> bool {
        self.member_of.get(vm).into_iter().flatten().all(|ri| {
            let here = self.place(*ri, from);
            here.is_none() || self.place(*ri, to) != here
        })
    }

    /// Whether any rule is tracked.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
