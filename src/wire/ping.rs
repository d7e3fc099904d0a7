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
        let chunk = self
            .entries
            .get(start..start.checked_add(NI_STATUS_SIZE)?)?;
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
    endian
        .put_u32(out, OFF_PI_FEATURES, features)
        .ok_or(short)?;
    endian.put_u32(out, OFF_PI_PID, pid).ok_or(short)?;
    endian.put_u32(out, OFF_PI_NNIS, nnis).ok_or(short)?;
    let slots = out.get_mut(OFF_PI_NI..).ok_or(short)?;
    for (chunk, entry) in slots.chunks_exact_mut(NI_STATUS_SIZE).zip(entries) {
        entry.write(chunk, endian).ok_or(short)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn entries() -> [NiStatus; 2] {
        [
            NiStatus {
                nid: Nid::LO_0,
                status: 1,
                msg_size: 0,
            },
            NiStatus {
                nid: Nid(0x0002_0000_C0A8_0001),
                status: LNET_NI_STATUS_UP,
                msg_size: 0,
            },
        ]
    }

    #[test]
    fn encode_decode_both_orders() {
        for e in [Endian::Little, Endian::Big] {
            let mut out = [0u8; 64];
            let n = encode_ping_info(e, feat::NI_STATUS, 12345, &entries(), &mut out).unwrap();
            assert_eq!(n, 48);
            let info = PingInfo::decode(&out[..n]).unwrap();
            assert_eq!(info.endian, e);
            assert_eq!(info.features, feat::NI_STATUS);
            assert_eq!(info.pid, 12345);
            assert_eq!(info.nnis, 2);
            assert_eq!(info.entries_present(), 2);
            assert!(!info.is_truncated());
            assert_eq!(info.wire_len(), 48);
            assert!(info.entries().eq(entries()));
            assert_eq!(info.entry(1), Some(entries()[1]));
            assert_eq!(info.entry(2), None);
        }
    }

    #[test]
    fn little_endian_layout() {
        let mut out = [0u8; 48];
        encode_ping_info(Endian::Little, 0x1e, 12345, &entries(), &mut out).unwrap();
        assert_eq!(
            &out[..16],
            b"gnip\x1e\x00\x00\x00\x39\x30\x00\x00\x02\x00\x00\x00"
        );
        assert_eq!(
            &out[16..32],
            &[0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&out[40..44], &[0xde, 0xc0, 0xaa, 0x15]);
    }

    #[test]
    fn truncated_and_short() {
        let mut out = [0u8; 48];
        encode_ping_info(Endian::Little, 2, 12345, &entries(), &mut out).unwrap();
        // Cut inside the second entry: only the first is present.
        let info = PingInfo::decode(&out[..40]).unwrap();
        assert_eq!(info.nnis, 2);
        assert_eq!(info.entries_present(), 1);
        assert!(info.is_truncated());
        assert_eq!(info.entries().count(), 1);
        // More bytes than announced: only nnis entries.
        let mut long = [0u8; 80];
        long[..48].copy_from_slice(&out);
        long[12] = 1;
        assert_eq!(PingInfo::decode(&long).unwrap().entries_present(), 1);
        for len in 0..16 {
            assert_eq!(
                PingInfo::decode(&out[..len]).map(|_| ()),
                Err(WireError::Short {
                    need: 16,
                    have: len
                })
            );
        }
        let mut bad = out;
        bad[0] = b'x';
        assert_eq!(
            PingInfo::decode(&bad).map(|_| ()),
            Err(WireError::BadMagic(0x7069_6e78))
        );
        let mut small = [0u8; 47];
        assert_eq!(
            encode_ping_info(Endian::Little, 2, 12345, &entries(), &mut small),
            Err(WireError::Short { need: 48, have: 47 })
        );
        assert_eq!(ping_info_size(usize::MAX), None);
    }
}
