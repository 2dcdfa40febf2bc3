//! The attack suite (tests/systems/attack.xml): a rogue PD tries everything
//! a PD must not do while the default system's PDs do their work. Every
//! attempt is refused or stopped and reported, and everyone else finishes.

use e2e::{boot_to_completion, build_image, Run};
use std::sync::OnceLock;
use std::time::Duration;

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let image = build_image("tests/systems/attack.xml", false);
        boot_to_completion(&image, &[], Duration::from_secs(60))
    })
}

/// An attack the kernel stops: the rogue announces it, the kernel reports
/// the fault (`what`, up to the PC), the parent restarts the rogue.
fn stopped(n: u32, attempt: &str, what: &str, kind: &str) {
    let run = run();
    let i = run.expect_line(&format!("rogue: attack {n}: {attempt}"));
    let fault = &run.lines[i + 1];
    assert!(
        fault.starts_with(&format!("kernel: pd 'rogue' faulted: {what}, pc 0x")) && fault.ends_with("; its parent handles it"),
        "after attack {n}: {fault}\n{}",
        run.transcript()
    );
    assert_eq!(run.lines[i + 2], format!("attacker: the kernel stopped rogue at attack {n} ({kind}); restarting it at the next"));
}

/// An attack the kernel refuses with an error; the rogue carries on.
fn refused(n: u32, attempt: &str, error: &str) {
    let run = run();
    let i = run.expect_line(&format!("rogue: attack {n}: {attempt}"));
    assert_eq!(run.lines[i + 1], format!("rogue: refused: {error}"), "{}", run.transcript());
}

#[test]
fn reading_and_writing_another_pds_memory_is_stopped() {
    stopped(0, "read another PD's memory (the client's region at 0x4000000)", "read from unmapped address at address 0x4000000", "read from unmapped address");
    stopped(1, "write another PD's memory at 0x4000000", "write to unmapped address at address 0x4000000", "write to unmapped address");
}

#[test]
fn writing_a_read_only_region_is_stopped() {
    stopped(2, "write a read-only region at 0x5000000", "write to read-only memory at address 0x5000000", "write to read-only memory");
}

#[test]
fn executing_from_a_data_region_is_stopped() {
    stopped(3, "execute from a data region at 0x6000000", "execute from non-executable memory at address 0x6000000", "execute from non-executable memory");
}

#[test]
fn kernel_memory_is_out_of_reach() {
    stopped(4, "read kernel memory at 0xffff000040200000", "access to kernel memory at address 0xffff000040200000", "access to kernel memory");
    stopped(5, "write kernel memory at 0xffff000040200000", "access to kernel memory at address 0xffff000040200000", "access to kernel memory");
}

#[test]
fn running_off_the_stack_hits_the_guard() {
    stopped(6, "write below its stack at 0xfffffbff8", "write to unmapped address at address 0xfffffbff8", "write to unmapped address");
}

#[test]
fn channels_it_does_not_hold_are_refused() {
    refused(7, "notify channel 7, which it does not hold", "invalid channel");
    refused(8, "call channel 9, which it does not hold", "invalid channel");
    refused(9, "call its parent over a channel without the pp right", "not permitted");
}

#[test]
fn interrupts_it_does_not_own_cannot_be_acked() {
    refused(10, "ack an interrupt on a channel that has none", "not permitted");
    refused(11, "ack interrupt 34 (the RTC's) as channel 34", "invalid channel");
}

#[test]
fn oversized_messages_and_privileged_calls_are_refused() {
    refused(12, "call with 65 message registers", "invalid message info");
    refused(13, "restart a PD that is not its child", "invalid child");
    refused(14, "power the machine off", "not permitted");
    refused(15, "an unknown system call", "invalid system call");
}

#[test]
fn the_rest_of_the_system_finishes_its_work() {
    let run = run();
    run.expect_line("client: server answered (label 0): HELLO FROM THE CLIENT (ticket 1)");
    run.expect_line("ping: ping-pong done after 3 rounds");
    run.expect_line("supervisor: worker succeeded after its restart");
    run.expect_in_order(&["rogue: all 16 attacks done", "attacker: rogue finished; 7 attacks stopped by the kernel, the others refused"]);
    assert!(!run.lines.iter().any(|l| l.contains("must not happen")), "{}", run.transcript());
    // The auditor never saw the oversized call: it issued exactly one ticket.
    assert_eq!(run.lines.iter().filter(|l| l.starts_with("auditor: ticket")).count(), 1);
}
