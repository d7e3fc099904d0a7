//! Numeric constants of the kernel ABI: `NTSTATUS` values, IRP codes, flags, enums.
use super::types::{NTSTATUS, POOL_TYPE};

/// `NT_SUCCESS(status)`: success and informational values are non-negative.
#[inline]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

/// Reinterprets an `0xC…` status code written as `u32` (as documented) as `NTSTATUS`.
const fn st(code: u32) -> NTSTATUS {
    code as NTSTATUS
}

pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_TIMEOUT: NTSTATUS = 0x0000_0102;
pub const STATUS_PENDING: NTSTATUS = 0x0000_0103;
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = st(0x8000_0005);
pub const STATUS_UNSUCCESSFUL: NTSTATUS = st(0xC000_0001);
pub const STATUS_NOT_IMPLEMENTED: NTSTATUS = st(0xC000_0002);
pub const STATUS_INVALID_HANDLE: NTSTATUS = st(0xC000_0008);
pub const STATUS_INVALID_PARAMETER: NTSTATUS = st(0xC000_000D);
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = st(0xC000_0010);
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = st(0xC000_0016);
pub const STATUS_NO_MEMORY: NTSTATUS = st(0xC000_0017);
pub const STATUS_ACCESS_DENIED: NTSTATUS = st(0xC000_0022);
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = st(0xC000_0023);
pub const STATUS_OBJECT_NAME_COLLISION: NTSTATUS = st(0xC000_0035);
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = st(0xC000_009A);
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = st(0xC000_00A3);
pub const STATUS_DEVICE_BUSY: NTSTATUS = st(0x8000_0011);
pub const STATUS_IO_TIMEOUT: NTSTATUS = st(0xC000_00B5);
pub const STATUS_NOT_SUPPORTED: NTSTATUS = st(0xC000_00BB);
pub const STATUS_CANCELLED: NTSTATUS = st(0xC000_0120);
pub const STATUS_INVALID_BUFFER_SIZE: NTSTATUS = st(0xC000_0206);
pub const STATUS_CONNECTION_DISCONNECTED: NTSTATUS = st(0xC000_020C);
pub const STATUS_CONNECTION_RESET: NTSTATUS = st(0xC000_020D);
pub const STATUS_DATA_NOT_ACCEPTED: NTSTATUS = st(0xC000_021B);
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = st(0xC000_0236);

// IRP major function codes.
pub const IRP_MJ_CREATE: usize = 0x00;
pub const IRP_MJ_CLOSE: usize = 0x02;
pub const IRP_MJ_READ: usize = 0x03;
pub const IRP_MJ_WRITE: usize = 0x04;
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
pub const IRP_MJ_INTERNAL_DEVICE_CONTROL: usize = 0x0f;
pub const IRP_MJ_SHUTDOWN: usize = 0x10;
pub const IRP_MJ_CLEANUP: usize = 0x12;
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 0x1b;

// IO_STACK_LOCATION.Control bits (IoSetCompletionRoutine) and SL_PENDING_RETURNED.
pub const SL_PENDING_RETURNED: u8 = 0x01;
pub const SL_INVOKE_ON_CANCEL: u8 = 0x20;
pub const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
pub const SL_INVOKE_ON_ERROR: u8 = 0x80;

// Device types and characteristics.
pub const FILE_DEVICE_NETWORK: u32 = 0x12;
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;

// DEVICE_OBJECT.Flags.
pub const DO_BUFFERED_IO: u32 = 0x04;
pub const DO_DIRECT_IO: u32 = 0x10;
pub const DO_DEVICE_INITIALIZING: u32 = 0x80;

/// Priority boost for `IofCompleteRequest`.
pub const IO_NO_INCREMENT: i8 = 0;
/// Priority boost for completing network I/O.
pub const IO_NETWORK_INCREMENT: i8 = 2;

// POOL_TYPE values.
pub const NON_PAGED_POOL: POOL_TYPE = 0;
/// `NonPagedPoolNx`: non-paged, non-executable (Windows 8+).
pub const NON_PAGED_POOL_NX: POOL_TYPE = 512;
// POOL_FLAGS for ExAllocatePool2.
pub const POOL_FLAG_NON_PAGED: u64 = 0x40;

// KPROCESSOR_MODE.
pub const KERNEL_MODE: i8 = 0;
pub const USER_MODE: i8 = 1;
// KWAIT_REASON.
pub const EXECUTIVE: i32 = 0;
// EVENT_TYPE.
pub const NOTIFICATION_EVENT: i32 = 0;
pub const SYNCHRONIZATION_EVENT: i32 = 1;
// LOCK_OPERATION.
pub const IO_READ_ACCESS: i32 = 0;
pub const IO_WRITE_ACCESS: i32 = 1;
pub const IO_MODIFY_ACCESS: i32 = 2;

// IRQLs.
pub const PASSIVE_LEVEL: u8 = 0;
pub const APC_LEVEL: u8 = 1;
pub const DISPATCH_LEVEL: u8 = 2;

// OBJECT_ATTRIBUTES.Attributes.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x40;
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;

// Access masks.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
pub const GENERIC_READ: u32 = 0x8000_0000;
pub const GENERIC_WRITE: u32 = 0x4000_0000;
pub const GENERIC_ALL: u32 = 0x1000_0000;
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;

// ZwCreateFile arguments.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
pub const FILE_SHARE_READ: u32 = 0x1;
pub const FILE_SHARE_WRITE: u32 = 0x2;
pub const FILE_OPEN: u32 = 0x1;
pub const FILE_OPEN_IF: u32 = 0x3;
pub const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x20;

/// `KeQueryActiveProcessorCountEx(ALL_PROCESSOR_GROUPS)`.
pub const ALL_PROCESSOR_GROUPS: u16 = 0xffff;

// DbgPrintEx: the component id for IHV network drivers (dpfilter.h) and the levels.
pub const DPFLTR_IHVNETWORK_ID: u32 = 80;
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
pub const DPFLTR_INFO_LEVEL: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert!(nt_success(STATUS_SUCCESS));
        assert!(nt_success(STATUS_PENDING));
        assert!(!nt_success(STATUS_INVALID_DEVICE_REQUEST));
        assert_eq!(STATUS_INVALID_DEVICE_REQUEST as u32, 0xC000_0010);
    }
}
