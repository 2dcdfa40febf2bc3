//! The benchmark client: instructions per 4 KiB request, counted by the
//! PMU's retired-instruction counter over every PD and the kernel.
//!
//! Phases, each `REQUESTS` single-block requests after `WARMUP` unmeasured
//! ones, with a fixed number kept in flight (the queue depth): reads and
//! writes at depth 1, then reads and writes at depth 32. Each prints
//! `blk_<op>_qd<depth>_<path>: N`, where the path is `direct` or `server`,
//! or the label patched into `blk_bench_label` (NUL-padded, e.g.
//! `filter1` for a chain of one filter), and the client powers the machine
//! off at the end (the image must be built with `--pmu-user`).
//!
//! Two optional setvars (little-endian `u64`s): `blk_bench_first`, the
//! first block of the span the requests cycle through (0 by default: file
//! data on a content disk starts further in), and `blk_bench_reads`, not 0
//! to run the read phases only (a disk that refuses writes).

use crate::client::BlockClient;
use blk::{Op, Request, Status};
use microkit::{debug_println, pd_name, ChannelSet, Handler, Infallible};

/// Measured requests per phase.
pub const REQUESTS: u64 = 2048;
/// Unmeasured requests before each phase, so caches and rings are warm.
pub const WARMUP: u64 = 64;
/// Blocks the requests cycle through.
const SPAN: u64 = 1024;

microkit::var!(blk_bench_label: [u8; 32] = [0; 32]);
microkit::var!(blk_bench_first: u64 = 0);
microkit::var!(blk_bench_reads: u64 = 0);

const PHASES: [(Op, u32); 4] = [(Op::Read, 1), (Op::Write, 1), (Op::Read, 32), (Op::Write, 32)];

pub struct Bench {
    client: BlockClient,
    phase: usize,
    /// Requests issued and completed in this phase, warm-up included.
    issued: u64,
    completed: u64,
    start: u64,
    failed: bool,
    /// The disk is up and big enough.
    ready: bool,
    /// The statistics were asked for.
    reported: bool,
    /// The span's first block (`blk_bench_first`).
    first: u64,
}

impl Bench {
    pub fn new() -> Option<Bench> {
        let client = match BlockClient::from_config() {
            Ok(c) => c,
            Err(e) => {
                debug_println!("{}: {}", pd_name(), e);
                return None;
            }
        };
        let mut b = Bench { client, phase: 0, issued: 0, completed: 0, start: 0, failed: false, ready: false, reported: false, first: *blk_bench_first() };
        b.step();
        Some(b)
    }

    fn step(&mut self) {
        // (Two copies of the loop: the usual one, from block 0, stays
        // exactly as it was without the offset.)
        if self.first == 0 {
            self.run::<false>()
        } else {
            self.run::<true>()
        }
    }

    #[inline(always)]
    fn run<const OFFSET: bool>(&mut self) {
        if !self.ready {
            let Some(info) = self.client.info() else { return };
            let slots = (self.client.data.len() / blk::BLOCK_SIZE as usize) as u64;
            if info.capacity < self.first + SPAN || slots < 32 || self.client.capacity() < 32 {
                debug_println!("{}: needs {} blocks, a 128 KiB data region and a queue of 32", pd_name(), self.first + SPAN);
                return self.finish();
            }
            self.ready = true;
        }
        loop {
            let Some(&(op, depth)) = PHASES.get(self.phase) else { return self.report() };
            while let Some(r) = self.client.pop() {
                if r.status() != Ok(Status::Ok) {
                    debug_println!("{}: request {} failed: {}", pd_name(), r.id, r.status_text());
                    self.failed = true;
                    return self.finish();
                }
                self.completed += 1;
                if self.completed == WARMUP {
                    self.start = bench::instructions();
                }
            }
            let total = WARMUP + REQUESTS;
            if self.completed == total {
                let per = (bench::instructions() - self.start) / REQUESTS;
                let op = if op == Op::Read { "read" } else { "write" };
                let label = blk::config::name_str(blk_bench_label());
                let path = match (label, self.client.is_direct()) {
                    ("", true) => "direct",
                    ("", false) => "server",
                    (label, _) => label,
                };
                debug_println!("blk_{}_qd{}_{}: {}", op, depth, path, per);
                (self.phase, self.issued, self.completed) = (self.next_phase(), 0, 0);
                continue;
            }
            // The measured requests start only once the warm-up is done.
            let limit = if self.completed < WARMUP { WARMUP } else { total };
            while self.issued < limit && self.issued - self.completed < depth as u64 {
                let n = self.issued;
                let block = if OFFSET { self.first + n % SPAN } else { n % SPAN };
                let req = Request::new(n as u32, op, block, 1, (n % 32) * blk::BLOCK_SIZE as u64);
                if !self.client.push(req) {
                    break;
                }
                self.issued += 1;
            }
            self.client.kick();
            if self.client.wait() {
                return;
            }
        }
    }

    /// After the last phase: flush what it wrote (a filter that keeps
    /// metadata, such as `filter_integrity`, writes it then, so the next
    /// run finds the blocks as this one left them), and ask the filter
    /// server to print its statistics of this disk's chain (how the
    /// requests batched), then finish. (A driver answers the report
    /// `InvalidRequest`; that is fine.)
    #[cold]
    #[inline(never)]
    fn report(&mut self) {
        if !self.reported {
            self.reported = self.client.push(Request::ordering(u32::MAX - 1, Op::Flush)) && self.client.push(Request::ordering(u32::MAX, Op::Report));
            if !self.reported {
                return self.finish();
            }
        }
        while let Some(r) = self.client.pop() {
            if r.id == u32::MAX {
                return self.finish();
            }
        }
        self.client.kick();
        if !self.client.wait() {
            self.report();
        }
    }

    /// The phase after this one (skipping writes with `blk_bench_reads`).
    #[cold]
    fn next_phase(&self) -> usize {
        let mut next = self.phase + 1;
        while *blk_bench_reads() != 0 && PHASES.get(next).is_some_and(|&(op, _)| op == Op::Write) {
            next += 1;
        }
        next
    }

    fn finish(&mut self) {
        if self.failed {
            debug_println!("{}: benchmark failed", pd_name());
        }
        let _ = microkit::power_off(self.failed as u64);
    }
}

impl Handler for Bench {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
        self.step();
        Ok(())
    }
}
