//! Synthetic ELF images for the image-builder tests: a kernel with the boot
//! spec symbol, and program segments at the usual addresses.
#![allow(dead_code)] // each test file uses what it needs

use bootspec::platform::{KERNEL_PADDR, KERNEL_VIRT_OFFSET};
use std::collections::BTreeMap;
use tool::elf::{ElfImage, Segment, Symbol};

pub fn seg(vaddr: u64, paddr: u64, data: Vec<u8>, memsz: u64, w: bool, x: bool) -> Segment {
    Segment { vaddr, paddr, data, memsz, read: true, write: w, execute: x }
}

/// A kernel: code, then a data page holding `KERNEL_BOOT_SPEC_PADDR`.
pub fn kernel() -> ElfImage {
    let v = KERNEL_VIRT_OFFSET + KERNEL_PADDR;
    let mut symbols = BTreeMap::new();
    symbols.insert("KERNEL_BOOT_SPEC_PADDR".to_string(), Symbol { vaddr: v + 0x1000, size: 8 });
    ElfImage {
        entry: v,
        segments: vec![
            seg(v, KERNEL_PADDR, vec![0xd5; 0x800], 0x800, false, true),
            seg(v + 0x1000, KERNEL_PADDR + 0x1000, vec![0; 8], 0x3000, true, false),
        ],
        symbols,
    }
}

/// A program: one instruction of code at 0x20_0000, then `data` at
/// 0x20_1000 (three pages in memory), with `symbols`.
pub fn program_with(data: Vec<u8>, symbols: BTreeMap<String, Symbol>) -> ElfImage {
    ElfImage {
        entry: 0x20_0000,
        segments: vec![
            seg(0x20_0000, 0x20_0000, vec![0x1f, 0x20, 0x03, 0xd5], 0x100, false, true),
            seg(0x20_1000, 0x20_1000, data, 0x3000, true, false),
        ],
        symbols,
    }
}
