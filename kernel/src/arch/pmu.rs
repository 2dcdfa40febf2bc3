//! The performance monitors: the cycle counter and event counter 0 counting
//! retired instructions (EL0 and EL1), for benchmarks.

/// Counters enabled, 64-bit cycle counter. `_start` writes it first thing.
pub const PMCR: u64 = 1 << 0 | 1 << 6;
const INST_RETIRED: u64 = 0x08;

/// Start the counters; with `user_access`, EL0 may read them.
pub fn init(user_access: bool) {
    // SAFETY: PMU system registers, written at EL1. The cycle counter was
    // started by `_start` and is not reset.
    unsafe {
        core::arch::asm!("msr pmevtyper0_el0, {}", in(reg) INST_RETIRED);
        core::arch::asm!("msr pmcntenset_el0, {}", in(reg) (1u64 << 31) | 1);
        // EN | CR | ER: EL0 may read the cycle and event counters.
        let enr: u64 = if user_access { 0b1101 } else { 0 };
        core::arch::asm!("msr pmuserenr_el0, {}", in(reg) enr);
        core::arch::asm!("isb");
    }
}
