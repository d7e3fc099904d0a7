//! The V2/V3 `ksock_msg` header (24 bytes, sender order) that precedes every message after the
//! hello: type, checksum and two zero-copy cookies (spec §4.1–4.2).

use super::{Endian, WireError};

pub const KSOCK_MSG_NOOP: u32 = 0xc0;
pub const KSOCK_MSG_LNET: u32 = 0xc1;
pub const KSOCK_HDR_SIZE: usize = 24;
/// Offset of `ksm_csum` inside the header (zeroed while the checksum is computed).
pub const KSOCK_CSUM_OFFSET: usize = 4;
/// The keepalive "cookie" (`SOCKNAL_KEEPALIVE_PING`), V3 only.
pub const KEEPALIVE_PING_COOKIE: u64 = 1;

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
    /// Errors: `Short`, `BadKsockType`.
    pub fn decode(buf: &[u8], endian: Endian) -> Result<KsockHdr, WireError> {
        todo!("wire helper {} {endian:?}", buf.len())
    }

    pub fn encode(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        todo!("wire helper {self:?} {endian:?} {}", out.len())
    }

    pub fn to_bytes(&self, endian: Endian) -> [u8; KSOCK_HDR_SIZE] {
        todo!("wire helper {self:?} {endian:?}")
    }
}
