//! Grants: memory the caller of the PPC being served lent this PD for the
//! call (see `abi::sys::PP_CALL_LEND`). A grant is reached only by copies
//! the kernel checks, through a handle that dies when the call ends.

use abi::Error;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The lease of the PPC being served (0: it lends nothing).
static LEASE: AtomicU64 = AtomicU64::new(0);

pub(crate) fn set_lease(lease: u64) {
    LEASE.store(lease, Relaxed);
}

/// A range the caller of the PPC being served lent this PD: the `index`-th
/// lend descriptor of its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant(u64);

impl Grant {
    /// The `index`-th range lent with the PPC being served (the handle is
    /// refused by the kernel if the call lent fewer, or none).
    pub fn lent(index: usize) -> Grant {
        Grant(abi::grant_handle(LEASE.load(Relaxed) as u32, index))
    }

    /// A grant by its raw handle (as a PD that was told one).
    pub const fn from_handle(handle: u64) -> Grant {
        Grant(handle)
    }

    pub const fn handle(&self) -> u64 {
        self.0
    }

    /// Copy from `offset` of the grant into `out`.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        crate::syscall::grant_read(self.0, offset, out)
    }

    /// Copy `data` to `offset` of the grant (needs the write right).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        crate::syscall::grant_write(self.0, offset, data)
    }
}
