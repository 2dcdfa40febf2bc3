//! Parent of `worker`: when the worker faults, records the attempt in the
//! control region the worker can only read, and restarts it.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, fault_info, protection_domain, Channel, ChannelSet, Child, Handler, Infallible, MessageInfo};

const WORKER: Child = Child::new(0);
const WORKER_DONE: Channel = Channel::new(0);
const MONITOR: Channel = Channel::new(1);

microkit::memory_region!(control: 0x1000);

#[protection_domain]
fn init() -> Supervisor {
    Supervisor
}

struct Supervisor;

impl Handler for Supervisor {
    type Error = Infallible;

    fn fault(&mut self, child: Child, _msg: MessageInfo) -> Result<Option<MessageInfo>, Infallible> {
        let f = fault_info();
        debug_println!(
            "supervisor: worker faulted ({} at {:#x}), restarting it",
            f.kind.as_str(),
            f.address
        );
        let attempt = control().read_volatile::<u64>(0).expect("in bounds");
        control().write_volatile(0, attempt + 1).expect("in bounds");
        if child == WORKER {
            child.restart().expect("worker is our child");
        }
        Ok(None)
    }

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
        if channels.contains(WORKER_DONE) {
            debug_println!("supervisor: worker succeeded after its restart");
            MONITOR.notify();
        }
        Ok(())
    }
}
