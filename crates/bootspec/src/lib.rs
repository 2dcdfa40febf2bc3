//! The boot spec: what the kernel installs, and nothing else.
//!
//! The host tool turns `system.xml` into an image that holds the kernel,
//! every PD's frames, the translation tables of every address space and this
//! spec. The kernel reads the spec at boot: the protection domains with their
//! priorities, channel tables, IRQ bindings, page-table roots and the memory
//! to restore when a PD restarts. It allocates nothing the spec does not
//! describe.
//!
//! Layout: a [`Header`], then `pd_count` [`PdDesc`] records, then
//! `restore_count` [`RestoreOp`] records, then `lend_count` [`LendDesc`]
//! records, each array starting at the offset the header names. All integers are little-endian (the only byte order
//! the kernel runs in). The header carries a magic number, a version and a
//! checksum over the whole spec so a stale or damaged image is refused.
#![no_std]
#![forbid(unsafe_code)]

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

pub mod platform;

pub const MAGIC: [u8; 8] = *b"STRATASP";
/// Bumped whenever a record changes shape.
pub const VERSION: u32 = 2;

/// "No PD" in a PD-index field.
pub const NO_PD: u8 = 0xff;
/// Longest PD name (bytes), not counting the terminating NUL.
pub const MAX_NAME: usize = 63;

pub use abi::{MAX_CHANNELS, MAX_PDS};

/// Header flag: let EL0 read the PMU counters (benchmark images only).
pub const FLAG_PMU_USER: u32 = 1 << 0;

#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    /// Size of the whole spec in bytes, header included.
    pub total_size: u32,
    /// [`checksum`] of the whole spec with this field zero.
    pub checksum: u32,
    pub flags: u32,
    pub pd_count: u32,
    pub restore_count: u32,
    pub pd_offset: u32,
    pub restore_offset: u32,
    pub lend_count: u32,
    pub lend_offset: u32,
    /// Physical address of the kernel's level-0 table (TTBR1).
    pub kernel_ttbr1: u64,
    /// Physical address of the level-0 table that identity-maps the kernel
    /// while the MMU comes on (TTBR0 during boot only).
    pub boot_ttbr0: u64,
    /// Physical memory the image uses: RAM start and size.
    pub ram_base: u64,
    pub ram_size: u64,
    /// Where the tool put translation tables (for image checkers).
    pub page_tables_paddr: u64,
    pub page_tables_size: u64,
}

/// PD flag: runs only inside protected procedure calls once initialised.
pub const PD_PASSIVE: u8 = 1 << 0;
/// PD flag: may power the machine off.
pub const PD_CAN_POWER_OFF: u8 = 1 << 1;

#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PdDesc {
    /// NUL-padded name, for the console and fault reports.
    pub name: [u8; MAX_NAME + 1],
    /// Physical address of this address space's level-0 table.
    pub ttbr0: u64,
    pub entry: u64,
    pub stack_top: u64,
    /// Physical address of the PD's IPC buffer page.
    pub ipc_buffer_paddr: u64,
    /// The PD's slice of the restore array (see [`RestoreOp`]).
    pub restore_first: u32,
    pub restore_count: u32,
    pub asid: u16,
    pub priority: u8,
    pub flags: u8,
    /// Index of the parent PD (its fault handler), or [`NO_PD`].
    pub parent: u8,
    /// The id the parent uses for this PD.
    pub id_in_parent: u8,
    pub _reserved: [u8; 2],
    /// The longest one PPC this PD serves may run, in microseconds; 0 = no
    /// limit. The kernel stops a PD that runs past it
    /// ([`abi::FaultKind::BudgetExceeded`]).
    pub call_budget_us: u32,
    pub _reserved2: u32,
    /// Child id -> PD index, [`NO_PD`] where there is none.
    pub children: [u8; 64],
    pub channels: [ChannelDesc; MAX_CHANNELS],
}

impl PdDesc {
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// Channel slot kinds.
pub const CHANNEL_NONE: u8 = 0;
/// A channel to another PD.
pub const CHANNEL_PD: u8 = 1;
/// An interrupt delivered as a notification on this channel.
pub const CHANNEL_IRQ: u8 = 2;

/// Right on a [`CHANNEL_PD`] slot: may notify the peer.
pub const RIGHT_NOTIFY: u8 = 1 << 0;
/// Right on a [`CHANNEL_PD`] slot: may make a PPC to the peer.
pub const RIGHT_PPC: u8 = 1 << 1;

/// Interrupt trigger modes.
pub const TRIGGER_LEVEL: u8 = 0;
pub const TRIGGER_EDGE: u8 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ChannelDesc {
    /// [`CHANNEL_NONE`], [`CHANNEL_PD`] or [`CHANNEL_IRQ`].
    pub kind: u8,
    /// For PD channels: [`RIGHT_NOTIFY`] | [`RIGHT_PPC`].
    pub rights: u8,
    /// For PD channels: the PD at the other end and its id for this channel.
    pub peer: u8,
    pub peer_channel: u8,
    /// For IRQ channels: the GIC interrupt id and its trigger mode.
    pub irq: u16,
    pub trigger: u8,
    pub _reserved: u8,
    /// For PD channels with [`RIGHT_PPC`]: the regions a call on this
    /// channel may lend (`lend_count` [`LendDesc`]s from `lend_first`), in
    /// the order of the `<lend>`s of the `<channel>`.
    pub lend_first: u16,
    pub lend_count: u16,
    pub _reserved2: u32,
}

impl ChannelDesc {
    /// No channel.
    pub const NONE: ChannelDesc = ChannelDesc {
        kind: CHANNEL_NONE,
        rights: 0,
        peer: 0,
        peer_channel: 0,
        irq: 0,
        trigger: 0,
        _reserved: 0,
        lend_first: 0,
        lend_count: 0,
        _reserved2: 0,
    };
}

/// A region a PPC may lend (see `abi::sys::PP_CALL_LEND`): its physical
/// range and the widest rights ([`abi::GRANT_READ`], [`abi::GRANT_WRITE`])
/// a lend of it may give. The lender need not map it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct LendDesc {
    pub paddr: u64,
    pub size: u64,
    pub rights: u8,
    pub _reserved: [u8; 7],
}

/// Restore ops copy the pristine bytes of a writable segment back, or zero a
/// range, when a PD restarts.
pub const RESTORE_COPY: u32 = 0;
pub const RESTORE_ZERO: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RestoreOp {
    pub kind: u32,
    pub _reserved: u32,
    pub dst_paddr: u64,
    /// Source of the pristine copy ([`RESTORE_COPY`] only).
    pub src_paddr: u64,
    pub len: u64,
}

/// Why a spec was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    TooShort,
    BadMagic,
    BadVersion(u32),
    BadChecksum { stored: u32, computed: u32 },
    BadLayout,
    TooManyPds(u32),
}

/// A validated view of a spec in memory.
pub struct Spec<'a> {
    pub header: &'a Header,
    pub pds: &'a [PdDesc],
    pub restore: &'a [RestoreOp],
    pub lends: &'a [LendDesc],
}

impl<'a> Spec<'a> {
    /// Check magic, version, checksum and array bounds, then give typed
    /// views of the arrays.
    pub fn parse(bytes: &'a [u8]) -> Result<Spec<'a>, SpecError> {
        let (header, _) = Header::ref_from_prefix(bytes).map_err(|_| SpecError::TooShort)?;
        if header.magic != MAGIC {
            return Err(SpecError::BadMagic);
        }
        if header.version != VERSION {
            return Err(SpecError::BadVersion(header.version));
        }
        let total = header.total_size as usize;
        if total < core::mem::size_of::<Header>() || total > bytes.len() {
            return Err(SpecError::TooShort);
        }
        let bytes = &bytes[..total];
        let computed = checksum_with_field_zeroed(bytes);
        if computed != header.checksum {
            return Err(SpecError::BadChecksum { stored: header.checksum, computed });
        }
        if header.pd_count as usize > MAX_PDS {
            return Err(SpecError::TooManyPds(header.pd_count));
        }
        let pds = slice_at::<PdDesc>(bytes, header.pd_offset, header.pd_count)?;
        let restore = slice_at::<RestoreOp>(bytes, header.restore_offset, header.restore_count)?;
        let lends = slice_at::<LendDesc>(bytes, header.lend_offset, header.lend_count)?;
        for pd in pds {
            let end = pd.restore_first as usize + pd.restore_count as usize;
            if end > restore.len() {
                return Err(SpecError::BadLayout);
            }
            for c in &pd.channels {
                if c.lend_first as usize + c.lend_count as usize > lends.len() {
                    return Err(SpecError::BadLayout);
                }
            }
        }
        Ok(Spec { header, pds, restore, lends })
    }

    /// The regions a PPC on channel `c` may lend.
    pub fn channel_lends(&self, c: &ChannelDesc) -> &'a [LendDesc] {
        let first = c.lend_first as usize;
        &self.lends[first..first + c.lend_count as usize]
    }

    /// The restore ops of one PD.
    pub fn restore_ops(&self, pd: &PdDesc) -> &'a [RestoreOp] {
        let first = pd.restore_first as usize;
        &self.restore[first..first + pd.restore_count as usize]
    }
}

fn slice_at<T: FromBytes + Immutable + KnownLayout>(
    bytes: &[u8],
    offset: u32,
    count: u32,
) -> Result<&[T], SpecError> {
    let start = offset as usize;
    let len = (count as usize).checked_mul(core::mem::size_of::<T>()).ok_or(SpecError::BadLayout)?;
    let end = start.checked_add(len).ok_or(SpecError::BadLayout)?;
    let region = bytes.get(start..end).ok_or(SpecError::BadLayout)?;
    <[T]>::ref_from_bytes(region).map_err(|_| SpecError::BadLayout)
}

const CHECKSUM_FIELD: core::ops::Range<usize> = 16..20;

/// The spec's checksum: FNV-1a over little-endian 32-bit words, with the
/// header's checksum field read as zero and a trailing partial word
/// zero-padded. Cheap enough for the kernel to check at every boot, strong
/// enough to catch a stale or damaged spec.
pub fn checksum_with_field_zeroed(bytes: &[u8]) -> u32 {
    // Hash in three pieces so the caller's bytes need not be copied; the
    // field sits on a word boundary, so this equals hashing a zeroed copy.
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |chunk: &[u8]| {
        for w in chunk.chunks(4) {
            let mut word = [0u8; 4];
            word[..w.len()].copy_from_slice(w);
            h = (h ^ u32::from_le_bytes(word)).wrapping_mul(0x0100_0193);
        }
    };
    feed(&bytes[..CHECKSUM_FIELD.start]);
    feed(&[0; 4]);
    feed(&bytes[CHECKSUM_FIELD.end..]);
    h
}

/// Builds a spec (host side). Kept here, beside the reader, so the two
/// cannot disagree about offsets.
pub struct SpecBuilder<'a> {
    pub header: Header,
    pub pds: &'a [PdDesc],
    pub restore: &'a [RestoreOp],
    pub lends: &'a [LendDesc],
}

impl SpecBuilder<'_> {
    /// Serialise into `out` (cleared first), filling sizes, offsets and the
    /// checksum.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, SpecError> {
        let size = self.size();
        if out.len() < size {
            return Err(SpecError::TooShort);
        }
        let out = &mut out[..size];
        out.fill(0);
        let header_size = core::mem::size_of::<Header>();
        let pd_bytes = self.pds.as_bytes();
        let restore_bytes = self.restore.as_bytes();
        let lend_bytes = self.lends.as_bytes();
        let mut header = self.header;
        header.magic = MAGIC;
        header.version = VERSION;
        header.total_size = size as u32;
        header.checksum = 0;
        header.pd_count = self.pds.len() as u32;
        header.restore_count = self.restore.len() as u32;
        header.pd_offset = header_size as u32;
        header.restore_offset = (header_size + pd_bytes.len()) as u32;
        header.lend_count = self.lends.len() as u32;
        header.lend_offset = header.restore_offset + restore_bytes.len() as u32;
        out[..header_size].copy_from_slice(header.as_bytes());
        out[header_size..header_size + pd_bytes.len()].copy_from_slice(pd_bytes);
        let restore_at = header.restore_offset as usize;
        out[restore_at..restore_at + restore_bytes.len()].copy_from_slice(restore_bytes);
        out[header.lend_offset as usize..].copy_from_slice(lend_bytes);
        let sum = checksum_with_field_zeroed(out);
        out[CHECKSUM_FIELD].copy_from_slice(&sum.to_le_bytes());
        Ok(size)
    }

    pub fn size(&self) -> usize {
        core::mem::size_of::<Header>() + self.pds.as_bytes().len() + self.restore.as_bytes().len() + self.lends.as_bytes().len()
    }
}

impl Header {
    pub fn empty() -> Header {
        Header::new_zeroed()
    }
}

impl PdDesc {
    /// A PD record with no channels, children, parent or restore ops.
    pub const EMPTY: PdDesc = PdDesc {
        name: [0; MAX_NAME + 1],
        ttbr0: 0,
        entry: 0,
        stack_top: 0,
        ipc_buffer_paddr: 0,
        restore_first: 0,
        restore_count: 0,
        asid: 0,
        priority: 0,
        flags: 0,
        parent: NO_PD,
        id_in_parent: 0,
        _reserved: [0; 2],
        call_budget_us: 0,
        _reserved2: 0,
        children: [NO_PD; 64],
        channels: [ChannelDesc::NONE; MAX_CHANNELS],
    };

    /// [`PdDesc::EMPTY`], to fill in.
    pub fn empty() -> PdDesc {
        PdDesc::EMPTY
    }

    /// Set the name, truncated to [`MAX_NAME`] bytes.
    pub fn set_name(&mut self, name: &str) {
        let len = name.len().min(MAX_NAME);
        self.name = [0; MAX_NAME + 1];
        self.name[..len].copy_from_slice(&name.as_bytes()[..len]);
    }
}

// The header's checksum field must be where CHECKSUM_FIELD says.
const _: () = assert!(core::mem::offset_of!(Header, checksum) == 16);
const _: () = assert!(core::mem::size_of::<ChannelDesc>() == 16);
const _: () = assert!(core::mem::size_of::<LendDesc>() == 24);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn sample() -> Vec<u8> {
        let mut a = PdDesc::empty();
        a.set_name("alpha");
        a.priority = 10;
        a.restore_first = 0;
        a.restore_count = 1;
        let mut b = PdDesc::empty();
        b.set_name("beta");
        b.channels[3] = ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_PPC, peer: 0, peer_channel: 5, lend_first: 0, lend_count: 1, ..Default::default() };
        b.call_budget_us = 500;
        let restore = [RestoreOp { kind: RESTORE_ZERO, _reserved: 0, dst_paddr: 0x4100_0000, src_paddr: 0, len: 4096 }];
        let lends = [LendDesc { paddr: 0x5000_0000, size: 0x2000, rights: abi::GRANT_READ, _reserved: [0; 7] }];
        let pds = [a, b];
        let builder = SpecBuilder { header: Header::empty(), pds: &pds, restore: &restore, lends: &lends };
        let mut out = vec![0u8; builder.size()];
        builder.write(&mut out).unwrap();
        out
    }

    #[test]
    fn written_spec_parses_back() {
        let bytes = sample();
        let spec = Spec::parse(&bytes).unwrap();
        assert_eq!(spec.pds.len(), 2);
        assert_eq!(spec.pds[0].name(), "alpha");
        assert_eq!(spec.pds[1].channels[3].peer_channel, 5);
        assert_eq!(spec.restore_ops(&spec.pds[0]).len(), 1);
        assert_eq!(spec.restore_ops(&spec.pds[1]).len(), 0);
        assert_eq!(spec.pds[1].call_budget_us, 500);
        assert_eq!(spec.channel_lends(&spec.pds[1].channels[3])[0].size, 0x2000);
        assert_eq!(spec.channel_lends(&spec.pds[1].channels[0]).len(), 0);
    }

    #[test]
    fn a_channel_lending_past_the_lend_array_is_refused() {
        let mut a = PdDesc::empty();
        a.channels[0] = ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_PPC, lend_first: 1, lend_count: 1, ..Default::default() };
        let lends = [LendDesc::default()];
        let pds = [a];
        let builder = SpecBuilder { header: Header::empty(), pds: &pds, restore: &[], lends: &lends };
        let mut out = vec![0u8; builder.size()];
        builder.write(&mut out).unwrap();
        assert_eq!(Spec::parse(&out).err(), Some(SpecError::BadLayout));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Spec::parse(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn wrong_magic_and_version_are_named() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert!(matches!(Spec::parse(&bytes), Err(SpecError::BadMagic)));
        let mut bytes = sample();
        bytes[8] = 99;
        assert!(matches!(Spec::parse(&bytes), Err(SpecError::BadVersion(99))));
    }

    #[test]
    fn truncated_spec_is_refused() {
        let bytes = sample();
        assert_eq!(Spec::parse(&bytes[..bytes.len() - 1]).err(), Some(SpecError::TooShort));
        assert_eq!(Spec::parse(&bytes[..10]).err(), Some(SpecError::TooShort));
    }

    #[test]
    fn restore_slice_out_of_bounds_is_refused() {
        let mut a = PdDesc::empty();
        a.restore_first = 1;
        a.restore_count = 1;
        let pds = [a];
        let builder = SpecBuilder { header: Header::empty(), pds: &pds, restore: &[], lends: &[] };
        let mut out = vec![0u8; builder.size()];
        builder.write(&mut out).unwrap();
        assert_eq!(Spec::parse(&out).err(), Some(SpecError::BadLayout));
    }

    #[test]
    fn long_names_are_truncated_with_a_terminator() {
        let mut pd = PdDesc::empty();
        pd.set_name(&"x".repeat(100));
        assert_eq!(pd.name().len(), MAX_NAME);
        assert_eq!(pd.name[MAX_NAME], 0);
    }
}
