//! Filter chains on the host: a server with filters whose upcalls run
//! model filters over the real call pages, with grants resolved to the
//! client and bounce memory the lends name.

use super::*;
use blk::config::{ServerFilter, NO_LEND};
use blk::filter::{self, Completion as Done, DataError, Hook, Io, RequestData, Verdict};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

mod hostile;
mod model;
mod setup;

pub const CLIENT_DATA: u64 = DATA_SIZE;
pub const BOUNCE_SIZE: u64 = 16 * 4096;

pub fn bounce_paddr(f: usize) -> u64 {
    0x6000_0000 + f as u64 * 0x10_0000
}

/// A page-aligned page of host memory, as a call page is in a PD.
fn page() -> Shared<'static> {
    #[repr(C, align(4096))]
    struct Page([u64; 512]);
    let p: &'static mut Page = Box::leak(Box::new(Page([0; 512])));
    Shared::from_words(&mut p.0)
}

pub fn client_paddr(c: usize) -> u64 {
    0x5100_0000 + c as u64 * 0x10_0000
}

/// A filter in a test chain.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub hooks: u8,
    pub ops: u8,
    pub rights: u8,
    pub bounce: bool,
    /// The operations it wants its pre-op for (`ServerFilter::pre_ops`;
    /// 0: all of `ops`).
    pub pre_ops: u8,
    /// `ServerFilter::max_blocks` (0: no limit).
    pub max_blocks: u32,
}

impl Spec {
    pub const PASS: Spec = Spec { hooks: 3, ops: 0xff, rights: 0, bounce: false, pre_ops: 0, max_blocks: 0 };
}

/// One upcall as the filter saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub filter: usize,
    pub entries: StdVec<(Io, Option<Done>)>,
    pub lends: StdVec<abi::Lend>,
}

/// Memory the model grants reach: clients' data regions and filters'
/// bounce buffers, by physical address.
pub struct Memory {
    pub clients: StdVec<Shared<'static>>,
    pub bounces: StdVec<Shared<'static>>,
}

impl Memory {
    /// The memory at device address `addr`, `len` bytes.
    pub fn at(&self, addr: u64, len: u64) -> Option<Shared<'static>> {
        for (c, mem) in self.clients.iter().enumerate() {
            if let Some(off) = addr.checked_sub(client_paddr(c)).filter(|&o| o + len <= CLIENT_DATA) {
                return mem.window(off as usize, len as usize).ok();
            }
        }
        for (f, mem) in self.bounces.iter().enumerate() {
            if let Some(off) = addr.checked_sub(bounce_paddr(f)).filter(|&o| o + len <= BOUNCE_SIZE) {
                return mem.window(off as usize, len as usize).ok();
            }
        }
        None
    }
}

/// What a model filter decides; it gets the call page entry and a way to
/// reach the data, and may use its own bounce buffer.
pub type Decide = Box<dyn FnMut(usize, &Io, Option<Done>, &dyn RequestData, Shared<'static>) -> Verdict>;

/// The grants of one upcall, resolved as the kernel would: lend `i` of
/// the call is reached as grant `i + 1` of an entry.
struct Grants<'m> {
    mem: &'m Memory,
    lends: &'m [abi::Lend],
    /// Which lend index names which region: clients first, then bounces by
    /// position (see `ChainHarness`).
    clients: usize,
    chain: &'m [usize],
}

impl Grants<'_> {
    fn region(&self, io: &Io) -> Result<(Shared<'static>, &abi::Lend), DataError> {
        let l = self.lends.get((io.grant as usize).checked_sub(1).ok_or(DataError::NoAccess)?).ok_or(DataError::NoAccess)?;
        let idx = l.lend as usize;
        let base = if idx < self.clients {
            client_paddr(idx)
        } else {
            bounce_paddr(*self.chain.get(idx - self.clients).ok_or(DataError::NoAccess)?)
        };
        let mem = self.mem.at(base + l.offset, u64::from(l.len)).ok_or(DataError::OutOfRange)?;
        Ok((mem, l))
    }
}

impl RequestData for Grants<'_> {
    fn read(&self, io: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
        let (mem, _) = self.region(io)?;
        mem.read_bytes(offset as usize, out).map_err(|_| DataError::OutOfRange)
    }
    fn write(&self, io: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
        let (mem, l) = self.region(io)?;
        if l.rights & abi::GRANT_WRITE == 0 {
            return Err(DataError::ReadOnly);
        }
        mem.write_bytes(offset as usize, data).map_err(|_| DataError::OutOfRange)
    }
}

/// A model filter's setup dialogue: filter, the call, its bounce buffer.
pub type SetupFn = Box<dyn FnMut(usize, filter::SetupCall, Shared<'static>) -> filter::SetupStep>;

/// The upcalls of a test: model filters deciding through `decide`, every
/// call recorded; a filter listed in `stop` fails its next call as if the
/// kernel stopped it.
pub struct ModelUpcalls {
    pub pages: StdVec<Shared<'static>>,
    pub memory: Rc<Memory>,
    pub decide: Decide,
    pub calls: Rc<RefCell<StdVec<Call>>>,
    pub stop: StdVec<usize>,
    pub clients: usize,
    /// Filter index of each chain position.
    pub chain: StdVec<usize>,
    /// The setup dialogue of filters with the setup hook.
    pub setup: Option<SetupFn>,
    /// Setup calls so far: (filter, call).
    pub setups: StdVec<(usize, filter::SetupCall)>,
    /// The state word (5) a model filter leaves with the verdict `decide`
    /// returns, if `decide` set it; else word 5 stays as the server wrote
    /// it (`io.state`).
    pub state: Rc<Cell<Option<u64>>>,
    /// Set by `decide` for a pre-op whose filter needs no post-op for the
    /// request: the verdict goes with `NO_POST`.
    pub no_post: Rc<Cell<bool>>,
}

impl Upcalls for ModelUpcalls {
    fn call(&mut self, f: usize, n: usize, lends: &[abi::Lend]) -> Result<(), CallError> {
        let page = filter::call_page(self.pages[f]).unwrap();
        let entries: StdVec<_> = (0..n as u32).map(|i| page.get(i).io().expect("the server writes entries a filter can read")).collect();
        self.calls.borrow_mut().push(Call { filter: f, entries: entries.clone(), lends: lends.to_vec() });
        if let Some(i) = self.stop.iter().position(|&s| s == f) {
            self.stop.remove(i);
            return Err(CallError::Stopped);
        }
        let memory = self.memory.clone();
        let grants = Grants { mem: &memory, lends, clients: self.clients, chain: &self.chain };
        for (i, (io, done)) in entries.into_iter().enumerate() {
            let v = (self.decide)(f, &io, done, &grants, memory.bounces[f]);
            let mut e = page.get(i as u32);
            e.set_verdict(v);
            if let Some(state) = self.state.take() {
                e.words[5] = state;
            }
            if self.no_post.take() {
                e.words[6] |= filter::NO_POST;
            }
            page.set(i as u32, &e);
        }
        Ok(())
    }

    fn setup(&mut self, f: usize, mrs: [u64; filter::SETUP_MRS]) -> Result<[u64; 4], CallError> {
        let call = filter::SetupCall::from_mrs(mrs);
        self.setups.push((f, call));
        if let Some(i) = self.stop.iter().position(|&s| s == f) {
            self.stop.remove(i);
            return Err(CallError::Stopped);
        }
        let step = match &mut self.setup {
            Some(setup) => setup(f, call, self.memory.bounces[f]),
            None => filter::SetupStep::Ready { first: 0, blocks: call.below },
        };
        Ok(step.mrs())
    }
}

pub struct ChainHarness {
    pub server: Server<'static>,
    pub driver: Responder<'static>,
    /// The driver's end of the second disk's ring (`chain_harness_linked`).
    pub linked: Option<Responder<'static>>,
    pub clients: StdVec<Requester<'static>>,
    pub up: ModelUpcalls,
    pub events: StdVec<Event>,
    pub calls: Rc<RefCell<StdVec<Call>>>,
    pub memory: Rc<Memory>,
}

/// A server driving one disk (`DISK_BLOCKS` blocks) with `clients` whole-
/// disk clients of the given queue capacities and the chain `chain`
/// (position order). Filter f's lends on its channel: client c's data
/// region is lend c; the bounce buffer of the filter at position q above
/// it (if it has one) is lend `clients + q`.
pub fn chain_harness(capacities: &[u32], chain: &[Spec], driver_capacity: u32, decide: Decide) -> ChainHarness {
    chain_harness_with_setup(capacities, chain, driver_capacity, decide, None)
}

/// As `chain_harness`, with the setup dialogue `setup` for the filters
/// whose hooks have `filter::SETUP_HOOK`.
pub fn chain_harness_with_setup(capacities: &[u32], chain: &[Spec], driver_capacity: u32, decide: Decide, setup: Option<SetupFn>) -> ChainHarness {
    chain_harness_at(capacities, &[], chain, driver_capacity, decide, setup)
}

/// As `chain_harness_with_setup`, client c attaching at the filter at
/// position `entries[c]` (0 if not listed).
pub fn chain_harness_at(capacities: &[u32], entries: &[u32], chain: &[Spec], driver_capacity: u32, decide: Decide, setup: Option<SetupFn>) -> ChainHarness {
    chain_harness_linked(capacities, entries, chain, None, driver_capacity, decide, setup)
}

/// A second disk the server drives (configuration disk 1, no clients of
/// its own): `blocks` blocks behind its own driver ring (`ChainHarness::
/// linked`), its chain `chain` (filters `n .. n + chain.len()` of the
/// server, after the first disk's `n`), and per filter of the first disk
/// whether its link 0 names it.
pub struct LinkedDisk<'s> {
    pub chain: &'s [Spec],
    pub blocks: u64,
    pub links: &'s [bool],
}

/// As `chain_harness_at`, with a second disk `linked` if given. Lends as
/// for one disk, by the server's filter numbers: the bounce buffer of
/// filter q is lend `clients + q`; a filter of the second disk is lent
/// every client's region and the bounce buffers of every filter of the
/// first disk (a redirected request's data may be there) and of those
/// above it in its own chain.
pub fn chain_harness_linked(
    capacities: &[u32],
    entries: &[u32],
    chain: &[Spec],
    linked: Option<LinkedDisk<'_>>,
    driver_capacity: u32,
    decide: Decide,
    setup: Option<SetupFn>,
) -> ChainHarness {
    let config: &'static mut ServerConfig = Box::leak(Box::new(ServerConfig::UNSET));
    config.magic = MAGIC;
    config.disk_count = 1 + u32::from(linked.is_some());
    config.client_count = capacities.len() as u32;
    let second = linked.as_ref().map_or(&[][..], |l| l.chain);
    let n0 = chain.len();
    config.filter_count = (n0 + second.len()) as u32;
    let dlayout = QueueLayout::new(driver_capacity).unwrap();
    // Disk d: its driver ring on channel 40 + d, its probe page.
    let disk = |d: usize, layout: &QueueLayout| ServerDisk {
        queue: QueueRegion { vaddr: 0, size: layout.size() as u64, capacity: driver_capacity, channel: 40 + d as u32 },
        probe: DmaRegion { vaddr: 0, paddr: 0x5000_0000 + d as u64 * 0x80_0000, size: 4096 },
        name: name_field(&format!("disk{d}")),
    };
    config.disks[0] = disk(0, &dlayout);
    let dq = Shared::from_words(words(dlayout.size().next_multiple_of(8)));
    let mut regions = Regions::none();
    regions.disk_queues[0] = Some(dq);
    regions.probes[0] = Some(Shared::from_words(words(4096)));
    let mut ends = StdVec::new();
    let mut client_data = StdVec::new();
    for (i, &capacity) in capacities.iter().enumerate() {
        let layout = QueueLayout::new(capacity).unwrap();
        config.clients[i] = ServerClient {
            queue: QueueRegion { vaddr: 0, size: layout.size() as u64, capacity, channel: i as u32 },
            data: DmaRegion { vaddr: 0, paddr: client_paddr(i), size: DATA_SIZE },
            disk: 0,
            partition: 0,
            name: name_field(&format!("client{i}")),
            entry: entries.get(i).copied().unwrap_or(0),
            flags: 0,
        };
        let q = Shared::from_words(words(layout.size().next_multiple_of(8)));
        regions.client_queues[i] = Some(q);
        ends.push(Requester::new(q, layout).unwrap());
        client_data.push(Shared::from_words(words(DATA_SIZE as usize)));
    }
    let mut linked_end = None;
    if let Some(l) = &linked {
        let layout = QueueLayout::new(driver_capacity).unwrap();
        config.disks[1] = disk(1, &layout);
        let q = Shared::from_words(words(layout.size().next_multiple_of(8)));
        regions.disk_queues[1] = Some(q);
        regions.probes[1] = Some(Shared::from_words(words(4096)));
        let mut end = Responder::new(q, layout).unwrap();
        end.info.publish(&StorageInfo::new(l.blocks, false, driver_capacity));
        linked_end = Some(end);
    }
    let all: StdVec<Spec> = chain.iter().chain(second).copied().collect();
    let mut pages = StdVec::new();
    let mut bounces = StdVec::new();
    for (p, spec) in all.iter().enumerate() {
        let (disk, position) = if p < n0 { (0, p) } else { (1, p - n0) };
        let mut lend_client = [NO_LEND; blk::config::MAX_CLIENTS];
        let mut lend_bounce = [NO_LEND; blk::config::MAX_FILTERS];
        if spec.rights != 0 {
            for (c, l) in lend_client.iter_mut().enumerate().take(capacities.len()) {
                *l = c as u8;
            }
            // (Above it: the filters before it in its chain, and for the
            // second disk's, every filter of the first.)
            for q in 0..p {
                if all[q].bounce {
                    lend_bounce[q] = (capacities.len() + q) as u8;
                }
            }
        }
        let mut links = [blk::config::NO_LINK; blk::config::MAX_LINKS];
        if linked.as_ref().is_some_and(|l| p < n0 && l.links.get(p).copied().unwrap_or(false)) {
            links[0] = 1;
        }
        config.filters[p] = ServerFilter {
            name: name_field(&format!("f{p}")),
            calls: QueueRegion { vaddr: 0, size: 4096, capacity: 0, channel: 20 + p as u32 },
            bounce: DmaRegion { vaddr: 0, paddr: bounce_paddr(p), size: if spec.bounce { BOUNCE_SIZE } else { 0 } },
            disk,
            position: position as u32,
            channel: 20 + p as u32,
            child: p as u32,
            hooks: spec.hooks,
            ops: spec.ops,
            rights: spec.rights,
            restart: 1,
            lend_client,
            lend_bounce,
            links,
            pre_ops: spec.pre_ops,
            post_ops: 0,
            max_blocks: spec.max_blocks.to_le_bytes(),
            _reserved: [0; 2],
        };
        let page = page();
        regions.filter_calls[p] = Some(page);
        pages.push(page);
        bounces.push(Shared::from_words(words(BOUNCE_SIZE as usize)));
    }
    let server = Server::new(config, regions).unwrap();
    let mut driver = Responder::new(dq, dlayout).unwrap();
    driver.info.publish(&StorageInfo::new(DISK_BLOCKS, false, driver_capacity));
    let memory = Rc::new(Memory { clients: client_data, bounces });
    let calls = Rc::new(RefCell::new(StdVec::new()));
    let up = ModelUpcalls {
        pages,
        memory: memory.clone(),
        decide,
        calls: calls.clone(),
        stop: StdVec::new(),
        clients: capacities.len(),
        chain: (0..all.len()).collect(),
        setup,
        setups: StdVec::new(),
        state: Rc::new(Cell::new(None)),
        no_post: Rc::new(Cell::new(false)),
    };
    let mut h = ChainHarness { server, driver, linked: linked_end, clients: ends, up, events: StdVec::new(), calls, memory };
    h.run();
    h
}

impl ChainHarness {
    pub fn run(&mut self) -> Wake {
        let events = &mut self.events;
        let wake = self.server.run_with(&mut |e| events.push(e), &mut self.up);
        // The server's fault handler, as its PD shell runs it.
        let stopped: StdVec<usize> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::FilterFailed { filter, error: CallError::Stopped, .. } => Some(*filter),
                _ => None,
            })
            .collect();
        self.events.retain(|e| !matches!(e, Event::FilterFailed { .. }));
        for f in stopped {
            let child = self.server.filters[f].config.child as usize;
            let events = &mut self.events;
            if let Some(f) = self.server.filter_faulted(child, &mut |e| events.push(e)) {
                self.server.filter_restarted(f);
            }
        }
        wake
    }
    pub fn push(&mut self, c: usize, r: Request) {
        self.clients[c].requests.try_push(r).unwrap();
    }
    pub fn driver_requests(&mut self) -> StdVec<Request> {
        core::iter::from_fn(|| self.driver.requests.try_pop().unwrap()).collect()
    }
    pub fn complete(&mut self, reqs: &[Request], status: Status) {
        for r in reqs {
            let count = if status == Status::Ok && r.op().is_ok_and(|o| o.moves_data()) { r.count } else { 0 };
            self.driver.responses.try_push(Response::new(r.id, status, count).with_tag(r.tag)).unwrap();
        }
    }
    pub fn responses(&mut self, c: usize) -> StdVec<Response> {
        core::iter::from_fn(|| self.clients[c].responses.try_pop().unwrap()).collect()
    }
    /// The calls made since the last look, as (position, hook, op, client
    /// request block) per entry.
    pub fn take_calls(&mut self) -> StdVec<Call> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }
}

fn always(v: Verdict) -> Decide {
    Box::new(move |_, _, _, _, _| v)
}

/// (filter, hook, block) of every entry of every call so far.
fn trace(h: &mut ChainHarness) -> StdVec<(usize, Hook, u64)> {
    h.take_calls().iter().flat_map(|c| c.entries.iter().map(move |(io, _)| (c.filter, io.hook, io.block))).collect()
}

#[test]
fn pre_ops_run_in_chain_order_and_post_ops_in_reverse() {
    let mut h = chain_harness(&[8], &[Spec::PASS, Spec::PASS, Spec::PASS], 8, always(Verdict::Continue));
    h.push(0, Request::new(7, Op::Read, 5, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1);
    assert_eq!((fwd[0].id, fwd[0].block, fwd[0].data_offset), (7, 5, client_paddr(0)));
    assert_eq!(fwd[0].tag, chain::SLOT_TAG + fwd[0].tag - chain::SLOT_TAG, "tagged with its slot");
    assert_eq!(trace(&mut h), [(0, Hook::Pre, 5), (1, Hook::Pre, 5), (2, Hook::Pre, 5)]);
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(trace(&mut h), [(2, Hook::Post, 5), (1, Hook::Post, 5), (0, Hook::Post, 5)]);
    assert_eq!(h.responses(0), [Response::new(7, Status::Ok, 1)]);
}

#[test]
fn one_upcall_carries_a_batch_of_requests() {
    let mut h = chain_harness(&[32], &[Spec::PASS], 64, always(Verdict::Continue));
    for i in 0..32 {
        h.push(0, Request::new(i, Op::Write, i as u64, 1, 0));
    }
    h.run();
    let calls = h.take_calls();
    assert_eq!(calls.len(), 1, "32 requests, one pre-op upcall");
    assert_eq!(calls[0].entries.len(), 32);
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 32);
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.take_calls().len(), 1, "and one post-op upcall");
    assert_eq!(h.responses(0).len(), 32);
    let stats = h.server.filters[0].stats;
    assert_eq!((stats.upcalls, stats.pre, stats.post, stats.verdicts[0], stats.bytes), (2, 32, 32, 64, 32 * 4096));
}

#[test]
fn a_filter_is_not_called_for_hooks_and_ops_it_did_not_declare() {
    let writes_pre_only = Spec { hooks: Hook::Pre.bit(), ops: filter::op_bit(Op::Write), rights: 0, bounce: false, pre_ops: 0, max_blocks: 0 };
    let mut h = chain_harness(&[8], &[writes_pre_only, Spec::PASS], 8, always(Verdict::Continue));
    h.push(0, Request::new(1, Op::Read, 3, 1, 0));
    h.push(0, Request::new(2, Op::Write, 4, 1, 4096));
    h.run();
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    h.run();
    let t = trace(&mut h);
    assert!(!t.iter().any(|&(f, hook, b)| f == 0 && (hook == Hook::Post || b == 3)), "filter 0 saw only the write's pre-op: {t:?}");
    assert_eq!(t.iter().filter(|&&(f, _, _)| f == 1).count(), 4, "filter 1 saw both, both ways");
    assert_eq!(h.responses(0).len(), 2);
}

/// A filter that costs per block gets a batch of large requests over
/// several upcalls, none past its blocks (one request at least, however
/// large), and every request answered.
#[test]
fn an_upcall_carries_no_more_blocks_than_the_filters_budget_pays_for() {
    let costly = Spec { max_blocks: 8, ..Spec::PASS };
    let mut h = chain_harness(&[32], &[costly], 64, always(Verdict::Continue));
    for i in 0..8 {
        h.push(0, Request::new(i, Op::Read, u64::from(i) * 4, 4, 0));
    }
    h.push(0, Request::new(8, Op::Read, 1000, 12, 0));
    h.push(0, Request::new(9, Op::Flush, 0, 0, 0));
    h.run();
    let calls = h.take_calls();
    let sizes: StdVec<(usize, u32)> = calls.iter().map(|c| (c.entries.len(), c.entries.iter().map(|e| e.0.count).sum())).collect();
    assert_eq!(sizes[..5], [(2, 8), (2, 8), (2, 8), (2, 8), (1, 12)], "two 4-block reads an upcall; the 12-block one alone");
    let mut answered = 0;
    for _ in 0..4 {
        let fwd = h.driver_requests();
        h.complete(&fwd, Status::Ok);
        h.run();
        answered += h.responses(0).len();
    }
    assert_eq!(answered, 10, "every request answered, the flush too");
}

#[test]
fn a_filter_called_only_after_the_device_counts_the_bytes_of_what_it_saw() {
    let post_only = Spec { hooks: Hook::Post.bit(), ops: 0xff, rights: 0, bounce: false, pre_ops: 0, max_blocks: 0 };
    let mut h = chain_harness(&[8], &[post_only], 8, always(Verdict::Continue));
    h.push(0, Request::new(1, Op::Read, 3, 1, 0));
    h.push(0, Request::new(2, Op::Write, 4, 2, 4096));
    h.run();
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0).len(), 2);
    let stats = h.server.filters[0].stats;
    assert_eq!((stats.pre, stats.post, stats.verdicts[0], stats.bytes), (0, 2, 2, 3 * 4096));
}

#[test]
fn a_request_a_filter_fails_or_completes_never_reaches_the_driver_and_goes_back_up() {
    let decide: Decide = Box::new(|f, io, _, _, _| match (f, io.op, io.hook) {
        (1, Op::Write, Hook::Pre) => Verdict::Fail(Status::InvalidRequest),
        (1, Op::Read, Hook::Pre) => Verdict::Complete { status: Status::Ok, count: io.count },
        _ => Verdict::Continue,
    });
    let mut h = chain_harness(&[8], &[Spec::PASS, Spec::PASS, Spec::PASS], 8, decide);
    h.push(0, Request::new(1, Op::Write, 3, 2, 0));
    h.push(0, Request::new(2, Op::Read, 9, 1, 0));
    h.run();
    assert_eq!(h.driver_requests(), []);
    let t = trace(&mut h);
    assert!(!t.iter().any(|&(f, _, _)| f == 2), "the filter below never saw them: {t:?}");
    assert_eq!(t.iter().filter(|&&(f, hook, _)| f == 0 && hook == Hook::Post).count(), 2, "the filter above saw both answers");
    let mut got = h.responses(0);
    got.sort_by_key(|r| r.id);
    assert_eq!(got, [Response::new(1, Status::InvalidRequest, 0), Response::new(2, Status::Ok, 1)]);
}

#[test]
fn a_post_op_may_rewrite_the_status() {
    let decide: Decide = Box::new(|f, io, done, _, _| match (f, io.hook, done) {
        (0, Hook::Post, Some(d)) if d.status == Status::IoError => Verdict::Complete { status: Status::Ok, count: io.count },
        _ => Verdict::Continue,
    });
    let mut h = chain_harness(&[8], &[Spec::PASS], 8, decide);
    h.push(0, Request::new(4, Op::Read, 1, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::IoError);
    h.run();
    assert_eq!(h.responses(0), [Response::new(4, Status::Ok, 1)]);
}

#[test]
fn a_filter_gets_exactly_the_requests_data_with_its_rights_and_may_keep_state() {
    let reader = Spec { hooks: 3, ops: 0xff, rights: abi::GRANT_READ, bounce: false, pre_ops: 0, max_blocks: 0 };
    let seen = Rc::new(RefCell::new(StdVec::new()));
    let s = seen.clone();
    let decide: Decide = Box::new(move |_, io, _, data, _| {
        if io.op == Op::Flush {
            assert_eq!(data.read(io, 0, &mut [0; 1]), Err(DataError::NoAccess), "a flush has no data");
        } else if io.hook == Hook::Pre {
            let mut b = [0u8; 4];
            data.read(io, 4096 + 4092, &mut b).unwrap();
            s.borrow_mut().push(b);
            assert_eq!(data.read(io, 8192, &mut b), Err(DataError::OutOfRange), "nothing past the request's data");
            assert_eq!(data.write(io, 0, &b), Err(DataError::ReadOnly));
            return Verdict::Continue;
        }
        assert_eq!(io.state, 0, "nothing kept");
        Verdict::Continue
    });
    let mut h = chain_harness(&[8], &[reader], 8, decide);
    h.memory.clients[0].write_bytes(3 * 4096 + 4096 + 4092, b"WXYZ").unwrap();
    h.push(0, Request::new(1, Op::Write, 0, 2, 3 * 4096));
    h.push(0, Request::ordering(2, Op::Flush));
    h.run();
    assert_eq!(*seen.borrow(), [*b"WXYZ"]);
    let calls = h.take_calls();
    assert_eq!(calls[0].lends, [abi::Lend { lend: 0, rights: abi::GRANT_READ, _reserved: 0, len: 8192, offset: 3 * 4096 }]);
    assert_eq!(calls[0].entries[0].0.grant, 1, "the entry names its lend");
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd[0].op(), Ok(Op::FlushCompleted), "the flush follows once the write is answered");
    h.complete(&fwd, Status::Ok);
    h.run();
    let calls = h.take_calls();
    let flush_call = calls.iter().find(|c| c.entries[0].0.op == Op::Flush).expect("the filter saw the flush");
    assert!(flush_call.lends.is_empty() && flush_call.entries[0].0.grant == 0, "a flush lends nothing");
}

#[test]
fn a_substituted_write_goes_down_from_the_filters_buffer_and_the_clients_is_never_changed() {
    let crypt = Spec { hooks: Hook::Pre.bit(), ops: filter::op_bit(Op::Write), rights: abi::GRANT_READ, bounce: true, pre_ops: 0, max_blocks: 0 };
    let reader = Spec { hooks: Hook::Pre.bit(), ops: 0xff, rights: abi::GRANT_READ, bounce: false, pre_ops: 0, max_blocks: 0 };
    let below = Rc::new(RefCell::new(StdVec::new()));
    let b2 = below.clone();
    let decide: Decide = Box::new(move |f, io, _, data, bounce| {
        let mut block = [0u8; 4096];
        data.read(io, 0, &mut block).unwrap();
        if f == 0 {
            block.iter_mut().for_each(|x| *x ^= 0x5a);
            bounce.write_bytes(2 * 4096, &block).unwrap();
            return Verdict::Substitute { offset: 2 * 4096 };
        }
        b2.borrow_mut().push(block[0]);
        Verdict::Continue
    });
    let mut h = chain_harness(&[8], &[crypt, reader], 8, decide);
    h.memory.clients[0].write_bytes(4096, &[0x11; 4096]).unwrap();
    h.push(0, Request::new(1, Op::Write, 6, 1, 4096));
    h.run();
    assert_eq!(*below.borrow(), [0x11 ^ 0x5a], "the filter below sees the substitute");
    let calls = h.take_calls();
    assert_eq!(calls[1].lends[0].lend, 1, "lent from filter 0's bounce buffer");
    let fwd = h.driver_requests();
    assert_eq!(fwd[0].data_offset, bounce_paddr(0) + 2 * 4096, "the device reads the substitute");
    let mut client = [0u8; 4096];
    h.memory.clients[0].read_bytes(4096, &mut client).unwrap();
    assert!(client.iter().all(|&b| b == 0x11), "the client's buffer is unchanged");
}

#[test]
fn a_filter_that_stops_fails_its_batch_and_is_restarted() {
    let mut h = chain_harness(&[8], &[Spec::PASS], 8, always(Verdict::Continue));
    h.up.stop.push(0);
    h.push(0, Request::new(1, Op::Read, 1, 1, 0));
    h.push(0, Request::new(2, Op::Read, 2, 1, 0));
    h.run();
    assert_eq!(h.driver_requests(), []);
    let mut got = h.responses(0);
    got.sort_by_key(|r| r.id);
    assert_eq!(got, [Response::new(1, Status::IoError, 0), Response::new(2, Status::IoError, 0)]);
    assert!(h.events.contains(&Event::FilterStopped { filter: 0, failed: 2, restart: true }));
    assert_eq!(h.server.filters[0].stats.errors, 2);
    // Restarted, it serves the next request.
    h.push(0, Request::new(3, Op::Read, 3, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(3, Status::Ok, 1)]);
}

#[test]
fn a_restarted_filter_is_called_again_only_once_no_request_holds_its_earlier_buffers() {
    // A filter that substitutes writes from its bounce buffer (as crypt
    // does) stops while one of its substitutes is at the driver: its new
    // life would hand out the same pages (or read its setup into them)
    // while the device still reads them.
    let spec = Spec { hooks: Hook::Pre.bit() | Hook::Post.bit(), ops: filter::op_bit(Op::Write), rights: abi::GRANT_READ, bounce: true, pre_ops: 0, max_blocks: 0 };
    let decide: Decide = Box::new(|_, io, _, _, _| match io.hook {
        Hook::Pre => Verdict::Substitute { offset: 0 },
        Hook::Post => Verdict::Continue,
    });
    let mut h = chain_harness(&[8], &[spec], 8, decide);
    h.push(0, Request::new(1, Op::Write, 1, 1, 0));
    h.run();
    let first = h.driver_requests();
    assert_eq!(first[0].data_offset, bounce_paddr(0), "at the driver, from the bounce buffer");
    h.up.stop.push(0);
    h.push(0, Request::new(2, Op::Write, 2, 1, 0));
    h.run();
    assert!(h.events.contains(&Event::FilterStopped { filter: 0, failed: 1, restart: true }));
    assert_eq!(h.responses(0), [Response::new(2, Status::IoError, 0)]);
    h.take_calls();
    // Restarted, but write 1 still holds its substitute: not called yet.
    assert!(!h.server.filters[0].alive);
    h.push(0, Request::new(3, Op::Write, 3, 1, 0));
    h.run();
    assert_eq!(h.take_calls().len(), 0, "no call while the earlier life's write is at the driver");
    assert_eq!((h.driver_requests(), h.responses(0)), (vec![], vec![Response::new(3, Status::IoError, 0)]));
    // Write 1 comes back: its post-op is not the new life's to hear (it
    // fails), and then the filter is called again.
    h.complete(&first, Status::Ok);
    h.run();
    assert_eq!(h.take_calls().len(), 0);
    assert_eq!(h.responses(0), [Response::new(1, Status::IoError, 0)]);
    assert!(h.server.filters[0].alive);
    h.push(0, Request::new(4, Op::Write, 4, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1);
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(4, Status::Ok, 1)]);
    assert_eq!(h.take_calls().len(), 2, "its pre-op and post-op");
}

#[test]
fn a_restarted_filter_does_not_wait_for_requests_of_another_disks_chain() {
    // disk0's filter 0 lets writes down its own chain and redirects reads
    // to disk1, whose filter 1 sits at the same position (0) of its chain.
    let decide: Decide = Box::new(|f, io, _, _, _| match (f, io.hook, io.op) {
        (0, Hook::Pre, Op::Read) => Verdict::Redirect { link: 0, block: io.block },
        _ => Verdict::Continue,
    });
    let linked = LinkedDisk { chain: &[Spec::PASS], blocks: 1024, links: &[true] };
    let mut h = chain_harness_linked(&[8], &[], &[Spec::PASS], Some(linked), 8, decide, None);
    // A write holds filter 0's state at disk0's driver...
    h.push(0, Request::new(1, Op::Write, 1, 1, 0));
    h.run();
    let write = h.driver_requests();
    assert_eq!(write.len(), 1);
    // ... while filter 1 stops on a redirected read and is restarted.
    h.up.stop.push(1);
    h.push(0, Request::new(2, Op::Read, 2, 1, 0));
    h.run();
    assert!(h.events.contains(&Event::FilterStopped { filter: 1, failed: 1, restart: true }));
    assert_eq!(h.responses(0), [Response::new(2, Status::IoError, 0)]);
    assert!(h.server.filters[1].alive, "nothing of filter 1's earlier life is in flight: called again at once");
    h.complete(&write, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 1)]);
}

#[test]
fn a_pre_op_that_needs_no_post_op_for_a_request_is_not_called_after_it() {
    // Filter 1 needs no post-op for reads of block 7 (a linked clone's read
    // that went wholly to its base); the filters around it still get theirs.
    let no_post = Rc::new(Cell::new(false));
    let flag = no_post.clone();
    let decide: Decide = Box::new(move |f, io, _, _, _| {
        if (f, io.hook, io.op, io.block) == (1, Hook::Pre, Op::Read, 7) {
            flag.set(true);
        }
        Verdict::Continue
    });
    let mut h = chain_harness(&[8], &[Spec::PASS, Spec::PASS, Spec::PASS], 8, decide);
    h.up.no_post = no_post;
    for (id, block) in [(1, 7), (2, 8)] {
        h.push(0, Request::new(id, Op::Read, block, 1, 0));
        h.run();
        let fwd = h.driver_requests();
        h.complete(&fwd, Status::Ok);
        h.run();
        assert_eq!(h.responses(0), [Response::new(id, Status::Ok, 1)]);
    }
    let posts: StdVec<_> = trace(&mut h).into_iter().filter(|&(_, hook, _)| hook == Hook::Post).collect();
    assert_eq!(posts, [(2, Hook::Post, 7), (0, Hook::Post, 7), (2, Hook::Post, 8), (1, Hook::Post, 8), (0, Hook::Post, 8)]);
    assert_eq!(h.server.table.free(), chain::MAX_SLOTS);
}

#[test]
fn a_side_io_goes_down_below_the_filter_and_the_filter_is_called_again_with_its_result() {
    // Filter 1 writes its bounce page 2 to block 100 before each write goes
    // on, and fails the write if that failed; filter 2, below, sees both.
    let journal = Spec { hooks: 3, ops: 0xff, rights: 0, bounce: true, pre_ops: 0, max_blocks: 0 };
    let decide: Decide = Box::new(|f, io, _, _, _| match (f, io.op, io.hook, io.side) {
        (1, Op::Write, Hook::Pre, None) => Verdict::SideIo { op: Op::Write, block: 100, count: 1, page: 2 },
        (1, Op::Write, Hook::Pre, Some(done)) if done.status != Status::Ok => Verdict::Fail(Status::IoError),
        _ => Verdict::Continue,
    });
    let mut h = chain_harness(&[8], &[Spec::PASS, journal, Spec::PASS], 8, decide);
    h.push(0, Request::new(1, Op::Write, 7, 2, 0));
    h.run();
    let side = h.driver_requests();
    assert_eq!(side.len(), 1, "only the side write went down yet");
    assert_eq!((side[0].op(), side[0].block, side[0].count, side[0].data_offset), (Ok(Op::Write), 100, 1, bounce_paddr(1) + 2 * 4096));
    let t = trace(&mut h);
    assert_eq!(t, [(0, Hook::Pre, 7), (1, Hook::Pre, 7), (2, Hook::Pre, 100)], "the filter below saw the side write");
    h.complete(&side, Status::Ok);
    h.run();
    let calls = h.take_calls();
    let again = calls.iter().flat_map(|c| c.entries.iter().map(move |e| (c.filter, e.0))).find(|(f, io)| *f == 1 && io.block == 7).unwrap().1;
    assert_eq!((again.hook, again.side), (Hook::Pre, Some(Done { status: Status::Ok, count: 1 })), "called again with the side write's result");
    let fwd = h.driver_requests();
    assert_eq!((fwd.len(), fwd[0].block, fwd[0].count), (1, 7, 2), "then the write itself");
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 2)]);
    // Each filter counts the request's bytes once, though filter 1 was
    // called for it three times; filter 2 counts the side write too.
    let stats = |f: usize| h.server.filters[f].stats;
    assert_eq!([stats(0).bytes, stats(1).bytes, stats(2).bytes], [2 * 4096, 2 * 4096, 3 * 4096]);
    assert_eq!((stats(1).moved, stats(1).verdicts[0], stats(0).moved), ([0, 0, 1], 2, [0, 0, 0]));
    assert_eq!(stats(1).moved_text().to_string(), "; moved: 0 remapped, 0 redirected, 1 side I/O");
    assert_eq!(stats(0).moved_text().to_string(), "", "the line of a filter that moved nothing is as it was");

    // A side write that fails: the filter fails the request.
    h.push(0, Request::new(2, Op::Write, 8, 1, 0));
    h.run();
    let side = h.driver_requests();
    h.complete(&side, Status::IoError);
    h.run();
    assert_eq!(h.driver_requests(), [], "the write never went down");
    assert_eq!(h.responses(0), [Response::new(2, Status::IoError, 0)]);
    assert_eq!(h.server.table.free(), chain::MAX_SLOTS, "every slot is free again");
}

#[test]
fn side_io_two_deep_for_many_requests_answers_every_one_and_frees_every_slot() {
    // 128 writes from four clients; each write's side I/O at filter 0
    // starts another at filter 1 below it (two deep: `spawn` keeps a slot
    // for each level a started request may still need).
    let journal = Spec { hooks: 3, ops: 0xff, rights: 0, bounce: true, pre_ops: 0, max_blocks: 0 };
    let decide: Decide = Box::new(|f, io, _, _, _| match (f, io.op, io.hook, io.side, io.client) {
        (0, Op::Write, Hook::Pre, None, c) if c != filter::SETUP_CLIENT => Verdict::SideIo { op: Op::Write, block: 1000 + io.block, count: 1, page: 0 },
        (1, Op::Write, Hook::Pre, None, filter::SETUP_CLIENT) if io.block >= 1000 => Verdict::SideIo { op: Op::Write, block: 2000, count: 1, page: 1 },
        _ => Verdict::Continue,
    });
    let mut h = chain_harness(&[32, 32, 32, 32], &[journal, journal], 64, decide);
    for c in 0..4 {
        for i in 0..32 {
            h.push(c, Request::new(i, Op::Write, u64::from(i) + 40 * c as u64, 1, 0));
        }
    }
    let mut answered = 0;
    for _ in 0..2000 {
        h.run();
        let fwd = h.driver_requests();
        answered += (0..4).map(|c| h.responses(c).len()).sum::<usize>();
        if fwd.is_empty() && answered == 128 {
            break;
        }
        h.complete(&fwd, Status::Ok);
    }
    assert_eq!(answered, 128, "every write was answered");
    assert_eq!(h.server.table.free(), chain::MAX_SLOTS, "every slot is free again");
}

#[test]
fn a_redirect_along_no_link_fails_its_request() {
    let decide: Decide = Box::new(|f, io, _, _, _| match (f, io.hook) {
        (0, Hook::Pre) => Verdict::Redirect { link: 0, block: io.block },
        _ => Verdict::Continue,
    });
    let mut h = chain_harness(&[8], &[Spec::PASS], 8, decide);
    h.push(0, Request::new(1, Op::Read, 7, 1, 0));
    h.run();
    assert_eq!(h.driver_requests(), []);
    assert_eq!(h.responses(0), [Response::new(1, Status::IoError, 0)]);
    assert_eq!(h.server.filters[0].stats.errors, 1);
}

#[test]
fn a_bad_verdict_fails_only_its_request() {
    let decide: Decide = Box::new(|_, io, _, _, _| match io.block {
        1 => Verdict::Substitute { offset: 0 }, // no bounce buffer
        2 => Verdict::Complete { status: Status::Ok, count: 99 },
        _ => Verdict::Continue,
    });
    let mut h = chain_harness(&[8], &[Spec { hooks: 1, ..Spec::PASS }], 8, decide);
    for b in 1..=3 {
        h.push(0, Request::new(b as u32, Op::Read, b, 1, 0));
    }
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.iter().map(|r| r.id).collect::<StdVec<_>>(), [3]);
    h.complete(&fwd, Status::Ok);
    h.run();
    let mut got = h.responses(0);
    got.sort_by_key(|r| r.id);
    assert_eq!(got, [Response::new(1, Status::IoError, 0), Response::new(2, Status::IoError, 0), Response::new(3, Status::Ok, 1)]);
    assert_eq!(h.server.filters[0].stats.errors, 2);
}

#[test]
fn a_report_is_answered_at_once_and_names_the_disk() {
    let mut h = chain_harness(&[8], &[Spec::PASS], 8, always(Verdict::Continue));
    h.push(0, Request::new(1, Op::Read, 1, 1, 0));
    h.push(0, Request::ordering(2, Op::Report));
    h.run();
    assert_eq!(h.responses(0), [Response::new(2, Status::Ok, 0)], "not held back by the read");
    assert!(h.events.contains(&Event::Report { client: 0, disk: 0 }));
}

/// Upcalls straight into a passthrough over the page, for profiling the
/// server's side of a chain on the host:
/// `valgrind --tool=callgrind target/release/deps/blk_server-* --ignored --exact tests::chain::profile_depth_32`
/// (build with `cargo test --release --no-run -p blk-server`).
struct Lean {
    pages: StdVec<Shared<'static>>,
}

impl Upcalls for Lean {
    fn call(&mut self, f: usize, n: usize, _: &[abi::Lend]) -> Result<(), CallError> {
        struct P;
        impl filter::Filter for P {}
        let page = filter::CallPage::new(self.pages[f]).unwrap();
        filter::serve(&mut P, &page, n, &filter::NoData);
        Ok(())
    }
}

#[test]
#[ignore]
fn profile_depth_1() {
    let mut h = chain_harness(&[32], &[Spec::PASS], 64, always(Verdict::Continue));
    let mut lean = Lean { pages: h.up.pages.clone() };
    for i in 0..20000u32 {
        h.push(0, Request::new(i, Op::Read, (i % 512) as u64, 1, 0));
        h.server.run_with(&mut |_| {}, &mut lean);
        let fwd = h.driver_requests();
        h.complete(&fwd, Status::Ok);
        h.server.run_with(&mut |_| {}, &mut lean);
        assert_eq!(h.responses(0).len(), 1);
    }
}

#[test]
#[ignore]
fn profile_depth_32() {
    let mut h = chain_harness(&[32], &[Spec::PASS], 64, always(Verdict::Continue));
    let mut lean = Lean { pages: h.up.pages.clone() };
    let mut fwd = StdVec::with_capacity(64);
    let mut answers = 0;
    for round in 0..1000u32 {
        for i in 0..32 {
            h.clients[0].requests.try_push(Request::new(round * 32 + i, Op::Read, i as u64, 1, 0)).unwrap();
        }
        h.server.run_with(&mut |_| {}, &mut lean);
        fwd.clear();
        while let Some(r) = h.driver.requests.try_pop().unwrap() {
            fwd.push(r);
        }
        h.complete(&fwd, Status::Ok);
        h.server.run_with(&mut |_| {}, &mut lean);
        while let Some(_) = h.clients[0].responses.try_pop().unwrap() {
            answers += 1;
        }
    }
    assert_eq!(answers, 32_000);
}
