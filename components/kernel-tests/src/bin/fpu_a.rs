//! Fills all 32 FP/SIMD registers, lets a higher-priority PD run (which
//! fills them with its own values), and checks its values survived.
#![no_std]
#![no_main]

use microkit::{debug_println, protection_domain, Channel, NullHandler};

const FPU_B: Channel = Channel::new(0);
const CHECKER: Channel = Channel::new(1);

#[protection_domain]
fn init() -> NullHandler {
    let pattern: [u128; 32] = core::array::from_fn(|i| 0xa5a5_0000_0000_0000_0000_0000_0000_0000 | (i as u128) << 64 | 0x77);
    let mut after = [0u128; 32];
    let code: u64;
    // SAFETY: loads the pattern, notifies fpu_b (which preempts this PD and
    // uses FP itself), then stores the registers; all V registers are
    // declared clobbered.
    unsafe {
        core::arch::asm!(
            "ldp q0, q1, [{p}, #0]", "ldp q2, q3, [{p}, #32]", "ldp q4, q5, [{p}, #64]", "ldp q6, q7, [{p}, #96]",
            "ldp q8, q9, [{p}, #128]", "ldp q10, q11, [{p}, #160]", "ldp q12, q13, [{p}, #192]", "ldp q14, q15, [{p}, #224]",
            "ldp q16, q17, [{p}, #256]", "ldp q18, q19, [{p}, #288]", "ldp q20, q21, [{p}, #320]", "ldp q22, q23, [{p}, #352]",
            "ldp q24, q25, [{p}, #384]", "ldp q26, q27, [{p}, #416]", "ldp q28, q29, [{p}, #448]", "ldp q30, q31, [{p}, #480]",
            "svc #0",
            "stp q0, q1, [{o}, #0]", "stp q2, q3, [{o}, #32]", "stp q4, q5, [{o}, #64]", "stp q6, q7, [{o}, #96]",
            "stp q8, q9, [{o}, #128]", "stp q10, q11, [{o}, #160]", "stp q12, q13, [{o}, #192]", "stp q14, q15, [{o}, #224]",
            "stp q16, q17, [{o}, #256]", "stp q18, q19, [{o}, #288]", "stp q20, q21, [{o}, #320]", "stp q22, q23, [{o}, #352]",
            "stp q24, q25, [{o}, #384]", "stp q26, q27, [{o}, #416]", "stp q28, q29, [{o}, #448]", "stp q30, q31, [{o}, #480]",
            p = in(reg) pattern.as_ptr(),
            o = in(reg) after.as_mut_ptr(),
            inlateout("x0") FPU_B.index() as u64 => code,
            in("x7") abi::sys::NOTIFY,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
        );
    }
    assert_eq!(code, 0, "notify fpu_b");
    match (0..32).find(|&i| after[i] != pattern[i]) {
        None => debug_println!("fpu_a: all 32 FP/SIMD registers survived another PD's use of FP"),
        Some(i) => debug_println!("fpu_a: q{} changed from {:#x} to {:#x}", i, pattern[i], after[i]),
    }
    // Let fpu_b check its own registers after this PD used FP.
    FPU_B.notify();
    CHECKER.notify();
    NullHandler
}
