//! An active server of higher priority than the server: hands out ticket
//! numbers, so the server's request is a nested PPC.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, get_mr, protection_domain, set_mr, Channel, Handler, Infallible, MessageInfo};

#[protection_domain]
fn init() -> Auditor {
    Auditor { tickets: 0 }
}

struct Auditor {
    tickets: u64,
}

impl Handler for Auditor {
    type Error = Infallible;

    fn protected(&mut self, _channel: Channel, _msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        self.tickets += 1;
        debug_println!("auditor: ticket {} for a {}-byte request", self.tickets, get_mr(0));
        set_mr(0, self.tickets);
        Ok(MessageInfo::new(0, 1))
    }
}
