//! First instructions: leave EL2 if QEMU entered there, turn the MMU on with
//! the tables the tool built, move to the upper half, and call `kmain`.
//!
//! This runs at the physical load address with the MMU off. `adrp` is
//! PC-relative, so symbol addresses it computes are physical here; literal
//! loads (`ldr xN, =sym`) give the linked, upper-half addresses.

use bootspec::Header;
use core::mem::offset_of;

/// Memory attributes, indexed by a descriptor's AttrIndx: 0 device
/// nGnRnE, 1 normal write-back, 2 normal non-cacheable. The tool uses the
/// same indices (`tool/src/pagetable.rs`).
const MAIR: u64 = 0x00 | 0xff << 8 | 0x44 << 16;

/// 48-bit address spaces in both halves, 4 KiB granule, write-back
/// inner-shareable walks, 40-bit physical addresses, 8-bit ASIDs from TTBR0.
const TCR: u64 = 16                // T0SZ
    | 0b01 << 8 | 0b01 << 10 | 0b11 << 12 // walks: WB WA, inner shareable
    | 16 << 16                   // T1SZ
    | 0b01 << 24 | 0b01 << 26 | 0b11 << 28
    | 0b10 << 30                 // TG1 = 4 KiB
    | 0b010 << 32; // IPS = 40 bits

/// MMU and caches on; writable memory is never executable (WXN); EL0 may
/// use DC ZVA and read CTR_EL0; WFI/WFE at EL0 trap to the kernel.
const SCTLR: u64 = 1 << 0         // M
    | 1 << 2                       // C
    | 1 << 3 | 1 << 4              // SA, SA0: stack alignment checks
    | 1 << 12                      // I
    | 1 << 14 | 1 << 15            // DZE, UCT
    | 1 << 19                      // WXN
    | 1 << 11 | 1 << 20 | 1 << 22 | 1 << 23 | 1 << 28 | 1 << 29; // RES1

/// Size of the one kernel stack.
pub const KERNEL_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
pub struct KernelStack(pub [u8; KERNEL_STACK_SIZE]);

#[no_mangle]
pub static mut KERNEL_STACK: KernelStack = KernelStack([0; KERNEL_STACK_SIZE]);

/// Physical address of the boot spec; the tool patches it into the image.
/// It lives in `.data` (not `.bss`) so it has bytes in the file to patch.
#[no_mangle]
#[used]
#[link_section = ".data"]
pub static mut KERNEL_BOOT_SPEC_PADDR: u64 = 0;

/// The exception level QEMU entered at (1 or 2); decides the PSCI conduit.
#[no_mangle]
pub static mut BOOT_EL: u64 = 0;

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    // Count cycles from the first instruction (boot-time benchmark).
    mov     x0, #{pmcr}
    msr     pmcr_el0, x0
    mov     x0, #(1 << 31)
    msr     pmcntenset_el0, x0
    mrs     x19, CurrentEL
    lsr     x19, x19, #2
    cmp     x19, #2
    b.ne    1f
    // EL2: make EL1 AArch64, give it the physical timer and FP/SIMD, drop.
    mov     x0, #(1 << 31)
    msr     hcr_el2, x0
    mov     x0, #3
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    mov     x0, #0x33ff
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mov     x0, #0x3c5
    msr     spsr_el2, x0
    adr     x0, 1f
    msr     elr_el2, x0
    eret
1:
    // EL1, MMU off. Find the boot spec (physical) and its tables.
    adrp    x20, KERNEL_BOOT_SPEC_PADDR
    ldr     x20, [x20, :lo12:KERNEL_BOOT_SPEC_PADDR]
    ldr     x1, [x20, #{ttbr1_off}]
    ldr     x2, [x20, #{ttbr0_off}]
    ldr     x0, ={mair}
    msr     mair_el1, x0
    ldr     x0, ={tcr}
    msr     tcr_el1, x0
    msr     ttbr1_el1, x1
    msr     ttbr0_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x0, ={sctlr}
    msr     sctlr_el1, x0
    isb
    ldr     x0, =2f
    br      x0
2:
    // Upper half from here on.
    ldr     x0, =KERNEL_STACK + {stack_size}
    mov     sp, x0
    ldr     x0, =__bss_start
    ldr     x1, =__bss_end
3:  cmp     x0, x1
    b.hs    4f
    stp     xzr, xzr, [x0], #16
    b       3b
4:
    ldr     x0, =BOOT_EL
    str     x19, [x0]
    ldr     x0, =exception_vectors
    msr     vbar_el1, x0
    isb
    mov     x0, x20
    bl      kmain
5:  wfi
    b       5b
"#,
    pmcr = const super::pmu::PMCR,
    ttbr1_off = const offset_of!(Header, kernel_ttbr1),
    ttbr0_off = const offset_of!(Header, boot_ttbr0),
    mair = const MAIR,
    tcr = const TCR,
    sctlr = const SCTLR,
    stack_size = const KERNEL_STACK_SIZE,
);
