//! Where the kernel's own mappings point. The kernel reaches memory three
//! ways, each with a fixed translation it relies on:
//!
//! - its code, read-only data and data (stack included) at the addresses
//!   it was linked for, on the frames the image loads them into: each
//!   segment of the kernel ELF, page-rounded, at its `p_vaddr` on its
//!   `p_paddr`, with the segment's rights (`R` read-only, `W` read-write,
//!   `X` executable) in cached memory;
//! - the rest of RAM (the boot spec, page tables, IPC buffers, restore
//!   copies, lent memory: everything it names by physical address) through
//!   its linear map, `KERNEL_VIRT_OFFSET + physical`, read-write, never
//!   executable, cached (`phys_to_virt` in the kernel);
//! - devices below RAM (`DEVICE_BASE..DEVICE_BASE + DEVICE_SIZE`) through
//!   the same offset, read-write, never executable, Device-nGnRnE.
//!
//! That is the whole of the kernel's half (TTBR1), worked out here from
//! the platform constants and the kernel ELF: every mapped byte must be
//! explained by one of them with its frames and its rights, anything else
//! is extra, anything missing is reported. A frame mismatch is named on
//! both sides by what uses the frames (a PD's stack, the boot spec, ...).
//!
//! The boot tables (TTBR0 while the MMU comes on) are an identity map: the
//! instructions between enabling the MMU and jumping to the upper half run
//! at their physical addresses. Every boot mapping must translate an
//! address to itself and be tagged with an ASID (nG: the kernel never
//! flushes the TLB on an address-space switch, so a global boot entry
//! would shadow PDs' mappings), and the kernel's code must be mapped
//! executable and read-only (SCTLR_EL1.WXN makes writable memory
//! non-executable), in cached memory.

use crate::elf::Elf;
use crate::expect::{Expected, Owner};
use crate::finding::{Finding, Space};
use crate::frames::FrameUses;
use crate::space::{gaps, pieces, Piece};
use crate::walk::{Access, Grant, Leaf, Memory, PAGE};
use bootspec::platform::{DEVICE_BASE, DEVICE_SIZE, KERNEL_VIRT_OFFSET, RAM_BASE, RAM_SIZE};
use std::ops::Range;

pub(crate) const LINEAR_MAP: &str = "the linear map of RAM";
const DEVICE_WINDOW: &str = "the device window";
const IDENTITY: &str = "the identity map";

fn segment_what(write: bool, execute: bool) -> &'static str {
    match (write, execute) {
        (_, true) => "kernel code",
        (true, false) => "kernel data",
        (false, false) => "kernel read-only data",
    }
}

fn grant(write: bool, execute: bool, memory: Memory) -> Grant {
    Grant { access: Access { read: true, write, execute }, memory }
}

/// One expected kernel mapping: `vrange` on frames from `paddr`, with
/// `grant` as EL1's rights.
fn fixed(vrange: Range<u64>, paddr: u64, what: &str, grant: Grant) -> Expected {
    Expected { vrange, what: what.into(), grant, owner: Owner::Private, fixed: Some((paddr, "the kernel's layout")) }
}

/// The kernel's half as the platform and the kernel ELF define it, sorted
/// and not overlapping.
fn expected_half(kernel: &Elf, findings: &mut Vec<Finding>) -> Vec<Expected> {
    let mut segments: Vec<Expected> = Vec::new();
    for s in &kernel.segments {
        let Some(end) = s.paddr.checked_add(s.memsz).and_then(|e| e.checked_next_multiple_of(PAGE)) else { continue };
        let start = s.paddr & !(PAGE - 1);
        if s.vaddr.wrapping_sub(s.paddr) != KERNEL_VIRT_OFFSET {
            findings.push(Finding::KernelElf(format!(
                "segment at {:#x} is loaded at {:#x}, not at its address minus KERNEL_VIRT_OFFSET, so the kernel's linear map puts other memory there",
                s.vaddr, s.paddr
            )));
        }
        let vstart = s.vaddr & !(PAGE - 1);
        let Some(vend) = vstart.checked_add(end - start) else { continue };
        segments.push(fixed(vstart..vend, start, segment_what(s.write, s.execute), grant(s.write, s.execute, Memory::Cached)));
    }
    segments.sort_by_key(|e| e.vrange.start);
    let mut out: Vec<Expected> = Vec::new();
    for e in segments {
        if let Some(last) = out.last() {
            if e.vrange.start < last.vrange.end {
                findings.push(Finding::KernelElf(format!(
                    "segments at {:#x} and {:#x} share a page, which cannot have both their rights",
                    last.vrange.start, e.vrange.start
                )));
                continue;
            }
        }
        out.push(e);
    }
    // The linear map of RAM around the kernel's segments.
    let ram = RAM_BASE + KERNEL_VIRT_OFFSET..RAM_BASE + RAM_SIZE + KERNEL_VIRT_OFFSET;
    let mut linear = Vec::new();
    let mut at = ram.start;
    for e in out.iter().map(|e| e.vrange.clone()).chain(std::iter::once(ram.end..ram.end)) {
        let stop = e.start.max(at).min(ram.end);
        if at < stop {
            linear.push(fixed(at..stop, at - KERNEL_VIRT_OFFSET, LINEAR_MAP, grant(true, false, Memory::Cached)));
        }
        at = at.max(e.end);
    }
    out.extend(linear);
    let devices = DEVICE_BASE + KERNEL_VIRT_OFFSET..DEVICE_BASE + DEVICE_SIZE + KERNEL_VIRT_OFFSET;
    out.push(fixed(devices, DEVICE_BASE, DEVICE_WINDOW, grant(true, false, Memory::Device)));
    out.sort_by_key(|e| e.vrange.start);
    out
}

/// Check the kernel's half against its layout.
pub(crate) fn check_half(leaves: &[Leaf], kernel: &Elf, uses: &FrameUses, findings: &mut Vec<Finding>) {
    let expected = expected_half(kernel, findings);
    let space = Space::Kernel;
    let mut covered: Vec<Vec<Range<u64>>> = vec![Vec::new(); expected.len()];
    for p in &pieces(leaves, &expected) {
        let Some(i) = p.expected else {
            findings.push(Finding::KernelExtra {
                space: space.clone(),
                vaddr: p.vrange.clone(),
                paddr: p.paddr,
                grants: p.attrs.el1_grant().to_string(),
            });
            continue;
        };
        let e = &expected[i];
        covered[i].push(p.vrange.clone());
        compare(&space, p, e, uses, findings);
    }
    report_missing(&space, &expected, &covered, findings);
}

/// Frames and rights of one piece against the expected mapping.
fn compare(space: &Space, p: &Piece, e: &Expected, uses: &FrameUses, findings: &mut Vec<Finding>) {
    if let Some((base, _)) = e.fixed {
        let want = base.wrapping_add(p.vrange.start - e.vrange.start);
        if p.paddr != want {
            findings.push(Finding::KernelFrames {
                space: space.clone(),
                vaddr: p.vrange.clone(),
                what: e.what.clone(),
                found: p.paddr,
                found_owner: uses.owner(p.paddr),
                expected: want,
                expected_owner: uses.owner(want),
            });
        }
    }
    let mut found = p.attrs.el1_grant();
    // Execution gained where the kernel has no code is its own finding
    // (`KernelExecutesData`); the rest is compared here.
    if found.access.execute && !e.grant.access.execute && space == &Space::Kernel {
        found.access.execute = false;
    }
    if found != e.grant {
        findings.push(Finding::KernelRights {
            space: space.clone(),
            vaddr: p.vrange.clone(),
            what: e.what.clone(),
            found: p.attrs.el1_grant().to_string(),
            expected: e.grant.to_string(),
        });
    }
}

fn report_missing(space: &Space, expected: &[Expected], covered: &[Vec<Range<u64>>], findings: &mut Vec<Finding>) {
    for (e, covered) in expected.iter().zip(covered) {
        for vaddr in gaps(&e.vrange, covered) {
            findings.push(Finding::KernelMissing { space: space.clone(), vaddr, what: e.what.clone(), expected: e.grant.to_string() });
        }
    }
}

/// Check the boot tables: an identity map, tagged with an ASID, that runs
/// the kernel's code.
pub(crate) fn check_boot(leaves: &[Leaf], kernel: Option<&Elf>, uses: &FrameUses, findings: &mut Vec<Finding>) {
    let space = Space::Boot;
    for p in &pieces(leaves, &[]) {
        if p.paddr != p.vrange.start {
            findings.push(Finding::KernelFrames {
                space: space.clone(),
                vaddr: p.vrange.clone(),
                what: IDENTITY.into(),
                found: p.paddr,
                found_owner: uses.owner(p.paddr),
                expected: p.vrange.start,
                expected_owner: uses.owner(p.vrange.start),
            });
        }
        if p.attrs.global() {
            findings.push(Finding::BootGlobal { vaddr: p.vrange.clone() });
        }
    }
    let Some(kernel) = kernel else { return };
    let mut code: Vec<Expected> = kernel
        .segments
        .iter()
        .filter(|s| s.execute)
        .filter_map(|s| {
            let end = s.paddr.checked_add(s.memsz)?.checked_next_multiple_of(PAGE)?;
            let start = s.paddr & !(PAGE - 1);
            Some(fixed(start..end, start, "kernel code", grant(false, true, Memory::Cached)))
        })
        .collect();
    code.sort_by_key(|e| e.vrange.start);
    code.dedup_by(|b, a| b.vrange.start < a.vrange.end);
    let mut covered: Vec<Vec<Range<u64>>> = vec![Vec::new(); code.len()];
    for p in &pieces(leaves, &code) {
        let Some(i) = p.expected else { continue };
        covered[i].push(p.vrange.clone());
        let found = p.attrs.el1_grant();
        if found != code[i].grant {
            findings.push(Finding::KernelRights {
                space: space.clone(),
                vaddr: p.vrange.clone(),
                what: code[i].what.clone(),
                found: found.to_string(),
                expected: code[i].grant.to_string(),
            });
        }
    }
    report_missing(&space, &code, &covered, findings);
}
