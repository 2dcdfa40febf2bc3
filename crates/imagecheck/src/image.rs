//! The image as physical memory: its PT_LOAD segments placed at their
//! physical addresses, file bytes first and zeroes up to `p_memsz`, as
//! QEMU's loader places them.

use crate::finding::Finding;
use object::elf::{FileHeader64, EM_AARCH64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;
use std::borrow::Cow;
use std::ops::Range;

struct Segment<'a> {
    paddr: u64,
    /// Exclusive end (`paddr + memsz`), never wrapped.
    end: u64,
    data: &'a [u8],
}

pub(crate) struct PhysMem<'a> {
    /// Sorted by `paddr`; they do not overlap (overlaps are reported and
    /// the later segment is dropped).
    segments: Vec<Segment<'a>>,
    /// `e_entry`: where QEMU starts the CPU (the segments are physical, so
    /// QEMU does not adjust it).
    pub entry: u64,
}

/// Bytes of physical memory: borrowed from the file where they can be.
pub(crate) enum Bytes<'a> {
    Zero,
    Data(Cow<'a, [u8]>),
}

impl<'a> PhysMem<'a> {
    /// Read the image's segments; problems become findings. `None` if the
    /// file is not a usable ELF image at all.
    pub(crate) fn parse(image: &'a [u8], findings: &mut Vec<Finding>) -> Option<PhysMem<'a>> {
        let header = match FileHeader64::<Endianness>::parse(image) {
            Ok(h) => h,
            Err(e) => {
                findings.push(Finding::Image(format!("not an ELF64 file: {e}")));
                return None;
            }
        };
        let endian = match header.endian() {
            Ok(e) => e,
            Err(e) => {
                findings.push(Finding::Image(format!("not an ELF64 file: {e}")));
                return None;
            }
        };
        if endian != Endianness::Little {
            findings.push(Finding::Image("not a little-endian ELF file".into()));
            return None;
        }
        if header.e_machine(endian) != EM_AARCH64 {
            findings.push(Finding::Image(format!("machine {} is not aarch64", header.e_machine(endian))));
        }
        let phdrs = match header.program_headers(endian, image) {
            Ok(p) => p,
            Err(e) => {
                findings.push(Finding::Image(format!("cannot read program headers: {e}")));
                return None;
            }
        };
        let mut segments = Vec::new();
        for (i, ph) in phdrs.iter().enumerate() {
            if ph.p_type(endian) != PT_LOAD {
                continue;
            }
            let paddr = ph.p_paddr(endian);
            let (filesz, memsz) = (ph.p_filesz(endian), ph.p_memsz(endian));
            if filesz > memsz {
                findings.push(Finding::Image(format!(
                    "segment {i} at {paddr:#x} has {filesz:#x} bytes in the file but {memsz:#x} bytes of memory"
                )));
            }
            // QEMU moves the entry point into a segment whose virtual
            // address differs from its physical one: an image's segments
            // are physical, so the two must agree.
            let vaddr = ph.p_vaddr(endian);
            if vaddr != paddr {
                findings.push(Finding::Image(format!(
                    "segment {i} at {paddr:#x} has virtual address {vaddr:#x}; an image's segments are physical (p_vaddr = p_paddr)"
                )));
            }
            let memsz = memsz.max(filesz);
            if memsz == 0 {
                continue;
            }
            let Some(end) = paddr.checked_add(memsz) else {
                findings.push(Finding::Image(format!("segment {i} at {paddr:#x} runs past the end of memory")));
                continue;
            };
            let data = match ph.data(endian, image) {
                Ok(d) => d,
                Err(_) => {
                    findings.push(Finding::Image(format!("segment {i} at {paddr:#x} lies outside the file")));
                    continue;
                }
            };
            segments.push(Segment { paddr, end, data });
        }
        segments.sort_by_key(|s| (s.paddr, s.end));
        let mut kept: Vec<Segment> = Vec::with_capacity(segments.len());
        for s in segments {
            if let Some(last) = kept.last() {
                if s.paddr < last.end {
                    findings.push(Finding::Image(format!(
                        "segments {:#x}..{:#x} and {:#x}..{:#x} overlap",
                        last.paddr, last.end, s.paddr, s.end
                    )));
                    continue;
                }
            }
            kept.push(s);
        }
        if kept.is_empty() {
            findings.push(Finding::Image("no loadable segments".into()));
            return None;
        }
        Some(PhysMem { segments: kept, entry: header.e_entry(endian) })
    }

    /// The memory each segment loads: `paddr..paddr + memsz`.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.segments.iter().map(|s| s.paddr..s.end)
    }

    /// `len` bytes at `paddr` as the machine starts with them: what the
    /// image loads, and zero in RAM the image does not load (QEMU starts
    /// RAM zeroed). The first address outside both is the error.
    pub(crate) fn read_zeroed(&self, paddr: u64, len: u64, ram: &Range<u64>) -> Result<Vec<u8>, u64> {
        let end = paddr.checked_add(len).ok_or(paddr)?;
        let mut out = Vec::with_capacity(usize::try_from(len).map_err(|_| paddr)?.min(1 << 24));
        let mut at = paddr;
        while at < end {
            let stop = match self.segment_at(at) {
                Some(s) => {
                    let stop = end.min(s.end);
                    match self.read(at, stop - at)? {
                        Bytes::Zero => out.resize(out.len() + (stop - at) as usize, 0),
                        Bytes::Data(d) => out.extend_from_slice(&d),
                    }
                    stop
                }
                None => {
                    let next = self.segments.iter().map(|s| s.paddr).find(|&p| p > at).unwrap_or(u64::MAX);
                    let stop = end.min(next);
                    if at < ram.start || at >= ram.end {
                        return Err(at);
                    }
                    if stop > ram.end {
                        return Err(ram.end);
                    }
                    out.resize(out.len() + (stop - at) as usize, 0);
                    stop
                }
            };
            at = stop;
        }
        Ok(out)
    }

    fn segment_at(&self, paddr: u64) -> Option<&Segment<'a>> {
        let i = self.segments.partition_point(|s| s.end <= paddr);
        self.segments.get(i).filter(|s| s.paddr <= paddr)
    }

    /// `len` bytes at `paddr`, or the first address the image does not
    /// hold.
    pub(crate) fn read(&self, paddr: u64, len: u64) -> Result<Bytes<'a>, u64> {
        let end = paddr.checked_add(len).ok_or(paddr)?;
        // The common case: inside one segment.
        if let Some(s) = self.segment_at(paddr) {
            if end <= s.end {
                let off = paddr - s.paddr;
                let file_len = s.data.len() as u64;
                if off >= file_len {
                    return Ok(Bytes::Zero);
                }
                if off + len <= file_len {
                    return Ok(Bytes::Data(Cow::Borrowed(&s.data[off as usize..(off + len) as usize])));
                }
            }
        }
        // Across segments, or across the end of a segment's file bytes.
        let len_usize = usize::try_from(len).map_err(|_| paddr)?;
        let mut out = Vec::with_capacity(len_usize.min(1 << 24));
        let mut at = paddr;
        while at < end {
            let s = self.segment_at(at).ok_or(at)?;
            let stop = end.min(s.end);
            let off = at - s.paddr;
            let file_len = s.data.len() as u64;
            if off < file_len {
                let file_stop = (stop - s.paddr).min(file_len);
                out.extend_from_slice(&s.data[off as usize..file_stop as usize]);
                out.resize(out.len() + (stop - s.paddr - file_stop) as usize, 0);
            } else {
                out.resize(out.len() + (stop - at) as usize, 0);
            }
            at = stop;
        }
        Ok(Bytes::Data(Cow::Owned(out)))
    }

    /// `len` bytes at `paddr` as a vector.
    pub(crate) fn read_vec(&self, paddr: u64, len: u64) -> Result<Vec<u8>, u64> {
        match self.read(paddr, len)? {
            Bytes::Zero => Ok(vec![0; usize::try_from(len).map_err(|_| paddr)?]),
            Bytes::Data(d) => Ok(d.into_owned()),
        }
    }

    pub(crate) fn read_u64(&self, paddr: u64) -> Result<u64, u64> {
        let v = self.read_vec(paddr, 8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&v);
        Ok(u64::from_le_bytes(word))
    }

    /// Whether the image holds every byte of `range`.
    pub(crate) fn holds(&self, range: &Range<u64>) -> bool {
        let mut at = range.start;
        while at < range.end {
            match self.segment_at(at) {
                Some(s) => at = s.end,
                None => return false,
            }
        }
        true
    }

    /// Page-aligned addresses whose file bytes start with `needle`.
    pub(crate) fn find_at_page_starts(&self, needle: &[u8]) -> Vec<u64> {
        let mut found = Vec::new();
        for s in &self.segments {
            let Some(first) = s.paddr.checked_next_multiple_of(0x1000) else { continue };
            let mut off = first - s.paddr;
            while let Some(window) = s.data.get(off as usize..).and_then(|d| d.get(..needle.len())) {
                if window == needle {
                    found.push(s.paddr + off);
                }
                off += 0x1000;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image with the given (paddr, data, memsz) segments.
    pub(crate) fn elf(segments: &[(u64, &[u8], u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&183u16.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&64u64.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes());
        out.extend_from_slice(&56u16.to_le_bytes());
        out.extend_from_slice(&(segments.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 6]);
        let mut off = 64 + 56 * segments.len();
        for (paddr, data, memsz) in segments {
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&7u32.to_le_bytes());
            for v in [off as u64, *paddr, *paddr, data.len() as u64, *memsz, 16] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            off += data.len();
        }
        for (_, data, _) in segments {
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn reads_file_bytes_then_zeroes_across_segments() {
        let image = elf(&[(0x1000, &[1, 2, 3, 4], 0x10), (0x1010, &[9; 4], 4)]);
        let mut findings = Vec::new();
        let mem = PhysMem::parse(&image, &mut findings).unwrap();
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(mem.read_vec(0x1002, 4).unwrap(), [3, 4, 0, 0]);
        assert_eq!(mem.read_vec(0x100e, 4).unwrap(), [0, 0, 9, 9]);
        assert!(matches!(mem.read(0x1008, 8), Ok(Bytes::Zero)));
        assert_eq!(mem.read(0x1012, 4).err(), Some(0x1014));
        assert_eq!(mem.read(0xfff, 2).err(), Some(0xfff));
        assert!(mem.holds(&(0x1000..0x1014)));
        assert!(!mem.holds(&(0x1000..0x1015)));
    }

    #[test]
    fn overlapping_segments_are_reported() {
        let image = elf(&[(0x1000, &[1; 8], 8), (0x1004, &[2; 8], 8)]);
        let mut findings = Vec::new();
        PhysMem::parse(&image, &mut findings).unwrap();
        assert_eq!(findings, [Finding::Image("segments 0x1000..0x1008 and 0x1004..0x100c overlap".into())]);
    }

    #[test]
    fn garbage_is_not_an_image() {
        let mut findings = Vec::new();
        assert!(PhysMem::parse(b"not an elf file at all, just text", &mut findings).is_none());
        assert_eq!(findings.len(), 1);
    }
}
