//! Routines imported from `ntoskrnl.exe` and `HAL.dll`, each declared once in a
//! `kernel_imports!` block that names its DLL (the one Microsoft's DDI reference lists).
//! `tests/driver_imports.rs` checks every name here against the export lists of mingw-w64's
//! import libraries for that DLL, so a misspelt or misplaced import fails on Linux instead of
//! at driver load time on Windows.
//!
//! Signatures follow the Microsoft DDI reference (x64: one calling convention, `extern "system"`
//! and `extern "C"` coincide). Pointer parameters that the kernel only reads are `*const`.
//! Fastcall names on x86 (`IofCallDriver`, `IofCompleteRequest`, `ObfDereferenceObject`) are the
//! real exports on x64 too; the WDK's `IoCallDriver`/`IoCompleteRequest`/`ObDereferenceObject`
//! are macros over them.
use super::types::*;
use core::ffi::{c_char, c_void};

/// Declares the imports once and expands them for the build at hand:
/// - without `wdk`: one `extern "system"` block, `raw-dylib` from the DLL when the target is
///   Windows (no import library needed), a plain declaration on other targets;
/// - with `wdk` (Windows host + eWDK only; NOT compiled on Linux, unverified here): inline
///   forwarders to `wdk_sys::ntddk`, whose generated types have the same layouts as ours, so each
///   argument and the result are transmuted between the two sets of types.
macro_rules! kernel_imports {
    (
        dll $dll:literal;
        $( $(#[$m:meta])* fn $name:ident( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?; )*
    ) => {
        #[cfg(not(feature = "wdk"))]
        #[cfg_attr(
            target_os = "windows",
            link(name = $dll, kind = "raw-dylib", modifiers = "+verbatim")
        )]
        unsafe extern "system" {
            $( $(#[$m])* pub fn $name($($arg: $ty),*) $(-> $ret)?; )*
        }

        $(
            $(#[$m])*
            #[cfg(feature = "wdk")]
            #[inline]
            #[allow(clippy::missing_safety_doc, clippy::useless_transmute)]
            pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller upholds the routine's documented contract; our argument and
                // result types have the same size and layout as wdk-sys's bindgen types.
                unsafe {
                    core::mem::transmute(wdk_sys::ntddk::$name($(core::mem::transmute($arg)),*))
                }
            }
        )*
    };
}

kernel_imports! {
    dll "ntoskrnl.exe";

    // ---- I/O manager ----
    /// Creates a device object (`DeviceName` may be null for an unnamed device).
    fn IoCreateDevice(
        DriverObject: *mut DRIVER_OBJECT,
        DeviceExtensionSize: u32,
        DeviceName: *const UNICODE_STRING,
        DeviceType: DEVICE_TYPE,
        DeviceCharacteristics: u32,
        Exclusive: BOOLEAN,
        DeviceObject: *mut *mut DEVICE_OBJECT,
    ) -> NTSTATUS;
    /// Deletes a device object created by `IoCreateDevice`.
    fn IoDeleteDevice(DeviceObject: *mut DEVICE_OBJECT);
    /// Creates an object-manager symbolic link `SymbolicLinkName` -> `DeviceName`.
    fn IoCreateSymbolicLink(
        SymbolicLinkName: *const UNICODE_STRING,
        DeviceName: *const UNICODE_STRING,
    ) -> NTSTATUS;
    /// Deletes a symbolic link.
    fn IoDeleteSymbolicLink(SymbolicLinkName: *const UNICODE_STRING) -> NTSTATUS;
    /// `IoCompleteRequest`: completes an IRP (the driver must not touch it afterwards).
    fn IofCompleteRequest(Irp: *mut IRP, PriorityBoost: i8);
    /// `IoCallDriver`: passes an IRP to the next-lower driver.
    fn IofCallDriver(DeviceObject: *mut DEVICE_OBJECT, Irp: *mut IRP) -> NTSTATUS;
    /// Allocates an IRP with `StackSize` stack locations.
    fn IoAllocateIrp(StackSize: i8, ChargeQuota: BOOLEAN) -> *mut IRP;
    /// Frees an IRP from `IoAllocateIrp`.
    fn IoFreeIrp(Irp: *mut IRP);
    /// Re-initialises an IRP from `IoAllocateIrp` for another use.
    fn IoReuseIrp(Irp: *mut IRP, Iostatus: NTSTATUS);
    /// Requests cancellation of an IRP; returns whether a cancel routine was called.
    fn IoCancelIrp(Irp: *mut IRP) -> BOOLEAN;
    /// The device object a file object was opened on (top of its stack).
    fn IoGetRelatedDeviceObject(FileObject: *mut FILE_OBJECT) -> *mut DEVICE_OBJECT;
    /// Allocates an MDL describing `Length` bytes at `VirtualAddress`.
    fn IoAllocateMdl(
        VirtualAddress: *mut c_void,
        Length: u32,
        SecondaryBuffer: BOOLEAN,
        ChargeQuota: BOOLEAN,
        Irp: *mut IRP,
    ) -> *mut MDL;
    /// Frees an MDL from `IoAllocateMdl`.
    fn IoFreeMdl(Mdl: *mut MDL);

    // ---- memory manager ----
    /// Fills an MDL's page array for a buffer in non-paged pool.
    fn MmBuildMdlForNonPagedPool(MemoryDescriptorList: *mut MDL);
    /// Probes and locks the pages of an MDL (raises an exception on an invalid buffer).
    fn MmProbeAndLockPages(
        MemoryDescriptorList: *mut MDL,
        AccessMode: KPROCESSOR_MODE,
        Operation: LOCK_OPERATION,
    );
    /// Unlocks pages locked by `MmProbeAndLockPages`.
    fn MmUnlockPages(MemoryDescriptorList: *mut MDL);

    // ---- pool ----
    /// Allocates pool memory (deprecated on Windows 10 2004+ in favour of `ExAllocatePool2`,
    /// but exported on every version and the one the emulator knows).
    fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: usize, Tag: u32) -> *mut c_void;
    /// Allocates zeroed pool memory (Windows 10 2004+).
    fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: usize, Tag: u32) -> *mut c_void;
    /// Frees pool memory allocated with `Tag`.
    fn ExFreePoolWithTag(P: *mut c_void, Tag: u32);

    // ---- kernel: events, waits, spin locks, processors ----
    /// Initialises a notification or synchronization event.
    fn KeInitializeEvent(Event: *mut KEVENT, Type: EVENT_TYPE, State: BOOLEAN);
    /// Signals an event; returns its previous state.
    fn KeSetEvent(Event: *mut KEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> i32;
    /// Resets an event to not-signalled.
    fn KeClearEvent(Event: *mut KEVENT);
    /// Waits for a dispatcher object; `Timeout` in 100 ns units, negative = relative.
    fn KeWaitForSingleObject(
        Object: *mut c_void,
        WaitReason: KWAIT_REASON,
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Sleeps for `Interval` (100 ns units, negative = relative).
    fn KeDelayExecutionThread(
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Interval: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// Acquires a spin lock, raising to DISPATCH_LEVEL; returns the previous IRQL.
    fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    /// Releases a spin lock and returns to `NewIrql`.
    fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    /// Number of active processors in a group, or all groups with `ALL_PROCESSOR_GROUPS`.
    fn KeQueryActiveProcessorCountEx(GroupNumber: u16) -> u32;
    /// Sets the current system thread's affinity; returns the previous one.
    fn KeSetSystemAffinityThreadEx(Affinity: KAFFINITY) -> KAFFINITY;
    /// Restores the affinity returned by `KeSetSystemAffinityThreadEx`.
    fn KeRevertToUserAffinityThreadEx(Affinity: KAFFINITY);

    // ---- processes, threads, objects ----
    /// Creates a kernel thread running `StartRoutine(StartContext)`.
    fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        ProcessHandle: HANDLE,
        ClientId: *mut CLIENT_ID,
        StartRoutine: KSTART_ROUTINE,
        StartContext: *mut c_void,
    ) -> NTSTATUS;
    /// Ends the calling system thread (does not return when called from one).
    fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS;
    /// References the object behind a handle (`ObjectType` may be null).
    fn ObReferenceObjectByHandle(
        Handle: HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectType: *mut c_void,
        AccessMode: KPROCESSOR_MODE,
        Object: *mut *mut c_void,
        HandleInformation: *mut c_void,
    ) -> NTSTATUS;
    /// `ObDereferenceObject`.
    fn ObfDereferenceObject(Object: *mut c_void) -> isize;
    /// Closes a kernel handle.
    fn ZwClose(Handle: HANDLE) -> NTSTATUS;
    /// Opens a file or device; TDI address and connection objects are opened this way with
    /// their parameters in an extended-attribute buffer.
    fn ZwCreateFile(
        FileHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        IoStatusBlock: *mut IO_STATUS_BLOCK,
        AllocationSize: *mut LARGE_INTEGER,
        FileAttributes: u32,
        ShareAccess: u32,
        CreateDisposition: u32,
        CreateOptions: u32,
        EaBuffer: *mut c_void,
        EaLength: u32,
    ) -> NTSTATUS;
}

kernel_imports! {
    dll "HAL.dll";

    /// The performance counter (monotonic, < 1 us resolution, any IRQL); its frequency is stored
    /// if the pointer is non-null.
    fn KeQueryPerformanceCounter(PerformanceFrequency: *mut LARGE_INTEGER) -> LARGE_INTEGER;
}

#[cfg(not(feature = "wdk"))]
#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Stops the system with a bug check; never returns.
    pub fn KeBugCheckEx(
        BugCheckCode: u32,
        BugCheckParameter1: usize,
        BugCheckParameter2: usize,
        BugCheckParameter3: usize,
        BugCheckParameter4: usize,
    ) -> !;
}

#[cfg(not(feature = "wdk"))]
#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "C" {
    /// Sends a printf-style message to the kernel debugger, filtered by component and level.
    /// Always pass a constant format (e.g. `"%s"`) and the text as an argument.
    pub fn DbgPrintEx(ComponentId: u32, Level: u32, Format: *const c_char, ...) -> u32;
}

// The C routines LLVM and the prebuilt `core`/`alloc` call (copies, fills, compares, and
// `strlen` from `CString`). A driver has no C runtime; `ntoskrnl.exe` exports them. Declaring
// them here makes the `raw-dylib` import library provide the symbols to the linker.
#[cfg(all(target_os = "windows", not(feature = "wdk")))]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    pub fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    pub fn memmove(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    pub fn memset(dest: *mut c_void, c: i32, n: usize) -> *mut c_void;
    pub fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> i32;
    pub fn strlen(s: *const c_char) -> usize;
}

#[cfg(feature = "wdk")]
pub use wdk_sys::ntddk::DbgPrintEx;

/// `KeBugCheckEx` through wdk-sys (Windows host + eWDK only; not compiled on Linux).
#[cfg(feature = "wdk")]
#[allow(clippy::missing_safety_doc)]
pub unsafe fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> ! {
    // SAFETY: KeBugCheckEx may be called at any IRQL; it stops the system.
    unsafe { wdk_sys::ntddk::KeBugCheckEx(code, p1 as _, p2 as _, p3 as _, p4 as _) };
    #[allow(unreachable_code)]
    loop {
        core::hint::spin_loop();
    }
}
