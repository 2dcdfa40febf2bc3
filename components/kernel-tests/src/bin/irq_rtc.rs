//! Drives the PL031 real-time clock through a device region mapped uncached
//! and its interrupt bound in system.xml: two alarms, each delivered as a
//! notification and re-enabled with irq_ack.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible};

const RTC_IRQ: Channel = Channel::new(0);
const CHECKER: Channel = Channel::new(1);
const ALARMS: u32 = 2;

// PL031 registers.
const DR: usize = 0x00;
const MR: usize = 0x04;
const IMSC: usize = 0x10;
const MIS: usize = 0x18;
const ICR: usize = 0x1c;

microkit::memory_region!(rtc: 0x1000);

fn set_alarm() {
    let now = rtc().read_volatile::<u32>(DR).expect("in bounds");
    rtc().write_volatile(MR, now + 1).expect("in bounds");
    rtc().write_volatile(IMSC, 1u32).expect("in bounds");
}

#[protection_domain]
fn init() -> Alarm {
    set_alarm();
    debug_println!("irq_rtc: alarm set");
    Alarm { alarms: 0 }
}

struct Alarm {
    alarms: u32,
}

impl Handler for Alarm {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        if !channels.contains(RTC_IRQ) {
            return Ok(());
        }
        self.alarms += 1;
        let pending = rtc().read_volatile::<u32>(MIS).expect("in bounds");
        debug_println!("irq_rtc: alarm interrupt {} received (masked status {})", self.alarms, pending);
        rtc().write_volatile(ICR, 1u32).expect("in bounds");
        RTC_IRQ.irq_ack().expect("our irq");
        if self.alarms < ALARMS {
            set_alarm();
        } else {
            CHECKER.notify();
        }
        Ok(())
    }
}
