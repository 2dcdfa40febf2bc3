//! Single-bit flips across a built image, and what each one does.
//!
//! The checker must catch every flip that changes what the kernel or a PD
//! can reach or run. Whether a flip does is decided here, apart from the
//! checker, by a model of what the loader (QEMU), the MMU and the kernel
//! do with each byte; a flip the checker lets pass must fall in a harmless
//! class, and the class says why. A harmful flip that passes fails the
//! test. The tally (run with `--nocapture` to see it) counts, per area and
//! class, the flips caught and the flips let pass.
//!
//! What is flipped (one bit per byte, the bit rotating with the byte's
//! place so every bit position of every field comes up), on the `default`
//! fixture unless said otherwise:
//!
//! - **ELF headers**: every byte of the file header and of the 30 program
//!   headers, and every file byte no header points at (padding);
//! - **boot spec, checksum recomputed** (what a builder bug would write):
//!   every byte of the header (but the checksum) and of the restore ops;
//!   of each PD record the bytes at offsets congruent to the PD's index
//!   modulo 8, so each of the record layout's 1176 offsets is flipped in
//!   one of the eight records; the `devices` fixture's lend array whole;
//! - **boot spec as damaged**: every 61st byte, checksum left as it is;
//! - **translation tables**: every entry of every table in the pool. A
//!   valid entry four times (bits k, k+16, k+32, k+48, k rotating from
//!   entry to entry: every bit position of every kind of descriptor comes
//!   up about 57 times); an invalid entry once (bit rotating), the checker
//!   run on every 61st of those and on every fourth that sets the valid
//!   bit, since an invalid entry with one bit flipped grants nothing
//!   whatever the checker says; the `devices` fixture's valid entries once
//!   each (2 MiB blocks, device memory);
//! - **PD code and data**: every 127th byte of the frames the PDs' program
//!   segments map, every byte of every patched variable (`setvar`s,
//!   `microkit_name`), every 127th byte of the pristine copies kept for
//!   restarts;
//! - **kernel code and data**: every 127th byte of the kernel's segments,
//!   and the patched `KERNEL_BOOT_SPEC_PADDR`.
//!
//! Strides rather than every byte: a check takes a few milliseconds in a
//! debug build, and the image holds about 600 KB; the bytes of code and
//! data all fall in one class (compared byte for byte), so a stride finds
//! the same as every byte would. About 11,500 checks run, spread over the
//! machine's cores (about 16 s on two in a debug build).

mod support;

use bootspec::platform::{KERNEL_VIRT_OFFSET, RAM_BASE, RAM_RESERVED, RAM_SIZE};
use bootspec::{ChannelDesc, Header, LendDesc, PdDesc, RestoreOp, Spec, CHANNEL_IRQ, CHANNEL_PD, NO_PD, RESTORE_COPY, RIGHT_PPC};
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::ops::Range;
use support::*;

const USABLE: Range<u64> = RAM_BASE + RAM_RESERVED..RAM_BASE + RAM_SIZE;

// ---------------------------------------------------------------------
// Flips, running them, and the tally.

#[derive(Clone, Debug)]
enum Class {
    /// Changes what the kernel or a PD can reach or run: must be caught.
    Harmful(String),
    /// Changes nothing the kernel or a PD can reach or run, for this
    /// reason.
    Harmless(&'static str),
}

struct Flip {
    area: &'static str,
    offset: usize,
    bit: u8,
    /// File offset of the spec whose checksum is recomputed after the flip.
    fix_spec: Option<usize>,
    /// Whether the checker is run on it.
    run: bool,
    /// Where, for a message.
    what: String,
    class: Class,
}

fn flipped(image: &[u8], flip: &Flip) -> Vec<u8> {
    let mut bytes = image.to_vec();
    bytes[flip.offset] ^= 1 << flip.bit;
    if let Some(spec) = flip.fix_spec {
        fix_checksum(&mut bytes, spec);
    }
    bytes
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Recompute the spec's checksum where the (possibly flipped) header says
/// the spec ends; leave it if that is past the file.
fn fix_checksum(bytes: &mut [u8], spec: usize) {
    let total = u32_at(bytes, spec + offset_of!(Header, total_size)).unwrap_or(0) as usize;
    if total < size_of::<Header>() || spec + total > bytes.len() {
        return;
    }
    let sum = bootspec::checksum_with_field_zeroed(&bytes[spec..spec + total]);
    let at = spec + offset_of!(Header, checksum);
    bytes[at..at + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Run the checker on every flip marked to run, on all cores: whether it
/// reported anything.
fn run(f: &Fixture, flips: &[Flip]) -> Vec<Option<bool>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(16);
    let mut caught = vec![None; flips.len()];
    let parts: Vec<Vec<(usize, bool)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..flips.len())
                        .step_by(threads)
                        .filter(|&i| flips[i].run)
                        .map(|i| (i, !f.check_image(&flipped(&f.image, &flips[i])).is_empty()))
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("no panic")).collect()
    });
    for (i, c) in parts.into_iter().flatten() {
        caught[i] = Some(c);
    }
    caught
}

#[derive(Default)]
struct Tally {
    /// (area, class, reason or "harmful") -> (caught, passed, not run).
    rows: BTreeMap<(String, &'static str, String), (usize, usize, usize)>,
    missed: Vec<String>,
}

impl Tally {
    fn add(&mut self, fixture: &str, flips: &[Flip], caught: &[Option<bool>]) {
        for (flip, caught) in flips.iter().zip(caught) {
            let (kind, label) = match &flip.class {
                Class::Harmful(_) => ("harmful", String::new()),
                Class::Harmless(why) => ("harmless", why.to_string()),
            };
            let row = self.rows.entry((format!("{fixture}: {}", flip.area), kind, label)).or_default();
            match caught {
                Some(true) => row.0 += 1,
                Some(false) => row.1 += 1,
                None => row.2 += 1,
            }
            if let (Class::Harmful(why), Some(false)) = (&flip.class, caught) {
                self.missed.push(format!("{fixture}: {} ({}, file offset {:#x} bit {}): {why}", flip.what, flip.area, flip.offset, flip.bit));
            }
            if let (Class::Harmful(why), None) = (&flip.class, caught) {
                self.missed.push(format!("{fixture}: {} ({}, bit {}): {why} (not run)", flip.what, flip.area, flip.bit));
            }
        }
    }

    fn passed(&self, area: &str, reason: &str) -> usize {
        self.rows.iter().filter(|((a, _, r), _)| a.ends_with(area) && r == reason).map(|(_, c)| c.1).sum()
    }

    fn caught_of(&self, reason: &str) -> usize {
        self.rows.iter().filter(|((_, _, r), _)| r == reason).map(|(_, c)| c.0).sum()
    }

    fn print(&self) {
        let mut last = String::new();
        for ((area, kind, label), (caught, passed, skipped)) in &self.rows {
            if *area != last {
                eprintln!("{area}");
                last = area.clone();
            }
            let label = if *kind == "harmful" { "changes what the kernel or a PD reaches or runs".to_string() } else { label.clone() };
            eprintln!("    {kind:8} caught {caught:5}  passed {passed:5}  not run {skipped:5}  {label}");
        }
    }
}

// ---------------------------------------------------------------------
// What the image is made of, read independently of the checker.

/// A PT_LOAD program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Phdr {
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// What QEMU loads from an image file: the entry point and each PT_LOAD
/// segment's file bytes at its physical address. QEMU (`load_elf` in
/// `include/hw/elf_ops.h`) checks the magic, class, byte order and machine,
/// reads `e_phnum` headers of `sizeof(Elf64_Phdr)` from `e_phoff`, loads
/// `p_filesz` bytes from `p_offset` at `p_paddr` and zero-fills to
/// `p_memsz`, and moves the entry point into an executable segment whose
/// `p_vaddr` differs from its `p_paddr` when `e_entry` lies in that
/// segment's virtual range. It reads nothing else (section headers only
/// for its own symbol table). Loads that overlap, leave RAM or land on the
/// device tree's RAM do not boot; neither do file bytes past `p_memsz`
/// (treated as refused here, to be safe).
struct Load<'a> {
    entry: u64,
    segments: Vec<(Phdr, &'a [u8])>,
}

fn qemu_load(file: &[u8]) -> Result<Load<'_>, String> {
    if file.len() < 64 || file[..4] != *b"\x7fELF" {
        return Err("not an ELF file: QEMU would load it as a raw image".into());
    }
    if file[4] != 2 || file[5] != 1 {
        return Err("not ELF64 little-endian: QEMU reads it otherwise".into());
    }
    if u16_at(file, 18) != Some(183) {
        return Err("not AArch64: QEMU refuses it".into());
    }
    let e_entry = u64_at(file, 24).unwrap_or(0);
    let mut entry = e_entry;
    let (phoff, phnum) = (u64_at(file, 32).unwrap_or(0) as usize, u16_at(file, 56).unwrap_or(0) as usize);
    let table = phoff.checked_add(phnum * 56).and_then(|end| file.get(phoff..end)).ok_or("program headers past the file")?;
    let mut segments = Vec::new();
    for ph in table.chunks_exact(56) {
        if u32_at(ph, 0) != Some(1) {
            continue;
        }
        let h = Phdr {
            flags: u32_at(ph, 4).unwrap_or(0),
            offset: u64_at(ph, 8).unwrap_or(0),
            vaddr: u64_at(ph, 16).unwrap_or(0),
            paddr: u64_at(ph, 24).unwrap_or(0),
            filesz: u64_at(ph, 32).unwrap_or(0),
            memsz: u64_at(ph, 40).unwrap_or(0),
        };
        let data = usize::try_from(h.offset)
            .ok()
            .zip(usize::try_from(h.filesz).ok())
            .and_then(|(o, n)| file.get(o..o.checked_add(n)?))
            .ok_or("a segment's bytes lie past the file")?;
        if h.vaddr != h.paddr && e_entry >= h.vaddr && e_entry < h.vaddr.wrapping_add(h.filesz) && h.flags & 1 != 0 {
            entry = e_entry.wrapping_sub(h.vaddr).wrapping_add(h.paddr);
        }
        if h.filesz > h.memsz {
            return Err("a segment has more file bytes than memory".into());
        }
        segments.push((h, data));
    }
    let mut spans: Vec<Range<u64>> = segments
        .iter()
        .filter(|(h, _)| h.memsz > 0)
        .map(|(h, _)| h.paddr..h.paddr.saturating_add(h.memsz))
        .collect();
    spans.sort_by_key(|r| r.start);
    for (i, r) in spans.iter().enumerate() {
        if !(USABLE.start <= r.start && r.end <= USABLE.end) {
            return Err("a segment loads outside the RAM the image may use".into());
        }
        if spans.get(i + 1).is_some_and(|n| n.start < r.end) {
            return Err("segments overlap: QEMU refuses the image".into());
        }
    }
    Ok(Load { entry, segments })
}

fn same_load(a: &Load, b: &Load) -> bool {
    if a.entry != b.entry {
        return false;
    }
    fn bytes<'a>(l: &Load<'a>) -> Vec<(u64, &'a [u8])> {
        l.segments.iter().filter(|(_, d)| !d.is_empty()).map(|(h, d)| (h.paddr, *d)).collect()
    }
    let (sa, sb) = (bytes(a), bytes(b));
    if sa == sb {
        return true;
    }
    // Compare the pages the segments only one of them has touch.
    let only = sa.iter().filter(|s| !sb.contains(s)).chain(sb.iter().filter(|s| !sa.contains(s)));
    let mut touched = std::collections::BTreeSet::new();
    for (pa, data) in only {
        touched.extend((pa & !(PAGE - 1)..pa + data.len() as u64).step_by(PAGE as usize));
    }
    let page = |segments: &[(u64, &[u8])], at: u64| {
        let mut out = vec![0u8; PAGE as usize];
        for (pa, data) in segments {
            let (start, end) = ((*pa).max(at), (pa + data.len() as u64).min(at + PAGE));
            if start < end {
                out[(start - at) as usize..(end - at) as usize].copy_from_slice(&data[(start - pa) as usize..(end - pa) as usize]);
            }
        }
        out
    };
    touched.into_iter().all(|at| page(&sa, at) == page(&sb, at))
}

/// The spec, parsed from an aligned copy.
fn with_spec<T>(bytes: &[u8], f: impl FnOnce(Option<&Spec>) -> T) -> T {
    let mut buf = vec![0u8; bytes.len() + 8];
    let start = buf.as_ptr().align_offset(8).min(8);
    buf[start..start + bytes.len()].copy_from_slice(bytes);
    let spec = Spec::parse(&buf[start..start + bytes.len()]).ok();
    f(spec.as_ref())
}

/// Where things are in the original image.
struct Layout {
    spec: usize,
    spec_len: usize,
    /// Physical ranges something uses or names: every loaded segment, the
    /// device tree's RAM, every PD mapping's frames, the IPC buffers, the
    /// restore ops' ranges, the lends, fixed regions.
    used: Vec<Range<u64>>,
    /// Ranges the spec or the description name by address (a page there
    /// cannot move unnoticed by its namer).
    named: Vec<Range<u64>>,
    /// Every PD leaf: (pd, vaddr, frames).
    pd_leaves: Vec<(usize, u64, Range<u64>)>,
    /// Table -> who walks it, at which level and address, under which
    /// table controls.
    tables: BTreeMap<u64, TableAt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tree {
    Kernel,
    Boot,
    Pd(usize),
}

#[derive(Clone, Copy, Debug)]
struct TableAt {
    tree: Tree,
    level: u32,
    vbase: u64,
    controls: u64,
}

fn shift(level: u32) -> u32 {
    39 - 9 * level
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl Layout {
    fn read(f: &Fixture, image: &Image) -> Layout {
        let spec = image.spec_offset();
        let spec_len = u32_at(&image.bytes, spec + offset_of!(Header, total_size)).unwrap() as usize;
        let load = qemu_load(&image.bytes).expect("the fixture loads");
        let mut used: Vec<Range<u64>> = load.segments.iter().map(|(h, _)| h.paddr..h.paddr + h.memsz).collect();
        used.push(RAM_BASE..USABLE.start);
        let mut named = Vec::new();
        let mut layout = Layout { spec, spec_len, used: Vec::new(), named: Vec::new(), pd_leaves: Vec::new(), tables: BTreeMap::new() };
        with_spec(&image.bytes[spec..spec + spec_len], |s| {
            let s = s.expect("the fixture's spec parses");
            for pd in s.pds {
                named.push(pd.ipc_buffer_paddr..pd.ipc_buffer_paddr + PAGE);
            }
            for op in s.restore {
                named.push(op.dst_paddr..op.dst_paddr + op.len);
                if op.kind == RESTORE_COPY {
                    named.push(op.src_paddr..op.src_paddr + op.len);
                }
            }
            for l in s.lends {
                named.push(l.paddr..l.paddr + l.size);
            }
            let mut roots = vec![(Tree::Kernel, s.header.kernel_ttbr1), (Tree::Boot, s.header.boot_ttbr0)];
            roots.extend(s.pds.iter().enumerate().map(|(i, pd)| (Tree::Pd(i), pd.ttbr0)));
            for (tree, root) in roots {
                let upper = if tree == Tree::Kernel { KERNEL_VIRT_OFFSET } else { 0 };
                layout.walk(image, TableAt { tree, level: 0, vbase: upper, controls: 0 }, root);
            }
        });
        for mr in &f.sd.memory_regions {
            if let Some(p) = mr.phys_addr {
                named.push(p..p + mr.size);
            }
        }
        used.extend(named.iter().cloned());
        used.extend(layout.pd_leaves.iter().map(|(_, _, r)| r.clone()));
        layout.used = used;
        layout.named = named;
        layout
    }

    fn walk(&mut self, image: &Image, at: TableAt, table: u64) {
        self.tables.insert(table, at);
        for i in 0..512u64 {
            let d = image.read_u64(table + i * 8);
            let vaddr = at.vbase | i << shift(at.level);
            match (at.level, d & 0b11) {
                (0..=2, 0b11) => {
                    let next = TableAt { tree: at.tree, level: at.level + 1, vbase: vaddr, controls: at.controls | (d & CONTROLS) };
                    self.walk(image, next, d & ADDR);
                }
                (1 | 2, 0b01) | (3, 0b11) => {
                    if let Tree::Pd(pd) = at.tree {
                        let size = 1u64 << shift(at.level);
                        let pa = d & ADDR & !(size - 1);
                        self.pd_leaves.push((pd, vaddr, pa..pa + size));
                    }
                }
                _ => {}
            }
        }
    }

    /// The spec's field at byte `rel`, and the reason a change to it is
    /// harmless where it is (`None`: the kernel acts on it).
    fn spec_field(&self, spec: &Spec, sd: &sdf::SystemDescription, rel: usize) -> (String, Option<&'static str>) {
        let h = spec.header;
        let unused = Some("a field the channel slot's kind does not use");
        let reserved = Some("a reserved field (the kernel ignores it)");
        if rel < size_of::<Header>() {
            let fields: &[(&str, usize, usize)] = &[
                ("page_tables_paddr", offset_of!(Header, page_tables_paddr), 8),
                ("page_tables_size", offset_of!(Header, page_tables_size), 8),
            ];
            for (name, at, len) in fields {
                if (*at..at + len).contains(&rel) {
                    return (format!("header {name}"), Some("where the tables are, for image checkers: the kernel never reads it"));
                }
            }
            let empty = [
                (offset_of!(Header, restore_offset), h.restore_count),
                (offset_of!(Header, lend_offset), h.lend_count),
                (offset_of!(Header, pd_offset), h.pd_count),
            ];
            for (at, count) in empty {
                if (at..at + 4).contains(&rel) && count == 0 {
                    return (format!("header byte {rel}"), Some("the offset of an empty array"));
                }
            }
            return (format!("header byte {rel}"), None);
        }
        let in_array = |offset: u32, count: usize, size: usize| {
            let o = rel.checked_sub(offset as usize)?;
            (o < count * size).then_some((o / size, o % size))
        };
        if let Some((i, o)) = in_array(h.pd_offset, spec.pds.len(), size_of::<PdDesc>()) {
            let pd = &spec.pds[i];
            let name = |f: &str| format!("pd {i} {f}");
            let chans = offset_of!(PdDesc, channels);
            if o < 64 {
                let nul = pd.name.iter().position(|&b| b == 0).unwrap_or(64);
                return (name("name"), (o > nul).then_some("name bytes after its NUL (the kernel stops there)"));
            }
            let field = |f: usize, len: usize| (f..f + len).contains(&o);
            if field(offset_of!(PdDesc, restore_first), 4) && pd.restore_count == 0 {
                return (name("restore_first"), Some("restore_first of a PD with no restore ops"));
            }
            if field(offset_of!(PdDesc, restore_first), 8) {
                return (name("restore slice"), Some(RESTART_SAME));
            }
            if field(offset_of!(PdDesc, id_in_parent), 1) && pd.parent == NO_PD {
                return (name("id_in_parent"), Some("id_in_parent of a PD without a parent"));
            }
            if field(offset_of!(PdDesc, _reserved), 2) || field(offset_of!(PdDesc, _reserved2), 4) {
                return (name("reserved"), reserved);
            }
            if o >= chans {
                let (c, co) = ((o - chans) / size_of::<ChannelDesc>(), (o - chans) % size_of::<ChannelDesc>());
                let slot = &pd.channels[c];
                let f = |f: usize, len: usize| (f..f + len).contains(&co);
                let label = name(&format!("channel {c}"));
                if f(offset_of!(ChannelDesc, kind), 1) {
                    return (label, None);
                }
                if f(offset_of!(ChannelDesc, rights), 3) {
                    return (label, (slot.kind != CHANNEL_PD).then_some(unused).flatten());
                }
                if f(offset_of!(ChannelDesc, irq), 3) {
                    return (label, (slot.kind != CHANNEL_IRQ).then_some(unused).flatten());
                }
                if f(offset_of!(ChannelDesc, lend_first), 4) {
                    let lends = slot.kind == CHANNEL_PD && slot.rights & RIGHT_PPC != 0;
                    return (label, (!lends).then_some("the lend slice of a slot the kernel lends nothing on"));
                }
                return (label, reserved);
            }
            return (name(&format!("byte {o}")), None);
        }
        if let Some((j, o)) = in_array(h.restore_offset, spec.restore.len(), size_of::<RestoreOp>()) {
            let op = &spec.restore[j];
            let field = |f: usize, len: usize| (f..f + len).contains(&o);
            if field(offset_of!(RestoreOp, _reserved), 4) {
                return (format!("restore op {j}"), reserved);
            }
            if field(offset_of!(RestoreOp, src_paddr), 8) && op.kind != RESTORE_COPY {
                return (format!("restore op {j} src_paddr"), Some("src_paddr of a zeroing restore op"));
            }
            return (format!("restore op {j}"), Some(RESTART_SAME));
        }
        if let Some((j, o)) = in_array(h.lend_offset, spec.lends.len(), size_of::<LendDesc>()) {
            let field = |f: usize, len: usize| (f..f + len).contains(&o);
            if field(offset_of!(LendDesc, _reserved), 7) {
                return (format!("lend {j}"), reserved);
            }
            if field(offset_of!(LendDesc, paddr), 8) && self.unplaced_lend(sd, j) {
                return (format!("lend {j} paddr"), Some(MOVED_UNPLACED));
            }
            return (format!("lend {j}"), None);
        }
        (format!("spec byte {rel}"), Some("bytes between the spec's arrays"))
    }

    /// Whether lend `j` is the only lend of a region the description does
    /// not place (no `phys_addr`, no PD maps it): its lend is all that
    /// says where it is.
    fn unplaced_lend(&self, sd: &sdf::SystemDescription, j: usize) -> bool {
        let lends: Vec<&str> = sd.channels.iter().flat_map(|c| c.lends.iter().map(|l| l.mr.as_str())).collect();
        let Some(mr) = lends.get(j) else { return false };
        let region = sd.memory_region(mr).expect("declared");
        let mapped = sd.protection_domains.iter().any(|pd| pd.maps.iter().any(|m| m.mr == *mr));
        region.phys_addr.is_none() && !mapped && lends.iter().filter(|l| *l == mr).count() == 1
    }

    /// Whether `r` is RAM the image may use that nothing uses or names,
    /// `own` aside.
    fn free(&self, r: &Range<u64>, own: &Range<u64>) -> bool {
        USABLE.start <= r.start && r.end <= USABLE.end && !self.used.iter().any(|u| u != own && overlaps(u, r))
    }
}

const RESTART_SAME: &str = "a restore op or slice changed so that every restart leaves memory exactly as before";

/// What restarting each PD that can be restarted (it has a parent) writes:
/// address -> byte, per PD, the ops applied in order. `None` where the
/// kernel would do something else than copy and zero (an unknown kind, a
/// slice past the array, an op of more than 16 MiB).
fn restarts(image: &Image, spec: &Spec) -> Option<Vec<BTreeMap<u64, u8>>> {
    let view = View { image, patch: None };
    let mut out = Vec::new();
    for pd in spec.pds {
        let mut written = BTreeMap::new();
        if pd.parent != NO_PD {
            let first = pd.restore_first as usize;
            for op in spec.restore.get(first..first.checked_add(pd.restore_count as usize)?)? {
                if op.len > 16 << 20 {
                    return None;
                }
                let src = match op.kind {
                    RESTORE_COPY => Some(view.bytes(op.src_paddr, op.len)?),
                    bootspec::RESTORE_ZERO => None,
                    _ => return None,
                };
                for k in 0..op.len {
                    written.insert(op.dst_paddr.checked_add(k)?, src.as_ref().map_or(0, |s| s[k as usize]));
                }
            }
        }
        out.push(written);
    }
    Some(out)
}

const MOVED_UNPLACED: &str = "a lent region nothing maps or places, moved to other free RAM (it starts zeroed there too)";

// ---------------------------------------------------------------------
// The MMU's view of one entry: the translations under it.

const CONTROLS: u64 = 0xf << 59;
const CONTIGUOUS: u64 = 1 << 52;
/// NS, DBM, software bits, PBHA, bit 63 (see `reason`).
const IGNORED: u64 = 1 << 5 | 1 << 51 | 0x1ff << 55;

/// One translation as the MMU gives it: rights for EL0 and EL1 as rwx
/// bits, the memory type (Device for AttrIndx 0 and for the MAIR_EL1 bytes
/// the kernel leaves 0, Normal write-back with its shareability, Normal
/// non-cacheable, where shareability does not matter), and for the lower
/// half whether it is global.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Translation {
    vaddr: u64,
    size: u64,
    paddr: u64,
    el0: u8,
    el1: u8,
    memory: (u8, u8),
    global: Option<bool>,
}

/// Physical memory with one word replaced.
struct View<'a> {
    image: &'a Image,
    patch: Option<(u64, u64)>,
}

impl View<'_> {
    /// `len` bytes at `pa`: the file's, zero in RAM the file does not
    /// load, `None` outside RAM.
    fn bytes(&self, pa: u64, len: u64) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let mut at = pa;
        while at < pa.checked_add(len)? {
            match self.image.segments().iter().find(|(p, _, n)| *p <= at && at < p + *n as u64) {
                Some(&(p, off, n)) => {
                    let stop = (p + n as u64).min(pa + len);
                    out.extend_from_slice(&self.image.bytes[off + (at - p) as usize..off + (stop - p) as usize]);
                    at = stop;
                }
                None if (RAM_BASE..RAM_BASE + RAM_SIZE).contains(&at) => {
                    out.push(0);
                    at += 1;
                }
                None => return None,
            }
        }
        Some(out)
    }

    fn word(&self, pa: u64) -> Option<u64> {
        if let Some((at, v)) = self.patch {
            if at == pa {
                return Some(v);
            }
        }
        match self.image.try_offset(pa) {
            Some(off) => u64_at(&self.image.bytes, off),
            None => (RAM_BASE..RAM_BASE + RAM_SIZE).contains(&pa).then_some(0),
        }
    }
}

/// The translations under entry `index` of `table` (at `at`), or why the
/// MMU's behaviour is not defined for them.
fn translations(view: &View, table: u64, index: u64, at: TableAt, out: &mut Vec<Translation>) -> Result<(), String> {
    let d = view.word(table + index * 8).ok_or("a table outside RAM")?;
    let vaddr = at.vbase | index << shift(at.level);
    if d & 1 == 0 || (d & 2 == 0 && (at.level == 0 || at.level == 3)) {
        return Ok(()); // invalid, a level-0 block or a reserved level-3 entry: a translation fault
    }
    if at.level < 3 && d & 2 != 0 {
        if d & (0xf << 48) != 0 {
            return Err("a table descriptor with RES0 bits set".into());
        }
        let next = d & ADDR;
        if next >> 40 != 0 {
            return Ok(()); // beyond the 40-bit output size: an address size fault
        }
        let below = TableAt { tree: at.tree, level: at.level + 1, vbase: vaddr, controls: at.controls | (d & CONTROLS) };
        for i in 0..512 {
            translations(view, next, i, below, out)?;
        }
        return Ok(());
    }
    let size = 1u64 << shift(at.level);
    if d & (0b111 << 48) != 0 {
        return Err("a block or page descriptor with RES0 bits set".into());
    }
    let oa = d & ADDR;
    if oa & (size - 1) != 0 {
        return Err("a block with address bits below its size".into());
    }
    if oa >> 40 != 0 || d & AF == 0 {
        return Ok(()); // an address size fault, or an access flag fault on every access
    }
    if d & CONTIGUOUS != 0 && !contiguous_group_sound(view, table, index, at.level) {
        return Err("the contiguous bit on a group that is not one aligned run".into());
    }
    let (ap, c) = ((d >> 6) & 3, at.controls);
    let el0_read = ap & 1 != 0 && c & 1 << 61 == 0;
    let el0 = (el0_read as u8) << 2
        | ((el0_read && ap & 2 == 0 && c & 1 << 62 == 0) as u8) << 1
        | (d & UXN == 0 && c & 1 << 60 == 0) as u8;
    let el1 = 1 << 2 | ((ap & 2 == 0 && c & 1 << 62 == 0) as u8) << 1 | (d & PXN == 0 && c & 1 << 59 == 0) as u8;
    let memory = match (d >> 2) & 7 {
        1 => (1, ((d >> 8) & 3) as u8),
        2 => (2, 0),
        _ => (0, 0), // index 0, and the MAIR_EL1 bytes the kernel leaves 0: Device-nGnRnE
    };
    let global = (at.tree != Tree::Kernel).then_some(d & NG == 0);
    out.push(Translation { vaddr, size, paddr: oa, el0, el1, memory, global });
    Ok(())
}

/// A contiguous group is sound when its 16 entries are one aligned run of
/// frames with the same attributes (bits the MMU ignores aside).
fn contiguous_group_sound(view: &View, table: u64, index: u64, level: u32) -> bool {
    let size = 1u64 << shift(level);
    let kind = if level == 3 { 0b11 } else { 0b01 };
    let group: Vec<u64> = (index & !15..(index & !15) + 16).map(|i| view.word(table + i * 8).unwrap_or(0)).collect();
    let attrs = |d: u64| d & !ADDR & !CONTIGUOUS & !IGNORED;
    let base = group[0] & ADDR;
    base % (16 * size) == 0
        && group.iter().enumerate().all(|(k, &d)| d & 0b11 == kind && attrs(d) == attrs(group[0]) && d & ADDR == base + k as u64 * size)
}

/// Why a flip of `bit` in descriptor `old` changes no translation.
fn reason(level: u32, old: u64, bit: u8, tree: Tree) -> &'static str {
    if old & 1 == 0 {
        return if bit == 0 {
            "an invalid entry made one that grants nothing (reserved, or the access flag clear)"
        } else {
            "an invalid entry left invalid"
        };
    }
    let table = level < 3 && old & 2 != 0;
    match (table, bit) {
        (true, 2..=11 | 52..=58) => "a table-descriptor bit the MMU ignores",
        (true, 63) => "NSTable (ignored in Non-secure state)",
        (true, 59..=62) => "a table control that takes away nothing the entries below have",
        (false, 5) => "NS (ignored in Non-secure state)",
        (false, 51) => "DBM (ignored: TCR_EL1.HD is clear)",
        (false, 55..=58) => "software bits (ignored)",
        (false, 59..=62) => "PBHA bits (ignored: not enabled in TCR_EL1)",
        (false, 63) => "bit 63 of a block or page (ignored)",
        (false, 11) if tree == Tree::Kernel => "nG in the kernel's half (the same translation under every ASID)",
        (false, 8 | 9) => "shareability of Device memory (ignored)",
        (false, 2..=4) => "AttrIndx naming a MAIR_EL1 byte of the same memory type",
        (false, 52) => "the contiguous hint on a group that is one aligned run",
        _ => "UNEXPLAINED",
    }
}

const RELOCATED: &str = "a private page moved to free RAM: it starts zeroed like the page it left, and nothing else uses or names either";

fn tree_name(f: &Fixture, tree: Tree) -> String {
    match tree {
        Tree::Kernel => "kernel half".into(),
        Tree::Boot => "boot tables".into(),
        Tree::Pd(i) => format!("pd '{}'", f.sd.protection_domains[i].name),
    }
}

/// Classify a flip of `bit` in the entry at `slot` of `table`.
fn classify_entry(f: &Fixture, image: &Image, layout: &Layout, table: u64, index: u64, at: TableAt, bit: u8) -> Class {
    let slot = table + index * 8;
    let old = image.read_u64(slot);
    let new = old ^ 1 << bit;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let b = translations(&View { image, patch: None }, table, index, at, &mut before);
    let a = translations(&View { image, patch: Some((slot, new)) }, table, index, at, &mut after);
    let vaddr = at.vbase | index << shift(at.level);
    let what = || format!("{} level-{} entry for {vaddr:#x}", tree_name(f, at.tree), at.level);
    b.expect("the fixture's tables are well defined");
    if let Err(why) = a {
        return Class::Harmful(format!("{}: {why}", what()));
    }
    if before == after {
        return Class::Harmless(reason(at.level, old, bit, at.tree));
    }
    // One private page of a PD moved, and nothing can tell?
    if let Tree::Pd(pd) = at.tree {
        if before.len() == after.len() {
            let moved: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
            if let [i] = moved[..] {
                let (o, n) = (&before[i], &after[i]);
                let same_but_frames = Translation { paddr: n.paddr, ..o.clone() } == *n;
                let from = o.paddr..o.paddr + o.size;
                let to = n.paddr..n.paddr + n.size;
                let alone = !layout.named.iter().any(|r| overlaps(r, &from))
                    && !layout.pd_leaves.iter().any(|(p, v, r)| (*p, *v) != (pd, o.vaddr) && overlaps(r, &from));
                let zero = (from.start..from.end).step_by(8).all(|p| View { image, patch: None }.word(p) == Some(0));
                if same_but_frames && alone && zero && layout.free(&to, &from) {
                    return Class::Harmless(RELOCATED);
                }
            }
        }
    }
    Class::Harmful(format!("{} now translates differently", what()))
}

// ---------------------------------------------------------------------
// The areas.

fn elf_header_flips(image: &Image) -> Vec<Flip> {
    let base = qemu_load(&image.bytes).expect("the fixture loads");
    let phnum = u16_at(&image.bytes, 56).unwrap() as usize;
    let headers = 64 + 56 * phnum;
    let mut covered = vec![false; image.bytes.len()];
    covered[..headers].iter_mut().for_each(|c| *c = true);
    for (_, off, len) in image.segments() {
        covered[*off..off + len].iter_mut().for_each(|c| *c = true);
    }
    let padding = (0..image.bytes.len()).filter(|&o| !covered[o]);
    (0..headers)
        .chain(padding)
        .map(|offset| {
            let bit = (offset % 8) as u8;
            let what = header_field(offset, headers);
            let mut bytes = image.bytes.clone();
            bytes[offset] ^= 1 << bit;
            let class = match qemu_load(&bytes) {
                Err(why) => Class::Harmful(why),
                Ok(load) if same_load(&base, &load) => Class::Harmless(header_reason(offset, headers)),
                Ok(load) if load.entry != base.entry => Class::Harmful("QEMU starts the CPU elsewhere".into()),
                Ok(_) => Class::Harmful("QEMU loads other bytes".into()),
            };
            Flip { area: "ELF headers", offset, bit, fix_spec: None, run: true, what, class }
        })
        .collect()
}

fn header_field(offset: usize, headers: usize) -> String {
    const EHDR: &[(usize, &str)] = &[
        (0, "e_ident"),
        (16, "e_type"),
        (18, "e_machine"),
        (20, "e_version"),
        (24, "e_entry"),
        (32, "e_phoff"),
        (40, "e_shoff"),
        (48, "e_flags"),
        (52, "e_ehsize"),
        (54, "e_phentsize"),
        (56, "e_phnum"),
        (58, "e_shentsize"),
        (60, "e_shnum"),
        (62, "e_shstrndx"),
    ];
    const PHDR: &[(usize, &str)] =
        &[(0, "p_type"), (4, "p_flags"), (8, "p_offset"), (16, "p_vaddr"), (24, "p_paddr"), (32, "p_filesz"), (40, "p_memsz"), (48, "p_align")];
    if offset < 64 {
        let (_, name) = EHDR.iter().rev().find(|(at, _)| *at <= offset).unwrap();
        return format!("{name} byte {offset}");
    }
    if offset < headers {
        let (i, o) = ((offset - 64) / 56, (offset - 64) % 56);
        let (_, name) = PHDR.iter().rev().find(|(at, _)| *at <= o).unwrap();
        return format!("program header {i} {name}");
    }
    format!("file byte {offset:#x} (padding)")
}

fn header_reason(offset: usize, headers: usize) -> &'static str {
    if offset >= headers {
        return "file bytes no header points at";
    }
    if offset < 64 {
        return match offset {
            6..=15 => "e_ident bytes past the byte order (QEMU's loader does not read them)",
            16..=17 => "e_type (QEMU's loader does not read it)",
            20..=23 => "e_version (QEMU's loader does not read it)",
            40..=47 | 58..=63 => "section-header fields (QEMU reads sections only for its own symbol table)",
            48..=51 => "e_flags (QEMU's loader does not read them)",
            52..=53 => "e_ehsize (QEMU reads a header of fixed size)",
            54..=55 => "e_phentsize (QEMU reads program headers of fixed size)",
            56..=57 => "e_phnum counting in program headers that are not PT_LOAD",
            _ => "UNEXPLAINED",
        };
    }
    match (offset - 64) % 56 {
        0..=3 => "p_type dropping a segment of zero bytes (RAM starts zeroed)",
        4..=7 => "p_flags (QEMU reads them only to move the entry of a segment whose p_vaddr differs from p_paddr)",
        16..=23 => "p_vaddr (QEMU loads at p_paddr; the entry stays outside the segment's new virtual range)",
        32..=39 => "p_filesz trimming or adding zero bytes",
        40..=47 => "p_memsz changing the zero fill over RAM that starts zeroed",
        48..=55 => "p_align (QEMU does not read it)",
        _ => "UNEXPLAINED",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SpecFlips {
    /// The sample described at the top, checksum recomputed.
    Fixed,
    /// The lend array, checksum recomputed.
    Lends,
    /// Every 61st byte, checksum as it is.
    Damaged,
}

fn spec_flips(f: &Fixture, image: &Image, layout: &Layout, mode: SpecFlips) -> Vec<Flip> {
    let fixed = mode != SpecFlips::Damaged;
    let spec = &image.bytes[layout.spec..layout.spec + layout.spec_len];
    with_spec(spec, |original| {
        let original = original.expect("the fixture's spec parses");
        let restarted = restarts(image, original);
        let mut flips = Vec::new();
        let pds = (original.header.pd_offset as usize, original.pds.len() * size_of::<PdDesc>());
        let lends = original.header.lend_offset as usize;
        let checksum = offset_of!(Header, checksum)..offset_of!(Header, checksum) + 4;
        for rel in 0..layout.spec_len {
            let sampled = match mode {
                SpecFlips::Damaged => rel % 61 == 0,
                _ if checksum.contains(&rel) => false, // recomputed: no change
                SpecFlips::Lends => rel >= lends && rel < lends + original.lends.len() * size_of::<LendDesc>(),
                SpecFlips::Fixed if (pds.0..pds.0 + pds.1).contains(&rel) => {
                    let o = rel - pds.0;
                    (o % size_of::<PdDesc>()) % 8 == o / size_of::<PdDesc>() % 8
                }
                // The header, the restore ops and the lends: every byte.
                SpecFlips::Fixed => true,
            };
            if !sampled {
                continue;
            }
            let offset = layout.spec + rel;
            let bit = (rel % 8) as u8;
            let fix_spec = fixed.then_some(layout.spec);
            let mut flip = Flip { area: "", offset, bit, fix_spec, run: true, what: String::new(), class: Class::Harmless("") };
            // The spec as the flip leaves it (the bytes after it in the
            // file are not the memory after it: a spec the flip makes
            // longer is refused here, and by the kernel for its checksum).
            let mut copy = spec.to_vec();
            copy[rel] ^= 1 << bit;
            if fixed {
                fix_checksum(&mut copy, 0);
            }
            let refused = with_spec(&copy, |s| s.is_none());
            let (what, harmless) = layout.spec_field(original, &f.sd, rel);
            flip.what = what;
            flip.area = if fixed { "boot spec, checksum recomputed" } else { "boot spec as damaged" };
            flip.class = if refused {
                Class::Harmful("the kernel refuses the spec and powers off".into())
            } else {
                match harmless {
                    Some(RESTART_SAME) => {
                        let after = with_spec(&copy, |s| restarts(image, s?));
                        match (&restarted, after) {
                            (Some(b), Some(a)) if a == *b => Class::Harmless(RESTART_SAME),
                            _ => Class::Harmful(format!("a restart writes other bytes ({})", flip.what)),
                        }
                    }
                    Some(MOVED_UNPLACED) => {
                        // Harmless only where the lend now lies in free RAM.
                        let j = (rel - lends) / size_of::<LendDesc>();
                        let l = &original.lends[j];
                        let at = lends + j * size_of::<LendDesc>() + offset_of!(LendDesc, paddr);
                        let paddr = u64_at(&copy, at).unwrap();
                        if layout.free(&(paddr..paddr.saturating_add(l.size)), &(l.paddr..l.paddr + l.size)) {
                            Class::Harmless(MOVED_UNPLACED)
                        } else {
                            Class::Harmful(format!("{} moves it onto memory that is not free", flip.what))
                        }
                    }
                    Some(why) => Class::Harmless(why),
                    None => Class::Harmful(format!("the kernel acts on {}", flip.what)),
                }
            };
            flips.push(flip);
        }
        flips
    })
}

fn table_flips(f: &Fixture, image: &Image, layout: &Layout, valid_flips: u8, invalid: bool) -> Vec<Flip> {
    let (pool, size) = image.pool();
    let mut flips = Vec::new();
    let (mut valid_seq, mut invalid_seq) = (0usize, 0usize);
    for table in (pool..pool + size).step_by(PAGE as usize) {
        let at = layout.tables.get(&table).copied();
        for index in 0..512u64 {
            let slot = table + index * 8;
            let d = image.read_u64(slot);
            let bits: Vec<u8> = if d & 1 != 0 {
                valid_seq += 1;
                let k = if valid_flips >= 4 { valid_seq % 16 } else { valid_seq % 64 };
                (0..valid_flips as usize).map(|j| ((k + 16 * j) % 64) as u8).collect()
            } else if invalid {
                invalid_seq += 1;
                vec![(invalid_seq % 64) as u8]
            } else {
                Vec::new()
            };
            for bit in bits {
                let (class, what) = match at {
                    Some(at) => (
                        classify_entry(f, image, layout, table, index, at, bit),
                        format!("{} level-{} entry {index} of table {table:#x}", tree_name(f, at.tree), at.level),
                    ),
                    None => (Class::Harmless("an entry of a table no tree reaches"), format!("entry {index} of table {table:#x}")),
                };
                // Invalid entries: the checker runs on every 61st (and
                // where the valid bit is flipped, on every fourth).
                let sampled = invalid_seq % 61 == 0 || (bit == 0 && invalid_seq % 256 == 0);
                let run = d & 1 != 0 || sampled || matches!(class, Class::Harmful(_));
                flips.push(Flip { area: "translation tables", offset: image.offset(slot) + (bit / 8) as usize, bit: bit % 8, fix_spec: None, run, what, class });
            }
        }
    }
    flips
}

/// Every `stride`th byte of `ranges` (physical, with file bytes), and
/// every byte of `whole`, all harmful: the bytes are the program or the
/// kernel, and the one that runs them sees the change.
fn content_flips(image: &Image, area: &'static str, ranges: &[(String, Range<u64>)], whole: &[(String, Range<u64>)], why: &str) -> Vec<Flip> {
    let mut flips = Vec::new();
    let mut seq = 0usize;
    for (name, r) in ranges {
        for pa in r.clone() {
            seq += 1;
            if seq % 127 != 0 {
                continue;
            }
            let Some(offset) = image.try_offset(pa) else { continue };
            let what = format!("{name} at {pa:#x}");
            flips.push(Flip { area, offset, bit: (seq % 8) as u8, fix_spec: None, run: true, what, class: Class::Harmful(why.into()) });
        }
    }
    for (name, r) in whole {
        for pa in r.clone() {
            let Some(offset) = image.try_offset(pa) else { continue };
            let what = format!("{name} at {pa:#x}");
            let bit = (pa % 8) as u8;
            flips.push(Flip { area, offset, bit, fix_spec: None, run: true, what, class: Class::Harmful(format!("changes {name}")) });
        }
    }
    flips
}

/// Program segments (page-rounded), as (vaddr range) per PD.
fn program_pages(elf: &[u8]) -> Vec<Range<u64>> {
    use object::read::elf::{ElfFile64, ProgramHeader};
    let file = ElfFile64::<object::Endianness>::parse(elf).expect("an ELF file");
    let e = file.endian();
    file.elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(e) == object::elf::PT_LOAD && ph.p_memsz(e) > 0)
        .map(|ph| {
            let v = ph.p_vaddr(e);
            (v & !(PAGE - 1))..(v + ph.p_memsz(e)).next_multiple_of(PAGE)
        })
        .collect()
}

fn symbol_size(elf: &[u8], name: &str) -> Option<(u64, u64)> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(elf).ok()?;
    let s = file.symbols().find(|s| s.name() == Ok(name))?;
    Some((s.address(), s.size()))
}

fn pd_flips(f: &Fixture, image: &Image) -> Vec<Flip> {
    let mut strided = Vec::new();
    let mut patched = Vec::new();
    for (i, pd) in f.sd.protection_domains.iter().enumerate() {
        let root = image.ttbr0(i);
        for pages in program_pages(&f.programs[i]) {
            for page in pages.step_by(PAGE as usize) {
                let frame = image.frame_of(root, page);
                strided.push((format!("pd '{}' program at {page:#x}", pd.name), frame..frame + PAGE));
            }
        }
        let mut symbols: Vec<(String, u64)> = pd.maps.iter().filter_map(|m| m.setvar_vaddr.clone()).map(|s| (s, 8)).collect();
        for sv in &pd.setvars {
            let len = match &sv.value {
                sdf::SetVarValue::RegionPaddr(_) => 8,
                sdf::SetVarValue::Bytes(b) => b.len() as u64,
            };
            symbols.push((sv.symbol.clone(), len));
        }
        if let Some((_, size)) = symbol_size(&f.programs[i], "microkit_name") {
            symbols.push(("microkit_name".into(), size.max(1)));
        }
        for (name, len) in symbols {
            let (vaddr, _) = symbol_size(&f.programs[i], &name).expect("patched symbol");
            for v in vaddr..vaddr + len {
                let pa = image.frame_of(root, v & !(PAGE - 1)) + (v & (PAGE - 1));
                patched.push((format!("pd '{}' variable '{name}'", pd.name), pa..pa + 1));
            }
        }
    }
    content_flips(image, "PD code and data", &strided, &patched, "changes what the PD runs or reads")
}

fn copy_flips(image: &Image, layout: &Layout) -> Vec<Flip> {
    let spec = &image.bytes[layout.spec..layout.spec + layout.spec_len];
    let copies: Vec<(String, Range<u64>)> = with_spec(spec, |s| {
        s.unwrap().restore.iter().filter(|op| op.kind == RESTORE_COPY).map(|op| ("a pristine copy".to_string(), op.src_paddr..op.src_paddr + op.len)).collect()
    });
    content_flips(image, "PD code and data", &copies, &[], "changes what a restarted PD starts with")
}

fn kernel_flips(f: &Fixture, image: &Image) -> Vec<Flip> {
    use object::read::elf::{ElfFile64, ProgramHeader};
    let file = ElfFile64::<object::Endianness>::parse(&*f.kernel).expect("the kernel ELF");
    let e = file.endian();
    let segments: Vec<(String, Range<u64>)> = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(e) == object::elf::PT_LOAD)
        .map(|ph| ("the kernel".to_string(), ph.p_paddr(e)..ph.p_paddr(e) + ph.p_filesz(e)))
        .collect();
    let var = symbol(&f.kernel, "KERNEL_BOOT_SPEC_PADDR") - KERNEL_VIRT_OFFSET;
    let whole = [("KERNEL_BOOT_SPEC_PADDR".to_string(), var..var + 8)];
    content_flips(image, "kernel code and data", &segments, &whole, "changes the kernel")
}

// ---------------------------------------------------------------------

fn sweep(name: &str, full: bool, tally: &mut Tally) {
    let f = Fixture::load(name);
    let image = Image::new(&f.image);
    let layout = Layout::read(&f, &image);
    let mut flips = Vec::new();
    if full {
        flips.extend(elf_header_flips(&image));
        flips.extend(spec_flips(&f, &image, &layout, SpecFlips::Fixed));
        flips.extend(spec_flips(&f, &image, &layout, SpecFlips::Damaged));
        flips.extend(table_flips(&f, &image, &layout, 4, true));
        flips.extend(pd_flips(&f, &image));
        flips.extend(copy_flips(&image, &layout));
        flips.extend(kernel_flips(&f, &image));
    } else {
        // The devices fixture: its lends, and its valid entries once each.
        flips.extend(spec_flips(&f, &image, &layout, SpecFlips::Lends));
        flips.extend(table_flips(&f, &image, &layout, 1, false));
    }
    let caught = run(&f, &flips);
    tally.add(name, &flips, &caught);
}

#[test]
fn every_flip_that_changes_what_runs_or_is_reached_is_caught() {
    let mut tally = Tally::default();
    sweep("default", true, &mut tally);
    sweep("devices", false, &mut tally);
    tally.print();
    assert!(tally.missed.is_empty(), "{} harmful flips went unnoticed:\n{}", tally.missed.len(), tally.missed.join("\n"));
    let unexplained = tally.rows.keys().filter(|(_, _, r)| r == "UNEXPLAINED").count();
    assert_eq!(unexplained, 0, "flips with no effect and no stated reason");
    // The checker stays quiet about what the hardware ignores.
    for quiet in [
        "an invalid entry left invalid",
        "a table-descriptor bit the MMU ignores",
        "NS (ignored in Non-secure state)",
        "software bits (ignored)",
        "PBHA bits (ignored: not enabled in TCR_EL1)",
    ] {
        assert_eq!(tally.caught_of(quiet), 0, "the checker reports flips of: {quiet}");
        assert!(tally.passed("translation tables", quiet) > 0, "no flip of: {quiet}");
    }
}
