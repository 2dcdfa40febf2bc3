//! The filter's bounce buffer as a pool of 4 KiB pages: each write takes a
//! run of pages for its encrypted copy in its pre-op and gives them back
//! in its post-op (the state word says which).

/// Pages the pool can hold at most: the 8 MiB of bounce buffer the
/// program declares (`src/bin/filter_crypt.rs`; a test holds them equal).
pub const MAX_PAGES: usize = 2048;
const WORDS: usize = MAX_PAGES / 64;

/// A first-fit allocator of runs of pages, one bit a page.
pub struct Pool {
    used: [u64; WORDS],
    pages: usize,
}

impl Pool {
    /// A pool of `pages` pages (at most [`MAX_PAGES`]).
    pub fn new(pages: usize) -> Pool {
        Pool { used: [0; WORDS], pages: pages.min(MAX_PAGES) }
    }

    fn is_used(&self, page: usize) -> bool {
        self.used[page / 64] & 1 << (page % 64) != 0
    }

    fn mark(&mut self, first: usize, count: usize, used: bool) {
        for page in first..first + count {
            let bit = 1u64 << (page % 64);
            if used {
                self.used[page / 64] |= bit;
            } else {
                self.used[page / 64] &= !bit;
            }
        }
    }

    /// Take a run of `count` free pages; its first page.
    pub fn take(&mut self, count: usize) -> Option<usize> {
        if count == 0 || count > self.pages {
            return None;
        }
        let mut first = 0;
        while first + count <= self.pages {
            match (first..first + count).rev().find(|&p| self.is_used(p)) {
                // Skip past the used page: no run can include it.
                Some(used) => first = used + 1,
                None => {
                    self.mark(first, count, true);
                    return Some(first);
                }
            }
        }
        None
    }

    /// Give back the run `first .. first + count` (pages past the pool are
    /// ignored).
    pub fn give(&mut self, first: usize, count: usize) {
        let end = first.saturating_add(count).min(self.pages);
        if first < end {
            self.mark(first, end - first, false);
        }
    }

    /// Pages in the pool.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Pages in use.
    pub fn used(&self) -> usize {
        self.used.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_taken_first_fit_and_given_back() {
        let mut p = Pool::new(8);
        assert_eq!(p.take(3), Some(0));
        assert_eq!(p.take(3), Some(3));
        assert_eq!(p.take(3), None, "only 2 left");
        assert_eq!(p.take(2), Some(6));
        p.give(3, 3);
        assert_eq!(p.take(4), None, "the hole is 3 pages");
        assert_eq!(p.take(3), Some(3));
        p.give(0, 8);
        assert_eq!(p.used(), 0);
        assert_eq!(p.take(8), Some(0));
        assert_eq!(p.take(0), None);
        assert_eq!(Pool::new(4).take(5), None);
    }

    #[test]
    fn random_traffic_never_hands_out_a_page_twice() {
        let mut p = Pool::new(100);
        let mut owner = [usize::MAX; 100];
        let mut held: Vec<(usize, usize)> = Vec::new();
        let mut seed = 12345u64;
        for i in 0..20_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if seed >> 63 == 0 || held.is_empty() {
                let count = 1 + (seed >> 40) as usize % 16;
                if let Some(first) = p.take(count) {
                    for page in first..first + count {
                        assert_eq!(owner[page], usize::MAX, "page {page} handed out twice");
                        owner[page] = i;
                    }
                    held.push((first, count));
                }
            } else {
                let (first, count) = held.swap_remove((seed >> 32) as usize % held.len());
                for o in &mut owner[first..first + count] {
                    *o = usize::MAX;
                }
                p.give(first, count);
            }
            assert_eq!(p.used(), held.iter().map(|h| h.1).sum::<usize>());
        }
    }
}
