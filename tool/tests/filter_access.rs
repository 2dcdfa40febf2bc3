//! Filter-level access: a client declared `<block_client disk="disk0"
//! at="crypt0"/>` enters its disk's chain at that filter. The expansion
//! gives the server its entry (`ServerClient::entry`), declares it in the
//! server's `<chain>` as entering just above that filter (below the ones
//! above it), and lends its data only to the filters it passes; so the
//! verifier proves `mediated via` a filter for the clients at or above it
//! and refuses it, with a witness, for one attached below it, `strata
//! verify` says where each client enters and `strata graph` draws it there.

use std::path::PathBuf;
use std::process::{Command, Output};

use blk::config::{ServerConfig, NO_LEND};
use sdf::{SetVarValue, SystemDescription};
use tool::filters::Programs;
use tool::storage::expand_validated_with;
use zerocopy::FromBytes;

/// disk0's chain: cache0 then crypt0 (both may read the data). `app` and
/// `top` enter at the top (`top` says so with `at="cache0"`), `backup` at
/// crypt0, below the cache.
const SYSTEM: &str = r#"<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="cache0" program="test_cache" data="read" />
        <filter name="crypt0" program="test_crypt" data="read-write" />
    </disk>
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
    <protection_domain name="backup" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" at="crypt0" />
    </protection_domain>
    <protection_domain name="top" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" at="cache0" />
    </protection_domain>
    <policy name="clients-pass-the-cache" kind="mediated" via="cache0">
        <from pd="app" /> <from pd="top" /> <to region="blk_disk0_dma" />
    </policy>
    <policy name="every-client-passes-the-encryption" kind="mediated" via="crypt0">
        <from pd="app" /> <from pd="top" /> <from pd="backup" /> <to region="blk_disk0_dma" />
    </policy>
</system>
"#;

/// Where no filter program is found: the expansion assumes every hook and
/// operation and no bounce buffer.
fn no_programs() -> Programs {
    let dir = std::env::temp_dir().join(format!("strata-filter-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Programs { base: PathBuf::from("."), search_path: vec![dir] }
}

fn expand(xml: &str) -> SystemDescription {
    let sd = sdf::parse("access.xml", xml).unwrap_or_else(|e| panic!("{}", e[0]));
    expand_validated_with(&sd, &no_programs()).unwrap_or_else(|e| panic!("{}", e[0]))
}

fn server_config(sd: &SystemDescription) -> ServerConfig {
    let (_, server) = sd.pd("blk_server").unwrap();
    let setvar = server.setvars.iter().find(|s| s.symbol == "blk_server_config").unwrap();
    let SetVarValue::Bytes(bytes) = &setvar.value else { panic!("bytes") };
    ServerConfig::read_from_bytes(bytes).unwrap()
}

fn index(sd: &SystemDescription, pd: &str) -> usize {
    sd.pd(pd).unwrap_or_else(|| panic!("no protection domain '{pd}'")).0
}

#[test]
fn the_server_starts_each_clients_requests_at_the_filter_it_attaches_at() {
    let sd = expand(SYSTEM);
    let cfg = server_config(&sd);
    let clients: Vec<(String, u32)> = cfg.clients[..cfg.client_count as usize]
        .iter()
        .map(|c| (blk::config::field_str(&c.name).to_string(), c.entry))
        .collect();
    assert_eq!(clients, [("app".to_string(), 0), ("backup".to_string(), 1), ("top".to_string(), 0)]);
}

#[test]
fn the_chain_declares_a_client_attached_at_a_filter_as_entering_just_above_it() {
    let sd = expand(SYSTEM);
    let server = index(&sd, "blk_server");
    let chain = &sd.protection_domains[server].chains[0];
    let vias: Vec<&str> = chain.vias.iter().map(|v| sd.protection_domains[v.pd].name.as_str()).collect();
    assert_eq!(vias, ["cache0", "crypt0"]);
    let stage = |s: usize| {
        let regions = chain.stages[s].regions.iter().map(|r| r.mr.as_str()).collect::<Vec<_>>();
        let channels = chain.stages[s].channels.iter().map(|c| c.id).collect::<Vec<_>>();
        (regions, channels)
    };
    assert_eq!(stage(0), (vec!["blk_app_queue", "blk_app_data", "blk_top_queue", "blk_top_data"], vec![0, 2]));
    assert_eq!(stage(1), (vec!["blk_backup_queue", "blk_backup_data"], vec![1]));
    assert_eq!(stage(2), (vec!["blk_disk0_driver_queue", "blk_disk0_probe"], vec![40]));
}

#[test]
fn a_filter_is_lent_the_data_of_the_clients_that_enter_at_or_above_it_only() {
    let sd = expand(SYSTEM);
    let lends = |filter: &str| {
        let f = index(&sd, filter);
        let ch = sd.channels.iter().find(|c| c.ends.iter().any(|e| e.pd == f)).unwrap();
        ch.lends.iter().map(|l| l.mr.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(lends("cache0"), ["blk_app_data", "blk_top_data"]);
    assert_eq!(lends("crypt0"), ["blk_app_data", "blk_backup_data", "blk_top_data"]);
    let cfg = server_config(&sd);
    // Client 1 is backup: cache0 has no lend of its data.
    assert_eq!(cfg.filters[0].lend_client[..3], [0, NO_LEND, 1]);
    assert_eq!(cfg.filters[1].lend_client[..3], [0, 1, 2]);
}

#[test]
fn mediated_via_the_cache_fails_for_the_client_attached_below_it_and_holds_for_the_others() {
    let sd = expand(SYSTEM);
    let analysis = verify::analyse(&sd, None);
    assert!(analysis.ok(), "{}", analysis.report());
    let report = analysis.report();
    for line in [
        "  policy 'clients-pass-the-cache' (mediated via 'cache0'): holds",
        "  policy 'every-client-passes-the-encryption' (mediated via 'crypt0'): holds",
    ] {
        assert!(report.lines().any(|l| l == line), "missing {line:?}\n{report}");
    }
    // backup enters below the cache: the policy fails, and the witness
    // goes from backup's stage through crypt0 alone.
    let xml = SYSTEM.replace(r#"<from pd="top" /> <to region"#, r#"<from pd="top" /> <from pd="backup" /> <to region"#);
    let sd = expand(&xml);
    let analysis = verify::analyse(&sd, None);
    let found: Vec<String> = analysis.violations().iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        ["policy 'clients-pass-the-cache' (mediated via 'cache0') violated: backup -> [notifies (channel at \
          access.xml:12:9)] -> blk_server (chain disk0, stage 2) -> [calls (channel at access.xml:4:9)] -> crypt0 -> \
          [replies to (channel at access.xml:4:9)] -> blk_server (chain disk0, stage 3) -> [notifies (channel at \
          access.xml:2:5)] -> blk_driver -> [writes (map at access.xml:2:5)] -> region 'blk_disk0_dma'"]
    );
}

/// Write `xml` to a file of its own and return its path.
fn system_file(name: &str, xml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-filter-access-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).args(args).output().expect("strata runs")
}

fn search_path() -> PathBuf {
    no_programs().search_path.remove(0)
}

#[test]
fn strata_verify_says_where_each_client_enters_the_chain() {
    let path = system_file("verify.xml", SYSTEM);
    let out = strata(&["verify", path.to_str().unwrap(), "--search-path", search_path().to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "              stage 2: region 'blk_backup_queue', region 'blk_backup_data', channel 1",
        "              app enters at stage 1, at cache0",
        "              backup enters at stage 2, at crypt0 (below cache0)",
        "              top enters at stage 1, at cache0",
    ] {
        assert!(report.lines().any(|l| l == line), "missing {line:?}\n{report}");
    }
}

#[test]
fn strata_graph_draws_a_client_attached_at_a_filter_with_its_edge_to_that_filter() {
    let sd = expand(SYSTEM);
    let id = |pd: &str| format!("pd{}", index(&sd, pd));
    let path = system_file("graph.xml", SYSTEM);
    let out = strata(&["graph", path.to_str().unwrap(), "--search-path", search_path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let edge = |from: &str, to: &str| {
        format!("  {} -> {} [color=blue, fontcolor=blue, style=dashed, label=\"enters disk0\"];", id(from), id(to))
    };
    for (from, to) in [("app", "cache0"), ("backup", "crypt0"), ("top", "cache0")] {
        assert!(text.lines().any(|l| l == edge(from, to)), "missing {:?}\n{text}", edge(from, to));
    }
    assert!(!text.lines().any(|l| l == edge("backup", "cache0")), "{text}");
}

#[test]
fn a_hand_built_model_whose_client_attaches_past_the_chain_is_refused_at_the_client() {
    let mut sd = sdf::parse("access.xml", SYSTEM).unwrap();
    let backup = index(&sd, "backup");
    sd.protection_domains[backup].block_client.as_mut().unwrap().at = Some(2);
    let errors: Vec<String> = tool::storage::expand_with(&sd, &no_programs()).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["error: block_client of protection domain 'backup' attaches at filter number 3 of disk 'disk0', which has 2 \
          filters at access.xml:12:9"]
    );
}
