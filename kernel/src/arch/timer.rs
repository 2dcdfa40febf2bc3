//! The EL1 physical generic timer: the round-robin tick.

/// Ticks per second of round robin.
const HZ: u64 = 100;

pub fn init() {
    // EL0 may read the virtual counter (CNTVCT_EL0) for time stamps.
    // SAFETY: plain system-register writes at EL1.
    unsafe {
        core::arch::asm!("msr cntkctl_el1, {}", in(reg) 1u64 << 1);
    }
    rearm();
}

/// Program the next tick and enable the timer.
pub fn rearm() {
    let freq: u64;
    // SAFETY: plain system-register accesses at EL1.
    unsafe {
        core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq);
        core::arch::asm!("msr cntp_tval_el0, {}", in(reg) freq / HZ);
        core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 1u64);
    }
}

/// Stop the tick: with nothing to run there is nothing to rotate, and an
/// idle CPU should wake only for a device. (Under `qemu -icount
/// sleep=off` a pending tick also makes every idle wait end early, which
/// would charge a varying number of tick interrupts to whatever the CPU
/// was waiting for.)
pub fn stop() {
    // SAFETY: a plain system-register write at EL1.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 0u64) };
}
