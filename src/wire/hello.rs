//! socklnd hellos: V1 (72-byte little-endian LNet HELLO header + IP list) and V2/V3
//! (`ksock_hello_msg`, 56 bytes, sender order) (spec §3.1–3.5).

use static_assertions::const_assert_eq;

use super::lnet::{self, LnetHdr, LnetMsg, LNET_HDR_SIZE};
use super::nid::{NID_SIZE, PID_SIZE};
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
/// Bytes per IP list entry.
pub const IP_SIZE: usize = 4;
/// The only V1 version the V1 magic may carry: major 1, minor 0.
pub const LNET_PROTO_TCP_VERSION_MAJOR: u16 = 1;
pub const LNET_PROTO_TCP_VERSION_MINOR: u16 = 0;
/// `SOCKLND_CONN_NONE` on the wire.
pub const SOCKLND_CONN_NONE_WIRE: u32 = 0xFFFF_FFFF;
/// Bytes a reader needs before it can tell which hello (and byte order) it is reading.
pub const HELLO_PROBE_SIZE: usize = 8;

// V1 hello (spec §3.2): an LNet header of type HELLO whose `dest_nid` slot holds the magic and
// version. The remaining offsets are the LNet header's.
pub const OFF_V1_MAGIC: usize = 0;
pub const OFF_V1_VERSION_MAJOR: usize = OFF_V1_MAGIC + 4;
pub const OFF_V1_VERSION_MINOR: usize = OFF_V1_VERSION_MAJOR + 2;
pub const OFF_V1_SRC_NID: usize = OFF_V1_VERSION_MINOR + 2;
pub const OFF_V1_DEST_PID: usize = OFF_V1_SRC_NID + NID_SIZE;
pub const OFF_V1_SRC_PID: usize = OFF_V1_DEST_PID + PID_SIZE;
pub const OFF_V1_TYPE: usize = OFF_V1_SRC_PID + PID_SIZE;
pub const OFF_V1_PAYLOAD_LENGTH: usize = OFF_V1_TYPE + 4;
pub const OFF_V1_INCARNATION: usize = OFF_V1_PAYLOAD_LENGTH + 4;
pub const OFF_V1_CTYPE: usize = OFF_V1_INCARNATION + 8;
/// The IP list follows the 72 bytes.
pub const OFF_V1_IPS: usize = HELLO_V1_SIZE;

const_assert_eq!(OFF_V1_MAGIC, 0);
const_assert_eq!(OFF_V1_VERSION_MAJOR, 4);
const_assert_eq!(OFF_V1_VERSION_MINOR, 6);
const_assert_eq!(OFF_V1_SRC_NID, 8);
const_assert_eq!(OFF_V1_SRC_NID, lnet::OFF_SRC_NID);
const_assert_eq!(OFF_V1_DEST_PID, 16);
const_assert_eq!(OFF_V1_DEST_PID, lnet::OFF_DEST_PID);
const_assert_eq!(OFF_V1_SRC_PID, 20);
const_assert_eq!(OFF_V1_SRC_PID, lnet::OFF_SRC_PID);
const_assert_eq!(OFF_V1_TYPE, 24);
const_assert_eq!(OFF_V1_TYPE, lnet::OFF_TYPE);
const_assert_eq!(OFF_V1_PAYLOAD_LENGTH, 28);
const_assert_eq!(OFF_V1_PAYLOAD_LENGTH, lnet::OFF_PAYLOAD_LENGTH);
const_assert_eq!(OFF_V1_INCARNATION, 32);
const_assert_eq!(OFF_V1_INCARNATION, lnet::OFF_HELLO_INCARNATION);
const_assert_eq!(OFF_V1_CTYPE, 40);
const_assert_eq!(OFF_V1_CTYPE, lnet::OFF_HELLO_TYPE);
const_assert_eq!(HELLO_V1_SIZE, 72);
const_assert_eq!(HELLO_V1_SIZE, LNET_HDR_SIZE);
const_assert_eq!(OFF_V1_IPS, 72);

// V2/V3 hello (`ksock_hello_msg`, spec §3.3).
pub const OFF_KSHM_MAGIC: usize = 0;
pub const OFF_KSHM_VERSION: usize = OFF_KSHM_MAGIC + 4;
pub const OFF_KSHM_SRC_NID: usize = OFF_KSHM_VERSION + 4;
pub const OFF_KSHM_DST_NID: usize = OFF_KSHM_SRC_NID + NID_SIZE;
pub const OFF_KSHM_SRC_PID: usize = OFF_KSHM_DST_NID + NID_SIZE;
pub const OFF_KSHM_DST_PID: usize = OFF_KSHM_SRC_PID + PID_SIZE;
pub const OFF_KSHM_SRC_INCARNATION: usize = OFF_KSHM_DST_PID + PID_SIZE;
pub const OFF_KSHM_DST_INCARNATION: usize = OFF_KSHM_SRC_INCARNATION + 8;
pub const OFF_KSHM_CTYPE: usize = OFF_KSHM_DST_INCARNATION + 8;
pub const OFF_KSHM_NIPS: usize = OFF_KSHM_CTYPE + 4;
pub const OFF_KSHM_IPS: usize = OFF_KSHM_NIPS + 4;

const_assert_eq!(OFF_KSHM_MAGIC, 0);
const_assert_eq!(OFF_KSHM_VERSION, 4);
const_assert_eq!(OFF_KSHM_SRC_NID, 8);
const_assert_eq!(OFF_KSHM_DST_NID, 16);
const_assert_eq!(OFF_KSHM_SRC_PID, 24);
const_assert_eq!(OFF_KSHM_DST_PID, 28);
const_assert_eq!(OFF_KSHM_SRC_INCARNATION, 32);
const_assert_eq!(OFF_KSHM_DST_INCARNATION, 40);
const_assert_eq!(OFF_KSHM_CTYPE, 48);
const_assert_eq!(OFF_KSHM_NIPS, 52);
const_assert_eq!(OFF_KSHM_IPS, 56);
const_assert_eq!(HELLO_V2_SIZE, OFF_KSHM_IPS);
const_assert_eq!(HELLO_V2_SIZE, 56);
const_assert_eq!(MAX_INTERFACES, 16);
const_assert_eq!(ProtoVersion::V1 as u32, 1);
const_assert_eq!(ProtoVersion::V2 as u32, 2);
const_assert_eq!(ProtoVersion::V3 as u32, 3);
const_assert_eq!(HELLO_PROBE_SIZE, 8);

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
        match v {
            1 => Some(ProtoVersion::V1),
            2 => Some(ProtoVersion::V2),
            3 => Some(ProtoVersion::V3),
            _ => None,
        }
    }
    pub const fn to_wire(self) -> u32 {
        self as u32
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
        match v {
            SOCKLND_CONN_NONE_WIRE => Some(ConnType::None),
            0 => Some(ConnType::Any),
            1 => Some(ConnType::Control),
            2 => Some(ConnType::BulkIn),
            3 => Some(ConnType::BulkOut),
            _ => None,
        }
    }
    pub fn to_wire(self) -> u32 {
        match self {
            ConnType::None => SOCKLND_CONN_NONE_WIRE,
            ConnType::Any => 0,
            ConnType::Control => 1,
            ConnType::BulkIn => 2,
            ConnType::BulkOut => 3,
        }
    }
    /// The type the other end gives the same connection: BULK_IN ↔ BULK_OUT, others unchanged.
    pub fn inverse(self) -> ConnType {
        match self {
            ConnType::BulkIn => ConnType::BulkOut,
            ConnType::BulkOut => ConnType::BulkIn,
            other => other,
        }
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
        if ips.len() > MAX_INTERFACES {
            return Err(WireError::TooManyIps(
                u32::try_from(ips.len()).unwrap_or(u32::MAX),
            ));
        }
        let mut list = IpList::EMPTY;
        for (slot, &ip) in list.ips.iter_mut().zip(ips) {
            if ip == 0 {
                return Err(WireError::ZeroIp);
            }
            *slot = ip;
        }
        // At most 16 (checked above), so it fits a u8.
        list.len = u8::try_from(ips.len()).unwrap_or(0);
        Ok(list)
    }
    pub fn as_slice(&self) -> &[u32] {
        // `len` never exceeds 16 (only `from_slice` sets it), so this is the whole list.
        self.ips.get(..self.len()).unwrap_or(&[])
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
///
/// `BadMagic` carries the first word read as little-endian; `UnknownVersion` carries the V2
/// version in the sender's order, or for the V1 magic the LE word at offset 4 (major in the low
/// 16 bits, minor in the high 16 bits).
pub fn probe(buf: &[u8]) -> Result<HelloProbe, WireError> {
    let short = WireError::Short {
        need: HELLO_PROBE_SIZE,
        have: buf.len(),
    };
    let le = Endian::Little;
    let be = Endian::Big;
    let word0 = le.get_u32(buf, OFF_KSHM_MAGIC).ok_or(short)?;
    let word0_be = be.get_u32(buf, OFF_KSHM_MAGIC).ok_or(short)?;
    let endian = if word0 == LNET_PROTO_MAGIC {
        Some(le)
    } else if word0_be == LNET_PROTO_MAGIC {
        Some(be)
    } else {
        None
    };
    if let Some(endian) = endian {
        let version = endian.get_u32(buf, OFF_KSHM_VERSION).ok_or(short)?;
        return Ok(match ProtoVersion::from_wire(version) {
            // V1 is only ever announced by its own (TCP) magic.
            Some(version @ (ProtoVersion::V2 | ProtoVersion::V3)) => {
                HelloProbe::Known { version, endian }
            }
            _ => HelloProbe::UnknownVersion { version },
        });
    }
    // The V1 magic is accepted little-endian only; swapped it is just a bad magic (spec §3.1).
    if word0 == LNET_PROTO_TCP_MAGIC {
        let major = le.get_u16(buf, OFF_V1_VERSION_MAJOR).ok_or(short)?;
        let minor = le.get_u16(buf, OFF_V1_VERSION_MINOR).ok_or(short)?;
        if major == LNET_PROTO_TCP_VERSION_MAJOR && minor == LNET_PROTO_TCP_VERSION_MINOR {
            return Ok(HelloProbe::Known {
                version: ProtoVersion::V1,
                endian: le,
            });
        }
        let version = le.get_u32(buf, OFF_V1_VERSION_MAJOR).ok_or(short)?;
        return Ok(HelloProbe::UnknownVersion { version });
    }
    Ok(HelloProbe::BadMagic(word0))
}

/// The fixed part of a hello as read, before its IP list.
struct FixedPart {
    hello: Hello,
    nips: u32,
}

fn decode_fixed_v1(fixed: &[u8]) -> Result<FixedPart, WireError> {
    let hdr = LnetHdr::decode(fixed)?;
    let LnetMsg::Hello {
        incarnation,
        conn_type,
    } = hdr.msg
    else {
        return Err(WireError::BadMsgType(hdr.msg.msg_type().to_wire()));
    };
    if hdr.payload_length % 4 != 0 {
        return Err(WireError::BadIpListLength(hdr.payload_length));
    }
    let ctype = ConnType::from_wire(conn_type).ok_or(WireError::BadConnType(conn_type))?;
    Ok(FixedPart {
        hello: Hello {
            version: ProtoVersion::V1,
            src_nid: hdr.src_nid,
            dst_nid: Nid(0),
            src_pid: hdr.src_pid,
            dst_pid: hdr.dest_pid,
            src_incarnation: incarnation,
            dst_incarnation: 0,
            ctype,
            ips: IpList::EMPTY,
        },
        nips: hdr.payload_length / 4,
    })
}

fn decode_fixed_v2(fixed: &[u8], version: ProtoVersion, e: Endian) -> Result<FixedPart, WireError> {
    let short = WireError::Short {
        need: HELLO_V2_SIZE,
        have: fixed.len(),
    };
    let conn_type = e.get_u32(fixed, OFF_KSHM_CTYPE).ok_or(short)?;
    let ctype = ConnType::from_wire(conn_type).ok_or(WireError::BadConnType(conn_type))?;
    Ok(FixedPart {
        hello: Hello {
            version,
            src_nid: Nid(e.get_u64(fixed, OFF_KSHM_SRC_NID).ok_or(short)?),
            dst_nid: Nid(e.get_u64(fixed, OFF_KSHM_DST_NID).ok_or(short)?),
            src_pid: e.get_u32(fixed, OFF_KSHM_SRC_PID).ok_or(short)?,
            dst_pid: e.get_u32(fixed, OFF_KSHM_DST_PID).ok_or(short)?,
            src_incarnation: e.get_u64(fixed, OFF_KSHM_SRC_INCARNATION).ok_or(short)?,
            dst_incarnation: e.get_u64(fixed, OFF_KSHM_DST_INCARNATION).ok_or(short)?,
            ctype,
            ips: IpList::EMPTY,
        },
        nips: e.get_u32(fixed, OFF_KSHM_NIPS).ok_or(short)?,
    })
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
    ///
    /// Everything the fixed part can tell is checked before asking for the IP list, so a bad
    /// count never makes a reader wait for bytes that will not come.
    pub fn decode(buf: &[u8]) -> Result<(Hello, Endian, usize), WireError> {
        let (version, endian) = match probe(buf)? {
            HelloProbe::Known { version, endian } => (version, endian),
            HelloProbe::UnknownVersion { version } => {
                return Err(WireError::UnknownVersion(version))
            }
            HelloProbe::BadMagic(magic) => return Err(WireError::BadMagic(magic)),
        };
        let fixed_size = version.hello_size();
        let fixed = buf.get(..fixed_size).ok_or(WireError::Short {
            need: fixed_size,
            have: buf.len(),
        })?;
        let FixedPart { mut hello, nips } = match version {
            ProtoVersion::V1 => decode_fixed_v1(fixed)?,
            ProtoVersion::V2 | ProtoVersion::V3 => decode_fixed_v2(fixed, version, endian)?,
        };
        if hello.src_nid == Nid::ANY {
            return Err(WireError::NidAny);
        }
        let count = usize::try_from(nips)
            .ok()
            .filter(|&n| n <= MAX_INTERFACES)
            .ok_or(WireError::TooManyIps(nips))?;
        // count ≤ 16, so neither operation can overflow; checked anyway for the lint.
        let total = count
            .checked_mul(IP_SIZE)
            .and_then(|n| n.checked_add(fixed_size))
            .ok_or(WireError::TooManyIps(nips))?;
        let list = buf.get(fixed_size..total).ok_or(WireError::Short {
            need: total,
            have: buf.len(),
        })?;
        let mut ips = [0u32; MAX_INTERFACES];
        for (slot, chunk) in ips.iter_mut().zip(list.chunks_exact(IP_SIZE)) {
            *slot = endian
                .get_u32(chunk, 0)
                .ok_or(WireError::BadIpListLength(nips))?;
        }
        hello.ips = IpList::from_slice(ips.get(..count).unwrap_or(&[]))?;
        Ok((hello, endian, total))
    }

    /// Bytes this hello occupies on the wire (fixed part + 4 × IPs).
    pub fn wire_len(&self) -> usize {
        // At most 72 + 64: no overflow possible, saturating keeps the lint quiet.
        self.version
            .hello_size()
            .saturating_add(self.ips.len().saturating_mul(IP_SIZE))
    }

    /// Writes the hello (V1: always little-endian, `endian` ignored).
    pub fn encode(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        let total = self.wire_len();
        let short = WireError::Short {
            need: total,
            have: out.len(),
        };
        let out = out.get_mut(..total).ok_or(short)?;
        // ≤ 16 entries (IpList's invariant).
        let nips = u32::try_from(self.ips.len()).map_err(|_| short)?;
        let (endian, ips_at) = match self.version {
            ProtoVersion::V1 => {
                let le = Endian::Little;
                let hdr = LnetHdr {
                    // Overwritten below by the magic and version.
                    dest_nid: Nid(0),
                    src_nid: self.src_nid,
                    dest_pid: self.dst_pid,
                    src_pid: self.src_pid,
                    payload_length: nips.saturating_mul(4),
                    msg: LnetMsg::Hello {
                        incarnation: self.src_incarnation,
                        conn_type: self.ctype.to_wire(),
                    },
                };
                hdr.encode(out)?;
                le.put_u32(out, OFF_V1_MAGIC, LNET_PROTO_TCP_MAGIC)
                    .ok_or(short)?;
                le.put_u16(out, OFF_V1_VERSION_MAJOR, LNET_PROTO_TCP_VERSION_MAJOR)
                    .ok_or(short)?;
                le.put_u16(out, OFF_V1_VERSION_MINOR, LNET_PROTO_TCP_VERSION_MINOR)
                    .ok_or(short)?;
                (le, OFF_V1_IPS)
            }
            ProtoVersion::V2 | ProtoVersion::V3 => {
                let e = endian;
                e.put_u32(out, OFF_KSHM_MAGIC, LNET_PROTO_MAGIC)
                    .ok_or(short)?;
                e.put_u32(out, OFF_KSHM_VERSION, self.version.to_wire())
                    .ok_or(short)?;
                e.put_u64(out, OFF_KSHM_SRC_NID, self.src_nid.0)
                    .ok_or(short)?;
                e.put_u64(out, OFF_KSHM_DST_NID, self.dst_nid.0)
                    .ok_or(short)?;
                e.put_u32(out, OFF_KSHM_SRC_PID, self.src_pid)
                    .ok_or(short)?;
                e.put_u32(out, OFF_KSHM_DST_PID, self.dst_pid)
                    .ok_or(short)?;
                e.put_u64(out, OFF_KSHM_SRC_INCARNATION, self.src_incarnation)
                    .ok_or(short)?;
                e.put_u64(out, OFF_KSHM_DST_INCARNATION, self.dst_incarnation)
                    .ok_or(short)?;
                e.put_u32(out, OFF_KSHM_CTYPE, self.ctype.to_wire())
                    .ok_or(short)?;
                e.put_u32(out, OFF_KSHM_NIPS, nips).ok_or(short)?;
                (e, OFF_KSHM_IPS)
            }
        };
        let list = out.get_mut(ips_at..).ok_or(short)?;
        for (chunk, &ip) in list.chunks_exact_mut(IP_SIZE).zip(self.ips.as_slice()) {
            endian.put_u32(chunk, 0, ip).ok_or(short)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
    use super::*;

    const A: Nid = Nid(0x0002_0000_C0A8_0001);
    const B: Nid = Nid(0x0002_0000_C0A8_0002);
    const INCARNATION: u64 = 0x17D2_C0FF_EE00_0000;

    /// Appendix A.2: V3 hello, B → A, ctype CONTROL.
    const A2: [u8; 56] = [
        0x63, 0x69, 0x72, 0x45, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0xa8, 0xc0, 0x00, 0x00, 0x02,
        0x00, 0x01, 0x00, 0xa8, 0xc0, 0x00, 0x00, 0x02, 0x00, 0x39, 0x30, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xee, 0xff, 0xc0, 0xd2, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    fn a2_hello() -> Hello {
        Hello {
            version: ProtoVersion::V3,
            src_nid: B,
            dst_nid: A,
            src_pid: 12345,
            dst_pid: 0,
            src_incarnation: INCARNATION,
            dst_incarnation: 0,
            ctype: ConnType::Control,
            ips: IpList::EMPTY,
        }
    }

    fn encode_vec(h: &Hello, e: Endian) -> ([u8; 200], usize) {
        let mut out = [0u8; 200];
        let n = h.encode(e, &mut out).unwrap();
        (out, n)
    }

    #[test]
    fn appendix_a2_v3_hello() {
        assert_eq!(
            probe(&A2),
            Ok(HelloProbe::Known {
                version: ProtoVersion::V3,
                endian: Endian::Little
            })
        );
        let (h, e, n) = Hello::decode(&A2).unwrap();
        assert_eq!((h, e, n), (a2_hello(), Endian::Little, 56));
        let (out, len) = encode_vec(&h, e);
        assert_eq!(&out[..len], &A2[..]);
        assert_eq!(h.wire_len(), 56);
    }

    #[test]
    fn short_progression_with_ips() {
        let h = Hello {
            ips: IpList::from_slice(&[0xC0A8_0002, 0x0A00_0002, 0x0A00_0003]).unwrap(),
            ..a2_hello()
        };
        for e in [Endian::Little, Endian::Big] {
            let (bytes, total) = encode_vec(&h, e);
            assert_eq!(total, 56 + 12);
            for len in 0..total {
                let need = if len < 8 {
                    8
                } else if len < 56 {
                    56
                } else {
                    68
                };
                assert_eq!(
                    Hello::decode(&bytes[..len]),
                    Err(WireError::Short { need, have: len }),
                    "{e:?} {len}"
                );
            }
            assert_eq!(Hello::decode(&bytes[..total + 5]), Ok((h, e, total)));
        }
    }

    #[test]
    fn v1_hello_with_ips() {
        let h = Hello {
            version: ProtoVersion::V1,
            dst_nid: Nid(0),
            dst_incarnation: 0,
            ctype: ConnType::Any,
            ips: IpList::from_slice(&[0xC0A8_0002]).unwrap(),
            ..a2_hello()
        };
        // Endian is ignored for V1: always little-endian.
        let (bytes, total) = encode_vec(&h, Endian::Big);
        assert_eq!(total, 76);
        assert_eq!(&bytes[0..8], &[0xed, 0x0d, 0xbc, 0xee, 1, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[4, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&bytes[72..76], &[0x02, 0x00, 0xa8, 0xc0]);
        for len in 0..total {
            let need = if len < 8 {
                8
            } else if len < 72 {
                72
            } else {
                76
            };
            assert_eq!(
                Hello::decode(&bytes[..len]),
                Err(WireError::Short { need, have: len })
            );
        }
        assert_eq!(Hello::decode(&bytes[..total]), Ok((h, Endian::Little, 76)));
    }

    #[test]
    fn probe_classification() {
        let mut b = A2;
        b[4] = 9;
        assert_eq!(probe(&b), Ok(HelloProbe::UnknownVersion { version: 9 }));
        assert_eq!(Hello::decode(&b), Err(WireError::UnknownVersion(9)));
        // V2 magic with version 1 is not a V1 hello.
        b[4] = 1;
        assert_eq!(probe(&b), Ok(HelloProbe::UnknownVersion { version: 1 }));
        b[4] = 2;
        assert_eq!(
            probe(&b),
            Ok(HelloProbe::Known {
                version: ProtoVersion::V2,
                endian: Endian::Little
            })
        );
        // Big-endian V2 magic.
        let be = [0x45, 0x72, 0x69, 0x63, 0, 0, 0, 3];
        assert_eq!(
            probe(&be),
            Ok(HelloProbe::Known {
                version: ProtoVersion::V3,
                endian: Endian::Big
            })
        );
        // V1 magic, version 1.1 is unknown; swapped V1 magic is bad.
        let v1_1 = [0xed, 0x0d, 0xbc, 0xee, 1, 0, 1, 0];
        assert_eq!(
            probe(&v1_1),
            Ok(HelloProbe::UnknownVersion {
                version: 0x0001_0001
            })
        );
        let v1_swapped = [0xee, 0xbc, 0x0d, 0xed, 0, 1, 0, 0];
        assert_eq!(probe(&v1_swapped), Ok(HelloProbe::BadMagic(0xed0d_bcee)));
        assert_eq!(
            Hello::decode(&v1_swapped),
            Err(WireError::BadMagic(0xed0d_bcee))
        );
        assert_eq!(probe(&A2[..7]), Err(WireError::Short { need: 8, have: 7 }));
    }

    #[test]
    fn rejected_hellos() {
        let mut b = A2;
        b[52] = 17; // nips
        assert_eq!(Hello::decode(&b), Err(WireError::TooManyIps(17)));
        let mut b = A2;
        b[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Hello::decode(&b), Err(WireError::TooManyIps(u32::MAX)));
        let mut b = [0u8; 60];
        b[..56].copy_from_slice(&A2);
        b[52] = 1; // one IP, and it is zero
        assert_eq!(Hello::decode(&b), Err(WireError::ZeroIp));
        let mut b = A2;
        b[48] = 4; // ctype 4
        assert_eq!(Hello::decode(&b), Err(WireError::BadConnType(4)));
        let mut b = A2;
        b[8..16].fill(0xff);
        assert_eq!(Hello::decode(&b), Err(WireError::NidAny));

        let v1 = Hello {
            version: ProtoVersion::V1,
            dst_nid: Nid(0),
            ..a2_hello()
        };
        let (bytes, _) = encode_vec(&v1, Endian::Little);
        let mut b = bytes;
        b[24] = 1; // PUT instead of HELLO
        assert_eq!(Hello::decode(&b), Err(WireError::BadMsgType(1)));
        let mut b = bytes;
        b[28] = 6; // payload length 6
        assert_eq!(Hello::decode(&b), Err(WireError::BadIpListLength(6)));
        let mut b = bytes;
        b[28] = 68; // 17 IPs
        assert_eq!(Hello::decode(&b), Err(WireError::TooManyIps(17)));
        let mut out = [0u8; 71];
        assert_eq!(
            v1.encode(Endian::Little, &mut out),
            Err(WireError::Short { need: 72, have: 71 })
        );
    }

    #[test]
    fn conn_types_and_versions() {
        for (t, v) in [
            (ConnType::None, 0xFFFF_FFFF),
            (ConnType::Any, 0),
            (ConnType::Control, 1),
            (ConnType::BulkIn, 2),
            (ConnType::BulkOut, 3),
        ] {
            assert_eq!(t.to_wire(), v);
            assert_eq!(ConnType::from_wire(v), Some(t));
        }
        assert_eq!(ConnType::from_wire(4), None);
        assert_eq!(ConnType::BulkIn.inverse(), ConnType::BulkOut);
        assert_eq!(ConnType::BulkOut.inverse(), ConnType::BulkIn);
        assert_eq!(ConnType::Control.inverse(), ConnType::Control);
        assert_eq!(ConnType::Any.inverse(), ConnType::Any);
        assert_eq!(ConnType::None.inverse(), ConnType::None);
        assert_eq!(ProtoVersion::from_wire(3), Some(ProtoVersion::V3));
        assert_eq!(ProtoVersion::from_wire(4), None);
        assert_eq!(ProtoVersion::from_wire(0), None);
    }

    #[test]
    fn ip_list_limits() {
        let ips: [u32; 17] = core::array::from_fn(|i| i as u32 + 1);
        assert_eq!(
            IpList::from_slice(&ips[..16]).unwrap().as_slice(),
            &ips[..16]
        );
        assert_eq!(IpList::from_slice(&ips), Err(WireError::TooManyIps(17)));
        assert_eq!(IpList::from_slice(&[1, 0]), Err(WireError::ZeroIp));
        assert!(IpList::EMPTY.is_empty());
        assert_eq!(IpList::default(), IpList::EMPTY);
        assert_eq!(IpList::from_slice(&[]).unwrap(), IpList::EMPTY);
    }
}
