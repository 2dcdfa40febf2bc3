//! The virtio-blk driver's logic, free of any PD or hardware specifics so it
//! is tested on the host against a simulated device.
//!
//! - `mmio`: the virtio-mmio (version 2, "modern") register interface and
//!   the device initialisation sequence.
//! - `virtq`: one split virtqueue in DMA memory: descriptor table, available
//!   and used rings, descriptor allocation.
//! - `engine`: block requests on top: each request is a three-descriptor
//!   chain (header, data, status byte); many in flight, completed in any
//!   order; barriers drain, flushes drain and then reach the device, a
//!   flush of completed writes reaches it at once.
//! - `recovery`: a device that stopped (NEEDS_RESET) is reset, what it
//!   held is answered, and it is started again or given up.
//!
//! Memory the device reads or writes is reached through the [`Dma`] trait,
//! registers through [`mmio::Registers`], so the PD supplies the real ones
//! and the tests supply fakes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod engine;
pub mod mmio;
pub mod recovery;
pub mod virtq;

/// Memory shared with the device, addressed by offset from its start.
/// The device sees it at `paddr() + offset`.
pub trait Dma {
    fn paddr(&self) -> u64;
    fn len(&self) -> usize;
    fn read_u8(&self, off: usize) -> u8;
    fn write_u8(&self, off: usize, v: u8);
    fn read_u16(&self, off: usize) -> u16;
    fn write_u16(&self, off: usize, v: u16);
    fn read_u32(&self, off: usize) -> u32;
    fn write_u32(&self, off: usize, v: u32);
    fn write_u64(&self, off: usize, v: u64);
    /// Order this side's earlier memory writes before later ones as the
    /// device observes them (a `dmb` on the real machine).
    fn barrier(&self);
}

#[cfg(test)]
mod engine_model;
#[cfg(test)]
mod testing;
