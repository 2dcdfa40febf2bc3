//! The filter on the host: an application disk built with `fatdisk`'s
//! writer, the setup dialogue served from it, then the whole volume read
//! through the filter's pre-ops (a synthesized block is filled through the
//! grant, a remapped one read from the application disk, a mixed read
//! served in pieces with side reads), and checked with `fsck.fat` and
//! `mtools`.

use super::*;
use blk::filter::{DataError, Hook};
use fatdisk::writer::Builder;
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn say(args: fmt::Arguments) {
    SAID.lock().unwrap().push(args.to_string());
}

#[path = "../../../tests/src/host_tool.rs"]
mod host_tool;

fn tool(name: &str, package: &str) -> Command {
    Command::new(host_tool::find_tool(name, package))
}

/// The files of the test's application disk: (path, bytes).
fn files() -> Vec<(&'static str, Vec<u8>)> {
    let bytes = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>();
    vec![
        ("readme.txt", b"hello from the content disk\n".to_vec()),
        ("apps/Long Application Name.bin", bytes(3 * 4096 + 17, 1)),
        ("apps/empty", Vec::new()),
        ("apps/tools/exact", bytes(4096, 2)),
        ("big.dat", bytes(600_000, 3)),
    ]
}

/// The application disk image of [`files`], as bytes.
fn app_disk() -> Vec<u8> {
    let mut b = Builder::new();
    let root = b.root();
    let apps = b.add_dir(root, "apps").unwrap();
    let tools = b.add_dir(apps, "tools").unwrap();
    for (path, data) in files() {
        let (dir, name) = match path.rsplit_once('/') {
            Some(("apps", n)) => (apps, n),
            Some(("apps/tools", n)) => (tools, n),
            _ => (root, path),
        };
        b.add_file(dir, name, data.len() as u64, data).unwrap();
    }
    let disk = b.build().unwrap();
    let mut out = Vec::new();
    disk.write_to(&mut out, |f| Ok(std::io::Cursor::new(f.source.clone()))).unwrap();
    out.resize(disk.blocks() as usize * BLOCK, 0);
    out
}

fn leak<T: Clone>(n: usize, v: T) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

fn bounce() -> Shared<'static> {
    Shared::from_words(Box::leak(vec![0u64; BOUNCE as usize / 8].into_boxed_slice()))
}

/// Run the setup dialogue against `app`; the last step.
fn set_up(f: &mut Content, app: &[u8], bounce: &Shared<'static>) -> SetupStep {
    let below = app.len() as u64 / BLOCK as u64;
    let mut last = None;
    for round in 0.. {
        match f.setup(&SetupCall { round, below, last, linked: 0 }, None) {
            SetupStep::Read { block, count, offset } => {
                let at = block as usize * BLOCK;
                bounce.write_bytes(offset as usize, &app[at..at + count as usize * BLOCK]).unwrap();
                last = Some(Completion { status: Status::Ok, count });
            }
            SetupStep::Again => last = None,
            step => return step,
        }
    }
    unreachable!()
}

struct Buffer(RefCell<Vec<u8>>);

impl RequestData for Buffer {
    fn read(&self, _: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
        out.copy_from_slice(&self.0.borrow()[offset as usize..offset as usize + out.len()]);
        Ok(())
    }
    fn write(&self, _: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
        self.0.borrow_mut()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
}

fn read(op: Op, block: u64, count: u32) -> Io {
    Io { hook: Hook::Pre, op, client: 0, position: 0, block, count, grant: 1, id: 0, state: 0, side: None }
}

fn content(app: &[u8]) -> (Content, u64, Shared<'static>) {
    let b = bounce();
    let mut f = Content::new(leak(1 << 20, 0u8), leak(64, EntryLayout::EMPTY), Some(b), say);
    let step = set_up(&mut f, app, &b);
    let SetupStep::Own { blocks } = step else { panic!("{step:?}: {:?}", SAID.lock().unwrap()) };
    (f, blocks, b)
}

/// How a read through the filter went.
#[derive(Debug, Default, PartialEq, Eq)]
struct Served {
    /// Answered from the filter, remapped whole, side reads made.
    completed: bool,
    remapped: bool,
    side_reads: u32,
}

/// Read `count` blocks at `block` of the volume through the filter as the
/// server would (request slot `id`): a remap is read from `app`, a side
/// read lands in the bounce buffer's pages and the pre-op is called again;
/// `fail_side`: the side reads fail with that status. The data, or the
/// status the read failed with.
fn read_through(f: &mut Content, app: &[u8], bounce: &Shared<'_>, id: u32, block: u64, count: u32, fail_side: Option<Status>) -> (Result<Vec<u8>, Status>, Served) {
    let buffer = Buffer(RefCell::new(vec![0xee; count as usize * BLOCK]));
    let mut io = read(Op::Read, block, count);
    io.id = id;
    let mut served = Served::default();
    loop {
        let mut state = io.state;
        match f.pre(&io, &buffer, &mut state) {
            Verdict::Complete { status: Status::Ok, count: n } if n == count => {
                served.completed = true;
                return (Ok(buffer.0.into_inner()), served);
            }
            Verdict::Remap { block: b } => {
                served.remapped = true;
                return (Ok(app[b as usize * BLOCK..][..count as usize * BLOCK].to_vec()), served);
            }
            Verdict::SideIo { op: Op::Read, block: b, count: n, page } => {
                assert!(served.side_reads < 10_000, "the side reads never end");
                served.side_reads += 1;
                let at = page as usize * BLOCK;
                assert!(at + n as usize * BLOCK <= BOUNCE as usize && n >= 1, "a side read outside the bounce buffer: {n} at page {page}");
                let status = match fail_side {
                    Some(s) => s,
                    None => {
                        bounce.write_bytes(at, &app[b as usize * BLOCK..][..n as usize * BLOCK]).unwrap();
                        Status::Ok
                    }
                };
                io.state = state;
                io.side = Some(Completion { status, count: if status == Status::Ok { n } else { 0 } });
            }
            Verdict::Fail(status) => return (Err(status), served),
            v => panic!("blocks {block}+{count}: {v:?}"),
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("filter-content-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_volume_read_through_the_filter_is_a_fat_file_system_of_the_application_disks_files() {
    let app = app_disk();
    let (mut f, blocks, bounce) = content(&app);
    assert!(blocks >= 4_101, "FAT16's minimum: {blocks}");
    assert!(SAID.lock().unwrap().iter().any(|s| s == &format!("a FAT16 volume of {blocks} blocks ({} MiB) of the application disk's 7 files and folders", blocks * 4096 >> 20)));
    // A block at a time: each is synthesized or remapped.
    let mut volume = vec![0u8; blocks as usize * BLOCK];
    let (mut synthesized, mut remapped) = (0, 0);
    for block in 0..blocks {
        let (data, served) = read_through(&mut f, &app, &bounce, 0, block, 1, None);
        volume[block as usize * BLOCK..][..BLOCK].copy_from_slice(&data.unwrap());
        assert_eq!(served.side_reads, 0, "block {block}");
        (synthesized, remapped) = (synthesized + u32::from(served.completed), remapped + u32::from(served.remapped));
    }
    // readme 1 block, the long-named app 4, exact 1, big.dat 147.
    assert_eq!(remapped, 1 + 4 + 1 + 147, "each file block is read from the application disk");
    assert_eq!(u64::from(synthesized + remapped), blocks);
    // In reads of 37 blocks, as a client that knows nothing of the layout
    // reads: the same volume, the mixed reads served in pieces.
    let mut side_reads = 0;
    for block in (0..blocks).step_by(37) {
        let count = 37.min(blocks - block) as u32;
        let (data, served) = read_through(&mut f, &app, &bounce, block as u32 % 128, block, count, None);
        assert_eq!(data.unwrap(), &volume[block as usize * BLOCK..][..count as usize * BLOCK], "blocks {block}+{count}");
        side_reads += served.side_reads;
    }
    assert!(side_reads > 0, "some reads mixed synthesized blocks and file data");
    let dir = scratch("volume");
    let image = dir.join("content.img");
    std::fs::write(&image, &volume).unwrap();
    let fsck = tool("fsck.fat", "dosfstools").arg("-n").arg(&image).output().unwrap();
    assert!(fsck.status.success(), "fsck.fat: {}{}", String::from_utf8_lossy(&fsck.stdout), String::from_utf8_lossy(&fsck.stderr));
    let out = dir.join("out");
    let copy = tool("mcopy", "mtools").args(["-s", "-n", "-i"]).arg(&image).arg("::").arg(&out).env("MTOOLS_SKIP_CHECK", "1").output().unwrap();
    assert!(copy.status.success(), "mcopy: {}", String::from_utf8_lossy(&copy.stderr));
    for (path, data) in files() {
        assert_eq!(std::fs::read(out.join(path)).unwrap(), data, "{path}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_of_file_data_are_remapped_whole_mixed_reads_come_in_pieces_and_writes_are_refused() {
    let app = app_disk();
    let (mut f, _, bounce) = content(&app);
    // The first block of file data is big.dat's first (files take their
    // clusters in table order: root, apps, big.dat, ...); the one before
    // it is the apps folder's.
    let block = |f: &mut Content, b, n| f.pre(&read(Op::Read, b, n), &Buffer(RefCell::new(vec![0; n as usize * BLOCK])), &mut 0);
    let first = (0..).find(|&b| matches!(block(&mut f, b, 1), Verdict::Remap { .. })).unwrap();
    let Verdict::Remap { block: app_block } = block(&mut f, first, 1) else { unreachable!() };
    assert_eq!(block(&mut f, first, 3), Verdict::Remap { block: app_block }, "three blocks of one file are one run");
    assert_eq!(&app[app_block as usize * BLOCK..][..5], &[3, 34, 65, 96, 127], "big.dat's first bytes");
    // A directory block then file data: the directory block filled, the
    // file's blocks read into this request's staging pages, 8 at a time.
    let one = |f: &mut Content, b| read_through(f, &app, &bounce, 0, b, 1, None).0.unwrap();
    let (data, served) = read_through(&mut f, &app, &bounce, 5, first - 1, 20, None);
    assert_eq!(served, Served { completed: true, remapped: false, side_reads: 3 }, "19 blocks of file data: 8 + 8 + 3");
    let expected: Vec<u8> = (first - 1..first + 19).flat_map(|b| one(&mut f, b)).collect();
    assert_eq!(data.unwrap(), expected);
    let (data, _) = read_through(&mut f, &app, &bounce, 5, first - 1, 2, Some(Status::IoError));
    assert_eq!(data, Err(Status::IoError), "a side read that fails fails the read");
    assert_eq!(f.pre(&read(Op::Write, 0, 1), &Buffer(RefCell::new(vec![0; BLOCK])), &mut 0), Verdict::Fail(Status::InvalidRequest));
    assert_eq!(f.pre(&read(Op::Read, 0, 4), &Buffer(RefCell::new(vec![0; 4 * BLOCK])), &mut 0), Verdict::Complete { status: Status::Ok, count: 4 }, "the reserved blocks at once");
}

#[test]
fn a_disk_that_is_no_application_disk_fails_its_setup_with_one_line() {
    let b = bounce();
    let mut f = Content::new(leak(1 << 20, 0u8), leak(64, EntryLayout::EMPTY), Some(b), say);
    assert_eq!(set_up(&mut f, &vec![0u8; 64 * BLOCK], &b), SetupStep::Fail(Status::IoError));
    let said = "not an application disk (no \"STRTAPPS\" magic); make an application disk with `make appdisk`";
    assert!(SAID.lock().unwrap().iter().any(|s| s.starts_with(said)), "{:?}", SAID.lock().unwrap());
    // Too many entries for the filter's memory.
    let mut f = Content::new(leak(1 << 20, 0u8), leak(3, EntryLayout::EMPTY), Some(b), say);
    assert_eq!(set_up(&mut f, &app_disk(), &b), SetupStep::Fail(Status::IoError));
    assert!(SAID.lock().unwrap().iter().any(|s| s.starts_with("the application disk has 8 files and folders; this filter holds at most 3")), "{:?}", SAID.lock().unwrap());
}

/// The setup of an application disk of `count` empty files named `len`
/// bytes long, in folders of 16,000 (of up to 16,383 such names: FAT's
/// 65,536 directory entries), with room for `entries` entries: the
/// last step, and the setup calls it took.
fn set_up_many(count: usize, len: usize, entries: usize) -> (SetupStep, u32, Vec<u8>) {
    let mut b = Builder::<Vec<u8>>::new();
    let mut dir = b.root();
    for i in 0..count {
        if i % 16_000 == 0 {
            dir = b.add_dir(b.root(), &format!("folder {i}")).unwrap();
        }
        b.add_file(dir, &format!("{i:06}{}", "n".repeat(len - 6)), 0, Vec::new()).unwrap();
    }
    let disk = b.build().unwrap();
    let mut app = disk.manifest().to_vec();
    app.resize(disk.blocks() as usize * BLOCK, 0);
    let bounce = bounce();
    let memory = leak(fatdisk::manifest::MAX_MANIFEST_BYTES, 0u8);
    let mut f = Content::new(memory, leak(entries, EntryLayout::EMPTY), Some(bounce), say);
    let below = app.len() as u64 / BLOCK as u64;
    let (mut last, mut calls) = (None, 0);
    loop {
        calls += 1;
        match f.setup(&SetupCall { round: calls, below, last, linked: 0 }, None) {
            SetupStep::Read { block, count, offset } => {
                let at = block as usize * BLOCK;
                bounce.write_bytes(offset as usize, &app[at..at + count as usize * BLOCK]).unwrap();
                last = Some(Completion { status: Status::Ok, count });
            }
            SetupStep::Again => last = None,
            step => return (step, calls, app),
        }
    }
}

#[test]
fn a_full_application_disk_is_checked_and_laid_out_a_slice_per_setup_call() {
    // As many entries as the filter holds (less the root and nine
    // folders), with names that fill most of the manifest's 8 MiB: in one
    // call this took about 100 million instructions, past the default
    // budget, and the filter was stopped.
    let most = fatdisk::manifest::MAX_ENTRIES as usize;
    let (step, calls, app) = set_up_many(most - 10, 28, most);
    let manifest = fatdisk::Manifest::parse(&app, app.len() as u64 / BLOCK as u64).unwrap();
    let mut scratch = vec![EntryLayout::EMPTY; most];
    let whole = ContentDisk::new(manifest, &mut scratch).unwrap();
    assert_eq!(step, SetupStep::Own { blocks: whole.blocks() });
    // Reads of 64 blocks, then slices of the check and of the layout's
    // four passes, each of at most SLICE work units, an entry at least
    // one unit in each.
    let reads = (app.len() / BLOCK).div_ceil(MAX_SETUP_BLOCKS as usize) as u32;
    let slices = most as u32 * 5 / SLICE;
    assert!(calls > reads + slices, "{calls} setup calls");
}

#[test]
fn more_entries_than_the_filter_holds_fail_before_the_manifest_is_read() {
    let (step, calls, _) = set_up_many(2_000, 10, 1_000);
    assert_eq!(step, SetupStep::Fail(Status::IoError));
    assert_eq!(calls, 2, "block 0 is read, and nothing after");
    let said = SAID.lock().unwrap();
    assert!(said.iter().any(|s| s.contains("2002 files and folders; this filter holds at most 1000")), "{said:?}");
}
