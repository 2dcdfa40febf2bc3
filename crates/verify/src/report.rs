//! The readable report: per PD what it can reach, then the invariants,
//! then the policies.
//!
//! A PD's rows `lent` (regions it may be lent during the calls it serves),
//! `lends` (regions it may lend the PDs it calls) and `chains` (the chains
//! it declares: each's stages and vias, its links and the links of other
//! chains to it, then where each PD at the other end of a stage's channels
//! enters it) appear only when it has some; the other rows always, with
//! `-` when empty.

use std::fmt::Write;

use sdf::{Pos, SystemDescription};

use crate::chains::Chains;
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
    let chains = Chains::new(sd);
    for pd in 0..sd.protection_domains.len() {
        out.push('\n');
        protection_domain(&mut out, sd, graph, &claims, &chains, pd);
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
    chains: &Chains,
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
    let (mut lent, mut lends) = (Vec::new(), Vec::new());
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
            EdgeKind::Lend { channel, perms } => {
                let Some(ch) = sd.channels.get(channel) else { continue };
                let [a, b] = &ch.ends;
                // The callee's end (this PD's) and the caller's.
                let Some((me, caller)) =
                    [(a, b), (b, a)].into_iter().find(|(me, other)| me.pd == pd && other.pp)
                else {
                    continue;
                };
                lent.push(format!(
                    "{} ({perms}) by {} during calls on channel {} {}",
                    name(e.to),
                    name(Node::Pd(caller.pd)),
                    me.id,
                    at(e.element, e.pos)
                ));
            }
            _ => {}
        }
    }
    // What this PD lends: the lend edges of the channels it calls on.
    for e in graph.edges() {
        let EdgeKind::Lend { channel, perms } = e.kind else { continue };
        let Some(ch) = sd.channels.get(channel) else { continue };
        let [a, b] = &ch.ends;
        let callee = e.from.pd();
        let Some((me, _)) = [(a, b), (b, a)]
            .into_iter()
            .find(|(me, other)| me.pd == pd && me.pp && Some(other.pd) == callee)
        else {
            continue;
        };
        lends.push(format!(
            "{} ({perms}) to {} on channel {} {}",
            name(e.to),
            name(e.from),
            me.id,
            at(e.element, e.pos)
        ));
    }
    let mut chain_lines = Vec::new();
    for (c, chain) in p.chains.iter().enumerate() {
        let unused = if chains.is_used(pd, c) {
            ""
        } else {
            ", not used: its shape is broken or a via does not lead to its PD by a channel of this PD"
        };
        chain_lines.push(format!("{} {}{unused}", chain.name, at("chain", chain.pos)));
        chain_lines.extend(chain_rows(sd, chain));
        chain_lines.extend(link_rows(sd, pd, c));
        chain_lines.extend(entry_rows(sd, pd, chain));
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

    for (label, items, always) in [
        ("reads", reads, true),
        ("writes", writes, true),
        ("executes", executes, true),
        ("lent", lent, false),
        ("lends", lends, false),
        ("signals", signals, true),
        ("calls", calls, true),
        ("irqs", irqs, true),
        ("devices", devices, true),
        ("parent", parent, true),
        ("children", children, true),
        ("chains", chain_lines, false),
    ] {
        if items.is_empty() && always {
            let _ = writeln!(out, "  {label:<LABEL$}-");
        }
        for (i, item) in items.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            let _ = writeln!(out, "  {label:<LABEL$}{item}");
        }
    }
}

/// The links of chain `c` of `pd`, then the links of its other chains
/// that lead to it, one row each, indented under its name: `  link from
/// stage 2 (below overlay0) to chain base0, stage 1 (link at ...)`, `  linked
/// from chain clone0, stage 2 (below overlay0) (link at ...)`.
fn link_rows(sd: &SystemDescription, pd: usize, c: usize) -> Vec<String> {
    let Some(p) = sd.protection_domains.get(pd) else { return Vec::new() };
    let name = |i: usize| sd.protection_domains.get(i).map_or("?", |p| p.name.as_str());
    let via = |chain: &sdf::Chain, link: &sdf::ChainLink| {
        let pd = chain.vias.get(link.via).map_or("?", |v| name(v.pd));
        format!("stage {} (below {pd})", link.via.saturating_add(2))
    };
    let at = |link: &sdf::ChainLink| format!("(link at {}:{})", sd.file, link.pos);
    let chain = &p.chains[c];
    let mut rows: Vec<String> = chain
        .links
        .iter()
        .map(|l| format!("  link from {} to chain {}, stage 1 {}", via(chain, l), l.chain, at(l)))
        .collect();
    for (_, other) in p.chains.iter().enumerate().filter(|&(k, _)| k != c) {
        for l in other.links.iter().filter(|l| l.chain == chain.name) {
            rows.push(format!("  linked from chain {}, {} {}", other.name, via(other, l), at(l)));
        }
    }
    rows
}

/// Where each PD enters a chain, one row each, indented under its name:
/// `  c0 enters at stage 1, at f1`, `  c1 enters at stage 2, at f2 (below
/// f1)`: the via it meets first, and those above it that it never passes.
fn entry_rows(sd: &SystemDescription, pd: usize, chain: &sdf::Chain) -> Vec<String> {
    let name = |i: usize| sd.protection_domains.get(i).map_or("?", |p| p.name.as_str());
    crate::chains::entrants(sd, pd, chain)
        .into_iter()
        .map(|(stage, who)| {
            let first = chain.vias.get(stage).map_or("?", |v| name(v.pd));
            let above: Vec<&str> = chain.vias[..stage].iter().map(|v| name(v.pd)).collect();
            let below = if above.is_empty() {
                String::new()
            } else {
                format!(" (below {})", above.join(", "))
            };
            format!("  {} enters at stage {}, at {first}{below}", name(who), stage + 1)
        })
        .collect()
}

/// A chain's stages and vias, one row each, indented under its name:
/// `  stage 1: region 'q', channel 0`, `  via audit0 on channel 20, call
/// page 'calls'`, ...
fn chain_rows(sd: &SystemDescription, chain: &sdf::Chain) -> Vec<String> {
    let mut rows = Vec::new();
    for (k, stage) in chain.stages.iter().enumerate() {
        let members: Vec<String> = stage
            .regions
            .iter()
            .map(|r| format!("region '{}'", r.mr))
            .chain(stage.channels.iter().map(|c| format!("channel {}", c.id)))
            .collect();
        let members = if members.is_empty() { "-".to_string() } else { members.join(", ") };
        rows.push(format!("  stage {}: {members}", k + 1));
        if let Some(via) = chain.vias.get(k) {
            let pd = sd.protection_domains.get(via.pd).map_or("?", |p| p.name.as_str());
            let page = via.mr.as_ref().map_or(String::new(), |mr| format!(", call page '{mr}'"));
            rows.push(format!("  via {pd} on channel {}{page}", via.channel));
        }
    }
    rows
}
