//! Comparing the walked tables with the declaration: every mapped byte of
//! a PD's space must be explained by exactly one declared mapping with
//! exactly the declared rights, every declared byte must be mapped, and
//! the kernel's half must be out of EL0's reach.

use crate::expect::Expected;
use crate::finding::{Finding, Space};
use crate::walk::{Attrs, Leaf};
use bootspec::platform::{RAM_BASE, RAM_SIZE};
use std::ops::Range;

/// A stretch of one PD's space, translated by one run of descriptors with
/// the same attributes to contiguous frames, and explained by one declared
/// mapping (`expected`) or by none.
#[derive(Clone, Debug)]
pub(crate) struct Piece {
    pub vrange: Range<u64>,
    pub paddr: u64,
    pub attrs: Attrs,
    pub expected: Option<usize>,
}

impl Piece {
    pub(crate) fn prange(&self) -> Range<u64> {
        self.paddr..self.paddr + (self.vrange.end - self.vrange.start)
    }
}

/// Cut the leaves at the boundaries of the declared mappings (sorted, not
/// overlapping) and join neighbours that continue each other.
pub(crate) fn pieces(leaves: &[Leaf], expected: &[Expected]) -> Vec<Piece> {
    let mut leaves = leaves.to_vec();
    leaves.sort_by_key(|l| l.vaddr);
    let mut out: Vec<Piece> = Vec::new();
    for leaf in &leaves {
        // The last page of the upper half ends at 2^64: stop one byte short.
        let end = leaf.vaddr.saturating_add(leaf.size);
        let mut at = leaf.vaddr;
        let mut next = expected.partition_point(|e| e.vrange.end <= at);
        while at < end {
            let (stop, which) = match expected.get(next) {
                Some(e) if e.vrange.start <= at => (e.vrange.end.min(end), Some(next)),
                Some(e) => (e.vrange.start.min(end), None),
                None => (end, None),
            };
            let piece = Piece { vrange: at..stop, paddr: leaf.paddr + (at - leaf.vaddr), attrs: leaf.attrs, expected: which };
            push_joined(&mut out, piece);
            if which.is_some() && stop == expected[next].vrange.end {
                next += 1;
            }
            at = stop;
        }
    }
    out
}

fn push_joined(out: &mut Vec<Piece>, piece: Piece) {
    if let Some(last) = out.last_mut() {
        let continues = last.vrange.end == piece.vrange.start
            && last.prange().end == piece.paddr
            && last.attrs == piece.attrs
            && last.expected == piece.expected;
        if continues {
            last.vrange.end = piece.vrange.end;
            return;
        }
    }
    out.push(piece);
}

fn in_ram(r: &Range<u64>) -> bool {
    RAM_BASE <= r.start && r.end <= RAM_BASE + RAM_SIZE
}

/// Check one PD's pieces against its declared mappings.
pub(crate) fn check_pd(pd: &str, expected: &[Expected], pieces: &[Piece], findings: &mut Vec<Finding>) {
    let mut covered: Vec<Vec<Range<u64>>> = vec![Vec::new(); expected.len()];
    for p in pieces {
        let attrs = p.attrs;
        match p.expected {
            None => findings.push(Finding::ExtraMapping {
                pd: pd.into(),
                vaddr: p.vrange.clone(),
                paddr: p.paddr,
                grants: attrs.grant().to_string(),
            }),
            Some(i) => {
                let e = &expected[i];
                covered[i].push(p.vrange.clone());
                if attrs.grant() != e.grant {
                    findings.push(Finding::Rights {
                        pd: pd.into(),
                        vaddr: p.vrange.clone(),
                        what: e.what.clone(),
                        found: attrs.grant().to_string(),
                        declared: e.grant.to_string(),
                    });
                }
                match e.fixed {
                    Some((base, why)) => {
                        let want = base.wrapping_add(p.vrange.start - e.vrange.start);
                        if p.paddr != want {
                            findings.push(Finding::WrongFrame {
                                pd: pd.into(),
                                vaddr: p.vrange.clone(),
                                what: e.what.clone(),
                                found: p.paddr,
                                expected: want,
                                why: why.into(),
                            });
                        }
                    }
                    None if !in_ram(&p.prange()) => findings.push(Finding::OutsideRam {
                        pd: pd.into(),
                        vaddr: p.vrange.clone(),
                        what: e.what.clone(),
                        paddr: p.paddr,
                    }),
                    None => {}
                }
            }
        }
        if attrs.global() {
            findings.push(Finding::Global { pd: pd.into(), vaddr: p.vrange.clone() });
        }
        if attrs.el1().execute {
            findings.push(Finding::El1Executable { pd: pd.into(), vaddr: p.vrange.clone() });
        }
        if writable_and_executable(&attrs) {
            findings.push(Finding::WritableExecutable { space: Space::Pd(pd.into()), vaddr: p.vrange.clone() });
        }
    }
    for (e, covered) in expected.iter().zip(&covered) {
        for vaddr in gaps(&e.vrange, covered) {
            findings.push(Finding::MissingMapping { pd: pd.into(), vaddr, what: e.what.clone(), declared: e.grant.to_string() });
        }
    }
}

/// Writable by anyone and executable by anyone: EL1 can write what EL0
/// can, so the two ELs are not told apart.
fn writable_and_executable(attrs: &Attrs) -> bool {
    let (el0, el1) = (attrs.el0(), attrs.el1());
    (el0.write || el1.write) && (el0.execute || el1.execute)
}

/// Check a kernel-only tree: nothing reachable from EL0, nothing writable
/// and executable, and (with `kernel_code`, for the kernel's own half)
/// nothing executable at EL1 but the kernel's executable segments.
pub(crate) fn check_kernel(space: &Space, leaves: &[Leaf], kernel_code: Option<&[Range<u64>]>, findings: &mut Vec<Finding>) {
    let runs = pieces(leaves, &[]);
    for p in &runs {
        let el0 = p.attrs.el0();
        if el0.any() {
            findings.push(Finding::El0Accessible { space: space.clone(), vaddr: p.vrange.clone(), grants: el0.to_string() });
        }
        if writable_and_executable(&p.attrs) {
            findings.push(Finding::WritableExecutable { space: space.clone(), vaddr: p.vrange.clone() });
        }
        if let Some(code) = kernel_code {
            let frames = p.prange();
            if p.attrs.el1().execute && !code.iter().any(|c| c.start <= frames.start && frames.end <= c.end) {
                findings.push(Finding::KernelExecutesData { vaddr: p.vrange.clone(), paddr: p.paddr });
            }
        }
    }
}

/// The parts of `want` that none of `covered` (in address order) covers.
pub(crate) fn gaps(want: &Range<u64>, covered: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut gaps = Vec::new();
    let mut at = want.start;
    for r in covered.iter().chain(std::iter::once(&(want.end..want.end))) {
        if r.start > at {
            gaps.push(at..r.start);
        }
        at = at.max(r.end);
    }
    gaps
}
