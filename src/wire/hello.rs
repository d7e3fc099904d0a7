//! socklnd hellos: V1 (72-byte little-endian LNet HELLO header + IP list) and V2/V3
//! (`ksock_hello_msg`, 56 bytes, sender order) (spec §3.1–3.5).

use super::{Endian, Nid, WireError};

/// `LNET_PROTO_MAGIC` ("Eric"): the V2/V3 hello magic, sender order.
pub const LNET_PROTO_MAGIC: u32 = 0x4572_6963;
/// `LNET_PROTO_TCP_MAGIC`: the V1 hello magic, always little-endian (bytes `ed 0d bc ee`).
pub const LNET_PROTO_TCP_MAGIC: u32 = 0xeebc_0ded;
/// V1 hello size without its IP list.
pub const HELLO_V1_SIZE: usize = 72;
/// V2/V3 hello size without its IP list.
pub const HELLO_V2_SIZE: usize = 56;
/// Most IP addresses a hello may carry.
pub const MAX_INTERFACES: usize = 16;

/// socklnd protocol versions we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ProtoVersion {
    V1 = 1,
    V2 = 2,
    V3 = 3,
}

impl ProtoVersion {
    /// What we offer first to a peer whose version we have not learned (Linux 1.8/2.x: V3).
    pub const NEWEST: ProtoVersion = ProtoVersion::V3;
    pub fn from_wire(v: u32) -> Option<ProtoVersion> {
        todo!("wire helper {v}")
    }
    /// Size of this version's hello without IP list.
    pub const fn hello_size(self) -> usize {
        match self {
            ProtoVersion::V1 => HELLO_V1_SIZE,
            ProtoVersion::V2 | ProtoVersion::V3 => HELLO_V2_SIZE,
        }
    }
}

/// socklnd connection types, from the sender's point of view (spec §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnType {
    /// −1 on the wire: "not established / rejected"; in a reply hello it means *retry*.
    None,
    /// Untyped: carries everything (V1/V2).
    Any,
    Control,
    /// Bulk data flows towards the sender of this value. In V3 also the ZC-ACK connection.
    BulkIn,
    /// Bulk data flows from the sender of this value.
    BulkOut,
}

impl ConnType {
    pub fn from_wire(v: u32) -> Option<ConnType> {
        todo!("wire helper {v}")
    }
    pub fn to_wire(self) -> u32 {
        todo!("wire helper {self:?}")
    }
    /// The type the other end gives the same connection: BULK_IN ↔ BULK_OUT, others unchanged.
    pub fn inverse(self) -> ConnType {
        todo!("wire helper {self:?}")
    }
}

/// A bounded IP list (at most 16 IPv4 addresses as host-order integers); no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IpList {
    len: u8,
    ips: [u32; MAX_INTERFACES],
}

impl IpList {
    pub const EMPTY: IpList = IpList {
        len: 0,
        ips: [0; MAX_INTERFACES],
    };
    /// Builds a list; `TooManyIps` past 16, `ZeroIp` for a zero entry.
    pub fn from_slice(ips: &[u32]) -> Result<IpList, WireError> {
        todo!("wire helper {ips:?}")
    }
    pub fn as_slice(&self) -> &[u32] {
        todo!("wire helper {:?}", self.len)
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the first 8 bytes of a hello say (spec §3.1 classification table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloProbe {
    /// A version we speak, and the sender's byte order (always `Little` for V1).
    Known {
        version: ProtoVersion,
        endian: Endian,
    },
    /// Right magic (V2-style either order, or V1's LE TCP magic), unknown version: the passive side
    /// replies with its own newest hello, ctype NONE, and closes.
    UnknownVersion { version: u32 },
    /// Not a hello magic (a byte-swapped TCP magic included): close without reply.
    BadMagic(u32),
}

/// Classifies the first 8 bytes of a hello. `Short` if fewer than 8 bytes are given.
pub fn probe(buf: &[u8]) -> Result<HelloProbe, WireError> {
    todo!("wire helper {}", buf.len())
}

/// A socklnd hello of any version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: ProtoVersion,
    pub src_nid: Nid,
    /// V2/V3 only (V1 has no such field: decodes as `Nid(0)`, not encoded).
    pub dst_nid: Nid,
    pub src_pid: u32,
    /// Never set by ksocklnd (0), ignored on receipt. V1: the LNet header's `dest_pid` slot.
    pub dst_pid: u32,
    pub src_incarnation: u64,
    /// V2/V3 only; never set by ksocklnd (0), ignored on receipt.
    pub dst_incarnation: u64,
    pub ctype: ConnType,
    pub ips: IpList,
}

impl Hello {
    /// Decodes a whole hello (fixed part and IP list) from the start of `buf`.
    /// Returns the hello, the sender's byte order and the number of bytes it occupied.
    /// Errors: `Short { need, .. }` (wait for `need` bytes, first 8, then the fixed part, then the
    /// IP list), `BadMagic`, `UnknownVersion`, `BadMsgType` (V1 header type ≠ HELLO),
    /// `BadIpListLength`, `TooManyIps`, `ZeroIp`, `BadConnType`, `NidAny` (src NID).
    pub fn decode(buf: &[u8]) -> Result<(Hello, Endian, usize), WireError> {
        todo!("wire helper {}", buf.len())
    }

    /// Bytes this hello occupies on the wire (fixed part + 4 × IPs).
    pub fn wire_len(&self) -> usize {
        todo!("wire helper {self:?}")
    }

    /// Writes the hello (V1: always little-endian, `endian` ignored).
    pub fn encode(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        todo!("wire helper {self:?} {endian:?} {}", out.len())
    }
}
