//! `filter_integrity`: a keyed MAC of every 4 KiB block, so a block changed
//! behind the filter (on the host image, by a faulty device) reads back as
//! an I/O error, never as wrong data.
//!
//! ```xml
//! <filter name="integrity0" program="filter_integrity" data="read-write">
//!     <param key="key" value="..." />
//! </filter>
//! ```
//!
//! The MAC is HMAC-SHA256 (RFC 2104), keyed with the `key` param, over the
//! block's number and its bytes, so a block moved to another place fails
//! too. HMAC-SHA256 rather than keyed BLAKE3: QEMU's cortex-a53 has the
//! SHA-256 instructions, which `sha2` uses (a 4 KiB block costs about
//! 11,000 instructions), and the same crates already serve LUKS; BLAKE3
//! would run in plain software here.
//!
//! The filter's disk (below it):
//!
//! | blocks | what |
//! |---|---|
//! | 0 | header: [`MAGIC`], little-endian `u32` table blocks `m`, `u32` [`VERSION`], `u64` data blocks `n`, then the HMAC of those 32 bytes (so a wrong key is told apart from damaged data) |
//! | 1 | the header's backup, the same bytes |
//! | 2 ..= m + 1 | the MAC table: 32 bytes per data block, 128 per table block |
//! | m + 2 .. | the data: the clients' block `b` at `m + 2 + b` |
//!
//! At most [`MAX_TABLE_BLOCKS`] table blocks (the table lives in the
//! filter's memory): 262,144 data blocks, 1 GiB; a larger disk's other
//! blocks are not used (the format says so).
//!
//! A disk with neither header nor backup is formatted at setup, unless
//! its blocks 0 and 1 hold something a user may still want, which a
//! format would lose: a LUKS volume, a partition table, a file system
//! (the signatures `mkfs` and `wipefs` look for; `blk::metadata::signature`).
//! Then the disk fails, nothing written, and the console says what it
//! found and how to blank it. A blank image is formatted; so is one of
//! data nothing recognises (the payload of a fresh LUKS volume, seen
//! through `filter_crypt` below, is random bytes), with a line saying
//! that what it held reads as zeros. A format writes first a header and
//! backup
//! that say a format is under way (no table blocks, no data blocks) and a
//! flush; then every entry is set to the MAC of "never written" for its
//! block (written a table block per setup call) and flushed; then the
//! header and its backup. A format cut short (a power cut) finds that
//! mark at the next start and formats again. A block never written reads
//! as zeros, whatever the disk holds there. A header that does not hold
//! (damaged, even in one bit) is put back from its backup, as GPT does,
//! and the other way round: both are checked with the key, so a disk
//! formatted with it is not taken for a fresh one because one block
//! changed. Both damaged in their magic only (the MAC still vouches for
//! the rest) are both written again. If neither holds but one looks like
//! a header (a wrong key, both damaged, or a header of an earlier layout)
//! the disk fails, and nothing is written. With neither block a header,
//! the first table block is looked at before formatting, and the data
//! blocks it covers (where this disk's size puts them): if one of its
//! entries is the "never written" MAC this key makes for its block, or
//! the MAC of what that block holds, the disk was this filter's and its
//! headers were wiped, and it fails instead. (A disk whose headers and
//! first table block are all gone looks fresh: it is formatted, and reads
//! as a wiped disk would, zeros; a MAC cannot tell a fresh disk from a
//! wiped one. So does one whose size changed as well.)
//!
//! Requests: a read is checked in its post-op, block by block, against the
//! table in the filter's memory (its bounce buffer): a block that does not
//! match fails the read with `IoError`, and the console names it (the
//! first few). A write's blocks are MACed in its post-op, once the device
//! did it, into the table; the table blocks that changed are written
//! before a flush goes down (side I/O, one flush's at a time: a flush that
//! finds another writing the table waits with a one-block read of the
//! header).
//!
//! After a crash: every block written before an acknowledged flush reads
//! back verified (its data and its table block were on the disk before
//! the flush went down). A block written after the last flush reads its
//! old or its new content, or `IoError` (data and MAC disagree), never
//! wrong data. The MAC does not stop a whole disk being put back to an
//! older state (a replay of data and table together).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, SetupCall, SetupFailure, SetupStep, Verdict, MAX_SETUP_BLOCKS};
use blk::metadata::{blank, open_headers, put_copies, signature, Changes, HeaderCopies, Headers, Layout, NotFormatted};
use blk::{Op, Shared, Status, BLOCK_SIZE};
use core::fmt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header's first bytes.
pub const MAGIC: &[u8; 16] = b"STRATA-INTEGRITY";
/// The layout's version, in the header (the layout of block 1 as the
/// table's first block, before the backup, had 0 there).
pub const VERSION: u32 = 1;
/// Bytes of the header that mean anything: the fields and their MAC.
const HEAD: usize = 64;
/// The first table block, after the header and its backup (blocks 0 and
/// 1, `blk::metadata::open_headers`).
const FIRST_TABLE_BLOCK: u64 = 2;
/// Bytes of one MAC, and MACs per table block.
const MAC: usize = 32;
const PER_BLOCK: u64 = BLOCK as u64 / MAC as u64;
const BLOCK: usize = BLOCK_SIZE as usize;
/// Table blocks at most: 262,144 data blocks (1 GiB).
pub const MAX_TABLE_BLOCKS: u64 = 2048;
/// The bounce buffer's pages: the header, a scratch page (the backup
/// header at setup), the table.
const SCRATCH_PAGE: u64 = 1;
const TABLE_PAGE: u64 = 2;
/// Bytes of bounce buffer the filter needs (its manifest declares them).
pub const BOUNCE: u64 = (TABLE_PAGE + MAX_TABLE_BLOCKS) * BLOCK as u64;

/// Blocks whose failed check the console names, at most.
const SHOWN: u32 = 8;

/// Where the messages go (the console, on the target).
pub type Say = fn(fmt::Arguments);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Start,
    /// Reading the header and its backup.
    Header,
    /// Neither is a header: reading the first table block.
    ProbingTable,
    /// ... and then the data blocks it covers: `next` and on asked for.
    ProbingData { next: u64 },
    /// Putting back the header or its backup.
    Mending,
    /// Formatting: the header and its backup say so (written, then
    /// flushed), so a format cut short is done again.
    Marking,
    MarkFlushing,
    /// Formatting: table blocks `0..next` are written.
    Formatting { next: u64 },
    /// The table is written; the disk below is flushing it.
    TableFlushing,
    Formatted,
    /// Reading the table: blocks `0..next` asked for.
    Reading { next: u64 },
    Ready,
    Failed,
}

/// Counters for the statistics line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub verified: u64,
    pub failed: u64,
    /// Blocks read that were never written (given as zeros).
    pub unwritten: u64,
}

pub struct Integrity<'a> {
    key: Option<Hmac<Sha256>>,
    bounce: Option<Shared<'a>>,
    say: Say,
    stage: Stage,
    /// Table blocks and data blocks.
    table: u64,
    blocks: u64,
    /// Table blocks changed since they were written, and the flush
    /// writing them.
    changes: Changes<{ MAX_TABLE_BLOCKS as usize / 64 }>,
    block: [u8; BLOCK],
    /// Setup found blocks 0 and 1 neither blank nor recognised: a format
    /// says that what they held is gone.
    held_data: bool,
    pub counts: Counts,
}

impl<'a> Integrity<'a> {
    /// The filter keyed with `key` (the param; an empty or missing key is
    /// an error), its bounce buffer (at least [`BOUNCE`] bytes) and where
    /// its messages go.
    pub fn new(key: Option<&str>, bounce: Option<Shared<'a>>, say: Say) -> Result<Integrity<'a>, &'static str> {
        let key = key.filter(|k| !k.is_empty()).ok_or("no key: give it with <param key=\"key\" value=\"...\"/>")?;
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| "a key HMAC does not take")?;
        let bounce = bounce.filter(|b| b.len() as u64 >= BOUNCE);
        Ok(Integrity {
            key: Some(mac),
            bounce,
            say,
            stage: Stage::Start,
            table: 0,
            blocks: 0,
            changes: Changes::default(),
            block: [0; BLOCK],
            held_data: false,
            counts: Counts::default(),
        })
    }

    /// Blocks the clients see, once set up.
    pub fn blocks(&self) -> Option<u64> {
        (self.stage == Stage::Ready).then_some(self.blocks)
    }

    fn fail(&mut self, why: fmt::Arguments) -> SetupStep {
        (self.say)(format_args!("{why}; every request of the disk fails"));
        self.stage = Stage::Failed;
        SetupStep::Fail(Status::IoError)
    }

    /// HMAC(key, `tag` || `block` || `data`).
    fn mac(&self, tag: &[u8; 4], block: u64, data: &[u8]) -> [u8; MAC] {
        let Some(key) = &self.key else { return [0; MAC] };
        let mut m = key.clone();
        m.update(tag);
        m.update(&block.to_le_bytes());
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The MAC a block that was never written has.
    fn unwritten(&self, block: u64) -> [u8; MAC] {
        self.mac(b"none", block, &[])
    }

    /// Where block `b`'s entry is in the bounce buffer.
    fn entry_at(b: u64) -> usize {
        (TABLE_PAGE * BLOCK as u64 + b * MAC as u64) as usize
    }

    fn header(&self) -> [u8; BLOCK] {
        self.header_of(self.table, self.blocks)
    }

    /// A header of `table` table blocks and `blocks` data blocks (0 and 0:
    /// a format under way).
    fn header_of(&self, table: u64, blocks: u64) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..16].copy_from_slice(MAGIC);
        h[16..20].copy_from_slice(&(table as u32).to_le_bytes());
        h[20..24].copy_from_slice(&VERSION.to_le_bytes());
        h[24..32].copy_from_slice(&blocks.to_le_bytes());
        let mac = self.mac(b"head", 0, &h[..32]);
        h[32..64].copy_from_slice(&mac);
        h
    }

    /// Whether this key made `h`'s fields and MAC, its magic aside (which
    /// the MAC covers as [`MAGIC`]): a header, or one damaged in its magic.
    fn authentic(&self, h: &[u8; HEAD]) -> bool {
        let mut fields = [0u8; 32];
        fields[..16].copy_from_slice(MAGIC);
        fields[16..].copy_from_slice(&h[16..32]);
        self.mac(b"head", 0, &fields)[..] == h[32..64]
    }

    fn version(h: &[u8; HEAD]) -> u32 {
        u32::from_le_bytes([h[20], h[21], h[22], h[23]])
    }

    /// Whether `h` is a header of this layout this key made.
    fn holds(&self, h: &[u8; HEAD]) -> bool {
        &h[..16] == MAGIC && self.authentic(h) && Self::version(h) == VERSION
    }

    /// The header and its backup read (bounce pages 0 and 1): open the
    /// disk (putting back whichever of the two does not hold), or format a
    /// fresh disk of `below` blocks.
    fn opened(&mut self, bounce: &Shared<'_>, below: u64) -> SetupStep {
        let (mut h0, mut h1) = ([0u8; HEAD], [0u8; HEAD]);
        if bounce.read_bytes(0, &mut h0).is_err() || bounce.read_bytes(SCRATCH_PAGE as usize * BLOCK, &mut h1).is_err() {
            return self.fail(format_args!("cannot read the header"));
        }
        let (holds, vouched) = ([self.holds(&h0), self.holds(&h1)], [self.authentic(&h0), self.authentic(&h1)]);
        if holds == [false, false] {
            if let Some(h) = [h0, h1].into_iter().find(|h| self.authentic(h) && Self::version(h) != VERSION) {
                let v = Self::version(&h);
                return self.fail(format_args!("the header is of another layout (version {v}, this filter's is {VERSION}): not opened, nothing written"));
            }
        }
        let magic = [&h0[..16] == MAGIC, &h1[..16] == MAGIC];
        let (mend, h, rewrite) = match open_headers(HeaderCopies { page: 0, holds, vouched, magic, same: h0 == h1 }) {
            Headers::Open => (None, h0, false),
            Headers::Mend { from, step, why } => {
                (self.say)(format_args!("{why}"));
                (Some(step), [h0, h1][from], false)
            }
            Headers::Rewrite { from, step, why } => {
                (self.say)(format_args!("{why}"));
                (Some(step), [h0, h1][from], true)
            }
            Headers::Damaged => return self.fail(format_args!("the header's MAC does not match: a wrong key, or a damaged header")),
            // No header: a disk that holds something a user may want
            // (a LUKS volume, a file system) is not ours to format; any
            // other is fresh, unless its table says otherwise (wiped
            // headers).
            Headers::Fresh => {
                if let Some(found) = signature(bounce, 0) {
                    return self.fail(format_args!("{}", NotFormatted { found, header: "an integrity header" }));
                }
                self.held_data = !blank(bounce, 0);
                self.stage = Stage::ProbingTable;
                return SetupStep::Read { block: FIRST_TABLE_BLOCK, count: 1, offset: TABLE_PAGE * BLOCK as u64 };
            }
        };
        let m = u64::from(u32::from_le_bytes([h[16], h[17], h[18], h[19]]));
        let n = u64::from_le_bytes(h[24..32].try_into().unwrap_or([0; 8]));
        if (m, n) == (0, 0) {
            // No client ever saw this disk.
            (self.say)(format_args!("a format was cut short: formatting again"));
            return self.format(bounce, below);
        }
        if m > MAX_TABLE_BLOCKS || n.div_ceil(PER_BLOCK) != m || FIRST_TABLE_BLOCK + m + n > below {
            return self.fail(format_args!("a header that does not fit the disk ({m} table blocks, {n} blocks, on {below})"));
        }
        (self.table, self.blocks) = (m, n);
        if Self::layout_for(below).0 > n {
            // The image grew since the format, which laid the disk out once.
            let unused = below - FIRST_TABLE_BLOCK - m - n;
            (self.say)(format_args!("the disk has {below} blocks, more than when it was formatted: its last {unused} are not used"));
        }
        // Both copies anew (their magic was what was damaged).
        if rewrite && put_copies(bounce, 0, &self.header()).is_none() {
            return self.fail(format_args!("cannot write the header"));
        }
        match mend {
            Some(step) => {
                self.stage = Stage::Mending;
                step
            }
            None => self.read_next(0),
        }
    }

    /// Entry `b` of the table in the bounce buffer.
    fn entry(bounce: &Shared<'_>, b: u64) -> Option<[u8; MAC]> {
        let mut entry = [0u8; MAC];
        bounce.read_bytes(Self::entry_at(b), &mut entry).ok().map(|()| entry)
    }

    /// The disk has no header, but its first table block is this key's:
    /// it fails, nothing written.
    fn wiped(&mut self) -> SetupStep {
        self.fail(format_args!("blocks 0 and 1 hold no header, but the MAC table (block 2) is this key's: the headers were wiped; not formatted, nothing written"))
    }

    /// The first table block read, on a disk with no header: if an entry
    /// is a "never written" MAC this key made, the disk was this filter's
    /// and lost its headers; else the data blocks that block covers are
    /// read ([`Self::probed_data`]), since a disk whose first 128 blocks
    /// were all written has no "never written" entry there.
    fn probed_table(&mut self, bounce: &Shared<'_>, below: u64) -> SetupStep {
        for b in 0..PER_BLOCK {
            let Some(entry) = Self::entry(bounce, b) else { return self.fail(format_args!("cannot read the table")) };
            if entry == self.unwritten(b) {
                return self.wiped();
            }
        }
        self.probe_data(bounce, below, 0)
    }

    /// Read the next piece of the data blocks the first table block
    /// covers, from block `next`, into the bounce pages after it (the
    /// table is not loaded yet), where the disk's layout would put them;
    /// format once all were looked at.
    fn probe_data(&mut self, bounce: &Shared<'_>, below: u64, next: u64) -> SetupStep {
        let (n, m) = Self::layout_for(below);
        let covered = n.min(PER_BLOCK);
        if next >= covered {
            return self.format(bounce, below);
        }
        let count = (covered - next).min(u64::from(MAX_SETUP_BLOCKS));
        self.stage = Stage::ProbingData { next };
        SetupStep::Read { block: FIRST_TABLE_BLOCK + m + next, count: count as u32, offset: (TABLE_PAGE + 1 + next) * BLOCK as u64 }
    }

    /// Data blocks `next ..` read: if one's entry is its data MAC with
    /// this key, the disk was this filter's and lost its headers.
    fn probed_data(&mut self, bounce: &Shared<'_>, below: u64, next: u64) -> SetupStep {
        let (n, _) = Self::layout_for(below);
        let end = (next + u64::from(MAX_SETUP_BLOCKS)).min(n.min(PER_BLOCK));
        for b in next..end {
            let Some(entry) = Self::entry(bounce, b) else { return self.fail(format_args!("cannot read the table")) };
            if bounce.read_bytes(((TABLE_PAGE + 1 + b) * BLOCK as u64) as usize, &mut self.block).is_err() {
                return self.fail(format_args!("cannot read the data"));
            }
            if entry == self.mac(b"data", b, &self.block) {
                return self.wiped();
            }
        }
        self.probe_data(bounce, below, end)
    }

    /// The layout of a disk of `below` blocks: data blocks and table
    /// blocks. n data blocks need n / 128 table blocks, rounded up.
    fn layout_for(below: u64) -> (u64, u64) {
        let n = Self::fits(below).min(MAX_TABLE_BLOCKS * PER_BLOCK);
        (n, n.div_ceil(PER_BLOCK))
    }

    /// Data blocks a disk of `below` blocks would hold with no limit on
    /// the table. (Past what the table covers the size does not matter:
    /// clamped so the product fits.)
    fn fits(below: u64) -> u64 {
        let room = below.saturating_sub(FIRST_TABLE_BLOCK).min((MAX_TABLE_BLOCKS + 1) * (PER_BLOCK + 1));
        room * PER_BLOCK / (PER_BLOCK + 1)
    }

    /// First use of a blank disk of `below` blocks (or one whose format
    /// was cut short): lay it out, and write the header and its backup
    /// saying a format is under way.
    fn format(&mut self, bounce: &Shared<'_>, below: u64) -> SetupStep {
        if core::mem::take(&mut self.held_data) {
            (self.say)(format_args!("blocks 0 and 1 hold no integrity header, and nothing a tool would recognise: the disk is formatted, and what it held reads as zeros"));
        }
        let (n, table) = Self::layout_for(below);
        (self.blocks, self.table) = (n, table);
        if n < Self::fits(below) {
            let unused = below - FIRST_TABLE_BLOCK - self.table - n;
            (self.say)(format_args!(
                "formatting: {} blocks, {} blocks of MACs (the most this filter covers, 1 GiB: the disk's last {unused} blocks are not used)",
                self.blocks, self.table
            ));
        } else {
            (self.say)(format_args!("formatting: {} blocks, {} blocks of MACs", self.blocks, self.table));
        }
        // The mark first, on the medium before any table block: a power
        // cut from here until the header is written finds it, and formats
        // again (with no header at all, a table of this key's "never
        // written" MACs would make the disk look wiped).
        let Some(step) = put_copies(bounce, 0, &self.header_of(0, 0)) else { return self.fail(format_args!("cannot write the header")) };
        self.stage = Stage::Marking;
        step
    }

    /// Formatting: fill table block `next` with "never written" and write
    /// it (one per setup call: each stays well within the call budget);
    /// then a flush, then the header and its backup ([`Self::write_header`]).
    fn format_next(&mut self, bounce: &Shared<'_>, next: u64) -> SetupStep {
        if next == self.table {
            // The table on the medium before the header that vouches for
            // it: a power cut between them formats again.
            self.stage = Stage::TableFlushing;
            return SetupStep::Flush;
        }
        // (The page may hold what the probe read: zeroed first.)
        if bounce.write_bytes(((TABLE_PAGE + next) * BLOCK as u64) as usize, &[0u8; BLOCK]).is_err() {
            return self.fail(format_args!("cannot fill the table"));
        }
        for b in next * PER_BLOCK..((next + 1) * PER_BLOCK).min(self.blocks) {
            let mac = self.unwritten(b);
            if bounce.write_bytes(Self::entry_at(b), &mac).is_err() {
                return self.fail(format_args!("cannot fill the table"));
            }
        }
        self.stage = Stage::Formatting { next: next + 1 };
        SetupStep::Write { block: FIRST_TABLE_BLOCK + next, count: 1, offset: (TABLE_PAGE + next) * BLOCK as u64 }
    }

    /// The table is on the medium: the header and its backup, in one write.
    fn write_header(&mut self, bounce: &Shared<'_>) -> SetupStep {
        let Some(step) = put_copies(bounce, 0, &self.header()) else { return self.fail(format_args!("cannot write the header")) };
        self.stage = Stage::Formatted;
        step
    }

    /// Reading the table: the next piece from table block `next`.
    fn read_next(&mut self, next: u64) -> SetupStep {
        if next == self.table {
            (self.say)(format_args!("{} blocks, checked against {} blocks of MACs", self.blocks, self.table));
            self.stage = Stage::Ready;
            return SetupStep::Ready { first: self.first(), blocks: self.blocks };
        }
        let count = (self.table - next).min(u64::from(MAX_SETUP_BLOCKS));
        self.stage = Stage::Reading { next: next + count };
        SetupStep::Read { block: FIRST_TABLE_BLOCK + next, count: count as u32, offset: (TABLE_PAGE + next) * BLOCK as u64 }
    }

    /// The post-op of a read that succeeded: check every block.
    fn check(&mut self, bounce: &Shared<'_>, io: &Io, done: u32, data: &dyn RequestData) -> Verdict {
        for j in 0..u64::from(done) {
            let b = io.block + j;
            let mut want = [0u8; MAC];
            if b >= self.blocks || bounce.read_bytes(Self::entry_at(b), &mut want).is_err() {
                return Verdict::Fail(Status::IoError);
            }
            // (Into the filter's own block: a fresh one would be zeroed
            // first, a tenth of the check.)
            if data.read(io, j * BLOCK as u64, &mut self.block).is_err() {
                return Verdict::Fail(Status::IoError);
            }
            if self.mac(b"data", b, &self.block) == want {
                self.counts.verified += 1;
                continue;
            }
            if self.unwritten(b) == want {
                // Never written: zeros, whatever the disk holds there.
                self.counts.unwritten += 1;
                if data.write(io, j * BLOCK as u64, &[0u8; BLOCK]).is_err() {
                    return Verdict::Fail(Status::IoError);
                }
                continue;
            }
            self.counts.failed += 1;
            if self.counts.failed <= u64::from(SHOWN) {
                // (Its clients' block, and where that is below the filter:
                // on the host image when the filter is the lowest.)
                let below = b + self.first();
                (self.say)(format_args!(
                    "block {b} does not match its MAC: the read fails (block {below} of the disk below the filter; changed behind the filter, or read while a write of it was in flight)"
                ));
            }
            return Verdict::Fail(Status::IoError);
        }
        Verdict::Continue
    }

    /// The post-op of a write the device did: MAC its blocks into the table.
    fn record(&mut self, bounce: &Shared<'_>, io: &Io, done: u32, data: &dyn RequestData) -> Verdict {
        for j in 0..u64::from(done) {
            let b = io.block + j;
            if b >= self.blocks || data.read(io, j * BLOCK as u64, &mut self.block).is_err() {
                return Verdict::Fail(Status::IoError);
            }
            let mac = self.mac(b"data", b, &self.block);
            if bounce.write_bytes(Self::entry_at(b), &mac).is_err() {
                return Verdict::Fail(Status::IoError);
            }
            self.changes.mark(b / PER_BLOCK);
        }
        Verdict::Continue
    }

    /// Where the table is (see [`blk::metadata`]); a flush that waits
    /// reads the header into the scratch page.
    fn layout(&self) -> Layout {
        Layout { block: FIRST_TABLE_BLOCK, page: TABLE_PAGE as u16, blocks: self.table, wait_block: 0, wait_page: SCRATCH_PAGE as u16, snapshot: None }
    }

    /// The disk block of the clients' block 0.
    fn first(&self) -> u64 {
        FIRST_TABLE_BLOCK + self.table
    }
}

impl Filter for Integrity<'_> {
    fn setup(&mut self, call: &SetupCall, _: Option<&Shared<'_>>) -> SetupStep {
        let Some(bounce) = self.bounce else {
            return self.fail(format_args!("no bounce buffer of {BOUNCE} bytes"));
        };
        let ok = call.last.is_some_and(|c| c.status == Status::Ok);
        match self.stage {
            Stage::Start if call.below < FIRST_TABLE_BLOCK + 2 => self.fail(format_args!("a disk of {} blocks is too small", call.below)),
            Stage::Start => {
                self.stage = Stage::Header;
                // Header and backup into pages 0 and 1.
                SetupStep::Read { block: 0, count: 2, offset: 0 }
            }
            Stage::Header if ok => self.opened(&bounce, call.below),
            Stage::ProbingTable if ok => self.probed_table(&bounce, call.below),
            Stage::ProbingData { next } if ok => self.probed_data(&bounce, call.below, next),
            Stage::Mending if ok => self.read_next(0),
            Stage::Marking if ok => {
                self.stage = Stage::MarkFlushing;
                SetupStep::Flush
            }
            Stage::MarkFlushing if ok => self.format_next(&bounce, 0),
            Stage::Formatting { next } if ok => self.format_next(&bounce, next),
            Stage::TableFlushing if ok => self.write_header(&bounce),
            Stage::Formatted if ok => {
                self.stage = Stage::Ready;
                SetupStep::Ready { first: self.first(), blocks: self.blocks }
            }
            Stage::Reading { next } if ok => self.read_next(next),
            Stage::Ready => SetupStep::Ready { first: self.first(), blocks: self.blocks },
            Stage::Failed => SetupStep::Fail(Status::IoError),
            _ => {
                let step = match self.stage {
                    Stage::Header | Stage::ProbingTable | Stage::ProbingData { .. } | Stage::Reading { .. } => "read",
                    Stage::MarkFlushing | Stage::TableFlushing => "flush",
                    _ => "write",
                };
                self.fail(format_args!("{}", SetupFailure { step, last: call.last }))
            }
        }
    }

    fn pre(&mut self, io: &Io, _: &dyn RequestData, state: &mut u64) -> Verdict {
        if self.stage != Stage::Ready {
            return Verdict::Fail(Status::IoError);
        }
        match io.op {
            Op::Flush => {
                let (at, Some(bounce)) = (self.layout(), self.bounce) else { return Verdict::Fail(Status::IoError) };
                self.changes.flush(io, state, &at, &bounce).unwrap_or_else(|status| {
                    (self.say)(format_args!("writing the MAC table failed ({status:?}): the flush fails"));
                    Verdict::Fail(Status::IoError)
                })
            }
            _ => Verdict::Continue,
        }
    }

    fn post(&mut self, io: &Io, done: Completion, data: &dyn RequestData) -> Verdict {
        let Some(bounce) = self.bounce.filter(|_| self.stage == Stage::Ready) else { return Verdict::Fail(Status::IoError) };
        let count = done.count.min(io.count);
        match io.op {
            Op::Read if done.status == Status::Ok => self.check(&bounce, io, count, data),
            Op::Write if done.status == Status::Ok => self.record(&bounce, io, count, data),
            _ => Verdict::Continue,
        }
    }

    fn report(&mut self) {
        let c = self.counts;
        (self.say)(format_args!("{} blocks verified, {} failed, {} never written; {} table blocks written", c.verified, c.failed, c.unwritten, self.changes.written));
    }
}

#[cfg(test)]
mod tests;
