//! The records that travel in the rings: [`Request`] (requester to
//! responder) and [`Response`] (back). Both are plain little-endian C layouts
//! of fixed size; every bit pattern is a valid record, so one read from a
//! hostile peer is just data to be checked, and the typed views ([`Op`],
//! [`Status`]) are decoded from the raw numbers with an error for values
//! this side does not know.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};


/// Bytes in one block: the unit of every block number, count and capacity
/// in this protocol. A virtio device counts 512-byte sectors; the driver
/// converts (one block is 8 sectors).
pub const BLOCK_SIZE: u32 = 4096;

/// What a request asks for. The numbers are the wire values of
/// [`Request::opcode`] and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Op {
    /// Copy `count` blocks from `block` on the disk into the data region.
    Read = 0,
    /// Copy `count` blocks from the data region to `block` on the disk.
    Write = 1,
    /// Complete once every write sent before it is durable: earlier
    /// requests finish first, and later ones start only after them. (A
    /// write answered with an error is not covered; its own answer says
    /// so.)
    Flush = 2,
    /// Complete once every request before it has completed; later requests
    /// start only after it.
    Barrier = 3,
    /// Complete once every write answered before it was sent is durable.
    /// Requests in flight are neither waited for nor held back. The filter
    /// server turns a client's `Flush` into this once that client's earlier
    /// requests are answered, so one client's flush does not stall the
    /// others at the driver.
    FlushCompleted = 4,
    /// Ask the filter server to print the statistics of the requester's
    /// disk (what each filter of its chain saw and answered); answered OK
    /// by the server at once. Moves nothing and orders nothing; a driver
    /// answers it `InvalidRequest`.
    Report = 5,
}

/// An opcode this side does not know: the answer is
/// [`Status::InvalidRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownOp(pub u32);

impl Op {
    pub const ALL: [Op; 6] = [Op::Read, Op::Write, Op::Flush, Op::Barrier, Op::FlushCompleted, Op::Report];

    pub const fn from_raw(raw: u32) -> Result<Op, UnknownOp> {
        match raw {
            0 => Ok(Op::Read),
            1 => Ok(Op::Write),
            2 => Ok(Op::Flush),
            3 => Ok(Op::Barrier),
            4 => Ok(Op::FlushCompleted),
            5 => Ok(Op::Report),
            _ => Err(UnknownOp(raw)),
        }
    }

    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// Whether the request moves data (and so uses `count` and
    /// `data_offset`).
    pub const fn moves_data(self) -> bool {
        matches!(self, Op::Read | Op::Write)
    }

}

/// How a request ended. The numbers are the wire values of
/// [`Response::status_code`] and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// Done; `count` blocks transferred.
    Ok = 0,
    /// The request was malformed: unknown opcode, zero count, a range past
    /// the end of the disk, a data buffer outside the data region or not
    /// block-aligned, a write to a read-only disk.
    InvalidRequest = 1,
    /// The device failed the request.
    IoError = 2,
    /// There is no usable device behind this queue (not ready, or gone).
    NoDevice = 3,
}

/// A status this side does not know. Treat the request as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStatus(pub u32);

impl Status {
    pub const ALL: [Status; 4] = [Status::Ok, Status::InvalidRequest, Status::IoError, Status::NoDevice];

    pub const fn from_raw(raw: u32) -> Result<Status, UnknownStatus> {
        match raw {
            0 => Ok(Status::Ok),
            1 => Ok(Status::InvalidRequest),
            2 => Ok(Status::IoError),
            3 => Ok(Status::NoDevice),
            _ => Err(UnknownStatus(raw)),
        }
    }

    pub const fn raw(self) -> u32 {
        self as u32
    }

    pub const fn is_ok(self) -> bool {
        matches!(self, Status::Ok)
    }
}

/// A request, 32 bytes:
///
/// | offset | size | field | meaning |
/// |---:|---:|---|---|
/// | 0 | 4 | `id` | chosen by the requester, echoed in the response |
/// | 4 | 4 | `opcode` | an [`Op`] (raw, may be unknown) |
/// | 8 | 8 | `block` | first block on the disk |
/// | 16 | 4 | `count` | blocks to transfer (read/write) |
/// | 20 | 4 | `tag` | echoed in the response, like `id` |
/// | 24 | 8 | `data_offset` | byte offset of the buffer in the requester's data region |
///
/// For flush and barrier only `id`, `opcode` and `tag` mean anything. The
/// `tag` is for a server that forwards requests: the filter server sets it
/// to route the answer back (whatever a client put there is overwritten);
/// a client may leave it zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Request {
    pub id: u32,
    pub opcode: u32,
    pub block: u64,
    pub count: u32,
    pub tag: u32,
    pub data_offset: u64,
}

impl Request {
    pub const fn new(id: u32, op: Op, block: u64, count: u32, data_offset: u64) -> Request {
        Request { id, opcode: op.raw(), block, count, tag: 0, data_offset }
    }

    pub const fn with_tag(self, tag: u32) -> Request {
        Request { tag, ..self }
    }

    /// A flush or barrier: no blocks, no data.
    pub const fn ordering(id: u32, op: Op) -> Request {
        Request::new(id, op, 0, 0, 0)
    }

    pub const fn op(&self) -> Result<Op, UnknownOp> {
        Op::from_raw(self.opcode)
    }

    /// Bytes of data the request moves, `count * BLOCK_SIZE` (0 for flush
    /// and barrier, or an unknown opcode).
    pub const fn data_len(&self) -> u64 {
        match self.op() {
            Ok(op) if op.moves_data() => self.count as u64 * BLOCK_SIZE as u64,
            _ => 0,
        }
    }

    /// [`StorageInfo::check`](crate::StorageInfo::check) as a yes or no, for a disk of `blocks` blocks
    /// (the filter server's hot path uses its first half,
    /// [`is_transfer_for`](Self::is_transfer_for), and forwards the raw
    /// opcode).
    ///
    /// Each range is checked through its end: `start < end` says the count
    /// is not zero and the end did not wrap around 2^64 (adding less than
    /// 2^64 wraps to below the start), `end <= limit` that it fits. One
    /// chain of comparisons with no branch between them (aarch64 chains
    /// them with conditional compares).
    pub fn is_valid_for(&self, blocks: u64, read_only: bool, data_region_len: u64) -> bool {
        self.is_transfer_for(blocks, read_only, data_region_len)
            || self.opcode.wrapping_sub(Op::Flush as u32) <= Op::Report as u32 - Op::Flush as u32
    }

    /// Whether this is a read or write that [`is_valid_for`]
    /// (Self::is_valid_for) the view (a flush or barrier is not).
    pub fn is_transfer_for(&self, blocks: u64, read_only: bool, data_region_len: u64) -> bool {
        let (op, count) = (self.opcode, self.count as u64);
        let end = self.block.wrapping_add(count);
        let data_end = self.data_offset.wrapping_add(count * BLOCK_SIZE as u64);
        // Reads, and writes unless the disk is read-only.
        let moves_data = op <= Op::Write as u32 - read_only as u32;
        moves_data
            && self.data_offset % BLOCK_SIZE as u64 == 0
            && self.block < end
            && end <= blocks
            && self.data_offset < data_end
            && data_end <= data_region_len
    }

    /// This request as a server forwards it: blocks shifted by `first`, the
    /// data offset by `base` (making it an address in the next one's view),
    /// tagged `tag`. Only for a request [`is_valid_for`](Self::is_valid_for)
    /// the client's view (for a flush or barrier the shifted fields stay
    /// meaningless).
    pub const fn forwarded(&self, first: u64, base: u64, tag: u32) -> Request {
        Request { block: self.block.wrapping_add(first), data_offset: self.data_offset.wrapping_add(base), tag, ..*self }
    }
}

/// A response, 16 bytes:
///
/// | offset | size | field | meaning |
/// |---:|---:|---|---|
/// | 0 | 4 | `id` | the request's `id` |
/// | 4 | 4 | `status_code` | a [`Status`] (raw, may be unknown) |
/// | 8 | 4 | `count` | blocks transferred |
/// | 12 | 4 | `tag` | the request's `tag` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Response {
    pub id: u32,
    pub status_code: u32,
    pub count: u32,
    pub tag: u32,
}

impl Response {
    pub const fn new(id: u32, status: Status, count: u32) -> Response {
        Response { id, status_code: status.raw(), count, tag: 0 }
    }

    pub const fn with_tag(self, tag: u32) -> Response {
        Response { tag, ..self }
    }

    pub const fn status(&self) -> Result<Status, UnknownStatus> {
        Status::from_raw(self.status_code)
    }

    /// Its status for a person to read: `I/O error`, or `unknown block
    /// status 9`.
    pub fn status_text(&self) -> impl fmt::Display {
        StatusText(self.status())
    }
}

struct StatusText(Result<Status, UnknownStatus>);

impl fmt::Display for StatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(status) => status.fmt(f),
            Err(unknown) => unknown.fmt(f),
        }
    }
}

const _: () = assert!(core::mem::size_of::<Request>() == 32);
const _: () = assert!(core::mem::size_of::<Response>() == 16);

impl fmt::Display for UnknownOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown block opcode {}", self.0)
    }
}

impl core::error::Error for UnknownOp {}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::InvalidRequest => "invalid request",
            Status::IoError => "I/O error",
            Status::NoDevice => "no device",
        })
    }
}

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown block status {}", self.0)
    }
}

impl core::error::Error for UnknownStatus {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_and_statuses_have_stable_wire_values() {
        assert_eq!(Op::ALL.map(Op::raw), [0, 1, 2, 3, 4, 5]);
        assert_eq!(Status::ALL.map(Status::raw), [0, 1, 2, 3]);
        for op in Op::ALL {
            assert_eq!(Op::from_raw(op.raw()), Ok(op));
        }
        for status in Status::ALL {
            assert_eq!(Status::from_raw(status.raw()), Ok(status));
        }
    }

    #[test]
    fn a_status_reads_as_words() {
        let said = |code| Response { status_code: code, ..Response::new(0, Status::Ok, 0) }.status_text().to_string();
        assert_eq!([0, 1, 2, 3, 7].map(said), ["ok", "invalid request", "I/O error", "no device", "unknown block status 7"]);
    }

    #[test]
    fn unknown_opcodes_and_statuses_decode_to_errors() {
        assert_eq!(Op::from_raw(6), Err(UnknownOp(6)));
        assert_eq!(Op::from_raw(u32::MAX), Err(UnknownOp(u32::MAX)));
        assert_eq!(Status::from_raw(4), Err(UnknownStatus(4)));
        let mut r = Request::new(1, Op::Read, 0, 1, 0);
        r.opcode = 99;
        assert_eq!(r.op(), Err(UnknownOp(99)));
        assert_eq!(r.data_len(), 0);
    }

    #[test]
    fn request_layout_is_little_endian_c() {
        let r = Request::new(0x0403_0201, Op::Write, 0x0807_0605_0403_0201, 3, 0x2000).with_tag(9);
        let b = r.as_bytes();
        assert_eq!(&b[0..4], &[1, 2, 3, 4]);
        assert_eq!(&b[4..8], &[1, 0, 0, 0]);
        assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[16..24], &[3, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(&b[24..32], &0x2000u64.to_le_bytes());
        assert_eq!(Request::read_from_bytes(b), Ok(r));
    }

    #[test]
    fn response_layout_is_little_endian_c() {
        let r = Response::new(7, Status::IoError, 2).with_tag(5);
        assert_eq!(r.as_bytes(), &[7, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(Response::read_from_bytes(r.as_bytes()), Ok(r));
    }
}
