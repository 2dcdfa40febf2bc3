//! A hostile block client gets an error status for every bad request,
//! loses none of its good ones, and cannot disturb a client beside it.
//!
//! `tests/systems/storage-bad.xml`: bad0 (`blk_bad`, partition 2 of disk0,
//! a queue of 8, a 16-block data region) sends the filter server requests
//! out of range, misaligned, zero-count, overlong, outside its data region
//! and with unknown opcodes, good requests between them, and floods its
//! queue; verify0 (`blk_verify`, partition 1 of disk0) writes, flushes and
//! verifies 256 blocks at the same time, one priority above bad0 (so it
//! starts first; see the system's comment). QEMU lets disk0's writes
//! through at 100 a second, so verify0 writes for 2.5 seconds at least,
//! and bad0 does all it does meanwhile.

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks, Run};
use std::sync::OnceLock;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Partition 1 (verify0's) and partition 2 (bad0's) of disk0, as
/// `scripts/mkdisk.sh` makes them, in blocks.
const PARTITION_1: usize = 256;
const PARTITION_2: usize = 8192;
/// As in `components/blk-clients/src/hostile.rs` (`STAMPED`, `GENERATION`,
/// `JUNK_BYTE`; a PD-only module, so not importable here): bad0 stamps
/// blocks 1 to 3 of its view with generation 1, and its bad writes carry a
/// block filled with this byte.
const BAD0_STAMPED: [usize; 3] = [1, 2, 3];
const BAD0_JUNK: u8 = 0xa5;
const GENERATION: u64 = 1;
/// disk0's writes QEMU lets through a second: verify0's 256 take 2.5
/// seconds, bad0's 3 wait behind 32 of verify0's at most (0.4 seconds
/// here).
const WRITES_PER_SECOND: u32 = 100;

/// One boot serves every test: the console and the disk images after it.
struct Boot {
    run: Run,
    disk0: Vec<u8>,
    disk1: Vec<u8>,
}

fn boot() -> &'static Boot {
    static BOOT: OnceLock<Boot> = OnceLock::new();
    BOOT.get_or_init(|| {
        let mut disks = Disks::fresh();
        disks.slow_writes(0, WRITES_PER_SECOND);
        let image = build_image("tests/systems/storage-bad.xml", false);
        let run = boot_to_completion_on(&image, &disks, &["-global", "virtio-blk-device.request-merging=off"], TIMEOUT);
        Boot { run, disk0: disks.read(0), disk1: disks.read(1) }
    })
}

fn console(run: &Run) -> String {
    format!("\n--- console ---\n{}", run.transcript())
}

/// Nothing went wrong that a client could see or the kernel had to stop.
fn assert_clean(run: &Run) {
    assert!(!run.lines.iter().any(|l| l.contains("UNEXPECTED")), "{}", console(run));
    assert!(!run.lines.iter().any(|l| l.starts_with("kernel: pd") && l.contains("faulted")), "{}", console(run));
}

/// What bad0 prints. Its floods are judged only when the ring refused a
/// request once it held the queue's 8 (see `hostile.rs`), so the counts
/// are fixed.
const BAD0: &[&str] = &[
    "disk0 has 8192 blocks; data region of 16 blocks, queue of 8",
    "out-of-range read (block 8192 of 8192): invalid request",
    "out-of-range read (blocks 8191..8193 of 8192): invalid request",
    "out-of-range read (block 2^64-1, 2 blocks: the end overflows): invalid request",
    "out-of-range write (block 2^64-7936): invalid request",
    "stamped writes of blocks 1, 2, 3 with a bad write between each two: 3 ok, 2 invalid request",
    "misaligned buffer (write from data offset 512): invalid request",
    "zero-count read (block 0): invalid request",
    "overlong read (17 blocks, the data region holds 16): invalid request",
    "overlong read (4294967295 blocks): invalid request",
    "buffer outside the data region (offset 65536, its size): invalid request",
    "buffer past the end of the data region (offset 61440, 2 blocks): invalid request",
    "buffer past the end of the data region (offset 2^64-4096: the end overflows): invalid request",
    "reads of blocks 1, 2, 3 with a bad read between each two: 3 ok with their stamps, 2 invalid request",
    "unknown opcode 6: invalid request",
    "unknown opcode 4294967295: invalid request",
    "flood of good reads: the ring took 8 and refused the next; 8 ok, none lost, none duplicated",
    "flood of alternately good and bad reads: the ring took 8 and refused the next; \
     4 ok, 4 invalid request, none lost, none duplicated",
    // 13 bad requests alone, 2 between the writes, 2 between the reads, 4
    // in the second flood; 3 writes, 3 reads, 8 + 4 in the floods.
    "21 bad requests refused, 18 good requests served, 0 lost",
];

#[test]
fn every_bad_request_is_refused_and_no_good_one_is_lost() {
    let run = &boot().run;
    assert_eq!(run.lines_of("bad0"), BAD0, "{}", console(run));
    assert_clean(run);
    // The server answered bad0 without giving up on it.
    let mut server = run.lines_of("blk_server");
    server.sort();
    assert_eq!(
        server,
        ["client bad0: blocks 8192..16384", "client verify0: blocks 256..8192", "disk0: 16384 blocks", "disk1: 16384 blocks"],
        "{}",
        console(run)
    );
}

#[test]
fn a_verify_client_beside_the_hostile_one_is_unaffected() {
    let Boot { run, disk0, disk1 } = boot();
    assert_eq!(
        run.lines_of("verify0"),
        ["disk0 has 7936 blocks; checking 256", "wrote and flushed 256 blocks (generation 1)", "verified 256 blocks, 0 mismatches"],
        "{}",
        console(run)
    );
    assert_clean(run);
    assert_eq!(run.lines.last().map(String::as_str), Some("done: all 2 clients finished, powering off"), "{}", console(run));
    // bad0 did everything while verify0 was writing (it was done about
    // 2 seconds before verify0's writes were).
    let bad0_done = format!("bad0: {}", BAD0[BAD0.len() - 1]);
    run.expect_in_order(&["verify0: disk0 has 7936 blocks; checking 256", &bad0_done, "verify0: wrote and flushed 256 blocks (generation 1)"]);

    // From the host: verify0's blocks hold its stamps.
    let block = |image: &[u8], b: usize| -> [u8; BLOCK] { image[b * BLOCK..][..BLOCK].try_into().unwrap() };
    let damaged: Vec<_> = (0..256)
        .filter_map(|b| stamp::check("disk0", b as u64, GENERATION, &block(disk0, PARTITION_1 + b)).err().map(|m| (b, m)))
        .collect();
    assert_eq!(damaged, [], "verify0's blocks on disk0");
    // bad0's good writes are in its partition; the block its bad writes
    // aimed at is untouched, and no block anywhere holds what they carried.
    for b in BAD0_STAMPED {
        assert_eq!(stamp::check("disk0", b as u64, GENERATION, &block(disk0, PARTITION_2 + b)), Ok(()), "bad0's block {b}");
    }
    assert!(block(disk0, PARTITION_2).iter().all(|&x| x == 0), "bad0's block 0 was written");
    let junk = (0..disk0.len() / BLOCK).filter(|&b| block(disk0, b).iter().all(|&x| x == BAD0_JUNK)).collect::<Vec<_>>();
    assert_eq!(junk, [], "disk0 blocks holding what bad0's refused writes carried");
    // disk1 has no client: only its partition table.
    assert!(disk1[512..].iter().all(|&x| x == 0), "disk1 was written");
}
