//! The content disk, one block at a time: each 4 KiB block is either
//! synthesized here or is a block of the application disk.
//!
//! | block | source |
//! |---|---|
//! | 0 | synthesized: boot sector (FAT32: FSInfo, their backups) ([`crate::boot`]) |
//! | 1 .. 4 | synthesized: zeros (the rest of the reserved sectors) |
//! | the two FATs | synthesized: 2048 (FAT16) or 1024 (FAT32) entries from the runs of the entries they cover |
//! | FAT16's root area, a directory's cluster | synthesized: its 128 slots ([`crate::dir`]) |
//! | a file's cluster | the application disk: block `start + (cluster - first cluster)` |
//! | a free cluster, or past the end | synthesized: zeros |
//!
//! A file's last cluster is read from the application disk like the rest:
//! FAT ignores the bytes past the end of a file, and the writer pads files
//! with zeros, so they read as zeros anyway.
//!
//! # Cost per block
//!
//! One binary search over the entries' runs (O(log entries)), then for a
//! FAT block 1024 or 2048 entries written, walking forward through the runs it
//! covers; for a directory block one more binary search over the
//! directory's children and at most 128 slots written, each from its
//! child's name (O(name length)). No block scans all entries.

use crate::boot;
use crate::dir::{self, DIR_ENTRY_SIZE};
use crate::layout::{self, EntryLayout, FatType, Layout, FAT16_ENTRIES_PER_BLOCK, FAT_ENTRIES_PER_BLOCK, FIRST_CLUSTER, SLOTS_PER_CLUSTER};
use crate::manifest::{Kind, Manifest, BLOCK_SIZE};
use crate::names;

/// Where a block's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The block was synthesized into the caller's buffer.
    Synthesized,
    /// The block is application-disk block `.0`; the buffer was not
    /// touched.
    AppDisk(u64),
}

/// FAT32's end-of-chain mark (any value from `0x0FFFFFF8` is one); FAT16
/// takes its low 16 bits, as it does of the two entries below.
const END_OF_CHAIN: u32 = 0x0FFF_FFFF;
/// FAT entry 0: the media byte in the low 8 bits, the rest set.
const FAT_ENTRY_0: u32 = 0x0FFF_FF00 | 0xF8;
/// FAT entry 1: an end-of-chain mark whose top bits also say "cleanly
/// unmounted" and "no I/O errors" (bits 27 and 26 in FAT32, 15 and 14
/// in FAT16).
const FAT_ENTRY_1: u32 = 0x0FFF_FFFF;

/// A content disk: a FAT volume of the applications on an application
/// disk, synthesized on demand.
#[derive(Clone, Copy, Debug)]
pub struct ContentDisk<'a> {
    layout: Layout<'a>,
}

impl<'a> ContentDisk<'a> {
    /// Lay out `manifest` as a FAT volume; `scratch` needs one
    /// [`EntryLayout`] per manifest entry (16 bytes each) and is borrowed
    /// for as long as the disk is served.
    pub fn new(manifest: Manifest<'a>, scratch: &'a mut [EntryLayout]) -> Result<ContentDisk<'a>, layout::Error> {
        Ok(ContentDisk { layout: Layout::new(manifest, scratch)? })
    }

    /// The content disk of a layout made a slice at a time
    /// ([`crate::Laying`]).
    pub fn laid_out(layout: Layout<'a>) -> ContentDisk<'a> {
        ContentDisk { layout }
    }

    /// The layout: geometry and where each entry is.
    pub fn layout(&self) -> &Layout<'a> {
        &self.layout
    }

    /// The content disk's size in 4 KiB blocks.
    pub fn blocks(&self) -> u64 {
        self.layout.blocks()
    }

    /// Block `block` of the content disk: synthesized into `out`, or the
    /// application-disk block that holds it. A block past the end reads as
    /// zeros (a filter should refuse such a read before it gets here).
    pub fn block(&self, block: u64, out: &mut [u8; BLOCK_SIZE]) -> Source {
        let l = &self.layout;
        if block >= l.data_start() {
            return self.data_block(block - l.data_start(), out);
        }
        let root = l.root_area();
        if root.contains(&block) {
            // At most FAT16_MAX_ROOT_SLOTS / 128 blocks.
            self.dir_block(0, (block - root.start) as u32, out);
            return Source::Synthesized;
        }
        out.fill(0);
        if block == 0 {
            boot::boot_block(l, out);
        } else if block >= l.fat_start(0) {
            // Both FATs are the same.
            let index = (block - l.fat_start(0)) % u64::from(l.fat_blocks());
            self.fat_block(index as u32, out);
        }
        Source::Synthesized
    }

    /// FAT block `index`: entries `1024 * index ..` (FAT32) or `2048 *
    /// index ..` (FAT16).
    fn fat_block(&self, index: u32, out: &mut [u8; BLOCK_SIZE]) {
        let l = &self.layout;
        let (per_block, width) = match l.fat_type() {
            FatType::Fat16 => (FAT16_ENTRIES_PER_BLOCK, 2),
            FatType::Fat32 => (FAT_ENTRIES_PER_BLOCK, 4),
        };
        let first = index * per_block;
        let used_end = FIRST_CLUSTER + l.used_clusters();
        let mut entry = l.entry_at(first.max(FIRST_CLUSTER));
        for (k, word) in out.chunks_exact_mut(width).enumerate() {
            let cluster = first + k as u32;
            let value = match cluster {
                0 => FAT_ENTRY_0,
                1 => FAT_ENTRY_1,
                c if c >= used_end => 0,
                c => {
                    // Walk forward to the run holding c (runs have no gaps
                    // but some are empty).
                    let mut run = entry.map_or(0..0, |i| l.clusters_of(i));
                    while !run.contains(&c) {
                        entry = entry.map(|i| i + 1);
                        match entry {
                            Some(i) if i < l.manifest().len() => run = l.clusters_of(i),
                            _ => break,
                        }
                    }
                    if c + 1 < run.end {
                        c + 1
                    } else {
                        END_OF_CHAIN
                    }
                }
            };
            // FAT16 keeps the low half (a FAT16 cluster number fits it).
            word.copy_from_slice(&value.to_le_bytes()[..width]);
        }
    }

    /// Data-area block `index` (cluster `index + 2`).
    fn data_block(&self, index: u64, out: &mut [u8; BLOCK_SIZE]) -> Source {
        let l = &self.layout;
        let owner = u32::try_from(index).ok().and_then(|i| i.checked_add(FIRST_CLUSTER)).and_then(|c| l.entry_at(c).map(|e| (c, e)));
        let Some((cluster, entry)) = owner else {
            out.fill(0);
            return Source::Synthesized;
        };
        let run = l.clusters_of(entry);
        let e = l.manifest().meta(entry);
        match e.kind {
            Kind::File => Source::AppDisk(e.start + u64::from(cluster - run.start)),
            Kind::Dir => {
                self.dir_block(entry, cluster - run.start, out);
                Source::Synthesized
            }
        }
    }

    /// Cluster `k` of directory `dir`: slots `128 k .. 128 (k + 1)`.
    fn dir_block(&self, dir: u32, k: u32, out: &mut [u8; BLOCK_SIZE]) {
        out.fill(0);
        let l = &self.layout;
        let m = l.manifest();
        let window = k * SLOTS_PER_CLUSTER..(k + 1) * SLOTS_PER_CLUSTER;

        // The directory's own entries: the label, or `.` and `..`.
        if dir == 0 {
            if let Some(s) = slot_in(out, &window, 0) {
                dir::short_entry(s, &dir::LABEL, dir::ATTR_VOLUME_ID, 0, 0, m.entry(0).modified);
            }
        } else {
            if let Some(s) = slot_in(out, &window, 0) {
                dir::short_entry(s, &dir::DOT, dir::ATTR_DIRECTORY, l.clusters_of(dir).start, 0, m.entry(dir).modified);
            }
            if let Some(s) = slot_in(out, &window, 1) {
                let parent = m.meta(dir).parent;
                // `..` in a directory of the root names cluster 0, not the
                // root's cluster: the specification's rule.
                let cluster = if parent == 0 { 0 } else { l.clusters_of(parent).start };
                // (Both carry the directory's own times, as the
                // specification has them.)
                dir::short_entry(s, &dir::DOTDOT, dir::ATTR_DIRECTORY, cluster, 0, m.entry(dir).modified);
            }
        }

        let children = l.children(dir);
        let mut child = l.child_at_slot(children.clone(), window.start);
        let mut units = [0u16; names::MAX_NAME_UNITS];
        while child < children.end && l.slot(child) < window.end {
            let e = m.entry(child);
            let (short, long) = names::short_name_and_needs_long(e.name, child - children.start + 1);
            // Its long name's units, once (at most MAX_NAME_UNITS: the
            // manifest's names are checked), and its parts
            // (`names::lfn_entries`).
            let (mut len, mut parts) = (0usize, 0);
            if long {
                len = names::utf16_units(e.name, &mut units);
                parts = len.div_ceil(names::UNITS_PER_LFN_ENTRY);
            }
            let checksum = names::lfn_checksum(&short);
            let first_slot = l.slot(child);
            for r in 0..=parts {
                let Some(s) = slot_in(out, &window, first_slot + r as u32) else { continue };
                if r < parts {
                    // Stored last part first.
                    dir::long_entry(s, &units[..len], parts - r, parts, checksum);
                } else {
                    let run = l.clusters_of(child);
                    let (attr, size) = match e.kind {
                        Kind::Dir => (dir::ATTR_DIRECTORY, 0),
                        // At most MAX_FILE_SIZE, which fits.
                        Kind::File => (dir::ATTR_READ_ONLY | dir::ATTR_ARCHIVE, e.size as u32),
                    };
                    let cluster = if run.is_empty() { 0 } else { run.start };
                    dir::short_entry(s, &short, attr, cluster, size, e.modified);
                }
            }
            child += 1;
        }
    }
}

/// Directory slot `slot` in `out`, if it lies in the cluster `out` holds
/// (slots `window`).
fn slot_in<'b>(out: &'b mut [u8; BLOCK_SIZE], window: &core::ops::Range<u32>, slot: u32) -> Option<&'b mut [u8; DIR_ENTRY_SIZE]> {
    if !window.contains(&slot) {
        return None;
    }
    let off = (slot - window.start) as usize * DIR_ENTRY_SIZE;
    out.get_mut(off..off + DIR_ENTRY_SIZE)?.try_into().ok()
}
