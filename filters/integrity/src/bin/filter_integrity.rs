//! The per-block integrity filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

// The bounce buffer: the header page, a scratch page and the MAC table
// (`filter_integrity::BOUNCE`). The pre-op has work only before a flush
// (writing the MAC table); reads and writes are checked and recorded after
// they completed.
#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre,post,setup", "ops=read,write,flush", "pre_ops=flush", "post_ops=read,write", "params=key", "needs=key", "data=read-write", "links=0", "restart=no", "bounce=8396800", "keeps=keeps its header and a MAC of every block there", "block_us=15");

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<filter_integrity::Integrity<'static>> {
    blk_filter::FilterPd::start(|cfg| filter_integrity::Integrity::new(cfg.param("key"), blk_filter::bounce(), blk_filter::say))
}
