//! Test support: the fixture images, and small tools to damage a copy of
//! an image the way an attacker or a builder bug would. Deliberately
//! simple and separate from the checker: its own ELF program-header
//! reader, its own table lookup, its own spec editing.
#![allow(dead_code)]

use bootspec::{ChannelDesc, Header, LendDesc, PdDesc, RestoreOp};
use std::mem::{offset_of, size_of};
use std::path::PathBuf;

pub const PAGE: u64 = 0x1000;

/// Descriptor bits, spelled out for the tests.
pub const VALID_PAGE: u64 = 0b11;
pub const ATTR_NORMAL: u64 = 1 << 2;
pub const AP_EL0_RW: u64 = 0b01 << 6;
pub const AP_EL0_RO: u64 = 0b11 << 6;
pub const AP_MASK: u64 = 0b11 << 6;
pub const SH_INNER: u64 = 0b11 << 8;
pub const AF: u64 = 1 << 10;
pub const NG: u64 = 1 << 11;
pub const PXN: u64 = 1 << 53;
pub const UXN: u64 = 1 << 54;
pub const ADDR: u64 = 0x0000_ffff_ffff_f000;
/// A user page, read-write, cached, as a correct builder writes it.
pub const USER_RW_PAGE: u64 = VALID_PAGE | ATTR_NORMAL | AP_EL0_RW | SH_INNER | AF | NG | PXN | UXN;

/// A built system: its description, image, kernel and programs.
pub struct Fixture {
    pub sd: sdf::SystemDescription,
    pub image: Vec<u8>,
    pub kernel: Vec<u8>,
    pub programs: Vec<Vec<u8>>,
}

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

impl Fixture {
    /// `tests/fixtures/<name>.xml` and `<name>.elf`, with the `kernel` and
    /// the program images (named as in the description) beside them.
    pub fn load(name: &str) -> Fixture {
        let dir = fixture_dir();
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}"));
        let file = format!("{name}.xml");
        let xml = String::from_utf8(read(&file)).unwrap();
        let sd = sdf::parse(&file, &xml).unwrap_or_else(|e| panic!("fixture {file}: {e:?}"));
        let programs = sd.protection_domains.iter().map(|pd| read(&pd.program_image)).collect();
        Fixture { image: read(&format!("{name}.elf")), kernel: read("kernel"), programs, sd }
    }

    pub fn check(&self) -> Vec<String> {
        self.check_image(&self.image)
    }

    pub fn check_image(&self, image: &[u8]) -> Vec<String> {
        let inputs = imagecheck::Inputs { image, kernel_elf: &self.kernel, programs: self.programs.clone() };
        imagecheck::check(&self.sd, &inputs).iter().map(|f| f.to_string()).collect()
    }

    pub fn pd_index(&self, name: &str) -> usize {
        self.sd.pd(name).unwrap_or_else(|| panic!("no pd {name}")).0
    }
}

/// A copy of an image with helpers to read and change physical memory.
pub struct Image {
    pub bytes: Vec<u8>,
    /// (paddr, file offset, file size) of each PT_LOAD segment.
    segments: Vec<(u64, usize, usize)>,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

impl Image {
    pub fn new(bytes: &[u8]) -> Image {
        let phoff = u64_at(bytes, 32) as usize;
        let phentsize = u16_at(bytes, 54) as usize;
        let phnum = u16_at(bytes, 56) as usize;
        let segments = (0..phnum)
            .map(|i| phoff + i * phentsize)
            .filter(|&ph| u32_at(bytes, ph) == 1)
            .map(|ph| (u64_at(bytes, ph + 24), u64_at(bytes, ph + 8) as usize, u64_at(bytes, ph + 32) as usize))
            .collect();
        Image { bytes: bytes.to_vec(), segments }
    }

    /// File offset of physical address `paddr`, if the file holds it.
    pub fn try_offset(&self, paddr: u64) -> Option<usize> {
        self.segments
            .iter()
            .find(|(p, _, len)| *p <= paddr && paddr < p + *len as u64)
            .map(|(p, off, _)| off + (paddr - p) as usize)
    }

    /// (paddr, file offset, file size) of each PT_LOAD segment.
    pub fn segments(&self) -> &[(u64, usize, usize)] {
        &self.segments
    }

    /// File offset of physical address `paddr` (which must have file bytes).
    pub fn offset(&self, paddr: u64) -> usize {
        self.segments
            .iter()
            .find(|(p, _, len)| *p <= paddr && paddr < p + *len as u64)
            .map(|(p, off, _)| off + (paddr - p) as usize)
            .unwrap_or_else(|| panic!("{paddr:#x} has no bytes in the image file"))
    }

    pub fn read_u64(&self, paddr: u64) -> u64 {
        u64_at(&self.bytes, self.offset(paddr))
    }

    pub fn write_u64(&mut self, paddr: u64, value: u64) {
        let off = self.offset(paddr);
        self.bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Where the spec starts in the file (the page that starts with its
    /// magic number).
    pub fn spec_offset(&self) -> usize {
        (0..self.bytes.len())
            .step_by(16)
            .find(|&o| self.bytes[o..].starts_with(&bootspec::MAGIC))
            .expect("spec in the image")
    }

    fn header_u64(&self, field: usize) -> u64 {
        u64_at(&self.bytes, self.spec_offset() + field)
    }

    pub fn kernel_ttbr1(&self) -> u64 {
        self.header_u64(offset_of!(Header, kernel_ttbr1))
    }

    pub fn header_boot_ttbr0(&self) -> u64 {
        self.header_u64(offset_of!(Header, boot_ttbr0))
    }

    pub fn pool(&self) -> (u64, u64) {
        (self.header_u64(offset_of!(Header, page_tables_paddr)), self.header_u64(offset_of!(Header, page_tables_size)))
    }

    /// File offset of PD record `index`.
    pub fn pd_offset(&self, index: usize) -> usize {
        let spec = self.spec_offset();
        spec + u32_at(&self.bytes, spec + offset_of!(Header, pd_offset)) as usize + index * size_of::<PdDesc>()
    }

    /// File offset of restore op `index`.
    pub fn restore_offset(&self, index: usize) -> usize {
        let spec = self.spec_offset();
        spec + u32_at(&self.bytes, spec + offset_of!(Header, restore_offset)) as usize + index * size_of::<RestoreOp>()
    }

    /// File offset of entry `index` of the lend array.
    pub fn lend_offset(&self, index: usize) -> usize {
        let spec = self.spec_offset();
        spec + u32_at(&self.bytes, spec + offset_of!(Header, lend_offset)) as usize + index * size_of::<LendDesc>()
    }

    /// Offset of channel slot `id` in a PD record.
    pub fn channel_field(id: usize, field: usize) -> usize {
        offset_of!(PdDesc, channels) + id * size_of::<ChannelDesc>() + field
    }

    /// Set the lend slice of channel `id` of PD `pd` (checksum fixed).
    pub fn set_channel_lends(&mut self, pd: usize, id: usize, first: u16, count: u16) {
        self.edit_pd(pd, Self::channel_field(id, offset_of!(ChannelDesc, lend_first)), &first.to_le_bytes());
        self.edit_pd(pd, Self::channel_field(id, offset_of!(ChannelDesc, lend_count)), &count.to_le_bytes());
    }

    /// Change bytes of lend `index` at `field` (checksum fixed).
    pub fn edit_lend(&mut self, index: usize, field: usize, bytes: &[u8]) {
        let off = self.lend_offset(index) + field;
        self.bytes[off..off + bytes.len()].copy_from_slice(bytes);
        self.fix_checksum();
    }

    pub fn lend_u64(&self, index: usize, field: usize) -> u64 {
        u64_at(&self.bytes, self.lend_offset(index) + field)
    }

    /// Append an entry to the lend array, which ends the spec: the spec's
    /// segment grows by one entry in the file (later segments move down
    /// the file), the header counts it and the checksum is fixed.
    pub fn append_lend(&mut self, lend: [u64; 3]) {
        let spec = self.spec_offset();
        let total = u32_at(&self.bytes, spec + offset_of!(Header, total_size)) as usize;
        let lend_offset = u32_at(&self.bytes, spec + offset_of!(Header, lend_offset)) as usize;
        let count = u32_at(&self.bytes, spec + offset_of!(Header, lend_count)) as usize;
        assert_eq!(lend_offset + count * size_of::<LendDesc>(), total, "the lend array ends the spec");
        let grow = size_of::<LendDesc>();
        let at = spec + total;
        let mut entry = Vec::new();
        for w in lend {
            entry.extend_from_slice(&w.to_le_bytes());
        }
        self.bytes.splice(at..at, entry);
        // Program headers: the spec's segment grows, later ones move.
        let phoff = u64_at(&self.bytes, 32) as usize;
        let phentsize = u16_at(&self.bytes, 54) as usize;
        let phnum = u16_at(&self.bytes, 56) as usize;
        assert_eq!(u64_at(&self.bytes, 40), 0, "no section headers to move");
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            let (off, filesz) = (u64_at(&self.bytes, ph + 8) as usize, u64_at(&self.bytes, ph + 32) as usize);
            let put = |bytes: &mut Vec<u8>, at: usize, v: u64| bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
            if off <= spec && spec < off + filesz {
                put(&mut self.bytes, ph + 32, (filesz + grow) as u64);
                let memsz = u64_at(&self.bytes, ph + 40);
                put(&mut self.bytes, ph + 40, memsz.max((filesz + grow) as u64));
            } else if off >= at {
                put(&mut self.bytes, ph + 8, (off + grow) as u64);
            }
        }
        let bytes = std::mem::take(&mut self.bytes);
        *self = Image::new(&bytes);
        let put32 = |bytes: &mut Vec<u8>, at: usize, v: u32| bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put32(&mut self.bytes, spec + offset_of!(Header, total_size), (total + grow) as u32);
        put32(&mut self.bytes, spec + offset_of!(Header, lend_count), (count + 1) as u32);
        self.fix_checksum();
    }

    pub fn pd_u64(&self, index: usize, field: usize) -> u64 {
        u64_at(&self.bytes, self.pd_offset(index) + field)
    }

    pub fn ttbr0(&self, index: usize) -> u64 {
        self.pd_u64(index, offset_of!(PdDesc, ttbr0))
    }

    /// Change bytes of PD record `index` at `field`, then fix the spec's
    /// checksum so the spec still parses.
    pub fn edit_pd(&mut self, index: usize, field: usize, bytes: &[u8]) {
        let off = self.pd_offset(index) + field;
        self.bytes[off..off + bytes.len()].copy_from_slice(bytes);
        self.fix_checksum();
    }

    pub fn set_channel(&mut self, pd: usize, id: usize, desc: ChannelDesc) {
        let bytes = [desc.kind, desc.rights, desc.peer, desc.peer_channel, desc.irq as u8, (desc.irq >> 8) as u8, desc.trigger, 0];
        self.edit_pd(pd, offset_of!(PdDesc, channels) + id * size_of::<ChannelDesc>(), &bytes);
    }

    pub fn fix_checksum(&mut self) {
        let spec = self.spec_offset();
        let total = u32_at(&self.bytes, spec + offset_of!(Header, total_size)) as usize;
        let sum = bootspec::checksum_with_field_zeroed(&self.bytes[spec..spec + total]);
        let at = spec + offset_of!(Header, checksum);
        self.bytes[at..at + 4].copy_from_slice(&sum.to_le_bytes());
    }

    /// Follow the tables from `root` towards `vaddr`: the physical address
    /// of the deepest entry reached (a leaf, or an empty slot) and its
    /// level.
    pub fn entry_for(&self, root: u64, vaddr: u64) -> (u64, u32) {
        let mut table = root;
        for level in 0..4u32 {
            let index = (vaddr >> (39 - 9 * level)) & 0x1ff;
            let slot = table + index * 8;
            let e = self.read_u64(slot);
            if level == 3 || e & 0b11 != 0b11 {
                return (slot, level);
            }
            table = e & ADDR;
        }
        unreachable!()
    }

    /// The entry slot at `level` on the way to `vaddr`; the levels above
    /// must hold table descriptors.
    pub fn slot_at_level(&self, root: u64, vaddr: u64, level: u32) -> u64 {
        let mut table = root;
        for l in 0..=level {
            let slot = table + ((vaddr >> (39 - 9 * l)) & 0x1ff) * 8;
            if l == level {
                return slot;
            }
            let e = self.read_u64(slot);
            assert_eq!(e & 0b11, 0b11, "no table at level {} for {vaddr:#x}", l + 1);
            table = e & ADDR;
        }
        unreachable!()
    }

    /// The level-3 entry slot for `vaddr`, which must exist.
    pub fn l3_slot(&self, root: u64, vaddr: u64) -> u64 {
        let (slot, level) = self.entry_for(root, vaddr);
        assert_eq!(level, 3, "{vaddr:#x} has no level-3 table");
        slot
    }

    /// The frame `vaddr`'s page maps to.
    pub fn frame_of(&self, root: u64, vaddr: u64) -> u64 {
        self.read_u64(self.l3_slot(root, vaddr)) & ADDR
    }
}

/// A small deterministic pseudo-random generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Address of `name` in an ELF file's symbol table.
pub fn symbol(elf: &[u8], name: &str) -> u64 {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(elf).expect("an ELF file");
    let found = file.symbols().find(|s| s.name() == Ok(name));
    found.unwrap_or_else(|| panic!("no symbol {name}")).address()
}
