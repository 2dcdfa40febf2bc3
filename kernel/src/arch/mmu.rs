//! Address-space switches. The tables themselves were built by the tool;
//! the kernel only points TTBR0 at a PD's table, tagged with its ASID, so no
//! TLB flush is needed on a switch.

static mut INSTALLED: u64 = 0;

/// Install the address space `ttbr0` (table address | ASID << 48).
pub fn switch_to(ttbr0: u64) {
    // SAFETY: single core, masked interrupts; `ttbr0` comes from the boot
    // spec and names a table the tool built for this ASID.
    unsafe {
        if core::ptr::addr_of!(INSTALLED).read() != ttbr0 {
            core::ptr::addr_of_mut!(INSTALLED).write(ttbr0);
            core::arch::asm!("msr ttbr0_el1, {}", "isb", in(reg) ttbr0);
        }
    }
}
