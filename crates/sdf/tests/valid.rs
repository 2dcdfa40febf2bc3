//! A full valid system parses to exactly the model it describes.

use std::path::Path;

use sdf::*;

const FILE: &str = "tests/fixtures/valid.xml";

fn pos(line: u32, col: u32) -> Pos {
    Pos { line, col }
}

/// A protection domain with the defaults of everything optional.
fn pd(name: &str, line: u32, col: u32, image: &str) -> ProtectionDomain {
    ProtectionDomain {
        name: name.to_string(),
        pos: pos(line, col),
        priority: 0,
        passive: false,
        stack_size: abi::layout::DEFAULT_STACK_SIZE,
        budget: 1000,
        period: 1000,
        call_budget: None,
        can_power_off: false,
        program_image: image.to_string(),
        program_image_pos: pos(line + 1, col + 4),
        maps: vec![],
        irqs: vec![],
        setvars: vec![],
        parent: None,
        child_id: None,
        block_client: None,
        chains: vec![],
    }
}

fn map(mr: &str, vaddr: u64, perms: Perms, line: u32) -> Map {
    Map { mr: mr.to_string(), vaddr, perms, cached: true, setvar_vaddr: None, pos: pos(line, 9) }
}

fn end(pd: usize, id: u8, line: u32) -> ChannelEnd {
    ChannelEnd { pd, id, pp: false, notify: true, pos: pos(line, 9) }
}

fn expected() -> SystemDescription {
    let driver = ProtectionDomain {
        priority: 200,
        passive: true,
        stack_size: 0x2000,
        budget: 500,
        period: 2000,
        maps: vec![
            Map {
                cached: false,
                setvar_vaddr: Some("uart_base".into()),
                ..map("uart", 0x200_0000, Perms::READ_WRITE, 11)
            },
            Map {
                setvar_vaddr: Some("dma_vaddr".into()),
                ..map("dma", 0x4000_0000, Perms::READ_WRITE, 12)
            },
        ],
        setvars: vec![SetVar {
            symbol: "dma_paddr".into(),
            value: SetVarValue::RegionPaddr("dma".into()),
            pos: pos(13, 9),
        }],
        irqs: vec![
            Irq { irq: 33, id: 0, trigger: Trigger::Level, pos: pos(14, 9) },
            Irq { irq: 79, id: 1, trigger: Trigger::Edge, pos: pos(15, 9) },
        ],
        ..pd("driver", 9, 5, "build/driver.elf")
    };
    let server = ProtectionDomain {
        priority: 100,
        can_power_off: true,
        maps: vec![map("shared", 0x300_0000, Perms::READ, 20)],
        ..pd("server", 18, 5, "build/server.elf")
    };
    let worker = ProtectionDomain {
        priority: 50,
        parent: Some(1),
        child_id: Some(0),
        ..pd("worker", 21, 9, "build/worker.elf")
    };
    let helper = ProtectionDomain {
        priority: 40,
        budget: 100,
        period: 100,
        parent: Some(2),
        child_id: Some(3),
        ..pd("helper", 23, 13, "build/helper.elf")
    };
    let sidecar = ProtectionDomain {
        parent: Some(1),
        child_id: Some(1),
        maps: vec![Map { pos: pos(29, 13), ..map("shared", 0x10000, Perms::READ_EXECUTE, 29) }],
        ..pd("sidecar", 27, 9, "build/sidecar.elf")
    };
    let client = ProtectionDomain {
        maps: vec![map("shared", 0x300_0000, Perms::READ_WRITE, 35)],
        ..pd("client", 33, 5, "build/client.elf")
    };

    SystemDescription {
        file: FILE.to_string(),
        protection_domains: vec![driver, server, worker, helper, sidecar, client],
        memory_regions: vec![
            MemoryRegion {
                name: "uart".into(),
                size: 0x1000,
                page_size: 0x1000,
                phys_addr: Some(0x900_0000),
                pos: pos(5, 5),
            },
            MemoryRegion {
                name: "dma".into(),
                size: 0x20_0000,
                page_size: 0x20_0000,
                phys_addr: Some(0x5000_0000),
                pos: pos(6, 5),
            },
            MemoryRegion {
                name: "shared".into(),
                size: 0x4000,
                page_size: 0x1000,
                phys_addr: None,
                pos: pos(7, 5),
            },
        ],
        channels: vec![
            Channel {
                ends: [
                    ChannelEnd { pp: true, ..end(1, 0, 39) },
                    ChannelEnd { notify: false, ..end(0, 2, 40) },
                ],
                lends: vec![],
                pos: pos(38, 5),
            },
            Channel {
                ends: [ChannelEnd { pp: true, ..end(5, 5, 43) }, end(1, 1, 44)],
                lends: vec![],
                pos: pos(42, 5),
            },
            Channel { ends: [end(2, 0, 47), end(5, 61, 48)], lends: vec![], pos: pos(46, 5) },
        ],
        devices: vec![
            Device {
                name: "serial".into(),
                owners: vec![0],
                regions: vec![DeviceRegion { mr: "uart".into(), pos: pos(52, 9) }],
                irqs: vec![DeviceIrq { irq: 33, pos: pos(53, 9) }],
                pos: pos(51, 5),
            },
            Device {
                name: "disk".into(),
                owners: vec![0, 1],
                regions: vec![DeviceRegion { mr: "dma".into(), pos: pos(56, 9) }],
                irqs: vec![DeviceIrq { irq: 79, pos: pos(57, 9) }],
                pos: pos(55, 5),
            },
        ],
        policies: vec![
            Policy {
                name: "client-never-reaches-disk".into(),
                rule: PolicyRule::NoFlow {
                    from: vec![Endpoint { entity: Entity::Pd(5), pos: pos(61, 9) }],
                    to: vec![
                        Endpoint { entity: Entity::Device("disk".into()), pos: pos(62, 9) },
                        Endpoint { entity: Entity::Region("dma".into()), pos: pos(63, 9) },
                    ],
                },
                pos: pos(60, 5),
            },
            Policy {
                name: "driver-through-server".into(),
                rule: PolicyRule::Mediated {
                    from: vec![Endpoint { entity: Entity::Pd(5), pos: pos(66, 9) }],
                    to: vec![Endpoint { entity: Entity::Pd(0), pos: pos(67, 9) }],
                    via: vec![1],
                },
                pos: pos(65, 5),
            },
            Policy {
                name: "helper-alone".into(),
                rule: PolicyRule::Isolated { pd: 3, allow: vec![Allow { pd: 2, pos: pos(70, 9) }] },
                pos: pos(69, 5),
            },
        ],
        pending_policies: vec![],
        disks: vec![],
    }
}

fn fixture() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE)).unwrap()
}

#[test]
fn full_system_parses_to_the_expected_model() {
    let sd = sdf::parse(FILE, &fixture()).unwrap_or_else(|errors| {
        panic!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    });
    let expected = expected();
    // Compare piece by piece first, for readable failures.
    for (got, want) in sd.protection_domains.iter().zip(&expected.protection_domains) {
        assert_eq!(got, want);
    }
    assert_eq!(sd.memory_regions, expected.memory_regions);
    assert_eq!(sd.channels, expected.channels);
    assert_eq!(sd.devices, expected.devices);
    assert_eq!(sd.policies, expected.policies);
    assert_eq!(sd, expected);
}

#[test]
fn reading_alone_gives_the_same_model_for_a_valid_system() {
    assert_eq!(sdf::read(FILE, &fixture()).unwrap(), expected());
}

#[test]
fn read_file_reads_the_fixture_without_validating() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    let sd = sdf::read_file(&path).unwrap();
    assert_eq!(sd.devices.len(), 2);
    assert!(sdf::read_file(Path::new("/nonexistent/system.xml")).is_err());
}

#[test]
fn parse_file_reads_the_fixture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    let sd = sdf::parse_file(&path).unwrap();
    assert_eq!(sd.file, path.display().to_string());
    assert_eq!(sd.protection_domains.len(), 6);
}

#[test]
fn unreadable_file_is_one_error_at_line_zero() {
    let path = Path::new("/nonexistent/system.xml");
    let errors = sdf::parse_file(path).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].col), (0, 0));
    assert!(errors[0].message.contains("No such file"), "{}", errors[0]);
    // Shown with its file, without a position it does not have.
    assert_eq!(
        errors[0].to_string(),
        "error: cannot read the system description: No such file or directory (os error 2): give the path of a \
         system file (in /nonexistent/system.xml)"
    );
}

#[test]
fn lookup_helpers_find_entities_by_name() {
    let sd = sdf::parse(FILE, &fixture()).unwrap();
    let (index, worker) = sd.pd("worker").unwrap();
    assert_eq!((index, worker.child_id), (2, Some(0)));
    assert!(sd.pd("nobody").is_none());
    assert_eq!(sd.memory_region("dma").unwrap().page_size, 0x20_0000);
    let children: Vec<_> = sd.children(1).map(|(_, pd)| pd.name.as_str()).collect();
    assert_eq!(children, ["worker", "sidecar"]);
    let server_peers: Vec<_> = sd.channels_of(1).map(|(own, other)| (own.id, other.pd)).collect();
    assert_eq!(server_peers, [(0, 0), (1, 5)]);
    let (caller, callee) = sd.channels[0].ppc_caller_callee().unwrap();
    assert_eq!((caller.pd, callee.pd), (1, 0));
    let (index, disk) = sd.device("disk").unwrap();
    assert_eq!((index, disk.owners.as_slice()), (1, &[0, 1][..]));
    assert!(sd.device("nothing").is_none());
    let kinds: Vec<_> = sd.policies.iter().map(|p| p.rule.kind()).collect();
    assert_eq!(kinds, ["no-flow", "mediated", "isolated"]);
}

#[test]
fn storage_declarations_parse_to_disks_and_block_clients() {
    let file = "tests/fixtures/storage.xml";
    let xml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let sd = sdf::parse(file, &xml).unwrap_or_else(|e| panic!("{e:#?}"));
    let param = |key: &str, value: &str, line| Param { key: key.into(), value: value.into(), pos: pos(line, 13) };
    let filters = vec![
        Filter {
            name: "audit0".into(),
            program: "filter_passthrough".into(),
            data: DataAccess::None,
            priority: None,
            budget: None,
            on_fault: OnFault::Fail,
            params: vec![],
            links: vec![],
            pos: pos(6, 9),
        },
        Filter {
            name: "ro0".into(),
            program: "filter_readonly".into(),
            data: DataAccess::Read,
            priority: Some(249),
            budget: Some(20_000),
            on_fault: OnFault::Restart,
            params: vec![param("rule", "fail write 0..100", 8), param("note", "", 9)],
            links: vec![],
            pos: pos(7, 9),
        },
        Filter {
            name: "crypt0".into(),
            program: "build/crypt.elf".into(),
            data: DataAccess::ReadWrite,
            priority: Some(241),
            budget: None,
            on_fault: OnFault::Fail,
            params: vec![],
            links: vec![],
            pos: pos(11, 9),
        },
    ];
    assert_eq!(
        sd.disks,
        [
            Disk { name: "disk0".into(), virtio_slot: 31, filters, pos: pos(4, 5) },
            Disk { name: "disk1".into(), virtio_slot: 0, filters: vec![], pos: pos(26, 5) },
        ]
    );
    let priorities: Vec<_> = sd.filters().map(|(d, f)| (d.name.as_str(), f.effective_priority())).collect();
    assert_eq!(priorities, [("disk0", 245), ("disk0", 249), ("disk0", 241)]);
    let clients: Vec<_> = sd.protection_domains.iter().map(|pd| pd.block_client.clone()).collect();
    assert_eq!(
        clients,
        [
            Some(BlockClient {
                disk: 0,
                at: None,
                partition: None,
                data_size: 0x10_0000,
                queue_capacity: 32,
                direct: false,
                read_only: false,
                pos: pos(16, 9),
            }),
            Some(BlockClient {
                disk: 0,
                at: None,
                partition: Some(4),
                data_size: 0x20_0000,
                queue_capacity: 64,
                direct: false,
                read_only: false,
                pos: pos(20, 9),
            }),
            Some(BlockClient {
                disk: 1,
                at: None,
                partition: None,
                data_size: 0x10_0000,
                queue_capacity: 1,
                direct: true,
                read_only: false,
                pos: pos(24, 9),
            }),
        ]
    );
    assert_eq!(
        sd.protection_domains[0].setvars,
        [SetVar {
            symbol: "greeting".into(),
            value: SetVarValue::Bytes(b"Hi!\0".to_vec()),
            pos: pos(15, 9)
        }]
    );
    assert_eq!(sd.disk("disk1").map(|(i, _)| i), Some(1));
    let written = sdf::to_xml(&sd);
    assert!(written.contains(r#"<param key="note" value="" />"#), "{written}");
    let again = sdf::parse(file, &written).unwrap_or_else(|e| panic!("{e:#?}\n{written}"));
    assert_eq!(again.without_positions(), sd.without_positions());
    assert_eq!(sdf::to_xml(&again), written, "deterministic");
}

const CHAIN_FILE: &str = "tests/fixtures/chain.xml";

fn chain_fixture() -> SystemDescription {
    let xml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CHAIN_FILE)).unwrap();
    sdf::parse(CHAIN_FILE, &xml).unwrap_or_else(|e| panic!("{e:#?}"))
}

#[test]
fn lends_call_budgets_and_chains_parse_to_what_the_file_says() {
    let sd = chain_fixture();
    let (verify0, server, audit0, ro0) = (0, 1, 2, 3);
    let budgets: Vec<_> = sd.protection_domains.iter().map(|pd| pd.call_budget).collect();
    assert_eq!(budgets, [None, None, Some(20_000), Some(10_000_000), None]);

    let region = |mr: &str, line, col| StageRegion { mr: mr.into(), pos: pos(line, col) };
    let channel = |id, line, col| StageChannel { id, pos: pos(line, col) };
    let empty = |line| Stage { regions: vec![], channels: vec![], pos: pos(line, 13) };
    let disk0 = Chain {
        name: "disk0".into(),
        stages: vec![
            Stage {
                regions: vec![region("blk_verify0_queue", 19, 21), region("blk_verify0_data", 19, 74)],
                channels: vec![channel(0, 19, 55)],
                pos: pos(19, 13),
            },
            empty(21),
            Stage {
                regions: vec![region("blk_disk0_driver_queue", 23, 21), region("blk_disk0_probe", 23, 60)],
                channels: vec![channel(40, 23, 92)],
                pos: pos(23, 13),
            },
        ],
        vias: vec![
            Via { pd: audit0, channel: 20, mr: Some("blk_audit0_calls".into()), pos: pos(20, 13) },
            Via { pd: ro0, channel: 21, mr: Some("blk_ro0_calls".into()), pos: pos(22, 13) },
        ],
        links: vec![],
        pos: pos(18, 9),
    };
    let direct = Chain {
        name: "direct".into(),
        stages: vec![empty(26), empty(28)],
        vias: vec![Via { pd: ro0, channel: 21, mr: None, pos: pos(27, 13) }],
        links: vec![],
        pos: pos(25, 9),
    };
    assert_eq!(sd.protection_domains[server].chains, [disk0, direct]);
    assert!(sd.protection_domains.iter().enumerate().all(|(i, pd)| i == server || pd.chains.is_empty()));

    let lend = |mr: &str, perms, line| Lend { mr: mr.into(), perms, pos: pos(line, 9) };
    let lends: Vec<_> = sd.channels.iter().map(|ch| ch.lends.clone()).collect();
    assert_eq!(
        lends,
        [
            vec![],
            vec![lend("blk_verify0_data", Perms::READ, 48), lend("blk_crypt0_bounce", Perms::READ_WRITE, 49)],
            vec![lend("blk_verify0_data", Perms::READ_WRITE, 53)],
            vec![],
        ]
    );
    let ends: Vec<_> = sd.channels.iter().map(|ch| ch.ends.clone().map(|e| (e.pd, e.id, e.pp))).collect();
    assert_eq!(
        ends,
        [
            [(verify0, 0, false), (server, 0, false)],
            [(server, 20, true), (audit0, 0, false)],
            [(ro0, 0, false), (server, 21, true)],
            [(server, 40, false), (4, 10, false)],
        ]
    );
}

#[test]
fn lends_call_budgets_and_chains_are_written_and_read_back() {
    let sd = chain_fixture();
    let written = sdf::to_xml(&sd);
    for line in [
        r#"<protection_domain name="audit0" priority="245" passive="true" call_budget="20000">"#,
        r#"<lend mr="blk_crypt0_bounce" perms="rw" />"#,
        r#"<via pd="audit0" channel="20" mr="blk_audit0_calls" />"#,
        r#"<via pd="ro0" channel="21" />"#,
    ] {
        assert!(written.contains(line), "{line}\n{written}");
    }
    let again = sdf::parse(CHAIN_FILE, &written).unwrap_or_else(|e| panic!("{e:#?}\n{written}"));
    assert_eq!(again.without_positions(), sd.without_positions(), "{written}");
    assert_eq!(sdf::to_xml(&again), written, "deterministic");
}

#[test]
fn without_positions_clears_the_positions_of_filters_lends_and_chains() {
    let file = "tests/fixtures/storage.xml";
    let xml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let zero = Pos::default();
    let storage = sdf::parse(file, &xml).unwrap().without_positions();
    for (_, filter) in storage.filters() {
        assert_eq!(filter.pos, zero);
        assert!(filter.params.iter().all(|p| p.pos == zero));
    }
    let sd = chain_fixture().without_positions();
    assert!(sd.channels.iter().flat_map(|ch| &ch.lends).all(|l| l.pos == zero));
    for chain in sd.protection_domains.iter().flat_map(|pd| &pd.chains) {
        assert_eq!(chain.pos, zero);
        assert!(chain.vias.iter().all(|v| v.pos == zero));
        for stage in &chain.stages {
            assert_eq!(stage.pos, zero);
            assert!(stage.regions.iter().all(|r| r.pos == zero));
            assert!(stage.channels.iter().all(|c| c.pos == zero));
        }
    }
}

#[test]
fn a_block_client_attaches_at_a_filter_of_its_disk_by_its_position_in_the_chain() {
    let xml = r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="cache0" program="filter_passthrough" data="none" />
        <filter name="crypt0" program="filter_passthrough" data="read-write" />
    </disk>
    <protection_domain name="app"><program_image path="app.elf" /><block_client disk="disk0" /></protection_domain>
    <protection_domain name="top"><program_image path="app.elf" /><block_client disk="disk0" at="cache0" /></protection_domain>
    <protection_domain name="backup"><program_image path="app.elf" /><block_client disk="disk0" at="crypt0" read_only="true" /></protection_domain>
</system>"#;
    let sd = sdf::parse("at.xml", xml).unwrap_or_else(|e| panic!("{}", e[0]));
    let at: Vec<_> =
        sd.block_clients().map(|(_, pd, c)| (pd.name.as_str(), c.at, c.entry(), c.read_only)).collect();
    assert_eq!(at, [("app", None, 0, false), ("top", Some(0), 0, false), ("backup", Some(1), 1, true)]);
    // Written back by name, and read back to the same model.
    let written = sdf::to_xml(&sd);
    assert!(written.contains(r#"<block_client disk="disk0" at="crypt0" read_only="true" />"#), "{written}");
    let again = sdf::parse("at.xml", &written).unwrap_or_else(|e| panic!("{}\n{written}", e[0]));
    assert_eq!(again.without_positions(), sd.without_positions());
}
