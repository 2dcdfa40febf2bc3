//! Kernel behaviour on QEMU (tests/systems/kernel.xml): faults are stopped
//! and reported, misused system calls are refused, passive PDs run only
//! when called, FP/SIMD state is per PD, equal priorities take turns, and
//! device interrupts arrive as notifications.

use e2e::{boot_to_completion, build_image, Run};
use std::sync::OnceLock;
use std::time::Duration;

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let image = build_image("tests/systems/kernel.xml", false);
        boot_to_completion(&image, &[], Duration::from_secs(60))
    })
}

/// Address of a symbol of the faulter program.
fn faulter_symbol(name: &str) -> u64 {
    let path = e2e::root().join("target/aarch64-unknown-none/system/faulter");
    let elf = tool::elf::ElfImage::read(&path).unwrap();
    elf.symbols[name].vaddr
}

/// The kernel's fault line for `pd`: `what` up to the PC, a PC, then `tail`.
/// Returns the PC.
fn expect_fault(run: &Run, pd: &str, what: &str, tail: &str) -> u64 {
    let prefix = format!("kernel: pd '{pd}' faulted: {what}, pc 0x");
    let i = run.expect_prefix(&prefix);
    let rest = run.lines[i][prefix.len()..].strip_suffix(tail).unwrap_or_else(|| panic!("{}", run.lines[i]));
    let pc = u64::from_str_radix(rest, 16).unwrap_or_else(|_| panic!("{}", run.lines[i]));
    assert!(
        !run.lines.iter().any(|l| l == &format!("{pd}: still running after the fault; this must not happen")),
        "{pd} ran on after its fault"
    );
    pc
}

#[test]
fn faults_are_stopped_and_reported_with_name_kind_address_and_pc() {
    let run = run();
    let parent = "; its parent handles it";
    expect_fault(run, "fault_unmapped_read", "read from unmapped address at address 0x10000000", parent);
    let ro = faulter_symbol("FAULTER_READ_ONLY");
    expect_fault(run, "fault_write_ro", &format!("write to read-only memory at address {ro:#x}"), parent);
    let data = faulter_symbol("FAULTER_WRITABLE");
    let pc = expect_fault(run, "fault_exec_data", &format!("execute from non-executable memory at address {data:#x}"), parent);
    assert_eq!(pc, data, "the PC is the data address it jumped to");
    let i = run.expect_prefix("kernel: pd 'fault_undefined' faulted: undefined instruction at address 0x");
    let line = &run.lines[i];
    let addr = line.split("at address ").nth(1).and_then(|r| r.split(',').next()).unwrap();
    assert_eq!(expect_fault(run, "fault_undefined", &format!("undefined instruction at address {addr}"), parent), u64::from_str_radix(&addr[2..], 16).unwrap());
    expect_fault(run, "fault_kernel_read", "access to kernel memory at address 0xffff000040200000", parent);
    expect_fault(run, "orphan", "write to unmapped address at address 0x12340000", "; stopped");
}

#[test]
fn the_parent_receives_each_childs_fault() {
    let run = run();
    run.expect_in_order(&[
        "faults_parent: child 0 reported: read from unmapped address at 0x10000000",
        "faults_parent: all 5 faults reported",
    ]);
    for (child, kind) in [
        (1, "write to read-only memory"),
        (2, "execute from non-executable memory"),
        (3, "undefined instruction"),
        (4, "access to kernel memory"),
    ] {
        run.expect_prefix(&format!("faults_parent: child {child} reported: {kind} at 0x"));
    }
}

#[test]
fn misused_system_calls_return_errors_to_the_caller() {
    let run = run();
    for line in [
        "errors: notify on channel 9, not held: invalid channel",
        "errors: notify on channel 62, out of range: invalid channel",
        "errors: notify without the notify right: not permitted",
        "errors: pp_call without the pp right: not permitted",
        "errors: irq_ack on a channel without an irq: not permitted",
        "errors: pp_call with 65 message registers: invalid message info",
        "errors: restart of a PD that is not a child: invalid child",
        "errors: power off without the right: not permitted",
        "errors: system call 99: invalid system call",
    ] {
        run.expect_line(line);
    }
    assert!(!run.lines.iter().any(|l| l.contains("must not happen")), "{}", run.transcript());
}

#[test]
fn a_passive_pd_runs_only_when_called() {
    run().expect_in_order(&[
        "passive_probe: called",
        "passive_probe: notification delivered after the call",
        "errors: the passive probe had seen 0 notifications when first called",
    ]);
}

#[test]
fn sixty_four_message_registers_cross_a_ppc_both_ways() {
    run().expect_line("errors: 64 message registers came back reversed: true");
}

#[test]
fn fp_simd_registers_are_saved_per_pd() {
    run().expect_in_order(&[
        "fpu_b: filling the FP/SIMD registers with my pattern, then waiting for fpu_a",
        "fpu_a: all 32 FP/SIMD registers survived another PD's use of FP",
        "fpu_b: my FP/SIMD registers survived fpu_a's use of FP",
    ]);
}

#[test]
fn equal_priorities_take_turns_on_the_timer_tick() {
    let run = run();
    let a1 = run.expect_line("spinner_a: lap 1");
    let b1 = run.expect_line("spinner_b: lap 1");
    let a3 = run.expect_line("spinner_a: lap 3");
    let b3 = run.expect_line("spinner_b: lap 3");
    // Without round robin one spinner would finish all its laps first.
    assert!(a1 < b3 && b1 < a3, "laps did not interleave\n{}", run.transcript());
}

#[test]
fn device_interrupts_arrive_as_notifications_and_ack_re_enables_them() {
    run().expect_in_order(&[
        "irq_rtc: alarm set",
        "irq_rtc: alarm interrupt 1 received (masked status 1)",
        "irq_rtc: alarm interrupt 2 received (masked status 1)",
    ]);
}

/// The runtime's hand-written memcpy, memmove and memset
/// (crates/microkit/src/mem.rs), against byte loops.
#[test]
fn the_runtime_copies_and_fills_every_length_at_every_alignment() {
    run().expect_prefix("mem_check: memcpy, memmove and memset agree with byte loops in ");
    run().expect_line("mem_check: wipe_simd zeroes exactly its buffer in 1863 cases");
}

#[test]
fn the_system_finishes_after_all_of_that() {
    run().expect_line("checker: every kernel test reported, powering off");
}

/// A system that can never run again ends: the kernel names each PD's
/// state and powers off with status 6 (tests/systems/stuck.xml), instead
/// of leaving QEMU idle forever.
#[test]
fn a_system_that_can_never_run_again_says_so_and_powers_off() {
    let image = build_image("tests/systems/stuck.xml", false);
    let run = e2e::boot(&image, &[], None, Duration::from_secs(30));
    assert!(!run.timed_out, "{}", run.transcript());
    assert_eq!(run.status, Some(6), "{}", run.transcript());
    run.expect_line("panicker: panic: nothing to do but give up");
    let fault = run.expect_prefix("kernel: pd 'panicker' faulted: breakpoint at address 0x");
    assert!(run.lines[fault].ends_with("; stopped"), "{}", run.lines[fault]);
    let stuck = run.expect_line("kernel: no protection domain can run again; powering off");
    assert_eq!(run.lines[stuck + 1..], ["kernel:   'panicker': faulted (no parent to restart it)", "kernel:   'server': waits for a call nobody can make"]);
}
