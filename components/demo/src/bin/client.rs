//! Writes a request into the region it shares with the server, calls the
//! server (a PPC into a passive PD), and reads the answer back.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use microkit::{debug_println, get_mr, protection_domain, set_mr, Channel, MessageInfo, NullHandler};

const SERVER: Channel = Channel::new(0);
const MONITOR: Channel = Channel::new(1);
/// Label of an "upper-case this" request.
const UPPERCASE: u64 = 1;

microkit::memory_region!(request: 0x1000);

#[protection_domain]
fn init() -> NullHandler {
    let text = b"hello from the client";
    request().write_bytes(0, text).expect("fits the region");
    debug_println!("client: wrote a {}-byte request, calling the server", text.len());
    set_mr(0, text.len() as u64);
    let reply = SERVER.pp_call(MessageInfo::new(UPPERCASE, 1));
    let len = get_mr(0) as usize;
    let mut answer = [0u8; 128];
    let answer = &mut answer[..len.min(128)];
    request().read_bytes(0, answer).expect("fits the region");
    debug_println!(
        "client: server answered (label {}): {}",
        reply.label(),
        core::str::from_utf8(answer).unwrap_or("<not UTF-8>")
    );
    MONITOR.notify();
    NullHandler
}
