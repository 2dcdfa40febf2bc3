//! A child PD that faults on its first run: it writes to its control
//! region, which it may only read. Restarted by its parent with fresh
//! memory, it then succeeds.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};
use microkit::{debug_println, protection_domain, Channel, NullHandler};

const SUPERVISOR: Channel = Channel::new(0);

microkit::memory_region!(control: 0x1000);

/// Starts at 7 in the image; every run adds one. After a restart it must
/// read 8 again, proving the writable memory was restored.
static RUNS: AtomicU32 = AtomicU32::new(7);

#[protection_domain]
fn init() -> NullHandler {
    let runs = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    let attempt = control().read_volatile::<u64>(0).expect("in bounds");
    debug_println!("worker: attempt {}, run counter {}", attempt, runs);
    if attempt == 0 {
        debug_println!("worker: writing to my read-only control region");
        let _ = control().write_volatile(0, 0xbadu64);
        debug_println!("worker: the write went through; this must not happen");
    } else {
        debug_println!("worker: succeeded on attempt {}", attempt);
        SUPERVISOR.notify();
    }
    NullHandler
}
