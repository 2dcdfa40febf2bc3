//! The verify client: writes stamped blocks, flushes, reads them back and
//! checks every one: `verified N blocks, 0 mismatches`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_clients::verifier::Verifier {
    blk_clients::verifier::Verifier::new(true)
}
