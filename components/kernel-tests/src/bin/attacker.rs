//! Parent of the rogue: each time the kernel stops it, restarts it at the
//! next attack; when the rogue has tried everything, powers off.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, fault_info, protection_domain, ChannelSet, Child, Handler, Infallible, MessageInfo};

const ROGUE: Child = Child::new(0);

microkit::memory_region!(control: 0x1000);
microkit::memory_region!(progress: 0x1000);

#[protection_domain]
fn init() -> Attacker {
    Attacker { stopped: 0 }
}

struct Attacker {
    stopped: u64,
}

impl Handler for Attacker {
    type Error = Infallible;

    fn fault(&mut self, child: Child, _msg: MessageInfo) -> Result<Option<MessageInfo>, Infallible> {
        let f = fault_info();
        let at = progress().read_volatile::<u64>(0).expect("in bounds");
        self.stopped += 1;
        debug_println!("attacker: the kernel stopped rogue at attack {} ({}); restarting it at the next", at, f.kind.as_str());
        control().write_volatile(0, at + 1).expect("in bounds");
        if child == ROGUE {
            child.restart().expect("our child");
        }
        Ok(None)
    }

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        debug_println!("attacker: rogue finished; {} attacks stopped by the kernel, the others refused", self.stopped);
        let _ = microkit::power_off(0);
        Ok(())
    }
}
