//! What the block clients share with each other and with the host tests.
//!
//! - [`stamp`]: the deterministic content of a block, so a reader (a PD or
//!   a test reading the disk image file) can tell exactly what it expects.
//! - [`answers`]: the verify client's account of its answers (each request
//!   answered once, a success moving its block).
//! - [`dump`]: `blk_dump`'s transfer protocol between its reader and
//!   writer PDs, and the bookkeeping of the chunks and requests each moves.
//! - `client` (PDs only): a client's end of the storage stack.
//! - `verifier`, `bench` (PDs only): the verify client and the benchmark
//!   client as event handlers.
//! - `hostile` (PDs only): the hostile client, which sends malformed
//!   requests and checks that each is refused and no good one is lost.
//! - `device_fault` (PDs only): a client attached to the driver directly
//!   that makes the device fail and checks the driver recovers.
//! - `probe` (PDs only): writes and reads one block when told to, and asks
//!   for its disk's filter statistics.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod answers;
pub mod dump;
pub mod stamp;

#[cfg(target_os = "none")]
pub mod client;
#[cfg(target_os = "none")]
pub mod verifier;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod hostile;
#[cfg(target_os = "none")]
pub mod device_fault;
#[cfg(target_os = "none")]
pub mod probe;
