//! `blk_dump` copies a whole disk to the start of another, byte for byte,
//! and ends with its line and power-off status 0; a destination smaller
//! than the source is refused before anything is written, and a read or
//! write the device fails is reported, each with one line and status 1.
//! A destination image `scripts/qemu.sh` finds missing is made blank.
//!
//! System: `tests/systems/dump.xml` (dump_reader on disk0, dump_writer on
//! disk1). disk0 is a 64 MiB image whose first 16 MiB and last block the
//! test fills with a per-block pattern.

use blk_clients::stamp::BLOCK;
use e2e::{boot_on, boot_to_completion_on, build_image, Disks, Run};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const SYSTEM: &str = "tests/systems/dump.xml";
const MIB: usize = 1 << 20;
/// disk0 as `Disks::fresh` makes it.
const SOURCE: usize = 64 * MIB;
const SOURCE_BLOCKS: usize = SOURCE / BLOCK;
const TIMEOUT: Duration = Duration::from_secs(120);
/// Each guest request is one device request, so an injected error fails
/// exactly the request that holds its sector.
const NO_MERGING: &[&str] = &["-global", "virtio-blk-device.request-merging=off"];
const COPIED: &str = "blk_dump: copied 16384 blocks (64 MiB) from disk0 to disk1";

/// Block `b` of the pattern: its number and a position in each 8 bytes.
fn pattern_block(b: usize) -> Vec<u8> {
    (0..BLOCK / 8).flat_map(|w| ((b as u64) << 32 | w as u64 | 0xd0_0000).to_le_bytes()).collect()
}

/// Fill disk0's first 16 MiB and its last block with the pattern; return
/// its bytes.
fn patterned_source(disks: &Disks) -> Vec<u8> {
    let mut disk = disks.read(0);
    assert_eq!(disk.len(), SOURCE);
    for b in (0..16 * MIB / BLOCK).chain([SOURCE_BLOCKS - 1]) {
        disk[b * BLOCK..(b + 1) * BLOCK].copy_from_slice(&pattern_block(b));
    }
    std::fs::write(&disks.paths[0], &disk).unwrap();
    disk
}

/// The first block where `copy` differs from `source`, if any.
fn first_difference(source: &[u8], copy: &[u8]) -> Option<usize> {
    (0..source.len() / BLOCK).find(|&b| source[b * BLOCK..(b + 1) * BLOCK] != copy[b * BLOCK..(b + 1) * BLOCK])
}

fn assert_failed(run: &Run, line: &str) {
    assert!(!run.timed_out, "QEMU did not finish\n{}", run.transcript());
    assert_eq!(run.status, Some(1), "a failed dump powers off with status 1\n{}", run.transcript());
    run.expect_line(line);
    let said: Vec<&str> = run.lines_of("blk_dump");
    assert_eq!(said.iter().filter(|l| !l.starts_with("copying ")).count(), 1, "one line about the end\n{}", run.transcript());
    assert!(!said.iter().any(|l| l.starts_with("copied ")), "{}", run.transcript());
}

#[test]
fn a_whole_disk_is_copied_to_the_start_of_a_larger_blank_one() {
    let disks = Disks::fresh();
    let source = patterned_source(&disks);
    disks.blank(1, 128 * MIB as u64);
    let run = boot_to_completion_on(&build_image(SYSTEM, false), &disks, &[], TIMEOUT);
    run.expect_in_order(&["blk_dump: copying disk0 (16384 blocks, 64 MiB) to disk1 (32768 blocks, 128 MiB)", COPIED]);
    assert_eq!(run.lines.last().map(String::as_str), Some(COPIED), "the copied line is the last\n{}", run.transcript());

    let dest = disks.read(1);
    assert_eq!(dest.len(), 128 * MIB, "the destination keeps its size");
    assert_eq!(first_difference(&source, &dest[..SOURCE]), None, "disk1's first 64 MiB differ from disk0");
    assert!(dest[SOURCE..].iter().all(|&b| b == 0), "past the copy disk1 is still blank");
    assert!(disks.read(0) == source, "disk0 is only read");
}

#[test]
fn a_destination_smaller_than_the_source_is_left_untouched() {
    let disks = Disks::fresh();
    patterned_source(&disks);
    // Not blank, so that any write would show.
    let before: Vec<u8> = (0..8 * MIB).map(|i| (i % 251) as u8).collect();
    std::fs::write(&disks.paths[1], &before).unwrap();
    let run = boot_on(&build_image(SYSTEM, false), &disks, &[], None, TIMEOUT);
    assert_failed(&run, "blk_dump: disk1 has 2048 blocks (8 MiB), fewer than the 16384 blocks (64 MiB) of disk0: copied nothing");
    assert!(!run.lines.iter().any(|l| l.starts_with("blk_dump: copying")), "{}", run.transcript());
    assert!(disks.read(1) == before, "disk1 was written");
}

#[test]
fn a_read_the_device_fails_is_reported_and_nothing_after_it_is_written() {
    let mut disks = Disks::fresh();
    patterned_source(&disks);
    disks.blank(1, 128 * MIB as u64);
    // Block 5000 (sector 40000): the read of blocks 4992..5024 fails.
    disks.inject(0, "[inject-error]\nevent = \"read_aio\"\niotype = \"read\"\nsector = \"40000\"\nerrno = \"5\"\nonce = \"on\"\n");
    let run = boot_on(&build_image(SYSTEM, false), &disks, NO_MERGING, None, TIMEOUT);
    assert_failed(&run, "blk_dump: read of 32 blocks at block 4992 of disk0 failed: I/O error (1 request failed); disk1 is incomplete");
    // Chunks go over whole and in order: from chunk 19 (block 4864), the
    // one with the failed read, nothing reached disk1.
    let dest = disks.read(1);
    assert!(dest[4864 * BLOCK..].iter().all(|&b| b == 0), "disk1 holds blocks of the chunk that failed or later");
}

#[test]
fn a_write_the_device_fails_is_reported() {
    let mut disks = Disks::fresh();
    patterned_source(&disks);
    disks.blank(1, 128 * MIB as u64);
    // Block 3000 (sector 24000): the write of blocks 2976..3008 fails.
    disks.inject(1, "[inject-error]\nevent = \"write_aio\"\niotype = \"write\"\nsector = \"24000\"\nerrno = \"5\"\nonce = \"on\"\n");
    let run = boot_on(&build_image(SYSTEM, false), &disks, NO_MERGING, None, TIMEOUT);
    assert_failed(&run, "blk_dump: write of 32 blocks at block 2976 of disk1 failed: I/O error (1 request failed); disk1 is incomplete");
}

#[test]
fn a_missing_destination_image_is_made_blank_1_gib_and_the_copy_lands_on_it() {
    let disks = Disks::fresh();
    let source = patterned_source(&disks);
    std::fs::remove_file(&disks.paths[1]).unwrap();
    let run = boot_to_completion_on(&build_image(SYSTEM, false), &disks, &[], TIMEOUT);
    run.expect_in_order(&["blk_dump: copying disk0 (16384 blocks, 64 MiB) to disk1 (262144 blocks, 1024 MiB)", COPIED]);
    let meta = std::fs::metadata(&disks.paths[1]).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    assert!(meta.blocks() * 512 < 512 * MIB as u64, "the blank image is sparse: {} bytes allocated", meta.blocks() * 512);
    let dest = disks.read(1);
    assert_eq!(first_difference(&source, &dest[..SOURCE]), None);
    assert!(dest[SOURCE..].iter().all(|&b| b == 0));
}

/// A missing destination behind a source larger than 1 GiB is made 1/16
/// larger than the source, so the copy of a large disk fits. (QEMU is
/// given an option it does not know, which it refuses once the disks are
/// made.)
#[test]
fn a_missing_destination_behind_a_large_source_is_made_larger_than_it() {
    let disks = Disks::fresh();
    let (source, dest) = (&disks.paths[0], &disks.paths[1]);
    std::fs::File::options().write(true).open(source).unwrap().set_len(2 << 30).unwrap();
    std::fs::remove_file(dest).unwrap();
    let kernel = disks.dir.join("empty.elf");
    std::fs::write(&kernel, b"").unwrap();
    let run = std::process::Command::new(e2e::root().join("scripts/qemu.sh"))
        .arg(&kernel)
        .arg("-no-such-option")
        .env("DISKS", format!("{} {}", source.display(), dest.display()))
        .output()
        .unwrap();
    assert!(!run.status.success(), "QEMU took an option it does not have");
    let meta = std::fs::metadata(dest).unwrap();
    assert_eq!(meta.len(), (2 << 30) + (2 << 30) / 16);
    assert!(meta.blocks() * 512 < MIB as u64, "the blank image is sparse");
}
