//! `filter_readonly`: makes its disk, or ranges of it, read-only from the
//! filter down. It wants only the pre-op of writes, and fails each that
//! touches a protected block with `InvalidRequest` (what a read-only disk
//! answers) before it goes further; reads and flushes never reach it. It
//! needs no data rights.
//!
//! Its `blocks` param lists the protected ranges, `A..B` (from block A up
//! to, not including, B) or `A..` (to the end), separated by commas: `0..1,
//! 8192..` guards a partition table and everything from block 8192. Without
//! it the whole disk is read-only.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Filter, Io, RequestData, Verdict};
use blk::{Op, Status};
use heapless::Vec;

/// Protected ranges one filter holds at most.
pub const MAX_RANGES: usize = 8;

pub struct ReadOnly {
    /// Protected `[first, end)` ranges.
    ranges: Vec<(u64, u64), MAX_RANGES>,
}

impl ReadOnly {
    /// The filter for its `blocks` param (`None`: the whole disk).
    pub fn new(blocks: Option<&str>) -> Result<ReadOnly, &'static str> {
        let mut ranges = Vec::new();
        let Some(text) = blocks else {
            let _ = ranges.push((0, u64::MAX));
            return Ok(ReadOnly { ranges });
        };
        for range in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (a, b) = range.split_once("..").ok_or("blocks are ranges A..B or A.., separated by commas")?;
            let first: u64 = a.trim().parse().map_err(|_| "a range starts with a block number")?;
            let end = match b.trim() {
                "" => u64::MAX,
                b => b.parse().map_err(|_| "a range ends with a block number")?,
            };
            if end <= first {
                return Err("a range A..B needs A < B");
            }
            ranges.push((first, end)).map_err(|_| "more than 8 ranges")?;
        }
        if ranges.is_empty() {
            return Err("blocks names no range");
        }
        Ok(ReadOnly { ranges })
    }

    fn protects(&self, io: &Io) -> bool {
        let end = io.block.saturating_add(u64::from(io.count));
        self.ranges.iter().any(|&(first, last)| io.block < last && end > first)
    }
}

impl Filter for ReadOnly {
    fn pre(&mut self, io: &Io, _: &dyn RequestData, _: &mut u64) -> Verdict {
        match io.op {
            Op::Write if self.protects(io) => Verdict::Fail(Status::InvalidRequest),
            _ => Verdict::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blk::filter::{Hook, NoData};

    fn io(op: Op, block: u64, count: u32) -> Io {
        Io { hook: Hook::Pre, op, client: 0, position: 0, block, count, grant: 0, id: 0, state: 0, side: None }
    }

    #[test]
    fn without_ranges_every_write_fails_and_everything_else_passes() {
        let mut f = ReadOnly::new(None).unwrap();
        assert_eq!(f.pre(&io(Op::Write, 9, 1), &NoData, &mut 0), Verdict::Fail(Status::InvalidRequest));
        assert_eq!(f.pre(&io(Op::Write, u64::MAX - 1, 1), &NoData, &mut 0), Verdict::Fail(Status::InvalidRequest));
        assert_eq!(f.pre(&io(Op::Read, 9, 1), &NoData, &mut 0), Verdict::Continue);
        assert_eq!(f.pre(&io(Op::Flush, 0, 0), &NoData, &mut 0), Verdict::Continue);
    }

    #[test]
    fn only_writes_touching_a_protected_range_fail() {
        let mut f = ReadOnly::new(Some("0..1, 8192..")).unwrap();
        let fails = |f: &mut ReadOnly, block, count| f.pre(&io(Op::Write, block, count), &NoData, &mut 0) != Verdict::Continue;
        assert!(fails(&mut f, 0, 1), "the partition table");
        assert!(!fails(&mut f, 1, 8191), "between the ranges");
        assert!(fails(&mut f, 8190, 3), "running into the second range");
        assert!(fails(&mut f, 1 << 40, 1), "an open range goes on");
    }

    #[test]
    fn bad_ranges_are_refused_with_a_reason() {
        for (text, why) in [
            ("9", "blocks are ranges A..B or A.., separated by commas"),
            ("x..2", "a range starts with a block number"),
            ("1..y", "a range ends with a block number"),
            ("5..5", "a range A..B needs A < B"),
            (" , ", "blocks names no range"),
        ] {
            assert_eq!(ReadOnly::new(Some(text)).err(), Some(why), "{text}");
        }
    }
}
