//! Who may open the control device: SYSTEM and the Administrators group, nobody else — the SDDL
//! `D:P(A;;GA;;;SY)(A;;GA;;;BA)` (`SDDL_DEVOBJ_SYS_ALL_ADM_ALL`).
//!
//! `IoCreateDeviceSecure` lives in the WDK's static `wdmsec.lib`, which the cross build does not
//! have. It creates the device with `IoCreateDevice` and then applies the descriptor the SDDL
//! names through a kernel handle: `ObOpenObjectByPointer(device, OBJ_KERNEL_HANDLE, WRITE_DAC)`,
//! `ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, descriptor)`, `ZwClose`. The driver
//! does the same with a descriptor it builds itself:
//!
//! - [`build_self_relative`] (portable, no `unsafe`, checked arithmetic) writes a self-relative
//!   `SECURITY_DESCRIPTOR_RELATIVE` with one DACL of `ACCESS_ALLOWED_ACE`s, using the field
//!   offsets pinned in [`crate::kernel::security`]; [`ControlDeviceDescriptor`] is that
//!   descriptor for [`CONTROL_DEVICE_SDDL`], 72 bytes. The host tests compare it byte for byte
//!   with the binary form of the SDDL written out from the format's public description.
//! - [`apply_to_device`] (kernel) applies it. `DriverEntry` fails — and deletes the device —
//!   if it cannot: the device never exists with the default descriptor, which lets every user
//!   open it. It runs before the symbolic link exists and while `DO_DEVICE_INITIALIZING` is set.
//!
//! What the descriptor means once applied: an ACE's `GENERIC_ALL` is mapped by the object manager
//! through the device's generic mapping (to `FILE_ALL_ACCESS`); everyone else has no ACE and so
//! no access; `SE_DACL_PROTECTED` (`P`) keeps inheritable ACEs of a parent out. The device is
//! created with `FILE_DEVICE_SECURE_OPEN`, so opens of `\Device\tdinal\anything` are checked
//! against the same DACL. The ioctl codes' access bits (`FILE_READ_ACCESS`/`FILE_WRITE_ACCESS`)
//! are checked by the I/O manager against the rights a handle was opened with.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use crate::kernel::security::{
    ACCESS_ALLOWED_ACE, ACCESS_ALLOWED_ACE_TYPE, ACE_HEADER, ACL, ACL_REVISION,
    DOMAIN_ALIAS_RID_ADMINS, SECURITY_BUILTIN_DOMAIN_RID, SECURITY_DESCRIPTOR_RELATIVE,
    SECURITY_DESCRIPTOR_REVISION, SECURITY_LOCAL_SYSTEM_RID, SECURITY_NT_AUTHORITY,
    SE_DACL_PRESENT, SE_DACL_PROTECTED, SE_SELF_RELATIVE, SID, SID_REVISION,
};
use crate::kernel::GENERIC_ALL;
use core::mem::{offset_of, size_of};

/// The control device's access rule in SDDL (for documentation and traces; the descriptor is
/// built from [`CONTROL_DEVICE_ACES`], not parsed).
pub const CONTROL_DEVICE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// A SID: identifier authority and sub-authorities (at most 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sid {
    pub authority: [u8; 6],
    pub sub_authorities: &'static [u32],
}

/// S-1-5-18, LocalSystem (SDDL `SY`).
pub const LOCAL_SYSTEM: Sid = Sid {
    authority: SECURITY_NT_AUTHORITY,
    sub_authorities: &[SECURITY_LOCAL_SYSTEM_RID],
};

/// S-1-5-32-544, BUILTIN\Administrators (SDDL `BA`).
pub const BUILTIN_ADMINISTRATORS: Sid = Sid {
    authority: SECURITY_NT_AUTHORITY,
    sub_authorities: &[SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS],
};

/// An access-allowed ACE without flags (SDDL `(A;;rights;;;sid)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowAce {
    pub mask: u32,
    pub sid: Sid,
}

/// `(A;;GA;;;SY)(A;;GA;;;BA)`.
pub const CONTROL_DEVICE_ACES: [AllowAce; 2] = [
    AllowAce {
        mask: GENERIC_ALL,
        sid: LOCAL_SYSTEM,
    },
    AllowAce {
        mask: GENERIC_ALL,
        sid: BUILTIN_ADMINISTRATORS,
    },
];

/// Why a descriptor could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdError {
    /// The output buffer is shorter than the descriptor (`need` bytes).
    BufferTooSmall { need: usize },
    /// A SID with more than 15 sub-authorities, or an ACL over 65535 bytes / ACEs.
    TooLarge,
}

/// Bytes of a SID with `n` sub-authorities (`RtlLengthRequiredSid`).
pub const fn sid_len(n: usize) -> usize {
    offset_of!(SID, SubAuthority).saturating_add(n.saturating_mul(4))
}

fn sid_bytes(sid: &Sid) -> Result<usize, SdError> {
    let n = sid.sub_authorities.len();
    if n > 15 {
        return Err(SdError::TooLarge);
    }
    Ok(sid_len(n))
}

/// Bytes of the self-relative descriptor [`build_self_relative`] writes for `aces`.
pub fn self_relative_len(aces: &[AllowAce]) -> Result<usize, SdError> {
    let mut len = size_of::<SECURITY_DESCRIPTOR_RELATIVE>()
        .checked_add(size_of::<ACL>())
        .ok_or(SdError::TooLarge)?;
    for ace in aces {
        len = len
            .checked_add(offset_of!(ACCESS_ALLOWED_ACE, SidStart))
            .and_then(|l| l.checked_add(sid_bytes(&ace.sid).ok()?))
            .ok_or(SdError::TooLarge)?;
    }
    Ok(len)
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), SdError> {
    let end = at.checked_add(bytes.len()).ok_or(SdError::TooLarge)?;
    let need = out.len().max(end);
    out.get_mut(at..end)
        .ok_or(SdError::BufferTooSmall { need })?
        .copy_from_slice(bytes);
    Ok(())
}

fn put_u16(out: &mut [u8], at: usize, v: u16) -> Result<(), SdError> {
    put(out, at, &v.to_le_bytes())
}

fn put_u32(out: &mut [u8], at: usize, v: u32) -> Result<(), SdError> {
    put(out, at, &v.to_le_bytes())
}

fn add(a: usize, b: usize) -> Result<usize, SdError> {
    a.checked_add(b).ok_or(SdError::TooLarge)
}

/// Writes the SID at `at`; returns its length.
fn write_sid(out: &mut [u8], at: usize, sid: &Sid) -> Result<usize, SdError> {
    let len = sid_bytes(sid)?;
    let count = u8::try_from(sid.sub_authorities.len()).map_err(|_| SdError::TooLarge)?;
    put(out, add(at, offset_of!(SID, Revision))?, &[SID_REVISION])?;
    put(out, add(at, offset_of!(SID, SubAuthorityCount))?, &[count])?;
    put(
        out,
        add(at, offset_of!(SID, IdentifierAuthority))?,
        &sid.authority,
    )?;
    let mut sub = add(at, offset_of!(SID, SubAuthority))?;
    for &rid in sid.sub_authorities {
        put_u32(out, sub, rid)?;
        sub = add(sub, 4)?;
    }
    Ok(len)
}

/// Writes a self-relative security descriptor with no owner, group or SACL and a DACL holding
/// `aces` in order, `protected` setting `SE_DACL_PROTECTED` (SDDL `D:P`). Layout: the 20-byte
/// header, then the ACL at offset 20 (header 8 bytes, then each ACE: `ACE_HEADER`, mask, SID).
/// Returns the descriptor's length. The result is what `ConvertStringSecurityDescriptorTo…`
/// makes of the equivalent SDDL.
pub fn build_self_relative(
    aces: &[AllowAce],
    protected: bool,
    out: &mut [u8],
) -> Result<usize, SdError> {
    let total = self_relative_len(aces)?;
    if out.len() < total {
        return Err(SdError::BufferTooSmall { need: total });
    }
    let dacl_at = size_of::<SECURITY_DESCRIPTOR_RELATIVE>();
    let acl_size = u16::try_from(total.checked_sub(dacl_at).ok_or(SdError::TooLarge)?)
        .map_err(|_| SdError::TooLarge)?;
    let ace_count = u16::try_from(aces.len()).map_err(|_| SdError::TooLarge)?;

    // SECURITY_DESCRIPTOR_RELATIVE.
    let mut control = SE_SELF_RELATIVE | SE_DACL_PRESENT;
    if protected {
        control |= SE_DACL_PROTECTED;
    }
    put(
        out,
        offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Revision),
        &[SECURITY_DESCRIPTOR_REVISION, 0],
    )?;
    put_u16(
        out,
        offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Control),
        control,
    )?;
    put_u32(out, offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Owner), 0)?;
    put_u32(out, offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Group), 0)?;
    put_u32(out, offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Sacl), 0)?;
    let dacl_offset = u32::try_from(dacl_at).map_err(|_| SdError::TooLarge)?;
    put_u32(
        out,
        offset_of!(SECURITY_DESCRIPTOR_RELATIVE, Dacl),
        dacl_offset,
    )?;

    // ACL header.
    put(
        out,
        add(dacl_at, offset_of!(ACL, AclRevision))?,
        &[ACL_REVISION, 0],
    )?;
    put_u16(out, add(dacl_at, offset_of!(ACL, AclSize))?, acl_size)?;
    put_u16(out, add(dacl_at, offset_of!(ACL, AceCount))?, ace_count)?;
    put_u16(out, add(dacl_at, offset_of!(ACL, Sbz2))?, 0)?;

    // The ACEs.
    let mut at = add(dacl_at, size_of::<ACL>())?;
    for ace in aces {
        let sid_at = add(at, offset_of!(ACCESS_ALLOWED_ACE, SidStart))?;
        let ace_size = add(
            offset_of!(ACCESS_ALLOWED_ACE, SidStart),
            sid_bytes(&ace.sid)?,
        )?;
        let header = add(at, offset_of!(ACCESS_ALLOWED_ACE, Header))?;
        put(
            out,
            add(header, offset_of!(ACE_HEADER, AceType))?,
            &[ACCESS_ALLOWED_ACE_TYPE, 0],
        )?;
        put_u16(
            out,
            add(header, offset_of!(ACE_HEADER, AceSize))?,
            u16::try_from(ace_size).map_err(|_| SdError::TooLarge)?,
        )?;
        put_u32(
            out,
            add(at, offset_of!(ACCESS_ALLOWED_ACE, Mask))?,
            ace.mask,
        )?;
        write_sid(out, sid_at, &ace.sid)?;
        at = add(at, ace_size)?;
    }
    Ok(total)
}

/// Length of [`ControlDeviceDescriptor`]: header 20 + ACL 8 + ACE(SY) 20 + ACE(BA) 24.
pub const CONTROL_DEVICE_SD_LEN: usize = 72;

/// The self-relative descriptor for [`CONTROL_DEVICE_SDDL`], in a buffer aligned for its
/// 32-bit fields (the kernel reads them in place).
#[repr(C, align(8))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlDeviceDescriptor {
    bytes: [u8; CONTROL_DEVICE_SD_LEN],
}

impl ControlDeviceDescriptor {
    /// Builds the descriptor.
    pub fn new() -> Result<Self, SdError> {
        let mut bytes = [0u8; CONTROL_DEVICE_SD_LEN];
        let n = build_self_relative(&CONTROL_DEVICE_ACES, true, &mut bytes)?;
        if n != CONTROL_DEVICE_SD_LEN {
            return Err(SdError::BufferTooSmall { need: n });
        }
        Ok(ControlDeviceDescriptor { bytes })
    }

    /// The descriptor's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Applies [`ControlDeviceDescriptor`] to `device`'s DACL the way `IoCreateDeviceSecure` does.
/// Traces the bytes applied (one hex line, read back by the emulator test).
///
/// # Safety
/// `device` must be a device object this driver created and has not deleted; call at
/// PASSIVE_LEVEL (DriverEntry).
#[cfg(feature = "driver")]
pub unsafe fn apply_to_device(
    device: *mut crate::kernel::DEVICE_OBJECT,
) -> crate::kernel::NTSTATUS {
    use super::trace::{kerror, ktrace};
    use crate::kernel::security::{
        ObOpenObjectByPointer, ZwSetSecurityObject, DACL_SECURITY_INFORMATION, WRITE_DAC,
    };
    use crate::kernel::{nt_success, ZwClose, HANDLE, KERNEL_MODE, OBJ_KERNEL_HANDLE};

    let sd = match ControlDeviceDescriptor::new() {
        Ok(sd) => sd,
        Err(e) => {
            kerror!(
                "security: cannot build the control device descriptor: {:?}",
                e
            );
            return crate::kernel::STATUS_UNSUCCESSFUL;
        }
    };
    ktrace!("security: {} = {}", CONTROL_DEVICE_SDDL, Hex(sd.as_bytes()));

    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: `device` is our live device object (caller's contract); a kernel handle with
    // WRITE_DAC, no access state and no type check (allowed for KernelMode) is requested; the
    // handle lands in a local we own.
    let status = unsafe {
        ObOpenObjectByPointer(
            device.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            WRITE_DAC,
            core::ptr::null_mut(),
            KERNEL_MODE,
            &mut handle,
        )
    };
    if !nt_success(status) {
        kerror!(
            "security: ObOpenObjectByPointer failed: {:#010x}",
            status as u32
        );
        return status;
    }
    // SAFETY: `handle` is the kernel handle just opened with WRITE_DAC; the descriptor is a
    // valid, 8-aligned self-relative descriptor that outlives the call (the kernel copies it).
    let status = unsafe {
        ZwSetSecurityObject(
            handle,
            DACL_SECURITY_INFORMATION,
            sd.as_bytes().as_ptr().cast(),
        )
    };
    // SAFETY: the handle is ours and closed exactly once.
    let closed = unsafe { ZwClose(handle) };
    if !nt_success(status) {
        kerror!(
            "security: ZwSetSecurityObject failed: {:#010x}",
            status as u32
        );
        return status;
    }
    if !nt_success(closed) {
        kerror!("security: ZwClose failed: {:#010x}", closed as u32);
    }
    status
}

/// Lower-case hex of a byte slice, for traces.
pub struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `D:P(A;;GA;;;SY)(A;;GA;;;BA)` in binary, written out from the public description of the
    /// format (all fields little-endian; SID authorities big-endian 48-bit).
    #[rustfmt::skip]
    const EXPECTED: [u8; 72] = [
        // SECURITY_DESCRIPTOR_RELATIVE
        0x01,                   // Revision = SECURITY_DESCRIPTOR_REVISION
        0x00,                   // Sbz1
        0x04, 0x90,             // Control = SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_DACL_PRESENT
        0x00, 0x00, 0x00, 0x00, // Owner: none
        0x00, 0x00, 0x00, 0x00, // Group: none
        0x00, 0x00, 0x00, 0x00, // Sacl: none
        0x14, 0x00, 0x00, 0x00, // Dacl at offset 20
        // ACL
        0x02,                   // AclRevision = ACL_REVISION
        0x00,                   // Sbz1
        0x34, 0x00,             // AclSize = 52
        0x02, 0x00,             // AceCount = 2
        0x00, 0x00,             // Sbz2
        // ACE 1: (A;;GA;;;SY)
        0x00,                   // AceType = ACCESS_ALLOWED_ACE_TYPE
        0x00,                   // AceFlags: none (no inheritance)
        0x14, 0x00,             // AceSize = 20
        0x00, 0x00, 0x00, 0x10, // Mask = GENERIC_ALL
        0x01, 0x01,             // SID revision 1, 1 sub-authority
        0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // SECURITY_NT_AUTHORITY
        0x12, 0x00, 0x00, 0x00, // 18 (LocalSystem)
        // ACE 2: (A;;GA;;;BA)
        0x00, 0x00,
        0x18, 0x00,             // AceSize = 24
        0x00, 0x00, 0x00, 0x10, // GENERIC_ALL
        0x01, 0x02,             // SID revision 1, 2 sub-authorities
        0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x20, 0x00, 0x00, 0x00, // 32 (BUILTIN)
        0x20, 0x02, 0x00, 0x00, // 544 (Administrators)
    ];

    #[test]
    fn control_device_descriptor_is_the_binary_form_of_the_sddl() {
        let sd = ControlDeviceDescriptor::new().unwrap();
        assert_eq!(sd.as_bytes(), &EXPECTED[..]);
        assert_eq!(CONTROL_DEVICE_SDDL, "D:P(A;;GA;;;SY)(A;;GA;;;BA)");
        assert_eq!(core::mem::align_of::<ControlDeviceDescriptor>(), 8);
    }

    #[test]
    fn lengths() {
        assert_eq!(sid_len(1), 12);
        assert_eq!(sid_len(2), 16);
        assert_eq!(
            self_relative_len(&CONTROL_DEVICE_ACES),
            Ok(CONTROL_DEVICE_SD_LEN)
        );
        assert_eq!(self_relative_len(&[]), Ok(28));
    }

    #[test]
    fn short_buffers_are_errors() {
        for n in 0..CONTROL_DEVICE_SD_LEN {
            let mut buf = vec![0u8; n];
            assert_eq!(
                build_self_relative(&CONTROL_DEVICE_ACES, true, &mut buf),
                Err(SdError::BufferTooSmall { need: 72 })
            );
        }
    }

    #[test]
    fn unprotected_and_empty_dacls() {
        let mut buf = [0u8; 28];
        assert_eq!(build_self_relative(&[], false, &mut buf), Ok(28));
        // D:  (an empty, present DACL: nobody has access) — control 0x8004, ACL of 8 bytes.
        assert_eq!(
            buf,
            [
                1, 0, 0x04, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 2, 0, 8, 0, 0,
                0, 0, 0
            ]
        );
    }

    #[test]
    fn oversized_sids_are_refused() {
        static SUBS: [u32; 16] = [0; 16];
        let big = AllowAce {
            mask: 1,
            sid: Sid {
                authority: SECURITY_NT_AUTHORITY,
                sub_authorities: &SUBS,
            },
        };
        assert_eq!(self_relative_len(&[big]), Err(SdError::TooLarge));
    }

    #[test]
    fn hex_trace_format() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Hex(&[0x01, 0xab, 0x00]).to_string(), "01ab00");
    }
}
