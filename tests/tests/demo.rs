//! The default system boots, every PD does its part, and QEMU powers off
//! with status 0 by itself. The storage stack runs beside the kernel demo,
//! so its lines interleave with the demo's in a timing-dependent way: each
//! is checked in its own order.

use e2e::{boot_to_completion, build_image};
use std::time::Duration;

/// PDs of the storage stack.
const STORAGE: &[&str] = &["virtio_blk", "blk_server", "verify0", "verify1", "probe0"];

/// Everything the kernel demo prints after the kernel's first line, in
/// order, except the kernel's fault line, whose PC depends on the build.
const TRANSCRIPT: &[&str] = &[
    "server: ready (passive)",
    "client: wrote a 21-byte request, calling the server",
    "server: request of 21 bytes, asking the auditor for a ticket",
    "auditor: ticket 1 for a 21-byte request",
    "client: server answered (label 0): HELLO FROM THE CLIENT (ticket 1)",
    "ping: round 1, notifying pong",
    "pong: ping 1 received, notifying ping",
    "ping: pong answered round 1",
    "ping: round 2, notifying pong",
    "pong: ping 2 received, notifying ping",
    "ping: pong answered round 2",
    "ping: round 3, notifying pong",
    "pong: ping 3 received, notifying ping",
    "ping: pong answered round 3",
    "ping: ping-pong done after 3 rounds",
    "worker: attempt 0, run counter 8",
    "worker: writing to my read-only control region",
    "supervisor: worker faulted (write to read-only memory at 0x4000000), restarting it",
    "worker: attempt 1, run counter 8",
    "worker: succeeded on attempt 1",
    "supervisor: worker succeeded after its restart",
    "monitor: all parts of the demo finished, powering off",
];

fn check_demo(qemu_args: &[&str], entered_at: u32) {
    let image = build_image("system.xml", false);
    let run = boot_to_completion(&image, qemu_args, Duration::from_secs(60));
    let console = format!("\n--- console ---\n{}", run.transcript());
    assert_eq!(run.lines[0], format!("kernel: entered at EL{entered_at}, starting 15 protection domains"));
    let fault = run.expect_prefix("kernel: pd 'worker' faulted: write to read-only memory at address 0x4000000, pc 0x");
    assert!(run.lines[fault].ends_with("; its parent handles it"), "{}", run.lines[fault]);
    let is_storage = |l: &str| STORAGE.iter().any(|pd| l.starts_with(&format!("{pd}: ")));
    let demo: Vec<&str> = run
        .lines
        .iter()
        .enumerate()
        .skip(1)
        .filter(|&(i, l)| i != fault && !is_storage(l))
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(demo, TRANSCRIPT, "{console}");
    assert!(!run.lines.iter().any(|l| l.contains("must not happen")));

    // Both disks come up with QEMU's 64 MiB images (4 KiB blocks).
    let disk = |d| format!("disk {d}: 16384 blocks of 4096 bytes, write cache flushed on request, queue of 256");
    assert_eq!(run.lines_of("virtio_blk"), [disk(0), disk(1)], "{console}");
    // The server reads disk0's partition table: partition 1 is sectors
    // 2048..65536, blocks 256..8192.
    // The server prints each filter's statistics when probe0 asks, after
    // verify0 is done; their upcall counts depend on how requests
    // batched, the rest does not.
    let (stats, mut server): (Vec<&str>, Vec<&str>) = run.lines_of("blk_server").into_iter().partition(|l| l.starts_with("disk0 filter"));
    server.sort();
    assert_eq!(
        server,
        [
            "client probe0: blocks 8192..16384",
            "client verify0: blocks 256..8192",
            "client verify1: blocks 0..16384",
            "disk0: 16384 blocks",
            "disk1: 16384 blocks"
        ],
        "{console}"
    );
    let without_upcalls = |l: &str| l.split_once(" upcalls, ").map(|(name, rest)| format!("{} .. {rest}", name.rsplit_once(' ').map_or(name, |n| n.0)));
    let stats: Vec<_> = stats.iter().filter_map(|l| without_upcalls(l)).collect();
    assert_eq!(
        stats,
        [
            // 256 writes, a flush and 256 reads of verify0; probe0's write
            // and read; audit0 reads the data of each write (257 blocks).
            "disk0 filter audit0: .. 515 pre-ops, 515 post-ops; verdicts: 1030 continue, 0 substitute, 0 complete, 0 fail; 0 errors; 2105344 bytes",
            // Only writes, before they go down: probe0's is refused.
            "disk0 filter guard0: .. 257 pre-ops, 0 post-ops; verdicts: 256 continue, 0 substitute, 0 complete, 1 fail; 0 errors; 1052672 bytes",
        ],
        "{console}"
    );
    assert_eq!(run.lines_of("probe0"), ["write of block 0 of disk0: invalid request", "read of block 0 of disk0: ok"], "{console}");
    for (pd, disk, blocks) in [("verify0", "disk0", 7936), ("verify1", "disk1", 16384)] {
        assert_eq!(
            run.lines_of(pd),
            [
                format!("{disk} has {blocks} blocks; checking 256"),
                "wrote and flushed 256 blocks (generation 1)".to_string(),
                "verified 256 blocks, 0 mismatches".to_string(),
            ],
            "{console}"
        );
    }
    assert_eq!(run.lines.last().map(String::as_str), Some("monitor: all parts of the demo finished, powering off"));
}

#[test]
fn default_system_runs_its_demo_and_powers_off() {
    check_demo(&[], 1);
}

#[test]
fn kernel_drops_from_el2_when_entered_there() {
    check_demo(&["-machine", "virtualization=on"], 2);
}

/// The README's "Writing a protection domain" example, as written there
/// (`components/hello`, `tests/systems/hello.xml`): the client's call
/// reaches the passive server, the answer comes back, the client powers
/// the machine off.
#[test]
fn the_readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(e2e::root().join("README.md")).unwrap();
    for file in ["components/hello/src/bin/hello_client.rs", "components/hello/src/bin/hello_server.rs"] {
        let code = std::fs::read_to_string(e2e::root().join(file)).unwrap();
        let body: String = code.lines().skip_while(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
        assert!(readme.contains(&body), "README.md shows {file} as it is");
    }
    let xml = std::fs::read_to_string(e2e::root().join("tests/systems/hello.xml")).unwrap();
    let system = &xml[xml.find("<system>").unwrap()..];
    assert!(readme.contains(system.trim_end()), "README.md shows tests/systems/hello.xml as it is");
    let run = boot_to_completion(&build_image("tests/systems/hello.xml", false), &[], Duration::from_secs(30));
    assert_eq!(run.lines, ["kernel: entered at EL1, starting 2 protection domains", "client: server answered 209 (label 0)"], "{}", run.transcript());
    assert_eq!(run.status, Some(0));
}
