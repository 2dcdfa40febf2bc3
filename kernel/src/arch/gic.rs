//! The GICv2 interrupt controller of QEMU `virt`: distributor and CPU
//! interface.

use bootspec::platform::{GICC_PADDR, GICD_PADDR, KERNEL_VIRT_OFFSET};
use bootspec::TRIGGER_EDGE;

const GICD: usize = (KERNEL_VIRT_OFFSET + GICD_PADDR) as usize;
const GICC: usize = (KERNEL_VIRT_OFFSET + GICC_PADDR) as usize;

const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_ICFGR: usize = 0xc00;

const GICC_CTLR: usize = 0x000;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00c;
const GICC_EOIR: usize = 0x010;

/// Interrupt id the CPU interface returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;

fn write(addr: usize, v: u32) {
    // SAFETY: `addr` is a GIC register in the uncached device window the
    // kernel maps at boot.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

fn read(addr: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

pub fn init() {
    write(GICD + GICD_CTLR, 1);
    write(GICC + GICC_PMR, 0xff);
    write(GICC + GICC_CTLR, 1);
}

/// Route interrupt `irq` to this CPU with its trigger mode, still masked.
pub fn configure(irq: u32, trigger: u8) {
    let i = irq as usize;
    // SAFETY: priority and target registers of the distributor, which are
    // byte-addressable, in the device window the kernel maps.
    unsafe {
        core::ptr::write_volatile((GICD + GICD_IPRIORITYR + i) as *mut u8, 0xa0);
        if irq >= 32 {
            core::ptr::write_volatile((GICD + GICD_ITARGETSR + i) as *mut u8, 1);
        }
    }
    let reg = GICD + GICD_ICFGR + (i / 16) * 4;
    let bit = 1 << ((i % 16) * 2 + 1);
    let v = read(reg);
    write(reg, if trigger == TRIGGER_EDGE { v | bit } else { v & !bit });
}

pub fn enable(irq: u32) {
    write(GICD + GICD_ISENABLER + (irq as usize / 32) * 4, 1 << (irq % 32));
}

pub fn disable(irq: u32) {
    write(GICD + GICD_ICENABLER + (irq as usize / 32) * 4, 1 << (irq % 32));
}

/// Acknowledge the highest pending interrupt ([`SPURIOUS`] if none).
pub fn ack() -> u32 {
    read(GICC + GICC_IAR) & 0x3ff
}

pub fn end(irq: u32) {
    write(GICC + GICC_EOIR, irq);
}
