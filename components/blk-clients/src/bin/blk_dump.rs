//! `blk_dump`: copies one whole disk, block by block, to the start of
//! another, as two PDs of this one program: the reader (a block client of
//! the source) and the writer (a block client of the destination), joined
//! by a transfer region and two channels. `blk_dump_role` chooses the
//! role; `blk_clients::dump` has the protocol, the configuration and both
//! sides' logic, and this file wires them to the block client, the
//! channels and the console. At the end the writer prints
//! `blk_dump: copied N blocks (M MiB) from disk0 to disk1` and powers the
//! machine off with status 0, or prints what went wrong and powers off
//! with status 1.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use blk::{Request, Response, Shared};
    use blk_clients::client::BlockClient;
    use blk_clients::dump::{
        self, Blocks, DiskInfo, Failure, ReaderEnd, ReaderFailure, ReaderSide, Role, Setup, SlotRange, Transfer, WriterEnd, WriterSide,
        CHUNK_BYTES, MAX_BUFFERS,
    };
    use microkit::{debug_println, pd_name, protection_domain, Channel, ChannelSet, Handler, Infallible};

    microkit::var!(blk_dump_role: u64 = 0);
    // The reader's largest request in blocks (0: dump::REQUEST_BLOCKS).
    microkit::var!(blk_dump_request_blocks: u64 = 0);
    microkit::memory_region!(blk_dump_transfer: dump::TRANSFER_SIZE);

    const READY: Channel = Channel::new(dump::CHUNK_READY);
    const WRITTEN: Channel = Channel::new(dump::CHUNK_WRITTEN);

    enum Pd {
        Reader(Reader),
        Writer(Writer),
        /// Misconfigured or finished: does nothing.
        Idle,
    }

    #[protection_domain]
    fn init() -> Pd {
        let Some(role) = Role::from_var(*blk_dump_role()) else {
            debug_println!("blk_dump: {}: blk_dump_role is not set (1: reader, 2: writer)", pd_name());
            let _ = microkit::power_off(1);
            return Pd::Idle;
        };
        let Some(transfer) = transfer() else {
            debug_println!(
                "blk_dump: {}: no transfer region: map a region of {:#x} bytes with setvar_vaddr=\"blk_dump_transfer\"",
                pd_name(),
                dump::TRANSFER_SIZE
            );
            let _ = microkit::power_off(1);
            return Pd::Idle;
        };
        let client = BlockClient::from_config().map_err(|_| Setup::NoClient).and_then(|c| usable(&c).map(|b| (c, b)));
        let mut pd = match (role, client) {
            (Role::Reader, Ok((client, buffers))) => Pd::Reader(Reader { client, end: Some(ReaderEnd::new(transfer)), side: None, buffers }),
            (Role::Writer, Ok((client, buffers))) => {
                let (depth, disk) = (client.capacity(), client.disk());
                Pd::Writer(Writer { side: WriterSide::new(WriterEnd::new(transfer), disk, buffers, depth), client })
            }
            (Role::Reader, Err(why)) => {
                // The writer says it; the reader's name is only here.
                debug_println!("blk_dump: the reader ({}) cannot start: {}", pd_name(), why);
                ReaderEnd::new(transfer).fail(ReaderFailure::Setup(why));
                READY.notify();
                Pd::Idle
            }
            (Role::Writer, Err(why)) => {
                finish(Err(Failure::WriterSetup(why)));
                Pd::Idle
            }
        };
        pd.step();
        pd
    }

    /// The transfer region, if the system maps it.
    fn transfer() -> Option<Transfer<'static>> {
        let region = blk_dump_transfer();
        if region.is_empty() {
            return None;
        }
        Transfer::new(region).ok()
    }

    /// The chunk buffers a block client's data region holds, if it can be
    /// used at all.
    fn usable(c: &BlockClient) -> Result<u32, Setup> {
        let buffers = (c.data.len() / CHUNK_BYTES).min(MAX_BUFFERS) as u32;
        if buffers == 0 {
            return Err(Setup::DataRegion);
        }
        if c.capacity() == 0 {
            return Err(Setup::Queue);
        }
        Ok(buffers)
    }

    /// The block client and the transfer region as a side's `Blocks`.
    struct Io<'c> {
        client: &'c mut BlockClient,
        transfer: Shared<'static>,
    }

    impl Blocks for Io<'_> {
        fn push(&mut self, req: Request) -> bool {
            self.client.push(req)
        }

        fn pop(&mut self) -> Option<Response> {
            self.client.pop()
        }

        // Straight from region to region (slots and chunk buffers are
        // 16-byte aligned, as `copy_to` needs): a quarter of the
        // instructions of copying through a buffer on the stack.
        fn save(&mut self, at: usize, to: SlotRange) -> bool {
            self.client.data.copy_to(at, &self.transfer, to.offset, to.len).is_ok()
        }

        fn load(&mut self, from: SlotRange, at: usize) -> bool {
            self.transfer.copy_to(from.offset, &self.client.data, at, from.len).is_ok()
        }
    }

    struct Reader {
        client: BlockClient,
        /// Until the disk is ready; then it is the side's.
        end: Option<ReaderEnd<'static>>,
        side: Option<ReaderSide<'static>>,
        buffers: u32,
    }

    impl Reader {
        /// Run until the next event is needed; false once done.
        fn step(&mut self) -> bool {
            let c = &mut self.client;
            if self.side.is_none() {
                // (The end is taken only once the disk is ready: taken
                // before, it would be lost.)
                let Some(info) = c.info() else { return true };
                let Some(end) = self.end.take() else { return true };
                let most = match *blk_dump_request_blocks() {
                    0 => dump::REQUEST_BLOCKS,
                    n => n.min(u64::from(dump::REQUEST_BLOCKS)) as u32,
                };
                self.side = Some(ReaderSide::start(end, info.capacity, c.disk(), self.buffers, c.capacity()).with_request_blocks(most));
                READY.notify();
            }
            let side = self.side.as_mut().expect("started above");
            loop {
                let step = side.poll(&mut Io { client: c, transfer: blk_dump_transfer() });
                if step.notify {
                    READY.notify();
                }
                if let Some(e) = step.stopped {
                    debug_println!("blk_dump: the reader ({}) stopped: {}", pd_name(), e);
                }
                if step.done {
                    return false;
                }
                c.kick();
                if c.wait() {
                    return true;
                }
            }
        }
    }

    struct Writer {
        client: BlockClient,
        side: WriterSide<'static>,
    }

    impl Writer {
        /// Run until the next event is needed; false once done.
        fn step(&mut self) -> bool {
            let c = &mut self.client;
            loop {
                // The client's rings are used once its disk is ready.
                let Some(info) = c.info() else { return true };
                let disk = DiskInfo { blocks: info.capacity, read_only: info.is_read_only() };
                let step = self.side.poll(&mut Io { client: c, transfer: blk_dump_transfer() }, Some(disk));
                if step.notify {
                    WRITTEN.notify();
                }
                if let Some(starting) = step.starting {
                    debug_println!("blk_dump: {}", starting);
                }
                if let Some(result) = step.finished {
                    finish(result);
                    return false;
                }
                c.kick();
                if c.wait() {
                    return true;
                }
            }
        }
    }

    /// Print how the dump ended and power the machine off: status 0 after
    /// a copy, 1 after a failure.
    fn finish(result: Result<dump::Copied, Failure>) {
        let status = match result {
            Ok(copied) => {
                debug_println!("blk_dump: {}", copied);
                0
            }
            Err(failure) => {
                debug_println!("blk_dump: {}", failure);
                1
            }
        };
        if let Err(e) = microkit::power_off(status) {
            debug_println!("blk_dump: the writer ({}) cannot power off: {} (give it can_power_off=\"true\")", pd_name(), e.as_str());
        }
    }

    impl Pd {
        fn step(&mut self) {
            let going = match self {
                Pd::Reader(r) => r.step(),
                Pd::Writer(w) => w.step(),
                Pd::Idle => false,
            };
            if !going {
                *self = Pd::Idle;
            }
        }
    }

    impl Handler for Pd {
        type Error = Infallible;

        fn notified(&mut self, _channels: ChannelSet) -> Result<(), Infallible> {
            self.step();
            Ok(())
        }
    }
}
