//! The kernel's console: the PL011 UART, polled.

use bootspec::platform::{KERNEL_VIRT_OFFSET, UART_PADDR};

const UART: usize = (KERNEL_VIRT_OFFSET + UART_PADDR) as usize;
const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

fn put(b: u8) {
    // SAFETY: the kernel maps the device window uncached at
    // KERNEL_VIRT_OFFSET; FR and DR are the PL011's flag and data registers.
    unsafe {
        while core::ptr::read_volatile((UART + FR) as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile((UART + DR) as *mut u32, b as u32);
    }
}

pub struct Writer;

impl core::fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Print a line from the kernel.
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        use core::fmt::Write;
        let _ = writeln!($crate::arch::console::Writer, $($arg)*);
    }};
}
pub(crate) use kprintln;
