//! Host fakes: DMA memory backed by a vector, and a virtio-blk device that
//! serves the queue from a RAM disk, completing requests in reverse order.

use crate::mmio::{self, Registers};
use crate::virtq::Layout;
use crate::Dma;
use std::cell::{Cell, RefCell};

pub struct FakeDma {
    mem: RefCell<Vec<u8>>,
    paddr: u64,
}

impl FakeDma {
    pub fn new(len: usize, paddr: u64) -> FakeDma {
        FakeDma { mem: RefCell::new(vec![0; len]), paddr }
    }
    pub fn read_u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.mem.borrow()[off..off + 8].try_into().unwrap())
    }
    pub fn fill(&self, off: usize, len: usize, v: u8) {
        self.mem.borrow_mut()[off..off + len].fill(v);
    }
    pub fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        self.mem.borrow()[off..off + len].to_vec()
    }
    fn off(&self, paddr: u64) -> usize {
        (paddr - self.paddr) as usize
    }
}

impl Dma for FakeDma {
    fn paddr(&self) -> u64 {
        self.paddr
    }
    fn len(&self) -> usize {
        self.mem.borrow().len()
    }
    fn read_u8(&self, off: usize) -> u8 {
        self.mem.borrow()[off]
    }
    fn write_u8(&self, off: usize, v: u8) {
        self.mem.borrow_mut()[off] = v;
    }
    fn read_u16(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.mem.borrow()[off..off + 2].try_into().unwrap())
    }
    fn write_u16(&self, off: usize, v: u16) {
        self.mem.borrow_mut()[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn read_u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.mem.borrow()[off..off + 4].try_into().unwrap())
    }
    fn write_u32(&self, off: usize, v: u32) {
        self.mem.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn write_u64(&self, off: usize, v: u64) {
        self.mem.borrow_mut()[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn barrier(&self) {}
}

/// A virtio-blk device over a RAM disk of 512-byte sectors.
pub struct FakeDevice {
    layout: Layout,
    disk: Vec<u8>,
    seen_avail: u16,
    used_idx: u16,
    /// Chains taken from the available ring and not yet served.
    pub pending: Vec<u16>,
    pub flushes: u32,
    pub fail_next: bool,
}

/// What the device did with one chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// The virtio request type: 0 read, 1 write, 4 flush.
    pub kind: u32,
    pub sector: u64,
    /// The data buffer's address (none for a flush).
    pub data: Option<u64>,
    pub failed: bool,
}

impl FakeDevice {
    pub fn new(layout: Layout, sectors: u64) -> FakeDevice {
        FakeDevice { layout, disk: vec![0; sectors as usize * 512], seen_avail: 0, used_idx: 0, pending: Vec::new(), flushes: 0, fail_next: false }
    }

    /// What a device reset does: it forgets the queue's indices and the
    /// chains it had taken.
    pub fn reset(&mut self) {
        self.seen_avail = 0;
        self.used_idx = 0;
        self.pending.clear();
    }

    /// Take every newly available chain, to be served later.
    pub fn take_available(&mut self, dma: &FakeDma) {
        let l = self.layout;
        let avail_idx = dma.read_u16(l.avail + 2);
        while self.seen_avail != avail_idx {
            self.pending.push(dma.read_u16(l.avail + 4 + 2 * (self.seen_avail % l.size) as usize));
            self.seen_avail = self.seen_avail.wrapping_add(1);
        }
    }

    /// Serve the `i`-th chain taken and not yet served, and put it in the
    /// used ring.
    pub fn serve_pending(&mut self, dma: &FakeDma, i: usize) -> Served {
        let head = self.pending.remove(i);
        let l = self.layout;
        let (written, served) = self.serve(dma, head);
        let e = l.used + 4 + 8 * (self.used_idx % l.size) as usize;
        dma.write_u32(e, head as u32);
        dma.write_u32(e + 4, written);
        self.used_idx = self.used_idx.wrapping_add(1);
        dma.write_u16(l.used + 2, self.used_idx);
        served
    }

    pub fn block(&self, block: u64) -> &[u8] {
        &self.disk[block as usize * 4096..(block as usize + 1) * 4096]
    }

    /// Take every newly available chain and complete them, last first.
    pub fn process_reversed(&mut self, dma: &FakeDma) {
        self.take_available(dma);
        while let Some(last) = self.pending.len().checked_sub(1) {
            self.serve_pending(dma, last);
        }
    }

    fn serve(&mut self, dma: &FakeDma, head: u16) -> (u32, Served) {
        let l = self.layout;
        let mut chain = Vec::new();
        let mut d = head as usize;
        loop {
            let off = l.desc + 16 * d;
            let (addr, len, flags, next) = (dma.read_u64(off), dma.read_u32(off + 8), dma.read_u16(off + 12), dma.read_u16(off + 14));
            chain.push((addr, len, flags & 2 != 0));
            if flags & 1 == 0 {
                break;
            }
            d = next as usize;
        }
        let hdr = dma.off(chain[0].0);
        let (kind, sector) = (dma.read_u32(hdr), dma.read_u64(hdr + 8));
        let status = dma.off(chain.last().unwrap().0);
        let mut st = 0u8;
        let mut written = 1;
        let failed = std::mem::take(&mut self.fail_next);
        if failed {
            st = 1;
        } else if kind == 4 {
            self.flushes += 1;
        } else {
            let (addr, len, device_writes) = chain[1];
            let at = sector as usize * 512;
            let buf = dma.off(addr);
            if kind == 0 {
                assert!(device_writes);
                let data = self.disk[at..at + len as usize].to_vec();
                dma.mem.borrow_mut()[buf..buf + len as usize].copy_from_slice(&data);
                written += len;
            } else {
                assert!(!device_writes);
                self.disk[at..at + len as usize].copy_from_slice(&dma.bytes(buf, len as usize));
            }
        }
        dma.write_u8(status, st);
        let data = (chain.len() == 3).then(|| chain[1].0);
        (written, Served { kind, sector, data, failed })
    }
}

/// The registers of a virtio-mmio (version 2) block device: feature
/// negotiation, status, queue 0's size and ready flag. A reset may take a
/// few reads of the status to show.
pub struct FakeRegs {
    pub offered: u64,
    pub queue_max: u32,
    pub queue_ready: Cell<u32>,
    /// Queue 0's size and its three addresses, as last written.
    pub queue: Cell<(u32, u64, u64, u64)>,
    /// Reads of the status that still show the old value after a reset.
    pub reset_reads: Cell<u32>,
    pub status: Cell<u32>,
    /// The status values the driver wrote, in order.
    pub status_writes: RefCell<Vec<u32>>,
    pub accepted: Cell<u64>,
    /// What the slot holds (0: nothing).
    pub device_id: Cell<u32>,
    features_sel: Cell<u32>,
    driver_features_sel: Cell<u32>,
}

impl FakeRegs {
    pub fn new(offered: u64, queue_max: u32) -> FakeRegs {
        FakeRegs {
            offered,
            queue_max,
            queue_ready: Cell::new(0),
            queue: Cell::new((0, 0, 0, 0)),
            reset_reads: Cell::new(0),
            status: Cell::new(0),
            status_writes: RefCell::new(Vec::new()),
            accepted: Cell::new(0),
            device_id: Cell::new(mmio::DEVICE_ID_BLOCK),
            features_sel: Cell::new(0),
            driver_features_sel: Cell::new(0),
        }
    }
}

impl Registers for FakeRegs {
    fn read(&self, off: usize) -> u32 {
        match off {
            mmio::MAGIC_VALUE => mmio::MAGIC,
            mmio::VERSION => 2,
            mmio::DEVICE_ID => self.device_id.get(),
            mmio::DEVICE_FEATURES => (self.offered >> (32 * self.features_sel.get())) as u32,
            mmio::QUEUE_NUM_MAX => self.queue_max,
            mmio::QUEUE_READY => self.queue_ready.get(),
            mmio::STATUS if self.reset_reads.get() > 0 => {
                self.reset_reads.set(self.reset_reads.get() - 1);
                mmio::status::DRIVER_OK
            }
            mmio::STATUS => self.status.get(),
            _ => 0,
        }
    }

    fn write(&self, off: usize, v: u32) {
        match off {
            mmio::DEVICE_FEATURES_SEL => self.features_sel.set(v),
            mmio::DRIVER_FEATURES_SEL => self.driver_features_sel.set(v),
            mmio::DRIVER_FEATURES => {
                let shift = 32 * self.driver_features_sel.get();
                let kept = self.accepted.get() & !(0xffff_ffffu64 << shift);
                self.accepted.set(kept | (v as u64) << shift);
            }
            mmio::QUEUE_READY => self.queue_ready.set(v),
            mmio::QUEUE_NUM => {
                let (_, desc, driver, device) = self.queue.get();
                self.queue.set((v, desc, driver, device));
            }
            mmio::QUEUE_DESC_LOW | mmio::QUEUE_DESC_HIGH | mmio::QUEUE_DRIVER_LOW | mmio::QUEUE_DRIVER_HIGH | mmio::QUEUE_DEVICE_LOW | mmio::QUEUE_DEVICE_HIGH => {
                let (n, mut desc, mut driver, mut device) = self.queue.get();
                let field = match off {
                    mmio::QUEUE_DESC_LOW | mmio::QUEUE_DESC_HIGH => &mut desc,
                    mmio::QUEUE_DRIVER_LOW | mmio::QUEUE_DRIVER_HIGH => &mut driver,
                    _ => &mut device,
                };
                let shift = if off % 8 == 4 { 32 } else { 0 };
                *field = *field & !(0xffff_ffffu64 << shift) | (v as u64) << shift;
                self.queue.set((n, desc, driver, device));
            }
            mmio::STATUS => {
                self.status_writes.borrow_mut().push(v);
                self.status.set(v);
                if v == 0 {
                    self.queue_ready.set(0);
                }
            }
            _ => {}
        }
    }
}
