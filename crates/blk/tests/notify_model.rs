//! The notification protocol as a small state machine of two sides, checked
//! over every interleaving of their steps (and over random ones for longer
//! runs): no entry is ever left in the ring while the consumer waits for a
//! notification that will not come.
//!
//! Each step is one call into the ring: a push, a `needs_notify`, a pop, a
//! `prepare_to_wait`. Inside these calls the accesses that matter to the
//! protocol (tail store, flag swap; flag store, tail load) are single
//! sequentially consistent atomics, so interleaving whole calls covers every
//! order the hardware can produce for them.
//!
//! The producer runs a program of pushes and notify checks; the consumer
//! drains, prepares to wait, waits until notified, and drains again. A
//! notification is a pending bit, as in the kernel.

use std::sync::atomic::{AtomicU32, Ordering};

use blk::ring::{ring_size, HEAD, SIGNAL, TAIL};
use blk::{Consumer, Producer, Shared};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Producer,
    Consumer,
}

/// A producer step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P {
    Push,
    /// `needs_notify`, and notify if it says so.
    Notify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    /// Uses `prepare_to_wait`.
    Correct,
    /// Sets the flag and waits without looking at the ring again: the bug
    /// the protocol exists to avoid. The model must catch it.
    NoRecheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum C {
    Drain,
    Prepare,
    Waiting,
}

struct World<'a> {
    producer: Producer<'a, u64>,
    consumer: Consumer<'a, u64>,
    signal: &'a AtomicU32,
    program: &'a [P],
    pc: usize,
    pushed: u64,
    state: C,
    waiter: Waiter,
    received: u64,
    pending: bool,
    notifications: u32,
}

/// What a run ended in.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    runnable: Vec<Side>,
    pushed: u64,
    received: u64,
    notifications: u32,
}

impl World<'_> {
    fn runnable(&self) -> Vec<Side> {
        let mut sides = Vec::new();
        if self.pc < self.program.len() {
            sides.push(Side::Producer);
        }
        if self.state != C::Waiting || self.pending {
            sides.push(Side::Consumer);
        }
        sides
    }

    fn step(&mut self, side: Side) {
        match side {
            Side::Producer => {
                match self.program[self.pc] {
                    P::Push => {
                        self.producer.try_push(self.pushed).expect("the model's ring never fills");
                        self.pushed += 1;
                    }
                    P::Notify => {
                        if self.producer.needs_notify() {
                            self.pending = true;
                            self.notifications += 1;
                        }
                    }
                }
                self.pc += 1;
            }
            Side::Consumer => match self.state {
                C::Drain => match self.consumer.try_pop().unwrap() {
                    Some(v) => {
                        assert_eq!(v, self.received, "entries in order");
                        self.received += 1;
                    }
                    None => self.state = C::Prepare,
                },
                C::Prepare => {
                    let wait = match self.waiter {
                        Waiter::Correct => self.consumer.prepare_to_wait().unwrap(),
                        Waiter::NoRecheck => {
                            self.signal.store(1, Ordering::SeqCst);
                            true
                        }
                    };
                    self.state = if wait { C::Waiting } else { C::Drain };
                }
                C::Waiting => {
                    assert!(self.pending, "only a notification wakes the consumer");
                    self.pending = false;
                    self.state = C::Drain;
                }
            },
        }
    }

    fn outcome(&self) -> Outcome {
        Outcome {
            runnable: self.runnable(),
            pushed: self.pushed,
            received: self.received,
            notifications: self.notifications,
        }
    }
}

/// Run `schedule` from a fresh ring whose indices start at `start`; a
/// scheduled side that cannot run is skipped. Then, if `finish`, run
/// whatever can run (producer first) until nothing can.
fn run(program: &[P], waiter: Waiter, start: u32, schedule: &[Side], finish: bool) -> Outcome {
    let capacity = program.iter().filter(|&&s| s == P::Push).count().next_power_of_two() as u32;
    let mut buf = vec![0u64; ring_size::<u64>(capacity).unwrap() / 8];
    let mem = Shared::from_words(&mut buf);
    mem.atomic_u32(TAIL).unwrap().store(start, Ordering::Relaxed);
    mem.atomic_u32(HEAD).unwrap().store(start, Ordering::Relaxed);
    let mut world = World {
        producer: Producer::new(mem, capacity).unwrap(),
        consumer: Consumer::new(mem, capacity).unwrap(),
        signal: mem.atomic_u32(SIGNAL).unwrap(),
        program,
        pc: 0,
        pushed: 0,
        state: C::Drain,
        waiter,
        received: 0,
        pending: false,
        notifications: 0,
    };
    for &side in schedule {
        if world.runnable().contains(&side) {
            world.step(side);
        }
    }
    while finish {
        match world.runnable().first() {
            Some(&side) => world.step(side),
            None => break,
        }
    }
    world.outcome()
}

/// Explore every interleaving; return how many complete runs there are and
/// the first schedule, if any, that ends with the consumer waiting while
/// entries sit in the ring.
fn explore(program: &[P], waiter: Waiter, start: u32) -> (usize, Option<Vec<Side>>) {
    fn go(program: &[P], waiter: Waiter, start: u32, schedule: &mut Vec<Side>, runs: &mut usize) -> Option<Vec<Side>> {
        let outcome = run(program, waiter, start, schedule, false);
        if outcome.runnable.is_empty() {
            *runs += 1;
            return (outcome.received != outcome.pushed).then(|| schedule.clone());
        }
        for side in outcome.runnable {
            schedule.push(side);
            let found = go(program, waiter, start, schedule, runs);
            schedule.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let mut runs = 0;
    let found = go(program, waiter, start, &mut Vec::new(), &mut runs);
    (runs, found)
}

/// Every producer program of `n` pushes that checks for a notification
/// after its last push, batching the earlier checks in every possible way.
fn programs(n: usize) -> Vec<Vec<P>> {
    (0..1u32 << (n - 1))
        .map(|batching| {
            let mut program = Vec::new();
            for i in 0..n {
                program.push(P::Push);
                if i == n - 1 || batching & (1 << i) != 0 {
                    program.push(P::Notify);
                }
            }
            program
        })
        .collect()
}

#[test]
fn no_interleaving_loses_a_wake_up() {
    let mut total = 0;
    for n in 1..=4 {
        for program in programs(n) {
            for start in [0, u32::MAX - 1] {
                let (runs, lost) = explore(&program, Waiter::Correct, start);
                assert!(runs > 1, "{program:?} explored");
                total += runs;
                assert_eq!(lost, None, "{program:?} from {start} loses a wake-up");
            }
        }
    }
    eprintln!("{total} complete interleavings explored");
}

#[test]
fn the_model_catches_a_consumer_that_does_not_look_again() {
    let (_, lost) = explore(&[P::Push, P::Notify], Waiter::NoRecheck, 0);
    let schedule = lost.expect("a lost wake-up");
    let outcome = run(&[P::Push, P::Notify], Waiter::NoRecheck, 0, &schedule, false);
    assert_eq!((outcome.pushed, outcome.received), (1, 0));
}

#[test]
fn a_consumer_that_keeps_up_is_never_notified() {
    // The consumer drains every push before the producer checks: it never
    // asked, so no notification is sent and none is needed.
    let program = [P::Push, P::Notify, P::Push, P::Notify];
    use Side::{Consumer as Co, Producer as Pr};
    let outcome = run(&program, Waiter::Correct, 0, &[Pr, Co, Pr, Pr, Co, Pr], false);
    assert_eq!((outcome.pushed, outcome.received, outcome.notifications), (2, 2, 0));
    // Still draining (it has not looked at the empty ring yet), not waiting.
    assert_eq!(outcome.runnable, vec![Side::Consumer]);
}

fn program() -> impl Strategy<Value = Vec<P>> {
    prop::collection::vec(any::<bool>(), 1..40).prop_map(|checks| {
        let last = checks.len() - 1;
        checks
            .into_iter()
            .enumerate()
            .flat_map(|(i, check)| if check || i == last { vec![P::Push, P::Notify] } else { vec![P::Push] })
            .collect()
    })
}

proptest! {
    #[test]
    fn random_long_interleavings_lose_no_wake_up(
        program in program(),
        start in prop_oneof![Just(0u32), (u32::MAX - 50)..=u32::MAX],
        schedule in prop::collection::vec(prop_oneof![Just(Side::Producer), Just(Side::Consumer)], 0..300),
    ) {
        let outcome = run(&program, Waiter::Correct, start, &schedule, true);
        prop_assert!(outcome.runnable.is_empty());
        prop_assert_eq!(outcome.received, outcome.pushed);
    }
}
