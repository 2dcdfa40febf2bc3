//! The filter against a model of the server and its disk: setup steps,
//! requests with their pre- and post-ops, side I/O carried out as the
//! server does (`blk::filter`'s module docs). MACs are checked against the
//! `hmac` and `sha2` crates computed here, outside the filter.

use super::*;
use blk::filter::{DataError, Hook};
use std::cell::RefCell;
use std::collections::BTreeMap;

const KEY: &str = "integrity test key";

thread_local! {
    static SAID: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn say(args: fmt::Arguments) {
    SAID.with(|s| s.borrow_mut().push(args.to_string()));
}

fn said() -> Vec<String> {
    SAID.with(|s| s.borrow_mut().drain(..).collect())
}

struct Buffer(RefCell<Vec<u8>>);

impl RequestData for Buffer {
    fn read(&self, _: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
        let at = offset as usize;
        out.copy_from_slice(self.0.borrow().get(at..at + out.len()).ok_or(DataError::OutOfRange)?);
        Ok(())
    }
    fn write(&self, _: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
        let at = offset as usize;
        self.0.borrow_mut().get_mut(at..at + data.len()).ok_or(DataError::OutOfRange)?.copy_from_slice(data);
        Ok(())
    }
}

fn bounce() -> Shared<'static> {
    Shared::from_words(Box::leak(vec![0u64; BOUNCE as usize / 8].into_boxed_slice()))
}

fn pattern(b: u64, tag: u8) -> Vec<u8> {
    (0..BLOCK).map(|i| (b as u8).wrapping_mul(13) ^ tag ^ (i as u8)).collect()
}

/// The filter's disk, sparse: unwritten blocks read as zeros.
struct Disk {
    blocks: u64,
    data: BTreeMap<u64, Vec<u8>>,
    /// The setup's writes (their first block) and flushes (`None`), in
    /// order.
    setup_log: Vec<Option<u64>>,
}

impl Disk {
    fn new(blocks: u64) -> Disk {
        Disk { blocks, data: BTreeMap::new(), setup_log: Vec::new() }
    }
    fn read(&self, block: u64, count: u32) -> Vec<u8> {
        (block..block + u64::from(count)).flat_map(|b| self.data.get(&b).cloned().unwrap_or_else(|| vec![0; BLOCK])).collect()
    }
    fn write(&mut self, block: u64, data: &[u8]) {
        for (i, d) in data.chunks(BLOCK).enumerate() {
            self.data.insert(block + i as u64, d.to_vec());
        }
    }
}

fn set_up(f: &mut Integrity<'_>, bounce: Shared<'static>, disk: &mut Disk) -> SetupStep {
    set_up_until(f, bounce, disk, usize::MAX).expect("set up")
}

/// The setup dialogue against `disk`, the power cut (`None`) once the
/// setup's writes and flushes number `steps`.
fn set_up_until(f: &mut Integrity<'_>, bounce: Shared<'static>, disk: &mut Disk, steps: usize) -> Option<SetupStep> {
    let mut last = None;
    for round in 0.. {
        if disk.setup_log.len() == steps {
            return None;
        }
        match f.setup(&SetupCall { round, below: disk.blocks, last, linked: 0 }, Some(&bounce)) {
            SetupStep::Read { block, count, offset } => {
                bounce.write_bytes(offset as usize, &disk.read(block, count)).unwrap();
                last = Some(Completion { status: Status::Ok, count });
            }
            SetupStep::Write { block, count, offset } => {
                let mut d = vec![0; count as usize * BLOCK];
                bounce.read_bytes(offset as usize, &mut d).unwrap();
                disk.write(block, &d);
                disk.setup_log.push(Some(block));
                last = Some(Completion { status: Status::Ok, count });
            }
            SetupStep::Flush => {
                disk.setup_log.push(None);
                last = Some(Completion { status: Status::Ok, count: 0 });
            }
            done => return Some(done),
        }
    }
    unreachable!()
}

fn side(bounce: Shared<'static>, disk: &mut Disk, op: Op, block: u64, count: u32, page: u16) -> Completion {
    let offset = page as usize * BLOCK;
    match op {
        Op::Read => bounce.write_bytes(offset, &disk.read(block, count)).unwrap(),
        Op::Write => {
            let mut d = vec![0; count as usize * BLOCK];
            bounce.read_bytes(offset, &mut d).unwrap();
            disk.write(block, &d);
        }
        _ => {}
    }
    Completion { status: Status::Ok, count }
}

/// One request through the filter, the window starting at `first`.
fn request(f: &mut Integrity<'_>, bounce: Shared<'static>, disk: &mut Disk, op: Op, block: u64, count: u32, data: &Buffer, first: u64) -> Status {
    let io = Io { hook: Hook::Pre, op, client: 0, position: 0, block, count, grant: 1, id: 3, state: 0, side: None };
    let (mut state, mut s) = (0, None);
    loop {
        match f.pre(&Io { state, side: s, ..io }, data, &mut state) {
            Verdict::Continue => break,
            Verdict::SideIo { op, block, count, page } => s = Some(side(bounce, disk, op, block, count, page)),
            Verdict::Fail(st) => return st,
            v => panic!("{v:?}"),
        }
    }
    let len = count as usize * BLOCK;
    match op {
        Op::Read => data.0.borrow_mut()[..len].copy_from_slice(&disk.read(first + block, count)),
        Op::Write => disk.write(first + block, &data.0.borrow()[..len]),
        _ => {}
    }
    match f.post_state(&Io { hook: Hook::Post, state, side: None, ..io }, Completion { status: Status::Ok, count }, data, &mut state) {
        Verdict::Continue => Status::Ok,
        Verdict::Fail(st) => st,
        v => panic!("{v:?}"),
    }
}

fn hmac(block: u64, data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    m.update(b"data");
    m.update(&block.to_le_bytes());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// A 1000-block disk: 990 data blocks behind the header, its backup and 8
/// table blocks.
const FIRST: u64 = 2 + 8;

fn fresh() -> (Integrity<'static>, Shared<'static>, Disk) {
    let b = bounce();
    let mut disk = Disk::new(1000);
    let mut f = Integrity::new(Some(KEY), Some(b), say).unwrap();
    assert_eq!(set_up(&mut f, b, &mut disk), SetupStep::Ready { first: FIRST, blocks: 990 });
    (f, b, disk)
}

#[test]
fn a_fresh_disk_is_formatted_and_reads_as_zeros_whatever_it_holds() {
    let (mut f, b, mut disk) = fresh();
    assert_eq!(&disk.read(0, 1)[..16], MAGIC);
    assert!(said().iter().any(|l| l == "formatting: 990 blocks, 8 blocks of MACs"));
    disk.write(FIRST + 5, &pattern(5, 1));
    let data = Buffer(RefCell::new(pattern(0, 9)));
    assert_eq!(request(&mut f, b, &mut disk, Op::Read, 5, 1, &data, FIRST), Status::Ok);
    assert!(data.0.borrow().iter().all(|&x| x == 0), "never written: zeros, not what the disk holds");
    assert_eq!(f.counts.unwritten, 1);
}

#[test]
fn a_block_changed_behind_the_filter_fails_its_read_and_is_named() {
    let (mut f, b, mut disk) = fresh();
    let mine = Buffer(RefCell::new([pattern(20, 2), pattern(21, 2)].concat()));
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 20, 2, &mine, FIRST), Status::Ok);
    let mut entry = [0u8; 32];
    b.read_bytes(Integrity::entry_at(21), &mut entry).unwrap();
    assert_eq!(entry, hmac(21, &pattern(21, 2)), "the table holds HMAC-SHA256(key, \"data\" || block || bytes)");
    let back = Buffer(RefCell::new(vec![0; 2 * BLOCK]));
    assert_eq!(request(&mut f, b, &mut disk, Op::Read, 20, 2, &back, FIRST), Status::Ok);
    assert!(back.0.borrow()[..] == mine.0.borrow()[..]);
    // One byte of block 21 flipped on the disk.
    let mut bad = disk.read(FIRST + 21, 1);
    bad[100] ^= 1;
    disk.write(FIRST + 21, &bad);
    said();
    assert_eq!(request(&mut f, b, &mut disk, Op::Read, 20, 2, &back, FIRST), Status::IoError);
    assert_eq!(said(), [format!("block 21 does not match its MAC: the read fails (block {} of the disk below the filter; changed behind the filter, or read while a write of it was in flight)", 21 + FIRST)]);
    // A block moved elsewhere fails as well.
    disk.write(FIRST + 21, &disk.read(FIRST + 20, 1));
    assert_eq!(request(&mut f, b, &mut disk, Op::Read, 21, 1, &back, FIRST), Status::IoError);
}

#[test]
fn a_flush_writes_the_changed_table_and_what_it_covered_survives_a_crash() {
    let (mut f, b, mut disk) = fresh();
    let first = Buffer(RefCell::new(pattern(300, 3)));
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 300, 1, &first, FIRST), Status::Ok);
    assert_eq!(request(&mut f, b, &mut disk, Op::Flush, 0, 0, &Buffer(RefCell::new(Vec::new())), FIRST), Status::Ok);
    assert_eq!(f.changes.written, 1, "table block 2 (blocks 256..384)");
    // Written after the flush: the data reaches the disk, the table does not.
    let later = Buffer(RefCell::new(pattern(301, 4)));
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 301, 1, &later, FIRST), Status::Ok);
    let again = Buffer(RefCell::new(pattern(300, 6)));
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 300, 1, &again, FIRST), Status::Ok);

    // A crash: a new filter, its memory zeroed, on the same disk.
    let b2 = bounce();
    let mut g = Integrity::new(Some(KEY), Some(b2), say).unwrap();
    assert_eq!(set_up(&mut g, b2, &mut disk), SetupStep::Ready { first: FIRST, blocks: 990 });
    let back = Buffer(RefCell::new(vec![0; BLOCK]));
    assert_eq!(request(&mut g, b2, &mut disk, Op::Read, 301, 1, &back, FIRST), Status::Ok);
    assert!(back.0.borrow().iter().all(|&x| x == 0), "not flushed, never written before: its old content");
    assert_eq!(request(&mut g, b2, &mut disk, Op::Read, 300, 1, &back, FIRST), Status::IoError, "rewritten, not flushed: an error, never wrong data");
    // Flushed again, it reads back verified.
    assert_eq!(request(&mut f, b, &mut disk, Op::Flush, 0, 0, &Buffer(RefCell::new(Vec::new())), FIRST), Status::Ok);
    let b3 = bounce();
    let mut h = Integrity::new(Some(KEY), Some(b3), say).unwrap();
    assert_eq!(set_up(&mut h, b3, &mut disk), SetupStep::Ready { first: FIRST, blocks: 990 });
    assert_eq!(request(&mut h, b3, &mut disk, Op::Read, 300, 1, &back, FIRST), Status::Ok);
    assert!(back.0.borrow()[..] == again.0.borrow()[..], "flushed: verified");
}

#[test]
fn a_second_flush_waits_while_the_first_writes_the_table() {
    let (mut f, b, mut disk) = fresh();
    let w = Buffer(RefCell::new(pattern(7, 5)));
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 7, 1, &w, FIRST), Status::Ok);
    let none = Buffer(RefCell::new(Vec::new()));
    let flush = |id| Io { hook: Hook::Pre, op: Op::Flush, client: 0, position: 0, block: 0, count: 0, grant: 0, id, state: 0, side: None };
    let (mut a, mut c) = (0, 0);
    let va = f.pre(&flush(1), &none, &mut a);
    assert_eq!(va, Verdict::SideIo { op: Op::Write, block: 2, count: 1, page: 2 });
    // Another write dirties the table meanwhile; a second flush comes.
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 8, 1, &w, FIRST), Status::Ok);
    let vc = f.pre(&flush(2), &none, &mut c);
    assert_eq!(vc, Verdict::SideIo { op: Op::Read, block: 0, count: 1, page: 1 }, "it waits");
    let ok = Some(Completion { status: Status::Ok, count: 1 });
    // The first is written; its flush writes what changed since, then goes.
    let va = f.pre(&Io { state: a, side: ok, ..flush(1) }, &none, &mut a);
    assert_eq!(va, Verdict::SideIo { op: Op::Write, block: 2, count: 1, page: 2 });
    assert_eq!(f.pre(&Io { state: a, side: ok, ..flush(1) }, &none, &mut a), Verdict::Continue);
    assert_eq!(f.pre(&Io { state: c, side: ok, ..flush(2) }, &none, &mut c), Verdict::Continue, "nothing left to write");
}

#[test]
fn a_wrong_key_fails_the_disk_and_writes_nothing_and_a_disk_with_a_known_signature_is_not_formatted() {
    let (_, _, mut disk) = fresh();
    let before = disk.data.clone();
    let b = bounce();
    let mut wrong = Integrity::new(Some("another key"), Some(b), say).unwrap();
    said();
    assert_eq!(set_up(&mut wrong, b, &mut disk), SetupStep::Fail(Status::IoError));
    assert_eq!(said(), ["the header's MAC does not match: a wrong key, or a damaged header; every request of the disk fails"]);
    assert!(disk.data == before);

    // A disk that holds something a user may still want (a LUKS volume,
    // a partition table, a file system): a format would lose it, so it
    // fails, untouched, saying what it found.
    let signed = |at: usize, magic: &[u8]| {
        let mut disk = Disk::new(1000);
        let mut head = vec![0u8; 2 * BLOCK];
        head[at..at + magic.len()].copy_from_slice(magic);
        disk.write(0, &head[..BLOCK]);
        disk.write(1, &head[BLOCK..]);
        disk
    };
    for (mut disk, what) in [
        (signed(0, b"LUKS\xba\xbe"), "a LUKS header"),
        (signed(510, &[0x55, 0xaa]), "a partition table or boot sector (a FAT or NTFS file system, an MBR)"),
        (signed(512, b"EFI PART"), "a GPT partition table"),
        (signed(1080, &[0x53, 0xef]), "an ext2/3/4 file system"),
        (signed(0, b"STRATA-OVERLAY-2"), "another Strata filter's header"),
    ] {
        let before = disk.data.clone();
        let b2 = bounce();
        let mut f = Integrity::new(Some(KEY), Some(b2), say).unwrap();
        said();
        assert_eq!(set_up(&mut f, b2, &mut disk), SetupStep::Fail(Status::IoError));
        let lines = said();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(&format!("blocks 0 and 1 hold {what}, not an integrity header: not formatted, nothing written")), "{lines:?}");
        assert!(lines[0].contains("dd if=/dev/zero of=IMAGE bs=4096 count=2 conv=notrunc") && lines[0].ends_with("; every request of the disk fails"), "{lines:?}");
        assert!(disk.data == before, "nothing written");
    }
    // Data nothing recognises (a fresh LUKS payload through crypt reads as
    // random bytes): formatted, and its old blocks read as zeros, never as
    // what they held.
    let mut other = Disk::new(1000);
    for blk in 0..20 {
        other.write(blk, &pattern(blk, 7));
    }
    let b2 = bounce();
    let mut f = Integrity::new(Some(KEY), Some(b2), say).unwrap();
    said();
    assert_eq!(set_up(&mut f, b2, &mut other), SetupStep::Ready { first: FIRST, blocks: 990 });
    assert_eq!(said()[0], "blocks 0 and 1 hold no integrity header, and nothing a tool would recognise: the disk is formatted, and what it held reads as zeros");
    let back = Buffer(RefCell::new(vec![1; BLOCK]));
    assert_eq!(request(&mut f, b2, &mut other, Op::Read, 3, 1, &back, FIRST), Status::Ok);
    assert!(back.0.borrow().iter().all(|&x| x == 0));
    // A blank disk is formatted without that line.
    let (mut blank, b3) = (Disk::new(1000), bounce());
    let mut f = Integrity::new(Some(KEY), Some(b3), say).unwrap();
    said();
    assert_eq!(set_up(&mut f, b3, &mut blank), SetupStep::Ready { first: FIRST, blocks: 990 });
    assert!(said()[0].starts_with("formatting: "));
    assert!(Integrity::new(None, Some(b), say).is_err(), "a key is required");
}

/// `disk` after a write of block 300 and a flush (its table on the disk).
fn written_and_flushed() -> (Disk, Vec<u8>) {
    let (mut f, b, mut disk) = fresh();
    let data = pattern(300, 3);
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 300, 1, &Buffer(RefCell::new(data.clone())), FIRST), Status::Ok);
    assert_eq!(request(&mut f, b, &mut disk, Op::Flush, 0, 0, &Buffer(RefCell::new(Vec::new())), FIRST), Status::Ok);
    (disk, data)
}

/// Set the filter up on `disk` again and read block 300 back.
fn reopened(disk: &mut Disk) -> (SetupStep, Option<Vec<u8>>) {
    let b = bounce();
    let mut f = Integrity::new(Some(KEY), Some(b), say).unwrap();
    let step = set_up(&mut f, b, disk);
    if step != (SetupStep::Ready { first: FIRST, blocks: 990 }) {
        return (step, None);
    }
    let back = Buffer(RefCell::new(vec![0; BLOCK]));
    assert_eq!(request(&mut f, b, disk, Op::Read, 300, 1, &back, FIRST), Status::Ok);
    let data = back.0.borrow().clone();
    (step, Some(data))
}

#[test]
fn a_header_damaged_in_one_bit_is_put_back_from_its_backup_and_never_formats_the_disk() {
    for (what, byte) in [("its magic", 0), ("its table count", 16), ("its MAC", 40)] {
        let (mut disk, data) = written_and_flushed();
        assert_eq!(disk.read(0, 1), disk.read(1, 1), "the backup is the header");
        let mut h = disk.read(0, 1);
        h[byte] ^= 1;
        disk.write(0, &h);
        said();
        let (_, back) = reopened(&mut disk);
        assert_eq!(back.as_deref(), Some(&data[..]), "{what}: the block still reads verified");
        assert_eq!(said(), ["the header (block 0) does not hold: put back from its backup (block 1)", "990 blocks, checked against 8 blocks of MACs"], "{what}");
        assert_eq!(disk.read(0, 1), disk.read(1, 1), "{what}: put back");
    }
    // Block 0 zeroed: the same.
    let (mut disk, data) = written_and_flushed();
    disk.write(0, &[0; BLOCK]);
    assert_eq!(reopened(&mut disk).1.as_deref(), Some(&data[..]));
}

#[test]
fn a_damaged_backup_is_written_again_from_the_header() {
    let (mut disk, data) = written_and_flushed();
    disk.write(1, &pattern(1, 1));
    said();
    assert_eq!(reopened(&mut disk).1.as_deref(), Some(&data[..]));
    assert_eq!(said()[0], "the header's backup (block 1) does not hold: written again");
    assert_eq!(disk.read(0, 1), disk.read(1, 1));
}

#[test]
fn a_header_and_backup_both_damaged_fail_the_disk_and_nothing_is_written() {
    let (mut disk, _) = written_and_flushed();
    for blk in [0, 1] {
        let mut h = disk.read(blk, 1);
        h[40] ^= 1;
        disk.write(blk, &h);
    }
    let before = disk.data.clone();
    said();
    assert_eq!(reopened(&mut disk).0, SetupStep::Fail(Status::IoError));
    assert_eq!(said(), ["the header's MAC does not match: a wrong key, or a damaged header; every request of the disk fails"]);
    assert!(disk.data == before, "nothing written");
}

#[test]
fn a_disk_past_1_gib_is_formatted_to_1_gib_and_says_so() {
    let b = bounce();
    let mut disk = Disk::new(300_000);
    let mut f = Integrity::new(Some(KEY), Some(b), say).unwrap();
    said();
    assert_eq!(set_up(&mut f, b, &mut disk), SetupStep::Ready { first: 2 + 2048, blocks: 262_144 });
    let unused = 300_000 - 2 - 2048 - 262_144;
    assert_eq!(said()[0], format!("formatting: 262144 blocks, 2048 blocks of MACs (the most this filter covers, 1 GiB: the disk's last {unused} blocks are not used)"));
}

#[test]
fn a_header_and_backup_damaged_in_their_magic_only_are_both_written_again() {
    let (mut disk, data) = written_and_flushed();
    for blk in [0, 1] {
        let mut h = disk.read(blk, 1);
        h[3] ^= 0x20;
        disk.write(blk, &h);
    }
    said();
    assert_eq!(reopened(&mut disk).1.as_deref(), Some(&data[..]), "not formatted: the block still reads verified");
    assert_eq!(said()[0], "the header and its backup (blocks 0 and 1) were damaged in their magic only: both written again");
    assert_eq!(&disk.read(0, 1)[..16], MAGIC);
    assert_eq!(disk.read(0, 1), disk.read(1, 1));
}

#[test]
fn a_disk_whose_headers_were_wiped_is_not_formatted_when_its_table_is_this_keys() {
    let (mut disk, _) = written_and_flushed();
    disk.write(0, &[0; 2 * BLOCK]);
    let before = disk.data.clone();
    said();
    assert_eq!(reopened(&mut disk).0, SetupStep::Fail(Status::IoError));
    assert_eq!(
        said(),
        ["blocks 0 and 1 hold no header, but the MAC table (block 2) is this key's: the headers were wiped; not formatted, nothing written; every request of the disk fails"]
    );
    assert!(disk.data == before, "nothing written");
}

#[test]
fn a_disk_of_the_earlier_layout_is_refused_and_nothing_is_written() {
    // Version 0: the table from block 1, no backup. Its header is this
    // key's, so it would pass; block 1 must not be taken for a backup.
    let (mut disk, _) = written_and_flushed();
    let b = bounce();
    let f = Integrity::new(Some(KEY), Some(b), say).unwrap();
    let mut old = disk.read(0, 1);
    old[20..24].copy_from_slice(&0u32.to_le_bytes());
    let mac = f.mac(b"head", 0, &old[..32]);
    old[32..64].copy_from_slice(&mac);
    disk.write(0, &old);
    disk.write(1, &disk.read(2, 1));
    let before = disk.data.clone();
    said();
    assert_eq!(reopened(&mut disk).0, SetupStep::Fail(Status::IoError));
    assert_eq!(said(), ["the header is of another layout (version 0, this filter's is 1): not opened, nothing written; every request of the disk fails"]);
    assert!(disk.data == before, "nothing written");
}

#[test]
fn a_format_marks_the_disk_flushes_then_writes_the_table_flushes_then_the_header() {
    // A power cut anywhere must find either no header over a table that
    // never reached the medium, or the mark, which formats again.
    let (_, _, disk) = fresh();
    let table: Vec<Option<u64>> = (2..10).map(Some).collect();
    assert_eq!(disk.setup_log, [&[Some(0), None][..], &table, &[None, Some(0)]].concat());
}

/// Set the filter up on `disk`, the power cut after `steps` of the
/// setup's writes and flushes (the rest never happen).
fn set_up_cut(disk: &mut Disk, steps: usize) {
    let b = bounce();
    let mut f = Integrity::new(Some(KEY), Some(b), say).unwrap();
    if let Some(done) = set_up_until(&mut f, b, disk, steps) {
        panic!("set up before the cut: {done:?}");
    }
}

#[test]
fn a_format_cut_short_anywhere_formats_again_at_the_next_start() {
    // The first format's steps: the mark, a flush, 8 table blocks, a
    // flush, the header (12).
    for steps in 0..12 {
        let mut disk = Disk::new(1000);
        set_up_cut(&mut disk, steps);
        said();
        let (step, back) = reopened(&mut disk);
        assert_eq!(step, SetupStep::Ready { first: FIRST, blocks: 990 }, "cut after {steps} steps: {:?}", said());
        assert!(back.unwrap().iter().all(|&x| x == 0), "cut after {steps} steps");
        let said = said();
        let again = said.iter().any(|l| l == "a format was cut short: formatting again");
        assert_eq!(again, steps >= 1, "cut after {steps} steps: {said:?}");
    }
}

#[test]
fn a_disk_whose_headers_were_wiped_after_its_first_128_blocks_were_written_is_not_formatted() {
    // Then its first table block holds no "never written" entry: the
    // data blocks it covers are read, and their MACs found in it.
    let (mut f, b, mut disk) = fresh();
    for blk in 0..128 {
        assert_eq!(request(&mut f, b, &mut disk, Op::Write, blk, 1, &Buffer(RefCell::new(pattern(blk, 9))), FIRST), Status::Ok);
    }
    assert_eq!(request(&mut f, b, &mut disk, Op::Write, 300, 1, &Buffer(RefCell::new(pattern(300, 3))), FIRST), Status::Ok);
    assert_eq!(request(&mut f, b, &mut disk, Op::Flush, 0, 0, &Buffer(RefCell::new(Vec::new())), FIRST), Status::Ok);
    disk.write(0, &[0; 2 * BLOCK]);
    // (One of them changed behind the filter too: the others still tell.)
    disk.write(FIRST, &pattern(0, 1));
    let before = disk.data.clone();
    said();
    assert_eq!(reopened(&mut disk).0, SetupStep::Fail(Status::IoError));
    assert_eq!(
        said(),
        ["blocks 0 and 1 hold no header, but the MAC table (block 2) is this key's: the headers were wiped; not formatted, nothing written; every request of the disk fails"]
    );
    assert!(disk.data == before, "nothing written");
}

#[test]
fn a_disk_grown_since_its_format_keeps_its_layout_and_says_so() {
    let (mut disk, data) = written_and_flushed();
    disk.blocks = 2000;
    said();
    let (step, back) = reopened(&mut disk);
    assert_eq!(step, SetupStep::Ready { first: FIRST, blocks: 990 });
    assert_eq!(back.as_deref(), Some(&data[..]));
    assert_eq!(said(), ["the disk has 2000 blocks, more than when it was formatted: its last 1000 are not used", "990 blocks, checked against 8 blocks of MACs"]);
}
