//! PBKDF2-HMAC in slices: a filter derives a key slot's key (millions of
//! iterations with cryptsetup's defaults, seconds under QEMU) a slice at a
//! time, each within its call budget, instead of in one call.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use zeroize::Zeroize;

use crate::hash::Hash;

/// HMAC keyed with the password, cloned for each iteration (the keyed
/// state is computed once).
#[derive(Clone)]
enum Prf {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Prf {
    fn new(hash: Hash, password: &[u8]) -> Prf {
        // (HMAC takes keys of any length.)
        match hash {
            Hash::Sha1 => Prf::Sha1(Hmac::new_from_slice(password).expect("any key length")),
            Hash::Sha256 => Prf::Sha256(Hmac::new_from_slice(password).expect("any key length")),
            Hash::Sha512 => Prf::Sha512(Hmac::new_from_slice(password).expect("any key length")),
        }
    }

    fn len(&self) -> usize {
        match self {
            Prf::Sha1(_) => 20,
            Prf::Sha256(_) => 32,
            Prf::Sha512(_) => 64,
        }
    }

    /// HMAC of `a || b` into `out` (`self.len()` bytes).
    fn mac(&self, a: &[u8], b: &[u8], out: &mut [u8]) {
        fn run<M: Mac + Clone>(m: &M, a: &[u8], b: &[u8], out: &mut [u8]) {
            let mut m = m.clone();
            m.update(a);
            m.update(b);
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        match self {
            Prf::Sha1(m) => run(m, a, b, out),
            Prf::Sha256(m) => run(m, a, b, out),
            Prf::Sha512(m) => run(m, a, b, out),
        }
    }
}

/// One PBKDF2-HMAC derivation (RFC 8018) of at most 64 bytes, advanced a
/// slice of iterations at a time.
pub struct Pbkdf2 {
    prf: Prf,
    salt: [u8; 32],
    salt_len: usize,
    iterations: u32,
    out: [u8; 64],
    out_len: usize,
    /// The output block being computed (1, 2, ...) and its iterations so
    /// far; `u` is its last U and `t` the XOR of its Us.
    block: u32,
    done: u32,
    u: [u8; 64],
    t: [u8; 64],
}

impl Pbkdf2 {
    /// PBKDF2-HMAC(`hash`) of `password` with `salt` (at most 32 bytes,
    /// LUKS1's salt size) and `iterations` (at least 1), `out_len` bytes (at
    /// most 64).
    pub fn new(hash: Hash, password: &[u8], salt: &[u8], iterations: u32, out_len: usize) -> Pbkdf2 {
        let mut s = [0u8; 32];
        let salt_len = salt.len().min(32);
        s[..salt_len].copy_from_slice(&salt[..salt_len]);
        Pbkdf2 {
            prf: Prf::new(hash, password),
            salt: s,
            salt_len,
            iterations: iterations.max(1),
            out: [0; 64],
            out_len: out_len.min(64),
            block: 1,
            done: 0,
            u: [0; 64],
            t: [0; 64],
        }
    }

    fn blocks(&self) -> u32 {
        self.out_len.div_ceil(self.prf.len()) as u32
    }

    /// Whether the output is complete.
    pub fn is_done(&self) -> bool {
        self.block > self.blocks()
    }

    /// Run up to `budget` more iterations; whether the output is complete.
    pub fn step(&mut self, budget: u32) -> bool {
        let h = self.prf.len();
        let mut left = budget;
        while !self.is_done() && left > 0 {
            if self.done == 0 {
                let index = self.block.to_be_bytes();
                let mut salted = [0u8; 36];
                salted[..self.salt_len].copy_from_slice(&self.salt[..self.salt_len]);
                salted[self.salt_len..self.salt_len + 4].copy_from_slice(&index);
                self.prf.mac(&salted[..self.salt_len + 4], &[], &mut self.u[..h]);
                self.t[..h].copy_from_slice(&self.u[..h]);
                self.done = 1;
                left -= 1;
            }
            let n = (self.iterations - self.done).min(left);
            for _ in 0..n {
                let mut next = [0u8; 64];
                self.prf.mac(&self.u[..h], &[], &mut next[..h]);
                self.u[..h].copy_from_slice(&next[..h]);
                for (t, u) in self.t[..h].iter_mut().zip(&next[..h]) {
                    *t ^= u;
                }
                next.zeroize();
            }
            (self.done, left) = (self.done + n, left - n);
            if self.done == self.iterations {
                let at = (self.block as usize - 1) * h;
                let take = h.min(self.out_len - at);
                self.out[at..at + take].copy_from_slice(&self.t[..take]);
                (self.block, self.done) = (self.block + 1, 0);
            }
        }
        self.is_done()
    }

    /// The derived bytes, once [`Pbkdf2::step`] says they are complete.
    pub fn output(&self) -> Option<&[u8]> {
        self.is_done().then_some(&self.out[..self.out_len])
    }
}

impl Drop for Pbkdf2 {
    fn drop(&mut self) {
        self.out.zeroize();
        self.u.zeroize();
        self.t.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_any_size_give_what_one_call_gives() {
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            for (iterations, out_len) in [(1, 20), (2, 64), (1000, 64), (777, 32), (3, 20)] {
                let mut want = [0u8; 64];
                hash.pbkdf2(b"pass phrase", b"salt of 32 bytes, more or less!!", iterations, &mut want[..out_len]);
                for slice in [1, 7, 1000, u32::MAX] {
                    let mut k = Pbkdf2::new(hash, b"pass phrase", b"salt of 32 bytes, more or less!!", iterations, out_len);
                    let mut calls = 0;
                    while !k.step(slice) {
                        calls += 1;
                        assert!(k.output().is_none());
                    }
                    assert_eq!(k.output().unwrap(), &want[..out_len], "{hash:?} {iterations} {out_len} by {slice}");
                    let blocks = out_len.div_ceil(k.prf.len()) as u32;
                    assert!(calls <= (iterations * blocks).div_ceil(slice), "no call wasted");
                }
            }
        }
    }

    #[test]
    fn rfc_6070_sha1_4096_iterations() {
        let mut k = Pbkdf2::new(Hash::Sha1, b"password", b"salt", 4096, 20);
        while !k.step(100) {}
        assert_eq!(
            k.output().unwrap(),
            [0x4b, 0x00, 0x79, 0x01, 0xb7, 0x65, 0x48, 0x9a, 0xbe, 0xad, 0x49, 0xd9, 0x26, 0xf7, 0x21, 0xd0, 0x65, 0xa4, 0x29, 0xc1]
        );
    }
}
