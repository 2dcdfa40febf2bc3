//! System-call dispatch: decode the saved registers of the calling PD, run
//! the operation, write the status back.
//!
//! Every argument comes from the PD and is checked before use: channel ids
//! against the PD's own channel table, message counts against the limit,
//! child ids against its own children. A bad argument returns an error to
//! that PD and changes nothing else.

use crate::machine::Machine;
use crate::pd::PdId;
use crate::system::Kernel;
use abi::{sys, Error, DEBUG_AREA};
use bootspec::{ChannelDesc, CHANNEL_IRQ, CHANNEL_PD, PD_CAN_POWER_OFF, RIGHT_NOTIFY, RIGHT_PPC};

impl Kernel {
    /// Handle the system call the current PD (`me`) just made.
    pub fn syscall(&mut self, m: &mut impl Machine, me: PdId) {
        if !self.syscall_fast(m, me) {
            let _ = self.syscall_general(m, me);
        }
    }

    /// The system call `me` just made, if it is a hand-off in its common
    /// case: a `signal_recv` (`signal_recv_fast`), a `pp_call`
    /// (`pp_call_fast`) or a `reply_recv` (`reply_recv_fast`); `false`,
    /// with nothing changed, otherwise. When it is taken, who runs next is
    /// decided (`current` outranks everything queued), so the caller may
    /// enter it without calling `schedule`.
    #[inline(always)]
    pub fn syscall_fast(&mut self, m: &mut impl Machine, me: PdId) -> bool {
        let [a0, nr] = [self.pds[me].ctx().x[0], self.pds[me].ctx().x[7]];
        match nr {
            sys::SIGNAL_RECV => self.signal_recv_fast(me, a0),
            sys::PP_CALL => self.pp_call_fast(m, me, a0),
            sys::REPLY_RECV => self.reply_recv_fast(m, me),
            _ => false,
        }
    }

    /// Any system call by the general path, which the fast path must match
    /// (`tests::the_fast_paths_do_what_the_general_path_does`).
    ///
    /// `true` if who runs next is decided without a scheduling pass: a
    /// grant copy returns to `me`; a call its callee took at once runs the
    /// callee; either when it outranks everything queued
    /// (`current_runs_next`). The exception entry then enters
    /// `current` directly, as after a fast path; `schedule` would not
    /// change it (`tests::the_fast_paths_do_what_the_general_path_does`).
    pub(crate) fn syscall_general(&mut self, m: &mut impl Machine, me: PdId) -> bool {
        let [a0, nr] = [self.pds[me].ctx().x[0], self.pds[me].ctx().x[7]];
        let result = match nr {
            sys::NOTIFY => self.notify(me, a0),
            sys::PP_CALL => match self.pp_call(m, me) {
                // The reply writes the status.
                Ok(()) => return self.current_runs_next(),
                Err(e) => Err(e),
            },
            sys::PP_CALL_LEND => match self.pp_call_lend(m, me) {
                Ok(()) => return self.current_runs_next(),
                Err(e) => Err(e),
            },
            sys::GRANT_READ | sys::GRANT_WRITE => {
                let [h, off, buf, len] = [0, 1, 2, 3].map(|i| self.pds[me].ctx().x[i]);
                let result = self.grant_copy(m, me, h, off, buf, len, nr == sys::GRANT_WRITE);
                self.pds[me].ctx_mut().x[0] = result.map_or_else(|e| e as u64, |()| 0);
                return self.current_runs_next();
            }
            sys::RECV => {
                self.recv(m, me);
                return false;
            }
            sys::REPLY_RECV => {
                self.reply_recv(m, me);
                return false;
            }
            sys::SIGNAL_RECV => {
                match self.signal_target(me, a0) {
                    Ok(c) => {
                        // Wait first, then signal: the signal cannot produce
                        // an event for `me` within this call, so the order
                        // is not visible, and the PD it wakes never preempts
                        // a PD that is about to block anyway.
                        self.recv(m, me);
                        self.send_signal(m, c);
                    }
                    Err(e) => {
                        let ctx = self.pds[me].ctx_mut();
                        ctx.x[0] = abi::event::REFUSED;
                        ctx.x[1] = e as u64;
                    }
                }
                return false;
            }
            sys::IRQ_ACK => self.irq_ack(m, me, a0),
            sys::DEBUG_PUTS => {
                let len = (a0 as usize).min(DEBUG_AREA.len());
                m.console_write_phys(self.pds[me].desc().ipc_buffer_paddr + DEBUG_AREA.start as u64, len);
                Ok(())
            }
            sys::PD_RESTART => self.restart(m, me, a0),
            sys::PD_STOP => self.stop_child(me, a0),
            sys::FAULT_RESUME => self.fault_resume(me, a0),
            sys::POWER_OFF => {
                if self.pds[me].desc().flags & PD_CAN_POWER_OFF == 0 {
                    Err(Error::NotPermitted)
                } else {
                    m.power_off(a0);
                    Ok(())
                }
            }
            _ => Err(Error::InvalidSyscall),
        };
        self.pds[me].ctx_mut().x[0] = match result {
            Ok(()) => 0,
            Err(e) => e as u64,
        };
        false
    }

    /// Whether `current` (after a call: the callee, if it took the call at
    /// once; after a grant copy: the caller) outranks everything queued,
    /// so that it runs next without a scheduling pass. (For a call the PPC
    /// rule makes it so, but the tool checks that rule, not the kernel:
    /// checked here, as the fast path checks it.)
    fn current_runs_next(&self) -> bool {
        self.current.is_some_and(|c| self.runq.highest().is_none_or(|best| best < self.pds[c].priority()))
    }

    /// `signal_recv(ch)` in its common case, straight through: `me` has no
    /// event waiting, so it blocks; the peer waits for one, is not passive,
    /// and outranks every queued PD, so it runs next with the notification.
    /// Exactly what the general path (`recv`, then `send_signal`) does in
    /// that case; `false`, with nothing changed, in every other. Every
    /// hand-off of a block request between client, server and driver is
    /// this case; with its own kernel entry (`arch::handle_signal_recv`,
    /// which makes no scheduling pass after it) it takes about 131
    /// instructions from vector to `eret`, where the general path took 196.
    pub(crate) fn signal_recv_fast(&mut self, me: PdId, ch: u64) -> bool {
        let p = &self.pds[me];
        let Some(c) = p.desc().channels.get(ch as usize) else { return false };
        if c.kind != CHANNEL_PD || c.rights & RIGHT_NOTIFY == 0 || p.has_events() {
            return false;
        }
        let peer = c.peer as PdId;
        let t = &self.pds[peer];
        if !t.takes_notification_now() || self.runq.highest().is_some_and(|best| best >= t.priority()) {
            return false;
        }
        self.pds[me].wait();
        let t = &mut self.pds[peer];
        t.post(usize::from(c.peer_channel));
        t.deliver_notifications();
        t.set_runnable();
        self.current = Some(peer);
        true
    }

    /// The channel `signal_recv(ch)` would signal: a PD channel with the
    /// notify right, or an IRQ channel.
    fn signal_target(&self, me: PdId, ch: u64) -> Result<&'static ChannelDesc, Error> {
        let c = self.channel(me, ch)?;
        match c.kind {
            CHANNEL_IRQ => Ok(c),
            CHANNEL_PD if c.rights & RIGHT_NOTIFY != 0 => Ok(c),
            _ => Err(Error::NotPermitted),
        }
    }

    /// The signal of `signal_recv`: notify the peer, or re-enable the IRQ.
    fn send_signal(&mut self, m: &mut impl Machine, c: &ChannelDesc) {
        if c.kind == CHANNEL_IRQ {
            m.irq_unmask(c.irq as u32);
        } else {
            self.signal(c.peer as PdId, c.peer_channel as usize);
        }
    }

    /// `pp_call_lend(ch, info, mrs, count)`: lend, then call.
    #[inline(never)]
    fn pp_call_lend(&mut self, m: &mut impl Machine, me: PdId) -> Result<(), Error> {
        let [ch, x6] = [self.pds[me].ctx().x[0], self.pds[me].ctx().x[6]];
        let c = self.channel(me, ch)?;
        if c.kind != CHANNEL_PD || c.rights & RIGHT_PPC == 0 {
            return Err(Error::NotPermitted);
        }
        self.lend(m, me, c, usize::try_from(x6).unwrap_or(usize::MAX))?;
        self.pp_call(m, me).inspect_err(|_| self.end_lease(me))
    }

    /// `irq_ack(ch)`: re-enable the interrupt bound to `ch`.
    fn irq_ack(&mut self, m: &mut impl Machine, me: PdId, ch: u64) -> Result<(), Error> {
        let c = self.channel(me, ch)?;
        if c.kind != CHANNEL_IRQ {
            return Err(Error::NotPermitted);
        }
        m.irq_unmask(c.irq as u32);
        Ok(())
    }

    /// An interrupt arrived: mask it until its owner acks, and notify the
    /// owner on the bound channel.
    pub fn irq(&mut self, m: &mut impl Machine, irq: u32) {
        if let Some((pd, ch)) = self.irq_binding(irq) {
            m.irq_mask(irq);
            self.signal(pd, ch);
        }
    }
}
