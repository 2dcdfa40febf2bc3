//! The volume's numbers, checked without external tools where those tools
//! cannot go (volumes of hundreds of GiB) and where the numbers are the
//! point (FAT16 or FAT32, padding to each one's minimum, FSInfo, FAT
//! chains).

use fatdisk::layout::{FatType, FAT16_MAX_CLUSTERS, FAT16_MAX_ROOT_SLOTS, FAT16_MIN_CLUSTERS, MAX_CLUSTERS, MIN_CLUSTERS};
use fatdisk::writer::Builder;
use fatdisk::{ContentDisk, EntryLayout, Manifest, Source};

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

/// A manifest of one folder of files of `sizes` bytes each.
fn files_of(sizes: &[u64]) -> (Vec<u8>, u64) {
    let mut b = Builder::<()>::new();
    let dir = b.add_dir(b.root(), "big files").unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        b.add_file(dir, &format!("file {i:05}.bin"), size, ()).unwrap();
    }
    let disk = b.build().unwrap();
    (disk.manifest().to_vec(), disk.blocks())
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
fn a_small_folder_is_a_fat16_volume_padded_to_its_minimum() {
    let (bytes, blocks) = files(3, 10_000);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    assert_eq!(l.fat_type(), FatType::Fat16);
    // The folder and three files of three clusters each; the root has an
    // area of its own: 512 entries, four blocks (it uses three: the label
    // and the folder's two).
    assert_eq!(l.used_clusters(), 1 + 3 * 3);
    assert_eq!(l.clusters(), FAT16_MIN_CLUSTERS);
    assert_eq!(l.fat_blocks(), (FAT16_MIN_CLUSTERS + 2).div_ceil(2048));
    assert_eq!(l.root_area(), 4 + 2 * u64::from(l.fat_blocks())..8 + 2 * u64::from(l.fat_blocks()));
    assert_eq!(l.data_start(), l.root_area().end);
    assert_eq!(disk.blocks(), 4 + 2 * u64::from(l.fat_blocks()) + 4 + u64::from(FAT16_MIN_CLUSTERS));

    let mut b = [0u8; 4096];
    assert_eq!(disk.block(0, &mut b), Source::Synthesized);
    assert_eq!(&b[0..3], &[0xEB, 0x3C, 0x90]);
    assert_eq!(&b[510..512], &[0x55, 0xAA]);
    assert_eq!(u16_at(&b, 14), 32, "reserved sectors");
    assert_eq!(u16_at(&b, 17), 512, "root entries");
    // 16 MiB and a little: the sectors fit the 16-bit count.
    assert_eq!(u16_at(&b, 19) as u64, disk.blocks() * 8);
    assert_eq!(u32_at(&b, 32), 0);
    assert_eq!(u16_at(&b, 22) as u32, l.fat_blocks() * 8, "the 16-bit FAT size");
    assert_eq!(b[38], 0x29);
    assert_eq!(&b[54..62], b"FAT16   ");
    assert!(b[512..].iter().all(|&x| x == 0), "no FSInfo, no backups");

    // The root area holds the label and the folder's entries.
    disk.block(l.root_area().start, &mut b);
    assert_eq!(b[11], 0x08, "the volume label");
    // (Slot 1: the name's long part, 2: its short entry.)
    assert_eq!(&b[2 * 32..2 * 32 + 11], b"BIGFIL~1   ");
    assert_eq!(u16_at(&b, 2 * 32 + 26), 2, "the folder's first cluster");
    assert!(b[3 * 32..].iter().all(|&x| x == 0));
    for block in l.root_area().skip(1) {
        disk.block(block, &mut b);
        assert!(b.iter().all(|&x| x == 0), "the root's unused blocks are empty");
    }
}

#[test]
fn fat16_entries_chain_each_run_and_both_fats_agree() {
    let (bytes, blocks) = files(3, 10_000);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    let (mut fat1, mut fat2) = ([0u8; 4096], [0u8; 4096]);
    disk.block(l.fat_start(0), &mut fat1);
    disk.block(l.fat_start(1), &mut fat2);
    assert_eq!(fat1, fat2);
    let fat: Vec<u16> = (0..2048).map(|i| u16_at(&fat1, 2 * i)).collect();
    const END: u16 = 0xFFFF;
    // Media byte, end mark; the folder (2), one cluster; files at 3-5,
    // 6-8, 9-11; then free.
    assert_eq!(&fat[..13], &[0xFFF8, END, END, 4, 5, END, 7, 8, END, 10, 11, END, 0]);
    assert!(fat[12..].iter().all(|&e| e == 0));
    // The second FAT block covers clusters 2048..4096, all free.
    disk.block(l.fat_start(0) + 1, &mut fat1);
    assert!(fat1.iter().all(|&x| x == 0));
}

#[test]
fn files_past_fat16s_cluster_count_make_a_fat32_volume_padded_to_its_minimum() {
    // The folder (1 cluster) and files of FAT16's largest count less one:
    // FAT16 at its largest.
    let (bytes, blocks) = files_of(&[4096 * u64::from(FAT16_MAX_CLUSTERS - 1 - 1000), 4096 * 1000]);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    assert_eq!((l.fat_type(), l.used_clusters(), l.clusters()), (FatType::Fat16, FAT16_MAX_CLUSTERS, FAT16_MAX_CLUSTERS));
    assert_eq!(l.fat_blocks(), 32);
    let mut b = [0u8; 4096];
    disk.block(0, &mut b);
    // 256 MiB: the sectors need the 32-bit count.
    assert_eq!((u16_at(&b, 19), u32_at(&b, 32) as u64), (0, disk.blocks() * 8));
    assert_eq!(u16_at(&b, 22), 32 * 8);
    // The last used cluster ends its chain, in the FAT's last block.
    disk.block(l.fat_start(0) + 31, &mut b);
    let last = (FAT16_MAX_CLUSTERS + 1) as usize % 2048;
    assert_eq!((u16_at(&b, 2 * last - 2), u16_at(&b, 2 * last)), (last as u16 + 31 * 2048, 0xFFFF));

    // One cluster more: FAT32, the root in cluster 2, padded.
    let (bytes, blocks) = files_of(&[4096 * u64::from(FAT16_MAX_CLUSTERS - 1000), 4096 * 1000]);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    assert_eq!(l.fat_type(), FatType::Fat32);
    assert_eq!(l.used_clusters(), 1 + 1 + FAT16_MAX_CLUSTERS);
    assert_eq!(l.clusters(), MIN_CLUSTERS);
    assert_eq!(l.fat_blocks(), (MIN_CLUSTERS + 2).div_ceil(1024));
    assert!(l.root_area().is_empty());
    assert_eq!(l.root_area().start, l.data_start(), "the root's first block either way");
    assert_eq!(disk.blocks(), 4 + 2 * u64::from(l.fat_blocks()) + u64::from(MIN_CLUSTERS));

    let mut b = [0u8; 4096];
    assert_eq!(disk.block(0, &mut b), Source::Synthesized);
    assert_eq!(&b[0..3], &[0xEB, 0x58, 0x90]);
    assert_eq!(&b[510..512], &[0x55, 0xAA]);
    assert_eq!((u16_at(&b, 17), u16_at(&b, 19), u16_at(&b, 22)), (0, 0, 0), "FAT32 leaves the FAT16 fields 0");
    assert_eq!(u32_at(&b, 32) as u64, disk.blocks() * 8);
    assert_eq!(u32_at(&b, 36), l.fat_blocks() * 8);
    assert_eq!(u32_at(&b, 44), 2, "the root's cluster");
    assert_eq!(&b[82..90], b"FAT32   ");
    assert_eq!(&b[..512], &b[6 * 512..7 * 512], "the backup boot sector");
    let fsinfo = &b[512..1024];
    assert_eq!(u32_at(fsinfo, 0), 0x4161_5252);
    assert_eq!(u32_at(fsinfo, 488), MIN_CLUSTERS - l.used_clusters());
    assert_eq!(u32_at(fsinfo, 492), 2 + l.used_clusters());
    assert_eq!(fsinfo, &b[7 * 512..8 * 512], "the backup FSInfo");

    // FAT32 entries: media byte, end mark; root (2) and folder (3), one
    // cluster each; the first file from 4 on.
    disk.block(l.fat_start(1), &mut b);
    let fat: Vec<u32> = (0..6).map(|i| u32_at(&b, 4 * i)).collect();
    const END: u32 = 0x0FFF_FFFF;
    assert_eq!(fat, [0x0FFF_FFF8, END, END, END, 5, 6]);
}

#[test]
fn a_root_too_large_for_fat16s_root_area_makes_a_fat32_volume() {
    // One-slot names (uppercase 8.3) after the label: the largest root
    // FAT16 holds, then one name more.
    let root = |names: u32| {
        let mut b = Builder::<()>::new();
        for i in 0..names {
            b.add_file(b.root(), &format!("{i:05}"), 0, ()).unwrap();
        }
        let disk = b.build().unwrap();
        (disk.manifest().to_vec(), disk.blocks())
    };
    let (bytes, blocks) = root(FAT16_MAX_ROOT_SLOTS - 1);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).unwrap();
    let l = disk.layout();
    assert_eq!((l.fat_type(), l.used_clusters()), (FatType::Fat16, 0));
    assert_eq!(l.root_area().end - l.root_area().start, u64::from(FAT16_MAX_ROOT_SLOTS / 128));
    let mut b = [0u8; 4096];
    disk.block(0, &mut b);
    assert_eq!(u16_at(&b, 17) as u32, FAT16_MAX_ROOT_SLOTS);
    disk.block(l.root_area().end - 1, &mut b);
    assert_eq!(&b[127 * 32..127 * 32 + 11], format!("{:05}      ", FAT16_MAX_ROOT_SLOTS - 2).as_bytes());

    let (bytes, blocks) = root(FAT16_MAX_ROOT_SLOTS);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let l = fatdisk::Layout::new(m, &mut scratch).unwrap();
    assert_eq!(l.fat_type(), FatType::Fat32);
    assert_eq!(l.clusters_of(0).len() as u32, FAT16_MAX_ROOT_SLOTS / 128 + 1);
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

#[test]
fn a_directory_far_too_large_is_refused_with_all_it_needs() {
    // 40,000 names of three slots, after `.` and `..`: 120,002 slots, not
    // the count where the limit was first passed.
    let mut b = Builder::<()>::new();
    let dir = b.add_dir(b.root(), "crowded").unwrap();
    for i in 0..40_000 {
        b.add_file(dir, &format!("file {i:05}.bin"), 0, ()).unwrap();
    }
    let err = b.build().err().expect("refused");
    assert_eq!(err.to_string(), "folder 'crowded' needs 120002 directory entries; FAT allows 65536 (fewer or shorter names)");
}
