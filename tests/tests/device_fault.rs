//! A device that fails is reset by the driver: what it lost is answered
//! with an I/O error, and it serves requests again.
//!
//! `tests/systems/storage-fault.xml`: fault0 (`blk_fault`, attached to
//! disk0's driver directly) writes 4 stamped blocks, sends a read into the
//! page past its data region (the driver must refuse it: a direct client
//! names only memory it may reach itself; again after the reset below),
//! then gives the device a two-block read into a region it maps with no
//! memory behind it (QEMU's virtio-blk then sets NEEDS_RESET and stops)
//! with 2 good reads behind it, then reads its 4 blocks back; then it sends
//! bad reads one at a time until the driver gives the device up, and a good
//! read after that. verify1 (`blk_verify`) writes and verifies disk1
//! through the filter server in the same run, served by the same driver PD.

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks, Run};
use std::sync::OnceLock;
use virtio_blk::recovery::{KEEPS_STOPPING, RESTARTS_IN_A_ROW};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// As in `components/blk-clients/src/device_fault.rs` (PD-only).
const FAULT0_BLOCKS: u64 = 4;
const FAULT0_GENERATION: u64 = 3;
/// Bad reads in a row that fail with an I/O error before the driver gives
/// the device up: the stops it restarts from, and the one it does not.
const GIVEN_UP_AFTER: u32 = RESTARTS_IN_A_ROW + 1;

struct Boot {
    run: Run,
    disk0: Vec<u8>,
}

fn boot() -> &'static Boot {
    static BOOT: OnceLock<Boot> = OnceLock::new();
    BOOT.get_or_init(|| {
        let disks = Disks::fresh();
        let image = build_image("tests/systems/storage-fault.xml", false);
        let run = boot_to_completion_on(&image, &disks, &[], TIMEOUT);
        Boot { run, disk0: disks.read(0) }
    })
}

fn console(run: &Run) -> String {
    format!("\n--- console ---\n{}", run.transcript())
}

#[test]
fn the_driver_resets_a_failed_device_and_it_serves_again() {
    let Boot { run, disk0 } = boot();
    assert_eq!(run.status, Some(0), "{}", console(run));
    assert_eq!(
        run.lines_of("fault0"),
        [
            "wrote blocks 0..4: 4 ok",
            "a read into the page past its data region: invalid request",
            "read into physical 0x2000000000 (no memory), 2 reads behind it: the bad one answered once, each behind it answered once",
            "after the fault, read blocks 0..4 back: 4 intact",
            "a read into the page past its data region after the reset: invalid request",
            &format!("read into no memory again, one at a time, until the device was given up: {GIVEN_UP_AFTER} I/O errors, then no device"),
            "a good read after that: no device",
        ],
        "{}",
        console(run)
    );
    // The driver saw the device stop and reset it; the device held the bad
    // read and at most the two behind it.
    let resets: Vec<_> = run.lines_of("virtio_blk").into_iter().filter(|l| l.contains("NEEDS_RESET")).collect();
    assert_eq!(resets.len(), 1 + GIVEN_UP_AFTER as usize, "{}", console(run));
    let held = ["1 request", "2 requests", "3 requests"]
        .iter()
        .any(|n| resets[0] == format!("disk 0: the device stopped (NEEDS_RESET); reset it, {n} it held failed with an I/O error"));
    assert!(held, "{}", console(run));
    // The blocks read back were completed: each bad read after them stops
    // the device again before it completes anything; it is reset
    // RESTARTS_IN_A_ROW times, and the next stop gives it up.
    let again = "disk 0: the device stopped (NEEDS_RESET); reset it, 1 request it held failed with an I/O error";
    assert!(resets[1..GIVEN_UP_AFTER as usize].iter().all(|l| *l == again), "{}", console(run));
    assert_eq!(
        resets[GIVEN_UP_AFTER as usize],
        format!("disk 0: the device stopped (NEEDS_RESET) and is given up ({KEEPS_STOPPING}); 1 request failed with an I/O error, later ones get 'no device'"),
        "{}",
        console(run)
    );
    assert!(!run.lines.iter().any(|l| l.contains("UNEXPECTED") || l.contains("faulted")), "{}", console(run));
    // From the host: the blocks written before the fault are on the disk.
    for b in 0..FAULT0_BLOCKS {
        let block: &[u8; BLOCK] = disk0[b as usize * BLOCK..][..BLOCK].try_into().unwrap();
        assert_eq!(stamp::check("disk0", b, FAULT0_GENERATION, block), Ok(()), "block {b}");
    }
}

#[test]
fn the_other_disk_on_the_same_driver_is_unaffected() {
    let run = &boot().run;
    assert_eq!(
        run.lines_of("verify1"),
        ["disk1 has 16384 blocks; checking 256", "wrote and flushed 256 blocks (generation 1)", "verified 256 blocks, 0 mismatches"],
        "{}",
        console(run)
    );
    // (verify1 runs at a higher priority, so it starts first and fault0
    // runs while it waits for its disk: the reset usually falls in the
    // middle of verify1's work. Not always: when the host is slow with
    // disk0's writes, verify1 is done first; so that is not asserted.)
    // The server drives disk1 only: disk0 belongs to its direct client.
    assert_eq!(run.lines_of("blk_server"), ["disk1: 16384 blocks", "client verify1: blocks 0..16384"], "{}", console(run));
    assert_eq!(run.lines.last().map(String::as_str), Some("done: all 2 clients finished, powering off"), "{}", console(run));
}
