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
        le.put_u64(hdr, OFF_DEST_NID, self.dest_nid.0).ok_or(short)?;
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
