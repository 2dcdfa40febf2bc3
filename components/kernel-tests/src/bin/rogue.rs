//! A hostile PD: tries, one after the other, everything a PD must not be
//! able to do. Attacks the kernel refuses come back as errors and the rogue
//! goes on; attacks that fault stop it, and its parent restarts it at the
//! next attack (the parent learns where it got to from the `progress`
//! region, and tells it where to start through `control`, which the rogue
//! can only read).
#![no_std]
#![no_main]

use abi::{layout, MessageInfo};
use microkit::syscall;
use microkit::{debug_println, protection_domain, Channel, NullHandler};

const ATTACKER: Channel = Channel::new(0);
/// A channel with the pp right to the auditor, used for the oversized call.
const AUDITOR: Channel = Channel::new(1);

/// Where the client maps its request region (the rogue has nothing there).
const CLIENT_REGION: u64 = 0x400_0000;
const READ_ONLY: u64 = 0x500_0000;
const SCRATCH: u64 = 0x600_0000;
const KERNEL: u64 = 0xffff_0000_4020_0000;

microkit::memory_region!(control: 0x1000);
microkit::memory_region!(progress: 0x1000);

pub const ATTACKS: u64 = 16;

fn refused(r: Result<(), abi::Error>) {
    match r {
        Ok(()) => debug_println!("rogue: ACCEPTED; this must not happen"),
        Err(e) => debug_println!("rogue: refused: {}", e.as_str()),
    }
}

/// Run attack `n`. The faulting ones never return.
fn attack(n: u64) {
    let mut mrs = [0u64; 4];
    // SAFETY (all blocks below): these accesses are the attacks under test;
    // the kernel stops the PD at the first one that faults.
    match n {
        0 => {
            debug_println!("rogue: attack 0: read another PD's memory (the client's region at {:#x})", CLIENT_REGION);
            unsafe { core::ptr::read_volatile(CLIENT_REGION as *const u64) };
        }
        1 => {
            debug_println!("rogue: attack 1: write another PD's memory at {:#x}", CLIENT_REGION);
            unsafe { core::ptr::write_volatile(CLIENT_REGION as *mut u64, 0xbad) };
        }
        2 => {
            debug_println!("rogue: attack 2: write a read-only region at {:#x}", READ_ONLY);
            unsafe { core::ptr::write_volatile(READ_ONLY as *mut u64, 0xbad) };
        }
        3 => {
            debug_println!("rogue: attack 3: execute from a data region at {:#x}", SCRATCH);
            // `ret` encoded, written into the data region, then jumped to.
            unsafe {
                core::ptr::write_volatile(SCRATCH as *mut u32, 0xd65f_03c0);
                core::arch::asm!("blr {a}", a = in(reg) SCRATCH, clobber_abi("C"));
            }
        }
        4 => {
            debug_println!("rogue: attack 4: read kernel memory at {:#x}", KERNEL);
            unsafe { core::ptr::read_volatile(KERNEL as *const u64) };
        }
        5 => {
            debug_println!("rogue: attack 5: write kernel memory at {:#x}", KERNEL);
            unsafe { core::ptr::write_volatile(KERNEL as *mut u64, 0xbad) };
        }
        6 => {
            let below = layout::STACK_TOP - layout::DEFAULT_STACK_SIZE - 8;
            debug_println!("rogue: attack 6: write below its stack at {:#x}", below);
            unsafe { core::ptr::write_volatile(below as *mut u64, 0xbad) };
        }
        7 => {
            debug_println!("rogue: attack 7: notify channel 7, which it does not hold");
            refused(syscall::notify(7));
        }
        8 => {
            debug_println!("rogue: attack 8: call channel 9, which it does not hold");
            refused(syscall::pp_call(9, MessageInfo::new(0, 0), &mut mrs).map(|_| ()));
        }
        9 => {
            debug_println!("rogue: attack 9: call its parent over a channel without the pp right");
            refused(syscall::pp_call(ATTACKER.index(), MessageInfo::new(0, 0), &mut mrs).map(|_| ()));
        }
        10 => {
            debug_println!("rogue: attack 10: ack an interrupt on a channel that has none");
            refused(syscall::irq_ack(ATTACKER.index()));
        }
        11 => {
            debug_println!("rogue: attack 11: ack interrupt 34 (the RTC's) as channel 34");
            refused(syscall::irq_ack(34));
        }
        12 => {
            debug_println!("rogue: attack 12: call with 65 message registers");
            refused(syscall::pp_call(AUDITOR.index(), MessageInfo::new(1, 65), &mut mrs).map(|_| ()));
        }
        13 => {
            debug_println!("rogue: attack 13: restart a PD that is not its child");
            refused(syscall::pd_restart(0));
        }
        14 => {
            debug_println!("rogue: attack 14: power the machine off");
            refused(syscall::power_off(0));
        }
        15 => {
            debug_println!("rogue: attack 15: an unknown system call");
            let code: u64;
            unsafe { core::arch::asm!("svc #0", inlateout("x0") 0u64 => code, in("x7") 1000u64) };
            refused(abi::Error::from_code(code).map_or(Ok(()), Err));
        }
        _ => {}
    }
}

#[protection_domain]
fn init() -> NullHandler {
    let start = control().read_volatile::<u64>(0).expect("in bounds");
    for n in start..ATTACKS {
        progress().write_volatile(0, n).expect("in bounds");
        attack(n);
    }
    debug_println!("rogue: all {} attacks done", ATTACKS);
    ATTACKER.notify();
    NullHandler
}
