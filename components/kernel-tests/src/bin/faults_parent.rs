//! Parent of the faulting children: reports each fault it receives, leaves
//! the child stopped, and tells the checker once all have been reported.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, fault_info, protection_domain, Channel, Child, Handler, Infallible, MessageInfo, FAULT_LABEL};

const CHECKER: Channel = Channel::new(0);
const CHILDREN: u32 = 5;

#[protection_domain]
fn init() -> Parent {
    Parent { faults: 0 }
}

struct Parent {
    faults: u32,
}

impl Handler for Parent {
    type Error = Infallible;

    fn fault(&mut self, child: Child, msg: MessageInfo) -> Result<Option<MessageInfo>, Infallible> {
        let f = fault_info();
        assert_eq!(msg.label(), FAULT_LABEL);
        debug_println!("faults_parent: child {} reported: {} at {:#x}", child.index(), f.kind.as_str(), f.address);
        self.faults += 1;
        if self.faults == CHILDREN {
            debug_println!("faults_parent: all {} faults reported", CHILDREN);
            CHECKER.notify();
        }
        Ok(None)
    }
}
