//! The EL1 physical generic timer: the round-robin tick and the deadline
//! of the earliest call budget (see `budget`), on one compare register: it
//! is set for whichever comes first.
//!
//! Without a deadline (the common case: no budgeted call runs) the tick is
//! programmed as it was before deadlines existed, one write of the relative
//! timer value, and stopped with one write: both are on every idle
//! period's path.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Ticks per second of round robin.
const HZ: u64 = 100;

/// The counter value of the next tick, kept only while a deadline is set
/// (the compare register may then hold the deadline instead); 0 while the
/// tick is stopped.
static NEXT_TICK: AtomicU64 = AtomicU64::new(0);
/// Counter value of the earliest call deadline; 0 if there is none.
static DEADLINE: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    // EL0 may read the virtual counter (CNTVCT_EL0) for time stamps.
    // SAFETY: plain system-register writes at EL1.
    unsafe {
        core::arch::asm!("msr cntkctl_el1, {}", in(reg) 1u64 << 1);
    }
    rearm();
}

/// The system counter.
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reading the physical counter at EL1.
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) t, options(nomem, nostack, preserves_flags)) };
    t
}

/// Counter ticks per second.
pub fn frequency() -> u64 {
    let freq: u64;
    // SAFETY: reading the counter frequency at EL1.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack, preserves_flags)) };
    freq
}

fn read_compare() -> u64 {
    let cval: u64;
    // SAFETY: reading the compare register at EL1.
    unsafe { core::arch::asm!("mrs {}, cntp_cval_el0", out(reg) cval, options(nomem, nostack, preserves_flags)) };
    cval
}

fn enabled() -> bool {
    let ctl: u64;
    // SAFETY: reading the timer's control register at EL1.
    unsafe { core::arch::asm!("mrs {}, cntp_ctl_el0", out(reg) ctl, options(nomem, nostack, preserves_flags)) };
    ctl & 1 != 0
}

/// Interrupt at counter value `at`, or never (`None`).
fn arm(at: Option<u64>) {
    // SAFETY: plain system-register writes at EL1.
    unsafe {
        match at {
            Some(at) => {
                core::arch::asm!("msr cntp_cval_el0, {}", in(reg) at);
                core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 1u64);
            }
            None => core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 0u64),
        }
    }
}

/// Start the tick (again): the next one is a period from now.
pub fn rearm() {
    // SAFETY: plain system-register writes at EL1.
    unsafe {
        core::arch::asm!("msr cntp_tval_el0, {}", in(reg) frequency() / HZ);
        core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 1u64);
    }
    let deadline = DEADLINE.load(Relaxed);
    if deadline != 0 {
        // The compare register holds the tick just set.
        let tick = read_compare();
        NEXT_TICK.store(tick, Relaxed);
        arm(Some(tick.min(deadline)));
    }
}

/// Whether a timer interrupt is (also) the tick's, rather than only a
/// deadline's.
pub fn tick_due() -> bool {
    DEADLINE.load(Relaxed) == 0 || {
        let tick = NEXT_TICK.load(Relaxed);
        tick != 0 && now() >= tick
    }
}

/// Stop the tick: with nothing to run there is nothing to rotate, and an
/// idle CPU should wake only for a device or a call deadline. (Under `qemu
/// -icount sleep=off` a pending tick also makes every idle wait end early,
/// which would charge a varying number of tick interrupts to whatever the
/// CPU was waiting for.)
pub fn stop() {
    let deadline = DEADLINE.load(Relaxed);
    if deadline == 0 {
        arm(None);
    } else {
        NEXT_TICK.store(0, Relaxed);
        arm(Some(deadline));
    }
}

/// Interrupt at counter value `at` too (`None`: no deadline).
pub fn set_deadline(at: Option<u64>) {
    if DEADLINE.load(Relaxed) == 0 {
        // Until now the compare register held the tick, if it runs.
        NEXT_TICK.store(if enabled() { read_compare() } else { 0 }, Relaxed);
    }
    DEADLINE.store(at.unwrap_or(0), Relaxed);
    let tick = NEXT_TICK.load(Relaxed);
    arm(match (tick, at) {
        (0, at) => at,
        (t, Some(d)) => Some(t.min(d)),
        (t, None) => Some(t),
    });
}
