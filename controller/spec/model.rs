//! The validated desired state: what every later stage consumes.
//!
//! Values here are already checked and normalised: names are non-empty,
//! references resolve, durations are [`Duration`]s, defaults are filled in,
//! and ACLs are expanded to one rule per direction and sorted, so equal sets
//! compare equal. Plan code never sees anything less.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::diag::Origin;
pub use super::window::MoveWindow;

/// Everything the documents among the given paths declare, validated.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The policy (defaults when no document declares one).
    pub policy: Policy,
    /// Declared hosts by name.
    pub hosts: BTreeMap<String, HostSpec>,
    /// Declared VMs by name. Shared: a load that reuses a file's parsed
    /// documents reuses its VMs, and two loads compare them by address
    /// first, so a one-file commit in a large spec neither copies nor
    /// compares the VMs of the other files.
    pub vms: BTreeMap<String, Arc<VmSpec>>,
    /// The one Controller document, if any.
    pub controller: Option<ControllerSpec>,
    /// Fleet documents found among the paths (validated, not desired state).
    pub fleets: Vec<FleetSpec>,
    /// Observed status carried by snapshot documents (`berth observe` output).
    pub status: Option<FleetStatusSpec>,
    /// How many Placement documents contributed.
    pub placement_documents: usize,
    /// Host groups, rules between VMs and headroom.
    pub intent: Intent,
}

/// What lets berth choose hosts: host groups, rules and headroom.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intent {
    /// Declared host groups by name.
    pub host_groups: BTreeMap<String, HostGroupSpec>,
    /// Rules in declaration order.
    pub rules: Vec<RuleSpec>,
    /// Keep room to restart the VMs of any `headroom` hosts elsewhere.
    pub headroom: u32,
}

impl Intent {
    /// Whether any rule or headroom is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.headroom == 0
    }
}

/// A named set of hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGroupSpec {
    /// Name.
    pub name: String,
    /// Declared hosts, in declaration order.
    pub hosts: Vec<String>,
    /// Where it was declared.
    pub origin: Origin,
}

/// What a rule asks of its VMs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Never two members on one host, or with `by`, in one value of that
    /// host label; at every moment of execution.
    Separate {
        /// The host label whose values separate members; `None`: hosts.
        by: Option<String>,
    },
    /// All members on one host once converged.
    Together,
}

/// A rule between VMs.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Name.
    pub name: String,
    /// What it asks.
    pub kind: RuleKind,
    /// Members (declared VMs), in declaration order, without repeats.
    pub vms: Vec<String>,
    /// Where it was declared.
    pub origin: Origin,
}

/// Where a VM may run when berth chooses (`hosts` or `hostGroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Candidate hosts (declared), in declaration order.
    pub hosts: Vec<String>,
    /// The host group they come from, when the VM names one.
    pub group: Option<String>,
}

/// Limits and timings of moves.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Live migrations in flight across the fleet.
    pub max_parallel_migrations: u32,
    /// Live migrations touching one host (in + out).
    pub max_migrations_per_host: u32,
    /// Failed attempts per move before it is blocked.
    pub max_attempts: u32,
    /// Time limit of one migration job.
    pub move_timeout: Duration,
    /// How long a move may wait for a running backup.
    pub backup_wait: Duration,
    /// Largest plan `apply` carries out without `--max-moves`.
    pub max_moves_per_apply: u32,
    /// Observe and report, change nothing.
    pub suspend: bool,
    /// Moves that copy disks touching one host (in + out).
    pub max_storage_migrations_per_host: u32,
    /// Moves start only inside one of these; empty: at any time.
    pub move_windows: Vec<MoveWindow>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_parallel_migrations: 8,
            max_migrations_per_host: 2,
            max_attempts: 3,
            move_timeout: Duration::from_secs(30 * 60),
            backup_wait: Duration::from_secs(60 * 60),
            max_moves_per_apply: 50,
            suspend: false,
            max_storage_migrations_per_host: 2,
            move_windows: Vec::new(),
        }
    }
}

/// A declared host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    /// Name.
    pub name: String,
    /// Move everything off it.
    pub maintenance: bool,
    /// Optional per-host cap on live migrations.
    pub max_migrations: Option<u32>,
    /// Optional per-host cap on moves that copy disks.
    pub max_storage_migrations: Option<u32>,
    /// The folder arriving VMs' files go to (each in a sub-folder named
    /// after the VM); `None`: the volume with the most free space.
    pub storage_path: Option<String>,
    /// Free-form labels used by rules (`rack: r1`).
    pub labels: BTreeMap<String, String>,
    /// Where it was declared.
    pub origin: Origin,
}

/// A declared VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Name.
    pub name: String,
    /// The host it belongs on (a declared host). For a VM with a
    /// [`Choice`] this is its first candidate, used only where one host must
    /// be named (a snapshot's position); the planner chooses among all.
    pub host: String,
    /// Set when berth chooses the host (`hosts` or `hostGroup`).
    pub choice: Option<Choice>,
    /// Ordered fallback hosts for maintenance (declared, not `host`).
    pub fallback: Vec<String>,
    /// Managed adapters; `None` when adapters are not managed.
    pub adapters: Option<Vec<AdapterSpec>>,
    /// Where it was declared.
    pub origin: Origin,
    /// Among moves ready to start, higher first (default 0).
    pub priority: i64,
}

/// A managed adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSpec {
    /// Adapter name.
    pub name: String,
    /// Switch it must be connected to; `None`: not managed.
    pub switch: Option<String>,
    /// SCVMM VM network; `None`: not managed.
    pub vm_network: Option<String>,
    /// Access VLAN; `None`: not managed.
    pub vlan_id: Option<u16>,
    /// Exact ACL set, normalised; `None`: not managed.
    pub acls: Option<Vec<Acl>>,
}

impl PartialEq for Origin {
    /// Origins never make two specs different.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Origin {}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    /// Let matching traffic through.
    Allow,
    /// Drop matching traffic.
    Deny,
}

/// The direction of one normalised ACL rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic to the VM.
    Inbound,
    /// Traffic from the VM.
    Outbound,
}

/// An address match: any, or an IP network (a bare IP is a host network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressMatch {
    /// Any address.
    Any,
    /// An IP network.
    Net(IpNet),
}

/// A port match: any, or an inclusive range (one port is `lo == hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortMatch {
    /// Any port.
    Any,
    /// Ports `lo..=hi`.
    Range(u16, u16),
}

/// An IP protocol match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolMatch {
    /// Any protocol.
    Any,
    /// An IP protocol number (tcp 6, udp 17, icmp 1).
    Number(u8),
}

/// One normalised extended port ACL rule; identity is (direction, weight).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acl {
    /// Direction (a `both` rule becomes two rules).
    pub direction: Direction,
    /// Precedence; unique per (adapter, direction).
    pub weight: u32,
    /// Allow or deny.
    pub action: AclAction,
    /// Local address match.
    pub local_address: AddressMatch,
    /// Remote address match.
    pub remote_address: AddressMatch,
    /// Local port match.
    pub local_port: PortMatch,
    /// Remote port match.
    pub remote_port: PortMatch,
    /// Protocol match.
    pub protocol: ProtocolMatch,
    /// Stateful rule.
    pub stateful: bool,
    /// Idle timeout of a stateful session, seconds (0 with stateless rules).
    pub idle_session_timeout: u32,
    /// Isolation id.
    pub isolation_id: u32,
}

impl Acl {
    /// The rule's identity on an adapter.
    pub fn key(&self) -> (Direction, u32) {
        (self.direction, self.weight)
    }
}

impl fmt::Display for AclAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclAction::Allow => "allow",
            AclAction::Deny => "deny",
        })
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

impl fmt::Display for AddressMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressMatch::Any => f.write_str("ANY"),
            AddressMatch::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            AddressMatch::Net(net) => write!(f, "{net}"),
        }
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortMatch::Any => f.write_str("ANY"),
            PortMatch::Range(lo, hi) if lo == hi => write!(f, "{lo}"),
            PortMatch::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

impl fmt::Display for ProtocolMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolMatch::Any => f.write_str("ANY"),
            ProtocolMatch::Number(1) => f.write_str("icmp"),
            ProtocolMatch::Number(6) => f.write_str("tcp"),
            ProtocolMatch::Number(17) => f.write_str("udp"),
            ProtocolMatch::Number(n) => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} weight {} {} local {}:{} remote {}:{}",
            self.action,
            self.direction,
            self.weight,
            self.protocol,
            self.local_address,
            self.local_port,
            self.remote_address,
            self.remote_port
        )?;
        if self.stateful {
            write!(f, " stateful (idle {}s)", self.idle_session_timeout)?;
        }
        if self.isolation_id != 0 {
            write!(f, " isolation {}", self.isolation_id)?;
        }
        Ok(())
    }
}

/// The Controller document's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerSpec {
    /// The backend.
    pub provider: ProviderSpec,
    /// Period of the full re-check under `watch`.
    pub resync_interval: Duration,
    /// Where it was declared.
    pub origin: Origin,
}

/// Which backend, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderSpec {
    /// The simulator, with its Fleet file (resolved against the Controller
    /// document's directory).
    Sim {
        /// Path of the Fleet file.
        fleet: PathBuf,
    },
    /// Hyper-V through PowerShell.
    HyperV(HyperVSettings),
    /// SCVMM through PowerShell.
    Scvmm(ScvmmSettings),
}

/// How the PowerShell backends reach PowerShell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// A local PowerShell process (on a host or a management machine).
    #[default]
    Local,
    /// `Invoke-Command` over WinRM (Kerberos).
    WinRm,
    /// `Invoke-Command` over SSH.
    Ssh,
}

/// Settings shared by the PowerShell backends.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellSettings {
    /// Transport to the hosts.
    pub transport: Transport,
    /// PowerShell executable.
    pub shell: String,
    /// Time limit of one call.
    pub call_timeout: Duration,
}

impl Default for ShellSettings {
    fn default() -> Self {
        ShellSettings {
            transport: Transport::Local,
            shell: "pwsh".to_string(),
            call_timeout: Duration::from_secs(120),
        }
    }
}

/// Hyper-V backend settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HyperVSettings {
    /// Hosts to manage.
    pub hosts: Vec<String>,
    /// Destination storage path for shared-nothing moves.
    pub destination_storage_path: Option<String>,
    /// Per destination host, a storage path that replaces
    /// `destination_storage_path` for moves to that host.
    pub destination_storage_paths: BTreeMap<String, String>,
    /// PowerShell settings.
    pub shell: ShellSettings,
}

/// SCVMM backend settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScvmmSettings {
    /// VMM management server.
    pub server: String,
    /// Destination path for moves between hosts without shared storage
    /// (`Move-SCVirtualMachine -Path`).
    pub destination_storage_path: Option<String>,
    /// PowerShell settings.
    pub shell: ShellSettings,
}

/// The shell the scvmm backend uses unless told otherwise: the
/// VirtualMachineManager module loads only in Windows PowerShell 5.1.
pub const SCVMM_SHELL: &str = "powershell.exe";

impl Default for ScvmmSettings {
    fn default() -> Self {
        ScvmmSettings {
            server: String::new(),
            destination_storage_path: None,
            shell: ShellSettings {
                shell: SCVMM_SHELL.to_string(),
                ..ShellSettings::default()
            },
        }
    }
}

/// CPU vendor; live migration only between equal vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CpuVendor {
    /// Intel.
    #[default]
    Intel,
    /// AMD.
    Amd,
}

impl fmt::Display for CpuVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuVendor::Intel => "intel",
            CpuVendor::Amd => "amd",
        })
    }
}

/// A VM's power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Running: moves live.
    #[default]
    Running,
    /// Off: moves offline.
    Off,
    /// Saved: moves offline.
    Saved,
    /// Paused: moves live.
    Paused,
}

impl PowerState {
    /// Whether a move of a VM in this state is a live migration.
    pub fn is_live(self) -> bool {
        matches!(self, PowerState::Running | PowerState::Paused)
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::Running => "running",
            PowerState::Off => "off",
            PowerState::Saved => "saved",
            PowerState::Paused => "paused",
        })
    }
}

/// A validated Fleet document: the simulator's initial world.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    /// Seed of every random choice.
    pub seed: u64,
    /// The instant the simulated clock starts at.
    pub start_time: jiff::Timestamp,
    /// Failure modes.
    pub faults: Faults,
    /// Hosts in file order.
    pub hosts: Vec<FleetHost>,
    /// VMs in file order.
    pub vms: Vec<FleetVm>,
    /// The file it was read from.
    pub origin: Origin,
}

/// The simulated failure modes.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Chance that a migration attempt fails with a retryable error.
    pub transient_failure_rate: f64,
    /// Extended ACLs are lost when a VM moves.
    pub drop_acls_on_migration: bool,
    /// Off or saved VMs arrive with adapters disconnected.
    pub disconnect_on_offline_move: bool,
    /// How long an over-limit live migration waits before failing.
    pub over_limit_wait: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            transient_failure_rate: 0.0,
            drop_acls_on_migration: false,
            disconnect_on_offline_move: false,
            over_limit_wait: Duration::from_secs(300),
        }
    }
}

/// A simulated host.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHost {
    /// Name.
    pub name: String,
    /// Memory for VMs, MiB.
    pub memory_mib: u64,
    /// The host's own live-migration limit.
    pub max_migrations: u32,
    /// CPU vendor.
    pub cpu_vendor: CpuVendor,
    /// Virtual switches.
    pub switches: Vec<String>,
    /// Throughput of one live migration, MiB/s.
    pub migration_rate_mibps: f64,
    /// Unreachable.
    pub down: bool,
    /// Own limit for moves that copy disks.
    pub max_storage_migrations: u32,
    /// Migration network shared by its migrations, MiB/s; `None`: not shared.
    pub network_mibps: Option<f64>,
    /// Volumes where VM files live.
    pub volumes: Vec<FleetVolume>,
}

/// A volume of a host (Fleet and snapshot status).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetVolume {
    /// Path (`D:\VMs`).
    pub path: String,
    /// Free space, MiB.
    pub free_mib: u64,
}

/// A virtual disk of a VM (Fleet and snapshot status).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetDisk {
    /// Path of the disk file.
    pub path: String,
    /// Size, MiB.
    pub size_mib: u64,
    /// The host volume it lies on; `None`: shared storage, never copied.
    pub volume: Option<String>,
}

/// A simulated VM.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetVm {
    /// Name.
    pub name: String,
    /// Starting host.
    pub host: String,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Power state.
    pub state: PowerState,
    /// Backup windows: (start, length) in simulated time.
    pub backups: Vec<(Duration, Duration)>,
    /// The next N migration attempts fail.
    pub fail_next_migrations: u32,
    /// Adapters.
    pub adapters: Vec<FleetAdapter>,
    /// Virtual disks, each with the host volume it lies on (if any).
    pub disks: Vec<FleetDisk>,
}

/// A simulated adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetAdapter {
    /// Name.
    pub name: String,
    /// Switch it is (or was last) connected to.
    pub switch: Option<String>,
    /// Whether it is connected.
    pub connected: bool,
    /// SCVMM VM network.
    pub vm_network: Option<String>,
    /// Access VLAN.
    pub vlan_id: Option<u16>,
    /// Extended ACLs, normalised.
    pub acls: Vec<Acl>,
}

/// Observed facts carried by a snapshot (`status` of `berth observe` output).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetStatusSpec {
    /// Provider time of the observation, seconds.
    pub observed_at: Option<f64>,
    /// Hosts by name.
    pub hosts: BTreeMap<String, HostStatusSpec>,
    /// VMs by name.
    pub vms: BTreeMap<String, VmStatusSpec>,
}

/// Observed facts about a host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStatusSpec {
    /// Memory for VMs, MiB.
    pub memory_mib: u64,
    /// Own live-migration limit.
    pub max_migrations: u32,
    /// CPU vendor.
    pub cpu_vendor: CpuVendor,
    /// Switches.
    pub switches: Vec<String>,
    /// Throughput of one live migration, MiB/s, when known.
    pub migration_rate_mibps: Option<f64>,
    /// Whether the host answered.
    pub reachable: bool,
    /// Own limit for moves that copy disks (default 2).
    pub max_storage_migrations: u32,
    /// Shared migration network, MiB/s.
    pub network_mibps: Option<f64>,
    /// Volumes and their free space.
    pub volumes: Vec<FleetVolume>,
}

/// An operation running on a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VmOperation {
    /// A migration is under way.
    Migrating,
    /// A backup is under way.
    BackingUp,
}

/// Observed facts about a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmStatusSpec {
    /// Power state.
    pub state: PowerState,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Running operation, if any.
    pub operation: Option<VmOperation>,
    /// Destination of a running migration.
    pub migrating_to: Option<String>,
    /// Virtual disks.
    pub disks: Vec<FleetDisk>,
}

macro_rules! serde_via_text {
    ($ty:ty, $parse:path) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_text!(AddressMatch, super::validate::parse_address);
serde_via_text!(PortMatch, super::validate::parse_port);
serde_via_text!(ProtocolMatch, super::validate::parse_protocol);
