//! The protection-domain record: saved registers, state, and the parts of
//! the boot spec that say what the PD may do. Its fields change only
//! through its methods, which keep together what belongs together.

use abi::{FaultInfo, MAX_PDS};
use bootspec::PdDesc;
use core::ops::{Index, IndexMut};

/// Index of a PD in the kernel's table (and in the boot spec).
pub type PdId = usize;

/// User registers saved on every entry to the kernel. The exception vectors
/// store and load this exact layout; keep it `repr(C)` and in step with
/// `vectors.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub spsr: u64,
}

/// FP/SIMD registers, saved only when another PD takes the FP unit.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpState {
    pub q: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

impl FpState {
    pub const ZERO: FpState = FpState { q: [0; 32], fpcr: 0, fpsr: 0 };
}

impl UserContext {
    pub const ZERO: UserContext = UserContext { x: [0; 31], sp: 0, pc: 0, spsr: 0 };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Stopped by its parent, or never started; runs again only when restarted.
    Inactive,
    /// Runnable: either running or in the run queues.
    Runnable,
    /// Blocked in `recv` until a notification, a PPC or a child's fault.
    Waiting,
    /// Blocked in a PPC to `callee`: queued until the callee takes it, then
    /// being served until the reply.
    Calling { callee: PdId, queued: bool },
    /// Stopped by a fault until its parent restarts or resumes it.
    Faulted,
}

/// Whom a PD owes a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    None,
    Pd(PdId),
    /// The caller was stopped while being served; the reply is dropped.
    Cancelled,
}

/// A protection domain. Its fields are private to this module, as in
/// Hubris's `task.rs`: the methods below change together what belongs
/// together (a queued call and its arrival stamp, a call taken and its
/// caller, a fault and the `Faulted` state, a lent count and its lease
/// number, a restart and everything a fresh PD starts with). What spans
/// PDs or the run queues stays the `Kernel`'s to keep: a caller queued on
/// its callee, a runnable PD in its queue, the count of running budgets.
pub struct Pd {
    ctx: UserContext,
    fp: FpState,
    /// Switches into this PD that still load its FP registers eagerly (see
    /// `arch::fpu`).
    fp_eager: u8,
    desc: &'static PdDesc,
    state: State,
    /// Notification bits not yet delivered (bit n = channel n).
    pending: u64,
    /// The PPC being served.
    caller: Caller,
    /// PDs queued to call this one (bit = PD id).
    queued_callers: u64,
    /// When this PD joined a callee's queue (FIFO among equal priorities).
    queued_at: u64,
    /// Children whose fault this PD has not yet received (bit = child id).
    pending_faults: u64,
    /// This PD's last fault, kept for its parent.
    fault: Option<FaultInfo>,
    /// TTBR0 value: level-0 table and ASID.
    ttbr0: u64,
    /// How many of its entries in the kernel's grant table (see `grant`)
    /// this PD lends the callee of its current call, for lease `lease`.
    lent_count: u8,
    /// The number of this PD's last lending call.
    lease: u32,
    /// While this PD serves a PPC and has a call budget: the counter value
    /// at which it is stopped (see `budget`); 0 = none.
    deadline: u64,
    /// Its call budget on the counter, worked out at its first call; 0
    /// until then.
    budget_ticks: u64,
}

/// A range of physical memory lent for one call, with the rights
/// (`abi::GRANT_READ`, `abi::GRANT_WRITE`) the callee has on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub paddr: u64,
    pub len: u32,
    pub rights: u8,
}

impl Grant {
    pub const NONE: Grant = Grant { paddr: 0, len: 0, rights: 0 };
}

impl Pd {
    /// What fills the table's slots beyond the last PD.
    const UNUSED: Pd = Pd::fresh(&PdDesc::EMPTY, UserContext::ZERO, State::Inactive, 0);

    pub fn new(desc: &'static PdDesc) -> Pd {
        Pd::fresh(desc, initial_context(desc), State::Runnable, desc.ttbr0 | (desc.asid as u64) << 48)
    }

    /// A PD with nothing pending, no caller, no fault and zero FP registers.
    const fn fresh(desc: &'static PdDesc, ctx: UserContext, state: State, ttbr0: u64) -> Pd {
        Pd {
            ctx,
            fp: FpState::ZERO,
            fp_eager: 0,
            desc,
            state,
            pending: 0,
            caller: Caller::None,
            queued_callers: 0,
            queued_at: 0,
            pending_faults: 0,
            fault: None,
            ttbr0,
            lent_count: 0,
            lease: 0,
            deadline: 0,
            budget_ticks: 0,
        }
    }

    // ---- what the boot spec says it is --------------------------------

    #[inline(always)]
    pub fn desc(&self) -> &'static PdDesc {
        self.desc
    }

    #[inline(always)]
    pub fn priority(&self) -> u8 {
        self.desc.priority
    }

    #[inline(always)]
    pub fn passive(&self) -> bool {
        self.desc.flags & bootspec::PD_PASSIVE != 0
    }

    pub fn name(&self) -> &'static str {
        self.desc.name()
    }

    pub fn parent(&self) -> Option<PdId> {
        (self.desc.parent != bootspec::NO_PD).then_some(self.desc.parent as PdId)
    }

    /// The PD's child with id `child`, if it has one.
    pub fn child(&self, child: u64) -> Option<PdId> {
        let id = *self.desc.children.get(child as usize)?;
        (id != bootspec::NO_PD).then_some(id as PdId)
    }

    /// Its address space: the TTBR0 value (level-0 table and ASID).
    #[inline(always)]
    pub fn ttbr0(&self) -> u64 {
        self.ttbr0
    }

    // ---- registers ----------------------------------------------------
    // Plain data the PD owns: system calls read their arguments there and
    // the kernel writes events and results.

    #[inline(always)]
    pub fn ctx(&self) -> &UserContext {
        &self.ctx
    }

    #[inline(always)]
    pub fn ctx_mut(&mut self) -> &mut UserContext {
        &mut self.ctx
    }

    #[inline(always)]
    pub fn fp(&self) -> &FpState {
        &self.fp
    }

    #[inline(always)]
    pub fn fp_mut(&mut self) -> &mut FpState {
        &mut self.fp
    }

    /// It just trapped on FP: load its FP registers eagerly on its next
    /// `switches` switches in.
    pub fn load_fp_eagerly(&mut self, switches: u8) {
        self.fp_eager = switches;
    }

    /// Whether this switch in loads its FP registers eagerly; uses up one.
    #[inline(always)]
    pub fn take_eager_fp_switch(&mut self) -> bool {
        if self.fp_eager == 0 {
            return false;
        }
        self.fp_eager -= 1;
        true
    }

    // ---- scheduling state ---------------------------------------------
    // The plain transitions; the kernel keeps the run queues in step
    // (`Kernel::make_runnable` ...).

    #[inline(always)]
    pub fn state(&self) -> State {
        self.state
    }

    /// Runnable: running or queued (the kernel sees to which).
    #[inline(always)]
    pub fn set_runnable(&mut self) {
        self.state = State::Runnable;
    }

    /// It blocks until its next event.
    #[inline(always)]
    pub fn wait(&mut self) {
        self.state = State::Waiting;
    }

    /// Stopped: it runs again only when restarted.
    pub fn set_inactive(&mut self) {
        self.state = State::Inactive;
    }

    /// Stopped by a fault, which is kept for its parent.
    pub fn set_faulted(&mut self, info: FaultInfo) {
        self.state = State::Faulted;
        self.fault = Some(info);
    }

    /// Its fault, from when it faulted until it is resumed or restarted.
    pub fn fault(&self) -> Option<FaultInfo> {
        self.fault
    }

    /// Its parent resumes it after a fault: `false`, with nothing changed,
    /// if it is not faulted. The fault is forgotten; the kernel makes it
    /// runnable.
    pub fn resume_from_fault(&mut self) -> bool {
        if self.state != State::Faulted {
            return false;
        }
        self.fault = None;
        true
    }

    /// Back to how it booted: registers at the entry point, zero FP
    /// registers, nothing pending, no fault, lease numbers from 1 again.
    /// The kernel first stops it, which takes it out of every call, and
    /// restores its memory; making it runnable starts it.
    pub fn reinitialize(&mut self) {
        debug_assert!(
            self.state == State::Inactive
                && self.caller == Caller::None
                && self.queued_callers == 0
                && self.lent_count == 0
                && self.deadline == 0,
            "PD '{}' restarted while not stopped",
            self.name()
        );
        self.ctx = initial_context(self.desc);
        self.fp = FpState::ZERO;
        self.fp_eager = 0;
        self.pending = 0;
        self.fault = None;
        self.lease = 0;
    }

    // ---- events -------------------------------------------------------

    /// Notification bits not yet delivered.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Mark notification `bit` (its channel) pending.
    #[inline(always)]
    pub fn post(&mut self, bit: usize) {
        self.pending |= 1 << bit;
    }

    /// Whether a notification is delivered to it at once: it waits for an
    /// event and is not passive (a passive PD sees the bit when it next
    /// waits).
    #[inline(always)]
    pub fn takes_notification_now(&self) -> bool {
        self.state == State::Waiting && !self.passive()
    }

    /// Hand the pending notification bits over as the event `recv` returns.
    #[inline(always)]
    pub fn deliver_notifications(&mut self) {
        self.ctx.x[0] = abi::event::NOTIFIED;
        self.ctx.x[1] = self.pending;
        self.pending = 0;
    }

    /// Whether an event waits for it: a child's fault, a notification or a
    /// queued caller.
    #[inline(always)]
    pub fn has_events(&self) -> bool {
        self.pending_faults | self.pending | self.queued_callers != 0
    }

    /// Children whose fault it has not yet received (bit = child id).
    pub fn pending_faults(&self) -> u64 {
        self.pending_faults
    }

    /// Its child `child` faulted: the fault waits for it as an event.
    pub fn post_fault(&mut self, child: u64) {
        self.pending_faults |= 1 << child;
    }

    /// The first child whose fault waits, taken off the pending ones.
    pub fn take_pending_fault(&mut self) -> Option<u64> {
        if self.pending_faults == 0 {
            return None;
        }
        let child = u64::from(self.pending_faults.trailing_zeros());
        self.pending_faults &= !(1 << child);
        Some(child)
    }

    /// Its child `child` was restarted, stopped or resumed: a fault of its
    /// that waits is no longer news.
    pub fn forget_fault(&mut self, child: u64) {
        self.pending_faults &= !(1 << child);
    }

    // ---- calls --------------------------------------------------------

    /// The call it serves.
    #[inline(always)]
    pub fn caller(&self) -> Caller {
        self.caller
    }

    /// Whether a call can be handed to it at once: it waits, serving none.
    #[inline(always)]
    pub fn waits_for_call(&self) -> bool {
        self.state == State::Waiting && self.caller == Caller::None
    }

    /// It takes the call of `caller`, whose message the kernel puts in its
    /// registers, and runs to serve it.
    #[inline(always)]
    pub fn take_call(&mut self, caller: PdId) {
        self.caller = Caller::Pd(caller);
        self.state = State::Runnable;
    }

    /// The call it serves ends (reply, or its stop): the caller it owes the
    /// reply to, if that caller still waits for one.
    #[inline(always)]
    pub fn end_call(&mut self) -> Option<PdId> {
        match core::mem::replace(&mut self.caller, Caller::None) {
            Caller::Pd(caller) => Some(caller),
            Caller::None | Caller::Cancelled => None,
        }
    }

    /// `caller` stopped: if this PD serves its call, the reply is dropped.
    pub fn cancel_caller(&mut self, caller: PdId) {
        if self.caller == Caller::Pd(caller) {
            self.caller = Caller::Cancelled;
        }
    }

    /// It calls `callee`, which serves the call at once.
    #[inline(always)]
    pub fn start_call(&mut self, callee: PdId) {
        self.state = State::Calling { callee, queued: false };
    }

    /// It calls `callee`, which is busy: it waits in the callee's queue,
    /// stamped with its arrival `stamp`.
    pub fn queue_call(&mut self, callee: PdId, stamp: u64) {
        self.state = State::Calling { callee, queued: true };
        self.queued_at = stamp;
    }

    /// When it joined its callee's queue.
    pub fn queued_at(&self) -> u64 {
        self.queued_at
    }

    /// PDs queued to call this one (bit = PD id).
    pub fn queued_callers(&self) -> u64 {
        self.queued_callers
    }

    /// `caller` joins the queue of PDs calling this one.
    pub fn queue_caller(&mut self, caller: PdId) {
        self.queued_callers |= 1 << caller;
    }

    /// `caller` leaves the queue: it is served now, or it stopped.
    pub fn dequeue_caller(&mut self, caller: PdId) {
        self.queued_callers &= !(1 << caller);
    }

    /// Every queued caller, taken off the queue (it stops).
    pub fn take_queued_callers(&mut self) -> u64 {
        core::mem::take(&mut self.queued_callers)
    }

    // ---- leases (see `grant`) -----------------------------------------

    /// Its call lends the first `count` entries of its grant table, under
    /// its next lease number: 1, 2, 3, ..., never 0.
    pub fn start_lease(&mut self, count: u8) {
        self.lent_count = count;
        self.lease = match self.lease.wrapping_add(1) {
            0 => 1,
            n => n,
        };
    }

    /// It lends nothing (any more).
    #[inline(always)]
    pub fn end_lease(&mut self) {
        self.lent_count = 0;
    }

    /// The lease its call carries to the callee: 0 if it lends nothing.
    #[inline(always)]
    pub fn lease(&self) -> u64 {
        if self.lent_count == 0 {
            0
        } else {
            u64::from(self.lease)
        }
    }

    /// Whether it lends grant `index` under lease `lease` now.
    pub fn lends(&self, lease: u32, index: usize) -> bool {
        lease != 0 && lease == self.lease && index < self.lent_count as usize
    }

    // ---- call budget (see `budget`) ------------------------------------

    /// The counter value at which the call it serves is stopped, if it has
    /// a budget running.
    pub fn deadline(&self) -> Option<u64> {
        (self.deadline != 0).then_some(self.deadline)
    }

    /// Its call budget on a counter of `hz()` ticks a second (at least one
    /// tick), worked out at its first call. Only for a PD with a budget.
    #[inline(always)]
    pub fn budget_ticks(&mut self, hz: impl FnOnce() -> u64) -> u64 {
        if self.budget_ticks == 0 {
            self.budget_ticks = (u64::from(self.desc.call_budget_us) * hz() / 1_000_000).max(1);
        }
        self.budget_ticks
    }

    /// Its budget runs until `at`: whether it started running now (the
    /// kernel counts the running budgets).
    #[inline(always)]
    #[must_use]
    pub fn start_deadline(&mut self, at: u64) -> bool {
        debug_assert_ne!(at, 0, "0 stands for no deadline");
        let started = self.deadline == 0;
        self.deadline = at;
        started
    }

    /// Its budget stops: whether it was running.
    #[inline(always)]
    #[must_use]
    pub fn end_deadline(&mut self) -> bool {
        if self.deadline == 0 {
            return false;
        }
        self.deadline = 0;
        true
    }
}

/// Slots in the PD table: a power of two, so that a PD id is masked into
/// range instead of bounds-checked (the kernel indexes the table a dozen
/// times per entry).
const SLOTS: usize = MAX_PDS.next_power_of_two();

/// The PDs, indexed by [`PdId`]. Ids come from the boot spec, which the
/// parser checked, and from the kernel's own state, so an id past the last
/// PD is a kernel bug; it reaches an unused slot, never other memory.
pub struct PdTable {
    slots: [Pd; SLOTS],
    len: usize,
}

impl PdTable {
    pub const fn new() -> PdTable {
        PdTable { slots: [const { Pd::UNUSED }; SLOTS], len: 0 }
    }

    /// Add a PD with the next id; gives it back if the table is full.
    pub fn push(&mut self, pd: Pd) -> Result<(), Pd> {
        if self.len == MAX_PDS {
            return Err(pd);
        }
        self.slots[self.len] = pd;
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn iter(&self) -> core::slice::Iter<'_, Pd> {
        self.slots[..self.len].iter()
    }
}

impl Index<PdId> for PdTable {
    type Output = Pd;

    fn index(&self, pd: PdId) -> &Pd {
        debug_assert!(pd < self.len, "PD id {pd} past the table");
        &self.slots[pd % SLOTS]
    }
}

impl IndexMut<PdId> for PdTable {
    fn index_mut(&mut self, pd: PdId) -> &mut Pd {
        debug_assert!(pd < self.len, "PD id {pd} past the table");
        &mut self.slots[pd % SLOTS]
    }
}

/// Registers at the entry point: everything zero but the PC and the stack,
/// at EL0 with interrupts unmasked.
fn initial_context(desc: &PdDesc) -> UserContext {
    UserContext { pc: desc.entry, sp: desc.stack_top, ..UserContext::default() }
}
