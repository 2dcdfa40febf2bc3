//! The shipped systems keep every invariant, and the default system's
//! declared policies hold.

fn analyse(system: &str) -> verify::Analysis {
    let sd = sdf::read_file(&e2e::root().join(system)).expect("readable");
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
    for system in ["tests/systems/kernel.xml", "tests/systems/attack.xml"] {
        let a = analyse(system);
        assert!(a.ok(), "{system}\n{}", a.report());
    }
}
