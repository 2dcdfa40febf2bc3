//! Round trips and hostile input for everything that crosses a protection
//! domain boundary: ring records, storage info, filter upcalls and verdicts.

use blk::filter::{label, Completion, DataSpan, MessageError, MAX_MESSAGE_REGISTERS};
use blk::{DiskId, Io, Op, Request, Response, Status, StorageInfo, UnknownOp, UnknownStatus, Upcall, Verdict, BLOCK_SIZE};
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(Op::ALL.to_vec())
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn io() -> impl Strategy<Value = Io> {
    (any::<u32>(), any::<u32>(), op(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(id, disk, op, block, count, offset, len)| Io {
            id,
            disk: DiskId(disk),
            op,
            block,
            count,
            data: DataSpan { offset, len },
        },
    )
}

fn completion() -> impl Strategy<Value = Completion> {
    (status(), any::<u32>()).prop_map(|(status, count)| Completion { status, count })
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Continue),
        (status(), any::<u32>()).prop_map(|(status, count)| Verdict::Complete { status, count }),
        status().prop_filter("a failure is not OK", |s| !s.is_ok()).prop_map(Verdict::Fail),
        any::<u32>().prop_map(|d| Verdict::Redirect(DiskId(d))),
    ]
}

/// Labels of this ABI and their neighbours, and anything else.
fn any_label() -> impl Strategy<Value = u64> {
    prop_oneof![(0xffu64..=0x102), (0x1ffu64..=0x204), any::<u64>()]
}

/// Registers as a hostile peer might send them: mostly the right number,
/// with small or arbitrary values.
fn any_words() -> impl Strategy<Value = Vec<u64>> {
    let word = prop_oneof![0u64..8, any::<u32>().prop_map(u64::from), any::<u64>()];
    prop_oneof![
        prop::collection::vec(word.clone(), 0..=5),
        prop::collection::vec(word, 0..=MAX_MESSAGE_REGISTERS),
    ]
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
        prop_assert_eq!(r.check(&disk, region), expected);
        prop_assert_eq!(r.is_valid_for(capacity, read_only, region), expected.is_ok());
    }

    #[test]
    fn upcalls_round_trip_through_registers(io in io(), done in completion(), post: bool) {
        let upcall = if post { Upcall::Post(io, done) } else { Upcall::Pre(io) };
        let m = upcall.encode();
        prop_assert!(m.words().len() <= MAX_MESSAGE_REGISTERS);
        prop_assert_eq!(Upcall::decode(m.label(), m.words()), Ok(upcall));
    }

    #[test]
    fn verdicts_round_trip_through_registers(v in verdict()) {
        let m = v.encode();
        prop_assert_eq!(Verdict::decode(m.label(), m.words()), Ok(v));
    }

    /// Decoding never panics, and whatever decodes is exactly what encoding
    /// it gives back: there is one way to say each thing.
    #[test]
    fn decoding_any_registers_is_an_error_or_canonical(label in any_label(), words in any_words()) {
        if let Ok(upcall) = Upcall::decode(label, &words) {
            let m = upcall.encode();
            prop_assert_eq!((m.label(), m.words()), (label, &words[..]));
        }
        if let Ok(verdict) = Verdict::decode(label, &words) {
            let m = verdict.encode();
            prop_assert_eq!((m.label(), m.words()), (label, &words[..]));
        }
    }

    #[test]
    fn a_reply_is_never_mistaken_for_an_upcall(v in verdict(), io in io()) {
        let m = v.encode();
        prop_assert_eq!(Upcall::decode(m.label(), m.words()), Err(MessageError::UnknownLabel(m.label())));
        let m = Upcall::Pre(io).encode();
        prop_assert_eq!(Verdict::decode(m.label(), m.words()), Err(MessageError::UnknownLabel(label::PRE)));
    }
}
