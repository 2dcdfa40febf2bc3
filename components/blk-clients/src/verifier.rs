//! The verify client's work as a handler: write stamped blocks (unless it
//! only checks), flush, read them all back and compare, keeping up to a
//! queue's worth of requests in flight. Then tell channel [`DONE`].

use crate::client::BlockClient;
use crate::stamp::{self, BLOCK};
use blk::{Op, Request, Status};
use microkit::{debug_println, pd_name, Channel, ChannelSet, Handler, Infallible};

/// The channel on which the client reports that it finished.
pub const DONE: Channel = Channel::new(0);
/// The generation written and expected.
pub const GENERATION: u64 = 1;
/// Blocks verified at most.
const MAX_BLOCKS: u64 = 256;
/// Mismatches printed in detail at most.
const SHOWN: u32 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitReady,
    Write,
    Flush,
    Read,
    Done,
}

pub struct Verifier {
    client: Option<BlockClient>,
    write_first: bool,
    phase: Phase,
    blocks: u64,
    next: u64,
    in_flight: u32,
    done: u64,
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
        let mut v = Verifier { client, write_first, phase: Phase::WaitReady, blocks: 0, next: 0, in_flight: 0, done: 0, errors: 0, mismatches: 0 };
        v.step();
        v
    }

    fn step(&mut self) {
        let Some(c) = self.client.as_mut() else { return };
        loop {
            if self.phase == Phase::WaitReady {
                let Some(info) = c.info() else { return };
                let data_blocks = (c.data.size() / BLOCK) as u64;
                self.blocks = info.capacity.min(data_blocks).min(MAX_BLOCKS);
                debug_println!("{}: {} has {} blocks; checking {}", pd_name(), c.disk(), info.capacity, self.blocks);
                self.phase = if self.write_first { Phase::Write } else { Phase::Read };
                self.next = 0;
                if !self.write_first {
                    for off in (0..c.data.size()).step_by(BLOCK) {
                        let _ = c.data.write(off, &[0u8; 64]);
                    }
                }
            }
            // Take what came back.
            while let Some(r) = c.pop() {
                self.in_flight -= 1;
                let ok = r.status() == Ok(Status::Ok);
                if !ok {
                    self.errors += 1;
                    debug_println!("{}: request {} failed: {:?}", pd_name(), r.id, r.status());
                }
                match self.phase {
                    Phase::Flush => {
                        debug_println!("{}: wrote and flushed {} blocks (generation {})", pd_name(), self.blocks, GENERATION);
                        self.phase = Phase::Read;
                        self.next = 0;
                        self.done = 0;
                    }
                    Phase::Read if ok => {
                        let mut buf = [0u8; BLOCK];
                        let _ = c.data.read(r.id as usize * BLOCK, &mut buf);
                        if let Err(m) = stamp::check(c.disk(), r.id as u64, GENERATION, &buf) {
                            self.mismatches += 1;
                            if self.mismatches <= SHOWN {
                                debug_println!("{}: block {}: {}", pd_name(), r.id, m.describe());
                            }
                        }
                        self.done += 1;
                    }
                    _ => self.done += 1,
                }
            }
            // Start what we may.
            match self.phase {
                Phase::Write | Phase::Read => {
                    let op = if self.phase == Phase::Write { Op::Write } else { Op::Read };
                    while self.next < self.blocks && self.in_flight < c.capacity() {
                        let b = self.next;
                        if op == Op::Write {
                            let mut buf = [0u8; BLOCK];
                            stamp::stamp(c.disk(), b, GENERATION, &mut buf);
                            let _ = c.data.write(b as usize * BLOCK, &buf);
                        }
                        if !c.push(Request::new(b as u32, op, b, 1, b * BLOCK as u64)) {
                            break;
                        }
                        self.next += 1;
                        self.in_flight += 1;
                    }
                    if self.next == self.blocks && self.in_flight == 0 {
                        if self.phase == Phase::Write {
                            if c.push(Request::ordering(u32::MAX, Op::Flush)) {
                                self.in_flight += 1;
                                self.phase = Phase::Flush;
                            }
                        } else {
                            self.phase = Phase::Done;
                            debug_println!("{}: verified {} blocks, {} mismatches", pd_name(), self.done, self.mismatches + self.errors);
                            DONE.notify();
                            return;
                        }
                    }
                }
                Phase::Done | Phase::WaitReady => return,
                Phase::Flush => {}
            }
            c.kick();
            if c.wait() {
                return;
            }
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
