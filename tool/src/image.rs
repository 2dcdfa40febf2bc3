//! From a validated system description to a bootable image: place every
//! frame in physical memory, load and patch the program images, build every
//! address space's translation tables, write the boot spec, and emit one
//! ELF file for QEMU's `-kernel`.

use crate::elf::{write_image, Chunk, ElfImage, Segment};
use crate::layout::PhysAlloc;
use crate::pagetable::{kernel_attrs, user_attrs, AddressSpace, Half, Memory, Rights, BLOCK_1G, BLOCK_2M, PAGE};
use abi::layout::{IPC_BUFFER, PAGE_SIZE, STACK_TOP};
use bootspec::platform::*;
use bootspec::*;
use sdf::{Error, Pos, SetVarValue, SystemDescription};
use std::path::{Path, PathBuf};

pub struct Options {
    pub kernel: PathBuf,
    /// Directories searched for program images not found as written.
    pub search_path: Vec<PathBuf>,
    /// Let PDs read the performance counters (benchmark images).
    pub pmu_user: bool,
}

/// What one PD's address space holds, for the report and the spec.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub vaddr: u64,
    pub size: u64,
    pub paddr: u64,
    pub rights: Rights,
    pub memory: Memory,
    /// What it is: "program image", "stack", "IPC buffer", "region 'x'".
    pub what: String,
}

pub struct PdImage {
    pub program: PathBuf,
    pub entry: u64,
    pub asid: u16,
    pub mappings: Vec<Mapping>,
}

pub struct Built {
    pub elf: Vec<u8>,
    pub pds: Vec<PdImage>,
    /// Physical address of each memory region, in description order.
    pub region_paddrs: Vec<u64>,
    pub spec_paddr: u64,
    pub page_tables: std::ops::Range<u64>,
    pub image_end: u64,
}

/// Errors are reported like the description's own: `file:line:col`.
struct Errors<'a> {
    sd: &'a SystemDescription,
    list: Vec<Error>,
}

impl Errors<'_> {
    fn at(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(Error { file: self.sd.file.clone(), line: pos.line, col: pos.col, message: message.into() });
    }
    fn finish(self) -> Result<(), Vec<Error>> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(self.list)
        }
    }
}

fn whole_file_error(sd: &SystemDescription, message: String) -> Vec<Error> {
    vec![Error { file: sd.file.clone(), line: 0, col: 0, message }]
}

pub fn build(sd: &SystemDescription, opts: &Options) -> Result<Built, Vec<Error>> {
    let kernel = ElfImage::read(&opts.kernel).map_err(|e| whole_file_error(sd, format!("kernel: {e}")))?;
    let mut errors = Errors { sd, list: Vec::new() };
    let base_dir = Path::new(&sd.file).parent().unwrap_or(Path::new("."));
    let mut programs = Vec::new();
    for pd in &sd.protection_domains {
        match find_program(&pd.program_image, base_dir, &opts.search_path) {
            Some(path) => match ElfImage::read(&path) {
                Ok(elf) => programs.push((path, elf)),
                Err(e) => errors.at(pd.program_image_pos, e),
            },
            None => errors.at(
                pd.program_image_pos,
                format!(
                    "program image '{}' of protection domain '{}' not found (looked in {} and the search path {})",
                    pd.program_image,
                    pd.name,
                    base_dir.display(),
                    opts.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
                ),
            ),
        }
    }
    errors.finish()?;
    build_from(sd, &kernel, &programs, opts.pmu_user)
}

/// Build from ELF files already read: `programs` has one entry per PD, in
/// the description's order.
pub fn build_from(
    sd: &SystemDescription,
    kernel: &ElfImage,
    programs: &[(PathBuf, ElfImage)],
    pmu_user: bool,
) -> Result<Built, Vec<Error>> {
    let mut errors = Errors { sd, list: Vec::new() };

    // The kernel sits where it was linked; everything else is allocated
    // above it.
    let kernel_end = kernel.segments.iter().map(|s| s.paddr + s.memsz).max().unwrap_or(KERNEL_PADDR);
    let kernel_end = kernel_end.div_ceil(PAGE) * PAGE;
    let ram = RAM_BASE..RAM_BASE + RAM_SIZE;
    let mut phys = PhysAlloc::new(kernel_end, ram.end);
    for mr in &sd.memory_regions {
        if let Some(r) = mr.phys_range() {
            if r.start < ram.end && ram.start < r.end {
                if r.start < kernel_end || r.end > ram.end {
                    errors.at(
                        mr.pos,
                        format!(
                            "memory region '{}' at phys_addr {:#x} overlaps memory the kernel uses or runs past the end of RAM ({:#x}..{:#x} is free)",
                            mr.name, r.start, kernel_end, ram.end
                        ),
                    );
                }
                phys.reserve(r);
            }
        }
    }
    errors.finish()?;
    let mut errors = Errors { sd, list: Vec::new() };
    let oom = |what: &str| whole_file_error(sd, format!("out of physical memory placing {what} (RAM is {RAM_SIZE:#x} bytes)"));

    let mut region_paddrs = Vec::new();
    for mr in &sd.memory_regions {
        let paddr = match mr.phys_addr {
            Some(p) => p,
            None => phys.alloc(mr.size, mr.page_size).ok_or_else(|| oom(&format!("memory region '{}'", mr.name)))?,
        };
        region_paddrs.push(paddr);
    }

    let mut chunks: Vec<Chunk> = Vec::new();
    let mut pd_images = Vec::new();
    let mut restore: Vec<RestoreOp> = Vec::new();
    let mut descs: Vec<PdDesc> = Vec::new();

    for (i, (pd, (path, elf))) in sd.protection_domains.iter().zip(programs).enumerate() {
        let mut mappings = Vec::new();
        let mut frames: Vec<(u64, Vec<u8>, Segment)> = Vec::new();
        for seg in &elf.segments {
            if seg.write && seg.execute {
                errors.at(
                    pd.program_image_pos,
                    format!("program image '{}' has a segment at {:#x} that is both writable and executable; writable memory is never executable", pd.program_image, seg.vaddr),
                );
                continue;
            }
            let start = seg.vaddr & !(PAGE - 1);
            let end = (seg.vaddr + seg.memsz).div_ceil(PAGE) * PAGE;
            let paddr = phys.alloc(end - start, PAGE).ok_or_else(|| oom(&format!("the program image of '{}'", pd.name)))?;
            let mut bytes = vec![0u8; (end - start) as usize];
            let off = (seg.vaddr - start) as usize;
            bytes[off..off + seg.data.len()].copy_from_slice(&seg.data);
            mappings.push(Mapping {
                vaddr: start,
                size: end - start,
                paddr,
                rights: Rights { read: seg.read, write: seg.write, execute: seg.execute },
                memory: Memory::Cached,
                what: "program image".into(),
            });
            frames.push((start, bytes, seg.clone()));
        }

        // Patch the variables the description sets.
        let mut patch = |symbol: &str, value: &[u8], pos: Pos, errors: &mut Errors, required: bool| {
            let Some(sym) = elf.symbols.get(symbol) else {
                if required {
                    errors.at(pos, format!("symbol '{symbol}' not found in program image '{}'", pd.program_image));
                }
                return;
            };
            if sym.size != 0 && sym.size < value.len() as u64 {
                errors.at(pos, format!("symbol '{symbol}' in '{}' is {} bytes, too small for {} bytes", pd.program_image, sym.size, value.len()));
                return;
            }
            let target = frames.iter_mut().find(|(start, bytes, _)| {
                sym.vaddr >= *start && sym.vaddr.checked_add(value.len() as u64).is_some_and(|end| end <= start + bytes.len() as u64)
            });
            match target {
                Some((start, bytes, _)) => {
                    let off = (sym.vaddr - *start) as usize;
                    bytes[off..off + value.len()].copy_from_slice(value);
                }
                None => errors.at(pos, format!("symbol '{symbol}' in '{}' is not inside a loaded segment", pd.program_image)),
            }
        };
        let mut name = [0u8; 64];
        name[..pd.name.len().min(63)].copy_from_slice(&pd.name.as_bytes()[..pd.name.len().min(63)]);
        patch("microkit_name", &name, pd.pos, &mut errors, false);
        for map in &pd.maps {
            if let Some(sym) = &map.setvar_vaddr {
                patch(sym, &map.vaddr.to_le_bytes(), map.pos, &mut errors, true);
            }
        }
        for sv in &pd.setvars {
            match &sv.value {
                SetVarValue::RegionPaddr(region) => {
                    let paddr = sd.memory_regions.iter().position(|m| m.name == *region).and_then(|idx| region_paddrs.get(idx));
                    match paddr {
                        Some(paddr) => patch(&sv.symbol, &paddr.to_le_bytes(), sv.pos, &mut errors, true),
                        None => errors.at(sv.pos, format!("setvar '{}' names unknown memory region '{region}'", sv.symbol)),
                    }
                }
                SetVarValue::Bytes(bytes) => patch(&sv.symbol, bytes, sv.pos, &mut errors, true),
            }
        }

        // Maps must not land on the program image.
        for map in &pd.maps {
            let mr = sd.memory_region(&map.mr).expect("validated");
            let r = map.vaddr..map.vaddr + mr.size;
            if let Some(m) = mappings.iter().find(|m| m.vaddr < r.end && r.start < m.vaddr + m.size) {
                errors.at(
                    map.pos,
                    format!(
                        "map of memory region '{}' at {:#x}..{:#x} overlaps the program image of '{}' ({:#x}..{:#x})",
                        map.mr, r.start, r.end, pd.name, m.vaddr, m.vaddr + m.size
                    ),
                );
            }
        }

        let stack_paddr = phys.alloc(pd.stack_size, PAGE).ok_or_else(|| oom("a stack"))?;
        let ipc_paddr = phys.alloc(PAGE_SIZE, PAGE).ok_or_else(|| oom("an IPC buffer"))?;
        let rw = Rights { read: true, write: true, execute: false };
        mappings.push(Mapping {
            vaddr: STACK_TOP - pd.stack_size,
            size: pd.stack_size,
            paddr: stack_paddr,
            rights: rw,
            memory: Memory::Cached,
            what: "stack".into(),
        });
        mappings.push(Mapping { vaddr: IPC_BUFFER, size: PAGE, paddr: ipc_paddr, rights: rw, memory: Memory::Cached, what: "IPC buffer".into() });
        for map in &pd.maps {
            let idx = sd.memory_regions.iter().position(|m| m.name == map.mr).expect("validated");
            let mr = &sd.memory_regions[idx];
            mappings.push(Mapping {
                vaddr: map.vaddr,
                size: mr.size,
                paddr: region_paddrs[idx],
                rights: Rights { read: map.perms.read, write: map.perms.write, execute: map.perms.execute },
                memory: if map.cached { Memory::Cached } else { Memory::Device },
                what: format!("region '{}'", mr.name),
            });
        }

        // A PD with a parent can be restarted: keep pristine copies of its
        // writable segments and zero its stack and IPC buffer. A segment's
        // zero tail (its `.bss`, a filter's large static buffers) is neither
        // stored in the image nor copied: it loads as zeroes and a restart
        // zeroes it.
        let restore_first = restore.len() as u32;
        let restartable = pd.parent.is_some();
        for (start, bytes, seg) in frames {
            let paddr = mappings.iter().find(|m| m.vaddr == start).expect("segment mapped").paddr;
            let (len, kept) = (bytes.len() as u64, without_zero_tail(&bytes).len() as u64);
            if restartable && seg.write {
                if kept > 0 {
                    let src = phys.alloc(kept, PAGE).ok_or_else(|| oom("a pristine copy"))?;
                    chunks.push(Chunk { paddr: src, data: bytes[..kept as usize].to_vec(), memsz: kept });
                    restore.push(RestoreOp { kind: RESTORE_COPY, _reserved: 0, dst_paddr: paddr, src_paddr: src, len: kept });
                }
                if kept < len {
                    restore.push(RestoreOp { kind: RESTORE_ZERO, _reserved: 0, dst_paddr: paddr + kept, src_paddr: 0, len: len - kept });
                }
            }
            let mut data = bytes;
            data.truncate(kept as usize);
            chunks.push(Chunk { paddr, memsz: len, data });
        }
        if restartable {
            for (dst, len) in [(stack_paddr, pd.stack_size), (ipc_paddr, PAGE)] {
                restore.push(RestoreOp { kind: RESTORE_ZERO, _reserved: 0, dst_paddr: dst, src_paddr: 0, len });
            }
        }

        let mut desc = PdDesc::empty();
        desc.set_name(&pd.name);
        desc.priority = pd.priority;
        desc.flags = if pd.passive { PD_PASSIVE } else { 0 } | if pd.can_power_off { PD_CAN_POWER_OFF } else { 0 };
        desc.entry = elf.entry;
        desc.stack_top = STACK_TOP;
        desc.ipc_buffer_paddr = ipc_paddr;
        desc.asid = FIRST_ASID + i as u16;
        desc.restore_first = restore_first;
        desc.restore_count = restore.len() as u32 - restore_first;
        desc.call_budget_us = pd.call_budget.map_or(0, |us| us as u32);
        if let (Some(parent), Some(id)) = (pd.parent, pd.child_id) {
            desc.parent = parent as u8;
            desc.id_in_parent = id;
        }
        for irq in &pd.irqs {
            desc.channels[irq.id as usize] = ChannelDesc {
                kind: CHANNEL_IRQ,
                irq: irq.irq as u16,
                trigger: if irq.trigger == sdf::Trigger::Edge { TRIGGER_EDGE } else { TRIGGER_LEVEL },
                ..Default::default()
            };
        }
        descs.push(desc);
        pd_images.push(PdImage { program: path.clone(), entry: elf.entry, asid: desc.asid, mappings });
    }
    errors.finish()?;

    for (child, pd) in sd.protection_domains.iter().enumerate() {
        if let (Some(parent), Some(id)) = (pd.parent, pd.child_id) {
            descs[parent].children[id as usize] = child as u8;
        }
    }
    // Channels; the calling end of a channel with `<lend>`s gets them as
    // the regions its calls may lend (whole regions, contiguous frames).
    let mut lends: Vec<LendDesc> = Vec::new();
    for ch in &sd.channels {
        for (me, other) in [(&ch.ends[0], &ch.ends[1]), (&ch.ends[1], &ch.ends[0])] {
            let rights = if me.notify { RIGHT_NOTIFY } else { 0 } | if me.pp { RIGHT_PPC } else { 0 };
            let mut desc = ChannelDesc { kind: CHANNEL_PD, rights, peer: other.pd as u8, peer_channel: other.id, ..Default::default() };
            if me.pp && !ch.lends.is_empty() {
                desc.lend_first = lends.len() as u16;
                desc.lend_count = ch.lends.len() as u16;
                for lend in &ch.lends {
                    let idx = sd.memory_regions.iter().position(|m| m.name == lend.mr).expect("validated");
                    let rights = abi::GRANT_READ | if lend.perms.write { abi::GRANT_WRITE } else { 0 };
                    lends.push(LendDesc { paddr: region_paddrs[idx], size: sd.memory_regions[idx].size, rights, _reserved: [0; 7] });
                }
            }
            descs[me.pd].channels[me.id as usize] = desc;
        }
    }

    // Address spaces.
    let mut errors = Errors { sd, list: Vec::new() };
    let mut spaces = Vec::new();
    for (pd, img) in sd.protection_domains.iter().zip(&pd_images) {
        let mut space = AddressSpace::new(Half::Lower);
        for m in &img.mappings {
            let max_block = if m.what.starts_with("region") { BLOCK_2M } else { PAGE };
            if let Err(e) = space.map(m.vaddr, m.paddr, m.size, user_attrs(m.rights, m.memory), max_block) {
                errors.at(pd.pos, format!("cannot map {} of '{}': {e}", m.what, pd.name));
            }
        }
        spaces.push(space);
    }
    errors.finish()?;
    let kernel_space = kernel_address_space(kernel, kernel_end).map_err(|e| whole_file_error(sd, format!("kernel: {e}")))?;
    let mut boot_space = AddressSpace::new(Half::Lower);
    boot_space
        .map(RAM_BASE, RAM_BASE, BLOCK_1G, kernel_attrs(false, true, Memory::Cached) | crate::pagetable::bits::NOT_GLOBAL, BLOCK_1G)
        .expect("empty address space");

    // The spec, then all tables in one pool.
    let spec_size = SpecBuilder { header: Header::empty(), pds: &descs, restore: &restore, lends: &lends }.size() as u64;
    let spec_paddr = phys.alloc(spec_size.div_ceil(PAGE) * PAGE, PAGE).ok_or_else(|| oom("the boot spec"))?;
    let table_count: usize = spaces.iter().map(|s| s.table_count()).sum::<usize>() + kernel_space.table_count() + boot_space.table_count();
    let pool = phys.alloc(table_count as u64 * PAGE, PAGE).ok_or_else(|| oom("translation tables"))?;
    let mut tables = Vec::new();
    let mut place = |space: &AddressSpace| {
        let base = pool + tables.len() as u64;
        tables.extend(space.place(base));
        base
    };
    let kernel_ttbr1 = place(&kernel_space);
    let boot_ttbr0 = place(&boot_space);
    for (desc, space) in descs.iter_mut().zip(&spaces) {
        desc.ttbr0 = place(space);
    }

    let mut header = Header::empty();
    header.flags = if pmu_user { FLAG_PMU_USER } else { 0 };
    header.kernel_ttbr1 = kernel_ttbr1;
    header.boot_ttbr0 = boot_ttbr0;
    header.ram_base = RAM_BASE;
    header.ram_size = RAM_SIZE;
    header.page_tables_paddr = pool;
    header.page_tables_size = tables.len() as u64;
    let builder = SpecBuilder { header, pds: &descs, restore: &restore, lends: &lends };
    let mut spec = vec![0u8; builder.size()];
    builder.write(&mut spec).expect("sized above");

    // The kernel, with the spec's address patched in.
    let spec_sym = kernel
        .symbols
        .get("KERNEL_BOOT_SPEC_PADDR")
        .ok_or_else(|| whole_file_error(sd, "kernel: symbol KERNEL_BOOT_SPEC_PADDR not found".into()))?;
    let mut patched = false;
    for seg in &kernel.segments {
        let mut data = seg.data.clone();
        if spec_sym.vaddr >= seg.vaddr && spec_sym.vaddr + 8 <= seg.vaddr + data.len() as u64 {
            let off = (spec_sym.vaddr - seg.vaddr) as usize;
            data[off..off + 8].copy_from_slice(&spec_paddr.to_le_bytes());
            patched = true;
        }
        chunks.push(Chunk { paddr: seg.paddr, data, memsz: seg.memsz });
    }
    if !patched {
        return Err(whole_file_error(sd, "kernel: KERNEL_BOOT_SPEC_PADDR has no bytes in the file to patch".into()));
    }
    chunks.push(Chunk { paddr: spec_paddr, memsz: spec.len() as u64, data: spec });
    chunks.push(Chunk { paddr: pool, memsz: tables.len() as u64, data: tables });
    chunks.sort_by_key(|c| c.paddr);

    let entry = kernel.entry.wrapping_sub(KERNEL_VIRT_OFFSET);
    Ok(Built {
        elf: write_image(&chunks, entry),
        pds: pd_images,
        region_paddrs,
        spec_paddr,
        page_tables: pool..pool + table_count as u64 * PAGE,
        image_end: phys.high_water(),
    })
}

/// The kernel's half: devices, then RAM as a linear map, with the kernel
/// image itself mapped page by page with each segment's rights.
fn kernel_address_space(kernel: &ElfImage, kernel_end: u64) -> Result<AddressSpace, String> {
    let mut s = AddressSpace::new(Half::Upper);
    let v = |p: u64| p + KERNEL_VIRT_OFFSET;
    s.map(v(DEVICE_BASE), DEVICE_BASE, DEVICE_SIZE, kernel_attrs(true, false, Memory::Device), BLOCK_1G)
        .map_err(|e| e.to_string())?;
    let mut covered = Vec::new();
    for seg in &kernel.segments {
        let start = seg.paddr & !(PAGE - 1);
        let end = (seg.paddr + seg.memsz).div_ceil(PAGE) * PAGE;
        s.map(v(start), start, end - start, kernel_attrs(seg.write, seg.execute, Memory::Cached), PAGE)
            .map_err(|e| e.to_string())?;
        covered.push(start..end);
    }
    covered.sort_by_key(|r| r.start);
    // RAM between and around the kernel's segments: read-write, never executable.
    let mut at = RAM_BASE;
    for r in covered.iter().chain(std::iter::once(&(RAM_BASE + RAM_SIZE..RAM_BASE + RAM_SIZE))) {
        if r.start > at {
            s.map(v(at), at, r.start - at, kernel_attrs(true, false, Memory::Cached), BLOCK_2M)
                .map_err(|e| e.to_string())?;
        }
        at = at.max(r.end);
    }
    debug_assert!(kernel_end <= RAM_BASE + RAM_SIZE);
    Ok(s)
}

/// Where a program image is: as written (absolute), beside the system
/// description, or in the search path.
pub fn find_program(name: &str, base_dir: &Path, search_path: &[PathBuf]) -> Option<PathBuf> {
    let direct = Path::new(name);
    if direct.is_absolute() {
        return direct.is_file().then(|| direct.to_path_buf());
    }
    std::iter::once(base_dir.to_path_buf())
        .chain(search_path.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `bytes` without its run of trailing zeroes.
fn without_zero_tail(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}
