//! The payload cipher: aes-xts-plain64 under the master key, over runs of
//! 512-byte sectors or 4 KiB blocks, in place, with no allocation.
//!
//! Sector numbers are payload sectors: sector 0 is the first sector of
//! the payload (disk sector [`crate::Header::payload_offset`]), as dm-crypt
//! numbers them for a LUKS1 mapping (iv_offset 0) and as QEMU's luks
//! driver does. A 4 KiB block `b` is payload sectors `8b .. 8b+8`, each
//! with its own tweak (LUKS1 always encrypts 512-byte sectors).
//!
//! Buffers aligned to 16 bytes take the fast path (see `xts`); others
//! give the same result through a copy.

use core::fmt;

use aes::cipher::KeyInit;
use aes::{Aes128, Aes128Enc, Aes256, Aes256Enc};

use crate::key::MasterKey;
use crate::xts::{Direction, Xts};
use crate::{BLOCK_SIZE, SECTOR_SIZE};

const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE / SECTOR_SIZE) as u64;

/// aes-xts-plain64 keyed with a master key. Its expanded keys are wiped
/// when it is dropped.
pub struct Cipher {
    keyed: Keyed,
}

// The variants differ by the AES-256 key schedule's extra rounds; without
// an allocator there is nothing to box them in, and a Cipher is made once.
#[allow(clippy::large_enum_variant)]
enum Keyed {
    Aes128(Xts<Aes128, Aes128Enc>),
    Aes256(Xts<Aes256, Aes256Enc>),
}

impl Cipher {
    /// The cipher of `key`: AES-128-XTS for a 32-byte key, AES-256-XTS for
    /// a 64-byte one.
    pub fn new(key: &MasterKey) -> Cipher {
        let bytes = key.as_bytes();
        let (data, tweak) = bytes.split_at(bytes.len() / 2);
        let keyed = if bytes.len() == 32 {
            Keyed::Aes128(Xts::new(Aes128::new(data.into()), Aes128Enc::new(tweak.into())))
        } else {
            Keyed::Aes256(Xts::new(Aes256::new(data.into()), Aes256Enc::new(tweak.into())))
        };
        Cipher { keyed }
    }

    /// Encrypts `sectors` in place; the first is payload sector `first`.
    pub fn encrypt_sectors(&self, first: u64, sectors: &mut [[u8; SECTOR_SIZE]]) {
        self.run(Direction::Encrypt, first, sectors);
    }

    /// Decrypts `sectors` in place; the first is payload sector `first`.
    pub fn decrypt_sectors(&self, first: u64, sectors: &mut [[u8; SECTOR_SIZE]]) {
        self.run(Direction::Decrypt, first, sectors);
    }

    /// Encrypts 4 KiB payload block `block` (sectors `8 * block ..`) in place.
    pub fn encrypt_block(&self, block: u64, data: &mut [u8; BLOCK_SIZE]) {
        self.run(Direction::Encrypt, block.wrapping_mul(SECTORS_PER_BLOCK), data.as_chunks_mut().0);
    }

    /// Decrypts 4 KiB payload block `block` (sectors `8 * block ..`) in place.
    pub fn decrypt_block(&self, block: u64, data: &mut [u8; BLOCK_SIZE]) {
        self.run(Direction::Decrypt, block.wrapping_mul(SECTORS_PER_BLOCK), data.as_chunks_mut().0);
    }

    fn run(&self, direction: Direction, first: u64, sectors: &mut [[u8; SECTOR_SIZE]]) {
        match &self.keyed {
            Keyed::Aes128(xts) => xts.sectors(direction, first, sectors),
            Keyed::Aes256(xts) => xts.sectors(direction, first, sectors),
        }
    }
}

/// Shows which AES, never the key.
impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keyed {
            Keyed::Aes128(_) => write!(f, "Cipher(aes-128-xts-plain64)"),
            Keyed::Aes256(_) => write!(f, "Cipher(aes-256-xts-plain64)"),
        }
    }
}
