//! Seam additions for the TDI transport: MDL macros, `IoSetNextIrpStackLocation`, the imports the
//! TDI client needs beyond the driver's (`MmMapLockedPagesSpecifyCache`, `TdiReturnChainedReceives`
//! from `TDI.SYS`), the network `NTSTATUS` values, and `KeGetCurrentIrql` for host builds.
//!
//! Same rules as the rest of the seam: facts from the public headers (mingw-w64 `wdm.h`,
//! `tdikrnl.h`, `ntstatus.h`) and Microsoft's DDI reference, asserted layouts, no policy. On a
//! Windows target the imports are `raw-dylib` from the DLL the DDI reference names; on host builds
//! they are plain declarations that only the `tdi-emu` emulation defines.
use super::types::*;
use core::ffi::c_void;

// ---- NTSTATUS values the TCP transport returns ----

const fn st(code: u32) -> NTSTATUS {
    code as NTSTATUS
}
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = st(0xC000_0034);
pub const STATUS_SHARING_VIOLATION: NTSTATUS = st(0xC000_0043);
pub const STATUS_LOCAL_DISCONNECT: NTSTATUS = st(0xC000_013B);
pub const STATUS_REMOTE_DISCONNECT: NTSTATUS = st(0xC000_013C);
pub const STATUS_INVALID_CONNECTION: NTSTATUS = st(0xC000_0140);
pub const STATUS_INVALID_ADDRESS: NTSTATUS = st(0xC000_0141);
pub const STATUS_ADDRESS_ALREADY_EXISTS: NTSTATUS = st(0xC000_020A);
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = st(0xC000_023D);
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = st(0xC000_023C);
pub const STATUS_ADDRESS_ALREADY_ASSOCIATED: NTSTATUS = st(0xC000_0238);

// ---- MDL flags (wdm.h) ----

pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
pub const MDL_PAGES_LOCKED: i16 = 0x0002;
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
pub const MDL_ALLOCATED_FIXED_SIZE: i16 = 0x0008;
pub const MDL_PARTIAL: i16 = 0x0010;

/// `MEMORY_CACHING_TYPE::MmCached`.
pub const MM_CACHED: i32 = 1;
/// `MM_PAGE_PRIORITY::NormalPagePriority`.
pub const NORMAL_PAGE_PRIORITY: u32 = 16;
/// `MdlMappingNoExecute` (Windows 8+), or-ed into the priority.
pub const MDL_MAPPING_NO_EXECUTE: u32 = 0x4000_0000;

/// `MmGetMdlVirtualAddress`: `StartVa + ByteOffset`.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlVirtualAddress(mdl: *const MDL) -> *mut c_void {
    // SAFETY: the caller guarantees `mdl` is valid; the sum stays inside the described buffer.
    unsafe {
        (*mdl)
            .StartVa
            .cast::<u8>()
            .wrapping_add((*mdl).ByteOffset as usize)
            .cast()
    }
}

/// `MmGetMdlByteCount`.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlByteCount(mdl: *const MDL) -> u32 {
    // SAFETY: the caller guarantees `mdl` is valid.
    unsafe { (*mdl).ByteCount }
}

/// `MmGetSystemAddressForMdlSafe(mdl, priority)`: the mapped system address when the MDL is already
/// mapped or describes non-paged pool, otherwise maps it with `MmMapLockedPagesSpecifyCache`.
/// Null when the mapping fails (low resources). Callable at IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` must point to a valid MDL whose pages are locked (or built for non-paged pool).
#[inline]
pub unsafe fn MmGetSystemAddressForMdlSafe(mdl: *mut MDL, priority: u32) -> *mut c_void {
    // SAFETY: the caller guarantees `mdl` is valid and locked, which is what the mapping needs.
    unsafe {
        if (*mdl).MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
            (*mdl).MappedSystemVa
        } else {
            MmMapLockedPagesSpecifyCache(
                mdl,
                super::status::KERNEL_MODE,
                MM_CACHED,
                core::ptr::null_mut(),
                FALSE as u32,
                priority,
            )
        }
    }
}

/// `IoSetNextIrpStackLocation`: moves the IRP's current location one down, as `IoCallDriver`
/// does. A TDI client calls it on an IRP it returns from `ClientEventConnect` or
/// `ClientEventReceive` (the transport then processes it as if it had been passed to it).
///
/// # Safety
/// `irp` must be a valid IRP owned by the caller with a location below the current one.
#[inline]
pub unsafe fn IoSetNextIrpStackLocation(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP and the location below the current one exist.
    unsafe {
        (*irp).CurrentLocation -= 1;
        (*irp).Tail.Overlay.Stack.CurrentStackLocation =
            (*irp).Tail.Overlay.Stack.CurrentStackLocation.sub(1);
    }
}

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Maps the locked pages of an MDL into system space (IRQL <= DISPATCH_LEVEL for
    /// `KernelMode`). Prefer [`MmGetSystemAddressForMdlSafe`].
    pub fn MmMapLockedPagesSpecifyCache(
        MemoryDescriptorList: *mut MDL,
        AccessMode: KPROCESSOR_MODE,
        CacheType: i32,
        RequestedAddress: *mut c_void,
        BugCheckOnFailure: u32,
        Priority: u32,
    ) -> *mut c_void;
}

#[cfg_attr(
    target_os = "windows",
    link(name = "TDI.SYS", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Gives chained-receive TSDUs the client retained (by returning `STATUS_PENDING` from
    /// `ClientEventChainedReceive*`) back to the transport. IRQL <= DISPATCH_LEVEL.
    pub fn TdiReturnChainedReceives(TsduDescriptors: *mut *mut c_void, NumberOfTsdus: u32);
}

#[cfg(not(target_os = "windows"))]
unsafe extern "system" {
    #[link_name = "KeGetCurrentIrql"]
    fn host_KeGetCurrentIrql() -> KIRQL;
}

/// `KeGetCurrentIrql` on host builds: the emulation (`tdi-emu`) tracks an IRQL per thread and
/// serves this symbol. (On Windows it is the inline CR8 read in [`super::inline`].)
#[cfg(not(target_os = "windows"))]
#[inline]
pub fn KeGetCurrentIrql() -> KIRQL {
    // SAFETY: the routine takes no arguments and has no preconditions; on host builds only the
    // emulation defines it (a host build that calls it without the emulation does not link).
    unsafe { host_KeGetCurrentIrql() }
}
