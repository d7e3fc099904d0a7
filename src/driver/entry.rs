//! `DriverEntry`, `DriverUnload` and the control device's dispatch routines (WDM).
//!
//! The driver exposes one named control device, `\Device\tdinal`, reachable from user mode as
//! `\\.\tdinal` through the symbolic link `\DosDevices\tdinal`. It handles:
//! - `IRP_MJ_CREATE`, `IRP_MJ_CLEANUP`, `IRP_MJ_CLOSE`: succeed (handle bookkeeping only). Who
//!   may open the device at all is decided by its DACL, applied right after `IoCreateDevice`
//!   (SYSTEM and Administrators only, [`super::security`]);
//! - `IRP_MJ_DEVICE_CONTROL`: the ptlctl/lctl ioctls, checked at the IRP level and dispatched
//!   through `crate::ioctl::dispatch_in_place` against [`Control`] under the control lock
//!   ([`super::control`]);
//! - `IRP_MJ_INTERNAL_DEVICE_CONTROL`: `IOCTL_TDINAL_QUERY_NAL_INTERFACE`, how the kernel LNet
//!   binds to tdinal ([`super::nal_if`]).
//!
//! The tunables come from the service's `Parameters` registry key ([`super::registry`]), read
//! first; they wait in [`Control`] for the kernel runtime.
//!
//! Everything the entry allocates hangs off the device extension and is released by
//! `DriverUnload` (or by the failure path of `DriverEntry` itself, after which the I/O manager
//! unloads the image without calling `DriverUnload`).
//!
//! The cross-built image's entry point is `DriverEntry` (`/ENTRY:DriverEntry`): a one-instruction
//! assembly trampoline to [`driver_entry`], so the symbol exists for the linker without being
//! exported from the image (an exported entry would be called again, with garbage arguments, by
//! tools that exercise exports). docs/building.md explains why this is a WDM entry and not KMDF's
//! `FxDriverEntry`.
use super::control::{execute_buffered, read_buffered, Control};
use super::lock::PassiveLock;
use super::nal_if::{self, QueryRequest, TDINAL_LNET_CALLBACKS, TDINAL_NAL_INTERFACE};
use super::trace::{kerror, kinfo, ktrace, kwarn};
use super::{pool, registry, security};
use crate::engine::tunables::Tunables;
use crate::kernel::{self, wide, *};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, Ordering};

/// The control device's name in the object manager namespace.
pub const DEVICE_NAME: &[u16] = wide!("\\Device\\tdinal");
/// The symbolic link that makes the device reachable as `\\.\tdinal`.
pub const LINK_NAME: &[u16] = wide!("\\DosDevices\\tdinal");
/// Device type of the control device; ioctl codes (`CTL_CODE`) carry it in their top 16 bits.
/// It must equal `crate::ioctl::codes::FILE_DEVICE_TDINAL` (vendor range, low byte `'e'`).
pub const DEVICE_TYPE: u32 = 0x8065;

/// Driver-wide state, owned by the control device's extension; `DriverUnload` drops it (and
/// with it an attached runtime).
pub struct DriverState {
    /// Open handles on the control device (CREATE minus CLOSE).
    pub open_handles: AtomicU32,
    /// Tunables and the kernel runtime, behind the control lock (PASSIVE_LEVEL).
    pub control: PassiveLock<Control>,
}

impl DriverState {
    /// Nothing starts here: `NAL_CMD_START_DAEMON` starts the TDI runtime ([`super::nal::start`]).
    fn new(tunables: Tunables) -> Self {
        let mut control = Control::new(tunables);
        control.set_starter(super::nal::start);
        DriverState {
            open_handles: AtomicU32::new(0),
            control: PassiveLock::new(control),
        }
    }
}

/// The current IRQL (CR8 on Windows; host builds of the driver code run at "PASSIVE_LEVEL").
fn current_irql() -> KIRQL {
    #[cfg(target_os = "windows")]
    {
        KeGetCurrentIrql()
    }
    #[cfg(not(target_os = "windows"))]
    {
        PASSIVE_LEVEL
    }
}

/// The control device's extension: a pointer to the boxed [`DriverState`].
#[repr(C)]
struct DeviceExtension {
    state: *mut DriverState,
}

#[cfg(all(target_os = "windows", target_arch = "x86_64"))]
core::arch::global_asm!(
    ".section .text,\"xr\"",
    ".globl DriverEntry",
    ".p2align 4",
    "DriverEntry:",
    "    jmp {entry}",
    entry = sym driver_entry,
);

/// `DriverEntry(DriverObject, RegistryPath)`: reads the tunables, creates the control device,
/// restricts it to SYSTEM and Administrators, creates its link and installs the dispatch
/// routines.
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL with a valid driver object and registry path.
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    kinfo!("DriverEntry: tdinal {}", env!("CARGO_PKG_VERSION"));

    let mut tunables = Tunables::default();
    // SAFETY: `registry_path` is the one the I/O manager passed (valid, or null in odd callers);
    // we are at PASSIVE_LEVEL.
    unsafe { registry::read_parameters(registry_path, &mut tunables) };

    let state = match Box::try_new_in_pool(DriverState::new(tunables)) {
        Some(s) => s,
        None => {
            kerror!("DriverEntry: no memory for the driver state");
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    };
    // SAFETY: the state is at its final (pool) address and nobody uses the lock yet.
    unsafe { state.control.init() };

    // The dispatch table first, so the device never exists without its handlers.
    // SAFETY: `driver` is the valid driver object we were called with; DriverEntry is where its
    // dispatch table is filled in.
    unsafe {
        let d = &mut *driver;
        d.MajorFunction[kernel::IRP_MJ_CREATE] = Some(dispatch_create);
        d.MajorFunction[kernel::IRP_MJ_CLEANUP] = Some(dispatch_cleanup);
        d.MajorFunction[kernel::IRP_MJ_CLOSE] = Some(dispatch_close);
        d.MajorFunction[kernel::IRP_MJ_DEVICE_CONTROL] = Some(dispatch_device_control);
        d.MajorFunction[kernel::IRP_MJ_INTERNAL_DEVICE_CONTROL] =
            Some(dispatch_internal_device_control);
    }

    let name = UNICODE_STRING::from_static(DEVICE_NAME);
    let link = UNICODE_STRING::from_static(LINK_NAME);
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: `driver` is the valid driver object we were called with; the name outlives the
    // call (the I/O manager copies it); `device` receives the new object.
    let status = unsafe {
        IoCreateDevice(
            driver,
            core::mem::size_of::<DeviceExtension>() as u32,
            &name,
            DEVICE_TYPE,
            FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &mut device,
        )
    };
    if !nt_success(status) || device.is_null() {
        kerror!(
            "DriverEntry: IoCreateDevice failed: {:#010x}",
            status as u32
        );
        drop(state);
        return if nt_success(status) {
            STATUS_UNSUCCESSFUL
        } else {
            status
        };
    }

    // SAFETY: IoCreateDevice succeeded, so `device` is valid and its extension is a zeroed,
    // suitably aligned block of size_of::<DeviceExtension>() bytes that we own.
    unsafe {
        (*device)
            .DeviceExtension
            .cast::<DeviceExtension>()
            .write(DeviceExtension {
                state: Box::into_raw(state),
            });
    }

    // Restrict the device before it can be reached: it has no link yet and is still
    // DO_DEVICE_INITIALIZING. Without its DACL the device must not exist.
    // SAFETY: `device` is ours and live; we are at PASSIVE_LEVEL.
    let status = unsafe { security::apply_to_device(device) };
    if !nt_success(status) {
        kerror!(
            "DriverEntry: cannot restrict the control device to administrators: {:#010x}",
            status as u32
        );
        // SAFETY: the device is ours, unopened (no link yet), and deleted exactly once here.
        unsafe { delete_device(device) };
        return status;
    }
    kinfo!(
        "DriverEntry: control device restricted to {}",
        security::CONTROL_DEVICE_SDDL
    );

    // SAFETY: both strings are valid for the call; the link target is the device just created.
    let status = unsafe { IoCreateSymbolicLink(&link, &name) };
    if !nt_success(status) {
        kerror!(
            "DriverEntry: IoCreateSymbolicLink failed: {:#010x}",
            status as u32
        );
        // SAFETY: the device is ours, unopened (no link yet), and deleted exactly once here.
        unsafe { delete_device(device) };
        return status;
    }

    // SAFETY: `driver` is valid and we are in DriverEntry; `device` is valid and ours. Unload is
    // installed last: only a fully set-up driver is ever unloaded through it.
    unsafe {
        (*driver).DriverUnload = Some(driver_unload);
        (*device).Flags &= !DO_DEVICE_INITIALIZING;
    }

    kinfo!("DriverEntry: control device ready");
    STATUS_SUCCESS
}

/// `DriverUnload`: removes the link and every device, releasing what `DriverEntry` allocated.
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL after all handles are closed.
pub unsafe extern "system" fn driver_unload(driver: *mut DRIVER_OBJECT) {
    kinfo!("DriverUnload");
    let link = UNICODE_STRING::from_static(LINK_NAME);
    // SAFETY: the link was created by DriverEntry (unload is only installed after that).
    let status = unsafe { IoDeleteSymbolicLink(&link) };
    if !nt_success(status) {
        kerror!(
            "DriverUnload: IoDeleteSymbolicLink failed: {:#010x}",
            status as u32
        );
    }
    // SAFETY: `driver` is valid; the device list holds only devices we created.
    let mut device = unsafe { (*driver).DeviceObject };
    while !device.is_null() {
        // SAFETY: `device` is a live device object of this driver; read the link before deleting.
        let next = unsafe { (*device).NextDevice };
        // SAFETY: no handles are open at unload; each device is deleted once.
        unsafe { delete_device(device) };
        device = next;
    }
    let live = pool::live_allocations();
    if live == 0 {
        kinfo!("DriverUnload: done, no pool allocations left");
    } else {
        kerror!("DriverUnload: {} pool allocations leaked", live);
    }
}

/// Frees the device's state and deletes it.
///
/// # Safety
/// `device` must be a live device created by [`driver_entry`] whose extension was initialised
/// or is still zeroed, with no other user.
unsafe fn delete_device(device: *mut DEVICE_OBJECT) {
    // SAFETY: per the contract the extension is ours; a zeroed one holds a null state.
    let ext = unsafe { (*device).DeviceExtension.cast::<DeviceExtension>() };
    if !ext.is_null() {
        // SAFETY: `ext` is valid; the state pointer came from Box::into_raw or is null.
        unsafe {
            let state = core::mem::replace(&mut (*ext).state, core::ptr::null_mut());
            if !state.is_null() {
                let mut state = Box::from_raw(state);
                // The runtime stops first, at PASSIVE_LEVEL (DriverUnload's): acceptor stopped,
                // connections closed, open operations failed, threads joined, objects freed.
                match state.control.get_mut().stop() {
                    None => {}
                    Some(Ok(())) => kinfo!("DriverUnload: NAL stopped"),
                    Some(Err(e)) => kerror!("DriverUnload: NAL stopped unclean: {}", e.as_str()),
                }
                drop(state);
            }
        }
    }
    // SAFETY: the device is ours and no longer referenced by us.
    unsafe { IoDeleteDevice(device) };
}

/// The [`DriverState`] of a device of ours.
///
/// # Safety
/// `device` must be the control device while the driver is loaded (the I/O manager only sends
/// IRPs to a device between its creation and its deletion).
unsafe fn state_of<'a>(device: *mut DEVICE_OBJECT) -> Option<&'a DriverState> {
    // SAFETY: per the contract the extension is ours and initialised by DriverEntry.
    unsafe {
        let ext = (*device).DeviceExtension.cast::<DeviceExtension>();
        if ext.is_null() {
            return None;
        }
        (*ext).state.as_ref()
    }
}

/// Completes `irp` with `status` and `information`, returning `status` for the dispatch routine.
///
/// # Safety
/// `irp` must be an IRP this driver owns and has not completed or pended.
unsafe fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) -> NTSTATUS {
    // SAFETY: per the contract `irp` is ours; after IofCompleteRequest we do not touch it.
    unsafe {
        (*irp).IoStatus.u.Status = status;
        (*irp).IoStatus.Information = information;
        IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
    status
}

unsafe extern "system" fn dispatch_create(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the I/O manager calls us with our device and an IRP we own until completion.
    unsafe {
        if let Some(state) = state_of(device) {
            let n = state.open_handles.fetch_add(1, Ordering::Relaxed) + 1;
            ktrace!("create: {} open", n);
        }
        complete(irp, STATUS_SUCCESS, 0)
    }
}

unsafe extern "system" fn dispatch_cleanup(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: as for dispatch_create.
    unsafe { complete(irp, STATUS_SUCCESS, 0) }
}

unsafe extern "system" fn dispatch_close(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: as for dispatch_create.
    unsafe {
        if let Some(state) = state_of(device) {
            let prev = state
                .open_handles
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .unwrap_or(0);
            ktrace!("close: {} open", prev.saturating_sub(1));
        }
        complete(irp, STATUS_SUCCESS, 0)
    }
}

unsafe extern "system" fn dispatch_device_control(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let irql = current_irql();
    // SAFETY: the I/O manager calls us with our device and a DEVICE_CONTROL IRP we own until we
    // complete it; read_buffered only reads the IRP and its current stack location.
    let (status, information) = match unsafe { (state_of(device), read_buffered(irp, irql)) } {
        (None, _) => (STATUS_INVALID_DEVICE_REQUEST, 0),
        (Some(_), Err(refusal)) => {
            ktrace!("ioctl refused: {}", refusal.why);
            (refusal.status, 0)
        }
        (Some(state), Ok(req)) => {
            let (status, information) = match state.control.lock() {
                // SAFETY: `req.buffer` is this IRP's METHOD_BUFFERED system buffer (checked by
                // read_buffered), which the I/O manager sized max(in, out) with the input first.
                Some(mut ctl) => unsafe { execute_buffered(&mut ctl, &req) },
                None => (STATUS_UNSUCCESSFUL, 0),
            };
            ktrace!(
                "ioctl {:#010x} (in {}, out {}): status {:#010x}, {} byte(s) returned",
                req.code,
                req.input_len,
                req.output_len,
                status as u32,
                information
            );
            (status, information)
        }
    };
    // SAFETY: the IRP is ours and not yet completed.
    unsafe { complete(irp, status, information) }
}

unsafe extern "system" fn dispatch_internal_device_control(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let irql = current_irql();
    // SAFETY: as for dispatch_device_control; an internal device-control IRP carries its
    // METHOD_NEITHER input in Type3InputBuffer and its output at UserBuffer.
    let req = unsafe {
        let stack = IoGetCurrentIrpStackLocation(irp);
        if stack.is_null() {
            return complete(irp, STATUS_INVALID_PARAMETER, 0);
        }
        let p = (*stack).Parameters.DeviceIoControl;
        QueryRequest {
            requestor_mode: (*irp).RequestorMode,
            code: p.IoControlCode,
            input: p.Type3InputBuffer.cast_const(),
            input_len: p.InputBufferLength,
            output: (*irp).UserBuffer,
            output_len: p.OutputBufferLength,
        }
    };
    let result = nal_if::check_request(&req).and_then(|()| {
        if irql != PASSIVE_LEVEL {
            return Err(nal_if::QueryError {
                status: STATUS_INVALID_DEVICE_REQUEST,
                why: "the NAL interface query must be sent at PASSIVE_LEVEL",
            });
        }
        // SAFETY: a kernel-mode caller (checked) passed a kernel buffer of at least
        // size_of::<TDINAL_LNET_CALLBACKS>() bytes (checked); every bit pattern of the
        // structure is a valid value (integers, a pointer, nullable function pointers).
        let callbacks: TDINAL_LNET_CALLBACKS =
            unsafe { core::ptr::read_unaligned(req.input.cast()) };
        // SAFETY: the I/O manager only sends IRPs to our device while it exists.
        let state = unsafe { state_of(device) }.ok_or(nal_if::QueryError {
            status: STATUS_INVALID_DEVICE_REQUEST,
            why: "no driver state",
        })?;
        let mut ctl = state.control.lock().ok_or(nal_if::QueryError {
            status: STATUS_UNSUCCESSFUL,
            why: "control lock",
        })?;
        nal_if::answer_query(&callbacks, ctl.nal_provider())
    });
    match result {
        Ok(iface) => {
            // SAFETY: the output buffer is a kernel buffer of at least
            // size_of::<TDINAL_NAL_INTERFACE>() bytes (checked above).
            unsafe { core::ptr::write_unaligned(req.output.cast::<TDINAL_NAL_INTERFACE>(), iface) };
            kinfo!("NAL interface handed out to LNet");
            // SAFETY: the IRP is ours and not yet completed.
            unsafe { complete(irp, STATUS_SUCCESS, nal_if::INTERFACE_V1_SIZE) }
        }
        Err(e) => {
            kwarn!(
                "internal ioctl {:#010x}: {} ({:#010x})",
                req.code,
                e.why,
                e.status as u32
            );
            // SAFETY: the IRP is ours and not yet completed.
            unsafe { complete(irp, e.status, 0) }
        }
    }
}

/// Fallible boxing: `None` instead of a bug check when the pool is exhausted.
trait TryBox<T> {
    fn try_new_in_pool(value: T) -> Option<Box<T>>;
}

impl<T> TryBox<T> for Box<T> {
    fn try_new_in_pool(value: T) -> Option<Box<T>> {
        let layout = core::alloc::Layout::new::<T>();
        if layout.size() == 0 {
            return Some(Box::new(value));
        }
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is a fresh, properly aligned allocation for one T from the global
        // allocator, which is what Box::from_raw requires.
        unsafe {
            p.write(value);
            Some(Box::from_raw(p))
        }
    }
}

/// The control device as `DriverEntry` leaves it (a device object whose extension holds the
/// [`DriverState`]), so that tests drive its real dispatch routines under the emulation
/// (`tests/driver_nal.rs`): the I/O manager's part — building the IRP, `IoCallDriver` — is the
/// test's.
#[cfg(all(feature = "tdi-emu", target_os = "linux"))]
pub struct EmulatedControlDevice {
    device: Box<DEVICE_OBJECT>,
    // Referenced by `device.DeviceExtension`.
    _ext: Box<DeviceExtension>,
    state: *mut DriverState,
}

#[cfg(all(feature = "tdi-emu", target_os = "linux"))]
impl EmulatedControlDevice {
    /// A control device with nothing started (as after `DriverEntry`).
    pub fn new(tunables: Tunables) -> Self {
        let state = Box::into_raw(Box::new(DriverState::new(tunables)));
        // SAFETY: once, with the state at its final address (boxed), before any lock.
        unsafe { (*state).control.init() };
        let mut ext = Box::new(DeviceExtension { state });
        // SAFETY: DEVICE_OBJECT holds integers, raw pointers and unions of those: all-zero is a
        // valid value.
        let mut device: Box<DEVICE_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
        device.DeviceExtension = (&mut *ext as *mut DeviceExtension).cast();
        EmulatedControlDevice {
            device,
            _ext: ext,
            state,
        }
    }

    /// The control state, under the control lock (PASSIVE_LEVEL).
    pub fn control(&self) -> Option<super::lock::PassiveGuard<'_, Control>> {
        // SAFETY: the state lives until drop.
        unsafe { (*self.state).control.lock() }
    }

    /// `IRP_MJ_INTERNAL_DEVICE_CONTROL` through the driver's dispatch routine.
    ///
    /// # Safety
    /// `irp` is a live IRP whose current stack location is ours, as `IoCallDriver` leaves it.
    pub unsafe fn internal_device_control(&self, irp: *mut IRP) -> NTSTATUS {
        let device = (&*self.device as *const DEVICE_OBJECT).cast_mut();
        // SAFETY: the caller's contract; the device's extension holds the live state.
        unsafe { dispatch_internal_device_control(device, irp) }
    }
}

#[cfg(all(feature = "tdi-emu", target_os = "linux"))]
impl Drop for EmulatedControlDevice {
    /// What `DriverUnload` does to the state: the runtime stops, the state is freed.
    fn drop(&mut self) {
        // SAFETY: from Box::into_raw in `new`, freed once, here.
        let mut state = unsafe { Box::from_raw(self.state) };
        let _ = state.control.get_mut().stop();
    }
}
