//! Per-block integrity on QEMU (`filter_integrity`): disk0 starts blank and
//! is formatted on first use; blk_verify writes, flushes and reads back
//! 256 blocks. A byte changed on the host image then fails that block's
//! read with an I/O error, named on the console, and never reads back as
//! wrong data; a bit changed in the header is put back from its backup
//! (the disk is not formatted again); QEMU killed after a flush was
//! answered loses nothing the flush covered.
//!
//! Systems: `tests/systems/integrity-verify.xml` (blk_verify),
//! `integrity-check.xml` (blk_check: reads back what an earlier run wrote).

use e2e::{boot_on, boot_to_completion_on, build_image, Disks};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 4096;
/// A 64 MiB disk: the header and its backup, 127 blocks of MACs, 16,255
/// blocks of data.
const TABLE: u64 = 127;
const BLOCKS: u64 = 16_255;
const TIMEOUT: Duration = Duration::from_secs(180);

fn written_and_checked(disks: &Disks) {
    let run = boot_to_completion_on(&build_image("tests/systems/integrity-verify.xml", false), disks, &[], TIMEOUT);
    run.expect_line(&format!("integrity0: disk disk0: formatting: {BLOCKS} blocks, {TABLE} blocks of MACs"));
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
}

#[test]
fn a_block_changed_on_the_image_reads_back_as_an_io_error_never_as_wrong_data() {
    let disks = Disks::fresh();
    disks.blank(0, 64 * MIB);
    written_and_checked(&disks);

    // Flip one byte of the clients' block 10 on the image.
    let mut image = disks.read(0);
    let at = ((2 + TABLE + 10) * BLOCK + 123) as usize;
    image[at] ^= 0x40;
    std::fs::write(&disks.paths[0], &image).unwrap();
    let run = boot_to_completion_on(&build_image("tests/systems/integrity-check.xml", false), &disks, &[], TIMEOUT);
    run.expect_line(&format!("integrity0: disk disk0: {BLOCKS} blocks, checked against {TABLE} blocks of MACs"));
    run.expect_line(&format!(
        "integrity0: disk disk0: block 10 does not match its MAC: the read fails (block {} of the disk below the filter; changed behind the filter, or read while a write of it was in flight)",
        2 + TABLE + 10
    ));
    run.expect_line("verify0: request 10 failed: I/O error");
    run.expect_line("verify0: verified 255 blocks, 0 mismatches, failed requests: 1");
}

#[test]
fn a_header_changed_on_the_image_is_put_back_from_its_backup_and_every_block_still_verifies() {
    let disks = Disks::fresh();
    disks.blank(0, 64 * MIB);
    written_and_checked(&disks);

    // One bit of the header's magic: no header in block 0 any more. The
    // disk must not be taken for a fresh one (formatted, reading zeros).
    let mut image = disks.read(0);
    image[0] ^= 1;
    std::fs::write(&disks.paths[0], &image).unwrap();
    let run = boot_to_completion_on(&build_image("tests/systems/integrity-check.xml", false), &disks, &[], TIMEOUT);
    run.expect_line("integrity0: disk disk0: the header (block 0) does not hold: put back from its backup (block 1)");
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    let image = disks.read(0);
    assert!(image[..BLOCK as usize] == image[BLOCK as usize..2 * BLOCK as usize], "block 0 is its backup again");
}

#[test]
fn what_an_answered_flush_covered_survives_qemu_being_killed() {
    let disks = Disks::fresh();
    disks.blank(0, 64 * MIB);
    // Killed as soon as the flush is answered: nothing after it happens.
    let run = boot_on(&build_image("tests/systems/integrity-verify.xml", false), &disks, &[], Some("verify0: wrote and flushed 256 blocks (generation 1)"), TIMEOUT);
    assert_eq!(run.status, None, "QEMU was killed\n{}", run.transcript());
    let run = boot_to_completion_on(&build_image("tests/systems/integrity-check.xml", false), &disks, &[], TIMEOUT);
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    assert!(!run.lines.iter().any(|l| l.contains("does not match")), "{}", run.transcript());
}

/// A disk that holds something else is not formatted: a volume
/// `cryptsetup luksFormat` made, and the partition table `make run` puts
/// on its default disks, each fail with one line saying what is there,
/// and the image is unchanged byte for byte.
#[test]
fn a_disk_that_holds_a_luks_volume_or_a_partition_table_is_not_formatted() {
    let disks = Disks::fresh();
    let mut c = e2e::host_command("cryptsetup", "cryptsetup-bin");
    c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--pbkdf-force-iterations", "1000", "--key-file=-"]).arg(&disks.paths[1]);
    e2e::run_host(c, b"integrity test passphrase");
    for (disk, what) in [(1, "a LUKS header"), (0, "a partition table or boot sector (a FAT or NTFS file system, an MBR)")] {
        let one = Disks::fresh_n(1);
        std::fs::copy(&disks.paths[disk], &one.paths[0]).unwrap();
        let before = one.read(0);
        let refused = format!("integrity0: disk disk0: blocks 0 and 1 hold {what}, not an integrity header: not formatted, nothing written");
        let run = boot_on(&build_image("tests/systems/integrity-verify.xml", false), &one, &[], Some(&refused), TIMEOUT);
        assert!(run.lines.iter().any(|l| l.starts_with(&refused) && l.ends_with("; every request of the disk fails")), "{}", run.transcript());
        assert!(!run.lines.iter().any(|l| l.contains("formatting")), "{}", run.transcript());
        assert!(one.read(0) == before, "the image is unchanged");
    }
}

/// Integrity above encryption on a volume `cryptsetup luksFormat` just
/// made: the payload, random bytes through crypt0, is formatted (it holds
/// nothing a tool recognises), every block verifies, and on the host the
/// LUKS header still opens.
#[test]
fn integrity_formats_the_payload_of_a_fresh_luks_volume_below_it() {
    let disks = Disks::fresh_n(1);
    let mut c = e2e::host_command("cryptsetup", "cryptsetup-bin");
    c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--pbkdf-force-iterations", "1000", "--key-file=-"]).arg(&disks.paths[0]);
    e2e::run_host(c, b"correct horse battery staple");
    let run = boot_to_completion_on(&build_image("tests/systems/integrity-over-crypt.xml", false), &disks, &[], TIMEOUT);
    run.expect_line("integrity0: disk disk0: blocks 0 and 1 hold no integrity header, and nothing a tool would recognise: the disk is formatted, and what it held reads as zeros");
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    let mut check = e2e::host_command("cryptsetup", "cryptsetup-bin");
    check.arg("isLuks").arg(&disks.paths[0]);
    assert!(check.status().unwrap().success(), "the LUKS header is intact");
}
