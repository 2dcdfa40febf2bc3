//! `strata appdisk DIR IMAGE`: an application disk built from a folder is
//! served (by `fatdisk`, block by block, as the filter will) as a FAT
//! volume that `fsck.fat -n` finds nothing wrong with and from which
//! `mcopy` copies the folder back exactly; links, special files and names
//! FAT cannot hold are refused with one line naming the path.

#[path = "../../crates/fatdisk/tests/common/external.rs"]
mod external;

use external::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn strata_appdisk(dir: &Path, image: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).arg("appdisk").arg(dir).arg(image).output().expect("run strata")
}

#[test]
fn a_folder_becomes_a_volume_that_fsck_accepts_and_mcopy_copies_back_exactly() {
    let work = scratch_dir("appdisk-roundtrip");
    let folder = work.join("folder");
    sample_folder(&folder);
    let (app, content, out) = (work.join("app.img"), work.join("content.img"), work.join("out"));

    let run = strata_appdisk(&folder, &app);
    assert!(run.status.success(), "strata appdisk failed: {}", String::from_utf8_lossy(&run.stderr));
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.starts_with(&format!("{}: 410 files in 11 folders, ", app.display())), "{said}");
    assert!(run.stderr.is_empty(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(fs::metadata(&app).unwrap().len() % 4096, 0);

    fatdisk::render::render(&app, &content).unwrap();
    fsck(&content);
    mcopy_all(&content, &out);
    assert_same_tree(&read_tree(&out), &read_tree(&folder));
    let _ = fs::remove_dir_all(&work);
}

/// Each file and folder keeps its modification time, to the even second
/// (FAT's), in UTC; one FAT cannot hold (before 1980) shows the content
/// disk's fixed date.
#[test]
fn files_and_folders_keep_their_modification_times() {
    let work = scratch_dir("appdisk-times");
    let folder = work.join("folder");
    fs::create_dir_all(folder.join("sub")).unwrap();
    let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    // 2024-12-07 14:47:41, 2001-09-09 01:46:40, 1970-01-02.
    for (name, secs) in [("new.txt", 1_733_582_861), ("sub/old.bin", 1_000_000_000), ("ancient.txt", 86_400)] {
        let f = fs::File::create(folder.join(name)).unwrap();
        fs::write(folder.join(name), name.as_bytes()).unwrap();
        f.set_modified(at(secs)).unwrap();
    }
    fs::File::open(folder.join("sub")).unwrap().set_modified(at(1_600_000_000)).unwrap();
    let (app, content, out) = (work.join("app.img"), work.join("content.img"), work.join("out"));
    assert!(strata_appdisk(&folder, &app).status.success());
    fatdisk::render::render(&app, &content).unwrap();
    fsck(&content);
    // -m: mcopy gives each copy the time the volume holds.
    std::fs::create_dir_all(&out).unwrap();
    mtools("mcopy", &content, &["-s", "-n", "-m", "::", &format!("{}/", out.display())]);
    let modified = |p: &str| fs::metadata(out.join(p)).unwrap().modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(modified("new.txt"), 1_733_582_860, "to the even second");
    assert_eq!(modified("sub/old.bin"), 1_000_000_000);
    assert_eq!(modified("ancient.txt"), 1_735_689_600, "2025-01-01: FAT holds nothing before 1980");
    let listing = mtools("mdir", &content, &["::/"]);
    assert!(listing.lines().any(|l| l.starts_with("SUB ") && l.contains("2020-09-13  12:26")), "{listing}");
    let _ = fs::remove_dir_all(&work);
}

/// Run `strata appdisk` on `folder` expecting a refusal: one line on
/// standard error, a failure status, and no image left behind.
fn refused(folder: &Path, image: &Path) -> String {
    let run = strata_appdisk(folder, image);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "accepted: {}", String::from_utf8_lossy(&run.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!image.exists(), "an image was left behind");
    let _ = fs::remove_dir_all(folder.parent().unwrap());
    stderr.trim_end().to_string()
}

fn fresh(name: &str) -> (PathBuf, PathBuf) {
    let work = scratch_dir(name);
    let folder = work.join("folder");
    fs::create_dir_all(folder.join("sub")).unwrap();
    fs::write(folder.join("sub/ok.txt"), b"fine").unwrap();
    (folder, work.join("app.img"))
}

#[test]
fn a_symbolic_link_is_refused_naming_it() {
    let (folder, image) = fresh("appdisk-symlink");
    std::os::unix::fs::symlink("ok.txt", folder.join("sub/link")).unwrap();
    let err = refused(&folder, &image);
    assert_eq!(
        err,
        format!(
            "error: '{}' is a symbolic link; an application disk holds only regular files and folders",
            folder.join("sub/link").display()
        )
    );
}

#[test]
fn a_fifo_is_refused_naming_it() {
    let (folder, image) = fresh("appdisk-fifo");
    let fifo = folder.join("sub/pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = refused(&folder, &image);
    assert_eq!(
        err,
        format!("error: '{}' is a device, FIFO or socket; an application disk holds only regular files and folders", fifo.display())
    );
}

#[test]
fn names_fat_cannot_hold_or_tell_apart_are_refused() {
    let (folder, image) = fresh("appdisk-names");
    fs::write(folder.join("sub/OK.TXT"), b"clash").unwrap();
    let err = refused(&folder, &image);
    assert!(err.ends_with("'sub/OK.TXT' and 'sub/ok.txt' differ only in case, which FAT cannot tell apart"), "{err}");

    let (folder, image) = fresh("appdisk-names2");
    fs::write(folder.join("sub/trailing dot."), b"").unwrap();
    let err = refused(&folder, &image);
    assert!(err.ends_with("'sub/trailing dot.': the name ends in a space or a period, which FAT drops"), "{err}");

    let (folder, image) = fresh("appdisk-names3");
    fs::write(folder.join("sub/what?"), b"").unwrap();
    let err = refused(&folder, &image);
    assert!(err.ends_with("'sub/what?': the name holds '?', which FAT names cannot"), "{err}");

    let (folder, image) = fresh("appdisk-names4");
    use std::os::unix::ffi::OsStrExt;
    let bad = folder.join("sub").join(std::ffi::OsStr::from_bytes(b"latin1-\xe9"));
    fs::write(&bad, b"").unwrap();
    let err = refused(&folder, &image);
    assert!(err.ends_with("the name is not UTF-8"), "{err}");
}

#[test]
fn an_image_inside_its_own_folder_is_refused() {
    let (folder, _) = fresh("appdisk-inside");
    let err = refused(&folder, &folder.join("sub/app.img"));
    assert!(err.contains("would be inside the folder"), "{err}");
    // Also in folders of it that do not exist yet.
    let (folder, _) = fresh("appdisk-inside-new");
    let err = refused(&folder, &folder.join("new/deeper/app.img"));
    assert!(err.contains("would be inside the folder"), "{err}");
    assert!(!folder.join("new").exists());
}

#[test]
fn the_images_folders_are_made_if_missing() {
    // As on a fresh checkout: `make appdisk DIR=apps IMAGE=build/apps.img`
    // before anything made `build/`.
    let (folder, image) = fresh("appdisk-new-folders");
    let image = image.parent().unwrap().join("build/more/app.img");
    let run = strata_appdisk(&folder, &image);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(fs::metadata(&image).unwrap().len() > 0);
}

/// A name with a character outside the Basic Multilingual Plane goes on
/// the disk, with a note that mtools will not show it as it is.
#[test]
fn names_mtools_cannot_show_are_taken_with_a_note() {
    let (folder, image) = fresh("appdisk-wide-names");
    fs::create_dir_all(folder.join("sub")).unwrap();
    fs::write(folder.join("sub/party \u{1f389}.txt"), b"x").unwrap();
    fs::write(folder.join("plain.txt"), b"y").unwrap();
    let run = strata_appdisk(&folder, &image);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let said = String::from_utf8_lossy(&run.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("note: 'sub/party \u{1f389}.txt' has characters outside Unicode's Basic Multilingual Plane"), "{said}");
    assert!(said.contains("mtools 4.0 extracts them as '_'"), "{said}");
}

#[test]
fn an_empty_folder_gives_an_empty_volume() {
    let work = scratch_dir("appdisk-empty");
    let folder = work.join("folder");
    fs::create_dir_all(&folder).unwrap();
    let (app, content, out) = (work.join("app.img"), work.join("content.img"), work.join("out"));
    let run = strata_appdisk(&folder, &app);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    fatdisk::render::render(&app, &content).unwrap();
    fsck(&content);
    mcopy_all(&content, &out);
    assert!(read_tree(&out).is_empty());
    let _ = fs::remove_dir_all(&work);
}
