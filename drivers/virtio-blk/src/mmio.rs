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
    /// Set by the device when it hit an error it cannot recover from (a
    /// bogus descriptor, say): it stops using the queues until reset.
    pub const NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// Bits of the interrupt status register: why the device interrupted.
pub mod interrupt {
    /// A used ring has new entries.
    pub const USED_BUFFER: u32 = 1;
    /// The configuration changed, or the device set NEEDS_RESET.
    pub const CONFIG_CHANGE: u32 = 2;
}

/// Reads of the status register a reset may take to show 0.
const RESET_POLLS: u32 = 1000;

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
    /// Queue 0 is enabled already, before we set it up.
    QueueInUse,
    /// The status register did not read 0 after a reset.
    ResetTimeout,
    /// After a reset the device offers other features than it did.
    FeaturesChanged,
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
            InitError::QueueInUse => "request queue already in use before setup",
            InitError::ResetTimeout => "device did not finish its reset",
            InitError::FeaturesChanged => "device offers other features than at start",
        }
    }
}

/// Whether the slot is a virtio-mmio transport with no device behind it
/// (device id 0: QEMU's `virt` has 32 such slots, and fills them from the
/// last as `-device virtio-blk-device` options come).
pub fn slot_is_empty(r: &impl Registers) -> bool {
    r.read(MAGIC_VALUE) == MAGIC && r.read(DEVICE_ID) == 0
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
    reset(r)?;
    r.write(STATUS, status::ACKNOWLEDGE);
    r.write(STATUS, status::ACKNOWLEDGE | status::DRIVER);
    let offered = read_features(r);
    if offered & feature::VERSION_1 == 0 {
        fail(r);
        return Err(InitError::NoVersion1);
    }
    let accepted = offered & (feature::VERSION_1 | feature::BLK_FLUSH | feature::BLK_RO);
    for sel in 0..2u32 {
        r.write(DRIVER_FEATURES_SEL, sel);
        r.write(DRIVER_FEATURES, (accepted >> (32 * sel)) as u32);
    }
    r.write(STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    if r.read(STATUS) & status::FEATURES_OK == 0 {
        fail(r);
        return Err(InitError::FeaturesRefused);
    }
    Ok(accepted)
}

/// Reset the device: it forgets the queues and stops using memory. It may
/// take a while (virtio 1.x 4.2.2.1: wait for the status to read 0 before
/// initialising it again).
pub fn reset(r: &impl Registers) -> Result<(), InitError> {
    r.write(STATUS, 0);
    if (0..RESET_POLLS).any(|_| r.read(STATUS) == 0) {
        Ok(())
    } else {
        Err(InitError::ResetTimeout)
    }
}

/// Tell the device the driver gave up on it (keeping the bits already
/// set: virtio 1.x 2.1.2, the driver must not clear any).
pub fn fail(r: &impl Registers) {
    r.write(STATUS, r.read(STATUS) | status::FAILED);
}

fn read_features(r: &impl Registers) -> u64 {
    let mut f = 0u64;
    for sel in 0..2u32 {
        r.write(DEVICE_FEATURES_SEL, sel);
        f |= (r.read(DEVICE_FEATURES) as u64) << (32 * sel);
    }
    f
}

/// Select queue 0 and check it can be set up: not in use yet, and
/// offering at least `min` entries. Returns the most it offers; on an error
/// the device is told the driver gave up (FAILED).
pub fn queue_max(r: &impl Registers, min: u32) -> Result<u32, InitError> {
    r.write(QUEUE_SEL, 0);
    let err = if r.read(QUEUE_READY) != 0 {
        InitError::QueueInUse
    } else {
        let max = r.read(QUEUE_NUM_MAX);
        if max >= min {
            return Ok(max);
        }
        InitError::QueueTooSmall { max }
    };
    fail(r);
    Err(err)
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

/// Bring a device that stopped (NEEDS_RESET) back as it was at start: the
/// same `features` and queue 0 where it was (whose rings the driver has
/// cleared). Resets it first, so it stops touching memory.
pub fn restart(r: &impl Registers, features: u64, size: u16, desc: u64, driver: u64, device: u64) -> Result<(), InitError> {
    if negotiate(r)? != features {
        fail(r);
        return Err(InitError::FeaturesChanged);
    }
    queue_max(r, size as u32)?;
    setup_queue(r, size, desc, driver, device);
    driver_ok(r);
    Ok(())
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

/// Whether the device stopped and waits for a reset.
pub fn needs_reset(r: &impl Registers) -> bool {
    r.read(STATUS) & status::NEEDS_RESET != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRegs;

    const OFFERED: u64 = feature::VERSION_1 | feature::BLK_FLUSH | 1 << 1;

    #[test]
    fn negotiation_waits_for_the_reset_and_accepts_only_known_features() {
        let r = FakeRegs::new(OFFERED, 256);
        r.reset_reads.set(3);
        assert_eq!(negotiate(&r), Ok(feature::VERSION_1 | feature::BLK_FLUSH));
        assert_eq!(r.accepted.get(), feature::VERSION_1 | feature::BLK_FLUSH, "not the size-max feature (bit 1)");
        assert_eq!(r.reset_reads.get(), 0, "the status was read until the reset showed");
        let s = status::ACKNOWLEDGE | status::DRIVER;
        assert_eq!(*r.status_writes.borrow(), [0, status::ACKNOWLEDGE, s, s | status::FEATURES_OK]);
    }

    #[test]
    fn an_empty_slot_is_told_from_a_device_of_another_kind() {
        let r = FakeRegs::new(OFFERED, 256);
        assert!(!slot_is_empty(&r));
        r.device_id.set(0);
        assert!(slot_is_empty(&r));
        assert_eq!(negotiate(&r), Err(InitError::NotBlock { device_id: 0 }));
        r.device_id.set(1);
        assert!(!slot_is_empty(&r), "a network card is a device");
    }

    #[test]
    fn a_device_that_never_finishes_its_reset_is_not_initialised() {
        let r = FakeRegs::new(OFFERED, 256);
        r.reset_reads.set(u32::MAX);
        assert_eq!(negotiate(&r), Err(InitError::ResetTimeout));
        assert_eq!(*r.status_writes.borrow(), [0], "nothing written after the reset");
    }

    #[test]
    fn a_queue_in_use_or_too_small_is_refused_and_the_device_told() {
        let r = FakeRegs::new(OFFERED, 4);
        assert_eq!(queue_max(&r, 8), Err(InitError::QueueTooSmall { max: 4 }));
        assert_eq!(r.status.get(), status::FAILED);
        let r = FakeRegs::new(OFFERED, 256);
        r.queue_ready.set(1);
        assert_eq!(queue_max(&r, 8), Err(InitError::QueueInUse));
        assert_eq!(r.status.get(), status::FAILED);
        let r = FakeRegs::new(OFFERED, 256);
        assert_eq!(queue_max(&r, 8), Ok(256));
        assert_eq!(*r.status_writes.borrow(), [] as [u32; 0]);
    }

    #[test]
    fn a_stopped_device_is_restarted_as_it_was() {
        let r = FakeRegs::new(OFFERED, 256);
        let features = negotiate(&r).unwrap();
        setup_queue(&r, 128, 0x1000, 0x2000, 0x3000);
        driver_ok(&r);
        r.status.set(r.status.get() | status::NEEDS_RESET);
        r.status_writes.borrow_mut().clear();
        r.reset_reads.set(2);
        assert_eq!(restart(&r, features, 128, 0x1000, 0x2000, 0x3000), Ok(()));
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        assert_eq!(*r.status_writes.borrow(), [0, status::ACKNOWLEDGE, status::ACKNOWLEDGE | status::DRIVER, s, s | status::DRIVER_OK]);
        assert_eq!((r.queue_ready.get(), r.queue.get()), (1, (128, 0x1000, 0x2000, 0x3000)));
        assert!(!needs_reset(&r));
    }

    #[test]
    fn a_device_that_comes_back_different_or_not_at_all_is_given_up() {
        // It lost the flush feature: the driver's promises about flushes
        // would no longer hold.
        let r = FakeRegs::new(feature::VERSION_1, 256);
        assert_eq!(restart(&r, feature::VERSION_1 | feature::BLK_FLUSH, 128, 0, 0, 0), Err(InitError::FeaturesChanged));
        let negotiated = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        assert_eq!((r.status.get(), r.queue_ready.get()), (negotiated | status::FAILED, 0), "FAILED added, no bit cleared");
        // Its queue shrank below the one the driver laid out.
        let r = FakeRegs::new(OFFERED, 64);
        assert_eq!(restart(&r, feature::VERSION_1 | feature::BLK_FLUSH, 128, 0, 0, 0), Err(InitError::QueueTooSmall { max: 64 }));
        assert_eq!((r.status.get(), r.queue_ready.get()), (negotiated | status::FAILED, 0));
        // It never finishes resetting.
        let r = FakeRegs::new(OFFERED, 256);
        r.reset_reads.set(u32::MAX);
        assert_eq!(restart(&r, feature::VERSION_1 | feature::BLK_FLUSH, 128, 0, 0, 0), Err(InitError::ResetTimeout));
    }

    #[test]
    fn a_reset_takes_the_queue_down_and_needs_reset_is_seen() {
        let r = FakeRegs::new(OFFERED, 256);
        negotiate(&r).unwrap();
        setup_queue(&r, 256, 0x1000, 0x2000, 0x3000);
        driver_ok(&r);
        assert!(!needs_reset(&r));
        r.status.set(r.status.get() | status::NEEDS_RESET);
        assert!(needs_reset(&r));
        // Initialising again resets it: the queue can be set up again.
        assert_eq!(queue_max(&r, 8), Err(InitError::QueueInUse));
        negotiate(&r).unwrap();
        assert!(!needs_reset(&r));
        assert_eq!(queue_max(&r, 8), Ok(256));
    }
}
