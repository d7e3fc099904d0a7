//! What the WDK headers define as macros or `FORCEINLINE` functions on x64, so there is no export
//! to import: stack-location arithmetic, completion routines, IRQL, spin-lock and object-attribute
//! initialisation, and counted UTF-16 strings built at compile time.
use super::status::{SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS};
use super::types::*;
use core::ffi::c_void;
use core::mem::size_of;

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` must point to a valid IRP owned by the caller.
#[inline]
pub unsafe fn IoGetCurrentIrpStackLocation(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is valid; the I/O manager keeps
    // Tail.Overlay.CurrentStackLocation pointing at the current stack location.
    unsafe { (*irp).Tail.Overlay.Stack.CurrentStackLocation }
}

/// `IoGetNextIrpStackLocation`: the location the next-lower driver will see.
///
/// # Safety
/// `irp` must point to a valid IRP owned by the caller with a stack location below the current
/// one (`CurrentLocation > 1`), e.g. one from `IoAllocateIrp(n)` with `n >= 1`.
#[inline]
pub unsafe fn IoGetNextIrpStackLocation(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: stack locations are contiguous after the IRP header, the next one directly
    // precedes the current one; the caller guarantees it exists.
    unsafe { IoGetCurrentIrpStackLocation(irp).sub(1) }
}

/// `IoSetCompletionRoutine`: registers `routine` in the next stack location.
///
/// # Safety
/// As for [`IoGetNextIrpStackLocation`]; `routine` and `context` must stay valid until the IRP
/// completes.
#[inline]
pub unsafe fn IoSetCompletionRoutine(
    irp: *mut IRP,
    routine: IO_COMPLETION_ROUTINE,
    context: *mut c_void,
    invoke_on_success: bool,
    invoke_on_error: bool,
    invoke_on_cancel: bool,
) {
    // SAFETY: the caller guarantees the next stack location exists and is owned by the caller.
    let next = unsafe { &mut *IoGetNextIrpStackLocation(irp) };
    next.CompletionRoutine = Some(routine);
    next.Context = context;
    let mut control = 0u8;
    if invoke_on_success {
        control |= SL_INVOKE_ON_SUCCESS;
    }
    if invoke_on_error {
        control |= SL_INVOKE_ON_ERROR;
    }
    if invoke_on_cancel {
        control |= SL_INVOKE_ON_CANCEL;
    }
    next.Control = control;
}

/// `IoMarkIrpPending`.
///
/// # Safety
/// `irp` must point to a valid IRP the caller is dispatching and will return `STATUS_PENDING` for.
#[inline]
pub unsafe fn IoMarkIrpPending(irp: *mut IRP) {
    // SAFETY: the caller guarantees `irp` and its current stack location are valid.
    unsafe { (*IoGetCurrentIrpStackLocation(irp)).Control |= super::status::SL_PENDING_RETURNED };
}

/// `KeGetCurrentIrql`: on x64 the IRQL is the task-priority register CR8.
#[cfg(target_os = "windows")]
#[inline]
pub fn KeGetCurrentIrql() -> KIRQL {
    let cr8: u64;
    // SAFETY: reading CR8 has no side effects; kernel code runs at CPL 0 where it is permitted.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags));
    }
    // CR8 holds 0..=15 in its low 4 bits.
    (cr8 & 0xf) as KIRQL
}

/// `KeInitializeSpinLock`: on x64 a spin lock starts as zero.
#[inline]
pub fn KeInitializeSpinLock(lock: &mut KSPIN_LOCK) {
    *lock = 0;
}

/// `InitializeObjectAttributes`.
#[inline]
pub fn InitializeObjectAttributes(
    name: *mut UNICODE_STRING,
    attributes: u32,
    root: HANDLE,
    security_descriptor: *mut c_void,
) -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: root,
        ObjectName: name,
        Attributes: attributes,
        SecurityDescriptor: security_descriptor,
        SecurityQualityOfService: core::ptr::null_mut(),
    }
}

impl UNICODE_STRING {
    /// A counted string over a static, NUL-terminated UTF-16 buffer made by [`wide`], like the
    /// WDK's `RTL_CONSTANT_STRING`: `Length` excludes the terminator, `MaximumLength` includes
    /// it. The kernel does not need the terminator; tools that print the name do.
    pub const fn from_static(text: &'static [u16]) -> Self {
        assert!(
            !text.is_empty() && text[text.len() - 1] == 0,
            "UNICODE_STRING::from_static needs a NUL-terminated buffer (use wide!)"
        );
        let max = text.len() * 2;
        assert!(
            max <= u16::MAX as usize,
            "UNICODE_STRING longer than 65535 bytes"
        );
        UNICODE_STRING {
            Length: (max - 2) as u16,
            MaximumLength: max as u16,
            Buffer: text.as_ptr() as *mut u16,
        }
    }

    /// An empty counted string.
    pub const fn empty() -> Self {
        UNICODE_STRING {
            Length: 0,
            MaximumLength: 0,
            Buffer: core::ptr::null_mut(),
        }
    }
}

/// ASCII to NUL-terminated UTF-16 at compile time (used by [`wide`]); `N` is the text length
/// plus one. A non-ASCII or NUL byte is a compile error.
pub const fn ascii_to_utf16<const N: usize>(text: &str) -> [u16; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() + 1 == N, "length mismatch");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(
            bytes[i] != 0 && bytes[i] < 0x80,
            "wide! takes ASCII without NUL only"
        );
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// `wide!("\\Device\\tdinal")`: a `&'static [u16]` NUL-terminated UTF-16 copy of an ASCII
/// literal, for [`UNICODE_STRING::from_static`].
#[allow(unused_macros)]
macro_rules! wide {
    ($text:literal) => {{
        const TEXT: &str = $text;
        const WIDE: [u16; TEXT.len() + 1] =
            $crate::kernel::ascii_to_utf16::<{ TEXT.len() + 1 }>(TEXT);
        &WIDE
    }};
}
#[allow(unused_imports)]
pub(crate) use wide;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_strings() {
        let w: &'static [u16] = wide!("\\Device\\tdinal");
        assert_eq!(w.len(), 15);
        assert_eq!(w[0], u16::from(b'\\'));
        assert_eq!(w[14], 0);
        let u = UNICODE_STRING::from_static(w);
        assert_eq!(u.Length, 28);
        assert_eq!(u.MaximumLength, 30);
    }

    #[test]
    fn object_attributes() {
        let oa = InitializeObjectAttributes(
            core::ptr::null_mut(),
            0x240,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        assert_eq!(oa.Length, 0x30);
        assert_eq!(oa.Attributes, 0x240);
    }
}
