//! Notification ping-pong, the pong side: answers every ping.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible};

const PING: Channel = Channel::new(0);

#[protection_domain]
fn init() -> Pong {
    Pong { pings: 0 }
}

struct Pong {
    pings: u32,
}

impl Handler for Pong {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        if channels.contains(PING) {
            self.pings += 1;
            debug_println!("pong: ping {} received, notifying ping", self.pings);
            PING.notify();
        }
        Ok(())
    }
}
