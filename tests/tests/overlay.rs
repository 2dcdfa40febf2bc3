//! Linked clones on QEMU (`filter_overlay`): clone0 (disk0) is a clone of
//! base0 (disk1). The clone writes some blocks and reads them back; after
//! a reboot `blk_dump` copies the whole clone to disk2, with reads that
//! mix the clone's blocks and the base's. The copy holds the clone's
//! blocks where it wrote and the base's everywhere else, and the base
//! image is byte for byte what the host wrote.
//!
//! Systems: `tests/systems/overlay-verify.xml` (blk_verify on the clone's
//! blocks 100 to 355), `overlay-dump.xml` (blk_dump of the clone).

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks};
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// Every disk is 64 MiB.
const DISK_BLOCKS: u64 = 64 * MIB / BLOCK as u64;
/// The clone's blocks: its disk less the header, its backup and one map
/// block.
const CLONE_BLOCKS: u64 = DISK_BLOCKS - 3;
/// The blocks blk_verify writes (its first and its count).
const FIRST: u64 = 100;
const WRITTEN: u64 = 256;
const TIMEOUT: Duration = Duration::from_secs(180);

/// Block `b` of the base as the host writes it: no stamp.
fn base_block(b: u64) -> Vec<u8> {
    (0..BLOCK as u64 / 8).flat_map(|w| (b << 32 | w | 0xba5e_0000_0000_0000).to_le_bytes()).collect()
}

fn written(b: u64) -> bool {
    (FIRST..FIRST + WRITTEN).contains(&b)
}

#[test]
fn a_clone_reads_its_own_blocks_and_the_base_for_the_rest_and_never_writes_the_base() {
    let disks = Disks::fresh_n(3);
    let base: Vec<u8> = (0..DISK_BLOCKS).flat_map(base_block).collect();
    std::fs::write(&disks.paths[1], &base).unwrap();
    // A fresh clone: zeros, which the filter formats.
    disks.blank(0, 64 * MIB);

    let run = boot_to_completion_on(&build_image("tests/systems/overlay-verify.xml", false), &disks, &[], TIMEOUT);
    // (Its disk is the base's size: the base's last 3 blocks are out of
    // its reach, and it says so.)
    run.expect_line(&format!(
        "overlay0: disk clone0: formatting a clone of {CLONE_BLOCKS} blocks (1 map blocks); the base has {DISK_BLOCKS}: its last 3 are out of the clone's reach (a clone disk of {} blocks would reach them all)",
        DISK_BLOCKS + 3
    ));
    run.expect_line("verify0: wrote and flushed 256 blocks (generation 1)");
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    assert!(disks.read(1) == base, "the base was written");
    // The clone's own disk holds its blocks after its header, backup and
    // map.
    let clone = disks.read(0);
    for b in FIRST..FIRST + WRITTEN {
        let at = ((3 + b) * BLOCK as u64) as usize;
        let block: &[u8; BLOCK] = clone[at..at + BLOCK].try_into().unwrap();
        assert_eq!(stamp::check("clone0", b, 1, block), Ok(()), "the clone's block {b} on its own disk");
    }

    // Another boot: the map was flushed, so the clone still knows its own.
    disks.blank(2, 64 * MIB);
    let run = boot_to_completion_on(&build_image("tests/systems/overlay-dump.xml", false), &disks, &[], TIMEOUT);
    run.expect_line(&format!("overlay0: disk clone0: a clone of {CLONE_BLOCKS} blocks, {WRITTEN} of them its own"));
    run.expect_prefix(&format!("blk_dump: copied {CLONE_BLOCKS} blocks"));
    let copy = disks.read(2);
    let mut wrong = Vec::new();
    for b in 0..CLONE_BLOCKS {
        let at = (b * BLOCK as u64) as usize;
        let block: &[u8; BLOCK] = copy[at..at + BLOCK].try_into().unwrap();
        let ok = if written(b) { stamp::check("clone0", b, 1, block).is_ok() } else { block[..] == base_block(b)[..] };
        if !ok {
            wrong.push(b);
        }
    }
    assert!(wrong.is_empty(), "{} blocks of the clone read wrong, the first {:?}\n{}", wrong.len(), &wrong[..wrong.len().min(8)], run.transcript());
    assert!(disks.read(1) == base, "the base was written");
}

#[test]
fn two_clones_share_one_base_and_keep_their_own_blocks_apart() {
    let disks = Disks::fresh_n(3);
    let base: Vec<u8> = (0..DISK_BLOCKS).flat_map(base_block).collect();
    std::fs::write(&disks.paths[2], &base).unwrap();
    disks.blank(0, 64 * MIB);
    disks.blank(1, 64 * MIB);
    let run = boot_to_completion_on(&build_image("tests/systems/overlay-two.xml", false), &disks, &[], TIMEOUT);
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    run.expect_line("verify1: verified 256 blocks, 0 mismatches");
    assert!(disks.read(2) == base, "the base was written");
    for (d, name, first) in [(0, "clone0", FIRST), (1, "clone1", 0)] {
        let clone = disks.read(d);
        for b in first..first + WRITTEN {
            let at = ((3 + b) * BLOCK as u64) as usize;
            let block: &[u8; BLOCK] = clone[at..at + BLOCK].try_into().unwrap();
            assert_eq!(stamp::check(name, b, 1, block), Ok(()), "{name}'s block {b} on its own disk");
        }
    }
}

#[test]
fn a_clone_image_larger_than_its_base_offers_the_base_s_size() {
    // A 1 GiB blank image, as `make run` makes a missing one.
    let disks = Disks::fresh_n(2);
    disks.blank(0, 1024 * MIB);
    let run = boot_to_completion_on(&build_image("tests/systems/overlay-verify.xml", false), &disks, &[], TIMEOUT);
    run.expect_line(&format!("overlay0: disk clone0: formatting a clone of {DISK_BLOCKS} blocks (8 map blocks)"));
    run.expect_line(&format!("verify0: clone0 has {DISK_BLOCKS} blocks; checking 256"));
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
}
