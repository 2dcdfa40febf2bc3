//! The filter on the host against disks cryptsetup formats and QEMU's
//! `luks` driver writes and reads: its setup dialogue served from the image
//! file, its pre- and post-ops on request data in memory.

use super::*;
use blk::filter::{DataError, Hook};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

const PASSPHRASE: &str = "correct horse battery staple";
const IMAGE_BYTES: u64 = 8 << 20;
/// The bounce buffer the PD gets (its manifest's `bounce`).
const BOUNCE: usize = 8 << 20;

static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn say(args: fmt::Arguments) {
    SAID.lock().unwrap().push(args.to_string());
}

/// Nanoseconds since the first look.
fn now() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

const CLOCK: Clock = Clock { now, hz: 1_000_000_000 };

fn tool(name: &str, package: &str) -> Command {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Command::new(p);
        }
    }
    panic!("`{name}` is not installed; install the Debian package `{package}`");
}

fn run(mut c: Command, stdin: &[u8]) -> Vec<u8> {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A LUKS1 image made by cryptsetup: `iterations` None = its own timing
/// (millions of iterations), as a user's disk would have.
fn luks_image(name: &str, iterations: Option<u32>) -> PathBuf {
    luks_image_with(name, iterations, PASSPHRASE)
}

/// The same, with `passphrase`.
fn luks_image_with(name: &str, iterations: Option<u32>, passphrase: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("filter-crypt-{}-{name}.img", std::process::id()));
    std::fs::File::create(&path).unwrap().set_len(IMAGE_BYTES).unwrap();
    let mut c = tool("cryptsetup", "cryptsetup-bin");
    c.args(["luksFormat", "--type", "luks1", "--batch-mode", "--cipher", "aes-xts-plain64", "--key-size", "512", "--hash", "sha256", "--key-file=-"]);
    if let Some(n) = iterations {
        c.args(["--pbkdf-force-iterations", &n.to_string()]);
    } else {
        c.args(["--iter-time", "200"]);
    }
    c.arg(&path);
    run(c, passphrase.as_bytes());
    path
}

fn secret() -> String {
    format!("secret,id=sec0,data={PASSPHRASE}")
}

/// Write `plain` into the image's payload through QEMU's luks driver.
fn qemu_write(image: &Path, plain: &[u8]) {
    let raw = image.with_extension("plain");
    std::fs::write(&raw, plain).unwrap();
    let mut c = tool("qemu-img", "qemu-utils");
    c.args(["convert", "-n", "--object", &secret(), "-f", "raw"]).arg(&raw);
    c.args(["--target-image-opts", &format!("driver=luks,key-secret=sec0,file.filename={}", image.display())]);
    run(c, b"");
    std::fs::remove_file(raw).unwrap();
}

/// The image's payload decrypted by QEMU's luks driver.
fn qemu_read(image: &Path) -> Vec<u8> {
    let out = image.with_extension("out");
    let mut c = tool("qemu-img", "qemu-utils");
    c.args(["convert", "--object", &secret(), "--image-opts", &format!("driver=luks,key-secret=sec0,file.filename={}", image.display())]);
    c.args(["-O", "raw"]).arg(&out);
    run(c, b"");
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    bytes
}

fn bounce() -> Shared<'static> {
    Shared::from_words(Box::leak(vec![0u64; BOUNCE / 8].into_boxed_slice()))
}

/// Run the setup dialogue, serving its reads from `disk`; the last step
/// and the number of calls.
fn set_up(f: &mut Crypt, disk: &[u8], bounce: &Shared<'static>) -> (SetupStep, u32) {
    let below = disk.len() as u64 / BLOCK as u64;
    let mut last = None;
    for round in 0.. {
        let step = f.setup(&SetupCall { round, below, last, linked: 0 }, None);
        match step {
            SetupStep::Read { block, count, offset } => {
                let at = block as usize * BLOCK;
                bounce.write_bytes(offset as usize, &disk[at..at + count as usize * BLOCK]).unwrap();
                last = Some(Completion { status: Status::Ok, count });
            }
            SetupStep::Again => last = None,
            other => return (other, round + 1),
        }
    }
    unreachable!()
}

/// A client's buffer as the grant reaches it.
struct Buffer(std::cell::RefCell<Vec<u8>>);

impl RequestData for Buffer {
    fn read(&self, _: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
        let b = self.0.borrow();
        out.copy_from_slice(b.get(offset as usize..offset as usize + out.len()).ok_or(DataError::OutOfRange)?);
        Ok(())
    }
    fn write(&self, _: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
        let mut b = self.0.borrow_mut();
        b.get_mut(offset as usize..offset as usize + data.len()).ok_or(DataError::OutOfRange)?.copy_from_slice(data);
        Ok(())
    }
}

fn io(hook: Hook, op: Op, block: u64, count: u32, state: u64) -> Io {
    Io { hook, op, client: 0, position: 0, block, count, grant: 1, id: 0, state, side: None }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn open(image: &Path) -> (Crypt, Shared<'static>, u64, u32) {
    let disk = std::fs::read(image).unwrap();
    let b = bounce();
    let mut f = Crypt::new(Some(PASSPHRASE), true, Some(b), say, CLOCK).unwrap();
    let (step, calls) = set_up(&mut f, &disk, &b);
    let SetupStep::Ready { first, blocks } = step else { panic!("{step:?}: {:?}", SAID.lock().unwrap()) };
    assert_eq!(first, 4096 / 8, "cryptsetup's payload starts at sector 4096");
    assert_eq!(blocks, disk.len() as u64 / 4096 - first, "the clients see the payload");
    assert!(f.is_open());
    (f, b, first, calls)
}

#[test]
fn it_reads_what_qemu_wrote_and_qemu_reads_what_it_wrote() {
    let image = luks_image("both-ways", Some(1000));
    let payload = IMAGE_BYTES as usize - 2 * 1024 * 1024;
    let plain = pattern(payload, 7);
    qemu_write(&image, &plain);
    let (mut f, bounce, first, _) = open(&image);
    let mut disk = std::fs::read(&image).unwrap();

    // Reads: the device fills the client's buffer with ciphertext, the
    // post-op decrypts it in place. Blocks 0, 5..8 and the last.
    for (block, count) in [(0u64, 1u32), (5, 3), (payload as u64 / 4096 - 1, 1)] {
        let at = ((first + block) * 4096) as usize;
        let buffer = Buffer(std::cell::RefCell::new(disk[at..at + count as usize * 4096].to_vec()));
        assert_eq!(f.pre(&io(Hook::Pre, Op::Read, block, count, 0), &buffer, &mut 0), Verdict::Continue);
        let done = Completion { status: Status::Ok, count };
        assert_eq!(f.post(&io(Hook::Post, Op::Read, block, count, 0), done, &buffer), Verdict::Continue);
        let want = &plain[block as usize * 4096..(block as usize + count as usize) * 4096];
        assert!(buffer.0.borrow()[..] == *want, "block {block}: what QEMU wrote");
    }

    // Writes: encrypted into the bounce buffer, the client's buffer left
    // alone; the device writes the bounce pages.
    let mut expected = plain.clone();
    for (block, count, seed) in [(1u64, 1u32, 11), (9, 4, 12), (payload as u64 / 4096 - 2, 2, 13)] {
        let data = pattern(count as usize * 4096, seed);
        let buffer = Buffer(std::cell::RefCell::new(data.clone()));
        let mut state = 0;
        let Verdict::Substitute { offset } = f.pre(&io(Hook::Pre, Op::Write, block, count, 0), &buffer, &mut state) else { panic!("a write goes down encrypted") };
        assert_eq!(*buffer.0.borrow(), data, "the client's buffer is never changed");
        let mut cipher = vec![0u8; data.len()];
        bounce.read_bytes(offset as usize, &mut cipher).unwrap();
        assert_ne!(cipher, data);
        let at = ((first + block) * 4096) as usize;
        disk[at..at + cipher.len()].copy_from_slice(&cipher);
        expected[block as usize * 4096..block as usize * 4096 + data.len()].copy_from_slice(&data);
        let done = Completion { status: Status::Ok, count };
        assert_eq!(f.post(&io(Hook::Post, Op::Write, block, count, state), done, &buffer), Verdict::Continue);
    }
    assert_eq!(f.pool.used(), 0, "every write gave its pages back");
    std::fs::write(&image, &disk).unwrap();
    assert!(qemu_read(&image) == expected, "QEMU's luks driver reads what the filter wrote");
    std::fs::remove_file(image).unwrap();
}

#[test]
fn a_disk_formatted_with_cryptsetups_own_timing_opens_in_slices() {
    let image = luks_image("timed", None);
    let (_, _, _, calls) = open(&image);
    assert!(calls > 10, "millions of iterations come in slices of 1/{SLICE_PER_SECOND} s: {calls} calls");
    std::fs::remove_file(image).unwrap();
}

#[test]
fn a_passphrase_as_long_as_a_param_holds_opens_the_disk() {
    // 511 bytes, with spaces and non-ASCII: cryptsetup takes 512 typed
    // characters; a param value holds 511 bytes.
    let long = format!("{}{}", "ü ".repeat(100), "p".repeat(211));
    assert_eq!(long.len(), blk::config::PARAM_VALUE - 1);
    let image = luks_image_with("long", Some(1000), &long);
    let disk = std::fs::read(&image).unwrap();
    let b = bounce();
    let mut f = Crypt::new(Some(&long), true, Some(b), say, CLOCK).unwrap();
    assert!(matches!(set_up(&mut f, &disk, &b).0, SetupStep::Ready { .. }));
    assert!(f.is_open());
    let too_long = "x".repeat(blk::config::PARAM_VALUE + 1);
    assert!(Crypt::new(Some(&too_long), true, Some(b), say, CLOCK).is_err());
    std::fs::remove_file(image).unwrap();
}

#[test]
fn a_wrong_passphrase_or_a_damaged_header_fails_the_setup_with_one_line() {
    let image = luks_image("wrong", Some(1000));
    let mut disk = std::fs::read(&image).unwrap();
    let b = bounce();
    let mut f = Crypt::new(Some("not the passphrase"), true, Some(b), say, CLOCK).unwrap();
    assert_eq!(set_up(&mut f, &disk, &b).0, SetupStep::Fail(Status::IoError));
    assert!(!f.is_open());
    assert!(SAID.lock().unwrap().iter().any(|s| s == "no LUKS key slot opens with this passphrase; every request of the disk fails, nothing is written"), "{:?}", SAID.lock().unwrap());
    assert_eq!(f.pre(&io(Hook::Pre, Op::Write, 0, 1, 0), &Buffer(std::cell::RefCell::new(vec![0; 4096])), &mut 0), Verdict::Fail(Status::IoError));

    disk[0] ^= 0xff;
    let mut f = Crypt::new(Some(PASSPHRASE), true, Some(b), say, CLOCK).unwrap();
    assert_eq!(set_up(&mut f, &disk, &b).0, SetupStep::Fail(Status::IoError));
    assert!(SAID.lock().unwrap().iter().any(|s| s.starts_with("not a LUKS1 disk this filter opens: ")), "{:?}", SAID.lock().unwrap());

    let plain = vec![0u8; IMAGE_BYTES as usize];
    let mut f = Crypt::new(Some(PASSPHRASE), true, Some(b), say, CLOCK).unwrap();
    assert_eq!(set_up(&mut f, &plain, &b).0, SetupStep::Fail(Status::IoError), "a disk that is not LUKS at all");
    std::fs::remove_file(image).unwrap();
}

#[test]
fn without_read_write_data_or_a_passphrase_it_says_what_is_missing() {
    assert_eq!(Crypt::new(None, true, Some(bounce()), say, CLOCK).err(), Some("no passphrase: declare <param key=\"passphrase\" value=\"...\"/>"));
    let b = bounce();
    let mut f = Crypt::new(Some(PASSPHRASE), false, Some(b), say, CLOCK).unwrap();
    assert_eq!(f.setup(&SetupCall { round: 0, below: 1000, last: None, linked: 0 }, None), SetupStep::Fail(Status::IoError));
    assert!(SAID.lock().unwrap().iter().any(|s| s.starts_with("it needs data=\"read-write\"")));
}

#[test]
fn the_pool_is_the_bounce_buffer_the_program_declares_less_the_page_a_waiting_write_reads_into() {
    let bin = include_str!("bin/filter_crypt.rs");
    let declared: usize = bin.split("\"bounce=").nth(1).and_then(|r| r.split('"').next()).and_then(|n| n.parse().ok()).expect("bounce=N in the manifest");
    assert_eq!(declared, BOUNCE);
    assert_eq!(declared / BLOCK, pool::MAX_PAGES, "every declared page can be in the pool");
    let f = Crypt::new(Some(PASSPHRASE), true, Some(bounce()), say, CLOCK).unwrap();
    assert_eq!(f.pool.pages(), pool::MAX_PAGES - 1);
}

#[test]
fn a_write_that_finds_every_page_taken_waits_for_one_instead_of_failing() {
    let image = luks_image("busy", Some(1000));
    let (mut f, b, first, _) = open(&image);
    let data = Buffer(std::cell::RefCell::new(pattern(16 * 4096, 5)));
    // 127 writes of 16 blocks in flight take 2,032 of the 2,047 pages.
    let mut states = Vec::new();
    for i in 0..127u64 {
        let mut state = 0;
        assert!(matches!(f.pre(&io(Hook::Pre, Op::Write, i * 16, 16, 0), &data, &mut state), Verdict::Substitute { .. }), "write {i}");
        states.push(state);
    }
    // The next waits: a one-block read of the disk's block 0 into the
    // page after the pool, then it looks again.
    let mut state = 7;
    let wait = Verdict::SideIo { op: Op::Read, block: 0, count: 1, page: 2047 };
    assert_eq!(f.pre(&io(Hook::Pre, Op::Write, 3000, 16, 0), &data, &mut state), wait);
    assert_eq!(state, 0, "it holds no pages");
    let again = Io { side: Some(Completion { status: Status::Ok, count: 1 }), ..io(Hook::Pre, Op::Write, 3000, 16, 0) };
    assert_eq!(f.pre(&again, &data, &mut state), wait, "still none free");
    // One write done: its pages go to the one waiting.
    let done = Completion { status: Status::Ok, count: 16 };
    assert_eq!(f.post(&io(Hook::Post, Op::Write, 0, 16, states[0]), done, &data), Verdict::Continue);
    assert!(matches!(f.pre(&again, &data, &mut state), Verdict::Substitute { .. }));
    // Its wait's read failed: the write fails.
    let failed = Io { side: Some(Completion { status: Status::IoError, count: 0 }), ..again };
    assert_eq!(f.pre(&failed, &data, &mut 0), Verdict::Fail(Status::IoError));
    // A write larger than the pool can never go: it fails, said once.
    let huge = Buffer(std::cell::RefCell::new(vec![0; 2048 * 4096]));
    for _ in 0..2 {
        assert_eq!(f.pre(&io(Hook::Pre, Op::Write, 0, 2048, 0), &huge, &mut 0), Verdict::Fail(Status::IoError));
    }
    // (Other tests say things at the same time: only this one's lines.)
    let told: Vec<String> = SAID.lock().unwrap().iter().filter(|l| l.contains("larger than the bounce buffer")).cloned().collect();
    assert_eq!(told, ["a write of 2048 blocks is larger than the bounce buffer's 2047 pages: such writes fail"]);
    // Set up again (as after a restart of the chain's setup), it offers
    // the same window: the payload.
    let disk = std::fs::read(&image).unwrap();
    assert_eq!(set_up(&mut f, &disk, &b).0, SetupStep::Ready { first, blocks: disk.len() as u64 / 4096 - first });
    std::fs::remove_file(image).unwrap();
}
