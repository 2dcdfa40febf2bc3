//! The storage expansion of filter chains: each `<filter>` becomes a
//! passive child of the filter server with its call page, its bounce
//! buffer (if its program declares one), a PPC channel from the server that
//! lends it the data it may reach, its record and its entry in the
//! server's; the server gets a `<chain>` per disk with filters. What a
//! filter's program declares (its manifest) is read from the program
//! image: params it does not take are errors at the param.

use blk::config::{FilterConfig, ServerConfig, NO_LEND, NO_LINK};
use sdf::{Perms, SetVarValue, SystemDescription};
use std::path::PathBuf;
use tool::filters::Programs;
use tool::storage::{expand_validated_with, vaddr};
use zerocopy::FromBytes;

const SYSTEM: &str = r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="crypt0" program="filter_bouncer" data="read-write" budget="5000" on_fault="restart">
            <param key="level" value="3" />
        </filter>
        <filter name="audit0" program="filter_plain" data="read" />
    </disk>
    <disk name="disk1" virtio_slot="30" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
    <protection_domain name="other" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk1" />
    </protection_domain>
</system>
"#;

/// A directory of filter programs: ELF files with a manifest section and
/// nothing else the expansion needs.
fn programs(manifests: &[(&str, &str)]) -> Programs {
    // A directory per call: the tests run at once, in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("strata-filters-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, manifest) in manifests {
        std::fs::write(dir.join(name), elf_with_section(".strata_filter", manifest.as_bytes())).unwrap();
    }
    Programs { base: PathBuf::from("."), search_path: vec![dir] }
}

/// A minimal aarch64 ELF with one named section.
fn elf_with_section(name: &str, data: &[u8]) -> Vec<u8> {
    use object::write::{Object, StandardSection};
    let mut obj = Object::new(object::BinaryFormat::Elf, object::Architecture::Aarch64, object::Endianness::Little);
    let _ = StandardSection::Data;
    let section = obj.add_section(Vec::new(), name.as_bytes().to_vec(), object::SectionKind::Metadata);
    obj.append_section_data(section, data, 1);
    obj.write().unwrap()
}

const BOUNCER: &str = "strata-filter 1\0hooks=pre,post\0ops=read,write\0params=level\0bounce=16384\0";
const PLAIN: &str = "strata-filter 1\0hooks=pre\0ops=write,flush\0params=\0bounce=0\0";

/// The tool's warnings for `sd`, each as `line:col: message`.
fn warnings_of(sd: &SystemDescription, programs: &Programs) -> Vec<String> {
    tool::storage::warnings(sd, programs).iter().map(|w| format!("{}:{}: {}", w.line, w.col, w.message)).collect()
}

fn expand(xml: &str, programs: &Programs) -> Result<SystemDescription, Vec<String>> {
    let sd = sdf::parse("f.xml", xml).map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    expand_validated_with(&sd, programs).map_err(|e| e.iter().map(ToString::to_string).collect())
}

fn record<T: FromBytes>(sd: &SystemDescription, pd: &str, symbol: &str) -> T {
    let (_, pd) = sd.pd(pd).unwrap();
    let setvar = pd.setvars.iter().find(|s| s.symbol == symbol).unwrap();
    let SetVarValue::Bytes(bytes) = &setvar.value else { panic!("bytes") };
    T::read_from_bytes(bytes).unwrap()
}

#[test]
fn each_filter_becomes_a_passive_child_of_the_server_with_its_page_buffer_channel_and_lends() {
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN)]);
    let sd = expand(SYSTEM, &p).unwrap();
    let (server, _) = sd.pd("blk_server").unwrap();
    for (i, name, priority, budget) in [(0, "crypt0", 245, 5000), (1, "audit0", 245, 100_000)] {
        let (_, pd) = sd.pd(name).unwrap();
        assert_eq!((pd.parent, pd.child_id, pd.passive, pd.priority, pd.call_budget), (Some(server), Some(i), true, priority, Some(budget)), "{name}");
        let calls = format!("blk_{name}_calls");
        assert_eq!(sd.memory_region(&calls).unwrap().size, 0x1000);
        assert!(pd.maps.iter().any(|m| m.mr == calls && m.vaddr == vaddr::FILTER_CALLS));
        assert!(sd.protection_domains[server].maps.iter().any(|m| m.mr == calls));
    }
    // Only the program that declares a bounce buffer gets one, at a fixed
    // address, mapped in the filter alone.
    let bounce = sd.memory_region("blk_crypt0_bounce").unwrap();
    assert_eq!(bounce.size, 16384);
    assert!(bounce.phys_addr.is_some());
    assert!(sd.memory_region("blk_audit0_bounce").is_none());
    // The server calls each filter; it lends crypt0 the client's data
    // read-write, audit0 the client's data and crypt0's buffer read-only.
    let lends = |filter: &str| {
        let (f, _) = sd.pd(filter).unwrap();
        let ch = sd.channels.iter().find(|c| c.ends.iter().any(|e| e.pd == f)).unwrap();
        let caller = ch.ends.iter().find(|e| e.pp).unwrap();
        assert_eq!(caller.pd, server, "the server calls {filter}");
        ch.lends.iter().map(|l| (l.mr.clone(), l.perms)).collect::<Vec<_>>()
    };
    assert_eq!(lends("crypt0"), [("blk_app_data".to_string(), Perms::READ_WRITE)]);
    assert_eq!(lends("audit0"), [("blk_app_data".to_string(), Perms::READ), ("blk_crypt0_bounce".to_string(), Perms::READ)]);
    // The records.
    let cfg: ServerConfig = record(&sd, "blk_server", "blk_server_config");
    assert_eq!(cfg.filter_count, 2);
    let (c0, c1) = (&cfg.filters[0], &cfg.filters[1]);
    assert_eq!((c0.position, c0.hooks, c0.ops, c0.rights, c0.restart), (0, 3, 0b11, 3, 1));
    assert_eq!((c1.position, c1.hooks, c1.ops, c1.rights, c1.restart), (1, 1, 0b1_0110, 1, 0));
    assert_eq!((c0.bounce.paddr, c0.bounce.size), (bounce.phys_addr.unwrap(), 16384));
    assert_eq!((c1.lend_client[0], c1.lend_bounce[0], c1.lend_client[1]), (0, 1, NO_LEND));
    let f: FilterConfig = record(&sd, "crypt0", "blk_filter_config");
    assert_eq!(f.params().collect::<Vec<_>>(), [("level", "3")]);
    assert_eq!((f.position, f.bounce.vaddr, f.rights), (0, vaddr::FILTER_BOUNCE, 3));
    // The chain the verifier reads: clients, crypt0, its buffer, audit0,
    // the driver.
    let chain = &sd.protection_domains[server].chains[0];
    assert_eq!(chain.name, "disk0");
    assert_eq!(chain.vias.iter().map(|v| sd.protection_domains[v.pd].name.as_str()).collect::<Vec<_>>(), ["crypt0", "audit0"]);
    let regions = |s: usize| chain.stages[s].regions.iter().map(|r| r.mr.as_str()).collect::<Vec<_>>();
    assert_eq!(regions(0), ["blk_app_queue", "blk_app_data"]);
    assert_eq!(regions(1), ["blk_crypt0_bounce"]);
    assert_eq!(regions(2), ["blk_disk0_driver_queue", "blk_disk0_probe"]);
    assert_eq!(sd.protection_domains[server].chains.len(), 1, "disk1 has no chain");
}

#[test]
fn a_filter_without_the_params_or_data_rights_its_program_needs_is_an_error_at_the_filter() {
    const NEEDY: &str = "strata-filter 1\0hooks=pre,post\0ops=read,write\0params=level\0needs=level\0data=read-write\0bounce=16384\0";
    let p = programs(&[("filter_bouncer", NEEDY), ("filter_plain", PLAIN)]);
    assert!(expand(SYSTEM, &p).is_ok(), "the param given, read-write");
    let xml = SYSTEM.replace(r#"<param key="level" value="3" />"#, "").replace(r#"data="read-write" budget"#, r#"data="read" budget"#);
    let errors = expand(&xml, &p).unwrap_err();
    assert_eq!(
        errors,
        [
            r#"error: filter 'crypt0' (program 'filter_bouncer') cannot start without its 'level': add <param key="level" value="..."/> at f.xml:3:9"#,
            r#"error: filter 'crypt0' (program 'filter_bouncer') needs data="read-write" (it has data="read"): declare it so at f.xml:3:9"#,
        ]
    );
}

#[test]
fn a_filter_without_the_links_its_program_works_with_is_an_error_at_the_filter() {
    // A mirror's secondary: one <link>, exactly.
    const LINKED: &str = "strata-filter 1\0hooks=post\0ops=read,write\0params=\0links=1\0bounce=0\0";
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", LINKED)]);
    let errors = expand(SYSTEM, &p).unwrap_err();
    assert_eq!(
        errors,
        [r#"error: filter 'audit0' (program 'filter_plain') needs exactly 1 <link disk="..."/> (it has 0): name the disk it links to at f.xml:6:9"#]
    );
    let one = SYSTEM.replace(r#"<filter name="audit0" program="filter_plain" data="read" />"#, r#"<filter name="audit0" program="filter_plain" data="read"><link disk="disk1" /></filter>"#);
    assert!(expand(&one, &p).is_ok(), "one link");
    let two = one.replace(r#"<link disk="disk1" />"#, r#"<link disk="disk1" /><link disk="disk2" />"#).replace(
        r#"<disk name="disk1" virtio_slot="30" />"#,
        r#"<disk name="disk1" virtio_slot="30" /><disk name="disk2" virtio_slot="29" />"#,
    );
    let errors = expand(&two, &p).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("(it has 2): remove the others at f.xml:6:9"), "{errors:?}");
}

#[test]
fn a_policy_naming_the_bounce_buffer_of_a_filter_without_one_says_so() {
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN)]);
    let policy = r#"<policy name="p" kind="mediated" via="crypt0"><from pd="app" /><to region="blk_audit0_bounce" /></policy>
</system>"#;
    let errors = expand(&SYSTEM.replace("</system>", policy), &p).unwrap_err();
    assert_eq!(
        errors,
        ["error: policy 'p' names unknown memory region 'blk_audit0_bounce': filter 'audit0' has no bounce buffer (its program 'filter_plain' declares none) at f.xml:17:64"]
    );
    // crypt0's program declares one.
    let policy = policy.replace("blk_audit0_bounce", "blk_crypt0_bounce");
    assert!(expand(&SYSTEM.replace("</system>", &policy), &p).is_ok());
}

#[test]
fn a_param_value_the_repositorys_filters_cannot_take_is_an_error_at_the_param() {
    // Checked with the filters' own parsers, by program name.
    let p = programs(&[
        ("filter_readonly", "strata-filter 1\0hooks=pre\0ops=write\0params=blocks\0bounce=0\0"),
        ("filter_cache", "strata-filter 1\0hooks=pre,post\0ops=read,write\0params=blocks,size\0data=read-write\0bounce=0\0"),
    ]);
    let xml = |ro: &str, cache: &str| {
        format!(
            r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="ro0" program="filter_readonly" data="none"><param key="blocks" value="{ro}" /></filter>
        <filter name="cache0" program="filter_cache" data="read-write"><param key="size" value="{cache}" /></filter>
    </disk>
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#
        )
    };
    assert!(expand(&xml("0..100, 200..", "4M"), &p).is_ok());
    assert_eq!(
        expand(&xml("banana", "100M"), &p).unwrap_err(),
        [
            "error: filter 'ro0' (program 'filter_readonly'): param 'blocks': blocks are ranges A..B or A.., separated by commas at f.xml:3:66",
            "error: filter 'cache0' (program 'filter_cache'): param 'size': the cache is larger than this filter's memory (at most 2048 blocks, 8 MiB) at f.xml:4:72",
        ]
    );
}

#[test]
fn a_corrupt_rule_of_filter_faulty_without_read_write_data_is_an_error_at_its_rules() {
    let p = programs(&[("filter_faulty", "strata-filter 1\0hooks=pre,post\0ops=read,write,flush\0params=rules,seed\0bounce=0\0")]);
    let xml = |data: &str, rules: &str| {
        format!(
            r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="flaky0" program="filter_faulty" data="{data}"><param key="rules" value="{rules}" /></filter>
    </disk>
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#
        )
    };
    assert!(expand(&xml("read-write", "corrupt read 30..31"), &p).is_ok());
    assert!(expand(&xml("none", "fail read 20..21"), &p).is_ok(), "a failure needs no data rights");
    assert_eq!(
        expand(&xml("read", "fail read 20..21; corrupt read 30..31"), &p).unwrap_err(),
        ["error: filter 'flaky0' (program 'filter_faulty'): param 'rules': a corrupt rule changes what a read returns: give the filter data=\"read-write\" at f.xml:3:67"]
    );
}

#[test]
fn a_param_the_program_does_not_take_is_an_error_at_the_param() {
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN)]);
    let xml = SYSTEM.replace(r#"<filter name="audit0" program="filter_plain" data="read" />"#, r#"<filter name="audit0" program="filter_plain" data="read"><param key="level" value="1" /></filter>"#);
    let errors = expand(&xml, &p).unwrap_err();
    assert_eq!(errors, ["error: filter 'audit0' (program 'filter_plain') takes no param 'level': it takes no params at f.xml:6:66"]);
    let xml = SYSTEM.replace(r#"key="level""#, r#"key="lvl""#);
    let errors = expand(&xml, &p).unwrap_err();
    assert_eq!(errors, ["error: filter 'crypt0' (program 'filter_bouncer') takes no param 'lvl': it takes level at f.xml:4:13"]);
}

#[test]
fn a_program_that_is_not_a_filter_is_an_error_at_its_filter() {
    let p = programs(&[("filter_plain", PLAIN)]);
    let dir = &p.search_path[0];
    std::fs::write(dir.join("filter_bouncer"), elf_with_section(".text", b"\0\0\0\0")).unwrap();
    let errors = expand(SYSTEM, &p).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("error: filter 'crypt0': program 'filter_bouncer': "), "{}", errors[0]);
    assert!(errors[0].contains("declares no filter manifest (section .strata_filter): is it a filter program?"), "{}", errors[0]);
    assert!(errors[0].ends_with("at f.xml:3:9"), "{}", errors[0]);
}

#[test]
fn without_the_programs_every_hook_and_operation_is_assumed_and_params_are_not_checked() {
    let none = Programs { base: PathBuf::from("."), search_path: vec![PathBuf::from("/nonexistent")] };
    let sd = expand(SYSTEM, &none).unwrap();
    let cfg: ServerConfig = record(&sd, "blk_server", "blk_server_config");
    assert_eq!((cfg.filters[0].hooks, cfg.filters[0].ops, cfg.filters[0].bounce.size), (3, 0xff, 0));
}

#[test]
fn a_partition_client_of_a_disk_whose_filter_offers_a_window_is_an_error_at_the_client() {
    const WINDOWED: &str = "strata-filter 1\0hooks=pre,post,setup\0ops=read,write\0params=\0bounce=4096\0";
    let p = programs(&[("filter_window", WINDOWED)]);
    let xml = r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="crypt0" program="filter_window" data="read-write" />
    </disk>
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" partition="1" />
    </protection_domain>
</system>
"#;
    let errors = expand(xml, &p).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("f.xml:7:9"), "{}", errors[0]);
    assert!(errors[0].contains("names a partition of disk 'disk0', whose filter 'crypt0' (filter_window) offers its clients a window"), "{}", errors[0]);
    // The whole disk is fine, and the server hears of the setup hook.
    let sd = expand(&xml.replace(r#" partition="1""#, ""), &p).unwrap();
    let cfg: ServerConfig = record(&sd, "blk_server", "blk_server_config");
    assert_eq!(cfg.filters[0].hooks & blk::filter::SETUP_HOOK, blk::filter::SETUP_HOOK);
}

/// disk clone0: crypt0 (a bounce buffer), then overlay0, which links to
/// base0; base0: audit1 (reads). app enters clone0 at the top, late at
/// overlay0, reader is base0's own client; disk other has no filter and
/// no link.
const LINKED: &str = r#"<system>
    <disk name="clone0" virtio_slot="31">
        <filter name="crypt0" program="filter_bouncer" data="read-write" />
        <filter name="overlay0" program="filter_plain" data="read-write">
            <link disk="base0" />
        </filter>
    </disk>
    <disk name="base0" virtio_slot="30">
        <filter name="audit1" program="filter_plain" data="read" />
    </disk>
    <disk name="other" virtio_slot="29" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="clone0" />
    </protection_domain>
    <protection_domain name="late" priority="100">
        <program_image path="app.elf" />
        <block_client disk="clone0" at="overlay0" />
    </protection_domain>
    <protection_domain name="reader" priority="100">
        <program_image path="app.elf" />
        <block_client disk="base0" />
    </protection_domain>
</system>
"#;

/// The lends of the server's channel to `filter`, as (region, perms).
fn lends_of(sd: &SystemDescription, filter: &str) -> Vec<(String, Perms)> {
    let (f, _) = sd.pd(filter).unwrap();
    let ch = sd.channels.iter().find(|c| c.ends.iter().any(|e| e.pd == f)).unwrap();
    ch.lends.iter().map(|l| (l.mr.clone(), l.perms)).collect()
}

#[test]
fn a_filter_of_a_linked_disk_is_lent_what_redirected_requests_carry_and_the_records_say_which_disk() {
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN)]);
    let sd = expand(LINKED, &p).unwrap();
    let owned = |lends: &[(&str, Perms)]| lends.iter().map(|(m, p)| (m.to_string(), *p)).collect::<Vec<_>>();
    let (r, rw) = (Perms::READ, Perms::READ_WRITE);
    // overlay0 sees app's and late's requests, and crypt0's substitutes.
    assert_eq!(lends_of(&sd, "overlay0"), owned(&[("blk_app_data", rw), ("blk_late_data", rw), ("blk_crypt0_bounce", rw)]));
    assert_eq!(lends_of(&sd, "crypt0"), owned(&[("blk_app_data", rw)]));
    // audit1 sees reader's requests and what overlay0 redirects: the same
    // data overlay0 sees (never overlay0's own substitute).
    assert_eq!(
        lends_of(&sd, "audit1"),
        owned(&[("blk_app_data", r), ("blk_late_data", r), ("blk_reader_data", r), ("blk_crypt0_bounce", r)])
    );
    let cfg: ServerConfig = record(&sd, "blk_server", "blk_server_config");
    let disk = |name: &str| (0..cfg.disk_count as usize).find(|&d| blk::config::field_str(&cfg.disks[d].name) == name).unwrap() as u8;
    let (crypt0, overlay0, audit1) = (&cfg.filters[0], &cfg.filters[1], &cfg.filters[2]);
    assert_eq!((overlay0.disk, overlay0.position, audit1.disk, audit1.position), (0, 1, 1, 0));
    // Links: per <link>, the disk's index; the rest none.
    assert_eq!(overlay0.links, [disk("base0"), NO_LINK, NO_LINK, NO_LINK]);
    assert_eq!(crypt0.links, [NO_LINK; 4]);
    assert_eq!(audit1.links, [NO_LINK; 4]);
    // Lends by the server's client and filter numbers: app 0, late 1,
    // reader 2; crypt0 is filter 0.
    assert_eq!(overlay0.lend_client[..3], [0, 1, NO_LEND]);
    assert_eq!(overlay0.lend_bounce[..3], [2, NO_LEND, NO_LEND]);
    assert_eq!(audit1.lend_client[..3], [0, 1, 2]);
    assert_eq!(audit1.lend_bounce[..3], [3, NO_LEND, NO_LEND]);
    assert_eq!(crypt0.lend_client[..3], [0, NO_LEND, NO_LEND]);
    assert_eq!(crypt0.lend_bounce, [NO_LEND; 16]);
    // The chains: overlay0's link from the stage below it to base0's.
    let server = &sd.pd("blk_server").unwrap().1;
    let names: Vec<&str> = server.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["clone0", "base0"], "other has neither filters nor a link to it");
    let links: Vec<(usize, &str, u32)> = server.chains[0].links.iter().map(|l| (l.via, l.chain.as_str(), l.pos.line)).collect();
    assert_eq!(links, [(1, "base0", 5)]);
    assert!(server.chains[1].links.is_empty());
}

#[test]
fn a_linked_disk_without_filters_or_clients_is_driven_by_the_server_and_gets_a_chain_of_one_stage() {
    let xml = r#"<system>
    <disk name="clone0" virtio_slot="31">
        <filter name="overlay0" program="filter_overlay" data="read-write">
            <link disk="base0" />
        </filter>
    </disk>
    <disk name="base0" virtio_slot="30" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="clone0" />
    </protection_domain>
    <policy name="clone-reaches-base-through-the-overlay" kind="mediated" via="overlay0">
        <from pd="app" />
        <to region="blk_base0_dma" />
    </policy>
</system>
"#;
    let none = Programs { base: PathBuf::from("."), search_path: vec![PathBuf::from("/nonexistent")] };
    let sd = expand(xml, &none).unwrap();
    let cfg: ServerConfig = record(&sd, "blk_server", "blk_server_config");
    assert_eq!(cfg.disks[1].queue.capacity, 64, "base0 is the server's");
    assert!(sd.memory_region("blk_base0_driver_queue").is_some());
    let server = &sd.pd("blk_server").unwrap().1;
    let base0 = &server.chains[1];
    assert_eq!((base0.name.as_str(), base0.stages.len(), base0.vias.len()), ("base0", 1, 0));
    let regions: Vec<&str> = base0.stages[0].regions.iter().map(|r| r.mr.as_str()).collect();
    assert_eq!(regions, ["blk_base0_driver_queue", "blk_base0_probe"]);
    // It reads back as written, and the verifier proves the policy, shows
    // the link and draws it.
    let text = sdf::to_xml(&sd);
    assert!(text.contains(r#"<link via="overlay0" chain="base0" />"#), "{text}");
    let again = sdf::read("f.xml", &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(again.without_positions(), sd.without_positions());
    let analysis = verify::analyse(&sd, None);
    assert!(analysis.ok(), "{}", analysis.report());
    let report = analysis.report();
    assert!(report.contains("  link from stage 2 (below overlay0) to chain base0, stage 1 (link at f.xml:4:13)"), "{report}");
    let dot = verify::dot(&sd);
    assert!(dot.contains(r#"label="link to base0"]"#), "{dot}");
}

#[test]
fn a_link_into_a_disk_with_a_direct_client_is_an_error_at_the_link_even_unvalidated() {
    let xml = r#"<system>
    <disk name="clone0" virtio_slot="31">
        <filter name="overlay0" program="filter_overlay" data="read-write">
            <link disk="base0" />
        </filter>
    </disk>
    <disk name="base0" virtio_slot="30" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="clone0" />
    </protection_domain>
    <protection_domain name="bench" priority="100">
        <program_image path="app.elf" />
        <block_client disk="base0" direct="true" />
    </protection_domain>
</system>
"#;
    let expected = "error: filter 'overlay0' of disk 'clone0' links to disk 'base0', but disk 'base0' has a direct client 'bench' (line 14), which bypasses the filter server: a filter cannot redirect into it; drop the <link> or direct=\"true\" at f.xml:4:13";
    assert_eq!(expand(xml, &programs(&[])).unwrap_err(), [expected]);
    let sd = sdf::read("f.xml", xml).unwrap();
    let errors: Vec<String> = tool::storage::expand(&sd).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errors, [expected]);
}

#[test]
fn a_filter_program_missing_where_the_programs_are_built_is_warned_of() {
    let warnings = |p: &Programs| {
        let sd = sdf::parse("f.xml", SYSTEM).unwrap();
        warnings_of(&sd, p)
    };
    // Nothing built yet: nothing to say.
    assert!(warnings(&programs(&[("filter_bouncer", BOUNCER)])).is_empty());
    // The components are built (the server is there), filter_plain is not.
    let p = programs(&[("filter_bouncer", BOUNCER), ("blk_server", ""), ("app.elf", "")]);
    let dir = p.search_path[0].display();
    assert_eq!(
        warnings(&p),
        [format!(
            "6:9: program 'filter_plain' of filter 'audit0' is not next to the system file or in {dir}: check its name \
             (building the image needs it)"
        )]
    );
    assert!(warnings(&programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN), ("blk_server", ""), ("app.elf", "")])).is_empty());
    // A protection domain's program too.
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN), ("blk_server", "")]);
    let dir = p.search_path[0].display();
    let pd = |line| format!("{line}:9: program 'app.elf' of protection domain '{}' is not next to the system file or in {dir}: check its name (building the image needs it)", if line == 10 { "app" } else { "other" });
    assert_eq!(warnings(&p), [pd(10), pd(14)]);
}

#[test]
fn a_filter_whose_program_says_restart_no_cannot_be_declared_on_fault_restart() {
    let p = programs(&[("filter_clone", "strata-filter 1\0hooks=pre,post\0ops=read,write\0params=\0restart=no\0bounce=0\0")]);
    let xml = |on_fault: &str| {
        format!(
            r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="c0" program="filter_clone" data="none" on_fault="{on_fault}" />
    </disk>
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#
        )
    };
    assert!(expand(&xml("fail"), &p).is_ok());
    assert_eq!(
        expand(&xml("restart"), &p).unwrap_err(),
        ["error: filter 'c0' (program 'filter_clone') cannot be restarted: its memory holds what its disk does not yet (since the last flush), which a restart would lose while the clients go on; declare on_fault=\"fail\" at f.xml:3:9"]
    );
}

#[test]
fn a_link_on_a_filter_whose_program_takes_none_is_warned_of() {
    let p = programs(&[("filter_plain", "strata-filter 1\0hooks=pre\0ops=write\0params=\0links=0\0bounce=0\0")]);
    let xml = r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="ro0" program="filter_plain" data="none"><link disk="disk1" /></filter>
    </disk>
    <disk name="disk1" virtio_slot="30" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#;
    assert!(expand(xml, &p).is_ok(), "a warning, not an error");
    let sd = sdf::parse("f.xml", xml).unwrap();
    let warnings = warnings_of(&sd, &p);
    assert_eq!(
        warnings,
        ["3:63: filter 'ro0' (program 'filter_plain') never redirects a request: its <link> grants nothing it uses, but the verifier must assume the flow; remove it"]
    );
}

#[test]
fn a_client_that_may_write_below_a_caching_filter_is_warned_of_and_a_read_only_one_is_not() {
    // crypt0's program says it caches; "other" moves to disk0 as `client`.
    let caching = BOUNCER.replace("bounce=16384\0", "bounce=16384\0caches=yes\0");
    let p = programs(&[("filter_bouncer", &caching), ("filter_plain", PLAIN)]);
    let system = |client: &str| SYSTEM.replace(r#"<block_client disk="disk1" />"#, client);
    let warnings = |client: &str| {
        let sd = sdf::parse("f.xml", &system(client)).unwrap();
        expand_validated_with(&sd, &p).unwrap();
        warnings_of(&sd, &p)
    };
    assert_eq!(
        warnings(r#"<block_client disk="disk0" at="audit0" />"#),
        ["15:9: block_client of protection domain 'other' attaches at 'audit0', below 'crypt0', which caches blocks of disk \
          'disk0': 'crypt0' never sees this client's writes and would go on answering the blocks they change with the old \
          data; declare the client read_only=\"true\" or attach it at or above 'crypt0'"]
    );
    assert!(warnings(r#"<block_client disk="disk0" at="audit0" read_only="true" />"#).is_empty());
    assert!(warnings(r#"<block_client disk="disk0" at="crypt0" />"#).is_empty(), "at the cache, the cache sees its writes");
    assert!(warnings(r#"<block_client disk="disk0" />"#).is_empty());
    // The server's record says which client is read-only.
    let sd = sdf::parse("f.xml", &system(r#"<block_client disk="disk0" at="audit0" read_only="true" />"#)).unwrap();
    let cfg: ServerConfig = record(&expand_validated_with(&sd, &p).unwrap(), "blk_server", "blk_server_config");
    assert_eq!((cfg.clients[0].flags, cfg.clients[1].flags), (0, blk::config::CLIENT_READ_ONLY));
}

#[test]
fn a_client_that_may_write_below_a_filter_keeping_its_metadata_is_warned_of() {
    // crypt0's program keeps a header on the disk below it.
    let keeping = BOUNCER.replace("bounce=16384\0", "bounce=16384\0keeps=keeps its header there\0");
    let p = programs(&[("filter_bouncer", &keeping), ("filter_plain", PLAIN)]);
    let warnings = |client: &str| {
        let sd = sdf::parse("f.xml", &SYSTEM.replace(r#"<block_client disk="disk1" />"#, client)).unwrap();
        expand_validated_with(&sd, &p).unwrap();
        warnings_of(&sd, &p)
    };
    assert_eq!(
        warnings(r#"<block_client disk="disk0" at="audit0" />"#),
        ["15:9: block_client of protection domain 'other' attaches at 'audit0', below 'crypt0', which keeps its header \
          there (disk 'disk0'): this client's writes go around 'crypt0' and may break that; declare the client \
          read_only=\"true\" or attach it at or above 'crypt0'"]
    );
    assert!(warnings(r#"<block_client disk="disk0" at="audit0" read_only="true" />"#).is_empty());
    assert!(warnings(r#"<block_client disk="disk0" at="crypt0" />"#).is_empty());
}

/// A clone's base (read through a link) and a mirror's secondary (read
/// and written) with another writer: a client, or another filter linking
/// the same disk.
#[test]
fn another_writer_of_a_disk_a_filter_links_to_is_warned_of() {
    const CLONE: &str = "strata-filter 1\0hooks=pre\0ops=read,write\0params=\0bounce=0\0links=1\0linked=read\0";
    const MIRROR: &str = "strata-filter 1\0hooks=post\0ops=read,write\0params=\0bounce=0\0links=1\0linked=read-write\0";
    let p = programs(&[("filter_clone", CLONE), ("filter_mirror", MIRROR)]);
    let system = |first: &str, second: &str, client: &str| {
        format!(
            r#"<system>
    <disk name="d0" virtio_slot="31">
        <filter name="f0" program="{first}" data="none"><link disk="base" /></filter>
    </disk>
    <disk name="d1" virtio_slot="30">
        <filter name="f1" program="{second}" data="none"><link disk="base" /></filter>
    </disk>
    <disk name="base" virtio_slot="29" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        {client}
    </protection_domain>
</system>
"#
        )
    };
    let warnings = |first: &str, second: &str, client: &str| {
        let sd = sdf::parse("f.xml", &system(first, second, client)).unwrap();
        expand_validated_with(&sd, &p).unwrap();
        warnings_of(&sd, &p)
    };
    // Two clones of one base, its client read-only: nothing to say.
    assert!(warnings("filter_clone", "filter_clone", r#"<block_client disk="base" read_only="true" />"#).is_empty());
    assert!(warnings("filter_clone", "filter_clone", r#"<block_client disk="d0" />"#).is_empty());
    assert_eq!(
        warnings("filter_clone", "filter_clone", r#"<block_client disk="base" />"#),
        [
            "11:9: block_client of protection domain 'app' writes disk 'base', which 'f0' of disk 'd0' reads through its \
             <link> as its base: a write there changes what 'd0' reads; declare the client read_only=\"true\" or give it a \
             disk of its own",
            "11:9: block_client of protection domain 'app' writes disk 'base', which 'f1' of disk 'd1' reads through its \
             <link> as its base: a write there changes what 'd1' reads; declare the client read_only=\"true\" or give it a \
             disk of its own",
        ]
    );
    // Two mirrors on one secondary; a mirror writing a clone's base.
    assert_eq!(
        warnings("filter_mirror", "filter_mirror", r#"<block_client disk="d0" />"#),
        ["6:63: disk 'base' is linked by 'f0' (disk 'd0') and by 'f1' (disk 'd1'), and 'f1' writes it: each would change \
          what the other keeps there; link each to a disk of its own"]
    );
    assert_eq!(
        warnings("filter_clone", "filter_mirror", r#"<block_client disk="d0" />"#),
        ["6:63: disk 'base' is linked by 'f0' (disk 'd0') and by 'f1' (disk 'd1'), and 'f1' writes it: 'f1' would change \
          what 'f0' reads there as its base; link each to a disk of its own"]
    );
    assert_eq!(
        warnings("filter_mirror", "filter_clone", r#"<block_client disk="base" read_only="true" />"#),
        ["6:62: disk 'base' is linked by 'f0' (disk 'd0') and by 'f1' (disk 'd1'), and 'f0' writes it: 'f0' would change \
          what 'f1' reads there as its base; link each to a disk of its own"]
    );
    assert_eq!(
        warnings("filter_mirror", "filter_clone", r#"<block_client disk="d1" />"#).len(),
        1,
        "a client of the clone writes the clone, not the base"
    );
    // A third: two clones and a mirror on one disk, the mirror between
    // them: each clone is told of the mirror.
    let three = system("filter_clone", "filter_mirror", r#"<block_client disk="d0" />"#).replace(
        r#"<disk name="base" virtio_slot="29" />"#,
        r#"<disk name="d2" virtio_slot="28">
        <filter name="f2" program="filter_clone" data="none"><link disk="base" /></filter>
    </disk>
    <disk name="base" virtio_slot="29" />"#,
    );
    let sd = sdf::parse("f.xml", &three).unwrap();
    expand_validated_with(&sd, &p).unwrap();
    let said = warnings_of(&sd, &p);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[1].contains("is linked by 'f1' (disk 'd1') and by 'f2' (disk 'd2'), and 'f1' writes it"), "{said:?}");
}

/// A filter whose manifest says what a block costs it gets no more blocks
/// an upcall than its budget pays for (the server's record says), and one
/// that needs a least budget refuses a smaller one at the element.
#[test]
fn a_filters_block_cost_and_least_budget_shape_its_upcalls() {
    let costly = BOUNCER.replace("bounce=16384\0", "bounce=16384\0block_us=25\0min_budget=2000\0");
    let p = programs(&[("filter_bouncer", &costly), ("filter_plain", PLAIN)]);
    let with_budget = |budget: &str| SYSTEM.replace(r#"budget="5000""#, budget);
    let sd = sdf::parse("f.xml", &with_budget(r#"budget="5000""#)).unwrap();
    let cfg: ServerConfig = record(&expand_validated_with(&sd, &p).unwrap(), "blk_server", "blk_server_config");
    assert_eq!((cfg.filters[0].max_blocks(), cfg.filters[1].max_blocks()), (200, 0), "5000 us at 25 a block; audit0's program says no cost");
    let sd = sdf::parse("f.xml", &with_budget("")).unwrap();
    let cfg: ServerConfig = record(&expand_validated_with(&sd, &p).unwrap(), "blk_server", "blk_server_config");
    assert_eq!(cfg.filters[0].max_blocks(), 4000, "the default budget, 100000 us");
    let errors = expand(&with_budget(r#"budget="1500""#), &p).unwrap_err();
    assert_eq!(
        errors,
        ["error: filter 'crypt0' (program 'filter_bouncer') needs a budget of at least 2000 us (its setup's steps take up to \
          that; it has 1500): give it budget=\"2000\" or more, or leave budget out at f.xml:3:9"]
    );
    assert_eq!(tool::storage::max_blocks(100, 25), 4);
    assert_eq!(tool::storage::max_blocks(10, 25), 1, "one request at least");
}

#[test]
fn the_operations_each_hook_is_for_reach_the_servers_record() {
    // crypt0's program wants its pre-op for writes only, audit0's for all
    // it declares.
    let narrowed = BOUNCER.replace("ops=read,write\0", "ops=read,write\0pre_ops=write\0");
    let p = programs(&[("filter_bouncer", &narrowed), ("filter_plain", PLAIN)]);
    let cfg: ServerConfig = record(&expand(SYSTEM, &p).unwrap(), "blk_server", "blk_server_config");
    let (write, flush) = (blk::filter::op_bit(blk::Op::Write), blk::filter::op_bit(blk::Op::Flush) | blk::filter::op_bit(blk::Op::FlushCompleted));
    let (c0, c1) = (&cfg.filters[0], &cfg.filters[1]);
    assert_eq!((c0.ops, c0.pre_ops, c0.post_ops), (0b11, write, 0b11));
    assert_eq!((c1.ops, c1.pre_ops, c1.post_ops), (write | flush, write | flush, write | flush));
    // A hook for an operation the program does not declare: the manifest
    // does not read.
    let wrong = BOUNCER.replace("ops=read,write\0", "ops=read,write\0post_ops=flush\0");
    let p = programs(&[("filter_bouncer", &wrong), ("filter_plain", PLAIN)]);
    let errors = expand(SYSTEM, &p).unwrap_err();
    assert!(errors[0].contains("the filter manifest is malformed: a malformed manifest field"), "{}", errors[0]);
}

#[test]
fn a_filter_budget_shorter_than_an_upcall_takes_is_warned_of() {
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", PLAIN)]);
    let warnings = |budget: &str| {
        let sd = sdf::parse("f.xml", &SYSTEM.replace(r#"budget="5000""#, &format!(r#"budget="{budget}""#))).unwrap();
        warnings_of(&sd, &p)
    };
    assert!(warnings("1000").is_empty());
    let said = warnings("999");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("3:9: filter 'crypt0' may take 999 us an upcall"), "{said:?}");
}

#[test]
fn a_manifests_budget_is_the_default_a_declared_budget_overrides() {
    let slow = "strata-filter 1\0hooks=pre\0ops=write,flush\0params=\0bounce=0\0budget=400000\0";
    let p = programs(&[("filter_bouncer", BOUNCER), ("filter_plain", slow)]);
    let sd = expand(SYSTEM, &p).unwrap();
    assert_eq!(sd.pd("audit0").unwrap().1.call_budget, Some(400_000));
    let declared = SYSTEM.replace(r#"program="filter_plain""#, r#"program="filter_plain" budget="2000""#);
    let sd = expand(&declared, &p).unwrap();
    assert_eq!(sd.pd("audit0").unwrap().1.call_budget, Some(2_000));
}
