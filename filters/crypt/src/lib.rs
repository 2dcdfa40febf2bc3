//! `filter_crypt`: LUKS1 disk encryption, aes-xts-plain64, so a disk that
//! `cryptsetup luksFormat --type luks1` made (or QEMU's `luks` driver)
//! opens here, and a disk written here opens there.
//!
//! ```xml
//! <filter name="crypt0" program="filter_crypt" data="read-write">
//!     <param key="passphrase" value="..." />
//! </filter>
//! ```
//!
//! Setup (the filter's setup dialogue, see `blk::filter`): read the LUKS1
//! header from block 0; for each active key slot in turn derive its key
//! from the passphrase (PBKDF2, in slices of [`SLICE_PER_SECOND`]ths of a
//! second, so each setup call stays well within the filter's budget
//! however fast the machine runs), read its key material
//! into the bounce buffer, decrypt and merge it, and check the result
//! against the header's digest. The first slot that opens gives the
//! master key; the filter then offers the payload: the clients' block 0 is
//! the payload's first block, their capacity the payload's. A wrong
//! passphrase, an unsupported cipher or a damaged header: one console
//! line, and the setup fails, so every request of the disk fails and
//! nothing is written.
//!
//! Data: a write is encrypted into pages of the filter's own bounce
//! buffer and goes down from there (substitute): the client's buffer is
//! never changed. A read is decrypted in place through the read-write
//! grant after the device filled it. Sector numbers (the XTS tweak) count
//! from the payload's start, as dm-crypt and QEMU count them. The key
//! never leaves the filter.
#![cfg_attr(not(test), no_std)]
// (One exception, in `pre`: the pages of the bounce buffer a write is
// encrypted into are worked on in place, see `encrypt_into`.)
#![deny(unsafe_code)]

pub mod pool;

use blk::filter::{Completion, Filter, Io, RequestData, SetupCall, SetupStep, Verdict, MAX_SETUP_BLOCKS};
use blk::{Op, Shared, Status, BLOCK_SIZE};
use core::fmt;
use luks::{Cipher, Header, SlotOpener, SECTOR_SIZE};
use pool::Pool;

/// A setup call derives keys for at most 1/200 s (5 ms), a twentieth of a
/// filter's default budget of 100 ms: a slot cryptsetup formatted with its
/// defaults takes millions of PBKDF2 iterations (about 700 instructions
/// each with the SHA-256 instructions), seconds under QEMU.
pub const SLICE_PER_SECOND: u64 = 200;
/// PBKDF2 iterations between looks at the clock.
const ITERATIONS_PER_LOOK: u32 = 256;

/// The system counter, for pacing the setup's work.
#[derive(Clone, Copy)]
pub struct Clock {
    pub now: fn() -> u64,
    /// Ticks per second.
    pub hz: u64,
}

impl Clock {
    /// When a slice started now ends.
    fn slice_end(&self) -> u64 {
        (self.now)().saturating_add((self.hz / SLICE_PER_SECOND).max(1))
    }

    fn past(&self, end: u64) -> bool {
        (self.now)() >= end
    }
}

const BLOCK: usize = BLOCK_SIZE as usize;
const SECTORS_PER_BLOCK: u64 = (BLOCK / SECTOR_SIZE) as u64;
/// Where a slot's key material is read to in the bounce buffer during
/// setup: after the header's block.
const MATERIAL_AT: u64 = BLOCK as u64;

/// How the filter tells the console.
pub type Say = fn(fmt::Arguments);

/// Where opening the disk stands.
enum Opening {
    /// Nothing yet: read the header.
    Start,
    /// The header's block is being read.
    Header,
    /// Deriving the slot key of `opener`.
    Deriving { header: Header, opener: SlotOpener },
    /// Reading its material: `read` of its blocks are in.
    Reading { header: Header, opener: SlotOpener, read: u32 },
    /// Checking the merged key.
    Checking { header: Header, opener: SlotOpener },
    Open,
    Failed,
}

pub struct Crypt {
    passphrase: heapless::Vec<u8, { blk::config::PARAM_VALUE }>,
    /// Whether it holds read-write grants on request data (it must).
    read_write: bool,
    bounce: Option<Shared<'static>>,
    say: Say,
    clock: Clock,
    opening: Opening,
    cipher: Option<Cipher>,
    /// The payload's first block on the disk below, once open.
    first: u64,
    /// The bounce buffer's pages but its last, which a write that finds
    /// none free reads into while it waits.
    pool: Pool,
    /// A write larger than the pool was refused (said once).
    told_too_large: bool,
    block: [u8; BLOCK],
}

impl Crypt {
    /// The filter with its `passphrase` param, whether it has read-write
    /// data rights, its bounce buffer, where its messages go and its clock.
    pub fn new(passphrase: Option<&str>, read_write: bool, bounce: Option<Shared<'static>>, say: Say, clock: Clock) -> Result<Crypt, &'static str> {
        let passphrase = passphrase.ok_or("no passphrase: declare <param key=\"passphrase\" value=\"...\"/>")?;
        let passphrase = heapless::Vec::from_slice(passphrase.as_bytes()).map_err(|_| "the passphrase is longer than 512 bytes")?;
        let pages = bounce.as_ref().map_or(0, |b| b.len() / BLOCK);
        let pool = Pool::new(pages.saturating_sub(1));
        Ok(Crypt { passphrase, read_write, bounce, say, clock, opening: Opening::Start, cipher: None, first: 0, pool, told_too_large: false, block: [0; BLOCK] })
    }

    /// Whether the disk is open (the master key is known).
    pub fn is_open(&self) -> bool {
        self.cipher.is_some()
    }

    fn fail(&mut self, why: fmt::Arguments) -> SetupStep {
        (self.say)(format_args!("{why}; every request of the disk fails, nothing is written"));
        self.opening = Opening::Failed;
        SetupStep::Fail(Status::IoError)
    }

    /// The next slot to try after `after` (`None`: the first), or a
    /// failure if none is left.
    fn next_slot(&mut self, header: Header, after: Option<usize>) -> SetupStep {
        let next = header.active_slots().find(|&s| after.is_none_or(|a| s > a));
        let Some(slot) = next else {
            return self.fail(format_args!("{}", if after.is_some() { "no LUKS key slot opens with this passphrase" } else { "the LUKS header has no active key slot" }));
        };
        match SlotOpener::new(&header, slot, &self.passphrase) {
            Ok(opener) => {
                self.opening = Opening::Deriving { header, opener };
                SetupStep::Again
            }
            Err(e) => self.fail(format_args!("key slot {slot}: {e}")),
        }
    }

    /// The blocks that hold `opener`'s material: first block, count.
    fn material_blocks(opener: &SlotOpener) -> (u64, u32) {
        let m = opener.material();
        let first = m.first_sector / SECTORS_PER_BLOCK;
        let end = (m.first_sector + u64::from(m.sectors)).div_ceil(SECTORS_PER_BLOCK);
        (first, (end - first) as u32)
    }

    /// The next piece of `opener`'s material to read, `read` blocks in.
    fn read_material(opener: &SlotOpener, read: u32) -> SetupStep {
        let (first, blocks) = Self::material_blocks(opener);
        let count = (blocks - read).min(MAX_SETUP_BLOCKS);
        SetupStep::Read { block: first + u64::from(read), count, offset: MATERIAL_AT + u64::from(read) * BLOCK as u64 }
    }

    /// Decrypt and merge `opener`'s material, all read into the bounce
    /// buffer.
    fn feed_material(bounce: &Shared<'_>, opener: &mut SlotOpener) -> Result<(), ()> {
        let m = opener.material();
        let skip = m.first_sector % SECTORS_PER_BLOCK;
        let mut sector = [0u8; SECTOR_SIZE];
        for i in 0..m.sectors {
            let at = MATERIAL_AT + (skip + u64::from(i)) * SECTOR_SIZE as u64;
            bounce.read_bytes(at as usize, &mut sector).map_err(|_| ())?;
            opener.feed(i, &mut sector);
        }
        // Nothing of the slot's material stays behind.
        let (_, blocks) = Self::material_blocks(opener);
        let zeros = [0u8; BLOCK];
        for b in 0..u64::from(blocks) {
            let _ = bounce.write_bytes((MATERIAL_AT + b * BLOCK as u64) as usize, &zeros);
        }
        Ok(())
    }
}

impl Filter for Crypt {
    fn setup(&mut self, call: &SetupCall, _: Option<&Shared<'_>>) -> SetupStep {
        let Some(bounce) = self.bounce else { return self.fail(format_args!("no bounce buffer")) };
        let last_ok = call.last.is_none_or(|c| c.status == Status::Ok);
        match core::mem::replace(&mut self.opening, Opening::Failed) {
            Opening::Start => {
                if !self.read_write {
                    return self.fail(format_args!("it needs data=\"read-write\" to decrypt reads in place"));
                }
                // The header, then a slot's material, must fit the buffer.
                if (bounce.len() as u64) < MATERIAL_AT + u64::from(MAX_SETUP_BLOCKS) * BLOCK as u64 {
                    return self.fail(format_args!("its bounce buffer is too small"));
                }
                self.opening = Opening::Header;
                SetupStep::Read { block: 0, count: 1, offset: 0 }
            }
            Opening::Header => {
                if !last_ok {
                    return self.fail(format_args!("the LUKS header could not be read"));
                }
                let mut first = [0u8; BLOCK];
                if bounce.read_bytes(0, &mut first).is_err() {
                    return self.fail(format_args!("the LUKS header could not be read"));
                }
                match Header::parse(&first) {
                    Ok(header) if header.payload_offset() % SECTORS_PER_BLOCK != 0 => {
                        self.fail(format_args!("the LUKS payload starts at sector {}, not on a 4 KiB block", header.payload_offset()))
                    }
                    Ok(header) if header.payload_offset() / SECTORS_PER_BLOCK >= call.below => {
                        self.fail(format_args!("the disk ({} blocks) has no LUKS payload: it ends where the payload would start, or before", call.below))
                    }
                    Ok(header) => self.next_slot(header, None),
                    Err(e) => self.fail(format_args!("not a LUKS1 disk this filter opens: {e}")),
                }
            }
            Opening::Deriving { header, mut opener } => {
                let end = self.clock.slice_end();
                let mut ready = opener.derive(ITERATIONS_PER_LOOK);
                while !ready && !self.clock.past(end) {
                    ready = opener.derive(ITERATIONS_PER_LOOK);
                }
                if ready {
                    let step = Self::read_material(&opener, 0);
                    self.opening = Opening::Reading { header, opener, read: 0 };
                    step
                } else {
                    self.opening = Opening::Deriving { header, opener };
                    SetupStep::Again
                }
            }
            Opening::Reading { header, mut opener, read } => {
                if !last_ok {
                    let slot = opener.slot();
                    return self.fail(format_args!("the key material of slot {slot} could not be read"));
                }
                let (_, blocks) = Self::material_blocks(&opener);
                let read = (read + MAX_SETUP_BLOCKS).min(blocks);
                if read < blocks {
                    let step = Self::read_material(&opener, read);
                    self.opening = Opening::Reading { header, opener, read };
                    return step;
                }
                if Self::feed_material(&bounce, &mut opener).is_err() {
                    return self.fail(format_args!("the key material does not fit the bounce buffer"));
                }
                self.opening = Opening::Checking { header, opener };
                SetupStep::Again
            }
            Opening::Checking { header, mut opener } => match {
                let end = self.clock.slice_end();
                let mut result = opener.check(ITERATIONS_PER_LOOK);
                while result.is_none() && !self.clock.past(end) {
                    result = opener.check(ITERATIONS_PER_LOOK);
                }
                result
            } {
                None => {
                    self.opening = Opening::Checking { header, opener };
                    SetupStep::Again
                }
                Some(Ok(key)) => {
                    let first = header.payload_offset() / SECTORS_PER_BLOCK;
                    self.first = first;
                    (self.say)(format_args!(
                        "opened key slot {} (aes-xts-plain64, {}-bit key, {}); the payload is {} blocks from block {}",
                        opener.slot(),
                        opener.key_bytes() * 8,
                        header.hash().name(),
                        call.below - first,
                        first
                    ));
                    self.cipher = Some(Cipher::new(&key));
                    self.opening = Opening::Open;
                    SetupStep::Ready { first, blocks: call.below - first }
                }
                Some(Err(_)) => {
                    let slot = opener.slot();
                    self.next_slot(header, Some(slot))
                }
            },
            Opening::Open => {
                self.opening = Opening::Open;
                SetupStep::Ready { first: self.first, blocks: call.below.saturating_sub(self.first) }
            }
            Opening::Failed => SetupStep::Fail(Status::IoError),
        }
    }

    fn pre(&mut self, io: &Io, data: &dyn RequestData, state: &mut u64) -> Verdict {
        let (Some(cipher), Some(bounce)) = (&self.cipher, &self.bounce) else { return Verdict::Fail(Status::IoError) };
        if io.op != Op::Write {
            return Verdict::Continue;
        }
        let count = io.count as usize;
        if count > self.pool.pages() {
            if !core::mem::replace(&mut self.told_too_large, true) {
                (self.say)(format_args!("a write of {count} blocks is larger than the bounce buffer's {} pages: such writes fail", self.pool.pages()));
            }
            return Verdict::Fail(Status::IoError);
        }
        if io.side.is_some_and(|c| c.status != Status::Ok) {
            // Waiting for pages, the disk failed a read.
            return Verdict::Fail(Status::IoError);
        }
        let Some(first) = self.pool.take(count) else {
            // Every page is in writes in flight: wait for some to finish
            // (a one-block read of the disk's first block into the page
            // kept for it), then look again.
            *state = 0;
            return Verdict::SideIo { op: Op::Read, block: 0, count: 1, page: self.pool.pages() as u16 };
        };
        for b in 0..count {
            let at = b as u64 * BLOCK as u64;
            if encrypt_into(bounce, first + b, cipher, io, at, data).is_err() {
                self.pool.give(first, count);
                return Verdict::Fail(Status::IoError);
            }
        }
        *state = first as u64 + 1;
        Verdict::Substitute { offset: (first * BLOCK) as u64 }
    }

    fn post(&mut self, io: &Io, done: Completion, data: &dyn RequestData) -> Verdict {
        match io.op {
            Op::Write => {
                if io.state != 0 {
                    self.pool.give(io.state as usize - 1, io.count as usize);
                }
                Verdict::Continue
            }
            Op::Read if done.status == Status::Ok => {
                let Some(cipher) = &self.cipher else { return Verdict::Fail(Status::IoError) };
                let mut verdict = Verdict::Continue;
                for b in 0..u64::from(done.count.min(io.count)) {
                    let at = b * BLOCK as u64;
                    if data.read(io, at, &mut self.block).is_err() {
                        verdict = Verdict::Fail(Status::IoError);
                        break;
                    }
                    cipher.decrypt_block(io.block + b, &mut self.block);
                    if data.write(io, at, &self.block).is_err() {
                        verdict = Verdict::Fail(Status::IoError);
                        break;
                    }
                }
                // (The plaintext stays in the client's buffer only, even
                // when a copy failed.)
                wipe(&mut self.block);
                verdict
            }
            _ => Verdict::Continue,
        }
    }
}

/// Zero a block of plaintext: on the PD with SIMD stores (the AES runs
/// there, so the FP unit is ours anyway), a third of `memset`'s work.
fn wipe(block: &mut [u8; BLOCK]) {
    #[cfg(target_os = "none")]
    microkit::wipe_simd(block);
    #[cfg(not(target_os = "none"))]
    block.fill(0);
}

/// Encrypt block `at` (a byte offset) of write `io`'s data into page
/// `page` of the bounce buffer: read through the grant straight into the
/// page and encrypted there (no copy of the block in private memory, and
/// none back out).
fn encrypt_into(bounce: &Shared<'_>, page: usize, cipher: &Cipher, io: &Io, at: u64, data: &dyn RequestData) -> Result<(), ()> {
    // SAFETY: the pool gave this page to this write alone until its
    // post-op gives it back; the device reads it only after this pre-op's
    // verdict sends the write down, and nothing else of this filter's
    // reaches it meanwhile (setup, which reads key material into the
    // buffer, is over before any request; after a restart the server runs
    // it again only once no write of the earlier life is in flight).
    #[allow(unsafe_code)]
    let bytes = unsafe { bounce.bytes_mut(page * BLOCK, BLOCK) }.map_err(|_| ())?;
    let block: &mut [u8; BLOCK] = bytes.try_into().map_err(|_| ())?;
    data.read(io, at, block).map_err(|_| ())?;
    cipher.encrypt_block(io.block + at / BLOCK as u64, block);
    Ok(())
}

#[cfg(test)]
mod tests;
