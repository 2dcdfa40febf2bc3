//! What a PD's address space must hold, from the description, the PD's
//! program image and the fixed user layout (`abi::layout`), worked out
//! here without the image builder:
//!
//! - each PT_LOAD segment of the program, page-rounded, with the segment's
//!   write and execute flags;
//! - the stack, `[STACK_TOP - stack_size, STACK_TOP)`, read-write (the
//!   page above it is the unmapped guard page);
//! - the IPC buffer page at `IPC_BUFFER`, read-write, on the frame the
//!   spec names;
//! - one mapping per `<map>`: the region's size at `vaddr`, with the map's
//!   perms, device memory when `cached="false"`, on the region's
//!   `phys_addr` if it has one.
//!
//! Everything is readable at EL0 (the descriptors cannot express anything
//! else) and nothing is executable at EL1.

use crate::elf::Elf;
use crate::finding::{Finding, Hex};
use crate::walk::{Access, Grant, Memory, PAGE};
use abi::layout::{IPC_BUFFER, STACK_TOP};
use sdf::SystemDescription;
use std::ops::Range;

pub(crate) const IPC_BUFFER_WHAT: &str = "IPC buffer";
pub(crate) const PROGRAM_WHAT: &str = "program segment";
pub(crate) const STACK_WHAT: &str = "stack";

/// Who owns the frames behind a declared mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Owner {
    /// This PD alone: program segments, the stack, the IPC buffer.
    Private,
    /// The memory region at this index of the description: every PD that
    /// maps it maps the same frames, and nothing else uses them.
    Region(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct Expected {
    pub vrange: Range<u64>,
    /// "program segment", "stack", "IPC buffer", "region 'name'".
    pub what: String,
    pub grant: Grant,
    pub owner: Owner,
    /// Frames it must start at, and why.
    pub fixed: Option<(u64, &'static str)>,
}

impl Expected {
    /// Private frames the PD itself may write: what restore ops may touch.
    pub(crate) fn private_writable(&self) -> bool {
        self.owner == Owner::Private && self.grant.access.write
    }
}

/// The declared mappings of the PD at `index`, sorted by address and not
/// overlapping (an overlap in the declaration is reported and the later
/// mapping dropped).
pub(crate) fn expected(
    sd: &SystemDescription,
    index: usize,
    program: Option<&Elf>,
    ipc_buffer_paddr: u64,
    findings: &mut Vec<Finding>,
) -> Vec<Expected> {
    let Some(pd) = sd.protection_domains.get(index) else { return Vec::new() };
    let name = &pd.name;
    let cached = |write, execute| Grant { access: Access { read: true, write, execute }, memory: Memory::Cached };
    let mut out = Vec::new();

    for seg in program.map(|p| p.segments.as_slice()).unwrap_or_default() {
        let start = seg.vaddr & !(PAGE - 1);
        let end = seg.vaddr.checked_add(seg.memsz).and_then(|e| e.checked_next_multiple_of(PAGE));
        let Some(end) = end else {
            findings.push(Finding::Program {
                pd: name.clone(),
                problem: format!("segment at {:#x} runs past the end of the address space", seg.vaddr),
            });
            continue;
        };
        if seg.write && seg.execute {
            findings.push(Finding::Program {
                pd: name.clone(),
                problem: format!("segment {} is both writable and executable", Hex(&(start..end))),
            });
        }
        out.push(Expected {
            vrange: start..end,
            what: PROGRAM_WHAT.into(),
            grant: cached(seg.write, seg.execute),
            owner: Owner::Private,
            fixed: None,
        });
    }

    match STACK_TOP.checked_sub(pd.stack_size) {
        Some(bottom) => out.push(Expected {
            vrange: bottom..STACK_TOP,
            what: STACK_WHAT.into(),
            grant: cached(true, false),
            owner: Owner::Private,
            fixed: None,
        }),
        None => findings.push(Finding::Declaration {
            pd: name.clone(),
            problem: format!("a stack of {:#x} bytes does not fit below {STACK_TOP:#x}", pd.stack_size),
        }),
    }
    out.push(Expected {
        vrange: IPC_BUFFER..IPC_BUFFER + PAGE,
        what: IPC_BUFFER_WHAT.into(),
        grant: cached(true, false),
        owner: Owner::Private,
        fixed: Some((ipc_buffer_paddr, "the spec's ipc_buffer_paddr")),
    });

    for map in &pd.maps {
        let Some(r) = sd.memory_regions.iter().position(|mr| mr.name == map.mr) else { continue };
        let region = &sd.memory_regions[r];
        let Some(vrange) = map.range(region) else {
            findings.push(Finding::Declaration {
                pd: name.clone(),
                problem: format!("the map of region '{}' at {:#x} wraps around the address space", map.mr, map.vaddr),
            });
            continue;
        };
        out.push(Expected {
            vrange,
            what: format!("region '{}'", region.name),
            grant: Grant {
                access: Access { read: map.perms.read, write: map.perms.write, execute: map.perms.execute },
                memory: if map.cached { Memory::Cached } else { Memory::Device },
            },
            owner: Owner::Region(r),
            fixed: region.phys_addr.map(|p| (p, "its phys_addr")),
        });
    }

    out.retain(|e| e.vrange.start < e.vrange.end);
    out.sort_by_key(|e| (e.vrange.start, e.vrange.end));
    let mut kept: Vec<Expected> = Vec::with_capacity(out.len());
    for e in out {
        if let Some(last) = kept.last() {
            if e.vrange.start < last.vrange.end {
                findings.push(Finding::Declaration {
                    pd: name.clone(),
                    problem: format!(
                        "{} at {} overlaps the {} at {}",
                        e.what,
                        Hex(&e.vrange),
                        last.what,
                        Hex(&last.vrange)
                    ),
                });
                continue;
            }
        }
        kept.push(e);
    }
    kept
}
