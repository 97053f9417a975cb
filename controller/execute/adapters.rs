//! Putting adapters right: exact ACL sets, VLANs and connections.
//!
//! Used right after every move (a moved VM must not run without its ACLs a
//! moment longer than the calls take) and for drift on VMs that stay. Every
//! correction starts from a fresh observation of the VM, so it is idempotent
//! and never acts on a stale plan. Order matters for safety: ACLs first,
//! then the VLAN, then the connection, so an adapter is never connected
//! before its rules are in place.

use crate::plan::diff_acls;
use crate::provider::{ObservedAdapter, Provider, ProviderError};
use crate::spec::{Acl, VmSpec};

/// What an adapter should look like; `None` fields are left alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdapterTarget {
    /// Switch to be connected to.
    pub switch: Option<String>,
    /// SCVMM VM network.
    pub vm_network: Option<String>,
    /// Access VLAN.
    pub vlan_id: Option<u16>,
    /// Exact ACL set.
    pub acls: Option<Vec<Acl>>,
}

/// What a correction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// ACL rules added or removed.
    pub acl_changes: u32,
    /// Connections made.
    pub reconnects: u32,
    /// (adapter, what) for each change, for progress output.
    pub done: Vec<(String, String)>,
}

impl Counts {
    fn merge(&mut self, other: Counts) {
        self.acl_changes += other.acl_changes;
        self.reconnects += other.reconnects;
        self.done.extend(other.done);
    }
}

/// The declared state of one adapter (what drift correction enforces).
pub fn declared_target(spec: Option<&VmSpec>, adapter: &str) -> AdapterTarget {
    let Some(d) = spec
        .and_then(|s| s.adapters.as_ref())
        .and_then(|l| l.iter().find(|a| a.name == adapter))
    else {
        return AdapterTarget::default();
    };
    AdapterTarget {
        switch: d.switch.clone(),
        vm_network: d.vm_network.clone(),
        vlan_id: d.vlan_id,
        acls: d.acls.clone(),
    }
}

/// What each adapter must look like after a move: as declared where the
/// spec manages it, else exactly as it was before the move (a move must not
/// cost a VM its rules or its connection).
pub fn after_move_targets(
    spec: Option<&VmSpec>,
    before: &[ObservedAdapter],
) -> Vec<(String, AdapterTarget)> {
    before
        .iter()
        .map(|b| {
            let d = declared_target(spec, &b.name);
            (
                b.name.clone(),
                AdapterTarget {
                    switch: d.switch.or_else(|| b.switch.clone()),
                    vm_network: d.vm_network.or_else(|| b.vm_network.clone()),
                    vlan_id: d.vlan_id.or(b.vlan_id),
                    acls: d.acls.or_else(|| Some(b.acls.clone())),
                },
            )
        })
        .collect()
}

/// Makes one adapter match its target; returns what it did.
pub async fn ensure_adapter(
    provider: &dyn Provider,
    vm: &str,
    have: &ObservedAdapter,
    target: &AdapterTarget,
) -> Result<Counts, ProviderError> {
    let mut counts = Counts::default();
    let name = &have.name;
    if let Some(want) = &target.acls {
        let (add, remove) = diff_acls(want, &have.acls);
        for r in &remove {
            provider.remove_acl(vm, name, r.direction, r.weight).await?;
            counts.acl_changes += 1;
            counts.done.push((
                name.clone(),
                format!("removed {} ACL weight {}", r.direction, r.weight),
            ));
        }
        for a in add.iter().filter_map(|a| a.rule.as_ref()) {
            provider.add_acl(vm, name, a).await?;
            counts.acl_changes += 1;
            counts.done.push((
                name.clone(),
                format!("added {} ACL weight {}", a.direction, a.weight),
            ));
        }
    }
    if let Some(vlan) = target.vlan_id
        && have.vlan_id != Some(vlan)
    {
        provider.set_vlan(vm, name, vlan).await?;
        counts.done.push((name.clone(), format!("set VLAN {vlan}")));
    }
    if let Some(sw) = &target.switch {
        let network_differs = target.vm_network.is_some() && target.vm_network != have.vm_network;
        if have.switch.as_deref() != Some(sw.as_str()) || network_differs {
            provider
                .connect_adapter(vm, name, sw, target.vm_network.as_deref())
                .await?;
            counts.reconnects += 1;
            counts
                .done
                .push((name.clone(), format!("connected to {sw}")));
        }
    }
    Ok(counts)
}

fn matches(have: &ObservedAdapter, t: &AdapterTarget) -> bool {
    t.switch
        .as_ref()
        .is_none_or(|s| have.switch.as_ref() == Some(s))
        && t.vlan_id.is_none_or(|v| have.vlan_id == Some(v))
        && t.acls.as_ref().is_none_or(|a| *a == have.acls)
}

/// Right after a move: observe the VM, correct every adapter, verify.
/// Returns what was done and what is still wrong (the final pass of the
/// run corrects that).
pub async fn reassert(
    provider: &dyn Provider,
    vm: &str,
    targets: &[(String, AdapterTarget)],
) -> (Counts, Vec<String>) {
    let mut counts = Counts::default();
    let mut problems = Vec::new();
    let now = match provider.observe_vm(vm).await {
        Ok(v) => v,
        Err(e) => {
            return (
                counts,
                vec![format!("cannot observe {vm} after its move: {e}")],
            );
        }
    };
    for (name, target) in targets {
        let Some(have) = now.adapters.iter().find(|a| &a.name == name) else {
            continue;
        };
        match ensure_adapter(provider, vm, have, target).await {
            Ok(c) => counts.merge(c),
            Err(e) => problems.push(format!("adapter {name}: {e}")),
        }
    }
    match provider.observe_vm(vm).await {
        Ok(after) => {
            for (name, target) in targets {
                if let Some(have) = after.adapters.iter().find(|a| &a.name == name)
                    && !matches(have, target)
                {
                    problems.push(format!("adapter {name} still differs after correction"));
                }
            }
        }
        Err(e) => problems.push(format!("cannot verify {vm}: {e}")),
    }
    (counts, problems)
}
