//! Powering off: semihosting `SYS_EXIT_EXTENDED` gives QEMU an exit status;
//! without `-semihosting` the `hlt` traps and PSCI `SYSTEM_OFF` ends the run
//! with status 0.

use super::boot::BOOT_EL;

const SYS_EXIT_EXTENDED: u64 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

core::arch::global_asm!(
    r#"
    .global semihosting_exit
semihosting_exit:
    mov     x1, x0
    mov     x0, #{exit}
semihosting_hlt:
    hlt     #0xf000
    ret
"#,
    exit = const SYS_EXIT_EXTENDED,
);

extern "C" {
    /// Semihosting call with the parameter block `block`.
    fn semihosting_exit(block: *const u64);
    static semihosting_hlt: u8;
}

pub fn power_off(status: u64) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status];
    // SAFETY: the semihosting call reads the two-word block and ends the
    // run; if semihosting is off, `hlt` traps to `handle_kernel_fault`,
    // which recognises its address and calls `psci_off`.
    unsafe { semihosting_exit(block.as_ptr()) };
    psci_off()
}

pub fn psci_off() -> ! {
    // SAFETY: BOOT_EL was written once at boot. PSCI SYSTEM_OFF does not
    // return; QEMU's conduit is HVC when it entered at EL1, SMC when EL2 exists.
    let boot_el = unsafe { core::ptr::addr_of!(BOOT_EL).read() };
    unsafe {
        if boot_el == 2 {
            core::arch::asm!("smc #0", in("x0") PSCI_SYSTEM_OFF, options(noreturn));
        } else {
            core::arch::asm!("hvc #0", in("x0") PSCI_SYSTEM_OFF, options(noreturn));
        }
    }
}

/// Whether a kernel-mode exception at `pc` is the semihosting `hlt`.
pub fn is_semihosting_trap(pc: u64) -> bool {
    pc == core::ptr::addr_of!(semihosting_hlt) as u64
}
