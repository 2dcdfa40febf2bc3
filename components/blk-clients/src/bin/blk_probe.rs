//! The probe client: writes and reads block 0 when told to, prints the
//! answers, asks for its disk's filter statistics.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_clients::probe::Probe {
    blk_clients::probe::Probe::new()
}
