//! The setup dialogue: filters that read their disk before the clients see
//! it and offer a window of it.

use super::*;
use blk::filter::{SetupCall, SetupStep, SETUP_CLIENT, SETUP_HOOK};
use std::collections::HashMap;

/// A filter with pre and post hooks, the setup hook and a bounce buffer.
const SETS_UP: Spec = Spec { hooks: 3 | SETUP_HOOK, ops: 0xff, rights: 0, bounce: true, pre_ops: 0, max_blocks: 0 };

/// The driver's side of one read: fill each request's buffer with its
/// block number in every byte, then complete them.
fn serve_reads(h: &mut ChainHarness) -> StdVec<Request> {
    let fwd = h.driver_requests();
    for r in &fwd {
        if r.op() == Ok(Op::Read) {
            let mem = h.memory.at(r.data_offset, u64::from(r.count) * 4096).expect("the device address is memory a test knows");
            mem.write_bytes(0, &vec![r.block as u8; r.count as usize * 4096]).unwrap();
        }
    }
    h.complete(&fwd, Status::Ok);
    h.run();
    fwd
}

fn client_blocks(h: &mut ChainHarness) -> Option<u64> {
    h.clients[0].info.get().map(|i| i.capacity)
}

/// The filter at position 1 reads block 2 below it into its bounce buffer
/// at 4096, checks what arrived, and offers blocks 10..110.
fn reads_then_offers() -> SetupFn {
    Box::new(|f, call: SetupCall, bounce| {
        assert_eq!(f, 1);
        match call.round {
            0 => {
                assert_eq!((call.below, call.last), (DISK_BLOCKS, None));
                SetupStep::Read { block: 2, count: 1, offset: 4096 }
            }
            _ => {
                assert_eq!(call.last, Some(Done { status: Status::Ok, count: 1 }));
                let mut b = [0u8; 4096];
                bounce.read_bytes(4096, &mut b).unwrap();
                assert!(b.iter().all(|&x| x == 2), "block 2 of the disk below landed in the bounce buffer");
                SetupStep::Ready { first: 10, blocks: 100 }
            }
        }
    })
}

#[test]
fn a_filter_reads_its_disk_before_the_clients_see_it_and_offers_a_window() {
    let mut h = chain_harness_with_setup(&[8], &[Spec::PASS, SETS_UP, Spec::PASS], 8, always(Verdict::Continue), Some(reads_then_offers()));
    assert_eq!(client_blocks(&mut h), None, "the clients wait for the setup");
    let fwd = serve_reads(&mut h);
    assert_eq!(fwd.len(), 1);
    assert_eq!((fwd[0].block, fwd[0].count, fwd[0].data_offset), (2, 1, bounce_paddr(1) + 4096));
    let t = h.take_calls();
    let seen: StdVec<_> = t.iter().flat_map(|c| c.entries.iter().map(move |(io, _)| (c.filter, io.hook, io.client, io.block))).collect();
    assert_eq!(seen, [(2, Hook::Pre, SETUP_CLIENT, 2), (2, Hook::Post, SETUP_CLIENT, 2)], "only the filter below sees the setup read");
    assert_eq!(h.up.setups.len(), 2);
    assert!(h.events.contains(&Event::FilterReady { filter: 1, first: 10, blocks: 100 }), "{:?}", h.events);
    assert_eq!(client_blocks(&mut h), Some(100), "the clients see the window");

    // A client's block 5 is block 5 above the filter, 15 below it.
    h.push(0, Request::new(1, Op::Read, 5, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd[0].block, 15);
    assert_eq!(trace(&mut h), [(0, Hook::Pre, 5), (1, Hook::Pre, 5), (2, Hook::Pre, 15)]);
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(trace(&mut h), [(2, Hook::Post, 15), (1, Hook::Post, 5), (0, Hook::Post, 5)]);
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 1)]);

    // Nothing past the window.
    h.push(0, Request::new(2, Op::Read, 99, 2, 0));
    h.run();
    assert_eq!(h.driver_requests(), []);
    assert_eq!(h.responses(0), [Response::new(2, Status::InvalidRequest, 0)]);
}

#[test]
fn stacked_windows_add_up_and_the_upper_filter_reads_through_the_lower() {
    let setup: SetupFn = Box::new(|f, call: SetupCall, _| match (f, call.round) {
        (1, _) => SetupStep::Ready { first: 8, blocks: call.below - 8 },
        (0, 0) => {
            assert_eq!(call.below, DISK_BLOCKS - 8, "the upper filter sees the lower one's window");
            SetupStep::Read { block: 0, count: 2, offset: 0 }
        }
        (0, _) => SetupStep::Ready { first: 1, blocks: 50 },
        _ => unreachable!(),
    });
    let mut h = chain_harness_with_setup(&[8], &[SETS_UP, SETS_UP], 8, always(Verdict::Continue), Some(setup));
    let fwd = serve_reads(&mut h);
    assert_eq!((fwd[0].block, fwd[0].count), (8, 2), "the upper filter's block 0 is the device's block 8");
    assert_eq!(trace(&mut h), [(1, Hook::Pre, 0), (1, Hook::Post, 0)], "the lower filter saw it in its own view");
    assert_eq!(client_blocks(&mut h), Some(50));
    h.push(0, Request::new(1, Op::Write, 0, 1, 0));
    h.run();
    assert_eq!(h.driver_requests()[0].block, 9);
    assert_eq!(trace(&mut h), [(0, Hook::Pre, 0), (1, Hook::Pre, 1)]);
}

/// The clients of a disk whose setup failed see no blocks, and every
/// request they send fails.
fn assert_failed(h: &mut ChainHarness) {
    assert_eq!(client_blocks(h), Some(0));
    h.push(0, Request::new(1, Op::Read, 0, 1, 0));
    h.push(0, Request::ordering(2, Op::Flush));
    h.run();
    assert_eq!(h.driver_requests(), [], "nothing reaches the device");
    assert_eq!(h.responses(0), [Response::new(1, Status::IoError, 0), Response::new(2, Status::IoError, 0)]);
}

#[test]
fn a_filter_that_refuses_its_disk_fails_every_request_of_it() {
    let setup: SetupFn = Box::new(|_, _, _| SetupStep::Fail(Status::IoError));
    let mut h = chain_harness_with_setup(&[8], &[Spec::PASS, SETS_UP], 8, always(Verdict::Continue), Some(setup));
    assert!(h.events.contains(&Event::FilterSetupFailed { filter: 1, why: SetupFailure::Refused(Status::IoError) }), "{:?}", h.events);
    assert_failed(&mut h);
}

#[test]
fn a_setup_step_outside_the_disk_or_the_bounce_buffer_fails_the_disk() {
    for (step, why) in [
        (SetupStep::Read { block: DISK_BLOCKS, count: 1, offset: 0 }, filter::SetupError::OutsideDisk),
        (SetupStep::Ready { first: 1, blocks: DISK_BLOCKS }, filter::SetupError::OutsideDisk),
        (SetupStep::Read { block: 0, count: 1, offset: BOUNCE_SIZE }, filter::SetupError::BadBuffer),
        (SetupStep::Write { block: 0, count: 0, offset: 0 }, filter::SetupError::BadBuffer),
        (SetupStep::Read { block: 0, count: 1, offset: 100 }, filter::SetupError::BadBuffer),
    ] {
        let mut h = chain_harness_with_setup(&[8], &[SETS_UP], 8, always(Verdict::Continue), Some(Box::new(move |_, _, _| step)));
        assert!(h.events.contains(&Event::FilterSetupFailed { filter: 0, why: SetupFailure::BadStep(why) }), "{step:?}: {:?}", h.events);
        assert_failed(&mut h);
    }
}

#[test]
fn a_filter_that_faults_in_its_setup_fails_its_disk() {
    let mut h = chain_harness_with_setup(&[8], &[SETS_UP], 8, always(Verdict::Continue), None);
    assert_eq!(client_blocks(&mut h), Some(DISK_BLOCKS), "a filter whose dialogue says ready at once offers the whole disk");
    let setup: SetupFn = Box::new(|_, _, _| SetupStep::Read { block: 0, count: 1, offset: 0 });
    let mut h = chain_harness_with_setup(&[8], &[SETS_UP], 8, always(Verdict::Continue), Some(setup));
    // Its first step's read is under way; the filter stops before the next.
    h.up.stop.push(0);
    serve_reads(&mut h);
    assert!(h.events.contains(&Event::FilterSetupFailed { filter: 0, why: SetupFailure::Call(CallError::Stopped) }), "{:?}", h.events);
    // Its fault reaches the server's handler: declared on_fault="restart",
    // it is still not restarted (its disk failed for good), and says so.
    let child = h.server.filters[0].config.child as usize;
    let mut said = StdVec::new();
    assert_eq!(h.server.filter_faulted(child, &mut |e| said.push(e)), None);
    assert_eq!(said, [Event::FilterStopped { filter: 0, failed: 0, restart: false }]);
    assert_failed(&mut h);
}

#[test]
fn a_failed_setup_read_is_reported_to_the_filter() {
    let setup: SetupFn = Box::new(|_, call: SetupCall, _| match call.round {
        0 => SetupStep::Write { block: 3, count: 1, offset: 0 },
        _ => {
            assert_eq!(call.last, Some(Done { status: Status::IoError, count: 0 }));
            SetupStep::Fail(Status::IoError)
        }
    });
    let mut h = chain_harness_with_setup(&[8], &[SETS_UP], 8, always(Verdict::Continue), Some(setup));
    let fwd = h.driver_requests();
    assert_eq!((fwd[0].op(), fwd[0].block, fwd[0].data_offset), (Ok(Op::Write), 3, bounce_paddr(0)));
    h.complete(&fwd, Status::IoError);
    h.run();
    assert_failed(&mut h);
}

#[test]
fn a_filter_may_work_in_slices_while_other_disks_are_served() {
    let setup: SetupFn = Box::new(|_, call: SetupCall, _| if call.round < 5 { SetupStep::Again } else { SetupStep::Ready { first: 0, blocks: 7 } });
    let mut h = chain_harness_with_setup(&[8], &[SETS_UP], 8, always(Verdict::Continue), Some(setup));
    let rounds: StdVec<u32> = h.up.setups.iter().map(|(_, c)| c.round).collect();
    assert_eq!(rounds, [0, 1, 2, 3, 4, 5], "one call per pass of the run loop, until ready");
    assert!(h.up.setups.iter().all(|(_, c)| c.last.is_none()));
    assert_eq!(client_blocks(&mut h), Some(7));
}

#[test]
fn a_client_attached_at_a_filter_is_seen_only_by_it_and_those_below_in_their_views() {
    // Filter 0 keeps block 0 (a header), filter 1 blocks 0..2: the top
    // client's block 0 is the device's 3, the lower client's block 0 is
    // filter 1's block 0, the device's 2.
    let setup: SetupFn = Box::new(|f, call: SetupCall, _| match f {
        1 => SetupStep::Ready { first: 2, blocks: call.below - 2 },
        _ => SetupStep::Ready { first: 1, blocks: call.below - 1 },
    });
    let mut h = chain_harness_at(&[8, 8], &[0, 1], &[SETS_UP, SETS_UP, Spec::PASS], 8, always(Verdict::Continue), Some(setup));
    assert_eq!(client_blocks(&mut h), Some(DISK_BLOCKS - 3));
    assert_eq!(h.clients[1].info.get().map(|i| i.capacity), Some(DISK_BLOCKS - 2), "the lower client sees filter 1's window");
    h.take_calls();
    h.push(1, Request::new(7, Op::Read, 0, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd[0].block, 2);
    assert_eq!(trace(&mut h), [(1, Hook::Pre, 0), (2, Hook::Pre, 2)], "filter 0 never sees it");
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(trace(&mut h), [(2, Hook::Post, 2), (1, Hook::Post, 0)], "nor its answer");
    assert_eq!(h.responses(1), [Response::new(7, Status::Ok, 1)]);
    // The top client goes through all three.
    h.push(0, Request::new(8, Op::Write, 0, 1, 0));
    h.run();
    assert_eq!(h.driver_requests()[0].block, 3);
    assert_eq!(trace(&mut h), [(0, Hook::Pre, 0), (1, Hook::Pre, 1), (2, Hook::Pre, 3)]);
    // Past its own window: refused.
    h.push(1, Request::new(9, Op::Read, DISK_BLOCKS - 2, 1, 0));
    h.run();
    assert_eq!(h.responses(1), [Response::new(9, Status::InvalidRequest, 0)]);
}

#[test]
fn a_filter_with_a_view_of_its_own_completes_or_remaps_each_request() {
    // Filter 0 offers 10 times the disk; it answers blocks under 100 itself,
    // remaps the rest to block / 10 below, and lets block 99_999 go on
    // unmapped (past the disk below: refused).
    let own_blocks = DISK_BLOCKS * 10;
    let setup: SetupFn = Box::new(move |_, _, _| SetupStep::Own { blocks: own_blocks });
    let decide: Decide = Box::new(|f, io, _, _, _| match (f, io.hook, io.block) {
        (0, Hook::Pre, b) if b < 100 => Verdict::Complete { status: Status::Ok, count: io.count },
        (0, Hook::Pre, b) if b == DISK_BLOCKS * 10 - 1 => Verdict::Continue,
        (0, Hook::Pre, b) if b == DISK_BLOCKS * 10 - 2 => Verdict::Remap { block: DISK_BLOCKS },
        (0, Hook::Pre, b) => Verdict::Remap { block: b / 10 },
        _ => Verdict::Continue,
    });
    let mut h = chain_harness_with_setup(&[8], &[SETS_UP, Spec::PASS], 8, decide, Some(setup));
    assert_eq!(client_blocks(&mut h), Some(own_blocks), "the clients see the filter's own size, larger than the disk");
    h.push(0, Request::new(1, Op::Read, 5, 1, 0));
    h.push(0, Request::new(2, Op::Read, 5000, 2, 0));
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1, "the synthesized block never reaches the device");
    assert_eq!((fwd[0].id, fwd[0].block, fwd[0].count), (2, 500, 2));
    assert_eq!(trace(&mut h), [(0, Hook::Pre, 5), (0, Hook::Pre, 5000), (1, Hook::Pre, 500)], "the filter below sees the remapped block");
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 1)], "answered by the filter at once");
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(trace(&mut h), [(1, Hook::Post, 500), (0, Hook::Post, 5000)], "the filter that remapped sees its own block again");
    assert_eq!(h.responses(0), [Response::new(2, Status::Ok, 2)]);
    // Unmapped past the disk below, or remapped past it: refused.
    h.push(0, Request::new(3, Op::Read, DISK_BLOCKS * 10 - 1, 1, 0));
    h.push(0, Request::new(4, Op::Write, DISK_BLOCKS * 10 - 2, 1, 0));
    h.run();
    assert_eq!(h.driver_requests(), []);
    let mut got = h.responses(0);
    got.sort_by_key(|r| r.id);
    assert_eq!(got, [Response::new(3, Status::IoError, 0), Response::new(4, Status::IoError, 0)]);
    assert_eq!(h.server.filters[0].stats.errors, 2);
}

/// Filter 1 reads block 2 below it, then offers `window` (per setup: the
/// windows it offers in turn, the last one again after them).
fn reads_then_offers_in_turn(windows: StdVec<(u64, u64)>) -> SetupFn {
    let mut setups = 0;
    Box::new(move |f, call: SetupCall, _| {
        assert_eq!(f, 1);
        match call.round {
            0 => SetupStep::Read { block: 2, count: 1, offset: 0 },
            _ => {
                let (first, blocks) = windows[setups.min(windows.len() - 1)];
                setups += 1;
                SetupStep::Ready { first, blocks }
            }
        }
    })
}

#[test]
fn a_restarted_filter_is_set_up_again_before_the_disk_takes_requests_again() {
    let setup = reads_then_offers_in_turn(vec![(10, 100)]);
    let mut h = chain_harness_with_setup(&[8], &[Spec::PASS, SETS_UP, Spec::PASS], 8, always(Verdict::Continue), Some(setup));
    serve_reads(&mut h);
    assert_eq!(client_blocks(&mut h), Some(100));
    let _ = trace(&mut h);
    // Filter 1 faults in its next upcall; the harness restarts it, as the
    // server's PD does.
    h.up.stop.push(1);
    h.push(0, Request::new(1, Op::Read, 5, 1, 0));
    h.run();
    assert_eq!(h.responses(0), [Response::new(1, Status::IoError, 0)]);
    assert!(h.events.contains(&Event::FilterStopped { filter: 1, failed: 1, restart: true }), "{:?}", h.events);
    // Its setup runs again from the start: the read goes down alone; a
    // request that comes meanwhile waits.
    h.push(0, Request::new(2, Op::Read, 5, 1, 0));
    h.run();
    let calls = h.up.setups.len();
    let fwd = serve_reads(&mut h);
    assert_eq!(fwd.len(), 1, "only the setup read: {fwd:?}");
    assert_eq!((fwd[0].block, fwd[0].count), (2, 1));
    assert_eq!(h.up.setups.len(), calls + 1, "called again once the read came back");
    assert_eq!(h.up.setups.iter().filter(|(f, c)| *f == 1 && c.round == 0).count(), 2, "its setup started over");
    assert_eq!(h.events.iter().filter(|e| matches!(e, Event::FilterReady { filter: 1, first: 10, blocks: 100 })).count(), 2);
    // Then the waiting request goes down through it, in the same window.
    let fwd = h.driver_requests();
    assert_eq!(fwd.iter().map(|r| (r.id, r.block)).collect::<StdVec<_>>(), [(2, 15)]);
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(2, Status::Ok, 1)]);
    assert_eq!(client_blocks(&mut h), Some(100), "the clients' view never changed");
}

#[test]
fn a_restarted_filter_that_offers_another_window_stays_stopped_and_the_disk_keeps_its_view() {
    let setup = reads_then_offers_in_turn(vec![(10, 100), (0, 50)]);
    let mut h = chain_harness_with_setup(&[8], &[Spec::PASS, SETS_UP, Spec::PASS], 8, always(Verdict::Continue), Some(setup));
    serve_reads(&mut h);
    h.up.stop.push(1);
    h.push(0, Request::new(1, Op::Read, 5, 1, 0));
    h.run();
    // (The restart comes after that pass; the next one sends the setup
    // read.)
    h.run();
    serve_reads(&mut h);
    assert!(h.events.contains(&Event::FilterSetupLost { filter: 1, why: SetupFailure::Changed }), "{:?}", h.events);
    let _ = h.responses(0);
    // Requests are taken again; what reaches the stopped filter fails.
    h.push(0, Request::new(2, Op::Read, 5, 1, 0));
    h.run();
    assert_eq!(h.driver_requests(), []);
    assert_eq!(h.responses(0), [Response::new(2, Status::IoError, 0)]);
    assert_eq!(client_blocks(&mut h), Some(100));
}

/// The blocks filter `f` (its position) of a chain with `windows` (each
/// filter's first block below it) sees for the top view's block: shifted
/// by the windows of the filters above it; `f` = the chain's length: the
/// driver's.
fn shifted(windows: &[(u64, u64)], f: usize, block: u64) -> u64 {
    block + windows[..f].iter().map(|w| w.0).sum::<u64>()
}

/// Where a filter's side read lands, in the view below it, for a client
/// request it sees at `block` (below it: `below` blocks).
fn side_block(f: usize, block: u64, below: u64) -> u64 {
    (block * 7 + f as u64) % below
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

    /// Random stacks of 1 to 4 windows, each filter reading a block below
    /// it now and then (side I/O) before a request goes on: every filter
    /// sees each client request, and each side read started above it, in
    /// its own view (shifted by the windows above it), the driver in the
    /// disk's; the clients see the top window, and a request past it
    /// reaches nobody.
    #[test]
    fn stacked_windows_shift_requests_and_side_io_at_every_level(
        cuts in proptest::collection::vec((0u64..200, 0u64..200), 1..=4),
        requests in proptest::collection::vec((0u64..4000, 1u32..4, proptest::prelude::any::<bool>()), 1..24),
    ) {
        let n = cuts.len();
        // Bottom up, each filter cuts some blocks off each end of the view
        // below it: (first, blocks), and the size of the view below it.
        let mut windows = vec![(0, 0); n];
        let mut below = vec![0; n];
        let mut size = DISK_BLOCKS;
        for f in (0..n).rev() {
            let first = cuts[f].0 % (size / 4);
            let blocks = size - first - cuts[f].1 % (size / 4);
            (windows[f], below[f], size) = ((first, blocks), size, blocks);
        }
        let offered = windows.clone();
        let setup: SetupFn = Box::new(move |f, call: SetupCall, _| {
            assert_eq!(call.below, if f + 1 < offered.len() { offered[f + 1].1 } else { DISK_BLOCKS });
            SetupStep::Ready { first: offered[f].0, blocks: offered[f].1 }
        });
        let below_of = below.clone();
        let decide: Decide = Box::new(move |f, io, _, _, _| match (io.hook, io.side, io.client) {
            (Hook::Pre, None, 0) if io.block % 3 == f as u64 % 3 => {
                Verdict::SideIo { op: Op::Read, block: side_block(f, io.block, below_of[f]), count: 1, page: 0 }
            }
            _ => Verdict::Continue,
        });
        let spec = Spec { hooks: 3 | SETUP_HOOK, ops: 0xff, rights: 0, bounce: true, pre_ops: 0, max_blocks: 0 };
        let mut h = chain_harness_with_setup(&[32], &vec![spec; n], 64, decide, Some(setup));
        h.run();
        let top = windows[0].1;
        proptest::prop_assert_eq!(client_blocks(&mut h), Some(top));
        let _ = h.take_calls();

        // Client requests at distinct blocks, some past the top window.
        let mut sent: HashMap<u32, (u64, u32)> = HashMap::new();
        let mut used = std::collections::HashSet::new();
        for (i, &(at, count, past)) in requests.iter().enumerate() {
            let block = if past { top - 1 + at % 3 } else { at % top };
            let count = if past { count + 1 } else { count.min((top - block) as u32) };
            if !used.insert(block) {
                continue;
            }
            h.push(0, Request::new(i as u32 + 1, if at % 2 == 0 { Op::Read } else { Op::Write }, block, count, 0));
            sent.insert(i as u32 + 1, (block, count));
        }
        let mut driver = StdVec::new();
        let mut answers = StdVec::new();
        for _ in 0..50 {
            h.run();
            let fwd = h.driver_requests();
            answers.extend(h.responses(0));
            if fwd.is_empty() {
                break;
            }
            h.complete(&fwd, Status::Ok);
            driver.extend(fwd);
        }
        // Every request answered: Ok inside the window, refused past it.
        proptest::prop_assert_eq!(answers.len(), sent.len());
        for a in &answers {
            let (block, count) = sent[&a.id];
            let inside = block + u64::from(count) <= top;
            let expected = if inside { Response::new(a.id, Status::Ok, count) } else { Response::new(a.id, Status::InvalidRequest, 0) };
            proptest::prop_assert_eq!(*a, expected);
        }
        let inside: HashMap<u64, u32> = sent.values().filter(|(b, c)| b + u64::from(*c) <= top).map(|&(b, c)| (b, c)).collect();
        // What each filter saw, in its own view.
        let calls = h.take_calls();
        for f in 0..n {
            let seen: StdVec<(Hook, u8, u64)> = calls.iter().filter(|c| c.filter == f).flat_map(|c| c.entries.iter().map(|(io, _)| (io.hook, io.client, io.block))).collect();
            for (&block, _) in &inside {
                let here = shifted(&windows, f, block);
                proptest::prop_assert!(seen.contains(&(Hook::Pre, 0, here)), "filter {} never saw block {} as {}", f, block, here);
                proptest::prop_assert!(seen.contains(&(Hook::Post, 0, here)), "filter {} saw no post-op of {}", f, here);
            }
            // The side reads of the filters above it, in its view.
            for g in 0..f {
                for (&block, _) in inside.iter().filter(|(&b, _)| shifted(&windows, g, b) % 3 == g as u64 % 3) {
                    let side = side_block(g, shifted(&windows, g, block), below[g]);
                    let here = side + windows[g + 1..f].iter().map(|w| w.0).sum::<u64>();
                    proptest::prop_assert!(seen.contains(&(Hook::Pre, SETUP_CLIENT, here)), "filter {} never saw filter {}'s side read of {} as {}", f, g, side, here);
                }
            }
            proptest::prop_assert!(seen.iter().all(|&(_, c, b)| c != 0 || inside.keys().any(|&k| shifted(&windows, f, k) == b)), "filter {} saw a request past the window", f);
        }
        // And the driver, in the disk's.
        for r in &driver {
            if r.id != 0 {
                let (block, count) = sent[&r.id];
                proptest::prop_assert_eq!((r.block, r.count), (shifted(&windows, n, block), count));
            }
        }
        let sides = driver.iter().filter(|r| r.id == 0).count();
        let expected = inside.keys().map(|&b| (0..n).filter(|&g| shifted(&windows, g, b) % 3 == g as u64 % 3).count()).sum::<usize>();
        proptest::prop_assert_eq!(sides, expected, "one side read per request and filter that asked");
        proptest::prop_assert_eq!(h.server.table.free(), chain::MAX_SLOTS);
    }
}

#[test]
fn a_filter_restarted_while_its_disk_is_set_up_again_for_another_is_set_up_again_after() {
    // f0 (top) and f1 both have the setup hook; f0's second setup takes a
    // read. f1 stops and is restarted while that read is at the driver.
    let f0 = Spec { hooks: 3 | SETUP_HOOK, ops: 0xff, rights: 0, bounce: true, pre_ops: filter::op_bit(Op::Write), max_blocks: 0 };
    let mut f0_setups = 0;
    let setup: SetupFn = Box::new(move |f, call: SetupCall, _| match (f, call.round) {
        (0, 0) => {
            f0_setups += 1;
            if f0_setups == 1 {
                SetupStep::Ready { first: 0, blocks: call.below }
            } else {
                SetupStep::Read { block: 0, count: 1, offset: 0 }
            }
        }
        _ => SetupStep::Ready { first: 0, blocks: call.below },
    });
    let mut h = chain_harness_with_setup(&[8], &[f0, SETS_UP], 8, always(Verdict::Continue), Some(setup));
    assert_eq!(client_blocks(&mut h), Some(DISK_BLOCKS));
    h.push(0, Request::new(1, Op::Read, 5, 1, 0));
    h.run();
    let read = h.driver_requests();
    assert_eq!(read.len(), 1);
    // f0 stops on a write and is restarted: set up again, with a read.
    h.up.stop.push(0);
    h.push(0, Request::new(2, Op::Write, 6, 1, 0));
    h.run();
    h.run();
    let setup_read = h.driver_requests();
    assert_eq!(setup_read.len(), 1, "f0's setup read");
    // f1 stops on the first read's post-op, restarted while the disk is in
    // f0's setup.
    h.up.stop.push(1);
    h.complete(&read, Status::Ok);
    h.run();
    assert!(h.events.iter().any(|e| matches!(e, Event::FilterStopped { filter: 1, restart: true, .. })), "{:?}", h.events);
    h.complete(&setup_read, Status::Ok);
    h.run();
    h.run();
    let f1_setups = h.up.setups.iter().filter(|(f, c)| *f == 1 && c.round == 0).count();
    assert_eq!(f1_setups, 2, "f1 is set up again once f0's setup is done: {:?}", h.up.setups);
    // And the disk serves its client again.
    h.push(0, Request::new(3, Op::Read, 7, 1, 0));
    h.run();
    let reqs = h.driver_requests();
    assert_eq!(reqs.len(), 1);
    h.complete(&reqs, Status::Ok);
    h.run();
    assert!(h.responses(0).iter().any(|r| r.id == 3 && r.status() == Ok(Status::Ok)));
}
