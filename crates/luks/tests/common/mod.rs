//! What the integration tests share: the outside tools (cryptsetup,
//! qemu-img), a scratch directory per test, and LUKS1 images those tools
//! make. A missing tool fails the test with the package to install; it
//! never skips.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use luks::Header;

/// Size of the disk images: 2 MiB of header and key slots, the rest payload.
pub const IMAGE_BYTES: u64 = 4 << 20;

#[path = "../../../../tests/src/host_tool.rs"]
mod host_tool;
/// Where an outside tool is, or a failed test saying how to get it.
pub use host_tool::find_tool as tool;

pub fn cryptsetup() -> Command {
    Command::new(tool("cryptsetup", "cryptsetup-bin"))
}

pub fn qemu_img() -> Command {
    Command::new(tool("qemu-img", "qemu-utils"))
}

/// Runs `command` with `stdin` as its input; panics with its output if it fails.
pub fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A directory of its own for one test, removed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "luks-test-{test}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How to format an image: the parts of cryptsetup's command line that vary.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    pub cipher: &'static str,
    pub key_bits: u32,
    pub hash: &'static str,
}

impl Format {
    pub const fn aes_xts(key_bits: u32, hash: &'static str) -> Format {
        Format { cipher: "aes-xts-plain64", key_bits, hash }
    }
}

/// The variants the unlock tests run over: both key sizes, every hash.
pub const SUPPORTED: [Format; 5] = [
    Format::aes_xts(512, "sha256"),
    Format::aes_xts(512, "sha1"),
    Format::aes_xts(512, "sha512"),
    Format::aes_xts(256, "sha256"),
    Format::aes_xts(256, "sha1"),
];

pub const FIRST_PASSPHRASE: &[u8] = b"correct horse battery staple";
pub const SECOND_PASSPHRASE: &[u8] = b"Tr0ub4dor&3";
/// The slot `luksAddKey` puts the second passphrase in: not the next free
/// one, so that finding it proves the slots are searched.
pub const SECOND_SLOT: usize = 5;

/// `cryptsetup luksFormat --type luks1` on a fresh file of [`IMAGE_BYTES`],
/// the passphrase on stdin, 1000 PBKDF2 iterations (fast).
pub fn luks_format(path: &Path, format: Format, passphrase: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(IMAGE_BYTES).unwrap();
    drop(file);
    run(
        cryptsetup()
            .args(["luksFormat", "--type", "luks1", "--batch-mode", "--cipher", format.cipher])
            .args(["--key-size", &format.key_bits.to_string(), "--hash", format.hash])
            .args(["--pbkdf-force-iterations", "1000", "--key-file=-"])
            .arg(path),
        passphrase,
    );
}

/// `cryptsetup luksAddKey`: `new` into `slot`, authorised by `existing`.
pub fn luks_add_key(path: &Path, existing: &[u8], new: &[u8], slot: usize) {
    let new_key_file = path.with_extension("newkey");
    std::fs::write(&new_key_file, new).unwrap();
    run(
        cryptsetup()
            .args(["luksAddKey", "--batch-mode", "--pbkdf-force-iterations", "1000"])
            .args(["--key-slot", &slot.to_string(), "--key-file=-"])
            .arg(path)
            .arg(&new_key_file),
        existing,
    );
    std::fs::remove_file(new_key_file).unwrap();
}

/// An image with [`FIRST_PASSPHRASE`] in slot 0 and [`SECOND_PASSPHRASE`]
/// in [`SECOND_SLOT`].
pub fn two_passphrase_image(scratch: &Scratch, format: Format) -> PathBuf {
    let path = scratch.path(&format!("{}-{}-{}.img", format.cipher, format.key_bits, format.hash));
    luks_format(&path, format, FIRST_PASSPHRASE);
    luks_add_key(&path, FIRST_PASSPHRASE, SECOND_PASSPHRASE, SECOND_SLOT);
    path
}

/// `cryptsetup luksDump` as text.
pub fn luks_dump(path: &Path) -> String {
    String::from_utf8(run(cryptsetup().arg("luksDump").arg(path), b"").stdout).unwrap()
}

/// The master key as `cryptsetup luksDump --dump-volume-key` prints it
/// (`--dump-master-key` on a cryptsetup older than 2.4).
pub fn cryptsetup_master_key(path: &Path, passphrase: &[u8]) -> Vec<u8> {
    let dump = |flag: &str| {
        let mut command = cryptsetup();
        command.args(["luksDump", flag, "--batch-mode", "--key-file=-"]).arg(path);
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(passphrase).unwrap();
        child.wait_with_output().unwrap()
    };
    let mut output = dump("--dump-volume-key");
    if !output.status.success() {
        output = dump("--dump-master-key");
    }
    assert!(output.status.success(), "luksDump with the key: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let (_, after) = text.split_once("MK dump:").expect("luksDump prints `MK dump:`");
    after
        .split_whitespace()
        .map_while(|token| (token.len() == 2).then(|| u8::from_str_radix(token, 16).ok()).flatten())
        .collect()
}

/// The whole image.
pub fn read_image(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

pub fn header_of(path: &Path) -> Header {
    Header::parse(&read_image(path)).unwrap()
}

/// A reader over an image in memory, as the unlock closure wants it:
/// `sectors` 512-byte sectors from `first`.
pub fn read_sectors(disk: &[u8]) -> impl FnMut(u64, u32, &mut [u8]) -> Result<(), String> + '_ {
    move |first, sectors, buf| {
        let start = first as usize * luks::SECTOR_SIZE;
        let end = start + sectors as usize * luks::SECTOR_SIZE;
        assert_eq!(buf.len(), end - start, "the buffer is exactly the sectors asked for");
        buf.copy_from_slice(disk.get(start..end).ok_or_else(|| format!("sectors {first}+{sectors} are past the end"))?);
        Ok(())
    }
}

/// The scratch buffer [`luks::unlock`] documents for the usual key.
pub fn material_buffer() -> Vec<u8> {
    vec![0; luks::MATERIAL_BYTES_512_BIT_KEY]
}

/// A payload pattern in which every sector differs, so a tweak off by one
/// sector cannot go unnoticed.
pub fn pattern(bytes: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
