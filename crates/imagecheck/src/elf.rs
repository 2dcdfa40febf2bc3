//! Reading the kernel's and the programs' ELF files: loadable segments,
//! the entry point and symbols. Written for this checker alone; the image
//! builder has its own reader.

use object::elf::{PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};
use std::collections::BTreeMap;

/// One PT_LOAD segment with a non-zero size.
#[derive(Clone, Debug)]
pub(crate) struct Segment<'a> {
    pub vaddr: u64,
    pub paddr: u64,
    pub memsz: u64,
    pub data: &'a [u8],
    pub write: bool,
    pub execute: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Elf<'a> {
    pub entry: u64,
    pub segments: Vec<Segment<'a>>,
    /// Name -> address.
    pub symbols: BTreeMap<String, u64>,
    /// Name -> size (`st_size`, 0 where the symbol does not say).
    pub sizes: BTreeMap<String, u64>,
}

impl<'a> Elf<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, String> {
        let file = ElfFile64::<Endianness>::parse(bytes).map_err(|e| format!("not an ELF64 file: {e}"))?;
        let endian = file.endian();
        let mut segments = Vec::new();
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
                continue;
            }
            let vaddr = ph.p_vaddr(endian);
            let data = ph.data(endian, bytes).map_err(|_| format!("segment at {vaddr:#x} lies outside the file"))?;
            let flags = ph.p_flags(endian);
            segments.push(Segment {
                vaddr,
                paddr: ph.p_paddr(endian),
                memsz: ph.p_memsz(endian).max(data.len() as u64),
                data,
                write: flags.0 & PF_W.0 != 0,
                execute: flags.0 & PF_X.0 != 0,
            });
        }
        if segments.is_empty() {
            return Err("no loadable segments".into());
        }
        let symbols = file
            .symbols()
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.address())))
            .collect();
        let sizes = file.symbols().filter_map(|s| Some((s.name().ok()?.to_string(), s.size()))).collect();
        Ok(Elf { entry: file.elf_header().e_entry(endian), segments, symbols, sizes })
    }
}
