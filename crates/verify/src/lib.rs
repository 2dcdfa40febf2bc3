//! The isolation verifier: what each protection domain of a system can
//! reach, the invariants every system must keep, the information-flow
//! policies the system declares, and a picture of it all.
//!
//! The input is a [`SystemDescription`] as [`sdf::read`] gives it: names
//! resolved, but validation rules not applied, so that a system that
//! breaks a rule is still analysed and the break reported with a witness.
//! Nothing here panics, whatever the model holds.
//!
//! 1. [`ReachGraph`]: nodes are PDs, memory regions, devices and
//!    interrupts; edges are the rights the description grants (maps with
//!    their perms and caching, PPC to the callee, notifications from an end
//!    with `notify="true"`, lends: callee -> region with the lend's perms,
//!    interrupt -> PD, device -> its regions and interrupts, parent ->
//!    child control, child -> parent fault reports), each with the
//!    position of the element that grants it.
//! 2. Invariants ([`Check::INVARIANTS`]), each a named check:
//!    - `device-memory-owner`: a region claimed by a `<device>` is mapped
//!      only by the device's owners, and lent only to them;
//!    - `irq-owner`: a device's interrupt is bound only to its owners;
//!    - `unowned-hardware`: hardware that more than one PD uses is claimed
//!      by a device, which names who may use it: a region outside RAM
//!      (device memory: a `phys_addr` range not wholly inside
//!      `RAM_BASE..RAM_BASE + RAM_SIZE`) that two or more PDs map or may be
//!      lent, and an interrupt bound to two or more PDs (the witness lists
//!      the maps and lends of such a region, the bindings of such an
//!      interrupt). Hardware that no device claims and one PD alone uses is
//!      that PD's, as in a plain Microkit system, so a Microkit system with
//!      a driver verifies as written; a `<device>` is needed only to name
//!      an owner or to share a device;
//!    - `writable-executable`: no map is both writable and executable;
//!    - `map-over-fixed-area`: no map covers the PD's stack, its guard
//!      page, the IPC buffer page or (when the caller gives the extents)
//!      the program image;
//!    - `ppc-priority`: priorities rise strictly along every chain of PPCs
//!      (the witness is the chain from a PD nobody calls);
//!    - `ppc-cycle`: PPCs never go round in a circle.
//!
//!    `writable-executable` and `map-over-fixed-area` are about maps only:
//!    a lent region is never mapped by its callee (it reaches the memory
//!    by kernel-checked copies), lends are never executable (reading
//!    refuses `x`), and a stack, IPC buffer or program image is no memory
//!    region, so a `<lend>` cannot name one.
//! 3. Information flow (module `flow` has the rules): A flows to B if A can
//!    write a region B can read, over a PPC either way, over a notification
//!    from A to B, from a region to the PD it may be lent to (and back, for
//!    a writable lend), from a device through its regions and interrupts,
//!    over parent/child control and fault reports, and along any chain of
//!    those.
//!
//!    A `<chain>` of a PD is taken as the trust declaration it is: the PD (the
//!    filter server) passes what enters at the first stage on to the last only
//!    through the via PDs, in order, and what enters at a later stage (a
//!    client attached at a filter) only through the vias below it. The flow
//!    graph splits that PD into its own node and one node per stage of each
//!    chain. Its maps of the regions, and its channel ends, that a stage names
//!    attach to that stage; the rest to its own node. A via's channel (and the
//!    parent/child link with a via PD) joins the via PD both ways to the
//!    stages just above and just below it, never to the own node; the PD's own
//!    map of the via's call page is dropped (the call itself stands for it)
//!    unless someone else touches the page. A read lend on a via's channel
//!    flows into the chain's stage that names the region (or else the stage
//!    just above the via), so the via PD sees lent data only after the vias
//!    above it; a write lend flows from the via PD to the region. For the
//!    policies a PD is all its nodes: named as a source, target or mediator it
//!    stands for its own node and its stages alike, so `mediated via="server"`
//!    still holds through the server's stages and `mediated via="filter"`
//!    holds when the filter sits in the chain between the clients' stage and
//!    the driver's (and fails for a client whose stage is below the filter).
//!    Witnesses show a stage as `blk_server (chain disk0, stage 1)`.
//!    A chain's `<link via=".." chain=".."/>` (a filter that may redirect
//!    requests into another disk's chain) is a flow step from the stage
//!    just below that via to the first stage of the linked chain
//!    (`redirects to`) and one back from below the linked chain's first via
//!    (`answers`: every answer of that chain comes up through it; both at
//!    the `link` element); a chain of
//!    one stage and no via is used only as a link's target. A read lend on
//!    a via's channel of a region that the via's chain does not name but a
//!    chain linked to it does enters there, so `mediated via="overlay0"`
//!    holds from a client of `clone0` to the DMA region of the disk that
//!    `overlay0` links to, and fails for that disk's own clients. The
//!    verifier checks the declaration's shape (a chain whose via does not lead
//!    to its PD by a channel of the declaring PD splits nothing), not the code
//!    that must keep it: that the server does is tested on the host.
//!
//!    Each `<policy>` (see the `sdf` crate) is checked against it; a broken
//!    one is reported with a shortest witness path, hop by hop.
//! 4. [`Analysis::report`]: per PD what it reads, writes, executes, may be
//!    lent and lends, signals and calls, its interrupts, devices, parent,
//!    children and chains (with their links, and where each PD enters
//!    each chain); then the invariants, then the policies.
//! 5. [`dot`]: the system as a Graphviz graph (lends dotted from the region
//!    to the callee, each chain a labelled path through its vias, each PD
//!    that enters a chain an edge to the via it meets first, each link an
//!    edge `link to <chain>` from its via).
//!
//! ```
//! let xml = r#"<system>
//!     <memory_region name="shared" size="0x1000"/>
//!     <protection_domain name="a"><program_image path="a.elf"/>
//!         <map mr="shared" vaddr="0x1000000" perms="rw"/></protection_domain>
//!     <protection_domain name="b"><program_image path="b.elf"/>
//!         <map mr="shared" vaddr="0x1000000" perms="r"/></protection_domain>
//!     <policy name="a-to-b" kind="no-flow"><from pd="a"/><to pd="b"/></policy>
//! </system>"#;
//! let sd = sdf::read("system.xml", xml).unwrap();
//! let analysis = verify::analyse(&sd, None);
//! assert!(!analysis.ok());
//! assert_eq!(
//!     analysis.violations()[0].to_string(),
//!     "policy 'a-to-b' (no-flow) violated: a -> [writes (map at system.xml:4:9)] -> \
//!      region 'shared' -> [is read by (map at system.xml:6:9)] -> b"
//! );
//! ```
#![forbid(unsafe_code)]

mod chains;
mod dot;
mod flow;
mod graph;
mod invariants;
mod report;
mod violation;

pub use dot::dot;
pub use graph::{Edge, EdgeKind, Node, ReachGraph};
pub use sdf::SystemDescription;
pub use violation::{Check, Hop, Violation};

/// One loadable segment of a PD's program image: the virtual range
/// `[vaddr, vaddr + size)` it occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramExtent {
    pub vaddr: u64,
    pub size: u64,
}

/// The result of [`analyse`].
#[derive(Clone, Debug)]
pub struct Analysis {
    violations: Vec<Violation>,
    report: String,
}

/// Analyse `sd`: build its reach graph, check every invariant and every
/// declared policy.
///
/// `programs`, if given, holds for each PD (by index into
/// [`SystemDescription::protection_domains`]) the segments of its program
/// image, which no map may overlap; a PD past the end of the slice is not
/// checked. Without it the report says that program images were not
/// checked.
pub fn analyse(sd: &SystemDescription, programs: Option<&[Vec<ProgramExtent>]>) -> Analysis {
    let graph = ReachGraph::new(sd);
    let cx = invariants::Context { sd, graph: &graph, claims: graph::Claims::new(sd), programs };
    let mut violations = Vec::new();
    for check in Check::INVARIANTS {
        violations.extend(invariants::run(check, &cx));
    }
    violations.extend(flow::check_policies(sd, &graph));
    let note = program_note(sd, programs);
    let report = report::report(sd, &graph, &violations, note.as_deref());
    Analysis { violations, report }
}

/// What the report says about program images that were not checked.
fn program_note(sd: &SystemDescription, programs: Option<&[Vec<ProgramExtent>]>) -> Option<String> {
    let Some(programs) = programs else {
        return Some("program images not checked: no program extents given".to_string());
    };
    let missing: Vec<&str> =
        sd.protection_domains.iter().skip(programs.len()).map(|pd| pd.name.as_str()).collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "program images not checked for {}: no program extents given",
        violation::quoted_list(missing)
    ))
}

impl Analysis {
    /// Every violation: the invariants in the order of
    /// [`Check::INVARIANTS`], then the policies in declaration order; each
    /// check's in the order of the description.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// True if there is no violation.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The readable report: the reach of each PD, then each invariant and
    /// each policy with its violations. Deterministic.
    pub fn report(&self) -> String {
        self.report.clone()
    }
}
