//! The read-only filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre", "ops=write", "params=blocks", "links=0", "bounce=0");

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<filter_readonly::ReadOnly> {
    blk_filter::FilterPd::start(|cfg| filter_readonly::ReadOnly::new(cfg.param("blocks")))
}
