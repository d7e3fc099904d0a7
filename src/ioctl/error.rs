//! Errors of the control interface and their NTSTATUS / errno mappings.
//!
//! Two error types:
//! - [`IoctlError`]: what was wrong with a request (or with a reply buffer); produced by the
//!   decoders, encoders and the dispatcher. Every variant says which field, what value, and what
//!   was expected, so `ptlctl`/`lctl` can print something useful.
//! - [`CtlError`]: what a [`NalControl`](super::NalControl) implementation reports when a
//!   well-formed command could not be carried out (no such peer, port in use, …).
//!
//! Mapping rules (see `docs/ioctl.md` §5):
//! - malformed *input* → `STATUS_INVALID_PARAMETER` (`EINVAL`), except a wrong version field
//!   → `STATUS_REVISION_MISMATCH`;
//! - `STATUS_BUFFER_TOO_SMALL` is reserved for a too-small *output* buffer, so a tool can tell
//!   "give me more room" apart from "your request is wrong";
//! - an unknown control code → `STATUS_INVALID_DEVICE_REQUEST` (`ENOTTY`);
//! - a Lustre command tdinal does not implement → `STATUS_NOT_SUPPORTED` (`EOPNOTSUPP`);
//! - an index past the end of a list → `STATUS_NO_MORE_ENTRIES` (`ENOENT`, which `lctl` uses to
//!   stop listing). It is a warning status: `DeviceIoControl` fails with `ERROR_NO_MORE_ITEMS`.

use core::fmt;

use super::codes::Era;

/// NTSTATUS values used by the control interface (as `i32`, the type of `NTSTATUS`).
pub mod ntstatus {
    // The values are written as the u32 bit patterns from ntstatus.h and reinterpreted.
    const fn nt(v: u32) -> i32 {
        i32::from_ne_bytes(v.to_ne_bytes())
    }
    pub const STATUS_SUCCESS: i32 = 0;
    pub const STATUS_UNSUCCESSFUL: i32 = nt(0xC000_0001);
    pub const STATUS_INVALID_PARAMETER: i32 = nt(0xC000_000D);
    pub const STATUS_INVALID_DEVICE_REQUEST: i32 = nt(0xC000_0010);
    pub const STATUS_BUFFER_TOO_SMALL: i32 = nt(0xC000_0023);
    pub const STATUS_OBJECT_NAME_COLLISION: i32 = nt(0xC000_0035);
    pub const STATUS_REVISION_MISMATCH: i32 = nt(0xC000_0059);
    pub const STATUS_INSUFFICIENT_RESOURCES: i32 = nt(0xC000_009A);
    pub const STATUS_IO_TIMEOUT: i32 = nt(0xC000_00B5);
    pub const STATUS_NOT_SUPPORTED: i32 = nt(0xC000_00BB);
    pub const STATUS_INTERNAL_ERROR: i32 = nt(0xC000_00E5);
    pub const STATUS_INVALID_DEVICE_STATE: i32 = nt(0xC000_0184);
    pub const STATUS_ADDRESS_ALREADY_EXISTS: i32 = nt(0xC000_020A);
    pub const STATUS_NOT_FOUND: i32 = nt(0xC000_0225);
    pub const STATUS_CONNECTION_REFUSED: i32 = nt(0xC000_0236);
    pub const STATUS_HOST_UNREACHABLE: i32 = nt(0xC000_023D);
    /// A warning (severity 2), not an error: the I/O manager still completes the request.
    pub const STATUS_NO_MORE_ENTRIES: i32 = nt(0x8000_001A);
}

/// Linux errno values (positive) used for the user-space runtime, as the kernel would return them
/// negated from `ioctl(2)`.
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EINVAL: i32 = 22;
    pub const ENOTTY: i32 = 25;
    pub const EOVERFLOW: i32 = 75;
    pub const EOPNOTSUPP: i32 = 95;
    pub const EADDRINUSE: i32 = 98;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
    pub const EHOSTUNREACH: i32 = 113;
}

use errno::*;
use ntstatus::*;

/// What a [`NalControl`](super::NalControl) implementation reports for a well-formed command
/// it could not carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtlError {
    /// A list index past the end (GET_PEER / GET_CONN / GET_INTERFACE / GET_NI).
    NoMoreEntries,
    /// No peer / connection / interface matches (e.g. DEL_PEER of an unknown NID).
    NotFound,
    /// The object already exists (e.g. ADD_INTERFACE of a known address).
    Exists,
    /// The value is well-formed but not acceptable to this NAL (e.g. REGISTER_MYNID with a NID
    /// other than the NI's own, which Linux also refuses with EINVAL).
    InvalidArgument,
    /// The NAL is not in a state to do this (acceptor already running, NAL shutting down, …).
    InvalidState,
    /// Out of memory / pool.
    NoMemory,
    /// The listening port is taken, or no privileged local port was free to connect from.
    AddressInUse,
    /// The peer refused the TCP connection (or the socklnd handshake).
    ConnectionRefused,
    /// No route to the peer.
    Unreachable,
    /// The operation timed out.
    TimedOut,
    /// This NAL does not implement the command (e.g. interfaces in a build without them).
    NotSupported,
    /// Anything else, as a Linux errno (positive).
    Failed { errno: i32 },
}

impl CtlError {
    /// The NTSTATUS the driver completes the IRP with.
    pub fn to_ntstatus(&self) -> i32 {
        match *self {
            CtlError::NoMoreEntries => STATUS_NO_MORE_ENTRIES,
            CtlError::NotFound => STATUS_NOT_FOUND,
            CtlError::Exists => STATUS_OBJECT_NAME_COLLISION,
            CtlError::InvalidArgument => STATUS_INVALID_PARAMETER,
            CtlError::InvalidState => STATUS_INVALID_DEVICE_STATE,
            CtlError::NoMemory => STATUS_INSUFFICIENT_RESOURCES,
            CtlError::AddressInUse => STATUS_ADDRESS_ALREADY_EXISTS,
            CtlError::ConnectionRefused => STATUS_CONNECTION_REFUSED,
            CtlError::Unreachable => STATUS_HOST_UNREACHABLE,
            CtlError::TimedOut => STATUS_IO_TIMEOUT,
            CtlError::NotSupported => STATUS_NOT_SUPPORTED,
            CtlError::Failed { .. } => STATUS_UNSUCCESSFUL,
        }
    }

    /// The Linux errno (positive) the user-space runtime returns (negated, like the kernel).
    pub fn to_errno(&self) -> i32 {
        match *self {
            CtlError::NoMoreEntries | CtlError::NotFound => ENOENT,
            CtlError::Exists => EEXIST,
            CtlError::InvalidArgument => EINVAL,
            CtlError::InvalidState => EBUSY,
            CtlError::NoMemory => ENOMEM,
            CtlError::AddressInUse => EADDRINUSE,
            CtlError::ConnectionRefused => ECONNREFUSED,
            CtlError::Unreachable => EHOSTUNREACH,
            CtlError::TimedOut => ETIMEDOUT,
            CtlError::NotSupported => EOPNOTSUPP,
            CtlError::Failed { errno } if errno > 0 => errno,
            CtlError::Failed { .. } => EIO,
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CtlError::NoMoreEntries => f.write_str("no more entries"),
            CtlError::NotFound => f.write_str("no matching peer, connection or interface"),
            CtlError::Exists => f.write_str("already exists"),
            CtlError::InvalidArgument => f.write_str("value not accepted by the NAL"),
            CtlError::InvalidState => f.write_str("the NAL is not in a state to do this"),
            CtlError::NoMemory => f.write_str("out of memory"),
            CtlError::AddressInUse => f.write_str("address or port in use"),
            CtlError::ConnectionRefused => f.write_str("connection refused by the peer"),
            CtlError::Unreachable => f.write_str("peer unreachable"),
            CtlError::TimedOut => f.write_str("timed out"),
            CtlError::NotSupported => f.write_str("not supported by this NAL"),
            CtlError::Failed { errno } => write!(f, "failed (errno {errno})"),
        }
    }
}

/// What was wrong with a control request, a reply buffer, or the command's execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoctlError {
    /// Not a tdinal control code: wrong device type, transfer method or access bits, or a
    /// function number that is not assigned.
    UnknownCode { code: u32 },
    /// A `NAL_CMD_*` / `IOC_LIBCFS_*` number no Lustre release (nor tdinal) defines.
    UnknownCommand { era: Era, nr: u32 },
    /// A Lustre command tdinal recognises but does not implement; `why` says what to use instead.
    NotSupported {
        command: &'static str,
        why: &'static str,
    },
    /// A command that only exists in the other request form (e.g. START_DAEMON as LNet-era).
    NotInEra { command: &'static str, era: Era },
    /// The input buffer is shorter than the fixed part of the request.
    ShortInput { need: usize, have: usize },
    /// `ioc_len` is not the length of the input buffer.
    LengthMismatch { ioc_len: u32, buffer: usize },
    /// The request is longer than [`MAX_REQUEST_LEN`](super::MAX_REQUEST_LEN).
    TooLong { len: usize, max: usize },
    /// `ioc_len` is not `128 + round8(inllen1) + round8(inllen2)` (inline buffers past the end,
    /// lengths that overflow, or trailing bytes). `packed` is computed without overflow (u64).
    PackedLengthMismatch {
        inllen1: u32,
        inllen2: u32,
        packed: u64,
        ioc_len: u32,
    },
    /// A version field holds the wrong value.
    BadVersion {
        field: &'static str,
        got: u32,
        expected: u32,
    },
    /// `pcfg_nal` is not SOCKNAL (2).
    WrongNal { got: u32 },
    /// `ioc_net` is not a socklnd network (LND 2).
    WrongNet { net: u32 },
    /// `ioc_net` names a socklnd network this NAL does not serve.
    NoSuchNet { net: u32 },
    /// A field holds a value outside what the command accepts.
    InvalidField {
        field: &'static str,
        value: u64,
        expected: &'static str,
    },
    /// A field the command does not use is not zero.
    ReservedNotZero {
        field: &'static str,
        value: u64,
        command: &'static str,
    },
    /// `LNET_NID_ANY` where the command needs one specific NID.
    NidAnyNotAllowed {
        field: &'static str,
        command: &'static str,
    },
    /// A NID that cannot name a socklnd peer (`expected` says why).
    BadNid {
        field: &'static str,
        nid: u64,
        expected: &'static str,
    },
    /// A TCP port outside 1..=65535.
    BadPort { field: &'static str, value: u32 },
    /// An IPv4 address that cannot be used here (zero, multicast, reserved, bad netmask).
    BadIp {
        field: &'static str,
        value: u32,
        expected: &'static str,
    },
    /// The output buffer cannot hold the reply.
    OutputTooSmall { need: usize, have: usize },
    /// A list index past the end.
    NoMoreEntries,
    /// A reply of the wrong kind for the command (a bug in the caller of `encode_reply`).
    ReplyMismatch { command: &'static str },
    /// The NAL could not carry out the command.
    Ctl(CtlError),
}

impl From<CtlError> for IoctlError {
    fn from(e: CtlError) -> IoctlError {
        match e {
            CtlError::NoMoreEntries => IoctlError::NoMoreEntries,
            other => IoctlError::Ctl(other),
        }
    }
}

impl IoctlError {
    /// The NTSTATUS the driver completes the IRP with.
    pub fn to_ntstatus(&self) -> i32 {
        match *self {
            IoctlError::UnknownCode { .. } | IoctlError::UnknownCommand { .. } => {
                STATUS_INVALID_DEVICE_REQUEST
            }
            IoctlError::NotSupported { .. } | IoctlError::NotInEra { .. } => STATUS_NOT_SUPPORTED,
            IoctlError::BadVersion { .. } => STATUS_REVISION_MISMATCH,
            IoctlError::ShortInput { .. }
            | IoctlError::LengthMismatch { .. }
            | IoctlError::TooLong { .. }
            | IoctlError::PackedLengthMismatch { .. }
            | IoctlError::WrongNal { .. }
            | IoctlError::WrongNet { .. }
            | IoctlError::NoSuchNet { .. }
            | IoctlError::InvalidField { .. }
            | IoctlError::ReservedNotZero { .. }
            | IoctlError::NidAnyNotAllowed { .. }
            | IoctlError::BadNid { .. }
            | IoctlError::BadPort { .. }
            | IoctlError::BadIp { .. } => STATUS_INVALID_PARAMETER,
            IoctlError::OutputTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
            IoctlError::NoMoreEntries => STATUS_NO_MORE_ENTRIES,
            IoctlError::ReplyMismatch { .. } => STATUS_INTERNAL_ERROR,
            IoctlError::Ctl(e) => e.to_ntstatus(),
        }
    }

    /// The Linux errno (positive) for the user-space runtime; it returns it negated, like the
    /// kernel's ioctl handlers do.
    pub fn to_errno(&self) -> i32 {
        match *self {
            IoctlError::UnknownCode { .. } => ENOTTY,
            // Linux answers an unknown NAL_CMD / LND command with EINVAL.
            IoctlError::UnknownCommand { .. } => EINVAL,
            IoctlError::NotSupported { .. } | IoctlError::NotInEra { .. } => EOPNOTSUPP,
            IoctlError::BadVersion { .. }
            | IoctlError::ShortInput { .. }
            | IoctlError::LengthMismatch { .. }
            | IoctlError::TooLong { .. }
            | IoctlError::PackedLengthMismatch { .. }
            | IoctlError::WrongNal { .. }
            | IoctlError::WrongNet { .. }
            | IoctlError::NoSuchNet { .. }
            | IoctlError::InvalidField { .. }
            | IoctlError::ReservedNotZero { .. }
            | IoctlError::NidAnyNotAllowed { .. }
            | IoctlError::BadNid { .. }
            | IoctlError::BadPort { .. }
            | IoctlError::BadIp { .. } => EINVAL,
            IoctlError::OutputTooSmall { .. } => EOVERFLOW,
            IoctlError::NoMoreEntries => ENOENT,
            IoctlError::ReplyMismatch { .. } => EIO,
            IoctlError::Ctl(e) => e.to_errno(),
        }
    }
}

/// Formats a host-order IPv4 integer as a dotted quad.
#[derive(Clone, Copy)]
pub(crate) struct Ip(pub u32);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl fmt::Display for IoctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IoctlError::UnknownCode { code } => write!(
                f,
                "control code 0x{code:08x} is not a tdinal ioctl (device type, method, access \
                 bits or function not assigned)"
            ),
            IoctlError::UnknownCommand { era, nr } => match era {
                Era::Portals => write!(f, "pcfg_command {nr} is not a NAL_CMD_* (100-117)"),
                Era::Lnet => write!(f, "ioctl nr {nr} is not an IOC_LIBCFS_* command"),
            },
            IoctlError::NotSupported { command, why } => {
                write!(f, "{command} is not supported by tdinal: {why}")
            }
            IoctlError::NotInEra { command, era } => write!(
                f,
                "{command} has no {} form",
                match era {
                    Era::Portals => "Portals-era (IOC_PORTAL_NAL_CMD)",
                    Era::Lnet => "LNet-era (IOC_LIBCFS_*)",
                }
            ),
            IoctlError::ShortInput { need, have } => write!(
                f,
                "input buffer is {have} bytes; the request needs at least {need}"
            ),
            IoctlError::LengthMismatch { ioc_len, buffer } => write!(
                f,
                "ioc_len is {ioc_len} but the input buffer is {buffer} bytes; they must be equal"
            ),
            IoctlError::TooLong { len, max } => {
                write!(f, "request of {len} bytes exceeds the {max}-byte limit")
            }
            IoctlError::PackedLengthMismatch {
                inllen1,
                inllen2,
                packed,
                ioc_len,
            } => write!(
                f,
                "ioc_inllen1 = {inllen1}, ioc_inllen2 = {inllen2} need ioc_len = 128 + \
                 round8(inllen1) + round8(inllen2) = {packed}, but ioc_len is {ioc_len}"
            ),
            IoctlError::BadVersion {
                field,
                got,
                expected,
            } => write!(f, "{field} is 0x{got:08x}, expected 0x{expected:08x}"),
            IoctlError::WrongNal { got } => {
                write!(f, "pcfg_nal is {got}, expected SOCKNAL (2)")
            }
            IoctlError::WrongNet { net } => write!(
                f,
                "ioc_net 0x{net:08x} is not a socklnd network (LND type {}), expected LND 2 \
                 (tcp), e.g. 0x00020000",
                (net >> 16) & 0xff
            ),
            IoctlError::NoSuchNet { net } => write!(
                f,
                "ioc_net 0x{net:08x} (tcp{}) is not a network this NAL serves",
                net & 0xffff
            ),
            IoctlError::InvalidField {
                field,
                value,
                expected,
            } => write!(f, "{field} is {value} (0x{value:x}), expected {expected}"),
            IoctlError::ReservedNotZero {
                field,
                value,
                command,
            } => write!(
                f,
                "{field} is {value} (0x{value:x}) but {command} does not use it; it must be 0"
            ),
            IoctlError::NidAnyNotAllowed { field, command } => write!(
                f,
                "{field} is LNET_NID_ANY but {command} needs one specific NID"
            ),
            IoctlError::BadNid {
                field,
                nid,
                expected,
            } => write!(f, "{field} 0x{nid:016x} is not usable: expected {expected}"),
            IoctlError::BadPort { field, value } => {
                write!(f, "{field} is {value}, expected a TCP port 1..=65535")
            }
            IoctlError::BadIp {
                field,
                value,
                expected,
            } => write!(
                f,
                "{field} is {} (0x{value:08x}), expected {expected}",
                Ip(value)
            ),
            IoctlError::OutputTooSmall { need, have } => {
                write!(f, "output buffer is {have} bytes; the reply needs {need}")
            }
            IoctlError::NoMoreEntries => f.write_str("no more entries (index past the end)"),
            IoctlError::ReplyMismatch { command } => {
                write!(f, "reply of the wrong kind for {command}")
            }
            IoctlError::Ctl(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IoctlError {}

#[cfg(feature = "std")]
impl std::error::Error for CtlError {}
