//! Opening a key slot in steps, for a caller that can neither hold a
//! slot's material at once nor spend seconds in one call (a filter PD:
//! its setup calls each have a budget, and its memory is a bounce buffer
//! it reads through checked copies). The steps are those of [`unlock_slot`]
//! (crate::unlock_slot):
//!
//! 1. [`SlotOpener::derive`] the slot key from the passphrase, a slice of
//!    PBKDF2 iterations per call;
//! 2. [`SlotOpener::feed`] the slot's material a sector at a time, in
//!    order: each is decrypted with the slot key and merged;
//! 3. [`SlotOpener::check`] the merged key against the master-key digest,
//!    again a slice at a time.
//!
//! Every secret (slot key, decrypted sectors, candidate key) is wiped when
//! the opener is dropped.

use zeroize::Zeroize;

use crate::af::Merger;
use crate::cipher::Cipher;
use crate::header::{Extent, Header};
use crate::kdf::Pbkdf2;
use crate::key::MasterKey;
use crate::unlock::UnlockError;
use crate::SECTOR_SIZE;

/// One key slot being opened with one passphrase.
pub struct SlotOpener {
    slot: usize,
    extent: Extent,
    key_bytes: usize,
    derive: Pbkdf2,
    slot_cipher: Option<Cipher>,
    merger: Merger,
    /// Material sectors fed so far.
    fed: u32,
    /// The digest derivation of the merged key, once every sector is fed.
    check: Option<Pbkdf2>,
    header: Header,
}

impl SlotOpener {
    /// Start opening slot `slot` of `header` with `passphrase`.
    pub fn new(header: &Header, slot: usize, passphrase: &[u8]) -> Result<SlotOpener, UnlockError> {
        let key_slot = header.slots().get(slot).ok_or(UnlockError::NoSuchSlot { slot })?;
        if !key_slot.is_active() {
            return Err(UnlockError::SlotInactive { slot });
        }
        let key_bytes = header.key_bytes();
        Ok(SlotOpener {
            slot,
            extent: header.material(slot),
            key_bytes,
            derive: Pbkdf2::new(header.hash(), passphrase, key_slot.salt(), key_slot.iterations(), key_bytes),
            slot_cipher: None,
            merger: Merger::new(header.hash(), key_bytes, key_slot.stripes() as usize),
            fed: 0,
            check: None,
            header: header.clone(),
        })
    }

    /// The slot being opened.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Where its material is on the disk.
    pub fn material(&self) -> Extent {
        self.extent
    }

    /// Run up to `iterations` more iterations of the slot key's
    /// derivation; whether the key is ready (then [`SlotOpener::feed`]).
    pub fn derive(&mut self, iterations: u32) -> bool {
        if self.slot_cipher.is_none() && self.derive.step(iterations) {
            let key = MasterKey::from_bytes(self.derive.output().unwrap_or(&[])).expect("the header checked key-bytes");
            self.slot_cipher = Some(Cipher::new(&key));
        }
        self.slot_cipher.is_some()
    }

    /// Material sector `index` (counting from 0 at the material's start),
    /// as read from the disk: decrypted in place with the slot key and
    /// merged. Sectors must come in order, once the key is ready (others
    /// are ignored); the sector is wiped afterwards.
    pub fn feed(&mut self, index: u32, sector: &mut [u8; SECTOR_SIZE]) {
        if let Some(cipher) = &self.slot_cipher {
            if index == self.fed && index < self.extent.sectors {
                cipher.decrypt_sectors(u64::from(index), core::slice::from_mut(sector));
                self.merger.feed(sector);
                self.fed += 1;
            }
        }
        sector.zeroize();
    }

    /// Whether every sector of the material was fed.
    pub fn fed(&self) -> bool {
        self.fed == self.extent.sectors
    }

    /// Run up to `iterations` more iterations of the digest check (once
    /// every sector is fed): `None` while there is more to do; then the
    /// master key, or `WrongPassphrase`.
    pub fn check(&mut self, iterations: u32) -> Option<Result<MasterKey, UnlockError>> {
        let candidate = self.merger.key()?;
        if !self.fed() {
            return None;
        }
        let header = &self.header;
        let check = self.check.get_or_insert_with(|| Pbkdf2::new(header.hash(), candidate, header.mk_digest_salt(), header.mk_digest_iterations(), 20));
        if !check.step(iterations) {
            return None;
        }
        let digest = check.output().unwrap_or(&[]);
        let same = digest.len() == 20 && digest.iter().zip(self.header.mk_digest()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        Some(if same { Ok(MasterKey::from_bytes(candidate).expect("the header checked key-bytes")) } else { Err(UnlockError::WrongPassphrase) })
    }

    /// Bytes of key.
    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }
}
