//! x64 layouts of the kernel structures the driver uses.
//!
//! Field names follow Microsoft's documentation so that a reader can check them against the DDI
//! reference. Structures the driver only embeds or passes through (DPC, APC, device queue, wait
//! context block) are opaque byte blocks of the documented size and alignment. Every size and
//! every field offset the driver reads or writes is asserted at compile time.
//!
//! Only x86_64 is described; other targets do not get this module's layouts.
use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};
use static_assertions::const_assert_eq;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the kernel seam describes x86_64 layouts only");

/// `NTSTATUS`: negative values are errors, see [`super::status`].
pub type NTSTATUS = i32;
/// `HANDLE`.
pub type HANDLE = *mut c_void;
/// `BOOLEAN` (`UCHAR`): [`FALSE`] or [`TRUE`].
pub type BOOLEAN = u8;
/// `BOOLEAN` false.
pub const FALSE: BOOLEAN = 0;
/// `BOOLEAN` true.
pub const TRUE: BOOLEAN = 1;
/// `KIRQL`.
pub type KIRQL = u8;
/// `KPROCESSOR_MODE` (`CCHAR`).
pub type KPROCESSOR_MODE = i8;
/// `KPRIORITY`.
pub type KPRIORITY = i32;
/// `KSPIN_LOCK` (`ULONG_PTR`).
pub type KSPIN_LOCK = usize;
/// `KAFFINITY` (`ULONG_PTR`).
pub type KAFFINITY = usize;
/// `ACCESS_MASK`.
pub type ACCESS_MASK = u32;
/// `DEVICE_TYPE`.
pub type DEVICE_TYPE = u32;
/// `POOL_TYPE` (an enum, `int` sized).
pub type POOL_TYPE = i32;
/// `POOL_FLAGS` for `ExAllocatePool2`.
pub type POOL_FLAGS = u64;
/// `EVENT_TYPE` (an enum).
pub type EVENT_TYPE = i32;
/// `KWAIT_REASON` (an enum).
pub type KWAIT_REASON = i32;
/// `LOCK_OPERATION` (an enum).
pub type LOCK_OPERATION = i32;

/// `LARGE_INTEGER`: a union of `QuadPart` and a low/high pair; on x64 it is an aligned `i64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LARGE_INTEGER {
    pub QuadPart: i64,
}

/// `UNICODE_STRING`: counted UTF-16; `Length` and `MaximumLength` are in bytes, no terminator
/// needed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *mut u16,
}

/// `LIST_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LIST_ENTRY {
    pub Flink: *mut LIST_ENTRY,
    pub Blink: *mut LIST_ENTRY,
}

/// `IO_STATUS_BLOCK`'s first member: `Status` or `Pointer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STATUS_BLOCK_0 {
    pub Status: NTSTATUS,
    pub Pointer: *mut c_void,
}

/// `IO_STATUS_BLOCK`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_STATUS_BLOCK {
    pub u: IO_STATUS_BLOCK_0,
    pub Information: usize,
}

/// `DISPATCHER_HEADER`: the common head of waitable kernel objects (only its size matters here;
/// the first 4 bytes are a union of type/flag bytes and a lock word).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DISPATCHER_HEADER {
    pub Lock: i32,
    pub SignalState: i32,
    pub WaitListHead: LIST_ENTRY,
}

/// `KEVENT`: initialise with `KeInitializeEvent`, in non-paged memory.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KEVENT {
    pub Header: DISPATCHER_HEADER,
}

/// `KDPC`, opaque (0x40 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct KDPC {
    _opaque: [u8; 0x40],
}

/// `KAPC`, opaque (0x58 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct KAPC {
    _opaque: [u8; 0x58],
}

/// `KDEVICE_QUEUE`, opaque (0x28 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct KDEVICE_QUEUE {
    _opaque: [u8; 0x28],
}

/// `KDEVICE_QUEUE_ENTRY`, opaque (0x18 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct KDEVICE_QUEUE_ENTRY {
    _opaque: [u8; 0x18],
}

/// `WAIT_CONTEXT_BLOCK`, opaque (0x48 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct WAIT_CONTEXT_BLOCK {
    _opaque: [u8; 0x48],
}

/// `PDRIVER_DISPATCH`: an IRP_MJ_* handler.
pub type DRIVER_DISPATCH =
    unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS;
/// `PDRIVER_UNLOAD`.
pub type DRIVER_UNLOAD = unsafe extern "system" fn(driver: *mut DRIVER_OBJECT);
/// `PIO_COMPLETION_ROUTINE`.
pub type IO_COMPLETION_ROUTINE = unsafe extern "system" fn(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS;
/// `PDRIVER_CANCEL`.
pub type DRIVER_CANCEL = unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP);
/// `PKSTART_ROUTINE`: a system thread's body.
pub type KSTART_ROUTINE = unsafe extern "system" fn(context: *mut c_void);

/// Number of `IRP_MJ_*` codes (`IRP_MJ_MAXIMUM_FUNCTION + 1`).
pub const IRP_MJ_COUNT: usize = 0x1c;

/// `DRIVER_OBJECT`.
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Flags: u32,
    pub DriverStart: *mut c_void,
    pub DriverSize: u32,
    pub DriverSection: *mut c_void,
    pub DriverExtension: *mut c_void,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: *mut c_void,
    pub DriverInit: *mut c_void,
    pub DriverStartIo: *mut c_void,
    pub DriverUnload: Option<DRIVER_UNLOAD>,
    pub MajorFunction: [Option<DRIVER_DISPATCH>; IRP_MJ_COUNT],
}

/// `DEVICE_OBJECT`'s `Queue` union.
#[repr(C)]
#[derive(Clone, Copy)]
pub union DEVICE_OBJECT_QUEUE {
    pub ListEntry: LIST_ENTRY,
    pub Wcb: WAIT_CONTEXT_BLOCK,
}

/// `DEVICE_OBJECT` (declared with `MEMORY_ALLOCATION_ALIGNMENT`, 16 on x64, hence 0x150 bytes).
#[repr(C, align(16))]
pub struct DEVICE_OBJECT {
    pub Type: i16,
    pub Size: u16,
    pub ReferenceCount: i32,
    pub DriverObject: *mut DRIVER_OBJECT,
    pub NextDevice: *mut DEVICE_OBJECT,
    pub AttachedDevice: *mut DEVICE_OBJECT,
    pub CurrentIrp: *mut IRP,
    pub Timer: *mut c_void,
    pub Flags: u32,
    pub Characteristics: u32,
    pub Vpb: *mut c_void,
    pub DeviceExtension: *mut c_void,
    pub DeviceType: DEVICE_TYPE,
    pub StackSize: i8,
    pub Queue: DEVICE_OBJECT_QUEUE,
    pub AlignmentRequirement: u32,
    pub DeviceQueue: KDEVICE_QUEUE,
    pub Dpc: KDPC,
    pub ActiveThreadCount: u32,
    pub SecurityDescriptor: *mut c_void,
    pub DeviceLock: KEVENT,
    pub SectorSize: u16,
    pub Spare1: u16,
    pub DeviceObjectExtension: *mut c_void,
    pub Reserved: *mut c_void,
}

/// `FILE_OBJECT`.
#[repr(C)]
pub struct FILE_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Vpb: *mut c_void,
    pub FsContext: *mut c_void,
    pub FsContext2: *mut c_void,
    pub SectionObjectPointer: *mut c_void,
    pub PrivateCacheMap: *mut c_void,
    pub FinalStatus: NTSTATUS,
    pub RelatedFileObject: *mut FILE_OBJECT,
    pub LockOperation: BOOLEAN,
    pub DeletePending: BOOLEAN,
    pub ReadAccess: BOOLEAN,
    pub WriteAccess: BOOLEAN,
    pub DeleteAccess: BOOLEAN,
    pub SharedRead: BOOLEAN,
    pub SharedWrite: BOOLEAN,
    pub SharedDelete: BOOLEAN,
    pub Flags: u32,
    pub FileName: UNICODE_STRING,
    pub CurrentByteOffset: LARGE_INTEGER,
    pub Waiters: u32,
    pub Busy: u32,
    pub LastLock: *mut c_void,
    pub Lock: KEVENT,
    pub Event: KEVENT,
    pub CompletionContext: *mut c_void,
    pub IrpListLock: KSPIN_LOCK,
    pub IrpList: LIST_ENTRY,
    pub FileObjectExtension: *mut c_void,
}

/// `MDL`: describes the physical pages of a buffer. The pages follow the header (PFN array).
#[repr(C)]
pub struct MDL {
    pub Next: *mut MDL,
    pub Size: i16,
    pub MdlFlags: i16,
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub Process: *mut c_void,
    pub MappedSystemVa: *mut c_void,
    pub StartVa: *mut c_void,
    pub ByteCount: u32,
    pub ByteOffset: u32,
}

/// `IRP.AssociatedIrp`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_ASSOCIATED {
    pub MasterIrp: *mut IRP,
    pub IrpCount: i32,
    pub SystemBuffer: *mut c_void,
}

/// `IRP.Overlay.AsynchronousParameters`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IRP_ASYNC_PARAMETERS {
    pub UserApcRoutine: *mut c_void,
    pub UserApcContext: *mut c_void,
}

/// `IRP.Overlay`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_OVERLAY {
    pub AsynchronousParameters: IRP_ASYNC_PARAMETERS,
    pub AllocationSize: LARGE_INTEGER,
}

/// `IRP.Tail.Overlay`'s first member: the device queue entry or four driver-owned pointers.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_TAIL_QUEUE {
    pub DeviceQueueEntry: KDEVICE_QUEUE_ENTRY,
    pub DriverContext: [*mut c_void; 4],
}

/// `IRP.Tail.Overlay`'s stack-location pointer, shared with `PacketType`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_TAIL_STACK {
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    pub PacketType: u32,
}

/// `IRP.Tail.Overlay`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IRP_TAIL_OVERLAY {
    pub Queue: IRP_TAIL_QUEUE,
    pub Thread: *mut c_void,
    pub AuxiliaryBuffer: *mut u8,
    pub ListEntry: LIST_ENTRY,
    pub Stack: IRP_TAIL_STACK,
    pub OriginalFileObject: *mut FILE_OBJECT,
}

/// `IRP.Tail`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_TAIL {
    pub Overlay: IRP_TAIL_OVERLAY,
    pub Apc: KAPC,
    pub CompletionKey: *mut c_void,
}

/// `IRP`: the fixed part; `StackCount` [`IO_STACK_LOCATION`]s follow it in memory.
#[repr(C)]
pub struct IRP {
    pub Type: i16,
    pub Size: u16,
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub MdlAddress: *mut MDL,
    pub Flags: u32,
    pub AssociatedIrp: IRP_ASSOCIATED,
    pub ThreadListEntry: LIST_ENTRY,
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: KPROCESSOR_MODE,
    pub PendingReturned: BOOLEAN,
    pub StackCount: i8,
    pub CurrentLocation: i8,
    pub Cancel: BOOLEAN,
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: i8,
    pub AllocationFlags: u8,
    pub UserIosb: *mut IO_STATUS_BLOCK,
    pub UserEvent: *mut KEVENT,
    pub Overlay: IRP_OVERLAY,
    pub CancelRoutine: Option<DRIVER_CANCEL>,
    pub UserBuffer: *mut c_void,
    pub Tail: IRP_TAIL,
}

// The WDK marks some ULONG/USHORT members of the parameter structures `POINTER_ALIGNMENT`
// (8-byte aligned on x64); the explicit `_pad` fields reproduce that.

/// `IO_STACK_LOCATION.Parameters.Create`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PARAMS_CREATE {
    pub SecurityContext: *mut c_void,
    pub Options: u32,
    _pad0: u32,
    pub FileAttributes: u16,
    pub ShareAccess: u16,
    _pad1: u32,
    pub EaLength: u32,
    _pad2: u32,
}

/// `IO_STACK_LOCATION.Parameters.Read` / `.Write`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PARAMS_READ_WRITE {
    pub Length: u32,
    _pad0: u32,
    pub Key: u32,
    pub Flags: u32,
    pub ByteOffset: LARGE_INTEGER,
}

/// `IO_STACK_LOCATION.Parameters.DeviceIoControl` (also used for internal device control).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PARAMS_DEVICE_IO_CONTROL {
    pub OutputBufferLength: u32,
    _pad0: u32,
    pub InputBufferLength: u32,
    _pad1: u32,
    pub IoControlCode: u32,
    _pad2: u32,
    pub Type3InputBuffer: *mut c_void,
}

/// `IO_STACK_LOCATION.Parameters.Others`: the four raw argument words (TDI requests overlay
/// their `TDI_REQUEST_KERNEL_*` structures here).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PARAMS_OTHERS {
    pub Argument1: *mut c_void,
    pub Argument2: *mut c_void,
    pub Argument3: *mut c_void,
    pub Argument4: *mut c_void,
}

/// `IO_STACK_LOCATION.Parameters` (the variants the driver needs; 32 bytes on x64).
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STACK_PARAMETERS {
    pub Create: PARAMS_CREATE,
    pub Read: PARAMS_READ_WRITE,
    pub Write: PARAMS_READ_WRITE,
    pub DeviceIoControl: PARAMS_DEVICE_IO_CONTROL,
    pub Others: PARAMS_OTHERS,
}

/// `IO_STACK_LOCATION`.
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub Flags: u8,
    pub Control: u8,
    pub Parameters: IO_STACK_PARAMETERS,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub FileObject: *mut FILE_OBJECT,
    pub CompletionRoutine: Option<IO_COMPLETION_ROUTINE>,
    pub Context: *mut c_void,
}

/// `OBJECT_ATTRIBUTES` (fill with [`super::InitializeObjectAttributes`]).
#[repr(C)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: u32,
    pub RootDirectory: HANDLE,
    pub ObjectName: *mut UNICODE_STRING,
    pub Attributes: u32,
    pub SecurityDescriptor: *mut c_void,
    pub SecurityQualityOfService: *mut c_void,
}

/// `FILE_FULL_EA_INFORMATION`: header of one extended attribute; `EaName` (NUL-terminated,
/// `EaNameLength` bytes without the NUL) and then `EaValueLength` value bytes follow at
/// offset 8. TDI passes the transport address / connection context this way to `ZwCreateFile`.
#[repr(C)]
pub struct FILE_FULL_EA_INFORMATION {
    pub NextEntryOffset: u32,
    pub Flags: u8,
    pub EaNameLength: u8,
    pub EaValueLength: u16,
    pub EaName: [u8; 1],
}

/// Offset of `EaName` inside [`FILE_FULL_EA_INFORMATION`].
pub const FILE_FULL_EA_INFORMATION_NAME_OFFSET: usize = 8;

/// `CLIENT_ID`.
#[repr(C)]
pub struct CLIENT_ID {
    pub UniqueProcess: HANDLE,
    pub UniqueThread: HANDLE,
}

/// `GROUP_AFFINITY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GROUP_AFFINITY {
    pub Mask: KAFFINITY,
    pub Group: u16,
    pub Reserved: [u16; 3],
}

// ---- layout checks (x64 sizes and offsets, from the public headers) ----

const_assert_eq!(size_of::<LARGE_INTEGER>(), 8);
const_assert_eq!(size_of::<UNICODE_STRING>(), 0x10);
const_assert_eq!(offset_of!(UNICODE_STRING, MaximumLength), 2);
const_assert_eq!(offset_of!(UNICODE_STRING, Buffer), 8);
const_assert_eq!(size_of::<LIST_ENTRY>(), 0x10);
const_assert_eq!(size_of::<IO_STATUS_BLOCK>(), 0x10);
const_assert_eq!(offset_of!(IO_STATUS_BLOCK, Information), 8);
const_assert_eq!(size_of::<KSPIN_LOCK>(), 8);
const_assert_eq!(size_of::<DISPATCHER_HEADER>(), 0x18);
const_assert_eq!(size_of::<KEVENT>(), 0x18);

const_assert_eq!(size_of::<DRIVER_OBJECT>(), 0x150);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DeviceObject), 0x08);
const_assert_eq!(offset_of!(DRIVER_OBJECT, Flags), 0x10);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverStart), 0x18);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverSize), 0x20);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverSection), 0x28);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverExtension), 0x30);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverName), 0x38);
const_assert_eq!(offset_of!(DRIVER_OBJECT, HardwareDatabase), 0x48);
const_assert_eq!(offset_of!(DRIVER_OBJECT, FastIoDispatch), 0x50);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverInit), 0x58);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverStartIo), 0x60);
const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverUnload), 0x68);
const_assert_eq!(offset_of!(DRIVER_OBJECT, MajorFunction), 0x70);

const_assert_eq!(size_of::<DEVICE_OBJECT>(), 0x150);
const_assert_eq!(align_of::<DEVICE_OBJECT>(), 0x10);
const_assert_eq!(offset_of!(DEVICE_OBJECT, ReferenceCount), 0x04);
const_assert_eq!(offset_of!(DEVICE_OBJECT, DriverObject), 0x08);
const_assert_eq!(offset_of!(DEVICE_OBJECT, NextDevice), 0x10);
const_assert_eq!(offset_of!(DEVICE_OBJECT, CurrentIrp), 0x20);
const_assert_eq!(offset_of!(DEVICE_OBJECT, Flags), 0x30);
const_assert_eq!(offset_of!(DEVICE_OBJECT, Characteristics), 0x34);
const_assert_eq!(offset_of!(DEVICE_OBJECT, DeviceExtension), 0x40);
const_assert_eq!(offset_of!(DEVICE_OBJECT, DeviceType), 0x48);
const_assert_eq!(offset_of!(DEVICE_OBJECT, StackSize), 0x4c);
const_assert_eq!(offset_of!(DEVICE_OBJECT, Queue), 0x50);
const_assert_eq!(offset_of!(DEVICE_OBJECT, AlignmentRequirement), 0x98);
const_assert_eq!(offset_of!(DEVICE_OBJECT, DeviceQueue), 0xa0);
const_assert_eq!(offset_of!(DEVICE_OBJECT, Dpc), 0xc8);
const_assert_eq!(offset_of!(DEVICE_OBJECT, ActiveThreadCount), 0x108);
const_assert_eq!(offset_of!(DEVICE_OBJECT, SecurityDescriptor), 0x110);
const_assert_eq!(offset_of!(DEVICE_OBJECT, DeviceLock), 0x118);
const_assert_eq!(offset_of!(DEVICE_OBJECT, SectorSize), 0x130);
const_assert_eq!(offset_of!(DEVICE_OBJECT, DeviceObjectExtension), 0x138);
const_assert_eq!(offset_of!(DEVICE_OBJECT, Reserved), 0x140);

const_assert_eq!(size_of::<FILE_OBJECT>(), 0xd8);
const_assert_eq!(offset_of!(FILE_OBJECT, DeviceObject), 0x08);
const_assert_eq!(offset_of!(FILE_OBJECT, FsContext), 0x18);
const_assert_eq!(offset_of!(FILE_OBJECT, FsContext2), 0x20);
const_assert_eq!(offset_of!(FILE_OBJECT, FinalStatus), 0x38);
const_assert_eq!(offset_of!(FILE_OBJECT, RelatedFileObject), 0x40);
const_assert_eq!(offset_of!(FILE_OBJECT, LockOperation), 0x48);
const_assert_eq!(offset_of!(FILE_OBJECT, Flags), 0x50);
const_assert_eq!(offset_of!(FILE_OBJECT, FileName), 0x58);
const_assert_eq!(offset_of!(FILE_OBJECT, CurrentByteOffset), 0x68);
const_assert_eq!(offset_of!(FILE_OBJECT, Lock), 0x80);
const_assert_eq!(offset_of!(FILE_OBJECT, Event), 0x98);
const_assert_eq!(offset_of!(FILE_OBJECT, CompletionContext), 0xb0);
const_assert_eq!(offset_of!(FILE_OBJECT, IrpListLock), 0xb8);
const_assert_eq!(offset_of!(FILE_OBJECT, IrpList), 0xc0);
const_assert_eq!(offset_of!(FILE_OBJECT, FileObjectExtension), 0xd0);

const_assert_eq!(size_of::<MDL>(), 0x30);
const_assert_eq!(offset_of!(MDL, Size), 0x08);
const_assert_eq!(offset_of!(MDL, MdlFlags), 0x0a);
const_assert_eq!(offset_of!(MDL, Process), 0x10);
const_assert_eq!(offset_of!(MDL, MappedSystemVa), 0x18);
const_assert_eq!(offset_of!(MDL, StartVa), 0x20);
const_assert_eq!(offset_of!(MDL, ByteCount), 0x28);
const_assert_eq!(offset_of!(MDL, ByteOffset), 0x2c);

const_assert_eq!(size_of::<IRP>(), 0xd0);
const_assert_eq!(offset_of!(IRP, MdlAddress), 0x08);
const_assert_eq!(offset_of!(IRP, Flags), 0x10);
const_assert_eq!(offset_of!(IRP, AssociatedIrp), 0x18);
const_assert_eq!(offset_of!(IRP, ThreadListEntry), 0x20);
const_assert_eq!(offset_of!(IRP, IoStatus), 0x30);
const_assert_eq!(offset_of!(IRP, RequestorMode), 0x40);
const_assert_eq!(offset_of!(IRP, PendingReturned), 0x41);
const_assert_eq!(offset_of!(IRP, StackCount), 0x42);
const_assert_eq!(offset_of!(IRP, CurrentLocation), 0x43);
const_assert_eq!(offset_of!(IRP, Cancel), 0x44);
const_assert_eq!(offset_of!(IRP, CancelIrql), 0x45);
const_assert_eq!(offset_of!(IRP, UserIosb), 0x48);
const_assert_eq!(offset_of!(IRP, UserEvent), 0x50);
const_assert_eq!(offset_of!(IRP, Overlay), 0x58);
const_assert_eq!(offset_of!(IRP, CancelRoutine), 0x68);
const_assert_eq!(offset_of!(IRP, UserBuffer), 0x70);
const_assert_eq!(offset_of!(IRP, Tail), 0x78);
const_assert_eq!(size_of::<IRP_TAIL>(), 0x58);
const_assert_eq!(offset_of!(IRP_TAIL_OVERLAY, Thread), 0x20);
const_assert_eq!(offset_of!(IRP_TAIL_OVERLAY, AuxiliaryBuffer), 0x28);
const_assert_eq!(offset_of!(IRP_TAIL_OVERLAY, ListEntry), 0x30);
const_assert_eq!(offset_of!(IRP_TAIL_OVERLAY, Stack), 0x40);
const_assert_eq!(offset_of!(IRP_TAIL_OVERLAY, OriginalFileObject), 0x48);
// The absolute offset drivers use most: Tail.Overlay.CurrentStackLocation.
const_assert_eq!(
    offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, Stack),
    0xb8
);

const_assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x48);
const_assert_eq!(size_of::<IO_STACK_PARAMETERS>(), 0x20);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, MinorFunction), 0x01);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, Flags), 0x02);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, Control), 0x03);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, Parameters), 0x08);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, DeviceObject), 0x28);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, FileObject), 0x30);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, CompletionRoutine), 0x38);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, Context), 0x40);
const_assert_eq!(offset_of!(PARAMS_CREATE, Options), 0x08);
const_assert_eq!(offset_of!(PARAMS_CREATE, FileAttributes), 0x10);
const_assert_eq!(offset_of!(PARAMS_CREATE, ShareAccess), 0x12);
const_assert_eq!(offset_of!(PARAMS_CREATE, EaLength), 0x18);
const_assert_eq!(offset_of!(PARAMS_READ_WRITE, Key), 0x08);
const_assert_eq!(offset_of!(PARAMS_READ_WRITE, Flags), 0x0c);
const_assert_eq!(offset_of!(PARAMS_READ_WRITE, ByteOffset), 0x10);
const_assert_eq!(
    offset_of!(PARAMS_DEVICE_IO_CONTROL, InputBufferLength),
    0x08
);
const_assert_eq!(offset_of!(PARAMS_DEVICE_IO_CONTROL, IoControlCode), 0x10);
const_assert_eq!(offset_of!(PARAMS_DEVICE_IO_CONTROL, Type3InputBuffer), 0x18);

const_assert_eq!(size_of::<OBJECT_ATTRIBUTES>(), 0x30);
const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, RootDirectory), 0x08);
const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, ObjectName), 0x10);
const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, Attributes), 0x18);
const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor), 0x20);
const_assert_eq!(
    offset_of!(OBJECT_ATTRIBUTES, SecurityQualityOfService),
    0x28
);

const_assert_eq!(size_of::<FILE_FULL_EA_INFORMATION>(), 0x0c);
const_assert_eq!(offset_of!(FILE_FULL_EA_INFORMATION, Flags), 0x04);
const_assert_eq!(offset_of!(FILE_FULL_EA_INFORMATION, EaNameLength), 0x05);
const_assert_eq!(offset_of!(FILE_FULL_EA_INFORMATION, EaValueLength), 0x06);
const_assert_eq!(
    offset_of!(FILE_FULL_EA_INFORMATION, EaName),
    FILE_FULL_EA_INFORMATION_NAME_OFFSET
);

const_assert_eq!(size_of::<CLIENT_ID>(), 0x10);
const_assert_eq!(size_of::<GROUP_AFFINITY>(), 0x10);
const_assert_eq!(offset_of!(GROUP_AFFINITY, Group), 0x08);
