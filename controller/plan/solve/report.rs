//! What the solver tells people: why a VM goes where it goes, each
//! candidate host's verdict, and the headroom of each host group.

use std::fmt::Write as _;

use super::*;

impl Solver<'_> {
    /// Why the unit's host: "to hv03, the least used of ...".
    pub(super) fn why_here(&self, u: usize) -> String {
        let Some(h) = self.at[u] else {
            return String::new();
        };
        let unit = &self.units[u];
        let pct = self.load[h].saturating_mul(100) / self.hosts[h].obs.memory_mib.max(1);
        let mut s = format!("to {}", self.host_name(h));
        let (moves, _) = self.cost(u, h);
        if unit.members.len() > 1 && moves < unit.members.len() {
            write!(s, ", where the rest of its together set is").ok();
        } else if unit.allowed.len() <= 1 {
            write!(s, ", its only allowed host").ok();
        } else {
            write!(
                s,
                ", the least used of the allowed hosts that fit ({pct}% memory after)"
            )
            .ok();
        }
        s
    }

    /// Headroom of each host group and of all hosts, as the plan leaves
    /// them (only when groups or `headroom` are declared).
    pub(super) fn report_headroom(&self) -> Vec<Headroom> {
        let d = self.inp.desired;
        if d.intent.headroom == 0 && d.intent.host_groups.is_empty() {
            return Vec::new();
        }
        let failures = d.intent.headroom.max(1);
        let mut out: Vec<Headroom> = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, gi)| Headroom {
                group: gi.name.clone(),
                failures,
                capacity_mib: gi.capacity,
                used_mib: self.group_used(g),
                reserve_mib: gi.reserve,
                margin_mib: self.group_margin(g),
                enforced: d.intent.headroom > 0,
            })
            .collect();
        let mut caps: Vec<u64> = self
            .hosts
            .iter()
            .filter(|h| h.usable)
            .map(|h| h.obs.memory_mib)
            .collect();
        caps.sort_unstable_by(|a, b| b.cmp(a));
        let capacity: u64 = caps.iter().sum();
        let reserve: u64 = caps.iter().take(failures as usize).sum();
        let used: u64 = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].usable)
            .map(|h| self.load[h])
            .sum();
        out.push(Headroom {
            group: "*".to_string(),
            failures,
            capacity_mib: capacity,
            used_mib: used,
            reserve_mib: reserve,
            margin_mib: capacity as i64 - reserve as i64 - used as i64,
            enforced: d.intent.headroom > 0,
        });
        out
    }

    pub(super) fn verdicts(&mut self, vm: &str) -> Option<Vec<Verdict>> {
        let m = self.inp.choosers.iter().position(|c| c.vm.name == vm)?;
        let u = self.units.iter().position(|x| x.members.contains(&m))?;
        let placed = self.at[u];
        let c = &self.inp.choosers[m];
        let names: Vec<String> = c
            .spec
            .choice
            .as_ref()
            .map(|ch| ch.hosts.clone())
            .unwrap_or_default();
        self.unplace(u);
        let mut out = Vec::new();
        for name in names {
            let lacks = match self.host_idx.get(name.as_str()) {
                Some(h) => self.lacks(u, *h, None, &[]),
                None => vec!["not observed".to_string()],
            };
            out.push(Verdict {
                chosen: placed.is_some_and(|p| self.host_name(p) == name),
                current: c.vm.host == name,
                host: name,
                lacks,
            });
        }
        if let Some(p) = placed {
            self.place(u, p);
        }
        Some(out)
    }
}
