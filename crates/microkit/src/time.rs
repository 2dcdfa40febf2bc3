//! The system counter, which the kernel lets every PD read: time stamps
//! for PDs that pace their own work (a filter deriving a key in slices
//! that each fit its call budget).

/// The counter now.
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reads the virtual counter, which the kernel opens to EL0
    // (CNTKCTL_EL1.EL0VCTEN); no memory is touched.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack, preserves_flags)) };
    t
}

/// Counter ticks per second.
pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: as for `now` (the same control bit opens CNTFRQ_EL0).
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack, preserves_flags)) };
    f
}
