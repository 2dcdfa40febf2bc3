//! The LUKS1 partition header (`phdr`): parsed, checked, and asked where
//! each key slot's material lies.
//!
//! [`Header::parse`] accepts only what this crate can open (aes,
//! xts-plain64, a 32- or 64-byte key, sha1/sha256/sha512) and only a
//! header whose layout is consistent: every slot's material lies between
//! the header and the payload, no two slots' material overlap, active
//! slots have iterations and stripes. So a caller never reads outside the
//! slots for a hostile header, and never sees an unlock fail for a reason
//! the header already showed.
//!
//! # Layout (LUKS1 On-Disk Format Specification 1.2.3; integers big-endian)
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 6 | magic `"LUKS\xba\xbe"` |
//! | 6 | 2 | version (1) |
//! | 8 | 32 | cipher-name, NUL-padded (`aes`) |
//! | 40 | 32 | cipher-mode (`xts-plain64`) |
//! | 72 | 32 | hash-spec (`sha256`) |
//! | 104 | 4 | payload-offset, in 512-byte sectors |
//! | 108 | 4 | key-bytes (32 or 64 for aes-xts) |
//! | 112 | 20 | mk-digest |
//! | 132 | 32 | mk-digest-salt |
//! | 164 | 4 | mk-digest-iter |
//! | 168 | 40 | uuid, NUL-padded |
//! | 208 + 48 k | 48 | key slot k, k = 0..8 (below) |
//! | 592 | | end |
//!
//! A key slot:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | active: `0x00AC71F3` in use, `0x0000DEAD` free |
//! | 4 | 4 | iterations (PBKDF2) |
//! | 8 | 32 | salt |
//! | 40 | 4 | key-material-offset, in 512-byte sectors |
//! | 44 | 4 | stripes (cryptsetup: 4000) |
//!
//! A slot's material is `key-bytes * stripes` bytes, stored encrypted in
//! whole sectors from key-material-offset. cryptsetup fills in the offsets
//! and stripes of free slots too, so their layout is checked as well.

use core::fmt;

use crate::hash::Hash;
use crate::text::Text;
use crate::SECTOR_SIZE;

/// Bytes of the header proper: a caller reads at least this much (two
/// sectors) from the start of the disk.
pub const HEADER_BYTES: usize = 592;

/// Number of key slots in a LUKS1 header.
pub const KEY_SLOTS: usize = 8;

const MAGIC: [u8; 6] = *b"LUKS\xba\xbe";
const SLOT_ACTIVE: u32 = 0x00AC_71F3;
const SLOTS_AT: usize = 208;
const SLOT_BYTES: usize = 48;
/// The sectors the header itself occupies (592 bytes, rounded up).
const HEADER_SECTORS: u64 = HEADER_BYTES.div_ceil(SECTOR_SIZE) as u64;

/// A parsed and checked LUKS1 header.
#[derive(Clone, Debug)]
pub struct Header {
    hash: Hash,
    key_bytes: usize,
    payload_offset: u32,
    mk_digest: [u8; 20],
    mk_digest_salt: [u8; 32],
    mk_digest_iterations: u32,
    uuid: Text<40>,
    slots: [KeySlot; KEY_SLOTS],
}

/// One of the eight key slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySlot {
    active: bool,
    iterations: u32,
    salt: [u8; 32],
    material_offset: u32,
    stripes: u32,
}

/// A run of sectors on the disk, counted from the start of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first_sector: u64,
    pub sectors: u32,
}

impl Extent {
    /// The extent's size in bytes.
    pub fn bytes(&self) -> usize {
        self.sectors as usize * SECTOR_SIZE
    }

    fn end(&self) -> u64 {
        self.first_sector + u64::from(self.sectors)
    }
}

impl Header {
    /// Parses and checks a LUKS1 header from the first bytes of a disk
    /// (at least [`HEADER_BYTES`]; more is ignored).
    pub fn parse(disk_start: &[u8]) -> Result<Header, HeaderError> {
        let raw: &[u8; HEADER_BYTES] = disk_start
            .get(..HEADER_BYTES)
            .and_then(|b| b.try_into().ok())
            .ok_or(HeaderError::TooShort { len: disk_start.len() })?;

        if raw[0..6] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16::from_be_bytes([raw[6], raw[7]]);
        if version != 1 {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let cipher_name: Text<32> = Text::new(array(raw, 8));
        let cipher_mode: Text<32> = Text::new(array(raw, 40));
        if cipher_name.as_bytes() != b"aes" || cipher_mode.as_bytes() != b"xts-plain64" {
            return Err(HeaderError::UnsupportedCipher { name: cipher_name, mode: cipher_mode });
        }
        let hash_spec: Text<32> = Text::new(array(raw, 72));
        let hash = Hash::from_spec(hash_spec.as_bytes()).ok_or(HeaderError::UnsupportedHash(hash_spec))?;
        let key_bytes = be32(raw, 108);
        if key_bytes != 32 && key_bytes != 64 {
            return Err(HeaderError::UnsupportedKeySize(key_bytes));
        }
        let mk_digest_iterations = be32(raw, 164);
        if mk_digest_iterations == 0 {
            return Err(HeaderError::ZeroDigestIterations);
        }

        let mut slots = [KeySlot::EMPTY; KEY_SLOTS];
        for (index, slot) in slots.iter_mut().enumerate() {
            *slot = KeySlot::parse(index, &array(raw, SLOTS_AT + index * SLOT_BYTES))?;
        }

        let header = Header {
            hash,
            key_bytes: key_bytes as usize,
            payload_offset: be32(raw, 104),
            mk_digest: array(raw, 112),
            mk_digest_salt: array(raw, 132),
            mk_digest_iterations,
            uuid: Text::new(array(raw, 168)),
            slots,
        };
        header.check_layout()?;
        Ok(header)
    }

    /// Every slot's material between the header and the payload, and no
    /// two overlapping.
    fn check_layout(&self) -> Result<(), HeaderError> {
        for slot in 0..KEY_SLOTS {
            let extent = self.material(slot);
            if extent.first_sector < HEADER_SECTORS {
                return Err(HeaderError::MaterialOverlapsHeader { slot });
            }
            if extent.end() > self.payload_offset() {
                return Err(HeaderError::MaterialPastPayload {
                    slot,
                    end: extent.end(),
                    payload: self.payload_offset(),
                });
            }
            for other in 0..slot {
                let theirs = self.material(other);
                if extent.first_sector < theirs.end() && theirs.first_sector < extent.end() {
                    return Err(HeaderError::MaterialsOverlap { slot, other });
                }
            }
        }
        Ok(())
    }

    /// The hash of the hash-spec.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Bytes of the master key: 32 (AES-128-XTS) or 64 (AES-256-XTS).
    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }

    /// The first sector of the encrypted payload. Payload sector `n` (the
    /// number the XTS tweak uses) is disk sector `payload_offset() + n`.
    pub fn payload_offset(&self) -> u64 {
        u64::from(self.payload_offset)
    }

    /// The volume's UUID as cryptsetup prints it.
    pub fn uuid(&self) -> &Text<40> {
        &self.uuid
    }

    /// The eight key slots, in order.
    pub fn slots(&self) -> &[KeySlot; KEY_SLOTS] {
        &self.slots
    }

    /// The indices of the slots in use, in order.
    pub fn active_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..KEY_SLOTS).filter(|&slot| self.slots[slot].active)
    }

    /// The sectors holding key slot `slot`'s material (panics if `slot` is
    /// not below [`KEY_SLOTS`]). A caller that reads the disk in pieces
    /// reads just these for the slot it wants to try.
    pub fn material(&self, slot: usize) -> Extent {
        let s = &self.slots[slot];
        let bytes = self.key_bytes as u64 * u64::from(s.stripes);
        Extent {
            first_sector: u64::from(s.material_offset),
            // At most 64 * (2^32 - 1) / 512 + 1 sectors: fits a u32.
            sectors: bytes.div_ceil(SECTOR_SIZE as u64) as u32,
        }
    }

    /// The bytes of the largest active slot's material: the scratch buffer
    /// [`crate::unlock`] needs. 256,000 (500 sectors) for cryptsetup's usual
    /// 64-byte key and 4000 stripes; 128,000 for a 32-byte key.
    pub fn largest_material_bytes(&self) -> usize {
        self.active_slots().map(|slot| self.material(slot).bytes()).max().unwrap_or(0)
    }

    pub(crate) fn mk_digest(&self) -> &[u8; 20] {
        &self.mk_digest
    }

    pub(crate) fn mk_digest_salt(&self) -> &[u8; 32] {
        &self.mk_digest_salt
    }

    pub(crate) fn mk_digest_iterations(&self) -> u32 {
        self.mk_digest_iterations
    }
}

impl KeySlot {
    const EMPTY: KeySlot = KeySlot { active: false, iterations: 0, salt: [0; 32], material_offset: 0, stripes: 0 };

    fn parse(index: usize, raw: &[u8; SLOT_BYTES]) -> Result<KeySlot, HeaderError> {
        let state = be32(raw, 0);
        // Any state but active holds no key to try: a damaged state word of
        // a slot not in use does not keep the others from opening, as
        // with cryptsetup (which calls it invalid and skips it).
        let active = state == SLOT_ACTIVE;
        let slot = KeySlot {
            active,
            iterations: be32(raw, 4),
            salt: array(raw, 8),
            material_offset: be32(raw, 40),
            stripes: be32(raw, 44),
        };
        if slot.stripes == 0 {
            return Err(HeaderError::ZeroStripes { slot: index });
        }
        if active && slot.iterations == 0 {
            return Err(HeaderError::ZeroIterations { slot: index });
        }
        Ok(slot)
    }

    /// Whether the slot holds a key (`0x00AC71F3`).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// PBKDF2 iterations for the passphrase.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// PBKDF2 salt for the passphrase.
    pub fn salt(&self) -> &[u8; 32] {
        &self.salt
    }

    /// Anti-forensic stripes of the material.
    pub fn stripes(&self) -> u32 {
        self.stripes
    }
}

fn be32(raw: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(raw, at))
}

fn array<const N: usize>(raw: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&raw[at..at + N]);
    out
}

/// Why a header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_BYTES`] bytes were given.
    TooShort { len: usize },
    /// No LUKS magic: not a LUKS disk.
    BadMagic,
    /// A LUKS version other than 1 (LUKS2 is version 2).
    UnsupportedVersion(u16),
    /// A cipher other than aes-xts-plain64.
    UnsupportedCipher { name: Text<32>, mode: Text<32> },
    /// A hash-spec other than sha1, sha256, sha512.
    UnsupportedHash(Text<32>),
    /// key-bytes other than 32 or 64.
    UnsupportedKeySize(u32),
    /// mk-digest-iter is 0.
    ZeroDigestIterations,
    /// A slot's active field is neither of the two markers.
    /// An active slot has 0 PBKDF2 iterations.
    ZeroIterations { slot: usize },
    /// A slot has 0 stripes.
    ZeroStripes { slot: usize },
    /// A slot's material starts inside the header's sectors.
    MaterialOverlapsHeader { slot: usize },
    /// A slot's material runs into the payload.
    MaterialPastPayload { slot: usize, end: u64, payload: u64 },
    /// Two slots' material overlap.
    MaterialsOverlap { slot: usize, other: usize },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { len } => {
                write!(f, "LUKS header: {len} bytes given, {HEADER_BYTES} needed")
            }
            HeaderError::BadMagic => write!(f, "not a LUKS disk (no LUKS magic)"),
            HeaderError::UnsupportedVersion(v) => write!(f, "LUKS version {v} is not supported (only LUKS1)"),
            HeaderError::UnsupportedCipher { name, mode } => {
                write!(f, "LUKS cipher {name}-{mode} is not supported (only aes-xts-plain64)")
            }
            HeaderError::UnsupportedHash(spec) => {
                write!(f, "LUKS hash {spec} is not supported (only sha1, sha256, sha512)")
            }
            HeaderError::UnsupportedKeySize(bytes) => {
                write!(f, "LUKS key of {bytes} bytes is not supported (aes-xts: 32 or 64)")
            }
            HeaderError::ZeroDigestIterations => write!(f, "LUKS header: master-key digest has 0 iterations"),
            HeaderError::ZeroIterations { slot } => write!(f, "LUKS header: key slot {slot} has 0 iterations"),
            HeaderError::ZeroStripes { slot } => write!(f, "LUKS header: key slot {slot} has 0 stripes"),
            HeaderError::MaterialOverlapsHeader { slot } => {
                write!(f, "LUKS header: key slot {slot} material overlaps the header")
            }
            HeaderError::MaterialPastPayload { slot, end, payload } => {
                write!(f, "LUKS header: key slot {slot} material ends at sector {end}, past the payload at {payload}")
            }
            HeaderError::MaterialsOverlap { slot, other } => {
                write!(f, "LUKS header: key slots {other} and {slot} share key material sectors")
            }
        }
    }
}
