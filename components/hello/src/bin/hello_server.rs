//! The README's example server: passive; answers a call with the sum of
//! the bytes the client put in the shared page.
#![no_std]
#![no_main]
use microkit::{get_mr, protection_domain, set_mr, Channel, Handler, Infallible, MessageInfo};

microkit::memory_region!(shared: 0x1000);

struct Server;

#[protection_domain]
fn init() -> Server {
    Server
}

impl Handler for Server {
    type Error = Infallible;
    fn protected(&mut self, _ch: Channel, _msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        let mut text = [0u8; 16];
        let len = (get_mr(0) as usize).min(16);
        shared().read_bytes(0, &mut text[..len]).expect("fits");
        set_mr(0, text[..len].iter().map(|&b| b as u64).sum());
        Ok(MessageInfo::new(0, 1))                // label 0, 1 register
    }
}
