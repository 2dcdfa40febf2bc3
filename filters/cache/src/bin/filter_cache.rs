//! The read-cache filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

// Flushes are wanted only to print the counters then.
#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre,post", "ops=read,write,flush", "params=blocks,size", "data=read-write", "links=0", "bounce=0", "caches=yes");

#[cfg(target_os = "none")]
mod pd {
    use filter_cache::{Arena, Cache, BUCKETS, MAX_BLOCKS};

    /// The cache's memory: zeroed `.bss` of this program, 8 MiB of data.
    static mut ARENA: Arena<MAX_BLOCKS, BUCKETS> = Arena::new();

    #[allow(unsafe_code)]
    fn arena() -> &'static mut Arena<MAX_BLOCKS, BUCKETS> {
        // SAFETY: called once, from `init`, before anything else in this
        // single-threaded PD runs, and nothing else names `ARENA`: the
        // reference is the only way to it for the PD's life.
        unsafe { &mut *core::ptr::addr_of_mut!(ARENA) }
    }

    fn say(args: core::fmt::Arguments) {
        microkit::debug_println!("{}: {}", blk::config::name_str(&blk_filter::config().name), args);
    }

    #[microkit::protection_domain]
    fn init() -> blk_filter::FilterPd<Cache<'static>> {
        blk_filter::FilterPd::start(|cfg| {
            let writable = cfg.rights & u32::from(abi::GRANT_WRITE) != 0;
            Cache::new(cfg.param("blocks"), cfg.param("size"), writable, arena(), say, microkit::time::now())
        })
    }
}
