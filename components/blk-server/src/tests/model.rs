//! The server against random traffic: clients that send any mix of good,
//! bad and ordering requests (and flood their rings), a driver that takes
//! what it is sent and completes it in any order with any status, and a
//! model of what each client must see.
//!
//! Checked at every step: the driver only ever gets reads and writes inside
//! the sending client's view and data region, tagged with that client, and
//! flushes of completed writes, never more than its rings can answer; no
//! request of a client reaches the driver while a barrier or flush the
//! client sent before it still waits for earlier requests; a client's
//! answers are its own, untagged, once each, with the status the driver
//! gave (or `InvalidRequest` for a bad request, `Ok` for a barrier). At the
//! end, with the driver completing everything, every request is answered.

use super::*;
use proptest::prelude::*;
use std::vec::Vec as StdVec;

#[derive(Clone, Debug)]
enum Kind {
    /// A read or write inside the client's view and data region (`block`
    /// is taken modulo what fits).
    Good { write: bool, block: u64, count: u32, slot: u64 },
    /// One of the ways a request can be wrong.
    Bad(u8),
    Flush,
    Barrier,
    /// A flush of completed writes, sent by the client itself.
    FlushNow,
}

#[derive(Clone, Debug)]
enum Action {
    /// `tag`: what the client writes there (the server must overwrite it).
    Push { client: usize, kind: Kind, tag: u32 },
    Run,
    /// The driver takes what it was sent, then completes up to `n` of its
    /// requests in flight, picked by `pick`, failing those `fail` says.
    Complete { n: usize, pick: u32, fail: u32 },
    Pop { client: usize },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => (any::<bool>(), any::<u64>(), 1u32..5, 0u64..16).prop_map(|(write, block, count, slot)| {
            Kind::Good { write, block, count, slot: slot.min(16 - count as u64) }
        }),
        2 => (0u8..7).prop_map(Kind::Bad),
        1 => Just(Kind::Flush),
        1 => Just(Kind::Barrier),
        1 => Just(Kind::FlushNow),
    ]
}

fn action(clients: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => (0..clients, kind(), prop_oneof![Just(0u32), 0u32..4, any::<u32>()]).prop_map(|(client, kind, tag)| Action::Push { client, kind, tag }),
        3 => Just(Action::Run),
        3 => (0usize..6, any::<u32>(), any::<u32>()).prop_map(|(n, pick, fail)| Action::Complete { n, pick, fail }),
        2 => (0..clients).prop_map(|client| Action::Pop { client }),
    ]
}

/// What a client sent, and what it must get back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Refused,
    Forwarded,
    Barrier,
    Flush,
    FlushNow,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    request: Request,
    expect: Expect,
    /// The status the driver completed it with, once it did.
    done: Option<Status>,
    answered: bool,
}

struct Model {
    /// Each client's view: its first block on the disk, and its blocks.
    views: StdVec<(u64, u64)>,
    /// Per client, in the order sent.
    sent: StdVec<StdVec<Sent>>,
    /// Requests at the driver, as (client, index into `sent`).
    in_flight: StdVec<(usize, usize)>,
    driver_capacity: usize,
}

impl Model {
    fn request(&self, c: usize, id: u32, kind: &Kind) -> (Request, Expect) {
        let blocks = self.views[c].1;
        let good = |write: bool, block, count, slot: u64| Request::new(id, if write { Op::Write } else { Op::Read }, block, count, slot * 4096);
        match *kind {
            // An empty view (an unusable partition) has no good request.
            Kind::Good { write, .. } if blocks == 0 => (good(write, 0, 1, 0), Expect::Refused),
            Kind::Good { write, block, count, slot } => {
                let count = count.min(blocks as u32);
                (good(write, block % (blocks - count as u64 + 1), count, slot), Expect::Forwarded)
            }
            Kind::Bad(how) => {
                let mut r = good(c % 2 == 0, 0, 1, 0);
                match how {
                    0 => r.block = blocks,
                    1 => (r.block, r.count) = (blocks.saturating_sub(1), 2),
                    2 => r.data_offset = 100,
                    3 => r.count = 0,
                    4 => r.count = 17,
                    5 => r.data_offset = DATA_SIZE,
                    _ => r.opcode = 99,
                }
                (r, Expect::Refused)
            }
            Kind::Flush => (Request::ordering(id, Op::Flush), Expect::Flush),
            Kind::Barrier => (Request::ordering(id, Op::Barrier), Expect::Barrier),
            Kind::FlushNow => (Request::ordering(id, Op::FlushCompleted), Expect::FlushNow),
        }
    }

    /// The driver got `r`: check it against what its client sent.
    fn arrived(&mut self, r: &Request) -> Result<(), TestCaseError> {
        let c = r.tag as usize;
        prop_assert!(c < self.sent.len(), "a tag no client has: {:?}", r);
        let i = r.id as usize;
        prop_assert!(i < self.sent[c].len(), "an id client {} never used: {:?}", c, r);
        let s = self.sent[c][i];
        prop_assert!(!self.in_flight.contains(&(c, i)) && s.done.is_none(), "sent to the driver twice: {:?}", r);
        match s.expect {
            Expect::Forwarded => {
                // Shifted into the disk, its buffer at a device address.
                let q = s.request;
                let expected = Request { block: q.block + self.views[c].0, data_offset: q.data_offset + data_paddr(c), tag: c as u32, ..q };
                prop_assert_eq!(*r, expected, "not the client's request, translated");
            }
            Expect::Flush | Expect::FlushNow => prop_assert_eq!(r.op(), Ok(Op::FlushCompleted)),
            Expect::Refused | Expect::Barrier => prop_assert!(false, "must not reach the driver: {:?}", s.request),
        }
        // A barrier or flush waits for every request before it, and holds
        // back every read and write after it, of the same client (not a
        // flush of completed writes, which goes at once); a flush goes to
        // the driver only once the client's earlier requests are done.
        let last_ordering = (0..i).rev().find(|&j| matches!(self.sent[c][j].expect, Expect::Barrier | Expect::Flush));
        let done_before = match s.expect {
            Expect::Flush => i,
            _ => last_ordering.unwrap_or(0),
        };
        for before in &self.sent[c][..done_before] {
            let finished = before.done.is_some() || matches!(before.expect, Expect::Refused | Expect::Barrier);
            prop_assert!(finished, "client {} request {} ({:?}) reached the driver before {:?} was done", c, i, s.expect, before.request);
        }
        self.in_flight.push((c, i));
        prop_assert!(self.in_flight.len() <= self.driver_capacity, "more at the driver than its rings can answer");
        Ok(())
    }

    /// Client `c` got `a`.
    fn answered(&mut self, c: usize, a: &Response) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.tag, 0, "answers reach the client untagged");
        let i = a.id as usize;
        prop_assert!(i < self.sent[c].len(), "client {} got an answer to a request it never sent: {:?}", c, a);
        let s = &mut self.sent[c][i];
        prop_assert!(!s.answered, "answered twice: {:?}", a);
        s.answered = true;
        let status = a.status().unwrap();
        match s.expect {
            Expect::Refused => prop_assert_eq!(status, Status::InvalidRequest),
            Expect::Barrier => prop_assert_eq!(status, Status::Ok),
            Expect::Forwarded | Expect::Flush | Expect::FlushNow => {
                prop_assert_eq!(Some(status), s.done, "not what the driver said for {:?}", s.request);
            }
        }
        if status == Status::Ok && s.expect == Expect::Forwarded {
            prop_assert_eq!(a.count, s.request.count);
        }
        Ok(())
    }
}

fn data_paddr(c: usize) -> u64 {
    0x5100_0000 + c as u64 * 0x10_0000
}

/// The driver takes every request it was sent.
fn take(h: &mut Harness, m: &mut Model) -> Result<(), TestCaseError> {
    for r in h.driver_requests() {
        m.arrived(&r)?;
    }
    Ok(())
}

fn complete(h: &mut Harness, m: &mut Model, n: usize, mut pick: u32, fail: u32) {
    for k in 0..n.min(m.in_flight.len()) {
        let (c, i) = m.in_flight.remove(pick as usize % m.in_flight.len());
        pick = pick.rotate_right(5);
        let status = if fail >> (k % 32) & 1 == 1 && fail % 3 == 0 { Status::IoError } else { Status::Ok };
        m.sent[c][i].done = Some(status);
        let r = m.sent[c][i].request;
        let count = if status == Status::Ok && r.op().is_ok_and(|op| op.moves_data()) { r.count } else { 0 };
        h.drivers[0].responses.try_push(Response::new(r.id, status, count).with_tag(c as u32)).unwrap();
    }
}

fn pop(h: &mut Harness, m: &mut Model, c: usize) -> Result<(), TestCaseError> {
    for a in h.responses(c) {
        m.answered(c, &a)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_is_checked_confined_ordered_and_answered_once(
        capacities in prop::collection::vec(prop_oneof![Just(2u32), Just(4), Just(8)], 1..4),
        partitions in prop::collection::vec(prop_oneof![3 => Just(0u32), 1 => Just(2), 1 => Just(3)], 3),
        driver_capacity in prop_oneof![Just(1u32), Just(2), Just(4), Just(16)],
        actions in prop::collection::vec(action(3), 0..120),
    ) {
        let clients: StdVec<Client> = capacities.iter().zip(&partitions).map(|(&capacity, &partition)| Client { partition, capacity }).collect();
        let mut h = harness(&clients, driver_capacity);
        h.run();
        if clients.iter().any(|c| c.partition != 0) {
            // The partition table: partition 2 is blocks 64..164, 3 is empty.
            let probe = h.driver_requests();
            let mut mbr = [0u8; 512];
            mbr::write(&mut mbr, &[(8, 64), (512, 800)]);
            h.probe.write_bytes(0, &mbr).unwrap();
            h.complete(&probe, Status::Ok);
            h.run();
        }
        let views: StdVec<(u64, u64)> = clients.iter().map(|c| match c.partition { 0 => (0, DISK_BLOCKS), 2 => (64, 100), _ => (0, 0) }).collect();
        for (c, view) in views.iter().enumerate() {
            prop_assert_eq!(h.clients[c].info.get().map(|i| i.capacity), Some(view.1), "client {}'s disk", c);
        }
        let mut m = Model { views, sent: vec![StdVec::new(); clients.len()], in_flight: StdVec::new(), driver_capacity: driver_capacity as usize };
        for action in actions {
            match action {
                Action::Push { client, kind, tag } => {
                    let c = client % clients.len();
                    let id = m.sent[c].len() as u32;
                    let (request, expect) = m.request(c, id, &kind);
                    let request = request.with_tag(tag);
                    // A flood: whatever the ring takes, answers owed or not.
                    if h.clients[c].requests.try_push(request).is_ok() {
                        m.sent[c].push(Sent { request, expect, done: None, answered: false });
                    }
                }
                Action::Run => {
                    h.run();
                }
                Action::Complete { n, pick, fail } => {
                    take(&mut h, &mut m)?;
                    complete(&mut h, &mut m, n, pick, fail);
                }
                Action::Pop { client } => pop(&mut h, &mut m, client % clients.len())?,
            }
        }
        // Drain: the driver completes everything and the clients take
        // their answers until nothing moves.
        for _ in 0..200 {
            h.run();
            take(&mut h, &mut m)?;
            complete(&mut h, &mut m, usize::MAX, 0, 0);
            for c in 0..clients.len() {
                pop(&mut h, &mut m, c)?;
            }
        }
        for (c, sent) in m.sent.iter().enumerate() {
            for s in sent {
                prop_assert!(s.answered, "client {} never got an answer to {:?}", c, s.request);
            }
        }
        let corrupt = h.events.iter().any(|e| matches!(e, Event::ClientCorrupt { .. }));
        prop_assert!(!corrupt, "a client was taken for corrupt");
    }
}
