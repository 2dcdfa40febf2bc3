//! Burns CPU in laps, printing after each; two of these at one priority
//! must take turns (round robin on the timer tick).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, pd_name, protection_domain, Channel, NullHandler};

const CHECKER: Channel = Channel::new(0);
const LAPS: u32 = 3;
/// Long enough to span several 10 ms ticks per lap.
const SPIN: u64 = 20_000_000;

#[protection_domain]
fn init() -> NullHandler {
    for lap in 1..=LAPS {
        for i in 0..SPIN {
            core::hint::black_box(i);
        }
        debug_println!("{}: lap {}", pd_name(), lap);
    }
    CHECKER.notify();
    NullHandler
}
