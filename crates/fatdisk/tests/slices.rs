//! Checking and laying out a manifest a slice at a time (`Check`,
//! `Laying`, `Crc32`), as the content filter does within its call budget:
//! the same manifest, layout and errors as all at once, each slice
//! bounded.

use fatdisk::manifest::{self, Error, MAX_ENTRIES, MAX_MANIFEST_BYTES, SLICE};
use fatdisk::writer::{Builder, WriteError};
use fatdisk::{Check, ContentDisk, Crc32, EntryLayout, Header, Laying, Manifest};

/// A manifest of `dirs` folders of `per_dir` files named `name_len`
/// bytes long (about: CJK after a number), and its disk's blocks.
fn tree(dirs: usize, per_dir: usize, name_len: usize) -> (Vec<u8>, u64) {
    let mut b = Builder::<()>::new();
    for d in 0..dirs {
        let dir = b.add_dir(b.root(), &format!("folder {d:03}")).unwrap();
        for i in 0..per_dir {
            let name = format!("{i:06}-{}", "語".repeat(name_len.saturating_sub(7) / 3));
            b.add_file(dir, &name, (i % 3) as u64 * 5000, ()).unwrap();
        }
    }
    let disk = b.build().unwrap();
    (disk.manifest().to_vec(), disk.blocks())
}

/// The manifest's checksum summed in pieces of `piece` bytes, as its
/// blocks are read.
fn summed(bytes: &[u8], piece: usize) -> Crc32 {
    let len = Header::parse(bytes).unwrap().manifest_len();
    let mut crc = Crc32::new();
    for chunk in bytes[..len].chunks(piece) {
        crc.add(chunk);
    }
    crc
}

/// Check and lay out in slices of `work`; the steps each took.
fn in_slices<'a>(bytes: &'a [u8], blocks: u64, scratch: &'a mut [EntryLayout], work: u32) -> Result<(ContentDisk<'a>, usize, usize), String> {
    let mut check = Check::start(bytes, blocks, &summed(bytes, 7 * 4096)).map_err(|e| e.to_string())?;
    let mut checks = 1;
    let manifest = loop {
        if let Some(m) = check.step(work).map_err(|e| e.to_string())? {
            break m;
        }
        checks += 1;
    };
    let mut laying = Laying::start(manifest, scratch).map_err(|e| e.to_string())?;
    let mut lays = 1;
    let layout = loop {
        if let Some(l) = laying.step(work).map_err(|e| e.to_string())? {
            break l;
        }
        lays += 1;
    };
    Ok((ContentDisk::laid_out(layout), checks, lays))
}

#[test]
fn a_crc_summed_in_pieces_is_the_crc_of_the_whole() {
    let (bytes, _) = tree(3, 50, 40);
    let len = Header::parse(&bytes).unwrap().manifest_len();
    let whole = manifest::crc32(&bytes[..len]);
    // Pieces that split the header's checksum field, and whole blocks.
    for piece in [1, 5, 33, 35, 4096] {
        let crc = summed(&bytes, piece);
        assert_eq!((crc.value(), crc.len()), (whole, len), "pieces of {piece}");
    }
}

#[test]
fn slices_give_the_volume_all_at_once_gives() {
    let (bytes, blocks) = tree(4, 300, 60);
    let m = Manifest::parse(&bytes, blocks).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let whole = ContentDisk::new(m, &mut scratch).unwrap();
    let mut scratch2 = vec![EntryLayout::EMPTY; m.len() as usize];
    let (sliced, checks, lays) = in_slices(&bytes, blocks, &mut scratch2, 100).unwrap();
    assert!(checks > 10 && lays > 40, "{checks} check steps, {lays} layout steps");
    assert_eq!(sliced.blocks(), whole.blocks());
    let (mut a, mut b) = ([0u8; 4096], [0u8; 4096]);
    for block in 0..whole.layout().data_start() + 2000 {
        assert_eq!(whole.block(block, &mut a), sliced.block(block, &mut b), "block {block}");
        assert_eq!(a, b, "block {block}");
    }
}

#[test]
fn a_slice_stops_after_its_work_and_long_names_count_more() {
    // 2,000 entries of short names: a step of SLICE does all of them; of
    // 700-byte names each entry costs 44 units, so a step does about 190.
    let (short, blocks) = tree(1, 2_000, 10);
    let mut check = Check::start(&short, blocks, &summed(&short, 4096)).unwrap();
    assert!(check.step(SLICE).unwrap().is_some());
    let (long, blocks) = tree(1, 2_000, 700);
    let mut check = Check::start(&long, blocks, &summed(&long, 4096)).unwrap();
    let mut steps = 1;
    while check.step(SLICE).unwrap().is_none() {
        steps += 1;
    }
    assert!((10..=12).contains(&steps), "{steps} steps");
}

#[test]
fn an_error_in_a_late_slice_is_the_error_all_at_once_finds() {
    let (mut bytes, blocks) = tree(2, 500, 20);
    // Entry 900's kind: neither a folder nor a file.
    bytes[64 + 32 * 900 + 4] = 7;
    let len = Header::parse(&bytes).unwrap().manifest_len();
    let crc = manifest::crc32(&bytes[..len]);
    bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    let whole = Manifest::parse(&bytes, blocks).unwrap_err();
    assert_eq!(whole, Error::Entry { index: 900, problem: manifest::EntryProblem::BadKind(7) });
    let mut scratch = vec![EntryLayout::EMPTY; 1001];
    let sliced = in_slices(&bytes, blocks, &mut scratch, 50).err().unwrap();
    assert_eq!(sliced, whole.to_string());
}

#[test]
fn a_sum_of_too_few_bytes_is_refused_as_such() {
    let (bytes, blocks) = tree(1, 100, 20);
    let len = Header::parse(&bytes).unwrap().manifest_len();
    let mut crc = Crc32::new();
    crc.add(&bytes[..4096]);
    let err = Check::start(&bytes, blocks, &crc).unwrap_err();
    assert_eq!(err, Error::ChecksumCoverage { summed: 4096, len: len as u64 });
    assert!(err.to_string().contains(&format!("summed over 4096 bytes, but the manifest has {len}")), "{err}");
}

#[test]
fn the_writer_refuses_what_the_content_filter_cannot_hold() {
    // More entries than the filter lays out.
    let mut b = Builder::<()>::new();
    let mut dir = b.root();
    for i in 0..MAX_ENTRIES as usize {
        if i % 60_000 == 0 {
            dir = b.add_dir(b.root(), &format!("d{i}")).unwrap();
        }
        b.add_file(dir, &format!("f{i}"), 0, ()).unwrap();
    }
    let e = b.build().err().unwrap();
    assert!(matches!(e, WriteError::TooManyEntries(n) if n > MAX_ENTRIES as usize - 1), "{e}");
    // A manifest larger than it holds: 40,000 names of 220 bytes.
    let mut b = Builder::<()>::new();
    for d in 0..2 {
        let dir = b.add_dir(b.root(), &format!("d{d}")).unwrap();
        for i in 0..20_000 {
            b.add_file(dir, &format!("{i:05}{}", "x".repeat(215)), 0, ()).unwrap();
        }
    }
    let e = b.build().err().unwrap();
    assert!(matches!(e, WriteError::ManifestTooLarge { entries: 40_002, bytes } if bytes > MAX_MANIFEST_BYTES), "{e}");
    assert!(e.to_string().contains("at most 8 MiB"), "{e}");
}
