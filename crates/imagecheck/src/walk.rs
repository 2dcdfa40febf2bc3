//! Walking translation tables as the MMU would: 4 KiB granule, 48-bit
//! virtual addresses, levels 0 to 3, blocks at levels 1 and 2, pages at
//! level 3 (Arm ARM D8.3). Every valid entry is visited, not just the
//! addresses something expects.
//!
//! A table must lie in the page-table pool the spec names; a table outside
//! it is reported and not followed (whoever owns that memory could rewrite
//! the tables). A table is followed once per tree, which also bounds the
//! work on a corrupt image.

use crate::finding::{Finding, Space};
use crate::image::{Bytes, PhysMem};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

pub(crate) const PAGE: u64 = 0x1000;
/// Where the upper (TTBR1) half starts.
pub(crate) const UPPER_HALF: u64 = 0xffff_0000_0000_0000;

/// Descriptor bits.
mod bits {
    pub const VALID: u64 = 1 << 0;
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    pub const ATTR_SHIFT: u64 = 2;
    pub const AP_SHIFT: u64 = 6;
    pub const SH_SHIFT: u64 = 8;
    pub const AF: u64 = 1 << 10;
    pub const NOT_GLOBAL: u64 = 1 << 11;
    pub const PXN: u64 = 1 << 53;
    pub const UXN: u64 = 1 << 54;
    pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
    /// Hierarchical controls in table descriptors; they only take rights
    /// away.
    pub const PXN_TABLE: u64 = 1 << 59;
    pub const UXN_TABLE: u64 = 1 << 60;
    pub const AP_TABLE_NO_EL0: u64 = 1 << 61;
    pub const AP_TABLE_READ_ONLY: u64 = 1 << 62;
    pub const TABLE_CONTROLS: u64 = PXN_TABLE | UXN_TABLE | AP_TABLE_NO_EL0 | AP_TABLE_READ_ONLY;
    /// The contiguous hint of block and page descriptors.
    pub const CONTIGUOUS: u64 = 1 << 52;
    /// RES0 in block and page descriptors with 48-bit output addresses
    /// and no FEAT_BTI (bit 50 is the guarded-page bit where BTI exists).
    pub const RES0_LEAF: u64 = 0b111 << 48;
    /// RES0 in table descriptors with 48-bit output addresses.
    pub const RES0_TABLE: u64 = 0xf << 48;
    /// Bits of block and page descriptors the MMU ignores here: NS (bit 5,
    /// ignored in Non-secure state), DBM (bit 51, TCR_EL1.HD is clear),
    /// bits 55 to 58 (software use), 59 to 62 (PBHA, not enabled in
    /// TCR_EL1) and 63.
    pub const IGNORED_LEAF: u64 = 1 << 5 | 1 << 51 | 0x1ff << 55;
}

/// Memory type and shareability, from AttrIndx (MAIR_EL1 as the kernel
/// programs it: 0 device nGnRnE, 1 normal write-back, 2 normal
/// non-cacheable) and SH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Memory {
    Device,
    /// Normal write-back, inner shareable: what every cached mapping uses.
    Cached,
    /// Normal write-back with another shareability.
    CachedShareability(u8),
    NormalUncached,
    /// An index MAIR_EL1 leaves unset.
    Attr(u8),
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Memory::Device => f.write_str("device"),
            Memory::Cached => f.write_str("cached"),
            Memory::CachedShareability(sh) => write!(f, "cached with shareability {sh:#04b}"),
            Memory::NormalUncached => f.write_str("normal uncached"),
            Memory::Attr(i) => write!(f, "attribute index {i}"),
        }
    }
}

/// What one EL may do to memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Access {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Access {
    pub(crate) fn any(&self) -> bool {
        self.read || self.write || self.execute
    }
}

impl fmt::Display for Access {
    /// `r`, `rw`, `rx`, ... or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.any() {
            return f.write_str("none");
        }
        for (set, letter) in [(self.read, "r"), (self.write, "w"), (self.execute, "x")] {
            if set {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

/// What a leaf gives EL0, as a declaration would say it: rights and
/// memory type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub access: Access,
    pub memory: Memory,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.access.any() {
            write!(f, "{} {}", self.access, self.memory)
        } else {
            f.write_str("no access")
        }
    }
}

/// A leaf descriptor's attributes (its output address masked out) with
/// the controls of the table descriptors above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attrs {
    desc: u64,
    table_controls: u64,
}

impl Attrs {
    pub(crate) fn new(desc: u64, table_controls: u64) -> Attrs {
        Attrs { desc: desc & !bits::ADDR_MASK, table_controls }
    }

    fn ap(&self) -> u64 {
        (self.desc >> bits::AP_SHIFT) & 0b11
    }

    fn set(&self, bit: u64) -> bool {
        self.desc & bit != 0
    }

    fn table(&self, bit: u64) -> bool {
        self.table_controls & bit != 0
    }

    /// EL0's rights, whatever the access flag says (a conservative view
    /// for checks that must never be violated).
    pub(crate) fn el0(&self) -> Access {
        let data = self.ap() & 0b01 != 0 && !self.table(bits::AP_TABLE_NO_EL0);
        Access {
            read: data,
            write: data && self.ap() & 0b10 == 0 && !self.table(bits::AP_TABLE_READ_ONLY),
            execute: !self.set(bits::UXN) && !self.table(bits::UXN_TABLE),
        }
    }

    /// EL1's rights, whatever the access flag says.
    pub(crate) fn el1(&self) -> Access {
        Access {
            read: true,
            write: self.ap() & 0b10 == 0 && !self.table(bits::AP_TABLE_READ_ONLY),
            execute: !self.set(bits::PXN) && !self.table(bits::PXN_TABLE),
        }
    }

    pub(crate) fn global(&self) -> bool {
        !self.set(bits::NOT_GLOBAL)
    }

    pub(crate) fn memory(&self) -> Memory {
        let sh = ((self.desc >> bits::SH_SHIFT) & 0b11) as u8;
        match (self.desc >> bits::ATTR_SHIFT) & 0b111 {
            0 => Memory::Device,
            1 if sh == 0b11 => Memory::Cached,
            1 => Memory::CachedShareability(sh),
            2 => Memory::NormalUncached,
            i => Memory::Attr(i as u8),
        }
    }

    /// What EL1 can really do, and the memory type: with the access flag
    /// clear, nothing.
    pub(crate) fn el1_grant(&self) -> Grant {
        let access = if self.set(bits::AF) { self.el1() } else { Access::default() };
        Grant { access, memory: self.memory() }
    }

    /// What EL0 can really do: with the access flag clear, the first
    /// access faults and the kernel does not set it, so nothing.
    pub(crate) fn grant(&self) -> Grant {
        let access = if self.set(bits::AF) { self.el0() } else { Access::default() };
        Grant { access, memory: self.memory() }
    }
}

/// A valid block or page descriptor: `size` bytes at `vaddr` translate to
/// `paddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub vaddr: u64,
    pub size: u64,
    pub paddr: u64,
    pub attrs: Attrs,
}

impl Leaf {
    pub(crate) fn vrange(&self) -> Range<u64> {
        self.vaddr..self.vaddr.saturating_add(self.size)
    }
}

/// Walks every tree of one image, remembering which tree uses which table.
pub(crate) struct Walker<'m, 'a> {
    mem: &'m PhysMem<'a>,
    pool: Range<u64>,
    users: BTreeMap<u64, Space>,
}

struct Tree<'s> {
    space: &'s Space,
    seen: BTreeSet<u64>,
    leaves: Vec<Leaf>,
}

impl<'m, 'a> Walker<'m, 'a> {
    pub(crate) fn new(mem: &'m PhysMem<'a>, pool: Range<u64>) -> Self {
        Walker { mem, pool, users: BTreeMap::new() }
    }

    fn in_pool(&self, table: u64) -> bool {
        table % PAGE == 0 && self.pool.start <= table && table.checked_add(PAGE).is_some_and(|end| end <= self.pool.end)
    }

    /// All leaves of the tree rooted at `root`, in address order.
    /// `upper` selects the TTBR1 half.
    pub(crate) fn walk(&mut self, space: &Space, root: u64, upper: bool, findings: &mut Vec<Finding>) -> Vec<Leaf> {
        if !self.in_pool(root) {
            findings.push(Finding::Table {
                space: space.clone(),
                problem: format!(
                    "root table {root:#x} is outside the page-table pool {:#x}..{:#x}",
                    self.pool.start, self.pool.end
                ),
            });
            return Vec::new();
        }
        let mut tree = Tree { space, seen: BTreeSet::new(), leaves: Vec::new() };
        let base = if upper { UPPER_HALF } else { 0 };
        self.table(&mut tree, 0, root, base, 0, findings);
        tree.leaves
    }

    fn table(&mut self, tree: &mut Tree, level: u32, table: u64, vbase: u64, controls: u64, findings: &mut Vec<Finding>) {
        let problem = |problem: String| Finding::Table { space: tree.space.clone(), problem };
        if !tree.seen.insert(table) {
            findings.push(problem(format!("table {table:#x} appears twice in the tree (again for {vbase:#x})")));
            return;
        }
        match self.users.get(&table) {
            Some(other) if other != tree.space => {
                findings.push(problem(format!("table {table:#x} is also used by {other}")));
            }
            Some(_) => {}
            None => {
                self.users.insert(table, tree.space.clone());
            }
        }
        let data = match self.mem.read(table, PAGE) {
            Ok(Bytes::Zero) => return,
            Ok(Bytes::Data(d)) => d,
            Err(_) => {
                findings.push(problem(format!("table {table:#x} is not in the image")));
                return;
            }
        };
        let shift = 39 - 9 * level;
        let mut contiguous = false;
        // Most entries are empty: skip runs of eight zero entries with one
        // comparison, then look at the valid bit (bit 0 of the first,
        // little-endian byte) of each entry.
        let entries = data
            .chunks_exact(64)
            .enumerate()
            .filter(|(_, run)| *run != [0u8; 64].as_slice())
            .flat_map(|(r, run)| run.chunks_exact(8).enumerate().map(move |(k, chunk)| (r * 8 + k, chunk)));
        for (i, chunk) in entries {
            if chunk.first().is_none_or(|b| b & 1 == 0) {
                continue;
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let desc = u64::from_le_bytes(word);
            if desc & bits::VALID == 0 {
                continue;
            }
            let vaddr = vbase | (i as u64) << shift;
            let is_table_or_page = desc & bits::TABLE_OR_PAGE != 0;
            let out = desc & bits::ADDR_MASK;
            // A page (level 3), a block (levels 1 and 2) or a table
            // (levels 0 to 2); anything else is reported below.
            let is_leaf = if level == 3 { is_table_or_page } else { level > 0 && !is_table_or_page };
            let is_table = level < 3 && is_table_or_page;
            let res0 = if is_leaf { bits::RES0_LEAF } else { bits::RES0_TABLE };
            if (is_leaf || is_table) && desc & res0 != 0 {
                findings.push(problem(format!("level-{level} entry for {vaddr:#x} sets reserved bits ({desc:#018x})")));
            }
            contiguous |= is_leaf && desc & bits::CONTIGUOUS != 0;
            match (level, is_table_or_page) {
                (3, true) => tree.leaves.push(Leaf {
                    vaddr,
                    size: PAGE,
                    paddr: out,
                    attrs: Attrs::new(desc, controls),
                }),
                (3, false) => findings.push(problem(format!(
                    "level-3 entry for {vaddr:#x} is a reserved descriptor ({desc:#018x})"
                ))),
                (0, false) => findings.push(problem(format!(
                    "level-0 entry for {vaddr:#x} is a block descriptor, which a 4 KiB granule does not allow ({desc:#018x})"
                ))),
                (_, false) => {
                    let size = 1u64 << shift;
                    if out & (size - 1) != 0 {
                        findings.push(problem(format!(
                            "level-{level} block for {vaddr:#x} has address bits below its size ({desc:#018x})"
                        )));
                    }
                    tree.leaves.push(Leaf {
                        vaddr,
                        size,
                        paddr: out & !(size - 1),
                        attrs: Attrs::new(desc, controls),
                    });
                }
                (_, true) => {
                    if !self.in_pool(out) {
                        findings.push(problem(format!(
                            "the level-{} table for {vaddr:#x} is at {out:#x}, outside the page-table pool",
                            level + 1
                        )));
                        continue;
                    }
                    let controls = controls | (desc & bits::TABLE_CONTROLS);
                    self.table(tree, level + 1, out, vaddr, controls, findings);
                }
            }
        }
        if contiguous {
            check_contiguous(tree.space, level, &data, vbase, findings);
        }
    }
}

/// The contiguous bit tells the MMU it may cache one translation for an
/// aligned group of 16 entries; that is only sound where the group is one
/// aligned run of frames with the same attributes (Arm ARM D8.6.1). One
/// finding per group that holds a contiguous entry and is not such a run.
fn check_contiguous(space: &Space, level: u32, table: &[u8], vbase: u64, findings: &mut Vec<Finding>) {
    let shift = 39 - 9 * level;
    let size = 1u64 << shift;
    let kind = if level == 3 { 0b11 } else { 0b01 };
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(table.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(w)
    };
    for group in 0..512 / 16 {
        let entries: Vec<u64> = (group * 16..group * 16 + 16).map(word).collect();
        if !entries.iter().any(|&d| d & 0b11 == kind && d & bits::CONTIGUOUS != 0) {
            continue;
        }
        let attrs = |d: u64| d & !bits::ADDR_MASK & !bits::CONTIGUOUS & !bits::IGNORED_LEAF;
        let first = entries[0];
        let base = first & bits::ADDR_MASK;
        let sound = base % (16 * size) == 0
            && entries.iter().enumerate().all(|(k, &d)| {
                d & 0b11 == kind && attrs(d) == attrs(first) && d & bits::ADDR_MASK == base + k as u64 * size
            });
        if !sound {
            let start = vbase | ((group * 16) as u64) << shift;
            findings.push(Finding::Table {
                space: space.clone(),
                problem: format!(
                    "a level-{level} entry for {start:#x}..{:#x} has the contiguous bit set, but the 16 entries are not one aligned run of frames with the same attributes",
                    start.wrapping_add(16 * size)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_RW: u64 = 0b01 << 6 | 1 << 2 | 0b11 << 8 | 1 << 10 | 1 << 11 | 1 << 53 | 1 << 54;

    #[test]
    fn user_read_write_page_grants_rw_cached() {
        let a = Attrs::new(USER_RW | 0b11, 0);
        assert_eq!(a.grant().to_string(), "rw cached");
        assert!(!a.global());
        assert!(!a.el1().execute);
    }

    #[test]
    fn table_controls_take_rights_away() {
        let a = Attrs::new(USER_RW | 0b11, bits::AP_TABLE_READ_ONLY);
        assert_eq!(a.grant().to_string(), "r cached");
        let a = Attrs::new(USER_RW | 0b11, bits::AP_TABLE_NO_EL0);
        assert_eq!(a.grant().to_string(), "no access");
    }

    #[test]
    fn clear_access_flag_grants_nothing() {
        let a = Attrs::new((USER_RW & !bits::AF) | 0b11, 0);
        assert_eq!(a.grant().to_string(), "no access");
        assert!(a.el0().write, "conservative view ignores the access flag");
    }

    #[test]
    fn execute_only_at_el0_is_seen() {
        // AP = 00 (EL1 only) with UXN clear: EL0 may still execute.
        let a = Attrs::new(1 << 10 | 1 << 2 | 0b11, 0);
        assert_eq!(a.el0(), Access { read: false, write: false, execute: true });
    }
}
