//! `filter_overlay`: a linked clone, as a qcow2 file with a backing file or
//! a VMware linked clone. The clone's own disk keeps the blocks the
//! clone's clients wrote; every other block reads from the base disk,
//! through the base disk's own chain, which the clone never writes.
//!
//! ```xml
//! <disk name="clone0" virtio_slot="30">
//!     <filter name="overlay0" program="filter_overlay" data="read-write">
//!         <link disk="base0" />
//!     </filter>
//! </disk>
//! <disk name="base0" virtio_slot="31" />
//! ```
//!
//! The clone's disk (below the filter):
//!
//! | blocks | what |
//! |---|---|
//! | 0 | header: [`MAGIC`], then little-endian `u32` map blocks `m`, `u32` 0, `u64` blocks of the clone, `u64` FNV-1a hash of those 32 bytes |
//! | 1 | the header's backup, the same bytes |
//! | 2 ..= m + 1 | the map: bit `b % 8` of byte `b / 8` set = the clone wrote block `b` |
//! | m + 2 .. | the clone's blocks: block `b` at `m + 2 + b` |
//!
//! Setup reads the header, its backup and the map. A disk with neither
//! (a fresh image, or one that held something else) is formatted: zeroed
//! map first, a flush, then the header and its backup, so a format cut short
//! formats again. A header that does not hold (its hash, or a field that
//! does not fit the disk) is put back from its backup, or the other way
//! round, so one damaged block never makes a clone look fresh (which would
//! lose its blocks: reads would go to the base); both damaged in their
//! magic only (the hash still vouches for the rest) are both written
//! again; otherwise, with both damaged, or a header of the earlier layout
//! (`STRATA-OVERLAY-1`, no backup), the disk fails, and nothing is
//! written. A disk with no header is formatted, with the base present,
//! unless blocks 0 and 1 hold something a user may still want (a LUKS
//! volume, a partition table, a file system: the signatures `mkfs` and
//! `wipefs` look for, `blk::metadata::signature`): then, as on a first
//! start without the base, the disk fails, nothing written, and the
//! console says why (and how to blank a disk). Both blocks wiped look
//! like a fresh disk. Clients see the
//! clone's blocks, as many as the format gave it: the disk less the
//! header, its backup and the map, and no more than the base has (the
//! server tells the setup how large the linked disk is; a base smaller
//! than at the format is said, and caps them), at most [`MAX_MAP_BLOCKS`]
//! map blocks (2 GiB of clone). A clone image as large as its base sees all of
//! the base but those few blocks.
//!
//! Requests: a write goes to the clone's disk; once it is done its blocks
//! are marked written in the map (in the bounce buffer). A read of blocks
//! all written reads the clone; of blocks none written is redirected to
//! the base (link 0); a read that mixes them is redirected to the base,
//! and then, in its post-op, each written block is read into the
//! request's staging page with a side I/O and copied over the base's data
//! through the grant (so mixed reads need `data="read-write"`). A flush
//! first copies the map blocks that changed, flushes the disk below (the
//! data they mark is then on the medium) and writes the copy (side I/O,
//! one flush at a time: `blk::metadata`), then goes down: every write
//! answered before a flush is in the clone after it, map and data, and
//! survives a reboot or a kill; the map never marks a block whose data a
//! power cut lost. A write answered after the last flush may read back
//! from the base after a kill, as a disk's cache may lose unflushed
//! writes. A restart would lose the marks not yet written: the manifest
//! says `restart=no`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, SetupCall, SetupFailure, SetupStep, Verdict};
use blk::metadata::{blank, open_headers, put_copies, signature, Changes, HeaderCopies, Headers, Layout, NotFormatted};
use blk::{Op, Shared, Status, BLOCK_SIZE};
use core::fmt;

/// The header's first bytes.
pub const MAGIC: &[u8; 16] = b"STRATA-OVERLAY-2";
/// The earlier layout's (map from block 1, no backup, no hash).
const OLD_MAGIC: &[u8; 16] = b"STRATA-OVERLAY-1";
/// Map blocks at most (each maps 32,768 blocks, 128 MiB).
pub const MAX_MAP_BLOCKS: u64 = 16;
/// Blocks one map block maps.
const PER_MAP_BLOCK: u64 = BLOCK as u64 * 8;
const BLOCK: usize = BLOCK_SIZE as usize;
/// The first map block, after the header and its backup (blocks 0 and 1,
/// `blk::metadata::open_headers`).
const FIRST_MAP_BLOCK: u64 = 2;
/// Bytes of the header that mean anything: the fields and their hash.
const HEAD: usize = 40;
/// The bounce buffer's pages: the header, the map, then one staging page
/// per request slot of the server (a request's id is its slot; at setup,
/// the first two hold the header and its backup as read or written).
const MAP_PAGE: u64 = 1;
const STAGING_PAGE: u64 = MAP_PAGE + MAX_MAP_BLOCKS;
const STAGING_PAGES: u64 = 128;
/// Where a run of changed map blocks is copied before a flush of the disk
/// below and written from after it (`blk::metadata`: the map never
/// reaches the medium before the data it marks).
const SNAPSHOT_PAGE: u64 = STAGING_PAGE + STAGING_PAGES;
/// Bytes of bounce buffer the filter needs (its manifest declares them).
pub const BOUNCE: u64 = (SNAPSHOT_PAGE + MAX_MAP_BLOCKS) * BLOCK as u64;

/// The state word: what a read or flush is doing between its calls.
const MIXED: u64 = 1 << 63;

/// Where the messages go (the console, on the target).
pub type Say = fn(fmt::Arguments);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Start,
    /// The header and its backup were asked for.
    Header,
    /// Putting back the header or its backup.
    Mending,
    /// The zeroed map is being written (a fresh disk).
    Formatting,
    /// The map is written; the disk below is flushing it.
    MapFlushing,
    /// The header is being written.
    Formatted,
    /// The map was asked for.
    Map,
    Ready,
    Failed,
}

/// Counters for the statistics line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Reads answered by the clone, by the base, and by both.
    pub own: u64,
    pub base: u64,
    pub mixed: u64,
}

pub struct Overlay<'a> {
    bounce: Option<Shared<'a>>,
    say: Say,
    stage: Stage,
    /// Map blocks on the disk, and blocks of the clone.
    map_blocks: u64,
    blocks: u64,
    /// Blocks its clients see: the clone's, or the base's if it has
    /// fewer (a base that changed since the format).
    offered: u64,
    /// Map blocks changed since they were written, and the flush writing
    /// them.
    changes: Changes<1>,
    pub counts: Counts,
}

impl<'a> Overlay<'a> {
    /// The filter with its bounce buffer (at least [`BOUNCE`] bytes) and
    /// where its messages go.
    pub fn new(bounce: Option<Shared<'a>>, say: Say) -> Overlay<'a> {
        let bounce = bounce.filter(|b| b.len() as u64 >= BOUNCE);
        Overlay { bounce, say, stage: Stage::Start, map_blocks: 0, blocks: 0, offered: 0, changes: Changes::default(), counts: Counts::default() }
    }

    /// Blocks of the clone, once set up.
    pub fn blocks(&self) -> Option<u64> {
        (self.stage == Stage::Ready).then_some(self.offered)
    }

    fn fail(&mut self, why: fmt::Arguments) -> SetupStep {
        (self.say)(format_args!("{why}; every request of the disk fails"));
        self.stage = Stage::Failed;
        SetupStep::Fail(Status::IoError)
    }

    /// Whether the clone wrote block `b` (false past the map).
    fn written(&self, bounce: &Shared<'_>, b: u64) -> Option<bool> {
        if b >= self.blocks {
            return Some(false);
        }
        let mut byte = [0u8];
        bounce.read_bytes((MAP_PAGE * BLOCK as u64 + b / 8) as usize, &mut byte).ok()?;
        Some(byte[0] & 1 << (b % 8) != 0)
    }

    /// Mark blocks `first .. first + count` written.
    fn mark(&mut self, bounce: &Shared<'_>, first: u64, count: u64) -> Option<()> {
        for b in first..first.saturating_add(count).min(self.blocks) {
            let at = (MAP_PAGE * BLOCK as u64 + b / 8) as usize;
            let mut byte = [0u8];
            bounce.read_bytes(at, &mut byte).ok()?;
            if byte[0] & 1 << (b % 8) == 0 {
                byte[0] |= 1 << (b % 8);
                bounce.write_bytes(at, &byte).ok()?;
                self.changes.mark(b / PER_MAP_BLOCK);
            }
        }
        Some(())
    }

    /// How many blocks the clone wrote, all told (a page of the map at a
    /// time).
    fn written_total(&self, bounce: &Shared<'_>) -> u64 {
        let mut page = [0u8; BLOCK];
        let mut n = 0;
        for m in 0..self.map_blocks {
            if bounce.read_bytes(((MAP_PAGE + m) * BLOCK as u64) as usize, &mut page).is_ok() {
                n += page.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
            }
        }
        n
    }

    /// How many of `io`'s blocks the clone wrote.
    fn written_count(&self, bounce: &Shared<'_>, io: &Io) -> Option<u64> {
        let mut n = 0;
        for b in io.block..io.block.saturating_add(u64::from(io.count)) {
            n += u64::from(self.written(bounce, b)?);
        }
        Some(n)
    }

    /// The blocks of the disk below before the clone's: header, backup
    /// and map.
    fn first(&self) -> u64 {
        FIRST_MAP_BLOCK + self.map_blocks
    }

    fn header(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..16].copy_from_slice(MAGIC);
        h[16..20].copy_from_slice(&(self.map_blocks as u32).to_le_bytes());
        h[24..32].copy_from_slice(&self.blocks.to_le_bytes());
        let hash = fnv1a(&h[..32]);
        h[32..40].copy_from_slice(&hash.to_le_bytes());
        h
    }

    /// The map blocks and clone blocks header `h` gives, if its fields
    /// fit a disk of `below` blocks and its hash vouches for them, its
    /// magic aside (the hash covers it as [`MAGIC`]).
    fn fields(h: &[u8; HEAD], below: u64) -> Option<(u64, u64)> {
        let m = u64::from(u32::from_le_bytes([h[16], h[17], h[18], h[19]]));
        let blocks = u64::from_le_bytes(h[24..32].try_into().ok()?);
        let hash = u64::from_le_bytes(h[32..40].try_into().ok()?);
        let mut vouched = [0u8; 32];
        vouched[..16].copy_from_slice(MAGIC);
        vouched[16..].copy_from_slice(&h[16..32]);
        let fits = (1..=MAX_MAP_BLOCKS).contains(&m) && blocks <= m * PER_MAP_BLOCK && FIRST_MAP_BLOCK + m + blocks <= below;
        (hash == fnv1a(&vouched) && fits).then_some((m, blocks))
    }


    /// A fresh disk of `below` blocks, cloning a base of `base` blocks: the
    /// map that covers the rest, or the base if smaller.
    fn format(&mut self, bounce: &Shared<'_>, below: u64, base: u64) -> SetupStep {
        let m = (below - FIRST_MAP_BLOCK).div_ceil(PER_MAP_BLOCK + 1).min(MAX_MAP_BLOCKS);
        self.map_blocks = m;
        self.blocks = (below - FIRST_MAP_BLOCK - m).min(m * PER_MAP_BLOCK);
        self.blocks = self.blocks.min(base);
        let zero = [0u8; BLOCK];
        for page in MAP_PAGE..MAP_PAGE + m {
            if bounce.write_bytes((page * BLOCK as u64) as usize, &zero).is_err() {
                return self.fail(format_args!("cannot clear the map"));
            }
        }
        if base > self.blocks {
            // A clone disk as large as its base (a copy of its image, say)
            // leaves no room for the header and map; or the base is past
            // what a map covers.
            let (out, most) = (base - self.blocks, MAX_MAP_BLOCKS * PER_MAP_BLOCK);
            let (b, m2) = (self.blocks, m);
            if base <= most {
                let needed = FIRST_MAP_BLOCK + base.div_ceil(PER_MAP_BLOCK) + base;
                (self.say)(format_args!("formatting a clone of {b} blocks ({m2} map blocks); the base has {base}: its last {out} are out of the clone's reach (a clone disk of {needed} blocks would reach them all)"));
            } else {
                (self.say)(format_args!("formatting a clone of {b} blocks ({m2} map blocks); the base has {base}: its last {out} are out of the clone's reach (a clone reaches at most {most} blocks)"));
            }
        } else {
            (self.say)(format_args!("formatting a clone of {} blocks ({} map blocks)", self.blocks, m));
        }
        self.stage = Stage::Formatting;
        SetupStep::Write { block: FIRST_MAP_BLOCK, count: m as u32, offset: MAP_PAGE * BLOCK as u64 }
    }

    /// The header and its backup read (staging pages 0 and 1): open the
    /// disk (putting back whichever of the two does not hold), or format a
    /// fresh one.
    fn opened(&mut self, bounce: &Shared<'_>, below: u64, base: u64) -> SetupStep {
        let at = |page: u64| (page * BLOCK as u64) as usize;
        let (mut h0, mut h1) = ([0u8; HEAD], [0u8; HEAD]);
        if bounce.read_bytes(at(STAGING_PAGE), &mut h0).is_err() || bounce.read_bytes(at(STAGING_PAGE + 1), &mut h1).is_err() {
            return self.fail(format_args!("cannot read the header"));
        }
        let fields = [Self::fields(&h0, below), Self::fields(&h1, below)];
        let magic = [&h0[..16] == MAGIC, &h1[..16] == MAGIC];
        let holds = [fields[0].is_some() && magic[0], fields[1].is_some() && magic[1]];
        if holds == [false, false] && [&h0[..16], &h1[..16]].contains(&&OLD_MAGIC[..]) {
            return self.fail(format_args!("a clone of an earlier layout ({}): not opened, nothing written", "STRATA-OVERLAY-1"));
        }
        let copies = HeaderCopies { page: STAGING_PAGE, holds, vouched: fields.map(|f| f.is_some()), magic, same: h0 == h1 };
        let (mend, from, rewrite) = match open_headers(copies) {
            Headers::Open => (None, 0, false),
            Headers::Mend { from, step, why } => {
                (self.say)(format_args!("{why}"));
                (Some(step), from, false)
            }
            Headers::Rewrite { from, step, why } => {
                (self.say)(format_args!("{why}"));
                (Some(step), from, true)
            }
            Headers::Damaged => return self.fail(format_args!("a damaged header and backup (blocks 0 and 1), on a disk of {below} blocks")),
            // First use: not of a disk that holds something a user may
            // want (a format would lose it), and with a base to clone.
            Headers::Fresh => {
                if let Some(found) = signature(bounce, STAGING_PAGE) {
                    return self.fail(format_args!("{}", NotFormatted { found, header: "a clone header" }));
                }
                if base == 0 {
                    return self.fail(format_args!("its base disk (its <link>) has no blocks (no device, or its chain failed): no clone made, nothing written"));
                }
                if !blank(bounce, STAGING_PAGE) {
                    (self.say)(format_args!("blocks 0 and 1 hold no clone header, and nothing a tool would recognise: the disk becomes the clone's, and what it held is not read"));
                }
                return self.format(bounce, below, base);
            }
        };
        // (A copy the decision trusts has its fields vouched for.)
        let Some((m, blocks)) = fields[from] else { return self.fail(format_args!("a header that does not fit the disk of {below} blocks")) };
        (self.map_blocks, self.blocks) = (m, blocks);
        // Both copies anew (their magic was what was damaged).
        if rewrite && put_copies(bounce, STAGING_PAGE, &self.header()).is_none() {
            return self.fail(format_args!("cannot write the header"));
        }
        match mend {
            Some(step) => {
                self.stage = Stage::Mending;
                step
            }
            None => self.read_map(),
        }
    }

    fn read_map(&mut self) -> SetupStep {
        self.stage = Stage::Map;
        SetupStep::Read { block: FIRST_MAP_BLOCK, count: self.map_blocks as u32, offset: MAP_PAGE * BLOCK as u64 }
    }

    /// The first block at or after `from` of `io` the clone wrote.
    fn next_written(&self, bounce: &Shared<'_>, io: &Io, from: u64) -> Option<Option<u64>> {
        for j in from..u64::from(io.count) {
            if self.written(bounce, io.block + j)? {
                return Some(Some(j));
            }
        }
        Some(None)
    }

    /// A mixed read's post-op: the base's data is in; copy in the block a
    /// side I/O just read (if any) and read the next written one.
    fn mixed(&mut self, bounce: &Shared<'_>, io: &Io, data: &dyn RequestData, state: &mut u64) -> Verdict {
        let page = STAGING_PAGE + u64::from(io.id) % STAGING_PAGES;
        let next = *state & 0xffff_ffff;
        if let Some(side) = io.side {
            let mut block = [0u8; BLOCK];
            if side.status != Status::Ok || bounce.read_bytes((page * BLOCK as u64) as usize, &mut block).is_err() {
                return Verdict::Fail(Status::IoError);
            }
            if data.write(io, (next - 1) * BLOCK as u64, &block).is_err() {
                return Verdict::Fail(Status::IoError);
            }
        }
        match self.next_written(bounce, io, next) {
            None => Verdict::Fail(Status::IoError),
            Some(None) => Verdict::Continue,
            Some(Some(j)) => {
                *state = MIXED | (j + 1);
                Verdict::SideIo { op: Op::Read, block: self.first() + io.block + j, count: 1, page: page as u16 }
            }
        }
    }

    /// Where the map is (see [`blk::metadata`]); a flush that waits reads
    /// the header into its own page (it never changes after setup).
    fn layout(&self) -> Layout {
        Layout { block: FIRST_MAP_BLOCK, page: MAP_PAGE as u16, blocks: self.map_blocks, wait_block: 0, wait_page: 0, snapshot: Some(SNAPSHOT_PAGE as u16) }
    }
}

impl Filter for Overlay<'_> {
    fn setup(&mut self, call: &SetupCall, _: Option<&Shared<'_>>) -> SetupStep {
        let Some(bounce) = self.bounce else {
            return self.fail(format_args!("no bounce buffer of {BOUNCE} bytes"));
        };
        let ok = call.last.is_some_and(|c| c.status == Status::Ok);
        match self.stage {
            Stage::Start if call.below < FIRST_MAP_BLOCK + 2 => self.fail(format_args!("a disk of {} blocks is too small for a clone", call.below)),
            Stage::Start => {
                self.stage = Stage::Header;
                // Header and backup into two staging pages.
                SetupStep::Read { block: 0, count: 2, offset: STAGING_PAGE * BLOCK as u64 }
            }
            Stage::Header if ok => self.opened(&bounce, call.below, call.linked),
            Stage::Mending if ok => self.read_map(),
            // The map on the medium before the header that vouches for it:
            // a power cut between them formats again.
            Stage::Formatting if ok => {
                self.stage = Stage::MapFlushing;
                SetupStep::Flush
            }
            Stage::MapFlushing if ok => {
                let Some(step) = put_copies(&bounce, STAGING_PAGE, &self.header()) else { return self.fail(format_args!("cannot write the header")) };
                self.stage = Stage::Formatted;
                step
            }
            Stage::Formatted | Stage::Map if ok => {
                let written = self.written_total(&bounce);
                self.offered = self.blocks;
                if self.stage == Stage::Map {
                    (self.say)(format_args!("a clone of {} blocks, {written} of them its own", self.blocks));
                    let base = call.linked;
                    if base == 0 {
                        (self.say)(format_args!("its base disk (its <link>) has no blocks (no device, or its chain failed): reads of the blocks the clone never wrote fail"));
                    } else if base < self.blocks {
                        self.offered = base;
                        (self.say)(format_args!("the base has {base} blocks, fewer than the clone's {}: its clients see the first {base}", self.blocks));
                    }
                }
                self.stage = Stage::Ready;
                SetupStep::Ready { first: self.first(), blocks: self.offered }
            }
            Stage::Ready => SetupStep::Ready { first: self.first(), blocks: self.offered },
            Stage::Failed => SetupStep::Fail(Status::IoError),
            _ => {
                let step = match self.stage {
                    Stage::Header | Stage::Map => "read",
                    Stage::MapFlushing => "flush",
                    _ => "write",
                };
                self.fail(format_args!("{}", SetupFailure { step, last: call.last }))
            }
        }
    }

    fn pre(&mut self, io: &Io, _: &dyn RequestData, state: &mut u64) -> Verdict {
        let Some(bounce) = self.bounce.filter(|_| self.stage == Stage::Ready) else { return Verdict::Fail(Status::IoError) };
        match io.op {
            Op::Read => match self.written_count(&bounce, io) {
                None => Verdict::Fail(Status::IoError),
                Some(n) if n == u64::from(io.count) => {
                    self.counts.own += 1;
                    Verdict::Continue
                }
                Some(0) => {
                    self.counts.base += 1;
                    Verdict::Redirect { link: 0, block: io.block }
                }
                Some(_) => {
                    // The base's data first; then the clone's blocks over it.
                    self.counts.mixed += 1;
                    *state = MIXED;
                    Verdict::Redirect { link: 0, block: io.block }
                }
            },
            Op::Flush => {
                let at = self.layout();
                self.changes.flush(io, state, &at, &bounce).unwrap_or_else(|status| {
                    (self.say)(format_args!("writing the map failed ({status:?}): the flush fails"));
                    Verdict::Fail(Status::IoError)
                })
            }
            _ => Verdict::Continue,
        }
    }

    fn post_state(&mut self, io: &Io, done: Completion, data: &dyn RequestData, state: &mut u64) -> Verdict {
        let Some(bounce) = self.bounce else { return Verdict::Fail(Status::IoError) };
        match io.op {
            Op::Write if done.status == Status::Ok => match self.mark(&bounce, io.block, u64::from(done.count.min(io.count))) {
                Some(()) => Verdict::Continue,
                None => Verdict::Fail(Status::IoError),
            },
            Op::Read if done.status == Status::Ok && *state & MIXED != 0 => self.mixed(&bounce, io, data, state),
            _ => Verdict::Continue,
        }
    }

    /// After a write (its blocks are marked written) and a mixed read (the
    /// clone's blocks go over the base's); a read wholly from the clone or
    /// the base, and a flush, need nothing more.
    fn wants_post(&self, io: &Io, _: &Verdict, state: u64) -> bool {
        match io.op {
            Op::Write => true,
            Op::Read => state & MIXED != 0,
            _ => false,
        }
    }

    fn report(&mut self) {
        let c = self.counts;
        (self.say)(format_args!("reads: {} from the clone, {} from the base, {} mixed; {} map blocks written", c.own, c.base, c.mixed, self.changes.written));
    }
}

/// FNV-1a, 64 bits: the header's check against damage (not against an
/// attacker: the clone's disk is the user's own).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests;
