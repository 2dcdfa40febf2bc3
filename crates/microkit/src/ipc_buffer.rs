//! The IPC buffer: one page at a fixed address in every PD. Message
//! registers 0-63 sit at its start (0-3 also travel in CPU registers), the
//! debug text area after them.

use abi::layout::IPC_BUFFER;
use abi::MAX_MRS;

fn mrs() -> *mut [u64; MAX_MRS] {
    IPC_BUFFER as *mut [u64; MAX_MRS]
}

/// Set message register `i` (0-63) for the next call or reply.
pub fn set_mr(i: usize, value: u64) {
    with_msg_regs_mut(|r| r[i] = value)
}

/// Read message register `i` (0-63) of the message just received.
pub fn get_mr(i: usize) -> u64 {
    with_msg_regs(|r| r[i])
}

pub fn with_msg_regs<T>(f: impl FnOnce(&[u64; MAX_MRS]) -> T) -> T {
    // SAFETY: the tool maps this PD's IPC buffer read-write at IPC_BUFFER;
    // nothing else in this single-threaded PD holds a reference to it while
    // `f` runs (the kernel writes it only during a system call).
    f(unsafe { &*mrs() })
}

pub fn with_msg_regs_mut<T>(f: impl FnOnce(&mut [u64; MAX_MRS]) -> T) -> T {
    // SAFETY: as in `with_msg_regs`.
    f(unsafe { &mut *mrs() })
}

/// Copy the four register-borne message registers into the buffer, so
/// `get_mr` sees all registers alike.
pub(crate) fn store_reg_mrs(regs: [u64; 4]) {
    with_msg_regs_mut(|r| r[..4].copy_from_slice(&regs));
}

/// The four register-borne message registers to send.
pub(crate) fn load_reg_mrs() -> [u64; 4] {
    with_msg_regs(|r| [r[0], r[1], r[2], r[3]])
}

/// Put lend descriptors in the lend area for the next `pp_call_lend`.
pub(crate) fn write_lends(lends: &[abi::Lend]) {
    let area = (IPC_BUFFER as usize + abi::LEND_AREA.start) as *mut [u64; 2];
    for (i, l) in lends.iter().take(abi::MAX_LENDS).enumerate() {
        // SAFETY: the lend area is inside this PD's IPC buffer page, which
        // is mapped read-write; `i` < MAX_LENDS keeps it inside the area.
        unsafe { area.add(i).write_volatile(l.to_words()) };
    }
}

/// The debug text area.
pub(crate) fn debug_area() -> &'static mut [u8] {
    let range = abi::DEBUG_AREA;
    // SAFETY: the area follows the message registers inside the same page;
    // only `DebugWriter`, one at a time, uses it.
    unsafe { core::slice::from_raw_parts_mut((IPC_BUFFER as usize + range.start) as *mut u8, range.len()) }
}
