//! Checks raw documents and builds the typed [`Desired`] model.
//!
//! Every rule reports into one [`Sink`], so a run shows all problems at once,
//! each at the position of the offending value, with the other position when
//! two places disagree (a duplicate names both).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::diag::{Diagnostic, Origin, Sink};
use super::duration::parse_duration;
use super::load::{DocBody, DocCtx, ParsedDoc, closest};
use super::model::*;
use super::raw::*;

/// Longest name berth accepts (Hyper-V allows 100 characters for VM names;
/// hosts and switches are shorter still).
const MAX_NAME_CHARS: usize = 256;

/// Where a simulated clock starts when the Fleet does not say:
/// `2026-01-05T00:00:00Z`, a Monday.
pub const DEFAULT_START_TIME: jiff::Timestamp = jiff::Timestamp::constant(1_767_571_200, 0);

/// Validates every parsed document into one desired state.
/// Validates documents one at a time, in load order, so each file's raw
/// documents can be dropped as soon as they are checked; cross-document
/// rules (references, duplicates, single policy) are settled in
/// [`Validator::finish`].
impl Validator {
    /// Checks one document and folds it into the desired state.
    pub(crate) fn document(&mut self, doc: &ParsedDoc, sink: &mut Sink) {
        match &doc.body {
            DocBody::Placement(p) => self.placement(&doc.ctx, p, sink),
            DocBody::Controller(c) => self.controller(&doc.ctx, c, sink),
            DocBody::Fleet(f) => {
                if let Some(fleet) = fleet(&doc.ctx, f, sink) {
                    self.desired.fleets.push(fleet);
                }
            }
        }
    }

    /// Settles the rules that need every document, and returns the result.
    pub(crate) fn finish(mut self, sink: &mut Sink) -> Desired {
        self.references(sink);
        let intent = std::mem::take(&mut self.intent);
        intent.resolve(&mut self.desired, sink);
        self.desired
    }
}

/// Builds the desired state from documents.
#[derive(Default)]
pub(crate) struct Validator {
    desired: Desired,
    policy_at: Option<Origin>,
    controller_at: Option<Origin>,
    /// Positions of VM references to hosts, checked once all hosts are known.
    vm_refs: Vec<VmRefs>,
    /// Host choices, groups and rules, settled once every VM is known.
    intent: super::intent::Collected,
}

struct VmRefs {
    vm: String,
    host: Option<(String, Origin)>,
    fallback: Vec<(String, Origin)>,
}

impl Validator {
    fn placement(&mut self, ctx: &DocCtx, doc: &PlacementDocument, sink: &mut Sink) {
        self.desired.placement_documents += 1;
        let spec = &doc.spec.value;
        if let Some(policy) = &spec.policy {
            let here = ctx.at(policy);
            if let Some(first) = &self.policy_at {
                sink.push(
                    Diagnostic::new(here, "more than one `policy` in the documents")
                        .with_related("the first policy is here", first.clone())
                        .with_help("keep a single policy; it applies to the whole fleet"),
                );
            } else {
                self.policy_at = Some(here);
                self.desired.policy = policy_spec(ctx, &policy.value, sink);
                if let Some(n) = &policy.value.headroom {
                    self.desired.intent.headroom =
                        int_in(ctx, n, "headroom", 0, 1000, sink).unwrap_or(0) as u32;
                }
            }
        }
        for h in &spec.hosts {
            let Some(name) = name(ctx, &h.name, "host", sink) else {
                continue;
            };
            let max_migrations = h
                .max_migrations
                .as_ref()
                .and_then(|m| int_in(ctx, m, "maxMigrations", 1, 64, sink))
                .map(|m| m as u32);
            let max_storage_migrations = h
                .max_storage_migrations
                .as_ref()
                .and_then(|m| int_in(ctx, m, "maxStorageMigrations", 1, 64, sink))
                .map(|m| m as u32);
            let storage_path = h
                .storage_path
                .as_ref()
                .filter(|p| super::storage::check_path(ctx, p, "storagePath", sink))
                .map(|p| p.value.clone());
            let origin = ctx.at(&h.name);
            let mut labels = BTreeMap::new();
            for (key, value) in &h.labels {
                if let Err(problem) = check_name(key) {
                    sink.error(ctx.at(value), format!("label name {problem}"));
                    continue;
                }
                if let Some(v) = self::name(ctx, value, "label value", sink) {
                    labels.insert(key.clone(), v);
                }
            }
            if let Some(prev) = self.desired.hosts.get(&name) {
                sink.push(
                    Diagnostic::new(origin, format!("host `{name}` is declared twice"))
                        .with_related("first declared here", prev.origin.clone()),
                );
                continue;
            }
            self.desired.hosts.insert(
                name.clone(),
                HostSpec {
                    name,
                    maintenance: h.maintenance.unwrap_or(false),
                    max_migrations,
                    max_storage_migrations,
                    storage_path,
                    labels,
                    origin,
                },
            );
        }
        for vm in &spec.vms {
            self.vm(ctx, vm, sink);
        }
        self.intent.groups(ctx, &spec.host_groups);
        self.intent.rules(ctx, &spec.rules, sink);
        if let Some(status) = &doc.status {
            let st = fleet_status(ctx, &status.value, sink);
            match &mut self.desired.status {
                None => self.desired.status = Some(st),
                Some(existing) => {
                    existing.hosts.extend(st.hosts);
                    existing.vms.extend(st.vms);
                }
            }
        }
    }

    fn vm(&mut self, ctx: &DocCtx, vm: &VmRaw, sink: &mut Sink) {
        let Some(vm_name) = name(ctx, &vm.name, "VM", sink) else {
            return;
        };
        let origin = ctx.at(&vm.name);
        let placed = [
            vm.host.is_some(),
            vm.hosts.is_some(),
            vm.host_group.is_some(),
        ];
        if placed.iter().filter(|b| **b).count() != 1 {
            sink.push(
                Diagnostic::new(
                    origin.clone(),
                    format!("VM `{vm_name}` must have exactly one of `host`, `hosts`, `hostGroup`"),
                )
                .with_help(
                    "`host` pins it; `hosts` or `hostGroup` let berth choose within the rules",
                ),
            );
            return;
        }
        let host = match &vm.host {
            Some(h) => name(ctx, h, "host", sink),
            None => Some(String::new()),
        };
        let mut fallback = Vec::new();
        let mut fallback_refs = Vec::new();
        for f in &vm.fallback {
            let Some(fname) = name(ctx, f, "fallback host", sink) else {
                continue;
            };
            if host.as_deref() == Some(fname.as_str()) {
                sink.push(
                    Diagnostic::new(
                        ctx.at(f),
                        format!("VM `{vm_name}` lists its own host `{fname}` as a fallback"),
                    )
                    .with_help("fallbacks are where it waits while its host is in maintenance"),
                );
                continue;
            }
            if fallback.contains(&fname) {
                sink.error(
                    ctx.at(f),
                    format!("fallback `{fname}` is listed twice for VM `{vm_name}`"),
                );
                continue;
            }
            fallback_refs.push((fname.clone(), ctx.at(f)));
            fallback.push(fname);
        }
        let adapters = vm
            .network_adapters
            .as_ref()
            .map(|list| adapters(ctx, &vm_name, list, sink));
        let priority = vm
            .priority
            .as_ref()
            .and_then(|p| int_in(ctx, p, "priority", -1_000_000, 1_000_000, sink))
            .unwrap_or(0);
        if let Some(prev) = self.desired.vms.get(&vm_name) {
            sink.push(
                Diagnostic::new(origin, format!("VM `{vm_name}` is declared twice"))
                    .with_related("first declared here", prev.origin.clone()),
            );
            return;
        }
        let Some(host) = host else { return };
        if let Some(list) = &vm.hosts {
            self.intent.choice_hosts(ctx, &vm_name, list);
        }
        if let Some(group) = &vm.host_group {
            self.intent.choice_group(ctx, &vm_name, group);
        }
        self.vm_refs.push(VmRefs {
            vm: vm_name.clone(),
            host: vm.host.as_ref().map(|h| (host.clone(), ctx.at(h))),
            fallback: fallback_refs,
        });
        self.desired.vms.insert(
            vm_name.clone(),
            VmSpec {
                name: vm_name,
                host,
                choice: None,
                fallback,
                adapters,
                origin,
                priority,
            },
        );
    }

    fn controller(&mut self, ctx: &DocCtx, doc: &ControllerDocument, sink: &mut Sink) {
        let here = ctx.at(&doc.kind);
        if let Some(first) = &self.controller_at {
            sink.push(
                Diagnostic::new(here, "more than one Controller document")
                    .with_related("the first Controller is here", first.clone())
                    .with_help("berth reads its settings from exactly one Controller document"),
            );
            return;
        }
        self.controller_at = Some(here.clone());
        let spec = &doc.spec.value;
        let resync_interval = spec
            .resync_interval
            .as_ref()
            .and_then(|d| duration(ctx, d, sink))
            .unwrap_or(Duration::from_secs(60));
        if resync_interval < Duration::from_secs(1)
            && spec.resync_interval.is_some()
            && let Some(r) = &spec.resync_interval
        {
            sink.error(ctx.at(r), "resyncInterval must be at least 1s");
        }
        let p = &spec.provider.value;
        let set = [p.sim.is_some(), p.hyperv.is_some(), p.scvmm.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set != 1 {
            sink.push(
                Diagnostic::new(
                    ctx.at(&spec.provider),
                    if set == 0 {
                        "no provider: set one of `sim`, `hyperv`, `scvmm`"
                    } else {
                        "more than one provider: set exactly one of `sim`, `hyperv`, `scvmm`"
                    },
                )
                .with_help("for example `provider: { sim: { fleet: fleet.yaml } }`"),
            );
            return;
        }
        let provider = if let Some(sim) = &p.sim {
            if sim.fleet.value.trim().is_empty() {
                sink.error(ctx.at(&sim.fleet), "`fleet` must name the Fleet file");
                return;
            }
            let base = ctx.file.path.parent().unwrap_or(Path::new(""));
            ProviderSpec::Sim {
                fleet: base.join(&sim.fleet.value),
            }
        } else if let Some(h) = &p.hyperv {
            let hosts = h
                .hosts
                .iter()
                .filter_map(|n| name(ctx, n, "host", sink))
                .collect();
            let mut destination_storage_paths = std::collections::BTreeMap::new();
            for (host, path) in &h.destination_storage_paths {
                if path.value.trim().is_empty() {
                    sink.error(
                        ctx.at(path),
                        format!("the storage path for `{host}` is empty"),
                    );
                    continue;
                }
                if !h.hosts.is_empty() && !h.hosts.iter().any(|n| &n.value == host) {
                    sink.push(
                        Diagnostic::new(ctx.at(path), format!("`{host}` is not one of `hosts`"))
                            .with_help(
                                "destinationStoragePaths is keyed by the names listed in `hosts`",
                            ),
                    );
                    continue;
                }
                destination_storage_paths.insert(host.clone(), path.value.clone());
            }
            ProviderSpec::HyperV(HyperVSettings {
                hosts,
                destination_storage_path: h
                    .destination_storage_path
                    .as_ref()
                    .map(|p| p.value.clone()),
                destination_storage_paths,
                shell: shell_settings(ctx, &h.transport, &h.shell, &h.call_timeout, sink),
            })
        } else if let Some(s) = &p.scvmm {
            let Some(server) = name(ctx, &s.server, "server", sink) else {
                return;
            };
            let mut shell = shell_settings(ctx, &s.transport, &s.shell, &s.call_timeout, sink);
            scvmm_shell(ctx, s, &mut shell, sink);
            ProviderSpec::Scvmm(ScvmmSettings {
                server,
                destination_storage_path: s
                    .destination_storage_path
                    .as_ref()
                    .map(|p| p.value.clone()),
                shell,
            })
        } else {
            return;
        };
        self.desired.controller = Some(ControllerSpec {
            provider,
            resync_interval,
            origin: here,
        });
    }

    /// Checks that VM hosts and fallbacks name declared hosts.
    fn references(&mut self, sink: &mut Sink) {
        let hosts: Vec<&str> = self.desired.hosts.keys().map(String::as_str).collect();
        for r in &self.vm_refs {
            let mut check = |host: &str, origin: &Origin, what: &str| {
                if self.desired.hosts.contains_key(host) {
                    return;
                }
                let mut d = Diagnostic::new(
                    origin.clone(),
                    format!(
                        "VM `{}` names {what} `{host}`, which is not a declared host",
                        r.vm
                    ),
                );
                d = match closest(host, hosts.iter().copied()) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help("declare it under `spec.hosts`"),
                };
                sink.push(d);
            };
            if let Some((h, at)) = &r.host {
                check(h, at, "host");
            }
            for (f, o) in &r.fallback {
                check(f, o, "fallback");
            }
        }
    }
}

fn policy_spec(ctx: &DocCtx, p: &PolicyRaw, sink: &mut Sink) -> Policy {
    let d = Policy::default();
    let int = |v: &Option<Sp<i64>>, field: &str, max: i64, default: u32, sink: &mut Sink| {
        v.as_ref()
            .and_then(|v| int_in(ctx, v, field, 1, max, sink))
            .map_or(default, |n| n as u32)
    };
    Policy {
        max_parallel_migrations: int(
            &p.max_parallel_migrations,
            "maxParallelMigrations",
            10_000,
            d.max_parallel_migrations,
            sink,
        ),
        max_migrations_per_host: int(
            &p.max_migrations_per_host,
            "maxMigrationsPerHost",
            64,
            d.max_migrations_per_host,
            sink,
        ),
        max_attempts: int(&p.max_attempts, "maxAttempts", 100, d.max_attempts, sink),
        max_moves_per_apply: int(
            &p.max_moves_per_apply,
            "maxMovesPerApply",
            1_000_000,
            d.max_moves_per_apply,
            sink,
        ),
        move_timeout: positive_duration(ctx, &p.move_timeout, d.move_timeout, sink),
        backup_wait: p
            .backup_wait
            .as_ref()
            .and_then(|b| duration(ctx, b, sink))
            .unwrap_or(d.backup_wait),
        suspend: p.suspend.unwrap_or(false),
        max_storage_migrations_per_host: int(
            &p.max_storage_migrations_per_host,
            "maxStorageMigrationsPerHost",
            64,
            d.max_storage_migrations_per_host,
            sink,
        ),
        move_windows: p
            .move_windows
            .as_ref()
            .map(|w| super::window::move_windows(ctx, w, sink))
            .unwrap_or_default(),
    }
}

fn positive_duration(
    ctx: &DocCtx,
    v: &Option<Sp<String>>,
    default: Duration,
    sink: &mut Sink,
) -> Duration {
    let Some(sp) = v else { return default };
    match duration(ctx, sp, sink) {
        Some(d) if d.is_zero() => {
            sink.error(ctx.at(sp), "the duration must be longer than 0s");
            default
        }
        Some(d) => d,
        None => default,
    }
}

fn shell_settings(
    ctx: &DocCtx,
    transport: &Option<Sp<String>>,
    shell: &Option<Sp<String>>,
    timeout: &Option<Sp<String>>,
    sink: &mut Sink,
) -> ShellSettings {
    let d = ShellSettings::default();
    let transport = match transport {
        None => d.transport,
        Some(t) => match t.value.to_ascii_lowercase().as_str() {
            "local" => Transport::Local,
            "winrm" => Transport::WinRm,
            "ssh" => Transport::Ssh,
            other => {
                sink.push(
                    Diagnostic::new(ctx.at(t), format!("unknown transport `{other}`"))
                        .with_help("expected one of: local, winrm, ssh"),
                );
                d.transport
            }
        },
    };
    let shell = shell
        .as_ref()
        .and_then(|s| name(ctx, s, "shell", sink))
        .unwrap_or(d.shell);
    ShellSettings {
        transport,
        shell,
        call_timeout: positive_duration(ctx, timeout, d.call_timeout, sink),
    }
}

/// The scvmm backend's shell: Windows PowerShell 5.1 (`powershell.exe`)
/// unless another is named, never PowerShell 7 (the VirtualMachineManager
/// module does not load there) and never the SSH transport (which needs
/// PowerShell 7 on both ends).
fn scvmm_shell(ctx: &DocCtx, s: &ScvmmRaw, shell: &mut ShellSettings, sink: &mut Sink) {
    if s.shell.is_none() {
        shell.shell = SCVMM_SHELL.to_string();
    }
    if let Some(t) = &s.transport
        && shell.transport == Transport::Ssh
    {
        sink.push(
            Diagnostic::new(
                ctx.at(t),
                "the scvmm backend cannot use transport `ssh`: PowerShell remoting over SSH needs PowerShell 7, where the VirtualMachineManager module does not load",
            )
            .with_help("use `transport: local` (the VMM console on this machine) or `transport: winrm`"),
        );
    }
    if let Some(sh) = &s.shell
        && is_pwsh(&sh.value)
    {
        sink.push(
            Diagnostic::new(
                ctx.at(sh),
                format!(
                    "the scvmm backend cannot run in PowerShell 7 (`{}`): the VirtualMachineManager module does not load there",
                    sh.value
                ),
            )
            .with_help("leave `shell` out (Windows PowerShell 5.1, `powershell.exe`) or name powershell.exe"),
        );
    }
}

/// Whether a shell names PowerShell 7 (`pwsh`, `pwsh.exe`, a path to it).
fn is_pwsh(shell: &str) -> bool {
    let file = shell
        .trim()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let stem = file.strip_suffix(".exe").unwrap_or(&file);
    stem == "pwsh" || stem.starts_with("pwsh-")
}

fn adapters(ctx: &DocCtx, vm: &str, list: &[AdapterRaw], sink: &mut Sink) -> Vec<AdapterSpec> {
    let mut out: Vec<AdapterSpec> = Vec::new();
    let mut seen: HashMap<String, Origin> = HashMap::new();
    for a in list {
        let Some(aname) = name(ctx, &a.name, "adapter", sink) else {
            continue;
        };
        if let Some(prev) = seen.get(&aname) {
            sink.push(
                Diagnostic::new(
                    ctx.at(&a.name),
                    format!("adapter `{aname}` of VM `{vm}` is declared twice"),
                )
                .with_related("first declared here", prev.clone()),
            );
            continue;
        }
        seen.insert(aname.clone(), ctx.at(&a.name));
        let switch = a.switch.as_ref().and_then(|s| name(ctx, s, "switch", sink));
        let vm_network = a
            .vm_network
            .as_ref()
            .and_then(|s| name(ctx, s, "VM network", sink));
        let vlan_id = a.vlan_id.as_ref().and_then(|v| vlan(ctx, v, sink));
        let acls = a.acls.as_ref().map(|l| acl_list(ctx, l, sink));
        out.push(AdapterSpec {
            name: aname,
            switch,
            vm_network,
            vlan_id,
            acls,
        });
    }
    out
}

fn vlan(ctx: &DocCtx, v: &Sp<i64>, sink: &mut Sink) -> Option<u16> {
    int_in(ctx, v, "vlanId", 1, 4094, sink).map(|n| n as u16)
}

/// Validates and normalises an adapter's ACLs (a `both` rule becomes one
/// rule per direction), sorted by (direction, weight).
fn acl_list(ctx: &DocCtx, list: &[Sp<AclRaw>], sink: &mut Sink) -> Vec<Acl> {
    let mut out: Vec<Acl> = Vec::new();
    let mut seen: HashMap<(Direction, u32), Origin> = HashMap::new();
    for raw in list {
        let Some(rules) = acl(ctx, raw, sink) else {
            continue;
        };
        for rule in rules {
            if let Some(prev) = seen.get(&rule.key()) {
                sink.push(
                    Diagnostic::new(
                        ctx.at(&raw.value.weight),
                        format!(
                            "two {} ACLs with weight {} on one adapter",
                            rule.direction, rule.weight
                        ),
                    )
                    .with_related("the other rule is here", prev.clone())
                    .with_help("weights are unique per adapter and direction; `both` counts for each direction"),
                );
                continue;
            }
            seen.insert(rule.key(), ctx.at(&raw.value.weight));
            out.push(rule);
        }
    }
    out.sort();
    out
}

/// One raw ACL as one or two normalised rules; `None` when invalid.
fn acl(ctx: &DocCtx, raw: &Sp<AclRaw>, sink: &mut Sink) -> Option<Vec<Acl>> {
    let r = &raw.value;
    let before = sink.len();
    let action = match r.action.value.to_ascii_lowercase().as_str() {
        "allow" => Some(AclAction::Allow),
        "deny" => Some(AclAction::Deny),
        other => {
            sink.push(
                Diagnostic::new(ctx.at(&r.action), format!("unknown ACL action `{other}`"))
                    .with_help("expected `allow` or `deny`"),
            );
            None
        }
    };
    let directions: &[Direction] = match r.direction.value.to_ascii_lowercase().as_str() {
        "inbound" => &[Direction::Inbound],
        "outbound" => &[Direction::Outbound],
        "both" => &[Direction::Inbound, Direction::Outbound],
        other => {
            sink.push(
                Diagnostic::new(
                    ctx.at(&r.direction),
                    format!("unknown ACL direction `{other}`"),
                )
                .with_help("expected `inbound`, `outbound` or `both`"),
            );
            &[]
        }
    };
    let local_address = address(ctx, &r.local_address, sink);
    let remote_address = address(ctx, &r.remote_address, sink);
    let local_port = port(ctx, &r.local_port, sink);
    let remote_port = port(ctx, &r.remote_port, sink);
    let protocol = protocol(ctx, &r.protocol, sink);
    let weight = int_in(ctx, &r.weight, "weight", 1, 65_535, sink);
    let stateful = r.stateful.unwrap_or(false);
    let idle = match &r.idle_session_timeout {
        None => Some(0),
        Some(t) if !stateful => {
            sink.push(
                Diagnostic::new(
                    ctx.at(t),
                    "`idleSessionTimeout` is set on a rule that is not stateful",
                )
                .with_help("add `stateful: true` or remove `idleSessionTimeout`"),
            );
            None
        }
        Some(t) => int_in(ctx, t, "idleSessionTimeout", 0, 65_535, sink),
    };
    let isolation = match &r.isolation_id {
        None => Some(0),
        Some(i) => int_in(ctx, i, "isolationId", 0, i64::from(u32::MAX), sink),
    };
    if sink.len() != before {
        return None;
    }
    let (action, weight, idle, isolation) = (action?, weight?, idle?, isolation?);
    Some(
        directions
            .iter()
            .map(|d| Acl {
                direction: *d,
                weight: weight as u32,
                action,
                local_address: local_address.unwrap_or(AddressMatch::Any),
                remote_address: remote_address.unwrap_or(AddressMatch::Any),
                local_port: local_port.unwrap_or(PortMatch::Any),
                remote_port: remote_port.unwrap_or(PortMatch::Any),
                protocol: protocol.unwrap_or(ProtocolMatch::Any),
                stateful,
                idle_session_timeout: idle as u32,
                isolation_id: isolation as u32,
            })
            .collect(),
    )
}

fn address(ctx: &DocCtx, v: &Option<Sp<String>>, sink: &mut Sink) -> Option<AddressMatch> {
    let sp = v.as_ref()?;
    match parse_address(&sp.value) {
        Ok(a) => Some(a),
        Err(msg) => {
            sink.push(
                Diagnostic::new(ctx.at(sp), msg)
                    .with_help("expected an IP address, a CIDR network such as 10.0.0.0/8, or ANY"),
            );
            None
        }
    }
}

/// Parses `ANY`, an IP address or a CIDR network.
pub fn parse_address(text: &str) -> Result<AddressMatch, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("any") || t == "*" {
        return Ok(AddressMatch::Any);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(AddressMatch::Net(IpNet::from(ip)));
    }
    match t.parse::<IpNet>() {
        Ok(net) => Ok(AddressMatch::Net(net.trunc())),
        Err(_) => Err(format!("invalid address `{text}`")),
    }
}

fn port(ctx: &DocCtx, v: &Option<Sp<String>>, sink: &mut Sink) -> Option<PortMatch> {
    let sp = v.as_ref()?;
    match parse_port(&sp.value) {
        Ok(p) => Some(p),
        Err(msg) => {
            sink.push(
                Diagnostic::new(ctx.at(sp), msg)
                    .with_help("expected a port 0-65535, a range such as 49152-49182, or ANY"),
            );
            None
        }
    }
}

/// Parses `ANY`, a port, or a range `lo-hi` with `lo <= hi`.
pub fn parse_port(text: &str) -> Result<PortMatch, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("any") || t == "*" {
        return Ok(PortMatch::Any);
    }
    let one = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid port `{text}`"))
    };
    match t.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (one(lo)?, one(hi)?);
            if lo > hi {
                return Err(format!("port range `{text}` runs backwards ({lo} > {hi})"));
            }
            Ok(PortMatch::Range(lo, hi))
        }
        None => {
            let p = one(t)?;
            Ok(PortMatch::Range(p, p))
        }
    }
}

fn protocol(ctx: &DocCtx, v: &Option<Sp<String>>, sink: &mut Sink) -> Option<ProtocolMatch> {
    let sp = v.as_ref()?;
    match parse_protocol(&sp.value) {
        Ok(p) => Some(p),
        Err(msg) => {
            sink.push(
                Diagnostic::new(ctx.at(sp), msg)
                    .with_help("expected tcp, udp, icmp, a protocol number 0-255, or ANY"),
            );
            None
        }
    }
}

/// Parses `tcp`, `udp`, `icmp`, a number 0-255 or `ANY`.
pub fn parse_protocol(text: &str) -> Result<ProtocolMatch, String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "any" | "*" => Ok(ProtocolMatch::Any),
        "tcp" => Ok(ProtocolMatch::Number(6)),
        "udp" => Ok(ProtocolMatch::Number(17)),
        "icmp" | "icmpv4" => Ok(ProtocolMatch::Number(1)),
        n => n
            .parse::<u8>()
            .map(ProtocolMatch::Number)
            .map_err(|_| format!("invalid protocol `{text}`")),
    }
}

/// Checks a name: non-empty, no control characters, not absurdly long.
fn name(ctx: &DocCtx, v: &Sp<String>, what: &str, sink: &mut Sink) -> Option<String> {
    match check_name(&v.value) {
        Ok(()) => Some(v.value.clone()),
        Err(problem) => {
            sink.error(ctx.at(v), format!("{what} name {problem}"));
            None
        }
    }
}

/// The rule every name follows; quotes, `$`, spaces and unicode are legal.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("is empty".to_string());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {:?}", c));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    Ok(())
}

fn int_in(
    ctx: &DocCtx,
    v: &Sp<i64>,
    field: &str,
    lo: i64,
    hi: i64,
    sink: &mut Sink,
) -> Option<i64> {
    if (lo..=hi).contains(&v.value) {
        Some(v.value)
    } else {
        sink.error(
            ctx.at(v),
            format!("`{field}` must be between {lo} and {hi}, not {}", v.value),
        );
        None
    }
}

fn duration(ctx: &DocCtx, v: &Sp<String>, sink: &mut Sink) -> Option<Duration> {
    match parse_duration(&v.value) {
        Ok(d) => Some(d),
        Err(msg) => {
            sink.error(ctx.at(v), msg);
            None
        }
    }
}

fn gib_to_mib(ctx: &DocCtx, v: &Sp<f64>, field: &str, sink: &mut Sink) -> Option<u64> {
    let g = v.value;
    if !g.is_finite() || g <= 0.0 || g > 1_048_576.0 {
        sink.error(
            ctx.at(v),
            format!("`{field}` must be a positive number of GiB (up to 1048576), not {g}"),
        );
        return None;
    }
    Some((g * 1024.0).round().max(1.0) as u64)
}

fn cpu_vendor(ctx: &DocCtx, v: &Option<Sp<String>>, sink: &mut Sink) -> CpuVendor {
    let Some(sp) = v else {
        return CpuVendor::default();
    };
    match sp.value.to_ascii_lowercase().as_str() {
        "intel" => CpuVendor::Intel,
        "amd" => CpuVendor::Amd,
        other => {
            sink.push(
                Diagnostic::new(ctx.at(sp), format!("unknown cpuVendor `{other}`"))
                    .with_help("expected `intel` or `amd`"),
            );
            CpuVendor::default()
        }
    }
}

fn power_state(ctx: &DocCtx, sp: &Sp<String>, sink: &mut Sink) -> PowerState {
    match sp.value.to_ascii_lowercase().as_str() {
        "running" => PowerState::Running,
        "off" => PowerState::Off,
        "saved" => PowerState::Saved,
        "paused" => PowerState::Paused,
        other => {
            sink.push(
                Diagnostic::new(ctx.at(sp), format!("unknown state `{other}`"))
                    .with_help("expected one of: running, off, saved, paused"),
            );
            PowerState::default()
        }
    }
}

/// Validates a Fleet document (the simulator's world).
fn fleet(ctx: &DocCtx, doc: &FleetDocument, sink: &mut Sink) -> Option<FleetSpec> {
    let before = sink.len();
    let spec = &doc.spec.value;
    let faults_raw = spec.faults.clone().unwrap_or_default();
    let rate = faults_raw.transient_failure_rate.as_ref().map_or(0.0, |r| {
        if !(0.0..=1.0).contains(&r.value) {
            sink.error(
                ctx.at(r),
                format!(
                    "`transientFailureRate` must be between 0 and 1, not {}",
                    r.value
                ),
            );
            0.0
        } else {
            r.value
        }
    });
    let faults = Faults {
        transient_failure_rate: rate,
        drop_acls_on_migration: faults_raw.drop_acls_on_migration.unwrap_or(false),
        disconnect_on_offline_move: faults_raw.disconnect_on_offline_move.unwrap_or(false),
        over_limit_wait: faults_raw
            .over_limit_wait
            .as_ref()
            .and_then(|d| duration(ctx, d, sink))
            .unwrap_or(Duration::from_secs(300)),
    };
    let mut hosts: Vec<FleetHost> = Vec::new();
    let mut host_at: BTreeMap<String, (Origin, usize)> = BTreeMap::new();
    for h in &spec.hosts {
        let Some(hname) = name(ctx, &h.name, "host", sink) else {
            continue;
        };
        if let Some((prev, _)) = host_at.get(&hname) {
            sink.push(
                Diagnostic::new(ctx.at(&h.name), format!("host `{hname}` is declared twice"))
                    .with_related("first declared here", prev.clone()),
            );
            continue;
        }
        let memory_mib = gib_to_mib(ctx, &h.memory_gib, "memoryGiB", sink).unwrap_or(0);
        let max_migrations = h
            .max_migrations
            .as_ref()
            .and_then(|m| int_in(ctx, m, "maxMigrations", 0, 64, sink))
            .unwrap_or(2) as u32;
        let rate = match &h.migration_rate_mibps {
            None => 1000.0,
            Some(r) if r.value.is_finite() && r.value > 0.0 => r.value,
            Some(r) => {
                sink.error(
                    ctx.at(r),
                    format!(
                        "`migrationRateMiBps` must be a positive number, not {}",
                        r.value
                    ),
                );
                1000.0
            }
        };
        let switches = h
            .switches
            .iter()
            .filter_map(|s| name(ctx, s, "switch", sink))
            .collect();
        let max_storage_migrations = h
            .max_storage_migrations
            .as_ref()
            .and_then(|m| int_in(ctx, m, "maxStorageMigrations", 0, 64, sink))
            .unwrap_or(2) as u32;
        let network_mibps = match &h.network_mibps {
            None => None,
            Some(r) if r.value.is_finite() && r.value > 0.0 => Some(r.value),
            Some(r) => {
                sink.error(
                    ctx.at(r),
                    format!("`networkMiBps` must be a positive number, not {}", r.value),
                );
                None
            }
        };
        let volumes = super::storage::volumes(ctx, &hname, &h.volumes, sink);
        host_at.insert(hname.clone(), (ctx.at(&h.name), hosts.len()));
        hosts.push(FleetHost {
            name: hname,
            memory_mib,
            max_migrations,
            cpu_vendor: cpu_vendor(ctx, &h.cpu_vendor, sink),
            switches,
            migration_rate_mibps: rate,
            down: h.down.unwrap_or(false),
            max_storage_migrations,
            network_mibps,
            volumes,
        });
    }
    let largest = hosts.iter().map(|h| h.memory_mib).max().unwrap_or(0);
    let mut vms = Vec::new();
    let mut vm_at: HashMap<String, Origin> = HashMap::new();
    for v in &spec.vms {
        let Some(vname) = name(ctx, &v.name, "VM", sink) else {
            continue;
        };
        if let Some(prev) = vm_at.get(&vname) {
            sink.push(
                Diagnostic::new(ctx.at(&v.name), format!("VM `{vname}` is declared twice"))
                    .with_related("first declared here", prev.clone()),
            );
            continue;
        }
        vm_at.insert(vname.clone(), ctx.at(&v.name));
        let host_idx = match host_at.get(&v.host.value) {
            Some((_, i)) => Some(*i),
            None => {
                let mut d = Diagnostic::new(
                    ctx.at(&v.host),
                    format!(
                        "VM `{vname}` is on host `{}`, which the fleet does not declare",
                        v.host.value
                    ),
                );
                if let Some(best) = closest(&v.host.value, host_at.keys().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                }
                sink.push(d);
                None
            }
        };
        let memory_mib = gib_to_mib(ctx, &v.memory_gib, "memoryGiB", sink).unwrap_or(0);
        if memory_mib > largest && largest > 0 {
            sink.error(
                ctx.at(&v.memory_gib),
                format!(
                    "VM `{vname}` needs {} GiB, more than any host has ({} GiB)",
                    v.memory_gib.value,
                    largest as f64 / 1024.0
                ),
            );
        }
        let state = v
            .state
            .as_ref()
            .map_or(PowerState::Running, |s| power_state(ctx, s, sink));
        let mut backups = Vec::new();
        for b in &v.backups {
            let at = duration(ctx, &b.value.at, sink);
            let len = duration(ctx, &b.value.r#for, sink);
            if let (Some(at), Some(len)) = (at, len) {
                backups.push((at, len));
            }
        }
        let fail_next = v
            .fail_next_migrations
            .as_ref()
            .and_then(|n| int_in(ctx, n, "failNextMigrations", 0, 1_000_000, sink))
            .unwrap_or(0) as u32;
        let mut adapters = Vec::new();
        let mut seen = HashMap::new();
        for a in &v.network_adapters {
            let Some(aname) = name(ctx, &a.name, "adapter", sink) else {
                continue;
            };
            if seen.insert(aname.clone(), ()).is_some() {
                sink.error(
                    ctx.at(&a.name),
                    format!("adapter `{aname}` of VM `{vname}` is declared twice"),
                );
                continue;
            }
            let switch = a.switch.as_ref().and_then(|s| name(ctx, s, "switch", sink));
            let connected = a.connected.unwrap_or(switch.is_some());
            if connected && switch.is_none() {
                sink.error(
                    ctx.at(&a.name),
                    format!("adapter `{aname}` is connected but names no switch"),
                );
            }
            if let (Some(sw), Some(i), true) = (&switch, host_idx, connected)
                && !hosts[i].switches.contains(sw)
                && let Some(s) = &a.switch
            {
                sink.error(
                    ctx.at(s),
                    format!(
                        "adapter `{aname}` is connected to `{sw}`, which host `{}` does not have",
                        hosts[i].name
                    ),
                );
            }
            adapters.push(FleetAdapter {
                name: aname,
                switch,
                connected,
                vm_network: a.vm_network.as_ref().map(|n| n.value.clone()),
                vlan_id: a.vlan_id.as_ref().and_then(|v| vlan(ctx, v, sink)),
                acls: acl_list(ctx, &a.acls, sink),
            });
        }
        let disks = super::storage::fleet_disks(
            ctx,
            &vname,
            host_idx.map(|i| (hosts[i].name.as_str(), hosts[i].volumes.as_slice())),
            &v.disks,
            sink,
        );
        vms.push(FleetVm {
            name: vname,
            host: v.host.value.clone(),
            memory_mib,
            state,
            backups,
            fail_next_migrations: fail_next,
            adapters,
            disks,
        });
    }
    // Running VMs must fit their starting host.
    let mut used: HashMap<&str, u64> = HashMap::new();
    for (vm, raw) in vms.iter().zip(spec.vms.iter()) {
        if vm.state.is_live() {
            *used.entry(vm.host.as_str()).or_default() += vm.memory_mib;
            if let Some((origin, i)) = host_at.get(&vm.host) {
                let total = used[vm.host.as_str()];
                if total > hosts[*i].memory_mib && total - vm.memory_mib <= hosts[*i].memory_mib {
                    sink.push(
                        Diagnostic::new(
                            ctx.at(&raw.name),
                            format!(
                                "running VMs on host `{}` need more memory than it has",
                                vm.host
                            ),
                        )
                        .with_related("the host is declared here", origin.clone()),
                    );
                }
            }
        }
    }
    let start_time = match &spec.start_time {
        None => DEFAULT_START_TIME,
        Some(t) => match t.value.trim().parse::<jiff::Timestamp>() {
            Ok(ts) => ts,
            Err(e) => {
                sink.push(
                    Diagnostic::new(
                        ctx.at(t),
                        format!("`startTime` is not an RFC 3339 instant: {e}"),
                    )
                    .with_help("for example `2026-01-05T22:00:00+01:00` or `2026-01-05T21:00:00Z`"),
                );
                DEFAULT_START_TIME
            }
        },
    };
    if sink.len() != before {
        return None;
    }
    Some(FleetSpec {
        seed: spec.seed.unwrap_or(0),
        start_time,
        faults,
        hosts,
        vms,
        origin: ctx.at(&doc.kind),
    })
}

fn fleet_status(ctx: &DocCtx, st: &FleetStatus, sink: &mut Sink) -> FleetStatusSpec {
    let mut out = FleetStatusSpec {
        observed_at: st.observed_at,
        ..Default::default()
    };
    for h in &st.hosts {
        let Some(hname) = name(ctx, &h.name, "host", sink) else {
            continue;
        };
        out.hosts.insert(
            hname,
            HostStatusSpec {
                memory_mib: gib_to_mib(ctx, &h.memory_gib, "memoryGiB", sink).unwrap_or(0),
                max_migrations: int_in(ctx, &h.max_migrations, "maxMigrations", 0, 64, sink)
                    .unwrap_or(0) as u32,
                cpu_vendor: cpu_vendor(ctx, &Some(h.cpu_vendor.clone()), sink),
                switches: h
                    .switches
                    .iter()
                    .filter_map(|s| name(ctx, s, "switch", sink))
                    .collect(),
                migration_rate_mibps: h.migration_rate_mibps.as_ref().map(|r| r.value),
                reachable: h.reachable,
                max_storage_migrations: h
                    .max_storage_migrations
                    .as_ref()
                    .and_then(|m| int_in(ctx, m, "maxStorageMigrations", 0, 64, sink))
                    .unwrap_or(2) as u32,
                network_mibps: h
                    .network_mibps
                    .as_ref()
                    .map(|r| r.value)
                    .filter(|r| r.is_finite() && *r > 0.0),
                volumes: super::storage::volumes(ctx, &h.name.value, &h.volumes, sink),
            },
        );
    }
    for v in &st.vms {
        let Some(vname) = name(ctx, &v.name, "VM", sink) else {
            continue;
        };
        let operation = match v.operation.as_ref().map(|o| o.value.as_str()) {
            None => None,
            Some("migrating") => Some(VmOperation::Migrating),
            Some("backingUp") => Some(VmOperation::BackingUp),
            Some(other) => {
                if let Some(o) = &v.operation {
                    sink.push(
                        Diagnostic::new(ctx.at(o), format!("unknown operation `{other}`"))
                            .with_help("expected `migrating` or `backingUp`"),
                    );
                }
                None
            }
        };
        out.vms.insert(
            vname,
            VmStatusSpec {
                state: power_state(ctx, &v.state, sink),
                memory_mib: gib_to_mib(ctx, &v.memory_gib, "memoryGiB", sink).unwrap_or(0),
                operation,
                migrating_to: v.migrating_to.as_ref().map(|m| m.value.clone()),
                disks: super::storage::status_disks(ctx, &v.disks, sink),
            },
        );
    }
    out
}
