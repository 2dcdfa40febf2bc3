//! Measures PPC round trips (passive and active server) and notification
//! round trips, in instructions per round trip, then powers off.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use bench::{cycles, ROUNDS, WARMUP};
use microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible, MessageInfo};

const PASSIVE: Channel = Channel::new(0);
const ACTIVE: Channel = Channel::new(1);
const ECHO: Channel = Channel::new(2);

fn ppc_roundtrip(server: Channel) -> u64 {
    for _ in 0..WARMUP {
        server.pp_call(MessageInfo::new(1, 0));
    }
    let start = cycles();
    for _ in 0..ROUNDS {
        server.pp_call(MessageInfo::new(1, 0));
    }
    (cycles() - start) / ROUNDS
}

#[protection_domain]
fn init() -> Driver {
    debug_println!("ppc_roundtrip_passive: {}", ppc_roundtrip(PASSIVE));
    debug_println!("ppc_roundtrip_active: {}", ppc_roundtrip(ACTIVE));
    ECHO.notify();
    Driver { round: 0, start: 0 }
}

/// Counts notification round trips: each echo answer starts the next.
struct Driver {
    round: u64,
    start: u64,
}

impl Handler for Driver {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        self.round += 1;
        if self.round == WARMUP {
            self.start = cycles();
        }
        if self.round == WARMUP + ROUNDS {
            debug_println!("notify_roundtrip: {}", (cycles() - self.start) / ROUNDS);
            let _ = microkit::power_off(0);
        } else {
            ECHO.notify();
        }
        Ok(())
    }
}
