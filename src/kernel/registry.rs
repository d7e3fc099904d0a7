//! The registry: `ZwOpenKey`, `ZwEnumerateValueKey`, `ZwQueryValueKey`, the
//! `KEY_VALUE_FULL_INFORMATION` / `KEY_VALUE_PARTIAL_INFORMATION` layouts and the value types.
//!
//! Facts from wdm.h (mingw-w64) and Microsoft's DDI reference. The routines run at
//! PASSIVE_LEVEL on kernel handles (`OBJ_KERNEL_HANDLE`). `crate::driver::registry` reads the
//! service's `Parameters` key with them and parses the returned records with bounds checks.
use super::types::{ACCESS_MASK, HANDLE, NTSTATUS, OBJECT_ATTRIBUTES, UNICODE_STRING};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// `KEY_QUERY_VALUE`.
pub const KEY_QUERY_VALUE: ACCESS_MASK = 0x0001;
/// `KEY_READ` = `STANDARD_RIGHTS_READ | KEY_QUERY_VALUE | KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY`.
pub const KEY_READ: ACCESS_MASK = 0x0002_0019;

/// `KEY_VALUE_INFORMATION_CLASS::KeyValueFullInformation`.
pub const KEY_VALUE_FULL_INFORMATION_CLASS: u32 = 1;
/// `KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation`.
pub const KEY_VALUE_PARTIAL_INFORMATION_CLASS: u32 = 2;

// Registry value types (winnt.h).
pub const REG_NONE: u32 = 0;
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;

const fn st(code: u32) -> NTSTATUS {
    code as NTSTATUS
}
/// `STATUS_NO_MORE_ENTRIES` (a warning): `ZwEnumerateValueKey` past the last value.
pub const STATUS_NO_MORE_ENTRIES: NTSTATUS = st(0x8000_001A);
/// `STATUS_OBJECT_NAME_NOT_FOUND`: no such key or value.
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = st(0xC000_0034);

/// `KEY_VALUE_FULL_INFORMATION`: `NameLength` bytes of UTF-16 name at `Name` (offset 20, not
/// terminated), then the data at `DataOffset` (from the start of the record), `DataLength` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KEY_VALUE_FULL_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub DataOffset: u32,
    pub DataLength: u32,
    pub NameLength: u32,
    pub Name: [u16; 1],
}

/// `KEY_VALUE_PARTIAL_INFORMATION`: `DataLength` bytes of data at `Data` (offset 12).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KEY_VALUE_PARTIAL_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub DataLength: u32,
    pub Data: [u8; 1],
}

const_assert_eq!(size_of::<KEY_VALUE_FULL_INFORMATION>(), 24);
const_assert_eq!(offset_of!(KEY_VALUE_FULL_INFORMATION, Type), 4);
const_assert_eq!(offset_of!(KEY_VALUE_FULL_INFORMATION, DataOffset), 8);
const_assert_eq!(offset_of!(KEY_VALUE_FULL_INFORMATION, DataLength), 12);
const_assert_eq!(offset_of!(KEY_VALUE_FULL_INFORMATION, NameLength), 16);
const_assert_eq!(offset_of!(KEY_VALUE_FULL_INFORMATION, Name), 20);
const_assert_eq!(size_of::<KEY_VALUE_PARTIAL_INFORMATION>(), 16);
const_assert_eq!(offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Type), 4);
const_assert_eq!(offset_of!(KEY_VALUE_PARTIAL_INFORMATION, DataLength), 8);
const_assert_eq!(offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data), 12);

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Opens an existing key (`STATUS_OBJECT_NAME_NOT_FOUND` if it does not exist).
    pub fn ZwOpenKey(
        KeyHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    ) -> NTSTATUS;
    /// The `Index`th value of an open key, in the layout of `KeyValueInformationClass`;
    /// `STATUS_NO_MORE_ENTRIES` past the last one, `STATUS_BUFFER_OVERFLOW` /
    /// `STATUS_BUFFER_TOO_SMALL` (with `ResultLength`) when `Length` is too small.
    pub fn ZwEnumerateValueKey(
        KeyHandle: HANDLE,
        Index: u32,
        KeyValueInformationClass: u32,
        KeyValueInformation: *mut c_void,
        Length: u32,
        ResultLength: *mut u32,
    ) -> NTSTATUS;
    /// One value of an open key by name.
    pub fn ZwQueryValueKey(
        KeyHandle: HANDLE,
        ValueName: *const UNICODE_STRING,
        KeyValueInformationClass: u32,
        KeyValueInformation: *mut c_void,
        Length: u32,
        ResultLength: *mut u32,
    ) -> NTSTATUS;
}
