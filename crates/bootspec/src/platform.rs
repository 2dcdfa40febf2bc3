//! Facts about QEMU's `virt` machine that the tool and the kernel share.

/// RAM starts here on `virt`.
pub const RAM_BASE: u64 = 0x4000_0000;
/// RAM the image may use; QEMU is started with `-m 512M`.
pub const RAM_SIZE: u64 = 512 << 20;
/// QEMU places the device tree at the start of RAM; the image leaves the
/// first 2 MiB alone.
pub const RAM_RESERVED: u64 = 2 << 20;
/// The kernel is linked to run here (physical) ...
pub const KERNEL_PADDR: u64 = RAM_BASE + RAM_RESERVED;
/// ... and at this virtual address: physical + [`KERNEL_VIRT_OFFSET`].
pub const KERNEL_VIRT_OFFSET: u64 = 0xffff_0000_0000_0000;

/// Device memory (below RAM): the kernel maps it uncached at
/// [`KERNEL_VIRT_OFFSET`] + physical.
pub const DEVICE_BASE: u64 = 0;
pub const DEVICE_SIZE: u64 = RAM_BASE;

pub const UART_PADDR: u64 = 0x0900_0000;
pub const GICD_PADDR: u64 = 0x0800_0000;
pub const GICC_PADDR: u64 = 0x0801_0000;

/// Interrupt ids the kernel keeps for itself: the EL1 physical timer.
pub const TIMER_IRQ: u32 = 30;
/// Shared peripheral interrupts a system may bind: 32..=MAX_IRQ.
pub const FIRST_SPI: u32 = 32;
pub const MAX_IRQ: u32 = 1019;

/// ASIDs handed to PDs start here (0 is never used by a PD).
pub const FIRST_ASID: u16 = 1;
