//! The read cache's benchmark client (`bench/blk-cache.xml`, `make
//! bench`): instructions per 4 KiB read that hits. `blk_bench` cannot
//! measure that: its reads run once over 1,024 blocks from a cold cache,
//! so most of them miss. This client first reads its working set once
//! (unmeasured: it fills the cache), then measures reads of it at depth 1
//! and 32, each `REQUESTS` after `WARMUP` unmeasured ones, and prints
//! `blk_read_qd1_cache_hit: N` and `blk_read_qd32_cache_hit: N`. At the
//! end the server prints the chain's statistics (every measured read a
//! `complete`), and the client powers the machine off (the image must be
//! built with `--pmu-user`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use blk::{Op, Request, Status, BLOCK_SIZE};
    use blk_clients::client::BlockClient;
    use microkit::{debug_println, pd_name, protection_domain, ChannelSet, Handler, Infallible};

    /// The working set, in blocks: well inside the cache it measures.
    const SPAN: u64 = 256;
    const WARMUP: u64 = 64;
    const REQUESTS: u64 = 2048;
    /// Buffers in the data region (128 KiB).
    const SLOTS: u64 = 32;
    /// (queue depth, figure): the first pass fills the cache, unmeasured.
    const PHASES: [(u64, &str); 3] = [(32, ""), (1, "blk_read_qd1_cache_hit"), (32, "blk_read_qd32_cache_hit")];

    struct Bench {
        client: BlockClient,
        phase: usize,
        issued: u64,
        completed: u64,
        start: u64,
        ready: bool,
        reported: bool,
    }

    #[protection_domain]
    fn init() -> Pd {
        match BlockClient::from_config() {
            Ok(client) => {
                let mut b = Bench { client, phase: 0, issued: 0, completed: 0, start: 0, ready: false, reported: false };
                b.step();
                Pd(Some(b))
            }
            Err(e) => {
                debug_println!("{}: {}", pd_name(), e);
                Pd(None)
            }
        }
    }

    impl Bench {
        fn step(&mut self) {
            if !self.ready {
                let Some(info) = self.client.info() else { return };
                if info.capacity < SPAN || (self.client.data.len() as u64) < SLOTS * u64::from(BLOCK_SIZE) || u64::from(self.client.capacity()) < 32 {
                    debug_println!("{}: needs {} blocks, a 128 KiB data region and a queue of 32", pd_name(), SPAN);
                    return finish(true);
                }
                self.ready = true;
            }
            loop {
                let Some(&(depth, figure)) = PHASES.get(self.phase) else { return self.report() };
                let (warmup, total) = if figure.is_empty() { (0, SPAN) } else { (WARMUP, WARMUP + REQUESTS) };
                while let Some(r) = self.client.pop() {
                    if r.status() != Ok(Status::Ok) {
                        debug_println!("{}: request {} failed: {}", pd_name(), r.id, r.status_text());
                        return finish(true);
                    }
                    self.completed += 1;
                    if self.completed == warmup {
                        self.start = bench::instructions();
                    }
                }
                if self.completed == total {
                    if !figure.is_empty() {
                        debug_println!("{}: {}", figure, (bench::instructions() - self.start) / REQUESTS);
                    }
                    (self.phase, self.issued, self.completed) = (self.phase + 1, 0, 0);
                    continue;
                }
                // The measured requests start only once the warm-up is done.
                let limit = if self.completed < warmup { warmup } else { total };
                while self.issued < limit && self.issued - self.completed < depth {
                    let n = self.issued;
                    if !self.client.push(Request::new(n as u32, Op::Read, n % SPAN, 1, (n % SLOTS) * u64::from(BLOCK_SIZE))) {
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

        /// Have the server print the chain's statistics, then finish.
        #[cold]
        fn report(&mut self) {
            if !self.reported {
                self.reported = self.client.push(Request::ordering(u32::MAX, Op::Report));
                if !self.reported {
                    return finish(false);
                }
            }
            loop {
                if self.client.pop().is_some() {
                    return finish(false);
                }
                self.client.kick();
                if self.client.wait() {
                    return;
                }
            }
        }
    }

    fn finish(failed: bool) {
        if failed {
            debug_println!("{}: benchmark failed", pd_name());
        }
        let _ = microkit::power_off(failed as u64);
    }

    /// `None` when the client has no configuration; it then does nothing.
    struct Pd(Option<Bench>);

    impl Handler for Pd {
        type Error = Infallible;

        fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
            if let Some(b) = self.0.as_mut() {
                b.step();
            }
            Ok(())
        }
    }
}
