//! The filter server PD: the shell around `blk_server::Server`: its
//! regions, the upcalls to filters as PPCs that lend them request data,
//! the faults of its filters (their parent is the server), and the
//! console.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use blk::config::{name_str, ServerConfig};
    use blk::filter::{label, SETUP_MRS};
    use blk_server::{bits, CallError, Event, Regions, Server, Upcalls, Wake, MAX_FILTERS};
    use microkit::{debug_println, fault_info, get_mr, protection_domain, set_mr, Channel, ChannelSet, Child, Handler, Infallible, MessageInfo};

    microkit::var!(blk_server_config: ServerConfig = ServerConfig::UNSET);

    /// A region the tool mapped where the configuration says.
    fn mapped(vaddr: u64, size: u64) -> Option<blk::Shared<'static>> {
        // SAFETY: every call passes a region of our tool-patched
        // configuration, reached only through `Shared`.
        unsafe { blk::Shared::mapped(vaddr, size) }
    }

    /// Upcalls are PPCs on each filter's channel, lending it the data.
    struct Ppc {
        cfg: &'static ServerConfig,
    }

    impl Upcalls for Ppc {
        fn call(&mut self, f: usize, n: usize, lends: &[abi::Lend]) -> Result<(), CallError> {
            let channel = Channel::new(self.cfg.filters[f].channel as usize);
            set_mr(0, n as u64);
            let info = MessageInfo::new(label::UPCALL, 1);
            // A call that lends nothing takes the kernel's plain PPC path.
            let reply = if lends.is_empty() { channel.try_pp_call(info) } else { channel.try_pp_call_lend(info, lends) };
            match reply {
                Ok(reply) if reply.label() == label::DONE && reply.count() == 1 && get_mr(0) == n as u64 => Ok(()),
                Ok(_) => Err(CallError::BadReply),
                Err(microkit::Error::CalleeFaulted) => Err(CallError::Stopped),
                Err(e) => Err(CallError::Refused(e as u64)),
            }
        }

        fn setup(&mut self, f: usize, mrs: [u64; SETUP_MRS]) -> Result<[u64; 4], CallError> {
            let channel = Channel::new(self.cfg.filters[f].channel as usize);
            for (i, &mr) in mrs.iter().enumerate() {
                set_mr(i, mr);
            }
            match channel.try_pp_call(MessageInfo::new(label::SETUP, SETUP_MRS)) {
                Ok(reply) if reply.label() == label::DONE && reply.count() == 4 => Ok([get_mr(0), get_mr(1), get_mr(2), get_mr(3)]),
                Ok(_) => Err(CallError::BadReply),
                Err(microkit::Error::CalleeFaulted) => Err(CallError::Stopped),
                Err(e) => Err(CallError::Refused(e as u64)),
            }
        }
    }

    /// (`cfg` first: every wake-up reads it, and behind the server's
    /// large table its offset on the stack would take an extra
    /// instruction to form.)
    #[repr(C)]
    struct Pd {
        cfg: &'static ServerConfig,
        server: Option<Server<'static>>,
    }

    impl Pd {
        /// (Inlined into the event loop: a call and its register saves
        /// fewer per wake-up.)
        #[inline(always)]
        fn run(&mut self) {
            let Some(server) = self.server.as_mut() else { return };
            let cfg = self.cfg;
            let wake: Wake = if cfg.filter_count == 0 {
                server.run(&mut |e| log(cfg, e))
            } else {
                server.run_with(&mut |e| log(cfg, e), &mut Ppc { cfg })
            };
            if cfg.filter_count != 0 {
                for d in bits(server.take_reports()) {
                    report(server, cfg, d);
                }
            }
            // Deferred: the last one goes out with our wait for the next
            // event, in one kernel entry (earlier ones go at once).
            for c in bits(wake.clients) {
                Channel::new(cfg.clients[c].queue.channel as usize).deferred_notify();
            }
            for d in bits(wake.drivers) {
                Channel::new(cfg.disks[d].queue.channel as usize).deferred_notify();
            }
        }
    }

    /// Print what each filter of our disk `d`'s chain saw and answered,
    /// and let each that is running print its own counters after its line.
    fn report(server: &Server<'_>, cfg: &ServerConfig, d: usize) {
        let disk = server.disks[d].name;
        let Some(chain) = &server.disks[d].chain else {
            debug_println!("blk_server: {}: no filters", disk);
            return;
        };
        for &f in &chain.filters {
            let filter = &server.filters[f as usize];
            let s = filter.stats;
            debug_println!(
                "blk_server: {} filter {}: {} upcalls, {} pre-ops, {} post-ops; verdicts: {} continue, {} substitute, {} complete, {} fail; {} errors; {} bytes{}{}",
                disk,
                filter.name,
                s.upcalls,
                s.pre,
                s.post,
                s.verdicts[0],
                s.verdicts[1],
                s.verdicts[2],
                s.verdicts[3],
                s.errors,
                s.bytes,
                s.moved_text(),
                if filter.alive { "" } else { " (stopped)" }
            );
            if filter.alive {
                // A refusal or a fault costs only the filter's own line (a
                // fault reaches `fault` below, as during an upcall).
                let _ = Channel::new(cfg.filters[f as usize].channel as usize).try_pp_call(MessageInfo::new(label::REPORT, 0));
            }
        }
    }

    fn log(cfg: &ServerConfig, e: Event) {
        let client = |c: usize| name_str(&cfg.clients[c].name);
        let filter = |f: usize| name_str(&cfg.filters[f].name);
        match e {
            Event::DiskReady { disk, blocks } => debug_println!("blk_server: {}: {} blocks", name_str(&cfg.disks[disk].name), blocks),
            Event::DiskAbsent { disk } => {
                debug_println!("blk_server: {}: no device behind it (see virtio_blk above); its clients' requests get 'no device'", name_str(&cfg.disks[disk].name))
            }
            Event::ClientReady { client: c, first_block, blocks } => {
                debug_println!("blk_server: client {}: blocks {}..{}", client(c), first_block, first_block + blocks)
            }
            Event::PartitionMissing { client: c, err } => {
                debug_println!("blk_server: client {}: no usable partition ({:?}); it sees an empty disk", client(c), err)
            }
            Event::PartitionMisaligned { client: c } => {
                debug_println!("blk_server: client {}: partition not aligned to 4 KiB; it sees an empty disk", client(c))
            }
            Event::ClientCorrupt { client: c } => debug_println!("blk_server: client {}: corrupted its queue; no longer served", client(c)),
            // A stopped filter is reported with its fault, below.
            Event::FilterFailed { error: CallError::Stopped, .. } => {}
            Event::FilterFailed { filter: f, error, requests } => {
                debug_println!("blk_server: filter {}: upcall failed ({:?}); its {} requests failed with I/O error", filter(f), error, requests)
            }
            Event::FilterStopped { filter: f, failed, restart } => debug_println!(
                "blk_server: filter {} stopped: {} requests failed with I/O error; {}",
                filter(f),
                failed,
                if restart { "restarting it" } else { "the requests that reach it fail from now on" }
            ),
            // Printed after the run (`report`), with every filter's figures.
            Event::Report { .. } => {}
            Event::FilterReady { filter: f, first, blocks } => {
                debug_println!("blk_server: filter {} is set up: it offers {} blocks from block {} of the disk below it", filter(f), blocks, first)
            }
            Event::FilterSetupFailed { filter: f, why } => {
                debug_println!("blk_server: filter {} could not be set up: {}; every request of its disk fails", filter(f), why)
            }
            Event::FilterSetupLost { filter: f, why } => {
                debug_println!("blk_server: filter {} could not be set up again after its restart: {}; it stays stopped and the requests that reach it fail", filter(f), why)
            }
        }
    }

    #[protection_domain]
    fn init() -> Pd {
        let cfg = blk_server_config();
        let mut regions = Regions::none();
        for (d, disk) in cfg.disks().iter().enumerate() {
            regions.disk_queues[d] = mapped(disk.queue.vaddr, disk.queue.size);
            regions.probes[d] = mapped(disk.probe.vaddr, disk.probe.size);
        }
        for (c, client) in cfg.clients().iter().enumerate() {
            regions.client_queues[c] = mapped(client.queue.vaddr, client.queue.size);
        }
        for (f, filter) in cfg.filters().iter().enumerate().take(MAX_FILTERS) {
            regions.filter_calls[f] = mapped(filter.calls.vaddr, filter.calls.size);
        }
        let server = match Server::new(cfg, regions) {
            Ok(s) => Some(s),
            Err(e) => {
                debug_println!("blk_server: cannot start: {:?}", e);
                None
            }
        };
        let mut pd = Pd { cfg, server };
        pd.run();
        pd
    }

    impl Handler for Pd {
        type Error = Infallible;

        fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
            self.run();
            Ok(())
        }

        /// A filter (our child) faulted or ran past its budget: the kernel
        /// has said what happened; say what it cost, and restart it if it
        /// was declared so.
        fn fault(&mut self, child: Child, _msg: MessageInfo) -> Result<Option<MessageInfo>, Infallible> {
            let cfg = self.cfg;
            let Some(server) = self.server.as_mut() else { return Ok(None) };
            let _ = fault_info();
            if let Some(f) = server.filter_faulted(child.index(), &mut |e| log(cfg, e)) {
                if child.restart().is_ok() {
                    server.filter_restarted(f);
                }
            } else {
                let _ = child.stop();
            }
            // Requests may wait at the filter's level.
            self.run();
            Ok(None)
        }
    }
}
