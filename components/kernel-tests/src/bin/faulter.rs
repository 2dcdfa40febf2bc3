//! Faults on purpose; which fault depends on the PD's name, so one program
//! serves every fault test.
#![no_std]
#![no_main]

use microkit::{debug_println, pd_name, protection_domain, NullHandler};

/// Named so the end-to-end test can look up the addresses it expects.
#[no_mangle]
static FAULTER_READ_ONLY: u64 = 0x5eed;
#[no_mangle]
static mut FAULTER_WRITABLE: [u32; 4] = [0; 4];

#[protection_domain]
fn init() -> NullHandler {
    let name = pd_name();
    debug_println!("{}: about to fault", name);
    // SAFETY: none of these is safe; each one is the fault under test, and
    // the kernel stops this PD at the first instruction that faults.
    unsafe {
        match name {
            "fault_unmapped_read" => {
                core::ptr::read_volatile(0x1000_0000 as *const u64);
            }
            "orphan" => core::ptr::write_volatile(0x1234_0000 as *mut u64, 1),
            "fault_write_ro" => {
                core::arch::asm!("str {v}, [{a}]", a = in(reg) &FAULTER_READ_ONLY as *const u64, v = in(reg) 1u64);
            }
            "fault_exec_data" => {
                core::arch::asm!("blr {a}", a = in(reg) core::ptr::addr_of!(FAULTER_WRITABLE), clobber_abi("C"));
            }
            "fault_undefined" => core::arch::asm!("udf #0"),
            "fault_kernel_read" => {
                core::ptr::read_volatile(0xffff_0000_4020_0000 as *const u64);
            }
            _ => debug_println!("{}: no fault for this name", name),
        }
    }
    debug_println!("{}: still running after the fault; this must not happen", name);
    NullHandler
}
