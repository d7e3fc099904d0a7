//! One TCP connection as the engine sees it: its handshake, its protocol table, its receive
//! machine and transmit queue, and the times the reaper checks.

use super::handshake::HsReader;
use super::payload::{RxSink, TxPayload};
use super::proto::{protocol, Protocol};
use super::rx::Rx;
use super::tx::TxQueue;
use super::types::{ConnAddrs, ConnId, Error, Time};
use crate::wire::{ConnType, Endian, LnetHdr, ProcessId, ProtoVersion};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Active: waiting for the runtime's TCP connect.
    Connecting,
    /// Exchanging the acceptor request and hellos.
    Handshake,
    Established,
    /// Closed by the engine; waiting for the runtime's `release`.
    Closing {
        flush: bool,
    },
}

pub struct Conn<P, S> {
    pub id: ConnId,
    pub active: bool,
    pub addrs: ConnAddrs,
    pub state: ConnState,
    pub hs: HsReader,
    pub proto: &'static Protocol,
    /// Byte order of the peer's sender-order structures (from its hello).
    pub rx_endian: Endian,
    /// The peer: known from the start for active connections, from the hello for passive ones.
    pub peer: Option<ProcessId>,
    /// Index of the route an active connection was made for.
    pub route_ip: u32,
    /// My type for this connection.
    pub ctype: ConnType,
    /// A peer on an unprivileged port (spec §2.7): its headers' source is overwritten.
    pub userspace: bool,
    pub rx: Rx<S>,
    pub tx: TxQueue<P>,
    /// The LNet header of the message waiting for the upper layer, and its sequence number.
    pub rx_pending: Option<(u64, LnetHdr)>,
    pub rx_seq: u64,
    pub deadline: Time,
    pub last_rx: Time,
    /// Last "aliveness news" on this connection: bytes received or sent bytes confirmed.
    pub last_news: Time,
    /// When the transmit queue last made progress (or became non-empty).
    pub tx_progress: Time,
    pub zc_capable: bool,
    pub close_reason: Option<Error>,
    /// Counted in `Engine::pending_accepts` until the handshake ends.
    pub pending_accept: bool,
    /// The handshake ended in a positive result (fallback, race, reboot): a retry follows.
    pub retry_positive: bool,
}

impl<P: TxPayload, S: RxSink> Conn<P, S> {
    pub fn new(id: ConnId, active: bool, version: ProtoVersion, now: Time) -> Conn<P, S> {
        let proto = protocol(version);
        Conn {
            id,
            active,
            addrs: ConnAddrs::default(),
            state: if active {
                ConnState::Connecting
            } else {
                ConnState::Handshake
            },
            hs: if active {
                HsReader::active()
            } else {
                HsReader::passive()
            },
            proto,
            rx_endian: Endian::Little,
            peer: None,
            route_ip: 0,
            ctype: ConnType::None,
            userspace: false,
            rx: Rx::new(proto),
            tx: TxQueue::default(),
            rx_pending: None,
            rx_seq: 0,
            deadline: now,
            last_rx: now,
            last_news: now,
            tx_progress: now,
            zc_capable: false,
            close_reason: None,
            pending_accept: false,
            retry_positive: false,
        }
    }

    pub fn is_established(&self) -> bool {
        self.state == ConnState::Established
    }
    pub fn is_closing(&self) -> bool {
        matches!(self.state, ConnState::Closing { .. })
    }
}
