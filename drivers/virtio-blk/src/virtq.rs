//! One split virtqueue (virtio 1.x, section 2.7): a descriptor table, the
//! available ring the driver fills and the used ring the device fills, all
//! in DMA memory. The free list and chain lengths are kept in driver memory,
//! never read back from memory the device can write.

use crate::Dma;

pub const MAX_SIZE: usize = 256;

const DESC_SIZE: usize = 16;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// Where a queue's parts sit in the DMA region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u16,
    pub desc: usize,
    pub avail: usize,
    pub used: usize,
    /// First byte after the queue.
    pub end: usize,
}

impl Layout {
    /// A queue of `size` entries (a power of two up to [`MAX_SIZE`])
    /// starting at `base` (16-byte aligned).
    pub fn new(size: u16, base: usize) -> Layout {
        assert!(size.is_power_of_two() && size as usize <= MAX_SIZE && base % 16 == 0);
        let n = size as usize;
        let desc = base;
        let avail = desc + DESC_SIZE * n;
        // flags, idx, ring[n], used_event
        let used = (avail + 4 + 2 * n + 2).next_multiple_of(4);
        // flags, idx, ring[n] of {id: u32, len: u32}, avail_event
        let end = used + 4 + 8 * n + 2;
        Layout { size, desc, avail, used, end }
    }
}

/// A buffer in a chain: device address, length, and whether the device
/// writes it (else it reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

pub struct SplitQueue {
    layout: Layout,
    /// Next free descriptor after each free one (a stack threaded through).
    free_next: [u16; MAX_SIZE],
    free_head: u16,
    num_free: u16,
    /// Descriptors in the chain starting at each in-flight head (0 = free).
    chain_len: [u8; MAX_SIZE],
    chain_next: [u16; MAX_SIZE],
    avail_idx: u16,
    last_used: u16,
}

impl SplitQueue {
    /// Initialise the rings in `dma` (all zero: no buffers, no
    /// interrupts suppressed).
    pub fn new(dma: &impl Dma, layout: Layout) -> SplitQueue {
        let n = layout.size as usize;
        for off in layout.desc..layout.end {
            dma.write_u8(off, 0);
        }
        let mut free_next = [0u16; MAX_SIZE];
        for (i, f) in free_next.iter_mut().enumerate().take(n) {
            *f = (i + 1) as u16;
        }
        SplitQueue {
            layout,
            free_next,
            free_head: 0,
            num_free: layout.size,
            chain_len: [0; MAX_SIZE],
            chain_next: [0; MAX_SIZE],
            avail_idx: 0,
            last_used: 0,
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// Put a chain of buffers on the available ring; returns its head
    /// descriptor, or `None` if there are not enough free descriptors.
    pub fn add(&mut self, dma: &impl Dma, bufs: &[Buffer]) -> Option<u16> {
        if bufs.is_empty() || bufs.len() > self.num_free as usize || bufs.len() > u8::MAX as usize {
            return None;
        }
        let head = self.free_head;
        let mut d = head;
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let next = self.free_next[d as usize];
            let off = self.layout.desc + DESC_SIZE * d as usize;
            let flags = if last { 0 } else { F_NEXT } | if b.device_writes { F_WRITE } else { 0 };
            let link = if last { 0 } else { next };
            // A descriptor is addr (8 bytes), then len (4), flags (2) and
            // next (2), little-endian: two 64-bit stores.
            dma.write_u64(off, b.addr);
            dma.write_u64(off + 8, b.len as u64 | (flags as u64) << 32 | (link as u64) << 48);
            self.chain_next[d as usize] = next;
            if !last {
                d = next;
            }
        }
        self.free_head = self.free_next[d as usize];
        self.num_free -= bufs.len() as u16;
        self.chain_len[head as usize] = bufs.len() as u8;

        let slot = self.layout.avail + 4 + 2 * (self.avail_idx % self.layout.size) as usize;
        dma.write_u16(slot, head);
        // The descriptors and the ring entry must be visible before the index.
        dma.barrier();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        dma.write_u16(self.layout.avail + 2, self.avail_idx);
        dma.barrier();
        Some(head)
    }

    /// The next chain the device finished: its head and the bytes it wrote.
    /// Entries naming a descriptor that is not an in-flight head (a device
    /// bug) are skipped.
    pub fn pop_used(&mut self, dma: &impl Dma) -> Option<(u16, u32)> {
        loop {
            let used_idx = dma.read_u16(self.layout.used + 2);
            if used_idx == self.last_used {
                return None;
            }
            // Read the entry only after seeing the index move.
            dma.barrier();
            let entry = self.layout.used + 4 + 8 * (self.last_used % self.layout.size) as usize;
            let id = dma.read_u32(entry);
            let len = dma.read_u32(entry + 4);
            self.last_used = self.last_used.wrapping_add(1);
            if (id as usize) < self.layout.size as usize && self.chain_len[id as usize] != 0 {
                self.free_chain(id as u16);
                return Some((id as u16, len));
            }
        }
    }

    fn free_chain(&mut self, head: u16) {
        let len = self.chain_len[head as usize] as u16;
        self.chain_len[head as usize] = 0;
        let mut d = head;
        for i in 0..len {
            let next = self.chain_next[d as usize];
            self.free_next[d as usize] = if i + 1 == len { self.free_head } else { next };
            d = next;
        }
        self.free_head = head;
        self.num_free += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeDma;

    #[test]
    fn layout_places_rings_after_the_table_aligned() {
        let l = Layout::new(128, 0x1000);
        assert_eq!(l.desc, 0x1000);
        assert_eq!(l.avail, 0x1000 + 16 * 128);
        assert_eq!(l.used % 4, 0);
        assert!(l.used >= l.avail + 4 + 2 * 128 + 2);
        assert_eq!(l.end, l.used + 4 + 8 * 128 + 2);
    }

    #[test]
    fn chains_are_written_linked_and_published() {
        let dma = FakeDma::new(0x8000, 0x4000_0000);
        let mut q = SplitQueue::new(&dma, Layout::new(8, 0));
        let bufs = [
            Buffer { addr: 0x100, len: 16, device_writes: false },
            Buffer { addr: 0x200, len: 4096, device_writes: true },
            Buffer { addr: 0x300, len: 1, device_writes: true },
        ];
        let head = q.add(&dma, &bufs).unwrap();
        assert_eq!(q.num_free(), 5);
        let l = q.layout();
        assert_eq!(dma.read_u16(l.avail + 2), 1, "avail idx");
        assert_eq!(dma.read_u16(l.avail + 4), head);
        let mut d = head as usize;
        for (i, b) in bufs.iter().enumerate() {
            let off = l.desc + 16 * d;
            assert_eq!(dma.read_u64(off), b.addr);
            assert_eq!(dma.read_u32(off + 8), b.len);
            let flags = dma.read_u16(off + 12);
            assert_eq!(flags & F_WRITE != 0, b.device_writes);
            assert_eq!(flags & F_NEXT != 0, i < 2);
            d = dma.read_u16(off + 14) as usize;
        }
    }

    #[test]
    fn used_chains_return_their_descriptors_in_any_order() {
        let dma = FakeDma::new(0x8000, 0x4000_0000);
        let mut q = SplitQueue::new(&dma, Layout::new(8, 0));
        let b = [Buffer { addr: 0, len: 1, device_writes: true }; 2];
        let h1 = q.add(&dma, &b).unwrap();
        let h2 = q.add(&dma, &b).unwrap();
        let h3 = q.add(&dma, &b).unwrap();
        assert_eq!(q.num_free(), 2);
        assert!(q.add(&dma, &[b[0]; 3]).is_none(), "not enough descriptors");
        let l = q.layout();
        for (i, h) in [h3, h1, h2].into_iter().enumerate() {
            dma.write_u32(l.used + 4 + 8 * i, h as u32);
            dma.write_u32(l.used + 8 + 8 * i, 7);
        }
        dma.write_u16(l.used + 2, 3);
        assert_eq!(q.pop_used(&dma), Some((h3, 7)));
        assert_eq!(q.pop_used(&dma), Some((h1, 7)));
        assert_eq!(q.pop_used(&dma), Some((h2, 7)));
        assert_eq!(q.pop_used(&dma), None);
        assert_eq!(q.num_free(), 8);
        // All eight descriptors are usable again.
        for _ in 0..4 {
            assert!(q.add(&dma, &b).is_some());
        }
    }

    #[test]
    fn bogus_used_entries_are_skipped() {
        let dma = FakeDma::new(0x8000, 0x4000_0000);
        let mut q = SplitQueue::new(&dma, Layout::new(8, 0));
        let h = q.add(&dma, &[Buffer { addr: 0, len: 1, device_writes: true }]).unwrap();
        let l = q.layout();
        dma.write_u32(l.used + 4, 99);
        dma.write_u32(l.used + 12, 5);
        dma.write_u32(l.used + 20, h as u32);
        dma.write_u16(l.used + 2, 3);
        assert_eq!(q.pop_used(&dma), Some((h, 0)));
        assert_eq!(q.pop_used(&dma), None);
    }

    #[test]
    fn indices_wrap_around() {
        let dma = FakeDma::new(0x8000, 0x4000_0000);
        let mut q = SplitQueue::new(&dma, Layout::new(4, 0));
        let l = q.layout();
        for round in 0..70_000u32 {
            let h = q.add(&dma, &[Buffer { addr: 0, len: 1, device_writes: true }]).unwrap();
            let i = (round % 4) as usize;
            dma.write_u32(l.used + 4 + 8 * i, h as u32);
            dma.write_u16(l.used + 2, (round + 1) as u16);
            assert_eq!(q.pop_used(&dma), Some((h, 0)));
        }
    }
}
