//! The hostile client: sends the filter server malformed requests of every
//! kind, good ones between them and a flood, and checks each answer:
//! `N bad requests refused, M good requests served, 0 lost`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_clients::hostile::Hostile {
    blk_clients::hostile::Hostile::new()
}
