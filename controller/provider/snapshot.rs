//! A read-only provider over a snapshot written by `berth observe`.
//!
//! CI jobs that cannot reach the hosts plan against a committed or uploaded
//! snapshot (`plan --observed FILE`). The snapshot is a Placement document
//! whose `spec` is the placement as observed and whose `status` carries the
//! facts planning needs (memory, limits, CPU vendors, switches, power state,
//! volumes with their free space, disks and the volumes they lie on).

use async_trait::async_trait;

use crate::provider::{
    JobId, MoveRequest, Observed, ObservedAdapter, ObservedDisk, ObservedHost, ObservedVm,
    ObservedVolume, Provider, ProviderError,
};
use crate::spec::{Acl, CpuVendor, Desired, Direction, PowerState};

/// Observed state read from a snapshot; every change is refused.
pub struct Snapshot {
    source: String,
    observed: Observed,
}

impl Snapshot {
    /// Builds the observed fleet from a validated snapshot document.
    ///
    /// Fails when the document has no `status` (it is not `observe` output).
    pub fn from_desired(source: &str, desired: &Desired) -> Result<Snapshot, String> {
        let Some(status) = &desired.status else {
            return Err(format!(
                "{source} has no `status`: it is not a snapshot written by `berth observe`"
            ));
        };
        let mut observed = Observed {
            at: status.observed_at.unwrap_or(0.0),
            ..Observed::default()
        };
        for (name, h) in &desired.hosts {
            let st = status.hosts.get(name);
            observed.hosts.insert(
                name.clone(),
                ObservedHost {
                    name: name.clone(),
                    memory_mib: st.map_or(0, |s| s.memory_mib),
                    max_migrations: st.map_or(h.max_migrations.unwrap_or(2), |s| s.max_migrations),
                    cpu_vendor: st.map_or(CpuVendor::default(), |s| s.cpu_vendor),
                    switches: st.map(|s| s.switches.clone()).unwrap_or_default(),
                    migration_rate_mibps: st.and_then(|s| s.migration_rate_mibps),
                    reachable: st.is_some_and(|s| s.reachable),
                    max_storage_migrations: st.map_or(h.max_storage_migrations.unwrap_or(2), |s| {
                        s.max_storage_migrations
                    }),
                    network_mibps: st.and_then(|s| s.network_mibps),
                    volumes: st
                        .map(|s| {
                            s.volumes
                                .iter()
                                .map(|v| ObservedVolume {
                                    path: v.path.clone(),
                                    free_mib: v.free_mib,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    cluster: None,
                },
            );
        }
        for (name, v) in &desired.vms {
            let st = status.vms.get(name);
            observed.vms.insert(
                name.clone(),
                ObservedVm {
                    name: name.clone(),
                    host: v.host.clone(),
                    state: st.map_or(PowerState::Running, |s| s.state),
                    memory_mib: st.map_or(0, |s| s.memory_mib),
                    operation: st.and_then(|s| s.operation),
                    migrating_to: st.and_then(|s| s.migrating_to.clone()),
                    job: None,
                    disks: st
                        .map(|s| {
                            s.disks
                                .iter()
                                .map(|d| ObservedDisk {
                                    path: d.path.clone(),
                                    size_mib: d.size_mib,
                                    volume: d.volume.clone(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    clustered: false,
                    adapters: v
                        .adapters
                        .iter()
                        .flatten()
                        .map(|a| ObservedAdapter {
                            name: a.name.clone(),
                            switch: a.switch.clone(),
                            vm_network: a.vm_network.clone(),
                            vlan_id: a.vlan_id,
                            acls: a.acls.clone().unwrap_or_default(),
                        })
                        .collect(),
                },
            );
        }
        Ok(Snapshot {
            source: source.to_string(),
            observed,
        })
    }

    /// The observed fleet the snapshot holds.
    pub fn into_observed(self) -> Observed {
        self.observed
    }

    fn refuse<T>(&self) -> Result<T, ProviderError> {
        Err(ProviderError::permanent(format!(
            "{} is a snapshot: it can be planned against, not changed",
            self.source
        )))
    }
}

#[async_trait]
impl Provider for Snapshot {
    fn describe(&self) -> String {
        format!("snapshot:{}", self.source)
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        Ok(self.observed.clone())
    }

    async fn start_move(&self, _: &MoveRequest) -> Result<JobId, ProviderError> {
        self.refuse()
    }

    async fn wait_job(&self, _: &JobId) -> Result<(), ProviderError> {
        self.refuse()
    }

    async fn add_acl(&self, _: &str, _: &str, _: &Acl) -> Result<(), ProviderError> {
        self.refuse()
    }

    async fn remove_acl(
        &self,
        _: &str,
        _: &str,
        _: Direction,
        _: u32,
    ) -> Result<(), ProviderError> {
        self.refuse()
    }

    async fn connect_adapter(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> Result<(), ProviderError> {
        self.refuse()
    }

    async fn set_vlan(&self, _: &str, _: &str, _: u16) -> Result<(), ProviderError> {
        self.refuse()
    }
}

/// Writes an observation as a Placement document (`berth observe` output):
/// `spec` holds the placement as it is, `status` the facts behind it.
pub fn to_document(observed: &Observed) -> crate::spec::raw::PlacementDocument {
    use crate::spec::raw::*;
    let sp = |s: &str| Sp::new(s.to_string());
    let gib = |mib: u64| Sp::new(mib as f64 / 1024.0);
    let hosts = observed
        .hosts
        .values()
        .map(|h| HostRaw {
            name: sp(&h.name),
            maintenance: None,
            max_migrations: None,
            max_storage_migrations: None,
            storage_path: None,
            labels: Default::default(),
        })
        .collect();
    let vms = observed
        .vms
        .values()
        .map(|v| VmRaw {
            name: sp(&v.name),
            host: Some(sp(&v.host)),
            hosts: None,
            host_group: None,
            fallback: Vec::new(),
            network_adapters: Some(
                v.adapters
                    .iter()
                    .map(|a| AdapterRaw {
                        name: sp(&a.name),
                        switch: a.switch.as_deref().map(sp),
                        vm_network: a.vm_network.as_deref().map(sp),
                        vlan_id: a.vlan_id.map(|v| Sp::new(i64::from(v))),
                        acls: Some(a.acls.iter().map(|acl| Sp::new(acl_raw(acl))).collect()),
                    })
                    .collect(),
            ),
            priority: None,
        })
        .collect();
    let status = FleetStatus {
        observed_at: Some(observed.at),
        hosts: observed
            .hosts
            .values()
            .map(|h| HostStatus {
                name: sp(&h.name),
                memory_gib: gib(h.memory_mib),
                max_migrations: Sp::new(i64::from(h.max_migrations)),
                cpu_vendor: sp(&h.cpu_vendor.to_string()),
                switches: h.switches.iter().map(|s| sp(s)).collect(),
                migration_rate_mibps: h.migration_rate_mibps.map(Sp::new),
                reachable: h.reachable,
                max_storage_migrations: Some(Sp::new(i64::from(h.max_storage_migrations))),
                network_mibps: h.network_mibps.map(Sp::new),
                volumes: h
                    .volumes
                    .iter()
                    .map(|v| {
                        Sp::new(VolumeRaw {
                            path: sp(&v.path),
                            free_gib: gib(v.free_mib),
                        })
                    })
                    .collect(),
            })
            .collect(),
        vms: observed
            .vms
            .values()
            .map(|v| VmStatus {
                name: sp(&v.name),
                state: sp(&v.state.to_string()),
                memory_gib: gib(v.memory_mib),
                operation: v.operation.map(|o| {
                    sp(match o {
                        crate::spec::VmOperation::Migrating => "migrating",
                        crate::spec::VmOperation::BackingUp => "backingUp",
                    })
                }),
                migrating_to: v.migrating_to.as_deref().map(sp),
                disks: v
                    .disks
                    .iter()
                    .map(|d| {
                        Sp::new(DiskRaw {
                            path: sp(&d.path),
                            size_gib: gib(d.size_mib),
                            volume: d.volume.as_deref().map(sp),
                        })
                    })
                    .collect(),
            })
            .collect(),
    };
    PlacementDocument {
        api_version: sp(crate::spec::API_VERSION),
        kind: sp("Placement"),
        metadata: Some(Metadata {
            name: Some("observed".to_string()),
        }),
        spec: Sp::new(PlacementSpec {
            policy: None,
            hosts,
            vms,
            ..PlacementSpec::default()
        }),
        status: Some(Sp::new(status)),
    }
}

/// One normalised rule in document form.
pub fn acl_raw(acl: &Acl) -> crate::spec::raw::AclRaw {
    use crate::spec::raw::{AclRaw, Sp};
    let any = |s: String| if s == "ANY" { None } else { Some(Sp::new(s)) };
    AclRaw {
        action: Sp::new(acl.action.to_string()),
        direction: Sp::new(acl.direction.to_string()),
        remote_address: any(acl.remote_address.to_string()),
        local_address: any(acl.local_address.to_string()),
        local_port: any(acl.local_port.to_string()),
        remote_port: any(acl.remote_port.to_string()),
        protocol: any(acl.protocol.to_string()),
        weight: Sp::new(i64::from(acl.weight)),
        stateful: acl.stateful.then_some(true),
        idle_session_timeout: acl
            .stateful
            .then_some(Sp::new(i64::from(acl.idle_session_timeout))),
        isolation_id: (acl.isolation_id != 0).then_some(Sp::new(i64::from(acl.isolation_id))),
    }
}
