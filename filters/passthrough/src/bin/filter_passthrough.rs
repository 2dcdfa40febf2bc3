//! The passthrough filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre,post", "ops=read,write,flush", "params=", "links=0", "bounce=0");

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<filter_passthrough::Passthrough> {
    blk_filter::FilterPd::start(|cfg| Ok(filter_passthrough::Passthrough::new(cfg.rights != 0)))
}
