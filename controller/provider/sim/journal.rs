//! The event journal of a simulated world (`events.jsonl`).
//!
//! One JSON object a line, in time order, each with `t` (simulated seconds
//! since the world began) and `event`, exactly as the contract lists them.
//! `acl_added` also carries the whole `rule`, and `vlan_set` records VLAN
//! changes, so the journal tells every change the world went through.
//! Migration events also carry `storageGiB` and `volume` ([`MoveStorage`]).

use serde::{Deserialize, Serialize};

use crate::provider::MoveKind;
use crate::spec::{Acl, Direction};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Simulated seconds since the world began.
    pub t: f64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// On migration events: the storage the move copies (`storageGiB`,
    /// `volume`); `None` on every other event.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<MoveStorage>,
}

/// The storage side of a migration event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveStorage {
    /// GiB of disks copied (0: memory only, or nothing copied).
    #[serde(rename = "storageGiB")]
    pub storage_gib: f64,
    /// The destination volume's path; `None` when nothing is copied.
    pub volume: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A move was requested (also one that must first wait for a slot).
    MigrationStarted {
        /// VM.
        vm: String,
        /// Source host.
        from: String,
        /// Destination host.
        to: String,
        /// `live` or `offline`.
        kind: MoveKind,
    },
    /// A move finished; the VM is on `to`.
    MigrationCompleted {
        /// VM.
        vm: String,
        /// Source host.
        from: String,
        /// Destination host.
        to: String,
        /// `live` or `offline`.
        kind: MoveKind,
    },
    /// A move failed; the VM is still on `from`.
    MigrationFailed {
        /// VM.
        vm: String,
        /// Source host.
        from: String,
        /// Destination host.
        to: String,
        /// `live` or `offline`.
        kind: MoveKind,
        /// Why.
        error: String,
    },
    /// An extended ACL rule was added.
    AclAdded {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// Direction.
        direction: Direction,
        /// Weight.
        weight: u32,
        /// The whole rule.
        rule: Box<Acl>,
    },
    /// An extended ACL rule was removed (by berth, or lost in a move).
    AclRemoved {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// Direction.
        direction: Direction,
        /// Weight.
        weight: u32,
    },
    /// An adapter was connected to a switch.
    AdapterConnected {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// Switch.
        switch: String,
    },
    /// An adapter lost its connection (an offline move).
    AdapterDisconnected {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// The switch it was connected to.
        switch: String,
    },
    /// An adapter's access VLAN was set.
    VlanSet {
        /// VM.
        vm: String,
        /// Adapter.
        adapter: String,
        /// VLAN id.
        #[serde(rename = "vlanId")]
        vlan_id: u16,
    },
}
