//! A passive PD: it must not run on a notification, only when called.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, set_mr, with_msg_regs_mut, Channel, ChannelSet, Handler, Infallible, MessageInfo};

/// Label of a call that asks for the message registers back, reversed.
const REVERSE: u64 = 2;

#[protection_domain]
fn init() -> Probe {
    Probe { notifications: 0 }
}

struct Probe {
    notifications: u64,
}

impl Handler for Probe {
    type Error = Infallible;

    fn protected(&mut self, _ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        if msg.label() == REVERSE {
            let n = msg.count();
            with_msg_regs_mut(|r| r[..n].reverse());
            return Ok(MessageInfo::new(REVERSE, n));
        }
        debug_println!("passive_probe: called");
        set_mr(0, self.notifications);
        Ok(MessageInfo::new(0, 1))
    }

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        self.notifications += 1;
        debug_println!("passive_probe: notification delivered after the call");
        Ok(())
    }
}
