//! Run queues: fixed priorities 0-254, FIFO (round robin) within a priority.
//!
//! The running PD is not in the queues; the scheduler compares it with the
//! best queued PD at each kernel exit. One bit per non-empty priority makes
//! finding the best PD a couple of instructions.

use crate::pd::PdId;
use abi::MAX_PDS;

const NONE: u8 = u8::MAX;
const LEVELS: usize = 256;

#[derive(Clone)]
pub struct RunQueues {
    /// Bit w set when `bitmap[w]` is non-zero: two leading-zero counts find
    /// the best priority.
    summary: u64,
    /// Bit p set when priority p's queue is non-empty.
    bitmap: [u64; LEVELS / 64],
    head: [u8; LEVELS],
    tail: [u8; LEVELS],
    next: [u8; MAX_PDS],
}

impl RunQueues {
    pub const fn new() -> Self {
        RunQueues { summary: 0, bitmap: [0; 4], head: [NONE; LEVELS], tail: [NONE; LEVELS], next: [NONE; MAX_PDS] }
    }

    /// Append `pd` behind the others of its priority. The caller knows it
    /// is not queued (the kernel keeps exactly the runnable PDs other than
    /// the running one queued).
    pub fn push_back(&mut self, pd: PdId, prio: u8) {
        let p = prio as usize;
        self.next[pd] = NONE;
        match self.tail[p] {
            NONE => self.head[p] = pd as u8,
            t => self.next[t as usize] = pd as u8,
        }
        self.tail[p] = pd as u8;
        self.mark(p);
    }

    /// Put `pd` first among its priority: a PD that was running and got
    /// preempted keeps its turn.
    pub fn push_front(&mut self, pd: PdId, prio: u8) {
        let p = prio as usize;
        self.next[pd] = self.head[p];
        if self.head[p] == NONE {
            self.tail[p] = pd as u8;
        }
        self.head[p] = pd as u8;
        self.mark(p);
    }

    fn mark(&mut self, p: usize) {
        self.bitmap[p / 64] |= 1 << (p % 64);
        self.summary |= 1 << (p / 64);
    }

    /// The highest priority with a queued PD.
    pub fn highest(&self) -> Option<u8> {
        if self.summary == 0 {
            return None;
        }
        let word = 63 - self.summary.leading_zeros() as usize;
        let bits = self.bitmap[word % 4];
        Some((word * 64 + 63 - bits.leading_zeros() as usize) as u8)
    }

    /// Take the first PD of the highest priority.
    pub fn pop_highest(&mut self) -> Option<PdId> {
        let p = self.highest()? as usize;
        let pd = self.head[p];
        self.unlink_head(p);
        Some(pd as usize)
    }

    fn unlink_head(&mut self, p: usize) {
        let pd = self.head[p] as usize;
        self.head[p] = self.next[pd];
        if self.head[p] == NONE {
            self.tail[p] = NONE;
            self.bitmap[p / 64] &= !(1 << (p % 64));
            if self.bitmap[p / 64] == 0 {
                self.summary &= !(1 << (p / 64));
            }
        }
        self.next[pd] = NONE;
    }

    /// Take `pd` out of its queue wherever it is (it stopped or faulted);
    /// nothing happens if it is not queued.
    pub fn remove(&mut self, pd: PdId, prio: u8) {
        let p = prio as usize;
        if self.head[p] == NONE {
            return;
        }
        if self.head[p] as usize == pd {
            self.unlink_head(p);
            return;
        }
        let mut prev = self.head[p];
        while prev != NONE {
            let n = self.next[prev as usize];
            if n as usize == pd {
                self.next[prev as usize] = self.next[pd];
                if self.tail[p] as usize == pd {
                    self.tail[p] = prev;
                }
                self.next[pd] = NONE;
                return;
            }
            prev = n;
        }
    }

    /// Whether a PD of exactly this priority is waiting for its turn.
    pub fn has_peer_at(&self, prio: u8) -> bool {
        self.head[prio as usize] != NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn drain(q: &mut RunQueues) -> Vec<PdId> {
        core::iter::from_fn(|| q.pop_highest()).collect()
    }

    #[test]
    fn highest_priority_runs_first() {
        let mut q = RunQueues::new();
        q.push_back(0, 10);
        q.push_back(1, 200);
        q.push_back(2, 254);
        q.push_back(3, 0);
        assert_eq!(drain(&mut q), [2, 1, 0, 3]);
        assert_eq!(q.highest(), None);
    }

    #[test]
    fn equal_priorities_are_served_in_arrival_order() {
        let mut q = RunQueues::new();
        for pd in [4, 1, 7] {
            q.push_back(pd, 100);
        }
        assert_eq!(drain(&mut q), [4, 1, 7]);
    }

    #[test]
    fn preempted_pd_keeps_its_turn() {
        let mut q = RunQueues::new();
        q.push_back(1, 5);
        q.push_front(2, 5);
        assert_eq!(drain(&mut q), [2, 1]);
    }

    #[test]
    fn removal_from_middle_and_tail_keeps_order() {
        let mut q = RunQueues::new();
        for pd in 0..5 {
            q.push_back(pd, 64);
        }
        q.remove(2, 64);
        q.remove(4, 64);
        q.push_back(6, 64);
        assert_eq!(drain(&mut q), [0, 1, 3, 6]);
    }

    #[test]
    fn removing_an_unqueued_pd_is_harmless() {
        let mut q = RunQueues::new();
        q.push_back(1, 3);
        q.remove(9, 3);
        assert_eq!(drain(&mut q), [1]);
    }

    #[test]
    fn bitmap_tracks_every_word_boundary() {
        for prio in [0u8, 63, 64, 127, 128, 191, 192, 254] {
            let mut q = RunQueues::new();
            q.push_back(3, prio);
            assert_eq!(q.highest(), Some(prio));
            assert!(q.has_peer_at(prio));
            q.pop_highest();
            assert!(!q.has_peer_at(prio));
        }
    }

    /// Against a simple model: a list scanned for the best entry.
    #[test]
    fn matches_a_sorted_list_model() {
        let mut q = RunQueues::new();
        let mut model: Vec<(PdId, u8)> = Vec::new();
        let mut seed = 0x1234_5678u32;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..5000 {
            let r = rand();
            let pd = (r % MAX_PDS as u32) as usize;
            let prio = [0u8, 1, 7, 100, 254][(r >> 8) as usize % 5];
            match (r >> 16) % 4 {
                0 | 1 if !model.iter().any(|e| e.0 == pd) => {
                    q.push_back(pd, prio);
                    model.push((pd, prio));
                }
                2 => {
                    let expect = model.iter().map(|e| e.1).max().map(|best| {
                        let i = model.iter().position(|e| e.1 == best).unwrap();
                        model.remove(i).0
                    });
                    assert_eq!(q.pop_highest(), expect);
                }
                3 => {
                    if let Some(i) = model.iter().position(|e| e.0 == pd) {
                        q.remove(pd, model[i].1);
                        model.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}
