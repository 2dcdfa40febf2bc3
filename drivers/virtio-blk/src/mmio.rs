//! The virtio-mmio transport, version 2 (virtio 1.x "modern"): register
//! offsets, status bits, feature negotiation and queue setup.

/// Register access, 32 bits wide, by byte offset in the device window.
pub trait Registers {
    fn read(&self, off: usize) -> u32;
    fn write(&self, off: usize, v: u32);
}

pub const MAGIC_VALUE: usize = 0x000;
pub const VERSION: usize = 0x004;
pub const DEVICE_ID: usize = 0x008;
pub const DEVICE_FEATURES: usize = 0x010;
pub const DEVICE_FEATURES_SEL: usize = 0x014;
pub const DRIVER_FEATURES: usize = 0x020;
pub const DRIVER_FEATURES_SEL: usize = 0x024;
pub const QUEUE_SEL: usize = 0x030;
pub const QUEUE_NUM_MAX: usize = 0x034;
pub const QUEUE_NUM: usize = 0x038;
pub const QUEUE_READY: usize = 0x044;
pub const QUEUE_NOTIFY: usize = 0x050;
pub const INTERRUPT_STATUS: usize = 0x060;
pub const INTERRUPT_ACK: usize = 0x064;
pub const STATUS: usize = 0x070;
pub const QUEUE_DESC_LOW: usize = 0x080;
pub const QUEUE_DESC_HIGH: usize = 0x084;
pub const QUEUE_DRIVER_LOW: usize = 0x090;
pub const QUEUE_DRIVER_HIGH: usize = 0x094;
pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
pub const QUEUE_DEVICE_HIGH: usize = 0x0a4;
pub const CONFIG_GENERATION: usize = 0x0fc;
pub const CONFIG: usize = 0x100;

/// "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
pub const DEVICE_ID_BLOCK: u32 = 2;

pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const FAILED: u32 = 128;
}

/// Feature bits this driver knows.
pub mod feature {
    /// Device is read-only.
    pub const BLK_RO: u64 = 1 << 5;
    /// Device has a cache that a flush command writes back.
    pub const BLK_FLUSH: u64 = 1 << 9;
    /// Virtio 1.x semantics; required by the modern transport.
    pub const VERSION_1: u64 = 1 << 32;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    NotVirtio { magic: u32 },
    /// Legacy (version 1) transport: start QEMU with
    /// `-global virtio-mmio.force-legacy=false`.
    LegacyTransport,
    /// No device in this slot (device id 0), or not a block device.
    NotBlock { device_id: u32 },
    /// The device does not offer VERSION_1.
    NoVersion1,
    /// The device refused the features we accepted.
    FeaturesRefused,
    /// Queue 0 is missing or smaller than we need.
    QueueTooSmall { max: u32 },
}

impl InitError {
    pub fn as_str(&self) -> &'static str {
        match self {
            InitError::NotVirtio { .. } => "no virtio device (bad magic)",
            InitError::LegacyTransport => "legacy virtio-mmio transport; use -global virtio-mmio.force-legacy=false",
            InitError::NotBlock { .. } => "not a block device",
            InitError::NoVersion1 => "device does not offer VIRTIO_F_VERSION_1",
            InitError::FeaturesRefused => "device refused the negotiated features",
            InitError::QueueTooSmall { .. } => "request queue too small",
        }
    }
}

/// Reset the device, check it is a modern virtio-blk, and negotiate
/// features: VERSION_1 always, FLUSH and RO when offered. Returns the
/// accepted features.
pub fn negotiate(r: &impl Registers) -> Result<u64, InitError> {
    let magic = r.read(MAGIC_VALUE);
    if magic != MAGIC {
        return Err(InitError::NotVirtio { magic });
    }
    if r.read(VERSION) != 2 {
        return Err(InitError::LegacyTransport);
    }
    let device_id = r.read(DEVICE_ID);
    if device_id != DEVICE_ID_BLOCK {
        return Err(InitError::NotBlock { device_id });
    }
    r.write(STATUS, 0);
    r.write(STATUS, status::ACKNOWLEDGE);
    r.write(STATUS, status::ACKNOWLEDGE | status::DRIVER);
    let offered = read_features(r);
    if offered & feature::VERSION_1 == 0 {
        r.write(STATUS, status::FAILED);
        return Err(InitError::NoVersion1);
    }
    let accepted = offered & (feature::VERSION_1 | feature::BLK_FLUSH | feature::BLK_RO);
    for sel in 0..2u32 {
        r.write(DRIVER_FEATURES_SEL, sel);
        r.write(DRIVER_FEATURES, (accepted >> (32 * sel)) as u32);
    }
    r.write(STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    if r.read(STATUS) & status::FEATURES_OK == 0 {
        r.write(STATUS, status::FAILED);
        return Err(InitError::FeaturesRefused);
    }
    Ok(accepted)
}

fn read_features(r: &impl Registers) -> u64 {
    let mut f = 0u64;
    for sel in 0..2u32 {
        r.write(DEVICE_FEATURES_SEL, sel);
        f |= (r.read(DEVICE_FEATURES) as u64) << (32 * sel);
    }
    f
}

/// Largest size queue 0 supports.
pub fn queue_max(r: &impl Registers) -> u32 {
    r.write(QUEUE_SEL, 0);
    r.read(QUEUE_NUM_MAX)
}

/// Tell the device where queue 0's three parts are and enable it.
pub fn setup_queue(r: &impl Registers, size: u16, desc: u64, driver: u64, device: u64) {
    r.write(QUEUE_SEL, 0);
    r.write(QUEUE_NUM, size as u32);
    for (low, addr) in [(QUEUE_DESC_LOW, desc), (QUEUE_DRIVER_LOW, driver), (QUEUE_DEVICE_LOW, device)] {
        r.write(low, addr as u32);
        r.write(low + 4, (addr >> 32) as u32);
    }
    r.write(QUEUE_READY, 1);
}

/// Initialisation done: the device may now process requests.
pub fn driver_ok(r: &impl Registers) {
    r.write(STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
}

/// Capacity in 512-byte sectors (config offset 0), read consistently.
pub fn capacity_sectors(r: &impl Registers) -> u64 {
    loop {
        let gen = r.read(CONFIG_GENERATION);
        let cap = r.read(CONFIG) as u64 | (r.read(CONFIG + 4) as u64) << 32;
        if r.read(CONFIG_GENERATION) == gen {
            return cap;
        }
    }
}

/// Acknowledge whatever the device signalled; returns the reasons.
pub fn take_interrupt(r: &impl Registers) -> u32 {
    let s = r.read(INTERRUPT_STATUS);
    if s != 0 {
        r.write(INTERRUPT_ACK, s);
    }
    s
}

pub fn notify(r: &impl Registers, queue: u32) {
    r.write(QUEUE_NOTIFY, queue);
}
