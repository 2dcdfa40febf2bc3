//! `filter_passthrough`: the template filter. It is called before and after
//! every read, write and flush and lets each through unchanged. Declared
//! with `data="read"` (or `"read-write"`) it also reads all of each write's
//! data through the grant into its own memory, a block at a time, as a
//! filter that inspects data would (what the `_read` benchmark measures).
//!
//! Copy this crate to start a filter: the logic here, tested on the host;
//! the PD in `src/bin` is the manifest and three lines.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, Verdict};
use blk::{Op, Status, BLOCK_SIZE};

pub struct Passthrough {
    /// Read each write's data (the filter has data rights).
    read_writes: bool,
    block: [u8; BLOCK_SIZE as usize],
    /// A sum over the bytes read, so the reads do something.
    pub checksum: u64,
}

impl Passthrough {
    /// `read_writes`: whether the filter has rights to request data.
    pub fn new(read_writes: bool) -> Passthrough {
        Passthrough { read_writes, block: [0; BLOCK_SIZE as usize], checksum: 0 }
    }
}

impl Filter for Passthrough {
    fn pre(&mut self, io: &Io, data: &dyn RequestData, _: &mut u64) -> Verdict {
        if self.read_writes && io.op == Op::Write {
            for b in 0..u64::from(io.count) {
                if data.read(io, b * u64::from(BLOCK_SIZE), &mut self.block).is_err() {
                    return Verdict::Fail(Status::IoError);
                }
                self.checksum = self.block.iter().step_by(512).fold(self.checksum, |s, &x| s.rotate_left(3) ^ u64::from(x));
            }
        }
        Verdict::Continue
    }

    fn post(&mut self, _: &Io, _: Completion, _: &dyn RequestData) -> Verdict {
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blk::filter::{DataError, Hook, NoData};

    struct Bytes(Vec<u8>);

    impl RequestData for Bytes {
        fn read(&self, _: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
            let at = offset as usize;
            out.copy_from_slice(self.0.get(at..at + out.len()).ok_or(DataError::OutOfRange)?);
            Ok(())
        }
        fn write(&self, _: &Io, _: u64, _: &[u8]) -> Result<(), DataError> {
            Err(DataError::ReadOnly)
        }
    }

    fn io(op: Op, count: u32) -> Io {
        Io { hook: Hook::Pre, op, client: 0, position: 0, block: 0, count, grant: 1, id: 0, state: 0, side: None }
    }

    #[test]
    fn every_request_goes_through_unchanged() {
        let mut f = Passthrough::new(false);
        for op in [Op::Read, Op::Write, Op::Flush] {
            assert_eq!(f.pre(&io(op, 1), &NoData, &mut 0), Verdict::Continue);
            let done = Completion { status: Status::IoError, count: 0 };
            assert_eq!(f.post(&io(op, 1), done, &NoData), Verdict::Continue, "a failure passes up unchanged");
        }
    }

    #[test]
    fn with_data_rights_it_reads_every_block_of_a_write() {
        let mut f = Passthrough::new(true);
        let mut data = vec![0u8; 2 * 4096];
        data[4096] = 7;
        assert_eq!(f.pre(&io(Op::Write, 2), &Bytes(data), &mut 0), Verdict::Continue);
        assert_ne!(f.checksum, 0, "the second block was read");
        assert_eq!(f.pre(&io(Op::Write, 3), &Bytes(vec![0; 2 * 4096]), &mut 0), Verdict::Fail(Status::IoError), "data it cannot read fails the write");
    }
}
