//! The reach graph: who can touch what, read off a system description.
//!
//! Nodes are protection domains, memory regions, devices and interrupts.
//! Edges are the rights the description grants, each with the position of
//! the element that grants it:
//!
//! | edge | from -> to | element |
//! |---|---|---|
//! | [`EdgeKind::Map`] | PD -> region, with perms and caching | `<map>` |
//! | [`EdgeKind::Ppc`] | caller -> callee (an end with `pp="true"`) | `<channel>` |
//! | [`EdgeKind::Notify`] | notifier -> notified (an end with `notify="true"`) | `<channel>` |
//! | [`EdgeKind::Lend`] | callee -> region it may be lent, with perms | `<lend>` in `<channel>` |
//! | [`EdgeKind::Irq`] | interrupt -> PD | `<irq>` |
//! | [`EdgeKind::DeviceRegion`] | device -> region | `<region>` in `<device>` |
//! | [`EdgeKind::DeviceIrq`] | device -> interrupt | `<interrupt>` in `<device>` |
//! | [`EdgeKind::Control`] | parent -> child (restart, stop) | the child's `<protection_domain>` |
//! | [`EdgeKind::FaultReport`] | child -> parent | the child's `<protection_domain>` |
//!
//! A lend is the callee's right: during a PPC on the channel the caller
//! may lend it the region (the kernel checks each lend, the callee reaches
//! the memory only by kernel-checked copies until it replies), so the edge
//! goes from the callee to the region, like a map, but grants no mapping.
//! A channel without a `pp="true"` end makes no calls and so lends nothing;
//! one with two (a model that breaks validation) lends to both ends.
//!
//! The graph accepts any model, also one that breaks validation rules (see
//! [`sdf::read`]): a name that two regions share means the first of them,
//! as everywhere in the model; an index out of range (possible only in a
//! model built by hand) drops the edge.
//!
//! Chains (`<chain>`, with their `<link>`s) grant nothing and are not
//! edges: they are trust declarations that the flow graph (module `flow`)
//! reads, splitting the PD that declares them into one [`Node::Stage`]
//! per stage and joining linked chains' stages.

use std::collections::{BTreeSet, HashMap};

use sdf::{Perms, Pos, SystemDescription};

/// A node of the reach graph. Indices are into the vectors of
/// [`SystemDescription`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Pd(usize),
    Region(usize),
    Device(usize),
    /// A GIC interrupt number.
    Irq(u32),
    /// Stage `stage` (from 0) of chain `chain` (an index into the PD's
    /// [`sdf::ProtectionDomain::chains`]) of the PD at `pd`: a part of that
    /// PD in the information-flow graph. Never a node of the
    /// [`ReachGraph`]; it appears in policy witnesses, where it stands for
    /// the PD itself.
    Stage {
        pd: usize,
        chain: usize,
        stage: usize,
    },
}

impl Node {
    /// The protection domain this node is or is part of: `Some` for
    /// [`Node::Pd`] and [`Node::Stage`].
    pub fn pd(self) -> Option<usize> {
        match self {
            Node::Pd(pd) | Node::Stage { pd, .. } => Some(pd),
            _ => None,
        }
    }
}

/// What an edge grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// The PD maps the region at `vaddr`.
    Map { perms: Perms, cached: bool, vaddr: u64 },
    /// The PD may call the other end of channel `channel` (an index into
    /// [`SystemDescription::channels`]).
    Ppc { channel: usize },
    /// The PD may notify the other end of channel `channel`.
    Notify { channel: usize },
    /// The PD may be lent the region, with at most `perms`, during the
    /// PPCs the other end of channel `channel` (an index into
    /// [`SystemDescription::channels`]) makes to it. The PD does not map
    /// it: it reaches it only by kernel-checked copies.
    Lend { channel: usize, perms: Perms },
    /// The interrupt is delivered to the PD as a notification on `id`.
    Irq { id: u8 },
    /// The device owns the region (its MMIO or DMA memory).
    DeviceRegion,
    /// The device raises the interrupt.
    DeviceIrq,
    /// The parent may restart and stop the child, which it knows as
    /// `child_id`.
    Control { child_id: Option<u8> },
    /// The child's faults are reported to the parent.
    FaultReport,
}

/// A right, from the node that holds it to the node it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: Node,
    pub to: Node,
    pub kind: EdgeKind,
    /// The element that grants it (`map`, `channel`, `lend`, `irq`,
    /// `region`, `interrupt`, `protection_domain`).
    pub element: &'static str,
    pub pos: Pos,
}

/// Every node and edge of a system, in a fixed order: nodes PDs, regions,
/// devices, then interrupts by number; edges maps (by PD), channels (each
/// with its PPCs, notifications, then lends), interrupt bindings (by PD),
/// devices, parent and child links (by child).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachGraph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl ReachGraph {
    /// The reach graph of `sd`.
    pub fn new(sd: &SystemDescription) -> ReachGraph {
        let pds = sd.protection_domains.len();
        let pd = |index: usize| (index < pds).then_some(Node::Pd(index));
        let regions = region_index(sd);
        let region = |name: &str| regions.get(name).map(|&i| Node::Region(i));
        let mut edges = Vec::new();

        for (index, p) in sd.protection_domains.iter().enumerate() {
            for map in &p.maps {
                let Some(to) = region(&map.mr) else { continue };
                let kind = EdgeKind::Map { perms: map.perms, cached: map.cached, vaddr: map.vaddr };
                edges.push(Edge { from: Node::Pd(index), to, kind, element: "map", pos: map.pos });
            }
        }
        for (channel, ch) in sd.channels.iter().enumerate() {
            let [a, b] = &ch.ends;
            let (Some(pa), Some(pb)) = (pd(a.pd), pd(b.pd)) else { continue };
            let ends = [(pa, pb, a), (pb, pa, b)];
            for (from, to, end) in ends {
                if end.pp {
                    let kind = EdgeKind::Ppc { channel };
                    edges.push(Edge { from, to, kind, element: "channel", pos: ch.pos });
                }
            }
            for (from, to, end) in ends {
                if end.notify {
                    let kind = EdgeKind::Notify { channel };
                    edges.push(Edge { from, to, kind, element: "channel", pos: ch.pos });
                }
            }
            // The callee of each calling end may be lent every region.
            for (_, callee, end) in ends {
                if !end.pp {
                    continue;
                }
                for lend in &ch.lends {
                    let Some(to) = region(&lend.mr) else { continue };
                    let kind = EdgeKind::Lend { channel, perms: lend.perms };
                    edges.push(Edge { from: callee, to, kind, element: "lend", pos: lend.pos });
                }
            }
        }
        for (index, p) in sd.protection_domains.iter().enumerate() {
            for irq in &p.irqs {
                let kind = EdgeKind::Irq { id: irq.id };
                let (from, to) = (Node::Irq(irq.irq), Node::Pd(index));
                edges.push(Edge { from, to, kind, element: "irq", pos: irq.pos });
            }
        }
        for (index, dev) in sd.devices.iter().enumerate() {
            for r in &dev.regions {
                let Some(to) = region(&r.mr) else { continue };
                let (from, kind) = (Node::Device(index), EdgeKind::DeviceRegion);
                edges.push(Edge { from, to, kind, element: "region", pos: r.pos });
            }
            for irq in &dev.irqs {
                let (from, to) = (Node::Device(index), Node::Irq(irq.irq));
                let kind = EdgeKind::DeviceIrq;
                edges.push(Edge { from, to, kind, element: "interrupt", pos: irq.pos });
            }
        }
        for (index, child) in sd.protection_domains.iter().enumerate() {
            let Some(parent) = child.parent.and_then(pd) else { continue };
            let element = "protection_domain";
            let kind = EdgeKind::Control { child_id: child.child_id };
            edges.push(Edge { from: parent, to: Node::Pd(index), kind, element, pos: child.pos });
            let kind = EdgeKind::FaultReport;
            edges.push(Edge { from: Node::Pd(index), to: parent, kind, element, pos: child.pos });
        }

        let irqs: BTreeSet<u32> = sd
            .protection_domains
            .iter()
            .flat_map(|p| p.irqs.iter().map(|irq| irq.irq))
            .chain(sd.devices.iter().flat_map(|dev| dev.irqs.iter().map(|irq| irq.irq)))
            .collect();
        let nodes = (0..pds)
            .map(Node::Pd)
            .chain((0..sd.memory_regions.len()).map(Node::Region))
            .chain((0..sd.devices.len()).map(Node::Device))
            .chain(irqs.into_iter().map(Node::Irq))
            .collect();
        ReachGraph { nodes, edges }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edges that leave `node`, in graph order.
    pub fn edges_from(&self, node: Node) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.from == node)
    }

    /// The edges that reach `node`, in graph order.
    pub fn edges_to(&self, node: Node) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.to == node)
    }
}

/// Region name to index; for a name used twice, the first region.
pub(crate) fn region_index(sd: &SystemDescription) -> HashMap<&str, usize> {
    let mut index = HashMap::new();
    for (i, mr) in sd.memory_regions.iter().enumerate() {
        index.entry(mr.name.as_str()).or_insert(i);
    }
    index
}

/// The device that claims each region (by region index) and each
/// interrupt; for one claimed twice, the first device.
pub(crate) struct Claims {
    pub regions: HashMap<usize, usize>,
    pub irqs: HashMap<u32, usize>,
}

impl Claims {
    pub fn new(sd: &SystemDescription) -> Claims {
        let names = region_index(sd);
        let mut claims = Claims { regions: HashMap::new(), irqs: HashMap::new() };
        for (index, dev) in sd.devices.iter().enumerate() {
            for r in &dev.regions {
                if let Some(&region) = names.get(r.mr.as_str()) {
                    claims.regions.entry(region).or_insert(index);
                }
            }
            for irq in &dev.irqs {
                claims.irqs.entry(irq.irq).or_insert(index);
            }
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(xml: &str) -> ReachGraph {
        ReachGraph::new(&sdf::read("t.xml", xml).unwrap())
    }

    const SYSTEM: &str = r#"<system>
<memory_region name="buf" size="0x1000"/>
<memory_region name="regs" size="0x1000" phys_addr="0x9010000"/>
<protection_domain name="a" priority="1"><program_image path="a"/>
    <map mr="buf" vaddr="0x1000000" perms="r"/>
    <protection_domain name="kid" id="4"><program_image path="k"/></protection_domain>
</protection_domain>
<protection_domain name="b" priority="2"><program_image path="b"/>
    <map mr="buf" vaddr="0x1000000" cached="false"/>
    <irq irq="40" id="3"/>
</protection_domain>
<channel><end pd="a" id="0" pp="true" notify="false"/><end pd="b" id="0"/></channel>
<device name="d" owner="b"><region mr="regs"/><interrupt irq="40"/></device>
</system>"#;

    #[test]
    fn every_grant_becomes_an_edge_with_its_position() {
        let g = graph(SYSTEM);
        let edges: Vec<_> =
            g.edges().iter().map(|e| (e.from, e.to, e.element, e.pos.line)).collect();
        use Node::*;
        assert_eq!(
            edges,
            [
                (Pd(0), Region(0), "map", 5),
                (Pd(2), Region(0), "map", 9),
                (Pd(0), Pd(2), "channel", 12),
                (Pd(2), Pd(0), "channel", 12),
                (Irq(40), Pd(2), "irq", 10),
                (Device(0), Region(1), "region", 13),
                (Device(0), Irq(40), "interrupt", 13),
                (Pd(0), Pd(1), "protection_domain", 6),
                (Pd(1), Pd(0), "protection_domain", 6),
            ]
        );
    }

    #[test]
    fn ppc_goes_to_the_callee_and_notify_follows_the_notify_flag() {
        let g = graph(SYSTEM);
        let kinds: Vec<_> = g.edges_from(Node::Pd(0)).map(|e| e.kind).collect();
        assert!(kinds.contains(&EdgeKind::Ppc { channel: 0 }));
        assert!(!kinds.contains(&EdgeKind::Notify { channel: 0 }), "a's end has notify=false");
        let back: Vec<_> = g.edges_from(Node::Pd(2)).map(|e| e.kind).collect();
        assert!(back.contains(&EdgeKind::Notify { channel: 0 }));
        assert!(!back.contains(&EdgeKind::Ppc { channel: 0 }));
    }

    #[test]
    fn map_edges_carry_perms_caching_and_vaddr() {
        let g = graph(SYSTEM);
        let map = g.edges_from(Node::Pd(2)).next().unwrap();
        assert_eq!(
            map.kind,
            EdgeKind::Map { perms: Perms::READ_WRITE, cached: false, vaddr: 0x100_0000 }
        );
    }

    #[test]
    fn nodes_are_pds_regions_devices_then_interrupts() {
        let g = graph(SYSTEM);
        use Node::*;
        assert_eq!(g.nodes(), [Pd(0), Pd(1), Pd(2), Region(0), Region(1), Device(0), Irq(40)]);
        assert_eq!(g.edges_to(Irq(40)).count(), 1);
    }

    #[test]
    fn a_lend_is_an_edge_from_the_callee_to_the_region_after_its_channels_calls() {
        let xml = SYSTEM.replace(
            r#"<end pd="b" id="0"/></channel>"#,
            r#"<end pd="b" id="0"/><lend mr="buf" perms="r"/></channel>"#,
        );
        let g = graph(&xml);
        let kinds: Vec<_> = g.edges().iter().map(|e| (e.from, e.to, e.kind, e.element)).collect();
        use Node::*;
        let lend = (Pd(2), Region(0), EdgeKind::Lend { channel: 0, perms: Perms::READ }, "lend");
        let at = kinds.iter().position(|k| *k == lend).expect("a lend edge");
        assert_eq!(kinds[at - 2].3, "channel", "after the PPC and the notification");
        assert_eq!(kinds[at + 1].3, "irq");
        assert_eq!(g.edges()[at].pos.line, 12);
    }

    #[test]
    fn a_channel_without_a_calling_end_lends_nothing() {
        let xml = SYSTEM.replace(
            r#"<end pd="b" id="0"/></channel>"#,
            r#"<end pd="b" id="0"/><lend mr="buf" perms="rw"/></channel>"#,
        );
        let mut sd = sdf::read("t.xml", &xml).unwrap();
        sd.channels[0].ends[0].pp = false;
        assert!(ReachGraph::new(&sd).edges().iter().all(|e| e.element != "lend"));
        // Both ends calling (a model that breaks validation): both may be
        // lent the region.
        sd.channels[0].ends[0].pp = true;
        sd.channels[0].ends[1].pp = true;
        let lent: Vec<Node> = ReachGraph::new(&sd)
            .edges()
            .iter()
            .filter(|e| e.element == "lend")
            .map(|e| e.from)
            .collect();
        assert_eq!(lent, [Node::Pd(2), Node::Pd(0)]);
    }

    #[test]
    fn out_of_range_indices_in_a_hand_built_model_drop_the_edge() {
        let mut sd = sdf::read("t.xml", SYSTEM).unwrap();
        sd.channels[0].ends[1].pd = 99;
        sd.protection_domains[1].parent = Some(77);
        sd.protection_domains[0].maps[0].mr = "gone".into();
        let g = ReachGraph::new(&sd);
        assert!(g
            .edges()
            .iter()
            .all(|e| e.element != "channel" && e.element != "protection_domain"));
        assert_eq!(g.edges().iter().filter(|e| e.element == "map").count(), 1);
    }
}
