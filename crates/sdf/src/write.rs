//! Writing: a model back to SDF XML, for `strata expand` and for tests.
//!
//! The output lists memory regions, disks (each with its filters and their
//! params and links), protection domains (nested ones inside their parents),
//! channels (their two ends, then their lends), devices and policies, each
//! kind in model order; within a protection domain its program image,
//! maps, irqs, setvars, block client, chains and children; within a chain
//! its stages and vias in turn, then its links, within a stage its regions
//! then its channels. Attributes at their default values are left out (a lend's
//! `perms` is always written), so reading the text back gives the same
//! model (positions aside) for any model that [`crate::read`] can produce.

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
        w.disk(disk);
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
        let call_budget = pd.call_budget.map(|b| b.to_string());
        if let Some(call_budget) = &call_budget {
            attrs.push(("call_budget", call_budget));
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
        for chain in &pd.chains {
            self.chain(inner, chain);
        }
        if nesting < abi::MAX_PDS {
            let children: Vec<usize> = self.sd.children(index).map(|(child, _)| child).collect();
            for child in children {
                self.protection_domain(child, inner, nesting + 1);
            }
        }
        self.close(depth, "protection_domain");
    }

    fn disk(&mut self, disk: &Disk) {
        let slot = disk.virtio_slot.to_string();
        let attrs = [("name", disk.name.as_str()), ("virtio_slot", slot.as_str())];
        let open = !disk.filters.is_empty();
        self.element(1, "disk", &attrs, open);
        if !open {
            return;
        }
        for filter in &disk.filters {
            self.filter(filter);
        }
        self.close(1, "disk");
    }

    fn filter(&mut self, filter: &Filter) {
        let data = filter.data.to_string();
        let priority = filter.priority.map(|p| p.to_string());
        let budget = filter.budget.map(|b| b.to_string());
        let on_fault = filter.on_fault.to_string();
        let mut attrs = vec![
            ("name", filter.name.as_str()),
            ("program", filter.program.as_str()),
            ("data", data.as_str()),
        ];
        if let Some(priority) = &priority {
            attrs.push(("priority", priority));
        }
        if let Some(budget) = &budget {
            attrs.push(("budget", budget));
        }
        if filter.on_fault != OnFault::default() {
            attrs.push(("on_fault", &on_fault));
        }
        let open = !filter.params.is_empty() || !filter.links.is_empty();
        self.element(2, "filter", &attrs, open);
        if !open {
            return;
        }
        for param in &filter.params {
            self.element(3, "param", &[("key", &param.key), ("value", &param.value)], false);
        }
        for link in &filter.links {
            let disk = self.sd.disks.get(link.disk).map_or("", |d| d.name.as_str());
            self.element(3, "link", &[("disk", disk)], false);
        }
        self.close(2, "filter");
    }

    fn chain(&mut self, depth: usize, chain: &Chain) {
        self.element(depth, "chain", &[("name", &chain.name)], true);
        let inner = depth + 1;
        for (i, stage) in chain.stages.iter().enumerate() {
            if i > 0 {
                if let Some(via) = chain.vias.get(i - 1) {
                    self.via(inner, via);
                }
            }
            let open = !stage.regions.is_empty() || !stage.channels.is_empty();
            self.element(inner, "stage", &[], open);
            if !open {
                continue;
            }
            for region in &stage.regions {
                self.element(inner + 1, "region", &[("mr", &region.mr)], false);
            }
            for channel in &stage.channels {
                self.element(inner + 1, "channel", &[("id", &channel.id.to_string())], false);
            }
            self.close(inner, "stage");
        }
        for link in &chain.links {
            let via = chain.vias.get(link.via).map_or("", |v| self.pd_name(v.pd));
            self.element(inner, "link", &[("via", via), ("chain", &link.chain)], false);
        }
        self.close(depth, "chain");
    }

    fn via(&mut self, depth: usize, via: &Via) {
        let channel = via.channel.to_string();
        let mut attrs = vec![("pd", self.pd_name(via.pd)), ("channel", channel.as_str())];
        if let Some(mr) = &via.mr {
            attrs.push(("mr", mr));
        }
        self.element(depth, "via", &attrs, false);
    }

    fn block_client(&mut self, depth: usize, client: &BlockClient) {
        let disk = self.sd.disks.get(client.disk).map_or("", |d| d.name.as_str());
        let partition = client.partition.map(|p| p.to_string());
        let data_size = hex(client.data_size);
        let capacity = client.queue_capacity.to_string();
        let mut attrs = vec![("disk", disk)];
        if let Some(at) = client.at {
            let disk = self.sd.disks.get(client.disk);
            let filter = disk.and_then(|d| d.filters.get(at)).map_or("", |f| f.name.as_str());
            attrs.push(("at", filter));
        }
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
        if client.read_only {
            attrs.push(("read_only", "true"));
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
        for lend in &ch.lends {
            let perms = lend.perms.to_string();
            self.element(2, "lend", &[("mr", &lend.mr), ("perms", &perms)], false);
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
            <disk name="disk0" virtio_slot="31">
                <filter name="f0" program="f0.elf" data="read-write" priority="241" budget="7" on_fault="restart">
                    <param key="k &amp; l" value=""/><param key="rule" value="fail write 0..100"/>
                </filter>
                <filter name="f1" program="f1.elf" data="none"><link disk="disk2"/><link disk="disk1"/></filter>
            </disk>
            <disk name="disk1" virtio_slot="30"/>
            <disk name="disk2" virtio_slot="29"/>
            <protection_domain name="a" priority="3" budget="10" period="20" stack_size="0x2000">
                <program_image path="a.elf"/>
                <map mr="m &amp; n" vaddr="0x4000_0000" perms="r" cached="false" setvar_vaddr="v"/>
                <irq irq="40" id="2" trigger="edge"/>
                <setvar symbol="p" region_paddr="q"/>
                <setvar symbol="b" bytes="00ff"/>
                <block_client disk="disk0" partition="2" data_size="0x2000" queue_capacity="8"/>
                <chain name="x">
                    <stage><channel id="0"/><region mr="q"/></stage>
                    <via pd="b" channel="0" mr="m &amp; n"/>
                    <stage/>
                    <via pd="b" channel="0"/>
                    <stage><region mr="m &amp; n"/></stage>
                </chain>
                <chain name="y"><link chain="z" via="b"/><stage/><via pd="b" channel="0"/><stage/></chain>
                <chain name="z"><stage/></chain>
                <protection_domain name="c" id="4" passive="true" can_power_off="true">
                    <program_image path="c.elf"/>
                </protection_domain>
            </protection_domain>
            <protection_domain name="b" priority="9" call_budget="250"><program_image path="b.elf"/>
                <block_client disk="disk0" at="f1"/></protection_domain>
            <channel><end pd="a" id="0" pp="true"/><lend mr="q" perms="wr"/>
                <end pd="b" id="0" notify="false"/><lend mr="m &amp; n" perms="r"/></channel>
            <device name="d" owner="a, b"><region mr="q"/><interrupt irq="41"/></device>
            <policy name="p1" kind="no-flow"><from pd="a"/><to region="q"/><to device="d"/></policy>
            <policy name="p2" kind="mediated" via="b"><from pd="a"/><to pd="c"/></policy>
            <policy name="p3" kind="isolated" pd="c"><allow pd="a"/></policy>
            <policy name="p4" kind="isolated" pd="b"/>
        </system>"#;
        let sd = crate::read("f.xml", xml).unwrap();
        let written = to_xml(&sd);
        assert_eq!(sd.protection_domains[2].block_client.as_ref().map(|c| c.at), Some(Some(1)));
        assert!(written.contains(r#"<block_client disk="disk0" at="f1" />"#), "{written}");
        assert!(written.contains(r#"<link disk="disk2" />"#), "{written}");
        assert!(written.contains(r#"<link via="b" chain="z" />"#), "{written}");
        let again = crate::read("f.xml", &written).unwrap_or_else(|e| panic!("{e:?}\n{written}"));
        assert_eq!(again.without_positions(), sd.without_positions(), "{written}");
        assert_eq!(to_xml(&again), written, "deterministic");
    }
}
