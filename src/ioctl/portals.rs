//! The Portals-era request (Lustre 1.4, "P14"): `portal_ioctl_data` followed **inline** by a
//! `portals_cfg`, carried by [`IOCTL_PORTAL_NAL_CMD`](super::codes::IOCTL_PORTAL_NAL_CMD).
//!
//! ## The inline rule
//!
//! On Linux the kernel copied the `portals_cfg` from the user pointer `ioc_pbuf1`. A Windows
//! driver must never follow a user pointer found inside a METHOD_BUFFERED request (it would be
//! reading another address space, at the caller's choosing), so tdinal moves the `portals_cfg`
//! into the same buffer:
//!
//! ```text
//! offset 0    portal_ioctl_data (136 bytes)   ioc_len = 224, ioc_plen1 = 88
//! offset 136  portals_cfg (88 bytes)
//! ```
//!
//! - `ioc_len` must equal the input buffer length, and must be 224.
//! - `ioc_plen1` must be 88 (= `sizeof(portals_cfg)`), `ioc_plen2`, `ioc_inllen1`, `ioc_inllen2`
//!   must be 0.
//! - All four pointer fields (`ioc_inlbuf1/2`, `ioc_pbuf1/2`) are **ignored**: never read as
//!   addresses, never validated. A mechanically ported `ptlctl` that still stores `&pcfg` in
//!   `ioc_pbuf1` works as long as it also copies the `portals_cfg` inline; our encoder writes 0.
//! - `ioc_nal`, `ioc_nal_cmd` and `ioc_nid` may mirror the `portals_cfg` (Lustre's tools copy the
//!   command and NID there): each must be 0 or equal to `pcfg_nal` / `pcfg_command` / `pcfg_nid`.
//!   Every other `portal_ioctl_data` field must be 0.
//! - `pcfg_version` must be [`PORTALS_CFG_VERSION`], `pcfg_nal` must be [`SOCKNAL`];
//!   `pcfg_padding`, `pcfg_nid2`, `pcfg_nid3`, `pcfg_plen1`, `pcfg_plen2` must be 0 and
//!   `pcfg_alloc_size` 0 or 88. Which other `pcfg_*` fields a command uses is decided per command
//!   (`command.rs`); unused ones must be 0.
//! - Compiler padding bytes (76..80, 92..96, 108..112, 124..128 and 220..224) are ignored.

use core::mem::{offset_of, size_of};

use static_assertions::const_assert_eq;

use super::bytes::{get_u32, get_u64, put_u32, put_u64, zero_prefix};
use super::error::IoctlError;

/// `PORTAL_IOCTL_VERSION`.
pub const PORTAL_IOCTL_VERSION: u32 = 0x0001_0008;
/// `PORTALS_CFG_VERSION`.
pub const PORTALS_CFG_VERSION: u32 = 0xecf6_0001;
/// The Portals NAL number of the TCP socket NAL.
pub const SOCKNAL: u32 = 2;
/// `sizeof(struct portal_ioctl_data)` on x86_64.
pub const PORTAL_IOCTL_DATA_LEN: usize = 136;
/// `sizeof(struct portals_cfg)` on x86_64.
pub const PORTALS_CFG_LEN: usize = 88;
/// Offset of the inline `portals_cfg` in a request.
pub const PCFG_OFFSET: usize = PORTAL_IOCTL_DATA_LEN;
/// The whole Portals-era request: `portal_ioctl_data` + inline `portals_cfg`.
pub const PORTALS_REQUEST_LEN: usize = 224;
const_assert_eq!(PORTALS_REQUEST_LEN, PORTAL_IOCTL_DATA_LEN + PORTALS_CFG_LEN);

/// `struct portal_ioctl_data` with its x86_64 layout (pointers as `u64`). `#[repr(C)]` so the
/// compiler lays it out like the C one; the asserts below pin every offset to the spec. Values
/// are read and written field by field (little-endian), never by transmuting bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortalIoctlData {
    pub ioc_len: u32,
    pub ioc_version: u32,
    pub ioc_nid: u64,
    pub ioc_nid2: u64,
    pub ioc_nid3: u64,
    pub ioc_count: u32,
    pub ioc_nal: u32,
    pub ioc_nal_cmd: u32,
    pub ioc_fd: u32,
    pub ioc_id: u32,
    pub ioc_flags: u32,
    pub ioc_size: u32,
    pub ioc_wait: u32,
    pub ioc_timeout: u32,
    pub ioc_misc: u32,
    pub ioc_inllen1: u32,
    pub ioc_inlbuf1: u64,
    pub ioc_inllen2: u32,
    pub ioc_inlbuf2: u64,
    pub ioc_plen1: u32,
    pub ioc_pbuf1: u64,
    pub ioc_plen2: u32,
    pub ioc_pbuf2: u64,
}

/// Field offsets of `portal_ioctl_data` (spec §7.1).
pub mod ioc_off {
    pub const LEN: usize = 0;
    pub const VERSION: usize = 4;
    pub const NID: usize = 8;
    pub const NID2: usize = 16;
    pub const NID3: usize = 24;
    pub const COUNT: usize = 32;
    pub const NAL: usize = 36;
    pub const NAL_CMD: usize = 40;
    pub const FD: usize = 44;
    pub const ID: usize = 48;
    pub const FLAGS: usize = 52;
    pub const SIZE: usize = 56;
    pub const WAIT: usize = 60;
    pub const TIMEOUT: usize = 64;
    pub const MISC: usize = 68;
    pub const INLLEN1: usize = 72;
    pub const INLBUF1: usize = 80;
    pub const INLLEN2: usize = 88;
    pub const INLBUF2: usize = 96;
    pub const PLEN1: usize = 104;
    pub const PBUF1: usize = 112;
    pub const PLEN2: usize = 120;
    pub const PBUF2: usize = 128;
}

const_assert_eq!(size_of::<PortalIoctlData>(), PORTAL_IOCTL_DATA_LEN);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_len), ioc_off::LEN);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_version), ioc_off::VERSION);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_nid), ioc_off::NID);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_nid2), ioc_off::NID2);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_nid3), ioc_off::NID3);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_count), ioc_off::COUNT);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_nal), ioc_off::NAL);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_nal_cmd), ioc_off::NAL_CMD);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_fd), ioc_off::FD);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_id), ioc_off::ID);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_flags), ioc_off::FLAGS);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_size), ioc_off::SIZE);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_wait), ioc_off::WAIT);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_timeout), ioc_off::TIMEOUT);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_misc), ioc_off::MISC);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_inllen1), ioc_off::INLLEN1);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_inlbuf1), ioc_off::INLBUF1);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_inllen2), ioc_off::INLLEN2);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_inlbuf2), ioc_off::INLBUF2);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_plen1), ioc_off::PLEN1);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_pbuf1), ioc_off::PBUF1);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_plen2), ioc_off::PLEN2);
const_assert_eq!(offset_of!(PortalIoctlData, ioc_pbuf2), ioc_off::PBUF2);

impl PortalIoctlData {
    /// Reads the 136-byte structure from the start of `buf` (no validation).
    pub fn read(buf: &[u8]) -> Result<PortalIoctlData, IoctlError> {
        use ioc_off as o;
        if buf.len() < PORTAL_IOCTL_DATA_LEN {
            return Err(IoctlError::ShortInput {
                need: PORTAL_IOCTL_DATA_LEN,
                have: buf.len(),
            });
        }
        Ok(PortalIoctlData {
            ioc_len: get_u32(buf, o::LEN)?,
            ioc_version: get_u32(buf, o::VERSION)?,
            ioc_nid: get_u64(buf, o::NID)?,
            ioc_nid2: get_u64(buf, o::NID2)?,
            ioc_nid3: get_u64(buf, o::NID3)?,
            ioc_count: get_u32(buf, o::COUNT)?,
            ioc_nal: get_u32(buf, o::NAL)?,
            ioc_nal_cmd: get_u32(buf, o::NAL_CMD)?,
            ioc_fd: get_u32(buf, o::FD)?,
            ioc_id: get_u32(buf, o::ID)?,
            ioc_flags: get_u32(buf, o::FLAGS)?,
            ioc_size: get_u32(buf, o::SIZE)?,
            ioc_wait: get_u32(buf, o::WAIT)?,
            ioc_timeout: get_u32(buf, o::TIMEOUT)?,
            ioc_misc: get_u32(buf, o::MISC)?,
            ioc_inllen1: get_u32(buf, o::INLLEN1)?,
            ioc_inlbuf1: get_u64(buf, o::INLBUF1)?,
            ioc_inllen2: get_u32(buf, o::INLLEN2)?,
            ioc_inlbuf2: get_u64(buf, o::INLBUF2)?,
            ioc_plen1: get_u32(buf, o::PLEN1)?,
            ioc_pbuf1: get_u64(buf, o::PBUF1)?,
            ioc_plen2: get_u32(buf, o::PLEN2)?,
            ioc_pbuf2: get_u64(buf, o::PBUF2)?,
        })
    }

    /// Writes the 136 bytes to the start of `out` (padding bytes zeroed).
    pub fn write(&self, out: &mut [u8]) -> Result<(), IoctlError> {
        use ioc_off as o;
        zero_prefix(out, PORTAL_IOCTL_DATA_LEN)?;
        put_u32(out, o::LEN, self.ioc_len)?;
        put_u32(out, o::VERSION, self.ioc_version)?;
        put_u64(out, o::NID, self.ioc_nid)?;
        put_u64(out, o::NID2, self.ioc_nid2)?;
        put_u64(out, o::NID3, self.ioc_nid3)?;
        put_u32(out, o::COUNT, self.ioc_count)?;
        put_u32(out, o::NAL, self.ioc_nal)?;
        put_u32(out, o::NAL_CMD, self.ioc_nal_cmd)?;
        put_u32(out, o::FD, self.ioc_fd)?;
        put_u32(out, o::ID, self.ioc_id)?;
        put_u32(out, o::FLAGS, self.ioc_flags)?;
        put_u32(out, o::SIZE, self.ioc_size)?;
        put_u32(out, o::WAIT, self.ioc_wait)?;
        put_u32(out, o::TIMEOUT, self.ioc_timeout)?;
        put_u32(out, o::MISC, self.ioc_misc)?;
        put_u32(out, o::INLLEN1, self.ioc_inllen1)?;
        put_u64(out, o::INLBUF1, self.ioc_inlbuf1)?;
        put_u32(out, o::INLLEN2, self.ioc_inllen2)?;
        put_u64(out, o::INLBUF2, self.ioc_inlbuf2)?;
        put_u32(out, o::PLEN1, self.ioc_plen1)?;
        put_u64(out, o::PBUF1, self.ioc_pbuf1)?;
        put_u32(out, o::PLEN2, self.ioc_plen2)?;
        put_u64(out, o::PBUF2, self.ioc_pbuf2)?;
        Ok(())
    }
}

/// `struct portals_cfg` with its x86_64 layout (88 bytes: 84 of fields + 4 of tail padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortalsCfg {
    pub pcfg_version: u32,
    pub pcfg_command: u32,
    pub pcfg_nal: u32,
    pub pcfg_flags: u32,
    pub pcfg_gw_nal: u32,
    pub pcfg_padding: u32,
    pub pcfg_nid: u64,
    pub pcfg_nid2: u64,
    pub pcfg_nid3: u64,
    pub pcfg_id: u32,
    pub pcfg_misc: u32,
    pub pcfg_fd: u32,
    pub pcfg_count: u32,
    pub pcfg_size: u32,
    pub pcfg_wait: u32,
    pub pcfg_plen1: u32,
    pub pcfg_plen2: u32,
    pub pcfg_alloc_size: u32,
}

/// Field offsets of `portals_cfg`, relative to its start (spec §7.1).
pub mod pcfg_off {
    pub const VERSION: usize = 0;
    pub const COMMAND: usize = 4;
    pub const NAL: usize = 8;
    pub const FLAGS: usize = 12;
    pub const GW_NAL: usize = 16;
    pub const PADDING: usize = 20;
    pub const NID: usize = 24;
    pub const NID2: usize = 32;
    pub const NID3: usize = 40;
    pub const ID: usize = 48;
    pub const MISC: usize = 52;
    pub const FD: usize = 56;
    pub const COUNT: usize = 60;
    pub const SIZE: usize = 64;
    pub const WAIT: usize = 68;
    pub const PLEN1: usize = 72;
    pub const PLEN2: usize = 76;
    pub const ALLOC_SIZE: usize = 80;
}

const_assert_eq!(size_of::<PortalsCfg>(), PORTALS_CFG_LEN);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_version), pcfg_off::VERSION);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_command), pcfg_off::COMMAND);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_nal), pcfg_off::NAL);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_flags), pcfg_off::FLAGS);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_gw_nal), pcfg_off::GW_NAL);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_padding), pcfg_off::PADDING);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_nid), pcfg_off::NID);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_nid2), pcfg_off::NID2);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_nid3), pcfg_off::NID3);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_id), pcfg_off::ID);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_misc), pcfg_off::MISC);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_fd), pcfg_off::FD);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_count), pcfg_off::COUNT);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_size), pcfg_off::SIZE);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_wait), pcfg_off::WAIT);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_plen1), pcfg_off::PLEN1);
const_assert_eq!(offset_of!(PortalsCfg, pcfg_plen2), pcfg_off::PLEN2);
const_assert_eq!(
    offset_of!(PortalsCfg, pcfg_alloc_size),
    pcfg_off::ALLOC_SIZE
);

impl PortalsCfg {
    /// A zeroed `portals_cfg` for `command` on SOCKNAL with the right version (Lustre's
    /// `PCFG_INIT` does the same, plus the NAL).
    pub const fn new(command: u32) -> PortalsCfg {
        PortalsCfg {
            pcfg_version: PORTALS_CFG_VERSION,
            pcfg_command: command,
            pcfg_nal: SOCKNAL,
            pcfg_flags: 0,
            pcfg_gw_nal: 0,
            pcfg_padding: 0,
            pcfg_nid: 0,
            pcfg_nid2: 0,
            pcfg_nid3: 0,
            pcfg_id: 0,
            pcfg_misc: 0,
            pcfg_fd: 0,
            pcfg_count: 0,
            pcfg_size: 0,
            pcfg_wait: 0,
            pcfg_plen1: 0,
            pcfg_plen2: 0,
            pcfg_alloc_size: 0,
        }
    }

    /// Reads the 88-byte structure from the start of `buf` (no validation).
    pub fn read(buf: &[u8]) -> Result<PortalsCfg, IoctlError> {
        use pcfg_off as o;
        if buf.len() < PORTALS_CFG_LEN {
            return Err(IoctlError::ShortInput {
                need: PORTALS_CFG_LEN,
                have: buf.len(),
            });
        }
        Ok(PortalsCfg {
            pcfg_version: get_u32(buf, o::VERSION)?,
            pcfg_command: get_u32(buf, o::COMMAND)?,
            pcfg_nal: get_u32(buf, o::NAL)?,
            pcfg_flags: get_u32(buf, o::FLAGS)?,
            pcfg_gw_nal: get_u32(buf, o::GW_NAL)?,
            pcfg_padding: get_u32(buf, o::PADDING)?,
            pcfg_nid: get_u64(buf, o::NID)?,
            pcfg_nid2: get_u64(buf, o::NID2)?,
            pcfg_nid3: get_u64(buf, o::NID3)?,
            pcfg_id: get_u32(buf, o::ID)?,
            pcfg_misc: get_u32(buf, o::MISC)?,
            pcfg_fd: get_u32(buf, o::FD)?,
            pcfg_count: get_u32(buf, o::COUNT)?,
            pcfg_size: get_u32(buf, o::SIZE)?,
            pcfg_wait: get_u32(buf, o::WAIT)?,
            pcfg_plen1: get_u32(buf, o::PLEN1)?,
            pcfg_plen2: get_u32(buf, o::PLEN2)?,
            pcfg_alloc_size: get_u32(buf, o::ALLOC_SIZE)?,
        })
    }

    /// Writes the 88 bytes to the start of `out` (tail padding zeroed).
    pub fn write(&self, out: &mut [u8]) -> Result<(), IoctlError> {
        use pcfg_off as o;
        zero_prefix(out, PORTALS_CFG_LEN)?;
        put_u32(out, o::VERSION, self.pcfg_version)?;
        put_u32(out, o::COMMAND, self.pcfg_command)?;
        put_u32(out, o::NAL, self.pcfg_nal)?;
        put_u32(out, o::FLAGS, self.pcfg_flags)?;
        put_u32(out, o::GW_NAL, self.pcfg_gw_nal)?;
        put_u32(out, o::PADDING, self.pcfg_padding)?;
        put_u64(out, o::NID, self.pcfg_nid)?;
        put_u64(out, o::NID2, self.pcfg_nid2)?;
        put_u64(out, o::NID3, self.pcfg_nid3)?;
        put_u32(out, o::ID, self.pcfg_id)?;
        put_u32(out, o::MISC, self.pcfg_misc)?;
        put_u32(out, o::FD, self.pcfg_fd)?;
        put_u32(out, o::COUNT, self.pcfg_count)?;
        put_u32(out, o::SIZE, self.pcfg_size)?;
        put_u32(out, o::WAIT, self.pcfg_wait)?;
        put_u32(out, o::PLEN1, self.pcfg_plen1)?;
        put_u32(out, o::PLEN2, self.pcfg_plen2)?;
        put_u32(out, o::ALLOC_SIZE, self.pcfg_alloc_size)?;
        Ok(())
    }

    /// The command-specific fields (everything but version/command/nal and the always-reserved
    /// ones), as (name, value, bit) for the per-command "unused must be 0" check.
    pub(crate) fn command_fields(&self) -> [(&'static str, u64, u32); 9] {
        [
            ("pcfg_flags", u64::from(self.pcfg_flags), pcfg_field::FLAGS),
            (
                "pcfg_gw_nal",
                u64::from(self.pcfg_gw_nal),
                pcfg_field::GW_NAL,
            ),
            ("pcfg_nid", self.pcfg_nid, pcfg_field::NID),
            ("pcfg_id", u64::from(self.pcfg_id), pcfg_field::ID),
            ("pcfg_misc", u64::from(self.pcfg_misc), pcfg_field::MISC),
            ("pcfg_fd", u64::from(self.pcfg_fd), pcfg_field::FD),
            ("pcfg_count", u64::from(self.pcfg_count), pcfg_field::COUNT),
            ("pcfg_size", u64::from(self.pcfg_size), pcfg_field::SIZE),
            ("pcfg_wait", u64::from(self.pcfg_wait), pcfg_field::WAIT),
        ]
    }
}

/// Bits naming the command-specific `portals_cfg` fields (see `PortalsCfg::command_fields`).
pub(crate) mod pcfg_field {
    pub const FLAGS: u32 = 1 << 0;
    pub const GW_NAL: u32 = 1 << 1;
    pub const NID: u32 = 1 << 2;
    pub const ID: u32 = 1 << 3;
    pub const MISC: u32 = 1 << 4;
    pub const FD: u32 = 1 << 5;
    pub const COUNT: u32 = 1 << 6;
    pub const SIZE: u32 = 1 << 7;
    pub const WAIT: u32 = 1 << 8;
}

/// A Portals-era request whose envelope has been validated (see the module docs); the
/// command-specific fields are not validated yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalsRequest {
    pub data: PortalIoctlData,
    pub cfg: PortalsCfg,
}

const ENVELOPE: &str = "IOC_PORTAL_NAL_CMD";

fn reserved(field: &'static str, value: u64) -> Result<(), IoctlError> {
    if value == 0 {
        Ok(())
    } else {
        Err(IoctlError::ReservedNotZero {
            field,
            value,
            command: ENVELOPE,
        })
    }
}

fn mirror(
    field: &'static str,
    value: u64,
    cfg_value: u64,
    expected: &'static str,
) -> Result<(), IoctlError> {
    if value == 0 || value == cfg_value {
        Ok(())
    } else {
        Err(IoctlError::InvalidField {
            field,
            value,
            expected,
        })
    }
}

/// Validates the envelope of a Portals-era request (the rules in the module docs).
pub fn parse_request(input: &[u8]) -> Result<PortalsRequest, IoctlError> {
    let have = input.len();
    // A request built the Linux way (portals_cfg behind ioc_pbuf1) is exactly 136 bytes long
    // and says so in ioc_len: tell the caller about the inline rule rather than "too short".
    if have == PORTAL_IOCTL_DATA_LEN
        && get_u32(input, ioc_off::LEN)? as usize == PORTAL_IOCTL_DATA_LEN
    {
        return Err(IoctlError::InvalidField {
            field: "ioc_len",
            value: PORTAL_IOCTL_DATA_LEN as u64,
            expected: "224: the portals_cfg must follow portal_ioctl_data inline \
                       (ioc_pbuf1 is never followed)",
        });
    }
    if have < PORTALS_REQUEST_LEN {
        return Err(IoctlError::ShortInput {
            need: PORTALS_REQUEST_LEN,
            have,
        });
    }
    let data = PortalIoctlData::read(input)?;
    if data.ioc_len as usize != have {
        return Err(IoctlError::LengthMismatch {
            ioc_len: data.ioc_len,
            buffer: have,
        });
    }
    if data.ioc_version != PORTAL_IOCTL_VERSION {
        return Err(IoctlError::BadVersion {
            field: "ioc_version",
            got: data.ioc_version,
            expected: PORTAL_IOCTL_VERSION,
        });
    }
    if have != PORTALS_REQUEST_LEN {
        return Err(IoctlError::InvalidField {
            field: "ioc_len",
            value: u64::from(data.ioc_len),
            expected: "224 = portal_ioctl_data (136) + inline portals_cfg (88)",
        });
    }
    if data.ioc_plen1 as usize != PORTALS_CFG_LEN {
        return Err(IoctlError::InvalidField {
            field: "ioc_plen1",
            value: u64::from(data.ioc_plen1),
            expected: "88 (sizeof portals_cfg, which follows inline)",
        });
    }
    reserved("ioc_inllen1", u64::from(data.ioc_inllen1))?;
    reserved("ioc_inllen2", u64::from(data.ioc_inllen2))?;
    reserved("ioc_plen2", u64::from(data.ioc_plen2))?;
    reserved("ioc_nid2", data.ioc_nid2)?;
    reserved("ioc_nid3", data.ioc_nid3)?;
    reserved("ioc_count", u64::from(data.ioc_count))?;
    reserved("ioc_fd", u64::from(data.ioc_fd))?;
    reserved("ioc_id", u64::from(data.ioc_id))?;
    reserved("ioc_flags", u64::from(data.ioc_flags))?;
    reserved("ioc_size", u64::from(data.ioc_size))?;
    reserved("ioc_wait", u64::from(data.ioc_wait))?;
    reserved("ioc_timeout", u64::from(data.ioc_timeout))?;
    reserved("ioc_misc", u64::from(data.ioc_misc))?;

    let cfg = PortalsCfg::read(input.get(PCFG_OFFSET..).unwrap_or_default())?;
    if cfg.pcfg_version != PORTALS_CFG_VERSION {
        return Err(IoctlError::BadVersion {
            field: "pcfg_version",
            got: cfg.pcfg_version,
            expected: PORTALS_CFG_VERSION,
        });
    }
    if cfg.pcfg_nal != SOCKNAL {
        return Err(IoctlError::WrongNal { got: cfg.pcfg_nal });
    }
    mirror(
        "ioc_nal",
        u64::from(data.ioc_nal),
        u64::from(cfg.pcfg_nal),
        "0 or pcfg_nal (2)",
    )?;
    mirror(
        "ioc_nal_cmd",
        u64::from(data.ioc_nal_cmd),
        u64::from(cfg.pcfg_command),
        "0 or pcfg_command",
    )?;
    mirror("ioc_nid", data.ioc_nid, cfg.pcfg_nid, "0 or pcfg_nid")?;
    reserved("pcfg_padding", u64::from(cfg.pcfg_padding))?;
    reserved("pcfg_nid2", cfg.pcfg_nid2)?;
    reserved("pcfg_nid3", cfg.pcfg_nid3)?;
    reserved("pcfg_plen1", u64::from(cfg.pcfg_plen1))?;
    reserved("pcfg_plen2", u64::from(cfg.pcfg_plen2))?;
    if cfg.pcfg_alloc_size != 0 && cfg.pcfg_alloc_size as usize != PORTALS_CFG_LEN {
        return Err(IoctlError::InvalidField {
            field: "pcfg_alloc_size",
            value: u64::from(cfg.pcfg_alloc_size),
            expected: "0 or 88",
        });
    }
    Ok(PortalsRequest { data, cfg })
}

/// Builds a Portals-era request for `cfg` in `out`: `portal_ioctl_data` (ioc_len 224, version,
/// ioc_plen1 88, pointers 0, and `ioc_nal`/`ioc_nal_cmd`/`ioc_nid` mirroring the cfg as Lustre's
/// tools do) followed by `cfg`. Returns 224.
pub fn build_request(cfg: &PortalsCfg, out: &mut [u8]) -> Result<usize, IoctlError> {
    if out.len() < PORTALS_REQUEST_LEN {
        return Err(IoctlError::OutputTooSmall {
            need: PORTALS_REQUEST_LEN,
            have: out.len(),
        });
    }
    let data = PortalIoctlData {
        ioc_len: PORTALS_REQUEST_LEN as u32,
        ioc_version: PORTAL_IOCTL_VERSION,
        ioc_nid: cfg.pcfg_nid,
        ioc_nal: cfg.pcfg_nal,
        ioc_nal_cmd: cfg.pcfg_command,
        ioc_plen1: PORTALS_CFG_LEN as u32,
        ..PortalIoctlData::default()
    };
    data.write(out)?;
    let tail = out.get_mut(PCFG_OFFSET..).unwrap_or_default();
    cfg.write(tail)?;
    Ok(PORTALS_REQUEST_LEN)
}
