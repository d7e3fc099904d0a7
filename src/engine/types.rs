//! The engine's vocabulary: time, identifiers, addresses, the events it gives the upper layer, the
//! actions it asks of its runtime, and the reasons connections close and messages fail.

use core::fmt;

use crate::wire::{ConnType, LnetHdr, Nid, ProcessId, ProtoVersion};

/// A point in time in milliseconds on the runtime's monotonic clock. The engine never reads a
/// clock: every call that may depend on time is given `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    pub const fn plus_ms(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }
    pub const fn plus_secs(self, s: u32) -> Time {
        Time(self.0.saturating_add((s as u64).saturating_mul(1000)))
    }
    pub const fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A connection (one TCP connection), unique for the engine's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    /// `#slot`, or `#slot.generation` once the slot has been reused.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (slot, generation) = (self.0 & 0xffff_ffff, self.0 >> 32);
        if generation == 0 {
            write!(f, "#{slot}")
        } else {
            write!(f, "#{slot}.{generation}")
        }
    }
}

/// A message handed to [`super::Engine::send`]; named again in its one [`Event::TxDone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId(pub u64);

/// A received message announced by [`Event::Rx`]; the upper layer answers with
/// [`super::Engine::recv`] exactly once, and gets one [`Event::RxDone`] back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RxId {
    pub conn: ConnId,
    pub seq: u64,
}

/// The two ends of a TCP connection, IPv4 addresses as host-order integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConnAddrs {
    pub local_ip: u32,
    pub local_port: u16,
    pub peer_ip: u32,
    pub peer_port: u16,
}

/// Why a connection closed, or why a message failed. Linux errno equivalents in [`Error::errno`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The peer broke the protocol (bad magic, bad type, unknown ZC cookie, …): -EPROTO.
    Protocol(&'static str),
    /// A received checksum did not match: the message fails with -EIO, the connection closes.
    Checksum { wire: u32, computed: u32 },
    /// No progress within `sock_timeout` / `accept_timeout`, or a ZC-ACK that never came: -ETIMEDOUT.
    Timeout(&'static str),
    /// The connection was closed (by us, by the peer, or by a reset) before the message completed:
    /// -EIO for LNet.
    ConnClosed,
    /// The peer closed the stream in the middle of a message: -EPROTO.
    UnexpectedEof,
    /// No connection to the peer exists or can be made: -EHOSTUNREACH.
    HostUnreachable,
    /// The peer's hello named another NID/PID than the one we dialled.
    WrongPeer { expected: ProcessId, got: ProcessId },
    /// Refused by the accept policy (insecure port, no matching NI, too many pending).
    Refused(&'static str),
    /// The runtime reported an I/O error (connect refused, reset, …).
    Io(i32),
    /// The engine is shutting down.
    Shutdown,
    /// A local resource limit was hit.
    NoMemory,
}

impl Error {
    /// The Linux errno LNet would see.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Protocol(_) | Error::UnexpectedEof | Error::WrongPeer { .. } => 71, // EPROTO
            Error::Checksum { .. } | Error::ConnClosed | Error::Shutdown => 5,         // EIO
            Error::Timeout(_) => 110,                                                  // ETIMEDOUT
            Error::HostUnreachable => 113, // EHOSTUNREACH
            Error::Refused(_) => 1,        // EPERM
            Error::Io(e) => *e,
            Error::NoMemory => 12, // ENOMEM
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
            Error::Checksum { wire, computed } => {
                write!(
                    f,
                    "checksum error: wire 0x{wire:08x}, data 0x{computed:08x}"
                )
            }
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::ConnClosed => write!(f, "connection closed"),
            Error::UnexpectedEof => {
                write!(f, "peer closed the connection in the middle of a message")
            }
            Error::HostUnreachable => write!(f, "no connection to the peer"),
            Error::WrongPeer { expected, got } => write!(
                f,
                "connected to {expected} but it claimed to be {got}; check the Lustre configuration"
            ),
            Error::Refused(why) => write!(f, "refused: {why}"),
            Error::Io(e) => write!(f, "I/O error (errno {e})"),
            Error::Shutdown => write!(f, "shutting down"),
            Error::NoMemory => write!(f, "out of memory"),
        }
    }
}

/// What the upper layer (LNet, or our minimal LNet layer) is told. Every [`Event::Rx`] is answered
/// with one `recv`, every `recv` gets one [`Event::RxDone`], every `send` one [`Event::TxDone`].
#[derive(Debug)]
pub enum Event<P, S> {
    /// A message header arrived from `peer` on `conn`. The connection's receive side waits until the
    /// upper layer calls `recv` (with a sink for the payload, or none to discard it).
    Rx {
        rx: RxId,
        peer: ProcessId,
        hdr: LnetHdr,
    },
    /// The payload of `rx` is in `sink` (`Ok(bytes)`), or the message failed.
    RxDone {
        rx: RxId,
        sink: Option<S>,
        result: Result<u32, Error>,
    },
    /// A message handed to `send` is finished: sent (and, for zero-copy sends, acknowledged by the
    /// peer) or failed. Its payload comes back to the caller here.
    TxDone {
        tx: TxId,
        payload: Option<P>,
        result: Result<(), Error>,
    },
    /// A connection completed its handshake.
    ConnUp {
        conn: ConnId,
        peer: ProcessId,
        ctype: ConnType,
        version: ProtoVersion,
        addrs: ConnAddrs,
    },
    /// A connection closed.
    ConnDown {
        conn: ConnId,
        peer: Option<ProcessId>,
        reason: Error,
    },
    /// No connection to `nid` remains and none is being made: LNet's "peer may be dead".
    PeerDown { peer: ProcessId },
    /// A handshake learned the peer's protocol version and will retry with it at once.
    VersionFallback {
        peer: ProcessId,
        from: ProtoVersion,
        to: ProtoVersion,
    },
}

/// What the engine asks of its runtime. The runtime performs it and reports back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to `peer_ip:port` from a privileged local port (1023 down to 512),
    /// then call `connected` (or `connect_failed`).
    Connect {
        conn: ConnId,
        peer: ProcessId,
        peer_ip: u32,
        port: u16,
    },
    /// `conn` has bytes to send: ask `tx_slices`.
    Send { conn: ConnId },
    /// `conn` can receive again (the upper layer answered `Rx`): feed what was held back, and
    /// read on.
    Receive { conn: ConnId },
    /// The handshake is done: apply socket options (nodelay unless `nagle`, buffer sizes, TCP
    /// keepalive) and read/write freely.
    Configure { conn: ConnId },
    /// Close the socket. With `flush`, finish writing what `tx_slices` still offers first (a
    /// NONE hello that tells the peer to retry). When no I/O is in flight any more, call `release`.
    Close { conn: ConnId, flush: bool },
}

/// A peer's identity and state, for listings (`peer_list`, `IOC_LIBCFS_GET_PEER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: ProcessId,
    pub ip: u32,
    pub port: u16,
    pub conn_count: u32,
    pub share_count: u32,
    pub version: Option<ProtoVersion>,
}

/// A connection's identity and state, for listings (`conn_list`, `IOC_LIBCFS_GET_CONN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub conn: ConnId,
    pub peer: ProcessId,
    pub ctype: ConnType,
    pub version: ProtoVersion,
    pub addrs: ConnAddrs,
    pub active: bool,
    pub tx_queued_bytes: u64,
    pub zc_capable: bool,
}

/// The local network interface the engine serves (one LNet NI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalNi {
    pub nid: Nid,
    pub pid: u32,
    /// Identifies this instance; a peer that sees it change treats us as rebooted.
    pub incarnation: u64,
}
