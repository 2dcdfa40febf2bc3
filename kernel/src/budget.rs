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
//!
//! The timer is set lazily, since a filter is called twice per request: a
//! call touches it only when its deadline comes before the one the timer
//! already holds (with equal budgets, only the first call of a run does),
//! and a reply not at all. A timer interrupt for a deadline that ended
//! finds nothing passed and sets the timer for the next one, and before
//! the CPU idles `settle_deadline` takes a deadline back when no budget
//! runs, so an idle CPU never wakes for nothing.

use crate::machine::Machine;
use crate::pd::{PdId, State};
use crate::system::Kernel;
use abi::{FaultInfo, FaultKind};

impl Kernel {
    /// A call was just delivered to `pd`: start its budget, if it has one.
    #[inline(always)]
    pub(crate) fn start_budget(&mut self, m: &mut impl Machine, pd: PdId) {
        let p = &mut self.pds[pd];
        if p.desc().call_budget_us == 0 {
            return;
        }
        let ticks = p.budget_ticks(|| m.counter_hz());
        let at = m.now().saturating_add(ticks);
        if p.start_deadline(at) {
            self.budgets_running += 1;
        }
        if self.next_deadline.is_none_or(|d| at < d) {
            self.next_deadline = Some(at);
            m.set_deadline(Some(at));
        }
    }

    /// `pd` no longer serves a call. The timer is left as it is (see the
    /// module's docs).
    #[inline(always)]
    pub(crate) fn end_budget(&mut self, pd: PdId) {
        if self.pds[pd].end_deadline() {
            self.budgets_running -= 1;
        }
    }

    /// The CPU is about to idle: take back a deadline left set when no
    /// budget runs any more. (A deadline left set would wake an idle CPU
    /// for nothing, and under `-icount sleep=off` move the clock to it.)
    pub fn settle_deadline(&mut self, m: &mut impl Machine) {
        if self.budgets_running == 0 && self.next_deadline.is_some() {
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
            if self.pds[pd].deadline().is_some_and(|d| d <= now) {
                self.end_budget(pd);
                let state = self.pds[pd].state();
                if state != State::Faulted && state != State::Inactive {
                    let pc = self.pds[pd].ctx().pc;
                    self.fault(m, pd, FaultInfo { kind: FaultKind::BudgetExceeded, address: 0, pc, esr: 0 });
                }
            }
        }
        self.next_deadline = self.pds.iter().filter_map(|p| p.deadline()).min();
        m.set_deadline(self.next_deadline);
    }
}
