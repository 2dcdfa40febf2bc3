//! The protection-domain record: saved registers, state, and the parts of
//! the boot spec that say what the PD may do.

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

pub struct Pd {
    pub ctx: UserContext,
    pub fp: FpState,
    /// Switches into this PD that still load its FP registers eagerly (see
    /// `arch::fpu`).
    pub fp_eager: u8,
    pub desc: &'static PdDesc,
    pub state: State,
    /// Notification bits not yet delivered (bit n = channel n).
    pub pending: u64,
    /// The PPC being served.
    pub caller: Caller,
    /// PDs queued to call this one (bit = PD id).
    pub queued_callers: u64,
    /// When this PD joined a callee's queue (FIFO among equal priorities).
    pub queued_at: u64,
    /// Children whose fault this PD has not yet received (bit = child id).
    pub pending_faults: u64,
    /// This PD's last fault, kept for its parent.
    pub fault: Option<FaultInfo>,
    /// TTBR0 value: level-0 table and ASID.
    pub ttbr0: u64,
    /// How many of its entries in the kernel's grant table (see `grant`)
    /// this PD lends the callee of its current call, for lease `lease`.
    pub lent_count: u8,
    /// The number of this PD's last lending call.
    pub lease: u32,
    /// While this PD serves a PPC and has a call budget: the counter value
    /// at which it is stopped (see `budget`); 0 = none.
    pub deadline: u64,
    /// Its call budget on the counter, worked out at its first call; 0
    /// until then.
    pub budget_ticks: u64,
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

    pub fn priority(&self) -> u8 {
        self.desc.priority
    }

    /// Hand the pending notification bits over as the event `recv` returns.
    pub fn deliver_notifications(&mut self) {
        self.ctx.x[0] = abi::event::NOTIFIED;
        self.ctx.x[1] = self.pending;
        self.pending = 0;
    }

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
pub fn initial_context(desc: &PdDesc) -> UserContext {
    UserContext { pc: desc.entry, sp: desc.stack_top, ..UserContext::default() }
}
