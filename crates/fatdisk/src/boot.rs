//! Block 0: the boot sector with the BIOS parameter block; for FAT32 also
//! the FSInfo sector and the backups of both.
//!
//! The boot sector (sector 0; FAT32 keeps a backup in sector 6). Both
//! types share the first 36 bytes:
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 3 | jump to boot code | `EB 58 90` (FAT32), `EB 3C 90` (FAT16) |
//! | 3 | 8 | OEM name | `MSWIN4.1`, the value the specification calls most compatible |
//! | 11 | 2 | bytes per sector | 512 |
//! | 13 | 1 | sectors per cluster | 8 |
//! | 14 | 2 | reserved sectors | 32 |
//! | 16 | 1 | FATs | 2 |
//! | 17 | 2 | root entries | FAT16: the root area's entries (128 a block); FAT32: 0 |
//! | 19 | 2 | 16-bit total sectors | FAT16 below 65,536 sectors: blocks × 8; else 0 |
//! | 21 | 1 | media | `0xF8`, fixed disk |
//! | 22 | 2 | 16-bit FAT size | FAT16: FAT blocks × 8; FAT32: 0 |
//! | 24 | 2 | sectors per track | 63 |
//! | 26 | 2 | heads | 255 |
//! | 28 | 4 | hidden sectors | 0: no partition table |
//! | 32 | 4 | total sectors | blocks × 8, unless in the 16-bit field |
//!
//! FAT32 goes on:
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 36 | 4 | FAT size in sectors | FAT blocks × 8 |
//! | 40 | 2 | flags | 0: the FATs are mirrors |
//! | 42 | 2 | version | 0.0 |
//! | 44 | 4 | root directory cluster | 2 |
//! | 48 | 2 | FSInfo sector | 1 |
//! | 50 | 2 | backup boot sector | 6 |
//! | 52 | 12 | reserved | 0 |
//! | 64 | | drive number, ... (the common tail below) | |
//!
//! The common tail, at 64 in FAT32 and at 36 in FAT16:
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | +0 | 1 | drive number | `0x80` |
//! | +1 | 1 | reserved (dirty flag) | 0 |
//! | +2 | 1 | extended boot signature | `0x29`: the next three fields are valid |
//! | +3 | 4 | volume serial | the manifest's checksum |
//! | +7 | 11 | volume label | [`crate::dir::LABEL`] |
//! | +18 | 8 | file system type (informational) | `FAT32   ` or `FAT16   ` |
//! | +26 | | boot code | `INT 18h` (no bootable system here), then halt |
//! | 510 | 2 | signature | `55 AA` |
//!
//! The FSInfo sector (FAT32: sector 1, backup in 7): `0x41615252` at 0,
//! `0x61417272` at 484, the free cluster count at 488, the first free
//! cluster at 492, `0xAA550000` at 508. Both counts are exact, since the
//! volume never changes.

use crate::dir;
use crate::layout::{FatType, Layout, FIRST_CLUSTER, RESERVED_SECTORS, SECTORS_PER_CLUSTER, SECTOR_SIZE, SLOTS_PER_CLUSTER};
use crate::manifest::BLOCK_SIZE;

const SECTOR: usize = SECTOR_SIZE as usize;
const FSINFO_SECTOR: u16 = 1;
const BACKUP_BOOT_SECTOR: u16 = 6;
const MEDIA_FIXED: u8 = 0xF8;

/// Fill `out` with block 0 of the volume laid out by `layout`.
pub fn boot_block(layout: &Layout, out: &mut [u8; BLOCK_SIZE]) {
    out.fill(0);
    let (boot, rest) = out.split_at_mut(SECTOR);
    boot_sector(layout, boot);
    if layout.fat_type() == FatType::Fat32 {
        let (fsinfo, _) = rest.split_at_mut(SECTOR);
        fsinfo_sector(layout, fsinfo);
        // The backups are copies of sectors 0 and 1.
        let backup = usize::from(BACKUP_BOOT_SECTOR) * SECTOR;
        out.copy_within(0..2 * SECTOR, backup);
    }
}

fn boot_sector(layout: &Layout, s: &mut [u8]) {
    let put16 = |s: &mut [u8], off: usize, v: u16| s[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |s: &mut [u8], off: usize, v: u32| s[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let fat16 = layout.fat_type() == FatType::Fat16;
    s[0..3].copy_from_slice(if fat16 { &[0xEB, 0x3C, 0x90] } else { &[0xEB, 0x58, 0x90] });
    s[3..11].copy_from_slice(b"MSWIN4.1");
    put16(s, 11, SECTOR_SIZE as u16);
    s[13] = SECTORS_PER_CLUSTER as u8;
    put16(s, 14, RESERVED_SECTORS as u16);
    s[16] = 2;
    s[21] = MEDIA_FIXED;
    put16(s, 24, 63);
    put16(s, 26, 255);
    // At most 2^28 clusters of 8 sectors plus the FATs: below 2^32.
    let sectors = (layout.blocks() * u64::from(SECTORS_PER_CLUSTER)) as u32;
    let fat_sectors = layout.fat_blocks() * SECTORS_PER_CLUSTER;
    let tail = if fat16 {
        let root = layout.root_area();
        // At most FAT16_MAX_ROOT_SLOTS entries; at most 32 FAT blocks.
        put16(s, 17, ((root.end - root.start) * u64::from(SLOTS_PER_CLUSTER)) as u16);
        match u16::try_from(sectors) {
            Ok(small) => put16(s, 19, small),
            Err(_) => put32(s, 32, sectors),
        }
        put16(s, 22, fat_sectors as u16);
        36
    } else {
        put32(s, 32, sectors);
        put32(s, 36, fat_sectors);
        put32(s, 44, FIRST_CLUSTER);
        put16(s, 48, FSINFO_SECTOR);
        put16(s, 50, BACKUP_BOOT_SECTOR);
        64
    };
    s[tail] = 0x80;
    s[tail + 2] = 0x29;
    put32(s, tail + 3, layout.manifest().checksum());
    s[tail + 7..tail + 18].copy_from_slice(&dir::LABEL);
    s[tail + 18..tail + 26].copy_from_slice(if fat16 { b"FAT16   " } else { b"FAT32   " });
    // Should a PC ever boot this: INT 18h says "not bootable, try the
    // next device"; if that returns, halt forever.
    s[tail + 26..tail + 31].copy_from_slice(&[0xCD, 0x18, 0xF4, 0xEB, 0xFD]);
    s[510] = 0x55;
    s[511] = 0xAA;
}

fn fsinfo_sector(layout: &Layout, s: &mut [u8]) {
    let put32 = |s: &mut [u8], off: usize, v: u32| s[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put32(s, 0, 0x4161_5252);
    put32(s, 484, 0x6141_7272);
    let free = layout.clusters() - layout.used_clusters();
    put32(s, 488, free);
    let next_free = if free > 0 { FIRST_CLUSTER + layout.used_clusters() } else { u32::MAX };
    put32(s, 492, next_free);
    put32(s, 508, 0xAA55_0000);
}
