//! The dynamic content disk: a FAT volume (FAT16 or FAT32) that exists
//! only as the blocks it is asked for.
//!
//! Applications are stored on an *application disk*: a manifest (the
//! directory tree, names, sizes, and where each file's bytes are) followed
//! by the files' bytes, each from a 4 KiB block boundary. A filter PD
//! presents the *content disk* to clients: an unpartitioned FAT volume
//! (boot sector at block 0, long file names, subdirectories) whose files
//! are those applications. For every 4 KiB read it asks
//! [`ContentDisk::block`], which either synthesizes the block (boot sector,
//! FSInfo, FATs, directories, free space) or names the application-disk
//! block to read instead (file data). Nothing is stored for the content
//! disk itself.
//!
//! ```ignore
//! // Block 0 of the application disk says how much manifest to read.
//! let header = fatdisk::Header::parse(&block0)?;
//! read_app_blocks(0, header.manifest_blocks(), &mut manifest_buf);
//! let manifest = fatdisk::Manifest::parse(&manifest_buf, app_disk_blocks)?;
//! // One 16-byte EntryLayout per manifest entry, lent for the disk's life.
//! let disk = fatdisk::ContentDisk::new(manifest, &mut scratch)?;
//! // (Or both a slice at a time: fatdisk::Check and fatdisk::Laying.)
//! // Serving: capacity disk.blocks(); for each block read
//! match disk.block(n, &mut buf) {
//!     fatdisk::Source::Synthesized => { /* buf holds the block */ }
//!     fatdisk::Source::AppDisk(b) => { /* read application-disk block b */ }
//! }
//! ```
//!
//! # Design
//!
//! - **The manifest is hostile until parsed.** It comes from a disk a user
//!   supplies; [`manifest`] bounds every count, checks every offset and
//!   every rule of the format, and turns anything else into an error. After
//!   that the rest of the crate can rely on the rules (children grouped,
//!   names valid and sorted, file data in bounds and in order).
//! - **As small as the files allow.** FAT16 while the files fit its
//!   cluster count, FAT32 beyond ([`layout`]): a small folder makes a
//!   volume of 16 MiB, not FAT32's 256 MiB, that copies in a sixteenth of
//!   the time and fits a small disk.
//! - **Geometry that lines up.** 4 KiB clusters on 512-byte sectors, 32
//!   reserved sectors, two FATs and FAT16's root of whole blocks: every
//!   cluster is one content block, so a file's clusters map one to one
//!   onto its blocks on the application disk ([`layout`]).
//! - **Contiguous runs in manifest order.** Every directory and file is one
//!   run of clusters, in table order, without gaps; which entry owns a
//!   cluster is a binary search, and a FAT block is a walk through the runs
//!   it covers. The volume is padded with free clusters to its type's
//!   minimum count (free clusters cost nothing: they are zeros).
//! - **Short names by construction.** The `~N` tail is the entry's place
//!   among its siblings, so 8.3 names are unique without a search
//!   ([`names`]).
//! - **No allocation, no unsafe.** The caller lends the manifest bytes and
//!   one [`EntryLayout`] per entry; per-block work is bounded (see
//!   [`synth`]). The `std` feature adds the application-disk writer
//!   (`writer`) and a host renderer of whole content disks (`render`).
//!
//! # Limits
//!
//! | what | limit | why |
//! |---|---|---|
//! | entries (directories and files, the root included) | [`manifest::MAX_ENTRIES`] = 131,072 | the content filter's scratch (2 MiB) |
//! | the manifest (64 bytes, 32 an entry, and the names) | [`manifest::MAX_MANIFEST_BYTES`] = 8 MiB | the content filter's memory: about 131,000 names of up to 31 bytes, or 35,000 of 200 |
//! | a name | 255 UTF-16 units (≤ 765 UTF-8 bytes) | FAT long names |
//! | a file | 4 GiB - 1 bytes | FAT's 32-bit size field |
//! | a directory | 65,536 entries of 32 bytes, `.` and `..` (or the root's label) included; a name takes 1 + ceil(UTF-16 units / 13), or 1 if it is an uppercase 8.3 name: 65,534 such names, 32,767 names of up to 13 characters, 21,844 of up to 26 | FAT |
//! | the volume | FAT16: 4,101 to 65,508 clusters of 4 KiB (16-256 MiB); FAT32: 65,541 (256 MiB) to 268,435,445 (~1 TiB) | FAT, less a margin of 16 at each type's bounds |
//! | FAT16's root | 65,408 entries, else the volume is FAT32 | its 16-bit count, in blocks |
//!
//! # Modules
//!
//! [`manifest`] (the application disk's format and its parser), [`names`]
//! (long names, sibling order, short names, checksums), [`dir`] (directory
//! entries), [`layout`] (FAT type, geometry and cluster runs), [`boot`]
//! (boot sector and FSInfo), [`synth`] (one block of the content disk); with `std`,
//! `writer` and `render`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

pub mod boot;
pub mod dir;
pub mod layout;
pub mod manifest;
pub mod names;
pub mod synth;

#[cfg(feature = "std")]
pub mod render;
#[cfg(feature = "std")]
pub mod writer;

pub use layout::{EntryLayout, Layout, Laying};
pub use manifest::{Check, Crc32, Entry, Header, Kind, Manifest, Meta, BLOCK_SIZE};
pub use synth::{ContentDisk, Source};
