//! Panics in its init: with no parent to restart it and nothing else able
//! to run, the kernel must say the system is stuck and power off.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{protection_domain, NullHandler};

#[protection_domain]
fn init() -> NullHandler {
    panic!("nothing to do but give up");
}
