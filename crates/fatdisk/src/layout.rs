//! Where everything goes on the content disk: the volume's geometry and
//! each manifest entry's clusters and directory slots.
//!
//! # FAT16 or FAT32
//!
//! The volume is as small as its files allow: FAT16 when they fit its
//! cluster count (a folder of up to ~255 MiB gives a volume of 16-256
//! MiB), FAT32 otherwise. A smaller volume copies faster and fits a
//! smaller disk; a client sees an ordinary FAT volume either way. The type
//! follows from the cluster count alone, as every FAT driver decides it.
//!
//! # Geometry
//!
//! | blocks (4 KiB) | what |
//! |---|---|
//! | `0 .. 4` | reserved: 32 sectors; the boot sector in sector 0 (FAT32: FSInfo in 1, their backups in 6 and 7) |
//! | `4 .. 4 + F` | the first FAT: `F` blocks, 2048 two-byte (FAT16) or 1024 four-byte (FAT32) entries a block |
//! | `4 + F .. 4 + 2F` | the second FAT, the same |
//! | `4 + 2F .. 4 + 2F + R` | FAT16 only: the root directory, `R` blocks of 128 entries (at least 4: 512 entries) |
//! | `4 + 2F + R ..` | the data area: cluster `c` (from 2) is block `4 + 2F + R + c - 2` |
//!
//! Sectors are 512 bytes and a cluster is 8 of them, 4 KiB: one content
//! block per cluster, and the reserved area, each FAT and FAT16's root a
//! whole number of blocks, so every cluster lines up with a block and a
//! file's clusters map one to one onto its blocks on the application disk.
//!
//! # Allocation
//!
//! Entries take clusters in manifest order, each a contiguous run, with no
//! gaps: the root first (at cluster 2 in FAT32; in FAT16 it has its own
//! area and no clusters), then every other entry. A directory takes
//! `ceil(slots / 128)` clusters (at least 1), a file `ceil(size / 4096)`
//! (none if empty). So the runs' ends increase down the table and the entry
//! owning a cluster is found by binary search over them.
//!
//! # Cluster counts
//!
//! A volume is FAT16 with 4,085 to 65,524 clusters and FAT32 from 65,525
//! (fewer than 4,085 is FAT12), and Microsoft's specification warns
//! against counts within 16 of either threshold. So a FAT16 volume has
//! [`FAT16_MIN_CLUSTERS`] = 4,101 (16 MiB) to [`FAT16_MAX_CLUSTERS`] =
//! 65,508 clusters, and a FAT32 volume at least [`MIN_CLUSTERS`] = 65,541
//! (256 MiB): whatever the entries do not use is free space that costs
//! nothing, since free clusters are synthesized zeros. At most
//! [`MAX_CLUSTERS`] = 268,435,445 clusters (about 1 TiB of 4 KiB
//! clusters): FAT32's cluster numbers are 28 bits and the top ones are
//! reserved. FAT16's root holds at most [`FAT16_MAX_ROOT_SLOTS`] entries
//! (its count is 16 bits, in whole blocks); a root with more makes the
//! volume FAT32.
//!
//! # Directories
//!
//! A directory is at most [`MAX_DIR_SLOTS`] = 65,536 entries of 32 bytes
//! (2 MiB); a name costs one short entry plus one long-name entry per 13
//! UTF-16 units. A subdirectory starts with `.` and `..`; the root starts
//! with the volume label. Then the children, in manifest order.
//!
//! # Scratch
//!
//! The caller lends one [`EntryLayout`] (16 bytes) per manifest entry:
//! where each run ends, where each entry's directory slots start and where
//! each directory's children are. Nothing else is kept, and nothing is
//! allocated.

use crate::manifest::{self, Kind, Manifest, BLOCK_SIZE};
use crate::names;
use core::fmt;
use core::ops::Range;

/// Bytes per sector in the boot sector's BPB.
pub const SECTOR_SIZE: u32 = 512;
/// Sectors per cluster: a cluster is one 4 KiB block.
pub const SECTORS_PER_CLUSTER: u32 = (BLOCK_SIZE as u32) / SECTOR_SIZE;
/// Reserved sectors before the first FAT: 32, as the specification
/// suggests for FAT32; four blocks. (For FAT16 it says 1, and that
/// Microsoft's drivers, like Linux's, dosfstools and mtools, take any
/// count: 32 keeps every FAT and cluster on a block boundary. Firmware that
/// assumes 1 would misread the volume.)
pub const RESERVED_SECTORS: u32 = 32;
/// [`RESERVED_SECTORS`] in blocks.
pub const RESERVED_BLOCKS: u64 = (RESERVED_SECTORS / SECTORS_PER_CLUSTER) as u64;
/// FAT32 entries in one block.
pub const FAT_ENTRIES_PER_BLOCK: u32 = (BLOCK_SIZE / 4) as u32;
/// FAT16 entries in one block.
pub const FAT16_ENTRIES_PER_BLOCK: u32 = (BLOCK_SIZE / 2) as u32;
/// Directory entries in one cluster.
pub const SLOTS_PER_CLUSTER: u32 = (BLOCK_SIZE / crate::dir::DIR_ENTRY_SIZE) as u32;
/// The first data cluster: FAT entries 0 and 1 are not clusters.
pub const FIRST_CLUSTER: u32 = 2;
/// The fewest clusters a FAT32 volume gets: FAT32's minimum of 65,525,
/// plus the margin of 16 the specification asks for.
pub const MIN_CLUSTERS: u32 = 65_525 + 16;
/// The most clusters FAT32 allows.
pub const MAX_CLUSTERS: u32 = 0x0FFF_FFF5;
/// The fewest clusters a FAT16 volume gets: 4,085 (fewer is FAT12), plus
/// the margin.
pub const FAT16_MIN_CLUSTERS: u32 = 4_085 + 16;
/// The most clusters a FAT16 volume gets: below 65,525, less the margin.
pub const FAT16_MAX_CLUSTERS: u32 = 65_525 - 1 - 16;
/// The most entries FAT16's root directory gets: its 16-bit count, in
/// whole blocks of 128.
pub const FAT16_MAX_ROOT_SLOTS: u32 = 65_535 / SLOTS_PER_CLUSTER * SLOTS_PER_CLUSTER;
/// The fewest blocks FAT16's root area gets: 512 entries, the count the
/// specification recommends for the widest compatibility.
pub const FAT16_MIN_ROOT_BLOCKS: u32 = 512 / SLOTS_PER_CLUSTER;
/// The most 32-byte entries in one directory.
pub const MAX_DIR_SLOTS: u32 = 65_536;

/// FAT16 or FAT32 (see the module docs for which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatType {
    Fat16,
    Fat32,
}

impl FatType {
    /// `FAT16` or `FAT32`.
    pub fn name(self) -> &'static str {
        match self {
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        }
    }
}

/// Why an application disk cannot be laid out as a FAT volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The caller's scratch has fewer than one [`EntryLayout`] per entry.
    ScratchTooSmall { needed: u32, got: usize },
    /// Directory `entry` needs more than [`MAX_DIR_SLOTS`] entries.
    DirectoryTooLarge { entry: u32, slots: u64 },
    /// The entries need more than [`MAX_CLUSTERS`] clusters.
    TooManyClusters { needed: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ScratchTooSmall { needed, got } => write!(f, "layout scratch holds {got} entries, the manifest has {needed}"),
            Error::DirectoryTooLarge { entry, slots } => {
                write!(f, "directory (entry {entry}) needs {slots} directory entries, FAT allows {MAX_DIR_SLOTS}")
            }
            Error::TooManyClusters { needed } => write!(f, "the files need {needed} clusters of 4 KiB, FAT32 allows {MAX_CLUSTERS}"),
        }
    }
}

/// What the layout keeps of one manifest entry (16 bytes); the caller
/// provides one per entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryLayout {
    /// The cluster after its run (its run starts where the previous
    /// entry's ends).
    end_cluster: u32,
    /// Its first slot in its parent directory.
    slot: u32,
    /// A directory's children: entries `first_child .. child_end`.
    first_child: u32,
    child_end: u32,
}

impl EntryLayout {
    /// An unused scratch entry, for static arrays.
    pub const EMPTY: EntryLayout = EntryLayout { end_cluster: 0, slot: 0, first_child: 0, child_end: 0 };
}

/// The layout of a content disk (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Layout<'a> {
    manifest: Manifest<'a>,
    entries: &'a [EntryLayout],
    fat: FatType,
    used_clusters: u32,
    clusters: u32,
    fat_blocks: u32,
    /// FAT16's root directory area (0 in FAT32).
    root_blocks: u32,
}

impl<'a> Layout<'a> {
    /// Lay out `manifest`, keeping what each entry needs in `scratch` (at
    /// least `manifest.len()` entries): every slice of [`Laying`] at once.
    /// Costs O(entries + bytes of names).
    pub fn new(manifest: Manifest<'a>, scratch: &'a mut [EntryLayout]) -> Result<Layout<'a>, Error> {
        let mut laying = Laying::start(manifest, scratch)?;
        loop {
            if let Some(layout) = laying.step(u32::MAX)? {
                return Ok(layout);
            }
        }
    }

    /// FAT16 or FAT32.
    pub fn fat_type(&self) -> FatType {
        self.fat
    }

    /// The manifest laid out.
    pub fn manifest(&self) -> &Manifest<'a> {
        &self.manifest
    }

    /// Clusters of the volume, free ones included (at least
    /// [`FAT16_MIN_CLUSTERS`] or [`MIN_CLUSTERS`]).
    pub fn clusters(&self) -> u32 {
        self.clusters
    }

    /// Clusters the directories and files use: `2 .. 2 + used`.
    pub fn used_clusters(&self) -> u32 {
        self.used_clusters
    }

    /// Blocks of one FAT.
    pub fn fat_blocks(&self) -> u32 {
        self.fat_blocks
    }

    /// The first block of FAT `copy` (0 or 1).
    pub fn fat_start(&self, copy: u32) -> u64 {
        RESERVED_BLOCKS + u64::from(copy) * u64::from(self.fat_blocks)
    }

    /// FAT16's root directory: its first block (after the FATs) and
    /// blocks (0 in FAT32, whose root is in the data area).
    pub fn root_area(&self) -> Range<u64> {
        self.fat_start(2)..self.fat_start(2) + u64::from(self.root_blocks)
    }

    /// The block of cluster 2.
    pub fn data_start(&self) -> u64 {
        self.root_area().end
    }

    /// The size of the content disk in blocks.
    pub fn blocks(&self) -> u64 {
        self.data_start() + u64::from(self.clusters)
    }

    /// The clusters of entry `i`: empty for an empty file and FAT16's
    /// root.
    pub fn clusters_of(&self, i: u32) -> Range<u32> {
        let end = self.entries.get(i as usize).map_or(FIRST_CLUSTER, |e| e.end_cluster);
        let start = match i.checked_sub(1) {
            Some(prev) => self.entries.get(prev as usize).map_or(FIRST_CLUSTER, |e| e.end_cluster),
            None => FIRST_CLUSTER,
        };
        start..end.max(start)
    }

    /// The entry whose run holds `cluster`, if one does.
    pub fn entry_at(&self, cluster: u32) -> Option<u32> {
        // The first run ending after the cluster; an empty run never holds
        // it, and runs have no gaps, so that run does if any does.
        let i = self.entries.partition_point(|e| e.end_cluster <= cluster) as u32;
        self.clusters_of(i).contains(&cluster).then_some(i)
    }

    /// Directory `dir`'s children, as a range of entries.
    pub fn children(&self, dir: u32) -> Range<u32> {
        self.entries.get(dir as usize).map_or(0..0, |e| e.first_child..e.child_end)
    }

    /// Entry `i`'s first slot in its parent directory.
    pub fn slot(&self, i: u32) -> u32 {
        self.entries.get(i as usize).map_or(0, |e| e.slot)
    }

    /// The first child of `children` whose slots reach past `slot`.
    pub fn child_at_slot(&self, children: Range<u32>, slot: u32) -> u32 {
        let range = children.start as usize..children.end as usize;
        let Some(run) = self.entries.get(range) else {
            return children.end;
        };
        // The last child starting at or before the slot, unless none does.
        let after = run.partition_point(|e| e.slot <= slot) as u32;
        children.start + after.saturating_sub(1)
    }
}

/// A layout being made a slice at a time, as a manifest is checked
/// ([`crate::manifest::Check`]): four passes over the entries (each
/// directory's children, the directory slots, FAT16 or FAT32, the
/// clusters), each [`Laying::step`] going on where the last stopped.
#[derive(Debug)]
pub struct Laying<'a> {
    manifest: Manifest<'a>,
    table: &'a mut [EntryLayout],
    pass: Pass,
    /// The next entry of the pass.
    i: u32,
    /// Slots: the next free slot of the directory being filled.
    next_slot: u64,
    /// Counting: the clusters of every entry but the root.
    others: u64,
    fat: FatType,
    /// Clusters: the cluster after the last entry's run.
    next_cluster: u64,
    /// The root directory's slots, known once counting is done.
    root_slots: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Children,
    Slots,
    Counting,
    Clusters,
}

impl<'a> Laying<'a> {
    /// Start laying out `manifest`, keeping what each entry needs in
    /// `scratch` (at least `manifest.len()` entries).
    pub fn start(manifest: Manifest<'a>, scratch: &'a mut [EntryLayout]) -> Result<Laying<'a>, Error> {
        let n = manifest.len();
        let got = scratch.len();
        let Some(table) = scratch.get_mut(..n as usize) else {
            return Err(Error::ScratchTooSmall { needed: n, got });
        };
        table.fill(EntryLayout::EMPTY);
        let (pass, next_cluster) = (Pass::Children, u64::from(FIRST_CLUSTER));
        Ok(Laying { manifest, table, pass, i: 1, next_slot: 0, others: 0, fat: FatType::Fat32, next_cluster, root_slots: 0 })
    }

    /// Go on for about `work` units of [`crate::manifest::SLICE`]'s
    /// measure (at least one entry): the layout once the last pass is
    /// done, `None` while work is left.
    pub fn step(&mut self, work: u32) -> Result<Option<Layout<'a>>, Error> {
        let n = self.manifest.len();
        let mut done = 0u32;
        loop {
            if self.i >= n {
                // The pass is over: what follows from it, and the next.
                match self.pass {
                    Pass::Children => (self.pass, self.i) = (Pass::Slots, 1),
                    Pass::Slots => (self.pass, self.i) = (Pass::Counting, 1),
                    Pass::Counting => {
                        // FAT16 if the other entries' clusters and the
                        // root's slots fit it; then the root has its own
                        // area and no clusters.
                        self.root_slots = dir_slots(&self.manifest, self.table, 0);
                        self.fat = if self.others <= u64::from(FAT16_MAX_CLUSTERS) && self.root_slots <= FAT16_MAX_ROOT_SLOTS {
                            FatType::Fat16
                        } else {
                            FatType::Fat32
                        };
                        (self.pass, self.i) = (Pass::Clusters, 0);
                    }
                    Pass::Clusters => return self.finish().map(Some),
                }
                continue;
            }
            if done >= work {
                return Ok(None);
            }
            let i = self.i;
            done = done.saturating_add(match self.pass {
                Pass::Children => self.child(i),
                Pass::Slots => self.slot(i)?,
                Pass::Counting => {
                    let (clusters, work) = clusters_of(&self.manifest, self.table, i);
                    self.others += clusters;
                    work
                }
                Pass::Clusters => {
                    let (clusters, work) = clusters_of(&self.manifest, self.table, i);
                    if i > 0 || self.fat == FatType::Fat32 {
                        self.next_cluster += clusters;
                    }
                    // Wrong once past the limit, but then the layout is
                    // refused.
                    self.table[i as usize].end_cluster = self.next_cluster as u32;
                    work
                }
            });
            self.i += 1;
        }
    }

    /// Children: the manifest keeps each directory's children in one run.
    fn child(&mut self, i: u32) -> u32 {
        let dir = &mut self.table[self.manifest.meta(i).parent as usize];
        if dir.child_end == 0 {
            dir.first_child = i;
        }
        dir.child_end = i + 1;
        1
    }

    /// Slots, one directory's children after another.
    fn slot(&mut self, i: u32) -> Result<u32, Error> {
        let entry = self.manifest.entry(i);
        let parent = entry.parent as usize;
        if self.table[parent].first_child == i {
            self.next_slot = u64::from(first_child_slot(entry.parent));
        }
        self.table[i as usize].slot = self.next_slot as u32;
        self.next_slot += slots_of(entry.name);
        if self.next_slot > u64::from(MAX_DIR_SLOTS) {
            // What the whole directory needs (its children are one run),
            // so the error says how far over it is.
            let end = self.table[parent].child_end;
            let rest: u64 = (i + 1..end).map(|k| slots_of(self.manifest.entry(k).name)).sum();
            return Err(Error::DirectoryTooLarge { entry: entry.parent, slots: self.next_slot + rest });
        }
        Ok(1 + entry.name.len() as u32 / 16)
    }

    fn finish(&mut self) -> Result<Layout<'a>, Error> {
        let needed = self.next_cluster - u64::from(FIRST_CLUSTER);
        if needed > u64::from(MAX_CLUSTERS) {
            return Err(Error::TooManyClusters { needed });
        }
        let root_slots = self.root_slots;
        let used_clusters = needed as u32;
        let (clusters, fat_blocks, root_blocks) = match self.fat {
            FatType::Fat16 => {
                let clusters = used_clusters.max(FAT16_MIN_CLUSTERS);
                let root_blocks = root_slots.div_ceil(SLOTS_PER_CLUSTER).max(FAT16_MIN_ROOT_BLOCKS);
                (clusters, (clusters + FIRST_CLUSTER).div_ceil(FAT16_ENTRIES_PER_BLOCK), root_blocks)
            }
            FatType::Fat32 => {
                let clusters = used_clusters.max(MIN_CLUSTERS);
                (clusters, (clusters + FIRST_CLUSTER).div_ceil(FAT_ENTRIES_PER_BLOCK), 0)
            }
        };
        let entries: &'a mut [EntryLayout] = core::mem::take(&mut self.table);
        Ok(Layout { manifest: self.manifest, entries: &*entries, fat: self.fat, used_clusters, clusters, fat_blocks, root_blocks })
    }
}

/// The clusters entry `i` takes (a directory's from its slots, a file's
/// from its size), and the work of finding out.
fn clusters_of(manifest: &Manifest, table: &[EntryLayout], i: u32) -> (u64, u32) {
    let entry = manifest.meta(i);
    match entry.kind {
        Kind::Dir => (u64::from(dir_slots(manifest, table, i)).div_ceil(u64::from(SLOTS_PER_CLUSTER)), 1 + MAX_NAME_WORK),
        Kind::File => (manifest::blocks_for(entry.size), 1),
    }
}

/// The work of reading the longest name (a directory's last child's).
const MAX_NAME_WORK: u32 = (names::MAX_NAME_BYTES / 16) as u32;

/// Where a directory's first child's slots begin: after `.` and `..`, or
/// after the root's volume label.
pub fn first_child_slot(dir: u32) -> u32 {
    if dir == 0 {
        1
    } else {
        2
    }
}

/// Slots a child takes: its long-name parts and its short entry.
pub fn slots_of(name: &str) -> u64 {
    names::lfn_entries(name) as u64 + 1
}

/// Slots directory `dir` uses, its own `.`/`..` or label included.
fn dir_slots(manifest: &Manifest, table: &[EntryLayout], dir: u32) -> u32 {
    let e = table[dir as usize];
    if e.child_end == 0 {
        return first_child_slot(dir);
    }
    let last = e.child_end - 1;
    // Checked not to pass MAX_DIR_SLOTS when the slots were assigned.
    table[last as usize].slot + slots_of(manifest.entry(last).name) as u32
}
