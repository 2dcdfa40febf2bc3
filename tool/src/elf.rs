//! Reading program images (segments and symbols) and writing the bootable
//! image, which is an ELF file of physical segments that QEMU's `-kernel`
//! loads as they are.

use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{elf, Endianness, Object, ObjectSymbol};
use std::collections::BTreeMap;
use std::path::Path;

/// One loadable segment of an ELF file.
#[derive(Clone, Debug)]
pub struct Segment {
    pub vaddr: u64,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Symbol {
    pub vaddr: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct ElfImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub symbols: BTreeMap<String, Symbol>,
}

impl ElfImage {
    pub fn read(path: &Path) -> Result<ElfImage, String> {
        let data = std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        Self::parse(&data).map_err(|e| format!("'{}' is not a usable aarch64 ELF file: {e}", path.display()))
    }

    pub fn parse(data: &[u8]) -> Result<ElfImage, String> {
        let file = ElfFile64::<Endianness>::parse(data).map_err(|e| e.to_string())?;
        let endian = file.endian();
        if file.elf_header().e_machine(endian) != elf::EM_AARCH64 {
            return Err("not an aarch64 executable".into());
        }
        let mut segments = Vec::new();
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) != elf::PT_LOAD || ph.p_memsz(endian) == 0 {
                continue;
            }
            let flags = ph.p_flags(endian);
            let bytes = ph.data(endian, data).map_err(|_| "segment data lies outside the file".to_string())?;
            segments.push(Segment {
                vaddr: ph.p_vaddr(endian),
                paddr: ph.p_paddr(endian),
                data: bytes.to_vec(),
                memsz: ph.p_memsz(endian),
                read: flags.0 & elf::PF_R.0 != 0,
                write: flags.0 & elf::PF_W.0 != 0,
                execute: flags.0 & elf::PF_X.0 != 0,
            });
        }
        if segments.is_empty() {
            return Err("no loadable segments".into());
        }
        let symbols = file
            .symbols()
            .filter_map(|s| Some((s.name().ok()?.to_string(), Symbol { vaddr: s.address(), size: s.size() })))
            .collect();
        Ok(ElfImage { entry: file.elf_header().e_entry(endian), segments, symbols })
    }
}

/// A piece of physical memory in the image: `data`, then zeroes up to `memsz`.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

/// Write an ELF64 executable with one loadable segment per chunk, virtual
/// address = physical address, entering at `entry`.
pub fn write_image(chunks: &[Chunk], entry: u64) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let mut out = Vec::new();
    let phoff = EHDR;
    let mut data_off = align(EHDR + PHDR * chunks.len(), 16);

    // ELF header.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&elf::ET_EXEC.0.to_le_bytes());
    out.extend_from_slice(&elf::EM_AARCH64.0.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&(phoff as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&(EHDR as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR as u16).to_le_bytes());
    out.extend_from_slice(&(chunks.len() as u16).to_le_bytes());
    out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(out.len(), EHDR);

    for c in chunks {
        out.extend_from_slice(&elf::PT_LOAD.0.to_le_bytes());
        out.extend_from_slice(&(elf::PF_R.0 | elf::PF_W.0 | elf::PF_X.0).to_le_bytes());
        out.extend_from_slice(&(data_off as u64).to_le_bytes());
        out.extend_from_slice(&c.paddr.to_le_bytes());
        out.extend_from_slice(&c.paddr.to_le_bytes());
        out.extend_from_slice(&(c.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&c.memsz.max(c.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&16u64.to_le_bytes());
        data_off = align(data_off + c.data.len(), 16);
    }
    for c in chunks {
        out.resize(align(out.len(), 16), 0);
        out.extend_from_slice(&c.data);
    }
    out
}

fn align(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_image_reads_back_with_the_same_segments() {
        let chunks = vec![
            Chunk { paddr: 0x4020_0000, data: vec![1, 2, 3], memsz: 0x1000 },
            Chunk { paddr: 0x4100_0000, data: vec![9; 100], memsz: 100 },
            Chunk { paddr: 0x4200_0000, data: vec![], memsz: 0x20_0000 },
        ];
        let bytes = write_image(&chunks, 0x4020_0000);
        let image = ElfImage::parse(&bytes).unwrap();
        assert_eq!(image.entry, 0x4020_0000);
        assert_eq!(image.segments.len(), 3);
        for (seg, chunk) in image.segments.iter().zip(&chunks) {
            assert_eq!(seg.paddr, chunk.paddr);
            assert_eq!(seg.vaddr, chunk.paddr);
            assert_eq!(seg.data, chunk.data);
            assert_eq!(seg.memsz, chunk.memsz);
        }
    }
}
