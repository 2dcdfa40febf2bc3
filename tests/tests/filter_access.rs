//! Filter-level access on QEMU (`tests/systems/filter-access.xml`): disk0's
//! chain is audit0 then tap0; verify0 attaches at the top, probe0 with
//! `at="tap0"`. The server's statistics show that audit0 saw verify0's
//! requests only and tap0 saw both clients'; probe0's write reached the
//! disk through tap0. The verifier says where each client enters, proves
//! both clients pass tap0, and refuses `mediated via="audit0"` for probe0
//! with a witness that enters the chain below audit0.

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks};
use std::time::Duration;

const SYSTEM: &str = "tests/systems/filter-access.xml";
const TIMEOUT: Duration = Duration::from_secs(90);

/// A server statistics line without its upcall count (which depends on
/// how requests batched): `disk0 filter audit0: .. 513 pre-ops, ...`.
fn without_upcalls(line: &str) -> Option<String> {
    let (name, rest) = line.split_once(" upcalls, ")?;
    Some(format!("{} .. {rest}", name.rsplit_once(' ').map_or(name, |n| n.0)))
}

#[test]
fn a_client_attached_at_a_filter_is_seen_by_it_and_below_and_never_by_the_filters_above() {
    let disks = Disks::fresh();
    let run = boot_to_completion_on(&build_image(SYSTEM, false), &disks, &[], TIMEOUT);
    let console = run.transcript();
    assert_eq!(
        run.lines_of("verify0"),
        ["disk0 has 7936 blocks; checking 256", "wrote and flushed 256 blocks (generation 1)", "verified 256 blocks, 0 mismatches"],
        "{console}"
    );
    assert_eq!(run.lines_of("probe0"), ["write of block 0 of disk0: ok", "read of block 0 of disk0: ok"], "{console}");
    let (stats, mut server): (Vec<&str>, Vec<&str>) =
        run.lines_of("blk_server").into_iter().partition(|l| l.starts_with("disk0 filter"));
    server.sort();
    // probe0 sees the disk as tap0 offers it: all of it.
    assert_eq!(server, ["client probe0: blocks 0..16384", "client verify0: blocks 256..8192", "disk0: 16384 blocks"], "{console}");
    let stats: Vec<String> = stats.iter().filter_map(|l| without_upcalls(l)).collect();
    assert_eq!(
        stats,
        [
            // verify0's 256 writes, its flush and 256 reads, and nothing
            // of probe0's.
            "disk0 filter audit0: .. 513 pre-ops, 513 post-ops; verdicts: 1026 continue, 0 substitute, 0 complete, 0 fail; 0 errors; 2097152 bytes",
            // The same and probe0's write and read.
            "disk0 filter tap0: .. 515 pre-ops, 515 post-ops; verdicts: 1030 continue, 0 substitute, 0 complete, 0 fail; 0 errors; 2105344 bytes",
        ],
        "{console}"
    );
    // probe0's write went down from tap0 to the disk.
    let disk0 = disks.read(0);
    let block: &[u8; BLOCK] = disk0[..BLOCK].try_into().unwrap();
    assert_eq!(stamp::check("disk0", 0, 1, block), Ok(()), "probe0's stamp in block 0");
}

/// The same system with probe0 declared `read_only="true"`: the server
/// answers its write `invalid request` before tap0 or the disk sees it;
/// its read passes tap0 as before.
#[test]
fn a_read_only_client_attached_at_a_filter_has_its_write_refused_before_the_filter() {
    let xml = std::fs::read_to_string(e2e::root().join(SYSTEM)).unwrap();
    let attach = r#"<block_client disk="disk0" at="tap0" "#;
    assert!(xml.contains(attach));
    let dir = e2e::root().join("build/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let system = dir.join("filter-access-read-only.xml");
    std::fs::write(&system, xml.replace(attach, r#"<block_client disk="disk0" at="tap0" read_only="true" "#)).unwrap();
    let disks = Disks::fresh();
    let before = disks.read(0);
    let run = boot_to_completion_on(&build_image(system.to_str().unwrap(), false), &disks, &[], TIMEOUT);
    let console = run.transcript();
    assert_eq!(run.lines_of("probe0"), ["write of block 0 of disk0: invalid request", "read of block 0 of disk0: ok"], "{console}");
    let stats: Vec<String> =
        run.lines_of("blk_server").into_iter().filter(|l| l.starts_with("disk0 filter tap0")).filter_map(without_upcalls).collect();
    assert_eq!(
        stats,
        ["disk0 filter tap0: .. 514 pre-ops, 514 post-ops; verdicts: 1028 continue, 0 substitute, 0 complete, 0 fail; 0 errors; 2101248 bytes"],
        "verify0's requests and probe0's read only\n{console}"
    );
    assert_eq!(disks.read(0)[..BLOCK], before[..BLOCK], "block 0 is as it was");
}

#[test]
fn the_verifier_shows_where_each_client_enters_and_refuses_the_upper_filter_as_mediator_of_the_lower_client() {
    let xml = std::fs::read_to_string(e2e::root().join(SYSTEM)).unwrap();
    let analyse = |xml: &str| {
        let sd = sdf::parse(SYSTEM, xml).unwrap_or_else(|e| panic!("{}", e[0]));
        verify::analyse(&tool::storage::expand_validated(&sd).unwrap_or_else(|e| panic!("{}", e[0])), None)
    };
    let analysis = analyse(&xml);
    let report = analysis.report();
    assert!(analysis.ok(), "{report}");
    for line in [
        "              verify0 enters at stage 1, at audit0",
        "              probe0 enters at stage 2, at tap0 (below audit0)",
        "  policy 'both-clients-pass-the-tap' (mediated via 'tap0'): holds",
    ] {
        assert!(report.lines().any(|l| l == line), "missing {line:?}\n{report}");
    }
    let extra = r#"<policy name="probe0-passes-the-audit" kind="mediated" via="audit0">
        <from pd="probe0" /> <to region="blk_disk0_dma" />
    </policy>
</system>"#;
    let analysis = analyse(&xml.replace("</system>", extra));
    let found = analysis.violations();
    assert_eq!(found.len(), 1, "{}", analysis.report());
    let witness = found[0].to_string();
    assert!(
        witness.starts_with("policy 'probe0-passes-the-audit' (mediated via 'audit0') violated: probe0 -> [notifies (channel at "),
        "{witness}"
    );
    assert!(witness.contains("-> blk_server (chain disk0, stage 2) -> [calls (channel at "), "{witness}");
    assert!(witness.ends_with("-> region 'blk_disk0_dma'") && !witness.contains("audit0 ->"), "{witness}");
}

/// The image grants exactly what the expanded system declares, as the
/// independent image checker reads it back.
#[test]
fn the_image_grants_exactly_what_the_system_declares() {
    let root = e2e::root();
    let image = std::fs::read(build_image(SYSTEM, false)).unwrap();
    let pd_dir = root.join("target/aarch64-unknown-none/system");
    let programs = |sd: &sdf::SystemDescription| tool::filters::Programs::for_system(sd, std::slice::from_ref(&pd_dir));
    let sd = sdf::parse_file(&root.join(SYSTEM)).and_then(|sd| tool::storage::expand_validated_with(&sd, &programs(&sd))).expect("valid");
    let programs = sd.protection_domains.iter().map(|pd| std::fs::read(pd_dir.join(&pd.program_image)).unwrap()).collect();
    let kernel = std::fs::read(root.join("target/aarch64-unknown-none-softfloat/system/kernel")).unwrap();
    let findings = imagecheck::check(&sd, &imagecheck::Inputs { image: &image, kernel_elf: &kernel, programs });
    assert!(findings.is_empty(), "{}", findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"));
}
