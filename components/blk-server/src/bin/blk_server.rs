//! The filter server PD: the shell around `blk_server::Server`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use blk::config::ServerConfig;
    use blk_server::{bits, Event, Regions, Server, Wake, MAX_CLIENTS, MAX_DISKS};
    use core::ptr::NonNull;
    use microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible};

    microkit::var!(blk_server_config: ServerConfig = ServerConfig::UNSET);

    /// A region the tool mapped where the configuration says.
    fn mapped(vaddr: u64, size: u64) -> Option<blk::Shared<'static>> {
        let base = NonNull::new(vaddr as *mut u8)?;
        // SAFETY: the tool maps [vaddr, vaddr + size) read-write in this PD
        // for its whole life and patched the values into the configuration;
        // the region is reached only through `Shared`.
        Some(unsafe { blk::Shared::new(base, size as usize) })
    }

    struct Pd {
        server: Option<Server<'static>>,
        cfg: &'static ServerConfig,
    }

    impl Pd {
        /// (Inlined into the event loop: a call and its register saves
        /// fewer per wake-up.)
        #[inline(always)]
        fn run(&mut self) {
            let Some(server) = self.server.as_mut() else { return };
            let cfg = self.cfg;
            let wake: Wake = server.run(&mut |e| log(cfg, e));
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

    fn log(cfg: &ServerConfig, e: Event) {
        let client = |c: usize| blk::config::name_str(&cfg.clients[c].name);
        match e {
            Event::DiskReady { disk, blocks } => {
                debug_println!("blk_server: {}: {} blocks", blk::config::name_str(&cfg.disks[disk].name), blocks)
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
            Event::ClientCorrupt { client: c } => {
                debug_println!("blk_server: client {}: corrupted its queue; no longer served", client(c))
            }
        }
    }

    #[protection_domain]
    fn init() -> Pd {
        let cfg = blk_server_config();
        let mut regions = Regions { disk_queues: [None; MAX_DISKS], probes: [None; MAX_DISKS], client_queues: [None; MAX_CLIENTS] };
        for (d, disk) in cfg.disks().iter().enumerate() {
            regions.disk_queues[d] = mapped(disk.queue.vaddr, disk.queue.size);
            regions.probes[d] = mapped(disk.probe.vaddr, disk.probe.size);
        }
        for (c, client) in cfg.clients().iter().enumerate() {
            regions.client_queues[c] = mapped(client.queue.vaddr, client.queue.size);
        }
        let server = match Server::new(cfg, regions) {
            Ok(s) => Some(s),
            Err(e) => {
                debug_println!("blk_server: cannot start: {:?}", e);
                None
            }
        };
        let mut pd = Pd { server, cfg };
        pd.run();
        pd
    }

    impl Handler for Pd {
        type Error = Infallible;

        fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
            self.run();
            Ok(())
        }
    }
}
