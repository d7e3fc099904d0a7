//! The 72-byte LNet message header (NID4 form), always little-endian (spec §1.5–1.9).

use static_assertions::const_assert_eq;

use super::nid::{LNET_MTU, NID_SIZE, PID_SIZE, WIRE_HANDLE_SIZE};
use super::{Endian, Nid, WireError, WireHandle};

/// Size of the LNet header on the wire.
pub const LNET_HDR_SIZE: usize = 72;

// Field offsets of the common part (spec §1.5). Each is derived from the previous field's offset
// and size, and then asserted against the spec's number, so a slip in either shows up at compile
// time.
pub const OFF_DEST_NID: usize = 0;
pub const OFF_SRC_NID: usize = OFF_DEST_NID + NID_SIZE;
pub const OFF_DEST_PID: usize = OFF_SRC_NID + NID_SIZE;
pub const OFF_SRC_PID: usize = OFF_DEST_PID + PID_SIZE;
pub const OFF_TYPE: usize = OFF_SRC_PID + PID_SIZE;
pub const OFF_PAYLOAD_LENGTH: usize = OFF_TYPE + 4;
/// Start of the 40-byte per-type union.
pub const OFF_MSG: usize = OFF_PAYLOAD_LENGTH + 4;
/// Size of the per-type union.
pub const MSG_UNION_SIZE: usize = LNET_HDR_SIZE - OFF_MSG;

// ACK (spec §1.7).
pub const OFF_ACK_DST_WMD: usize = OFF_MSG;
pub const OFF_ACK_MATCH_BITS: usize = OFF_ACK_DST_WMD + WIRE_HANDLE_SIZE;
pub const OFF_ACK_MLENGTH: usize = OFF_ACK_MATCH_BITS + 8;
/// First unused byte of an ACK (zero up to the end of the header).
pub const END_ACK: usize = OFF_ACK_MLENGTH + 4;

// PUT.
pub const OFF_PUT_ACK_WMD: usize = OFF_MSG;
pub const OFF_PUT_MATCH_BITS: usize = OFF_PUT_ACK_WMD + WIRE_HANDLE_SIZE;
pub const OFF_PUT_HDR_DATA: usize = OFF_PUT_MATCH_BITS + 8;
pub const OFF_PUT_PTL_INDEX: usize = OFF_PUT_HDR_DATA + 8;
pub const OFF_PUT_OFFSET: usize = OFF_PUT_PTL_INDEX + 4;
pub const END_PUT: usize = OFF_PUT_OFFSET + 4;

// GET.
pub const OFF_GET_RETURN_WMD: usize = OFF_MSG;
pub const OFF_GET_MATCH_BITS: usize = OFF_GET_RETURN_WMD + WIRE_HANDLE_SIZE;
pub const OFF_GET_PTL_INDEX: usize = OFF_GET_MATCH_BITS + 8;
pub const OFF_GET_SRC_OFFSET: usize = OFF_GET_PTL_INDEX + 4;
pub const OFF_GET_SINK_LENGTH: usize = OFF_GET_SRC_OFFSET + 4;
pub const END_GET: usize = OFF_GET_SINK_LENGTH + 4;

// REPLY.
pub const OFF_REPLY_DST_WMD: usize = OFF_MSG;
pub const END_REPLY: usize = OFF_REPLY_DST_WMD + WIRE_HANDLE_SIZE;

// HELLO (V1 handshake only).
pub const OFF_HELLO_INCARNATION: usize = OFF_MSG;
pub const OFF_HELLO_TYPE: usize = OFF_HELLO_INCARNATION + 8;
pub const END_HELLO: usize = OFF_HELLO_TYPE + 4;

const_assert_eq!(LNET_HDR_SIZE, 72);
// Spec §1.6 message type values.
const_assert_eq!(MsgType::Ack as u32, 0);
const_assert_eq!(MsgType::Put as u32, 1);
const_assert_eq!(MsgType::Get as u32, 2);
const_assert_eq!(MsgType::Reply as u32, 3);
const_assert_eq!(MsgType::Hello as u32, 4);
const_assert_eq!(LNET_MTU, 1 << 20);
const_assert_eq!(OFF_DEST_NID, 0);
const_assert_eq!(OFF_SRC_NID, 8);
const_assert_eq!(OFF_DEST_PID, 16);
const_assert_eq!(OFF_SRC_PID, 20);
const_assert_eq!(OFF_TYPE, 24);
const_assert_eq!(OFF_PAYLOAD_LENGTH, 28);
const_assert_eq!(OFF_MSG, 32);
const_assert_eq!(MSG_UNION_SIZE, 40);
const_assert_eq!(OFF_ACK_DST_WMD, 32);
const_assert_eq!(OFF_ACK_MATCH_BITS, 48);
const_assert_eq!(OFF_ACK_MLENGTH, 56);
const_assert_eq!(END_ACK, 60);
const_assert_eq!(LNET_HDR_SIZE - END_ACK, 12);
const_assert_eq!(OFF_PUT_ACK_WMD, 32);
const_assert_eq!(OFF_PUT_MATCH_BITS, 48);
const_assert_eq!(OFF_PUT_HDR_DATA, 56);
const_assert_eq!(OFF_PUT_PTL_INDEX, 64);
const_assert_eq!(OFF_PUT_OFFSET, 68);
const_assert_eq!(END_PUT, LNET_HDR_SIZE);
const_assert_eq!(OFF_GET_RETURN_WMD, 32);
const_assert_eq!(OFF_GET_MATCH_BITS, 48);
const_assert_eq!(OFF_GET_PTL_INDEX, 56);
const_assert_eq!(OFF_GET_SRC_OFFSET, 60);
const_assert_eq!(OFF_GET_SINK_LENGTH, 64);
const_assert_eq!(END_GET, 68);
const_assert_eq!(LNET_HDR_SIZE - END_GET, 4);
const_assert_eq!(OFF_REPLY_DST_WMD, 32);
const_assert_eq!(LNET_HDR_SIZE - END_REPLY, 24);
const_assert_eq!(OFF_HELLO_INCARNATION, 32);
const_assert_eq!(OFF_HELLO_TYPE, 40);
const_assert_eq!(LNET_HDR_SIZE - END_HELLO, 28);
/// Match bits of LNet ping and discovery (`LNET_PROTO_PING_MATCHBITS`).
pub const LNET_PROTO_PING_MATCHBITS: u64 = 0x8000_0000_0000_0000;

/// LNet message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    Ack = 0,
    Put = 1,
    Get = 2,
    Reply = 3,
    Hello = 4,
}

impl MsgType {
    pub fn from_wire(v: u32) -> Option<MsgType> {
        match v {
            0 => Some(MsgType::Ack),
            1 => Some(MsgType::Put),
            2 => Some(MsgType::Get),
            3 => Some(MsgType::Reply),
            4 => Some(MsgType::Hello),
            _ => None,
        }
    }

    pub const fn to_wire(self) -> u32 {
        self as u32
    }
}

/// The 40-byte per-type part of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LnetMsg {
    Ack {
        dst_wmd: WireHandle,
        match_bits: u64,
        mlength: u32,
    },
    Put {
        ack_wmd: WireHandle,
        match_bits: u64,
        hdr_data: u64,
        ptl_index: u32,
        offset: u32,
    },
    Get {
        return_wmd: WireHandle,
        match_bits: u64,
        ptl_index: u32,
        src_offset: u32,
        sink_length: u32,
    },
    Reply {
        dst_wmd: WireHandle,
    },
    /// Only inside a V1 hello.
    Hello {
        incarnation: u64,
        conn_type: u32,
    },
}

impl LnetMsg {
    pub fn msg_type(&self) -> MsgType {
        match self {
            LnetMsg::Ack { .. } => MsgType::Ack,
            LnetMsg::Put { .. } => MsgType::Put,
            LnetMsg::Get { .. } => MsgType::Get,
            LnetMsg::Reply { .. } => MsgType::Reply,
            LnetMsg::Hello { .. } => MsgType::Hello,
        }
    }
}

/// A decoded LNet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LnetHdr {
    pub dest_nid: Nid,
    pub src_nid: Nid,
    pub dest_pid: u32,
    pub src_pid: u32,
    pub payload_length: u32,
    pub msg: LnetMsg,
}

impl LnetHdr {
    /// Decodes the 72 bytes at the start of `buf` (any message type, HELLO included), checking only
    /// what makes the bytes meaningless: a short buffer or an unknown type. Semantic checks that
    /// the receiving LNet applies are in [`LnetHdr::validate`].
    pub fn decode(buf: &[u8]) -> Result<LnetHdr, WireError> {
        let short = WireError::Short {
            need: LNET_HDR_SIZE,
            have: buf.len(),
        };
        let hdr = buf.get(..LNET_HDR_SIZE).ok_or(short)?;
        // From here every read is inside `hdr`, so the `ok_or(short)` fallbacks cannot trigger;
        // they only keep the code free of panicking paths.
        let le = Endian::Little;
        let u32_at = |off| le.get_u32(hdr, off).ok_or(short);
        let u64_at = |off| le.get_u64(hdr, off).ok_or(short);
        let wmd_at = |off| WireHandle::read(hdr, off).ok_or(short);

        let raw_type = u32_at(OFF_TYPE)?;
        let msg = match MsgType::from_wire(raw_type).ok_or(WireError::BadMsgType(raw_type))? {
            MsgType::Ack => LnetMsg::Ack {
                dst_wmd: wmd_at(OFF_ACK_DST_WMD)?,
                match_bits: u64_at(OFF_ACK_MATCH_BITS)?,
                mlength: u32_at(OFF_ACK_MLENGTH)?,
            },
            MsgType::Put => LnetMsg::Put {
                ack_wmd: wmd_at(OFF_PUT_ACK_WMD)?,
                match_bits: u64_at(OFF_PUT_MATCH_BITS)?,
                hdr_data: u64_at(OFF_PUT_HDR_DATA)?,
                ptl_index: u32_at(OFF_PUT_PTL_INDEX)?,
                offset: u32_at(OFF_PUT_OFFSET)?,
            },
            MsgType::Get => LnetMsg::Get {
                return_wmd: wmd_at(OFF_GET_RETURN_WMD)?,
                match_bits: u64_at(OFF_GET_MATCH_BITS)?,
                ptl_index: u32_at(OFF_GET_PTL_INDEX)?,
                src_offset: u32_at(OFF_GET_SRC_OFFSET)?,
                sink_length: u32_at(OFF_GET_SINK_LENGTH)?,
            },
            MsgType::Reply => LnetMsg::Reply {
                dst_wmd: wmd_at(OFF_REPLY_DST_WMD)?,
            },
            MsgType::Hello => LnetMsg::Hello {
                incarnation: u64_at(OFF_HELLO_INCARNATION)?,
                conn_type: u32_at(OFF_HELLO_TYPE)?,
            },
        };
        Ok(LnetHdr {
            dest_nid: Nid(u64_at(OFF_DEST_NID)?),
            src_nid: Nid(u64_at(OFF_SRC_NID)?),
            dest_pid: u32_at(OFF_DEST_PID)?,
            src_pid: u32_at(OFF_SRC_PID)?,
            payload_length: u32_at(OFF_PAYLOAD_LENGTH)?,
            msg,
        })
    }

    /// The checks `lnet_parse` makes before anything else (spec §1.9): ACK and GET carry no payload,
    /// PUT and REPLY at most `LNET_MTU` bytes, HELLO is not a data message.
    pub fn validate(&self) -> Result<(), WireError> {
        let msg_type = self.msg.msg_type();
        let length = self.payload_length;
        let bad_length = WireError::BadPayloadLength {
            msg_type: msg_type.to_wire(),
            length,
        };
        match msg_type {
            MsgType::Ack | MsgType::Get if length != 0 => Err(bad_length),
            MsgType::Put | MsgType::Reply if length > LNET_MTU => Err(bad_length),
            MsgType::Hello => Err(WireError::BadMsgType(msg_type.to_wire())),
            _ => Ok(()),
        }
    }

    /// Writes the 72 bytes into `out[..72]`; unused union bytes are zero.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let short = WireError::Short {
            need: LNET_HDR_SIZE,
            have: out.len(),
        };
        let hdr = out.get_mut(..LNET_HDR_SIZE).ok_or(short)?;
        hdr.fill(0);
        let le = Endian::Little;
        le.put_u64(hdr, OFF_DEST_NID, self.dest_nid.0)
            .ok_or(short)?;
        le.put_u64(hdr, OFF_SRC_NID, self.src_nid.0).ok_or(short)?;
        le.put_u32(hdr, OFF_DEST_PID, self.dest_pid).ok_or(short)?;
        le.put_u32(hdr, OFF_SRC_PID, self.src_pid).ok_or(short)?;
        le.put_u32(hdr, OFF_TYPE, self.msg.msg_type().to_wire())
            .ok_or(short)?;
        le.put_u32(hdr, OFF_PAYLOAD_LENGTH, self.payload_length)
            .ok_or(short)?;
        match self.msg {
            LnetMsg::Ack {
                dst_wmd,
                match_bits,
                mlength,
            } => {
                dst_wmd.write(hdr, OFF_ACK_DST_WMD).ok_or(short)?;
                le.put_u64(hdr, OFF_ACK_MATCH_BITS, match_bits)
                    .ok_or(short)?;
                le.put_u32(hdr, OFF_ACK_MLENGTH, mlength).ok_or(short)?;
            }
            LnetMsg::Put {
                ack_wmd,
                match_bits,
                hdr_data,
                ptl_index,
                offset,
            } => {
                ack_wmd.write(hdr, OFF_PUT_ACK_WMD).ok_or(short)?;
                le.put_u64(hdr, OFF_PUT_MATCH_BITS, match_bits)
                    .ok_or(short)?;
                le.put_u64(hdr, OFF_PUT_HDR_DATA, hdr_data).ok_or(short)?;
                le.put_u32(hdr, OFF_PUT_PTL_INDEX, ptl_index).ok_or(short)?;
                le.put_u32(hdr, OFF_PUT_OFFSET, offset).ok_or(short)?;
            }
            LnetMsg::Get {
                return_wmd,
                match_bits,
                ptl_index,
                src_offset,
                sink_length,
            } => {
                return_wmd.write(hdr, OFF_GET_RETURN_WMD).ok_or(short)?;
                le.put_u64(hdr, OFF_GET_MATCH_BITS, match_bits)
                    .ok_or(short)?;
                le.put_u32(hdr, OFF_GET_PTL_INDEX, ptl_index).ok_or(short)?;
                le.put_u32(hdr, OFF_GET_SRC_OFFSET, src_offset)
                    .ok_or(short)?;
                le.put_u32(hdr, OFF_GET_SINK_LENGTH, sink_length)
                    .ok_or(short)?;
            }
            LnetMsg::Reply { dst_wmd } => {
                dst_wmd.write(hdr, OFF_REPLY_DST_WMD).ok_or(short)?;
            }
            LnetMsg::Hello {
                incarnation,
                conn_type,
            } => {
                le.put_u64(hdr, OFF_HELLO_INCARNATION, incarnation)
                    .ok_or(short)?;
                le.put_u32(hdr, OFF_HELLO_TYPE, conn_type).ok_or(short)?;
            }
        }
        Ok(LNET_HDR_SIZE)
    }

    /// The header as a fresh array.
    pub fn to_bytes(&self) -> [u8; LNET_HDR_SIZE] {
        let mut out = [0u8; LNET_HDR_SIZE];
        // Cannot fail: the array is exactly the header size.
        let _ = self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const A: Nid = Nid(0x0002_0000_C0A8_0001);
    const B: Nid = Nid(0x0002_0000_C0A8_0002);
    const RETURN_WMD: WireHandle = WireHandle {
        interface_cookie: 0x1122_3344_5566_7788,
        object_cookie: 0x99aa_bbcc_ddee_ff00,
    };

    /// The LNet part (bytes 24..96) of Appendix A.5: ping GET from B to A.
    const A5_LNET: [u8; 72] = [
        0x01, 0x00, 0xa8, 0xc0, 0x00, 0x00, 0x02, 0x00, // dest_nid A
        0x02, 0x00, 0xa8, 0xc0, 0x00, 0x00, 0x02, 0x00, // src_nid B
        0x39, 0x30, 0x00, 0x00, 0x39, 0x30, 0x00, 0x00, // dest_pid, src_pid
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // GET, payload 0
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // return_wmd
        0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, // match bits
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // portal 0, src_offset 0
        0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // sink_length 272, unused
    ];

    fn ping_get() -> LnetHdr {
        LnetHdr {
            dest_nid: A,
            src_nid: B,
            dest_pid: 12345,
            src_pid: 12345,
            payload_length: 0,
            msg: LnetMsg::Get {
                return_wmd: RETURN_WMD,
                match_bits: LNET_PROTO_PING_MATCHBITS,
                ptl_index: 0,
                src_offset: 0,
                sink_length: 272,
            },
        }
    }

    #[test]
    fn appendix_a5_get_round_trip() {
        let hdr = LnetHdr::decode(&A5_LNET).unwrap();
        assert_eq!(hdr, ping_get());
        assert_eq!(hdr.to_bytes(), A5_LNET);
        assert_eq!(hdr.validate(), Ok(()));
    }

    #[test]
    fn short_and_bad_type() {
        for len in 0..LNET_HDR_SIZE {
            assert_eq!(
                LnetHdr::decode(&A5_LNET[..len]),
                Err(WireError::Short {
                    need: 72,
                    have: len
                })
            );
        }
        let mut bytes = A5_LNET;
        bytes[OFF_TYPE] = 5;
        assert_eq!(LnetHdr::decode(&bytes), Err(WireError::BadMsgType(5)));
        let mut small = [0u8; 71];
        assert_eq!(
            ping_get().encode(&mut small),
            Err(WireError::Short { need: 72, have: 71 })
        );
    }

    #[test]
    fn encode_zeroes_unused_bytes() {
        let mut out = [0xAAu8; 80];
        let reply = LnetHdr {
            msg: LnetMsg::Reply {
                dst_wmd: RETURN_WMD,
            },
            payload_length: 48,
            ..ping_get()
        };
        assert_eq!(reply.encode(&mut out), Ok(72));
        assert!(out[END_REPLY..72].iter().all(|&b| b == 0));
        assert!(out[72..].iter().all(|&b| b == 0xAA));
        assert_eq!(LnetHdr::decode(&out).unwrap(), reply);
    }

    #[test]
    fn every_type_round_trips() {
        let msgs = [
            LnetMsg::Ack {
                dst_wmd: RETURN_WMD,
                match_bits: 7,
                mlength: 48,
            },
            LnetMsg::Put {
                ack_wmd: WireHandle::NONE,
                match_bits: 1,
                hdr_data: 0xfeed_f00d_dead_beef,
                ptl_index: 52,
                offset: 9,
            },
            ping_get().msg,
            LnetMsg::Reply {
                dst_wmd: RETURN_WMD,
            },
            LnetMsg::Hello {
                incarnation: 0x17D2_C0FF_EE00_0000,
                conn_type: 3,
            },
        ];
        for (i, msg) in msgs.into_iter().enumerate() {
            assert_eq!(msg.msg_type().to_wire(), i as u32);
            assert_eq!(MsgType::from_wire(i as u32), Some(msg.msg_type()));
            let hdr = LnetHdr { msg, ..ping_get() };
            let bytes = hdr.to_bytes();
            assert_eq!(
                u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
                i as u32
            );
            assert_eq!(LnetHdr::decode(&bytes).unwrap(), hdr);
        }
    }

    #[test]
    fn validate_rules() {
        let with = |msg, payload_length| LnetHdr {
            msg,
            payload_length,
            ..ping_get()
        };
        let get = ping_get().msg;
        let ack = LnetMsg::Ack {
            dst_wmd: RETURN_WMD,
            match_bits: 0,
            mlength: 0,
        };
        let put = LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 0,
            hdr_data: 0,
            ptl_index: 0,
            offset: 0,
        };
        let reply = LnetMsg::Reply {
            dst_wmd: RETURN_WMD,
        };
        assert_eq!(
            with(get, 1).validate(),
            Err(WireError::BadPayloadLength {
                msg_type: 2,
                length: 1
            })
        );
        assert_eq!(
            with(ack, 4).validate(),
            Err(WireError::BadPayloadLength {
                msg_type: 0,
                length: 4
            })
        );
        assert_eq!(with(put, LNET_MTU).validate(), Ok(()));
        assert_eq!(with(reply, LNET_MTU).validate(), Ok(()));
        assert_eq!(
            with(put, LNET_MTU + 1).validate(),
            Err(WireError::BadPayloadLength {
                msg_type: 1,
                length: LNET_MTU + 1
            })
        );
        assert_eq!(
            with(reply, u32::MAX).validate(),
            Err(WireError::BadPayloadLength {
                msg_type: 3,
                length: u32::MAX
            })
        );
        let hello = LnetMsg::Hello {
            incarnation: 1,
            conn_type: 0,
        };
        assert_eq!(with(hello, 0).validate(), Err(WireError::BadMsgType(4)));
    }
}
