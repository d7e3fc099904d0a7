//! Security descriptors: the x64 layouts of `SID`, `ACL`, `ACE_HEADER`, `ACCESS_ALLOWED_ACE`,
//! `SECURITY_DESCRIPTOR` (absolute) and `SECURITY_DESCRIPTOR_RELATIVE`, their constants, and the
//! imports that apply a descriptor to an object (`ObOpenObjectByPointer`, `ZwSetSecurityObject`).
//!
//! Facts from winnt.h / ntifs.h (mingw-w64, public domain) and Microsoft's documentation of the
//! security descriptor binary format ("SECURITY_DESCRIPTOR_RELATIVE", "ACL", "ACE_HEADER",
//! "ACCESS_ALLOWED_ACE", "SID"): all fields are little-endian, a self-relative descriptor stores
//! offsets from its own start instead of pointers, an ACE's `SidStart` is where the SID begins.
//! Every size and offset is asserted below; `crate::driver::security` builds descriptors from
//! these offsets and its host tests compare the bytes with the binary form of the SDDL.
//!
//! Same conventions as the rest of the seam: `raw-dylib` from `ntoskrnl.exe` on Windows targets,
//! plain declarations on the host (never called there).
use super::types::{ACCESS_MASK, HANDLE, KPROCESSOR_MODE, NTSTATUS};
use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};
use static_assertions::const_assert_eq;

/// `SECURITY_DESCRIPTOR_REVISION`.
pub const SECURITY_DESCRIPTOR_REVISION: u8 = 1;
/// `ACL_REVISION` (ACLs holding only the basic ACE types).
pub const ACL_REVISION: u8 = 2;
/// `SID_REVISION`.
pub const SID_REVISION: u8 = 1;
/// `ACCESS_ALLOWED_ACE_TYPE`.
pub const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;

// SECURITY_DESCRIPTOR_CONTROL bits.
/// `SE_DACL_PRESENT`: the descriptor has a DACL (a null `Dacl` then means "no protection").
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// `SE_DACL_PROTECTED`: SDDL `D:P`, the DACL does not inherit ACEs from a parent.
pub const SE_DACL_PROTECTED: u16 = 0x1000;
/// `SE_SELF_RELATIVE`: offsets instead of pointers, one contiguous block.
pub const SE_SELF_RELATIVE: u16 = 0x8000;

// SECURITY_INFORMATION bits.
/// `DACL_SECURITY_INFORMATION`: set the DACL (needs `WRITE_DAC` on the handle).
pub const DACL_SECURITY_INFORMATION: u32 = 0x0000_0004;

/// `WRITE_DAC` access right.
pub const WRITE_DAC: ACCESS_MASK = 0x0004_0000;

/// `SECURITY_NT_AUTHORITY` {0,0,0,0,0,5} (the `S-1-5-…` SIDs).
pub const SECURITY_NT_AUTHORITY: [u8; 6] = [0, 0, 0, 0, 0, 5];
/// `SECURITY_LOCAL_SYSTEM_RID`: S-1-5-18, SDDL `SY`.
pub const SECURITY_LOCAL_SYSTEM_RID: u32 = 18;
/// `SECURITY_BUILTIN_DOMAIN_RID`: S-1-5-32.
pub const SECURITY_BUILTIN_DOMAIN_RID: u32 = 32;
/// `DOMAIN_ALIAS_RID_ADMINS`: S-1-5-32-544, SDDL `BA`.
pub const DOMAIN_ALIAS_RID_ADMINS: u32 = 544;

/// `SID_IDENTIFIER_AUTHORITY`: a 48-bit big-endian authority.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SID_IDENTIFIER_AUTHORITY {
    pub Value: [u8; 6],
}

/// `SID` with its declared one-element `SubAuthority` array; a SID with `n` sub-authorities is
/// `8 + 4 * n` bytes (`RtlLengthRequiredSid`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SID {
    pub Revision: u8,
    pub SubAuthorityCount: u8,
    pub IdentifierAuthority: SID_IDENTIFIER_AUTHORITY,
    pub SubAuthority: [u32; 1],
}

/// `ACL`: the header; `AceCount` ACEs follow it, `AclSize` covers header and ACEs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ACL {
    pub AclRevision: u8,
    pub Sbz1: u8,
    pub AclSize: u16,
    pub AceCount: u16,
    pub Sbz2: u16,
}

/// `ACE_HEADER`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ACE_HEADER {
    pub AceType: u8,
    pub AceFlags: u8,
    pub AceSize: u16,
}

/// `ACCESS_ALLOWED_ACE`: the SID starts at `SidStart` (offset 8) and runs past the struct;
/// `AceSize` = 8 + the SID's length.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ACCESS_ALLOWED_ACE {
    pub Header: ACE_HEADER,
    pub Mask: ACCESS_MASK,
    pub SidStart: u32,
}

/// `SECURITY_DESCRIPTOR_RELATIVE`: owner, group, SACL and DACL as offsets from the start of the
/// descriptor (0 = absent).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SECURITY_DESCRIPTOR_RELATIVE {
    pub Revision: u8,
    pub Sbz1: u8,
    pub Control: u16,
    pub Owner: u32,
    pub Group: u32,
    pub Sacl: u32,
    pub Dacl: u32,
}

/// `SECURITY_DESCRIPTOR` (absolute form): pointers instead of offsets. Not built by the driver
/// (it applies a self-relative one); declared so both forms' layouts are on record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SECURITY_DESCRIPTOR {
    pub Revision: u8,
    pub Sbz1: u8,
    pub Control: u16,
    pub Owner: *mut c_void,
    pub Group: *mut c_void,
    pub Sacl: *mut ACL,
    pub Dacl: *mut ACL,
}

const_assert_eq!(size_of::<SID_IDENTIFIER_AUTHORITY>(), 6);
const_assert_eq!(size_of::<SID>(), 12);
const_assert_eq!(align_of::<SID>(), 4);
const_assert_eq!(offset_of!(SID, SubAuthorityCount), 1);
const_assert_eq!(offset_of!(SID, IdentifierAuthority), 2);
const_assert_eq!(offset_of!(SID, SubAuthority), 8);
const_assert_eq!(size_of::<ACL>(), 8);
const_assert_eq!(offset_of!(ACL, AclSize), 2);
const_assert_eq!(offset_of!(ACL, AceCount), 4);
const_assert_eq!(offset_of!(ACL, Sbz2), 6);
const_assert_eq!(size_of::<ACE_HEADER>(), 4);
const_assert_eq!(offset_of!(ACE_HEADER, AceFlags), 1);
const_assert_eq!(offset_of!(ACE_HEADER, AceSize), 2);
const_assert_eq!(size_of::<ACCESS_ALLOWED_ACE>(), 12);
const_assert_eq!(offset_of!(ACCESS_ALLOWED_ACE, Mask), 4);
const_assert_eq!(offset_of!(ACCESS_ALLOWED_ACE, SidStart), 8);
const_assert_eq!(size_of::<SECURITY_DESCRIPTOR_RELATIVE>(), 20);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Control), 2);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Owner), 4);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Group), 8);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Sacl), 12);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Dacl), 16);
const_assert_eq!(size_of::<SECURITY_DESCRIPTOR>(), 40);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR, Owner), 8);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR, Group), 16);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR, Sacl), 24);
const_assert_eq!(offset_of!(SECURITY_DESCRIPTOR, Dacl), 32);

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Opens a handle to an object the caller has a pointer to (PASSIVE_LEVEL). With
    /// `AccessMode = KernelMode`, `ObjectType` may be null and `PassedAccessState` is null.
    pub fn ObOpenObjectByPointer(
        Object: *mut c_void,
        HandleAttributes: u32,
        PassedAccessState: *mut c_void,
        DesiredAccess: ACCESS_MASK,
        ObjectType: *mut c_void,
        AccessMode: KPROCESSOR_MODE,
        Handle: *mut HANDLE,
    ) -> NTSTATUS;
    /// Sets the parts of an object's security descriptor named by `SecurityInformation`
    /// (PASSIVE_LEVEL; `DACL_SECURITY_INFORMATION` needs `WRITE_DAC` on the handle). The
    /// descriptor may be absolute or self-relative; the object manager copies it.
    pub fn ZwSetSecurityObject(
        Handle: HANDLE,
        SecurityInformation: u32,
        SecurityDescriptor: *const c_void,
    ) -> NTSTATUS;
}
