//! The LUKS1 anti-forensic merge: turns a key slot's decrypted key material
//! (`stripes` stripes of `key_bytes` each) back into the one key it hides.
//!
//! The material is split so that the key needs every stripe: wiping any
//! part of a slot destroys the key even if the disk keeps old copies of
//! some sectors. Per the LUKS1 on-disk format specification:
//!
//! ```text
//! d = 0 (key_bytes zero bytes)
//! for i in 0 .. stripes-1:   d = diffuse(d XOR stripe[i])
//! key = d XOR stripe[stripes-1]
//!
//! diffuse(d): cut d into pieces the size of the hash's output; piece j
//!             becomes hash(BE32(j) || piece j), truncated to the piece's
//!             length (the last piece may be shorter than the output)
//! ```
//!
//! The hash is the header's hash-spec. The index is a 32-bit big-endian
//! counter that restarts at 0 in every diffuse call.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroize;

use crate::hash::Hash;

/// Merges `material` (at least `key.len() * stripes` bytes; the rest is
/// ignored) into `key`. `stripes` must be at least 1.
pub(crate) fn merge(hash: Hash, material: &[u8], stripes: usize, key: &mut [u8]) {
    match hash {
        Hash::Sha1 => merge_with::<Sha1>(material, stripes, key),
        Hash::Sha256 => merge_with::<Sha256>(material, stripes, key),
        Hash::Sha512 => merge_with::<Sha512>(material, stripes, key),
    }
}

fn merge_with<D: Digest>(material: &[u8], stripes: usize, key: &mut [u8]) {
    let len = key.len();
    let (head, last) = material[..len * stripes].split_at(len * (stripes - 1));
    key.fill(0);
    for stripe in head.chunks_exact(len) {
        xor_into(key, stripe);
        diffuse::<D>(key);
    }
    xor_into(key, last);
}

/// The merge fed the material a piece at a time, in order (as a caller
/// with no room for all of it reads and decrypts it, a sector at a time).
pub(crate) struct Merger {
    hash: Hash,
    key_bytes: usize,
    stripes: usize,
    /// Stripes merged so far, and the bytes of the one being filled.
    merged: usize,
    fill: usize,
    d: [u8; 64],
    stripe: [u8; 64],
}

impl Merger {
    /// A merge of `stripes` (at least 1) stripes of `key_bytes` (at most
    /// 64) bytes.
    pub(crate) fn new(hash: Hash, key_bytes: usize, stripes: usize) -> Merger {
        Merger { hash, key_bytes: key_bytes.min(64), stripes: stripes.max(1), merged: 0, fill: 0, d: [0; 64], stripe: [0; 64] }
    }

    /// The next bytes of material; bytes past the last stripe are ignored.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        let len = self.key_bytes;
        while !bytes.is_empty() && self.merged < self.stripes {
            let take = (len - self.fill).min(bytes.len());
            self.stripe[self.fill..self.fill + take].copy_from_slice(&bytes[..take]);
            (self.fill, bytes) = (self.fill + take, &bytes[take..]);
            if self.fill == len {
                xor_into(&mut self.d[..len], &self.stripe[..len]);
                self.merged += 1;
                // Every stripe but the last is diffused in.
                if self.merged < self.stripes {
                    match self.hash {
                        Hash::Sha1 => diffuse::<Sha1>(&mut self.d[..len]),
                        Hash::Sha256 => diffuse::<Sha256>(&mut self.d[..len]),
                        Hash::Sha512 => diffuse::<Sha512>(&mut self.d[..len]),
                    }
                }
                self.fill = 0;
            }
        }
    }

    /// The merged key, once every stripe was fed.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        (self.merged == self.stripes).then_some(&self.d[..self.key_bytes])
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        self.d.zeroize();
        self.stripe.zeroize();
    }
}

/// Replaces each hash-sized piece of `buf` by the hash of its index and
/// itself, in place (a piece is read before it is overwritten).
fn diffuse<D: Digest>(buf: &mut [u8]) {
    let piece_len = <D as Digest>::output_size();
    for (index, piece) in buf.chunks_mut(piece_len).enumerate() {
        let mut hasher = D::new();
        hasher.update((index as u32).to_be_bytes());
        hasher.update(&*piece);
        let mut digest = hasher.finalize();
        piece.copy_from_slice(&digest[..piece.len()]);
        digest.as_mut_slice().zeroize();
    }
}

fn xor_into(acc: &mut [u8], with: &[u8]) {
    for (a, b) in acc.iter_mut().zip(with) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split the merge undoes, with fixed "random" stripes: a key split
    /// this way must come back whole, and must not come back if any
    /// stripe is damaged.
    fn split(hash: Hash, key: &[u8], stripes: usize, material: &mut [u8]) {
        let len = key.len();
        for (i, b) in material[..len * (stripes - 1)].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        let mut d = [0u8; 64];
        let d = &mut d[..len];
        for stripe in material[..len * (stripes - 1)].chunks_exact(len) {
            xor_into(d, stripe);
            match hash {
                Hash::Sha1 => diffuse::<Sha1>(d),
                Hash::Sha256 => diffuse::<Sha256>(d),
                Hash::Sha512 => diffuse::<Sha512>(d),
            }
        }
        let last = &mut material[len * (stripes - 1)..len * stripes];
        for ((out, k), d) in last.iter_mut().zip(key).zip(d.iter()) {
            *out = k ^ d;
        }
    }

    #[test]
    fn merge_undoes_split_for_every_hash_and_key_size() {
        let key: [u8; 64] = core::array::from_fn(|i| i as u8 ^ 0x5a);
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            for len in [32, 64] {
                let mut material = [0u8; 64 * 40];
                split(hash, &key[..len], 40, &mut material);
                let mut merged = [0u8; 64];
                merge(hash, &material, 40, &mut merged[..len]);
                assert_eq!(merged[..len], key[..len], "{hash:?}, {len} bytes");

                material[len * 3 + 1] ^= 1;
                merge(hash, &material, 40, &mut merged[..len]);
                assert_ne!(merged[..len], key[..len], "{hash:?}, {len} bytes, damaged");
            }
        }
    }

    #[test]
    fn the_merge_fed_in_pieces_of_any_size_gives_the_whole_merge() {
        let key: [u8; 64] = core::array::from_fn(|i| i as u8 ^ 0xa5);
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            for len in [32, 64] {
                let mut material = [0u8; 64 * 40 + 100];
                split(hash, &key[..len], 40, &mut material);
                for piece in [1, 7, 512, 5000] {
                    let mut m = Merger::new(hash, len, 40);
                    for chunk in material.chunks(piece) {
                        m.feed(chunk);
                    }
                    assert_eq!(m.key().unwrap(), &key[..len], "{hash:?} {len} by {piece}");
                }
                let mut m = Merger::new(hash, len, 40);
                m.feed(&material[..len * 40 - 1]);
                assert!(m.key().is_none(), "not before the last byte");
            }
        }
    }

    #[test]
    fn diffuse_hashes_each_piece_with_its_big_endian_index_and_truncates_the_last() {
        // sha1 over 32 bytes: a 20-byte piece (index 0) and a 12-byte one (index 1).
        let mut buf: [u8; 32] = core::array::from_fn(|i| i as u8);
        let original = buf;
        diffuse::<Sha1>(&mut buf);
        let first = Sha1::new().chain_update([0, 0, 0, 0]).chain_update(&original[..20]).finalize();
        let second = Sha1::new().chain_update([0, 0, 0, 1]).chain_update(&original[20..]).finalize();
        assert_eq!(buf[..20], first[..]);
        assert_eq!(buf[20..], second[..12]);
    }
}
