//! The filter server's logic, tested on the host with in-memory queues.
//!
//! Between untrusted clients and the driver it:
//! - checks every request against the client's view (its disk, or its MBR
//!   partition, and its own data region) and answers a bad one with
//!   `InvalidRequest` without touching anything else;
//! - translates a good one: blocks shift by the partition's start, the data
//!   offset becomes the device address of the client's data region;
//! - gives the driver its own request ids (slots in a table), so a client
//!   can neither complete nor see another client's request;
//! - serves clients round robin, one request per client per turn, and
//!   keeps each client within its queue capacity so its response ring can
//!   never overflow;
//! - reads each disk's partition table before serving partition clients.
//!
//! Filter chains come next; every chain is empty for now.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use blk::config::{name_str, ServerConfig};
use blk::mbr;
use blk::{Op, Request, Requester, Responder, Response, Status, StorageInfo, BLOCK_SIZE};
use heapless::Vec;

pub const MAX_CLIENTS: usize = blk::config::MAX_CLIENTS;
pub const MAX_DISKS: usize = blk::config::MAX_DISKS;
/// Requests in flight to the drivers at once.
pub const SLOTS: usize = 256;
const SECTORS_PER_BLOCK: u64 = BLOCK_SIZE as u64 / 512;
/// Driver-side id of a disk's partition-table read.
const PROBE_ID: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskState {
    /// Waiting for the driver to publish the disk's info.
    Starting,
    /// Reading the partition table.
    Probing,
    Ready,
}

pub struct Disk<'a> {
    pub name: &'a str,
    driver: Requester<'a>,
    probe_paddr: u64,
    /// The probe buffer as the server sees it.
    probe: blk::Shared<'a>,
    state: DiskState,
    capacity: u64,
    read_only: bool,
    needs_partitions: bool,
}

pub struct Client<'a> {
    pub name: &'a str,
    queue: Responder<'a>,
    disk: usize,
    partition: u32,
    data_paddr: u64,
    data_size: u64,
    /// The client's view, once the disk is known: first block and blocks.
    range: Option<(u64, u64)>,
    info: StorageInfo,
    /// Requests taken and not yet answered.
    outstanding: u32,
    capacity: u32,
    /// A client that corrupted its rings is no longer served.
    broken: bool,
}

#[derive(Clone, Copy)]
struct Slot {
    client: u8,
    disk: u8,
    id: u32,
}

/// Whom to notify after a round of work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    /// Bit c: client c.
    pub clients: u32,
    /// Bit d: disk d's driver.
    pub drivers: u32,
}

/// Something worth printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    DiskReady { disk: usize, blocks: u64 },
    ClientReady { client: usize, first_block: u64, blocks: u64 },
    PartitionMissing { client: usize, err: mbr::MbrError },
    PartitionMisaligned { client: usize },
    ClientCorrupt { client: usize },
}

pub struct Server<'a> {
    pub disks: Vec<Disk<'a>, MAX_DISKS>,
    pub clients: Vec<Client<'a>, MAX_CLIENTS>,
    slots: [Option<Slot>; SLOTS],
    /// Indices of the `None` entries of `slots`, so taking and checking for
    /// a free slot costs the same however many are in flight.
    free: Vec<u16, SLOTS>,
    next_client: usize,
}

/// The server's shared memory, mapped where the configuration says.
pub struct Regions<'a> {
    pub disk_queues: [Option<blk::Shared<'a>>; MAX_DISKS],
    pub probes: [Option<blk::Shared<'a>>; MAX_DISKS],
    pub client_queues: [Option<blk::Shared<'a>>; MAX_CLIENTS],
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
        for (d, disk) in config.disks().iter().enumerate() {
            let layout = blk::QueueLayout::for_region(disk.queue.size as usize, disk.queue.capacity).map_err(|_| SetupError::BadRegion)?;
            let region = regions.disk_queues[d].ok_or(SetupError::BadRegion)?;
            let driver = Requester::new(region, layout).map_err(|_| SetupError::BadRegion)?;
            let needs_partitions = config.clients().iter().any(|c| c.disk as usize == d && c.partition != 0);
            let _ = disks.push(Disk {
                name: name_str(&disk.name),
                driver,
                probe_paddr: disk.probe.paddr,
                probe: regions.probes[d].ok_or(SetupError::BadRegion)?,
                state: DiskState::Starting,
                capacity: 0,
                read_only: false,
                needs_partitions,
            });
        }
        let mut clients = Vec::new();
        for (c, client) in config.clients().iter().enumerate() {
            if client.disk as usize >= disks.len() {
                return Err(SetupError::BadRegion);
            }
            let layout = blk::QueueLayout::for_region(client.queue.size as usize, client.queue.capacity).map_err(|_| SetupError::BadRegion)?;
            let region = regions.client_queues[c].ok_or(SetupError::BadRegion)?;
            let queue = Responder::new(region, layout).map_err(|_| SetupError::BadRegion)?;
            let _ = clients.push(Client {
                name: name_str(&client.name),
                queue,
                disk: client.disk as usize,
                partition: client.partition,
                data_paddr: client.data.paddr,
                data_size: client.data.size,
                range: None,
                info: StorageInfo::new(0, false, layout.capacity()),
                outstanding: 0,
                capacity: layout.capacity(),
                broken: false,
            });
        }
        let free = (0..SLOTS as u16).rev().collect();
        Ok(Server { disks, clients, slots: [None; SLOTS], free, next_client: 0 })
    }

    /// Do all the work there is; `log` hears about notable events.
    pub fn run(&mut self, log: &mut impl FnMut(Event)) -> Wake {
        let mut wake = Wake::default();
        loop {
            for d in 0..self.disks.len() {
                if self.disks[d].state != DiskState::Ready {
                    self.start_disk(d, &mut wake, log);
                }
                self.take_responses(d, &mut wake, log);
            }
            self.serve_clients(log);
            // Each step above drained what it could; arming the rings looks
            // once more for anything that arrived meanwhile.
            if self.ready_to_wait() {
                break;
            }
        }
        for d in 0..self.disks.len() {
            if self.disks[d].driver.requests.needs_notify() {
                wake.drivers |= 1 << d;
            }
        }
        for (c, client) in self.clients.iter_mut().enumerate() {
            if client.queue.responses.needs_notify() {
                wake.clients |= 1 << c;
            }
        }
        wake
    }

    /// Ask every ring we could consume now to signal us; false if something
    /// arrived meanwhile (then there is more work). A client we cannot serve
    /// yet (its disk is busy or it has all it may have outstanding) is not
    /// asked: a driver response wakes us first.
    fn ready_to_wait(&mut self) -> bool {
        let mut quiet = true;
        for disk in self.disks.iter_mut() {
            quiet &= disk.driver.responses.prepare_to_wait().unwrap_or(true);
        }
        for c in 0..self.clients.len() {
            if self.may_take(c) {
                quiet &= self.clients[c].queue.requests.prepare_to_wait().unwrap_or(true);
            }
        }
        quiet
    }

    /// Whether client `c` may have a request taken now.
    fn may_take(&self, c: usize) -> bool {
        let client = &self.clients[c];
        !client.broken
            && client.range.is_some()
            && client.outstanding < client.capacity
            && !self.free.is_empty()
            && !self.disks[client.disk].driver.requests.is_full().unwrap_or(true)
    }

    fn start_disk(&mut self, d: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let disk = &mut self.disks[d];
        if disk.state != DiskState::Starting {
            return;
        }
        let Some(info) = disk.driver.info.get() else { return };
        disk.capacity = info.capacity;
        disk.read_only = info.is_read_only();
        log(Event::DiskReady { disk: d, blocks: info.capacity });
        if disk.needs_partitions {
            let probe = Request::new(PROBE_ID, Op::Read, 0, 1, disk.probe_paddr);
            if disk.driver.requests.try_push(probe).is_ok() {
                disk.state = DiskState::Probing;
            }
            return;
        }
        disk.state = DiskState::Ready;
        self.publish_clients(d, None, wake, log);
    }

    /// The disk is known (and its partition table, if read): give each of
    /// its clients its view.
    fn publish_clients(&mut self, d: usize, sector0: Option<&[u8; 512]>, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        let (capacity, read_only) = (self.disks[d].capacity, self.disks[d].read_only);
        for (c, client) in self.clients.iter_mut().enumerate().filter(|(_, cl)| cl.disk == d) {
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
            client.info = StorageInfo::new(blocks, read_only, client.capacity).with_serial(client.name.as_bytes());
            client.queue.info.publish(&client.info);
            log(Event::ClientReady { client: c, first_block: first, blocks });
            wake.clients |= 1 << c;
        }
    }

    fn take_responses(&mut self, d: usize, wake: &mut Wake, log: &mut impl FnMut(Event)) {
        loop {
            let resp = match self.disks[d].driver.responses.try_pop() {
                Ok(Some(r)) => r,
                // A driver is trusted; a corrupt ring is left alone.
                Ok(None) | Err(_) => return,
            };
            if resp.id == PROBE_ID && self.disks[d].state == DiskState::Probing {
                let mut sector0 = [0u8; 512];
                let ok = resp.status() == Ok(Status::Ok) && self.disks[d].probe.read_bytes(0, &mut sector0).is_ok();
                self.disks[d].state = DiskState::Ready;
                self.publish_clients(d, ok.then_some(&sector0), wake, log);
                continue;
            }
            let Some(slot) = self.slots.get_mut(resp.id as usize).and_then(|s| s.take_if(|s| s.disk as usize == d)) else {
                continue;
            };
            // Cannot overflow: the slot was taken from the list.
            let _ = self.free.push(resp.id as u16);
            let client = &mut self.clients[slot.client as usize];
            client.outstanding -= 1;
            let status = resp.status().unwrap_or(Status::IoError);
            let count = if status == Status::Ok { resp.count } else { 0 };
            // A client that keeps within its queue's capacity always has
            // room; one that does not can lose only its own responses.
            let _ = client.queue.responses.try_push(Response::new(slot.id, status, count));
        }
    }

    /// Round robin: one request from each client in turn, carrying on
    /// after the last client served (also across calls), while anyone has
    /// work and the drivers have room.
    fn serve_clients(&mut self, log: &mut impl FnMut(Event)) {
        let n = self.clients.len();
        let mut idle = 0;
        while idle < n {
            let c = self.next_client % n;
            self.next_client = (c + 1) % n;
            if self.serve_one(c, log) {
                idle = 0;
            } else {
                idle += 1;
            }
        }
    }

    /// Take one request from client `c`, if it may have one now.
    fn serve_one(&mut self, c: usize, log: &mut impl FnMut(Event)) -> bool {
        if !self.may_take(c) {
            return false;
        }
        let client = &mut self.clients[c];
        let d = client.disk;
        let req = match client.queue.requests.try_pop() {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(_) => {
                client.broken = true;
                log(Event::ClientCorrupt { client: c });
                return false;
            }
        };
        client.outstanding += 1;
        let op = match req.check(&client.info, client.data_size) {
            Ok(op) => op,
            Err(status) => {
                client.outstanding -= 1;
                let _ = client.queue.responses.try_push(Response::new(req.id, status, 0));
                return true;
            }
        };
        let (first, _) = client.range.unwrap_or((0, 0));
        let forwarded = if op.moves_data() {
            Request::new(0, op, req.block + first, req.count, client.data_paddr + req.data_offset)
        } else {
            Request::ordering(0, op)
        };
        let slot = self.take_slot(Slot { client: c as u8, disk: d as u8, id: req.id });
        let mut forwarded = forwarded;
        forwarded.id = slot as u32;
        // Checked above that the driver ring has room.
        let _ = self.disks[d].driver.requests.try_push(forwarded);
        true
    }

    /// A free slot for `s`; callers check `may_take` (a slot is free) first.
    fn take_slot(&mut self, s: Slot) -> usize {
        let i = self.free.pop().unwrap_or(0) as usize;
        self.slots[i] = Some(s);
        i
    }
}

#[cfg(test)]
mod tests;
