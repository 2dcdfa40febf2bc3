//! The contract between the kernel and the code running in protection
//! domains (PDs): system-call numbers, error codes, the message-info word,
//! the events `recv` returns, fault kinds and the fixed part of every PD's
//! address space.
//!
//! Everything here is plain data shared by the kernel, the component API
//! (`microkit`) and the host tool, so the three cannot drift apart.
#![no_std]
#![forbid(unsafe_code)]

/// System-call numbers, passed in `x7` to `svc #0`.
pub mod sys {
    /// Print bytes: `x0` = length; the bytes sit in the IPC buffer's debug
    /// area (see [`crate::DEBUG_AREA`]), so printing never disturbs message
    /// registers.
    pub const DEBUG_PUTS: u64 = 0;
    /// Signal the PD at the other end of channel `x0`.
    pub const NOTIFY: u64 = 1;
    /// Protected procedure call on channel `x0` with message info `x1` and
    /// message registers 0-3 in `x2..x5`, the rest in the IPC buffer.
    pub const PP_CALL: u64 = 2;
    /// Wait for the next event (see [`crate::event`]).
    pub const RECV: u64 = 3;
    /// Reply to the PPC being served (message info `x0`, registers 0-3 in
    /// `x2..x5`), then wait for the next event.
    pub const REPLY_RECV: u64 = 4;
    /// Re-enable the interrupt bound to channel `x0`.
    pub const IRQ_ACK: u64 = 5;
    /// Restart child `x0` from its entry point with its writable memory
    /// restored to the image's initial contents.
    pub const PD_RESTART: u64 = 6;
    /// Stop child `x0`; it stays stopped until restarted.
    pub const PD_STOP: u64 = 7;
    /// Power the machine off with exit status `x0` (needs the
    /// `can_power_off` right in the system description).
    pub const POWER_OFF: u64 = 8;
    /// Reply to a child's fault and let the child continue where it stopped.
    pub const FAULT_RESUME: u64 = 9;
    /// A deferred signal, then wait: on channel `x0`, notify the peer (a PD
    /// channel) or re-enable the interrupt (an IRQ channel), then wait for
    /// the next event as [`RECV`] does. One kernel entry instead of two for
    /// the common "tell the other side, then sleep" of an event loop. If
    /// the signal is refused the PD does not wait: it gets a
    /// [`crate::event::REFUSED`] event carrying the error.
    pub const SIGNAL_RECV: u64 = 10;
}

/// Status returned in `x0` by every system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    /// The channel id is out of range or the PD holds no channel with it.
    InvalidChannel = 1,
    /// The PD lacks the right: the channel does not carry this operation
    /// (notify, PPC, IRQ ack), or the PD may not power off, or the child
    /// is not in a state that allows it.
    NotPermitted = 2,
    /// The message info is malformed: more than [`MAX_MRS`] registers or
    /// reserved bits set.
    InvalidMessage = 3,
    /// `reply` without a PPC being served.
    NoCaller = 4,
    /// The callee faulted while serving the call.
    CalleeFaulted = 5,
    /// The child id names no child of the calling PD.
    InvalidChild = 6,
    /// Unknown system-call number.
    InvalidSyscall = 7,
}

impl Error {
    /// Decode a non-zero status word.
    pub fn from_code(code: u64) -> Option<Error> {
        Some(match code {
            1 => Error::InvalidChannel,
            2 => Error::NotPermitted,
            3 => Error::InvalidMessage,
            4 => Error::NoCaller,
            5 => Error::CalleeFaulted,
            6 => Error::InvalidChild,
            7 => Error::InvalidSyscall,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Error::InvalidChannel => "invalid channel",
            Error::NotPermitted => "not permitted",
            Error::InvalidMessage => "invalid message info",
            Error::NoCaller => "no caller to reply to",
            Error::CalleeFaulted => "callee faulted",
            Error::InvalidChild => "invalid child",
            Error::InvalidSyscall => "invalid system call",
        }
    }
}

/// Channel ids run from 0 to `MAX_CHANNELS - 1` in each PD.
pub const MAX_CHANNELS: usize = 62;
/// A system has at most this many protection domains.
pub const MAX_PDS: usize = 63;
/// Message registers per message.
pub const MAX_MRS: usize = 64;
/// Message registers carried in CPU registers (`x2..x5`); the rest travel
/// through the IPC buffer.
pub const MRS_IN_REGS: usize = 4;

/// Byte range of the IPC buffer that holds text for `DEBUG_PUTS`: the part
/// after the message registers.
pub const DEBUG_AREA: core::ops::Range<usize> = MAX_MRS * 8..4096;

/// The message-info word: a 52-bit label and a register count.
///
/// Layout: `label << 12 | count`; bits 7..12 are reserved and must be zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageInfo(u64);

impl MessageInfo {
    const COUNT_BITS: u64 = 12;
    pub const MAX_LABEL: u64 = (1 << 52) - 1;

    /// A message with `label` (truncated to 52 bits) and `count` registers.
    pub const fn new(label: u64, count: usize) -> Self {
        MessageInfo(((label & Self::MAX_LABEL) << Self::COUNT_BITS) | (count as u64 & 0x7f))
    }
    pub const fn from_raw(raw: u64) -> Self {
        MessageInfo(raw)
    }
    pub const fn raw(self) -> u64 {
        self.0
    }
    pub const fn label(self) -> u64 {
        self.0 >> Self::COUNT_BITS
    }
    pub const fn count(self) -> usize {
        (self.0 & 0x7f) as usize
    }
    /// Whether the kernel accepts this word: count within [`MAX_MRS`] and
    /// no reserved bits set.
    pub const fn is_valid(self) -> bool {
        self.0 & 0xf80 == 0 && self.count() <= MAX_MRS
    }
}

/// What `recv` / `reply_recv` returns in `x0`; the other registers depend
/// on the kind.
pub mod event {
    /// `x1` = bit set of channels that were notified (bit n = channel n).
    pub const NOTIFIED: u64 = 0;
    /// `x1` = channel id, `x2` = message info, `x3..x6` = registers 0-3.
    pub const PPC: u64 = 1;
    /// `x1` = child id, `x2` = message info, `x3..x6` = registers 0-3
    /// describing the fault (see [`crate::FaultInfo`]).
    pub const FAULT: u64 = 2;
    /// `x1` = the [`crate::Error`] that refused a
    /// [`crate::sys::SIGNAL_RECV`]'s signal; the PD did not wait.
    pub const REFUSED: u64 = 3;
}

/// What went wrong when a PD faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum FaultKind {
    /// Read from an address with no mapping.
    UnmappedRead = 1,
    /// Write to an address with no mapping.
    UnmappedWrite = 2,
    /// Write to memory mapped without the write right.
    WriteToReadOnly = 3,
    /// Read from memory mapped without the read right (e.g. kernel memory).
    ReadNotPermitted = 4,
    /// Instruction fetch from an address with no mapping.
    UnmappedExecute = 5,
    /// Instruction fetch from memory mapped without the execute right.
    ExecuteNotPermitted = 6,
    /// An instruction the CPU does not know or EL0 may not run.
    UndefinedInstruction = 7,
    /// Misaligned stack pointer, PC or data access.
    Alignment = 8,
    /// A breakpoint instruction (`brk`).
    Breakpoint = 9,
    /// Anything else; the ESR tells more.
    Other = 10,
    /// Any access to the kernel's half of the address space.
    KernelAddress = 11,
}

impl FaultKind {
    pub fn from_code(code: u64) -> FaultKind {
        match code {
            1 => FaultKind::UnmappedRead,
            2 => FaultKind::UnmappedWrite,
            3 => FaultKind::WriteToReadOnly,
            4 => FaultKind::ReadNotPermitted,
            5 => FaultKind::UnmappedExecute,
            6 => FaultKind::ExecuteNotPermitted,
            7 => FaultKind::UndefinedInstruction,
            8 => FaultKind::Alignment,
            9 => FaultKind::Breakpoint,
            11 => FaultKind::KernelAddress,
            _ => FaultKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::UnmappedRead => "read from unmapped address",
            FaultKind::UnmappedWrite => "write to unmapped address",
            FaultKind::WriteToReadOnly => "write to read-only memory",
            FaultKind::ReadNotPermitted => "read not permitted",
            FaultKind::UnmappedExecute => "execute from unmapped address",
            FaultKind::ExecuteNotPermitted => "execute from non-executable memory",
            FaultKind::UndefinedInstruction => "undefined instruction",
            FaultKind::Alignment => "alignment fault",
            FaultKind::Breakpoint => "breakpoint",
            FaultKind::Other => "unknown fault",
            FaultKind::KernelAddress => "access to kernel memory",
        }
    }
}

/// The fault message a parent receives: label [`FAULT_LABEL`], registers
/// 0-3 = kind, faulting address, PC, raw ESR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    pub kind: FaultKind,
    pub address: u64,
    pub pc: u64,
    pub esr: u64,
}

/// Label of the message that carries a [`FaultInfo`].
pub const FAULT_LABEL: u64 = 0xfa017;

/// The fixed part of every PD's address space. The tool refuses maps that
/// overlap it.
pub mod layout {
    pub const PAGE_SIZE: u64 = 4096;
    /// Where the component linker script places program images.
    pub const PROGRAM_BASE: u64 = 0x20_0000;
    /// The initial stack pointer; the stack grows down from here.
    pub const STACK_TOP: u64 = 0x10_0000_0000;
    /// One unmapped guard page separates the stack top from the IPC buffer.
    pub const IPC_BUFFER: u64 = STACK_TOP + PAGE_SIZE;
    /// User addresses are below this (48-bit lower half).
    pub const USER_TOP: u64 = 1 << 47;
    /// Default and limits of `stack_size`.
    pub const DEFAULT_STACK_SIZE: u64 = 0x4000;
    pub const MIN_STACK_SIZE: u64 = 0x1000;
    pub const MAX_STACK_SIZE: u64 = 0x100_0000;

    // The guard page must stay unmapped and everything must fit below USER_TOP.
    const _: () = assert!(IPC_BUFFER >= STACK_TOP + PAGE_SIZE);
    const _: () = assert!(IPC_BUFFER + PAGE_SIZE <= USER_TOP);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_info_round_trips_label_and_count() {
        let m = MessageInfo::new(0xabc, 7);
        assert_eq!(m.label(), 0xabc);
        assert_eq!(m.count(), 7);
        assert!(m.is_valid());
        assert_eq!(MessageInfo::from_raw(m.raw()), m);
    }

    #[test]
    fn count_over_limit_is_invalid() {
        assert!(MessageInfo::new(1, 64).is_valid());
        assert!(!MessageInfo::new(1, 65).is_valid());
        assert!(!MessageInfo::from_raw(0x100).is_valid(), "reserved bit 8");
    }

    #[test]
    fn label_is_truncated_to_52_bits() {
        assert_eq!(MessageInfo::new(u64::MAX, 0).label(), MessageInfo::MAX_LABEL);
    }

    #[test]
    fn error_codes_round_trip() {
        for e in [
            Error::InvalidChannel,
            Error::NotPermitted,
            Error::InvalidMessage,
            Error::NoCaller,
            Error::CalleeFaulted,
            Error::InvalidChild,
            Error::InvalidSyscall,
        ] {
            assert_eq!(Error::from_code(e as u64), Some(e));
        }
        assert_eq!(Error::from_code(0), None);
    }
}
