//! A peer (one remote LNet process): where to connect to it, which connections it has, what was
//! learned about it (protocol, incarnation), its zero-copy sends awaiting ACKs and the messages
//! waiting for a connection.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::tx::Tx;
use super::types::{ConnId, Time};
use crate::wire::{ProcessId, ProtoVersion};

/// An address we connect to (ksocklnd's "route" / "conn_cb").
pub struct Route {
    pub ip: u32,
    pub port: u16,
    /// The active connection attempt in progress, if any (one at a time).
    pub connecting: Option<ConnId>,
    /// Current backoff after failures (0 = retry at once).
    pub retry_ms: u64,
    pub next_try: Time,
    /// Times this route was added (`add_peer` of an existing route).
    pub share_count: u32,
    /// Created by an explicit connect: keep every wanted connection up.
    pub persistent: bool,
}

/// A zero-copy send fully written and waiting for its ZC-ACK.
pub struct ZcWait<P> {
    pub cookie: u64,
    pub tx: Box<Tx<P>>,
    pub deadline: Time,
    pub conn: ConnId,
}

/// A message waiting for a suitable connection.
pub struct Parked<P> {
    pub tx: Box<Tx<P>>,
    pub deadline: Time,
    /// For a parked ZC-ACK: the connection its request arrived on. The sender fails its
    /// zero-copy sends when that connection closes (spec §4.3), so an ACK that has not left by
    /// then would only be an unknown cookie to it (-EPROTO, closing every connection).
    pub origin: Option<ConnId>,
}

/// How many cookies of zero-copy sends failed by a connection close a peer remembers.
pub const ABORTED_COOKIES_KEPT: usize = 64;

pub struct Peer<P> {
    pub id: ProcessId,
    pub routes: Vec<Route>,
    /// Established connections.
    pub conns: Vec<ConnId>,
    /// Protocol and incarnation of the current session (from its first connection); forgotten
    /// when the last connection closes.
    pub session: Option<(ProtoVersion, u64)>,
    /// A version learned from a fallback reply, to offer on the next attempt.
    pub learned: Option<ProtoVersion>,
    pub zc_next: u64,
    pub zc_wait: Vec<ZcWait<P>>,
    pub parked: VecDeque<Parked<P>>,
    /// Cookies of our zero-copy sends that were failed because their connection closed, most
    /// recent last (at most `ABORTED_COOKIES_KEPT`). The receiver may have queued their ACKs on
    /// another connection just before (V3 sends ACKs on the ACK connection); such an ACK is
    /// stale, not unknown, and must not close the peer's connections.
    pub aborted_cookies: VecDeque<u64>,
    /// When the current session started; the connections carry later news (`Conn::last_news`).
    pub last_alive: Time,
    pub last_keepalive: Time,
}

impl<P> Peer<P> {
    pub fn new(id: ProcessId, now: Time) -> Peer<P> {
        Peer {
            id,
            routes: Vec::new(),
            conns: Vec::new(),
            session: None,
            learned: None,
            zc_next: super::zc::FIRST_COOKIE,
            zc_wait: Vec::new(),
            parked: VecDeque::new(),
            aborted_cookies: VecDeque::new(),
            last_alive: now,
            last_keepalive: Time(0),
        }
    }

    pub fn connecting(&self) -> bool {
        self.routes.iter().any(|r| r.connecting.is_some())
    }

    /// Nothing left that needs this record.
    pub fn is_idle(&self) -> bool {
        self.routes.is_empty()
            && self.conns.is_empty()
            && self.zc_wait.is_empty()
            && self.parked.is_empty()
    }
}
