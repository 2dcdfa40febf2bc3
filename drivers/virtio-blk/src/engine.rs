//! Block requests on a virtqueue. A read or write is a chain of three
//! buffers: the request header (device reads), the data (device writes it
//! for a read, reads it for a write) and a status byte (device writes).
//! Many requests are in flight and complete in any order.
//!
//! Ordering: a barrier waits until every request before it has completed;
//! a flush does the same and then sends the device a flush command, so once
//! a flush is acknowledged every write sent before it is durable. While a
//! barrier or flush waits for earlier requests, no later request starts;
//! once the flush command is on the device, later requests run beside it
//! and it does not cover them. A flush of completed writes
//! (`Op::FlushCompleted`) goes to the device at once: a virtio flush covers
//! the writes the device completed before it, and nothing waits.
//!
//! A requester that is not trusted with physical memory (a direct client)
//! is confined to windows ([`Engine::confine`]): a buffer outside them is
//! refused before the device sees it, so the device reads and writes only
//! memory the requester itself may read and write.

use crate::virtq::{Buffer, Layout, SplitQueue};
use crate::Dma;
pub use blk::{Op, Status};

/// The protocol's block size; the device counts 512-byte sectors.
pub const BLOCK_SIZE: u64 = blk::BLOCK_SIZE as u64;
pub const SECTOR_SIZE: u64 = 512;
const SECTORS_PER_BLOCK: u64 = BLOCK_SIZE / SECTOR_SIZE;

/// Requests in flight at most (each takes three descriptors).
pub const MAX_IN_FLIGHT: usize = 64;
/// Blocks one read or write moves at most: its data descriptor's length is
/// 32 bits.
pub const MAX_BLOCKS_PER_REQUEST: u32 = (u32::MAX as u64 / BLOCK_SIZE) as u32;

// virtio-blk request types and status values (virtio 1.x, 5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;

/// A request as the driver receives it; `dma_addr` is the physical address
/// of the data buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Echoed in the completion: the requester's id and tag.
    pub id: u64,
    pub op: Op,
    pub block: u64,
    pub count: u32,
    pub dma_addr: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub id: u64,
    pub status: Status,
    /// Blocks transferred.
    pub count: u32,
}

/// What became of a submitted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// On the queue; tell the device.
    Started,
    /// A barrier or flush waiting for earlier requests.
    Held,
    /// Answered without the device.
    Done(Completion),
}

impl Submitted {
    /// Answered without the device, no blocks moved. Out of line: inlined
    /// into the driver's loop, the constant half of the answer (status and
    /// count) was kept in an FP register, and a PD that touches FP
    /// registers pays for a lazy FP switch each time it runs after another
    /// PD used them.
    #[cold]
    #[inline(never)]
    pub fn answered(id: u64, status: Status) -> Submitted {
        Submitted::Done(Completion { id, status, count: 0 })
    }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    id: u64,
    count: u32,
    head: u16,
}

/// Physical memory a confined requester's buffers may lie in, as the
/// configuration gives it.
pub use blk::config::{DmaWindow as Window, MAX_WINDOWS};

/// Whether `req`'s buffer lies wholly in one of `windows`, one the device
/// may write if `req` is a read. (`count` is checked already, so the
/// length cannot overflow.)
#[inline(always)]
fn in_windows(windows: &[Window], req: &Request) -> bool {
    let Some(end) = req.dma_addr.checked_add(req.count as u64 * BLOCK_SIZE) else { return false };
    let allows =
        |w: &Window| req.dma_addr >= w.paddr && end - w.paddr <= w.size && (w.device_writes != 0 || req.op == Op::Write);
    // Most direct clients have one window, their data region: without a
    // loop, 2 instructions less per request.
    match windows {
        [w] => allows(w),
        _ => windows.iter().any(allows),
    }
}

/// Where the engine keeps per-request headers and status bytes.
#[derive(Clone, Copy, Debug)]
pub struct SlotArea {
    pub headers: usize,
    pub status: usize,
}

impl SlotArea {
    pub const SIZE: usize = MAX_IN_FLIGHT * 16 + MAX_IN_FLIGHT;

    pub fn at(base: usize) -> SlotArea {
        SlotArea { headers: base, status: base + MAX_IN_FLIGHT * 16 }
    }
}

pub struct Engine {
    queue: SplitQueue,
    area: SlotArea,
    slots: [Slot; MAX_IN_FLIGHT],
    /// The slots not in use, so taking one does not search.
    free: heapless::Vec<u8, MAX_IN_FLIGHT>,
    /// Descriptor head -> slot.
    head_slot: [u8; crate::virtq::MAX_SIZE],
    in_flight: usize,
    held: Option<Request>,
    capacity_blocks: u64,
    read_only: bool,
    device_flush: bool,
    /// Every buffer must lie in one of these windows (if `confined`).
    windows: heapless::Vec<Window, MAX_WINDOWS>,
    confined: bool,
}

impl Engine {
    pub fn new(dma: &impl Dma, layout: Layout, area: SlotArea, capacity_sectors: u64, read_only: bool, device_flush: bool) -> Engine {
        Engine {
            queue: SplitQueue::new(dma, layout),
            area,
            slots: [Slot::default(); MAX_IN_FLIGHT],
            free: (0..MAX_IN_FLIGHT as u8).rev().collect(),
            head_slot: [0; crate::virtq::MAX_SIZE],
            in_flight: 0,
            held: None,
            capacity_blocks: capacity_sectors / SECTORS_PER_BLOCK,
            read_only,
            device_flush,
            windows: heapless::Vec::new(),
            confined: false,
        }
    }

    /// From now on refuse (`InvalidRequest`) a read or write whose buffer
    /// does not lie wholly in one of `windows` (the first [`MAX_WINDOWS`]),
    /// or that would fill a window the device may only read.
    pub fn confine(&mut self, windows: &[Window]) {
        self.windows = windows.iter().take(MAX_WINDOWS).copied().collect();
        self.confined = true;
    }

    /// Whether `req`'s buffer lies where its requester may have the device
    /// reach.
    #[inline(always)]
    fn may_reach(&self, req: &Request) -> bool {
        !self.confined || in_windows(&self.windows, req)
    }

    pub fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Where the queue lives in DMA memory.
    pub fn layout(&self) -> Layout {
        self.queue.layout()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether another request may be submitted now.
    pub fn can_accept(&self) -> bool {
        self.held.is_none() && self.in_flight < self.slot_limit() && self.queue.num_free() >= 3
    }

    fn slot_limit(&self) -> usize {
        MAX_IN_FLIGHT.min(self.queue.layout().size as usize / 3)
    }

    /// (Always inlined, and so is `start`: with the window check, LLVM made
    /// one of them a call, 25 to 55 instructions more per request.)
    #[inline(always)]
    pub fn submit(&mut self, dma: &impl Dma, req: Request) -> Submitted {
        match req.op {
            Op::Barrier | Op::Flush if self.in_flight > 0 => {
                self.held = Some(req);
                Submitted::Held
            }
            Op::Barrier => Submitted::answered(req.id, Status::Ok),
            // The filter server's to answer.
            Op::Report => Submitted::answered(req.id, Status::InvalidRequest),
            Op::Flush | Op::FlushCompleted if !self.device_flush => Submitted::answered(req.id, Status::Ok),
            Op::Flush | Op::FlushCompleted => self.start(dma, req, T_FLUSH),
            Op::Read | Op::Write => {
                let end = req.block.checked_add(req.count as u64);
                if req.count == 0
                    || req.count > MAX_BLOCKS_PER_REQUEST
                    || end.is_none_or(|e| e > self.capacity_blocks)
                    || (req.op == Op::Write && self.read_only)
                    || !self.may_reach(&req)
                {
                    return Submitted::answered(req.id, Status::InvalidRequest);
                }
                self.start(dma, req, if req.op == Op::Read { T_IN } else { T_OUT })
            }
        }
    }

    #[inline(always)]
    fn start(&mut self, dma: &impl Dma, req: Request, kind: u32) -> Submitted {
        let Some(s) = self.free.last().map(|&s| s as usize) else {
            // Callers check `can_accept` first.
            return Submitted::answered(req.id, Status::IoError);
        };
        let header = self.area.headers + 16 * s;
        let status = self.area.status + s;
        // The header: type, a reserved zero word, the first sector (0 for a
        // flush, virtio 1.x 5.2.6.1; a read's or write's block is below the
        // capacity, so this does not overflow).
        let sector = if kind == T_FLUSH { 0 } else { req.block * SECTORS_PER_BLOCK };
        dma.write_u64(header, kind as u64);
        dma.write_u64(header + 8, sector);
        dma.write_u8(status, 0xff);
        let hdr = Buffer { addr: dma.paddr() + header as u64, len: 16, device_writes: false };
        let st = Buffer { addr: dma.paddr() + status as u64, len: 1, device_writes: true };
        let bytes = req.count as u64 * BLOCK_SIZE;
        let head = if kind == T_FLUSH {
            self.queue.add(dma, &[hdr, st])
        } else {
            let data = Buffer { addr: req.dma_addr, len: bytes as u32, device_writes: kind == T_IN };
            self.queue.add(dma, &[hdr, data, st])
        };
        let Some(head) = head else {
            return Submitted::answered(req.id, Status::IoError);
        };
        self.free.pop();
        // A flush moves no blocks, whatever its count field said.
        let count = if kind == T_FLUSH { 0 } else { req.count };
        self.slots[s] = Slot { id: req.id, count, head };
        self.head_slot[head as usize] = s as u8;
        self.in_flight += 1;
        Submitted::Started
    }

    /// The next request the device finished. (Always inlined: it is the
    /// driver's per-completion path, and with a second caller LLVM made it
    /// a call, 13 instructions more per request at depth 32.)
    #[inline(always)]
    pub fn complete(&mut self, dma: &impl Dma) -> Option<Completion> {
        let (head, _len) = self.queue.pop_used(dma)?;
        let s = self.head_slot[head as usize] as usize;
        let slot = self.slots[s];
        // Cannot overflow: `s` was taken from the list.
        let _ = self.free.push(s as u8);
        self.in_flight -= 1;
        debug_assert_eq!(slot.head, head);
        // Anything but OK (I/O error, unsupported, or a byte the device never
        // wrote) is an I/O error with nothing done.
        Some(match dma.read_u8(self.area.status + s) {
            S_OK => Completion { id: slot.id, status: Status::Ok, count: slot.count },
            _ => Completion { id: slot.id, status: Status::IoError, count: 0 },
        })
    }

    /// The device was reset and forgot every request still in flight
    /// (take what it finished with `complete` first): answer each with an
    /// I/O error (through `failed`), and start over with empty rings, to be
    /// handed to the device again. A held barrier stays held (the requests
    /// before it are done, if failed); with nothing in flight,
    /// `release_held` lets it go. A held flush fails too if anything was
    /// lost: it cannot promise that the writes before it are durable.
    pub fn reset(&mut self, dma: &impl Dma, mut failed: impl FnMut(Completion)) {
        let mut free = [false; MAX_IN_FLIGHT];
        for &s in self.free.iter() {
            free[s as usize] = true;
        }
        for (slot, _) in self.slots.iter().zip(free).filter(|(_, free)| !free) {
            failed(Completion { id: slot.id, status: Status::IoError, count: 0 });
        }
        if self.in_flight > 0 && self.held.is_some_and(|r| r.op == Op::Flush) {
            if let Some(flush) = self.held.take() {
                failed(Completion { id: flush.id, status: Status::IoError, count: 0 });
            }
        }
        self.queue = SplitQueue::new(dma, self.queue.layout());
        self.free = (0..MAX_IN_FLIGHT as u8).rev().collect();
        self.in_flight = 0;
    }

    /// Take back the barrier or flush waiting for earlier requests, if any
    /// (the device is gone: it will never be sent).
    pub fn take_held(&mut self) -> Option<Request> {
        self.held.take()
    }

    /// Once nothing is in flight, let a held barrier or flush go: a barrier
    /// completes at once, a flush goes to the device.
    pub fn release_held(&mut self, dma: &impl Dma) -> Option<Submitted> {
        if self.in_flight > 0 {
            return None;
        }
        let req = self.held.take()?;
        Some(self.submit(dma, req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeDevice, FakeDma};

    const DATA: usize = 0x4000;

    fn setup(sectors: u64, ro: bool, flush: bool) -> (FakeDma, Engine, FakeDevice) {
        let dma = FakeDma::new(0x4000 + 64 * 4096 * 2, 0x4800_0000);
        let layout = Layout::new(256, 0);
        let area = SlotArea::at(layout.end.next_multiple_of(16));
        assert!(area.status + MAX_IN_FLIGHT <= DATA);
        let engine = Engine::new(&dma, layout, area, sectors, ro, flush);
        let device = FakeDevice::new(layout, sectors);
        (dma, engine, device)
    }

    fn rw(id: u64, op: Op, block: u64, count: u32, buf: usize) -> Request {
        Request { id, op, block, count, dma_addr: 0x4800_0000 + buf as u64 }
    }

    #[test]
    fn many_requests_in_flight_complete_out_of_order_with_the_right_data() {
        let (dma, mut e, mut dev) = setup(8 * 1024, false, true);
        // 64 single-block writes of distinct patterns, all in flight at once.
        for i in 0..64u32 {
            dma.fill(DATA + i as usize * 4096, 4096, i as u8 + 1);
            assert!(e.can_accept());
            assert_eq!(e.submit(&dma, rw(100 + i as u64, Op::Write, i as u64 * 3, 1, DATA + i as usize * 4096)), Submitted::Started);
        }
        assert!(!e.can_accept(), "64 in flight is the limit");
        assert_eq!(e.in_flight(), 64);
        dev.process_reversed(&dma);
        let mut ids: Vec<u64> = core::iter::from_fn(|| e.complete(&dma)).map(|c| {
            assert_eq!((c.status, c.count), (Status::Ok, 1));
            c.id
        }).collect();
        assert_eq!(ids.first(), Some(&163), "the device finished the last one first");
        ids.sort();
        assert_eq!(ids, (100..164).collect::<Vec<_>>());
        for i in 0..64u64 {
            assert!(dev.block(i * 3).iter().all(|&b| b == i as u8 + 1), "block {}", i * 3);
        }
        // Read two of them back into a fresh buffer.
        dma.fill(DATA, 2 * 4096, 0);
        assert_eq!(e.submit(&dma, rw(7, Op::Read, 3, 2, DATA)), Submitted::Started);
        dev.process_reversed(&dma);
        assert_eq!(e.complete(&dma), Some(Completion { id: 7, status: Status::Ok, count: 2 }));
        assert!(dma.bytes(DATA, 4096).iter().all(|&b| b == 2));
        assert!(dma.bytes(DATA + 4096, 4096).iter().all(|&b| b == 0), "block 4 was never written");
    }

    #[test]
    fn out_of_range_zero_and_read_only_requests_are_refused_without_the_device() {
        let (dma, mut e, _dev) = setup(8 * 16, true, true);
        assert_eq!(e.capacity_blocks(), 16);
        for req in [rw(1, Op::Read, 16, 1, DATA), rw(2, Op::Read, 15, 2, DATA), rw(3, Op::Read, u64::MAX, 2, DATA), rw(4, Op::Read, 0, 0, DATA), rw(5, Op::Write, 0, 1, DATA)] {
            assert_eq!(e.submit(&dma, req), Submitted::Done(Completion { id: req.id, status: Status::InvalidRequest, count: 0 }));
        }
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn a_confined_requester_reaches_only_its_windows_with_their_rights() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        let base = 0x4800_0000 + DATA as u64;
        // Four blocks the device may fill, then a gap, then one block it
        // may only read.
        e.confine(&[
            Window { paddr: base, size: 4 * BLOCK_SIZE, device_writes: 1, _reserved: 0 },
            Window { paddr: base + 8 * BLOCK_SIZE, size: BLOCK_SIZE, device_writes: 0, _reserved: 0 },
        ]);
        let block = BLOCK_SIZE as usize;
        let refused = [
            rw(1, Op::Read, 0, 1, DATA - block),    // before the first window
            rw(2, Op::Read, 0, 2, DATA + 3 * block), // runs past its end
            rw(3, Op::Read, 0, 5, DATA),             // longer than it
            rw(4, Op::Read, 0, 1, DATA + 4 * block), // in the gap
            rw(5, Op::Read, 0, 1, DATA + 8 * block), // fills a window the device may only read
            rw(6, Op::Write, 0, 2, DATA + 8 * block), // reads past that one
            Request { id: 7, op: Op::Read, block: 0, count: 1, dma_addr: u64::MAX - 100 }, // the end overflows
        ];
        for req in refused {
            assert_eq!(e.submit(&dma, req), Submitted::Done(Completion { id: req.id, status: Status::InvalidRequest, count: 0 }), "{req:?}");
        }
        assert_eq!(e.in_flight(), 0, "the device saw none of them");
        for req in [rw(10, Op::Read, 0, 4, DATA), rw(11, Op::Write, 1, 1, DATA + 3 * block), rw(12, Op::Write, 2, 1, DATA + 8 * block)] {
            assert_eq!(e.submit(&dma, req), Submitted::Started, "{req:?}");
        }
        dev.process_reversed(&dma);
        let mut done: Vec<_> = core::iter::from_fn(|| e.complete(&dma)).map(|c| (c.id, c.status == Status::Ok)).collect();
        done.sort();
        assert_eq!(done, [(10, true), (11, true), (12, true)]);
    }

    #[test]
    fn a_requester_confined_to_one_window_reaches_only_it() {
        let (dma, mut e, _dev) = setup(8 * 64, false, true);
        let block = BLOCK_SIZE as usize;
        e.confine(&[Window { paddr: 0x4800_0000 + DATA as u64, size: 2 * BLOCK_SIZE, device_writes: 0, _reserved: 0 }]);
        for req in [rw(1, Op::Read, 0, 1, DATA), rw(2, Op::Write, 0, 1, DATA + 2 * block), rw(3, Op::Write, 0, 3, DATA)] {
            assert_eq!(e.submit(&dma, req), Submitted::Done(Completion { id: req.id, status: Status::InvalidRequest, count: 0 }), "{req:?}");
        }
        assert_eq!(e.submit(&dma, rw(4, Op::Write, 0, 2, DATA)), Submitted::Started);
    }

    #[test]
    fn a_barrier_waits_for_earlier_requests_and_holds_later_ones() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        e.submit(&dma, rw(1, Op::Write, 0, 1, DATA));
        assert_eq!(e.submit(&dma, rw(2, Op::Barrier, 0, 0, 0)), Submitted::Held);
        assert!(!e.can_accept(), "nothing starts behind a waiting barrier");
        assert_eq!(e.release_held(&dma), None);
        dev.process_reversed(&dma);
        assert_eq!(e.complete(&dma).map(|c| c.id), Some(1));
        assert_eq!(e.release_held(&dma), Some(Submitted::Done(Completion { id: 2, status: Status::Ok, count: 0 })));
        assert!(e.can_accept());
    }

    #[test]
    fn a_flush_drains_then_reaches_the_device() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        e.submit(&dma, rw(1, Op::Write, 5, 1, DATA));
        assert_eq!(e.submit(&dma, rw(2, Op::Flush, 0, 0, 0)), Submitted::Held);
        dev.process_reversed(&dma);
        assert_eq!(e.complete(&dma).map(|c| c.id), Some(1));
        assert_eq!(dev.flushes, 0);
        assert_eq!(e.release_held(&dma), Some(Submitted::Started));
        dev.process_reversed(&dma);
        assert_eq!(dev.flushes, 1, "the device saw a flush command");
        assert_eq!(e.complete(&dma), Some(Completion { id: 2, status: Status::Ok, count: 0 }));
    }

    #[test]
    fn a_flush_of_completed_writes_goes_to_the_device_at_once() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        e.submit(&dma, rw(1, Op::Write, 5, 1, DATA));
        assert_eq!(e.submit(&dma, rw(2, Op::FlushCompleted, 0, 0, 0)), Submitted::Started);
        assert!(e.can_accept(), "nothing is held behind it");
        assert_eq!(e.submit(&dma, rw(3, Op::Read, 6, 1, DATA + 4096)), Submitted::Started);
        dev.process_reversed(&dma);
        let mut ids: Vec<_> = core::iter::from_fn(|| e.complete(&dma)).map(|c| (c.id, c.status, c.count)).collect();
        ids.sort_by_key(|&(id, ..)| id);
        assert_eq!(ids, [(1, Status::Ok, 1), (2, Status::Ok, 0), (3, Status::Ok, 1)]);
        assert_eq!(dev.flushes, 1);
    }

    #[test]
    fn a_flush_names_sector_0_and_answers_0_blocks_whatever_its_fields_say() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        for (id, block) in [(1, 5), (2, u64::MAX)] {
            let flush = Request { id, op: Op::Flush, block, count: 77, dma_addr: 0 };
            assert_eq!(e.submit(&dma, flush), Submitted::Started);
            // The first slot's header is reused: it was freed above.
            assert_eq!(dma.read_u64(e.area.headers + 8), 0, "the header's sector");
            dev.process_reversed(&dma);
            assert_eq!(e.complete(&dma), Some(Completion { id, status: Status::Ok, count: 0 }));
        }
    }

    #[test]
    fn a_transfer_too_long_for_one_descriptor_is_refused() {
        // 8 GiB: room for a 4 GiB transfer, which a 32-bit length cannot say.
        let (dma, mut e, _dev) = setup(8 << 21, false, true);
        let req = rw(1, Op::Read, 0, MAX_BLOCKS_PER_REQUEST + 1, DATA);
        assert_eq!(e.submit(&dma, req), Submitted::Done(Completion { id: 1, status: Status::InvalidRequest, count: 0 }));
        assert_eq!(e.submit(&dma, rw(2, Op::Read, 0, MAX_BLOCKS_PER_REQUEST, DATA)), Submitted::Started);
    }

    #[test]
    fn without_a_device_cache_a_flush_only_drains() {
        let (dma, mut e, dev) = setup(8 * 64, false, false);
        assert_eq!(e.submit(&dma, rw(9, Op::Flush, 0, 0, 0)), Submitted::Done(Completion { id: 9, status: Status::Ok, count: 0 }));
        let completed = rw(10, Op::FlushCompleted, 0, 0, 0);
        assert_eq!(e.submit(&dma, completed), Submitted::Done(Completion { id: 10, status: Status::Ok, count: 0 }));
        assert_eq!(dev.flushes, 0);
    }

    #[test]
    fn a_reset_fails_the_requests_in_flight_once_and_the_queue_works_again() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        // Two requests done before the trouble, three in flight when the
        // device stops, and a flush held behind them.
        for i in 0..5u64 {
            dma.fill(DATA + i as usize * 4096, 4096, 0x10 + i as u8);
            e.submit(&dma, rw(i, Op::Write, i, 1, DATA + i as usize * 4096));
            if i == 1 {
                dev.process_reversed(&dma);
                assert_eq!(e.complete(&dma).map(|c| c.id), Some(1));
                assert_eq!(e.complete(&dma).map(|c| c.id), Some(0));
            }
        }
        assert_eq!(e.submit(&dma, rw(9, Op::Flush, 0, 0, 0)), Submitted::Held);
        let mut failed = Vec::new();
        e.reset(&dma, |c| failed.push(c));
        failed.sort_by_key(|c| c.id);
        let io_error = |id| Completion { id, status: Status::IoError, count: 0 };
        assert_eq!(failed, [io_error(2), io_error(3), io_error(4), io_error(9)], "the flush cannot cover lost writes");
        assert_eq!(e.in_flight(), 0);
        assert_eq!(e.complete(&dma), None, "nothing is owed any more");
        assert_eq!(e.release_held(&dma), None);
        dev.reset();
        // The queue works as new.
        dma.fill(DATA, 4096, 0x77);
        assert_eq!(e.submit(&dma, rw(10, Op::Write, 3, 1, DATA)), Submitted::Started);
        assert_eq!(e.submit(&dma, rw(11, Op::Flush, 0, 0, 0)), Submitted::Held);
        dev.process_reversed(&dma);
        assert_eq!(e.complete(&dma), Some(Completion { id: 10, status: Status::Ok, count: 1 }));
        assert_eq!(e.release_held(&dma), Some(Submitted::Started));
        dev.process_reversed(&dma);
        assert_eq!(e.complete(&dma), Some(Completion { id: 11, status: Status::Ok, count: 0 }));
        assert_eq!(dev.flushes, 1);
        assert!(dev.block(3).iter().all(|&b| b == 0x77));
        assert!(dev.block(1).iter().all(|&b| b == 0x11), "a write done before the reset stays done");
        // All the slots are free again.
        for i in 0..64u64 {
            assert_eq!(e.submit(&dma, rw(20 + i, Op::Read, i, 1, DATA + i as usize * 4096)), Submitted::Started);
        }
        assert!(!e.can_accept());
    }

    #[test]
    fn a_barrier_held_behind_lost_requests_passes_once_they_are_answered() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        e.submit(&dma, rw(1, Op::Write, 0, 1, DATA));
        assert_eq!(e.submit(&dma, rw(2, Op::Barrier, 0, 0, 0)), Submitted::Held);
        let mut failed = Vec::new();
        e.reset(&dma, |c| failed.push(c.id));
        assert_eq!(failed, [1]);
        dev.reset();
        assert_eq!(e.release_held(&dma), Some(Submitted::Done(Completion { id: 2, status: Status::Ok, count: 0 })));
    }

    #[test]
    fn a_held_barrier_can_be_taken_back_when_the_device_is_gone() {
        let (dma, mut e, _dev) = setup(8 * 64, false, true);
        e.submit(&dma, rw(1, Op::Read, 0, 1, DATA));
        let barrier = rw(2, Op::Barrier, 0, 0, 0);
        assert_eq!(e.submit(&dma, barrier), Submitted::Held);
        e.reset(&dma, |_| {});
        assert_eq!(e.take_held(), Some(barrier));
        assert_eq!(e.release_held(&dma), None, "nothing left to release");
    }

    #[test]
    fn device_errors_are_reported_with_no_blocks_done() {
        let (dma, mut e, mut dev) = setup(8 * 64, false, true);
        dev.fail_next = true;
        e.submit(&dma, rw(3, Op::Read, 1, 4, DATA));
        dev.process_reversed(&dma);
        assert_eq!(e.complete(&dma), Some(Completion { id: 3, status: Status::IoError, count: 0 }));
    }
}
