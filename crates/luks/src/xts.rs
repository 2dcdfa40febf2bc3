//! XTS (IEEE 1619) over whole 512-byte sectors, as dm-crypt's
//! `xts-plain64` uses it: the tweak of a sector is its number as a 128-bit
//! little-endian integer (the 64-bit number, zero-extended), encrypted
//! with the second key half; block `j` of the sector is whitened with that
//! tweak times `alpha^j` in GF(2^128).
//!
//! Sectors are whole multiples of the AES block, so no ciphertext stealing
//! is ever needed. Two things keep a sector cheap, and are why this is not
//! the `xts-mode` crate (which the tests use as the reference):
//!
//! - the sector's 32 blocks go through AES as one batch, which the `aes`
//!   crate's ARMv8 backend runs eight at a time with the round keys held in
//!   registers, instead of 32 single-block calls that reload them;
//! - the whitening works on the caller's buffer as 16-byte aligned words
//!   when it is aligned (request buffers are). Rust's
//!   `aarch64-unknown-none` assumes strict alignment, so there every load
//!   and store of the whitening on a plain byte slice would be split into
//!   single bytes (the PDs' build drops that assumption, see
//!   `.cargo/config.toml`; the aligned words are as fast there). A buffer
//!   that is not aligned goes through an aligned copy.
//!
//! Measured on QEMU's cortex-a53 with the ARMv8 AES instructions (the
//! crate docs have the build flags), per 4 KiB: 14,000 instructions for
//! AES-256-XTS and 10,200 for AES-128-XTS, of which the `aes` crate's batch
//! itself is 9,300 and 5,500. The `xts-mode` crate took 69,000 and 36,000
//! (24,000 and 9,500 when built without strict alignment).

use aes::cipher::consts::U16;
use aes::cipher::{BlockDecrypt, BlockEncrypt, BlockSizeUser};
use aes::Block;

use zerocopy::{FromBytes, IntoBytes};

use crate::SECTOR_SIZE;

const BLOCKS_PER_SECTOR: usize = SECTOR_SIZE / 16;

/// A sector as its 32 AES blocks, each a little-endian number (XTS's view
/// of a block), 16-byte aligned.
type Words = [u128; BLOCKS_PER_SECTOR];

#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Encrypt,
    Decrypt,
}

/// An XTS key: the data cipher (first key half) and the tweak cipher
/// (second key half, which only ever encrypts).
pub(crate) struct Xts<D, T> {
    data: D,
    tweak: T,
}

impl<D, T> Xts<D, T>
where
    D: BlockEncrypt + BlockDecrypt + BlockSizeUser<BlockSize = U16>,
    T: BlockEncrypt + BlockSizeUser<BlockSize = U16>,
{
    pub(crate) fn new(data: D, tweak: T) -> Self {
        Xts { data, tweak }
    }

    /// Encrypts or decrypts `sectors` in place, the first one being sector
    /// number `first`.
    pub(crate) fn sectors(&self, direction: Direction, first: u64, sectors: &mut [[u8; SECTOR_SIZE]]) {
        let mut number = first;
        match <[Words]>::mut_from_bytes(sectors.as_flattened_mut()) {
            Ok(aligned) => {
                for words in aligned {
                    self.sector(direction, number, words);
                    number = number.wrapping_add(1);
                }
            }
            // Not 16-byte aligned: through an aligned copy, sector by sector.
            Err(_) => {
                for sector in sectors {
                    let mut words: Words = [0; BLOCKS_PER_SECTOR];
                    words.as_mut_bytes().copy_from_slice(sector);
                    self.sector(direction, number, &mut words);
                    sector.copy_from_slice(words.as_bytes());
                    number = number.wrapping_add(1);
                }
            }
        }
    }

    fn sector(&self, direction: Direction, number: u64, words: &mut Words) {
        let mut tweak = Block::from(u128::from(number).to_le_bytes());
        self.tweak.encrypt_block(&mut tweak);
        let mut t = u128::from_le_bytes(tweak.into());

        // Whiten into a batch (remembering each block's tweak), run the
        // batch through AES, whiten back out.
        let tweaks: Words = core::array::from_fn(|_| {
            let this = t;
            t = times_alpha(t);
            this
        });
        let mut batch: [Block; BLOCKS_PER_SECTOR] =
            core::array::from_fn(|i| Block::from((u128::from_le(words[i]) ^ tweaks[i]).to_le_bytes()));
        match direction {
            Direction::Encrypt => self.data.encrypt_blocks(&mut batch),
            Direction::Decrypt => self.data.decrypt_blocks(&mut batch),
        }
        for ((word, done), tweak) in words.iter_mut().zip(&batch).zip(&tweaks) {
            *word = (u128::from_le_bytes((*done).into()) ^ tweak).to_le();
        }
    }
}

/// Multiplies a tweak by alpha (x) in GF(2^128) modulo
/// x^128 + x^7 + x^2 + x + 1, the tweak read as a little-endian number:
/// shift left one bit, and fold a carry out of bit 127 back in as 0x87.
/// Branch-free, so the time does not depend on the tweak.
fn times_alpha(t: u128) -> u128 {
    let carry = ((t as i128) >> 127) as u128;
    (t << 1) ^ (carry & 0x87)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_alpha_shifts_and_folds_the_carry_into_the_low_byte() {
        assert_eq!(times_alpha(1), 2);
        assert_eq!(times_alpha(1 << 127), 0x87);
        assert_eq!(times_alpha((1 << 127) | 1), 0x85);
    }
}
