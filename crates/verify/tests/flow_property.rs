//! The verifier's flow analysis against a brute-force one.
//!
//! Random systems (PDs with random parents, regions, maps with random
//! perms, channels with random pp and notify ends and random lends,
//! interrupts, devices, chains through random channels, some of them
//! broken, with random links between them) with random no-flow and
//! mediated policies are checked by the verifier and by a plain all-pairs
//! shortest-path computation
//! (Floyd-Warshall over an adjacency matrix built here, straight from the
//! model, with its own reading of the flow rules). Both must agree on which
//! policies are violated; a witness must be a real path of the brute-force
//! graph, from a source to a target, avoiding the mediators, and no longer
//! than the shortest one.

use proptest::prelude::*;
use sdf::*;
use verify::{analyse, dot, Check, Node};

/// Interrupt numbers the generator uses: `IRQ_BASE..IRQ_BASE + IRQS`.
const IRQ_BASE: u32 = 40;
const IRQS: usize = 3;

/// A policy: mediated or not, sources and targets as (kind, raw index),
/// mediators as raw indices.
type PolicySpec = (bool, Vec<(u8, usize)>, Vec<(u8, usize)>, Vec<usize>);

/// A chain: its PD; per via, which of the PD's channels it uses (raw) and
/// its call page (raw region); per stage (up to four, one more than the
/// vias are used), raw regions and raw picks of the PD's channel ends;
/// whether to drop the last stage (a broken chain); and its links, as
/// (via, chain), raw (a via past the last and a chain of another PD or
/// itself among them).
type ChainSpec = (
    usize,
    Vec<(usize, Option<usize>)>,
    Vec<(Vec<usize>, Vec<usize>)>,
    bool,
    Vec<(usize, usize)>,
);

/// Raw random numbers; [`build`] turns them into a system.
#[derive(Clone, Debug)]
struct Spec {
    pds: Vec<(u8, Option<usize>)>,
    regions: Vec<u8>,
    maps: Vec<(usize, usize, u8, u8)>,
    channels: Vec<(usize, usize, [bool; 4])>,
    /// (channel, region, writable), raw.
    lends: Vec<(usize, usize, bool)>,
    irqs: Vec<(usize, usize)>,
    devices: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)>,
    chains: Vec<ChainSpec>,
    policies: Vec<PolicySpec>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let n = || any::<usize>();
    let list = |max| proptest::collection::vec(any::<usize>(), 0..max);
    let entities = || proptest::collection::vec((0u8..3, any::<usize>()), 1..4);
    let vias = proptest::collection::vec((n(), proptest::option::weighted(0.6, n())), 0..4);
    let stages = proptest::collection::vec((list(3), list(2)), 4);
    let links = proptest::collection::vec((n(), n()), 0..3);
    let chain = (n(), vias, stages, proptest::bool::weighted(0.1), links);
    (
        (
            proptest::collection::vec((0u8..6, proptest::option::weighted(0.3, n())), 1..8),
            proptest::collection::vec(0u8..4, 0..5),
            proptest::collection::vec((n(), n(), 0u8..8, 0u8..4), 0..14),
            proptest::collection::vec((n(), n(), any::<[bool; 4]>()), 0..10),
            proptest::collection::vec((n(), n(), any::<bool>()), 0..8),
        ),
        proptest::collection::vec((n(), n()), 0..4),
        proptest::collection::vec((list(3), list(3), list(2)), 0..3),
        proptest::collection::vec(chain, 0..4),
        proptest::collection::vec((any::<bool>(), entities(), entities(), list(3)), 1..4),
    )
        .prop_map(
            |((pds, regions, maps, channels, lends), irqs, devices, chains, policies)| Spec {
                pds,
                regions,
                maps,
                channels,
                lends,
                irqs,
                devices,
                chains,
                policies,
            },
        )
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
            call_budget: None,
            can_power_off: false,
            program_image: "p.elf".into(),
            program_image_pos: pos(1),
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            parent: parent.map(|p| p % np),
            child_id: parent.map(|_| 0),
            block_client: None,
            chains: Vec::new(),
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
    // End ids: 2k and 2k + 1 on channel k, so no PD uses one twice.
    let mut channels: Vec<Channel> = spec
        .channels
        .iter()
        .enumerate()
        .map(|(k, &(a, b, [pp_a, pp_b, n_a, n_b]))| {
            let end = |pd: usize, id: usize, pp, notify| ChannelEnd {
                pd: pd % np,
                id: id as u8,
                pp,
                notify,
                pos: pos(1),
            };
            Channel {
                ends: [end(a, 2 * k, pp_a, n_a), end(b, 2 * k + 1, pp_b, n_b)],
                lends: Vec::new(),
                pos: pos(400 + k as u32),
            }
        })
        .collect();
    if nr > 0 && !channels.is_empty() {
        let count = channels.len();
        for (k, &(ch, region, write)) in spec.lends.iter().enumerate() {
            let perms = if write { Perms::READ_WRITE } else { Perms::READ };
            let mr = format!("r{}", region % nr);
            channels[ch % count].lends.push(Lend { mr, perms, pos: pos(450 + k as u32) });
        }
    }
    // A chain's PD; every other one that of the chain before it, so that
    // PDs with two chains (which links join) are common.
    let chain_count = spec.chains.len();
    let mut chain_pds: Vec<usize> = Vec::new();
    for (k, chain) in spec.chains.iter().enumerate() {
        let pd = if k > 0 && chain.0 % 2 == 0 { chain_pds[k - 1] } else { chain.0 % np };
        chain_pds.push(pd);
    }
    for (k, (_, vias, stages, broken, links)) in spec.chains.iter().enumerate() {
        let pd = chain_pds[k];
        // The PD's channel ends, as (its id, the other end's PD).
        let ends: Vec<(u8, usize)> = channels
            .iter()
            .flat_map(|ch| {
                let [a, b] = &ch.ends;
                [(a, b), (b, a)]
                    .into_iter()
                    .filter(|(me, _)| me.pd == pd)
                    .map(|(me, o)| (me.id, o.pd))
            })
            .collect();
        let to_others: Vec<(u8, usize)> = ends.iter().copied().filter(|&(_, o)| o != pd).collect();
        let vias: Vec<Via> = vias
            .iter()
            .map(|&(pick, mr)| {
                // Mostly a channel to another PD; else any id and PD.
                let (channel, via_pd) = match to_others.get(pick % to_others.len().max(1)) {
                    Some(&end) if pick % 8 != 0 => end,
                    _ => ((pick % 24) as u8, (pick / 24) % np),
                };
                let mr = if nr > 0 { mr.map(|r| format!("r{}", r % nr)) } else { None };
                Via { pd: via_pd, channel, mr, pos: pos(800) }
            })
            .collect();
        let mut stages: Vec<Stage> = stages
            .iter()
            .take(vias.len() + 1)
            .map(|(regions, picks)| Stage {
                regions: if nr == 0 {
                    Vec::new()
                } else {
                    regions
                        .iter()
                        .map(|r| StageRegion { mr: format!("r{}", r % nr), pos: pos(801) })
                        .collect()
                },
                channels: picks
                    .iter()
                    .map(|&p| StageChannel {
                        id: ends.get(p % ends.len().max(1)).map_or((p % 24) as u8, |e| e.0),
                        pos: pos(802),
                    })
                    .collect(),
                pos: pos(803),
            })
            .collect();
        if *broken {
            stages.pop();
        }
        // Mostly a via of the chain (one past the last now and then), to
        // another chain of the same PD, now and then to any (itself too).
        let siblings: Vec<usize> =
            (0..chain_count).filter(|&j| j != k && chain_pds[j] == pd).collect();
        let links = links
            .iter()
            .enumerate()
            .map(|(i, &(via, target))| ChainLink {
                via: via % (vias.len() + 1),
                chain: match siblings.get(target % siblings.len().max(1)) {
                    Some(j) if target % 5 != 0 => format!("c{j}"),
                    _ => format!("c{}", target % chain_count),
                },
                pos: pos(805 + i as u32),
            })
            .collect();
        pds[pd].chains.push(Chain { name: format!("c{k}"), stages, vias, links, pos: pos(804) });
    }
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
            // Mediators: often the via PDs of chains, where the chain
            // semantics matter most.
            let vias: Vec<usize> = pds
                .iter()
                .flat_map(|pd| pd.chains.iter().flat_map(|c| c.vias.iter().map(|v| v.pd)))
                .collect();
            let mediator = |&v: &usize| match vias.get(v / 2 % vias.len().max(1)) {
                Some(&pd) if v % 2 == 0 && pd < np => pd,
                _ => v % np,
            };
            let rule = if *mediated {
                PolicyRule::Mediated { from, to, via: via.iter().map(mediator).collect() }
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
///
/// Nodes: PDs, regions, devices, interrupts, then the stages of the chains
/// that count. A chain counts if it has one stage more than vias (at least
/// one) and each via names another PD and an id of a channel end of the
/// chain's PD whose other end is that PD, or if it has one stage and no
/// via and such a chain of its PD links to it; then the PD is its own node
/// plus one node per stage of each chain that counts.
struct Brute {
    np: usize,
    nr: usize,
    nd: usize,
    /// (pd, chain, stage) to node number.
    stage_nodes: std::collections::HashMap<(usize, usize, usize), usize>,
    /// Per PD, its own node and its stage nodes.
    pd_nodes: Vec<Vec<usize>>,
    adjacent: Vec<Vec<bool>>,
}

const FAR: u32 = u32::MAX / 4;

/// Whether chain `c` of `pd` counts (see [`Brute`]): one with vias that
/// all lead where they say, or one of a single stage and no via that such
/// a chain of the PD links to.
fn counts(sd: &SystemDescription, pd: usize, c: &Chain) -> bool {
    if c.vias.is_empty() && c.stages.len() == 1 {
        return sd.protection_domains[pd].chains.iter().any(|other| {
            other.name != c.name
                && counts_with_vias(sd, pd, other)
                && other.links.iter().any(|l| l.via < other.vias.len() && l.chain == c.name)
        });
    }
    counts_with_vias(sd, pd, c)
}

fn counts_with_vias(sd: &SystemDescription, pd: usize, c: &Chain) -> bool {
    if c.vias.is_empty() || c.stages.len() != c.vias.len() + 1 {
        return false;
    }
    c.vias.iter().all(|via| {
        via.pd != pd
            && via.pd < sd.protection_domains.len()
            && sd.channels.iter().any(|ch| {
                let [a, b] = &ch.ends;
                (a.pd == pd && a.id == via.channel && b.pd == via.pd)
                    || (b.pd == pd && b.id == via.channel && a.pd == via.pd)
            })
    })
}

impl Brute {
    fn new(sd: &SystemDescription) -> Brute {
        let (np, nr, nd) = (sd.protection_domains.len(), sd.memory_regions.len(), sd.devices.len());
        let mut stage_nodes = std::collections::HashMap::new();
        let mut pd_nodes: Vec<Vec<usize>> = (0..np).map(|p| vec![p]).collect();
        let mut n = np + nr + nd + IRQS;
        for (p, pd) in sd.protection_domains.iter().enumerate() {
            for (c, chain) in pd.chains.iter().enumerate() {
                if counts(sd, p, chain) {
                    for s in 0..chain.stages.len() {
                        stage_nodes.insert((p, c, s), n);
                        pd_nodes[p].push(n);
                        n += 1;
                    }
                }
            }
        }
        let mut b = Brute { np, nr, nd, stage_nodes, pd_nodes, adjacent: vec![vec![false; n]; n] };
        let region = |name: &str| sd.memory_regions.iter().position(|r| r.name == name);
        let split = |p: usize| b.pd_nodes[p].len() > 1;

        // The stage nodes of `p` where `f(chain, stage)` holds.
        let stages_where = |p: usize, f: &dyn Fn(&Chain, usize) -> bool| -> Vec<usize> {
            let mut out = Vec::new();
            for (c, chain) in sd.protection_domains[p].chains.iter().enumerate() {
                for s in 0..chain.stages.len() {
                    if let Some(&node) = b.stage_nodes.get(&(p, c, s)) {
                        if f(chain, s) {
                            out.push(node);
                        }
                    }
                }
            }
            out
        };
        // A stage names region `r`.
        let names_region = |chain: &Chain, s: usize, r: usize| {
            chain.stages[s].regions.iter().any(|x| region(&x.mr) == Some(r))
        };
        // Stages k and k + 1 around each via of `p` that `f` picks.
        let around = |p: usize, f: &dyn Fn(&Via) -> bool| -> Vec<usize> {
            stages_where(p, &|chain: &Chain, s: usize| {
                (s < chain.vias.len() && f(&chain.vias[s])) || (s > 0 && f(&chain.vias[s - 1]))
            })
        };
        let either = |mut a: Vec<usize>, b: Vec<usize>| {
            for x in b {
                if !a.contains(&x) {
                    a.push(x);
                }
            }
            a
        };
        let or_own = |p: usize, nodes: Vec<usize>| if nodes.is_empty() { vec![p] } else { nodes };
        // Where `p`'s map of region `r` attaches.
        let map_place = |p: usize, r: usize| -> Vec<usize> {
            if !split(p) {
                return vec![p];
            }
            let named = stages_where(p, &|chain: &Chain, s: usize| names_region(chain, s, r));
            let is_page = |via: &Via| via.mr.as_deref().and_then(region) == Some(r);
            let pages: Vec<usize> = sd.protection_domains[p]
                .chains
                .iter()
                .enumerate()
                .filter(|(c, _)| b.stage_nodes.contains_key(&(p, *c, 0)))
                .flat_map(|(_, chain)| chain.vias.iter().filter(|v| is_page(v)).map(|v| v.pd))
                .collect();
            if pages.is_empty() {
                return or_own(p, named);
            }
            // A call page nobody but the PD and its one via touches is
            // the call itself: the map is dropped.
            let name = &sd.memory_regions[r].name;
            let others_map = sd.protection_domains.iter().enumerate().any(|(q, pd)| {
                q != p && q != pages[0] && pd.maps.iter().any(|m| region(&m.mr) == Some(r))
            });
            let device = sd.devices.iter().any(|d| d.regions.iter().any(|x| &x.mr == name));
            let lent = sd.channels.iter().any(|ch| ch.lends.iter().any(|l| &l.mr == name));
            if pages.len() == 1 && !others_map && !device && !lent {
                named
            } else {
                either(named, around(p, &is_page))
            }
        };
        // Where the channel end `e` attaches; `o` is the other end.
        let end_place = |e: &ChannelEnd, o: &ChannelEnd| -> Vec<usize> {
            if !split(e.pd) {
                return vec![e.pd];
            }
            let named = stages_where(e.pd, &|chain: &Chain, s: usize| {
                chain.stages[s].channels.iter().any(|c| c.id == e.id)
            });
            let vias = around(e.pd, &|v: &Via| v.channel == e.id && v.pd == o.pd);
            or_own(e.pd, either(named, vias))
        };
        // Where `p`'s side of its parent/child link with `q` attaches.
        let link_place = |p: usize, q: usize| or_own(p, around(p, &|v: &Via| v.pd == q));

        // The links that count, per PD: (from chain, its via, to chain):
        // from a chain that counts, by one of its vias, to the first
        // chain of the PD of that name that counts, not itself.
        let links: Vec<Vec<(usize, usize, usize)>> = (0..np)
            .map(|p| {
                let chains = &sd.protection_domains[p].chains;
                let counting = |c: usize| b.stage_nodes.contains_key(&(p, c, 0));
                let mut out = Vec::new();
                for (c, chain) in chains.iter().enumerate().filter(|&(c, _)| counting(c)) {
                    for l in chain.links.iter().filter(|l| l.via < chain.vias.len()) {
                        let target = (0..chains.len())
                            .find(|&t| counting(t) && chains[t].name == l.chain);
                        if let Some(t) = target.filter(|&t| t != c) {
                            out.push((c, l.via, t));
                        }
                    }
                }
                out
            })
            .collect();
        // The chains of `p` that links lead from, directly or on through
        // others, to its chain `to`.
        let upstream = |p: usize, to: usize| -> Vec<usize> {
            let mut found = vec![to];
            let mut k = 0;
            while k < found.len() {
                for &(from, _, target) in &links[p] {
                    if target == found[k] && !found.contains(&from) {
                        found.push(from);
                    }
                }
                k += 1;
            }
            found.remove(0);
            found
        };

        let mut edge = |from: usize, to: usize| b.adjacent[from][to] = true;
        // A link leads from the stage below its via to the first stage of
        // the chain it leads to; answers come back from that chain's
        // second stage (below its first via), or its only one.
        for (p, pd_links) in links.iter().enumerate() {
            for &(c, via, t) in pd_links {
                let (below, top) = (b.stage_nodes[&(p, c, via + 1)], b.stage_nodes[&(p, t, 0)]);
                let second = usize::from(!sd.protection_domains[p].chains[t].vias.is_empty());
                edge(below, top);
                edge(b.stage_nodes[&(p, t, second)], below);
            }
        }
        // Memory: a writer reaches the region, the region every reader.
        for (p, pd) in sd.protection_domains.iter().enumerate() {
            for map in &pd.maps {
                let Some(r) = region(&map.mr) else { continue };
                for at in map_place(p, r) {
                    if map.perms.write {
                        edge(at, np + r);
                    }
                    if map.perms.read || map.perms.execute {
                        edge(np + r, at);
                    }
                }
            }
            // Interrupts reach the PD they are bound to (its own node).
            for irq in &pd.irqs {
                edge(np + nr + nd + (irq.irq - IRQ_BASE) as usize, p);
            }
            // Parent and child reach each other (control, faults).
            if let Some(parent) = pd.parent {
                for x in link_place(parent, p) {
                    for y in link_place(p, parent) {
                        edge(x, y);
                        edge(y, x);
                    }
                }
            }
        }
        for ch in &sd.channels {
            let [x, y] = &ch.ends;
            for (end, other) in [(x, y), (y, x)] {
                let (here, there) = (end_place(end, other), end_place(other, end));
                for &a in &here {
                    for &c in &there {
                        // A call carries data both ways.
                        if end.pp {
                            edge(a, c);
                            edge(c, a);
                        }
                        if end.notify {
                            edge(a, c);
                        }
                    }
                }
                if !end.pp {
                    continue;
                }
                // What `end` lends `other` during its calls.
                for lend in &ch.lends {
                    let Some(r) = region(&lend.mr) else { continue };
                    let callee = if split(other.pd) {
                        let named = stages_where(other.pd, &|chain: &Chain, s: usize| {
                            names_region(chain, s, r)
                        });
                        either(named, end_place(other, end))
                    } else {
                        vec![other.pd]
                    };
                    // On a via's channel the data enters the chain at the
                    // stage that names it, or else at those of the chains
                    // linked to it that name it, or else just above the via.
                    let mut entry = Vec::new();
                    let chains = &sd.protection_domains[end.pd].chains;
                    let named_in = |c: usize| -> Vec<usize> {
                        (0..chains[c].stages.len())
                            .filter(|&s| names_region(&chains[c], s, r))
                            .map(|s| b.stage_nodes[&(end.pd, c, s)])
                            .collect()
                    };
                    for (c, chain) in chains.iter().enumerate() {
                        if !b.stage_nodes.contains_key(&(end.pd, c, 0)) {
                            continue;
                        }
                        for (k, via) in chain.vias.iter().enumerate() {
                            if via.channel != end.id || via.pd != other.pd {
                                continue;
                            }
                            let mut named = named_in(c);
                            if named.is_empty() {
                                named =
                                    upstream(end.pd, c).into_iter().flat_map(named_in).collect();
                            }
                            if named.is_empty() {
                                named.push(b.stage_nodes[&(end.pd, c, k)]);
                            }
                            entry.extend(named);
                        }
                    }
                    if lend.perms.read {
                        for &to in if entry.is_empty() { &callee } else { &entry } {
                            edge(np + r, to);
                        }
                    }
                    if lend.perms.write {
                        for &from in &callee {
                            edge(from, np + r);
                        }
                    }
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
            Node::Stage { pd, chain, stage } => self.stage_nodes[&(pd, chain, stage)],
        }
    }

    /// The nodes an endpoint stands for: a PD is all its nodes.
    fn entity(&self, sd: &SystemDescription, e: &Endpoint) -> Vec<usize> {
        match &e.entity {
            Entity::Pd(i) => self.pd_nodes[*i].clone(),
            Entity::Region(name) => {
                vec![self.np + sd.memory_regions.iter().position(|r| &r.name == name).unwrap()]
            }
            Entity::Device(name) => {
                vec![self.np + self.nr + sd.devices.iter().position(|d| &d.name == name).unwrap()]
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
                PolicyRule::Mediated { from, to, via } => {
                    let nodes = via.iter().flat_map(|&pd| brute.pd_nodes[pd].clone());
                    (from, to, nodes.collect())
                }
                PolicyRule::Isolated { .. } => continue,
            };
            let sources: Vec<usize> =
                from.iter().flat_map(|e| brute.entity(&sd, e)).filter(|s| !via.contains(s)).collect();
            let targets: Vec<usize> =
                to.iter().flat_map(|e| brute.entity(&sd, e)).filter(|t| !via.contains(t)).collect();
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

/// The generator makes what the comparison is about often enough: PDs
/// split by chains, broken chains, lends, lends on a via's channel, call
/// pages the split drops, and links between chains.
#[test]
fn random_systems_often_have_chains_and_lends() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut split, mut broken, mut lends, mut via_lends, mut pages) = (0, 0, 0, 0, 0);
    let mut links = 0;
    let runs = 1000;
    for _ in 0..runs {
        let sd = build(&spec().new_tree(&mut runner).unwrap().current());
        let brute = Brute::new(&sd);
        let chains = || {
            sd.protection_domains
                .iter()
                .enumerate()
                .flat_map(|(p, pd)| pd.chains.iter().map(move |c| (p, c)))
        };
        split += usize::from(brute.pd_nodes.iter().any(|nodes| nodes.len() > 1));
        // A link between two chains that count.
        links += usize::from(chains().any(|(p, c)| {
            counts(&sd, p, c)
                && c.links.iter().any(|l| {
                    l.via < c.vias.len()
                        && l.chain != c.name
                        && sd.protection_domains[p]
                            .chains
                            .iter()
                            .any(|t| t.name == l.chain && counts(&sd, p, t))
                })
        }));
        broken += usize::from(chains().any(|(p, c)| !counts(&sd, p, c)));
        lends += usize::from(sd.channels.iter().any(|ch| !ch.lends.is_empty()));
        let via_channel = |ch: &Channel| {
            chains().any(|(p, c)| {
                counts(&sd, p, c)
                    && c.vias
                        .iter()
                        .any(|v| ch.ends.iter().any(|e| e.pd == p && e.id == v.channel && e.pp))
            })
        };
        via_lends +=
            usize::from(sd.channels.iter().any(|ch| !ch.lends.is_empty() && via_channel(ch)));
        pages += usize::from(chains().any(|(p, c)| {
            counts(&sd, p, c)
                && c.vias.iter().any(|v| {
                    v.mr.as_ref().is_some_and(|mr| {
                        sd.protection_domains[p].maps.iter().any(|m| &m.mr == mr)
                            && sd
                                .protection_domains
                                .iter()
                                .filter(|pd| pd.maps.iter().any(|m| &m.mr == mr))
                                .count()
                                <= 2
                    })
                })
        }));
    }
    eprintln!("of {runs}: split {split}, broken {broken}, lends {lends}, via lends {via_lends}, call pages {pages}, links {links}");
    for (what, count) in [
        ("split", split),
        ("links", links),
        ("broken", broken),
        ("lends", lends),
        ("via lends", via_lends),
        ("call pages", pages),
    ] {
        assert!(count * 20 >= runs, "only {count} of {runs} random systems have {what}");
    }
}
