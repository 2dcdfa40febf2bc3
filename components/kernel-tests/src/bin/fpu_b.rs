//! The other FP user. Notified by fpu_a (which holds its own pattern in its
//! FP/SIMD registers), it fills every V register with its own pattern and
//! waits, in the same `asm!` block, for fpu_a's next notification; then it
//! stores them and checks its pattern survived fpu_a's use of FP. (One
//! block from fill to check: between two blocks the compiler may use the
//! registers itself, for a zeroed array or a copy.)
#![no_std]
#![no_main]

use microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};

const PATTERN: u128 = 0x0b0b_0b0b_1111_2222_3333_4444_5555_6666;

#[protection_domain]
fn init() -> FpuB {
    FpuB
}

struct FpuB;

impl Handler for FpuB {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        debug_println!("fpu_b: filling the FP/SIMD registers with my pattern, then waiting for fpu_a");
        let mut regs = core::mem::MaybeUninit::<[u128; 32]>::uninit();
        // SAFETY: fills every V register with the pattern, waits for the
        // next event (`recv`, which returns it in x0-x7), and stores the 32
        // V registers into `regs`; all V registers and x0-x7 are declared
        // clobbered.
        unsafe {
            core::arch::asm!(
                "ldr q0, [{p}]",
                "mov v1.16b, v0.16b", "mov v2.16b, v0.16b", "mov v3.16b, v0.16b", "mov v4.16b, v0.16b",
                "mov v5.16b, v0.16b", "mov v6.16b, v0.16b", "mov v7.16b, v0.16b", "mov v8.16b, v0.16b",
                "mov v9.16b, v0.16b", "mov v10.16b, v0.16b", "mov v11.16b, v0.16b", "mov v12.16b, v0.16b",
                "mov v13.16b, v0.16b", "mov v14.16b, v0.16b", "mov v15.16b, v0.16b", "mov v16.16b, v0.16b",
                "mov v17.16b, v0.16b", "mov v18.16b, v0.16b", "mov v19.16b, v0.16b", "mov v20.16b, v0.16b",
                "mov v21.16b, v0.16b", "mov v22.16b, v0.16b", "mov v23.16b, v0.16b", "mov v24.16b, v0.16b",
                "mov v25.16b, v0.16b", "mov v26.16b, v0.16b", "mov v27.16b, v0.16b", "mov v28.16b, v0.16b",
                "mov v29.16b, v0.16b", "mov v30.16b, v0.16b", "mov v31.16b, v0.16b",
                "svc #0",
                "stp q0, q1, [{o}, #0]", "stp q2, q3, [{o}, #32]", "stp q4, q5, [{o}, #64]", "stp q6, q7, [{o}, #96]",
                "stp q8, q9, [{o}, #128]", "stp q10, q11, [{o}, #160]", "stp q12, q13, [{o}, #192]", "stp q14, q15, [{o}, #224]",
                "stp q16, q17, [{o}, #256]", "stp q18, q19, [{o}, #288]", "stp q20, q21, [{o}, #320]", "stp q22, q23, [{o}, #352]",
                "stp q24, q25, [{o}, #384]", "stp q26, q27, [{o}, #416]", "stp q28, q29, [{o}, #448]", "stp q30, q31, [{o}, #480]",
                p = in(reg) &PATTERN as *const u128,
                o = in(reg) regs.as_mut_ptr(),
                inout("x7") abi::sys::RECV => _,
                // (`out`, not `lateout`: `o` is used after the call and
                // must not share a register the event overwrites.)
                out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            );
        }
        // SAFETY: the block stored all 32 registers into it.
        let regs = unsafe { regs.assume_init() };
        match regs.iter().position(|&r| r != PATTERN) {
            None => debug_println!("fpu_b: my FP/SIMD registers survived fpu_a's use of FP"),
            Some(i) => debug_println!("fpu_b: q{} changed to {:#x}", i, regs[i]),
        }
        Ok(())
    }
}
