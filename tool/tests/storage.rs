//! The storage expansion on a system with two disks, a whole-disk client
//! and a partition client of disk0 and a direct client of disk1: every
//! generated PD, region, map, interrupt, channel and device, the fixed
//! physical addresses, and the configuration records decoded back.

use blk::config::{
    name_field, ClientConfig, DmaRegion, DmaWindow, DriverConfig, DriverDisk, QueueRegion, ServerClient, ServerConfig,
    ServerDisk, MAGIC,
};
use sdf::{Perms, Pos, SetVarValue, SystemDescription, Trigger};
use tool::storage::{expand, expand_validated, DMA_WINDOW};
use zerocopy::FromBytes;

const SYSTEM: &str = r#"<system>
    <memory_region name="shared" size="0x1000" />
    <disk name="disk0" virtio_slot="31" />
    <disk name="disk1" virtio_slot="30" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <map mr="shared" vaddr="0x1000000" />
        <block_client disk="disk0" />
    </protection_domain>
    <protection_domain name="bench" priority="102">
        <program_image path="bench.elf" />
        <block_client disk="disk1" direct="true" queue_capacity="16" />
    </protection_domain>
    <protection_domain name="part" priority="101">
        <program_image path="part.elf" />
        <irq irq="40" id="0" />
        <block_client disk="disk0" partition="1" data_size="0x200000" queue_capacity="64" />
    </protection_domain>
    <protection_domain name="peer" priority="10">
        <program_image path="peer.elf" />
        <map mr="shared" vaddr="0x1000000" perms="r" />
    </protection_domain>
    <channel>
        <end pd="app" id="0" />
        <end pd="peer" id="0" />
    </channel>
    <device name="timer2" owner="part">
        <interrupt irq="40" />
    </device>
</system>
"#;

// Where the declarations are.
const DISK0: Pos = Pos { line: 3, col: 5 };
const DISK1: Pos = Pos { line: 4, col: 5 };
const APP: Pos = Pos { line: 8, col: 9 };
const BENCH: Pos = Pos { line: 12, col: 9 };
const PART: Pos = Pos { line: 17, col: 9 };

// The fixed physical addresses, allocated in order: disk0's DMA and probe
// blocks, disk1's DMA block (a direct disk has no probe), then the data
// regions of app, bench and part.
const DISK0_DMA: u64 = 0x5000_0000;
const DISK0_PROBE: u64 = 0x5000_4000;
const DISK1_DMA: u64 = 0x5000_5000;
const APP_DATA: u64 = 0x5000_9000;
const BENCH_DATA: u64 = 0x5010_9000;
const PART_DATA: u64 = 0x5020_9000;

fn parse(xml: &str) -> SystemDescription {
    sdf::parse("storage.xml", xml).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn expanded() -> SystemDescription {
    expand(&parse(SYSTEM)).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn pd<'a>(sd: &'a SystemDescription, name: &str) -> &'a sdf::ProtectionDomain {
    sd.pd(name).unwrap_or_else(|| panic!("no protection domain '{name}'")).1
}

/// The maps of a PD as (region, vaddr, perms, cached).
fn maps(sd: &SystemDescription, name: &str) -> Vec<(String, u64, Perms, bool)> {
    pd(sd, name).maps.iter().map(|m| (m.mr.clone(), m.vaddr, m.perms, m.cached)).collect()
}

fn rw(mr: &str, vaddr: u64) -> (String, u64, Perms, bool) {
    (mr.to_string(), vaddr, Perms::READ_WRITE, true)
}

/// The bytes patched into `symbol` of PD `name`.
fn setvar_bytes<'a>(sd: &'a SystemDescription, name: &str, symbol: &str) -> &'a [u8] {
    let setvar = pd(sd, name).setvars.iter().find(|s| s.symbol == symbol).expect("setvar");
    match &setvar.value {
        SetVarValue::Bytes(bytes) => bytes,
        other => panic!("{symbol} is {other:?}"),
    }
}

fn messages(result: Result<SystemDescription, Vec<sdf::Error>>) -> Vec<String> {
    result.err().unwrap_or_default().iter().map(ToString::to_string).collect()
}

#[test]
fn the_driver_and_the_server_are_added_after_the_declared_pds() {
    let sd = expanded();
    let pds: Vec<_> =
        sd.protection_domains.iter().map(|pd| (pd.name.as_str(), pd.priority, pd.program_image.as_str())).collect();
    assert_eq!(
        pds,
        [
            ("app", 100, "app.elf"),
            ("bench", 102, "bench.elf"),
            ("part", 101, "part.elf"),
            ("peer", 10, "peer.elf"),
            ("blk_driver", 250, "virtio_blk"),
            ("blk_server", 240, "blk_server"),
        ]
    );
    for generated in ["blk_driver", "blk_server"] {
        let pd = pd(&sd, generated);
        assert!(!pd.passive && pd.parent.is_none() && pd.child_id.is_none());
    }
    assert!(sd.disks.is_empty(), "an expanded system is plain SDF");
    assert!(sd.protection_domains.iter().all(|pd| pd.block_client.is_none()));
}

#[test]
fn the_driver_maps_the_register_page_dma_and_the_queues() {
    let sd = expanded();
    assert_eq!(
        maps(&sd, "blk_driver"),
        [
            ("virtio_mmio_a003000".to_string(), 0x30_0000_0000, Perms::READ_WRITE, false),
            rw("blk_disk0_dma", 0x31_0000_0000),
            rw("blk_disk0_driver_queue", 0x32_0000_0000),
            rw("blk_disk1_dma", 0x31_0010_0000),
            rw("blk_bench_queue", 0x32_0010_0000),
        ]
    );
    let irqs: Vec<_> = pd(&sd, "blk_driver").irqs.iter().map(|i| (i.irq, i.id, i.trigger, i.pos)).collect();
    assert_eq!(irqs, [(79, 0, Trigger::Edge, DISK0), (78, 1, Trigger::Edge, DISK1)]);
}

#[test]
fn the_server_maps_the_driver_queue_the_probe_block_and_the_client_queues() {
    let sd = expanded();
    assert_eq!(
        maps(&sd, "blk_server"),
        [
            rw("blk_disk0_driver_queue", 0x40_0000_0000),
            rw("blk_disk0_probe", 0x41_0000_0000),
            rw("blk_app_queue", 0x42_0000_0000),
            rw("blk_part_queue", 0x42_0010_0000),
        ]
    );
    assert!(pd(&sd, "blk_server").irqs.is_empty());
}

#[test]
fn clients_map_their_queue_and_data_and_keep_their_own_maps() {
    let sd = expanded();
    assert_eq!(
        maps(&sd, "app"),
        [rw("shared", 0x100_0000), rw("blk_app_queue", 0x50_0000_0000), rw("blk_app_data", 0x51_0000_0000)]
    );
    assert_eq!(maps(&sd, "bench"), [rw("blk_bench_queue", 0x50_0000_0000), rw("blk_bench_data", 0x51_0000_0000)]);
    assert_eq!(maps(&sd, "part"), [rw("blk_part_queue", 0x50_0000_0000), rw("blk_part_data", 0x51_0000_0000)]);
    // Nobody else maps a data region: the device reaches it by address.
    for other in ["blk_driver", "blk_server", "peer"] {
        assert!(maps(&sd, other).iter().all(|(mr, ..)| !mr.ends_with("_data")), "{other}");
    }
}

#[test]
fn regions_have_their_sizes_and_the_dma_memory_fixed_addresses() {
    let sd = expanded();
    let regions: Vec<_> =
        sd.memory_regions.iter().map(|mr| (mr.name.as_str(), mr.size, mr.page_size, mr.phys_addr)).collect();
    assert_eq!(
        regions,
        [
            ("shared", 0x1000, 0x1000, None),
            ("virtio_mmio_a003000", 0x1000, 0x1000, Some(0x0a00_3000)),
            ("blk_disk0_dma", 0x4000, 0x1000, Some(DISK0_DMA)),
            ("blk_disk0_driver_queue", 0x1000, 0x1000, None),
            ("blk_disk0_probe", 0x1000, 0x1000, Some(DISK0_PROBE)),
            ("blk_disk1_dma", 0x4000, 0x1000, Some(DISK1_DMA)),
            ("blk_app_queue", 0x1000, 0x1000, None),
            ("blk_app_data", 0x10_0000, 0x1000, Some(APP_DATA)),
            ("blk_bench_queue", 0x1000, 0x1000, None),
            ("blk_bench_data", 0x10_0000, 0x1000, Some(BENCH_DATA)),
            ("blk_part_queue", 0x1000, 0x1000, None),
            ("blk_part_data", 0x20_0000, 0x1000, Some(PART_DATA)),
        ]
    );
}

#[test]
fn fixed_addresses_lie_in_the_window_and_do_not_overlap() {
    let sd = expanded();
    let mut ranges: Vec<_> = sd.memory_regions.iter().filter(|mr| mr.name.starts_with("blk_")).filter_map(|mr| mr.phys_range()).collect();
    assert_eq!(ranges.len(), 6);
    ranges.sort_by_key(|r| r.start);
    for r in &ranges {
        assert!(DMA_WINDOW.start <= r.start && r.end <= DMA_WINDOW.end, "{r:x?}");
        assert_eq!(r.start % 0x1000, 0);
    }
    for pair in ranges.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{pair:x?}");
    }
}

#[test]
fn channels_join_clients_server_and_driver() {
    let sd = expanded();
    let name = |i: usize| sd.protection_domains[i].name.as_str();
    let channels: Vec<_> = sd
        .channels
        .iter()
        .map(|ch| {
            let [a, b] = &ch.ends;
            assert!(!a.pp && !b.pp && a.notify && b.notify);
            (name(a.pd), a.id, name(b.pd), b.id, ch.pos)
        })
        .collect();
    for generated in &sd.channels[1..] {
        assert_eq!(generated.ends.each_ref().map(|e| e.pos), [generated.pos; 2], "ends at the declaration too");
    }
    assert_eq!(
        channels,
        [
            ("app", 0, "peer", 0, Pos { line: 23, col: 5 }),
            ("blk_server", 40, "blk_driver", 10, DISK0),
            // app already uses id 0, part uses 0 for its irq.
            ("app", 1, "blk_server", 0, APP),
            ("bench", 0, "blk_driver", 11, BENCH),
            ("part", 1, "blk_server", 1, PART),
        ]
    );
}

#[test]
fn one_device_owns_the_shared_register_page_and_both_interrupts() {
    let sd = expanded();
    let devices: Vec<_> = sd
        .devices
        .iter()
        .map(|d| {
            let owners: Vec<_> = d.owners.iter().map(|&o| sd.protection_domains[o].name.as_str()).collect();
            let regions: Vec<_> = d.regions.iter().map(|r| r.mr.as_str()).collect();
            let irqs: Vec<_> = d.irqs.iter().map(|i| (i.irq, i.pos)).collect();
            (d.name.as_str(), owners, regions, irqs, d.pos)
        })
        .collect();
    assert_eq!(
        devices,
        [
            ("timer2", vec!["part"], vec![], vec![(40, Pos { line: 28, col: 9 })], Pos { line: 27, col: 5 }),
            ("virtio_mmio_a003000", vec!["blk_driver"], vec!["virtio_mmio_a003000"], vec![(79, DISK0), (78, DISK1)], DISK0),
        ]
    );
}

#[test]
fn disks_in_different_pages_get_a_region_and_device_each() {
    let xml = r#"<system>
    <disk name="a" virtio_slot="31" />
    <disk name="b" virtio_slot="0" />
    <disk name="c" virtio_slot="1" />
    <protection_domain name="app"><program_image path="app.elf" /><block_client disk="c" /></protection_domain>
</system>"#;
    let sd = expand(&parse(xml)).unwrap();
    let driver = maps(&sd, "blk_driver");
    assert_eq!(driver[0], ("virtio_mmio_a003000".to_string(), 0x30_0000_0000, Perms::READ_WRITE, false));
    assert_eq!(driver[1], ("virtio_mmio_a000000".to_string(), 0x30_0000_1000, Perms::READ_WRITE, false));
    let devices: Vec<_> = sd.devices.iter().map(|d| (d.name.as_str(), d.irqs.iter().map(|i| i.irq).collect::<Vec<_>>())).collect();
    assert_eq!(devices, [("virtio_mmio_a003000", vec![79]), ("virtio_mmio_a000000", vec![48, 49])]);
    let config = DriverConfig::read_from_bytes(setvar_bytes(&sd, "blk_driver", "blk_driver_config")).unwrap();
    let mmio: Vec<_> = config.disks().unwrap().iter().map(|d| d.mmio_vaddr).collect();
    assert_eq!(mmio, [0x30_0000_0e00, 0x30_0000_1000, 0x30_0000_1200]);
    // The server drives every disk, those without clients too.
    let server = ServerConfig::read_from_bytes(setvar_bytes(&sd, "blk_server", "blk_server_config")).unwrap();
    assert!(server.disks().iter().all(|d| d.queue.size == 0x1000 && d.probe.size == 0x1000));
}

#[test]
fn the_driver_config_describes_each_disk() {
    let sd = expanded();
    let config = DriverConfig::read_from_bytes(setvar_bytes(&sd, "blk_driver", "blk_driver_config")).unwrap();
    let mut want = DriverConfig::UNSET;
    want.magic = MAGIC;
    want.disk_count = 2;
    want.disks[0] = DriverDisk {
        mmio_vaddr: 0x30_0000_0e00,
        dma: DmaRegion { vaddr: 0x31_0000_0000, paddr: DISK0_DMA, size: 0x4000 },
        queue: QueueRegion { vaddr: 0x32_0000_0000, size: 0x1000, capacity: 64, channel: 10 },
        irq_channel: 0,
        // The server checks its clients' buffers itself.
        confined: 0,
        window_count: 0,
        _reserved: 0,
        windows: Default::default(),
    };
    want.disks[1] = DriverDisk {
        mmio_vaddr: 0x30_0000_0c00,
        dma: DmaRegion { vaddr: 0x31_0010_0000, paddr: DISK1_DMA, size: 0x4000 },
        // The direct client's queue, with its capacity.
        queue: QueueRegion { vaddr: 0x32_0010_0000, size: 0x1000, capacity: 16, channel: 11 },
        irq_channel: 1,
        // The direct client's buffers must lie in its data region.
        confined: 1,
        window_count: 1,
        _reserved: 0,
        windows: [
            DmaWindow { paddr: BENCH_DATA, size: 0x10_0000, device_writes: 1, _reserved: 0 },
            DmaWindow::default(),
            DmaWindow::default(),
            DmaWindow::default(),
        ],
    };
    assert_eq!(config, want);
    assert_eq!(config.disks().unwrap().len(), 2);
    assert_eq!(pd(&sd, "blk_driver").setvars[0].pos, DISK0);
}

#[test]
fn the_server_config_describes_its_disks_and_clients() {
    let sd = expanded();
    let config = ServerConfig::read_from_bytes(setvar_bytes(&sd, "blk_server", "blk_server_config")).unwrap();
    let mut want = ServerConfig::UNSET;
    want.magic = MAGIC;
    want.disk_count = 2;
    want.client_count = 2;
    want.disks[0] = ServerDisk {
        queue: QueueRegion { vaddr: 0x40_0000_0000, size: 0x1000, capacity: 64, channel: 40 },
        probe: DmaRegion { vaddr: 0x41_0000_0000, paddr: DISK0_PROBE, size: 0x1000 },
        name: name_field("disk0"),
    };
    // disk1 belongs to its direct client: the server knows only its name.
    want.disks[1] = ServerDisk { name: name_field("disk1"), ..ServerDisk::default() };
    want.clients[0] = ServerClient {
        queue: QueueRegion { vaddr: 0x42_0000_0000, size: 0x1000, capacity: 32, channel: 0 },
        data: DmaRegion { vaddr: 0, paddr: APP_DATA, size: 0x10_0000 },
        disk: 0,
        partition: 0,
        name: name_field("app"),
        entry: 0,
        flags: 0,
    };
    want.clients[1] = ServerClient {
        queue: QueueRegion { vaddr: 0x42_0010_0000, size: 0x1000, capacity: 64, channel: 1 },
        data: DmaRegion { vaddr: 0, paddr: PART_DATA, size: 0x20_0000 },
        disk: 0,
        partition: 1,
        name: name_field("part"),
        entry: 0,
        flags: 0,
    };
    assert_eq!(config, want);
    assert_eq!(pd(&sd, "blk_server").setvars[0].pos, APP, "the server comes from the first client it serves");
}

#[test]
fn each_client_config_describes_its_queue_data_and_disk() {
    let sd = expanded();
    let client = |name| ClientConfig::read_from_bytes(setvar_bytes(&sd, name, "blk_client_config")).unwrap();
    let want = |direct, capacity, channel, paddr, size, disk| ClientConfig {
        magic: MAGIC,
        direct,
        queue: QueueRegion { vaddr: 0x50_0000_0000, size: 0x1000, capacity, channel },
        data: DmaRegion { vaddr: 0x51_0000_0000, paddr, size },
        disk: name_field(disk),
    };
    assert_eq!(client("app"), want(0, 32, 1, APP_DATA, 0x10_0000, "disk0"));
    assert_eq!(client("bench"), want(1, 16, 0, BENCH_DATA, 0x10_0000, "disk1"));
    assert_eq!(client("part"), want(0, 64, 1, PART_DATA, 0x20_0000, "disk0"));
    for (name, pos) in [("app", APP), ("bench", BENCH), ("part", PART)] {
        let setvars: Vec<_> = pd(&sd, name).setvars.iter().map(|s| (s.symbol.as_str(), s.pos)).collect();
        assert_eq!(setvars, [("blk_client_config", pos)], "{name}");
    }
}

#[test]
fn generated_elements_carry_the_position_of_their_declaration() {
    let sd = expanded();
    let region_pos = |name: &str| sd.memory_region(name).unwrap().pos;
    assert_eq!(region_pos("virtio_mmio_a003000"), DISK0);
    assert_eq!(region_pos("blk_disk1_dma"), DISK1);
    assert_eq!(region_pos("blk_part_data"), PART);
    assert_eq!(pd(&sd, "blk_driver").pos, DISK0);
    assert_eq!(pd(&sd, "blk_driver").program_image_pos, DISK0);
    assert_eq!(pd(&sd, "blk_server").pos, APP);
    let bench_queue_in_driver = pd(&sd, "blk_driver").maps.iter().find(|m| m.mr == "blk_bench_queue").unwrap();
    assert_eq!(bench_queue_in_driver.pos, BENCH);
}

#[test]
fn generated_names_are_the_ones_validation_reserves() {
    use sdf::storage::NameSpace;
    use std::collections::BTreeSet;
    let declared = |sd: &SystemDescription| {
        let pds = sd.protection_domains.iter().map(|p| (NameSpace::ProtectionDomain, p.name.clone()));
        let regions = sd.memory_regions.iter().map(|m| (NameSpace::MemoryRegion, m.name.clone()));
        let devices = sd.devices.iter().map(|d| (NameSpace::Device, d.name.clone()));
        pds.chain(regions).chain(devices).collect::<BTreeSet<_>>()
    };
    let input = parse(SYSTEM);
    let sd = expand(&input).unwrap();
    let generated: BTreeSet<_> = declared(&sd).difference(&declared(&input)).cloned().collect();
    let reserved: BTreeSet<_> = sdf::storage::generated_names(&input).into_iter().map(|g| (g.space, g.name)).collect();
    assert_eq!(generated, reserved);
    // Two PDs, a register page (region and device), disk0's three regions,
    // disk1's DMA region and two regions per client.
    assert_eq!(reserved.len(), 14);
}

#[test]
fn the_expanded_system_is_valid_and_keeps_device_ownership() {
    let sd = expand_validated(&parse(SYSTEM)).unwrap_or_else(|e| panic!("{e:#?}"));
    let analysis = verify::analyse(&sd, None);
    assert!(analysis.ok(), "{:#?}", analysis.violations());
    let text = sdf::to_xml(&sd);
    let again = sdf::parse("storage.xml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
    assert_eq!(again.without_positions(), sd.without_positions());
}

/// Systems for the round trip through XML.
const ROUND_TRIP: &[&str] = &[
    SYSTEM,
    // One disk, one client.
    r#"<system><disk name="d" virtio_slot="31"/>
        <protection_domain name="c" priority="5"><program_image path="c"/><block_client disk="d"/></protection_domain></system>"#,
    // Only a direct client: no server.
    r#"<system><disk name="d" virtio_slot="0"/>
        <protection_domain name="b"><program_image path="b"/><block_client disk="d" direct="true"/></protection_domain></system>"#,
    // A disk nobody uses, nested clients, four disks.
    r#"<system><disk name="a" virtio_slot="31"/><disk name="b" virtio_slot="30"/>
        <disk name="c" virtio_slot="8"/><disk name="d" virtio_slot="9"/>
        <protection_domain name="p" priority="3"><program_image path="p"/>
            <protection_domain name="k" id="2"><program_image path="k"/>
                <block_client disk="b" partition="4" data_size="0x3000" queue_capacity="1"/></protection_domain>
        </protection_domain>
        <protection_domain name="q"><program_image path="q"/><block_client disk="d" partition="2"/></protection_domain>
        <policy name="k-alone" kind="isolated" pd="k"><allow pd="p"/></policy>
    </system>"#,
    // No disks at all.
    r#"<system><protection_domain name="blk_driver"><program_image path="x"/></protection_domain></system>"#,
];

#[test]
fn expanded_systems_read_back_from_xml_unchanged() {
    for xml in ROUND_TRIP {
        let input = sdf::read("storage.xml", xml).unwrap_or_else(|e| panic!("{e:#?}"));
        let sd = expand(&input).unwrap_or_else(|e| panic!("{e:#?}"));
        let text = sdf::to_xml(&sd);
        let again = sdf::parse("storage.xml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
        assert_eq!(again.without_positions(), sd.without_positions(), "{text}");
        assert_eq!(sdf::to_xml(&again), text, "writing is deterministic");
    }
}

#[test]
fn without_a_served_client_there_is_no_server() {
    let sd = expand(&parse(ROUND_TRIP[2])).unwrap();
    let names: Vec<_> = sd.protection_domains.iter().map(|pd| pd.name.as_str()).collect();
    assert_eq!(names, ["b", "blk_driver"]);
    assert!(sd.memory_region("blk_d_probe").is_none() && sd.memory_region("blk_d_driver_queue").is_none());
    let config = DriverConfig::read_from_bytes(setvar_bytes(&sd, "blk_driver", "blk_driver_config")).unwrap();
    assert_eq!(config.disks[0].queue, QueueRegion { vaddr: 0x32_0000_0000, size: 0x1000, capacity: 32, channel: 10 });
}

#[test]
fn a_direct_client_is_confined_to_its_data_and_the_fixed_regions_it_maps_with_its_rights() {
    let xml = r#"<system>
    <memory_region name="ram" size="0x2000" />
    <memory_region name="log" size="0x1000" phys_addr="0x20_0000_0000" />
    <memory_region name="rom" size="0x3000" phys_addr="0x21_0000_0000" />
    <disk name="d" virtio_slot="31" />
    <protection_domain name="x"><program_image path="x"/>
        <map mr="ram" vaddr="0x1000000" />
        <map mr="rom" vaddr="0x2000000" perms="r" />
        <map mr="log" vaddr="0x3000000" />
        <block_client disk="d" direct="true" data_size="0x4000"/>
    </protection_domain></system>"#;
    let sd = expand_validated(&parse(xml)).unwrap();
    let config = DriverConfig::read_from_bytes(setvar_bytes(&sd, "blk_driver", "blk_driver_config")).unwrap();
    let data = sd.memory_region("blk_x_data").unwrap().phys_addr.unwrap();
    let window = |paddr, size, device_writes| DmaWindow { paddr, size, device_writes, _reserved: 0 };
    // Not `ram`: the builder places it, so it has no address yet (and
    // the client cannot name one).
    assert_eq!(
        config.disks[0].windows(),
        Some(&[window(data, 0x4000, 1), window(0x21_0000_0000, 0x3000, 0), window(0x20_0000_0000, 0x1000, 1)][..])
    );

    // A fourth fixed region is one too many.
    let xml = xml.replace(r#"<map mr="log" vaddr="0x3000000" />"#, r#"<map mr="log" vaddr="0x3000000" />
        <map mr="log" vaddr="0x4000000" /><map mr="rom" vaddr="0x5000000" perms="r" />"#);
    let errors = expand(&parse(&xml)).unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        ["error: direct block_client of protection domain 'x': it maps 4 regions with a fixed phys_addr, and the \
          driver confines its requests to its data region and at most 3 of those; map fewer at storage.xml:11:9"]
    );
}

#[test]
fn a_disk_nobody_uses_has_no_queue_without_a_server() {
    let xml = r#"<system><disk name="a" virtio_slot="31"/><disk name="b" virtio_slot="30"/>
        <protection_domain name="x"><program_image path="x"/><block_client disk="a" direct="true"/></protection_domain></system>"#;
    let sd = expand(&parse(xml)).unwrap();
    let config = DriverConfig::read_from_bytes(setvar_bytes(&sd, "blk_driver", "blk_driver_config")).unwrap();
    assert_eq!(config.disks[1].queue, QueueRegion::default());
    assert_eq!(config.disks[1].irq_channel, 1);
    assert_eq!(pd(&sd, "blk_driver").irqs.len(), 2);
}

#[test]
fn fixed_regions_of_the_description_in_the_window_are_stepped_around() {
    let xml = r#"<system>
    <memory_region name="mine" size="0x2000" phys_addr="0x5000_2000" />
    <disk name="d" virtio_slot="31" />
    <protection_domain name="c"><program_image path="c"/><block_client disk="d" data_size="0x1000"/></protection_domain>
</system>"#;
    let sd = expand_validated(&parse(xml)).unwrap();
    let paddr = |name: &str| sd.memory_region(name).unwrap().phys_addr.unwrap();
    assert_eq!(paddr("blk_d_dma"), 0x5000_4000);
    assert_eq!(paddr("blk_d_probe"), 0x5000_8000);
    assert_eq!(paddr("blk_c_data"), 0x5000_9000);
}

// ---- errors ----

#[test]
fn more_than_four_disks_are_refused() {
    let disks: String = (0..5).map(|i| format!("<disk name=\"d{i}\" virtio_slot=\"{i}\"/>\n")).collect();
    let xml = format!("<system>\n{disks}<protection_domain name=\"a\"><program_image path=\"a\"/></protection_domain></system>");
    assert_eq!(
        messages(expand(&parse(&xml))),
        ["error: too many disks: 5 declared, at most 4 are supported at storage.xml:6:1"]
    );
}

#[test]
fn more_than_sixteen_clients_of_the_server_are_refused() {
    let clients: String = (0..17)
        .map(|i| format!("<protection_domain name=\"c{i}\"><program_image path=\"c\"/><block_client disk=\"d\" data_size=\"0x1000\"/></protection_domain>\n"))
        .collect();
    let xml = format!("<system>\n<disk name=\"d\" virtio_slot=\"31\"/>\n{clients}</system>");
    assert_eq!(
        messages(expand(&parse(&xml))),
        ["error: too many block clients of the filter server: 'c16' is number 17, at most 16 are supported at storage.xml:19:56"]
    );
}

#[test]
fn an_exhausted_dma_window_is_reported_at_the_client() {
    let xml = r#"<system>
<disk name="d" virtio_slot="31"/>
<protection_domain name="a"><program_image path="a"/><block_client disk="d" data_size="0x800_0000"/></protection_domain>
<protection_domain name="b"><program_image path="b"/><block_client disk="d" data_size="0x800_0000"/></protection_domain>
</system>"#;
    assert_eq!(
        messages(expand(&parse(xml))),
        ["error: no room for the data region of block client 'b' (0x8000000 bytes) in the storage DMA window \
          0x50000000..0x60000000: the storage regions and fixed regions in the window need less memory at storage.xml:4:54"]
    );
}

#[test]
fn a_client_without_a_free_channel_id_is_refused() {
    let irqs: String = (0..62).map(|i| format!("<irq irq=\"{}\" id=\"{i}\"/>", 100 + i)).collect();
    let xml = format!(
        "<system>\n<disk name=\"d\" virtio_slot=\"31\"/>\n<protection_domain name=\"full\"><program_image path=\"f\"/>{irqs}\n<block_client disk=\"d\"/></protection_domain>\n</system>"
    );
    assert_eq!(
        messages(expand(&parse(&xml))),
        ["error: protection domain 'full' uses every channel id from 0 to 61: its block client needs one at storage.xml:4:1"]
    );
}

#[test]
fn a_direct_client_that_is_not_alone_is_refused_even_unvalidated() {
    let xml = r#"<system>
<disk name="d" virtio_slot="31"/>
<protection_domain name="a"><program_image path="a"/><block_client disk="d" direct="true"/></protection_domain>
<protection_domain name="b"><program_image path="b"/><block_client disk="d"/></protection_domain>
</system>"#;
    // `sdf::read` skips validation (as a model built by hand may be).
    let sd = sdf::read("storage.xml", xml).unwrap();
    assert_eq!(
        messages(expand(&sd)),
        ["error: disk 'd' has a direct client 'a' and another client 'b': a disk with a direct client may have no \
          other client at storage.xml:4:54"]
    );
}

#[test]
fn a_map_in_the_way_of_the_generated_ones_is_reported_at_the_block_client() {
    let xml = r#"<system>
<memory_region name="mine" size="0x1000"/>
<disk name="d" virtio_slot="31"/>
<protection_domain name="a"><program_image path="a"/>
    <map mr="mine" vaddr="0x50_0000_0000"/>
    <block_client disk="d"/>
</protection_domain>
</system>"#;
    let sd = parse(xml);
    assert!(expand(&sd).is_ok(), "expansion alone does not validate");
    assert_eq!(
        messages(expand_validated(&sd)),
        ["error: map of 'blk_a_queue' at [0x5000000000..0x5000001000) overlaps map of 'mine' at \
          [0x5000000000..0x5000001000) in protection domain 'a' at storage.xml:6:5"]
    );
}

#[test]
fn too_many_pds_after_expansion_are_reported_at_the_disk() {
    let pds: String = (0..63).map(|i| format!("<protection_domain name=\"p{i}\"><program_image path=\"p\"/></protection_domain>\n")).collect();
    let xml = format!("<system>\n<disk name=\"d\" virtio_slot=\"31\"/>\n{pds}</system>");
    let sd = parse(&xml);
    assert_eq!(
        messages(expand_validated(&sd)),
        ["error: too many protection domains: 64 declared, at most 63 are supported at storage.xml:2:1"]
    );
}
