//! Memory shared with other PDs, reached only through bounds-checked copies.

/// A memory region mapped into this PD, as `system.xml` declares it.
/// Other PDs may write it at any time, so values are copied in and out,
/// never borrowed.
#[derive(Clone, Copy, Debug)]
pub struct SharedMemory {
    base: usize,
    size: usize,
}

/// An access outside the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    pub offset: usize,
    pub len: usize,
    pub size: usize,
}

impl SharedMemory {
    /// # Safety
    /// `[base, base + size)` must be mapped in this PD for its whole life
    /// and used only through `SharedMemory` values.
    pub const unsafe fn new(base: usize, size: usize) -> Self {
        SharedMemory { base, size }
    }

    pub fn base(&self) -> usize {
        self.base
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn check(&self, offset: usize, len: usize) -> Result<*mut u8, OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok((self.base + offset) as *mut u8),
            _ => Err(OutOfBounds { offset, len, size: self.size }),
        }
    }

    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let p = self.check(offset, out.len())?;
        // SAFETY: in bounds of a mapped region (see `new`); `out` is ours.
        unsafe { core::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Write `data` at `offset`. Writing a region mapped read-only faults,
    /// like any store to it.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        let p = self.check(offset, data.len())?;
        // SAFETY: in bounds of a mapped region (see `new`).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    pub fn read_u8(&self, offset: usize) -> Result<u8, OutOfBounds> {
        let p = self.check(offset, 1)?;
        // SAFETY: in bounds of a mapped region (see `new`).
        Ok(unsafe { core::ptr::read_volatile(p) })
    }

    pub fn write_u8(&self, offset: usize, value: u8) -> Result<(), OutOfBounds> {
        let p = self.check(offset, 1)?;
        // SAFETY: in bounds of a mapped region (see `new`).
        unsafe { core::ptr::write_volatile(p, value) };
        Ok(())
    }

    pub fn read_u16(&self, offset: usize) -> Result<u16, OutOfBounds> {
        let p = self.check_aligned(offset, 2)?;
        // SAFETY: in bounds and aligned.
        Ok(unsafe { core::ptr::read_volatile(p as *const u16) })
    }

    pub fn write_u16(&self, offset: usize, value: u16) -> Result<(), OutOfBounds> {
        let p = self.check_aligned(offset, 2)?;
        // SAFETY: in bounds and aligned.
        unsafe { core::ptr::write_volatile(p as *mut u16, value) };
        Ok(())
    }

    /// In bounds and aligned to `len` (device memory needs both).
    fn check_aligned(&self, offset: usize, len: usize) -> Result<*mut u8, OutOfBounds> {
        let p = self.check(offset, len)?;
        if (self.base + offset) % len != 0 {
            return Err(OutOfBounds { offset, len, size: self.size });
        }
        Ok(p)
    }

    /// A 32-bit access, as device registers need.
    pub fn read_u32(&self, offset: usize) -> Result<u32, OutOfBounds> {
        let p = self.check_aligned(offset, 4)?;
        // SAFETY: in bounds and aligned (device memory needs both).
        Ok(unsafe { core::ptr::read_volatile(p as *const u32) })
    }

    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), OutOfBounds> {
        let p = self.check_aligned(offset, 4)?;
        // SAFETY: as in `read_u32`.
        unsafe { core::ptr::write_volatile(p as *mut u32, value) };
        Ok(())
    }

    pub fn read_u64(&self, offset: usize) -> Result<u64, OutOfBounds> {
        let p = self.check(offset, 8)?;
        // SAFETY: in bounds; unaligned accesses are allowed on normal
        // (cached) memory, which is what 64-bit fields live in.
        Ok(unsafe { core::ptr::read_volatile(p as *const u64) })
    }

    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), OutOfBounds> {
        let p = self.check(offset, 8)?;
        // SAFETY: in bounds (see `read_u64`).
        unsafe { core::ptr::write_volatile(p as *mut u64, value) };
        Ok(())
    }
}

/// Declare a shared region of `size` bytes whose address the tool patches
/// in (`setvar_vaddr="name"` on the map), and a function `name()` that
/// returns it as [`SharedMemory`].
///
/// ```ignore
/// microkit::memory_region!(request: 0x1000);
/// request().write(0, b"hello")?;
/// ```
#[macro_export]
macro_rules! memory_region {
    ($name:ident: $size:expr) => {
        fn $name() -> $crate::SharedMemory {
            #[no_mangle]
            #[link_section = ".data"]
            #[used]
            static mut $name: usize = 0;
            #[allow(unsafe_code)]
            // SAFETY: the tool patches the symbol with the address at which
            // the system description maps the region; an unpatched symbol
            // stays 0, which is never mapped, so accesses fault.
            unsafe {
                $crate::SharedMemory::new(core::ptr::read_volatile(core::ptr::addr_of!($name)), $size)
            }
        }
    };
}
