//! [`PassiveLock`]: a sleeping lock that keeps its holder at PASSIVE_LEVEL, for the control
//! paths (ioctls, the NAL interface query) that may call into the kernel runtime, which creates
//! TDI objects with `ZwCreateFile` (PASSIVE_LEVEL only) and waits for connections.
//!
//! It is a synchronization event, signalled while free: `lock` waits for it (the wait
//! auto-resets it, admitting one thread), dropping the guard sets it again. A `FAST_MUTEX` would
//! raise the holder to APC_LEVEL and a spin lock to DISPATCH_LEVEL, both wrong here. Only
//! `KeInitializeEvent`, `KeWaitForSingleObject` and `KeSetEvent` are needed (all modelled by the
//! emulator). Waiters wait in kernel mode, not alertable, without a timeout.
use crate::kernel::{
    nt_success, KeInitializeEvent, KeSetEvent, KeWaitForSingleObject, EXECUTIVE, FALSE,
    KERNEL_MODE, KEVENT, SYNCHRONIZATION_EVENT, TRUE,
};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// A `T` behind a synchronization event. Must live in non-paged memory and not move after
/// [`PassiveLock::init`] (it lives in the pool-allocated driver state).
pub struct PassiveLock<T> {
    event: UnsafeCell<KEVENT>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through a guard, and the event admits one guard at a time.
unsafe impl<T: Send> Sync for PassiveLock<T> {}
// SAFETY: moving the lock (before init, or when no guard exists) moves its data.
unsafe impl<T: Send> Send for PassiveLock<T> {}

impl<T> PassiveLock<T> {
    /// A lock around `data`; call [`PassiveLock::init`] once it is at its final address.
    pub fn new(data: T) -> Self {
        PassiveLock {
            // SAFETY: KEVENT is plain data (integers and list pointers); all-zero is a valid
            // bit pattern, and init() sets it up before any use.
            event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            data: UnsafeCell::new(data),
        }
    }

    /// Initialises the event, signalled (free).
    ///
    /// # Safety
    /// Once, before any [`PassiveLock::lock`], with the lock at its final, non-paged address.
    pub unsafe fn init(&self) {
        // SAFETY: the event is ours, in place and unused (caller's contract).
        unsafe { KeInitializeEvent(self.event.get(), SYNCHRONIZATION_EVENT, TRUE) };
    }

    /// Waits for the lock (IRQL PASSIVE_LEVEL; the holder stays at PASSIVE_LEVEL).
    pub fn lock(&self) -> Option<PassiveGuard<'_, T>> {
        // SAFETY: the event was initialised (init's contract) and lives as long as `self`; a
        // non-alertable kernel-mode wait without timeout at PASSIVE_LEVEL is allowed.
        let status = unsafe {
            KeWaitForSingleObject(
                self.event.get().cast(),
                EXECUTIVE,
                KERNEL_MODE,
                FALSE,
                core::ptr::null_mut(),
            )
        };
        nt_success(status).then_some(PassiveGuard { lock: self })
    }

    /// The data, without locking: for the only owner (DriverEntry before the device is
    /// reachable, DriverUnload after every handle is closed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Holds a [`PassiveLock`]; releases it on drop.
pub struct PassiveGuard<'a, T> {
    lock: &'a PassiveLock<T>,
}

impl<T> Deref for PassiveGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other reference to the data exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for PassiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for deref, and the guard is borrowed mutably.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for PassiveGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the event is initialised; signalling a synchronization event admits the next
        // waiter (or leaves it signalled). Wait = FALSE: no wait call follows immediately.
        unsafe { KeSetEvent(self.lock.event.get(), 0, FALSE) };
    }
}
