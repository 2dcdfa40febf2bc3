//! What the responder tells the requester about the disk behind a queue:
//! [`StorageInfo`], at the start of the queue region. The responder (the
//! driver, or the filter server towards a client) fills it in and then sets
//! its ready word; the requester polls the ready word and copies the record
//! once it is set.

use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::records::{Op, Request, Status, BLOCK_SIZE};
use shared_memory::{AccessError, Shared, Slots};

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
/// | 0x58 | 4 | `absent` | nonzero: no device is behind the disk (its capacity is 0, every request is answered `NoDevice`) |
/// | 0x5c | 36 | reserved | zero |
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
    pub absent: u32,
    reserved: [u8; 36],
}

/// Bytes of [`StorageInfo`] in the region.
pub const INFO_SIZE: usize = core::mem::size_of::<StorageInfo>();
const _: () = assert!(INFO_SIZE == 128);

/// The record after its ready word: what [`InfoWriter::publish`] copies.
const READY_LEN: usize = 4;
type Body = [u8; INFO_SIZE - READY_LEN];

impl StorageInfo {
    /// Check a request from an untrusted requester against this disk and
    /// the requester's data region, as the filter server does. Returns the
    /// operation, or the status to answer with.
    ///
    /// A read or write must have a known opcode, at least one block, a
    /// block range inside the disk, and a block-aligned buffer inside the
    /// data region; a write needs a writable disk. Flushes and barriers are
    /// always well formed.
    pub fn check(&self, req: &Request, data_region_len: u64) -> Result<Op, Status> {
        if !req.is_valid_for(self.capacity, self.is_read_only(), data_region_len) {
            return Err(Status::InvalidRequest);
        }
        Op::from_raw(req.opcode).map_err(|_| Status::InvalidRequest)
    }

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
            absent: 0,
            reserved: [0; 36],
        }
    }

    /// A disk with no device behind it: no blocks, and every request is
    /// answered `NoDevice`.
    pub const fn absent(queue_capacity: u32) -> StorageInfo {
        StorageInfo { absent: 1, ..StorageInfo::new(0, false, queue_capacity) }
    }

    pub const fn is_absent(&self) -> bool {
        self.absent != 0
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

    fn disk(capacity: u64, read_only: bool) -> StorageInfo {
        StorageInfo::new(capacity, read_only, 8)
    }

    #[test]
    fn well_formed_requests_pass_the_check() {
        let d = disk(100, false);
        assert_eq!(d.check(&Request::new(1, Op::Read, 0, 100, 0), 100 * 4096), Ok(Op::Read));
        assert_eq!(d.check(&Request::new(1, Op::Write, 99, 1, 4096), 8192), Ok(Op::Write));
        assert_eq!(d.check(&Request::ordering(1, Op::Flush), 0), Ok(Op::Flush));
        // Fields of flushes and barriers are ignored.
        assert_eq!(d.check(&Request::new(1, Op::Barrier, u64::MAX, 7, 3), 0), Ok(Op::Barrier));
        assert_eq!(d.check(&Request::new(1, Op::FlushCompleted, 5, 0, 1), 0), Ok(Op::FlushCompleted));
    }

    #[test]
    fn malformed_requests_are_answered_invalid_request() {
        let d = disk(100, false);
        let bad = [
            Request::new(1, Op::Read, 0, 0, 0),                     // no blocks
            Request::new(1, Op::Read, 99, 2, 0),                    // past the end of the disk
            Request::new(1, Op::Read, u64::MAX, 2, 0),              // block + count overflows
            Request::new(1, Op::Read, 0, 1, 4095),                  // buffer not block-aligned
            Request::new(1, Op::Read, 0, 2, 4096),                  // buffer past the region
            Request::new(1, Op::Write, 0, 1, u64::MAX - 4095),      // offset + length overflows
        ];
        for r in bad {
            assert_eq!(d.check(&r, 8192), Err(Status::InvalidRequest), "{r:?}");
        }
        let mut unknown = Request::ordering(1, Op::Flush);
        unknown.opcode = 6;
        assert_eq!(d.check(&unknown, 8192), Err(Status::InvalidRequest));
    }

    #[test]
    fn writes_to_a_read_only_disk_are_refused_and_reads_are_not() {
        let d = disk(10, true);
        assert_eq!(d.check(&Request::new(1, Op::Write, 0, 1, 0), 4096), Err(Status::InvalidRequest));
        assert_eq!(d.check(&Request::new(1, Op::Read, 0, 1, 0), 4096), Ok(Op::Read));
    }
}
