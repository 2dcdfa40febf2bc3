//! A manifest from a user's disk is hostile until parsed: damage of any
//! kind is an error, never a panic or a read out of bounds; and whatever
//! does parse lays out as a volume whose every block can be served, each
//! redirect landing inside the file it belongs to.

mod common;

use common::*;
use fatdisk::layout;
use fatdisk::manifest::{self, EntryProblem, Error};
use fatdisk::{ContentDisk, EntryLayout, Kind, Manifest, Source};
use proptest::prelude::*;

/// A valid application disk's manifest (whole blocks) and its size in
/// blocks: directories, empty and non-empty files, non-ASCII names.
fn valid() -> (Vec<u8>, u64) {
    let mut t = Tree::new();
    t.insert("apps".into(), None);
    t.insert("apps/hello world".into(), None);
    t.insert("apps/hello world/main.elf".into(), Some(pattern(4096, 1)));
    t.insert("apps/hello world/data".into(), Some(pattern(4097, 2)));
    t.insert("apps/empty".into(), Some(vec![]));
    t.insert("README.TXT".into(), Some(b"hi".to_vec()));
    t.insert("Ünïcödé".into(), Some(pattern(9000, 3)));
    t.insert("zz".into(), None);
    let disk = builder_of(&t).build().unwrap();
    (disk.manifest().to_vec(), disk.blocks())
}

/// `bytes` with the header's checksum made right again, so a mutation is
/// judged by the checks behind it.
fn fix_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Ok(h) = manifest::Header::parse(&bytes) {
        let len = h.manifest_len().min(bytes.len());
        let crc = manifest::crc32(&bytes[..len]);
        bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

fn entry_offset(i: usize) -> usize {
    manifest::HEADER_SIZE + manifest::ENTRY_SIZE * i
}

fn put32(bytes: &mut [u8], off: usize, v: u32) {
    bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(bytes: &mut [u8], off: usize, v: u64) {
    bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Parse `bytes` for a disk of `disk_blocks`; if it parses, lay it out and
/// serve every block up to the end of the used clusters, checking each
/// redirect. Returns the parse error, if any.
fn judge(bytes: &[u8], disk_blocks: u64) -> Result<(), String> {
    let m = Manifest::parse(bytes, disk_blocks).map_err(|e| e.to_string())?;
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let disk = ContentDisk::new(m, &mut scratch).map_err(|e| e.to_string())?;
    let l = disk.layout();
    assert_eq!(disk.blocks(), l.data_start() + u64::from(l.clusters()));
    let least = match l.fat_type() {
        layout::FatType::Fat16 => layout::FAT16_MIN_CLUSTERS,
        layout::FatType::Fat32 => layout::MIN_CLUSTERS,
    };
    assert!(l.clusters() >= least && l.clusters() <= layout::MAX_CLUSTERS);
    assert!(l.fat_type() == layout::FatType::Fat32 || l.clusters() <= layout::FAT16_MAX_CLUSTERS);
    let mut buf = [0u8; 4096];
    let end = (l.data_start() + u64::from(l.used_clusters()) + 2).min(disk.blocks() + 1);
    for block in 0..end {
        if let Source::AppDisk(at) = disk.block(block, &mut buf) {
            assert!(at < disk_blocks, "block {block} redirected to {at}, past the disk's {disk_blocks}");
            let cluster = (block - l.data_start()) as u32 + layout::FIRST_CLUSTER;
            let owner = l.entry_at(cluster).expect("a redirected cluster has an owner");
            let e = m.entry(owner);
            assert_eq!(e.kind, Kind::File);
            assert!(at >= e.start && at < e.start + manifest::blocks_for(e.size));
        }
    }
    Ok(())
}

#[test]
fn the_valid_manifest_is_judged_valid() {
    let (bytes, blocks) = valid();
    judge(&bytes, blocks).unwrap();
}

#[test]
fn a_truncated_manifest_is_an_error() {
    let (bytes, blocks) = valid();
    let len = manifest::Header::parse(&bytes).unwrap().manifest_len();
    for cut in [0, 10, 63, 64, 100, len - 1] {
        assert!(matches!(Manifest::parse(&bytes[..cut], blocks), Err(Error::TooShort { .. })), "cut at {cut}");
    }
}

#[test]
fn a_flipped_bit_is_caught_by_the_checksum() {
    let (mut bytes, blocks) = valid();
    bytes[entry_offset(3) + 17] ^= 4;
    assert!(matches!(Manifest::parse(&bytes, blocks), Err(Error::Checksum { .. })));
}

#[test]
fn an_absurd_entry_count_is_refused_before_anything_is_read() {
    let (mut bytes, blocks) = valid();
    put32(&mut bytes, 12, u32::MAX);
    assert_eq!(Manifest::parse(&fix_crc(bytes), blocks).unwrap_err(), Error::BadEntryCount(u32::MAX));
}

#[test]
fn a_parent_that_comes_after_its_child_is_an_error() {
    // The only way to make a cycle; refused, so the tree is a tree.
    let (mut bytes, blocks) = valid();
    put32(&mut bytes, entry_offset(1), 5);
    let err = Manifest::parse(&fix_crc(bytes), blocks).unwrap_err();
    assert_eq!(err, Error::Entry { index: 1, problem: EntryProblem::ParentNotBefore(5) });
}

#[test]
fn a_file_cannot_be_a_parent() {
    let (bytes, blocks) = valid();
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let file = (1..m.len()).find(|&i| m.entry(i).kind == Kind::File).unwrap();
    let child = (file + 1..m.len()).last().unwrap();
    let mut bytes = bytes.clone();
    put32(&mut bytes, entry_offset(child as usize), file);
    let err = Manifest::parse(&fix_crc(bytes), blocks).unwrap_err();
    assert!(
        matches!(err, Error::Entry { problem: EntryProblem::ParentNotDirectory(p), .. } if p == file)
            || matches!(err, Error::Entry { problem: EntryProblem::NotGroupedByParent, .. }),
        "{err}"
    );
}

#[test]
fn names_out_of_bounds_or_not_utf8_or_not_fat_are_errors() {
    let (bytes, blocks) = valid();
    let names_at = entry_offset(manifest::Header::parse(&bytes).unwrap().entries() as usize);
    let mut far = bytes.clone();
    put32(&mut far, entry_offset(1) + 8, u32::MAX);
    let err = Manifest::parse(&fix_crc(far), blocks).unwrap_err();
    assert_eq!(err, Error::Entry { index: 1, problem: EntryProblem::NameOutOfBounds });

    let m = Manifest::parse(&bytes, blocks).unwrap();
    let name_of_1 = m.entry(1).name.to_string();
    let at = names_at + bytes[names_at..].windows(name_of_1.len()).position(|w| w == name_of_1.as_bytes()).unwrap();
    for (bad, want) in [
        (0xFFu8, EntryProblem::Name(fatdisk::names::NameError::NotUtf8)),
        (b'/', EntryProblem::Name(fatdisk::names::NameError::ForbiddenChar('/'))),
    ] {
        let mut b = bytes.clone();
        b[at] = bad;
        let err = Manifest::parse(&fix_crc(b), blocks).unwrap_err();
        assert!(matches!(err, Error::Entry { problem, .. } if problem == want), "{err}");
    }
}

#[test]
fn siblings_out_of_order_or_equal_ignoring_case_are_errors() {
    let (bytes, blocks) = valid();
    // The root's children: apps, README.TXT, Ünïcödé, zz (entries 1-4);
    // point entry 2's name at entry 1's.
    let mut dup = bytes.clone();
    let off1 = dup[entry_offset(1) + 8..entry_offset(1) + 12].to_vec();
    let len1 = dup[entry_offset(1) + 6..entry_offset(1) + 8].to_vec();
    dup[entry_offset(2) + 8..entry_offset(2) + 12].copy_from_slice(&off1);
    dup[entry_offset(2) + 6..entry_offset(2) + 8].copy_from_slice(&len1);
    let err = Manifest::parse(&fix_crc(dup), blocks).unwrap_err();
    assert_eq!(err, Error::Entry { index: 2, problem: EntryProblem::DuplicateName });

    let mut swapped = bytes.clone();
    let (a, b) = (entry_offset(3), entry_offset(4));
    let third = swapped[a..a + 32].to_vec();
    let fourth = swapped[b..b + 32].to_vec();
    swapped[a..a + 32].copy_from_slice(&fourth);
    swapped[b..b + 32].copy_from_slice(&third);
    let err = Manifest::parse(&fix_crc(swapped), blocks).unwrap_err();
    assert!(matches!(err, Error::Entry { problem: EntryProblem::NotSorted, .. }), "{err}");
}

#[test]
fn file_data_that_overlaps_or_runs_off_the_disk_is_an_error() {
    let (bytes, blocks) = valid();
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let files: Vec<u32> = (1..m.len()).filter(|&i| m.entry(i).kind == Kind::File && m.entry(i).size > 0).collect();
    let (first, second) = (files[0], files[1]);

    let mut overlap = bytes.clone();
    put64(&mut overlap, entry_offset(second as usize) + 24, m.entry(first).start);
    let err = Manifest::parse(&fix_crc(overlap), blocks).unwrap_err();
    assert!(matches!(err, Error::Entry { index, problem: EntryProblem::DataOverlaps { .. } } if index == second), "{err}");

    let mut into_manifest = bytes.clone();
    put64(&mut into_manifest, entry_offset(first as usize) + 24, 0);
    let err = Manifest::parse(&fix_crc(into_manifest), blocks).unwrap_err();
    assert!(matches!(err, Error::Entry { problem: EntryProblem::DataOverlaps { .. }, .. }), "{err}");

    let mut huge = bytes.clone();
    put64(&mut huge, entry_offset(*files.last().unwrap() as usize) + 16, u64::MAX);
    let err = Manifest::parse(&fix_crc(huge), blocks).unwrap_err();
    assert!(matches!(err, Error::Entry { problem: EntryProblem::FileTooLarge(u64::MAX), .. }), "{err}");

    // The disk the filter was given is smaller than the manifest says.
    let err = Manifest::parse(&bytes, blocks - 1).unwrap_err();
    assert!(matches!(err, Error::DataBeyondDisk { .. }), "{err}");
}

#[test]
fn reserved_bytes_must_be_zero() {
    let (bytes, blocks) = valid();
    let mut b = bytes.clone();
    b[50] = 1;
    assert_eq!(Manifest::parse(&fix_crc(b), blocks).unwrap_err(), Error::HeaderReservedNotZero);
    let mut b = bytes.clone();
    b[entry_offset(2) + 5] = 1;
    let err = Manifest::parse(&fix_crc(b), blocks).unwrap_err();
    assert_eq!(err, Error::Entry { index: 2, problem: EntryProblem::ReservedNotZero });
}

#[test]
fn a_modification_time_must_be_a_date_and_time_and_version_1_has_none() {
    let (bytes, blocks) = valid();
    // 2024-12-07 14:47:40, then the same with month 13 and with 24 hours.
    for (field, ok) in [(0x5987_75f4u32, true), (0x59a7_75f4, false), (0x5987_c5f4, false)] {
        let mut b = bytes.clone();
        b[entry_offset(2) + 12..][..4].copy_from_slice(&field.to_le_bytes());
        let sealed = fix_crc(b.clone());
        let parsed = Manifest::parse(&sealed, blocks);
        if ok {
            let stamp = parsed.unwrap().entry(2).modified;
            assert_eq!((stamp.date, stamp.time), (0x5987, 0x75f4));
        } else {
            assert_eq!(parsed.unwrap_err(), Error::Entry { index: 2, problem: EntryProblem::BadStamp(field) });
        }
        // Version 1: the field is reserved.
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let err = Manifest::parse(&fix_crc(b), blocks).unwrap_err();
        assert_eq!(err, Error::Entry { index: 2, problem: EntryProblem::ReservedNotZero });
    }
    // A version 1 manifest reads, every entry at the fixed date.
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    let sealed = fix_crc(b);
    let m = Manifest::parse(&sealed, blocks).unwrap();
    assert!((0..m.len()).all(|i| m.entry(i).modified == fatdisk::dir::Stamp::DEFAULT));
}

#[test]
fn too_little_scratch_is_an_error_not_a_panic() {
    let (bytes, blocks) = valid();
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize - 1];
    let err = ContentDisk::new(m, &mut scratch).unwrap_err();
    assert_eq!(err, layout::Error::ScratchTooSmall { needed: m.len(), got: m.len() as usize - 1 });
}

/// One way to damage a manifest.
#[derive(Clone, Debug)]
enum Damage {
    /// Overwrite one byte anywhere in the manifest.
    Byte(usize, u8),
    /// Set a 32-bit field of an entry (or the header: entry `None`).
    Field32(Option<usize>, usize, u32),
    /// Set a 64-bit field.
    Field64(Option<usize>, usize, u64),
    /// Cut the manifest short.
    Truncate(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let value32 = prop_oneof![Just(0u32), Just(1), Just(2), Just(u32::MAX), Just(0x8000_0000), any::<u32>(), 0u32..64];
    let value64 = prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u32::MAX as u64), Just(1 << 40), any::<u64>(), 0u64..64];
    let entry = prop::option::of(0usize..16);
    prop_oneof![
        4 => (0usize..2048, any::<u8>()).prop_map(|(o, b)| Damage::Byte(o, b)),
        3 => (entry.clone(), prop::sample::select(vec![0usize, 4, 6, 8, 12, 16, 20, 24]), value32).prop_map(|(e, f, v)| Damage::Field32(e, f, v)),
        2 => (entry, prop::sample::select(vec![16usize, 24]), value64).prop_map(|(e, f, v)| Damage::Field64(e, f, v)),
        1 => (0usize..2048).prop_map(Damage::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let at = |e: &Option<usize>, f: usize| e.map_or(f, |e| entry_offset(e) + f);
    match d {
        Damage::Byte(o, b) => {
            if let Some(x) = bytes.get_mut(*o) {
                *x = *b;
            }
        }
        Damage::Field32(e, f, v) => {
            let o = at(e, *f);
            if o + 4 <= bytes.len() {
                put32(bytes, o, *v);
            }
        }
        Damage::Field64(e, f, v) => {
            let o = at(e, *f);
            if o + 8 <= bytes.len() {
                put64(bytes, o, *v);
            }
        }
        Damage::Truncate(n) => bytes.truncate(*n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_manifests_give_an_error_or_a_servable_volume(
        damages in prop::collection::vec(damage(), 1..6),
        fix in any::<bool>(),
        shrink_disk in prop_oneof![4 => Just(0u64), 1 => 0u64..8],
    ) {
        let (mut bytes, blocks) = valid();
        for d in &damages {
            apply(&mut bytes, d);
        }
        if fix {
            bytes = fix_crc(bytes);
        }
        let _ = judge(&bytes, blocks.saturating_sub(shrink_disk));
    }
}
