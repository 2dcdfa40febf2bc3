//! Filter chains: the in-flight table and the chain state machine.
//!
//! A disk with filters does not use the ring-to-ring path: each request a
//! client sends takes a slot of the in-flight table, whose index is the tag
//! the driver echoes (`SLOT_TAG + slot`), and keeps there what the
//! post-operations need: its client and id, op, blocks, data, the
//! substitute buffers filters gave it and each filter's state word.
//!
//! A request moves through its disk's chain in levels, one per filter, in
//! batches:
//!
//! ```text
//! client ring -> pre(0) -> pre(1) -> ... -> pre(n-1) -> down -> driver ring
//! client ring <- up <- post(0) <- ... <- post(n-1) <- driver ring
//! ```
//!
//! Each level's queue is served by one upcall carrying all of it (up to
//! `MAX_BATCH` requests per call). A filter is skipped for an operation or
//! a hook it did not declare. A pre-op's continue (or substitute) sends the
//! request to the next level down; its complete or fail sends it up from
//! that filter, so only the filters above it see it again; a post-op's
//! verdict sets the result, and the request goes on up. What reaches the
//! bottom goes to the driver (with the data address of the lowest
//! substitute, or the client's buffer); what reaches the top is answered.
//!
//! A filter's redirect or side I/O starts a request of its own, in a slot
//! of its own (`spawn`): a redirect enters the linked disk's chain at the
//! top with the data as it stands at the filter, a side I/O enters its own
//! chain just below the filter with the filter's bounce buffer. When it
//! reaches the top of the chain it travelled, it goes back to the request
//! it was for (`returned`): after a redirect that request goes on up as if
//! completed below the filter, after a side I/O the filter is called again
//! for it. Slots are given out so that such requests never hold every slot
//! (`spawn`), and the chains are passed over again while requests move
//! between them.
//!
//! A filter that faults or runs past its budget fails every request of the
//! upcall with `IoError` (they go on up); the server then hears of the
//! fault as the filter's parent, and restarts the filter if it was
//! declared `on_fault="restart"`. Until then, and for good otherwise, every
//! request that reaches it fails with `IoError` without a call. Requests
//! of other disks never wait for a chain: each disk's levels are served in
//! the same pass, and a filter is called only with its own disk's
//! requests.

use blk::config::{field_str, ServerFilter, MAX_CHAIN, NO_LEND};
use blk::filter::{CallPage, Entry, Hook, Io, Verdict, CONTINUE_WORD as CONTINUE, MAX_BATCH, NO_POST, SETUP_CLIENT};
use blk::{Op, Request, Response, Status, BLOCK_SIZE};
use heapless::Vec;

use crate::{DiskState, Event, Server, Wake};

/// Requests in flight through chains at once, in all disks. A power of
/// two: a slot number is masked into the table (`% MAX_SLOTS`) rather than
/// bounds-checked on the hot paths.
pub const MAX_SLOTS: usize = 128;
const _: () = assert!(MAX_SLOTS.is_power_of_two() && MAX_SLOTS <= 256);
/// Slots only redirects and side I/O may take (`Table::free_for_clients`):
/// one for each step of the longest line of requests waiting for each
/// other (a redirect along each link of a line of disks, a side I/O at
/// each), so that one such line can always finish.
const RESERVED: usize = 2 * blk::config::MAX_DISKS;
/// The tag of a request that has slot `s` is `SLOT_TAG + s`.
pub const SLOT_TAG: u32 = 0x1_0000;

/// How the server reaches its filters: one upcall with `n` entries written
/// in filter `f`'s call page, lending `lends`. The PD shell makes the PPC;
/// host tests run model filters.
pub trait Upcalls {
    /// `Ok` if the filter answered the upcall properly.
    fn call(&mut self, filter: usize, n: usize, lends: &[abi::Lend]) -> Result<(), CallError>;

    /// One setup call to filter `filter` with message registers `mrs`
    /// (`blk::filter::SetupCall`); its reply's registers
    /// (`blk::filter::SetupStep`). Only filters that declared the setup
    /// hook are called.
    fn setup(&mut self, filter: usize, mrs: [u64; blk::filter::SETUP_MRS]) -> Result<[u64; 4], CallError> {
        let _ = (filter, mrs);
        Err(CallError::Refused(0))
    }
}

/// Why an upcall failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The filter faulted or ran past its budget (the kernel stopped it).
    Stopped,
    /// It answered with the wrong label or count.
    BadReply,
    /// The kernel refused the call (a lend or channel the system does not
    /// allow: a configuration error).
    Refused(u64),
}

/// A server with no filters to call.
pub struct NoFilters;

impl Upcalls for NoFilters {
    fn call(&mut self, _: usize, _: usize, _: &[abi::Lend]) -> Result<(), CallError> {
        Err(CallError::Refused(0))
    }
}

/// Per-filter statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    pub upcalls: u64,
    /// Requests seen in pre-ops and post-ops.
    pub pre: u64,
    pub post: u64,
    /// Verdicts: continue, substitute, complete, fail.
    pub verdicts: [u64; 4],
    /// The verdicts that move a request elsewhere: remap, redirect, side
    /// I/O.
    pub moved: [u64; 3],
    /// Bad verdicts, failed upcalls, and requests failed because the
    /// filter was stopped.
    pub errors: u64,
    /// Bytes of data in the reads and writes it was called for, each
    /// request once (at its first call: a filter with no pre-op for it
    /// counts it in its post-op).
    pub bytes: u64,
}

impl FilterStats {
    /// The end of its statistics line: `; moved: R remapped, D redirected,
    /// S side I/O` for a filter that gave such verdicts, else nothing (the
    /// line of any other filter stays as it was).
    pub fn moved_text(&self) -> MovedText {
        MovedText(self.moved)
    }
}

/// See [`FilterStats::moved_text`].
pub struct MovedText([u64; 3]);

impl core::fmt::Display for MovedText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            [0, 0, 0] => Ok(()),
            [remap, redirect, side] => write!(f, "; moved: {remap} remapped, {redirect} redirected, {side} side I/O"),
        }
    }
}

/// A filter, as the server keeps it.
pub struct Filter<'a> {
    pub name: &'a str,
    pub config: &'a ServerFilter,
    /// Our disk index.
    disk: usize,
    /// Whether it can be called (not stopped by a fault).
    pub alive: bool,
    /// Requests the last failed upcall had (for the fault message).
    pub failed_last: u32,
    /// Restarts since its last successful upcall.
    pub restarts: u32,
    pub stats: FilterStats,
    /// Its call page, written and read a word at a time.
    page: CallPage<'a>,
    /// What it offers the filters and clients above, once set up: blocks
    /// `first .. first + blocks` of the disk below it (see the setup
    /// dialogue in `blk::filter`).
    pub window: Window,
    /// Blocks of the disk below it, once set up.
    pub below: u64,
    /// It offers a view of its own making (`SetupStep::Own`): every read
    /// and write it lets go down must land inside the disk below.
    pub own: bool,
}

/// Blocks `first .. first + blocks` of the disk below a filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub first: u64,
    pub blocks: u64,
}

impl<'a> Filter<'a> {
    pub fn new(config: &'a ServerFilter, disk: usize, calls: blk::Shared<'a>) -> Option<Filter<'a>> {
        Some(Filter {
            name: field_str(&config.name),
            config,
            disk,
            alive: true,
            failed_last: 0,
            restarts: 0,
            stats: FilterStats::default(),
            page: CallPage::new(calls)?,
            window: Window::default(),
            below: 0,
            own: false,
        })
    }

    /// Our index of its disk.
    pub fn disk(&self) -> usize {
        self.disk
    }

    /// Whether it declared the setup dialogue.
    pub fn wants_setup(&self) -> bool {
        self.config.hooks & blk::filter::SETUP_HOOK != 0
    }

    fn wants(&self, hook: Hook, op: Op) -> bool {
        let narrowed = match hook {
            Hook::Pre => self.config.pre_ops,
            Hook::Post => self.config.post_ops,
        };
        let ops = if narrowed == 0 { self.config.ops } else { self.config.ops & narrowed };
        self.config.hooks & hook.bit() != 0 && ops & blk::filter::op_bit(op) != 0
    }

    #[inline(always)]
    fn word(&self, i: usize, w: usize) -> u64 {
        self.page.word(i, w)
    }

}

/// One request in flight through a chain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    client: u8,
    /// Our index of the disk whose chain it travels.
    pub(crate) disk: u8,
    op: Op,
    /// Bit p: the filter at position p substituted (`sub[p]` holds where);
    /// its pre-op left a state (`state[p]`). Only those entries are valid.
    subbed: u8,
    stated: u8,
    /// Bit p: the filter at position p may get its post-op: the positions
    /// at and below the level it entered the chain at (the filters above
    /// never see it, and it is answered when it gets back there), less
    /// those whose pre-op said they need none for it (`NO_POST`).
    posts: u8,
    id: u32,
    count: u32,
    done: u32,
    status: Status,
    /// The first block, in the view at the top of the chain (wrapping: a
    /// request that entered lower may start "above" it); at level p it is
    /// `block + Chain::base[p]`.
    block: u64,
    /// Offset of its buffer in the client's data region.
    data_offset: u64,
    /// Word 0 of its call-page entries, without hook and position.
    head: u64,
    /// Per position: the offset in that filter's bounce buffer it
    /// substituted.
    sub: [u32; MAX_CHAIN],
    /// Per position: the state word its pre-op left.
    state: [u64; MAX_CHAIN],
    /// Bit p: the filter at position p remapped it to block `remap[p]` of
    /// the disk below it (the view at level p + 1).
    remapped: u8,
    remap: [u64; MAX_CHAIN],
    /// Where its data is above every substitute of its chain: the client
    /// `data_client`'s buffer at `data_offset`, or, if `data_filter` is
    /// not `NONE`, that filter's bounce buffer at `data_offset` (a request
    /// redirected from a chain where a filter had substituted).
    data_client: u8,
    data_filter: u8,
    /// A request a filter of another level or chain started for it (a
    /// redirect, a side I/O): that request's slot + 1; 0 = none.
    parent: u8,
    /// Bits 32..64 of word 4 of its next entry: the completion of its
    /// filter's side I/O when that filter is called again.
    side: u64,
    /// What a filter asked for it that needs a slot of its own (see
    /// `Want`), while it waits for one and until that is done.
    want: Want,
}

/// A redirect or side I/O a filter asked for a request (`Slot::want`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Want {
    kind: WantKind,
    /// The disk and position of the filter that asked, and its hook.
    disk: u8,
    position: u8,
    hook: Hook,
    /// Redirect: our disk index of the linked disk; side I/O: the op.
    target: u8,
    op: Op,
    count: u32,
    /// The block: of the linked disk, or of the disk below the filter.
    block: u64,
    /// Side I/O: the byte offset in the filter's bounce buffer.
    offset: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WantKind {
    None,
    Redirect,
    SideIo,
}

impl Want {
    const NONE: Want = Want { kind: WantKind::None, disk: 0, position: 0, hook: Hook::Pre, target: 0, op: Op::Read, count: 0, block: 0, offset: 0 };
}

/// `Slot::data_filter` when its data is a client's.
const NONE: u8 = 0xff;
/// The client number of a request started for another (`Slot::parent`):
/// it is answered to that request, not to a client.
pub(crate) const LINK_CLIENT: u8 = 0xfe;

impl Slot {
    const EMPTY: Slot = Slot {
        client: 0,
        disk: 0,
        op: Op::Read,
        subbed: 0,
        stated: 0,
        posts: 0,
        id: 0,
        count: 0,
        done: 0,
        status: Status::Ok,
        block: 0,
        data_offset: 0,
        head: 0,
        sub: [0; MAX_CHAIN],
        state: [0; MAX_CHAIN],
        remapped: 0,
        remap: [0; MAX_CHAIN],
        data_client: 0,
        data_filter: NONE,
        parent: 0,
        side: 0,
        want: Want::NONE,
    };

    /// The state its pre-op at position `p` left (0 if none).
    fn state_at(&self, p: usize) -> u64 {
        if self.stated & 1 << p != 0 {
            self.state[p]
        } else {
            0
        }
    }
}

/// The in-flight table: slots and the free list.
/// (`repr(C)`, the slots last: the small fields every pass looks at stay
/// within an immediate offset of the table.)
#[repr(C)]
pub(crate) struct Table {
    /// A request moved between chains, or back to a level already served,
    /// in this pass: run the chains again.
    pub(crate) moved: bool,
    /// A disk became ready (or known to have no device) that a disk whose
    /// filters link to it waits for: the run loop looks at the disks again.
    pub(crate) relook: bool,
    /// Restarted filters (a bit per filter): in the low half those not yet
    /// called again (`Server::resume`); in the high half ([`RESETUP`]) those
    /// with the setup hook whose disk was being set up (for another filter)
    /// when they came back, set up again once it is ready
    /// (`Server::set_up_again`). (One word: a pass tests both at once.)
    pub(crate) restarted: u64,
    /// Requests waiting for a slot for their redirect or side I/O (their
    /// `want`), first come first served.
    spawn: Queue,
    pub(crate) free: Vec<u8, MAX_SLOTS>,
    pub(crate) slots: [Slot; MAX_SLOTS],
}

impl Table {
    pub(crate) fn new() -> Table {
        let mut free = Vec::new();
        for s in (0..MAX_SLOTS as u8).rev() {
            let _ = free.push(s);
        }
        Table { slots: [Slot::EMPTY; MAX_SLOTS], free, spawn: Queue::EMPTY, moved: false, relook: false, restarted: 0 }
    }

    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Slots a client's request may take: all but `RESERVED`, which are
    /// kept for redirects and side I/O, so that requests waiting for those
    /// can always go on.
    pub(crate) fn free_for_clients(&self) -> usize {
        self.free.len().saturating_sub(RESERVED)
    }
}

/// A queue of slots, first in first out: a ring, so taking a batch off
/// its front moves nothing. Its indices count on, wrapping at 256 (a
/// multiple of its size); it never holds more than the table has, as a
/// slot is in at most one queue at a time.
#[derive(Clone, Copy)]
struct Queue {
    items: [u8; MAX_SLOTS],
    head: u8,
    tail: u8,
}

impl Queue {
    const EMPTY: Queue = Queue { items: [0; MAX_SLOTS], head: 0, tail: 0 };

    #[inline(always)]
    fn push(&mut self, s: u8) {
        debug_assert!(self.len() < MAX_SLOTS);
        self.items[self.tail as usize % MAX_SLOTS] = s;
        self.tail = self.tail.wrapping_add(1);
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// The `i`th from the front (`i < len`).
    #[inline(always)]
    fn get(&self, i: usize) -> u8 {
        self.items[(self.head as usize + i) % MAX_SLOTS]
    }

    /// Drop the first `n` (at most all).
    #[inline(always)]
    fn drop_front(&mut self, n: usize) {
        self.head = self.head.wrapping_add(n.min(self.len()) as u8);
    }

    #[inline(always)]
    fn clear(&mut self) {
        self.head = self.tail;
    }

    /// As [`Queue::take_batch`], but no more than `cap` blocks in all
    /// (`blocks` of a slot; the first is taken whatever its size).
    fn take_batch_within(&mut self, batch: &mut [u8; MAX_BATCH], cap: u32, blocks: impl Fn(u8) -> u32) -> usize {
        let (mut n, mut sum) = (0, 0u32);
        while n < self.len().min(MAX_BATCH) {
            let s = self.get(n);
            sum = sum.saturating_add(blocks(s));
            if n > 0 && sum > cap {
                break;
            }
            batch[n] = s;
            n += 1;
        }
        self.drop_front(n);
        n
    }

    /// Move up to `MAX_BATCH` from the front into `batch`; how many.
    #[inline(always)]
    fn take_batch(&mut self, batch: &mut [u8; MAX_BATCH]) -> usize {
        let n = self.len().min(MAX_BATCH);
        // (A plain loop: batches are mostly short, and a vectorised copy
        // of a ring that may wrap costs more in its set-up than it saves.)
        let mut i = 0;
        while i < n {
            batch[i] = self.items[(self.head as usize + i) % MAX_SLOTS];
            i += 1;
        }
        self.drop_front(n);
        n
    }
}

/// One disk's chain: its filters (indices into `Server::filters`) and the
/// queue of each level.
pub struct Chain {
    pub filters: Vec<u8, MAX_CHAIN>,
    /// Per operation (its raw value): bit p set if the filter at position
    /// p wants its pre-op (`pre_at`) or its post-op (`post_at`).
    pre_at: [u8; 8],
    post_at: [u8; 8],
    /// Per position: the most blocks one upcall to its filter may carry
    /// (`ServerFilter::max_blocks`; 0: no limit).
    cap: [u32; MAX_CHAIN],
    /// Bit p: `pre[p]` holds requests; bit `POST + p`: `post[p]` does; so
    /// an idle chain costs a pass one test.
    waiting: u32,
    /// Per level p (0..=n, n = the device): how far the view at level p is
    /// shifted from the view at the top: the sum of the windows' first
    /// blocks of the filters above p.
    base: [u64; MAX_CHAIN + 1],
    pre: [Queue; MAX_CHAIN],
    post: [Queue; MAX_CHAIN],
    /// Ready for the driver.
    down: Queue,
    /// Ready to be answered.
    up: Queue,
}

/// Where the bits of filters waiting to be set up again start in
/// `Table::restarted`.
pub(crate) const RESETUP: usize = 32;
const _: () = assert!(blk::config::MAX_FILTERS <= RESETUP);

/// Where the post-op queues' bits start in `Chain::waiting`.
const POST: usize = 8;
const _: () = assert!(MAX_CHAIN <= POST);

impl Chain {
    /// The chain of `filters` (indices into `all`), in chain order.
    pub fn new(filters: Vec<u8, MAX_CHAIN>, all: &[Filter<'_>]) -> Chain {
        let (mut pre_at, mut post_at) = ([0u8; 8], [0u8; 8]);
        let mut cap = [0; MAX_CHAIN];
        for (p, &f) in filters.iter().enumerate() {
            cap[p % MAX_CHAIN] = all[f as usize].config.max_blocks();
            for op in Op::ALL {
                pre_at[op.raw() as usize] |= u8::from(all[f as usize].wants(Hook::Pre, op)) << p;
                post_at[op.raw() as usize] |= u8::from(all[f as usize].wants(Hook::Post, op)) << p;
            }
        }
        Chain {
            filters,
            pre_at,
            post_at,
            cap,
            waiting: 0,
            base: [0; MAX_CHAIN + 1],
            pre: [Queue::EMPTY; MAX_CHAIN],
            post: [Queue::EMPTY; MAX_CHAIN],
            down: Queue::EMPTY,
            up: Queue::EMPTY,
        }
    }

    /// Work out each level's shift from the filters' windows (`all`: every
    /// filter of the server).
    pub(crate) fn set_windows(&mut self, all: &[Filter<'_>]) {
        let mut shift = 0u64;
        for (p, &f) in self.filters.iter().enumerate() {
            self.base[p] = shift;
            shift = shift.wrapping_add(all.get(f as usize).map_or(0, |f| f.window.first));
        }
        self.base[self.filters.len()] = shift;
    }

    /// The top view's block `block` at level `p`.
    #[inline(always)]
    pub(crate) fn block_at(&self, block: u64, p: usize) -> u64 {
        block.wrapping_add(self.base[p % (MAX_CHAIN + 1)])
    }

    /// Where request `slot` is at level `p`: its own block in the view
    /// there, or, below a filter that remapped it, the block that filter
    /// gave (shifted by the windows in between).
    #[inline(always)]
    pub(crate) fn slot_block(&self, slot: &Slot, p: usize) -> u64 {
        match u32::from(slot.remapped) & ((1u32 << p.min(8)) - 1) {
            0 => self.block_at(slot.block, p),
            m => {
                let r = (31 - m.leading_zeros() as usize) % MAX_CHAIN;
                slot.remap[r].wrapping_add(self.base(p)).wrapping_sub(self.base(r + 1))
            }
        }
    }

    /// The shift of level `p` (see `base`).
    pub(crate) fn base(&self, p: usize) -> u64 {
        self.base[p % (MAX_CHAIN + 1)]
    }

    /// Slot `s` (operation `op`) goes down from position `from`: to the
    /// first filter at or below it that wants its pre-op, else to the
    /// driver.
    #[inline(always)]
    pub(crate) fn push_down(&mut self, s: u8, op: Op, from: usize) {
        let below = u32::from(self.pre_at[op.raw() as usize % 8]) >> from.min(8) << from.min(8);
        match below.trailing_zeros() as usize {
            p if p < MAX_CHAIN => {
                self.pre[p].push(s);
                self.waiting |= 1 << p;
            }
            _ => self.down.push(s),
        }
    }

    /// Slot `s` goes up from just above position `below` (the filters at
    /// positions under `below` are done with it): to the nearest filter
    /// above that wants its post-op and is among its `posts` (`Slot::posts`:
    /// not above where it entered, not one that said `NO_POST`), else to be
    /// answered.
    #[inline(always)]
    pub(crate) fn push_up(&mut self, s: u8, op: Op, below: usize, posts: u8) {
        let above = u32::from(self.post_at[op.raw() as usize % 8]) & ((1u32 << below.min(8)) - 1) & u32::from(posts);
        match above {
            0 => self.up.push(s),
            m => {
                let p = (31 - m.leading_zeros() as usize) % MAX_CHAIN;
                self.post[p].push(s);
                self.waiting |= 1 << (POST + p);
            }
        }
    }

    /// Slot `s` goes back into the queue of `hook` at position `p`: its
    /// filter is called again for it.
    fn again(&mut self, s: u8, hook: Hook, p: usize) {
        let p = p % MAX_CHAIN;
        match hook {
            Hook::Pre => {
                self.pre[p].push(s);
                self.waiting |= 1 << p;
            }
            Hook::Post => {
                self.post[p].push(s);
                self.waiting |= 1 << (POST + p);
            }
        }
    }

    /// Whether nothing waits anywhere in the chain.
    #[inline(always)]
    fn idle(&self) -> bool {
        self.waiting == 0 && self.down.is_empty() && self.up.is_empty()
    }

    /// The deepest position whose post-op queue holds requests.
    #[inline(always)]
    fn deepest_post(&self) -> Option<usize> {
        let m = self.waiting >> POST;
        (m != 0).then(|| 31 - m.leading_zeros() as usize)
    }

    /// The highest position whose pre-op queue holds requests.
    #[inline(always)]
    fn highest_pre(&self) -> Option<usize> {
        let m = self.waiting & ((1 << POST) - 1);
        (m != 0).then(|| m.trailing_zeros() as usize)
    }
}

/// Start `slot` for client `c`'s request `req` (checked; `op` as the chain
/// sees it), its blocks shifted by `first` (the client's partition), as
/// it enters the chain at level `entry` (whose shift is `base`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(slot: &mut Slot, c: usize, req: &Request, op: Op, first: u64, entry: usize, base: u64) {
    let count = if op.moves_data() { req.count } else { 0 };
    // Field by field: the per-position arrays are read only where the
    // masks say.
    slot.client = c as u8;
    slot.op = op;
    slot.subbed = 0;
    slot.stated = 0;
    slot.remapped = 0;
    slot.posts = 0xffu8.checked_shl(entry as u32).unwrap_or(0);
    slot.id = req.id;
    slot.count = count;
    slot.block = req.block.wrapping_add(first).wrapping_sub(base);
    slot.data_offset = req.data_offset;
    slot.data_client = c as u8;
    slot.data_filter = NONE;
    slot.parent = 0;
    slot.side = 0;
    slot.head = (op.raw() as u64) << 8 | (c as u64) << 16 | (count as u64) << 32;
}

/// Start `slot` for a setup step or side I/O of the filter at position
/// `p`: `count` blocks at `block` of the disk below it, into or out of its
/// bounce buffer at `offset` (as if it had substituted), entering the
/// chain just below it (`base`: the shift of that level). `parent`: the
/// request the side I/O is for (its slot + 1), 0 for a setup step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_setup(slot: &mut Slot, p: usize, op: Op, block: u64, count: u32, offset: u64, base: u64, parent: u8) {
    let p = p % MAX_CHAIN;
    *slot = Slot::EMPTY;
    slot.client = if parent == 0 { SETUP_CLIENT } else { LINK_CLIENT };
    slot.parent = parent;
    slot.op = op;
    slot.subbed = 1 << p;
    slot.sub[p] = offset as u32;
    slot.posts = 0xffu8.checked_shl(p as u32 + 1).unwrap_or(0);
    slot.count = count;
    slot.block = block.wrapping_sub(base);
    slot.head = (op.raw() as u64) << 8 | (SETUP_CLIENT as u64) << 16 | (count as u64) << 32;
}

/// The driver's answer to `slot`'s request; returns its operation and
/// the positions whose post-op it may get.
#[inline(always)]
pub(crate) fn answered(slot: &mut Slot, status: Result<Status, blk::UnknownStatus>, count: u32) -> (Op, u8) {
    slot.status = status.unwrap_or(Status::IoError);
    slot.done = count.min(slot.count);
    (slot.op, slot.posts)
}

/// The data of a request at one level: where a grant of it comes from.
enum Buffer {
    /// Client `client`'s buffer at `offset`.
    Client { client: u8, offset: u64 },
    /// The bounce buffer of the server's filter `filter`.
    Bounce { filter: u8, offset: u64 },
}

impl<'a> Server<'a> {
    /// Slot `s` goes down from position `from`: to the first filter at or
    /// below it that wants its pre-op, else to the driver.
    fn down_from(&mut self, d: usize, s: u8, from: usize) {
        let op = self.table.slots[s as usize % MAX_SLOTS].op;
        if let Some(chain) = self.disks[d].chain.as_mut() {
            chain.push_down(s, op, from);
        }
    }

    /// Slot `s` goes up from just above position `below` (the filters at
    /// positions under `below` are done with it): to the nearest filter
    /// above that wants its post-op, else to be answered.
    fn up_from(&mut self, d: usize, s: u8, below: usize) {
        let slot = &self.table.slots[s as usize % MAX_SLOTS];
        let (op, posts) = (slot.op, slot.posts);
        if let Some(chain) = self.disks[d].chain.as_mut() {
            chain.push_up(s, op, below, posts);
        }
    }

    /// Run disk `d`'s chain until nothing moves: the post-ops of what came
    /// back (from the bottom up), answers, then the pre-ops of what came in
    /// (from the top down), and the driver's share of what reached the
    /// bottom. Returns the clients it answered (bit c).
    pub(crate) fn run_chain(&mut self, d: usize, wake: &mut Wake, up: &mut impl Upcalls, log: &mut impl FnMut(Event)) -> u32 {
        let Some(chain) = self.disks[d].chain.as_ref() else { return 0 };
        if chain.idle() {
            return 0;
        }
        // A post-op only sends requests up (to shallower queues) and a
        // pre-op only down, so serving the deepest post (the highest pre)
        // first serves each queue once.
        while let Some(p) = self.disks[d].chain.as_ref().and_then(Chain::deepest_post) {
            self.serve_level(d, p, Hook::Post, up, log);
        }
        let answers = |server: &Self| server.disks[d].chain.as_ref().is_some_and(|c| !c.up.is_empty());
        let mut answered = if answers(self) { self.answer(d, wake) } else { 0 };
        while let Some(p) = self.disks[d].chain.as_ref().and_then(Chain::highest_pre) {
            self.serve_level(d, p, Hook::Pre, up, log);
        }
        // Pre-ops that completed or failed requests left posts and answers.
        while let Some(p) = self.disks[d].chain.as_ref().and_then(Chain::deepest_post) {
            self.serve_level(d, p, Hook::Post, up, log);
        }
        if answers(self) {
            answered |= self.answer(d, wake);
        }
        if self.disks[d].chain.as_ref().is_some_and(|c| !c.down.is_empty()) {
            self.send_down(d, wake);
        }
        answered
    }

    /// Serve level `p`'s queue for `hook`, a batch per upcall.
    fn serve_level(&mut self, d: usize, p: usize, hook: Hook, up: &mut impl Upcalls, log: &mut impl FnMut(Event)) {
        let mut batch = [0u8; MAX_BATCH];
        loop {
            let Server { disks, table, .. } = self;
            let Some(chain) = disks[d].chain.as_mut() else { return };
            let p = p % MAX_CHAIN;
            // (A filter whose manifest says what a block costs it gets no
            // more blocks an upcall than its budget pays for.)
            let cap = chain.cap[p];
            let (queue, bit) = match hook {
                Hook::Pre => (&mut chain.pre[p], 1 << p),
                Hook::Post => (&mut chain.post[p], 1 << (POST + p)),
            };
            let n = match cap {
                0 => queue.take_batch(&mut batch),
                cap => queue.take_batch_within(&mut batch, cap, |s| table.slots[s as usize % MAX_SLOTS].count),
            };
            // (The upcall adds to other queues only: once this one is
            // drained, it stays so.)
            let drained = queue.is_empty();
            if drained {
                chain.waiting &= !bit;
            }
            if n == 0 {
                return;
            }
            let f = chain.filters.get(p).copied().unwrap_or(0) as usize;
            let base = chain.base(p);
            self.upcall(d, p, f, hook, base, &batch[..n], up, log);
            if drained {
                return;
            }
        }
    }

    /// One upcall to filter `f` (position `p` of disk `d`) with `batch`,
    /// and what its verdicts do to each request. The entries are written a
    /// word at a time, and a plain continue is read back with one load:
    /// with a batch of 32 this loop is most of what a filter costs.
    /// (Out of line: `serve_level` stays a small loop, and a wake-up with
    /// no upcall to make pays nothing for this.)
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn upcall(&mut self, d: usize, p: usize, f: usize, hook: Hook, base: u64, batch: &[u8], up: &mut impl Upcalls, log: &mut impl FnMut(Event)) {
        if !self.filters[f].alive {
            self.filters[f].stats.errors += batch.len() as u64;
            for &s in batch {
                self.fail_at(d, s, p, hook);
            }
            return;
        }
        let mut lends: Vec<abi::Lend, MAX_BATCH> = Vec::new();
        {
            let Server { filters, table, disks, .. } = self;
            let chain = disks[d].chain.as_ref();
            let filter = &mut filters[f];
            let cfg = filter.config;
            let page = filter.page;
            let position = (hook as u64) | (p as u64) << 24;
            let mut bytes = 0;
            let members = chain.map_or(&[][..], |c| &c.filters[..]);
            for (i, &s) in batch.iter().enumerate() {
                let slot = &mut table.slots[s as usize % MAX_SLOTS];
                // (A side I/O's completion is told once, to the call after
                // it; only then is a pre-op called with a state.)
                let side = slot.side;
                if side != 0 {
                    slot.side = 0;
                }
                let slot = &*slot;
                let mut grant = 0;
                if cfg.rights != 0 && slot.op.moves_data() {
                    if let Some(l) = lend_for(slot, p, members, cfg) {
                        grant = lends.len() as u64 + 1;
                        let _ = lends.push(l);
                    }
                }
                let block = match chain {
                    Some(chain) if slot.remapped != 0 => chain.slot_block(slot, p),
                    _ => slot.block.wrapping_add(base),
                };
                // Words 0-6 in one run; the verdict (6) starts clear.
                // (Its first call for this request: no call before it left
                // a state.)
                if slot.stated & 1 << p == 0 {
                    bytes += u64::from(slot.count) * u64::from(BLOCK_SIZE);
                }
                let (w3, w4, w5) = match hook {
                    Hook::Pre => (u64::from(s), side, if side != 0 { slot.state_at(p) } else { 0 }),
                    Hook::Post => (u64::from(s) | (slot.status.raw() as u64) << 32, u64::from(slot.done) | side, slot.state_at(p)),
                };
                page.set_words(i, 0, &[slot.head | position, block, grant, w3, w4, w5, 0]);
            }
            let stats = &mut filter.stats;
            stats.upcalls += 1;
            stats.bytes += bytes;
            match hook {
                Hook::Pre => stats.pre += batch.len() as u64,
                Hook::Post => stats.post += batch.len() as u64,
            }
        }
        if let Err(e) = up.call(f, batch.len(), &lends) {
            let filter = &mut self.filters[f];
            filter.stats.errors += batch.len() as u64;
            filter.failed_last = batch.len() as u32;
            if e == CallError::Stopped {
                filter.alive = false;
            }
            log(Event::FilterFailed { filter: f, error: e, requests: batch.len() as u32 });
            for &s in batch {
                self.fail_at(d, s, p, hook);
            }
            return;
        }
        // The verdicts: a plain continue here, the rest (few) after.
        let mut other: Vec<(u8, u8, u64), MAX_BATCH> = Vec::new();
        {
            let Server { filters, table, disks, .. } = self;
            let filter = &mut filters[f];
            filter.restarts = 0;
            let page = filter.page;
            // (A filter with a view of its own sends nothing down unmapped
            // without a check: `verdict` does it.)
            let own = filter.own && hook == Hook::Pre;
            let Some(chain) = disks[d].chain.as_mut() else { return };
            let mut continued = 0;
            for (i, &s) in batch.iter().enumerate() {
                let w6 = page.word(i, 6);
                if w6 != CONTINUE || own {
                    let _ = other.push((i as u8, s, w6));
                    continue;
                }
                continued += 1;
                let slot = &mut table.slots[s as usize % MAX_SLOTS];
                if hook == Hook::Pre {
                    slot.state[p % MAX_CHAIN] = page.word(i, 5);
                    slot.stated |= 1 << p;
                    chain.push_down(s, slot.op, p + 1);
                } else {
                    chain.push_up(s, slot.op, p, slot.posts);
                }
            }
            filter.stats.verdicts[0] += continued;
        }
        for &(i, s, w6) in &other {
            self.verdict(d, p, f, hook, i as usize, s, w6);
        }
    }

    /// A verdict other than a plain continue: checked against the request,
    /// and applied.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn verdict(&mut self, d: usize, p: usize, f: usize, hook: Hook, i: usize, s: u8, w6: u64) {
        let filter = &self.filters[f];
        let (w5, w7) = (filter.word(i, 5), filter.word(i, 7));
        let (bounce, below, own) = (filter.config.bounce.size, filter.below, filter.own);
        let slot = &self.table.slots[s as usize % MAX_SLOTS];
        let io = Io { hook, op: slot.op, client: slot.client, position: p as u8, block: 0, count: slot.count, grant: 0, id: u32::from(s), state: 0, side: None };
        // Where a read or write would land below: a remap's block, or, for
        // a filter with a view of its own, the request's own block; it must
        // be inside the disk below.
        let inside = |block: u64| block.checked_add(u64::from(slot.count)).is_some_and(|end| end <= below);
        let verdict = Entry::verdict([w6, w7], &io, bounce).and_then(|v| match v {
            Verdict::Remap { block } if !inside(block) => Err(blk::filter::VerdictError::BadSubstitute),
            Verdict::SideIo { op, block, count, .. } if op.moves_data() && block.checked_add(u64::from(count)).is_none_or(|end| end > below) => {
                Err(blk::filter::VerdictError::BadSideIo)
            }
            Verdict::Continue if own && hook == Hook::Pre && slot.op.moves_data() => {
                let block = self.disks[d].chain.as_ref().map_or(u64::MAX, |c| c.slot_block(slot, p + 1));
                if inside(block) {
                    Ok(v)
                } else {
                    Err(blk::filter::VerdictError::BadSubstitute)
                }
            }
            v => Ok(v),
        });
        // A redirect: along one of the filter's links, inside the linked
        // disk (as its clients see it).
        let linked = match verdict {
            Ok(Verdict::Redirect { link, block }) => {
                let target = filter.config.links.get(link as usize).copied().unwrap_or(blk::config::NO_LINK);
                let ours = self.disks.iter().position(|disk| disk.index == target as usize);
                let fits = |disk: &crate::Disk<'_>| !slot.op.moves_data() || block.checked_add(u64::from(slot.count)).is_some_and(|end| end <= disk.view);
                match ours {
                    Some(t) if fits(&self.disks[t]) => Some(t),
                    _ => {
                        let stats = &mut self.filters[f].stats;
                        stats.errors += 1;
                        let slot = &mut self.table.slots[s as usize % MAX_SLOTS];
                        (slot.status, slot.done) = (Status::IoError, 0);
                        return self.up_from(d, s, p);
                    }
                }
            }
            _ => None,
        };
        let stats = &mut self.filters[f].stats;
        let slot = &mut self.table.slots[s as usize % MAX_SLOTS];
        let Ok(v) = verdict else {
            stats.errors += 1;
            (slot.status, slot.done) = (Status::IoError, 0);
            return self.up_from(d, s, p);
        };
        match v {
            Verdict::Remap { .. } => stats.moved[0] += 1,
            Verdict::Redirect { .. } => stats.moved[1] += 1,
            Verdict::SideIo { .. } => stats.moved[2] += 1,
            Verdict::Substitute { .. } => stats.verdicts[1] += 1,
            Verdict::Complete { .. } => stats.verdicts[2] += 1,
            Verdict::Fail(_) => stats.verdicts[3] += 1,
            _ => stats.verdicts[0] += 1,
        }
        if hook == Hook::Pre || matches!(v, Verdict::Redirect { .. } | Verdict::SideIo { .. }) {
            slot.state[p] = w5;
            slot.stated |= 1 << p;
        }
        // (A pre-op called again after its side I/O says it then.)
        if hook == Hook::Pre && w6 & NO_POST != 0 && !matches!(v, Verdict::SideIo { .. }) {
            slot.posts &= !(1u8 << (p % 8));
        }
        let want = Want { kind: WantKind::None, disk: d as u8, position: p as u8, hook, target: 0, op: slot.op, count: slot.count, block: 0, offset: 0 };
        match (hook, v) {
            (_, Verdict::Redirect { block, .. }) => {
                slot.want = Want { kind: WantKind::Redirect, target: linked.unwrap_or(0) as u8, block, ..want };
                self.table.spawn.push(s);
                self.table.moved = true;
            }
            (_, Verdict::SideIo { op, block, count, page }) => {
                slot.want = Want { kind: WantKind::SideIo, op, count, block, offset: u32::from(page) * BLOCK_SIZE, ..want };
                self.table.spawn.push(s);
                self.table.moved = true;
            }
            (Hook::Pre, Verdict::Continue) => self.down_from(d, s, p + 1),
            (Hook::Pre, Verdict::Substitute { offset }) => {
                slot.sub[p] = offset as u32;
                slot.subbed |= 1 << p;
                self.down_from(d, s, p + 1);
            }
            (Hook::Pre, Verdict::Remap { block }) => {
                slot.remap[p] = block;
                slot.remapped |= 1 << p;
                self.down_from(d, s, p + 1);
            }
            (_, Verdict::Complete { status, count }) => {
                (slot.status, slot.done) = (status, count);
                self.up_from(d, s, p);
            }
            (_, Verdict::Fail(status)) => {
                (slot.status, slot.done) = (status, 0);
                self.up_from(d, s, p);
            }
            // Post: continue. (Substitute and redirect in a post-op never
            // pass `Entry::verdict`.)
            _ => self.up_from(d, s, p),
        }
    }

    /// Request `s` failed at filter position `p` (its upcall failed, or
    /// the filter is stopped): the filters above see `IoError`, and no
    /// side I/O completion meant for this filter.
    fn fail_at(&mut self, d: usize, s: u8, p: usize, _hook: Hook) {
        let slot = &mut self.table.slots[s as usize % MAX_SLOTS];
        (slot.status, slot.done, slot.side) = (Status::IoError, 0, 0);
        self.up_from(d, s, p);
    }

    /// Send what reached the bottom of disk `d`'s chain to its driver, as
    /// far as the driver has room.
    fn send_down(&mut self, d: usize, wake: &mut Wake) {
        let Server { disks, clients, filters, table, .. } = self;
        let disk = &mut disks[d];
        if disk.chain.as_ref().is_none_or(|c| c.down.is_empty()) {
            return;
        }
        let room = disk.room_now() as usize;
        let Some(chain) = disk.chain.as_mut() else { return };
        let n = room.min(chain.down.len());
        if n == 0 {
            return;
        }
        let Ok(mut ring) = disk.driver.requests.batch() else { return };
        let mut sent = 0;
        // Below every filter: a request no filter substituted or remapped
        // (the common case) is the client's buffer at the bottom shift.
        let bottom = chain.filters.len();
        let base = chain.base(bottom);
        for i in 0..n {
            let s = chain.down.get(i);
            let slot = &table.slots[s as usize % MAX_SLOTS];
            let addr = match buffer_at(slot, bottom, &chain.filters) {
                Buffer::Client { client, offset } => clients.get(client as usize).map_or(0, |c| c.data_paddr) + offset,
                Buffer::Bounce { filter, offset } => filters.get(filter as usize).map_or(0, |f| f.config.bounce.paddr) + offset,
            };
            let op = if slot.op.moves_data() { slot.op } else { Op::FlushCompleted };
            let block = if slot.remapped == 0 { slot.block.wrapping_add(base) } else { chain.slot_block(slot, bottom) };
            let req = Request::new(slot.id, op, block, slot.count, addr).with_tag(SLOT_TAG + u32::from(s));
            if ring.push(req).is_err() {
                break;
            }
            sent += 1;
        }
        drop(ring);
        chain.down.drop_front(sent);
        disk.outstanding += sent as u32;
        wake.notify_driver(disk.index, &mut disk.driver.requests);
    }

    /// Answer the requests that reached the top of disk `d`'s chain and
    /// free their slots, a batch per run of answers to one client (room
    /// for each was set aside when the request was taken). Returns the
    /// clients answered (bit c).
    fn answer(&mut self, d: usize, wake: &mut Wake) -> u32 {
        let Server { disks, clients, table, .. } = self;
        let disk = &mut disks[d];
        let Some(chain) = disk.chain.as_mut().filter(|c| !c.up.is_empty()) else { return 0 };
        let mut answered = 0u32;
        // Redirects and side I/O that came back (bit per slot).
        let mut returned = 0u128;
        let mut at = 0;
        while at < chain.up.len() {
            let s = chain.up.get(at);
            let slot = &table.slots[s as usize % MAX_SLOTS];
            let c = slot.client as usize;
            let Some(client) = clients.get_mut(c) else {
                if slot.parent != 0 {
                    // A redirect or side I/O: back to the request it was for.
                    returned |= 1 << (s as usize % MAX_SLOTS);
                    at += 1;
                    continue;
                }
                // A setup step's I/O: its filter hears how it went.
                disk.setup.last = Some(blk::filter::Completion { status: slot.status, count: slot.done });
                disk.setup.waiting = false;
                let _ = table.free.push(s);
                at += 1;
                continue;
            };
            let Ok(mut batch) = client.queue.responses.batch() else {
                // A client that corrupted its ring loses its own answers.
                while at < chain.up.len() && table.slots[chain.up.get(at) as usize % MAX_SLOTS].client as usize == c {
                    let _ = table.free.push(chain.up.get(at));
                    at += 1;
                }
                continue;
            };
            while at < chain.up.len() {
                let s = chain.up.get(at);
                let slot = &table.slots[s as usize % MAX_SLOTS];
                if slot.client as usize != c {
                    break;
                }
                let _ = batch.push(Response::new(slot.id, slot.status, slot.done));
                let _ = table.free.push(s);
                at += 1;
            }
            drop(batch);
            answered |= 1 << c;
        }
        chain.up.clear();
        for c in crate::bits(answered) {
            wake.notify_client(c, &mut clients[c].queue.responses);
        }
        if !table.spawn.is_empty() {
            // (Slots were freed: requests waiting for one may start.)
            table.moved = true;
        }
        while returned != 0 {
            let s = returned.trailing_zeros() as u8;
            returned &= returned - 1;
            self.returned(s);
        }
        answered
    }

    /// Start the redirects and side I/O waiting for a slot, as far as
    /// slots are free: each in a slot of its own, which goes down the
    /// linked disk's chain from the top (with the data as it stands at the
    /// filter that redirected) or down its own chain from just below the
    /// filter (with the filter's bounce buffer).
    #[inline(never)]
    fn spawn(&mut self) {
        // Each waiting request, in turn, if a slot is free to it: one
        // started `depth` requests deep takes a slot only if `RESERVED -
        // depth` stay free after it, so the line of requests it may start
        // in turn (a redirect along each link, a side I/O at each step)
        // can always finish, and requests waiting for each other never
        // hold every slot. The others wait, in order.
        for _ in 0..self.table.spawn.len() {
            let s = self.table.spawn.get(0);
            self.table.spawn.drop_front(1);
            let depth = self.depth(s) + 1;
            let c = match self.table.free() > RESERVED.saturating_sub(depth) {
                true => self.table.free.pop(),
                false => None,
            };
            let Some(c) = c else {
                self.table.spawn.push(s);
                continue;
            };
            self.table.moved = true;
            let parent = &self.table.slots[s as usize % MAX_SLOTS];
            let want = parent.want;
            let (op, count, data_client) = (parent.op, parent.count, parent.data_client);
            // The client the filters saw it come from (a setup step's or
            // side I/O's is `SETUP_CLIENT`).
            let seen = (parent.head >> 16) as u8;
            let (d, p) = (want.disk as usize % self.disks.len().max(1), want.position as usize);
            if want.kind == WantKind::SideIo {
                let Some(chain) = self.disks[d].chain.as_mut() else {
                    let _ = self.table.free.push(c);
                    continue;
                };
                let child = &mut self.table.slots[c as usize % MAX_SLOTS];
                start_setup(child, p, want.op, want.block, want.count, u64::from(want.offset), chain.base(p + 1), s + 1);
                child.disk = d as u8;
                chain.push_down(c, want.op, p + 1);
                continue;
            }
            let origin = match self.disks[d].chain.as_ref() {
                Some(chain) => buffer_at(parent, p, &chain.filters),
                None => Buffer::Client { client: parent.data_client, offset: parent.data_offset },
            };
            let t = want.target as usize;
            let target = self.disks.get_mut(t).filter(|disk| disk.state == DiskState::Ready && !disk.failed);
            let Some(chain) = target.and_then(|disk| disk.chain.as_mut()) else {
                // The linked disk has no device, or its chain failed.
                let _ = self.table.free.push(c);
                let status = if self.disks.get(t).is_some_and(|disk| disk.state == DiskState::Absent) { Status::NoDevice } else { Status::IoError };
                let slot = &mut self.table.slots[s as usize % MAX_SLOTS];
                (slot.status, slot.done, slot.want) = (status, 0, Want::NONE);
                self.up_from(d, s, p + 1);
                continue;
            };
            // Field by field, as `start` does: the per-position arrays are
            // read only where the masks say.
            let child = &mut self.table.slots[c as usize % MAX_SLOTS];
            child.client = LINK_CLIENT;
            child.disk = t as u8;
            child.parent = s + 1;
            child.op = op;
            child.count = count;
            child.block = want.block;
            (child.subbed, child.stated, child.remapped, child.posts, child.side) = (0, 0, 0, 0xff, 0);
            (child.id, child.done, child.status, child.want) = (0, 0, Status::Ok, Want::NONE);
            (child.data_client, child.data_filter, child.data_offset) = match origin {
                Buffer::Client { client, offset } => (client, NONE, offset),
                Buffer::Bounce { filter, offset } => (data_client, filter, offset),
            };
            // (The linked chain's filters see the client it came from.)
            child.head = (op.raw() as u64) << 8 | u64::from(seen) << 16 | u64::from(count) << 32;
            chain.push_down(c, op, 0);
        }
    }

    /// How many requests deep slot `s` is: 0 for a client's request or a
    /// setup step, 1 for a redirect or side I/O started for one, ...
    fn depth(&self, mut s: u8) -> usize {
        let mut depth = 0;
        while depth < MAX_SLOTS {
            match self.table.slots[s as usize % MAX_SLOTS].parent {
                0 => break,
                p => s = p - 1,
            }
            depth += 1;
        }
        depth
    }

    /// Redirect or side I/O `c` came back: free its slot and send the
    /// request it was for on. After a redirect, the request goes up as if
    /// it had completed below the filter that redirected it; after a side
    /// I/O, that filter's hook is called again.
    fn returned(&mut self, c: u8) {
        let child = &self.table.slots[c as usize % MAX_SLOTS];
        let (parent, status, done) = (child.parent, child.status, child.done);
        let _ = self.table.free.push(c);
        self.table.moved = true;
        let s = parent.wrapping_sub(1);
        let slot = &mut self.table.slots[s as usize % MAX_SLOTS];
        let want = core::mem::replace(&mut slot.want, Want::NONE);
        let (d, p) = (want.disk as usize, want.position as usize % MAX_CHAIN);
        match want.kind {
            WantKind::Redirect => {
                (slot.status, slot.done) = (status, done.min(slot.count));
                self.up_from(d, s, p + 1);
            }
            WantKind::SideIo => {
                slot.side = blk::filter::side_word(Some(blk::filter::Completion { status, count: done })) << 32;
                if let Some(chain) = self.disks.get_mut(d).and_then(|disk| disk.chain.as_mut()) {
                    chain.again(s, want.hook, p);
                }
            }
            WantKind::None => {}
        }
    }

    /// The server heard that filter child `child` faulted: report it, and
    /// restart it if it was declared so (at most 3 times in a row without
    /// an upcall it answered). Returns whether to restart it.
    pub fn filter_faulted(&mut self, child: usize, log: &mut impl FnMut(Event)) -> Option<usize> {
        let f = self.filters.iter().position(|f| f.config.child as usize == child)?;
        let filter = &mut self.filters[f];
        filter.alive = false;
        // (Not when it stopped in its disk's first setup: that disk failed
        // for good, and a restart would serve nothing.)
        let failed_disk = self.disks.get(filter.disk).is_some_and(|d| d.failed);
        let restart = filter.config.restart != 0 && filter.restarts < 3 && !failed_disk;
        log(Event::FilterStopped { filter: f, failed: filter.failed_last, restart });
        filter.failed_last = 0;
        if restart {
            filter.restarts += 1;
        }
        restart.then_some(f)
    }

    /// Filter `f` was restarted: call it again, once no request in flight
    /// holds anything of its earlier life (`resume`). A filter with the
    /// setup hook whose disk was ready is set up again first (see `setup`).
    pub fn filter_restarted(&mut self, f: usize) {
        if f < self.filters.len() {
            self.table.restarted |= 1 << f;
            self.resume(f);
        }
    }

    /// Try `resume` for every restarted filter not yet called again;
    /// whether one was. (Out of line and cold: the run loop pays one test
    /// for it.)
    #[cold]
    #[inline(never)]
    fn resume_waiting(&mut self) -> bool {
        let mut any = false;
        for f in crate::bits(self.table.restarted as u32) {
            any |= self.resume(f);
        }
        any
    }

    /// Filter `f`, restarted, is called again once no request in flight
    /// carries a substitute buffer of its or a state its pre-op left: its
    /// new life starts with its buffers its own (the device may still be
    /// reading a substitute the earlier life handed out) and is never told
    /// of a state it did not make. Until then every request that reaches
    /// it fails with `IoError` without a call, as while it was stopped.
    /// Returns whether it was resumed.
    fn resume(&mut self, f: usize) -> bool {
        let Some(filter) = self.filters.get(f) else { return false };
        let d = filter.disk();
        let position = self.disks[d].chain.as_ref().and_then(|c| c.filters.iter().position(|&g| g as usize == f));
        if let Some(p) = position {
            let mut free = 0u128;
            for &s in &self.table.free {
                free |= 1 << (s as usize % MAX_SLOTS);
            }
            let holds = |(s, slot): (usize, &Slot)| free & 1 << s == 0 && usize::from(slot.disk) == d && (slot.subbed | slot.stated) & (1 << p) != 0;
            if self.table.slots.iter().enumerate().any(holds) {
                return false;
            }
        }
        self.table.restarted &= !(1 << f);
        self.filters[f].alive = true;
        if self.filters[f].wants_setup() {
            self.set_up_again(f);
        }
        true
    }

    /// Run every disk's chain. Returns whether a client with a flush or
    /// barrier waiting for its earlier answers got answers: then its turn
    /// must come again before the server waits.
    #[inline(never)]
    pub(crate) fn run_chains(&mut self, wake: &mut Wake, up: &mut impl Upcalls, log: &mut impl FnMut(Event)) -> bool {
        let mut answered = 0;
        let mut again = false;
        loop {
            for d in 0..self.disks.len() {
                if self.disks[d].chain.is_some() {
                    if self.disks[d].state == DiskState::Setup {
                        self.setup_chain(d, up, wake, log);
                    }
                    answered |= self.run_chain(d, wake, up, log);
                    // A setup step's I/O came back in this pass: the next step.
                    let disk = &self.disks[d];
                    again |= disk.state == DiskState::Setup && !disk.setup.waiting && (!disk.setup.restarted || self.table.free() > 0);
                }
            }
            // Restarted filters waiting for their earlier life's requests,
            // some of which this pass may have answered, or for their
            // disk's setup to end. (One test for both.)
            if self.table.restarted != 0 {
                again |= self.resume_waiting() | self.set_up_waiting();
            }
            // Redirects and side I/O start in slots of their own, and move
            // requests to chains, or levels, this pass has served: another
            // pass, until nothing moves.
            if !core::mem::take(&mut self.table.moved) {
                break;
            }
            if !self.table.spawn.is_empty() {
                self.spawn();
            }
        }
        // A disk became ready that another waits for (its links).
        again |= core::mem::take(&mut self.table.relook);
        again || crate::bits(answered).any(|c| self.clients[c].ordering)
    }
}

/// Where request `slot`'s data is at position `p` of `chain` (its
/// filters: the server's numbers): the lowest substitute above `p`, else
/// where it came from (a client's buffer, mostly).
#[inline(always)]
fn buffer_at(slot: &Slot, p: usize, chain: &[u8]) -> Buffer {
    match u32::from(slot.subbed) & ((1u32 << p.min(8)) - 1) {
        0 if slot.data_filter == NONE => Buffer::Client { client: slot.data_client, offset: slot.data_offset },
        0 => Buffer::Bounce { filter: slot.data_filter, offset: slot.data_offset },
        m => {
            let q = (31 - m.leading_zeros() as usize) % MAX_CHAIN;
            Buffer::Bounce { filter: chain.get(q).copied().unwrap_or(NONE), offset: u64::from(slot.sub[q]) }
        }
    }
}

/// The lend that gives the filter at position `p` of `chain` (configured
/// as `cfg`) request `slot`'s data, with its rights.
fn lend_for(slot: &Slot, p: usize, chain: &[u8], cfg: &ServerFilter) -> Option<abi::Lend> {
    let (index, offset) = match buffer_at(slot, p, chain) {
        Buffer::Client { client, offset } => (*cfg.lend_client.get(client as usize)?, offset),
        Buffer::Bounce { filter, offset } => (*cfg.lend_bounce.get(filter as usize)?, offset),
    };
    (index != NO_LEND).then(|| abi::Lend { lend: u16::from(index), rights: cfg.rights, _reserved: 0, len: slot.count * BLOCK_SIZE, offset })
}
