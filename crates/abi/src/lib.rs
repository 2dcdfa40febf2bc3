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
    /// A PPC that lends memory: as [`PP_CALL`], and `x6` = the number of
    /// [`crate::Lend`] descriptors in the IPC buffer's [`crate::LEND_AREA`].
    /// Every descriptor is checked before anything happens: a bad one fails
    /// the call with [`crate::Error::InvalidLend`]. The kernel numbers the
    /// caller's lending calls (its *lease*, never 0) and gives the callee
    /// the number in `x7` of its PPC event (0 for a call that lends
    /// nothing); while the callee serves the call it reaches the `i`-th
    /// lent range through the grant handle [`crate::grant_handle`]`(lease,
    /// i)` with [`GRANT_READ`] and [`GRANT_WRITE`]. The handles die when
    /// the call ends.
    pub const PP_CALL_LEND: u64 = 11;
    /// Copy from a grant into this PD's own memory: `x0` handle, `x1`
    /// offset in the grant, `x2` destination address, `x3` length.
    pub const GRANT_READ: u64 = 12;
    /// Copy from this PD's own memory into a grant lent with the write
    /// right: `x0` handle, `x1` offset in the grant, `x2` source address,
    /// `x3` length.
    pub const GRANT_WRITE: u64 = 13;
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
    /// A grant handle names no grant this PD holds now: stale (its call
    /// ended), forged, or never given.
    InvalidGrant = 8,
    /// An offset and length outside the grant.
    OutOfRange = 9,
    /// The PD's own buffer for a grant copy is not mapped with the rights
    /// the copy needs (writable to copy into, readable to copy from).
    InvalidBuffer = 10,
    /// A lend descriptor names no region the channel lends, asks for more
    /// rights than the channel allows, or lies outside its region.
    InvalidLend = 11,
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
            8 => Error::InvalidGrant,
            9 => Error::OutOfRange,
            10 => Error::InvalidBuffer,
            11 => Error::InvalidLend,
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
            Error::InvalidGrant => "no such grant",
            Error::OutOfRange => "outside the grant",
            Error::InvalidBuffer => "buffer not mapped with the needed rights",
            Error::InvalidLend => "invalid lend",
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

/// Lend descriptors one [`sys::PP_CALL_LEND`] carries at most.
pub const MAX_LENDS: usize = 64;

/// Byte range of the IPC buffer that holds the [`Lend`] descriptors of a
/// [`sys::PP_CALL_LEND`]: after the message registers.
pub const LEND_AREA: core::ops::Range<usize> = MAX_MRS * 8..MAX_MRS * 8 + MAX_LENDS * 16;

/// Byte range of the IPC buffer that holds text for `DEBUG_PUTS`: the part
/// after the message registers and the lend descriptors.
pub const DEBUG_AREA: core::ops::Range<usize> = LEND_AREA.end..4096;

/// Grant rights: the callee may copy out of the lent range.
pub const GRANT_READ: u8 = 1 << 0;
/// Grant rights: the callee may copy into the lent range.
pub const GRANT_WRITE: u8 = 1 << 1;

/// One range a [`sys::PP_CALL_LEND`] lends: part of the `lend`-th region
/// the channel may lend (the `<lend>`s of the `<channel>`, in order), with
/// `rights` ([`GRANT_READ`], optionally with [`GRANT_WRITE`]) no wider than
/// the channel's. 16 bytes, little-endian, in the IPC buffer's
/// [`LEND_AREA`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Lend {
    pub lend: u16,
    pub rights: u8,
    pub _reserved: u8,
    pub len: u32,
    pub offset: u64,
}

impl Lend {
    /// The descriptor as the two words the IPC buffer holds.
    pub const fn to_words(self) -> [u64; 2] {
        [self.lend as u64 | (self.rights as u64) << 16 | (self._reserved as u64) << 24 | (self.len as u64) << 32, self.offset]
    }

    pub const fn from_words(w: [u64; 2]) -> Lend {
        Lend { lend: w[0] as u16, rights: (w[0] >> 16) as u8, _reserved: (w[0] >> 24) as u8, len: (w[0] >> 32) as u32, offset: w[1] }
    }
}

/// The handle a callee uses for the `index`-th range lent with lease
/// `lease` (see [`sys::PP_CALL_LEND`]).
pub const fn grant_handle(lease: u32, index: usize) -> u64 {
    (lease as u64) << 8 | (index as u64 & 0xff)
}

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
    /// `x1` = channel id, `x2` = message info, `x3..x6` = registers 0-3,
    /// `x7` = the lease of a call that lends memory, else 0 (see
    /// [`crate::sys::PP_CALL_LEND`]).
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
    /// Serving a protected procedure call took longer than the PD's
    /// `call_budget`.
    BudgetExceeded = 12,
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
            12 => FaultKind::BudgetExceeded,
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
            FaultKind::BudgetExceeded => "ran past its call budget",
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
    fn lend_descriptors_round_trip_through_their_words() {
        let l = Lend { lend: 3, rights: GRANT_READ | GRANT_WRITE, _reserved: 0, len: 8192, offset: 0x1_0000_1000 };
        assert_eq!(Lend::from_words(l.to_words()), l);
        assert_eq!(l.to_words()[0], 3 | 3 << 16 | 8192 << 32);
        assert_eq!(grant_handle(7, 2), 0x702);
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
            Error::InvalidGrant,
            Error::OutOfRange,
            Error::InvalidBuffer,
            Error::InvalidLend,
        ] {
            assert_eq!(Error::from_code(e as u64), Some(e));
        }
        assert_eq!(Error::from_code(0), None);
    }
}
