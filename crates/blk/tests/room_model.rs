//! The room notification (a producer waiting for the consumer to pop) as a
//! small state machine of two sides, checked over every interleaving of
//! their steps: the producer never waits for room that is already there.
//!
//! Each step is one call into the ring. The producer pushes until the ring
//! is full, then prepares to wait for room, waits until notified and pushes
//! again. The consumer pops whenever the ring has entries (how it learns of
//! them is the other protocol, checked in `notify_model.rs`) and after each
//! pop asks whether the producer waits, notifying it if so.

use std::sync::atomic::{AtomicU32, Ordering};

use blk::ring::{ring_size, ROOM};
use blk::{Consumer, Producer, PushError, Shared};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Producer,
    Consumer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pr {
    Push,
    Prepare,
    Waiting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    /// Uses `prepare_to_wait_for_room`.
    Correct,
    /// Sets the flag and waits without looking at the head again.
    NoRecheck,
}

struct World<'a> {
    producer: Producer<'a, u64>,
    consumer: Consumer<'a, u64>,
    room: &'a AtomicU32,
    waiter: Waiter,
    to_push: u64,
    pushed: u64,
    state: Pr,
    /// The consumer popped and has yet to ask whether the producer waits.
    must_check: bool,
    received: u64,
    pending: bool,
}

impl World<'_> {
    fn runnable(&self) -> Vec<Side> {
        let mut sides = Vec::new();
        let done = self.pushed == self.to_push;
        if !done && (self.state != Pr::Waiting || self.pending) {
            sides.push(Side::Producer);
        }
        if self.must_check || self.consumer.len().unwrap() > 0 {
            sides.push(Side::Consumer);
        }
        sides
    }

    fn step(&mut self, side: Side) {
        match side {
            Side::Producer => match self.state {
                Pr::Push => match self.producer.try_push(self.pushed) {
                    Ok(()) => self.pushed += 1,
                    Err(PushError::Full) => self.state = Pr::Prepare,
                    Err(e) => panic!("{e}"),
                },
                Pr::Prepare => {
                    let wait = match self.waiter {
                        Waiter::Correct => self.producer.prepare_to_wait_for_room(1).unwrap(),
                        Waiter::NoRecheck => {
                            self.room.store(1, Ordering::SeqCst);
                            true
                        }
                    };
                    self.state = if wait { Pr::Waiting } else { Pr::Push };
                }
                Pr::Waiting => {
                    self.pending = false;
                    self.state = Pr::Push;
                }
            },
            Side::Consumer => {
                if self.must_check {
                    if self.consumer.producer_waits() {
                        self.pending = true;
                    }
                    self.must_check = false;
                } else {
                    let v = self.consumer.try_pop().unwrap().expect("runnable only with entries");
                    assert_eq!(v, self.received, "entries in order");
                    self.received += 1;
                    self.must_check = true;
                }
            }
        }
    }
}

/// Explore every interleaving of pushing `n` entries through a ring of
/// `capacity`; the first schedule, if any, that ends with entries unsent.
fn explore(n: u64, capacity: u32, waiter: Waiter) -> (usize, Option<Vec<Side>>) {
    fn replay<'a>(mem: Shared<'a>, n: u64, capacity: u32, waiter: Waiter, schedule: &[Side]) -> World<'a> {
        let mut world = World {
            producer: Producer::new(mem, capacity).unwrap(),
            consumer: Consumer::new(mem, capacity).unwrap(),
            room: mem.atomic_u32(ROOM).unwrap(),
            waiter,
            to_push: n,
            pushed: 0,
            state: Pr::Push,
            must_check: false,
            received: 0,
            pending: false,
        };
        for &side in schedule {
            world.step(side);
        }
        world
    }
    fn go(n: u64, capacity: u32, waiter: Waiter, schedule: &mut Vec<Side>, runs: &mut usize) -> Option<Vec<Side>> {
        let mut buf = vec![0u64; ring_size::<u64>(capacity).unwrap() / 8];
        let world = replay(Shared::from_words(&mut buf), n, capacity, waiter, schedule);
        let runnable = world.runnable();
        if runnable.is_empty() {
            *runs += 1;
            return (world.received != n).then(|| schedule.clone());
        }
        for side in runnable {
            schedule.push(side);
            let found = go(n, capacity, waiter, schedule, runs);
            schedule.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let mut runs = 0;
    let found = go(n, capacity, waiter, &mut Vec::new(), &mut runs);
    (runs, found)
}

#[test]
fn no_interleaving_leaves_the_producer_waiting_for_room_it_has() {
    for capacity in [1, 2] {
        for n in 2..=5 {
            let (runs, lost) = explore(n, capacity, Waiter::Correct);
            assert!(runs > 1);
            assert_eq!(lost, None, "{n} entries through a ring of {capacity}: a lost wake-up");
        }
    }
}

#[test]
fn the_model_catches_a_producer_that_does_not_look_again() {
    let (_, lost) = explore(2, 1, Waiter::NoRecheck);
    assert!(lost.is_some(), "a producer that waits without looking again can sleep forever");
}
