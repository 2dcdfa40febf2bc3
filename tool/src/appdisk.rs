//! `strata appdisk DIR IMAGE`: an application disk from a folder, for the
//! dynamic content disk (`crates/fatdisk`).
//!
//! The folder is read recursively: subfolders, empty files and any name
//! FAT can hold (spaces, non-ASCII). Only regular files and folders go on
//! an application disk: a symbolic link, a device, a FIFO or a socket is
//! refused with the path, as is a name FAT cannot hold or two names that
//! differ only in case. The image is written by `fatdisk::writer`: the
//! manifest, then each file from a 4 KiB boundary, zero-padded (its
//! folders are made if missing). A failed write leaves no image behind.

use fatdisk::dir::Stamp;
use fatdisk::writer::{AppDisk, Builder, DirId, NodeId, WriteError};
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// What went on the disk.
pub struct Summary {
    pub files: usize,
    pub folders: usize,
    pub blocks: u64,
    /// Paths (relative to the folder) whose names have characters outside
    /// Unicode's Basic Multilingual Plane (an emoji): FAT stores them as
    /// UTF-16 surrogate pairs, which Linux's vfat shows, but which mtools
    /// 4.0 extracts as `_`, so `make appdisk` says so.
    pub wide_names: Vec<String>,
}

/// Build the application disk of folder `dir` as the file `image`.
pub fn build(dir: &Path, image: &Path) -> Result<Summary, String> {
    let meta = fs::metadata(dir).map_err(|e| format!("cannot read folder '{}': {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("'{}' is not a folder", dir.display()));
    }
    refuse_image_inside(dir, image)?;

    let mut builder = Builder::new();
    let root = builder.root();
    stamp(&mut builder, root, &meta);
    let mut folders = 0;
    let mut wide_names = Vec::new();
    let mut pending: Vec<(DirId, PathBuf)> = vec![(builder.root(), dir.to_path_buf())];
    while let Some((id, path)) = pending.pop() {
        let entries = fs::read_dir(&path).map_err(|e| format!("cannot read folder '{}': {e}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read folder '{}': {e}", path.display()))?;
            let child = entry.path();
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| format!("'{}': the name is not UTF-8", child.display()))?;
            // Not following links: a link is refused, not copied.
            let meta = fs::symlink_metadata(&child).map_err(|e| format!("cannot read '{}': {e}", child.display()))?;
            let kind = meta.file_type();
            let in_folder = |e: WriteError| format!("folder '{}': {e}", dir.display());
            if name.chars().any(|c| u32::from(c) > 0xffff) {
                wide_names.push(child.strip_prefix(dir).unwrap_or(&child).display().to_string());
            }
            if kind.is_symlink() {
                return Err(format!("'{}' is a symbolic link; an application disk holds only regular files and folders", child.display()));
            } else if kind.is_dir() {
                let sub = builder.add_dir(id, name).map_err(in_folder)?;
                stamp(&mut builder, sub, &meta);
                pending.push((sub, child));
                folders += 1;
            } else if kind.is_file() {
                let file = builder.add_file(id, name, meta.len(), child.clone()).map_err(in_folder)?;
                stamp(&mut builder, file, &meta);
            } else {
                return Err(format!(
                    "'{}' is a device, FIFO or socket; an application disk holds only regular files and folders",
                    child.display()
                ));
            }
        }
    }
    let disk = builder.build().map_err(|e| format!("folder '{}': {e}", dir.display()))?;
    if let Err(e) = write_image(&disk, dir, image) {
        let _ = fs::remove_file(image);
        return Err(e);
    }
    wide_names.sort();
    Ok(Summary { files: disk.files().len(), folders, blocks: disk.blocks(), wide_names })
}

fn write_image(disk: &AppDisk<PathBuf>, dir: &Path, image: &Path) -> Result<(), String> {
    let cannot_write = |e: &dyn std::fmt::Display| format!("cannot write image '{}': {e}", image.display());
    let cannot_create = |e: &dyn std::fmt::Display| format!("cannot create image '{}': {e}", image.display());
    // (As `make run` makes the folders of its disk images.)
    if let Some(parent) = image.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| cannot_create(&e))?;
    }
    let file = File::create(image).map_err(|e| cannot_create(&e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    disk.write_to(&mut out, |f| File::open(&f.source)).map_err(|e| match e {
        WriteError::Output(error) => cannot_write(&error),
        e => format!("folder '{}': {e}", dir.display()),
    })?;
    let file = out.into_inner().map_err(|e| cannot_write(e.error()))?;
    file.sync_all().map_err(|e| cannot_write(&e))
}

/// An image written inside the folder it is built from would end up in
/// the next image built from it, half written.
fn refuse_image_inside(dir: &Path, image: &Path) -> Result<(), String> {
    let dir = fs::canonicalize(dir).map_err(|e| format!("cannot read folder '{}': {e}", dir.display()))?;
    // The image's folder, or the nearest one above it that exists (the
    // image's folders are made).
    let parent = image.ancestors().skip(1).find(|p| p.as_os_str().is_empty() || p.exists()).unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    if let Ok(parent) = fs::canonicalize(parent) {
        if parent.starts_with(&dir) {
            return Err(format!("the image '{}' would be inside the folder '{}' it is built from", image.display(), dir.display()));
        }
    }
    Ok(())
}

/// Give `node` the modification time in `meta`, in UTC, if FAT can hold it
/// (1980 to 2107); else it shows the content disk's fixed date.
fn stamp<T>(builder: &mut Builder<T>, node: impl Into<NodeId>, meta: &fs::Metadata) {
    let secs = meta.modified().ok().and_then(|t| match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    });
    if let Some(stamp) = secs.and_then(Stamp::from_unix) {
        builder.set_modified(node, stamp);
    }
}
