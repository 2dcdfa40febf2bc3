//! Policies that name what the storage expansion generates: reading keeps
//! them by name (pending), in their place among the other policies;
//! writing keeps them; resolving them against a system that has the
//! generated elements moves them into `policies`.

use sdf::{
    Allow, Endpoint, Entity, MemoryRegion, PdName, PendingPolicy, Policy, PolicyRule, Pos,
    ProtectionDomain, SystemDescription,
};

const SYSTEM: &str = r#"<system>
    <memory_region name="shared" size="0x1000" />
    <disk name="disk0" virtio_slot="31" />
    <protection_domain name="app">
        <program_image path="app.elf" />
        <map mr="shared" vaddr="0x4000000" />
        <block_client disk="disk0" />
    </protection_domain>
    <protection_domain name="peer">
        <program_image path="peer.elf" />
        <map mr="shared" vaddr="0x4000000" perms="r" />
    </protection_domain>
    <policy name="first" kind="no-flow">
        <from pd="peer" />
        <to pd="app" />
    </policy>
    <policy name="through-the-server" kind="mediated" via="blk_server">
        <from pd="app" />
        <to region="blk_disk0_dma" />
    </policy>
    <policy name="middle" kind="isolated" pd="peer">
        <allow pd="app" />
    </policy>
    <policy name="driver-alone" kind="isolated" pd="blk_driver">
        <allow pd="blk_server" />
    </policy>
    <policy name="registers" kind="no-flow">
        <from pd="peer" />
        <to device="virtio_mmio_a003000" />
    </policy>
</system>
"#;

fn pos(line: u32, col: u32) -> Pos {
    Pos { line, col }
}

fn name(name: &str, line: u32, col: u32) -> PdName {
    PdName { name: name.into(), pos: pos(line, col) }
}

fn parse(xml: &str) -> SystemDescription {
    sdf::parse("t.xml", xml).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn messages(xml: &str) -> Vec<String> {
    sdf::parse("t.xml", xml).err().unwrap_or_default().iter().map(ToString::to_string).collect()
}

#[test]
fn policies_naming_generated_elements_are_kept_by_name_in_their_place() {
    let sd = parse(SYSTEM);
    let names: Vec<&str> = sd.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["first", "middle"]);
    assert_eq!(
        sd.pending_policies,
        [
            PendingPolicy {
                index: 1,
                policy: Policy {
                    name: "through-the-server".into(),
                    rule: PolicyRule::Mediated {
                        from: vec![Endpoint { entity: Entity::Pd(name("app", 18, 15)), pos: pos(18, 9) }],
                        to: vec![Endpoint {
                            entity: Entity::Region("blk_disk0_dma".into()),
                            pos: pos(19, 9),
                        }],
                        via: vec![name("blk_server", 17, 55)],
                    },
                    pos: pos(17, 5),
                },
            },
            PendingPolicy {
                index: 3,
                policy: Policy {
                    name: "driver-alone".into(),
                    rule: PolicyRule::Isolated {
                        pd: name("blk_driver", 24, 49),
                        allow: vec![Allow { pd: name("blk_server", 25, 16), pos: pos(25, 9) }],
                    },
                    pos: pos(24, 5),
                },
            },
            PendingPolicy {
                index: 4,
                policy: Policy {
                    name: "registers".into(),
                    rule: PolicyRule::NoFlow {
                        from: vec![Endpoint { entity: Entity::Pd(name("peer", 28, 15)), pos: pos(28, 9) }],
                        to: vec![Endpoint {
                            entity: Entity::Device("virtio_mmio_a003000".into()),
                            pos: pos(29, 9),
                        }],
                    },
                    pos: pos(27, 5),
                },
            },
        ]
    );
    let all = sd.all_policies();
    let order: Vec<&str> = all.iter().map(|p| p.name()).collect();
    assert_eq!(order, ["first", "through-the-server", "middle", "driver-alone", "registers"]);
}

#[test]
fn a_system_with_pending_policies_is_written_and_read_back_unchanged() {
    let sd = parse(SYSTEM);
    let text = sdf::to_xml(&sd);
    assert!(text.contains(r#"<policy name="through-the-server" kind="mediated" via="blk_server">"#), "{text}");
    let again = sdf::parse("t.xml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
    assert_eq!(again.without_positions(), sd.without_positions(), "{text}");
    assert_eq!(sdf::to_xml(&again), text);
    let at = |name: &str| text.find(&format!("<policy name=\"{name}\"")).unwrap();
    assert!(at("first") < at("through-the-server") && at("through-the-server") < at("middle"));
}

/// `sd` with what the expansion would add for the names its policies use
/// (a stand-in for the tool's expansion, which the tool's tests use).
fn with_generated(mut sd: SystemDescription) -> SystemDescription {
    let template = sd.protection_domains[0].clone();
    for pd in ["blk_driver", "blk_server"] {
        sd.protection_domains.push(ProtectionDomain { name: pd.into(), ..template.clone() });
    }
    for mr in ["virtio_mmio_a003000", "blk_disk0_dma"] {
        sd.memory_regions.push(MemoryRegion {
            name: mr.into(),
            size: 0x1000,
            page_size: 0x1000,
            phys_addr: None,
            pos: Pos::default(),
        });
    }
    let device = sdf::Device {
        name: "virtio_mmio_a003000".into(),
        owners: vec![2],
        regions: vec![],
        irqs: vec![],
        pos: Pos::default(),
    };
    sd.devices.push(device);
    sd
}

#[test]
fn resolving_moves_pending_policies_into_their_places_with_indices() {
    let mut sd = with_generated(parse(SYSTEM));
    sdf::resolve_pending_policies(&mut sd).unwrap();
    assert!(sd.pending_policies.is_empty());
    let names: Vec<&str> = sd.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["first", "through-the-server", "middle", "driver-alone", "registers"]);
    let (app, blk_driver, blk_server) = (0, 2, 3);
    assert_eq!(
        sd.policies[1].rule,
        PolicyRule::Mediated {
            from: vec![Endpoint { entity: Entity::Pd(app), pos: pos(18, 9) }],
            to: vec![Endpoint { entity: Entity::Region("blk_disk0_dma".into()), pos: pos(19, 9) }],
            via: vec![blk_server],
        }
    );
    assert_eq!(
        sd.policies[3].rule,
        PolicyRule::Isolated { pd: blk_driver, allow: vec![Allow { pd: blk_server, pos: pos(25, 9) }] }
    );
    // Written out, the resolved policies name the generated PDs.
    let text = sdf::to_xml(&sd);
    assert!(text.contains(r#"<policy name="driver-alone" kind="isolated" pd="blk_driver">"#), "{text}");
    assert!(text.contains(r#"<allow pd="blk_server" />"#), "{text}");
}

#[test]
fn resolving_reports_every_name_that_was_not_generated_and_changes_nothing() {
    let parsed = parse(SYSTEM);
    // Nothing generated: every generated name is missing.
    let mut sd = parsed.clone();
    let errors = sdf::resolve_pending_policies(&mut sd).unwrap_err();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "error: policy 'through-the-server' names unknown protection domain 'blk_server' at t.xml:17:55",
            "error: policy 'through-the-server' names unknown memory region 'blk_disk0_dma' at t.xml:19:9",
            "error: policy 'driver-alone' names unknown protection domain 'blk_driver' at t.xml:24:49",
            "error: policy 'driver-alone' names unknown protection domain 'blk_server' at t.xml:25:16",
            "error: policy 'registers' names unknown device 'virtio_mmio_a003000' at t.xml:29:9",
        ]
    );
    assert_eq!(sd, parsed, "unchanged on error");
}

#[test]
fn a_system_without_pending_policies_resolves_to_itself() {
    // The declared names win over generated ones; only 'through-the-server'
    // names something generated here.
    let xml = SYSTEM
        .replace(r#"<policy name="driver-alone" kind="isolated" pd="blk_driver">
        <allow pd="blk_server" />
    </policy>"#, "")
        .replace(r#"<to device="virtio_mmio_a003000" />"#, r#"<to region="shared" />"#)
        .replace(r#"via="blk_server""#, r#"via="peer""#);
    let sd = parse(&xml);
    assert_eq!(sd.pending_policies.len(), 1);
    let xml = xml.replace(r#"<to region="blk_disk0_dma" />"#, r#"<to region="shared" />"#);
    let sd = parse(&xml);
    assert!(sd.pending_policies.is_empty());
    let mut resolved = sd.clone();
    sdf::resolve_pending_policies(&mut resolved).unwrap();
    assert_eq!(resolved, sd);
}

#[test]
fn rules_within_a_pending_policy_still_apply() {
    let xml = SYSTEM.replace(
        r#"<from pd="app" />
        <to region="blk_disk0_dma" />"#,
        r#"<from pd="blk_server" />
        <to region="blk_disk0_dma" />"#,
    );
    assert_eq!(
        messages(&xml),
        ["error: policy 'through-the-server' names its mediator 'blk_server' as a source or target: a \
          mediator sits between them at t.xml:18:9"]
    );
    let xml = SYSTEM.replace(r#"<allow pd="blk_server" />"#, r#"<allow pd="blk_driver" />"#);
    assert_eq!(
        messages(&xml),
        ["error: policy 'driver-alone' lists its own protection domain 'blk_driver' in <allow>: list \
          only the others it may share with at t.xml:25:9"]
    );
}

#[test]
fn pending_policy_names_are_unique_with_the_others() {
    let xml = SYSTEM.replace(r#"name="registers""#, r#"name="first""#);
    assert_eq!(messages(&xml), ["error: duplicate policy name 'first' (first declared at line 13) at t.xml:27:5"]);
}

#[test]
fn generated_looking_names_that_are_not_generated_say_why() {
    let no_clients = SYSTEM.replace(r#"<block_client disk="disk0" />"#, "");
    let errors = messages(&no_clients);
    assert!(
        errors.contains(
            &"error: policy 'through-the-server' names unknown protection domain 'blk_server': the \
              storage expansion generates the filter server 'blk_server' only when some block client \
              is not direct, and no protection domain has a <block_client> at t.xml:17:55"
                .to_string()
        ),
        "{errors:#?}"
    );
    // Without disks nothing is generated.
    let no_disks = no_clients.replace(r#"<disk name="disk0" virtio_slot="31" />"#, "");
    let errors = messages(&no_disks);
    assert!(
        errors.contains(
            &"error: policy 'driver-alone' names unknown protection domain 'blk_driver': no <disk> is \
              declared, so the storage expansion generates no protection domain at t.xml:24:49"
                .to_string()
        ),
        "{errors:#?}"
    );
    // A name that does not look generated keeps the plain message.
    let typo = SYSTEM.replace(r#"<from pd="peer" />
        <to pd="app" />"#, r#"<from pd="peer" />
        <to pd="ap" />"#);
    assert_eq!(messages(&typo), ["error: policy 'first' names unknown protection domain 'ap' at t.xml:15:13"]);
}

/// A disk with two filters: a policy may name them (and their regions)
/// before the expansion makes them protection domains.
const FILTERED: &str = r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="audit0" program="filter_passthrough" data="none" />
        <filter name="ro0" program="filter_readonly" data="read" />
    </disk>
    <protection_domain name="app">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
    <policy name="audited" kind="mediated" via="audit0">
        <from pd="app" />
        <to region="blk_disk0_dma" />
    </policy>
    <policy name="filters-apart" kind="no-flow">
        <from pd="ro0" />
        <to pd="audit0" />
        <to region="blk_ro0_bounce" />
    </policy>
    <policy name="ro0-alone" kind="isolated" pd="ro0">
        <allow pd="blk_server" />
    </policy>
</system>
"#;

#[test]
fn policies_may_name_filters_as_mediators_and_members() {
    let sd = parse(FILTERED);
    assert!(sd.policies.is_empty());
    let rules: Vec<_> = sd.pending_policies.iter().map(|p| (p.index, p.policy.rule.clone())).collect();
    assert_eq!(
        rules,
        [
            (
                0,
                PolicyRule::Mediated {
                    from: vec![Endpoint { entity: Entity::Pd(name("app", 11, 15)), pos: pos(11, 9) }],
                    to: vec![Endpoint { entity: Entity::Region("blk_disk0_dma".into()), pos: pos(12, 9) }],
                    via: vec![name("audit0", 10, 44)],
                }
            ),
            (
                1,
                PolicyRule::NoFlow {
                    from: vec![Endpoint { entity: Entity::Pd(name("ro0", 15, 15)), pos: pos(15, 9) }],
                    to: vec![
                        Endpoint { entity: Entity::Pd(name("audit0", 16, 13)), pos: pos(16, 9) },
                        Endpoint { entity: Entity::Region("blk_ro0_bounce".into()), pos: pos(17, 9) },
                    ],
                }
            ),
            (
                2,
                PolicyRule::Isolated {
                    pd: name("ro0", 19, 46),
                    allow: vec![Allow { pd: name("blk_server", 20, 16), pos: pos(20, 9) }],
                }
            ),
        ]
    );
    let text = sdf::to_xml(&sd);
    let again = sdf::parse("t.xml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
    assert_eq!(again.without_positions(), sd.without_positions(), "{text}");

    // Once the expansion has made the filters PDs, the policies resolve to them.
    let mut sd = sd;
    let template = sd.protection_domains[0].clone();
    for pd in ["blk_driver", "blk_server", "audit0", "ro0"] {
        sd.protection_domains.push(ProtectionDomain { name: pd.into(), ..template.clone() });
    }
    for mr in ["blk_disk0_dma", "blk_ro0_bounce"] {
        let region =
            MemoryRegion { name: mr.into(), size: 0x1000, page_size: 0x1000, phys_addr: None, pos: Pos::default() };
        sd.memory_regions.push(region);
    }
    sdf::resolve_pending_policies(&mut sd).unwrap();
    let (app, blk_server, audit0, ro0) = (0, 2, 3, 4);
    let rules: Vec<_> = sd.policies.iter().map(|p| p.rule.clone()).collect();
    assert_eq!(
        rules,
        [
            PolicyRule::Mediated {
                from: vec![Endpoint { entity: Entity::Pd(app), pos: pos(11, 9) }],
                to: vec![Endpoint { entity: Entity::Region("blk_disk0_dma".into()), pos: pos(12, 9) }],
                via: vec![audit0],
            },
            PolicyRule::NoFlow {
                from: vec![Endpoint { entity: Entity::Pd(ro0), pos: pos(15, 9) }],
                to: vec![
                    Endpoint { entity: Entity::Pd(audit0), pos: pos(16, 9) },
                    Endpoint { entity: Entity::Region("blk_ro0_bounce".into()), pos: pos(17, 9) },
                ],
            },
            PolicyRule::Isolated { pd: ro0, allow: vec![Allow { pd: blk_server, pos: pos(20, 9) }] },
        ]
    );
}

#[test]
fn a_filter_without_a_filter_server_is_no_protection_domain_and_the_message_says_why() {
    let xml = FILTERED.replace(r#"<block_client disk="disk0" />"#, "");
    let errors = messages(&xml);
    assert!(
        errors.contains(
            &"error: policy 'audited' names unknown protection domain 'audit0': the filter 'audit0' of disk \
              'disk0' becomes a protection domain only when the storage expansion generates the filter server, \
              and no protection domain has a <block_client> at t.xml:10:44"
                .to_string()
        ),
        "{errors:#?}"
    );
    // Its regions are not generated either.
    assert!(
        errors.iter().any(|e| e.starts_with("error: policy 'filters-apart' names unknown memory region 'blk_ro0_bounce'")),
        "{errors:#?}"
    );
}
