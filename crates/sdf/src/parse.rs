//! Reading: XML text to the model.
//!
//! Reading has three steps. The XML parser (roxmltree) checks the syntax and
//! stops at the first error. The `Reader` then walks the elements: it
//! knows every element and attribute of the format (and refuses one in an
//! XML namespace, reported where the namespace begins), reads each value, and
//! checks what can be checked within one element (value ranges, alignment
//! to the region's page size, budget <= period, one program_image, the
//! shape of a policy of each kind, a filter's priority window, params and
//! links, a channel's lends, the stage/via alternation of a chain, a
//! chain's links to its own vias and, within one protection domain, unique
//! chain names, stage members, links to its other chains and a chain
//! without vias only as a link's target). Last, names are resolved: channel
//! ends, device owners, policy members and chain vias to protection
//! domains, maps, setvars, lends, device regions, policy members and chain
//! regions to memory regions, policy members to devices, block clients and
//! filter links to disks, and the channel ids of chains to the chain PD's
//! channel ends.
//!
//! A policy may also name what the storage expansion will generate from the
//! `<disk>`s (with their `<filter>`s) and `<block_client>`s
//! ([`crate::storage::generated_names`]): such a policy is kept by name, as
//! a [`PendingPolicy`], and resolved after the expansion
//! ([`resolve_pending`]). A filter's name is such a name: a policy may use
//! it as a `via`, a `pd` or a `<from>`/`<to>` before the filter is a
//! protection domain. A generated-looking name that the expansion will not
//! generate is an unknown name, with a hint saying why.
//!
//! The walk and the resolution report every problem they find and go on
//! with a default value, so one run finds them all; a model is handed out
//! only if nothing was reported. An element that is misplaced rather than
//! unknown (`<filter>` outside a `<disk>`, `<param>` or `<link>` outside a
//! `<filter>`, a chain's `<link>` inside a `<stage>` or `<via>`) is
//! reported as such.
//!
//! To add an element kind, add its attribute list below, a `read_*` method,
//! and a branch in the `match` of the parent element.

use std::fmt::Display;
use std::ops::RangeInclusive;

use abi::layout;
use bootspec::platform::{FIRST_SPI, MAX_IRQ, TIMER_IRQ};
use roxmltree::{Document, Node};

use crate::error::{Diagnostics, Error};
use crate::model::*;
use crate::storage::{
    self, GeneratedName, NameSpace, DRIVER_PRIORITY, MAX_LINKS, MAX_PARAMS, MAX_PARAM_KEY,
    MAX_PARAM_VALUE, SERVER_PRIORITY,
};
use crate::values::{parse_bool, parse_hex_bytes, parse_int, IntError};

// The attributes each element accepts.
const SYSTEM: &[&str] = &[];
const PROTECTION_DOMAIN: &[&str] = &[
    "name",
    "priority",
    "passive",
    "stack_size",
    "budget",
    "period",
    "call_budget",
    "id",
    "can_power_off",
];
const PROGRAM_IMAGE: &[&str] = &["path"];
const MAP: &[&str] = &["mr", "vaddr", "perms", "cached", "setvar_vaddr"];
const IRQ: &[&str] = &["irq", "id", "trigger"];
const SETVAR: &[&str] = &["symbol", "region_paddr", "bytes"];
/// The attributes of a setvar that give its value; exactly one is present.
const SETVAR_VALUES: &[&str] = &["region_paddr", "bytes"];
const MEMORY_REGION: &[&str] = &["name", "size", "page_size", "phys_addr"];
const CHANNEL: &[&str] = &[];
const END: &[&str] = &["pd", "id", "pp", "notify"];
const LEND: &[&str] = &["mr", "perms"];
const DEVICE: &[&str] = &["name", "owner"];
const DEVICE_REGION: &[&str] = &["mr"];
const INTERRUPT: &[&str] = &["irq"];
const POLICY: &[&str] = &["name", "kind", "via", "pd"];
const POLICY_ENDPOINT: &[&str] = &["pd", "region", "device"];
const ALLOW: &[&str] = &["pd"];
const DISK: &[&str] = &["name", "virtio_slot"];
const FILTER: &[&str] = &["name", "program", "data", "priority", "budget", "on_fault"];
const PARAM: &[&str] = &["key", "value"];
const LINK: &[&str] = &["disk"];
const BLOCK_CLIENT: &[&str] = &["disk", "at", "partition", "data_size", "queue_capacity", "direct", "read_only"];
const CHAIN: &[&str] = &["name"];
const STAGE: &[&str] = &[];
const STAGE_REGION: &[&str] = &["mr"];
const STAGE_CHANNEL: &[&str] = &["id"];
const VIA: &[&str] = &["pd", "channel", "mr"];
const CHAIN_LINK: &[&str] = &["via", "chain"];

/// The values of a policy's `kind`.
const POLICY_KINDS: &str = "'no-flow', 'mediated' or 'isolated'";

/// Read `xml` into a model. `file` is the path used in messages.
pub(crate) fn read(file: &str, xml: &str) -> Result<SystemDescription, Vec<Error>> {
    let lines = LineIndex::new(xml);
    let doc = Document::parse(xml).map_err(|e| vec![syntax_error(file, &lines, &e)])?;
    let mut reader = Reader {
        doc: &doc,
        lines: &lines,
        diag: Diagnostics::new(file),
        pds: Vec::new(),
        regions: Vec::new(),
        channels: Vec::new(),
        region_refs: Vec::new(),
        devices: Vec::new(),
        policies: Vec::new(),
        disks: Vec::new(),
        block_clients: Vec::new(),
        filter_links: Vec::new(),
        chains: Vec::new(),
        chain_names: Vec::new(),
        chain_link_targets: Vec::new(),
    };
    reader.read_system(doc.root_element());
    // Before the channels are resolved: chains check channel ends by name.
    reader.resolve_chains();
    let channels = reader.resolve_channels();
    let devices = reader.resolve_devices();
    reader.resolve_region_refs();
    // Before the policies: what the storage expansion generates depends
    // on the block clients.
    reader.resolve_block_clients();
    reader.resolve_filter_links();
    let (policies, pending_policies) = reader.resolve_policies(&devices);
    let Reader { diag, pds, regions, disks, .. } = reader;
    diag.finish(SystemDescription {
        file: file.to_string(),
        protection_domains: pds,
        memory_regions: regions,
        channels,
        devices,
        policies,
        pending_policies,
        disks,
    })
}

/// Resolve the pending policies of `sd` (see
/// [`SystemDescription::pending_policies`]) against its protection domains,
/// memory regions and devices, and move each into `sd.policies` at its
/// place. On error `sd` is unchanged; every name that does not exist is
/// reported, at the attribute (a PD) or the `<from>`/`<to>` (a region or
/// device) that names it.
pub(crate) fn resolve_pending(sd: &mut SystemDescription) -> Result<(), Vec<Error>> {
    if sd.pending_policies.is_empty() {
        return Ok(());
    }
    let mut diag = Diagnostics::new(&sd.file);
    let mut pending: Vec<&PendingPolicy> = sd.pending_policies.iter().collect();
    pending.sort_by_key(|p| p.index);
    let mut resolved = Vec::new();
    for p in pending {
        let user = format!("policy '{}'", p.policy.name);
        for e in p.policy.endpoints() {
            let (found, what, name) = match &e.entity {
                Entity::Region(name) => (sd.memory_region(name).is_some(), "memory region", name),
                Entity::Device(name) => (sd.device(name).is_some(), "device", name),
                Entity::Pd(_) => continue,
            };
            if !found {
                // A bounce buffer the expansion reserved the name of, for
                // a filter (by now a PD) whose program declares none.
                let filter = sd.protection_domains.iter().find(|pd| storage::filter_bounce_region(&pd.name) == *name);
                let hint = filter.map_or(String::new(), |pd| {
                    format!(": filter '{}' has no bounce buffer (its program '{}' declares none)", pd.name, pd.program_image)
                });
                diag.error(e.pos, format!("{user} names unknown {what} '{name}'{hint}"));
            }
        }
        let policy = p.policy.map_pds(|r| {
            let found = sd.pd(&r.name).map(|(index, _)| index);
            if found.is_none() {
                let message = format!("{user} names unknown protection domain '{}'", r.name);
                diag.error(r.pos, message);
            }
            found
        });
        resolved.extend(policy.map(|policy| (p.index, policy)));
    }
    diag.finish(())?;
    sd.pending_policies.clear();
    for (index, policy) in resolved {
        let at = index.min(sd.policies.len());
        sd.policies.insert(at, policy);
    }
    Ok(())
}

/// Whether two policy entities are the same (PDs by name).
fn same_entity(a: &Entity<PdName>, b: &Entity<PdName>) -> bool {
    match (a, b) {
        (Entity::Pd(a), Entity::Pd(b)) => a.name == b.name,
        (Entity::Region(a), Entity::Region(b)) | (Entity::Device(a), Entity::Device(b)) => a == b,
        _ => false,
    }
}

/// The error of a chain `label` without a via (that no link makes a
/// chain's target).
fn no_via_message(label: &str) -> String {
    format!(
        "{label} has no <via>: a chain passes through at least one protection domain, write \
         <stage>, <via pd=\"..\" channel=\"..\"/>, <stage> in turn"
    )
}

fn entity_name(entity: &Entity<PdName>) -> String {
    match entity {
        Entity::Pd(pd) => format!("protection domain '{}'", pd.name),
        Entity::Region(name) => format!("memory region '{name}'"),
        Entity::Device(name) => format!("device '{name}'"),
    }
}

/// Turn a roxmltree error into ours: its message without the position
/// (which moves to the `file:line:col`), prefixed with "malformed XML".
fn syntax_error(file: &str, lines: &LineIndex, err: &roxmltree::Error) -> Error {
    use roxmltree::Error as X;
    let (pos, detail) = match err {
        // These carry no position; they happen at the end of the text.
        X::UnexpectedEndOfStream => match innermost_open(lines.text) {
            Some((name, at)) => (lines.pos(at), format!("the file ends inside <{name}>, which opens here: finish it, and close it")),
            None => (lines.end(), "unexpected end of file".to_string()),
        },
        // The file ends inside an element (cut short, or a close tag
        // forgotten): name the innermost, where it opens.
        X::UnclosedRootNode => match innermost_open(lines.text) {
            Some((name, at)) => (
                lines.pos(at),
                format!("<{name}> is never closed (the file ends first): close it with </{name}>, or end it with '/>'"),
            ),
            None => (lines.end(), err.to_string()),
        },
        X::NoRootNode => (lines.end(), err.to_string()),
        X::DtdDetected => {
            (Pos { line: 1, col: 1 }, "document type declarations (DTD) are not supported".into())
        }
        // A close tag for an element other than the one still open: most
        // often an element left open above (`<param ...>` for `.../>`).
        X::UnexpectedCloseTag(open, close, at) => (
            Pos { line: at.row, col: at.col },
            format!(
                "</{close}> does not match the open <{open}>: close <{open}> first (</{open}>, \
                 or end it with '/>')"
            ),
        ),
        _ => {
            let at = err.pos();
            let detail = err.to_string().replace(&format!(" at {at}"), "");
            (Pos { line: at.row, col: at.col }, detail)
        }
    };
    // (A character it quotes may be a line break: the error stays one line.)
    let detail: String = detail.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect();
    Error {
        file: file.to_string(),
        line: pos.line,
        col: pos.col,
        message: format!("malformed XML: {detail}"),
    }
}

/// The innermost element still open where `text` ends, and the byte
/// offset of its `<` (for a file the parser says ends inside its root):
/// a scan of the tags that skips comments, processing instructions,
/// CDATA and declarations, and quoted attribute values.
fn innermost_open(text: &str) -> Option<(&str, usize)> {
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut at = 0;
    while let Some(lt) = text[at..].find('<').map(|k| at + k) {
        let rest = &text[lt..];
        let skip_to = |end: &str| rest.find(end).map(|k| lt + k + end.len());
        at = match () {
            _ if rest.starts_with("<!--") => skip_to("-->")?,
            _ if rest.starts_with("<![CDATA[") => skip_to("]]>")?,
            _ if rest.starts_with("<?") => skip_to("?>")?,
            _ if rest.starts_with("<!") => skip_to(">")?,
            _ => {
                // A tag: its end is the first '>' outside quotes.
                let (mut quote, mut end) = (None, None);
                for (k, c) in rest.char_indices().skip(1) {
                    match (quote, c) {
                        (None, '"' | '\'') => quote = Some(c),
                        (Some(q), c) if c == q => quote = None,
                        (None, '>') => {
                            end = Some(k);
                            break;
                        }
                        _ => {}
                    }
                }
                // (The file ends inside this tag: it is the one open.)
                let Some(end) = end else {
                    let name = rest[1..].split(|c: char| c.is_whitespace() || c == '/' || c == '>').next().unwrap_or("");
                    return (!name.is_empty() && !name.starts_with('/')).then_some((name, lt)).or(open.last().copied());
                };
                let tag = &rest[1..end];
                let name_of = |t: &'_ str| t.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("").to_string();
                if let Some(closed) = tag.strip_prefix('/') {
                    let closed = name_of(closed);
                    if let Some(k) = open.iter().rposition(|(n, _)| *n == closed) {
                        open.truncate(k);
                    }
                } else if !tag.ends_with('/') {
                    let len = name_of(tag).len();
                    open.push((&tag[..len], lt));
                }
                lt + end + 1
            }
        };
    }
    open.last().copied()
}

/// Every element a system description has (for suggestions).
const ELEMENTS: &[&str] = &[
    "system", "protection_domain", "memory_region", "channel", "end", "map", "irq",
    "program_image", "setvar", "device", "disk", "filter", "param", "link", "block_client",
    "policy", "from", "to", "lend", "chain", "stage", "via", "region",
];

/// The one of `known` that `word` most likely misspells: the same but
/// for case, or within two edits (one for words of up to five letters,
/// none for one or two), the nearest.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = match word.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    // (Names numbered alike that differ in their numbers alone, disk0
    // and disk1, are two things, not a slip.)
    let letters = |w: &str| w.chars().filter(|c| !c.is_ascii_digit()).collect::<String>();
    let numbered = |w: &str| w.chars().any(|c| c.is_ascii_digit());
    let apart = |k: &str| numbered(k) && numbered(word) && letters(k) == letters(word);
    known
        .iter()
        .filter(|k| k.eq_ignore_ascii_case(word) || !apart(k))
        .map(|k| (if k.eq_ignore_ascii_case(word) { 0 } else { edits(word, k) }, *k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// What to add to an error naming `name`, which is none of `declared`: the
/// one it likely misspells, or the names there are (at most eight).
/// (A name declared twice, which a later check reports, is said here too:
/// it is often the one meant to be `name`.)
fn choices<'n>(name: &str, declared: impl Iterator<Item = &'n str>) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut twice: Vec<&str> = Vec::new();
    for n in declared {
        if !names.contains(&n) {
            names.push(n);
        } else if !twice.contains(&n) {
            twice.push(n);
        }
    }
    let also = match twice.first() {
        Some(dup) => format!("; '{dup}' is declared twice"),
        None => String::new(),
    };
    if let Some(known) = closest(name, &names) {
        return format!(": did you mean '{known}'?{also}");
    }
    match names.len() {
        0 => String::new(),
        n if n <= 8 => format!(" (declared: {}{also})", names.join(", ")),
        n => format!(" (declared: {}, and {} more{also})", names[..8].join(", "), n - 8),
    }
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Byte offsets to 1-based lines and columns (columns count characters,
/// a `\r` before a `\n` included), the way roxmltree's
/// `Document::text_pos_at` does, without rescanning the line: a binary
/// search over the line starts, then the characters before the offset from
/// a table of running counts, one per [`LineIndex::BLOCK`] bytes, and at
/// most that many bytes counted. So a position costs O(log lines), and a
/// file on one line reads as fast as on many.
struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// `chars[k]`: how many characters start before byte `k * BLOCK`.
    chars: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    /// Bytes per entry of the running character counts.
    const BLOCK: usize = 64;

    fn new(text: &'t str) -> Self {
        let starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let mut chars = Vec::with_capacity(text.len() / Self::BLOCK + 1);
        let mut count = 0;
        chars.push(0);
        for block in text.as_bytes().chunks(Self::BLOCK) {
            count += char_starts(block);
            chars.push(count);
        }
        LineIndex { text, starts, chars }
    }

    fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let col = if self.text.is_char_boundary(offset) {
            self.chars_before(offset) - self.chars_before(start)
        } else {
            // Inside a character (no node starts there): count bytes.
            offset - start
        };
        Pos { line: to_u32(line), col: to_u32(col + 1) }
    }

    /// The number of characters that start before byte `offset`.
    fn chars_before(&self, offset: usize) -> usize {
        let block = offset / Self::BLOCK;
        let from = block * Self::BLOCK;
        self.chars[block] + char_starts(&self.text.as_bytes()[from..offset])
    }

    fn end(&self) -> Pos {
        self.pos(self.text.len())
    }
}

/// How many characters start in `bytes` (UTF-8): the bytes that are not
/// continuation bytes.
fn char_starts(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count()
}

/// The 1-based line and column of byte `offset` of `text`, as every error
/// gives them.
pub(crate) fn position(text: &str, offset: usize) -> Pos {
    LineIndex::new(text).pos(offset)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An attribute that is present on an element.
#[derive(Clone, Copy)]
struct Attr<'a> {
    name: &'a str,
    element: &'a str,
    value: &'a str,
    pos: Pos,
}

/// A channel end before its protection domain is looked up.
struct PendingEnd {
    pd: String,
    pd_pos: Pos,
    id: u8,
    pp: bool,
    notify: bool,
    pos: Pos,
}

struct PendingChannel {
    ends: [PendingEnd; 2],
    lends: Vec<Lend>,
    pos: Pos,
}

/// A use of a memory region's name, checked once all regions are read.
struct RegionRef {
    name: String,
    pos: Pos,
    /// Who uses it, e.g. "map in protection domain 'a'".
    user: String,
}

/// A use of a protection domain's name, looked up once all are read (`pos`
/// is the attribute that holds the name).
type PdRef = PdName;

/// A device before its owners are looked up.
struct PendingDevice {
    name: String,
    owners: Vec<PdRef>,
    regions: Vec<DeviceRegion>,
    irqs: Vec<DeviceIrq>,
    pos: Pos,
}

/// A policy's `<from>` or `<to>` before its name is looked up.
struct PendingEndpoint {
    entity: PendingEntity,
    pos: Pos,
}

/// What a `<from>` or `<to>` names, with the attribute that names it.
enum PendingEntity {
    Pd(PdRef),
    Region(String, Pos),
    Device(String, Pos),
}

enum PendingRule {
    NoFlow { from: Vec<PendingEndpoint>, to: Vec<PendingEndpoint> },
    Mediated { from: Vec<PendingEndpoint>, to: Vec<PendingEndpoint>, via: Vec<PdRef> },
    Isolated { pd: PdRef, allow: Vec<(PdRef, Pos)> },
}

/// The `kind` of a policy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    NoFlow,
    Mediated,
    Isolated,
}

impl PolicyKind {
    fn name(self) -> &'static str {
        match self {
            PolicyKind::NoFlow => "no-flow",
            PolicyKind::Mediated => "mediated",
            PolicyKind::Isolated => "isolated",
        }
    }
}

/// The children of a policy as read so far.
#[derive(Default)]
struct PolicyMembers {
    from: Vec<PendingEndpoint>,
    to: Vec<PendingEndpoint>,
    /// `<from>` and `<to>` elements seen, the invalid ones (reported) too.
    from_elements: usize,
    to_elements: usize,
    /// Each with the position of its `<allow>`.
    allow: Vec<(PdRef, Pos)>,
}

struct ReadPolicy {
    name: String,
    rule: PendingRule,
    pos: Pos,
}

/// A block client before its disk is looked up.
struct PendingBlockClient {
    /// Index of its protection domain.
    pd: usize,
    disk: String,
    /// The `disk` attribute.
    disk_pos: Pos,
    /// The `at` attribute: a filter name, and its position.
    at: Option<(String, Pos)>,
    partition: Option<u8>,
    data_size: u64,
    queue_capacity: u32,
    direct: bool,
    read_only: bool,
    pos: Pos,
}

/// A `<link disk="..">` of a filter before its disk is looked up.
struct PendingLink {
    /// Where the filter is: the index of its disk, and its own among the
    /// disk's filters.
    disk: usize,
    filter: usize,
    /// The disk it names.
    name: String,
    pos: Pos,
}

/// A chain before its vias are looked up and its channel ids checked.
struct PendingChain {
    /// Index of its protection domain.
    pd: usize,
    name: String,
    stages: Vec<Stage>,
    vias: Vec<PendingVia>,
    /// Its `<link>`s, their vias found among its own.
    links: Vec<ChainLink>,
    /// The `id` attribute of each stage's `<channel>`, with its id.
    channel_refs: Vec<(u8, Pos)>,
    pos: Pos,
}

/// A `<via>` before its protection domain is looked up.
struct PendingVia {
    pd: PdRef,
    channel: u8,
    /// The `channel` attribute.
    channel_pos: Pos,
    mr: Option<String>,
    pos: Pos,
}

struct Reader<'a, 'input> {
    doc: &'a Document<'input>,
    lines: &'a LineIndex<'a>,
    diag: Diagnostics,
    pds: Vec<ProtectionDomain>,
    regions: Vec<MemoryRegion>,
    channels: Vec<PendingChannel>,
    region_refs: Vec<RegionRef>,
    devices: Vec<PendingDevice>,
    policies: Vec<ReadPolicy>,
    disks: Vec<Disk>,
    block_clients: Vec<PendingBlockClient>,
    filter_links: Vec<PendingLink>,
    chains: Vec<PendingChain>,
    /// Every chain read with a valid name, the ones dropped for an error
    /// (reported) too, as (PD, name): a link to a chain with an error is
    /// not reported again.
    chain_names: Vec<(usize, String)>,
    /// The chain names that chains' `<link>`s give, as (PD, name), those of
    /// chains dropped for an error too: a chain without vias is a link's
    /// target if any of them names it.
    chain_link_targets: Vec<(usize, String)>,
}

type XmlNode<'a, 'input> = Node<'a, 'input>;

impl<'a, 'input> Reader<'a, 'input> {
    // ---- elements ----

    fn read_system(&mut self, node: XmlNode<'a, 'input>) {
        self.check_namespace(node, None);
        let name = node.tag_name().name();
        if name != "system" {
            let message = format!(
                "unknown root element '{name}': a system description is a <system> element"
            );
            self.diag.error(self.pos_of(node), message);
            return;
        }
        self.check_attributes(node, SYSTEM);
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "protection_domain" => self.read_protection_domain(child, None, 1),
                "memory_region" => self.read_memory_region(child),
                "channel" => self.read_channel(child),
                "device" => self.read_device(child),
                "policy" => self.read_policy(child),
                "disk" => self.read_disk(child),
                _ => self.unknown_element(child, node),
            }
        }
        if self.pds.is_empty() {
            self.diag.error(
                self.pos_of(node),
                "the system has no protection domain: declare at least one <protection_domain>",
            );
        }
    }

    /// Read a protection domain and, after it, its nested children.
    /// `depth` is 1 for a top-level PD.
    fn read_protection_domain(
        &mut self,
        node: XmlNode<'a, 'input>,
        parent: Option<usize>,
        depth: usize,
    ) {
        self.check_attributes(node, PROTECTION_DOMAIN);
        let pos = self.pos_of(node);
        let name = self.required_with(node, "name", Self::pd_name).unwrap_or_default();
        let priority = self.optional(node, "priority", DEFAULT_PRIORITY, |r, a| {
            let expected = format!("a priority from 0 to {MAX_PRIORITY}");
            r.int_in(a, 0..=u64::from(MAX_PRIORITY), expected)
        });
        let passive = self.optional(node, "passive", false, Self::bool);
        let stack_size =
            self.optional(node, "stack_size", layout::DEFAULT_STACK_SIZE, Self::stack_size);
        let budget = self.optional(node, "budget", DEFAULT_BUDGET_US, Self::int);
        let period = self.optional(node, "period", budget, Self::int);
        if budget > period {
            self.diag.error(
                pos,
                format!(
                    "budget ({budget} us) of protection domain '{name}' is larger than its \
                     period ({period} us): the budget must not exceed the period"
                ),
            );
        }
        let call_budget =
            self.optional(node, "call_budget", None, |r, a| r.call_budget(a).map(Some));
        let can_power_off = self.optional(node, "can_power_off", false, Self::bool);
        let child_id = self.child_id(node, parent);

        let index = self.pds.len();
        self.pds.push(ProtectionDomain {
            name,
            pos,
            priority,
            passive,
            stack_size,
            budget,
            period,
            call_budget,
            can_power_off,
            program_image: String::new(),
            program_image_pos: Pos::default(),
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            parent,
            child_id,
            block_client: None,
            chains: Vec::new(),
        });

        let mut image_seen = false;
        let mut block_client_seen = false;
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "program_image" => {
                    if image_seen {
                        let pd = &self.pds[index].name;
                        let message = format!(
                            "protection domain '{pd}' has more than one program_image: \
                             a protection domain runs exactly one program"
                        );
                        self.diag.error(self.pos_of(child), message);
                    }
                    image_seen = true;
                    if let Some(path) = self.read_program_image(child) {
                        self.pds[index].program_image = path;
                        self.pds[index].program_image_pos = self.pos_of(child);
                    }
                }
                "map" => {
                    if let Some(map) = self.read_map(child, index) {
                        self.pds[index].maps.push(map);
                    }
                }
                "irq" => {
                    if let Some(irq) = self.read_irq(child) {
                        self.pds[index].irqs.push(irq);
                    }
                }
                "setvar" => {
                    if let Some(setvar) = self.read_setvar(child, index) {
                        self.pds[index].setvars.push(setvar);
                    }
                }
                "block_client" => {
                    if block_client_seen {
                        let pd = &self.pds[index].name;
                        let message = format!(
                            "protection domain '{pd}' has more than one block_client: a \
                             protection domain is a client of one disk at most"
                        );
                        self.diag.error(self.pos_of(child), message);
                    }
                    block_client_seen = true;
                    if let Some(client) = self.read_block_client(child, index) {
                        self.block_clients.push(client);
                    }
                }
                "chain" => {
                    if let Some(chain) = self.read_chain(child, index) {
                        self.chains.push(chain);
                    }
                }
                // Below this depth the chain of parents alone holds more
                // than MAX_PDS protection domains, which validation refuses;
                // stopping here bounds the recursion on hostile input.
                "protection_domain" if depth > abi::MAX_PDS => {}
                "protection_domain" => self.read_protection_domain(child, Some(index), depth + 1),
                _ => self.unknown_element(child, node),
            }
        }
        if !image_seen {
            let pd = &self.pds[index].name;
            let message = format!(
                "protection domain '{pd}' has no program_image: add <program_image path=\"...\"/>"
            );
            self.diag.error(pos, message);
        }
        self.check_chains(index);
    }

    /// The `id` of a nested protection domain: required there, refused on
    /// a top-level one.
    fn child_id(&mut self, node: XmlNode<'a, 'input>, parent: Option<usize>) -> Option<u8> {
        if parent.is_some() {
            return self.required_with(node, "id", |r, a| {
                r.int_in(a, 0..=u64::from(MAX_ID), format_args!("a child id from 0 to {MAX_ID}"))
            });
        }
        if let Some(attr) = self.attr(node, "id") {
            self.diag.error(
                attr.pos,
                "attribute 'id' is only allowed on a nested protection_domain, \
                 where it is the id its parent uses for it",
            );
        }
        None
    }

    fn read_program_image(&mut self, node: XmlNode<'a, 'input>) -> Option<String> {
        self.check_attributes(node, PROGRAM_IMAGE);
        self.leaf(node);
        self.required_with(node, "path", |r, a| r.non_empty(a, "the path of an ELF file"))
    }

    fn read_map(&mut self, node: XmlNode<'a, 'input>, pd: usize) -> Option<Map> {
        self.check_attributes(node, MAP);
        self.leaf(node);
        let mr = self.required(node, "mr");
        let vaddr = self.required_with(node, "vaddr", Self::int);
        let perms = self.optional(node, "perms", Perms::READ_WRITE, Self::perms);
        let cached = self.optional(node, "cached", true, Self::bool);
        let setvar_vaddr =
            self.attr(node, "setvar_vaddr").and_then(|a| self.non_empty(a, "a symbol name"));
        let mr = mr?;
        let user = format!("map in protection domain '{}'", self.pds[pd].name);
        self.region_refs.push(RegionRef { name: mr.value.to_string(), pos: mr.pos, user });
        Some(Map {
            mr: mr.value.to_string(),
            vaddr: vaddr?,
            perms,
            cached,
            setvar_vaddr,
            pos: self.pos_of(node),
        })
    }

    fn read_irq(&mut self, node: XmlNode<'a, 'input>) -> Option<Irq> {
        self.check_attributes(node, IRQ);
        self.leaf(node);
        let irq = self.required_with(node, "irq", Self::irq_number);
        let id = self.required_with(node, "id", Self::channel_id);
        let trigger = self.optional(node, "trigger", Trigger::Level, Self::trigger);
        Some(Irq { irq: irq?, id: id?, trigger, pos: self.pos_of(node) })
    }

    /// A `<setvar>`: a symbol and exactly one of `region_paddr` and
    /// `bytes`.
    fn read_setvar(&mut self, node: XmlNode<'a, 'input>, pd: usize) -> Option<SetVar> {
        self.check_attributes(node, SETVAR);
        self.leaf(node);
        let pos = self.pos_of(node);
        let symbol = self.required_with(node, "symbol", |r, a| r.non_empty(a, "a symbol name"));
        let given: Vec<Attr<'a>> =
            SETVAR_VALUES.iter().filter_map(|name| self.attr(node, name)).collect();
        let [attr] = given.as_slice() else {
            self.diag.error(
                pos,
                format!(
                    "element 'setvar' needs exactly one of the attributes 'region_paddr' and \
                     'bytes', this one has {}",
                    given.len()
                ),
            );
            return None;
        };
        let value = match attr.name {
            "region_paddr" => {
                let name = attr.value.to_string();
                let symbol = symbol.as_deref().unwrap_or_default();
                let user =
                    format!("setvar '{symbol}' in protection domain '{}'", self.pds[pd].name);
                self.region_refs.push(RegionRef { name: name.clone(), pos: attr.pos, user });
                SetVarValue::RegionPaddr(name)
            }
            _ => SetVarValue::Bytes(self.hex_bytes(*attr)?),
        };
        Some(SetVar { symbol: symbol?, value, pos })
    }

    /// `<disk name=".." virtio_slot="..">`, with its `<filter>`s.
    fn read_disk(&mut self, node: XmlNode<'a, 'input>) {
        self.check_attributes(node, DISK);
        let name = self.required_with(node, "name", |r, a| {
            if (1..=MAX_DISK_NAME).contains(&a.value.len()) {
                Some(a.value.to_string())
            } else {
                r.invalid(a, format_args!("a disk name of 1 to {MAX_DISK_NAME} bytes"))
            }
        });
        let slot = self.required_with(node, "virtio_slot", |r, a| {
            let expected = format!("a virtio-mmio slot from 0 to {MAX_VIRTIO_SLOT}");
            r.int_in(a, 0..=u64::from(MAX_VIRTIO_SLOT), expected)
        });
        let mut filters = Vec::new();
        let mut links = Vec::new();
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "filter" => {
                    if let Some((filter, pending)) = self.read_filter(child, name.as_deref()) {
                        let at = filters.len();
                        links.extend(pending.into_iter().map(|(name, pos)| (at, name, pos)));
                        filters.push(filter);
                    }
                }
                _ => self.unknown_element(child, node),
            }
        }
        // With an invalid slot (reported) the disk is kept, so that its
        // clients do not also report it as unknown. (Without a name, the
        // links of its filters are not looked up: it has no name to
        // compare them with.)
        if let Some(name) = name {
            let virtio_slot = slot.unwrap_or_default();
            let disk = self.disks.len();
            for (filter, name, pos) in links {
                self.filter_links.push(PendingLink { disk, filter, name, pos });
            }
            self.disks.push(Disk { name, virtio_slot, filters, pos: self.pos_of(node) });
        }
    }

    /// `<filter name=".." program=".." data=".." ...>` in the disk `disk`
    /// (its name, if valid), with its `<param>`s and `<link>`s. Kept if
    /// its name is valid (its other values may not be, reported), so that
    /// policies naming it do not also report it. Its links come back apart,
    /// as (disk name, position), for lookup once every disk is read.
    fn read_filter(
        &mut self,
        node: XmlNode<'a, 'input>,
        disk: Option<&str>,
    ) -> Option<(Filter, Vec<(String, Pos)>)> {
        self.check_attributes(node, FILTER);
        let pos = self.pos_of(node);
        let name = self.required_with(node, "name", |r, a| {
            if (1..=MAX_FILTER_NAME).contains(&a.value.len()) {
                Some(a.value.to_string())
            } else {
                r.invalid(a, format_args!("a filter name of 1 to {MAX_FILTER_NAME} bytes"))
            }
        });
        let label = format!("filter '{}'", name.as_deref().unwrap_or_default());
        let program =
            self.required_with(node, "program", |r, a| r.non_empty(a, "the path of an ELF file"));
        let data = self.required_with(node, "data", Self::data_access);
        let priority =
            self.optional(node, "priority", None, |r, a| r.filter_priority(a, &label).map(Some));
        let budget = self.optional(node, "budget", None, |r, a| r.call_budget(a).map(Some));
        let on_fault = self.optional(node, "on_fault", OnFault::Fail, Self::on_fault);
        let mut params: Vec<Param> = Vec::new();
        let mut param_elements = 0;
        let mut links: Vec<(String, Pos)> = Vec::new();
        let mut link_elements = 0;
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "param" => {}
                "link" => {
                    link_elements += 1;
                    let link = self.read_link(child, &label, disk, link_elements, &links);
                    links.extend(link);
                    continue;
                }
                _ => {
                    self.unknown_element(child, node);
                    continue;
                }
            }
            param_elements += 1;
            if param_elements == MAX_PARAMS + 1 {
                let message = format!(
                    "{label} has more than {MAX_PARAMS} params: at most {MAX_PARAMS} are \
                     supported, combine or drop some"
                );
                self.diag.error(self.pos_of(child), message);
            }
            let Some(param) = self.read_param(child) else { continue };
            match params.iter().find(|p| p.key == param.key) {
                Some(first) => {
                    let message = format!(
                        "{label} sets param '{}' twice (first at line {}): give each key once",
                        param.key, first.pos.line
                    );
                    self.diag.error(param.pos, message);
                }
                None => params.push(param),
            }
        }
        let filter = Filter {
            name: name?,
            program: program.unwrap_or_default(),
            data: data.unwrap_or(DataAccess::None),
            priority,
            budget,
            on_fault,
            params,
            links: Vec::new(),
            pos,
        };
        Some((filter, links))
    }

    /// `<link disk=".."/>`, the `count`-th of the filter `label` of the disk
    /// `disk` (its name, if valid), after the ones in `kept`: the disk's
    /// name and the link's position, unless it breaks a rule of one filter
    /// (reported): at most [`MAX_LINKS`], another disk than its own, each
    /// once.
    fn read_link(
        &mut self,
        node: XmlNode<'a, 'input>,
        label: &str,
        disk: Option<&str>,
        count: usize,
        kept: &[(String, Pos)],
    ) -> Option<(String, Pos)> {
        self.check_attributes(node, LINK);
        self.leaf(node);
        let pos = self.pos_of(node);
        let name = self.required_with(node, "disk", |r, a| r.non_empty(a, "a disk name"));
        if count == MAX_LINKS + 1 {
            let message = format!(
                "{label} has more than {MAX_LINKS} links: at most {MAX_LINKS} are supported, drop \
                 some"
            );
            self.diag.error(pos, message);
        }
        let name = name?;
        let message = if Some(name.as_str()) == disk {
            format!(
                "{label} links to its own disk '{name}': its requests go on down that disk's chain \
                 anyway; link to another disk or drop the <link>"
            )
        } else if let Some((_, first)) = kept.iter().find(|(n, _)| *n == name) {
            format!(
                "{label} links to disk '{name}' twice (first at line {}): link each disk once",
                first.line
            )
        } else {
            return Some((name, pos));
        };
        self.diag.error(pos, message);
        None
    }

    /// `<param key=".." value=".."/>` in a filter.
    fn read_param(&mut self, node: XmlNode<'a, 'input>) -> Option<Param> {
        self.check_attributes(node, PARAM);
        self.leaf(node);
        let key = self.required_with(node, "key", |r, a| {
            if (1..=MAX_PARAM_KEY).contains(&a.value.len()) {
                Some(a.value.to_string())
            } else {
                r.invalid(a, format_args!("a key of 1 to {MAX_PARAM_KEY} bytes"))
            }
        });
        let value = self.required_with(node, "value", |r, a| {
            if a.value.len() <= MAX_PARAM_VALUE {
                Some(a.value.to_string())
            } else {
                r.invalid(a, format_args!("a value of at most {MAX_PARAM_VALUE} bytes"))
            }
        });
        Some(Param { key: key?, value: value?, pos: self.pos_of(node) })
    }

    /// `<block_client disk=".." .../>` in the protection domain at `pd`.
    fn read_block_client(
        &mut self,
        node: XmlNode<'a, 'input>,
        pd: usize,
    ) -> Option<PendingBlockClient> {
        self.check_attributes(node, BLOCK_CLIENT);
        self.leaf(node);
        let pos = self.pos_of(node);
        let disk = self.required(node, "disk");
        let partition = self.optional(node, "partition", None, |r, a| {
            let expected = format!("an MBR primary partition from 1 to {MAX_PARTITION}");
            r.int_in::<u8>(a, 1..=u64::from(MAX_PARTITION), expected).map(Some)
        });
        let data_size = self.optional(node, "data_size", DEFAULT_DATA_SIZE, |r, a| {
            let expected = format!("a non-zero multiple of the page size {:#x}", layout::PAGE_SIZE);
            r.int_where(a, |size| size != 0 && size % layout::PAGE_SIZE == 0, expected)
        });
        let queue_capacity =
            self.optional(node, "queue_capacity", DEFAULT_QUEUE_CAPACITY, |r, a| {
                let expected = format!("a power of two from 1 to {MAX_QUEUE_CAPACITY}");
                let accept = |c: u64| c.is_power_of_two() && c <= u64::from(MAX_QUEUE_CAPACITY);
                r.int_where(a, accept, expected).and_then(|c| u32::try_from(c).ok())
            });
        let direct = self.optional(node, "direct", false, Self::bool);
        let read_only = self.optional(node, "read_only", false, Self::bool);
        let at = self.attr(node, "at").and_then(|a| {
            let name = self.non_empty(a, "the name of a filter of the client's disk")?;
            Some((name, a.pos))
        });
        let name = &self.pds[pd].name;
        let conflict = match (&at, direct, partition) {
            _ if direct && read_only => Some(format!(
                "block_client of protection domain '{name}' is direct and read_only: the filter \
                 server enforces read_only, and a direct client bypasses it, drop 'read_only' or \
                 'direct'"
            )),
            (Some((filter, _)), true, _) => Some(format!(
                "block_client of protection domain '{name}' is direct and attaches at filter \
                 '{filter}': a direct client talks to the driver and bypasses every filter, drop \
                 'at' or 'direct'"
            )),
            (None, true, Some(partition)) => Some(format!(
                "block_client of protection domain '{name}' is direct and names partition \
                 {partition}: a direct client talks to the driver and gets the whole disk, drop \
                 'partition' or 'direct'"
            )),
            (Some((filter, _)), false, Some(partition)) => Some(format!(
                "block_client of protection domain '{name}' attaches at filter '{filter}' and \
                 names partition {partition}: the server reads a partition from the device, below \
                 every filter, so a client attached at a filter gets that filter's whole view, \
                 drop 'partition' or 'at'"
            )),
            _ => None,
        };
        if let Some(message) = conflict {
            self.diag.error(pos, message);
            return None;
        }
        let disk = disk?;
        Some(PendingBlockClient {
            pd,
            disk: disk.value.to_string(),
            disk_pos: disk.pos,
            at,
            partition,
            data_size,
            queue_capacity,
            direct,
            read_only,
            pos,
        })
    }

    /// `<chain name="..">` in the protection domain at `pd`: `<stage>`,
    /// `<via>`, `<stage>`, ..., `<stage>`. `None` if its name is missing or
    /// invalid, a via is invalid, or the children do not alternate (all
    /// reported).
    fn read_chain(&mut self, node: XmlNode<'a, 'input>, pd: usize) -> Option<PendingChain> {
        self.check_attributes(node, CHAIN);
        let pos = self.pos_of(node);
        let name = self.required_with(node, "name", |r, a| r.non_empty(a, "a chain name"));
        let label = format!(
            "chain '{}' of protection domain '{}'",
            name.as_deref().unwrap_or_default(),
            self.pds[pd].name
        );
        let mut stages = Vec::new();
        let mut vias = Vec::new();
        let mut links = Vec::new();
        let mut channel_refs = Vec::new();
        let (mut via_elements, mut expect_stage, mut in_order) = (0, true, true);
        for child in self.element_children(node) {
            let tag = child.tag_name().name();
            if tag == "link" {
                links.extend(self.read_chain_link(child, pd));
                continue;
            }
            if !matches!(tag, "stage" | "via") {
                self.unknown_element(child, node);
                continue;
            }
            let is_stage = tag == "stage";
            // Only the first misplaced child is reported: after it, what
            // is expected is guesswork.
            if is_stage != expect_stage && in_order {
                let (found, wanted) = if is_stage { ("stage", "via") } else { ("via", "stage") };
                let message = format!(
                    "{label} has a <{found}> where a <{wanted}> belongs: a chain alternates \
                     <stage> and <via>, starting and ending with a <stage>"
                );
                self.diag.error(self.pos_of(child), message);
                in_order = false;
            }
            expect_stage = !is_stage;
            if is_stage {
                stages.push(self.read_stage(child, &label, &mut channel_refs));
            } else {
                via_elements += 1;
                vias.push(self.read_via(child, &label));
            }
        }
        if let Some(name) = &name {
            self.chain_names.push((pd, name.clone()));
        }
        // One stage and no via is a chain only if another chain links to
        // it: `check_chains` decides, once it knows them all.
        if in_order && via_elements == 0 && stages.len() != 1 {
            self.diag.error(pos, no_via_message(&label));
        } else if in_order && expect_stage {
            let message = format!("{label} ends with a <via>: add the <stage> that follows it");
            self.diag.error(pos, message);
        }
        let vias = vias.into_iter().collect::<Option<Vec<PendingVia>>>()?;
        if !in_order || stages.len() != vias.len() + 1 {
            return None;
        }
        let links = self.find_link_vias(links, &vias, &label)?;
        Some(PendingChain { pd, name: name?, stages, vias, links, channel_refs, pos })
    }

    /// `<link via=".." chain=".."/>` of a chain of the protection domain
    /// at `pd`: (the via's PD name, the link with its via not yet found).
    fn read_chain_link(
        &mut self,
        node: XmlNode<'a, 'input>,
        pd: usize,
    ) -> Option<(String, ChainLink)> {
        self.check_attributes(node, CHAIN_LINK);
        self.leaf(node);
        let via = self.required_with(node, "via", |r, a| r.non_empty(a, "the pd of a <via>"));
        let chain = self.required_with(node, "chain", |r, a| r.non_empty(a, "a chain name"));
        let chain = chain?;
        self.chain_link_targets.push((pd, chain.clone()));
        Some((via?, ChainLink { via: 0, chain, pos: self.pos_of(node) }))
    }

    /// The links of the chain `label`, each with the index of its via
    /// among `vias`: the one via of that PD. `None` if one names no via
    /// or a PD that is more than one via (reported).
    fn find_link_vias(
        &mut self,
        links: Vec<(String, ChainLink)>,
        vias: &[PendingVia],
        label: &str,
    ) -> Option<Vec<ChainLink>> {
        let mut found = Vec::new();
        let mut complete = true;
        for (pd, mut link) in links {
            let matching: Vec<usize> =
                (0..vias.len()).filter(|&i| vias[i].pd.name == pd).collect();
            let message = match matching.as_slice() {
                [via] => {
                    link.via = *via;
                    found.push(link);
                    continue;
                }
                [] => format!(
                    "{label} has a <link> via '{pd}', which is no via of the chain: name the pd of \
                     the <via> whose requests the link lets out"
                ),
                _ => format!(
                    "{label} has a <link> via '{pd}', which is {} vias of the chain: a link \
                     follows one via, so its pd must be in the chain once",
                    matching.len()
                ),
            };
            self.diag.error(link.pos, message);
            complete = false;
        }
        complete.then_some(found)
    }

    /// A `<stage>` of a chain: `<region mr=".."/>` and `<channel id=".."/>`
    /// children. Each channel's id and attribute go to `channel_refs`.
    fn read_stage(
        &mut self,
        node: XmlNode<'a, 'input>,
        label: &str,
        channel_refs: &mut Vec<(u8, Pos)>,
    ) -> Stage {
        self.check_attributes(node, STAGE);
        let mut stage = Stage { regions: Vec::new(), channels: Vec::new(), pos: self.pos_of(node) };
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "region" => {
                    self.check_attributes(child, STAGE_REGION);
                    self.leaf(child);
                    if let Some(mr) = self.required(child, "mr") {
                        let (name, pos, user) = (mr.value.to_string(), mr.pos, label.to_string());
                        self.region_refs.push(RegionRef { name: name.clone(), pos, user });
                        stage.regions.push(StageRegion { mr: name, pos: self.pos_of(child) });
                    }
                }
                "channel" => {
                    self.check_attributes(child, STAGE_CHANNEL);
                    self.leaf(child);
                    let Some(attr) = self.required(child, "id") else { continue };
                    if let Some(id) = self.channel_id(attr) {
                        channel_refs.push((id, attr.pos));
                        stage.channels.push(StageChannel { id, pos: self.pos_of(child) });
                    }
                }
                _ => self.unknown_element(child, node),
            }
        }
        stage
    }

    /// `<via pd=".." channel=".." mr=".."/>` of a chain.
    fn read_via(&mut self, node: XmlNode<'a, 'input>, label: &str) -> Option<PendingVia> {
        self.check_attributes(node, VIA);
        self.leaf(node);
        let pd = self.required(node, "pd");
        let channel = self.required(node, "channel");
        let id = channel.and_then(|a| self.channel_id(a));
        let mr = self.attr(node, "mr").map(|a| {
            let user = format!("via of {label}");
            self.region_refs.push(RegionRef { name: a.value.to_string(), pos: a.pos, user });
            a.value.to_string()
        });
        let (pd, channel) = (pd?, channel?);
        Some(PendingVia {
            pd: PdRef { name: pd.value.to_string(), pos: pd.pos },
            channel: id?,
            channel_pos: channel.pos,
            mr,
            pos: self.pos_of(node),
        })
    }

    /// What holds among the chains of the protection domain at `pd`: unique
    /// names, each region and channel id in at most one stage, each link
    /// to another chain of the PD, and a chain without a via only as the
    /// target of a link.
    fn check_chains(&mut self, pd: usize) {
        let mut errors = Vec::new();
        let chains: Vec<&PendingChain> = self.chains.iter().filter(|c| c.pd == pd).collect();
        let name = &self.pds[pd].name;
        let named = |chain: &str, among: &[(usize, String)]| {
            among.iter().any(|(p, n)| *p == pd && n == chain)
        };
        for chain in &chains {
            let label = format!("chain '{}' of protection domain '{name}'", chain.name);
            if chain.vias.is_empty() && !named(&chain.name, &self.chain_link_targets) {
                errors.push((chain.pos, no_via_message(&label)));
            }
            for link in &chain.links {
                let what = if link.chain == chain.name {
                    "itself: a <link> joins two chains,".to_string()
                } else if !named(&link.chain, &self.chain_names) {
                    format!("unknown chain '{}':", link.chain)
                } else {
                    continue;
                };
                let message = format!("{label} links to {what} name another chain of '{name}'");
                errors.push((link.pos, message));
            }
        }
        for (i, chain) in chains.iter().enumerate() {
            if let Some(first) = chains[..i].iter().find(|c| c.name == chain.name) {
                let message = format!(
                    "protection domain '{name}' has two chains named '{}' (first at line {}): give \
                     each chain its own name",
                    chain.name, first.pos.line
                );
                errors.push((chain.pos, message));
            }
        }
        let stages = chains.iter().flat_map(|c| &c.stages);
        let mut regions: Vec<&StageRegion> = Vec::new();
        let mut channels: Vec<&StageChannel> = Vec::new();
        for stage in stages {
            for r in &stage.regions {
                match regions.iter().find(|seen| seen.mr == r.mr) {
                    Some(first) => errors.push((
                        r.pos,
                        format!(
                            "memory region '{}' is in the stages of protection domain '{name}' \
                             twice (first at line {}): a region belongs to one stage at most",
                            r.mr, first.pos.line
                        ),
                    )),
                    None => regions.push(r),
                }
            }
            for c in &stage.channels {
                match channels.iter().find(|seen| seen.id == c.id) {
                    Some(first) => errors.push((
                        c.pos,
                        format!(
                            "channel id {} is in the stages of protection domain '{name}' twice \
                             (first at line {}): a channel belongs to one stage at most",
                            c.id, first.pos.line
                        ),
                    )),
                    None => channels.push(c),
                }
            }
        }
        for (pos, message) in errors {
            self.diag.error(pos, message);
        }
    }

    fn read_memory_region(&mut self, node: XmlNode<'a, 'input>) {
        self.check_attributes(node, MEMORY_REGION);
        self.leaf(node);
        let name = self.required_with(node, "name", |r, a| r.non_empty(a, "a region name"));
        // `None` if the page size is invalid (and reported): then size and
        // address cannot be checked against it.
        let page_size = match self.attr(node, "page_size") {
            Some(attr) => self.page_size(attr),
            None => Some(DEFAULT_PAGE_SIZE),
        };
        let size = self.required_with(node, "size", |r, a| r.region_size(a, page_size));
        let phys_addr = self.attr(node, "phys_addr").and_then(|a| self.phys_addr(a, page_size));
        self.regions.push(MemoryRegion {
            name: name.unwrap_or_default(),
            size: size.unwrap_or_default(),
            page_size: page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            phys_addr,
            pos: self.pos_of(node),
        });
    }

    /// A `<channel>`: two `<end>`s and any number of `<lend>`s, in any
    /// order (lends are kept in document order).
    fn read_channel(&mut self, node: XmlNode<'a, 'input>) {
        self.check_attributes(node, CHANNEL);
        let pos = self.pos_of(node);
        let mut ends = Vec::new();
        // An end that says pp at all, even with an invalid (reported) value.
        let mut pp_claimed = false;
        let mut lends = Vec::new();
        let mut lend_nodes = Vec::new();
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "end" => {
                    pp_claimed |= child.attribute("pp").is_some_and(|pp| pp != "false");
                    ends.push(self.read_end(child));
                }
                "lend" => {
                    lend_nodes.push(child);
                    lends.extend(self.read_lend(child));
                }
                _ => self.unknown_element(child, node),
            }
        }
        let channel = match ends.as_slice() {
            [Some(a), Some(b)] => format!("the channel between '{}' and '{}'", a.pd, b.pd),
            _ => format!("the channel at line {}", pos.line),
        };
        let lends = self.check_lends(&channel, lends, &lend_nodes, pp_claimed);
        match <[Option<PendingEnd>; 2]>::try_from(ends) {
            Ok([Some(a), Some(b)]) => {
                self.channels.push(PendingChannel { ends: [a, b], lends, pos })
            }
            // An end was invalid; that is reported already.
            Ok(_) => {}
            Err(ends) => self.diag.error(
                pos,
                format!("a channel needs exactly two <end> elements, this one has {}", ends.len()),
            ),
        }
    }

    fn read_end(&mut self, node: XmlNode<'a, 'input>) -> Option<PendingEnd> {
        self.check_attributes(node, END);
        self.leaf(node);
        let pd = self.required(node, "pd");
        let id = self.required_with(node, "id", Self::channel_id);
        let pp = self.optional(node, "pp", false, Self::bool);
        let notify = self.optional(node, "notify", true, Self::bool);
        let pd = pd?;
        Some(PendingEnd {
            pd: pd.value.to_string(),
            pd_pos: pd.pos,
            id: id?,
            pp,
            notify,
            pos: self.pos_of(node),
        })
    }

    /// `<lend mr=".." perms=".."/>` in a channel, with the position of its
    /// `mr` attribute.
    fn read_lend(&mut self, node: XmlNode<'a, 'input>) -> Option<(Lend, Pos)> {
        self.check_attributes(node, LEND);
        self.leaf(node);
        let mr = self.required(node, "mr");
        let perms = self.required_with(node, "perms", Self::lend_perms);
        let mr = mr?;
        Some((Lend { mr: mr.value.to_string(), perms: perms?, pos: self.pos_of(node) }, mr.pos))
    }

    /// The lends of `channel` that may stay: only a PPC channel lends, each
    /// region once, at most [`MAX_LENDS`]. `nodes` are all its `<lend>`
    /// elements, the invalid ones (reported) too.
    fn check_lends(
        &mut self,
        channel: &str,
        lends: Vec<(Lend, Pos)>,
        nodes: &[XmlNode<'a, 'input>],
        pp_claimed: bool,
    ) -> Vec<Lend> {
        if let (Some(&first), false) = (nodes.first(), pp_claimed) {
            let message = format!(
                "only a PPC channel can lend: {channel} has no end with pp=\"true\", so there is \
                 no call to lend in; set pp=\"true\" on the caller's end or remove the <lend>s"
            );
            self.diag.error(self.pos_of(first), message);
        }
        if let Some(&extra) = nodes.get(MAX_LENDS) {
            let message = format!(
                "{channel} has more than {MAX_LENDS} lends: at most {MAX_LENDS} are supported, \
                 lend fewer regions"
            );
            self.diag.error(self.pos_of(extra), message);
        }
        let mut kept: Vec<Lend> = Vec::new();
        for (lend, mr_pos) in lends {
            if let Some(first) = kept.iter().find(|l| l.mr == lend.mr) {
                let message = format!(
                    "{channel} lends memory region '{}' twice (first at line {}): lend each \
                     region once",
                    lend.mr, first.pos.line
                );
                self.diag.error(lend.pos, message);
                continue;
            }
            let user = format!("lend in {channel}");
            self.region_refs.push(RegionRef { name: lend.mr.clone(), pos: mr_pos, user });
            kept.push(lend);
        }
        kept
    }

    fn read_device(&mut self, node: XmlNode<'a, 'input>) {
        self.check_attributes(node, DEVICE);
        let pos = self.pos_of(node);
        let name = self.required_with(node, "name", |r, a| r.non_empty(a, "a device name"));
        let owners = self.required_with(node, "owner", Self::pd_list);
        let mut regions = Vec::new();
        let mut irqs = Vec::new();
        let mut hardware_elements = 0;
        let user = format!("device '{}'", name.as_deref().unwrap_or_default());
        for child in self.element_children(node) {
            match child.tag_name().name() {
                "region" => {
                    hardware_elements += 1;
                    self.check_attributes(child, DEVICE_REGION);
                    self.leaf(child);
                    if let Some(mr) = self.required(child, "mr") {
                        let (name, pos) = (mr.value.to_string(), mr.pos);
                        self.region_refs.push(RegionRef { name, pos, user: user.clone() });
                        regions.push(DeviceRegion {
                            mr: mr.value.to_string(),
                            pos: self.pos_of(child),
                        });
                    }
                }
                "interrupt" => {
                    hardware_elements += 1;
                    self.check_attributes(child, INTERRUPT);
                    self.leaf(child);
                    if let Some(irq) = self.required_with(child, "irq", Self::irq_number) {
                        irqs.push(DeviceIrq { irq, pos: self.pos_of(child) });
                    }
                }
                _ => self.unknown_element(child, node),
            }
        }
        if hardware_elements == 0 {
            self.diag.error(
                pos,
                format!(
                    "{user} declares no hardware: add <region mr=\"...\"/> or \
                     <interrupt irq=\"...\"/> elements"
                ),
            );
        }
        let (Some(name), Some(owners)) = (name, owners) else { return };
        self.devices.push(PendingDevice { name, owners, regions, irqs, pos });
    }

    fn read_policy(&mut self, node: XmlNode<'a, 'input>) {
        self.check_attributes(node, POLICY);
        let pos = self.pos_of(node);
        let name = self.required_with(node, "name", |r, a| r.non_empty(a, "a policy name"));
        let kind = self.required_with(node, "kind", Self::policy_kind);
        let label = format!("policy '{}'", name.as_deref().unwrap_or_default());
        let via = self.kind_attribute(node, "via", kind, PolicyKind::Mediated, &label);
        let pd = self.kind_attribute(node, "pd", kind, PolicyKind::Isolated, &label);
        let mut members = PolicyMembers::default();
        for child in self.element_children(node) {
            self.read_policy_member(child, node, kind, &mut members);
        }
        let (Some(name), Some(kind)) = (name, kind) else { return };
        let PolicyMembers { from, to, allow, from_elements, to_elements } = members;
        let rule = match kind {
            PolicyKind::Isolated => {
                let Some(pd) = pd.or_else(|| self.required(node, "pd")) else { return };
                let pd = PdRef { name: pd.value.to_string(), pos: pd.pos };
                PendingRule::Isolated { pd, allow }
            }
            PolicyKind::NoFlow | PolicyKind::Mediated => {
                let mut complete = from.len() == from_elements && to.len() == to_elements;
                for (count, tag, role) in
                    [(from_elements, "from", "source"), (to_elements, "to", "target")]
                {
                    if count == 0 {
                        let message = format!(
                            "policy '{name}' of kind '{}' has no <{tag}>: it needs at least one \
                             {role}",
                            kind.name()
                        );
                        self.diag.error(pos, message);
                        complete = false;
                    }
                }
                let via = match kind {
                    PolicyKind::Mediated => {
                        let via = via.or_else(|| self.required(node, "via"));
                        Some(via.and_then(|a| self.pd_list(a)))
                    }
                    _ => None,
                };
                match (via, complete) {
                    (None, true) => PendingRule::NoFlow { from, to },
                    (Some(Some(via)), true) => PendingRule::Mediated { from, to, via },
                    _ => return,
                }
            }
        };
        self.policies.push(ReadPolicy { name, rule, pos });
    }

    /// An attribute of `<policy>` that belongs to policies of kind `owner`
    /// only; refused (and `None`) on another kind.
    fn kind_attribute(
        &mut self,
        node: XmlNode<'a, 'input>,
        name: &str,
        kind: Option<PolicyKind>,
        owner: PolicyKind,
        label: &str,
    ) -> Option<Attr<'a>> {
        let attr = self.attr(node, name)?;
        match kind {
            Some(kind) if kind != owner => {
                let message = format!(
                    "attribute '{name}' is only allowed on a policy of kind '{}' ({label} is \
                     '{}')",
                    owner.name(),
                    kind.name()
                );
                self.diag.error(attr.pos, message);
                None
            }
            _ => Some(attr),
        }
    }

    /// A child of `<policy>`: `<from>` and `<to>` (no-flow, mediated) or
    /// `<allow>` (isolated). With an invalid kind, any of them is read.
    fn read_policy_member(
        &mut self,
        child: XmlNode<'a, 'input>,
        policy: XmlNode<'a, 'input>,
        kind: Option<PolicyKind>,
        members: &mut PolicyMembers,
    ) {
        let tag = child.tag_name().name();
        let isolated = kind.map(|k| k == PolicyKind::Isolated);
        match (tag, isolated) {
            ("from" | "to", Some(true)) => self.diag.error(
                self.pos_of(child),
                format!(
                    "element '{tag}' is not allowed in a policy of kind 'isolated': it lists \
                     <allow pd=\"...\"/> elements"
                ),
            ),
            ("allow", Some(false)) => self.diag.error(
                self.pos_of(child),
                format!(
                    "element 'allow' is not allowed in a policy of kind '{}': <allow> belongs \
                     in an 'isolated' policy",
                    kind.map(PolicyKind::name).unwrap_or_default()
                ),
            ),
            ("from", _) => {
                members.from_elements += 1;
                members.from.extend(self.read_endpoint(child));
            }
            ("to", _) => {
                members.to_elements += 1;
                members.to.extend(self.read_endpoint(child));
            }
            ("allow", _) => {
                self.check_attributes(child, ALLOW);
                self.leaf(child);
                if let Some(a) = self.required(child, "pd") {
                    let pd = PdRef { name: a.value.to_string(), pos: a.pos };
                    members.allow.push((pd, self.pos_of(child)));
                }
            }
            _ => self.unknown_element(child, policy),
        }
    }

    /// A `<from>` or `<to>`: exactly one of `pd`, `region` and `device`.
    fn read_endpoint(&mut self, node: XmlNode<'a, 'input>) -> Option<PendingEndpoint> {
        self.check_attributes(node, POLICY_ENDPOINT);
        self.leaf(node);
        let pos = self.pos_of(node);
        let given: Vec<Attr<'a>> =
            POLICY_ENDPOINT.iter().filter_map(|name| self.attr(node, name)).collect();
        let [attr] = given.as_slice() else {
            let tag = node.tag_name().name();
            self.diag.error(
                pos,
                format!(
                    "element '{tag}' needs exactly one of the attributes 'pd', 'region' and \
                     'device', this one has {}",
                    given.len()
                ),
            );
            return None;
        };
        let value = attr.value.to_string();
        let entity = match attr.name {
            "pd" => PendingEntity::Pd(PdRef { name: value, pos: attr.pos }),
            "region" => PendingEntity::Region(value, attr.pos),
            _ => PendingEntity::Device(value, attr.pos),
        };
        Some(PendingEndpoint { entity, pos })
    }

    // ---- name resolution ----

    fn resolve_channels(&mut self) -> Vec<Channel> {
        let pending = std::mem::take(&mut self.channels);
        pending
            .into_iter()
            .filter_map(|channel| {
                let [a, b] = channel.ends;
                let (a, b) = (self.resolve_end(a), self.resolve_end(b));
                Some(Channel { ends: [a?, b?], lends: channel.lends, pos: channel.pos })
            })
            .collect()
    }

    /// Look up each chain's vias, check its channel ids against the
    /// channels read (by PD name, before they are resolved, so that a
    /// channel with an unknown far end does not also fail the chain), and
    /// give the chains to their protection domains.
    fn resolve_chains(&mut self) {
        for chain in std::mem::take(&mut self.chains) {
            let owner = self.pds[chain.pd].name.clone();
            let label = format!("chain '{}' of protection domain '{owner}'", chain.name);
            for &(id, pos) in &chain.channel_refs {
                if self.channel_end(&owner, id).is_none() {
                    let message = format!(
                        "{label} names channel id {id} in a stage, but '{owner}' has no channel \
                         with that id: name the id of one of its channel ends"
                    );
                    self.diag.error(pos, message);
                }
            }
            let mut vias = Vec::new();
            for via in &chain.vias {
                let user = format!("via of {label}");
                let Some(pd) = self.resolve_pd(&via.pd, &user) else { continue };
                if pd == chain.pd {
                    let message = format!(
                        "{user} names '{owner}' itself: a chain passes through other protection \
                         domains, name the one between these two stages"
                    );
                    self.diag.error(via.pd.pos, message);
                    continue;
                }
                if self.check_via_channel(via, &owner, &label) {
                    let (channel, mr, pos) = (via.channel, via.mr.clone(), via.pos);
                    vias.push(Via { pd, channel, mr, pos });
                }
            }
            if vias.len() == chain.vias.len() {
                let PendingChain { name, stages, links, pos, .. } = chain;
                self.pds[chain.pd].chains.push(Chain { name, stages, vias, links, pos });
            }
        }
    }

    /// The end of `pd` with id `id` among the channels read, and the other
    /// end.
    fn channel_end(&self, pd: &str, id: u8) -> Option<(&PendingEnd, &PendingEnd)> {
        self.channels.iter().find_map(|ch| {
            let [a, b] = &ch.ends;
            if a.pd == pd && a.id == id {
                Some((a, b))
            } else if b.pd == pd && b.id == id {
                Some((b, a))
            } else {
                None
            }
        })
    }

    /// Whether the channel of a via leads from the chain's protection
    /// domain `owner` to the via's, with `owner` the caller; reports why
    /// not.
    fn check_via_channel(&mut self, via: &PendingVia, owner: &str, label: &str) -> bool {
        let (id, to) = (via.channel, &via.pd.name);
        let fix = format!("give the id that '{owner}' uses for its PPC channel to '{to}'");
        let why = match self.channel_end(owner, id) {
            None => format!("'{owner}' has no channel with that id: {fix}"),
            Some((_, other)) if other.pd != *to => {
                format!("that channel of '{owner}' leads to '{}': {fix}", other.pd)
            }
            Some((own, _)) if !own.pp => format!(
                "'{owner}' cannot make PPCs on it: set pp=\"true\" on its end, the chain calls \
                 '{to}'"
            ),
            Some(_) => return true,
        };
        let message = format!("via '{to}' of {label} uses channel id {id}, but {why}");
        self.diag.error(via.channel_pos, message);
        false
    }

    fn resolve_end(&mut self, end: PendingEnd) -> Option<ChannelEnd> {
        match self.pds.iter().position(|pd| pd.name == end.pd) {
            Some(pd) => {
                Some(ChannelEnd { pd, id: end.id, pp: end.pp, notify: end.notify, pos: end.pos })
            }
            None => {
                let hint = choices(&end.pd, self.pds.iter().map(|pd| pd.name.as_str()));
                self.diag.error(
                    end.pd_pos,
                    format!("channel end names unknown protection domain '{}'{hint}", end.pd),
                );
                None
            }
        }
    }

    /// The index of the protection domain `r` names; reports an unknown
    /// name, saying who used it.
    fn resolve_pd(&mut self, r: &PdRef, user: &str) -> Option<usize> {
        let found = self.pds.iter().position(|pd| pd.name == r.name);
        if found.is_none() {
            let hint = choices(&r.name, self.pds.iter().map(|pd| pd.name.as_str()));
            self.diag.error(r.pos, format!("{user} names unknown protection domain '{}'{hint}", r.name));
        }
        found
    }

    /// Resolve every name of `refs`; `None` if any is unknown (reported).
    fn resolve_pds(&mut self, refs: &[PdRef], user: &str) -> Option<Vec<usize>> {
        let resolved: Vec<Option<usize>> = refs.iter().map(|r| self.resolve_pd(r, user)).collect();
        resolved.into_iter().collect()
    }

    fn resolve_devices(&mut self) -> Vec<Device> {
        let pending = std::mem::take(&mut self.devices);
        pending
            .into_iter()
            .filter_map(|dev| {
                let user = format!("owner of device '{}'", dev.name);
                let owners = self.resolve_pds(&dev.owners, &user)?;
                let PendingDevice { name, regions, irqs, pos, .. } = dev;
                Some(Device { name, owners, regions, irqs, pos })
            })
            .collect()
    }

    /// The policies whose names all exist, and those that name something
    /// the storage expansion generates (kept by name).
    fn resolve_policies(&mut self, devices: &[Device]) -> (Vec<Policy>, Vec<PendingPolicy>) {
        let generated = self.generated_names();
        let mut policies = Vec::new();
        let mut pending = Vec::new();
        for policy in std::mem::take(&mut self.policies) {
            let user = format!("policy '{}'", policy.name);
            let Some((named, uses_generated)) =
                self.name_policy(policy, devices, &generated, &user)
            else {
                continue;
            };
            self.check_policy(&named, &user);
            let index = policies.len() + pending.len();
            if uses_generated {
                pending.push(PendingPolicy { index, policy: named });
            } else if let Some(policy) =
                named.map_pds(|r| self.pds.iter().position(|pd| pd.name == r.name))
            {
                policies.push(policy);
            }
        }
        (policies, pending)
    }

    /// What the storage expansion will generate from the disks and block
    /// clients read (block clients resolved).
    fn generated_names(&self) -> Vec<GeneratedName> {
        if self.disks.is_empty() {
            return Vec::new();
        }
        let view = SystemDescription {
            file: String::new(),
            protection_domains: self.pds.clone(),
            memory_regions: Vec::new(),
            channels: Vec::new(),
            devices: Vec::new(),
            policies: Vec::new(),
            pending_policies: Vec::new(),
            disks: self.disks.clone(),
        };
        storage::generated_names(&view)
    }

    /// The policy with its names checked: each must be declared or be one
    /// the storage expansion generates; every other is reported. Also
    /// says whether it names a generated one.
    fn name_policy(
        &mut self,
        policy: ReadPolicy,
        devices: &[Device],
        generated: &[GeneratedName],
        user: &str,
    ) -> Option<(Policy<PdName>, bool)> {
        let mut uses_generated = false;
        let mut ok = true;
        let mut check = |reader: &mut Self, space: NameSpace, name: &str, pos: Pos| {
            let declared = match space {
                NameSpace::ProtectionDomain => reader.pds.iter().any(|pd| pd.name == name),
                NameSpace::MemoryRegion => reader.regions.iter().any(|mr| mr.name == name),
                NameSpace::Device => devices.iter().any(|d| d.name == name),
            };
            if declared {
                return;
            }
            if generated.iter().any(|g| g.space == space && g.name == name) {
                uses_generated = true;
                return;
            }
            ok = false;
            let hint = reader.generated_hint(space, name, generated);
            let message = format!("{user} names unknown {} '{name}'{hint}", space.noun());
            reader.diag.error(pos, message);
        };
        let mut endpoints = |reader: &mut Self, list: Vec<PendingEndpoint>| {
            list.into_iter()
                .map(|e| {
                    let entity = match e.entity {
                        PendingEntity::Pd(r) => {
                            check(reader, NameSpace::ProtectionDomain, &r.name, r.pos);
                            Entity::Pd(r)
                        }
                        PendingEntity::Region(name, pos) => {
                            check(reader, NameSpace::MemoryRegion, &name, pos);
                            Entity::Region(name)
                        }
                        PendingEntity::Device(name, pos) => {
                            check(reader, NameSpace::Device, &name, pos);
                            Entity::Device(name)
                        }
                    };
                    Endpoint { entity, pos: e.pos }
                })
                .collect::<Vec<Endpoint<PdName>>>()
        };
        let rule = match policy.rule {
            PendingRule::NoFlow { from, to } => {
                let from = endpoints(self, from);
                let to = endpoints(self, to);
                PolicyRule::NoFlow { from, to }
            }
            PendingRule::Mediated { from, to, via } => {
                let from = endpoints(self, from);
                let to = endpoints(self, to);
                for r in &via {
                    check(self, NameSpace::ProtectionDomain, &r.name, r.pos);
                }
                PolicyRule::Mediated { from, to, via }
            }
            PendingRule::Isolated { pd, allow } => {
                check(self, NameSpace::ProtectionDomain, &pd.name, pd.pos);
                for (r, _) in &allow {
                    check(self, NameSpace::ProtectionDomain, &r.name, r.pos);
                }
                let allow = allow.into_iter().map(|(pd, pos)| Allow { pd, pos }).collect();
                PolicyRule::Isolated { pd, allow }
            }
        };
        ok.then(|| (Policy { name: policy.name, rule, pos: policy.pos }, uses_generated))
    }

    /// For an unknown name that looks like one the storage expansion
    /// generates: why it does not generate it here. Empty for other names.
    fn generated_hint(&self, space: NameSpace, name: &str, generated: &[GeneratedName]) -> String {
        let mut clients = self.pds.iter().filter_map(|pd| pd.block_client.as_ref());
        let why_no_server = if self.disks.is_empty() {
            "no <disk> is declared"
        } else if clients.next().is_none() {
            "no protection domain has a <block_client>"
        } else {
            "every block client is direct"
        };
        let filter = self
            .disks
            .iter()
            .find_map(|disk| disk.filters.iter().find(|f| f.name == name).map(|f| (disk, f)));
        if let (NameSpace::ProtectionDomain, Some((disk, filter))) = (space, filter) {
            return format!(
                ": the filter '{}' of disk '{}' becomes a protection domain only when the storage \
                 expansion generates the filter server, and {why_no_server}",
                filter.name, disk.name
            );
        }
        if !storage::looks_generated(name) {
            return String::new();
        }
        let noun = space.noun();
        if space == NameSpace::ProtectionDomain && name == storage::SERVER_PD {
            return format!(
                ": the storage expansion generates the filter server '{name}' only when some \
                 block client is not direct, and {why_no_server}"
            );
        }
        if self.disks.is_empty() {
            return format!(": no <disk> is declared, so the storage expansion generates no {noun}");
        }
        let quoted = |conditional: bool| -> Vec<String> {
            generated
                .iter()
                .filter(|g| g.space == space && g.conditional == conditional)
                .map(|g| format!("'{}'", g.name))
                .collect()
        };
        let (names, maybe) = (quoted(false), quoted(true));
        if names.is_empty() && maybe.is_empty() {
            return format!(": the storage expansion generates no {noun} here");
        }
        // (Bounce buffers exist only for filters whose program declares
        // one, which the parser cannot see.)
        let maybe = match maybe.len() {
            0 => String::new(),
            _ => format!("; and {}, each if its filter's program declares a bounce buffer", maybe.join(", ")),
        };
        format!(
            ": the storage expansion does not generate it (its {noun}s here are {}{maybe})",
            names.join(", ")
        )
    }

    /// What must hold within one policy, once its names are known: no
    /// entity both a source and a target, no mediator a source or target,
    /// no isolated PD allowed to itself. Names compare as the indices they
    /// resolve to would (a name resolves to its first declaration).
    fn check_policy(&mut self, policy: &Policy<PdName>, user: &str) {
        match &policy.rule {
            PolicyRule::NoFlow { from, to } => self.sources_are_not_targets(from, to, user),
            PolicyRule::Mediated { from, to, via } => {
                self.sources_are_not_targets(from, to, user);
                self.mediators_are_not_endpoints(from, to, via, user);
            }
            PolicyRule::Isolated { pd, allow } => {
                for a in allow.iter().filter(|a| a.pd.name == pd.name) {
                    let message = format!(
                        "{user} lists its own protection domain '{}' in <allow>: list only the \
                         others it may share with",
                        pd.name
                    );
                    self.diag.error(a.pos, message);
                }
            }
        }
    }

    /// A flow from something to itself cannot be prevented.
    fn sources_are_not_targets(
        &mut self,
        from: &[Endpoint<PdName>],
        to: &[Endpoint<PdName>],
        user: &str,
    ) {
        for target in to {
            if from.iter().any(|source| same_entity(&source.entity, &target.entity)) {
                let what = entity_name(&target.entity);
                self.diag.error(
                    target.pos,
                    format!(
                        "{user} names {what} both in <from> and in <to>: a flow from something \
                         to itself cannot be ruled out"
                    ),
                );
            }
        }
    }

    /// A flow that starts or ends at a mediator passes through it trivially.
    fn mediators_are_not_endpoints(
        &mut self,
        from: &[Endpoint<PdName>],
        to: &[Endpoint<PdName>],
        via: &[PdName],
        user: &str,
    ) {
        for e in from.iter().chain(to) {
            if let Entity::Pd(pd) = &e.entity {
                if via.iter().any(|v| v.name == pd.name) {
                    let message = format!(
                        "{user} names its mediator '{}' as a source or target: a mediator sits \
                         between them",
                        pd.name
                    );
                    self.diag.error(e.pos, message);
                }
            }
        }
    }

    fn resolve_block_clients(&mut self) {
        for client in std::mem::take(&mut self.block_clients) {
            let Some(disk) = self.disks.iter().position(|d| d.name == client.disk) else {
                let pd = &self.pds[client.pd].name;
                let hint = choices(&client.disk, self.disks.iter().map(|d| d.name.as_str()));
                let message = format!(
                    "block_client of protection domain '{pd}' names unknown disk '{}'{hint}",
                    client.disk
                );
                self.diag.error(client.disk_pos, message);
                continue;
            };
            let mut at = None;
            if let Some((filter, at_pos)) = &client.at {
                at = self.disks[disk].filters.iter().position(|f| &f.name == filter);
                if at.is_none() {
                    let message = self.unknown_filter_message(client.pd, disk, filter);
                    self.diag.error(*at_pos, message);
                    continue;
                }
            }
            self.pds[client.pd].block_client = Some(BlockClient {
                disk,
                at,
                partition: client.partition,
                data_size: client.data_size,
                queue_capacity: client.queue_capacity,
                direct: client.direct,
                read_only: client.read_only,
                pos: client.pos,
            });
        }
    }

    /// Look up the disk of each filter's `<link>`: a disk may be declared
    /// after the filters that link to it.
    fn resolve_filter_links(&mut self) {
        for link in std::mem::take(&mut self.filter_links) {
            let Some(target) = self.disks.iter().position(|d| d.name == link.name) else {
                let own = &self.disks[link.disk];
                let others: Vec<&str> = self
                    .disks
                    .iter()
                    .filter(|d| d.name != own.name)
                    .map(|d| d.name.as_str())
                    .collect();
                let hint = if others.is_empty() {
                    "the system declares no other disk: declare it, or drop the <link>".to_string()
                } else {
                    format!("name one of the declared disks ({})", others.join(", "))
                };
                let message = format!(
                    "filter '{}' of disk '{}' links to unknown disk '{}': {hint}",
                    own.filters[link.filter].name, own.name, link.name
                );
                self.diag.error(link.pos, message);
                continue;
            };
            let filter = &mut self.disks[link.disk].filters[link.filter];
            filter.links.push(Link { disk: target, pos: link.pos });
        }
    }

    /// Why `at="filter"` of the block client of PD `pd` names no filter
    /// of its disk `disk`, and what to do.
    fn unknown_filter_message(&self, pd: usize, disk: usize, filter: &str) -> String {
        let pd = &self.pds[pd].name;
        let disk = &self.disks[disk];
        let head = format!("block_client of protection domain '{pd}' attaches at '{filter}'");
        let other = self.disks.iter().find(|d| d.filters.iter().any(|f| f.name == filter));
        let (what, elsewhere) = match other {
            Some(other) => (
                format!(", a filter of disk '{}', not of its disk '{}'", other.name, disk.name),
                format!(", or make it a client of disk '{}'", other.name),
            ),
            None => (format!(", which is no filter of its disk '{}'", disk.name), String::new()),
        };
        if disk.filters.is_empty() {
            let what = match other {
                Some(_) => what,
                None => format!(", but its disk '{}' has no filters", disk.name),
            };
            return format!("{head}{what}: drop 'at'{elsewhere}");
        }
        let names: Vec<&str> = disk.filters.iter().map(|f| f.name.as_str()).collect();
        format!(
            "{head}{what} (its filters, from the top: {}): name one of those in 'at'{elsewhere}",
            names.join(", ")
        )
    }

    fn resolve_region_refs(&mut self) {
        for r in std::mem::take(&mut self.region_refs) {
            if !self.regions.iter().any(|mr| mr.name == r.name) {
                let message = format!("{} names unknown memory region '{}'", r.user, r.name);
                self.diag.error(r.pos, message);
            }
        }
    }

    // ---- structure ----

    /// The element children of `node`; text other than whitespace is
    /// reported, comments are skipped.
    fn element_children(&mut self, node: XmlNode<'a, 'input>) -> Vec<XmlNode<'a, 'input>> {
        let mut elements = Vec::new();
        for child in node.children() {
            if child.is_element() {
                self.check_namespace(child, node.tag_name().namespace());
                elements.push(child);
            } else if child.is_text() {
                self.check_blank(child, node);
            }
        }
        elements
    }

    /// Report a text node that is not whitespace.
    fn check_blank(&mut self, text: XmlNode<'a, 'input>, parent: XmlNode<'a, 'input>) {
        let content = text.text().unwrap_or_default().trim();
        if content.is_empty() {
            return;
        }
        // Point at the first non-blank character of the source text.
        let range = text.range();
        let raw = self.doc.input_text().get(range.clone()).unwrap_or_default();
        let blank = raw.len() - raw.trim_start().len();
        let excerpt: String = content.chars().take(30).collect();
        let ellipsis = if excerpt.len() < content.len() { "..." } else { "" };
        self.diag.error(
            self.lines.pos(range.start + blank),
            format!(
                "unexpected text '{}{ellipsis}' in element '{}'",
                excerpt.escape_debug(),
                parent.tag_name().name()
            ),
        );
    }

    /// Refuse any child element of an element that has none.
    fn leaf(&mut self, node: XmlNode<'a, 'input>) {
        for child in self.element_children(node) {
            self.unknown_element(child, node);
        }
    }

    /// Report an element that does not belong where it is: a misplaced
    /// `<filter>`, `<param>` or `<link>` as such, anything else as unknown.
    fn unknown_element(&mut self, child: XmlNode<'a, 'input>, parent: XmlNode<'a, 'input>) {
        let (tag, parent) = (child.tag_name().name(), parent.tag_name().name());
        let message = match tag {
            "filter" => format!(
                "<filter> belongs inside a <disk>: move it from '{parent}' into the <disk> whose \
                 requests it filters"
            ),
            "param" => format!(
                "<param> belongs inside a <filter>: move it from '{parent}' into the <filter> it \
                 configures"
            ),
            "link" if matches!(parent, "stage" | "via") => format!(
                "the <link> of a chain belongs directly inside the <chain>: move it out of \
                 '{parent}'"
            ),
            "link" => format!(
                "<link> belongs inside a <filter>: move it from '{parent}' into the <filter> that \
                 redirects requests to that disk"
            ),
            // (A known element out of its place has no better name.)
            _ => match closest(tag, ELEMENTS).filter(|&known| known != tag) {
                Some(known) => format!("unknown element '{tag}' in '{parent}': did you mean <{known}>?"),
                None => format!("unknown element '{tag}' in '{parent}'"),
            },
        };
        self.diag.error(self.pos_of(child), message);
    }

    /// Report an element that enters an XML namespace (one other than its
    /// parent's; the root's parent has none): the format has none, and a
    /// namespaced element would otherwise be read as if it had no prefix.
    /// Its children, in the same namespace, are not reported again.
    fn check_namespace(&mut self, node: XmlNode<'a, 'input>, parent: Option<&str>) {
        let Some(uri) = node.tag_name().namespace() else { return };
        if Some(uri) == parent {
            return;
        }
        let range = node.range();
        let message = format!(
            "element '{}' is in the XML namespace '{uri}': a system description uses no \
             namespaces; write <{}> without a prefix or xmlns",
            self.written_name(range.start),
            node.tag_name().name()
        );
        self.diag.error(self.lines.pos(range.start), message);
    }

    /// The name of the element or attribute that starts at `offset`, as
    /// written (with its prefix, if any).
    fn written_name(&self, offset: usize) -> &'input str {
        let text = self.doc.input_text().get(offset..).unwrap_or_default();
        let text = text.strip_prefix('<').unwrap_or(text);
        let end = text
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '='))
            .unwrap_or(text.len());
        &text[..end]
    }

    fn check_attributes(&mut self, node: XmlNode<'a, 'input>, allowed: &[&str]) {
        for attr in node.attributes() {
            if let Some(uri) = attr.namespace() {
                let start = attr.range().start;
                let message = format!(
                    "attribute '{}' on element '{}' is in the XML namespace '{uri}': a system \
                     description uses no namespaces; write '{}' without a prefix",
                    self.written_name(start),
                    node.tag_name().name(),
                    attr.name()
                );
                self.diag.error(self.lines.pos(start), message);
            } else if !allowed.contains(&attr.name()) {
                let (name, element) = (attr.name(), node.tag_name().name());
                let message = match closest(name, allowed) {
                    Some(known) => format!(
                        "unknown attribute '{name}' on element '{element}': did you mean '{known}'?"
                    ),
                    None => format!("unknown attribute '{name}' on element '{element}'"),
                };
                self.diag.error(self.lines.pos(attr.range().start), message);
            }
        }
    }

    // ---- attributes ----

    fn attr(&self, node: XmlNode<'a, 'input>, name: &str) -> Option<Attr<'a>> {
        let attr = node.attributes().find(|a| a.name() == name)?;
        Some(Attr {
            name: attr.name(),
            element: node.tag_name().name(),
            value: attr.value(),
            pos: self.lines.pos(attr.range().start),
        })
    }

    fn required(&mut self, node: XmlNode<'a, 'input>, name: &str) -> Option<Attr<'a>> {
        let attr = self.attr(node, name);
        if attr.is_none() {
            self.diag.error(
                self.pos_of(node),
                format!(
                    "missing required attribute '{name}' on element '{}'",
                    node.tag_name().name()
                ),
            );
        }
        attr
    }

    /// Read a required attribute with `read`; `None` if it is missing or
    /// invalid (both reported).
    fn required_with<T>(
        &mut self,
        node: XmlNode<'a, 'input>,
        name: &str,
        read: impl FnOnce(&mut Self, Attr<'a>) -> Option<T>,
    ) -> Option<T> {
        let attr = self.required(node, name)?;
        read(self, attr)
    }

    /// Read an optional attribute with `read`; `default` if it is absent or
    /// invalid (reported).
    fn optional<T>(
        &mut self,
        node: XmlNode<'a, 'input>,
        name: &str,
        default: T,
        read: impl FnOnce(&mut Self, Attr<'a>) -> Option<T>,
    ) -> T {
        match self.attr(node, name) {
            Some(attr) => read(self, attr).unwrap_or(default),
            None => default,
        }
    }

    /// Report that `attr` has a bad value; `expected` says what a good one
    /// looks like.
    fn invalid<T>(&mut self, attr: Attr<'a>, expected: impl Display) -> Option<T> {
        // A long value is shown by its start, so the error stays one line
        // a reader can take in.
        const SHOWN: usize = 160;
        let value = attr.value.escape_debug().to_string();
        let value = match value.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("'{}...' ({} bytes)", &value[..cut], attr.value.len()),
            None => format!("'{value}'"),
        };
        self.diag.error(
            attr.pos,
            format!(
                "invalid value {value} for attribute '{}' on element '{}': expected {expected}",
                attr.name, attr.element
            ),
        );
        None
    }

    // ---- values ----

    /// An integer of any size that fits in 64 bits.
    fn int(&mut self, attr: Attr<'a>) -> Option<u64> {
        match parse_int(attr.value) {
            Ok(value) => Some(value),
            Err(IntError::Syntax) => {
                self.invalid(attr, "an integer (decimal, or hexadecimal with a 0x prefix)")
            }
            Err(IntError::TooLarge) => self.invalid(attr, "an integer that fits in 64 bits"),
        }
    }

    /// An integer that `accept` accepts; anything else, malformed or
    /// refused, is reported with `expected`.
    fn int_where(
        &mut self,
        attr: Attr<'a>,
        accept: impl FnOnce(u64) -> bool,
        expected: impl Display,
    ) -> Option<u64> {
        match parse_int(attr.value) {
            Ok(value) if accept(value) => Some(value),
            _ => self.invalid(attr, expected),
        }
    }

    /// An integer in `range`, as a `T` (which `range` must fit).
    fn int_in<T: TryFrom<u64>>(
        &mut self,
        attr: Attr<'a>,
        range: RangeInclusive<u64>,
        expected: impl Display,
    ) -> Option<T> {
        let value = self.int_where(attr, |v| range.contains(&v), expected)?;
        T::try_from(value).ok()
    }

    fn bool(&mut self, attr: Attr<'a>) -> Option<bool> {
        parse_bool(attr.value).or_else(|| self.invalid(attr, "'true' or 'false'"))
    }

    fn non_empty(&mut self, attr: Attr<'a>, expected: &str) -> Option<String> {
        if attr.value.is_empty() {
            self.invalid(attr, expected)
        } else {
            Some(attr.value.to_string())
        }
    }

    /// `bytes` of a setvar: an even, non-zero number of hex digits.
    fn hex_bytes(&mut self, attr: Attr<'a>) -> Option<Vec<u8>> {
        match parse_hex_bytes(attr.value) {
            Some(bytes) => Some(bytes),
            None => self.invalid(
                attr,
                "bytes as hexadecimal digits, two per byte, at least one byte (e.g. '0a0b')",
            ),
        }
    }

    fn pd_name(&mut self, attr: Attr<'a>) -> Option<String> {
        if (1..=bootspec::MAX_NAME).contains(&attr.value.len()) {
            Some(attr.value.to_string())
        } else {
            self.invalid(attr, format_args!("a name of 1 to {} bytes", bootspec::MAX_NAME))
        }
    }

    fn stack_size(&mut self, attr: Attr<'a>) -> Option<u64> {
        let range = layout::MIN_STACK_SIZE..=layout::MAX_STACK_SIZE;
        let expected = format!(
            "a multiple of the page size {:#x} from {:#x} to {:#x}",
            layout::PAGE_SIZE,
            range.start(),
            range.end()
        );
        let accept = |size| size % layout::PAGE_SIZE == 0 && range.contains(&size);
        self.int_where(attr, accept, expected)
    }

    fn perms(&mut self, attr: Attr<'a>) -> Option<Perms> {
        match Perms::parse(attr.value) {
            Ok(perms) => Some(perms),
            Err(why) => self.invalid(attr, why),
        }
    }

    /// One or more protection domain names, separated by spaces or commas,
    /// none twice.
    fn pd_list(&mut self, attr: Attr<'a>) -> Option<Vec<PdRef>> {
        let names: Vec<&str> = attr
            .value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return self.invalid(
                attr,
                "the names of one or more protection domains, separated by spaces or commas",
            );
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return self.invalid(
                    attr,
                    format_args!("each protection domain once ('{name}' is repeated)"),
                );
            }
        }
        Some(
            names.into_iter().map(|name| PdRef { name: name.to_string(), pos: attr.pos }).collect(),
        )
    }

    /// A `call_budget` (or filter `budget`): microseconds, 1 to
    /// [`MAX_CALL_BUDGET_US`].
    fn call_budget(&mut self, attr: Attr<'a>) -> Option<u64> {
        let expected = format!("a number of microseconds from 1 to {MAX_CALL_BUDGET_US} (10 s)");
        self.int_in(attr, 1..=MAX_CALL_BUDGET_US, expected)
    }

    /// A filter's `priority`: a priority, and between the filter server's
    /// and the driver's (the server calls the filter, and a PPC goes to a
    /// strictly higher priority). `label` names the filter.
    fn filter_priority(&mut self, attr: Attr<'a>, label: &str) -> Option<u8> {
        let expected = format!("a priority from 0 to {MAX_PRIORITY}");
        let priority: u8 = self.int_in(attr, 0..=u64::from(MAX_PRIORITY), expected)?;
        if priority > SERVER_PRIORITY && priority < DRIVER_PRIORITY {
            return Some(priority);
        }
        let (low, high) = (SERVER_PRIORITY + 1, DRIVER_PRIORITY - 1);
        let message = format!(
            "{label} has priority {priority}: a filter runs above the filter server \
             ({SERVER_PRIORITY}) and below the driver ({DRIVER_PRIORITY}), give it a priority \
             from {low} to {high} or leave priority out"
        );
        self.diag.error(attr.pos, message);
        None
    }

    fn data_access(&mut self, attr: Attr<'a>) -> Option<DataAccess> {
        match attr.value {
            "none" => Some(DataAccess::None),
            "read" => Some(DataAccess::Read),
            "read-write" => Some(DataAccess::ReadWrite),
            _ => self.invalid(attr, "'none', 'read' or 'read-write'"),
        }
    }

    fn on_fault(&mut self, attr: Attr<'a>) -> Option<OnFault> {
        match attr.value {
            "fail" => Some(OnFault::Fail),
            "restart" => Some(OnFault::Restart),
            _ => self.invalid(attr, "'fail' or 'restart'"),
        }
    }

    /// A lend's `perms`: `r` or `rw`.
    fn lend_perms(&mut self, attr: Attr<'a>) -> Option<Perms> {
        match Perms::parse(attr.value) {
            Ok(perms) if !perms.execute => Some(perms),
            _ => {
                let message = format!(
                    "lend has perms '{}', but a lend's perms are r or rw: a lent region is never \
                     executable",
                    attr.value.escape_debug()
                );
                self.diag.error(attr.pos, message);
                None
            }
        }
    }

    fn channel_id(&mut self, attr: Attr<'a>) -> Option<u8> {
        self.int_in(attr, 0..=u64::from(MAX_ID), format_args!("a channel id from 0 to {MAX_ID}"))
    }

    fn irq_number(&mut self, attr: Attr<'a>) -> Option<u32> {
        let expected = format!("a shared peripheral interrupt from {FIRST_SPI} to {MAX_IRQ}");
        if parse_int(attr.value) == Ok(u64::from(TIMER_IRQ)) {
            let expected = format!("{expected} ({TIMER_IRQ} is the kernel's timer)");
            return self.invalid(attr, expected);
        }
        self.int_in(attr, u64::from(FIRST_SPI)..=u64::from(MAX_IRQ), expected)
    }

    fn policy_kind(&mut self, attr: Attr<'a>) -> Option<PolicyKind> {
        match attr.value {
            "no-flow" => Some(PolicyKind::NoFlow),
            "mediated" => Some(PolicyKind::Mediated),
            "isolated" => Some(PolicyKind::Isolated),
            _ => self.invalid(attr, POLICY_KINDS),
        }
    }

    fn trigger(&mut self, attr: Attr<'a>) -> Option<Trigger> {
        match attr.value {
            "level" => Some(Trigger::Level),
            "edge" => Some(Trigger::Edge),
            _ => self.invalid(attr, "'level' or 'edge'"),
        }
    }

    fn page_size(&mut self, attr: Attr<'a>) -> Option<u64> {
        let expected = "0x1000 (4 KiB) or 0x200000 (2 MiB)";
        self.int_where(attr, |size| PAGE_SIZES.contains(&size), expected)
    }

    /// A region size: a non-zero multiple of the page size (if that is
    /// valid; else any integer, the page size being reported already).
    fn region_size(&mut self, attr: Attr<'a>, page_size: Option<u64>) -> Option<u64> {
        match page_size {
            Some(page) => self.int_where(
                attr,
                |size| size != 0 && size % page == 0,
                format_args!("a non-zero multiple of the page size {page:#x}"),
            ),
            None => self.int(attr),
        }
    }

    /// A physical address aligned to the page size (if that is valid).
    fn phys_addr(&mut self, attr: Attr<'a>, page_size: Option<u64>) -> Option<u64> {
        let addr = self.int(attr)?;
        match page_size {
            Some(page) if addr % page != 0 => {
                self.invalid(attr, format_args!("an address aligned to the page size {page:#x}"))
            }
            _ => Some(addr),
        }
    }

    // ---- positions ----

    fn pos_of(&self, node: XmlNode<'a, 'input>) -> Pos {
        self.lines.pos(node.range().start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }

    #[test]
    fn line_index_counts_lines_and_characters() {
        let lines = LineIndex::new("ab\n\u{e9}cd\n");
        assert_eq!(lines.pos(0), pos(1, 1));
        assert_eq!(lines.pos(2), pos(1, 3));
        assert_eq!(lines.pos(3), pos(2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(lines.pos(5), pos(2, 2));
        assert_eq!(lines.end(), pos(3, 1));
    }

    #[test]
    fn line_index_agrees_with_roxmltree() {
        let xml = "<a>\n  <b x='1'/>\n\t<\u{e9}/>\n</a>";
        let doc = Document::parse(xml).unwrap();
        let lines = LineIndex::new(xml);
        for offset in (0..=xml.len()).filter(|&i| xml.is_char_boundary(i)) {
            let theirs = doc.text_pos_at(offset);
            assert_eq!(lines.pos(offset), pos(theirs.row, theirs.col), "offset {offset}");
        }
    }

    /// The positions as they were computed before the index kept running
    /// character counts: the characters from the line's start, rescanned.
    fn rescanned(text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let bytes = &text.as_bytes()[..offset];
        let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1;
        let col = match text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            None => offset - start,
        };
        pos(to_u32(line), to_u32(col + 1))
    }

    /// Every offset of `text`, inside characters too, against `rescanned`.
    fn assert_positions_unchanged(text: &str) {
        let lines = LineIndex::new(text);
        for offset in 0..=text.len() + 1 {
            assert_eq!(lines.pos(offset), rescanned(text, offset), "offset {offset}");
        }
    }

    #[test]
    fn positions_on_long_lines_count_characters_as_before() {
        // Long enough to span many blocks of the running counts, with
        // characters of one to four bytes straddling block boundaries.
        let mut line = String::new();
        for i in 0..400 {
            line.push_str(["a", "\u{e9}", "\u{20ac}", "\u{1d11e}", "<b x='1'/>"][i % 5]);
        }
        assert_positions_unchanged(&line);
        assert_positions_unchanged(&format!("{line}\n{line}\n\n{line}"));
        let lines = LineIndex::new(&line);
        // 400 characters of 1, 2, 3, 4 and 10 bytes, 80 of each.
        assert_eq!(lines.end(), pos(1, 80 * 14 + 1));
        assert_eq!(lines.pos(line.len() - 10), pos(1, 80 * 14 - 10 + 1));
    }

    #[test]
    fn positions_with_crlf_count_the_carriage_return_as_before() {
        let text = "ab\r\n\u{e9}\r\n\r\nc";
        assert_positions_unchanged(text);
        let lines = LineIndex::new(text);
        assert_eq!(lines.pos(2), pos(1, 3)); // the '\r'
        assert_eq!(lines.pos(3), pos(1, 4)); // the '\n'
        assert_eq!(lines.pos(4), pos(2, 1));
        assert_eq!(lines.pos(6), pos(2, 2)); // after the two-byte 'é'
        assert_eq!(lines.pos(10), pos(4, 1));
        assert_eq!(lines.end(), pos(4, 2));
    }

    #[test]
    fn positions_inside_a_character_count_bytes_as_before() {
        let text = "x\n\u{e9}\u{20ac}";
        let lines = LineIndex::new(text);
        assert_eq!(lines.pos(3), pos(2, 2)); // inside 'é': one byte into the line
        assert_eq!(lines.pos(5), pos(2, 4)); // inside '€'
        assert_eq!(lines.pos(4), pos(2, 2)); // on '€'
        assert_positions_unchanged(text);
    }

    #[test]
    fn long_lines_agree_with_roxmltree() {
        let attrs: String = (0..300).map(|i| format!(" a{i}='\u{e9}\u{1d11e}{i}'")).collect();
        let xml = format!("<a{attrs}>\r\n<b{attrs}/>\u{20ac}</a>");
        let doc = Document::parse(&xml).unwrap();
        let lines = LineIndex::new(&xml);
        for offset in (0..=xml.len()).filter(|&i| xml.is_char_boundary(i)) {
            let theirs = doc.text_pos_at(offset);
            assert_eq!(lines.pos(offset), pos(theirs.row, theirs.col), "offset {offset}");
        }
    }

    proptest::proptest! {
        #[test]
        fn positions_are_unchanged_on_any_text(text in "(\\PC|\r|\n|\r\n){0,300}") {
            let lines = LineIndex::new(&text);
            for offset in 0..=text.len() {
                proptest::prop_assert_eq!(lines.pos(offset), rescanned(&text, offset));
            }
        }
    }

    const PD: &str =
        r#"<protection_domain name="a"><program_image path="a.elf"/></protection_domain>"#;

    #[test]
    fn a_namespace_is_reported_where_it_begins_not_on_every_child() {
        let xml = r#"<x:system xmlns:x="urn:s">
  <x:protection_domain name="a"><x:program_image path="a.elf"/></x:protection_domain>
</x:system>"#;
        let errors = read("f.xml", xml).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.line, e.col, e.message.as_str())).collect();
        assert_eq!(
            found,
            [(
                1,
                1,
                "element 'x:system' is in the XML namespace 'urn:s': a system description uses \
                 no namespaces; write <system> without a prefix or xmlns"
            )]
        );
    }

    #[test]
    fn a_namespace_declared_but_not_used_is_harmless() {
        let sd = read("f.xml", &format!("<system xmlns:x=\"urn:s\">{PD}</system>")).unwrap();
        assert_eq!(sd.protection_domains[0].name, "a");
    }

    #[test]
    fn an_element_leaving_the_root_namespace_is_not_reported() {
        // Only entering a namespace is an error: the root is reported,
        // a child back in no namespace is not.
        let xml = format!("<x:system xmlns:x=\"urn:s\">{PD}</x:system>");
        assert_eq!(read("f.xml", &xml).unwrap_err().len(), 1);
    }

    #[test]
    fn truncated_file_points_at_the_element_it_ends_in() {
        let errors = read("f.xml", "<system>\n  <protection_domain name=").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].message, "malformed XML: the file ends inside <protection_domain>, which opens here: finish it, and close it");
        assert_eq!(errors[0].pos(), pos(2, 3));
        // With no element open, the end itself.
        let errors = read("f.xml", "<!-- a comment never ended").unwrap_err();
        assert!(errors[0].message.starts_with("malformed XML: "), "{}", errors[0].message);
    }

    #[test]
    fn syntax_error_message_has_no_position_inside() {
        let errors = read("f.xml", "<system>\n</sys>").unwrap_err();
        assert_eq!(
            errors[0].message,
            "malformed XML: </sys> does not match the open <system>: close <system> first \
             (</system>, or end it with '/>')"
        );
        assert_eq!(errors[0].pos(), pos(2, 1));
    }

    #[test]
    fn a_misspelt_attribute_is_named_with_the_one_it_likely_means() {
        let xml = "<system>\n<disk name=\"d\" virtio_slot=\"31\">\n<filter name=\"f\" program=\"p\" dta=\"none\" \
                   Budget=\"5\" colour=\"red\" />\n</disk>\n</system>";
        let errors = read("f.xml", xml).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            found,
            [
                "the system has no protection domain: declare at least one <protection_domain>",
                "missing required attribute 'data' on element 'filter'",
                "unknown attribute 'dta' on element 'filter': did you mean 'data'?",
                "unknown attribute 'Budget' on element 'filter': did you mean 'budget'?",
                "unknown attribute 'colour' on element 'filter'",
            ]
        );
        assert_eq!((closest("prgram", &["program", "priority"]), closest("pd", &["pp", "id"])), (Some("program"), None));
        assert_eq!(closest("xyz", &["name"]), None);
        assert_eq!(choices("disk1", ["disk0", "disk0"].into_iter()), " (declared: disk0; 'disk0' is declared twice)");
        assert_eq!(choices("dsk2", ["disk2", "disk0"].into_iter()), ": did you mean 'disk2'?");
    }

    #[test]
    fn a_file_that_ends_inside_an_element_names_it_where_it_opens() {
        let xml = "<system>\n  <!-- <channel> -->\n  <protection_domain name=\"a>b\" priority=\"1\">\n    <program_image path=\"x\" />\n";
        let errors = read("f.xml", xml).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].message,
            "malformed XML: <protection_domain> is never closed (the file ends first): close it with </protection_domain>, or end it with '/>'"
        );
        assert_eq!(errors[0].pos(), pos(3, 3));
        assert_eq!(innermost_open("<a><b></b><c x='>'>"), Some(("c", 10)));
        assert_eq!(innermost_open("<a/>"), None);
        assert_eq!(innermost_open("<a>\n  <b x=\"1\""), Some(("b", 6)), "the file ends inside a start tag");
        assert_eq!(innermost_open("<a>\n  </b"), Some(("a", 0)));
    }

    #[test]
    fn a_filter_name_longer_than_its_records_hold_is_refused() {
        let name = "f".repeat(MAX_FILTER_NAME + 1);
        let xml = format!("<system>\n<disk name=\"d\" virtio_slot=\"31\">\n<filter name=\"{name}\" program=\"p\" data=\"none\" />\n</disk>\n</system>");
        let errors = read("f.xml", &xml).unwrap_err();
        let bad: Vec<_> = errors.iter().filter(|e| e.message.contains("filter name")).collect();
        assert_eq!(bad.len(), 1, "{errors:?}");
        assert!(bad[0].message.contains("a filter name of 1 to 31 bytes"), "{}", bad[0].message);
        assert_eq!(bad[0].pos(), pos(3, 9));
        let ok = xml.replace(&name, &name[..MAX_FILTER_NAME]);
        assert!(read("f.xml", &ok).unwrap_err().iter().all(|e| !e.message.contains("filter name")));
    }

    #[test]
    fn a_line_break_the_syntax_error_quotes_keeps_it_one_line() {
        let errors = read("f.xml", "<system>\n<disk/\n></system>").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].to_string(), "error: malformed XML: expected '>' not '\\n' at f.xml:2:7");
    }

    #[test]
    fn dtd_is_refused() {
        let errors = read("f.xml", "<!DOCTYPE system []><system/>").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("DTD"), "{}", errors[0].message);
    }

    #[test]
    fn omitted_attributes_take_the_microkit_defaults() {
        let xml = r#"<system>
            <memory_region name="m" size="0x1000"/>
            <protection_domain name="a"><program_image path="a.elf"/>
                <map mr="m" vaddr="0x100000"/><irq irq="33" id="1"/></protection_domain>
            <protection_domain name="b"><program_image path="b.elf"/></protection_domain>
            <channel><end pd="a" id="0"/><end pd="b" id="0"/></channel>
        </system>"#;
        let sd = read("f.xml", xml).unwrap();
        let a = &sd.protection_domains[0];
        assert_eq!(a.priority, 0);
        assert_eq!((a.budget, a.period), (1000, 1000));
        assert_eq!(a.stack_size, layout::DEFAULT_STACK_SIZE);
        assert!(!a.passive && !a.can_power_off);
        assert_eq!((a.parent, a.child_id), (None, None));
        let map = &a.maps[0];
        assert_eq!((map.perms, map.cached, &map.setvar_vaddr), (Perms::READ_WRITE, true, &None));
        assert_eq!(a.irqs[0].trigger, Trigger::Level);
        assert_eq!(sd.memory_regions[0].page_size, 0x1000);
        assert_eq!(sd.memory_regions[0].phys_addr, None);
        let end = &sd.channels[0].ends[0];
        assert!(!end.pp && end.notify);
    }

    #[test]
    fn period_defaults_to_the_budget() {
        let xml = r#"<system><protection_domain name="a" budget="250">
            <program_image path="a.elf"/></protection_domain></system>"#;
        let pd = &read("f.xml", xml).unwrap().protection_domains[0];
        assert_eq!((pd.budget, pd.period), (250, 250));
    }

    #[test]
    fn every_reading_error_is_reported_in_source_order() {
        let xml = r#"<system>
<protection_domain name="a" priority="high" colour="red">
<program_image/>
<irq irq="33" id="99"/>
</protection_domain>
<channel><end pd="nobody" id="0"/><end pd="a" id="1"/></channel>
</system>"#;
        let errors = read("f.xml", xml).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.line, e.col, e.message.as_str())).collect();
        assert_eq!(
            found,
            [
                (2, 29, "invalid value 'high' for attribute 'priority' on element 'protection_domain': \
                         expected a priority from 0 to 254"),
                (2, 45, "unknown attribute 'colour' on element 'protection_domain'"),
                (3, 1, "missing required attribute 'path' on element 'program_image'"),
                (4, 15, "invalid value '99' for attribute 'id' on element 'irq': \
                         expected a channel id from 0 to 61"),
                (6, 15, "channel end names unknown protection domain 'nobody' (declared: a)"),
            ]
        );
    }

    #[test]
    fn validation_waits_until_reading_succeeds() {
        // A duplicate name (a validation rule) next to a bad value: only the
        // reading error is reported.
        let xml = r#"<system>
<protection_domain name="a" passive="maybe"><program_image path="a.elf"/></protection_domain>
<protection_domain name="a"><program_image path="a.elf"/></protection_domain>
</system>"#;
        let errors = crate::parse("f.xml", xml).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("'passive'"));
    }

    #[test]
    fn values_with_underscores_and_hex_are_read() {
        let xml = r#"<system><memory_region name="m" size="0x20_0000" page_size="0x20_0000" phys_addr="1_073_741_824"/>
            <protection_domain name="a" stack_size="0x1_0000"><program_image path="a.elf"/></protection_domain></system>"#;
        let sd = read("f.xml", xml).unwrap();
        assert_eq!(sd.memory_regions[0].size, 0x20_0000);
        assert_eq!(sd.memory_regions[0].phys_addr, Some(0x4000_0000));
        assert_eq!(sd.protection_domains[0].stack_size, 0x1_0000);
    }

    #[test]
    fn unknown_element_inside_a_leaf_element_is_reported() {
        let xml = r#"<system><protection_domain name="a"><program_image path="a.elf"><x/></program_image>
            </protection_domain></system>"#;
        let errors = read("f.xml", xml).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].message, "unknown element 'x' in 'program_image'");
    }

    #[test]
    fn comments_and_whitespace_are_ignored() {
        let xml = "<!-- c --><system> <!-- c -->\n<protection_domain name='a'><!-- c -->\
                   <program_image path='a.elf'/></protection_domain></system>";
        let sd = read("f.xml", xml).unwrap();
        assert_eq!(sd.protection_domains.len(), 1);
    }

    const TWO_PDS: &str = r#"<memory_region name="m" size="0x1000" phys_addr="0x900_0000"/>
        <protection_domain name="a"><program_image path="a.elf"/></protection_domain>
        <protection_domain name="b"><program_image path="b.elf"/></protection_domain>"#;

    fn system(body: &str) -> String {
        format!("<system>{TWO_PDS}\n{body}</system>")
    }

    fn messages(xml: &str) -> Vec<String> {
        read("f.xml", xml).err().unwrap_or_default().into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn device_owners_are_separated_by_spaces_or_commas() {
        let xml = system(
            r#"<device name="d" owner=" b,a
            "><region mr="m"/><interrupt irq="40"/></device>"#,
        );
        let sd = read("f.xml", &xml).unwrap();
        let dev = &sd.devices[0];
        assert_eq!(dev.owners, [1, 0]);
        assert_eq!(dev.regions[0].mr, "m");
        assert_eq!(dev.irqs[0].irq, 40);
    }

    #[test]
    fn devices_and_policies_may_name_pds_declared_after_them() {
        let xml = r#"<system>
            <device name="d" owner="late"><interrupt irq="40"/></device>
            <policy name="p" kind="no-flow"><from pd="late"/><to device="d"/></policy>
            <protection_domain name="late"><program_image path="l.elf"/></protection_domain>
        </system>"#;
        let sd = read("f.xml", xml).unwrap();
        assert_eq!(sd.devices[0].owners, [0]);
        let PolicyRule::NoFlow { from, to } = &sd.policies[0].rule else { panic!("kind") };
        assert_eq!(from[0].entity, Entity::Pd(0));
        assert_eq!(to[0].entity, Entity::Device("d".into()));
    }

    #[test]
    fn mediated_policy_takes_a_list_of_mediators() {
        let xml = system(
            r#"<memory_region name="r" size="0x1000"/>
            <protection_domain name="c"><program_image path="c.elf"/></protection_domain>
            <policy name="p" kind="mediated" via="b, c"><from pd="a"/><to region="r"/></policy>"#,
        );
        let sd = read("f.xml", &xml).unwrap();
        let PolicyRule::Mediated { via, to, .. } = &sd.policies[0].rule else { panic!("kind") };
        assert_eq!(via, &[1, 2]);
        assert_eq!(to[0].entity, Entity::Region("r".into()));
    }

    #[test]
    fn isolated_policy_may_allow_nobody() {
        let sd = read("f.xml", &system(r#"<policy name="p" kind="isolated" pd="b"/>"#)).unwrap();
        assert_eq!(sd.policies[0].rule, PolicyRule::Isolated { pd: 1, allow: vec![] });
    }

    #[test]
    fn policy_with_an_unknown_kind_reports_only_the_kind() {
        let xml =
            system(r#"<policy name="p" kind="maybe" via="a"><allow pd="b"/><to pd="a"/></policy>"#);
        assert_eq!(
            messages(&xml),
            ["invalid value 'maybe' for attribute 'kind' on element 'policy': expected \
              'no-flow', 'mediated' or 'isolated'"]
        );
    }

    #[test]
    fn invalid_endpoint_is_not_also_reported_as_missing() {
        let xml = system(
            r#"<policy name="p" kind="no-flow"><from pd="a" device="d"/><to pd="b"/></policy>"#,
        );
        let errors = messages(&xml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("element 'from' needs exactly one"), "{}", errors[0]);
    }

    #[test]
    fn a_long_invalid_value_is_shown_by_its_start() {
        let long = "x".repeat(9000);
        let xml = format!(r#"<system><disk name="d" virtio_slot="31"><filter name="f" program="p" data="none"><param key="k" value="{long}"/></filter></disk></system>"#);
        let errors = messages(&xml);
        assert_eq!(errors[1..], [format!("invalid value '{}...' (9000 bytes) for attribute 'value' on element 'param': expected a value of at most 511 bytes", "x".repeat(160))]);
    }

    #[test]
    fn device_with_only_invalid_children_is_not_also_reported_as_empty() {
        let xml = system(r#"<device name="d" owner="a"><region/></device>"#);
        assert_eq!(messages(&xml), ["missing required attribute 'mr' on element 'region'"]);
    }

    #[test]
    fn a_disk_with_a_bad_slot_is_not_also_unknown_to_its_clients() {
        let xml = r#"<system><disk name="d" virtio_slot="99"/>
            <protection_domain name="a"><program_image path="a.elf"/><block_client disk="d"/></protection_domain></system>"#;
        assert_eq!(
            messages(xml),
            ["invalid value '99' for attribute 'virtio_slot' on element 'disk': expected a \
              virtio-mmio slot from 0 to 31"]
        );
    }

    #[test]
    fn a_bad_block_client_value_is_reported_once() {
        let xml = r#"<system><disk name="d" virtio_slot="1"/>
            <protection_domain name="a"><program_image path="a.elf"/>
            <block_client disk="d" partition="0" direct="true"/></protection_domain></system>"#;
        assert_eq!(
            messages(xml),
            ["invalid value '0' for attribute 'partition' on element 'block_client': expected an \
              MBR primary partition from 1 to 4"]
        );
    }

    /// A disk with one filter and a client, so that there is a filter
    /// server; `filter` is the filter's attributes and children.
    fn filtered(filter: &str, rest: &str) -> String {
        format!(
            r#"<system><disk name="d" virtio_slot="1"><filter {filter}</disk>
            <protection_domain name="a"><program_image path="a.elf"/><block_client disk="d"/></protection_domain>
            {rest}</system>"#
        )
    }

    #[test]
    fn a_filter_with_a_bad_value_is_still_known_to_policies() {
        let xml = filtered(
            r#"name="f" program="f.elf" data="all"/>"#,
            r#"<policy name="p" kind="mediated" via="f"><from pd="a"/><to region="blk_d_dma"/></policy>"#,
        );
        assert_eq!(
            messages(&xml),
            ["invalid value 'all' for attribute 'data' on element 'filter': expected 'none', 'read' \
              or 'read-write'"]
        );
    }

    #[test]
    fn eight_params_are_accepted_and_a_ninth_and_a_repeated_key_are_reported_each() {
        let params = |n: usize| {
            (0..n).map(|i| format!(r#"<param key="k{i}" value="{i}"/>"#)).collect::<String>()
        };
        let xml = filtered(
            &format!(r#"name="f" program="f.elf" data="none">{}</filter>"#, params(8)),
            "",
        );
        let sd = read("f.xml", &xml).unwrap();
        assert_eq!(sd.disks[0].filters[0].params.len(), MAX_PARAMS);
        let xml = filtered(
            &format!(
                r#"name="f" program="f.elf" data="none">{}<param key="k0" value="x"/></filter>"#,
                params(9)
            ),
            "",
        );
        let errors = messages(&xml);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("filter 'f' has more than 8 params"), "{}", errors[0]);
        assert!(errors[1].starts_with("filter 'f' sets param 'k0' twice"), "{}", errors[1]);
    }

    #[test]
    fn filter_priorities_from_241_to_249_are_accepted() {
        for priority in [241, 245, 249] {
            let xml = filtered(
                &format!(r#"name="f" program="f.elf" data="none" priority="{priority}"/>"#),
                "",
            );
            assert_eq!(read("f.xml", &xml).unwrap().disks[0].filters[0].priority, Some(priority));
        }
        let xml = filtered(r#"name="f" program="f.elf" data="none"/>"#, "");
        let filter = &read("f.xml", &xml).unwrap().disks[0].filters[0];
        assert_eq!((filter.priority, filter.effective_priority()), (None, 245));
        assert_eq!((filter.budget, filter.on_fault), (None, OnFault::Fail));
    }

    #[test]
    fn a_misplaced_filter_or_param_is_reported_wherever_it_is() {
        let xml = system(
            r#"<channel><end pd="a" id="0"/><end pd="b" id="0"/><filter/></channel>
            <device name="d" owner="a"><interrupt irq="40"><param/></interrupt></device>"#,
        );
        let errors = messages(&xml);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("<filter> belongs inside a <disk>: move it from 'channel'"));
        assert!(
            errors[1].starts_with("<param> belongs inside a <filter>: move it from 'interrupt'")
        );
    }

    #[test]
    fn a_link_may_name_a_disk_declared_after_its_filter() {
        let xml = filtered(
            r#"name="f" program="f.elf" data="read"><link disk="late"/></filter>"#,
            r#"<disk name="late" virtio_slot="2"/>"#,
        );
        let sd = read("f.xml", &xml).unwrap();
        let links = &sd.disks[0].filters[0].links;
        assert_eq!(links.iter().map(|l| (l.disk, l.pos.line)).collect::<Vec<_>>(), [(1, 1)]);
    }

    #[test]
    fn a_link_of_a_filter_whose_name_is_invalid_is_not_looked_up() {
        let filter = r#"name="" program="f.elf" data="read"><link disk="nowhere"/></filter>"#;
        let xml = filtered(filter, "");
        let errors = messages(&xml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("invalid value '' for attribute 'name'"), "{}", errors[0]);
    }

    #[test]
    fn a_chain_without_a_via_is_a_chain_when_another_links_to_it() {
        let chains = |links: &str| {
            system(&format!(
                r#"<protection_domain name="s"><program_image path="s.elf"/>
                    <chain name="top">{links}<stage/><via pd="a" channel="4"/><stage/></chain>
                    <chain name="below"><stage/></chain>
                </protection_domain>
                <channel><end pd="s" id="4" pp="true"/><end pd="a" id="0"/></channel>"#
            ))
        };
        let sd = read("f.xml", &chains(r#"<link via="a" chain="below"/>"#)).unwrap();
        let (_, s) = sd.pd("s").unwrap();
        let links: Vec<_> = s.chains[0].links.iter().map(|l| (l.via, l.chain.as_str())).collect();
        assert_eq!(links, [(0, "below")]);
        assert_eq!((s.chains[1].stages.len(), s.chains[1].vias.len()), (1, 0));
        let errors = messages(&chains(""));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let expected = "chain 'below' of protection domain 's' has no <via>";
        assert!(errors[0].starts_with(expected), "{}", errors[0]);
    }

    #[test]
    fn an_invalid_pp_value_does_not_also_make_a_lend_unplaceable() {
        let xml = system(
            r#"<channel><end pd="a" id="0" pp="yes"/><end pd="b" id="0"/><lend mr="m" perms="r"/></channel>"#,
        );
        assert_eq!(
            messages(&xml),
            ["invalid value 'yes' for attribute 'pp' on element 'end': expected 'true' or 'false'"]
        );
    }

    #[test]
    fn sixty_four_lends_are_accepted() {
        let regions: String = (0..MAX_LENDS)
            .map(|i| format!(r#"<memory_region name="r{i}" size="0x1000"/>"#))
            .collect();
        let lends: String =
            (0..MAX_LENDS).map(|i| format!(r#"<lend mr="r{i}" perms="rw"/>"#)).collect();
        let xml = system(&format!(
            r#"{regions}<channel><lend mr="m" perms="r"/><end pd="a" id="0" pp="true"/>{lends}<end pd="b" id="0"/></channel>"#
        ));
        let errors = messages(&xml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("more than 64 lends"), "{}", errors[0]);
        let xml = xml.replace(r#"<lend mr="m" perms="r"/>"#, "");
        let sd = read("f.xml", &xml).unwrap();
        assert_eq!(sd.channels[0].lends.len(), MAX_LENDS);
        assert_eq!(sd.channels[0].lends[0].perms, Perms::READ_WRITE);
    }

    #[test]
    fn a_chain_with_a_bad_via_reports_the_via_alone() {
        let xml = system(
            r#"<protection_domain name="s"><program_image path="s.elf"/>
                <chain name="c"><stage/><via pd="a" channel="99"/><stage/></chain>
            </protection_domain>"#,
        );
        assert_eq!(
            messages(&xml),
            ["invalid value '99' for attribute 'channel' on element 'via': expected a channel id \
              from 0 to 61"]
        );
    }

    #[test]
    fn a_channel_with_an_unknown_far_end_still_counts_for_a_chain() {
        // Reported once, as the channel's problem, not again as a stage's.
        let xml = system(
            r#"<protection_domain name="s"><program_image path="s.elf"/>
                <chain name="c"><stage><channel id="3"/></stage><via pd="a" channel="4"/><stage/></chain>
            </protection_domain>
            <channel><end pd="s" id="3"/><end pd="x" id="0"/></channel>
            <channel><end pd="s" id="4" pp="true"/><end pd="a" id="0"/></channel>"#,
        );
        assert_eq!(messages(&xml), ["channel end names unknown protection domain 'x' (declared: a, b, s)"]);
    }

    #[test]
    fn reading_accepts_what_only_validation_refuses() {
        // Writable and executable, a PPC downhill and a region claimed twice:
        // all validation rules, so reading accepts them.
        let xml = system(
            r#"<memory_region name="x" size="0x1000"/>
            <protection_domain name="c" priority="9"><program_image path="c.elf"/>
                <map mr="x" vaddr="0x100000" perms="rwx"/></protection_domain>
            <channel><end pd="c" id="0" pp="true"/><end pd="a" id="0"/></channel>
            <device name="d1" owner="a"><region mr="m"/></device>
            <device name="d2" owner="b"><region mr="m"/></device>"#,
        );
        let sd = read("f.xml", &xml).unwrap();
        assert!(sd.protection_domains[2].maps[0].perms.execute);
        let errors = crate::parse("f.xml", &xml).unwrap_err();
        let errors: Vec<_> = errors.iter().map(|e| e.message.split(':').next().unwrap()).collect();
        assert_eq!(
            errors,
            [
                "map of 'x' in protection domain 'c' has perms 'rwx'",
                "PPC from 'c' (priority 9) to 'a' (priority 0)",
                "memory region 'm' is claimed twice",
            ]
        );
    }
}
