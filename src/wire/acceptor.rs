//! The LNet acceptor connection request (v1, 16 bytes, sender order) and the acceptor's
//! classification of the first four bytes of a new connection (spec §2.1, §2.4).

use static_assertions::const_assert_eq;

use super::hello::{LNET_PROTO_MAGIC, LNET_PROTO_TCP_MAGIC};
use super::nid::NID_SIZE;
use super::{Endian, Nid, WireError};

pub const LNET_PROTO_ACCEPTOR_MAGIC: u32 = 0xacce_7100;
pub const LNET_PROTO_ACCEPTOR_VERSION: u32 = 1;
pub const CONNREQ_SIZE: usize = 16;

/// The port every node listens on and connects to (`accept_port`).
pub const LNET_ACCEPTOR_PORT: u16 = 988;
/// Connectors bind local ports from this one downwards ("secure" = privileged port).
pub const LNET_ACCEPTOR_MAX_RESERVED_PORT: u16 = 1023;
/// ... to this one.
pub const LNET_ACCEPTOR_MIN_RESERVED_PORT: u16 = 512;

pub const OFF_ACR_MAGIC: usize = 0;
pub const OFF_ACR_VERSION: usize = OFF_ACR_MAGIC + 4;
pub const OFF_ACR_NID: usize = OFF_ACR_VERSION + 4;

// Spec §2.1 / §1.8: lnet_acceptor_connreq is 16 bytes, magic @0, version @4, nid @8.
const_assert_eq!(OFF_ACR_MAGIC, 0);
const_assert_eq!(OFF_ACR_VERSION, 4);
const_assert_eq!(OFF_ACR_NID, 8);
const_assert_eq!(OFF_ACR_NID + NID_SIZE, CONNREQ_SIZE);
const_assert_eq!(CONNREQ_SIZE, 16);

/// What the first four bytes of an accepted connection say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstWord {
    /// `LNET_PROTO_ACCEPTOR_MAGIC` in the given byte order: an acceptor request follows.
    AcceptorRequest(Endian),
    /// `LNET_PROTO_MAGIC` (either order): the "future unified protocol" query. The acceptor answers
    /// with a connreq {magic, version 1, nid 0} and closes.
    ProtoQuery,
    /// `LNET_PROTO_TCP_MAGIC` (either order): an "old" socknal/tcpnal peer starting with a hello.
    OldSocknal,
    /// Anything else.
    Garbage(u32),
}

/// Classifies the first four bytes as read off the wire.
/// `Garbage` carries the word read as little-endian.
pub fn classify_first_word(b: [u8; 4]) -> FirstWord {
    let le = u32::from_le_bytes(b);
    let be = u32::from_be_bytes(b);
    if le == LNET_PROTO_ACCEPTOR_MAGIC {
        FirstWord::AcceptorRequest(Endian::Little)
    } else if be == LNET_PROTO_ACCEPTOR_MAGIC {
        FirstWord::AcceptorRequest(Endian::Big)
    } else if le == LNET_PROTO_MAGIC || be == LNET_PROTO_MAGIC {
        FirstWord::ProtoQuery
    } else if le == LNET_PROTO_TCP_MAGIC || be == LNET_PROTO_TCP_MAGIC {
        FirstWord::OldSocknal
    } else {
        FirstWord::Garbage(le)
    }
}

/// A decoded acceptor connection request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnReq {
    /// Always 1 for requests we accept; other values decode as [`WireError::UnknownVersion`].
    pub version: u32,
    /// The NID of the NI the connector wants to reach.
    pub nid: Nid,
}

impl ConnReq {
    /// A request for `nid`.
    pub const fn new(nid: Nid) -> ConnReq {
        ConnReq {
            version: LNET_PROTO_ACCEPTOR_VERSION,
            nid,
        }
    }

    /// Decodes 16 bytes; detects the sender's byte order from the magic.
    /// Errors: `Short`, `BadMagic`, `UnknownVersion` (magic fine, version ≠ 1; the acceptor then
    /// replies with its own request and closes).
    ///
    /// Like the acceptor, this reads in three steps — magic (4 bytes), version (8), NID (16) — and
    /// says what is wrong as soon as it can: `Short { need }` is 4, 8 or 16, so an unknown version
    /// is reported without waiting for a NID the peer may never send. `BadMagic` carries the first
    /// word read as little-endian.
    pub fn decode(buf: &[u8]) -> Result<(ConnReq, Endian), WireError> {
        let short = |need| WireError::Short {
            need,
            have: buf.len(),
        };
        let first: [u8; 4] = buf
            .get(OFF_ACR_MAGIC..OFF_ACR_VERSION)
            .and_then(|b| b.try_into().ok())
            .ok_or(short(OFF_ACR_VERSION))?;
        let endian = match classify_first_word(first) {
            FirstWord::AcceptorRequest(endian) => endian,
            _ => return Err(WireError::BadMagic(u32::from_le_bytes(first))),
        };
        let version = endian
            .get_u32(buf, OFF_ACR_VERSION)
            .ok_or(short(OFF_ACR_NID))?;
        if version != LNET_PROTO_ACCEPTOR_VERSION {
            return Err(WireError::UnknownVersion(version));
        }
        let nid = endian
            .get_u64(buf, OFF_ACR_NID)
            .ok_or(short(CONNREQ_SIZE))?;
        Ok((
            ConnReq {
                version,
                nid: Nid(nid),
            },
            endian,
        ))
    }

    /// Writes 16 bytes in `endian`.
    pub fn encode(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        let short = WireError::Short {
            need: CONNREQ_SIZE,
            have: out.len(),
        };
        let req = out.get_mut(..CONNREQ_SIZE).ok_or(short)?;
        endian
            .put_u32(req, OFF_ACR_MAGIC, LNET_PROTO_ACCEPTOR_MAGIC)
            .ok_or(short)?;
        endian
            .put_u32(req, OFF_ACR_VERSION, self.version)
            .ok_or(short)?;
        endian.put_u64(req, OFF_ACR_NID, self.nid.0).ok_or(short)?;
        Ok(CONNREQ_SIZE)
    }

    pub fn to_bytes(&self, endian: Endian) -> [u8; CONNREQ_SIZE] {
        let mut out = [0u8; CONNREQ_SIZE];
        // Cannot fail: the array is exactly the request size.
        let _ = self.encode(endian, &mut out);
        out
    }

    /// The acceptor's answer to an unknown version or a `LNET_PROTO_MAGIC` query (spec §2.4):
    /// a version-1 request carrying NID 0, which tells the peer what we speak.
    pub const fn version_reply() -> ConnReq {
        ConnReq::new(Nid(0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Appendix A.1: connreq from B to A, little-endian sender.
    const A1: [u8; 16] = [
        0x00, 0x71, 0xce, 0xac, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0xa8, 0xc0, 0x00, 0x00, 0x02,
        0x00,
    ];
    const A: Nid = Nid(0x0002_0000_C0A8_0001);

    /// Byte-swaps each field of a connreq: what a big-endian sender writes.
    fn swapped(le: [u8; 16]) -> [u8; 16] {
        let mut be = le;
        be[0..4].reverse();
        be[4..8].reverse();
        be[8..16].reverse();
        be
    }

    #[test]
    fn appendix_a1_both_orders() {
        assert_eq!(ConnReq::decode(&A1), Ok((ConnReq::new(A), Endian::Little)));
        assert_eq!(ConnReq::new(A).to_bytes(Endian::Little), A1);
        let be = swapped(A1);
        assert_eq!(ConnReq::decode(&be), Ok((ConnReq::new(A), Endian::Big)));
        assert_eq!(ConnReq::new(A).to_bytes(Endian::Big), be);
    }

    #[test]
    fn short_steps_follow_the_acceptor() {
        for len in 0..16 {
            let need = match len {
                0..=3 => 4,
                4..=7 => 8,
                _ => 16,
            };
            assert_eq!(
                ConnReq::decode(&A1[..len]),
                Err(WireError::Short { need, have: len })
            );
        }
        let mut out = [0u8; 15];
        assert_eq!(
            ConnReq::new(A).encode(Endian::Little, &mut out),
            Err(WireError::Short { need: 16, have: 15 })
        );
    }

    #[test]
    fn bad_magic_and_version() {
        let mut bad = A1;
        bad[0] = 0x01;
        assert_eq!(
            ConnReq::decode(&bad[..4]),
            Err(WireError::BadMagic(0xacce_7101))
        );
        let mut v2 = A1;
        v2[4] = 2;
        // Reported from the first 8 bytes: the acceptor replies without reading a NID.
        assert_eq!(ConnReq::decode(&v2[..8]), Err(WireError::UnknownVersion(2)));
        let v2_be = swapped(v2);
        assert_eq!(ConnReq::decode(&v2_be), Err(WireError::UnknownVersion(2)));
        assert_eq!(
            ConnReq::version_reply().to_bytes(Endian::Little),
            [0x00, 0x71, 0xce, 0xac, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn first_word_classification() {
        assert_eq!(
            classify_first_word([0x00, 0x71, 0xce, 0xac]),
            FirstWord::AcceptorRequest(Endian::Little)
        );
        assert_eq!(
            classify_first_word([0xac, 0xce, 0x71, 0x00]),
            FirstWord::AcceptorRequest(Endian::Big)
        );
        assert_eq!(classify_first_word(*b"cirE"), FirstWord::ProtoQuery);
        assert_eq!(classify_first_word(*b"Eric"), FirstWord::ProtoQuery);
        assert_eq!(
            classify_first_word([0xed, 0x0d, 0xbc, 0xee]),
            FirstWord::OldSocknal
        );
        assert_eq!(
            classify_first_word([0xee, 0xbc, 0x0d, 0xed]),
            FirstWord::OldSocknal
        );
        assert_eq!(
            classify_first_word([1, 2, 3, 4]),
            FirstWord::Garbage(0x0403_0201)
        );
    }
}
