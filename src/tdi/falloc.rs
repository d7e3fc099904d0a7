//! Fallible allocation for code that runs at DISPATCH_LEVEL (event handlers, completion
//! routines, and what they call).
//!
//! In the driver the global allocator is `ExAllocatePoolWithTag(NonPagedPoolNx)`
//! (`driver/pool.rs`), which returns NULL when pool runs short; `Box::new`, `vec!` and
//! `Vec::push` answer NULL with the allocation-error handler, i.e. a bug check. At
//! DISPATCH_LEVEL nothing can wait for memory either, so every allocation there must be able to
//! fail and take a refusal path instead (`conn::refuse` for a receive indication).
//!
//! - [`PoolBox`]: a box in non-paged pool allocated with `ExAllocatePoolWithTag` through the
//!   kernel seam and checked for NULL (`Box::try_new` is unstable). Going through the seam
//!   rather than the global allocator is what lets the emulation fail it the way the pool
//!   would (`emu::fail_dispatch_allocations`), with the same code in both builds; in the
//!   driver it is the same pool, same tag, as every other allocation.
//! - [`try_buf`]: a `Vec<u8>` reserved with `try_reserve_exact` (fallible; the emulation's
//!   knob does not reach the host allocator behind it).

use crate::kernel::{ExAllocatePoolWithTag, ExFreePoolWithTag, NON_PAGED_POOL_NX};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// Pool tag `Tdin`, the driver's (`driver::pool::POOL_TAG`).
const TAG: u32 = u32::from_le_bytes(*b"Tdin");

/// Alignment of every pool block on x64 (`MEMORY_ALLOCATION_ALIGNMENT`).
const POOL_ALIGN: usize = 16;

/// A `T` in its own non-paged pool block, freed (after dropping the `T`) on drop.
pub struct PoolBox<T>(NonNull<T>);

// SAFETY: a PoolBox owns its T like a Box does.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Moves `v` into a fresh pool block; gives `v` back when the pool has no memory (so the
    /// caller can free what it holds). Any IRQL <= DISPATCH_LEVEL.
    pub fn try_new(v: T) -> Result<PoolBox<T>, T> {
        if core::mem::align_of::<T>() > POOL_ALIGN {
            return Err(v);
        }
        let size = core::mem::size_of::<T>().max(1);
        // SAFETY: non-paged pool may be allocated at IRQL <= DISPATCH_LEVEL; NULL is handled.
        let p = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size, TAG) }.cast::<T>();
        let Some(p) = NonNull::new(p) else {
            return Err(v);
        };
        // SAFETY: a fresh block of at least size_of::<T>() bytes, 16-aligned (>= align_of T).
        unsafe { p.as_ptr().write(v) };
        Ok(PoolBox(p))
    }

    /// Gives up ownership: the block must come back through [`PoolBox::from_raw`] once.
    pub fn into_raw(self) -> *mut T {
        let me = core::mem::ManuallyDrop::new(self);
        me.0.as_ptr()
    }

    /// Takes back a block from [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and is taken back once.
    pub unsafe fn from_raw(p: *mut T) -> PoolBox<T> {
        // SAFETY: from into_raw, so non-null and owned (the caller's contract).
        PoolBox(unsafe { NonNull::new_unchecked(p) })
    }

    /// Moves the value out and frees the block.
    pub fn into_inner(self) -> T {
        let p = self.into_raw();
        // SAFETY: ours; the value is read once and the block freed without dropping it again.
        unsafe {
            let v = p.read();
            ExFreePoolWithTag(p.cast(), TAG);
            v
        }
    }
}

impl<T> core::ops::Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a live, initialised T we own.
        unsafe { self.0.as_ref() }
    }
}

impl<T> core::ops::DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a live, initialised T we own exclusively.
        unsafe { self.0.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: a live T in our block: dropped once, then the block freed once (any IRQL <=
        // DISPATCH_LEVEL for non-paged pool).
        unsafe {
            core::ptr::drop_in_place(self.0.as_ptr());
            ExFreePoolWithTag(self.0.as_ptr().cast(), TAG);
        }
    }
}

/// A `Vec<u8>` with room for exactly `len` bytes (length 0), or `None` when memory is short.
/// Any IRQL <= DISPATCH_LEVEL.
pub fn try_buf(len: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    Some(v)
}
