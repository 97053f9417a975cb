//! The solver's state: who is where, what each host lacks for a unit, and
//! what a placement costs.

use super::*;

impl Solver<'_> {
    pub(super) fn host_name(&self, h: usize) -> &str {
        &self.hosts[h].obs.name
    }

    /// Moves unit `u` to `to` (`None`: nowhere yet), logged for
    /// [`Self::rollback`].
    pub(super) fn set(&mut self, u: usize, to: Option<usize>) {
        self.log.push((u, self.at[u]));
        self.unplace(u);
        if let Some(h) = to {
            self.place(u, h);
        }
    }

    /// A point to roll back to.
    pub(super) fn mark(&self) -> usize {
        self.log.len()
    }

    /// Undoes every [`Self::set`] since `mark`.
    pub(super) fn rollback(&mut self, mark: usize) {
        while self.log.len() > mark {
            let Some((u, was)) = self.log.pop() else {
                break;
            };
            self.unplace(u);
            if let Some(h) = was {
                self.place(u, h);
            }
        }
    }

    pub(super) fn place(&mut self, u: usize, h: usize) {
        self.unplace(u);
        self.at[u] = Some(h);
        self.on[h].insert(u);
        self.load[h] += self.units[u].mem;
        self.disk_in[h] += self.disks_to(u, h);
        // A VM blocked in an earlier round keeps its memory where it is,
        // but its rules are already reported broken: it displaces no one.
        if self.units[u].stuck {
            return;
        }
        for ri in self.unit_rules[u].clone() {
            if let Some(dm) = self.rules[ri].domain_of[h] {
                self.occ[ri].entry(dm).or_default().push(Occ::Unit(u));
            }
        }
    }

    pub(super) fn unplace(&mut self, u: usize) {
        let Some(h) = self.at[u].take() else { return };
        self.on[h].remove(&u);
        self.load[h] -= self.units[u].mem;
        self.disk_in[h] -= self.disks_to(u, h);
        for ri in self.unit_rules[u].clone() {
            if let Some(dm) = self.rules[ri].domain_of[h]
                && let Some(v) = self.occ[ri].get_mut(&dm)
            {
                v.retain(|o| *o != Occ::Unit(u));
            }
        }
    }

    pub(super) fn group_used(&self, g: usize) -> u64 {
        self.groups[g]
            .hosts
            .iter()
            .filter(|h| self.hosts[**h].usable)
            .map(|h| self.load[*h])
            .sum()
    }

    pub(super) fn group_margin(&self, g: usize) -> i64 {
        let gi = &self.groups[g];
        gi.capacity as i64 - gi.reserve as i64 - self.group_used(g) as i64
    }

    pub(super) fn occupant_name(&self, ri: usize, o: Occ) -> String {
        match o {
            Occ::Fixed(f) => self.rules[ri].fixed[f].0.clone(),
            Occ::Unit(u) => self.unit_names(u),
        }
    }

    pub(super) fn unit_names(&self, u: usize) -> String {
        self.units[u]
            .members
            .iter()
            .map(|m| self.inp.choosers[*m].vm.name.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    pub(super) fn place_words(&self, ri: usize, h: usize) -> String {
        let r = &self.rules[ri];
        match (&r.by, r.domain_of[h]) {
            (Some(label), Some(dm)) => format!("{label} {}", r.domain_names[dm]),
            _ => self.host_name(h).to_string(),
        }
    }

    /// What host `h` lacks for unit `u` (empty: it can go there), ignoring
    /// the occupants in `ignore`.
    pub(super) fn lacks(
        &self,
        u: usize,
        h: usize,
        avoid: Option<usize>,
        ignore: &[usize],
    ) -> Vec<String> {
        let unit = &self.units[u];
        let name = self.host_name(h).to_string();
        let mut out = Vec::new();
        if !unit.allowed.contains(&h) {
            if unit.forced.is_some() {
                out.push("not where the VMs it must be together with are".to_string());
            } else {
                out.push("not among its allowed hosts".to_string());
            }
            return out;
        }
        let hi = &self.hosts[h];
        if !hi.obs.reachable {
            out.push("cannot be reached".to_string());
            return out;
        }
        if self
            .inp
            .desired
            .hosts
            .get(&name)
            .is_some_and(|s| s.maintenance)
        {
            out.push("in maintenance".to_string());
            return out;
        }
        for m in &unit.members {
            let c = &self.inp.choosers[*m];
            if c.vm.host == name {
                continue;
            }
            let Some(from) = self.inp.observed.hosts.get(&c.vm.host) else {
                continue;
            };
            let declared = declared_path(self.inp.desired, &name);
            if let Some(why) = unfit(c.vm, Some(c.spec), from, hi.obs, self.inp.caps)
                .or_else(|| storage::unfit(c.vm, from, hi.obs, declared, self.inp.caps))
            {
                out.push(why);
            }
        }
        // Disks that travel with the VMs: the volume they would go to must
        // hold them besides every other copy headed to this host.
        let disks = self.disks_to(u, h);
        if disks > 0 {
            let here = if self.at[u] == Some(h) { disks } else { 0 };
            let room = storage::room(
                hi.obs,
                declared_path(self.inp.desired, &name),
                self.disk_in[h] - here,
            );
            if disks > room {
                out.push(format!(
                    "disk space: its disks need {}, {} free on the volume they would go to once the plan is done",
                    gib(disks),
                    gib(room)
                ));
            }
        }
        let here = if self.at[u] == Some(h) { unit.mem } else { 0 };
        let free = hi.obs.memory_mib.saturating_sub(self.load[h] - here);
        if unit.mem > free {
            let mut freed = 0u64;
            for o in ignore {
                if self.at[*o] == Some(h) {
                    freed += self.units[*o].mem;
                }
            }
            if unit.mem > free + freed {
                out.push(format!(
                    "memory: needs {}, {} free once the plan is done",
                    gib(unit.mem),
                    gib(free + freed)
                ));
            }
        }
        for ri in &self.unit_rules[u] {
            let r = &self.rules[*ri];
            let Some(dm) = r.domain_of[h] else {
                out.push(format!(
                    "rule {} separates by {}, and {name} has no such label",
                    r.name,
                    r.by.as_deref().unwrap_or("host")
                ));
                continue;
            };
            for o in self.occ[*ri].get(&dm).into_iter().flatten() {
                if *o == Occ::Unit(u) {
                    continue;
                }
                if let Occ::Unit(x) = o
                    && ignore.contains(x)
                {
                    continue;
                }
                out.push(format!(
                    "rule {}: {} is on {}",
                    r.name,
                    self.occupant_name(*ri, *o),
                    self.place_words(*ri, h)
                ));
            }
        }
        if self.at[u] != Some(h) {
            for g in &hi.groups {
                if Some(*g) == avoid {
                    out.push(format!(
                        "headroom: it is leaving group {} to restore its headroom",
                        self.groups[*g].name
                    ));
                    continue;
                }
                if self.headroom > 0 {
                    let margin = self.group_margin(*g) - unit.mem as i64;
                    if margin < 0 {
                        out.push(format!(
                            "headroom {} of group {}: {} short with it there",
                            self.headroom,
                            self.groups[*g].name,
                            gib(margin.unsigned_abs())
                        ));
                    }
                }
            }
        }
        out
    }

    /// How many of the unit's VMs move to reach `h`, and how much data
    /// (memory, and disks that travel with them).
    pub(super) fn cost(&self, u: usize, h: usize) -> (usize, u64) {
        let name = self.host_name(h);
        let mut moves = 0;
        let mut data = 0;
        for m in &self.units[u].members {
            let vm = self.inp.choosers[*m].vm;
            if vm.host != name {
                moves += 1;
                data += vm.memory_mib + vm.local_disk_mib();
            }
        }
        (moves, data)
    }

    /// MiB of disks unit `u` copies to reach `h` (members already there
    /// copy nothing).
    pub(super) fn disks_to(&self, u: usize, h: usize) -> u64 {
        let name = self.host_name(h);
        self.units[u]
            .members
            .iter()
            .map(|m| self.inp.choosers[*m].vm)
            .filter(|vm| vm.host != name)
            .map(|vm| vm.local_disk_mib())
            .sum()
    }

    /// Memory use of `h` after unit `u` arrives, in millionths.
    pub(super) fn use_after(&self, u: usize, h: usize) -> u64 {
        let cap = self.hosts[h].obs.memory_mib.max(1);
        (self.load[h] + self.units[u].mem).saturating_mul(1_000_000) / cap
    }

    pub(super) fn best_host(&self, u: usize, avoid: Option<usize>) -> Option<usize> {
        self.units[u]
            .allowed
            .iter()
            .copied()
            .filter(|h| self.lacks(u, *h, avoid, &[]).is_empty())
            .min_by_key(|h| (self.cost(u, *h), self.use_after(u, *h), *h))
    }
}
