//! Writing an application disk (host side, `std`): a tree of directories
//! and files in, the manifest and the placement of every file's bytes out.
//!
//! [`Builder`] collects the tree and checks each name as it is added;
//! [`Builder::build`] sorts siblings, lays the table out breadth first,
//! places the files' data, and then runs the crate's own parser and layout
//! over the result, so an image the writer produces is one the content
//! disk serves (a directory too large for FAT, say, is refused here, with
//! its path). [`AppDisk::write_to`] writes the image: the manifest, then
//! each file's bytes, zero-padded to a whole block.
//!
//! Each file source is a caller's `T` (a path, a buffer), opened only when
//! the image is written; a file whose length differs from the one given
//! to the builder is an error, not a corrupt image.

use crate::dir::Stamp;
use crate::layout::{self, EntryLayout, Layout};
use crate::manifest::{self, blocks_for, BLOCK_SIZE, ENTRY_SIZE, HEADER_SIZE, MAGIC, MAX_ENTRIES, MAX_FILE_SIZE, MAX_MANIFEST_BYTES, VERSION};
use crate::names::{self, NameError};
use std::cmp::Ordering;
use std::fmt;
use std::io::{self, Read, Write};

/// Why an application disk cannot be written. Paths are `/`-separated,
/// relative to the tree's root.
#[derive(Debug)]
pub enum WriteError {
    BadName {
        path: String,
        error: NameError,
    },
    /// Two siblings whose names FAT cannot tell apart (equal ignoring case).
    SameName {
        first: String,
        second: String,
    },
    FileTooLarge {
        path: String,
        size: u64,
    },
    TooManyEntries(usize),
    /// The manifest would be larger than the content filter holds.
    ManifestTooLarge {
        entries: usize,
        bytes: usize,
    },
    DirectoryTooLarge {
        path: String,
        slots: u64,
    },
    TooManyClusters {
        needed: u64,
    },
    /// The writer made a manifest its own reader refuses: a bug here.
    Unreadable(manifest::Error),
    /// Reading a file failed.
    Io {
        path: String,
        error: io::Error,
    },
    /// Writing the image failed.
    Output(io::Error),
    /// A file's length changed between [`Builder::add_file`] and writing.
    SizeChanged {
        path: String,
        expected: u64,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BadName { path, error } => write!(f, "'{path}': {error}"),
            WriteError::SameName { first, second } => {
                write!(f, "'{first}' and '{second}' differ only in case, which FAT cannot tell apart")
            }
            WriteError::FileTooLarge { path, size } => {
                write!(f, "'{path}' is {size} bytes; a FAT file holds at most {MAX_FILE_SIZE}")
            }
            WriteError::TooManyEntries(n) => write!(f, "{n} files and folders; an application disk holds at most {}", MAX_ENTRIES - 1),
            WriteError::ManifestTooLarge { entries, bytes } => write!(
                f,
                "{entries} files and folders make a manifest of {bytes} bytes (32 bytes each and their names); an application disk holds at most {} MiB (fewer files, or shorter names)",
                MAX_MANIFEST_BYTES >> 20
            ),
            WriteError::DirectoryTooLarge { path, slots } => {
                write!(f, "folder '{path}' needs {slots} directory entries; FAT allows {} (fewer or shorter names)", layout::MAX_DIR_SLOTS)
            }
            WriteError::TooManyClusters { needed } => {
                write!(f, "the files need {needed} clusters of 4 KiB; FAT32 allows {}", layout::MAX_CLUSTERS)
            }
            WriteError::Unreadable(e) => write!(f, "internal error: the manifest written does not parse: {e}"),
            WriteError::Io { path, error } => write!(f, "cannot read '{path}': {error}"),
            WriteError::Output(error) => write!(f, "cannot write the image: {error}"),
            WriteError::SizeChanged { path, expected } => {
                write!(f, "'{path}' is no longer {expected} bytes long (changed while the image was written)")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// A directory of the tree being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirId(usize);

/// A directory or file of the tree being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeId(usize);

impl From<DirId> for NodeId {
    fn from(d: DirId) -> NodeId {
        NodeId(d.0)
    }
}

enum Node<T> {
    Dir,
    File { size: u64, source: T },
}

struct Named<T> {
    name: String,
    parent: usize,
    node: Node<T>,
    /// Its `modified` field (0: not known).
    modified: u32,
}

/// A tree of directories and files to write as an application disk.
pub struct Builder<T> {
    nodes: Vec<Named<T>>,
}

impl<T> Default for Builder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Builder<T> {
    /// A tree holding only its root.
    pub fn new() -> Builder<T> {
        Builder { nodes: vec![Named { name: String::new(), parent: 0, node: Node::Dir, modified: 0 }] }
    }

    /// The root directory.
    pub fn root(&self) -> DirId {
        DirId(0)
    }

    /// Add directory `name` in `parent`.
    pub fn add_dir(&mut self, parent: DirId, name: &str) -> Result<DirId, WriteError> {
        self.check_name(parent, name)?;
        self.nodes.push(Named { name: name.to_string(), parent: parent.0, node: Node::Dir, modified: 0 });
        Ok(DirId(self.nodes.len() - 1))
    }

    /// When `node` was last written (else the content disk shows
    /// [`Stamp::DEFAULT`]).
    pub fn set_modified(&mut self, node: impl Into<NodeId>, stamp: Stamp) {
        if let Some(n) = self.nodes.get_mut(node.into().0) {
            n.modified = manifest::stamp_field(stamp);
        }
    }

    /// Add file `name` of `size` bytes in `parent`; `source` is what
    /// [`AppDisk::write_to`] will open to read its bytes.
    pub fn add_file(&mut self, parent: DirId, name: &str, size: u64, source: T) -> Result<NodeId, WriteError> {
        self.check_name(parent, name)?;
        if size > MAX_FILE_SIZE {
            return Err(WriteError::FileTooLarge { path: self.child_path(parent.0, name), size });
        }
        self.nodes.push(Named { name: name.to_string(), parent: parent.0, node: Node::File { size, source }, modified: 0 });
        Ok(NodeId(self.nodes.len() - 1))
    }

    fn check_name(&self, parent: DirId, name: &str) -> Result<(), WriteError> {
        names::check_long_name(name).map_err(|error| WriteError::BadName { path: self.child_path(parent.0, name), error })
    }

    /// The path of node `i`, for messages.
    fn path(&self, i: usize) -> String {
        if i == 0 {
            return String::from("/");
        }
        self.child_path(self.nodes[i].parent, &self.nodes[i].name)
    }

    fn child_path(&self, parent: usize, name: &str) -> String {
        let mut parts = vec![name];
        let mut at = parent;
        while at != 0 {
            parts.push(&self.nodes[at].name);
            at = self.nodes[at].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Lay the tree out as an application disk (see the module docs).
    pub fn build(self) -> Result<AppDisk<T>, WriteError> {
        let count = self.nodes.len();
        if count > MAX_ENTRIES as usize {
            return Err(WriteError::TooManyEntries(count - 1));
        }
        // Children in the order the manifest keeps them.
        let mut children: Vec<Vec<usize>> = (0..count).map(|_| Vec::new()).collect();
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            children[n.parent].push(i);
        }
        for kids in &mut children {
            kids.sort_by(|&a, &b| names::fold_cmp(&self.nodes[a].name, &self.nodes[b].name));
            for pair in kids.windows(2) {
                if names::fold_cmp(&self.nodes[pair[0]].name, &self.nodes[pair[1]].name) == Ordering::Equal {
                    return Err(WriteError::SameName { first: self.path(pair[0]), second: self.path(pair[1]) });
                }
            }
        }
        // Breadth first: every directory's children are one run, after it.
        let mut order = vec![0usize];
        let mut index_of = vec![0u32; count];
        let mut next = 0;
        while next < order.len() {
            let at = order[next];
            index_of[at] = next as u32;
            order.extend(&children[at]);
            next += 1;
        }

        let names_size: usize = self.nodes.iter().map(|n| n.name.len()).sum();
        let manifest_len = HEADER_SIZE + ENTRY_SIZE * count + names_size;
        if manifest_len > MAX_MANIFEST_BYTES {
            return Err(WriteError::ManifestTooLarge { entries: count - 1, bytes: manifest_len });
        }
        let manifest_blocks = blocks_for(manifest_len as u64);
        let mut bytes = vec![0u8; manifest_blocks as usize * BLOCK_SIZE];
        let names_start = HEADER_SIZE + ENTRY_SIZE * count;
        let mut name_at = 0usize;
        let mut data_at = manifest_blocks;
        let mut placed = Vec::new();
        let path_of: Vec<String> = order.iter().map(|&i| self.path(i)).collect();
        let mut nodes: Vec<Option<Named<T>>> = self.nodes.into_iter().map(Some).collect();
        for (index, &old) in order.iter().enumerate() {
            let Some(n) = nodes[old].take() else { continue };
            let e = &mut bytes[HEADER_SIZE + ENTRY_SIZE * index..][..ENTRY_SIZE];
            e[0..4].copy_from_slice(&index_of[n.parent].to_le_bytes());
            e[6..8].copy_from_slice(&(n.name.len() as u16).to_le_bytes());
            e[8..12].copy_from_slice(&(name_at as u32).to_le_bytes());
            e[12..16].copy_from_slice(&n.modified.to_le_bytes());
            bytes[names_start + name_at..][..n.name.len()].copy_from_slice(n.name.as_bytes());
            name_at += n.name.len();
            let e = &mut bytes[HEADER_SIZE + ENTRY_SIZE * index..][..ENTRY_SIZE];
            match n.node {
                Node::Dir => e[4] = 1,
                Node::File { size, source } => {
                    e[4] = 2;
                    e[16..24].copy_from_slice(&size.to_le_bytes());
                    let start = if size == 0 { 0 } else { data_at };
                    e[24..32].copy_from_slice(&start.to_le_bytes());
                    data_at += blocks_for(size);
                    placed.push(PlacedFile { path: path_of[index].clone(), size, start, source });
                }
            }
        }
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&(count as u32).to_le_bytes());
        bytes[16..20].copy_from_slice(&(names_size as u32).to_le_bytes());
        bytes[20..24].copy_from_slice(&(manifest_blocks as u32).to_le_bytes());
        bytes[24..32].copy_from_slice(&data_at.to_le_bytes());
        let crc = manifest::crc32(&bytes[..manifest_len]);
        bytes[32..36].copy_from_slice(&crc.to_le_bytes());

        // What the content disk will do with it, done now.
        let parsed = manifest::Manifest::parse(&bytes, data_at).map_err(WriteError::Unreadable)?;
        let mut scratch = vec![EntryLayout::EMPTY; count];
        match Layout::new(parsed, &mut scratch) {
            Ok(_) => {}
            Err(layout::Error::DirectoryTooLarge { entry, slots }) => {
                return Err(WriteError::DirectoryTooLarge { path: path_of[entry as usize].clone(), slots })
            }
            Err(layout::Error::TooManyClusters { needed }) => return Err(WriteError::TooManyClusters { needed }),
            Err(layout::Error::ScratchTooSmall { .. }) => unreachable!("the scratch has one entry per manifest entry"),
        }
        Ok(AppDisk { manifest: bytes, files: placed, blocks: data_at })
    }
}

/// A file of an [`AppDisk`] and where its bytes go.
pub struct PlacedFile<T> {
    /// Its path in the tree, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Its first block on the application disk (0 if empty).
    pub start: u64,
    pub source: T,
}

/// An application disk laid out, ready to write.
pub struct AppDisk<T> {
    manifest: Vec<u8>,
    files: Vec<PlacedFile<T>>,
    blocks: u64,
}

impl<T> AppDisk<T> {
    /// The manifest, zero-padded to whole blocks: the image's first blocks.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The files, in the order their bytes follow the manifest.
    pub fn files(&self) -> &[PlacedFile<T>] {
        &self.files
    }

    /// The image's size in blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Write the image to `out`: the manifest, then each file's bytes
    /// (read from what `open` returns for it) padded to a whole block.
    pub fn write_to<W: Write, R: Read>(
        &self,
        out: &mut W,
        mut open: impl FnMut(&PlacedFile<T>) -> io::Result<R>,
    ) -> Result<(), WriteError> {
        out.write_all(&self.manifest).map_err(WriteError::Output)?;
        let mut buf = vec![0u8; 1 << 16];
        for f in self.files.iter().filter(|f| f.size > 0) {
            let read_err = |error| WriteError::Io { path: f.path.clone(), error };
            let mut source = open(f).map_err(read_err)?;
            let mut left = f.size;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let got = match source.read(&mut buf[..want]) {
                    Ok(0) => return Err(WriteError::SizeChanged { path: f.path.clone(), expected: f.size }),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_err(e)),
                };
                out.write_all(&buf[..got]).map_err(WriteError::Output)?;
                left -= got as u64;
            }
            // A file that grew since it was measured would be cut short.
            if source.read(&mut buf[..1]).map_err(read_err)? > 0 {
                return Err(WriteError::SizeChanged { path: f.path.clone(), expected: f.size });
            }
            // Zeros to the block boundary: the tail of the last cluster.
            let pad = (blocks_for(f.size) * BLOCK_SIZE as u64 - f.size) as usize;
            buf[..pad].fill(0);
            out.write_all(&buf[..pad]).map_err(WriteError::Output)?;
        }
        out.flush().map_err(WriteError::Output)
    }
}
