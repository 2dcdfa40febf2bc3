//! What serving a block costs, measured (not asserted: timings depend on
//! the machine). `cargo test --release -p fatdisk --test cost -- --ignored --nocapture`

use fatdisk::writer::Builder;
use fatdisk::{ContentDisk, EntryLayout, Manifest, Source};
use std::time::Instant;

#[test]
#[ignore = "a measurement; run with --release -- --ignored --nocapture"]
fn per_block_cost() {
    // 100,000 files of 1-3 blocks in 100 folders of 1,000, names of 30
    // characters (4 slots each).
    let mut b = Builder::<()>::new();
    for d in 0..100 {
        let dir = b.add_dir(b.root(), &format!("folder {d:03}")).unwrap();
        for f in 0..1000u64 {
            b.add_file(dir, &format!("application file number {f:05}.elf"), 1 + (f % 3) * 4096, ()).unwrap();
        }
    }
    let disk = b.build().unwrap();
    let t = Instant::now();
    let m = Manifest::parse(disk.manifest(), disk.blocks()).unwrap();
    let parse = t.elapsed();
    let mut scratch = vec![EntryLayout::EMPTY; m.len() as usize];
    let t = Instant::now();
    let content = ContentDisk::new(m, &mut scratch).unwrap();
    let layout = t.elapsed();
    let l = content.layout();
    println!(
        "{} entries, manifest {} KiB: parse {parse:?}, layout {layout:?}; {} used clusters",
        m.len(),
        disk.manifest().len() / 1024,
        l.used_clusters()
    );

    let mut buf = [0u8; 4096];
    let mut measure = |what: &str, blocks: &mut dyn Iterator<Item = u64>| {
        let (mut n, mut redirected) = (0u64, 0u64);
        let t = Instant::now();
        for block in blocks {
            if let Source::AppDisk(_) = content.block(block, &mut buf) {
                redirected += 1;
            }
            n += 1;
        }
        let per = t.elapsed() / n.max(1) as u32;
        println!("{what:>16}: {n:>7} blocks, {per:>9?} a block ({redirected} redirected)");
    };
    let used_end = l.data_start() + u64::from(l.used_clusters());
    measure("boot + reserved", &mut (0..4));
    measure("FAT", &mut (l.fat_start(0)..l.data_start()));
    // Entries 0-100 are the root and the folders (breadth-first order).
    let dirs: Vec<u64> = (0..=100).flat_map(|i| l.clusters_of(i)).map(|c| l.data_start() + u64::from(c - 2)).collect();
    measure("directories", &mut dirs.into_iter());
    measure("file data", &mut (l.data_start()..used_end).step_by(7));
}
