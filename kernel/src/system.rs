//! The kernel's whole state: the PD table, the run queues and the IRQ
//! bindings, built once from the boot spec; and the scheduling decision
//! taken at every exit from the kernel.

use crate::pd::{Grant, Pd, PdId, PdTable, State};
use crate::sched::RunQueues;
use bootspec::{LendDesc, RestoreOp, Spec, CHANNEL_IRQ};
use core::ops::Range;

/// Interrupt ids below this can be bound (GICv2 supports up to 1020).
pub const IRQ_LIMIT: usize = 1020;
const UNBOUND: u16 = u16::MAX;

pub struct Kernel {
    pub pds: PdTable,
    /// The PD that runs when the kernel returns to EL0.
    pub current: Option<PdId>,
    pub runq: RunQueues,
    /// Interrupt id -> owning PD and channel (`pd << 8 | channel`).
    irq_owner: [u16; IRQ_LIMIT],
    pub restore: &'static [RestoreOp],
    /// The regions PPCs may lend (see `grant`).
    pub lends: &'static [LendDesc],
    /// Physical RAM: a grant copy reaches a PD's memory only inside it.
    pub ram: Range<u64>,
    /// The earliest call deadline the timer is set for (see `budget`).
    pub next_deadline: Option<u64>,
    /// PDs serving a call under a budget (deadline set).
    pub budgets_running: u32,
    /// The PDs an interrupt is bound to (bit = PD id; see `stuck`).
    pub irq_pds: u64,
    /// Arrival counter for callers queued on a busy callee.
    stamp: u64,
    /// The PD whose FP/SIMD registers are live in the CPU (switched lazily).
    pub fp_owner: Option<PdId>,
    /// Per PD, what it lends for its current call (see `grant`). Last, and
    /// apart from the PD records: it is large, and the hot paths never
    /// touch it.
    pub lent: [[Grant; abi::MAX_LENDS]; abi::MAX_PDS],
}

impl Kernel {
    /// A kernel with no PDs. `const` so the kernel's state can be a static
    /// that [`Kernel::load`] fills in place (it is too big for the stack).
    pub const fn empty() -> Kernel {
        Kernel {
            pds: PdTable::new(),
            current: None,
            runq: RunQueues::new(),
            irq_owner: [UNBOUND; IRQ_LIMIT],
            restore: &[],
            lends: &[],
            ram: 0..0,
            next_deadline: None,
            budgets_running: 0,
            irq_pds: 0,
            stamp: 0,
            fp_owner: None,
            lent: [[Grant::NONE; abi::MAX_LENDS]; abi::MAX_PDS],
        }
    }

    /// Build the PD table from the spec and queue every PD to run its init.
    pub fn load(&mut self, spec: &Spec<'static>) {
        self.restore = spec.restore;
        self.lends = spec.lends;
        self.ram = spec.header.ram_base..spec.header.ram_base.saturating_add(spec.header.ram_size);
        for (id, desc) in spec.pds.iter().enumerate() {
            // The spec parser caps pd_count at MAX_PDS, so this cannot fail.
            let _ = self.pds.push(Pd::new(desc));
            for (ch, c) in desc.channels.iter().enumerate() {
                if c.kind == CHANNEL_IRQ && (c.irq as usize) < IRQ_LIMIT {
                    self.irq_owner[c.irq as usize] = (id << 8 | ch) as u16;
                }
            }
            self.runq.push_back(id, desc.priority);
        }
        self.irq_pds = self.pds_with_irqs();
    }

    /// Every interrupt some PD owns, with its trigger mode.
    pub fn bound_irqs(&self) -> impl Iterator<Item = (u32, u8)> + '_ {
        self.pds.iter().flat_map(|pd| {
            pd.desc().channels.iter().filter(|c| c.kind == CHANNEL_IRQ).map(|c| (c.irq as u32, c.trigger))
        })
    }

    /// The PD and channel an interrupt is delivered to.
    pub fn irq_binding(&self, irq: u32) -> Option<(PdId, usize)> {
        match *self.irq_owner.get(irq as usize)? {
            UNBOUND => None,
            b => Some(((b >> 8) as PdId, (b & 0xff) as usize)),
        }
    }

    pub(crate) fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// Make a blocked PD runnable. If it outranks the running PD it takes
    /// the CPU at once (the preempted PD keeps its turn at the head of its
    /// queue); if nobody runs and nothing queued is as good, it is the one
    /// to run; otherwise it joins the tail of its queue.
    ///
    /// Invariant: the runnable PDs other than the running one are exactly
    /// the queued ones, and none outranks the running one.
    pub(crate) fn make_runnable(&mut self, pd: PdId) {
        let p = &mut self.pds[pd];
        if p.state() == State::Runnable {
            // Already running or queued.
            return;
        }
        p.set_runnable();
        let prio = p.priority();
        match self.current {
            Some(cur) if prio > self.pds[cur].priority() => {
                let cur_prio = self.pds[cur].priority();
                self.runq.push_front(cur, cur_prio);
                self.current = Some(pd);
            }
            // Nobody runs (the PD that woke it just blocked, as in
            // `signal_recv`) and nothing queued is as good: it runs next,
            // without a trip through the queue.
            None if self.runq.highest().is_none_or(|best| best < prio) => self.current = Some(pd),
            _ => self.runq.push_back(pd, prio),
        }
    }

    /// The running PD blocks. It is never in the run queues, so this is
    /// all it takes.
    pub(crate) fn block_current(&mut self, pd: PdId) {
        debug_assert_eq!(self.current, Some(pd));
        self.current = None;
    }

    /// A PD just made runnable takes the CPU if nothing queued outranks it
    /// and nobody runs; otherwise it goes first in its queue. Used for a
    /// caller getting its reply: it was running when it called.
    pub(crate) fn run_replied(&mut self, pd: PdId) {
        let prio = self.pds[pd].priority();
        if self.current.is_none() && self.runq.highest().is_none_or(|best| best <= prio) {
            self.current = Some(pd);
        } else {
            self.runq.push_front(pd, prio);
        }
    }

    /// Take a PD out of scheduling (it stopped or faulted).
    pub(crate) fn unschedule(&mut self, pd: PdId) {
        let prio = self.pds[pd].priority();
        self.runq.remove(pd, prio);
        if self.current == Some(pd) {
            self.current = None;
        }
    }

    /// Pick the PD to run: the current one keeps the CPU unless it blocked
    /// or a strictly higher priority is waiting.
    pub fn schedule(&mut self) {
        if let Some(cur) = self.current {
            let pd = &self.pds[cur];
            if pd.state() == State::Runnable {
                match self.runq.highest() {
                    Some(best) if best > pd.priority() => {
                        let prio = pd.priority();
                        self.runq.push_front(cur, prio);
                    }
                    _ => return,
                }
            }
        }
        self.current = self.runq.pop_highest();
    }

    /// Timer tick: the current PD goes behind its equals (round robin).
    pub fn tick(&mut self) {
        if let Some(cur) = self.current {
            let prio = self.pds[cur].priority();
            if self.pds[cur].state() == State::Runnable && self.runq.has_peer_at(prio) {
                self.runq.push_back(cur, prio);
                self.current = self.runq.pop_highest();
            }
        }
    }

    /// Whether any PD can run now.
    pub fn has_work(&self) -> bool {
        self.current.is_some() || self.runq.highest().is_some()
    }
}
