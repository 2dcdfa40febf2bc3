//! The build report: what the image gives each protection domain, read off
//! the built result rather than the input.

use crate::image::Built;
use crate::pagetable::Memory;
use sdf::SystemDescription;
use std::fmt::Write;

pub fn report(sd: &SystemDescription, built: &Built) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Strata system report for {}", sd.file);
    let _ = writeln!(out, "boot spec at {:#x}, translation tables at {:#x}..{:#x}, image ends at {:#x}", built.spec_paddr, built.page_tables.start, built.page_tables.end, built.image_end);
    let _ = writeln!(out, "\nMemory regions:");
    for (mr, paddr) in sd.memory_regions.iter().zip(&built.region_paddrs) {
        let fixed = if mr.phys_addr.is_some() { " (fixed)" } else { "" };
        let _ = writeln!(out, "  {:<24} {:#10x} bytes at paddr {:#x}{}", mr.name, mr.size, paddr, fixed);
    }
    for (i, (pd, img)) in sd.protection_domains.iter().zip(&built.pds).enumerate() {
        let _ = writeln!(
            out,
            "\nProtection domain '{}': priority {}{}{}, asid {}, entry {:#x}",
            pd.name,
            pd.priority,
            if pd.passive { ", passive" } else { "" },
            if pd.can_power_off { ", may power off" } else { "" },
            img.asid,
            img.entry
        );
        let _ = writeln!(out, "  program image: {}", img.program.display());
        if let Some(parent) = pd.parent {
            let _ = writeln!(out, "  parent: '{}' (child id {})", sd.protection_domains[parent].name, pd.child_id.unwrap_or(0));
        }
        let _ = writeln!(out, "  mappings:");
        let mut maps: Vec<_> = img.mappings.iter().collect();
        maps.sort_by_key(|m| m.vaddr);
        for m in maps {
            let perms = format!(
                "{}{}{}",
                if m.rights.read { 'r' } else { '-' },
                if m.rights.write { 'w' } else { '-' },
                if m.rights.execute { 'x' } else { '-' }
            );
            let mem = if m.memory == Memory::Device { ", uncached" } else { "" };
            let _ = writeln!(
                out,
                "    {:#014x}..{:#014x} {} -> paddr {:#x}  {}{}",
                m.vaddr,
                m.vaddr + m.size,
                perms,
                m.paddr,
                m.what,
                mem
            );
        }
        let mut channels: Vec<_> = sd.channels_of(i).collect();
        channels.sort_by_key(|(me, _)| me.id);
        if !channels.is_empty() || !pd.irqs.is_empty() {
            let _ = writeln!(out, "  channels:");
        }
        for (me, other) in channels {
            let mut rights = Vec::new();
            if me.notify {
                rights.push("notify");
            }
            if me.pp {
                rights.push("ppc");
            }
            let rights = if rights.is_empty() { "receive only".to_string() } else { rights.join(", ") };
            let _ = writeln!(out, "    {:>2}: '{}' (its id {}): {}", me.id, sd.protection_domains[other.pd].name, other.id, rights);
        }
        for irq in &pd.irqs {
            let _ = writeln!(out, "    {:>2}: irq {} ({})", irq.id, irq.irq, irq.trigger);
        }
        let children: Vec<_> = sd.children(i).collect();
        if !children.is_empty() {
            let _ = writeln!(out, "  children:");
            for (_, c) in children {
                let _ = writeln!(out, "    {:>2}: '{}'", c.child_id.unwrap_or(0), c.name);
            }
        }
    }
    out
}
