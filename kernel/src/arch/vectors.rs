//! Exception vectors and the switch between EL0 and the kernel.
//!
//! While a PD runs, SP_EL1 points at its saved `UserContext`, so an entry
//! from EL0 stores the registers straight into the PD record, then moves to
//! the kernel stack and calls `handle_trap` (or, when the PD's x7 asks for a
//! hand-off, `handle_signal_recv`, `handle_pp_call` or `handle_reply_recv`).
//! That returns the context of the PD
//! to run next, which `return_to_user` loads before `eret`.
//! Exceptions taken in the kernel itself are bugs: they are reported and the
//! machine stops.

use crate::pd::UserContext;
use core::mem::{offset_of, size_of};

/// What `handle_trap` and the fast entries are told about the entry.
pub const TRAP_SYNC: u64 = 0;
pub const TRAP_IRQ: u64 = 1;
pub const TRAP_FIQ: u64 = 2;
pub const TRAP_SERROR: u64 = 3;
pub const TRAP_AARCH32: u64 = 4;

const _: () = assert!(size_of::<UserContext>() == 34 * 8);

core::arch::global_asm!(
    r#"
.macro kernel_entry kind
    .balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       kernel_fault
.endm

.macro user_entry kind
    .balign 0x80
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       save_user
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global exception_vectors
exception_vectors:
    // Current EL with SP_EL0: never used.
    kernel_entry 0
    kernel_entry 1
    kernel_entry 2
    kernel_entry 3
    // Current EL with SP_ELx: the kernel itself.
    kernel_entry 0
    kernel_entry 1
    kernel_entry 2
    kernel_entry 3
    // Lower EL, AArch64: the PDs.
    user_entry {sync}
    user_entry {irq}
    user_entry {fiq}
    user_entry {serror}
    // Lower EL, AArch32: PDs never run AArch32.
    user_entry {aarch32}
    user_entry {aarch32}
    user_entry {aarch32}
    user_entry {aarch32}

save_user:
    // sp = &current PD's UserContext; x0 and x1 are already stored.
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x2, sp_el0
    stp     x30, x2, [sp, #{sp_off} - 8]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #{pc_off}]
    ldr     x2, =KERNEL_STACK + {stack_size}
    mov     sp, x2
    mov     x0, x1
    // x7 still holds the PD's: a likely hand-off takes its own entry
    // (`signal_recv` first, the block path's), which costs every other
    // entry six instructions.
    cmp     x7, #{signal_recv}
    b.eq    3f
    cmp     x7, #{pp_call}
    b.eq    4f
    cmp     x7, #{reply_recv}
    b.eq    5f
    bl      handle_trap
    b       return_to_user
3:  bl      handle_signal_recv
    b       return_to_user
4:  bl      handle_pp_call
    b       return_to_user
5:  bl      handle_reply_recv
    // fall through with x0 = the context to resume

    .global return_to_user
return_to_user:
    mov     sp, x0
    ldp     x2, x3, [x0, #{pc_off}]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x30, x2, [x0, #{sp_off} - 8]
    msr     sp_el0, x2
    ldp     x2, x3, [x0, #16 * 1]
    ldp     x4, x5, [x0, #16 * 2]
    ldp     x6, x7, [x0, #16 * 3]
    ldp     x8, x9, [x0, #16 * 4]
    ldp     x10, x11, [x0, #16 * 5]
    ldp     x12, x13, [x0, #16 * 6]
    ldp     x14, x15, [x0, #16 * 7]
    ldp     x16, x17, [x0, #16 * 8]
    ldp     x18, x19, [x0, #16 * 9]
    ldp     x20, x21, [x0, #16 * 10]
    ldp     x22, x23, [x0, #16 * 11]
    ldp     x24, x25, [x0, #16 * 12]
    ldp     x26, x27, [x0, #16 * 13]
    ldp     x28, x29, [x0, #16 * 14]
    ldp     x0, x1, [x0, #0]
    eret

kernel_fault:
    ldr     x4, =KERNEL_STACK + {stack_size}
    mov     sp, x4
    bl      handle_kernel_fault
6:  wfi
    b       6b
"#,
    sync = const TRAP_SYNC,
    irq = const TRAP_IRQ,
    fiq = const TRAP_FIQ,
    serror = const TRAP_SERROR,
    aarch32 = const TRAP_AARCH32,
    signal_recv = const abi::sys::SIGNAL_RECV,
    pp_call = const abi::sys::PP_CALL,
    reply_recv = const abi::sys::REPLY_RECV,
    sp_off = const offset_of!(UserContext, sp),
    pc_off = const offset_of!(UserContext, pc),
    stack_size = const super::boot::KERNEL_STACK_SIZE,
);

extern "C" {
    /// Load `ctx` into the CPU and drop to EL0. Never returns.
    pub fn return_to_user(ctx: *mut UserContext) -> !;
}
