//! The system as the description declares it: protection domains, memory
//! regions, channels, devices and information-flow policies, with the source
//! position of every element; and the extensions: disks with their filter
//! chains, block clients, lends on PPC channels, call budgets and the chains
//! a protection domain declares for the verifier.
//!
//! The model is plain data. [`crate::parse`] builds it and validates it, so a
//! `SystemDescription` handed out by it always obeys the validation rules;
//! [`crate::read`] builds it without them (names still resolve: every index
//! is in range and every region, PD and device name exists).
//!
//! The one exception to "names resolve": a policy may name what the storage
//! expansion will generate (`blk_server`, `blk_disk0_dma`, ...). Such a
//! policy is kept by name in [`SystemDescription::pending_policies`] until
//! the expansion has generated it and [`crate::resolve_pending_policies`]
//! moves it, resolved, into [`SystemDescription::policies`].

use std::fmt;

/// Highest priority a protection domain may have (the Microkit's limit).
pub const MAX_PRIORITY: u8 = 254;
/// Priority of a protection domain without a `priority` attribute: the
/// lowest, as in the Microkit tool.
pub const DEFAULT_PRIORITY: u8 = 0;
/// Budget (microseconds) of a protection domain without a `budget`
/// attribute, as in the Microkit. The period defaults to the budget.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Channel, irq and child ids run from 0 to `MAX_ID`.
pub const MAX_ID: u8 = abi::MAX_CHANNELS as u8 - 1;
/// The page sizes a memory region may use: 4 KiB and 2 MiB (AArch64).
pub const PAGE_SIZES: [u64; 2] = [0x1000, 0x20_0000];
/// Page size of a memory region without a `page_size` attribute.
pub const DEFAULT_PAGE_SIZE: u64 = PAGE_SIZES[0];
/// Extension: the highest virtio-mmio slot of QEMU's `virt` machine (it has
/// slots 0 to 31).
pub const MAX_VIRTIO_SLOT: u32 = 31;
/// Extension: the longest disk name (it travels in 32-byte, NUL-padded
/// fields of the storage configuration records).
pub const MAX_DISK_NAME: usize = 31;
/// Extension: the longest filter name (a PD name, and it travels in
/// 32-byte fields of the storage configuration records as well).
pub const MAX_FILTER_NAME: usize = 31;
/// Extension: MBR primary partitions are numbered 1 to this.
pub const MAX_PARTITION: u8 = 4;
/// Extension: bytes of a block client's data region without `data_size`.
pub const DEFAULT_DATA_SIZE: u64 = 0x10_0000;
/// Extension: ring entries of a block client's queue without
/// `queue_capacity`.
pub const DEFAULT_QUEUE_CAPACITY: u32 = 32;
/// Extension: the largest `queue_capacity` (the driver's rings hold 64).
pub const MAX_QUEUE_CAPACITY: u32 = 64;
/// Extension: the longest `call_budget` (and filter `budget`), in
/// microseconds: 10 s.
pub const MAX_CALL_BUDGET_US: u64 = 10_000_000;
/// Extension: the most `<lend>`s one channel may carry.
pub const MAX_LENDS: usize = 64;

/// A 1-based line and column in the system description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A whole system: what `system.xml` declares.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemDescription {
    /// The path of the description, as given to [`crate::parse`].
    pub file: String,
    /// All protection domains, nested ones included, in document order: a
    /// parent always comes before its children.
    pub protection_domains: Vec<ProtectionDomain>,
    pub memory_regions: Vec<MemoryRegion>,
    pub channels: Vec<Channel>,
    /// Extension: hardware and the protection domains that own it.
    pub devices: Vec<Device>,
    /// Extension: information-flow policies for the verifier, in document
    /// order; every name they use exists in this model.
    pub policies: Vec<Policy>,
    /// Extension: the policies that name something only the storage
    /// expansion generates (a PD, memory region or device of
    /// [`crate::storage::generated_names`]), kept by name. Reading checks
    /// that each such name will be generated; the expansion resolves them
    /// ([`crate::resolve_pending_policies`]) and moves them into
    /// `policies`. Empty without disks and in an expanded system.
    pub pending_policies: Vec<PendingPolicy>,
    /// Extension: virtio-blk disks, in document order. The storage
    /// expansion (the tool's `storage` module) turns them and the
    /// [`BlockClient`]s into plain SDF; an expanded system has none.
    pub disks: Vec<Disk>,
}

impl SystemDescription {
    /// The protection domain called `name`, with its index.
    pub fn pd(&self, name: &str) -> Option<(usize, &ProtectionDomain)> {
        self.protection_domains.iter().enumerate().find(|(_, pd)| pd.name == name)
    }

    /// The memory region called `name`.
    pub fn memory_region(&self, name: &str) -> Option<&MemoryRegion> {
        self.memory_regions.iter().find(|mr| mr.name == name)
    }

    /// The device called `name`, with its index.
    pub fn device(&self, name: &str) -> Option<(usize, &Device)> {
        self.devices.iter().enumerate().find(|(_, dev)| dev.name == name)
    }

    /// The disk called `name`, with its index.
    pub fn disk(&self, name: &str) -> Option<(usize, &Disk)> {
        self.disks.iter().enumerate().find(|(_, disk)| disk.name == name)
    }

    /// Every policy, the pending ones included, in document order.
    pub fn all_policies(&self) -> Vec<AnyPolicy<'_>> {
        let mut all: Vec<AnyPolicy<'_>> = self.policies.iter().map(AnyPolicy::Resolved).collect();
        let mut pending: Vec<&PendingPolicy> = self.pending_policies.iter().collect();
        pending.sort_by_key(|p| p.index);
        for p in pending {
            all.insert(p.index.min(all.len()), AnyPolicy::Pending(p));
        }
        all
    }

    /// The protection domains that are block clients, in document order,
    /// with their indices.
    pub fn block_clients(&self) -> impl Iterator<Item = (usize, &ProtectionDomain, &BlockClient)> {
        self.protection_domains
            .iter()
            .enumerate()
            .filter_map(|(i, pd)| Some((i, pd, pd.block_client.as_ref()?)))
    }

    /// Every filter of every disk, in document order, with its disk.
    pub fn filters(&self) -> impl Iterator<Item = (&Disk, &Filter)> {
        self.disks.iter().flat_map(|disk| disk.filters.iter().map(move |f| (disk, f)))
    }

    /// A copy with every source position set to `Pos::default()`, for
    /// comparing two descriptions of one system that come from different
    /// texts (a written-out system read back, an expanded one).
    pub fn without_positions(&self) -> SystemDescription {
        let zero = Pos::default();
        let mut sd = self.clone();
        for pd in &mut sd.protection_domains {
            pd.pos = zero;
            pd.program_image_pos = zero;
            pd.maps.iter_mut().for_each(|m| m.pos = zero);
            pd.irqs.iter_mut().for_each(|i| i.pos = zero);
            pd.setvars.iter_mut().for_each(|s| s.pos = zero);
            if let Some(client) = &mut pd.block_client {
                client.pos = zero;
            }
            for chain in &mut pd.chains {
                chain.pos = zero;
                for stage in &mut chain.stages {
                    stage.pos = zero;
                    stage.regions.iter_mut().for_each(|r| r.pos = zero);
                    stage.channels.iter_mut().for_each(|c| c.pos = zero);
                }
                chain.vias.iter_mut().for_each(|v| v.pos = zero);
                chain.links.iter_mut().for_each(|l| l.pos = zero);
            }
        }
        sd.memory_regions.iter_mut().for_each(|mr| mr.pos = zero);
        for ch in &mut sd.channels {
            ch.pos = zero;
            ch.ends.iter_mut().for_each(|end| end.pos = zero);
            ch.lends.iter_mut().for_each(|lend| lend.pos = zero);
        }
        for dev in &mut sd.devices {
            dev.pos = zero;
            dev.regions.iter_mut().for_each(|r| r.pos = zero);
            dev.irqs.iter_mut().for_each(|i| i.pos = zero);
        }
        for policy in &mut sd.policies {
            policy.clear_positions(|_| {});
        }
        for pending in &mut sd.pending_policies {
            pending.policy.clear_positions(|pd| pd.pos = zero);
        }
        for disk in &mut sd.disks {
            disk.pos = zero;
            for filter in &mut disk.filters {
                filter.pos = zero;
                filter.params.iter_mut().for_each(|p| p.pos = zero);
                filter.links.iter_mut().for_each(|l| l.pos = zero);
            }
        }
        sd
    }

    /// The direct children of the protection domain at `parent`, with their
    /// indices.
    pub fn children(&self, parent: usize) -> impl Iterator<Item = (usize, &ProtectionDomain)> {
        self.protection_domains.iter().enumerate().filter(move |(_, pd)| pd.parent == Some(parent))
    }

    /// The channels with an end in the protection domain at `pd`, each with
    /// that end first and the other end second.
    pub fn channels_of(&self, pd: usize) -> impl Iterator<Item = (&ChannelEnd, &ChannelEnd)> {
        self.channels.iter().filter_map(move |ch| {
            let [a, b] = &ch.ends;
            if a.pd == pd {
                Some((a, b))
            } else if b.pd == pd {
                Some((b, a))
            } else {
                None
            }
        })
    }
}

/// A protection domain: one address space, one thread.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtectionDomain {
    pub name: String,
    /// Where the `<protection_domain>` element starts.
    pub pos: Pos,
    /// 0..=[`MAX_PRIORITY`]; higher runs first.
    pub priority: u8,
    /// A passive PD runs only inside the PPCs it serves.
    pub passive: bool,
    /// Bytes of stack below [`abi::layout::STACK_TOP`].
    pub stack_size: u64,
    /// Scheduling budget and period in microseconds; parsed and validated
    /// (budget <= period) but not enforced by the kernel.
    pub budget: u64,
    pub period: u64,
    /// Extension, `call_budget`: the longest one protected procedure call
    /// that this PD serves may run, in microseconds, before the kernel stops
    /// it; 1..=[`MAX_CALL_BUDGET_US`]. `None`: no limit.
    pub call_budget: Option<u64>,
    /// Extension: this PD may power the machine off.
    pub can_power_off: bool,
    /// The `path` of `<program_image>`, as written.
    pub program_image: String,
    pub program_image_pos: Pos,
    pub maps: Vec<Map>,
    pub irqs: Vec<Irq>,
    pub setvars: Vec<SetVar>,
    /// Index of the parent in [`SystemDescription::protection_domains`].
    pub parent: Option<usize>,
    /// The id the parent uses for this child; set exactly on nested PDs.
    pub child_id: Option<u8>,
    /// Extension: `<block_client>`, this PD is a client of a disk.
    pub block_client: Option<BlockClient>,
    /// Extension: the `<chain>`s this PD declares, in document order; names
    /// are unique among them.
    pub chains: Vec<Chain>,
}

/// Access rights of a mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// Why a `perms` value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermsError {
    /// A character other than `r`, `w` and `x`.
    UnknownLetter(char),
    /// A letter given more than once.
    RepeatedLetter(char),
    /// No `r`: write-only and execute-only mappings are not supported.
    NotReadable,
}

impl fmt::Display for PermsError {
    /// Says what a valid value looks like, given what was wrong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermsError::UnknownLetter(_) => f.write_str("a combination of 'r', 'w' and 'x'"),
            PermsError::RepeatedLetter(_) => f.write_str("each of 'r', 'w' and 'x' at most once"),
            PermsError::NotReadable => f.write_str(
                "perms that include 'r' (write-only and execute-only mappings are not supported)",
            ),
        }
    }
}

impl Perms {
    pub const READ: Perms = Perms { read: true, write: false, execute: false };
    /// The default of `perms`, as in the Microkit.
    pub const READ_WRITE: Perms = Perms { read: true, write: true, execute: false };
    pub const READ_EXECUTE: Perms = Perms { read: true, write: false, execute: true };

    /// Parse a `perms` value: the letters `r`, `w`, `x`, each at most once,
    /// in any order.
    ///
    /// Stricter than the Microkit, which refuses only `w`: a mapping must be
    /// readable (no write-only, no execute-only). `rwx` parses: that a
    /// mapping is never both writable and executable is a validation rule
    /// (so the verifier can still read such a system and report it).
    pub fn parse(s: &str) -> Result<Perms, PermsError> {
        let mut perms = Perms::default();
        for c in s.chars() {
            let flag = match c {
                'r' => &mut perms.read,
                'w' => &mut perms.write,
                'x' => &mut perms.execute,
                other => return Err(PermsError::UnknownLetter(other)),
            };
            if *flag {
                return Err(PermsError::RepeatedLetter(c));
            }
            *flag = true;
        }
        if !perms.read {
            return Err(PermsError::NotReadable);
        }
        Ok(perms)
    }
}

impl fmt::Display for Perms {
    /// The letters in `rwx` order, e.g. `rw`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (set, letter) in [(self.read, "r"), (self.write, "w"), (self.execute, "x")] {
            if set {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

/// A memory region mapped into a protection domain.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// Name of the memory region.
    pub mr: String,
    pub vaddr: u64,
    pub perms: Perms,
    pub cached: bool,
    /// Symbol to patch with `vaddr`.
    pub setvar_vaddr: Option<String>,
    pub pos: Pos,
}

impl Map {
    /// The virtual range `[vaddr, vaddr + size)` of this map of `region`,
    /// or `None` if it wraps around the 64-bit address space.
    pub fn range(&self, region: &MemoryRegion) -> Option<std::ops::Range<u64>> {
        Some(self.vaddr..self.vaddr.checked_add(region.size)?)
    }
}

/// A contiguous range of physical memory, placed by the tool or fixed by
/// `phys_addr` (device MMIO, DMA).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryRegion {
    pub name: String,
    /// Bytes; a non-zero multiple of `page_size`.
    pub size: u64,
    /// One of [`PAGE_SIZES`].
    pub page_size: u64,
    pub phys_addr: Option<u64>,
    pub pos: Pos,
}

impl MemoryRegion {
    /// The physical range of a region with a fixed `phys_addr`, or `None`
    /// if it has none or it wraps around the 64-bit address space.
    pub fn phys_range(&self) -> Option<std::ops::Range<u64>> {
        let start = self.phys_addr?;
        Some(start..start.checked_add(self.size)?)
    }
}

/// A channel between two protection domains.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub ends: [ChannelEnd; 2],
    /// Extension: the regions the caller may lend the callee during a PPC
    /// on this channel, in document order; only on a channel with a
    /// `pp="true"` end, each region once, at most [`MAX_LENDS`].
    pub lends: Vec<Lend>,
    pub pos: Pos,
}

impl Channel {
    /// For a channel that carries PPCs: the caller's end (the one with
    /// `pp="true"`) and the callee's end.
    pub fn ppc_caller_callee(&self) -> Option<(&ChannelEnd, &ChannelEnd)> {
        let [a, b] = &self.ends;
        match (a.pp, b.pp) {
            (true, false) => Some((a, b)),
            (false, true) => Some((b, a)),
            _ => None,
        }
    }
}

/// One end of a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelEnd {
    /// Index into [`SystemDescription::protection_domains`].
    pub pd: usize,
    /// The id this PD uses for the channel.
    pub id: u8,
    /// This end may make PPCs to the other end.
    pub pp: bool,
    /// This end may notify the other end.
    pub notify: bool,
    pub pos: Pos,
}

/// Extension, `<lend mr=".." perms=".."/>` in a `<channel>`: during a PPC
/// on the channel, the caller (the end with `pp="true"`) may lend the callee
/// all or part of region `mr`, with at most `perms`, without mapping the
/// region itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Lend {
    /// Name of the memory region.
    pub mr: String,
    /// [`Perms::READ`] or [`Perms::READ_WRITE`]: a lent region is never
    /// executable.
    pub perms: Perms,
    pub pos: Pos,
}

/// How an interrupt line signals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Trigger {
    #[default]
    Level,
    Edge,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Level => "level",
            Trigger::Edge => "edge",
        })
    }
}

/// A hardware interrupt delivered to a protection domain as a notification
/// on channel `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Irq {
    /// GIC interrupt id (an SPI).
    pub irq: u32,
    pub id: u8,
    pub trigger: Trigger,
    pub pos: Pos,
}

/// `<setvar symbol=".." region_paddr="mr"/>` or `<setvar symbol=".."
/// bytes="0a0b.."/>`: patch a value into a symbol of the program image.
#[derive(Clone, Debug, PartialEq)]
pub struct SetVar {
    pub symbol: String,
    pub value: SetVarValue,
    pub pos: Pos,
}

/// What a [`SetVar`] patches into its symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetVarValue {
    /// `region_paddr="mr"`: the physical address of the memory region of
    /// that name, as a 64-bit little-endian word.
    RegionPaddr(String),
    /// Extension, `bytes="0a0b.."`: these bytes, as they are (at least one).
    Bytes(Vec<u8>),
}

/// Extension, `<disk name=".." virtio_slot=".."/>`: a disk backed by the
/// virtio-blk device in a virtio-mmio slot of QEMU's `virt` machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Disk {
    /// 1 to [`MAX_DISK_NAME`] bytes.
    pub name: String,
    /// 0..=[`MAX_VIRTIO_SLOT`].
    pub virtio_slot: u32,
    /// The `<filter>` children: the chain the filter server passes the
    /// disk's requests through, in chain order, the first nearest the
    /// clients. Empty for a disk whose block client is direct.
    pub filters: Vec<Filter>,
    pub pos: Pos,
}

/// What a filter may do with the data of the requests it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataAccess {
    /// `data="none"`: it sees requests, not their data.
    None,
    /// `data="read"`: it may read the data.
    Read,
    /// `data="read-write"`: it may read and change the data.
    ReadWrite,
}

impl fmt::Display for DataAccess {
    /// The attribute value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataAccess::None => "none",
            DataAccess::Read => "read",
            DataAccess::ReadWrite => "read-write",
        })
    }
}

/// What becomes of a disk's requests when one of its filters faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnFault {
    /// `on_fault="fail"` (the default): the requests fail.
    #[default]
    Fail,
    /// `on_fault="restart"`: the filter is restarted.
    Restart,
}

impl fmt::Display for OnFault {
    /// The attribute value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFault::Fail => "fail",
            OnFault::Restart => "restart",
        })
    }
}

/// Extension, `<filter name=".." program=".." data=".." .../>` in a
/// `<disk>`: a protection domain the filter server passes the disk's
/// requests through.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// The name of the protection domain the filter becomes: a valid PD
    /// name, unique among PDs and filters, and none the storage expansion
    /// generates.
    pub name: String,
    /// Program image path, as in `<program_image path>`; not empty.
    pub program: String,
    pub data: DataAccess,
    /// 241..=249: above the filter server, below the driver. `None`:
    /// [`crate::storage::DEFAULT_FILTER_PRIORITY`].
    pub priority: Option<u8>,
    /// Microseconds one upcall may take, 1..=[`MAX_CALL_BUDGET_US`];
    /// `None`: no limit.
    pub budget: Option<u64>,
    pub on_fault: OnFault,
    /// In document order; at most [`crate::storage::MAX_PARAMS`], keys
    /// unique.
    pub params: Vec<Param>,
    /// The `<link>` children, in document order: the disks it may
    /// redirect requests into. At most [`crate::storage::MAX_LINKS`], each
    /// another disk than its own, each once.
    pub links: Vec<Link>,
    pub pos: Pos,
}

impl Filter {
    /// The priority the filter runs at: `priority` or the default.
    pub fn effective_priority(&self) -> u8 {
        self.priority.unwrap_or(crate::storage::DEFAULT_FILTER_PRIORITY)
    }
}

/// `<param key=".." value=".."/>` in a `<filter>`: a setting the filter
/// reads at start.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// 1 to [`crate::storage::MAX_PARAM_KEY`] bytes.
    pub key: String,
    /// At most [`crate::storage::MAX_PARAM_VALUE`] bytes (may be empty).
    pub value: String,
    pub pos: Pos,
}

/// `<link disk=".."/>` in a `<filter>`: a disk into whose chain the filter
/// may redirect a request (the filter server sends it there, at the top of
/// that disk's chain, instead of on down the filter's own). A filter may
/// redirect only along its declared links. Validation refuses links that
/// go round in a circle between disks, and a link into a disk whose block
/// client is direct (the filter server does not drive it).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Index into [`SystemDescription::disks`]; not the filter's own disk.
    pub disk: usize,
    pub pos: Pos,
}

/// Extension, `<block_client disk=".." .../>` in a protection domain: the
/// PD reads and writes a disk (or one of its partitions) through a queue
/// region and a data region.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockClient {
    /// Index into [`SystemDescription::disks`].
    pub disk: usize,
    /// `at=".."`: the filter of its disk's chain the client attaches at,
    /// as an index into that disk's [`Disk::filters`] (its position in the
    /// chain, 0 = nearest the clients). Its requests enter the chain there:
    /// that filter and those below it see them, the ones above never do.
    /// `None`: the top of the chain (as `Some(0)`, or the disk itself when
    /// it has no filters). Never with `partition` or `direct`.
    pub at: Option<usize>,
    /// MBR primary partition 1..=[`MAX_PARTITION`]; `None` = the whole disk.
    pub partition: Option<u8>,
    /// Bytes of the data region; a non-zero multiple of the page size.
    pub data_size: u64,
    /// Ring entries of the queue region; a power of two from 1 to
    /// [`MAX_QUEUE_CAPACITY`].
    pub queue_capacity: u32,
    /// Talk to the driver directly, bypassing the filter server
    /// (benchmarks only): then the client is its disk's only client and
    /// has no partition.
    pub direct: bool,
    /// `read_only="true"`: the server refuses the client's writes (its
    /// storage info says read-only); reads and flushes pass. Never with
    /// `direct`.
    pub read_only: bool,
    pub pos: Pos,
}

impl BlockClient {
    /// Where its requests enter its disk's chain: the position of the
    /// filter it attaches at, 0 (the top) without `at`.
    pub fn entry(&self) -> usize {
        self.at.unwrap_or(0)
    }
}

/// Extension, `<chain name="..">` in a protection domain: a trust
/// declaration for the verifier. The PD passes what enters at the first
/// stage on to the last stage only through the `vias`, in order: from
/// `stages[i]` through `vias[i]` to `stages[i + 1]`. What enters at a
/// later stage (a block client attached at a filter) passes only the vias
/// below it. A link adds a way: what has passed its via may also pass,
/// both ways, between the stage just below that via and the first stage
/// of the linked chain (a request a filter redirects into another disk's
/// chain, and its answer).
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    /// Unique among the PD's chains.
    pub name: String,
    /// `vias.len() + 1` of them: at least two, or one for a chain without
    /// vias, which another chain of the PD must link to.
    pub stages: Vec<Stage>,
    /// At least one, unless another chain of the PD links to this one.
    pub vias: Vec<Via>,
    /// `<link via=".." chain=".."/>` children, in document order.
    pub links: Vec<ChainLink>,
    pub pos: Pos,
}

/// `<link via=".." chain=".."/>` of a chain: what passes the via `via`
/// may flow between the stage just below it (`stages[via + 1]`) and the
/// first stage of the chain `chain`, both ways.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainLink {
    /// Index into the chain's [`Chain::vias`] (`via` names the via's
    /// protection domain, which is one via of the chain only).
    pub via: usize,
    /// The name of another chain of the same protection domain.
    pub chain: String,
    pub pos: Pos,
}

/// A `<stage>` of a chain: the regions and channels through which data
/// enters or leaves the PD at that point of the chain. A region or channel
/// id is in at most one stage of all the PD's chains.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// `<region mr=".."/>` children, in document order.
    pub regions: Vec<StageRegion>,
    /// `<channel id=".."/>` children, in document order.
    pub channels: Vec<StageChannel>,
    pub pos: Pos,
}

/// A memory region of a stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRegion {
    /// Name of an existing memory region.
    pub mr: String,
    pub pos: Pos,
}

/// A channel of a stage: the id of one of the PD's channel ends.
#[derive(Clone, Debug, PartialEq)]
pub struct StageChannel {
    pub id: u8,
    pub pos: Pos,
}

/// `<via pd=".." channel=".." mr=".."/>` of a chain: the protection domain
/// between two stages, and how the chain's PD calls it.
#[derive(Clone, Debug, PartialEq)]
pub struct Via {
    /// Index into [`SystemDescription::protection_domains`]; not the
    /// chain's own PD.
    pub pd: usize,
    /// The chain PD's id of a channel to `pd` on which the chain PD makes
    /// PPCs (its end has `pp="true"`).
    pub channel: u8,
    /// The region the call passes through (the filter's upcall region),
    /// if any; it exists.
    pub mr: Option<String>,
    pub pos: Pos,
}

/// `<device name=".." owner="..">`: a piece of hardware (its MMIO and DMA
/// regions and its interrupts) and the protection domains allowed to use it.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub name: String,
    /// Indices into [`SystemDescription::protection_domains`], in the order
    /// `owner` lists them; at least one, no repeats.
    pub owners: Vec<usize>,
    /// `<region mr=".."/>` children.
    pub regions: Vec<DeviceRegion>,
    /// `<interrupt irq=".."/>` children.
    pub irqs: Vec<DeviceIrq>,
    pub pos: Pos,
}

/// A memory region that belongs to a device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRegion {
    /// Name of the memory region.
    pub mr: String,
    pub pos: Pos,
}

/// An interrupt that a device raises.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceIrq {
    /// GIC interrupt id (an SPI), as in [`Irq::irq`].
    pub irq: u32,
    pub pos: Pos,
}

/// `<policy name=".." kind="..">`: an information-flow property the
/// verifier checks.
///
/// `P` is how the policy refers to a protection domain: an index into
/// [`SystemDescription::protection_domains`] (the default), or a
/// [`PdName`] in a [`PendingPolicy`].
#[derive(Clone, Debug, PartialEq)]
pub struct Policy<P = usize> {
    pub name: String,
    pub rule: PolicyRule<P>,
    pub pos: Pos,
}

impl<P> Policy<P> {
    /// The same policy with each protection domain reference `p` replaced
    /// by `f(p)`, or `None` if `f` gives `None` for any of them. `f` sees
    /// every reference, in document order (so it can report each unknown
    /// one).
    pub fn map_pds<Q>(&self, mut f: impl FnMut(&P) -> Option<Q>) -> Option<Policy<Q>> {
        let rule = match &self.rule {
            PolicyRule::NoFlow { from, to } => {
                let from = map_endpoints(from, &mut f);
                let to = map_endpoints(to, &mut f);
                PolicyRule::NoFlow { from: from?, to: to? }
            }
            PolicyRule::Mediated { from, to, via } => {
                let from = map_endpoints(from, &mut f);
                let to = map_endpoints(to, &mut f);
                let via: Vec<Option<Q>> = via.iter().map(&mut f).collect();
                let via = via.into_iter().collect::<Option<Vec<Q>>>();
                PolicyRule::Mediated { from: from?, to: to?, via: via? }
            }
            PolicyRule::Isolated { pd, allow } => {
                let pd = f(pd);
                let allow: Vec<Option<Allow<Q>>> =
                    allow.iter().map(|a| Some(Allow { pd: f(&a.pd)?, pos: a.pos })).collect();
                let allow = allow.into_iter().collect::<Option<Vec<_>>>();
                PolicyRule::Isolated { pd: pd?, allow: allow? }
            }
        };
        Some(Policy { name: self.name.clone(), rule, pos: self.pos })
    }

    /// The `<from>` and `<to>` of a no-flow or mediated policy (empty for
    /// an isolated one).
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint<P>> {
        let (from, to) = match &self.rule {
            PolicyRule::NoFlow { from, to } | PolicyRule::Mediated { from, to, .. } => {
                (from.as_slice(), to.as_slice())
            }
            PolicyRule::Isolated { .. } => (&[][..], &[][..]),
        };
        from.iter().chain(to)
    }

    /// Set every position to `Pos::default()`; `clear_pd` does it for a
    /// protection domain reference.
    fn clear_positions(&mut self, mut clear_pd: impl FnMut(&mut P)) {
        let zero = Pos::default();
        self.pos = zero;
        match &mut self.rule {
            PolicyRule::NoFlow { from, to } | PolicyRule::Mediated { from, to, .. } => {
                for e in from.iter_mut().chain(to.iter_mut()) {
                    e.pos = zero;
                    if let Entity::Pd(pd) = &mut e.entity {
                        clear_pd(pd);
                    }
                }
            }
            PolicyRule::Isolated { .. } => {}
        }
        match &mut self.rule {
            PolicyRule::Mediated { via, .. } => via.iter_mut().for_each(&mut clear_pd),
            PolicyRule::Isolated { pd, allow } => {
                clear_pd(pd);
                for a in allow {
                    a.pos = zero;
                    clear_pd(&mut a.pd);
                }
            }
            PolicyRule::NoFlow { .. } => {}
        }
    }
}

fn map_endpoints<P, Q>(
    endpoints: &[Endpoint<P>],
    f: &mut impl FnMut(&P) -> Option<Q>,
) -> Option<Vec<Endpoint<Q>>> {
    let mapped: Vec<Option<Endpoint<Q>>> = endpoints
        .iter()
        .map(|e| {
            let entity = match &e.entity {
                Entity::Pd(pd) => Entity::Pd(f(pd)?),
                Entity::Region(name) => Entity::Region(name.clone()),
                Entity::Device(name) => Entity::Device(name.clone()),
            };
            Some(Endpoint { entity, pos: e.pos })
        })
        .collect();
    mapped.into_iter().collect()
}

/// A policy of [`SystemDescription::all_policies`]: resolved or pending.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnyPolicy<'a> {
    Resolved(&'a Policy),
    Pending(&'a PendingPolicy),
}

impl AnyPolicy<'_> {
    pub fn name(&self) -> &str {
        match self {
            AnyPolicy::Resolved(policy) => &policy.name,
            AnyPolicy::Pending(pending) => &pending.policy.name,
        }
    }
}

/// What a policy requires.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyRule<P = usize> {
    /// `kind="no-flow"`: no information flows from any source to any target.
    NoFlow { from: Vec<Endpoint<P>>, to: Vec<Endpoint<P>> },
    /// `kind="mediated" via=".."`: every flow from a source to a target
    /// passes through at least one of the `via` protection domains
    /// (none of them is a source or a target).
    Mediated { from: Vec<Endpoint<P>>, to: Vec<Endpoint<P>>, via: Vec<P> },
    /// `kind="isolated" pd=".."`: the protection domain shares no channel,
    /// no parent/child link and no memory region that either side maps
    /// writable with any protection domain other than those in `allow`.
    Isolated { pd: P, allow: Vec<Allow<P>> },
}

impl<P> PolicyRule<P> {
    /// The `kind` attribute's value.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyRule::NoFlow { .. } => "no-flow",
            PolicyRule::Mediated { .. } => "mediated",
            PolicyRule::Isolated { .. } => "isolated",
        }
    }
}

/// A `<from>` or `<to>` of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint<P = usize> {
    pub entity: Entity<P>,
    pub pos: Pos,
}

/// What a policy's `<from>` or `<to>` names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entity<P = usize> {
    /// `pd=".."`: a protection domain (an index into
    /// [`SystemDescription::protection_domains`] in a resolved policy).
    Pd(P),
    /// `region=".."`: name of a memory region.
    Region(String),
    /// `device=".."`: name of a device.
    Device(String),
}

/// An `<allow pd=".."/>` of an isolated policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Allow<P = usize> {
    /// The protection domain (an index into
    /// [`SystemDescription::protection_domains`] in a resolved policy).
    pub pd: P,
    pub pos: Pos,
}

/// A protection domain as a pending policy names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PdName {
    pub name: String,
    /// The attribute that holds the name (`pd`, `via`).
    pub pos: Pos,
}

/// A policy that names something the storage expansion generates, by name,
/// until the expansion resolves it (see
/// [`SystemDescription::pending_policies`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPolicy {
    /// Its place among all the policies of the description, in document
    /// order: resolved, it becomes `policies[index]`.
    pub index: usize,
    pub policy: Policy<PdName>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_letters_parse_in_any_order() {
        assert_eq!(Perms::parse("wr"), Ok(Perms::READ_WRITE));
        assert_eq!(Perms::parse("xr"), Ok(Perms::READ_EXECUTE));
        assert_eq!(Perms::parse("r"), Ok(Perms::READ));
    }

    #[test]
    fn write_only_perms_are_rejected() {
        assert_eq!(Perms::parse("w"), Err(PermsError::NotReadable));
    }

    #[test]
    fn execute_only_and_empty_perms_are_rejected() {
        assert_eq!(Perms::parse("x"), Err(PermsError::NotReadable));
        assert_eq!(Perms::parse(""), Err(PermsError::NotReadable));
    }

    #[test]
    fn writable_executable_perms_parse_and_are_left_to_validation() {
        let rwx = Perms { read: true, write: true, execute: true };
        assert_eq!(Perms::parse("rwx"), Ok(rwx));
        assert_eq!(Perms::parse("xwr"), Ok(rwx));
    }

    #[test]
    fn repeated_and_unknown_perm_letters_are_rejected() {
        assert_eq!(Perms::parse("rr"), Err(PermsError::RepeatedLetter('r')));
        assert_eq!(Perms::parse("rq"), Err(PermsError::UnknownLetter('q')));
        assert_eq!(Perms::parse("R"), Err(PermsError::UnknownLetter('R')));
    }

    #[test]
    fn perms_display_in_rwx_order() {
        assert_eq!(Perms::parse("wr").unwrap().to_string(), "rw");
        assert_eq!(Perms::READ_EXECUTE.to_string(), "rx");
    }

    #[test]
    fn ppc_caller_is_the_end_with_pp() {
        let end = |pd, pp| ChannelEnd { pd, id: 0, pp, notify: true, pos: Pos::default() };
        let ch =
            Channel { ends: [end(0, false), end(1, true)], lends: vec![], pos: Pos::default() };
        let (caller, callee) = ch.ppc_caller_callee().unwrap();
        assert_eq!((caller.pd, callee.pd), (1, 0));
        let plain =
            Channel { ends: [end(0, false), end(1, false)], lends: vec![], pos: Pos::default() };
        assert!(plain.ppc_caller_callee().is_none());
    }

    #[test]
    fn map_range_detects_wrap_around() {
        let mr = MemoryRegion {
            name: "m".into(),
            size: 0x2000,
            page_size: 0x1000,
            phys_addr: None,
            pos: Pos::default(),
        };
        let map = |vaddr| Map {
            mr: "m".into(),
            vaddr,
            perms: Perms::READ,
            cached: true,
            setvar_vaddr: None,
            pos: Pos::default(),
        };
        assert_eq!(map(0x1000).range(&mr), Some(0x1000..0x3000));
        assert_eq!(map(u64::MAX - 0xfff).range(&mr), None);
    }
}
