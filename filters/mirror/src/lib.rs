//! `filter_mirror`: RAID-1 over the filter's own disk (the primary) and
//! the disk of its one `<link>` (the secondary), as dm-raid1 and md's
//! RAID-1 keep two copies.
//!
//! ```xml
//! <disk name="disk0" virtio_slot="31">
//!     <filter name="mirror0" program="filter_mirror" data="none">
//!         <link disk="disk1" />
//!     </filter>
//! </disk>
//! <disk name="disk1" virtio_slot="30" />
//! ```
//!
//! Everything goes to the primary first. In the post-op:
//!
//! - a write that the primary did is redirected to the secondary too, and
//!   is answered OK only when both did: every write answered OK is on
//!   both disks. A write the primary failed fails, and is not sent on;
//! - a flush the primary did is sent to the secondary too, and answered
//!   as the secondary answers;
//! - a read the primary failed is read again from the secondary (the
//!   request's data as it is, filled there), and answered as the
//!   secondary answers.
//!
//! The first failure of either disk is reported on the console once: the
//! mirror is degraded from then on (each request still tries both). Its
//! clients see the smaller of the two disks (its setup says so when the
//! secondary is the smaller); a secondary with no blocks (absent, or its
//! chain failed) leaves the mirror degraded from the start, its writes
//! failing. The filter never touches request data (`data="none"`): the
//! server moves the data between the disks.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, SetupCall, SetupStep, Verdict};
use blk::{Op, Status};
use core::fmt;

/// Where the messages go (the console, on the target).
pub type Say = fn(fmt::Arguments);

/// The state word: the request was sent to the secondary (its low byte),
/// with the blocks the primary did (above it).
const ON_SECONDARY: u64 = 1;

fn on_secondary(primary_done: u32) -> u64 {
    ON_SECONDARY | u64::from(primary_done) << 8
}

/// Counters for the statistics line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Writes and flushes copied to the secondary.
    pub copied: u64,
    /// Reads the secondary answered after the primary failed them.
    pub failed_over: u64,
    /// Failures of the primary and of the secondary.
    pub primary_failures: u64,
    pub secondary_failures: u64,
}

pub struct Mirror {
    say: Say,
    degraded: bool,
    pub counts: Counts,
}

impl Mirror {
    pub fn new(say: Say) -> Mirror {
        Mirror { say, degraded: false, counts: Counts::default() }
    }

    /// Say once that the mirror is degraded.
    fn degrade(&mut self, which: &str, io: &Io, status: Status) {
        if !self.degraded {
            self.degraded = true;
            (self.say)(format_args!("the {which} failed a {:?} at block {} ({status:?}): the mirror is degraded", io.op, io.block));
        }
    }
}

impl Filter for Mirror {
    /// The window: the primary's blocks, or the secondary's if fewer (a
    /// write past the secondary's end could not be copied).
    fn setup(&mut self, call: &SetupCall, _: Option<&blk::Shared<'_>>) -> SetupStep {
        let (below, linked) = (call.below, call.linked);
        if linked == 0 {
            self.degraded = true;
            (self.say)(format_args!("the secondary has no blocks (no device, or its chain failed): the mirror is degraded, and every write fails"));
        } else if linked < below {
            (self.say)(format_args!("the secondary has {linked} blocks, the primary {below}: the mirror offers {linked}"));
            return SetupStep::Ready { first: 0, blocks: linked };
        }
        SetupStep::Ready { first: 0, blocks: below }
    }

    fn post_state(&mut self, io: &Io, done: Completion, _: &dyn RequestData, state: &mut u64) -> Verdict {
        let ok = done.status == Status::Ok;
        if *state & 0xff == ON_SECONDARY {
            // The secondary's answer.
            if !ok {
                self.counts.secondary_failures += 1;
                self.degrade("secondary", io, done.status);
            }
            return match (io.op, ok) {
                (Op::Read, true) => Verdict::Continue,
                // A copy that failed: the request did not reach both.
                (_, false) => Verdict::Fail(if done.status == Status::Ok { Status::IoError } else { done.status }),
                // As far as both did it (a side may answer short).
                (_, true) => Verdict::Complete { status: Status::Ok, count: done.count.min((*state >> 8) as u32).min(io.count) },
            };
        }
        match (io.op, ok) {
            (Op::Read, true) => Verdict::Continue,
            (Op::Read, false) => {
                self.counts.primary_failures += 1;
                self.counts.failed_over += 1;
                self.degrade("primary", io, done.status);
                *state = on_secondary(0);
                Verdict::Redirect { link: 0, block: io.block }
            }
            (Op::Write | Op::Flush, true) => {
                self.counts.copied += 1;
                *state = on_secondary(done.count);
                Verdict::Redirect { link: 0, block: io.block }
            }
            (_, false) => {
                self.counts.primary_failures += 1;
                self.degrade("primary", io, done.status);
                Verdict::Continue
            }
            // (The server sends filters nothing else.)
            (_, true) => Verdict::Continue,
        }
    }

    fn report(&mut self) {
        let c = self.counts;
        (self.say)(format_args!(
            "{} writes and flushes copied, {} reads failed over; failures: {} primary, {} secondary",
            c.copied, c.failed_over, c.primary_failures, c.secondary_failures
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blk::filter::{Hook, NoData};

    fn quiet(_: fmt::Arguments) {}

    fn io(op: Op, state: u64) -> Io {
        Io { hook: Hook::Post, op, client: 0, position: 0, block: 9, count: 2, grant: 0, id: 0, state, side: None }
    }

    fn post(m: &mut Mirror, op: Op, state: u64, status: Status, count: u32) -> (Verdict, u64) {
        let mut s = state;
        let v = m.post_state(&io(op, state), Completion { status, count }, &NoData, &mut s);
        (v, s)
    }

    #[test]
    fn a_write_goes_to_both_and_is_answered_ok_only_when_both_did_it() {
        let mut m = Mirror::new(quiet);
        assert_eq!(post(&mut m, Op::Write, 0, Status::Ok, 2), (Verdict::Redirect { link: 0, block: 9 }, on_secondary(2)));
        assert_eq!(post(&mut m, Op::Write, on_secondary(2), Status::Ok, 2).0, Verdict::Complete { status: Status::Ok, count: 2 });
        assert_eq!(post(&mut m, Op::Write, on_secondary(2), Status::IoError, 0).0, Verdict::Fail(Status::IoError), "the secondary failed it");
        // A side that did it in part: answered as far as both did.
        assert_eq!(post(&mut m, Op::Write, 0, Status::Ok, 1), (Verdict::Redirect { link: 0, block: 9 }, on_secondary(1)));
        assert_eq!(post(&mut m, Op::Write, on_secondary(1), Status::Ok, 2).0, Verdict::Complete { status: Status::Ok, count: 1 });
        assert_eq!(post(&mut m, Op::Write, on_secondary(2), Status::Ok, 1).0, Verdict::Complete { status: Status::Ok, count: 1 });
        assert_eq!(post(&mut m, Op::Write, 0, Status::IoError, 0), (Verdict::Continue, 0), "the primary failed it: not sent on");
        assert!(m.degraded);
    }

    #[test]
    fn a_read_the_primary_fails_is_read_from_the_secondary() {
        let mut m = Mirror::new(quiet);
        assert_eq!(post(&mut m, Op::Read, 0, Status::Ok, 2), (Verdict::Continue, 0));
        assert!(!m.degraded);
        assert_eq!(post(&mut m, Op::Read, 0, Status::IoError, 0), (Verdict::Redirect { link: 0, block: 9 }, on_secondary(0)));
        assert_eq!(post(&mut m, Op::Read, on_secondary(0), Status::Ok, 2).0, Verdict::Continue, "the secondary's data goes up");
        assert_eq!(post(&mut m, Op::Read, on_secondary(0), Status::IoError, 0).0, Verdict::Fail(Status::IoError));
        assert_eq!((m.counts.failed_over, m.counts.secondary_failures), (1, 1));
    }

    #[test]
    fn its_clients_see_the_smaller_disk_and_a_missing_secondary_is_said() {
        let mut m = Mirror::new(quiet);
        let call = |below, linked| SetupCall { round: 0, below, last: None, linked };
        assert_eq!(m.setup(&call(1000, 1000), None), SetupStep::Ready { first: 0, blocks: 1000 });
        assert_eq!(m.setup(&call(1000, 2000), None), SetupStep::Ready { first: 0, blocks: 1000 });
        assert_eq!(m.setup(&call(1000, 600), None), SetupStep::Ready { first: 0, blocks: 600 });
        assert!(!m.degraded);
        assert_eq!(m.setup(&call(1000, 0), None), SetupStep::Ready { first: 0, blocks: 1000 });
        assert!(m.degraded);
    }

    #[test]
    fn a_flush_flushes_both() {
        let mut m = Mirror::new(quiet);
        assert_eq!(post(&mut m, Op::Flush, 0, Status::Ok, 0).0, Verdict::Redirect { link: 0, block: 9 });
        assert_eq!(post(&mut m, Op::Flush, on_secondary(0), Status::Ok, 0).0, Verdict::Complete { status: Status::Ok, count: 0 });
    }
}
