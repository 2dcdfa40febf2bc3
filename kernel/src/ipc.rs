//! Notifications and protected procedure calls (PPC).
//!
//! A notification sets a bit in the receiver's pending word and wakes it if
//! it waits. A PPC hands the caller's message to the callee and blocks the
//! caller until the reply; when the callee is idle the kernel switches to it
//! directly (it has a higher priority than the caller, a rule the tool
//! enforces), otherwise the caller queues. Message registers 0-3 travel in
//! CPU registers, the rest are copied between the two IPC buffers.

use crate::machine::Machine;
use crate::pd::{Caller, PdId, State};
use crate::system::Kernel;
use abi::{event, Error, MessageInfo, MRS_IN_REGS};
use bootspec::{ChannelDesc, CHANNEL_NONE, CHANNEL_PD, RIGHT_NOTIFY, RIGHT_PPC};

/// Registers of a PPC on the caller side: `x0` channel, `x1` message info,
/// `x2..x5` message registers 0-3. The callee sees them shifted by one:
/// `x0` event, `x1` channel, `x2` info, `x3..x6` registers 0-3, `x7` the
/// lease of a call that lends memory.
const CALL_MR0: usize = 2;
const EVENT_MR0: usize = 3;
/// The callee's `x7`: the lease of a lending call (see `grant`).
const EVENT_LEASE: usize = 7;

impl Kernel {
    /// The channel `ch` of `pd`, if it holds one.
    pub(crate) fn channel(&self, pd: PdId, ch: u64) -> Result<&'static ChannelDesc, Error> {
        let c = self.pds[pd].desc().channels.get(ch as usize).ok_or(Error::InvalidChannel)?;
        if c.kind == CHANNEL_NONE {
            return Err(Error::InvalidChannel);
        }
        Ok(c)
    }

    /// `notify(ch)` from `me`.
    pub fn notify(&mut self, me: PdId, ch: u64) -> Result<(), Error> {
        let c = self.channel(me, ch)?;
        if c.kind != CHANNEL_PD || c.rights & RIGHT_NOTIFY == 0 {
            return Err(Error::NotPermitted);
        }
        self.signal(c.peer as PdId, c.peer_channel as usize);
        Ok(())
    }

    /// Set notification bit `bit` of `pd` and wake it if it waits. A passive
    /// PD is not woken: it sees the bit the next time it waits.
    pub(crate) fn signal(&mut self, pd: PdId, bit: usize) {
        let p = &mut self.pds[pd];
        p.post(bit);
        if p.takes_notification_now() {
            p.deliver_notifications();
            self.make_runnable(pd);
        }
    }

    /// `pp_call(ch, info, mr0..3)` from `me`: on success `me` blocks until
    /// the reply fills its registers.
    /// (Inlined into the system-call dispatch: a plain PPC is the hot path.)
    #[inline(always)]
    pub fn pp_call(&mut self, m: &mut impl Machine, me: PdId) -> Result<(), Error> {
        let c = self.channel(me, self.pds[me].ctx().x[0])?;
        if c.kind != CHANNEL_PD || c.rights & RIGHT_PPC == 0 {
            return Err(Error::NotPermitted);
        }
        if !MessageInfo::from_raw(self.pds[me].ctx().x[1]).is_valid() {
            return Err(Error::InvalidMessage);
        }
        let callee = c.peer as PdId;
        let cs = &self.pds[callee];
        if !cs.waits_for_call() && matches!(cs.state(), State::Faulted | State::Inactive) {
            let parent = cs.parent();
            if (cs.state() == State::Faulted && parent.is_none()) || parent == Some(me) {
                // Nobody will ever restart it: it has no parent, or its
                // parent is the caller, which would wait in its queue and
                // never hear of the fault (a child that faults in its init
                // right after its restart, before the parent waits).
                return Err(Error::CalleeFaulted);
            }
        }
        if cs.waits_for_call() {
            self.deliver_call(m, me, callee, c.peer_channel);
            // The callee outranks every runnable PD: the caller was the best
            // of them and the callee has a strictly higher priority.
            self.block_current(me);
            self.current = Some(callee);
        } else {
            let stamp = self.next_stamp();
            self.pds[me].queue_call(callee, stamp);
            self.pds[callee].queue_caller(me);
            self.block_current(me);
        }
        Ok(())
    }

    /// `pp_call` in its common case, straight through: the callee waits
    /// for a call, so it takes this one and runs next (it outranks the
    /// caller, by the PPC rule, and so everything queued; checked, as the
    /// fast path decides who runs). `false`, with nothing changed, for
    /// anything else: an error, a callee that is busy or faulted.
    #[inline(always)]
    pub(crate) fn pp_call_fast(&mut self, m: &mut impl Machine, me: PdId, ch: u64) -> bool {
        let p = &self.pds[me];
        let Some(c) = p.desc().channels.get(ch as usize) else { return false };
        if c.kind != CHANNEL_PD || c.rights & RIGHT_PPC == 0 || !MessageInfo::from_raw(p.ctx().x[1]).is_valid() {
            return false;
        }
        let callee = c.peer as PdId;
        let cs = &self.pds[callee];
        if !cs.waits_for_call() || self.runq.highest().is_some_and(|best| best >= cs.priority()) {
            return false;
        }
        self.deliver_call(m, me, callee, c.peer_channel);
        self.current = Some(callee);
        true
    }

    /// `reply_recv` in its common case, straight through: `me` has a caller
    /// and no event waiting, so it blocks; the caller outranks everything
    /// queued, so it runs next with the reply. `false`, with nothing
    /// changed, otherwise.
    #[inline(always)]
    pub(crate) fn reply_recv_fast(&mut self, m: &mut impl Machine, me: PdId) -> bool {
        let p = &self.pds[me];
        let Caller::Pd(caller) = p.caller() else { return false };
        if p.has_events() || self.runq.highest().is_some_and(|best| best > self.pds[caller].priority()) {
            return false;
        }
        self.reply(m, me);
        self.pds[me].wait();
        self.current = Some(caller);
        true
    }

    /// Move the call of `caller` (its registers and IPC buffer) into
    /// `callee`, which starts serving it; `ch` is the channel's id at the
    /// callee's end.
    fn deliver_call(&mut self, m: &mut impl Machine, caller: PdId, callee: PdId, ch: u8) {
        let cc = &self.pds[caller].ctx().x;
        let info = MessageInfo::from_raw(cc[1]);
        let (m0, m1, m2, m3) = (cc[CALL_MR0], cc[CALL_MR0 + 1], cc[CALL_MR0 + 2], cc[CALL_MR0 + 3]);
        let cx = &mut self.pds[callee].ctx_mut().x;
        cx[0] = event::PPC;
        cx[1] = ch as u64;
        cx[2] = info.raw();
        cx[EVENT_MR0] = m0;
        cx[EVENT_MR0 + 1] = m1;
        cx[EVENT_MR0 + 2] = m2;
        cx[EVENT_MR0 + 3] = m3;
        let lease = self.lease_of(caller);
        let ce = &mut self.pds[callee];
        ce.ctx_mut().x[EVENT_LEASE] = lease;
        ce.take_call(caller);
        let (dst, src) = (ce.desc().ipc_buffer_paddr, self.pds[caller].desc().ipc_buffer_paddr);
        copy_buffer_mrs(m, dst, src, info);
        self.pds[caller].start_call(callee);
        self.start_budget(m, callee);
    }

    /// `me` replies (message info in `x0`, registers 0-3 in `x2..x5`) to the
    /// PPC it serves, then waits for its next event. A malformed reply
    /// reaches the caller as an error.
    pub fn reply_recv(&mut self, m: &mut impl Machine, me: PdId) {
        let caller = self.reply(m, me);
        self.recv(m, me);
        if let Some(caller) = caller {
            self.run_replied(caller);
        }
    }

    /// Hand the reply to the caller, which becomes runnable (but is not
    /// queued yet: see `reply_recv`).
    fn reply(&mut self, m: &mut impl Machine, me: PdId) -> Option<PdId> {
        // (The budget ends even for a call its caller no longer waits for:
        // left armed, it would stop the idle callee at its old deadline.)
        self.end_budget(me);
        let caller = self.pds[me].end_call()?;
        self.end_lease(caller);
        let rc = &self.pds[me].ctx().x;
        let info = MessageInfo::from_raw(rc[0]);
        let (m0, m1, m2, m3) = (rc[CALL_MR0], rc[CALL_MR0 + 1], rc[CALL_MR0 + 2], rc[CALL_MR0 + 3]);
        let src = self.pds[me].desc().ipc_buffer_paddr;
        let cp = &mut self.pds[caller];
        if info.is_valid() {
            let cx = &mut cp.ctx_mut().x;
            cx[0] = 0;
            cx[1] = info.raw();
            cx[CALL_MR0] = m0;
            cx[CALL_MR0 + 1] = m1;
            cx[CALL_MR0 + 2] = m2;
            cx[CALL_MR0 + 3] = m3;
            copy_buffer_mrs(m, cp.desc().ipc_buffer_paddr, src, info);
        } else {
            cp.ctx_mut().x[0] = Error::InvalidMessage as u64;
        }
        cp.set_runnable();
        Some(caller)
    }

    /// `me` waits for its next event: a child's fault, then notifications,
    /// then queued callers. With none, it blocks.
    pub fn recv(&mut self, m: &mut impl Machine, me: PdId) {
        if self.next_event(m, me) {
            self.pds[me].set_runnable();
        } else {
            self.pds[me].wait();
            self.block_current(me);
        }
    }

    /// Load the next pending event into `me`'s registers.
    fn next_event(&mut self, m: &mut impl Machine, me: PdId) -> bool {
        if self.deliver_fault(me) {
            return true;
        }
        let p = &mut self.pds[me];
        if p.pending() != 0 {
            p.deliver_notifications();
            return true;
        }
        if let Some(caller) = self.take_queued_caller(me) {
            // The caller's channel was checked when it called.
            let ch = self.pds[caller].desc().channels[self.pds[caller].ctx().x[0] as usize].peer_channel;
            self.deliver_call(m, caller, me, ch);
            return true;
        }
        false
    }

    /// The queued caller to serve next: highest priority, then first come.
    fn take_queued_caller(&mut self, me: PdId) -> Option<PdId> {
        let mut queued = self.pds[me].queued_callers();
        let mut best: Option<PdId> = None;
        while queued != 0 {
            let c = queued.trailing_zeros() as PdId;
            queued &= queued - 1;
            best = match best {
                Some(b)
                    if (self.pds[b].priority(), u64::MAX - self.pds[b].queued_at())
                        >= (self.pds[c].priority(), u64::MAX - self.pds[c].queued_at()) =>
                {
                    Some(b)
                }
                _ => Some(c),
            };
        }
        let best = best?;
        self.pds[me].dequeue_caller(best);
        Some(best)
    }

    /// End every call that involves `pd` because it stops: its own call (as a
    /// caller) is withdrawn, and its callers get `CalleeFaulted`.
    pub(crate) fn cancel_calls(&mut self, pd: PdId) {
        self.end_lease(pd);
        self.end_budget(pd);
        if let State::Calling { callee, queued } = self.pds[pd].state() {
            if queued {
                self.pds[callee].dequeue_caller(pd);
            } else {
                self.pds[callee].cancel_caller(pd);
            }
        }
        let mut failed = self.pds[pd].take_queued_callers();
        if let Some(c) = self.pds[pd].end_call() {
            failed |= 1 << c;
        }
        while failed != 0 {
            let c = failed.trailing_zeros() as PdId;
            failed &= failed - 1;
            self.end_lease(c);
            self.pds[c].ctx_mut().x[0] = Error::CalleeFaulted as u64;
            self.make_runnable(c);
        }
    }
}

/// Copy message registers beyond the first four from one IPC buffer to
/// another.
fn copy_buffer_mrs(m: &mut impl Machine, dst: u64, src: u64, info: MessageInfo) {
    let count = info.count();
    if count > MRS_IN_REGS {
        let off = (MRS_IN_REGS * 8) as u64;
        m.copy_phys(dst + off, src + off, (count - MRS_IN_REGS) * 8);
    }
}
