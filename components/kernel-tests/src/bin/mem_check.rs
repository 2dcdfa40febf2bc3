//! Checks the runtime's `memcpy`, `memmove` and `memset` (hand-written for
//! speed, `crates/microkit/src/mem.rs`) against one-byte-at-a-time
//! references: every length up to 200 and a few of 4 KiB, at every
//! alignment of source and destination, overlapping both ways for
//! `memmove`, and that no byte outside the range changes; and `wipe_simd`
//! (the SIMD wipe PDs that use FP call for secrets) the same way.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;
use microkit::{debug_println, protection_domain, Channel, NullHandler};

const CHECKER: Channel = Channel::new(0);
const AREA: usize = 4096 + 256;

/// The byte a fresh area holds at `i`, different for `salt`.
fn pattern(i: usize, salt: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8
}

fn fill(area: &mut [u8], salt: u8) {
    for (i, b) in area.iter_mut().enumerate() {
        // A volatile-free loop the compiler may turn into anything but
        // these functions' own behaviour is what is under test: black_box
        // keeps it a byte loop.
        *b = black_box(pattern(i, salt));
    }
}

fn lengths() -> impl Iterator<Item = usize> {
    (0..=200).chain([255, 256, 257, 4095, 4096, 4097])
}

#[protection_domain]
fn init() -> NullHandler {
    let (mut a, mut b) = ([0u8; AREA], [0u8; AREA]);
    let mut cases = 0u32;
    let mut bad = None;
    'all: for n in lengths() {
        for s in 0..9 {
            for d in 0..9 {
                if d + n > AREA - 8 || s + n > AREA - 8 {
                    continue;
                }
                cases += 3;
                // memcpy: b[d..d+n] = a[s..s+n], nothing else in b moves.
                fill(&mut a, 1);
                fill(&mut b, 2);
                let len = black_box(n);
                b[d..d + len].copy_from_slice(&a[s..s + len]);
                if (0..AREA).any(|i| b[i] != if (d..d + n).contains(&i) { pattern(i - d + s, 1) } else { pattern(i, 2) }) {
                    bad = Some(("memcpy", n, s, d));
                    break 'all;
                }
                // memmove within one area, from s to d (either way round).
                fill(&mut a, 3);
                a.copy_within(s..s + len, d);
                if (0..AREA).any(|i| a[i] != if (d..d + n).contains(&i) { pattern(i - d + s, 3) } else { pattern(i, 3) }) {
                    bad = Some(("memmove", n, s, d));
                    break 'all;
                }
                // memset of b[d..d+n] to a byte with its top bit set.
                fill(&mut b, 4);
                b[d..d + len].fill(black_box(0xa5));
                if (0..AREA).any(|i| b[i] != if (d..d + n).contains(&i) { 0xa5 } else { pattern(i, 4) }) {
                    bad = Some(("memset", n, s, d));
                    break 'all;
                }
            }
        }
    }
    // wipe_simd of b[d..d+n]: zeros there, nothing else changed.
    let mut wiped = 0u32;
    'wipe: for n in lengths() {
        for d in 0..9 {
            if d + n > AREA - 8 || bad.is_some() {
                continue;
            }
            wiped += 1;
            fill(&mut b, 5);
            microkit::wipe_simd(&mut b[d..d + black_box(n)]);
            if (0..AREA).any(|i| b[i] != if (d..d + n).contains(&i) { 0 } else { pattern(i, 5) }) {
                bad = Some(("wipe_simd", n, 0, d));
                break 'wipe;
            }
        }
    }
    if bad.is_none() {
        debug_println!("mem_check: wipe_simd zeroes exactly its buffer in {} cases", wiped);
    }
    match bad {
        None => debug_println!("mem_check: memcpy, memmove and memset agree with byte loops in {} cases", cases),
        Some((f, n, s, d)) => debug_println!("mem_check: {} of {} bytes from offset {} to offset {} went wrong", f, n, s, d),
    }
    CHECKER.notify();
    NullHandler
}
