//! The default system boots, every PD does its part, and QEMU powers off
//! with status 0 by itself.

use e2e::{boot_to_completion, build_image};
use std::time::Duration;

/// Everything the default system prints after the kernel's first line, in
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
    assert_eq!(run.lines[0], format!("kernel: entered at EL{entered_at}, starting 8 protection domains"));
    let fault = run.expect_prefix("kernel: pd 'worker' faulted: write to read-only memory at address 0x4000000, pc 0x");
    assert!(run.lines[fault].ends_with("; its parent handles it"), "{}", run.lines[fault]);
    let without_fault: Vec<&str> =
        run.lines.iter().enumerate().skip(1).filter(|(i, _)| *i != fault).map(|(_, l)| l.as_str()).collect();
    assert_eq!(without_fault, TRANSCRIPT, "\n--- console ---\n{}", run.transcript());
    assert!(!run.lines.iter().any(|l| l.contains("must not happen")));
}

#[test]
fn default_system_runs_its_demo_and_powers_off() {
    check_demo(&[], 1);
}

#[test]
fn kernel_drops_from_el2_when_entered_there() {
    check_demo(&["-machine", "virtualization=on"], 2);
}
