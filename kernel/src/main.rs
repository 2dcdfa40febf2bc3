//! The Strata kernel: a small capability microkernel in the style of seL4
//! with the Microkit, for QEMU's `virt` aarch64 machine.
//!
//! Principles:
//! - Static configuration. The host tool turns `system.xml` into a boot spec
//!   and the translation tables of every address space; the kernel installs
//!   exactly that and allocates nothing at run time.
//! - One core, no kernel preemption: every entry runs to completion with
//!   interrupts masked, on one kernel stack.
//! - The logic (scheduling, IPC, faults, system calls) is plain Rust against
//!   a `Machine` trait and is unit-tested on the host; the aarch64 shell
//!   (`arch/`) is small, and `unsafe` lives only there.
//!
//! Files, as a table of contents: `pd` (the PD record; its fields change
//! only through methods that keep its invariants), `sched` (run
//! queues), `system` (kernel state and the scheduling decision), `ipc`
//! (notifications and PPC), `grant` (memory lent for one call), `budget`
//! (how long one call may run), `fault` (faults, restart), `stuck` (a
//! system that can never run again), `syscall` (dispatch), `machine` (the
//! hardware interface); `arch/` holds boot,
//! exception vectors, MMU, GIC, timer, FP/SIMD, console and power.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]
// `unsafe` only in `arch`, the one module allowed it.
#![deny(unsafe_code)]

pub mod budget;
pub mod fault;
pub mod grant;
pub mod ipc;
pub mod machine;
pub mod pd;
pub mod sched;
pub mod stuck;
pub mod syscall;
pub mod system;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod arch;

#[cfg(test)]
mod tests;

/// On the host the crate exists only for its unit tests.
#[cfg(not(target_os = "none"))]
fn main() {}
