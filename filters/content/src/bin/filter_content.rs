//! The content-disk filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

// The bounce buffer (`filter_content::BOUNCE`): setup reads the manifest
// a step (64 blocks) at a time into its start, and copies it into the PD's
// own memory; then each request slot has staging pages for the file data
// of a read served in pieces. Its upcalls' budget unless declared: one
// upcall may synthesize up to 1,024 directory blocks (32 reads of 32
// blocks), every name of a full application disk (131,072), which took
// between 50 and 100 ms under `make run`'s QEMU; 400 ms leaves room.
#[cfg(target_os = "none")]
blk::filter_manifest!("hooks=pre,setup", "ops=read,write", "params=", "data=read-write", "links=0", "bounce=4456448", "budget=400000", "block_us=300", "keeps=serves a volume laid out at setup from the files and manifest there");
#[cfg(target_os = "none")]
const _: () = assert!(filter_content::BOUNCE == 4_456_448, "the manifest's bounce= must be filter_content::BOUNCE");

#[cfg(target_os = "none")]
mod pd {
    use fatdisk::EntryLayout;

    /// The largest manifest it reads, and its layout: as large as an
    /// application disk's may be (`make appdisk` refuses larger).
    const MANIFEST_BYTES: usize = fatdisk::manifest::MAX_MANIFEST_BYTES;
    const MAX_ENTRIES: usize = fatdisk::manifest::MAX_ENTRIES as usize;

    struct Memory {
        manifest: [u8; MANIFEST_BYTES],
        layouts: [EntryLayout; MAX_ENTRIES],
    }

    static mut MEMORY: Memory = Memory { manifest: [0; MANIFEST_BYTES], layouts: [EntryLayout::EMPTY; MAX_ENTRIES] };

    /// The filter's own memory for the manifest and its layout (zeroed
    /// .bss of this program).
    #[allow(unsafe_code)]
    fn memory() -> (&'static mut [u8], &'static mut [EntryLayout]) {
        // SAFETY: called once, from `init`, before anything else in this
        // single-threaded PD runs, and nothing else names `MEMORY`: the
        // references are the only way to it for the PD's life.
        let m = unsafe { &mut *core::ptr::addr_of_mut!(MEMORY) };
        (&mut m.manifest, &mut m.layouts)
    }

    #[microkit::protection_domain]
    fn init() -> blk_filter::FilterPd<filter_content::Content> {
        blk_filter::FilterPd::start(|_| {
            let (manifest, layouts) = memory();
            Ok(filter_content::Content::new(manifest, layouts, blk_filter::bounce(), blk_filter::say))
        })
    }
}
