//! The block protocol of the Strata storage stack, after seL4's sDDF block
//! subsystem, and the ABI between the filter server and filter PDs.
//!
//! # Who talks to whom
//!
//! ```text
//! client --queue region--> filter server --queue region--> virtio-blk driver
//!                              |  PPC upcalls
//!                              v
//!                          filter PDs
//! ```
//!
//! Every arrow with a queue region joins a *requester* (the client; the
//! filter server towards the driver) with a *responder* (the filter server
//! towards a client; the driver). Each pair shares two regions: the queue
//! region, laid out by [`QueueLayout`], and a data region the requests point
//! into. Blocks are [`BLOCK_SIZE`] = 4096 bytes throughout.
//!
//! # What lives where in the queue region
//!
//! | offset | what | written by |
//! |---:|---|---|
//! | 0 | [`StorageInfo`]: capacity, read-only, ready, serial | responder |
//! | 128 | request ring: [`Request`]s, 32 bytes each | requester |
//! | after it, on a 64-byte boundary | response ring: [`Response`]s, 16 bytes each | responder |
//!
//! Each ring is a single-producer single-consumer ring with a 64-byte header
//! (tail, head, "signal me" word) and a power-of-two number of slots; see
//! [`ring`] for its layout and [`queues`] for the region's offsets.
//!
//! # The life of a request
//!
//! 1. The responder fills in the [`StorageInfo`] and publishes it
//!    ([`InfoWriter::publish`]); the requester waits until
//!    [`InfoReader::get`] returns it.
//! 2. The requester puts the data (for a write) in its data region, pushes
//!    a [`Request`] naming a fresh `id`, the [`Op`], the blocks and the
//!    buffer's offset in the data region ([`Producer::try_push`]), and
//!    notifies the responder if [`Producer::needs_notify`] says so.
//! 3. The responder pops the request ([`Consumer::try_pop`]), checks it
//!    ([`StorageInfo::check`]: a requester may be hostile), does it, and pushes
//!    a [`Response`] with the same `id` and `tag`, a [`Status`] and the
//!    blocks done, notifying the requester if asked.
//! 4. Responses may come back in any order; the `id` matches them up. (The
//!    `tag` is for a server in between: it routes the answer by it.)
//!
//! Both ends in one program (a PD gets its region from
//! `microkit::memory_region!` or [`Shared::mapped`] instead):
//!
//! ```
//! use blk::{Op, QueueLayout, Request, Requester, Responder, Response, Shared, Status, StorageInfo};
//!
//! let layout = QueueLayout::for_region(8192, 128)?;
//! let mut buf = vec![0u64; 8192 / 8];
//! let region = Shared::from_words(&mut buf);
//! let mut client = Requester::new(region, layout)?;
//! let mut driver = Responder::new(region, layout)?;
//!
//! driver.info.publish(&StorageInfo::new(1 << 18, false, layout.capacity()));
//! let disk = client.info.get().expect("published");
//!
//! // The driver has nothing to do: it asks to be woken, then waits.
//! assert!(driver.requests.prepare_to_wait()?);
//!
//! // Read blocks 8 and 9 into bytes 0..8192 of the client's data region.
//! client.requests.try_push(Request::new(1, Op::Read, 8, 2, 0)).expect("room");
//! assert!(client.requests.needs_notify()); // so the client notifies the driver
//!
//! let req = driver.requests.try_pop()?.expect("a request");
//! let status = match disk.check(&req, 2 * 4096) {
//!     Ok(_op) => Status::Ok, // ... do the I/O ...
//!     Err(status) => status,
//! };
//! driver.responses.try_push(Response::new(req.id, status, req.count)).expect("room");
//! // The client did not ask to be woken (it is not waiting): no notification.
//! assert!(!driver.responses.needs_notify());
//! assert_eq!(client.responses.try_pop()?, Some(Response::new(1, Status::Ok, 2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # When to notify
//!
//! Notifications say "there is work"; a consumer that is busy draining a
//! ring does not need them. A consumer that finds its ring empty calls
//! [`Consumer::prepare_to_wait`] and waits only if it returns `true`; a
//! producer, after pushing a batch, notifies only if
//! [`Producer::needs_notify`] returns `true`. The argument that no wake-up
//! is lost is in [`ring`]. A ring in fresh memory asks for no
//! notification, so every consumer arms its rings once at start; and
//! `needs_notify` is `false` unless something was pushed since it was last
//! asked, so two idle ends never wake each other in a loop.
//!
//! # Rules that keep a hostile peer harmless
//!
//! - Each side keeps its ring indices privately and only reads the peer's;
//!   indices more than the capacity apart are reported as [`Corrupt`], never
//!   followed, and every slot access is in bounds whatever the indices say.
//! - Records are copied out of shared memory once and checked as private
//!   copies. Unknown opcodes and statuses decode to errors ([`UnknownOp`],
//!   [`UnknownStatus`]): the responder answers [`Status::InvalidRequest`].
//! - A requester keeps at most `capacity` requests outstanding, so the
//!   response ring always has room for their responses; a responder stops
//!   popping a requester's requests while it owes it `capacity` responses
//!   (which also bounds the work one notification can cause).
//! - Shared memory is reached only through [`Shared`], from the
//!   `shared-memory` crate: the `unsafe` code it takes (checked copies,
//!   atomic and volatile words) is there, not here.
//!
//! # Filters
//!
//! [`filter`] defines the upcalls the filter server makes to filter PDs
//! (batches of requests in a call page shared with each filter, data
//! reached through grants), their [`Verdict`]s, the [`Filter`] trait a
//! filter implements and the [`filter::Manifest`] it declares.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod config;
pub mod filter;
pub mod info;
pub mod mbr;
pub mod metadata;
pub mod queues;
pub mod records;
pub mod ring;

pub use filter::{Completion, Filter, Hook, Io, Verdict};
pub use info::{InfoReader, InfoWriter, StorageInfo};
pub use queues::{QueueLayout, Requester, Responder};
pub use records::{Op, Request, Response, Status, UnknownOp, UnknownStatus, BLOCK_SIZE};
pub use ring::{Consumer, Corrupt, LayoutError, PopBatch, Producer, PushBatch, PushError};
pub use shared_memory::{AccessError, Shared, Slots, Step};
