//! The documents exactly as they are written: serde and JSON-Schema types.
//!
//! These types mirror the YAML one to one (camelCase fields, unknown fields
//! rejected) and keep the position of every value that validation may need
//! to point at. Nothing outside `spec` consumes them directly for decisions:
//! validation turns them into the typed model in [`super::model`]. They also
//! serialize, which is how `berth observe` writes a Placement document.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::diag::Loc;

/// A value with the position it was read from (relative to its document).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where it was written; unknown for values not read from YAML.
    pub loc: Loc,
}

impl<T> Sp<T> {
    /// A value with no position (for documents berth writes itself).
    pub fn new(value: T) -> Self {
        Sp {
            value,
            loc: Loc::default(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The fast path answers this name with (position, value); every
        // other deserializer treats it as a plain newtype.
        d.deserialize_newtype_struct(super::fast::SP_NAME, SpVisitor(PhantomData))
    }
}

struct SpVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SpVisitor<T> {
    type Value = Sp<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a value")
    }

    /// serde-saphyr (and any other deserializer): its own spans.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Sp<T>, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let at = s.referenced;
        let span = at.span();
        Ok(Sp {
            value: s.value,
            loc: Loc {
                line: u32::try_from(at.line()).unwrap_or(u32::MAX),
                column: u32::try_from(at.column()).unwrap_or(u32::MAX),
                offset: span
                    .byte_offset()
                    .and_then(|o| usize::try_from(o).ok())
                    .unwrap_or(0),
                len: span
                    .byte_len()
                    .and_then(|l| usize::try_from(l).ok())
                    .unwrap_or(1)
                    .max(1),
            },
        })
    }

    /// The fast path: `[line, column, offset, len]`, then the value.
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Sp<T>, A::Error> {
        let missing = || serde::de::Error::custom("a position and a value");
        let [line, column, offset, len]: [u64; 4] = s.next_element()?.ok_or_else(missing)?;
        let value = s.next_element()?.ok_or_else(missing)?;
        Ok(Sp {
            value,
            loc: Loc {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
                offset: usize::try_from(offset).unwrap_or(0),
                len: usize::try_from(len).unwrap_or(1).max(1),
            },
        })
    }
}

impl<T: Serialize> Serialize for Sp<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// The first fields of any document, read to decide which type it is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Header {
    pub api_version: Option<Sp<String>>,
    pub kind: Option<Sp<String>>,
}

/// Optional descriptive metadata of a document.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// A label for the document, shown in messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

// ---------------------------------------------------------------- Placement

/// `kind: Placement`: where VMs belong and how their adapters look.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlacementDocument {
    /// Always `berth/v1`.
    pub api_version: Sp<String>,
    /// Always `Placement`.
    pub kind: Sp<String>,
    /// Optional metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The desired state.
    pub spec: Sp<PlacementSpec>,
    /// Facts about the fleet, written by `berth observe` and read by
    /// `plan --observed`; ignored as desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Sp<FleetStatus>>,
}

/// The body of a Placement document.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlacementSpec {
    /// Limits and timings; at most one policy across all documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Sp<PolicyRaw>>,
    /// Hosts berth may place VMs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostRaw>,
    /// VMs and where they belong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<VmRaw>,
    /// Named sets of hosts a VM may choose from (`hostGroup`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_groups: Vec<HostGroupRaw>,
    /// Rules between VMs: `separate` and `together`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleRaw>,
}

/// A named set of declared hosts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostGroupRaw {
    /// The group's name, used by `hostGroup`.
    pub name: Sp<String>,
    /// Declared hosts in the group.
    pub hosts: Vec<Sp<String>>,
}

/// A rule between VMs: exactly one of `separate` and `together`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleRaw {
    /// The rule's name, shown in plans and messages.
    pub name: Sp<String>,
    /// Never two of these VMs on one host (or, with `by`, in one value of
    /// that host label), at any moment of a plan's execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separate: Option<Sp<Vec<Sp<String>>>>,
    /// With `separate`: a host label; members must be in different values
    /// of it (e.g. `rack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Sp<String>>,
    /// These VMs on one host once converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub together: Option<Sp<Vec<Sp<String>>>>,
}

/// Limits and timings for moves.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyRaw {
    /// Live migrations in flight across the whole fleet (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_migrations: Option<Sp<i64>>,
    /// Live migrations touching one host, in and out (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_migrations_per_host: Option<Sp<i64>>,
    /// Failed attempts per move before it is blocked (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<Sp<i64>>,
    /// Time limit of one migration job (default 30m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_timeout: Option<Sp<String>>,
    /// How long a move may wait for a running backup (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_wait: Option<Sp<String>>,
    /// Largest plan `apply` carries out without `--max-moves` (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_moves_per_apply: Option<Sp<i64>>,
    /// Observe and report, change nothing (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Moves that copy disks touching one host, in and out (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_migrations_per_host: Option<Sp<i64>>,
    /// Keep room to restart the VMs of any N hosts on the others (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom: Option<Sp<i64>>,
    /// Moves start only inside one of these windows; omitted: at any time.
    /// ACL, VLAN and connection fixes are not moves and always go ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_windows: Option<Sp<Vec<Sp<MoveWindowRaw>>>>,
}

/// A weekly window in which moves may start.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MoveWindowRaw {
    /// Days the window opens on: `mon` ... `sun` (or the full names).
    #[schemars(extend("items" = {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun",
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]}))]
    pub days: Vec<Sp<String>>,
    /// Opening time, `HH:MM` local time.
    #[schemars(extend("pattern" = "^([01]?[0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: Sp<String>,
    /// Closing time, `HH:MM` local time (`24:00` allowed); at or before
    /// `start`, the window closes on the next day.
    #[schemars(extend("pattern" = "^(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: Sp<String>,
    /// IANA time zone of `start` and `end`, such as `Europe/Amsterdam` or `UTC`.
    pub time_zone: Sp<String>,
}

/// A host VMs may be placed on.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostRaw {
    /// The host's name as the provider knows it.
    pub name: Sp<String>,
    /// Move every VM off this host; managed VMs return when false again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    /// Optional per-host cap on live migrations (in + out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_migrations: Option<Sp<i64>>,
    /// Optional per-host cap on moves that copy disks (in + out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_migrations: Option<Sp<i64>>,
    /// The folder arriving VMs' files go to (each VM in a sub-folder of its
    /// own name); omitted: the host's volume with the most free space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_path: Option<Sp<String>>,
    /// Free-form labels (`rack: r1`), used by rules' `by`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Sp<String>>,
}

/// A VM and where it belongs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmRaw {
    /// The VM's name as the provider knows it.
    pub name: Sp<String>,
    /// The declared host it belongs on (exactly one of `host`, `hosts`,
    /// `hostGroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Sp<String>>,
    /// Declared hosts berth may choose from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Sp<Vec<Sp<String>>>>,
    /// A host group berth may choose any host of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_group: Option<Sp<String>>,
    /// Ordered hosts where it waits while its host is in maintenance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<Sp<String>>,
    /// Adapters; omitted means adapters are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_adapters: Option<Vec<AdapterRaw>>,
    /// Among moves ready to start, higher first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Sp<i64>>,
}

/// A VM network adapter's desired connection and ACLs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdapterRaw {
    /// The adapter's name (Hyper-V's default is `Network Adapter`).
    pub name: Sp<String>,
    /// The virtual switch it must be connected to; omitted: not managed
    /// (in `observe` output: not connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<Sp<String>>,
    /// SCVMM VM network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_network: Option<Sp<String>>,
    /// Access VLAN id, 1-4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<Sp<i64>>,
    /// Exact extended port ACLs; omitted: not managed; `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acls: Option<Vec<Sp<AclRaw>>>,
}

/// One extended port ACL rule (`Add-VMNetworkAdapterExtendedAcl`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AclRaw {
    /// `allow` or `deny`.
    #[schemars(extend("enum" = ["allow", "deny"]))]
    pub action: Sp<String>,
    /// `inbound`, `outbound` or `both`.
    #[schemars(extend("enum" = ["inbound", "outbound", "both"]))]
    pub direction: Sp<String>,
    /// IP, CIDR or ANY (default ANY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<Sp<String>>,
    /// IP, CIDR or ANY (default ANY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<Sp<String>>,
    /// Port, range `lo-hi` or ANY (default ANY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = ["string", "integer", "null"]))]
    pub local_port: Option<Sp<String>>,
    /// Port, range `lo-hi` or ANY (default ANY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = ["string", "integer", "null"]))]
    pub remote_port: Option<Sp<String>>,
    /// `tcp`, `udp`, `icmp`, a protocol number 0-255 or ANY (default ANY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = ["string", "integer", "null"]))]
    pub protocol: Option<Sp<String>>,
    /// Rule precedence, 1-65535; unique per (adapter, direction).
    pub weight: Sp<i64>,
    /// Stateful rule (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful: Option<bool>,
    /// Seconds; only with `stateful`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_session_timeout: Option<Sp<i64>>,
    /// Isolation id (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation_id: Option<Sp<i64>>,
}

/// Observed facts written by `berth observe` (the `status` of a snapshot).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetStatus {
    /// Provider time of the observation, in seconds (simulated with `sim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<f64>,
    /// Host facts.
    #[serde(default)]
    pub hosts: Vec<HostStatus>,
    /// VM facts.
    #[serde(default)]
    pub vms: Vec<VmStatus>,
}

/// Observed facts about one host.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostStatus {
    /// Host name.
    pub name: Sp<String>,
    /// Memory for VMs, in GiB.
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Sp<f64>,
    /// The host's own live-migration limit.
    pub max_migrations: Sp<i64>,
    /// `intel` or `amd`.
    pub cpu_vendor: Sp<String>,
    /// Virtual switches on the host.
    #[serde(default)]
    pub switches: Vec<Sp<String>>,
    /// Throughput of one live migration, MiB/s.
    #[serde(
        default,
        rename = "migrationRateMiBps",
        skip_serializing_if = "Option::is_none"
    )]
    pub migration_rate_mibps: Option<Sp<f64>>,
    /// Whether the host answers.
    #[serde(default = "yes")]
    pub reachable: bool,
    /// The host's own limit for moves that copy disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_migrations: Option<Sp<i64>>,
    /// The host's migration network, shared by its migrations, MiB/s.
    #[serde(
        default,
        rename = "networkMiBps",
        skip_serializing_if = "Option::is_none"
    )]
    pub network_mibps: Option<Sp<f64>>,
    /// Volumes where VM files live, with their free space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Sp<VolumeRaw>>,
}

fn yes() -> bool {
    true
}

/// Observed facts about one VM.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmStatus {
    /// VM name.
    pub name: Sp<String>,
    /// `running`, `off`, `saved` or `paused`.
    pub state: Sp<String>,
    /// Assigned memory in GiB.
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Sp<f64>,
    /// `migrating` or `backingUp` while such an operation runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Sp<String>>,
    /// While migrating: the destination host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating_to: Option<Sp<String>>,
    /// Virtual disks; those with a `volume` travel with the VM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Sp<DiskRaw>>,
}

/// A volume of a host where VM files live.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeRaw {
    /// Path as the host names it (`D:\VMs`).
    pub path: Sp<String>,
    /// Free space, GiB.
    #[serde(rename = "freeGiB")]
    pub free_gib: Sp<f64>,
}

/// A virtual disk of a VM.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiskRaw {
    /// Path of the disk file (`D:\VMs\web-01\web-01.vhdx`).
    pub path: Sp<String>,
    /// Space it takes, GiB (the file size for dynamic disks).
    #[serde(rename = "sizeGiB")]
    pub size_gib: Sp<f64>,
    /// In `observe` output: the host volume it lies on; omitted: shared
    /// storage (CSV, SMB), never copied. In a Fleet it is worked out from
    /// the host's `volumes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Sp<String>>,
}

// ---------------------------------------------------------------- Controller

/// `kind: Controller`: how berth reaches the fleet.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControllerDocument {
    /// Always `berth/v1`.
    pub api_version: Sp<String>,
    /// Always `Controller`.
    pub kind: Sp<String>,
    /// Optional metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The settings.
    pub spec: Sp<ControllerSpecRaw>,
}

/// The body of a Controller document.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControllerSpecRaw {
    /// Exactly one backend.
    pub provider: Sp<ProviderRaw>,
    /// Period of the full re-check under `watch` (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_interval: Option<Sp<String>>,
}

/// The backend: exactly one of `sim`, `hyperv`, `scvmm`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderRaw {
    /// The built-in simulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimRaw>,
    /// Hyper-V hosts through PowerShell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperv: Option<HyperVRaw>,
    /// System Center Virtual Machine Manager through PowerShell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scvmm: Option<ScvmmRaw>,
}

/// Simulator settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SimRaw {
    /// The Fleet file, relative to this document's file.
    pub fleet: Sp<String>,
}

/// Hyper-V backend settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HyperVRaw {
    /// Hosts to manage (names reachable through the transport).
    #[serde(default)]
    pub hosts: Vec<Sp<String>>,
    /// Destination storage path for shared-nothing moves (`Move-VM
    /// -IncludeStorage -DestinationStoragePath`); omitted: the VM's storage
    /// stays where it is (shared storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_storage_path: Option<Sp<String>>,
    /// Per destination host, a storage path that replaces
    /// `destinationStoragePath` for moves to that host (`{hv02: 'D:\VMs'}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub destination_storage_paths: BTreeMap<String, Sp<String>>,
    /// `local`, `winrm` or `ssh` (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["local", "winrm", "ssh"]))]
    pub transport: Option<Sp<String>>,
    /// The PowerShell executable (default `pwsh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Sp<String>>,
    /// Time limit of one PowerShell call (default 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<Sp<String>>,
}

/// SCVMM backend settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScvmmRaw {
    /// The VMM management server.
    pub server: Sp<String>,
    /// Destination path for moves between hosts without shared storage
    /// (`Move-SCVirtualMachine -Path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_storage_path: Option<Sp<String>>,
    /// `local` or `winrm` (default `local`); `ssh` is refused: it needs
    /// PowerShell 7, where the VirtualMachineManager module does not load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["local", "winrm", "ssh"]))]
    pub transport: Option<Sp<String>>,
    /// The PowerShell executable (default `powershell.exe`, Windows
    /// PowerShell 5.1; PowerShell 7 `pwsh` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Sp<String>>,
    /// Time limit of one PowerShell call (default 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<Sp<String>>,
}

// ---------------------------------------------------------------- Fleet

/// `kind: Fleet`: the simulator's world.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetDocument {
    /// Always `berth/v1`.
    pub api_version: Sp<String>,
    /// Always `Fleet`.
    pub kind: Sp<String>,
    /// Optional metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The world.
    pub spec: Sp<FleetSpecRaw>,
}

/// The body of a Fleet document.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpecRaw {
    /// Every random choice derives from it (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The instant the simulated clock starts at, RFC 3339 (default
    /// `2026-01-05T00:00:00Z`, a Monday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Sp<String>>,
    /// Failure modes of the world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultsRaw>,
    /// Hosts.
    #[serde(default)]
    pub hosts: Vec<FleetHostRaw>,
    /// VMs.
    #[serde(default)]
    pub vms: Vec<FleetVmRaw>,
}

/// The simulated failure modes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultsRaw {
    /// Chance, 0 to 1, that a migration attempt fails with a retryable error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient_failure_rate: Option<Sp<f64>>,
    /// Extended ACLs are lost when a VM moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_acls_on_migration: Option<bool>,
    /// A powered-down VM's adapters come up disconnected after a move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_on_offline_move: Option<bool>,
    /// How long a live migration past a host's limit waits before failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_limit_wait: Option<Sp<String>>,
}

/// A simulated host.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetHostRaw {
    /// Host name.
    pub name: Sp<String>,
    /// Memory for VMs, GiB.
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Sp<f64>,
    /// The host's own live-migration limit (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_migrations: Option<Sp<i64>>,
    /// `intel` or `amd` (default intel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["intel", "amd"]))]
    pub cpu_vendor: Option<Sp<String>>,
    /// Virtual switches.
    #[serde(default)]
    pub switches: Vec<Sp<String>>,
    /// Throughput of one live migration, MiB/s (default 1000).
    #[serde(
        default,
        rename = "migrationRateMiBps",
        skip_serializing_if = "Option::is_none"
    )]
    pub migration_rate_mibps: Option<Sp<f64>>,
    /// Unreachable: cannot send or receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<bool>,
    /// The host's own limit for moves that copy disks (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_migrations: Option<Sp<i64>>,
    /// The host's migration network, MiB/s, shared by every migration in or
    /// out of it at the same moment; omitted: not shared.
    #[serde(
        default,
        rename = "networkMiBps",
        skip_serializing_if = "Option::is_none"
    )]
    pub network_mibps: Option<Sp<f64>>,
    /// Volumes where VM files live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Sp<VolumeRaw>>,
}

/// A simulated VM.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetVmRaw {
    /// VM name.
    pub name: Sp<String>,
    /// The host it starts on.
    pub host: Sp<String>,
    /// Assigned memory, GiB.
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Sp<f64>,
    /// `running`, `off`, `saved` or `paused` (default running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["running", "off", "saved", "paused"]))]
    pub state: Option<Sp<String>>,
    /// Windows of simulated time in which a backup runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<Sp<BackupRaw>>,
    /// The next N migration attempts of this VM fail (retryable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_next_migrations: Option<Sp<i64>>,
    /// Adapters as they are at the start.
    #[serde(default)]
    pub network_adapters: Vec<FleetAdapterRaw>,
    /// Virtual disks; omitted or `[]`: storage is shared, never copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Sp<DiskRaw>>,
}

/// A backup window.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRaw {
    /// Start, as simulated time since the world began.
    pub at: Sp<String>,
    /// Length.
    pub r#for: Sp<String>,
}

/// A simulated adapter.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetAdapterRaw {
    /// Adapter name.
    pub name: Sp<String>,
    /// The switch it is (or was last) connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<Sp<String>>,
    /// Whether it is connected (default true when a switch is named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// SCVMM VM network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_network: Option<Sp<String>>,
    /// Access VLAN id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<Sp<i64>>,
    /// Extended ACLs present at the start.
    #[serde(default)]
    pub acls: Vec<Sp<AclRaw>>,
}
