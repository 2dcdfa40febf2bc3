//! The runtime: the entry point, the event loop and the panic handler.

use crate::channel::{Channel, ChannelSet, Child};
use crate::handler::Handler;
use crate::ipc_buffer::{load_reg_mrs, store_reg_mrs};
use crate::deferred;
use crate::syscall::{self, Event};
use abi::{event, FaultInfo, FaultKind, MessageInfo};

/// The PD's name; the tool patches it into this symbol.
#[no_mangle]
#[link_section = ".data"]
#[used]
static mut microkit_name: [u8; 64] = [0; 64];

/// This PD's name as written in the system description.
pub fn pd_name() -> &'static str {
    // SAFETY: written only by the tool, before the PD runs.
    let name: &'static [u8; 64] = unsafe { &*core::ptr::addr_of!(microkit_name) };
    let len = name.iter().position(|&b| b == 0).unwrap_or(64);
    core::str::from_utf8(&name[..len]).unwrap_or("?")
}

/// Power the machine off with `status` (the PD needs `can_power_off`).
pub fn power_off(status: u64) -> Result<(), abi::Error> {
    syscall::power_off(status)
}

extern "Rust" {
    /// Defined by `#[protection_domain]`.
    fn __microkit_main() -> !;
}

/// The ELF entry point. The kernel starts the PD here with the stack
/// pointer set.
#[no_mangle]
#[link_section = ".text.start"]
extern "C" fn _start() -> ! {
    // SAFETY: `#[protection_domain]` in the PD binary defines it.
    unsafe { __microkit_main() }
}

/// Run `init`, then serve events forever.
pub fn run_main<H: Handler>(init: impl FnOnce() -> H) -> ! {
    let mut handler = init();
    let mut ev = wait();
    loop {
        ev = match handle(&mut handler, ev) {
            Some(reply) => {
                // A reply and a signal cannot share the kernel entry.
                deferred::send_now(deferred::take());
                syscall::reply_recv(reply, load_reg_mrs())
            }
            None => wait(),
        };
    }
}

/// Wait for the next event, sending the deferred signal on the way.
/// (Inlined: returning the event through a call costs a memcpy.)
#[inline(always)]
fn wait() -> Event {
    match deferred::take() {
        Some(s) => {
            let ev = syscall::signal_recv(s.channel().index());
            if ev.kind != event::REFUSED {
                return ev;
            }
            // (A copy: formatting takes its address, which would keep every
            // event in memory instead of registers.)
            let error = ev.badge;
            crate::debug_println!("{}: deferred signal on channel {} refused (error {})", pd_name(), s.channel().index(), error);
            syscall::recv()
        }
        None => syscall::recv(),
    }
}

/// Dispatch one event; a PPC's reply comes back to be sent.
fn handle<H: Handler>(handler: &mut H, ev: Event) -> Option<MessageInfo> {
    match ev.kind {
        event::NOTIFIED => {
            check(handler.notified(ChannelSet(ev.badge)));
            None
        }
        event::PPC => {
            store_reg_mrs(ev.mrs);
            crate::grant::set_lease(ev.lease);
            Some(check(handler.protected(Channel::new(ev.badge as usize), ev.info)))
        }
        event::FAULT => {
            store_reg_mrs(ev.mrs);
            let child = Child::new(ev.badge as usize);
            if check(handler.fault(child, ev.info)).is_some() {
                let _ = syscall::fault_resume(child.index());
            }
            None
        }
        other => panic!("unknown event kind {}", other),
    }
}

fn check<T, E: core::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("handler error: {:?}", e),
    }
}

/// The fault a child reported, from the message registers of a fault event.
pub fn fault_info() -> FaultInfo {
    crate::with_msg_regs(|r| FaultInfo { kind: FaultKind::from_code(r[0]), address: r[1], pc: r[2], esr: r[3] })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::debug_println!("{}: panic: {}", pd_name(), info.message());
    // Stop here: the kernel reports the breakpoint as a fault, and a parent
    // may restart this PD.
    loop {
        // SAFETY: `brk` only raises a debug exception to the kernel.
        unsafe { core::arch::asm!("brk #1") };
    }
}
