//! The simulated world's adapter edits: extended ACLs added and removed,
//! switches connected, VLANs set, each recorded in the journal like the
//! real backends' changes (the part of the world `apply` touches after a
//! move; [`super`] holds the moves themselves).

use crate::provider::ProviderError;
use crate::spec::{Acl, Direction};

use super::World;
use crate::provider::sim::journal::EventKind;

impl World {
    fn adapter_mut(&mut self, vm: &str, adapter: &str) -> Result<(usize, usize), ProviderError> {
        let v = self.vm_index(vm)?;
        let host = self.vms[v].host;
        if self.hosts[host].down {
            return Err(ProviderError::unreachable(format!(
                "host `{}` of VM `{vm}` cannot be reached",
                self.hosts[host].name
            )));
        }
        let a = self.vms[v]
            .adapters
            .iter()
            .position(|a| a.name == adapter)
            .ok_or_else(|| {
                ProviderError::permanent(format!("VM `{vm}` has no adapter `{adapter}`"))
            })?;
        Ok((v, a))
    }

    /// Adds an extended ACL rule.
    pub fn add_acl(&mut self, vm: &str, adapter: &str, acl: &Acl) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let acls = &mut self.vms[v].adapters[a].acls;
        if acls.iter().any(|x| x.key() == acl.key()) {
            return Err(ProviderError::permanent(format!(
                "adapter `{adapter}` of `{vm}` already has an {} ACL with weight {}",
                acl.direction, acl.weight
            )));
        }
        acls.push(acl.clone());
        acls.sort();
        self.emit(EventKind::AclAdded {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            direction: acl.direction,
            weight: acl.weight,
            rule: Box::new(acl.clone()),
        });
        Ok(())
    }

    /// Removes the extended ACL rule with this identity.
    pub fn remove_acl(
        &mut self,
        vm: &str,
        adapter: &str,
        direction: Direction,
        weight: u32,
    ) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let acls = &mut self.vms[v].adapters[a].acls;
        let Some(pos) = acls.iter().position(|x| x.key() == (direction, weight)) else {
            return Err(ProviderError::permanent(format!(
                "adapter `{adapter}` of `{vm}` has no {direction} ACL with weight {weight}"
            )));
        };
        acls.remove(pos);
        self.emit(EventKind::AclRemoved {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            direction,
            weight,
        });
        Ok(())
    }

    /// Connects an adapter to a switch on the VM's current host.
    pub fn connect(
        &mut self,
        vm: &str,
        adapter: &str,
        switch: &str,
        vm_network: Option<&str>,
    ) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let host = &self.hosts[self.vms[v].host];
        if !host.switches.iter().any(|s| s == switch) {
            return Err(ProviderError::permanent(format!(
                "host `{}` has no virtual switch `{switch}`",
                host.name
            )));
        }
        let ad = &mut self.vms[v].adapters[a];
        let network_ok = vm_network.is_none() || ad.vm_network.as_deref() == vm_network;
        if ad.connected && ad.switch.as_deref() == Some(switch) && network_ok {
            return Ok(());
        }
        ad.connected = true;
        ad.switch = Some(switch.to_string());
        if let Some(n) = vm_network {
            ad.vm_network = Some(n.to_string());
        }
        self.emit(EventKind::AdapterConnected {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            switch: switch.to_string(),
        });
        Ok(())
    }

    /// Sets an adapter's access VLAN.
    pub fn set_vlan(&mut self, vm: &str, adapter: &str, vlan_id: u16) -> Result<(), ProviderError> {
        let (v, a) = self.adapter_mut(vm, adapter)?;
        let ad = &mut self.vms[v].adapters[a];
        if ad.vlan_id == Some(vlan_id) {
            return Ok(());
        }
        ad.vlan_id = Some(vlan_id);
        self.emit(EventKind::VlanSet {
            vm: vm.to_string(),
            adapter: adapter.to_string(),
            vlan_id,
        });
        Ok(())
    }
}
