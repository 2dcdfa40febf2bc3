//! Lazy FP/SIMD switching. A PD's FP registers stay in the CPU until another
//! PD uses FP: EL0 FP instructions trap unless the running PD owns the unit,
//! and the trap saves the owner's registers and loads the new PD's.
//! The kernel itself is built without FP (soft-float), so the compiler never
//! touches these registers; the one place that does, the copy loop of grant
//! copies (`copy_blocks` in `arch`), saves the four it uses and puts them
//! back. EL1 never traps on FP in either CPACR setting used here.
//!
//! A PD that traps is likely to use FP again next time (the compiler uses
//! SIMD registers for plain copies and zeroing), so for its next
//! [`EAGER_SWITCHES`] switches in its registers are loaded at the switch,
//! which costs the copy but not the trap. If it still uses FP after that,
//! it traps once more and the count starts again; if it stopped, it is
//! back to lazy.

use crate::pd::{FpState, PdId};
use crate::system::Kernel;

const FPEN_EL0_TRAPS: u64 = 0b01 << 20;
const FPEN_NO_TRAPS: u64 = 0b11 << 20;

static mut CPACR: u64 = 0;

fn set_cpacr(v: u64) {
    // SAFETY: single core, kernel entries run with interrupts masked; the
    // cached value only avoids redundant writes. `eret` synchronises the
    // change before EL0 runs.
    unsafe {
        if core::ptr::addr_of!(CPACR).read() != v {
            core::ptr::addr_of_mut!(CPACR).write(v);
            core::arch::asm!("msr cpacr_el1, {}", in(reg) v);
        }
    }
}

pub fn init() {
    set_cpacr(FPEN_EL0_TRAPS);
    // (The kernel's own copies use the unit from here on.)
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("isb") };
}

/// Switches into a PD that load its registers eagerly after it trapped.
const EAGER_SWITCHES: u8 = 8;

/// Before running `pd`: let it use FP freely only if its registers are
/// live, loading them first if it used FP recently.
pub fn prepare(k: &mut Kernel, pd: PdId) {
    if k.fp_owner == Some(pd) {
        set_cpacr(FPEN_NO_TRAPS);
    } else if k.pds[pd].take_eager_fp_switch() {
        switch_to(k, pd);
    } else {
        set_cpacr(FPEN_EL0_TRAPS);
    }
}

/// `pd` trapped on an FP instruction: give it the FP unit, and its
/// registers eagerly on its next switches in.
pub fn take(k: &mut Kernel, pd: PdId) {
    k.pds[pd].load_fp_eagerly(EAGER_SWITCHES);
    switch_to(k, pd);
}

/// Make `pd` the FP owner: save the old owner's registers, load `pd`'s.
fn switch_to(k: &mut Kernel, pd: PdId) {
    set_cpacr(FPEN_NO_TRAPS);
    // The trap is synchronous to EL1 FP access too; make the enable visible.
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("isb") };
    if let Some(owner) = k.fp_owner {
        save(k.pds[owner].fp_mut());
    }
    load(k.pds[pd].fp());
    k.fp_owner = Some(pd);
}

fn save(s: &mut FpState) {
    // SAFETY: stores the 32 Q registers, FPCR and FPSR into `s`, which is
    // 16-byte aligned and exactly that size.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [{p}, #0]",
            "stp q2, q3, [{p}, #32]",
            "stp q4, q5, [{p}, #64]",
            "stp q6, q7, [{p}, #96]",
            "stp q8, q9, [{p}, #128]",
            "stp q10, q11, [{p}, #160]",
            "stp q12, q13, [{p}, #192]",
            "stp q14, q15, [{p}, #224]",
            "stp q16, q17, [{p}, #256]",
            "stp q18, q19, [{p}, #288]",
            "stp q20, q21, [{p}, #320]",
            "stp q22, q23, [{p}, #352]",
            "stp q24, q25, [{p}, #384]",
            "stp q26, q27, [{p}, #416]",
            "stp q28, q29, [{p}, #448]",
            "stp q30, q31, [{p}, #480]",
            "mrs {t}, fpcr",
            "str {t}, [{p}, #512]",
            "mrs {t}, fpsr",
            "str {t}, [{p}, #520]",
            p = in(reg) s as *mut FpState,
            t = out(reg) _,
        );
    }
}

fn load(s: &FpState) {
    // SAFETY: the mirror of `save`.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{p}, #0]",
            "ldp q2, q3, [{p}, #32]",
            "ldp q4, q5, [{p}, #64]",
            "ldp q6, q7, [{p}, #96]",
            "ldp q8, q9, [{p}, #128]",
            "ldp q10, q11, [{p}, #160]",
            "ldp q12, q13, [{p}, #192]",
            "ldp q14, q15, [{p}, #224]",
            "ldp q16, q17, [{p}, #256]",
            "ldp q18, q19, [{p}, #288]",
            "ldp q20, q21, [{p}, #320]",
            "ldp q22, q23, [{p}, #352]",
            "ldp q24, q25, [{p}, #384]",
            "ldp q26, q27, [{p}, #416]",
            "ldp q28, q29, [{p}, #448]",
            "ldp q30, q31, [{p}, #480]",
            "ldr {t}, [{p}, #512]",
            "msr fpcr, {t}",
            "ldr {t}, [{p}, #520]",
            "msr fpsr, {t}",
            p = in(reg) s as *const FpState,
            t = out(reg) _,
        );
    }
}
