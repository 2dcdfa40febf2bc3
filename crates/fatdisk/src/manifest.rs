//! The application disk's manifest: what it holds, where each file's bytes
//! are, and the one parser that checks all of it.
//!
//! The manifest comes from a disk a user supplies, so [`Manifest::parse`]
//! trusts nothing: every count is bounded, every offset is checked against
//! the bytes it was given, and any rule below that does not hold is an
//! [`Error`] naming the entry. Nothing in this module indexes without a
//! check or does arithmetic that can overflow; once a manifest has parsed,
//! the rules below hold for it and the rest of the crate relies on them.
//!
//! # Layout of an application disk
//!
//! Blocks are [`BLOCK_SIZE`] = 4096 bytes; numbers are little-endian.
//!
//! | blocks | what |
//! |---|---|
//! | `0 .. manifest_blocks` | the manifest: header, entry table, names, zero padding |
//! | `manifest_blocks ..` | each file's bytes, from its `start` block, zero-padded to a whole block |
//!
//! The header, at byte 0:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic [`MAGIC`] = `STRTAPPS` |
//! | 8 | 4 | version: [`VERSION`] = 2, or 1 (the same, without `modified`) |
//! | 12 | 4 | `entries`: entries in the table, the root included (1 ..= [`MAX_ENTRIES`]) |
//! | 16 | 4 | `names_size`: bytes of the name area |
//! | 20 | 4 | `manifest_blocks`: blocks the manifest fills, `ceil(manifest_len / 4096)` |
//! | 24 | 8 | `data_end`: the block after the last file's data (at least `manifest_blocks`) |
//! | 32 | 4 | CRC-32 (IEEE) of the manifest's `manifest_len` bytes, this field read as zero |
//! | 36 | 28 | reserved, zero |
//!
//! where `manifest_len = 64 + 32 * entries + names_size`. The entry table
//! follows at byte 64, [`ENTRY_SIZE`] = 32 bytes an entry:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | `parent`: index of the directory holding it (the root: 0) |
//! | 4 | 1 | `kind`: 1 directory, 2 file |
//! | 5 | 1 | reserved, zero |
//! | 6 | 2 | `name_len`: bytes of its name |
//! | 8 | 4 | `name_offset`: where the name starts in the name area |
//! | 12 | 4 | `modified`: when it was last written, a FAT time (bits 0-15) and date (16-31) in UTC; 0: not known (the content disk shows 2025-01-01). Version 1: reserved, zero |
//! | 16 | 8 | `size`: a file's length in bytes (directories: 0) |
//! | 24 | 8 | `start`: the app-disk block of a file's first byte (empty files and directories: 0) |
//!
//! The name area follows the table: names as UTF-8, not terminated.
//!
//! # Rules
//!
//! - Entry 0 is the root: a directory with parent 0 and an empty name.
//! - Every other entry's parent comes before it and is a directory, and
//!   parents never decrease down the table (so a directory's children are
//!   one run of the table, and the table is in breadth-first order: no
//!   cycles, no orphans).
//! - Names are valid FAT long names ([`crate::names::check_long_name`]: at
//!   most 255 UTF-16 units, so at most 765 bytes), and each entry's name is
//!   strictly after its previous sibling's by [`crate::names::fold_cmp`]:
//!   sorted, and no two siblings equal ignoring case.
//! - A file is at most [`MAX_FILE_SIZE`] bytes (FAT's 32-bit size field).
//!   A non-empty file's blocks `start .. start + ceil(size / 4096)` lie at
//!   or after `manifest_blocks`, after the previous non-empty file's (in
//!   table order), and before `data_end`; `data_end` is within the disk.
//!   The bytes after a file's end in its last block should be zero (the
//!   writer makes them so): the content disk passes that block through
//!   whole, and a client that reads past the end of the file sees them.
//!
//! Reserved fields must be zero, so a later version can give them a meaning
//! and an old reader refuses it rather than misreading it.
//!
//! # Bounds
//!
//! [`MAX_ENTRIES`] = 131,072 entries and a manifest of at most
//! [`MAX_MANIFEST_BYTES`] = 8 MiB (header, table and names): what the
//! content filter holds in its own memory, so every application disk
//! `make appdisk` writes can be served. Every offset fits a `u32`. A reader
//! needs the whole manifest in memory: first block 0, for [`Header::parse`]
//! to say how many blocks, then all of them.
//!
//! # Checking in slices
//!
//! Checking costs time in proportion to the entries and their names (a
//! full manifest takes tens of millions of instructions), more than a
//! filter's call budget allows in one call. So [`Check`] checks a manifest
//! a slice at a time, and [`Crc32`] sums it a piece at a time as it is
//! read; [`Manifest::parse`] is every slice at once.

use crate::dir::Stamp;
use crate::names::{self, NameError};
use core::cmp::Ordering;
use core::fmt;

/// Bytes in a block of either disk.
pub const BLOCK_SIZE: usize = 4096;
/// The first 8 bytes of an application disk.
pub const MAGIC: [u8; 8] = *b"STRTAPPS";
/// The format this crate writes; it reads 1 as well.
pub const VERSION: u32 = 2;
/// Bytes before the entry table.
pub const HEADER_SIZE: usize = 64;
/// Bytes of one entry in the table.
pub const ENTRY_SIZE: usize = 32;
/// The most entries (directories and files, the root included) a manifest
/// may have: as many as the content filter lays out.
pub const MAX_ENTRIES: u32 = 131_072;
/// The most bytes a manifest (header, entry table and names) may have: as
/// many as the content filter holds.
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;
/// Work units one [`Check::step`] (and one `Laying::step`) does at most
/// when asked for a slice: an entry is one, and one more per 16 bytes of
/// a name it reads (the cost of a name grows with its length). About 10
/// million instructions at the most, well within a filter's call budget.
pub const SLICE: u32 = 8192;
/// The largest file FAT can hold: its size is a 32-bit field.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

const KIND_DIR: u8 = 1;
const KIND_FILE: u8 = 2;
const CRC_OFFSET: usize = 32;

/// Blocks that `bytes` bytes fill.
pub fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_SIZE as u64)
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// An entry without its name and time ([`Manifest::meta`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub parent: u32,
    pub kind: Kind,
    pub size: u64,
    pub start: u64,
}

/// One directory or file of a parsed manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    /// Index of its directory (the root's is 0).
    pub parent: u32,
    pub kind: Kind,
    /// Bytes (files only).
    pub size: u64,
    /// The app-disk block of its first byte (non-empty files only).
    pub start: u64,
    /// When it was last written ([`Stamp::DEFAULT`] if not known).
    pub modified: Stamp,
}

/// Why a manifest was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the header (or the manifest it describes) needs.
    TooShort {
        needed: u64,
        got: u64,
    },
    BadMagic,
    BadVersion(u32),
    HeaderReservedNotZero,
    /// No entries (not even the root), or more than [`MAX_ENTRIES`].
    BadEntryCount(u32),
    /// The manifest is larger than [`MAX_MANIFEST_BYTES`].
    TooLarge(u64),
    BadManifestBlocks {
        stated: u32,
        needed: u64,
    },
    DataEndBeforeManifest {
        data_end: u64,
    },
    /// The files' data would run past the end of the application disk.
    DataBeyondDisk {
        data_end: u64,
        disk_blocks: u64,
    },
    Checksum {
        stated: u32,
        computed: u32,
    },
    /// The checksum given to [`Check::start`] summed another number of
    /// bytes than the manifest has (the caller's mistake, not the disk's).
    ChecksumCoverage {
        summed: u64,
        len: u64,
    },
    /// Entry 0 is not an unnamed directory whose parent is itself.
    BadRoot,
    Entry {
        index: u32,
        problem: EntryProblem,
    },
}

/// What is wrong with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryProblem {
    ReservedNotZero,
    /// Its `modified` field names no real date and time.
    BadStamp(u32),
    BadKind(u8),
    ParentNotBefore(u32),
    ParentNotDirectory(u32),
    /// Its parent comes before the previous entry's parent.
    NotGroupedByParent,
    NameOutOfBounds,
    Name(NameError),
    /// Its name does not sort after its previous sibling's.
    NotSorted,
    /// Its name equals its previous sibling's, ignoring case.
    DuplicateName,
    DirectoryWithData,
    FileTooLarge(u64),
    EmptyFileWithStart,
    /// Its data starts before `min` (inside the manifest or the previous
    /// file's data).
    DataOverlaps {
        start: u64,
        min: u64,
    },
    DataPastEnd {
        end: u64,
        data_end: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooShort { needed, got } => write!(f, "manifest cut short: needs {needed} bytes, has {got}"),
            Error::BadMagic => write!(f, "not an application disk (no {:?} magic)", "STRTAPPS"),
            Error::BadVersion(v) => write!(f, "application disk version {v}, this reader knows 1 to {VERSION}"),
            Error::HeaderReservedNotZero => write!(f, "manifest header: reserved bytes are not zero"),
            Error::BadEntryCount(n) => write!(f, "manifest has {n} entries (1 ..= {MAX_ENTRIES} allowed)"),
            Error::TooLarge(n) => write!(f, "manifest of {n} bytes (at most {MAX_MANIFEST_BYTES})"),
            Error::BadManifestBlocks { stated, needed } => {
                write!(f, "manifest says it fills {stated} blocks but its contents need {needed}")
            }
            Error::DataEndBeforeManifest { data_end } => write!(f, "manifest: data ends at block {data_end}, inside the manifest"),
            Error::DataBeyondDisk { data_end, disk_blocks } => {
                write!(f, "application data ends at block {data_end} but the disk has {disk_blocks} blocks")
            }
            Error::Checksum { stated, computed } => {
                write!(f, "manifest damaged: checksum {computed:#010x}, header says {stated:#010x}")
            }
            Error::ChecksumCoverage { summed, len } => {
                write!(f, "manifest checksum summed over {summed} bytes, but the manifest has {len}")
            }
            Error::BadRoot => write!(f, "manifest entry 0 is not the root directory"),
            Error::Entry { index, problem } => write!(f, "manifest entry {index}: {problem}"),
        }
    }
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::ReservedNotZero => write!(f, "reserved bytes are not zero"),
            EntryProblem::BadStamp(v) => write!(f, "its modification time {v:#010x} is no date and time"),
            EntryProblem::BadKind(k) => write!(f, "unknown kind {k}"),
            EntryProblem::ParentNotBefore(p) => write!(f, "parent {p} does not come before it"),
            EntryProblem::ParentNotDirectory(p) => write!(f, "parent {p} is not a directory"),
            EntryProblem::NotGroupedByParent => write!(f, "not grouped with its siblings (parents must not decrease)"),
            EntryProblem::NameOutOfBounds => write!(f, "name lies outside the name area"),
            EntryProblem::Name(e) => write!(f, "{e}"),
            EntryProblem::NotSorted => write!(f, "name does not sort after its previous sibling's"),
            EntryProblem::DuplicateName => write!(f, "name equals its previous sibling's, ignoring case"),
            EntryProblem::DirectoryWithData => write!(f, "a directory with a size or a start block"),
            EntryProblem::FileTooLarge(s) => write!(f, "file of {s} bytes (FAT holds at most {MAX_FILE_SIZE})"),
            EntryProblem::EmptyFileWithStart => write!(f, "an empty file with a start block"),
            EntryProblem::DataOverlaps { start, min } => {
                write!(f, "data at block {start} overlaps what precedes it (must start at {min} or later)")
            }
            EntryProblem::DataPastEnd { end, data_end } => write!(f, "data runs to block {end}, past the data end {data_end}"),
        }
    }
}

/// `N` bytes at `off`, or zeros if they are not all there (callers check
/// bounds first; this keeps a missed check from becoming a panic).
fn read<const N: usize>(bytes: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = off.checked_add(N).and_then(|end| bytes.get(off..end)) {
        out.copy_from_slice(s);
    }
    out
}

fn u16_at(bytes: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(read(bytes, off))
}

fn u32_at(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(read(bytes, off))
}

fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(read(bytes, off))
}

/// The manifest header, checked on its own: enough to know how many blocks
/// to read before [`Manifest::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    version: u32,
    entries: u32,
    names_size: u32,
    manifest_blocks: u32,
    data_end: u64,
    crc: u32,
}

impl Header {
    /// Check the header at the start of `bytes` (block 0 will do).
    pub fn parse(bytes: &[u8]) -> Result<Header, Error> {
        if bytes.len() < HEADER_SIZE {
            return Err(Error::TooShort { needed: HEADER_SIZE as u64, got: bytes.len() as u64 });
        }
        if read::<8>(bytes, 0) != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u32_at(bytes, 8);
        if version != 1 && version != VERSION {
            return Err(Error::BadVersion(version));
        }
        if bytes[36..HEADER_SIZE].iter().any(|&b| b != 0) {
            return Err(Error::HeaderReservedNotZero);
        }
        let header = Header {
            version,
            entries: u32_at(bytes, 12),
            names_size: u32_at(bytes, 16),
            manifest_blocks: u32_at(bytes, 20),
            data_end: u64_at(bytes, 24),
            crc: u32_at(bytes, CRC_OFFSET),
        };
        if header.entries == 0 || header.entries > MAX_ENTRIES {
            return Err(Error::BadEntryCount(header.entries));
        }
        // (Entries are bounded: no overflow.)
        let len = (HEADER_SIZE + ENTRY_SIZE * header.entries as usize) as u64 + u64::from(header.names_size);
        if len > MAX_MANIFEST_BYTES as u64 {
            return Err(Error::TooLarge(len));
        }
        let needed = blocks_for(header.manifest_len() as u64);
        if u64::from(header.manifest_blocks) != needed {
            return Err(Error::BadManifestBlocks { stated: header.manifest_blocks, needed });
        }
        if header.data_end < u64::from(header.manifest_blocks) {
            return Err(Error::DataEndBeforeManifest { data_end: header.data_end });
        }
        Ok(header)
    }

    /// Bytes of the manifest (header, table, names): at most
    /// [`MAX_MANIFEST_BYTES`].
    pub fn manifest_len(&self) -> usize {
        HEADER_SIZE + ENTRY_SIZE * self.entries as usize + self.names_size as usize
    }

    /// Blocks to read from the start of the application disk to have the
    /// whole manifest.
    pub fn manifest_blocks(&self) -> u32 {
        self.manifest_blocks
    }

    /// The block after the last file's data: the least size of an
    /// application disk holding this manifest.
    pub fn data_end(&self) -> u64 {
        self.data_end
    }

    /// Entries, the root included.
    pub fn entries(&self) -> u32 {
        self.entries
    }
}

/// A manifest that passed every check of the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Manifest<'a> {
    bytes: &'a [u8],
    header: Header,
}

impl<'a> Manifest<'a> {
    /// Check the manifest at the start of `bytes` (at least
    /// [`Header::manifest_len`] bytes; more are ignored) for an application
    /// disk of `disk_blocks` blocks: every slice of [`Check`] at once.
    pub fn parse(bytes: &'a [u8], disk_blocks: u64) -> Result<Manifest<'a>, Error> {
        let len = Header::parse(bytes)?.manifest_len();
        let mut crc = Crc32::new();
        crc.add(bytes.get(..len).unwrap_or(bytes));
        let mut check = Check::start(bytes, disk_blocks, &crc)?;
        loop {
            if let Some(manifest) = check.step(u32::MAX)? {
                return Ok(manifest);
            }
        }
    }

    /// The header this manifest was parsed with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Entries, the root (entry 0) included; at least 1.
    pub fn len(&self) -> u32 {
        self.header.entries
    }

    /// Never true: every manifest has its root.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The checksum of the manifest: differs between application disks,
    /// so it serves as the volume's serial number.
    pub fn checksum(&self) -> u32 {
        self.header.crc
    }

    /// Entry `index` but its name and time, which cost more to read (the
    /// name is checked to be UTF-8 every time): what serving a file's
    /// data, and most of laying out, need.
    pub fn meta(&self, index: u32) -> Meta {
        let raw = self.raw(index);
        Meta { parent: raw.parent, kind: if raw.kind == KIND_FILE { Kind::File } else { Kind::Dir }, size: raw.size, start: raw.start }
    }

    /// Entry `index`; an index past the end reads as an empty root-like
    /// directory rather than panicking.
    pub fn entry(&self, index: u32) -> Entry<'a> {
        let raw = self.raw(index);
        Entry {
            name: self.name_of(&raw).unwrap_or(""),
            parent: raw.parent,
            kind: if raw.kind == KIND_FILE { Kind::File } else { Kind::Dir },
            size: raw.size,
            start: raw.start,
            modified: if raw.modified == 0 { Stamp::DEFAULT } else { stamp_of(raw.modified) },
        }
    }

    fn raw(&self, index: u32) -> RawEntry {
        let off = (index as usize).checked_mul(ENTRY_SIZE).and_then(|o| o.checked_add(HEADER_SIZE));
        let b = off.and_then(|off| self.bytes.get(off..off.checked_add(ENTRY_SIZE)?)).unwrap_or(&[]);
        RawEntry {
            parent: u32_at(b, 0),
            kind: read::<1>(b, 4)[0],
            name_len: u16_at(b, 6),
            name_offset: u32_at(b, 8),
            reserved: read::<1>(b, 5)[0] != 0,
            modified: u32_at(b, 12),
            size: u64_at(b, 16),
            start: u64_at(b, 24),
        }
    }

    /// Version 1 has no `modified` (reserved, zero); a stamp must name a
    /// real date and time.
    fn check_modified(&self, raw: &RawEntry) -> Result<(), EntryProblem> {
        match raw.modified {
            0 => Ok(()),
            _ if self.header.version == 1 => Err(EntryProblem::ReservedNotZero),
            v if !stamp_of(v).is_valid() => Err(EntryProblem::BadStamp(v)),
            _ => Ok(()),
        }
    }

    fn name_of(&self, raw: &RawEntry) -> Result<&'a str, EntryProblem> {
        if u64::from(raw.name_offset) + u64::from(raw.name_len) > u64::from(self.header.names_size) {
            return Err(EntryProblem::NameOutOfBounds);
        }
        // In bounds now: the name lies in the name area, which the header's
        // limits keep well inside a usize.
        let start = HEADER_SIZE + ENTRY_SIZE * self.header.entries as usize + raw.name_offset as usize;
        let end = start + raw.name_len as usize;
        let bytes = self.bytes.get(start..end).ok_or(EntryProblem::NameOutOfBounds)?;
        core::str::from_utf8(bytes).map_err(|_| EntryProblem::Name(NameError::NotUtf8))
    }
}

/// A manifest being checked a slice at a time (see the module docs):
/// [`Check::start`] checks the header, the checksum and the root, each
/// [`Check::step`] the next entries, and the last one gives the manifest.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    manifest: Manifest<'a>,
    /// The next entry to check.
    next: u32,
    /// Where the next non-empty file's data may start.
    min_start: u64,
    prev_parent: u32,
}

impl<'a> Check<'a> {
    /// Start checking the manifest at the start of `bytes` (at least
    /// [`Header::manifest_len`] bytes; more are ignored), whose
    /// `manifest_len` bytes `crc` has summed, for an application disk of
    /// `disk_blocks` blocks.
    pub fn start(bytes: &'a [u8], disk_blocks: u64, crc: &Crc32) -> Result<Check<'a>, Error> {
        let header = Header::parse(bytes)?;
        let len = header.manifest_len();
        let Some(bytes) = bytes.get(..len) else {
            return Err(Error::TooShort { needed: len as u64, got: bytes.len() as u64 });
        };
        if header.data_end > disk_blocks {
            return Err(Error::DataBeyondDisk { data_end: header.data_end, disk_blocks });
        }
        if crc.len() != len {
            return Err(Error::ChecksumCoverage { summed: crc.len() as u64, len: len as u64 });
        }
        let computed = crc.value();
        if computed != header.crc {
            return Err(Error::Checksum { stated: header.crc, computed });
        }
        let manifest = Manifest { bytes, header };
        let root = manifest.raw(0);
        if root.kind != KIND_DIR || root.parent != 0 || root.name_len != 0 || root.size != 0 || root.start != 0 || root.reserved {
            return Err(Error::BadRoot);
        }
        manifest.check_modified(&root).map_err(|problem| Error::Entry { index: 0, problem })?;
        Ok(Check { manifest, next: 1, min_start: u64::from(header.manifest_blocks), prev_parent: 0 })
    }

    /// Check the next entries, about `work` units of [`SLICE`]'s measure
    /// (at least one entry): the manifest once every entry has passed,
    /// `None` while some are left.
    pub fn step(&mut self, work: u32) -> Result<Option<Manifest<'a>>, Error> {
        let mut done = 0u32;
        while self.next < self.manifest.header.entries {
            if done >= work {
                return Ok(None);
            }
            let index = self.next;
            let name_len = self.entry(index).map_err(|problem| Error::Entry { index, problem })?;
            done = done.saturating_add(1 + name_len / 16);
            self.next += 1;
        }
        Ok(Some(self.manifest))
    }

    /// Check entry `index` against the rules (see the module docs), the
    /// entries before it having passed; the length of its name.
    fn entry(&mut self, index: u32) -> Result<u32, EntryProblem> {
        let m = &self.manifest;
        let raw = m.raw(index);
        if raw.reserved {
            return Err(EntryProblem::ReservedNotZero);
        }
        m.check_modified(&raw)?;
        if raw.kind != KIND_DIR && raw.kind != KIND_FILE {
            return Err(EntryProblem::BadKind(raw.kind));
        }
        if raw.parent >= index {
            return Err(EntryProblem::ParentNotBefore(raw.parent));
        }
        if m.raw(raw.parent).kind != KIND_DIR {
            return Err(EntryProblem::ParentNotDirectory(raw.parent));
        }
        if raw.parent < self.prev_parent {
            return Err(EntryProblem::NotGroupedByParent);
        }
        let name = m.name_of(&raw)?;
        names::check_long_name(name).map_err(EntryProblem::Name)?;
        if raw.parent == self.prev_parent && index > 1 {
            let prev = m.name_of(&m.raw(index - 1)).unwrap_or("");
            match names::fold_cmp(prev, name) {
                Ordering::Less => {}
                Ordering::Equal => return Err(EntryProblem::DuplicateName),
                Ordering::Greater => return Err(EntryProblem::NotSorted),
            }
        }
        self.prev_parent = raw.parent;
        let name_len = u32::from(raw.name_len);
        if raw.kind == KIND_DIR {
            if raw.size != 0 || raw.start != 0 {
                return Err(EntryProblem::DirectoryWithData);
            }
            return Ok(name_len);
        }
        if raw.size > MAX_FILE_SIZE {
            return Err(EntryProblem::FileTooLarge(raw.size));
        }
        if raw.size == 0 {
            if raw.start != 0 {
                return Err(EntryProblem::EmptyFileWithStart);
            }
            return Ok(name_len);
        }
        if raw.start < self.min_start {
            return Err(EntryProblem::DataOverlaps { start: raw.start, min: self.min_start });
        }
        // start is below data_end here or the check below fails; both
        // terms are bounded, so this cannot overflow.
        let end = raw.start.saturating_add(blocks_for(raw.size));
        if end > m.header.data_end {
            return Err(EntryProblem::DataPastEnd { end, data_end: m.header.data_end });
        }
        self.min_start = end;
        Ok(name_len)
    }
}

/// The stamp a `modified` field holds: time low, date high.
fn stamp_of(field: u32) -> Stamp {
    Stamp { date: (field >> 16) as u16, time: field as u16 }
}

/// The `modified` field of `stamp`.
pub fn stamp_field(stamp: Stamp) -> u32 {
    u32::from(stamp.date) << 16 | u32::from(stamp.time)
}

/// One table entry as stored, before it is checked.
struct RawEntry {
    parent: u32,
    kind: u8,
    name_len: u16,
    name_offset: u32,
    reserved: bool,
    modified: u32,
    size: u64,
    start: u64,
}

/// CRC-32 as zlib and Ethernet compute it (reflected, polynomial
/// 0xEDB88320), over `bytes` with the header's checksum field read as zero.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.add(bytes);
    crc.value()
}

/// [`crc32`] of a manifest summed a piece at a time, from its byte 0.
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    crc: u32,
    /// Bytes summed.
    len: usize,
}

impl Crc32 {
    pub const fn new() -> Crc32 {
        Crc32 { crc: !0, len: 0 }
    }

    /// Add the next `bytes` of the manifest.
    pub fn add(&mut self, bytes: &[u8]) {
        // Only the header's first bytes need the test for the checksum
        // field.
        let head = (CRC_OFFSET + 4).saturating_sub(self.len).min(bytes.len());
        let mut crc = self.crc;
        for (i, &b) in bytes[..head].iter().enumerate() {
            let b = if self.len + i >= CRC_OFFSET { 0 } else { b };
            crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        for &b in &bytes[head..] {
            crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        (self.crc, self.len) = (crc, self.len + bytes.len());
    }

    /// Bytes summed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was summed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The CRC of the bytes summed.
    pub fn value(&self) -> u32 {
        !self.crc
    }
}

impl Default for Crc32 {
    fn default() -> Crc32 {
        Crc32::new()
    }
}

/// The CRC of every byte value, computed at build time: a manifest can be
/// tens of MiB, and a table makes the check about eight times faster than
/// going bit by bit.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The check value of CRC-32/ISO-HDLC: the CRC of "123456789".
        let mut bytes = [0u8; 40];
        bytes[..9].copy_from_slice(b"123456789");
        assert_eq!(crc32(&bytes[..9]), 0xCBF4_3926);
    }

    #[test]
    fn a_header_alone_says_how_many_blocks_to_read() {
        let mut b = [0u8; 64];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&200u32.to_le_bytes());
        b[16..20].copy_from_slice(&3000u32.to_le_bytes());
        b[20..24].copy_from_slice(&3u32.to_le_bytes());
        b[24..32].copy_from_slice(&3u64.to_le_bytes());
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.manifest_len(), 64 + 6400 + 3000);
        assert_eq!(h.manifest_blocks(), 3);
        b[20] = 4;
        assert_eq!(Header::parse(&b), Err(Error::BadManifestBlocks { stated: 4, needed: 3 }));
        b[20] = 3;
        b[40] = 1;
        assert_eq!(Header::parse(&b), Err(Error::HeaderReservedNotZero));
        assert!(matches!(Header::parse(&b[..63]), Err(Error::TooShort { .. })));
    }
}
