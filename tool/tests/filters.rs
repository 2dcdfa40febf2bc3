//! The storage expansion of filter chains: each `<filter>` becomes a
//! passive child of the filter server with its call page, its bounce
//! buffer (if its program declares one), a PPC channel from the server that
//! lends it the data it may reach, its record and its entry in the
//! server's; the server gets a `<chain>` per disk with filters. What a
//! filter's program declares (its manifest) is read from the program
//! image: params it does not take are errors at the param.

use blk::config::{FilterConfig, ServerConfig, NO_LEND};
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
