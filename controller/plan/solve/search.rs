//! The search: keep what may stay, evict what must move, place it, and
//! repair what finds no place by moving what is in its way.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::*;

/// Moves, memory moved, memory use after, host: lower is better.
type CostKey = (usize, u64, u64, usize);

impl Solver<'_> {
    pub(super) fn run(&mut self) -> (Vec<Option<Need>>, Vec<Blocked>) {
        let n = self.units.len();
        let mut need: Vec<Option<Need>> = vec![None; n];
        let mut blocked = Vec::new();
        let maint = |s: &Self, h: usize| {
            s.inp
                .desired
                .hosts
                .get(s.host_name(h))
                .is_some_and(|x| x.maintenance)
        };
        // 1. Stay where allowed.
        for u in 0..n {
            let unit = &self.units[u];
            match unit.home {
                Some(h) if unit.frozen => self.place(u, h),
                Some(h)
                    if unit.allowed.contains(&h)
                        && self.hosts[h].usable
                        && unit.forced.is_none_or(|f| f == h) =>
                {
                    self.place(u, h)
                }
                Some(h) if maint(self, h) => {
                    need[u] = Some(Need {
                        reason: Reason::Maintenance,
                        why: format!("{} is in maintenance", self.host_name(h)),
                        avoid_group: None,
                    })
                }
                Some(h) if unit.forced.is_some() => {
                    need[u] = Some(Need {
                        reason: Reason::Rule,
                        why: format!(
                            "a together rule ties it to {}",
                            unit.forced.map_or("", |f| self.host_name(f))
                        ),
                        avoid_group: None,
                    });
                    let _ = h;
                }
                Some(h) => {
                    let group = self.units[u].members.first().and_then(|m| {
                        self.inp.choosers[*m]
                            .spec
                            .choice
                            .as_ref()
                            .and_then(|c| c.group.clone())
                    });
                    need[u] = Some(Need {
                        reason: Reason::Placement,
                        why: match group {
                            Some(g) if self.units[u].members.len() == 1 => {
                                format!("{} is not in host group {g}", self.host_name(h))
                            }
                            _ => format!("{} is not among its allowed hosts", self.host_name(h)),
                        },
                        avoid_group: None,
                    })
                }
                None => {
                    let mut hosts: Vec<&str> = unit
                        .members
                        .iter()
                        .map(|m| self.inp.choosers[*m].vm.host.as_str())
                        .collect();
                    hosts.sort_unstable();
                    hosts.dedup();
                    let rule = self.together_rule(u);
                    need[u] = Some(Need {
                        reason: Reason::Rule,
                        why: format!("rule {rule}: its VMs are on {}", hosts.join(" and ")),
                        avoid_group: None,
                    })
                }
            }
        }
        // 2. Hosts over their memory once fixed VMs arrive.
        for h in 0..self.hosts.len() {
            let cap = self.hosts[h].obs.memory_mib;
            while self.load[h] > cap {
                let over = self.load[h] - cap;
                let mut on: Vec<usize> = self.on[h]
                    .iter()
                    .copied()
                    .filter(|x| !self.units[*x].frozen && self.units[*x].mem > 0)
                    .collect();
                if on.is_empty() {
                    break;
                }
                on.sort_by_key(|x| (self.units[*x].mem, *x));
                let pick = on
                    .iter()
                    .copied()
                    .find(|x| self.units[*x].mem >= over)
                    .unwrap_or_else(|| on[on.len() - 1]);
                self.unplace(pick);
                need[pick] = Some(Need {
                    reason: Reason::Placement,
                    why: format!(
                        "{} would be {} over its memory once the plan's other moves are done",
                        self.host_name(h),
                        gib(over)
                    ),
                    avoid_group: None,
                });
            }
        }
        // 3. Separate rules broken now.
        for ri in 0..self.rules.len() {
            let mut domains: Vec<usize> = self.occ[ri]
                .iter()
                .filter(|(_, v)| v.len() > 1)
                .map(|(d, _)| *d)
                .collect();
            domains.sort_unstable();
            for dm in domains {
                let occ = self.occ[ri][&dm].clone();
                let staying = occ.iter().find_map(|o| match o {
                    Occ::Fixed(_) => Some(*o),
                    Occ::Unit(x) if self.units[*x].frozen => Some(*o),
                    _ => None,
                });
                let keep = staying.or_else(|| {
                    occ.iter().copied().min_by_key(|o| match o {
                        Occ::Unit(x) => (
                            self.units[*x].allowed.len(),
                            std::cmp::Reverse(self.units[*x].mem),
                            *x,
                        ),
                        Occ::Fixed(_) => (0, std::cmp::Reverse(u64::MAX), 0),
                    })
                });
                let Some(keep) = keep else { continue };
                for o in occ {
                    let Occ::Unit(x) = o else { continue };
                    if o == keep || self.units[x].frozen {
                        continue;
                    }
                    let Some(h) = self.at[x] else { continue };
                    let words = self.place_words(ri, h);
                    let other = self.occupant_name(ri, keep);
                    self.unplace(x);
                    need[x] = Some(Need {
                        reason: Reason::Rule,
                        why: format!("rule {}: {other} is also on {words}", self.rules[ri].name),
                        avoid_group: None,
                    });
                }
            }
        }
        // 4. Headroom of host groups.
        if self.headroom > 0 {
            for g in 0..self.groups.len() {
                if self.group_margin(g) >= 0 {
                    continue;
                }
                let mut inside: Vec<usize> = (0..n)
                    .filter(|x| {
                        self.at[*x].is_some_and(|h| self.groups[g].hosts.contains(&h))
                            && !self.units[*x].frozen
                            && self.units[*x].mem > 0
                            && self.units[*x]
                                .allowed
                                .iter()
                                .any(|h| !self.groups[g].hosts.contains(h))
                    })
                    .collect();
                inside.sort_by_key(|x| (std::cmp::Reverse(self.units[*x].mem), *x));
                for x in inside {
                    let short = self.group_margin(g);
                    if short >= 0 {
                        break;
                    }
                    let Some(old) = self.at[x] else { continue };
                    self.unplace(x);
                    match self.best_host(x, Some(g)) {
                        Some(to) => {
                            self.place(x, to);
                            need[x] = Some(Need {
                                reason: Reason::Headroom,
                                why: format!(
                                    "headroom {}: group {} is {} short of surviving {} host failure{}",
                                    self.headroom,
                                    self.groups[g].name,
                                    gib(short.unsigned_abs()),
                                    self.headroom,
                                    if self.headroom == 1 { "" } else { "s" }
                                ),
                                avoid_group: Some(g),
                            });
                        }
                        None => self.place(x, old),
                    }
                }
            }
        }
        // 5. Place what must move, most constrained first.
        let mut order: Vec<usize> = (0..n)
            .filter(|u| self.at[*u].is_none() && need[*u].is_some())
            .collect();
        order.sort_by_key(|u| {
            (
                self.units[*u].allowed.len(),
                std::cmp::Reverse(self.units[*u].mem),
                *u,
            )
        });
        let mut unplaced = Vec::new();
        for u in order {
            let avoid = need[u].as_ref().and_then(|x| x.avoid_group);
            match self.best_host(u, avoid) {
                Some(h) => self.place(u, h),
                None => unplaced.push(u),
            }
        }
        // 6. Repair: move what is in the way, when that is cheapest.
        for u in unplaced {
            let avoid = need[u].as_ref().and_then(|x| x.avoid_group);
            let mut moved = Vec::new();
            let mut protect = vec![u];
            let placed = self.eject_any(u, avoid, 2, &mut moved, &mut protect);
            // A VM leaving maintenance takes a host even when that costs a
            // group its headroom: the host must be emptied.
            let placed = placed
                || (need[u]
                    .as_ref()
                    .is_some_and(|x| x.reason == Reason::Maintenance)
                    && self.place_despite_headroom(u));
            if placed {
                let name = self.unit_names(u);
                let reason = need[u].as_ref().map_or(Reason::Placement, |x| x.reason);
                for b in moved {
                    if need[b].is_none() {
                        need[b] = Some(Need {
                            reason,
                            why: format!("makes room for {name}"),
                            avoid_group: None,
                        });
                    }
                }
            }
            self.log.clear();
            if placed {
                continue;
            }
            let why = need[u].as_ref().map_or(String::new(), |x| x.why.clone());
            let mut verdicts: Vec<(usize, String, Vec<String>)> = self.units[u]
                .allowed
                .iter()
                .map(|h| {
                    let l = self.lacks(u, *h, avoid, &[]);
                    (l.len(), self.host_name(*h).to_string(), l)
                })
                .collect();
            verdicts.sort();
            let mut text = if why.is_empty() {
                "no allowed host can take it".to_string()
            } else {
                format!("it must move ({why}), but no allowed host can take it")
            };
            if verdicts.is_empty() {
                text.push_str(": it has no allowed host in the fleet");
            }
            for (i, (_, host, l)) in verdicts.iter().take(3).enumerate() {
                text.push_str(if i == 0 { ": " } else { "; " });
                write!(text, "{host}: {}", l.join(", ")).ok();
            }
            if verdicts.len() > 3 {
                write!(text, "; and {} more", verdicts.len() - 3).ok();
            }
            for m in &self.units[u].members {
                blocked.push(Blocked {
                    vm: self.inp.choosers[*m].vm.name.clone(),
                    reason: text.clone(),
                });
            }
        }
        // Frozen units that should move.
        for u in 0..n {
            if self.units[u].frozen && !self.units[u].stuck && need[u].is_some() {
                let why = need[u].as_ref().map_or(String::new(), |x| x.why.clone());
                for m in &self.units[u].members {
                    let c = &self.inp.choosers[*m];
                    blocked.push(Blocked {
                        vm: c.vm.name.clone(),
                        reason: format!(
                            "it must move ({why}), but its host {} cannot be reached",
                            c.vm.host
                        ),
                    });
                }
            }
        }
        (need, blocked)
    }

    /// Units on `h` or in the way of `u` there; `None` when something in
    /// the way cannot move (a fixed or protected member, too little memory
    /// even without the units).
    pub(super) fn blockers(&self, u: usize, h: usize, protect: &[usize]) -> Option<Vec<usize>> {
        if !self.hosts[h].usable || !self.units[u].allowed.contains(&h) {
            return None;
        }
        let mut out: BTreeSet<usize> = BTreeSet::new();
        for ri in &self.unit_rules[u] {
            let dm = self.rules[*ri].domain_of[h]?;
            for o in self.occ[*ri].get(&dm).into_iter().flatten() {
                match o {
                    Occ::Fixed(_) => return None,
                    Occ::Unit(x) if *x == u => {}
                    Occ::Unit(x) if self.units[*x].frozen || protect.contains(x) => return None,
                    Occ::Unit(x) => {
                        out.insert(*x);
                    }
                }
            }
        }
        // Memory: the smallest single unit on h that frees enough, else
        // the largest first until it fits.
        let cap = self.hosts[h].obs.memory_mib;
        let here = if self.at[u] == Some(h) {
            self.units[u].mem
        } else {
            0
        };
        let freed: u64 = out
            .iter()
            .filter(|x| self.at[**x] == Some(h))
            .map(|x| self.units[*x].mem)
            .sum();
        let mut load = self.load[h].saturating_sub(freed + here);
        let need = self.units[u].mem;
        if load + need > cap {
            let mut on: Vec<usize> = self.on[h]
                .iter()
                .copied()
                .filter(|x| {
                    !out.contains(x)
                        && *x != u
                        && !self.units[*x].frozen
                        && !protect.contains(x)
                        && self.units[*x].mem > 0
                })
                .collect();
            on.sort_by_key(|x| (std::cmp::Reverse(self.units[*x].mem), *x));
            let over = load + need - cap;
            if let Some(x) = on
                .iter()
                .rev()
                .copied()
                .find(|x| self.units[*x].mem >= over)
            {
                load -= self.units[x].mem;
                out.insert(x);
            } else {
                for x in on {
                    if load + need <= cap {
                        break;
                    }
                    load = load.saturating_sub(self.units[x].mem);
                    out.insert(x);
                }
            }
            if load + need > cap {
                return None;
            }
        }
        Some(out.into_iter().collect())
    }

    /// Places `u` (now unplaced): on the best host that can take it, else
    /// on the allowed host where the units in its way are cheapest to move,
    /// moving them too (recursively, `depth` more levels). On success the
    /// moved units are added to `moved`; on failure nothing changes.
    pub(super) fn eject_any(
        &mut self,
        u: usize,
        avoid: Option<usize>,
        depth: usize,
        moved: &mut Vec<usize>,
        protect: &mut Vec<usize>,
    ) -> bool {
        if let Some(h) = self.best_host(u, avoid) {
            self.set(u, Some(h));
            return true;
        }
        let mut options: Vec<(CostKey, usize, Vec<usize>)> = Vec::new();
        for h in self.units[u].allowed.clone() {
            let Some(blockers) = self.blockers(u, h, protect) else {
                continue;
            };
            if blockers.is_empty() {
                continue;
            }
            let moves: usize = blockers.iter().map(|b| self.units[*b].members.len()).sum();
            let data: u64 = blockers.iter().map(|b| self.units[*b].mem).sum();
            options.push(((moves, data, self.use_after(u, h), h), h, blockers));
        }
        options.sort();
        for (_, h, blockers) in options.into_iter().take(6) {
            let mark = self.mark();
            let (moved_len, protect_len) = (moved.len(), protect.len());
            for b in &blockers {
                self.set(*b, None);
            }
            let mut ok = self.lacks(u, h, avoid, &[]).is_empty();
            if ok {
                self.set(u, Some(h));
                protect.extend(blockers.iter().copied());
                for b in &blockers {
                    let placed = match self.best_host(*b, None) {
                        Some(x) => {
                            self.set(*b, Some(x));
                            true
                        }
                        None => depth > 0 && self.eject_any(*b, None, depth - 1, moved, protect),
                    };
                    if !placed {
                        ok = false;
                        break;
                    }
                    moved.push(*b);
                }
            }
            if ok {
                protect.truncate(protect_len);
                return true;
            }
            self.rollback(mark);
            moved.truncate(moved_len);
            protect.truncate(protect_len);
        }
        false
    }

    /// Places `u` on the best allowed host whose only lack is headroom.
    fn place_despite_headroom(&mut self, u: usize) -> bool {
        let best = self.units[u]
            .allowed
            .iter()
            .copied()
            .filter(|h| {
                self.lacks(u, *h, None, &[])
                    .iter()
                    .all(|l| l.starts_with("headroom"))
            })
            .min_by_key(|h| (self.cost(u, *h), self.use_after(u, *h), *h));
        match best {
            Some(h) => {
                self.set(u, Some(h));
                true
            }
            None => false,
        }
    }

    pub(super) fn together_rule(&self, u: usize) -> String {
        let names: BTreeSet<&str> = self.units[u]
            .members
            .iter()
            .map(|m| self.inp.choosers[*m].vm.name.as_str())
            .collect();
        self.inp
            .desired
            .intent
            .rules
            .iter()
            .find(|r| {
                r.kind == RuleKind::Together && r.vms.iter().any(|v| names.contains(v.as_str()))
            })
            .map_or_else(|| "together".to_string(), |r| r.name.clone())
    }
}
