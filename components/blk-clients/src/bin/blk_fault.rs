//! The device-fault client: makes the virtio-blk device fail (a buffer
//! where there is no memory; it must be attached directly to the driver)
//! and checks that the driver answers what the device lost and serves
//! requests again. See `blk_clients::device_fault`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_clients::device_fault::DeviceFault {
    blk_clients::device_fault::DeviceFault::new()
}
