//! Block stamps. Every 4096-byte block a verify client writes says which
//! disk, which block (of the client's view), which generation, and carries a
//! checksum over all of it:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `STRATA01` |
//! | 8 | 8 | block number |
//! | 16 | 8 | generation |
//! | 24 | 32 | disk name (at most 31 bytes, as in the configuration), NUL-padded |
//! | 56 | 4032 | filler from a generator seeded by block and generation |
//! | 4088 | 8 | FNV-1a 64 of bytes 0..4088 |

use blk::config::{name_field, name_str};
use core::fmt;

pub const BLOCK: usize = 4096;
pub const MAGIC: [u8; 8] = *b"STRATA01";

/// The block `block` of generation `generation` on disk `disk`.
pub fn stamp(disk: &str, block: u64, generation: u64, out: &mut [u8; BLOCK]) {
    out[0..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&block.to_le_bytes());
    out[16..24].copy_from_slice(&generation.to_le_bytes());
    out[24..56].copy_from_slice(&name_field(disk));
    let mut x = block.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ generation.wrapping_add(0x1234_5678) | 1;
    for chunk in out[56..BLOCK - 8].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let sum = fnv(&out[..BLOCK - 8]);
    out[BLOCK - 8..].copy_from_slice(&sum.to_le_bytes());
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// What differs between a block read and the stamp expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No stamp at all (never written, or overwritten by something else).
    NotAStamp,
    /// A stamp whose checksum does not match: the block is damaged.
    Damaged,
    /// A valid stamp of another block (the one found).
    WrongBlock(u64),
    /// A valid stamp of another generation.
    WrongGeneration { found: u64, expected: u64 },
    /// A valid stamp of another disk (its name as stamped, NUL-padded).
    WrongDisk([u8; 32]),
}

/// What differed, with the values found: `stamp of block 7`.
impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::NotAStamp => f.write_str("no stamp"),
            Mismatch::Damaged => f.write_str("checksum mismatch"),
            Mismatch::WrongBlock(found) => write!(f, "stamp of block {found}"),
            Mismatch::WrongGeneration { found, expected } => write!(f, "stamp of generation {found}, not {expected}"),
            Mismatch::WrongDisk(name) => write!(f, "stamp of disk {:?}", name_str(name)),
        }
    }
}

/// Check `data` against the stamp of (`disk`, `block`, `generation`).
pub fn check(disk: &str, block: u64, generation: u64, data: &[u8; BLOCK]) -> Result<(), Mismatch> {
    if data[0..8] != MAGIC {
        return Err(Mismatch::NotAStamp);
    }
    let sum = u64::from_le_bytes(data[BLOCK - 8..].try_into().unwrap_or([0; 8]));
    if fnv(&data[..BLOCK - 8]) != sum {
        return Err(Mismatch::Damaged);
    }
    let got_block = u64::from_le_bytes(data[8..16].try_into().unwrap_or([0; 8]));
    let got_gen = u64::from_le_bytes(data[16..24].try_into().unwrap_or([0; 8]));
    if data[24..56] != name_field(disk) {
        return Err(Mismatch::WrongDisk(data[24..56].try_into().unwrap_or([0; 32])));
    }
    if got_block != block {
        return Err(Mismatch::WrongBlock(got_block));
    }
    if got_gen != generation {
        return Err(Mismatch::WrongGeneration { found: got_gen, expected: generation });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_checks_against_itself_and_nothing_else() {
        let mut b = [0u8; BLOCK];
        stamp("disk0", 42, 3, &mut b);
        assert_eq!(check("disk0", 42, 3, &b), Ok(()));
        assert_eq!(check("disk0", 43, 3, &b), Err(Mismatch::WrongBlock(42)));
        assert_eq!(check("disk0", 42, 4, &b), Err(Mismatch::WrongGeneration { found: 3, expected: 4 }));
        assert_eq!(check("disk1", 42, 3, &b), Err(Mismatch::WrongDisk(name_field("disk0"))));
        b[1000] ^= 1;
        assert_eq!(check("disk0", 42, 3, &b), Err(Mismatch::Damaged));
        assert_eq!(check("disk0", 42, 3, &[0; BLOCK]), Err(Mismatch::NotAStamp));
    }

    #[test]
    fn a_mismatch_says_what_was_found() {
        let mut b = [0u8; BLOCK];
        stamp("disk0", 42, 3, &mut b);
        let said = |disk, block, generation, b: &[u8; BLOCK]| check(disk, block, generation, b).unwrap_err().to_string();
        assert_eq!(said("disk0", 7, 3, &b), "stamp of block 42");
        assert_eq!(said("disk0", 42, 1, &b), "stamp of generation 3, not 1");
        assert_eq!(said("disk1", 42, 3, &b), "stamp of disk \"disk0\"");
        assert_eq!(said("disk0", 0, 1, &[0; BLOCK]), "no stamp");
        b[100] ^= 1;
        assert_eq!(said("disk0", 42, 3, &b), "checksum mismatch");
    }

    #[test]
    fn stamps_differ_between_blocks_and_generations() {
        let (mut a, mut b, mut c) = ([0u8; BLOCK], [0u8; BLOCK], [0u8; BLOCK]);
        stamp("d", 1, 1, &mut a);
        stamp("d", 2, 1, &mut b);
        stamp("d", 1, 2, &mut c);
        assert_ne!(a[56..], b[56..]);
        assert_ne!(a[56..], c[56..]);
    }
}
