//! A system that can never run again: every PD stopped, faulted with no
//! parent to handle it, or blocked with nothing that could ever wake it.
//!
//! The kernel looks when the CPU is about to idle (nothing runnable). Only
//! an interrupt can make something runnable then: a device's, delivered to
//! a PD that waits on a bound IRQ channel, or the timer's, for a pending
//! call deadline. With neither, nothing will ever happen: the kernel says
//! which PD is in which state and powers off with [`STUCK_STATUS`], so a
//! run (and `make run`) ends instead of idling forever.

use crate::machine::{Console, Machine};
use crate::pd::{Caller, State};
use crate::system::Kernel;
use bootspec::CHANNEL_IRQ;
use core::fmt::Write;

/// The exit status of a run that can never go on.
pub const STUCK_STATUS: u64 = 6;

impl Kernel {
    /// The PDs with an interrupt bound to them (bit = PD id), from the
    /// spec: the only ones a device can wake.
    pub(crate) fn pds_with_irqs(&self) -> u64 {
        self.pds
            .iter()
            .enumerate()
            .filter(|(_, p)| p.desc().channels.iter().any(|c| c.kind == CHANNEL_IRQ))
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// Whether, with nothing runnable, no interrupt could ever make
    /// anything runnable again. Called on every idle, so the common answer
    /// (a driver waits for its device) comes first and cheaply.
    #[inline(always)]
    pub fn stuck(&self) -> bool {
        let mut irq = self.irq_pds;
        while irq != 0 {
            let pd = irq.trailing_zeros() as usize;
            irq &= irq - 1;
            if self.pds[pd].state() == State::Waiting {
                return false;
            }
        }
        self.budgets_running == 0 && !self.has_work()
    }

    /// Say that nothing can run again and why, PD by PD, and power off.
    #[cold]
    #[inline(never)]
    pub fn report_stuck(&mut self, m: &mut impl Machine) {
        let _ = writeln!(Console(m), "kernel: no protection domain can run again; powering off");
        for pd in self.pds.iter() {
            let state = match pd.state() {
                State::Inactive => "stopped",
                State::Faulted if pd.parent().is_some() => "faulted (its parent cannot run to handle it)",
                State::Faulted => "faulted (no parent to restart it)",
                State::Waiting if pd.passive() && pd.caller() == Caller::None => "waits for a call nobody can make",
                State::Waiting => "waits for a notification nobody can send",
                State::Calling { callee, .. } => {
                    let _ = writeln!(Console(m), "kernel:   '{}': calls '{}', which cannot answer", pd.name(), self.pds[callee].name());
                    continue;
                }
                State::Runnable => "runnable",
            };
            let _ = writeln!(Console(m), "kernel:   '{}': {}", pd.name(), state);
        }
        m.power_off(STUCK_STATUS);
    }
}
