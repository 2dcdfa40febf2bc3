//! Round trips and hostile input for everything that crosses a protection
//! domain boundary: ring records, storage info, filter call-page entries
//! and verdicts.

use blk::filter::{Completion, Entry, Hook};
use blk::{Io, Op, Request, Response, Status, StorageInfo, UnknownOp, UnknownStatus, Verdict, BLOCK_SIZE};
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(Op::ALL.to_vec())
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn io() -> impl Strategy<Value = Io> {
    let side = prop::option::of((status(), 0u32..(1 << 24)).prop_map(|(status, count)| Completion { status, count }));
    (any::<bool>(), op(), any::<u8>(), any::<u8>(), any::<u64>(), any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>(), side).prop_map(
        |(post, op, client, position, block, count, grant, id, state, side)| Io {
            hook: if post { Hook::Post } else { Hook::Pre },
            op,
            client,
            position,
            block,
            count,
            grant,
            id,
            state,
            side,
        },
    )
}

fn completion() -> impl Strategy<Value = Completion> {
    (status(), any::<u32>()).prop_map(|(status, count)| Completion { status, count })
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Continue),
        (0u64..64).prop_map(|b| Verdict::Substitute { offset: b * BLOCK_SIZE as u64 }),
        (status(), any::<u32>()).prop_map(|(status, count)| Verdict::Complete { status, count }),
        status().prop_filter("a failure is not OK", |s| !s.is_ok()).prop_map(Verdict::Fail),
        (any::<u8>(), any::<u64>()).prop_map(|(link, block)| Verdict::Redirect { link, block }),
        (prop_oneof![Just(Op::Read), Just(Op::Write), Just(Op::Flush)], any::<u64>(), any::<u32>(), any::<u16>())
            .prop_map(|(op, block, count, page)| Verdict::SideIo { op, block, count, page }),
        any::<u64>().prop_map(|block| Verdict::Remap { block }),
    ]
}

/// Words as a hostile peer might write them: small or arbitrary values.
fn any_word() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..8, any::<u32>().prop_map(u64::from), any::<u64>()]
}

proptest! {
    #[test]
    fn requests_round_trip_through_their_bytes(id: u32, op in op(), block: u64, count: u32, offset: u64, tag: u32) {
        let r = Request::new(id, op, block, count, offset).with_tag(tag);
        let back = Request::read_from_bytes(r.as_bytes()).unwrap();
        prop_assert_eq!(back, r);
        prop_assert_eq!(back.op(), Ok(op));
        prop_assert_eq!((back.id, back.block, back.count, back.data_offset, back.tag), (id, block, count, offset, tag));
    }

    #[test]
    fn responses_round_trip_through_their_bytes(id: u32, status in status(), count: u32, tag: u32) {
        let r = Response::new(id, status, count).with_tag(tag);
        let back = Response::read_from_bytes(r.as_bytes()).unwrap();
        prop_assert_eq!(back.status(), Ok(status));
        prop_assert_eq!((back.id, back.count, back.tag), (id, count, tag));
    }

    /// What a server forwards differs from the request only where it must.
    #[test]
    fn a_forwarded_request_is_shifted_and_tagged(bytes in prop::array::uniform32(any::<u8>()), first: u64, base: u64, tag: u32) {
        let r = Request::read_from_bytes(&bytes[..]).unwrap();
        let f = r.forwarded(first, base, tag);
        prop_assert_eq!((f.id, f.opcode, f.count), (r.id, r.opcode, r.count));
        prop_assert_eq!((f.block, f.data_offset, f.tag), (r.block.wrapping_add(first), r.data_offset.wrapping_add(base), tag));
    }

    #[test]
    fn any_bytes_are_a_record_whose_unknown_codes_are_errors(bytes in prop::array::uniform32(any::<u8>())) {
        let r = Request::read_from_bytes(&bytes[..]).unwrap();
        prop_assert_eq!(r.as_bytes(), &bytes[..]);
        match r.op() {
            Ok(op) => prop_assert_eq!(op.raw(), r.opcode),
            Err(e) => { prop_assert_eq!(e, UnknownOp(r.opcode)); prop_assert!(r.opcode > 3); }
        }
        let resp = Response::read_from_bytes(&bytes[..16]).unwrap();
        match resp.status() {
            Ok(s) => prop_assert_eq!(s.raw(), resp.status_code),
            Err(e) => { prop_assert_eq!(e, UnknownStatus(resp.status_code)); prop_assert!(resp.status_code > 3); }
        }
        let info = StorageInfo::read_from_bytes(&[bytes, bytes, bytes, bytes].concat()[..]).unwrap();
        prop_assert!(info.serial().len() <= 64);
    }

    /// The server's check never panics and lets through exactly the
    /// requests inside the disk and inside the data region.
    #[test]
    fn request_checks_admit_exactly_requests_inside_disk_and_region(
        bytes in prop::array::uniform32(any::<u8>()),
        small in (0u32..6, 0u64..64, 0u32..8, prop_oneof![(0u64..20).prop_map(|b| b * 4096), 0u64..(20 * 4096)]),
        use_small: bool,
        capacity in 0u64..64,
        read_only: bool,
        region in 0u64..(16 * 4096),
    ) {
        let mut r = Request::read_from_bytes(&bytes[..]).unwrap();
        if use_small {
            (r.opcode, r.block, r.count, r.data_offset) = small;
        }
        let disk = StorageInfo::new(capacity, read_only, 8);
        // The rules in wide arithmetic, where nothing overflows.
        let expected = match r.op() {
            Err(_) => Err(Status::InvalidRequest),
            Ok(op) if !op.moves_data() => Ok(op),
            Ok(op) => {
                let valid = r.count > 0
                    && r.block as u128 + r.count as u128 <= capacity as u128
                    && r.data_offset % BLOCK_SIZE as u64 == 0
                    && r.data_offset as u128 + r.count as u128 * BLOCK_SIZE as u128 <= region as u128
                    && !(read_only && op == Op::Write);
                if valid { Ok(op) } else { Err(Status::InvalidRequest) }
            }
        };
        prop_assert_eq!(disk.check(&r, region), expected);
        prop_assert_eq!(r.is_valid_for(capacity, read_only, region), expected.is_ok());
    }

    #[test]
    fn call_page_entries_round_trip(io in io(), done in completion()) {
        let done = (io.hook == Hook::Post).then_some(done);
        let e = Entry::new(&io, done);
        prop_assert_eq!(e.io(), Some((Io { op: io.op, ..io }, done)));
        prop_assert_eq!(&e.words[6..], &[0, 0], "no verdict until the filter gives one");
    }

    /// Whatever a verdict a filter gives that the ABI allows for the
    /// request reads back as given.
    #[test]
    fn allowed_verdicts_round_trip(io in io(), v in verdict()) {
        let mut e = Entry::new(&io, None);
        e.set_verdict(v);
        if let Ok(read) = Entry::verdict([e.words[6], e.words[7]], &io, 1 << 20) {
            prop_assert_eq!(read, v);
        }
    }

    /// Reading any entry never panics, and what reads as a request writes
    /// back to an entry that reads the same.
    #[test]
    fn any_entry_decodes_to_nothing_or_to_itself(words in prop::array::uniform8(any_word())) {
        if let Some((io, done)) = (Entry { words }).io() {
            prop_assert_eq!(Entry::new(&io, done).io(), Some((io, done)));
        }
    }

    /// Any verdict words the server reads back are refused or mean what the
    /// request allows: no failure with OK, no more blocks than asked for,
    /// a substitute only for a read or write before it goes down, aligned
    /// and inside the bounce buffer, a remap only before it goes down, a
    /// redirect only of a read, write or flush, a side I/O inside the bounce
    /// buffer and no larger than a setup step.
    #[test]
    fn the_server_accepts_only_verdicts_the_request_allows(io in io(), w6 in any_word(), w7 in any_word(), bounce in 0u64..(1 << 22)) {
        match Entry::verdict([w6, w7], &io, bounce) {
            Err(_) | Ok(Verdict::Continue) => {}
            Ok(Verdict::Fail(s)) => prop_assert!(!s.is_ok()),
            Ok(Verdict::Complete { count, .. }) => prop_assert!(count <= io.count),
            Ok(Verdict::Substitute { offset }) => {
                prop_assert!(io.hook == Hook::Pre && io.op.moves_data());
                prop_assert!(offset % BLOCK_SIZE as u64 == 0);
                prop_assert!(offset as u128 + io.count as u128 * BLOCK_SIZE as u128 <= bounce as u128);
            }
            // (The server checks the link and the block against the linked disk.)
            Ok(Verdict::Redirect { .. }) => prop_assert!(matches!(io.op, Op::Read | Op::Write | Op::Flush)),
            Ok(Verdict::SideIo { op, count, page, .. }) => {
                prop_assert!(matches!(op, Op::Read | Op::Write | Op::Flush));
                prop_assert!(count <= blk::filter::MAX_SETUP_BLOCKS);
                prop_assert!(op.moves_data() == (count > 0));
                prop_assert!((page as u64 + count as u64) * BLOCK_SIZE as u64 <= bounce);
            }
            // (The server checks the block against the disk below.)
            Ok(Verdict::Remap { .. }) => prop_assert!(io.hook == Hook::Pre && io.op.moves_data()),
        }
    }
}
