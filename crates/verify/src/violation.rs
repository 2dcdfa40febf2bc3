//! What the checks find: a [`Violation`] names the broken check, says what
//! is wrong and carries a witness, the hops (each with the position of the
//! element that creates it) that show it.

use std::fmt;

use sdf::{Pos, SystemDescription};

use crate::graph::Node;

/// A check the verifier runs: an invariant, or one declared policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Device memory mapped by, or lent to, a protection domain that does
    /// not own the device.
    DeviceMemoryOwner,
    /// An interrupt bound to a protection domain that does not own the
    /// device raising it.
    IrqOwner,
    /// Device memory (outside RAM) or an interrupt that more than one
    /// protection domain uses and no device claims.
    UnownedHardware,
    /// A mapping both writable and executable.
    WritableExecutable,
    /// A mapping over the stack, its guard page, the IPC buffer or the
    /// program image.
    MapOverFixedArea,
    /// A chain of protected procedure calls whose priority does not rise
    /// strictly at every hop.
    PpcPriority,
    /// Protected procedure calls that form a cycle.
    PpcCycle,
    /// The declared policy at this index of
    /// [`SystemDescription::policies`].
    Policy(usize),
}

impl Check {
    /// Every invariant, in the order they run and are reported.
    pub const INVARIANTS: [Check; 7] = [
        Check::DeviceMemoryOwner,
        Check::IrqOwner,
        Check::UnownedHardware,
        Check::WritableExecutable,
        Check::MapOverFixedArea,
        Check::PpcPriority,
        Check::PpcCycle,
    ];

    /// The check's name, as it starts an invariant's message; `policy` for
    /// every policy.
    pub fn name(self) -> &'static str {
        match self {
            Check::DeviceMemoryOwner => "device-memory-owner",
            Check::IrqOwner => "irq-owner",
            Check::UnownedHardware => "unowned-hardware",
            Check::WritableExecutable => "writable-executable",
            Check::MapOverFixedArea => "map-over-fixed-area",
            Check::PpcPriority => "ppc-priority",
            Check::PpcCycle => "ppc-cycle",
            Check::Policy(_) => "policy",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a witness: `from` does `action` to `to`, because of the
/// element at `pos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub from: Node,
    pub to: Node,
    /// What `from` does to `to`: `writes`, `is read by`, `calls`,
    /// `is lent to`, `maps rw`, ...
    pub action: String,
    /// The element that creates the hop: `map`, `channel`, `lend`, `irq`,
    /// `protection_domain`, `region`, `interrupt`.
    pub element: &'static str,
    /// Where that element starts in the system description.
    pub pos: Pos,
}

/// A broken invariant or policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub check: Check,
    /// What is wrong, naming the entities involved. Starts with the check's
    /// name for an invariant, with `policy '<name>'` for a policy.
    pub message: String,
    /// The hops that show it, in order; a path where consecutive hops
    /// join. Empty only where one element is the whole story (its position
    /// is then in `message`).
    pub witness: Vec<Hop>,
    /// `message` and the witness as one line.
    text: String,
}

impl Violation {
    /// A violation whose witness is rendered with `label` naming nodes.
    pub(crate) fn new(
        sd: &SystemDescription,
        check: Check,
        message: String,
        witness: Vec<Hop>,
        label: &dyn Fn(Node) -> String,
    ) -> Violation {
        let text = if witness.is_empty() {
            message.clone()
        } else {
            format!("{message}: {}", render_witness(&sd.file, &witness, label))
        };
        Violation { check, message, witness, text }
    }
}

impl fmt::Display for Violation {
    /// One line: the message, then the witness hop by hop, e.g.
    /// `policy 'p' (no-flow) violated: a -> [writes (map at s.xml:9:9)] ->
    /// region 'r' -> [is read by (map at s.xml:14:9)] -> b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `a -> [action (element at file:line:col)] -> b -> ...`; hops that do
/// not continue the previous one start a new path after `; `.
pub(crate) fn render_witness(file: &str, hops: &[Hop], label: &dyn Fn(Node) -> String) -> String {
    let mut out = String::new();
    let mut at: Option<Node> = None;
    for hop in hops {
        if at != Some(hop.from) {
            if at.is_some() {
                out.push_str("; ");
            }
            out.push_str(&label(hop.from));
        }
        out.push_str(&format!(
            " -> [{} ({} at {file}:{})] -> {}",
            hop.action,
            hop.element,
            hop.pos,
            label(hop.to)
        ));
        at = Some(hop.to);
    }
    out
}

/// The usual name of a node in messages: a protection domain by its bare
/// name, a stage of one as `server (chain disk0, stage 1)` (counting from
/// 1), the rest with their kind (`region 'r'`, `device 'd'`, `irq 34`).
pub(crate) fn node_label(sd: &SystemDescription, node: Node) -> String {
    match node {
        Node::Pd(i) => sd.protection_domains.get(i).map_or("?".into(), |pd| pd.name.clone()),
        Node::Stage { pd, chain, stage } => {
            let p = sd.protection_domains.get(pd);
            let name = p.map_or("?", |p| p.name.as_str());
            let chain = p.and_then(|p| p.chains.get(chain)).map_or("?", |c| c.name.as_str());
            format!("{name} (chain {chain}, stage {})", stage + 1)
        }
        Node::Region(i) => {
            format!("region '{}'", sd.memory_regions.get(i).map_or("?", |mr| mr.name.as_str()))
        }
        Node::Device(i) => {
            format!("device '{}'", sd.devices.get(i).map_or("?", |dev| dev.name.as_str()))
        }
        Node::Irq(irq) => format!("irq {irq}"),
    }
}

/// `'a', 'b'`: names in quotes, separated by commas.
pub(crate) fn quoted_list<'s>(names: impl IntoIterator<Item = &'s str>) -> String {
    names.into_iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(from: Node, to: Node, action: &str, line: u32) -> Hop {
        Hop { from, to, action: action.into(), element: "map", pos: Pos { line, col: 9 } }
    }

    fn label(node: Node) -> String {
        format!("{node:?}")
    }

    #[test]
    fn joined_hops_render_as_one_path() {
        let hops = [
            hop(Node::Pd(0), Node::Region(0), "writes", 3),
            hop(Node::Region(0), Node::Pd(1), "is read by", 4),
        ];
        assert_eq!(
            render_witness("s.xml", &hops, &label),
            "Pd(0) -> [writes (map at s.xml:3:9)] -> Region(0) -> [is read by (map at s.xml:4:9)] \
             -> Pd(1)"
        );
    }

    #[test]
    fn disjoint_hops_render_as_separate_paths() {
        let hops = [
            hop(Node::Pd(0), Node::Region(0), "maps rw", 3),
            hop(Node::Pd(1), Node::Region(0), "maps r", 4),
        ];
        assert_eq!(
            render_witness("s.xml", &hops, &label),
            "Pd(0) -> [maps rw (map at s.xml:3:9)] -> Region(0); Pd(1) -> [maps r (map at \
             s.xml:4:9)] -> Region(0)"
        );
    }

    #[test]
    fn check_names_are_kebab_case_and_distinct() {
        let mut names: Vec<_> = Check::INVARIANTS.iter().map(|c| c.name()).collect();
        names.push(Check::Policy(0).name());
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
    }
}
