//! Misuses the kernel's system calls and prints what comes back; then checks
//! that a passive PD ran only when called.
#![no_std]
#![no_main]

use abi::MessageInfo;
use microkit::syscall;
use microkit::{debug_println, get_mr, protection_domain, with_msg_regs, with_msg_regs_mut, Channel, NullHandler, MAX_MRS};

const PROBE: Channel = Channel::new(0);
const CHECKER: Channel = Channel::new(1);
/// A second channel to the checker, declared with notify="false".
const MUTE: usize = 2;

fn report(what: &str, r: Result<(), abi::Error>) {
    match r {
        Ok(()) => debug_println!("errors: {}: accepted; this must not happen", what),
        Err(e) => debug_println!("errors: {}: {}", what, e.as_str()),
    }
}

#[protection_domain]
fn init() -> NullHandler {
    let mut mrs = [0u64; 4];
    report("notify on channel 9, not held", syscall::notify(9));
    report("notify on channel 62, out of range", syscall::notify(62));
    report("notify without the notify right", syscall::notify(MUTE));
    report("pp_call without the pp right", syscall::pp_call(CHECKER.index(), MessageInfo::new(0, 0), &mut mrs).map(|_| ()));
    report("irq_ack on a channel without an irq", syscall::irq_ack(PROBE.index()));
    report(
        "pp_call with 65 message registers",
        syscall::pp_call(PROBE.index(), MessageInfo::new(0, 65), &mut mrs).map(|_| ()),
    );
    report("restart of a PD that is not a child", syscall::pd_restart(0));
    report("power off without the right", syscall::power_off(1));
    let code: u64;
    // SAFETY: an unknown system-call number; the kernel only returns an error.
    unsafe { core::arch::asm!("svc #0", inlateout("x0") 0u64 => code, in("x7") 99u64) };
    report("system call 99", abi::Error::from_code(code).map_or(Ok(()), Err));

    PROBE.notify();
    PROBE.pp_call(MessageInfo::new(1, 0));
    debug_println!("errors: the passive probe had seen {} notifications when first called", get_mr(0));

    // All 64 message registers out and back: the probe reverses them.
    with_msg_regs_mut(|r| (0..MAX_MRS).for_each(|i| r[i] = 0x1000 + i as u64));
    let reply = PROBE.pp_call(MessageInfo::new(2, MAX_MRS));
    let intact = with_msg_regs(|r| (0..MAX_MRS).all(|i| r[i] == 0x1000 + (MAX_MRS - 1 - i) as u64));
    debug_println!("errors: {} message registers came back reversed: {}", reply.count(), intact);
    CHECKER.notify();
    NullHandler
}
