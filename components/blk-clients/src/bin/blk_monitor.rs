//! Powers the machine off once every client it waits for has notified it.
//! Which channels those are is patched into `blk_monitor_clients` (a
//! little-endian bit mask, bit n = channel n), e.g. for channels 0 and 1:
//! `<setvar symbol="blk_monitor_clients" bytes="0300000000000000" />`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use microkit::{debug_println, pd_name, protection_domain, ChannelSet, Handler, Infallible};

    microkit::var!(blk_monitor_clients: u64 = 0);

    struct Monitor {
        waiting_for: u64,
        done: u64,
    }

    #[protection_domain]
    fn init() -> Monitor {
        let waiting_for = *blk_monitor_clients();
        if waiting_for == 0 {
            debug_println!("{}: no clients to wait for (set blk_monitor_clients)", pd_name());
        }
        Monitor { waiting_for, done: 0 }
    }

    impl Handler for Monitor {
        type Error = Infallible;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
            self.done |= channels.0 & self.waiting_for;
            if self.waiting_for != 0 && self.done == self.waiting_for {
                debug_println!("{}: all {} clients finished, powering off", pd_name(), self.waiting_for.count_ones());
                if let Err(e) = microkit::power_off(0) {
                    debug_println!("{}: power off refused: {}", pd_name(), e.as_str());
                }
            }
            Ok(())
        }
    }
}
