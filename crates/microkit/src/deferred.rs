//! The one deferred signal a handler may leave for the event loop: sent in
//! the same kernel entry as the wait for the next event
//! (`abi::sys::SIGNAL_RECV`), which saves a kernel entry on the common
//! "tell the other side, then sleep" path.

use crate::channel::Channel;
use core::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Notify(Channel),
    IrqAck(Channel),
}

// The deferred forms of a channel's signals live here, so that `channel`
// does not depend on this module (this one depends on it).
impl Channel {
    /// Signal the other end when this handler returns, in the same kernel
    /// entry as the wait for the next event (as the Microkit's deferred
    /// notify). One signal can be deferred at a time: deferring another
    /// sends the earlier one at once. A refused deferred signal is printed.
    pub fn deferred_notify(&self) {
        defer(Signal::Notify(*self));
    }

    /// Re-enable this channel's interrupt when the handler returns, in the
    /// same kernel entry as the wait for the next event (see
    /// [`Channel::deferred_notify`]).
    pub fn deferred_irq_ack(&self) {
        defer(Signal::IrqAck(*self));
    }
}

/// Encoded: 0 = none, otherwise channel + 1, bit 63 set for an IRQ ack.
/// (A PD is single-threaded; the atomic only avoids `static mut`.)
static PENDING: AtomicU64 = AtomicU64::new(0);
const IRQ: u64 = 1 << 63;

fn encode(s: Signal) -> u64 {
    match s {
        Signal::Notify(c) => c.index() as u64 + 1,
        Signal::IrqAck(c) => (c.index() as u64 + 1) | IRQ,
    }
}

fn decode(v: u64) -> Option<Signal> {
    let channel = Channel::new(((v & !IRQ).checked_sub(1)?) as usize);
    Some(if v & IRQ != 0 { Signal::IrqAck(channel) } else { Signal::Notify(channel) })
}

/// Leave `s` for the event loop; an earlier different one goes out now.
pub(crate) fn defer(s: Signal) {
    // (Load and store, not a swap: nothing else touches it, and a swap is
    // an exclusive-access loop.)
    let old = PENDING.load(Ordering::Relaxed);
    PENDING.store(encode(s), Ordering::Relaxed);
    if old != 0 && old != encode(s) {
        send_now(decode(old));
    }
}

/// Take the pending signal, if any.
#[inline(always)]
pub(crate) fn take() -> Option<Signal> {
    // Load first: the common case (nothing deferred) stays two instructions.
    let v = PENDING.load(Ordering::Relaxed);
    if v == 0 {
        return None;
    }
    PENDING.store(0, Ordering::Relaxed);
    decode(v)
}

/// Send `s` (if any) with its own system call.
pub(crate) fn send_now(s: Option<Signal>) {
    match s {
        Some(Signal::Notify(c)) => c.notify(),
        Some(Signal::IrqAck(c)) => {
            let _ = c.irq_ack();
        }
        None => {}
    }
}

impl Signal {
    pub(crate) fn channel(&self) -> Channel {
        match *self {
            Signal::Notify(c) | Signal::IrqAck(c) => c,
        }
    }
}
