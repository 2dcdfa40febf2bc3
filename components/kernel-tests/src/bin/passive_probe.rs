//! A passive PD: it must not run on a notification, only when called.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, set_mr, Channel, ChannelSet, Handler, Infallible, MessageInfo};

#[protection_domain]
fn init() -> Probe {
    Probe { notifications: 0 }
}

struct Probe {
    notifications: u64,
}

impl Handler for Probe {
    type Error = Infallible;

    fn protected(&mut self, _ch: Channel, _msg: MessageInfo) -> Result<MessageInfo, Infallible> {
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
