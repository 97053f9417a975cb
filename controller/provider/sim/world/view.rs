//! What the simulated world shows: the fleet as a provider's `observe`
//! reports it, built from the world's own indexed records (the part of the
//! world a plan reads; [`super`] holds the part that moves).

use crate::provider::{
    JobId, Observed, ObservedAdapter, ObservedDisk, ObservedHost, ObservedVm, ObservedVolume,
    ProviderError,
};
use crate::spec::VmOperation;

use super::{World, seconds};

impl World {
    /// The fleet as it is now.
    pub fn observe(&self) -> Observed {
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    ObservedHost {
                        name: h.name.clone(),
                        memory_mib: h.memory_mib,
                        max_migrations: h.max_migrations,
                        cpu_vendor: h.cpu_vendor,
                        switches: h.switches.clone(),
                        migration_rate_mibps: Some(h.rate),
                        reachable: !h.down,
                        max_storage_migrations: h.max_storage,
                        network_mibps: h.network,
                        volumes: h
                            .volumes
                            .iter()
                            .map(|v| ObservedVolume {
                                path: v.path.clone(),
                                free_mib: v.free_mib,
                            })
                            .collect(),
                        cluster: None,
                    },
                )
            })
            .collect();
        let vms = self
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), self.vm_view(i)))
            .collect();
        let backups_end_in = (0..self.vms.len())
            .filter_map(|i| {
                self.backup_end(i)
                    .map(|end| (self.vms[i].name.clone(), end))
            })
            .collect();
        Observed {
            at: seconds(self.now),
            hosts,
            vms,
            backups_end_in,
        }
    }

    /// One VM as it is now.
    pub fn observe_vm(&self, name: &str) -> Result<ObservedVm, ProviderError> {
        Ok(self.vm_view(self.vm_index(name)?))
    }

    fn vm_view(&self, i: usize) -> ObservedVm {
        let v = &self.vms[i];
        let migration = v
            .job
            .and_then(|job| self.migrations.iter().find(|m| m.job == job));
        let operation = if migration.is_some() {
            Some(VmOperation::Migrating)
        } else if self.in_backup(i) {
            Some(VmOperation::BackingUp)
        } else {
            None
        };
        ObservedVm {
            name: v.name.clone(),
            host: self.hosts[v.host].name.clone(),
            state: v.state,
            memory_mib: v.memory_mib,
            operation,
            migrating_to: migration.map(|m| self.hosts[m.to].name.clone()),
            job: migration.map(|m| JobId(m.job.to_string())),
            disks: v
                .disks
                .iter()
                .map(|d| ObservedDisk {
                    path: d.path.clone(),
                    size_mib: d.size_mib,
                    volume: d
                        .volume
                        .and_then(|i| self.hosts[v.host].volumes.get(i))
                        .map(|x| x.path.clone()),
                })
                .collect(),
            clustered: false,
            adapters: v
                .adapters
                .iter()
                .map(|a| ObservedAdapter {
                    name: a.name.clone(),
                    switch: if a.connected { a.switch.clone() } else { None },
                    vm_network: a.vm_network.clone(),
                    vlan_id: a.vlan_id,
                    acls: a.acls.clone(),
                })
                .collect(),
        }
    }
}
