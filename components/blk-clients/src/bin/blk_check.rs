//! The read-back half of the verify client: checks what an earlier run
//! wrote (after a reboot, or a crash).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_clients::verifier::Verifier {
    blk_clients::verifier::Verifier::new(false)
}
