//! A mirror on QEMU (`filter_mirror`): mirror0 keeps disk0 and disk1
//! alike while faulty0 fails the writes of blocks 30 and 31 and the reads
//! of blocks 50 to 59 on disk0. blk_verify writes, flushes and reads back
//! 256 blocks: the two writes fail, and every other block reads back as
//! written, the reads the primary failed from the secondary. Afterwards
//! both images hold every block whose write was answered OK, and the
//! console said once that the mirror is degraded.
//!
//! System: `tests/systems/mirror.xml`.

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks};
use std::time::Duration;

#[test]
fn every_acknowledged_write_is_on_both_disks_and_failed_reads_fail_over() {
    let disks = Disks::fresh();
    let run = boot_to_completion_on(&build_image("tests/systems/mirror.xml", false), &disks, &[], Duration::from_secs(180));
    run.expect_line("verify0: request 30 failed: I/O error");
    run.expect_line("verify0: request 31 failed: I/O error");
    // Blocks 30 and 31 were never written, so their read-back finds no
    // stamp: the only mismatches.
    run.expect_line("verify0: verified 256 blocks, 2 mismatches, failed requests: 2");
    let degraded: Vec<&String> = run.lines.iter().filter(|l| l.contains("the mirror is degraded")).collect();
    assert_eq!(degraded.len(), 1, "said once\n{}", run.transcript());
    assert!(degraded[0].starts_with("mirror0: disk disk0: the primary failed a Write at block 3"), "{}", degraded[0]);
    let failed_over = run.lines.iter().any(|l| l.starts_with("verify0: block 5"));
    assert!(!failed_over, "the reads the primary failed came back right from the secondary\n{}", run.transcript());
    for d in 0..2 {
        let image = disks.read(d);
        for b in (0..256u64).filter(|b| !(30..32).contains(b)) {
            let at = (b * BLOCK as u64) as usize;
            let block: &[u8; BLOCK] = image[at..at + BLOCK].try_into().unwrap();
            assert_eq!(stamp::check("disk0", b, 1, block), Ok(()), "block {b} on disk{d}");
        }
    }
}
