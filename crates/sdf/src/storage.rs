//! The storage extension's fixed facts: where QEMU puts a virtio-mmio slot,
//! the priorities and limits of the storage PDs and filters, and the names
//! of everything the storage expansion generates from `<disk>` (with its
//! `<filter>`s) and `<block_client>`.
//!
//! The expansion itself lives in the tool (`tool::storage`); the names are
//! here so that validation can refuse a description whose own names
//! collide with them, reading can accept policies that name them, and both
//! sides use one definition.

use crate::model::{Disk, Filter, Pos, SystemDescription};

/// Physical address of virtio-mmio slot 0's registers on QEMU `virt`.
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
/// Bytes between two slots' registers.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// Interrupt id of slot 0 (an SPI, edge-triggered); slot `n` has
/// `VIRTIO_IRQ_BASE + n`.
pub const VIRTIO_IRQ_BASE: u32 = 48;
/// The page size the register pages are mapped with.
pub const MMIO_PAGE: u64 = 0x1000;

/// The generated virtio-blk driver PD.
pub const DRIVER_PD: &str = "blk_driver";
/// The generated filter server PD.
pub const SERVER_PD: &str = "blk_server";

/// Priority of the filter server PD.
pub const SERVER_PRIORITY: u8 = 240;
/// Priority of the virtio-blk driver PD.
pub const DRIVER_PRIORITY: u8 = 250;
/// Priority of a filter without `priority`. A filter's priority lies
/// strictly between the server's and the driver's: the server makes PPCs
/// to it, and a PPC goes to a strictly higher priority.
pub const DEFAULT_FILTER_PRIORITY: u8 = 245;
/// The most filters in the whole system (the filter server's limit).
pub const MAX_FILTERS: usize = 16;
/// The most `<param>`s of one filter.
pub const MAX_PARAMS: usize = 8;
/// The most `<link>`s of one filter (the filter server's table holds this
/// many per filter: `blk::config::MAX_LINKS`, which the tool checks is
/// the same).
pub const MAX_LINKS: usize = 4;
/// The longest param key, in bytes.
pub const MAX_PARAM_KEY: usize = 31;
/// The longest param value, in bytes.
/// (511: a LUKS passphrase as long as cryptsetup takes one typed, 512
/// characters of ASCII, less the record's NUL.)
pub const MAX_PARAM_VALUE: usize = 511;

/// Physical address of the registers of virtio-mmio slot `slot`.
pub fn virtio_regs(slot: u32) -> u64 {
    VIRTIO_MMIO_BASE + u64::from(slot) * VIRTIO_MMIO_STRIDE
}

/// The 4 KiB page holding the registers of slot `slot` (slots share pages:
/// 0-7, 8-15, 16-23, 24-31).
pub fn virtio_page(slot: u32) -> u64 {
    virtio_regs(slot) & !(MMIO_PAGE - 1)
}

/// Interrupt id of virtio-mmio slot `slot`.
pub fn virtio_irq(slot: u32) -> u32 {
    VIRTIO_IRQ_BASE + slot
}

/// Memory region and device of the register page at `page`.
pub fn mmio_region(page: u64) -> String {
    format!("virtio_mmio_{page:x}")
}

/// The driver's DMA region (virtqueues, request headers) for `disk`.
pub fn dma_region(disk: &str) -> String {
    format!("blk_{disk}_dma")
}

/// The queue region between the filter server and the driver for `disk`.
pub fn driver_queue_region(disk: &str) -> String {
    format!("blk_{disk}_driver_queue")
}

/// The block the filter server reads `disk`'s partition table into.
pub fn probe_region(disk: &str) -> String {
    format!("blk_{disk}_probe")
}

/// The queue region of the block client PD `client`.
pub fn client_queue_region(client: &str) -> String {
    format!("blk_{client}_queue")
}

/// The data region of the block client PD `client`.
pub fn client_data_region(client: &str) -> String {
    format!("blk_{client}_data")
}

/// The region through which the filter server makes upcalls to the filter
/// PD `filter`.
pub fn filter_calls_region(filter: &str) -> String {
    format!("blk_{filter}_calls")
}

/// The bounce buffer of the filter PD `filter`.
pub fn filter_bounce_region(filter: &str) -> String {
    format!("blk_{filter}_bounce")
}

/// Whether `name` has the shape of a name the expansion generates
/// (`blk_driver`, `blk_server`, `blk_...`, `virtio_mmio_...`), whether or
/// not a given system generates it.
pub fn looks_generated(name: &str) -> bool {
    name.starts_with("blk_") || name.starts_with("virtio_mmio_")
}

/// Whether the expansion generates the filter server: some client does not
/// talk to the driver directly.
pub fn needs_server(sd: &SystemDescription) -> bool {
    sd.block_clients().any(|(_, _, client)| !client.direct)
}

/// Whether disk `disk` has a direct client.
pub fn has_direct_client(sd: &SystemDescription, disk: usize) -> bool {
    sd.block_clients().any(|(_, _, client)| client.disk == disk && client.direct)
}

/// Whether the filter server drives disk `disk`: there is a server and the
/// disk has no direct client. (A disk without any client is still the
/// server's, when there is one.)
pub fn served_by_server(sd: &SystemDescription, disk: usize) -> bool {
    needs_server(sd) && !has_direct_client(sd, disk)
}

/// What is wrong with a `<link>` of `filter` of `disk` into `target`,
/// whose block client, of PD `pd` and declared at line `line`, is direct:
/// validation says it, and the storage expansion of a model that skipped
/// validation.
pub fn direct_link_message(
    disk: &Disk,
    filter: &Filter,
    target: &Disk,
    pd: &str,
    line: u32,
) -> String {
    format!(
        "filter '{}' of disk '{}' links to disk '{}', but disk '{}' has a direct client '{pd}' \
         (line {line}), which bypasses the filter server: a filter cannot redirect into it; drop \
         the <link> or direct=\"true\"",
        filter.name, disk.name, target.name, target.name
    )
}

/// The kind of a generated element's name space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameSpace {
    ProtectionDomain,
    MemoryRegion,
    Device,
}

impl NameSpace {
    pub fn noun(self) -> &'static str {
        match self {
            NameSpace::ProtectionDomain => "protection domain",
            NameSpace::MemoryRegion => "memory region",
            NameSpace::Device => "device",
        }
    }
}

/// One name the expansion will generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedName {
    pub space: NameSpace,
    pub name: String,
    /// What it is, e.g. "the DMA region of disk 'disk0'".
    pub what: String,
    /// The `<disk>` or `<block_client>` it comes from.
    pub pos: Pos,
    /// Made only if the filter's program asks for it (a bounce buffer);
    /// reserved all the same.
    pub conditional: bool,
}

/// Every name the expansion of `sd` generates: those of the driver, the
/// server, the disks and the clients, then those of the filters (only with
/// a filter server: each filter's PD, upcall region and bounce buffer);
/// empty without disks. Names may repeat if the declarations make them
/// collide (a disk `d` and a client PD `d_driver` both give
/// `blk_d_driver_queue`; two filters of one name).
pub fn generated_names(sd: &SystemDescription) -> Vec<GeneratedName> {
    let mut out = generated_without_filters(sd);
    out.extend(generated_for_filters(sd));
    out
}

/// The names of [`generated_names`] that come from the filters.
pub(crate) fn generated_for_filters(sd: &SystemDescription) -> Vec<GeneratedName> {
    let mut out = Vec::new();
    if !needs_server(sd) {
        return out;
    }
    for (disk, filter) in sd.filters() {
        let name = &filter.name;
        let mut add = |space, generated, what, conditional| {
            out.push(GeneratedName { space, name: generated, what, pos: filter.pos, conditional });
        };
        let what = format!("the filter '{name}' of disk '{}'", disk.name);
        add(NameSpace::ProtectionDomain, name.clone(), what, false);
        let what = format!("the upcall region of filter '{name}'");
        add(NameSpace::MemoryRegion, filter_calls_region(name), what, false);
        let what = format!("the bounce buffer of filter '{name}'");
        add(NameSpace::MemoryRegion, filter_bounce_region(name), what, true);
    }
    out
}

/// The names of [`generated_names`] that do not come from the filters.
pub(crate) fn generated_without_filters(sd: &SystemDescription) -> Vec<GeneratedName> {
    let mut out = Vec::new();
    let Some(first_disk) = sd.disks.first() else { return out };
    let mut add = |space, name: String, what: String, pos| {
        out.push(GeneratedName { space, name, what, pos, conditional: false });
    };
    add(
        NameSpace::ProtectionDomain,
        DRIVER_PD.into(),
        "the virtio-blk driver".into(),
        first_disk.pos,
    );
    if let Some((_, _, client)) = sd.block_clients().find(|(_, _, c)| !c.direct) {
        add(NameSpace::ProtectionDomain, SERVER_PD.into(), "the filter server".into(), client.pos);
    }
    let mut pages = Vec::new();
    for disk in &sd.disks {
        let page = virtio_page(disk.virtio_slot);
        if !pages.contains(&page) {
            pages.push(page);
            let what = format!("the virtio-mmio registers at {page:#x}");
            add(NameSpace::MemoryRegion, mmio_region(page), what.clone(), disk.pos);
            add(NameSpace::Device, mmio_region(page), what, disk.pos);
        }
    }
    for (d, disk) in sd.disks.iter().enumerate() {
        let of = format!("of disk '{}'", disk.name);
        add(
            NameSpace::MemoryRegion,
            dma_region(&disk.name),
            format!("the DMA region {of}"),
            disk.pos,
        );
        if served_by_server(sd, d) {
            let what = format!("the driver queue region {of}");
            add(NameSpace::MemoryRegion, driver_queue_region(&disk.name), what, disk.pos);
            let what = format!("the partition-table block {of}");
            add(NameSpace::MemoryRegion, probe_region(&disk.name), what, disk.pos);
        }
    }
    for (_, pd, client) in sd.block_clients() {
        let of = format!("of block client '{}'", pd.name);
        let what = format!("the queue region {of}");
        add(NameSpace::MemoryRegion, client_queue_region(&pd.name), what, client.pos);
        let what = format!("the data region {of}");
        add(NameSpace::MemoryRegion, client_data_region(&pd.name), what, client.pos);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_qemu_virt_registers_and_interrupts() {
        assert_eq!(virtio_regs(31), 0x0a00_3e00);
        assert_eq!(virtio_page(31), 0x0a00_3000);
        assert_eq!(virtio_page(30), 0x0a00_3000);
        assert_eq!(virtio_page(0), 0x0a00_0000);
        assert_eq!(virtio_irq(31), 79);
        assert_eq!(mmio_region(virtio_page(31)), "virtio_mmio_a003000");
    }

    #[test]
    fn filters_generate_a_pd_and_two_regions_each_with_a_filter_server_only() {
        let xml = |client: &str| {
            format!(
                "<system><disk name='d' virtio_slot='31'><filter name='f' program='f' data='none'/></disk>\n\
                 <protection_domain name='a'><program_image path='a'/>{client}</protection_domain></system>"
            )
        };
        let sd = crate::read("t.xml", &xml("<block_client disk='d'/>")).unwrap();
        let filter_pos = sd.disks[0].filters[0].pos;
        let from_filters: Vec<_> =
            generated_names(&sd).into_iter().filter(|g| g.pos == filter_pos).collect();
        let at = |space, name: &str, what: &str| GeneratedName {
            space,
            name: name.into(),
            what: what.into(),
            pos: filter_pos,
            conditional: name.ends_with("_bounce"),
        };
        assert_eq!(
            from_filters,
            [
                at(NameSpace::ProtectionDomain, "f", "the filter 'f' of disk 'd'"),
                at(NameSpace::MemoryRegion, "blk_f_calls", "the upcall region of filter 'f'"),
                at(NameSpace::MemoryRegion, "blk_f_bounce", "the bounce buffer of filter 'f'"),
            ]
        );
        let without_server = crate::read("t.xml", &xml("")).unwrap();
        assert!(generated_names(&without_server).iter().all(|g| g.pos != filter_pos));
    }

    #[test]
    fn a_filter_sits_strictly_between_the_server_and_the_driver() {
        const {
            assert!(
                SERVER_PRIORITY < DEFAULT_FILTER_PRIORITY
                    && DEFAULT_FILTER_PRIORITY < DRIVER_PRIORITY
            )
        };
        assert_eq!(filter_calls_region("ro0"), "blk_ro0_calls");
        assert_eq!(filter_bounce_region("ro0"), "blk_ro0_bounce");
    }

    #[test]
    fn a_system_without_disks_generates_nothing() {
        let sd = crate::parse("t.xml", "<system><protection_domain name='a'><program_image path='a'/></protection_domain></system>")
            .unwrap();
        assert!(generated_names(&sd).is_empty());
    }
}
