//! TDI client object management (HLD §2.1): the transport's file objects opened with
//! `ZwCreateFile` on `\Device\Tcp` — address objects (EA `TransportAddress`), connection objects
//! (EA `ConnectionContext`), the control channel — and the synchronous requests on them
//! (associate, disassociate, set event handler, query address, disconnect), plus the kernel
//! event and system-thread helpers the runtime uses.
//!
//! Everything here runs at PASSIVE_LEVEL (`ZwCreateFile`, `ObReferenceObjectByHandle`, waits).
//! Close order: connection objects first (disconnected, disassociated, handle closed, IRPs
//! drained, reference dropped), then the address object
//! they were associated with.
// Handles and object pointers here are opaque kernel tokens passed on to the kernel, never
// dereferenced by these functions.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use super::bindings::*;
use crate::kernel::{wide, *};
use core::cell::UnsafeCell;
use core::ffi::c_void;

/// An open transport object: the kernel handle, the referenced file object and the transport
/// device to send IRPs to.
#[derive(Debug)]
pub struct TdiObject {
    pub handle: HANDLE,
    pub file: *mut FILE_OBJECT,
    pub device: *mut DEVICE_OBJECT,
}

// SAFETY: handles and referenced object pointers may be used from any thread of the driver.
unsafe impl Send for TdiObject {}
// SAFETY: as above; the object is immutable once opened.
unsafe impl Sync for TdiObject {}

impl TdiObject {
    /// Stack locations an IRP for this object needs.
    pub fn stack_size(&self) -> i8 {
        // SAFETY: the device object is referenced through our file object reference.
        unsafe { (*self.device).StackSize }
    }
}

static TCP_NAME: &[u16] = wide!("\\Device\\Tcp");

fn open(ea: &mut [u8]) -> Result<TdiObject, NTSTATUS> {
    let mut name = UNICODE_STRING::from_static(TCP_NAME);
    let mut oa = InitializeObjectAttributes(
        &mut name,
        OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        core::ptr::null_mut(),
        core::ptr::null_mut(),
    );
    let mut handle: HANDLE = core::ptr::null_mut();
    let mut iosb = IO_STATUS_BLOCK {
        u: IO_STATUS_BLOCK_0 { Status: 0 },
        Information: 0,
    };
    let (ea_ptr, ea_len) = if ea.is_empty() {
        (core::ptr::null_mut(), 0)
    } else {
        (ea.as_mut_ptr().cast::<c_void>(), ea.len() as u32)
    };
    // SAFETY: PASSIVE_LEVEL; every pointer is valid for the call (the EA buffer is copied by
    // the I/O manager); a kernel handle is requested.
    let status = unsafe {
        ZwCreateFile(
            &mut handle,
            GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE,
            &mut oa,
            &mut iosb,
            core::ptr::null_mut(),
            FILE_ATTRIBUTE_NORMAL,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            FILE_OPEN_IF,
            0,
            ea_ptr,
            ea_len,
        )
    };
    if !nt_success(status) {
        return Err(status);
    }
    let mut file: *mut c_void = core::ptr::null_mut();
    // SAFETY: `handle` is the kernel handle just opened; PASSIVE_LEVEL.
    let status = unsafe {
        ObReferenceObjectByHandle(
            handle,
            GENERIC_READ | GENERIC_WRITE,
            core::ptr::null_mut(),
            KERNEL_MODE,
            &mut file,
            core::ptr::null_mut(),
        )
    };
    if !nt_success(status) {
        // SAFETY: our handle, closed once.
        unsafe { ZwClose(handle) };
        return Err(status);
    }
    let file = file.cast::<FILE_OBJECT>();
    // SAFETY: a referenced file object.
    let device = unsafe { IoGetRelatedDeviceObject(file) };
    Ok(TdiObject {
        handle,
        file,
        device,
    })
}

/// Opens an address object for `ip:port` (host order; port 0 = any).
/// `STATUS_ADDRESS_ALREADY_EXISTS` (or `STATUS_SHARING_VIOLATION`) when the port is taken.
pub fn open_address(ip: u32, port: u16) -> Result<TdiObject, NTSTATUS> {
    let mut ea = [0u8; ADDRESS_EA_LEN];
    let value = ta_ip_address_bytes(&TA_IP_ADDRESS::new(ip, port));
    write_ea(&mut ea, TDI_TRANSPORT_ADDRESS, &value).ok_or(STATUS_INVALID_PARAMETER)?;
    open(&mut ea)
}

/// Opens a connection object whose event indications will carry `context`.
pub fn open_connection(context: *mut c_void) -> Result<TdiObject, NTSTATUS> {
    let mut ea = [0u8; CONNECTION_EA_LEN];
    let value = (context as usize).to_le_bytes();
    write_ea(&mut ea, TDI_CONNECTION_CONTEXT, &value).ok_or(STATUS_INVALID_PARAMETER)?;
    open(&mut ea)
}

/// Opens the transport's control channel (no EA).
pub fn open_control() -> Result<TdiObject, NTSTATUS> {
    open(&mut [])
}

/// Closes an object: the handle, then our reference (see [`close_after`]). PASSIVE_LEVEL.
pub fn close(obj: TdiObject) {
    close_after(obj, || true);
}

/// Closes an object's handle — the last one, so the transport's cleanup (`IRP_MJ_CLEANUP`)
/// completes what is still pending on it and stops its indications — then runs `drain` (which
/// waits until every IRP the driver sent for the object has come back and says whether they
/// did), and only then drops the driver's reference to the file object. The IRPs the driver
/// allocates do not reference the file object their stack location names; the driver's own
/// reference keeps it (and the transport's state behind it) alive until the last of them has
/// completed, however late the transport completes them after the cleanup. If `drain` gives
/// up, the reference is kept (leaked) rather than dropped under an outstanding IRP.
/// PASSIVE_LEVEL.
pub fn close_after(obj: TdiObject, drain: impl FnOnce() -> bool) {
    // SAFETY: our kernel handle, closed once; PASSIVE_LEVEL.
    unsafe { ZwClose(obj.handle) };
    if drain() {
        // SAFETY: our reference from ObReferenceObjectByHandle, released once; PASSIVE_LEVEL.
        unsafe { ObfDereferenceObject(obj.file.cast()) };
    }
}

/// A kernel event in non-paged memory (inside a `Box` or another pinned allocation).
pub struct KEvent(UnsafeCell<KEVENT>);

// SAFETY: a KEVENT is designed to be signalled and waited on from any thread.
unsafe impl Sync for KEvent {}
// SAFETY: as above.
unsafe impl Send for KEvent {}

impl KEvent {
    /// A synchronization (auto-reset) or notification event, not signalled unless `signalled`.
    /// The returned box must not move its contents (it does not: `KEvent` is used by reference).
    pub fn new(synchronization: bool, signalled: bool) -> alloc::boxed::Box<KEvent> {
        // SAFETY: KEVENT is plain data, initialised right below.
        let e = alloc::boxed::Box::new(KEvent(UnsafeCell::new(unsafe { core::mem::zeroed() })));
        let ty = if synchronization {
            SYNCHRONIZATION_EVENT
        } else {
            NOTIFICATION_EVENT
        };
        // SAFETY: fresh, pinned (boxed) storage; IRQL <= DISPATCH_LEVEL.
        unsafe { KeInitializeEvent(e.0.get(), ty, u8::from(signalled)) };
        e
    }

    pub fn as_ptr(&self) -> *mut KEVENT {
        self.0.get()
    }

    /// Signals the event (IRQL <= DISPATCH_LEVEL).
    pub fn set(&self) {
        // SAFETY: an initialised event; Wait = FALSE is allowed at DISPATCH_LEVEL.
        unsafe { KeSetEvent(self.0.get(), 0, FALSE) };
    }

    /// Waits up to `ms` milliseconds (`None`: forever). PASSIVE_LEVEL only. True if signalled.
    pub fn wait(&self, ms: Option<u32>) -> bool {
        let mut t = LARGE_INTEGER {
            QuadPart: -(i64::from(ms.unwrap_or(0)).saturating_mul(10_000)),
        };
        let tp: *mut LARGE_INTEGER = if ms.is_some() {
            &mut t
        } else {
            core::ptr::null_mut()
        };
        // SAFETY: an initialised event; PASSIVE_LEVEL (the caller's contract).
        let st = unsafe {
            KeWaitForSingleObject(self.0.get().cast(), EXECUTIVE, KERNEL_MODE, FALSE, tp)
        };
        st == STATUS_SUCCESS
    }
}

unsafe extern "system" fn sync_complete(
    _device: *mut DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the caller's event, alive until it was signalled and waited for.
    unsafe { KeSetEvent(context.cast::<KEVENT>(), 0, FALSE) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Sends a request built by `build` (which gets the IRP, the completion routine and its context)
/// to `obj`'s device and waits for it. Returns the IRP's final status and information.
/// PASSIVE_LEVEL.
pub fn call_sync(
    obj: &TdiObject,
    build: impl FnOnce(*mut IRP, Option<IO_COMPLETION_ROUTINE>, *mut c_void),
) -> (NTSTATUS, usize) {
    // SAFETY: IRQL <= DISPATCH_LEVEL; the device's stack size is what the transport needs.
    let irp = unsafe { IoAllocateIrp(obj.stack_size(), FALSE) };
    if irp.is_null() {
        return (STATUS_INSUFFICIENT_RESOURCES, 0);
    }
    let ev = KEvent::new(false, false);
    build(irp, Some(sync_complete), ev.as_ptr().cast());
    // SAFETY: a fully built IRP for this device; the completion routine always runs (invoked
    // on success, error and cancel) and returns STATUS_MORE_PROCESSING_REQUIRED, so the IRP is
    // ours again once the event is signalled, whatever IofCallDriver returned.
    unsafe { IofCallDriver(obj.device, irp) };
    ev.wait(None);
    // SAFETY: completed and handed back to us by the completion routine.
    let (status, info) = unsafe { ((*irp).IoStatus.u.Status, (*irp).IoStatus.Information) };
    // SAFETY: ours, freed once.
    unsafe { IoFreeIrp(irp) };
    (status, info)
}

/// `TDI_ASSOCIATE_ADDRESS`: associates connection object `conn` with the address object
/// behind `address`.
pub fn associate(conn: &TdiObject, address: HANDLE) -> NTSTATUS {
    call_sync(conn, |irp, c, ctx| {
        // SAFETY: a fresh IRP sized for the device.
        unsafe { tdi_build_associate_address(irp, conn.device, conn.file, c, ctx, address) }
    })
    .0
}

/// `TDI_DISASSOCIATE_ADDRESS`.
pub fn disassociate(conn: &TdiObject) -> NTSTATUS {
    call_sync(conn, |irp, c, ctx| {
        // SAFETY: a fresh IRP sized for the device.
        unsafe { tdi_build_disassociate_address(irp, conn.device, conn.file, c, ctx) }
    })
    .0
}

/// `TDI_SET_EVENT_HANDLER` on an address object (`handler` null removes it).
pub fn set_event_handler(
    address: &TdiObject,
    event_type: i32,
    handler: *mut c_void,
    context: *mut c_void,
) -> NTSTATUS {
    call_sync(address, |irp, c, ctx| {
        // SAFETY: a fresh IRP sized for the device; the handler has the event's signature
        // (the caller's contract) and outlives the registration.
        unsafe {
            tdi_build_set_event_handler(
                irp,
                address.device,
                address.file,
                c,
                ctx,
                event_type,
                handler,
                context,
            )
        }
    })
    .0
}

/// How long a request cancelled by the driver may take to come back before its IRP is given
/// up (leaked rather than freed while the transport may still hold it).
const CANCELLED_RETURN_MS: u32 = 20_000;

/// A graceful `TDI_DISCONNECT` bounded by `timeout_ms` (PASSIVE_LEVEL). The timeout is passed
/// to the transport as the request's `Time` (*TdiBuildDisconnect*; the request may then end
/// with `STATUS_REQUEST_TIMED_OUT`) and the wait is bounded by it too, not trusting the
/// transport to honour it: when it expires, the IRP (ours, from `IoAllocateIrp`) is cancelled
/// with `IoCancelIrp` and the connection aborted with `TDI_DISCONNECT_ABORT`, then the IRP is
/// awaited (it stays ours: the completion routine returns `STATUS_MORE_PROCESSING_REQUIRED`
/// and only signals). If even that does not bring it back within `CANCELLED_RETURN_MS`, the
/// IRP, its event and its timeout are leaked rather than freed under the transport. Returns
/// the status and whether the timeout expired.
pub fn disconnect_release_bounded(conn: &TdiObject, timeout_ms: u32) -> (NTSTATUS, bool) {
    // SAFETY: IRQL <= DISPATCH_LEVEL; the device's stack size is what the transport needs.
    let irp = unsafe { IoAllocateIrp(conn.stack_size(), FALSE) };
    if irp.is_null() {
        return (STATUS_INSUFFICIENT_RESOURCES, false);
    }
    let ev = KEvent::new(false, false);
    let time = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(LARGE_INTEGER {
        QuadPart: 0i64.saturating_sub(i64::from(timeout_ms).saturating_mul(10_000)),
    }));
    // SAFETY: a fresh IRP sized for the device; the timeout and the event live until the IRP
    // is back (or are leaked with it).
    unsafe {
        tdi_build_disconnect(
            irp,
            conn.device,
            conn.file,
            Some(sync_complete),
            ev.as_ptr().cast(),
            time,
            TDI_DISCONNECT_RELEASE,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        IofCallDriver(conn.device, irp);
    }
    let timed_out = !ev.wait(Some(timeout_ms));
    let back = if timed_out {
        // SAFETY: our own IRP, still allocated (freed only below, after its event).
        unsafe { IoCancelIrp(irp) };
        let _ = disconnect(conn, TDI_DISCONNECT_ABORT);
        ev.wait(Some(CANCELLED_RETURN_MS))
    } else {
        true
    };
    if !back {
        core::mem::forget(ev);
        return (STATUS_IO_TIMEOUT, true);
    }
    // SAFETY: completed and handed back to us by the completion routine; freed once, with
    // the timeout it referenced.
    let status = unsafe {
        let s = (*irp).IoStatus.u.Status;
        IoFreeIrp(irp);
        drop(alloc::boxed::Box::from_raw(time));
        s
    };
    (
        if timed_out { STATUS_IO_TIMEOUT } else { status },
        timed_out,
    )
}

/// `TDI_DISCONNECT` with `flags` (`TDI_DISCONNECT_RELEASE` or `_ABORT`), no timeout.
pub fn disconnect(conn: &TdiObject, flags: u32) -> NTSTATUS {
    call_sync(conn, |irp, c, ctx| {
        // SAFETY: a fresh IRP sized for the device; no connection information.
        unsafe {
            tdi_build_disconnect(
                irp,
                conn.device,
                conn.file,
                c,
                ctx,
                core::ptr::null_mut(),
                flags,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            )
        }
    })
    .0
}

/// `TDI_QUERY_INFORMATION(TDI_QUERY_ADDRESS_INFO)`: the object's local IPv4 address and port
/// (host order).
pub fn query_address(obj: &TdiObject) -> Result<(u32, u16), NTSTATUS> {
    // In pool, not on the stack: MmBuildMdlForNonPagedPool must not describe a kernel-stack
    // buffer, even one the driver knows is resident (its reference page, Remarks).
    let mut buf: alloc::boxed::Box<[u8; 64]> = alloc::boxed::Box::new([0u8; 64]);
    // SAFETY: IRQL <= DISPATCH_LEVEL; `buf` outlives the MDL, which is freed below.
    let mdl = unsafe {
        IoAllocateMdl(
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            FALSE,
            FALSE,
            core::ptr::null_mut(),
        )
    };
    if mdl.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `buf` is driver pool, which is non-paged (NonPagedPoolNx).
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let (status, info) = call_sync(obj, |irp, c, ctx| {
        // SAFETY: a fresh IRP; the MDL stays valid until completion.
        unsafe {
            tdi_build_query_information(
                irp,
                obj.device,
                obj.file,
                c,
                ctx,
                TDI_QUERY_ADDRESS_INFO,
                mdl,
            )
        }
    });
    // SAFETY: ours, not referenced by any IRP any more.
    unsafe { IoFreeMdl(mdl) };
    if !nt_success(status) {
        return Err(status);
    }
    // TDI_ADDRESS_INFO: ActivityCount (4 bytes), then the TRANSPORT_ADDRESS.
    buf.get(4..info.min(buf.len()))
        .and_then(parse_transport_address)
        .ok_or(STATUS_INVALID_ADDRESS)
}

/// Ends the calling system thread with `PsTerminateSystemThread`, which is how a thread
/// created with `PsCreateSystemThread` terminates itself (the routine's page). PASSIVE_LEVEL.
///
/// Call it as the last statement of a start routine whose body ran in a function of its own,
/// so that every value the thread owned has been dropped when the body returned: in the kernel
/// the call does not return, and a value still alive in the caller's frame would never be
/// dropped (its destructor skipped, its memory and references leaked). The emulation cannot
/// end a Rust thread from the inside soundly (`pthread_exit` would force-unwind through
/// frames with destructors), so its `PsTerminateSystemThread` records the termination, checks
/// that no kernel routine is called afterwards, and returns; the start routine then returns to
/// the emulation's thread trampoline, which checks that the thread did terminate itself. With
/// nothing owned left and nothing after the call, both worlds run exactly the same driver
/// code.
pub fn terminate_system_thread() {
    // SAFETY: PASSIVE_LEVEL, on a system thread of ours; nothing of the caller's is left to drop.
    unsafe { PsTerminateSystemThread(STATUS_SUCCESS) };
}

/// A system thread started with `PsCreateSystemThread`.
pub struct SysThread(HANDLE);

// SAFETY: a kernel handle usable from any thread.
unsafe impl Send for SysThread {}
// SAFETY: as above.
unsafe impl Sync for SysThread {}

impl SysThread {
    /// Starts `routine(context)` in a new system thread. PASSIVE_LEVEL.
    pub fn spawn(routine: KSTART_ROUTINE, context: *mut c_void) -> Result<SysThread, NTSTATUS> {
        let mut h: HANDLE = core::ptr::null_mut();
        let mut oa = InitializeObjectAttributes(
            core::ptr::null_mut(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        // SAFETY: PASSIVE_LEVEL; the routine and context stay valid for the thread's life
        // (the caller's contract: it joins before freeing the context).
        let st = unsafe {
            PsCreateSystemThread(
                &mut h,
                THREAD_ALL_ACCESS,
                &mut oa,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                routine,
                context,
            )
        };
        if nt_success(st) {
            Ok(SysThread(h))
        } else {
            Err(st)
        }
    }

    /// Waits for the thread to end and closes its handle. PASSIVE_LEVEL.
    pub fn join(self) {
        let mut obj: *mut c_void = core::ptr::null_mut();
        // SAFETY: our thread handle; PASSIVE_LEVEL.
        let st = unsafe {
            ObReferenceObjectByHandle(
                self.0,
                SYNCHRONIZE,
                core::ptr::null_mut(),
                KERNEL_MODE,
                &mut obj,
                core::ptr::null_mut(),
            )
        };
        if nt_success(st) {
            // SAFETY: a referenced thread object is a dispatcher object, signalled at exit.
            unsafe {
                KeWaitForSingleObject(obj, EXECUTIVE, KERNEL_MODE, FALSE, core::ptr::null_mut());
                ObfDereferenceObject(obj);
            }
        }
        // SAFETY: our handle, closed once.
        unsafe { ZwClose(self.0) };
    }
}

/// Milliseconds on the kernel's monotonic performance counter.
pub fn now_ms() -> u64 {
    let mut freq = LARGE_INTEGER::default();
    // SAFETY: callable at any IRQL; `freq` is writable.
    let c = unsafe { KeQueryPerformanceCounter(&mut freq) };
    let f = u128::from(freq.QuadPart.max(1).unsigned_abs());
    let ms = u128::from(c.QuadPart.max(0).unsigned_abs()).saturating_mul(1000) / f;
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Sleeps `ms` milliseconds. PASSIVE_LEVEL.
pub fn sleep_ms(ms: u32) {
    let mut t = LARGE_INTEGER {
        QuadPart: -(i64::from(ms).saturating_mul(10_000)),
    };
    // SAFETY: PASSIVE_LEVEL (the caller's contract); a relative interval.
    unsafe { KeDelayExecutionThread(KERNEL_MODE, FALSE, &mut t) };
}
