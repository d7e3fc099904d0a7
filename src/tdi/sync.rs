//! The synchronisation primitives of the TDI layer's lock-free and spin-locked pieces.
//!
//! [`super::sendref`] and [`super::tsdu`] reach atomics and the spin lock only through this
//! module, so `tests/tdi_loom.rs` can compile those very files (`#[path]`) against a `sync`
//! module of its own that is backed by `loom` and have loom explore their interleavings. Here
//! they are `core::sync::atomic` and a kernel spin lock.
use crate::kernel::{KeAcquireSpinLockRaiseToDpc, KeReleaseSpinLock, KIRQL, KSPIN_LOCK};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

pub use core::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// A `KSPIN_LOCK` protecting a `T`: [`SpinLock::lock`] raises to DISPATCH_LEVEL and the guard
/// restores the previous IRQL. Usable at IRQL <= DISPATCH_LEVEL; the `SpinLock` itself must live
/// in non-paged memory (all driver allocations are non-paged). Never block, wait or call into
/// the engine while holding one.
pub struct SpinLock<T> {
    lock: UnsafeCell<KSPIN_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through the guard, which holds the spin lock (mutual
// exclusion across CPUs, and DISPATCH_LEVEL excludes preemption on this CPU).
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves its data; the lock word is plain memory when not held.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A released lock around `data` (`KeInitializeSpinLock` sets the word to 0).
    pub const fn new(data: T) -> Self {
        SpinLock {
            lock: UnsafeCell::new(0),
            data: UnsafeCell::new(data),
        }
    }

    /// Acquires the lock (IRQL <= DISPATCH_LEVEL; raises to DISPATCH_LEVEL).
    pub fn lock(&self) -> SpinGuard<'_, T> {
        // SAFETY: the lock word is valid, initialised and non-paged for the lock's lifetime;
        // KeAcquireSpinLockRaiseToDpc is callable at IRQL <= DISPATCH_LEVEL.
        let old = unsafe { KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        SpinGuard { lock: self, old }
    }
}

/// Holds a [`SpinLock`]; releases it and restores the IRQL on drop.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    old: KIRQL,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no one else reaches the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we hold the lock, acquired with KeAcquireSpinLockRaiseToDpc which returned
        // `old`; releasing restores that IRQL.
        unsafe { KeReleaseSpinLock(self.lock.lock.get(), self.old) };
    }
}
