//! The clone against a model of the server: its own disk and the base as
//! byte vectors, setup steps, redirects and side I/O carried out as the
//! server does (`blk::filter`'s module docs).

use super::*;
use blk::filter::{DataError, Hook};
use std::cell::RefCell;

fn quiet(_: fmt::Arguments) {}

/// A request's data: the client's buffer.
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

/// The clone's own disk (sparse: unwritten blocks read as zeros) and the
/// base, whose block `b` is `block_of(b, 0xb0)`.
struct World {
    own: std::collections::BTreeMap<u64, Vec<u8>>,
    own_blocks: u64,
    bounce: Shared<'static>,
    /// Side writes to the own disk, by block.
    side_writes: Vec<u64>,
    /// The setup's writes (their first block) and flushes (`None`), in
    /// order.
    setup_log: Vec<Option<u64>>,
}

fn block_of(b: u64, tag: u8) -> Vec<u8> {
    (0..BLOCK).map(|i| (b as u8).wrapping_mul(7) ^ tag ^ (i as u8)).collect()
}

impl World {
    fn new(own_blocks: u64) -> World {
        let bounce = Shared::from_words(Box::leak(vec![0u64; BOUNCE as usize / 8].into_boxed_slice()));
        World { own: Default::default(), own_blocks, bounce, side_writes: Vec::new(), setup_log: Vec::new() }
    }

    fn own_block(&self, b: u64) -> Vec<u8> {
        self.own.get(&b).cloned().unwrap_or_else(|| vec![0; BLOCK])
    }

    /// Blocks `block .. block + count` of the own disk.
    fn own_read(&self, block: u64, count: u32) -> Vec<u8> {
        (block..block + u64::from(count)).flat_map(|b| self.own_block(b)).collect()
    }

    fn own_write(&mut self, block: u64, data: &[u8]) {
        for (i, d) in data.chunks(BLOCK).enumerate() {
            self.own.insert(block + i as u64, d.to_vec());
        }
    }

    /// The bounce buffer, as the filter and the server both reach it.
    fn shared(&self) -> Shared<'static> {
        self.bounce
    }

    /// Run the setup dialogue to its end, as the server does, with a base
    /// larger than any clone here.
    fn set_up(&mut self, f: &mut Overlay<'_>) -> SetupStep {
        self.set_up_linked(f, 1 << 30)
    }

    /// The same, the base (the linked disk) `linked` blocks large.
    fn set_up_linked(&mut self, f: &mut Overlay<'_>, linked: u64) -> SetupStep {
        let below = self.own_blocks;
        let mut last = None;
        for round in 0.. {
            let bounce = self.shared();
            match f.setup(&SetupCall { round, below, last, linked }, Some(&bounce)) {
                SetupStep::Read { block, count, offset } => {
                    bounce.write_bytes(offset as usize, &self.own_read(block, count)).unwrap();
                    last = Some(Completion { status: Status::Ok, count });
                }
                SetupStep::Write { block, count, offset } => {
                    let mut data = vec![0; count as usize * BLOCK];
                    bounce.read_bytes(offset as usize, &mut data).unwrap();
                    self.own_write(block, &data);
                    self.setup_log.push(Some(block));
                    last = Some(Completion { status: Status::Ok, count });
                }
                SetupStep::Flush => {
                    self.setup_log.push(None);
                    last = Some(Completion { status: Status::Ok, count: 0 });
                }
                SetupStep::Again => last = None,
                done => return done,
            }
        }
        unreachable!()
    }

    /// One request through the filter as the server carries it: `first`
    /// is the window the filter offered. Returns the status.
    fn request(&mut self, f: &mut Overlay<'_>, op: Op, block: u64, count: u32, data: &Buffer, first: u64) -> Status {
        let io = Io { hook: Hook::Pre, op, client: 0, position: 0, block, count, grant: 1, id: 5, state: 0, side: None };
        let mut state = 0;
        let mut side = None;
        let mut done = loop {
            match f.pre(&Io { state, side, ..io }, data, &mut state) {
                Verdict::Continue => break self.below(op, first + block, count, data),
                Verdict::Redirect { link: 0, block } => break self.from_base(op, block, count, data),
                Verdict::SideIo { op, block, count, page } => side = Some(self.side(op, block, count, page)),
                Verdict::Fail(s) => return s,
                v => panic!("pre: {v:?}"),
            }
        };
        side = None;
        loop {
            match f.post_state(&Io { hook: Hook::Post, state, side, ..io }, done, data, &mut state) {
                Verdict::Continue => return done.status,
                Verdict::Fail(s) => return s,
                Verdict::Complete { status, .. } => return status,
                Verdict::SideIo { op, block, count, page } => side = Some(self.side(op, block, count, page)),
                Verdict::Redirect { link: 0, block } => done = self.from_base(op, block, count, data),
                v => panic!("post: {v:?}"),
            }
        }
    }

    fn below(&mut self, op: Op, block: u64, count: u32, data: &Buffer) -> Completion {
        let len = count as usize * BLOCK;
        match op {
            Op::Read => data.0.borrow_mut()[..len].copy_from_slice(&self.own_read(block, count)),
            Op::Write => {
                let d = data.0.borrow()[..len].to_vec();
                self.own_write(block, &d);
            }
            _ => {}
        }
        Completion { status: Status::Ok, count }
    }

    fn from_base(&mut self, op: Op, block: u64, count: u32, data: &Buffer) -> Completion {
        assert_eq!(op, Op::Read, "only reads go to the base");
        let base: Vec<u8> = (block..block + u64::from(count)).flat_map(|b| block_of(b, 0xb0)).collect();
        data.0.borrow_mut()[..base.len()].copy_from_slice(&base);
        Completion { status: Status::Ok, count }
    }

    fn side(&mut self, op: Op, block: u64, count: u32, page: u16) -> Completion {
        let bounce = self.shared();
        let offset = page as usize * BLOCK;
        match op {
            Op::Read => bounce.write_bytes(offset, &self.own_read(block, count)).unwrap(),
            Op::Write => {
                let mut data = vec![0; count as usize * BLOCK];
                bounce.read_bytes(offset, &mut data).unwrap();
                self.own_write(block, &data);
                self.side_writes.push(block);
            }
            _ => {}
        }
        Completion { status: Status::Ok, count }
    }
}

fn buffer(blocks: u32) -> Buffer {
    Buffer(RefCell::new(vec![0; blocks as usize * BLOCK]))
}

#[test]
fn a_fresh_disk_is_formatted_and_reads_the_base_until_written() {
    let mut w = World::new(1000);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut f), SetupStep::Ready { first: 3, blocks: 997 });
    assert_eq!(&w.own_block(0)[..16], MAGIC);
    assert_eq!(w.own_block(0), w.own_block(1), "the backup is the header");
    let first = 3;
    let data = buffer(4);
    assert_eq!(w.request(&mut f, Op::Read, 10, 4, &data, first), Status::Ok);
    assert!(data.0.borrow()[..] == (10..14).flat_map(|b| block_of(b, 0xb0)).collect::<Vec<u8>>()[..], "unwritten: the base's");
    // Write blocks 11 and 12; read 10..14: mixed.
    let mine = Buffer(RefCell::new([block_of(11, 0xc1), block_of(12, 0xc1)].concat()));
    assert_eq!(w.request(&mut f, Op::Write, 11, 2, &mine, first), Status::Ok);
    assert_eq!(w.request(&mut f, Op::Read, 10, 4, &data, first), Status::Ok);
    let want = [block_of(10, 0xb0), block_of(11, 0xc1), block_of(12, 0xc1), block_of(13, 0xb0)].concat();
    assert!(data.0.borrow()[..] == want[..], "a mixed read: the clone's blocks over the base's");
    assert_eq!(w.request(&mut f, Op::Read, 11, 2, &data, first), Status::Ok);
    assert!(data.0.borrow()[..2 * BLOCK] == want[BLOCK..3 * BLOCK]);
    assert_eq!((f.counts, f.changes.written), (Counts { own: 1, base: 1, mixed: 1 }, 0));
    // (The base is never written: `from_base` takes reads only.)
}

#[test]
fn a_flush_writes_the_changed_map_and_a_reboot_keeps_it() {
    let mut w = World::new(70_000);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    // 69,998 blocks past the header and backup need 3 map blocks.
    assert_eq!(w.set_up(&mut f), SetupStep::Ready { first: 5, blocks: 69_995 });
    let first = 5;
    let one = Buffer(RefCell::new(block_of(40_000, 0xc2)));
    assert_eq!(w.request(&mut f, Op::Write, 40_000, 1, &one, first), Status::Ok);
    assert_eq!(w.request(&mut f, Op::Flush, 0, 0, &buffer(0), first), Status::Ok);
    assert_eq!(w.side_writes, [3], "the second map block, which maps block 40,000");
    assert_eq!(w.request(&mut f, Op::Flush, 0, 0, &buffer(0), first), Status::Ok);
    assert_eq!(w.side_writes, [3], "nothing changed since");
    // Unflushed: lost on a reboot (the model's disk keeps what went down).
    let two = Buffer(RefCell::new(block_of(5, 0xc3)));
    assert_eq!(w.request(&mut f, Op::Write, 5, 1, &two, first), Status::Ok);

    // (A new PD: its bounce buffer starts zeroed.)
    w.bounce = Shared::from_words(Box::leak(vec![0u64; BOUNCE as usize / 8].into_boxed_slice()));
    let mut again = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut again), SetupStep::Ready { first: 5, blocks: 69_995 });
    let data = buffer(1);
    assert_eq!(w.request(&mut again, Op::Read, 40_000, 1, &data, first), Status::Ok);
    assert!(data.0.borrow()[..] == block_of(40_000, 0xc2)[..], "flushed: the clone's");
    assert_eq!(w.request(&mut again, Op::Read, 5, 1, &data, first), Status::Ok);
    assert!(data.0.borrow()[..] == block_of(5, 0xb0)[..], "not flushed: the base's, never garbage");
}

/// What the filter says, for the tests that look.
static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
fn keep(args: fmt::Arguments) {
    SAID.lock().unwrap().push(args.to_string());
}
/// What it said since the last call (tests that look at it run one at a
/// time: `SAID_BY`).
fn said() -> Vec<String> {
    std::mem::take(&mut *SAID.lock().unwrap())
}
static SAID_BY: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_disk_with_a_known_signature_or_no_base_is_not_made_a_clone_and_other_data_is() {
    let _one = SAID_BY.lock().unwrap_or_else(|e| e.into_inner());
    // (An image with a partition table, say, or a LUKS volume: a format
    // would lose it.)
    let mut mbr = World::new(100);
    let mut sector = vec![0u8; BLOCK];
    sector[510..512].copy_from_slice(&[0x55, 0xaa]);
    mbr.own_write(0, &sector);
    let mut luks = World::new(100);
    let mut head = vec![0u8; BLOCK];
    head[..6].copy_from_slice(b"LUKS\xba\xbe");
    luks.own_write(0, &head);
    for (w, what) in [(&mut mbr, "a partition table or boot sector (a FAT or NTFS file system, an MBR)"), (&mut luks, "a LUKS header")] {
        let before = w.own.clone();
        let mut f = Overlay::new(Some(w.shared()), keep);
        said();
        assert_eq!(w.set_up(&mut f), SetupStep::Fail(Status::IoError));
        let lines = said();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(&format!("blocks 0 and 1 hold {what}, not a clone header: not formatted, nothing written")), "{lines:?}");
        assert!(lines[0].contains("dd if=/dev/zero of=IMAGE bs=4096 count=2 conv=notrunc"), "{lines:?}");
        assert!(w.own == before && w.setup_log.is_empty(), "nothing written");
    }
    // Data nothing recognises (a fresh LUKS payload, through crypt): the
    // clone's, and its old blocks are not read.
    let mut data = World::new(100);
    for b in 0..100 {
        data.own_write(b, &block_of(b, 0x5a));
    }
    let mut f = Overlay::new(Some(data.shared()), keep);
    said();
    assert_eq!(data.set_up(&mut f), SetupStep::Ready { first: 3, blocks: 97 });
    assert_eq!(said()[0], "blocks 0 and 1 hold no clone header, and nothing a tool would recognise: the disk becomes the clone's, and what it held is not read");
    let read = buffer(1);
    assert_eq!(data.request(&mut f, Op::Read, 7, 1, &read, 3), Status::Ok);
    assert!(read.0.borrow()[..] == block_of(7, 0xb0)[..], "the base's block, not what the disk held");
    // A blank disk whose base has no blocks (no device): no clone of
    // nothing, which would keep the whole disk's blocks past any base
    // given later.
    let mut blank = World::new(100);
    let mut f = Overlay::new(Some(blank.shared()), keep);
    said();
    assert_eq!(blank.set_up_linked(&mut f, 0), SetupStep::Fail(Status::IoError));
    assert_eq!(said(), ["its base disk (its <link>) has no blocks (no device, or its chain failed): no clone made, nothing written; every request of the disk fails"]);
    assert!(blank.setup_log.is_empty(), "nothing written");
}

#[test]
fn a_clone_larger_than_its_base_offers_no_more_blocks_than_the_base_has() {
    let _one = SAID_BY.lock().unwrap_or_else(|e| e.into_inner());
    let mut w = World::new(1000);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up_linked(&mut f, 600), SetupStep::Ready { first: 3, blocks: 600 });
    // Opened again: the header says 600, whatever the base has now; a
    // base that shrank caps what the clients see, and one gone is said.
    for (base, offered, line) in [
        (1 << 30, 600, None),
        (400, 400, Some("the base has 400 blocks, fewer than the clone's 600: its clients see the first 400")),
        (0, 600, Some("its base disk (its <link>) has no blocks (no device, or its chain failed): reads of the blocks the clone never wrote fail")),
    ] {
        let mut again = Overlay::new(Some(World::new(1).shared()), keep);
        let mut w2 = World { own: w.own.clone(), own_blocks: 1000, bounce: again.bounce.unwrap(), side_writes: Vec::new(), setup_log: Vec::new() };
        said();
        assert_eq!(w2.set_up_linked(&mut again, base), SetupStep::Ready { first: 3, blocks: offered });
        assert_eq!(again.blocks(), Some(offered));
        let lines = said();
        assert_eq!(lines[0], "a clone of 600 blocks, 0 of them its own");
        assert_eq!(lines.get(1).map(String::as_str), line);
    }
}

#[test]
fn a_clone_disk_as_large_as_its_base_says_which_blocks_it_cannot_reach() {
    let _one = SAID_BY.lock().unwrap_or_else(|e| e.into_inner());
    said();
    let mut w = World::new(1000);
    let mut f = Overlay::new(Some(w.shared()), keep);
    assert_eq!(w.set_up_linked(&mut f, 1000), SetupStep::Ready { first: 3, blocks: 997 });
    assert_eq!(
        SAID.lock().unwrap()[..],
        ["formatting a clone of 997 blocks (1 map blocks); the base has 1000: its last 3 are out of the clone's reach (a clone disk of 1003 blocks would reach them all)"]
    );
}

#[test]
fn a_damaged_header_and_backup_fail_the_disk() {
    let mut w = World::new(100);
    let mut header = vec![0; BLOCK];
    header[..16].copy_from_slice(MAGIC);
    header[16] = 200;
    w.own_write(0, &header);
    w.own_write(1, &header);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut f), SetupStep::Fail(Status::IoError));
}

/// A clone of 1000 blocks that wrote block 9 and flushed.
fn written_clone() -> World {
    let mut w = World::new(1000);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut f), SetupStep::Ready { first: 3, blocks: 997 });
    let mine = Buffer(RefCell::new(block_of(9, 0xc4)));
    assert_eq!(w.request(&mut f, Op::Write, 9, 1, &mine, 3), Status::Ok);
    assert_eq!(w.request(&mut f, Op::Flush, 0, 0, &buffer(0), 3), Status::Ok);
    w
}

/// Block 9 read by a new filter on `w`'s disk.
fn block_9_again(w: &mut World) -> Option<Vec<u8>> {
    w.bounce = Shared::from_words(Box::leak(vec![0u64; BOUNCE as usize / 8].into_boxed_slice()));
    let mut f = Overlay::new(Some(w.shared()), quiet);
    if w.set_up(&mut f) != (SetupStep::Ready { first: 3, blocks: 997 }) {
        return None;
    }
    let data = buffer(1);
    assert_eq!(w.request(&mut f, Op::Read, 9, 1, &data, 3), Status::Ok);
    let bytes = data.0.borrow().clone();
    Some(bytes)
}

#[test]
fn a_header_damaged_in_one_bit_is_put_back_and_the_clone_keeps_its_blocks() {
    // Formatted again, it would read block 9 from the base: wrong data.
    for byte in [0, 16, 24, 35] {
        let mut w = written_clone();
        let mut h = w.own_block(0);
        h[byte] ^= 1;
        w.own_write(0, &h);
        assert_eq!(block_9_again(&mut w).as_deref(), Some(&block_of(9, 0xc4)[..]), "byte {byte}");
        assert_eq!(w.own_block(0), w.own_block(1), "byte {byte}: put back");
    }
    // The backup damaged: written again from the header.
    let mut w = written_clone();
    w.own_write(1, &block_of(1, 0x11));
    assert_eq!(block_9_again(&mut w).as_deref(), Some(&block_of(9, 0xc4)[..]));
    assert_eq!(w.own_block(0), w.own_block(1));
    // Both damaged: the disk fails.
    let mut w = written_clone();
    for b in [0, 1] {
        let mut h = w.own_block(b);
        h[24] ^= 1;
        w.own_write(b, &h);
    }
    assert_eq!(block_9_again(&mut w), None);
}

#[test]
fn a_header_and_backup_damaged_in_their_magic_only_are_both_written_again() {
    let mut w = written_clone();
    for b in [0, 1] {
        let mut h = w.own_block(b);
        h[2] ^= 0x20;
        w.own_write(b, &h);
    }
    assert_eq!(block_9_again(&mut w).as_deref(), Some(&block_of(9, 0xc4)[..]), "not formatted: still the clone's block");
    assert_eq!(&w.own_block(0)[..16], MAGIC);
    assert_eq!(w.own_block(0), w.own_block(1));
}

#[test]
fn a_clone_of_the_earlier_layout_is_refused_and_nothing_is_written() {
    let mut w = World::new(100);
    let mut old = vec![0; BLOCK];
    old[..16].copy_from_slice(b"STRATA-OVERLAY-1");
    old[16] = 1;
    old[24] = 90;
    w.own_write(0, &old);
    let before = w.own.clone();
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut f), SetupStep::Fail(Status::IoError));
    assert!(w.own == before, "nothing written");
}

#[test]
fn a_format_flushes_the_map_before_it_writes_the_header() {
    // A power cut between them must find no header over a map that never
    // reached the medium (its old bits would read as the clone's blocks).
    let mut w = World::new(70_000);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut f), SetupStep::Ready { first: 5, blocks: 69_995 });
    assert_eq!(w.setup_log, [Some(2), None, Some(0)], "the map (blocks 2-4), a flush, the header and its backup");
}

#[test]
fn a_flush_flushes_the_data_below_before_it_writes_the_map_that_marks_it() {
    // A device with a volatile cache could put a map write on the medium
    // before the data it marks: after a power cut that block would read as
    // whatever the clone disk held, with status OK.
    let mut w = World::new(1000);
    let mut f = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut f), SetupStep::Ready { first: 3, blocks: 997 });
    assert_eq!(w.request(&mut f, Op::Write, 7, 1, &Buffer(RefCell::new(block_of(7, 0xc1))), 3), Status::Ok);
    let io = Io { hook: Hook::Pre, op: Op::Flush, client: 0, position: 0, block: 0, count: 0, grant: 0, id: 9, state: 0, side: None };
    let (mut state, mut side, mut log) = (0, None, Vec::new());
    loop {
        match f.pre(&Io { state, side, ..io }, &buffer(0), &mut state) {
            Verdict::SideIo { op, block, count, page } => {
                log.push((op, block));
                side = Some(w.side(op, block, count, page));
            }
            Verdict::Continue => break,
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(log, [(Op::Flush, 0), (Op::Write, 2)], "a flush of the disk below, then the map (block 2); then the client's flush goes down");
    // And the map written is the one with block 7 marked: reopened, it reads the write.
    let mut again = Overlay::new(Some(w.shared()), quiet);
    assert_eq!(w.set_up(&mut again), SetupStep::Ready { first: 3, blocks: 997 });
    let data = buffer(1);
    assert_eq!(w.request(&mut again, Op::Read, 7, 1, &data, 3), Status::Ok);
    assert!(data.0.borrow()[..] == block_of(7, 0xc1)[..]);
}
