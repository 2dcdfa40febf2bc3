//! The filter ABI: how the filter server and a filter PD talk.
//!
//! A filter is a passive PD. For each request the server makes a protected
//! procedure call (an *upcall*) to every filter of the disk's chain: a
//! pre-operation upcall in chain order before the request goes down, a
//! post-operation upcall in reverse order after it completed. The filter
//! answers each with a [`Verdict`]. The request's data, if the filter
//! declared rights to it, is in the filter's *data window*, a shared region
//! the server fills (or maps) for the request; the upcall says where.
//!
//! # Messages
//!
//! Message registers are `u64`s, at most [`MAX_MESSAGE_REGISTERS`]. Two
//! 32-bit fields share a register as `low | high << 32`. Labels:
//!
//! | label | direction | registers |
//! |---|---|---|
//! | [`label::PRE`] `0x100` | server to filter | 4: the [`Io`] |
//! | [`label::POST`] `0x101` | server to filter | 5: the [`Io`], then the [`Completion`] |
//! | [`label::CONTINUE`] `0x200` | filter to server | 0 |
//! | [`label::COMPLETE`] `0x201` | filter to server | 1: status, count |
//! | [`label::FAIL`] `0x202` | filter to server | 1: status, high half zero |
//! | [`label::REDIRECT`] `0x203` | filter to server | 1: disk id, high half zero |
//!
//! An [`Io`] is four registers:
//!
//! | register | low 32 bits | high 32 bits |
//! |---:|---|---|
//! | 0 | request id | disk id |
//! | 1 | [`Op`] | count (blocks) |
//! | 2 | block number (all 64 bits) | |
//! | 3 | data offset in the window (bytes) | data length (bytes) |
//!
//! and a [`Completion`] one: status low, count done high.
//!
//! Labels live in different ranges for the two directions, so a reply read
//! as an upcall (or the reverse) is an unknown label, not a wrong answer.
//! Decoding checks the label, the exact number of registers, the opcode,
//! the status and that unused halves are zero, and returns a
//! [`MessageError`] rather than panicking: a filter is untrusted by the
//! server, and a filter trusts nothing it cannot check.

use core::fmt;

use crate::records::{Op, Status};
use crate::shared::{AccessError, Shared};

/// Message registers a PPC carries at most.
pub const MAX_MESSAGE_REGISTERS: usize = 64;

/// Registers the longest message of this ABI uses.
pub const MAX_WORDS: usize = 5;

/// Message labels (see the module docs).
pub mod label {
    /// Pre-operation upcall.
    pub const PRE: u64 = 0x100;
    /// Post-operation upcall.
    pub const POST: u64 = 0x101;
    /// Verdict: go on.
    pub const CONTINUE: u64 = 0x200;
    /// Verdict: the request is done, with this result.
    pub const COMPLETE: u64 = 0x201;
    /// Verdict: the request failed.
    pub const FAIL: u64 = 0x202;
    /// Verdict: send the request down another disk's chain.
    pub const REDIRECT: u64 = 0x203;
}

/// A disk (or partition) as the filter server numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiskId(pub u32);

/// Bytes of a filter's data window that hold a request's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSpan {
    pub offset: u32,
    pub len: u32,
}

/// A request as a filter sees it: already checked by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Io {
    /// The server's id for the request (not the client's).
    pub id: u32,
    /// The disk whose chain the request is on.
    pub disk: DiskId,
    pub op: Op,
    pub block: u64,
    pub count: u32,
    /// Where the data is in the filter's window (empty for flush and
    /// barrier).
    pub data: DataSpan,
}

/// The result of a request: how it ended and how many blocks it moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub count: u32,
}

/// A call from the server to a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upcall {
    /// Before the request goes further down the chain.
    Pre(Io),
    /// After it completed below this filter.
    Post(Io, Completion),
}

/// A filter's answer to an upcall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pre: pass the request on down the chain. Post: pass the completion
    /// on up unchanged.
    Continue,
    /// Pre: the request is done without going further (a cache hit: the
    /// filter filled the data window); the filters above see this completion
    /// in their post upcalls. Post: replace the completion.
    Complete { status: Status, count: u32 },
    /// The request failed with this status (never [`Status::Ok`]). The
    /// filters above see it in their post upcalls.
    Fail(Status),
    /// Pre: send the request to the top of this disk's chain instead
    /// (linked storage). Post: issue it again on this disk (a mirror
    /// retrying a failed read). A server that does not support that treats
    /// it as `Fail(IoError)`.
    Redirect(DiskId),
}

/// A message ready for the registers: a label and up to [`MAX_WORDS`]
/// words. The PD shell copies `words()` into message registers 0.. and
/// sends `MessageInfo::new(label(), words().len())`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message {
    label: u64,
    len: usize,
    words: [u64; MAX_WORDS],
}

impl Message {
    fn new(label: u64, words: &[u64]) -> Message {
        let mut m = Message { label, len: words.len(), words: [0; MAX_WORDS] };
        m.words[..words.len()].copy_from_slice(words);
        m
    }

    pub fn label(&self) -> u64 {
        self.label
    }

    pub fn words(&self) -> &[u64] {
        &self.words[..self.len]
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({:#x}, {:x?})", self.label, self.words())
    }
}

/// Why registers do not decode to a message of this ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// Not a label of this ABI (for this direction).
    UnknownLabel(u64),
    /// The message for `label` has `expected` registers, not `got`.
    WrongLength { label: u64, expected: usize, got: usize },
    UnknownOp(u32),
    UnknownStatus(u32),
    /// The high half of `register` must be zero.
    ReservedBits { register: usize },
    /// A `FAIL` verdict with an OK status.
    FailWithOk,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MessageError::UnknownLabel(l) => write!(f, "unknown filter message label {l:#x}"),
            MessageError::WrongLength { label, expected, got } => {
                write!(f, "filter message {label:#x} has {got} registers, expected {expected}")
            }
            MessageError::UnknownOp(op) => write!(f, "filter message: unknown opcode {op}"),
            MessageError::UnknownStatus(s) => write!(f, "filter message: unknown status {s}"),
            MessageError::ReservedBits { register } => {
                write!(f, "filter message: reserved bits set in register {register}")
            }
            MessageError::FailWithOk => f.write_str("filter message: a failure with status OK"),
        }
    }
}

impl core::error::Error for MessageError {}

const fn pack(low: u32, high: u32) -> u64 {
    low as u64 | (high as u64) << 32
}

const fn unpack(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}

/// The low half of `words[register]`, whose high half must be zero.
fn low_only(words: &[u64], register: usize) -> Result<u32, MessageError> {
    match unpack(words[register]) {
        (low, 0) => Ok(low),
        _ => Err(MessageError::ReservedBits { register }),
    }
}

fn exact<const N: usize>(label: u64, words: &[u64]) -> Result<&[u64; N], MessageError> {
    words.try_into().map_err(|_| MessageError::WrongLength { label, expected: N, got: words.len() })
}

fn status(raw: u32) -> Result<Status, MessageError> {
    Status::from_raw(raw).map_err(|e| MessageError::UnknownStatus(e.0))
}

impl Io {
    const WORDS: usize = 4;

    fn encode(&self) -> [u64; Io::WORDS] {
        [
            pack(self.id, self.disk.0),
            pack(self.op.raw(), self.count),
            self.block,
            pack(self.data.offset, self.data.len),
        ]
    }

    fn decode(words: &[u64; Io::WORDS]) -> Result<Io, MessageError> {
        let (id, disk) = unpack(words[0]);
        let (op, count) = unpack(words[1]);
        let (offset, len) = unpack(words[3]);
        Ok(Io {
            id,
            disk: DiskId(disk),
            op: Op::from_raw(op).map_err(|e| MessageError::UnknownOp(e.0))?,
            block: words[2],
            count,
            data: DataSpan { offset, len },
        })
    }
}

impl Completion {
    fn encode(&self) -> u64 {
        pack(self.status.raw(), self.count)
    }

    fn decode(word: u64) -> Result<Completion, MessageError> {
        let (raw, count) = unpack(word);
        Ok(Completion { status: status(raw)?, count })
    }
}

impl Upcall {
    pub fn encode(&self) -> Message {
        match self {
            Upcall::Pre(io) => Message::new(label::PRE, &io.encode()),
            Upcall::Post(io, done) => {
                let [a, b, c, d] = io.encode();
                Message::new(label::POST, &[a, b, c, d, done.encode()])
            }
        }
    }

    /// Decode an upcall from its label and message registers (as many as
    /// the message info's count says).
    pub fn decode(label: u64, words: &[u64]) -> Result<Upcall, MessageError> {
        match label {
            label::PRE => Ok(Upcall::Pre(Io::decode(exact::<4>(label, words)?)?)),
            label::POST => {
                let [a, b, c, d, e] = *exact::<5>(label, words)?;
                Ok(Upcall::Post(Io::decode(&[a, b, c, d])?, Completion::decode(e)?))
            }
            _ => Err(MessageError::UnknownLabel(label)),
        }
    }

    pub fn io(&self) -> &Io {
        match self {
            Upcall::Pre(io) | Upcall::Post(io, _) => io,
        }
    }
}

impl Verdict {
    pub fn encode(&self) -> Message {
        match *self {
            Verdict::Continue => Message::new(label::CONTINUE, &[]),
            Verdict::Complete { status, count } => Message::new(label::COMPLETE, &[pack(status.raw(), count)]),
            Verdict::Fail(status) => Message::new(label::FAIL, &[status.raw() as u64]),
            Verdict::Redirect(disk) => Message::new(label::REDIRECT, &[disk.0 as u64]),
        }
    }

    /// Decode a filter's reply from its label and message registers.
    pub fn decode(label: u64, words: &[u64]) -> Result<Verdict, MessageError> {
        match label {
            label::CONTINUE => exact::<0>(label, words).map(|_| Verdict::Continue),
            label::COMPLETE => {
                let done = Completion::decode(exact::<1>(label, words)?[0])?;
                Ok(Verdict::Complete { status: done.status, count: done.count })
            }
            label::FAIL => match status(low_only(exact::<1>(label, words)?, 0)?)? {
                Status::Ok => Err(MessageError::FailWithOk),
                s => Ok(Verdict::Fail(s)),
            },
            label::REDIRECT => Ok(Verdict::Redirect(DiskId(low_only(exact::<1>(label, words)?, 0)?))),
            _ => Err(MessageError::UnknownLabel(label)),
        }
    }
}

/// What a filter may do with request data; declared per filter in the
/// system description, enforced by the mapping of its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAccess {
    None,
    Read,
    ReadWrite,
}

/// Why a data window access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// The filter has no rights to the data.
    NoAccess,
    /// The filter may read the data, not write it.
    ReadOnly,
    /// Outside the request's data.
    Outside(AccessError),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::NoAccess => f.write_str("this filter has no access to request data"),
            DataError::ReadOnly => f.write_str("this filter may only read request data"),
            DataError::Outside(e) => write!(f, "request data: {e}"),
        }
    }
}

impl core::error::Error for DataError {}

/// A request's data as a filter reaches it: bytes `0..len()` are the
/// request's data, reached by checked copies with the filter's rights.
///
/// Why not `&mut [u8]`: the window is shared memory that the server (and,
/// when it is mapped through, the client) may change while the filter runs,
/// and a Rust slice promises it does not change; a private copy would cost
/// every filter two copies of every block. A filter that works on a block at
/// a time copies it in with [`read`](Self::read) and out with
/// [`write`](Self::write).
#[derive(Clone, Copy, Debug)]
pub struct DataWindow<'a> {
    mem: Option<Shared<'a>>,
    access: DataAccess,
}

impl<'a> DataWindow<'a> {
    /// A filter's whole data window with its declared rights.
    pub fn new(mem: Shared<'a>, access: DataAccess) -> DataWindow<'a> {
        match access {
            DataAccess::None => DataWindow::none(),
            _ => DataWindow { mem: Some(mem), access },
        }
    }

    /// No data access at all.
    pub const fn none() -> DataWindow<'a> {
        DataWindow { mem: None, access: DataAccess::None }
    }

    pub fn access(&self) -> DataAccess {
        self.access
    }

    /// Bytes of data reachable (0 without access).
    pub fn len(&self) -> usize {
        self.mem.map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part of this window a request's data occupies. Without access
    /// the span does not matter and the result has no access either.
    pub fn narrow(&self, span: DataSpan) -> Result<DataWindow<'a>, DataError> {
        match self.mem {
            None => Ok(DataWindow::none()),
            Some(mem) => Ok(DataWindow {
                mem: Some(mem.window(span.offset as usize, span.len as usize).map_err(DataError::Outside)?),
                access: self.access,
            }),
        }
    }

    /// Copy data from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DataError> {
        let mem = self.mem.ok_or(DataError::NoAccess)?;
        mem.read_bytes(offset, out).map_err(DataError::Outside)
    }

    /// Copy `data` to `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), DataError> {
        match (self.mem, self.access) {
            (Some(mem), DataAccess::ReadWrite) => mem.write_bytes(offset, data).map_err(DataError::Outside),
            (Some(_), _) => Err(DataError::ReadOnly),
            (None, _) => Err(DataError::NoAccess),
        }
    }
}

/// A filter's logic, free of the PD around it (which [`dispatch`] connects
/// to the registers). Both methods default to letting everything through.
pub trait Filter {
    /// Before `io` goes further down the chain. `data` is the request's
    /// data with this filter's rights: for a write, what will be written;
    /// for a read, where the data is to go (a cache hit fills it and answers
    /// [`Verdict::Complete`]).
    fn pre(&mut self, io: &Io, data: &DataWindow<'_>) -> Verdict {
        let _ = (io, data);
        Verdict::Continue
    }

    /// After `io` completed below this filter with `done`. For a read that
    /// succeeded, `data` holds what was read (a decrypting filter rewrites
    /// it here).
    fn post(&mut self, io: &Io, done: &Completion, data: &DataWindow<'_>) -> Verdict {
        let _ = (io, done, data);
        Verdict::Continue
    }
}

/// Serve one upcall: decode it from `label` and `words`, run the filter on
/// the part of `window` that holds the request's data, and encode its
/// verdict. A malformed upcall, or one whose data is outside the window, is
/// answered `Fail(InvalidRequest)` without reaching the filter.
pub fn dispatch<F: Filter + ?Sized>(filter: &mut F, label: u64, words: &[u64], window: &DataWindow<'_>) -> Message {
    let verdict = match Upcall::decode(label, words) {
        Ok(upcall) => match window.narrow(upcall.io().data) {
            Ok(data) => match upcall {
                Upcall::Pre(io) => filter.pre(&io, &data),
                Upcall::Post(io, done) => filter.post(&io, &done, &data),
            },
            Err(_) => Verdict::Fail(Status::InvalidRequest),
        },
        Err(_) => Verdict::Fail(Status::InvalidRequest),
    };
    verdict.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> Io {
        Io {
            id: 0x1111_2222,
            disk: DiskId(3),
            op: Op::Write,
            block: 0x1_0000_0001,
            count: 2,
            data: DataSpan { offset: 4096, len: 8192 },
        }
    }

    #[test]
    fn a_pre_upcall_uses_the_documented_registers() {
        let m = Upcall::Pre(io()).encode();
        assert_eq!(m.label(), 0x100);
        assert_eq!(m.words(), &[0x3_1111_2222, 0x2_0000_0001, 0x1_0000_0001, 0x2000_0000_1000]);
        assert_eq!(Upcall::decode(m.label(), m.words()), Ok(Upcall::Pre(io())));
    }

    #[test]
    fn a_post_upcall_adds_the_completion() {
        let done = Completion { status: Status::IoError, count: 1 };
        let m = Upcall::Post(io(), done).encode();
        assert_eq!((m.label(), m.words().len(), m.words()[4]), (0x101, 5, 0x1_0000_0002));
        assert_eq!(Upcall::decode(m.label(), m.words()), Ok(Upcall::Post(io(), done)));
    }

    #[test]
    fn verdicts_use_the_documented_registers() {
        let cases = [
            (Verdict::Continue, 0x200, &[][..]),
            (Verdict::Complete { status: Status::Ok, count: 4 }, 0x201, &[0x4_0000_0000][..]),
            (Verdict::Fail(Status::NoDevice), 0x202, &[3][..]),
            (Verdict::Redirect(DiskId(9)), 0x203, &[9][..]),
        ];
        for (v, label, words) in cases {
            let m = v.encode();
            assert_eq!((m.label(), m.words()), (label, words));
            assert_eq!(Verdict::decode(label, words), Ok(v));
        }
    }

    #[test]
    fn malformed_upcalls_are_errors() {
        let words = Upcall::Pre(io()).encode().words().to_vec();
        assert_eq!(Upcall::decode(0x200, &words), Err(MessageError::UnknownLabel(0x200)));
        assert_eq!(
            Upcall::decode(label::PRE, &words[..3]),
            Err(MessageError::WrongLength { label: label::PRE, expected: 4, got: 3 })
        );
        assert_eq!(
            Upcall::decode(label::POST, &words),
            Err(MessageError::WrongLength { label: label::POST, expected: 5, got: 4 })
        );
        let mut bad_op = words.clone();
        bad_op[1] = pack(5, 2);
        assert_eq!(Upcall::decode(label::PRE, &bad_op), Err(MessageError::UnknownOp(5)));
        let mut post = words.clone();
        post.push(pack(77, 0));
        assert_eq!(Upcall::decode(label::POST, &post), Err(MessageError::UnknownStatus(77)));
        assert!(Upcall::decode(label::PRE, &[0; MAX_MESSAGE_REGISTERS]).is_err());
    }

    #[test]
    fn malformed_verdicts_are_errors() {
        assert_eq!(Verdict::decode(label::PRE, &[]), Err(MessageError::UnknownLabel(label::PRE)));
        assert_eq!(
            Verdict::decode(label::CONTINUE, &[0]),
            Err(MessageError::WrongLength { label: label::CONTINUE, expected: 0, got: 1 })
        );
        assert_eq!(Verdict::decode(label::FAIL, &[0]), Err(MessageError::FailWithOk));
        assert_eq!(Verdict::decode(label::FAIL, &[1 << 32 | 2]), Err(MessageError::ReservedBits { register: 0 }));
        assert_eq!(Verdict::decode(label::FAIL, &[9]), Err(MessageError::UnknownStatus(9)));
        assert_eq!(Verdict::decode(label::REDIRECT, &[1 << 40]), Err(MessageError::ReservedBits { register: 0 }));
        assert_eq!(Verdict::decode(label::COMPLETE, &[5]), Err(MessageError::UnknownStatus(5)));
    }

    /// Answers reads of block 0 from a one-block cache; counts what it sees.
    #[derive(Default)]
    struct Cache {
        pres: u32,
        posts: u32,
    }

    impl Filter for Cache {
        fn pre(&mut self, io: &Io, data: &DataWindow<'_>) -> Verdict {
            self.pres += 1;
            if io.op == Op::Read && io.block == 0 {
                data.write(0, b"cached").unwrap();
                return Verdict::Complete { status: Status::Ok, count: io.count };
            }
            Verdict::Continue
        }

        fn post(&mut self, _: &Io, done: &Completion, _: &DataWindow<'_>) -> Verdict {
            self.posts += 1;
            Verdict::Complete { status: done.status, count: done.count }
        }
    }

    #[test]
    fn dispatch_runs_the_filter_on_the_request_data() {
        let mut buf = [0u64; 1024]; // an 8 KiB window
        let window = DataWindow::new(Shared::from_words(&mut buf), DataAccess::ReadWrite);
        let read = Io { op: Op::Read, block: 0, count: 1, data: DataSpan { offset: 4096, len: 4096 }, ..io() };
        let up = Upcall::Pre(read).encode();
        let mut cache = Cache::default();
        let reply = dispatch(&mut cache, up.label(), up.words(), &window);
        assert_eq!(Verdict::decode(reply.label(), reply.words()), Ok(Verdict::Complete { status: Status::Ok, count: 1 }));
        let mut out = [0u8; 6];
        window.read(4096, &mut out).unwrap();
        assert_eq!(&out, b"cached");

        let done = Completion { status: Status::Ok, count: 1 };
        let up = Upcall::Post(read, done).encode();
        let reply = dispatch(&mut cache, up.label(), up.words(), &window);
        assert_eq!(reply, Verdict::Complete { status: Status::Ok, count: 1 }.encode());
        assert_eq!((cache.pres, cache.posts), (1, 1));
    }

    #[test]
    fn dispatch_refuses_malformed_upcalls_and_data_outside_the_window() {
        let mut buf = [0u64; 512];
        let window = DataWindow::new(Shared::from_words(&mut buf), DataAccess::Read);
        let mut cache = Cache::default();
        let invalid = Verdict::Fail(Status::InvalidRequest).encode();
        assert_eq!(dispatch(&mut cache, 0x999, &[], &window), invalid);
        let outside = Io { data: DataSpan { offset: 4096, len: 1 }, ..io() };
        let up = Upcall::Pre(outside).encode();
        assert_eq!(dispatch(&mut cache, up.label(), up.words(), &window), invalid);
        assert_eq!(cache.pres, 0, "the filter never saw them");
    }

    #[test]
    fn data_access_follows_the_declared_rights() {
        let mut buf = [0u64; 4];
        let mem = Shared::from_words(&mut buf);
        let span = DataSpan { offset: 8, len: 16 };
        let none = DataWindow::new(mem, DataAccess::None).narrow(span).unwrap();
        assert_eq!(none.read(0, &mut [0; 1]), Err(DataError::NoAccess));
        assert_eq!(none.write(0, &[1]), Err(DataError::NoAccess));
        assert_eq!(none.len(), 0);
        let read = DataWindow::new(mem, DataAccess::Read).narrow(span).unwrap();
        assert_eq!(read.write(0, &[1]), Err(DataError::ReadOnly));
        let rw = DataWindow::new(mem, DataAccess::ReadWrite).narrow(span).unwrap();
        rw.write(15, &[7]).unwrap();
        assert!(matches!(rw.write(16, &[7]), Err(DataError::Outside(_))));
        let mut b = [0u8; 1];
        read.read(15, &mut b).unwrap();
        assert_eq!(b, [7]);
        assert_eq!(mem.read::<u8>(23), Ok(7));
    }
}
