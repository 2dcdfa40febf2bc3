//! A passive server: on a PPC it reads the request from the shared region,
//! asks the auditor for a ticket (a nested PPC), writes its answer back into
//! the region and replies with the answer's length.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, get_mr, protection_domain, set_mr, Channel, Handler, Infallible, MessageInfo};

const CLIENT: Channel = Channel::new(0);
const AUDITOR: Channel = Channel::new(1);
const UPPERCASE: u64 = 1;
const OK: u64 = 0;
const BAD_REQUEST: u64 = 1;

microkit::memory_region!(request: 0x1000);

#[protection_domain]
fn init() -> Server {
    debug_println!("server: ready (passive)");
    Server
}

struct Server;

impl Handler for Server {
    type Error = Infallible;

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        let len = get_mr(0) as usize;
        if channel != CLIENT || msg.label() != UPPERCASE || len > 64 {
            return Ok(MessageInfo::new(BAD_REQUEST, 0));
        }
        let mut text = [0u8; 128];
        request().read_bytes(0, &mut text[..len]).expect("checked length");
        debug_println!("server: request of {} bytes, asking the auditor for a ticket", len);
        set_mr(0, len as u64);
        AUDITOR.pp_call(MessageInfo::new(0, 1));
        let ticket = get_mr(0);
        text[..len].make_ascii_uppercase();
        let mut answer = Buf { bytes: text, len };
        use core::fmt::Write;
        let _ = write!(answer, " (ticket {})", ticket);
        request().write_bytes(0, &answer.bytes[..answer.len]).expect("fits the region");
        set_mr(0, answer.len as u64);
        Ok(MessageInfo::new(OK, 1))
    }
}

/// Formatting into a fixed buffer.
struct Buf {
    bytes: [u8; 128],
    len: usize,
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(core::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
