//! Setting up a disk's chain before its clients see the disk.
//!
//! Once the driver says what the disk is, each filter of its chain is set
//! up in turn, the one nearest the device first, so a filter's setup I/O
//! goes through filters that are ready. A filter that declared the
//! `setup` hook is called ([`Upcalls::setup`]) until it is ready: each step
//! may read or write its disk below it, into or out of its bounce buffer,
//! and the next call says how that went (see the dialogue in
//! `blk::filter`); a step may also ask to be called again, and that call
//! comes after a pass over the other disks' work, so a filter deriving a
//! key for seconds holds no other disk up. The step's I/O is an ordinary request of the chain that
//! enters just below the filter, so the filters below see it and it
//! reaches the device through them. A filter without the hook offers the
//! whole disk below it.
//!
//! When every filter is ready, each level's block shift follows from the
//! windows (`Chain::set_windows`) and the clients see the top filter's
//! window. A filter that refuses (a wrong key, a damaged header), answers
//! a step that does not fit, or faults, fails the disk: its clients see no
//! blocks and every request they send fails; nothing is written.
//!
//! A filter with the hook that is restarted (`on_fault="restart"`) after
//! the disk was ready has lost what its setup gave it (a key): it is set up
//! again, alone, before its disk's clients' requests are taken again, and
//! must offer the same window. If it cannot, it stays stopped and the
//! requests that reach it fail; the disk's view does not change.

use blk::filter::{Completion, SetupCall, SetupError, SetupStep};
use blk::{Op, Status};

use crate::chain::{self, CallError, Upcalls, Window, MAX_SLOTS, RESETUP};
use crate::{DiskState, Event, Server, Wake};

/// Where a disk's chain setup stands.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Progress {
    /// The position of the filter being set up.
    pub position: usize,
    /// Its next round.
    pub round: u32,
    /// Its last step's I/O is under way.
    pub waiting: bool,
    /// How its last step's I/O went.
    pub last: Option<Completion>,
    /// The filter was restarted after the disk was ready: only it is set
    /// up again, and it must offer the window it offered before; then the
    /// disk is ready again as it was.
    pub restarted: bool,
}

impl Progress {
    /// The start of the setup of a chain of `n` filters: the lowest first.
    pub fn start(n: usize) -> Progress {
        Progress { position: n.saturating_sub(1), ..Progress::default() }
    }
}

/// Why a filter could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupFailure {
    /// It said so, with this status.
    Refused(Status),
    /// Its reply did not fit.
    BadStep(SetupError),
    /// The call failed (it faulted, ran past its budget, or replied
    /// wrongly).
    Call(CallError),
    /// It is stopped.
    Stopped,
    /// Set up again after a restart, it offered another window than before.
    Changed,
}

impl core::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SetupFailure::Refused(s) => write!(f, "it refused the disk ({s:?})"),
            SetupFailure::BadStep(e) => write!(f, "{e}"),
            SetupFailure::Call(CallError::Stopped) => f.write_str("it faulted or ran past its budget"),
            SetupFailure::Call(CallError::BadReply) => f.write_str("a malformed reply"),
            SetupFailure::Call(CallError::Refused(e)) => write!(f, "the call was refused (error {e})"),
            SetupFailure::Stopped => f.write_str("it is stopped"),
            SetupFailure::Changed => f.write_str("it offered another window than before its restart"),
        }
    }
}

impl Server<'_> {
    /// Filter `f`, which has the setup hook, was restarted: if its disk was
    /// ready, set it up again before the disk's clients' requests are taken;
    /// if the disk is being set up (another filter's restart, or its first
    /// setup), once that is done (`set_up_waiting`).
    pub(crate) fn set_up_again(&mut self, f: usize) {
        let disk = &mut self.disks[self.filters[f].disk()];
        let position = disk.chain.as_ref().and_then(|c| c.filters.iter().position(|&g| g as usize == f));
        match (disk.state, disk.failed, position) {
            (DiskState::Ready, false, Some(position)) => {
                disk.state = DiskState::Setup;
                disk.setup = Progress { position, restarted: true, ..Progress::default() };
            }
            (DiskState::Setup, false, Some(_)) => self.table.restarted |= 1 << (RESETUP + f),
            _ => {}
        }
    }

    /// Set up again the first restarted filter whose disk, being set up
    /// when it came back, is ready now (one at a time per disk: the next
    /// waits for this one); a failed disk's are dropped. Whether one was.
    #[cold]
    #[inline(never)]
    pub(crate) fn set_up_waiting(&mut self) -> bool {
        for f in crate::bits((self.table.restarted >> RESETUP) as u32) {
            let disk = &self.disks[self.filters[f].disk()];
            if disk.failed {
                self.table.restarted &= !(1 << (RESETUP + f));
            } else if disk.state == DiskState::Ready {
                self.table.restarted &= !(1 << (RESETUP + f));
                self.set_up_again(f);
                return true;
            }
        }
        false
    }

    /// Go on with disk `d`'s chain setup as far as it goes without waiting:
    /// up to the next step's I/O, or to the end. Returns whether it moved.
    pub(crate) fn setup_chain(&mut self, d: usize, up: &mut impl Upcalls, wake: &mut Wake, log: &mut impl FnMut(Event)) -> bool {
        let mut moved = false;
        loop {
            let disk = &self.disks[d];
            let Some(chain) = disk.chain.as_ref() else { return moved };
            if disk.state != DiskState::Setup || disk.setup.waiting {
                return moved;
            }
            moved = true;
            let n = chain.filters.len();
            let progress = disk.setup;
            let p = progress.position.min(n.saturating_sub(1));
            let f = chain.filters[p] as usize;
            let below = match chain.filters.get(p + 1) {
                Some(&g) => self.filters[g as usize].window.blocks,
                None => disk.capacity,
            };
            if progress.restarted && self.table.free() == 0 {
                // (Its step's I/O needs a slot; client requests hold them
                // all. One comes back with their answers.)
                return moved;
            }
            let filter = &self.filters[f];
            let step = if !filter.wants_setup() {
                Ok(SetupStep::Ready { first: 0, blocks: below })
            } else if !filter.alive {
                Err(SetupFailure::Stopped)
            } else {
                // (Its links' disks are ready: `start_disk` waits for them.)
                let linked = filter.config.links.first().and_then(|&t| self.disks.iter().find(|disk| disk.index == usize::from(t))).map_or(0, |disk| disk.view);
                let call = SetupCall { round: progress.round, below, last: progress.last, linked };
                match up.setup(f, call.mrs()) {
                    Ok(mrs) => SetupStep::from_mrs(mrs, below, filter.config.bounce.size).map_err(SetupFailure::BadStep),
                    Err(e) => Err(SetupFailure::Call(e)),
                }
            };
            // A view of its own is a window from block 0 that need not
            // fit the disk below.
            let (step, own) = match step {
                Ok(SetupStep::Own { blocks }) => (Ok(SetupStep::Ready { first: 0, blocks }), true),
                other => (other, false),
            };
            match step {
                Ok(SetupStep::Ready { first, blocks }) if progress.restarted => {
                    let filter = &self.filters[f];
                    if (filter.window, filter.own) != (Window { first, blocks }, own) {
                        return self.setup_failed(d, f, SetupFailure::Changed, wake, log);
                    }
                    log(Event::FilterReady { filter: f, first, blocks });
                    let disk = &mut self.disks[d];
                    (disk.state, disk.setup) = (DiskState::Ready, Progress::default());
                    return moved;
                }
                Ok(SetupStep::Ready { first, blocks }) => {
                    if self.filters[f].wants_setup() {
                        log(Event::FilterReady { filter: f, first, blocks });
                    }
                    let filter = &mut self.filters[f];
                    (filter.window, filter.below, filter.own) = (Window { first, blocks }, below, own);
                    if p == 0 {
                        self.setup_done(d, false, wake, log);
                        return moved;
                    }
                    self.disks[d].setup = Progress { position: p - 1, ..Progress::default() };
                }
                Ok(SetupStep::Read { block, count, offset }) => return self.setup_io(d, p, Op::Read, block, count, offset, wake, log),
                Ok(SetupStep::Write { block, count, offset }) => return self.setup_io(d, p, Op::Write, block, count, offset, wake, log),
                Ok(SetupStep::Flush) => return self.setup_io(d, p, Op::Flush, 0, 0, 0, wake, log),
                Ok(SetupStep::Again) => {
                    // The next slice comes in the next pass, after the
                    // other disks' work.
                    let setup = &mut self.disks[d].setup;
                    (setup.round, setup.last) = (setup.round + 1, None);
                    return moved;
                }
                Ok(SetupStep::Fail(status)) => return self.setup_failed(d, f, SetupFailure::Refused(status), wake, log),
                Ok(SetupStep::Own { .. }) => unreachable!("made a window above"),
                Err(why) => return self.setup_failed(d, f, why, wake, log),
            }
        }
    }

    /// Send the setup step's I/O of the filter at position `p` down the
    /// chain from just below it.
    #[allow(clippy::too_many_arguments)]
    fn setup_io(&mut self, d: usize, p: usize, op: Op, block: u64, count: u32, offset: u64, wake: &mut Wake, log: &mut impl FnMut(Event)) -> bool {
        let Server { disks, filters, table, .. } = self;
        let disk = &mut disks[d];
        let Some(chain) = disk.chain.as_mut() else { return true };
        let Some(s) = table.free.pop() else {
            // (Setup runs before any client request, so this cannot be.)
            let f = chain.filters[p] as usize;
            return self.setup_failed(d, f, SetupFailure::Call(CallError::Refused(0)), wake, log);
        };
        // The windows of the filters below are known; the shifts follow.
        chain.set_windows(filters);
        chain::start_setup(&mut table.slots[s as usize % MAX_SLOTS], p, op, block, count, offset, chain.base(p + 1), 0);
        table.slots[s as usize % MAX_SLOTS].disk = d as u8;
        chain.push_down(s, op, p + 1);
        disk.setup.waiting = true;
        disk.setup.round += 1;
        true
    }

    fn setup_failed(&mut self, d: usize, f: usize, why: SetupFailure, wake: &mut Wake, log: &mut impl FnMut(Event)) -> bool {
        if self.disks[d].setup.restarted {
            // The disk stays as it was; the filter stays stopped, and the
            // requests that reach it fail.
            log(Event::FilterSetupLost { filter: f, why });
            self.filters[f].alive = false;
            let disk = &mut self.disks[d];
            (disk.state, disk.setup) = (DiskState::Ready, Progress::default());
            return true;
        }
        log(Event::FilterSetupFailed { filter: f, why });
        self.setup_done(d, true, wake, log);
        true
    }

    /// Every filter of disk `d`'s chain is set up (or one `failed`): work
    /// out the levels' shifts and what the clients see.
    fn setup_done(&mut self, d: usize, failed: bool, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let Server { disks, filters, .. } = self;
        let disk = &mut disks[d];
        if let Some(chain) = disk.chain.as_mut() {
            chain.set_windows(filters);
            disk.view = chain.filters.first().map_or(disk.capacity, |&f| filters[f as usize].window.blocks);
        }
        disk.failed = failed;
        if failed {
            disk.view = 0;
        }
        self.usable(d, wake, log);
    }
}
