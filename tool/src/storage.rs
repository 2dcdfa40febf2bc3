//! The storage expansion: `<disk>` and `<block_client>` declarations turned
//! into plain SDF, the virtio-blk driver and filter server PDs, every
//! region, map, channel, interrupt and device they need, and the
//! configuration record (`blk::config`) patched into each storage PD.
//!
//! # What a declaration becomes
//!
//! With `D` disks (index `d`, declaration order) and block clients (PDs
//! with a `<block_client>`, document order), of which the clients that go
//! through the filter server are numbered `c` = 0, 1, ... (direct clients
//! are not numbered):
//!
//! | generated | what | where it is mapped (all `rw`) |
//! |---|---|---|
//! | PD `blk_driver` | `program_image` `virtio_blk`, priority 250 | |
//! | PD `blk_server` | `program_image` `blk_server`, priority 240; only if some client is not direct | |
//! | `virtio_mmio_<page>` | each distinct 4 KiB page of virtio registers (`phys_addr` = page), and a `<device>` of the same name owned by `blk_driver` claiming it and its disks' interrupts | driver, uncached, `0x30_0000_0000 + k * 0x1000` (k-th page) |
//! | `blk_<disk>_dma` | 0x4000 bytes, fixed `phys_addr` | driver, `0x31_0000_0000 + d * 0x10_0000` |
//! | `blk_<disk>_driver_queue` | queue of capacity 64, placed by the builder; disks the server drives | driver `0x32_0000_0000 + d * 0x10_0000`, server `0x40_0000_0000 + d * 0x10_0000` |
//! | `blk_<disk>_probe` | 0x1000 bytes, fixed `phys_addr`; disks the server drives | server `0x41_0000_0000 + d * 0x1000` |
//! | `blk_<client>_queue` | queue of the client's `queue_capacity`, placed by the builder | client `0x50_0000_0000`; server `0x42_0000_0000 + c * 0x10_0000`, or for a direct client driver `0x32_0000_0000 + d * 0x10_0000` |
//! | `blk_<client>_data` | `data_size` bytes, fixed `phys_addr` | client `0x51_0000_0000` only |
//!
//! The filter server drives every disk that has no direct client (when
//! there is a server at all). A client's data region is mapped in the
//! client alone: the server and the driver never map it, the device
//! reaches it by physical address (requests carry `data.paddr + offset`).
//! This is why the data, DMA and probe regions have fixed physical
//! addresses, which the expansion allocates itself from
//! [`DMA_WINDOW`] (inside RAM; the builder steps around fixed ranges), page
//! aligned, in order: per disk its DMA region then its probe block, then
//! per client its data region; user regions with a fixed address in the
//! window are stepped around too.
//!
//! Interrupts and channels (ids per PD):
//!
//! - `blk_driver`: `<irq irq="48 + slot" id="d" trigger="edge"/>` per disk;
//!   id `10 + d` to the server (its id `40 + d`) or to the direct client.
//! - `blk_server`: id `c` to client `c`, id `40 + d` to the driver.
//! - a client: the lowest id it does not already use (channels and irqs).
//!
//! Records (`<setvar symbol=".." bytes=".."/>`): `blk_driver_config`
//! ([`blk::config::DriverConfig`]), `blk_server_config`
//! ([`blk::config::ServerConfig`]) and `blk_client_config`
//! ([`blk::config::ClientConfig`]) in each client; see [`expand`] for how
//! each field is filled. Queue records give the region's size (whole
//! pages), not the layout's.
//!
//! Everything generated from a `<disk>` or `<block_client>` carries that
//! element's position, so errors found later (validation of the expanded
//! system, the build) point at the declaration.

use std::ops::Range;

use blk::config::{
    self, ClientConfig, DmaRegion, DmaWindow, DriverConfig, FilterConfig, Param, QueueRegion, ServerClient, ServerConfig,
    ServerFilter, MAX_CLIENTS, MAX_DISKS, MAX_WINDOWS,
};
use blk::QueueLayout;
use sdf::storage::{self as names, DRIVER_PD, SERVER_PD};
use sdf::{
    Chain, ChainLink, Channel, ChannelEnd, Device, DeviceIrq, DeviceRegion, Error, Irq, Lend, Map, MemoryRegion, OnFault, Perms, Pos,
    ProtectionDomain, SetVar, SetVarValue, Stage, StageChannel, StageRegion, SystemDescription, Trigger, Via, MAX_ID,
};
use zerocopy::IntoBytes;

use crate::filters::{self, PlannedFilter, Programs};
use crate::layout::PhysAlloc;

// One limit for a filter's `<link>`s: what reading accepts is what the
// server's table holds.
const _: () = assert!(names::MAX_LINKS == config::MAX_LINKS);

/// Where the expansion places storage DMA memory (physical).
pub const DMA_WINDOW: Range<u64> = 0x5000_0000..0x6000_0000;
/// Priorities of the virtio-blk driver PD and of the filter server PD (one
/// definition, in `sdf::storage`, which also places filters between them).
pub use sdf::storage::{DRIVER_PRIORITY, SERVER_PRIORITY};
/// Program images of the generated PDs.
pub const DRIVER_IMAGE: &str = "virtio_blk";
pub const SERVER_IMAGE: &str = "blk_server";
/// Symbols the records are patched into.
pub const DRIVER_CONFIG_SYMBOL: &str = "blk_driver_config";
pub const SERVER_CONFIG_SYMBOL: &str = "blk_server_config";
pub const CLIENT_CONFIG_SYMBOL: &str = "blk_client_config";

/// Ring entries of the queues between the server and the driver.
pub const DRIVER_QUEUE_CAPACITY: u32 = 64;
/// Bytes of a disk's DMA region (virtqueue and request headers).
pub const DMA_SIZE: u64 = 0x4000;
/// Bytes of a disk's partition-table block.
pub const PROBE_SIZE: u64 = 0x1000;

const PAGE: u64 = 0x1000;

/// Virtual addresses of the generated maps.
pub mod vaddr {
    /// Driver: the k-th register page at `MMIO + k * 0x1000`.
    pub const MMIO: u64 = 0x30_0000_0000;
    /// Driver: disk d's DMA region at `DMA + d * DISK_STRIDE`.
    pub const DMA: u64 = 0x31_0000_0000;
    /// Driver: disk d's queue (from the server or a direct client).
    pub const DRIVER_QUEUE: u64 = 0x32_0000_0000;
    /// Server: disk d's queue to the driver.
    pub const SERVER_DISK_QUEUE: u64 = 0x40_0000_0000;
    /// Server: disk d's probe block at `PROBE + d * 0x1000`.
    pub const PROBE: u64 = 0x41_0000_0000;
    /// Server: client c's queue at `SERVER_CLIENT_QUEUE + c * DISK_STRIDE`.
    pub const SERVER_CLIENT_QUEUE: u64 = 0x42_0000_0000;
    /// Client: its queue.
    pub const CLIENT_QUEUE: u64 = 0x50_0000_0000;
    /// Client: its data region.
    pub const CLIENT_DATA: u64 = 0x51_0000_0000;
    /// Server: filter i's call page at `SERVER_FILTER_CALLS + i * 0x1000`.
    pub const SERVER_FILTER_CALLS: u64 = 0x43_0000_0000;
    /// Filter: its call page.
    pub const FILTER_CALLS: u64 = 0x60_0000_0000;
    /// Filter: its bounce buffer.
    pub const FILTER_BOUNCE: u64 = 0x61_0000_0000;
    /// Between per-disk and per-client maps.
    pub const STRIDE: u64 = 0x10_0000;
}

/// Channel ids of the generated PDs.
pub mod channel {
    /// Driver: the id of disk d's interrupt is `d`; its queue's peer is
    /// `DRIVER_QUEUE + d`.
    pub const DRIVER_QUEUE: u8 = 10;
    /// Server: disk d's driver is `SERVER_DISK + d`; client c is `c`.
    pub const SERVER_DISK: u8 = 40;
    /// Server: filter i (declaration order) is `SERVER_FILTER + i`.
    pub const SERVER_FILTER: u8 = 20;
    /// Filter: its channel from the server.
    pub const FILTER: u8 = 0;
}

/// Microseconds one upcall of a filter may take when its `<filter>` sets no
/// `budget`: every filter has a limit, so a looping filter can never hold
/// the server.
pub const DEFAULT_FILTER_BUDGET_US: u64 = 100_000;
/// Stack of a filter PD.
pub const FILTER_STACK_SIZE: u64 = 0x1_0000;
/// The symbol a filter's record is patched into.
pub const FILTER_CONFIG_SYMBOL: &str = "blk_filter_config";

/// Expand the storage declarations of `sd` into plain SDF.
///
/// Without disks, returns `sd` unchanged. Otherwise returns `sd` with no
/// disks and no block clients, and the PDs, regions, maps, irqs, channels,
/// devices and setvars of the module's table added. The records:
///
/// - `DriverConfig`: `magic` = [`config::MAGIC`], `disk_count`, and per
///   disk d: `mmio_vaddr` = its register page's vaddr + (register address
///   & 0xfff); `dma` = the DMA region (vaddr in the driver, paddr, size);
///   `queue` = its queue (vaddr in the driver, region size, capacity 64 or
///   the direct client's, `channel` = the driver's id to the server or the
///   direct client, `10 + d`); `irq_channel` = d. A disk nobody uses (no
///   server, no direct client) has a zero `queue`. A disk with a direct
///   client has `confined` = 1 and `windows`: the client's data region
///   (the device may write it), then each region the client maps that has
///   a fixed `phys_addr`, in map order (the device may write it if the
///   map is writable); a served disk has `confined` = 0.
/// - `ServerConfig`: `magic`, `disk_count`, `client_count`; `disks[d]`:
///   `queue` (vaddr in the server, size, 64, channel `40 + d`), `probe`
///   (vaddr, paddr, size), `name`; a disk with a direct client has only
///   its name (zero queue and probe). `clients[c]`: `queue` (vaddr in the
///   server, size, capacity, channel c), `data` (vaddr 0: not mapped in
///   the server; paddr; size), `disk` = d, `partition` (0 = whole disk),
///   `name` = the client PD's name, `entry` = the position in its disk's
///   chain of the filter it attaches at (`at`; 0 = the top).
/// - `ClientConfig`: `magic`, `direct` (0 or 1), `queue` (vaddr
///   `0x50_0000_0000`, size, capacity, channel = the client's id), `data`
///   (vaddr `0x51_0000_0000`, paddr, size), `disk` = the disk's name.
///
/// Policies that name generated PDs, regions or devices (the pending
/// policies of `sd`, see [`SystemDescription::pending_policies`]) are
/// resolved against the result and take their places among the other
/// policies; a name the expansion did not generate is an error at the
/// policy member that uses it.
///
/// Errors (at the `<disk>` or `<block_client>`): more than
/// [`MAX_DISKS`] disks or [`MAX_CLIENTS`] clients of the server, the DMA
/// window exhausted, no free channel id in a client, a direct client that
/// maps [`MAX_WINDOWS`] or more regions with a fixed `phys_addr`, and, for a model
/// that skipped validation ([`sdf::read`]), a direct client that is not
/// its disk's only client, a client's `at` that is past its disk's
/// filters or on a direct client, and a filter's `<link>` (at the link)
/// to no declared disk, to a disk whose client is direct, or past
/// [`config::MAX_LINKS`]. The result is not validated: use
/// [`expand_validated`] for that.
pub fn expand(sd: &SystemDescription) -> Result<SystemDescription, Vec<Error>> {
    expand_with(sd, &Programs::for_system(sd, &[]))
}

/// [`expand`], reading filter manifests from `programs`.
pub fn expand_with(sd: &SystemDescription, programs: &Programs) -> Result<SystemDescription, Vec<Error>> {
    if sd.disks.is_empty() {
        let mut out = sd.clone();
        sdf::resolve_pending_policies(&mut out)?;
        return Ok(out);
    }
    let mut errors = Errors { file: &sd.file, list: Vec::new() };
    let plan = Plan::new(sd, programs, &mut errors);
    errors.finish()?;
    let placed = place(sd, &plan, &mut errors);
    errors.finish()?;
    let channel_ids = client_channel_ids(sd, &plan, &mut errors);
    errors.finish()?;
    let mut out = Expansion { sd, plan: &plan, placed: &placed, channel_ids: &channel_ids }.build();
    sdf::resolve_pending_policies(&mut out)?;
    Ok(out)
}

/// [`expand`], then check the validation rules on the result (maps that
/// collide with the generated ones, too many PDs, ...).
pub fn expand_validated(sd: &SystemDescription) -> Result<SystemDescription, Vec<Error>> {
    expand_validated_with(sd, &Programs::for_system(sd, &[]))
}

/// [`expand_validated`], reading filter manifests from `programs`.
pub fn expand_validated_with(sd: &SystemDescription, programs: &Programs) -> Result<SystemDescription, Vec<Error>> {
    let expanded = expand_with(sd, programs)?;
    sdf::validate(&expanded)?;
    Ok(expanded)
}

/// Below this a filter's `budget` is warned of.
pub const SHORT_BUDGET_US: u64 = 1000;

/// Declarations that build and run but most likely do not do what their
/// writer meant, as positioned messages (printed as warnings): a client
/// that may write, attached below a filter that caches (its manifest says
/// `caches=yes`), whose writes that filter never sees, so it would go on
/// answering the blocks they change with their old data; a filter budget
/// shorter than an upcall of a batch takes ([`SHORT_BUDGET_US`]).
pub fn warnings(sd: &SystemDescription, programs: &Programs) -> Vec<Error> {
    let mut out = Errors { file: &sd.file, list: Vec::new() };
    // A program that is nowhere to be found, while the search path holds
    // built programs: most likely a misspelt name, which only `build`
    // would otherwise stop at. (Only then, and PDs' programs only in a
    // system with storage, which this project's programs serve: a plain
    // system is checked and verified without its programs.)
    let built = programs.search_path.iter().any(|dir| dir.join("blk_server").is_file());
    if built {
        let missing = |name: &str| crate::image::find_program(name, &programs.base, &programs.search_path).is_none();
        let dirs = programs.search_path.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        let message = |program: &str, of: String| {
            format!("program '{program}' of {of} is not next to the system file or in {dirs}: check its name (building the image needs it)")
        };
        let storage = !sd.disks.is_empty();
        for pd in sd.protection_domains.iter().filter(|pd| storage && missing(&pd.program_image)) {
            out.at(pd.program_image_pos, message(&pd.program_image, format!("protection domain '{}'", pd.name)));
        }
        for f in sd.disks.iter().flat_map(|d| &d.filters).filter(|f| missing(&f.program)) {
            out.at(f.pos, message(&f.program, format!("filter '{}'", f.name)));
        }
    }
    // Each filter program's manifest, read once (a file read and an ELF
    // parse each; the checks below ask for them per filter and client).
    let manifests: std::collections::HashMap<&str, Option<filters::Declared>> =
        sd.disks.iter().flat_map(|d| &d.filters).map(|f| (f.program.as_str(), programs.manifest(&f.program).ok().flatten())).collect();
    let manifest = |f: &sdf::Filter| manifests.get(f.program.as_str()).and_then(Option::as_ref);
    for f in sd.disks.iter().flat_map(|d| &d.filters) {
        let takes_none = manifest(f).is_some_and(|m| m.links == Some(0));
        if let Some(link) = f.links.first().filter(|_| takes_none) {
            out.at(
                link.pos,
                format!(
                    "filter '{}' (program '{}') never redirects a request: its <link> grants nothing it uses, \
                     but the verifier must assume the flow; remove it",
                    f.name, f.program
                ),
            );
        }
        if let Some(budget) = f.budget.filter(|&b| b < SHORT_BUDGET_US) {
            out.at(
                f.pos,
                format!(
                    "filter '{}' may take {budget} us an upcall: one upcall carries up to 64 requests (encrypting \
                     a batch of 4 KiB writes takes hundreds of us), so the kernel would stop it on most calls; \
                     give it {SHORT_BUDGET_US} or more (the default is 100000)",
                    f.name
                ),
            );
        }
    }
    for (_, pd, client) in sd.block_clients().filter(|(_, _, c)| !c.read_only && !c.direct) {
        let Some(disk) = sd.disks.get(client.disk) else { continue };
        let (Some(above), Some(at)) = (disk.filters.get(..client.entry()), disk.filters.get(client.entry())) else { continue };
        let at = &at.name;
        for f in above {
            let Some(m) = manifest(f) else { continue };
            let name = &f.name;
            if m.caches {
                out.at(
                    client.pos,
                    format!(
                        "block_client of protection domain '{}' attaches at '{at}', below '{name}', which caches blocks \
                         of disk '{}': '{name}' never sees this client's writes and would go on answering the blocks \
                         they change with the old data; declare the client read_only=\"true\" or attach it at or \
                         above '{name}'",
                        pd.name, disk.name
                    ),
                );
            }
            if let Some(keeps) = &m.keeps {
                out.at(
                    client.pos,
                    format!(
                        "block_client of protection domain '{}' attaches at '{at}', below '{name}', which {keeps} \
                         (disk '{}'): this client's writes go around '{name}' and may break that; declare the \
                         client read_only=\"true\" or attach it at or above '{name}'",
                        pd.name, disk.name
                    ),
                );
            }
        }
    }
    linked_disk_writers(sd, &manifest, &mut out);
    out.list
}

/// The most blocks of request data one upcall to a filter may carry: its
/// budget over what a block costs it (0: it did not say, no limit).
pub fn max_blocks(budget_us: u64, block_us: u64) -> u32 {
    match block_us {
        0 => 0,
        cost => u32::try_from((budget_us / cost).max(1)).unwrap_or(u32::MAX),
    }
}

/// Warnings for other writers of a disk a filter reads or writes through
/// its `<link>` (its manifest's `linked`): a client writing a clone's base
/// changes what the clone reads; one writing a mirror's secondary, or a
/// second filter writing it, makes the mirror's copies differ.
fn linked_disk_writers<'m>(sd: &SystemDescription, manifest: &dyn Fn(&sdf::Filter) -> Option<&'m filters::Declared>, out: &mut Errors<'_>) {
    // (disk, filter, its disk, whether it writes the linked disk, where its <link> is)
    let mut links = Vec::new();
    for disk in &sd.disks {
        for f in &disk.filters {
            let Some(linked) = manifest(f).and_then(|m| m.linked) else { continue };
            let writes = linked == sdf::DataAccess::ReadWrite;
            for link in &f.links {
                links.push((link.disk, f, &disk.name, writes, link.pos));
            }
        }
    }
    let what = |f: &sdf::Filter, of: &str, writes: bool| {
        if writes {
            format!("which '{}' of disk '{of}' keeps alike with '{of}' through its <link>: a write there reaches one copy only, and the two differ", f.name)
        } else {
            format!("which '{}' of disk '{of}' reads through its <link> as its base: a write there changes what '{of}' reads", f.name)
        }
    };
    for &(target, f, of, writes, _) in &links {
        let Some(disk) = sd.disks.get(target) else { continue };
        for (_, pd, client) in sd.block_clients().filter(|(_, _, c)| c.disk == target && !c.read_only) {
            out.at(
                client.pos,
                format!(
                    "block_client of protection domain '{}' writes disk '{}', {}; declare the client read_only=\"true\" \
                     or give it a disk of its own",
                    pd.name,
                    disk.name,
                    what(f, of, writes)
                ),
            );
        }
    }
    // Two filters linking one disk, one of them writing it (two mirrors on
    // one secondary; a mirror writing a clone's base).
    for (i, &(target, f, of, writes, pos)) in links.iter().enumerate() {
        // (The first earlier filter on that disk that this pair has a
        // writer in: a reader after two readers and a writer is told of
        // the writer.)
        let Some(&(_, other, other_of, other_writes, _)) =
            links[..i].iter().find(|l| l.0 == target && !std::ptr::eq(l.1, f) && (writes || l.3))
        else {
            continue;
        };
        let disk = sd.disks.get(target).map_or("", |d| d.name.as_str());
        let (writer, reader) = if writes { (f, other) } else { (other, f) };
        let effect = if writes && other_writes {
            "each would change what the other keeps there".to_string()
        } else {
            format!("'{}' would change what '{}' reads there as its base", writer.name, reader.name)
        };
        out.at(
            pos,
            format!(
                "disk '{disk}' is linked by '{}' (disk '{other_of}') and by '{}' (disk '{of}'), and '{}' writes it: {effect}; \
                 link each to a disk of its own",
                other.name, f.name, writer.name
            ),
        );
    }
}

struct Errors<'a> {
    file: &'a str,
    list: Vec<Error>,
}

impl Errors<'_> {
    fn at(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(Error { file: self.file.to_string(), line: pos.line, col: pos.col, message: message.into() });
    }

    /// `Err` with the errors so far, sorted by position, if there are any.
    fn finish(&mut self) -> Result<(), Vec<Error>> {
        if self.list.is_empty() {
            return Ok(());
        }
        let mut list = std::mem::take(&mut self.list);
        list.sort_by_key(Error::pos);
        Err(list)
    }
}

/// One block client.
struct Client {
    /// Index of its PD.
    pd: usize,
    name: String,
    disk: usize,
    /// The position in its disk's chain of the filter it attaches at
    /// (`at`): its requests enter the chain there. 0: the top.
    entry: usize,
    /// `read_only`: the server refuses its writes.
    read_only: bool,
    partition: Option<u8>,
    data_size: u64,
    capacity: u32,
    /// Its number among the server's clients; `None` for a direct client.
    server_index: Option<usize>,
    pos: Pos,
}

/// Who uses what, before anything is placed.
struct Plan {
    clients: Vec<Client>,
    /// Per disk: whether the server drives it.
    served: Vec<bool>,
    /// Per disk: its direct client (index into `clients`).
    direct: Vec<Option<usize>>,
    /// Distinct register pages in order of first use, with the first
    /// disk in each.
    pages: Vec<(u64, Pos)>,
    server: Option<Pos>,
    /// Every filter, in declaration order.
    filters: Vec<PlannedFilter>,
    /// Per disk: what a request redirected into it (at the top of its
    /// chain) may carry as its data, see [`Reach`].
    incoming: Vec<Reach>,
}

/// Buffers a request's data may be in: client data regions (by index into
/// [`Plan::clients`]) and filter bounce buffers (by filter index).
#[derive(Clone, Debug)]
struct Reach {
    clients: Vec<bool>,
    bounces: Vec<bool>,
}

impl Reach {
    fn new(clients: usize, filters: usize) -> Reach {
        Reach { clients: vec![false; clients], bounces: vec![false; filters] }
    }

    /// Add what `other` holds; whether that added anything.
    fn add(&mut self, other: &Reach) -> bool {
        let mut grew = false;
        for (mine, theirs) in [(&mut self.clients, &other.clients), (&mut self.bounces, &other.bounces)] {
            for (m, &t) in mine.iter_mut().zip(theirs) {
                grew |= t && !*m;
                *m |= t;
            }
        }
        grew
    }
}

impl Plan {
    /// The data a request may carry when it reaches the filter at
    /// `position` of disk `disk`: the data regions of the disk's clients
    /// of the server that enter at or above it, the bounce buffers of the
    /// disk's filters above it, and what requests redirected into the disk
    /// carry (`incoming`, per disk).
    fn reach(&self, incoming: &[Reach], disk: usize, position: usize) -> Reach {
        let mut reach = incoming.get(disk).cloned().unwrap_or_else(|| Reach::new(self.clients.len(), self.filters.len()));
        for (c, client) in self.clients.iter().enumerate() {
            if client.disk == disk && client.entry <= position && client.server_index.is_some() {
                reach.clients[c] = true;
            }
        }
        for f in self.filters.iter().filter(|f| f.disk == disk && f.position < position) {
            if f.declared.bounce > 0 {
                reach.bounces[f.index] = true;
            }
        }
        reach
    }

    /// [`Plan::incoming`]: per disk, what the filters that link to it may
    /// redirect into it, each what reaches it ([`Plan::reach`]: a filter
    /// redirects a request as it stands at the filter, never its own
    /// substitute); to a fixpoint, as a request redirected into a disk may
    /// be redirected on.
    fn find_incoming(&self, disks: usize) -> Vec<Reach> {
        let mut incoming = vec![Reach::new(self.clients.len(), self.filters.len()); disks];
        loop {
            let mut grew = false;
            for f in &self.filters {
                let carried = self.reach(&incoming, f.disk, f.position);
                for link in f.decl.links.iter().filter(|l| l.disk < disks) {
                    grew |= incoming[link.disk].add(&carried);
                }
            }
            if !grew {
                return incoming;
            }
        }
    }

    fn new(sd: &SystemDescription, programs: &Programs, errors: &mut Errors) -> Plan {
        if let Some(extra) = sd.disks.get(MAX_DISKS) {
            errors.at(
                extra.pos,
                format!("too many disks: {} declared, at most {MAX_DISKS} are supported", sd.disks.len()),
            );
        }
        let mut clients = Vec::new();
        let mut server_clients = 0;
        for (pd, decl, client) in sd.block_clients() {
            if client.disk >= sd.disks.len() {
                errors.at(client.pos, format!("block_client of protection domain '{}' names no declared disk", decl.name));
                continue;
            }
            let server_index = (!client.direct).then(|| {
                server_clients += 1;
                server_clients - 1
            });
            if server_index == Some(MAX_CLIENTS) {
                errors.at(
                    client.pos,
                    format!(
                        "too many block clients of the filter server: '{}' is number {}, at most \
                         {MAX_CLIENTS} are supported",
                        decl.name,
                        MAX_CLIENTS + 1
                    ),
                );
            }
            // Reading refuses these; a model built by hand may hold them.
            if let Some(at) = client.at {
                let disk = &sd.disks[client.disk];
                if at >= disk.filters.len() {
                    errors.at(
                        client.pos,
                        format!(
                            "block_client of protection domain '{}' attaches at filter number {} of disk '{}', which \
                             has {} filters",
                            decl.name,
                            at + 1,
                            disk.name,
                            disk.filters.len()
                        ),
                    );
                } else if client.direct {
                    errors.at(
                        client.pos,
                        format!(
                            "block_client of protection domain '{}' is direct and attaches at filter '{}': a direct \
                             client bypasses every filter, drop 'at' or 'direct'",
                            decl.name, disk.filters[at].name
                        ),
                    );
                }
            }
            clients.push(Client {
                pd,
                name: decl.name.clone(),
                disk: client.disk,
                entry: client.entry(),
                read_only: client.read_only,
                partition: client.partition,
                data_size: client.data_size,
                capacity: client.queue_capacity,
                server_index,
                pos: client.pos,
            });
        }
        let server = clients.iter().find(|c| c.server_index.is_some()).map(|c| c.pos);
        let mut direct = vec![None; sd.disks.len()];
        for (i, client) in clients.iter().enumerate().filter(|(_, c)| c.server_index.is_none()) {
            direct[client.disk] = Some(i);
        }
        // Validation refuses this; a model from `sdf::read` may still hold it.
        for (d, disk) in sd.disks.iter().enumerate() {
            let Some(alone) = direct[d] else { continue };
            if let Some(other) = clients.iter().enumerate().find(|&(i, c)| c.disk == d && i != alone) {
                errors.at(
                    other.1.pos,
                    format!(
                        "disk '{}' has a direct client '{}' and another client '{}': a disk with a direct \
                         client may have no other client",
                        disk.name, clients[alone].name, other.1.name
                    ),
                );
            }
        }
        for client in clients.iter().filter(|c| c.server_index.is_none()) {
            let fixed = fixed_maps(sd, client.pd).count();
            if fixed >= MAX_WINDOWS {
                errors.at(
                    client.pos,
                    format!(
                        "direct block_client of protection domain '{}': it maps {fixed} regions with a fixed \
                         phys_addr, and the driver confines its requests to its data region and at most {} \
                         of those; map fewer",
                        client.name,
                        MAX_WINDOWS - 1
                    ),
                );
            }
        }
        let served: Vec<bool> = direct.iter().map(|d| server.is_some() && d.is_none()).collect();
        let filters = filters::plan(&sd.disks, programs, |pos, message| errors.at(pos, message));
        if let Some(extra) = filters.get(config::MAX_FILTERS) {
            errors.at(extra.decl.pos, format!("too many filters: {} declared, at most {} are supported", filters.len(), config::MAX_FILTERS));
        }
        for f in &filters {
            let disk = &sd.disks[f.disk];
            if f.position >= config::MAX_CHAIN {
                errors.at(f.decl.pos, format!("disk '{}' has more than {} filters in its chain: at most {} are supported", disk.name, config::MAX_CHAIN, config::MAX_CHAIN));
            }
            if !served[f.disk] {
                let why = if direct[f.disk].is_some() { "its block client is direct, and a direct client bypasses the filter server" } else { "no block client goes through the filter server" };
                errors.at(f.decl.pos, format!("filter '{}' of disk '{}' would never see a request: {why}", f.decl.name, disk.name));
            }
            // The server reads a partition table from the device itself,
            // which such a filter's window (a header, encrypted data)
            // would make wrong.
            if f.declared.hooks & blk::filter::SETUP_HOOK != 0 {
                if let Some(c) = clients.iter().find(|c| c.disk == f.disk && c.partition.is_some_and(|p| p != 0)) {
                    errors.at(
                        c.pos,
                        format!(
                            "block_client '{}' names a partition of disk '{}', whose filter '{}' ({}) offers its clients a window of the disk: attach it to the whole disk",
                            c.name, disk.name, f.decl.name, f.decl.program
                        ),
                    );
                }
            }
        }
        let mut pages: Vec<(u64, Pos)> = Vec::new();
        for disk in &sd.disks {
            let page = names::virtio_page(disk.virtio_slot);
            if !pages.iter().any(|(p, _)| *p == page) {
                pages.push((page, disk.pos));
            }
        }
        for f in &filters {
            let disk = &sd.disks[f.disk];
            for (k, link) in f.decl.links.iter().enumerate() {
                let Some(target) = sd.disks.get(link.disk) else {
                    errors.at(link.pos, format!("filter '{}' links to disk number {}, which is not declared", f.decl.name, link.disk + 1));
                    continue;
                };
                if k == config::MAX_LINKS {
                    errors.at(
                        link.pos,
                        format!("filter '{}' has more than {} links: at most {} are supported, drop some", f.decl.name, config::MAX_LINKS, config::MAX_LINKS),
                    );
                }
                if let Some(c) = direct[link.disk] {
                    let client = &clients[c];
                    errors.at(link.pos, names::direct_link_message(disk, &f.decl, target, &client.name, client.pos.line));
                }
            }
        }
        let mut plan = Plan { clients, served, direct, pages, server, filters, incoming: Vec::new() };
        plan.incoming = plan.find_incoming(sd.disks.len());
        plan
    }

    fn page_index(&self, slot: u32) -> usize {
        let page = names::virtio_page(slot);
        self.pages.iter().position(|(p, _)| *p == page).unwrap_or(0)
    }
}

/// The regions PD `pd` maps that have a fixed physical address, as the
/// windows its device requests may name if it is a direct client: the
/// device may fill one only if the PD may write it.
fn fixed_maps(sd: &SystemDescription, pd: usize) -> impl Iterator<Item = DmaWindow> + '_ {
    sd.protection_domains[pd].maps.iter().filter_map(|m| {
        let mr = sd.memory_region(&m.mr)?;
        let paddr = mr.phys_addr?;
        Some(DmaWindow { paddr, size: mr.size, device_writes: u32::from(m.perms.write), _reserved: 0 })
    })
}

/// Fixed physical addresses: per disk (DMA, probe if served), per client
/// (data).
struct Placed {
    dma: Vec<u64>,
    probe: Vec<Option<u64>>,
    data: Vec<u64>,
    /// Per filter: its bounce buffer, if it has one.
    bounce: Vec<Option<u64>>,
}

fn place(sd: &SystemDescription, plan: &Plan, errors: &mut Errors) -> Placed {
    let mut window = PhysAlloc::new(DMA_WINDOW.start, DMA_WINDOW.end);
    for r in sd.memory_regions.iter().filter_map(|mr| mr.phys_range()) {
        window.reserve(r);
    }
    let mut alloc = |size: u64, what: String, pos: Pos, errors: &mut Errors| match window.alloc(size, PAGE) {
        Some(paddr) => paddr,
        None => {
            errors.at(
                pos,
                format!(
                    "no room for {what} ({size:#x} bytes) in the storage DMA window {:#x}..{:#x}: the \
                     storage regions and fixed regions in the window need less memory",
                    DMA_WINDOW.start, DMA_WINDOW.end
                ),
            );
            0
        }
    };
    let mut placed = Placed { dma: Vec::new(), probe: Vec::new(), data: Vec::new(), bounce: Vec::new() };
    for (d, disk) in sd.disks.iter().enumerate() {
        placed.dma.push(alloc(DMA_SIZE, format!("the DMA region of disk '{}'", disk.name), disk.pos, errors));
        let probe = plan.served[d]
            .then(|| alloc(PROBE_SIZE, format!("the partition-table block of disk '{}'", disk.name), disk.pos, errors));
        placed.probe.push(probe);
    }
    for client in &plan.clients {
        let what = format!("the data region of block client '{}'", client.name);
        placed.data.push(alloc(client.data_size, what, client.pos, errors));
    }
    for f in &plan.filters {
        let size = f.declared.bounce;
        let what = format!("the bounce buffer of filter '{}'", f.decl.name);
        placed.bounce.push((size > 0).then(|| alloc(size, what, f.decl.pos, errors)));
    }
    placed
}

/// Per client: the lowest channel id its PD does not use yet.
fn client_channel_ids(sd: &SystemDescription, plan: &Plan, errors: &mut Errors) -> Vec<u8> {
    plan.clients
        .iter()
        .map(|client| {
            let pd = &sd.protection_domains[client.pd];
            let used = |id: u8| {
                pd.irqs.iter().any(|irq| irq.id == id)
                    || sd.channels.iter().flat_map(|ch| &ch.ends).any(|end| end.pd == client.pd && end.id == id)
            };
            (0..=MAX_ID).find(|&id| !used(id)).unwrap_or_else(|| {
                errors.at(
                    client.pos,
                    format!(
                        "protection domain '{}' uses every channel id from 0 to {MAX_ID}: its block client \
                         needs one",
                        client.name
                    ),
                );
                0
            })
        })
        .collect()
}

/// The region size (whole pages) of a queue of `capacity` entries.
fn queue_size(capacity: u32) -> u64 {
    // Capacities are powers of two up to 64 (reading checks them); the
    // layout of anything else is reported by the client's own code.
    let bytes = QueueLayout::new(capacity).map_or(PAGE as usize, |l| l.size()) as u64;
    bytes.div_ceil(PAGE).max(1) * PAGE
}

struct Expansion<'a> {
    sd: &'a SystemDescription,
    plan: &'a Plan,
    placed: &'a Placed,
    channel_ids: &'a [u8],
}

impl Expansion<'_> {
    fn build(&self) -> SystemDescription {
        let (sd, plan, placed) = (self.sd, self.plan, self.placed);
        let mut out = sd.clone();
        out.disks.clear();
        for pd in &mut out.protection_domains {
            pd.block_client = None;
        }
        let driver_index = out.protection_domains.len();
        let server_index = driver_index + 1;
        let first_disk = sd.disks[0].pos;
        let mut driver = generated_pd(DRIVER_PD, DRIVER_IMAGE, DRIVER_PRIORITY, first_disk);
        let mut server = plan.server.map(|pos| ProtectionDomain {
            stack_size: SERVER_STACK_SIZE,
            ..generated_pd(SERVER_PD, SERVER_IMAGE, SERVER_PRIORITY, pos)
        });

        // Register pages: region, map, device.
        for (k, &(page, pos)) in plan.pages.iter().enumerate() {
            let name = names::mmio_region(page);
            out.memory_regions.push(region(&name, PAGE, Some(page), pos));
            driver.maps.push(Map { cached: false, ..map(&name, vaddr::MMIO + k as u64 * PAGE, pos) });
            let disks = sd.disks.iter().filter(|disk| names::virtio_page(disk.virtio_slot) == page);
            out.devices.push(Device {
                name: name.clone(),
                owners: vec![driver_index],
                regions: vec![DeviceRegion { mr: name.clone(), pos }],
                irqs: disks.map(|disk| DeviceIrq { irq: names::virtio_irq(disk.virtio_slot), pos: disk.pos }).collect(),
                pos,
            });
        }

        let mut driver_config = DriverConfig::UNSET;
        driver_config.magic = config::MAGIC;
        driver_config.disk_count = sd.disks.len() as u32;
        let mut server_config = ServerConfig::UNSET;
        server_config.magic = config::MAGIC;
        server_config.disk_count = sd.disks.len() as u32;

        for (d, disk) in sd.disks.iter().enumerate() {
            let pos = disk.pos;
            let stride = d as u64 * vaddr::STRIDE;
            let dma_name = names::dma_region(&disk.name);
            out.memory_regions.push(region(&dma_name, DMA_SIZE, Some(placed.dma[d]), pos));
            driver.maps.push(map(&dma_name, vaddr::DMA + stride, pos));
            driver.irqs.push(Irq { irq: names::virtio_irq(disk.virtio_slot), id: d as u8, trigger: Trigger::Edge, pos });
            let regs = names::virtio_regs(disk.virtio_slot);
            let entry = &mut driver_config.disks[d];
            entry.mmio_vaddr = vaddr::MMIO + plan.page_index(disk.virtio_slot) as u64 * PAGE + (regs & (PAGE - 1));
            entry.dma = DmaRegion { vaddr: vaddr::DMA + stride, paddr: placed.dma[d], size: DMA_SIZE };
            entry.irq_channel = d as u32;
            let driver_channel = channel::DRIVER_QUEUE + d as u8;
            server_config.disks[d].name = config::name_field(&disk.name);

            if let (true, Some(server)) = (plan.served[d], &mut server) {
                let queue_name = names::driver_queue_region(&disk.name);
                let size = queue_size(DRIVER_QUEUE_CAPACITY);
                out.memory_regions.push(region(&queue_name, size, None, pos));
                driver.maps.push(map(&queue_name, vaddr::DRIVER_QUEUE + stride, pos));
                server.maps.push(map(&queue_name, vaddr::SERVER_DISK_QUEUE + stride, pos));
                let probe_name = names::probe_region(&disk.name);
                let probe_paddr = placed.probe[d].unwrap_or_default();
                out.memory_regions.push(region(&probe_name, PROBE_SIZE, Some(probe_paddr), pos));
                let probe_vaddr = vaddr::PROBE + d as u64 * PAGE;
                server.maps.push(map(&probe_name, probe_vaddr, pos));
                let server_channel = channel::SERVER_DISK + d as u8;
                out.channels.push(channel(server_index, server_channel, driver_index, driver_channel, pos));
                entry.queue = QueueRegion {
                    vaddr: vaddr::DRIVER_QUEUE + stride,
                    size,
                    capacity: DRIVER_QUEUE_CAPACITY,
                    channel: u32::from(driver_channel),
                };
                let server_disk = &mut server_config.disks[d];
                server_disk.queue = QueueRegion {
                    vaddr: vaddr::SERVER_DISK_QUEUE + stride,
                    size,
                    capacity: DRIVER_QUEUE_CAPACITY,
                    channel: u32::from(server_channel),
                };
                server_disk.probe = DmaRegion { vaddr: probe_vaddr, paddr: probe_paddr, size: PROBE_SIZE };
            }
            if let Some(c) = plan.direct[d] {
                let client = &plan.clients[c];
                entry.queue = QueueRegion {
                    vaddr: vaddr::DRIVER_QUEUE + stride,
                    size: queue_size(client.capacity),
                    capacity: client.capacity,
                    channel: u32::from(driver_channel),
                };
            }
        }

        for (i, client) in plan.clients.iter().enumerate() {
            let pos = client.pos;
            let disk = &sd.disks[client.disk];
            let queue_name = names::client_queue_region(&client.name);
            let data_name = names::client_data_region(&client.name);
            let size = queue_size(client.capacity);
            out.memory_regions.push(region(&queue_name, size, None, pos));
            out.memory_regions.push(region(&data_name, client.data_size, Some(placed.data[i]), pos));
            let my_channel = self.channel_ids[i];
            let pd = &mut out.protection_domains[client.pd];
            pd.maps.push(map(&queue_name, vaddr::CLIENT_QUEUE, pos));
            pd.maps.push(map(&data_name, vaddr::CLIENT_DATA, pos));
            let mut record = ClientConfig::UNSET;
            record.magic = config::MAGIC;
            record.direct = u32::from(client.server_index.is_none());
            record.queue =
                QueueRegion { vaddr: vaddr::CLIENT_QUEUE, size, capacity: client.capacity, channel: u32::from(my_channel) };
            record.data = DmaRegion { vaddr: vaddr::CLIENT_DATA, paddr: placed.data[i], size: client.data_size };
            record.disk = config::name_field(&disk.name);
            pd.setvars.push(setvar(CLIENT_CONFIG_SYMBOL, record.as_bytes(), pos));

            match (client.server_index, &mut server) {
                (Some(c), Some(server)) => {
                    let queue_vaddr = vaddr::SERVER_CLIENT_QUEUE + c as u64 * vaddr::STRIDE;
                    server.maps.push(map(&queue_name, queue_vaddr, pos));
                    out.channels.push(channel(client.pd, my_channel, server_index, c as u8, pos));
                    server_config.clients[c] = ServerClient {
                        queue: QueueRegion { vaddr: queue_vaddr, size, capacity: client.capacity, channel: c as u32 },
                        data: DmaRegion { vaddr: 0, paddr: placed.data[i], size: client.data_size },
                        disk: client.disk as u32,
                        partition: u32::from(client.partition.unwrap_or(0)),
                        name: config::name_field(&client.name),
                        entry: client.entry as u32,
                        flags: if client.read_only { config::CLIENT_READ_ONLY } else { 0 },
                    };
                    server_config.client_count = c as u32 + 1;
                }
                _ => {
                    // The device reaches only memory the client itself may
                    // read or write: its data region, and the regions it
                    // maps at a fixed physical address, with its rights.
                    let entry = &mut driver_config.disks[client.disk];
                    let data = DmaWindow { paddr: placed.data[i], size: client.data_size, device_writes: 1, _reserved: 0 };
                    let windows = std::iter::once(data).chain(fixed_maps(sd, client.pd)).take(MAX_WINDOWS);
                    entry.confined = 1;
                    for (k, window) in windows.enumerate() {
                        entry.windows[k] = window;
                        entry.window_count = k as u32 + 1;
                    }
                    let driver_vaddr = vaddr::DRIVER_QUEUE + client.disk as u64 * vaddr::STRIDE;
                    driver.maps.push(map(&queue_name, driver_vaddr, pos));
                    let driver_channel = channel::DRIVER_QUEUE + client.disk as u8;
                    out.channels.push(channel(client.pd, my_channel, driver_index, driver_channel, pos));
                }
            }
        }

        let mut filter_pds = Vec::new();
        if let Some(server) = &mut server {
            filter_pds = self.filters(&mut out, server, server_index, &mut server_config);
        }
        driver.setvars.push(setvar(DRIVER_CONFIG_SYMBOL, driver_config.as_bytes(), first_disk));
        out.protection_domains.push(driver);
        if let Some(mut server) = server {
            server.setvars.push(setvar(SERVER_CONFIG_SYMBOL, server_config.as_bytes(), server.pos));
            out.protection_domains.push(server);
        }
        out.protection_domains.extend(filter_pds);
        out
    }

    /// The filters: each a passive child of the server (at
    /// `server_index + 1 + i`) with its call page, bounce buffer, the
    /// server's PPC channel to it lending it the request data it may
    /// reach, its record and the server's (`ServerFilter`: `lend_client[c]`
    /// and `lend_bounce[f]`, by the server's client and filter numbers, the
    /// index of that lend on its channel or `NO_LEND`; `links`, per
    /// `<link>` in order, the linked disk's index, then `NO_LINK`); and per
    /// disk with filters or that a link leads to the server's `<chain>`.
    /// Returns the filter PDs, in order.
    fn filters(&self, out: &mut SystemDescription, server: &mut ProtectionDomain, server_index: usize, server_config: &mut ServerConfig) -> Vec<ProtectionDomain> {
        let (sd, plan, placed) = (self.sd, self.plan, self.placed);
        let mut pds = Vec::new();
        for f in &plan.filters {
            let (i, pos, decl) = (f.index, f.decl.pos, &f.decl);
            let pd_index = server_index + 1 + i;
            let disk = &sd.disks[f.disk];
            let mut pd = generated_pd(&decl.name, &decl.program, decl.effective_priority(), pos);
            pd.passive = true;
            pd.stack_size = FILTER_STACK_SIZE;
            let budget = decl.budget.or(f.declared.budget).unwrap_or(DEFAULT_FILTER_BUDGET_US);
            pd.call_budget = Some(budget);
            pd.parent = Some(server_index);
            pd.child_id = Some(i as u8);
            pd.program_image_pos = pos;

            let calls = names::filter_calls_region(&decl.name);
            out.memory_regions.push(region(&calls, PAGE, None, pos));
            let server_calls = vaddr::SERVER_FILTER_CALLS + i as u64 * PAGE;
            server.maps.push(map(&calls, server_calls, pos));
            pd.maps.push(map(&calls, vaddr::FILTER_CALLS, pos));
            let bounce_name = names::filter_bounce_region(&decl.name);
            if let Some(paddr) = placed.bounce[i] {
                out.memory_regions.push(region(&bounce_name, f.declared.bounce, Some(paddr), pos));
                pd.maps.push(map(&bounce_name, vaddr::FILTER_BOUNCE, pos));
            }

            // The server lends the filter the data of its disk's clients
            // that enter the chain at or above it (it never sees the
            // others' requests), the bounce buffers of the filters above
            // it, and what requests redirected into its disk carry (see
            // `Plan::reach`), with its rights (none: nothing).
            let perms = if f.rights() & abi::GRANT_WRITE != 0 { Perms::READ_WRITE } else { Perms::READ };
            let mut lends = Vec::new();
            let mut lend_client = [config::NO_LEND; MAX_CLIENTS];
            let mut lend_bounce = [config::NO_LEND; config::MAX_FILTERS];
            if f.rights() != 0 {
                let reach = plan.reach(&plan.incoming, f.disk, f.position);
                for (client, _) in plan.clients.iter().zip(&reach.clients).filter(|(_, &reached)| reached) {
                    let Some(c) = client.server_index else { continue };
                    lend_client[c] = lends.len() as u8;
                    lends.push(Lend { mr: names::client_data_region(&client.name), perms, pos });
                }
                for above in plan.filters.iter().filter(|a| reach.bounces[a.index]) {
                    if placed.bounce[above.index].is_some() && above.index < config::MAX_FILTERS {
                        lend_bounce[above.index] = lends.len() as u8;
                        lends.push(Lend { mr: names::filter_bounce_region(&above.decl.name), perms, pos });
                    }
                }
            }
            let mut links = [config::NO_LINK; config::MAX_LINKS];
            for (k, link) in decl.links.iter().take(config::MAX_LINKS).enumerate() {
                links[k] = link.disk as u8;
            }
            let server_channel = channel::SERVER_FILTER + i as u8;
            let end = |pd, id, pp| ChannelEnd { pd, id, pp, notify: false, pos };
            out.channels.push(Channel { ends: [end(server_index, server_channel, true), end(pd_index, channel::FILTER, false)], lends, pos });

            let bounce = DmaRegion { vaddr: 0, paddr: placed.bounce[i].unwrap_or(0), size: if placed.bounce[i].is_some() { f.declared.bounce } else { 0 } };
            server_config.filters[i] = ServerFilter {
                name: config::name_field(&decl.name),
                calls: QueueRegion { vaddr: server_calls, size: PAGE, capacity: 0, channel: u32::from(server_channel) },
                bounce,
                disk: f.disk as u32,
                position: f.position as u32,
                channel: u32::from(server_channel),
                child: i as u32,
                hooks: f.declared.hooks,
                ops: f.declared.ops,
                rights: f.rights(),
                restart: u8::from(decl.on_fault == OnFault::Restart),
                lend_client,
                lend_bounce,
                links,
                pre_ops: f.declared.pre_ops,
                post_ops: f.declared.post_ops,
                max_blocks: max_blocks(budget, f.declared.block_us).to_le_bytes(),
                _reserved: [0; 2],
            };
            server_config.filter_count = i as u32 + 1;
            let mut record = FilterConfig::UNSET;
            record.magic = config::MAGIC;
            record.position = f.position as u32;
            record.disk = config::name_field(&disk.name);
            record.name = config::name_field(&decl.name);
            record.calls = QueueRegion { vaddr: vaddr::FILTER_CALLS, size: PAGE, capacity: 0, channel: u32::from(channel::FILTER) };
            record.bounce = DmaRegion { vaddr: if bounce.size > 0 { vaddr::FILTER_BOUNCE } else { 0 }, ..bounce };
            record.rights = u32::from(f.rights());
            for (k, p) in decl.params.iter().take(config::MAX_PARAMS).enumerate() {
                record.params[k] = Param { key: config::field(&p.key), value: config::field(&p.value) };
                record.param_count = k as u32 + 1;
            }
            pd.setvars.push(setvar(FILTER_CONFIG_SYMBOL, record.as_bytes(), pos));
            pds.push(pd);
        }

        // Each chain, for the verifier: the filters in order, each's bounce
        // buffer below it, what leaves to the driver at the bottom, and
        // each client where it enters: at the top, or, attached at the
        // filter at position p, in stage p, just above that filter's via
        // and below the filters above it. A filter's links: from the stage
        // below its via to the first stage of the linked disk's chain,
        // which a disk without filters that a link leads to has too: one
        // stage (its clients and its driver queue), no via.
        let linked = |d: usize| plan.filters.iter().any(|f| f.decl.links.iter().any(|l| l.disk == d));
        for (d, disk) in sd.disks.iter().enumerate() {
            let members: Vec<&PlannedFilter> = plan.filters.iter().filter(|f| f.disk == d).collect();
            let pos = match (members.first(), linked(d)) {
                (Some(first), _) => first.decl.pos,
                (None, true) => disk.pos,
                (None, false) => continue,
            };
            let stage_region = |mr: String| StageRegion { mr, pos };
            let mut stages = vec![Stage { regions: Vec::new(), channels: Vec::new(), pos }];
            let mut vias = Vec::new();
            let mut links = Vec::new();
            for f in &members {
                vias.push(Via {
                    pd: server_index + 1 + f.index,
                    channel: channel::SERVER_FILTER + f.index as u8,
                    mr: Some(names::filter_calls_region(&f.decl.name)),
                    pos,
                });
                let mut below = Stage { regions: Vec::new(), channels: Vec::new(), pos };
                if placed.bounce[f.index].is_some() {
                    below.regions.push(stage_region(names::filter_bounce_region(&f.decl.name)));
                }
                stages.push(below);
                for link in &f.decl.links {
                    let Some(target) = sd.disks.get(link.disk) else { continue };
                    links.push(ChainLink { via: f.position, chain: target.name.clone(), pos: link.pos });
                }
            }
            for client in plan.clients.iter().filter(|c| c.disk == d) {
                let Some(c) = client.server_index else { continue };
                let Some(stage) = stages.get_mut(client.entry.min(members.len().saturating_sub(1))) else { continue };
                stage.regions.push(stage_region(names::client_queue_region(&client.name)));
                stage.regions.push(stage_region(names::client_data_region(&client.name)));
                stage.channels.push(StageChannel { id: c as u8, pos });
            }
            let bottom = stages.last_mut().expect("a stage per filter, and one more");
            bottom.regions.push(stage_region(names::driver_queue_region(&disk.name)));
            bottom.regions.push(stage_region(names::probe_region(&disk.name)));
            bottom.channels.push(StageChannel { id: channel::SERVER_DISK + d as u8, pos });
            server.chains.push(Chain { name: disk.name.clone(), stages, vias, links, pos });
        }
        pds
    }
}

/// Stack of the generated storage PDs.
pub const GENERATED_STACK_SIZE: u64 = 0x1_0000;
/// Stack of the filter server: its state (the in-flight table of the
/// filter chains, about 36 KiB) lives on it and is moved at start.
pub const SERVER_STACK_SIZE: u64 = 0x4_0000;

fn generated_pd(name: &str, image: &str, priority: u8, pos: Pos) -> ProtectionDomain {
    ProtectionDomain {
        name: name.to_string(),
        pos,
        priority,
        passive: false,
        // The driver and server keep per-disk and per-client state (virtio
        // slot tables, ring handles) that outgrows the default 16 KiB stack.
        stack_size: GENERATED_STACK_SIZE,
        budget: sdf::DEFAULT_BUDGET_US,
        period: sdf::DEFAULT_BUDGET_US,
        call_budget: None,
        can_power_off: false,
        program_image: image.to_string(),
        program_image_pos: pos,
        maps: Vec::new(),
        irqs: Vec::new(),
        setvars: Vec::new(),
        parent: None,
        child_id: None,
        block_client: None,
        chains: Vec::new(),
    }
}

fn region(name: &str, size: u64, phys_addr: Option<u64>, pos: Pos) -> MemoryRegion {
    MemoryRegion { name: name.to_string(), size, page_size: PAGE, phys_addr, pos }
}

/// A read-write, cached map.
fn map(mr: &str, vaddr: u64, pos: Pos) -> Map {
    Map { mr: mr.to_string(), vaddr, perms: Perms::READ_WRITE, cached: true, setvar_vaddr: None, pos }
}

/// A notification channel both ways between `a` (id `a_id`) and `b`.
fn channel(a: usize, a_id: u8, b: usize, b_id: u8, pos: Pos) -> Channel {
    let end = |pd, id| ChannelEnd { pd, id, pp: false, notify: true, pos };
    Channel { ends: [end(a, a_id), end(b, b_id)], lends: Vec::new(), pos }
}

fn setvar(symbol: &str, bytes: &[u8], pos: Pos) -> SetVar {
    SetVar { symbol: symbol.to_string(), value: SetVarValue::Bytes(bytes.to_vec()), pos }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_of_every_allowed_capacity_fit_one_page() {
        for capacity in [1, 2, 4, 8, 16, 32, 64] {
            assert_eq!(queue_size(capacity), PAGE, "capacity {capacity}");
        }
        assert!(QueueLayout::new(64).unwrap().size() as u64 <= PAGE);
    }

    #[test]
    fn a_system_without_disks_is_returned_unchanged() {
        let xml = "<system><protection_domain name='blk_driver'><program_image path='a'/></protection_domain></system>";
        let sd = sdf::parse("t.xml", xml).unwrap();
        assert_eq!(expand(&sd).unwrap(), sd);
    }
}
