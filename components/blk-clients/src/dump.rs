//! `blk_dump`: copy one whole disk, block by block, to the start of
//! another. A protection domain has at most one `<block_client>`, so the
//! one program runs as two PDs that cooperate: the *reader*, a block
//! client of the source, and the *writer*, a block client of the
//! destination. They share a plain `<memory_region>`, the *transfer
//! region*, mapped read-write in both, and two channels, one per
//! direction. This module is everything of theirs that runs on the host
//! too: the transfer region's layout and each end of it
//! ([`ReaderEnd`], [`WriterEnd`]), the bookkeeping of the chunks and
//! requests one side moves ([`Pipe`]), each side's logic
//! ([`ReaderSide`], [`WriterSide`]) over what its block client does for
//! it ([`Blocks`]), and the lines they print. The PD,
//! `src/bin/blk_dump.rs`, gives them its block client, copies chunks
//! between its data region and the slots, notifies, prints and powers
//! off; the tests give them a model of a disk.
//!
//! # Configuration
//!
//! | what | how |
//! |---|---|
//! | role | `<setvar symbol="blk_dump_role" bytes="..">`, a little-endian `u64`: [`ROLE_READER`] (1) or [`ROLE_WRITER`] (2) |
//! | request size | optional, the reader's: `<setvar symbol="blk_dump_request_blocks" bytes="..">`, a little-endian `u64`, the most blocks one read asks for (1 to [`REQUEST_BLOCKS`]; 0 or absent: [`REQUEST_BLOCKS`]) |
//! | transfer region | a `<memory_region>` of [`TRANSFER_SIZE`] bytes, mapped `rw` in both with `setvar_vaddr="blk_dump_transfer"` |
//! | channel id [`CHUNK_READY`] (0) | reader to writer: chunks are in the transfer region (the writer's end `notify="false"`) |
//! | channel id [`CHUNK_WRITTEN`] (1) | writer to reader: chunks are written, their slots free (the reader's end `notify="false"`) |
//! | block client | each PD's `<block_client>` (it gets the next channel id, 2); a data region of at least one chunk ([`CHUNK_BYTES`]), one chunk buffer per [`CHUNK_BYTES`] |
//! | power off | the writer needs `can_power_off="true"` |
//!
//! # The transfer region
//!
//! A header page, then [`slots`](Transfer::slots) slots of one chunk
//! ([`CHUNK_BLOCKS`] blocks) each:
//!
//! | offset | size | field | written by |
//! |---:|---:|---|---|
//! | 0x00 | 4 | `state`: 0 starting, 1 the source fields below are valid, 2 the reader failed (the failure fields are valid); stored last, with release | reader |
//! | 0x04 | 4 | `filled`: chunks put in slots so far (release) | reader |
//! | 0x08 | 4 | `written`: chunks written to the destination so far (release) | writer |
//! | 0x0c | 4 | magic `DMP1` | reader |
//! | 0x10 | 8 | source size in blocks | reader |
//! | 0x18 | 4 | blocks per chunk | reader |
//! | 0x1c | 4 | slots | reader |
//! | 0x20 | 32 | source disk name, NUL-padded | reader |
//! | 0x40 | 4 | failure: 1 a read failed, 2 an answer fit no request, 3 the reader could not start | reader |
//! | 0x44 | 4 | the read's status; the stray's kind (1 never sent, 2 answered twice, 3 a wrong count); or why it could not start (1 no block client, 2 data region, 3 queue) | reader |
//! | 0x48 | 8 | the read's first block, or the stray answer's id | reader |
//! | 0x50 | 4 | the read's blocks, or the stray's count | reader |
//! | 0x54 | 4 | requests that failed in all | reader |
//! | 0x100 + 32 s | 32 | slot `s`'s chunk header (below) | reader |
//! | 0x1000 + s × [`CHUNK_BYTES`] | [`CHUNK_BYTES`] | slot `s`'s data | reader |
//!
//! A chunk header: chunk number (8 bytes), first block (8), block count
//! (4), last mark (4: nonzero on the final chunk), 8 reserved.
//!
//! # The protocol
//!
//! Chunk `n` holds blocks `n × CHUNK_BLOCKS` on (fewer in the last) and
//! travels in slot `n mod slots`: a ring of chunks with one producer (the
//! reader, index `filled`) and one consumer (the writer, index `written`).
//!
//! 1. The reader waits for its disk, writes the source fields and sets
//!    `state` to 1; it notifies [`CHUNK_READY`].
//! 2. The writer waits for its disk and for `state`. A destination
//!    smaller than the source, or read-only, is reported and nothing is
//!    written.
//! 3. The reader reads up to a queue's worth of requests of up to
//!    [`REQUEST_BLOCKS`] blocks into its data region, a chunk per buffer;
//!    a chunk whose every block arrived, the next in order, goes into its
//!    slot when `filled - written < slots`: data first, then the chunk
//!    header, then `filled + 1` (release), then a notification on
//!    [`CHUNK_READY`].
//! 4. The writer takes chunk `written + k` while it is below `filled`
//!    (acquire), checks its header against what chunk it must be, copies
//!    it into a buffer of its data region and writes it, up to a queue's
//!    worth of requests. Once every block of the next chunk in order is
//!    written it sets `written + 1` (release) and notifies
//!    [`CHUNK_WRITTEN`]: that slot is free again.
//! 5. After the last chunk the writer flushes, prints `blk_dump: copied N
//!    blocks (M MiB) from SOURCE to DEST` and powers the machine off with
//!    status 0.
//!
//! Every answer is accounted for: a request is answered once, to an id in
//! flight, and a success moves exactly the blocks it asked for. A failed
//! request, or an answer that fits none, stops the side that saw it from
//! sending more; once its requests in flight are answered it reports
//! (the reader through the failure fields and `state` 2, the writer
//! itself), and the writer prints one line naming the first failure and
//! how many requests failed, and powers off with status 1. Each side
//! keeps its own index privately and only reads the other's; an index
//! that breaks the ring's rules, or a chunk header that is not the chunk
//! expected, is a protocol error, reported the same way.

use blk::config::{name_field, name_str};
use blk::{Op, Request, Response, Shared, Status, BLOCK_SIZE};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// `blk_dump_role` of the reader.
pub const ROLE_READER: u64 = 1;
/// `blk_dump_role` of the writer.
pub const ROLE_WRITER: u64 = 2;
/// The channel id (in both PDs) on which the reader says chunks are ready.
pub const CHUNK_READY: usize = 0;
/// The channel id (in both PDs) on which the writer says chunks are
/// written.
pub const CHUNK_WRITTEN: usize = 1;

/// Bytes in a block.
pub const BLOCK: usize = BLOCK_SIZE as usize;
/// Blocks in a chunk: the unit handed from the reader to the writer.
pub const CHUNK_BLOCKS: u32 = 256;
/// Bytes in a chunk (1 MiB).
pub const CHUNK_BYTES: usize = CHUNK_BLOCKS as usize * BLOCK;
/// Blocks one request moves at most, unless the reader is told fewer (a
/// chunk is read and written in requests of this size; the last of a disk
/// may be shorter).
pub const REQUEST_BLOCKS: u32 = 32;
/// Bytes of the transfer region's header.
pub const HEADER_SIZE: usize = 0x1000;
/// Slots in a transfer region of [`TRANSFER_SIZE`].
pub const TRANSFER_SLOTS: usize = 4;
/// Bytes of the transfer region the PD expects the system to map.
pub const TRANSFER_SIZE: usize = HEADER_SIZE + TRANSFER_SLOTS * CHUNK_BYTES;
/// Slots a transfer region may have at most (the chunk headers' room).
pub const MAX_SLOTS: usize = 16;
/// Chunk buffers a data region may have at most.
pub const MAX_BUFFERS: usize = 16;
/// Requests in flight at most (the largest queue).
pub const MAX_IN_FLIGHT: usize = 64;
const _: () = assert!(CHUNK_BLOCKS % REQUEST_BLOCKS == 0 && TRANSFER_SLOTS <= MAX_SLOTS);
const _: () = assert!(MAX_IN_FLIGHT.is_power_of_two());

const STATE: usize = 0x00;
const FILLED: usize = 0x04;
const WRITTEN: usize = 0x08;
const MAGIC_AT: usize = 0x0c;
const SOURCE_BLOCKS: usize = 0x10;
const SOURCE_CHUNK: usize = 0x18;
const SOURCE_SLOTS: usize = 0x1c;
const SOURCE_NAME: usize = 0x20;
const FAILURE: usize = 0x40;
const SLOT_HEADERS: usize = 0x100;
const SLOT_HEADER_SIZE: usize = 32;
const _: () = assert!(SLOT_HEADERS + MAX_SLOTS * SLOT_HEADER_SIZE <= HEADER_SIZE);

const MAGIC: u32 = u32::from_le_bytes(*b"DMP1");
const STARTING: u32 = 0;
const ANNOUNCED: u32 = 1;
const FAILED: u32 = 2;

/// Which of the two PDs this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Reader,
    Writer,
}

impl Role {
    /// The role `blk_dump_role` names, if it names one.
    pub fn from_var(value: u64) -> Option<Role> {
        match value {
            ROLE_READER => Some(Role::Reader),
            ROLE_WRITER => Some(Role::Writer),
            _ => None,
        }
    }
}

/// A disk's name as the configuration gives it (at most 31 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name([u8; 32]);

impl Name {
    pub fn new(name: &str) -> Name {
        Name(name_field(name))
    }

    pub fn as_str(&self) -> &str {
        name_str(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A size in blocks, shown in MiB: `256 MiB` when whole, else with two
/// decimals, cut, not rounded (`16.50 MiB`; one block is `0.00 MiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PER_MIB: u64 = (1 << 20) / BLOCK as u64;
        let (whole, part) = (self.0 / PER_MIB, self.0 % PER_MIB);
        if part == 0 {
            return write!(f, "{whole} MiB");
        }
        write!(f, "{whole}.{:02} MiB", part * 100 / PER_MIB)
    }
}

/// One chunk of the copy, and where it lives in a side's data region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub index: u64,
    pub first: u64,
    pub count: u32,
    /// The final chunk of the copy.
    pub last: bool,
    /// Byte offset of its buffer in the data region.
    pub offset: usize,
}

/// How a disk of `blocks` blocks splits into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub blocks: u64,
}

impl Plan {
    pub fn chunks(&self) -> u64 {
        self.blocks.div_ceil(CHUNK_BLOCKS as u64)
    }

    /// Chunk `index` (which must be below [`chunks`](Self::chunks)) in
    /// buffer `index mod buffers`.
    pub fn chunk(&self, index: u64, buffers: u32) -> Chunk {
        let first = index * CHUNK_BLOCKS as u64;
        let count = (self.blocks - first).min(CHUNK_BLOCKS as u64) as u32;
        let offset = (index % buffers.max(1) as u64) as usize * CHUNK_BYTES;
        Chunk { index, first, count, last: first + count as u64 == self.blocks, offset }
    }
}

/// An answer that fits no request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stray {
    /// An id never sent (or sent long ago and answered).
    Unknown,
    /// A second answer to one request.
    Twice,
    /// Success, with a block count other than the request's (the count).
    Count(u32),
}

impl Stray {
    fn code(&self) -> (u32, u32) {
        match *self {
            Stray::Unknown => (1, 0),
            Stray::Twice => (2, 0),
            Stray::Count(n) => (3, n),
        }
    }

    fn from_code(kind: u32, count: u32) -> Stray {
        match kind {
            2 => Stray::Twice,
            3 => Stray::Count(count),
            _ => Stray::Unknown,
        }
    }
}

/// The first thing that went wrong with one side's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A read or write answered with a status other than ok (raw, so an
    /// unknown one is shown as what it is).
    Status { block: u64, count: u32, status: u32 },
    /// An answer that fits no request in flight.
    Stray { id: u32, stray: Stray },
}

/// What went wrong on one side: the first problem and how many requests
/// failed in all (a stray answer counts as one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trouble {
    pub first: Problem,
    pub failed: u32,
}

/// A slot of the table of requests in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// Never used.
    Free,
    /// Request `id` is in flight.
    Busy { id: u32, block: u64, count: u32 },
    /// Request `id`, the last sent in this slot, was answered.
    Answered { id: u32 },
}

/// One side's bookkeeping: the chunks it moves between its disk and its
/// data region (one buffer per chunk, used round robin), split into
/// requests of up to [`REQUEST_BLOCKS`], at most `depth` in flight. A
/// request's id names its slot in the table of requests in flight (the low
/// six bits) and a sequence number, so a second or late answer is told
/// from a first one. Chunks complete in any order and are released in
/// order; a chunk's buffer is reused only after it is released.
///
/// After a failed request or a stray answer (or [`stop`](Self::stop)) no
/// new request is offered; the ones in flight are still accounted for.
pub struct Pipe {
    plan: Plan,
    op: Op,
    buffers: u32,
    depth: u32,
    /// Chunks started: their blocks may be requested.
    started: u64,
    /// The next block to request (every block before it, in a started
    /// chunk, has been requested).
    next_block: u64,
    /// Chunks released, in order.
    released: u64,
    /// Per buffer: blocks of its chunk not yet moved.
    pending: [u32; MAX_BUFFERS],
    table: [Entry; MAX_IN_FLIGHT],
    in_flight: u32,
    sequence: u32,
    stopped: bool,
    trouble: Option<Trouble>,
    moved: u64,
    /// Blocks one request moves at most.
    request_blocks: u32,
}

impl Pipe {
    /// Move the blocks `plan` says with `op` (read or write), in `buffers`
    /// chunk buffers (1 to [`MAX_BUFFERS`]), keeping `depth` requests (1 to
    /// [`MAX_IN_FLIGHT`]) in flight at most.
    pub fn new(plan: Plan, op: Op, buffers: u32, depth: u32) -> Pipe {
        Pipe {
            plan,
            op,
            buffers: buffers.clamp(1, MAX_BUFFERS as u32),
            depth: depth.clamp(1, MAX_IN_FLIGHT as u32),
            started: 0,
            next_block: 0,
            released: 0,
            pending: [0; MAX_BUFFERS],
            table: [Entry::Free; MAX_IN_FLIGHT],
            in_flight: 0,
            sequence: 0,
            stopped: false,
            trouble: None,
            moved: 0,
            request_blocks: REQUEST_BLOCKS,
        }
    }

    /// Requests of at most `blocks` blocks (1 to [`REQUEST_BLOCKS`]).
    pub fn with_request_blocks(mut self, blocks: u32) -> Pipe {
        self.request_blocks = blocks.clamp(1, REQUEST_BLOCKS);
        self
    }

    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// The next chunk, if its buffer is free and nothing went wrong: start
    /// it with [`start`](Self::start) (a writer fills the buffer first).
    pub fn startable(&self) -> Option<Chunk> {
        let ok = !self.stopped && self.trouble.is_none();
        (ok && self.started < self.plan.chunks() && self.started < self.released + self.buffers as u64)
            .then(|| self.plan.chunk(self.started, self.buffers))
    }

    /// Start the chunk [`startable`](Self::startable) returned.
    pub fn start(&mut self) {
        let Some(chunk) = self.startable() else { return };
        self.pending[self.buffer(chunk.index)] = chunk.count;
        self.started += 1;
    }

    fn buffer(&self, chunk: u64) -> usize {
        (chunk % self.buffers as u64) as usize
    }

    /// The next request to send, if there is room for it and nothing went
    /// wrong; once it is in the ring, [`sent`](Self::sent) records it.
    /// Requests never cross a chunk.
    pub fn next_request(&self) -> Option<Request> {
        if self.stopped || self.trouble.is_some() || self.in_flight >= self.depth {
            return None;
        }
        let end = (self.started * CHUNK_BLOCKS as u64).min(self.plan.blocks);
        if self.next_block >= end {
            return None;
        }
        let chunk = self.plan.chunk(self.next_block / CHUNK_BLOCKS as u64, self.buffers);
        let chunk_end = chunk.first + chunk.count as u64;
        let count = (chunk_end - self.next_block).min(u64::from(self.request_blocks)) as u32;
        let slot = self.table.iter().position(|e| !matches!(e, Entry::Busy { .. }))?;
        let id = (self.sequence << MAX_IN_FLIGHT.trailing_zeros()) | slot as u32;
        let offset = chunk.offset + (self.next_block - chunk.first) as usize * BLOCK;
        Some(Request::new(id, self.op, self.next_block, count, offset as u64))
    }

    /// Record `req`, the request [`next_request`](Self::next_request)
    /// returned, as sent.
    pub fn sent(&mut self, req: &Request) {
        let slot = req.id as usize % MAX_IN_FLIGHT;
        self.table[slot] = Entry::Busy { id: req.id, block: req.block, count: req.count };
        self.in_flight += 1;
        self.sequence = self.sequence.wrapping_add(1);
        self.next_block = req.block + req.count as u64;
    }

    /// Account for an answer. `Ok` if it is the first answer to a request
    /// in flight, whatever its status (a failure is kept, see
    /// [`trouble`](Self::trouble)); a stray is kept too, and returned.
    pub fn answer(&mut self, r: &Response) -> Result<(), Stray> {
        let slot = r.id as usize % MAX_IN_FLIGHT;
        let (block, count) = match self.table[slot] {
            Entry::Busy { id, block, count } if id == r.id => (block, count),
            Entry::Answered { id } if id == r.id => return Err(self.stray(r.id, Stray::Twice)),
            _ => return Err(self.stray(r.id, Stray::Unknown)),
        };
        self.table[slot] = Entry::Answered { id: r.id };
        self.in_flight -= 1;
        match r.status() {
            Ok(Status::Ok) if r.count == count => {
                let buffer = self.buffer(block / CHUNK_BLOCKS as u64);
                self.pending[buffer] -= count;
                self.moved += count as u64;
                Ok(())
            }
            // Its one answer, a wrong one: the request is done with.
            Ok(Status::Ok) => Err(self.stray(r.id, Stray::Count(r.count))),
            _ => {
                self.fail(Problem::Status { block, count, status: r.status_code });
                Ok(())
            }
        }
    }

    fn stray(&mut self, id: u32, stray: Stray) -> Stray {
        self.fail(Problem::Stray { id, stray });
        stray
    }

    fn fail(&mut self, problem: Problem) {
        match &mut self.trouble {
            Some(t) => t.failed += 1,
            None => self.trouble = Some(Trouble { first: problem, failed: 1 }),
        }
    }

    /// The next chunk in order, if every block of it was moved.
    pub fn completed(&self) -> Option<Chunk> {
        (self.released < self.started && self.pending[self.buffer(self.released)] == 0)
            .then(|| self.plan.chunk(self.released, self.buffers))
    }

    /// Release the chunk [`completed`](Self::completed) returned: its
    /// buffer may take the next.
    pub fn release(&mut self) {
        if self.completed().is_some() {
            self.released += 1;
        }
    }

    /// Offer no new request (the other side failed).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Every chunk was moved and released.
    pub fn is_done(&self) -> bool {
        self.released == self.plan.chunks()
    }

    /// Chunks released so far.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Blocks moved so far (answered ok).
    pub fn moved(&self) -> u64 {
        self.moved
    }

    pub fn trouble(&self) -> Option<Trouble> {
        self.trouble
    }
}

/// A transfer region that breaks the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The region is too small for the header and one slot, or misaligned.
    Region,
    /// `filled` and `written` are not `0 <= filled - written <= slots`.
    Indices { filled: u32, written: u32 },
    /// The reader's layout (or magic) differs from the writer's.
    Layout { chunk_blocks: u32, slots: u32, writer_slots: u32 },
    /// A chunk header other than the chunk expected.
    Header { expected: u64, chunk: u64, first: u64, count: u32, last: bool },
    /// A source too large for the ring's 32-bit chunk numbers.
    TooLarge,
    /// A reader state that is none of the three.
    State(u32),
    /// A copy between a data region and a slot fell outside one of them
    /// (a data region or transfer region smaller than the PD was told).
    Copy,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtocolError::Region => write!(f, "the transfer region must be {TRANSFER_SIZE:#x} bytes"),
            ProtocolError::Indices { filled, written } => {
                write!(f, "the transfer indices are corrupt: {filled} chunks filled, {written} written")
            }
            ProtocolError::Layout { chunk_blocks, slots, writer_slots } => write!(
                f,
                "the reader's transfer layout ({chunk_blocks} blocks per chunk, {slots} slots) is not the writer's ({CHUNK_BLOCKS} blocks per chunk, {writer_slots} slots)"
            ),
            ProtocolError::Header { expected, chunk, first, count, last } => write!(
                f,
                "the transfer slot of chunk {expected} holds chunk {chunk} ({count} blocks at block {first}{})",
                if last { ", last" } else { "" }
            ),
            ProtocolError::TooLarge => f.write_str("the source has too many blocks to count its chunks"),
            ProtocolError::State(state) => write!(f, "the reader's state word is {state}, none of 0, 1, 2"),
            ProtocolError::Copy => f.write_str("a copy between a data region and the transfer region fell outside them"),
        }
    }
}

/// Why a side could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// No `<block_client>` configuration.
    NoClient,
    /// A data region smaller than one chunk.
    DataRegion,
    /// The queue holds fewer than one request (never, with the tool).
    Queue,
}

impl Setup {
    fn code(self) -> u32 {
        match self {
            Setup::NoClient => 1,
            Setup::DataRegion => 2,
            Setup::Queue => 3,
        }
    }

    fn from_code(code: u32) -> Setup {
        match code {
            2 => Setup::DataRegion,
            3 => Setup::Queue,
            _ => Setup::NoClient,
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setup::NoClient => f.write_str("no block_client configuration (declare <block_client> in the system file)"),
            Setup::DataRegion => write!(f, "its data region is smaller than one chunk ({CHUNK_BYTES:#x} bytes; set data_size)"),
            Setup::Queue => f.write_str("its queue holds no request"),
        }
    }
}

/// What the reader reported through the transfer region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderFailure {
    /// Its requests went wrong.
    Trouble(Trouble),
    /// It could not start.
    Setup(Setup),
}

/// The source as the reader announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub blocks: u64,
    pub name: Name,
}

/// What the writer sees of the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderState {
    Starting,
    Announced(Source),
    Failed(ReaderFailure),
}

/// Bytes of the transfer region: a slot's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRange {
    pub offset: usize,
    pub len: usize,
}

/// The transfer region: its header and slots, over shared memory. The
/// header is read and written here; the slots' data is copied by the PD
/// (see [`Blocks`]), between its data region and the [`SlotRange`]s
/// the ends name.
#[derive(Clone, Copy)]
pub struct Transfer<'a> {
    mem: Shared<'a>,
    slots: u32,
}

impl<'a> Transfer<'a> {
    /// The region `mem`: as many slots as fit, up to [`MAX_SLOTS`].
    pub fn new(mem: Shared<'a>) -> Result<Transfer<'a>, ProtocolError> {
        let slots = (mem.len().saturating_sub(HEADER_SIZE) / CHUNK_BYTES).min(MAX_SLOTS) as u32;
        if slots == 0 || mem.atomic_u32(STATE).is_err() {
            return Err(ProtocolError::Region);
        }
        Ok(Transfer { mem, slots })
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    fn word(&self, offset: usize) -> &'a AtomicU32 {
        self.mem.atomic_u32(offset).expect("in the header (checked in new)")
    }

    fn read_u32(&self, offset: usize) -> u32 {
        self.mem.read::<u32>(offset).unwrap_or(0)
    }

    fn read_u64(&self, offset: usize) -> u64 {
        self.mem.read::<u64>(offset).unwrap_or(0)
    }

    fn write_u32(&self, offset: usize, value: u32) {
        let _ = self.mem.write_bytes(offset, &value.to_le_bytes());
    }

    fn write_u64(&self, offset: usize, value: u64) {
        let _ = self.mem.write_bytes(offset, &value.to_le_bytes());
    }

    /// The data of chunk `index`'s slot, `count` blocks (inside the
    /// region: `new` counted the slots that fit).
    fn slot_data(&self, index: u64, count: u32) -> SlotRange {
        let slot = (index % self.slots as u64) as usize;
        SlotRange { offset: HEADER_SIZE + slot * CHUNK_BYTES, len: count.min(CHUNK_BLOCKS) as usize * BLOCK }
    }

    fn slot_header(index: u64, slots: u32) -> usize {
        SLOT_HEADERS + (index % slots as u64) as usize * SLOT_HEADER_SIZE
    }
}

/// The reader's end of the transfer region.
pub struct ReaderEnd<'a> {
    t: Transfer<'a>,
    /// Chunks put in slots (private; published in `filled`).
    filled: u32,
}

impl<'a> ReaderEnd<'a> {
    /// The reader's end of a fresh region (all zeros, as the system starts
    /// it).
    pub fn new(t: Transfer<'a>) -> ReaderEnd<'a> {
        ReaderEnd { t, filled: 0 }
    }

    /// Say what the source is: `blocks` blocks on disk `name`.
    pub fn announce(&mut self, blocks: u64, name: &str) {
        self.t.write_u32(MAGIC_AT, MAGIC);
        self.t.write_u64(SOURCE_BLOCKS, blocks);
        self.t.write_u32(SOURCE_CHUNK, CHUNK_BLOCKS);
        self.t.write_u32(SOURCE_SLOTS, self.t.slots);
        let _ = self.t.mem.write_bytes(SOURCE_NAME, &name_field(name));
        self.t.word(STATE).store(ANNOUNCED, Ordering::Release);
    }

    /// Say that the reader failed (after its requests in flight were
    /// answered).
    pub fn fail(&mut self, failure: ReaderFailure) {
        let (kind, a, b, c, failed) = match failure {
            ReaderFailure::Trouble(Trouble { first: Problem::Status { block, count, status }, failed }) => (1, status, block, count, failed),
            ReaderFailure::Trouble(Trouble { first: Problem::Stray { id, stray }, failed }) => {
                let (k, n) = stray.code();
                (2, k, id as u64, n, failed)
            }
            ReaderFailure::Setup(why) => (3, why.code(), 0, 0, 0),
        };
        self.t.write_u32(FAILURE, kind);
        self.t.write_u32(FAILURE + 4, a);
        self.t.write_u64(FAILURE + 8, b);
        self.t.write_u32(FAILURE + 16, c);
        self.t.write_u32(FAILURE + 20, failed);
        self.t.word(STATE).store(FAILED, Ordering::Release);
    }

    /// Whether the next chunk's slot is free (the writer wrote the chunk
    /// that used it last).
    pub fn has_room(&self) -> Result<bool, ProtocolError> {
        let written = self.t.word(WRITTEN).load(Ordering::Acquire);
        let used = self.filled.wrapping_sub(written);
        if used > self.t.slots {
            return Err(ProtocolError::Indices { filled: self.filled, written });
        }
        Ok(used < self.t.slots)
    }

    /// Where the data of `chunk` (the next to put) goes: fill it, then
    /// [`publish`](Self::publish) the chunk.
    pub fn slot_data(&self, chunk: &Chunk) -> SlotRange {
        self.t.slot_data(chunk.index, chunk.count)
    }

    /// Publish `chunk`, whose data is in its slot (and for which
    /// [`has_room`](Self::has_room) said yes): its header, then `filled`.
    pub fn publish(&mut self, chunk: &Chunk) {
        let at = Transfer::slot_header(chunk.index, self.t.slots);
        self.t.write_u64(at, chunk.index);
        self.t.write_u64(at + 8, chunk.first);
        self.t.write_u32(at + 16, chunk.count);
        self.t.write_u32(at + 20, chunk.last as u32);
        self.filled = self.filled.wrapping_add(1);
        self.t.word(FILLED).store(self.filled, Ordering::Release);
    }
}

/// The writer's end of the transfer region.
pub struct WriterEnd<'a> {
    t: Transfer<'a>,
    /// Chunks written (private; published in `written`).
    written: u32,
}

impl<'a> WriterEnd<'a> {
    pub fn new(t: Transfer<'a>) -> WriterEnd<'a> {
        WriterEnd { t, written: 0 }
    }

    /// What the reader said so far.
    pub fn reader(&self) -> Result<ReaderState, ProtocolError> {
        match self.t.word(STATE).load(Ordering::Acquire) {
            ANNOUNCED => {
                let (chunk_blocks, slots) = (self.t.read_u32(SOURCE_CHUNK), self.t.read_u32(SOURCE_SLOTS));
                if self.t.read_u32(MAGIC_AT) != MAGIC || chunk_blocks != CHUNK_BLOCKS || slots != self.t.slots {
                    return Err(ProtocolError::Layout { chunk_blocks, slots, writer_slots: self.t.slots });
                }
                let blocks = self.t.read_u64(SOURCE_BLOCKS);
                if (Plan { blocks }).chunks() > u32::MAX as u64 {
                    return Err(ProtocolError::TooLarge);
                }
                Ok(ReaderState::Announced(Source { blocks, name: self.source_name() }))
            }
            FAILED => {
                let (kind, a) = (self.t.read_u32(FAILURE), self.t.read_u32(FAILURE + 4));
                let (b, c, failed) = (self.t.read_u64(FAILURE + 8), self.t.read_u32(FAILURE + 16), self.t.read_u32(FAILURE + 20));
                let first = match kind {
                    1 => Problem::Status { block: b, count: c, status: a },
                    2 => Problem::Stray { id: b as u32, stray: Stray::from_code(a, c) },
                    _ => return Ok(ReaderState::Failed(ReaderFailure::Setup(Setup::from_code(a)))),
                };
                Ok(ReaderState::Failed(ReaderFailure::Trouble(Trouble { first, failed: failed.max(1) })))
            }
            STARTING => Ok(ReaderState::Starting),
            state => Err(ProtocolError::State(state)),
        }
    }

    /// The source's name as the reader wrote it (empty before it
    /// announced).
    pub fn source_name(&self) -> Name {
        let mut name = [0u8; 32];
        let _ = self.t.mem.read_bytes(SOURCE_NAME, &mut name);
        Name(name)
    }

    /// Chunks the reader has put in slots so far (checked against what
    /// the ring allows).
    pub fn filled(&self) -> Result<u64, ProtocolError> {
        let filled = self.t.word(FILLED).load(Ordering::Acquire);
        if filled.wrapping_sub(self.written) > self.t.slots {
            return Err(ProtocolError::Indices { filled, written: self.written });
        }
        // In chunks from the start: `written` plus what is in the slots.
        Ok(self.written as u64 + filled.wrapping_sub(self.written) as u64)
    }

    /// The data of `expected`, a chunk below [`filled`](Self::filled), if
    /// its slot's header says it is that chunk.
    pub fn take(&self, expected: &Chunk) -> Result<SlotRange, ProtocolError> {
        let at = Transfer::slot_header(expected.index, self.t.slots);
        let (chunk, first) = (self.t.read_u64(at), self.t.read_u64(at + 8));
        let (count, last) = (self.t.read_u32(at + 16), self.t.read_u32(at + 20) != 0);
        if (chunk, first, count, last) != (expected.index, expected.first, expected.count, expected.last) {
            return Err(ProtocolError::Header { expected: expected.index, chunk, first, count, last });
        }
        Ok(self.t.slot_data(expected.index, expected.count))
    }

    /// Chunk number `written` (the next in order) is written: its slot is
    /// free.
    pub fn mark_written(&mut self) {
        self.written = self.written.wrapping_add(1);
        self.t.word(WRITTEN).store(self.written, Ordering::Release);
    }
}

/// What a side needs of its block client: the PD's `BlockClient`, or a
/// model of one in the tests.
pub trait Blocks {
    /// Queue a request; false if the ring has no room.
    fn push(&mut self, req: Request) -> bool;
    /// The next answer, if one is there.
    fn pop(&mut self) -> Option<Response>;
    /// Copy the bytes at `at` of the data region into the transfer
    /// region's `to`; false if a range is outside its region (nothing is
    /// copied then).
    fn save(&mut self, at: usize, to: SlotRange) -> bool;
    /// Copy the transfer region's `from` into the data region at `at`;
    /// false as for `save`.
    fn load(&mut self, from: SlotRange, at: usize) -> bool;
}

/// Send what `pipe` offers while the ring takes it.
fn send(pipe: &mut Pipe, io: &mut impl Blocks) {
    while let Some(req) = pipe.next_request() {
        if !io.push(req) {
            break;
        }
        pipe.sent(&req);
    }
}

/// What the reader's PD does after a [`ReaderSide::poll`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStep {
    /// Notify the writer ([`CHUNK_READY`]): chunks were handed over, or
    /// the failure was reported.
    pub notify: bool,
    /// Nothing more to do.
    pub done: bool,
    /// The writer's index broke the protocol: the reader stopped (and
    /// says so itself; the writer cannot be told).
    pub stopped: Option<ProtocolError>,
}

/// The reader: reads the source into its data region a chunk per buffer,
/// a queue's worth of requests in flight, and hands each chunk over in
/// order as slots come free. A failure stops its requests; once every
/// answer is in, it reports the failure through the transfer region.
pub struct ReaderSide<'a> {
    end: ReaderEnd<'a>,
    pipe: Pipe,
    done: bool,
}

impl<'a> ReaderSide<'a> {
    /// Announce a source of `blocks` blocks on disk `disk` (then notify
    /// the writer) and get ready to read it with `buffers` chunk buffers
    /// and `depth` requests in flight.
    pub fn start(mut end: ReaderEnd<'a>, blocks: u64, disk: &str, buffers: u32, depth: u32) -> ReaderSide<'a> {
        end.announce(blocks, disk);
        ReaderSide { end, pipe: Pipe::new(Plan { blocks }, Op::Read, buffers, depth), done: false }
    }

    /// Read in requests of at most `blocks` blocks (1 to
    /// [`REQUEST_BLOCKS`]): a source whose device serves a request only
    /// within certain bounds (the content disk serves a read that mixes
    /// synthesized blocks and file data a block at a time) is read in
    /// requests it serves.
    pub fn with_request_blocks(mut self, blocks: u32) -> ReaderSide<'a> {
        self.pipe = self.pipe.with_request_blocks(blocks);
        self
    }

    /// Take the answers that came, hand over what is complete, send what
    /// may be sent.
    pub fn poll(&mut self, io: &mut impl Blocks) -> ReaderStep {
        let mut step = ReaderStep { done: self.done, ..ReaderStep::default() };
        if self.done {
            return step;
        }
        while let Some(r) = io.pop() {
            let _ = self.pipe.answer(&r);
        }
        while let (None, Some(chunk)) = (self.pipe.trouble(), self.pipe.completed()) {
            match self.end.has_room() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.done = true;
                    return ReaderStep { notify: step.notify, done: true, stopped: Some(e) };
                }
            }
            if !io.save(chunk.offset, self.end.slot_data(&chunk)) {
                self.done = true;
                return ReaderStep { notify: step.notify, done: true, stopped: Some(ProtocolError::Copy) };
            }
            self.end.publish(&chunk);
            self.pipe.release();
            step.notify = true;
        }
        while self.pipe.startable().is_some() {
            self.pipe.start();
        }
        send(&mut self.pipe, io);
        match self.pipe.trouble() {
            // Every answer is in: the writer reports it.
            Some(trouble) if self.pipe.in_flight() == 0 => {
                self.end.fail(ReaderFailure::Trouble(trouble));
                (step.notify, self.done) = (true, true);
            }
            Some(_) => {}
            None => self.done = self.pipe.is_done(),
        }
        step.done = self.done;
        step
    }
}

/// The destination disk as its client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    pub blocks: u64,
    pub read_only: bool,
}

/// What the writer's PD does after a [`WriterSide::poll`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStep {
    /// Notify the reader ([`CHUNK_WRITTEN`]): chunks were written.
    pub notify: bool,
    /// The copy started: print this line.
    pub starting: Option<Starting>,
    /// The end: print this line and power off, with status 0 after
    /// `Ok` and 1 after `Err`.
    pub finished: Option<Result<Copied, Failure>>,
}

/// The id of the writer's final flush.
pub const FLUSH_ID: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// The writer's own requests (the trouble is in its pipe).
    Writes,
    Reader(ReaderFailure),
    Protocol(ProtocolError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// For the reader's announcement and the destination's info.
    Waiting,
    Copying,
    /// Every chunk is written; the flush is in flight.
    Flushing,
    Done,
}

/// The writer: waits for the source and its own disk, checks the
/// destination, takes each chunk from its slot (checking its header),
/// writes it, frees the slot once every block of it is written, flushes
/// at the end, and says how it ended.
pub struct WriterSide<'a> {
    end: WriterEnd<'a>,
    dest: Name,
    buffers: u32,
    depth: u32,
    phase: Phase,
    /// Once announced.
    source: Source,
    /// Made when the copy starts (kept in place: it is large, and a PD's
    /// stack is small).
    pipe: Pipe,
    /// The first thing that went wrong, reported once nothing is in
    /// flight.
    cause: Option<Cause>,
}

impl<'a> WriterSide<'a> {
    /// The writer of disk `dest`, with `buffers` chunk buffers and `depth`
    /// requests in flight.
    pub fn new(end: WriterEnd<'a>, dest: &str, buffers: u32, depth: u32) -> WriterSide<'a> {
        let nothing = Plan { blocks: 0 };
        WriterSide {
            end,
            dest: Name::new(dest),
            buffers,
            depth,
            phase: Phase::Waiting,
            source: Source { blocks: 0, name: Name::new("") },
            pipe: Pipe::new(nothing, Op::Write, buffers, depth),
            cause: None,
        }
    }

    /// Take what the reader and the disk did, do what may be done now.
    /// `disk` is the destination's info once its client has it.
    pub fn poll(&mut self, io: &mut impl Blocks, disk: Option<DiskInfo>) -> WriterStep {
        let mut step = WriterStep::default();
        loop {
            let before = self.phase;
            match self.phase {
                Phase::Waiting => self.wait(disk, &mut step),
                Phase::Copying => self.copy(io, &mut step),
                Phase::Flushing => self.flush(io, &mut step),
                Phase::Done => {}
            }
            // Go on after a step forward: the next phase may have work.
            if self.phase == before || self.phase == Phase::Done {
                return step;
            }
        }
    }

    fn finish(&mut self, result: Result<Copied, Failure>, step: &mut WriterStep) {
        step.finished = Some(result);
        self.phase = Phase::Done;
    }

    fn wait(&mut self, disk: Option<DiskInfo>, step: &mut WriterStep) {
        let source = match self.end.reader() {
            Err(e) => return self.finish(Err(Failure::Protocol(e)), step),
            Ok(ReaderState::Failed(f)) => {
                let failure = self.reader_failure(f, self.end.source_name());
                return self.finish(Err(failure), step);
            }
            Ok(ReaderState::Starting) => return,
            Ok(ReaderState::Announced(source)) => source,
        };
        let Some(disk) = disk else { return };
        if let Err(f) = check_destination(&source, self.dest, disk.blocks, disk.read_only) {
            return self.finish(Err(f), step);
        }
        step.starting = Some(Starting { source, dest: self.dest, dest_blocks: disk.blocks });
        self.source = source;
        self.pipe = Pipe::new(Plan { blocks: source.blocks }, Op::Write, self.buffers, self.depth);
        self.phase = Phase::Copying;
    }

    fn copy(&mut self, io: &mut impl Blocks, step: &mut WriterStep) {
        match self.end.reader() {
            Err(e) => self.stop(Cause::Protocol(e)),
            Ok(ReaderState::Failed(f)) => self.stop(Cause::Reader(f)),
            Ok(_) => {}
        }
        while let Some(r) = io.pop() {
            let _ = self.pipe.answer(&r);
        }
        if self.pipe.trouble().is_some() {
            self.cause.get_or_insert(Cause::Writes);
        }
        // Chunks written, in order: their slots are free.
        while self.pipe.completed().is_some() {
            self.pipe.release();
            self.end.mark_written();
            step.notify = true;
        }
        // Take the chunks the reader put in slots.
        match self.end.filled() {
            Err(e) => self.stop(Cause::Protocol(e)),
            Ok(filled) => {
                while let Some(chunk) = self.pipe.startable().filter(|c| c.index < filled) {
                    match self.end.take(&chunk) {
                        Ok(slot) if io.load(slot, chunk.offset) => self.pipe.start(),
                        Ok(_) => {
                            self.stop(Cause::Protocol(ProtocolError::Copy));
                            break;
                        }
                        Err(e) => {
                            self.stop(Cause::Protocol(e));
                            break;
                        }
                    }
                }
            }
        }
        send(&mut self.pipe, io);
        if let Some(cause) = self.cause {
            if self.pipe.in_flight() == 0 {
                let failure = match cause {
                    Cause::Writes => self.write_failure(),
                    Cause::Reader(f) => self.reader_failure(f, self.source.name),
                    Cause::Protocol(e) => Failure::Protocol(e),
                };
                self.finish(Err(failure), step);
            }
        } else if self.pipe.is_done() && io.push(Request::ordering(FLUSH_ID, Op::Flush)) {
            self.phase = Phase::Flushing;
        }
    }

    fn flush(&mut self, io: &mut impl Blocks, step: &mut WriterStep) {
        while let Some(r) = io.pop() {
            if r.id != FLUSH_ID {
                // Nothing else is in flight: a stray, kept as trouble.
                let _ = self.pipe.answer(&r);
                continue;
            }
            let result = match (self.pipe.trouble(), r.status()) {
                (Some(_), _) => Err(self.write_failure()),
                (None, Ok(Status::Ok)) => Ok(Copied { blocks: self.pipe.moved(), source: self.source.name, dest: self.dest }),
                (None, _) => Err(Failure::Flush { dest: self.dest, status: r.status_code }),
            };
            return self.finish(result, step);
        }
    }

    /// Record the first cause and send nothing more.
    fn stop(&mut self, why: Cause) {
        self.cause.get_or_insert(why);
        self.pipe.stop();
    }

    /// The writer's own trouble (there is some when this is called).
    fn write_failure(&self) -> Failure {
        let trouble = self.pipe.trouble().unwrap_or(Trouble { first: Problem::Stray { id: FLUSH_ID, stray: Stray::Unknown }, failed: 1 });
        Failure::Requests { direction: Direction::Write, disk: self.dest, dest: self.dest, trouble }
    }

    fn reader_failure(&self, f: ReaderFailure, source: Name) -> Failure {
        match f {
            ReaderFailure::Setup(why) => Failure::ReaderSetup(why),
            ReaderFailure::Trouble(trouble) => Failure::Requests { direction: Direction::Read, disk: source, dest: self.dest, trouble },
        }
    }
}

/// Which way a request moved data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

/// Why a dump failed: the one line the writer prints (after `blk_dump: `).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Requests to `disk` failed; the destination `dest` is incomplete.
    Requests { direction: Direction, disk: Name, dest: Name, trouble: Trouble },
    /// The flush of the destination failed (raw status).
    Flush { dest: Name, status: u32 },
    /// The destination is smaller than the source.
    TooSmall { source: Source, dest: Name, dest_blocks: u64 },
    /// The source has no blocks: no device, one smaller than a block, or
    /// a chain that could not be set up (its filter said why, above).
    EmptySource { source: Name },
    ReadOnly { dest: Name },
    /// The reader could not start.
    ReaderSetup(Setup),
    /// The writer could not start.
    WriterSetup(Setup),
    /// The transfer region broke the protocol.
    Protocol(ProtocolError),
}

fn status_text(status: u32) -> impl fmt::Display {
    Response { status_code: status, ..Response::new(0, Status::Ok, 0) }.status_text()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Failure::Requests { direction, disk, dest, trouble } => {
                let what = if direction == Direction::Read { "read" } else { "write" };
                match trouble.first {
                    Problem::Status { block, count, status } => {
                        write!(f, "{what} of {count} blocks at block {block} of {disk} failed: {}", status_text(status))?
                    }
                    Problem::Stray { id, stray } => {
                        write!(f, "an answer from {disk} fits no {what} in flight (request {id}: ")?;
                        match stray {
                            Stray::Unknown => f.write_str("never sent)")?,
                            Stray::Twice => f.write_str("answered twice)")?,
                            Stray::Count(n) => write!(f, "succeeded with {n} blocks moved, not the blocks asked for)")?,
                        }
                    }
                }
                let s = if trouble.failed == 1 { "" } else { "s" };
                write!(f, " ({} request{s} failed); {dest} is incomplete", trouble.failed)
            }
            Failure::Flush { dest, status } => write!(f, "flush of {dest} failed: {}; the copy may not be on it", status_text(status)),
            Failure::TooSmall { source, dest, dest_blocks } => write!(
                f,
                "{dest} has {dest_blocks} blocks ({}), fewer than the {} blocks ({}) of {}: copied nothing",
                Mib(dest_blocks),
                source.blocks,
                Mib(source.blocks),
                source.name
            ),
            Failure::ReadOnly { dest } => write!(f, "{dest} is read-only: copied nothing"),
            Failure::EmptySource { source } => {
                write!(f, "{source} has no blocks (no device, one smaller than a block, or filters that could not set it up: see above): copied nothing")
            }
            Failure::ReaderSetup(why) => write!(f, "the reader could not start: {why}; copied nothing"),
            Failure::WriterSetup(why) => write!(f, "the writer could not start: {why}; copied nothing"),
            Failure::Protocol(e) => write!(f, "{e}; stopped"),
        }
    }
}

/// The line of a finished dump (after `blk_dump: `).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copied {
    pub blocks: u64,
    pub source: Name,
    pub dest: Name,
}

impl fmt::Display for Copied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "copied {} blocks ({}) from {} to {}", self.blocks, Mib(self.blocks), self.source, self.dest)
    }
}

/// The line when the copy starts (after `blk_dump: `).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Starting {
    pub source: Source,
    pub dest: Name,
    pub dest_blocks: u64,
}

impl fmt::Display for Starting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.source;
        write!(f, "copying {} ({} blocks, {}) to {} ({} blocks, {})", s.name, s.blocks, Mib(s.blocks), self.dest, self.dest_blocks, Mib(self.dest_blocks))
    }
}

/// Check before anything is written: a source with blocks, and a
/// destination big enough and writable.
pub fn check_destination(source: &Source, dest: Name, dest_blocks: u64, read_only: bool) -> Result<(), Failure> {
    if source.blocks == 0 {
        return Err(Failure::EmptySource { source: source.name });
    }
    if read_only {
        return Err(Failure::ReadOnly { dest });
    }
    if dest_blocks < source.blocks {
        return Err(Failure::TooSmall { source: *source, dest, dest_blocks });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    const DISK0: &str = "disk0";
    const DISK1: &str = "disk1";

    fn ok(id: u32, count: u32) -> Response {
        Response::new(id, Status::Ok, count)
    }

    /// A region of `slots` slots, in words of the test's own.
    fn region(slots: usize) -> Vec<u64> {
        vec![0u64; (HEADER_SIZE + slots * CHUNK_BYTES) / 8]
    }

    /// The bytes of block `b` of a source the tests copy: its number and
    /// a position in every 8 bytes.
    fn pattern(blocks: u64) -> Vec<u8> {
        let mut disk = Vec::with_capacity(blocks as usize * BLOCK);
        for b in 0..blocks {
            for w in 0..BLOCK as u64 / 8 {
                disk.extend_from_slice(&(b << 32 | w | 0x8000_0000).to_le_bytes());
            }
        }
        disk
    }

    /// A block device behind a side's client, answering in an order a
    /// seeded generator picks, failing what `fail` says.
    struct Model<'a> {
        disk: Vec<u8>,
        data: Vec<u8>,
        transfer: Shared<'a>,
        depth: usize,
        queued: Vec<Request>,
        answers: VecDeque<Response>,
        seed: u64,
        /// Reads or writes touching this block fail with this status.
        fail: Option<(u64, Status)>,
        fail_flush: bool,
        /// Writes answered ok before the flush was taken, and whether any
        /// request was still queued when it was.
        flushed_after: Option<(u64, bool)>,
        written: u64,
    }

    impl<'a> Model<'a> {
        fn new(disk: Vec<u8>, buffers: usize, depth: usize, transfer: Shared<'a>, seed: u64) -> Model<'a> {
            let data = vec![0u8; buffers * CHUNK_BYTES];
            let (queued, answers) = (Vec::new(), VecDeque::new());
            Model { disk, data, transfer, depth, queued, answers, seed: seed | 1, fail: None, fail_flush: false, flushed_after: None, written: 0 }
        }

        fn next(&mut self) -> u64 {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            self.seed
        }

        /// Do some of the queued requests, in a random order.
        fn serve(&mut self) {
            let n = (self.next() % (self.queued.len() as u64 + 1)) as usize;
            for _ in 0..n {
                let i = (self.next() % self.queued.len() as u64) as usize;
                let req = self.queued.swap_remove(i);
                let answer = self.serve_one(&req);
                self.answers.push_back(answer);
            }
        }

        fn serve_one(&mut self, req: &Request) -> Response {
            match req.op() {
                Ok(Op::Flush) => {
                    self.flushed_after = Some((self.written, !self.queued.is_empty()));
                    let status = if self.fail_flush { Status::IoError } else { Status::Ok };
                    return Response::new(req.id, status, 0);
                }
                Ok(op @ (Op::Read | Op::Write)) => {
                    let blocks = req.block..req.block + req.count as u64;
                    if let Some((_, status)) = self.fail.filter(|(b, _)| blocks.contains(b)) {
                        return Response::new(req.id, status, 0);
                    }
                    let (disk, len, data) = (req.block as usize * BLOCK, req.count as usize * BLOCK, req.data_offset as usize);
                    assert!(data + len <= self.data.len(), "a request outside the data region: {req:?}");
                    if disk + len > self.disk.len() {
                        return Response::new(req.id, Status::InvalidRequest, 0);
                    }
                    if op == Op::Read {
                        self.data[data..data + len].copy_from_slice(&self.disk[disk..disk + len]);
                    } else {
                        self.disk[disk..disk + len].copy_from_slice(&self.data[data..data + len]);
                        self.written += req.count as u64;
                    }
                    ok(req.id, req.count)
                }
                _ => Response::new(req.id, Status::InvalidRequest, 0),
            }
        }
    }

    impl Blocks for Model<'_> {
        fn push(&mut self, req: Request) -> bool {
            assert!(self.queued.len() + self.answers.len() < self.depth, "more requests than the queue holds");
            assert!(req.count <= REQUEST_BLOCKS);
            self.queued.push(req);
            true
        }

        fn pop(&mut self) -> Option<Response> {
            self.answers.pop_front()
        }

        fn save(&mut self, at: usize, to: SlotRange) -> bool {
            let Some(bytes) = self.data.get(at..at + to.len) else { return false };
            self.transfer.write_bytes(to.offset, bytes).is_ok()
        }

        fn load(&mut self, from: SlotRange, at: usize) -> bool {
            let Some(bytes) = self.data.get_mut(at..at + from.len) else { return false };
            self.transfer.read_bytes(from.offset, bytes).is_ok()
        }
    }

    /// How a model copy ended, and the destination after it.
    struct Outcome {
        result: Result<Copied, Failure>,
        dest: Vec<u8>,
        /// The lines the writer printed first.
        starting: Option<Starting>,
        flushed_after: Option<(u64, bool)>,
    }

    struct ModelCopy {
        source: Vec<u8>,
        dest: Vec<u8>,
        read_only: bool,
        buffers: (usize, usize),
        depth: usize,
        slots: usize,
        seed: u64,
        fail_read: Option<(u64, Status)>,
        fail_write: Option<(u64, Status)>,
        fail_flush: bool,
    }

    impl ModelCopy {
        fn new(source: Vec<u8>, dest_blocks: u64) -> ModelCopy {
            ModelCopy {
                source,
                dest: vec![0xee; dest_blocks as usize * BLOCK],
                read_only: false,
                buffers: (3, 2),
                depth: 8,
                slots: 2,
                seed: 1,
                fail_read: None,
                fail_write: None,
                fail_flush: false,
            }
        }

        /// Run both sides against models until the writer finishes.
        fn run(self) -> Outcome {
            let mut words = region(self.slots);
            let mem = Shared::from_words(&mut words);
            let t = Transfer::new(mem).unwrap();
            let source_blocks = (self.source.len() / BLOCK) as u64;
            let dest_blocks = (self.dest.len() / BLOCK) as u64;
            let mut rio = Model::new(self.source, self.buffers.0, self.depth, mem, self.seed);
            let mut wio = Model::new(self.dest, self.buffers.1, self.depth, mem, self.seed.wrapping_mul(7));
            rio.fail = self.fail_read;
            (wio.fail, wio.fail_flush) = (self.fail_write, self.fail_flush);
            let mut writer = WriterSide::new(WriterEnd::new(t), DISK1, self.buffers.1 as u32, self.depth as u32);
            let info = DiskInfo { blocks: dest_blocks, read_only: self.read_only };
            // The writer may look before the reader announced.
            assert_eq!(writer.poll(&mut wio, Some(info)), WriterStep::default());
            let mut reader = ReaderSide::start(ReaderEnd::new(t), source_blocks, DISK0, self.buffers.0 as u32, self.depth as u32);
            let mut starting = None;
            for _ in 0..1_000_000 {
                let r = reader.poll(&mut rio);
                assert_eq!(r.stopped, None);
                rio.serve();
                let w = writer.poll(&mut wio, Some(info));
                starting = starting.or(w.starting);
                if let Some(result) = w.finished {
                    assert!(wio.queued.is_empty() && wio.answers.is_empty(), "the writer finished with requests in flight");
                    // Finished is final.
                    assert_eq!(writer.poll(&mut wio, Some(info)), WriterStep::default());
                    return Outcome { result, dest: wio.disk, starting, flushed_after: wio.flushed_after };
                }
                wio.serve();
            }
            panic!("the copy did not finish");
        }
    }

    #[test]
    fn a_disk_splits_into_whole_chunks_and_a_short_last_one() {
        let plan = Plan { blocks: 2 * CHUNK_BLOCKS as u64 + 10 };
        assert_eq!(plan.chunks(), 3);
        assert_eq!(plan.chunk(0, 2), Chunk { index: 0, first: 0, count: CHUNK_BLOCKS, last: false, offset: 0 });
        assert_eq!(plan.chunk(1, 2), Chunk { index: 1, first: 256, count: CHUNK_BLOCKS, last: false, offset: CHUNK_BYTES });
        assert_eq!(plan.chunk(2, 2), Chunk { index: 2, first: 512, count: 10, last: true, offset: 0 });
        assert_eq!(Plan { blocks: CHUNK_BLOCKS as u64 }.chunk(0, 1).last, true);
        assert_eq!(Plan { blocks: 0 }.chunks(), 0);
    }

    #[test]
    fn sizes_read_in_whole_mib_or_with_two_decimals_cut() {
        let said = |blocks| Mib(blocks).to_string();
        assert_eq!([0, 256, 65536, 128, 64, 1, 300].map(said), ["0 MiB", "1 MiB", "256 MiB", "0.50 MiB", "0.25 MiB", "0.00 MiB", "1.17 MiB"].map(String::from));
    }

    /// Start what may start, send what may be sent: the requests sent.
    fn pump(pipe: &mut Pipe) -> Vec<Request> {
        while pipe.startable().is_some() {
            pipe.start();
        }
        let mut sent = Vec::new();
        while let Some(req) = pipe.next_request() {
            pipe.sent(&req);
            sent.push(req);
        }
        sent
    }

    #[test]
    fn requests_are_as_large_as_allowed_and_never_cross_a_chunk() {
        let mut pipe = Pipe::new(Plan { blocks: 300 }, Op::Read, 2, 64);
        let sent = pump(&mut pipe);
        let spans: Vec<(u64, u32, u64)> = sent.iter().map(|r| (r.block, r.count, r.data_offset)).collect();
        let mut expected: Vec<(u64, u32, u64)> = (0..8).map(|i| (i * 32, 32, i * 32 * BLOCK as u64)).collect();
        // Chunk 1 (44 blocks) in buffer 1: 32 and 12.
        expected.push((256, 32, CHUNK_BYTES as u64));
        expected.push((288, 12, (CHUNK_BYTES + 32 * BLOCK) as u64));
        assert_eq!(spans, expected);
        assert!(sent.iter().all(|r| r.op() == Ok(Op::Read)));
        assert_eq!(pipe.next_request(), None);
    }

    #[test]
    fn a_reader_told_to_read_a_block_at_a_time_sends_one_block_requests() {
        let mut pipe = Pipe::new(Plan { blocks: 300 }, Op::Read, 2, 64).with_request_blocks(1);
        let sent = pump(&mut pipe);
        assert_eq!(sent.len(), 64, "a queue's worth");
        assert!(sent.iter().enumerate().all(|(i, r)| (r.block, r.count, r.data_offset) == (i as u64, 1, (i * BLOCK) as u64)));
        assert_eq!(Pipe::new(Plan { blocks: 300 }, Op::Read, 2, 64).with_request_blocks(0).request_blocks, 1);
        assert_eq!(Pipe::new(Plan { blocks: 300 }, Op::Read, 2, 64).with_request_blocks(1000).request_blocks, REQUEST_BLOCKS);
    }

    #[test]
    fn no_more_than_depth_requests_are_in_flight() {
        let mut pipe = Pipe::new(Plan { blocks: 4096 }, Op::Write, 4, 5);
        let sent = pump(&mut pipe);
        assert_eq!((sent.len(), pipe.in_flight()), (5, 5));
        assert!(sent.iter().all(|r| r.op() == Ok(Op::Write)));
        pipe.answer(&ok(sent[2].id, 32)).unwrap();
        assert_eq!(pump(&mut pipe).len(), 1);
        assert_eq!(pipe.next_request(), None);
    }

    #[test]
    fn a_chunk_buffer_is_reused_only_after_its_chunk_is_released() {
        let mut pipe = Pipe::new(Plan { blocks: 3 * CHUNK_BLOCKS as u64 }, Op::Read, 1, 64);
        let first = pump(&mut pipe);
        assert_eq!(first.len(), 8, "one chunk: one buffer");
        for r in &first {
            pipe.answer(&ok(r.id, r.count)).unwrap();
        }
        assert_eq!(pipe.startable(), None, "chunk 0 holds the buffer until it is released");
        assert_eq!(pipe.completed().map(|c| c.index), Some(0));
        pipe.release();
        let second = pump(&mut pipe);
        assert_eq!(second.first().map(|r| (r.block, r.data_offset)), Some((256, 0)));
    }

    #[test]
    fn chunks_are_released_in_order_whatever_order_their_answers_come_in() {
        let mut pipe = Pipe::new(Plan { blocks: 2 * CHUNK_BLOCKS as u64 }, Op::Read, 2, 64);
        let sent = pump(&mut pipe);
        // Every block of chunk 1 first: it must wait for chunk 0.
        for r in sent.iter().filter(|r| r.block >= 256) {
            pipe.answer(&ok(r.id, r.count)).unwrap();
        }
        assert_eq!(pipe.completed(), None);
        for r in sent.iter().filter(|r| r.block < 256).rev() {
            pipe.answer(&ok(r.id, r.count)).unwrap();
        }
        assert_eq!(pipe.completed().map(|c| c.index), Some(0));
        pipe.release();
        assert_eq!(pipe.completed().map(|c| c.index), Some(1));
        pipe.release();
        assert!(pipe.is_done());
        assert_eq!((pipe.moved(), pipe.released(), pipe.trouble()), (512, 2, None));
    }

    #[test]
    fn a_failed_request_stops_new_ones_and_every_answer_in_flight_is_still_taken() {
        let mut pipe = Pipe::new(Plan { blocks: 4096 }, Op::Read, 4, 4);
        let sent = pump(&mut pipe);
        pipe.answer(&Response::new(sent[1].id, Status::IoError, 0)).unwrap();
        assert_eq!(pipe.next_request(), None);
        assert_eq!(pipe.startable(), None);
        pipe.answer(&ok(sent[0].id, 32)).unwrap();
        pipe.answer(&Response::new(sent[3].id, Status::NoDevice, 0)).unwrap();
        pipe.answer(&ok(sent[2].id, 32)).unwrap();
        assert_eq!(pipe.in_flight(), 0);
        let first = Problem::Status { block: 32, count: 32, status: Status::IoError.raw() };
        assert_eq!(pipe.trouble(), Some(Trouble { first, failed: 2 }));
        assert_eq!(pipe.completed(), None, "a chunk with a failed block is never complete");
    }

    #[test]
    fn answers_that_fit_no_request_are_strays_and_stop_the_side() {
        let mut pipe = Pipe::new(Plan { blocks: 4096 }, Op::Read, 4, 2);
        let sent = pump(&mut pipe);
        assert_eq!(pipe.answer(&ok(sent[0].id + 64, 32)), Err(Stray::Unknown), "never sent");
        assert_eq!(pipe.answer(&ok(5, 32)), Err(Stray::Unknown), "a slot never used");
        pipe.answer(&ok(sent[0].id, 32)).unwrap();
        assert_eq!(pipe.answer(&ok(sent[0].id, 32)), Err(Stray::Twice));
        assert_eq!(pipe.answer(&ok(sent[1].id, 31)), Err(Stray::Count(31)));
        assert_eq!(pipe.in_flight(), 0, "a wrong count is still its request's answer");
        let first = Problem::Stray { id: sent[0].id + 64, stray: Stray::Unknown };
        assert_eq!(pipe.trouble(), Some(Trouble { first, failed: 4 }));
        assert_eq!(pipe.next_request(), None);
    }

    #[test]
    fn a_late_answer_to_a_reused_slot_is_not_taken_for_the_new_request() {
        let mut pipe = Pipe::new(Plan { blocks: 4096 }, Op::Read, 4, 1);
        let old = pump(&mut pipe)[0];
        pipe.answer(&ok(old.id, 32)).unwrap();
        let new = pump(&mut pipe)[0];
        assert_eq!(new.id % MAX_IN_FLIGHT as u32, old.id % MAX_IN_FLIGHT as u32, "the same slot");
        assert_ne!(new.id, old.id);
        assert_eq!(pipe.answer(&ok(old.id, 32)), Err(Stray::Unknown));
        assert_eq!(pipe.in_flight(), 1, "the new one is still in flight");
    }

    #[test]
    fn a_stopped_pipe_sends_nothing_more() {
        let mut pipe = Pipe::new(Plan { blocks: 4096 }, Op::Write, 4, 4);
        let sent = pump(&mut pipe);
        pipe.stop();
        pipe.answer(&ok(sent[0].id, 32)).unwrap();
        assert_eq!(pump(&mut pipe), []);
        assert_eq!(pipe.trouble(), None);
    }

    #[test]
    fn the_writer_sees_the_announced_source_and_the_chunks_the_reader_publishes() {
        let mut words = region(2);
        let mem = Shared::from_words(&mut words);
        let t = Transfer::new(mem).unwrap();
        assert_eq!(t.slots(), 2);
        let (mut reader, mut writer) = (ReaderEnd::new(t), WriterEnd::new(t));
        assert_eq!(writer.reader(), Ok(ReaderState::Starting));
        reader.announce(600, DISK0);
        let source = Source { blocks: 600, name: Name::new(DISK0) };
        assert_eq!(writer.reader(), Ok(ReaderState::Announced(source)));
        let plan = Plan { blocks: 600 };
        assert_eq!(writer.filled(), Ok(0));
        for n in 0..2 {
            assert_eq!(reader.has_room(), Ok(true));
            let chunk = plan.chunk(n, 3);
            let slot = reader.slot_data(&chunk);
            assert_eq!(slot, SlotRange { offset: HEADER_SIZE + n as usize * CHUNK_BYTES, len: CHUNK_BYTES });
            mem.write_bytes(slot.offset, &[n as u8 + 1; 16]).unwrap();
            reader.publish(&chunk);
        }
        assert_eq!(reader.has_room(), Ok(false), "both slots hold chunks not yet written");
        assert_eq!(writer.filled(), Ok(2));
        // The writer's own buffers differ from the reader's: the header
        // says which chunk, the buffer is the writer's business.
        let slot = writer.take(&plan.chunk(0, 1)).unwrap();
        assert_eq!(mem.read::<[u8; 16]>(slot.offset).unwrap(), [1; 16]);
        writer.mark_written();
        assert_eq!(reader.has_room(), Ok(true));
        let last = plan.chunk(2, 3);
        assert_eq!(reader.slot_data(&last), SlotRange { offset: HEADER_SIZE, len: 88 * BLOCK }, "chunk 2 reuses slot 0");
        reader.publish(&last);
        assert_eq!(writer.filled(), Ok(3));
        assert!(writer.take(&plan.chunk(1, 1)).is_ok());
        assert_eq!(writer.take(&last).map(|s| s.len), Ok(88 * BLOCK));
    }

    #[test]
    fn a_chunk_header_other_than_the_one_expected_is_refused() {
        let mut words = region(2);
        let t = Transfer::new(Shared::from_words(&mut words)).unwrap();
        let (mut reader, writer) = (ReaderEnd::new(t), WriterEnd::new(t));
        let plan = Plan { blocks: 1000 };
        reader.announce(1000, DISK0);
        reader.publish(&plan.chunk(0, 1));
        reader.publish(&plan.chunk(1, 1));
        // Chunk 2 would be in slot 0, which holds chunk 0.
        let expected = plan.chunk(2, 1);
        assert_eq!(writer.take(&expected), Err(ProtocolError::Header { expected: 2, chunk: 0, first: 0, count: 256, last: false }));
        // A header claiming to be the last chunk when it is not.
        let mut words = region(2);
        let t = Transfer::new(Shared::from_words(&mut words)).unwrap();
        let (mut reader, writer) = (ReaderEnd::new(t), WriterEnd::new(t));
        reader.publish(&Chunk { last: true, ..plan.chunk(0, 1) });
        assert!(matches!(writer.take(&plan.chunk(0, 1)), Err(ProtocolError::Header { last: true, .. })));
    }

    #[test]
    fn indices_that_break_the_ring_are_a_protocol_error() {
        let mut words = region(2);
        let mem = Shared::from_words(&mut words);
        let t = Transfer::new(mem).unwrap();
        let (reader, writer) = (ReaderEnd::new(t), WriterEnd::new(t));
        // A reader claiming three chunks in two slots.
        mem.write(FILLED, &3u32).unwrap();
        assert_eq!(writer.filled(), Err(ProtocolError::Indices { filled: 3, written: 0 }));
        // A writer claiming to have written what was never filled.
        mem.write(FILLED, &0u32).unwrap();
        mem.write(WRITTEN, &1u32).unwrap();
        assert_eq!(reader.has_room(), Err(ProtocolError::Indices { filled: 0, written: 1 }));
        // A state that is none of the three, and a layout not the writer's.
        mem.write(STATE, &7u32).unwrap();
        assert_eq!(writer.reader(), Err(ProtocolError::State(7)));
        mem.write(STATE, &ANNOUNCED).unwrap();
        assert_eq!(writer.reader(), Err(ProtocolError::Layout { chunk_blocks: 0, slots: 0, writer_slots: 2 }));
    }

    #[test]
    fn a_region_without_room_for_a_slot_is_refused() {
        let mut words = vec![0u64; (HEADER_SIZE + CHUNK_BYTES - 8) / 8];
        assert_eq!(Transfer::new(Shared::from_words(&mut words)).err(), Some(ProtocolError::Region));
        let mut words = vec![0u64; TRANSFER_SIZE / 8];
        assert_eq!(Transfer::new(Shared::from_words(&mut words)).map(|t| t.slots()).ok(), Some(TRANSFER_SLOTS as u32));
    }

    #[test]
    fn a_reader_failure_crosses_the_transfer_region_intact() {
        let failures = [
            ReaderFailure::Trouble(Trouble { first: Problem::Status { block: 1 << 40, count: 32, status: 9 }, failed: 3 }),
            ReaderFailure::Trouble(Trouble { first: Problem::Stray { id: 77, stray: Stray::Count(5) }, failed: 1 }),
            ReaderFailure::Trouble(Trouble { first: Problem::Stray { id: 78, stray: Stray::Twice }, failed: 2 }),
            ReaderFailure::Trouble(Trouble { first: Problem::Stray { id: 79, stray: Stray::Unknown }, failed: 1 }),
            ReaderFailure::Setup(Setup::NoClient),
            ReaderFailure::Setup(Setup::DataRegion),
            ReaderFailure::Setup(Setup::Queue),
        ];
        for failure in failures {
            let mut words = region(1);
            let t = Transfer::new(Shared::from_words(&mut words)).unwrap();
            let (mut reader, writer) = (ReaderEnd::new(t), WriterEnd::new(t));
            reader.announce(10, DISK0);
            reader.fail(failure);
            assert_eq!(writer.reader(), Ok(ReaderState::Failed(failure)));
            assert_eq!(writer.source_name(), Name::new(DISK0));
        }
    }

    #[test]
    fn a_source_with_no_blocks_is_an_error_and_the_destination_is_untouched() {
        // (A disk whose chain could not be set up shows its clients no
        // blocks: a copy of nothing would hide that.)
        let out = ModelCopy::new(pattern(0), 40).run();
        assert_eq!(out.result, Err(Failure::EmptySource { source: Name::new(DISK0) }));
        assert!(out.dest.iter().all(|&b| b == 0xee), "nothing written");
        assert_eq!(
            Failure::EmptySource { source: Name::new(DISK0) }.to_string(),
            "disk0 has no blocks (no device, one smaller than a block, or filters that could not set it up: see above): copied nothing"
        );
    }

    #[test]
    fn a_whole_copy_moves_every_byte_to_the_start_of_the_destination() {
        // Sizes around chunk and request edges, several answer orders,
        // buffers and slots.
        let sizes = [1, 31, 33, 255, 256, 257, 600, 4 * 256 + 17];
        for (i, &blocks) in sizes.iter().enumerate() {
            for seed in [1, 2, 3] {
                let source = pattern(blocks);
                let mut setup = ModelCopy::new(source.clone(), blocks + 40);
                setup.seed = seed * 1000 + i as u64;
                setup.buffers = (1 + (seed as usize % 3), 1 + (i % 3));
                setup.slots = 1 + (i + seed as usize) % 3;
                setup.depth = [1, 3, 64][seed as usize % 3];
                let out = setup.run();
                let copied = Copied { blocks, source: Name::new(DISK0), dest: Name::new(DISK1) };
                assert_eq!(out.result, Ok(copied), "{blocks} blocks, seed {seed}");
                assert!(out.dest[..source.len()] == source[..], "{blocks} blocks, seed {seed}: the copy differs");
                assert!(out.dest[source.len()..].iter().all(|&b| b == 0xee), "past the copy, the destination is untouched");
                assert_eq!(out.flushed_after, Some((blocks, false)), "one flush, after every write");
                let source = Source { blocks, name: Name::new(DISK0) };
                assert_eq!(out.starting, Some(Starting { source, dest: Name::new(DISK1), dest_blocks: blocks + 40 }));
            }
        }
    }

    #[test]
    fn a_destination_of_the_same_size_is_enough() {
        let source = pattern(300);
        let out = ModelCopy::new(source.clone(), 300).run();
        assert_eq!(out.result.map(|c| c.blocks), Ok(300));
        assert!(out.dest == source);
    }

    #[test]
    fn a_destination_smaller_than_the_source_is_refused_before_anything_is_written() {
        let out = ModelCopy::new(pattern(600), 599).run();
        let source = Source { blocks: 600, name: Name::new(DISK0) };
        assert_eq!(out.result, Err(Failure::TooSmall { source, dest: Name::new(DISK1), dest_blocks: 599 }));
        assert!(out.dest.iter().all(|&b| b == 0xee));
        assert_eq!((out.starting, out.flushed_after), (None, None));
    }

    #[test]
    fn a_read_only_destination_is_refused() {
        let mut setup = ModelCopy::new(pattern(10), 20);
        setup.read_only = true;
        let out = setup.run();
        assert_eq!(out.result, Err(Failure::ReadOnly { dest: Name::new(DISK1) }));
        assert!(out.dest.iter().all(|&b| b == 0xee));
    }

    #[test]
    fn a_failed_read_is_reported_by_the_writer_and_nothing_is_flushed() {
        for seed in [1, 2, 3, 4] {
            let mut setup = ModelCopy::new(pattern(2000), 2000);
            (setup.seed, setup.fail_read) = (seed, Some((700, Status::IoError)));
            let out = setup.run();
            let Err(Failure::Requests { direction: Direction::Read, disk, dest, trouble }) = out.result else {
                panic!("seed {seed}: {:?}", out.result)
            };
            assert_eq!((disk, dest), (Name::new(DISK0), Name::new(DISK1)));
            assert_eq!(trouble, Trouble { first: Problem::Status { block: 672, count: 32, status: Status::IoError.raw() }, failed: 1 });
            assert_eq!(out.flushed_after, None);
            // Nothing of the chunk that failed, or after it, was written.
            assert!(out.dest[512 * BLOCK..].iter().all(|&b| b == 0xee));
        }
    }

    #[test]
    fn a_failed_write_is_reported_and_nothing_is_flushed() {
        for seed in [1, 2, 3] {
            let mut setup = ModelCopy::new(pattern(2000), 2000);
            (setup.seed, setup.fail_write) = (seed, Some((1000, Status::IoError)));
            let out = setup.run();
            let first = Problem::Status { block: 992, count: 32, status: Status::IoError.raw() };
            let failure = Failure::Requests { direction: Direction::Write, disk: Name::new(DISK1), dest: Name::new(DISK1), trouble: Trouble { first, failed: 1 } };
            assert_eq!(out.result, Err(failure), "seed {seed}");
            assert_eq!(out.flushed_after, None);
        }
    }

    #[test]
    fn a_failed_flush_is_reported() {
        let mut setup = ModelCopy::new(pattern(100), 100);
        setup.fail_flush = true;
        let out = setup.run();
        assert_eq!(out.result, Err(Failure::Flush { dest: Name::new(DISK1), status: Status::IoError.raw() }));
    }

    #[test]
    fn a_reader_that_cannot_start_is_reported_by_the_writer() {
        let mut words = region(1);
        let mem = Shared::from_words(&mut words);
        let t = Transfer::new(mem).unwrap();
        ReaderEnd::new(t).fail(ReaderFailure::Setup(Setup::DataRegion));
        let mut wio = Model::new(vec![0; BLOCK], 1, 4, mem, 1);
        let mut writer = WriterSide::new(WriterEnd::new(t), DISK1, 1, 4);
        // Before its own disk is ready, too.
        let step = writer.poll(&mut wio, None);
        assert_eq!(step.finished, Some(Err(Failure::ReaderSetup(Setup::DataRegion))));
    }

    #[test]
    fn the_lines_say_what_happened() {
        let (d0, d1) = (Name::new(DISK0), Name::new(DISK1));
        let source = Source { blocks: 65536, name: d0 };
        let lines = [
            Copied { blocks: 65536, source: d0, dest: d1 }.to_string(),
            Starting { source, dest: d1, dest_blocks: 262144 }.to_string(),
            Failure::TooSmall { source, dest: d1, dest_blocks: 2048 }.to_string(),
            Failure::ReadOnly { dest: d1 }.to_string(),
            Failure::Requests {
                direction: Direction::Read,
                disk: d0,
                dest: d1,
                trouble: Trouble { first: Problem::Status { block: 4992, count: 32, status: 2 }, failed: 1 },
            }
            .to_string(),
            Failure::Requests {
                direction: Direction::Write,
                disk: d1,
                dest: d1,
                trouble: Trouble { first: Problem::Stray { id: 70, stray: Stray::Twice }, failed: 3 },
            }
            .to_string(),
            Failure::Flush { dest: d1, status: 2 }.to_string(),
            Failure::ReaderSetup(Setup::NoClient).to_string(),
            Failure::Protocol(ProtocolError::Indices { filled: 9, written: 2 }).to_string(),
        ];
        assert_eq!(
            lines,
            [
                "copied 65536 blocks (256 MiB) from disk0 to disk1",
                "copying disk0 (65536 blocks, 256 MiB) to disk1 (262144 blocks, 1024 MiB)",
                "disk1 has 2048 blocks (8 MiB), fewer than the 65536 blocks (256 MiB) of disk0: copied nothing",
                "disk1 is read-only: copied nothing",
                "read of 32 blocks at block 4992 of disk0 failed: I/O error (1 request failed); disk1 is incomplete",
                "an answer from disk1 fits no write in flight (request 70: answered twice) (3 requests failed); disk1 is incomplete",
                "flush of disk1 failed: I/O error; the copy may not be on it",
                "the reader could not start: no block_client configuration (declare <block_client> in the system file); copied nothing",
                "the transfer indices are corrupt: 9 chunks filled, 2 written; stopped",
            ]
            .map(String::from)
        );
    }

    #[test]
    fn roles_are_one_and_two() {
        assert_eq!([0, 1, 2, 3].map(Role::from_var), [None, Some(Role::Reader), Some(Role::Writer), None]);
    }
}
