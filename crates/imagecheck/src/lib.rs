//! Reads a built image back and checks that what the kernel will install
//! grants exactly what the system description declares: no more, no less.
//!
//! The checker is written apart from the image builder (`tool/`) on
//! purpose: it has its own ELF reading, its own translation-table walker
//! and its own idea of what each PD must hold, worked out from the
//! description, the PDs' program images and the fixed user layout. It
//! shares only the boot-spec format (`bootspec`), the user layout (`abi`)
//! and the description model (`sdf`). A bug in the builder therefore shows
//! up here instead of being repeated.
//!
//! What is checked (each difference is one [`Finding`], one line):
//!
//! - the image is an ELF file of physical segments, loaded into RAM the
//!   system may use (not the device tree's), entered at the kernel's entry
//!   point; the spec is where the
//!   kernel's `KERNEL_BOOT_SPEC_PADDR` says (found through the kernel ELF)
//!   and `Spec::parse` accepts it; the kernel in the image is the kernel
//!   ELF given; header fields match the platform;
//! - the PD records: count, names and order, priorities, flags, parents
//!   and children, channel tables (channels with exact rights and peers,
//!   IRQ bindings, nothing extra in any slot), unique 8-bit ASIDs, entry
//!   points;
//! - every PD's tables, walked whole: each mapped byte is explained by
//!   exactly one declared mapping (program segment, stack, IPC buffer,
//!   `<map>`) with exactly its rights and memory type, and each declared
//!   byte is mapped. No PD mapping is global, executable at EL1, or
//!   writable and executable; the IPC buffer and `phys_addr` regions sit
//!   on the frames they must;
//! - what PDs run: the frames of each program segment hold the program
//!   image's bytes, patched variables aside (they hold their declared
//!   values, `microkit_name` the PD's name); stacks and IPC buffers start
//!   zeroed;
//! - frames: every PD mapping a region maps the same frames, and a region
//!   handed out by address is one run of frames; private frames belong to
//!   one PD; no PD maps the page-table pool, the boot spec, the kernel, a
//!   pristine copy kept for restarts or the device tree's RAM; tables lie
//!   in the pool, no two address spaces share one, no descriptor sets
//!   reserved bits or a contiguous bit the MMU could misuse;
//! - the kernel's half (TTBR1) and the boot identity map: nothing EL0 can
//!   reach, nothing writable and executable, and in the kernel's half
//!   nothing executable at EL1 but the kernel's code; the kernel's half is
//!   exactly the kernel's layout (its segments on the frames the image
//!   loads them into, the linear map of RAM, the device window: every
//!   mapping points where the kernel expects, see `kernel.rs`) and the
//!   boot tables are an identity map, tagged with an ASID, that runs the
//!   kernel's code;
//! - restore operations write only the restarted PD's own writable memory,
//!   copy the initial contents from memory no PD maps (or zero memory that
//!   starts zero), and reset all of a
//!   restartable PD's writable memory; patched variables (`setvar_vaddr`,
//!   `setvar`) hold the declared values;
//! - lends (spec version 2): each channel slot lends exactly the regions
//!   its `<channel>`'s `<lend>`s declare, in order, each with the region's
//!   physical address and size and the declared rights; no other slot
//!   lends; every entry of the lend array is used; lent memory lies in RAM
//!   and belongs to its region alone (not the kernel, the tables, the
//!   spec, a PD's private frames or another region). A region that has no
//!   `phys_addr` and that no PD maps is placed by its lends, which must
//!   agree (see `lends.rs`);
//! - call budgets equal the declared `call_budget` (0 if none), and every
//!   reserved field of the spec's records is zero.
//!
//! `sd` must be the description the image was built from, after any
//! expansion the tool does; the checker compares against it as given.
//!
//! The checker never panics: a truncated or corrupt image gives findings.
#![forbid(unsafe_code)]

mod elf;
mod expect;
mod finding;
mod frames;
mod image;
mod kernel;
mod lends;
mod program;
mod records;
mod space;
mod walk;

pub use finding::{Finding, FrameUser, Space};

use bootspec::platform::{RAM_BASE, RAM_RESERVED, RAM_SIZE};
use bootspec::{Header, Spec, SpecError, FLAG_PMU_USER, MAGIC, MAX_PDS, VERSION};
use elf::Elf;
use finding::Hex;
use frames::{FrameUses, PdSpace};
use image::PhysMem;
use std::ops::Range;
use walk::{Walker, PAGE};

/// What the checker reads: the image, the kernel ELF it was built with,
/// and the program image of every PD in the description's order.
pub struct Inputs<'a> {
    pub image: &'a [u8],
    pub kernel_elf: &'a [u8],
    pub programs: Vec<Vec<u8>>,
}

/// Choices a caller may make; the default is the strictest.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Accept the spec flag that lets PDs read the performance counters
    /// (benchmark images are built with it on purpose; it is a timing
    /// channel the description does not declare).
    pub allow_pmu_user: bool,
}

/// The kernel symbol that holds the spec's physical address.
const SPEC_SYMBOL: &str = "KERNEL_BOOT_SPEC_PADDR";
/// What QEMU puts at the start of RAM.
const DEVICE_TREE: &str = "the RAM QEMU keeps for the device tree";
/// A kernel segment larger than this is compared by its file bytes only.
const MAX_KERNEL_COMPARED: u64 = 64 << 20;
/// A spec larger than this is refused before it is read.
const MAX_SPEC_SIZE: u64 = 16 << 20;

/// Check the image against `sd` with the default [`Options`]. An empty
/// result means the image grants exactly what the description declares.
pub fn check(sd: &sdf::SystemDescription, inputs: &Inputs) -> Vec<Finding> {
    check_with(sd, inputs, &Options::default())
}

/// [`check`] with options.
pub fn check_with(sd: &sdf::SystemDescription, inputs: &Inputs, options: &Options) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(mem) = PhysMem::parse(inputs.image, &mut findings) else { return findings };
    let kernel = match Elf::parse(inputs.kernel_elf) {
        Ok(k) => Some(k),
        Err(e) => {
            findings.push(Finding::KernelElf(e));
            None
        }
    };

    let symbol_paddr = kernel.as_ref().and_then(|k| symbol_paddr(k, &mut findings));
    let Some(spec_paddr) = locate_spec(&mem, symbol_paddr, &mut findings) else { return findings };
    let Some(spec_buf) = read_spec(&mem, spec_paddr, &mut findings) else { return findings };
    let spec = match Spec::parse(spec_buf.bytes()) {
        Ok(s) => s,
        Err(e) => {
            findings.push(Finding::Spec(format!("at {spec_paddr:#x} is refused: {}", spec_error(e))));
            return findings;
        }
    };
    let header = spec.header;

    let mut uses = FrameUses::default();
    let mut kernel_code = None;
    if let Some(k) = &kernel {
        check_kernel_image(&mem, k, symbol_paddr, &mut findings);
        let mut code = Vec::new();
        for s in &k.segments {
            if let Some(r) = page_range(s.paddr, s.memsz) {
                uses.reserve(r.clone(), "the kernel image".into());
                if s.execute {
                    code.push(r);
                }
            }
        }
        kernel_code = Some(code);
    }
    uses.reserve(RAM_BASE..RAM_BASE + RAM_RESERVED, DEVICE_TREE.into());
    check_image_layout(&mem, kernel.as_ref(), &mut findings);
    let spec_range = page_range(spec_paddr, u64::from(header.total_size));
    if let Some(r) = &spec_range {
        uses.reserve(r.clone(), "the boot spec".into());
    }
    let pool = header.page_tables_paddr..header.page_tables_paddr.saturating_add(header.page_tables_size);
    uses.reserve(pool.clone(), "the page-table pool".into());
    check_header(header, &mem, &pool, spec_range, options, &mut findings);

    let programs = read_programs(sd, inputs, &mut findings);
    records::check(sd, &spec, &programs, &mut findings);
    records::check_reserved(sd, &spec, &mut findings);

    let mut walker = Walker::new(&mem, pool);
    let kernel_leaves = walker.walk(&Space::Kernel, header.kernel_ttbr1, true, &mut findings);
    space::check_kernel(&Space::Kernel, &kernel_leaves, kernel_code.as_deref(), &mut findings);
    let boot_leaves = walker.walk(&Space::Boot, header.boot_ttbr0, false, &mut findings);
    space::check_kernel(&Space::Boot, &boot_leaves, None, &mut findings);

    let mut pds = Vec::new();
    for (index, (decl, rec)) in sd.protection_domains.iter().zip(spec.pds).enumerate() {
        let program = programs.get(index).and_then(|p| p.as_ref());
        let expected = expect::expected(sd, index, program, rec.ipc_buffer_paddr, &mut findings);
        let mut leaves = walker.walk(&Space::Pd(decl.name.clone()), rec.ttbr0, false, &mut findings);
        leaves.sort_by_key(|l| l.vaddr);
        let pieces = space::pieces(&leaves, &expected);
        space::check_pd(&decl.name, &expected, &pieces, &mut findings);
        pds.push(PdSpace { index, name: decl.name.clone(), expected, pieces, leaves, program });
    }

    let (mut bases, firsts) = frames::check_regions(sd, &pds, &mut findings);
    lends::check(sd, &spec, &mut bases, &mut uses, &mut findings);
    for pd in &pds {
        program::check(sd, pd, &mem, &mut findings);
        uses.add_pd(pd);
        uses.add_ipc_buffer(pd, spec.pds[pd.index].ipc_buffer_paddr);
        let rec = &spec.pds[pd.index];
        let first = rec.restore_first as usize;
        let ops = spec.restore.get(first..first.saturating_add(rec.restore_count as usize)).unwrap_or_default();
        let restartable = sd.protection_domains.get(pd.index).is_some_and(|d| d.parent.is_some());
        frames::check_restore(pd, restartable, ops, &mem, &mut uses, &mut findings);
        frames::check_setvars(sd, pd, &mem, &bases, &mut uses, &mut findings);
    }
    frames::check_region_runs(sd, &firsts, &bases, &mut findings);
    if let Some(k) = &kernel {
        kernel::check_half(&kernel_leaves, k, &uses, &mut findings);
    }
    kernel::check_boot(&boot_leaves, kernel.as_ref(), &uses, &mut findings);
    uses.report(&mut findings);
    findings
}

/// `[start, start + len)` widened to whole pages, if it fits.
fn page_range(start: u64, len: u64) -> Option<Range<u64>> {
    let end = start.checked_add(len)?.checked_next_multiple_of(PAGE)?;
    Some(start & !(PAGE - 1)..end)
}

/// Where the image holds the kernel's `KERNEL_BOOT_SPEC_PADDR`.
fn symbol_paddr(kernel: &Elf, findings: &mut Vec<Finding>) -> Option<u64> {
    let Some(&vaddr) = kernel.symbols.get(SPEC_SYMBOL) else {
        findings.push(Finding::KernelElf(format!("has no symbol {SPEC_SYMBOL}; looking for the spec by its magic number")));
        return None;
    };
    let seg = kernel.segments.iter().find(|s| {
        vaddr.checked_sub(s.vaddr).and_then(|off| off.checked_add(8)).is_some_and(|end| end <= s.memsz)
    });
    match seg {
        Some(s) => Some(s.paddr.wrapping_add(vaddr - s.vaddr)),
        None => {
            findings.push(Finding::KernelElf(format!("symbol {SPEC_SYMBOL} at {vaddr:#x} is not in a loadable segment")));
            None
        }
    }
}

/// The spec's physical address: what the kernel will read from its
/// patched variable, or, without a usable kernel ELF, the one page that
/// starts with the spec's magic number.
fn locate_spec(mem: &PhysMem, symbol_paddr: Option<u64>, findings: &mut Vec<Finding>) -> Option<u64> {
    if let Some(at) = symbol_paddr {
        match mem.read_u64(at) {
            Ok(v) => return Some(v),
            Err(_) => findings.push(Finding::Image(format!("does not hold the kernel's {SPEC_SYMBOL} at {at:#x}"))),
        }
    }
    let candidates = mem.find_at_page_starts(&MAGIC);
    match candidates.as_slice() {
        [] => {
            findings.push(Finding::Spec("not found: no page of the image starts with its magic number".into()));
            None
        }
        [one] => Some(*one),
        [first, ..] => {
            findings.push(Finding::Spec(format!(
                "{} pages start with its magic number; checking the first, at {first:#x}",
                candidates.len()
            )));
            Some(*first)
        }
    }
}

/// The spec's bytes, copied to 8-byte-aligned memory as `Spec::parse`
/// needs.
struct SpecBuf {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl SpecBuf {
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..self.start + self.len).unwrap_or_default()
    }
}

fn read_spec(mem: &PhysMem, paddr: u64, findings: &mut Vec<Finding>) -> Option<SpecBuf> {
    let header_size = std::mem::size_of::<Header>() as u64;
    let header = match mem.read_vec(paddr, header_size) {
        Ok(h) => h,
        Err(at) => {
            findings.push(Finding::Spec(format!("at {paddr:#x} is not in the image (nothing at {at:#x})")));
            return None;
        }
    };
    let off = std::mem::offset_of!(Header, total_size);
    let mut word = [0u8; 4];
    word.copy_from_slice(header.get(off..off + 4).unwrap_or(&[0; 4]));
    let total = u64::from(u32::from_le_bytes(word));
    if total > MAX_SPEC_SIZE {
        findings.push(Finding::Spec(format!("at {paddr:#x} claims {total:#x} bytes, more than any spec needs")));
        return None;
    }
    // Read what the header claims (Spec::parse reports a short spec).
    let bytes = mem.read_vec(paddr, total.max(header_size)).unwrap_or(header);
    let mut buf = vec![0u8; bytes.len() + 8];
    let start = buf.as_ptr().align_offset(8).min(8);
    buf[start..start + bytes.len()].copy_from_slice(&bytes);
    Some(SpecBuf { buf, start, len: bytes.len() })
}

fn spec_error(e: SpecError) -> String {
    match e {
        SpecError::TooShort => "it is truncated".into(),
        SpecError::BadMagic => "wrong magic number".into(),
        SpecError::BadVersion(v) => format!("version {v}, the checker reads version {VERSION}"),
        SpecError::BadChecksum { stored, computed } => {
            format!("checksum {stored:#x}, but its bytes give {computed:#x}")
        }
        SpecError::BadLayout => "an array lies outside the spec".into(),
        SpecError::TooManyPds(n) => format!("{n} protection domains, more than {MAX_PDS}"),
    }
}

/// The kernel's segments are in the image as the kernel ELF has them,
/// page-rounded (zero around the file bytes, and in `.bss`), except the
/// patched spec address.
fn check_kernel_image(mem: &PhysMem, kernel: &Elf, symbol_paddr: Option<u64>, findings: &mut Vec<Finding>) {
    let ram = RAM_BASE..RAM_BASE + RAM_SIZE;
    for s in &kernel.segments {
        let Some(whole) = s.paddr.checked_add(s.memsz).map(|end| s.paddr..end) else {
            findings.push(Finding::KernelElf(format!("segment at {:#x} runs past the end of memory", s.paddr)));
            continue;
        };
        if !mem.holds(&whole) {
            findings.push(Finding::Image(format!("does not hold the kernel's segment {}", Hex(&whole))));
            continue;
        }
        // The whole pages, or (for an implausibly large segment) its file
        // bytes alone.
        let pages = match page_range(s.paddr, s.memsz) {
            Some(p) if p.end - p.start <= MAX_KERNEL_COMPARED => p,
            _ => s.paddr..s.paddr + s.data.len() as u64,
        };
        let Ok(image) = mem.read_zeroed(pages.start, pages.end - pages.start, &ram) else { continue };
        let mut want = vec![0u8; image.len()];
        let at = (s.paddr - pages.start) as usize;
        want[at..at + s.data.len()].copy_from_slice(s.data);
        // Compare around the patched word with plain slice comparisons.
        let patched = symbol_paddr
            .and_then(|sym| sym.checked_sub(pages.start))
            .and_then(|off| usize::try_from(off).ok())
            .filter(|&off| off < image.len())
            .map(|off| off..(off + 8).min(image.len()));
        let parts = match &patched {
            Some(p) => vec![0..p.start, p.end..image.len()],
            None => vec![0..image.len()],
        };
        let differs = parts.into_iter().find_map(|r| {
            let (a, b) = (image.get(r.clone())?, want.get(r.clone())?);
            if a == b {
                return None;
            }
            let i = a.iter().zip(b).position(|(x, y)| x != y)?;
            Some(pages.start + (r.start + i) as u64)
        });
        if let Some(pa) = differs {
            findings.push(Finding::Image(format!(
                "the kernel segment {} differs from the kernel ELF (first at {pa:#x})",
                Hex(&whole)
            )));
        }
    }
}

/// The image loads only into RAM the system may use (not the device
/// tree's part), and QEMU starts the CPU at the kernel's entry point.
fn check_image_layout(mem: &PhysMem, kernel: Option<&Elf>, findings: &mut Vec<Finding>) {
    let (ram, usable) = (RAM_BASE..RAM_BASE + RAM_SIZE, RAM_BASE + RAM_RESERVED);
    for r in mem.ranges() {
        if !(ram.start <= r.start && r.end <= ram.end) {
            findings.push(Finding::Image(format!("segment {} lies outside RAM {}", Hex(&r), Hex(&ram))));
        } else if r.start < usable {
            findings.push(Finding::Image(format!(
                "segment {} loads into {}, {DEVICE_TREE}",
                Hex(&r),
                Hex(&(RAM_BASE..usable))
            )));
        }
    }
    let Some(kernel) = kernel else { return };
    let entry = kernel.segments.iter().find_map(|s| {
        let off = kernel.entry.checked_sub(s.vaddr)?;
        (off < s.memsz).then(|| s.paddr.wrapping_add(off))
    });
    match entry {
        Some(p) if p == mem.entry => {}
        Some(p) => findings.push(Finding::Image(format!(
            "entry point {:#x}, but the kernel's entry {:#x} is loaded at {p:#x}",
            mem.entry, kernel.entry
        ))),
        None => findings.push(Finding::KernelElf(format!("entry point {:#x} is not in a loadable segment", kernel.entry))),
    }
}

fn check_header(
    header: &Header,
    mem: &PhysMem,
    pool: &Range<u64>,
    spec_range: Option<Range<u64>>,
    options: &Options,
    findings: &mut Vec<Finding>,
) {
    let mut problem = |p: String| findings.push(Finding::Spec(p));
    if header.ram_base != RAM_BASE || header.ram_size != RAM_SIZE {
        problem(format!(
            "RAM is {:#x} bytes at {:#x}, the platform's is {RAM_SIZE:#x} bytes at {RAM_BASE:#x}",
            header.ram_size, header.ram_base
        ));
    }
    let unknown = header.flags & !FLAG_PMU_USER;
    if unknown != 0 {
        problem(format!("unknown header flags {unknown:#x}"));
    }
    if header.flags & FLAG_PMU_USER != 0 && !options.allow_pmu_user {
        problem("the PMU_USER flag lets every PD read the performance counters, which the description does not declare".into());
    }
    let ram = RAM_BASE..RAM_BASE + RAM_SIZE;
    let inside = |r: &Range<u64>| ram.start <= r.start && r.end <= ram.end;
    if pool.start % PAGE != 0 || pool.end % PAGE != 0 || !inside(pool) || !mem.holds(pool) {
        problem(format!(
            "the page-table pool {} must be whole pages of RAM that the image holds",
            Hex(pool)
        ));
    }
    match spec_range {
        Some(r) if inside(&r) => {}
        _ => problem("the spec is not inside RAM".into()),
    }
}

/// One parsed program per PD, `None` where it cannot be read.
fn read_programs<'a>(sd: &sdf::SystemDescription, inputs: &'a Inputs, findings: &mut Vec<Finding>) -> Vec<Option<Elf<'a>>> {
    let pds = sd.protection_domains.len();
    if inputs.programs.len() != pds {
        findings.push(Finding::ProgramCount { pds, programs: inputs.programs.len() });
    }
    sd.protection_domains
        .iter()
        .enumerate()
        .map(|(i, pd)| {
            let bytes = inputs.programs.get(i)?;
            Elf::parse(bytes)
                .map_err(|problem| findings.push(Finding::Program { pd: pd.name.clone(), problem }))
                .ok()
        })
        .collect()
}
