//! LNet ping info (`lnet_ping_info`), sender order: what a ping REPLY and a discovery PUT carry
//! (spec §8).

use static_assertions::const_assert_eq;

use super::nid::NID_SIZE;
use super::{Endian, Nid, WireError};

pub const LNET_PROTO_PING_MAGIC: u32 = 0x7069_6E67;
pub const PING_INFO_HDR_SIZE: usize = 16;
pub const NI_STATUS_SIZE: usize = 16;
pub const LNET_NI_STATUS_UP: u32 = 0x15aa_c0de;
pub const LNET_NI_STATUS_DOWN: u32 = 0xdead_face;
pub const LNET_NI_STATUS_INVALID: u32 = 0;

pub const OFF_PI_MAGIC: usize = 0;
pub const OFF_PI_FEATURES: usize = OFF_PI_MAGIC + 4;
pub const OFF_PI_PID: usize = OFF_PI_FEATURES + 4;
pub const OFF_PI_NNIS: usize = OFF_PI_PID + 4;
pub const OFF_PI_NI: usize = OFF_PI_NNIS + 4;
// Inside one `lnet_ni_status` entry.
pub const OFF_NS_NID: usize = 0;
pub const OFF_NS_STATUS: usize = OFF_NS_NID + NID_SIZE;
pub const OFF_NS_MSG_SIZE: usize = OFF_NS_STATUS + 4;

// Spec §1.8 / §8.2.
const_assert_eq!(OFF_PI_MAGIC, 0);
const_assert_eq!(OFF_PI_FEATURES, 4);
const_assert_eq!(OFF_PI_PID, 8);
const_assert_eq!(OFF_PI_NNIS, 12);
const_assert_eq!(OFF_PI_NI, 16);
const_assert_eq!(OFF_PI_NI, PING_INFO_HDR_SIZE);
const_assert_eq!(PING_INFO_HDR_SIZE, 16);
const_assert_eq!(OFF_NS_NID, 0);
const_assert_eq!(OFF_NS_STATUS, 8);
const_assert_eq!(OFF_NS_MSG_SIZE, 12);
const_assert_eq!(OFF_NS_MSG_SIZE + 4, NI_STATUS_SIZE);
const_assert_eq!(NI_STATUS_SIZE, 16);
const_assert_eq!(feat::BITS, 255);
const_assert_eq!(
    feat::BASE
        | feat::NI_STATUS
        | feat::RTE_DISABLED
        | feat::MULTI_RAIL
        | feat::DISCOVERY
        | feat::LARGE_ADDR
        | feat::PRIMARY_LARGE
        | feat::METADATA,
    feat::BITS
);

/// Bytes of a ping info with `n` NID4 entries (`LNET_PING_INFO_SIZE`), `None` on overflow.
pub const fn ping_info_size(n: usize) -> Option<usize> {
    match n.checked_mul(NI_STATUS_SIZE) {
        Some(entries) => entries.checked_add(PING_INFO_HDR_SIZE),
        None => None,
    }
}

impl NiStatus {
    /// Reads one entry from the first 16 bytes of `b`.
    fn read(b: &[u8], e: Endian) -> Option<NiStatus> {
        Some(NiStatus {
            nid: Nid(e.get_u64(b, OFF_NS_NID)?),
            status: e.get_u32(b, OFF_NS_STATUS)?,
            msg_size: e.get_u32(b, OFF_NS_MSG_SIZE)?,
        })
    }

    fn write(&self, b: &mut [u8], e: Endian) -> Option<()> {
        e.put_u64(b, OFF_NS_NID, self.nid.0)?;
        e.put_u32(b, OFF_NS_STATUS, self.status)?;
        e.put_u32(b, OFF_NS_MSG_SIZE, self.msg_size)
    }
}

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
    /// Errors: `Short` (< 16 bytes), `BadMagic` (carrying the first word read as little-endian).
    pub fn decode(buf: &'a [u8]) -> Result<PingInfo<'a>, WireError> {
        let short = WireError::Short {
            need: PING_INFO_HDR_SIZE,
            have: buf.len(),
        };
        let le = Endian::Little;
        let be = Endian::Big;
        let magic_le = le.get_u32(buf, OFF_PI_MAGIC).ok_or(short)?;
        let endian = if magic_le == LNET_PROTO_PING_MAGIC {
            le
        } else if be.get_u32(buf, OFF_PI_MAGIC) == Some(LNET_PROTO_PING_MAGIC) {
            be
        } else {
            return Err(WireError::BadMagic(magic_le));
        };
        let features = endian.get_u32(buf, OFF_PI_FEATURES).ok_or(short)?;
        let pid = endian.get_u32(buf, OFF_PI_PID).ok_or(short)?;
        let nnis = endian.get_u32(buf, OFF_PI_NNIS).ok_or(short)?;
        let rest = buf.get(OFF_PI_NI..).ok_or(short)?;
        // Truncated replies are legitimate (the pinger's buffer may be smaller than the list):
        // keep whole entries only, and never more than announced.
        let whole = rest.len() / NI_STATUS_SIZE;
        let present = usize::try_from(nnis).map_or(whole, |n| n.min(whole));
        let entries = rest
            .get(..present.saturating_mul(NI_STATUS_SIZE))
            .unwrap_or(&[]);
        Ok(PingInfo {
            endian,
            features,
            pid,
            nnis,
            entries,
        })
    }

    /// The entries present in the buffer: min(nnis, whole entries in the bytes given).
    pub fn entries(&self) -> impl Iterator<Item = NiStatus> + 'a {
        let endian = self.endian;
        self.entries
            .chunks_exact(NI_STATUS_SIZE)
            .filter_map(move |chunk| NiStatus::read(chunk, endian))
    }

    /// How many entries [`PingInfo::entries`] yields.
    pub fn entries_present(&self) -> usize {
        self.entries.len() / NI_STATUS_SIZE
    }

    /// True when fewer entries are present than `nnis` announces.
    pub fn is_truncated(&self) -> bool {
        u32::try_from(self.entries_present()).map_or(true, |n| n < self.nnis)
    }

    /// Bytes the header and the present entries occupy.
    pub fn wire_len(&self) -> usize {
        PING_INFO_HDR_SIZE.saturating_add(self.entries.len())
    }

    /// The `i`-th entry, if present.
    pub fn entry(&self, i: usize) -> Option<NiStatus> {
        let start = i.checked_mul(NI_STATUS_SIZE)?;
        let chunk = self.entries.get(start..start.checked_add(NI_STATUS_SIZE)?)?;
        NiStatus::read(chunk, self.endian)
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
    let n = entries.len();
    let nnis = u32::try_from(n).map_err(|_| WireError::BadPingInfo)?;
    let total = ping_info_size(n).ok_or(WireError::BadPingInfo)?;
    let short = WireError::Short {
        need: total,
        have: out.len(),
    };
    let out = out.get_mut(..total).ok_or(short)?;
    endian
        .put_u32(out, OFF_PI_MAGIC, LNET_PROTO_PING_MAGIC)
        .ok_or(short)?;
    endian.put_u32(out, OFF_PI_FEATURES, features).ok_or(short)?;
    endian.put_u32(out, OFF_PI_PID, pid).ok_or(short)?;
    endian.put_u32(out, OFF_PI_NNIS, nnis).ok_or(short)?;
    let slots = out.get_mut(OFF_PI_NI..).ok_or(short)?;
    for (chunk, entry) in slots.chunks_exact_mut(NI_STATUS_SIZE).zip(entries) {
        entry.write(chunk, endian).ok_or(short)?;
    }
    Ok(total)
}
