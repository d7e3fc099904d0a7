//! LNet ping info (`lnet_ping_info`), sender order: what a ping REPLY and a discovery PUT carry
//! (spec §8).

use super::{Endian, Nid, WireError};

pub const LNET_PROTO_PING_MAGIC: u32 = 0x7069_6E67;
pub const PING_INFO_HDR_SIZE: usize = 16;
pub const NI_STATUS_SIZE: usize = 16;
pub const LNET_NI_STATUS_UP: u32 = 0x15aa_c0de;
pub const LNET_NI_STATUS_DOWN: u32 = 0xdead_face;
pub const LNET_NI_STATUS_INVALID: u32 = 0;

/// `pi_features` bits (HEAD) — also B18's version numbers 1 and 2.
pub mod feat {
    pub const BASE: u32 = 1;
    pub const NI_STATUS: u32 = 2;
    pub const RTE_DISABLED: u32 = 4;
    pub const MULTI_RAIL: u32 = 8;
    pub const DISCOVERY: u32 = 16;
    pub const LARGE_ADDR: u32 = 32;
    pub const PRIMARY_LARGE: u32 = 64;
    pub const METADATA: u32 = 128;
    pub const BITS: u32 = 255;
}

/// One `lnet_ni_status` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NiStatus {
    pub nid: Nid,
    pub status: u32,
    /// HEAD: `ns_msg_size`; B18: unused.
    pub msg_size: u32,
}

/// A decoded ping-info header with a view of its entries (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingInfo<'a> {
    pub endian: Endian,
    pub features: u32,
    pub pid: u32,
    /// `pi_nnis` as received (may exceed the entries present if the reply was truncated).
    pub nnis: u32,
    entries: &'a [u8],
}

impl<'a> PingInfo<'a> {
    /// Decodes the header (magic in either order) and keeps a view of the whole entries present.
    /// Errors: `Short` (< 16 bytes), `BadMagic`.
    pub fn decode(buf: &'a [u8]) -> Result<PingInfo<'a>, WireError> {
        todo!("wire helper {}", buf.len())
    }

    /// The entries present in the buffer: min(nnis, whole entries in the bytes given).
    pub fn entries(&self) -> impl Iterator<Item = NiStatus> + 'a {
        let _ = self.entries;
        todo!("wire helper");
        #[allow(unreachable_code)]
        core::iter::empty()
    }
}

/// Writes a ping info with `entries` into `out`; returns the bytes written (16 + 16 × n).
pub fn encode_ping_info(
    endian: Endian,
    features: u32,
    pid: u32,
    entries: &[NiStatus],
    out: &mut [u8],
) -> Result<usize, WireError> {
    todo!(
        "wire helper {endian:?} {features} {pid} {} {}",
        entries.len(),
        out.len()
    )
}
