//! Powers the machine off once every kernel test PD has reported.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};

/// faults_parent, errors, fpu_a, spinner_a, spinner_b, irq_rtc, mem_check.
const ALL: u64 = 0b111_1111;

#[protection_domain]
fn init() -> Checker {
    Checker { done: 0 }
}

struct Checker {
    done: u64,
}

impl Handler for Checker {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        self.done |= channels.0 & ALL;
        if self.done == ALL {
            debug_println!("checker: every kernel test reported, powering off");
            let _ = microkit::power_off(0);
        }
        Ok(())
    }
}
