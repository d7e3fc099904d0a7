//! The V2/V3 `ksock_msg` header (24 bytes, sender order) that precedes every message after the
//! hello: type, checksum and two zero-copy cookies (spec §4.1–4.2).

use static_assertions::const_assert_eq;

use super::csum::{crc32_le, CRC32_SEED};
use super::{Endian, WireError};

pub const KSOCK_MSG_NOOP: u32 = 0xc0;
pub const KSOCK_MSG_LNET: u32 = 0xc1;
pub const KSOCK_HDR_SIZE: usize = 24;
/// Offset of `ksm_csum` inside the header (zeroed while the checksum is computed).
pub const KSOCK_CSUM_OFFSET: usize = 4;
/// The keepalive "cookie" (`SOCKNAL_KEEPALIVE_PING`), V3 only.
pub const KEEPALIVE_PING_COOKIE: u64 = 1;
/// The first ZC request cookie a sender allocates (0 = none, 1 = keepalive).
pub const FIRST_ZC_COOKIE: u64 = KEEPALIVE_PING_COOKIE + 1;

pub const OFF_KSM_TYPE: usize = 0;
pub const OFF_KSM_CSUM: usize = OFF_KSM_TYPE + 4;
pub const OFF_KSM_ZC_COOKIE0: usize = OFF_KSM_CSUM + 4;
pub const OFF_KSM_ZC_COOKIE1: usize = OFF_KSM_ZC_COOKIE0 + 8;
/// Where the LNet header starts in a `KSOCK_MSG_LNET` message.
pub const OFF_KSM_LNET_HDR: usize = OFF_KSM_ZC_COOKIE1 + 8;

// Spec §4.1.
const_assert_eq!(OFF_KSM_TYPE, 0);
const_assert_eq!(OFF_KSM_CSUM, 4);
const_assert_eq!(OFF_KSM_CSUM, KSOCK_CSUM_OFFSET);
const_assert_eq!(OFF_KSM_ZC_COOKIE0, 8);
const_assert_eq!(OFF_KSM_ZC_COOKIE1, 16);
const_assert_eq!(OFF_KSM_LNET_HDR, 24);
const_assert_eq!(KSOCK_HDR_SIZE, OFF_KSM_LNET_HDR);
const_assert_eq!(KSOCK_HDR_SIZE + super::lnet::LNET_HDR_SIZE, 96);

impl KsockMsgType {
    pub fn from_wire(v: u32) -> Option<KsockMsgType> {
        match v {
            KSOCK_MSG_NOOP => Some(KsockMsgType::Noop),
            KSOCK_MSG_LNET => Some(KsockMsgType::Lnet),
            _ => None,
        }
    }
    pub const fn to_wire(self) -> u32 {
        match self {
            KsockMsgType::Noop => KSOCK_MSG_NOOP,
            KsockMsgType::Lnet => KSOCK_MSG_LNET,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KsockMsgType {
    /// Header only: carries ZC-ACKs or a keepalive.
    Noop,
    /// Followed by a 72-byte LNet header and its payload.
    Lnet,
}

/// A decoded ksock header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KsockHdr {
    pub msg_type: KsockMsgType,
    /// CRC (spec §4.7); 0 = no checksum.
    pub csum: u32,
    /// `[0]`: ZC request cookie (LNET) or range/pair partner (NOOP); `[1]`: ZC-ACK cookie.
    pub zc_cookies: [u64; 2],
}

impl KsockHdr {
    pub const fn noop(ack: u64) -> KsockHdr {
        KsockHdr {
            msg_type: KsockMsgType::Noop,
            csum: 0,
            zc_cookies: [0, ack],
        }
    }
    pub const fn lnet() -> KsockHdr {
        KsockHdr {
            msg_type: KsockMsgType::Lnet,
            csum: 0,
            zc_cookies: [0, 0],
        }
    }

    /// Decodes 24 bytes written in `endian` (the connection's order, learned from the hello).
    /// Errors: `Short`, `BadKsockType`. The type word is checked as soon as 4 bytes are there,
    /// so garbage is reported without waiting for a full header.
    pub fn decode(buf: &[u8], endian: Endian) -> Result<KsockHdr, WireError> {
        let short = WireError::Short {
            need: KSOCK_HDR_SIZE,
            have: buf.len(),
        };
        let raw_type = endian.get_u32(buf, OFF_KSM_TYPE).ok_or(short)?;
        let msg_type =
            KsockMsgType::from_wire(raw_type).ok_or(WireError::BadKsockType(raw_type))?;
        let hdr = buf.get(..KSOCK_HDR_SIZE).ok_or(short)?;
        Ok(KsockHdr {
            msg_type,
            csum: endian.get_u32(hdr, OFF_KSM_CSUM).ok_or(short)?,
            zc_cookies: [
                endian.get_u64(hdr, OFF_KSM_ZC_COOKIE0).ok_or(short)?,
                endian.get_u64(hdr, OFF_KSM_ZC_COOKIE1).ok_or(short)?,
            ],
        })
    }

    pub fn encode(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        let short = WireError::Short {
            need: KSOCK_HDR_SIZE,
            have: out.len(),
        };
        let hdr = out.get_mut(..KSOCK_HDR_SIZE).ok_or(short)?;
        endian
            .put_u32(hdr, OFF_KSM_TYPE, self.msg_type.to_wire())
            .ok_or(short)?;
        endian.put_u32(hdr, OFF_KSM_CSUM, self.csum).ok_or(short)?;
        endian
            .put_u64(hdr, OFF_KSM_ZC_COOKIE0, self.zc_cookies[0])
            .ok_or(short)?;
        endian
            .put_u64(hdr, OFF_KSM_ZC_COOKIE1, self.zc_cookies[1])
            .ok_or(short)?;
        Ok(KSOCK_HDR_SIZE)
    }

    pub fn to_bytes(&self, endian: Endian) -> [u8; KSOCK_HDR_SIZE] {
        let mut out = [0u8; KSOCK_HDR_SIZE];
        // Cannot fail: the array is exactly the header size.
        let _ = self.encode(endian, &mut out);
        out
    }

    /// A keepalive NOOP (V3+): cookies `[0, 1]`.
    pub const fn keepalive() -> KsockHdr {
        KsockHdr::noop(KEEPALIVE_PING_COOKIE)
    }

    /// The V2 checksum of a message with this header (spec §4.7): CRC over the 24-byte header as
    /// written in `endian` with `ksm_csum` = 0, then `rest` in order (for LNET messages: the
    /// 72-byte LNet header, then the payload fragments). The header's own `csum` is ignored.
    pub fn compute_csum_v2(&self, endian: Endian, rest: &[&[u8]]) -> u32 {
        let zeroed = KsockHdr { csum: 0, ..*self };
        let head = crc32_le(CRC32_SEED, &zeroed.to_bytes(endian));
        rest.iter().fold(head, |crc, part| crc32_le(crc, part))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Appendix A.4: NOOP acknowledging cookie 5, without and with the V2 checksum.
    const A4_PLAIN: [u8; 24] = [
        0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
    ];
    const A4_CSUM: [u8; 24] = [
        0xc0, 0, 0, 0, 0x64, 0x34, 0xbb, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn appendix_a4_noop() {
        let plain = KsockHdr::decode(&A4_PLAIN, Endian::Little).unwrap();
        assert_eq!(plain, KsockHdr::noop(5));
        assert_eq!(plain.to_bytes(Endian::Little), A4_PLAIN);
        let csum = plain.compute_csum_v2(Endian::Little, &[]);
        assert_eq!(csum, 0x7FBB_3464);
        let with = KsockHdr { csum, ..plain };
        assert_eq!(with.to_bytes(Endian::Little), A4_CSUM);
        let decoded = KsockHdr::decode(&A4_CSUM, Endian::Little).unwrap();
        assert_eq!(decoded, with);
        // The checksum ignores the value already in the csum field.
        assert_eq!(decoded.compute_csum_v2(Endian::Little, &[]), csum);
    }

    #[test]
    fn big_endian_sender() {
        let hdr = KsockHdr {
            msg_type: KsockMsgType::Lnet,
            csum: 0x0102_0304,
            zc_cookies: [2, 0x0a0b_0c0d_0e0f_1011],
        };
        let be = hdr.to_bytes(Endian::Big);
        assert_eq!(&be[0..8], &[0, 0, 0, 0xc1, 1, 2, 3, 4]);
        assert_eq!(&be[8..16], &[0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(KsockHdr::decode(&be, Endian::Big), Ok(hdr));
        // Read in the wrong order, the type is garbage.
        assert_eq!(
            KsockHdr::decode(&be, Endian::Little),
            Err(WireError::BadKsockType(0xc100_0000))
        );
    }

    #[test]
    fn short_and_bad_type() {
        for len in 0..24 {
            assert_eq!(
                KsockHdr::decode(&A4_PLAIN[..len], Endian::Little),
                Err(WireError::Short {
                    need: 24,
                    have: len
                })
            );
        }
        let mut bad = A4_PLAIN;
        bad[0] = 0xc2;
        assert_eq!(
            KsockHdr::decode(&bad[..4], Endian::Little),
            Err(WireError::BadKsockType(0xc2))
        );
        let mut out = [0u8; 23];
        assert_eq!(
            KsockHdr::lnet().encode(Endian::Little, &mut out),
            Err(WireError::Short { need: 24, have: 23 })
        );
    }

    #[test]
    fn constructors() {
        assert_eq!(KsockHdr::keepalive().zc_cookies, [0, 1]);
        assert_eq!(KsockHdr::keepalive().msg_type, KsockMsgType::Noop);
        assert_eq!(KsockHdr::lnet().zc_cookies, [0, 0]);
        assert_eq!(KsockMsgType::from_wire(0xc1), Some(KsockMsgType::Lnet));
        assert_eq!(KsockMsgType::from_wire(0xc3), None);
    }
}
