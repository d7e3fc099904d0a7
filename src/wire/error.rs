//! The one error type of the wire layer: it says what was wrong with the bytes.

use core::fmt;

/// What was wrong with a byte sequence handed to a decoder (or a buffer handed to an encoder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The input is shorter than the structure: `need` bytes are required in total, `have` given.
    /// For encoders: the output buffer is too small.
    Short { need: usize, have: usize },
    /// The magic number is not the one this structure carries (in either byte order where allowed).
    BadMagic(u32),
    /// The magic is right but the version is not one we speak.
    UnknownVersion(u32),
    /// An LNet message type outside 0..=4 (or HELLO where it is not allowed).
    BadMsgType(u32),
    /// A ksock message type other than NOOP (0xc0) or LNET (0xc1).
    BadKsockType(u32),
    /// A socklnd connection type outside NONE/ANY/CONTROL/BULK_IN/BULK_OUT.
    BadConnType(u32),
    /// An IP list longer than 16 entries (`nips` as received).
    TooManyIps(u32),
    /// An IP list entry that is zero.
    ZeroIp,
    /// A V1 hello whose payload length is not a multiple of 4.
    BadIpListLength(u32),
    /// An ACK or GET with a payload, or a PUT/REPLY longer than `LNET_MTU`.
    BadPayloadLength { msg_type: u32, length: u32 },
    /// The source NID is `LNET_NID_ANY` where a real NID is required.
    NidAny,
    /// A ping info whose entry count does not fit the bytes given.
    BadPingInfo,
    /// A textual NID or process id that does not parse.
    BadNidString,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Short { need, have } => {
                write!(f, "short buffer: need {need} bytes, have {have}")
            }
            WireError::BadMagic(m) => write!(f, "bad magic 0x{m:08x}"),
            WireError::UnknownVersion(v) => write!(f, "unknown protocol version {v}"),
            WireError::BadMsgType(t) => write!(f, "bad LNet message type {t}"),
            WireError::BadKsockType(t) => write!(f, "unknown ksock message type 0x{t:x}"),
            WireError::BadConnType(t) => write!(f, "bad socklnd connection type {t}"),
            WireError::TooManyIps(n) => write!(f, "IP list too long: {n} entries (max 16)"),
            WireError::ZeroIp => write!(f, "IP list holds a zero address"),
            WireError::BadIpListLength(n) => {
                write!(f, "V1 hello IP list length {n} is not a multiple of 4")
            }
            WireError::BadPayloadLength { msg_type, length } => {
                write!(
                    f,
                    "payload length {length} not allowed for LNet message type {msg_type}"
                )
            }
            WireError::NidAny => write!(f, "source NID is LNET_NID_ANY"),
            WireError::BadPingInfo => write!(f, "malformed ping info"),
            WireError::BadNidString => write!(f, "malformed NID string"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}
