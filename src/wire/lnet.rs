//! The 72-byte LNet message header (NID4 form), always little-endian (spec §1.5–1.9).

use super::{Nid, WireError, WireHandle};

/// Size of the LNet header on the wire.
pub const LNET_HDR_SIZE: usize = 72;
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
        todo!("wire helper {v}")
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
        todo!("wire helper {self:?}")
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
        todo!("wire helper {}", buf.len())
    }

    /// The checks `lnet_parse` makes before anything else (spec §1.9): ACK and GET carry no payload,
    /// PUT and REPLY at most `LNET_MTU` bytes, HELLO is not a data message.
    pub fn validate(&self) -> Result<(), WireError> {
        todo!("wire helper {self:?}")
    }

    /// Writes the 72 bytes into `out[..72]`; unused union bytes are zero.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        todo!("wire helper {self:?} {}", out.len())
    }

    /// The header as a fresh array.
    pub fn to_bytes(&self) -> [u8; LNET_HDR_SIZE] {
        todo!("wire helper {self:?}")
    }
}
