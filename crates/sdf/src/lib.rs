//! The system description: `system.xml` in the seL4 Microkit System
//! Description Format (SDF), plus a few extensions, read into a model and
//! checked with the Microkit's rules.
//!
//! The flow is `text -> read -> validate -> model`:
//!
//! 1. Reading (module `parse`, public as [`read`]): the text (a file must
//!    be UTF-8: the first byte that is not is an error with its line and
//!    column), syntax, then every element and attribute (unknown ones are
//!    errors, and so is any in an XML namespace: the format has none, and
//!    `<x:system xmlns:x="..">` would otherwise read as `<system>`), each
//!    value on its own (integers, booleans, ranges, alignment, perms
//!    letters), what must hold within one element (budget <= period, the
//!    shape of a policy, a filter's priority window and params, a channel's
//!    lends, the shape of a chain), then the names that elements use to
//!    refer to each other.
//! 2. If reading found nothing wrong, validation (module `validate`) checks
//!    the rules that relate elements: unique names and ids, non-overlapping
//!    maps, no writable and executable map, PPC priorities, the PD limit, a
//!    region or interrupt claimed by one device at most, unique disks, a
//!    direct block client alone on its disk, no name the storage expansion
//!    needs taken, the filter limit, filter names free, no filters on a
//!    disk whose client is direct, no filter links into such a disk, no
//!    links between disks that go round in a circle, and so on. [`validate`] runs it on a
//!    model built in memory (the expanded system).
//!
//! [`to_xml`] writes any model back out as SDF text.
//!
//! Each phase reports every problem it finds, as [`Error`]s with a
//! `file:line:col` (the column counts characters, a `\r` before a `\n`
//! included; finding one never rescans its line, so a file on one line
//! reads as fast as on many), sorted by position; the next phase runs only if the
//! previous one found none. A [`SystemDescription`] handed out by [`parse`]
//! therefore obeys all rules, and later stages (layout, boot spec) can rely
//! on them. [`read`] stops after reading: its model resolves every name (all
//! indices are in range, all names exist) but may break validation rules.
//! (In both, a policy that names what the storage expansion generates is
//! kept by name, in [`SystemDescription::pending_policies`], until the
//! expansion resolves it.)
//! The isolation verifier's library accepts such a model, so that a program
//! can still analyse a system that breaks a rule and get the violation with
//! a witness; the `strata` tool validates every system first.
//!
//! # Extensions over the Microkit SDF
//!
//! - `can_power_off="true"` on a `protection_domain`: the PD may power the
//!   machine off.
//! - `<device>`, a child of `<system>`: a piece of hardware and the PDs that
//!   own it. The verifier checks that only owners map its memory and
//!   receive its interrupts. Without one, device memory (a region with a
//!   `phys_addr` outside RAM) and an interrupt that one PD alone uses are
//!   that PD's, as in the Microkit: a `<device>` is needed only to name an
//!   owner, or to let several PDs share the hardware.
//!
//!   ```xml
//!   <device name="rtc" owner="rtc_driver">
//!       <region mr="rtc_regs"/>     <!-- a memory_region: MMIO or DMA -->
//!       <interrupt irq="34"/>       <!-- an SPI, as in <irq irq=".."/> -->
//!   </device>
//!   ```
//!
//!   `name` and `owner` are required; `owner` lists one or more protection
//!   domains separated by spaces or commas (each once). A device declares at
//!   least one `<region>` or `<interrupt>`. Reading checks that the names
//!   resolve and the interrupt numbers are valid SPIs; validation that
//!   device names are unique and that no region and no interrupt is claimed
//!   twice (by two devices, or twice by one).
//! - `<policy>`, a child of `<system>`: an information-flow property for the
//!   verifier (`strata verify`). `name` (unique) and `kind` are required;
//!   `kind` is one of:
//!
//!   - `no-flow`: no information flows from any `<from>` to any `<to>`.
//!   - `mediated`, with `via="pd ..."` (one or more PDs, separated by spaces
//!     or commas): every flow from a `<from>` to a `<to>` passes through at
//!     least one of the `via` PDs. A mediator is neither a source nor a
//!     target.
//!   - `isolated`, with `pd=".."`: that PD shares no channel, no parent or
//!     child link, and no memory region that it or the other side maps
//!     writable, with any PD but those listed in `<allow pd=".."/>`
//!     (zero or more; not the PD itself).
//!
//!   `<from>` and `<to>` (at least one of each, in `no-flow` and `mediated`
//!   only) carry exactly one of `pd=".."`, `region=".."` (a memory region)
//!   and `device=".."`; a policy may not name one entity both as a source
//!   and as a target. `via` belongs only on `mediated`, `pd` and `<allow>`
//!   only on `isolated`.
//!
//!   Every name a policy uses (`pd`, `region`, `device`, `via`, `<allow>`)
//!   may also be one the storage expansion generates from the system's
//!   disks and block clients (see below), e.g. `via="blk_server"` or
//!   `<to region="blk_disk0_dma"/>`. Reading checks that the expansion
//!   will generate it (a generated-looking name it will not generate, such
//!   as `blk_server` when every client is direct, is an unknown name) and
//!   keeps the policy by name
//!   ([`SystemDescription::pending_policies`]); the expansion resolves it
//!   ([`resolve_pending_policies`]).
//!
//!   ```xml
//!   <policy name="client1-never-sees-disk0" kind="no-flow">
//!       <from pd="client1"/> <to device="disk0"/> <to region="cache0"/>
//!   </policy>
//!   <policy name="disk-writes-encrypted" kind="mediated" via="encrypt">
//!       <from pd="app"/> <to region="dma"/>
//!   </policy>
//!   <policy name="vault-alone" kind="isolated" pd="vault">
//!       <allow pd="vault_client"/>
//!   </policy>
//!   ```
//!
//! - `call_budget="us"` on a `protection_domain`
//!   ([`ProtectionDomain::call_budget`]): the longest one protected
//!   procedure call that this PD serves may run, in microseconds (1 to
//!   [`MAX_CALL_BUDGET_US`], 10 s), before the kernel stops it. Absent: no
//!   limit.
//! - `<lend mr=".." perms=".."/>`, a child of `<channel>` ([`Lend`]): during
//!   a PPC on this channel the caller (the end with `pp="true"`) may lend
//!   the callee all or part of region `mr`, with at most `perms` (`r` or
//!   `rw`: a lent region is never executable), without mapping the region
//!   itself. Both attributes are required; `<lend>`s may stand anywhere
//!   among the two `<end>`s and are kept in document order. Only a channel
//!   with a `pp="true"` end lends; each region at most once per channel, at
//!   most [`MAX_LENDS`] lends.
//!
//!   ```xml
//!   <channel>
//!       <end pd="blk_server" id="20" pp="true"/>
//!       <end pd="audit0" id="0"/>
//!       <lend mr="blk_verify0_data" perms="r"/>
//!       <lend mr="blk_crypt0_bounce" perms="rw"/>
//!   </channel>
//!   ```
//!
//! - `<chain name="..">`, a child of `<protection_domain>` ([`Chain`]): a
//!   trust declaration for the verifier. The PD passes what enters at the
//!   first `<stage>` on to the last only through the `<via>` PDs, in
//!   order, and what enters at a later stage only through the vias below
//!   it (a block client attached at a filter enters at the stage just
//!   above that filter's via). The children alternate `<stage>`, `<via>`, `<stage>`, ...,
//!   `<stage>` (at least one via, but see `<link>` below). `name` is
//!   required and unique among the PD's chains. A stage lists `<region mr=".."/>` (existing memory
//!   regions) and `<channel id=".."/>` (ids of the PD's own channel ends);
//!   a region or channel id is in at most one stage of all the PD's chains.
//!   `<via pd=".." channel=".." mr=".."/>`: `pd` another protection
//!   domain, `channel` the chain PD's id of a channel to `pd` on which the
//!   chain PD makes PPCs (its end has `pp="true"`), `mr` (optional) an
//!   existing memory region. For example, the filter server's chain for a
//!   disk with two filters:
//!
//!   ```xml
//!   <protection_domain name="blk_server" priority="240">
//!       ...
//!       <chain name="disk0">
//!           <stage> <region mr="blk_verify0_queue"/> <channel id="0"/> </stage>
//!           <via pd="audit0" channel="20" mr="blk_audit0_calls"/>
//!           <stage> <region mr="blk_backup_queue"/> <channel id="1"/> </stage>
//!           <via pd="ro0" channel="21" mr="blk_ro0_calls"/>
//!           <stage> <region mr="blk_disk0_driver_queue"/> <channel id="40"/> </stage>
//!       </chain>
//!   </protection_domain>
//!   ```
//!
//!   (`backup`, attached `at="ro0"`, enters below `audit0`.)
//!
//!   `<link via=".." chain=".."/>`, children of a `<chain>` that may stand
//!   anywhere among its stages and vias ([`ChainLink`]): what has passed
//!   the via whose `pd` is `via` (one via of the chain only) may also
//!   pass, both ways, between the stage just below that via and the first
//!   stage of `chain`, another chain of the same PD. It is how the filter
//!   server declares that a filter may redirect requests into another
//!   disk's chain (the filter's `<link disk>`, below). A chain with one
//!   stage and no via is allowed when another chain of the PD links to it
//!   (a disk without filters that a filter links to):
//!
//!   ```xml
//!   <chain name="clone0">
//!       <stage> <region mr="blk_app_queue"/> <region mr="blk_app_data"/> <channel id="0"/> </stage>
//!       <via pd="overlay0" channel="20" mr="blk_overlay0_calls"/>
//!       <stage> <region mr="blk_clone0_driver_queue"/> <region mr="blk_clone0_probe"/> <channel id="40"/> </stage>
//!       <link via="overlay0" chain="base0"/>
//!   </chain>
//!   <chain name="base0">
//!       <stage> <region mr="blk_base0_driver_queue"/> <region mr="blk_base0_probe"/> <channel id="41"/> </stage>
//!   </chain>
//!   ```
//!
//! - `<setvar symbol=".." bytes="0a0b.."/>`: patch these bytes, written as
//!   hexadecimal digits two per byte (an even, non-zero number of digits,
//!   no prefix), into the symbol as they are. A setvar has exactly one of
//!   `region_paddr` and `bytes` ([`SetVarValue`]). The builder checks that
//!   the symbol exists, is at least that large (when the program image
//!   gives its size) and lies in a loaded segment.
//!
//! # Storage declarations
//!
//! Disks and their clients are declared, and the tool expands them into
//! plain SDF (`strata expand SYSTEM` prints the result; every other command
//! works on it). The declarations:
//!
//! ```xml
//! <disk name="disk0" virtio_slot="31">
//!     <!-- chain order: the first filter is nearest the clients -->
//!     <filter name="audit0" program="filter_passthrough" data="none"/>
//!     <filter name="ro0" program="filter_readonly" data="none" priority="245" budget="20000" on_fault="restart">
//!         <param key="rule" value="fail write 0..100"/>
//!     </filter>
//! </disk>
//! <disk name="disk1" virtio_slot="30"/>
//! <protection_domain name="app" priority="100">
//!     <program_image path="app.elf"/>
//!     <block_client disk="disk0" partition="1" data_size="0x100000" queue_capacity="64"/>
//! </protection_domain>
//! <protection_domain name="backup" priority="100">
//!     <program_image path="backup.elf"/>
//!     <!-- enters disk0's chain at ro0: audit0 never sees its requests -->
//!     <block_client disk="disk0" at="ro0"/>
//! </protection_domain>
//! <protection_domain name="bench" priority="100">
//!     <program_image path="bench.elf"/>
//!     <block_client disk="disk1" direct="true"/>
//! </protection_domain>
//! ```
//!
//! - `<disk>`, a child of `<system>` ([`Disk`]): `name` (1 to
//!   [`MAX_DISK_NAME`] bytes, unique) and `virtio_slot` (0 to 31, unique),
//!   both required. Slot `n` of QEMU `virt`'s virtio-mmio transports has
//!   its registers at `0x0a00_0000 + n * 0x200` and interrupt `48 + n`
//!   (edge-triggered); the first `-device` on QEMU's command line lands in
//!   slot 31, the second in 30, and so on ([`storage`]).
//! - `<filter>`, in a `<disk>` and nowhere else ([`Filter`]): a protection
//!   domain the filter server passes the disk's requests through; the
//!   disk's filters form a chain, the first nearest the clients. `name`
//!   (required) becomes the PD's name: 1 to [`MAX_FILTER_NAME`] bytes
//!   (it travels in the storage records' 32-byte name fields), and is neither a declared PD's, another filter's, nor one the
//!   expansion generates. `program` (required): its program image, as in
//!   `<program_image path>`. `data` (required): what it may do with the
//!   requests' data, `none`, `read` or `read-write`. `priority`: 241 to
//!   249, above the filter server (240, which calls it) and below the
//!   driver (250); default 245. `budget`: microseconds one upcall may take
//!   (1 to 10 s; default no limit). `on_fault`: `fail` (default, the
//!   requests fail) or `restart`. At most [`storage::MAX_FILTERS`] in the
//!   system. A disk with filters may not have a direct client, which would
//!   bypass them.
//! - `<param key=".." value=".."/>`, in a `<filter>` and nowhere else
//!   ([`Param`]): a setting for the filter. `key` 1 to 31 bytes, unique
//!   within the filter; `value` at most 511 bytes (may be empty); at most 8
//!   per filter.
//! - `<link disk=".."/>`, in a `<filter>` and nowhere else ([`Link`]): the
//!   filter may redirect a request into the chain of disk `disk` (it
//!   enters that chain at the top), and only along its links. `disk`
//!   (required) names a declared disk (it may be declared later in the
//!   file), not the filter's own; each disk once per filter; at most
//!   [`storage::MAX_LINKS`] per filter. Validation refuses a link into a
//!   disk whose block client is direct (the filter server does not drive
//!   it), and links that go round in a circle between disks (a filter of
//!   A links to B, a filter of B links to ... A), reported at the link
//!   that closes the circle with the circle it closes. A disk that is
//!   linked to is the filter server's even without clients of its own.
//!
//!   ```xml
//!   <disk name="clone0" virtio_slot="30">
//!       <filter name="overlay0" program="filter_overlay" data="read-write">
//!           <link disk="base0"/>
//!       </filter>
//!   </disk>
//!   <disk name="base0" virtio_slot="31"/>
//!   ```
//! - `<block_client>`, in a protection domain, at most one
//!   ([`BlockClient`]): the PD reads and writes the disk `disk`
//!   (required). `at`: the name of a filter of that disk the client
//!   attaches at ([`BlockClient::at`]): its requests enter the chain there,
//!   so that filter and the ones below it see them and the ones above never
//!   do, and it sees the disk as that filter offers it (absent: the top of
//!   the chain). A name that is no filter of its disk is an error, and so
//!   is `at` with `partition` (the server reads partitions from the
//!   device, below every filter) or with `direct`. `partition`: an MBR
//!   primary partition 1-4 the client is confined to (absent: the whole
//!   disk). `data_size`: bytes of its data
//!   region, a non-zero multiple of 4 KiB (default 0x100000).
//!   `queue_capacity`: entries of its request and response rings, a power
//!   of two from 1 to 64 (default 32). `direct="true"`: the client talks to
//!   the driver itself, bypassing the filter server and its checks, for
//!   benchmarks only; it must then be its disk's only client and name no
//!   partition (default false). The driver still confines a direct
//!   client's buffers to memory it may reach itself: its data region, and
//!   the regions it maps that have a fixed `phys_addr` (at most 3), the
//!   device filling one only if the client maps it writable.
//! - With disks declared, the names the expansion generates are taken: a
//!   protection domain, memory region or device of the description whose
//!   name equals one of them is an error that names both. They are
//!   `blk_driver` and `blk_server` (PDs), `virtio_mmio_<page>` (regions and
//!   devices) and `blk_<disk>_dma`, `blk_<disk>_driver_queue`,
//!   `blk_<disk>_probe`, `blk_<client>_queue`, `blk_<client>_data`
//!   (regions); with a filter server, per filter its own name (a PD),
//!   `blk_<filter>_calls` and `blk_<filter>_bounce` (regions); see
//!   [`storage::generated_names`]. Names that would collide among
//!   themselves (a disk `d` and a client PD `d_driver`) are an error too.
//!   Without disks these names are free. A policy may name a filter (as a
//!   `via`, `pd`, `<allow>`, `<from>` or `<to>`) before the expansion
//!   makes it a PD, as it may name the other generated PDs.
//!
//! The expansion (the tool's `storage` module documents every name, id and
//! address) adds the virtio-blk driver PD `blk_driver` and, if some client
//! is not direct, the filter server `blk_server`; per disk the register
//! page, its interrupt, a DMA region and (for the server) a queue to the
//! driver and a block to read the partition table into; per client a queue
//! region shared with the server (or, direct, with the driver) and a data
//! region; and patches a `blk::config` record into each of them with
//! `<setvar bytes>`. A client's data region is mapped in the client only:
//! the server and the driver never map it, the device reaches it by its
//! physical address (requests carry `data paddr + offset`). So the data,
//! DMA and probe regions get fixed physical addresses, which the expansion
//! allocates itself from RAM at `0x5000_0000..0x6000_0000`.
//!
//! This crate is pure host code and never panics on any input.
#![forbid(unsafe_code)]

mod error;
mod model;
mod parse;
pub mod storage;
mod validate;
mod values;
mod write;

use std::path::Path;

pub use error::Error;
pub use model::*;

/// Parse and validate the system description `xml`. `file` is the path as
/// it should appear in messages.
///
/// On failure, returns every error of the first phase that found any,
/// sorted by position.
pub fn parse(file: &str, xml: &str) -> Result<SystemDescription, Vec<Error>> {
    let sd = parse::read(file, xml)?;
    validate::validate(&sd)?;
    Ok(sd)
}

/// Check the validation rules on a model that is already read: for a
/// model built by a program (the storage expansion's output) rather than
/// read from text. `Err` holds every violation, sorted by position.
pub fn validate(sd: &SystemDescription) -> Result<(), Vec<Error>> {
    validate::validate(sd)
}

/// Resolve the policies that name what the storage expansion generates
/// ([`SystemDescription::pending_policies`]): look each name up in `sd`
/// (the expanded system) and move each policy into
/// [`SystemDescription::policies`] at its place in document order. The
/// expansion calls this on its result; without pending policies it does
/// nothing. `Err` holds every name that does not exist in `sd` (then `sd`
/// is unchanged).
pub fn resolve_pending_policies(sd: &mut SystemDescription) -> Result<(), Vec<Error>> {
    parse::resolve_pending(sd)
}

/// Render `sd` as SDF XML that [`read`] turns back into the same model
/// (positions aside: compare with
/// [`SystemDescription::without_positions`]). Nested protection domains
/// are written inside their parents; attributes at their default values
/// are left out. Deterministic.
pub fn to_xml(sd: &SystemDescription) -> String {
    write::to_xml(sd)
}

/// Only read the system description `xml`: syntax, elements, attributes,
/// values and names, without the validation rules that relate elements
/// (see the crate documentation). For analysis tools that must see a
/// system even when it breaks a rule; everything else uses [`parse`].
pub fn read(file: &str, xml: &str) -> Result<SystemDescription, Vec<Error>> {
    parse::read(file, xml)
}

/// Read the file at `path` and [`parse`] it. A file that cannot be read
/// gives one error at line 0, column 0; a file that is not UTF-8 gives one
/// error at its first byte that is no part of a UTF-8 character.
pub fn parse_file(path: &Path) -> Result<SystemDescription, Vec<Error>> {
    with_file(path, parse)
}

/// Read the file at `path` and [`read`] it (no validation rules). Errors
/// about the file itself as for [`parse_file`].
pub fn read_file(path: &Path) -> Result<SystemDescription, Vec<Error>> {
    with_file(path, read)
}

fn with_file(
    path: &Path,
    phase: fn(&str, &str) -> Result<SystemDescription, Vec<Error>>,
) -> Result<SystemDescription, Vec<Error>> {
    let file = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            return Err(vec![Error {
                message: format!("cannot read the system description: {err}: give the path of a system file"),
                file,
                line: 0,
                col: 0,
            }])
        }
    };
    match std::str::from_utf8(&bytes) {
        Ok(xml) => phase(&file, xml),
        Err(err) => Err(vec![not_utf8(file, &bytes, err)]),
    }
}

/// The error for a file that is not UTF-8, at its first bad byte (the
/// line and column as for any other error: columns count the characters
/// before it on its line).
fn not_utf8(file: String, bytes: &[u8], err: std::str::Utf8Error) -> Error {
    let at = err.valid_up_to();
    let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let pos = parse::position(valid, at);
    let byte = bytes.get(at).copied().unwrap_or_default();
    let what = match err.error_len() {
        Some(_) => format!("byte {byte:#04x} here is not part of a UTF-8 character"),
        None => format!("the file ends inside a character (byte {byte:#04x} here starts it)"),
    };
    Error {
        message: format!("the file is not UTF-8: {what}; save the system description as UTF-8"),
        file,
        line: pos.line,
        col: pos.col,
    }
}
