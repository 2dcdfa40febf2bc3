//! The spec's PD records against the description: names and order,
//! priorities, flags, parents and children, channel tables (channels and
//! IRQ bindings), address-space identifiers and entry points.

use crate::elf::Elf;
use crate::finding::Finding;
use abi::layout::STACK_TOP;
use bootspec::*;
use sdf::SystemDescription;
use std::collections::BTreeMap;

/// ASIDs are 8 bits wide (TCR_EL1.AS = 0); 0 tags the boot tables.
const ASID_LIMIT: u16 = 256;

/// Name of the PD at `index` of the spec, for messages: the declared name
/// where there is one.
fn pd_name(sd: &SystemDescription, spec: &Spec, index: usize) -> String {
    match sd.protection_domains.get(index) {
        Some(pd) => format!("'{}'", pd.name),
        None => match spec.pds.get(index) {
            Some(pd) => format!("'{}' (undeclared pd {index})", pd.name()),
            None => format!("pd {index}, which does not exist"),
        },
    }
}

fn flags_text(flags: u8) -> String {
    let mut parts = Vec::new();
    if flags & PD_PASSIVE != 0 {
        parts.push("passive".to_string());
    }
    if flags & PD_CAN_POWER_OFF != 0 {
        parts.push("can power off".to_string());
    }
    let unknown = flags & !(PD_PASSIVE | PD_CAN_POWER_OFF);
    if unknown != 0 {
        parts.push(format!("unknown flags {unknown:#x}"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// A `call_budget_us` (or a declared `call_budget`): 0 is no limit.
fn budget_text(us: u64) -> String {
    match us {
        0 => "none".into(),
        us => format!("{us} us"),
    }
}

/// Reserved fields of the spec's records must be zero: the kernel ignores
/// them today, and a later version may give them a meaning. Checked for
/// every PD record (undeclared ones too), every channel slot (empty ones
/// too) and every restore op; the lend array is checked with the lends.
pub(crate) fn check_reserved(sd: &SystemDescription, spec: &Spec, findings: &mut Vec<Finding>) {
    let name = |index: usize| match sd.protection_domains.get(index) {
        Some(pd) => pd.name.clone(),
        None => spec.pds.get(index).map(|p| p.name().to_string()).unwrap_or_default(),
    };
    let mut report = |pd: Option<String>, record: String, field: &'static str, value: u64| {
        if value != 0 {
            findings.push(Finding::Reserved { pd, record, field, value });
        }
    };
    for (index, rec) in spec.pds.iter().enumerate() {
        report(Some(name(index)), "its record".into(), "_reserved", le_bytes(&rec._reserved));
        report(Some(name(index)), "its record".into(), "_reserved2", u64::from(rec._reserved2));
        for (id, c) in rec.channels.iter().enumerate() {
            report(Some(name(index)), format!("channel {id}"), "_reserved", u64::from(c._reserved));
            report(Some(name(index)), format!("channel {id}"), "_reserved2", u64::from(c._reserved2));
        }
    }
    for (at, op) in spec.restore.iter().enumerate() {
        // Named as the restore findings name it: by its PD and its place
        // in that PD's ops, where a PD claims it.
        let owner = spec.pds.iter().enumerate().find_map(|(index, rec)| {
            let k = at.checked_sub(rec.restore_first as usize)?;
            (k < rec.restore_count as usize).then_some((index, k))
        });
        match owner {
            Some((index, k)) => report(Some(name(index)), format!("restore op {k}"), "_reserved", u64::from(op._reserved)),
            None => report(None, format!("restore op {at}"), "_reserved", u64::from(op._reserved)),
        }
    }
}

/// Up to eight bytes as a little-endian number.
pub(crate) fn le_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().take(8).rev().fold(0, |v, &b| (v << 8) | u64::from(b))
}

/// The channel table the description gives each PD, built from the
/// description alone.
fn declared_channels(sd: &SystemDescription) -> Vec<[ChannelDesc; MAX_CHANNELS]> {
    let mut tables = vec![[ChannelDesc::default(); MAX_CHANNELS]; sd.protection_domains.len()];
    for ch in &sd.channels {
        let [a, b] = &ch.ends;
        for (me, other) in [(a, b), (b, a)] {
            let rights = if me.notify { RIGHT_NOTIFY } else { 0 } | if me.pp { RIGHT_PPC } else { 0 };
            if let Some(slot) = tables.get_mut(me.pd).and_then(|t| t.get_mut(me.id as usize)) {
                *slot = ChannelDesc {
                    kind: CHANNEL_PD,
                    rights,
                    peer: u8::try_from(other.pd).unwrap_or(NO_PD),
                    peer_channel: other.id,
                    ..Default::default()
                };
            }
        }
    }
    for (i, pd) in sd.protection_domains.iter().enumerate() {
        for irq in &pd.irqs {
            if let Some(slot) = tables.get_mut(i).and_then(|t| t.get_mut(irq.id as usize)) {
                *slot = ChannelDesc {
                    kind: CHANNEL_IRQ,
                    irq: u16::try_from(irq.irq).unwrap_or(u16::MAX),
                    trigger: if irq.trigger == sdf::Trigger::Edge { TRIGGER_EDGE } else { TRIGGER_LEVEL },
                    ..Default::default()
                };
            }
        }
    }
    tables
}

/// Whether two slots mean the same to the kernel (fields a kind does not
/// use are ignored).
fn same_channel(a: &ChannelDesc, b: &ChannelDesc) -> bool {
    a.kind == b.kind
        && match a.kind {
            CHANNEL_NONE => true,
            CHANNEL_PD => (a.rights, a.peer, a.peer_channel) == (b.rights, b.peer, b.peer_channel),
            CHANNEL_IRQ => (a.irq, a.trigger) == (b.irq, b.trigger),
            _ => a == b,
        }
}

fn describe_channel(sd: &SystemDescription, spec: &Spec, c: &ChannelDesc) -> Option<String> {
    match c.kind {
        CHANNEL_NONE => None,
        CHANNEL_PD => {
            let rights = match c.rights {
                0 => "no rights".to_string(),
                RIGHT_NOTIFY => "notify".into(),
                RIGHT_PPC => "pp".into(),
                r if r == RIGHT_NOTIFY | RIGHT_PPC => "notify+pp".into(),
                r => format!("rights {r:#x}"),
            };
            Some(format!("{rights} to {} channel {}", pd_name(sd, spec, c.peer as usize), c.peer_channel))
        }
        CHANNEL_IRQ => {
            let trigger = match c.trigger {
                TRIGGER_LEVEL => "level".to_string(),
                TRIGGER_EDGE => "edge".into(),
                t => format!("trigger {t}"),
            };
            Some(format!("irq {} ({trigger})", c.irq))
        }
        k => Some(format!("unknown kind {k}")),
    }
}

pub(crate) fn check(sd: &SystemDescription, spec: &Spec, programs: &[Option<Elf>], findings: &mut Vec<Finding>) {
    let declared = sd.protection_domains.len();
    if spec.pds.len() != declared {
        findings.push(Finding::PdCount { declared, found: spec.pds.len() });
    }
    for (index, pd) in spec.pds.iter().enumerate().skip(declared) {
        findings.push(Finding::Spec(format!("protection domain {index} '{}' is not declared", pd.name())));
    }
    let channels = declared_channels(sd);
    let mut asids: BTreeMap<u16, String> = BTreeMap::new();
    for (index, (decl, rec)) in sd.protection_domains.iter().zip(spec.pds).enumerate() {
        let name = &decl.name;
        let field = |field, found: String, declared: String| Finding::PdField { pd: name.clone(), field, found, declared };
        if rec.name() != decl.name {
            findings.push(Finding::PdName { index, declared: decl.name.clone(), found: rec.name().into() });
        }
        if rec.priority != decl.priority {
            findings.push(field("priority", rec.priority.to_string(), decl.priority.to_string()));
        }
        let flags = if decl.passive { PD_PASSIVE } else { 0 } | if decl.can_power_off { PD_CAN_POWER_OFF } else { 0 };
        if rec.flags != flags {
            findings.push(field("flags", flags_text(rec.flags), flags_text(flags)));
        }
        let declared_budget = decl.call_budget.unwrap_or(0);
        if u64::from(rec.call_budget_us) != declared_budget {
            findings.push(field("call budget", budget_text(u64::from(rec.call_budget_us)), budget_text(declared_budget)));
        }

        let parent_text = |parent: Option<(usize, u8)>| match parent {
            None => "none".to_string(),
            Some((p, id)) => format!("{} (child id {id})", pd_name(sd, spec, p)),
        };
        let found_parent = (rec.parent != NO_PD).then_some((rec.parent as usize, rec.id_in_parent));
        let declared_parent = decl.parent.map(|p| (p, decl.child_id.unwrap_or(0)));
        if found_parent != declared_parent {
            findings.push(field("parent", parent_text(found_parent), parent_text(declared_parent)));
        }
        for (id, &child) in rec.children.iter().enumerate() {
            let want = sd
                .protection_domains
                .iter()
                .position(|c| c.parent == Some(index) && c.child_id.map(usize::from) == Some(id));
            let found = (child != NO_PD).then_some(child as usize);
            if found != want {
                findings.push(Finding::Child {
                    pd: name.clone(),
                    id,
                    found: found.map(|c| pd_name(sd, spec, c)),
                    declared: want.map(|c| pd_name(sd, spec, c)),
                });
            }
        }

        let declared_table = channels.get(index).copied().unwrap_or([ChannelDesc::default(); MAX_CHANNELS]);
        for (id, (found, want)) in rec.channels.iter().zip(&declared_table).enumerate() {
            if !same_channel(found, want) {
                let mut found_text = describe_channel(sd, spec, found);
                let want_text = describe_channel(sd, spec, want);
                if found_text == want_text {
                    // Differs only in bytes the description says nothing about.
                    found_text = Some(format!("{found:?}"));
                }
                findings.push(Finding::Channel { pd: name.clone(), id, found: found_text, declared: want_text });
            }
        }

        if rec.asid == 0 {
            findings.push(Finding::Asid { pd: name.clone(), asid: 0, problem: "is the boot tables' ASID".into() });
        } else if rec.asid >= ASID_LIMIT {
            findings.push(Finding::Asid { pd: name.clone(), asid: rec.asid, problem: "does not fit the 8-bit ASIDs the kernel uses".into() });
        } else if let Some(other) = asids.insert(rec.asid, name.clone()) {
            findings.push(Finding::Asid { pd: name.clone(), asid: rec.asid, problem: format!("is shared with pd '{other}'") });
        }

        if let Some(Some(program)) = programs.get(index) {
            if rec.entry != program.entry {
                findings.push(field("entry point", format!("{:#x}", rec.entry), format!("{:#x} (the program's)", program.entry)));
            }
        }
        if rec.stack_top != STACK_TOP {
            findings.push(field("stack top", format!("{:#x}", rec.stack_top), format!("{STACK_TOP:#x}")));
        }
    }
}
