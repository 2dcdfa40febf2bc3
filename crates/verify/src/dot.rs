//! The system as a Graphviz DOT graph.
//!
//! - protection domains: boxes (rounded if passive) with their priority;
//! - memory regions: ellipses, device memory (see [`crate::analyse`]) as
//!   notes;
//! - devices: component shapes; interrupts: diamonds;
//! - maps: PD -> region, labelled with the rights (`rw`, `r uncached`);
//! - notifications: dashed, towards the PD notified (both ways: one edge
//!   with two arrowheads);
//! - PPC: solid and bold, towards the callee;
//! - parent -> child: dotted, labelled with the child id;
//! - lends: dotted and green, from the region to the PD it may be lent
//!   to, labelled `lend r` or `lend rw`;
//! - interrupt -> PD: labelled with the channel id; device -> its regions
//!   and interrupts: grey, without arrowheads;
//! - chains: each a blue path from the PD that declares it through its via
//!   PDs in order, the hops labelled `chain <name> 1`, `chain <name> 2`,
//!   ... (the path shows the order; the stages are in the report), and
//!   each PD that enters a chain (a block client, see
//!   `chains::entrants`) with a blue dashed edge `enters <name>` to the
//!   via it meets first: the top filter, or the one it attaches at; each
//!   link of a chain a blue dotted edge `link to <name>` from the via it
//!   follows (the filter that redirects) to the first via of the chain it
//!   leads to, or to the chain's PD if that chain has none (a disk without
//!   filters).
//!
//! Node ids are `pd<i>`, `mr<i>`, `dev<i>` and `irq<n>`; nodes and edges
//! come out in the order of the description, chains last, so the text is
//! deterministic.

use std::fmt::Write;

use sdf::SystemDescription;

use crate::graph::{Claims, EdgeKind, Node, ReachGraph};
use crate::invariants::outside_ram;

/// The system `sd` as a DOT digraph.
pub fn dot(sd: &SystemDescription) -> String {
    let graph = ReachGraph::new(sd);
    let claims = Claims::new(sd);
    let mut out = String::new();
    let _ = writeln!(out, "digraph system {{");
    let _ = writeln!(out, "  label=\"{}\";", escape(&sd.file));
    out.push_str("  rankdir=LR;\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");

    for &node in graph.nodes() {
        let attrs = match node {
            Node::Pd(i) => {
                let Some(pd) = sd.protection_domains.get(i) else { continue };
                let (style, passive) =
                    if pd.passive { (", style=rounded", "\\npassive") } else { ("", "") };
                format!(
                    "shape=box{style}, label=\"{}\\npriority {}{passive}\"",
                    escape(&pd.name),
                    pd.priority
                )
            }
            Node::Region(i) => {
                let Some(mr) = sd.memory_regions.get(i) else { continue };
                let device = claims.regions.contains_key(&i) || outside_ram(mr);
                let shape = if device { "note" } else { "ellipse" };
                let phys = mr.phys_addr.map_or(String::new(), |a| format!(" at {a:#x}"));
                format!(
                    "shape={shape}, label=\"{}\\n{:#x} bytes{phys}\"",
                    escape(&mr.name),
                    mr.size
                )
            }
            Node::Device(i) => {
                let Some(dev) = sd.devices.get(i) else { continue };
                format!("shape=component, label=\"{}\"", escape(&dev.name))
            }
            Node::Irq(irq) => format!("shape=diamond, label=\"irq {irq}\""),
            // Not a node of the reach graph.
            Node::Stage { .. } => continue,
        };
        let _ = writeln!(out, "  {} [{attrs}];", id(node));
    }

    for e in graph.edges() {
        let attrs = match e.kind {
            EdgeKind::Map { perms, cached, .. } => {
                let caching = if cached { "" } else { " uncached" };
                format!("label=\"{perms}{caching}\"")
            }
            EdgeKind::Ppc { .. } => "style=bold, label=\"PPC\"".to_string(),
            EdgeKind::Notify { channel } => {
                let Some(ch) = sd.channels.get(channel) else { continue };
                let [a, b] = &ch.ends;
                if a.notify && b.notify {
                    // One edge for both directions, drawn from the first end.
                    if e.from != Node::Pd(a.pd) {
                        continue;
                    }
                    "style=dashed, dir=both, label=\"notify\"".to_string()
                } else {
                    "style=dashed, label=\"notify\"".to_string()
                }
            }
            EdgeKind::Irq { id } => format!("label=\"channel {id}\""),
            EdgeKind::DeviceRegion | EdgeKind::DeviceIrq => {
                "color=gray50, arrowhead=none".to_string()
            }
            EdgeKind::Control { child_id } => {
                let id = child_id.map_or(String::new(), |id| format!(" {id}"));
                format!("style=dotted, label=\"child{id}\"")
            }
            // Drawn as the parent -> child edge.
            EdgeKind::FaultReport => continue,
            EdgeKind::Lend { perms, .. } => {
                // From the region to the PD it may be lent to.
                let _ = writeln!(
                    out,
                    "  {} -> {} [style=dotted, color=darkgreen, fontcolor=darkgreen, label=\"lend {perms}\"];",
                    id(e.to),
                    id(e.from)
                );
                continue;
            }
        };
        let _ = writeln!(out, "  {} -> {} [{attrs}];", id(e.from), id(e.to));
    }
    for (i, pd) in sd.protection_domains.iter().enumerate() {
        for chain in &pd.chains {
            let mut at = Node::Pd(i);
            for (k, via) in chain.vias.iter().enumerate() {
                if via.pd >= sd.protection_domains.len() {
                    break;
                }
                let label = format!("chain {} {}", escape(&chain.name), k + 1);
                let _ = writeln!(
                    out,
                    "  {} -> {} [color=blue, fontcolor=blue, penwidth=2, label=\"{label}\"];",
                    id(at),
                    id(Node::Pd(via.pd))
                );
                at = Node::Pd(via.pd);
            }
            // Each link: from the via it follows to where the chain it
            // leads to begins (its first via, or the PD itself).
            for link in &chain.links {
                let from = chain.vias.get(link.via).map(|v| v.pd);
                let Some(from) = from.filter(|&v| v < sd.protection_domains.len()) else {
                    continue;
                };
                let Some(target) = pd.chains.iter().find(|c| c.name == link.chain) else {
                    continue;
                };
                let to = target.vias.first().map_or(i, |v| v.pd);
                if to >= sd.protection_domains.len() {
                    continue;
                }
                let label = format!("link to {}", escape(&link.chain));
                let _ = writeln!(
                    out,
                    "  {} -> {} [color=blue, fontcolor=blue, penwidth=2, style=dotted, label=\"{label}\"];",
                    id(Node::Pd(from)),
                    id(Node::Pd(to))
                );
            }
            for (stage, who) in crate::chains::entrants(sd, i, chain) {
                let via = chain.vias.get(stage);
                let Some(via) = via.filter(|v| v.pd < sd.protection_domains.len()) else {
                    continue;
                };
                let label = format!("enters {}", escape(&chain.name));
                let _ = writeln!(
                    out,
                    "  {} -> {} [color=blue, fontcolor=blue, style=dashed, label=\"{label}\"];",
                    id(Node::Pd(who)),
                    id(Node::Pd(via.pd))
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

fn id(node: Node) -> String {
    match node {
        Node::Pd(i) => format!("pd{i}"),
        Node::Region(i) => format!("mr{i}"),
        Node::Device(i) => format!("dev{i}"),
        Node::Irq(n) => format!("irq{n}"),
        Node::Stage { pd, chain, stage } => format!("pd{pd}_chain{chain}_stage{stage}"),
    }
}

/// Text for inside a DOT string: quotes and backslashes escaped, line
/// breaks as `\n`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_backslashes_and_newlines_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd\r"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn names_with_quotes_cannot_break_out_of_a_label() {
        let xml = "<system><protection_domain name='x\"];evil[' ><program_image path='p'/>\
                   </protection_domain></system>";
        let sd = sdf::read("t.xml", xml).unwrap();
        let text = dot(&sd);
        assert!(text.contains("label=\"x\\\"];evil[\\npriority 0\""), "{text}");
    }
}
