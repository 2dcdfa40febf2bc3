//! The whole content disk as a host file (`std`): what a client of the
//! filter would read, block by block, made the way the filter makes it.
//!
//! [`render`] reads the application-disk image's manifest as the filter
//! does (block 0, then the manifest's blocks), lays it out with
//! [`ContentDisk`], and asks for every block in turn, reading the
//! application-disk block whenever it is told to. All-zero blocks are
//! left as holes, so a volume of hundreds of MiB and a few files costs a few
//! megabytes of disk. For tests (against `fsck.fat` and `mtools`) and for
//! looking at a content disk with ordinary tools.

use crate::layout::{self, EntryLayout};
use crate::manifest::{self, Header, Manifest, BLOCK_SIZE};
use crate::synth::{ContentDisk, Source};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Why a content disk could not be rendered.
#[derive(Debug)]
pub enum RenderError {
    Io { what: String, error: io::Error },
    Manifest(manifest::Error),
    Layout(layout::Error),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Io { what, error } => write!(f, "{what}: {error}"),
            RenderError::Manifest(e) => write!(f, "{e}"),
            RenderError::Layout(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RenderError {}

/// What [`render`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The content disk's size in blocks.
    pub blocks: u64,
    /// Blocks read from the application disk.
    pub redirected: u64,
}

/// Write the content disk of the application-disk image `app` to `out`.
pub fn render(app: &Path, out: &Path) -> Result<Rendered, RenderError> {
    let io_err = |what: &str, path: &Path| {
        let what = format!("{what} '{}'", path.display());
        move |error| RenderError::Io { what, error }
    };
    let mut app_file = File::open(app).map_err(io_err("cannot open", app))?;
    let disk_blocks = app_file.metadata().map_err(io_err("cannot stat", app))?.len() / BLOCK_SIZE as u64;

    let mut block0 = [0u8; BLOCK_SIZE];
    app_file.read_exact(&mut block0).map_err(io_err("cannot read block 0 of", app))?;
    let header = Header::parse(&block0).map_err(RenderError::Manifest)?;
    let mut bytes = vec![0u8; header.manifest_blocks() as usize * BLOCK_SIZE];
    app_file.seek(SeekFrom::Start(0)).and_then(|_| app_file.read_exact(&mut bytes)).map_err(io_err("cannot read the manifest of", app))?;
    let manifest = Manifest::parse(&bytes, disk_blocks).map_err(RenderError::Manifest)?;
    let mut scratch = vec![EntryLayout::EMPTY; manifest.len() as usize];
    let disk = ContentDisk::new(manifest, &mut scratch).map_err(RenderError::Layout)?;

    let mut out_file = File::create(out).map_err(io_err("cannot create", out))?;
    let mut buf = [0u8; BLOCK_SIZE];
    let mut redirected = 0;
    let mut ahead = ReadAhead::new(app_file);
    for block in 0..disk.blocks() {
        if let Source::AppDisk(at) = disk.block(block, &mut buf) {
            let data = ahead.block(at, disk_blocks).map_err(|error| {
                let what = format!("cannot read block {at} of '{}'", app.display());
                RenderError::Io { what, error }
            })?;
            buf.copy_from_slice(data);
            redirected += 1;
        }
        if buf != [0u8; BLOCK_SIZE] {
            let written = out_file.seek(SeekFrom::Start(block * BLOCK_SIZE as u64)).and_then(|_| out_file.write_all(&buf));
            written.map_err(|error| RenderError::Io { what: format!("cannot write '{}'", out.display()), error })?;
        }
    }
    out_file.set_len(disk.blocks() * BLOCK_SIZE as u64).map_err(io_err("cannot size", out))?;
    Ok(Rendered { blocks: disk.blocks(), redirected })
}

/// Application-disk blocks read a megabyte at a time: file data is
/// asked for in order, and one read per block would make rendering a
/// multi-GiB volume slow.
struct ReadAhead {
    file: File,
    first: u64,
    data: Vec<u8>,
}

impl ReadAhead {
    const BLOCKS: u64 = 256;

    fn new(file: File) -> ReadAhead {
        ReadAhead { file, first: 0, data: Vec::new() }
    }

    /// Block `at` of a disk of `disk_blocks` blocks.
    fn block(&mut self, at: u64, disk_blocks: u64) -> io::Result<&[u8]> {
        let cached = self.data.len() as u64 / BLOCK_SIZE as u64;
        if at < self.first || at >= self.first + cached {
            let count = Self::BLOCKS.min(disk_blocks.saturating_sub(at)).max(1);
            self.data.resize((count as usize) * BLOCK_SIZE, 0);
            self.file.seek(SeekFrom::Start(at * BLOCK_SIZE as u64))?;
            self.file.read_exact(&mut self.data)?;
            self.first = at;
        }
        let off = ((at - self.first) as usize) * BLOCK_SIZE;
        Ok(&self.data[off..off + BLOCK_SIZE])
    }
}
