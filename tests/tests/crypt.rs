//! LUKS1 encryption on QEMU against the tools nobody here wrote: disk0 is
//! an image `cryptsetup luksFormat --type luks1` made; the host writes into
//! it and reads it back through `qemu-img`'s `luks` driver; `filter_crypt`
//! in disk0's chain opens it with the passphrase.
//!
//! Systems: `tests/systems/crypt-check.xml` (blk_check reads what the host
//! wrote), `crypt-verify.xml` (blk_verify writes, flushes, reads back),
//! `crypt-wrong.xml` (the wrong passphrase); and a system a user writes,
//! run with `make run`.

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, host_command, make, run_host, Disks, Run};
use std::path::Path;
use std::time::Duration;

const PASSPHRASE: &str = "correct horse battery staple";
/// Blocks the clients check (their first 256: `blk_verify`'s limit).
const BLOCKS: u64 = 256;
/// cryptsetup's LUKS1 payload offset, in 4 KiB blocks (sector 4096).
const PAYLOAD: u64 = 512;
const TIMEOUT: Duration = Duration::from_secs(240);

/// Make disk0 a LUKS1 disk of the same size: 512-bit aes-xts-plain64,
/// sha256, cryptsetup timing its PBKDF2 for 200 ms on this host (some
/// hundred thousand iterations: the filter derives them in slices).
fn luks_format(disks: &Disks) {
    let mut c = host_command("cryptsetup", "cryptsetup-bin");
    c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--cipher", "aes-xts-plain64", "--key-size", "512", "--hash", "sha256"]);
    c.args(["--iter-time", "200", "--key-file=-"]).arg(&disks.paths[0]);
    run_host(c, PASSPHRASE.as_bytes());
}

fn secret() -> String {
    format!("secret,id=sec0,data={PASSPHRASE}")
}

fn luks_opts(image: &Path) -> String {
    format!("driver=luks,key-secret=sec0,file.filename={}", image.display())
}

/// The first `BLOCKS` blocks of the payload, decrypted by QEMU.
fn qemu_decrypt(image: &Path) -> Vec<u8> {
    let out = image.with_extension("plain");
    let mut c = host_command("qemu-img", "qemu-utils");
    c.args(["convert", "--object", &secret(), "--image-opts", &luks_opts(image), "-O", "raw"]).arg(&out);
    run_host(c, b"");
    let mut bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    bytes.truncate(BLOCKS as usize * BLOCK);
    bytes
}

/// Write `plain` at the start of the payload, encrypted by QEMU.
fn qemu_encrypt(image: &Path, plain: &[u8]) {
    let raw = image.with_extension("stamps");
    std::fs::write(&raw, plain).unwrap();
    let mut c = host_command("qemu-img", "qemu-utils");
    c.args(["convert", "-n", "--object", &secret(), "-f", "raw"]).arg(&raw);
    c.args(["--target-image-opts", &luks_opts(image)]);
    run_host(c, b"");
    std::fs::remove_file(raw).unwrap();
}

/// Generation-1 stamps of disk0's first `BLOCKS` blocks, as a verify client
/// writes them.
fn stamps() -> Vec<u8> {
    let mut all = vec![0u8; BLOCKS as usize * BLOCK];
    for (b, chunk) in all.chunks_mut(BLOCK).enumerate() {
        stamp::stamp("disk0", b as u64, 1, chunk.try_into().unwrap());
    }
    all
}

fn boot(system: &str, disks: &Disks) -> Run {
    let run = boot_to_completion_on(&build_image(system, false), disks, &[], TIMEOUT);
    assert_eq!(run.status, Some(0), "{system} powered off cleanly\n{}", run.transcript());
    run
}

/// The filter opened the disk and offered its payload.
fn assert_opened(run: &Run, disks: &Disks) {
    let blocks = std::fs::metadata(&disks.paths[0]).unwrap().len() / BLOCK as u64 - PAYLOAD;
    run.expect_line(&format!("crypt0: disk disk0: opened key slot 0 (aes-xts-plain64, 512-bit key, sha256); the payload is {blocks} blocks from block {PAYLOAD}"));
    run.expect_line(&format!("blk_server: filter crypt0 is set up: it offers {blocks} blocks from block {PAYLOAD} of the disk below it"));
}

#[test]
fn the_filter_reads_what_qemu_wrote_through_its_luks_driver() {
    let disks = Disks::fresh();
    luks_format(&disks);
    qemu_encrypt(&disks.paths[0], &stamps());
    let run = boot("tests/systems/crypt-check.xml", &disks);
    assert_opened(&run, &disks);
    run.expect_line(&format!("check0: verified {BLOCKS} blocks, 0 mismatches"));
}

#[test]
fn what_the_filter_writes_qemu_decrypts_and_the_image_holds_no_plaintext() {
    let disks = Disks::fresh();
    luks_format(&disks);
    let header = disks.read(0)[..PAYLOAD as usize * BLOCK].to_vec();
    let run = boot("tests/systems/crypt-verify.xml", &disks);
    assert_opened(&run, &disks);
    run.expect_line(&format!("verify0: verified {BLOCKS} blocks, 0 mismatches"));
    assert!(qemu_decrypt(&disks.paths[0]) == stamps(), "QEMU's luks driver finds every stamp the client wrote");
    let raw = disks.read(0);
    assert!(raw[..PAYLOAD as usize * BLOCK] == header[..], "the header and key slots are untouched");
    assert!(!raw.windows(8).any(|w| w == stamp::MAGIC), "no plaintext stamp on the image");
}

#[test]
fn a_wrong_passphrase_fails_the_disk_cleanly_and_writes_nothing() {
    let disks = Disks::fresh();
    luks_format(&disks);
    let before = disks.read(0);
    let run = boot("tests/systems/crypt-wrong.xml", &disks);
    run.expect_line("crypt0: disk disk0: no LUKS key slot opens with this passphrase; every request of the disk fails, nothing is written");
    run.expect_prefix("blk_server: filter crypt0 could not be set up: it refused the disk");
    run.expect_line("verify0: disk0 has 0 blocks; checking 0");
    assert!(disks.read(0) == before, "nothing was written");
}

/// The smallest system a user writes for an encrypted disk: the filter
/// with its passphrase and one verify client, which may power off; nothing
/// else (no monitor).
const USER_SYSTEM: &str = r#"<?xml version="1.0"?>
<system>
    <disk name="disk0" virtio_slot="31">
        <filter name="crypt0" program="filter_crypt" data="read-write">
            <param key="passphrase" value="correct horse battery staple" />
        </filter>
    </disk>
    <protection_domain name="app" priority="60" can_power_off="true">
        <program_image path="blk_verify" />
        <block_client disk="disk0" />
    </protection_domain>
</system>
"#;

#[test]
fn make_run_of_a_users_system_verifies_through_the_filter_and_ends_by_itself() {
    let disks = Disks::fresh();
    luks_format(&disks);
    let system = disks.dir.join("user-crypt.xml");
    std::fs::write(&system, USER_SYSTEM).unwrap();
    let out = make(&["run", &format!("SYSTEM={}", system.display()), &format!("DISKS={}", disks.paths[0].display())]);
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "make run ends with status 0 (status {:?})\n{console}{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert!(console.lines().any(|l| l == format!("app: verified {BLOCKS} blocks, 0 mismatches")), "{console}");
    assert!(qemu_decrypt(&disks.paths[0]) == stamps(), "QEMU's luks driver finds every stamp the client wrote");
}

#[test]
fn make_run_of_a_check_on_a_disk_the_filter_refused_fails() {
    // Nothing checked is no success: a blk_check client (it writes
    // nothing, so no failed flush says it) on a disk whose passphrase is
    // wrong ends the run with status 1.
    let disks = Disks::fresh();
    luks_format(&disks);
    let before = disks.read(0);
    let system = disks.dir.join("user-check.xml");
    std::fs::write(&system, USER_SYSTEM.replace("correct horse battery staple", "wrong").replace("blk_verify", "blk_check")).unwrap();
    let out = make(&["run", &format!("SYSTEM={}", system.display()), &format!("DISKS={}", disks.paths[0].display())]);
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(!out.status.success(), "make run fails\n{console}");
    assert!(console.lines().any(|l| l == "app: nothing to check: disk0 has no blocks"), "{console}");
    assert!(disks.read(0) == before, "nothing was written");
}

/// Writes of 32 blocks, up to 32 at a time, through a filter whose budget
/// (10 ms) is less than encrypting all of them takes: split over upcalls,
/// none runs past it, and QEMU's luks driver reads back what was copied.
#[test]
fn large_batches_are_split_within_the_filters_budget() {
    let disks = Disks::fresh();
    // disk0, the source: the stamps, then zeros; disk1 a LUKS1 image.
    let mut source = stamps();
    source.resize(16 * 1024 * BLOCK / 4, 0);
    std::fs::write(&disks.paths[0], &source).unwrap();
    let mut c = host_command("cryptsetup", "cryptsetup-bin");
    c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--cipher", "aes-xts-plain64", "--key-size", "512", "--hash", "sha256"]);
    c.args(["--iter-time", "200", "--key-file=-"]).arg(&disks.paths[1]);
    run_host(c, PASSPHRASE.as_bytes());
    let run = boot("tests/systems/crypt-dump.xml", &disks);
    assert!(!run.lines.iter().any(|l| l.contains("ran past its call budget") || l.contains("stopped")), "{}", run.transcript());
    run.expect_prefix("blk_dump: copied 4096 blocks");
    assert!(qemu_decrypt(&disks.paths[1]) == stamps(), "QEMU's luks driver reads the stamps back");
}
