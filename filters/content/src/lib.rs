//! `filter_content`: the dynamic content disk. Its disk below is an
//! application disk (`strata appdisk` / `make appdisk` build one from a
//! folder); the clients above see an unpartitioned FAT volume (FAT16 or
//! FAT32, as small as the files allow) whose files are the application
//! disk's (`fatdisk`), and nothing is stored for that volume anywhere.
//!
//! ```xml
//! <disk name="apps" virtio_slot="31">
//!     <filter name="content0" program="filter_content" data="read-write" />
//! </disk>
//! ```
//!
//! Setup (the filter's setup dialogue, see `blk::filter`): read the
//! application disk's manifest from its start into the filter's own
//! memory (summing its checksum a piece at a time), check it and lay the
//! volume out a slice per call (`fatdisk::Check`, `fatdisk::Laying`: a
//! manifest of 131,072 entries takes tens of millions of instructions, more
//! than one call's budget), and offer a view of its own: the volume's
//! blocks. Then every read of the volume is either synthesized
//! (boot sector, FSInfo, FATs, directories, free space) and completed at
//! once through the read-write grant, or, for file data, remapped to the
//! application-disk blocks that hold it and read there. A read that mixes
//! the two, or file data in more than one run of the application disk, is
//! served in pieces: the filter fills the synthesized blocks through the
//! grant and reads each run of file data with a side I/O into the request's
//! own staging pages of its bounce buffer, then copies it into the client's
//! buffer, and completes the read when every block is in. A write fails
//! with `InvalidRequest` (the volume is read-only).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, SetupCall, SetupStep, Verdict, MAX_SETUP_BLOCKS};
use blk::{Op, Shared, Status};
use core::fmt;
use fatdisk::manifest::SLICE;
use fatdisk::{Check, ContentDisk, Crc32, EntryLayout, Header, Laying, Source};

const BLOCK: usize = 4096;

/// The bounce buffer: first the setup's pages (the manifest is read into
/// them a step at a time), then [`STAGE_PAGES`] staging pages per request
/// slot of the server (a request's id is its slot), where a read served in
/// pieces has its file data land.
const SETUP_PAGES: u64 = MAX_SETUP_BLOCKS as u64;
/// Blocks one side read of a read served in pieces brings in, at most.
const STAGE_PAGES: u32 = 8;
const SLOTS: u64 = 128;
/// Bytes of bounce buffer the filter needs (its manifest declares them).
pub const BOUNCE: u64 = (SETUP_PAGES + SLOTS * STAGE_PAGES as u64) * BLOCK as u64;

/// The state word of a read served in pieces: this bit, the blocks
/// already in the client's buffer (bits 0..32) and the blocks of the side
/// read in flight (bits 32..48).
const PIECES: u64 = 1 << 63;

/// How the filter tells the console.
pub type Say = fn(fmt::Arguments);

/// Where the setup stands.
enum Stage {
    Start,
    /// Block 0 (the manifest's header) is being read.
    Header,
    /// Blocks `0..read` of the manifest are in; it has `blocks`.
    Reading { read: u32, blocks: u32, len: usize },
    /// The manifest is in; its entries are checked a slice per call.
    Checking(Check<'static>),
    /// The volume is laid out a slice per call.
    Laying(Laying<'static>),
    Ready,
    Failed,
}

pub struct Content {
    /// The filter's own memory for the manifest and its layout, until the
    /// volume is laid out (then the volume borrows them for good).
    manifest: Option<&'static mut [u8]>,
    layouts: Option<&'static mut [EntryLayout]>,
    disk: Option<ContentDisk<'static>>,
    bounce: Option<Shared<'static>>,
    say: Say,
    stage: Stage,
    /// The manifest's checksum, summed as its pieces come in.
    crc: Crc32,
    block: [u8; BLOCK],
}

impl Content {
    /// The filter with room for a manifest of `manifest.len()` bytes and
    /// `layouts.len()` entries, its bounce buffer (where setup reads land)
    /// and where its messages go.
    pub fn new(manifest: &'static mut [u8], layouts: &'static mut [EntryLayout], bounce: Option<Shared<'static>>, say: Say) -> Content {
        Content { manifest: Some(manifest), layouts: Some(layouts), disk: None, bounce, say, stage: Stage::Start, crc: Crc32::new(), block: [0; BLOCK] }
    }

    /// Blocks of the volume, once set up.
    pub fn blocks(&self) -> Option<u64> {
        self.disk.as_ref().map(ContentDisk::blocks)
    }

    fn fail(&mut self, why: fmt::Arguments) -> SetupStep {
        (self.say)(format_args!("{why}; every request of the disk fails"));
        self.stage = Stage::Failed;
        SetupStep::Fail(Status::IoError)
    }

    /// The next piece of the manifest: `read` of `blocks` are in.
    fn next_piece(read: u32, blocks: u32) -> SetupStep {
        SetupStep::Read { block: u64::from(read), count: (blocks - read).min(MAX_SETUP_BLOCKS), offset: 0 }
    }

    /// The manifest of `len` bytes is in our memory: start checking it,
    /// for an application disk of `below` blocks.
    fn check(&mut self, len: usize, below: u64) -> SetupStep {
        let Some(bytes) = self.manifest.take() else { return self.fail(format_args!("set up twice")) };
        let bytes: &'static [u8] = bytes;
        match Check::start(&bytes[..len], below, &self.crc) {
            Ok(check) => self.stage = Stage::Checking(check),
            Err(e) => return self.fail(format_args!("the application disk's manifest is damaged: {e}")),
        }
        SetupStep::Again
    }

    /// The next slice of the manifest's check, then of its layout; the
    /// volume, once laid out.
    fn next_slice(&mut self) -> SetupStep {
        match &mut self.stage {
            Stage::Checking(check) => match check.step(SLICE) {
                Ok(None) => SetupStep::Again,
                Ok(Some(manifest)) => {
                    let Some(layouts) = self.layouts.take() else { return self.fail(format_args!("set up twice")) };
                    match Laying::start(manifest, layouts) {
                        Ok(laying) => self.stage = Stage::Laying(laying),
                        Err(e) => return self.fail(format_args!("the application disk's files do not fit a FAT volume: {e}")),
                    }
                    SetupStep::Again
                }
                Err(e) => self.fail(format_args!("the application disk's manifest is damaged: {e}")),
            },
            Stage::Laying(laying) => match laying.step(SLICE) {
                Ok(None) => SetupStep::Again,
                Ok(Some(layout)) => {
                    let disk = ContentDisk::laid_out(layout);
                    let (blocks, entries) = (disk.blocks(), disk.layout().manifest().len());
                    let fat = disk.layout().fat_type().name();
                    (self.say)(format_args!("a {fat} volume of {blocks} blocks ({} MiB) of the application disk's {} files and folders", blocks * BLOCK as u64 >> 20, entries - 1));
                    self.disk = Some(disk);
                    self.stage = Stage::Ready;
                    SetupStep::Own { blocks }
                }
                Err(e) => self.fail(format_args!("the application disk's files do not fit a FAT volume: {e}")),
            },
            _ => self.fail(format_args!("set up out of order")),
        }
    }
}

impl Content {
    /// A read served in pieces (see the crate's docs), called first with
    /// the blocks already filled in `state`, then again after each side
    /// read: copy what the side read brought in, fill synthesized blocks,
    /// and ask for the next run of file data (at most [`STAGE_PAGES`]
    /// blocks), or complete the read.
    fn pieces(&mut self, io: &Io, data: &dyn RequestData, state: &mut u64) -> Verdict {
        let (Some(disk), Some(bounce)) = (&self.disk, self.bounce) else { return Verdict::Fail(Status::IoError) };
        let stage = (SETUP_PAGES + u64::from(io.id) % SLOTS * u64::from(STAGE_PAGES)) as usize * BLOCK;
        let mut next = *state as u32;
        if let Some(side) = io.side {
            let pending = (*state >> 32) as u16 as u32;
            if side.status != Status::Ok || side.count < pending {
                return Verdict::Fail(if side.status == Status::Ok { Status::IoError } else { side.status });
            }
            for k in 0..pending {
                let at = next + k;
                if bounce.read_bytes(stage + k as usize * BLOCK, &mut self.block).is_err() || data.write(io, u64::from(at) * BLOCK as u64, &self.block).is_err() {
                    return Verdict::Fail(Status::IoError);
                }
            }
            next += pending;
        }
        while next < io.count {
            let at = io.block + u64::from(next);
            match disk.block(at, &mut self.block) {
                Source::Synthesized => {
                    if data.write(io, u64::from(next) * BLOCK as u64, &self.block).is_err() {
                        return Verdict::Fail(Status::IoError);
                    }
                    next += 1;
                }
                Source::AppDisk(first) => {
                    // The run of file data from here, as far as it is one
                    // run of the application disk and fits the staging.
                    let mut count = 1;
                    while count < STAGE_PAGES
                        && next + count < io.count
                        && matches!(disk.block(at + u64::from(count), &mut self.block), Source::AppDisk(b) if b == first + u64::from(count))
                    {
                        count += 1;
                    }
                    *state = PIECES | u64::from(count) << 32 | u64::from(next);
                    let page = (stage / BLOCK) as u16;
                    return Verdict::SideIo { op: Op::Read, block: first, count, page };
                }
            }
        }
        *state = 0;
        Verdict::Complete { status: Status::Ok, count: io.count }
    }
}

impl Filter for Content {
    fn setup(&mut self, call: &SetupCall, _: Option<&Shared<'_>>) -> SetupStep {
        let Some(bounce) = self.bounce else { return self.fail(format_args!("no bounce buffer")) };
        if call.last.is_some_and(|c| c.status != Status::Ok) {
            return self.fail(format_args!("the application disk could not be read"));
        }
        match self.stage {
            Stage::Checking(_) | Stage::Laying(_) => self.next_slice(),
            Stage::Start => {
                if (bounce.len() as u64) < BOUNCE {
                    return self.fail(format_args!("its bounce buffer is smaller than {BOUNCE} bytes"));
                }
                self.stage = Stage::Header;
                SetupStep::Read { block: 0, count: 1, offset: 0 }
            }
            Stage::Header => {
                if bounce.read_bytes(0, &mut self.block).is_err() {
                    return self.fail(format_args!("its bounce buffer is too small"));
                }
                let header = match Header::parse(&self.block) {
                    Ok(h) => h,
                    // (`e` says what is wrong: no magic, a version, ...)
                    Err(e) => return self.fail(format_args!("{e}; make an application disk with `make appdisk`")),
                };
                let (len, blocks) = (header.manifest_len(), header.manifest_blocks());
                let room = self.manifest.as_ref().map_or(0, |m| m.len());
                if len > room || blocks as usize * BLOCK > room {
                    return self.fail(format_args!("the application disk's manifest is {len} bytes; this filter holds at most {room}"));
                }
                let (entries, most) = (header.entries(), self.layouts.as_ref().map_or(0, |l| l.len()));
                if entries as usize > most {
                    return self.fail(format_args!("the application disk has {entries} files and folders; this filter holds at most {most}"));
                }
                self.stage = Stage::Reading { read: 0, blocks, len };
                Self::next_piece(0, blocks)
            }
            Stage::Reading { read, blocks, len } => {
                let count = (blocks - read).min(MAX_SETUP_BLOCKS);
                let at = read as usize * BLOCK;
                let Some(manifest) = self.manifest.as_deref_mut() else { return self.fail(format_args!("set up twice")) };
                let piece = &mut manifest[at..at + count as usize * BLOCK];
                if bounce.read_bytes(0, piece).is_err() {
                    return self.fail(format_args!("its bounce buffer is too small"));
                }
                // (The last block's padding after the manifest is not summed.)
                self.crc.add(&piece[..piece.len().min(len.saturating_sub(at))]);
                let read = read + count;
                if read < blocks {
                    self.stage = Stage::Reading { read, blocks, len };
                    return Self::next_piece(read, blocks);
                }
                self.check(len, call.below)
            }
            Stage::Ready => SetupStep::Own { blocks: self.blocks().unwrap_or(0) },
            Stage::Failed => SetupStep::Fail(Status::IoError),
        }
    }

    fn pre(&mut self, io: &Io, data: &dyn RequestData, state: &mut u64) -> Verdict {
        if self.disk.is_none() {
            return Verdict::Fail(Status::IoError);
        }
        match io.op {
            Op::Write => return Verdict::Fail(Status::InvalidRequest),
            Op::Read => {}
            _ => return Verdict::Continue,
        }
        if *state & PIECES != 0 {
            return self.pieces(io, data, state);
        }
        // All synthesized: filled here. All file data in one run of the
        // application disk: read there. Anything else: in pieces, from
        // the first block not filled yet.
        let Some(disk) = &self.disk else { return Verdict::Fail(Status::IoError) };
        let (mut synthesized, mut run) = (0u32, None::<u64>);
        for i in 0..io.count {
            match disk.block(io.block + u64::from(i), &mut self.block) {
                Source::Synthesized if run.is_none() => {
                    if data.write(io, u64::from(i) * BLOCK as u64, &self.block).is_err() {
                        return Verdict::Fail(Status::IoError);
                    }
                    synthesized += 1;
                }
                Source::AppDisk(b) if synthesized == 0 && run.is_none_or(|first| first + u64::from(i) == b) => {
                    run = run.or(Some(b));
                }
                _ => {
                    *state = PIECES | u64::from(synthesized);
                    return self.pieces(io, data, state);
                }
            }
        }
        match run {
            Some(block) => Verdict::Remap { block },
            None => Verdict::Complete { status: Status::Ok, count: io.count },
        }
    }

    fn post(&mut self, _: &Io, _: Completion, _: &dyn RequestData) -> Verdict {
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests;
