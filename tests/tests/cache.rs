//! The read cache (`filter_cache`) on QEMU: what a client reads through it
//! is what it wrote, or what the disk holds; what it writes lands on the
//! image; a read of a block the cache holds is answered by the filter and
//! never reaches the disk; a cache asked for more memory than it has is
//! refused at its param before anything is built.
//!
//! Systems: `tests/systems/cache.xml` (blk_verify writes, flushes and
//! reads back through a cache of 1024 blocks: every read hits),
//! `cache-check.xml` (blk_check reads what the host wrote through a cache
//! of 64 blocks: every read misses and fills), `cache-bad.xml` (a
//! `blocks` param too large).

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks, Run};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
/// Blocks the clients check (`blk_verify`'s limit).
const BLOCKS: usize = 256;
/// Partition 1 of a fresh disk: sector 2048.
const PARTITION1: usize = 2048 * 512;

fn boot(system: &str, disks: &Disks) -> Run {
    let run = boot_to_completion_on(&build_image(system, false), disks, &[], TIMEOUT);
    assert_eq!(run.status, Some(0), "{system} powered off cleanly\n{}", run.transcript());
    run
}

/// The server's statistics of cache0 (from the probe's `Report`): its
/// verdicts `(continue, complete, fail)` and errors.
fn verdicts(run: &Run) -> (u64, u64, u64, u64) {
    let line = run.lines_of("blk_server").into_iter().find_map(|l| l.strip_prefix("disk0 filter cache0: "));
    let line = line.unwrap_or_else(|| panic!("the server reports cache0\n{}", run.transcript()));
    let n = |after: &str, before: &str| -> u64 {
        let (_, rest) = line.split_once(after).unwrap_or_else(|| panic!("{after:?} in {line:?}"));
        rest.split_once(before).unwrap().0.parse().unwrap()
    };
    (n("verdicts: ", " continue"), n("substitute, ", " complete"), n("complete, ", " fail"), n("fail; ", " errors"))
}

fn stamps(disk: &str, blocks: usize) -> Vec<u8> {
    let mut out = vec![0u8; blocks * BLOCK];
    for (b, chunk) in out.chunks_mut(BLOCK).enumerate() {
        stamp::stamp(disk, b as u64, 1, chunk.try_into().unwrap());
    }
    out
}

#[test]
fn blocks_written_through_the_cache_are_read_back_from_it_and_land_on_the_disk() {
    let disks = Disks::fresh();
    let run = boot("tests/systems/cache.xml", &disks);
    assert_eq!(run.lines_of("verify0").last(), Some(&"verified 256 blocks, 0 mismatches"), "{}", run.transcript());
    // At the flush every write had completed and was kept; nothing was
    // read yet.
    run.expect_line("cache0: 0 hits, 0 misses; 256 of 1024 blocks cached, 256 filled, 0 not filled (overlapping writes), 0 evicted");
    run.expect_line("probe0: write of block 0 of disk0: ok");
    run.expect_line("probe0: read of block 0 of disk0: ok");
    // Every read completed in the cache (verify0's 256 and the probe's
    // one); no verdict failed and the filter made no error.
    let (_, complete, fail, errors) = verdicts(&run);
    assert_eq!((complete, fail, errors), (257, 0, 0), "{}", run.transcript());
    // At the report, after the server's line for it, the filter's own
    // counters: the 257 hits, no miss; the probe's write was kept too.
    let server_line = run.expect_prefix("blk_server: disk0 filter cache0: ");
    let own = run.expect_line("cache0: 257 hits, 0 misses; 256 of 1024 blocks cached, 257 filled, 0 not filled (overlapping writes), 0 evicted");
    assert_eq!(own, server_line + 1, "{}", run.transcript());
    // Write-through: the image holds what verify0 wrote.
    let image = disks.read(0);
    let on_disk = &image[PARTITION1..PARTITION1 + BLOCKS * BLOCK];
    assert!(on_disk == stamps("disk0", BLOCKS).as_slice(), "the writes reached the disk");
}

#[test]
fn reads_that_miss_fill_the_cache_with_what_the_disk_holds() {
    let disks = Disks::fresh();
    // The host writes the stamps blk_check expects over the whole disk's
    // first blocks (and the partition table).
    let mut image = disks.read(0);
    image[..BLOCKS * BLOCK].copy_from_slice(&stamps("disk0", BLOCKS));
    std::fs::write(&disks.paths[0], &image).unwrap();
    let run = boot("tests/systems/cache-check.xml", &disks);
    assert_eq!(run.lines_of("check0").last(), Some(&"verified 256 blocks, 0 mismatches"), "{}", run.transcript());
    run.expect_line("probe0: write of block 0 of disk0: ok");
    run.expect_line("probe0: read of block 0 of disk0: ok");
    // 256 reads went down (and filled a cache of 64 blocks); the probe's
    // read of the block it had just written was the only hit.
    let (_, complete, fail, errors) = verdicts(&run);
    assert_eq!((complete, fail, errors), (1, 0, 0), "{}", run.transcript());
}

#[test]
fn a_cache_larger_than_its_memory_is_refused_at_its_param() {
    let out = e2e::make(&["check", "SYSTEM=tests/systems/cache-bad.xml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.lines().any(|l| l
            == "error: filter 'cache0' (program 'filter_cache'): param 'blocks': the cache is larger than this filter's memory (at most 2048 blocks, 8 MiB) at tests/systems/cache-bad.xml:11:13"),
        "{stderr}"
    );
}
