//! Answers every PPC at once; declared passive or active in the system.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{protection_domain, Channel, Handler, Infallible, MessageInfo};

#[protection_domain]
fn init() -> Server {
    Server
}

struct Server;

impl Handler for Server {
    type Error = Infallible;

    fn protected(&mut self, _ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        Ok(MessageInfo::new(msg.label() + 1, 0))
    }
}
