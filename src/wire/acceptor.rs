//! The LNet acceptor connection request (v1, 16 bytes, sender order) and the acceptor's
//! classification of the first four bytes of a new connection (spec §2.1, §2.4).

use super::{Endian, Nid, WireError};

pub const LNET_PROTO_ACCEPTOR_MAGIC: u32 = 0xacce_7100;
pub const LNET_PROTO_ACCEPTOR_VERSION: u32 = 1;
pub const CONNREQ_SIZE: usize = 16;

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
pub fn classify_first_word(b: [u8; 4]) -> FirstWord {
    todo!("wire helper {b:?}")
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
    pub fn decode(buf: &[u8]) -> Result<(ConnReq, Endian), WireError> {
        todo!("wire helper {}", buf.len())
    }

    /// Writes 16 bytes in `endian`.
    pub fn encode(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        todo!("wire helper {self:?} {endian:?} {}", out.len())
    }

    pub fn to_bytes(&self, endian: Endian) -> [u8; CONNREQ_SIZE] {
        todo!("wire helper {self:?} {endian:?}")
    }
}
