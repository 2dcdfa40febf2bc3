//! Physical memory: a bump allocator over RAM that steps around ranges
//! already taken (the kernel, regions with a fixed `phys_addr`).

use std::ops::Range;

pub struct PhysAlloc {
    next: u64,
    end: u64,
    taken: Vec<Range<u64>>,
}

impl PhysAlloc {
    /// Allocate from `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        PhysAlloc { next: start, end, taken: Vec::new() }
    }

    /// Mark a range as used so allocations avoid it.
    pub fn reserve(&mut self, r: Range<u64>) {
        self.taken.push(r);
    }

    /// `size` bytes aligned to `align`, or `None` when RAM is exhausted.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let mut start = self.next.div_ceil(align) * align;
        loop {
            let end = start.checked_add(size)?;
            match self.taken.iter().find(|t| t.start < end && start < t.end) {
                Some(t) => start = t.end.div_ceil(align) * align,
                None if end <= self.end => {
                    self.next = end;
                    return Some(start);
                }
                None => return None,
            }
        }
    }

    /// The first address not yet handed out.
    pub fn high_water(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mut a = PhysAlloc::new(0x1000, 0x100_0000);
        let x = a.alloc(0x1000, 0x1000).unwrap();
        let y = a.alloc(0x20_0000, 0x20_0000).unwrap();
        let z = a.alloc(0x3000, 0x1000).unwrap();
        assert_eq!(x, 0x1000);
        assert_eq!(y, 0x20_0000);
        assert_eq!(z, 0x40_0000);
    }

    #[test]
    fn reserved_ranges_are_skipped() {
        let mut a = PhysAlloc::new(0, 0x10_0000);
        a.reserve(0x1000..0x3000);
        assert_eq!(a.alloc(0x2000, 0x1000), Some(0x3000));
        assert_eq!(a.alloc(0x1000, 0x1000), Some(0x5000));
    }

    #[test]
    fn exhaustion_is_reported() {
        let mut a = PhysAlloc::new(0, 0x2000);
        assert!(a.alloc(0x2000, 0x1000).is_some());
        assert_eq!(a.alloc(0x1000, 0x1000), None);
        assert_eq!(PhysAlloc::new(0x1000, u64::MAX).alloc(u64::MAX, 0x1000), None, "size overflows");
    }
}
