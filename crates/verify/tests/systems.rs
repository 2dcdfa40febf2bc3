//! For each invariant and each policy kind, `tests/systems/` holds a system
//! that keeps it (`<check>_holds.xml`) and one that breaks it
//! (`<check>_violated.xml`). The first must analyse clean; the second must
//! give exactly the lines of `<check>_violated.expected` (with `{file}`
//! standing for the file's path).
//!
//! A comment line `<!-- programs: pd=vaddr+size,... pd=... -->` gives the
//! program image extents of the named PDs.

use std::fs;
use std::path::{Path, PathBuf};

use verify::{analyse, ProgramExtent};

/// Every invariant and policy kind, as the file names spell them.
const CHECKS: &[&str] = &[
    "device_memory_owner",
    "irq_owner",
    "unowned_hardware",
    "writable_executable",
    "map_over_fixed_area",
    "ppc_priority",
    "ppc_cycle",
    "no_flow",
    "mediated",
    "isolated",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systems")
}

fn parse_int(text: &str) -> u64 {
    let text = text.replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => text.parse().unwrap(),
    }
}

/// The extents of the `<!-- programs: ... -->` line, per PD of `sd`.
fn programs(xml: &str, sd: &sdf::SystemDescription) -> Option<Vec<Vec<ProgramExtent>>> {
    let line = xml.lines().find_map(|l| l.strip_prefix("<!-- programs: "))?;
    let mut extents = vec![Vec::new(); sd.protection_domains.len()];
    for entry in line.trim_end_matches("-->").split_whitespace() {
        let (pd, list) = entry.split_once('=').unwrap();
        let (index, _) = sd.pd(pd).unwrap_or_else(|| panic!("no pd {pd}"));
        for extent in list.split(',') {
            let (vaddr, size) = extent.split_once('+').unwrap();
            extents[index].push(ProgramExtent { vaddr: parse_int(vaddr), size: parse_int(size) });
        }
    }
    Some(extents)
}

/// The violation lines of the system in `name`.
fn violations(name: &str) -> Vec<String> {
    let shown = format!("tests/systems/{name}");
    let xml = fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{shown}: {e}"));
    let sd = sdf::read(&shown, &xml).unwrap_or_else(|errors| {
        panic!("{shown} does not read: {}", errors[0]);
    });
    let programs = programs(&xml, &sd);
    let analysis = analyse(&sd, programs.as_deref());
    assert_eq!(analysis.ok(), analysis.violations().is_empty());
    analysis.violations().iter().map(ToString::to_string).collect()
}

#[test]
fn each_check_has_a_holding_and_a_violating_system() {
    for check in CHECKS {
        for suffix in ["_holds.xml", "_violated.xml", "_violated.expected"] {
            let path = dir().join(format!("{check}{suffix}"));
            assert!(path.exists(), "missing {}", path.display());
        }
    }
}

#[test]
fn holding_systems_are_clean() {
    let failures: Vec<String> = CHECKS
        .iter()
        .filter_map(|check| {
            let name = format!("{check}_holds.xml");
            let found = violations(&name);
            (!found.is_empty()).then(|| format!("{name}:\n  {}", found.join("\n  ")))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn holding_systems_also_pass_every_validation_rule() {
    for check in CHECKS {
        let name = format!("{check}_holds.xml");
        let xml = fs::read_to_string(dir().join(&name)).unwrap();
        if let Err(errors) = sdf::parse(&name, &xml) {
            panic!("{name}: {}", errors[0]);
        }
    }
}

#[test]
fn violating_systems_give_exactly_the_expected_violations() {
    let failures: Vec<String> = CHECKS
        .iter()
        .filter_map(|check| {
            let name = format!("{check}_violated.xml");
            let expected_file = dir().join(format!("{check}_violated.expected"));
            let expected = fs::read_to_string(&expected_file).unwrap_or_default();
            let expected: Vec<String> = expected
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.replace("{file}", &format!("tests/systems/{name}")))
                .collect();
            let got = violations(&name);
            (got != expected).then(|| {
                format!(
                    "{name}:\n expected:\n  {}\n got:\n  {}",
                    expected.join("\n  "),
                    got.join("\n  ")
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_violating_system_breaks_its_own_check() {
    for check in CHECKS {
        let name = format!("{check}_violated.xml");
        let prefix = match *check {
            "no_flow" | "mediated" | "isolated" => "policy '".to_string(),
            other => format!("{}: ", other.replace('_', "-")),
        };
        let found = violations(&name);
        assert!(found.iter().any(|v| v.starts_with(&prefix)), "{name}: {found:#?}");
    }
}
