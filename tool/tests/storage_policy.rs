//! Policies that name what the storage expansion generates (the filter
//! server, the driver's DMA regions, ...): the expansion resolves them to
//! the generated elements, the verifier checks them, and a client that
//! bypasses the server or a flow the storage path carries breaks them with
//! a witness.

use sdf::{Endpoint, Entity, PolicyRule, Pos, SystemDescription};
use tool::storage::{expand, expand_validated};

/// The storage part of the default system: two disks, a client of each
/// through the filter server, both reporting to a monitor that cannot
/// notify them.
const SYSTEM: &str = r#"<system>
    <disk name="disk0" virtio_slot="31" />
    <disk name="disk1" virtio_slot="30" />
    <protection_domain name="verify0" priority="60">
        <program_image path="blk_verify" />
        <block_client disk="disk0" partition="1" queue_capacity="32" />
    </protection_domain>
    <protection_domain name="verify1" priority="60">
        <program_image path="blk_verify" />
        <block_client disk="disk1" queue_capacity="32" />
    </protection_domain>
    <protection_domain name="monitor" priority="1" can_power_off="true">
        <program_image path="monitor" />
    </protection_domain>
    <channel>
        <end pd="verify0" id="0" />
        <end pd="monitor" id="3" notify="false" />
    </channel>
    <channel>
        <end pd="verify1" id="0" />
        <end pd="monitor" id="4" notify="false" />
    </channel>
    <policy name="monitor-alone" kind="isolated" pd="monitor">
        <allow pd="verify0" />
        <allow pd="verify1" />
    </policy>
    <policy name="clients-reach-disks-only-through-the-server" kind="mediated" via="blk_server">
        <from pd="verify0" />
        <from pd="verify1" />
        <to region="blk_disk0_dma" />
        <to region="blk_disk1_dma" />
    </policy>
    <policy name="monitor-never-writes-disks" kind="no-flow">
        <from pd="monitor" />
        <to region="blk_disk0_dma" />
    </policy>
</system>
"#;

const MEDIATED: &str = "clients-reach-disks-only-through-the-server";

fn parse(xml: &str) -> SystemDescription {
    sdf::parse("storage.xml", xml).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn analyse(xml: &str) -> verify::Analysis {
    let sd = expand_validated(&parse(xml)).unwrap_or_else(|e| panic!("{e:#?}"));
    verify::analyse(&sd, None)
}

fn index(sd: &SystemDescription, pd: &str) -> usize {
    sd.pd(pd).unwrap_or_else(|| panic!("no protection domain '{pd}'")).0
}

/// The report line of each policy.
fn policy_lines(report: &str) -> Vec<&str> {
    report.lines().skip_while(|l| *l != "policies").skip(1).take_while(|l| !l.is_empty()).collect()
}

#[test]
fn a_policy_via_the_filter_server_resolves_to_the_generated_elements() {
    let parsed = parse(SYSTEM);
    assert_eq!(parsed.policies.len(), 1, "only 'monitor-alone' names nothing generated");
    assert_eq!(parsed.pending_policies.len(), 2);

    let sd = expand(&parsed).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(sd.pending_policies.is_empty());
    let names: Vec<&str> = sd.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["monitor-alone", MEDIATED, "monitor-never-writes-disks"], "document order");

    let (verify0, verify1) = (index(&sd, "verify0"), index(&sd, "verify1"));
    let blk_server = index(&sd, "blk_server");
    assert_eq!((verify0, verify1, blk_server), (0, 1, 4), "the server comes after the driver");
    let at = |line, col| Pos { line, col };
    assert_eq!(
        sd.policies[1].rule,
        PolicyRule::Mediated {
            from: vec![
                Endpoint { entity: Entity::Pd(verify0), pos: at(28, 9) },
                Endpoint { entity: Entity::Pd(verify1), pos: at(29, 9) },
            ],
            to: vec![
                Endpoint { entity: Entity::Region("blk_disk0_dma".into()), pos: at(30, 9) },
                Endpoint { entity: Entity::Region("blk_disk1_dma".into()), pos: at(31, 9) },
            ],
            via: vec![blk_server],
        }
    );
    for region in ["blk_disk0_dma", "blk_disk1_dma"] {
        assert!(sd.memory_region(region).is_some(), "{region} is generated");
    }
}

#[test]
fn the_verifier_proves_the_clients_reach_the_disks_only_through_the_server() {
    let analysis = analyse(SYSTEM);
    assert!(analysis.ok(), "{}", analysis.report());
    assert_eq!(
        policy_lines(&analysis.report()),
        [
            "  policy 'monitor-alone' (isolated): holds",
            "  policy 'clients-reach-disks-only-through-the-server' (mediated via 'blk_server'): holds",
            "  policy 'monitor-never-writes-disks' (no-flow): holds",
        ]
    );
}

#[test]
fn the_default_system_proves_its_storage_policy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../system.xml");
    let sd = sdf::parse_file(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e:#?}"));
    let sd = expand_validated(&sd).unwrap_or_else(|e| panic!("{e:#?}"));
    let analysis = verify::analyse(&sd, None);
    let line = format!("  policy '{MEDIATED}' (mediated via 'blk_server'): holds");
    assert!(analysis.report().lines().any(|l| l == line), "{}", analysis.report());
}

#[test]
fn client_data_reaches_the_dma_region_through_the_server_and_the_driver() {
    // What a client writes does reach the disk: a no-flow policy fails,
    // with the storage path as its witness.
    let xml = SYSTEM.replace(
        r#"<from pd="monitor" />
        <to region="blk_disk0_dma" />"#,
        r#"<from pd="verify0" />
        <to region="blk_disk0_dma" />"#,
    );
    let analysis = analyse(&xml);
    assert!(!analysis.ok());
    let violations: Vec<String> = analysis.violations().iter().map(ToString::to_string).collect();
    assert_eq!(
        violations,
        ["policy 'monitor-never-writes-disks' (no-flow) violated: verify0 -> [notifies (channel at \
          storage.xml:6:9)] -> blk_server -> [notifies (channel at storage.xml:2:5)] -> blk_driver -> \
          [writes (map at storage.xml:2:5)] -> region 'blk_disk0_dma'"]
    );
    let witness = &analysis.violations()[0].witness;
    let sd = expand(&parse(&xml)).unwrap();
    let blk_server = sdf::storage::SERVER_PD;
    assert!(witness.iter().any(|hop| hop.to == verify::Node::Pd(index(&sd, blk_server))));
}

#[test]
fn a_direct_client_bypasses_the_server_and_breaks_the_mediated_policy() {
    let xml = SYSTEM.replace(
        r#"<block_client disk="disk1" queue_capacity="32" />"#,
        r#"<block_client disk="disk1" direct="true" queue_capacity="32" />"#,
    );
    let analysis = analyse(&xml);
    let violations: Vec<String> = analysis.violations().iter().map(ToString::to_string).collect();
    // The driver maps every disk's DMA region; the witness goes to the
    // nearest one.
    assert_eq!(
        violations,
        ["policy 'clients-reach-disks-only-through-the-server' (mediated via 'blk_server') violated: \
          verify1 -> [notifies (channel at storage.xml:10:9)] -> blk_driver -> [writes (map at \
          storage.xml:2:5)] -> region 'blk_disk0_dma'"]
    );
}

#[test]
fn without_a_server_the_policy_is_refused_at_its_via() {
    let xml = SYSTEM
        .replace(r#"<block_client disk="disk0" partition="1" queue_capacity="32" />"#, r#"<block_client disk="disk0" direct="true" />"#)
        .replace(r#"<block_client disk="disk1" queue_capacity="32" />"#, r#"<block_client disk="disk1" direct="true" />"#);
    let errors: Vec<String> =
        sdf::parse("storage.xml", &xml).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["error: policy 'clients-reach-disks-only-through-the-server' names unknown protection domain \
          'blk_server': the storage expansion generates the filter server 'blk_server' only when some \
          block client is not direct, and every block client is direct at storage.xml:27:80"]
    );
}

#[test]
fn the_expanded_system_writes_its_policies_by_the_generated_names() {
    let sd = expand(&parse(SYSTEM)).unwrap();
    let text = sdf::to_xml(&sd);
    assert!(text.contains(&format!(r#"<policy name="{MEDIATED}" kind="mediated" via="blk_server">"#)), "{text}");
    assert!(text.contains(r#"<to region="blk_disk1_dma" />"#), "{text}");
    let again = sdf::parse("again.xml", &text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
    assert!(again.pending_policies.is_empty(), "an expanded system names only what it declares");
    assert_eq!(again.policies.len(), 3);
    assert_eq!(
        SystemDescription { file: sd.file.clone(), ..again }.without_positions(),
        sd.without_positions()
    );
}

#[test]
fn a_hand_built_pending_policy_naming_nothing_generated_is_refused_by_the_expansion() {
    let mut sd = parse(SYSTEM);
    let pending = &mut sd.pending_policies[0].policy;
    let PolicyRule::Mediated { via, .. } = &mut pending.rule else { panic!("mediated") };
    via[0].name = "blk_filter".into();
    let errors: Vec<String> = expand(&sd).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["error: policy 'clients-reach-disks-only-through-the-server' names unknown protection domain \
          'blk_filter' at storage.xml:27:80"]
    );
}
