//! Console output through the kernel: text is gathered in the IPC buffer's
//! debug area and printed with one system call per flush.

use crate::ipc_buffer::debug_area;
use crate::syscall::debug_puts;

pub struct DebugWriter {
    len: usize,
}

impl DebugWriter {
    pub fn new() -> Self {
        DebugWriter { len: 0 }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            debug_puts(self.len);
            self.len = 0;
        }
    }
}

impl Default for DebugWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let area = debug_area();
        for &b in s.as_bytes() {
            if self.len == area.len() {
                self.flush();
            }
            area[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for DebugWriter {
    fn drop(&mut self) {
        self.flush();
    }
}
