//! The engine: one LNet NI's socklnd, sans-IO. It owns peers and connections and is driven by
//! its runtime (bytes in, bytes out, connects, closes, time) and by its upper layer (send, recv).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::conn::{Conn, ConnState};
use super::handshake::HsItem;
use super::payload::{RxSink, TxPayload};
use super::peer::{Parked, Peer, Route, ZcWait, ABORTED_COOKIES_KEPT};
use super::proto::{protocol, Match, MsgShape, Protocol, ZcAckStyle};
use super::rx::{RxItem, SLOP_CHUNK};
use super::stats::Stats;
use super::table::Table;
use super::tunables::{AcceptPolicy, Tunables};
use super::tx::{Framing, Tx, TxKind, TxPool};
use super::types::{
    Action, ConnAddrs, ConnId, ConnInfo, Error, Event, LocalNi, PeerInfo, RxId, Time, TxId,
};
use super::zc;
use crate::wire::ksock::{KEEPALIVE_PING_COOKIE, KSOCK_HDR_SIZE};
use crate::wire::lnet::LNET_HDR_SIZE;
use crate::wire::nid::{lnd, LNET_PID_USERFLAG};
use crate::wire::{
    ConnReq, ConnType, Endian, FirstWord, Hello, IpList, LnetHdr, Nid, ProcessId, ProtoVersion,
    WireError,
};

/// Highest source port that counts as privileged.
const MAX_RESERVED_PORT: u16 = 1023;
/// Least time between two keepalives to one peer (ms).
const KEEPALIVE_MIN_INTERVAL_MS: u64 = 10_000;
/// The reaper's period (ms).
const REAPER_TICK_MS: u64 = 1000;
/// Most bytes offered by one `tx_slices` call.
const TX_SLICE_BUDGET: usize = 4 << 20;

/// How a handshake ended, as ksocklnd's positive/negative results (spec §3.9).
enum HsOutcome {
    Ok,
    /// Lost race or duplicate: passive sends a NONE hello; active retries after `min_reconnectms`.
    Already,
    /// The peer answered in another version: retry at once in that version.
    NewVersion(ProtoVersion),
    /// The peer rebooted (incarnation or protocol changed): everything closed, retry at once.
    Stale,
    Fatal(Error),
}

/// The socklnd engine of one NI. `P` is the upper layer's send payload, `S` its receive sink.
pub struct Engine<P: TxPayload, S: RxSink> {
    ni: LocalNi,
    cfg: Tunables,
    /// The runtime writes payloads straight from the callers' buffers, so large sends may ask
    /// for ZC-ACKs and hold their buffers until acknowledged.
    zc_capable: bool,
    conns: Table<Conn<P, S>>,
    peers: BTreeMap<ProcessId, Peer<P>>,
    next_tx: u64,
    actions: VecDeque<Action>,
    events: VecDeque<Event<P, S>>,
    scratch: Box<[u8; SLOP_CHUNK]>,
    pending_accepts: u32,
    next_tick: Time,
    shutting_down: bool,
    corrupt_next_csum: bool,
    /// Spare transmission boxes (one allocation and free per message less).
    tx_pool: TxPool<P>,
    /// Zero-copy sends an ACK completed, finalized once the peer is no longer borrowed; kept
    /// empty between calls so its buffer is reused (no allocation per ACK).
    acked: Vec<Box<Tx<P>>>,
    pub stats: Stats,
}

impl<P: TxPayload, S: RxSink> Engine<P, S> {
    /// A new engine for `ni`. `zc_capable`: whether the runtime's sends are zero-copy.
    pub fn new(ni: LocalNi, cfg: Tunables, zc_capable: bool) -> Engine<P, S> {
        let corrupt = cfg.inject_csum_error;
        Engine {
            ni,
            cfg,
            zc_capable,
            conns: Table::default(),
            peers: BTreeMap::new(),
            next_tx: 1,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Box::new([0; SLOP_CHUNK]),
            pending_accepts: 0,
            next_tick: Time(0),
            shutting_down: false,
            corrupt_next_csum: corrupt,
            tx_pool: TxPool::default(),
            acked: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn ni(&self) -> LocalNi {
        self.ni
    }

    /// Bytes of the engine's own fixed structures per connection: its slot in the connection
    /// table with the connection inline (handshake reader, receive state with both header
    /// buffers, transmit queue head). Queued messages, peers and routes come on top.
    pub fn conn_footprint() -> usize {
        Table::<Conn<P, S>>::slot_size()
    }

    /// Bytes of one queued transmission (boxed, one allocation per message): framing packed in
    /// place, the payload handle, cookies.
    pub fn tx_footprint() -> usize {
        core::mem::size_of::<Tx<P>>()
    }

    /// Bytes of one peer record (routes, connection list, ZC waits and parked messages are
    /// separate allocations).
    pub fn peer_footprint() -> usize {
        core::mem::size_of::<Peer<P>>()
    }
    pub fn tunables(&self) -> &Tunables {
        &self.cfg
    }
    /// Changes tunables at run time (those Linux marks rw take effect for new decisions).
    pub fn set_tunables(&mut self, cfg: Tunables) {
        self.corrupt_next_csum |= cfg.inject_csum_error;
        self.cfg = cfg;
    }

    // ------------------------------------------------------------------------------------------
    // Outputs

    /// The next thing the runtime must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing the upper layer must hear.
    pub fn poll_event(&mut self) -> Option<Event<P, S>> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.conns.is_empty() && self.peers.is_empty() {
            None
        } else {
            Some(self.next_tick)
        }
    }

    // ------------------------------------------------------------------------------------------
    // Upper interface

    /// Sends an LNet message to `target` (the next hop: the destination, or a router). The result
    /// always comes as one [`Event::TxDone`], even when the send fails at once.
    pub fn send(&mut self, now: Time, target: ProcessId, hdr: LnetHdr, payload: Option<P>) -> TxId {
        let id = TxId(self.next_tx);
        self.next_tx = self.next_tx.wrapping_add(1);
        self.stats.tx_msgs_started = self.stats.tx_msgs_started.wrapping_add(1);
        let tx = Tx::boxed_lnet(&mut self.tx_pool, id, hdr, payload);
        if self.shutting_down {
            self.finalize_tx(tx, Err(Error::Shutdown));
            return id;
        }
        // The common case, one lookup: a known peer with a suitable connection.
        if let Some(peer) = self.peers.get(&target) {
            let shape = Self::shape_of(&tx, protocol(ProtoVersion::V3));
            if let Some(cid) = self.find_conn(peer, shape) {
                self.queue_on_conn(cid, tx);
                return id;
            }
        } else {
            if target.is_userspace() || target.nid.lnd() != lnd::SOCKLND {
                // Never connect towards a userspace process (spec §2.7) or a non-TCP NID.
                self.finalize_tx(tx, Err(Error::HostUnreachable));
                return id;
            }
            let port = self.cfg.accept_port;
            let peer = self.peer_entry(target, now);
            peer.routes
                .push(new_route(target.nid.addr(), port, false, now));
        }
        self.launch_packet(target, tx, now);
        id
    }

    /// Answers [`Event::Rx`]: receive up to `mlen` payload bytes into `sink` (the rest is
    /// discarded), or discard it all with `sink` = `None`. One [`Event::RxDone`] follows.
    pub fn recv(&mut self, now: Time, rx: RxId, sink: Option<S>, mlen: u32) {
        let Some(conn) = self.conns.get_mut(&rx.conn) else {
            self.rx_done(rx, sink, Err(Error::ConnClosed));
            return;
        };
        let rlen = match &conn.rx_pending {
            Some((seq, hdr)) if *seq == rx.seq && conn.is_established() => hdr.payload_length,
            _ => {
                self.rx_done(rx, sink, Err(Error::ConnClosed));
                return;
            }
        };
        let item = conn.rx.start_payload(sink, mlen, rlen, conn.proto);
        if item.is_none() {
            self.actions.push_back(Action::Receive { conn: rx.conn });
        }
        if let Some(item) = item {
            self.handle_rx_item(rx.conn, item, now);
            self.actions.push_back(Action::Receive { conn: rx.conn });
        }
    }

    /// Answers [`Event::Rx`] with "garbage" (what a negative `lnet_parse` return means): the
    /// message fails and its connection closes with a protocol error.
    pub fn reject(&mut self, now: Time, rx: RxId, why: &'static str) {
        let live = self
            .conns
            .get(&rx.conn)
            .is_some_and(|c| c.rx_pending.is_some_and(|(s, _)| s == rx.seq));
        if live {
            if let Some(c) = self.conns.get_mut(&rx.conn) {
                c.rx_pending = None;
            }
            self.close_conn(rx.conn, Error::Protocol(why), false, now);
        }
        self.rx_done(rx, None, Err(Error::Protocol(why)));
    }

    // ------------------------------------------------------------------------------------------
    // Control interface (ptlctl / lctl)

    /// `add_peer`: remember where `id` can be reached; connections are made when needed.
    pub fn add_peer(&mut self, now: Time, id: ProcessId, ip: u32, port: u16) {
        self.add_route(now, id, ip, port, false);
    }

    /// `NAL_CMD_CONNECT_PEER`: add the route and bring up every wanted connection now.
    pub fn connect_peer(&mut self, now: Time, id: ProcessId, ip: u32, port: u16) {
        self.add_route(now, id, ip, port, true);
        self.launch_connections(id, now);
    }

    fn add_route(&mut self, now: Time, id: ProcessId, ip: u32, port: u16, persistent: bool) {
        let peer = self.peer_entry(id, now);
        if let Some(r) = peer
            .routes
            .iter_mut()
            .find(|r| r.ip == ip && r.port == port)
        {
            r.share_count = r.share_count.saturating_add(1);
            r.persistent |= persistent;
            r.retry_ms = 0;
            r.next_try = now;
        } else {
            peer.routes.push(new_route(ip, port, persistent, now));
        }
    }

    /// `del_peer`: forget routes and close connections of matching peers (`None` = any).
    pub fn del_peer(&mut self, now: Time, nid: Option<Nid>, ip: Option<u32>) -> usize {
        let ids: Vec<ProcessId> = self
            .peers
            .keys()
            .copied()
            .filter(|p| nid.is_none_or(|n| n == p.nid))
            .collect();
        let mut n = 0usize;
        for id in ids {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.routes.retain(|r| ip.is_some_and(|ip| ip != r.ip));
            }
            n = n.saturating_add(self.close_matching(now, Some(id.nid), ip, Error::ConnClosed));
            self.fail_parked(id, Error::HostUnreachable);
            self.gc_peer(id);
        }
        n
    }

    /// `disconnect` / `CLOSE_CONNECTION`: close connections to matching peers and IPs.
    pub fn close_conns(&mut self, now: Time, nid: Option<Nid>, ip: Option<u32>) -> usize {
        self.close_matching(now, nid, ip, Error::ConnClosed)
    }

    fn close_matching(
        &mut self,
        now: Time,
        nid: Option<Nid>,
        ip: Option<u32>,
        why: Error,
    ) -> usize {
        let ids: Vec<ConnId> = self
            .conns
            .values()
            .filter(|c| !c.is_closing())
            .filter(|c| nid.is_none_or(|n| c.peer.is_some_and(|p| p.nid == n)))
            .filter(|c| ip.is_none_or(|ip| c.addrs.peer_ip == ip))
            .map(|c| c.id)
            .collect();
        for id in &ids {
            self.close_conn(*id, why, false, now);
        }
        ids.len()
    }

    /// Peers, for `peer_list`.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut v = Vec::new();
        for p in self.peers.values() {
            let conn_count = u32::try_from(p.conns.len()).unwrap_or(u32::MAX);
            let version = p.session.map(|s| s.0);
            if p.routes.is_empty() {
                let ip = p
                    .conns
                    .first()
                    .and_then(|c| self.conns.get(c))
                    .map(|c| c.addrs.peer_ip);
                v.push(PeerInfo {
                    id: p.id,
                    ip: ip.unwrap_or(0),
                    port: 0,
                    conn_count,
                    share_count: 0,
                    version,
                });
            }
            for r in &p.routes {
                v.push(PeerInfo {
                    id: p.id,
                    ip: r.ip,
                    port: r.port,
                    conn_count,
                    share_count: r.share_count,
                    version,
                });
            }
        }
        v
    }

    /// Established connections, for `conn_list`.
    pub fn conns(&self) -> Vec<ConnInfo> {
        self.conns
            .values()
            .filter(|c| c.is_established())
            .filter_map(|c| {
                Some(ConnInfo {
                    conn: c.id,
                    peer: c.peer?,
                    ctype: c.ctype,
                    version: c.proto.version,
                    addrs: c.addrs,
                    active: c.active,
                    tx_queued_bytes: c.tx.queued_bytes,
                    zc_capable: c.zc_capable,
                })
            })
            .collect()
    }

    /// Closes everything: every connection, every queued or waiting message fails with
    /// `Shutdown` (the rest are finalized when the runtime releases their connections).
    pub fn shutdown(&mut self, now: Time) {
        self.shutting_down = true;
        let ids: Vec<ConnId> = self.conns.keys().collect();
        for id in ids {
            self.close_conn(id, Error::Shutdown, false, now);
        }
        let peers: Vec<ProcessId> = self.peers.keys().copied().collect();
        for id in peers {
            self.fail_parked(id, Error::Shutdown);
            if let Some(p) = self.peers.get_mut(&id) {
                p.routes.clear();
            }
            self.gc_peer(id);
        }
    }

    /// True when nothing is left: no connection, no peer, no message in the engine.
    pub fn is_idle(&self) -> bool {
        self.conns.is_empty() && self.peers.is_empty()
    }

    // ------------------------------------------------------------------------------------------
    // Runtime interface: connections

    /// An incoming TCP connection. `Err`: refused before any byte is read (the runtime closes it).
    pub fn accepted(&mut self, now: Time, addrs: ConnAddrs) -> Result<ConnId, Error> {
        if self.shutting_down {
            return Err(Error::Shutdown);
        }
        match self.cfg.accept {
            AcceptPolicy::None => return Err(Error::Refused("accept=none")),
            AcceptPolicy::Secure if addrs.peer_port > MAX_RESERVED_PORT => {
                self.stats.refused_insecure = self.stats.refused_insecure.wrapping_add(1);
                return Err(Error::Refused("insecure source port"));
            }
            _ => {}
        }
        if self.pending_accepts >= self.cfg.max_pending_accepts {
            return Err(Error::Refused("too many pending handshakes"));
        }
        let id = self.new_conn_id();
        let mut conn = Conn::new(id, false, self.cfg.protocol, now);
        conn.addrs = addrs;
        conn.deadline = now.plus_secs(self.cfg.accept_timeout);
        conn.userspace = addrs.peer_port > MAX_RESERVED_PORT;
        conn.pending_accept = true;
        self.pending_accepts = self.pending_accepts.saturating_add(1);
        self.conns.insert(id, conn);
        self.stats.conns_open = self.stats.conns_open.wrapping_add(1);
        self.arm_tick(now);
        Ok(id)
    }

    /// The TCP connect asked by [`Action::Connect`] succeeded.
    pub fn connected(&mut self, now: Time, conn: ConnId, addrs: ConnAddrs) {
        let ni = self.ni;
        let sock_timeout = self.cfg.sock_timeout;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != ConnState::Connecting {
            return;
        }
        let Some(peer) = c.peer else { return };
        c.addrs = addrs;
        c.state = ConnState::Handshake;
        c.deadline = now.plus_secs(sock_timeout);
        let hello = Hello {
            version: c.proto.version,
            src_nid: ni.nid,
            dst_nid: peer.nid,
            src_pid: ni.pid,
            dst_pid: 0,
            src_incarnation: ni.incarnation,
            dst_incarnation: 0,
            ctype: c.ctype,
            ips: IpList::EMPTY,
        };
        let mut bytes = Vec::with_capacity(16 + 72);
        bytes.extend_from_slice(&ConnReq::new(peer.nid).to_bytes(Endian::WIRE_DEFAULT));
        push_hello(&mut bytes, &hello);
        let proto = c.proto;
        let was_empty = c.tx.is_empty();
        c.tx.push_back(Box::new(Tx::new_raw(bytes)), proto);
        if was_empty {
            self.actions.push_back(Action::Send { conn });
        }
    }

    /// The TCP connect failed (`errno` as the runtime saw it).
    pub fn connect_failed(&mut self, now: Time, conn: ConnId, errno: i32) {
        self.close_conn(conn, Error::Io(errno), false, now);
    }

    /// The peer closed its side (EOF).
    pub fn eof(&mut self, now: Time, conn: ConnId) {
        let mid = self.conns.get(&conn).is_some_and(|c| match c.state {
            ConnState::Established => c.rx.mid_message || c.rx.waiting_for_upper(),
            _ => true,
        });
        self.close_conn(
            conn,
            if mid {
                Error::UnexpectedEof
            } else {
                Error::ConnClosed
            },
            false,
            now,
        );
    }

    /// The socket failed (reset, …).
    pub fn io_error(&mut self, now: Time, conn: ConnId, errno: i32) {
        self.close_conn(conn, Error::Io(errno), false, now);
    }

    /// After [`Action::Close`]: the socket is closed and no I/O is in flight. Every message still
    /// on the connection is finalized with an error; the connection is forgotten.
    pub fn release(&mut self, now: Time, conn: ConnId) {
        if !self.conns.get(&conn).is_some_and(|c| c.is_closing()) {
            self.close_conn(conn, Error::ConnClosed, false, now);
        }
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        self.stats.conns_open = self.stats.conns_open.wrapping_sub(1);
        let why = c.close_reason.unwrap_or(Error::ConnClosed);
        let fail = match why {
            Error::Shutdown => Error::Shutdown,
            _ => Error::ConnClosed,
        };
        while let Some(tx) = c.tx.q.pop_front() {
            self.finalize_tx(tx, Err(fail));
        }
        // A payload being received (into a sink, or discarded: no sink) was answered by the
        // upper layer and gets its RxDone here.
        if let Some(sink) = c.rx.take_payload() {
            if let Some((seq, _)) = c.rx_pending {
                self.rx_done(RxId { conn, seq }, sink, Err(why));
            }
        }
        if let Some(p) = c.peer {
            self.gc_peer(p);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Runtime interface: bytes

    /// Where the runtime should read the next bytes of `conn` into (read at most this many).
    /// Empty while the connection waits for the upper layer or is not receiving.
    pub fn rx_buffer(&mut self, conn: ConnId) -> &mut [u8] {
        let Some(c) = self.conns.get_mut(&conn) else {
            return &mut [];
        };
        match c.state {
            ConnState::Handshake => c.hs.buffer(),
            ConnState::Established => c.rx.buffer(&mut self.scratch),
            _ => &mut [],
        }
    }

    /// `n` bytes were read into [`Engine::rx_buffer`].
    pub fn rx_commit(&mut self, now: Time, conn: ConnId, n: usize) {
        if n == 0 {
            return;
        }
        self.stats.rx_bytes = self.stats.rx_bytes.wrapping_add(n as u64);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_rx = now;
        c.last_news = now;
        match c.state {
            ConnState::Handshake => {
                if let Some(item) = c.hs.commit(n) {
                    self.handle_hs_item(conn, item, now);
                }
            }
            ConnState::Established => {
                let (proto, endian) = (c.proto, c.rx_endian);
                if let super::rx::RxState::Payload {
                    sink: Some(_),
                    mlen,
                    got,
                    ..
                } = c.rx.state
                {
                    let into_sink = (mlen.saturating_sub(got) as usize).min(n);
                    self.stats.rx_payload_bytes =
                        self.stats.rx_payload_bytes.wrapping_add(into_sink as u64);
                }
                let mut item = c.rx.commit(n, proto, endian, &self.scratch);
                // One read may complete several headers (NOOPs and what follows them).
                while let Some(it) = item {
                    // Only a NOOP leaves header bytes behind it to parse.
                    let more = matches!(it, super::rx::RxItem::Noop(_));
                    self.handle_rx_item(conn, it, now);
                    if !more {
                        break;
                    }
                    item = match self.conns.get_mut(&conn) {
                        Some(c) if c.is_established() => c.rx.parse_headers(c.proto, c.rx_endian),
                        _ => None,
                    };
                }
            }
            _ => {}
        }
    }

    /// Feeds received bytes by copying them through [`Engine::rx_buffer`]. Returns how many were
    /// consumed: fewer than given when the connection waits for the upper layer (feed the rest
    /// after `recv`) or closed.
    pub fn handle_rx(&mut self, now: Time, conn: ConnId, mut data: &[u8]) -> usize {
        let mut used = 0usize;
        while !data.is_empty() {
            let dst = self.rx_buffer(conn);
            let k = dst.len().min(data.len());
            if k == 0 {
                break;
            }
            let (head, rest) = data.split_at(k);
            if let Some(d) = dst.get_mut(..k) {
                d.copy_from_slice(head);
            }
            if self
                .conns
                .get(&conn)
                .is_some_and(|c| matches!(c.rx.state, super::rx::RxState::Payload { .. }))
            {
                self.stats.rx_payload_copied = self.stats.rx_payload_copied.wrapping_add(k as u64);
            }
            self.rx_commit(now, conn, k);
            data = rest;
            used = used.saturating_add(k);
        }
        used
    }

    /// Lends the runtime up to `out.len()` slices of bytes to write on `conn`, from the first
    /// unwritten byte on. They stay valid, unchanged and at the same addresses until
    /// `tx_commit` covers them or the connection is released — even while further messages are
    /// queued — so an asynchronous send may reference them (framing is boxed per message,
    /// payloads are the callers' buffers). After `Action::Close { flush: false }` nothing more is
    /// offered; a write that completes anyway may still be committed.
    pub fn tx_slices<'a>(&'a mut self, conn: ConnId, out: &mut [&'a [u8]]) -> usize {
        let zc_min = self.cfg.effective_zc_min_payload() as usize;
        let csum = self.cfg.enable_csum;
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        let sending = matches!(
            c.state,
            ConnState::Handshake | ConnState::Established | ConnState::Closing { flush: true }
        );
        if !sending {
            return 0;
        }
        if c.tx.is_empty() {
            return 0;
        }
        let proto = c.proto;
        let zc_ok = c.zc_capable && proto.zc_ack != ZcAckStyle::None;
        // The peer (its cookie counter) is looked up only when a zero-copy send is about to
        // start, once.
        let peer_id = c.peer;
        let mut peers = Some(&mut self.peers);
        let mut counter: Option<&mut u64> = None;
        let stats = &mut self.stats;
        let how = Framing {
            proto,
            endian: Endian::WIRE_DEFAULT,
            csum,
            corrupt: &mut self.corrupt_next_csum,
        };
        c.tx.slices(
            how,
            TX_SLICE_BUDGET,
            |tx| {
                if zc_ok && tx.is_lnet() && tx.payload_len() >= zc_min {
                    if counter.is_none() {
                        counter = peer_id
                            .zip(peers.take())
                            .and_then(|(p, all)| all.get_mut(&p))
                            .map(|p| &mut p.zc_next);
                    }
                    if let Some(ctr) = counter.as_deref_mut() {
                        tx.ksock.zc_cookies[0] = zc::next_cookie(ctr);
                        stats.zc_requests = stats.zc_requests.wrapping_add(1);
                    }
                }
            },
            out,
        )
    }

    /// `n` bytes of what [`Engine::tx_slices`] lent were written.
    pub fn tx_commit(&mut self, now: Time, conn: ConnId, n: usize) {
        if n == 0 {
            return;
        }
        self.stats.tx_bytes = self.stats.tx_bytes.wrapping_add(n as u64);
        let sock_timeout = self.cfg.sock_timeout;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let peer_id = c.peer;
        let closing = c.is_closing();
        // Completed transmissions are settled inside the commit walk (no list, no extra move):
        // the closure borrows the peer table, the event queue and the counters, which are
        // fields apart from the connection table.
        let peers = &mut self.peers;
        let events = &mut self.events;
        let stats = &mut self.stats;
        let pool = &mut self.tx_pool;
        c.tx.commit(n, &mut |tx| {
            let cookie = tx.ksock.zc_cookies[0];
            if !tx.is_lnet() {
                pool.recycle(tx);
                return;
            }
            let result = if cookie != 0 && !tx.acked && closing {
                // Written after its connection was closed: no ACK can be awaited any more.
                Err(Error::ConnClosed)
            } else if cookie != 0 && !tx.acked {
                match peer_id.and_then(|p| peers.get_mut(&p)) {
                    Some(p) => {
                        let deadline = now.plus_secs(sock_timeout);
                        p.zc_wait.push(ZcWait {
                            cookie,
                            tx,
                            deadline,
                            conn,
                        });
                        stats.zc_waiting = stats.zc_waiting.wrapping_add(1);
                        return;
                    }
                    None => Err(Error::ConnClosed),
                }
            } else {
                Ok(())
            };
            finalize_into(events, stats, pool, tx, result);
        });
        c.tx_progress = now;
        c.last_news = now;
        let flushed_close =
            matches!(c.state, ConnState::Closing { flush: true }) && c.tx.is_empty();
        if flushed_close {
            self.actions.push_back(Action::Close { conn, flush: false });
        }
    }

    // ------------------------------------------------------------------------------------------
    // Time

    /// Runs the reaper: handshake and socket timeouts, stale ZC requests, keepalives, reconnects.
    pub fn handle_timeout(&mut self, now: Time) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now.plus_ms(REAPER_TICK_MS);
        let sock_ms = u64::from(self.cfg.sock_timeout).saturating_mul(1000);
        let mut to_close: Vec<(ConnId, Error)> = Vec::new();
        for c in self.conns.values() {
            match c.state {
                // A TCP connect gets `sock_timeout` (the runtime aborts it on Close); a handshake
                // gets `sock_timeout` (active) or `accept_timeout` (passive).
                ConnState::Connecting if now >= c.deadline => {
                    to_close.push((c.id, Error::Timeout("connect")));
                }
                ConnState::Handshake if now >= c.deadline => {
                    to_close.push((c.id, Error::Timeout("handshake")));
                }
                ConnState::Established if sock_ms > 0 => {
                    if c.rx.mid_message
                        && !c.rx.waiting_for_upper()
                        && now.since(c.last_rx) >= sock_ms
                    {
                        to_close.push((c.id, Error::Timeout("receiving")));
                    } else if !c.tx.is_empty() && now.since(c.tx_progress) >= sock_ms {
                        to_close.push((c.id, Error::Timeout("sending")));
                    }
                }
                _ => {}
            }
        }
        for p in self.peers.values() {
            for w in &p.zc_wait {
                if now >= w.deadline && !to_close.iter().any(|(c, _)| *c == w.conn) {
                    to_close.push((w.conn, Error::Timeout("stale ZC_REQs")));
                }
            }
        }
        for (id, why) in to_close {
            self.close_conn(id, why, false, now);
        }
        let ids: Vec<ProcessId> = self.peers.keys().copied().collect();
        for id in ids {
            self.expire_parked(id, now);
            self.maybe_keepalive(id, now);
            self.retry_routes(id, now);
            self.gc_peer(id);
        }
    }

    fn arm_tick(&mut self, now: Time) {
        if self.next_tick == Time(0) || self.next_tick > now.plus_ms(REAPER_TICK_MS) {
            self.next_tick = now.plus_ms(REAPER_TICK_MS);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Internals: peers and connections

    fn new_conn_id(&mut self) -> ConnId {
        self.conns.next_id()
    }

    fn peer_entry(&mut self, id: ProcessId, now: Time) -> &mut Peer<P> {
        let stats = &mut self.stats;
        self.peers.entry(id).or_insert_with(|| {
            stats.peers = stats.peers.wrapping_add(1);
            Peer::new(id, now)
        })
    }

    fn gc_peer(&mut self, id: ProcessId) {
        if self.peers.get(&id).is_some_and(|p| p.is_idle()) {
            self.peers.remove(&id);
            self.stats.peers = self.stats.peers.wrapping_sub(1);
        }
    }

    /// The connection types this peer should have, and how many of each.
    fn wanted(&self) -> [(ConnType, u32); 3] {
        let n = self.cfg.effective_conns_per_peer();
        if self.cfg.typed_conns {
            [
                (ConnType::Control, 1),
                (ConnType::BulkIn, n),
                (ConnType::BulkOut, n),
            ]
        } else {
            [
                (ConnType::Any, 1),
                (ConnType::Control, 0),
                (ConnType::BulkIn, 0),
            ]
        }
    }

    /// Starts one connection per route that still lacks a wanted type (one attempt at a time
    /// per route, as ksocklnd's connd does).
    fn launch_connections(&mut self, id: ProcessId, now: Time) {
        if self.shutting_down {
            return;
        }
        let wanted = self.wanted();
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let version = peer
            .learned
            .or(peer.session.map(|s| s.0))
            .unwrap_or(self.cfg.protocol);
        let mut launches: Vec<(usize, ConnType)> = Vec::new();
        for (ri, r) in peer.routes.iter().enumerate() {
            if r.connecting.is_some() || now < r.next_try {
                continue;
            }
            let count = |t: ConnType| {
                peer.conns
                    .iter()
                    .filter_map(|c| self.conns.get(c))
                    .filter(|c| c.addrs.peer_ip == r.ip && c.ctype == t)
                    .count()
            };
            // ANY if wanted; else CONTROL; else BULK_IN while #BULK_IN ≤ #BULK_OUT; else BULK_OUT.
            let need = |t: ConnType, n: u32| (count(t) as u64) < u64::from(n);
            let pick = wanted
                .iter()
                .find(|(t, n)| *t == ConnType::Any && need(*t, *n))
                .map(|w| w.0)
                .or_else(|| {
                    let [(c, nc), (bi, nbi), (bo, nbo)] = wanted;
                    if need(c, nc) {
                        Some(c)
                    } else if need(bi, nbi) && count(bi) <= count(bo) {
                        Some(bi)
                    } else if need(bo, nbo) {
                        Some(bo)
                    } else if need(bi, nbi) {
                        Some(bi)
                    } else {
                        None
                    }
                });
            if let Some(t) = pick {
                launches.push((ri, t));
            }
        }
        for (ri, ctype) in launches {
            let cid = self.new_conn_id();
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            let Some(route) = peer.routes.get_mut(ri) else {
                continue;
            };
            route.connecting = Some(cid);
            let (ip, port) = (route.ip, route.port);
            let mut c = Conn::new(cid, true, version, now);
            c.peer = Some(id);
            c.route_ip = ip;
            c.ctype = ctype;
            c.zc_capable = self.zc_capable;
            c.deadline = now.plus_secs(self.cfg.sock_timeout);
            self.conns.insert(cid, c);
            self.stats.conns_open = self.stats.conns_open.wrapping_add(1);
            self.actions.push_back(Action::Connect {
                conn: cid,
                peer: id,
                peer_ip: ip,
                port,
            });
        }
        self.arm_tick(now);
    }

    /// Connects routes whose backoff has passed, when messages wait, the route is persistent,
    /// or the peer is in use (it has live connections) but lacks a wanted type: one closed by an
    /// error while a sibling lives on would otherwise stay missing, since a message that finds
    /// the sibling never parks (ksocklnd relaunches such routes on the next send).
    fn retry_routes(&mut self, id: ProcessId, now: Time) {
        let Some(p) = self.peers.get(&id) else { return };
        let want =
            !p.parked.is_empty() || !p.conns.is_empty() || p.routes.iter().any(|r| r.persistent);
        if want
            && p.routes
                .iter()
                .any(|r| r.connecting.is_none() && now >= r.next_try)
        {
            self.launch_connections(id, now);
        }
    }

    /// Picks the best established connection of `peer` for a message of `shape`.
    fn find_conn(&self, peer: &Peer<P>, shape: MsgShape) -> Option<ConnId> {
        let mut best: Option<(Match, u64, ConnId)> = None;
        for cid in &peer.conns {
            let Some(c) = self.conns.get(cid) else {
                continue;
            };
            if !c.is_established() {
                continue;
            }
            let m = (c.proto.match_conn)(c.ctype, shape, self.cfg.min_bulk);
            if m == Match::No {
                continue;
            }
            let load = c.tx.queued_bytes;
            let better = match best {
                None => true,
                Some((bm, bl, _)) => m > bm || (m == bm && load < bl),
            };
            if better {
                best = Some((m, load, c.id));
            }
        }
        best.map(|b| b.2)
    }

    fn shape_of(tx: &Tx<P>, proto: &Protocol) -> MsgShape {
        let nob = u32::try_from(tx.wire_len(proto)).unwrap_or(u32::MAX);
        MsgShape {
            nob,
            noop: tx.is_noop(),
            nonblk: false,
        }
    }

    /// Queues `tx` on a connection to `target`, or parks it while connections come up.
    fn launch_packet(&mut self, target: ProcessId, tx: Box<Tx<P>>, now: Time) {
        let Some(peer) = self.peers.get(&target) else {
            self.finalize_tx(tx, Err(Error::HostUnreachable));
            return;
        };
        // V3 framing for the shape; the matcher's thresholds barely depend on the version.
        let shape = Self::shape_of(&tx, protocol(ProtoVersion::V3));
        if let Some(cid) = self.find_conn(peer, shape) {
            self.queue_on_conn(cid, tx);
            return;
        }
        let deadline = now.plus_secs(self.cfg.sock_timeout);
        let can_connect = !peer.routes.is_empty() && !self.shutting_down;
        if peer.connecting() || can_connect {
            if let Some(p) = self.peers.get_mut(&target) {
                p.parked.push_back(Parked {
                    tx,
                    deadline,
                    origin: None,
                });
            }
            self.launch_connections(target, now);
        } else {
            self.finalize_tx(tx, Err(Error::HostUnreachable));
        }
    }

    fn queue_on_conn(&mut self, cid: ConnId, tx: Box<Tx<P>>) {
        let Some(c) = self.conns.get_mut(&cid) else {
            self.finalize_tx(tx, Err(Error::ConnClosed));
            return;
        };
        let was_empty = c.tx.is_empty();
        let proto = c.proto;
        if was_empty {
            c.tx_progress = Time(c.tx_progress.0.max(c.last_rx.0));
        }
        if tx.is_lnet() {
            c.tx.push_lnet(tx, proto);
        } else {
            c.tx.push_back(tx, proto);
        }
        if was_empty {
            self.actions.push_back(Action::Send { conn: cid });
        }
    }

    /// Moves parked messages onto connections that now suit them.
    fn unpark(&mut self, id: ProcessId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let parked: Vec<Parked<P>> = peer.parked.drain(..).collect();
        for p in parked {
            let shape = {
                let proto = protocol(ProtoVersion::V3);
                let mut s = Self::shape_of(&p.tx, proto);
                if p.tx.is_noop() {
                    s.nonblk = self.cfg.nonblk_zcack;
                }
                s
            };
            let found = self
                .peers
                .get(&id)
                .and_then(|peer| self.find_conn(peer, shape));
            match found {
                Some(cid) if p.tx.is_noop() => {
                    let cookie = p.tx.ksock.zc_cookies[1];
                    self.queue_ack_on(cid, cookie);
                }
                Some(cid) => self.queue_on_conn(cid, p.tx),
                None => {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        peer.parked.push_back(p);
                    }
                }
            }
        }
    }

    fn fail_parked(&mut self, id: ProcessId, why: Error) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let parked: Vec<Parked<P>> = peer.parked.drain(..).collect();
        for p in parked {
            self.finalize_tx(p.tx, Err(why));
        }
    }

    fn expire_parked(&mut self, id: ProcessId, now: Time) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let (late, keep): (Vec<Parked<P>>, Vec<Parked<P>>) =
            peer.parked.drain(..).partition(|p| now >= p.deadline);
        peer.parked.extend(keep);
        for p in late {
            self.finalize_tx(p.tx, Err(Error::Timeout("no connection to the peer")));
        }
    }

    fn maybe_keepalive(&mut self, id: ProcessId, now: Time) {
        let ka_ms = u64::from(self.cfg.keepalive).saturating_mul(1000);
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        // Aliveness news: bytes received or sent bytes confirmed, on any of the peer's connections.
        let news = peer
            .conns
            .iter()
            .filter_map(|c| self.conns.get(c))
            .map(|c| c.last_news)
            .fold(peer.last_alive, Time::max);
        if ka_ms == 0
            || !peer.session.is_some_and(|s| protocol(s.0).keepalive)
            || now.since(news) < ka_ms
            || now.since(peer.last_keepalive) < KEEPALIVE_MIN_INTERVAL_MS
        {
            return;
        }
        let shape = MsgShape {
            nob: KSOCK_HDR_SIZE as u32,
            noop: true,
            nonblk: true,
        };
        let Some(cid) = self.find_conn(peer, shape) else {
            return;
        };
        if self.conns.get(&cid).is_some_and(|c| !c.tx.is_empty()) {
            return;
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.last_keepalive = now;
        }
        self.stats.keepalives_sent = self.stats.keepalives_sent.wrapping_add(1);
        let ka = Tx::boxed_noop(&mut self.tx_pool, KEEPALIVE_PING_COOKIE);
        self.queue_on_conn(cid, ka);
    }

    /// Closes `conn`: the runtime is told, the peer forgets it, waiting ZC sends on it fail.
    fn close_conn(&mut self, conn: ConnId, why: Error, flush: bool, now: Time) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.is_closing() {
            return;
        }
        let was = c.state;
        c.state = ConnState::Closing { flush };
        c.close_reason = Some(why);
        let peer_id = c.peer;
        let (active, route_ip) = (c.active, c.route_ip);
        if c.pending_accept {
            c.pending_accept = false;
            self.pending_accepts = self.pending_accepts.saturating_sub(1);
        }
        let flush_now = flush && !c.tx.is_empty();
        self.actions.push_back(Action::Close {
            conn,
            flush: flush_now,
        });
        if !flush_now && flush {
            // Nothing left to flush.
        }
        self.events.push_back(Event::ConnDown {
            conn,
            peer: peer_id,
            reason: why,
        });
        let Some(pid) = peer_id else { return };
        let min_ms = u64::from(self.cfg.min_reconnectms);
        let max_ms = u64::from(self.cfg.max_reconnectms).max(min_ms);
        let mut waiting: Vec<ZcWait<P>> = Vec::new();
        let mut last_gone = false;
        if let Some(peer) = self.peers.get_mut(&pid) {
            if was == ConnState::Established {
                peer.conns.retain(|x| *x != conn);
                if peer.conns.is_empty() {
                    // Renegotiate the protocol with the next connection.
                    peer.session = None;
                    last_gone = true;
                }
            }
            if active {
                if let Some(r) = peer.routes.iter_mut().find(|r| r.connecting == Some(conn)) {
                    r.connecting = None;
                    if was != ConnState::Established {
                        // A failed attempt: back off 1, 2, 4, … up to max_reconnectms.
                        r.retry_ms = if r.retry_ms == 0 {
                            min_ms
                        } else {
                            r.retry_ms.saturating_mul(2).min(max_ms)
                        };
                        r.next_try = now.plus_ms(r.retry_ms);
                    }
                }
                let _ = route_ip;
            }
            let (dead, keep): (Vec<ZcWait<P>>, Vec<ZcWait<P>>) =
                peer.zc_wait.drain(..).partition(|w| w.conn == conn);
            peer.zc_wait = keep;
            for w in &dead {
                if peer.aborted_cookies.len() >= ABORTED_COOKIES_KEPT {
                    peer.aborted_cookies.pop_front();
                }
                peer.aborted_cookies.push_back(w.cookie);
            }
            waiting = dead;
            // ZC-ACKs still parked for requests that came on this connection: their sender has
            // just failed those sends (see `Parked::origin`).
            let before = peer.parked.len();
            peer.parked.retain(|p| p.origin != Some(conn));
            let dropped = before.saturating_sub(peer.parked.len()) as u64;
            self.stats.zc_acks_dropped = self.stats.zc_acks_dropped.wrapping_add(dropped);
        }
        for w in waiting {
            self.stats.zc_waiting = self.stats.zc_waiting.wrapping_sub(1);
            self.finalize_tx(w.tx, Err(Error::ConnClosed));
        }
        if last_gone || was != ConnState::Established {
            let peer = self.peers.get(&pid);
            let nothing_left = peer.is_some_and(|p| p.conns.is_empty() && !p.connecting());
            // A failed attempt with nothing else in progress fails what waits for the peer
            // (EHOSTUNREACH), as ksocklnd does; positive outcomes (fallback, race, reboot)
            // retry at once or soon and keep the messages.
            let positive = self.conns.get(&conn).is_some_and(|c| c.retry_positive);
            if active && nothing_left && !positive {
                self.fail_parked(pid, Error::HostUnreachable);
            }
            if nothing_left && last_gone {
                self.events.push_back(Event::PeerDown { peer: pid });
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Internals: handshake

    fn handle_hs_item(&mut self, conn: ConnId, item: HsItem, now: Time) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let active = c.active;
        match item {
            HsItem::FirstWord(FirstWord::AcceptorRequest(_)) => {}
            HsItem::FirstWord(FirstWord::ProtoQuery) => {
                self.answer_as_old_acceptor(conn, "LNet protocol query", now)
            }
            HsItem::FirstWord(FirstWord::OldSocknal) => self.close_conn(
                conn,
                Error::Refused("'old' socknal/tcpnal acceptor protocol"),
                false,
                now,
            ),
            HsItem::FirstWord(FirstWord::Garbage(_)) => self.close_conn(
                conn,
                Error::Protocol("unrecognised acceptor protocol"),
                false,
                now,
            ),
            HsItem::ConnReq(Ok((req, _))) => {
                if req.nid != self.ni.nid {
                    self.close_conn(conn, Error::Refused("no matching NI"), false, now);
                } else if let Some(c) = self.conns.get_mut(&conn) {
                    c.hs.expect_hello();
                }
            }
            HsItem::ConnReq(Err(WireError::UnknownVersion(_))) => {
                self.answer_as_old_acceptor(conn, "unknown acceptor version", now)
            }
            HsItem::ConnReq(Err(_)) => {
                self.close_conn(conn, Error::Protocol("bad acceptor request"), false, now)
            }
            HsItem::Hello(Err(WireError::UnknownVersion(_))) if !active => {
                self.refuse_version(conn, now)
            }
            HsItem::Hello(Ok((hello, _))) if !active && hello.version > self.cfg.protocol => {
                // A version newer than we speak is, to us, an unknown one.
                self.refuse_version(conn, now)
            }
            HsItem::Hello(Err(e)) => {
                let why = match e {
                    WireError::BadMagic(_) => "bad hello magic",
                    WireError::TooManyIps(_)
                    | WireError::ZeroIp
                    | WireError::BadIpListLength(_) => "bad hello IP list",
                    WireError::NidAny => "hello from LNET_NID_ANY",
                    WireError::BadConnType(_) => "bad connection type in hello",
                    WireError::UnknownVersion(_) => "unknown protocol version in reply",
                    _ => "malformed hello",
                };
                self.close_conn(conn, Error::Protocol(why), false, now);
            }
            HsItem::Hello(Ok((hello, endian))) => {
                if active {
                    self.active_hello(conn, hello, endian, now);
                } else {
                    self.passive_hello(conn, hello, endian, now);
                }
            }
        }
    }

    /// "I'm an old acceptor": answer {acceptor magic, version 1, NID 0} and close (spec §2.4).
    fn answer_as_old_acceptor(&mut self, conn: ConnId, why: &'static str, now: Time) {
        let reply = ConnReq::version_reply()
            .to_bytes(Endian::WIRE_DEFAULT)
            .to_vec();
        self.reply_and_close(conn, reply, Error::Protocol(why), now);
    }

    /// Passive-driven fallback: tell the peer our newest version with ctype NONE, and close.
    /// Quirk kept from Linux: `dst_nid` is our own NID.
    fn refuse_version(&mut self, conn: ConnId, now: Time) {
        let hello = self.my_hello(self.cfg.protocol, self.ni.nid, ConnType::None);
        let mut bytes = Vec::new();
        push_hello(&mut bytes, &hello);
        self.stats.fallback_replies = self.stats.fallback_replies.wrapping_add(1);
        self.reply_and_close(
            conn,
            bytes,
            Error::Protocol("unknown protocol version"),
            now,
        );
    }

    fn my_hello(&self, version: ProtoVersion, dst: Nid, ctype: ConnType) -> Hello {
        Hello {
            version,
            src_nid: self.ni.nid,
            dst_nid: dst,
            src_pid: self.ni.pid,
            dst_pid: 0,
            src_incarnation: self.ni.incarnation,
            dst_incarnation: 0,
            ctype,
            ips: IpList::EMPTY,
        }
    }

    fn reply_and_close(&mut self, conn: ConnId, bytes: Vec<u8>, why: Error, now: Time) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let proto = c.proto;
            c.tx.push_back(Box::new(Tx::new_raw(bytes)), proto);
        }
        self.close_conn(conn, why, true, now);
    }

    fn passive_hello(&mut self, conn: ConnId, hello: Hello, endian: Endian, now: Time) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.proto = protocol(hello.version);
        c.rx_endian = endian;
        let ctype = hello.ctype.inverse();
        if ctype == ConnType::None {
            self.close_conn(
                conn,
                Error::Protocol("unexpected connection type NONE"),
                false,
                now,
            );
            return;
        }
        let addrs = c.addrs;
        let peer_id = if c.userspace {
            // An unprivileged connector is a userspace process: its id comes from the socket.
            ProcessId::new(
                Nid::new(self.ni.nid.net(), addrs.peer_ip),
                u32::from(addrs.peer_port) | LNET_PID_USERFLAG,
            )
        } else {
            ProcessId::new(hello.src_nid, hello.src_pid)
        };
        c.peer = Some(peer_id);
        c.ctype = ctype;
        let outcome = self.passive_decision(peer_id, &hello, ctype, addrs, now);
        match outcome {
            HsOutcome::Ok => {
                let reply = self.my_hello(hello.version, peer_id.nid, ctype);
                let mut bytes = Vec::new();
                push_hello(&mut bytes, &reply);
                if let Some(c) = self.conns.get_mut(&conn) {
                    let proto = c.proto;
                    c.tx.push_back(Box::new(Tx::new_raw(bytes)), proto);
                }
                self.establish(conn, hello.version, hello.src_incarnation, now);
                self.actions.push_back(Action::Send { conn });
            }
            HsOutcome::Fatal(e) => self.close_conn(conn, e, false, now),
            HsOutcome::Already | HsOutcome::Stale | HsOutcome::NewVersion(_) => {
                let why = match outcome {
                    HsOutcome::Stale => {
                        Error::Protocol("peer rebooted or changed protocol (ESTALE)")
                    }
                    _ => Error::Protocol("connection race or duplicate (EALREADY)"),
                };
                let reply = self.my_hello(hello.version, peer_id.nid, ConnType::None);
                let mut bytes = Vec::new();
                push_hello(&mut bytes, &reply);
                self.stats.handshakes_refused = self.stats.handshakes_refused.wrapping_add(1);
                self.reply_and_close(conn, bytes, why, now);
            }
        }
    }

    fn passive_decision(
        &mut self,
        id: ProcessId,
        hello: &Hello,
        ctype: ConnType,
        addrs: ConnAddrs,
        now: Time,
    ) -> HsOutcome {
        self.peer_entry(id, now);
        if let Some(r) = self.session_check(id, hello, now) {
            return r;
        }
        let Some(peer) = self.peers.get(&id) else {
            return HsOutcome::Fatal(Error::NoMemory);
        };
        // Race: the higher NID's outgoing connections win.
        if id.nid < self.ni.nid
            && peer
                .routes
                .iter()
                .any(|r| r.connecting.is_some() && r.ip == addrs.peer_ip)
        {
            self.stats.races_lost_by_peer = self.stats.races_lost_by_peer.wrapping_add(1);
            return HsOutcome::Already;
        }
        if self.is_duplicate(peer, ctype, addrs) {
            return HsOutcome::Already;
        }
        HsOutcome::Ok
    }

    /// Incarnation or protocol change against the current session ⇒ the peer rebooted: close
    /// everything and refuse this connection once (spec §3.10).
    fn session_check(&mut self, id: ProcessId, hello: &Hello, now: Time) -> Option<HsOutcome> {
        let peer = self.peers.get(&id)?;
        let (v, inc) = peer.session?;
        if v == hello.version && inc == hello.src_incarnation {
            return None;
        }
        let conns: Vec<ConnId> = peer.conns.clone();
        for c in conns {
            self.close_conn(
                c,
                Error::Protocol("peer rebooted (incarnation changed)"),
                false,
                now,
            );
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.session = None;
            p.learned = None;
        }
        self.stats.incarnation_changes = self.stats.incarnation_changes.wrapping_add(1);
        Some(HsOutcome::Stale)
    }

    fn is_duplicate(&self, peer: &Peer<P>, ctype: ConnType, addrs: ConnAddrs) -> bool {
        if addrs.local_ip == addrs.peer_ip {
            return false; // loopback connections are exempt
        }
        let limit = match ctype {
            ConnType::BulkIn | ConnType::BulkOut => self.cfg.effective_conns_per_peer(),
            _ => 1,
        };
        let n = peer
            .conns
            .iter()
            .filter_map(|c| self.conns.get(c))
            .filter(|c| {
                c.ctype == ctype
                    && c.addrs.local_ip == addrs.local_ip
                    && c.addrs.peer_ip == addrs.peer_ip
            })
            .count();
        n as u64 >= u64::from(limit)
    }

    fn active_hello(&mut self, conn: ConnId, hello: Hello, endian: Endian, now: Time) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(dialled) = c.peer else { return };
        let sent = c.proto.version;
        let my_type = c.ctype;
        let addrs = c.addrs;
        c.rx_endian = endian;
        let got = ProcessId::new(hello.src_nid, hello.src_pid);
        let outcome = if got != dialled {
            HsOutcome::Fatal(Error::WrongPeer {
                expected: dialled,
                got,
            })
        } else if hello.ctype == ConnType::None {
            if hello.version == sent {
                HsOutcome::Already
            } else {
                HsOutcome::NewVersion(hello.version)
            }
        } else if hello.version != sent {
            HsOutcome::Fatal(Error::Protocol("reply hello in another version"))
        } else if hello.ctype.inverse() != my_type {
            HsOutcome::Fatal(Error::Protocol("mismatched connection types"))
        } else if let Some(r) = self.session_check(dialled, &hello, now) {
            r
        } else if self
            .peers
            .get(&dialled)
            .is_some_and(|p| self.is_duplicate(p, my_type, addrs))
        {
            HsOutcome::Fatal(Error::Protocol("duplicate connection"))
        } else {
            HsOutcome::Ok
        };
        match outcome {
            HsOutcome::Ok => {
                self.establish(conn, hello.version, hello.src_incarnation, now);
                self.launch_connections(dialled, now);
            }
            HsOutcome::NewVersion(v) => {
                if let Some(p) = self.peers.get_mut(&dialled) {
                    p.learned = Some(v);
                }
                self.events.push_back(Event::VersionFallback {
                    peer: dialled,
                    from: sent,
                    to: v,
                });
                self.stats.fallbacks = self.stats.fallbacks.wrapping_add(1);
                self.mark_positive(conn);
                self.close_conn(
                    conn,
                    Error::Protocol("retry with the peer's protocol version"),
                    false,
                    now,
                );
                self.retry_now(dialled, conn, now);
            }
            HsOutcome::Stale => {
                self.mark_positive(conn);
                self.close_conn(conn, Error::Protocol("peer rebooted (ESTALE)"), false, now);
                self.retry_now(dialled, conn, now);
            }
            HsOutcome::Already => {
                // Lost a race (or duplicate): retry after min_reconnectms, not counted as failure.
                self.mark_positive(conn);
                self.close_conn(
                    conn,
                    Error::Protocol("connection race (EALREADY)"),
                    false,
                    now,
                );
                let min_ms = u64::from(self.cfg.min_reconnectms);
                if let Some(p) = self.peers.get_mut(&dialled) {
                    for r in p.routes.iter_mut().filter(|r| r.ip == addrs.peer_ip) {
                        r.retry_ms = 0;
                        r.next_try = now.plus_ms(min_ms);
                    }
                }
            }
            HsOutcome::Fatal(e) => self.close_conn(conn, e, false, now),
        }
    }

    fn mark_positive(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.retry_positive = true;
        }
    }

    fn retry_now(&mut self, id: ProcessId, _old: ConnId, now: Time) {
        if let Some(p) = self.peers.get_mut(&id) {
            for r in p.routes.iter_mut() {
                r.retry_ms = 0;
                r.next_try = now;
            }
        }
        self.launch_connections(id, now);
    }

    fn establish(&mut self, conn: ConnId, version: ProtoVersion, incarnation: u64, now: Time) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.state = ConnState::Established;
        c.proto = protocol(version);
        c.rx = super::rx::Rx::new(c.proto);
        c.last_rx = now;
        c.tx_progress = now;
        if !c.active {
            c.zc_capable = self.zc_capable;
        }
        if c.pending_accept {
            c.pending_accept = false;
            self.pending_accepts = self.pending_accepts.saturating_sub(1);
        }
        let (active, peer_id, ctype, addrs) = (c.active, c.peer, c.ctype, c.addrs);
        let Some(pid) = peer_id else { return };
        let Some(peer) = self.peers.get_mut(&pid) else {
            return;
        };
        peer.conns.push(conn);
        peer.session.get_or_insert((version, incarnation));
        peer.learned = None;
        peer.last_alive = now;
        if active {
            if let Some(r) = peer.routes.iter_mut().find(|r| r.connecting == Some(conn)) {
                r.connecting = None;
                r.retry_ms = 0;
                r.next_try = now;
            }
        }
        self.stats.handshakes_ok = self.stats.handshakes_ok.wrapping_add(1);
        self.actions.push_back(Action::Configure { conn });
        self.events.push_back(Event::ConnUp {
            conn,
            peer: pid,
            ctype,
            version,
            addrs,
        });
        self.unpark(pid);
    }

    // ------------------------------------------------------------------------------------------
    // Internals: data path

    fn handle_rx_item(&mut self, conn: ConnId, item: RxItem<S>, now: Time) {
        match item {
            RxItem::Fail(e) => self.close_conn(conn, e, false, now),
            RxItem::Noop(k) => {
                self.stats.rx_noops = self.stats.rx_noops.wrapping_add(1);
                self.process_acks(conn, &k, now);
            }
            RxItem::Header(k, mut hdr) => {
                // No ACK slot filled (the common case): nothing to apply (`zc::acks_of`).
                if k.zc_cookies[1] != 0 && !self.process_acks(conn, &k, now) {
                    return;
                }
                if k.zc_cookies[0] == KEEPALIVE_PING_COOKIE {
                    // Its ACK would be a keepalive on V3 and an ACK no peer accepts on V2.
                    let why = Error::Protocol(zc::RESERVED_REQUEST);
                    self.close_conn(conn, why, false, now);
                    return;
                }
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let Some(peer) = c.peer else { return };
                if c.userspace {
                    // Spec §2.7: a userspace peer's headers carry the id its socket gave it.
                    hdr.src_nid = peer.nid;
                    hdr.src_pid = peer.pid;
                }
                let seq = c.rx_seq;
                c.rx_seq = c.rx_seq.wrapping_add(1);
                c.rx_pending = Some((seq, hdr));
                self.stats.rx_msgs_open = self.stats.rx_msgs_open.wrapping_add(1);
                self.events.push_back(Event::Rx {
                    rx: RxId { conn, seq },
                    peer,
                    hdr,
                });
            }
            RxItem::Done {
                ksock,
                sink,
                mlen,
                csum,
            } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                // Only the sequence number and the source are needed: no move of the header.
                let Some((seq, src_nid)) = c.rx_pending.as_ref().map(|(s, h)| (*s, h.src_nid))
                else {
                    return;
                };
                c.rx_pending = None;
                let peer = c.peer;
                let rx = RxId { conn, seq };
                self.stats.rx_msgs = self.stats.rx_msgs.wrapping_add(1);
                if let Err((wire, computed)) = csum {
                    let e = Error::Checksum { wire, computed };
                    self.rx_done(rx, sink, Err(e));
                    self.close_conn(conn, e, false, now);
                    return;
                }
                let cookie = ksock.zc_cookies[0];
                self.rx_done(rx, sink, Ok(mlen));
                if cookie != 0 {
                    let routed = peer.is_some_and(|p| p.nid != src_nid);
                    self.send_zc_ack(conn, cookie, routed, now);
                }
            }
        }
    }

    /// Applies the ACKs a received header carries. Returns false if the connection was closed.
    fn process_acks(&mut self, conn: ConnId, k: &crate::wire::KsockHdr, now: Time) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let acks = match zc::acks_of(k, c.proto.keepalive) {
            Ok(a) => a,
            Err(why) => {
                self.close_conn(conn, Error::Protocol(why), false, now);
                return false;
            }
        };
        let expected = acks.expected();
        if expected == 0 {
            return true;
        }
        let Some(pid) = c.peer else { return false };
        let mut matched = 0u64;
        let mut done = core::mem::take(&mut self.acked);
        let Self {
            peers,
            conns,
            stats,
            ..
        } = self;
        if let Some(peer) = peers.get_mut(&pid) {
            // In place, keeping the order of the others (no partition into new vectors).
            let mut i = 0;
            while let Some(w) = peer.zc_wait.get(i) {
                if acks.covers(w.cookie) {
                    let w = peer.zc_wait.remove(i);
                    matched = matched.saturating_add(1);
                    done.push(w.tx);
                } else {
                    i = i.saturating_add(1);
                }
            }
            // ACKs for sends already failed by a connection close (`Peer::aborted_cookies`).
            let before = peer.aborted_cookies.len();
            peer.aborted_cookies.retain(|c| !acks.covers(*c));
            let stale = before.saturating_sub(peer.aborted_cookies.len()) as u64;
            matched = matched.saturating_add(stale);
            stats.zc_acks_stale = stats.zc_acks_stale.wrapping_add(stale);
            // ACKs may overtake the runtime's write confirmation.
            for cid in &peer.conns {
                if let Some(c) = conns.get_mut(cid) {
                    for t in
                        c.tx.q
                            .iter_mut()
                            .filter(|t| t.started && !t.acked && t.is_lnet())
                    {
                        if t.ksock.zc_cookies[0] != 0 && acks.covers(t.ksock.zc_cookies[0]) {
                            t.acked = true;
                            matched = matched.saturating_add(1);
                            // Received all the same (the commit finalizes it without waiting).
                            stats.zc_acks_received = stats.zc_acks_received.wrapping_add(1);
                        }
                    }
                }
            }
        }
        for tx in done.drain(..) {
            self.stats.zc_waiting = self.stats.zc_waiting.wrapping_sub(1);
            self.stats.zc_acks_received = self.stats.zc_acks_received.wrapping_add(1);
            self.finalize_tx(tx, Ok(()));
        }
        self.acked = done;
        if matched < expected {
            // Unknown cookie: close this connection and its siblings (same peer, same IP).
            let ip = self.conns.get(&conn).map(|c| c.addrs.peer_ip);
            self.close_matching(
                now,
                Some(pid.nid),
                ip,
                Error::Protocol("unknown ZC-ACK cookie"),
            );
            return false;
        }
        true
    }

    /// Queues the ZC-ACK for `cookie` received on `conn` (spec §4.4).
    fn send_zc_ack(&mut self, conn: ConnId, cookie: u64, routed: bool, now: Time) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(pid) = c.peer else {
            return;
        };
        if c.is_closing() {
            // The request's connection is going: its sender fails the send (spec §4.3), and
            // an ACK arriving later would be an unknown cookie to it.
            self.stats.zc_acks_dropped = self.stats.zc_acks_dropped.wrapping_add(1);
            return;
        }
        let nonblk = self.cfg.nonblk_zcack || routed;
        let shape = MsgShape {
            nob: KSOCK_HDR_SIZE as u32,
            noop: true,
            nonblk,
        };
        let found = self.peers.get(&pid).and_then(|p| self.find_conn(p, shape));
        match found {
            Some(cid) => self.queue_ack_on_with(cid, cookie, nonblk),
            None => {
                // No eligible connection yet (V3: the BULK_IN one may still be coming up). Keep
                // the ACK with the peer while it has or is making connections; it goes out when a
                // suitable one is established (or expires with the peer's other parked messages).
                let alive = self
                    .peers
                    .get(&pid)
                    .is_some_and(|p| p.connecting() || !p.conns.is_empty());
                if alive {
                    let deadline = now.plus_secs(self.cfg.sock_timeout);
                    if let Some(p) = self.peers.get_mut(&pid) {
                        p.parked.push_back(Parked {
                            tx: Tx::boxed_noop(&mut self.tx_pool, cookie),
                            deadline,
                            origin: Some(conn),
                        });
                    }
                } else {
                    self.close_conn(
                        conn,
                        Error::Protocol("no connection to carry a ZC-ACK"),
                        false,
                        now,
                    );
                }
            }
        }
    }

    fn queue_ack_on(&mut self, cid: ConnId, cookie: u64) {
        let nonblk = self.cfg.nonblk_zcack;
        self.queue_ack_on_with(cid, cookie, nonblk);
    }

    fn queue_ack_on_with(&mut self, cid: ConnId, cookie: u64, nonblk: bool) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let proto = c.proto;
        // V3 with blocking ACKs (nonblk_zcack=0, not routed) behaves like V2.
        let style = if proto.zc_ack == ZcAckStyle::MergeNoops && !nonblk {
            ZcAckStyle::Piggyback
        } else {
            proto.zc_ack
        };
        let was_empty = c.tx.is_empty();
        let before = c.tx.q.len();
        let new_noop = c.tx.queue_zc_ack(cookie, style, proto, &mut self.tx_pool);
        if new_noop || c.tx.q.len() > before {
            self.stats.zc_acks_noop = self.stats.zc_acks_noop.wrapping_add(1);
        } else {
            self.stats.zc_acks_piggybacked = self.stats.zc_acks_piggybacked.wrapping_add(1);
        }
        if was_empty && !c.tx.is_empty() {
            c.tx_progress = Time(c.tx_progress.0.max(c.last_rx.0));
            self.actions.push_back(Action::Send { conn: cid });
        }
    }

    /// Finishes a message announced by [`Event::Rx`] (exactly once per announcement).
    fn rx_done(&mut self, rx: RxId, sink: Option<S>, result: Result<u32, Error>) {
        self.stats.rx_msgs_open = self.stats.rx_msgs_open.wrapping_sub(1);
        self.events.push_back(Event::RxDone { rx, sink, result });
    }

    fn finalize_tx(&mut self, tx: Box<Tx<P>>, result: Result<(), Error>) {
        finalize_into(
            &mut self.events,
            &mut self.stats,
            &mut self.tx_pool,
            tx,
            result,
        );
    }
}

/// Finishes an LNet transmission: its one `TxDone`, with the payload handed back.
/// The box goes back to `pool`.
fn finalize_into<P, S>(
    events: &mut VecDeque<Event<P, S>>,
    stats: &mut Stats,
    pool: &mut TxPool<P>,
    mut tx: Box<Tx<P>>,
    result: Result<(), Error>,
) {
    if let TxKind::Lnet { id, payload, .. } = &mut tx.kind {
        stats.tx_msgs_done = stats.tx_msgs_done.wrapping_add(1);
        if result.is_err() {
            stats.tx_msgs_failed = stats.tx_msgs_failed.wrapping_add(1);
        }
        events.push_back(Event::TxDone {
            tx: *id,
            payload: payload.take(),
            result,
        });
    }
    pool.recycle(tx);
}

fn new_route(ip: u32, port: u16, persistent: bool, now: Time) -> Route {
    Route {
        ip,
        port,
        connecting: None,
        retry_ms: 0,
        next_try: now,
        share_count: 1,
        persistent,
    }
}

/// Appends the encoding of `hello` (our byte order) to `out`.
fn push_hello(out: &mut Vec<u8>, hello: &Hello) {
    let start = out.len();
    out.resize(start.saturating_add(hello.wire_len()), 0);
    if let Some(dst) = out.get_mut(start..) {
        let _ = hello.encode(Endian::WIRE_DEFAULT, dst);
    }
}

const _: () = assert!(LNET_HDR_SIZE == 72);
