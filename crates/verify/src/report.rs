//! The readable report: per PD what it can reach, then the invariants,
//! then the policies.

use std::fmt::Write;

use sdf::{Pos, SystemDescription};

use crate::flow::policy_title;
use crate::graph::{Claims, EdgeKind, Node, ReachGraph};
use crate::violation::{Check, Violation};

/// Width of the label column of a PD's lines.
const LABEL: usize = 10;

pub(crate) fn report(
    sd: &SystemDescription,
    graph: &ReachGraph,
    violations: &[Violation],
    program_note: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "system {}", sd.file);
    let counts = [
        plural(sd.protection_domains.len(), "protection domain", "protection domains"),
        plural(sd.memory_regions.len(), "memory region", "memory regions"),
        plural(sd.channels.len(), "channel", "channels"),
        plural(sd.devices.len(), "device", "devices"),
        plural(sd.policies.len(), "policy", "policies"),
    ];
    let _ = writeln!(out, "{}", counts.join(", "));
    let claims = Claims::new(sd);
    for pd in 0..sd.protection_domains.len() {
        out.push('\n');
        protection_domain(&mut out, sd, graph, &claims, pd);
    }

    out.push_str("\ninvariants\n");
    let width = Check::INVARIANTS.iter().map(|c| c.name().len()).max().unwrap_or(0);
    for check in Check::INVARIANTS {
        let found: Vec<&Violation> = violations.iter().filter(|v| v.check == check).collect();
        let mut status = count(found.len(), "ok");
        if let (Check::MapOverFixedArea, Some(note)) = (check, program_note) {
            status.push_str(&format!(" ({note})"));
        }
        let _ = writeln!(out, "  {:<width$}  {status}", check.name());
        for v in found {
            let _ = writeln!(out, "    {v}");
        }
    }

    out.push_str("\npolicies\n");
    if sd.policies.is_empty() {
        out.push_str("  none declared\n");
    }
    for (index, policy) in sd.policies.iter().enumerate() {
        let found: Vec<&Violation> =
            violations.iter().filter(|v| v.check == Check::Policy(index)).collect();
        let status = if found.is_empty() { "holds" } else { "violated" };
        let _ = writeln!(out, "  {}: {status}", policy_title(sd, policy));
        for v in found {
            let _ = writeln!(out, "    {v}");
        }
    }

    let _ = writeln!(out, "\nresult: {}", count(violations.len(), "ok"));
    out
}

/// `ok`, `1 violation`, `3 violations`.
fn count(n: usize, none: &str) -> String {
    match n {
        0 => none.to_string(),
        n => plural(n, "violation", "violations"),
    }
}

/// `1 thing`, `2 things`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn protection_domain(
    out: &mut String,
    sd: &SystemDescription,
    graph: &ReachGraph,
    claims: &Claims,
    pd: usize,
) {
    let Some(p) = sd.protection_domains.get(pd) else { return };
    let passive = if p.passive { ", passive" } else { "" };
    let _ = writeln!(out, "protection domain '{}' (priority {}{passive})", p.name, p.priority);
    let at = |element: &str, pos: Pos| format!("({element} at {}:{pos})", sd.file);
    let name = |node: Node| match node {
        Node::Pd(i) => sd.protection_domains.get(i).map_or("?", |p| p.name.as_str()).to_string(),
        other => crate::violation::node_label(sd, other),
    };

    let (mut reads, mut writes, mut executes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut signals, mut calls, mut irqs, mut children) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut parent = Vec::new();
    for e in graph.edges_from(Node::Pd(pd)) {
        match e.kind {
            EdgeKind::Map { perms, cached, vaddr } => {
                let Node::Region(region) = e.to else { continue };
                let Some(mr) = sd.memory_regions.get(region) else { continue };
                let device = match claims.regions.get(&region).and_then(|&d| sd.devices.get(d)) {
                    Some(dev) => format!(" of device '{}'", dev.name),
                    None => String::new(),
                };
                let caching = if cached { "" } else { " uncached" };
                let line = format!(
                    "region '{}'{device} [{:#x}..{:#x}){caching} {}",
                    mr.name,
                    vaddr,
                    vaddr.saturating_add(mr.size),
                    at(e.element, e.pos)
                );
                if perms.read {
                    reads.push(line.clone());
                }
                if perms.write {
                    writes.push(line.clone());
                }
                if perms.execute {
                    executes.push(line);
                }
            }
            EdgeKind::Notify { .. } => {
                signals.push(format!("{} {}", name(e.to), at(e.element, e.pos)))
            }
            EdgeKind::Ppc { .. } => calls.push(format!("{} {}", name(e.to), at(e.element, e.pos))),
            EdgeKind::Control { child_id } => {
                let id = child_id.map_or(String::new(), |id| format!(" as child {id}"));
                children.push(format!("{}{id} {}", name(e.to), at(e.element, e.pos)));
            }
            EdgeKind::FaultReport => {
                parent.push(format!("{} {}", name(e.to), at(e.element, e.pos)));
            }
            _ => {}
        }
    }
    for e in graph.edges_to(Node::Pd(pd)) {
        if let (Node::Irq(irq), EdgeKind::Irq { id }) = (e.from, e.kind) {
            let device = match claims.irqs.get(&irq).and_then(|&d| sd.devices.get(d)) {
                Some(dev) => format!("device '{}'", dev.name),
                None => "no device".to_string(),
            };
            irqs.push(format!("irq {irq} on channel {id}, {device} {}", at(e.element, e.pos)));
        }
    }
    let devices: Vec<String> = sd
        .devices
        .iter()
        .filter(|dev| dev.owners.contains(&pd))
        .map(|dev| format!("device '{}' {}", dev.name, at("device", dev.pos)))
        .collect();

    for (label, items) in [
        ("reads", reads),
        ("writes", writes),
        ("executes", executes),
        ("signals", signals),
        ("calls", calls),
        ("irqs", irqs),
        ("devices", devices),
        ("parent", parent),
        ("children", children),
    ] {
        if items.is_empty() {
            let _ = writeln!(out, "  {label:<LABEL$}-");
        }
        for (i, item) in items.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            let _ = writeln!(out, "  {label:<LABEL$}{item}");
        }
    }
}
