//! The shipped systems keep every invariant, and the default system's
//! declared policies hold.

fn analyse(system: &str) -> verify::Analysis {
    let sd = sdf::read_file(&e2e::root().join(system)).expect("readable");
    let sd = tool::storage::expand(&sd).expect("expands");
    verify::analyse(&sd, None)
}

#[test]
fn the_default_system_proves_its_policies() {
    let a = analyse("system.xml");
    assert!(a.ok(), "{}", a.report());
    let report = a.report();
    for line in [
        "  policy 'worker-is-confined' (isolated): holds",
        "  policy 'worker-never-sees-requests' (no-flow): holds",
        "  policy 'auditor-only-through-server' (mediated via 'server'): holds",
    ] {
        assert!(report.lines().any(|l| l == line), "missing {line:?}\n{report}");
    }
}

#[test]
fn the_test_systems_keep_every_invariant() {
    let systems = [
        "tests/systems/kernel.xml",
        "tests/systems/attack.xml",
        "tests/systems/storage-bad.xml",
        "tests/systems/storage-check.xml",
        "tests/systems/storage-fault.xml",
        "bench/kernel.xml",
        "bench/blk-direct.xml",
        "bench/blk-server.xml",
        "tests/systems/overlay-verify.xml",
        "tests/systems/overlay-dump.xml",
        "tests/systems/mirror.xml",
        "tests/systems/integrity-verify.xml",
        "tests/systems/stack.xml",
        "tests/systems/overlay-two.xml",
        "examples/storage-features.xml",
    ];
    for system in systems {
        let a = analyse(system);
        assert!(a.ok(), "{system}\n{}", a.report());
    }
}

/// The image the tool builds for the default system (storage stack
/// included) grants exactly what the expanded system declares, as the
/// independent image checker reads it back.
/// Linked storage: what a clone's client sends reaches the base disk only
/// through the clone's overlay, and a mirror's secondary only through the
/// mirror (`make verify` on the test systems).
#[test]
fn links_are_flows_that_pass_the_linking_filter() {
    for (system, line) in [
        ("tests/systems/overlay-verify.xml", "  policy 'base-is-reached-only-through-overlay0' (mediated via 'overlay0'): holds"),
        ("tests/systems/mirror.xml", "  policy 'secondary-is-reached-only-through-mirror0' (mediated via 'mirror0'): holds"),
    ] {
        let report = analyse(system).report();
        assert!(report.lines().any(|l| l == line), "{system}: missing {line:?}\n{report}");
    }
}

#[test]
fn the_default_image_grants_exactly_what_the_system_declares() {
    let root = e2e::root();
    let image = e2e::build_image("system.xml", false);
    let sd = sdf::parse_file(&root.join("system.xml")).and_then(|sd| tool::storage::expand_validated(&sd)).expect("valid");
    let pd_dir = root.join("target/aarch64-unknown-none/system");
    let programs = sd.protection_domains.iter().map(|pd| std::fs::read(pd_dir.join(&pd.program_image)).unwrap()).collect();
    let kernel = std::fs::read(root.join("target/aarch64-unknown-none-softfloat/system/kernel")).unwrap();
    let image = std::fs::read(image).unwrap();
    let findings = imagecheck::check(&sd, &imagecheck::Inputs { image: &image, kernel_elf: &kernel, programs });
    assert!(findings.is_empty(), "{}", findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"));
}
