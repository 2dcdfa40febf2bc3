//! One queue region: the storage info and the two rings that connect a
//! requester (a client, or the filter server towards the driver) with a
//! responder (the filter server towards a client, or the driver).
//!
//! # Region layout
//!
//! For a ring capacity `n` (a power of two):
//!
//! | offset | size | what | written by |
//! |---:|---:|---|---|
//! | 0 | 128 | [`StorageInfo`](crate::StorageInfo) | responder |
//! | 128 | 64 + 32 `n` | request ring of [`Request`]s | requester pushes, responder pops |
//! | `r` = 192 + 32 `n` rounded up to 64 | 64 + 16 `n` | response ring of [`Response`]s | responder pushes, requester pops |
//!
//! The region is `r + 64 + 16 n` bytes: 6400 for `n` = 128, so an 8 KiB
//! region holds 128-entry rings. Both sides compute the layout from the same
//! configured capacity; nothing in the region says what it is (the info's
//! `queue_capacity` is for information, never used to index).
//!
//! The data region the requests point into (`data_offset`) is separate: its
//! size is the system's business, the responder checks each request against
//! it ([`StorageInfo::check`](crate::StorageInfo::check)).

use crate::info::{InfoReader, InfoWriter, INFO_SIZE};
use crate::records::{Request, Response};
use crate::ring::{check_capacity, ring_size, Consumer, LayoutError, Producer, HEADER_SIZE, MAX_CAPACITY};
use shared_memory::Shared;

/// Where the info and the rings sit in a queue region of a given capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    capacity: u32,
    response_ring: usize,
    size: usize,
}

/// Rings start on a cache line.
const ALIGN: usize = HEADER_SIZE;

const fn align_up(x: usize) -> Option<usize> {
    match x.checked_add(ALIGN - 1) {
        Some(y) => Some(y & !(ALIGN - 1)),
        None => None,
    }
}

impl QueueLayout {
    /// Offset of the [`StorageInfo`](crate::StorageInfo).
    pub const INFO_OFFSET: usize = 0;
    /// Offset of the request ring (its header).
    pub const REQUEST_RING_OFFSET: usize = INFO_SIZE;

    /// The layout for rings of `capacity` entries, which must be a power
    /// of two.
    pub const fn new(capacity: u32) -> Result<QueueLayout, LayoutError> {
        if let Err(e) = check_capacity(capacity) {
            return Err(e);
        }
        let too_big = LayoutError::RegionTooSmall { needed: usize::MAX, region_len: usize::MAX };
        let (Some(requests), Some(responses)) = (ring_size::<Request>(capacity), ring_size::<Response>(capacity))
        else {
            return Err(too_big);
        };
        let Some(response_ring) = align_up(Self::REQUEST_RING_OFFSET + requests) else {
            return Err(too_big);
        };
        let Some(size) = response_ring.checked_add(responses) else {
            return Err(too_big);
        };
        Ok(QueueLayout { capacity, response_ring, size })
    }

    /// The layout for rings of `capacity` entries in a region of
    /// `region_len` bytes, if it fits.
    pub const fn for_region(region_len: usize, capacity: u32) -> Result<QueueLayout, LayoutError> {
        match QueueLayout::new(capacity) {
            Ok(layout) if layout.size > region_len => {
                Err(LayoutError::RegionTooSmall { needed: layout.size, region_len })
            }
            other => other,
        }
    }

    /// The largest capacity whose layout fits `region_len` bytes.
    pub const fn max_capacity(region_len: usize) -> Option<u32> {
        let mut capacity = MAX_CAPACITY;
        while capacity > 0 {
            if QueueLayout::for_region(region_len, capacity).is_ok() {
                return Some(capacity);
            }
            capacity /= 2;
        }
        None
    }

    /// Entries per ring.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Offset of the response ring (its header).
    pub const fn response_ring_offset(&self) -> usize {
        self.response_ring
    }

    /// Bytes the layout covers, from offset 0.
    pub const fn size(&self) -> usize {
        self.size
    }

    fn check_region(&self, region: &Shared<'_>) -> Result<(), LayoutError> {
        if region.len() < self.size {
            return Err(LayoutError::RegionTooSmall { needed: self.size, region_len: region.len() });
        }
        Ok(())
    }

    fn request_ring<'a>(&self, region: Shared<'a>) -> Result<Shared<'a>, LayoutError> {
        Ok(region.window(Self::REQUEST_RING_OFFSET, self.response_ring - Self::REQUEST_RING_OFFSET)?)
    }

    fn response_ring<'a>(&self, region: Shared<'a>) -> Result<Shared<'a>, LayoutError> {
        Ok(region.window(self.response_ring, self.size - self.response_ring)?)
    }
}

/// The requester's end of a queue region: pushes requests, pops responses,
/// reads the info.
pub struct Requester<'a> {
    pub requests: Producer<'a, Request>,
    pub responses: Consumer<'a, Response>,
    pub info: InfoReader<'a>,
}

impl<'a> Requester<'a> {
    pub fn new(region: Shared<'a>, layout: QueueLayout) -> Result<Self, LayoutError> {
        layout.check_region(&region)?;
        Ok(Requester {
            requests: Producer::new(layout.request_ring(region)?, layout.capacity)?,
            responses: Consumer::new(layout.response_ring(region)?, layout.capacity)?,
            info: InfoReader::new(region, QueueLayout::INFO_OFFSET)?,
        })
    }
}

/// The responder's end of a queue region: pops requests, pushes responses,
/// publishes the info.
pub struct Responder<'a> {
    pub requests: Consumer<'a, Request>,
    pub responses: Producer<'a, Response>,
    pub info: InfoWriter<'a>,
}

impl<'a> Responder<'a> {
    pub fn new(region: Shared<'a>, layout: QueueLayout) -> Result<Self, LayoutError> {
        layout.check_region(&region)?;
        Ok(Responder {
            requests: Consumer::new(layout.request_ring(region)?, layout.capacity)?,
            responses: Producer::new(layout.response_ring(region)?, layout.capacity)?,
            info: InfoWriter::new(region, QueueLayout::INFO_OFFSET)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::StorageInfo;
    use crate::records::{Op, Status};

    #[test]
    fn layout_offsets_follow_the_table() {
        let l = QueueLayout::new(128).unwrap();
        assert_eq!(QueueLayout::REQUEST_RING_OFFSET, 128);
        assert_eq!(l.response_ring_offset(), 128 + 64 + 32 * 128);
        assert_eq!(l.size(), 6400);
        let one = QueueLayout::new(1).unwrap();
        assert_eq!(one.response_ring_offset(), 256, "rounded up to a cache line");
        assert_eq!(one.size(), 256 + 64 + 16);
    }

    #[test]
    fn layouts_that_do_not_fit_or_have_bad_capacities_are_refused() {
        assert_eq!(
            QueueLayout::for_region(4096, 128),
            Err(LayoutError::RegionTooSmall { needed: 6400, region_len: 4096 })
        );
        assert_eq!(QueueLayout::new(96), Err(LayoutError::CapacityNotPowerOfTwo { capacity: 96 }));
        assert_eq!(QueueLayout::for_region(8192, 0), Err(LayoutError::CapacityNotPowerOfTwo { capacity: 0 }));
        assert!(QueueLayout::new(MAX_CAPACITY).is_ok() || usize::BITS < 64);
    }

    #[test]
    fn the_largest_capacity_for_a_region_is_found() {
        assert_eq!(QueueLayout::max_capacity(4096), Some(64));
        assert_eq!(QueueLayout::max_capacity(8192), Some(128));
        assert_eq!(QueueLayout::max_capacity(2 * 1024 * 1024), Some(32768));
        assert_eq!(QueueLayout::max_capacity(335), None);
        assert_eq!(QueueLayout::max_capacity(336), Some(1));
    }

    #[test]
    fn a_request_travels_to_the_responder_and_its_response_back() {
        let layout = QueueLayout::new(8).unwrap();
        let mut buf = vec![0u64; layout.size().div_ceil(8)];
        let region = Shared::from_words(&mut buf);
        let mut client = Requester::new(region, layout).unwrap();
        let mut driver = Responder::new(region, layout).unwrap();

        assert_eq!(client.info.get(), None);
        driver.info.publish(&StorageInfo::new(1000, false, layout.capacity()));
        assert_eq!(client.info.get().map(|i| i.capacity), Some(1000));

        assert_eq!(client.responses.prepare_to_wait(), Ok(true));
        assert_eq!(driver.requests.prepare_to_wait(), Ok(true));
        client.requests.try_push(Request::new(7, Op::Read, 10, 2, 8192)).unwrap();
        assert!(client.requests.needs_notify(), "the driver was waiting");
        let req = driver.requests.try_pop().unwrap().unwrap();
        assert_eq!((req.id, req.op(), req.block, req.count), (7, Ok(Op::Read), 10, 2));
        driver.responses.try_push(Response::new(req.id, Status::Ok, req.count)).unwrap();
        assert!(driver.responses.needs_notify(), "the client was waiting");
        assert_eq!(client.responses.try_pop(), Ok(Some(Response::new(7, Status::Ok, 2))));
    }

    #[test]
    fn ends_on_a_short_region_are_refused() {
        let layout = QueueLayout::new(8).unwrap();
        let mut buf = vec![0u64; layout.size() / 8 - 1];
        let region = Shared::from_words(&mut buf);
        let short = LayoutError::RegionTooSmall { needed: layout.size(), region_len: layout.size() - 8 };
        assert_eq!(Requester::new(region, layout).err(), Some(short));
        assert!(Responder::new(region, layout).is_err());
    }
}
