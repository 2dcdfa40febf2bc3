//! The verify client's work as a handler: write stamped blocks (unless it
//! only checks), flush, read them all back into emptied buffers and
//! compare, keeping up to a queue's worth of requests in flight. Every
//! answer is accounted for (`answers`): one per request, a success moving
//! its block. Then tell channel [`DONE`]; a verify client without that
//! channel powers the machine off instead, if it may (status 0 when every
//! block verified; 1 after a failed request or a mismatch, and when the
//! disk has no blocks to check: a disk whose filter refused it, or no
//! device).
//!
//! On a read-only disk it tries one write, which must be refused, and
//! then checks what is there.
//!
//! It works on the disk's first blocks, or from the block that
//! `<setvar symbol="blk_verify_first" bytes="..">` (a little-endian `u64`)
//! names: a test that leaves the blocks before it alone.

use crate::answers::{Answers, Stray};
use crate::client::BlockClient;
use crate::stamp::{self, BLOCK};
use blk::{Op, Request, Status};
use microkit::{debug_println, pd_name, Channel, ChannelSet, Handler, Infallible};

/// The channel on which the client reports that it finished.
pub const DONE: Channel = Channel::new(0);
/// The generation written and expected.
pub const GENERATION: u64 = 1;
/// Blocks verified at most.
const MAX_BLOCKS: u64 = crate::answers::MAX_REQUESTS as u64;
/// The flush's request id (the blocks' are their numbers).
const FLUSH_ID: u32 = u32::MAX;
/// The id of the write a read-only disk must refuse.
const REFUSED_ID: u32 = u32::MAX - 1;
/// Mismatches printed in detail at most.
const SHOWN: u32 = 4;

microkit::var!(blk_verify_first: u64 = 0);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitReady,
    /// The disk is read-only: one write, which must be refused.
    WriteRefused,
    Write,
    Flush,
    /// The flush was answered; the read-back starts.
    Flushed,
    Read,
    Done,
}

pub struct Verifier {
    client: Option<BlockClient>,
    /// The disk block of its block 0 (`blk_verify_first`).
    first: u64,
    write_first: bool,
    phase: Phase,
    blocks: u64,
    next: u64,
    in_flight: u32,
    /// Answers taken in this phase.
    done: u64,
    /// Blocks read back and compared (mismatched or not).
    compared: u64,
    answers: Answers,
    errors: u32,
    mismatches: u32,
}

impl Verifier {
    /// `write_first`: write and flush before reading back; otherwise only
    /// check what an earlier run wrote.
    pub fn new(write_first: bool) -> Verifier {
        let client = match BlockClient::from_config() {
            Ok(c) => Some(c),
            Err(e) => {
                debug_println!("{}: {}", pd_name(), e);
                None
            }
        };
        let mut v = Verifier { client, first: *blk_verify_first(), write_first, phase: Phase::WaitReady, blocks: 0, next: 0, in_flight: 0, done: 0, compared: 0, answers: Answers::new(), errors: 0, mismatches: 0 };
        v.step();
        v
    }

    fn step(&mut self) {
        // Out of `self` while it works, so the steps below can borrow both.
        let Some(mut c) = self.client.take() else { return };
        self.work(&mut c);
        self.client = Some(c);
    }

    fn work(&mut self, c: &mut BlockClient) {
        loop {
            if self.phase == Phase::WaitReady {
                let Some(info) = c.info() else { return };
                let data_blocks = (c.data.len() / BLOCK) as u64;
                self.blocks = info.capacity.saturating_sub(self.first).min(data_blocks).min(MAX_BLOCKS);
                let read_only = info.is_read_only();
                debug_println!("{}: {} has {} blocks{}; checking {}", pd_name(), c.disk(), info.capacity, if read_only { ", read-only" } else { "" }, self.blocks);
                if self.first != 0 {
                    debug_println!("{}: from block {}", pd_name(), self.first);
                }
                if self.blocks == 0 {
                    // Nothing checked is no success (the lines above and
                    // the ones before say why).
                    self.errors += 1;
                }
                if self.write_first && read_only && self.blocks > 0 {
                    // Block 0 as this client would write it: what it holds
                    // after a run of this client on a writable disk.
                    let mut buf = [0u8; BLOCK];
                    stamp::stamp(c.disk(), self.first, GENERATION, &mut buf);
                    let _ = c.data.write_bytes(0, &buf);
                    if c.push(Request::new(REFUSED_ID, Op::Write, self.first, 1, 0)) {
                        self.in_flight = 1;
                        self.phase = Phase::WriteRefused;
                    } else {
                        self.errors += 1;
                        debug_println!("{}: the ring refused the write a read-only disk must refuse; checking what is there", pd_name());
                        self.start_reading(c);
                        continue;
                    }
                } else if self.write_first {
                    self.phase = Phase::Write;
                    self.next = 0;
                    self.answers.restart();
                } else {
                    self.start_reading(c);
                    continue;
                }
            }
            // Take what came back.
            while let Some(r) = c.pop() {
                if self.phase == Phase::WriteRefused {
                    if r.id != REFUSED_ID {
                        self.stray(r.id, Stray::Unknown);
                        continue;
                    }
                    self.in_flight -= 1;
                    if r.status() == Ok(Status::InvalidRequest) {
                        debug_println!("{}: a write was refused ({}); checking what is there", pd_name(), r.status_text());
                    } else {
                        self.errors += 1;
                        debug_println!("{}: a write to the read-only disk was answered: {}", pd_name(), r.status_text());
                    }
                    self.phase = Phase::Flushed;
                    continue;
                }
                if self.phase == Phase::Flush {
                    if r.id != FLUSH_ID {
                        // Every write was answered before the flush went.
                        let stray = self.answers.take(&r, self.next).err().unwrap_or(Stray::Twice);
                        self.stray(r.id, stray);
                        continue;
                    }
                    self.in_flight -= 1;
                    // (Only writes failed so far, or an empty disk.)
                    let failed = u64::from(self.errors).min(self.blocks);
                    if r.status() == Ok(Status::Ok) && failed == 0 {
                        debug_println!("{}: wrote and flushed {} blocks (generation {})", pd_name(), self.blocks, GENERATION);
                    } else if r.status() == Ok(Status::Ok) {
                        debug_println!("{}: wrote {} of {} blocks ({} failed) and flushed (generation {})", pd_name(), self.blocks - failed, self.blocks, failed, GENERATION);
                    } else if failed == 0 {
                        self.errors += 1;
                        debug_println!("{}: wrote {} blocks; the flush failed: {}", pd_name(), self.blocks, r.status_text());
                    } else {
                        self.errors += 1;
                        debug_println!("{}: wrote {} of {} blocks ({} failed); the flush failed: {}", pd_name(), self.blocks - failed, self.blocks, failed, r.status_text());
                    }
                    // Read back into emptied buffers (below).
                    self.phase = Phase::Flushed;
                    continue;
                }
                if let Err(stray) = self.answers.take(&r, self.next) {
                    self.stray(r.id, stray);
                    if stray.answered() {
                        // Its one answer, a wrong one.
                        (self.in_flight, self.done) = (self.in_flight - 1, self.done + 1);
                    }
                    continue;
                }
                self.in_flight -= 1;
                let ok = r.status() == Ok(Status::Ok);
                if !ok {
                    self.errors += 1;
                    debug_println!("{}: request {} failed: {}", pd_name(), r.id, r.status_text());
                }
                if self.phase == Phase::Read && ok {
                    self.compared += 1;
                    let mut buf = [0u8; BLOCK];
                    let _ = c.data.read_bytes(r.id as usize * BLOCK, &mut buf);
                    if let Err(m) = stamp::check(c.disk(), self.first + r.id as u64, GENERATION, &buf) {
                        self.mismatches += 1;
                        if self.mismatches <= SHOWN {
                            debug_println!("{}: block {}: {}", pd_name(), self.first + r.id as u64, m);
                        }
                    }
                }
                self.done += 1;
            }
            if self.phase == Phase::Flushed {
                self.start_reading(c);
            }
            // Start what we may.
            match self.phase {
                Phase::Write | Phase::Read => {
                    let op = if self.phase == Phase::Write { Op::Write } else { Op::Read };
                    while self.next < self.blocks && self.in_flight < c.capacity() {
                        let b = self.next;
                        if op == Op::Write {
                            let mut buf = [0u8; BLOCK];
                            stamp::stamp(c.disk(), self.first + b, GENERATION, &mut buf);
                            let _ = c.data.write_bytes(b as usize * BLOCK, &buf);
                        }
                        if !c.push(Request::new(b as u32, op, self.first + b, 1, b * BLOCK as u64)) {
                            break;
                        }
                        self.next += 1;
                        self.in_flight += 1;
                    }
                    if self.next == self.blocks && self.in_flight == 0 {
                        if self.phase == Phase::Write {
                            if c.push(Request::ordering(FLUSH_ID, Op::Flush)) {
                                self.in_flight += 1;
                                self.phase = Phase::Flush;
                            }
                        } else {
                            self.phase = Phase::Done;
                            if self.errors == 0 {
                                debug_println!("{}: verified {} blocks, {} mismatches", pd_name(), self.compared, self.mismatches);
                            } else if self.blocks == 0 && self.first == 0 {
                                debug_println!("{}: nothing to check: {} has no blocks", pd_name(), c.disk());
                            } else if self.blocks == 0 {
                                debug_println!("{}: nothing to check: {} has no blocks from block {}", pd_name(), c.disk(), self.first);
                            } else {
                                debug_println!("{}: verified {} blocks, {} mismatches, failed requests: {}", pd_name(), self.compared, self.mismatches, self.errors);
                            }
                            // Tell whoever waits (a blk_monitor on channel
                            // 0). With nobody to tell (channel 0 is not
                            // declared, or the tool gave it to the block
                            // client), the run ends here if this PD may
                            // power off (`can_power_off`).
                            if c.channel.index() == DONE.index() || DONE.try_notify().is_err() {
                                let _ = microkit::power_off(u64::from(self.errors != 0 || self.mismatches != 0));
                            }
                            return;
                        }
                    }
                }
                Phase::Done | Phase::WaitReady => return,
                Phase::WriteRefused | Phase::Flush | Phase::Flushed => {}
            }
            c.kick();
            if c.wait() {
                return;
            }
        }
    }

    /// Start the read-back. Each block's buffer is emptied first: a read
    /// that succeeded without bringing the block (or brought it elsewhere)
    /// must not find the stamp this client wrote there itself.
    fn start_reading(&mut self, c: &mut BlockClient) {
        let empty = [0u8; BLOCK];
        for b in 0..self.blocks as usize {
            let _ = c.data.write_bytes(b * BLOCK, &empty);
        }
        self.phase = Phase::Read;
        (self.next, self.done, self.compared) = (0, 0, 0);
        self.answers.restart();
    }

    /// An answer that does not fit what was sent: counted as a mismatch,
    /// and nothing else changes.
    fn stray(&mut self, id: u32, stray: Stray) {
        self.mismatches += 1;
        if self.mismatches <= SHOWN {
            debug_println!("{}: answer to request {}: {}", pd_name(), id, stray);
        }
    }
}

impl Handler for Verifier {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        self.step();
        Ok(())
    }
}
