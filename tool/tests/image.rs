//! The image builder on a small system with synthetic program images: the
//! boot spec it writes, the tables it builds and the variables it patches,
//! read back out of the image file.

mod common;

use bootspec::platform::{KERNEL_PADDR, KERNEL_VIRT_OFFSET};
use common::{kernel, program_with};
use bootspec::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tool::elf::{ElfImage, Segment, Symbol};
use tool::image::{build_from, Built};

const SYSTEM: &str = r#"<?xml version="1.0"?>
<system>
    <memory_region name="shared" size="0x2000" />
    <memory_region name="uart" size="0x1000" phys_addr="0x9000000" />
    <protection_domain name="client" priority="10">
        <program_image path="prog" />
        <map mr="shared" vaddr="0x4000000" perms="rw" setvar_vaddr="buf" />
        <map mr="uart" vaddr="0x5000000" perms="rw" cached="false" />
        <irq irq="40" id="5" trigger="edge" />
    </protection_domain>
    <protection_domain name="server" priority="20" passive="true">
        <program_image path="prog" />
        <map mr="shared" vaddr="0x6000000" perms="r" />
        <protection_domain name="child" priority="5" id="3">
            <program_image path="prog" />
        </protection_domain>
    </protection_domain>
    <channel>
        <end pd="client" id="1" pp="true" />
        <end pd="server" id="7" notify="false" />
    </channel>
</system>
"#;

fn program() -> ElfImage {
    let mut symbols = BTreeMap::new();
    symbols.insert("microkit_name".to_string(), Symbol { vaddr: 0x20_1000, size: 64 });
    symbols.insert("buf".to_string(), Symbol { vaddr: 0x20_1040, size: 8 });
    let mut data = vec![0u8; 0x80];
    data[0x50..0x58].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    program_with(data, symbols)
}

fn build(xml: &str, prog: ElfImage) -> Result<(sdf::SystemDescription, Built), Vec<sdf::Error>> {
    let sd = sdf::parse("test.xml", xml).expect("valid system");
    let programs: Vec<_> = sd.protection_domains.iter().map(|_| (PathBuf::from("prog"), prog.clone())).collect();
    let built = build_from(&sd, &kernel(), &programs, false)?;
    Ok((sd, built))
}

/// Physical memory as the image file describes it.
struct Memory(Vec<Segment>);

impl Memory {
    fn of(built: &Built) -> Memory {
        Memory(ElfImage::parse(&built.elf).unwrap().segments)
    }
    fn bytes(&self, paddr: u64, len: usize) -> Vec<u8> {
        let s = self.0.iter().find(|s| s.paddr <= paddr && paddr + len as u64 <= s.paddr + s.memsz).expect("address in the image");
        let off = (paddr - s.paddr) as usize;
        (off..off + len).map(|i| s.data.get(i).copied().unwrap_or(0)).collect()
    }
    fn u64(&self, paddr: u64) -> u64 {
        u64::from_le_bytes(self.bytes(paddr, 8).try_into().unwrap())
    }
    /// Walk 4-level tables from `root`: the physical address and leaf
    /// descriptor for `va`.
    fn translate(&self, root: u64, va: u64) -> Option<(u64, u64)> {
        let mut table = root;
        for level in 0..4 {
            let e = self.u64(table + ((va >> (39 - 9 * level)) & 0x1ff) * 8);
            if e & 1 == 0 {
                return None;
            }
            if level == 3 || e & 2 == 0 {
                let size = 1u64 << (39 - 9 * level);
                return Some(((e & 0x0000_ffff_ffff_f000 & !(size - 1)) | (va & (size - 1)), e));
            }
            table = e & 0x0000_ffff_ffff_f000;
        }
        None
    }
}

const UXN: u64 = 1 << 54;
const PXN: u64 = 1 << 53;
const AP_RO: u64 = 1 << 7;
const AP_EL0: u64 = 1 << 6;

fn spec_of(mem: &Memory, built: &Built) -> Vec<u8> {
    let header = mem.bytes(built.spec_paddr, 128);
    let total = u32::from_le_bytes(header[12..16].try_into().unwrap()) as usize;
    mem.bytes(built.spec_paddr, total)
}

#[test]
fn spec_describes_pds_channels_irqs_and_children() {
    let (_, built) = build(SYSTEM, program()).unwrap();
    let mem = Memory::of(&built);
    let bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&bytes).expect("a valid spec");
    let names: Vec<_> = spec.pds.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["client", "server", "child"]);
    let (client, server, child) = (&spec.pds[0], &spec.pds[1], &spec.pds[2]);
    assert_eq!((client.priority, server.priority, child.priority), (10, 20, 5));
    assert_eq!(server.flags & PD_PASSIVE, PD_PASSIVE);
    assert_eq!(client.channels[1], ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_NOTIFY | RIGHT_PPC, peer: 1, peer_channel: 7, ..Default::default() });
    assert_eq!(server.channels[7], ChannelDesc { kind: CHANNEL_PD, rights: 0, peer: 0, peer_channel: 1, ..Default::default() });
    assert_eq!(client.channels[5], ChannelDesc { kind: CHANNEL_IRQ, irq: 40, trigger: TRIGGER_EDGE, ..Default::default() });
    let used = client.channels.iter().filter(|c| c.kind != CHANNEL_NONE).count();
    assert_eq!(used, 2, "nothing but what the description declares");
    assert_eq!(server.children[3], 2);
    assert_eq!((child.parent, child.id_in_parent), (1, 3));
    assert_eq!(client.parent, NO_PD);
    // Only the child can be restarted: its data segment (copied up to its
    // zero tail, which is zeroed), stack and IPC buffer.
    assert_eq!(spec.restore_ops(client).len(), 0);
    let ops = spec.restore_ops(child);
    assert_eq!(ops.iter().map(|o| o.kind).collect::<Vec<_>>(), [RESTORE_COPY, RESTORE_ZERO, RESTORE_ZERO, RESTORE_ZERO]);
    assert_eq!(mem.bytes(ops[0].src_paddr, 0x58)[0x50..0x58], 0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!((ops[0].len, ops[1].dst_paddr, (ops[0].len + ops[1].len) % 4096), (0x58, ops[0].dst_paddr + 0x58, 0), "the copy stops at the zero tail, which is zeroed to the page's end");
    // The kernel finds the spec through its patched variable.
    assert_eq!(mem.u64(KERNEL_PADDR + 0x1000), built.spec_paddr);
    assert_eq!(ElfImage::parse(&built.elf).unwrap().entry, KERNEL_PADDR);
}

#[test]
fn address_spaces_map_exactly_the_declared_memory_with_its_rights() {
    let (_, built) = build(SYSTEM, program()).unwrap();
    let mem = Memory::of(&built);
    let bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&bytes).unwrap();
    let root = |i: usize| spec.pds[i].ttbr0;

    // Program text: readable, executable, not writable, EL0 only executes it.
    let (_, text) = mem.translate(root(0), 0x20_0000).unwrap();
    assert_eq!(text & (UXN | AP_RO | AP_EL0), AP_RO | AP_EL0);
    assert_ne!(text & PXN, 0, "the kernel never executes user memory");
    // Data and bss: writable, never executable.
    for va in [0x20_1000, 0x20_3000] {
        let (_, e) = mem.translate(root(0), va).unwrap();
        assert_eq!(e & (UXN | AP_RO), UXN, "{va:#x}");
    }
    assert!(mem.translate(root(0), 0x20_4000).is_none(), "nothing past the segment");

    // The shared region: same frames in both, writable in one, read-only in the other.
    let (pa_client, e_client) = mem.translate(root(0), 0x400_1008).unwrap();
    let (pa_server, e_server) = mem.translate(root(1), 0x600_1008).unwrap();
    assert_eq!(pa_client, pa_server);
    assert_eq!(e_client & AP_RO, 0);
    assert_ne!(e_server & AP_RO, 0);
    assert!(mem.translate(root(1), 0x400_0000).is_none(), "the server's map is elsewhere");

    // Device memory: its fixed physical address, uncached (attribute index 0).
    let (pa, e) = mem.translate(root(0), 0x500_0010).unwrap();
    assert_eq!(pa, 0x900_0010);
    assert_eq!(e & (7 << 2), 0);
    assert!(mem.translate(root(1), 0x500_0000).is_none());

    // Stack and IPC buffer; the guard page between them stays unmapped.
    assert!(mem.translate(root(0), abi::layout::STACK_TOP - 8).is_some());
    assert!(mem.translate(root(0), abi::layout::STACK_TOP).is_none());
    let (ipc, _) = mem.translate(root(0), abi::layout::IPC_BUFFER).unwrap();
    assert_eq!(ipc, spec.pds[0].ipc_buffer_paddr);
    // Every PD has its own address space.
    let roots: std::collections::BTreeSet<_> = spec.pds.iter().map(|p| p.ttbr0).collect();
    assert_eq!(roots.len(), 3);
}

#[test]
fn variables_are_patched_per_pd() {
    let (_, built) = build(SYSTEM, program()).unwrap();
    let mem = Memory::of(&built);
    let bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&bytes).unwrap();
    let (data, _) = mem.translate(spec.pds[0].ttbr0, 0x20_1000).unwrap();
    assert_eq!(&mem.bytes(data, 7), b"client\0");
    assert_eq!(mem.u64(data + 0x40), 0x400_0000, "setvar_vaddr");
    let (data, _) = mem.translate(spec.pds[1].ttbr0, 0x20_1000).unwrap();
    assert_eq!(&mem.bytes(data, 7), b"server\0");
    assert_eq!(mem.u64(data + 0x40), 0, "the server sets no variable");
}

#[test]
fn the_kernel_maps_its_text_read_only_and_its_data_never_executable() {
    let (_, built) = build(SYSTEM, program()).unwrap();
    let mem = Memory::of(&built);
    let bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&bytes).unwrap();
    let ttbr1 = spec.header.kernel_ttbr1;
    let v = KERNEL_VIRT_OFFSET - 0xffff_0000_0000_0000;
    let (pa, text) = mem.translate(ttbr1, v + KERNEL_PADDR).unwrap();
    assert_eq!(pa, KERNEL_PADDR);
    assert_eq!(text & (PXN | AP_RO | AP_EL0), AP_RO);
    let (_, data) = mem.translate(ttbr1, v + KERNEL_PADDR + 0x1000).unwrap();
    assert_eq!(data & (PXN | AP_RO | AP_EL0), PXN);
    let (_, ram) = mem.translate(ttbr1, v + built.image_end).unwrap();
    assert_eq!(ram & (PXN | AP_EL0), PXN, "the linear map of RAM is kernel-only and never executable");
}

#[test]
fn a_writable_executable_segment_is_refused() {
    let mut prog = program();
    prog.segments[1].execute = true;
    let errors = build(SYSTEM, prog).err().expect("refused");
    assert!(errors[0].to_string().contains("both writable and executable"), "{}", errors[0]);
    assert_eq!((errors[0].line, errors[0].col), (6, 9), "points at the program_image");
}

#[test]
fn a_setvar_symbol_missing_from_the_program_is_an_error_at_the_map() {
    let mut prog = program();
    prog.symbols.remove("buf");
    let errors = build(SYSTEM, prog).err().expect("refused");
    assert_eq!(errors[0].to_string(), "error: symbol 'buf' not found in program image 'prog' at test.xml:7:9");
}

#[test]
fn a_map_over_the_program_image_is_refused() {
    let xml = SYSTEM.replace(r#"vaddr="0x4000000" perms="rw""#, r#"vaddr="0x200000" perms="rw""#);
    let errors = build(&xml, program()).err().expect("refused");
    assert!(errors[0].message.starts_with("map of memory region 'shared' at 0x200000..0x202000 overlaps the program image of 'client'"), "{}", errors[0]);
}

/// SYSTEM with a `bytes` setvar in the client (line 10).
fn with_bytes_setvar(value: &str) -> String {
    let irq = r#"<irq irq="40" id="5" trigger="edge" />"#;
    SYSTEM.replace(irq, &format!("{irq}\n        <setvar symbol=\"cfg\" bytes=\"{value}\" />"))
}

fn program_with_cfg(vaddr: u64, size: u64) -> ElfImage {
    let mut prog = program();
    prog.symbols.insert("cfg".to_string(), Symbol { vaddr, size });
    prog
}

#[test]
fn bytes_setvars_are_patched_as_written() {
    let (_, built) = build(&with_bytes_setvar("0102030405"), program_with_cfg(0x20_1060, 8)).unwrap();
    let mem = Memory::of(&built);
    let spec_bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&spec_bytes).unwrap();
    let (data, _) = mem.translate(spec.pds[0].ttbr0, 0x20_1000).unwrap();
    assert_eq!(mem.bytes(data + 0x60, 8), [1, 2, 3, 4, 5, 0, 0, 0]);
    let (data, _) = mem.translate(spec.pds[1].ttbr0, 0x20_1000).unwrap();
    assert_eq!(mem.bytes(data + 0x60, 8), [0; 8], "only the client sets it");
}

#[test]
fn bytes_setvars_reach_the_bss() {
    // The data segment's file bytes end at 0x20_1080; memory runs to 0x20_4000.
    let (_, built) = build(&with_bytes_setvar("aabb"), program_with_cfg(0x20_3ffe, 2)).unwrap();
    let mem = Memory::of(&built);
    let spec_bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&spec_bytes).unwrap();
    let (pa, _) = mem.translate(spec.pds[0].ttbr0, 0x20_3ffe).unwrap();
    assert_eq!(mem.bytes(pa, 2), [0xaa, 0xbb]);
}

#[test]
fn a_bytes_setvar_larger_than_its_symbol_is_refused() {
    let errors = build(&with_bytes_setvar("0102030405"), program_with_cfg(0x20_1060, 4)).err().expect("refused");
    let errors: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors, ["error: symbol 'cfg' in 'prog' is 4 bytes, too small for 5 bytes at test.xml:10:9"]);
}

#[test]
fn a_bytes_setvar_outside_the_loaded_segments_is_refused() {
    // Starts inside the data segment and runs past its end.
    let errors = build(&with_bytes_setvar("01020304"), program_with_cfg(0x20_3ffe, 0)).err().expect("refused");
    let errors: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors, ["error: symbol 'cfg' in 'prog' is not inside a loaded segment at test.xml:10:9"]);
}

#[test]
fn a_bytes_setvar_symbol_missing_from_the_program_is_refused() {
    let errors = build(&with_bytes_setvar("01"), program()).err().expect("refused");
    let errors: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors, ["error: symbol 'cfg' not found in program image 'prog' at test.xml:10:9"]);
}

#[test]
fn a_large_bss_is_neither_stored_in_the_image_nor_in_a_pristine_copy() {
    // 8 MiB of zeroes after the data (a filter's static buffers): the
    // image holds the data once, and a restart copies it and zeroes the rest.
    let mut prog = program();
    prog.segments[1].memsz = 8 << 20;
    let (_, built) = build(SYSTEM, prog).unwrap();
    assert!(built.elf.len() < 1 << 20, "the image is {} bytes", built.elf.len());
    let mem = Memory::of(&built);
    let spec_bytes = spec_of(&mem, &built);
    let spec = Spec::parse(&spec_bytes).unwrap();
    let ops = spec.restore_ops(&spec.pds[2]);
    assert_eq!((ops[0].kind, ops[0].len), (RESTORE_COPY, 0x58));
    assert_eq!((ops[1].kind, ops[1].dst_paddr, ops[0].len + ops[1].len), (RESTORE_ZERO, ops[0].dst_paddr + 0x58, 8 << 20));
    let (pa, _) = mem.translate(spec.pds[2].ttbr0, 0x20_1000 + (8 << 20) - 8).unwrap();
    assert_eq!(mem.bytes(pa, 8), [0; 8], "the tail loads as zeroes");
}
