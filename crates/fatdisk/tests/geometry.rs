//! The volume's numbers, checked without external tools where those tools
//! cannot go (volumes of hundreds of GiB) and where the numbers are the
//! point (padding to the FAT32 minimum, FSInfo, FAT chains).

use fatdisk::layout::{MAX_CLUSTERS, MIN_CLUSTERS};
use fatdisk::writer::Builder;
use fatdisk::{ContentDisk, EntryLayout, Manifest, Source};

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// A manifest of `count` files of `size` bytes in one folder (no data:
/// only the manifest is needed to lay out and serve metadata). Each name
/// takes 3 directory slots (two long-name parts and the short entry).
fn files(count: usize, size: u64) -> (Vec<u8>, u64) {
    let mut b = Builder::<()>::new();
    let dir = b.add_dir(b.root(), "big files").unwrap();
    for i in 0..count {
        b.add_file(dir, &format!("file {i:05}.bin"), size, ()).unwrap();
    }
    let disk = b.build().unwrap();
    (disk.manifest().to_vec(), disk.blocks())
}

#[test]
fn a_small_folder_is_padded_to_the_fat32_minimum() {
    let (bytes, blocks) = files(3, 10_000);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    // Root, folder, three files of three clusters each.
    assert_eq!(l.used_clusters(), 1 + 1 + 3 * 3);
    assert_eq!(l.clusters(), MIN_CLUSTERS);
    assert_eq!(l.fat_blocks(), (MIN_CLUSTERS + 2).div_ceil(1024));
    assert_eq!(disk.blocks(), 4 + 2 * u64::from(l.fat_blocks()) + u64::from(MIN_CLUSTERS));

    let mut b = [0u8; 4096];
    assert_eq!(disk.block(0, &mut b), Source::Synthesized);
    assert_eq!(&b[510..512], &[0x55, 0xAA]);
    assert_eq!(u32_at(&b, 32) as u64, disk.blocks() * 8);
    assert_eq!(u32_at(&b, 36), l.fat_blocks() * 8);
    assert_eq!(&b[..512], &b[6 * 512..7 * 512], "the backup boot sector");
    let fsinfo = &b[512..1024];
    assert_eq!(u32_at(fsinfo, 0), 0x4161_5252);
    assert_eq!(u32_at(fsinfo, 488), MIN_CLUSTERS - l.used_clusters());
    assert_eq!(u32_at(fsinfo, 492), 2 + l.used_clusters());
    assert_eq!(fsinfo, &b[7 * 512..8 * 512], "the backup FSInfo");
}

#[test]
fn fat_entries_chain_each_run_and_both_fats_agree() {
    let (bytes, blocks) = files(3, 10_000);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    let (mut fat1, mut fat2) = ([0u8; 4096], [0u8; 4096]);
    disk.block(l.fat_start(0), &mut fat1);
    disk.block(l.fat_start(1), &mut fat2);
    assert_eq!(fat1, fat2);
    let fat: Vec<u32> = (0..1024).map(|i| u32_at(&fat1, 4 * i)).collect();
    const END: u32 = 0x0FFF_FFFF;
    // Media byte, end mark; root (2) and folder (3), one cluster each;
    // files at 4-6, 7-9, 10-12; then free.
    assert_eq!(&fat[..14], &[0x0FFF_FFF8, END, END, END, 5, 6, END, 8, 9, END, 11, 12, END, 0]);
    assert!(fat[13..].iter().all(|&e| e == 0));
}

#[test]
fn files_of_4_gib_count_in_64_bits_up_to_fat32s_cluster_limit() {
    // The folder of n names: `.`, `..` and 3 slots a name, 128 a cluster;
    // the root: one cluster.
    let dirs = |n: u64| 1 + (2 + 3 * n).div_ceil(128);
    // 256 files of 4 GiB - 1: 2^28 clusters of data, past the limit of
    // 268,435,445 (the writer runs the layout, so it refuses them too).
    let mut b = Builder::<()>::new();
    for i in 0..256 {
        b.add_file(b.root(), &format!("file {i:05}.bin"), u32::MAX as u64, ()).unwrap();
    }
    let err = b.build().err().unwrap();
    assert_eq!(err.to_string(), format!("the files need {} clusters of 4 KiB; FAT32 allows 268435445", (256 << 20) + 1 + 6));

    // 255 fit: a volume of almost 1 TiB, every number in range.
    let (bytes, blocks) = files(255, u32::MAX as u64);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    assert_eq!(u64::from(l.used_clusters()), (255 << 20) + dirs(255));
    assert!(l.clusters() <= MAX_CLUSTERS);
    assert!(disk.blocks() * 8 <= u64::from(u32::MAX), "total sectors fit the BPB's 32 bits");
    let mut b = [0u8; 4096];
    disk.block(0, &mut b);
    assert_eq!(u64::from(u32_at(&b, 32)), disk.blocks() * 8);
    assert_eq!(u32_at(&b[512..], 488), 0, "no free clusters");
    assert_eq!(u32_at(&b[512..], 492), u32::MAX, "no next-free hint");

    // The last file's last cluster is its last block on the app disk...
    let last = m.len() - 1;
    let e = m.entry(last);
    assert_eq!(disk.block(disk.blocks() - 1, &mut b), Source::AppDisk(e.start + (1 << 20) - 1));
    assert_eq!(e.start + (1 << 20), blocks);
    // ...and its FAT entry ends the chain, in the FAT's last used block.
    let c = u64::from(l.used_clusters()) + 1;
    disk.block(l.fat_start(1) + c / 1024, &mut b);
    assert_eq!(u32_at(&b, (c % 1024) as usize * 4), 0x0FFF_FFFF);
    assert_eq!(u32_at(&b, (c % 1024) as usize * 4 - 4), c as u32);
}

#[test]
fn a_folder_of_thousands_of_files_is_laid_out_once_and_served_by_search() {
    // 20,000 files of one cluster each: a directory of 60,002 slots (469
    // clusters), each cluster served from a binary search, not a scan.
    let (bytes, blocks) = files(20_000, 1);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    let dir = l.clusters_of(1);
    assert_eq!(dir.len(), 60_002usize.div_ceil(128));
    let mut b = [0u8; 4096];
    // The last cluster of the directory holds the end of the last name.
    let last_dir_block = l.data_start() + u64::from(dir.end - 1 - 2);
    disk.block(last_dir_block, &mut b);
    let used = 60_002 - (dir.len() - 1) * 128;
    assert_eq!(&b[(used - 1) * 32..(used - 1) * 32 + 11], b"FI~20000BIN");
    assert!(b[used * 32..].iter().all(|&x| x == 0));
    // Each file's one cluster is its one block.
    for i in [2u32, 777, 20_001] {
        let c = l.clusters_of(i).start;
        assert_eq!(disk.block(l.data_start() + u64::from(c - 2), &mut b), Source::AppDisk(m.entry(i).start));
    }
}
