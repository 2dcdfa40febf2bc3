//! A filter that misuses its grants: during the first write it is lent, it
//! tries every way to reach more than the request's data with more than its
//! rights, and one handle it keeps is tried again in the next upcall. Each
//! attempt must be refused with an error (and printed as such); the
//! filter then lets every request through, so its disk's client finds its
//! data as it wrote it. Before the attacks it checks the kernel's copy
//! itself: reads of many lengths, offsets and buffer alignments must give
//! the same bytes as one read of the whole block, and nothing around them;
//! and the SIMD registers the kernel's copy loop borrows (v0-v3) must hold
//! the filter's own values after a read.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use blk::filter::{Filter, Io, RequestData, Verdict};
use blk::{Op, BLOCK_SIZE};
use microkit::{debug_println, Grant};

blk::filter_manifest!("hooks=pre", "ops=write", "params=", "bounce=0");

/// Read-only memory of this PD's own.
static READ_ONLY: [u8; 64] = [7; 64];

struct Attacker {
    /// The handle of the first attacked write, kept past its call.
    kept: Option<u64>,
    done: bool,
}

fn refused(what: &str, result: Result<(), microkit::Error>) {
    match result {
        Ok(()) => debug_println!("grant_attacker: {}: allowed (must not be)", what),
        Err(e) => debug_println!("grant_attacker: {}: refused ({})", what, e.as_str()),
    }
}

impl Filter for Attacker {
    fn pre(&mut self, io: &Io, _: &dyn RequestData, _: &mut u64) -> Verdict {
        if io.op != Op::Write || io.grant == 0 {
            return Verdict::Continue;
        }
        // The kept handle, once this is another call (a batch carries many
        // writes in one call, under one lease).
        let lease_now = Grant::lent(0).handle() >> 8;
        if let Some(old) = self.kept.filter(|old| old >> 8 != lease_now) {
            self.kept = None;
            let mut b = [0u8; 1];
            refused("a handle from an earlier call", Grant::from_handle(old).read(0, &mut b));
            self.done = true;
            return Verdict::Continue;
        }
        if self.done || self.kept.is_some() {
            return Verdict::Continue;
        }
        let grant = Grant::lent(io.grant as usize - 1);
        let len = u64::from(io.count) * u64::from(BLOCK_SIZE);
        let mut block = [0u8; BLOCK_SIZE as usize];
        match grant.read(0, &mut block) {
            Ok(()) => debug_println!("grant_attacker: read the {} bytes of the first block through the grant: ok", block.len()),
            Err(e) => debug_println!("grant_attacker: the lent data could not be read: {}", e.as_str()),
        }
        match grant_read_keeping_simd(grant, &mut block) {
            (0, kept) if kept == SIMD_PATTERN => debug_println!("grant_attacker: its v0-v3 are as they were after a grant read"),
            (0, _) => debug_println!("grant_attacker: a grant read changed its v0-v3"),
            (code, _) => debug_println!("grant_attacker: the grant read with SIMD values set failed ({})", code),
        }
        match check_copies(grant, &block) {
            Ok(n) => debug_println!("grant_attacker: {} reads of other lengths, offsets and alignments: the same bytes", n),
            Err((offset, len, at)) => debug_println!("grant_attacker: a read of {} bytes at {} into a buffer at +{}: wrong bytes", len, offset, at),
        }
        refused("write through a read grant", grant.write(0, &[0xee]));
        refused("read past the request's data", grant.read(len, &mut block[..1]));
        refused("read running past the request's data", grant.read(len - 1, &mut block[..2]));
        let lease = grant.handle() >> 8;
        refused("a forged handle (the next lease)", Grant::from_handle((lease + 1) << 8).read(0, &mut block[..1]));
        refused("a forged handle (index 63)", Grant::from_handle(lease << 8 | 63).read(0, &mut block[..1]));
        refused("copy into its own read-only memory", copy_to(grant, READ_ONLY.as_ptr() as u64));
        refused("copy into unmapped memory at 0x12340000", copy_to(grant, 0x1234_0000));
        refused("copy into kernel memory at 0xffff000040200000", copy_to(grant, 0xffff_0000_4020_0000));
        self.kept = Some(grant.handle());
        Verdict::Continue
    }
}

/// Grant reads of every length up to 200 bytes and of odd and even numbers
/// of 64-byte blocks with and without a tail (the kernel copies whole
/// 64-byte blocks in a loop that takes two at a time, then the rest), at
/// several offsets in the grant and alignments of the buffer: each must
/// give the bytes of `whole` (one read of the whole block) and leave the
/// buffer around it as it was. How many were checked, or the first wrong
/// one (offset, length, position in the buffer).
fn check_copies(grant: Grant, whole: &[u8; BLOCK_SIZE as usize]) -> Result<u32, (u64, usize, usize)> {
    const GUARD: u8 = 0xa5;
    let mut buf = [0u8; BLOCK_SIZE as usize + 32];
    let lengths = (1..=200).chain([255, 256, 257, 448, 511, 512, 1000, 4031, 4032, 4095, 4096]);
    let mut checked = 0;
    for len in lengths {
        for offset in [0usize, 1, 63] {
            for at in [0usize, 1, 8] {
                if offset + len > whole.len() {
                    continue;
                }
                // (Only the bytes around the read are looked at: the whole
                // check stays well within the upcall's budget.)
                let around = &mut buf[..at + len + 16];
                around.fill(GUARD);
                let ok = grant.read(offset as u64, &mut around[at..at + len]).is_ok()
                    && around[at..at + len] == whole[offset..offset + len]
                    && around[..at].iter().chain(&around[at + len..]).all(|&b| b == GUARD);
                if !ok {
                    return Err((offset as u64, len, at));
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}

/// What it puts in v0-v3 around a grant read.
const SIMD_PATTERN: [u8; 64] = {
    let mut p = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        p[i] = (i as u8).wrapping_mul(37) ^ 0xa5;
        i += 1;
    }
    p
};

/// A grant read of the whole first block into `block` with
/// [`SIMD_PATTERN`] in v0-v3 (the kernel's copy loop borrows those
/// registers and must put them back): the system call's result and
/// v0-v3 after it.
#[allow(unsafe_code)]
fn grant_read_keeping_simd(grant: Grant, block: &mut [u8; BLOCK_SIZE as usize]) -> (u64, [u8; 64]) {
    let mut after = [0u8; 64];
    let code: u64;
    // SAFETY: loads the pattern into v0-v3 (declared clobbered), makes the
    // GRANT_READ system call (the kernel reads x0-x3 and x7, writes x0,
    // and copies into `block`, which the exclusive borrow gives it), and
    // stores v0-v3 into `after`.
    unsafe {
        core::arch::asm!(
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{pattern}]",
            "svc #0",
            "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{after}]",
            pattern = in(reg) SIMD_PATTERN.as_ptr(),
            after = in(reg) after.as_mut_ptr(),
            inlateout("x0") grant.handle() => code,
            in("x1") 0u64,
            in("x2") block.as_mut_ptr() as u64,
            in("x3") u64::from(BLOCK_SIZE),
            in("x7") abi::sys::GRANT_READ,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            options(nostack),
        );
    }
    (code, after)
}

/// A grant read of 8 bytes to address `to`.
fn copy_to(grant: Grant, to: u64) -> Result<(), microkit::Error> {
    microkit::syscall::grant_copy_raw(abi::sys::GRANT_READ, grant.handle(), 0, to, 8)
}

#[microkit::protection_domain]
fn init() -> blk_filter::FilterPd<Attacker> {
    blk_filter::FilterPd::start(|_| Ok(Attacker { kept: None, done: false }))
}
