//! Placement and Controller documents checked on their own, into [`Part`]s.
//!
//! Everything here needs only the document at hand, so it runs on the
//! loader's worker threads and its result can be kept between loads. What
//! needs other documents (duplicates across files, references, the single
//! policy and Controller) is settled when parts are merged (`super`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::super::diag::{Diagnostic, Origin, Sink};
use super::super::intent::Collected;
use super::super::load::DocCtx;
use super::super::model::*;
use super::super::raw::*;
use super::fields::*;
use super::{ControllerPart, PlacementPart, PolicyPart, VmPart};

/// Checks a Placement document; its problems go to `sink`, except those of
/// its policy, which count only for the first policy (`PolicyPart`).
pub(super) fn placement(ctx: &DocCtx, doc: &PlacementDocument, sink: &mut Sink) -> PlacementPart {
    let spec = &doc.spec.value;
    let policy = spec.policy.as_ref().map(|policy| {
        let mut problems = Sink::default();
        let converted = policy_spec(ctx, &policy.value, &mut problems);
        let headroom = policy
            .value
            .headroom
            .as_ref()
            .map(|n| int_in(ctx, n, "headroom", 0, 1000, &mut problems).unwrap_or(0) as u32);
        PolicyPart {
            at: ctx.at(policy),
            policy: converted,
            headroom,
            problems: problems.into_diagnostics(),
        }
    });
    let mut hosts = Vec::with_capacity(spec.hosts.len());
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
            .filter(|p| super::super::storage::check_path(ctx, p, "storagePath", sink))
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
        hosts.push(HostSpec {
            name,
            maintenance: h.maintenance.unwrap_or(false),
            max_migrations,
            max_storage_migrations,
            storage_path,
            labels,
            origin,
        });
    }
    let vms = spec
        .vms
        .iter()
        .filter_map(|vm| self::vm(ctx, vm, sink))
        .collect();
    let mut intent = Collected::default();
    intent.groups(ctx, &spec.host_groups);
    intent.rules(ctx, &spec.rules, sink);
    let status = doc
        .status
        .as_ref()
        .map(|status| super::fleet::fleet_status(ctx, &status.value, sink));
    PlacementPart {
        policy,
        hosts,
        vms,
        intent,
        status,
    }
}

/// Checks one VM entry; `None` when it has no usable name or no single
/// way of being placed (nothing of it can be merged).
fn vm(ctx: &DocCtx, vm: &VmRaw, sink: &mut Sink) -> Option<VmPart> {
    let vm_name = name(ctx, &vm.name, "VM", sink)?;
    let origin = ctx.at(&vm.name);
    let placed = [
        vm.host.is_some(),
        vm.hosts.is_some(),
        vm.host_group.is_some(),
    ];
    if placed.iter().filter(|b| **b).count() != 1 {
        sink.push(
            Diagnostic::new(
                origin,
                format!("VM `{vm_name}` must have exactly one of `host`, `hosts`, `hostGroup`"),
            )
            .with_help("`host` pins it; `hosts` or `hostGroup` let berth choose within the rules"),
        );
        return None;
    }
    let host = match &vm.host {
        Some(h) => name(ctx, h, "host", sink),
        None => Some(String::new()),
    };
    let mut fallback = Vec::new();
    let mut fallback_at = Vec::new();
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
        fallback_at.push(ctx.at(f));
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
    let usable = host.is_some();
    let choice = if let Some(list) = &vm.hosts {
        Some(Collected::hosts_choice(ctx, list))
    } else {
        vm.host_group
            .as_ref()
            .map(|g| Collected::group_choice(ctx, g))
    };
    Some(VmPart {
        host_at: vm.host.as_ref().map(|h| ctx.at(h)),
        fallback_at,
        choice,
        usable,
        spec: std::sync::Arc::new(VmSpec {
            name: vm_name,
            host: host.unwrap_or_default(),
            choice: None,
            fallback,
            adapters,
            origin,
            priority,
        }),
    })
}

/// Checks a Controller document; its problems count only when it is the
/// first Controller (`ControllerPart`).
pub(super) fn controller(ctx: &DocCtx, doc: &ControllerDocument) -> ControllerPart {
    let mut problems = Sink::default();
    let spec = controller_spec(ctx, doc, &mut problems);
    ControllerPart {
        at: ctx.at(&doc.kind),
        spec,
        problems: problems.into_diagnostics(),
    }
}

fn controller_spec(
    ctx: &DocCtx,
    doc: &ControllerDocument,
    sink: &mut Sink,
) -> Option<ControllerSpec> {
    let here = ctx.at(&doc.kind);
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
        return None;
    }
    let provider = if let Some(sim) = &p.sim {
        if sim.fleet.value.trim().is_empty() {
            sink.error(ctx.at(&sim.fleet), "`fleet` must name the Fleet file");
            return None;
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
            destination_storage_path: h.destination_storage_path.as_ref().map(|p| p.value.clone()),
            destination_storage_paths,
            shell: shell_settings(ctx, &h.transport, &h.shell, &h.call_timeout, sink),
        })
    } else if let Some(s) = &p.scvmm {
        let server = name(ctx, &s.server, "server", sink)?;
        let mut shell = shell_settings(ctx, &s.transport, &s.shell, &s.call_timeout, sink);
        scvmm_shell(ctx, s, &mut shell, sink);
        ProviderSpec::Scvmm(ScvmmSettings {
            server,
            destination_storage_path: s.destination_storage_path.as_ref().map(|p| p.value.clone()),
            shell,
        })
    } else {
        return None;
    };
    Some(ControllerSpec {
        provider,
        resync_interval,
        origin: here,
    })
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
            .map(|w| super::super::window::move_windows(ctx, w, sink))
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
