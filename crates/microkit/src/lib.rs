//! The component API: a protection domain written against this crate reads
//! like a seL4 Microkit PD written with rust-sel4's `sel4-microkit`.
//!
//! ```ignore
//! use microkit::{protection_domain, Channel, Handler, Infallible, MessageInfo, debug_println};
//!
//! const SERVER: Channel = Channel::new(0);
//!
//! #[protection_domain]
//! fn init() -> Client {
//!     debug_println!("client: asking");
//!     let reply = SERVER.pp_call(MessageInfo::new(1, 0));
//!     Client
//! }
//!
//! struct Client;
//! impl Handler for Client {
//!     type Error = Infallible;
//! }
//! ```
//!
//! `init` runs once; then the PD waits for events and the runtime calls the
//! handler: `notified` for notifications, `protected` for protected
//! procedure calls (its return value is the reply), `fault` when a child
//! faults.
#![no_std]

mod channel;
mod debug;
mod deferred;
mod grant;
mod handler;
mod ipc_buffer;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod mem;
mod runtime;
pub mod syscall;
pub mod time;

pub use abi::{Error, FaultInfo, FaultKind, MessageInfo, FAULT_LABEL, MAX_MRS};
pub use channel::{Channel, ChannelSet, Child, IrqAckError};
pub use core::convert::Infallible;
pub use debug::DebugWriter;
pub use grant::Grant;
pub use handler::{Handler, NullHandler};
pub use ipc_buffer::{get_mr, set_mr, with_msg_regs, with_msg_regs_mut};
pub use microkit_macros::protection_domain;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use mem::wipe_simd;
pub use runtime::{fault_info, pd_name, power_off};
pub use shared_memory::{AccessError, Shared};

#[doc(hidden)]
pub mod _private {
    pub use crate::runtime::run_main;
}

/// Print to the console through the kernel, without a newline.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut w = $crate::DebugWriter::new();
        let _ = write!(w, $($arg)*);
    }};
}

/// Print a line to the console through the kernel. One line is one system
/// call, so lines from different PDs never interleave.
#[macro_export]
macro_rules! debug_println {
    () => { $crate::debug_print!("\n") };
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut w = $crate::DebugWriter::new();
        let _ = write!(w, $($arg)*);
        let _ = w.write_str("\n");
    }};
}

/// A variable the tool patches at build time (`setvar_vaddr` on a map, or
/// `setvar` with `region_paddr`): declare it, then read it with the name.
///
/// ```ignore
/// microkit::var!(shared_vaddr: usize = 0);
/// let p = *shared_vaddr() as *mut u8;
/// ```
#[macro_export]
macro_rules! var {
    ($name:ident: $ty:ty = $default:expr) => {
        fn $name() -> &'static $ty {
            // Kept in .data under its own exported symbol, so the tool finds
            // the bytes to patch and the compiler cannot fold the default in.
            #[no_mangle]
            #[link_section = ".data"]
            #[used]
            static mut $name: $ty = $default;
            #[allow(unsafe_code)]
            // SAFETY: written only by the tool, before the PD runs.
            unsafe {
                &*core::ptr::addr_of!($name)
            }
        }
    };
}

/// Declare a region of `size` bytes whose address the tool patches in
/// (`setvar_vaddr="name"` on the map), and a function `name()` that returns
/// it as a [`Shared`] region: an empty one, refusing every access, if the
/// system maps none there. The region mapped there must hold `size` bytes.
///
/// ```ignore
/// microkit::memory_region!(request: 0x1000);
/// request().write_bytes(0, b"hello")?;
/// ```
#[macro_export]
macro_rules! memory_region {
    ($name:ident: $size:expr) => {
        fn $name() -> $crate::Shared<'static> {
            #[no_mangle]
            #[link_section = ".data"]
            #[used]
            static mut $name: usize = 0;
            #[allow(unsafe_code)]
            // SAFETY: the tool patches the symbol, before the PD runs, with
            // the address at which the system maps the region (of `size`
            // bytes, as the macro's docs ask) for the PD's whole life; the
            // address is private to this function, so the region is reached
            // only through `Shared`. Unpatched, it is 0: no region.
            unsafe {
                $crate::Shared::mapped(core::ptr::read_volatile(core::ptr::addr_of!($name)) as u64, $size as u64)
                    .unwrap_or_default()
            }
        }
    };
}
