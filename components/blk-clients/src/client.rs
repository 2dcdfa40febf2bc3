//! A block client's end of the storage stack, from its patched
//! configuration: the queue region, the data region and the channel.

use blk::config::{name_str, ClientConfig};
use blk::{QueueLayout, Request, Requester, Response, Shared, StorageInfo};
use microkit::Channel;

microkit::var!(blk_client_config: ClientConfig = ClientConfig::UNSET);

pub struct BlockClient {
    pub queue: Requester<'static>,
    /// This client's data region: request buffers are offsets into it.
    pub data: Shared<'static>,
    pub channel: Channel,
    direct: bool,
    data_paddr: u64,
    disk: &'static str,
}

impl BlockClient {
    /// The client as the tool configured it.
    #[allow(unsafe_code)]
    pub fn from_config() -> Result<BlockClient, &'static str> {
        let cfg = blk_client_config();
        if !cfg.is_set() {
            return Err("no block_client configuration (declare <block_client> in system.xml)");
        }
        let layout = QueueLayout::for_region(cfg.queue.size as usize, cfg.queue.capacity).map_err(|_| "queue region does not fit")?;
        // SAFETY: the tool maps the queue and data regions read-write in
        // this PD at the addresses it patched into the configuration, for
        // the PD's whole life; they are reached only through `Shared`.
        let (region, data) = unsafe { (Shared::mapped(cfg.queue.vaddr, cfg.queue.size), Shared::mapped(cfg.data.vaddr, cfg.data.size)) };
        let region = region.ok_or("no queue region")?;
        Ok(BlockClient {
            queue: Requester::new(region, layout).map_err(|_| "queue region does not fit")?,
            data: data.unwrap_or_default(),
            channel: Channel::new(cfg.queue.channel as usize),
            direct: cfg.direct != 0,
            data_paddr: cfg.data.paddr,
            disk: name_str(&cfg.disk),
        })
    }

    /// Whether this client talks to the driver itself (benchmarks only).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn disk(&self) -> &'static str {
        self.disk
    }

    /// The disk as this client sees it, once the stack is ready.
    pub fn info(&self) -> Option<StorageInfo> {
        self.queue.info.get()
    }

    pub fn capacity(&self) -> u32 {
        self.queue.requests.capacity()
    }

    /// Queue a request whose buffer is `req.data_offset` into the data
    /// region. A direct client (benchmarks) hands the driver device
    /// addresses instead.
    pub fn push(&mut self, mut req: Request) -> bool {
        if self.direct {
            req.data_offset += self.data_paddr;
        }
        self.queue.requests.try_push(req).is_ok()
    }

    /// Tell the other side, if it asked to be told, about new requests or
    /// about answers taken (when it waits for room to answer): when the
    /// handler returns, together with the wait for the next event.
    pub fn kick(&mut self) {
        // `|`: both requests are taken back, one notification covers them.
        if self.queue.requests.needs_notify() | self.queue.responses.producer_waits() {
            self.channel.deferred_notify();
        }
    }

    pub fn pop(&mut self) -> Option<Response> {
        self.queue.responses.try_pop().ok().flatten()
    }

    /// Ask to be notified of the next response, after telling the server
    /// about answers taken if it waits for room (see `kick`); false if a
    /// response is already there.
    pub fn wait(&mut self) -> bool {
        // Answers taken since the last `kick` may be what the server waits
        // for.
        if self.queue.responses.producer_waits() {
            self.channel.deferred_notify();
        }
        self.queue.responses.prepare_to_wait().unwrap_or(true)
    }
}
