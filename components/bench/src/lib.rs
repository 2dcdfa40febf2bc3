//! Shared by the benchmark PDs: reading the PMU cycle counter, which under
//! `qemu -icount shift=0` counts executed instructions.
#![no_std]

/// The cycle counter (PMCCNTR_EL0). The image must be built with
/// `--pmu-user` so EL0 may read it.
#[inline(always)]
pub fn cycles() -> u64 {
    let c: u64;
    // SAFETY: a read of the cycle counter; the kernel grants EL0 access in
    // benchmark images.
    unsafe { core::arch::asm!("isb", "mrs {}, pmccntr_el0", out(reg) c, options(nostack)) };
    c
}

/// Round trips measured per figure, after the warm-up.
pub const ROUNDS: u64 = 10_000;
pub const WARMUP: u64 = 100;

/// Instructions retired at EL0 and EL1 so far (event counter 0, which the
/// kernel programs to INST_RETIRED). Unlike the cycle counter it does not
/// advance while the CPU idles in WFI waiting for a device, so it counts
/// exactly the work the system did.
#[inline(always)]
pub fn instructions() -> u64 {
    let c: u64;
    // SAFETY: a read of event counter 0; the kernel grants EL0 access in
    // benchmark images.
    unsafe { core::arch::asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) c, options(nostack)) };
    c
}
