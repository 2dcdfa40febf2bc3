//! What each storage PD is told at build time: the tool expands the storage
//! declarations of `system.xml` into PDs, regions and channels, and patches
//! one of these records into each storage PD's program image (symbols
//! `blk_driver_config`, `blk_server_config`, `blk_client_config`,
//! `blk_filter_config`).
//!
//! A record still holding [`UNSET`] was never patched: the PD was not
//! declared through the storage elements, and says so instead of guessing.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Disks one system may have.
pub const MAX_DISKS: usize = 4;
/// Clients the filter server serves at most.
pub const MAX_CLIENTS: usize = 16;
/// Windows of physical memory a direct client's buffers may lie in, at
/// most: its data region and regions it maps at a fixed physical address.
pub const MAX_WINDOWS: usize = 4;
/// Filters in one system at most (the server's table).
pub const MAX_FILTERS: usize = 16;
/// Filters in one disk's chain at most.
pub const MAX_CHAIN: usize = 8;
/// `<param>`s of one filter at most, and their sizes (NUL-padded fields).
pub const MAX_PARAMS: usize = 8;
pub const PARAM_KEY: usize = 32;
pub const PARAM_VALUE: usize = 512;
/// "No lend" in a filter's lend tables.
pub const NO_LEND: u8 = 0xff;
/// `<link>`s of one filter at most.
pub const MAX_LINKS: usize = 4;
/// "No link" in a filter's link table.
pub const NO_LINK: u8 = 0xff;
/// Marks a patched record.
pub const MAGIC: u32 = 0x5354_4b31; // "STK1"
/// The value of an unpatched record's magic.
pub const UNSET: u32 = 0;

/// A queue region: where it is mapped and its rings' capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct QueueRegion {
    pub vaddr: u64,
    pub size: u64,
    pub capacity: u32,
    /// The channel on which the other end is notified.
    pub channel: u32,
}

/// A memory region the device reads and writes: mapped at `vaddr`, seen by
/// the device at `paddr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DmaRegion {
    pub vaddr: u64,
    pub paddr: u64,
    pub size: u64,
}

/// Physical memory a requester's buffers may lie in, and whether the
/// device may write it (what a read fills) or only read it (what a write
/// takes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DmaWindow {
    pub paddr: u64,
    pub size: u64,
    /// Nonzero: reads may land here.
    pub device_writes: u32,
    pub _reserved: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DriverDisk {
    /// The device's registers (its virtio-mmio slot) in the driver.
    pub mmio_vaddr: u64,
    /// Virtqueue and request headers.
    pub dma: DmaRegion,
    /// Requests from the filter server (or a direct client).
    pub queue: QueueRegion,
    /// The channel the device's interrupt arrives on.
    pub irq_channel: u32,
    /// Nonzero: the requester is a direct client, whose buffers must lie in
    /// the first `window_count` of `windows`. Zero: the filter server,
    /// which checks every client's buffer itself.
    pub confined: u32,
    pub window_count: u32,
    pub _reserved: u32,
    pub windows: [DmaWindow; MAX_WINDOWS],
}

impl DriverDisk {
    /// The windows a direct client's buffers must lie in; `None` for the
    /// filter server.
    pub fn windows(&self) -> Option<&[DmaWindow]> {
        (self.confined != 0).then(|| &self.windows[..(self.window_count as usize).min(MAX_WINDOWS)])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DriverConfig {
    pub magic: u32,
    pub disk_count: u32,
    pub disks: [DriverDisk; MAX_DISKS],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ServerDisk {
    /// Requests to the driver.
    pub queue: QueueRegion,
    /// A block the server reads the partition table into.
    pub probe: DmaRegion,
    /// NUL-padded disk name, for messages.
    pub name: [u8; 32],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ServerClient {
    pub queue: QueueRegion,
    /// The client's data region: mapped in the server at `vaddr`, where the
    /// device reaches it at `paddr`.
    pub data: DmaRegion,
    /// Index into [`ServerConfig::disks`].
    pub disk: u32,
    /// MBR primary partition 1-4 the client is confined to; 0 = whole disk.
    pub partition: u32,
    /// NUL-padded client PD name, for messages.
    pub name: [u8; 32],
    /// The position in its disk's chain of the filter it attaches at (its
    /// requests enter the chain there: the filters above never see them);
    /// 0 = the top.
    pub entry: u32,
    /// [`CLIENT_READ_ONLY`].
    pub flags: u32,
}

/// [`ServerClient::flags`]: the server refuses the client's writes
/// (`read_only="true"` on its `<block_client>`); its storage info says
/// read-only.
pub const CLIENT_READ_ONLY: u32 = 1;

/// A filter as the server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ServerFilter {
    /// NUL-padded filter PD name, for messages.
    pub name: [u8; 32],
    /// Its call page, mapped in the server.
    pub calls: QueueRegion,
    /// Its bounce buffer (substitute data): where the device reaches it
    /// (`vaddr` 0: the server does not map it) and its size, 0 for none.
    pub bounce: DmaRegion,
    /// Index into [`ServerConfig::disks`], and its place in that disk's
    /// chain (0 = nearest the clients).
    pub disk: u32,
    pub position: u32,
    /// The server's channel to it (PPC) and the filter's child id in the
    /// server (its fault handler).
    pub channel: u32,
    pub child: u32,
    /// What it declared: hook bits ([`crate::filter::Hook::bit`]) and
    /// operation bits ([`crate::filter::op_bit`]).
    pub hooks: u8,
    pub ops: u8,
    /// `abi`'s grant rights on request data (0: none).
    pub rights: u8,
    /// 1: restart it after a fault; 0: leave it stopped.
    pub restart: u8,
    /// The index among its channel's lends of client c's data region
    /// ([`NO_LEND`] for none), and of the bounce buffer of the server's
    /// filter f (one above it in its chain, or, for a request redirected
    /// into its disk, above the filter that redirected it).
    pub lend_client: [u8; MAX_CLIENTS],
    pub lend_bounce: [u8; MAX_FILTERS],
    /// The disks (indices into [`ServerConfig::disks`]) its `<link>`s
    /// name, in order: its redirect verdicts' link numbers index this;
    /// [`NO_LINK`] for none.
    pub links: [u8; MAX_LINKS],
    /// The operations of `ops` it wants its pre-op and its post-op for
    /// (its manifest's `pre_ops` and `post_ops`); 0: all of `ops`.
    pub pre_ops: u8,
    pub post_ops: u8,
    /// The most blocks of request data one upcall to it may carry
    /// (little-endian; 0: no limit): its budget over what its manifest
    /// says a block costs it (`block_us`), so a batch of large requests
    /// does not run it past its budget. One request is always carried.
    pub max_blocks: [u8; 4],
    pub _reserved: [u8; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ServerConfig {
    pub magic: u32,
    pub disk_count: u32,
    pub client_count: u32,
    pub filter_count: u32,
    pub disks: [ServerDisk; MAX_DISKS],
    pub clients: [ServerClient; MAX_CLIENTS],
    pub filters: [ServerFilter; MAX_FILTERS],
}

/// One `<param key value>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Param {
    pub key: [u8; PARAM_KEY],
    pub value: [u8; PARAM_VALUE],
}

/// What a filter PD is told (`blk_filter_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FilterConfig {
    pub magic: u32,
    /// Its place in the chain (0 = nearest the clients).
    pub position: u32,
    /// NUL-padded names: its disk and itself.
    pub disk: [u8; 32],
    pub name: [u8; 32],
    /// Its call page (`capacity` and `channel` unused: the server calls).
    pub calls: QueueRegion,
    /// Its bounce buffer, mapped at `vaddr`, seen by the device at `paddr`;
    /// size 0 for none.
    pub bounce: DmaRegion,
    /// Its rights on request data (`abi` grant rights, 0 = none).
    pub rights: u32,
    pub param_count: u32,
    pub params: [Param; MAX_PARAMS],
}

impl FilterConfig {
    pub const UNSET: FilterConfig = FilterConfig {
        magic: UNSET,
        position: 0,
        disk: [0; 32],
        name: [0; 32],
        calls: ZERO_QUEUE,
        bounce: ZERO_DMA,
        rights: 0,
        param_count: 0,
        params: [Param { key: [0; PARAM_KEY], value: [0; PARAM_VALUE] }; MAX_PARAMS],
    };

    pub fn is_set(&self) -> bool {
        self.magic == MAGIC
    }

    /// The declared params, as (key, value).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params[..(self.param_count as usize).min(MAX_PARAMS)].iter().map(|p| (field_str(&p.key), field_str(&p.value)))
    }

    /// The value of param `key`, if declared.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// The text of a NUL-padded field of any length ("?" if not UTF-8).
pub fn field_str(field: &[u8]) -> &str {
    let n = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..n]).unwrap_or("?")
}

/// A NUL-padded field of `N` bytes holding `text` (cut to `N - 1` bytes).
pub fn field<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = text.len().min(N.saturating_sub(1));
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ClientConfig {
    pub magic: u32,
    /// 1 when the client talks to the driver directly (benchmarks only):
    /// its requests then carry device addresses, `data.paddr + offset`.
    pub direct: u32,
    pub queue: QueueRegion,
    pub data: DmaRegion,
    /// NUL-padded disk name.
    pub disk: [u8; 32],
}

const ZERO_QUEUE: QueueRegion = QueueRegion { vaddr: 0, size: 0, capacity: 0, channel: 0 };
const ZERO_DMA: DmaRegion = DmaRegion { vaddr: 0, paddr: 0, size: 0 };
const ZERO_WINDOW: DmaWindow = DmaWindow { paddr: 0, size: 0, device_writes: 0, _reserved: 0 };

impl DriverConfig {
    pub const UNSET: DriverConfig = DriverConfig {
        magic: UNSET,
        disk_count: 0,
        disks: [DriverDisk {
            mmio_vaddr: 0,
            dma: ZERO_DMA,
            queue: ZERO_QUEUE,
            irq_channel: 0,
            confined: 0,
            window_count: 0,
            _reserved: 0,
            windows: [ZERO_WINDOW; MAX_WINDOWS],
        }; MAX_DISKS],
    };

    /// The declared disks, or `None` if the record was never patched.
    pub fn disks(&self) -> Option<&[DriverDisk]> {
        (self.magic == MAGIC).then(|| &self.disks[..(self.disk_count as usize).min(MAX_DISKS)])
    }
}

impl ServerConfig {
    pub const UNSET: ServerConfig = ServerConfig {
        magic: UNSET,
        disk_count: 0,
        client_count: 0,
        filter_count: 0,
        disks: [ServerDisk { queue: ZERO_QUEUE, probe: ZERO_DMA, name: [0; 32] }; MAX_DISKS],
        clients: [ServerClient { queue: ZERO_QUEUE, data: ZERO_DMA, disk: 0, partition: 0, name: [0; 32], entry: 0, flags: 0 }; MAX_CLIENTS],
        filters: [ServerFilter::UNSET; MAX_FILTERS],
    };

    pub fn is_set(&self) -> bool {
        self.magic == MAGIC
    }

    pub fn disks(&self) -> &[ServerDisk] {
        &self.disks[..(self.disk_count as usize).min(MAX_DISKS)]
    }

    pub fn clients(&self) -> &[ServerClient] {
        &self.clients[..(self.client_count as usize).min(MAX_CLIENTS)]
    }

    pub fn filters(&self) -> &[ServerFilter] {
        &self.filters[..(self.filter_count as usize).min(MAX_FILTERS)]
    }
}

impl ServerFilter {
    /// [`ServerFilter::max_blocks`]: 0 for no limit.
    pub fn max_blocks(&self) -> u32 {
        u32::from_le_bytes(self.max_blocks)
    }

    pub const UNSET: ServerFilter = ServerFilter {
        name: [0; 32],
        calls: ZERO_QUEUE,
        bounce: ZERO_DMA,
        disk: 0,
        position: 0,
        channel: 0,
        child: 0,
        hooks: 0,
        ops: 0,
        rights: 0,
        restart: 0,
        lend_client: [NO_LEND; MAX_CLIENTS],
        lend_bounce: [NO_LEND; MAX_FILTERS],
        links: [NO_LINK; MAX_LINKS],
        pre_ops: 0,
        post_ops: 0,
        max_blocks: [0; 4],
        _reserved: [0; 2],
    };
}

impl ClientConfig {
    pub const UNSET: ClientConfig = ClientConfig { magic: UNSET, direct: 0, queue: ZERO_QUEUE, data: ZERO_DMA, disk: [0; 32] };

    pub fn is_set(&self) -> bool {
        self.magic == MAGIC
    }
}

/// A NUL-padded name field.
pub fn name_field(name: &str) -> [u8; 32] {
    self::field(name)
}

/// The text of a NUL-padded name field.
pub fn name_str(field: &[u8; 32]) -> &str {
    field_str(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_records_say_so() {
        assert_eq!(DriverConfig::UNSET.disks(), None);
        assert!(!ServerConfig::UNSET.is_set());
        assert!(!ClientConfig::UNSET.is_set());
    }

    #[test]
    fn counts_are_capped_by_the_arrays() {
        let mut c = DriverConfig::UNSET;
        c.magic = MAGIC;
        c.disk_count = 99;
        assert_eq!(c.disks().unwrap().len(), MAX_DISKS);
        let mut s = ServerConfig::UNSET;
        s.client_count = 1000;
        assert_eq!(s.clients().len(), MAX_CLIENTS);
    }

    #[test]
    fn only_a_direct_client_is_confined_to_windows() {
        let mut disk = DriverConfig::UNSET.disks[0];
        assert_eq!(disk.windows(), None);
        disk.confined = 1;
        assert_eq!(disk.windows(), Some(&[][..]));
        disk.window_count = 99;
        assert_eq!(disk.windows().map(<[_]>::len), Some(MAX_WINDOWS));
    }

    #[test]
    fn params_read_back_by_key() {
        let mut c = FilterConfig::UNSET;
        assert!(!c.is_set());
        c.params[0] = Param { key: field("rule"), value: field("fail write 0..10") };
        c.params[1] = Param { key: field("seed"), value: field("7") };
        c.param_count = 2;
        assert_eq!(c.params().collect::<Vec<_>>(), [("rule", "fail write 0..10"), ("seed", "7")]);
        assert_eq!(c.param("seed"), Some("7"));
        assert_eq!(c.param("nope"), None);
        c.param_count = 99;
        assert_eq!(c.params().count(), MAX_PARAMS);
    }

    #[test]
    fn names_round_trip_and_truncate() {
        assert_eq!(name_str(&name_field("disk0")), "disk0");
        assert_eq!(name_str(&name_field(&"x".repeat(40))).len(), 31);
    }

    #[test]
    fn records_have_stable_sizes() {
        assert_eq!(core::mem::size_of::<QueueRegion>(), 24);
        assert_eq!(core::mem::size_of::<DmaRegion>(), 24);
        assert_eq!(core::mem::size_of::<DmaWindow>(), 24);
        assert_eq!(core::mem::size_of::<DriverDisk>(), 72 + 24 * MAX_WINDOWS);
    }
}
