//! Call budgets: the longest one PPC a PD serves may run.
//!
//! A PD with a `call_budget` (every filter of a storage chain has one) gets
//! a deadline when a call is delivered to it: now plus its budget on the
//! system counter. Wall time counts, preemption and nested calls included,
//! so a callee that loops, or waits on something that never answers, can
//! hold its caller for at most its budget. The reply clears the deadline;
//! the timer interrupt that finds a deadline passed stops the PD as a fault
//! (`BudgetExceeded`): its caller's call fails with `CalleeFaulted`, its
//! parent hears of the fault and may restart it, every other PD carries on.

use crate::machine::Machine;
use crate::pd::{PdId, State};
use crate::system::Kernel;
use abi::{FaultInfo, FaultKind};

impl Kernel {
    /// A call was just delivered to `pd`: start its budget, if it has one.
    pub(crate) fn start_budget(&mut self, m: &mut impl Machine, pd: PdId) {
        let us = u64::from(self.pds[pd].desc.call_budget_us);
        if us == 0 {
            return;
        }
        let ticks = (us * m.counter_hz() / 1_000_000).max(1);
        let at = m.now().saturating_add(ticks);
        if self.pds[pd].deadline == 0 {
            self.budgets_running += 1;
        }
        self.pds[pd].deadline = at;
        if self.next_deadline.is_none_or(|d| at < d) {
            self.next_deadline = Some(at);
            m.set_deadline(Some(at));
        }
    }

    /// `pd` no longer serves a call. When no budget runs any more the timer
    /// is told at once: a deadline left set would wake an idle CPU for
    /// nothing (and under `-icount sleep=off`, move the clock to it).
    /// Otherwise it stays set: an early timer interrupt finds nothing to do
    /// and sets the next deadline.
    pub(crate) fn end_budget(&mut self, m: &mut impl Machine, pd: PdId) {
        if self.pds[pd].deadline == 0 {
            return;
        }
        self.pds[pd].deadline = 0;
        self.budgets_running -= 1;
        if self.budgets_running == 0 {
            self.next_deadline = None;
            m.set_deadline(None);
        }
    }

    /// A timer interrupt: stop every PD whose deadline has passed, then set
    /// the timer for the next deadline.
    #[inline]
    pub fn check_budgets(&mut self, m: &mut impl Machine) {
        if self.next_deadline.is_some() {
            self.expire_budgets(m);
        }
    }

    /// (Out of line: the interrupt path stays as short as without budgets.)
    #[inline(never)]
    fn expire_budgets(&mut self, m: &mut impl Machine) {
        let now = m.now();
        for pd in 0..self.pds.len() {
            let d = self.pds[pd].deadline;
            if d != 0 && d <= now {
                self.end_budget(m, pd);
                if self.pds[pd].state != State::Faulted && self.pds[pd].state != State::Inactive {
                    let pc = self.pds[pd].ctx.pc;
                    self.fault(m, pd, FaultInfo { kind: FaultKind::BudgetExceeded, address: 0, pc, esr: 0 });
                }
            }
        }
        self.next_deadline = self.pds.iter().map(|p| p.deadline).filter(|&d| d != 0).min();
        m.set_deadline(self.next_deadline);
    }
}
