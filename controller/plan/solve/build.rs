//! Building the solver's indexed view: hosts, units (together sets),
//! separate rules with their places, host groups with their reserve.

use std::collections::{BTreeSet, HashMap};

use super::*;

impl<'a> Solver<'a> {
    pub(super) fn new(inp: &'a Input<'a>, stuck: &BTreeSet<String>) -> Solver<'a> {
        let d = inp.desired;
        let mut host_idx = HashMap::new();
        let mut hosts = Vec::new();
        for (i, h) in inp.observed.hosts.values().enumerate() {
            host_idx.insert(h.name.as_str(), i);
            hosts.push(HostInfo {
                obs: h,
                usable: h.reachable && !d.hosts.get(&h.name).is_some_and(|s| s.maintenance),
                groups: Vec::new(),
            });
        }
        let load: Vec<u64> = hosts
            .iter()
            .map(|h| inp.load.get(h.obs.name.as_str()).copied().unwrap_or(0))
            .collect();
        let disk_in: Vec<u64> = hosts
            .iter()
            .map(|h| inp.disk_load.get(&h.obs.name).copied().unwrap_or(0))
            .collect();
        let headroom = d.intent.headroom;
        let failures = headroom.max(1) as usize;
        let mut groups = Vec::new();
        let mut add_group = |name: String, members: Vec<usize>, hosts: &mut Vec<HostInfo>| {
            let gi = groups.len();
            let mut caps: Vec<u64> = members
                .iter()
                .filter(|h| hosts[**h].usable)
                .map(|h| hosts[*h].obs.memory_mib)
                .collect();
            caps.sort_unstable_by(|a, b| b.cmp(a));
            for h in &members {
                hosts[*h].groups.push(gi);
            }
            groups.push(GroupInfo {
                name,
                hosts: members,
                capacity: caps.iter().sum(),
                reserve: caps.iter().take(failures).sum(),
            });
        };
        for g in d.intent.host_groups.values() {
            let members: Vec<usize> = g
                .hosts
                .iter()
                .filter_map(|h| host_idx.get(h.as_str()).copied())
                .collect();
            add_group(g.name.clone(), members, &mut hosts);
        }
        // Index of choosers by name.
        let by_name: HashMap<&str, usize> = inp
            .choosers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.vm.name.as_str(), i))
            .collect();
        // Together sets over choosers (fixed members force the host).
        let n = inp.choosers.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            let mut c = x;
            while p[c] != r {
                let nx = p[c];
                p[c] = r;
                c = nx;
            }
            r
        }
        let mut forced_by: HashMap<usize, usize> = HashMap::new();
        for r in d
            .intent
            .rules
            .iter()
            .filter(|r| r.kind == RuleKind::Together)
        {
            let members: Vec<usize> = r
                .vms
                .iter()
                .filter_map(|v| by_name.get(v.as_str()).copied())
                .collect();
            for w in members.windows(2) {
                let (a, b) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
                if a != b {
                    parent[a] = b;
                }
            }
            if let Some(host) = r
                .vms
                .iter()
                .find_map(|v| inp.fixed.get(v))
                .and_then(|h| host_idx.get(h.as_str()))
                && let Some(m) = members.first()
            {
                forced_by.insert(*m, *host);
            }
        }
        let mut unit_of: Vec<usize> = vec![usize::MAX; n];
        let mut units: Vec<Unit> = Vec::new();
        let mut root_unit: HashMap<usize, usize> = HashMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            let u = *root_unit.entry(r).or_insert_with(|| {
                units.push(Unit {
                    members: Vec::new(),
                    allowed: Vec::new(),
                    mem: 0,
                    forced: None,
                    frozen: false,
                    stuck: false,
                    home: None,
                });
                units.len() - 1
            });
            unit_of[i] = u;
            units[u].members.push(i);
        }
        for (m, h) in &forced_by {
            let u = unit_of[*m];
            units[u].forced = Some(*h);
        }
        for u in &mut units {
            let mut allowed: Option<BTreeSet<usize>> = None;
            let mut homes = BTreeSet::new();
            for m in &u.members {
                let c = &inp.choosers[*m];
                let set: BTreeSet<usize> = c
                    .spec
                    .choice
                    .as_ref()
                    .map(|ch| {
                        ch.hosts
                            .iter()
                            .filter_map(|h| host_idx.get(h.as_str()).copied())
                            .collect()
                    })
                    .unwrap_or_default();
                allowed = Some(match allowed {
                    None => set,
                    Some(a) => a.intersection(&set).copied().collect(),
                });
                if c.vm.state.is_live() {
                    u.mem += c.vm.memory_mib;
                }
                let here = host_idx.get(c.vm.host.as_str()).copied();
                homes.insert(here);
                if here.is_none_or(|h| !hosts[h].obs.reachable) {
                    u.frozen = true;
                }
                if stuck.contains(&c.vm.name) {
                    u.frozen = true;
                    u.stuck = true;
                }
            }
            let mut allowed: Vec<usize> = allowed.unwrap_or_default().into_iter().collect();
            if let Some(f) = u.forced {
                allowed.retain(|h| *h == f);
            }
            u.allowed = allowed;
            u.home = match (homes.len(), homes.into_iter().next()) {
                (1, Some(Some(h))) => Some(h),
                _ => None,
            };
        }
        // Separate rules.
        let mut rules = Vec::new();
        let mut unit_rules: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for r in &d.intent.rules {
            let RuleKind::Separate { by } = &r.kind else {
                continue;
            };
            let mut names: Vec<String> = Vec::new();
            let mut ids: HashMap<String, usize> = HashMap::new();
            let domain_of: Vec<Option<usize>> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let key = match by {
                        None => Some(h.obs.name.clone()),
                        Some(label) => d
                            .hosts
                            .get(&h.obs.name)
                            .and_then(|s| s.labels.get(label).cloned()),
                    };
                    let _ = i;
                    key.map(|k| {
                        *ids.entry(k.clone()).or_insert_with(|| {
                            names.push(k);
                            names.len() - 1
                        })
                    })
                })
                .collect();
            let ri = rules.len();
            let mut fixed = Vec::new();
            let mut us = BTreeSet::new();
            for v in &r.vms {
                if let Some(c) = by_name.get(v.as_str()) {
                    us.insert(unit_of[*c]);
                } else if let Some(h) = inp.fixed.get(v).and_then(|h| host_idx.get(h.as_str())) {
                    fixed.push((v.clone(), *h));
                }
            }
            for u in &us {
                unit_rules[*u].push(ri);
            }
            rules.push(SepRule {
                name: r.name.clone(),
                by: by.clone(),
                domain_of,
                domain_names: names,
                fixed,
            });
        }
        let occ = vec![HashMap::new(); rules.len()];
        let at = vec![None; units.len()];
        let on = vec![BTreeSet::new(); hosts.len()];
        let mut s = Solver {
            inp,
            hosts,
            host_idx,
            units,
            rules,
            unit_rules,
            groups,
            load,
            disk_in,
            occ,
            at,
            on,
            log: Vec::new(),
            headroom,
        };
        for ri in 0..s.rules.len() {
            for (fi, (_, h)) in s.rules[ri].fixed.iter().enumerate() {
                if let Some(dm) = s.rules[ri].domain_of[*h] {
                    s.occ[ri].entry(dm).or_default().push(Occ::Fixed(fi));
                }
            }
        }
        s
    }
}
