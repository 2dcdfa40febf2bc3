//! The virtio-blk driver PD: one instance drives every virtio-blk disk the
//! system declares (QEMU's virtio-mmio slots share register pages, so one
//! owner per page is the isolation boundary). Interrupt driven: it runs
//! when a device interrupts or its requester notifies, and never polls.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use blk::config::{DriverConfig, DriverDisk, MAX_DISKS};
    use blk::{QueueLayout, Request, Responder, Response, Shared, Status, StorageInfo};
    use heapless::Vec;
    use microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible};
    use virtio_blk::engine::{self, Engine, SlotArea, Submitted};
    use virtio_blk::recovery::{self, Recovery, Stops};
    use virtio_blk::{mmio, virtq, Dma};

    microkit::var!(blk_driver_config: DriverConfig = DriverConfig::UNSET);

    /// Queue entries we ask the device for (it may offer fewer).
    const QUEUE_SIZE: u32 = 256;

    /// A device's register window: 32-bit volatile accesses only.
    struct Regs(Shared<'static>);

    impl mmio::Registers for Regs {
        fn read(&self, off: usize) -> u32 {
            self.0.read_volatile(off).unwrap_or(0)
        }
        fn write(&self, off: usize, v: u32) {
            let _ = self.0.write_volatile(off, v);
        }
    }

    /// The virtqueues and request headers: the device reads and writes them
    /// behind the compiler's back, so every access is volatile.
    struct DmaMem {
        mem: Shared<'static>,
        paddr: u64,
    }

    impl Dma for DmaMem {
        fn paddr(&self) -> u64 {
            self.paddr
        }
        fn len(&self) -> usize {
            self.mem.len()
        }
        fn read_u8(&self, off: usize) -> u8 {
            self.mem.read_volatile(off).unwrap_or(0)
        }
        fn write_u8(&self, off: usize, v: u8) {
            let _ = self.mem.write_volatile(off, v);
        }
        fn read_u16(&self, off: usize) -> u16 {
            self.mem.read_volatile(off).unwrap_or(0)
        }
        fn write_u16(&self, off: usize, v: u16) {
            let _ = self.mem.write_volatile(off, v);
        }
        fn read_u32(&self, off: usize) -> u32 {
            self.mem.read_volatile(off).unwrap_or(0)
        }
        fn write_u32(&self, off: usize, v: u32) {
            let _ = self.mem.write_volatile(off, v);
        }
        fn write_u64(&self, off: usize, v: u64) {
            let _ = self.mem.write_volatile(off, v);
        }
        fn barrier(&self) {
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        }
    }

    struct Disk {
        index: usize,
        regs: Regs,
        dma: DmaMem,
        engine: Engine,
        queue: Responder<'static>,
        irq: Channel,
        requester: Channel,
        /// Requests taken and not yet answered (never more than the
        /// response ring holds).
        owed: u32,
        capacity: u32,
        corrupt: bool,
        /// The features negotiated at start; a restarted device must offer
        /// them again.
        features: u64,
        /// The device stopped and was given up (it would not restart, or
        /// kept stopping): every request is answered `NoDevice`.
        gone: bool,
        /// How often it stopped since it last completed a request.
        stops: Stops,
    }

    /// A disk whose virtio-mmio slot holds no device: its requester is
    /// told so (`StorageInfo::absent`) and every request is answered
    /// `NoDevice`, so that no client waits for it forever.
    struct Absent {
        index: usize,
        queue: Responder<'static>,
        requester: Channel,
        owed: u32,
        capacity: u32,
        corrupt: bool,
    }

    struct Driver {
        disks: Vec<Disk, MAX_DISKS>,
        absent: Vec<Absent, MAX_DISKS>,
    }

    /// A region the tool mapped as the configuration says (an empty one,
    /// refusing every access, if it mapped none).
    fn mapped(vaddr: u64, size: u64) -> Shared<'static> {
        // SAFETY: every call passes a region of this PD's tool-patched
        // configuration (for a device, its register window in the mapped
        // slot page), which the tool maps read-write for the PD's whole
        // life; it is reached only through `Shared`.
        unsafe { Shared::mapped(vaddr, size) }.unwrap_or_default()
    }

    /// The device's registers: its virtio-mmio window, mapped uncached.
    fn registers(cfg: &DriverDisk) -> Regs {
        Regs(mapped(cfg.mmio_vaddr, 0x200))
    }

    fn start(index: usize, cfg: &DriverDisk) -> Result<Disk, &'static str> {
        let regs = registers(cfg);
        let features = mmio::negotiate(&regs).map_err(|e| e.as_str())?;
        let max = mmio::queue_max(&regs, 8).map_err(|e| e.as_str())?;
        // The largest power of two the device and we both allow.
        let cap = QUEUE_SIZE.min(max);
        let size = (1u32 << (31 - cap.leading_zeros())) as u16;
        let dma = DmaMem { mem: mapped(cfg.dma.vaddr, cfg.dma.size), paddr: cfg.dma.paddr };
        let layout = virtq::Layout::new(size, 0);
        let area = SlotArea::at(layout.end.next_multiple_of(16));
        if area.status + SlotArea::SIZE > cfg.dma.size as usize {
            return Err("DMA region too small");
        }
        let read_only = features & mmio::feature::BLK_RO != 0;
        let flush = features & mmio::feature::BLK_FLUSH != 0;
        let mut engine = Engine::new(&dma, layout, area, mmio::capacity_sectors(&regs), read_only, flush);
        if let Some(windows) = cfg.windows() {
            // A direct client: the device reaches only memory it may.
            engine.confine(windows);
        }
        mmio::setup_queue(&regs, size, dma.paddr + layout.desc as u64, dma.paddr + layout.avail as u64, dma.paddr + layout.used as u64);
        mmio::driver_ok(&regs);

        let ql = QueueLayout::for_region(cfg.queue.size as usize, cfg.queue.capacity).map_err(|_| "queue region does not fit")?;
        let mut queue = Responder::new(mapped(cfg.queue.vaddr, cfg.queue.size), ql).map_err(|_| "queue region does not fit")?;
        let info = StorageInfo::new(engine.capacity_blocks(), read_only, ql.capacity());
        queue.info.publish(&info);
        let requester = Channel::new(cfg.queue.channel as usize);
        // The requester may have started first and be waiting for the info.
        requester.notify();
        debug_println!(
            "virtio_blk: disk {}: {} blocks of {} bytes{}{}, queue of {}",
            index,
            engine.capacity_blocks(),
            blk::BLOCK_SIZE,
            if read_only { ", read-only" } else { "" },
            if flush { ", write cache flushed on request" } else { "" },
            size
        );
        Ok(Disk {
            index,
            regs,
            dma,
            engine,
            queue,
            irq: Channel::new(cfg.irq_channel as usize),
            requester,
            owed: 0,
            capacity: ql.capacity(),
            corrupt: false,
            features,
            gone: false,
            stops: Stops::default(),
        })
    }

    #[protection_domain]
    fn init() -> Driver {
        let mut disks = Vec::new();
        let mut absent = Vec::new();
        match blk_driver_config().disks() {
            None => debug_println!("virtio_blk: no configuration (declare disks in system.xml)"),
            Some(list) => {
                for (i, cfg) in list.iter().enumerate() {
                    if cfg.queue.size == 0 {
                        debug_println!("virtio_blk: disk {}: no client; left alone", i);
                        continue;
                    }
                    if let Some(a) = empty_slot(i, cfg) {
                        let _ = absent.push(a);
                        continue;
                    }
                    match start(i, cfg) {
                        Ok(d) => {
                            let _ = disks.push(d);
                        }
                        Err(e) => debug_println!("virtio_blk: disk {}: {}", i, e),
                    }
                }
            }
        }
        // Arm each request ring's notification: a ring in fresh memory
        // asks for none, so a requester would never wake us otherwise.
        for disk in disks.iter_mut() {
            disk.service();
        }
        for a in absent.iter_mut() {
            a.refuse_all();
        }
        Driver { disks, absent }
    }

    /// Disk `index`, if its slot holds no device: said on the console, with
    /// how to attach one; its requester is told and its requests refused.
    fn empty_slot(index: usize, cfg: &DriverDisk) -> Option<Absent> {
        if !mmio::slot_is_empty(&registers(cfg)) {
            return None;
        }
        let ql = QueueLayout::for_region(cfg.queue.size as usize, cfg.queue.capacity).ok()?;
        let mut queue = Responder::new(mapped(cfg.queue.vaddr, cfg.queue.size), ql).ok()?;
        queue.info.publish(&StorageInfo::absent(ql.capacity()));
        let requester = Channel::new(cfg.queue.channel as usize);
        requester.notify();
        debug_println!(
            "virtio_blk: disk {}: no device in its virtio-mmio slot: give QEMU one more image (make run DISKS=\"a.img b.img\": one per disk, in order; or -drive file=IMAGE,if=none,format=raw,id=d{} -device virtio-blk-device,drive=d{}); its requests get 'no device'",
            index,
            index,
            index
        );
        Some(Absent { index, queue, requester, owed: 0, capacity: ql.capacity(), corrupt: false })
    }

    impl Disk {
        /// Finish what the device finished, start what the requester asked,
        /// until neither side has more.
        fn service(&mut self) {
            if mmio::take_interrupt(&self.regs) & mmio::interrupt::CONFIG_CHANGE != 0 {
                self.check_device();
            }
            if self.gone {
                self.refuse_all();
                return;
            }
            let mut started = false;
            loop {
                let mut progress = false;
                while let Some(c) = self.engine.complete(&self.dma) {
                    // It works: a stop from now on is its first in a row.
                    self.stops.completed();
                    self.respond(c);
                    progress = true;
                }
                match self.engine.release_held(&self.dma) {
                    Some(Submitted::Started) => started = true,
                    Some(Submitted::Done(c)) => self.respond(c),
                    _ => {}
                }
                while !self.corrupt && self.engine.can_accept() && self.owed < self.capacity {
                    // A batch: one load of the tail, one store of the head.
                    let mut requests = match self.queue.requests.batch() {
                        Ok(batch) if batch.is_empty() => break,
                        Ok(batch) => batch,
                        Err(_) => {
                            debug_println!("virtio_blk: disk {}: request ring corrupt; no longer served", self.index);
                            self.corrupt = true;
                            break;
                        }
                    };
                    while self.engine.can_accept() && self.owed < self.capacity {
                        let Some(req) = requests.next() else { break };
                        progress = true;
                        self.owed += 1;
                        match submit(&mut self.engine, &self.dma, req) {
                            Submitted::Started => started = true,
                            Submitted::Held => {}
                            Submitted::Done(c) => respond(&mut self.owed, &mut self.queue.responses, c),
                        }
                    }
                }
                if started {
                    mmio::notify(&self.regs, 0);
                    started = false;
                }
                if progress {
                    continue;
                }
                // Nothing to do: wait for the requester, unless it slipped
                // something in meanwhile.
                let can_take = !self.corrupt && self.engine.can_accept() && self.owed < self.capacity;
                if !can_take || self.queue.requests.prepare_to_wait().unwrap_or(true) {
                    break;
                }
            }
            if self.queue.responses.needs_notify() {
                // Sent with our next wait, in the same kernel entry.
                self.requester.deferred_notify();
            }
        }

        fn respond(&mut self, c: engine::Completion) {
            respond(&mut self.owed, &mut self.queue.responses, c);
        }

        /// The device says why it interrupted: a configuration change, or
        /// it hit an error it cannot go on from and set NEEDS_RESET. Then
        /// it completes nothing more: reset it, answer what it held and
        /// start it again, or give it up (`recovery`).
        #[cold]
        #[inline(never)]
        fn check_device(&mut self) {
            if self.gone || !mmio::needs_reset(&self.regs) {
                return;
            }
            let (owed, responses) = (&mut self.owed, &mut self.queue.responses);
            match recovery::recover(&self.regs, &self.dma, &mut self.engine, self.features, &mut self.stops, |c| respond(owed, responses, c)) {
                Recovery::Restarted { lost } => debug_println!(
                    "virtio_blk: disk {}: the device stopped (NEEDS_RESET); reset it, {} request{} it held failed with an I/O error",
                    self.index,
                    lost,
                    plural(lost)
                ),
                Recovery::GivenUp { lost, why } => {
                    self.gone = true;
                    debug_println!(
                        "virtio_blk: disk {}: the device stopped (NEEDS_RESET) and is given up ({}); {} request{} failed with an I/O error, later ones get 'no device'",
                        self.index,
                        why,
                        lost,
                        plural(lost)
                    );
                }
            }
        }

        /// With the device gone: answer every request `NoDevice`, as
        /// long as the requester sends them.
        #[cold]
        #[inline(never)]
        fn refuse_all(&mut self) {
            refuse_all(self.index, &mut self.queue, &mut self.owed, self.capacity, &mut self.corrupt, self.requester);
        }
    }

    impl Absent {
        fn refuse_all(&mut self) {
            refuse_all(self.index, &mut self.queue, &mut self.owed, self.capacity, &mut self.corrupt, self.requester);
        }
    }

    /// Answer every request `NoDevice`, as the response ring has room.
    fn refuse_all(index: usize, queue: &mut Responder<'static>, owed: &mut u32, capacity: u32, corrupt: &mut bool, requester: Channel) {
        while !*corrupt {
            let mut refused = false;
            {
                let Ok(mut requests) = queue.requests.batch() else {
                    debug_println!("virtio_blk: disk {}: request ring corrupt; no longer served", index);
                    *corrupt = true;
                    break;
                };
                while *owed < capacity {
                    let Some(req) = requests.next() else { break };
                    refused = true;
                    *owed += 1;
                    let id = answer_id(&req);
                    respond(owed, &mut queue.responses, engine::Completion { id, status: Status::NoDevice, count: 0 });
                }
            }
            if !refused && queue.requests.prepare_to_wait().unwrap_or(true) {
                break;
            }
        }
        if queue.responses.needs_notify() {
            requester.deferred_notify();
        }
    }

    fn plural(n: u32) -> &'static str {
        if n == 1 { "" } else { "s" }
    }

    /// What the engine carries for a request to build its answer: the
    /// answer echoes both the id and the tag.
    fn answer_id(req: &Request) -> u64 {
        req.id as u64 | (req.tag as u64) << 32
    }

    fn submit(engine: &mut Engine, dma: &DmaMem, req: Request) -> Submitted {
        let id = answer_id(&req);
        let Ok(op) = req.op() else {
            return Submitted::answered(id, Status::InvalidRequest);
        };
        // The requester's data offset is a device address on this link.
        let r = engine::Request { id, op, block: req.block, count: req.count, dma_addr: req.data_offset };
        engine.submit(dma, r)
    }

    /// Queue the answer; `service` publishes the answers of a round at once
    /// (the requester keeps within its capacity, so there is room).
    fn respond(owed: &mut u32, responses: &mut blk::Producer<'static, Response>, c: engine::Completion) {
        *owed = owed.saturating_sub(1);
        let _ = responses.push(Response::new(c.id as u32, c.status, c.count).with_tag((c.id >> 32) as u32));
    }

    impl Driver {
        /// The disks with no device whose requesters signalled us.
        #[cold]
        #[inline(never)]
        fn refuse_absent(&mut self, channels: ChannelSet) {
            for a in self.absent.iter_mut().filter(|a| channels.contains(a.requester)) {
                a.refuse_all();
            }
        }
    }

    impl Handler for Driver {
        type Error = Infallible;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
            for disk in self.disks.iter_mut() {
                let irq = channels.contains(disk.irq);
                if irq || channels.contains(disk.requester) {
                    disk.service();
                }
                if irq {
                    let _ = disk.irq.irq_ack();
                }
            }
            if !self.absent.is_empty() {
                self.refuse_absent(channels);
            }
            Ok(())
        }
    }
}
