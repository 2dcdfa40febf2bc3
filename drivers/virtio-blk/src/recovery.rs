//! Bringing back a device that stopped. A virtio device that hits an error
//! it cannot go on from (a buffer where there is no memory, say) sets
//! NEEDS_RESET in its status, signals a configuration change, and
//! completes nothing more until it is reset (virtio 1.x 2.1.1). The driver
//! resets it, answers every request it held, and starts it again as it was
//! at start; a device that will not come back, or keeps stopping before it
//! completes anything, is given up (each reset re-initialises the device in
//! the driver PD, which serves the other disks too).

use crate::engine::{Completion, Engine, Status};
use crate::mmio::{self, Registers};
use crate::Dma;

/// What became of a device that stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// It runs again; `lost` requests it held were answered with an I/O
    /// error.
    Restarted { lost: u32 },
    /// It would not restart, or kept stopping (`why`): `lost` requests
    /// failed with an I/O error and a held barrier or flush got
    /// `NoDevice`. It was told FAILED; send it nothing more.
    GivenUp { lost: u32, why: &'static str },
}

/// Times in a row a device is restarted when it stops again before it
/// completed a request: the next such stop gives it up.
pub const RESTARTS_IN_A_ROW: u32 = 3;

/// Why a device that keeps stopping is given up.
pub const KEEPS_STOPPING: &str = "it keeps stopping before it completes a request";

/// How often the device stopped since it last completed a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stops(u32);

impl Stops {
    /// The device completed a request: it works again.
    pub fn completed(&mut self) {
        self.0 = 0;
    }
}

/// Reset the device and answer, through `answer`, every request it held:
/// those it finished before it stopped as they ended, the rest with an I/O
/// error. Then start it again with the same `features` and the engine's
/// queue, emptied, unless this is its stop number
/// [`RESTARTS_IN_A_ROW`]` + 1` since it last completed a request (counted
/// in `stops`): then, and if it does not even finish its reset, it is told
/// FAILED and given up. A device that did not reset may still write into
/// the buffers of the requests answered here (their requesters' own), but
/// it gets no new ones.
pub fn recover(
    r: &impl Registers,
    dma: &impl Dma,
    engine: &mut Engine,
    features: u64,
    stops: &mut Stops,
    mut answer: impl FnMut(Completion),
) -> Recovery {
    // Once the reset shows, the device no longer touches memory, and what
    // it finished is in the used ring. Ok(whether to give it up anyway).
    let reset = match mmio::reset(r) {
        Ok(()) => {
            while let Some(c) = engine.complete(dma) {
                stops.completed();
                answer(c);
            }
            stops.0 += 1;
            Ok(stops.0 > RESTARTS_IN_A_ROW)
        }
        Err(e) => {
            mmio::fail(r);
            Err(e)
        }
    };
    let mut lost = 0;
    engine.reset(dma, |c| {
        lost += 1;
        answer(c);
    });
    let layout = engine.layout();
    let at = |off: usize| dma.paddr() + off as u64;
    let restarted = match reset {
        Ok(true) => {
            mmio::fail(r);
            Err(KEEPS_STOPPING)
        }
        Ok(false) => mmio::restart(r, features, layout.size, at(layout.desc), at(layout.avail), at(layout.used)).map_err(|e| e.as_str()),
        Err(e) => Err(e.as_str()),
    };
    match restarted {
        Ok(()) => Recovery::Restarted { lost },
        Err(why) => {
            // A barrier or flush waiting for the lost requests would wait
            // forever.
            if let Some(held) = engine.take_held() {
                answer(Completion { id: held.id, status: Status::NoDevice, count: 0 });
            }
            Recovery::GivenUp { lost, why }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Op, Request, SlotArea, Submitted};
    use crate::mmio::{feature, status};
    use crate::testing::{FakeDevice, FakeDma, FakeRegs};
    use crate::virtq::Layout;

    const DATA: usize = 0x4000;
    const PADDR: u64 = 0x4800_0000;
    const FEATURES: u64 = feature::VERSION_1 | feature::BLK_FLUSH;

    /// A running device with two writes it finished (still in the used
    /// ring) and two it had not started when it stopped, and a barrier
    /// held behind them.
    fn stopped() -> (FakeRegs, FakeDma, Engine, FakeDevice) {
        let regs = FakeRegs::new(FEATURES, 256);
        assert_eq!(mmio::negotiate(&regs), Ok(FEATURES));
        let dma = FakeDma::new(DATA + 8 * 4096, PADDR);
        let layout = Layout::new(128, 0);
        let mut engine = Engine::new(&dma, layout, SlotArea::at(layout.end.next_multiple_of(16)), 8 * 64, false, true);
        mmio::setup_queue(&regs, 128, PADDR, PADDR + layout.avail as u64, PADDR + layout.used as u64);
        mmio::driver_ok(&regs);
        let mut device = FakeDevice::new(layout, 8 * 64);
        let write = |id: u64, block| Request { id, op: Op::Write, block, count: 1, dma_addr: PADDR + DATA as u64 };
        for id in 1..=4 {
            assert_eq!(engine.submit(&dma, write(id, id)), Submitted::Started);
            if id == 2 {
                device.process_reversed(&dma);
            }
        }
        assert_eq!(engine.submit(&dma, Request { id: 5, op: Op::Barrier, block: 0, count: 0, dma_addr: 0 }), Submitted::Held);
        regs.status.set(regs.status.get() | status::NEEDS_RESET);
        (regs, dma, engine, device)
    }

    fn answers(c: &[Completion]) -> Vec<(u64, Status)> {
        let mut v: Vec<_> = c.iter().map(|c| (c.id, c.status)).collect();
        v.sort_by_key(|&(id, _)| id);
        v
    }

    #[test]
    fn a_stopped_device_answers_what_it_held_and_serves_again() {
        let (regs, dma, mut engine, mut device) = stopped();
        regs.reset_reads.set(5);
        let mut answered = Vec::new();
        assert_eq!(recover(&regs, &dma, &mut engine, FEATURES, &mut Stops::default(), |c| answered.push(c)), Recovery::Restarted { lost: 2 });
        assert_eq!(answers(&answered), [(1, Status::Ok), (2, Status::Ok), (3, Status::IoError), (4, Status::IoError)]);
        assert!(!mmio::needs_reset(&regs));
        assert_eq!(regs.status.get() & status::DRIVER_OK, status::DRIVER_OK);
        assert_eq!(regs.queue.get(), (128, PADDR, PADDR + engine.layout().avail as u64, PADDR + engine.layout().used as u64));
        // The barrier passes, and the emptied queue works.
        device.reset();
        assert!(matches!(engine.release_held(&dma), Some(Submitted::Done(Completion { id: 5, status: Status::Ok, .. }))));
        let read = Request { id: 6, op: Op::Read, block: 1, count: 1, dma_addr: PADDR + DATA as u64 };
        assert_eq!(engine.submit(&dma, read), Submitted::Started);
        device.process_reversed(&dma);
        assert_eq!(engine.complete(&dma), Some(Completion { id: 6, status: Status::Ok, count: 1 }));
    }

    #[test]
    fn a_device_that_does_not_reset_is_given_up_and_owes_nothing() {
        let (regs, dma, mut engine, _device) = stopped();
        regs.reset_reads.set(u32::MAX);
        let mut answered = Vec::new();
        let why = mmio::InitError::ResetTimeout.as_str();
        assert_eq!(recover(&regs, &dma, &mut engine, FEATURES, &mut Stops::default(), |c| answered.push(c)), Recovery::GivenUp { lost: 4, why });
        // Not quiet: even what it finished is not trusted.
        let io = Status::IoError;
        assert_eq!(answers(&answered), [(1, io), (2, io), (3, io), (4, io), (5, Status::NoDevice)]);
        assert_eq!(regs.status.get() & status::FAILED, status::FAILED);
        assert_eq!(engine.in_flight(), 0);
    }

    #[test]
    fn a_device_that_comes_back_different_is_given_up() {
        let (mut regs, dma, mut engine, _device) = stopped();
        // It no longer offers flushes: the driver's promise about them
        // would not hold.
        regs.offered = feature::VERSION_1;
        let mut answered = Vec::new();
        let why = mmio::InitError::FeaturesChanged.as_str();
        assert_eq!(recover(&regs, &dma, &mut engine, FEATURES, &mut Stops::default(), |c| answered.push(c)), Recovery::GivenUp { lost: 2, why });
        assert_eq!(answers(&answered), [(1, Status::Ok), (2, Status::Ok), (3, Status::IoError), (4, Status::IoError), (5, Status::NoDevice)]);
        assert_eq!((regs.status.get() & status::FAILED, regs.queue_ready.get()), (status::FAILED, 0));
    }

    #[test]
    fn a_device_that_keeps_stopping_before_it_completes_anything_is_given_up() {
        let (regs, dma, mut engine, mut device) = stopped();
        let mut stops = Stops::default();
        let mut answered = Vec::new();
        // The first stop: it had finished two writes before it.
        assert_eq!(recover(&regs, &dma, &mut engine, FEATURES, &mut stops, |c| answered.push(c)), Recovery::Restarted { lost: 2 });
        let _ = engine.release_held(&dma);
        // Each stop after it takes the one read sent since: unfinished, or
        // finished (`done`) and left in the used ring when it stopped.
        let mut stop_again = |engine: &mut Engine, stops: &mut Stops, id, done: bool| {
            device.reset();
            let read = Request { id, op: Op::Read, block: 1, count: 1, dma_addr: PADDR + DATA as u64 };
            assert_eq!(engine.submit(&dma, read), Submitted::Started);
            if done {
                device.process_reversed(&dma);
            }
            regs.status.set(regs.status.get() | status::NEEDS_RESET);
            let mut answered = Vec::new();
            let r = recover(&regs, &dma, engine, FEATURES, stops, |c| answered.push(c));
            assert_eq!(answers(&answered), [(id, if done { Status::Ok } else { Status::IoError })]);
            r
        };
        let restarted = |lost| Recovery::Restarted { lost };
        for id in 2..=RESTARTS_IN_A_ROW as u64 {
            assert_eq!(stop_again(&mut engine, &mut stops, 10 + id, false), restarted(1), "stop {id}");
        }
        // The driver saw it complete a request: the count starts again.
        stops.completed();
        for id in 1..=RESTARTS_IN_A_ROW as u64 {
            assert_eq!(stop_again(&mut engine, &mut stops, 20 + id, false), restarted(1), "stop {id} after a completion");
        }
        // It stops once more, but had completed a request first: that
        // counts too.
        assert_eq!(stop_again(&mut engine, &mut stops, 30, true), restarted(0));
        for id in 2..=RESTARTS_IN_A_ROW as u64 {
            assert_eq!(stop_again(&mut engine, &mut stops, 30 + id, false), restarted(1), "stop {id} after a completion it held");
        }
        assert_eq!(regs.status.get() & status::FAILED, 0);
        let queue = regs.queue_ready.get();
        assert_eq!(stop_again(&mut engine, &mut stops, 40, false), Recovery::GivenUp { lost: 1, why: KEEPS_STOPPING });
        // Told FAILED after its reset, and not set up again.
        assert_eq!((regs.status.get() & status::FAILED, regs.queue_ready.get(), queue), (status::FAILED, 0, 1));
        assert_eq!(engine.in_flight(), 0);
    }
}
