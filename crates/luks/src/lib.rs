//! LUKS1 for the Strata storage stack: open a disk that cryptsetup (or
//! QEMU's `luks` block driver) formatted, and encrypt and decrypt its
//! payload exactly as dm-crypt and QEMU do. `no_std`, no allocator, no
//! `unsafe`: the `filter_crypt` protection domain runs it on its own
//! buffers.
//!
//! # What is supported
//!
//! LUKS1 headers with cipher `aes`, mode `xts-plain64`, a 32-byte
//! (AES-128-XTS) or 64-byte (AES-256-XTS, cryptsetup's default) key, and
//! hash `sha1`, `sha256` or `sha512`. Anything else is refused by
//! [`Header::parse`] with a [`HeaderError`] that says what it found.
//! LUKS2 and detached headers are not supported.
//!
//! # Opening a disk
//!
//! ```text
//! sector 0                                           payload_offset()
//! | header (592 B) | slot 0 material | ... | slot 7 material | payload ...
//! ```
//!
//! 1. Read the first [`HEADER_BYTES`] (two sectors) and [`Header::parse`]
//!    them.
//! 2. [`unlock`] tries the passphrase on every active slot, reading each
//!    slot's material (the sectors [`Header::material`] names) through a
//!    closure, into one scratch buffer the caller lends:
//!    [`Header::largest_material_bytes`], at most
//!    [`MATERIAL_BYTES_512_BIT_KEY`] = 64 * 4000 = 256,000 bytes (500
//!    sectors) for cryptsetup's default 512-bit key. ([`unlock_slot`] does
//!    one slot, from material the caller already has.)
//! 3. [`Cipher::new`] with the [`MasterKey`]; then for every request,
//!    [`Cipher::decrypt_block`] after a read and [`Cipher::encrypt_block`]
//!    before a write, numbering blocks from the payload's start: disk
//!    sector `payload_offset() + 8 * b` is payload block `b`.
//!
//! ```
//! # fn demo(disk: &[u8]) -> Result<(), &'static str> {
//! let header = luks::Header::parse(&disk[..1024]).map_err(|_| "header")?;
//! let mut scratch = [0u8; luks::MATERIAL_BYTES_512_BIT_KEY];
//! let unlocked = luks::unlock(&header, b"passphrase", &mut scratch, |first, sectors, buf| {
//!     let at = first as usize * luks::SECTOR_SIZE;
//!     buf.copy_from_slice(disk.get(at..at + sectors as usize * luks::SECTOR_SIZE).ok_or("short disk")?);
//!     Ok::<(), &'static str>(())
//! }).map_err(|_| "unlock")?;
//! let cipher = luks::Cipher::new(&unlocked.key);
//! let mut block = [0u8; luks::BLOCK_SIZE];
//! let at = header.payload_offset() as usize * luks::SECTOR_SIZE;
//! block.copy_from_slice(&disk[at..at + luks::BLOCK_SIZE]);
//! cipher.decrypt_block(0, &mut block);
//! # Ok(()) }
//! ```
//!
//! # Building for the protection domains (hardware AES and SHA)
//!
//! On `aarch64-unknown-none` the crypto crates cannot ask an OS what the
//! CPU has, so they decide at compile time. The PD build needs
//!
//! ```text
//! --cfg aes_armv8 -C target-feature=+aes,+sha2
//! ```
//!
//! in its rustflags (the `[target.aarch64-unknown-none]` rustflags in
//! `.cargo/config.toml`, or RUSTFLAGS, which replaces those):
//!
//! - `--cfg aes_armv8`: the `aes` crate (0.8) compiles its ARMv8 backend
//!   only with this flag. Without it `+aes` does nothing and AES runs the
//!   portable bitsliced code: 286,000 instructions per 4 KiB block instead
//!   of 14,000 (measured, AES-256-XTS).
//! - `+aes`: lets that backend's check pass (it is the compile-time
//!   feature on bare metal).
//! - `+sha2`: `sha2` and `sha1` (0.11) then use the SHA-1/SHA-256
//!   instructions, which makes unlocking 13 times cheaper (below). SHA-512
//!   has instructions only from ARMv8.2 (`+sha3`, which cortex-a53 lacks),
//!   so a sha512 header unlocks with portable code.
//!
//! The CPU must have the crypto extension (QEMU's `cortex-a53` and `max`
//! do), or the PD takes an undefined-instruction fault.
//!
//! # Cost (QEMU cortex-a53, `-icount shift=0`, the flags above)
//!
//! | operation | instructions |
//! |---|---:|
//! | [`Cipher::encrypt_block`] / [`Cipher::decrypt_block`], AES-256-XTS | 14,000 |
//! | the same, AES-128-XTS | 10,200 |
//! | [`Cipher::new`] (key expansion) | 3,400 |
//! | [`unlock_slot`], sha256, 512-bit key: per slot iteration | 690 |
//! | the same: the rest (AF merge, 1000-iteration digest, 256 KB decrypt) | 8.1 M |
//! | [`unlock_slot`], sha1, 512-bit key: per slot iteration | 1,360 |
//! | [`unlock_slot`] on a default `cryptsetup luksFormat` header made here (sha256, 4.15 M slot and 260 k digest iterations) | 2.96 G |
//!
//! A 4 KiB block is 8 sectors: 264 AES block operations (8 tweaks, 256
//! data blocks); the `aes` crate's batches are 9,300 (AES-256) and 5,500
//! (AES-128) of the figures above, the rest is the XTS whitening. Unlocking
//! costs what the header asks: cryptsetup picks the iteration counts by
//! timing the machine that formats (2 s for a slot), so a header made on a
//! fast PC costs seconds of emulated CPU with `+sha2`, and 13 times that
//! without. Each active slot tried costs its own iterations: the right
//! passphrase in a later slot pays for the earlier ones.
//!
//! # Layout of the crate
//!
//! | module | what it does |
//! |---|---|
//! | `header` | parses and checks the `phdr`, names the slots' sectors |
//! | `unlock` | passphrase + slot material -> master key, checked |
//! | `af` | the anti-forensic merge |
//! | `hash` | the hash-spec, PBKDF2 |
//! | `cipher` | aes-xts-plain64 over payload sectors and blocks |
//! | `xts` | the XTS mode over 512-byte sectors |
//! | `key` | the master key, wiped on drop |
//! | `text` | the header's text fields |
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod af;
mod cipher;
mod hash;
mod header;
mod kdf;
mod key;
mod open;
mod text;
mod unlock;
mod xts;

pub use cipher::Cipher;
pub use hash::Hash;
pub use header::{Extent, Header, HeaderError, KeySlot, HEADER_BYTES, KEY_SLOTS};
pub use kdf::Pbkdf2;
pub use key::{KeySizeError, MasterKey};
pub use open::SlotOpener;
pub use text::Text;
pub use unlock::{unlock, unlock_slot, UnlockError, Unlocked};

/// LUKS1 sectors, for the payload and the key material alike.
pub const SECTOR_SIZE: usize = 512;

/// The storage stack's block: 8 sectors.
pub const BLOCK_SIZE: usize = 4096;

/// Key material of one slot for a 64-byte (512-bit) key and 4000 stripes,
/// cryptsetup's defaults for aes-xts-plain64: the scratch buffer
/// [`unlock`] needs for such a disk (500 sectors).
pub const MATERIAL_BYTES_512_BIT_KEY: usize = 64 * 4000;
