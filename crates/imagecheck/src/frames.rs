//! Physical frames across the whole image: a region's frames are the same
//! in every PD that maps it; private frames (program segments, stacks,
//! IPC buffers) belong to one PD; nothing a PD maps is a page table, the
//! boot spec, the kernel or a pristine copy kept for restarts; restore
//! operations touch only the restarted PD's own writable memory; patched
//! variables hold the declared addresses.

use crate::elf::Elf;
use crate::expect::{Expected, Owner, IPC_BUFFER_WHAT};
use crate::finding::{Finding, FrameUser, Hex};
use crate::image::PhysMem;
use crate::space::Piece;
use crate::walk::Leaf;
use bootspec::platform::{RAM_BASE, RAM_SIZE};
use bootspec::{RestoreOp, RESTORE_COPY, RESTORE_ZERO};
use sdf::{SetVarValue, SystemDescription};
use std::collections::BTreeMap;
use std::ops::Range;

/// One PD's space as walked and explained.
pub(crate) struct PdSpace<'e> {
    pub index: usize,
    pub name: String,
    pub expected: Vec<Expected>,
    pub pieces: Vec<Piece>,
    /// Sorted by address.
    pub leaves: Vec<Leaf>,
    pub program: Option<&'e Elf<'e>>,
}

impl PdSpace<'_> {
    /// The pieces with the declared mapping that explains each.
    pub(crate) fn explained(&self) -> impl Iterator<Item = (&Piece, &Expected)> {
        self.pieces.iter().filter_map(|p| Some((p, self.expected.get(p.expected?)?)))
    }

    /// Physical address of `vaddr`, if mapped.
    pub(crate) fn translate(&self, vaddr: u64) -> Option<u64> {
        let i = self.leaves.partition_point(|l| l.vaddr <= vaddr).checked_sub(1)?;
        let leaf = self.leaves.get(i)?;
        leaf.vrange().contains(&vaddr).then(|| leaf.paddr + (vaddr - leaf.vaddr))
    }
}

/// Who is using a range of frames, and as what.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    Reserved(usize),
    Private { pd: usize, mapping: usize },
    Region(usize),
    Extra { pd: usize, vaddr: u64 },
}

struct Use {
    frames: Range<u64>,
    identity: Identity,
    user: FrameUser,
}

/// Collects every use of frames, then reports those that overlap.
#[derive(Default)]
pub(crate) struct FrameUses {
    uses: Vec<Use>,
}

impl FrameUses {
    /// Memory no PD may map: the kernel, the spec, the tables, ...
    pub(crate) fn reserve(&mut self, frames: Range<u64>, what: String) {
        if frames.start < frames.end {
            let identity = Identity::Reserved(self.uses.len());
            self.uses.push(Use { frames, identity, user: FrameUser::Reserved(what) });
        }
    }

    /// Everything the PD maps, explained or not.
    pub(crate) fn add_pd(&mut self, pd: &PdSpace) {
        for p in &pd.pieces {
            let (identity, what) = match p.expected.and_then(|i| Some((i, pd.expected.get(i)?))) {
                Some((i, e)) => match e.owner {
                    Owner::Private => (Identity::Private { pd: pd.index, mapping: i }, e.what.clone()),
                    Owner::Region(r) => (Identity::Region(r), e.what.clone()),
                },
                None => (Identity::Extra { pd: pd.index, vaddr: p.vrange.start }, "extra mapping".to_string()),
            };
            self.uses.push(Use {
                frames: p.prange(),
                identity,
                user: FrameUser::Mapping { pd: pd.name.clone(), what, vaddr: p.vrange.start },
            });
        }
    }

    /// The IPC buffer frame the spec names: the kernel copies messages to
    /// it by physical address, mapped or not.
    pub(crate) fn add_ipc_buffer(&mut self, pd: &PdSpace, paddr: u64) {
        let Some(mapping) = pd.expected.iter().position(|e| e.what == IPC_BUFFER_WHAT) else { return };
        self.uses.push(Use {
            frames: paddr..paddr.saturating_add(crate::walk::PAGE),
            identity: Identity::Private { pd: pd.index, mapping },
            user: FrameUser::Mapping { pd: pd.name.clone(), what: "IPC buffer in the spec".into(), vaddr: abi::layout::IPC_BUFFER },
        });
    }

    /// Frames a region occupies that no mapping shows (its physical
    /// address handed to a PD by `setvar`, or lent on a channel).
    pub(crate) fn add_region(&mut self, region: usize, frames: Range<u64>, what: String) {
        if frames.start < frames.end {
            self.uses.push(Use { frames, identity: Identity::Region(region), user: FrameUser::Reserved(what) });
        }
    }

    /// What uses the frame at `paddr`, to name it in a finding: the first
    /// use recorded (memory no PD may map is recorded first).
    pub(crate) fn owner(&self, paddr: u64) -> Option<String> {
        self.uses.iter().find(|u| u.frames.contains(&paddr)).map(|u| match &u.user {
            FrameUser::Mapping { pd, what, vaddr } => format!("pd '{pd}' {what} at {:#x}", vaddr + (paddr - u.frames.start)),
            FrameUser::Reserved(what) => what.clone(),
        })
    }

    /// Report overlapping uses by different owners. One sweep in address
    /// order, comparing each use with the one reaching furthest so far: at
    /// least one report per use that overlaps another, and never more.
    pub(crate) fn report(mut self, findings: &mut Vec<Finding>) {
        self.uses.sort_by_key(|u| u.frames.start); // stable: reserved first on ties
        let mut reach: Option<usize> = None;
        for i in 0..self.uses.len() {
            let Some(r) = reach else {
                reach = Some(i);
                continue;
            };
            let (far, this) = (&self.uses[r], &self.uses[i]);
            if this.frames.start < far.frames.end && this.identity != far.identity {
                let overlap = this.frames.start..this.frames.end.min(far.frames.end);
                let user = |u: &Use, at: u64| match &u.user {
                    FrameUser::Mapping { pd, what, vaddr } => FrameUser::Mapping {
                        pd: pd.clone(),
                        what: what.clone(),
                        vaddr: vaddr + (at - u.frames.start),
                    },
                    other => other.clone(),
                };
                findings.push(Finding::SharedFrames {
                    a: user(far, overlap.start),
                    b: user(this, overlap.start),
                    frames: overlap,
                });
            }
            if this.frames.end > far.frames.end {
                reach = Some(i);
            }
        }
    }
}

/// Region -> offset start -> (offset end, frame at start, PD and virtual
/// address of the first mapping of those offsets).
pub(crate) type FirstMappings = BTreeMap<usize, BTreeMap<u64, (u64, u64, String, u64)>>;

/// Every PD mapping a region without a fixed `phys_addr` maps the same
/// frames at the same offset. Returns where each region starts, where that
/// is known, and the first mapping of each part of each region.
pub(crate) fn check_regions(sd: &SystemDescription, pds: &[PdSpace], findings: &mut Vec<Finding>) -> (BTreeMap<usize, u64>, FirstMappings) {
    let mut seen: FirstMappings = BTreeMap::new();
    for pd in pds {
        for (p, e) in pd.explained() {
            let Owner::Region(r) = e.owner else { continue };
            if e.fixed.is_some() {
                continue; // checked against phys_addr already
            }
            let offsets = (p.vrange.start - e.vrange.start)..(p.vrange.end - e.vrange.start);
            let known = seen.entry(r).or_default();
            let mut uncovered = vec![offsets.clone()];
            for (&start, (end, paddr, by, vaddr)) in known.range(..offsets.end).rev() {
                if *end <= offsets.start {
                    break;
                }
                let overlap = start.max(offsets.start)..(*end).min(offsets.end);
                let found = p.paddr + (overlap.start - offsets.start);
                let expected = paddr + (overlap.start - start);
                if found != expected {
                    let region = sd.memory_regions.get(r).map(|m| m.name.clone()).unwrap_or_default();
                    findings.push(Finding::RegionFrames {
                        region,
                        first: (by.clone(), vaddr + (overlap.start - start), expected),
                        second: (pd.name.clone(), e.vrange.start + overlap.start, found),
                        offsets: overlap.clone(),
                    });
                }
                uncovered = uncovered.into_iter().flat_map(|u| subtract(u, &overlap)).collect();
            }
            for u in uncovered {
                let at = u.start - offsets.start;
                known.insert(u.start, (u.end, p.paddr + at, pd.name.clone(), p.vrange.start + at));
            }
        }
    }
    let mut bases = BTreeMap::new();
    for (r, region) in sd.memory_regions.iter().enumerate() {
        if let Some(p) = region.phys_addr {
            bases.insert(r, p);
        } else if let Some((&start, &(_, paddr, _, _))) = seen.get(&r).and_then(|k| k.iter().next()) {
            bases.insert(r, paddr.wrapping_sub(start));
        }
    }
    (bases, seen)
}

/// A region handed out by physical address (lent on a channel, or given
/// to a PD by `setvar region_paddr`) is one run of frames from that
/// address: whoever receives the address reaches `address + offset` for
/// each offset, so the PDs that map it must have those frames.
pub(crate) fn check_region_runs(sd: &SystemDescription, firsts: &FirstMappings, bases: &BTreeMap<usize, u64>, findings: &mut Vec<Finding>) {
    let named = |name: &str| {
        sd.channels.iter().any(|c| c.lends.iter().any(|l| l.mr == name))
            || sd.protection_domains.iter().any(|pd| {
                pd.setvars.iter().any(|sv| matches!(&sv.value, SetVarValue::RegionPaddr(r) if r == name))
            })
    };
    for (&r, parts) in firsts {
        let Some(region) = sd.memory_regions.get(r) else { continue };
        let Some(&base) = bases.get(&r) else { continue };
        if !named(&region.name) {
            continue;
        }
        for (&start, (end, paddr, pd, vaddr)) in parts {
            let expected = base.wrapping_add(start);
            if *paddr != expected {
                findings.push(Finding::RegionRun {
                    region: region.name.clone(),
                    offsets: start..*end,
                    pd: pd.clone(),
                    vaddr: *vaddr,
                    found: *paddr,
                    expected,
                });
            }
        }
    }
}

fn subtract(r: Range<u64>, cut: &Range<u64>) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    if r.start < cut.start {
        out.push(r.start..cut.start.min(r.end));
    }
    if cut.end < r.end {
        out.push(cut.end.max(r.start)..r.end);
    }
    out
}

/// Largest restore copy whose bytes are compared with the image.
const MAX_COMPARED_COPY: u64 = 64 << 20;

/// A PD's restore operations write only its own private writable frames
/// and copy from memory the image holds and no PD maps; each op writes the
/// initial contents (a copy holds them, zeroed memory starts zero); and
/// (for a PD with a parent, which can be restarted) every private writable
/// frame is reset.
pub(crate) fn check_restore(
    pd: &PdSpace,
    restartable: bool,
    ops: &[RestoreOp],
    mem: &PhysMem,
    uses: &mut FrameUses,
    findings: &mut Vec<Finding>,
) {
    let own: Vec<(&Piece, &Expected)> = pd.explained().filter(|(_, e)| e.private_writable()).collect();
    let mut own_frames: Vec<Range<u64>> = own.iter().map(|(p, _)| p.prange()).collect();
    own_frames.sort_by_key(|r| r.start);
    let mut reset: Vec<Range<u64>> = Vec::new();
    let problem = |index, problem| Finding::Restore { pd: pd.name.clone(), index, problem };
    for (index, op) in ops.iter().enumerate() {
        let Some(dst) = op.dst_paddr.checked_add(op.len).map(|end| op.dst_paddr..end) else {
            findings.push(problem(index, format!("at {:#x} runs past the end of memory", op.dst_paddr)));
            continue;
        };
        if !covered_by(&dst, &own_frames) {
            findings.push(problem(index, format!("writes {}, which is not this PD's own writable memory", Hex(&dst))));
        }
        match op.kind {
            RESTORE_ZERO => {
                // Zeroing restores the initial contents only where they are
                // zero (a stack, an IPC buffer, `.bss`).
                if op.len <= MAX_COMPARED_COPY {
                    let ram = RAM_BASE..RAM_BASE + RAM_SIZE;
                    if let Ok(initial) = mem.read_zeroed(dst.start, op.len, &ram) {
                        if let Some(i) = initial.iter().position(|&b| b != 0) {
                            findings.push(problem(
                                index,
                                format!(
                                    "zeroes {}, but its initial contents are not zero (first at {:#x})",
                                    Hex(&dst),
                                    dst.start + i as u64
                                ),
                            ));
                        }
                    }
                }
                reset.push(dst)
            }
            RESTORE_COPY => {
                let Some(src) = op.src_paddr.checked_add(op.len).map(|end| op.src_paddr..end) else {
                    findings.push(problem(index, format!("copies from {:#x}, past the end of memory", op.src_paddr)));
                    continue;
                };
                if !mem.holds(&src) {
                    findings.push(problem(index, format!("copies from {}, which the image does not hold", Hex(&src))));
                } else if op.len <= MAX_COMPARED_COPY {
                    if let (Ok(copy), Ok(initial)) = (mem.read_vec(src.start, op.len), mem.read_vec(dst.start, op.len)) {
                        if let Some(i) = copy.iter().zip(&initial).position(|(a, b)| a != b) {
                            findings.push(problem(
                                index,
                                format!(
                                    "copies {} over {}, but the copy differs from the initial contents (first at offset {i:#x})",
                                    Hex(&src),
                                    Hex(&dst)
                                ),
                            ));
                        }
                    }
                }
                uses.reserve(src, format!("the pristine copy for pd '{}'", pd.name));
                reset.push(dst);
            }
            kind => findings.push(problem(index, format!("has unknown kind {kind}"))),
        }
    }
    if restartable {
        reset.sort_by_key(|r| r.start);
        for (p, e) in own {
            if !covered_by(&p.prange(), &reset) {
                findings.push(Finding::NotRestored { pd: pd.name.clone(), vaddr: p.vrange.clone(), what: e.what.clone() });
            }
        }
    }
}

/// Whether the sorted ranges `by` cover all of `r`.
fn covered_by(r: &Range<u64>, by: &[Range<u64>]) -> bool {
    let mut at = r.start;
    for b in by {
        if b.start <= at && at < b.end {
            at = b.end;
        }
        if at >= r.end {
            return true;
        }
    }
    at >= r.end
}

/// Variables the tool patches: `setvar_vaddr` holds the map's address,
/// `setvar region_paddr` the region's physical address. The value is read
/// where the PD sees it, through its own tables.
pub(crate) fn check_setvars(
    sd: &SystemDescription,
    pd: &PdSpace,
    mem: &PhysMem,
    bases: &BTreeMap<usize, u64>,
    uses: &mut FrameUses,
    findings: &mut Vec<Finding>,
) {
    let (Some(decl), Some(program)) = (sd.protection_domains.get(pd.index), pd.program) else { return };
    let problem = |symbol: &str, problem: String| Finding::Setvar { pd: pd.name.clone(), symbol: symbol.into(), problem };
    // `len` bytes at the symbol, as the PD sees them.
    let read_bytes = |symbol: &str, len: usize| -> Result<Vec<u8>, String> {
        let vaddr = *program.symbols.get(symbol).ok_or("is not a symbol of the program image")?;
        (0..len as u64)
            .map(|k| {
                let p = pd.translate(vaddr.wrapping_add(k)).ok_or_else(|| format!("at {vaddr:#x} is not mapped"))?;
                let b = mem.read_vec(p, 1).map_err(|_| format!("at {vaddr:#x} is on frame {p:#x}, which the image does not hold"))?;
                Ok(b.first().copied().unwrap_or(0))
            })
            .collect()
    };
    let read = |symbol: &str| -> Result<u64, String> {
        let bytes = read_bytes(symbol, 8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes.get(..8).unwrap_or(&[0; 8]));
        Ok(u64::from_le_bytes(word))
    };
    for map in &decl.maps {
        let Some(symbol) = &map.setvar_vaddr else { continue };
        match read(symbol) {
            Ok(v) if v == map.vaddr => {}
            Ok(v) => findings.push(problem(symbol, format!("holds {v:#x}, declared {:#x} (setvar_vaddr of region '{}')", map.vaddr, map.mr))),
            Err(e) => findings.push(problem(symbol, e)),
        }
    }
    for sv in &decl.setvars {
        let region_name = match &sv.value {
            SetVarValue::RegionPaddr(name) => name,
            SetVarValue::Bytes(want) => {
                // Bytes are not an address, so they grant nothing; they are
                // still part of what the description declares.
                match read_bytes(&sv.symbol, want.len()) {
                    Ok(found) if &found == want => {}
                    Ok(found) => findings.push(problem(&sv.symbol, format!("{} (setvar bytes)", bytes_differ(&found, want)))),
                    Err(e) => findings.push(problem(&sv.symbol, e)),
                }
                continue;
            }
        };
        let Some(r) = sd.memory_regions.iter().position(|mr| &mr.name == region_name) else { continue };
        let region = &sd.memory_regions[r];
        let value = match read(&sv.symbol) {
            Ok(v) => v,
            Err(e) => {
                findings.push(problem(&sv.symbol, e));
                continue;
            }
        };
        match bases.get(&r) {
            Some(&base) if base != value => findings.push(problem(
                &sv.symbol,
                format!("holds {value:#x}, but region '{}' is at {base:#x}", region.name),
            )),
            _ => {}
        }
        // Whatever the PD was told, it (or its device) will use that memory.
        if let Some(end) = value.checked_add(region.size) {
            uses.add_region(r, value..end, format!("region '{}' (given to pd '{}' by '{}')", region.name, pd.name, sv.symbol));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How `found` differs from `want` (as long): both in full when short;
/// for a longer value (a storage record of kilobytes) how many bytes
/// differ and the first few around the first difference.
fn bytes_differ(found: &[u8], want: &[u8]) -> String {
    const SHORT: usize = 32;
    if want.len() <= SHORT {
        return format!("holds {}, declared {}", hex(found), hex(want));
    }
    let differ = found.iter().zip(want).filter(|(a, b)| a != b).count();
    let first = found.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
    let end = (first + 16).min(want.len());
    format!(
        "holds {differ} of its {} bytes other than declared, the first at byte {first}: {} where {} is declared",
        want.len(),
        hex(&found[first..end]),
        hex(&want[first..end])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_that_differs_is_told_by_its_first_difference_not_in_full() {
        assert_eq!(bytes_differ(&[1, 2], &[1, 3]), "holds 0102, declared 0103");
        let want = vec![0u8; 4400];
        let mut found = want.clone();
        found[1000] = 0xab;
        found[3000] = 1;
        assert_eq!(
            bytes_differ(&found, &want),
            "holds 2 of its 4400 bytes other than declared, the first at byte 1000: ab000000000000000000000000000000 where 00000000000000000000000000000000 is declared"
        );
    }

    #[test]
    fn coverage_follows_adjacent_and_overlapping_ranges() {
        assert!(covered_by(&(2..8), &[0..4, 4..8]));
        assert!(covered_by(&(2..8), &[0..5, 3..9]));
        assert!(!covered_by(&(2..8), &[0..4, 5..8]));
        assert!(!covered_by(&(2..8), &[]));
        assert!(covered_by(&(2..2), &[]));
    }

    fn mapping(pd: &str, vaddr: u64) -> FrameUser {
        FrameUser::Mapping { pd: pd.into(), what: "stack".into(), vaddr }
    }

    #[test]
    fn overlapping_owners_are_reported_once_each_and_sharers_not_at_all() {
        let mut uses = FrameUses::default();
        uses.reserve(0x1000..0x3000, "the boot spec".into());
        let push = |uses: &mut FrameUses, frames, identity, user| uses.uses.push(Use { frames, identity, user });
        // Two PDs sharing a region: fine.
        push(&mut uses, 0x8000..0xa000, Identity::Region(0), mapping("a", 0x10000));
        push(&mut uses, 0x8000..0xa000, Identity::Region(0), mapping("b", 0x20000));
        // A private mapping inside the region, and one over the spec.
        push(&mut uses, 0x9000..0xb000, Identity::Private { pd: 2, mapping: 0 }, mapping("c", 0x30000));
        push(&mut uses, 0x2000..0x3000, Identity::Private { pd: 3, mapping: 0 }, mapping("d", 0x40000));
        let mut findings = Vec::new();
        uses.report(&mut findings);
        let lines: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            lines,
            [
                "frames 0x2000..0x3000 of the boot spec are mapped by pd 'd' (stack at 0x40000)",
                "frames 0x9000..0xa000 are mapped by pd 'a' (stack at 0x11000) and by pd 'c' (stack at 0x30000)",
            ]
        );
    }

    #[test]
    fn subtract_leaves_the_outer_parts() {
        assert_eq!(subtract(0..10, &(3..5)), vec![0..3, 5..10]);
        assert_eq!(subtract(0..10, &(0..10)), Vec::<Range<u64>>::new());
        assert_eq!(subtract(4..10, &(0..6)), vec![6..10]);
    }
}
