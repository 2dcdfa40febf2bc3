//! Notifies back on every notification.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{protection_domain, Channel, ChannelSet, Handler, Infallible};

const DRIVER: Channel = Channel::new(0);

#[protection_domain]
fn init() -> Echo {
    Echo
}

struct Echo;

impl Handler for Echo {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        DRIVER.notify();
        Ok(())
    }
}
