//! The README's example client: writes "hi" into the page it shares with
//! the server, calls it, prints the answer and powers off.
#![no_std]
#![no_main]
use microkit::{debug_println, get_mr, protection_domain, set_mr, Channel, MessageInfo, NullHandler};

const SERVER: Channel = Channel::new(0);          // the id this PD's <end> gives the channel
microkit::memory_region!(shared: 0x1000);         // patched by setvar_vaddr="shared"

#[protection_domain]
fn init() -> NullHandler {
    shared().write_bytes(0, b"hi").expect("fits");
    set_mr(0, 2);                                 // message register 0
    let reply = SERVER.pp_call(MessageInfo::new(1, 1)); // label 1, 1 message register
    debug_println!("client: server answered {} (label {})", get_mr(0), reply.label());
    let _ = microkit::power_off(0);               // needs can_power_off="true"
    NullHandler
}
