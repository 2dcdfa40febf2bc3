//! The filter ABI: how the filter server and a filter PD talk.
//!
//! A filter is a passive PD in a disk's chain. The server calls it with
//! protected procedure calls (*upcalls*): a pre-operation upcall in chain
//! order before a request goes down, a post-operation upcall in reverse
//! order after it completed below the filter. One upcall carries a batch of
//! up to [`MAX_BATCH`] requests, so a round of 32 requests costs one call
//! per filter per direction, not 32. For each request the filter answers a
//! [`Verdict`].
//!
//! # The upcall
//!
//! Each filter shares one page with the server, its *call page*: an array
//! of [`MAX_BATCH`] [`Entry`]s of 64 bytes. For an upcall the server writes
//! entries `0..n`, then calls the filter's channel with label
//! [`label::UPCALL`] and message register 0 = `n`. The filter writes a
//! verdict (and, in a pre-op, its per-request state) into each entry and
//! replies with label [`label::DONE`] and register 0 = `n`. Everything else
//! the filter writes into the page is ignored: the server keeps its own
//! record of every request and reads back only the verdict and state
//! words, which it checks. A reply with another label or count, a fault,
//! or a call that runs past the filter's budget fails every request of the
//! upcall with [`Status::IoError`].
//!
//! An entry (little-endian words):
//!
//! | word | bits | field | written by |
//! |---:|---|---|---|
//! | 0 | 0..8 | hook: 1 = pre, 2 = post ([`Hook`]) | server |
//! | 0 | 8..16 | [`Op`] | server |
//! | 0 | 16..24 | client: the server's number of the client the request came from | server |
//! | 0 | 24..32 | position: this filter's place in the chain, 0 = nearest the clients | server |
//! | 0 | 32..64 | count (blocks) | server |
//! | 1 | | block (of the disk, as the filter sees it) | server |
//! | 2 | | grant handle of the request's data, or 0 (see below) | server |
//! | 3 | 0..32 | request id: the server's slot, the same in pre and post | server |
//! | 3 | 32..64 | post: the [`Status`] from below | server |
//! | 4 | 0..32 | post: blocks done below | server |
//! | 4 | 32..40 | called again after the filter's own I/O ([`Verdict::SideIo`]): its status + 1; 0 = not | server |
//! | 4 | 40..64 | its blocks done | server |
//! | 5 | | state: any 8 bytes the filter keeps with the request, from one of its calls to the next | filter, server |
//! | 6 | 0..7 | verdict kind ([`Verdict`]), 0 = none given | filter |
//! | 6 | 7 | pre-op: no post-op for this request ([`NO_POST`]) | filter |
//! | 6 | 8..16 | verdict status; a side I/O's operation | filter |
//! | 6 | 16..32 | a redirect's link; a side I/O's first page of the bounce buffer | filter |
//! | 6 | 32..64 | verdict count | filter |
//! | 7 | | verdict argument: a substitute's offset, a redirect's or side I/O's block | filter |
//!
//! # Data: grants
//!
//! A filter that declared `data="read"` or `data="read-write"` gets, for
//! each read or write, a grant of exactly the request's data (`count *
//! 4096` bytes) as it stands at the filter's place in the chain: the
//! client's buffer, or the substitute buffer of a filter above. The server
//! lends it with the filter's rights for the one upcall (the kernel's
//! `PP_CALL_LEND`); the server itself never maps client data. The filter
//! copies through the handle with `grant_read` and `grant_write`
//! ([`RequestData`] on the filter side); the handle dies with the reply.
//! Without data rights, or for a flush, the handle is 0.
//!
//! # What a filter declares
//!
//! A [`Manifest`] in its program image (section `.strata_filter`) names
//! the hooks and operations it wants, the parameters it takes and the
//! size of its substitute (bounce) buffer. A filter is called only for the
//! hooks and operations it named: without a post hook it is not called
//! after, and an operation it did not name passes it untouched. The tool
//! reads the manifest to check `<param>`s and to size the bounce buffer.
//!
//! # Verdicts
//!
//! | kind | verdict | pre | post |
//! |---:|---|---|---|
//! | 1 | continue | the request goes on down | the completion goes on up unchanged |
//! | 2 | substitute (offset) | a read or write goes on down with the data at `offset` of the filter's bounce buffer instead (an encrypted copy of a write: the client's buffer is never changed) | not allowed |
//! | 3 | complete (status, count) | done here (a cache hit fills the data through a read-write grant); the filters above see it in their post-ops | replace the completion |
//! | 4 | fail (status, not OK) | failed here; the filters above see it | replace the completion with the failure |
//! | 5 | redirect (link, block) | the request goes down the chain of the disk the filter's `link`th `<link>` names instead, at `block` of that disk (as its clients see it), with the data as it stands here; its answer comes back as a completion from below: to this filter's post-op, then on up | the request goes down the linked disk's chain as well (a mirror's second write, a read failing over); its answer comes back to this post-op, called again |
//! | 6 | remap (block) | a read or write goes on down to `block` of the disk below the filter instead (the same count); the filters above still see it at its own block | not allowed |
//! | 7 | side I/O (op, block, count, page) | the filter's own read or write of `count` blocks at `block` of the disk below it, into or out of its bounce buffer from 4 KiB page `page` (1 to [`MAX_SETUP_BLOCKS`]), or its flush of that disk (`count` 0); the request waits, and then the same hook is called again for it with the side I/O's completion in word 4 | the same, in a post-op (the completion from below stays in words 3 and 4) |
//!
//! A verdict that is not allowed, malformed, or points outside the bounce
//! buffer, the disk below or the linked disk fails that request with
//! [`Status::IoError`] and counts as the filter's error.
//!
//! A filter with a post hook is called after every request of the
//! operations it named, unless its pre-op says it needs no post-op for
//! this one ([`NO_POST`] beside the verdict: [`Filter::wants_post`]): a
//! linked clone whose read went wholly to its base, an encrypting filter
//! after a write. That saves the request an upcall.
//!
//! The state word (5) a filter leaves in any call comes back in its next
//! call for the same request: a pre-op called again after its side I/O, a
//! post-op after its pre-op, a post-op called again after a redirect or
//! side I/O. It starts at 0.
//!
//! # Linked storage and the filter's own I/O
//!
//! A redirect takes a request into another disk's chain: a separate chain
//! whose filters run for it, as for the requests of that disk's own
//! clients (they see the client it came from). A filter may redirect only
//! along the `<link disk=".."/>`s declared in its `<filter>`, in order (link
//! 0 is the first); the tool refuses links that form a cycle. A linked
//! clone redirects reads of blocks it never wrote to its base disk; a
//! mirror redirects each write a second time from its post-op.
//!
//! A side I/O is I/O a filter needs besides the request: the metadata
//! block of an integrity filter, the map of a linked clone written before
//! a flush goes down. It goes through the filters below the filter (their
//! hooks see it with client number [`SETUP_CLIENT`]), like a setup step.
//!
//! # Setup and windows
//!
//! A filter that declares the `setup` hook is set up before its disk's
//! clients see the disk, filters nearest the device first: it reads (or
//! writes) its own disk below it, a piece at a time, and then says which
//! window of that disk it offers to the filters and clients above. An
//! encrypting filter reads its header and keeps the header area out of
//! the clients' view; an integrity filter keeps its metadata area.
//!
//! Each step is one call on the filter's channel with label
//! [`label::SETUP`] and message registers ([`SetupCall`]): 0 = round (0,
//! 1, ...), 1 = blocks below (what the filter sees: the device, or the
//! window of the filter below it), 2 and 3 = the status and blocks done of
//! the last step's I/O (round 0: none), 4 = blocks of the disk its first
//! `<link>` names (0: none; a disk with links is set up after the disks
//! they name). The filter replies with label
//! [`label::DONE`] and registers 0..4 saying its next step
//! ([`SetupStep`]):
//!
//! | register 0 | step | registers 1, 2, 3 |
//! |---:|---|---|
//! | 1 | ready: clients see blocks `first .. first + blocks` of the disk below, as their `0 .. blocks` | first, blocks |
//! | 2 | read blocks `block .. block + count` below into the bounce buffer at `offset` | block, count, offset |
//! | 3 | write them from the bounce buffer | block, count, offset |
//! | 4 | fail: the filter cannot serve this disk (wrong key, damaged header); every request of the disk fails | status |
//! | 5 | again: call once more (long work, such as deriving a key, in slices each within the filter's budget) | |
//! | 6 | own: clients see `blocks` blocks of the filter's own making, not a window of the disk below: it completes or remaps every read and write (one that goes on down unmapped past the disk below fails) | blocks |
//! | 7 | flush the disk below: the writes of the steps before are on the medium when it completes (a format's metadata before the header that vouches for it) | |
//!
//! A step's I/O goes through the filters below (their hooks see it, with
//! client number [`SETUP_CLIENT`]), at most [`MAX_SETUP_BLOCKS`] at a
//! time. A bad reply, a fault or a step outside the disk or the bounce
//! buffer fails the disk as a `fail` would. Without the hook a filter
//! offers the whole disk below it. Blocks in entries are always in the
//! filter's own view: block 0 is the first of the window the filter below
//! offers.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::records::{Op, Status, BLOCK_SIZE};
use shared_memory::{Shared, Slots};

/// Requests one upcall carries at most: the entries of one call page.
pub const MAX_BATCH: usize = 64;
/// Bytes of a call page.
pub const CALL_PAGE_SIZE: usize = MAX_BATCH * core::mem::size_of::<Entry>();

/// Message labels.
pub mod label {
    /// Server to filter: register 0 = entries in the call page.
    pub const UPCALL: u64 = 0x100;
    /// Filter to server: register 0 = entries served (after an upcall) or
    /// the next setup step (after a setup call).
    pub const DONE: u64 = 0x200;
    /// Server to filter: one step of its setup (see the module docs).
    pub const SETUP: u64 = 0x300;
    /// Server to filter: a client asked for its disk's statistics; the
    /// server has printed its own line for the filter, and the filter may
    /// print its own counters ([`Filter::report`](super::Filter::report)).
    /// No registers; the reply is `DONE` with none.
    pub const REPORT: u64 = 0x400;
}

/// The manifest's hook bit of the setup dialogue (beside [`Hook::bit`]).
pub const SETUP_HOOK: u8 = 4;
/// Blocks one setup step may read or write.
pub const MAX_SETUP_BLOCKS: u32 = 64;
/// The client number filters see in the entries of setup I/O.
pub const SETUP_CLIENT: u8 = 0xff;

/// A setup call, as the filter gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupCall {
    pub round: u32,
    /// Blocks of the disk below the filter.
    pub below: u64,
    /// How the last step's read or write went (`None` in round 0).
    pub last: Option<Completion>,
    /// Blocks of the disk its first `<link>` names, as that disk's clients
    /// see it (0: no link): how far a redirect there may reach.
    pub linked: u64,
}

/// Message registers of a setup call.
pub const SETUP_MRS: usize = 5;

impl SetupCall {
    pub const fn mrs(&self) -> [u64; SETUP_MRS] {
        let (status, count) = match self.last {
            Some(c) => (c.status.raw() as u64, c.count as u64),
            None => (u64::MAX, 0),
        };
        [self.round as u64, self.below, status, count, self.linked]
    }

    pub fn from_mrs(mrs: [u64; SETUP_MRS]) -> SetupCall {
        let last = Status::from_raw(mrs[2] as u32).ok().filter(|_| mrs[2] != u64::MAX && mrs[0] > 0).map(|status| Completion { status, count: mrs[3] as u32 });
        SetupCall { round: mrs[0] as u32, below: mrs[1], last, linked: mrs[4] }
    }
}

/// A filter's next setup step (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupStep {
    /// Set up: it offers blocks `first .. first + blocks` of the disk below.
    Ready { first: u64, blocks: u64 },
    /// Read `count` blocks from `block` into the bounce buffer at `offset`.
    Read { block: u64, count: u32, offset: u64 },
    /// Write them from the bounce buffer.
    Write { block: u64, count: u32, offset: u64 },
    /// It cannot serve the disk.
    Fail(Status),
    /// Call it again: it has more to do before its next I/O or its answer
    /// (work in slices, each within its call budget).
    Again,
    /// Set up: it offers `blocks` blocks of its own making (it completes or
    /// remaps every read and write).
    Own { blocks: u64 },
    /// Flush the disk below: the writes before it are on the medium when
    /// it completes (a format's metadata before the header that vouches
    /// for it).
    Flush,
}

/// Why the server refuses a setup step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    UnknownStep(u64),
    /// A window or I/O past the end of the disk below.
    OutsideDisk,
    /// I/O outside the bounce buffer, misaligned, empty or too large.
    BadBuffer,
    UnknownStatus,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::UnknownStep(k) => write!(f, "unknown setup step {k}"),
            SetupError::OutsideDisk => f.write_str("a setup step outside the disk below"),
            SetupError::BadBuffer => f.write_str("setup I/O outside the bounce buffer, empty or too large"),
            SetupError::UnknownStatus => f.write_str("a setup failure with an unknown status"),
        }
    }
}

impl SetupStep {
    pub const fn mrs(self) -> [u64; 4] {
        match self {
            SetupStep::Ready { first, blocks } => [1, first, blocks, 0],
            SetupStep::Read { block, count, offset } => [2, block, count as u64, offset],
            SetupStep::Write { block, count, offset } => [3, block, count as u64, offset],
            SetupStep::Fail(status) => [4, status.raw() as u64, 0, 0],
            SetupStep::Again => [5, 0, 0, 0],
            SetupStep::Own { blocks } => [6, blocks, 0, 0],
            SetupStep::Flush => [7, 0, 0, 0],
        }
    }

    /// The step a filter replied, checked against the `below` blocks of
    /// the disk below it and its `bounce` bytes. The server's side.
    pub fn from_mrs(mrs: [u64; 4], below: u64, bounce: u64) -> Result<SetupStep, SetupError> {
        let step = match mrs[0] {
            1 => SetupStep::Ready { first: mrs[1], blocks: mrs[2] },
            2 | 3 => {
                let (block, offset) = (mrs[1], mrs[3]);
                let count = u32::try_from(mrs[2]).map_err(|_| SetupError::BadBuffer)?;
                if mrs[0] == 2 {
                    SetupStep::Read { block, count, offset }
                } else {
                    SetupStep::Write { block, count, offset }
                }
            }
            4 => match Status::from_raw(mrs[1] as u32) {
                Ok(Status::Ok) | Err(_) => return Err(SetupError::UnknownStatus),
                Ok(s) if mrs[1] <= u32::MAX as u64 => SetupStep::Fail(s),
                Ok(_) => return Err(SetupError::UnknownStatus),
            },
            5 => SetupStep::Again,
            6 => SetupStep::Own { blocks: mrs[1] },
            7 => SetupStep::Flush,
            k => return Err(SetupError::UnknownStep(k)),
        };
        match step {
            SetupStep::Ready { first, blocks } if first.checked_add(blocks).is_none_or(|end| end > below) => Err(SetupError::OutsideDisk),
            SetupStep::Read { block, count, offset } | SetupStep::Write { block, count, offset } => {
                if block.checked_add(count as u64).is_none_or(|end| end > below) {
                    return Err(SetupError::OutsideDisk);
                }
                let bytes = count as u64 * BLOCK_SIZE as u64;
                if count == 0 || count > MAX_SETUP_BLOCKS || offset % BLOCK_SIZE as u64 != 0 || offset.checked_add(bytes).is_none_or(|end| end > bounce) {
                    return Err(SetupError::BadBuffer);
                }
                Ok(step)
            }
            _ => Ok(step),
        }
    }
}

/// Which upcall an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Hook {
    Pre = 1,
    Post = 2,
}

impl Hook {
    pub const fn bit(self) -> u8 {
        self as u8
    }
}

/// One request in a call page: 64 bytes (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(64))]
pub struct Entry {
    pub words: [u64; 8],
}

const _: () = assert!(core::mem::size_of::<Entry>() == 64 && CALL_PAGE_SIZE == 4096);

/// A request as a filter sees it in one upcall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Io {
    pub hook: Hook,
    pub op: Op,
    /// The server's number of the client the request came from.
    pub client: u8,
    /// This filter's place in the chain (0 = nearest the clients).
    pub position: u8,
    pub block: u64,
    pub count: u32,
    /// Grant handle of the request's data; 0 = none.
    pub grant: u64,
    /// The server's id of the request, the same in its pre and post.
    pub id: u32,
    /// The state the filter left in its last call for this request (0 in
    /// its first).
    pub state: u64,
    /// Called again after the filter's own I/O ([`Verdict::SideIo`]): how
    /// that went.
    pub side: Option<Completion>,
}

impl Io {
    /// Bytes of data the request moves.
    pub const fn data_len(&self) -> u64 {
        if self.op.moves_data() {
            self.count as u64 * BLOCK_SIZE as u64
        } else {
            0
        }
    }
}

/// How a request completed below a filter (in a post-op).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub count: u32,
}

/// The setup step a filter asked for and its disk failed, for the line
/// that says so: `its disk failed a setup write: invalid request (is the
/// disk read-only?)`. `step` is `read`, `write` or `flush`; `last` what
/// the server said of it.
pub struct SetupFailure<'a> {
    pub step: &'a str,
    pub last: Option<Completion>,
}

impl fmt::Display for SetupFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = self.step;
        match self.last {
            None => write!(f, "its disk gave no answer to a setup {step}"),
            // (A read-only device refuses writes as invalid requests.)
            Some(Completion { status: Status::InvalidRequest, .. }) if step == "write" => {
                write!(f, "its disk failed a setup write: invalid request (is the disk read-only?)")
            }
            Some(c) => write!(f, "its disk failed a setup {step}: {}", c.status),
        }
    }
}

/// A filter's answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pre: go on down. Post: pass the completion up unchanged.
    Continue,
    /// Pre, read or write: go on down with the data at this byte offset of
    /// the filter's bounce buffer (4 KiB aligned) instead.
    Substitute { offset: u64 },
    /// Pre: done here with this result. Post: replace the completion.
    Complete { status: Status, count: u32 },
    /// Failed with this status (never OK).
    Fail(Status),
    /// Send it down the chain of the disk of the filter's `link`th
    /// `<link>`, at `block` of that disk (see the module docs).
    Redirect { link: u8, block: u64 },
    /// Pre, read or write: go on down to this block of the disk below the
    /// filter instead.
    Remap { block: u64 },
    /// The filter's own `op` (read, write or flush) of `count` blocks at
    /// `block` of the disk below it, into or out of its bounce buffer from
    /// page `page` (4 KiB pages); then call this hook again for the
    /// request, with the side I/O's completion ([`Io::side`]).
    SideIo { op: Op, block: u64, count: u32, page: u16 },
}

/// Word 6 of an entry whose verdict is a plain continue (what
/// [`Entry::set_verdict`] writes for [`Verdict::Continue`]): the server's
/// fast path compares with it.
pub const CONTINUE_WORD: u64 = kind::CONTINUE as u64;

/// Bit of word 6 a pre-op sets beside its verdict when the filter needs no
/// post-op for the request ([`Filter::wants_post`]).
pub const NO_POST: u64 = 0x80;

mod kind {
    pub const CONTINUE: u8 = 1;
    pub const SUBSTITUTE: u8 = 2;
    pub const COMPLETE: u8 = 3;
    pub const FAIL: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const REMAP: u8 = 6;
    pub const SIDE_IO: u8 = 7;
}

/// Why the server refuses a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictError {
    /// No verdict kind, or one this ABI does not know.
    UnknownKind(u8),
    UnknownStatus(u8),
    /// A failure with status OK.
    FailWithOk,
    /// More blocks done than asked for.
    CountTooLarge,
    /// Substitute or remap in a post-op, substitute or remap for a flush,
    /// a side I/O of another operation.
    NotAllowedHere,
    /// A substitute buffer not block aligned or outside the bounce buffer.
    BadSubstitute,
    /// A side I/O empty, too large or outside the bounce buffer.
    BadSideIo,
}

impl fmt::Display for VerdictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerdictError::UnknownKind(0) => f.write_str("no verdict"),
            VerdictError::UnknownKind(k) => write!(f, "unknown verdict kind {k}"),
            VerdictError::UnknownStatus(s) => write!(f, "unknown status {s}"),
            VerdictError::FailWithOk => f.write_str("a failure with status OK"),
            VerdictError::CountTooLarge => f.write_str("more blocks done than asked for"),
            VerdictError::NotAllowedHere => f.write_str("a verdict not allowed for this upcall"),
            VerdictError::BadSubstitute => f.write_str("a substitute buffer outside the bounce buffer"),
            VerdictError::BadSideIo => f.write_str("a side I/O empty, too large or outside the bounce buffer"),
        }
    }
}

impl Verdict {
    /// Words 6 and 7 of an entry that carry this verdict.
    pub const fn words(self) -> [u64; 2] {
        // (kind, bits 8..16, bits 16..32, count, word 7)
        let (k, b8, b16, count, arg) = match self {
            Verdict::Continue => (kind::CONTINUE, 0, 0, 0, 0),
            Verdict::Substitute { offset } => (kind::SUBSTITUTE, 0, 0, 0, offset),
            Verdict::Complete { status, count } => (kind::COMPLETE, status.raw() as u8, 0, count, 0),
            Verdict::Fail(status) => (kind::FAIL, status.raw() as u8, 0, 0, 0),
            Verdict::Redirect { link, block } => (kind::REDIRECT, 0, link as u16, 0, block),
            Verdict::Remap { block } => (kind::REMAP, 0, 0, 0, block),
            Verdict::SideIo { op, block, count, page } => (kind::SIDE_IO, op.raw() as u8, page, count, block),
        };
        [k as u64 | (b8 as u64) << 8 | (b16 as u64) << 16 | (count as u64) << 32, arg]
    }
}

/// The side I/O's completion in word 4 (not 0 in bits 32..64); `None` if
/// it does not decode. (Out of line: most entries have none.)
#[inline(never)]
fn side_of(w4: u64) -> Option<Completion> {
    let status = Status::from_raw(u32::from((w4 >> 32) as u8).wrapping_sub(1)).ok()?;
    Some(Completion { status, count: (w4 >> 40) as u32 })
}

/// Bits 32..64 of word 4: a side I/O's completion (see the module docs).
pub const fn side_word(side: Option<Completion>) -> u64 {
    match side {
        Some(c) => (c.status.raw() as u64 + 1) | (c.count as u64) << 8,
        None => 0,
    }
}

fn status_of(raw: u8) -> Result<Status, VerdictError> {
    Status::from_raw(u32::from(raw)).map_err(|_| VerdictError::UnknownStatus(raw))
}

impl Entry {
    /// The entry the server writes for `io` (the verdict words cleared).
    pub fn new(io: &Io, done: Option<Completion>) -> Entry {
        let mut w = [0u64; 8];
        w[0] = io.hook as u64 | (io.op.raw() as u64) << 8 | (io.client as u64) << 16 | (io.position as u64) << 24 | (io.count as u64) << 32;
        w[1] = io.block;
        w[2] = io.grant;
        let (status, count) = done.map_or((0, 0), |d| (d.status.raw(), d.count));
        w[3] = io.id as u64 | (status as u64) << 32;
        w[4] = count as u64 | side_word(io.side) << 32;
        w[5] = io.state;
        Entry { words: w }
    }

    /// The request and (in a post-op) its completion, as the filter reads
    /// them; `None` for an entry that is not one the server writes.
    #[inline]
    pub fn io(&self) -> Option<(Io, Option<Completion>)> {
        let w = &self.words;
        let hook = match w[0] as u8 {
            1 => Hook::Pre,
            2 => Hook::Post,
            _ => return None,
        };
        let op = Op::from_raw((w[0] >> 8) as u8 as u32).ok()?;
        let io = Io {
            hook,
            op,
            client: (w[0] >> 16) as u8,
            position: (w[0] >> 24) as u8,
            count: (w[0] >> 32) as u32,
            block: w[1],
            grant: w[2],
            id: w[3] as u32,
            state: w[5],
            side: if w[4] >> 32 == 0 { None } else { Some(side_of(w[4])?) },
        };
        let done = match hook {
            Hook::Post => Some(Completion { status: Status::from_raw((w[3] >> 32) as u32).ok()?, count: w[4] as u32 }),
            Hook::Pre => None,
        };
        Some((io, done))
    }

    /// Write a verdict (filter side). Words 6 and 7.
    pub fn set_verdict(&mut self, v: Verdict) {
        [self.words[6], self.words[7]] = v.words();
    }

    /// The verdict words 6 and 7 as a filter wrote them, checked for the
    /// request they answer: `io` as the server sent it and the bytes of the
    /// filter's bounce buffer. The server's side.
    pub fn verdict(words: [u64; 2], io: &Io, bounce: u64) -> Result<Verdict, VerdictError> {
        let [w, arg] = words;
        let (k, raw_status, b16, count) = (w as u8 & !(NO_POST as u8), (w >> 8) as u8, (w >> 16) as u16, (w >> 32) as u32);
        let v = match k {
            kind::CONTINUE => Verdict::Continue,
            kind::SUBSTITUTE => Verdict::Substitute { offset: arg },
            kind::COMPLETE => Verdict::Complete { status: status_of(raw_status)?, count },
            kind::FAIL => match status_of(raw_status)? {
                Status::Ok => return Err(VerdictError::FailWithOk),
                s => Verdict::Fail(s),
            },
            kind::REDIRECT => Verdict::Redirect { link: b16 as u8, block: arg },
            kind::REMAP => Verdict::Remap { block: arg },
            kind::SIDE_IO => match Op::from_raw(u32::from(raw_status)) {
                Ok(op @ (Op::Read | Op::Write | Op::Flush)) => Verdict::SideIo { op, block: arg, count, page: b16 },
                _ => return Err(VerdictError::NotAllowedHere),
            },
            k => return Err(VerdictError::UnknownKind(k)),
        };
        match v {
            Verdict::Complete { count, .. } if count > io.count => Err(VerdictError::CountTooLarge),
            Verdict::Substitute { .. } | Verdict::Remap { .. } if io.hook == Hook::Post => Err(VerdictError::NotAllowedHere),
            Verdict::Redirect { .. } if !matches!(io.op, Op::Read | Op::Write | Op::Flush) => Err(VerdictError::NotAllowedHere),
            Verdict::SideIo { op, count, page, .. } => {
                let end = (u64::from(page) + u64::from(count)) * BLOCK_SIZE as u64;
                let moves = op.moves_data();
                if moves && (count == 0 || count > MAX_SETUP_BLOCKS || end > bounce) || !moves && count != 0 {
                    Err(VerdictError::BadSideIo)
                } else {
                    Ok(v)
                }
            }
            Verdict::Remap { .. } if !io.op.moves_data() => Err(VerdictError::NotAllowedHere),
            Verdict::Substitute { .. } if !io.op.moves_data() => Err(VerdictError::NotAllowedHere),
            Verdict::Substitute { offset } => {
                let end = offset.checked_add(io.data_len());
                if offset % BLOCK_SIZE as u64 != 0 || end.is_none_or(|e| e > bounce) {
                    Err(VerdictError::BadSubstitute)
                } else {
                    Ok(v)
                }
            }
            _ => Ok(v),
        }
    }
}

/// A filter's view of one call page, whole entries at a time.
pub fn call_page(mem: Shared<'_>) -> Option<Slots<'_, Entry>> {
    Slots::new(mem, 0, core::num::NonZeroU32::new(MAX_BATCH as u32)?).ok()
}

/// One call page, a word at a time: each side writes only the words it
/// owns (the server's hot loop writes six words an entry and reads one
/// back for a plain continue; a filter reads six and writes three). The
/// words are an array of 512 (`Slots`), so an index is masked into the
/// page rather than checked.
#[derive(Clone, Copy)]
pub struct CallPage<'a>(Slots<'a, u64>);

impl<'a> CallPage<'a> {
    /// The page at the start of `mem` (8-byte aligned); `None` if `mem` is
    /// smaller or misaligned.
    pub fn new(mem: Shared<'a>) -> Option<CallPage<'a>> {
        let words = core::num::NonZeroU32::new((CALL_PAGE_SIZE / 8) as u32)?;
        Slots::new(mem, 0, words).ok().map(CallPage)
    }

    /// Word `w` (0..8) of entry `i` (0..[`MAX_BATCH`]); indices beyond
    /// wrap around within the page.
    #[inline(always)]
    pub fn word(&self, i: usize, w: usize) -> u64 {
        self.0.get((i * 8 + w) as u32)
    }

    /// Set word `w` of entry `i`.
    #[inline(always)]
    pub fn set_word(&self, i: usize, w: usize, value: u64) {
        self.0.set((i * 8 + w) as u32, &value)
    }

    /// Set words `first .. first + N` of entry `i` in one run (an entry
    /// never wraps: the page holds whole entries).
    #[inline(always)]
    pub fn set_words<const N: usize>(&self, i: usize, first: usize, words: &[u64; N]) {
        const { assert!(N <= 8) };
        if !self.0.set_run((i * 8 + first) as u32, words) {
            for (w, &value) in words.iter().enumerate() {
                self.set_word(i, first + w, value);
            }
        }
    }

    /// Words `first .. first + N` of entry `i`, read in one run.
    #[inline(always)]
    pub fn words<const N: usize>(&self, i: usize, first: usize) -> [u64; N] {
        const { assert!(N <= 8) };
        self.0.get_run((i * 8 + first) as u32).unwrap_or_else(|| core::array::from_fn(|w| self.word(i, first + w)))
    }

    /// Entry `i`, every word.
    pub fn entry(&self, i: usize) -> Entry {
        Entry { words: core::array::from_fn(|w| self.word(i, w)) }
    }

    /// Write every word of entry `i`.
    pub fn set_entry(&self, i: usize, e: &Entry) {
        for (w, &v) in e.words.iter().enumerate() {
            self.set_word(i, w, v);
        }
    }
}



/// Why a copy of request data was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// The filter has no grant for this request (no data rights, or a
    /// request without data).
    NoAccess,
    /// The grant is read-only.
    ReadOnly,
    /// Outside the request's data.
    OutOfRange,
    /// The kernel refused the copy for another reason (a stale handle, a
    /// buffer the filter may not use): its error number.
    Refused(u64),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::NoAccess => f.write_str("no access to this request's data"),
            DataError::ReadOnly => f.write_str("this filter may only read request data"),
            DataError::OutOfRange => f.write_str("outside the request's data"),
            DataError::Refused(e) => write!(f, "copy refused (error {e})"),
        }
    }
}

impl core::error::Error for DataError {}

/// A request's data as a filter reaches it: bytes `0..len` of the grant,
/// by copies the kernel checks. (Not a slice: the data is another PD's
/// memory, reached only through the grant handle while the upcall lasts.)
pub trait RequestData {
    /// Copy bytes from `offset` of request `io`'s data into `out`.
    fn read(&self, io: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError>;
    /// Copy `data` to `offset` of request `io`'s data (needs a read-write
    /// grant).
    fn write(&self, io: &Io, offset: u64, data: &[u8]) -> Result<(), DataError>;
}

/// No data access at all (a filter with `data="none"`, and host tests).
pub struct NoData;

impl RequestData for NoData {
    fn read(&self, _: &Io, _: u64, _: &mut [u8]) -> Result<(), DataError> {
        Err(DataError::NoAccess)
    }
    fn write(&self, _: &Io, _: u64, _: &[u8]) -> Result<(), DataError> {
        Err(DataError::NoAccess)
    }
}

/// A filter's logic, free of the PD around it (which [`serve`] connects to
/// the call page). Both hooks default to letting everything through.
pub trait Filter {
    /// One step of the setup dialogue (only for a filter that declares the
    /// `setup` hook): `bounce` is the filter's bounce buffer, where its
    /// reads land. The default offers the whole disk below.
    fn setup(&mut self, call: &SetupCall, bounce: Option<&Shared<'_>>) -> SetupStep {
        let _ = bounce;
        SetupStep::Ready { first: 0, blocks: call.below }
    }

    /// Before `io` goes further down. `state` starts as `io.state` (0 in
    /// the first call, what the filter left before when it is called again
    /// after a side I/O); what the filter leaves there comes back in its
    /// next call for the request as `io.state`.
    fn pre(&mut self, io: &Io, data: &dyn RequestData, state: &mut u64) -> Verdict {
        let _ = (io, data, state);
        Verdict::Continue
    }

    /// After `io` completed below with `done`. For a read that succeeded,
    /// the data holds what was read (a decrypting filter rewrites it).
    fn post(&mut self, io: &Io, done: Completion, data: &dyn RequestData) -> Verdict {
        let _ = (io, done, data);
        Verdict::Continue
    }

    /// The post-op of a filter that redirects or does side I/O from it and
    /// needs to tell its calls apart: `state` starts as `io.state`, and
    /// what the filter leaves there comes back when it is called again.
    /// The default calls [`post`](Filter::post) and keeps the state.
    fn post_state(&mut self, io: &Io, done: Completion, data: &dyn RequestData, state: &mut u64) -> Verdict {
        let _ = state;
        self.post(io, done, data)
    }

    /// After a pre-op's `verdict` (with the `state` it left): whether the
    /// filter's post-op is needed for this request. The default, yes; a
    /// filter that has nothing to do after some requests says no for them
    /// and saves each an upcall. (Only for filters with a post hook; a
    /// pre-op called again after its side I/O is asked again.)
    fn wants_post(&self, io: &Io, verdict: &Verdict, state: u64) -> bool {
        let _ = (io, verdict, state);
        true
    }

    /// A client asked for its disk's statistics (`Op::Report`): print the
    /// filter's own counters, if it keeps any, after the server's line for
    /// it (hits and misses of a cache). The default prints nothing.
    fn report(&mut self) {}
}

/// Serve one upcall of `n` entries in `page`: run the filter on each and
/// write its verdict and state back. Returns the entries served (`n`, at
/// most [`MAX_BATCH`]). An entry that does not decode is answered
/// `Fail(InvalidRequest)` without reaching the filter.
pub fn serve<F: Filter + ?Sized>(filter: &mut F, page: &CallPage<'_>, n: usize, data: &dyn RequestData) -> usize {
    let n = n.min(MAX_BATCH);
    for i in 0..n {
        let head: [u64; 6] = page.words(i, 0);
        let e = Entry { words: core::array::from_fn(|w| head.get(w).copied().unwrap_or(0)) };
        let mut state = e.words[5];
        let (v, no_post) = match e.io() {
            Some((io, None)) => {
                let v = filter.pre(&io, data, &mut state);
                let no_post = !filter.wants_post(&io, &v, state);
                (v, no_post)
            }
            Some((io, Some(done))) => (filter.post_state(&io, done, data, &mut state), false),
            None => (Verdict::Fail(Status::InvalidRequest), false),
        };
        let [w6, w7] = v.words();
        page.set_words(i, 5, &[state, if no_post { w6 | NO_POST } else { w6 }, w7]);
    }
    n
}

/// What a filter declares about itself (see the module docs), kept in its
/// program image so the tool can read it: a byte string of `key=value`
/// fields, each ended by a NUL, after the line [`Manifest::MAGIC`]:
///
/// ```text
/// strata-filter 1\0hooks=pre,post\0ops=read,write,flush\0params=rule,seed\0bounce=0\0
/// ```
///
/// `hooks`: `pre`, `post`, `setup`; `ops`: `read`, `write`, `flush` (a flush is
/// sent to the driver as a flush of completed writes); `params`: the
/// `<param>` keys the filter takes; `bounce`: bytes of its substitute
/// buffer (a multiple of 4096, 0 for none); `pre_ops` and `post_ops`
/// (optional, some of `ops`): the operations it wants that hook for, when
/// not all of them (a filter with work to do before a flush only, and
/// after reads and writes, says `pre_ops=flush`: a read or write then
/// costs one upcall, not two); `caches` (optional, `yes` or
/// `no`): whether it keeps copies of blocks from below, which a write that
/// enters the chain below it (a client attached there) would leave stale,
/// so the tool warns of such a client unless it is `read_only`; `needs`
/// (optional, some of `params`): the params it cannot start without;
/// `data` (optional, `none`, `read` or `read-write`): the least rights on
/// request data it works with; `links` (optional, a count): how many
/// `<link>`s it works with, exactly (a mirror's secondary, a clone's
/// base); `restart` (optional, `yes` or `no`): whether a restart keeps
/// its promises (`no` for a filter whose memory holds what its disk does
/// not yet, a clone's map of blocks written since the last flush). The
/// tool refuses a `<filter>` that lacks any of these, or a restart it
/// says no to, at the element, so the mistake is not first seen at boot.
/// `keeps` (optional, a phrase): what the filter keeps on the disk below
/// it (its header and map, a second copy), which a write entering the
/// chain below it would go around and may destroy, so the tool warns of
/// such a client unless it is `read_only`; `block_us` (optional): the
/// microseconds one 4 KiB block of request data may cost it in an upcall,
/// at worst, so the server splits a batch of large requests over several
/// upcalls within its budget; `min_budget` (optional, microseconds): the
/// least budget it works with; `linked` (optional, `read` or
/// `read-write`): what it does to its linked disks (reads a clone's base;
/// reads and writes a mirror's secondary), so the tool warns of another
/// writer of such a disk (which would change what the clone reads, or
/// make the mirror's copies differ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest<'a> {
    /// [`Hook::bit`]s.
    pub hooks: u8,
    /// Bit `op.raw()` per operation.
    pub ops: u8,
    pub params: heapless::Vec<&'a str, 8>,
    pub bounce: u64,
    pub caches: bool,
    /// The [`op_bit`]s of `ops` it wants its pre-op and its post-op for.
    pub pre_ops: u8,
    pub post_ops: u8,
    /// The params it cannot start without (each one of `params`).
    pub needs: heapless::Vec<&'a str, 8>,
    /// The least rights it needs on request data: 0, [`DATA_READ`], or
    /// that and [`DATA_WRITE`].
    pub data: u8,
    /// The number of `<link>`s it works with, if it says.
    pub links: Option<u8>,
    /// Whether it may be declared `on_fault="restart"`.
    pub restart: bool,
    /// What it keeps on the disk below it, if it says (a phrase for the
    /// tool's warning).
    pub keeps: Option<&'a str>,
    /// Microseconds one 4 KiB block of request data may cost it in an
    /// upcall, at worst (0: not said): the server carries no more blocks
    /// in one upcall than its budget pays for.
    pub block_us: u64,
    /// The least budget its upcalls work with (its setup's steps), if it
    /// says: a `<filter budget>` below it is refused.
    pub min_budget: Option<u64>,
    /// What it does to its linked disks, if it says: [`DATA_READ`], or
    /// that and [`DATA_WRITE`].
    pub linked: u8,
    /// Microseconds one upcall may take when its `<filter>` declares no
    /// `budget` (the tool's default when this says none): for a filter
    /// whose calls do more than most, within a bound it knows.
    pub budget: Option<u64>,
}

/// A manifest's data rights, the same bits as `abi`'s grant rights
/// (`GRANT_READ`, `GRANT_WRITE`; the tool checks they agree).
pub const DATA_READ: u8 = 1 << 0;
pub const DATA_WRITE: u8 = 1 << 1;

/// Why a manifest does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    NoMagic,
    /// A field that is not `key=value` with a known key and value.
    BadField,
    TooManyParams,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManifestError::NoMagic => "not a filter manifest",
            ManifestError::BadField => "a malformed manifest field",
            ManifestError::TooManyParams => "more than 8 params",
        })
    }
}

/// The operation bit of `op` in [`Manifest::ops`].
pub const fn op_bit(op: Op) -> u8 {
    1 << op.raw()
}

impl<'a> Manifest<'a> {
    pub const MAGIC: &'static str = "strata-filter 1";

    /// Read a manifest (the section's bytes; trailing NULs are fine).
    pub fn parse(bytes: &'a [u8]) -> Result<Manifest<'a>, ManifestError> {
        let text = core::str::from_utf8(bytes).map_err(|_| ManifestError::BadField)?;
        let mut fields = text.split('\0').filter(|f| !f.is_empty());
        if fields.next() != Some(Self::MAGIC) {
            return Err(ManifestError::NoMagic);
        }
        let mut m = Manifest {
            hooks: 0,
            ops: 0,
            params: heapless::Vec::new(),
            bounce: 0,
            caches: false,
            restart: true,
            budget: None,
            keeps: None,
            block_us: 0,
            min_budget: None,
            linked: 0,
            pre_ops: 0,
            post_ops: 0,
            needs: heapless::Vec::new(),
            data: 0,
            links: None,
        };
        let (mut pre_ops, mut post_ops) = (None, None);
        for field in fields {
            let (key, value) = field.split_once('=').ok_or(ManifestError::BadField)?;
            let items = value.split(',').filter(|v| !v.is_empty());
            match key {
                "hooks" => {
                    for h in items {
                        m.hooks |= match h {
                            "pre" => Hook::Pre.bit(),
                            "post" => Hook::Post.bit(),
                            "setup" => SETUP_HOOK,
                            _ => return Err(ManifestError::BadField),
                        };
                    }
                }
                "ops" => m.ops |= Self::ops(items)?,
                "pre_ops" => pre_ops = Some(Self::ops(items)?),
                "post_ops" => post_ops = Some(Self::ops(items)?),
                "params" => Self::names(&mut m.params, items)?,
                "needs" => Self::names(&mut m.needs, items)?,
                "data" => {
                    m.data = match value {
                        "none" => 0,
                        "read" => DATA_READ,
                        "read-write" => DATA_READ | DATA_WRITE,
                        _ => return Err(ManifestError::BadField),
                    };
                }
                "links" => {
                    let n: u8 = value.parse().map_err(|_| ManifestError::BadField)?;
                    if usize::from(n) > crate::config::MAX_LINKS {
                        return Err(ManifestError::BadField);
                    }
                    m.links = Some(n);
                }
                "budget" => {
                    let us: u64 = value.parse().map_err(|_| ManifestError::BadField)?;
                    if us == 0 {
                        return Err(ManifestError::BadField);
                    }
                    m.budget = Some(us);
                }
                "restart" => {
                    m.restart = match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(ManifestError::BadField),
                    };
                }
                "keeps" if !value.is_empty() => m.keeps = Some(value),
                "block_us" => m.block_us = value.parse().map_err(|_| ManifestError::BadField)?,
                "min_budget" => m.min_budget = Some(value.parse().map_err(|_| ManifestError::BadField)?),
                "linked" => {
                    m.linked = match value {
                        "read" => DATA_READ,
                        "read-write" => DATA_READ | DATA_WRITE,
                        _ => return Err(ManifestError::BadField),
                    };
                }
                "caches" => {
                    m.caches = match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(ManifestError::BadField),
                    };
                }
                "bounce" => {
                    m.bounce = value.parse().map_err(|_| ManifestError::BadField)?;
                    if m.bounce % u64::from(BLOCK_SIZE) != 0 {
                        return Err(ManifestError::BadField);
                    }
                }
                _ => return Err(ManifestError::BadField),
            }
        }
        // What it needs is among what it takes.
        if m.needs.iter().any(|n| !m.params.contains(n)) {
            return Err(ManifestError::BadField);
        }
        // Each hook's operations are some of `ops` (all, unless it says).
        for (narrowed, out) in [(pre_ops, &mut m.pre_ops), (post_ops, &mut m.post_ops)] {
            *out = match narrowed {
                None => m.ops,
                Some(ops) if ops & !m.ops == 0 && ops != 0 => ops,
                Some(_) => return Err(ManifestError::BadField),
            };
        }
        Ok(m)
    }

    /// Add a list of param names to `into` (at most 8 in all).
    fn names(into: &mut heapless::Vec<&'a str, 8>, items: impl Iterator<Item = &'a str>) -> Result<(), ManifestError> {
        for p in items {
            into.push(p).map_err(|_| ManifestError::TooManyParams)?;
        }
        Ok(())
    }

    /// The operation bits of a list of `read`, `write`, `flush`.
    fn ops<'i>(items: impl Iterator<Item = &'i str>) -> Result<u8, ManifestError> {
        let mut bits = 0;
        for o in items {
            bits |= match o {
                "read" => op_bit(Op::Read),
                "write" => op_bit(Op::Write),
                "flush" => op_bit(Op::Flush) | op_bit(Op::FlushCompleted),
                _ => return Err(ManifestError::BadField),
            };
        }
        Ok(bits)
    }

    /// Whether the filter wants `hook` for `op`.
    pub const fn wants(&self, hook: Hook, op: Op) -> bool {
        let ops = match hook {
            Hook::Pre => self.pre_ops,
            Hook::Post => self.post_ops,
        };
        self.hooks & hook.bit() != 0 && ops & op_bit(op) != 0
    }
}

/// Declare a filter's manifest in its program image (see [`Manifest`]):
///
/// ```ignore
/// blk::filter_manifest!("hooks=pre,post", "ops=read,write,flush", "params=", "bounce=0");
/// ```
#[macro_export]
macro_rules! filter_manifest {
    ($($field:literal),* $(,)?) => {
        // (A named section is all the "unsafe" here: nothing reads it at
        // run time.)
        #[allow(unsafe_code)]
        #[used]
        #[link_section = ".strata_filter"]
        static STRATA_FILTER_MANIFEST: [u8; { $crate::filter::manifest_len(&[$($field),*]) }] =
            $crate::filter::manifest_bytes(&[$($field),*]);
    };
}

#[doc(hidden)]
pub const fn manifest_len(fields: &[&str]) -> usize {
    let mut n = Manifest::MAGIC.len() + 1;
    let mut i = 0;
    while i < fields.len() {
        n += fields[i].len() + 1;
        i += 1;
    }
    n
}

#[doc(hidden)]
pub const fn manifest_bytes<const N: usize>(fields: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let magic = Manifest::MAGIC.as_bytes();
    let mut j = 0;
    while j < magic.len() {
        out[at] = magic[j];
        at += 1;
        j += 1;
    }
    at += 1;
    let mut i = 0;
    while i < fields.len() {
        let f = fields[i].as_bytes();
        let mut j = 0;
        while j < f.len() {
            out[at] = f[j];
            at += 1;
            j += 1;
        }
        at += 1;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(hook: Hook) -> Io {
        Io { hook, op: Op::Write, client: 3, position: 1, block: 0x1_0000_0001, count: 2, grant: 0x105, id: 17, state: 0, side: None }
    }

    #[test]
    fn setup_calls_and_steps_travel_in_the_documented_registers() {
        let call = SetupCall { round: 2, below: 1000, last: Some(Completion { status: Status::IoError, count: 0 }), linked: 77 };
        assert_eq!(call.mrs(), [2, 1000, Status::IoError.raw() as u64, 0, 77]);
        assert_eq!(SetupCall::from_mrs(call.mrs()), call);
        let first = SetupCall { round: 0, below: 1000, last: None, linked: 0 };
        assert_eq!(SetupCall::from_mrs(first.mrs()), first);
        for step in [
            SetupStep::Ready { first: 512, blocks: 488 },
            SetupStep::Read { block: 1, count: 63, offset: 4096 },
            SetupStep::Write { block: 999, count: 1, offset: 0 },
            SetupStep::Fail(Status::IoError),
            SetupStep::Again,
            SetupStep::Own { blocks: 1 << 40 },
            SetupStep::Flush,
        ] {
            assert_eq!(SetupStep::from_mrs(step.mrs(), 1000, 64 * 4096), Ok(step), "{step:?}");
        }
        assert_eq!(SetupStep::Ready { first: 512, blocks: 488 }.mrs(), [1, 512, 488, 0]);
        assert_eq!(SetupStep::Read { block: 1, count: 63, offset: 4096 }.mrs(), [2, 1, 63, 4096]);
    }

    #[test]
    fn the_server_refuses_setup_steps_that_do_not_fit() {
        let check = |mrs| SetupStep::from_mrs(mrs, 1000, 8 * 4096);
        assert_eq!(check([1, 1, 1000, 0]), Err(SetupError::OutsideDisk));
        assert_eq!(check([1, u64::MAX, 2, 0]), Err(SetupError::OutsideDisk));
        assert_eq!(check([2, 999, 2, 0]), Err(SetupError::OutsideDisk));
        assert_eq!(check([2, 0, 9, 0]), Err(SetupError::BadBuffer), "past the bounce buffer");
        assert_eq!(check([3, 0, 0, 0]), Err(SetupError::BadBuffer), "empty");
        assert_eq!(check([2, 0, 1, 4095]), Err(SetupError::BadBuffer), "misaligned");
        assert_eq!(check([2, 0, 1 << 32, 0]), Err(SetupError::BadBuffer));
        assert_eq!(SetupStep::from_mrs([2, 0, 65, 0], 1000, 1 << 20), Err(SetupError::BadBuffer), "more than a step may move");
        assert_eq!(check([4, Status::Ok.raw() as u64, 0, 0]), Err(SetupError::UnknownStatus));
        assert_eq!(check([4, 200, 0, 0]), Err(SetupError::UnknownStatus));
        assert_eq!(check([9, 0, 0, 0]), Err(SetupError::UnknownStep(9)));
    }

    #[test]
    fn a_manifest_may_declare_the_setup_hook() {
        let m = Manifest::parse(b"strata-filter 1\0hooks=pre,setup\0ops=read\0").unwrap();
        assert_eq!(m.hooks, Hook::Pre.bit() | SETUP_HOOK);
    }

    #[test]
    fn an_entry_carries_the_documented_words() {
        let e = Entry::new(&io(Hook::Pre), None);
        assert_eq!(e.words[0], 1 | 1 << 8 | 3 << 16 | 1 << 24 | 2 << 32);
        assert_eq!(&e.words[1..4], &[0x1_0000_0001, 0x105, 17]);
        assert_eq!(e.words[6..], [0, 0], "no verdict yet");
        assert_eq!(e.io(), Some((io(Hook::Pre), None)));
        let done = Completion { status: Status::IoError, count: 1 };
        let post = Io { state: 0xabc, ..io(Hook::Post) };
        let e = Entry::new(&post, Some(done));
        assert_eq!((e.words[3] >> 32, e.words[4], e.words[5]), (2, 1, 0xabc));
        assert_eq!(e.io(), Some((post, Some(done))));
        // Called again after a side I/O: its completion in word 4's top half.
        let again = Io { side: Some(Completion { status: Status::Ok, count: 64 }), ..post };
        let e = Entry::new(&again, Some(done));
        assert_eq!(e.words[4], 1 | (Status::Ok.raw() as u64 + 1) << 32 | 64 << 40);
        assert_eq!(e.io(), Some((again, Some(done))));
    }

    #[test]
    fn entries_that_are_not_the_servers_do_not_decode() {
        for w0 in [0, 3, 1 | 9 << 8] {
            assert_eq!(Entry { words: [w0, 0, 0, 0, 0, 0, 0, 0] }.io(), None, "{w0:#x}");
        }
        assert_eq!(Entry { words: [2, 0, 0, 7 << 32, 0, 0, 0, 0] }.io(), None, "a post with an unknown status");
    }

    #[test]
    fn every_verdict_round_trips_where_it_is_allowed() {
        let pre = io(Hook::Pre);
        let post = io(Hook::Post);
        for (v, at) in [
            (Verdict::Continue, pre),
            (Verdict::Continue, post),
            (Verdict::Substitute { offset: 0x2000 }, pre),
            (Verdict::Complete { status: Status::Ok, count: 2 }, pre),
            (Verdict::Complete { status: Status::IoError, count: 0 }, post),
            (Verdict::Fail(Status::NoDevice), pre),
            (Verdict::Fail(Status::InvalidRequest), post),
            (Verdict::Redirect { link: 3, block: 1 << 40 }, pre),
            (Verdict::Redirect { link: 0, block: 7 }, post),
            (Verdict::SideIo { op: Op::Write, block: 9, count: 4, page: 0 }, pre),
            (Verdict::SideIo { op: Op::Read, block: 1 << 33, count: 1, page: 3 }, post),
            (Verdict::SideIo { op: Op::Flush, block: 0, count: 0, page: 0 }, post),
        ] {
            let mut e = Entry::new(&at, None);
            e.set_verdict(v);
            assert_eq!(Entry::verdict([e.words[6], e.words[7]], &at, 0x4000), Ok(v), "{v:?}");
        }
    }

    #[test]
    fn the_server_refuses_verdicts_that_do_not_fit_the_request() {
        let pre = io(Hook::Pre);
        let post = io(Hook::Post);
        let flush = Io { op: Op::Flush, count: 0, ..pre };
        let check = |v: Verdict, at: &Io| {
            let mut e = Entry::new(at, None);
            e.set_verdict(v);
            Entry::verdict([e.words[6], e.words[7]], at, 0x4000)
        };
        assert_eq!(Entry::verdict([0, 0], &pre, 0), Err(VerdictError::UnknownKind(0)), "no verdict written");
        assert_eq!(Entry::verdict([9, 0], &pre, 0), Err(VerdictError::UnknownKind(9)));
        assert_eq!(Entry::verdict([3 | 7 << 8, 0], &pre, 0), Err(VerdictError::UnknownStatus(7)));
        assert_eq!(check(Verdict::Fail(Status::Ok), &pre), Err(VerdictError::FailWithOk));
        assert_eq!(check(Verdict::Complete { status: Status::Ok, count: 3 }, &pre), Err(VerdictError::CountTooLarge));
        assert_eq!(check(Verdict::Substitute { offset: 0 }, &post), Err(VerdictError::NotAllowedHere));
        assert_eq!(check(Verdict::Substitute { offset: 0 }, &flush), Err(VerdictError::NotAllowedHere));
        assert_eq!(check(Verdict::Substitute { offset: 0x2001 }, &pre), Err(VerdictError::BadSubstitute));
        assert_eq!(check(Verdict::Substitute { offset: 0x3000 }, &pre), Err(VerdictError::BadSubstitute), "2 blocks from 0x3000 pass 0x4000");
        assert_eq!(check(Verdict::Substitute { offset: u64::MAX - 0xfff }, &pre), Err(VerdictError::BadSubstitute));
        assert_eq!(check(Verdict::Remap { block: 0 }, &post), Err(VerdictError::NotAllowedHere));
        assert_eq!(check(Verdict::Redirect { link: 0, block: 0 }, &Io { op: Op::Barrier, ..pre }), Err(VerdictError::NotAllowedHere));
        let side = |op, count, page| check(Verdict::SideIo { op, block: 0, count, page }, &pre);
        assert_eq!(side(Op::Read, 0, 0), Err(VerdictError::BadSideIo), "empty");
        assert_eq!(side(Op::Read, 2, 3), Err(VerdictError::BadSideIo), "pages 3 and 4 pass 0x4000");
        assert_eq!(side(Op::Write, MAX_SETUP_BLOCKS + 1, 0), Err(VerdictError::BadSideIo));
        assert_eq!(side(Op::Flush, 1, 0), Err(VerdictError::BadSideIo), "a flush moves no blocks");
        assert_eq!(side(Op::Barrier, 0, 0), Err(VerdictError::NotAllowedHere));
        assert_eq!(side(Op::Write, 4, 0), Ok(Verdict::SideIo { op: Op::Write, block: 0, count: 4, page: 0 }));
    }

    /// Fails writes, keeps a state, rewrites failed reads in its post-op.
    struct Model {
        posts: u32,
    }

    impl Filter for Model {
        fn pre(&mut self, io: &Io, _: &dyn RequestData, state: &mut u64) -> Verdict {
            *state = io.block + 1;
            if io.op == Op::Write {
                return Verdict::Fail(Status::InvalidRequest);
            }
            Verdict::Continue
        }
        fn post(&mut self, io: &Io, done: Completion, _: &dyn RequestData) -> Verdict {
            self.posts += 1;
            assert_eq!(io.state, io.block + 1);
            if done.status == Status::IoError {
                return Verdict::Complete { status: Status::NoDevice, count: 0 };
            }
            Verdict::Continue
        }
        fn wants_post(&self, _: &Io, verdict: &Verdict, _: u64) -> bool {
            !matches!(verdict, Verdict::Fail(_))
        }
    }

    #[test]
    fn serve_runs_the_filter_on_every_entry_and_writes_back_verdicts_and_state() {
        #[repr(C, align(4096))]
        struct Page([u64; CALL_PAGE_SIZE / 8]);
        let mut buf = Page([0; CALL_PAGE_SIZE / 8]);
        let mem = Shared::from_words(&mut buf.0);
        let page = call_page(mem).unwrap();
        let words = CallPage::new(mem).unwrap();
        let read = Io { op: Op::Read, ..io(Hook::Pre) };
        page.set(0, &Entry::new(&read, None));
        page.set(1, &Entry::new(&io(Hook::Pre), None));
        let post = Io { op: Op::Read, state: read.block + 1, ..io(Hook::Post) };
        page.set(2, &Entry::new(&post, Some(Completion { status: Status::IoError, count: 0 })));
        page.set(3, &Entry { words: [7, 0, 0, 0, 0, 0, 0, 0] });
        let mut f = Model { posts: 0 };
        assert_eq!(serve(&mut f, &words, 4, &NoData), 4);
        let verdict = |i: u32, at: &Io| {
            let e = page.get(i);
            Entry::verdict([e.words[6], e.words[7]], at, 0)
        };
        assert_eq!(verdict(0, &read), Ok(Verdict::Continue));
        // (Entries 0 and 1 started with state 0: a first call.)
        assert_eq!(page.get(0).words[5], read.block + 1, "the state kept for the post-op");
        assert_eq!(verdict(1, &io(Hook::Pre)), Ok(Verdict::Fail(Status::InvalidRequest)), "decoded with NO_POST beside it");
        assert_eq!((page.get(0).words[6] & NO_POST, page.get(1).words[6] & NO_POST), (0, NO_POST), "no post-op wanted after the failed write");
        assert_eq!(page.get(2).words[6] & NO_POST, 0, "never from a post-op");
        assert_eq!(verdict(2, &post), Ok(Verdict::Complete { status: Status::NoDevice, count: 0 }));
        assert_eq!(verdict(3, &read), Ok(Verdict::Fail(Status::InvalidRequest)), "a junk entry never reaches the filter");
        assert_eq!(f.posts, 1);
    }

    filter_manifest!("hooks=pre,post", "ops=read,write,flush", "params=rule,seed", "bounce=8192");

    #[test]
    fn a_declared_manifest_reads_back() {
        let m = Manifest::parse(&STRATA_FILTER_MANIFEST).unwrap();
        assert_eq!(m.hooks, 3);
        assert!(m.wants(Hook::Pre, Op::FlushCompleted) && m.wants(Hook::Post, Op::Write) && !m.wants(Hook::Pre, Op::Barrier));
        assert_eq!(&m.params[..], &["rule", "seed"]);
        assert_eq!(m.bounce, 8192);
        let none = Manifest::parse(b"strata-filter 1\0hooks=pre\0ops=write\0params=\0bounce=0\0\0\0").unwrap();
        assert!(none.params.is_empty() && none.wants(Hook::Pre, Op::Write) && !none.wants(Hook::Post, Op::Write));
        assert!(!m.caches && !none.caches, "a filter caches only if it says so");
        assert!(Manifest::parse(b"strata-filter 1\0caches=yes\0").unwrap().caches);
        assert!(!Manifest::parse(b"strata-filter 1\0caches=no\0").unwrap().caches);
        let failed = |step, status| SetupFailure { step, last: Some(Completion { status, count: 0 }) }.to_string();
        assert_eq!(failed("write", Status::InvalidRequest), "its disk failed a setup write: invalid request (is the disk read-only?)");
        assert_eq!(failed("read", Status::IoError), "its disk failed a setup read: I/O error");
        assert_eq!(failed("flush", Status::InvalidRequest), "its disk failed a setup flush: invalid request");
        assert_eq!(SetupFailure { step: "read", last: None }.to_string(), "its disk gave no answer to a setup read");
        let keeps = Manifest::parse(b"strata-filter 1\0keeps=its header, and its map\0linked=read\0").unwrap();
        assert_eq!((keeps.keeps, keeps.linked), (Some("its header, and its map"), DATA_READ));
        assert_eq!(Manifest::parse(b"strata-filter 1\0linked=read-write\0").unwrap().linked, DATA_READ | DATA_WRITE);
        assert_eq!((none.keeps, none.linked), (None, 0), "a filter keeps nothing below it unless it says");
        assert_eq!(Manifest::parse(b"strata-filter 1\0linked=write\0"), Err(ManifestError::BadField));
        assert_eq!(Manifest::parse(b"strata-filter 1\0keeps=\0"), Err(ManifestError::BadField));
        let costs = Manifest::parse(b"strata-filter 1\0block_us=25\0min_budget=20000\0").unwrap();
        assert_eq!((costs.block_us, costs.min_budget, none.block_us, none.min_budget), (25, Some(20000), 0, None));
        assert_eq!(Manifest::parse(b"strata-filter 1\0block_us=many\0"), Err(ManifestError::BadField));
        assert_eq!(Manifest::parse(b"strata-filter 1\0caches=maybe\0"), Err(ManifestError::BadField));
        // Per hook, some of its operations.
        let narrow = Manifest::parse(b"strata-filter 1\0hooks=pre,post\0ops=read,write,flush\0pre_ops=flush\0").unwrap();
        assert!(narrow.wants(Hook::Pre, Op::Flush) && !narrow.wants(Hook::Pre, Op::Read) && !narrow.wants(Hook::Pre, Op::Write));
        assert!(narrow.wants(Hook::Post, Op::Read) && narrow.wants(Hook::Post, Op::Write) && narrow.wants(Hook::Post, Op::Flush));
        assert_eq!((m.pre_ops, m.post_ops), (m.ops, m.ops), "all of them unless it says");
        for bad in [&b"strata-filter 1\0ops=read\0pre_ops=write\0"[..], b"strata-filter 1\0ops=read\0post_ops=\0", b"strata-filter 1\0ops=read\0pre_ops=seek\0"] {
            assert_eq!(Manifest::parse(bad), Err(ManifestError::BadField), "{:?}", core::str::from_utf8(bad));
        }
        assert_eq!(Manifest::parse(b"strata-filter 2\0"), Err(ManifestError::NoMagic));
        assert_eq!(Manifest::parse(b"strata-filter 1\0hooks=sideways\0"), Err(ManifestError::BadField));
        assert_eq!(Manifest::parse(b"strata-filter 1\0bounce=100\0"), Err(ManifestError::BadField));
        assert_eq!(Manifest::parse(b"strata-filter 1\0colour=blue\0"), Err(ManifestError::BadField));
        // What it cannot start without: params it takes, data rights.
        let needy = Manifest::parse(b"strata-filter 1\0params=key,seed\0needs=key\0data=read-write\0").unwrap();
        assert_eq!((&needy.needs[..], needy.data), (&["key"][..], DATA_READ | DATA_WRITE));
        assert_eq!(Manifest::parse(b"strata-filter 1\0data=read\0").unwrap().data, DATA_READ);
        assert_eq!((m.needs.len(), m.data, m.links), (0, 0, None), "nothing unless it says");
        assert_eq!(Manifest::parse(b"strata-filter 1\0links=1\0").unwrap().links, Some(1));
        assert!(Manifest::parse(b"strata-filter 1\0").unwrap().restart, "a restart unless it says no");
        assert!(!Manifest::parse(b"strata-filter 1\0restart=no\0").unwrap().restart);
        assert_eq!(Manifest::parse(b"strata-filter 1\0budget=400000\0").unwrap().budget, Some(400_000));
        assert_eq!(Manifest::parse(b"strata-filter 1\0").unwrap().budget, None);
        assert_eq!(Manifest::parse(b"strata-filter 1\0budget=0\0").err(), Some(ManifestError::BadField));
        assert_eq!(Manifest::parse(b"strata-filter 1\0restart=maybe\0"), Err(ManifestError::BadField));
        for bad in [&b"strata-filter 1\0links=many\0"[..], b"strata-filter 1\0links=200\0"] {
            assert_eq!(Manifest::parse(bad), Err(ManifestError::BadField));
        }
        for bad in [&b"strata-filter 1\0params=seed\0needs=key\0"[..], b"strata-filter 1\0data=write\0"] {
            assert_eq!(Manifest::parse(bad), Err(ManifestError::BadField), "{:?}", core::str::from_utf8(bad));
        }
    }
}
