//! What the responder tells the requester about the disk behind a queue:
//! [`StorageInfo`], at the start of the queue region. The responder (the
//! driver, or the filter server towards a client) fills it in and then sets
//! its ready word; the requester polls the ready word and copies the record
//! once it is set.

use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::records::BLOCK_SIZE;
use crate::shared::{AccessError, Shared, Slots};

/// Bytes of the serial number / name field.
pub const SERIAL_LEN: usize = 64;

/// The disk behind a queue, 128 bytes:
///
/// | offset | size | field | meaning |
/// |---:|---:|---|---|
/// | 0x00 | 4 | `ready` | nonzero once the rest is valid and requests are served; written atomically |
/// | 0x04 | 4 | `read_only` | nonzero: writes are refused |
/// | 0x08 | 4 | `block_size` | [`BLOCK_SIZE`] |
/// | 0x0c | 4 | `queue_capacity` | the responder's ring capacity (entries) |
/// | 0x10 | 8 | `capacity` | disk size in blocks |
/// | 0x18 | 64 | `serial` | device serial or name, bytes, NUL-padded |
/// | 0x58 | 40 | reserved | zero |
///
/// Only the responder writes it; the requester reads it only after seeing
/// `ready` set (acquire), so it sees the fields written before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StorageInfo {
    pub ready: u32,
    pub read_only: u32,
    pub block_size: u32,
    pub queue_capacity: u32,
    pub capacity: u64,
    pub serial: [u8; SERIAL_LEN],
    reserved: [u8; 40],
}

/// Bytes of [`StorageInfo`] in the region.
pub const INFO_SIZE: usize = core::mem::size_of::<StorageInfo>();
const _: () = assert!(INFO_SIZE == 128);

/// The record after its ready word: what [`InfoWriter::publish`] copies.
const READY_LEN: usize = 4;
type Body = [u8; INFO_SIZE - READY_LEN];

impl StorageInfo {
    /// A disk of `capacity` blocks served through rings of `queue_capacity`
    /// entries; not ready (publishing sets that), no serial.
    pub const fn new(capacity: u64, read_only: bool, queue_capacity: u32) -> StorageInfo {
        StorageInfo {
            ready: 0,
            read_only: read_only as u32,
            block_size: BLOCK_SIZE,
            queue_capacity,
            capacity,
            serial: [0; SERIAL_LEN],
            reserved: [0; 40],
        }
    }

    /// The same, with a serial number or name (cut to [`SERIAL_LEN`] bytes).
    pub fn with_serial(mut self, serial: &[u8]) -> StorageInfo {
        let n = serial.len().min(SERIAL_LEN);
        self.serial = [0; SERIAL_LEN];
        self.serial[..n].copy_from_slice(&serial[..n]);
        self
    }

    pub const fn is_ready(&self) -> bool {
        self.ready != 0
    }

    pub const fn is_read_only(&self) -> bool {
        self.read_only != 0
    }

    /// The serial number up to its first NUL.
    pub fn serial(&self) -> &[u8] {
        let end = self.serial.iter().position(|&b| b == 0).unwrap_or(SERIAL_LEN);
        &self.serial[..end]
    }
}

/// The requester's view of the info: poll for readiness, copy the record.
pub struct InfoReader<'a> {
    ready: &'a AtomicU32,
    record: Slots<'a, StorageInfo>,
}

impl<'a> InfoReader<'a> {
    /// The info at `offset` of `mem`.
    pub fn new(mem: Shared<'a>, offset: usize) -> Result<Self, AccessError> {
        Ok(InfoReader { ready: mem.atomic_u32(offset)?, record: Slots::new(mem, offset, ONE)? })
    }

    /// Whether the responder has published the info (acquire: if so, the
    /// record it wrote before is visible).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) != 0
    }

    /// A copy of the info once it is published, `None` before. The copy is
    /// untrusted data like anything read from shared memory.
    pub fn get(&self) -> Option<StorageInfo> {
        self.is_ready().then(|| self.record.get(0))
    }
}

/// The responder's view of the info.
pub struct InfoWriter<'a> {
    ready: &'a AtomicU32,
    body: Slots<'a, Body>,
}

impl<'a> InfoWriter<'a> {
    /// The info at `offset` of `mem`.
    pub fn new(mem: Shared<'a>, offset: usize) -> Result<Self, AccessError> {
        Ok(InfoWriter { ready: mem.atomic_u32(offset)?, body: Slots::new(mem, offset + READY_LEN, ONE)? })
    }

    /// Write `info` (its `ready` field is ignored), then set the ready word
    /// with release ordering so a reader that sees it set sees the record.
    /// Publishing again first withdraws: a reader never sees ready set over
    /// a half-written record (one that copied the old record keeps it).
    pub fn publish(&mut self, info: &StorageInfo) {
        self.withdraw();
        let mut body: Body = [0; INFO_SIZE - READY_LEN];
        body.copy_from_slice(&info.as_bytes()[READY_LEN..]);
        self.body.set(0, &body);
        self.ready.store(1, Ordering::Release);
    }

    /// Clear the ready word: the device is gone or being reconfigured.
    pub fn withdraw(&mut self) {
        self.ready.store(0, Ordering::Release);
    }
}

const ONE: NonZeroU32 = NonZeroU32::MIN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_invisible_until_published() {
        let mut buf = [0u64; 16];
        let mem = Shared::from_words(&mut buf);
        let reader = InfoReader::new(mem, 0).unwrap();
        let mut writer = InfoWriter::new(mem, 0).unwrap();
        assert_eq!(reader.get(), None);
        let info = StorageInfo::new(1 << 20, true, 64).with_serial(b"strata-disk-0");
        writer.publish(&info);
        let seen = reader.get().unwrap();
        assert!(seen.is_ready());
        assert_eq!(StorageInfo { ready: 0, ..seen }, info);
        assert_eq!(seen.serial(), b"strata-disk-0");
        assert!(seen.is_read_only());
        assert_eq!(seen.block_size, BLOCK_SIZE);
        writer.withdraw();
        assert_eq!(reader.get(), None);
    }

    #[test]
    fn info_layout_matches_the_table() {
        let info = StorageInfo { ready: 1, ..StorageInfo::new(0x0102, false, 32) }.with_serial(b"ab");
        let b = info.as_bytes();
        assert_eq!(&b[0x00..0x04], &1u32.to_le_bytes());
        assert_eq!(&b[0x04..0x08], &0u32.to_le_bytes());
        assert_eq!(&b[0x08..0x0c], &4096u32.to_le_bytes());
        assert_eq!(&b[0x0c..0x10], &32u32.to_le_bytes());
        assert_eq!(&b[0x10..0x18], &0x0102u64.to_le_bytes());
        assert_eq!(&b[0x18..0x1b], b"ab\0");
        assert!(b[0x58..].iter().all(|&x| x == 0));
    }

    #[test]
    fn a_full_length_serial_has_no_terminator_and_longer_ones_are_cut() {
        let info = StorageInfo::new(1, false, 1).with_serial(&[b'x'; 80]);
        assert_eq!(info.serial(), &[b'x'; SERIAL_LEN]);
    }

    #[test]
    fn info_outside_the_region_is_refused() {
        let mut buf = [0u64; 15];
        let mem = Shared::from_words(&mut buf);
        assert!(InfoReader::new(mem, 0).is_err());
        assert!(InfoWriter::new(mem, 0).is_err());
    }
}
