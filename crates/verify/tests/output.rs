//! The report and the DOT picture of a small system, as exact text.

const SMALL: &str = r#"<system>
    <memory_region name="request" size="0x1000" />
    <memory_region name="uart_regs" size="0x1000" phys_addr="0x900_0000" />

    <protection_domain name="client" priority="10">
        <program_image path="client.elf" />
        <map mr="request" vaddr="0x400_0000" perms="rw" />
    </protection_domain>
    <protection_domain name="server" priority="20" passive="true">
        <program_image path="server.elf" />
        <map mr="request" vaddr="0x400_0000" perms="r" />
        <map mr="uart_regs" vaddr="0x500_0000" perms="rw" cached="false" />
        <irq irq="33" id="1" />
        <protection_domain name="helper" priority="5" id="0">
            <program_image path="helper.elf" />
        </protection_domain>
    </protection_domain>
    <channel>
        <end pd="client" id="0" pp="true" notify="false" />
        <end pd="server" id="0" />
    </channel>

    <device name="uart" owner="server">
        <region mr="uart_regs" />
        <interrupt irq="33" />
    </device>

    <policy name="client-never-sees-the-uart" kind="no-flow">
        <from pd="client" />
        <to device="uart" />
    </policy>
    <policy name="helper-alone" kind="isolated" pd="helper">
        <allow pd="server" />
    </policy>
</system>
"#;

fn small() -> sdf::SystemDescription {
    sdf::read("small.xml", SMALL).unwrap()
}

const REPORT: &str = r#"system small.xml
3 protection domains, 2 memory regions, 1 channel, 1 device, 2 policies

protection domain 'client' (priority 10)
  reads     region 'request' [0x4000000..0x4001000) (map at small.xml:7:9)
  writes    region 'request' [0x4000000..0x4001000) (map at small.xml:7:9)
  executes  -
  signals   -
  calls     server (channel at small.xml:18:5)
  irqs      -
  devices   -
  parent    -
  children  -

protection domain 'server' (priority 20, passive)
  reads     region 'request' [0x4000000..0x4001000) (map at small.xml:11:9)
            region 'uart_regs' of device 'uart' [0x5000000..0x5001000) uncached (map at small.xml:12:9)
  writes    region 'uart_regs' of device 'uart' [0x5000000..0x5001000) uncached (map at small.xml:12:9)
  executes  -
  signals   client (channel at small.xml:18:5)
  calls     -
  irqs      irq 33 on channel 1, device 'uart' (irq at small.xml:13:9)
  devices   device 'uart' (device at small.xml:23:5)
  parent    -
  children  helper as child 0 (protection_domain at small.xml:14:9)

protection domain 'helper' (priority 5)
  reads     -
  writes    -
  executes  -
  signals   -
  calls     -
  irqs      -
  devices   -
  parent    server (protection_domain at small.xml:14:9)
  children  -

invariants
  device-memory-owner  ok
  irq-owner            ok
  unowned-hardware     ok
  writable-executable  ok
  map-over-fixed-area  ok (program images not checked: no program extents given)
  ppc-priority         ok
  ppc-cycle            ok

policies
  policy 'client-never-sees-the-uart' (no-flow): violated
    policy 'client-never-sees-the-uart' (no-flow) violated: client -> [calls (channel at small.xml:18:5)] -> server -> [writes (map at small.xml:12:9)] -> region 'uart_regs' -> [is read by (region at small.xml:24:9)] -> device 'uart'
  policy 'helper-alone' (isolated): holds

result: 1 violation
"#;

const DOT: &str = r#"digraph system {
  label="small.xml";
  rankdir=LR;
  node [fontname="Helvetica", fontsize=11];
  edge [fontname="Helvetica", fontsize=9];
  pd0 [shape=box, label="client\npriority 10"];
  pd1 [shape=box, style=rounded, label="server\npriority 20\npassive"];
  pd2 [shape=box, label="helper\npriority 5"];
  mr0 [shape=ellipse, label="request\n0x1000 bytes"];
  mr1 [shape=note, label="uart_regs\n0x1000 bytes at 0x9000000"];
  dev0 [shape=component, label="uart"];
  irq33 [shape=diamond, label="irq 33"];
  pd0 -> mr0 [label="rw"];
  pd1 -> mr0 [label="r"];
  pd1 -> mr1 [label="rw uncached"];
  pd0 -> pd1 [style=bold, label="PPC"];
  pd1 -> pd0 [style=dashed, label="notify"];
  irq33 -> pd1 [label="channel 1"];
  dev0 -> mr1 [color=gray50, arrowhead=none];
  dev0 -> irq33 [color=gray50, arrowhead=none];
  pd1 -> pd2 [style=dotted, label="child 0"];
}
"#;

#[test]
fn report_of_a_small_system_is_exactly_this() {
    let analysis = verify::analyse(&small(), None);
    let report = analysis.report();
    if report != REPORT {
        // Line by line first, for a readable failure.
        for (got, want) in report.lines().zip(REPORT.lines()) {
            assert_eq!(got, want);
        }
    }
    assert_eq!(report, REPORT);
}

#[test]
fn dot_of_a_small_system_is_exactly_this() {
    let dot = verify::dot(&small());
    for (got, want) in dot.lines().zip(DOT.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(dot, DOT);
}

#[test]
fn report_lists_the_violations_it_counts() {
    let analysis = verify::analyse(&small(), None);
    assert_eq!(analysis.violations().len(), 1);
    assert!(!analysis.ok());
    for v in analysis.violations() {
        assert!(analysis.report().contains(&format!("    {v}\n")), "{v}");
    }
}

#[test]
fn report_says_which_pds_had_no_program_extents() {
    let programs = vec![vec![verify::ProgramExtent { vaddr: 0x20_0000, size: 0x1000 }]];
    let report = verify::analyse(&small(), Some(&programs)).report();
    assert!(
        report.contains(
            "  map-over-fixed-area  ok (program images not checked for 'server', 'helper': no \
             program extents given)\n"
        ),
        "{report}"
    );
    let all = vec![Vec::new(); 3];
    let report = verify::analyse(&small(), Some(&all)).report();
    assert!(report.contains("  map-over-fixed-area  ok\n"), "{report}");
}

#[test]
fn a_system_without_policies_says_so() {
    let xml = "<system><protection_domain name='a'><program_image path='a'/></protection_domain></system>";
    let report = verify::analyse(&sdf::read("t.xml", xml).unwrap(), None).report();
    assert!(report.contains("\npolicies\n  none declared\n\nresult: ok\n"), "{report}");
}
