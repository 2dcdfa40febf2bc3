//! Writing: a model back to SDF XML, for `strata expand` and for tests.
//!
//! The output lists memory regions, disks, protection domains (nested ones
//! inside their parents), channels, devices and policies, each kind in
//! model order; within a protection domain its program image, maps, irqs,
//! setvars, block client and children. Attributes at their default values
//! are left out, so reading the text back gives the same model (positions
//! aside) for any model that [`crate::read`] can produce.

use std::fmt::Write;

use abi::layout;

use crate::model::*;
use crate::values::hex_string;

pub(crate) fn to_xml(sd: &SystemDescription) -> String {
    let mut w = Writer { sd, out: String::new() };
    w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<system>\n");
    for mr in &sd.memory_regions {
        w.memory_region(mr);
    }
    for disk in &sd.disks {
        let slot = disk.virtio_slot.to_string();
        w.element(1, "disk", &[("name", &disk.name), ("virtio_slot", &slot)], false);
    }
    for (index, pd) in sd.protection_domains.iter().enumerate() {
        if pd.parent.is_none() {
            w.protection_domain(index, 1, 0);
        }
    }
    for ch in &sd.channels {
        w.channel(ch);
    }
    for dev in &sd.devices {
        w.device(dev);
    }
    // Pending policies (an unexpanded system's policies that name generated
    // elements) go in their places, by name.
    for policy in sd.all_policies() {
        match policy {
            AnyPolicy::Resolved(policy) => w.policy(policy, |w, &pd| w.pd_name(pd)),
            AnyPolicy::Pending(pending) => w.policy(&pending.policy, |_, pd| &pd.name),
        }
    }
    w.out.push_str("</system>\n");
    w.out
}

struct Writer<'a> {
    sd: &'a SystemDescription,
    out: String,
}

fn hex(value: u64) -> String {
    format!("{value:#x}")
}

impl<'a> Writer<'a> {
    /// `<tag a="v" .../>`, or only the opening tag if `open`.
    fn element(&mut self, depth: usize, tag: &str, attrs: &[(&str, &str)], open: bool) {
        self.indent(depth);
        self.out.push('<');
        self.out.push_str(tag);
        for (name, value) in attrs {
            let _ = write!(self.out, " {name}=\"{}\"", escape(value));
        }
        self.out.push_str(if open { ">\n" } else { " />\n" });
    }

    fn close(&mut self, depth: usize, tag: &str) {
        self.indent(depth);
        let _ = writeln!(self.out, "</{tag}>");
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("    ");
        }
    }

    /// The name of the protection domain at `index` (borrowed from the
    /// model, not from the writer).
    fn pd_name(&self, index: usize) -> &'a str {
        let sd: &'a SystemDescription = self.sd;
        sd.protection_domains.get(index).map_or("", |pd| pd.name.as_str())
    }

    fn memory_region(&mut self, mr: &MemoryRegion) {
        let size = hex(mr.size);
        let page_size = hex(mr.page_size);
        let phys_addr = mr.phys_addr.map(hex);
        let mut attrs = vec![("name", mr.name.as_str()), ("size", size.as_str())];
        if mr.page_size != DEFAULT_PAGE_SIZE {
            attrs.push(("page_size", &page_size));
        }
        if let Some(addr) = &phys_addr {
            attrs.push(("phys_addr", addr));
        }
        self.element(1, "memory_region", &attrs, false);
    }

    /// The protection domain at `index` and, inside it, its children.
    /// `nesting` bounds the recursion on a model whose parent links form a
    /// cycle (which reading never produces).
    fn protection_domain(&mut self, index: usize, depth: usize, nesting: usize) {
        let Some(pd) = self.sd.protection_domains.get(index) else { return };
        let priority = pd.priority.to_string();
        let stack_size = hex(pd.stack_size);
        let budget = pd.budget.to_string();
        let period = pd.period.to_string();
        let id = pd.child_id.map(|id| id.to_string());
        let mut attrs = vec![("name", pd.name.as_str())];
        if let Some(id) = &id {
            attrs.push(("id", id));
        }
        if pd.priority != DEFAULT_PRIORITY {
            attrs.push(("priority", &priority));
        }
        if pd.passive {
            attrs.push(("passive", "true"));
        }
        if pd.stack_size != layout::DEFAULT_STACK_SIZE {
            attrs.push(("stack_size", &stack_size));
        }
        if pd.budget != DEFAULT_BUDGET_US {
            attrs.push(("budget", &budget));
        }
        if pd.period != pd.budget {
            attrs.push(("period", &period));
        }
        if pd.can_power_off {
            attrs.push(("can_power_off", "true"));
        }
        self.element(depth, "protection_domain", &attrs, true);
        let inner = depth + 1;
        self.element(inner, "program_image", &[("path", &pd.program_image)], false);
        for map in &pd.maps {
            let vaddr = hex(map.vaddr);
            let perms = map.perms.to_string();
            let mut attrs = vec![("mr", map.mr.as_str()), ("vaddr", vaddr.as_str())];
            if map.perms != Perms::READ_WRITE {
                attrs.push(("perms", &perms));
            }
            if !map.cached {
                attrs.push(("cached", "false"));
            }
            if let Some(symbol) = &map.setvar_vaddr {
                attrs.push(("setvar_vaddr", symbol));
            }
            self.element(inner, "map", &attrs, false);
        }
        for irq in &pd.irqs {
            let (number, id, trigger) =
                (irq.irq.to_string(), irq.id.to_string(), irq.trigger.to_string());
            let mut attrs = vec![("irq", number.as_str()), ("id", id.as_str())];
            if irq.trigger != Trigger::default() {
                attrs.push(("trigger", &trigger));
            }
            self.element(inner, "irq", &attrs, false);
        }
        for setvar in &pd.setvars {
            let (name, value) = match &setvar.value {
                SetVarValue::RegionPaddr(region) => ("region_paddr", region.clone()),
                SetVarValue::Bytes(bytes) => ("bytes", hex_string(bytes)),
            };
            self.element(inner, "setvar", &[("symbol", &setvar.symbol), (name, &value)], false);
        }
        if let Some(client) = &pd.block_client {
            self.block_client(inner, client);
        }
        if nesting < abi::MAX_PDS {
            let children: Vec<usize> = self.sd.children(index).map(|(child, _)| child).collect();
            for child in children {
                self.protection_domain(child, inner, nesting + 1);
            }
        }
        self.close(depth, "protection_domain");
    }

    fn block_client(&mut self, depth: usize, client: &BlockClient) {
        let disk = self.sd.disks.get(client.disk).map_or("", |d| d.name.as_str());
        let partition = client.partition.map(|p| p.to_string());
        let data_size = hex(client.data_size);
        let capacity = client.queue_capacity.to_string();
        let mut attrs = vec![("disk", disk)];
        if let Some(p) = &partition {
            attrs.push(("partition", p));
        }
        if client.data_size != DEFAULT_DATA_SIZE {
            attrs.push(("data_size", &data_size));
        }
        if client.queue_capacity != DEFAULT_QUEUE_CAPACITY {
            attrs.push(("queue_capacity", &capacity));
        }
        if client.direct {
            attrs.push(("direct", "true"));
        }
        self.element(depth, "block_client", &attrs, false);
    }

    fn channel(&mut self, ch: &Channel) {
        self.element(1, "channel", &[], true);
        for end in &ch.ends {
            let id = end.id.to_string();
            let mut attrs = vec![("pd", self.pd_name(end.pd)), ("id", id.as_str())];
            if end.pp {
                attrs.push(("pp", "true"));
            }
            if !end.notify {
                attrs.push(("notify", "false"));
            }
            self.element(2, "end", &attrs, false);
        }
        self.close(1, "channel");
    }

    fn device(&mut self, dev: &Device) {
        let owners: Vec<&str> = dev.owners.iter().map(|&o| self.pd_name(o)).collect();
        let owners = owners.join(" ");
        self.element(1, "device", &[("name", &dev.name), ("owner", &owners)], true);
        for region in &dev.regions {
            self.element(2, "region", &[("mr", &region.mr)], false);
        }
        for irq in &dev.irqs {
            self.element(2, "interrupt", &[("irq", &irq.irq.to_string())], false);
        }
        self.close(1, "device");
    }

    /// A policy; `pd_name` gives the name of a protection domain it
    /// refers to.
    fn policy<P>(&mut self, policy: &'a Policy<P>, pd_name: impl Fn(&Self, &'a P) -> &'a str) {
        let kind = policy.rule.kind();
        let via = match &policy.rule {
            PolicyRule::Mediated { via, .. } => {
                via.iter().map(|v| pd_name(self, v)).collect::<Vec<_>>().join(" ")
            }
            _ => String::new(),
        };
        let mut attrs = vec![("name", policy.name.as_str()), ("kind", kind)];
        match &policy.rule {
            PolicyRule::Mediated { .. } => attrs.push(("via", &via)),
            PolicyRule::Isolated { pd, .. } => attrs.push(("pd", pd_name(self, pd))),
            PolicyRule::NoFlow { .. } => {}
        }
        let (from, to, allow) = match &policy.rule {
            PolicyRule::NoFlow { from, to } | PolicyRule::Mediated { from, to, .. } => {
                (from.as_slice(), to.as_slice(), &[][..])
            }
            PolicyRule::Isolated { allow, .. } => (&[][..], &[][..], allow.as_slice()),
        };
        if from.is_empty() && to.is_empty() && allow.is_empty() {
            self.element(1, "policy", &attrs, false);
            return;
        }
        self.element(1, "policy", &attrs, true);
        for (tag, endpoints) in [("from", from), ("to", to)] {
            for endpoint in endpoints {
                let (name, value) = match &endpoint.entity {
                    Entity::Pd(pd) => ("pd", pd_name(self, pd)),
                    Entity::Region(region) => ("region", region.as_str()),
                    Entity::Device(device) => ("device", device.as_str()),
                };
                self.element(2, tag, &[(name, value)], false);
            }
        }
        for a in allow {
            self.element(2, "allow", &[("pd", pd_name(self, &a.pd))], false);
        }
        self.close(1, "policy");
    }
}

/// An attribute value as XML text: markup characters and the whitespace
/// that attribute-value normalisation would turn into spaces are written
/// as references.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\r' | '\t' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_whitespace_in_values_are_escaped() {
        assert_eq!(escape("a<b>&\"c'\n\t"), "a&lt;b&gt;&amp;&quot;c&apos;&#10;&#9;");
    }

    #[test]
    fn a_written_system_reads_back_to_the_same_model() {
        let xml = r#"<system>
            <memory_region name="m &amp; n" size="0x20_0000" page_size="0x200000" phys_addr="0x5000_0000"/>
            <memory_region name="q" size="0x1000"/>
            <disk name="disk0" virtio_slot="31"/>
            <protection_domain name="a" priority="3" budget="10" period="20" stack_size="0x2000">
                <program_image path="a.elf"/>
                <map mr="m &amp; n" vaddr="0x4000_0000" perms="r" cached="false" setvar_vaddr="v"/>
                <irq irq="40" id="2" trigger="edge"/>
                <setvar symbol="p" region_paddr="q"/>
                <setvar symbol="b" bytes="00ff"/>
                <block_client disk="disk0" partition="2" data_size="0x2000" queue_capacity="8"/>
                <protection_domain name="c" id="4" passive="true" can_power_off="true">
                    <program_image path="c.elf"/>
                </protection_domain>
            </protection_domain>
            <protection_domain name="b" priority="9"><program_image path="b.elf"/></protection_domain>
            <channel><end pd="a" id="0" pp="true"/><end pd="b" id="0" notify="false"/></channel>
            <device name="d" owner="a, b"><region mr="q"/><interrupt irq="41"/></device>
            <policy name="p1" kind="no-flow"><from pd="a"/><to region="q"/><to device="d"/></policy>
            <policy name="p2" kind="mediated" via="b"><from pd="a"/><to pd="c"/></policy>
            <policy name="p3" kind="isolated" pd="c"><allow pd="a"/></policy>
            <policy name="p4" kind="isolated" pd="b"/>
        </system>"#;
        let sd = crate::read("f.xml", xml).unwrap();
        let written = to_xml(&sd);
        let again = crate::read("f.xml", &written).unwrap_or_else(|e| panic!("{e:?}\n{written}"));
        assert_eq!(again.without_positions(), sd.without_positions(), "{written}");
        assert_eq!(to_xml(&again), written, "deterministic");
    }
}
