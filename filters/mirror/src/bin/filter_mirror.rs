//! The mirror filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=post,setup", "ops=read,write,flush", "params=", "links=1", "bounce=0", "keeps=keeps this disk and its linked disk alike", "linked=read-write");

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<filter_mirror::Mirror> {
    blk_filter::FilterPd::start(|_| Ok(filter_mirror::Mirror::new(blk_filter::say)))
}
