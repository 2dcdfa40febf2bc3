//! Filter chains against random traffic: 1 to 4 model filters with random
//! hooks, operations, data rights and bounce buffers answer random
//! verdicts (invalid ones too), ask side I/O of their own now and then
//! (`Verdict::SideIo`: a read, write or flush of the disk below them, up
//! to `MAX_SIDE` times per request, invalid ones too) and do the data work
//! a crypt or cache filter does; 1 to 3 clients send good, bad and
//! ordering requests, some in bursts; in one case in four the clients'
//! queues are large enough (64) to take every slot of the in-flight table
//! a client may take, while filters ask side I/O. The driver completes
//! what it gets in any order with `Ok` or `IoError`; filters are stopped
//! at random (and restarted, at most 3 times in a row). In one case in
//! three the server drives a second disk (`LINKED_BLOCKS` blocks, its own
//! driver ring, no clients) with a chain of 0 to 2 model filters of its
//! own, and the first disk's filters with a link level link to it: now
//! and then they redirect a read, write or flush, in a pre-op or a
//! post-op (`Verdict::Redirect`, up to `MAX_REDIRECT` times per request,
//! invalid ones too, side I/O among them). A
//! pre-op's continue or redirect says `NO_POST` now and then. A model
//! follows every request, side I/O and redirect through the chains from
//! what it can observe: the upcalls, the drivers' rings, the answers.
//! (The model's chains offer the whole disk below at every level: no
//! windows, so no block shifts; remaps are tested apart, and random
//! stacks of windows with side I/O by `setup.rs`'s property test.)
//!
//! Checked at every step:
//! 1. every request is answered once, to its client, with its id, and with
//!    the status and count its path gives: a pre-op's complete, fail,
//!    invalid verdict or failed upcall turns it up there; a post-op's
//!    complete or fail rewrites the result, an invalid verdict or failed
//!    upcall makes it `IoError`; a filter that is stopped and not yet
//!    restarted fails it with `IoError` without a call. A redirect verdict
//!    is invalid (`IoError` there) along a link the filter does not have
//!    (any, in a case without a linked disk), or for a read or write
//!    running past the end of the linked disk (or wrapping). A side I/O verdict
//!    is invalid (`IoError` there, as any invalid verdict) for an
//!    operation other than read, write or flush, a read or write of no
//!    blocks, of more than `MAX_SETUP_BLOCKS`, past the end of the bounce
//!    buffer or past the end of the disk below, a flush with a count. Bad
//!    requests are refused with `InvalidRequest` and barriers answered
//!    `Ok`, without reaching a filter or the driver;
//! 2. a request's pre-ops come in increasing chain position and its
//!    post-ops in decreasing position above where it turned, exactly at
//!    the filters that declared that hook and operation, less those whose
//!    valid pre-op verdict said `NO_POST`, each post-op seeing the result
//!    from below (a call may be missing only at a filter that was stopped
//!    meanwhile); a request keeps its slot id;
//! 3. the driver gets only what passed every pre-op: the client's id, its
//!    disk block and count, tag `SLOT_TAG + slot`, its read or write (a
//!    flush as a flush of completed writes) and, as data address, the
//!    lowest substitute's bounce buffer or else the client's buffer; never
//!    more than its rings can answer;
//! 4. a filter without data rights gets no lends and no grants; one with
//!    rights gets, per read or write, a grant naming a lend of exactly the
//!    request's data at its level, with its rights;
//! 5. a write reaches the driver as the client's data XORed with the key
//!    of every filter that substituted it; a read answered `Ok` along a
//!    clean path leaves in the client's buffer the source's block pattern
//!    XORed with the keys of the substituting filters;
//! 6. a client's flush reaches a filter or the driver, and its barrier is
//!    answered, only once its earlier requests are answered (a request
//!    after a barrier or flush starts only then too);
//! 7. at the end, stops cleared and the drivers completing everything,
//!    every request, side I/O and redirect is answered and every slot of
//!    the table is free; a round of the drain (run, the drivers complete
//!    all, the clients take their answers) that moves nothing while a
//!    request is unanswered is a deadlock (the crowded cases: side I/O and
//!    redirects while clients hold every slot they may take);
//! 8. a valid side I/O is a request of its own, in a slot of its own (not
//!    the slot of its request, nor of one that request waits for), and
//!    goes the way a request entering the chain just below the filter that
//!    asked goes: properties 2 to 4, and 1's rules for its result, hold
//!    for it with the filters below only, which see it with client
//!    `SETUP_CLIENT`, the op asked, its block and count (a flush: 0) and,
//!    with data rights, a grant of the asking filter's bounce buffer from
//!    the page asked (or of a lower substitute); the driver gets it with
//!    id 0, that op (a flush as a flush of completed writes), block and
//!    count, tag `SLOT_TAG + slot` and, as data address, that filter's
//!    bounce buffer + page * 4096 or the lowest substitute below it. A
//!    side write carries what the filter put in those pages, XORed with
//!    the keys of the filters below that substituted it; a side read
//!    answered `Ok` along a clean path leaves there the disk's block
//!    pattern XORed likewise. No client is ever answered for a side I/O;
//! 9. once the side I/O is back, whatever its status, the same hook of the
//!    same filter is called again for the request, before anything else
//!    happens to it, with `Io::side` = the side I/O's status and count as
//!    its path gives them (property 1) and `Io::state` = the state word
//!    the filter left with its side I/O verdict (a post-op also sees the
//!    same completion from below again); that call's verdict applies as
//!    usual (another side I/O too). The call may be missing only if the
//!    filter was stopped meanwhile: then the request fails there with
//!    `IoError`. Every other call has no `Io::side`; a pre-op's first call
//!    has state 0, a post-op's first call the state the filter's pre-op
//!    (or its redirect, property 11) left for the request (0 without one);
//! 10. a valid redirect is a request of its own, in a slot of its own (as
//!    in 8), that goes down the linked disk's chain from the top: its
//!    filters' pre-ops in order (properties 2 to 4 on that chain), each
//!    seeing the client the request came from, the op, the redirect's
//!    block and the request's count (a flush: 0) and, with data rights, a
//!    grant of the request's data as it stands at the filter that
//!    redirected (the client's buffer or the lowest substitute above that
//!    filter; then a lower one of the linked chain); the linked disk's
//!    driver gets it with id 0, its op (a flush as a flush of completed
//!    writes), that block and count, tag `SLOT_TAG + slot` and that data
//!    address, a write with the request's data as it stands there (XORed
//!    with the keys of every filter that substituted it above). Nothing
//!    of it reaches the first disk's driver, and no client is answered
//!    for it;
//! 11. once it is back (through the linked chain's post-ops, its result as
//!    its path there gives it, property 1), the request goes on up from
//!    just below the filter that redirected, with that result: a pre-op's
//!    redirect next reaches that filter's post-op (unless it has none, or
//!    said `NO_POST`), a post-op's redirect calls that post-op again; that
//!    call sees the redirect's status and count from below, no
//!    `Io::side`, and the state word left with the redirect; it may be
//!    missing only if the filter was stopped meanwhile (then `IoError`).
//!    A read redirected in its pre-op and answered `Ok` along a clean path
//!    leaves in the client's buffer the linked disk's block pattern at the
//!    redirect's block, XORed with the keys of the substituting filters of
//!    both chains.
//!
//! And a run ends only when nothing is left the server could do without
//! news: a second run at once calls no filter and moves nothing.

use super::*;
use crate::chain::{MAX_SLOTS, SLOT_TAG};
use blk::filter::{op_bit, MAX_BATCH, MAX_SETUP_BLOCKS, SETUP_CLIENT};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::OnceLock;

const BLOCK: usize = 4096;
/// The byte each filter XORs the data it substitutes with (distinct bits,
/// so any set of filters gives its own mix).
const KEYS: [u8; MAX_FILTERS] = [0x11, 0x22, 0x44, 0x88, 0x01, 0x02];
/// Filters of a case at most: 4 on the first disk, 2 on the linked one.
const MAX_FILTERS: usize = 6;
/// Blocks of the linked disk (fewer than the first's: a redirect past
/// them is one the server must refuse).
const LINKED_BLOCKS: u64 = 512;
/// Per link level, the percentage of a linked filter's calls it answers
/// with a redirect (valid mostly), while it redirected fewer than
/// `MAX_REDIRECT` times for the request.
const REDIRECT: [u64; 4] = [0, 6, 15, 35];
/// Redirects a filter gives at most for one request (counted in bits 8..16
/// of the state word it leaves).
const MAX_REDIRECT: u64 = 2;
/// Per chaos level, the percentage of a filter's verdicts that are not a
/// continue or a good substitute.
const WILD: [u64; 4] = [0, 8, 25, 60];
/// Per side level, the percentage of a filter's calls it answers with a
/// side I/O (valid mostly), while it asked fewer than `MAX_SIDE` for the
/// request.
const SIDE: [u64; 4] = [0, 6, 15, 35];
/// Side I/O a filter asks at most for one request (it counts them in the
/// low byte of the state word it leaves), so that runs end.
const MAX_SIDE: u64 = 3;
/// ... and in all, per run of the server (against a server that lost the
/// count).
const MAX_SIDE_PER_RUN: u32 = 400;
/// The client number entries of side I/O have.
const SIDE_CLIENT: usize = SETUP_CLIENT as usize;
/// Side I/O starts at this block or later, each at a block no other live
/// side I/O starts at: the entries of a side I/O map back to it by block,
/// and the driver's requests with id 0 too (a client's request 0 is at
/// block 4 or lower).
const SIDE_FIRST: u64 = 8;
/// Pages of a bounce buffer.
const BOUNCE_PAGES: u32 = (BOUNCE_SIZE / BLOCK as u64) as u32;

// ---------------------------------------------------------------- inputs

#[derive(Clone, Copy, Debug)]
struct FilterCase {
    spec: Spec,
    /// How often it answers something else than continue or substitute.
    chaos: u8,
    /// How often it asks side I/O (`SIDE`).
    side: u8,
    /// How often it redirects along its link (`REDIRECT`), if it has one
    /// (a filter of the first disk, in a case with a linked disk, whose
    /// level is not 0).
    link: u8,
}

/// Where a filter is: its disk (0, or 1 the linked one), the server's
/// number of the first filter of that disk's chain, the blocks of the
/// disk below it, and how many links it has (0 or 1: link 0 names the
/// linked disk).
#[derive(Clone, Copy, Debug)]
struct Place {
    disk: usize,
    first: usize,
    below: u64,
    links: u8,
}

/// A filter: hooks pre, post or (more often) both; any subset of read,
/// write and flush; no data rights, read, or (more often) read-write; a
/// bounce buffer more often than not.
fn filter_case() -> impl Strategy<Value = FilterCase> {
    let hooks = prop_oneof![1 => Just(Hook::Pre.bit()), 1 => Just(Hook::Post.bit()), 2 => Just(3u8)];
    let rights = prop_oneof![1 => Just(0), 1 => Just(abi::GRANT_READ), 2 => Just(abi::GRANT_READ | abi::GRANT_WRITE)];
    let bounce = prop_oneof![1 => Just(false), 2 => Just(true)];
    // In one case in three its pre-op is for some of its operations only.
    let narrow = prop_oneof![2 => Just(0u8), 1 => 1u8..8];
    (hooks, 0u8..8, rights, bounce, 0u8..4, 0u8..4, 0u8..4, narrow).prop_map(|(hooks, ops, rights, bounce, chaos, side, link, narrow)| {
        let op_bits = |ops: u8| {
            let mut bits = 0;
            if ops & 1 != 0 {
                bits |= op_bit(Op::Read);
            }
            if ops & 2 != 0 {
                bits |= op_bit(Op::Write);
            }
            if ops & 4 != 0 {
                bits |= op_bit(Op::Flush) | op_bit(Op::FlushCompleted);
            }
            bits
        };
        FilterCase { spec: Spec { hooks, ops: op_bits(ops), rights, bounce, pre_ops: op_bits(narrow), max_blocks: 0 }, chaos, side, link }
    })
}

#[derive(Clone, Debug)]
enum Kind {
    /// A read or write of `count` blocks, its buffer at block `slot` of the
    /// client's data region (moved down to fit); `shift` varies its block.
    Good { write: bool, count: u32, slot: u64, shift: u64 },
    /// One of the ways a request can be wrong.
    Bad { write: bool, how: u8, shift: u64 },
    Flush,
    Barrier,
    /// A flush of completed writes, sent by the client itself.
    FlushNow,
}

#[derive(Clone, Debug)]
enum Action {
    Push { client: usize, kind: Kind },
    Run,
    /// The driver completes up to `n` of its requests, picked by `pick`,
    /// failing those `fail` says.
    Complete { n: usize, pick: u32, fail: u32 },
    Pop { client: usize },
    /// The filter's next upcall fails as if the kernel stopped it.
    Stop { filter: usize },
    /// The client sends `n` good requests at once (as far as its ring
    /// takes them), made from `seed`.
    Burst { client: usize, n: usize, seed: u64 },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        8 => (any::<bool>(), 1u32..5, 0u64..16, 0u64..4).prop_map(|(write, count, slot, shift)| Kind::Good { write, count, slot, shift }),
        2 => (any::<bool>(), 0u8..7, 0u64..4).prop_map(|(write, how, shift)| Kind::Bad { write, how, shift }),
        1 => Just(Kind::Flush),
        1 => Just(Kind::Barrier),
        1 => Just(Kind::FlushNow),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0usize..3, kind()).prop_map(|(client, kind)| Action::Push { client, kind }),
        3 => Just(Action::Run),
        3 => (0usize..6, any::<u32>(), any::<u32>()).prop_map(|(n, pick, fail)| Action::Complete { n, pick, fail }),
        2 => (0usize..3).prop_map(|client| Action::Pop { client }),
        1 => (0usize..4).prop_map(|filter| Action::Stop { filter }),
        1 => (0usize..3, 1usize..65, any::<u64>()).prop_map(|(client, n, seed)| Action::Burst { client, n, seed }),
    ]
}

/// The `k`th request of a burst made from `seed`.
fn burst_kind(seed: u64, k: usize) -> Kind {
    let mut x = seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ x >> 31).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    Kind::Good { write: x & 1 == 0, count: 1 + (x >> 1) as u32 % 4, slot: (x >> 3) % 16, shift: (x >> 7) % 4 }
}

// ------------------------------------------------------------------ data

/// What the disk holds at `count` blocks from `block` (what the driver, or
/// a filter completing a read, puts in a read's buffer).
fn disk_pattern(block: u64, count: u32) -> StdVec<u8> {
    let mut out = StdVec::with_capacity(count as usize * BLOCK);
    for n in 0..u64::from(count) {
        let b = block + n;
        let at = out.len();
        out.extend_from_slice(&bytes(&DISK_BYTES, |i| (i as u8).wrapping_mul(3) ^ 0x5a)[..BLOCK]);
        xor(&mut out[at..], (b as u8).wrapping_mul(0x9d) ^ (b >> 8) as u8);
    }
    out
}

/// What a filter's side write of `len` bytes at `block` carries.
fn side_pattern(block: u64, len: usize) -> StdVec<u8> {
    let mut out = bytes(&SIDE_BYTES, |i| (i as u8).wrapping_mul(5) ^ (i >> 12) as u8 ^ 0x3c)[..len].to_vec();
    xor(&mut out, (block as u8).wrapping_mul(0x6b) ^ (block >> 8) as u8);
    out
}

/// What request `id` of a client writes.
fn client_pattern(id: u32, len: usize) -> StdVec<u8> {
    let mut out = bytes(&CLIENT_BYTES, |i| i as u8 ^ (i >> 8) as u8 ^ 0xa5)[..len].to_vec();
    xor(&mut out, (id as u8).wrapping_mul(0x3b) ^ (id >> 8) as u8);
    out
}

// (The patterns are a table per kind, XORed with a byte per block, side
// I/O or request: built a byte at a time they were most of the test's
// time.)
static DISK_BYTES: OnceLock<StdVec<u8>> = OnceLock::new();
static SIDE_BYTES: OnceLock<StdVec<u8>> = OnceLock::new();
static CLIENT_BYTES: OnceLock<StdVec<u8>> = OnceLock::new();

/// The table `f` makes: 64 KiB, the most any buffer of the test holds.
fn bytes(table: &'static OnceLock<StdVec<u8>>, f: fn(usize) -> u8) -> &'static [u8] {
    table.get_or_init(|| (0..DATA_SIZE as usize).map(f).collect())
}

fn xor(buf: &mut [u8], key: u8) {
    let k = u64::from_ne_bytes([key; 8]);
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        let x = u64::from_ne_bytes((&*w).try_into().unwrap()) ^ k;
        w.copy_from_slice(&x.to_ne_bytes());
    }
    words.into_remainder().iter_mut().for_each(|b| *b ^= key);
}

fn wants(spec: &Spec, hook: Hook, op: Op) -> bool {
    let ops = match hook {
        Hook::Pre if spec.pre_ops != 0 => spec.ops & spec.pre_ops,
        _ => spec.ops,
    };
    spec.hooks & hook.bit() != 0 && ops & op_bit(op) != 0
}

/// Whether a filter does the data work of a substitute for `op`: it copies
/// a write into its buffer (it needs to read it), and copies a read back
/// into the buffer above in its post-op (it needs to write, and a post).
fn carries_data(spec: &Spec, op: Op) -> bool {
    match op {
        Op::Write => spec.rights != 0,
        Op::Read => spec.rights & abi::GRANT_WRITE != 0 && wants(spec, Hook::Post, Op::Read),
        _ => false,
    }
}

/// Whether the server must take verdict `v` of filter `spec` for a request
/// of `op` and `count` blocks (the rules of `blk::filter`'s docs).
fn valid(v: Verdict, hook: Hook, op: Op, count: u32, spec: &Spec, place: &Place) -> bool {
    let bounce = if spec.bounce { BOUNCE_SIZE } else { 0 };
    let len = if op.moves_data() { u64::from(count) * BLOCK as u64 } else { 0 };
    match v {
        Verdict::Continue => true,
        Verdict::Substitute { offset } => {
            hook == Hook::Pre && op.moves_data() && offset % BLOCK as u64 == 0 && offset.checked_add(len).is_some_and(|end| end <= bounce)
        }
        Verdict::Complete { count: done, .. } => done <= count,
        Verdict::Fail(status) => status != Status::Ok,
        // (Every filter sees the whole disk below: its disk's.)
        Verdict::SideIo { op: Op::Read | Op::Write, block, count, page } => {
            (1..=MAX_SETUP_BLOCKS).contains(&count)
                && (u64::from(page) + u64::from(count)) * BLOCK as u64 <= bounce
                && block.checked_add(u64::from(count)).is_some_and(|end| end <= place.below)
        }
        // (A flush moves no data: neither its page nor its block is
        // checked.)
        Verdict::SideIo { op, count, .. } => op == Op::Flush && count == 0,
        // Along a link it has; a read or write inside the linked disk
        // (a flush's block is not checked).
        Verdict::Redirect { link, block } => {
            link < place.links && (!op.moves_data() || block.checked_add(u64::from(count)).is_some_and(|end| end <= LINKED_BLOCKS))
        }
        // (The model's filters give none: remaps are tested apart.)
        Verdict::Remap { .. } => false,
    }
}

// --------------------------------------------------------- model filters

/// The model filters, shared by the upcalls (which call `decide`) and the
/// test (which reads what they answered and frees their buffers).
struct Filters {
    /// Every filter, by the server's number: the first disk's chain, then
    /// the linked disk's.
    chain: StdVec<FilterCase>,
    places: StdVec<Place>,
    rng: u64,
    /// Per filter: the bounce blocks (offset, blocks) each request it
    /// substituted holds, by (client, block), until the request is answered.
    subs: StdVec<HashMap<(u8, u64), (u64, u32)>>,
    /// Per filter: its bounce blocks in use.
    used: StdVec<u16>,
    /// Live side I/O and redirects by first block (unique among them,
    /// on both disks): the filter that asked and the bounce pages (first,
    /// count; a redirect none) it holds in `used` until the model has seen
    /// the side I/O or redirect done.
    sides: HashMap<u64, (usize, u32, u32)>,
    /// Side I/O asked in this run of the server (`MAX_SIDE_PER_RUN`).
    sides_now: u32,
    /// Where a call leaves a filter's state word (the harness's
    /// `ModelUpcalls::state`).
    state: Rc<Cell<Option<u64>>>,
    /// Every verdict given, in order, with the state word left with it.
    /// (And whether it said `NO_POST` with it.)
    verdicts: StdVec<(Verdict, u64, bool)>,
    /// Where a pre-op says `NO_POST` (the harness's
    /// `ModelUpcalls::no_post`).
    no_post: Rc<Cell<bool>>,
    /// Copies that failed (a grant that does not reach the data), and
    /// side I/O verdicts the model filter meant valid that are not, or
    /// the reverse.
    errors: StdVec<String>,
}

impl Filters {
    fn new(chain: &[FilterCase], places: &[Place], seed: u64) -> Filters {
        Filters {
            chain: chain.to_vec(),
            places: places.to_vec(),
            rng: seed | 1,
            subs: vec![HashMap::new(); chain.len()],
            used: vec![0; chain.len()],
            sides: HashMap::new(),
            sides_now: 0,
            state: Rc::new(Cell::new(None)),
            verdicts: StdVec::new(),
            no_post: Rc::new(Cell::new(false)),
            errors: StdVec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Filter `f` answers one entry, and leaves a state word: a new one
    /// each call, its low byte counting the side I/O it asked for the
    /// request so far.
    fn decide(&mut self, f: usize, io: &Io, done: Option<Done>, data: &dyn RequestData, bounce: Shared<'static>) -> Verdict {
        let v = match done {
            None => self.pre(f, io, data, bounce),
            Some(done) => self.post(f, io, done, data, bounce),
        };
        let asked = (io.state & 0xff) + u64::from(matches!(v, Verdict::SideIo { .. }));
        let redirected = (io.state >> 8 & 0xff) + u64::from(matches!(v, Verdict::Redirect { .. }));
        let state = self.next() << 16 | redirected.min(0xff) << 8 | asked.min(0xff);
        self.state.set(Some(state));
        // Now and then a pre-op that continues or redirects needs no
        // post-op for the request (one that substitutes does: it copies a
        // read back).
        let no_post = done.is_none() && matches!(v, Verdict::Continue | Verdict::Redirect { .. }) && self.next() % 8 == 0;
        self.no_post.set(no_post);
        self.verdicts.push((v, state, no_post));
        v
    }

    /// (wild, status, failure, count, pick): a roll of the dice for a verdict.
    fn roll(&mut self, f: usize, io: &Io) -> (bool, Status, Status, u32, u64) {
        let wild = self.next() % 100 < WILD[self.chain[f].chaos as usize];
        let pick = self.next();
        let status = if pick & 0x800 == 0 { Status::Ok } else { Status::ALL[(pick >> 8) as usize % 4] };
        let failure = Status::ALL[1 + (pick >> 12) as usize % 3];
        let count = if pick & 0x10_0000 == 0 { io.count } else { (pick >> 24) as u32 % io.count.saturating_add(1) };
        (wild, status, failure, count, pick)
    }

    fn pre(&mut self, f: usize, io: &Io, data: &dyn RequestData, bounce: Shared<'static>) -> Verdict {
        if let Some(v) = self.side_io(f, io, bounce) {
            return v;
        }
        if let Some(v) = self.redirect(f, io) {
            return v;
        }
        let spec = self.chain[f].spec;
        let (wild, status, failure, count, pick) = self.roll(f, io);
        if !wild {
            // (Mostly substitutes it can fill; a few it cannot, whose data
            // the test then does not check.)
            let substitute = if carries_data(&spec, io.op) { pick % 2 == 0 } else { pick % 8 == 0 };
            if io.op.moves_data() && spec.bounce && substitute {
                if let Some(offset) = self.substitute(f, io, data, bounce) {
                    return Verdict::Substitute { offset };
                }
            }
            return Verdict::Continue;
        }
        match pick % 8 {
            0..=2 => {
                // A cache hit fills the read through its grant.
                if status == Status::Ok && io.op == Op::Read && spec.rights & abi::GRANT_WRITE != 0 {
                    if let Err(e) = data.write(io, 0, &disk_pattern(io.block, io.count)) {
                        self.errors.push(format!("filter {f} filling {io:?}: {e}"));
                    }
                }
                Verdict::Complete { status, count }
            }
            3 => Verdict::Fail(failure),
            4 => Verdict::Complete { status, count: io.count.saturating_add(1) },
            5 => Verdict::Substitute { offset: if pick & 0x100_0000 == 0 { 100 } else { BOUNCE_SIZE } },
            // (Along a link it does not have.)
            6 => Verdict::Redirect { link: self.places[f].links + 1, block: 0 },
            _ => Verdict::Fail(Status::Ok),
        }
    }

    fn post(&mut self, f: usize, io: &Io, done: Done, data: &dyn RequestData, bounce: Shared<'static>) -> Verdict {
        let spec = self.chain[f].spec;
        if io.op == Op::Read && done.status == Status::Ok && carries_data(&spec, Op::Read) {
            if let Some(&(offset, count)) = self.subs[f].get(&(io.client, io.block)) {
                // Decrypt: our buffer, unkeyed, into the buffer above.
                let mut buf = vec![0; count as usize * BLOCK];
                bounce.read_bytes(offset as usize, &mut buf).unwrap();
                xor(&mut buf, KEYS[f]);
                if let Err(e) = data.write(io, 0, &buf) {
                    self.errors.push(format!("filter {f} copying back {io:?}: {e}"));
                }
            }
        }
        if let Some(v) = self.side_io(f, io, bounce) {
            return v;
        }
        if let Some(v) = self.redirect(f, io) {
            return v;
        }
        let (wild, status, failure, count, pick) = self.roll(f, io);
        if !wild {
            return Verdict::Continue;
        }
        match pick % 8 {
            0 | 1 => Verdict::Complete { status, count },
            2 | 3 => Verdict::Fail(failure),
            4 => Verdict::Complete { status, count: io.count.saturating_add(1) },
            5 => Verdict::Substitute { offset: 0 },
            6 => Verdict::Redirect { link: self.places[f].links, block: 0 },
            _ => Verdict::Fail(Status::Ok),
        }
    }

    /// Take bounce blocks for `io` and, for a write we may read, copy its
    /// data there keyed. `None` if the buffer is full.
    fn substitute(&mut self, f: usize, io: &Io, data: &dyn RequestData, bounce: Shared<'static>) -> Option<u64> {
        let n = io.count as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mask = (1u32 << n) - 1;
        let start = (0..=16 - n).find(|&s| u32::from(self.used[f]) & (mask << s) == 0)?;
        self.used[f] |= (mask << start) as u16;
        let offset = (start * BLOCK) as u64;
        self.subs[f].insert((io.client, io.block), (offset, io.count));
        if io.op == Op::Write && carries_data(&self.chain[f].spec, Op::Write) {
            let mut buf = vec![0; n * BLOCK];
            match data.read(io, 0, &mut buf) {
                Ok(()) => {
                    xor(&mut buf, KEYS[f]);
                    bounce.write_bytes(offset as usize, &buf).unwrap();
                }
                Err(e) => self.errors.push(format!("filter {f} reading {io:?}: {e}")),
            }
        }
        Some(offset)
    }

    /// Now and then (the filter's side level), a side I/O for `io`: mostly
    /// a valid one (a flush, or, with a bounce buffer, a read or write of
    /// up to 16 of its pages, which it holds until the model has seen the
    /// side I/O done; a write's filled with `side_pattern` first), one in
    /// eight that the server must refuse.
    fn side_io(&mut self, f: usize, io: &Io, bounce: Shared<'static>) -> Option<Verdict> {
        let level = self.chain[f].side as usize;
        if level == 0 || io.state & 0xff >= MAX_SIDE || self.sides_now >= MAX_SIDE_PER_RUN || self.next() % 100 >= SIDE[level] {
            return None;
        }
        let spec = self.chain[f].spec;
        let pick = self.next();
        let v = if pick % 8 == 0 {
            self.bad_side_io(pick >> 3, self.places[f].below)
        } else if !spec.bounce && pick >> 3 & 3 != 0 {
            // (Without a bounce buffer, only flushes: fewer.)
            return None;
        } else if pick >> 3 & 7 == 0 || !spec.bounce {
            // A flush: no data, so no pages (any page number will do).
            let block = self.side_block(0, pick >> 8, self.places[f].below)?;
            self.sides.insert(block, (f, 0, 0));
            Verdict::SideIo { op: Op::Flush, block, count: 0, page: (pick >> 40) as u16 }
        } else {
            let op = if pick >> 6 & 1 == 0 { Op::Read } else { Op::Write };
            let count = if pick >> 7 & 3 == 0 { 1 + (pick >> 12) as u32 % BOUNCE_PAGES } else { 1 + (pick >> 12) as u32 % 4 };
            let block = self.side_block(count, pick >> 20, self.places[f].below)?;
            let page = self.take_pages(f, count, (pick >> 50) as u32)?;
            self.sides.insert(block, (f, page, count));
            if op == Op::Write {
                let len = count as usize * BLOCK;
                bounce.write_bytes(page as usize * BLOCK, &side_pattern(block, len)).unwrap();
            }
            Verdict::SideIo { op, block, count, page: page as u16 }
        };
        let meant = pick % 8 != 0;
        if valid(v, io.hook, io.op, io.count, &spec, &self.places[f]) != meant {
            self.errors.push(format!("filter {f} ({spec:?}) meant {v:?} {}", if meant { "valid" } else { "invalid" }));
        }
        self.sides_now += 1;
        Some(v)
    }

    /// A side I/O the server must refuse (`pick` says which way it is
    /// wrong).
    fn bad_side_io(&self, pick: u64, below: u64) -> Verdict {
        let op = if pick & 1 == 0 { Op::Read } else { Op::Write };
        let (block, count, page) = (SIDE_FIRST + (pick >> 8) % 512, 1 + (pick >> 20) as u32 % 4, (pick >> 24) as u16 % 4);
        let k = (pick >> 32) as u32 % 4;
        match (pick >> 1) % 8 {
            // No blocks.
            0 => Verdict::SideIo { op, block, count: 0, page },
            // More than a side I/O may move.
            1 => Verdict::SideIo { op, block, count: MAX_SETUP_BLOCKS + 1 + k * 100, page: 0 },
            // More than the bounce buffer holds (but not too many).
            2 => Verdict::SideIo { op, block, count: BOUNCE_PAGES + 1 + k * (MAX_SETUP_BLOCKS - BOUNCE_PAGES - 1) / 3, page: 0 },
            // Running past the end of the bounce buffer.
            3 => Verdict::SideIo { op, block, count, page: (BOUNCE_PAGES - count + 1 + k) as u16 },
            // Running past the end of the disk below.
            4 => Verdict::SideIo { op, block: below - u64::from(count) + 1 + u64::from(k), count, page },
            // ... wrapping around.
            5 => Verdict::SideIo { op, block: u64::MAX - u64::from(k), count, page },
            // A flush with a count.
            6 => Verdict::SideIo { op: Op::Flush, block, count, page },
            // Neither a read, a write nor a flush.
            _ => Verdict::SideIo { op: [Op::Barrier, Op::FlushCompleted, Op::Report][k as usize % 3], block, count: 0, page },
        }
    }

    /// A block for a side I/O or redirect of `count` blocks (past
    /// `SIDE_FIRST`, inside a disk of `below` blocks) at which no live side
    /// I/O or redirect starts, from `r` on.
    fn side_block(&self, count: u32, r: u64, below: u64) -> Option<u64> {
        let span = below - SIDE_FIRST - u64::from(count) + 1;
        (0..span).map(|k| SIDE_FIRST + (r + k) % span).find(|b| !self.sides.contains_key(b))
    }

    /// Take `n` free pages of filter `f`'s bounce buffer, the first free
    /// run from page `from` on (wrapping); `None` if there is none.
    fn take_pages(&mut self, f: usize, n: u32, from: u32) -> Option<u32> {
        let last = BOUNCE_PAGES - n;
        let mask = ((1u32 << n) - 1) as u16;
        let start = (0..=last).map(|k| (from + k) % (last + 1)).find(|&s| self.used[f] & (mask << s) == 0)?;
        self.used[f] |= mask << start;
        Some(start)
    }

    /// The side I/O at `block` is done: its pages are free, its block too.
    fn release_side(&mut self, block: u64) {
        if let Some((f, page, count)) = self.sides.remove(&block) {
            self.used[f] &= !((((1u32 << count) - 1) << page) as u16);
        }
    }

    /// Now and then (the filter's link level), for a filter with a link, a
    /// redirect of `io`: mostly a valid one (link 0, at a block of the
    /// linked disk no live side I/O or redirect starts at, held until the
    /// model has seen the redirect back), one in six that the server must
    /// refuse (a link it does not have, a read or write past the end of
    /// the linked disk).
    fn redirect(&mut self, f: usize, io: &Io) -> Option<Verdict> {
        let (level, place) = (self.chain[f].link as usize, self.places[f]);
        if place.links == 0 || level == 0 || io.state >> 8 & 0xff >= MAX_REDIRECT || self.sides_now >= MAX_SIDE_PER_RUN {
            return None;
        }
        if self.next() % 100 >= REDIRECT[level] {
            return None;
        }
        let pick = self.next();
        let count = u64::from(if io.op.moves_data() { io.count } else { 0 });
        let k = (pick >> 8) % 4;
        let meant = pick % 6 != 0;
        let v = if meant {
            let block = self.side_block(count as u32, pick >> 16, LINKED_BLOCKS)?;
            self.sides.insert(block, (f, 0, 0));
            Verdict::Redirect { link: 0, block }
        } else if pick >> 4 & 1 == 0 || !io.op.moves_data() {
            // Along a link it does not have (past the table, too).
            Verdict::Redirect { link: [1, 2, 3, 200][k as usize], block: SIDE_FIRST }
        } else if pick >> 5 & 1 == 0 {
            // Past the end of the linked disk.
            Verdict::Redirect { link: 0, block: LINKED_BLOCKS - count + 1 + k }
        } else {
            // ... wrapping around.
            Verdict::Redirect { link: 0, block: u64::MAX - k }
        };
        if valid(v, io.hook, io.op, io.count, &self.chain[f].spec, &place) != meant {
            self.errors.push(format!("filter {f} ({place:?}) meant {v:?} {}", if meant { "valid" } else { "invalid" }));
        }
        self.sides_now += 1;
        Some(v)
    }

    /// Request (client, block) of the chain of filters `range` was
    /// answered: its bounce blocks there are free.
    fn release(&mut self, range: std::ops::Range<usize>, client: usize, block: u64) {
        for (subs, used) in self.subs[range.clone()].iter_mut().zip(&mut self.used[range]) {
            if let Some((offset, count)) = subs.remove(&(client as u8, block)) {
                *used &= !((((1u32 << count) - 1) << (offset as usize / BLOCK)) as u16);
            }
        }
    }
}

// ----------------------------------------------------------------- model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Data,
    Refused,
    Barrier,
    Flush,
    FlushNow,
    /// A filter's side I/O.
    Side,
    /// A filter's redirect, down the linked disk's chain.
    Link,
}

/// Where a request is, as far as the model has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Going down: its next pre-op is at the first position from `from`
    /// that wants it (none: the driver).
    Down { from: usize },
    /// At the driver, sent as `sent`.
    Driver { sent: Request },
    /// Going up: the filters at positions from `below` on are done with
    /// it; its result so far.
    Up { below: usize, status: Status, count: u32 },
    /// Waiting at filter `at` for its side I/O `child`, asked in `hook`
    /// with state word `state` left (in a post-op, having seen `done`):
    /// next, that hook is called again.
    Side { at: usize, hook: Hook, child: usize, state: u64, done: Option<Done> },
    /// Waiting at filter `at` for its redirect `child` (the state word
    /// that filter left with it is in `state[at]`): once it is back, the
    /// request goes up from just below the filter (a post-op's filter is
    /// called again), with the redirect's result.
    Redirect { at: usize, hook: Hook, child: usize },
    Answered,
}

#[derive(Clone, Debug)]
struct Req {
    client: usize,
    /// Its place in its client's order.
    index: usize,
    request: Request,
    class: Class,
    /// The operation as the chain sees it (a flush: `Flush`).
    op: Op,
    /// How many of its client's first requests must be answered before it
    /// may start (those before its flush, or the last flush or barrier).
    gate: usize,
    stage: Stage,
    /// When it was last seen (push, call, driver).
    last: u64,
    started: bool,
    slot: Option<u32>,
    /// Per filter (the server's number), the bounce offset it substituted.
    subs: [Option<u64>; MAX_FILTERS],
    /// Its data can be checked: no other live request of its client shares
    /// its buffer, and every substitute did its data work.
    data: bool,
    /// A read: its source really produced the data and every substituting
    /// filter's post-op copied it up.
    clean: bool,
    /// The level it entered the chain at: 0, or for a side I/O the level
    /// just below the filter that asked.
    entry: usize,
    /// A side I/O: the request it is for and the position of the filter
    /// that asked (its data starts in that filter's bounce buffer:
    /// `subs[position]`).
    side_of: Option<(usize, usize)>,
    /// Per filter, the state word the server keeps for it: what that
    /// filter's pre-op, or its side I/O or redirect verdict, left last.
    state: [u64; MAX_FILTERS],
    /// Bit p: filter p's pre-op said `NO_POST`: it gets no post-op.
    no_post: u8,
    /// Its disk: 0, or 1 (the linked disk) for a redirect and the side I/O
    /// of the linked disk's filters. Positions are the server's filter
    /// numbers, those of its disk's chain.
    disk: usize,
    /// A redirect: the request it is for and the filter that redirected it
    /// (its data starts where that request's data is at that filter).
    link_of: Option<(usize, usize)>,
    /// The block whose disk pattern a read brings (a read redirected in
    /// its pre-op brings the linked disk's block), and the keys of the
    /// filters of the linked disk that substituted the redirect.
    source_block: u64,
    extra_keys: u8,
}

/// A filter's life as the server's fault handling makes it.
#[derive(Clone, Debug)]
struct Life {
    alive: bool,
    /// Restarts since its last answered upcall.
    restarts: u32,
    /// Its next upcalls that are to fail.
    pending_stop: usize,
    /// When it was stopped: (from, until called again).
    dead: StdVec<(u64, Option<u64>)>,
    /// Restarted, not yet called again: the server waits until no request
    /// in flight holds a substitute or state of its earlier life (when is
    /// read from the server, `resumed`; `a_restarted_filter_...` in
    /// tests/chain.rs checks the rule).
    resuming: bool,
    /// Called again in this run: its dead time ends with the run.
    closing: bool,
}

enum Outcome {
    Stopped,
    Verdict(Verdict),
}

struct Model {
    /// Every filter, by the server's number (the first disk's chain, then
    /// the linked disk's), and where it is.
    chain: StdVec<Spec>,
    places: StdVec<Place>,
    /// Filters of the first disk.
    n0: usize,
    clients: usize,
    driver_capacity: usize,
    /// By id: every request sent.
    reqs: StdVec<Req>,
    /// Per client, its requests' ids in the order sent.
    sent: StdVec<StdVec<usize>>,
    /// Unanswered requests by (disk, client, block): how entries map back.
    live: HashMap<(usize, usize, u64), usize>,
    /// Requests at the driver, not completed yet.
    at_driver: StdVec<usize>,
    /// Per client, the largest gate of its requests that started.
    started_gate: StdVec<usize>,
    life: StdVec<Life>,
    /// Filters stopped in this run, in order, with the requests failed.
    stopped_now: StdVec<(usize, u32)>,
    /// The clock: one tick per thing seen.
    seq: u64,
    filters: Rc<RefCell<Filters>>,
    memory: Rc<Memory>,
}

impl Model {
    fn new(chain: &[FilterCase], places: &[Place], n0: usize, clients: usize, driver_capacity: u32, filters: Rc<RefCell<Filters>>, memory: Rc<Memory>) -> Model {
        Model {
            chain: chain.iter().map(|f| f.spec).collect(),
            places: places.to_vec(),
            n0,
            clients,
            driver_capacity: driver_capacity as usize,
            reqs: StdVec::new(),
            sent: vec![StdVec::new(); clients],
            live: HashMap::new(),
            at_driver: StdVec::new(),
            started_gate: vec![0; clients],
            life: vec![Life { alive: true, restarts: 0, pending_stop: 0, dead: StdVec::new(), resuming: false, closing: false }; chain.len()],
            stopped_now: StdVec::new(),
            seq: 0,
            filters,
            memory,
        }
    }

    /// The filters of disk `d`'s chain (the server's numbers).
    fn range(&self, d: usize) -> std::ops::Range<usize> {
        if d == 0 {
            0..self.n0
        } else {
            self.n0..self.chain.len()
        }
    }

    /// The next pre-op of a request of `op` going down disk `d`'s chain
    /// from `from` (none: its driver).
    fn next_pre(&self, d: usize, op: Op, from: usize) -> Option<usize> {
        (from..self.range(d).end).find(|&p| wants(&self.chain[p], Hook::Pre, op))
    }

    /// The next post-op of a request of `op` that entered at level
    /// `entry`, going up from `below`.
    fn next_post(&self, id: usize, below: usize) -> Option<usize> {
        let r = &self.reqs[id];
        (r.entry..below).rev().find(|&p| wants(&self.chain[p], Hook::Post, r.op) && r.no_post & 1 << p == 0)
    }

    /// Where request `id`'s data is at position `p`: (lend index, offset
    /// in it, device address).
    fn data_at(&self, id: usize, p: usize) -> (u16, u64, u64) {
        let r = &self.reqs[id];
        match (self.range(r.disk).start..p).rev().find_map(|q| r.subs[q].map(|o| (q, o))) {
            Some((q, offset)) => ((self.clients + q) as u16, offset, bounce_paddr(q) + offset),
            None => match r.link_of {
                // A redirect's data: as it stands at the filter that
                // redirected it.
                Some((parent, at)) => self.data_at(parent, at),
                None => (r.client as u16, r.request.data_offset, client_paddr(r.client) + r.request.data_offset),
            },
        }
    }

    /// The XOR of the keys of the filters that substituted request `id`
    /// above filter `p` (not the filter a side I/O is of: its data is that
    /// filter's own; for a redirect, those above the filter that
    /// redirected its request too).
    fn keys_above(&self, id: usize, p: usize) -> u8 {
        let r = &self.reqs[id];
        let origin = r.side_of.map(|(_, p)| p);
        let own = (self.range(r.disk).start..p).filter(|&q| r.subs[q].is_some() && Some(q) != origin).fold(0, |k, q| k ^ KEYS[q]);
        own ^ r.link_of.map_or(0, |(parent, at)| self.keys_above(parent, at))
    }

    /// The XOR of the keys of the filters that substituted request `id` on
    /// its way (for a read redirected in its pre-op, those of the linked
    /// disk too).
    fn keys(&self, id: usize) -> u8 {
        let r = &self.reqs[id];
        self.keys_above(id, self.range(r.disk).end) ^ r.extra_keys
    }

    /// Whether request `id`'s data can be checked: its own flag, and for a
    /// redirect that of the request it is for (whose buffer a later
    /// request of its client may share).
    fn data_ok(&self, id: usize) -> bool {
        let r = &self.reqs[id];
        r.data && r.link_of.is_none_or(|(parent, _)| self.data_ok(parent))
    }

    /// What request `id` writes, `len` bytes.
    fn source(&self, id: usize, len: usize) -> StdVec<u8> {
        let r = &self.reqs[id];
        match (r.side_of, r.link_of) {
            (_, Some((parent, _))) => self.source(parent, len),
            (Some(_), _) => side_pattern(r.request.block, len),
            _ => client_pattern(r.request.id, len),
        }
    }

    /// Request `id` has slot `slot`: if it is a side I/O, not the slot of
    /// the request it is for (nor of any that one waits for in turn).
    fn own_slot(&self, id: usize, slot: u32) -> Result<(), TestCaseError> {
        let mut at = id;
        while let Some((parent, p)) = self.reqs[at].side_of.or(self.reqs[at].link_of) {
            prop_assert!(self.reqs[parent].slot != Some(slot), "filter {}'s side I/O or redirect {:?} in the slot of {:?}", p, self.reqs[id].request, self.reqs[parent].request);
            at = parent;
        }
        Ok(())
    }

    /// Client `c` sends a request of `kind` (if its ring takes it).
    fn push(&mut self, h: &mut ChainHarness, c: usize, kind: &Kind) {
        let id = self.reqs.len() as u32;
        let index = self.sent[c].len();
        // Unique among the client's live requests: entries map back by it.
        let unique = 1 + 4 * (index as u64 % 255);
        let rw = |write: bool| if write { Op::Write } else { Op::Read };
        let (request, class) = match *kind {
            Kind::Good { write, count, slot, shift } => {
                let slot = self.buffer(c, slot, count);
                (Request::new(id, rw(write), unique + shift, count, slot * BLOCK as u64), Class::Data)
            }
            Kind::Bad { write, how, shift } => {
                let mut r = Request::new(id, rw(write), unique + shift, 1, 0);
                match how {
                    0 => r.block = DISK_BLOCKS,
                    1 => (r.block, r.count) = (DISK_BLOCKS - 1, 2),
                    2 => r.data_offset = 100,
                    3 => r.count = 0,
                    4 => r.count = 17,
                    5 => r.data_offset = DATA_SIZE,
                    _ => r.opcode = 99,
                }
                (r, Class::Refused)
            }
            // (A flush's block is unused: numbered, it maps back too.)
            Kind::Flush => (Request::new(id, Op::Flush, unique, 0, 0), Class::Flush),
            Kind::Barrier => (Request::new(id, Op::Barrier, unique, 0, 0), Class::Barrier),
            Kind::FlushNow => (Request::new(id, Op::FlushCompleted, unique, 0, 0), Class::FlushNow),
        };
        if h.clients[c].requests.try_push(request).is_err() {
            return;
        }
        let op = match class {
            Class::Flush | Class::FlushNow => Op::Flush,
            _ => request.op().unwrap_or(Op::Read),
        };
        let gate = match class {
            Class::Flush | Class::Barrier => index,
            _ => self.sent[c]
                .iter()
                .rev()
                .find_map(|&j| match self.reqs[j].class {
                    Class::Barrier => Some(self.reqs[j].index + 1),
                    Class::Flush => Some(self.reqs[j].index),
                    _ => None,
                })
                .unwrap_or(0),
        };
        let mut data = class == Class::Data;
        if data {
            let (off, len) = (request.data_offset as usize, request.count as usize * BLOCK);
            let fill = if op == Op::Write { client_pattern(id, len) } else { vec![0xee; len] };
            self.memory.clients[c].write_bytes(off, &fill).unwrap();
            // A buffer another live request of the client uses may change
            // under either: neither's data is checked.
            for &j in &self.sent[c] {
                let o = &mut self.reqs[j];
                let (o_off, o_len) = (o.request.data_offset as usize, o.request.count as usize * BLOCK);
                if o.class == Class::Data && o.stage != Stage::Answered && o_off < off + len && off < o_off + o_len {
                    o.data = false;
                    data = false;
                }
            }
        }
        self.seq += 1;
        self.reqs.push(Req {
            client: c,
            index,
            request,
            class,
            op,
            gate,
            stage: Stage::Down { from: 0 },
            last: self.seq,
            started: false,
            slot: None,
            subs: [None; MAX_FILTERS],
            data,
            clean: false,
            entry: 0,
            side_of: None,
            state: [0; MAX_FILTERS],
            no_post: 0,
            disk: 0,
            link_of: None,
            source_block: request.block,
            extra_keys: 0,
        });
        self.sent[c].push(id as usize);
        self.live.entry((0, c, request.block)).or_insert(id as usize);
    }

    /// Whether filter `p` was stopped at some time since `since`.
    fn stopped_since(&self, p: usize, since: u64) -> bool {
        self.life[p].dead.iter().any(|&(from, until)| from <= self.seq && until.is_none_or(|u| u >= since))
    }

    /// A buffer of `count` blocks for client `c`: the first from block
    /// `slot` on (wrapping) that no live request of the client uses, else
    /// at `slot` anyway.
    fn buffer(&self, c: usize, slot: u64, count: u32) -> u64 {
        let last = 16 - u64::from(count);
        let used = |s: u64| {
            self.sent[c].iter().map(|&j| &self.reqs[j]).any(|o| {
                let o_slot = o.request.data_offset / BLOCK as u64;
                o.class == Class::Data && o.stage != Stage::Answered && o_slot < s + u64::from(count) && s < o_slot + u64::from(o.request.count)
            })
        };
        (0..=last).map(|k| (slot + k) % (last + 1)).find(|&s| !used(s)).unwrap_or(slot.min(last))
    }

    /// Whether request `id` has nothing left to be seen before its answer:
    /// answered, or every filter still due was stopped since it was last
    /// seen (so it may have failed there without a call).
    fn settled(&self, id: usize) -> bool {
        let r = &self.reqs[id];
        if matches!(r.class, Class::Refused | Class::Barrier) {
            return true;
        }
        let below = match r.stage {
            Stage::Answered => return true,
            Stage::Driver { .. } => return false,
            Stage::Down { from } => match self.next_pre(r.disk, r.op, from) {
                Some(p) if self.stopped_since(p, r.last) => p,
                _ => return false,
            },
            Stage::Up { below, .. } => below,
            // Its side I/O may be back, and the filter failed it without
            // calling it again.
            Stage::Side { at, child, .. } if self.settled(child) && self.stopped_since(at, r.last) => at,
            Stage::Side { .. } => return false,
            // Its redirect may be back: then the filter's post-op, and
            // those above, are due.
            Stage::Redirect { at, child, .. } if self.settled(child) => at + 1,
            Stage::Redirect { .. } => return false,
        };
        (r.entry..below).filter(|&q| wants(&self.chain[q], Hook::Post, r.op) && r.no_post & 1 << q == 0).all(|q| self.stopped_since(q, r.last))
    }

    /// Request `id` is seen moving (a call, the driver): not after a later
    /// request of its client behind a flush or barrier started, and if this
    /// is its start, not before the requests its gate names are answered.
    fn touch(&mut self, id: usize) -> Result<(), TestCaseError> {
        let r = &self.reqs[id];
        if matches!(r.class, Class::Side | Class::Link) {
            // (No client's order: its request started it.)
            self.reqs[id].last = self.seq;
            return Ok(());
        }
        let c = r.client;
        prop_assert!(
            r.index >= self.started_gate[c],
            "client {}'s {:?} still moves after a later request behind a flush or barrier started",
            c,
            r.request
        );
        if !r.started {
            for &j in &self.sent[c][..r.gate] {
                prop_assert!(
                    self.settled(j),
                    "client {}'s {:?} started before its earlier {:?} was answered (it is {:?})",
                    c,
                    r.request,
                    self.reqs[j].request,
                    self.reqs[j].stage
                );
            }
            self.started_gate[c] = self.started_gate[c].max(r.gate);
        }
        let r = &mut self.reqs[id];
        r.started = true;
        r.last = self.seq;
        Ok(())
    }

    /// Request `id` had no call at position `p`, where it was due: only if
    /// that filter was stopped between its last sighting and now. It fails
    /// there with `IoError`.
    fn skip(&mut self, id: usize, p: usize) -> Result<(), TestCaseError> {
        prop_assert!(
            self.stopped_since(p, self.reqs[id].last),
            "{:?} of client {} skipped filter {} ({:?}) though it was not stopped meanwhile (stage {:?})",
            self.reqs[id].request,
            self.reqs[id].client,
            p,
            self.chain[p],
            self.reqs[id].stage
        );
        let r = &mut self.reqs[id];
        if matches!(r.stage, Stage::Down { .. }) || r.subs[p].is_some() {
            r.clean = false;
        }
        r.stage = Stage::Up { below: p, status: Status::IoError, count: 0 };
        Ok(())
    }

    /// One upcall as the filter saw it; `verdicts` are the model filters'
    /// answers, in order.
    fn call(&mut self, call: &Call, verdicts: &mut impl Iterator<Item = (Verdict, u64, bool)>) -> Result<(), TestCaseError> {
        let f = call.filter;
        let spec = self.chain[f];
        prop_assert!(!call.entries.is_empty() && call.entries.len() <= MAX_BATCH, "an upcall of {} entries", call.entries.len());
        prop_assert!(self.life[f].alive, "filter {} was called while stopped: {:?}", f, call);
        self.seq += 1;
        let stopped = self.life[f].pending_stop > 0;
        let life = &mut self.life[f];
        if stopped {
            life.pending_stop -= 1;
            life.alive = false;
            life.dead.push((self.seq, None));
            self.stopped_now.push((f, call.entries.len() as u32));
        } else {
            life.restarts = 0;
        }
        let hook = call.entries[0].0.hook;
        let with_data = call.entries.iter().filter(|(io, _)| io.op.moves_data()).count();
        if spec.rights == 0 {
            prop_assert!(call.lends.is_empty(), "filter {} has no data rights but was lent {:?}", f, call.lends);
        } else {
            prop_assert_eq!(call.lends.len(), with_data, "filter {}: one lend per read or write: {:?}", f, call);
        }
        let mut grants = StdVec::new();
        for &(io, done) in &call.entries {
            prop_assert_eq!(io.hook, hook, "one upcall, one hook: {:?}", call);
            let place = self.places[f];
            prop_assert_eq!(io.position as usize, f - place.first, "the entry names the filter's position");
            let id = *self
                .live
                .get(&(place.disk, io.client as usize, io.block))
                .ok_or_else(|| TestCaseError::fail(format!("filter {f} (disk {}) got an entry no live request has: {io:?}", place.disk)))?;
            self.check_entry(id, f, &io, call)?;
            if io.grant != 0 {
                prop_assert!(!grants.contains(&io.grant), "two entries of one upcall share grant {}", io.grant);
                grants.push(io.grant);
            }
            let (outcome, left, no_post) = if stopped {
                (Outcome::Stopped, 0, false)
            } else {
                let (v, left, no_post) = verdicts.next().ok_or_else(|| TestCaseError::fail("a call without its verdicts"))?;
                (Outcome::Verdict(v), left, no_post)
            };
            match (hook, done) {
                (Hook::Pre, None) => self.pre(id, f, &io, outcome, left, no_post)?,
                (Hook::Post, Some(done)) => self.post(id, f, &io, done, outcome, left)?,
                _ => prop_assert!(false, "a {:?} entry with completion {:?}", hook, done),
            }
        }
        Ok(())
    }

    /// Entry `io` of a call to filter `f` is request `id`'s, with its lend.
    fn check_entry(&mut self, id: usize, f: usize, io: &Io, call: &Call) -> Result<(), TestCaseError> {
        let r = &self.reqs[id];
        prop_assert!(
            matches!(r.class, Class::Data | Class::Flush | Class::FlushNow | Class::Side | Class::Link),
            "filter {} got client {}'s {:?} request {:?}",
            f,
            r.client,
            r.class,
            r.request
        );
        let count = if r.op.moves_data() { r.request.count } else { 0 };
        prop_assert_eq!((io.op, io.client as usize, io.block, io.count), (r.op, r.client, r.request.block, count), "the entry is not {:?}", r.request);
        prop_assert!(io.id < MAX_SLOTS as u32, "entry id {} is no slot", io.id);
        match r.slot {
            Some(slot) => prop_assert_eq!(io.id, slot, "{:?} changed slot", r.request),
            None => {
                self.own_slot(id, io.id)?;
                self.reqs[id].slot = Some(io.id);
            }
        }
        let spec = self.chain[f];
        if spec.rights == 0 || !io.op.moves_data() {
            prop_assert_eq!(io.grant, 0, "filter {} ({:?}) got a grant for {:?}", f, spec, io);
            return Ok(());
        }
        let (lend, offset, _) = self.data_at(id, f);
        let expected = abi::Lend { lend, rights: spec.rights, _reserved: 0, len: count * BLOCK as u32, offset };
        let got = (io.grant as usize).checked_sub(1).and_then(|i| call.lends.get(i));
        prop_assert_eq!(got, Some(&expected), "filter {}'s grant of {:?} ({:?})", f, io, call.lends);
        Ok(())
    }

    /// Filter `p`'s pre-op of request `id` (entry `io`) had `outcome`,
    /// the filter leaving state word `left`.
    fn pre(&mut self, id: usize, p: usize, io: &Io, outcome: Outcome, left: u64, no_post: bool) -> Result<(), TestCaseError> {
        self.touch(id)?;
        let r = &self.reqs[id];
        match r.stage {
            Stage::Down { from } => {
                let next = self.next_pre(r.disk, r.op, from);
                prop_assert_eq!(next, Some(p), "{:?} had its pre-op at filter {} out of chain order (from {})", r.request, p, from);
                prop_assert_eq!((io.side, io.state), (None, 0), "filter {}'s first pre-op of {:?} tells no side I/O and no state", p, r.request);
            }
            Stage::Side { at, hook: Hook::Pre, state, .. } if at == p => self.called_again(id, p, io, state)?,
            _ => return Err(TestCaseError::fail(format!("a pre-op at filter {p} for {:?}, which is {:?}", r.request, r.stage))),
        }
        let (spec, place) = (self.chain[p], self.places[p]);
        let r = &mut self.reqs[id];
        let failed = Stage::Up { below: p, status: Status::IoError, count: 0 };
        if let Outcome::Verdict(v) = outcome {
            if valid(v, Hook::Pre, r.op, r.request.count, &spec, &place) {
                r.state[p] = left;
                // (A valid verdict's `NO_POST` holds; an invalid one's
                // nothing does.)
                if no_post {
                    r.no_post |= 1 << p;
                }
                if let Verdict::SideIo { .. } = v {
                    let stage = self.side_start(id, p, Hook::Pre, v, left, None)?;
                    self.reqs[id].stage = stage;
                    return Ok(());
                }
                if let Verdict::Redirect { .. } = v {
                    let stage = self.link_start(id, p, Hook::Pre, v)?;
                    self.reqs[id].stage = stage;
                    return Ok(());
                }
            }
        }
        let r = &mut self.reqs[id];
        r.stage = match outcome {
            Outcome::Stopped => failed,
            Outcome::Verdict(v) if !valid(v, Hook::Pre, r.op, r.request.count, &spec, &place) => failed,
            Outcome::Verdict(Verdict::Continue) => Stage::Down { from: p + 1 },
            Outcome::Verdict(Verdict::Substitute { offset }) => {
                r.subs[p] = Some(offset);
                r.data &= carries_data(&spec, r.op);
                Stage::Down { from: p + 1 }
            }
            Outcome::Verdict(Verdict::Complete { status, count }) => {
                // A read completed here was filled only by a filter that may.
                r.clean = status == Status::Ok && spec.rights & abi::GRANT_WRITE != 0;
                Stage::Up { below: p, status, count }
            }
            Outcome::Verdict(Verdict::Fail(status)) => Stage::Up { below: p, status, count: 0 },
            Outcome::Verdict(Verdict::Redirect { .. } | Verdict::Remap { .. } | Verdict::SideIo { .. }) => failed,
        };
        Ok(())
    }

    /// Filter `q`'s post-op of request `id` (entry `io`, seeing `done`)
    /// had `outcome`, the filter leaving state word `left`.
    fn post(&mut self, id: usize, q: usize, io: &Io, done: Done, outcome: Outcome, left: u64) -> Result<(), TestCaseError> {
        self.touch(id)?;
        match self.reqs[id].stage {
            // Called again after its side I/O.
            Stage::Side { at, hook: Hook::Post, state, done: seen, .. } if at == q => {
                self.called_again(id, q, io, state)?;
                let r = &self.reqs[id];
                prop_assert_eq!(Some(done), seen, "filter {}'s post-op of {:?}, called again, sees the same result from below", q, r.request);
            }
            _ => {
                self.past_stopped(id, Some(q))?;
                let (status, count) = loop {
                    let r = &self.reqs[id];
                    let Stage::Up { below, status, count } = r.stage else {
                        return Err(TestCaseError::fail(format!("a post-op at filter {q} for {:?}, which is {:?}", r.request, r.stage)));
                    };
                    match self.next_post(id, below) {
                        Some(e) if e == q => break (status, count),
                        Some(e) if e > q => self.skip(id, e)?,
                        next => prop_assert!(false, "{:?} had a post-op at filter {} but its next is {:?} (up from {})", r.request, q, next, below),
                    }
                };
                let r = &self.reqs[id];
                prop_assert_eq!(done, Done { status, count }, "filter {}'s post-op of {:?} must see the result from below", q, r.request);
                prop_assert_eq!(
                    (io.side, io.state),
                    (None, r.state[q]),
                    "filter {}'s first post-op of {:?} tells no side I/O, and the state its pre-op left",
                    q,
                    r.request
                );
            }
        }
        let (status, count) = (done.status, done.count);
        let (spec, place) = (self.chain[q], self.places[q]);
        if let Outcome::Verdict(v @ Verdict::SideIo { .. }) = outcome {
            if valid(v, Hook::Post, self.reqs[id].op, self.reqs[id].request.count, &spec, &place) {
                self.reqs[id].state[q] = left;
                let stage = self.side_start(id, q, Hook::Post, v, left, Some(done))?;
                self.reqs[id].stage = stage;
                return Ok(());
            }
        }
        if let Outcome::Verdict(v @ Verdict::Redirect { .. }) = outcome {
            if valid(v, Hook::Post, self.reqs[id].op, self.reqs[id].request.count, &spec, &place) {
                let r = &mut self.reqs[id];
                r.state[q] = left;
                // (The read comes into the buffer above this filter again,
                // which its post-op, called again, may overwrite: its data
                // is not checked.)
                if r.op == Op::Read {
                    r.clean = false;
                }
                let stage = self.link_start(id, q, Hook::Post, v)?;
                self.reqs[id].stage = stage;
                return Ok(());
            }
        }
        let r = &mut self.reqs[id];
        if r.subs[q].is_some() && (done.status != Status::Ok || matches!(outcome, Outcome::Stopped)) {
            // The substituting filter did not copy the read up.
            r.clean = false;
        }
        let (status, count) = match outcome {
            Outcome::Stopped => (Status::IoError, 0),
            Outcome::Verdict(v) if !valid(v, Hook::Post, r.op, r.request.count, &spec, &place) => (Status::IoError, 0),
            Outcome::Verdict(Verdict::Complete { status, count }) => (status, count),
            Outcome::Verdict(Verdict::Fail(status)) => (status, 0),
            Outcome::Verdict(_) => (status, count),
        };
        r.stage = Stage::Up { below: q, status, count };
        Ok(())
    }

    /// Filter `at`'s valid side I/O verdict `v` for request `id`, in
    /// `hook`, leaving `state` (a post-op having seen `done`): a request
    /// of its own starts just below the filter; `id` waits for it.
    fn side_start(&mut self, id: usize, at: usize, hook: Hook, v: Verdict, state: u64, done: Option<Done>) -> Result<Stage, TestCaseError> {
        let Verdict::SideIo { op, block, count, page } = v else { unreachable!("a side I/O") };
        let child = self.reqs.len();
        let disk = self.places[at].disk;
        prop_assert!(!self.live.contains_key(&(disk, SIDE_CLIENT, block)), "two live side I/O at block {}", block);
        let mut subs = [None; MAX_FILTERS];
        subs[at] = Some(u64::from(page) * BLOCK as u64);
        self.seq += 1;
        self.reqs.push(Req {
            client: SIDE_CLIENT,
            index: 0,
            request: Request::new(0, op, block, count, 0),
            class: Class::Side,
            op,
            gate: 0,
            stage: Stage::Down { from: at + 1 },
            last: self.seq,
            started: true,
            slot: None,
            subs,
            // (Its pages are the filter's alone until it is done.)
            data: op.moves_data(),
            clean: false,
            entry: at + 1,
            side_of: Some((id, at)),
            state: [0; MAX_FILTERS],
            no_post: 0,
            disk,
            link_of: None,
            source_block: block,
            extra_keys: 0,
        });
        self.live.insert((disk, SIDE_CLIENT, block), child);
        Ok(Stage::Side { at, hook, child, state, done })
    }

    /// Filter `at`'s valid redirect `v` for request `id`: a request of its
    /// own starts at the top of the linked disk's chain, seen there as
    /// from the client `id` came from, with `id`'s data as it stands at
    /// the filter; `id` waits for it.
    fn link_start(&mut self, id: usize, at: usize, hook: Hook, v: Verdict) -> Result<Stage, TestCaseError> {
        let Verdict::Redirect { block, .. } = v else { unreachable!("a redirect") };
        let child = self.reqs.len();
        let r = &self.reqs[id];
        let (client, op) = (r.client, r.op);
        let count = if op.moves_data() { r.request.count } else { 0 };
        prop_assert!(!self.live.contains_key(&(1, client, block)), "two live redirects at block {}", block);
        let first = self.n0;
        self.seq += 1;
        let data = r.data;
        self.reqs.push(Req {
            client,
            index: 0,
            request: Request::new(0, op, block, count, 0),
            class: Class::Link,
            op,
            gate: 0,
            stage: Stage::Down { from: first },
            last: self.seq,
            started: true,
            slot: None,
            subs: [None; MAX_FILTERS],
            data,
            clean: false,
            entry: first,
            side_of: None,
            state: [0; MAX_FILTERS],
            no_post: 0,
            disk: 1,
            link_of: Some((id, at)),
            source_block: block,
            extra_keys: 0,
        });
        self.live.insert((1, client, block), child);
        Ok(Stage::Redirect { at, hook, child })
    }

    /// Request `id` waited for its redirect, which is back: it goes up
    /// from just below the filter that redirected it with the redirect's
    /// result (as its path gives it, property 1). A read redirected in its
    /// pre-op brings the linked disk's data. The redirect's block (and its
    /// substitutes' bounce blocks) are free again.
    fn redirect_back(&mut self, id: usize) -> Result<(), TestCaseError> {
        let Stage::Redirect { at, hook, child } = self.reqs[id].stage else { unreachable!("waiting for a redirect") };
        let (status, count) = self.finish(child)?;
        let range = self.range(1);
        let c = &self.reqs[child];
        let extra = range.clone().filter(|&q| c.subs[q].is_some()).fold(0, |k, q| k ^ KEYS[q]);
        let (client, block, clean, data) = (c.client, c.request.block, c.clean, c.data);
        self.reqs[child].stage = Stage::Answered;
        self.live.remove(&(1, client, block));
        let mut filters = self.filters.borrow_mut();
        filters.release(range, client, block);
        filters.release_side(block);
        drop(filters);
        let r = &mut self.reqs[id];
        if hook == Hook::Pre {
            (r.source_block, r.extra_keys, r.clean) = (block, extra, clean);
            r.data &= data;
        }
        r.stage = Stage::Up { below: at + 1, status, count: count.min(r.request.count) };
        Ok(())
    }

    /// Request `id` waited for its side I/O, which is over: what the filter
    /// must hear of it (its path's result, as for a client's request). A
    /// side read that was answered `Ok` along a clean path left its data in
    /// the filter's pages. Its bounce pages and block are free again.
    /// Filter `p` is called again for request `id` (entry `io`) once its
    /// side I/O is back: with that I/O's result and the state it left.
    fn called_again(&mut self, id: usize, p: usize, io: &Io, state: u64) -> Result<(), TestCaseError> {
        let side = self.side_done(id)?;
        let r = &self.reqs[id];
        prop_assert_eq!(
            (io.side, io.state),
            (Some(side), state),
            "filter {} is called again for {:?} with its side I/O's result and the state it left",
            p,
            r.request
        );
        Ok(())
    }

    fn side_done(&mut self, id: usize) -> Result<Done, TestCaseError> {
        let Stage::Side { at, child, .. } = self.reqs[id].stage else { unreachable!("waiting for a side I/O") };
        let (status, count) = self.finish(child)?;
        let c = &self.reqs[child];
        if c.op == Op::Read && status == Status::Ok && c.data && c.clean {
            let len = c.request.count as usize * BLOCK;
            let mut expected = disk_pattern(c.source_block, c.request.count);
            xor(&mut expected, self.keys(child));
            let mut got = vec![0; len];
            self.memory.bounces[at].read_bytes(c.subs[at].unwrap_or(0) as usize, &mut got).unwrap();
            prop_assert!(got == expected, "filter {}'s side read {:?} was answered Ok with the wrong data in its pages (keys {:#x})", at, c.request, self.keys(child));
        }
        let (block, disk) = (c.request.block, c.disk);
        self.reqs[child].stage = Stage::Answered;
        self.live.remove(&(disk, SIDE_CLIENT, block));
        let range = self.range(disk);
        let mut filters = self.filters.borrow_mut();
        filters.release(range, SIDE_CLIENT, block);
        filters.release_side(block);
        Ok(Done { status, count })
    }

    /// Request `id` waited for its side I/O at a filter that was stopped
    /// meanwhile: once the side I/O was back, the filter failed it with
    /// `IoError` without a call.
    fn side_skipped(&mut self, id: usize) -> Result<(), TestCaseError> {
        let Stage::Side { at, .. } = self.reqs[id].stage else { return Ok(()) };
        self.side_done(id)?;
        self.skip(id, at)
    }

    /// The driver of disk `disk` got `sent`.
    fn arrived(&mut self, sent: &Request, disk: usize) -> Result<(), TestCaseError> {
        // (A side I/O has id 0, and a block no other live one has, past
        // that of a client's request 0; so has a redirect, and the linked
        // disk gets nothing else.)
        let id = match (disk, sent.id) {
            (0, 0) => self.live.get(&(0, SIDE_CLIENT, sent.block)).copied().unwrap_or(0),
            (0, id) => id as usize,
            (_, 0) => {
                let found = self.live.iter().find(|&(&(d, _, b), _)| d == disk && b == sent.block).map(|(_, &id)| id);
                found.ok_or_else(|| TestCaseError::fail(format!("the linked disk's driver got a request no live redirect or side I/O has: {sent:?}")))?
            }
            _ => return Err(TestCaseError::fail(format!("the linked disk's driver got a request with an id: {sent:?}"))),
        };
        prop_assert!(id < self.reqs.len(), "the driver got a request no client sent: {:?}", sent);
        let r = &self.reqs[id];
        prop_assert!(
            matches!(r.class, Class::Data | Class::Flush | Class::FlushNow | Class::Side | Class::Link),
            "a {:?} request reached the driver: {:?}",
            r.class,
            r.request
        );
        prop_assert_eq!(r.disk, disk, "{:?} reached the driver of disk {}", r.request, disk);
        self.seq += 1;
        self.touch(id)?;
        let r = &self.reqs[id];
        let Stage::Down { from } = r.stage else {
            return Err(TestCaseError::fail(format!("{:?} reached the driver as {sent:?} while {:?}", r.request, r.stage)));
        };
        let missed = self.next_pre(r.disk, r.op, from);
        prop_assert_eq!(missed, None, "{:?} reached the driver without the pre-op of filter {:?}", r.request, missed);
        let slot = sent.tag.wrapping_sub(SLOT_TAG);
        prop_assert!(slot < MAX_SLOTS as u32, "tag {:#x} names no slot", sent.tag);
        match r.slot {
            Some(s) => prop_assert_eq!(s, slot, "{:?} reached the driver with another slot than its upcalls named", r.request),
            None => self.own_slot(id, slot)?,
        }
        let r = &self.reqs[id];
        let moves = r.op.moves_data();
        let (_, _, addr) = self.data_at(id, self.range(disk).end);
        let expected = Request {
            id: r.request.id,
            opcode: if moves { r.op.raw() } else { Op::FlushCompleted.raw() },
            block: r.request.block,
            count: if moves { r.request.count } else { 0 },
            tag: SLOT_TAG + slot,
            // (A flush's data address means nothing.)
            data_offset: if moves { addr } else { sent.data_offset },
        };
        prop_assert_eq!(*sent, expected, "the driver's request is not {:?} as the chain left it", r.request);
        for &other in &self.at_driver {
            prop_assert!(self.reqs[other].slot != Some(slot), "two requests at the driver in slot {}", slot);
        }
        self.at_driver.push(id);
        let there = self.at_driver.iter().filter(|&&j| self.reqs[j].disk == disk).count();
        prop_assert!(there <= self.driver_capacity, "more at disk {}'s driver than its rings can answer", disk);
        if r.op == Op::Write && self.data_ok(id) {
            let len = r.request.count as usize * BLOCK;
            let mut expected = self.source(id, len);
            xor(&mut expected, self.keys(id));
            let mem = self.memory.at(addr, len as u64).ok_or_else(|| TestCaseError::fail(format!("the driver cannot reach {addr:#x}")))?;
            let mut got = vec![0; len];
            mem.read_bytes(0, &mut got).unwrap();
            prop_assert!(got == expected, "{:?} reached the driver with the wrong data (keys {:#x})", r.request, self.keys(id));
        }
        let r = &mut self.reqs[id];
        r.slot = Some(slot);
        r.stage = Stage::Driver { sent: *sent };
        Ok(())
    }

    /// The driver completes up to `n` of its requests.
    fn complete(&mut self, h: &mut ChainHarness, n: usize, mut pick: u32, fail: u32) -> Result<(), TestCaseError> {
        for k in 0..n.min(self.at_driver.len()) {
            let id = self.at_driver.remove(pick as usize % self.at_driver.len());
            pick = pick.rotate_right(5);
            let status = if fail >> (k % 32) & 1 == 1 && fail % 3 == 0 { Status::IoError } else { Status::Ok };
            let Stage::Driver { sent } = self.reqs[id].stage else { unreachable!("at the driver") };
            let op = self.reqs[id].op;
            let count = if status == Status::Ok && op.moves_data() { sent.count } else { 0 };
            if status == Status::Ok && op == Op::Read {
                let len = sent.count as usize * BLOCK;
                let mem = self.memory.at(sent.data_offset, len as u64).ok_or_else(|| TestCaseError::fail(format!("the driver cannot reach {sent:?}")))?;
                mem.write_bytes(0, &disk_pattern(sent.block, sent.count)).unwrap();
            }
            let disk = self.reqs[id].disk;
            let driver = if disk == 0 { &mut h.driver } else { h.linked.as_mut().expect("the linked disk's driver") };
            let pushed = driver.responses.try_push(Response::new(sent.id, status, count).with_tag(sent.tag));
            prop_assert!(pushed.is_ok(), "the driver's response ring is full");
            self.seq += 1;
            self.touch(id)?;
            let below = self.range(disk).end;
            let r = &mut self.reqs[id];
            r.stage = Stage::Up { below, status, count };
            r.clean = status == Status::Ok;
        }
        Ok(())
    }

    /// Request `id` is seen again going up (at filter `post`'s post-op, or
    /// answered): bring its model there past what a stopped filter did to
    /// it. Waiting for a side I/O, the filter was stopped meanwhile and
    /// failed it without calling it again; its redirect is back, it goes up
    /// from below the filter; a pre-op it never had, it failed there.
    fn past_stopped(&mut self, id: usize, post: Option<usize>) -> Result<(), TestCaseError> {
        if let Stage::Side { .. } = self.reqs[id].stage {
            self.side_skipped(id)?;
        }
        if let Stage::Redirect { .. } = self.reqs[id].stage {
            self.redirect_back(id)?;
        }
        if let Stage::Down { from } = self.reqs[id].stage {
            match (self.next_pre(self.reqs[id].disk, self.reqs[id].op, from), post) {
                (Some(p), _) => self.skip(id, p)?,
                (None, Some(q)) => prop_assert!(false, "{:?} had a post-op at filter {} without reaching the driver", self.reqs[id].request, q),
                (None, None) => prop_assert!(false, "{:?} was answered without reaching the driver", self.reqs[id].request),
            }
        }
        Ok(())
    }

    /// What request `id` must be answered with once it went past every
    /// filter still due (which must all have been stopped).
    fn finish(&mut self, id: usize) -> Result<(Status, u32), TestCaseError> {
        self.past_stopped(id, None)?;
        loop {
            let r = &self.reqs[id];
            let Stage::Up { below, status, count } = r.stage else {
                return Err(TestCaseError::fail(format!("{:?} was answered while {:?}", r.request, r.stage)));
            };
            match self.next_post(id, below) {
                Some(q) => self.skip(id, q)?,
                None => return Ok((status, count)),
            }
        }
    }

    /// Client `c` got `a`.
    fn answered(&mut self, c: usize, a: &Response) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.tag, 0, "answers reach the client untagged");
        let id = a.id as usize;
        prop_assert!(id < self.reqs.len() && self.reqs[id].client == c, "client {} got an answer to a request it never sent: {:?}", c, a);
        let r = &self.reqs[id];
        prop_assert!(!matches!(r.class, Class::Side | Class::Link), "client {} got an answer for a side I/O or redirect: {:?}", c, a);
        prop_assert!(r.stage != Stage::Answered, "answered twice: {:?}", a);
        for &j in &self.sent[c][..r.gate] {
            prop_assert!(self.reqs[j].stage == Stage::Answered, "client {}'s {:?} was answered before its earlier {:?}", c, r.request, self.reqs[j].request);
        }
        self.seq += 1;
        let status = a.status();
        prop_assert!(status.is_ok(), "an unknown status: {:?}", a);
        let expected = match r.class {
            Class::Refused => (Status::InvalidRequest, 0),
            Class::Barrier => (Status::Ok, 0),
            _ => self.finish(id)?,
        };
        let r = &self.reqs[id];
        prop_assert_eq!((status.unwrap(), a.count), expected, "client {}'s {:?}: not the answer its path gives (subs {:?})", c, r.request, r.subs);
        if r.class == Class::Data && r.op == Op::Read && expected.0 == Status::Ok && r.data && r.clean {
            let len = r.request.count as usize * BLOCK;
            let mut expected = disk_pattern(r.source_block, r.request.count);
            xor(&mut expected, self.keys(id));
            let mut got = vec![0; len];
            self.memory.clients[c].read_bytes(r.request.data_offset as usize, &mut got).unwrap();
            prop_assert!(got == expected, "client {}'s {:?} was answered Ok with the wrong data (keys {:#x})", c, r.request, self.keys(id));
        }
        let block = r.request.block;
        self.reqs[id].stage = Stage::Answered;
        if self.live.get(&(0, c, block)) == Some(&id) {
            self.live.remove(&(0, c, block));
            self.filters.borrow_mut().release(self.range(0), c, block);
        }
        Ok(())
    }

    /// Restarted filters the server calls again now (`alive`: whether it
    /// does, by filter). The server may have failed requests there earlier
    /// in the same run: its dead time ends with the run (`end_resumed`).
    fn resumed(&mut self, alive: impl Fn(usize) -> bool) {
        for life in self.life.iter_mut().enumerate().filter(|(f, l)| l.resuming && alive(*f)).map(|(_, l)| l) {
            (life.resuming, life.alive, life.closing) = (false, true, true);
        }
    }

    /// The end of a run: the dead time of filters called again in it ends.
    fn end_resumed(&mut self) {
        self.seq += 1;
        for life in self.life.iter_mut().filter(|l| l.closing) {
            life.closing = false;
            life.dead.last_mut().unwrap().1 = Some(self.seq);
        }
    }

    /// The run's stopped filters: the server reports each and restarts it
    /// unless it was restarted 3 times in a row already.
    fn end_of_run(&mut self, events: &mut StdVec<Event>) -> Result<(), TestCaseError> {
        let mut expected = StdVec::new();
        for (f, failed) in std::mem::take(&mut self.stopped_now) {
            let life = &mut self.life[f];
            let restart = life.restarts < 3;
            expected.push(Event::FilterStopped { filter: f, failed, restart });
            if restart {
                life.restarts += 1;
                life.resuming = true;
            }
        }
        let got: StdVec<Event> = events.drain(..).filter(|e| matches!(e, Event::FilterStopped { .. })).collect();
        prop_assert_eq!(got, expected, "the server's fault handling");
        Ok(())
    }
}

// ------------------------------------------------------------ the steps

/// The server runs; the model sees its upcalls, what it sent the driver and
/// its fault handling; then the server must have nothing left to do.
fn run(h: &mut ChainHarness, m: &mut Model) -> Result<(), TestCaseError> {
    m.filters.borrow_mut().sides_now = 0;
    h.run();
    m.resumed(|f| h.server.filters[f].alive);
    let calls = h.take_calls();
    let verdicts = std::mem::take(&mut m.filters.borrow_mut().verdicts);
    let mut verdicts = verdicts.into_iter();
    for call in &calls {
        m.call(call, &mut verdicts)?;
    }
    prop_assert!(verdicts.next().is_none(), "verdicts left over");
    let errors = std::mem::take(&mut m.filters.borrow_mut().errors);
    prop_assert!(errors.is_empty(), "a model filter could not reach the data it was lent, or its side I/O is not what it meant: {:?}", errors);
    for r in h.driver_requests() {
        m.arrived(&r, 0)?;
    }
    if let Some(linked) = h.linked.as_mut() {
        for r in core::iter::from_fn(|| linked.requests.try_pop().unwrap()).collect::<StdVec<_>>() {
            m.arrived(&r, 1)?;
        }
    }
    m.end_of_run(&mut h.events)?;
    m.resumed(|f| h.server.filters[f].alive);
    m.end_resumed();
    // The server waits only when nothing is left it could do without news:
    // at once again, it does nothing.
    let rings = |h: &ChainHarness| -> StdVec<u32> {
        h.clients
            .iter()
            .flat_map(|c| [c.requests.len().unwrap(), c.responses.len().unwrap()])
            .chain([h.driver.requests.len().unwrap()])
            .chain(h.linked.iter().map(|l| l.requests.len().unwrap()))
            .collect()
    };
    let before = rings(h);
    h.run();
    let calls = h.calls.borrow().len();
    prop_assert!(calls == 0 && rings(h) == before, "the server stopped with work left: run again at once, it made {} upcalls and left its rings {:?} as {:?}", calls, before, rings(h));
    Ok(())
}

fn pop(h: &mut ChainHarness, m: &mut Model, c: usize) -> Result<(), TestCaseError> {
    for a in h.responses(c) {
        m.answered(c, &a)?;
    }
    Ok(())
}

/// 512 cases, or what `PROPTEST_CASES` says; a failure is reported with
/// its shrunk case, not saved to a file.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_traffic_through_random_chains_is_answered_once_as_its_path_says_with_its_data_in_place(
        chain in prop::collection::vec(filter_case(), 1..5),
        // (One case in three with a linked disk: 0 to 2 filters of its
        // own, linked to by the first disk's filters whose link level is
        // not 0.)
        linked in prop::option::weighted(0.33, prop::collection::vec(filter_case(), 0..3)),
        // (One case in four crowded: queues that take every slot a client
        // may take.)
        capacities in prop_oneof![
            3 => prop::collection::vec(prop_oneof![Just(2u32), Just(4), Just(8)], 1..4),
            1 => prop::collection::vec(Just(64u32), 2..4),
        ],
        driver_capacity in prop_oneof![Just(1u32), Just(2), Just(4), Just(16)],
        seed in any::<u64>(),
        actions in prop::collection::vec(action(), 0..150),
    ) {
        let n0 = chain.len();
        let second = linked.clone().unwrap_or_default();
        let all: StdVec<FilterCase> = chain.iter().chain(&second).copied().collect();
        let places: StdVec<Place> = (0..all.len())
            .map(|f| match f < n0 {
                true => Place { disk: 0, first: 0, below: DISK_BLOCKS, links: u8::from(linked.is_some() && all[f].link != 0) },
                false => Place { disk: 1, first: n0, below: LINKED_BLOCKS, links: 0 },
            })
            .collect();
        let specs: StdVec<Spec> = all.iter().map(|f| f.spec).collect();
        let filters = Rc::new(RefCell::new(Filters::new(&all, &places, seed)));
        let model_filters = filters.clone();
        let decide: Decide = Box::new(move |f, io, done, data, bounce| model_filters.borrow_mut().decide(f, io, done, data, bounce));
        let links: StdVec<bool> = places.iter().map(|p| p.links != 0).collect();
        let second_specs: StdVec<Spec> = second.iter().map(|f| f.spec).collect();
        let disk1 = linked.as_ref().map(|_| LinkedDisk { chain: &second_specs, blocks: LINKED_BLOCKS, links: &links });
        let mut h = chain_harness_linked(&capacities, &[], &specs[..n0], disk1, driver_capacity, decide, None);
        h.up.state = filters.borrow().state.clone();
        h.up.no_post = filters.borrow().no_post.clone();
        h.events.clear();
        prop_assert!(h.take_calls().is_empty());
        let clients = capacities.len();
        let mut m = Model::new(&all, &places, n0, clients, driver_capacity, filters, h.memory.clone());
        for action in actions {
            match action {
                Action::Push { client, kind } => m.push(&mut h, client % clients, &kind),
                Action::Run => run(&mut h, &mut m)?,
                Action::Complete { n, pick, fail } => m.complete(&mut h, n, pick, fail)?,
                Action::Pop { client } => pop(&mut h, &mut m, client % clients)?,
                Action::Stop { filter } => {
                    let f = filter % specs.len();
                    h.up.stop.push(f);
                    m.life[f].pending_stop += 1;
                }
                Action::Burst { client, n, seed } => {
                    let c = client % clients;
                    for k in 0..n {
                        if h.clients[c].requests.is_full().unwrap() {
                            break;
                        }
                        m.push(&mut h, c, &burst_kind(seed, k));
                    }
                }
            }
        }
        // Drain: no more stops; the driver completes everything and the
        // clients take their answers until all are answered. A round in
        // which nothing moves leaves the next the same: a deadlock.
        h.up.stop.clear();
        m.life.iter_mut().for_each(|l| l.pending_stop = 0);
        loop {
            let seen = m.seq;
            run(&mut h, &mut m)?;
            m.complete(&mut h, usize::MAX, 0, 0)?;
            for c in 0..clients {
                pop(&mut h, &mut m, c)?;
            }
            if m.reqs.iter().all(|r| r.stage == Stage::Answered) {
                break;
            }
            prop_assert!(m.seq != seen, "nothing moves while requests wait ({} slots free): a deadlock", h.server.table.free());
        }
        for r in &m.reqs {
            prop_assert!(r.stage == Stage::Answered, "client {} never got an answer to {:?} ({:?})", r.client, r.request, r.stage);
        }
        prop_assert!(m.at_driver.is_empty());
        prop_assert_eq!(h.server.table.free(), MAX_SLOTS, "every slot of the in-flight table is free again");
    }
}
