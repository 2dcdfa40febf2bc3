//! The judges nobody here wrote: `fsck.fat` (dosfstools) and `mtools`.
//! A missing one fails the test and says which package to install.
//! (Also used by the tool's `appdisk` test and the content-disk test on
//! QEMU, with the sample folder they build volumes of.)

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../../tests/src/host_tool.rs"]
mod host_tool;
pub use host_tool::find_tool;

/// Run `fsck.fat -n` on `image` and fail on anything it reports beyond
/// its banner and the one-line summary; returns the summary.
pub fn fsck(image: &Path) -> String {
    let out = Command::new(find_tool("fsck.fat", "dosfstools")).arg("-n").arg(image).output().expect("run fsck.fat");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary_prefix = format!("{}: ", image.display());
    let findings: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter(|l| !(l.starts_with(&summary_prefix) && l.ends_with(" clusters") && l.contains(" files, ")))
        .collect();
    assert!(
        out.status.success() && findings.is_empty() && stderr.trim().is_empty(),
        "fsck.fat -n {} reports problems (status {}):\n{stdout}{stderr}",
        image.display(),
        out.status
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

/// An mtools command on `image`, in a UTF-8 locale so non-ASCII names
/// convert; fails on a non-zero status or any message.
pub fn mtools(tool: &str, image: &Path, args: &[&str]) -> String {
    let out = Command::new(find_tool(tool, "mtools"))
        .env("LC_ALL", "C.UTF-8")
        // FAT times are UTC on a content disk.
        .env("TZ", "UTC")
        .arg("-i")
        .arg(image)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{tool} -i {} {args:?} failed ({}):\n{stderr}", image.display(), out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copy everything on the volume into `out` (created) with mcopy.
pub fn mcopy_all(image: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    // -s: recursively, -n: no overwrite questions; `::` is the root.
    mtools("mcopy", image, &["-s", "-n", "::", &format!("{}/", out.display())]);
}

/// What a folder holds: `/`-separated relative paths, `None` for a
/// directory, the bytes for a file.
pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// Read the folder `root` as a [`Tree`].
pub fn read_tree(root: &Path) -> Tree {
    fn walk(dir: &Path, prefix: &str, tree: &mut Tree) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().expect("UTF-8 names");
            let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                tree.insert(path.clone(), None);
                walk(&entry.path(), &path, tree);
            } else {
                assert!(ty.is_file(), "{path}: not a file or a folder");
                tree.insert(path, Some(std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    let mut tree = Tree::new();
    walk(root, "", &mut tree);
    tree
}

/// Assert two trees are the same, naming the first difference (not
/// printing megabytes of file bytes).
pub fn assert_same_tree(got: &Tree, want: &Tree) {
    let got_paths: Vec<&String> = got.keys().collect();
    let want_paths: Vec<&String> = want.keys().collect();
    if got_paths != want_paths {
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).take(10).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(10).collect();
        panic!("trees differ: missing {missing:?}, unexpected {extra:?}");
    }
    for (path, want_bytes) in want {
        let got_bytes = &got[path];
        match (got_bytes, want_bytes) {
            (None, None) => {}
            (Some(g), Some(w)) if g == w => {}
            (Some(g), Some(w)) => {
                let at = g.iter().zip(w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
                panic!("'{path}': {} bytes, want {}; first difference at byte {at}", g.len(), w.len());
            }
            _ => panic!("'{path}': a file on one side, a folder on the other"),
        }
    }
}

/// A fresh empty directory for one test, under the target directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bytes that differ from block to block, so a misplaced block shows.
pub fn sample_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The sample folder of the content-disk tests: nested folders, an empty
/// file and an empty folder, files of 4096, 4097 and a few MiB, names with spaces, long and
/// non-ASCII names, and a few hundred files in one folder.
pub fn sample_folder(root: &Path) {
    let w = |rel: &str, bytes: Vec<u8>| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    w("empty", vec![]);
    w("exactly one block.bin", sample_bytes(4096, 1));
    w("one block and a byte.bin", sample_bytes(4097, 2));
    w("big/a few MiB.elf", sample_bytes(3 * 1024 * 1024 + 123, 3));
    w("apps/hello world/main.elf", sample_bytes(20_000, 4));
    w("apps/hello world/config.toml", b"name = \"hello\"\n".to_vec());
    w("apps/Grüße aus Köln/日本語.txt", "こんにちは\n".as_bytes().to_vec());
    w("apps/a name long enough to need several long-name entries, with spaces and punctuation (v1.2.3) [final].tar.gz", sample_bytes(777, 5));
    w("deep/er/and/deeper/still/leaf.txt", b"leaf\n".to_vec());
    w("README.TXT", b"read me\n".to_vec());
    std::fs::create_dir_all(root.join("an empty folder")).unwrap();
    for i in 0..400 {
        w(&format!("many/program {i:03} of many.bin"), sample_bytes(i * 37 % 9000, 100 + i as u64));
    }
}
