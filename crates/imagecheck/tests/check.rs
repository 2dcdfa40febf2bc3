//! The checker on real images built by the tool (the fixtures), and on
//! copies of them damaged in one precise way each: every damage must give
//! exactly the finding that names it, and nothing else.

mod support;

use bootspec::{ChannelDesc, LendDesc, PdDesc, CHANNEL_IRQ, CHANNEL_PD, NO_PD, PD_PASSIVE, RIGHT_NOTIFY, RIGHT_PPC};
use std::mem::offset_of;
use support::*;

/// Facts about the default fixture, read off its report
/// (`strata build` writes one beside the image).
const REQUEST_VADDR: u64 = 0x400_0000;
const FREE_VADDR: u64 = 0x400_1000; // next to 'request', in the same level-3 table
const FREE_FRAME: u64 = 0x4100_0000; // RAM the image does not use
const STACK_TOP: u64 = abi::layout::STACK_TOP;
const IPC_BUFFER: u64 = abi::layout::IPC_BUFFER;
const KERNEL_TEXT: u64 = 0xffff_0000_4020_0000;

fn default() -> (Fixture, Image) {
    let f = Fixture::load("default");
    let image = Image::new(&f.image);
    (f, image)
}

#[track_caller]
fn assert_findings(f: &Fixture, image: &Image, expected: &[&str]) {
    let found = f.check_image(&image.bytes);
    assert_eq!(found, expected, "\nfound:\n{}\n", found.join("\n"));
}

// The real images.

#[test]
fn default_system_image_grants_exactly_what_is_declared() {
    let f = Fixture::load("default");
    assert_eq!(f.check(), Vec::<String>::new());
}

#[test]
fn image_with_devices_blocks_irqs_and_fixed_regions_checks_clean() {
    let f = Fixture::load("devices");
    assert_eq!(f.check(), Vec::<String>::new());
}

#[test]
fn image_checked_against_another_description_shows_every_difference() {
    let default = Fixture::load("default");
    let devices = Fixture::load("devices");
    assert_eq!(
        default.check_image(&devices.image),
        [
            "pd 'ping': extra channel 6: irq 40 (level)",
            "pd 'pong': extra channel 5: irq 33 (edge)",
            "pd 'server': call budget 500 us, declared none",
            "pd 'ping': extra mapping 0x5000000..0x5001000 -> 0x9000000 (rw device)",
            "pd 'pong': extra mapping 0x6000000..0x6200000 -> 0x48000000 (rw cached)",
            "pd 'client': extra mapping 0x8000000..0x8400000 -> 0x40400000 (r cached)",
            "pd 'server': extra mapping 0x8000000..0x8400000 -> 0x40400000 (rw cached)",
            "pd 'auditor': extra mapping 0x7000000..0x7002000 -> 0x40800000 (rx cached)",
            "pd 'client': channel 0 lends 2 regions, declared none",
            // ping's name holds dma's address, as devices.xml's setvar says.
            "pd 'ping': variable 'microkit_name' holds 00000048, declared 'ping' (its name)",
            "frames 0x40400000..0x40800000 are mapped by pd 'client' (extra mapping at 0x8000000) and by pd 'server' (extra mapping at 0x8000000)",
            "frames 0x40800000..0x40802000 of lend 0 of pd 'client' channel 0 (undeclared) are mapped by pd 'auditor' (extra mapping at 0x7000000)",
        ]
    );
    assert_eq!(
        devices.check_image(&default.image),
        [
            "pd 'ping': missing channel 6: irq 40 (level)",
            "pd 'pong': missing channel 5: irq 33 (edge)",
            "pd 'server': call budget none, declared 500 us",
            "pd 'ping': missing mapping 0x5000000..0x5001000 (region 'uart', rw device)",
            "pd 'pong': missing mapping 0x6000000..0x6200000 (region 'dma', rw cached)",
            "pd 'client': missing mapping 0x8000000..0x8400000 (region 'big', r cached)",
            "pd 'server': missing mapping 0x8000000..0x8400000 (region 'big', rw cached)",
            "pd 'auditor': missing mapping 0x7000000..0x7002000 (region 'table', rx cached)",
            "pd 'client': channel 0 lends 0 regions, declared 2 ('table' r, 'blob' rw)",
            "pd 'ping': variable 'microkit_name' holds 0x676e6970, but region 'dma' is at 0x48000000",
        ]
    );
}

// Address spaces.

#[test]
fn extra_writable_mapping_in_a_free_slot_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), FREE_VADDR);
    assert_eq!(image.read_u64(slot), 0, "the slot is free");
    image.write_u64(slot, FREE_FRAME | USER_RW_PAGE);
    assert_findings(&f, &image, &["pd 'client': extra mapping 0x4001000..0x4002000 -> 0x41000000 (rw cached)"]);
}

#[test]
fn extra_level_2_block_is_reported_whole() {
    let (f, mut image) = default();
    // 0x4200000 is the next 2 MiB after 'request': an empty level-2 slot.
    let (slot, level) = image.entry_for(image.ttbr0(f.pd_index("server")), 0x420_0000);
    assert_eq!((level, image.read_u64(slot)), (2, 0));
    image.write_u64(slot, 0x4400_0000 | (USER_RW_PAGE & !0b10));
    assert_findings(&f, &image, &["pd 'server': extra mapping 0x4200000..0x4400000 -> 0x44000000 (rw cached)"]);
}

#[test]
fn read_only_mapping_made_writable_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("worker")), REQUEST_VADDR);
    let e = image.read_u64(slot);
    assert_eq!(e & AP_MASK, AP_EL0_RO);
    image.write_u64(slot, (e & !AP_MASK) | AP_EL0_RW);
    assert_findings(
        &f,
        &image,
        &["pd 'worker': region 'worker_control' at 0x4000000..0x4001000 grants rw cached, declared r cached"],
    );
}

#[test]
fn cached_region_made_device_memory_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("server")), REQUEST_VADDR);
    let e = image.read_u64(slot);
    image.write_u64(slot, e & !(0b111 << 2));
    assert_findings(&f, &image, &["pd 'server': region 'request' at 0x4000000..0x4001000 grants rw device, declared rw cached"]);
}

#[test]
fn removed_mapping_is_missing() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), REQUEST_VADDR);
    image.write_u64(slot, 0);
    assert_findings(&f, &image, &["pd 'client': missing mapping 0x4000000..0x4001000 (region 'request', rw cached)"]);
}

#[test]
fn mapping_without_access_flag_grants_nothing() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), REQUEST_VADDR);
    image.write_u64(slot, image.read_u64(slot) & !AF);
    assert_findings(&f, &image, &["pd 'client': region 'request' at 0x4000000..0x4001000 grants no access, declared rw cached"]);
}

#[test]
fn global_user_mapping_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), IPC_BUFFER);
    image.write_u64(slot, image.read_u64(slot) & !NG);
    assert_findings(&f, &image, &["pd 'client': 0x1000001000..0x1000002000 is global (nG clear)"]);
}

#[test]
fn user_code_executable_by_the_kernel_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("ping")), 0x20_0000);
    image.write_u64(slot, image.read_u64(slot) & !PXN);
    assert_findings(&f, &image, &["pd 'ping': 0x200000..0x201000 is executable at EL1 (PXN clear)"]);
}

#[test]
fn writable_code_is_reported_as_writable_and_executable() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("ping")), 0x20_1000);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !AP_MASK) | AP_EL0_RW);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'ping': program segment at 0x201000..0x202000 grants rwx cached, declared rx cached",
            "pd 'ping': 0x201000..0x202000 is writable and executable",
        ],
    );
}

#[test]
fn mapping_another_pds_stack_frame_is_reported() {
    let (f, mut image) = default();
    let stack_page = image.frame_of(image.ttbr0(f.pd_index("worker")), STACK_TOP - PAGE);
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), FREE_VADDR);
    image.write_u64(slot, stack_page | USER_RW_PAGE);
    assert_findings(
        &f,
        &image,
        &[
            &format!("pd 'client': extra mapping 0x4001000..0x4002000 -> {stack_page:#x} (rw cached)"),
            &format!(
                "frames {stack_page:#x}..{:#x} are mapped by pd 'worker' (stack at 0xffffff000) and by pd 'client' (extra mapping at 0x4001000)",
                stack_page + PAGE
            ),
        ],
    );
}

#[test]
fn region_page_redirected_to_another_pds_data_is_reported() {
    let (f, mut image) = default();
    let data = image.frame_of(image.ttbr0(f.pd_index("auditor")), 0x20_3000);
    let slot = image.l3_slot(image.ttbr0(f.pd_index("server")), REQUEST_VADDR);
    let e = image.read_u64(slot);
    let request = e & ADDR;
    image.write_u64(slot, (e & !ADDR) | data);
    assert_findings(
        &f,
        &image,
        &[
            &format!(
                "region 'request' at offsets 0x0..0x1000 is on frames at {request:#x} in pd 'client' (at 0x4000000) but at {data:#x} in pd 'server' (at 0x4000000)"
            ),
            &format!(
                "frames {data:#x}..{:#x} are mapped by pd 'server' (region 'request' at 0x4000000) and by pd 'auditor' (program segment at 0x203000)",
                data + PAGE
            ),
        ],
    );
}

#[test]
fn user_entry_pointing_at_the_page_table_pool_is_reported() {
    let (f, mut image) = default();
    let (pool, _) = image.pool();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), FREE_VADDR);
    image.write_u64(slot, pool | USER_RW_PAGE);
    assert_findings(
        &f,
        &image,
        &[
            &format!("pd 'client': extra mapping 0x4001000..0x4002000 -> {pool:#x} (rw cached)"),
            &format!(
                "frames {pool:#x}..{:#x} of the page-table pool are mapped by pd 'client' (extra mapping at 0x4001000)",
                pool + PAGE
            ),
        ],
    );
}

#[test]
fn user_entry_pointing_at_the_kernel_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), FREE_VADDR);
    image.write_u64(slot, 0x4020_7000 | (USER_RW_PAGE & !AP_MASK) | AP_EL0_RO);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': extra mapping 0x4001000..0x4002000 -> 0x40207000 (r cached)",
            "frames 0x40207000..0x40208000 of the kernel image are mapped by pd 'client' (extra mapping at 0x4001000)",
        ],
    );
}

#[test]
fn ipc_buffer_on_another_frame_than_the_spec_names_is_reported() {
    let (f, mut image) = default();
    let pong = f.pd_index("pong");
    let slot = image.l3_slot(image.ttbr0(pong), IPC_BUFFER);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | FREE_FRAME);
    let spec_frame = image.pd_u64(pong, offset_of!(PdDesc, ipc_buffer_paddr));
    assert_findings(
        &f,
        &image,
        &[&format!(
            "pd 'pong': IPC buffer at 0x1000001000..0x1000002000 maps frames at 0x41000000, expected {spec_frame:#x} (the spec's ipc_buffer_paddr)"
        )],
    );
}

#[test]
fn table_outside_the_pool_is_not_followed() {
    let (f, mut image) = default();
    let client = f.pd_index("client");
    let data = image.frame_of(image.ttbr0(client), 0x20_3000);
    // The level-2 entry that points at the level-3 table of 'request'.
    let l2_slot = image.slot_at_level(image.ttbr0(client), REQUEST_VADDR, 2);
    let e = image.read_u64(l2_slot);
    image.write_u64(l2_slot, (e & !ADDR) | data);
    assert_findings(
        &f,
        &image,
        &[
            &format!("pd 'client': the level-3 table for 0x4000000 is at {data:#x}, outside the page-table pool"),
            "pd 'client': missing mapping 0x4000000..0x4001000 (region 'request', rw cached)",
        ],
    );
}

#[test]
fn table_shared_by_two_address_spaces_is_reported() {
    let (f, mut image) = default();
    let (client, server) = (f.pd_index("client"), f.pd_index("server"));
    let l2_slot = image.slot_at_level(image.ttbr0(client), REQUEST_VADDR, 2);
    let server_l3 = image.read_u64(image.slot_at_level(image.ttbr0(server), REQUEST_VADDR, 2)) & ADDR;
    let e = image.read_u64(l2_slot);
    image.write_u64(l2_slot, (e & !ADDR) | server_l3);
    assert_findings(&f, &image, &[&format!("pd 'server': table {server_l3:#x} is also used by pd 'client'")]);
}

// The kernel's half.

#[test]
fn kernel_page_readable_at_el0_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.kernel_ttbr1(), KERNEL_TEXT);
    image.write_u64(slot, image.read_u64(slot) | 1 << 6);
    assert_findings(&f, &image, &["kernel half (TTBR1): 0xffff000040200000..0xffff000040201000 is accessible at EL0 (r)"]);
}

#[test]
fn kernel_page_executable_at_el0_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.kernel_ttbr1(), KERNEL_TEXT);
    image.write_u64(slot, image.read_u64(slot) & !UXN);
    assert_findings(&f, &image, &["kernel half (TTBR1): 0xffff000040200000..0xffff000040201000 is accessible at EL0 (x)"]);
}

#[test]
fn kernel_executing_its_linear_map_of_ram_is_reported() {
    let (f, mut image) = default();
    let (slot, level) = image.entry_for(image.kernel_ttbr1(), 0xffff_0000_4400_0000);
    assert_eq!(level, 2, "RAM is mapped with 2 MiB blocks");
    image.write_u64(slot, image.read_u64(slot) & !PXN);
    assert_findings(
        &f,
        &image,
        &[
            "kernel half (TTBR1): 0xffff000044000000..0xffff000044200000 is writable and executable",
            "kernel half (TTBR1): 0xffff000044000000..0xffff000044200000 -> 0x44000000 is executable at EL1 but is not kernel code",
        ],
    );
}

#[test]
fn kernel_code_in_the_image_differing_from_the_kernel_elf_is_reported() {
    let (f, mut image) = default();
    let off = image.offset(0x4020_0100);
    image.bytes[off] ^= 1;
    assert_findings(
        &f,
        &image,
        &["image: the kernel segment 0x40200000..0x40206680 differs from the kernel ELF (first at 0x40200100)"],
    );
}

// The spec's records.

#[test]
fn missing_channel_is_reported() {
    let (f, mut image) = default();
    image.set_channel(f.pd_index("ping"), 0, ChannelDesc::default());
    assert_findings(&f, &image, &["pd 'ping': missing channel 0: notify to 'pong' channel 0"]);
}

#[test]
fn extra_channel_is_reported() {
    let (f, mut image) = default();
    let monitor = f.pd_index("monitor") as u8;
    let desc = ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_NOTIFY, peer: monitor, peer_channel: 7, ..Default::default() };
    image.set_channel(f.pd_index("ping"), 5, desc);
    assert_findings(&f, &image, &["pd 'ping': extra channel 5: notify to 'monitor' channel 7"]);
}

#[test]
fn channel_right_added_is_reported() {
    let (f, mut image) = default();
    let monitor = f.pd_index("monitor") as u8;
    let desc = ChannelDesc {
        kind: CHANNEL_PD,
        rights: RIGHT_NOTIFY | RIGHT_PPC,
        peer: monitor,
        peer_channel: 1,
        ..Default::default()
    };
    image.set_channel(f.pd_index("client"), 1, desc);
    assert_findings(
        &f,
        &image,
        &["pd 'client': channel 1 is notify+pp to 'monitor' channel 1, declared notify to 'monitor' channel 1"],
    );
}

#[test]
fn channel_to_the_wrong_peer_is_reported() {
    let (f, mut image) = default();
    let auditor = f.pd_index("auditor") as u8;
    let desc = ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_NOTIFY, peer: auditor, peer_channel: 0, ..Default::default() };
    image.set_channel(f.pd_index("ping"), 0, desc);
    assert_findings(
        &f,
        &image,
        &["pd 'ping': channel 0 is notify to 'auditor' channel 0, declared notify to 'pong' channel 0"],
    );
}

#[test]
fn extra_irq_binding_is_reported() {
    let (f, mut image) = default();
    let desc = ChannelDesc { kind: CHANNEL_IRQ, irq: 33, ..Default::default() };
    image.set_channel(f.pd_index("ping"), 9, desc);
    assert_findings(&f, &image, &["pd 'ping': extra channel 9: irq 33 (level)"]);
}

#[test]
fn irq_bound_to_another_interrupt_is_reported() {
    let f = Fixture::load("devices");
    let mut image = Image::new(&f.image);
    let desc = ChannelDesc { kind: CHANNEL_IRQ, irq: 34, trigger: bootspec::TRIGGER_EDGE, ..Default::default() };
    image.set_channel(f.pd_index("pong"), 5, desc);
    assert_findings(&f, &image, &["pd 'pong': channel 5 is irq 34 (edge), declared irq 33 (edge)"]);
}

#[test]
fn channel_differing_only_in_unused_bytes_is_ignored() {
    let (f, mut image) = default();
    let pong = f.pd_index("pong") as u8;
    // Channel 0 of ping with an irq number it does not use.
    let desc = ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_NOTIFY, peer: pong, peer_channel: 0, irq: 77, ..Default::default() };
    image.set_channel(f.pd_index("ping"), 0, desc);
    assert_findings(&f, &image, &[]);
}

#[test]
fn wrong_priority_is_reported() {
    let (f, mut image) = default();
    image.edit_pd(f.pd_index("pong"), offset_of!(PdDesc, priority), &[12]);
    assert_findings(&f, &image, &["pd 'pong': priority 12, declared 11"]);
}

#[test]
fn undeclared_passive_flag_is_reported() {
    let (f, mut image) = default();
    image.edit_pd(f.pd_index("ping"), offset_of!(PdDesc, flags), &[PD_PASSIVE]);
    assert_findings(&f, &image, &["pd 'ping': flags passive, declared none"]);
}

#[test]
fn missing_child_and_parent_are_reported() {
    let (f, mut image) = default();
    image.edit_pd(f.pd_index("supervisor"), offset_of!(PdDesc, children), &[NO_PD]);
    image.edit_pd(f.pd_index("worker"), offset_of!(PdDesc, parent), &[NO_PD]);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'supervisor': missing child 0: 'worker'",
            "pd 'worker': parent none, declared 'supervisor' (child id 0)",
        ],
    );
}

#[test]
fn extra_child_is_reported() {
    let (f, mut image) = default();
    let ping = f.pd_index("ping") as u8;
    image.edit_pd(f.pd_index("supervisor"), offset_of!(PdDesc, children) + 3, &[ping]);
    assert_findings(&f, &image, &["pd 'supervisor': extra child 3: 'ping'"]);
}

#[test]
fn shared_asid_is_reported() {
    let (f, mut image) = default();
    let ping_asid = image.pd_u64(f.pd_index("ping"), offset_of!(PdDesc, asid)) as u16;
    image.edit_pd(f.pd_index("client"), offset_of!(PdDesc, asid), &ping_asid.to_le_bytes());
    assert_findings(&f, &image, &[&format!("pd 'client': ASID {ping_asid} is shared with pd 'ping'")]);
}

#[test]
fn renamed_pd_is_reported() {
    let (f, mut image) = default();
    image.edit_pd(f.pd_index("ping"), offset_of!(PdDesc, name), b"pang");
    assert_findings(&f, &image, &["boot spec: protection domain 1 is named 'pang', declared 'ping'"]);
}

#[test]
fn restore_op_writing_another_pds_memory_is_reported() {
    let (f, mut image) = default();
    let worker = f.pd_index("worker");
    let client_stack = image.frame_of(image.ttbr0(f.pd_index("client")), STACK_TOP - 0x4000);
    let first = image.pd_u64(worker, offset_of!(PdDesc, restore_first)) as u32 as usize;
    // Op 1 zeroes the worker's stack; aim it at the client's.
    let op = image.restore_offset(first + 1);
    image.bytes[op + 8..op + 16].copy_from_slice(&client_stack.to_le_bytes());
    image.fix_checksum();
    assert_findings(
        &f,
        &image,
        &[
            &format!(
                "pd 'worker': restore op 1 writes {client_stack:#x}..{:#x}, which is not this PD's own writable memory",
                client_stack + 0x4000
            ),
            "pd 'worker': a restart leaves its stack at 0xfffffc000..0x1000000000 as the last run left it",
        ],
    );
}

#[test]
fn restore_op_dropped_leaves_memory_unreset() {
    let (f, mut image) = default();
    let worker = f.pd_index("worker");
    // Three ops: data, stack, IPC buffer; keep the first two.
    image.edit_pd(worker, offset_of!(PdDesc, restore_count), &2u32.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["pd 'worker': a restart leaves its IPC buffer at 0x1000001000..0x1000002000 as the last run left it"],
    );
}

#[test]
fn restore_copy_from_another_pds_memory_is_reported() {
    let (f, mut image) = default();
    let worker = f.pd_index("worker");
    let server_data = image.frame_of(image.ttbr0(f.pd_index("server")), 0x20_3000);
    let worker_data = image.frame_of(image.ttbr0(worker), 0x20_3000);
    let first = image.pd_u64(worker, offset_of!(PdDesc, restore_first)) as u32 as usize;
    // Op 0 copies the worker's pristine data segment back.
    let op = image.restore_offset(first);
    image.bytes[op + 16..op + 24].copy_from_slice(&server_data.to_le_bytes());
    image.fix_checksum();
    assert_findings(
        &f,
        &image,
        &[
            &format!(
                "pd 'worker': restore op 0 copies {server_data:#x}..{:#x} over {worker_data:#x}..{:#x}, but the copy differs from the initial contents (first at offset 0x0)",
                server_data + PAGE,
                worker_data + PAGE
            ),
            &format!(
                "frames {server_data:#x}..{:#x} of the pristine copy for pd 'worker' are mapped by pd 'server' (program segment at 0x203000)",
                server_data + PAGE
            ),
        ],
    );
}

#[test]
fn patched_variable_with_a_wrong_address_is_reported() {
    let (f, mut image) = default();
    let client = f.pd_index("client");
    let var = symbol(&f.programs[client], "request");
    let frame = image.frame_of(image.ttbr0(client), var & !(PAGE - 1)) + (var & (PAGE - 1));
    image.write_u64(frame, 0x500_0000);
    assert_findings(
        &f,
        &image,
        &["pd 'client': variable 'request' holds 0x5000000, declared 0x4000000 (setvar_vaddr of region 'request')"],
    );
}

#[test]
fn fixed_region_on_other_frames_is_reported() {
    let f = Fixture::load("devices");
    let mut image = Image::new(&f.image);
    let slot = image.l3_slot(image.ttbr0(f.pd_index("ping")), 0x500_0000);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | 0x900_1000);
    assert_findings(
        &f,
        &image,
        &["pd 'ping': region 'uart' at 0x5000000..0x5001000 maps frames at 0x9001000, expected 0x9000000 (its phys_addr)"],
    );
}

#[test]
fn device_region_made_cached_is_reported() {
    let f = Fixture::load("devices");
    let mut image = Image::new(&f.image);
    let slot = image.l3_slot(image.ttbr0(f.pd_index("ping")), 0x500_0000);
    image.write_u64(slot, image.read_u64(slot) | ATTR_NORMAL | SH_INNER);
    assert_findings(&f, &image, &["pd 'ping': region 'uart' at 0x5000000..0x5001000 grants rw cached, declared rw device"]);
}

#[test]
fn shared_region_on_different_frames_in_a_block_is_reported() {
    let f = Fixture::load("devices");
    let mut image = Image::new(&f.image);
    // 'big' is two 2 MiB blocks; move the server's second one.
    let (slot, level) = image.entry_for(image.ttbr0(f.pd_index("server")), 0x820_0000);
    assert_eq!(level, 2);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | 0x4a00_0000);
    assert_findings(
        &f,
        &image,
        &["region 'big' at offsets 0x200000..0x400000 is on frames at 0x40600000 in pd 'client' (at 0x8200000) but at 0x4a000000 in pd 'server' (at 0x8200000)"],
    );
}

#[test]
fn setvar_region_paddr_is_checked() {
    let f = Fixture::load("devices");
    let mut image = Image::new(&f.image);
    let ping = f.pd_index("ping");
    let var = symbol(&f.programs[ping], "microkit_name");
    let frame = image.frame_of(image.ttbr0(ping), var & !(PAGE - 1)) + (var & (PAGE - 1));
    assert_eq!(image.read_u64(frame), 0x4800_0000);
    // Tell ping that 'dma' lies on the page-table pool.
    let (pool, size) = image.pool();
    image.write_u64(frame, pool);
    assert_findings(
        &f,
        &image,
        &[
            &format!("pd 'ping': variable 'microkit_name' holds {pool:#x}, but region 'dma' is at 0x48000000"),
            &format!(
                "image: frames {pool:#x}..{:#x} belong to both the page-table pool and region 'dma' (given to pd 'ping' by 'microkit_name')",
                pool + size
            ),
        ],
    );
}

// Broken inputs.

#[test]
fn spec_with_a_bad_checksum_is_refused() {
    let (f, mut image) = default();
    let off = image.pd_offset(2) + offset_of!(PdDesc, priority);
    image.bytes[off] ^= 1;
    let found = f.check_image(&image.bytes);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("boot spec: at 0x40277000 is refused: checksum 0x"), "{found:?}");
}

#[test]
fn unusable_kernel_elf_falls_back_to_finding_the_spec_by_its_magic() {
    let f = Fixture::load("default");
    let inputs = imagecheck::Inputs { image: &f.image, kernel_elf: b"not an ELF file", programs: f.programs.clone() };
    let found: Vec<String> = imagecheck::check(&f.sd, &inputs).iter().map(|x| x.to_string()).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("kernel ELF: not an ELF64 file"), "{found:?}");
}

#[test]
fn missing_program_image_is_reported() {
    let f = Fixture::load("default");
    let mut programs = f.programs.clone();
    programs.pop();
    let inputs = imagecheck::Inputs { image: &f.image, kernel_elf: &f.kernel, programs };
    let found: Vec<String> = imagecheck::check(&f.sd, &inputs).iter().map(|x| x.to_string()).collect();
    assert_eq!(found[0], "inputs: 7 program images for 8 protection domains");
    // Without its program, the worker's code and data are unexplained.
    assert!(found.contains(&"pd 'worker': extra mapping 0x200000..0x202000 -> 0x4026d000 (rx cached)".to_string()), "{found:?}");
}

#[test]
fn pmu_flag_is_reported_unless_allowed() {
    let (f, mut image) = default();
    let spec = image.spec_offset();
    let flags = spec + offset_of!(bootspec::Header, flags);
    image.bytes[flags] |= bootspec::FLAG_PMU_USER as u8;
    image.fix_checksum();
    assert_findings(
        &f,
        &image,
        &["boot spec: the PMU_USER flag lets every PD read the performance counters, which the description does not declare"],
    );
    let inputs = imagecheck::Inputs { image: &image.bytes, kernel_elf: &f.kernel, programs: f.programs.clone() };
    let options = imagecheck::Options { allow_pmu_user: true };
    assert!(imagecheck::check_with(&f.sd, &inputs, &options).is_empty());
}

#[test]
fn setvar_bytes_are_compared() {
    let f = Fixture::load("default");
    let xml = std::fs::read_to_string(fixture_dir().join("default.xml")).unwrap();
    let with = |bytes: &str| {
        let xml = xml.replace(
            r#"<program_image path="pong" />"#,
            &format!(r#"<program_image path="pong" /><setvar symbol="microkit_name" bytes="{bytes}" />"#),
        );
        let sd = sdf::parse("default.xml", &xml).expect("valid");
        let inputs = imagecheck::Inputs { image: &f.image, kernel_elf: &f.kernel, programs: f.programs.clone() };
        imagecheck::check(&sd, &inputs).iter().map(|x| x.to_string()).collect::<Vec<_>>()
    };
    // The tool wrote the PD's name there.
    assert_eq!(with("706f6e6700"), Vec::<String>::new());
    assert_eq!(with("70616e67"), ["pd 'pong': variable 'microkit_name' holds 706f6e67, declared 70616e67 (setvar bytes)"]);
}

// Lends and call budgets (the devices fixture: client's PPC channel 0 to
// server lends 'table', read-only, which only auditor maps, and 'blob',
// read-write, which no PD maps; server has a call budget of 500 us).

/// Facts about the devices fixture, read off its report.
const TABLE: u64 = 0x4080_0000; // region 'table', 0x2000 bytes
const BLOB: u64 = 0x4080_2000; // region 'blob', 0x3000 bytes

fn devices() -> (Fixture, Image) {
    let f = Fixture::load("devices");
    let image = Image::new(&f.image);
    (f, image)
}

#[test]
fn devices_image_lends_and_call_budget_are_as_declared() {
    let (f, image) = devices();
    // What the builder wrote, read back with the spec's own reader (which
    // wants 8-byte-aligned bytes).
    let spec_at = image.spec_offset();
    let total = u32::from_le_bytes(image.bytes[spec_at + 12..spec_at + 16].try_into().unwrap()) as usize;
    let mut buf = vec![0u8; total + 8];
    let start = buf.as_ptr().align_offset(8);
    buf[start..start + total].copy_from_slice(&image.bytes[spec_at..spec_at + total]);
    let spec = bootspec::Spec::parse(&buf[start..start + total]).expect("the spec parses");
    let (client, server) = (f.pd_index("client"), f.pd_index("server"));
    let lends = spec.channel_lends(&spec.pds[client].channels[0]);
    let (r, rw) = (abi::GRANT_READ, abi::GRANT_READ | abi::GRANT_WRITE);
    assert_eq!(
        lends.iter().map(|l| (l.paddr, l.size, l.rights)).collect::<Vec<_>>(),
        [(TABLE, 0x2000, r), (BLOB, 0x3000, rw)]
    );
    assert_eq!(spec.lends.len(), 2, "no other lends");
    assert_eq!(spec.pds[server].call_budget_us, 500);
    assert!(spec.pds.iter().enumerate().all(|(i, p)| i == server || p.call_budget_us == 0));
    // And the checker finds them exactly as declared.
    assert_eq!(f.check(), Vec::<String>::new());
}

const LEND_PADDR: usize = offset_of!(LendDesc, paddr);
const LEND_SIZE: usize = offset_of!(LendDesc, size);
const LEND_RIGHTS: usize = offset_of!(LendDesc, rights);

#[test]
fn lend_of_a_mapped_region_at_another_address_is_reported() {
    let (f, mut image) = devices();
    image.edit_lend(0, LEND_PADDR, &0x4100_0000u64.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["pd 'client': channel 0 lend 0 (region 'table') paddr 0x41000000, declared 0x40800000 (where the PDs that map it have it)"],
    );
}

#[test]
fn lend_of_an_unmapped_region_is_placed_by_the_lend_but_must_be_nobody_elses() {
    let (f, mut image) = devices();
    // 'blob' has no phys_addr and no PD maps it: free RAM is as good a
    // place as the builder's, so moving it there is no finding ...
    image.edit_lend(1, LEND_PADDR, &0x4100_0000u64.to_le_bytes());
    assert_findings(&f, &image, &[]);
    // ... but onto the worker's stack it is.
    let stack = image.frame_of(image.ttbr0(f.pd_index("worker")), STACK_TOP - 0x4000);
    image.edit_lend(1, LEND_PADDR, &stack.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &[&format!(
            "frames {stack:#x}..{:#x} of region 'blob' (lent by pd 'client' on channel 0) are mapped by pd 'worker' (stack at 0xfffffc000)",
            stack + 0x3000
        )],
    );
}

#[test]
fn lend_of_an_unmapped_region_off_its_page_size_is_reported() {
    let (f, mut image) = devices();
    image.edit_lend(1, LEND_PADDR, &0x4100_0800u64.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["pd 'client': channel 0 lend 1 (region 'blob') paddr 0x41000800, declared a multiple of its page size 0x1000"],
    );
}

#[test]
fn lend_outside_ram_is_reported() {
    let (f, mut image) = devices();
    image.edit_lend(1, LEND_PADDR, &0x900_1000u64.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["pd 'client': channel 0 lend 1 (region 'blob') lends 0x9001000..0x9004000, outside RAM"],
    );
}

#[test]
fn lend_onto_the_page_table_pool_is_reported() {
    let (f, mut image) = devices();
    let (pool, _) = image.pool();
    image.edit_lend(1, LEND_PADDR, &pool.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &[&format!(
            "image: frames {pool:#x}..{:#x} belong to both the page-table pool and region 'blob' (lent by pd 'client' on channel 0)",
            pool + 0x3000
        )],
    );
}

#[test]
fn lend_of_another_size_is_reported() {
    let (f, mut image) = devices();
    image.edit_lend(1, LEND_SIZE, &0x2000u64.to_le_bytes());
    assert_findings(&f, &image, &["pd 'client': channel 0 lend 1 (region 'blob') size 0x2000, declared 0x3000"]);
    // A lend larger than its region reaches the next one.
    let (f, mut image) = devices();
    image.edit_lend(0, LEND_SIZE, &0x3000u64.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': channel 0 lend 0 (region 'table') size 0x3000, declared 0x2000",
            "image: frames 0x40802000..0x40803000 belong to both region 'table' (lent by pd 'client' on channel 0) and region 'blob' (lent by pd 'client' on channel 0)",
        ],
    );
}

#[test]
fn lend_with_other_rights_is_reported() {
    let (f, mut image) = devices();
    image.edit_lend(0, LEND_RIGHTS, &[abi::GRANT_READ | abi::GRANT_WRITE]);
    image.edit_lend(1, LEND_RIGHTS, &[abi::GRANT_READ | 0x4]);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': channel 0 lend 0 (region 'table') rights rw, declared r",
            "pd 'client': channel 0 lend 1 (region 'blob') rights r+0x4, declared rw",
        ],
    );
}

#[test]
fn lend_dropped_from_a_channel_is_reported_with_the_orphan_it_leaves() {
    let (f, mut image) = devices();
    image.set_channel_lends(f.pd_index("client"), 0, 0, 1);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': channel 0 lends 1 region, declared 2 ('table' r, 'blob' rw)",
            "boot spec: lend 1 (0x40802000..0x40805000, rw) is used by no channel",
        ],
    );
}

#[test]
fn lend_slice_moved_is_reported() {
    let (f, mut image) = devices();
    // The channel's lends start at the 'blob' entry: its first lend is
    // 'blob' where 'table' is declared, and 'table' is lent by no one.
    image.set_channel_lends(f.pd_index("client"), 0, 1, 1);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': channel 0 lends 1 region, declared 2 ('table' r, 'blob' rw)",
            "pd 'client': channel 0 lend 0 (region 'table') paddr 0x40802000, declared 0x40800000 (where the PDs that map it have it)",
            "pd 'client': channel 0 lend 0 (region 'table') size 0x3000, declared 0x2000",
            "pd 'client': channel 0 lend 0 (region 'table') rights rw, declared r",
            "boot spec: lend 0 (0x40800000..0x40802000, r) is used by no channel",
        ],
    );
}

#[test]
fn lend_slice_past_the_lend_array_is_refused() {
    let (f, mut image) = devices();
    image.set_channel_lends(f.pd_index("client"), 0, 1, 2);
    assert_findings(&f, &image, &["boot spec: at 0x40850000 is refused: an array lies outside the spec"]);
}

#[test]
fn orphan_lend_is_reported() {
    let (f, mut image) = devices();
    image.append_lend([0x4100_0000, 0x1000, u64::from(abi::GRANT_READ)]);
    assert_findings(&f, &image, &["boot spec: lend 2 (0x41000000..0x41001000, r) is used by no channel"]);
}

#[test]
fn lend_on_a_channel_that_declares_none_is_reported() {
    let (f, mut image) = devices();
    // server's PPC channel to auditor lends 'table' too.
    image.set_channel_lends(f.pd_index("server"), 1, 0, 1);
    // ping's notification channel to pong: the kernel never lends on it,
    // but nothing declares it either.
    image.set_channel_lends(f.pd_index("ping"), 0, 1, 1);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'ping': channel 0 lends 1 region, declared none",
            "pd 'server': channel 1 lends 1 region, declared none",
            "image: frames 0x40800000..0x40802000 belong to both region 'table' (lent by pd 'client' on channel 0) and lend 0 of pd 'server' channel 1 (undeclared)",
        ],
    );
}

#[test]
fn lends_missing_from_a_declared_channel_are_reported() {
    let (f, mut image) = devices();
    image.set_channel_lends(f.pd_index("client"), 0, 0, 0);
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': channel 0 lends 0 regions, declared 2 ('table' r, 'blob' rw)",
            "boot spec: lend 0 (0x40800000..0x40802000, r) is used by no channel",
            "boot spec: lend 1 (0x40802000..0x40805000, rw) is used by no channel",
        ],
    );
}

#[test]
fn call_budget_differing_from_the_declared_one_is_reported() {
    let (f, mut image) = devices();
    image.edit_pd(f.pd_index("server"), offset_of!(PdDesc, call_budget_us), &600u32.to_le_bytes());
    image.edit_pd(f.pd_index("auditor"), offset_of!(PdDesc, call_budget_us), &100u32.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["pd 'server': call budget 600 us, declared 500 us", "pd 'auditor': call budget 100 us, declared none"],
    );
    let (f, mut image) = devices();
    image.edit_pd(f.pd_index("server"), offset_of!(PdDesc, call_budget_us), &0u32.to_le_bytes());
    assert_findings(&f, &image, &["pd 'server': call budget none, declared 500 us"]);
}

#[test]
fn reserved_fields_set_are_reported() {
    let (f, mut image) = devices();
    let (client, server, worker) = (f.pd_index("client"), f.pd_index("server"), f.pd_index("worker"));
    image.edit_pd(server, offset_of!(PdDesc, _reserved2), &7u32.to_le_bytes());
    image.edit_pd(server, offset_of!(PdDesc, _reserved), &[0, 1]);
    image.edit_pd(client, Image::channel_field(0, offset_of!(ChannelDesc, _reserved2)), &0x100u32.to_le_bytes());
    image.edit_pd(client, Image::channel_field(9, offset_of!(ChannelDesc, _reserved)), &[2]);
    image.edit_lend(1, offset_of!(LendDesc, _reserved) + 6, &[0x80]);
    let first = image.pd_u64(worker, offset_of!(PdDesc, restore_first)) as u32 as usize;
    let op = image.restore_offset(first + 1) + offset_of!(bootspec::RestoreOp, _reserved);
    image.bytes[op] = 1;
    image.fix_checksum();
    assert_findings(
        &f,
        &image,
        &[
            "pd 'client': reserved field _reserved2 of channel 0 is 0x100, must be 0",
            "pd 'client': reserved field _reserved of channel 9 is 0x2, must be 0",
            "pd 'server': reserved field _reserved of its record is 0x100, must be 0",
            "pd 'server': reserved field _reserved2 of its record is 0x7, must be 0",
            "pd 'worker': reserved field _reserved of restore op 1 is 0x1, must be 0",
            "boot spec: reserved field _reserved of lend 1 is 0x80000000000000, must be 0",
        ],
    );
}

#[test]
fn setvar_of_a_region_only_a_lend_places_is_compared_with_the_lend() {
    // ping is told where 'blob' is; the image (built telling it where
    // 'dma' is) holds 0x48000000, but the lend puts 'blob' at 0x40802000.
    let f = Fixture::load("devices");
    let xml = std::fs::read_to_string(fixture_dir().join("devices.xml")).unwrap();
    let xml = xml.replace(r#"region_paddr="dma""#, r#"region_paddr="blob""#);
    let sd = sdf::parse("devices.xml", &xml).expect("valid");
    let inputs = imagecheck::Inputs { image: &f.image, kernel_elf: &f.kernel, programs: f.programs.clone() };
    let found: Vec<String> = imagecheck::check(&sd, &inputs).iter().map(|x| x.to_string()).collect();
    assert_eq!(
        found,
        [
            "pd 'ping': variable 'microkit_name' holds 0x48000000, but region 'blob' is at 0x40802000",
            "frames 0x48000000..0x48003000 of region 'blob' (given to pd 'ping' by 'microkit_name') are mapped by pd 'pong' (region 'dma' at 0x6000000)",
        ]
    );
}

// Where the kernel's own mappings point (issue 22, item 11).

const KERNEL_DATA: u64 = 0xffff_0000_4020_8000; // the kernel's .data, physical 0x40208000
const KERNEL_VIRT_OFFSET: u64 = bootspec::platform::KERNEL_VIRT_OFFSET;
const SPEC: u64 = 0x4027_7000; // the default image's boot spec

#[test]
fn kernel_data_page_pointed_at_a_pds_stack_is_reported() {
    let (f, mut image) = default();
    let stack = image.frame_of(image.ttbr0(f.pd_index("worker")), STACK_TOP - PAGE);
    let slot = image.l3_slot(image.kernel_ttbr1(), KERNEL_DATA);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | stack);
    assert_findings(
        &f,
        &image,
        &[&format!(
            "kernel half (TTBR1): kernel data at 0xffff000040208000..0xffff000040209000 maps frames at {stack:#x} (pd 'worker' stack at 0xffffff000), expected 0x40208000 (the kernel image)"
        )],
    );
}

#[test]
fn linear_map_of_an_ipc_buffer_pointed_at_another_pds_is_reported() {
    let (f, mut image) = default();
    let (ping, pong) = (f.pd_index("ping"), f.pd_index("pong"));
    let ping_ipc = image.pd_u64(ping, offset_of!(PdDesc, ipc_buffer_paddr));
    let pong_ipc = image.pd_u64(pong, offset_of!(PdDesc, ipc_buffer_paddr));
    // The kernel copies pong's messages through its linear map of pong's
    // IPC buffer: point that at ping's.
    let slot = image.l3_slot(image.kernel_ttbr1(), pong_ipc + KERNEL_VIRT_OFFSET);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | ping_ipc);
    let v = pong_ipc + KERNEL_VIRT_OFFSET;
    assert_findings(
        &f,
        &image,
        &[&format!(
            "kernel half (TTBR1): the linear map of RAM at {v:#x}..{:#x} maps frames at {ping_ipc:#x} (pd 'ping' IPC buffer at 0x1000001000), expected {pong_ipc:#x} (pd 'pong' IPC buffer at 0x1000001000)",
            v + PAGE
        )],
    );
}

#[test]
fn linear_map_of_the_boot_spec_pointed_elsewhere_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.kernel_ttbr1(), SPEC + KERNEL_VIRT_OFFSET);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | FREE_FRAME);
    assert_findings(
        &f,
        &image,
        &["kernel half (TTBR1): the linear map of RAM at 0xffff000040277000..0xffff000040278000 maps frames at 0x41000000, expected 0x40277000 (the boot spec)"],
    );
}

#[test]
fn kernel_data_made_read_only_or_unmapped_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.kernel_ttbr1(), KERNEL_DATA);
    let e = image.read_u64(slot);
    image.write_u64(slot, e | 0b10 << 6);
    assert_findings(
        &f,
        &image,
        &["kernel half (TTBR1): kernel data at 0xffff000040208000..0xffff000040209000 grants the kernel r cached, expected rw cached"],
    );
    image.write_u64(slot, 0);
    assert_findings(
        &f,
        &image,
        &["kernel half (TTBR1): missing mapping 0xffff000040208000..0xffff000040209000 (kernel data, rw cached)"],
    );
    image.write_u64(slot, e & !AF);
    assert_findings(
        &f,
        &image,
        &["kernel half (TTBR1): kernel data at 0xffff000040208000..0xffff000040209000 grants the kernel no access, expected rw cached"],
    );
}

#[test]
fn kernel_mapping_beyond_ram_is_extra() {
    let (f, mut image) = default();
    // The level-1 entry for the 1 GiB above RAM's: a block onto it.
    let (slot, level) = image.entry_for(image.kernel_ttbr1(), 0xffff_0000_8000_0000);
    assert_eq!(level, 1);
    assert_eq!(image.read_u64(slot), 0);
    image.write_u64(slot, 0x8000_0000 | 0b01 | ATTR_NORMAL | SH_INNER | AF | PXN | UXN);
    assert_findings(
        &f,
        &image,
        &["kernel half (TTBR1): extra mapping 0xffff000080000000..0xffff0000c0000000 -> 0x80000000 (rw cached)"],
    );
}

#[test]
fn boot_tables_must_map_identity_with_an_asid() {
    let (f, mut image) = default();
    let boot = image.header_boot_ttbr0();
    let (slot, level) = image.entry_for(boot, 0x4000_0000);
    assert_eq!(level, 1, "the boot map is one 1 GiB block");
    let e = image.read_u64(slot);
    image.write_u64(slot, e & !NG);
    assert_findings(&f, &image, &["boot tables (TTBR0 at boot): 0x40000000..0x80000000 is global (nG clear)"]);
    image.write_u64(slot, e ^ 0x8000_0000);
    assert_findings(
        &f,
        &image,
        &[
            "boot tables (TTBR0 at boot): the identity map at 0x40000000..0x80000000 maps frames at 0xc0000000, expected 0x40000000 (the RAM QEMU keeps for the device tree)",
        ],
    );
    image.write_u64(slot, e | PXN);
    assert_findings(
        &f,
        &image,
        &["boot tables (TTBR0 at boot): kernel code at 0x40200000..0x40207000 grants the kernel r cached, expected rx cached"],
    );
}

// Tables the MMU would misread.

#[test]
fn contiguous_bit_on_a_group_that_is_not_one_run_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), REQUEST_VADDR);
    image.write_u64(slot, image.read_u64(slot) | 1 << 52);
    assert_findings(
        &f,
        &image,
        &["pd 'client': a level-3 entry for 0x4000000..0x4010000 has the contiguous bit set, but the 16 entries are not one aligned run of frames with the same attributes"],
    );
}

#[test]
fn reserved_descriptor_bits_are_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), REQUEST_VADDR);
    let e = image.read_u64(slot);
    image.write_u64(slot, e | 1 << 49);
    assert_findings(
        &f,
        &image,
        &[&format!("pd 'client': level-3 entry for 0x4000000 sets reserved bits ({:#018x})", e | 1 << 49)],
    );
}

#[test]
fn bits_the_mmu_ignores_are_not_findings() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("client")), REQUEST_VADDR);
    let e = image.read_u64(slot);
    // Software bits, PBHA, DBM and NS.
    image.write_u64(slot, e | 0xf << 55 | 1 << 63 | 1 << 51 | 1 << 5);
    assert_findings(&f, &image, &[]);
}

// The image file.

#[test]
fn entry_point_elsewhere_is_reported() {
    let (f, mut image) = default();
    image.bytes[24..32].copy_from_slice(&0x4020_0004u64.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["image: entry point 0x40200004, but the kernel's entry 0xffff000040200000 is loaded at 0x40200000"],
    );
}

#[test]
fn segment_with_a_virtual_address_of_its_own_is_reported() {
    // QEMU would move the entry point into it (vaddr != paddr, the entry
    // inside its virtual range, executable).
    let (f, mut image) = default();
    let ph = 64 + 56 * 2; // the kernel's .data segment
    image.bytes[ph + 16..ph + 24].copy_from_slice(&0x4020_0000u64.to_le_bytes());
    assert_findings(
        &f,
        &image,
        &["image: segment 2 at 0x40208000 has virtual address 0x40200000; an image's segments are physical (p_vaddr = p_paddr)"],
    );
}

// What PDs reach (issue 22, item 12).

#[test]
fn stack_page_moved_onto_the_device_tree_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("pong")), STACK_TOP - PAGE);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | 0x4000_0000);
    assert_findings(
        &f,
        &image,
        &["frames 0x40000000..0x40001000 of the RAM QEMU keeps for the device tree are mapped by pd 'pong' (stack at 0xffffff000)"],
    );
}

#[test]
fn flipped_byte_in_a_pds_code_is_reported() {
    let (f, mut image) = default();
    let code = image.frame_of(image.ttbr0(f.pd_index("worker")), 0x20_0000);
    let off = image.offset(code + 0x134);
    image.bytes[off] ^= 0x10;
    assert_findings(
        &f,
        &image,
        &[&format!(
            "pd 'worker': program segment 0x200000..0x202000 differs from the program image (first at 0x200134, on frame {:#x})",
            code + 0x134
        )],
    );
}

#[test]
fn flipped_byte_in_a_pds_name_is_reported() {
    let (f, mut image) = default();
    let pong = f.pd_index("pong");
    let name = symbol(&f.programs[pong], "microkit_name");
    let frame = image.frame_of(image.ttbr0(pong), name & !(PAGE - 1)) + (name & (PAGE - 1));
    let off = image.offset(frame + 1);
    image.bytes[off] ^= 0x01;
    assert_findings(&f, &image, &["pd 'pong': variable 'microkit_name' holds 'pnng', declared 'pong' (its name)"]);
}

#[test]
fn code_page_moved_to_free_ram_is_reported() {
    let (f, mut image) = default();
    let slot = image.l3_slot(image.ttbr0(f.pd_index("ping")), 0x20_0000);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | FREE_FRAME);
    assert_findings(
        &f,
        &image,
        &["pd 'ping': program segment 0x200000..0x202000 differs from the program image (first at 0x200000, on frame 0x41000000)"],
    );
}

#[test]
fn page_of_a_lent_region_mapped_off_its_run_is_reported() {
    let f = Fixture::load("devices");
    let mut image = Image::new(&f.image);
    // 'table' (0x2000 bytes at TABLE) is lent by client; auditor maps it.
    let slot = image.l3_slot(image.ttbr0(f.pd_index("auditor")), 0x700_1000);
    let e = image.read_u64(slot);
    image.write_u64(slot, (e & !ADDR) | FREE_FRAME);
    assert_findings(
        &f,
        &image,
        &["region 'table' at offsets 0x1000..0x2000 is on frames at 0x41000000 in pd 'auditor' (at 0x7001000), but its lends and setvars hand it out as one run of frames (expected 0x40801000)"],
    );
}

#[test]
fn restore_op_zeroing_memory_that_starts_non_zero_is_reported() {
    let (f, mut image) = default();
    let worker = f.pd_index("worker");
    let data = image.frame_of(image.ttbr0(worker), 0x20_3000);
    let first = image.pd_u64(worker, offset_of!(PdDesc, restore_first)) as u32 as usize;
    // Op 0 copies the data segment back; make it zero it instead.
    let op = image.restore_offset(first);
    image.bytes[op..op + 4].copy_from_slice(&bootspec::RESTORE_ZERO.to_le_bytes());
    image.fix_checksum();
    let off = image.offset(data);
    let nonzero = data + image.bytes[off..off + PAGE as usize].iter().position(|&b| b != 0).unwrap() as u64;
    assert_findings(
        &f,
        &image,
        &[&format!(
            "pd 'worker': restore op 0 zeroes {data:#x}..{:#x}, but its initial contents are not zero (first at {nonzero:#x})",
            data + PAGE
        )],
    );
}

#[test]
fn image_bytes_loaded_onto_a_stack_are_reported() {
    let (f, mut image) = default();
    let stack = image.frame_of(image.ttbr0(f.pd_index("pong")), STACK_TOP - PAGE);
    // Move the segment that holds the worker's pristine copy onto pong's
    // stack.
    let worker = f.pd_index("worker");
    let first = image.pd_u64(worker, offset_of!(PdDesc, restore_first)) as u32 as usize;
    let src = u64::from_le_bytes(image.bytes[image.restore_offset(first) + 16..][..8].try_into().unwrap());
    let ph = (0..30).map(|i| 64 + 56 * i).find(|&ph| u64::from_le_bytes(image.bytes[ph + 24..ph + 32].try_into().unwrap()) == src).unwrap();
    let off = image.offset(src);
    let nonzero = stack + image.bytes[off..off + PAGE as usize].iter().position(|&b| b != 0).unwrap() as u64;
    for field in [16, 24] {
        image.bytes[ph + field..ph + field + 8].copy_from_slice(&stack.to_le_bytes());
    }
    assert_findings(
        &f,
        &image,
        &[
            &format!("pd 'pong': stack at 0xfffffc000..0x1000000000 does not start zeroed (the image loads a byte at {nonzero:#x})"),
            &format!("pd 'worker': restore op 0 copies from {src:#x}..{:#x}, which the image does not hold", src + PAGE),
        ],
    );
}
