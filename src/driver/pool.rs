//! The kernel pool allocator behind `alloc` (`Box`, `Vec`, …) in the driver image.
//!
//! Every allocation is `NonPagedPoolNx` (usable at any IRQL <= DISPATCH_LEVEL, never executable)
//! with pool tag `Tdin`, so `!poolused`/poolmon attribute it to tdinal and Driver Verifier can
//! track leaks at unload. `ExAllocatePoolWithTag` is used rather than `ExAllocatePool2` because it
//! exists on every Windows version and is the one the speakeasy emulator implements; it does
//! not zero memory, which `GlobalAlloc::alloc` does not promise either.
//!
//! Pool blocks are 16-byte aligned (`MEMORY_ALLOCATION_ALIGNMENT`); a larger alignment is served
//! by over-allocating and keeping the pool pointer in the word just below the aligned block.
//! A live-allocation counter lets `DriverUnload` report leaks.
use core::sync::atomic::{AtomicUsize, Ordering};

/// Pool tag `Tdin`: the bytes in memory read "Tdin", as pool tools display it.
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"Tdin");

/// Alignment every pool block has on x64.
pub const POOL_ALIGN: usize = 16;

/// Allocations handed out and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Number of live allocations (for the leak report at unload).
pub fn live_allocations() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// For an over-aligned request: the pool size to ask for, or `None` on overflow. The extra
/// `align` bytes leave room to move to an `align` boundary with at least one word before it.
pub fn over_aligned_size(size: usize, align: usize) -> Option<usize> {
    size.checked_add(align)
}

/// For an over-aligned request: the aligned address inside a pool block at `raw` (which is
/// [`POOL_ALIGN`]-aligned). The result is strictly above `raw` by at least `POOL_ALIGN` bytes and
/// at most `align` bytes, so the word below it is inside the block.
pub fn over_aligned_addr(raw: usize, align: usize) -> usize {
    debug_assert!(align.is_power_of_two() && align > POOL_ALIGN);
    (raw + align) & !(align - 1)
}

/// The `#[global_allocator]` of the driver image.
pub struct PoolAllocator;

#[cfg(target_os = "windows")]
mod imp {
    use super::{over_aligned_addr, over_aligned_size, PoolAllocator, LIVE, POOL_ALIGN, POOL_TAG};
    use crate::kernel::{ExAllocatePoolWithTag, ExFreePoolWithTag, NON_PAGED_POOL_NX};
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::Ordering;

    fn pool_alloc(size: usize) -> *mut u8 {
        // SAFETY: non-paged pool may be allocated at IRQL <= DISPATCH_LEVEL, where all driver
        // code that allocates runs; a null result is passed on as allocation failure.
        let p = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size, POOL_TAG) };
        p.cast()
    }

    // SAFETY: blocks come from the pool, are at least `layout.size()` bytes, aligned to
    // `layout.align()` (directly for <= 16, by over-allocation otherwise) and are freed only
    // through `dealloc` with the same layout, which undoes exactly what `alloc` did.
    unsafe impl GlobalAlloc for PoolAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = if layout.align() <= POOL_ALIGN {
                pool_alloc(layout.size())
            } else {
                let Some(size) = over_aligned_size(layout.size(), layout.align()) else {
                    return core::ptr::null_mut();
                };
                let raw = pool_alloc(size);
                if raw.is_null() {
                    return raw;
                }
                let aligned = over_aligned_addr(raw as usize, layout.align());
                let user = raw.wrapping_add(aligned - raw as usize);
                // SAFETY: `user` is at least 16 bytes into the block, so the word below it is
                // inside the block and 8-aligned.
                unsafe { user.cast::<*mut u8>().sub(1).write(raw) };
                user
            };
            if !p.is_null() {
                LIVE.fetch_add(1, Ordering::Relaxed);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let raw = if layout.align() <= POOL_ALIGN {
                ptr
            } else {
                // SAFETY: `alloc` stored the pool pointer in the word below `ptr`.
                unsafe { ptr.cast::<*mut u8>().sub(1).read() }
            };
            LIVE.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: `raw` is a live block from ExAllocatePoolWithTag with our tag; freeing
            // non-paged pool is allowed at IRQL <= DISPATCH_LEVEL.
            unsafe { ExFreePoolWithTag(raw.cast(), POOL_TAG) };
        }
    }

    /// The allocator of the kernel image (not of host builds, which use std's).
    #[cfg(not(feature = "std"))]
    #[global_allocator]
    static ALLOCATOR: PoolAllocator = PoolAllocator;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_bytes() {
        assert_eq!(POOL_TAG.to_le_bytes(), *b"Tdin");
        assert_eq!(POOL_TAG, 0x6e69_6454);
    }

    #[test]
    fn over_alignment_stays_inside_block() {
        for align in [32usize, 64, 4096, 1 << 16] {
            for raw in (0x1000usize..0x1000 + 2 * align).step_by(POOL_ALIGN) {
                let size = 100;
                let total = over_aligned_size(size, align).unwrap();
                let a = over_aligned_addr(raw, align);
                assert_eq!(a % align, 0);
                assert!(a >= raw + POOL_ALIGN, "room for the back pointer");
                assert!(a + size <= raw + total, "block end");
            }
        }
        assert_eq!(over_aligned_size(usize::MAX, 32), None);
    }
}
