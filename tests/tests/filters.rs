//! Filter chains on QEMU: a filter that faults or loops is stopped and
//! fails only the requests of its upcall (and, unless it is restarted, the
//! requests that reach it later); clients of other disks see nothing; a
//! filter that misuses its grants is refused each time with an error; a
//! write through a chain lands on the disk image as the client wrote it.
//!
//! Systems: `tests/systems/filter-fault.xml`, `filter-loop.xml`,
//! `filter-stopped.xml` (a `filter_faulty` on disk0, verify clients on both
//! disks), `grant-attack.xml` (a filter that tries every misuse of a grant),
//! and the default `system.xml` (disk0's chain: audit0, guard0).

use blk_clients::stamp::{self, BLOCK};
use e2e::{boot_to_completion_on, build_image, Disks, Run};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

fn boot(system: &str) -> Run {
    let disks = Disks::fresh();
    let run = boot_to_completion_on(&build_image(system, false), &disks, &[], TIMEOUT);
    assert_eq!(run.status, Some(0), "{system} powered off cleanly\n{}", run.transcript());
    run
}

/// The number `n` in verify0's summary line, `verified k blocks, 0
/// mismatches, failed requests: n` (0 without that part).
fn verify0_failed(run: &Run) -> u32 {
    let summary = *run.lines_of("verify0").last().expect("verify0 reported");
    let mismatches = summary.strip_prefix("verified ").and_then(|s| s.split_once(" blocks, ")).map(|(_, rest)| rest);
    assert!(mismatches.is_some_and(|m| m.starts_with("0 mismatches")), "every block that was read back is right: {summary}\n{}", run.transcript());
    summary.rsplit_once("failed requests: ").map_or(0, |(_, n)| n.parse().unwrap())
}

/// The number of requests the server says failed with the filter's stop,
/// and what it said it does next.
fn stopped(run: &Run, filter: &str) -> (u32, String) {
    let prefix = format!("filter {filter} stopped: ");
    let line = run.lines_of("blk_server").into_iter().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("the server reports {filter}'s stop\n{}", run.transcript()));
    let (n, rest) = line.split_once(" requests failed with I/O error; ").unwrap();
    (n.parse().unwrap(), rest.to_string())
}

#[test]
fn a_filter_that_faults_fails_its_upcall_is_restarted_and_serves_again() {
    let run = boot("tests/systems/filter-fault.xml");
    let fault = run.expect_prefix("kernel: pd 'crash0' faulted: undefined instruction at address 0x");
    assert!(run.lines[fault].ends_with("; its parent handles it"), "{}", run.lines[fault]);
    let (failed, then) = stopped(&run, "crash0");
    assert_eq!(then, "restarting it");
    // The requests of the one upcall it was serving failed (a batch of at
    // most the client's queue of 32), and no others: after the restart
    // the rest of the read-back went through it and verified.
    assert!((1..=32).contains(&failed), "{failed} requests failed");
    assert_eq!(verify0_failed(&run), failed, "the client saw exactly those fail\n{}", run.transcript());
    run.expect_line("verify1: verified 256 blocks, 0 mismatches");
    assert!(run.expect_line("verify1: verified 256 blocks, 0 mismatches") > 0);
}

/// `count=1` means once in all, not once a life: the restarted filter
/// keeps its rules' counts (in its bounce buffer), so the first read after
/// the restart, which matches the rule too, goes through.
#[test]
fn a_fault_rule_of_count_one_faults_once_across_restarts() {
    let run = boot("tests/systems/filter-fault-once.xml");
    let faults = run.lines.iter().filter(|l| l.starts_with("kernel: pd 'crash0' faulted")).count();
    assert_eq!(faults, 1, "{}", run.transcript());
    let (failed, then) = stopped(&run, "crash0");
    assert_eq!(then, "restarting it");
    assert!((1..=32).contains(&failed), "{failed} requests failed");
    assert_eq!(verify0_failed(&run), failed, "{}", run.transcript());
    run.expect_line("verify1: verified 256 blocks, 0 mismatches");
}

#[test]
fn a_filter_that_loops_is_stopped_at_its_budget_and_restarted() {
    let run = boot("tests/systems/filter-loop.xml");
    let fault = run.expect_prefix("kernel: pd 'spin0' faulted: ran past its call budget, pc 0x");
    assert!(run.lines[fault].ends_with("; its parent handles it"), "{}", run.lines[fault]);
    let (failed, then) = stopped(&run, "spin0");
    assert_eq!(then, "restarting it");
    assert!((1..=32).contains(&failed), "{failed} requests failed");
    assert_eq!(verify0_failed(&run), failed, "{}", run.transcript());
    // The other disk's client never waited on it.
    run.expect_line("verify1: verified 256 blocks, 0 mismatches");
}

#[test]
fn a_filter_left_stopped_fails_every_request_that_reaches_it_and_nothing_else() {
    let run = boot("tests/systems/filter-stopped.xml");
    run.expect_prefix("kernel: pd 'crash0' faulted: undefined instruction at address 0x");
    let (failed, then) = stopped(&run, "crash0");
    assert_eq!(then, "the requests that reach it fail from now on");
    // It faulted on the read of block 100: reads before its upcall's batch
    // succeeded, the batch failed, and so did every later read.
    let total = verify0_failed(&run);
    assert!(failed <= 32 && total > failed && total <= 256 - 64, "{failed} in the upcall, {total} in all\n{}", run.transcript());
    assert_eq!(run.lines_of("verify1"), ["disk1 has 16384 blocks; checking 256", "wrote and flushed 256 blocks (generation 1)", "verified 256 blocks, 0 mismatches"]);
}

#[test]
fn a_filter_that_misuses_its_grants_is_refused_each_time() {
    let run = boot("tests/systems/grant-attack.xml");
    let got = run.lines_of("grant_attacker");
    assert_eq!(
        got,
        [
            "read the 4096 bytes of the first block through the grant: ok",
            "its v0-v3 are as they were after a grant read",
            "1890 reads of other lengths, offsets and alignments: the same bytes",
            "write through a read grant: refused (not permitted)",
            "read past the request's data: refused (outside the grant)",
            "read running past the request's data: refused (outside the grant)",
            "a forged handle (the next lease): refused (no such grant)",
            "a forged handle (index 63): refused (no such grant)",
            "copy into its own read-only memory: refused (buffer not mapped with the needed rights)",
            "copy into unmapped memory at 0x12340000: refused (buffer not mapped with the needed rights)",
            "copy into kernel memory at 0xffff000040200000: refused (buffer not mapped with the needed rights)",
            "a handle from an earlier call: refused (no such grant)",
        ],
        "{}",
        run.transcript()
    );
    // Nothing faulted, and the client's data came through untouched.
    assert!(!run.lines.iter().any(|l| l.starts_with("kernel: pd")), "{}", run.transcript());
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
}

#[test]
fn writes_through_a_chain_reach_the_image_and_the_guarded_blocks_are_untouched() {
    let disks = Disks::fresh();
    let before = disks.read(0);
    let run = boot_to_completion_on(&build_image("system.xml", false), &disks, &[], TIMEOUT);
    run.expect_line("verify0: verified 256 blocks, 0 mismatches");
    run.expect_line("probe0: write of block 0 of disk0: invalid request");
    let disk0 = disks.read(0);
    // verify0's stamps passed audit0 and guard0 into partition 1 (blocks
    // 256..).
    for b in 0..256u64 {
        let at = (256 + b) as usize * BLOCK;
        let block: &[u8; BLOCK] = disk0[at..at + BLOCK].try_into().unwrap();
        assert_eq!(stamp::check("disk0", b, 1, block), Ok(()), "block {b} of partition 1");
    }
    // guard0 kept probe0's write off partition 2 (block 8192) and the
    // partition table.
    for block in [0usize, 8192] {
        assert_eq!(disk0[block * BLOCK..(block + 1) * BLOCK], before[block * BLOCK..(block + 1) * BLOCK], "block {block} unchanged");
    }
}
