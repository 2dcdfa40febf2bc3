//! Lends: the regions a PPC on a channel may lend the callee (`<lend>` in
//! a `<channel>`, the spec's `LendDesc`s). The kernel lets the callee copy
//! from and to lent memory while the call lasts, by physical address, with
//! the lend's rights; no table shows it. So each channel slot's lends must
//! be exactly the declared ones, in order: the region's physical address,
//! its size, `GRANT_READ` plus `GRANT_WRITE` for `perms="rw"`; no slot
//! lends what its channel does not declare; every entry of the lend array
//! belongs to some slot; and what a call may lend lies in RAM and belongs
//! to no one else (it joins the frame-ownership check as the region's
//! frames).
//!
//! Where a region's frames come from: its `phys_addr`, or where the PDs
//! that map it put it (the frames the walk found). A region without
//! `phys_addr` that no PD maps has no address the checker can derive from
//! the description; its first lend (in PD, then channel order) places it,
//! and every other lend of it (and any `setvar region_paddr` of it) must
//! agree. Such a placement is still checked: page-aligned, in RAM, and
//! shared with nothing else.

use crate::finding::{lend_rights, Finding};
use crate::frames::FrameUses;
use crate::records::le_bytes;
use bootspec::platform::{RAM_BASE, RAM_SIZE};
use bootspec::{LendDesc, Spec, CHANNEL_PD, RIGHT_PPC};
use sdf::SystemDescription;
use std::collections::BTreeMap;

/// A declared lend: the region's index (if it exists) and the `<lend>`.
struct Declared<'a> {
    region: Option<usize>,
    lend: &'a sdf::Lend,
}

/// The lends the description gives each channel slot: the caller's end of
/// a PPC channel (the end with `pp="true"`) carries its channel's lends.
fn declared(sd: &SystemDescription) -> BTreeMap<(usize, usize), Vec<Declared<'_>>> {
    let mut out: BTreeMap<(usize, usize), Vec<Declared>> = BTreeMap::new();
    for ch in &sd.channels {
        if ch.lends.is_empty() {
            continue;
        }
        // A validated description has exactly one caller; without one,
        // nothing may lend and every lend found is extra.
        let Some((caller, _)) = ch.ppc_caller_callee() else { continue };
        let list = out.entry((caller.pd, caller.id as usize)).or_default();
        for lend in &ch.lends {
            list.push(Declared { region: sd.memory_regions.iter().position(|mr| mr.name == lend.mr), lend });
        }
    }
    out
}

fn declared_rights(lend: &sdf::Lend) -> u8 {
    abi::GRANT_READ | if lend.perms.write { abi::GRANT_WRITE } else { 0 }
}

/// Where a region's frames are, and why the checker thinks so.
struct Base {
    paddr: u64,
    why: String,
}

pub(crate) fn check(
    sd: &SystemDescription,
    spec: &Spec,
    bases: &mut BTreeMap<usize, u64>,
    uses: &mut FrameUses,
    findings: &mut Vec<Finding>,
) {
    let declared = declared(sd);
    let mut known: BTreeMap<usize, Base> = BTreeMap::new();
    for (r, &paddr) in bases.iter() {
        let fixed = sd.memory_regions.get(*r).is_some_and(|mr| mr.phys_addr.is_some());
        let why = if fixed { "its phys_addr" } else { "where the PDs that map it have it" };
        known.insert(*r, Base { paddr, why: why.into() });
    }
    let ram = RAM_BASE..RAM_BASE + RAM_SIZE;
    let mut used = vec![false; spec.lends.len()];

    for (index, rec) in spec.pds.iter().enumerate() {
        let decl = sd.protection_domains.get(index);
        let pd = decl.map(|d| d.name.clone()).unwrap_or_else(|| rec.name().to_string());
        for (id, slot) in rec.channels.iter().enumerate() {
            let first = slot.lend_first as usize;
            let range = first..first + slot.lend_count as usize;
            let Some(found) = spec.lends.get(range.clone()) else {
                // Spec::parse refuses this; kept for a spec read otherwise.
                findings.push(Finding::Spec(format!(
                    "pd '{pd}' channel {id} lends entries {}..{} of {} in the lend array",
                    range.start,
                    range.end,
                    spec.lends.len()
                )));
                continue;
            };
            used[range].iter_mut().for_each(|u| *u = true);
            if decl.is_none() {
                continue; // an undeclared PD is reported already
            }
            let want: &[Declared] = declared.get(&(index, id)).map(Vec::as_slice).unwrap_or_default();
            if found.len() != want.len() {
                findings.push(Finding::LendCount {
                    pd: pd.clone(),
                    channel: id,
                    found: found.len(),
                    declared: want.iter().map(|d| format!("'{}' {}", d.lend.mr, d.lend.perms)).collect(),
                });
            }
            // Only a PD channel with the PPC right lends anything.
            let live = slot.kind == CHANNEL_PD && slot.rights & RIGHT_PPC != 0;
            for (k, l) in found.iter().enumerate() {
                let d = want.get(k);
                if let Some(d) = d {
                    compare(sd, &pd, id, k, l, d, &mut known, findings);
                }
                if !live {
                    continue;
                }
                let Some(memory) = l.paddr.checked_add(l.size).map(|end| l.paddr..end) else {
                    let region = d.map(|d| d.lend.mr.clone());
                    findings.push(Finding::LendOutsideRam { pd: pd.clone(), channel: id, index: k, region, memory: l.paddr..u64::MAX });
                    continue;
                };
                if !(ram.start <= memory.start && memory.end <= ram.end) {
                    let region = d.map(|d| d.lend.mr.clone());
                    findings.push(Finding::LendOutsideRam { pd: pd.clone(), channel: id, index: k, region, memory: memory.clone() });
                }
                match d {
                    Some(Declared { region: Some(r), lend }) => {
                        let what = format!("region '{}' (lent by pd '{pd}' on channel {id})", lend.mr);
                        uses.add_region(*r, memory, what);
                    }
                    _ => uses.reserve(memory, format!("lend {k} of pd '{pd}' channel {id} (undeclared)")),
                }
            }
        }
    }

    for (index, (l, used)) in spec.lends.iter().zip(&used).enumerate() {
        if !used {
            let memory = l.paddr..l.paddr.saturating_add(l.size);
            findings.push(Finding::OrphanLend { index, memory, rights: l.rights });
        }
        let reserved = le_bytes(&l._reserved);
        if reserved != 0 {
            findings.push(Finding::Reserved { pd: None, record: format!("lend {index}"), field: "_reserved", value: reserved });
        }
    }

    // What the lends placed, for the setvar check.
    for (r, base) in known {
        bases.entry(r).or_insert(base.paddr);
    }
}

/// One found lend against its declaration: the region's address, its
/// size, the rights.
#[allow(clippy::too_many_arguments)]
fn compare(
    sd: &SystemDescription,
    pd: &str,
    channel: usize,
    index: usize,
    found: &LendDesc,
    want: &Declared,
    known: &mut BTreeMap<usize, Base>,
    findings: &mut Vec<Finding>,
) {
    let differs = |field, found: String, declared: String| Finding::Lend {
        pd: pd.into(),
        channel,
        index,
        region: want.lend.mr.clone(),
        field,
        found,
        declared,
    };
    if let Some(r) = want.region {
        let region = &sd.memory_regions[r];
        match known.get(&r) {
            Some(base) if base.paddr != found.paddr => findings.push(differs(
                "paddr",
                format!("{:#x}", found.paddr),
                format!("{:#x} ({})", base.paddr, base.why),
            )),
            Some(_) => {}
            None => {
                // Mapped nowhere, no phys_addr: this lend places it.
                if region.page_size == 0 || found.paddr % region.page_size != 0 {
                    findings.push(differs(
                        "paddr",
                        format!("{:#x}", found.paddr),
                        format!("a multiple of its page size {:#x}", region.page_size),
                    ));
                }
                let why = format!("where lend {index} of pd '{pd}' channel {channel} puts it");
                known.insert(r, Base { paddr: found.paddr, why });
            }
        }
        if found.size != region.size {
            findings.push(differs("size", format!("{:#x}", found.size), format!("{:#x}", region.size)));
        }
    }
    let rights = declared_rights(want.lend);
    if found.rights != rights {
        findings.push(differs("rights", lend_rights(found.rights), lend_rights(rights)));
    }
}
