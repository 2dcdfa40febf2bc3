//! A single-producer single-consumer ring of records in shared memory, and
//! the notification protocol that goes with it.
//!
//! # Layout
//!
//! A ring of capacity `n` (a power of two) holding records of `s` bytes:
//!
//! | offset | size | field | written by |
//! |---:|---:|---|---|
//! | [`TAIL`] = 0 | 4 | tail: entries ever pushed (mod 2^32) | producer |
//! | [`HEAD`] = 4 | 4 | head: entries ever popped (mod 2^32) | consumer |
//! | [`SIGNAL`] = 8 | 4 | nonzero: the consumer wants a notification | consumer sets, producer clears |
//! | [`ROOM`] = 12 | 4 | nonzero: the producer wants a notification when entries are popped | producer sets, consumer clears |
//! | 16 | 48 | reserved | |
//! | [`HEADER_SIZE`] = 64 | `n * s` | entry `i` lives in slot `i mod n` | producer |
//!
//! Indices run freely and wrap at 2^32; `tail - head` (wrapping) is the
//! number of entries, at most `n`. Because `n` divides 2^32 the slot of an
//! index does not jump when the index wraps.
//!
//! # Trust
//!
//! Each side keeps its own index in private memory and only publishes it;
//! it reads only the peer's index from the ring. So a peer can lie only
//! about its own progress. A lie that puts the indices more than `n` apart
//! is reported as [`Corrupt`]; any other lie just gives the liar wrong
//! entries. Entries are copied out once ([`Slots`]), and every slot index is
//! in bounds whatever the indices say.
//!
//! # Ordering
//!
//! The producer writes the entry, then publishes the tail with release
//! ordering (in fact sequentially consistent, see below); the consumer loads
//! the tail with acquire ordering before it reads entries. The consumer
//! reads an entry, then publishes the head with release ordering (also
//! sequentially consistent, for the room notification); the producer loads
//! the head with acquire ordering before it reuses the slot.
//!
//! # Batches
//!
//! [`Consumer::batch`] and [`Producer::batch`] load the peer's index once,
//! keep their own in a local variable while entries are copied, and publish
//! it once when the batch is dropped: a batch of `n` entries costs one
//! acquire load and one release store, not `n` of each. [`Producer::push`]
//! does the same across calls (for pushes that alternate between rings) and
//! [`Producer::publish`] ends it. The peer sees nothing of a batch until it
//! is published, so what it may read or overwrite is decided by published
//! indices only, as above.
//!
//! # Notifications
//!
//! A consumer that finds the ring empty may wait for a notification; the
//! producer notifies only when the consumer asked for it, so a busy consumer
//! costs the producer no system calls. Protocol:
//!
//! - consumer, before waiting: [`Consumer::prepare_to_wait`] sets `SIGNAL`,
//!   then loads the tail again. If the ring is still empty it waits; if not,
//!   it clears `SIGNAL` and goes on popping.
//! - producer, after pushing a batch: [`Producer::needs_notify`] swaps
//!   `SIGNAL` to 0 and, if it was set, the caller notifies.
//!
//! No lost wake-up: all four accesses (the producer's tail store and flag
//! swap, the consumer's flag store and tail load) are sequentially
//! consistent, so they happen in one total order. Take the producer's swap
//! `W` and the consumer's flag store `S`. If `S` is before `W`, the swap
//! reads the flag set and the producer notifies. If `W` is before `S`, then
//! the tail store (before `W` in the producer's program order) is before `S`
//! and so before the consumer's re-load of the tail (after `S` in its
//! program order): the re-load sees the new entry and the consumer does not
//! wait. Either way the entry is noticed. This is the store-buffering
//! pattern, and needs sequential consistency (release/acquire alone would let
//! both sides read the old values). On AArch64 the sequentially consistent
//! store and load are the same `stlr`/`ldar` instructions release and
//! acquire compile to, so this costs nothing. `tests/notify_model.rs`
//! checks the protocol over every interleaving of the two sides' steps.
//! A redundant notification (the consumer found the entry itself after
//! setting the flag) is possible and harmless.
//!
//! The other way round, for a producer that needs room (the filter server
//! takes a request only when the client's response ring has room for its
//! answer): [`Producer::prepare_to_wait_for_room`] sets `ROOM`, then loads
//! the head again; [`Consumer::producer_waits`], called after pops, swaps
//! `ROOM` to 0 and the caller notifies the producer if it was set. The same
//! argument shows no wake-up is lost, with the head for the tail.

use core::fmt;
use core::mem::size_of;
use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use shared_memory::{move_run, AccessError, Shared, Slots, Step};

/// Offset of the tail word in a ring.
pub const TAIL: usize = 0;
/// Offset of the head word in a ring.
pub const HEAD: usize = 4;
/// Offset of the consumer's "signal me" word in a ring.
pub const SIGNAL: usize = 8;
/// Offset of the producer's "signal me when you pop" word in a ring.
pub const ROOM: usize = 12;
/// Bytes before the first slot (a cache line).
pub const HEADER_SIZE: usize = 64;
/// The largest capacity, the largest power of two in a `u32`. (Any
/// capacity up to 2^32 would keep `tail - head` unambiguous.)
pub const MAX_CAPACITY: u32 = 1 << 31;

/// Bytes a ring of `capacity` records of type `T` takes, `None` if that
/// does not fit a `usize`.
pub const fn ring_size<T>(capacity: u32) -> Option<usize> {
    match (capacity as usize).checked_mul(size_of::<T>()) {
        Some(slots) => slots.checked_add(HEADER_SIZE),
        None => None,
    }
}

/// Why a ring, or a region of rings, cannot be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The capacity is zero or not a power of two.
    CapacityNotPowerOfTwo { capacity: u32 },
    /// The layout needs `needed` bytes; the region has `region_len`.
    RegionTooSmall { needed: usize, region_len: usize },
    /// A word of the layout is not where the region can hold it.
    Access(AccessError),
}

impl From<AccessError> for LayoutError {
    fn from(e: AccessError) -> Self {
        LayoutError::Access(e)
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::CapacityNotPowerOfTwo { capacity } => {
                write!(f, "ring capacity {capacity} is not a power of two")
            }
            LayoutError::RegionTooSmall { needed, region_len } => write!(
                f,
                "the queues need {needed:#x} bytes but the region has {region_len:#x}"
            ),
            LayoutError::Access(e) => write!(f, "queue region: {e}"),
        }
    }
}

impl core::error::Error for LayoutError {}

/// Check a ring capacity: a power of two (so at most [`MAX_CAPACITY`]).
pub const fn check_capacity(capacity: u32) -> Result<NonZeroU32, LayoutError> {
    match NonZeroU32::new(capacity) {
        Some(c) if capacity.is_power_of_two() => Ok(c),
        _ => Err(LayoutError::CapacityNotPowerOfTwo { capacity }),
    }
}

/// The peer moved its index so that the ring would hold more than its
/// capacity (or less than nothing). Stop trusting the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub head: u32,
    pub tail: u32,
    pub capacity: u32,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt ring: head {} and tail {} are more than the capacity {} apart",
            self.head, self.tail, self.capacity
        )
    }
}

impl core::error::Error for Corrupt {}

/// Why a push did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The ring holds `capacity` entries; retry after the consumer pops.
    Full,
    Corrupt(Corrupt),
}

impl From<Corrupt> for PushError {
    fn from(c: Corrupt) -> Self {
        PushError::Corrupt(c)
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full => f.write_str("ring full"),
            PushError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for PushError {}

/// Anything that can sit in a ring: a fixed-size record with no invalid bit
/// patterns and no padding.
pub trait Record: FromBytes + IntoBytes + Immutable + Copy {}
impl<T: FromBytes + IntoBytes + Immutable + Copy> Record for T {}

/// The words and slots of one ring, shared by both ends' views.
struct Ring<'a, T> {
    tail: &'a AtomicU32,
    head: &'a AtomicU32,
    signal: &'a AtomicU32,
    room: &'a AtomicU32,
    slots: Slots<'a, T>,
}

impl<'a, T: Record> Ring<'a, T> {
    fn attach(mem: Shared<'a>, capacity: u32) -> Result<Self, LayoutError> {
        let capacity = check_capacity(capacity)?;
        let needed = ring_size::<T>(capacity.get()).unwrap_or(usize::MAX);
        if needed > mem.len() {
            return Err(LayoutError::RegionTooSmall { needed, region_len: mem.len() });
        }
        Ok(Ring {
            tail: mem.atomic_u32(TAIL)?,
            head: mem.atomic_u32(HEAD)?,
            signal: mem.atomic_u32(SIGNAL)?,
            room: mem.atomic_u32(ROOM)?,
            slots: Slots::new(mem, HEADER_SIZE, capacity)?,
        })
    }

    fn capacity(&self) -> u32 {
        self.slots.len().get()
    }

    /// Entries between `head` and `tail`, if that is a possible number.
    fn occupancy(&self, head: u32, tail: u32) -> Result<u32, Corrupt> {
        let len = tail.wrapping_sub(head);
        if len > self.capacity() {
            return Err(Corrupt { head, tail, capacity: self.capacity() });
        }
        Ok(len)
    }
}

/// The producing end of a ring: pushes entries, decides when to notify.
pub struct Producer<'a, T> {
    ring: Ring<'a, T>,
    /// Our tail; the one in the ring is only its published copy.
    tail: u32,
    /// The tail as last published.
    published: u32,
    /// The tail at which the ring was full when we last loaded the head
    /// (head + capacity): up to there we may push without loading it again.
    limit: u32,
    /// Published since the last `needs_notify`: only new entries are worth a
    /// notification, however often the consumer arms its signal.
    pushed: bool,
}

impl<'a, T: Record> Producer<'a, T> {
    /// The producing end of the ring at the start of `mem`, which must hold
    /// [`ring_size`] bytes. Starts from the tail published in the ring (0 in
    /// a fresh region).
    pub fn new(mem: Shared<'a>, capacity: u32) -> Result<Self, LayoutError> {
        let ring = Ring::attach(mem, capacity)?;
        let tail = ring.tail.load(Ordering::Relaxed);
        // limit == tail: the first push loads the head.
        Ok(Producer { ring, tail, published: tail, limit: tail, pushed: false })
    }

    pub fn capacity(&self) -> u32 {
        self.ring.capacity()
    }

    /// Entries pushed (published or not) and not yet popped.
    pub fn len(&self) -> Result<u32, Corrupt> {
        self.ring.occupancy(self.ring.head.load(Ordering::Acquire), self.tail)
    }

    pub fn is_empty(&self) -> Result<bool, Corrupt> {
        Ok(self.len()? == 0)
    }

    pub fn is_full(&self) -> Result<bool, Corrupt> {
        Ok(self.len()? == self.capacity())
    }

    /// Entries that can be pushed now.
    pub fn free(&self) -> Result<u32, Corrupt> {
        Ok(self.capacity() - self.len()?)
    }

    /// Entries pushed so far (published or not), as a wrapping count from
    /// the tail found at [`new`](Self::new): our tail.
    pub fn pushed(&self) -> u32 {
        self.tail
    }

    /// Copy `entry` into the ring and publish it. Loads the head each
    /// time, so a consumer that corrupts it is noticed at once.
    pub fn try_push(&mut self, entry: T) -> Result<(), PushError> {
        let head = self.ring.head.load(Ordering::Acquire);
        if self.ring.occupancy(head, self.tail)? == self.capacity() {
            return Err(PushError::Full);
        }
        self.limit = head.wrapping_add(self.capacity());
        self.ring.slots.set(self.tail, &entry);
        self.tail = self.tail.wrapping_add(1);
        // SeqCst, not just Release: see "Notifications" in the module docs.
        self.ring.tail.store(self.tail, Ordering::SeqCst);
        self.published = self.tail;
        self.pushed = true;
        Ok(())
    }

    /// Copy `entry` into the ring without publishing it: the consumer sees
    /// it after the next [`publish`](Self::publish) (or `try_push`, or
    /// `needs_notify`). Pushes to several rings in turn then cost one store
    /// of each tail, and one load of a head only when the room seen last is
    /// used up. For many pushes to one ring, [`batch`](Self::batch) is
    /// cheaper still.
    pub fn push(&mut self, entry: T) -> Result<(), PushError> {
        if self.tail == self.limit {
            self.load_limit()?;
            if self.tail == self.limit {
                return Err(PushError::Full);
            }
        }
        self.ring.slots.set(self.tail, &entry);
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Start a run of pushes with the indices in local variables: one load
    /// of the head now, one store of the tail when the batch is dropped.
    pub fn batch(&mut self) -> Result<PushBatch<'_, 'a, T>, Corrupt> {
        self.load_limit()?;
        Ok(PushBatch { slots: self.ring.slots, tail: self.tail, limit: self.limit, producer: self })
    }

    /// Entries that can be pushed now, as far as the head loaded last
    /// tells; the head is loaded again only if that is less than `wanted`.
    /// (The consumer only ever makes more room, so this never overstates.)
    pub fn room(&mut self, wanted: u32) -> Result<u32, Corrupt> {
        if self.limit.wrapping_sub(self.tail) < wanted {
            self.load_limit()?;
        }
        Ok(self.limit.wrapping_sub(self.tail))
    }

    fn load_limit(&mut self) -> Result<(), Corrupt> {
        let head = self.ring.head.load(Ordering::Acquire);
        self.ring.occupancy(head, self.tail)?;
        self.limit = head.wrapping_add(self.capacity());
        Ok(())
    }

    /// Publish the entries pushed since the last publication (by `push`).
    pub fn publish(&mut self) {
        if self.published != self.tail {
            // SeqCst, not just Release: see "Notifications" in the module docs.
            self.ring.tail.store(self.tail, Ordering::SeqCst);
            self.published = self.tail;
            self.pushed = true;
        }
    }

    /// Publish what was pushed, then: whether entries were published since
    /// the last call and the consumer asked to be notified; then clears its
    /// request. Call after pushing (once per batch is enough) and notify the
    /// consumer if it returns true. Without new entries the consumer's
    /// request stays armed for the next batch, so two idle ends never wake
    /// each other.
    pub fn needs_notify(&mut self) -> bool {
        self.publish();
        if !core::mem::take(&mut self.pushed) {
            return false;
        }
        self.ring.signal.swap(0, Ordering::SeqCst) != 0
    }

    /// Call when the ring has less room than `needed`, before waiting for a
    /// notification: asks the consumer for one when it pops and looks again.
    /// `true`: still too little room, wait. `false`: the consumer popped
    /// meanwhile, the request is withdrawn.
    pub fn prepare_to_wait_for_room(&mut self, needed: u32) -> Result<bool, Corrupt> {
        self.ring.room.store(1, Ordering::SeqCst);
        let head = self.ring.head.load(Ordering::SeqCst);
        let room = self.capacity() - self.ring.occupancy(head, self.tail)?;
        self.limit = head.wrapping_add(self.capacity());
        if room < needed {
            return Ok(true);
        }
        self.ring.room.store(0, Ordering::Relaxed);
        Ok(false)
    }
}

/// The consuming end of a ring: pops entries, asks to be notified before it
/// waits.
pub struct Consumer<'a, T> {
    ring: Ring<'a, T>,
    /// Our head; the one in the ring is only its published copy (always
    /// up to date outside a [`PopBatch`]).
    head: u32,
}

impl<'a, T: Record> Consumer<'a, T> {
    /// The consuming end of the ring at the start of `mem`, which must hold
    /// [`ring_size`] bytes. Starts from the head published in the ring (0 in
    /// a fresh region).
    pub fn new(mem: Shared<'a>, capacity: u32) -> Result<Self, LayoutError> {
        let ring = Ring::attach(mem, capacity)?;
        let head = ring.head.load(Ordering::Relaxed);
        Ok(Consumer { ring, head })
    }

    pub fn capacity(&self) -> u32 {
        self.ring.capacity()
    }

    /// Entries waiting to be popped.
    pub fn len(&self) -> Result<u32, Corrupt> {
        self.available(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> Result<bool, Corrupt> {
        Ok(self.len()? == 0)
    }

    pub fn is_full(&self) -> Result<bool, Corrupt> {
        Ok(self.len()? == self.capacity())
    }

    /// Entries the producer could push now.
    pub fn free(&self) -> Result<u32, Corrupt> {
        Ok(self.capacity() - self.len()?)
    }

    /// A copy of the oldest entry, which leaves the ring; `None` if empty.
    /// The copy is untrusted data: check it before use. Loads the tail
    /// each time, so a producer that corrupts it is noticed at once.
    pub fn try_pop(&mut self) -> Result<Option<T>, Corrupt> {
        if self.available(Ordering::Acquire)? == 0 {
            return Ok(None);
        }
        let entry = self.ring.slots.get(self.head);
        self.head = self.head.wrapping_add(1);
        // SeqCst: see "Notifications" (room) in the module docs.
        self.ring.head.store(self.head, Ordering::SeqCst);
        Ok(Some(entry))
    }

    /// Start a run of pops over the entries published now, with the
    /// indices in local variables: one load of the tail now, one store of
    /// the head when the batch is dropped. The entries are untrusted data:
    /// check each before use.
    pub fn batch(&mut self) -> Result<PopBatch<'_, 'a, T>, Corrupt> {
        let tail = self.ring.tail.load(Ordering::Acquire);
        self.ring.occupancy(self.head, tail)?;
        Ok(PopBatch { slots: self.ring.slots, head: self.head, end: tail, consumer: self })
    }

    /// Call when the ring looks empty, before waiting for a notification:
    /// asks the producer for one and looks again. `true`: still empty, wait
    /// (the producer will notify after its next push). `false`: entries
    /// arrived meanwhile, the request is withdrawn; pop them.
    pub fn prepare_to_wait(&mut self) -> Result<bool, Corrupt> {
        self.ring.signal.store(1, Ordering::SeqCst);
        if self.available(Ordering::SeqCst)? == 0 {
            return Ok(true);
        }
        // We are awake after all; spare the producer a notification. If it
        // already took the request it sends a redundant one, which is
        // harmless.
        self.ring.signal.store(0, Ordering::Relaxed);
        Ok(false)
    }

    /// Whether the producer asked to hear when entries are popped; then
    /// clears its request. Call after popping (once per batch is enough) and
    /// notify the producer if it returns true.
    pub fn producer_waits(&mut self) -> bool {
        // SeqCst load first: the common case (nobody waits) costs no write.
        self.ring.room.load(Ordering::SeqCst) != 0 && self.ring.room.swap(0, Ordering::SeqCst) != 0
    }

    fn available(&self, order: Ordering) -> Result<u32, Corrupt> {
        self.ring.occupancy(self.head, self.ring.tail.load(order))
    }
}

/// Pushes into one ring with the indices in local variables (see
/// [`Producer::batch`]). Dropping it publishes what was pushed.
pub struct PushBatch<'r, 'a, T: Record> {
    producer: &'r mut Producer<'a, T>,
    slots: Slots<'a, T>,
    tail: u32,
    /// Head + capacity as loaded when the batch started.
    limit: u32,
}

impl<T: Record> PushBatch<'_, '_, T> {
    /// Entries that can still be pushed in this batch.
    pub fn room(&self) -> u32 {
        self.limit.wrapping_sub(self.tail)
    }

    /// Copy `entry` into the ring; `Full` if the batch has no room left
    /// (the consumer may have made more since it started).
    pub fn push(&mut self, entry: T) -> Result<(), PushError> {
        if self.tail == self.limit {
            return Err(PushError::Full);
        }
        self.slots.set(self.tail, &entry);
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }
}

impl<T: Record> Drop for PushBatch<'_, '_, T> {
    fn drop(&mut self) {
        self.producer.tail = self.tail;
        self.producer.publish();
    }
}

/// Pops from one ring with the indices in local variables (see
/// [`Consumer::batch`]): an iterator over the entries that were published
/// when it started. Dropping it hands the popped slots back.
pub struct PopBatch<'r, 'a, T: Record> {
    consumer: &'r mut Consumer<'a, T>,
    slots: Slots<'a, T>,
    head: u32,
    /// The tail loaded when the batch started.
    end: u32,
}

impl<T: Record> PopBatch<'_, '_, T> {
    /// Entries left in this batch.
    pub fn len(&self) -> u32 {
        self.end.wrapping_sub(self.head)
    }

    /// Leave all but the first `n` entries for a later batch (cheaper to
    /// iterate than `take(n)`: one end to compare with).
    pub fn truncate(&mut self, n: u32) {
        self.end = self.head.wrapping_add(n.min(self.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.end
    }

    /// A copy of the next entry, left in the batch.
    pub fn peek(&self) -> Option<T> {
        (self.head != self.end).then(|| self.slots.get(self.head))
    }

    /// Pop the next entry without copying it (after a [`peek`](Self::peek)
    /// of it).
    #[inline]
    pub fn advance(&mut self) {
        if self.head != self.end {
            self.head = self.head.wrapping_add(1);
        }
    }

    /// Pass over the next entries while `keep` holds for them.
    pub fn pass_while(&mut self, mut keep: impl FnMut(&T) -> bool) {
        while self.peek().is_some_and(|e| keep(&e)) {
            self.head = self.head.wrapping_add(1);
        }
    }

    /// Move entries into `dst` while both batches have some, as `f` says
    /// for each: [`Step::Push`] its mapping, [`Step::Pass`] over it (it
    /// takes no room in `dst`, though it counts against it), or
    /// [`Step::Stop`] before it (it stays in the batch). Returns the
    /// entries popped. One copy in, one out, and a pointer step for each
    /// (see `shared_memory::move_run`): a forwarding server's hot path.
    pub fn move_into<U: Record>(&mut self, dst: &mut PushBatch<'_, '_, U>, f: impl FnMut(T) -> Step<U>) -> u32 {
        self.move_up_to(u32::MAX, dst, f)
    }

    /// Move at most `max` entries into `dst`, mapped by `f`, while
    /// `belongs` holds for them and `dst` has room. Returns the entries
    /// moved.
    pub fn move_while(
        &mut self,
        dst: &mut PushBatch<'_, '_, T>,
        max: u32,
        mut belongs: impl FnMut(&T) -> bool,
        mut f: impl FnMut(T) -> T,
    ) -> u32 {
        self.move_up_to(max, dst, |entry| if belongs(&entry) { Step::Push(f(entry)) } else { Step::Stop })
    }

    /// [`move_into`](Self::move_into), popping at most `max` entries.
    #[inline(always)]
    fn move_up_to<U: Record>(&mut self, max: u32, dst: &mut PushBatch<'_, '_, U>, mut f: impl FnMut(T) -> Step<U>) -> u32 {
        let n = self.len().min(dst.room()).min(max);
        if n == 1 {
            // One entry (every batch at queue depth 1): by index, without a
            // run's setup (20 instructions or so).
            match f(self.slots.get(self.head)) {
                Step::Push(out) => {
                    dst.slots.set(dst.tail, &out);
                    dst.tail = dst.tail.wrapping_add(1);
                }
                Step::Pass => {}
                Step::Stop => return 0,
            }
            self.head = self.head.wrapping_add(1);
            return 1;
        }
        // A run per stretch where neither ring wraps: mostly one. (A run
        // ends where the destination would wrap if every entry were
        // pushed; entries passed over leave it short of that, so a client
        // sending only bad requests can cost a run each, within its turn.)
        // The first is outside the loop (measured: 6 instructions fewer
        // per request at depth 1, where the server's batches of one are
        // taken above but its code is laid out around this, and 1 at
        // depth 32).
        let (popped, pushed, mut stopped) = move_run(&self.slots, self.head, &dst.slots, dst.tail, n, &mut f);
        let (mut head, mut tail, mut popped) = (self.head.wrapping_add(popped), dst.tail.wrapping_add(pushed), popped);
        while popped < n && !stopped {
            let (p, q, s) = move_run(&self.slots, head, &dst.slots, tail, n - popped, &mut f);
            (head, tail, popped, stopped) = (head.wrapping_add(p), tail.wrapping_add(q), popped + p, s);
        }
        (self.head, dst.tail) = (head, tail);
        popped
    }
}

impl<T: Record> Iterator for PopBatch<'_, '_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.head == self.end {
            return None;
        }
        let entry = self.slots.get(self.head);
        self.head = self.head.wrapping_add(1);
        Some(entry)
    }
}

impl<T: Record> Drop for PopBatch<'_, '_, T> {
    fn drop(&mut self) {
        if self.consumer.head != self.head {
            self.consumer.head = self.head;
            self.consumer.ring.head.store(self.head, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends of the ring at the start of `mem`.
    fn ends(mem: Shared<'_>, capacity: u32) -> (Producer<'_, u64>, Consumer<'_, u64>) {
        (Producer::new(mem, capacity).unwrap(), Consumer::new(mem, capacity).unwrap())
    }

    fn buffer(capacity: u32) -> Vec<u64> {
        vec![0; ring_size::<u64>(capacity).unwrap() / 8]
    }

    #[test]
    fn an_armed_consumer_is_notified_only_for_new_entries() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 4);
        assert!(!p.needs_notify(), "a fresh ring asks for nothing");
        assert_eq!(c.prepare_to_wait(), Ok(true));
        // Two idle ends that check after every round must not wake each
        // other forever: without a push there is nothing to tell.
        assert!(!p.needs_notify());
        assert!(!p.needs_notify());
        p.try_push(7).unwrap();
        assert!(p.needs_notify(), "the consumer is waiting for this one");
        assert!(!p.needs_notify(), "one notification per batch");
        // The consumer's request survives idle checks until the next push.
        assert_eq!(c.try_pop(), Ok(Some(7)));
        assert_eq!(c.prepare_to_wait(), Ok(true));
        assert!(!p.needs_notify());
        p.try_push(8).unwrap();
        assert!(p.needs_notify());
    }

    #[test]
    fn a_producer_waiting_for_room_hears_of_the_next_pop() {
        let mut buf = buffer(2);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 2);
        p.try_push(1).unwrap();
        p.try_push(2).unwrap();
        assert!(!c.producer_waits(), "nobody asked");
        assert_eq!(p.prepare_to_wait_for_room(1), Ok(true), "full: wait");
        assert_eq!(c.try_pop(), Ok(Some(1)));
        assert!(c.producer_waits(), "the producer is waiting for this");
        assert!(!c.producer_waits(), "one request, one notification");
        assert_eq!(p.prepare_to_wait_for_room(1), Ok(false), "room already: no wait");
        assert_eq!(p.prepare_to_wait_for_room(2), Ok(true), "not enough room");
        {
            let mut batch = c.batch().unwrap();
            assert_eq!(batch.next(), Some(2));
        }
        assert!(c.producer_waits(), "a batch counts once it is handed back");
    }

    #[test]
    fn room_loads_the_head_only_when_it_must() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 4);
        assert_eq!(p.room(1), Ok(4));
        for i in 0..3 {
            p.try_push(i).unwrap();
        }
        assert_eq!(c.try_pop(), Ok(Some(0)));
        assert_eq!(p.room(1), Ok(1), "enough as last seen: the pop is not looked at");
        assert_eq!(p.room(2), Ok(2), "not enough: the head is loaded again");
        // A head moved past the tail is noticed when it is loaded.
        mem.atomic_u32(HEAD).unwrap().store(9, Ordering::Relaxed);
        assert!(p.room(3).is_err());
    }

    #[test]
    fn entries_come_out_in_the_order_they_went_in() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 4);
        for i in 0..3 {
            p.try_push(i).unwrap();
        }
        assert_eq!(c.len(), Ok(3));
        assert_eq!(p.free(), Ok(1));
        assert_eq!((0..4).map(|_| c.try_pop().unwrap()).collect::<Vec<_>>(), [Some(0), Some(1), Some(2), None]);
        assert_eq!(p.is_empty(), Ok(true));
    }

    #[test]
    fn a_full_ring_refuses_a_push_until_one_is_popped() {
        let mut buf = buffer(2);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 2);
        p.try_push(1).unwrap();
        p.try_push(2).unwrap();
        assert_eq!(p.try_push(3), Err(PushError::Full));
        assert_eq!(c.is_full(), Ok(true));
        assert_eq!(c.try_pop(), Ok(Some(1)));
        p.try_push(3).unwrap();
        assert_eq!(c.try_pop(), Ok(Some(2)));
        assert_eq!(c.try_pop(), Ok(Some(3)));
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        mem.atomic_u32(TAIL).unwrap().store(u32::MAX - 1, Ordering::Relaxed);
        mem.atomic_u32(HEAD).unwrap().store(u32::MAX - 1, Ordering::Relaxed);
        let (mut p, mut c) = ends(mem, 4);
        for i in 0..4 {
            p.try_push(i).unwrap();
        }
        assert_eq!(mem.atomic_u32(TAIL).unwrap().load(Ordering::Relaxed), 2);
        assert_eq!(c.len(), Ok(4));
        for i in 0..4 {
            assert_eq!(c.try_pop(), Ok(Some(i)));
        }
    }

    #[test]
    fn a_tail_moved_past_the_capacity_is_reported_not_followed() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let mut c = Consumer::<u64>::new(mem, 4).unwrap();
        mem.atomic_u32(TAIL).unwrap().store(5, Ordering::Relaxed);
        let corrupt = Corrupt { head: 0, tail: 5, capacity: 4 };
        assert_eq!(c.try_pop(), Err(corrupt));
        assert_eq!(c.prepare_to_wait(), Err(corrupt));
        // A tail behind the head is as bad.
        mem.atomic_u32(TAIL).unwrap().store(u32::MAX, Ordering::Relaxed);
        assert!(c.try_pop().is_err());
    }

    #[test]
    fn a_head_moved_past_the_tail_is_reported_to_the_producer() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let mut p = Producer::<u64>::new(mem, 4).unwrap();
        mem.atomic_u32(HEAD).unwrap().store(1, Ordering::Relaxed);
        assert_eq!(p.try_push(9), Err(PushError::Corrupt(Corrupt { head: 1, tail: 0, capacity: 4 })));
    }

    #[test]
    fn a_peer_rewriting_our_published_index_does_not_move_us() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 4);
        p.try_push(1).unwrap();
        // The consumer scribbles over the tail; the producer's own copy wins
        // at its next push.
        mem.atomic_u32(TAIL).unwrap().store(3, Ordering::Relaxed);
        p.try_push(2).unwrap();
        assert_eq!(c.try_pop(), Ok(Some(1)));
        assert_eq!(c.try_pop(), Ok(Some(2)));
        assert_eq!(c.try_pop(), Ok(None));
    }

    #[test]
    fn the_producer_notifies_only_a_consumer_that_asked() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 4);
        p.try_push(1).unwrap();
        assert!(!p.needs_notify(), "nobody asked");
        assert_eq!(c.try_pop(), Ok(Some(1)));
        assert_eq!(c.prepare_to_wait(), Ok(true));
        p.try_push(2).unwrap();
        assert!(p.needs_notify());
        assert!(!p.needs_notify(), "one request, one notification");
    }

    #[test]
    fn a_consumer_that_finds_work_while_preparing_withdraws_its_request() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        let (mut p, mut c) = ends(mem, 4);
        p.try_push(1).unwrap();
        assert_eq!(c.prepare_to_wait(), Ok(false));
        assert!(!p.needs_notify());
    }

    #[test]
    fn bad_capacities_and_short_regions_are_refused() {
        let mut buf = buffer(4);
        let mem = Shared::from_words(&mut buf);
        assert_eq!(Producer::<u64>::new(mem, 3).err(), Some(LayoutError::CapacityNotPowerOfTwo { capacity: 3 }));
        assert_eq!(Consumer::<u64>::new(mem, 0).err(), Some(LayoutError::CapacityNotPowerOfTwo { capacity: 0 }));
        assert_eq!(
            Producer::<u64>::new(mem, 8).err(),
            Some(LayoutError::RegionTooSmall { needed: 128, region_len: 96 })
        );
        assert_eq!(check_capacity(1 << 31).map(NonZeroU32::get), Ok(1 << 31));
        assert_eq!(check_capacity(1), Ok(NonZeroU32::MIN));
        let misaligned = mem.window(2, 64 + 8).unwrap();
        assert!(matches!(Producer::<u64>::new(misaligned, 1), Err(LayoutError::Access(AccessError::Misaligned { .. }))));
    }
}
