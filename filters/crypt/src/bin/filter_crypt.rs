//! The LUKS1 encryption filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

// The bounce buffer holds the encrypted copies of writes in flight (128
// slots of up to 16 blocks) and, during setup, the header and one key
// slot's material. Writes are encrypted before they go down (the pre-op),
// reads decrypted after they came back (the post-op).
#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre,post,setup", "ops=read,write", "pre_ops=write", "params=passphrase", "needs=passphrase", "data=read-write", "links=0", "bounce=8388608", "keeps=keeps its LUKS header there and every block encrypted", "block_us=25", "min_budget=10000");

#[cfg(target_os = "none")]
fn clock() -> filter_crypt::Clock {
    filter_crypt::Clock { now: microkit::time::now, hz: microkit::time::frequency() }
}

#[cfg(target_os = "none")]
#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<filter_crypt::Crypt> {
    blk_filter::FilterPd::start(|cfg| filter_crypt::Crypt::new(cfg.param("passphrase"), cfg.rights & u32::from(abi::GRANT_WRITE) != 0, blk_filter::bounce(), blk_filter::say, clock()))
}
