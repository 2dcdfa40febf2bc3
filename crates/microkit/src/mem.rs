//! `memcpy`, `memmove` and `memset` for protection domains.
//!
//! Rust's own (`compiler_builtins`, linked weak) move a word per load and
//! store at best: a 4 KiB copy costs about 2,070 instructions and a 4 KiB
//! fill about 1,560 on QEMU's cortex-a53, which was a tenth of a request
//! in `filter_crypt` (which has since stopped copying a write's
//! ciphertext, and wipes with `wipe_simd` below). These move 64 bytes per
//! loop with paired loads and stores of general registers: about 780 and
//! 450.
//!
//! - General registers only: a PD that does not use FP/SIMD keeps not
//!   using it (the kernel switches FP state lazily, on a trap).
//! - No alignment is required: the kernel runs EL0 with alignment checks
//!   off (SCTLR_EL1.A clear), where unaligned loads and stores of Normal
//!   memory are architectural. Every region the storage tool maps is
//!   Normal memory. A `cached="false"` map is Device memory, where an
//!   unaligned access faults whatever SCTLR says: device registers are
//!   reached one aligned volatile access at a time, and copies into or out
//!   of such a map must start and end at 8-byte aligned addresses.
//! - Tails: eight bytes, then one byte, at a time.

// SAFETY (for the three functions): they are the C functions, with the C
// contracts the compiler relies on when it calls them: `dst` and `src`
// valid for `n` bytes; for `memcpy` the ranges do not overlap, `memmove`
// allows it. Each touches exactly `[dst, dst + n)` (and reads `[src, src +
// n)`), uses only the caller-saved registers x0-x11 and the flags, and
// returns `dst` in x0. Being naked, they have no prologue.

/// Copies `n` bytes from `src` to `dst` (the ranges do not overlap).
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    core::arch::naked_asm!(
        "mov x3, x0",
        // 64 bytes a round while at least 64 are left (x2 counts down
        // from n - 64; a borrow ends it).
        "subs x2, x2, #64",
        "b.lo 2f",
        "1:",
        "ldp x4, x5, [x1]",
        "ldp x6, x7, [x1, #16]",
        "ldp x8, x9, [x1, #32]",
        "ldp x10, x11, [x1, #48]",
        "add x1, x1, #64",
        "stp x4, x5, [x3]",
        "stp x6, x7, [x3, #16]",
        "stp x8, x9, [x3, #32]",
        "stp x10, x11, [x3, #48]",
        "add x3, x3, #64",
        "subs x2, x2, #64",
        "b.hs 1b",
        "2:",
        "adds x2, x2, #64",
        "b.eq 5f",
        "3:",
        "cmp x2, #8",
        "b.lo 4f",
        "ldr x4, [x1], #8",
        "str x4, [x3], #8",
        "sub x2, x2, #8",
        "b 3b",
        "4:",
        "cbz x2, 5f",
        "ldrb w4, [x1], #1",
        "strb w4, [x3], #1",
        "sub x2, x2, #1",
        "b 4b",
        "5:",
        "ret",
    )
}

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    core::arch::naked_asm!(
        // Forwards is right unless dst lies inside (src, src + n): then
        // the unsigned distance dst - src is below n.
        "sub x3, x0, x1",
        "cmp x3, x2",
        "b.hs {memcpy}",
        // Backwards from the ends; each round loads all its bytes before
        // it stores any, so the overlap is read before it is overwritten.
        "add x1, x1, x2",
        "add x3, x0, x2",
        "subs x2, x2, #64",
        "b.lo 2f",
        "1:",
        "ldp x4, x5, [x1, #-16]",
        "ldp x6, x7, [x1, #-32]",
        "ldp x8, x9, [x1, #-48]",
        "ldp x10, x11, [x1, #-64]",
        "sub x1, x1, #64",
        "stp x4, x5, [x3, #-16]",
        "stp x6, x7, [x3, #-32]",
        "stp x8, x9, [x3, #-48]",
        "stp x10, x11, [x3, #-64]",
        "sub x3, x3, #64",
        "subs x2, x2, #64",
        "b.hs 1b",
        "2:",
        "adds x2, x2, #64",
        "b.eq 5f",
        "3:",
        "cmp x2, #8",
        "b.lo 4f",
        "ldr x4, [x1, #-8]!",
        "str x4, [x3, #-8]!",
        "sub x2, x2, #8",
        "b 3b",
        "4:",
        "cbz x2, 5f",
        "ldrb w4, [x1, #-1]!",
        "strb w4, [x3, #-1]!",
        "sub x2, x2, #1",
        "b 4b",
        "5:",
        "ret",
        memcpy = sym memcpy,
    )
}

/// Sets `n` bytes at `dst` to the low byte of `c`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    core::arch::naked_asm!(
        // The byte in all eight lanes of x1.
        "and x1, x1, #0xff",
        "mov x4, #0x0101010101010101",
        "mul x1, x1, x4",
        "mov x3, x0",
        "subs x2, x2, #64",
        "b.lo 2f",
        "1:",
        "stp x1, x1, [x3]",
        "stp x1, x1, [x3, #16]",
        "stp x1, x1, [x3, #32]",
        "stp x1, x1, [x3, #48]",
        "add x3, x3, #64",
        "subs x2, x2, #64",
        "b.hs 1b",
        "2:",
        "adds x2, x2, #64",
        "b.eq 5f",
        "3:",
        "cmp x2, #8",
        "b.lo 4f",
        "str x1, [x3], #8",
        "sub x2, x2, #8",
        "b 3b",
        "4:",
        "cbz x2, 5f",
        "strb w1, [x3], #1",
        "sub x2, x2, #1",
        "b 4b",
        "5:",
        "ret",
    )
}

/// Zeroes `buf` 64 bytes a store from four zeroed SIMD registers (the
/// rest a byte at a time, volatile), in stores the compiler never leaves
/// out: a wipe of secrets. For a PD that uses FP/SIMD anyway (`filter_crypt`,
/// whose AES runs there); one that does not would take the FP unit for
/// it. A 4 KiB wipe takes about 135 instructions, `memset` about 450.
pub fn wipe_simd(buf: &mut [u8]) {
    let (blocks, rest) = buf.as_chunks_mut::<64>();
    let n = blocks.len();
    if n > 0 {
        // SAFETY: stores exactly the `n * 64` bytes of `blocks`, which the
        // exclusive borrow gives us; v0-v3 are declared clobbered.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                "movi v0.16b, #0",
                "movi v1.16b, #0",
                "movi v2.16b, #0",
                "movi v3.16b, #0",
                // An odd block first, then two a loop.
                "tbz {n}, #0, 2f",
                "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{p}], #64",
                "subs {n}, {n}, #1",
                "b.eq 3f",
                "2:",
                "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{p}], #64",
                "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{p}], #64",
                "subs {n}, {n}, #2",
                "b.ne 2b",
                "3:",
                p = inout(reg) blocks.as_mut_ptr() => _,
                n = inout(reg) n => _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                options(nostack),
            );
        }
    }
    for b in rest {
        // SAFETY: `b` is a byte of the exclusively borrowed buffer; the
        // volatile store is never left out, though nothing reads it.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile(b, 0)
        };
    }
}
