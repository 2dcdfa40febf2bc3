//! Data written through the storage stack is on the disk image files, where
//! the host can read it, survives a reboot, and survives QEMU being killed
//! right after a flush was acknowledged. A flush reaches the device: one
//! the device fails is answered with an I/O error. A read-only disk is
//! read, and a write to it is refused before the device. Answers the
//! device gives out of order reach the requests they belong to.
//!
//! The default system's verify clients write 256 stamped blocks each
//! (verify0 to partition 1 of disk0, verify1 to the start of disk1), flush,
//! and read them back. `tests/systems/storage-check.xml` only reads them.

use blk_clients::stamp::{self, BLOCK};
use e2e::{blk_trace, blk_trace_args, boot_on, boot_to_completion_on, build_image, BlkEvent, Disks, Run};
use std::time::Duration;

const BLOCKS: u64 = 256;
const GENERATION: u64 = 1;
const TIMEOUT: Duration = Duration::from_secs(60);
const VERIFY0_FLUSHED: &str = "verify0: wrote and flushed 256 blocks (generation 1)";
const VERIFY1_FLUSHED: &str = "verify1: wrote and flushed 256 blocks (generation 1)";

/// The first block of partition `number` of a disk image, from its MBR.
fn partition_start(image: &[u8], number: usize) -> u64 {
    let sector0: &[u8; 512] = image[..512].try_into().unwrap();
    let p = blk::mbr::partition(sector0, number).unwrap_or_else(|e| panic!("partition {number}: {e:?}"));
    assert_eq!(p.first_sector % 8, 0);
    p.first_sector / 8
}

/// Blocks `0..blocks` of a client's view starting at disk block `first`
/// that do not hold their stamp, with what is wrong.
fn unstamped(image: &[u8], disk: &str, first: u64, blocks: u64) -> Vec<(u64, stamp::Mismatch)> {
    (0..blocks)
        .filter_map(|b| {
            let at = ((first + b) as usize) * BLOCK;
            let block: &[u8; BLOCK] = image[at..at + BLOCK].try_into().unwrap();
            stamp::check(disk, b, GENERATION, block).err().map(|m| (b, m))
        })
        .collect()
}

/// Boot the read-only checker on `disks`; return what each checker said.
fn check_run(disks: &Disks) -> Run {
    let image = build_image("tests/systems/storage-check.xml", false);
    let run = boot_to_completion_on(&image, disks, &[], TIMEOUT);
    assert_eq!(run.lines.last().map(String::as_str), Some("done: all 2 clients finished, powering off"), "{}", run.transcript());
    run
}

fn assert_checked(run: &Run, pd: &str, header: &str, mismatches: u64) {
    let lines = run.lines_of(pd);
    assert_eq!(lines.first().copied(), Some(header), "{}", run.transcript());
    assert_eq!(lines.last().copied(), Some(format!("verified {BLOCKS} blocks, {mismatches} mismatches").as_str()), "{}", run.transcript());
}

#[test]
fn written_blocks_are_on_the_image_and_read_back_after_a_reboot() {
    let disks = Disks::fresh();
    let run = boot_to_completion_on(&build_image("system.xml", false), &disks, &[], TIMEOUT);
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    run.expect_line("verify1: verified 256 blocks, 0 mismatches");

    // From the host: the stamps are where the clients' views put them.
    let disk0 = disks.read(0);
    let first = partition_start(&disk0, 1);
    assert_eq!(first, 256);
    assert_eq!(unstamped(&disk0, "disk0", first, BLOCKS), []);
    // verify0 was confined to partition 1: the partition table before it
    // and the blocks after what it wrote are untouched.
    assert_eq!(partition_start(&disk0, 2), 8192, "disk0's MBR survived");
    assert!(disk0[(first + BLOCKS) as usize * BLOCK..][..BLOCK].iter().all(|&b| b == 0));
    let disk1 = disks.read(1);
    assert_eq!(unstamped(&disk1, "disk1", 0, BLOCKS), []);

    // Boot again and read everything back through the system.
    let run = check_run(&disks);
    assert_checked(&run, "check0", "disk0 has 7936 blocks; checking 256", 0);
    assert_checked(&run, "check1", "disk1 has 16384 blocks; checking 256", 0);
}

#[test]
fn a_read_only_disk_is_read_and_a_write_to_it_refused() {
    let mut disks = Disks::fresh();
    let image = build_image("system.xml", false);
    boot_to_completion_on(&image, &disks, &[], TIMEOUT).expect_line(VERIFY1_FLUSHED);

    // QEMU attaches disk1 read-only: the device says so, the driver tells
    // the server, and the server tells verify1 and refuses its write with
    // `invalid request` (so would the driver; the device would fail it with
    // an I/O error). verify1 then checks what the first boot wrote.
    disks.read_only(1);
    let run = boot_to_completion_on(&image, &disks, &[], TIMEOUT);
    run.expect_line("virtio_blk: disk 1: 16384 blocks of 4096 bytes, read-only, write cache flushed on request, queue of 256");
    assert_eq!(
        run.lines_of("verify1"),
        [
            "disk1 has 16384 blocks, read-only; checking 256",
            "a write was refused (invalid request); checking what is there",
            "verified 256 blocks, 0 mismatches"
        ],
        "{}",
        run.transcript()
    );
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
}

#[test]
fn the_checker_reports_blocks_that_were_never_written() {
    // Fresh disks: the same check must fail on every block, or the
    // persistence test proves nothing.
    let disks = Disks::fresh();
    let run = check_run(&disks);
    assert_checked(&run, "check0", "disk0 has 7936 blocks; checking 256", BLOCKS);
    assert_checked(&run, "check1", "disk1 has 16384 blocks; checking 256", BLOCKS);
    run.expect_line("check0: block 0: no stamp");
}

#[test]
fn blocks_acknowledged_by_a_flush_survive_qemu_being_killed() {
    let disks = Disks::fresh();
    let image = build_image("system.xml", false);
    // Killed as soon as verify0's flush is acknowledged (SIGKILL: QEMU gets
    // no chance to write anything back).
    let run = boot_on(&image, &disks, &[], Some(VERIFY0_FLUSHED), TIMEOUT);
    assert!(!run.timed_out, "{}", run.transcript());
    assert_eq!(run.status, None, "QEMU was killed, it did not finish");

    let disk0 = disks.read(0);
    assert_eq!(unstamped(&disk0, "disk0", partition_start(&disk0, 1), BLOCKS), []);
    // verify1 may or may not have flushed by then; if it said so, its
    // blocks are there too.
    if run.lines.iter().any(|l| l == VERIFY1_FLUSHED) {
        assert_eq!(unstamped(&disks.read(1), "disk1", 0, BLOCKS), []);
    }

    // And the system reads them back after the crash.
    let run = check_run(&disks);
    assert_checked(&run, "check0", "disk0 has 7936 blocks; checking 256", 0);
}

#[test]
fn a_flush_the_device_fails_is_answered_with_an_io_error() {
    // QEMU fails disk0's next flush to the host disk, once. A driver or
    // server that answered a flush without the device having done it would
    // say it succeeded. (Killing QEMU, above, cannot tell: its writes are in
    // the host's page cache before they are answered.)
    let mut disks = Disks::fresh();
    disks.inject(0, "[inject-error]\nevent = \"flush_to_disk\"\nerrno = \"5\"\nonce = \"on\"\n");
    let run = boot_to_completion_on(&build_image("system.xml", false), &disks, &[], TIMEOUT);
    assert_eq!(run.status, Some(0), "{}", run.transcript());
    assert_eq!(
        run.lines_of("verify0"),
        ["disk0 has 7936 blocks; checking 256", "wrote 256 blocks; the flush failed: I/O error", "verified 256 blocks, 0 mismatches, failed requests: 1"],
        "{}",
        run.transcript()
    );
    // Only disk0's device failed it.
    run.expect_line(VERIFY1_FLUSHED);
    run.expect_line("verify1: verified 256 blocks, 0 mismatches");
}

#[test]
fn answers_the_device_gives_out_of_order_reach_their_requests() {
    // QEMU merges a run of adjacent requests into one host I/O, which
    // completes them together and in order. With merging off, each is an
    // I/O of its own in the host's thread pool, and the device answers them
    // in the order the pool finishes them: mostly not the order it took
    // them. On disk1 reads are also throttled, and its read of block 100
    // (verify1's request 100, in the middle of a batch) fails at once, while
    // the reads the device took before it wait for the throttle: the driver
    // gets that answer first, on its own. A driver that took answers to be
    // in order would give the error to an earlier request (and say reads
    // were done before their data arrived).
    const RULES: &str = "[inject-error]\nevent = \"read_aio\"\niotype = \"read\"\nsector = \"800\"\nerrno = \"5\"\nonce = \"on\"\nimmediately = \"on\"\n";
    let mut disks = Disks::fresh();
    disks.inject_over_slow_reads(1, RULES, 200);
    let log = disks.dir.join("virtio-trace.log");
    let trace_args = blk_trace_args(&log);
    let mut args = vec!["-global", "virtio-blk-device.request-merging=off"];
    args.extend(trace_args.iter().map(String::as_str));
    let run = boot_to_completion_on(&build_image("system.xml", false), &disks, &args, TIMEOUT);
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    assert_eq!(
        run.lines_of("verify1"),
        [
            "disk1 has 16384 blocks; checking 256",
            "wrote and flushed 256 blocks (generation 1)",
            "request 100 failed: I/O error",
            "verified 255 blocks, 0 mismatches, failed requests: 1"
        ],
        "{}",
        run.transcript()
    );
    // From QEMU's trace: each device answered many requests before one it
    // took earlier (about 480 of disk0's 514 answers on this machine, 265
    // of disk1's 513: its reads leave the throttle in order), and disk1
    // answered the failed read while reads it took before were waiting
    // (31 of them here).
    let devices: Vec<DeviceOrder> = blk_trace(&log).values().map(|events| device_order(events)).collect();
    assert_eq!(devices.len(), 2, "two devices in the trace");
    for device in &devices {
        assert!(device.answers > 512 && device.early >= 64, "{device:?}: answers before an earlier request's");
    }
    let waiting = devices.iter().filter_map(|d| d.waiting_at_sector_800_read).collect::<Vec<_>>();
    assert!(matches!(waiting[..], [n] if n >= 1), "reads taken before disk1's failed read and not yet answered when it was: {waiting:?}");
}

/// One virtio-blk device's answers, from a QEMU trace.
#[derive(Debug, Default)]
struct DeviceOrder {
    /// Requests taken and not yet answered, oldest first: (request, read
    /// of sector 800).
    taken: Vec<(String, bool)>,
    answers: u64,
    /// Answers given while a request taken earlier was not.
    early: u64,
    /// Requests taken earlier and not answered when a read of sector 800
    /// was.
    waiting_at_sector_800_read: Option<usize>,
}

/// A virtio-blk device's answers from what it took and answered, in order.
fn device_order(events: &[BlkEvent]) -> DeviceOrder {
    let mut d = DeviceOrder::default();
    for event in events {
        match event {
            BlkEvent::TookRead { request, sector } => d.taken.push((request.clone(), *sector == 800)),
            BlkEvent::TookWrite { request } => d.taken.push((request.clone(), false)),
            BlkEvent::Answered { request } => {
                d.answers += 1;
                // (A flush is not in `taken`: there is no event for it.)
                let Some(i) = d.taken.iter().position(|(r, _)| r == request) else { continue };
                d.early += (i > 0) as u64;
                if d.taken[i].1 {
                    d.waiting_at_sector_800_read = Some(i);
                }
                d.taken.remove(i);
            }
        }
    }
    d
}

#[test]
fn a_disk_with_no_device_behind_it_is_named_at_boot_and_its_clients_get_no_device() {
    let mut disks = Disks::fresh();
    disks.detach_disk1();
    let run = boot_to_completion_on(&build_image("system.xml", false), &disks, &[], TIMEOUT);
    let said = run.expect_prefix("virtio_blk: disk 1: no device in its virtio-mmio slot: ");
    assert!(run.lines[said].contains("make run DISKS="), "it says how to attach one\n{}", run.transcript());
    run.expect_line("blk_server: disk1: no device behind it (see virtio_blk above); its clients' requests get 'no device'");
    // verify1 sees an empty disk and its flush is answered `no device`;
    // disk0 and everything else carry on.
    run.expect_in_order(&["verify1: disk1 has 0 blocks; checking 0", "verify1: wrote 0 blocks; the flush failed: no device"]);
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    run.expect_line("monitor: all parts of the demo finished, powering off");
}
