//! Faults: decoding what the CPU reports, stopping the PD, telling the
//! console and the PD's parent; and the parent's answers (restart, stop,
//! resume).

use crate::machine::{Console, Machine};
use crate::pd::{PdId, State};
use crate::system::Kernel;
use abi::{event, Error, FaultInfo, FaultKind, MessageInfo, FAULT_LABEL};
use bootspec::RESTORE_ZERO;
use core::fmt::Write;

/// Exception classes (ESR_EL1.EC) the kernel tells apart.
pub mod ec {
    pub const UNKNOWN: u64 = 0x00;
    pub const WFI_WFE: u64 = 0x01;
    pub const FP_ACCESS: u64 = 0x07;
    pub const ILLEGAL_STATE: u64 = 0x0e;
    pub const SVC64: u64 = 0x15;
    pub const SYSREG: u64 = 0x18;
    pub const INSTR_ABORT_LOWER: u64 = 0x20;
    pub const PC_ALIGN: u64 = 0x22;
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    pub const SP_ALIGN: u64 = 0x26;
    pub const BRK64: u64 = 0x3c;
}

/// Turn a synchronous exception from EL0 that is not a system call into a
/// fault report. `far` is the faulting address, `elr` the PC.
pub fn decode(esr: u64, far: u64, elr: u64) -> FaultInfo {
    let class = esr >> 26;
    // Data and instruction fault status codes: bits [5:2] give the kind,
    // bits [1:0] the translation level.
    let status = esr & 0x3f;
    let kind_of_status = status >> 2;
    const TRANSLATION: u64 = 0b0001;
    const PERMISSION: u64 = 0b0011;
    const ALIGNMENT: u64 = 0b100001;
    // The upper half belongs to the kernel (TTBR1); EL0 never reaches it.
    const KERNEL_HALF: u64 = 0xffff_0000_0000_0000;
    let (kind, address) = match class {
        ec::DATA_ABORT_LOWER | ec::INSTR_ABORT_LOWER if far >= KERNEL_HALF => (FaultKind::KernelAddress, far),
        ec::DATA_ABORT_LOWER => {
            let write = esr & (1 << 6) != 0;
            let kind = match (kind_of_status, write) {
                _ if status == ALIGNMENT => FaultKind::Alignment,
                (TRANSLATION, false) => FaultKind::UnmappedRead,
                (TRANSLATION, true) => FaultKind::UnmappedWrite,
                (PERMISSION, false) => FaultKind::ReadNotPermitted,
                (PERMISSION, true) => FaultKind::WriteToReadOnly,
                _ => FaultKind::Other,
            };
            (kind, far)
        }
        ec::INSTR_ABORT_LOWER => {
            let kind = match kind_of_status {
                TRANSLATION => FaultKind::UnmappedExecute,
                PERMISSION => FaultKind::ExecuteNotPermitted,
                _ => FaultKind::Other,
            };
            (kind, far)
        }
        ec::UNKNOWN | ec::SYSREG | ec::ILLEGAL_STATE => (FaultKind::UndefinedInstruction, elr),
        ec::PC_ALIGN => (FaultKind::Alignment, far),
        ec::SP_ALIGN => (FaultKind::Alignment, elr),
        ec::BRK64 => (FaultKind::Breakpoint, elr),
        _ => (FaultKind::Other, elr),
    };
    FaultInfo { kind, address, pc: elr, esr }
}

impl Kernel {
    /// `pd` faulted: stop it, report it on the console and to its parent.
    pub fn fault(&mut self, m: &mut impl Machine, pd: PdId, info: FaultInfo) {
        let name = self.pds[pd].name();
        let parent = self.pds[pd].parent();
        let then = if parent.is_some() { "; its parent handles it" } else { "; stopped" };
        let kind = info.kind.as_str();
        // (A budget overrun has no address: it is where the PD was.)
        let _ = if info.kind == FaultKind::BudgetExceeded {
            writeln!(Console(m), "kernel: pd '{name}' faulted: {kind}, pc {:#x}{then}", info.pc)
        } else {
            writeln!(Console(m), "kernel: pd '{name}' faulted: {kind} at address {:#x}, pc {:#x}{then}", info.address, info.pc)
        };
        self.stop(pd);
        self.pds[pd].set_faulted(info);
        if let Some(parent) = parent {
            let id = self.pds[pd].desc().id_in_parent;
            self.pds[parent].post_fault(u64::from(id));
            if self.pds[parent].state() == State::Waiting && self.deliver_fault(parent) {
                self.make_runnable(parent);
            }
        }
    }

    /// Take `pd` off the CPU and out of every call, leaving it stopped
    /// (`Inactive`).
    fn stop(&mut self, pd: PdId) {
        self.cancel_calls(pd);
        self.unschedule(pd);
        self.pds[pd].set_inactive();
    }

    /// If a child of `me` has an undelivered fault, load it into `me`'s
    /// registers as a fault event.
    pub(crate) fn deliver_fault(&mut self, me: PdId) -> bool {
        let Some(id) = self.pds[me].take_pending_fault() else { return false };
        let Some(info) = self.pds[me].child(id).and_then(|c| self.pds[c].fault()) else { return false };
        let x = &mut self.pds[me].ctx_mut().x;
        x[0] = event::FAULT;
        x[1] = id;
        x[2] = MessageInfo::new(FAULT_LABEL, 4).raw();
        x[3] = info.kind as u64;
        x[4] = info.address;
        x[5] = info.pc;
        x[6] = info.esr;
        true
    }

    fn child_of(&self, me: PdId, child: u64) -> Result<PdId, Error> {
        self.pds[me].child(child).ok_or(Error::InvalidChild)
    }

    /// `pd_restart(child)`: stop the child wherever it is, restore its
    /// writable memory to the image's initial contents and start it from its
    /// entry point. (Out of line: rare, and inlined it widens the system
    /// call dispatcher's frame on every path, notify's too.)
    #[inline(never)]
    pub fn restart(&mut self, m: &mut impl Machine, me: PdId, child: u64) -> Result<(), Error> {
        let c = self.child_of(me, child)?;
        self.stop(c);
        let desc = self.pds[c].desc();
        let first = desc.restore_first as usize;
        for op in &self.restore[first..first + desc.restore_count as usize] {
            if op.kind == RESTORE_ZERO {
                m.zero_phys(op.dst_paddr, op.len as usize);
            } else {
                m.copy_phys(op.dst_paddr, op.src_paddr, op.len as usize);
            }
        }
        self.pds[c].reinitialize();
        if self.fp_owner == Some(c) {
            // The CPU still holds the old run's registers: load zeroes instead.
            self.fp_owner = None;
        }
        self.pds[me].forget_fault(child);
        self.make_runnable(c);
        Ok(())
    }

    /// `pd_stop(child)`.
    pub fn stop_child(&mut self, me: PdId, child: u64) -> Result<(), Error> {
        let c = self.child_of(me, child)?;
        self.stop(c);
        self.pds[me].forget_fault(child);
        Ok(())
    }

    /// `fault_resume(child)`: a faulted child continues at the faulting PC.
    pub fn fault_resume(&mut self, me: PdId, child: u64) -> Result<(), Error> {
        let c = self.child_of(me, child)?;
        if !self.pds[c].resume_from_fault() {
            return Err(Error::NotPermitted);
        }
        self.pds[me].forget_fault(child);
        self.make_runnable(c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esr(class: u64, iss: u64) -> u64 {
        class << 26 | 1 << 25 | iss
    }

    #[test]
    fn write_to_read_only_page_is_a_permission_write() {
        let f = decode(esr(ec::DATA_ABORT_LOWER, 1 << 6 | 0b001111), 0x40_0000, 0x20_1000);
        assert_eq!(f.kind, FaultKind::WriteToReadOnly);
        assert_eq!(f.address, 0x40_0000);
        assert_eq!(f.pc, 0x20_1000);
    }

    #[test]
    fn unmapped_read_and_write_are_translation_faults_at_any_level() {
        for level in 0..4 {
            assert_eq!(decode(esr(ec::DATA_ABORT_LOWER, 0b000100 | level), 8, 0).kind, FaultKind::UnmappedRead);
            assert_eq!(
                decode(esr(ec::DATA_ABORT_LOWER, 1 << 6 | 0b000100 | level), 8, 0).kind,
                FaultKind::UnmappedWrite
            );
        }
    }

    #[test]
    fn any_access_to_the_kernel_half_is_named_as_such() {
        for (class, iss) in [(ec::DATA_ABORT_LOWER, 0b001101), (ec::DATA_ABORT_LOWER, 1 << 6 | 0b001111), (ec::INSTR_ABORT_LOWER, 0b001111)] {
            let f = decode(esr(class, iss), 0xffff_0000_4020_0000, 0x20_0000);
            assert_eq!(f.kind, FaultKind::KernelAddress);
            assert_eq!(f.address, 0xffff_0000_4020_0000);
        }
    }

    #[test]
    fn executing_data_is_an_instruction_permission_fault() {
        let f = decode(esr(ec::INSTR_ABORT_LOWER, 0b001111), 0x50_0000, 0x50_0000);
        assert_eq!(f.kind, FaultKind::ExecuteNotPermitted);
        let f = decode(esr(ec::INSTR_ABORT_LOWER, 0b000111), 0x90_0000, 0x90_0000);
        assert_eq!(f.kind, FaultKind::UnmappedExecute);
    }

    #[test]
    fn undefined_instruction_reports_the_pc() {
        let f = decode(esr(ec::UNKNOWN, 0), 0xdead, 0x20_0040);
        assert_eq!(f.kind, FaultKind::UndefinedInstruction);
        assert_eq!(f.address, 0x20_0040);
    }

    #[test]
    fn alignment_and_breakpoints_are_named() {
        assert_eq!(decode(esr(ec::DATA_ABORT_LOWER, 0b100001), 1, 0).kind, FaultKind::Alignment);
        assert_eq!(decode(esr(ec::SP_ALIGN, 0), 0, 4).kind, FaultKind::Alignment);
        assert_eq!(decode(esr(ec::BRK64, 0), 0, 4).kind, FaultKind::Breakpoint);
    }
}
