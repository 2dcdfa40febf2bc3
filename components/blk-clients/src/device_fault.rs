//! The device-fault client as a handler. Attached to the driver directly
//! (`direct="true"`: it names physical addresses), it does what only such a
//! client can: gives the device a buffer where there is no memory, so the
//! device fails (virtio-blk sets NEEDS_RESET and stops), and checks that the
//! driver recovers:
//!
//! 1. writes stamped blocks `0..BLOCKS` (all must succeed);
//! 2. sends a read into the page just past its data region, which the
//!    driver must refuse (`invalid request`) without the device: a direct
//!    client names only memory it may reach itself;
//! 3. sends a read into [`NO_MEMORY`] (a region it maps, with nothing
//!    behind it) with [`BEHIND`] good reads after it:
//!    the bad one must fail with an I/O error, and each of the others must
//!    be answered exactly once (the device may have lost them);
//! 4. reads blocks `0..BLOCKS` back and checks their stamps: the device
//!    serves requests again after the driver reset it; and step 2 again:
//!    the reset did not lift the confinement;
//! 5. sends bad reads one at a time, each after the last was answered,
//!    until one is answered `no device` (at most [`GIVE_UP_WITHIN`]): a
//!    device that keeps stopping before it completes anything must be given
//!    up, not reset for ever; each before must fail with an I/O error;
//! 6. sends a good read, which must be answered `no device` too.
//!
//! Each step prints one line; one that went wrong contains `UNEXPECTED`.
//! Then it tells channel [`DONE`].

use crate::client::BlockClient;
use crate::stamp::{self, BLOCK};
use blk::{Op, Request, Status};
use microkit::{debug_println, pd_name, Channel, ChannelSet, Handler, Infallible};

/// The channel on which the client reports that it finished.
pub const DONE: Channel = Channel::new(0);
pub const GENERATION: u64 = 3;
/// Blocks written before the fault and read back after it.
pub const BLOCKS: u64 = 4;
/// A physical address with nothing behind it on QEMU's virt machine (RAM
/// ends far below, the high device regions start at 256 GiB), where the
/// system maps this client a region (`tests/systems/storage-fault.xml`).
/// QEMU maps a buffer there through a single one-page bounce buffer, so a
/// two-block transfer cannot be mapped and the device gives up.
pub const NO_MEMORY: u64 = 0x20_0000_0000;
/// Good reads sent right behind the bad one.
pub const BEHIND: u32 = 2;
/// Where the reads land in the data region, in blocks.
const READ_BACK: u64 = 8;
const BAD_ID: u32 = 100;
/// Bad reads sent one after another at most, waiting for the driver to
/// give the device up.
pub const GIVE_UP_WITHIN: u32 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    WaitReady,
    Write,
    Outside,
    Fault,
    ReadBack,
    OutsideAfterReset,
    Repeat,
    Gone,
    Done,
}

pub struct DeviceFault {
    client: Option<BlockClient>,
    step: Step,
    /// Answers still expected in this step.
    pending: u32,
    /// Per id below 128: answers seen in this step.
    answered: [u8; 128],
    ok: u32,
    io_errors: u32,
    no_device: u32,
    invalid: u32,
    other: u32,
    intact: u32,
    /// Bad reads of step 5 answered with an I/O error so far.
    repeated: u32,
}

impl DeviceFault {
    pub fn new() -> DeviceFault {
        let client = match BlockClient::from_config() {
            Ok(c) if c.is_direct() => Some(c),
            Ok(_) => {
                debug_println!("{}: UNEXPECTED: needs a direct attachment (direct=\"true\") to name physical addresses", pd_name());
                None
            }
            Err(e) => {
                debug_println!("{}: {}", pd_name(), e);
                None
            }
        };
        let mut f = DeviceFault {
            client,
            step: Step::WaitReady,
            pending: 0,
            answered: [0; 128],
            ok: 0,
            io_errors: 0,
            no_device: 0,
            invalid: 0,
            other: 0,
            intact: 0,
            repeated: 0,
        };
        f.run();
        f
    }

    fn run(&mut self) {
        loop {
            if self.step == Step::WaitReady && !self.begin() {
                return;
            }
            let Some(c) = self.client.as_mut() else { return };
            while let Some(r) = c.pop() {
                let id = r.id as usize;
                if id >= self.answered.len() {
                    debug_println!("{}: UNEXPECTED: an answer to request {} it never sent", pd_name(), r.id);
                    continue;
                }
                self.answered[id] += 1;
                self.pending = self.pending.saturating_sub(1);
                match r.status() {
                    Ok(Status::Ok) => self.ok += 1,
                    Ok(Status::IoError) => self.io_errors += 1,
                    Ok(Status::NoDevice) => self.no_device += 1,
                    Ok(Status::InvalidRequest) => self.invalid += 1,
                    _ => self.other += 1,
                }
                if self.step == Step::Fault && r.id == BAD_ID && r.status() != Ok(Status::IoError) {
                    debug_println!("{}: UNEXPECTED: the read into no memory got {:?}, not an I/O error", pd_name(), r.status());
                }
                if self.step == Step::ReadBack && r.status() == Ok(Status::Ok) {
                    let mut buf = [0u8; BLOCK];
                    let _ = c.data.read_bytes((READ_BACK + r.id as u64) as usize * BLOCK, &mut buf);
                    match stamp::check(c.disk(), r.id as u64, GENERATION, &buf) {
                        Ok(()) => self.intact += 1,
                        Err(m) => debug_println!("{}: UNEXPECTED: block {}: {}", pd_name(), r.id, m),
                    }
                }
            }
            if self.pending > 0 {
                c.kick();
                if c.wait() {
                    return;
                }
                continue;
            }
            self.finish_step();
            if self.step == Step::Done {
                DONE.notify();
                return;
            }
        }
    }

    /// Once the disk is ready, check it suits and start writing; false
    /// while it is not ready or if it does not suit.
    fn begin(&mut self) -> bool {
        let Some(c) = self.client.as_ref() else { return false };
        let Some(info) = c.info() else { return false };
        if info.capacity < BLOCKS || c.capacity() < BEHIND + 1 || c.data.len() < ((READ_BACK + BLOCKS) as usize * BLOCK) {
            debug_println!("{}: UNEXPECTED: needs {} blocks of disk, a queue of {} and {} blocks of data", pd_name(), BLOCKS, BEHIND + 1, READ_BACK + BLOCKS);
            self.client = None;
            return false;
        }
        self.start(Step::Write);
        true
    }

    /// Send step `step`'s requests.
    fn start(&mut self, step: Step) {
        let Some(c) = self.client.as_mut() else { return };
        self.step = step;
        self.answered = [0; 128];
        (self.ok, self.io_errors, self.no_device, self.invalid, self.other, self.intact) = (0, 0, 0, 0, 0, 0);
        let mut sent = 0;
        // `raw`: the data offset is a physical address already.
        let mut push_raw = |c: &mut BlockClient, req: Request, raw: bool| {
            let pushed = if raw { c.queue.requests.try_push(req).is_ok() } else { c.push(req) };
            if pushed {
                sent += 1;
            } else {
                debug_println!("{}: UNEXPECTED: the ring refused request {}", pd_name(), req.id);
            }
        };
        let mut push = |c: &mut BlockClient, req: Request| push_raw(c, req, false);
        match step {
            Step::Write => {
                for b in 0..BLOCKS {
                    let mut buf = [0u8; BLOCK];
                    stamp::stamp(c.disk(), b, GENERATION, &mut buf);
                    let _ = c.data.write_bytes(b as usize * BLOCK, &buf);
                    push(c, Request::new(b as u32, Op::Write, b, 1, b * BLOCK as u64));
                }
            }
            Step::Outside | Step::OutsideAfterReset => {
                // `push` adds the data region's physical address.
                let past = c.data.len() as u64;
                push(c, Request::new(BAD_ID, Op::Read, 0, 1, past));
            }
            Step::Fault => {
                // Not through `push`, which would add the data region's
                // physical address.
                push_raw(c, Request::new(BAD_ID, Op::Read, 0, 2, NO_MEMORY), true);
                for i in 0..BEHIND {
                    push_raw(c, Request::new(i, Op::Read, i as u64, 1, (READ_BACK + i as u64) * BLOCK as u64), false);
                }
            }
            Step::ReadBack => {
                for b in 0..BLOCKS {
                    let _ = c.data.write_bytes((READ_BACK + b) as usize * BLOCK, &[0u8; 64]);
                    push(c, Request::new(b as u32, Op::Read, b, 1, (READ_BACK + b) * BLOCK as u64));
                }
            }
            Step::Repeat => push_raw(c, Request::new(BAD_ID, Op::Read, 0, 2, NO_MEMORY), true),
            Step::Gone => push(c, Request::new(0, Op::Read, 0, 1, READ_BACK * BLOCK as u64)),
            Step::WaitReady | Step::Done => {}
        }
        self.pending = sent;
    }

    /// Report the step that just finished and start the next.
    fn finish_step(&mut self) {
        let name = pd_name();
        let once = |ids: core::ops::Range<usize>, answered: &[u8; 128]| ids.into_iter().all(|i| answered[i] == 1);
        match self.step {
            Step::Write => {
                let good = self.ok == BLOCKS as u32 && once(0..BLOCKS as usize, &self.answered);
                debug_println!("{}: wrote blocks 0..{}: {} ok{}", name, BLOCKS, self.ok, if good { "" } else { " UNEXPECTED" });
                self.start(Step::Outside);
            }
            Step::Outside | Step::OutsideAfterReset => {
                let refused = self.answered[BAD_ID as usize] == 1 && self.invalid == 1;
                let after = if self.step == Step::Outside { "" } else { " after the reset" };
                debug_println!(
                    "{}: a read into the page past its data region{}: {}",
                    name,
                    after,
                    if refused { "invalid request" } else { "UNEXPECTED: not refused once" }
                );
                self.start(if self.step == Step::Outside { Step::Fault } else { Step::Repeat });
            }
            Step::Fault => {
                let bad = self.answered[BAD_ID as usize];
                let behind = once(0..BEHIND as usize, &self.answered);
                debug_println!(
                    "{}: read into physical {:#x} (no memory), {} reads behind it: the bad one {}, each behind it answered {}{}",
                    name,
                    NO_MEMORY,
                    BEHIND,
                    if bad == 1 { "answered once" } else { "UNEXPECTED: not answered once" },
                    if behind { "once" } else { "UNEXPECTED: not once" },
                    if self.other + self.no_device + self.invalid == 0 { "" } else { " UNEXPECTED: a status other than ok or I/O error" }
                );
                self.start(Step::ReadBack);
            }
            Step::ReadBack => {
                let good = self.intact == BLOCKS as u32 && once(0..BLOCKS as usize, &self.answered);
                debug_println!(
                    "{}: after the fault, read blocks 0..{} back: {} intact{}",
                    name,
                    BLOCKS,
                    self.intact,
                    if good { "" } else { " UNEXPECTED" }
                );
                self.start(Step::OutsideAfterReset);
            }
            Step::Repeat => {
                self.repeated += self.io_errors;
                if self.io_errors == 1 && self.repeated < GIVE_UP_WITHIN {
                    self.start(Step::Repeat);
                    return;
                }
                debug_println!(
                    "{}: read into no memory again, one at a time, until the device was given up: {} I/O errors, then {}",
                    name,
                    self.repeated,
                    if self.no_device == 1 { "no device" } else { "UNEXPECTED: no 'no device' answer" }
                );
                self.start(Step::Gone);
            }
            Step::Gone => {
                debug_println!(
                    "{}: a good read after that: {}",
                    name,
                    if self.no_device == 1 { "no device" } else { "UNEXPECTED: not answered 'no device'" }
                );
                self.step = Step::Done;
            }
            Step::WaitReady | Step::Done => {}
        }
    }
}

impl Default for DeviceFault {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler for DeviceFault {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        self.run();
        Ok(())
    }
}
