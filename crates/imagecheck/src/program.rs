//! A PD's program as the image loads it. The frames its program segments
//! map must hold the program image's bytes: each PT_LOAD segment
//! page-rounded, zero before and after the segment's file bytes (and in
//! its `.bss`). The bytes of the variables the system patches differ from
//! the ELF on purpose and are left out of that comparison; each is checked
//! for its declared value instead: `setvar_vaddr` and `setvar` symbols by
//! `frames::check_setvars`, and `microkit_name` here, which holds the PD's
//! name (NUL-padded to the symbol's size) where no `setvar` overrides it.
//!
//! Memory the image does not load is read as zero (QEMU starts RAM
//! zeroed), so a page of zeroes may live anywhere nothing else uses. A
//! PD's stack and IPC buffer must start zeroed.

use crate::elf::Elf;
use crate::expect::{IPC_BUFFER_WHAT, PROGRAM_WHAT, STACK_WHAT};
use crate::finding::Finding;
use crate::frames::PdSpace;
use crate::image::PhysMem;
use bootspec::platform::{RAM_BASE, RAM_SIZE};
use sdf::{SetVarValue, SystemDescription};
use std::collections::BTreeMap;
use std::ops::Range;

/// The Microkit symbol that holds a PD's name.
pub(crate) const NAME_SYMBOL: &str = "microkit_name";
/// Its size where the symbol does not say (`[u8; 64]`).
const NAME_SIZE: u64 = 64;
/// Longest stretch of a program segment compared in one piece; a longer
/// one (a damaged program or table) is compared up to this much.
const MAX_COMPARED: u64 = 64 << 20;

/// The program's bytes for `vrange`: zero but where a segment has file
/// bytes.
fn program_bytes(program: &Elf, vrange: &Range<u64>) -> Vec<u8> {
    let mut out = vec![0u8; (vrange.end - vrange.start) as usize];
    for s in &program.segments {
        let file = s.vaddr..s.vaddr.saturating_add(s.data.len() as u64);
        let (start, end) = (file.start.max(vrange.start), file.end.min(vrange.end));
        if start < end {
            let src = &s.data[(start - file.start) as usize..(end - file.start) as usize];
            out[(start - vrange.start) as usize..(end - vrange.start) as usize].copy_from_slice(src);
        }
    }
    out
}

/// `r` without the parts covered by `cuts` (sorted).
fn without(r: Range<u64>, cuts: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = r.start;
    for c in cuts {
        if c.end <= at || c.start >= r.end {
            continue;
        }
        if c.start > at {
            out.push(at..c.start);
        }
        at = at.max(c.end);
    }
    if at < r.end {
        out.push(at..r.end);
    }
    out
}

/// The program's bytes, the PD's name, and zeroed stacks and IPC buffers.
pub(crate) fn check(sd: &SystemDescription, pd: &PdSpace, mem: &PhysMem, findings: &mut Vec<Finding>) {
    let ram = RAM_BASE..RAM_BASE + RAM_SIZE;
    if let (Some(decl), Some(program)) = (sd.protection_domains.get(pd.index), pd.program) {
        // Where the system patches the program: what `setvar`s write, and
        // the name.
        let symbol = |name: &str| program.symbols.get(name).copied();
        let mut setvars: Vec<Range<u64>> = Vec::new();
        for map in &decl.maps {
            if let Some(v) = map.setvar_vaddr.as_deref().and_then(symbol) {
                setvars.push(v..v.saturating_add(8));
            }
        }
        for sv in &decl.setvars {
            let len = match &sv.value {
                SetVarValue::RegionPaddr(_) => 8,
                SetVarValue::Bytes(b) => b.len() as u64,
            };
            if let Some(v) = symbol(&sv.symbol) {
                setvars.push(v..v.saturating_add(len));
            }
        }
        let name = symbol(NAME_SYMBOL).map(|v| {
            let size = program.sizes.get(NAME_SYMBOL).copied().filter(|&s| s != 0).unwrap_or(NAME_SIZE);
            v..v.saturating_add(size.min(1 << 16))
        });
        let mut patched = setvars.clone();
        patched.extend(name.clone());
        patched.sort_by_key(|r| r.start);
        setvars.sort_by_key(|r| r.start);

        // First difference in each program segment.
        let mut first: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        for (p, e) in pd.explained() {
            if e.what != PROGRAM_WHAT {
                continue;
            }
            let Some(i) = p.expected else { continue };
            if first.contains_key(&i) {
                continue;
            }
            let vrange = p.vrange.start..p.vrange.end.min(p.vrange.start.saturating_add(MAX_COMPARED));
            let Ok(found) = mem.read_zeroed(p.paddr, vrange.end - vrange.start, &ram) else { continue };
            let want = program_bytes(program, &vrange);
            for r in without(vrange.clone(), &patched) {
                let at = (r.start - vrange.start) as usize..(r.end - vrange.start) as usize;
                let (a, b) = (&found[at.clone()], &want[at.clone()]);
                if a != b {
                    let k = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
                    let off = (at.start + k) as u64;
                    first.insert(i, (vrange.start + off, p.paddr + off));
                    break;
                }
            }
        }
        for (i, (vaddr, paddr)) in first {
            findings.push(Finding::ProgramBytes { pd: pd.name.clone(), segment: pd.expected[i].vrange.clone(), vaddr, paddr });
        }

        if let Some(span) = name {
            check_name(pd, mem, &decl.name, span, &setvars, &ram, findings);
        }
    }

    for (p, e) in pd.explained() {
        if e.what != STACK_WHAT && e.what != IPC_BUFFER_WHAT {
            continue;
        }
        // Only what the image loads can be other than zero.
        let frames = p.prange();
        let nonzero = mem.ranges().find_map(|r| {
            let (start, end) = (r.start.max(frames.start), r.end.min(frames.end));
            let bytes = mem.read_vec(start, end.checked_sub(start).filter(|&n| n > 0)?).ok()?;
            Some(start + bytes.iter().position(|&b| b != 0)? as u64)
        });
        if let Some(paddr) = nonzero {
            findings.push(Finding::NotZeroed { pd: pd.name.clone(), vaddr: e.vrange.clone(), what: e.what.clone(), paddr });
        }
    }
}

/// `microkit_name` holds the PD's name, NUL-padded, where no `setvar`
/// writes.
fn check_name(
    pd: &PdSpace,
    mem: &PhysMem,
    name: &str,
    span: Range<u64>,
    setvars: &[Range<u64>],
    ram: &Range<u64>,
    findings: &mut Vec<Finding>,
) {
    let size = (span.end - span.start) as usize;
    let mut want = vec![0u8; size];
    let n = name.len().min(size.saturating_sub(1));
    want[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut found = Vec::with_capacity(size);
    for k in 0..size as u64 {
        let Some(p) = pd.translate(span.start + k) else { return }; // a missing mapping, reported already
        let Ok(b) = mem.read_zeroed(p, 1, ram) else { return };
        found.push(b.first().copied().unwrap_or(0));
    }
    let differs = without(span.clone(), setvars).into_iter().any(|r| {
        let at = (r.start - span.start) as usize..(r.end - span.start) as usize;
        found[at.clone()] != want[at]
    });
    if differs {
        findings.push(Finding::Setvar {
            pd: pd.name.clone(),
            symbol: NAME_SYMBOL.into(),
            problem: format!("holds {}, declared '{name}' (its name)", shown(&found)),
        });
    }
}

/// A name as it would print: `'text'` if it is text followed by NULs,
/// else its bytes in hex without the trailing zeroes.
fn shown(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (text, rest) = bytes.split_at(end);
    if text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') && rest.iter().all(|&b| b == 0) {
        return format!("'{}'", String::from_utf8_lossy(text));
    }
    let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..used].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_cuts_out_the_patched_parts() {
        assert_eq!(without(0..10, &[2..4, 3..6, 8..12]), vec![0..2, 6..8]);
        assert_eq!(without(5..10, &[0..5]), vec![5..10]);
        assert_eq!(without(5..10, &[0..20]), Vec::<Range<u64>>::new());
    }

    #[test]
    fn names_show_as_text_or_hex() {
        assert_eq!(shown(b"ping\0\0\0\0"), "'ping'");
        assert_eq!(shown(&[0, 0, 0x48, 0, 0, 0, 0, 0]), "000048");
        assert_eq!(shown(b"pi\x01g\0\0"), "70690167");
    }
}
