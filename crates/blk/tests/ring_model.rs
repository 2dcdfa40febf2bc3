//! The ring against a model (a bounded `VecDeque`), across index
//! wrap-around, and against hostile peers that write whatever they like into
//! the indices and slots.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use blk::ring::{ring_size, Record, HEAD, HEADER_SIZE, SIGNAL, TAIL};
use blk::{Consumer, Corrupt, Op, Producer, PushError, Request, Response, Shared, Status};
use proptest::prelude::*;

const CANARY: u64 = 0xdead_beef_cafe_f00d;
const REQ: usize = core::mem::size_of::<Request>();

/// A buffer with a ring of `capacity` requests at its start, both indices
/// at `start`, and canary words after it.
fn buffer(capacity: u32, start: u32) -> Vec<u64> {
    buffer_of::<Request>(capacity, start)
}

/// As [`buffer`], for records of type `T`.
fn buffer_of<T>(capacity: u32, start: u32) -> Vec<u64> {
    let ring_words = ring_size::<T>(capacity).unwrap() / 8;
    let mut buf = vec![0; ring_words + 8];
    buf[ring_words..].fill(CANARY);
    set_indices(Shared::from_words(&mut buf), start, start);
    buf
}

fn set_indices(mem: Shared<'_>, tail: u32, head: u32) {
    mem.atomic_u32(TAIL).unwrap().store(tail, Ordering::Relaxed);
    mem.atomic_u32(HEAD).unwrap().store(head, Ordering::Relaxed);
}

fn request(v: u64) -> Request {
    Request::new(v as u32, Op::ALL[(v % Op::ALL.len() as u64) as usize], v.rotate_left(17), (v >> 40) as u32, v ^ 0x5555)
}

/// Both ends of a ring of `capacity` records at the start of `mem`.
fn ends<T: Record>(mem: Shared<'_>, capacity: u32) -> (Producer<'_, T>, Consumer<'_, T>) {
    (Producer::new(mem, capacity).unwrap(), Consumer::new(mem, capacity).unwrap())
}

/// Push `records` (as many as fit) and return them as the model.
fn push_all<T: Record>(p: &mut Producer<'_, T>, records: impl Iterator<Item = T>) -> VecDeque<T> {
    let capacity = p.capacity() as usize;
    records.take(capacity).inspect(|&r| p.try_push(r).unwrap()).collect()
}

/// `percent` of the ring filled with answers that are not moved.
fn prefill(p: &mut Producer<'_, Response>, percent: usize) -> VecDeque<Response> {
    let n = p.capacity() as usize * percent / 100;
    push_all(p, (0..n).map(|i| Response::new(1000 + i as u32, Status::IoError, 0)))
}

/// The ring holds exactly `model`, in order, and its buffer's canary is
/// intact.
fn holds<T: Record + PartialEq + std::fmt::Debug>(c: &mut Consumer<'_, T>, model: VecDeque<T>) -> Result<(), TestCaseError> {
    for expected in model {
        prop_assert_eq!(c.try_pop(), Ok(Some(expected)));
    }
    prop_assert_eq!(c.try_pop(), Ok(None));
    Ok(())
}

fn canary_intact(buf: &[u64]) -> bool {
    buf[buf.len() - 8..].iter().all(|&w| w == CANARY)
}

/// Starting indices: zero, just below the wrap, or anywhere.
fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), (u32::MAX - 40)..=u32::MAX, any::<u32>()]
}

#[derive(Clone, Debug)]
enum Step {
    Push(u64),
    Pop,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    // Bursts of pushes and pops so the ring goes full and empty often.
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u64>().prop_map(Step::Push), 1..20),
            (1usize..20).prop_map(|n| vec![Step::Pop; n]),
        ],
        0..30,
    )
    .prop_map(|bursts| bursts.into_iter().flatten().collect())
}

proptest! {
    #[test]
    fn the_ring_behaves_like_a_bounded_fifo(cap_log in 0u32..5, start in start_index(), steps in steps()) {
        let cap = 1u32 << cap_log;
        let mut buf = buffer(cap, start);
        let mem = Shared::from_words(&mut buf);
        let mut p = Producer::<Request>::new(mem, cap).unwrap();
        let mut c = Consumer::<Request>::new(mem, cap).unwrap();
        let mut model = VecDeque::new();

        for step in steps {
            match step {
                Step::Push(v) => {
                    let got = p.try_push(request(v));
                    if model.len() == cap as usize {
                        prop_assert_eq!(got, Err(PushError::Full));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        model.push_back(request(v));
                    }
                }
                Step::Pop => prop_assert_eq!(c.try_pop(), Ok(model.pop_front())),
            }
            let len = model.len() as u32;
            prop_assert_eq!(p.len(), Ok(len));
            prop_assert_eq!(c.len(), Ok(len));
            prop_assert_eq!(p.free(), Ok(cap - len));
            prop_assert_eq!(c.free(), Ok(cap - len));
            prop_assert_eq!(p.is_full(), Ok(len == cap));
            prop_assert_eq!(c.is_empty(), Ok(len == 0));
        }
        prop_assert!(canary_intact(&buf));
    }
}

/// A step of batched use: entries become visible to the other end only
/// when published.
#[derive(Clone, Debug)]
enum Batched {
    /// `Producer::push`, published later.
    Push(u64),
    PublishPushes,
    /// One `Producer::batch` with these pushes.
    PushBatch(Vec<u64>),
    /// One `Consumer::batch`, popping at most this many.
    PopBatch(usize),
    /// One `Consumer::batch` truncated to this many, popped to its end.
    TruncatedPopBatch(u32),
}

fn batched_steps() -> impl Strategy<Value = Vec<Batched>> {
    prop::collection::vec(
        prop_oneof![
            any::<u64>().prop_map(Batched::Push),
            Just(Batched::PublishPushes),
            prop::collection::vec(any::<u64>(), 0..20).prop_map(Batched::PushBatch),
            (0usize..20).prop_map(Batched::PopBatch),
            (0u32..20).prop_map(Batched::TruncatedPopBatch),
        ],
        0..60,
    )
}

proptest! {
    /// Unpublished pushes and batches: the consumer gets exactly the
    /// published entries, in order; the producer gets room back only when a
    /// pop batch ends; indices in the ring move only at publication.
    #[test]
    fn batches_see_only_what_was_published(
        cap_log in 0u32..5, start in start_index(), steps in batched_steps()
    ) {
        let cap = 1u32 << cap_log;
        let mut buf = buffer(cap, start);
        let mem = Shared::from_words(&mut buf);
        let mut p = Producer::<Request>::new(mem, cap).unwrap();
        let mut c = Consumer::<Request>::new(mem, cap).unwrap();
        let (tail_word, head_word) = (mem.atomic_u32(TAIL).unwrap(), mem.atomic_u32(HEAD).unwrap());
        // Pushed and not published; published and not popped.
        let (mut pending, mut visible) = (VecDeque::new(), VecDeque::new());

        for step in steps {
            match step {
                Batched::Push(v) => {
                    let got = p.push(request(v));
                    if pending.len() + visible.len() == cap as usize {
                        prop_assert_eq!(got, Err(PushError::Full));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        pending.push_back(request(v));
                    }
                }
                Batched::PublishPushes => {
                    p.publish();
                    visible.extend(pending.drain(..));
                }
                Batched::PushBatch(vals) => {
                    let tail_before = tail_word.load(Ordering::Relaxed);
                    let mut batch = p.batch().unwrap();
                    prop_assert_eq!(batch.room() as usize, cap as usize - pending.len() - visible.len());
                    for v in vals {
                        let got = batch.push(request(v));
                        if pending.len() + visible.len() == cap as usize {
                            prop_assert_eq!(got, Err(PushError::Full));
                        } else {
                            prop_assert_eq!(got, Ok(()));
                            pending.push_back(request(v));
                        }
                        prop_assert_eq!(tail_word.load(Ordering::Relaxed), tail_before, "published before the end");
                    }
                    drop(batch);
                    visible.extend(pending.drain(..));
                }
                Batched::PopBatch(n) => {
                    let head_before = head_word.load(Ordering::Relaxed);
                    let mut batch = c.batch().unwrap();
                    prop_assert_eq!(batch.len() as usize, visible.len());
                    for _ in 0..n {
                        prop_assert_eq!(batch.next(), visible.pop_front());
                        prop_assert_eq!(head_word.load(Ordering::Relaxed), head_before, "handed back before the end");
                    }
                    drop(batch);
                }
                Batched::TruncatedPopBatch(n) => {
                    let mut batch = c.batch().unwrap();
                    batch.truncate(n);
                    let expected: Vec<_> = visible.drain(..visible.len().min(n as usize)).collect();
                    prop_assert_eq!(batch.len() as usize, expected.len());
                    prop_assert_eq!(batch.by_ref().collect::<Vec<_>>(), expected);
                    drop(batch);
                }
            }
            let published = tail_word.load(Ordering::Relaxed).wrapping_sub(head_word.load(Ordering::Relaxed));
            prop_assert_eq!(published as usize, visible.len());
            prop_assert_eq!(c.len(), Ok(visible.len() as u32));
        }
        prop_assert!(canary_intact(&buf));
    }

    /// Pop batches from a hostile producer: a batch covers at most the
    /// capacity past the published head, reads only the slots, and an
    /// impossible tail is reported (with its value) instead of followed.
    #[test]
    fn a_hostile_producer_cannot_push_a_pop_batch_out_of_bounds(
        cap_log in 0u32..5, start in start_index(), actions in hostile_producer()
    ) {
        let cap = 1u32 << cap_log;
        let mut buf = buffer(cap, start);
        let mem = Shared::from_words(&mut buf);
        let mut c = Consumer::<Request>::new(mem, cap).unwrap();
        let tail_word = mem.atomic_u32(TAIL).unwrap();
        let mut head = start;
        for action in actions {
            if hostile_write(mem, cap, head, &action) {
                continue;
            }
            match action {
                Hostile::TailFromHead(_) | Hostile::TailAnywhere(_) | Hostile::Slot(..) | Hostile::Signal(_) => {
                    unreachable!("done by hostile_write")
                }
                Hostile::Pop | Hostile::Drain => {
                    let tail = tail_word.load(Ordering::Relaxed);
                    match c.batch() {
                        Ok(mut batch) => {
                            prop_assert!(tail.wrapping_sub(head) <= cap);
                            prop_assert_eq!(batch.len(), tail.wrapping_sub(head));
                            let n = if matches!(action, Hostile::Pop) { 1 } else { cap as usize };
                            for _ in 0..n {
                                let slot = HEADER_SIZE + (head % cap) as usize * REQ;
                                let expected = (head != tail).then(|| mem.read::<Request>(slot).unwrap());
                                prop_assert_eq!(batch.next(), expected);
                                head = head.wrapping_add(expected.is_some() as u32);
                            }
                            if n > 1 {
                                prop_assert!(batch.next().is_none(), "a batch past its tail");
                            }
                        }
                        Err(e) => {
                            prop_assert!(tail.wrapping_sub(head) > cap);
                            prop_assert_eq!(e, Corrupt { head, tail, capacity: cap });
                        }
                    }
                    prop_assert_eq!(mem.atomic_u32(HEAD).unwrap().load(Ordering::Relaxed), head);
                }
            }
        }
        prop_assert!(canary_intact(&buf));
    }
}

/// What a hostile producer does between the consumer's pops.
#[derive(Clone, Debug)]
enum Hostile {
    /// Tail = the consumer's head plus this (may be far past the capacity,
    /// or behind the head).
    TailFromHead(i64),
    TailAnywhere(u32),
    /// Garbage in a slot.
    Slot(u32, [u8; REQ]),
    Signal(u32),
    Pop,
    /// Pop until the ring says empty or corrupt.
    Drain,
}

/// Do a hostile producer's write; false for the actions that are pops.
fn hostile_write(mem: Shared<'_>, cap: u32, head: u32, action: &Hostile) -> bool {
    let tail_word = mem.atomic_u32(TAIL).unwrap();
    match *action {
        Hostile::TailFromHead(d) => tail_word.store(head.wrapping_add(d as u32), Ordering::Relaxed),
        Hostile::TailAnywhere(t) => tail_word.store(t, Ordering::Relaxed),
        Hostile::Slot(i, bytes) => mem.write_bytes(HEADER_SIZE + (i % cap) as usize * REQ, &bytes).unwrap(),
        Hostile::Signal(s) => mem.atomic_u32(SIGNAL).unwrap().store(s, Ordering::Relaxed),
        Hostile::Pop | Hostile::Drain => return false,
    }
    true
}

fn hostile_producer() -> impl Strategy<Value = Vec<Hostile>> {
    prop::collection::vec(
        prop_oneof![
            (-3i64..40).prop_map(Hostile::TailFromHead),
            any::<u32>().prop_map(Hostile::TailAnywhere),
            (any::<u32>(), prop::array::uniform32(any::<u8>())).prop_map(|(i, b)| Hostile::Slot(i, b)),
            any::<u32>().prop_map(Hostile::Signal),
            Just(Hostile::Pop),
            Just(Hostile::Drain),
        ],
        0..60,
    )
}

proptest! {
    /// The consumer never reads outside its slots, never pops more than the
    /// capacity per tail the producer publishes, and reports exactly the
    /// impossible index pairs as corrupt.
    #[test]
    fn a_hostile_producer_gets_corrupt_not_out_of_bounds(
        cap_log in 0u32..5, start in start_index(), actions in hostile_producer()
    ) {
        let cap = 1u32 << cap_log;
        let mut buf = buffer(cap, start);
        let mem = Shared::from_words(&mut buf);
        let mut c = Consumer::<Request>::new(mem, cap).unwrap();
        let mut head = start; // what the consumer must believe
        let tail_word = mem.atomic_u32(TAIL).unwrap();

        let pop = |c: &mut Consumer<'_, Request>, head: &mut u32| {
            let tail = tail_word.load(Ordering::Relaxed);
            let expected = match tail.wrapping_sub(*head) {
                n if n > cap => Err(Corrupt { head: *head, tail, capacity: cap }),
                0 => Ok(None),
                _ => {
                    let slot = HEADER_SIZE + (*head % cap) as usize * REQ;
                    let entry = mem.read::<Request>(slot).unwrap();
                    *head = head.wrapping_add(1);
                    Ok(Some(entry))
                }
            };
            let got = c.try_pop();
            assert_eq!(got, expected);
            got
        };

        for action in actions {
            if hostile_write(mem, cap, head, &action) {
                continue;
            }
            match action {
                Hostile::TailFromHead(_) | Hostile::TailAnywhere(_) | Hostile::Slot(..) | Hostile::Signal(_) => {
                    unreachable!("done by hostile_write")
                }
                Hostile::Pop => {
                    let _ = pop(&mut c, &mut head);
                }
                Hostile::Drain => {
                    let mut popped = 0;
                    while let Ok(Some(_)) = pop(&mut c, &mut head) {
                        popped += 1;
                        prop_assert!(popped <= cap, "drained more than the capacity");
                    }
                }
            }
            // The consumer publishes its own head, whatever the producer did.
            prop_assert_eq!(mem.atomic_u32(HEAD).unwrap().load(Ordering::Relaxed), head);
        }
        prop_assert!(canary_intact(&buf));
    }

    /// A producer facing a consumer that writes any head value writes only
    /// its slots and its tail, and never more than the capacity ahead of
    /// the head it was shown.
    #[test]
    fn a_hostile_consumer_cannot_make_the_producer_write_outside_its_slots(
        cap_log in 0u32..5,
        start in start_index(),
        heads in prop::collection::vec(prop_oneof![(-3i64..40).prop_map(Ok), any::<u32>().prop_map(Err)], 0..40),
        pushes_between in 0usize..8,
    ) {
        let cap = 1u32 << cap_log;
        let mut buf = buffer(cap, start);
        let mem = Shared::from_words(&mut buf);
        let mut p = Producer::<Request>::new(mem, cap).unwrap();
        let head_word = mem.atomic_u32(HEAD).unwrap();
        let mut tail = start;
        for h in heads {
            // A head relative to our tail (sometimes sensible), or anything.
            let head = match h { Ok(d) => tail.wrapping_sub(d as u32), Err(a) => a };
            head_word.store(head, Ordering::Relaxed);
            for i in 0..pushes_between {
                let used = tail.wrapping_sub(head);
                let got = p.try_push(request(i as u64));
                if used > cap {
                    prop_assert_eq!(got, Err(PushError::Corrupt(Corrupt { head, tail, capacity: cap })));
                } else if used == cap {
                    prop_assert_eq!(got, Err(PushError::Full));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    tail = tail.wrapping_add(1);
                }
                prop_assert_eq!(mem.atomic_u32(TAIL).unwrap().load(Ordering::Relaxed), tail);
            }
        }
        // Header words past the room word stay zero; canaries stay.
        let mut reserved = [0u8; HEADER_SIZE - 16];
        mem.read_bytes(16, &mut reserved).unwrap();
        prop_assert!(reserved.iter().all(|&b| b == 0));
        prop_assert!(canary_intact(&buf));
    }
}

/// Two threads, one per end, passing 200,000 entries through a small ring
/// with the notification protocol (notifications are a flag plus
/// park/unpark). Entries must arrive in order and the consumer must never
/// sleep through an entry: a lost wake-up hangs the test.
#[test]
fn two_threads_pass_every_entry_in_order() {
    use std::sync::atomic::AtomicBool;
    use std::thread;

    struct SendEnd<T>(T);
    // SAFETY: each end moves to exactly one thread; the two ends share
    // memory only through the ring's atomics and slots, whose accesses the
    // ring orders (release/acquire), so there is no data race.
    #[allow(unsafe_code)]
    unsafe impl<T> Send for SendEnd<T> {}

    const N: u64 = 200_000;
    let cap = 8;
    let mut buf = vec![0u64; ring_size::<u64>(cap).unwrap() / 8];
    let mem = Shared::from_words(&mut buf);
    let producer = SendEnd(Producer::<u64>::new(mem, cap).unwrap());
    let consumer = SendEnd(Consumer::<u64>::new(mem, cap).unwrap());
    let notified = AtomicBool::new(false);
    let (notified, notifications) = (&notified, &std::sync::atomic::AtomicU64::new(0));

    thread::scope(|s| {
        let consumer_thread = s.spawn(move || {
            let mut c = consumer;
            let mut next = 0;
            while next < N {
                while let Some(v) = c.0.try_pop().unwrap() {
                    assert_eq!(v, next);
                    next += 1;
                }
                if next < N && c.0.prepare_to_wait().unwrap() {
                    while !notified.swap(false, Ordering::Acquire) {
                        thread::park();
                    }
                }
            }
        });
        s.spawn(move || {
            let mut p = producer;
            let mut v = 0;
            while v < N {
                match p.0.try_push(v) {
                    Ok(()) => v += 1,
                    Err(PushError::Full) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
                if v % 3 == 0 || v == N {
                    if p.0.needs_notify() {
                        notifications.fetch_add(1, Ordering::Relaxed);
                        notified.store(true, Ordering::Release);
                        consumer_thread.thread().unpark();
                    }
                }
            }
        });
    });
    assert!(notifications.load(Ordering::Relaxed) <= N);
}

proptest! {
    /// Moving from one ring into another (a forwarding server's hot paths):
    /// `move_into` takes as many entries as both batches allow up to the
    /// first it is told to stop at, pushes the mapped ones in order and
    /// passes over the rest; `move_while` stops at
    /// the first entry that does not belong, at `max`, or when the
    /// destination is full; `pass_while` passes over a run. Whatever is not
    /// taken stays for the next batch, and both ends publish at the end.
    #[test]
    fn moving_between_rings_matches_a_model(
        (src_cap_log, dst_cap_log) in (0u32..6, 0u32..6),
        (src_start, dst_start) in (start_index(), start_index()),
        src_runs in prop::collection::vec((0u64..16, 1usize..6), 0..16),
        dst_percent_used in 0usize..=100,
        max in 0u32..40,
        how in 0u8..3,
    ) {
        let (src_cap, dst_cap) = (1u32 << src_cap_log, 1u32 << dst_cap_log);
        let (mut src_buf, mut dst_buf) = (buffer(src_cap, src_start), buffer(dst_cap, dst_start));
        let (src_mem, dst_mem) = (Shared::from_words(&mut src_buf), Shared::from_words(&mut dst_buf));
        let (mut src_p, mut src_c) = ends::<Request>(src_mem, src_cap);
        let (mut dst_p, mut dst_c) = ends::<Request>(dst_mem, dst_cap);
        let mut src_model: VecDeque<Request> = VecDeque::new();
        // Runs of equal tags (the server moves a client's run of answers).
        let tags = src_runs.iter().flat_map(|&(tag, n)| std::iter::repeat_n(tag, n));
        for (i, v) in tags.enumerate().take(src_cap as usize) {
            let r = request(i as u64).with_tag(v as u32);
            src_p.try_push(r).unwrap();
            src_model.push_back(r);
        }
        let mut dst_model: VecDeque<Request> = VecDeque::new();
        for i in 0..dst_cap as usize * dst_percent_used / 100 {
            let r = request(1000 + i as u64);
            dst_p.try_push(r).unwrap();
            dst_model.push_back(r);
        }
        let room = dst_cap as usize - dst_model.len();
        let mapped = |r: Request| r.with_tag(r.tag + 100);

        let mut batch = src_c.batch().unwrap();
        let mut out = dst_p.batch().unwrap();
        match how {
            0 => {
                // Keep the even tags, pass over the odd ones, stop at 15.
                let n = batch.move_into(&mut out, |r| match r.tag {
                    15 => blk::Step::Stop,
                    t if t % 2 == 0 => blk::Step::Push(mapped(r)),
                    _ => blk::Step::Pass,
                });
                let before_stop = src_model.iter().take_while(|r| r.tag != 15).count();
                let expect = src_model.len().min(room).min(before_stop);
                prop_assert_eq!(n as usize, expect);
                for r in src_model.drain(..expect) {
                    if r.tag % 2 == 0 {
                        dst_model.push_back(mapped(r));
                    }
                }
            }
            1 => {
                let tag = batch.peek().map(|r| r.tag);
                prop_assert_eq!(tag, src_model.front().map(|r| r.tag));
                let belongs = |r: &Request| Some(r.tag) == tag;
                let n = batch.move_while(&mut out, max, belongs, mapped);
                let run = src_model.iter().take_while(|r| Some(r.tag) == tag).count();
                let expect = run.min(room).min(max as usize);
                prop_assert_eq!(n as usize, expect);
                dst_model.extend(src_model.drain(..expect).map(mapped));
            }
            _ => {
                let tag = batch.peek().map(|r| r.tag);
                batch.pass_while(|r| Some(r.tag) == tag);
                let run = src_model.iter().take_while(|r| Some(r.tag) == tag).count();
                src_model.drain(..run);
            }
        }
        // Nothing is published until the batches end.
        prop_assert_eq!(dst_c.len(), Ok((dst_cap as usize - room) as u32));
        prop_assert_eq!(batch.peek(), src_model.front().copied());
        drop((batch, out));
        prop_assert_eq!(src_c.len(), Ok(src_model.len() as u32));
        prop_assert_eq!(dst_c.len(), Ok(dst_model.len() as u32));
        holds(&mut dst_c, dst_model)?;
        holds(&mut src_c, src_model)?;
        prop_assert!(canary_intact(&src_buf) && canary_intact(&dst_buf));
    }
}

proptest! {
    /// `move_while` with 16-byte records (the server's answers, copied in
    /// one load and store pair each) between rings of different sizes:
    /// the run of one tag moves, up to `max` and the room, in order.
    #[test]
    fn moving_answers_between_rings_matches_a_model(
        (src_cap_log, dst_cap_log) in (0u32..6, 0u32..6),
        (src_start, dst_start) in (start_index(), start_index()),
        run in 0usize..40,
        rest in prop::collection::vec(0u32..3, 0..8),
        dst_percent_used in 0usize..=100,
        max in 0u32..40,
    ) {
        let (src_cap, dst_cap) = (1u32 << src_cap_log, 1u32 << dst_cap_log);
        let (mut src_buf, mut dst_buf) = (buffer_of::<Response>(src_cap, src_start), buffer_of::<Response>(dst_cap, dst_start));
        let (mut src_p, mut src_c) = ends::<Response>(Shared::from_words(&mut src_buf), src_cap);
        let (mut dst_p, mut dst_c) = ends::<Response>(Shared::from_words(&mut dst_buf), dst_cap);
        // A run of tag 7, then other tags.
        let tags = std::iter::repeat_n(7, run).chain(rest.iter().copied());
        let mut src_model = push_all(&mut src_p, tags.enumerate().map(|(i, tag)| Response::new(i as u32, Status::Ok, i as u32 * 3).with_tag(tag)));
        let mut dst_model = prefill(&mut dst_p, dst_percent_used);
        let room = dst_cap as usize - dst_model.len();
        let mut batch = src_c.batch().unwrap();
        let mut out = dst_p.batch().unwrap();
        let n = batch.move_while(&mut out, max, |r| r.tag == 7, |r| r.with_tag(0));
        let expect = src_model.iter().take_while(|r| r.tag == 7).count().min(room).min(max as usize);
        prop_assert_eq!(n as usize, expect);
        dst_model.extend(src_model.drain(..expect).map(|r| r.with_tag(0)));
        prop_assert_eq!(batch.peek(), src_model.front().copied());
        drop((batch, out));
        holds(&mut dst_c, dst_model)?;
        holds(&mut src_c, src_model)?;
        prop_assert!(canary_intact(&src_buf) && canary_intact(&dst_buf));
    }
}

proptest! {
    /// `move_into` between rings of different record types (requests in,
    /// 16-byte answers out, as a server answering requests itself would):
    /// each record steps by its own size.
    #[test]
    fn moving_requests_into_answers_matches_a_model(
        (src_cap_log, dst_cap_log) in (0u32..6, 0u32..6),
        (src_start, dst_start) in (start_index(), start_index()),
        tags in prop::collection::vec(0u32..16, 0..40),
        dst_percent_used in 0usize..=100,
    ) {
        let (src_cap, dst_cap) = (1u32 << src_cap_log, 1u32 << dst_cap_log);
        let (mut src_buf, mut dst_buf) = (buffer(src_cap, src_start), buffer_of::<Response>(dst_cap, dst_start));
        let (mut src_p, mut src_c) = ends::<Request>(Shared::from_words(&mut src_buf), src_cap);
        let (mut dst_p, mut dst_c) = ends::<Response>(Shared::from_words(&mut dst_buf), dst_cap);
        let mut src_model = push_all(&mut src_p, tags.iter().enumerate().map(|(i, &tag)| request(i as u64).with_tag(tag)));
        let mut dst_model = prefill(&mut dst_p, dst_percent_used);
        let room = dst_cap as usize - dst_model.len();
        let answer = |r: &Request| Response::new(r.id, Status::InvalidRequest, r.count).with_tag(r.tag);
        let mut batch = src_c.batch().unwrap();
        let mut out = dst_p.batch().unwrap();
        // Answer tags below 8, pass over the others, stop at 15.
        let n = batch.move_into(&mut out, |r| match r.tag {
            15 => blk::Step::Stop,
            t if t < 8 => blk::Step::Push(answer(&r)),
            _ => blk::Step::Pass,
        });
        let expect = src_model.iter().take_while(|r| r.tag != 15).count().min(room);
        prop_assert_eq!(n as usize, expect);
        dst_model.extend(src_model.drain(..expect).filter(|r| r.tag < 8).map(|r| answer(&r)));
        drop((batch, out));
        holds(&mut dst_c, dst_model)?;
        holds(&mut src_c, src_model)?;
        prop_assert!(canary_intact(&src_buf) && canary_intact(&dst_buf));
    }
}
