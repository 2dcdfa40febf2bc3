//! Filters that write whatever they like into their verdict words (words
//! 5-7 of each entry: any kind, status, count, block, offset, link, page,
//! `NO_POST` or not), reply malformed, or stop, on a chain of three with
//! data rights and bounce buffers over a disk linked to a second one. The
//! model test (`model.rs`) sends verdicts a filter library can encode;
//! these are raw words. Checked: nothing panics; every client request is
//! answered exactly once, with its id; nothing reaches a driver past its
//! disk's end; what reaches a driver for a client's request moves data
//! only in that client's buffer or a filter's bounce buffer; every lend
//! lies inside the region it names, with no more than the filter's rights.

use super::*;
use std::collections::BTreeMap;

/// xorshift64*, seeded per case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A word a hostile filter might pick: small, near a boundary, or any.
fn word(rng: &mut Rng) -> u64 {
    let r = rng.next();
    match r % 6 {
        0 => r >> 60,
        1 => (r >> 8) % (DISK_BLOCKS + 8),
        2 => u64::MAX - (r >> 60),
        3 => (r >> 8) % 32 * 4096,
        _ => rng.next(),
    }
}

struct Hostile {
    pages: StdVec<Shared<'static>>,
    rng: Rng,
    /// Rights of each filter, and the size of every region a lend names
    /// (clients' data regions first, then bounce buffers).
    rights: StdVec<u8>,
    clients: usize,
    /// Lends that fell outside their region or above the filter's rights.
    bad_lends: StdVec<String>,
}

impl Upcalls for Hostile {
    fn call(&mut self, f: usize, n: usize, lends: &[abi::Lend]) -> Result<(), CallError> {
        for l in lends {
            let size = if (l.lend as usize) < self.clients { CLIENT_DATA } else { BOUNCE_SIZE };
            if l.offset + u64::from(l.len) > size || l.rights & !self.rights[f] != 0 || l.len == 0 {
                self.bad_lends.push(format!("filter {f}: {l:?}"));
            }
        }
        match self.rng.next() % 32 {
            0 => return Err(CallError::BadReply),
            1 => return Err(CallError::Stopped),
            2 => return Err(CallError::Refused(3)),
            _ => {}
        }
        let page = filter::CallPage::new(self.pages[f]).unwrap();
        for i in 0..n {
            // Half plain continues, so that requests get deep; else a kind
            // the ABI knows (or not, or words all at random) with fields
            // small, near a boundary or anything.
            let r = self.rng.next();
            let mut w6 = match r % 16 {
                0..8 => filter::CONTINUE_WORD,
                8..15 => {
                    let small = |rng: &mut Rng, max: u64| if rng.next() % 4 == 0 { word(rng) } else { rng.next() % max };
                    let kind = small(&mut self.rng, 9) & 0xff;
                    let status = small(&mut self.rng, 8) & 0xff;
                    let b16 = small(&mut self.rng, 20) & 0xffff;
                    let count = small(&mut self.rng, 6) & 0xffff_ffff;
                    kind | status << 8 | b16 << 16 | count << 32
                }
                _ => word(&mut self.rng),
            };
            if self.rng.next() % 4 == 0 {
                w6 |= filter::NO_POST;
            }
            let (w5, w7) = (word(&mut self.rng), word(&mut self.rng));
            if self.rng.next() % 3 != 0 {
                page.set_word(i, 5, w5);
            }
            page.set_word(i, 6, w6);
            page.set_word(i, 7, w7);
        }
        Ok(())
    }
}

#[test]
fn raw_verdict_words_never_harm_the_server_or_another_clients_data() {
    for case in 0..64u64 {
        let spec = Spec { hooks: 3, ops: 0xff, rights: abi::GRANT_READ | abi::GRANT_WRITE, bounce: true, pre_ops: 0, max_blocks: 0 };
        let chain = [spec, Spec { rights: abi::GRANT_READ, bounce: false, ..spec }, spec];
        let linked = LinkedDisk { chain: &[Spec::PASS], blocks: 64, links: &[true, false, true] };
        let mut h = chain_harness_linked(&[8, 8], &[0, 1], &chain, Some(linked), 16, always(Verdict::Continue), None);
        let mut up = Hostile {
            pages: h.up.pages.clone(),
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1) * 0x1_0000_0001),
            rights: StdVec::from([spec.rights, abi::GRANT_READ, spec.rights, 0]),
            clients: 2,
            bad_lends: StdVec::new(),
        };
        // Request id -> (client, answers); client 0's ids start at 1, client
        // 1's at 1 << 20 (a redirect goes down with id 0).
        let mut sent: BTreeMap<u32, (usize, u32)> = BTreeMap::new();
        let mut next = [1u32, 1 << 20];
        let mut faults = StdVec::new();
        for round in 0..200 {
            for c in 0..2 {
                if round < 150 && up.rng.next() % 2 == 0 {
                    let (op, count) = match up.rng.next() % 3 {
                        0 => (Op::Read, 1 + (up.rng.next() % 4) as u32),
                        1 => (Op::Write, 1 + (up.rng.next() % 4) as u32),
                        _ => (Op::Flush, 0),
                    };
                    let block = up.rng.next() % (DISK_BLOCKS - 4);
                    let offset = (up.rng.next() % 12) * 4096;
                    let id = next[c];
                    if h.clients[c].requests.try_push(Request::new(id, op, block, count, offset)).is_ok() {
                        next[c] += 1;
                        sent.insert(id, (c, 0));
                    }
                }
            }
            let events = &mut h.events;
            h.server.run_with(&mut |e| events.push(e), &mut up);
            for e in h.events.drain(..) {
                if let Event::FilterFailed { filter, error: CallError::Stopped, .. } = e {
                    faults.push(filter);
                }
            }
            for f in faults.drain(..) {
                let child = h.server.filters[f].config.child as usize;
                if let Some(f) = h.server.filter_faulted(child, &mut |_| {}) {
                    h.server.filter_restarted(f);
                }
            }
            // Both drivers answer what they got, within their disks.
            for (d, blocks) in [(0, DISK_BLOCKS), (1, 64)] {
                let driver = if d == 0 { &mut h.driver } else { h.linked.as_mut().unwrap() };
                let reqs: StdVec<Request> = core::iter::from_fn(|| driver.requests.try_pop().unwrap()).collect();
                for r in &reqs {
                    let op = r.op().unwrap();
                    if op.moves_data() {
                        assert!(r.block + u64::from(r.count) <= blocks, "case {case}: disk {d} got {r:?}");
                        let len = u64::from(r.count) * 4096;
                        let owner = sent.get(&r.id).map(|&(c, _)| c);
                        let in_client = |c: usize| r.data_offset >= client_paddr(c) && r.data_offset + len <= client_paddr(c) + CLIENT_DATA;
                        let in_bounce = (0..4).any(|f| r.data_offset >= bounce_paddr(f) && r.data_offset + len <= bounce_paddr(f) + BOUNCE_SIZE);
                        let ok = match owner {
                            // (Another disk's id space or a redirect's: id 0.)
                            Some(c) if r.id != 0 => in_client(c) || in_bounce,
                            _ => in_client(0) || in_client(1) || in_bounce,
                        };
                        assert!(ok, "case {case}: disk {d} got {r:?} (client {owner:?})");
                    }
                    let status = if up.rng.next() % 8 == 0 { Status::IoError } else { Status::Ok };
                    let count = if status == Status::Ok && op.moves_data() { r.count } else { 0 };
                    driver.responses.try_push(Response::new(r.id, status, count).with_tag(r.tag)).unwrap();
                }
            }
            for c in 0..2 {
                for a in h.responses(c) {
                    let entry = sent.get_mut(&a.id).unwrap_or_else(|| panic!("case {case}: client {c} got an answer to no request of its own: {a:?}"));
                    assert_eq!(entry.0, c, "case {case}: {a:?} went to the wrong client");
                    entry.1 += 1;
                }
            }
        }
        assert_eq!(up.bad_lends, StdVec::<String>::new(), "case {case}");
        let unanswered: StdVec<_> = sent.iter().filter(|(_, &(_, n))| n != 1).collect();
        assert!(unanswered.is_empty(), "case {case}: answered other than once: {unanswered:?}");
        assert!(sent.len() > 100, "case {case}: {} requests", sent.len());
    }
}
