//! Chains (`<chain>`): how the flow graph splits a protection domain that
//! declares them, and where each of its rights attaches.
//!
//! A chain is a trust declaration: the PD (the filter server) passes what
//! enters at the first stage on to the last only through the via PDs, in
//! order, and what enters at a later stage (a block client attached at a
//! filter: [`entrants`] says who enters where) only through the vias below
//! it. The flow graph takes it at its word by splitting the PD into its
//! own node ([`Node::Pd`]) and one [`Node::Stage`] per stage of each of
//! its chains, and attaching each right of the PD to one or more of them:
//!
//! - a map of a region named in a stage: that stage; of the `mr` of a via
//!   (the call page) that only the PD and that via's PD map, that no
//!   device claims, that no channel lends and that no other via names:
//!   nowhere (the page is the call itself, which the via's channel stands
//!   for); of a call page shared more widely: the two stages around each
//!   via that names it (conservative: the page may then carry data past
//!   the via); else the own node;
//! - a channel end whose id a stage names: that stage; the end of a via's
//!   channel (its id is the via's `channel` and the other end is the via's
//!   PD): the stages just above and just below the via; else the own node;
//! - the parent/child link with a via's PD: where that via's channel
//!   attaches; else the own node;
//! - a lend the PD is the callee of: where the region attaches (as if
//!   mapped) together with where the lending channel's end attaches;
//! - interrupts: the own node.
//!
//! A chain's links ([`sdf::ChainLink`]) lead from the stage just below
//! the link's via to the first stage of the chain it names, and answers
//! come back from that chain's second stage, below its first via (its
//! only stage if it has no via), since no answer of it bypasses that via
//! ([`Chains::links`]); a link whose via is past the chain's last, or that
//! names no used chain of the PD or the chain itself, joins nothing. A
//! read lend on a via's channel of a region the via's chain does not name
//! enters at the stages that name it in the chains linked to this one
//! (directly or on through others): a request a filter redirects carries
//! the data it had there ([`Chains::lend_entry`]).
//!
//! A right named in several places (a region in two stages, in a model
//! that breaks a reading rule; a via's channel that a stage names too)
//! goes to all of them. A chain whose shape is broken (stage and via counts do
//! not match) or one of whose vias does not lead, by a channel of the PD,
//! to another PD is not used: it splits nothing, as if it were not
//! declared (only a model built by hand can have one; reading refuses it).
//! Nor is a chain without vias (one stage) that no link of a used chain
//! with vias names.

use std::collections::HashMap;

use sdf::{Chain, ChainLink, ChannelEnd, SystemDescription, Via};

use crate::graph::{region_index, Node};

/// The chains of every PD, as the flow graph uses them.
pub(crate) struct Chains<'a> {
    sd: &'a SystemDescription,
    regions: HashMap<&'a str, usize>,
    /// Per PD, the indices of its chains that are used.
    used: Vec<Vec<usize>>,
}

impl<'a> Chains<'a> {
    pub fn new(sd: &'a SystemDescription) -> Chains<'a> {
        let used = sd
            .protection_domains
            .iter()
            .enumerate()
            .map(|(pd, p)| {
                let with_vias: Vec<usize> =
                    (0..p.chains.len()).filter(|&c| usable(sd, pd, &p.chains[c])).collect();
                // A chain without vias only as the target of a link of one
                // with vias.
                let linked = |c: usize| {
                    with_vias.iter().any(|&from| {
                        let chain = &p.chains[from];
                        from != c
                            && chain.links.iter().any(|l| {
                                l.via < chain.vias.len() && l.chain == p.chains[c].name
                            })
                    })
                };
                (0..p.chains.len())
                    .filter(|&c| {
                        let chain = &p.chains[c];
                        with_vias.contains(&c)
                            || (chain.vias.is_empty() && chain.stages.len() == 1 && linked(c))
                    })
                    .collect()
            })
            .collect();
        Chains { sd, regions: region_index(sd), used }
    }

    /// Whether the chain at `chain` of `pd` splits the PD.
    pub fn is_used(&self, pd: usize, chain: usize) -> bool {
        self.used.get(pd).is_some_and(|used| used.contains(&chain))
    }

    /// The used chains of `pd`, with their indices.
    fn chains(&self, pd: usize) -> impl Iterator<Item = (usize, &'a Chain)> + '_ {
        let chains = self.sd.protection_domains.get(pd).map_or(&[][..], |p| p.chains.as_slice());
        self.used.get(pd).into_iter().flatten().map(move |&c| (c, &chains[c]))
    }

    fn split(&self, pd: usize) -> bool {
        self.used.get(pd).is_some_and(|used| !used.is_empty())
    }

    /// The used chain of `pd` that `link` (of the used chain `from`) leads
    /// to: the first of that name, not `from` itself.
    fn link_target(&self, pd: usize, from: usize, link: &ChainLink) -> Option<usize> {
        let chain = self.sd.protection_domains.get(pd)?.chains.get(from)?;
        if link.via >= chain.vias.len() {
            return None;
        }
        let (target, _) = self.chains(pd).find(|(_, c)| c.name == link.chain)?;
        (target != from).then_some(target)
    }

    /// The links of `pd`'s used chains that lead to another used chain:
    /// (the stage just below the link's via, the first stage of the chain
    /// it leads to, where that chain's answers come from, the link).
    ///
    /// A redirected request enters the linked chain at its first stage;
    /// its answer comes up from below the linked chain's first via (its
    /// second stage), through which every answer of that chain passes:
    /// not from the first stage, where the linked disk's own clients'
    /// requests enter on their way down, which no answer carries. (A
    /// linked chain without vias has one stage, for both.)
    pub fn links(&self, pd: usize) -> Vec<(Node, Node, Node, &'a ChainLink)> {
        let mut out = Vec::new();
        for (chain, c) in self.chains(pd) {
            for link in &c.links {
                let Some(target) = self.link_target(pd, chain, link) else { continue };
                let below = Node::Stage { pd, chain, stage: link.via + 1 };
                let answers = match self.sd.protection_domains[pd].chains[target].vias.is_empty() {
                    true => 0,
                    false => 1,
                };
                out.push((below, Node::Stage { pd, chain: target, stage: 0 }, Node::Stage { pd, chain: target, stage: answers }, link));
            }
        }
        out
    }

    /// The used chains of `pd` from which links lead, directly or on
    /// through other chains, to its chain `to` (not `to` itself).
    fn upstream(&self, pd: usize, to: usize) -> Vec<usize> {
        let links: Vec<(usize, usize)> = self
            .chains(pd)
            .flat_map(|(chain, c)| {
                c.links.iter().filter_map(move |l| Some((chain, self.link_target(pd, chain, l)?)))
            })
            .collect();
        let mut found = vec![to];
        let mut k = 0;
        while let Some(&at) = found.get(k) {
            for &(from, target) in &links {
                if target == at && !found.contains(&from) {
                    found.push(from);
                }
            }
            k += 1;
        }
        found.remove(0);
        found
    }

    /// The stage nodes of `pd`: by chain, then by stage.
    pub fn stages(&self, pd: usize) -> Vec<Node> {
        self.chains(pd)
            .flat_map(|(chain, c)| {
                (0..c.stages.len()).map(move |stage| Node::Stage { pd, chain, stage })
            })
            .collect()
    }

    /// Every node of `pd`: its own, then its stages.
    pub fn nodes(&self, pd: usize) -> Vec<Node> {
        let mut nodes = vec![Node::Pd(pd)];
        nodes.extend(self.stages(pd));
        nodes
    }

    fn region(&self, name: &str) -> Option<usize> {
        self.regions.get(name).copied()
    }

    /// The stages of `pd` that name `region`.
    fn naming_region(&self, pd: usize, region: usize) -> Vec<Node> {
        let mut out = Vec::new();
        for (chain, c) in self.chains(pd) {
            for (stage, s) in c.stages.iter().enumerate() {
                if s.regions.iter().any(|r| self.region(&r.mr) == Some(region)) {
                    out.push(Node::Stage { pd, chain, stage });
                }
            }
        }
        out
    }

    /// The stages of `pd` that name its channel id `id`.
    fn naming_channel(&self, pd: usize, id: u8) -> Vec<Node> {
        let mut out = Vec::new();
        for (chain, c) in self.chains(pd) {
            for (stage, s) in c.stages.iter().enumerate() {
                if s.channels.iter().any(|ch| ch.id == id) {
                    out.push(Node::Stage { pd, chain, stage });
                }
            }
        }
        out
    }

    /// The vias of `pd`'s chains that `matches` picks, as (chain, place):
    /// the via at `place` sits between stages `place` and `place + 1`.
    fn vias(&self, pd: usize, matches: impl Fn(&Via) -> bool) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (chain, c) in self.chains(pd) {
            for (place, via) in c.vias.iter().enumerate() {
                if matches(via) {
                    out.push((chain, place));
                }
            }
        }
        out
    }

    /// The stages around each of those vias.
    fn around(pd: usize, vias: &[(usize, usize)]) -> Vec<Node> {
        let mut out = Vec::new();
        for &(chain, place) in vias {
            for stage in [place, place + 1] {
                push_new(&mut out, Node::Stage { pd, chain, stage });
            }
        }
        out
    }

    /// Where `pd`'s map of `region` attaches (empty: nowhere).
    pub fn map_nodes(&self, pd: usize, region: usize) -> Vec<Node> {
        if !self.split(pd) {
            return vec![Node::Pd(pd)];
        }
        let mut nodes = self.naming_region(pd, region);
        let calls =
            self.vias(pd, |via| via.mr.as_deref().and_then(|m| self.region(m)) == Some(region));
        if !calls.is_empty() {
            if !self.private_call_page(pd, region, &calls) {
                for node in Chains::around(pd, &calls) {
                    push_new(&mut nodes, node);
                }
            }
            return nodes;
        }
        if nodes.is_empty() {
            nodes.push(Node::Pd(pd));
        }
        nodes
    }

    /// Whether `region`, the call page of exactly the one via in `calls`,
    /// is only the business of `pd` and that via's PD.
    fn private_call_page(&self, pd: usize, region: usize, calls: &[(usize, usize)]) -> bool {
        let sd = self.sd;
        let [(chain, place)] = calls else { return false };
        let via = sd.protection_domains[pd].chains[*chain].vias[*place].pd;
        let is = |name: &str| self.region(name) == Some(region);
        let mapped_by_others = sd
            .protection_domains
            .iter()
            .enumerate()
            .any(|(p, d)| p != pd && p != via && d.maps.iter().any(|m| is(&m.mr)));
        let claimed = sd.devices.iter().any(|d| d.regions.iter().any(|r| is(&r.mr)));
        let lent = sd.channels.iter().any(|ch| ch.lends.iter().any(|l| is(&l.mr)));
        !(mapped_by_others || claimed || lent)
    }

    /// Where the channel end `end` attaches in its PD; `other` is the
    /// channel's other end.
    pub fn end_nodes(&self, end: &ChannelEnd, other: &ChannelEnd) -> Vec<Node> {
        let pd = end.pd;
        if !self.split(pd) {
            return vec![Node::Pd(pd)];
        }
        let mut nodes = self.naming_channel(pd, end.id);
        let vias = self.vias(pd, |via| via.channel == end.id && via.pd == other.pd);
        for node in Chains::around(pd, &vias) {
            push_new(&mut nodes, node);
        }
        if nodes.is_empty() {
            nodes.push(Node::Pd(pd));
        }
        nodes
    }

    /// Where `pd`'s side of its parent/child link with `other` attaches.
    pub fn link_nodes(&self, pd: usize, other: usize) -> Vec<Node> {
        let vias = self.vias(pd, |via| via.pd == other);
        let nodes = Chains::around(pd, &vias);
        if nodes.is_empty() {
            vec![Node::Pd(pd)]
        } else {
            nodes
        }
    }

    /// Where a lend of `region` attaches in its callee, the PD of `end`
    /// (`caller` the other end): as a map of the region would, and as the
    /// callee's channel end does.
    pub fn lend_nodes(&self, end: &ChannelEnd, caller: &ChannelEnd, region: usize) -> Vec<Node> {
        if !self.split(end.pd) {
            return vec![Node::Pd(end.pd)];
        }
        let mut nodes = self.naming_region(end.pd, region);
        for node in self.end_nodes(end, caller) {
            push_new(&mut nodes, node);
        }
        nodes
    }

    /// If the caller `pd` lends on a via's channel (its end's id `id`, the
    /// callee `callee`): the stages where a read lend of `region` enters
    /// the chain, per via: the stages of that chain that name the region;
    /// else those of the chains that link to it (directly or on through
    /// others) that name it, as a request a filter redirects into the
    /// chain carries the data it had there; else the stage just above the
    /// via. Empty if it is no via's channel.
    pub fn lend_entry(&self, pd: usize, id: u8, callee: usize, region: usize) -> Vec<Node> {
        let mut nodes = Vec::new();
        for (chain, place) in self.vias(pd, |via| via.channel == id && via.pd == callee) {
            let mut entry = self.naming_in(pd, chain, region);
            if entry.is_empty() {
                for from in self.upstream(pd, chain) {
                    entry.extend(self.naming_in(pd, from, region));
                }
            }
            if entry.is_empty() {
                entry.push(Node::Stage { pd, chain, stage: place });
            }
            for node in entry {
                push_new(&mut nodes, node);
            }
        }
        nodes
    }

    /// The stages of chain `chain` of `pd` that name `region`.
    fn naming_in(&self, pd: usize, chain: usize, region: usize) -> Vec<Node> {
        let stages = &self.sd.protection_domains[pd].chains[chain].stages;
        (0..stages.len())
            .filter(|&s| stages[s].regions.iter().any(|r| self.region(&r.mr) == Some(region)))
            .map(|stage| Node::Stage { pd, chain, stage })
            .collect()
    }
}

/// Who enters `chain` of `pd` where: for each stage that has a via below
/// it (every stage but the last, where what passed the chain leaves), the
/// PDs at the other end of the channels the stage names, other than the
/// chain's via PDs and `pd` itself, as (stage, PD), by stage then in the
/// order the stage names the channels. For the filter server's chain of a
/// disk these are the disk's clients: at stage 0 those at the top, at
/// stage p those attached at the filter of via p (below the vias above).
pub(crate) fn entrants(sd: &SystemDescription, pd: usize, chain: &Chain) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (stage, s) in chain.stages.iter().enumerate().take(chain.vias.len()) {
        for ch in &s.channels {
            for (_, other) in sd.channels_of(pd).filter(|(me, _)| me.id == ch.id) {
                let via = chain.vias.iter().any(|v| v.pd == other.pd);
                if !via && other.pd != pd && !out.contains(&(stage, other.pd)) {
                    out.push((stage, other.pd));
                }
            }
        }
    }
    out
}

fn push_new(nodes: &mut Vec<Node>, node: Node) {
    if !nodes.contains(&node) {
        nodes.push(node);
    }
}

/// Whether `chain` of `pd` can split it as a chain with vias: one stage
/// more than vias, at least one via, and each via's channel (by `pd`'s id)
/// leads to another existing PD, the via's. (A chain without vias is used
/// only as a link's target, see [`Chains::new`].)
fn usable(sd: &SystemDescription, pd: usize, chain: &Chain) -> bool {
    let shape = !chain.vias.is_empty() && chain.stages.len() == chain.vias.len() + 1;
    shape
        && chain.vias.iter().all(|via| {
            via.pd != pd
                && via.pd < sd.protection_domains.len()
                && sd.channels_of(pd).any(|(me, other)| me.id == via.channel && other.pd == via.pd)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str = r#"<system>
<memory_region name="in" size="0x1000"/>
<memory_region name="out" size="0x1000"/>
<memory_region name="calls" size="0x1000"/>
<memory_region name="other" size="0x1000"/>
<protection_domain name="s" priority="1"><program_image path="s"/>
    <map mr="in" vaddr="0x1000000"/>
    <map mr="out" vaddr="0x2000000"/>
    <map mr="calls" vaddr="0x3000000"/>
    <map mr="other" vaddr="0x4000000"/>
    <chain name="c">
        <stage><region mr="in"/><channel id="0"/></stage>
        <via pd="f" channel="1" mr="calls"/>
        <stage><region mr="out"/></stage>
    </chain>
</protection_domain>
<protection_domain name="f" priority="2"><program_image path="f"/>
    <map mr="calls" vaddr="0x1000000"/>
</protection_domain>
<protection_domain name="x" priority="0"><program_image path="x"/></protection_domain>
<channel><end pd="x" id="0"/><end pd="s" id="0"/></channel>
<channel><end pd="s" id="1" pp="true"/><end pd="f" id="0"/></channel>
<channel><end pd="s" id="2"/><end pd="x" id="1"/></channel>
</system>"#;

    fn stage(stage: usize) -> Node {
        Node::Stage { pd: 0, chain: 0, stage }
    }

    #[test]
    fn rights_attach_to_the_stages_that_name_them_and_the_rest_to_the_pd() {
        let sd = sdf::read("t.xml", SYSTEM).unwrap();
        let chains = Chains::new(&sd);
        assert_eq!(chains.nodes(0), [Node::Pd(0), stage(0), stage(1)]);
        assert_eq!(chains.map_nodes(0, 0), [stage(0)]);
        assert_eq!(chains.map_nodes(0, 1), [stage(1)]);
        assert_eq!(chains.map_nodes(0, 2), [], "the private call page is the call itself");
        assert_eq!(chains.map_nodes(0, 3), [Node::Pd(0)]);
        let end = |ch: usize, i: usize| {
            let [a, b] = &sd.channels[ch].ends;
            if i == 0 {
                chains.end_nodes(a, b)
            } else {
                chains.end_nodes(b, a)
            }
        };
        assert_eq!(end(0, 1), [stage(0)]);
        assert_eq!(end(1, 0), [stage(0), stage(1)], "the via's channel");
        assert_eq!(end(2, 0), [Node::Pd(0)]);
        assert_eq!(end(1, 1), [Node::Pd(1)], "f is not split");
        assert_eq!(chains.lend_entry(0, 1, 1, 1), [stage(1)], "named in the lower stage");
        assert_eq!(chains.lend_entry(0, 1, 1, 3), [stage(0)], "unnamed: just above the via");
        assert_eq!(chains.lend_entry(0, 2, 2, 3), [], "no via's channel");
    }

    #[test]
    fn a_call_page_someone_else_maps_attaches_around_its_via() {
        let xml = SYSTEM.replace(
            r#"<program_image path="x"/>"#,
            r#"<program_image path="x"/><map mr="calls" vaddr="0x1000000" perms="r"/>"#,
        );
        let sd = sdf::read("t.xml", &xml).unwrap();
        assert_eq!(Chains::new(&sd).map_nodes(0, 2), [stage(0), stage(1)]);
    }

    #[test]
    fn a_chain_whose_via_leads_nowhere_splits_nothing() {
        let mut sd = sdf::read("t.xml", SYSTEM).unwrap();
        sd.protection_domains[0].chains[0].vias[0].pd = 2;
        let chains = Chains::new(&sd);
        assert!(!chains.is_used(0, 0));
        assert_eq!(chains.nodes(0), [Node::Pd(0)]);
        assert_eq!(chains.map_nodes(0, 0), [Node::Pd(0)]);
        assert_eq!(chains.map_nodes(0, 2), [Node::Pd(0)]);
        sd.protection_domains[0].chains[0].vias[0].pd = 1;
        sd.protection_domains[0].chains[0].stages.pop();
        assert_eq!(Chains::new(&sd).nodes(0), [Node::Pd(0)]);
    }
}
