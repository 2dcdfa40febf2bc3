//! Waits for every part of the demo to report, then powers the machine off.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};

/// One channel per part of the demo: ping-pong, client/server, supervisor,
/// and the two storage verify clients.
const PARTS: u64 = 0b1_1111;

#[protection_domain]
fn init() -> Monitor {
    Monitor { done: 0 }
}

struct Monitor {
    done: u64,
}

impl Handler for Monitor {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        self.done |= channels.0 & PARTS;
        if self.done == PARTS {
            debug_println!("monitor: all parts of the demo finished, powering off");
            if let Err(e) = microkit::power_off(0) {
                debug_println!("monitor: power off refused: {}", e.as_str());
            }
        }
        Ok(())
    }
}
