//! The server against in-memory client queues and a scripted driver.

use super::*;
use blk::config::{name_field, DmaRegion, QueueRegion, ServerClient, ServerConfig, ServerDisk, MAGIC};
use blk::{QueueLayout, Shared};
use std::boxed::Box;
use std::vec::Vec as StdVec;

mod chain;
mod model;

const DISK_BLOCKS: u64 = 1024;
const DATA_SIZE: u64 = 16 * 4096;

struct Client {
    partition: u32,
    capacity: u32,
}

/// Host memory for every region, leaked so it lives as long as the test.
fn words(bytes: usize) -> &'static mut [u64] {
    Box::leak(vec![0u64; bytes / 8].into_boxed_slice())
}

struct Harness {
    server: Server<'static>,
    /// The driver's end of each disk queue.
    drivers: StdVec<Responder<'static>>,
    /// Each client's end.
    clients: StdVec<Requester<'static>>,
    probe: Shared<'static>,
    client_regions: StdVec<Shared<'static>>,
    events: StdVec<Event>,
}

fn harness(clients: &[Client], driver_capacity: u32) -> Harness {
    harness_after(0, clients, driver_capacity)
}

/// The clients' disk comes after `others` disks the server does not drive
/// (each has a direct client: the configuration names it, nothing more).
fn harness_after(others: usize, clients: &[Client], driver_capacity: u32) -> Harness {
    harness_with_flags(others, clients, driver_capacity, &[])
}

/// As `harness_after`, client `i` with `flags[i]` ([`ServerClient::flags`]).
fn harness_with_flags(others: usize, clients: &[Client], driver_capacity: u32, flags: &[u32]) -> Harness {
    let config: &'static mut ServerConfig = Box::leak(Box::new(ServerConfig::UNSET));
    config.magic = MAGIC;
    config.disk_count = others as u32 + 1;
    for d in 0..others {
        config.disks[d] = ServerDisk { name: name_field(&format!("direct{d}")), ..ServerDisk::default() };
    }
    config.client_count = clients.len() as u32;
    let dlayout = QueueLayout::new(driver_capacity).unwrap();
    config.disks[others] = ServerDisk {
        queue: QueueRegion { vaddr: 0, size: dlayout.size() as u64, capacity: driver_capacity, channel: 40 },
        probe: DmaRegion { vaddr: 0, paddr: 0x5000_0000, size: 4096 },
        name: name_field("disk0"),
    };
    let dq = Shared::from_words(words(dlayout.size().next_multiple_of(8)));
    let probe = Shared::from_words(words(4096));
    let mut regions = Regions::none();
    regions.disk_queues[others] = Some(dq);
    regions.probes[others] = Some(probe);
    let mut ends = StdVec::new();
    let mut client_regions = StdVec::new();
    for (i, c) in clients.iter().enumerate() {
        let layout = QueueLayout::new(c.capacity).unwrap();
        config.clients[i] = ServerClient {
            queue: QueueRegion { vaddr: 0, size: layout.size() as u64, capacity: c.capacity, channel: i as u32 },
            data: DmaRegion { vaddr: 0, paddr: 0x5100_0000 + i as u64 * 0x10_0000, size: DATA_SIZE },
            disk: others as u32,
            partition: c.partition,
            name: name_field(&format!("client{i}")),
            entry: 0,
            flags: flags.get(i).copied().unwrap_or(0),
        };
        let q = Shared::from_words(words(layout.size().next_multiple_of(8)));
        regions.client_queues[i] = Some(q);
        client_regions.push(q);
        ends.push(Requester::new(q, layout).unwrap());
    }
    let server = Server::new(config, regions).unwrap();
    let mut driver = Responder::new(dq, dlayout).unwrap();
    driver.info.publish(&StorageInfo::new(DISK_BLOCKS, false, driver_capacity));
    Harness { server, drivers: vec![driver], clients: ends, probe, client_regions, events: StdVec::new() }
}

impl Harness {
    fn run(&mut self) -> Wake {
        let events = &mut self.events;
        self.server.run(&mut |e| events.push(e))
    }
    /// Requests the driver received, in order.
    fn driver_requests(&mut self) -> StdVec<Request> {
        core::iter::from_fn(|| self.drivers[0].requests.try_pop().unwrap()).collect()
    }
    fn complete(&mut self, reqs: &[Request], status: Status) {
        for r in reqs {
            // A driver echoes id and tag.
            self.drivers[0].responses.try_push(Response::new(r.id, status, r.count).with_tag(r.tag)).unwrap();
        }
    }
    fn responses(&mut self, c: usize) -> StdVec<Response> {
        core::iter::from_fn(|| self.clients[c].responses.try_pop().unwrap()).collect()
    }
    /// Let the server forward what it will, complete all of it, and return
    /// the ids client `c` then finds answered.
    fn complete_all(&mut self, c: usize) -> StdVec<u32> {
        self.run();
        let fwd = self.driver_requests();
        self.complete(&fwd, Status::Ok);
        self.run();
        self.responses(c).into_iter().map(|r| r.id).collect()
    }
    fn push(&mut self, c: usize, r: Request) {
        self.clients[c].requests.try_push(r).unwrap();
    }
}

#[test]
fn clients_see_their_disk_once_the_driver_is_ready() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }], 8);
    let wake = h.run();
    assert_eq!(wake.clients, 1, "the client is told its disk is ready");
    let info = h.clients[0].info.get().expect("published");
    assert_eq!(info.capacity, DISK_BLOCKS);
    assert_eq!(info.serial(), b"client0");
    assert!(h.events.contains(&Event::ClientReady { client: 0, first_block: 0, blocks: DISK_BLOCKS }));
}

#[test]
fn good_requests_are_translated_and_answered_with_the_clients_ids() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }], 8);
    h.run();
    // The driver has nothing to do and asks to be woken.
    assert!(h.drivers[0].requests.prepare_to_wait().unwrap());
    h.push(0, Request::new(77, Op::Write, 10, 2, 4096));
    h.push(0, Request::ordering(78, Op::Flush));
    let wake = h.run();
    assert_eq!(wake.drivers, 1);
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1, "the flush waits for the write");
    assert_eq!((fwd[0].op(), fwd[0].block, fwd[0].count, fwd[0].data_offset), (Ok(Op::Write), 10, 2, 0x5100_0000 + 4096));
    assert_eq!(fwd[0].tag, 0, "tagged with the client's index");
    h.complete(&fwd, Status::Ok);
    assert!(h.clients[0].responses.prepare_to_wait().unwrap(), "the client waits");
    assert!(h.drivers[0].requests.prepare_to_wait().unwrap(), "and so does the driver");
    assert_eq!(h.run(), Wake { clients: 1, drivers: 1 }, "its answer goes out, and the flush in");
    assert_eq!(h.responses(0), [Response::new(77, Status::Ok, 2)]);
    let fwd = h.driver_requests();
    assert_eq!((fwd.len(), fwd[0].op(), fwd[0].id, fwd[0].tag), (1, Ok(Op::FlushCompleted), 78, 0));
    h.complete(&fwd, Status::Ok);
    assert!(h.clients[0].responses.prepare_to_wait().unwrap());
    assert_eq!(h.run().clients, 1);
    assert_eq!(h.responses(0), [Response::new(78, Status::Ok, 0)]);
}

#[test]
fn disks_with_a_direct_client_are_left_to_it_and_the_others_served() {
    // Disks 0 and 1 have direct clients (the configuration names them and
    // gives no queue); the server drives disk 2, with partitions.
    let mut h = harness_after(2, &[Client { partition: 1, capacity: 8 }], 8);
    assert!(h.drivers[0].requests.prepare_to_wait().unwrap());
    let wake = h.run();
    assert_eq!(wake.drivers, 0b100, "disk 2's driver is sent the partition-table read");
    let probe = h.driver_requests();
    assert_eq!(probe.len(), 1);
    let mut mbr = [0u8; 512];
    mbr::write(&mut mbr, &[(64, 128)]); // partition 1: blocks 8..24
    h.probe.write_bytes(0, &mbr).unwrap();
    h.complete(&probe, Status::Ok);
    h.run();
    assert_eq!(h.events[0], Event::DiskReady { disk: 2, blocks: DISK_BLOCKS }, "named by its number in the configuration");
    assert!(h.events.contains(&Event::ClientReady { client: 0, first_block: 8, blocks: 16 }));
    assert!(h.drivers[0].requests.prepare_to_wait().unwrap());
    h.push(0, Request::new(5, Op::Read, 1, 1, 0));
    assert_eq!(h.run().drivers, 0b100);
    let fwd = h.driver_requests();
    assert_eq!(fwd[0].block, 9, "shifted by the partition's start");
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(5, Status::Ok, 1)]);
}

#[test]
fn a_clients_barrier_holds_back_only_its_own_later_requests() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }, Client { partition: 0, capacity: 8 }], 16);
    h.run();
    h.push(0, Request::new(1, Op::Read, 1, 1, 0));
    h.push(0, Request::ordering(2, Op::Barrier));
    h.push(0, Request::new(3, Op::Read, 3, 1, 0));
    h.push(1, Request::new(10, Op::Read, 10, 1, 0));
    h.run();
    let first = h.driver_requests();
    let ids = |reqs: &[Request]| reqs.iter().map(|r| (r.tag, r.id)).collect::<StdVec<_>>();
    assert_eq!(ids(&first), [(0, 1), (1, 10)], "client 0's read after its barrier waits");
    // Client 1 is not held back by client 0's barrier.
    h.push(1, Request::new(11, Op::Read, 11, 1, 0));
    h.run();
    let more = h.driver_requests();
    assert_eq!(ids(&more), [(1, 11)]);
    h.complete(&more, Status::Ok);
    h.run();
    assert_eq!(h.responses(1), [Response::new(11, Status::Ok, 1)]);
    assert_eq!(h.driver_requests(), [], "client 0's read 1 is still outstanding");
    // Once client 0's read is answered, its barrier is, and its next read
    // goes out; the driver never sees the barrier.
    h.complete(&first, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 1), Response::new(2, Status::Ok, 0)]);
    assert_eq!(h.responses(1), [Response::new(10, Status::Ok, 1)]);
    let last = h.driver_requests();
    assert_eq!(ids(&last), [(0, 3)]);
    h.complete(&last, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(3, Status::Ok, 1)]);
}

#[test]
fn with_nothing_outstanding_a_barrier_is_answered_at_once_and_a_flush_forwarded() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }], 8);
    h.run();
    h.push(0, Request::ordering(1, Op::Barrier));
    h.push(0, Request::ordering(2, Op::Flush));
    h.push(0, Request::new(3, Op::Write, 3, 1, 0));
    h.push(0, Request::ordering(4, Op::FlushCompleted));
    h.run();
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 0)]);
    let fwd = h.driver_requests();
    let ops = fwd.iter().map(|r| (r.id, r.op())).collect::<StdVec<_>>();
    // A client's flush of completed writes goes as it is, without waiting.
    assert_eq!(ops, [(2, Ok(Op::FlushCompleted)), (3, Ok(Op::Write)), (4, Ok(Op::FlushCompleted))]);
}

#[test]
fn a_flush_after_a_barrier_still_waits_for_the_writes_between_them() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }], 8);
    h.run();
    // The barrier is taken out of line with nothing outstanding; the write
    // after it goes out there too, and the flush must then wait for it.
    h.push(0, Request::ordering(1, Op::Barrier));
    h.push(0, Request::new(2, Op::Write, 2, 1, 0));
    h.push(0, Request::ordering(3, Op::Flush));
    h.run();
    assert_eq!(h.responses(0), [Response::new(1, Status::Ok, 0)]);
    let fwd = h.driver_requests();
    assert_eq!(fwd.iter().map(|r| (r.id, r.op())).collect::<StdVec<_>>(), [(2, Ok(Op::Write))], "the flush waits");
    h.complete(&fwd, Status::Ok);
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.iter().map(|r| (r.id, r.op())).collect::<StdVec<_>>(), [(3, Ok(Op::FlushCompleted))]);
}

#[test]
fn requests_taken_after_a_barrier_count_against_the_drivers_rings() {
    // A driver whose rings hold 4: what the server keeps outstanding there
    // must stay within 4 whichever way the requests went out.
    let mut h = harness(&[Client { partition: 0, capacity: 8 }], 4);
    h.run();
    h.push(0, Request::ordering(1, Op::Barrier));
    for id in 2..5 {
        h.push(0, Request::new(id, Op::Read, id as u64, 1, 0));
    }
    h.run();
    assert_eq!(h.driver_requests().len(), 3);
    for id in 5..9 {
        h.push(0, Request::new(id, Op::Read, id as u64, 1, 0));
    }
    h.run();
    // The driver took the first 3 off its ring but has not answered them:
    // only one more fits its response ring.
    assert_eq!(h.driver_requests().len(), 1);
}

#[test]
fn a_peer_is_woken_only_for_new_entries_it_waits_for() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }, Client { partition: 0, capacity: 8 }], 8);
    h.run();
    assert!(h.drivers[0].requests.prepare_to_wait().unwrap());
    for c in 0..2 {
        assert!(h.clients[c].responses.prepare_to_wait().unwrap());
    }
    // Only a refusal: its client hears of it, the driver does not.
    h.push(0, Request::new(1, Op::Read, DISK_BLOCKS, 1, 0));
    assert_eq!(h.run(), Wake { clients: 0b01, drivers: 0 });
    assert_eq!(h.responses(0), [Response::new(1, Status::InvalidRequest, 0)]);
    // A good request wakes the driver, and nobody else.
    h.push(1, Request::new(2, Op::Read, 5, 1, 0));
    assert_eq!(h.run(), Wake { clients: 0, drivers: 1 });
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    assert_eq!(h.run(), Wake { clients: 0b10, drivers: 0 });
    assert_eq!(h.responses(1), [Response::new(2, Status::Ok, 1)]);
    // Nothing new: nobody is woken, though everyone still waits.
    assert!(h.drivers[0].requests.prepare_to_wait().unwrap());
    assert_eq!(h.run(), Wake::default());
}

#[test]
fn bad_requests_are_refused_and_never_reach_the_driver() {
    let mut h = harness(&[Client { partition: 0, capacity: 16 }], 16);
    h.run();
    let bad = [
        Request::new(1, Op::Read, DISK_BLOCKS, 1, 0),           // past the end
        Request::new(2, Op::Read, DISK_BLOCKS - 1, 2, 0),       // runs past the end
        Request::new(3, Op::Read, 0, 1, 100),                   // misaligned buffer
        Request::new(4, Op::Read, 0, 0, 0),                     // zero count
        Request::new(5, Op::Read, 0, 17, 0),                    // longer than the data region
        Request::new(6, Op::Write, 0, 1, DATA_SIZE),            // buffer outside the region
        Request::new(7, Op::Read, u64::MAX, 2, 0),              // overflowing range
    ];
    for r in bad {
        h.push(0, r);
    }
    let mut unknown = Request::new(8, Op::Read, 0, 1, 0);
    unknown.opcode = 99;
    h.push(0, unknown);
    h.push(0, Request::new(9, Op::Read, 3, 1, 0)); // one good one
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1, "only the good request reaches the driver");
    let mut got = h.responses(0);
    assert_eq!(got.len(), 8);
    got.sort_by_key(|r| r.id);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(*r, Response::new(i as u32 + 1, Status::InvalidRequest, 0));
    }
    h.complete(&fwd, Status::Ok);
    h.run();
    assert_eq!(h.responses(0), [Response::new(9, Status::Ok, 1)]);
}

#[test]
fn a_read_only_client_reads_and_flushes_but_its_writes_are_refused_before_the_driver() {
    let clients = [Client { partition: 0, capacity: 8 }, Client { partition: 0, capacity: 8 }];
    let mut h = harness_with_flags(0, &clients, 8, &[blk::config::CLIENT_READ_ONLY, 0]);
    h.run();
    assert!(h.clients[0].info.get().unwrap().is_read_only(), "its storage info says read-only");
    assert!(!h.clients[1].info.get().unwrap().is_read_only(), "the other client's does not");
    h.push(0, Request::new(1, Op::Write, 5, 1, 0));
    h.push(0, Request::new(2, Op::Read, 5, 1, 0));
    h.push(1, Request::new(3, Op::Write, 5, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    let ops: StdVec<_> = fwd.iter().map(|r| (r.op(), r.tag)).collect();
    assert_eq!(ops, [(Ok(Op::Read), 0), (Ok(Op::Write), 1)], "the read-only client's write never reaches the driver");
    h.complete(&fwd, Status::Ok);
    h.push(0, Request::ordering(4, Op::Flush));
    h.run();
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    h.run();
    let mut got = h.responses(0);
    got.sort_by_key(|r| r.id);
    assert_eq!(got, [Response::new(1, Status::InvalidRequest, 0), Response::new(2, Status::Ok, 1), Response::new(4, Status::Ok, 0)]);
    assert_eq!(h.responses(1), [Response::new(3, Status::Ok, 1)]);
}

#[test]
fn a_client_cannot_complete_or_see_another_clients_request() {
    let mut h = harness(&[Client { partition: 0, capacity: 4 }, Client { partition: 0, capacity: 4 }], 8);
    h.run();
    // Both use id 5, and client 1 forges client 0's tag.
    h.push(0, Request::new(5, Op::Read, 1, 1, 0));
    h.push(1, Request::new(5, Op::Read, 2, 1, 4096).with_tag(0));
    h.run();
    let mut fwd = h.driver_requests();
    let tags: StdVec<(u64, u32)> = fwd.iter().map(|r| (r.block, r.tag)).collect();
    assert_eq!(tags, [(1, 0), (2, 1)], "the server's tag, not the client's");
    fwd.reverse();
    h.drivers[0].responses.try_push(Response::new(5, Status::IoError, 0).with_tag(fwd[0].tag)).unwrap();
    h.drivers[0].responses.try_push(Response::new(5, Status::Ok, 1).with_tag(fwd[1].tag)).unwrap();
    // Answers for a tag nobody has, and one more than client 0 is owed,
    // are dropped.
    h.drivers[0].responses.try_push(Response::new(5, Status::Ok, 1).with_tag(7)).unwrap();
    h.drivers[0].responses.try_push(Response::new(6, Status::Ok, 1).with_tag(0)).unwrap();
    h.run();
    assert_eq!(h.responses(1), [Response::new(5, Status::IoError, 0)]);
    assert_eq!(h.responses(0), [Response::new(5, Status::Ok, 1)], "untagged, and nothing it is not owed");
}

#[test]
fn clients_are_served_round_robin() {
    let mut h = harness(&[Client { partition: 0, capacity: 32 }, Client { partition: 0, capacity: 32 }], 4);
    h.run();
    for i in 0..20 {
        h.push(0, Request::new(i, Op::Read, i as u64, 1, 0));
    }
    for i in 0..3 {
        h.push(1, Request::new(100 + i, Op::Read, 500 + i as u64, 1, 0));
    }
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 4, "the driver queue holds four");
    let owners: StdVec<u64> = fwd.iter().map(|r| r.block / 500).collect();
    assert_eq!(owners, [0, 0, 1, 1], "each client gets its share; the flooding one does not starve the other");
    // With more room than the quiet client asks for, the rest goes to the
    // flooding one.
    h.complete(&fwd, Status::Ok);
    h.run();
    let fwd = h.driver_requests();
    let owners: StdVec<u64> = fwd.iter().map(|r| r.block / 500).collect();
    assert_eq!(owners, [0, 0, 1, 0], "two each, client 1 has only one left; its spare share goes to client 0");
}

#[test]
fn spare_room_goes_to_the_clients_that_still_have_work() {
    let mut h = harness(&[Client { partition: 0, capacity: 32 }, Client { partition: 0, capacity: 32 }], 16);
    h.run();
    for i in 0..20 {
        h.push(0, Request::new(i, Op::Read, i as u64, 1, 0));
    }
    h.push(1, Request::new(100, Op::Read, 500, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    let from = |owner: u64| fwd.iter().filter(|r| r.block / 500 == owner).count();
    assert_eq!((from(0), from(1)), (15, 1), "the driver ring is filled");
}

#[test]
fn a_flood_is_served_within_the_clients_capacity_and_loses_nothing() {
    let mut h = harness(&[Client { partition: 0, capacity: 8 }], 64);
    h.run();
    let mut answered = StdVec::new();
    let mut next = 0u32;
    for _round in 0..20 {
        // Fill the ring completely, as a flooding client would.
        while h.clients[0].requests.try_push(Request::new(next, Op::Read, next as u64 % 100, 1, 0)).is_ok() {
            next += 1;
        }
        h.run();
        let fwd = h.driver_requests();
        assert!(fwd.len() <= 8, "never more outstanding than the client's capacity");
        h.complete(&fwd, Status::Ok);
        h.run();
        answered.extend(h.responses(0).into_iter().map(|r| r.id));
    }
    answered.extend(h.complete_all(0));
    answered.sort();
    assert_eq!(answered, (0..next).collect::<StdVec<_>>(), "every request answered exactly once");
}

#[test]
fn a_client_that_leaves_its_answers_waits_for_room_and_loses_none() {
    let mut h = harness(&[Client { partition: 0, capacity: 4 }], 64);
    h.run();
    for i in 0..4 {
        h.push(0, Request::new(i, Op::Read, i as u64, 1, 0));
    }
    h.run();
    let fwd = h.driver_requests();
    h.complete(&fwd, Status::Ok);
    h.run();
    // Four answers sit in the client's ring; it pushes four more requests
    // without taking them.
    for i in 4..8 {
        h.push(0, Request::new(i, Op::Read, i as u64, 1, 0));
    }
    h.run();
    assert!(h.driver_requests().is_empty(), "no room for their answers: none taken");
    let first = h.clients[0].responses.try_pop().unwrap().unwrap();
    assert_eq!(first.id, 0);
    assert!(h.clients[0].responses.producer_waits(), "the server asked to hear of this pop");
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1, "room for one answer: one request taken");
    h.complete(&fwd, Status::Ok);
    h.run();
    let mut answered: StdVec<u32> = vec![first.id];
    answered.extend(h.responses(0).into_iter().map(|r| r.id));
    answered.extend(h.complete_all(0));
    answered.sort();
    assert_eq!(answered, (0..8).collect::<StdVec<_>>(), "every request answered exactly once");
}

#[test]
fn partition_clients_are_confined_to_their_partition() {
    let mut h = harness(&[Client { partition: 2, capacity: 8 }, Client { partition: 3, capacity: 8 }], 8);
    h.run();
    let probe = h.driver_requests();
    assert_eq!(probe.len(), 1);
    assert_eq!((probe[0].block, probe[0].count, probe[0].data_offset), (0, 1, 0x5000_0000));
    let mut mbr = [0u8; 512];
    mbr::write(&mut mbr, &[(8, 64), (512, 800)]); // partition 2: blocks 64..164
    h.probe.write_bytes(0, &mbr).unwrap();
    h.complete(&probe, Status::Ok);
    h.run();
    assert_eq!(h.clients[0].info.get().unwrap().capacity, 100);
    assert_eq!(h.clients[1].info.get().unwrap().capacity, 0, "an empty entry gives an empty disk");
    assert!(h.events.contains(&Event::PartitionMissing { client: 1, err: mbr::MbrError::Empty(3) }));
    h.push(0, Request::new(1, Op::Write, 99, 1, 0));
    h.push(0, Request::new(2, Op::Write, 100, 1, 0));
    h.run();
    let fwd = h.driver_requests();
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].block, 64 + 99, "shifted by the partition's start");
    assert_eq!(h.responses(0), [Response::new(2, Status::InvalidRequest, 0)], "block 100 is past the partition");
}

#[test]
fn a_client_that_corrupts_its_ring_is_dropped_and_the_others_carry_on() {
    let mut h = harness(&[Client { partition: 0, capacity: 4 }, Client { partition: 0, capacity: 4 }], 8);
    h.run();
    h.push(1, Request::new(1, Op::Read, 0, 1, 0));
    for _ in 0..4 {
        h.push(0, Request::new(0, Op::Read, 0, 1, 0));
    }
    corrupt_tail(&mut h, 0);
    h.run();
    assert!(h.events.contains(&Event::ClientCorrupt { client: 0 }));
    let fwd = h.driver_requests();
    assert!(fwd.iter().any(|r| r.block == 0 && r.data_offset == 0x5110_0000), "client 1 is still served");
}

/// Write a tail more than `capacity` ahead into client `c`'s request ring,
/// as a hostile client could.
fn corrupt_tail(h: &mut Harness, c: usize) {
    let tail = QueueLayout::REQUEST_RING_OFFSET + blk::ring::TAIL;
    h.client_regions[c].atomic_u32(tail).unwrap().store(1000, core::sync::atomic::Ordering::Release);
}

/// What our driver does with its response ring: push, and lose an answer
/// that finds it full. Returns the answers lost.
fn driver_answers(h: &mut Harness, reqs: &[Request]) -> usize {
    let lost = reqs
        .iter()
        .filter(|r| h.drivers[0].responses.push(Response::new(r.id, Status::Ok, r.count).with_tag(r.tag)).is_err())
        .count();
    h.drivers[0].responses.publish();
    lost
}

#[test]
fn the_driver_is_never_sent_more_than_its_rings_can_answer() {
    // Two clients of 8 on a disk whose driver rings hold 8: together they
    // could have 16 requests outstanding.
    let mut h = harness(&[Client { partition: 0, capacity: 8 }, Client { partition: 0, capacity: 8 }], 8);
    h.run();
    for c in 0..2 {
        for i in 0..8 {
            h.push(c, Request::new(c as u32 * 100 + i, Op::Read, i as u64, 1, 0));
        }
    }
    let (mut answered, mut lost) = (0, 0);
    for _ in 0..4 {
        h.run();
        // The driver takes what it was sent into flight (it owes nothing
        // yet), which empties its request ring; the server runs again.
        let in_flight = h.driver_requests();
        h.run();
        // The device finishes them; the driver answers, takes what is on
        // its ring now (it owes nothing again), and the device finishes
        // those too before the server runs.
        lost += driver_answers(&mut h, &in_flight);
        let next = h.driver_requests();
        lost += driver_answers(&mut h, &next);
        h.run();
        answered += h.responses(0).len() + h.responses(1).len();
    }
    assert_eq!((answered, lost), (16, 0), "every request answered, no answer lost");
}

#[test]
fn with_room_for_one_request_at_a_time_the_clients_take_turns() {
    let mut h = harness(&[Client { partition: 0, capacity: 32 }, Client { partition: 0, capacity: 32 }], 4);
    h.run();
    for i in 0..30 {
        h.push(0, Request::new(i, Op::Read, i as u64, 1, 0));
        h.push(1, Request::new(100 + i, Op::Read, 500 + i as u64, 1, 0));
    }
    h.run();
    // The driver ring is full; from now on it makes room for one request
    // at a time, as a busy device does.
    let mut owners = StdVec::new();
    for _ in 0..24 {
        let r = h.drivers[0].requests.try_pop().unwrap().unwrap();
        owners.push(r.block / 500);
        h.complete(&[r], Status::Ok);
        h.run();
    }
    let later = &owners[4..];
    let firsts = later.iter().filter(|&&o| o == 0).count();
    assert!(firsts.abs_diff(later.len() - firsts) <= 1, "each client gets every other slot: {owners:?}");
}

#[test]
fn a_client_on_a_partition_over_the_table_sees_an_empty_disk() {
    let mut h = harness(&[Client { partition: 1, capacity: 8 }], 8);
    h.run();
    let probe = h.driver_requests();
    let mut mbr = [0u8; 512];
    mbr::write(&mut mbr, &[(0, 64)]); // blocks 0..8, sector 0 included
    h.probe.write_bytes(0, &mbr).unwrap();
    h.complete(&probe, Status::Ok);
    h.run();
    assert!(h.events.contains(&Event::PartitionMissing { client: 0, err: mbr::MbrError::OverlapsTable(1) }));
    assert_eq!(h.clients[0].info.get().unwrap().capacity, 0);
    h.push(0, Request::new(1, Op::Write, 0, 1, 0));
    h.run();
    assert!(h.driver_requests().is_empty(), "the table is never written");
    assert_eq!(h.responses(0), [Response::new(1, Status::InvalidRequest, 0)]);
}


#[test]
fn the_clients_of_a_disk_with_no_device_get_no_device_for_every_request() {
    let mut h = harness(&[Client { partition: 0, capacity: 4 }, Client { partition: 1, capacity: 8 }], 8);
    h.drivers[0].info.publish(&StorageInfo::absent(8));
    let wake = h.run();
    assert_eq!(wake.clients, 0b11, "both clients are told at once, with no partition table read");
    assert!(h.events.contains(&Event::DiskAbsent { disk: 0 }));
    for c in 0..2 {
        let info = h.clients[c].info.get().expect("published");
        assert!(info.is_absent() && info.capacity == 0, "{info:?}");
    }
    let ops = [Op::Read, Op::Write, Op::Flush, Op::Barrier];
    for (i, &op) in ops.iter().enumerate() {
        h.push(0, Request::new(i as u32, op, 0, 1, 0));
        h.push(1, Request::new(10 + i as u32, op, 0, 1, 0));
    }
    h.run();
    assert!(h.driver_requests().is_empty(), "nothing goes to the driver");
    let no_device = |ids: core::ops::Range<u32>| ids.map(|id| Response::new(id, Status::NoDevice, 0)).collect::<StdVec<_>>();
    assert_eq!(h.responses(1), no_device(10..14));
    // Client 0 leaves its four answers in its ring: four more wait for room
    // and none is lost.
    for i in 4..8 {
        h.push(0, Request::new(i, Op::Read, 0, 1, 0));
    }
    h.run();
    let first = h.clients[0].responses.try_pop().unwrap().unwrap();
    assert!(h.clients[0].responses.producer_waits(), "the server asked to hear of this pop");
    h.run();
    let mut got = vec![first];
    got.extend(h.responses(0));
    h.run();
    got.extend(h.responses(0));
    assert_eq!(got, no_device(0..8));
}
