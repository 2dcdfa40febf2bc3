//! The highest-priority PD, so the first to run: reports the instructions
//! from reset to its init (the kernel starts the cycle counter at its first
//! instruction, and QEMU enters the image directly).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, NullHandler};

#[protection_domain]
fn init() -> NullHandler {
    let at_init = bench::cycles();
    debug_println!("boot_to_first_pd: {}", at_init);
    NullHandler
}
