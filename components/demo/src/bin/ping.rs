//! Notification ping-pong, the ping side: starts, counts the pongs, and
//! tells the monitor when the rounds are done.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible};

const PONG: Channel = Channel::new(0);
const MONITOR: Channel = Channel::new(1);
const ROUNDS: u32 = 3;

#[protection_domain]
fn init() -> Ping {
    debug_println!("ping: round 1, notifying pong");
    PONG.notify();
    Ping { round: 1 }
}

struct Ping {
    round: u32,
}

impl Handler for Ping {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        if channels.contains(PONG) {
            debug_println!("ping: pong answered round {}", self.round);
            if self.round == ROUNDS {
                debug_println!("ping: ping-pong done after {} rounds", ROUNDS);
                MONITOR.notify();
            } else {
                self.round += 1;
                debug_println!("ping: round {}, notifying pong", self.round);
                PONG.notify();
            }
        }
        Ok(())
    }
}
