use super::*;
use blk::filter::{DataError, Hook};
use std::cell::RefCell;
use std::collections::HashMap;

type Small = Arena<8, 16>;

fn arena() -> Box<Small> {
    Box::new(Arena::new())
}

fn quiet(_: fmt::Arguments) {}

fn io(hook: Hook, op: Op, block: u64, count: u32, id: u32) -> Io {
    Io { hook, op, client: 0, position: 0, block, count, grant: 1, id, state: 0, side: None }
}

/// The contents a block has for a tag: the tag in every word.
fn content(tag: u64) -> [u8; BLOCK] {
    let mut d = [0; BLOCK];
    for w in d.chunks_mut(8) {
        w.copy_from_slice(&tag.to_le_bytes());
    }
    d
}

fn tag_of(d: &[u8]) -> u64 {
    let t = u64::from_le_bytes(d[..8].try_into().unwrap());
    assert!(d.chunks(8).all(|w| w == t.to_le_bytes()), "a block is one tag throughout");
    t
}

/// Each request's data, by request id, as the grants of the server would
/// reach it.
#[derive(Default)]
struct Buffers {
    bufs: RefCell<HashMap<u32, Vec<u8>>>,
    /// Refuse writes, as a read-only grant does.
    read_only: bool,
}

impl Buffers {
    fn set(&self, id: u32, bytes: Vec<u8>) {
        self.bufs.borrow_mut().insert(id, bytes);
    }
    fn get(&self, id: u32) -> Vec<u8> {
        self.bufs.borrow()[&id].clone()
    }
}

impl RequestData for Buffers {
    fn read(&self, io: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
        let bufs = self.bufs.borrow();
        let b = bufs.get(&io.id).ok_or(DataError::NoAccess)?;
        let at = offset as usize;
        out.copy_from_slice(b.get(at..at + out.len()).ok_or(DataError::OutOfRange)?);
        Ok(())
    }
    fn write(&self, io: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
        if self.read_only {
            return Err(DataError::ReadOnly);
        }
        let mut bufs = self.bufs.borrow_mut();
        let b = bufs.get_mut(&io.id).ok_or(DataError::NoAccess)?;
        let at = offset as usize;
        b.get_mut(at..at + data.len()).ok_or(DataError::OutOfRange)?.copy_from_slice(data);
        Ok(())
    }
}

fn ok(count: u32) -> Completion {
    Completion { status: Status::Ok, count }
}

/// Read `block` through the cache, missing: pre, the disk's `tag`, post.
fn read_miss(c: &mut Cache<'_>, d: &Buffers, block: u64, tag: u64, id: u32) {
    d.set(id, vec![0; BLOCK]);
    let mut state = 0;
    assert_eq!(c.pre(&io(Hook::Pre, Op::Read, block, 1, id), d, &mut state), Verdict::Continue, "block {block} misses");
    d.set(id, content(tag).to_vec());
    c.post(&Io { state, ..io(Hook::Post, Op::Read, block, 1, id) }, ok(1), d);
}

/// Read `block` through the cache; its tag if it hit.
fn read_hit(c: &mut Cache<'_>, d: &Buffers, block: u64, id: u32) -> Option<u64> {
    d.set(id, vec![0; BLOCK]);
    match c.pre(&io(Hook::Pre, Op::Read, block, 1, id), d, &mut 0) {
        Verdict::Complete { status: Status::Ok, count: 1 } => Some(tag_of(&d.get(id))),
        Verdict::Continue => None,
        v => panic!("{v:?}"),
    }
}

#[test]
fn the_size_params_are_checked() {
    assert_eq!(parse_blocks(None, None, MAX_BLOCKS), Ok(DEFAULT_BLOCKS));
    assert_eq!(parse_blocks(None, None, 8), Ok(8), "the default never passes the arena");
    assert_eq!(parse_blocks(Some(" 2048 "), None, MAX_BLOCKS), Ok(2048));
    assert_eq!(parse_blocks(Some("1"), None, MAX_BLOCKS), Ok(1));
    for bad in ["0", "2049", "-1", "1k", "", "4 KiB", "+5"] {
        assert!(parse_blocks(Some(bad), None, MAX_BLOCKS).is_err(), "{bad}");
    }
    let larger = Err("the cache is larger than this filter's memory (at most 2048 blocks, 8 MiB)");
    assert_eq!(parse_blocks(Some("99999999999999999999999"), None, MAX_BLOCKS), larger, "too large, not \"not a number\"");
    // Or in bytes.
    for (size, blocks) in [("4M", 1024), ("4MiB", 1024), ("8M", 2048), ("4096", 1), ("512K", 128), ("64 KiB", 16), ("4m", 1024), ("512k", 128), ("2mib", 512)] {
        assert_eq!(parse_blocks(None, Some(size), MAX_BLOCKS), Ok(blocks), "{size}");
    }
    for bad in ["9M", "1G", "1g", "4097", "1000", "0", "4T", "M", "", "99999999999999999999", "+4M"] {
        assert!(parse_blocks(None, Some(bad), MAX_BLOCKS).is_err(), "{bad}");
    }
    for huge in ["99999999999G", "99999999999999999999", "17179869184G"] {
        assert_eq!(parse_blocks(None, Some(huge), MAX_BLOCKS), larger, "{huge}");
    }
    assert!(parse_blocks(Some("16"), Some("64K"), MAX_BLOCKS).is_err(), "one or the other");
    let mut a = arena();
    assert!(Cache::new(Some("9"), None, true, &mut a, quiet, 0).is_err(), "more than the arena holds");
    assert!(Cache::new(None, None, false, &mut a, quiet, 0).is_err(), "a cache needs a read-write grant");
    assert_eq!(Cache::new(Some("5"), None, true, &mut a, quiet, 0).unwrap().capacity(), 5);
}

#[test]
fn the_least_recently_used_block_goes_first_and_the_capacity_holds() {
    let mut a = arena();
    let mut c = Cache::new(Some("3"), None, true, &mut a, quiet, 0).unwrap();
    let d = Buffers::default();
    for b in [10, 11, 12] {
        read_miss(&mut c, &d, b, 100 + b, 1);
    }
    assert_eq!(c.lru_order().collect::<Vec<_>>(), [12, 11, 10]);
    assert_eq!(read_hit(&mut c, &d, 10, 2), Some(110), "a hit makes 10 the most recent");
    assert_eq!(c.lru_order().collect::<Vec<_>>(), [10, 12, 11]);
    read_miss(&mut c, &d, 13, 113, 3);
    assert_eq!(c.lru_order().collect::<Vec<_>>(), [13, 10, 12], "11 was least recently used");
    assert_eq!((c.len(), c.stats.evicted), (3, 1));
    for b in 20..40 {
        read_miss(&mut c, &d, b, b, 4);
        assert!(c.len() <= 3);
    }
    assert_eq!(c.lru_order().collect::<Vec<_>>(), [39, 38, 37]);
    assert!(!c.contains(13) && c.contains(38));
    // Blocks whose hashes collide still come and go one by one.
    let shift = 64 - 16u64.trailing_zeros();
    let same: Vec<u64> = (0..10_000u64).filter(|b| b.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift == 0).take(5).collect();
    for &b in &same {
        read_miss(&mut c, &d, b, b + 1, 5);
    }
    assert_eq!(c.lru_order().collect::<Vec<_>>(), [same[4], same[3], same[2]]);
    c.invalidate(same[3]);
    assert_eq!(c.lru_order().collect::<Vec<_>>(), [same[4], same[2]]);
    assert_eq!(read_hit(&mut c, &d, same[2], 6), Some(same[2] + 1));
    assert_eq!(read_hit(&mut c, &d, same[3], 6), None);
}

#[test]
fn hits_and_misses_are_counted_per_request() {
    let mut a = arena();
    let mut c = Cache::new(Some("8"), None, true, &mut a, quiet, 0).unwrap();
    let d = Buffers::default();
    // A two-block read misses, fills both; then it hits whole.
    d.set(1, vec![0; 2 * BLOCK]);
    let mut state = 0;
    assert_eq!(c.pre(&io(Hook::Pre, Op::Read, 4, 2, 1), &d, &mut state), Verdict::Continue);
    d.set(1, [content(7), content(8)].concat());
    assert_eq!(c.post(&Io { state, ..io(Hook::Post, Op::Read, 4, 2, 1) }, ok(2), &d), Verdict::Continue);
    d.set(2, vec![0; 2 * BLOCK]);
    assert_eq!(c.pre(&io(Hook::Pre, Op::Read, 4, 2, 2), &d, &mut 0), Verdict::Complete { status: Status::Ok, count: 2 });
    assert_eq!(d.get(2), [content(7), content(8)].concat());
    // One block of three missing: the whole read goes down.
    assert_eq!(c.pre(&io(Hook::Pre, Op::Read, 4, 3, 3), &d, &mut 0), Verdict::Continue);
    assert_eq!((c.stats.hits, c.stats.misses, c.stats.filled), (1, 2, 2));
    // Flushes pass, and report.
    assert_eq!(c.pre(&io(Hook::Pre, Op::Flush, 0, 0, 4), &d, &mut 0), Verdict::Continue);
}

#[test]
fn a_grant_it_cannot_write_makes_a_miss_not_a_wrong_answer() {
    let mut a = arena();
    let mut c = Cache::new(None, None, true, &mut a, quiet, 0).unwrap();
    let d = Buffers::default();
    read_miss(&mut c, &d, 3, 33, 1);
    let ro = Buffers { read_only: true, ..Buffers::default() };
    ro.set(2, vec![0; BLOCK]);
    assert_eq!(c.pre(&io(Hook::Pre, Op::Read, 3, 1, 2), &ro, &mut 0), Verdict::Continue);
}

#[test]
fn failed_reads_and_writes_leave_nothing_behind() {
    let mut a = arena();
    let mut c = Cache::new(None, None, true, &mut a, quiet, 0).unwrap();
    let d = Buffers::default();
    let mut state = 0;
    c.pre(&io(Hook::Pre, Op::Read, 5, 1, 1), &d, &mut state);
    d.set(1, content(99).to_vec());
    c.post(&Io { state, ..io(Hook::Post, Op::Read, 5, 1, 1) }, Completion { status: Status::IoError, count: 0 }, &d);
    assert!(!c.contains(5), "a failed read fills nothing");
    read_miss(&mut c, &d, 5, 50, 2);
    d.set(3, content(51).to_vec());
    let mut state = 0;
    c.pre(&io(Hook::Pre, Op::Write, 5, 1, 3), &d, &mut state);
    assert!(!c.contains(5), "a write drops the block before it goes down");
    c.post(&Io { state, ..io(Hook::Post, Op::Write, 5, 1, 3) }, Completion { status: Status::IoError, count: 0 }, &d);
    assert!(!c.contains(5), "a failed write inserts nothing");
    let mut state = 0;
    c.pre(&io(Hook::Pre, Op::Write, 5, 1, 3), &d, &mut state);
    c.post(&Io { state, ..io(Hook::Post, Op::Write, 5, 1, 3) }, ok(1), &d);
    assert_eq!(read_hit(&mut c, &d, 5, 4), Some(51), "a write that succeeded is read back from the cache");
}

#[test]
fn a_read_that_overlapped_a_write_fills_nothing() {
    let mut a = arena();
    let mut c = Cache::new(None, None, true, &mut a, quiet, 0).unwrap();
    let d = Buffers::default();
    // The read starts, the write starts and completes, the read's old data
    // comes back last.
    let (mut r, mut w) = (0, 0);
    d.set(1, vec![0; BLOCK]);
    c.pre(&io(Hook::Pre, Op::Read, 7, 1, 1), &d, &mut r);
    d.set(2, content(2).to_vec());
    c.pre(&io(Hook::Pre, Op::Write, 7, 1, 2), &d, &mut w);
    c.post(&Io { state: w, ..io(Hook::Post, Op::Write, 7, 1, 2) }, ok(1), &d);
    d.set(1, content(1).to_vec());
    c.post(&Io { state: r, ..io(Hook::Post, Op::Read, 7, 1, 1) }, ok(1), &d);
    assert_eq!(read_hit(&mut c, &d, 7, 3), Some(2), "the write's data, not the read's");
    // A read that started while a write was in flight, and ended first.
    let (mut r, mut w) = (0, 0);
    d.set(4, content(4).to_vec());
    c.pre(&io(Hook::Pre, Op::Write, 7, 1, 4), &d, &mut w);
    c.pre(&io(Hook::Pre, Op::Read, 7, 1, 5), &d, &mut r);
    d.set(5, content(2).to_vec());
    c.post(&Io { state: r, ..io(Hook::Post, Op::Read, 7, 1, 5) }, ok(1), &d);
    c.post(&Io { state: w, ..io(Hook::Post, Op::Write, 7, 1, 4) }, Completion { status: Status::IoError, count: 0 }, &d);
    assert_eq!(read_hit(&mut c, &d, 7, 6), None, "after the failed write nothing is trusted");
    // Two writes of one block in flight: neither is kept.
    let (mut w1, mut w2) = (0, 0);
    d.set(8, content(8).to_vec());
    d.set(9, content(9).to_vec());
    c.pre(&io(Hook::Pre, Op::Write, 7, 1, 8), &d, &mut w1);
    c.pre(&io(Hook::Pre, Op::Write, 7, 1, 9), &d, &mut w2);
    c.post(&Io { state: w2, ..io(Hook::Post, Op::Write, 7, 1, 9) }, ok(1), &d);
    c.post(&Io { state: w1, ..io(Hook::Post, Op::Write, 7, 1, 8) }, ok(1), &d);
    assert_eq!(read_hit(&mut c, &d, 7, 10), None);
}

#[test]
fn a_post_op_from_before_a_restart_fills_nothing() {
    let d = Buffers::default();
    // A read goes down; the filter is restarted (its memory as in its
    // image, its clock from the counter, later); a write of the block
    // starts and completes; then the old read's post-op comes, with data
    // from before the write.
    let mut a = arena();
    let mut c = Cache::new(None, None, true, &mut a, quiet, 100).unwrap();
    let mut r = 0;
    d.set(1, vec![0; BLOCK]);
    c.pre(&io(Hook::Pre, Op::Read, 2, 1, 1), &d, &mut r);
    let mut a = arena();
    let mut c = Cache::new(None, None, true, &mut a, quiet, 5000).unwrap();
    let mut w = 0;
    d.set(2, content(2).to_vec());
    c.pre(&io(Hook::Pre, Op::Write, 2, 1, 2), &d, &mut w);
    c.post(&Io { state: w, ..io(Hook::Post, Op::Write, 2, 1, 2) }, ok(1), &d);
    d.set(1, content(1).to_vec());
    c.post(&Io { state: r, ..io(Hook::Post, Op::Read, 2, 1, 1) }, ok(1), &d);
    assert_eq!(read_hit(&mut c, &d, 2, 3), Some(2), "the old run's read filled nothing");
    // Nor does a state this run never gave.
    for state in [0, 5000, 1 << 40] {
        c.post(&Io { state, ..io(Hook::Post, Op::Read, 9, 1, 1) }, ok(1), &d);
    }
    assert!(!c.contains(9));
}

/// A small xorshift generator: the model test's traffic, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A request between its pre-op and its post-op.
struct Flight {
    io: Io,
    /// What the disk answered, once it ran the request.
    done: Option<Completion>,
    /// For a read: what the disk gave.
    read: Vec<u64>,
}

/// The model: a disk of `DISK` blocks, each holding a tag; a server that
/// runs pre-ops, the disk and post-ops of several clients' requests in any
/// interleaving; failures injected below. Every read the cache answers
/// must match the disk, except that a block with a write in flight may
/// read as anything it held since the oldest such write started, or as
/// one of those writes' data.
fn model(seed: u64, capacity: &str, steps: u32) -> Stats {
    // More blocks than `touched` entries: blocks 32 apart share one.
    const DISK: u64 = 40;
    let mut rng = Rng(seed | 1);
    let mut a: Box<Arena<16, 32>> = Box::new(Arena::new());
    let mut c = Cache::new(Some(capacity), None, true, &mut a, quiet, 0).unwrap();
    let data = Buffers::default();
    let mut disk: Vec<u64> = (0..DISK).map(|b| 1_000_000 + b).collect();
    // Per block: what it held since the oldest write in flight started
    // (empty without one), and the writes in flight.
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); DISK as usize];
    let mut writing: Vec<Vec<u32>> = vec![Vec::new(); DISK as usize];
    let mut flights: Vec<Flight> = Vec::new();
    let mut next_id = 1u32;
    let mut next_tag = 1u64;
    // How many requests the server has in flight at most: from one at a
    // time to many.
    let depth = 1 + rng.below(12) as usize;
    let mut runs = 0u64;
    let mut total = Stats::default();
    for step in 0..steps {
        // Now and then the filter is restarted: its memory as in its
        // image, its clock from a later counter value; requests in flight
        // come back to the new run.
        if rng.chance(1) && rng.chance(20) {
            runs += 1;
            add(&mut total, &c.stats);
            c = Cache::new(Some(capacity), None, true, &mut a, quiet, runs << 32).unwrap();
        }
        let action = rng.below(10);
        if (action < 4 && flights.len() < depth) || flights.is_empty() {
            // A new request from one of four clients.
            let id = next_id;
            next_id += 1;
            let op = match rng.below(10) {
                0..=5 => Op::Read,
                6..=8 => Op::Write,
                _ => Op::Flush,
            };
            let (block, count) = if op == Op::Flush {
                (0, 0)
            } else {
                // Mostly a few hot blocks (hits, and overlaps), with
                // blocks that share a `touched` entry among them.
                let count = 1 + rng.below(3) as u32;
                let span = if rng.chance(70) { 10 } else { DISK - u64::from(count) + 1 };
                let first = rng.below(span);
                (if rng.chance(20) && first + 32 + u64::from(count) <= DISK { first + 32 } else { first }, count)
            };
            let io = Io { client: rng.below(4) as u8, ..io(Hook::Pre, op, block, count, id) };
            let blocks = block..block + u64::from(count);
            match op {
                Op::Write => {
                    let tags: Vec<u64> = blocks.clone().map(|_| {
                        next_tag += 1;
                        next_tag
                    }).collect();
                    data.set(id, tags.iter().flat_map(|&t| content(t)).collect());
                    for (b, &t) in blocks.clone().zip(&tags) {
                        let b = b as usize;
                        if writing[b].is_empty() {
                            seen[b] = vec![disk[b]];
                        }
                        seen[b].push(t);
                        writing[b].push(id);
                    }
                }
                // A read's buffer starts as junk the cache must overwrite.
                _ => data.set(id, vec![0xee; count as usize * BLOCK]),
            }
            let mut state = 0;
            match c.pre(&io, &data, &mut state) {
                Verdict::Continue => flights.push(Flight { io: Io { state, ..io }, done: None, read: Vec::new() }),
                Verdict::Complete { status: Status::Ok, count: n } => {
                    assert_eq!((op, n), (Op::Read, count), "only whole reads complete in the cache");
                    let got = data.get(id);
                    for (k, b) in blocks.enumerate() {
                        let tag = tag_of(&got[k * BLOCK..(k + 1) * BLOCK]);
                        let b = b as usize;
                        let fine = if writing[b].is_empty() { tag == disk[b] } else { seen[b].contains(&tag) };
                        assert!(fine, "seed {seed} step {step}: a hit on block {b} gave {tag}; the disk holds {}, in flight: {:?}", disk[b], seen[b]);
                    }
                }
                v => panic!("seed {seed} step {step}: {v:?}"),
            }
        } else if action < 7 {
            // The disk runs a request, in any order; some fail.
            let waiting: Vec<usize> = (0..flights.len()).filter(|&i| flights[i].done.is_none()).collect();
            let Some(&i) = waiting.get(rng.below(waiting.len().max(1) as u64) as usize) else { continue };
            let f = &mut flights[i];
            let fails = rng.chance(15);
            let blocks = f.io.block..f.io.block + u64::from(f.io.count);
            match f.io.op {
                Op::Read if fails => data.set(f.io.id, vec![0xdd; f.io.count as usize * BLOCK]),
                Op::Read => {
                    f.read = blocks.map(|b| disk[b as usize]).collect();
                    data.set(f.io.id, f.read.iter().flat_map(|&t| content(t)).collect());
                }
                Op::Write => {
                    let bytes = data.get(f.io.id);
                    // A failed write may or may not have reached the
                    // medium, block by block: the cache must not care.
                    for (k, b) in blocks.enumerate() {
                        if !fails || rng.chance(50) {
                            let tag = tag_of(&bytes[k * BLOCK..(k + 1) * BLOCK]);
                            disk[b as usize] = tag;
                            if !writing[b as usize].is_empty() {
                                seen[b as usize].push(tag);
                            }
                        }
                    }
                }
                _ => {}
            }
            f.done = Some(if fails { Completion { status: Status::IoError, count: 0 } } else { ok(f.io.count) });
        } else {
            // A post-op, in any order.
            let ran: Vec<usize> = (0..flights.len()).filter(|&i| flights[i].done.is_some()).collect();
            let Some(&i) = ran.get(rng.below(ran.len().max(1) as u64) as usize) else { continue };
            let f = flights.swap_remove(i);
            let done = f.done.unwrap();
            assert_eq!(c.post(&Io { hook: Hook::Post, ..f.io }, done, &data), Verdict::Continue);
            let blocks = f.io.block..f.io.block + u64::from(f.io.count);
            match f.io.op {
                Op::Read if done.status == Status::Ok => {
                    let got = data.get(f.io.id);
                    let tags: Vec<u64> = (0..f.io.count as usize).map(|k| tag_of(&got[k * BLOCK..(k + 1) * BLOCK])).collect();
                    assert_eq!(tags, f.read, "the cache leaves a read's data alone");
                }
                Op::Write => {
                    for b in blocks {
                        let w = &mut writing[b as usize];
                        w.retain(|&id| id != f.io.id);
                        if w.is_empty() {
                            seen[b as usize].clear();
                        }
                    }
                }
                _ => {}
            }
        }
        assert!(c.len() <= c.capacity());
    }
    add(&mut total, &c.stats);
    total
}

fn add(total: &mut Stats, s: &Stats) {
    total.hits += s.hits;
    total.misses += s.misses;
    total.filled += s.filled;
    total.skipped += s.skipped;
    total.evicted += s.evicted;
}

#[test]
fn random_traffic_never_reads_what_the_disk_does_not_hold() {
    let mut total = Stats::default();
    for seed in 0..120u64 {
        let capacity = ["4", "8", "16"][seed as usize % 3];
        add(&mut total, &model(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ seed, capacity, 2000));
    }
    // The traffic exercised what it is meant to.
    assert!(total.hits > 5_000 && total.misses > 5_000, "{total:?}");
    assert!(total.skipped > 1_000 && total.evicted > 1_000, "{total:?}");
}
