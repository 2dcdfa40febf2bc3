//! Validation: the rules that relate elements to each other, checked on a
//! model whose names all resolve.
//!
//! Each rule is one function in [`CHECKS`]; all of them run, so every
//! violation is reported. An error points at the element that breaks the
//! rule (for a duplicate: the later one in the file) and names the entities
//! involved.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;
use std::ops::Range;

use abi::layout;

use crate::error::{Diagnostics, Error};
use crate::model::*;

type Check = fn(&SystemDescription, &mut Diagnostics);

/// Every rule, in the order they are checked.
const CHECKS: &[Check] = &[
    pd_count_within_limit,
    pd_names_unique,
    region_names_unique,
    child_ids_unique,
    maps_aligned_to_page_size,
    maps_not_writable_and_executable,
    maps_inside_user_space,
    maps_clear_of_stack_and_ipc_buffer,
    maps_do_not_overlap,
    setvar_symbols_unique,
    physical_ranges_fit,
    physical_ranges_do_not_overlap,
    channels_join_two_pds,
    ppc_in_one_direction,
    ppc_to_higher_priority,
    ids_unique_per_pd,
    irqs_unique,
    device_names_unique,
    device_regions_claimed_once,
    device_irqs_claimed_once,
    policy_names_unique,
    disk_names_unique,
    disk_slots_unique,
    direct_clients_alone,
    storage_names_free,
    filter_count_within_limit,
    filter_names_free,
    filters_not_bypassed,
    links_into_served_disks,
    links_without_cycles,
    lends_of_ram_only,
];

/// Check every rule on `sd`; `Err` holds every violation in source order.
pub(crate) fn validate(sd: &SystemDescription) -> Result<(), Vec<Error>> {
    let mut diag = Diagnostics::new(&sd.file);
    for check in CHECKS {
        check(sd, &mut diag);
    }
    diag.finish(())
}

fn pd_count_within_limit(sd: &SystemDescription, diag: &mut Diagnostics) {
    let count = sd.protection_domains.len();
    if let Some(first_too_many) = sd.protection_domains.get(abi::MAX_PDS) {
        diag.error(
            first_too_many.pos,
            format!(
                "too many protection domains: {count} declared, at most {} are supported",
                abi::MAX_PDS
            ),
        );
    }
}

fn pd_names_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd.protection_domains.iter().map(|pd| (pd.name.as_str(), pd.pos, ()));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!(
                "duplicate protection domain name '{}' (first declared at line {})",
                dup.0, first.1.line
            ),
        );
    });
}

fn region_names_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd.memory_regions.iter().map(|mr| (mr.name.as_str(), mr.pos, ()));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!(
                "duplicate memory region name '{}' (first declared at line {})",
                dup.0, first.1.line
            ),
        );
    });
}

fn child_ids_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd
        .protection_domains
        .iter()
        .filter_map(|pd| Some(((pd.parent?, pd.child_id?), pd.pos, pd.name.as_str())));
    for_each_duplicate(uses.collect(), |first, dup| {
        let ((parent, id), name) = (dup.0, dup.2);
        let parent = &sd.protection_domains[parent].name;
        diag.error(
            dup.1,
            format!(
                "child id {id} of protection domain '{parent}' is used twice: by '{}' (line {}) \
                 and by '{name}'",
                first.2, first.1.line
            ),
        );
    });
}

/// Every map whose region exists (reading made sure all do), with its PD
/// and region.
fn maps(sd: &SystemDescription) -> impl Iterator<Item = (&ProtectionDomain, &Map, &MemoryRegion)> {
    sd.protection_domains.iter().flat_map(move |pd| {
        pd.maps.iter().filter_map(move |map| Some((pd, map, sd.memory_region(&map.mr)?)))
    })
}

fn maps_aligned_to_page_size(sd: &SystemDescription, diag: &mut Diagnostics) {
    for (pd, map, mr) in maps(sd) {
        if map.vaddr % mr.page_size != 0 {
            diag.error(
                map.pos,
                format!(
                    "map of '{}' in protection domain '{}': vaddr {:#x} is not aligned to the \
                     region's page size {:#x}",
                    map.mr, pd.name, map.vaddr, mr.page_size
                ),
            );
        }
    }
}

fn maps_not_writable_and_executable(sd: &SystemDescription, diag: &mut Diagnostics) {
    for pd in &sd.protection_domains {
        for map in pd.maps.iter().filter(|map| map.perms.write && map.perms.execute) {
            diag.error(
                map.pos,
                format!(
                    "map of '{}' in protection domain '{}' has perms '{}': writable memory is \
                     never executable, drop 'w' or 'x'",
                    map.mr, pd.name, map.perms
                ),
            );
        }
    }
}

fn maps_inside_user_space(sd: &SystemDescription, diag: &mut Diagnostics) {
    for (pd, map, mr) in maps(sd) {
        if map.range(mr).is_none_or(|range| range.end > layout::USER_TOP) {
            diag.error(
                map.pos,
                format!(
                    "map of '{}' in protection domain '{}' does not fit in user space: vaddr {:#x} \
                     + size {:#x} goes past the end of user space at {:#x}",
                    map.mr, pd.name, map.vaddr, mr.size, layout::USER_TOP
                ),
            );
        }
    }
}

/// The parts of every address space that the kernel sets up: the stack,
/// the unmapped guard page above it, and the IPC buffer page.
fn fixed_areas(pd: &ProtectionDomain) -> [(&'static str, Range<u64>); 3] {
    let stack_bottom = layout::STACK_TOP.saturating_sub(pd.stack_size);
    [
        ("stack", stack_bottom..layout::STACK_TOP),
        ("stack guard page", layout::STACK_TOP..layout::IPC_BUFFER),
        ("IPC buffer page", layout::IPC_BUFFER..layout::IPC_BUFFER + layout::PAGE_SIZE),
    ]
}

fn maps_clear_of_stack_and_ipc_buffer(sd: &SystemDescription, diag: &mut Diagnostics) {
    for (pd, map, mr) in maps(sd) {
        let Some(range) = map.range(mr) else { continue };
        let hit = fixed_areas(pd).into_iter().find(|(_, area)| overlaps(&range, area));
        if let Some((what, area)) = hit {
            diag.error(
                map.pos,
                format!(
                    "map of '{}' in protection domain '{}' at {} overlaps the {what} at {}: \
                     choose another vaddr",
                    map.mr,
                    pd.name,
                    hex_range(&range),
                    hex_range(&area)
                ),
            );
        }
    }
}

fn maps_do_not_overlap(sd: &SystemDescription, diag: &mut Diagnostics) {
    for pd in &sd.protection_domains {
        let spans = pd.maps.iter().filter_map(|map| {
            let range = map.range(sd.memory_region(&map.mr)?)?;
            Some((range, map.pos, map.mr.as_str()))
        });
        for_each_overlap(spans.collect(), |earlier, later| {
            diag.error(
                later.1,
                format!(
                    "map of '{}' at {} overlaps map of '{}' at {} in protection domain '{}'",
                    later.2,
                    hex_range(&later.0),
                    earlier.2,
                    hex_range(&earlier.0),
                    pd.name
                ),
            );
        });
    }
}

fn setvar_symbols_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    for pd in &sd.protection_domains {
        let from_maps =
            pd.maps.iter().filter_map(|map| Some((map.setvar_vaddr.as_deref()?, map.pos, ())));
        let from_setvars = pd.setvars.iter().map(|setvar| (setvar.symbol.as_str(), setvar.pos, ()));
        for_each_duplicate(from_maps.chain(from_setvars).collect(), |first, dup| {
            diag.error(
                dup.1,
                format!(
                    "symbol '{}' is set twice in protection domain '{}' (first at line {}): \
                     each symbol can be patched once",
                    dup.0, pd.name, first.1.line
                ),
            );
        });
    }
}

fn physical_ranges_fit(sd: &SystemDescription, diag: &mut Diagnostics) {
    for mr in &sd.memory_regions {
        if let (Some(addr), None) = (mr.phys_addr, mr.phys_range()) {
            diag.error(
                mr.pos,
                format!(
                    "memory region '{}': phys_addr {addr:#x} + size {:#x} goes past the end of \
                     the 64-bit address space",
                    mr.name, mr.size
                ),
            );
        }
    }
}

/// A lend gives the callee kernel copies to and from the region, which the
/// kernel makes through its map of RAM: a region at a fixed address outside
/// RAM (device memory) cannot be lent.
fn lends_of_ram_only(sd: &SystemDescription, diag: &mut Diagnostics) {
    use bootspec::platform::{RAM_BASE, RAM_SIZE};
    for lend in sd.channels.iter().flat_map(|ch| &ch.lends) {
        let Some(range) = sd.memory_region(&lend.mr).and_then(|mr| mr.phys_range()) else { continue };
        if range.start < RAM_BASE || range.end > RAM_BASE + RAM_SIZE {
            diag.error(
                lend.pos,
                format!(
                    "lend of memory region '{}' at {:#x}..{:#x}, outside RAM ({:#x}..{:#x}): only RAM can be lent \
                     (a lend gives the callee copies the kernel makes through its map of RAM); map device \
                     memory to the PD that drives it instead",
                    lend.mr,
                    range.start,
                    range.end,
                    RAM_BASE,
                    RAM_BASE + RAM_SIZE
                ),
            );
        }
    }
}

fn physical_ranges_do_not_overlap(sd: &SystemDescription, diag: &mut Diagnostics) {
    let spans = sd
        .memory_regions
        .iter()
        .filter_map(|mr| Some((mr.phys_range()?, mr.pos, mr.name.as_str())));
    for_each_overlap(spans.collect(), |earlier, later| {
        diag.error(
            later.1,
            format!(
                "memory region '{}' at physical {} overlaps memory region '{}' at {}",
                later.2,
                hex_range(&later.0),
                earlier.2,
                hex_range(&earlier.0)
            ),
        );
    });
}

fn channels_join_two_pds(sd: &SystemDescription, diag: &mut Diagnostics) {
    for ch in &sd.channels {
        let [a, b] = &ch.ends;
        if a.pd == b.pd {
            diag.error(
                ch.pos,
                format!(
                    "channel connects protection domain '{}' to itself: its ends must name two \
                     different protection domains",
                    sd.protection_domains[a.pd].name
                ),
            );
        }
    }
}

fn ppc_in_one_direction(sd: &SystemDescription, diag: &mut Diagnostics) {
    for ch in &sd.channels {
        let [a, b] = &ch.ends;
        if a.pp && b.pp {
            diag.error(
                ch.pos,
                format!(
                    "PPC in both directions between '{}' and '{}': set pp=\"true\" only on the \
                     caller's end",
                    sd.protection_domains[a.pd].name, sd.protection_domains[b.pd].name
                ),
            );
        }
    }
}

fn ppc_to_higher_priority(sd: &SystemDescription, diag: &mut Diagnostics) {
    for ch in &sd.channels {
        let Some((caller, callee)) = ch.ppc_caller_callee() else { continue };
        let (caller, callee) =
            (&sd.protection_domains[caller.pd], &sd.protection_domains[callee.pd]);
        if callee.priority <= caller.priority {
            diag.error(
                ch.pos,
                format!(
                    "PPC from '{}' (priority {}) to '{}' (priority {}): the callee's priority \
                     must be strictly higher than the caller's",
                    caller.name, caller.priority, callee.name, callee.priority
                ),
            );
        }
    }
}

/// Channel ids and irq ids share one space per protection domain.
fn ids_unique_per_pd(sd: &SystemDescription, diag: &mut Diagnostics) {
    let mut uses = Vec::new();
    for (index, pd) in sd.protection_domains.iter().enumerate() {
        for irq in &pd.irqs {
            uses.push(((index, irq.id), irq.pos, format!("irq {}", irq.irq)));
        }
    }
    for ch in &sd.channels {
        for (end, other) in [(&ch.ends[0], &ch.ends[1]), (&ch.ends[1], &ch.ends[0])] {
            let peer = &sd.protection_domains[other.pd].name;
            uses.push(((end.pd, end.id), end.pos, format!("the channel to '{peer}'")));
        }
    }
    for_each_duplicate(uses, |first, dup| {
        let (pd, id) = dup.0;
        diag.error(
            dup.1,
            format!(
                "protection domain '{}' uses id {id} twice: for {} (line {}) and for {}: channel \
                 and irq ids must be unique within a protection domain",
                sd.protection_domains[pd].name, first.2, first.1.line, dup.2
            ),
        );
    });
}

fn irqs_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd
        .protection_domains
        .iter()
        .flat_map(|pd| pd.irqs.iter().map(move |irq| (irq.irq, irq.pos, pd.name.as_str())));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!(
                "irq {} is bound twice: to '{}' (line {}) and to '{}': an interrupt goes to one \
                 protection domain only",
                dup.0, first.2, first.1.line, dup.2
            ),
        );
    });
}

fn device_names_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd.devices.iter().map(|dev| (dev.name.as_str(), dev.pos, ()));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!("duplicate device name '{}' (first declared at line {})", dup.0, first.1.line),
        );
    });
}

/// A memory region belongs to one device at most (and to it once).
fn device_regions_claimed_once(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd
        .devices
        .iter()
        .flat_map(|dev| dev.regions.iter().map(move |r| (r.mr.as_str(), r.pos, dev.name.as_str())));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!(
                "memory region '{}' is claimed twice: by device '{}' (line {}) and by device \
                 '{}': a region belongs to one device only",
                dup.0, first.2, first.1.line, dup.2
            ),
        );
    });
}

/// An interrupt belongs to one device at most (and to it once).
fn device_irqs_claimed_once(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd
        .devices
        .iter()
        .flat_map(|dev| dev.irqs.iter().map(move |irq| (irq.irq, irq.pos, dev.name.as_str())));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!(
                "irq {} is claimed twice: by device '{}' (line {}) and by device '{}': an \
                 interrupt belongs to one device only",
                dup.0, first.2, first.1.line, dup.2
            ),
        );
    });
}

fn policy_names_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let pending = sd.pending_policies.iter().map(|p| &p.policy);
    let uses = sd
        .policies
        .iter()
        .map(|policy| (policy.name.as_str(), policy.pos, ()))
        .chain(pending.map(|policy| (policy.name.as_str(), policy.pos, ())));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!("duplicate policy name '{}' (first declared at line {})", dup.0, first.1.line),
        );
    });
}

fn disk_names_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd.disks.iter().map(|disk| (disk.name.as_str(), disk.pos, ()));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!("duplicate disk name '{}' (first declared at line {})", dup.0, first.1.line),
        );
    });
}

fn disk_slots_unique(sd: &SystemDescription, diag: &mut Diagnostics) {
    let uses = sd.disks.iter().map(|disk| (disk.virtio_slot, disk.pos, disk.name.as_str()));
    for_each_duplicate(uses.collect(), |first, dup| {
        diag.error(
            dup.1,
            format!(
                "disks '{}' (line {}) and '{}' both use virtio-mmio slot {}: each disk is its own \
                 virtio-blk device",
                first.2, first.1.line, dup.2, dup.0
            ),
        );
    });
}

/// A disk with a direct client has no other client.
fn direct_clients_alone(sd: &SystemDescription, diag: &mut Diagnostics) {
    for (d, disk) in sd.disks.iter().enumerate() {
        let mut clients: Vec<(&str, &BlockClient)> = sd
            .block_clients()
            .filter(|(_, _, client)| client.disk == d)
            .map(|(_, pd, client)| (pd.name.as_str(), client))
            .collect();
        if !clients.iter().any(|(_, client)| client.direct) {
            continue;
        }
        clients.sort_by_key(|(_, client)| client.pos);
        let Some(&(first, first_client)) = clients.first() else { continue };
        for (name, client) in &clients[1..] {
            let direct = clients.iter().find(|(_, c)| c.direct).map_or(first, |(n, _)| *n);
            diag.error(
                client.pos,
                format!(
                    "disk '{}' has block clients '{first}' (line {}) and '{name}', and '{direct}' \
                     is direct: a disk with a direct client may have no other client",
                    disk.name, first_client.pos.line
                ),
            );
        }
    }
}

/// With disks declared, no name of the description collides with one the
/// storage expansion generates, and the generated names are distinct.
/// (A filter's own name is checked by [`filter_names_free`].)
fn storage_names_free(sd: &SystemDescription, diag: &mut Diagnostics) {
    use crate::storage::{generated_for_filters, generated_without_filters, NameSpace};
    let generated = generated_without_filters(sd);
    if generated.is_empty() {
        return;
    }
    // A filter's regions end in `_calls` and `_bounce`, which no other
    // generated region does: they collide only with a declared region, or
    // with those of a filter of the same name (reported as such).
    let filter_regions: Vec<_> = generated_for_filters(sd)
        .into_iter()
        .filter(|g| g.space == NameSpace::MemoryRegion)
        .collect();
    let reserved: Vec<_> = generated.iter().chain(&filter_regions).collect();
    let declared = sd
        .protection_domains
        .iter()
        .map(|pd| (NameSpace::ProtectionDomain, pd.name.as_str(), pd.pos))
        .chain(
            sd.memory_regions.iter().map(|mr| (NameSpace::MemoryRegion, mr.name.as_str(), mr.pos)),
        )
        .chain(sd.devices.iter().map(|dev| (NameSpace::Device, dev.name.as_str(), dev.pos)));
    for (space, name, pos) in declared {
        if let Some(g) = reserved.iter().find(|g| g.space == space && g.name == name) {
            let noun = space.noun();
            diag.error(
                pos,
                format!(
                    "{noun} '{name}' collides with {} generated from the storage declaration at \
                     line {}: with disks declared, the expansion names what it adds 'blk_driver', \
                     'blk_server' and others starting with 'blk_' or 'virtio_' (names clear of \
                     those never collide); rename it",
                    g.what, g.pos.line
                ),
            );
        }
    }
    for (i, g) in generated.iter().enumerate() {
        let earlier = generated[..i].iter().find(|e| e.space == g.space && e.name == g.name);
        // Register pages are deduplicated, so only names built from disk
        // and client names can repeat. Two of the same origin come from a
        // duplicate disk or PD name, which is reported as such.
        if let Some(e) = earlier.filter(|e| e.what != g.what) {
            diag.error(
                g.pos,
                format!(
                    "the storage declarations generate two {}s named '{}': {} (line {}) and {}: \
                     rename the disk or the client",
                    g.space.noun(),
                    g.name,
                    e.what,
                    e.pos.line,
                    g.what
                ),
            );
        }
    }
}

fn filter_count_within_limit(sd: &SystemDescription, diag: &mut Diagnostics) {
    use crate::storage::MAX_FILTERS;
    let filters: Vec<&Filter> = sd.filters().map(|(_, filter)| filter).collect();
    if let Some(first_too_many) = filters.get(MAX_FILTERS) {
        diag.error(
            first_too_many.pos,
            format!(
                "too many filters: {} declared, at most {MAX_FILTERS} are supported",
                filters.len()
            ),
        );
    }
}

/// A filter becomes a protection domain of its name: the name is neither a
/// generated PD's, nor a declared PD's, nor another filter's. Reported at
/// the filter (the later one of two filters), once.
fn filter_names_free(sd: &SystemDescription, diag: &mut Diagnostics) {
    use crate::storage::{generated_without_filters, NameSpace};
    let generated = generated_without_filters(sd);
    let filters: Vec<(&Disk, &Filter)> = sd.filters().collect();
    for (i, (disk, filter)) in filters.iter().enumerate() {
        let name = &filter.name;
        let of = format!("filter '{name}' of disk '{}'", disk.name);
        let reserved =
            generated.iter().find(|g| g.space == NameSpace::ProtectionDomain && g.name == *name);
        let message = if let Some(g) = reserved {
            format!(
                "{of} collides with {} generated from the storage declaration at line {}: with \
                 disks declared, the expansion names what it adds 'blk_driver', 'blk_server' and \
                 others starting with 'blk_' or 'virtio_' (names clear of those never collide); \
                 rename it",
                g.what, g.pos.line
            )
        } else if let Some((_, pd)) = sd.pd(name) {
            format!(
                "{of} has the name of protection domain '{name}' (line {}): a filter becomes a \
                 protection domain of its name, rename one of them",
                pd.pos.line
            )
        } else if let Some((_, first)) = filters[..i].iter().find(|(_, f)| f.name == *name) {
            format!(
                "duplicate filter name '{name}' (first declared at line {}): a filter becomes a \
                 protection domain of its name, rename one of them",
                first.pos.line
            )
        } else {
            continue;
        };
        diag.error(filter.pos, message);
    }
}

/// A disk whose block client is direct has no filters: the client talks to
/// the driver itself, so no request would pass through them.
fn filters_not_bypassed(sd: &SystemDescription, diag: &mut Diagnostics) {
    for (d, disk) in sd.disks.iter().enumerate() {
        let Some(filter) = disk.filters.first() else { continue };
        let direct = sd.block_clients().find(|(_, _, client)| client.disk == d && client.direct);
        if let Some((_, pd, client)) = direct {
            diag.error(
                filter.pos,
                format!(
                    "filter '{}' of disk '{}' would never see a request: the disk's block client \
                     '{}' (line {}) is direct, and a direct client bypasses the filter server and \
                     so the chain; drop direct=\"true\" or the filters",
                    filter.name, disk.name, pd.name, client.pos.line
                ),
            );
        }
    }
}

/// A filter's `<link>` leads into a disk the filter server drives: not
/// one whose block client is direct (reported at the link).
fn links_into_served_disks(sd: &SystemDescription, diag: &mut Diagnostics) {
    for (disk, filter) in sd.filters() {
        for link in &filter.links {
            let Some(target) = sd.disks.get(link.disk) else { continue };
            let direct = sd
                .block_clients()
                .find(|(_, _, client)| client.disk == link.disk && client.direct);
            if let Some((_, pd, client)) = direct {
                let line = client.pos.line;
                let message =
                    crate::storage::direct_link_message(disk, filter, target, &pd.name, line);
                diag.error(link.pos, message);
            }
        }
    }
}

/// The links between disks (a filter of disk A linking to disk B) never
/// go round in a circle. Links are taken in document order; one that
/// would close a circle with those before it is reported, with the
/// circle, and left out of the rest of the check.
fn links_without_cycles(sd: &SystemDescription, diag: &mut Diagnostics) {
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); sd.disks.len()];
    for (from, disk) in sd.disks.iter().enumerate() {
        for filter in &disk.filters {
            for link in filter.links.iter().filter(|l| l.disk < sd.disks.len()) {
                let Some(back) = path(&next, link.disk, from) else {
                    next[from].push(link.disk);
                    continue;
                };
                let circle: Vec<&str> = std::iter::once(from)
                    .chain(back)
                    .map(|d| sd.disks[d].name.as_str())
                    .collect();
                let message = format!(
                    "filter '{}' of disk '{}' links to disk '{}', and the links form a cycle: {}: \
                     a request redirected along them would never reach a device; drop one link",
                    filter.name,
                    disk.name,
                    sd.disks[link.disk].name,
                    circle.join(" -> ")
                );
                diag.error(link.pos, message);
            }
        }
    }
}

/// A shortest path from `from` to `to` along `next` (both ends
/// included), if there is one; breadth first, so deterministic.
fn path(next: &[Vec<usize>], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut came_from: Vec<Option<usize>> = vec![None; next.len()];
    let mut seen = vec![false; next.len()];
    let mut queue = std::collections::VecDeque::from([from]);
    seen[from] = true;
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut out = vec![at];
            let mut node = at;
            while let Some(prev) = came_from[node] {
                out.push(prev);
                node = prev;
            }
            out.reverse();
            return Some(out);
        }
        for &n in &next[at] {
            if !seen[n] {
                seen[n] = true;
                came_from[n] = Some(at);
                queue.push_back(n);
            }
        }
    }
    None
}

// ---- helpers ----

/// Call `report(first, duplicate)` for every use whose key an earlier use
/// (in source order) already has. A use is `(key, position, detail)`.
fn for_each_duplicate<K: Eq + Hash, T>(
    mut uses: Vec<(K, Pos, T)>,
    mut report: impl FnMut(&(K, Pos, T), &(K, Pos, T)),
) {
    uses.sort_by_key(|u| u.1);
    let mut first_use: HashMap<&K, usize> = HashMap::new();
    for (index, u) in uses.iter().enumerate() {
        match first_use.entry(&u.0) {
            Entry::Occupied(first) => report(&uses[*first.get()], u),
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
    }
}

/// Call `report(earlier, later)` (in source order) for overlapping spans.
/// A span is `(range, position, name)`; every span that overlaps one
/// starting before it is reported once.
fn for_each_overlap<'s>(
    mut spans: Vec<(Range<u64>, Pos, &'s str)>,
    mut report: impl FnMut(&(Range<u64>, Pos, &'s str), &(Range<u64>, Pos, &'s str)),
) {
    spans.sort_by_key(|s| (s.0.start, s.1));
    // The span that reaches furthest among those seen so far.
    let mut furthest: Option<usize> = None;
    for index in 0..spans.len() {
        if let Some(f) = furthest {
            if overlaps(&spans[f].0, &spans[index].0) {
                let (earlier, later) =
                    if spans[f].1 < spans[index].1 { (f, index) } else { (index, f) };
                report(&spans[earlier], &spans[later]);
            }
        }
        if furthest.is_none_or(|f| spans[index].0.end > spans[f].0.end) {
            furthest = Some(index);
        }
    }
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

fn hex_range(r: &Range<u64>) -> String {
    format!("[{:#x}..{:#x})", r.start, r.end)
}

#[cfg(test)]
mod tests {
    use crate::{parse, Error, SystemDescription};

    /// A PD element with a program image and `body` inside.
    fn pd(name: &str, attrs: &str, body: &str) -> String {
        format!(
            "<protection_domain name=\"{name}\" {attrs}><program_image path=\"{name}.elf\"/>{body}</protection_domain>\n"
        )
    }

    fn channel(a: &str, b: &str) -> String {
        format!("<channel>{a}{b}</channel>\n")
    }

    fn check(body: &str) -> Result<SystemDescription, Vec<Error>> {
        parse("t.xml", &format!("<system>\n{body}</system>"))
    }

    fn messages(body: &str) -> Vec<String> {
        match check(body) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.message).collect(),
        }
    }

    fn assert_valid(body: &str) {
        let errors = messages(body);
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn ppc_to_lower_priority_is_rejected() {
        let body = pd("a", "priority=\"2\"", "")
            + &pd("b", "priority=\"1\"", "")
            + &channel(r#"<end pd="a" id="0" pp="true"/>"#, r#"<end pd="b" id="0"/>"#);
        assert_eq!(
            messages(&body),
            ["PPC from 'a' (priority 2) to 'b' (priority 1): the callee's priority must be \
              strictly higher than the caller's"]
        );
    }

    #[test]
    fn ppc_to_higher_priority_is_accepted() {
        let body = pd("a", "priority=\"1\"", "")
            + &pd("b", "priority=\"2\" passive=\"true\"", "")
            + &channel(r#"<end pd="a" id="0" pp="true"/>"#, r#"<end pd="b" id="0"/>"#);
        assert_valid(&body);
    }

    #[test]
    fn ppc_in_both_directions_is_rejected() {
        let body = pd("a", "priority=\"1\"", "")
            + &pd("b", "priority=\"2\"", "")
            + &channel(r#"<end pd="a" id="0" pp="true"/>"#, r#"<end pd="b" id="0" pp="true"/>"#);
        let errors = messages(&body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("PPC in both directions between 'a' and 'b'"));
    }

    #[test]
    fn irq_and_channel_ids_share_one_space_per_pd() {
        let body = pd("a", "", r#"<irq irq="40" id="7"/>"#)
            + &pd("b", "", "")
            + &channel(r#"<end pd="a" id="7"/>"#, r#"<end pd="b" id="7"/>"#);
        assert_eq!(
            messages(&body),
            ["protection domain 'a' uses id 7 twice: for irq 40 (line 2) and for the channel to \
              'b': channel and irq ids must be unique within a protection domain"]
        );
    }

    #[test]
    fn one_id_in_different_pds_is_fine() {
        let body = pd("a", "", r#"<irq irq="40" id="0"/>"#)
            + &pd("b", "", r#"<irq irq="41" id="0"/>"#)
            + &channel(r#"<end pd="a" id="1"/>"#, r#"<end pd="b" id="1"/>"#);
        assert_valid(&body);
    }

    #[test]
    fn two_channels_between_the_same_pds_need_different_ids() {
        let ends = (r#"<end pd="a" id="1"/>"#, r#"<end pd="b" id="2"/>"#);
        let body = pd("a", "", "")
            + &pd("b", "", "")
            + &channel(ends.0, ends.1)
            + &channel(ends.0, ends.1);
        assert_eq!(messages(&body).len(), 2, "one error for each PD's reused id");
    }

    #[test]
    fn every_overlapping_map_is_reported() {
        let body = r#"<memory_region name="big" size="0x10000"/>
<memory_region name="x" size="0x1000"/>
<memory_region name="y" size="0x1000"/>
"#
        .to_string()
            + &pd(
                "a",
                "",
                r#"<map mr="big" vaddr="0x100000"/><map mr="x" vaddr="0x101000"/><map mr="y" vaddr="0x108000"/>"#,
            );
        let errors = messages(&body);
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("map of 'x' at [0x101000..0x102000) overlaps map of 'big'"));
        assert!(errors[1].starts_with("map of 'y' at [0x108000..0x109000) overlaps map of 'big'"));
    }

    #[test]
    fn adjacent_maps_do_not_overlap() {
        let body = r#"<memory_region name="x" size="0x2000"/>"#.to_string()
            + &pd(
                "a",
                "",
                r#"<map mr="x" vaddr="0x100000"/><map mr="x" vaddr="0x102000" perms="r"/>"#,
            );
        assert_valid(&body);
    }

    #[test]
    fn map_may_end_where_the_stack_begins() {
        // Default stack: 0x4000 bytes below STACK_TOP = 0x10_0000_0000.
        let body = r#"<memory_region name="x" size="0x1000"/>"#.to_string()
            + &pd("a", "", r#"<map mr="x" vaddr="0xf_ffff_b000"/>"#);
        assert_valid(&body);
    }

    #[test]
    fn a_larger_stack_reaches_further_down() {
        let body = r#"<memory_region name="x" size="0x1000"/>"#.to_string()
            + &pd("a", "stack_size=\"0x8000\"", r#"<map mr="x" vaddr="0xf_ffff_b000"/>"#);
        let errors = messages(&body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let stack = "overlaps the stack at [0xfffff8000..0x1000000000)";
        assert!(errors[0].contains(stack), "{}", errors[0]);
    }

    #[test]
    fn child_ids_are_scoped_to_their_parent() {
        let body = pd("p", "", &pd("c1", "id=\"0\"", ""))
            + &pd("q", "", &pd("c2", "id=\"0\"", &pd("c3", "id=\"0\"", "")));
        let sd = check(&body).unwrap();
        let parents: Vec<_> = sd.protection_domains.iter().map(|pd| pd.parent).collect();
        assert_eq!(parents, [None, Some(0), None, Some(2), Some(3)]);
    }

    #[test]
    fn sixty_three_pds_are_accepted_and_sixty_four_are_not() {
        let pds: String = (0..abi::MAX_PDS).map(|i| pd(&format!("p{i}"), "", "")).collect();
        assert_valid(&pds);
        let errors = messages(&(pds + &pd("last", "", "")));
        assert_eq!(errors, ["too many protection domains: 64 declared, at most 63 are supported"]);
    }

    #[test]
    fn setvar_and_setvar_vaddr_share_symbols() {
        let body = r#"<memory_region name="x" size="0x1000"/>"#.to_string()
            + &pd(
                "a",
                "",
                r#"<map mr="x" vaddr="0x100000" setvar_vaddr="sym"/><setvar symbol="sym" region_paddr="x"/>"#,
            );
        let errors = messages(&body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("symbol 'sym' is set twice in protection domain 'a'"));
    }

    #[test]
    fn the_same_symbol_in_two_pds_is_fine() {
        let body = r#"<memory_region name="x" size="0x1000"/>"#.to_string()
            + &pd("a", "", r#"<setvar symbol="sym" region_paddr="x"/>"#)
            + &pd("b", "", r#"<setvar symbol="sym" region_paddr="x"/>"#);
        assert_valid(&body);
    }

    #[test]
    fn all_violations_are_reported_in_source_order() {
        let body = pd("a", "", r#"<irq irq="33" id="0"/>"#)
            + &pd("a", "", r#"<irq irq="33" id="0"/>"#)
            + &channel(r#"<end pd="a" id="1"/>"#, r#"<end pd="a" id="2"/>"#);
        let errors = check(&body).unwrap_err();
        let found: Vec<_> =
            errors.iter().map(|e| (e.line, e.message.split(':').next().unwrap())).collect();
        assert_eq!(
            found,
            [
                (3, "duplicate protection domain name 'a' (first declared at line 2)"),
                (3, "irq 33 is bound twice"),
                (4, "channel connects protection domain 'a' to itself"),
            ]
        );
    }

    #[test]
    fn mmio_regions_may_be_shared_by_two_maps() {
        let body = r#"<memory_region name="dev" size="0x1000" phys_addr="0xa000000"/>"#.to_string()
            + &pd("a", "", r#"<map mr="dev" vaddr="0x100000" cached="false"/>"#)
            + &pd("b", "", r#"<map mr="dev" vaddr="0x200000" perms="r" cached="false"/>"#);
        assert_valid(&body);
    }

    #[test]
    fn one_device_listing_a_region_twice_is_rejected() {
        let body = r#"<memory_region name="m" size="0x1000" phys_addr="0xa000000"/>
<device name="d" owner="a"><region mr="m"/><region mr="m"/></device>
"#
        .to_string()
            + &pd("a", "", "");
        assert_eq!(
            messages(&body),
            ["memory region 'm' is claimed twice: by device 'd' (line 3) and by device 'd': a \
              region belongs to one device only"]
        );
    }

    #[test]
    fn a_device_may_share_a_name_with_a_pd_or_region() {
        let body = r#"<memory_region name="a" size="0x1000" phys_addr="0xa000000"/>
<device name="a" owner="a"><region mr="a"/><interrupt irq="40"/></device>
<policy name="a" kind="isolated" pd="a"/>
"#
        .to_string()
            + &pd("a", "", r#"<irq irq="40" id="0"/>"#);
        assert_valid(&body);
    }

    const DISK: &str = "<disk name=\"d\" virtio_slot=\"31\"/>\n";

    fn client(name: &str, attrs: &str) -> String {
        pd(name, "", &format!("<block_client disk=\"d\" {attrs}/>"))
    }

    #[test]
    fn storage_names_are_free_without_disks() {
        let body = r#"<memory_region name="blk_d_dma" size="0x1000" phys_addr="0xa003000"/>
<device name="virtio_mmio_a003000" owner="blk_driver"><region mr="blk_d_dma"/></device>
"#
        .to_string()
            + &pd("blk_driver", "", r#"<map mr="blk_d_dma" vaddr="0x100000" cached="false"/>"#)
            + &pd("blk_server", "", "");
        assert_valid(&body);
    }

    #[test]
    fn storage_prefixes_are_fine_when_nothing_collides() {
        let body = DISK.to_string()
            + r#"<memory_region name="blk_mine" size="0x1000"/><memory_region name="virtio_x" size="0x1000"/>"#
            + &client("blk_app", "")
            + &pd("virtio_tool", "", "");
        assert_valid(&body);
    }

    #[test]
    fn blk_server_is_free_when_every_client_is_direct() {
        assert_valid(
            &(DISK.to_string() + &client("bench", "direct=\"true\"") + &pd("blk_server", "", "")),
        );
        let errors = messages(&(DISK.to_string() + &client("app", "") + &pd("blk_server", "", "")));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("protection domain 'blk_server' collides with the filter server")
        );
    }

    #[test]
    fn several_clients_of_one_disk_are_fine_without_a_direct_one() {
        let body = DISK.to_string()
            + &client("a", "")
            + &client("b", "partition=\"1\"")
            + &client("c", "partition=\"1\" data_size=\"0x2000\" queue_capacity=\"1\"");
        let sd = check(&body).unwrap();
        let clients: Vec<_> = sd
            .block_clients()
            .map(|(i, _, c)| (i, c.disk, c.partition, c.data_size, c.queue_capacity))
            .collect();
        assert_eq!(
            clients,
            [
                (0, 0, None, 0x10_0000, 32),
                (1, 0, Some(1), 0x10_0000, 32),
                (2, 0, Some(1), 0x2000, 1)
            ]
        );
    }

    #[test]
    fn a_direct_client_after_another_client_is_reported_at_the_later_one() {
        let body = DISK.to_string() + &client("app", "") + &client("bench", "direct=\"true\"");
        let errors = check(&body).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            found,
            [(4, "disk 'd' has block clients 'app' (line 3) and 'bench', and 'bench' is direct: a disk \
                  with a direct client may have no other client")]
        );
    }

    #[test]
    fn clients_may_be_declared_before_their_disk() {
        let body = client("app", "") + DISK;
        let sd = check(&body).unwrap();
        assert_eq!(sd.protection_domains[0].block_client.as_ref().map(|c| c.disk), Some(0));
    }

    fn filters(names: &[&str]) -> String {
        let filters: String = names
            .iter()
            .map(|f| format!("<filter name=\"{f}\" program=\"{f}.elf\" data=\"none\"/>"))
            .collect();
        format!("<disk name=\"d\" virtio_slot=\"31\">{filters}</disk>\n")
    }

    #[test]
    fn sixteen_filters_are_accepted() {
        let names: Vec<String> =
            (0..crate::storage::MAX_FILTERS).map(|i| format!("f{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let sd = check(&(filters(&names) + &client("app", ""))).unwrap();
        assert_eq!(sd.filters().count(), 16);
    }

    #[test]
    fn filter_names_with_storage_prefixes_are_fine_when_nothing_collides() {
        assert_valid(&(filters(&["blk_mine", "virtio_mmio_mine"]) + &client("app", "")));
    }

    #[test]
    fn a_filter_named_blk_server_is_reported_once() {
        let errors = messages(&(filters(&["blk_server"]) + &client("app", "")));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("filter 'blk_server' of disk 'd' collides with the filter server"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_pd_declared_after_a_filter_of_its_name_is_reported_at_the_filter_once() {
        let errors = check(&(filters(&["f"]) + &client("f", ""))).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            found,
            [(
                2,
                "filter 'f' of disk 'd' has the name of protection domain 'f' (line 3): a filter \
                 becomes a protection domain of its name, rename one of them"
            )]
        );
    }

    #[test]
    fn filters_of_a_disk_nobody_uses_need_no_server() {
        // No client at all: no filter server, so nothing of the filters is
        // generated, but their names are still checked.
        assert_valid(&(filters(&["audit0"]) + &pd("blk_audit0_calls", "", "")));
        let errors = messages(&(filters(&["app"]) + &pd("app", "", "")));
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    /// Disks `a`, `b`, `c`, each with one filter (`fa`, `fb`, `fc`)
    /// linking to the disks in `links` (its disk's letter, then the
    /// letters it links to, e.g. `["ab", "bc"]`), and a client of `a`.
    fn linked(links: &[&str]) -> String {
        let disks: String = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let to = links.iter().find(|l| l.starts_with(d)).map_or("", |l| &l[1..]);
                let links: String = to.chars().map(|t| format!("<link disk=\"{t}\"/>")).collect();
                format!(
                    "<disk name=\"{d}\" virtio_slot=\"{}\"><filter name=\"f{d}\" program=\"f.elf\" \
                     data=\"read\">{links}</filter></disk>\n",
                    31 - i
                )
            })
            .collect();
        disks + &pd("app", "", "<block_client disk=\"a\"/>")
    }

    #[test]
    fn links_that_lead_on_without_closing_a_circle_are_fine() {
        assert_valid(&linked(&["abc", "bc"]));
        let sd = check(&linked(&["abc", "bc"])).unwrap();
        let links: Vec<Vec<usize>> = sd
            .filters()
            .map(|(_, f)| f.links.iter().map(|l| l.disk).collect())
            .collect();
        assert_eq!(links, [vec![1, 2], vec![2], vec![]]);
    }

    #[test]
    fn two_disks_linking_to_each_other_are_a_cycle_reported_at_the_later_link() {
        let errors = check(&linked(&["ab", "ba"])).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            found,
            [(
                3,
                "filter 'fb' of disk 'b' links to disk 'a', and the links form a cycle: b -> a -> \
                 b: a request redirected along them would never reach a device; drop one link"
            )]
        );
    }

    #[test]
    fn read_only_and_executable_maps_are_fine() {
        let body = r#"<memory_region name="code" size="0x1000"/>"#.to_string()
            + &pd("a", "", r#"<map mr="code" vaddr="0x100000" perms="rx"/>"#);
        assert_valid(&body);
    }
}
