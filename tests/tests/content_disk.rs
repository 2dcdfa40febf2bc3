//! The dynamic content disk on QEMU, the way a user runs it: `make appdisk`
//! builds an application disk from a folder; `make run` boots
//! `examples/content-disk.xml`, where `filter_content` shows that disk as
//! a FAT volume and `blk_dump` copies the volume to the start of a
//! second disk that `scripts/qemu.sh` makes blank; then the judges nobody
//! here wrote, `fsck.fat -n` and `mcopy -s`, must find a sound volume
//! holding every file of the folder, byte for byte.

#[path = "../../crates/fatdisk/tests/common/external.rs"]
mod external;

use e2e::{make, root};
use external::{assert_same_tree, fsck, mcopy_all, read_tree, sample_folder};
use std::path::Path;
use std::process::Output;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn make_run_copies_the_content_disk_and_the_host_reads_every_file_back() {
    let work = root().join(format!("build/e2e/content-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let folder = work.join("folder");
    sample_folder(&folder);
    let (apps, dump, out) = (work.join("apps.img"), work.join("dump.img"), work.join("out"));
    let path = |p: &Path| p.to_str().unwrap().to_string();

    let built = make(&["appdisk", &format!("DIR={}", path(&folder)), &format!("IMAGE={}", path(&apps))]);
    assert!(built.status.success(), "make appdisk failed\n{}", text(&built));

    assert!(!dump.exists());
    let run = make(&["run", "SYSTEM=examples/content-disk.xml", &format!("DISKS={} {}", path(&apps), path(&dump))]);
    let console = text(&run);
    assert!(run.status.success(), "make run failed (status {:?})\n{console}", run.status.code());
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let copied = lines.iter().rev().find(|l| l.starts_with("blk_dump: ")).copied();
    assert!(
        copied.is_some_and(|l| l.starts_with("blk_dump: copied ") && l.ends_with(" from disk0 to disk1")),
        "the run ends with blk_dump's copied line\n{console}"
    );
    // A few MiB of files: FAT16, of its fewest clusters (16 MiB).
    assert!(lines.iter().any(|l| l.starts_with("content0: ") && l.contains("a FAT16 volume of 4115 blocks (16 MiB)")), "{console}");
    assert_eq!(std::fs::metadata(&dump).unwrap().len(), 1 << 30, "the missing image was made blank, 1 GiB");

    fsck(&dump);
    mcopy_all(&dump, &out);
    assert_same_tree(&read_tree(&out), &read_tree(&folder));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn make_run_on_a_disk_that_is_no_application_disk_says_so_and_fails() {
    let work = root().join(format!("build/e2e/content-disk-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let (apps, dump) = (work.join("blank.img"), work.join("dump.img"));
    std::fs::write(&apps, vec![0u8; 10 << 20]).unwrap();
    std::fs::write(&dump, vec![0xeeu8; 300 << 20]).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();

    let run = make(&["run", "SYSTEM=examples/content-disk.xml", &format!("DISKS={} {}", path(&apps), path(&dump))]);
    let console = text(&run);
    assert!(!run.status.success(), "a run that copied nothing fails\n{console}");
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("content0: ") && l.contains("not an application disk (no \"STRTAPPS\" magic); make an application disk with `make appdisk`")),
        "the filter says what is wrong once\n{console}"
    );
    assert!(
        lines.contains(&"blk_dump: disk0 has no blocks (no device, one smaller than a block, or filters that could not set it up: see above): copied nothing"),
        "{console}"
    );
    assert!(std::fs::read(&dump).unwrap().iter().all(|&b| b == 0xee), "nothing was written to disk1");
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_blank_disk_little_larger_than_the_files_takes_their_content_disk() {
    // A user's own blank disk of 20 MiB: enough for the FAT16 volume of a
    // small folder; fsck.fat and mcopy read it back from there.
    let work = root().join(format!("build/e2e/content-disk-small-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let folder = work.join("folder");
    std::fs::create_dir_all(folder.join("sub folder")).unwrap();
    std::fs::write(folder.join("sub folder/Program One.elf"), (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()).unwrap();
    std::fs::write(folder.join("notes.txt"), b"a small folder\n").unwrap();
    let (apps, dump, out) = (work.join("apps.img"), work.join("dump.img"), work.join("out"));
    std::fs::write(&dump, vec![0u8; 20 << 20]).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();

    let built = make(&["appdisk", &format!("DIR={}", path(&folder)), &format!("IMAGE={}", path(&apps))]);
    assert!(built.status.success(), "make appdisk failed\n{}", text(&built));
    let run = make(&["run", "SYSTEM=examples/content-disk.xml", &format!("DISKS={} {}", path(&apps), path(&dump))]);
    let console = text(&run);
    assert!(run.status.success(), "make run failed (status {:?})\n{console}", run.status.code());
    assert!(console.contains("blk_dump: copied 4115 blocks (16.07 MiB) from disk0 to disk1"), "{console}");
    assert_eq!(std::fs::metadata(&dump).unwrap().len(), 20 << 20, "the user's disk keeps its size");

    fsck(&dump);
    mcopy_all(&dump, &out);
    assert_same_tree(&read_tree(&out), &read_tree(&folder));
    let _ = std::fs::remove_dir_all(&work);
}
