//! The probe client: once told to go (a notification on [`GO`]), it writes
//! block 0 of its disk, reads it back and prints how each was answered,
//! then asks the filter server for its disk's statistics (`Report`) and
//! tells channel [`DONE`]. The tour uses it on a range a read-only filter
//! guards: its write is refused before the disk, its read is served.

use crate::client::BlockClient;
use crate::stamp::{self, BLOCK};
use blk::{Op, Request};
use microkit::{debug_println, pd_name, Channel, ChannelSet, Handler, Infallible};

/// The channel on which the client reports that it finished.
pub const DONE: Channel = Channel::new(0);
/// The channel that tells it to start.
pub const GO: Channel = Channel::new(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitGo,
    Write,
    Read,
    Report,
    Done,
}

pub struct Probe {
    client: Option<BlockClient>,
    go: bool,
    phase: Phase,
}

impl Probe {
    pub fn new() -> Probe {
        let client = match BlockClient::from_config() {
            Ok(c) => Some(c),
            Err(e) => {
                debug_println!("{}: {}", pd_name(), e);
                None
            }
        };
        Probe { client, go: false, phase: Phase::WaitGo }
    }

    fn step(&mut self) {
        let Some(c) = self.client.as_mut() else { return };
        loop {
            if self.phase == Phase::WaitGo {
                if !self.go || c.info().is_none() {
                    return;
                }
                let mut buf = [0u8; BLOCK];
                stamp::stamp(c.disk(), 0, 1, &mut buf);
                let _ = c.data.write(0, &buf);
                if !c.push(Request::new(0, Op::Write, 0, 1, 0)) {
                    return;
                }
                self.phase = Phase::Write;
            }
            while let Some(r) = c.pop() {
                match self.phase {
                    Phase::Write => {
                        debug_println!("{}: write of block 0 of {}: {}", pd_name(), c.disk(), r.status_text());
                        if c.push(Request::new(1, Op::Read, 0, 1, 0)) {
                            self.phase = Phase::Read;
                        }
                    }
                    Phase::Read => {
                        debug_println!("{}: read of block 0 of {}: {}", pd_name(), c.disk(), r.status_text());
                        if c.push(Request::ordering(2, Op::Report)) {
                            self.phase = Phase::Report;
                        }
                    }
                    Phase::Report => {
                        self.phase = Phase::Done;
                        DONE.notify();
                        return;
                    }
                    Phase::WaitGo | Phase::Done => {}
                }
            }
            c.kick();
            if c.wait() {
                return;
            }
        }
    }
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::new()
    }
}

impl Handler for Probe {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        self.go |= channels.contains(GO);
        self.step();
        Ok(())
    }
}
