//! The protection-domain record: saved registers, state, and the parts of
//! the boot spec that say what the PD may do.

use abi::FaultInfo;
use bootspec::PdDesc;

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
}

impl Pd {
    pub fn new(desc: &'static PdDesc) -> Pd {
        Pd {
            ctx: initial_context(desc),
            fp: FpState::ZERO,
            fp_eager: 0,
            desc,
            state: State::Runnable,
            pending: 0,
            caller: Caller::None,
            queued_callers: 0,
            queued_at: 0,
            pending_faults: 0,
            fault: None,
            ttbr0: desc.ttbr0 | (desc.asid as u64) << 48,
        }
    }

    pub fn priority(&self) -> u8 {
        self.desc.priority
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

/// Registers at the entry point: everything zero but the PC and the stack,
/// at EL0 with interrupts unmasked.
pub fn initial_context(desc: &PdDesc) -> UserContext {
    UserContext { pc: desc.entry, sp: desc.stack_top, ..UserContext::default() }
}
