//! `filter_cache`: a read cache of 4 KiB blocks in the filter's own memory.
//!
//! ```xml
//! <filter name="cache0" program="filter_cache" data="read-write">
//!     <param key="blocks" value="1024" />   <!-- 1 ..= 2048, default 1024 -->
//!     <!-- or <param key="size" value="4M" />: bytes, K/M/G suffixes -->
//! </filter>
//! ```
//!
//! # What it does
//!
//! - **Read**, every block cached: a hit. The pre-op copies the blocks into
//!   the request's buffer through the read-write grant and completes the
//!   request there; nothing below sees it. Anything else is a miss: the
//!   read goes on down, and its post-op, if the read succeeded whole,
//!   copies the blocks out of the grant into the cache.
//! - **Write**: the pre-op drops the blocks from the cache, so reads after
//!   it go down (while it is in flight they may return, and fill, old or
//!   new data: the two requests overlap); the post-op, if the write
//!   succeeded whole, inserts the written data (a block written is read
//!   back from memory), and otherwise drops the blocks again.
//! - **Flush**: passes; the filter prints its counters then, and when a
//!   client asks for its disk's statistics (`Op::Report`).
//!
//! # Data structure
//!
//! Fixed arrays from an [`Arena`] (the PD's zeroed `.bss`, sized for
//! [`MAX_BLOCKS`] whatever `blocks` says: 8 MiB of data, and as much again
//! for the pristine copy the tool keeps of a restartable PD's writable
//! memory), no allocation:
//! a slot per cached block (its block number, links of an intrusive LRU
//! list, the next slot of its hash bucket) with the block's data beside
//! it, and a chained hash index of at least twice as many buckets as
//! slots (Fibonacci hashing). Lookup, insertion, eviction of the least
//! recently used slot and invalidation are O(1) on average.
//!
//! # Why it never serves stale data
//!
//! Requests overlap: the server may run the pre-ops of later requests
//! before the post-ops of earlier ones, and the device may execute
//! in-flight requests in any order. The rule: *a fill must not happen if
//! a write to one of its blocks was in flight at any time since the
//! filling request started*. A clock counts events; `touched`, a table
//! indexed by block (collisions only make the filter more careful) holds
//! for each entry the clock of the last write event (a write's pre-op or
//! post-op) on its blocks. Each request keeps its start clock in its
//! 8 bytes of per-request state.
//!
//! - A read miss fills a block only if no write event touched it since the
//!   read started (`touched < start`): a write that was in flight at any
//!   point of the read makes its data suspect (old or new).
//! - A successful write inserts its data only if no other write event
//!   touched the block since its own pre-op (`touched == start`): it was
//!   the only write of that block in flight, so the disk now holds its
//!   data. Otherwise, and after a failed write (the disk's content is then
//!   unknown), the block is dropped. Either way its post-op is a new write
//!   event, which cancels the fills of reads that overlapped it.
//!
//! So once no write of a block is in flight, the cache holds either
//! nothing for it or what the disk holds.
//!
//! A filter declared `on_fault="restart"` comes back with its memory as
//! in its image: an empty cache, but post-ops of requests whose pre-ops
//! the old run saw may still come. So the clock starts at the system
//! counter's value when the filter starts, and a post-op whose start is
//! not after that fills nothing. (This holds as long as the old run
//! counted fewer events than the counter ticked while it ran: an event is
//! a request the filter is called for, hundreds of instructions at least,
//! and the counter ticks at tens of MHz.)
//!
//! # What a hit costs
//!
//! The filter's own part is the lookup (one multiply, a chain of about
//! one slot), the LRU move (a few stores) and one `grant_write` of 4 KiB
//! per block, from a page-aligned block so the kernel copies it in one
//! piece. `bench/blk-cache.xml` measures a single-block hit at 3,440
//! instructions at queue depth 1 and 1,640 at depth 32, for everything the
//! system executes: about 2,380 (depth 1) or 570 (depth 32) is the round
//! trip every request answered in a pre-op pays (client, server, upcall,
//! kernel; a filter that completes without looking or copying measures
//! that), about 1,000 the kernel's 4 KiB grant copy, and about 70 the
//! lookup and LRU. A miss costs what a read through a pre- and post-op
//! filter costs plus the copy into the cache; so does a write.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, Verdict};
use blk::{Op, Status, BLOCK_SIZE};
use core::fmt;

#[cfg(test)]
mod tests;

const BLOCK: usize = BLOCK_SIZE as usize;
/// One cached block's data, page aligned: the kernel then copies it
/// through a grant in one piece (a buffer across two pages is translated
/// and copied in two, with an unaligned tail each).
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
pub struct Data(pub [u8; BLOCK]);

/// Blocks the PD's arena holds: what `blocks` may ask for at most (8 MiB).
pub const MAX_BLOCKS: usize = 2048;
/// Hash buckets (and `touched` entries) of the PD's arena: a power of two,
/// twice [`MAX_BLOCKS`].
pub const BUCKETS: usize = 2 * MAX_BLOCKS;
/// Blocks cached when no `blocks` param is given (4 MiB).
pub const DEFAULT_BLOCKS: usize = 1024;

/// No slot.
const NIL: u32 = u32::MAX;

/// How the filter tells the console.
pub type Say = fn(fmt::Arguments);

/// A cache slot: which block it holds and its links.
#[derive(Clone, Copy)]
struct Slot {
    block: u64,
    /// Towards the most recently used.
    prev: u32,
    /// Towards the least recently used (the free list's link when free).
    next: u32,
    /// The next slot of the same hash bucket.
    chain: u32,
}

impl Slot {
    const ZERO: Slot = Slot { block: 0, prev: 0, next: 0, chain: 0 };
}

/// The cache's memory: `N` slots and their data (first, so it stays page
/// aligned), `B` hash buckets and `touched` entries (a power of two, at
/// least `2 * N`). All zero, so a `static` of it lands in `.bss`;
/// [`Cache::new`] sets it up.
#[repr(C)]
pub struct Arena<const N: usize, const B: usize> {
    data: [Data; N],
    slots: [Slot; N],
    buckets: [u32; B],
    touched: [u64; B],
}

impl<const N: usize, const B: usize> Arena<N, B> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Arena { data: [Data([0; BLOCK]); N], slots: [Slot::ZERO; N], buckets: [0; B], touched: [0; B] }
    }
}

/// What the filter counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went down.
    pub misses: u64,
    /// Blocks copied into the cache after a read or a write.
    pub filled: u64,
    /// Blocks a read or write did not fill because a write overlapped it.
    pub skipped: u64,
    /// Blocks dropped to make room.
    pub evicted: u64,
}

/// The cache's size from its `blocks` param (a count of 4 KiB blocks) or
/// its `size` param (bytes, a multiple of 4 KiB, with an optional binary
/// suffix: `4M`, `4MiB`, `512K`); at most one of them: `1 ..= max` blocks
/// (neither: the default, or `max` if that is smaller).
pub fn parse_blocks(blocks: Option<&str>, size: Option<&str>, max: usize) -> Result<usize, &'static str> {
    let n = match (blocks, size) {
        (Some(_), Some(_)) => return Err("give its size as blocks or as size, not both"),
        (None, None) => return Ok(DEFAULT_BLOCKS.min(max)),
        (Some(text), None) => {
            let text = text.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err("blocks must be a number of 4 KiB blocks");
            }
            // (All digits: only too large a number fails to parse.)
            text.parse().unwrap_or(usize::MAX)
        }
        (None, Some(text)) => size_in_blocks(text)?,
    };
    if n == 0 {
        return Err("the cache must hold at least one block");
    }
    if n > max {
        const _: () = assert!(MAX_BLOCKS == 2048, "the message below says so");
        return Err(if max == MAX_BLOCKS { "the cache is larger than this filter's memory (at most 2048 blocks, 8 MiB)" } else { "the cache is larger than this filter's memory" });
    }
    Ok(n)
}

/// Blocks in a `size` param: bytes, optionally with a binary suffix.
fn size_in_blocks(text: &str) -> Result<usize, &'static str> {
    const BAD: &str = "size must be bytes, a multiple of 4096, with an optional suffix K, M or G (KiB, MiB, GiB)";
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let suffix = suffix.trim();
    let is = |names: [&str; 2]| names.iter().any(|n| suffix.eq_ignore_ascii_case(n));
    let shift = match () {
        _ if suffix.is_empty() => 0,
        _ if is(["k", "kib"]) => 10,
        _ if is(["m", "mib"]) => 20,
        _ if is(["g", "gib"]) => 30,
        _ => return Err(BAD),
    };
    if number.is_empty() {
        return Err(BAD);
    }
    // (Digits that do not fit, or bytes past u64: far larger than the
    // filter's memory.)
    let Some(bytes) = number.parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift)) else { return Ok(usize::MAX) };
    if bytes % BLOCK as u64 != 0 {
        return Err(BAD);
    }
    usize::try_from(bytes / BLOCK as u64).map_err(|_| BAD)
}

pub struct Cache<'a> {
    slots: &'a mut [Slot],
    data: &'a mut [Data],
    buckets: &'a mut [u32],
    touched: &'a mut [u64],
    /// `64 - log2(buckets)`: Fibonacci hashing keeps the top bits.
    shift: u32,
    /// Most and least recently used slots.
    head: u32,
    tail: u32,
    /// Free slots (after invalidation), linked by `next`.
    free: u32,
    /// Slots `0..fresh` were ever used.
    fresh: u32,
    cached: u32,
    /// The event clock (see the module docs), from `start` on.
    clock: u64,
    start: u64,
    pub stats: Stats,
    say: Say,
}

impl<'a> Cache<'a> {
    /// A cache of `blocks` (its param) in `arena`. `writable`: the filter
    /// may write request data (`data="read-write"`), which a hit needs.
    /// `start`: the system counter now (a restarted filter's clock must
    /// start past every value its earlier run gave out).
    pub fn new<const N: usize, const B: usize>(blocks: Option<&str>, size: Option<&str>, writable: bool, arena: &'a mut Arena<N, B>, say: Say, start: u64) -> Result<Cache<'a>, &'static str> {
        if !writable {
            return Err("a cache answers reads from its memory: declare it data=\"read-write\"");
        }
        let n = parse_blocks(blocks, size, N)?;
        assert!(B.is_power_of_two() && B >= 2 * N && N < NIL as usize, "arena shape");
        let Arena { slots, buckets, touched, data } = arena;
        buckets.fill(NIL);
        touched.fill(0);
        Ok(Cache {
            slots: &mut slots[..n],
            data: &mut data[..n],
            buckets,
            touched,
            shift: 64 - B.trailing_zeros(),
            head: NIL,
            tail: NIL,
            free: NIL,
            fresh: 0,
            cached: 0,
            clock: start,
            start,
            stats: Stats::default(),
            say,
        })
    }

    /// Blocks it holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Blocks it holds now.
    pub fn len(&self) -> usize {
        self.cached as usize
    }

    pub fn is_empty(&self) -> bool {
        self.cached == 0
    }

    /// Whether `block` is cached (without touching the LRU order).
    pub fn contains(&self, block: u64) -> bool {
        self.find(block).is_some()
    }

    /// The cached blocks, most recently used first.
    pub fn lru_order(&self) -> impl Iterator<Item = u64> + '_ {
        let mut i = self.head;
        core::iter::from_fn(move || {
            let s = self.slots.get(i as usize)?;
            i = s.next;
            Some(s.block)
        })
    }

    #[inline(always)]
    fn bucket(&self, block: u64) -> usize {
        (block.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// The `touched` entry of `block`: consecutive blocks get their own.
    #[inline(always)]
    fn touch_index(&self, block: u64) -> usize {
        block as usize & (self.touched.len() - 1)
    }

    #[inline]
    fn find(&self, block: u64) -> Option<u32> {
        let mut i = self.buckets[self.bucket(block)];
        while let Some(s) = self.slots.get(i as usize) {
            if s.block == block {
                return Some(i);
            }
            i = s.chain;
        }
        None
    }

    fn unlink_lru(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        let s = &mut self.slots[i as usize];
        (s.prev, s.next) = (NIL, old);
        match self.slots.get_mut(old as usize) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    /// Make slot `i` the most recently used.
    #[inline]
    fn promote(&mut self, i: u32) {
        if self.head != i {
            self.unlink_lru(i);
            self.push_front(i);
        }
    }

    /// Take slot `i` out of its hash chain and the LRU list.
    fn detach(&mut self, i: u32) {
        let block = self.slots[i as usize].block;
        let b = self.bucket(block);
        let next = self.slots[i as usize].chain;
        if self.buckets[b] == i {
            self.buckets[b] = next;
        } else {
            let mut j = self.buckets[b];
            while let Some(s) = self.slots.get_mut(j as usize) {
                if s.chain == i {
                    s.chain = next;
                    break;
                }
                j = s.chain;
            }
        }
        self.unlink_lru(i);
        self.cached -= 1;
    }

    /// Drop `block` from the cache, if it is there.
    pub fn invalidate(&mut self, block: u64) {
        if let Some(i) = self.find(block) {
            self.detach(i);
            self.slots[i as usize].next = self.free;
            self.free = i;
        }
    }

    /// The slot for `block`, most recently used: its own if cached, else a
    /// free one or the least recently used one (whose block is dropped).
    /// Its data is then the caller's to fill.
    pub fn slot_for(&mut self, block: u64) -> usize {
        if let Some(i) = self.find(block) {
            self.promote(i);
            return i as usize;
        }
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slots[i as usize].next;
            i
        } else if (self.fresh as usize) < self.slots.len() {
            self.fresh += 1;
            self.fresh - 1
        } else {
            let i = self.tail;
            self.detach(i);
            self.stats.evicted += 1;
            i
        };
        let b = self.bucket(block);
        let s = &mut self.slots[i as usize];
        (s.block, s.chain) = (block, self.buckets[b]);
        self.buckets[b] = i;
        self.push_front(i);
        self.cached += 1;
        i as usize
    }

    /// Copy block `k` of `io`'s data into the cache as `io.block + k`; a
    /// copy that fails leaves the block out.
    fn fill(&mut self, io: &Io, k: u32, data: &dyn RequestData) {
        let block = io.block.wrapping_add(u64::from(k));
        let i = self.slot_for(block);
        if data.read(io, u64::from(k) * BLOCK_SIZE as u64, &mut self.data[i].0).is_ok() {
            self.stats.filled += 1;
        } else {
            self.invalidate(block);
        }
    }

    /// A new write event on `io`'s blocks.
    fn touch(&mut self, io: &Io) {
        self.clock += 1;
        for k in 0..u64::from(io.count) {
            let t = self.touch_index(io.block.wrapping_add(k));
            self.touched[t] = self.clock;
        }
    }

    /// Whether a post-op's state is a start this run of the filter gave.
    fn ours(&self, state: u64) -> bool {
        self.start < state && state <= self.clock
    }

    /// A read whose blocks are all cached: copy them to the client.
    fn hit(&mut self, io: &Io, data: &dyn RequestData) -> bool {
        for k in 0..io.count {
            if self.find(io.block.wrapping_add(u64::from(k))).is_none() {
                return false;
            }
        }
        for k in 0..io.count {
            let Some(i) = self.find(io.block.wrapping_add(u64::from(k))) else { return false };
            // (A refused copy leaves the request a miss: the read below
            // then writes the whole buffer.)
            if data.write(io, u64::from(k) * BLOCK_SIZE as u64, &self.data[i as usize].0).is_err() {
                return false;
            }
            self.promote(i);
        }
        true
    }

    /// Print the counters.
    pub fn print_counters(&self) {
        let s = &self.stats;
        (self.say)(format_args!(
            "{} hits, {} misses; {} of {} blocks cached, {} filled, {} not filled (overlapping writes), {} evicted",
            s.hits,
            s.misses,
            self.cached,
            self.capacity(),
            s.filled,
            s.skipped,
            s.evicted
        ));
    }
}

impl Filter for Cache<'_> {
    fn pre(&mut self, io: &Io, data: &dyn RequestData, state: &mut u64) -> Verdict {
        match io.op {
            Op::Read if io.count > 0 => {
                if self.hit(io, data) {
                    self.stats.hits += 1;
                    return Verdict::Complete { status: Status::Ok, count: io.count };
                }
                self.stats.misses += 1;
                self.clock += 1;
                *state = self.clock;
            }
            Op::Write => {
                for k in 0..u64::from(io.count) {
                    self.invalidate(io.block.wrapping_add(k));
                }
                self.touch(io);
                *state = self.clock;
            }
            Op::Flush | Op::FlushCompleted => self.print_counters(),
            _ => {}
        }
        Verdict::Continue
    }

    fn report(&mut self) {
        self.print_counters();
    }

    fn post(&mut self, io: &Io, done: Completion, data: &dyn RequestData) -> Verdict {
        let whole = done.status == Status::Ok && done.count == io.count && self.ours(io.state);
        match io.op {
            Op::Read if whole => {
                for k in 0..io.count {
                    let t = self.touch_index(io.block.wrapping_add(u64::from(k)));
                    if self.touched[t] < io.state {
                        self.fill(io, k, data);
                    } else {
                        self.stats.skipped += 1;
                    }
                }
            }
            Op::Write => {
                for k in 0..io.count {
                    let block = io.block.wrapping_add(u64::from(k));
                    let t = self.touch_index(block);
                    if whole && self.touched[t] == io.state {
                        self.fill(io, k, data);
                    } else {
                        if whole {
                            self.stats.skipped += 1;
                        }
                        self.invalidate(block);
                    }
                }
                self.touch(io);
            }
            _ => {}
        }
        Verdict::Continue
    }
}
