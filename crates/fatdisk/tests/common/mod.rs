//! Shared by the volume tests: trees in memory written as application
//! disks, and the external judges.

#![allow(dead_code)]

pub mod external;

pub use external::*;
use fatdisk::writer::{AppDisk, Builder, DirId};
use std::collections::BTreeMap;
use std::path::Path;

/// A builder holding `tree` (parents are created from the paths).
pub fn builder_of(tree: &Tree) -> Builder<Vec<u8>> {
    let mut b = Builder::new();
    let mut dirs: BTreeMap<String, DirId> = BTreeMap::new();
    // BTreeMap order puts "a" before "a/b": parents come first.
    for (path, node) in tree {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (dirs[p], n),
            None => (b.root(), path.as_str()),
        };
        match node {
            None => {
                let id = b.add_dir(parent, name).unwrap();
                dirs.insert(path.clone(), id);
            }
            Some(bytes) => {
                b.add_file(parent, name, bytes.len() as u64, bytes.clone()).unwrap();
            }
        }
    }
    b
}

/// Write `disk` as an image file.
pub fn write_image(disk: &AppDisk<Vec<u8>>, path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    disk.write_to(&mut out, |f| Ok(std::io::Cursor::new(f.source.clone()))).unwrap();
}

/// Build `tree` as an application disk, render its content disk, check it
/// with fsck.fat, copy everything out with mcopy and compare with `tree`.
/// Returns the fsck summary.
pub fn round_trip(name: &str, tree: &Tree) -> String {
    let dir = scratch_dir(name);
    let app = dir.join("app.img");
    let content = dir.join("content.img");
    let disk = builder_of(tree).build().unwrap();
    write_image(&disk, &app);
    assert_eq!(std::fs::metadata(&app).unwrap().len(), disk.blocks() * 4096);
    fatdisk::render::render(&app, &content).unwrap();
    let summary = fsck(&content);
    let out = dir.join("out");
    mcopy_all(&content, &out);
    assert_same_tree(&read_tree(&out), tree);
    if std::env::var_os("FATDISK_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    summary
}

/// `n` bytes that differ from block to block and byte to byte, so a
/// block read from the wrong place shows.
pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
