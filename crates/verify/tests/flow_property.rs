//! The verifier's flow analysis against a brute-force one.
//!
//! Random systems (PDs with random parents, regions, maps with random
//! perms, channels with random pp and notify ends, interrupts, devices)
//! with random no-flow and mediated policies are checked by the verifier
//! and by a plain all-pairs shortest-path computation (Floyd-Warshall over
//! an adjacency matrix built here, straight from the model, with its own
//! reading of the flow rules). Both must agree on which policies are
//! violated; a witness must be a real path of the brute-force graph, from
//! a source to a target, avoiding the mediators, and no longer than the
//! shortest one.

use proptest::prelude::*;
use sdf::*;
use verify::{analyse, dot, Check, Node};

/// Interrupt numbers the generator uses: `IRQ_BASE..IRQ_BASE + IRQS`.
const IRQ_BASE: u32 = 40;
const IRQS: usize = 3;

/// A policy: mediated or not, sources and targets as (kind, raw index),
/// mediators as raw indices.
type PolicySpec = (bool, Vec<(u8, usize)>, Vec<(u8, usize)>, Vec<usize>);

/// Raw random numbers; [`build`] turns them into a system.
#[derive(Clone, Debug)]
struct Spec {
    pds: Vec<(u8, Option<usize>)>,
    regions: Vec<u8>,
    maps: Vec<(usize, usize, u8, u8)>,
    channels: Vec<(usize, usize, [bool; 4])>,
    irqs: Vec<(usize, usize)>,
    devices: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)>,
    policies: Vec<PolicySpec>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let n = || any::<usize>();
    let list = |max| proptest::collection::vec(any::<usize>(), 0..max);
    let entities = || proptest::collection::vec((0u8..3, any::<usize>()), 1..4);
    (
        proptest::collection::vec((0u8..6, proptest::option::weighted(0.3, n())), 1..8),
        proptest::collection::vec(0u8..4, 0..5),
        proptest::collection::vec((n(), n(), 0u8..8, 0u8..4), 0..14),
        proptest::collection::vec((n(), n(), any::<[bool; 4]>()), 0..10),
        proptest::collection::vec((n(), n()), 0..4),
        proptest::collection::vec((list(3), list(3), list(2)), 0..3),
        proptest::collection::vec((any::<bool>(), entities(), entities(), list(3)), 1..4),
    )
        .prop_map(|(pds, regions, maps, channels, irqs, devices, policies)| Spec {
            pds,
            regions,
            maps,
            channels,
            irqs,
            devices,
            policies,
        })
}

fn pos(line: u32) -> Pos {
    Pos { line, col: 1 }
}

/// The system `spec` describes. Raw numbers pick entities modulo their
/// count; devices and regions referred to before any exist are dropped.
fn build(spec: &Spec) -> SystemDescription {
    let np = spec.pds.len();
    let nr = spec.regions.len();
    let nd = spec.devices.len();
    let mut pds: Vec<ProtectionDomain> = spec
        .pds
        .iter()
        .enumerate()
        .map(|(i, &(priority, parent))| ProtectionDomain {
            name: format!("p{i}"),
            pos: pos(i as u32 + 1),
            priority,
            passive: false,
            stack_size: 0x4000,
            budget: 1000,
            period: 1000,
            can_power_off: false,
            program_image: "p.elf".into(),
            program_image_pos: pos(1),
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            parent: parent.map(|p| p % np),
            child_id: parent.map(|_| 0),
            block_client: None,
        })
        .collect();
    let regions = spec
        .regions
        .iter()
        .enumerate()
        .map(|(i, &place)| MemoryRegion {
            name: format!("r{i}"),
            size: 0x1000,
            page_size: 0x1000,
            phys_addr: match place {
                0 | 1 => None,
                2 => Some(0x5000_0000 + 0x1000 * i as u64),
                _ => Some(0x900_0000 + 0x1000 * i as u64),
            },
            pos: pos(100 + i as u32),
        })
        .collect();
    if nr > 0 {
        for (k, &(pd, region, perms, vaddr)) in spec.maps.iter().enumerate() {
            let perms =
                Perms { read: perms & 1 != 0, write: perms & 2 != 0, execute: perms & 4 != 0 };
            let vaddr = [0x100_0000, 0x200_0000, 0xf_ffff_e000, 0x200_0000 + 0x1000 * k as u64]
                [vaddr as usize];
            pds[pd % np].maps.push(Map {
                mr: format!("r{}", region % nr),
                vaddr,
                perms,
                cached: perms.execute,
                setvar_vaddr: None,
                pos: pos(200 + k as u32),
            });
        }
    }
    for (k, &(pd, irq)) in spec.irqs.iter().enumerate() {
        pds[pd % np].irqs.push(Irq {
            irq: IRQ_BASE + (irq % IRQS) as u32,
            id: 60,
            trigger: Trigger::Level,
            pos: pos(300 + k as u32),
        });
    }
    let channels = spec
        .channels
        .iter()
        .enumerate()
        .map(|(k, &(a, b, [pp_a, pp_b, n_a, n_b]))| {
            let end =
                |pd: usize, pp, notify| ChannelEnd { pd: pd % np, id: 0, pp, notify, pos: pos(1) };
            Channel { ends: [end(a, pp_a, n_a), end(b, pp_b, n_b)], pos: pos(400 + k as u32) }
        })
        .collect();
    let devices = spec
        .devices
        .iter()
        .enumerate()
        .map(|(k, (owners, regions, irqs))| Device {
            name: format!("d{k}"),
            owners: owners.iter().map(|o| o % np).collect(),
            regions: if nr == 0 {
                Vec::new()
            } else {
                regions
                    .iter()
                    .map(|r| DeviceRegion { mr: format!("r{}", r % nr), pos: pos(500) })
                    .collect()
            },
            irqs: irqs
                .iter()
                .map(|i| DeviceIrq { irq: IRQ_BASE + (i % IRQS) as u32, pos: pos(501) })
                .collect(),
            pos: pos(502),
        })
        .collect();
    let entity = |&(kind, raw): &(u8, usize)| match kind {
        1 if nr > 0 => Entity::Region(format!("r{}", raw % nr)),
        2 if nd > 0 => Entity::Device(format!("d{}", raw % nd)),
        _ => Entity::Pd(raw % np),
    };
    let policies = spec
        .policies
        .iter()
        .enumerate()
        .map(|(k, (mediated, from, to, via))| {
            let ends = |list: &Vec<(u8, usize)>| {
                list.iter().map(|e| Endpoint { entity: entity(e), pos: pos(600) }).collect()
            };
            let (from, to) = (ends(from), ends(to));
            let rule = if *mediated {
                PolicyRule::Mediated { from, to, via: via.iter().map(|v| v % np).collect() }
            } else {
                PolicyRule::NoFlow { from, to }
            };
            Policy { name: format!("policy{k}"), rule, pos: pos(700 + k as u32) }
        })
        .collect();
    SystemDescription {
        file: "random.xml".into(),
        protection_domains: pds,
        memory_regions: regions,
        channels,
        devices,
        policies,
        pending_policies: Vec::new(),
        disks: Vec::new(),
    }
}

/// The brute-force flow graph: node numbering and all-pairs shortest
/// distances (in steps, at least one) with some nodes removed.
struct Brute {
    np: usize,
    nr: usize,
    nd: usize,
    adjacent: Vec<Vec<bool>>,
}

const FAR: u32 = u32::MAX / 4;

impl Brute {
    fn new(sd: &SystemDescription) -> Brute {
        let (np, nr, nd) = (sd.protection_domains.len(), sd.memory_regions.len(), sd.devices.len());
        let n = np + nr + nd + IRQS;
        let mut b = Brute { np, nr, nd, adjacent: vec![vec![false; n]; n] };
        let region = |name: &str| sd.memory_regions.iter().position(|r| r.name == name);
        let mut edge = |from: usize, to: usize| b.adjacent[from][to] = true;
        // Memory: a writer reaches the region, the region every reader.
        for (p, pd) in sd.protection_domains.iter().enumerate() {
            for map in &pd.maps {
                let Some(r) = region(&map.mr) else { continue };
                if map.perms.write {
                    edge(p, np + r);
                }
                if map.perms.read || map.perms.execute {
                    edge(np + r, p);
                }
            }
            // Interrupts reach the PD they are bound to.
            for irq in &pd.irqs {
                edge(np + nr + nd + (irq.irq - IRQ_BASE) as usize, p);
            }
            // Parent and child reach each other (control, faults).
            if let Some(parent) = pd.parent {
                edge(parent, p);
                edge(p, parent);
            }
        }
        for ch in &sd.channels {
            let [x, y] = &ch.ends;
            for (end, other) in [(x, y), (y, x)] {
                // A call carries data both ways.
                if end.pp {
                    edge(end.pd, other.pd);
                    edge(other.pd, end.pd);
                }
                if end.notify {
                    edge(end.pd, other.pd);
                }
            }
        }
        // A device reads and writes its regions and raises its interrupts.
        for (d, dev) in sd.devices.iter().enumerate() {
            for r in dev.regions.iter().filter_map(|r| region(&r.mr)) {
                edge(np + nr + d, np + r);
                edge(np + r, np + nr + d);
            }
            for irq in &dev.irqs {
                edge(np + nr + d, np + nr + nd + (irq.irq - IRQ_BASE) as usize);
            }
        }
        b
    }

    fn index(&self, node: Node) -> usize {
        match node {
            Node::Pd(i) => i,
            Node::Region(i) => self.np + i,
            Node::Device(i) => self.np + self.nr + i,
            Node::Irq(n) => self.np + self.nr + self.nd + (n - IRQ_BASE) as usize,
        }
    }

    fn entity(&self, sd: &SystemDescription, e: &Endpoint) -> usize {
        match &e.entity {
            Entity::Pd(i) => *i,
            Entity::Region(name) => {
                self.np + sd.memory_regions.iter().position(|r| &r.name == name).unwrap()
            }
            Entity::Device(name) => {
                self.np + self.nr + sd.devices.iter().position(|d| &d.name == name).unwrap()
            }
        }
    }

    /// Floyd-Warshall over the graph without the `removed` nodes.
    #[allow(clippy::needless_range_loop)] // a matrix algorithm reads best with indices
    fn distances(&self, removed: &[usize]) -> Vec<Vec<u32>> {
        let n = self.adjacent.len();
        let mut dist = vec![vec![FAR; n]; n];
        for i in 0..n {
            for j in 0..n {
                if self.adjacent[i][j] && !removed.contains(&i) && !removed.contains(&j) {
                    dist[i][j] = 1;
                }
            }
        }
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    let through = dist[i][k] + dist[k][j];
                    if through < dist[i][j] {
                        dist[i][j] = through;
                    }
                }
            }
        }
        dist
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn flow_policies_agree_with_brute_force_reachability(spec in spec()) {
        let sd = build(&spec);
        let analysis = analyse(&sd, None);
        let brute = Brute::new(&sd);
        for (index, policy) in sd.policies.iter().enumerate() {
            let (from, to, via) = match &policy.rule {
                PolicyRule::NoFlow { from, to } => (from, to, Vec::new()),
                PolicyRule::Mediated { from, to, via } => (from, to, via.clone()),
                PolicyRule::Isolated { .. } => continue,
            };
            let sources: Vec<usize> =
                from.iter().map(|e| brute.entity(&sd, e)).filter(|s| !via.contains(s)).collect();
            let targets: Vec<usize> =
                to.iter().map(|e| brute.entity(&sd, e)).filter(|t| !via.contains(t)).collect();
            let dist = brute.distances(&via);
            let trivial = sources.iter().any(|s| targets.contains(s));
            let shortest = sources
                .iter()
                .flat_map(|&s| targets.iter().map(move |&t| (s, t)))
                .map(|(s, t)| dist[s][t])
                .min()
                .unwrap_or(FAR);
            let expected = trivial || shortest < FAR;

            let found: Vec<_> =
                analysis.violations().iter().filter(|v| v.check == Check::Policy(index)).collect();
            prop_assert!(found.len() <= 1, "one violation per policy: {found:#?}");
            prop_assert_eq!(!found.is_empty(), expected, "policy {}: {:?}", index, policy);
            let Some(violation) = found.first() else { continue };
            if trivial {
                prop_assert!(violation.witness.is_empty());
                continue;
            }
            let hops = &violation.witness;
            prop_assert_eq!(hops.len() as u32, shortest, "not a shortest witness: {}", violation);
            prop_assert!(sources.contains(&brute.index(hops[0].from)), "{}", violation);
            prop_assert!(targets.contains(&brute.index(hops[hops.len() - 1].to)), "{}", violation);
            for (k, hop) in hops.iter().enumerate() {
                let (a, b) = (brute.index(hop.from), brute.index(hop.to));
                prop_assert!(brute.adjacent[a][b], "hop {k} is no flow: {}", violation);
                prop_assert!(!via.contains(&a) && !via.contains(&b), "through a mediator: {}", violation);
                if k > 0 {
                    prop_assert_eq!(hops[k - 1].to, hop.from, "hops do not join: {}", violation);
                }
            }
        }
    }

    /// Whatever the model holds, the report and the picture come out, and
    /// both are the same on a second run.
    #[test]
    fn report_and_dot_never_panic_and_are_deterministic(spec in spec()) {
        let sd = build(&spec);
        let programs = vec![vec![verify::ProgramExtent { vaddr: 0x200_0000, size: u64::MAX }]; 2];
        let first = analyse(&sd, Some(&programs));
        let second = analyse(&sd, Some(&programs));
        prop_assert_eq!(first.report(), second.report());
        prop_assert_eq!(first.violations(), second.violations());
        prop_assert_eq!(first.ok(), first.violations().is_empty());
        prop_assert_eq!(dot(&sd), dot(&sd));
    }
}
