//! What the checker reports: one [`Finding`] per difference between the
//! image and the description, each printed as one line that names the PD
//! (or the kernel half, or the image), the address or channel, and what
//! differs.

use std::fmt;
use std::ops::Range;

/// A set of translation tables.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// A protection domain's address space (its `ttbr0`).
    Pd(String),
    /// The kernel's half (`kernel_ttbr1`).
    Kernel,
    /// The identity map used while the MMU comes on (`boot_ttbr0`).
    Boot,
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Pd(name) => write!(f, "pd '{name}'"),
            Space::Kernel => f.write_str("kernel half (TTBR1)"),
            Space::Boot => f.write_str("boot tables (TTBR0 at boot)"),
        }
    }
}

/// Who uses a range of physical frames, for [`Finding::SharedFrames`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameUser {
    /// A PD maps them: `what` is "stack", "region 'x'", "extra mapping", ...
    Mapping { pd: String, what: String, vaddr: u64 },
    /// Memory no PD may map: "the page-table pool", "the boot spec", ...
    Reserved(String),
}

impl fmt::Display for FrameUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameUser::Mapping { pd, what, vaddr } => write!(f, "pd '{pd}' ({what} at {vaddr:#x})"),
            FrameUser::Reserved(what) => f.write_str(what),
        }
    }
}

/// One way in which the image differs from the description.
///
/// `Display` gives the finding as one line; the variants' fields let a
/// caller sort or filter without parsing the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The image file itself: not an ELF file, overlapping segments, memory
    /// the spec names that the image does not hold.
    Image(String),
    /// The kernel ELF given to the checker.
    KernelElf(String),
    /// A PD's program image given to the checker.
    Program { pd: String, problem: String },
    /// The description itself cannot be laid out (only a description that
    /// breaks the validation rules can get here).
    Declaration { pd: String, problem: String },
    /// The checker was given the wrong number of program images.
    ProgramCount { pds: usize, programs: usize },
    /// The boot spec as a whole: not found, refused by `Spec::parse`, or a
    /// header field out of place.
    Spec(String),
    /// The spec describes a different number of PDs.
    PdCount { declared: usize, found: usize },
    /// The spec's PD at `index` has another name.
    PdName { index: usize, declared: String, found: String },
    /// A field of a PD's record: priority, flags, parent, entry point, ...
    PdField { pd: String, field: &'static str, found: String, declared: String },
    /// A slot of a PD's channel table; `None` is an empty slot.
    Channel { pd: String, id: usize, found: Option<String>, declared: Option<String> },
    /// A slot of a PD's child table; `None` is an empty slot.
    Child { pd: String, id: usize, found: Option<String>, declared: Option<String> },
    /// A PD's address-space identifier.
    Asid { pd: String, asid: u16, problem: String },
    /// One of a PD's restore operations (run when its parent restarts it).
    Restore { pd: String, index: usize, problem: String },
    /// Memory of a restartable PD that no restore operation resets, so a
    /// restarted PD would see what its previous run left there.
    NotRestored { pd: String, vaddr: Range<u64>, what: String },
    /// A variable the tool patches (`setvar_vaddr`, `setvar`).
    Setvar { pd: String, symbol: String, problem: String },
    /// The shape of a set of translation tables: a table outside the
    /// pool, a table used twice, a malformed descriptor.
    Table { space: Space, problem: String },
    /// A PD can reach memory nothing declares.
    ExtraMapping { pd: String, vaddr: Range<u64>, paddr: u64, grants: String },
    /// Something declared is not mapped.
    MissingMapping { pd: String, vaddr: Range<u64>, what: String, declared: String },
    /// A declared mapping grants other rights or memory attributes.
    Rights { pd: String, vaddr: Range<u64>, what: String, found: String, declared: String },
    /// A declared mapping maps other frames than it must.
    WrongFrame { pd: String, vaddr: Range<u64>, what: String, found: u64, expected: u64, why: String },
    /// Two PDs (or two maps of one PD) put the same part of a region on
    /// different frames: `(pd, vaddr, frames)` for each.
    RegionFrames { region: String, offsets: Range<u64>, first: (String, u64, u64), second: (String, u64, u64) },
    /// A PD mapping outside RAM that should be in RAM.
    OutsideRam { pd: String, vaddr: Range<u64>, what: String, paddr: u64 },
    /// A PD mapping without nG: its TLB entries would match in every
    /// address space.
    Global { pd: String, vaddr: Range<u64> },
    /// A PD mapping the kernel may execute (PXN clear).
    El1Executable { pd: String, vaddr: Range<u64> },
    /// Writable and executable at once, at any level.
    WritableExecutable { space: Space, vaddr: Range<u64> },
    /// A kernel-only mapping that EL0 can read, write or execute.
    El0Accessible { space: Space, vaddr: Range<u64>, grants: String },
    /// The kernel may execute memory that is not the kernel's code.
    KernelExecutesData { vaddr: Range<u64>, paddr: u64 },
    /// Two users of the same physical frames that must not share them.
    SharedFrames { frames: Range<u64>, a: FrameUser, b: FrameUser },
    /// How many regions a call on a PD's channel may lend (the channel
    /// slot's `lend_count`) differs from the `<lend>`s the description
    /// gives the channel; `declared` names them (`'mr' perms`).
    LendCount { pd: String, channel: usize, found: usize, declared: Vec<String> },
    /// One lend of a channel (`index` counts the channel's lends, in the
    /// order of its `<lend>`s) differs from the declared one in `field`:
    /// `paddr`, `size` or `rights`.
    Lend { pd: String, channel: usize, index: usize, region: String, field: &'static str, found: String, declared: String },
    /// A call on the channel may lend memory outside RAM (`region` is the
    /// declared region, `None` for a lend nothing declares).
    LendOutsideRam { pd: String, channel: usize, index: usize, region: Option<String>, memory: Range<u64> },
    /// An entry of the spec's lend array that no channel uses.
    OrphanLend { index: usize, memory: Range<u64>, rights: u8 },
    /// A PD's program segment holds other bytes than its program image
    /// (patched variables aside): the first differing byte, where the PD
    /// sees it and on which frame.
    ProgramBytes { pd: String, segment: Range<u64>, vaddr: u64, paddr: u64 },
    /// Memory that must start zeroed (a stack, an IPC buffer) starts with
    /// bytes the image loads: the first non-zero one.
    NotZeroed { pd: String, vaddr: Range<u64>, what: String, paddr: u64 },
    /// A region handed out by physical address (lent, or given by `setvar
    /// region_paddr`) must be one run of frames from that address; a PD
    /// maps part of it elsewhere.
    RegionRun { region: String, offsets: Range<u64>, pd: String, vaddr: u64, found: u64, expected: u64 },
    /// A kernel-only mapping (the kernel's half, or the boot tables)
    /// translates to other frames than the kernel expects there; each side
    /// is named by what uses those frames, where something does.
    KernelFrames {
        space: Space,
        vaddr: Range<u64>,
        what: String,
        found: u64,
        found_owner: Option<String>,
        expected: u64,
        expected_owner: Option<String>,
    },
    /// A kernel-only mapping gives the kernel other rights or another
    /// memory type than it must (`found` and `expected` as `rw cached`).
    KernelRights { space: Space, vaddr: Range<u64>, what: String, found: String, expected: String },
    /// The kernel's half maps something its layout does not have.
    KernelExtra { space: Space, vaddr: Range<u64>, paddr: u64, grants: String },
    /// The kernel's half (or the boot tables) lacks a mapping it must have.
    KernelMissing { space: Space, vaddr: Range<u64>, what: String, expected: String },
    /// A boot-table mapping without nG: tagged with no ASID, it would stay
    /// in the TLB for every PD (the kernel does not flush on a switch).
    BootGlobal { vaddr: Range<u64> },
    /// A reserved field that is not zero: of a PD's record (`pd` is set),
    /// one of its channel slots, a lend or a restore op. `record` says
    /// which ("its record", "channel 3", "lend 1", "restore op 2").
    Reserved { pd: Option<String>, record: String, field: &'static str, value: u64 },
}

/// Lend rights (`abi::GRANT_READ`, `abi::GRANT_WRITE`) as letters: `r`,
/// `rw`, `w`, `none`, with unknown bits in hex.
pub(crate) fn lend_rights(rights: u8) -> String {
    let mut s = String::new();
    if rights & abi::GRANT_READ != 0 {
        s.push('r');
    }
    if rights & abi::GRANT_WRITE != 0 {
        s.push('w');
    }
    let unknown = rights & !(abi::GRANT_READ | abi::GRANT_WRITE);
    if unknown != 0 {
        if !s.is_empty() {
            s.push('+');
        }
        s.push_str(&format!("{unknown:#x}"));
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

fn regions(n: usize) -> &'static str {
    if n == 1 {
        "region"
    } else {
        "regions"
    }
}

/// `start..end` in hex.
pub(crate) struct Hex<'a>(pub &'a Range<u64>);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.0.start, self.0.end)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Image(problem) => write!(f, "image: {problem}"),
            Finding::KernelElf(problem) => write!(f, "kernel ELF: {problem}"),
            Finding::Program { pd, problem } => write!(f, "pd '{pd}': program image: {problem}"),
            Finding::Declaration { pd, problem } => write!(f, "pd '{pd}': in the description, {problem}"),
            Finding::ProgramCount { pds, programs } => {
                write!(f, "inputs: {programs} program images for {pds} protection domains")
            }
            Finding::Spec(problem) => write!(f, "boot spec: {problem}"),
            Finding::PdCount { declared, found } => {
                write!(f, "boot spec: {found} protection domains, declared {declared}")
            }
            Finding::PdName { index, declared, found } => {
                write!(f, "boot spec: protection domain {index} is named '{found}', declared '{declared}'")
            }
            Finding::PdField { pd, field, found, declared } => {
                write!(f, "pd '{pd}': {field} {found}, declared {declared}")
            }
            Finding::Channel { pd, id, found, declared } => match (found, declared) {
                (Some(found), None) => write!(f, "pd '{pd}': extra channel {id}: {found}"),
                (None, Some(declared)) => write!(f, "pd '{pd}': missing channel {id}: {declared}"),
                (found, declared) => write!(
                    f,
                    "pd '{pd}': channel {id} is {}, declared {}",
                    found.as_deref().unwrap_or("empty"),
                    declared.as_deref().unwrap_or("empty")
                ),
            },
            Finding::Child { pd, id, found, declared } => match (found, declared) {
                (Some(found), None) => write!(f, "pd '{pd}': extra child {id}: {found}"),
                (None, Some(declared)) => write!(f, "pd '{pd}': missing child {id}: {declared}"),
                (found, declared) => write!(
                    f,
                    "pd '{pd}': child {id} is {}, declared {}",
                    found.as_deref().unwrap_or("empty"),
                    declared.as_deref().unwrap_or("empty")
                ),
            },
            Finding::Asid { pd, asid, problem } => write!(f, "pd '{pd}': ASID {asid} {problem}"),
            Finding::Restore { pd, index, problem } => write!(f, "pd '{pd}': restore op {index} {problem}"),
            Finding::NotRestored { pd, vaddr, what } => {
                write!(f, "pd '{pd}': a restart leaves its {what} at {} as the last run left it", Hex(vaddr))
            }
            Finding::Setvar { pd, symbol, problem } => write!(f, "pd '{pd}': variable '{symbol}' {problem}"),
            Finding::Table { space, problem } => write!(f, "{space}: {problem}"),
            Finding::ExtraMapping { pd, vaddr, paddr, grants } => {
                write!(f, "pd '{pd}': extra mapping {} -> {paddr:#x} ({grants})", Hex(vaddr))
            }
            Finding::MissingMapping { pd, vaddr, what, declared } => {
                write!(f, "pd '{pd}': missing mapping {} ({what}, {declared})", Hex(vaddr))
            }
            Finding::Rights { pd, vaddr, what, found, declared } => {
                write!(f, "pd '{pd}': {what} at {} grants {found}, declared {declared}", Hex(vaddr))
            }
            Finding::WrongFrame { pd, vaddr, what, found, expected, why } => write!(
                f,
                "pd '{pd}': {what} at {} maps frames at {found:#x}, expected {expected:#x} ({why})",
                Hex(vaddr)
            ),
            Finding::RegionFrames { region, offsets, first, second } => write!(
                f,
                "region '{region}' at offsets {} is on frames at {:#x} in pd '{}' (at {:#x}) but at {:#x} in pd '{}' (at {:#x})",
                Hex(offsets),
                first.2,
                first.0,
                first.1,
                second.2,
                second.0,
                second.1
            ),
            Finding::OutsideRam { pd, vaddr, what, paddr } => {
                write!(f, "pd '{pd}': {what} at {} maps frames at {paddr:#x}, outside RAM", Hex(vaddr))
            }
            Finding::Global { pd, vaddr } => write!(f, "pd '{pd}': {} is global (nG clear)", Hex(vaddr)),
            Finding::El1Executable { pd, vaddr } => {
                write!(f, "pd '{pd}': {} is executable at EL1 (PXN clear)", Hex(vaddr))
            }
            Finding::WritableExecutable { space, vaddr } => {
                write!(f, "{space}: {} is writable and executable", Hex(vaddr))
            }
            Finding::El0Accessible { space, vaddr, grants } => {
                write!(f, "{space}: {} is accessible at EL0 ({grants})", Hex(vaddr))
            }
            Finding::KernelExecutesData { vaddr, paddr } => write!(
                f,
                "{}: {} -> {paddr:#x} is executable at EL1 but is not kernel code",
                Space::Kernel,
                Hex(vaddr)
            ),
            Finding::SharedFrames { frames, a, b } => match (a, b) {
                (FrameUser::Reserved(r), m @ FrameUser::Mapping { .. })
                | (m @ FrameUser::Mapping { .. }, FrameUser::Reserved(r)) => {
                    write!(f, "frames {} of {r} are mapped by {m}", Hex(frames))
                }
                (FrameUser::Reserved(_), FrameUser::Reserved(_)) => {
                    write!(f, "image: frames {} belong to both {a} and {b}", Hex(frames))
                }
                _ => write!(f, "frames {} are mapped by {a} and by {b}", Hex(frames)),
            },
            Finding::LendCount { pd, channel, found, declared } => {
                write!(f, "pd '{pd}': channel {channel} lends {found} {}, declared ", regions(*found))?;
                if declared.is_empty() {
                    f.write_str("none")
                } else {
                    write!(f, "{} ({})", declared.len(), declared.join(", "))
                }
            }
            Finding::Lend { pd, channel, index, region, field, found, declared } => {
                write!(f, "pd '{pd}': channel {channel} lend {index} (region '{region}') {field} {found}, declared {declared}")
            }
            Finding::LendOutsideRam { pd, channel, index, region, memory } => {
                write!(f, "pd '{pd}': channel {channel} lend {index} ")?;
                match region {
                    Some(r) => write!(f, "(region '{r}') ")?,
                    None => f.write_str("(undeclared) ")?,
                }
                write!(f, "lends {}, outside RAM", Hex(memory))
            }
            Finding::OrphanLend { index, memory, rights } => {
                write!(f, "boot spec: lend {index} ({}, {}) is used by no channel", Hex(memory), lend_rights(*rights))
            }
            Finding::ProgramBytes { pd, segment, vaddr, paddr } => write!(
                f,
                "pd '{pd}': program segment {} differs from the program image (first at {vaddr:#x}, on frame {paddr:#x})",
                Hex(segment)
            ),
            Finding::NotZeroed { pd, vaddr, what, paddr } => write!(
                f,
                "pd '{pd}': {what} at {} does not start zeroed (the image loads a byte at {paddr:#x})",
                Hex(vaddr)
            ),
            Finding::RegionRun { region, offsets, pd, vaddr, found, expected } => write!(
                f,
                "region '{region}' at offsets {} is on frames at {found:#x} in pd '{pd}' (at {vaddr:#x}), but its lends and setvars hand it out as one run of frames (expected {expected:#x})",
                Hex(offsets)
            ),
            Finding::KernelFrames { space, vaddr, what, found, found_owner, expected, expected_owner } => {
                write!(f, "{space}: {what} at {} maps frames at {found:#x}", Hex(vaddr))?;
                if let Some(o) = found_owner {
                    write!(f, " ({o})")?;
                }
                write!(f, ", expected {expected:#x}")?;
                match expected_owner {
                    Some(o) => write!(f, " ({o})"),
                    None => Ok(()),
                }
            }
            Finding::KernelRights { space, vaddr, what, found, expected } => {
                write!(f, "{space}: {what} at {} grants the kernel {found}, expected {expected}", Hex(vaddr))
            }
            Finding::KernelExtra { space, vaddr, paddr, grants } => {
                write!(f, "{space}: extra mapping {} -> {paddr:#x} ({grants})", Hex(vaddr))
            }
            Finding::KernelMissing { space, vaddr, what, expected } => {
                write!(f, "{space}: missing mapping {} ({what}, {expected})", Hex(vaddr))
            }
            Finding::BootGlobal { vaddr } => write!(f, "{}: {} is global (nG clear)", Space::Boot, Hex(vaddr)),
            Finding::Reserved { pd, record, field, value } => {
                match pd {
                    Some(pd) => write!(f, "pd '{pd}': ")?,
                    None => f.write_str("boot spec: ")?,
                }
                write!(f, "reserved field {field} of {record} is {value:#x}, must be 0")
            }
        }
    }
}
