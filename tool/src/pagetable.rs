//! AArch64 translation tables (4 KiB granule, 48-bit, four levels), built
//! on the host and placed in the image; the kernel only points TTBR0/TTBR1
//! at them.
//!
//! While building, a table descriptor holds the index of the child table;
//! `place` turns indices into physical addresses once the tables' location
//! is known.

use std::fmt;

pub const PAGE: u64 = 0x1000;
pub const BLOCK_2M: u64 = 0x20_0000;
pub const BLOCK_1G: u64 = 0x4000_0000;

/// Descriptor bits (Arm ARM D8.3).
pub mod bits {
    pub const VALID: u64 = 1 << 0;
    /// Set in table and page descriptors, clear in block descriptors.
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// Memory attribute indices into MAIR_EL1 (`kernel/src/arch/boot.rs`).
    pub const ATTR_DEVICE: u64 = 0 << 2;
    pub const ATTR_NORMAL: u64 = 1 << 2;
    pub const ATTR_NORMAL_NC: u64 = 2 << 2;
    pub const ATTR_MASK: u64 = 7 << 2;
    /// Access permissions AP\[2:1\].
    pub const AP_EL1_RW: u64 = 0b00 << 6;
    pub const AP_EL0_RW: u64 = 0b01 << 6;
    pub const AP_EL1_RO: u64 = 0b10 << 6;
    pub const AP_EL0_RO: u64 = 0b11 << 6;
    pub const AP_MASK: u64 = 0b11 << 6;
    pub const SH_INNER: u64 = 0b11 << 8;
    pub const AF: u64 = 1 << 10;
    pub const NOT_GLOBAL: u64 = 1 << 11;
    pub const PXN: u64 = 1 << 53;
    pub const UXN: u64 = 1 << 54;
    pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
}

/// Rights of a mapping as a user of the tables sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Normal, write-back cached.
    Cached,
    /// Device-nGnRnE (uncached; for device windows).
    Device,
}

/// Descriptor attributes of a PD (EL0) mapping. The kernel never executes
/// user memory (PXN); writable memory is never executable.
pub fn user_attrs(r: Rights, mem: Memory) -> u64 {
    assert!(!(r.write && r.execute), "writable memory is never executable");
    let ap = if r.write { bits::AP_EL0_RW } else { bits::AP_EL0_RO };
    let xn = if r.execute { bits::PXN } else { bits::PXN | bits::UXN };
    ap | xn | mem_attrs(mem) | bits::AF | bits::NOT_GLOBAL
}

/// Descriptor attributes of a kernel (EL1-only) mapping. EL0 never executes
/// kernel memory.
pub fn kernel_attrs(write: bool, execute: bool, mem: Memory) -> u64 {
    assert!(!(write && execute), "writable memory is never executable");
    let ap = if write { bits::AP_EL1_RW } else { bits::AP_EL1_RO };
    let xn = if execute { bits::UXN } else { bits::PXN | bits::UXN };
    ap | xn | mem_attrs(mem) | bits::AF
}

fn mem_attrs(mem: Memory) -> u64 {
    match mem {
        Memory::Cached => bits::ATTR_NORMAL | bits::SH_INNER,
        Memory::Device => bits::ATTR_DEVICE,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum MapError {
    /// Something is already mapped there.
    Overlap { vaddr: u64 },
    Misaligned { vaddr: u64, paddr: u64, size: u64 },
    OutOfRange { vaddr: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            MapError::Overlap { vaddr } => write!(f, "address {vaddr:#x} is mapped twice"),
            MapError::Misaligned { vaddr, paddr, size } => {
                write!(f, "mapping of {size:#x} bytes at {vaddr:#x} -> {paddr:#x} is not aligned to its size")
            }
            MapError::OutOfRange { vaddr } => write!(f, "address {vaddr:#x} is outside the address space"),
        }
    }
}

/// Which half of the address space a set of tables translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// TTBR0: addresses below 2^48.
    Lower,
    /// TTBR1: addresses at or above 0xffff_0000_0000_0000.
    Upper,
}

pub struct AddressSpace {
    half: Half,
    /// `tables[0]` is the level-0 table.
    tables: Vec<[u64; 512]>,
    levels: Vec<u8>,
}

impl AddressSpace {
    pub fn new(half: Half) -> Self {
        AddressSpace { half, tables: vec![[0; 512]], levels: vec![0] }
    }

    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// Map `size` bytes at `vaddr` to `paddr` using the largest blocks that
    /// alignment allows (up to `max_block`).
    pub fn map(&mut self, vaddr: u64, paddr: u64, size: u64, attrs: u64, max_block: u64) -> Result<(), MapError> {
        if vaddr % PAGE != 0 || paddr % PAGE != 0 || size % PAGE != 0 {
            return Err(MapError::Misaligned { vaddr, paddr, size });
        }
        let mut off = 0;
        while off < size {
            let (v, p, rest) = (vaddr + off, paddr + off, size - off);
            let step = [BLOCK_1G, BLOCK_2M, PAGE]
                .into_iter()
                .find(|&b| b <= max_block && v % b == 0 && p % b == 0 && rest >= b)
                .unwrap_or(PAGE);
            self.map_one(v, p, step, attrs)?;
            off += step;
        }
        Ok(())
    }

    fn map_one(&mut self, vaddr: u64, paddr: u64, size: u64, attrs: u64) -> Result<(), MapError> {
        let va = self.offset_in_half(vaddr)?;
        let leaf_level = match size {
            BLOCK_1G => 1,
            BLOCK_2M => 2,
            _ => 3,
        };
        let mut table = 0;
        for level in 0..leaf_level {
            let i = index(va, level);
            let e = self.tables[table][i];
            table = if e == 0 {
                let child = self.tables.len();
                self.tables.push([0; 512]);
                self.levels.push(level as u8 + 1);
                self.tables[table][i] = (child as u64) << 12 | bits::VALID | bits::TABLE_OR_PAGE;
                child
            } else if level < 3 && e & bits::TABLE_OR_PAGE != 0 {
                (e >> 12) as usize
            } else {
                // A block already covers this address.
                return Err(MapError::Overlap { vaddr });
            };
        }
        let i = index(va, leaf_level);
        if self.tables[table][i] != 0 {
            return Err(MapError::Overlap { vaddr });
        }
        let kind = if leaf_level == 3 { bits::VALID | bits::TABLE_OR_PAGE } else { bits::VALID };
        self.tables[table][i] = paddr | attrs | kind;
        Ok(())
    }

    fn offset_in_half(&self, vaddr: u64) -> Result<u64, MapError> {
        match self.half {
            Half::Lower if vaddr < 1 << 48 => Ok(vaddr),
            Half::Upper if vaddr >= 0xffff_0000_0000_0000 => Ok(vaddr - 0xffff_0000_0000_0000),
            _ => Err(MapError::OutOfRange { vaddr }),
        }
    }

    /// Serialise with the tables at `base` (physical), level-0 table first.
    pub fn place(&self, base: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.tables.len() * PAGE as usize);
        for (t, table) in self.tables.iter().enumerate() {
            for &e in table.iter() {
                let is_table = self.levels[t] < 3 && e & (bits::VALID | bits::TABLE_OR_PAGE) == 0b11;
                let e = if is_table { base + (e >> 12) * PAGE | (e & 0xfff) } else { e };
                out.extend_from_slice(&e.to_le_bytes());
            }
        }
        out
    }
}

fn index(va: u64, level: usize) -> usize {
    ((va >> (39 - 9 * level)) & 0x1ff) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: Rights = Rights { read: true, write: true, execute: false };
    const RX: Rights = Rights { read: true, write: false, execute: true };

    fn entry(bytes: &[u8], table: usize, i: usize) -> u64 {
        let off = table * 4096 + i * 8;
        u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
    }

    /// Walk placed tables like the MMU does.
    fn walk(bytes: &[u8], base: u64, va: u64) -> Option<(u64, u64)> {
        let mut table = 0usize;
        for level in 0..4 {
            let e = entry(bytes, table, index(va, level));
            if e & 1 == 0 {
                return None;
            }
            let block = level < 3 && e & 2 == 0;
            if level == 3 || block {
                let size = [0, BLOCK_1G, BLOCK_2M, PAGE][level];
                return Some(((e & bits::ADDR_MASK & !(size - 1)) + (va & (size - 1)), e));
            }
            table = (((e & bits::ADDR_MASK) - base) / PAGE) as usize;
        }
        None
    }

    #[test]
    fn pages_translate_to_their_frames_with_their_rights() {
        let mut s = AddressSpace::new(Half::Lower);
        s.map(0x20_0000, 0x4100_0000, 0x3000, user_attrs(RX, Memory::Cached), PAGE).unwrap();
        let placed = s.place(0x4800_0000);
        assert_eq!(s.table_count(), 4);
        let (pa, e) = walk(&placed, 0x4800_0000, 0x20_2abc).unwrap();
        assert_eq!(pa, 0x4100_2abc);
        assert_eq!(e & bits::UXN, 0);
        assert_ne!(e & bits::PXN, 0);
        assert_eq!(e & bits::AP_MASK, bits::AP_EL0_RO);
        assert_eq!(walk(&placed, 0x4800_0000, 0x20_3000), None);
    }

    #[test]
    fn writable_user_memory_is_never_executable() {
        let e = user_attrs(RW, Memory::Cached);
        assert_ne!(e & bits::UXN, 0);
        assert_ne!(e & bits::PXN, 0);
        assert_eq!(e & bits::AP_MASK, bits::AP_EL0_RW);
    }

    #[test]
    #[should_panic(expected = "never executable")]
    fn writable_executable_rights_are_refused() {
        user_attrs(Rights { read: true, write: true, execute: true }, Memory::Cached);
    }

    #[test]
    fn large_aligned_ranges_use_blocks() {
        let mut s = AddressSpace::new(Half::Upper);
        s.map(0xffff_0000_4000_0000, 0x4000_0000, BLOCK_1G + BLOCK_2M + PAGE, kernel_attrs(true, false, Memory::Cached), BLOCK_1G)
            .unwrap();
        // L0, L1, one L2 (for the 2 MiB block), one L3 (for the page).
        assert_eq!(s.table_count(), 4);
        let placed = s.place(0x1000_0000);
        let (pa, e) = walk(&placed, 0x1000_0000, 0xffff_0000_4000_1234).unwrap();
        assert_eq!(pa, 0x4000_1234);
        assert_eq!(e & 2, 0, "a block descriptor");
    }

    #[test]
    fn mapping_twice_is_an_overlap() {
        let mut s = AddressSpace::new(Half::Lower);
        let a = user_attrs(RW, Memory::Cached);
        s.map(0x40_0000, 0x4100_0000, 0x20_0000, a, BLOCK_2M).unwrap();
        assert_eq!(s.map(0x40_1000, 0x4200_0000, PAGE, a, PAGE), Err(MapError::Overlap { vaddr: 0x40_1000 }));
        s.map(0x80_0000, 0x4300_0000, PAGE, a, PAGE).unwrap();
        assert_eq!(s.map(0x80_0000, 0x4300_0000, PAGE, a, PAGE), Err(MapError::Overlap { vaddr: 0x80_0000 }));
    }

    #[test]
    fn misaligned_and_out_of_range_mappings_are_refused() {
        let mut s = AddressSpace::new(Half::Lower);
        assert!(matches!(s.map(0x1001, 0, PAGE, 0, PAGE), Err(MapError::Misaligned { .. })));
        assert_eq!(s.map(1 << 48, 0, PAGE, 0, PAGE), Err(MapError::OutOfRange { vaddr: 1 << 48 }));
        let mut k = AddressSpace::new(Half::Upper);
        assert_eq!(k.map(0x1000, 0, PAGE, 0, PAGE), Err(MapError::OutOfRange { vaddr: 0x1000 }));
    }
}
