//! Invariants: properties every system must have, whatever its policies.
//! Each is one function, named after its [`Check`]; all of them run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;

use abi::layout;
use bootspec::platform::{RAM_BASE, RAM_SIZE};
use sdf::{MemoryRegion, Perms, SystemDescription};

use crate::graph::{Claims, Edge, EdgeKind, Node, ReachGraph};
use crate::violation::{node_label, quoted_list, Check, Hop, Violation};
use crate::ProgramExtent;

/// What every invariant check gets.
pub(crate) struct Context<'a> {
    pub sd: &'a SystemDescription,
    pub graph: &'a ReachGraph,
    pub claims: Claims,
    pub programs: Option<&'a [Vec<ProgramExtent>]>,
}

impl Context<'_> {
    fn violation(&self, check: Check, message: String, witness: Vec<Hop>) -> Violation {
        let label = |node| node_label(self.sd, node);
        Violation::new(self.sd, check, message, witness, &label)
    }

    /// `'a', 'b'`: the owners of device `dev`.
    fn owners(&self, dev: usize) -> String {
        let owners = self.sd.devices.get(dev).map(|d| d.owners.as_slice()).unwrap_or_default();
        let names = owners.iter().filter_map(|&pd| self.sd.protection_domains.get(pd));
        quoted_list(names.map(|pd| pd.name.as_str()))
    }

    fn pd_name(&self, pd: usize) -> &str {
        self.sd.protection_domains.get(pd).map_or("?", |pd| pd.name.as_str())
    }

    fn region(&self, region: usize) -> Option<&MemoryRegion> {
        self.sd.memory_regions.get(region)
    }

    fn device_name(&self, dev: usize) -> &str {
        self.sd.devices.get(dev).map_or("?", |d| d.name.as_str())
    }
}

/// Run the invariant `check` (not a policy).
pub(crate) fn run(check: Check, cx: &Context) -> Vec<Violation> {
    match check {
        Check::DeviceMemoryOwner => device_memory_owner(cx),
        Check::IrqOwner => irq_owner(cx),
        Check::UnownedHardware => unowned_hardware(cx),
        Check::WritableExecutable => writable_executable(cx),
        Check::MapOverFixedArea => map_over_fixed_area(cx),
        Check::PpcPriority => ppc_priority(cx),
        Check::PpcCycle => ppc_cycle(cx),
        Check::Policy(_) => Vec::new(),
    }
}

/// `rw`, `r uncached`: the rights of a map as a witness action.
fn map_action(perms: Perms, cached: bool) -> String {
    let caching = if cached { "" } else { " uncached" };
    format!("maps {perms}{caching}")
}

/// The map edges of the graph: (edge, PD, region, perms, cached, vaddr).
fn maps(graph: &ReachGraph) -> impl Iterator<Item = (&Edge, usize, usize, Perms, bool, u64)> {
    graph.edges().iter().filter_map(|e| match (e.from, e.to, e.kind) {
        (Node::Pd(pd), Node::Region(region), EdgeKind::Map { perms, cached, vaddr }) => {
            Some((e, pd, region, perms, cached, vaddr))
        }
        _ => None,
    })
}

/// The lend edges of the graph: (edge, callee PD, region, perms).
fn lends(graph: &ReachGraph) -> impl Iterator<Item = (&Edge, usize, usize, Perms)> {
    graph.edges().iter().filter_map(|e| match (e.from, e.to, e.kind) {
        (Node::Pd(pd), Node::Region(region), EdgeKind::Lend { perms, .. }) => {
            Some((e, pd, region, perms))
        }
        _ => None,
    })
}

/// `may be lent r`: the right of a lend as a witness action, from the
/// callee to the region.
fn lend_hop(e: &Edge, perms: Perms) -> Hop {
    edge_hop(e, &format!("may be lent {perms}"))
}

/// The PD that lends on the lend edge `e`: the calling end of its channel.
fn lender(cx: &Context, e: &Edge) -> String {
    let EdgeKind::Lend { channel, .. } = e.kind else { return "?".into() };
    let Some(ch) = cx.sd.channels.get(channel) else { return "?".into() };
    let [a, b] = &ch.ends;
    let callee = e.from.pd();
    let caller = [(a, b), (b, a)]
        .into_iter()
        .find(|(me, other)| me.pp && Some(other.pd) == callee)
        .map_or(a.pd, |(me, _)| me.pd);
    cx.pd_name(caller).to_string()
}

fn map_hop(e: &Edge, perms: Perms, cached: bool) -> Hop {
    Hop {
        from: e.from,
        to: e.to,
        action: map_action(perms, cached),
        element: e.element,
        pos: e.pos,
    }
}

fn edge_hop(e: &Edge, action: &str) -> Hop {
    Hop { from: e.from, to: e.to, action: action.to_string(), element: e.element, pos: e.pos }
}

/// Whether a region lies (partly) outside RAM: it has a fixed physical
/// address and is not wholly inside RAM.
pub(crate) fn outside_ram(mr: &MemoryRegion) -> bool {
    let Some(start) = mr.phys_addr else { return false };
    let inside = start >= RAM_BASE
        && start.checked_add(mr.size).is_some_and(|end| end <= RAM_BASE + RAM_SIZE);
    !inside
}

fn hex_range(r: &Range<u64>) -> String {
    format!("[{:#x}..{:#x})", r.start, r.end)
}

/// `[start, start + size)`, ending at the top of the address space if it
/// would wrap.
fn span(start: u64, size: u64) -> Range<u64> {
    start..start.saturating_add(size)
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Memory of a device (claimed by a `<device>`) mapped by, or lent to, a
/// PD that does not own the device.
fn device_memory_owner(cx: &Context) -> Vec<Violation> {
    let mut out = Vec::new();
    for (e, pd, region, perms, cached, _) in maps(cx.graph) {
        let Some(&dev) = cx.claims.regions.get(&region) else { continue };
        let owns = cx.sd.devices.get(dev).is_some_and(|d| d.owners.contains(&pd));
        if !owns {
            let message = format!(
                "device-memory-owner: '{}' maps memory region '{}' of device '{}', which only {} \
                 may use",
                cx.pd_name(pd),
                cx.region(region).map_or("?", |mr| mr.name.as_str()),
                cx.device_name(dev),
                cx.owners(dev)
            );
            out.push(cx.violation(
                Check::DeviceMemoryOwner,
                message,
                vec![map_hop(e, perms, cached)],
            ));
        }
    }
    // A lend reaches the memory as surely as a map does.
    for (e, pd, region, perms) in lends(cx.graph) {
        let Some(&dev) = cx.claims.regions.get(&region) else { continue };
        let owns = cx.sd.devices.get(dev).is_some_and(|d| d.owners.contains(&pd));
        if !owns {
            let message = format!(
                "device-memory-owner: '{}' may be lent memory region '{}' of device '{}' by '{}', \
                 but only {} may use it",
                cx.pd_name(pd),
                cx.region(region).map_or("?", |mr| mr.name.as_str()),
                cx.device_name(dev),
                lender(cx, e),
                cx.owners(dev)
            );
            out.push(cx.violation(Check::DeviceMemoryOwner, message, vec![lend_hop(e, perms)]));
        }
    }
    out
}

/// An interrupt of a device bound to a PD that does not own the device.
fn irq_owner(cx: &Context) -> Vec<Violation> {
    let mut out = Vec::new();
    for e in cx.graph.edges() {
        let (Node::Irq(irq), Node::Pd(pd), EdgeKind::Irq { .. }) = (e.from, e.to, e.kind) else {
            continue;
        };
        let Some(&dev) = cx.claims.irqs.get(&irq) else { continue };
        let owns = cx.sd.devices.get(dev).is_some_and(|d| d.owners.contains(&pd));
        if !owns {
            let message = format!(
                "irq-owner: irq {irq} of device '{}' is delivered to '{}', but only {} may \
                 receive it",
                cx.device_name(dev),
                cx.pd_name(pd),
                cx.owners(dev)
            );
            out.push(cx.violation(Check::IrqOwner, message, vec![edge_hop(e, "is delivered to")]));
        }
    }
    out
}

/// Hardware that no device claims, used by more than one PD: device memory
/// (a region outside RAM) that two or more PDs map or may be lent, and an
/// interrupt bound to two or more PDs. Hardware that one PD alone uses is
/// that PD's, as in a plain Microkit system, and hardware nobody uses
/// reaches nobody: a `<device>` is needed only to name owners or to share.
fn unowned_hardware(cx: &Context) -> Vec<Violation> {
    let mut out = Vec::new();
    for (region, mr) in cx.sd.memory_regions.iter().enumerate() {
        if !outside_ram(mr) || cx.claims.regions.contains_key(&region) {
            continue;
        }
        let mut witness = Vec::new();
        let mut users = BTreeSet::new();
        for (e, pd, _, perms, cached, _) in maps(cx.graph).filter(|m| m.2 == region) {
            witness.push(map_hop(e, perms, cached));
            users.insert(pd);
        }
        for (e, pd, _, perms) in lends(cx.graph).filter(|l| l.2 == region) {
            witness.push(lend_hop(e, perms));
            users.insert(pd);
        }
        if users.len() < 2 {
            continue;
        }
        let start = mr.phys_addr.unwrap_or_default();
        let message = format!(
            "unowned-hardware: memory region '{}' at physical {} lies outside RAM and more than \
             one PD uses it ({}) with no device claiming it: declare a <device> that claims it \
             and names its owners (memory_region at {}:{})",
            mr.name,
            hex_range(&span(start, mr.size)),
            quoted_list(users.iter().map(|&pd| cx.pd_name(pd))),
            cx.sd.file,
            mr.pos
        );
        out.push(cx.violation(Check::UnownedHardware, message, witness));
    }
    // Each unclaimed interrupt with its bindings, by number.
    let mut bound: BTreeMap<u32, Vec<&Edge>> = BTreeMap::new();
    for e in cx.graph.edges() {
        if let (Node::Irq(irq), Node::Pd(_), EdgeKind::Irq { .. }) = (e.from, e.to, e.kind) {
            if !cx.claims.irqs.contains_key(&irq) {
                bound.entry(irq).or_default().push(e);
            }
        }
    }
    for (irq, edges) in bound {
        let users: BTreeSet<usize> = edges.iter().filter_map(|e| e.to.pd()).collect();
        if users.len() < 2 {
            continue;
        }
        let message = format!(
            "unowned-hardware: irq {irq} is delivered to more than one PD ({}) with no device \
             claiming it: declare a <device> that claims it and names its owners",
            quoted_list(users.iter().map(|&pd| cx.pd_name(pd)))
        );
        let witness = edges.iter().map(|e| edge_hop(e, "is delivered to")).collect();
        out.push(cx.violation(Check::UnownedHardware, message, witness));
    }
    out
}

fn writable_executable(cx: &Context) -> Vec<Violation> {
    let mut out = Vec::new();
    for (e, pd, region, perms, cached, vaddr) in maps(cx.graph) {
        if !(perms.write && perms.execute) {
            continue;
        }
        let Some(mr) = cx.region(region) else { continue };
        let message = format!(
            "writable-executable: '{}' maps memory region '{}' at {} both writable and \
             executable",
            cx.pd_name(pd),
            mr.name,
            hex_range(&span(vaddr, mr.size))
        );
        out.push(cx.violation(Check::WritableExecutable, message, vec![map_hop(e, perms, cached)]));
    }
    out
}

/// The parts of a PD's address space the kernel and the loader fill: the
/// stack, its guard page, the IPC buffer, and the program's segments if
/// known.
fn fixed_areas(cx: &Context, pd: usize) -> Vec<(String, Range<u64>)> {
    let Some(p) = cx.sd.protection_domains.get(pd) else { return Vec::new() };
    let stack_bottom = layout::STACK_TOP.saturating_sub(p.stack_size);
    let mut areas = vec![
        ("stack".to_string(), stack_bottom..layout::STACK_TOP),
        ("stack guard page".to_string(), layout::STACK_TOP..layout::IPC_BUFFER),
        ("IPC buffer page".to_string(), span(layout::IPC_BUFFER, layout::PAGE_SIZE)),
    ];
    let extents = cx.programs.and_then(|programs| programs.get(pd));
    for extent in extents.into_iter().flatten() {
        areas.push(("program image".to_string(), span(extent.vaddr, extent.size)));
    }
    areas
}

fn map_over_fixed_area(cx: &Context) -> Vec<Violation> {
    let mut out = Vec::new();
    for (e, pd, region, perms, cached, vaddr) in maps(cx.graph) {
        let Some(mr) = cx.region(region) else { continue };
        let range = span(vaddr, mr.size);
        for (what, area) in fixed_areas(cx, pd) {
            if range.is_empty() || area.is_empty() || !overlaps(&range, &area) {
                continue;
            }
            let message = format!(
                "map-over-fixed-area: '{}' maps memory region '{}' at {} over its {what} at {}",
                cx.pd_name(pd),
                mr.name,
                hex_range(&range),
                hex_range(&area)
            );
            out.push(cx.violation(
                Check::MapOverFixedArea,
                message,
                vec![map_hop(e, perms, cached)],
            ));
        }
    }
    out
}

/// The PPC edges between PDs, as (caller, callee, edge), with adjacency
/// lists both ways.
struct Calls<'g> {
    edges: Vec<(usize, usize, &'g Edge)>,
    /// Per PD, indices into `edges` of the calls it makes / receives.
    out: Vec<Vec<usize>>,
    into: Vec<Vec<usize>>,
}

impl<'g> Calls<'g> {
    fn new(cx: &Context<'g>) -> Calls<'g> {
        let n = cx.sd.protection_domains.len();
        let mut calls =
            Calls { edges: Vec::new(), out: vec![Vec::new(); n], into: vec![Vec::new(); n] };
        for e in cx.graph.edges() {
            if let (Node::Pd(a), Node::Pd(b), EdgeKind::Ppc { .. }) = (e.from, e.to, e.kind) {
                if a < n && b < n {
                    calls.out[a].push(calls.edges.len());
                    calls.into[b].push(calls.edges.len());
                    calls.edges.push((a, b, e));
                }
            }
        }
        calls
    }

    /// A shortest chain of calls from a PD that nobody calls to `pd`,
    /// never through `avoid`; empty if `pd` is such a PD or none reaches
    /// it. As indices into `edges`, in call order.
    fn chain_to(&self, pd: usize, avoid: usize) -> Vec<usize> {
        let n = self.out.len();
        let mut via: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        seen[pd] = true;
        seen[avoid] = true;
        let mut queue = VecDeque::from([pd]);
        while let Some(at) = queue.pop_front() {
            if self.into[at].is_empty() {
                // A root: walk forward along the recorded calls.
                let mut chain = Vec::new();
                let mut node = at;
                while let Some(k) = via[node] {
                    chain.push(k);
                    node = self.edges[k].1;
                }
                return chain;
            }
            for &k in &self.into[at] {
                let caller = self.edges[k].0;
                if !seen[caller] {
                    seen[caller] = true;
                    via[caller] = Some(k);
                    queue.push_back(caller);
                }
            }
        }
        Vec::new()
    }

    /// A shortest cycle of calls through `pd`, as indices into `edges`.
    fn cycle_through(&self, pd: usize) -> Option<Vec<usize>> {
        let n = self.out.len();
        let mut via: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        let mut queue = VecDeque::from([pd]);
        while let Some(at) = queue.pop_front() {
            for &k in &self.out[at] {
                let callee = self.edges[k].1;
                if callee == pd {
                    let mut cycle = vec![k];
                    let mut node = at;
                    while node != pd {
                        let Some(k) = via[node] else { break };
                        cycle.push(k);
                        node = self.edges[k].0;
                    }
                    cycle.reverse();
                    return Some(cycle);
                }
                if !seen[callee] {
                    seen[callee] = true;
                    via[callee] = Some(k);
                    queue.push_back(callee);
                }
            }
        }
        None
    }

    /// The PDs reachable from `pd` along calls (`forward`) or against them.
    fn reachable(&self, pd: usize, forward: bool) -> Vec<bool> {
        let mut seen = vec![false; self.out.len()];
        seen[pd] = true;
        let mut queue = VecDeque::from([pd]);
        while let Some(at) = queue.pop_front() {
            let list = if forward { &self.out[at] } else { &self.into[at] };
            for &k in list {
                let next = if forward { self.edges[k].1 } else { self.edges[k].0 };
                if !seen[next] {
                    seen[next] = true;
                    queue.push_back(next);
                }
            }
        }
        seen
    }

    fn hops(&self, chain: &[usize]) -> Vec<Hop> {
        chain.iter().map(|&k| edge_hop(self.edges[k].2, "calls")).collect()
    }
}

/// A PD with its priority, as PPC witnesses name it.
fn with_priority(sd: &SystemDescription, node: Node) -> String {
    match node {
        Node::Pd(pd) => match sd.protection_domains.get(pd) {
            Some(p) => format!("{} (priority {})", p.name, p.priority),
            None => node_label(sd, node),
        },
        _ => node_label(sd, node),
    }
}

/// Every call to a PD whose priority is not strictly higher than the
/// caller's, with the chain of calls that leads to it from a PD nobody
/// calls.
fn ppc_priority(cx: &Context) -> Vec<Violation> {
    let calls = Calls::new(cx);
    let priority = |pd: usize| cx.sd.protection_domains.get(pd).map_or(0, |p| p.priority);
    let mut out = Vec::new();
    for (k, &(caller, callee, _)) in calls.edges.iter().enumerate() {
        if priority(callee) > priority(caller) {
            continue;
        }
        let mut chain = calls.chain_to(caller, callee);
        chain.push(k);
        let message = format!(
            "ppc-priority: priorities must rise strictly along a chain of calls, but '{}' \
             (priority {}) calls '{}' (priority {})",
            cx.pd_name(caller),
            priority(caller),
            cx.pd_name(callee),
            priority(callee)
        );
        let label = |node| with_priority(cx.sd, node);
        out.push(Violation::new(cx.sd, Check::PpcPriority, message, calls.hops(&chain), &label));
    }
    out
}

/// Every group of PDs that call each other in a circle, once, with a
/// shortest cycle through its first PD as the witness.
fn ppc_cycle(cx: &Context) -> Vec<Violation> {
    let calls = Calls::new(cx);
    let n = calls.out.len();
    let mut reported = vec![false; n];
    let mut out = Vec::new();
    for pd in 0..n {
        if reported[pd] {
            continue;
        }
        let Some(cycle) = calls.cycle_through(pd) else { continue };
        let (ahead, behind) = (calls.reachable(pd, true), calls.reachable(pd, false));
        for other in 0..n {
            reported[other] |= ahead[other] && behind[other];
        }
        let members: Vec<&str> = cycle.iter().map(|&k| cx.pd_name(calls.edges[k].0)).collect();
        let message = format!(
            "ppc-cycle: protected procedure calls go round in a circle through {}",
            quoted_list(members)
        );
        let label = |node| with_priority(cx.sd, node);
        out.push(Violation::new(cx.sd, Check::PpcCycle, message, calls.hops(&cycle), &label));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(phys_addr: Option<u64>, size: u64) -> MemoryRegion {
        MemoryRegion {
            name: "r".into(),
            size,
            page_size: 0x1000,
            phys_addr,
            pos: Default::default(),
        }
    }

    #[test]
    fn regions_without_a_physical_address_are_ram() {
        assert!(!outside_ram(&region(None, 0x1000)));
    }

    #[test]
    fn regions_wholly_inside_ram_are_ram() {
        assert!(!outside_ram(&region(Some(RAM_BASE), 0x1000)));
        assert!(!outside_ram(&region(Some(RAM_BASE + RAM_SIZE - 0x1000), 0x1000)));
    }

    #[test]
    fn regions_below_above_or_across_the_end_of_ram_are_device_memory() {
        assert!(outside_ram(&region(Some(0x900_0000), 0x1000)));
        assert!(outside_ram(&region(Some(RAM_BASE + RAM_SIZE), 0x1000)));
        assert!(outside_ram(&region(Some(RAM_BASE + RAM_SIZE - 0x1000), 0x2000)));
        assert!(outside_ram(&region(Some(u64::MAX - 0xfff), 0x2000)));
    }

    #[test]
    fn spans_that_would_wrap_stop_at_the_top() {
        assert_eq!(span(u64::MAX - 1, 10), u64::MAX - 1..u64::MAX);
    }

    #[test]
    fn map_action_shows_rights_and_caching() {
        assert_eq!(map_action(Perms::READ_WRITE, true), "maps rw");
        assert_eq!(map_action(Perms::READ, false), "maps r uncached");
    }
}
