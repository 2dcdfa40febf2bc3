//! The linked-clone filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

// The bounce buffer: the header page, the map's pages and a staging page
// per request slot (`filter_overlay::BOUNCE`).
#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre,post,setup", "ops=read,write,flush", "params=", "data=read-write", "links=1", "restart=no", "bounce=659456", "keeps=keeps its header and its map of the clone's blocks there", "linked=read");

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<filter_overlay::Overlay<'static>> {
    blk_filter::FilterPd::start(|_| Ok(filter_overlay::Overlay::new(blk_filter::bounce(), blk_filter::say)))
}
