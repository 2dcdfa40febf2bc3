//! The hostile client as a handler. It sends the filter server every kind
//! of malformed request it can build, one case at a time: ranges outside
//! its disk, misaligned and out-of-region buffers, zero and overlong
//! counts, unknown opcodes. Between them it sends good requests (stamped
//! writes, and reads that check the stamps back), and it floods its queue
//! until the ring refuses a request. Every bad request must come back
//! `InvalidRequest`, every good one `Ok` with its data, each exactly once.
//! A flood ends with a barrier: once it is answered every request before it
//! has been, so one still unanswered was lost (and the client says so
//! rather than wait for it forever). Then it tells channel [`DONE`].
//!
//! A flood is judged only if the ring refused a request once it held a
//! queue's worth. The server runs at a higher priority and may take
//! requests while the client is still pushing; the ring then takes more,
//! and the client ends up with more requests unanswered than its queue
//! holds. The protocol forbids that (the server may drop the excess
//! answers: there is no room for them), so such a round says nothing about
//! the server and is repeated, up to [`FLOOD_ROUNDS`] times.
//!
//! Each case prints one line, `<pd>: <what was sent>: <outcome>`; an
//! outcome other than the expected one contains `UNEXPECTED`. The last line
//! sums up: `N bad requests refused, M good requests served, 0 lost`.
//!
//! It expects a data region of at least [`DATA_BLOCKS`] blocks, a disk view
//! of at least [`MAX_BATCH`] blocks and a queue of at most [`MAX_QUEUE`].
//!
//! All its state lives on the PD's 16 KiB stack (the handler is a local of
//! the event loop), so it is kept small, and the 4 KiB block buffers are
//! locals of functions that are not inlined: one at a time.

use core::fmt;

use crate::client::BlockClient;
use crate::stamp::{self, BLOCK};
use blk::{Op, PushError, Request, Response, Status};
use microkit::{debug_println, pd_name, Channel, ChannelSet, Handler, Infallible};

/// The channel on which the client reports that it finished.
pub const DONE: Channel = Channel::new(0);
/// The generation of the stamps the good writes carry.
pub const GENERATION: u64 = 1;
/// Blocks of its view the client stamps and reads back. Block 0 is left
/// alone: the bad writes aim at it, so it must stay as it was.
pub const STAMPED: [u64; 3] = [1, 2, 3];
/// Blocks of the data region the client needs.
pub const DATA_BLOCKS: u64 = 16;
/// The largest queue the client floods.
pub const MAX_QUEUE: u32 = 16;
/// Requests in one case at most: room for a flood the server overtakes
/// (a little more than a queue's worth) and its barrier. A flood stops
/// here even if the ring keeps taking requests.
pub const MAX_BATCH: usize = 2 * MAX_QUEUE as usize;
/// Attempts at a flood the server does not overtake.
pub const FLOOD_ROUNDS: u32 = 8;

/// Data region layout, in blocks: block 0 holds junk, what a bad write
/// would carry to the disk if it got through; stamped block `b` is written
/// from block `b` and read back into block `READ_BACK + b`; flood reads land
/// in the blocks from `FLOOD_BUFFERS` on, sharing them (their content is
/// not checked).
const JUNK: u64 = 0;
/// What the junk block is filled with (`tests/tests/bad_client.rs` looks
/// for it on the disk).
pub const JUNK_BYTE: u8 = 0xa5;
const READ_BACK: u64 = 8;
const FLOOD_BUFFERS: u64 = 12;
const FLOOD_BUFFER_COUNT: u64 = 4;

/// A block far past the end of the view, chosen so that a server adding
/// the partition's first block without checking would wrap around to the
/// start of the disk. In the test system the client's partition starts at
/// disk block 8192: this block would land on block 256, verify0's first.
const WRAPPING_BLOCK: u64 = 0u64.wrapping_sub(8192 - 256);

/// The disk and data region as this client sees them.
#[derive(Clone, Copy)]
struct View {
    /// Blocks in the disk view.
    blocks: u64,
    /// Bytes in the data region.
    data_size: u64,
    /// Entries in the request ring.
    queue: u32,
}

impl View {
    fn data_blocks(&self) -> u64 {
        self.data_size / BLOCK as u64
    }
}

/// One malformed request.
#[derive(Clone, Copy)]
enum Bad {
    /// A read of the first block past the end.
    AtEnd,
    /// A read of the last block and the one after it.
    StraddlesEnd,
    /// A read whose last block overflows a `u64`.
    EndOverflows,
    /// A write to [`WRAPPING_BLOCK`].
    Wraps,
    /// A write from a buffer that is not block-aligned.
    Misaligned,
    /// A read of no blocks.
    ZeroCount,
    /// A read of one block more than the data region holds.
    Overlong,
    /// A read of `u32::MAX` blocks.
    CountMax,
    /// A read into a buffer that starts at the end of the data region.
    OffsetAtRegionEnd,
    /// A two-block read into the last block of the data region.
    CrossesRegionEnd,
    /// A read into a buffer whose end overflows a `u64`.
    OffsetOverflows,
    /// A request with an opcode the protocol does not define.
    UnknownOp(u32),
}

impl Bad {
    fn request(self, id: u32, v: &View) -> Request {
        let junk = JUNK * BLOCK as u64;
        let data_size = v.data_size;
        match self {
            Bad::AtEnd => Request::new(id, Op::Read, v.blocks, 1, 0),
            Bad::StraddlesEnd => Request::new(id, Op::Read, v.blocks - 1, 2, 0),
            Bad::EndOverflows => Request::new(id, Op::Read, u64::MAX, 2, 0),
            Bad::Wraps => Request::new(id, Op::Write, WRAPPING_BLOCK, 1, junk),
            Bad::Misaligned => Request::new(id, Op::Write, 0, 1, junk + 512),
            Bad::ZeroCount => Request::new(id, Op::Read, 0, 0, 0),
            Bad::Overlong => Request::new(id, Op::Read, 0, v.data_blocks() as u32 + 1, 0),
            Bad::CountMax => Request::new(id, Op::Read, 0, u32::MAX, 0),
            Bad::OffsetAtRegionEnd => Request::new(id, Op::Read, 0, 1, data_size),
            Bad::CrossesRegionEnd => Request::new(id, Op::Read, 0, 2, data_size - BLOCK as u64),
            Bad::OffsetOverflows => Request::new(id, Op::Read, 0, 1, 0u64.wrapping_sub(BLOCK as u64)),
            Bad::UnknownOp(op) => {
                // `Request::new` takes only defined opcodes; the raw field
                // takes anything, as a hostile peer's memory would.
                let mut r = Request::new(id, Op::Read, 0, 1, 0);
                r.opcode = op;
                r
            }
        }
    }
}

/// What a bad request is, for its line.
struct ShowBad(Bad, View);

impl fmt::Display for ShowBad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ShowBad(bad, v) = self;
        let blocks = v.blocks;
        match bad {
            Bad::AtEnd => write!(f, "out-of-range read (block {blocks} of {blocks})"),
            Bad::StraddlesEnd => write!(f, "out-of-range read (blocks {}..{} of {blocks})", blocks - 1, blocks + 1),
            Bad::EndOverflows => write!(f, "out-of-range read (block 2^64-1, 2 blocks: the end overflows)"),
            Bad::Wraps => write!(f, "out-of-range write (block 2^64-{})", 0u64.wrapping_sub(WRAPPING_BLOCK)),
            Bad::Misaligned => write!(f, "misaligned buffer (write from data offset 512)"),
            Bad::ZeroCount => write!(f, "zero-count read (block 0)"),
            Bad::Overlong => write!(f, "overlong read ({} blocks, the data region holds {})", v.data_blocks() + 1, v.data_blocks()),
            Bad::CountMax => write!(f, "overlong read ({} blocks)", u32::MAX),
            Bad::OffsetAtRegionEnd => write!(f, "buffer outside the data region (offset {}, its size)", v.data_size),
            Bad::CrossesRegionEnd => {
                write!(f, "buffer past the end of the data region (offset {}, 2 blocks)", v.data_size - BLOCK as u64)
            }
            Bad::OffsetOverflows => write!(f, "buffer past the end of the data region (offset 2^64-4096: the end overflows)"),
            Bad::UnknownOp(op) => write!(f, "unknown opcode {op}"),
        }
    }
}

/// One step of the script: its requests are sent together and all their
/// answers awaited before the next step.
#[derive(Clone, Copy)]
enum Case {
    Bad(Bad),
    /// Stamped writes of [`STAMPED`], a bad write between each two.
    Writes,
    /// Reads of [`STAMPED`] that check the stamps, a bad read between each
    /// two.
    Reads,
    /// Good reads until the ring refuses one.
    Flood,
    /// Alternately good and bad reads until the ring refuses one.
    MixedFlood,
}

const SCRIPT: [Case; 17] = [
    Case::Bad(Bad::AtEnd),
    Case::Bad(Bad::StraddlesEnd),
    Case::Bad(Bad::EndOverflows),
    Case::Bad(Bad::Wraps),
    Case::Writes,
    Case::Bad(Bad::Misaligned),
    Case::Bad(Bad::ZeroCount),
    Case::Bad(Bad::Overlong),
    Case::Bad(Bad::CountMax),
    Case::Bad(Bad::OffsetAtRegionEnd),
    Case::Bad(Bad::CrossesRegionEnd),
    Case::Bad(Bad::OffsetOverflows),
    Case::Reads,
    Case::Bad(Bad::UnknownOp(6)),
    Case::Bad(Bad::UnknownOp(u32::MAX)),
    Case::Flood,
    Case::MixedFlood,
];

/// The bad requests sent between the good writes and between the good
/// reads.
const BAD_BETWEEN_WRITES: [Bad; 2] = [Bad::Misaligned, Bad::Wraps];
const BAD_BETWEEN_READS: [Bad; 2] = [Bad::StraddlesEnd, Bad::UnknownOp(7)];

/// The answer a request should get.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// `InvalidRequest`: a bad request.
    Refusal,
    /// `Ok` for all its blocks.
    Served,
    /// `Ok`, and the stamp of this block (of [`STAMPED`]) in its read-back
    /// buffer.
    Stamp(u32),
    /// `Ok`: the barrier that closes a flood. Not counted as served.
    Barrier,
}

/// What one request should get back, and what it got.
#[derive(Clone, Copy)]
struct Expect {
    id: u32,
    /// Blocks the request moves; a good answer must say so.
    count: u32,
    want: Want,
    answer: Option<Response>,
}

const NOTHING: Expect = Expect { id: 0, count: 0, want: Want::Refusal, answer: None };

/// The requests of the case in progress.
struct Batch {
    expect: [Expect; MAX_BATCH],
    len: usize,
    /// Answers with an id not in the batch, or a second answer to one.
    strays: u32,
}

/// How a batch's answers compare with what was expected.
#[derive(Clone, Copy, Default)]
struct Outcome {
    /// Good requests served as they should be.
    served: u32,
    /// Bad requests answered `InvalidRequest`.
    refused: u32,
    /// Requests whose answer was not the expected one.
    wrong: u32,
    /// The first of those, for the line.
    first_wrong: Option<(u32, Response)>,
    /// Requests without an answer.
    lost: u32,
}

impl Batch {
    const fn new() -> Batch {
        Batch { expect: [NOTHING; MAX_BATCH], len: 0, strays: 0 }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.strays = 0;
    }

    fn is_full(&self) -> bool {
        self.len == MAX_BATCH
    }

    /// Queue `req` (the hostile client is never direct, so its offsets go
    /// to the server as they are) and remember what it should get.
    fn push(&mut self, c: &mut BlockClient, req: Request, want: Want) -> Result<(), PushError> {
        if self.is_full() {
            return Err(PushError::Full);
        }
        c.queue.requests.try_push(req)?;
        self.expect[self.len] = Expect { id: req.id, count: req.count, want, answer: None };
        self.len += 1;
        Ok(())
    }

    fn answer(&mut self, r: Response) {
        match self.expect[..self.len].iter_mut().find(|e| e.id == r.id && e.answer.is_none()) {
            Some(e) => e.answer = Some(r),
            None => self.strays += 1,
        }
    }

    fn unanswered(&self) -> usize {
        self.expect[..self.len].iter().filter(|e| e.answer.is_none()).count()
    }

    fn has_barrier(&self) -> bool {
        self.expect[..self.len].iter().any(|e| e.want == Want::Barrier)
    }

    /// Whether no more answers are due: all are in, or the barrier's is
    /// (and with it every answer that was ever coming).
    fn is_settled(&self) -> bool {
        self.unanswered() == 0 || self.expect[..self.len].iter().any(|e| e.want == Want::Barrier && e.answer.is_some())
    }

    fn outcome(&self, c: &BlockClient) -> Outcome {
        let mut o = Outcome::default();
        for e in &self.expect[..self.len] {
            let Some(r) = e.answer else {
                o.lost += 1;
                continue;
            };
            let served = r.status() == Ok(Status::Ok) && r.count == e.count;
            let right = match e.want {
                Want::Refusal => r.status() == Ok(Status::InvalidRequest),
                Want::Served => served,
                Want::Stamp(block) => served && has_stamp(c, block as u64),
                Want::Barrier => r.status() == Ok(Status::Ok),
            };
            match (right, e.want) {
                (true, Want::Refusal) => o.refused += 1,
                (true, Want::Barrier) => {}
                (true, _) => o.served += 1,
                (false, _) => {
                    o.wrong += 1;
                    o.first_wrong.get_or_insert((e.id, r));
                }
            }
        }
        o
    }
}

/// Whether the read-back buffer of `block` holds its stamp.
#[inline(never)]
fn has_stamp(c: &BlockClient, block: u64) -> bool {
    let mut buf = [0u8; BLOCK];
    c.data.read_bytes(offset(READ_BACK + block) as usize, &mut buf).is_ok() && stamp::check(c.disk(), block, GENERATION, &buf).is_ok()
}

/// Put the stamp of `block` in its buffer, block `block` of the data
/// region.
#[inline(never)]
fn write_stamp(c: &BlockClient, block: u64) {
    let mut buf = [0u8; BLOCK];
    stamp::stamp(c.disk(), block, GENERATION, &mut buf);
    let _ = c.data.write_bytes(offset(block) as usize, &buf);
}

fn offset(block: u64) -> u64 {
    block * BLOCK as u64
}

/// The script's progress and the running totals.
struct Script {
    view: View,
    /// The next step of [`SCRIPT`].
    next: usize,
    /// The step whose answers are awaited.
    current: Option<Case>,
    batch: Batch,
    /// Requests a flood got in before the ring refused one; `None` if it
    /// never refused (a full batch) or refused for another reason.
    flooded: Option<usize>,
    /// Attempts at the current case (only floods are repeated).
    round: u32,
    next_id: u32,
    refused: u32,
    served: u32,
    lost: u32,
}

impl Script {
    fn new(view: View) -> Script {
        Script {
            view,
            next: 0,
            current: None,
            batch: Batch::new(),
            flooded: None,
            round: 0,
            next_id: 1,
            refused: 0,
            served: 0,
            lost: 0,
        }
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn push(&mut self, c: &mut BlockClient, req: Request, want: Want) -> Result<(), PushError> {
        self.batch.push(c, req, want)
    }

    fn push_bad(&mut self, c: &mut BlockClient, bad: Bad) {
        let req = bad.request(self.id(), &self.view);
        // A case sends at most five requests, well within the queue.
        let _ = self.push(c, req, Want::Refusal);
    }

    /// Send the requests of `case`.
    fn start(&mut self, c: &mut BlockClient, case: Case) {
        self.batch.clear();
        self.current = Some(case);
        match case {
            Case::Bad(bad) => self.push_bad(c, bad),
            Case::Writes => {
                for (i, &b) in STAMPED.iter().enumerate() {
                    write_stamp(c, b);
                    let req = Request::new(self.id(), Op::Write, b, 1, offset(b));
                    let _ = self.push(c, req, Want::Served);
                    if let Some(&bad) = BAD_BETWEEN_WRITES.get(i) {
                        self.push_bad(c, bad);
                    }
                }
            }
            Case::Reads => {
                for (i, &b) in STAMPED.iter().enumerate() {
                    // Read into a cleared buffer, not the one the stamp was
                    // written from: what is checked must come from the disk.
                    let at = offset(READ_BACK + b);
                    let _ = c.data.write_bytes(at as usize, &[0u8; BLOCK]);
                    let req = Request::new(self.id(), Op::Read, b, 1, at);
                    let _ = self.push(c, req, Want::Stamp(b as u32));
                    if let Some(&bad) = BAD_BETWEEN_READS.get(i) {
                        self.push_bad(c, bad);
                    }
                }
            }
            Case::Flood | Case::MixedFlood => {
                self.flooded = None;
                // One entry of the batch stays free for the barrier.
                while self.batch.len < MAX_BATCH - 1 {
                    let n = self.batch.len as u64;
                    let good = matches!(case, Case::Flood) || n % 2 == 0;
                    let (req, want) = if good {
                        let at = offset(FLOOD_BUFFERS + n % FLOOD_BUFFER_COUNT);
                        (Request::new(self.id(), Op::Read, n, 1, at), Want::Served)
                    } else {
                        (Bad::AtEnd.request(self.id(), &self.view), Want::Refusal)
                    };
                    match self.push(c, req, want) {
                        Ok(()) => {}
                        Err(PushError::Full) => {
                            self.flooded = Some(self.batch.len);
                            break;
                        }
                        Err(PushError::Corrupt(_)) => break,
                    }
                }
            }
        }
    }

    /// Close a flood with a barrier once the client again has fewer than a
    /// queue's worth of requests unanswered: pushed earlier it could leave
    /// the server no room for an answer. (A flood can exceed a queue's
    /// worth: the server may take requests while the client is pushing.)
    fn close_flood(&mut self, c: &mut BlockClient) {
        if !matches!(self.current, Some(Case::Flood | Case::MixedFlood)) || self.batch.has_barrier() {
            return;
        }
        if self.batch.unanswered() < self.view.queue as usize {
            let req = Request::ordering(self.id(), Op::Barrier);
            let _ = self.push(c, req, Want::Barrier);
        }
    }

    /// The current case has all the answers it will get: report it (or
    /// repeat a flood the server overtook) and start the next. False once
    /// the script is done.
    fn advance(&mut self, c: &mut BlockClient) -> bool {
        if let Some(case) = self.current.take() {
            if self.overtaken(case) && self.round < FLOOD_ROUNDS {
                self.round += 1;
                self.start(c, case);
                return true;
            }
            self.report(c, case);
        }
        let Some(&case) = SCRIPT.get(self.next) else {
            self.finish();
            return false;
        };
        self.next += 1;
        self.round = 1;
        self.start(c, case);
        true
    }

    /// Whether the ring took more than a queue's worth of a flood: the
    /// server took some while the client was pushing.
    fn overtaken(&self, case: Case) -> bool {
        matches!(case, Case::Flood | Case::MixedFlood) && self.flooded.is_some_and(|n| n > self.view.queue as usize)
    }

    /// Print the line of the case whose answers are all in.
    fn report(&mut self, c: &BlockClient, case: Case) {
        let name = pd_name();
        if self.overtaken(case) {
            debug_println!("{name}: {}: UNEXPECTED: the server took requests during all {FLOOD_ROUNDS} floods", CaseName(case));
            return;
        }
        let o = self.batch.outcome(c);
        self.refused += o.refused;
        self.served += o.served;
        self.lost += o.lost;
        let strays = self.batch.strays;
        if o.lost > 0 {
            let sent = self.batch.len - self.batch.has_barrier() as usize;
            debug_println!("{name}: {}: UNEXPECTED: {} of {sent} requests lost", CaseName(case), o.lost);
        }
        if o.wrong > 0 || strays > 0 {
            let (id, r) = o.first_wrong.unwrap_or((0, Response::new(0, Status::Ok, 0)));
            match case {
                Case::Bad(bad) => debug_println!("{name}: {}: UNEXPECTED answer {:?}, count {}", ShowBad(bad, self.view), r.status(), r.count),
                _ => debug_println!(
                    "{name}: {}: UNEXPECTED: {} wrong answers (first: request {id}: {:?}, count {}), {} stray answers",
                    CaseName(case),
                    o.wrong,
                    r.status(),
                    r.count,
                    strays
                ),
            }
        }
        if o.lost > 0 || o.wrong > 0 || strays > 0 {
            return;
        }
        match case {
            Case::Bad(bad) => debug_println!("{name}: {}: invalid request", ShowBad(bad, self.view)),
            Case::Writes | Case::Reads => {
                let checked = if matches!(case, Case::Reads) { " with their stamps" } else { "" };
                debug_println!("{name}: {}: {} ok{checked}, {} invalid request", CaseName(case), o.served, o.refused);
            }
            Case::Flood | Case::MixedFlood => match self.flooded {
                Some(n) if o.refused == 0 => debug_println!(
                    "{name}: {}: the ring took {n} and refused the next; {} ok, none lost, none duplicated",
                    CaseName(case),
                    o.served
                ),
                Some(n) => debug_println!(
                    "{name}: {}: the ring took {n} and refused the next; {} ok, {} invalid request, none lost, none duplicated",
                    CaseName(case),
                    o.served,
                    o.refused
                ),
                None => debug_println!("{name}: {}: UNEXPECTED: the ring never refused a request", CaseName(case)),
            },
        }
    }

    fn finish(&self) {
        debug_println!(
            "{}: {} bad requests refused, {} good requests served, {} lost",
            pd_name(),
            self.refused,
            self.served,
            self.lost
        );
        DONE.notify();
    }
}

/// What a multi-request case sends, for its line.
struct CaseName(Case);

impl fmt::Display for CaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = STAMPED;
        match self.0 {
            Case::Bad(_) => f.write_str("bad request"),
            Case::Writes => write!(f, "stamped writes of blocks {a}, {b}, {c} with a bad write between each two"),
            Case::Reads => write!(f, "reads of blocks {a}, {b}, {c} with a bad read between each two"),
            Case::Flood => f.write_str("flood of good reads"),
            Case::MixedFlood => f.write_str("flood of alternately good and bad reads"),
        }
    }
}

pub struct Hostile {
    client: Option<BlockClient>,
    script: Option<Script>,
    finished: bool,
}

impl Hostile {
    pub fn new() -> Hostile {
        let client = match BlockClient::from_config() {
            Ok(c) => Some(c),
            Err(e) => {
                debug_println!("{}: {}", pd_name(), e);
                None
            }
        };
        let mut h = Hostile { client, script: None, finished: false };
        h.step();
        h
    }

    fn step(&mut self) {
        let Some(c) = self.client.as_mut() else { return };
        if self.finished {
            return;
        }
        loop {
            if self.script.is_none() {
                let Some(info) = c.info() else { return };
                let view = View { blocks: info.capacity, data_size: c.data.len() as u64, queue: c.capacity() };
                debug_println!(
                    "{}: {} has {} blocks; data region of {} blocks, queue of {}",
                    pd_name(),
                    c.disk(),
                    view.blocks,
                    view.data_blocks(),
                    view.queue
                );
                if view.data_blocks() < DATA_BLOCKS || view.blocks < MAX_BATCH as u64 || view.queue > MAX_QUEUE {
                    debug_println!(
                        "{}: needs {} data blocks, {} disk blocks and a queue of at most {}; giving up",
                        pd_name(),
                        DATA_BLOCKS,
                        MAX_BATCH,
                        MAX_QUEUE
                    );
                    self.finished = true;
                    return;
                }
                let _ = c.data.write_bytes(offset(JUNK) as usize, &[JUNK_BYTE; BLOCK]);
                self.script = Some(Script::new(view));
            }
            let Some(s) = self.script.as_mut() else { return };
            while let Some(r) = c.pop() {
                s.batch.answer(r);
            }
            s.close_flood(c);
            if s.batch.is_settled() && !s.advance(c) {
                self.finished = true;
                return;
            }
            c.kick();
            if c.wait() {
                return;
            }
        }
    }
}

impl Handler for Hostile {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        self.step();
        Ok(())
    }
}
