//! Information flow: which node can influence which, and the declared
//! policies checked against it.
//!
//! Information flows along one step from A to B when:
//!
//! - A (a PD or a device) can write a region: A -> region; a region flows
//!   to every PD that maps it readable or executable and to the device
//!   that claims it (region -> B). So PD to PD through memory is two steps,
//!   through the region node.
//! - A calls B (PPC): A -> B (the call) and B -> A (the reply).
//! - A may notify B: A -> B.
//! - B may be lent a region during calls (`<lend>`): region -> B ("is lent
//!   to"), and with `rw` also B -> region (it "writes" it). The caller
//!   need not map the region and takes no part in these steps.
//! - A device raises an interrupt: device -> irq; an interrupt bound to a
//!   PD: irq -> PD.
//! - B is A's child: A -> B (restart, stop) and B -> A (fault reports).
//!
//! A PD that declares chains (`<chain>`, a trust declaration: it passes
//! what enters at the first stage on to the last only through the via PDs,
//! in order) is split into its own node and one [`Node::Stage`] per stage
//! of each chain; module `chains` says where each of its rights attaches.
//! In short: maps of regions and channel ends a stage names attach to that
//! stage, everything else to the own node; a via's channel joins the via
//! PD to the stages just above and just below it (both ways), and so does
//! the parent/child link between the PD and a via PD; the PD's own map of
//! a via's call page is dropped (the page is the call itself). A read lend
//! on a via's channel does not go to the via PD directly: the region flows
//! into the stage of that chain that names it, or else the stage just
//! above the via ("is lent by"), and reaches the via only down the chain;
//! a write lend is still via -> region. A chain's link is a step from the
//! stage just below its via to the first stage of the chain it names
//! ("redirects to") and one back from that chain's second stage, below its
//! first via, or its only stage ("answers"); a read lend of a region the
//! via's chain does not name but a chain linked to it does enters there.
//! So no step joins two stages of a chain, or a stage and the own node,
//! except through a via, a link below a via, a region the description
//! itself shares between them, or a channel of the PD to itself.
//!
//! For the policies a PD is all its nodes: a PD named as a source, target
//! or mediator stands for its own node and its stages alike, so a flow
//! through any stage of a mediator passes through the mediator. Witnesses
//! show a stage as `server (chain disk0, stage 1)`.
//!
//! A flow is any chain of steps. A policy's witness is a shortest chain
//! (breadth-first search over the steps in [`ReachGraph`] order, sources
//! in the order the policy lists them, a PD's own node before its
//! stages), so the output is deterministic.

use std::collections::{HashMap, VecDeque};

use sdf::{ChannelEnd, Endpoint, Entity, Perms, Policy, PolicyRule, Pos, SystemDescription};

use crate::chains::Chains;
use crate::graph::{region_index, Edge, EdgeKind, Node, ReachGraph};
use crate::violation::{node_label, quoted_list, Check, Hop, Violation};

/// One flow step, derived from one reach-graph edge or from a chain's
/// link: the element that makes it, and where.
#[derive(Clone, Debug)]
struct Step {
    to: usize,
    action: &'static str,
    element: &'static str,
    pos: Pos,
}

/// The flow steps between the nodes of a reach graph.
pub(crate) struct FlowGraph {
    nodes: Vec<Node>,
    index: HashMap<Node, usize>,
    steps: Vec<Vec<Step>>,
}

impl FlowGraph {
    pub fn new(sd: &SystemDescription, graph: &ReachGraph, chains: &Chains) -> FlowGraph {
        let mut nodes = graph.nodes().to_vec();
        for pd in 0..sd.protection_domains.len() {
            nodes.extend(chains.stages(pd));
        }
        let index: HashMap<Node, usize> = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut steps = vec![Vec::new(); nodes.len()];
        for edge in graph.edges() {
            if !index.contains_key(&edge.from) || !index.contains_key(&edge.to) {
                continue;
            }
            let mut step = |a: Node, b: Node, action: &'static str| {
                if let (Some(&a), Some(&b)) = (index.get(&a), index.get(&b)) {
                    let (element, pos) = (edge.element, edge.pos);
                    steps[a].push(Step { to: b, action, element, pos });
                }
            };
            let (from, to) = (edge.from, edge.to);
            match (edge.kind, from, to) {
                (EdgeKind::Map { perms, .. }, Node::Pd(pd), Node::Region(region)) => {
                    for at in chains.map_nodes(pd, region) {
                        if perms.write {
                            step(at, to, "writes");
                        }
                        if perms.read || perms.execute {
                            step(to, at, "is read by");
                        }
                    }
                }
                (EdgeKind::Ppc { channel }, Node::Pd(a), Node::Pd(b)) => {
                    for (x, y) in channel_pairs(sd, chains, channel, a, b, |e| e.pp) {
                        step(x, y, "calls");
                        step(y, x, "replies to");
                    }
                }
                (EdgeKind::Notify { channel }, Node::Pd(a), Node::Pd(b)) => {
                    for (x, y) in channel_pairs(sd, chains, channel, a, b, |e| e.notify) {
                        step(x, y, "notifies");
                    }
                }
                (EdgeKind::Lend { channel, perms }, Node::Pd(callee), Node::Region(region)) => {
                    let Some(ch) = sd.channels.get(channel) else { continue };
                    let [a, b] = &ch.ends;
                    // Each calling end that lends to this callee (two only
                    // if the PD calls itself both ways).
                    for (caller, end) in [(a, b), (b, a)] {
                        if !caller.pp || end.pd != callee {
                            continue;
                        }
                        let entry = chains.lend_entry(caller.pd, caller.id, callee, region);
                        let at = chains.lend_nodes(end, caller, region);
                        if perms.write {
                            for &x in &at {
                                step(x, to, "writes");
                            }
                        }
                        if perms.read || perms.execute {
                            if entry.is_empty() {
                                for &x in &at {
                                    step(to, x, "is lent to");
                                }
                            } else {
                                // Into the chain where the region enters it:
                                // the via PD sees it only down the chain.
                                for x in entry {
                                    step(to, x, "is lent by");
                                }
                            }
                        }
                    }
                }
                (EdgeKind::Irq { .. }, _, _) => step(from, to, "is delivered to"),
                (EdgeKind::DeviceRegion, _, _) => {
                    step(from, to, "writes");
                    step(to, from, "is read by");
                }
                (EdgeKind::DeviceIrq, _, _) => step(from, to, "raises"),
                (EdgeKind::Control { .. }, Node::Pd(a), Node::Pd(b)) => {
                    for (x, y) in pairs(&chains.link_nodes(a, b), &chains.link_nodes(b, a)) {
                        step(x, y, "controls");
                    }
                }
                (EdgeKind::FaultReport, Node::Pd(a), Node::Pd(b)) => {
                    for (x, y) in pairs(&chains.link_nodes(a, b), &chains.link_nodes(b, a)) {
                        step(x, y, "reports faults to");
                    }
                }
                // The graph makes no other edges.
                _ => {}
            }
        }
        // A chain's link: what passed its via goes on to the first stage
        // of the chain it leads to (a redirected request), and the answer
        // comes back from below that chain's first via.
        for pd in 0..sd.protection_domains.len() {
            for (below, top, answers, link) in chains.links(pd) {
                let (element, pos) = ("link", link.pos);
                if let (Some(&a), Some(&b)) = (index.get(&below), index.get(&top)) {
                    steps[a].push(Step { to: b, action: "redirects to", element, pos });
                }
                if let (Some(&a), Some(&b)) = (index.get(&below), index.get(&answers)) {
                    steps[b].push(Step { to: a, action: "answers", element, pos });
                }
            }
        }
        FlowGraph { nodes, index, steps }
    }

    /// A shortest flow (at least one step) from any of `sources` to any of
    /// `targets` that never enters a `blocked` node, as hops; `None` if
    /// there is none.
    pub fn shortest(
        &self,
        sources: &[Node],
        targets: &[Node],
        blocked: &[Node],
    ) -> Option<Vec<Hop>> {
        let n = self.nodes.len();
        let mark = |nodes: &[Node]| {
            let mut set = vec![false; n];
            for node in nodes {
                if let Some(&i) = self.index.get(node) {
                    set[i] = true;
                }
            }
            set
        };
        let (is_target, is_blocked) = (mark(targets), mark(blocked));
        // How each node was first reached: (previous node, step index).
        let mut came_from: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut seen = vec![false; n];
        let mut queue = VecDeque::new();
        for source in sources {
            if let Some(&i) = self.index.get(source) {
                if !seen[i] && !is_blocked[i] {
                    seen[i] = true;
                    queue.push_back(i);
                }
            }
        }
        while let Some(at) = queue.pop_front() {
            for (k, step) in self.steps[at].iter().enumerate() {
                let next = step.to;
                if is_blocked[next] || (seen[next] && !is_target[next]) {
                    continue;
                }
                if is_target[next] {
                    return Some(self.path_to(at, k, &came_from));
                }
                seen[next] = true;
                came_from[next] = Some((at, k));
                queue.push_back(next);
            }
        }
        None
    }

    /// The hops from a source to the node reached from `at` by its step
    /// `k`.
    fn path_to(&self, at: usize, k: usize, came_from: &[Option<(usize, usize)>]) -> Vec<Hop> {
        let mut hops = vec![self.hop(at, k)];
        let mut node = at;
        // Sources have no predecessor and every other node one, set when
        // it was first reached: the walk ends within n steps.
        for _ in 0..self.nodes.len() {
            let Some((prev, k)) = came_from[node] else { break };
            hops.push(self.hop(prev, k));
            node = prev;
        }
        hops.reverse();
        hops
    }

    fn hop(&self, at: usize, k: usize) -> Hop {
        let step = &self.steps[at][k];
        Hop {
            from: self.nodes[at],
            to: self.nodes[step.to],
            action: step.action.to_string(),
            element: step.element,
            pos: step.pos,
        }
    }
}

/// Every pair of one node of `a` and one of `b`, in order.
fn pairs(a: &[Node], b: &[Node]) -> Vec<(Node, Node)> {
    a.iter().flat_map(|&x| b.iter().map(move |&y| (x, y))).collect()
}

/// For an edge of the channel at `channel` from PD `from` to PD `to`: the
/// node pairs its end in `from` (one that `flag` picks) and the other end
/// attach to.
fn channel_pairs(
    sd: &SystemDescription,
    chains: &Chains,
    channel: usize,
    from: usize,
    to: usize,
    flag: impl Fn(&ChannelEnd) -> bool,
) -> Vec<(Node, Node)> {
    let Some(ch) = sd.channels.get(channel) else { return Vec::new() };
    let [a, b] = &ch.ends;
    let mut out = Vec::new();
    for (end, other) in [(a, b), (b, a)] {
        if flag(end) && end.pd == from && other.pd == to {
            out.extend(pairs(&chains.end_nodes(end, other), &chains.end_nodes(other, end)));
        }
    }
    out
}

/// Check every declared policy; one violation per broken policy.
pub(crate) fn check_policies(sd: &SystemDescription, graph: &ReachGraph) -> Vec<Violation> {
    let chains = Chains::new(sd);
    let flows = FlowGraph::new(sd, graph, &chains);
    let regions = region_index(sd);
    // A PD is all its nodes: its own and its stages.
    let pd_nodes = |pd: usize| {
        if pd < sd.protection_domains.len() {
            chains.nodes(pd)
        } else {
            Vec::new()
        }
    };
    let entity_node = |e: &Endpoint| match &e.entity {
        Entity::Pd(i) => pd_nodes(*i),
        Entity::Region(name) => {
            regions.get(name.as_str()).map(|&i| Node::Region(i)).into_iter().collect()
        }
        Entity::Device(name) => sd.device(name).map(|(i, _)| Node::Device(i)).into_iter().collect(),
    };
    let mut violations = Vec::new();
    for (index, policy) in sd.policies.iter().enumerate() {
        match &policy.rule {
            PolicyRule::NoFlow { from, to } => {
                let sources: Vec<Node> = from.iter().flat_map(entity_node).collect();
                let targets: Vec<Node> = to.iter().flat_map(entity_node).collect();
                violations.extend(flow_violation(sd, &flows, index, &sources, &targets, &[]));
            }
            PolicyRule::Mediated { from, to, via } => {
                let sources: Vec<Node> = from.iter().flat_map(entity_node).collect();
                let targets: Vec<Node> = to.iter().flat_map(entity_node).collect();
                let via: Vec<Node> = via.iter().flat_map(|&pd| pd_nodes(pd)).collect();
                violations.extend(flow_violation(sd, &flows, index, &sources, &targets, &via));
            }
            PolicyRule::Isolated { pd, allow } => {
                let allowed: Vec<usize> = allow.iter().map(|a| a.pd).collect();
                violations.extend(isolation_violations(sd, graph, index, *pd, &allowed));
            }
        }
    }
    violations
}

/// `policy 'p' (no-flow)`, `policy 'p' (mediated via 'm')`,
/// `policy 'p' (isolated)`.
pub(crate) fn policy_title(sd: &SystemDescription, policy: &Policy) -> String {
    match &policy.rule {
        PolicyRule::Mediated { via, .. } => {
            let names = via.iter().filter_map(|&pd| sd.protection_domains.get(pd));
            let via = quoted_list(names.map(|pd| pd.name.as_str()));
            format!("policy '{}' (mediated via {via})", policy.name)
        }
        rule => format!("policy '{}' ({})", policy.name, rule.kind()),
    }
}

/// A no-flow or mediated policy: violated if a source reaches a target
/// without entering a mediator. Mediators drop out of the sources and
/// targets (a flow that starts or ends at one passes through it); a node
/// that is both a source and a target violates the policy by itself.
fn flow_violation(
    sd: &SystemDescription,
    flows: &FlowGraph,
    index: usize,
    sources: &[Node],
    targets: &[Node],
    via: &[Node],
) -> Option<Violation> {
    let policy = sd.policies.get(index)?;
    let title = policy_title(sd, policy);
    let label = |node| node_label(sd, node);
    let sources: Vec<Node> = sources.iter().copied().filter(|n| !via.contains(n)).collect();
    if let Some(both) = sources.iter().find(|n| targets.contains(n)) {
        let message = format!("{title} violated: {} is both a source and a target", label(*both));
        return Some(Violation::new(sd, Check::Policy(index), message, Vec::new(), &label));
    }
    let witness = flows.shortest(&sources, targets, via)?;
    let message = format!("{title} violated");
    Some(Violation::new(sd, Check::Policy(index), message, witness, &label))
}

/// An isolated policy: every channel, parent or child link, and region
/// shared with a writable side (mapped, or lent during calls), between
/// `pd` and a PD not in `allowed`.
fn isolation_violations(
    sd: &SystemDescription,
    graph: &ReachGraph,
    index: usize,
    pd: usize,
    allowed: &[usize],
) -> Vec<Violation> {
    let Some(policy) = sd.policies.get(index) else { return Vec::new() };
    let title = policy_title(sd, policy);
    let label = |node| node_label(sd, node);
    let me = Node::Pd(pd);
    let outsider = |node: Node| match node {
        Node::Pd(other) => other != pd && !allowed.contains(&other),
        _ => false,
    };
    let hop = |e: &Edge, from: Node, to: Node, action: &str| Hop {
        from,
        to,
        action: action.to_string(),
        element: e.element,
        pos: e.pos,
    };
    let mut found: Vec<(String, Vec<Hop>)> = Vec::new();

    // Shared memory: a map or lend of mine and a map or lend of an
    // outsider's of one region, either of them writable.
    let access = |e: &Edge| match e.kind {
        EdgeKind::Map { perms, .. } => Some((perms, "is read by")),
        EdgeKind::Lend { perms, .. } => Some((perms, "is lent to")),
        _ => None,
    };
    for mine in graph.edges_from(me) {
        let Some((my_perms, my_read)) = access(mine) else { continue };
        for theirs in graph.edges_to(mine.to).filter(|e| outsider(e.from)) {
            let Some((their_perms, their_read)) = access(theirs) else { continue };
            let (region, other) = (mine.to, theirs.from);
            let reads = |perms: Perms| perms.read || perms.execute;
            let witness = if my_perms.write && reads(their_perms) {
                vec![hop(mine, me, region, "writes"), hop(theirs, region, other, their_read)]
            } else if their_perms.write && reads(my_perms) {
                vec![hop(theirs, other, region, "writes"), hop(mine, region, me, my_read)]
            } else if my_perms.write || their_perms.write {
                // Only in a hand-built model: a map that cannot be read.
                let maps = |perms: Perms| format!("maps {perms}");
                vec![
                    hop(mine, me, region, &maps(my_perms)),
                    hop(theirs, other, region, &maps(their_perms)),
                ]
            } else {
                continue;
            };
            let what = format!("shares writable memory with '{}'", label(theirs.from));
            found.push((what, witness));
        }
    }
    // Channels, in channel order.
    for ch in &sd.channels {
        let [a, b] = &ch.ends;
        let (mine, theirs) = if a.pd == pd {
            (a, b)
        } else if b.pd == pd {
            (b, a)
        } else {
            continue;
        };
        if !outsider(Node::Pd(theirs.pd)) {
            continue;
        }
        let action = if mine.pp {
            "calls"
        } else if theirs.pp {
            "is called by"
        } else if mine.notify {
            "notifies"
        } else if theirs.notify {
            "is notified by"
        } else {
            "has a channel to"
        };
        let other = Node::Pd(theirs.pd);
        let witness = vec![Hop {
            from: me,
            to: other,
            action: action.to_string(),
            element: "channel",
            pos: ch.pos,
        }];
        found.push((format!("shares a channel with '{}'", label(other)), witness));
    }
    // Parent and children.
    for e in graph.edges_from(me).filter(|e| outsider(e.to)) {
        let (relation, action) = match e.kind {
            EdgeKind::Control { .. } => ("is the parent of", "controls"),
            EdgeKind::FaultReport => ("is a child of", "reports faults to"),
            _ => continue,
        };
        let what = format!("{relation} '{}'", label(e.to));
        found.push((what, vec![hop(e, me, e.to, action)]));
    }

    found
        .into_iter()
        .map(|(what, witness)| {
            let message = format!("{title} violated: '{}' {what}", label(me));
            Violation::new(sd, Check::Policy(index), message, witness, &label)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(xml: &str) -> (SystemDescription, FlowGraph) {
        let sd = sdf::read("t.xml", xml).unwrap();
        let flows = FlowGraph::new(&sd, &ReachGraph::new(&sd), &Chains::new(&sd));
        (sd, flows)
    }

    fn pds(names: &str) -> String {
        names
            .split(' ')
            .enumerate()
            .map(|(i, n)| {
                format!(
                    r#"<protection_domain name="{n}" priority="{}"><program_image path="x"/>"#,
                    10 * (i + 1)
                ) + "</protection_domain>\n"
            })
            .collect()
    }

    fn actions(hops: &[Hop]) -> Vec<(Node, &str, Node)> {
        hops.iter().map(|h| (h.from, h.action.as_str(), h.to)).collect()
    }

    #[test]
    fn notification_flows_only_from_the_notifying_end() {
        let xml = format!(
            "<system>{}<channel><end pd=\"a\" id=\"0\"/><end pd=\"b\" id=\"0\" notify=\"false\"/></channel></system>",
            pds("a b")
        );
        let (_, f) = flows(&xml);
        let (a, b) = (Node::Pd(0), Node::Pd(1));
        assert_eq!(actions(&f.shortest(&[a], &[b], &[]).unwrap()), [(a, "notifies", b)]);
        assert!(f.shortest(&[b], &[a], &[]).is_none());
    }

    #[test]
    fn ppc_flows_both_ways() {
        let xml = format!(
            "<system>{}<channel><end pd=\"a\" id=\"0\" pp=\"true\" notify=\"false\"/><end pd=\"b\" id=\"0\" notify=\"false\"/></channel></system>",
            pds("a b")
        );
        let (_, f) = flows(&xml);
        let (a, b) = (Node::Pd(0), Node::Pd(1));
        assert_eq!(actions(&f.shortest(&[a], &[b], &[]).unwrap()), [(a, "calls", b)]);
        assert_eq!(actions(&f.shortest(&[b], &[a], &[]).unwrap()), [(b, "replies to", a)]);
    }

    #[test]
    fn memory_flows_from_a_writer_to_a_reader_through_the_region() {
        let xml = r#"<system><memory_region name="m" size="0x1000"/>
            <protection_domain name="w"><program_image path="x"/><map mr="m" vaddr="0x1000000"/></protection_domain>
            <protection_domain name="r"><program_image path="x"/><map mr="m" vaddr="0x1000000" perms="r"/></protection_domain>
            </system>"#;
        let (_, f) = flows(xml);
        let (w, m, r) = (Node::Pd(0), Node::Region(0), Node::Pd(1));
        assert_eq!(
            actions(&f.shortest(&[w], &[r], &[]).unwrap()),
            [(w, "writes", m), (m, "is read by", r)]
        );
        assert!(f.shortest(&[r], &[w], &[]).is_none(), "a read-only map does not write");
    }

    #[test]
    fn faults_flow_up_and_control_flows_down() {
        let xml = r#"<system><protection_domain name="p"><program_image path="x"/>
            <protection_domain name="c" id="0"><program_image path="x"/></protection_domain>
            </protection_domain></system>"#;
        let (_, f) = flows(xml);
        let (p, c) = (Node::Pd(0), Node::Pd(1));
        assert_eq!(actions(&f.shortest(&[c], &[p], &[]).unwrap()), [(c, "reports faults to", p)]);
        assert_eq!(actions(&f.shortest(&[p], &[c], &[]).unwrap()), [(p, "controls", c)]);
    }

    #[test]
    fn devices_flow_through_their_regions_and_interrupts() {
        let xml = r#"<system><memory_region name="dma" size="0x1000"/>
            <protection_domain name="app"><program_image path="x"/><map mr="dma" vaddr="0x1000000"/></protection_domain>
            <protection_domain name="drv"><program_image path="x"/><irq irq="40" id="0"/></protection_domain>
            <device name="nic" owner="drv"><region mr="dma"/><interrupt irq="40"/></device>
            </system>"#;
        let (_, f) = flows(xml);
        let (app, drv, dma, nic, irq) =
            (Node::Pd(0), Node::Pd(1), Node::Region(0), Node::Device(0), Node::Irq(40));
        assert_eq!(
            actions(&f.shortest(&[app], &[drv], &[]).unwrap()),
            [
                (app, "writes", dma),
                (dma, "is read by", nic),
                (nic, "raises", irq),
                (irq, "is delivered to", drv)
            ]
        );
    }

    #[test]
    fn the_shortest_flow_is_found_and_blocked_nodes_are_avoided() {
        // a -> b -> d and a -> c -> e -> d: the short way through b, or the
        // long way when b is blocked.
        let ch = |x: &str, y: &str, id: u8| {
            format!(
                r#"<channel><end pd="{x}" id="{id}"/><end pd="{y}" id="{id}" notify="false"/></channel>"#
            )
        };
        let xml = format!(
            "<system>{}{}{}{}{}{}</system>",
            pds("a b c d e"),
            ch("a", "c", 0),
            ch("c", "e", 1),
            ch("e", "d", 2),
            ch("a", "b", 3),
            ch("b", "d", 4)
        );
        let (_, f) = flows(&xml);
        let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(Node::Pd);
        let short = f.shortest(&[a], &[d], &[]).unwrap();
        assert_eq!(actions(&short), [(a, "notifies", b), (b, "notifies", d)]);
        let long = f.shortest(&[a], &[d], &[b]).unwrap();
        assert_eq!(actions(&long), [(a, "notifies", c), (c, "notifies", e), (e, "notifies", d)]);
        assert!(f.shortest(&[a], &[d], &[b, e]).is_none());
    }

    #[test]
    fn a_flow_back_to_a_source_that_is_also_a_target_has_at_least_one_step() {
        let xml = format!(
            "<system>{}<channel><end pd=\"a\" id=\"0\"/><end pd=\"b\" id=\"0\"/></channel></system>",
            pds("a b")
        );
        let (_, f) = flows(&xml);
        let a = Node::Pd(0);
        let hops = f.shortest(&[a], &[a], &[]).unwrap();
        assert_eq!(hops.len(), 2, "{hops:?}");
    }

    /// A server `s` with a chain [f] (f its child), a client `c` in the
    /// first stage and a driver `d` in the last.
    const CHAIN: &str = r#"<system>
        <memory_region name="q" size="0x1000"/>
        <memory_region name="data" size="0x1000"/>
        <memory_region name="calls" size="0x1000"/>
        <protection_domain name="c" priority="1"><program_image path="x"/>
            <map mr="q" vaddr="0x1000000"/><map mr="data" vaddr="0x2000000"/></protection_domain>
        <protection_domain name="s" priority="2"><program_image path="x"/>
            <map mr="q" vaddr="0x1000000"/><map mr="calls" vaddr="0x2000000"/>
            <chain name="k">
                <stage><region mr="q"/><region mr="data"/><channel id="0"/></stage>
                <via pd="f" channel="1" mr="calls"/>
                <stage><channel id="2"/></stage>
            </chain>
            <protection_domain name="f" id="0" priority="3" passive="true"><program_image path="x"/>
                <map mr="calls" vaddr="0x1000000"/></protection_domain>
        </protection_domain>
        <protection_domain name="d" priority="4"><program_image path="x"/></protection_domain>
        <channel><end pd="c" id="0"/><end pd="s" id="0"/></channel>
        <channel><end pd="s" id="1" pp="true"/><end pd="f" id="0"/><lend mr="data" perms="r"/></channel>
        <channel><end pd="s" id="2"/><end pd="d" id="0"/></channel>
    </system>"#;

    /// The steps that leave `from`: (action, to).
    fn steps_from(f: &FlowGraph, from: Node) -> Vec<(&'static str, Node)> {
        f.steps[f.index[&from]].iter().map(|s| (s.action, f.nodes[s.to])).collect()
    }

    #[test]
    fn a_via_joins_the_stages_around_it_both_ways_and_its_fault_reports_go_there_too() {
        let (_, f) = flows(CHAIN);
        let (s, filter) = (Node::Pd(1), Node::Pd(2));
        let stage = |stage| Node::Stage { pd: 1, chain: 0, stage };
        assert_eq!(
            steps_from(&f, filter),
            [
                ("writes", Node::Region(2)),
                ("replies to", stage(0)),
                ("replies to", stage(1)),
                ("notifies", stage(0)),
                ("notifies", stage(1)),
                ("reports faults to", stage(0)),
                ("reports faults to", stage(1)),
            ]
        );
        // The server's own node: nothing of the chain reaches it.
        assert!(f.steps.iter().flatten().all(|step| f.nodes[step.to] != s), "no step into it");
        assert_eq!(steps_from(&f, s), []);
        // Its map of the call page is gone; f's stays.
        assert_eq!(steps_from(&f, Node::Region(2)), [("is read by", filter)]);
    }

    #[test]
    fn a_read_lend_on_a_via_enters_the_chain_at_the_stage_that_names_the_region() {
        let (_, f) = flows(CHAIN);
        let stage = |stage| Node::Stage { pd: 1, chain: 0, stage };
        let data = Node::Region(1);
        assert_eq!(steps_from(&f, data), [("is read by", Node::Pd(0)), ("is lent by", stage(0))]);
        let hops = f.shortest(&[data], &[Node::Pd(2)], &[]).unwrap();
        assert_eq!(
            actions(&hops),
            [(data, "is lent by", stage(0)), (stage(0), "calls", Node::Pd(2))]
        );
    }
}
