//! Metadata a filter keeps on its own disk and writes before a flush goes
//! down (a linked clone's map, an integrity filter's MAC table): which of
//! its blocks changed, and the flush pre-op that writes them with side
//! I/O ([`crate::filter::Verdict::SideIo`]).
//!
//! The filter keeps the metadata in its bounce buffer, block `i` at page
//! `page + i`, and on its disk at block `block + i` of the disk below it
//! ([`Layout`]). A flush writes the changed blocks, from the first to the
//! last within one side I/O, again while more changed, and then goes down:
//! every change made before the flush's pre-op is on the disk before the
//! device's flush. Only one flush writes at a time; another waits (a
//! one-block read of `wait_block` into `wait_page`, then it looks again),
//! since two writes of one block in flight together may land in either
//! order and leave the older on the disk.
//!
//! A filter whose metadata must never reach the medium before the data it
//! describes (a clone's map: a block marked written whose data a power cut
//! lost would read as whatever the clone disk held, with status OK) gives
//! a `snapshot` page run: each run of changed blocks is copied there, the
//! disk below is flushed (the data written before the copy is then on the
//! medium), and the copy is written. Marks made meanwhile go to the live
//! blocks and a later write. (An integrity table written ahead of its data
//! makes those blocks read as I/O errors, never as wrong data: it needs no
//! snapshot.)
//!
//! Such a filter also keeps its header twice, in blocks 0 and 1, read
//! into two pages side by side at setup: [`open_headers`] says which copy
//! to trust and what to write back, so one damaged block never makes the
//! disk look fresh (which would lose what it holds).

use crate::filter::{Io, SetupStep, Verdict, MAX_SETUP_BLOCKS};
use core::fmt;
use crate::{Op, Shared, Status, BLOCK_SIZE};

/// Where a filter keeps its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Block 0 of the metadata on the disk below the filter.
    pub block: u64,
    /// Its page in the bounce buffer.
    pub page: u16,
    /// Blocks of metadata.
    pub blocks: u64,
    /// What a flush that waits reads: a block of the disk below, into a
    /// bounce page whose content does not matter (or is that block's).
    pub wait_block: u64,
    pub wait_page: u16,
    /// The first of as many bounce pages as the metadata has blocks (at
    /// most [`MAX_SETUP_BLOCKS`]), where a run is copied to and written from
    /// after a flush of the disk below; `None`: written from its place, no
    /// flush before.
    pub snapshot: Option<u16>,
}

/// The state word of a flush: what its side I/O was (with the run's first
/// block and count below).
const WAITED: u64 = 1 << 63;
const WROTE: u64 = 1 << 62;
const FLUSHED: u64 = 1 << 61;

/// Changed metadata blocks (`WORDS * 64` at most) and the flush writing
/// them.
#[derive(Clone, Debug)]
pub struct Changes<const WORDS: usize> {
    changed: [u64; WORDS],
    /// The request (its id + 1) whose flush is writing; 0 = none.
    writer: u32,
    /// Blocks written so far.
    pub written: u64,
}

impl<const WORDS: usize> Default for Changes<WORDS> {
    fn default() -> Self {
        Changes { changed: [0; WORDS], writer: 0, written: 0 }
    }
}

impl<const WORDS: usize> Changes<WORDS> {
    /// Metadata block `i` changed.
    pub fn mark(&mut self, i: u64) {
        self.set(i, true);
    }

    pub fn is_changed(&self, i: u64) -> bool {
        self.changed[(i / 64) as usize % WORDS] & 1 << (i % 64) != 0
    }

    /// The run `first .. first + count` was not written (its write, or the
    /// flush before it, failed): changed again, and no flush writes.
    fn not_written(&mut self, first: u64, count: u64) {
        for i in first..first + count {
            self.mark(i);
        }
        self.writer = 0;
    }

    fn set(&mut self, i: u64, changed: bool) {
        let (w, bit) = ((i / 64) as usize % WORDS, 1u64 << (i % 64));
        if changed {
            self.changed[w] |= bit;
        } else {
            self.changed[w] &= !bit;
        }
    }

    /// A flush's pre-op (`state` its state word): the side I/O to do next,
    /// or `Continue` once nothing changed is left unwritten. `Err` with the
    /// status if its write (or the flush before it) failed: the blocks are
    /// marked changed again and the filter fails the flush. `bounce` holds
    /// the pages (for a snapshot).
    pub fn flush(&mut self, io: &Io, state: &mut u64, at: &Layout, bounce: &Shared<'_>) -> Result<Verdict, Status> {
        let me = io.id + 1;
        if let (Some(side), true) = (io.side, *state & (WROTE | FLUSHED) != 0) {
            let (first, count) = ((*state >> 16) & 0xffff_ffff, *state & 0xffff);
            if side.status != Status::Ok {
                self.not_written(first, count);
                return Err(side.status);
            }
            if *state & FLUSHED != 0 {
                // The disk below is flushed: now the copy.
                return Ok(write(state, at, first, count));
            }
            self.written += count;
        }
        // Another flush's write in flight: wait for it even with nothing
        // changed here, since it may hold changes made before this flush
        // (taken off the changed set when it started), and this flush must
        // not reach the device before they are on the disk.
        if self.writer != 0 && self.writer != me {
            *state = WAITED;
            return Ok(Verdict::SideIo { op: Op::Read, block: at.wait_block, count: 1, page: at.wait_page });
        }
        let Some(first) = (0..at.blocks).find(|&i| self.is_changed(i)) else {
            self.writer = 0;
            return Ok(Verdict::Continue);
        };
        self.writer = me;
        // One write from the first changed block to the last within reach.
        let end = at.blocks.min(first + u64::from(MAX_SETUP_BLOCKS));
        let last = (first..end).rev().find(|&i| self.is_changed(i)).unwrap_or(first);
        let count = last - first + 1;
        for i in first..=last {
            self.set(i, false);
        }
        if let Some(snapshot) = at.snapshot {
            let len = count as usize * BLOCK_SIZE as usize;
            let (from, to) = ((usize::from(at.page) + first as usize) * BLOCK_SIZE as usize, usize::from(snapshot) * BLOCK_SIZE as usize);
            if bounce.copy_to(from, bounce, to, len).is_err() {
                self.not_written(first, count);
                return Err(Status::IoError);
            }
            *state = FLUSHED | first << 16 | count;
            return Ok(Verdict::SideIo { op: Op::Flush, block: 0, count: 0, page: 0 });
        }
        Ok(write(state, at, first, count))
    }
}

/// The side write of the run `first .. first + count` (`state` says so):
/// from the snapshot pages if the layout has them, else from its place.
fn write(state: &mut u64, at: &Layout, first: u64, count: u64) -> Verdict {
    *state = WROTE | first << 16 | count;
    let page = at.snapshot.unwrap_or(at.page + first as u16);
    Verdict::SideIo { op: Op::Write, block: at.block + first, count: count as u32, page }
}

/// Put `header` in bounce pages `page` and `page + 1` (where
/// [`open_headers`] finds the two copies read at setup): the step that
/// writes them as the header and its backup, `None` if the pages are not
/// in `bounce`.
pub fn put_copies(bounce: &Shared<'_>, page: u64, header: &[u8]) -> Option<SetupStep> {
    let at = |copy: u64| (page + copy) * BLOCK_SIZE as u64;
    for copy in 0..2 {
        bounce.write_bytes(at(copy) as usize, header).ok()?;
    }
    Some(SetupStep::Write { block: 0, count: 2, offset: at(0) })
}

/// A header (block 0) and its backup (block 1) as read at setup, into
/// bounce pages `page` and `page + 1`, and what the filter makes of each:
/// it `holds` (a header of this layout the filter made), its fields are
/// `vouched` for (by its MAC or hash, its magic aside: a header damaged in
/// its magic only), it has the `magic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderCopies {
    pub page: u64,
    pub holds: [bool; 2],
    pub vouched: [bool; 2],
    pub magic: [bool; 2],
    /// The two copies are the same bytes.
    pub same: bool,
}

/// What to do with the two copies ([`open_headers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headers {
    /// Both hold and agree: open with copy 0.
    Open,
    /// Copy `from` holds: open with it, after `step` wrote it over the
    /// other (the console says `why`).
    Mend { from: usize, step: SetupStep, why: &'static str },
    /// Neither holds, but copy `from`'s fields are vouched for: open with
    /// them, after the filter put its header, made anew, in both pages and
    /// `step` wrote them.
    Rewrite { from: usize, step: SetupStep, why: &'static str },
    /// Neither holds and one looks like a header: the disk fails, nothing
    /// written.
    Damaged,
    /// Neither is a header: a fresh disk.
    Fresh,
}

/// Which copy of a header to trust, and what to write back.
pub fn open_headers(c: HeaderCopies) -> Headers {
    let at = |copy: u64| (c.page + copy) * crate::BLOCK_SIZE as u64;
    match c.holds {
        [true, _] if c.same => Headers::Open,
        [true, backup] => Headers::Mend {
            from: 0,
            step: SetupStep::Write { block: 1, count: 1, offset: at(0) },
            why: if backup { "the header's backup (block 1) differs from the header: written again" } else { "the header's backup (block 1) does not hold: written again" },
        },
        [false, true] => Headers::Mend {
            from: 1,
            step: SetupStep::Write { block: 0, count: 1, offset: at(1) },
            why: "the header (block 0) does not hold: put back from its backup (block 1)",
        },
        [false, false] => match c.vouched.iter().position(|&v| v) {
            Some(from) => Headers::Rewrite {
                from,
                step: SetupStep::Write { block: 0, count: 2, offset: at(0) },
                why: "the header and its backup (blocks 0 and 1) were damaged in their magic only: both written again",
            },
            None if c.magic.contains(&true) => Headers::Damaged,
            None => Headers::Fresh,
        },
    }
}

/// What blocks 0 and 1, read into bounce pages `page` and `page + 1`,
/// hold when neither is a header of the filter's ([`Headers::Fresh`]), if
/// they hold something a format would destroy that a user may still want:
/// the signature of a LUKS volume, a partition table, a file system, LVM,
/// Linux RAID, bcache, dm-integrity or dm-verity, swap, or another Strata
/// filter's header, as `mkfs` and `wipefs` look for them (those within
/// the first 8 KiB: btrfs's and ISO 9660's lie further in). `None` for anything else: zeros, or data no tool would
/// recognise (a fresh LUKS volume's payload, seen through `filter_crypt`,
/// reads as random bytes), which the filter may format.
pub fn signature(bounce: &Shared<'_>, page: u64) -> Option<&'static str> {
    let mut b = [0u8; 2 * BLOCK_SIZE as usize];
    bounce.read_bytes((page * BLOCK_SIZE as u64) as usize, &mut b).ok()?;
    let at = |offset: usize, magic: &[u8]| b.get(offset..offset + magic.len()) == Some(magic);
    const KNOWN: [(usize, &[u8], &str); 16] = [
        (0, b"LUKS\xba\xbe", "a LUKS header"),
        (4096, &[0xfc, 0x4e, 0x2b, 0xa9], "a Linux RAID (md) member"),
        (0, &[0xfc, 0x4e, 0x2b, 0xa9], "a Linux RAID (md) member"),
        (1024, &[0x10, 0x20, 0xf5, 0xf2], "an F2FS file system"),
        (4096 + 24, &[0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca], "a bcache device"),
        (0, b"integrt", "a dm-integrity device"),
        (0, b"verity\0\0", "a dm-verity hash device"),
        (512, b"EFI PART", "a GPT partition table"),
        (512, b"LABELONE", "an LVM physical volume"),
        (1080, &[0x53, 0xef], "an ext2/3/4 file system"),
        (0, b"XFSB", "an XFS file system"),
        (0, b"hsqs", "a squashfs file system"),
        (4086, b"SWAPSPACE2", "Linux swap"),
        (4086, b"SWAP-SPACE", "Linux swap"),
        (0, b"STRATA-", "another Strata filter's header"),
        (510, &[0x55, 0xaa], "a partition table or boot sector (a FAT or NTFS file system, an MBR)"),
    ];
    KNOWN.iter().find(|(offset, magic, _)| at(*offset, magic)).map(|&(_, _, what)| what)
}

/// Whether blocks 0 and 1, read into bounce pages `page` and `page + 1`,
/// are zeros (a blank disk; else a format says what it held is gone).
pub fn blank(bounce: &Shared<'_>, page: u64) -> bool {
    let start = (page * BLOCK_SIZE as u64) as usize;
    let mut b = [0u8; 512];
    (0..2 * BLOCK_SIZE as usize / 512).all(|i| bounce.read_bytes(start + i * 512, &mut b).is_ok() && b.iter().all(|&x| x == 0))
}

/// The line of a filter that will not format a disk because of what
/// [`signature`] `found` there, not its `header` ("an integrity header").
pub struct NotFormatted<'a> {
    pub found: &'a str,
    pub header: &'a str,
}

impl fmt::Display for NotFormatted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blocks 0 and 1 hold {}, not {}: not formatted, nothing written (to give the filter this disk and lose what it holds, \
             zero its first 8 KiB: of the image, when no filter is below this one, dd if=/dev/zero of=IMAGE bs=4096 count=2 conv=notrunc)",
            self.found, self.header
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Completion, Hook};

    const AT: Layout = Layout { block: 1, page: 2, blocks: 100, wait_block: 0, wait_page: 1, snapshot: None };

    /// A bounce buffer of 200 pages, the same one on every call of a test.
    fn mem() -> Shared<'static> {
        thread_local!(static MEM: Shared<'static> = Shared::from_words(Box::leak(vec![0u64; 200 * 512].into_boxed_slice())));
        MEM.with(|m| *m)
    }

    fn flush(id: u32, state: u64, side: Option<Status>) -> Io {
        let side = side.map(|status| Completion { status, count: 1 });
        Io { hook: Hook::Pre, op: Op::Flush, client: 0, position: 0, block: 0, count: 0, grant: 0, id, state, side }
    }

    #[test]
    fn a_signature_a_format_would_destroy_is_named_and_anything_else_is_not() {
        let with = |at: usize, magic: &[u8]| {
            let m = mem();
            let zero = [0u8; 2 * BLOCK_SIZE as usize];
            m.write_bytes(4 * BLOCK_SIZE as usize, &zero).unwrap();
            m.write_bytes(4 * BLOCK_SIZE as usize + at, magic).unwrap();
            signature(&m, 4)
        };
        assert_eq!(with(0, b"LUKS\xba\xbe\x00\x01"), Some("a LUKS header"));
        assert_eq!(with(510, &[0x55, 0xaa]), Some("a partition table or boot sector (a FAT or NTFS file system, an MBR)"));
        assert_eq!(with(4086, b"SWAPSPACE2"), Some("Linux swap"));
        assert_eq!(with(1080, &[0x53, 0xef]), Some("an ext2/3/4 file system"));
        assert_eq!(with(0, b"STRATA-OVERLAY-2"), Some("another Strata filter's header"));
        assert_eq!(with(4096, &[0xfc, 0x4e, 0x2b, 0xa9, 1, 0, 0, 0]), Some("a Linux RAID (md) member"), "mdadm's default 1.2 superblock");
        assert_eq!(with(0, &[]), None, "zeros");
        assert_eq!(with(100, b"random bytes of a LUKS payload"), None);
        assert_eq!(with(BLOCK_SIZE as usize * 2 - 2, &[0x55, 0xaa]), None, "a signature where none is looked for");
    }

    #[test]
    fn a_flush_writes_the_changed_run_then_goes_down() {
        let mut c = Changes::<2>::default();
        c.mark(3);
        c.mark(5);
        c.mark(90);
        let mut s = 0;
        assert_eq!(c.flush(&flush(1, 0, None), &mut s, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Write, block: 4, count: 3, page: 5 }));
        assert_eq!(c.flush(&flush(1, s, Some(Status::Ok)), &mut s, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Write, block: 91, count: 1, page: 92 }));
        assert_eq!(c.flush(&flush(1, s, Some(Status::Ok)), &mut s, &AT, &mem()), Ok(Verdict::Continue));
        assert_eq!(c.written, 4);
        let mut s = 0;
        assert_eq!(c.flush(&flush(2, 0, None), &mut s, &AT, &mem()), Ok(Verdict::Continue), "nothing changed since");
    }

    #[test]
    fn one_flush_writes_at_a_time_and_a_failed_write_is_changed_again() {
        let mut c = Changes::<2>::default();
        c.mark(7);
        let (mut a, mut b) = (0, 0);
        assert!(matches!(c.flush(&flush(1, 0, None), &mut a, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Write, .. })));
        c.mark(8);
        assert_eq!(c.flush(&flush(2, 0, None), &mut b, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Read, block: 0, count: 1, page: 1 }), "it waits");
        assert_eq!(c.flush(&flush(1, a, Some(Status::IoError)), &mut a, &AT, &mem()), Err(Status::IoError));
        assert!(c.is_changed(7) && c.is_changed(8));
        assert_eq!(c.flush(&flush(2, b, Some(Status::Ok)), &mut b, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Write, block: 8, count: 2, page: 9 }), "its turn now");
    }

    #[test]
    fn a_flush_with_nothing_changed_waits_for_another_flushs_write_in_flight() {
        // (Two clients of one disk: the server orders flushes per client
        // only. Flush 1 took block 7's change; flush 2 must not reach the
        // device before that write is on the disk.)
        let mut c = Changes::<2>::default();
        c.mark(7);
        let (mut a, mut b) = (0, 0);
        assert!(matches!(c.flush(&flush(1, 0, None), &mut a, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Write, .. })));
        assert_eq!(c.flush(&flush(2, 0, None), &mut b, &AT, &mem()), Ok(Verdict::SideIo { op: Op::Read, block: 0, count: 1, page: 1 }), "it waits");
        assert_eq!(c.flush(&flush(1, a, Some(Status::Ok)), &mut a, &AT, &mem()), Ok(Verdict::Continue));
        assert_eq!(c.flush(&flush(2, b, Some(Status::Ok)), &mut b, &AT, &mem()), Ok(Verdict::Continue), "then it goes");
    }

    #[test]
    fn with_a_snapshot_a_run_is_copied_the_disk_below_flushed_and_the_copy_written() {
        // (The map must not reach the medium before the data it marks.)
        let at = Layout { blocks: 16, snapshot: Some(150), ..AT };
        let b = mem();
        let mut c = Changes::<1>::default();
        c.mark(3);
        c.mark(4);
        b.write_bytes((2 + 3) * 4096, &[7; 4096]).unwrap();
        let mut s = 0;
        assert_eq!(c.flush(&flush(1, 0, None), &mut s, &at, &b), Ok(Verdict::SideIo { op: Op::Flush, block: 0, count: 0, page: 0 }), "the data first");
        // A mark made now goes to the live block, not the copy.
        c.mark(3);
        b.write_bytes((2 + 3) * 4096, &[9; 4096]).unwrap();
        let mut copy = [0u8; 4096];
        b.read_bytes(150 * 4096, &mut copy).unwrap();
        assert_eq!(copy, [7; 4096], "the copy holds the marks made before the flush");
        assert_eq!(c.flush(&flush(1, s, Some(Status::Ok)), &mut s, &at, &b), Ok(Verdict::SideIo { op: Op::Write, block: 4, count: 2, page: 150 }));
        // The later mark: another flush of the disk below, then its copy.
        assert_eq!(c.flush(&flush(1, s, Some(Status::Ok)), &mut s, &at, &b), Ok(Verdict::SideIo { op: Op::Flush, block: 0, count: 0, page: 0 }));
        assert_eq!(c.flush(&flush(1, s, Some(Status::Ok)), &mut s, &at, &b), Ok(Verdict::SideIo { op: Op::Write, block: 4, count: 1, page: 150 }));
        assert_eq!(c.flush(&flush(1, s, Some(Status::Ok)), &mut s, &at, &b), Ok(Verdict::Continue));
        assert_eq!(c.written, 3);
        // A flush of the disk below that fails: the run is changed again.
        c.mark(5);
        let mut s = 0;
        assert!(matches!(c.flush(&flush(2, 0, None), &mut s, &at, &b), Ok(Verdict::SideIo { op: Op::Flush, .. })));
        assert_eq!(c.flush(&flush(2, s, Some(Status::IoError)), &mut s, &at, &b), Err(Status::IoError));
        assert!(c.is_changed(5));
    }

    #[test]
    fn the_copy_that_holds_is_trusted_and_written_over_the_other() {
        let copies = |holds, vouched, magic, same| open_headers(HeaderCopies { page: 5, holds, vouched, magic, same });
        let (t, f) = (true, false);
        assert_eq!(copies([t, t], [t, t], [t, t], t), Headers::Open);
        let Headers::Mend { from: 0, step, .. } = copies([t, f], [t, f], [t, f], f) else { panic!() };
        assert_eq!(step, SetupStep::Write { block: 1, count: 1, offset: 5 * 4096 });
        assert!(matches!(copies([t, t], [t, t], [t, t], f), Headers::Mend { from: 0, why, .. } if why.contains("differs")));
        let Headers::Mend { from: 1, step, .. } = copies([f, t], [f, t], [f, t], f) else { panic!() };
        assert_eq!(step, SetupStep::Write { block: 0, count: 1, offset: 6 * 4096 });
        let Headers::Rewrite { from: 1, step, .. } = copies([f, f], [f, t], [f, f], f) else { panic!() };
        assert_eq!(step, SetupStep::Write { block: 0, count: 2, offset: 5 * 4096 });
        assert_eq!(copies([f, f], [f, f], [f, t], f), Headers::Damaged);
        assert_eq!(copies([f, f], [f, f], [f, f], t), Headers::Fresh);
    }
}
