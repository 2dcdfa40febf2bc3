//! The verifier's behaviour on small systems, one property per test.

use proptest::prelude::*;
use sdf::{Endpoint, Entity, Policy, PolicyRule, Pos};
use verify::{analyse, Check, Node, ProgramExtent};

fn pd(name: &str, priority: u8, body: &str) -> String {
    format!(
        "<protection_domain name=\"{name}\" priority=\"{priority}\"><program_image path=\"x\"/>{body}</protection_domain>\n"
    )
}

fn ppc(caller: &str, callee: &str, id: u8) -> String {
    format!(
        "<channel><end pd=\"{caller}\" id=\"{id}\" pp=\"true\" notify=\"false\"/><end pd=\"{callee}\" id=\"{id}\" notify=\"false\"/></channel>\n"
    )
}

fn read(body: &str) -> sdf::SystemDescription {
    let xml = format!("<system>\n{body}</system>");
    sdf::read("t.xml", &xml).unwrap_or_else(|e| panic!("{}", e[0]))
}

fn lines_of(body: &str, check: Check) -> Vec<String> {
    let analysis = analyse(&read(body), None);
    analysis.violations().iter().filter(|v| v.check == check).map(|v| v.to_string()).collect()
}

#[test]
fn a_ppc_chain_witness_starts_at_a_pd_nobody_calls() {
    let body = pd("a", 1, "")
        + &pd("b", 5, "")
        + &pd("c", 9, "")
        + &pd("d", 3, "")
        + &ppc("a", "b", 0)
        + &ppc("b", "c", 1)
        + &ppc("c", "d", 2);
    let found = lines_of(&body, Check::PpcPriority);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].ends_with(
            "a (priority 1) -> [calls (channel at t.xml:6:1)] -> b (priority 5) -> [calls \
             (channel at t.xml:7:1)] -> c (priority 9) -> [calls (channel at t.xml:8:1)] -> d \
             (priority 3)"
        ),
        "{}",
        found[0]
    );
}

#[test]
fn equal_priorities_break_the_chain_too() {
    let body = pd("a", 4, "") + &pd("b", 4, "") + &ppc("a", "b", 0);
    assert_eq!(
        lines_of(&body, Check::PpcPriority),
        ["ppc-priority: priorities must rise strictly along a chain of calls, but 'a' (priority \
          4) calls 'b' (priority 4): a (priority 4) -> [calls (channel at t.xml:4:1)] -> b \
          (priority 4)"]
    );
}

#[test]
fn each_ppc_cycle_is_reported_once_with_its_shortest_circle() {
    // a -> b -> c -> a with a chord b -> a, and a separate d <-> e.
    let body = pd("a", 1, "")
        + &pd("b", 2, "")
        + &pd("c", 3, "")
        + &pd("d", 4, "")
        + &pd("e", 5, "")
        + &ppc("a", "b", 0)
        + &ppc("b", "c", 1)
        + &ppc("c", "a", 2)
        + &ppc("b", "a", 3)
        + &ppc("d", "e", 0)
        + &ppc("e", "d", 1);
    let found = lines_of(&body, Check::PpcCycle);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with(
        "ppc-cycle: protected procedure calls go round in a circle through 'a', 'b': "
    ));
    assert!(found[1].starts_with(
        "ppc-cycle: protected procedure calls go round in a circle through 'd', 'e': "
    ));
}

#[test]
fn pp_on_both_ends_is_a_cycle_of_two() {
    let body = pd("a", 1, "")
        + &pd("b", 2, "")
        + "<channel><end pd=\"a\" id=\"0\" pp=\"true\"/><end pd=\"b\" id=\"0\" pp=\"true\"/></channel>\n";
    assert_eq!(lines_of(&body, Check::PpcCycle).len(), 1);
    assert_eq!(lines_of(&body, Check::PpcPriority).len(), 1, "b calling a goes down");
}

#[test]
fn a_pd_calling_itself_is_a_cycle_of_one() {
    let body = pd("a", 1, "")
        + "<channel><end pd=\"a\" id=\"0\" pp=\"true\"/><end pd=\"a\" id=\"1\"/></channel>\n";
    assert_eq!(
        lines_of(&body, Check::PpcCycle),
        ["ppc-cycle: protected procedure calls go round in a circle through 'a': a (priority 1) \
          -> [calls (channel at t.xml:3:1)] -> a (priority 1)"]
    );
}

const PIPELINE: &str = r#"<memory_region name="in" size="0x1000"/>
<memory_region name="mid" size="0x1000"/>
<memory_region name="out" size="0x1000"/>
"#;

/// src writes `in`; m1 and m2 both read `in` and write `mid`; sink reads
/// `mid` and writes `out`.
fn pipeline(policy: &str) -> String {
    let maps = |first: &str, second: Option<&str>| {
        let map = |mr_perms: &str, vaddr: &str| {
            let (mr, perms) = mr_perms.split_once(':').unwrap();
            format!("<map mr=\"{mr}\" vaddr=\"{vaddr}\" perms=\"{perms}\"/>")
        };
        map(first, "0x1000000") + &second.map_or(String::new(), |s| map(s, "0x2000000"))
    };
    PIPELINE.to_string()
        + &pd("src", 1, &maps("in:rw", None))
        + &pd("m1", 2, &maps("in:r", Some("mid:rw")))
        + &pd("m2", 2, &maps("in:r", Some("mid:rw")))
        + &pd("sink", 3, &maps("mid:r", Some("out:rw")))
        + policy
}

#[test]
fn a_flow_is_mediated_if_every_path_passes_one_of_the_mediators() {
    let both = "<policy name=\"p\" kind=\"mediated\" via=\"m1 m2\"><from pd=\"src\"/><to region=\"out\"/></policy>\n";
    assert!(analyse(&read(&pipeline(both)), None).ok());
    let one = both.replace("m1 m2", "m1");
    let found = lines_of(&pipeline(&one), Check::Policy(0));
    assert_eq!(
        found,
        ["policy 'p' (mediated via 'm1') violated: src -> [writes (map at t.xml:5:69)] -> region \
          'in' -> [is read by (map at t.xml:7:68)] -> m2 -> [writes (map at t.xml:7:110)] -> \
          region 'mid' -> [is read by (map at t.xml:8:70)] -> sink -> [writes (map at \
          t.xml:8:113)] -> region 'out'"]
    );
}

#[test]
fn no_flow_holds_against_the_direction_of_the_data() {
    let policy = "<policy name=\"p\" kind=\"no-flow\"><from region=\"out\"/><from pd=\"sink\"/><to pd=\"src\"/></policy>\n";
    assert!(analyse(&read(&pipeline(policy)), None).ok());
}

#[test]
fn isolation_allows_read_only_sharing() {
    let map = |perms: &str| format!("<map mr=\"m\" vaddr=\"0x1000000\" perms=\"{perms}\"/>");
    let policy = "<policy name=\"p\" kind=\"isolated\" pd=\"a\"/>\n";
    let body = "<memory_region name=\"m\" size=\"0x1000\"/>\n".to_string()
        + &pd("a", 1, &map("r"))
        + &pd("b", 1, &map("r"))
        + policy;
    assert!(analyse(&read(&body), None).ok());
    let written =
        body.replacen("perms=\"r\"", "perms=\"rw\"", 2).replacen("perms=\"rw\"", "perms=\"r\"", 1);
    assert_eq!(
        lines_of(&written, Check::Policy(0)),
        ["policy 'p' (isolated) violated: 'a' shares writable memory with 'b': b -> [writes (map \
          at t.xml:4:67)] -> region 'm' -> [is read by (map at t.xml:3:67)] -> a"]
    );
}

#[test]
fn isolation_covers_every_kind_of_channel_and_the_children() {
    let body = pd("a", 1, &pd("kid", 0, "").replace("priority=\"0\"", "priority=\"0\" id=\"0\""))
        + &pd("b", 2, "")
        + "<channel><end pd=\"a\" id=\"1\" notify=\"false\"/><end pd=\"b\" id=\"1\" notify=\"false\"/></channel>\n"
        + "<policy name=\"p\" kind=\"isolated\" pd=\"a\"/>\n";
    let found = lines_of(&body, Check::Policy(0));
    assert_eq!(
        found,
        [
            "policy 'p' (isolated) violated: 'a' shares a channel with 'b': a -> [has a channel to \
             (channel at t.xml:5:1)] -> b",
            "policy 'p' (isolated) violated: 'a' is the parent of 'kid': a -> [controls \
             (protection_domain at t.xml:2:67)] -> kid",
        ]
    );
}

#[test]
fn program_images_are_checked_only_with_extents() {
    let body = "<memory_region name=\"m\" size=\"0x1000\"/>\n".to_string()
        + &pd("a", 1, "<map mr=\"m\" vaddr=\"0x200000\"/>");
    let sd = read(&body);
    assert!(analyse(&sd, None).ok());
    let programs = vec![vec![ProgramExtent { vaddr: 0x20_0000, size: 0x3000 }]];
    let found: Vec<String> =
        analyse(&sd, Some(&programs)).violations().iter().map(|v| v.to_string()).collect();
    assert_eq!(
        found,
        ["map-over-fixed-area: 'a' maps memory region 'm' at [0x200000..0x201000) over its \
          program image at [0x200000..0x203000): a -> [maps rw (map at t.xml:3:67)] -> region 'm'"]
    );
}

#[test]
fn an_extent_that_wraps_reaches_the_top_of_the_address_space() {
    let body = "<memory_region name=\"m\" size=\"0x1000\"/>\n".to_string()
        + &pd("a", 1, "<map mr=\"m\" vaddr=\"0x7fff_ffff_f000\"/>");
    let programs = vec![vec![ProgramExtent { vaddr: 0x1000, size: u64::MAX }]];
    let analysis = analyse(&read(&body), Some(&programs));
    assert_eq!(analysis.violations().len(), 1);
    assert_eq!(analysis.violations()[0].check, Check::MapOverFixedArea);
}

#[test]
fn a_system_that_breaks_validation_rules_is_still_analysed() {
    // Duplicate names, overlapping maps and a region claimed twice: all
    // rejected by sdf::parse, all fine for the verifier.
    let body = "<memory_region name=\"m\" size=\"0x1000\" phys_addr=\"0x9000000\"/>\n\
                <memory_region name=\"m\" size=\"0x1000\"/>\n"
        .to_string()
        + &pd("a", 1, "<map mr=\"m\" vaddr=\"0x1000000\"/><map mr=\"m\" vaddr=\"0x1000000\"/>")
        + &pd("a", 1, "<map mr=\"m\" vaddr=\"0x1000000\" perms=\"r\"/>")
        + "<device name=\"d\" owner=\"a\"><region mr=\"m\"/><region mr=\"m\"/></device>\n"
        + "<device name=\"d\" owner=\"a\"><region mr=\"m\"/></device>\n";
    assert!(sdf::parse("t.xml", &format!("<system>\n{body}</system>")).is_err());
    let analysis = analyse(&read(&body), None);
    // The first 'm' (device memory) is claimed by the first 'd', owned by
    // the first 'a'; the second 'a' maps it without owning it.
    let lines: Vec<String> = analysis.violations().iter().map(|v| v.to_string()).collect();
    assert_eq!(
        lines,
        ["device-memory-owner: 'a' maps memory region 'm' of device 'd', which only 'a' may use: \
          a -> [maps r (map at t.xml:5:67)] -> region 'm'"]
    );
}

/// A plain Microkit system: a UART driver maps the UART's registers
/// (outside RAM) uncached and binds its interrupt; a client calls it. No
/// `<device>` anywhere.
const MICROKIT_UART: &str = r#"<memory_region name="uart" size="0x1000" phys_addr="0x9000000"/>
<memory_region name="tx" size="0x1000"/>
<protection_domain name="uart_driver" priority="200" passive="true"><program_image path="uart.elf"/>
    <map mr="uart" vaddr="0x2000000" perms="rw" cached="false" setvar_vaddr="uart_base"/>
    <map mr="tx" vaddr="0x3000000" perms="r"/>
    <irq irq="33" id="1"/>
</protection_domain>
<protection_domain name="client" priority="100"><program_image path="client.elf"/>
    <map mr="tx" vaddr="0x3000000" perms="rw"/>
</protection_domain>
<channel><end pd="client" id="0" pp="true"/><end pd="uart_driver" id="0"/></channel>
"#;

#[test]
fn a_microkit_driver_owns_the_device_memory_and_irq_it_alone_uses() {
    assert!(sdf::parse("t.xml", &format!("<system>\n{MICROKIT_UART}</system>")).is_ok());
    let analysis = analyse(&read(MICROKIT_UART), None);
    assert!(analysis.ok(), "{:#?}", analysis.violations());
    assert!(analysis.report().contains("  unowned-hardware     ok\n"), "{}", analysis.report());
}

#[test]
fn device_memory_a_second_pd_maps_without_a_device_is_still_unowned() {
    let body = MICROKIT_UART.replace(
        "<map mr=\"tx\" vaddr=\"0x3000000\" perms=\"rw\"/>",
        "<map mr=\"tx\" vaddr=\"0x3000000\" perms=\"rw\"/><map mr=\"uart\" vaddr=\"0x4000000\" perms=\"r\" cached=\"false\"/>",
    );
    assert_eq!(
        lines_of(&body, Check::UnownedHardware),
        ["unowned-hardware: memory region 'uart' at physical [0x9000000..0x9001000) lies outside \
          RAM and more than one PD uses it ('uart_driver', 'client') with no device claiming it: \
          declare a <device> that claims it and names its owners (memory_region at t.xml:2:1): \
          uart_driver -> [maps rw uncached (map at t.xml:5:5)] -> region 'uart'; client -> [maps \
          r uncached (map at t.xml:10:48)] -> region 'uart'"]
    );
    assert_eq!(analyse(&read(&body), None).violations().len(), 1);
    // A <device> naming both as owners shares it.
    let shared = body + "<device name=\"uart\" owner=\"uart_driver client\"><region mr=\"uart\"/></device>\n";
    assert!(analyse(&read(&shared), None).ok());
}

#[test]
fn an_irq_bound_by_two_pds_without_a_device_is_unowned() {
    // Validation refuses this system (an interrupt goes to one PD); the
    // verifier, given it anyway, names both.
    let body = MICROKIT_UART.replace(
        "<map mr=\"tx\" vaddr=\"0x3000000\" perms=\"rw\"/>",
        "<map mr=\"tx\" vaddr=\"0x3000000\" perms=\"rw\"/><irq irq=\"33\" id=\"5\"/>",
    );
    assert_eq!(
        lines_of(&body, Check::UnownedHardware),
        ["unowned-hardware: irq 33 is delivered to more than one PD ('uart_driver', 'client') \
          with no device claiming it: declare a <device> that claims it and names its owners: irq \
          33 -> [is delivered to (irq at t.xml:7:5)] -> uart_driver; irq 33 -> [is delivered to \
          (irq at t.xml:10:48)] -> client"]
    );
}

#[test]
fn device_memory_nobody_uses_needs_no_device() {
    let body = "<memory_region name=\"gpio\" size=\"0x1000\" phys_addr=\"0x9030000\"/>\n".to_string()
        + &pd("a", 1, "");
    assert!(analyse(&read(&body), None).ok());
}

fn hand_built_policy(rule: PolicyRule) -> sdf::SystemDescription {
    let mut sd = read(&(pd("a", 1, "") + &pd("b", 2, "")));
    sd.policies.push(Policy { name: "p".into(), rule, pos: Pos { line: 9, col: 1 } });
    sd
}

fn end(entity: Entity) -> Endpoint {
    Endpoint { entity, pos: Pos::default() }
}

#[test]
fn a_source_that_is_also_a_target_violates_no_flow_without_a_witness() {
    let rule = PolicyRule::NoFlow { from: vec![end(Entity::Pd(0))], to: vec![end(Entity::Pd(0))] };
    let analysis = analyse(&hand_built_policy(rule), None);
    let v = &analysis.violations()[0];
    assert_eq!(v.to_string(), "policy 'p' (no-flow) violated: a is both a source and a target");
    assert!(v.witness.is_empty());
}

#[test]
fn mediators_named_as_sources_or_targets_drop_out() {
    let rule = PolicyRule::Mediated {
        from: vec![end(Entity::Pd(0))],
        to: vec![end(Entity::Pd(0))],
        via: vec![0],
    };
    assert!(analyse(&hand_built_policy(rule), None).ok());
}

#[test]
fn names_that_do_not_resolve_in_a_hand_built_model_are_ignored() {
    let rule = PolicyRule::NoFlow {
        from: vec![end(Entity::Pd(99)), end(Entity::Region("nothing".into()))],
        to: vec![end(Entity::Device("nowhere".into()))],
    };
    let sd = hand_built_policy(rule);
    assert!(analyse(&sd, None).ok());
    let _ = verify::dot(&sd);
}

#[test]
fn witness_hops_name_nodes_and_positions() {
    let body = pd("a", 1, "")
        + &pd("b", 2, "")
        + &ppc("a", "b", 0)
        + "<policy name=\"p\" kind=\"no-flow\"><from pd=\"b\"/><to pd=\"a\"/></policy>\n";
    let analysis = analyse(&read(&body), None);
    let hop = &analysis.violations()[0].witness[0];
    assert_eq!((hop.from, hop.to), (Node::Pd(1), Node::Pd(0)));
    assert_eq!((hop.action.as_str(), hop.element), ("replies to", "channel"));
    assert_eq!(hop.pos, Pos { line: 4, col: 1 });
}

const SAMPLE: &str = include_str!("systems/mediated_violated.xml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Damaged system files: whatever still reads is analysed and drawn
    /// without a panic.
    #[test]
    fn damaged_systems_that_still_read_never_panic(
        edits in proptest::collection::vec((any::<usize>(), "[a-z0-9\"=<>/ ]{0,6}"), 1..6),
    ) {
        let mut xml = SAMPLE.to_string();
        for (at, text) in &edits {
            let mut at = at % (xml.len() + 1);
            while !xml.is_char_boundary(at) {
                at -= 1;
            }
            let end = (at + text.len()).min(xml.len());
            let end = (end..=xml.len()).find(|&e| xml.is_char_boundary(e)).unwrap_or(xml.len());
            xml.replace_range(at..end, text);
        }
        if let Ok(sd) = sdf::read("damaged.xml", &xml) {
            let analysis = analyse(&sd, None);
            prop_assert!(analysis.report().ends_with('\n'));
            let picture = verify::dot(&sd);
            prop_assert!(picture.ends_with("}\n"), "{}", picture);
        }
    }
}
