//! The `strata` commands on a system with storage declarations: every one
//! works on the expanded system.

use std::path::PathBuf;
use std::process::{Command, Output};

const SYSTEM: &str = r#"<system>
    <disk name="disk0" virtio_slot="31" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#;

/// Write `xml` to a file of its own and return its path.
fn system_file(name: &str, xml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).args(args).output().expect("strata runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_a_storage_system() {
    let path = system_file("check.xml", SYSTEM);
    let out = strata(&["check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok\n");
}

#[test]
fn check_reports_clashes_with_generated_elements() {
    let xml = SYSTEM.replace(
        r#"<block_client disk="disk0" />"#,
        "<block_client disk=\"disk0\" />\n        <irq irq=\"79\" id=\"3\" />",
    );
    let path = system_file("clash.xml", &xml);
    let file = path.to_str().unwrap();
    let out = strata(&["check", file]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: irq 79 is bound twice: to 'blk_driver' (line 2) and to 'app': an interrupt goes to one protection \
             domain only at {file}:6:9\n"
        )
    );
}

#[test]
fn check_reports_storage_declaration_errors_one_per_line() {
    let xml = SYSTEM.replace(r#"virtio_slot="31""#, r#"virtio_slot="32""#).replace(r#"disk="disk0""#, r#"disk="disk9""#);
    let path = system_file("bad.xml", &xml);
    let file = path.to_str().unwrap();
    let out = strata(&["check", file]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: invalid value '32' for attribute 'virtio_slot' on element 'disk': expected a virtio-mmio slot from 0 \
             to 31 at {file}:2:24\n\
             error: block_client of protection domain 'app' names unknown disk 'disk9' at {file}:5:23\n"
        )
    );
}

#[test]
fn expand_prints_the_expanded_system_as_sdf() {
    let path = system_file("expand.xml", SYSTEM);
    let out = strata(&["expand", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = sdf::parse("printed.xml", &text(&out.stdout)).unwrap_or_else(|e| panic!("{e:#?}"));
    let expanded = tool::storage::expand(&sdf::parse("x.xml", SYSTEM).unwrap()).unwrap();
    assert_eq!(printed.without_positions(), SystemDescription { file: "printed.xml".into(), ..expanded }.without_positions());
    assert!(text(&out.stdout).contains(r#"<protection_domain name="blk_driver" priority="250" stack_size="0x10000">"#), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("<disk "), "plain SDF");
}

#[test]
fn verify_and_graph_see_the_generated_pds() {
    let path = system_file("verify.xml", SYSTEM);
    let out = strata(&["verify", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("protection domain 'blk_driver' (priority 250)"), "{report}");
    assert!(report.contains("device 'virtio_mmio_a003000'"), "{report}");
    let out = strata(&["graph", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("blk_server"));
}

#[test]
fn verify_expands_a_system_that_breaks_a_validation_rule() {
    // Two PDs of one name: validation refuses it, the verifier still reads it.
    let xml = SYSTEM.replace("</system>", "<protection_domain name=\"app\"><program_image path=\"b\" /></protection_domain>\n</system>");
    let path = system_file("unvalidated.xml", &xml);
    let out = strata(&["verify", path.to_str().unwrap()]);
    assert!(text(&out.stdout).contains("'blk_server'"), "{}{}", text(&out.stdout), text(&out.stderr));
}

use sdf::SystemDescription;

/// The image checker's fixtures: a real image of the kernel demo, its
/// kernel and programs, built by this tool.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/imagecheck/tests/fixtures")
}

fn verify_image(image: &std::path::Path) -> Output {
    let f = fixtures();
    let (system, kernel, search) = (f.join("default.xml"), f.join("kernel"), f.clone());
    strata(&[
        "verify",
        system.to_str().unwrap(),
        "--search-path",
        search.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--kernel",
        kernel.to_str().unwrap(),
    ])
}

#[test]
fn verify_with_an_image_accepts_the_image_built_from_the_system() {
    let out = verify_image(&fixtures().join("default.elf"));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("grants exactly what the system declares (8 PDs)"), "{}", text(&out.stdout));
}

#[test]
fn verify_with_an_image_catches_a_corrupted_image() {
    // Flip one byte of the kernel's code as the image carries it.
    let mut image = std::fs::read(fixtures().join("default.elf")).unwrap();
    let kernel = tool::elf::ElfImage::read(&fixtures().join("kernel")).unwrap();
    let code = kernel.segments.iter().find(|s| s.execute).expect("kernel code");
    let needle = &code.data[0x100..0x140];
    let at = image.windows(needle.len()).position(|w| w == needle).expect("kernel code in the image");
    image[at + 8] ^= 0x01;
    let path = system_file("corrupt.elf", "");
    std::fs::write(&path, &image).unwrap();
    let out = verify_image(&path);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("differences from the system"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).lines().any(|l| l.starts_with("image: ")), "{}", text(&out.stderr));
}

/// A policy that names the generated server and DMA region.
const MEDIATED: &str = r#"<policy name="app-through-server" kind="mediated" via="blk_server">
        <from pd="app" />
        <to region="blk_disk0_dma" />
    </policy>
</system>"#;

#[test]
fn every_command_resolves_policies_that_name_generated_elements() {
    let path = system_file("policy.xml", &SYSTEM.replace("</system>", MEDIATED));
    let file = path.to_str().unwrap();
    let out = strata(&["check", file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = strata(&["verify", file]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("  policy 'app-through-server' (mediated via 'blk_server'): holds\n"), "{report}");
    let out = strata(&["expand", file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains(r#"<policy name="app-through-server" kind="mediated" via="blk_server">"#), "{printed}");
    // The printed system is plain SDF whose policy names declared elements.
    let again = sdf::parse("printed.xml", &printed).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(again.pending_policies.is_empty() && again.policies.len() == 1);
}

#[test]
fn a_policy_naming_a_generated_pd_in_a_system_without_disks_is_one_error() {
    let xml = "<system>\n    <protection_domain name=\"app\">\n        <program_image path=\"app.elf\" />\n    \
               </protection_domain>\n    <memory_region name=\"m\" size=\"0x1000\" />\n    "
        .to_string()
        + &MEDIATED.replace("blk_disk0_dma", "m");
    let path = system_file("nodisk.xml", &xml);
    let file = path.to_str().unwrap();
    for command in ["check", "verify", "expand"] {
        let out = strata(&[command, file]);
        assert!(!out.status.success(), "{command}");
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: policy 'app-through-server' names unknown protection domain 'blk_server': the storage \
                 expansion generates the filter server 'blk_server' only when some block client is not direct, \
                 and no <disk> is declared at {file}:6:55\n"
            ),
            "{command}"
        );
    }
}
