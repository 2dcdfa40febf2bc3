//! Printing never panics: when the reader of standard output or standard
//! error goes away, every command stops quietly with status 141 (what a
//! shell reports for a tool that `SIGPIPE` ended), and a closed descriptor
//! swallows what is written to it.

use std::io::{BufRead, BufReader, PipeWriter};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// 128 + SIGPIPE.
const BROKEN_PIPE: i32 = 141;

const SYSTEM: &str = r#"<system>
    <disk name="disk0" virtio_slot="31" />
    <protection_domain name="app" priority="100">
        <program_image path="app.elf" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#;

/// Two PDs of one name: `check` rejects it.
const INVALID: &str = r#"<system>
    <protection_domain name="app"><program_image path="a.elf" /></protection_domain>
    <protection_domain name="app"><program_image path="b.elf" /></protection_domain>
</system>
"#;

/// Write `xml` to a file of its own and return its path. (Beside it, the
/// programs the systems name, so that no warning of a missing one is
/// printed where the project's programs are built.)
fn system_file(name: &str, xml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-closed-output-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for program in ["app.elf", "a.elf", "b.elf"] {
        std::fs::write(dir.join(program), "").unwrap();
    }
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

/// A system whose expansion prints megabytes: more than any pipe holds.
fn big_system() -> PathBuf {
    let regions: String = (0..20_000).map(|i| format!("    <memory_region name=\"r{i}\" size=\"0x1000\" />\n")).collect();
    system_file("big.xml", &SYSTEM.replace("</system>", &(regions + "</system>")))
}

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE.
fn reader_gone() -> PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The image checker's fixtures: a kernel and programs to build with.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/imagecheck/tests/fixtures")
}

/// Every command, each with arguments that make it print to standard
/// output and succeed; its files named after `test`, so that tests running
/// at once never write a file another one reads.
fn every_command(test: &str) -> Vec<Vec<String>> {
    let system = system_file(&format!("{test}.xml"), SYSTEM).display().to_string();
    let f = fixtures();
    let image = system_file(&format!("{test}.elf"), "").display().to_string();
    let path = |name: &str| f.join(name).display().to_string();
    let build = ["build", &path("default.xml"), "--kernel", &path("kernel"), "--search-path", &path(""), "-o", &image];
    let mut commands: Vec<Vec<String>> =
        ["check", "expand", "verify", "graph"].iter().map(|c| vec![c.to_string(), system.clone()]).collect();
    commands.push(build.iter().map(|s| s.to_string()).collect());
    commands.push(vec!["--help".into()]);
    commands.push(vec!["help".into(), "verify".into()]);
    commands
}

#[test]
fn expand_into_a_reader_that_stops_after_one_line_ends_quietly() {
    // `strata expand big.xml | head -1`
    let path = big_system();
    let mut child = strata()
        .args(["expand", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(first, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    assert_eq!(text(&out.stderr), "", "no panic, no message");
    assert_eq!(out.status.code(), Some(BROKEN_PIPE), "{:?}", out.status);
}

#[test]
fn every_command_ends_quietly_when_standard_output_has_no_reader() {
    for args in every_command("no_reader") {
        let out = strata().args(&args).stdout(reader_gone()).output().expect("strata runs");
        assert_eq!(text(&out.stderr), "", "{args:?}: no panic, no message");
        assert_eq!(out.status.code(), Some(BROKEN_PIPE), "{args:?}: {:?}", out.status);
    }
}

#[test]
fn every_command_still_works_with_standard_output_as_dev_null() {
    // The same commands succeed when output is only thrown away.
    for args in every_command("dev_null") {
        let out = strata().args(&args).stdout(Stdio::null()).output().expect("strata runs");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn errors_into_a_standard_error_without_reader_end_quietly() {
    let invalid = system_file("invalid.xml", INVALID);
    let missing = system_file("missing.xml", "").with_extension("absent");
    for (command, path) in [("check", &invalid), ("verify", &invalid), ("graph", &invalid), ("expand", &missing)] {
        let out = strata().args([command, path.to_str().unwrap()]).stderr(reader_gone()).output().expect("strata runs");
        assert_eq!(text(&out.stdout), "", "{command}");
        assert_eq!(out.status.code(), Some(BROKEN_PIPE), "{command}: {:?}", out.status);
    }
    // A usage error goes to standard error too.
    let out = strata().arg("--no-such-option").stderr(reader_gone()).output().expect("strata runs");
    assert_eq!(out.status.code(), Some(BROKEN_PIPE), "{:?}", out.status);
}

#[test]
fn a_violation_into_a_standard_error_without_reader_ends_quietly_after_the_report() {
    // Device memory two PDs map with no device naming them: the report goes
    // to standard output, the violation to the closed standard error.
    let xml = r#"<system>
    <memory_region name="uart" size="0x1000" phys_addr="0x9000000" />
    <protection_domain name="a"><program_image path="a.elf" /><map mr="uart" vaddr="0x2000000" cached="false" /></protection_domain>
    <protection_domain name="b"><program_image path="b.elf" /><map mr="uart" vaddr="0x2000000" cached="false" /></protection_domain>
</system>
"#;
    let path = system_file("shared_uart.xml", xml);
    let out = strata().args(["verify", path.to_str().unwrap()]).stderr(reader_gone()).output().expect("strata runs");
    assert!(text(&out.stdout).ends_with("result: 1 violation\n"), "{}", text(&out.stdout));
    assert_eq!(out.status.code(), Some(BROKEN_PIPE), "{:?}", out.status);
}

/// Run `script` with `sh`, `$STRATA` the tool.
fn sh(script: &str) -> Output {
    Command::new("sh").args(["-c", script]).env("STRATA", env!("CARGO_BIN_EXE_strata")).output().expect("sh runs")
}

#[test]
fn closed_descriptors_swallow_the_output_and_keep_the_status() {
    let valid = system_file("valid.xml", SYSTEM);
    let invalid = system_file("closed_invalid.xml", INVALID);
    for command in ["check", "expand", "verify", "graph"] {
        let out = sh(&format!("\"$STRATA\" {command} '{}' >&-", valid.display()));
        assert_eq!((out.status.code(), text(&out.stderr)), (Some(0), String::new()), "{command} >&-");
        let out = sh(&format!("\"$STRATA\" {command} '{}' 2>&-", invalid.display()));
        assert_eq!((out.status.code(), text(&out.stdout)), (Some(1), String::new()), "{command} 2>&-");
    }
}

#[test]
fn a_full_disk_under_standard_output_is_an_error_that_says_so() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
    let path = system_file("full.xml", SYSTEM);
    let out = strata().args(["expand", path.to_str().unwrap()]).stdout(full).output().expect("strata runs");
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    assert_eq!(text(&out.stderr), "error: cannot write to standard output: No space left on device (os error 28)\n");
}
