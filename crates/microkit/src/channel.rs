//! Channels and children: the handles a PD uses to reach others.

use crate::ipc_buffer::{load_reg_mrs, store_reg_mrs};
use crate::syscall;
use abi::{Error, MessageInfo};

/// One end of a channel declared in the system description, by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Channel(usize);

impl Channel {
    pub const fn new(index: usize) -> Self {
        Channel(index)
    }

    pub const fn index(&self) -> usize {
        self.0
    }

    /// Signal the other end. A channel this PD does not hold, or one without
    /// the notify right, is ignored; use [`Channel::try_notify`] to see why.
    pub fn notify(&self) {
        let _ = self.try_notify();
    }

    pub fn try_notify(&self) -> Result<(), Error> {
        syscall::notify(self.0)
    }

    /// Protected procedure call: the other end runs its `protected` handler
    /// and its reply comes back. Message registers go out from and come back
    /// into this PD's IPC buffer (`set_mr` / `get_mr`).
    ///
    /// Panics if the kernel refuses the call; [`Channel::try_pp_call`]
    /// returns the error instead.
    pub fn pp_call(&self, msg_info: MessageInfo) -> MessageInfo {
        match self.try_pp_call(msg_info) {
            Ok(reply) => reply,
            Err(e) => panic!("pp_call on channel {}: {}", self.0, e.as_str()),
        }
    }

    pub fn try_pp_call(&self, msg_info: MessageInfo) -> Result<MessageInfo, Error> {
        let mut regs = load_reg_mrs();
        let reply = syscall::pp_call(self.0, msg_info, &mut regs)?;
        store_reg_mrs(regs);
        Ok(reply)
    }

    /// A PPC that lends the callee memory for the call: `lends` are checked
    /// by the kernel against the `<lend>`s of this channel (see
    /// `abi::sys::PP_CALL_LEND`), and the callee reaches the `i`-th as
    /// [`crate::Grant::lent`]`(i)`.
    pub fn try_pp_call_lend(&self, msg_info: MessageInfo, lends: &[abi::Lend]) -> Result<MessageInfo, Error> {
        if lends.len() > abi::MAX_LENDS {
            return Err(Error::InvalidLend);
        }
        crate::ipc_buffer::write_lends(lends);
        let mut regs = load_reg_mrs();
        let reply = syscall::pp_call_lend(self.0, msg_info, &mut regs, lends.len())?;
        store_reg_mrs(regs);
        Ok(reply)
    }

    /// Re-enable the interrupt bound to this channel.
    pub fn irq_ack(&self) -> Result<(), IrqAckError> {
        syscall::irq_ack(self.0).map_err(IrqAckError)
    }
}

/// `irq_ack` on a channel without an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqAckError(pub Error);

/// The set of channels a notification came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSet(pub u64);

impl ChannelSet {
    pub fn contains(&self, channel: Channel) -> bool {
        channel.0 < 64 && self.0 & (1 << channel.0) != 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Channel> {
        let bits = self.0;
        (0..64).filter(move |i| bits & (1 << i) != 0).map(Channel)
    }
}

/// A child PD (nested in this one in the system description), by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Child(usize);

impl Child {
    pub const fn new(index: usize) -> Self {
        Child(index)
    }

    pub const fn index(&self) -> usize {
        self.0
    }

    /// Restart the child from its entry point with its writable memory
    /// restored to the image's initial contents.
    pub fn restart(&self) -> Result<(), Error> {
        syscall::pd_restart(self.0)
    }

    /// Stop the child until it is restarted.
    pub fn stop(&self) -> Result<(), Error> {
        syscall::pd_stop(self.0)
    }
}
