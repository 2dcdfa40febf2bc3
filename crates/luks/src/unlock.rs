//! Unlocking: from a passphrase and a key slot's material to the master
//! key, checked against the header's master-key digest.
//!
//! For slot `s` (all with the header's hash):
//!
//! 1. slot key = PBKDF2-HMAC(passphrase, salt of `s`, iterations of `s`,
//!    key-bytes);
//! 2. decrypt the material's sectors with aes-xts-plain64 under the slot
//!    key, sector numbers counting from 0 at the start of the material;
//! 3. candidate = AF-merge of the first key-bytes * stripes bytes;
//! 4. accept it if PBKDF2-HMAC(candidate, mk-digest-salt, mk-digest-iter,
//!    20) equals mk-digest.
//!
//! A wrong passphrase and damaged material (or a damaged digest) look the
//! same here, as they do to cryptsetup: the digest does not match.
//!
//! Nothing allocates: the caller lends the material buffer. The slot key
//! (and its AES key schedule), the decrypted material and the candidate
//! key are wiped before returning.

use core::convert::Infallible;
use core::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::af;
use crate::cipher::Cipher;
use crate::header::{Header, KEY_SLOTS};
use crate::key::MasterKey;

/// Opens key slot `slot` of `header` with `passphrase`, given the slot's
/// material as read from the disk (the sectors [`Header::material`] names,
/// at least [`crate::Extent::bytes`] of them; more is ignored).
///
/// `material` is decrypted in place and then wiped: once this returns it
/// holds either the encrypted material it was given (an error found before
/// decrypting) or zeros, never the decrypted material.
pub fn unlock_slot(
    header: &Header,
    slot: usize,
    passphrase: &[u8],
    material: &mut [u8],
) -> Result<MasterKey, UnlockError> {
    let key_slot = header.slots().get(slot).ok_or(UnlockError::NoSuchSlot { slot })?;
    if !key_slot.is_active() {
        return Err(UnlockError::SlotInactive { slot });
    }
    let needed = header.material(slot).bytes();
    if material.len() < needed {
        return Err(UnlockError::MaterialTooShort { slot, needed, got: material.len() });
    }
    let material = &mut material[..needed];
    let key_bytes = header.key_bytes();
    let hash = header.hash();

    let mut slot_key = Zeroizing::new([0u8; 64]);
    hash.pbkdf2(passphrase, key_slot.salt(), key_slot.iterations(), &mut slot_key[..key_bytes]);
    let slot_cipher = Cipher::new(&MasterKey::from_bytes(&slot_key[..key_bytes]).expect("header checked key-bytes"));
    slot_cipher.decrypt_sectors(0, material.as_chunks_mut().0);

    let mut candidate = Zeroizing::new([0u8; 64]);
    af::merge(hash, material, key_slot.stripes() as usize, &mut candidate[..key_bytes]);
    material.zeroize();

    let mut digest = [0u8; 20];
    hash.pbkdf2(&candidate[..key_bytes], header.mk_digest_salt(), header.mk_digest_iterations(), &mut digest);
    if !same_bytes(&digest, header.mk_digest()) {
        return Err(UnlockError::WrongPassphrase);
    }
    Ok(MasterKey::from_bytes(&candidate[..key_bytes]).expect("header checked key-bytes"))
}

/// What [`unlock`] returns: the key and the slot that opened.
#[derive(Debug)]
pub struct Unlocked {
    pub slot: usize,
    pub key: MasterKey,
}

/// Tries `passphrase` on every active slot in order, reading each slot's
/// material with `read(first_sector, sectors, buffer)` (disk sectors of
/// 512 bytes; `buffer` is exactly `sectors * 512` bytes of `scratch`).
///
/// `scratch` must hold the largest active slot's material,
/// [`Header::largest_material_bytes`]: 256,000 bytes (500 sectors) for
/// cryptsetup's usual 64-byte key with 4000 stripes
/// ([`crate::MATERIAL_BYTES_512_BIT_KEY`]), 128,000 for a 32-byte key. It
/// holds zeros afterwards. A read error ends the search.
pub fn unlock<E>(
    header: &Header,
    passphrase: &[u8],
    scratch: &mut [u8],
    mut read: impl FnMut(u64, u32, &mut [u8]) -> Result<(), E>,
) -> Result<Unlocked, UnlockError<E>> {
    let needed = header.largest_material_bytes();
    if scratch.len() < needed {
        return Err(UnlockError::ScratchTooSmall { needed, got: scratch.len() });
    }
    let mut tried = false;
    for slot in header.active_slots() {
        tried = true;
        let extent = header.material(slot);
        let buffer = &mut scratch[..extent.bytes()];
        if let Err(error) = read(extent.first_sector, extent.sectors, buffer) {
            buffer.zeroize();
            return Err(UnlockError::Read { slot, error });
        }
        match unlock_slot(header, slot, passphrase, buffer) {
            Ok(key) => return Ok(Unlocked { slot, key }),
            Err(UnlockError::WrongPassphrase) => continue,
            Err(other) => return Err(other.widen()),
        }
    }
    Err(if tried { UnlockError::WrongPassphrase } else { UnlockError::NoActiveSlot })
}

/// Compares without stopping at the first difference.
fn same_bytes(a: &[u8; 20], b: &[u8; 20]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why unlocking failed. `E` is the caller's read error ([`unlock`]);
/// [`unlock_slot`] reads nothing and has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockError<E = Infallible> {
    /// No key slot accepts the passphrase (or the slot's material or the
    /// header's digest is damaged: the two cannot be told apart).
    WrongPassphrase,
    /// The header has no active key slot.
    NoActiveSlot,
    /// A slot number not below [`KEY_SLOTS`].
    NoSuchSlot { slot: usize },
    /// The slot holds no key.
    SlotInactive { slot: usize },
    /// Fewer bytes of material than the slot's sectors.
    MaterialTooShort { slot: usize, needed: usize, got: usize },
    /// The scratch buffer is smaller than the largest slot's material.
    ScratchTooSmall { needed: usize, got: usize },
    /// Reading a slot's material failed.
    Read { slot: usize, error: E },
}

impl UnlockError {
    fn widen<E>(self) -> UnlockError<E> {
        match self {
            UnlockError::WrongPassphrase => UnlockError::WrongPassphrase,
            UnlockError::NoActiveSlot => UnlockError::NoActiveSlot,
            UnlockError::NoSuchSlot { slot } => UnlockError::NoSuchSlot { slot },
            UnlockError::SlotInactive { slot } => UnlockError::SlotInactive { slot },
            UnlockError::MaterialTooShort { slot, needed, got } => UnlockError::MaterialTooShort { slot, needed, got },
            UnlockError::ScratchTooSmall { needed, got } => UnlockError::ScratchTooSmall { needed, got },
            UnlockError::Read { error, .. } => match error {},
        }
    }
}

impl<E: fmt::Display> fmt::Display for UnlockError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnlockError::WrongPassphrase => write!(f, "no LUKS key slot opens with this passphrase"),
            UnlockError::NoActiveSlot => write!(f, "the LUKS header has no active key slot"),
            UnlockError::NoSuchSlot { slot } => write!(f, "there is no LUKS key slot {slot} (0 to {})", KEY_SLOTS - 1),
            UnlockError::SlotInactive { slot } => write!(f, "LUKS key slot {slot} is not active"),
            UnlockError::MaterialTooShort { slot, needed, got } => {
                write!(f, "LUKS key slot {slot}: {got} bytes of key material given, {needed} needed")
            }
            UnlockError::ScratchTooSmall { needed, got } => {
                write!(f, "LUKS unlock: scratch buffer of {got} bytes, key material needs {needed}")
            }
            UnlockError::Read { slot, error } => write!(f, "LUKS key slot {slot}: reading key material: {error}"),
        }
    }
}
