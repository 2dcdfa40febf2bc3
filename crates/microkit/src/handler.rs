//! The `Handler` trait: what a PD does when events arrive.

use crate::channel::{Channel, ChannelSet, Child};
use abi::MessageInfo;
use core::fmt::Debug;

pub trait Handler {
    type Error: Debug;

    /// Notifications arrived on `channels`.
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        panic!("unexpected notification on {:#x}", channels.0)
    }

    /// A protected procedure call on `channel`; the return value is the
    /// reply (with message registers set through `set_mr`).
    fn protected(&mut self, channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        panic!("unexpected protected procedure call on channel {} (label {})", channel.index(), msg_info.label())
    }

    /// Child `child` faulted; `msg_info` has label `FAULT_LABEL` and message
    /// registers 0-3 describe the fault (see [`crate::FaultInfo`] and
    /// `fault_info`). Return `Some(reply)` to let the child continue where
    /// it stopped, `None` to leave it stopped (or restarted).
    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        panic!("unexpected fault from child {} (label {:#x})", child.index(), msg_info.label())
    }
}

/// A handler for PDs that only run their `init`.
pub struct NullHandler;

impl Handler for NullHandler {
    type Error = core::convert::Infallible;
}
