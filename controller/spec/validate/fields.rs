//! Checks of single values: names, numbers, durations, sizes, ACL match
//! fields, power states. Each reports at the value's own position and
//! returns `None` (or a default) when the value is not usable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::super::diag::{Diagnostic, Origin, Sink};
use super::super::duration::parse_duration;
use super::super::load::DocCtx;
use super::super::model::*;
use super::super::raw::*;

/// Longest name berth accepts (Hyper-V allows 100 characters for VM names;
/// hosts and switches are shorter still).
const MAX_NAME_CHARS: usize = 256;

pub(super) fn address(
    ctx: &DocCtx,
    v: &Option<Sp<String>>,
    sink: &mut Sink,
) -> Option<AddressMatch> {
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

pub(super) fn port(ctx: &DocCtx, v: &Option<Sp<String>>, sink: &mut Sink) -> Option<PortMatch> {
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

pub(super) fn protocol(
    ctx: &DocCtx,
    v: &Option<Sp<String>>,
    sink: &mut Sink,
) -> Option<ProtocolMatch> {
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
pub(super) fn name(ctx: &DocCtx, v: &Sp<String>, what: &str, sink: &mut Sink) -> Option<String> {
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

pub(super) fn int_in(
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

pub(super) fn duration(ctx: &DocCtx, v: &Sp<String>, sink: &mut Sink) -> Option<Duration> {
    match parse_duration(&v.value) {
        Ok(d) => Some(d),
        Err(msg) => {
            sink.error(ctx.at(v), msg);
            None
        }
    }
}

/// An optional number that must be finite and above zero; `None` when it
/// is absent or not.
pub(super) fn positive(
    ctx: &DocCtx,
    v: &Option<Sp<f64>>,
    field: &str,
    sink: &mut Sink,
) -> Option<f64> {
    let r = v.as_ref()?;
    if r.value.is_finite() && r.value > 0.0 {
        return Some(r.value);
    }
    sink.error(
        ctx.at(r),
        format!("`{field}` must be a positive number, not {}", r.value),
    );
    None
}

pub(super) fn gib_to_mib(ctx: &DocCtx, v: &Sp<f64>, field: &str, sink: &mut Sink) -> Option<u64> {
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

pub(super) fn cpu_vendor(ctx: &DocCtx, v: &Option<Sp<String>>, sink: &mut Sink) -> CpuVendor {
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

pub(super) fn power_state(ctx: &DocCtx, sp: &Sp<String>, sink: &mut Sink) -> PowerState {
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

pub(super) fn vlan(ctx: &DocCtx, v: &Sp<i64>, sink: &mut Sink) -> Option<u16> {
    int_in(ctx, v, "vlanId", 1, 4094, sink).map(|n| n as u16)
}

/// Validates and normalises an adapter's ACLs (a `both` rule becomes one
/// rule per direction), sorted by (direction, weight).
pub(super) fn acl_list(ctx: &DocCtx, list: &[Sp<AclRaw>], sink: &mut Sink) -> Vec<Acl> {
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
pub(super) fn acl(ctx: &DocCtx, raw: &Sp<AclRaw>, sink: &mut Sink) -> Option<Vec<Acl>> {
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
