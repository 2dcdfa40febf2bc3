//! Memory a protection domain shares with another PD or a device, reached
//! only through one type, [`Shared`]: every PD region (the regions
//! `microkit::memory_region!` declares, the block stack's queue and data
//! regions, DMA memory, device registers) and, in host tests, a buffer.
//! The `unsafe` that shared memory needs lives here, not in the crates
//! built on it.
//!
//! The peer on the other side may be hostile and may write any byte at any
//! time. So nothing here ever hands out a reference to ordinary data in
//! shared memory (`&T`, `&[u8]`): the compiler may assume such memory does
//! not change under it, and it can. Instead there are four ways in:
//!
//! - **copies**: [`Shared::read_bytes`] / [`Shared::write_bytes`] (and typed
//!   [`Shared::read`] / [`Shared::write`] for zerocopy records) copy each
//!   byte once between shared memory and private memory; callers check the
//!   private copy, never the shared original, so a peer that changes a record
//!   while it is checked gains nothing (no "double fetch");
//!   [`Shared::copy_to`] copies from one region to another;
//! - **atomics**: [`Shared::atomic_u32`] for the words that synchronise the
//!   two sides (ring indices, flags). Only `u32` atomics: a `bool` or an enum
//!   in shared memory would be undefined behaviour the moment the peer wrote
//!   a value outside its range, a `u32` has no invalid values;
//! - **volatile words**: [`Shared::read_volatile`] /
//!   [`Shared::write_volatile`], one aligned load or store of a [`Word`]
//!   exactly where the program makes it, for device registers and the
//!   structures a device reads by DMA;
//! - **slots**: [`Slots`], an array of records where every index is in
//!   bounds (it is taken modulo the length), so an index read from shared
//!   memory can never reach outside the array.
//!
//! Every access is bounds-checked against the region, and the region's
//! validity is the single promise made in `unsafe` code: [`Shared::new`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::num::NonZeroU32;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;

use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A byte range of memory shared with another protection domain (or, in host
/// tests, borrowed from a buffer). Cheap to copy; every copy reaches the same
/// bytes.
///
/// `'a` is how long the memory stays mapped: `'static` in a protection
/// domain, the buffer's borrow in a test.
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    base: NonNull<u8>,
    len: usize,
    // Shared mutable bytes reached from one thread: neither Send nor Sync.
    _memory: PhantomData<&'a [Cell<u8>]>,
}

/// An access that does not fit the region, or a word at an address that is
/// not aligned for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// `[offset, offset + len)` is not inside a region of `region_len` bytes.
    OutOfBounds { offset: usize, len: usize, region_len: usize },
    /// The word at `offset` is not aligned to `align` bytes.
    Misaligned { offset: usize, align: usize },
    /// An array of slots must have a power-of-two length, not `len`.
    SlotCount { len: u32 },
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AccessError::OutOfBounds { offset, len, region_len } => write!(
                f,
                "{len} bytes at offset {offset:#x} do not fit a shared region of {region_len:#x} bytes"
            ),
            AccessError::Misaligned { offset, align } => {
                write!(f, "offset {offset:#x} of a shared region is not {align}-byte aligned")
            }
            AccessError::SlotCount { len } => write!(f, "{len} slots: the number must be a power of two"),
        }
    }
}

impl core::error::Error for AccessError {}

impl<'a> Shared<'a> {
    /// The memory `[base, base + len)`.
    ///
    /// # Safety
    ///
    /// For all of `'a`, the range must be mapped readable and writable in this
    /// protection domain (read-only mappings work too as long as nothing
    /// writes through this value: a write faults like any store), and must not
    /// be reached by this protection domain's code except through `Shared`
    /// values (no references or raw pointers into it elsewhere). Another
    /// protection domain, or a device, may write it at any time: that is
    /// what this type is for. (Device registers are reached only by
    /// [`read_volatile`](Self::read_volatile) and
    /// [`write_volatile`](Self::write_volatile), one access of the
    /// register's width each.)
    pub const unsafe fn new(base: NonNull<u8>, len: usize) -> Shared<'a> {
        Shared { base, len, _memory: PhantomData }
    }

    /// The region the system tool mapped in this protection domain at
    /// `vaddr` (as it patched into the PD's configuration), `size` bytes;
    /// `None` if it mapped none there (address 0). The one place a PD turns
    /// a configured address into shared memory (`microkit::memory_region!`
    /// calls it too).
    ///
    /// # Safety
    ///
    /// As for [`Shared::new`], for the PD's whole life: the tool maps its
    /// regions read-write (or read-only, see there) for as long as the PD
    /// runs, so a value from the PD's own tool-patched configuration
    /// qualifies; any other address does not.
    pub unsafe fn mapped(vaddr: u64, size: u64) -> Option<Shared<'static>> {
        let base = NonNull::new(vaddr as *mut u8)?;
        // SAFETY: the caller vouches for the range, for all of 'static.
        Some(unsafe { Shared::new(base, size as usize) })
    }

    /// A buffer of this program's own as shared memory: for host tests, and
    /// for rings between two halves of one protection domain. Words, so the
    /// region is 8-byte aligned; [`Slots`] of records made of 16-byte units
    /// (requests and responses) also need it 16-byte aligned, as a mapped
    /// page and a heap allocation of this size are, and say so
    /// ([`AccessError::Misaligned`]) if it is not.
    pub fn from_words(buffer: &'a mut [u64]) -> Shared<'a> {
        let len = buffer.len() * size_of::<u64>();
        // SAFETY: the exclusive borrow gives us the buffer, valid and
        // writable, for all of 'a; nothing else can reach it meanwhile.
        unsafe { Shared::new(NonNull::from(buffer).cast::<u8>(), len) }
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `[offset, offset + len)` of this region, as a region of its own.
    pub fn window(&self, offset: usize, len: usize) -> Result<Shared<'a>, AccessError> {
        let start = self.range(offset, len)?;
        Ok(Shared { base: start, len, _memory: PhantomData })
    }

    /// `[offset, offset + len)` as private bytes, for as long as the borrow
    /// lasts: for a buffer of the PD's own that it hands out a piece at a
    /// time (a filter's bounce buffer, whose pages it gives to one request
    /// each), so that work on a piece needs no copy in or out.
    ///
    /// # Safety
    ///
    /// While the slice lives nothing else reads or writes those bytes: no
    /// peer or device (the region is the PD's own, or the peer is not
    /// given the bytes until after), and no other view of this PD's (no
    /// other slice of them, no `Shared` access to them).
    #[inline]
    pub unsafe fn bytes_mut(&self, offset: usize, len: usize) -> Result<&'a mut [u8], AccessError> {
        let start = self.range(offset, len)?;
        // SAFETY: `range` checked that the bytes lie in the region, mapped
        // and writable for 'a (see `new`); the caller promises no one else
        // reaches them while the slice lives.
        Ok(unsafe { core::slice::from_raw_parts_mut(start.as_ptr(), len) })
    }

    /// Copy `out.len()` bytes from `offset` into private memory.
    #[inline]
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), AccessError> {
        let src = self.range(offset, out.len())?;
        // SAFETY: `range` checked that the bytes lie in the region, which is
        // mapped for 'a (see `new`); `out` is private, so the two cannot
        // overlap. The peer may write the bytes meanwhile: we copy whatever
        // is there, byte values have no invalid patterns.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copy `data` from private memory to `offset`.
    #[inline]
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        let dst = self.range(offset, data.len())?;
        // SAFETY: as in `read_bytes`; the region is writable (see `new`).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst.as_ptr(), data.len()) };
        Ok(())
    }

    /// A private copy of the record at `offset` (any alignment).
    #[inline]
    pub fn read<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, AccessError> {
        let mut value = T::new_zeroed();
        self.read_bytes(offset, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Write a copy of `value` at `offset` (any alignment).
    #[inline]
    pub fn write<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> Result<(), AccessError> {
        self.write_bytes(offset, value.as_bytes())
    }

    /// The word at `offset`, loaded once, as one access of its width: never
    /// split, merged, repeated or left out, and ordered with the PD's other
    /// volatile accesses. For device registers and DMA structures, and for
    /// words another PD must see stored exactly when the program stores them.
    /// The offset and the region's start must be multiples of its size.
    #[inline]
    pub fn read_volatile<W: Word>(&self, offset: usize) -> Result<W, AccessError> {
        let word = self.word::<W>(offset)?;
        // SAFETY: in bounds and aligned (`word`), mapped for 'a (see `new`);
        // every bit pattern is a valid `W`.
        Ok(unsafe { word.read_volatile() })
    }

    /// Store `value` at `offset` as one access of its width (see
    /// [`read_volatile`](Self::read_volatile)).
    #[inline]
    pub fn write_volatile<W: Word>(&self, offset: usize, value: W) -> Result<(), AccessError> {
        let word = self.word::<W>(offset)?;
        // SAFETY: as in `read_volatile`; the region is writable (see `new`).
        unsafe { word.write_volatile(value) };
        Ok(())
    }

    /// A pointer to the `W` at `offset`, in bounds and aligned.
    #[inline]
    fn word<W: Word>(&self, offset: usize) -> Result<*mut W, AccessError> {
        let size = size_of::<W>(); // also its alignment
        // By index, not `offset + size <= len`: no overflow to check, and
        // `len / size` is the same for every word of a size.
        if offset / size >= self.len / size {
            return Err(AccessError::OutOfBounds { offset, len: size, region_len: self.len });
        }
        if (self.base.as_ptr() as usize | offset) % size != 0 {
            return Err(AccessError::Misaligned { offset, align: size });
        }
        // SAFETY: the word's index is below the number of whole words in
        // the region, and the offset and the region's start are aligned: an
        // aligned word inside the region.
        Ok(unsafe { self.base.add(offset) }.as_ptr().cast::<W>())
    }

    /// Copy `len` bytes at `offset` to `to` at `to_offset`, straight from
    /// shared memory to shared memory. Both must start 16-byte aligned in
    /// memory. The bytes go in volatile 16-byte units, four at a time, then
    /// any last bytes one by one: each is loaded and stored once, and no
    /// SIMD register is touched (that would cost a lazy FP switch).
    /// Overlapping ranges are allowed, with no promise about the result.
    pub fn copy_to(&self, offset: usize, to: &Shared<'_>, to_offset: usize, len: usize) -> Result<(), AccessError> {
        let (src, dst) = (self.range(offset, len)?, to.range(to_offset, len)?);
        for (at, p) in [(offset, src), (to_offset, dst)] {
            if p.as_ptr() as usize % 16 != 0 {
                return Err(AccessError::Misaligned { offset: at, align: 16 });
            }
        }
        let (src, dst) = (src.as_ptr().cast::<u128>(), dst.as_ptr().cast::<u128>());
        let units = len / 16;
        let mut i = 0;
        // SAFETY: units `0..units` and the bytes after them up to `len` lie
        // in both ranges, which `range` checked inside regions mapped for
        // their lifetimes (readable here, writable in `to`, see `new`), and
        // the units are aligned (checked above). Only raw pointers and
        // volatile accesses, so overlapping ranges are no undefined
        // behaviour; the peer may write the source meanwhile, and we copy
        // what is there.
        unsafe {
            while i + 4 <= units {
                let (a, b, c, d) = (src.add(i).read_volatile(), src.add(i + 1).read_volatile(), src.add(i + 2).read_volatile(), src.add(i + 3).read_volatile());
                dst.add(i).write_volatile(a);
                dst.add(i + 1).write_volatile(b);
                dst.add(i + 2).write_volatile(c);
                dst.add(i + 3).write_volatile(d);
                i += 4;
            }
            while i < units {
                dst.add(i).write_volatile(src.add(i).read_volatile());
                i += 1;
            }
            let (src, dst) = (src.cast::<u8>(), dst.cast::<u8>());
            for b in units * 16..len {
                dst.add(b).write_volatile(src.add(b).read_volatile());
            }
        }
        Ok(())
    }

    /// The 32-bit word at `offset`, for atomic access. It must be 4-byte
    /// aligned in memory.
    pub fn atomic_u32(&self, offset: usize) -> Result<&'a AtomicU32, AccessError> {
        let word = self.range(offset, size_of::<AtomicU32>())?;
        if word.as_ptr() as usize % align_of::<AtomicU32>() != 0 {
            return Err(AccessError::Misaligned { offset, align: align_of::<AtomicU32>() });
        }
        // SAFETY: in bounds and aligned (checked above), valid for reads and
        // writes for 'a (see `new`). This side only ever reaches the word
        // atomically through the returned reference, except through an
        // explicit `write_bytes` over it, which is ordered with our own atomic
        // accesses by program order; the peer is another address space, which
        // the hardware keeps coherent.
        Ok(unsafe { AtomicU32::from_ptr(word.as_ptr().cast::<u32>()) })
    }

    /// A pointer to `[offset, offset + len)`, which must lie in the region.
    #[inline]
    fn range(&self, offset: usize, len: usize) -> Result<NonNull<u8>, AccessError> {
        match offset.checked_add(len) {
            // SAFETY: offset <= len of the region, so the result stays
            // inside (or one past the end of) the region.
            Some(end) if end <= self.len => Ok(unsafe { self.base.add(offset) }),
            _ => Err(AccessError::OutOfBounds { offset, len, region_len: self.len }),
        }
    }
}

/// An empty region: every access is refused. What a PD gets for a region
/// the system maps none of.
impl Default for Shared<'_> {
    fn default() -> Self {
        Shared { base: NonNull::dangling(), len: 0, _memory: PhantomData }
    }
}

impl fmt::Debug for Shared<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shared({:p}, {:#x} bytes)", self.base, self.len)
    }
}

/// What one volatile access moves: `u8`, `u16`, `u32` or `u64`, types
/// every bit pattern of which is valid.
pub trait Word: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! words {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Word for $t {}
    )*};
}
words!(u8, u16, u32, u64);

/// A fixed array of `T` records in shared memory, reached by copy. Reads and
/// writes never fail and never leave the array: an index is taken modulo the
/// length, so even an index a hostile peer made up lands on some slot.
pub struct Slots<'a, T> {
    mem: Shared<'a>,
    len: NonZeroU32,
    /// `len - 1`: what an index is masked with.
    mask: u32,
    _record: PhantomData<T>,
}

// Manual impls: a derive would ask `T: Clone`, which the view does not need.
impl<T> Clone for Slots<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Slots<'_, T> {}

impl<'a, T: FromBytes + IntoBytes + Immutable + Copy> Slots<'a, T> {
    /// `len` records starting at `offset` of `mem`.
    /// `len` must be a power of two, so the slot of an index is a mask away.
    pub fn new(mem: Shared<'a>, offset: usize, len: NonZeroU32) -> Result<Self, AccessError> {
        if !len.is_power_of_two() {
            return Err(AccessError::SlotCount { len: len.get() });
        }
        const { assert!(size_of::<T>() > 0, "a slot holds a record of at least one byte") };
        let bytes = (len.get() as usize).checked_mul(size_of::<T>()).ok_or(AccessError::OutOfBounds {
            offset,
            len: usize::MAX,
            region_len: mem.len(),
        })?;
        let window = mem.window(offset, bytes)?;
        // Aligned slots are copied as whole units (a few wide loads and
        // stores) rather than byte by byte, which is all a strict-alignment
        // target could do with a `u8` pointer.
        let align = align_of::<T>().max(Self::UNIT);
        if window.base.as_ptr() as usize % align != 0 {
            return Err(AccessError::Misaligned { offset, align });
        }
        Ok(Slots { mem: window, len, mask: len.get() - 1, _record: PhantomData })
    }

    pub fn len(&self) -> NonZeroU32 {
        self.len
    }

    /// A private copy of the record in slot `index % len`.
    pub fn get(&self, index: u32) -> T {
        // SAFETY: `slot` is a slot of this array.
        unsafe { Self::read_slot(self.slot(index)) }
    }

    /// Write a copy of `value` into slot `index % len`.
    pub fn set(&self, index: u32, value: &T) {
        // SAFETY: `slot` is a slot of this array.
        unsafe { Self::write_slot(self.slot(index), value) }
    }

    /// Copies of the records in the slots from `index % len` on, which must
    /// not run past the end of the array (`None` if they would): the
    /// slot's address is worked out once.
    #[inline(always)]
    pub fn get_run<const N: usize>(&self, index: u32) -> Option<[T; N]> {
        if self.run(index, N as u32) as usize != N {
            return None;
        }
        let first = self.slot(index);
        // SAFETY: slots `index % len .. + N` are in the array (checked
        // above), so slot `k` of the run is one of its slots.
        Some(core::array::from_fn(|k| unsafe { Self::read_slot(first.add(k * size_of::<T>())) }))
    }

    /// Write `values` into the slots from `index % len` on, which must not
    /// run past the end of the array (`false`, and nothing written, if
    /// they would): the slot's address is worked out once, and the records
    /// go out with fixed offsets from it.
    #[inline(always)]
    pub fn set_run<const N: usize>(&self, index: u32, values: &[T; N]) -> bool {
        if self.run(index, N as u32) as usize != N {
            return false;
        }
        let first = self.slot(index);
        for (k, value) in values.iter().enumerate() {
            // SAFETY: slots `index % len .. + N` are in the array (checked
            // above), so slot `k` of the run is one of its slots.
            unsafe { Self::write_slot(first.add(k * size_of::<T>()), value) }
        }
        true
    }

    /// A private copy of the record at `slot`.
    ///
    /// # Safety
    /// `slot` is the start of a slot of some `Slots<T>`'s array.
    #[inline(always)]
    unsafe fn read_slot(slot: NonNull<u8>) -> T {
        let src = slot.as_ptr();
        let mut copy = T::new_zeroed();
        let dst = copy.as_mut_bytes().as_mut_ptr();
        // SAFETY: a slot is inside the window `new` checked, which is mapped
        // for 'a, and aligned for `T` and for the unit (checked in `new`;
        // slots are whole records apart). `copy` holds the same number of
        // bytes. Any bytes are a valid `T` (`FromBytes`): if the peer writes
        // the slot meanwhile we get some bit pattern, copied once, and
        // checked before use.
        unsafe {
            match Self::UNIT {
                16 => copy_units::<u128>(src, dst, size_of::<T>(), Side::Source),
                8 => copy_units::<u64>(src, dst, size_of::<T>(), Side::Source),
                _ => return src.cast::<T>().read_volatile(),
            }
        }
        copy
    }

    /// Write a copy of `value` into the slot at `slot`.
    ///
    /// # Safety
    /// As for [`read_slot`](Self::read_slot).
    #[inline(always)]
    unsafe fn write_slot(slot: NonNull<u8>, value: &T) {
        let dst = slot.as_ptr();
        let src = value.as_bytes().as_ptr();
        // SAFETY: as in `read_slot`; the region is writable (see
        // `Shared::new`).
        unsafe {
            match Self::UNIT {
                16 => copy_units::<u128>(src, dst, size_of::<T>(), Side::Destination),
                8 => copy_units::<u64>(src, dst, size_of::<T>(), Side::Destination),
                _ => dst.cast::<T>().write_volatile(*value),
            }
        }
    }

    /// Slots from `index % len` to the end of the array, at most `n`: how
    /// many can be reached from `slot(index)` by stepping forward.
    fn run(&self, index: u32, n: u32) -> u32 {
        n.min(self.len.get() - (index & self.mask))
    }

    /// Records of whole 16- or 8-byte units are copied a unit at a time:
    /// fewer loads and stores than field by field (a 16-byte unit is one
    /// load or store pair on aarch64). 1: copied as one `T`.
    const UNIT: usize = if size_of::<T>() % 16 == 0 {
        16
    } else if size_of::<T>() % 8 == 0 {
        8
    } else {
        1
    };

    fn slot(&self, index: u32) -> NonNull<u8> {
        let slot = (index & self.mask) as usize;
        // SAFETY: slot < len, and the window holds len * size_of::<T>()
        // bytes (checked in `new`), so the slot's bytes are inside it.
        unsafe { self.mem.base.add(slot * size_of::<T>()) }
    }
}

/// What [`move_run`] (and `blk`'s `PopBatch::move_into` over it) does
/// with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<U> {
    /// Pop it and push this in its place.
    Push(U),
    /// Pop it and push nothing.
    Pass,
    /// Leave it, and everything after it, in the batch.
    Stop,
}

/// Move records from `src`, starting at index `from`, into `dst`, starting
/// at `to`, as `f` says for each (see [`Step`]): at most `n`, and only as
/// far as neither array wraps around, so the slots are reached by stepping
/// a pointer rather than by masking an index (a forwarding server's hot
/// loop). Returns the records popped from `src`, those pushed into `dst`,
/// and whether `f` stopped. Call again from the new indices for the rest.
#[inline(always)]
pub fn move_run<T, U>(
    src: &Slots<'_, T>,
    from: u32,
    dst: &Slots<'_, U>,
    to: u32,
    n: u32,
    mut f: impl FnMut(T) -> Step<U>,
) -> (u32, u32, bool)
where
    T: FromBytes + IntoBytes + Immutable + Copy,
    U: FromBytes + IntoBytes + Immutable + Copy,
{
    // At most `k` records are popped and at most one pushed per pop, so
    // both pointers stay within the runs `run` measured.
    let k = dst.run(to, src.run(from, n));
    let (first, out) = (src.slot(from), dst.slot(to));
    let (mut next, mut pushed) = (first, out);
    // SAFETY: `k` slots from `first` are inside `src`'s array.
    let end = unsafe { first.add(k as usize * size_of::<T>()) };
    let mut stopped = false;
    while next != end {
        // SAFETY: `next` is before `end`: a slot of `src`.
        match f(unsafe { Slots::<T>::read_slot(next) }) {
            Step::Push(record) => {
                // SAFETY: fewer records pushed than popped from the `k`,
                // and `dst` has `k` slots from `out`: a slot of `dst`.
                unsafe {
                    Slots::<U>::write_slot(pushed, &record);
                    pushed = pushed.add(size_of::<U>());
                }
            }
            Step::Pass => {}
            Step::Stop => {
                stopped = true;
                break;
            }
        }
        // SAFETY: at most `end`, one past the run.
        next = unsafe { next.add(size_of::<T>()) };
    }
    // Byte distances within one array, divided by record sizes (shifts,
    // for the power-of-two sizes of requests and responses).
    let popped = (next.as_ptr() as usize - first.as_ptr() as usize) / size_of::<T>();
    let moved = (pushed.as_ptr() as usize - out.as_ptr() as usize) / size_of::<U>();
    (popped as u32, moved as u32, stopped)
}

/// Which side of a copy is the slot in shared memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// Copy `bytes` bytes between a slot and a private copy, `U` by `U`:
/// volatile on the slot's side, unaligned on the private one. Volatile keeps
/// the compiler from re-reading or tearing shared accesses other than as
/// written, and keeps the copy in integer registers (a 16-byte unit is a
/// pair of them): a plain one may use SIMD registers, and a PD touching
/// those costs a lazy FP switch in the kernel.
///
/// # Safety
/// Both pointers are valid for `bytes` bytes, a multiple of the unit; the
/// slot's pointer is aligned for `U`.
#[inline(always)]
unsafe fn copy_units<U: Copy>(src: *const u8, dst: *mut u8, bytes: usize, slot: Side) {
    let (src, dst) = (src.cast::<U>(), dst.cast::<U>());
    for i in 0..bytes / size_of::<U>() {
        // SAFETY: unit `i` is inside both buffers (the caller's promise);
        // only the slot's side is known to be aligned.
        unsafe {
            match slot {
                Side::Source => dst.add(i).write_unaligned(src.add(i).read_volatile()),
                Side::Destination => dst.add(i).write_volatile(src.add(i).read_unaligned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_slots_is_written_in_place_unless_it_would_wrap() {
        let mut buf = [0u64; 8];
        let mem = Shared::from_words(&mut buf);
        let slots = Slots::<u64>::new(mem, 0, NonZeroU32::new(8).unwrap()).unwrap();
        assert!(slots.set_run(10, &[1, 2, 3]), "slots 2, 3, 4");
        assert!(!slots.set_run(6, &[7, 8, 9]), "6, 7 and then past the end");
        assert!(slots.set_run(5, &[5, 6, 7]));
        assert_eq!((0..8).map(|i| slots.get(i)).collect::<Vec<_>>(), [0, 0, 1, 2, 3, 5, 6, 7]);
        assert_eq!(slots.get_run::<3>(13), Some([5, 6, 7]));
        assert_eq!(slots.get_run::<3>(7), None);
    }

    #[test]
    fn slots_of_16_byte_records_copy_in_pairs_and_need_16_byte_alignment() {
        let mut buf = [0u64; 12];
        let mem = Shared::from_words(&mut buf);
        // The offsets at which the region's address is 16- and only 8-byte
        // aligned.
        let aligned = if mem.base.as_ptr() as usize % 16 == 0 { 0 } else { 8 };
        let misaligned = aligned + 8;
        assert_eq!(
            Slots::<[u64; 2]>::new(mem, misaligned, NonZeroU32::new(2).unwrap()).err(),
            Some(AccessError::Misaligned { offset: misaligned, align: 16 })
        );
        let slots = Slots::<[u64; 2]>::new(mem, aligned, NonZeroU32::new(2).unwrap()).unwrap();
        slots.set(3, &[1, 2]);
        assert_eq!(slots.get(1), [1, 2]);
        assert_eq!(mem.read::<[u64; 2]>(aligned + 16).unwrap(), [1, 2]);
        // 8-byte records need only 8.
        assert!(Slots::<u64>::new(mem, misaligned, NonZeroU32::new(2).unwrap()).is_ok());
    }

    #[test]
    fn reads_and_writes_inside_the_region_round_trip() {
        let mut buf = [0u64; 4];
        let mem = Shared::from_words(&mut buf);
        mem.write_bytes(3, b"abc").unwrap();
        let mut out = [0u8; 3];
        mem.read_bytes(3, &mut out).unwrap();
        assert_eq!(&out, b"abc");
        mem.write(8, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(mem.read::<u64>(8).unwrap(), 0x1122_3344_5566_7788);
        // Records need no alignment: little-endian bytes 77 66 55 44.
        assert_eq!(mem.read::<u32>(9).unwrap(), 0x4455_6677);
    }

    #[test]
    fn accesses_past_the_end_are_refused() {
        let mut buf = [0u64; 2];
        let mem = Shared::from_words(&mut buf);
        assert_eq!(
            mem.write_bytes(15, b"ab"),
            Err(AccessError::OutOfBounds { offset: 15, len: 2, region_len: 16 })
        );
        assert!(mem.read::<u64>(9).is_err());
        assert!(mem.read_bytes(usize::MAX, &mut [0u8; 2]).is_err());
        assert!(mem.window(8, 9).is_err());
        assert!(mem.atomic_u32(13).is_err());
    }

    #[test]
    fn misaligned_atomics_are_refused() {
        let mut buf = [0u64; 2];
        let mem = Shared::from_words(&mut buf);
        assert_eq!(mem.atomic_u32(2).err(), Some(AccessError::Misaligned { offset: 2, align: 4 }));
        assert!(mem.atomic_u32(12).is_ok());
    }

    #[test]
    fn volatile_words_must_be_aligned_and_in_bounds() {
        let mut buf = [0u64; 2];
        let mem = Shared::from_words(&mut buf);
        mem.write_volatile(8, 0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(mem.read_volatile::<u32>(12).unwrap(), 0x1122_3344);
        assert_eq!(mem.read_volatile::<u16>(8).unwrap(), 0x7788);
        assert_eq!(mem.read_volatile::<u8>(15).unwrap(), 0x11);
        assert_eq!(mem.read_volatile::<u32>(6).err(), Some(AccessError::Misaligned { offset: 6, align: 4 }));
        assert_eq!(mem.write_volatile(4, 0u64).err(), Some(AccessError::Misaligned { offset: 4, align: 8 }));
        assert!(mem.read_volatile::<u64>(16).is_err());
        assert!(matches!(mem.read_volatile::<u64>(usize::MAX - 7), Err(AccessError::OutOfBounds { .. })));
        // A region that starts only 4-byte aligned has no aligned 64-bit words.
        let half = mem.window(4, 8).unwrap();
        assert_eq!(half.read_volatile::<u32>(4).unwrap(), 0x5566_7788);
        assert_eq!(half.read_volatile::<u64>(0).err(), Some(AccessError::Misaligned { offset: 0, align: 8 }));
    }

    #[test]
    fn copies_between_regions_take_whole_units_and_the_last_bytes() {
        let (mut a, mut b) = ([0u64; 16], [0u64; 16]);
        let (from, to) = (Shared::from_words(&mut a), Shared::from_words(&mut b));
        let bytes: Vec<u8> = (1..=128).collect();
        from.write_bytes(0, &bytes).unwrap();
        // The regions' own alignment: `from_words` promises 8.
        let at = |m: &Shared| if m.base.as_ptr() as usize % 16 == 0 { 0 } else { 8 };
        let (src, dst) = (at(&from), at(&to));
        from.copy_to(src, &to, dst, 64 + 16 + 5).unwrap();
        let mut out = [0u8; 86];
        to.read_bytes(dst, &mut out).unwrap();
        assert_eq!(&out[..85], &bytes[src..src + 85]);
        assert_eq!(out[85], 0, "nothing past the end");
        assert_eq!(from.copy_to(src + 8, &to, dst, 16).err(), Some(AccessError::Misaligned { offset: src + 8, align: 16 }));
        assert!(from.copy_to(src, &to, dst, 129).is_err(), "longer than either region");
    }

    #[test]
    fn an_empty_region_refuses_every_access() {
        let mem = Shared::default();
        assert!(mem.is_empty());
        assert!(mem.read::<u8>(0).is_err());
        assert!(mem.write_volatile(0, 1u32).is_err());
        assert!(mem.atomic_u32(0).is_err());
    }

    #[test]
    fn windows_are_relative_to_their_start() {
        let mut buf = [0u64; 4];
        let mem = Shared::from_words(&mut buf);
        let w = mem.window(8, 8).unwrap();
        w.write(0, &7u32).unwrap();
        assert_eq!(mem.read::<u32>(8).unwrap(), 7);
        assert!(w.read::<u64>(1).is_err());
    }

    #[test]
    fn slot_indices_wrap_around_the_array() {
        let mut buf = [0u64; 6];
        let mem = Shared::from_words(&mut buf);
        let slots = Slots::<u64>::new(mem, 8, NonZeroU32::new(4).unwrap()).unwrap();
        slots.set(u32::MAX, &42); // u32::MAX % 4 == 3
        assert_eq!(mem.read::<u64>(8 + 3 * 8).unwrap(), 42);
        assert_eq!(slots.get(3), 42);
        assert_eq!(slots.get(7), 42);
        assert!(Slots::<u64>::new(mem, 24, NonZeroU32::new(4).unwrap()).is_err(), "past the end");
        assert_eq!(
            Slots::<u64>::new(mem, 8, NonZeroU32::new(3).unwrap()).err(),
            Some(AccessError::SlotCount { len: 3 }),
            "not a power of two"
        );
    }
}
