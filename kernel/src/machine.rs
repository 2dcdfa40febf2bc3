//! What the kernel's logic needs from the hardware, as a trait.
//!
//! The IPC, scheduling and fault logic is written against this trait so it
//! runs unchanged in host unit tests (with a fake machine) and on aarch64
//! (with the real one in `arch.rs`).

pub trait Machine {
    /// Write bytes to the console.
    fn console_write(&mut self, bytes: &[u8]);
    /// Write `len` bytes that sit in physical memory at `paddr` to the console.
    fn console_write_phys(&mut self, paddr: u64, len: usize);
    /// Copy between physical ranges (message registers, restore ops).
    fn copy_phys(&mut self, dst: u64, src: u64, len: usize);
    fn zero_phys(&mut self, dst: u64, len: usize);
    /// Stop / resume delivery of an interrupt at the interrupt controller.
    fn irq_mask(&mut self, irq: u32);
    fn irq_unmask(&mut self, irq: u32);
    /// Power the machine off with an exit status. The real machine never
    /// returns; a test machine records the request.
    fn power_off(&mut self, status: u64);
    /// Copy `out.len()` bytes at physical address `paddr` (RAM the spec
    /// describes) into `out`.
    fn read_phys(&mut self, paddr: u64, out: &mut [u8]);
    /// The physical address behind `vaddr` in the running PD's address
    /// space, if the PD itself may read it (and write it, with `write`).
    fn user_phys(&mut self, vaddr: u64, write: bool) -> Option<u64>;
    /// The system counter (it never goes backwards) and its ticks per
    /// second.
    fn now(&mut self) -> u64;
    fn counter_hz(&self) -> u64;
    /// Interrupt the CPU with a timer interrupt at counter value `at` (or
    /// earlier, for the round-robin tick), or cancel that with `None`.
    fn set_deadline(&mut self, at: Option<u64>);
}

/// `core::fmt` on top of a [`Machine`]'s console.
pub struct Console<'a, M: Machine>(pub &'a mut M);

impl<M: Machine> core::fmt::Write for Console<'_, M> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.console_write(s.as_bytes());
        Ok(())
    }
}
