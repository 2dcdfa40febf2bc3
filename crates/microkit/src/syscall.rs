//! The raw system calls (see `abi::sys`). Most code uses `Channel`, `Child`
//! and the handler loop instead.

use abi::{sys, Error, MessageInfo};
use core::arch::asm;

fn status(code: u64) -> Result<(), Error> {
    match code {
        0 => Ok(()),
        c => Err(Error::from_code(c).unwrap_or(Error::InvalidSyscall)),
    }
}

/// A one-argument system call returning a status.
fn call1(nr: u64, arg: u64) -> Result<(), Error> {
    let code: u64;
    // SAFETY: `svc` enters the kernel, which reads x0/x7 and writes x0 only.
    unsafe { asm!("svc #0", inlateout("x0") arg => code, in("x7") nr, options(nostack)) };
    status(code)
}

pub fn notify(channel: usize) -> Result<(), Error> {
    call1(sys::NOTIFY, channel as u64)
}

pub fn irq_ack(channel: usize) -> Result<(), Error> {
    call1(sys::IRQ_ACK, channel as u64)
}

pub fn pd_restart(child: usize) -> Result<(), Error> {
    call1(sys::PD_RESTART, child as u64)
}

pub fn pd_stop(child: usize) -> Result<(), Error> {
    call1(sys::PD_STOP, child as u64)
}

pub fn fault_resume(child: usize) -> Result<(), Error> {
    call1(sys::FAULT_RESUME, child as u64)
}

pub fn power_off(status: u64) -> Result<(), Error> {
    call1(sys::POWER_OFF, status)
}

/// Print `len` bytes from the IPC buffer's debug area.
pub fn debug_puts(len: usize) {
    let _ = call1(sys::DEBUG_PUTS, len as u64);
}

/// A PPC: message registers 0-3 in and out through CPU registers; the
/// kernel copies the rest between IPC buffers.
pub fn pp_call(channel: usize, info: MessageInfo, mrs: &mut [u64; 4]) -> Result<MessageInfo, Error> {
    ppc(sys::PP_CALL, channel, info, mrs, 0)
}

/// What `recv` brought: the raw event registers x0-x6. `info` and `mrs`
/// mean something only for a PPC or a fault; after a notification or a
/// refused signal they hold whatever the registers held.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub kind: u64,
    pub badge: u64,
    pub info: MessageInfo,
    pub mrs: [u64; 4],
    /// For a PPC that lends memory: its lease (see `abi::sys::PP_CALL_LEND`).
    pub lease: u64,
}

/// Wait for the next event.
pub fn recv() -> Event {
    wait_call(sys::RECV, 0)
}

/// A PPC that lends the callee the ranges described in this PD's IPC
/// buffer's lend area (`abi::LEND_AREA`; `lends` descriptors): as
/// [`pp_call`] otherwise.
pub fn pp_call_lend(channel: usize, info: MessageInfo, mrs: &mut [u64; 4], lends: usize) -> Result<MessageInfo, Error> {
    ppc(sys::PP_CALL_LEND, channel, info, mrs, lends)
}

/// The PPC system calls; `x6` is the lend count (a plain PPC ignores it).
#[inline(always)]
fn ppc(nr: u64, channel: usize, info: MessageInfo, mrs: &mut [u64; 4], x6: usize) -> Result<MessageInfo, Error> {
    let (code, out): (u64, u64);
    // SAFETY: the kernel reads x0-x7 and, on return, writes x0-x5 and
    // possibly this PD's IPC buffer (hence no `nomem`).
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") channel as u64 => code,
            inlateout("x1") info.raw() => out,
            inlateout("x2") mrs[0] => mrs[0],
            inlateout("x3") mrs[1] => mrs[1],
            inlateout("x4") mrs[2] => mrs[2],
            inlateout("x5") mrs[3] => mrs[3],
            in("x6") x6 as u64,
            in("x7") nr,
            options(nostack),
        );
    }
    status(code).map(|()| MessageInfo::from_raw(out))
}

/// Copy `out.len()` bytes from `offset` of the grant `handle` into `out`.
pub fn grant_read(handle: u64, offset: u64, out: &mut [u8]) -> Result<(), Error> {
    grant_copy(sys::GRANT_READ, handle, offset, out.as_mut_ptr() as u64, out.len())
}

/// Copy `data` to `offset` of the grant `handle`.
pub fn grant_write(handle: u64, offset: u64, data: &[u8]) -> Result<(), Error> {
    grant_copy(sys::GRANT_WRITE, handle, offset, data.as_ptr() as u64, data.len())
}

/// A grant copy with a raw buffer address, for tests that hand the kernel
/// addresses a PD may not use (the kernel checks them; nothing here does).
pub fn grant_copy_raw(nr: u64, handle: u64, offset: u64, buf: u64, len: usize) -> Result<(), Error> {
    grant_copy(nr, handle, offset, buf, len)
}

fn grant_copy(nr: u64, handle: u64, offset: u64, buf: u64, len: usize) -> Result<(), Error> {
    let code: u64;
    // SAFETY: the kernel reads x0-x3 and x7, writes x0, and copies into
    // (GRANT_READ) or out of (GRANT_WRITE) the buffer this PD's own
    // mapping allows, which is `out` or `data` of the callers above: hence
    // no `nomem`/`readonly`.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") handle => code,
            in("x1") offset,
            in("x2") buf,
            in("x3") len as u64,
            in("x7") nr,
            options(nostack),
        );
    }
    status(code)
}

/// Signal on `channel` (notify, or ack an interrupt), then wait for the
/// next event: one kernel entry. A refused signal comes back at once as an
/// `event::REFUSED` event.
pub fn signal_recv(channel: usize) -> Event {
    wait_call(sys::SIGNAL_RECV, channel as u64)
}

/// Reply to the PPC being served, then wait for the next event.
pub fn reply_recv(reply: MessageInfo, mrs: [u64; 4]) -> Event {
    event_call(sys::REPLY_RECV, reply.raw(), mrs)
}

/// A wait that passes no message registers (the kernel reads only x0 and
/// x7 for it), so none are set up.
fn wait_call(nr: u64, x0: u64) -> Event {
    let (kind, badge, info, m0, m1, m2, m3, lease): (u64, u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: the kernel reads x0 and x7 and writes x0-x7 and this PD's IPC
    // buffer.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") x0 => kind,
            lateout("x1") badge,
            lateout("x2") info,
            lateout("x3") m0,
            lateout("x4") m1,
            lateout("x5") m2,
            lateout("x6") m3,
            inlateout("x7") nr => lease,
            options(nostack),
        );
    }
    Event { kind, badge, info: MessageInfo::from_raw(info), mrs: [m0, m1, m2, m3], lease }
}

fn event_call(nr: u64, x0: u64, mrs: [u64; 4]) -> Event {
    let (kind, badge, info, m0, m1, m2, m3, lease): (u64, u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: the kernel reads x0, x2-x5, x7 and writes x0-x7 and this PD's
    // IPC buffer.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") x0 => kind,
            lateout("x1") badge,
            inlateout("x2") mrs[0] => info,
            inlateout("x3") mrs[1] => m0,
            inlateout("x4") mrs[2] => m1,
            inlateout("x5") mrs[3] => m2,
            lateout("x6") m3,
            inlateout("x7") nr => lease,
            options(nostack),
        );
    }
    Event { kind, badge, info: MessageInfo::from_raw(info), mrs: [m0, m1, m2, m3], lease }
}
