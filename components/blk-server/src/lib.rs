//! The filter server's logic, tested on the host with in-memory queues.
//!
//! Between untrusted clients and the driver it:
//! - checks every request against the client's view (its disk, or its MBR
//!   partition, and its own data region) and answers a bad one with
//!   `InvalidRequest` without touching anything else;
//! - translates a good one: blocks shift by the partition's start, the data
//!   offset becomes the device address of the client's data region;
//! - tags every request it forwards with the client's index, which the
//!   driver echoes in the answer: the driver sees (tag, id) pairs the server
//!   made, and an answer goes only to the client its tag names, so a client
//!   can neither complete nor see another client's request (and needs no
//!   table in the server);
//! - serves clients round robin, each client with work taking an equal
//!   share of the driver ring's room per turn, in one batch (ring indices
//!   are loaded and published once per batch, not per request), and takes
//!   a request only when the client's response ring has room for its answer
//!   and for every answer still owed, so no answer is ever dropped (a client
//!   that stops taking its answers is asked to notify us when it takes
//!   some);
//! - orders each client's requests on their own: its barrier waits for its
//!   earlier requests and is answered here; its flush waits for them too
//!   and then goes to the driver as a flush of completed writes, which the
//!   driver sends at once. Neither holds back another client's requests
//!   (a barrier or flush at the driver would hold back everyone's);
//! - reads each disk's partition table before serving partition clients;
//! - runs each request of a disk with filters through the disk's chain
//!   (see [`chain`]): pre-operation upcalls in chain order, the driver,
//!   post-operation upcalls in reverse order, with an in-flight table whose
//!   slot the driver's tag names. Disks without filters keep the stateless
//!   ring-to-ring path above;
//! - answers a client's `Report` at once and prints the statistics of its
//!   disk's chain.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod chain;
mod setup;

pub use chain::{CallError, FilterStats, NoFilters, Upcalls};
pub use setup::SetupFailure;

use blk::config::{name_str, ServerConfig, MAX_CHAIN};
use chain::{Chain, Table, MAX_SLOTS, SLOT_TAG};
use blk::mbr;
use blk::{Op, Producer, Request, Requester, Responder, Response, Status, Step, StorageInfo, BLOCK_SIZE};
use heapless::Vec;

pub const MAX_CLIENTS: usize = blk::config::MAX_CLIENTS;
pub const MAX_DISKS: usize = blk::config::MAX_DISKS;
pub const MAX_FILTERS: usize = blk::config::MAX_FILTERS;
const SECTORS_PER_BLOCK: u64 = BLOCK_SIZE as u64 / 512;
/// Requests one client's turn takes at most.
const TURN: u32 = 64;
/// Tag of a disk's partition-table read (no client has this index).
const PROBE_TAG: u32 = u32::MAX;
const _: () = assert!(MAX_CLIENTS < PROBE_TAG as usize && MAX_CLIENTS <= 32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskState {
    /// Waiting for the driver to publish the disk's info.
    Starting,
    /// Setting up its chain's filters (see `setup`).
    Setup,
    /// Set up; its partition-table read is still to be sent.
    Usable,
    /// Reading the partition table.
    Probing,
    Ready,
    /// No device behind it (the driver said so): every request of its
    /// clients is answered `NoDevice` (`refuse_absent`).
    Absent,
}

pub struct Disk<'a> {
    pub name: &'a str,
    /// Its number in the configuration (the server keeps only the disks it
    /// drives; a disk with a direct client is not one of them).
    index: usize,
    driver: Requester<'a>,
    probe_paddr: u64,
    /// The probe buffer as the server sees it.
    probe: blk::Shared<'a>,
    state: DiskState,
    capacity: u64,
    /// Blocks its clients see: the device's, or what its chain offers.
    view: u64,
    /// Its chain could not be set up: every request fails.
    failed: bool,
    /// Where its chain's setup stands.
    setup: setup::Progress,
    read_only: bool,
    needs_partitions: bool,
    /// Its clients.
    clients: u32,
    /// Requests forwarded to the driver and not yet answered. The driver
    /// takes a request only while it owes fewer answers than its ring holds
    /// and drops an answer that finds the ring full, so we keep this within
    /// the ring's capacity: requests the driver took off the ring still
    /// count until their answers are popped.
    outstanding: u32,
    /// Requests the driver may be sent, as looked up in call `room_call`
    /// of `serve_clients`.
    room: u32,
    room_call: u32,
    /// What each client may take in a turn of round `share_round`: an even
    /// split of `room` between the clients, at least one.
    share: u32,
    share_round: u32,
    /// Its filter chain; `None`: the ring-to-ring path. A disk that a
    /// filter links to has one, if empty: redirected requests travel
    /// through it.
    pub chain: Option<Chain>,
    /// The disks its filters link to (bit per our disk): it is set up only
    /// once they are ready (or known to have no device).
    links: u32,
}

pub struct Client<'a> {
    pub name: &'a str,
    queue: Responder<'a>,
    /// Its disk, as an index into `Server::disks`.
    disk: usize,
    /// The chain level its requests enter at (0: the top).
    entry: u8,
    /// Declared `read_only`: its writes are refused, whatever its disk.
    read_only: bool,
    partition: u32,
    data_paddr: u64,
    data_size: u64,
    /// The client's view, once the disk is known: first block and blocks.
    range: Option<(u64, u64)>,
    info: StorageInfo,
    /// Requests taken from its ring so far (forwarded or refused), as a
    /// wrapping count; less the answers pushed, what it is owed.
    taken: u32,
    capacity: u32,
    /// It has requests waiting but no room left for their answers (it has
    /// not taken the earlier ones): we asked to hear when it takes some.
    waiting_for_room: bool,
    /// Its next request is a flush or barrier, waiting for its earlier
    /// requests to be answered; until then none of its later ones start
    /// (another client's flush or barrier never holds this one back).
    /// Cleared by `serve_turn` once nothing is owed, which every call of
    /// `serve_clients` reaches for every client.
    ordering: bool,
    /// A client that corrupted its rings is no longer served.
    broken: bool,
}

/// Whom to notify after a round of work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    /// Bit c: client c.
    pub clients: u32,
    /// Bit d: the driver of disk d (its number in the configuration).
    pub drivers: u32,
}

impl Wake {
    /// After pushing requests to disk `d`'s driver: publish them, and note
    /// the driver if it asked to hear of them.
    fn notify_driver(&mut self, d: usize, requests: &mut Producer<'_, Request>) {
        self.drivers |= (requests.needs_notify() as u32) << d;
    }

    /// After pushing answers to client `c`: publish them, and note the
    /// client if it asked to hear of them.
    fn notify_client(&mut self, c: usize, responses: &mut Producer<'_, Response>) {
        self.clients |= (responses.needs_notify() as u32) << c;
    }
}

/// Something worth printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `disk`: its number in the configuration.
    DiskReady { disk: usize, blocks: u64 },
    /// `disk` (its number in the configuration) has no device behind it.
    DiskAbsent { disk: usize },
    ClientReady { client: usize, first_block: u64, blocks: u64 },
    PartitionMissing { client: usize, err: mbr::MbrError },
    PartitionMisaligned { client: usize },
    ClientCorrupt { client: usize },
    /// An upcall to filter `filter` failed; its `requests` failed with it.
    FilterFailed { filter: usize, error: CallError, requests: u32 },
    /// Filter `filter` faulted (or ran past its budget): `failed` requests
    /// failed in the upcall it was serving; it is restarted or stays
    /// stopped.
    FilterStopped { filter: usize, failed: u32, restart: bool },
    /// Client `client` asked for the statistics of its disk (`disk`: our
    /// index; the shell prints each of its filters' [`FilterStats`]).
    Report { client: usize, disk: usize },
    /// Filter `filter` (with the setup hook) is set up: it offers `blocks`
    /// blocks from `first` of the disk below it.
    FilterReady { filter: usize, first: u64, blocks: u64 },
    /// Filter `filter` could not be set up: every request of its disk
    /// fails.
    FilterSetupFailed { filter: usize, why: SetupFailure },
    /// Filter `filter`, restarted, could not be set up again: it stays
    /// stopped (the requests that reach it fail).
    FilterSetupLost { filter: usize, why: SetupFailure },
}

/// (In this order: the small fields the ring-to-ring path uses on every
/// turn first, within reach of one load's offset; the chains' large table
/// last.)
#[repr(C)]
pub struct Server<'a> {
    next_client: usize,
    /// Calls of `serve_clients` and rounds of turns so far: what makes a
    /// disk's `room` and `share` current (cheaper than resetting them).
    call: u32,
    round: u32,
    /// Whether any disk has a chain.
    chains: bool,
    /// Disks with no device behind them (bit per our disk): their state
    /// says it too, but the run loop checks this one word.
    absent: u32,
    /// Disks whose statistics a client asked for (`Report`) since the last
    /// `take_reports` (bit per our disk).
    reports: u32,
    pub disks: Vec<Disk<'a>, MAX_DISKS>,
    pub clients: Vec<Client<'a>, MAX_CLIENTS>,
    pub filters: Vec<chain::Filter<'a>, MAX_FILTERS>,
    table: Table,
}

/// The server's shared memory, mapped where the configuration says.
pub struct Regions<'a> {
    pub disk_queues: [Option<blk::Shared<'a>>; MAX_DISKS],
    pub probes: [Option<blk::Shared<'a>>; MAX_DISKS],
    pub client_queues: [Option<blk::Shared<'a>>; MAX_CLIENTS],
    /// Each filter's call page.
    pub filter_calls: [Option<blk::Shared<'a>>; MAX_FILTERS],
}

impl<'a> Regions<'a> {
    pub const fn none() -> Regions<'a> {
        Regions { disk_queues: [None; MAX_DISKS], probes: [None; MAX_DISKS], client_queues: [None; MAX_CLIENTS], filter_calls: [None; MAX_FILTERS] }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    NotConfigured,
    /// A region is missing or its size does not fit the ring capacity.
    BadRegion,
}

impl<'a> Server<'a> {
    pub fn new(config: &'a ServerConfig, regions: Regions<'a>) -> Result<Server<'a>, SetupError> {
        if !config.is_set() {
            return Err(SetupError::NotConfigured);
        }
        let mut disks = Vec::new();
        // Configuration disk number -> ours.
        let mut ours = [None; MAX_DISKS];
        for (d, disk) in config.disks().iter().enumerate() {
            if disk.queue.size == 0 {
                // Its direct client talks to the driver; not ours.
                continue;
            }
            let layout = blk::QueueLayout::for_region(disk.queue.size as usize, disk.queue.capacity).map_err(|_| SetupError::BadRegion)?;
            let region = regions.disk_queues[d].ok_or(SetupError::BadRegion)?;
            let driver = Requester::new(region, layout).map_err(|_| SetupError::BadRegion)?;
            let needs_partitions = config.clients().iter().any(|c| c.disk as usize == d && c.partition != 0);
            ours[d] = Some(disks.len());
            let _ = disks.push(Disk {
                name: name_str(&disk.name),
                index: d,
                driver,
                probe_paddr: disk.probe.paddr,
                probe: regions.probes[d].ok_or(SetupError::BadRegion)?,
                state: DiskState::Starting,
                capacity: 0,
                view: 0,
                failed: false,
                setup: setup::Progress::default(),
                read_only: false,
                needs_partitions,
                clients: config.clients().iter().filter(|c| c.disk as usize == d).count() as u32,
                outstanding: 0,
                room: 0,
                room_call: 0,
                share: 0,
                share_round: 0,
                chain: None,
                links: 0,
            });
        }
        let mut filters = Vec::new();
        for (f, filter) in config.filters().iter().enumerate() {
            let disk = ours.get(filter.disk as usize).copied().flatten().ok_or(SetupError::BadRegion)?;
            let calls = regions.filter_calls[f].ok_or(SetupError::BadRegion)?;
            let _ = filters.push(chain::Filter::new(filter, disk, calls).ok_or(SetupError::BadRegion)?);
        }
        for (d, disk) in disks.iter_mut().enumerate() {
            let mut members: Vec<(u32, u8), MAX_CHAIN> = Vec::new();
            for (f, filter) in filters.iter().enumerate().filter(|(_, f)| f.disk() == d) {
                members.push((filter.config.position, f as u8)).map_err(|_| SetupError::BadRegion)?;
            }
            if members.is_empty() {
                continue;
            }
            members.sort_unstable();
            disk.chain = Some(Chain::new(members.iter().map(|&(_, f)| f).collect(), &filters));
        }
        // Links: a linked disk gets a chain (empty if it has no filters).
        for filter in &filters {
            for &target in filter.config.links.iter().filter(|&&t| t != blk::config::NO_LINK) {
                let t = ours.get(target as usize).copied().flatten().ok_or(SetupError::BadRegion)?;
                disks[filter.disk()].links |= 1 << t;
                if disks[t].chain.is_none() {
                    disks[t].chain = Some(Chain::new(Vec::new(), &filters));
                }
            }
        }
        let mut clients = Vec::new();
        for (c, client) in config.clients().iter().enumerate() {
            let Some(disk) = ours.get(client.disk as usize).copied().flatten() else {
                return Err(SetupError::BadRegion);
            };
            let layout = blk::QueueLayout::for_region(client.queue.size as usize, client.queue.capacity).map_err(|_| SetupError::BadRegion)?;
            let region = regions.client_queues[c].ok_or(SetupError::BadRegion)?;
            let queue = Responder::new(region, layout).map_err(|_| SetupError::BadRegion)?;
            let taken = queue.responses.pushed();
            let _ = clients.push(Client {
                name: name_str(&client.name),
                queue,
                disk,
                entry: client.entry.min(MAX_CHAIN as u32) as u8,
                read_only: client.flags & blk::config::CLIENT_READ_ONLY != 0,
                partition: client.partition,
                data_paddr: client.data.paddr,
                data_size: client.data.size,
                range: None,
                info: StorageInfo::new(0, false, layout.capacity()),
                taken,
                capacity: layout.capacity(),
                waiting_for_room: false,
                ordering: false,
                broken: false,
            });
        }
        let chains = disks.iter().any(|d| d.chain.is_some());
        Ok(Server { disks, clients, filters, table: Table::new(), chains, absent: 0, reports: 0, next_client: 0, call: 0, round: 0 })
    }

    /// The disks whose statistics clients asked for since the last call (bit
    /// per our disk; `Event::Report` says which client asked).
    pub fn take_reports(&mut self) -> u32 {
        core::mem::take(&mut self.reports)
    }

    /// Do all the work there is, for a server without filters; `log`
    /// hears about notable events.
    pub fn run(&mut self, log: &mut impl FnMut(Event)) -> Wake {
        self.run_with(log, &mut NoFilters)
    }

    /// Do all the work there is, calling filters through `up`.
    pub fn run_with(&mut self, log: &mut impl FnMut(Event), up: &mut impl Upcalls) -> Wake {
        // Two copies of the loop: without chains it is the ring-to-ring
        // path and nothing else, compiled without a test for chains.
        if self.chains {
            self.run_loop::<true>(log, up)
        } else {
            self.run_loop::<false>(log, up)
        }
    }

    /// Do all the work there is; `CHAINS`: some disk has a chain.
    #[inline(always)]
    fn run_loop<const CHAINS: bool>(&mut self, log: &mut impl FnMut(Event), up: &mut impl Upcalls) -> Wake {
        let mut wake = Wake::default();
        loop {
            for d in 0..self.disks.len() {
                if self.disks[d].state != DiskState::Ready {
                    self.start_disk(d, &mut wake, log);
                }
                self.take_responses::<CHAINS>(d, &mut wake, log);
            }
            self.serve_clients::<CHAINS>(&mut wake, log);
            // (After the turns: a turn clears each client's wait for room,
            // which the refusals below may set.)
            if self.absent != 0 {
                self.refuse_absent(&mut wake, log);
            }
            // Answers a chain gave may let a client's flush or barrier go:
            // then there is another turn to take.
            if CHAINS && self.run_chains(&mut wake, up, log) {
                continue;
            }
            // Each step above drained what it could; arming the rings looks
            // once more for anything that arrived meanwhile.
            if self.ready_to_wait::<CHAINS>() {
                break;
            }
        }
        wake
    }

    /// Ask every ring we could consume now to signal us; false if something
    /// arrived meanwhile (then there is more work). A client we cannot serve
    /// yet (its disk is busy, it has all it may have outstanding, or a
    /// flush or barrier of its own waits for its answers) is not asked: a
    /// driver response wakes us first. A client waiting for room
    /// for its answers is asked to signal us when it takes some.
    #[inline(always)]
    fn ready_to_wait<const CHAINS: bool>(&mut self) -> bool {
        let mut quiet = true;
        for disk in self.disks.iter_mut() {
            quiet &= disk.driver.responses.prepare_to_wait().unwrap_or(true);
        }
        let Server { disks, clients, table, .. } = self;
        let slots_free = CHAINS && table.free_for_clients() > 0;
        for client in clients.iter_mut().filter(|c| !c.broken && c.range.is_some()) {
            if client.waiting_for_room {
                // Room for one more answer besides those owed.
                let needed = client.owed() + 1;
                quiet &= client.queue.responses.prepare_to_wait_for_room(needed).unwrap_or(true);
            } else if client.owed() < client.capacity
                && !client.ordering
                // (A chain being set up again after a filter's restart
                // takes no requests: its setup I/O's answer wakes us.)
                && (if CHAINS && disks[client.disk].chain.is_some() {
                    slots_free && disks[client.disk].state != DiskState::Setup
                } else {
                    disks[client.disk].can_forward()
                })
            {
                quiet &= client.queue.requests.prepare_to_wait().unwrap_or(true);
            }
        }
        quiet
    }

    fn start_disk(&mut self, d: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let disk = &mut self.disks[d];
        if disk.state == DiskState::Usable {
            return self.usable(d, wake, log);
        }
        if disk.state != DiskState::Starting {
            return;
        }
        let Some(info) = disk.driver.info.get() else { return };
        if info.is_absent() {
            log(Event::DiskAbsent { disk: disk.index });
            disk.state = DiskState::Absent;
            // (A disk whose filters link to it waits for this.)
            self.table.relook = true;
            disk.view = 0;
            self.absent |= 1 << d;
            let Server { clients, .. } = self;
            for (c, client) in clients.iter_mut().enumerate().filter(|(_, cl)| cl.disk == d) {
                client.range = Some((0, 0));
                client.info = StorageInfo::absent(client.capacity).with_serial(client.name.as_bytes());
                client.queue.info.publish(&client.info);
                log(Event::ClientReady { client: c, first_block: 0, blocks: 0 });
                wake.clients |= 1 << c;
            }
            return;
        }
        // (A disk whose filters redirect to others waits for them: its
        // setup I/O may go there.)
        let links = disk.links;
        if links != 0 && self.disks.iter().enumerate().any(|(t, other)| links & 1 << t != 0 && !matches!(other.state, DiskState::Ready | DiskState::Absent)) {
            return;
        }
        let disk = &mut self.disks[d];
        disk.capacity = info.capacity;
        disk.read_only = info.is_read_only();
        log(Event::DiskReady { disk: disk.index, blocks: info.capacity });
        disk.view = info.capacity;
        if disk.chain.as_ref().is_some_and(|c| !c.filters.is_empty()) {
            // `setup::setup_chain` goes on from here, and then to `usable`.
            disk.state = DiskState::Setup;
            disk.setup = setup::Progress::start(disk.chain.as_ref().map_or(0, |c| c.filters.len()));
            return;
        }
        self.usable(d, wake, log);
    }

    /// Answer every request of the clients of disks with no device
    /// `NoDevice`, as their response rings have room.
    #[inline(never)]
    fn refuse_absent(&mut self, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let absent = self.absent;
        for (c, client) in self.clients.iter_mut().enumerate().filter(|(_, cl)| absent & 1 << cl.disk != 0 && !cl.broken) {
            let owed = client.owed();
            let answered = {
                let (Ok(mut requests), Ok(room)) = (client.queue.requests.batch(), client.queue.responses.room(owed + TURN)) else {
                    client.broken = true;
                    log(Event::ClientCorrupt { client: c });
                    continue;
                };
                let room = room.saturating_sub(owed);
                client.waiting_for_room = room == 0 && !requests.is_empty();
                requests.truncate(room.min(TURN));
                let mut n = 0;
                for req in requests.by_ref() {
                    let _ = client.queue.responses.push(Response::new(req.id, Status::NoDevice, 0));
                    n += 1;
                }
                n
            };
            if answered > 0 {
                client.taken = client.taken.wrapping_add(answered);
                wake.notify_client(c, &mut client.queue.responses);
            }
        }
    }

    /// The disk is known and its chain set up: read its partition table if
    /// it must, else give its clients their views.
    fn usable(&mut self, d: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let disk = &mut self.disks[d];
        if disk.needs_partitions && !disk.failed {
            let probe = Request::new(0, Op::Read, 0, 1, disk.probe_paddr).with_tag(PROBE_TAG);
            disk.state = DiskState::Usable;
            if disk.driver.requests.try_push(probe).is_ok() {
                disk.state = DiskState::Probing;
                disk.outstanding += 1;
                wake.notify_driver(disk.index, &mut disk.driver.requests);
            }
            return;
        }
        disk.state = DiskState::Ready;
        self.publish_clients(d, None, wake, log);
    }

    /// The disk is known (and its partition table, if read): give each of
    /// its clients its view.
    fn publish_clients(&mut self, d: usize, sector0: Option<&[u8; 512]>, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        // A disk waiting for this one to be ready is looked at again.
        self.table.relook |= self.disks.iter().any(|other| other.links & 1 << d != 0);
        let (view, read_only) = (self.disks[d].view, self.disks[d].read_only);
        let Server { disks, clients, filters, .. } = self;
        let disk = &disks[d];
        for (c, client) in clients.iter_mut().enumerate().filter(|(_, cl)| cl.disk == d) {
            // A client attached lower sees the window of the filter it
            // attaches at.
            let capacity = match (client.entry, &disk.chain) {
                (0, _) | (_, None) => view,
                (e, Some(chain)) if !disk.failed => chain.filters.get(e as usize).map_or(0, |&f| filters[f as usize].window.blocks),
                _ => 0,
            };
            let range = match (client.partition, sector0) {
                (0, _) => Some((0, capacity)),
                (p, Some(s0)) => match mbr::partition(s0, p as usize) {
                    Ok(part) if part.first_sector % SECTORS_PER_BLOCK == 0 => {
                        let first = part.first_sector / SECTORS_PER_BLOCK;
                        let blocks = (part.sectors / SECTORS_PER_BLOCK).min(capacity.saturating_sub(first));
                        Some((first, blocks))
                    }
                    Ok(_) => {
                        log(Event::PartitionMisaligned { client: c });
                        None
                    }
                    Err(err) => {
                        log(Event::PartitionMissing { client: c, err });
                        None
                    }
                },
                (_, None) => None,
            };
            // A client whose partition is unusable sees an empty disk.
            let (first, blocks) = range.unwrap_or((0, 0));
            client.range = Some((first, blocks));
            client.info = StorageInfo::new(blocks, read_only || client.read_only, client.capacity).with_serial(client.name.as_bytes());
            client.queue.info.publish(&client.info);
            log(Event::ClientReady { client: c, first_block: first, blocks });
            wake.clients |= 1 << c;
        }
    }

    /// Answer the clients whose requests the driver of disk `d` completed,
    /// in one batch: each ring index is loaded and published once.
    #[inline(always)]
    fn take_responses<const CHAINS: bool>(&mut self, d: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        if CHAINS && self.disks[d].chain.is_some() {
            return self.take_chain_responses(d, wake, log);
        }
        let mut probe = None;
        let Server { disks, clients, .. } = self;
        // A driver is trusted; a corrupt ring is left alone.
        let Disk { driver, outstanding, .. } = &mut disks[d];
        let Ok(mut batch) = driver.responses.batch() else { return };
        // Every answer in the batch is popped below, owed or not.
        *outstanding = outstanding.saturating_sub(batch.len());
        while let Some(first) = batch.peek() {
            let tag = first.tag;
            let same_client = |r: &Response| r.tag == tag;
            match clients.get_mut(tag as usize).filter(|cl| cl.disk == d) {
                // A run of answers for one client goes into its ring in one
                // batch, as its own ids, untagged. Room was set aside when
                // the requests were taken (`serve_turn`), so only a client
                // that corrupts its ring loses answers, and then only its
                // own.
                Some(client) => {
                    let owed = client.owed();
                    if let Ok(mut answers) = client.queue.responses.batch() {
                        batch.move_while(&mut answers, owed, same_client, |r| r.with_tag(0));
                    }
                    wake.notify_client(tag as usize, &mut client.queue.responses);
                }
                None => probe = probe.or((tag == PROBE_TAG).then_some(first)),
            }
            // What is left of the run was not owed (a driver bug: not
            // allowed to eat the room set aside for real answers), or
            // has no ring to go to: dropped.
            batch.pass_while(same_client);
        }
        drop(batch);
        if let Some(resp) = probe.filter(|_| self.disks[d].state == DiskState::Probing) {
            let mut sector0 = [0u8; 512];
            let ok = resp.status() == Ok(Status::Ok) && self.disks[d].probe.read_bytes(0, &mut sector0).is_ok();
            self.disks[d].state = DiskState::Ready;
            self.publish_clients(d, ok.then_some(&sector0), wake, log);
        }
    }

    /// The driver's answers for a disk with a chain: each goes to its slot
    /// (and on up the chain); the partition-table read is the only other.
    #[inline(never)]
    fn take_chain_responses(&mut self, d: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let mut probe = None;
        {
            let Server { disks, table, .. } = self;
            let Disk { driver, outstanding, chain, .. } = &mut disks[d];
            let Some(chain) = chain.as_mut() else { return };
            let Ok(mut batch) = driver.responses.batch() else { return };
            *outstanding = outstanding.saturating_sub(batch.len());
            let below = chain.filters.len();
            for r in batch.by_ref() {
                let s = r.tag.wrapping_sub(SLOT_TAG);
                if (s as usize) < MAX_SLOTS {
                    let (op, posts) = chain::answered(&mut table.slots[s as usize % MAX_SLOTS], r.status(), r.count);
                    chain.push_up(s as u8, op, below, posts);
                } else if r.tag == PROBE_TAG {
                    probe = Some(r);
                }
            }
        }
        if let Some(resp) = probe.filter(|_| self.disks[d].state == DiskState::Probing) {
            let mut sector0 = [0u8; 512];
            let ok = resp.status() == Ok(Status::Ok) && self.disks[d].probe.read_bytes(0, &mut sector0).is_ok();
            self.disks[d].state = DiskState::Ready;
            self.publish_clients(d, ok.then_some(&sector0), wake, log);
        }
    }

    /// Round robin over the clients with requests, carrying on after the
    /// last client served (also across calls), while anyone has work and
    /// the drivers have room. In each round of turns a client takes up to
    /// its share of its disk's room (split evenly between the disk's
    /// clients, at least one request), in one batch; a share one client
    /// leaves goes to the others in the next round.
    fn serve_clients<const CHAINS: bool>(&mut self, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        self.call = self.call.wrapping_add(1);
        let n = self.clients.len();
        loop {
            self.round = self.round.wrapping_add(1);
            // Another round only if some client stopped at its share.
            let mut more = false;
            let mut c = self.next_client;
            for _ in 0..n {
                let turn = if CHAINS && self.disks[self.clients[c].disk].chain.is_some() {
                    self.chain_turn(c, wake, log)
                } else {
                    self.serve_turn(c, wake, log)
                };
                if let Some(stopped) = turn {
                    more |= stopped;
                    // The next round, or call, starts after the last
                    // client served: with too little room for everyone,
                    // the next client comes first.
                    self.next_client = if c + 1 == n { 0 } else { c + 1 };
                }
                c = if c + 1 == n { 0 } else { c + 1 };
            }
            if !more {
                break;
            }
        }
    }

    /// Client `c`'s turn: take up to its share, forward the good requests
    /// and answer the bad ones. `None` if it took nothing; `Some(true)` if
    /// it stopped at its share with more requests waiting.
    #[inline(always)]
    fn serve_turn(&mut self, c: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) -> Option<bool> {
        let Server { disks, clients, call, round, reports, .. } = self;
        let client = &mut clients[c];
        let d = client.disk;
        let disk = &mut disks[d];
        client.waiting_for_room = false;
        let owed = client.owed();
        // A flush or barrier waits for the client's answers (which wake us).
        client.ordering &= owed > 0;
        if client.broken || client.range.is_none() || owed >= client.capacity || disk.state != DiskState::Ready || client.ordering {
            return None;
        }
        let mut requests = match client.queue.requests.batch() {
            Ok(batch) if batch.is_empty() => return None,
            Ok(batch) => batch,
            Err(_) => {
                client.broken = true;
                log(Event::ClientCorrupt { client: c });
                return None;
            }
        };
        if disk.room_call != *call {
            disk.room = disk.room_now();
            disk.room_call = *call;
        }
        if disk.share_round != *round {
            disk.share = (disk.room / disk.clients.max(1)).max(1);
            disk.share_round = *round;
        }
        let (room, share) = (disk.room, disk.share);
        // A request is taken only with room in the response ring for its
        // answer and for every answer still owed, so no answer is ever
        // dropped, even for a client that does not take its answers.
        let max = share.min(room).min(requests.len()).min(TURN);
        if max == 0 {
            return None;
        }
        // (`room` loads the client's head again unless the last one it saw
        // already leaves room for all `max`; so a 0 here is current.)
        let Ok(answer_room) = client.queue.responses.room(owed + max) else {
            client.broken = true;
            log(Event::ClientCorrupt { client: c });
            return None;
        };
        let answer_room = answer_room.saturating_sub(owed);
        client.waiting_for_room = answer_room == 0;
        let max = max.min(answer_room);
        let more = (max == share || max == TURN) && requests.len() > max;
        if max == 0 {
            return None;
        }
        // The driver is trusted.
        let Ok(mut driver) = disk.driver.requests.batch() else { return None };
        // `room` is at most what the batch has (the driver only makes more);
        // the clamp keeps a wrong `room` from ever costing a request.
        let max = max.min(driver.room());
        requests.truncate(max);
        // The client's view copied into the closure (so the loop keeps it in
        // registers), and the ids of refused requests kept here to be
        // answered after the loop, which stores only to the driver's ring
        // and this array. `max` is within the driver batch's room: all of
        // `requests` can move. A flush or barrier stops the loop; what
        // follows is out of line (`ordered_turn`), so the loop and the
        // batches stay in registers.
        let view = View::new(client.range, client.info.is_read_only(), client.data_size, client.data_paddr, c);
        let mut refused = Vec::<u32, { TURN as usize }>::new();
        let refused_ids = &mut refused;
        let popped = requests.move_into(&mut driver, move |req| {
            view.step(req, |id| {
                // Cannot fail: fewer than `TURN`.
                let _ = refused_ids.push(id);
            })
        });
        let free = driver.room();
        drop(driver);
        drop(requests);
        let refusals = refused.iter().map(|&id| Response::new(id, Status::InvalidRequest, 0));
        end_turn(client, disk, c, popped, popped - refused.len() as u32, free, refusals, wake);
        if popped < max {
            if ordered_turn(client, disk, c, max - popped, wake) {
                *reports |= 1 << d;
                log(Event::Report { client: c, disk: d });
            }
            return Some(false);
        }
        Some(more)
    }
}

impl Server<'_> {
    /// Client `c`'s turn on a disk with a chain: take up to a turn's worth
    /// of requests into free slots of the in-flight table (room for their
    /// answers set aside, as in `serve_turn`), answer bad ones, barriers
    /// (once its earlier requests are answered) and reports here, and
    /// start the rest down the chain. A flush or barrier waits for every
    /// request before it, those taken in this turn too.
    #[inline(never)]
    fn chain_turn(&mut self, c: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) -> Option<bool> {
        let Server { disks, clients, table, .. } = self;
        let free = table.free_for_clients() as u32;
        let client = &mut clients[c];
        let d = client.disk;
        client.waiting_for_room = false;
        let owed = client.owed();
        client.ordering &= owed > 0;
        let disk = &mut disks[d];
        if client.broken || client.range.is_none() || owed >= client.capacity || disk.state != DiskState::Ready || client.ordering || free == 0 {
            return None;
        }
        let chain = disk.chain.as_mut()?;
        let mut requests = match client.queue.requests.batch() {
            Ok(batch) if batch.is_empty() => return None,
            Ok(batch) => batch,
            Err(_) => {
                client.broken = true;
                log(Event::ClientCorrupt { client: c });
                return None;
            }
        };
        let waiting = requests.len();
        let max = waiting.min(free).min(TURN).min(client.capacity - owed);
        let Ok(answer_room) = client.queue.responses.room(owed + max) else {
            client.broken = true;
            log(Event::ClientCorrupt { client: c });
            return None;
        };
        let answer_room = answer_room.saturating_sub(owed);
        client.waiting_for_room = answer_room == 0;
        let max = max.min(answer_room);
        if max == 0 {
            return None;
        }
        requests.truncate(max);
        let view = View::new(client.range, client.info.is_read_only(), client.data_size, client.data_paddr, c);
        let mut answers = Vec::<Response, { TURN as usize }>::new();
        let mut reported = false;
        let (mut popped, mut taken) = (0, 0);
        let failed = disk.failed;
        while let Some(req) = requests.peek() {
            let op = req.op();
            if failed && op != Ok(Op::Report) {
                // Its chain could not be set up.
                let _ = answers.push(Response::new(req.id, Status::IoError, 0));
                (requests.advance(), popped += 1);
                continue;
            }
            let op = if req.is_transfer_for(view.blocks, view.read_only, view.region) {
                if op == Ok(Op::Read) {
                    Op::Read
                } else {
                    Op::Write
                }
            } else {
                match op {
                    Ok(Op::Report) => {
                        let _ = answers.push(Response::new(req.id, Status::Ok, 0));
                        reported = true;
                        (requests.advance(), popped += 1);
                        continue;
                    }
                    Ok(Op::Barrier | Op::Flush) if owed + taken > 0 => {
                        client.ordering = true;
                        break;
                    }
                    Ok(Op::Barrier) => {
                        let _ = answers.push(Response::new(req.id, Status::Ok, 0));
                        (requests.advance(), popped += 1);
                        continue;
                    }
                    Ok(Op::Flush | Op::FlushCompleted) => Op::Flush,
                    _ => {
                        let _ = answers.push(Response::new(req.id, Status::InvalidRequest, 0));
                        (requests.advance(), popped += 1);
                        continue;
                    }
                }
            };
            // Into a slot (`max` is within the free slots) and down the
            // chain.
            let Some(s) = table.free.pop() else { break };
            let entry = client.entry as usize;
            let slot = &mut table.slots[s as usize % MAX_SLOTS];
            chain::start(slot, c, &req, op, view.first, entry, chain.base(entry));
            slot.disk = d as u8;
            chain.push_down(s, op, entry);
            requests.advance();
            (popped, taken) = (popped + 1, taken + 1);
        }
        drop(requests);
        client.taken = client.taken.wrapping_add(popped);
        if !answers.is_empty() {
            for a in &answers {
                let _ = client.queue.responses.push(*a);
            }
            wake.notify_client(c, &mut client.queue.responses);
        }
        let more = popped == max && waiting > max && !client.ordering;
        if reported {
            self.reports |= 1 << d;
            log(Event::Report { client: c, disk: d });
        }
        (popped > 0).then_some(more)
    }
}

/// Client `c`'s turn stopped at a flush or barrier, with `left` of its
/// share to go. If none of its earlier requests is outstanding, take it (a
/// barrier is answered at once; a flush goes to the driver as a flush of
/// completed writes, which covers all the client's earlier writes without
/// the driver holding anyone else's requests back) and carry on as
/// `serve_turn` does; otherwise it waits for those answers (which wake us),
/// and so do its later requests. A client's own flush of completed writes
/// goes at once. Out of line, with batches of its own: `serve_turn`'s loop
/// stays as tight as without ordering.
#[cold]
#[inline(never)]
fn ordered_turn(client: &mut Client<'_>, disk: &mut Disk<'_>, c: usize, mut left: u32, wake: &mut Wake) -> bool {
    let view = View::new(client.range, client.info.is_read_only(), client.data_size, client.data_paddr, c);
    let mut outstanding = client.owed();
    let mut answers = Vec::<Response, { TURN as usize }>::new();
    let (mut popped, mut forwarded) = (0, 0);
    let mut reported = false;
    let free = {
        let (Ok(mut requests), Ok(mut driver)) = (client.queue.requests.batch(), disk.driver.requests.batch()) else { return false };
        requests.truncate(left);
        while let Some(next) = requests.peek() {
            let op = next.op();
            if outstanding > 0 && op != Ok(Op::FlushCompleted) && op != Ok(Op::Report) {
                client.ordering = true;
                break;
            }
            if op == Ok(Op::Barrier) {
                // Every request before it has been answered.
                let _ = answers.push(Response::new(next.id, Status::Ok, 0));
            } else if op == Ok(Op::Report) {
                // Answered here; the caller prints the statistics.
                let _ = answers.push(Response::new(next.id, Status::Ok, 0));
                reported = true;
            } else {
                // Taken only once it is on its way: `serve_turn` kept
                // `left` within the driver batch's room, but a flush lost
                // here would leave the client waiting for good.
                let flush = Request { opcode: Op::FlushCompleted.raw(), ..next.forwarded(view.first, view.base, view.tag) };
                if driver.push(flush).is_err() {
                    break;
                }
                (forwarded, outstanding) = (forwarded + 1, outstanding + 1);
            }
            requests.next();
            (popped, left) = (popped + 1, left - 1);
            let answered_before = answers.len() as u32;
            let n = requests.move_into(&mut driver, |req| {
                view.step(req, |id| {
                    let _ = answers.push(Response::new(id, Status::InvalidRequest, 0));
                })
            });
            let sent = n - (answers.len() as u32 - answered_before);
            (popped, forwarded, outstanding, left) = (popped + n, forwarded + sent, outstanding + sent, left - n);
        }
        driver.room()
    };
    end_turn(client, disk, c, popped, forwarded, free, answers.iter().copied(), wake);
    reported
}

/// The end of client `c`'s turn, once its batches are handed back: count
/// the `forwarded` requests as outstanding at the driver (whose request
/// ring has `free` slots left), wake it if it asked, give the client the
/// answers given here (room was set aside in `serve_turn`), and count the
/// `popped` requests as taken.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn end_turn(
    client: &mut Client<'_>,
    disk: &mut Disk<'_>,
    c: usize,
    popped: u32,
    forwarded: u32,
    free: u32,
    answers: impl Iterator<Item = Response>,
    wake: &mut Wake,
) {
    disk.outstanding += forwarded;
    disk.room = disk.answerable(free);
    wake.notify_driver(disk.index, &mut disk.driver.requests);
    let mut answered = false;
    for answer in answers {
        let _ = client.queue.responses.push(answer);
        answered = true;
    }
    if answered {
        wake.notify_client(c, &mut client.queue.responses);
    }
    client.taken = client.taken.wrapping_add(popped);
}

/// A client's view, as a turn checks and translates its requests.
#[derive(Clone, Copy)]
struct View {
    first: u64,
    blocks: u64,
    read_only: bool,
    region: u64,
    base: u64,
    tag: u32,
}

impl View {
    fn new(range: Option<(u64, u64)>, read_only: bool, region: u64, base: u64, c: usize) -> View {
        let (first, blocks) = range.unwrap_or((0, 0));
        View { first, blocks, read_only, region, base, tag: c as u32 }
    }

    /// What a turn does with `req`: forward a good read or write, refuse
    /// a bad request (`refuse` gets its id), stop at a flush or barrier.
    #[inline(always)]
    fn step(&self, req: Request, refuse: impl FnOnce(u32)) -> Step<Request> {
        if req.is_transfer_for(self.blocks, self.read_only, self.region) {
            return Step::Push(req.forwarded(self.first, self.base, self.tag));
        }
        if req.op().is_ok_and(|op| !op.moves_data()) {
            return Step::Stop;
        }
        refuse(req.id);
        Step::Pass
    }
}

impl Disk<'_> {
    /// Whether the driver may be sent a request now (the head is loaded
    /// again only if the last one seen left no room).
    fn can_forward(&mut self) -> bool {
        self.outstanding < self.driver.responses.capacity() && self.driver.requests.room(1).is_ok_and(|r| r > 0)
    }

    /// Requests the driver may be sent now: what its request ring has free,
    /// within what its response ring can answer.
    fn room_now(&mut self) -> u32 {
        let free = self.driver.requests.free().unwrap_or(0);
        self.answerable(free)
    }

    /// Of `free` slots in the request ring, those whose answers the
    /// response ring can still take.
    fn answerable(&self, free: u32) -> u32 {
        free.min(self.driver.responses.capacity().saturating_sub(self.outstanding))
    }
}

impl Client<'_> {
    /// Answers taken and not yet pushed.
    fn owed(&self) -> u32 {
        self.taken.wrapping_sub(self.queue.responses.pushed())
    }
}

/// The indices of the set bits of `mask`, lowest first.
pub fn bits(mut mask: u32) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

#[cfg(test)]
mod tests;
