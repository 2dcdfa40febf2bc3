//! The engine against random traffic and a device that takes chains and
//! serves them in any order, failing some, and is reset at any point, as
//! the driver PD uses it (it submits only while `can_accept`, lets a held
//! barrier or flush go after each round of completions, and drains the
//! used ring before a reset).
//!
//! Checked at every step: each request is answered once, with its own id,
//! status and count; a read returns what the disk held when the device
//! served it, in the request's own buffer; a write lands on its own
//! blocks; a barrier completes, and a flush reaches the device, only once
//! every request before it has been answered (a flush of completed writes
//! goes at once); the engine's count in flight matches. At the end, with
//! the device serving everything, every request has been answered.

use crate::engine::{Completion, Engine, Op, Request, SlotArea, Status, Submitted, MAX_IN_FLIGHT};
use crate::testing::{FakeDevice, FakeDma};
use crate::virtq::Layout;
use proptest::prelude::*;

const PADDR: u64 = 0x4800_0000;
const BLOCKS: u64 = 32;
/// Where the data buffers start: one of two blocks per request in flight.
const DATA: usize = 0x4000;
const BUF_BLOCKS: usize = 2;

#[derive(Clone, Debug)]
enum Action {
    /// Submit (if the engine accepts one) a request of this kind.
    Submit(Kind),
    /// The device takes what is available.
    Take,
    /// The device serves one chain it took (picked by `pick`), failing it
    /// if `fail`.
    Serve { pick: usize, fail: bool },
    /// The driver takes the completions, then lets a held request go.
    Complete,
    /// The device stops: the driver drains, resets the engine and the
    /// device.
    Reset,
}

#[derive(Clone, Debug)]
enum Kind {
    Read { block: u64, count: u32 },
    Write { block: u64, count: u32 },
    /// Zero blocks, or past the end.
    Bad { past_end: bool },
    Barrier,
    Flush,
    FlushCompleted,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => (0..BLOCKS, 1u32..=BUF_BLOCKS as u32).prop_map(|(block, count)| Kind::Read { block: block.min(BLOCKS - count as u64), count }),
        4 => (0..BLOCKS, 1u32..=BUF_BLOCKS as u32).prop_map(|(block, count)| Kind::Write { block: block.min(BLOCKS - count as u64), count }),
        1 => any::<bool>().prop_map(|past_end| Kind::Bad { past_end }),
        1 => Just(Kind::Barrier),
        1 => Just(Kind::Flush),
        1 => Just(Kind::FlushCompleted),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => kind().prop_map(Action::Submit),
        2 => Just(Action::Take),
        4 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(pick, fail)| Action::Serve { pick, fail }),
        3 => Just(Action::Complete),
        1 => Just(Action::Reset),
    ]
}

#[derive(Clone, Debug)]
struct Sent {
    request: Request,
    /// Its data buffer, as a slot number.
    buffer: Option<usize>,
    /// What a read found on the disk when the device served it; whether
    /// the device failed it.
    served: Option<(Vec<u8>, bool)>,
    /// Put on the queue for the device.
    started: bool,
    answered: bool,
}

struct Model {
    dma: FakeDma,
    engine: Engine,
    device: FakeDevice,
    sent: Vec<Sent>,
    /// The first byte of each block on the disk (every byte of a block is
    /// the same).
    disk: Vec<u8>,
    free_buffers: Vec<usize>,
    /// The barrier or flush the engine holds.
    held: Option<u64>,
}

/// The byte block `k` of write `id` fills its block with.
fn stamp(id: u64, k: u64) -> u8 {
    (id.wrapping_mul(7).wrapping_add(k * 13) as u8) | 1
}

fn buffer_off(slot: usize) -> usize {
    DATA + slot * BUF_BLOCKS * 4096
}

impl Model {
    fn new() -> Model {
        let dma = FakeDma::new(DATA + MAX_IN_FLIGHT * BUF_BLOCKS * 4096, PADDR);
        let layout = Layout::new(256, 0);
        let area = SlotArea::at(layout.end.next_multiple_of(16));
        assert!(area.status + MAX_IN_FLIGHT <= DATA);
        let engine = Engine::new(&dma, layout, area, BLOCKS * 8, false, true);
        let device = FakeDevice::new(layout, BLOCKS * 8);
        Model { dma, engine, device, sent: Vec::new(), disk: vec![0; BLOCKS as usize], free_buffers: (0..MAX_IN_FLIGHT).rev().collect(), held: None }
    }

    /// Every request sent before `id` has been answered.
    fn earlier_answered(&self, id: u64, what: &str) -> Result<(), TestCaseError> {
        for s in &self.sent[..id as usize] {
            prop_assert!(s.answered, "{} {} before {:?} was answered", what, id, s.request);
        }
        Ok(())
    }

    fn submit(&mut self, kind: Kind) -> Result<(), TestCaseError> {
        if !self.engine.can_accept() {
            return Ok(());
        }
        let id = self.sent.len() as u64;
        let (op, block, count) = match kind {
            Kind::Read { block, count } => (Op::Read, block, count),
            Kind::Write { block, count } => (Op::Write, block, count),
            Kind::Bad { past_end: true } => (Op::Read, BLOCKS - 1, 2),
            Kind::Bad { past_end: false } => (Op::Write, 0, 0),
            Kind::Barrier => (Op::Barrier, 0, 0),
            Kind::Flush => (Op::Flush, 0, 0),
            Kind::FlushCompleted => (Op::FlushCompleted, 0, 0),
        };
        let buffer = op.moves_data().then(|| self.free_buffers.pop().unwrap());
        let at = buffer.map_or(0, buffer_off);
        for k in 0..count as u64 {
            let fill = if op == Op::Write { stamp(id, k) } else { 0 };
            self.dma.fill(at + k as usize * 4096, 4096, fill);
        }
        let request = Request { id, op, block, count, dma_addr: PADDR + at as u64 };
        self.sent.push(Sent { request, buffer, served: None, started: false, answered: false });
        match self.engine.submit(&self.dma, request) {
            Submitted::Started => self.started(id)?,
            Submitted::Held => {
                prop_assert!(matches!(op, Op::Barrier | Op::Flush));
                self.held = Some(id);
            }
            Submitted::Done(c) => {
                let refused = matches!(kind, Kind::Bad { .. });
                prop_assert_eq!(c.status, if refused { Status::InvalidRequest } else { Status::Ok });
                self.answer(c)?;
            }
        }
        Ok(())
    }

    fn started(&mut self, id: u64) -> Result<(), TestCaseError> {
        self.sent[id as usize].started = true;
        if self.sent[id as usize].request.op == Op::Flush {
            self.earlier_answered(id, "a flush reached the device")?;
        }
        Ok(())
    }

    fn serve(&mut self, pick: usize, fail: bool) -> Result<(), TestCaseError> {
        if self.device.pending.is_empty() {
            return Ok(());
        }
        self.device.fail_next = fail;
        let served = self.device.serve_pending(&self.dma, pick % self.device.pending.len());
        let Some(addr) = served.data else {
            prop_assert_eq!(served.kind, 4);
            return Ok(());
        };
        // The request whose buffer this is.
        let slot = (addr - PADDR - DATA as u64) as usize / (BUF_BLOCKS * 4096);
        let s = self.sent.iter_mut().find(|s| s.buffer == Some(slot) && !s.answered && s.served.is_none());
        prop_assert!(s.is_some(), "the device served a buffer no request in flight owns");
        let s = s.unwrap();
        let r = s.request;
        prop_assert_eq!(served.sector, r.block * 8, "request {} on the wrong sector", r.id);
        let blocks = r.block as usize..(r.block + r.count as u64) as usize;
        if !served.failed && r.op == Op::Write {
            for (k, b) in blocks.clone().enumerate() {
                self.disk[b] = stamp(r.id, k as u64);
                prop_assert!(self.device.block(b as u64).iter().all(|&x| x == self.disk[b]), "write {} block {}: not its data", r.id, k);
            }
        }
        s.served = Some((self.disk[blocks].to_vec(), served.failed));
        Ok(())
    }

    fn answer(&mut self, c: Completion) -> Result<(), TestCaseError> {
        prop_assert!((c.id as usize) < self.sent.len(), "an answer to a request never sent: {:?}", c);
        let s = &mut self.sent[c.id as usize];
        prop_assert!(!s.answered, "answered twice: {:?}", c);
        s.answered = true;
        let r = s.request;
        match (r.op, &s.served) {
            (Op::Read | Op::Write, Some((found, failed))) => {
                if *failed {
                    prop_assert_eq!((c.status, c.count), (Status::IoError, 0));
                } else {
                    prop_assert_eq!((c.status, c.count), (Status::Ok, r.count));
                }
                if r.op == Op::Read && !failed {
                    let at = buffer_off(s.buffer.unwrap());
                    for (k, &byte) in found.iter().enumerate() {
                        prop_assert!(self.dma.bytes(at + k * 4096, 4096).iter().all(|&b| b == byte), "read {} block {}: not what the disk held", r.id, k);
                    }
                }
            }
            // Never served: refused, or lost in a reset.
            (Op::Read | Op::Write, None) => prop_assert!(c.status != Status::Ok, "{:?} answered OK without the device", r),
            (Op::Barrier, _) => {
                prop_assert_eq!(c.status, Status::Ok);
                self.earlier_answered(r.id, "a barrier completed")?;
            }
            (Op::Flush | Op::FlushCompleted, _) => {
                prop_assert_eq!(c.count, 0);
                prop_assert!(c.status != Status::Ok || s.started, "{:?} answered OK without reaching the device", r);
            }
            (Op::Report, _) => prop_assert_eq!(c.status, Status::InvalidRequest, "a driver does not report"),
        }
        if let Some(slot) = self.sent[c.id as usize].buffer {
            self.free_buffers.push(slot);
        }
        Ok(())
    }

    /// The driver's round: completions, then a held request goes.
    fn complete(&mut self) -> Result<(), TestCaseError> {
        while let Some(c) = self.engine.complete(&self.dma) {
            self.answer(c)?;
        }
        match self.engine.release_held(&self.dma) {
            Some(Submitted::Done(c)) => {
                prop_assert_eq!(Some(c.id), self.held.take(), "not the held request");
                self.answer(c)?;
            }
            Some(Submitted::Started) => {
                let id = self.held.take();
                prop_assert!(id.is_some(), "a request started that was not held");
                self.started(id.unwrap())?;
            }
            Some(Submitted::Held) => prop_assert!(false, "held again with nothing in flight"),
            None => {}
        }
        let in_flight = self.sent.iter().filter(|s| s.started && !s.answered).count();
        prop_assert_eq!(self.engine.in_flight(), in_flight);
        Ok(())
    }

    /// What `recovery::recover` does around the engine.
    fn reset(&mut self) -> Result<(), TestCaseError> {
        while let Some(c) = self.engine.complete(&self.dma) {
            self.answer(c)?;
        }
        // A flush held behind requests the device loses cannot promise
        // anything: it fails with them.
        let held_flush = self.held.filter(|&id| self.sent[id as usize].request.op == Op::Flush && self.engine.in_flight() > 0);
        let mut failed = Vec::new();
        self.engine.reset(&self.dma, |c| failed.push(c));
        if let Some(id) = held_flush {
            prop_assert!(failed.iter().any(|c| c.id == id), "a flush held behind lost requests survived the reset");
        }
        for c in failed {
            prop_assert_eq!(c.status, Status::IoError);
            if self.held == Some(c.id) {
                // A flush held behind lost requests.
                self.held = None;
            }
            self.answer(c)?;
        }
        self.device.reset();
        prop_assert_eq!(self.engine.in_flight(), 0);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_is_answered_once_in_order_with_the_right_data(actions in prop::collection::vec(action(), 0..200)) {
        let mut m = Model::new();
        for action in actions {
            match action {
                Action::Submit(kind) => m.submit(kind)?,
                Action::Take => m.device.take_available(&m.dma),
                Action::Serve { pick, fail } => m.serve(pick, fail)?,
                Action::Complete => m.complete()?,
                Action::Reset => m.reset()?,
            }
        }
        // The device serves everything; the driver takes it all.
        for _ in 0..MAX_IN_FLIGHT * 4 {
            m.device.take_available(&m.dma);
            while !m.device.pending.is_empty() {
                m.serve(0, false)?;
            }
            m.complete()?;
        }
        for s in &m.sent {
            prop_assert!(s.answered, "never answered: {:?}", s.request);
        }
    }
}
