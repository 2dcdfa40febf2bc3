//! The `strata` commands on a system with storage declarations: every one
//! works on the expanded system, and every one validates it first, as
//! `check` does. A plain Microkit system with a driver verifies as written.

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
             error: block_client of protection domain 'app' names unknown disk 'disk9' (declared: disk0) at {file}:5:23\n"
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

/// Every command that reads a system.
const COMMANDS: [&str; 4] = ["check", "expand", "verify", "graph"];

/// Run every command on `path`: each must fail, print nothing on standard
/// output and exactly `errors` on standard error.
fn every_command_rejects(path: &std::path::Path, errors: &str) {
    for command in COMMANDS {
        let out = strata(&[command, path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "", "{command}");
        assert_eq!(text(&out.stderr), errors, "{command}");
    }
}

#[test]
fn verify_and_graph_reject_a_system_with_two_pds_of_one_name_as_check_does() {
    let xml = SYSTEM.replace("</system>", "<protection_domain name=\"app\"><program_image path=\"b\" /></protection_domain>\n</system>");
    let path = system_file("duplicate.xml", &xml);
    let file = path.to_str().unwrap();
    every_command_rejects(
        &path,
        &format!(
            "error: duplicate protection domain name 'app' (first declared at line 3) at {file}:7:1\n"
        ),
    );
}

#[test]
fn verify_and_graph_reject_overlapping_maps_as_check_does() {
    let xml = r#"<system>
    <memory_region name="a" size="0x2000" />
    <memory_region name="b" size="0x1000" />
    <protection_domain name="app">
        <program_image path="app.elf" />
        <map mr="a" vaddr="0x1000000" />
        <map mr="b" vaddr="0x1001000" />
    </protection_domain>
</system>
"#;
    let path = system_file("overlap.xml", xml);
    let check = strata(&["check", path.to_str().unwrap()]);
    let errors = text(&check.stderr);
    assert!(errors.starts_with("error: ") && errors.contains("overlap"), "{errors}");
    assert!(errors.ends_with(&format!(" at {}:7:9\n", path.display())), "{errors}");
    every_command_rejects(&path, &errors);
}

#[test]
fn a_file_that_is_not_utf8_is_an_error_with_its_line_and_column() {
    // A Latin-1 'é' in a comment on line 3.
    let xml = SYSTEM.replace("<program_image", "<!-- caf\u{e9} --> <program_image");
    let bytes = xml.replace('\u{e9}', "\u{1}").into_bytes();
    let bytes: Vec<u8> = bytes.into_iter().map(|b| if b == 1 { 0xe9 } else { b }).collect();
    let path = system_file("latin1.xml", "");
    std::fs::write(&path, bytes).unwrap();
    every_command_rejects(
        &path,
        &format!(
            "error: the file is not UTF-8: byte 0xe9 here is not part of a UTF-8 character; save the system \
             description as UTF-8 at {}:4:17\n",
            path.display()
        ),
    );
}

#[test]
fn a_namespaced_root_element_is_an_error() {
    let xml = SYSTEM.replace("<system>", "<x:system xmlns:x=\"urn:example:sdf\">").replace("</system>", "</x:system>");
    let path = system_file("namespaced.xml", &xml);
    every_command_rejects(
        &path,
        &format!(
            "error: element 'x:system' is in the XML namespace 'urn:example:sdf': a system description uses no \
             namespaces; write <system> without a prefix or xmlns at {}:1:1\n",
            path.display()
        ),
    );
}

/// A plain Microkit system: a UART driver maps the UART's registers
/// (outside RAM) uncached and binds its interrupt; no `<device>`.
const MICROKIT_UART: &str = r#"<system>
    <memory_region name="uart" size="0x1000" phys_addr="0x9000000" />
    <protection_domain name="uart_driver" priority="200">
        <program_image path="uart.elf" />
        <map mr="uart" vaddr="0x2000000" perms="rw" cached="false" setvar_vaddr="uart_base" />
        <irq irq="33" id="1" />
    </protection_domain>
    <protection_domain name="client" priority="100">
        <program_image path="client.elf" />
    </protection_domain>
    <channel>
        <end pd="client" id="0" />
        <end pd="uart_driver" id="0" />
    </channel>
</system>
"#;

#[test]
fn a_microkit_system_with_a_driver_verifies_as_written() {
    let path = system_file("microkit.xml", MICROKIT_UART);
    let out = strata(&["verify", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("  unowned-hardware     ok\n"), "{}", text(&out.stdout));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn device_memory_a_second_pd_maps_without_a_device_fails_verify_with_a_witness() {
    let xml = MICROKIT_UART.replace(
        "<program_image path=\"client.elf\" />",
        "<program_image path=\"client.elf\" />\n        <map mr=\"uart\" vaddr=\"0x2000000\" perms=\"r\" cached=\"false\" />",
    );
    let path = system_file("shared_uart.xml", &xml);
    let file = path.to_str().unwrap();
    assert!(strata(&["check", file]).status.success(), "a valid system");
    let out = strata(&["verify", file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "violation: unowned-hardware: memory region 'uart' at physical [0x9000000..0x9001000) lies outside RAM \
             and more than one PD uses it ('uart_driver', 'client') with no device claiming it: declare a <device> \
             that claims it and names its owners (memory_region at {file}:2:5): uart_driver -> [maps rw uncached \
             (map at {file}:5:9)] -> region 'uart'; client -> [maps r uncached (map at {file}:10:9)] -> region \
             'uart'\n"
        )
    );
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
