//! One engine, the fuzzer playing its peer and its runtime and upper layer (targets
//! `engine_rx_v1/2/3`, `engine_handshake_passive`, `engine_handshake_active`).
//!
//! Input: `cfg[4] ctrl_len:u16le ctrl[ctrl_len] stream[..]`.
//!
//! - `cfg` picks tunables and, for the rx targets, how the connection is established (passive or
//!   active, connection type, byte order of the peer's hello, userspace peer).
//! - `stream` is the peer's byte stream: after the handshake the harness performed (rx targets),
//!   or from the first byte (handshake targets). It is one sequence; `Feed` ops cut it into
//!   chunks and hand each to a connection of their choice.
//! - `ctrl` is the op sequence (see [`Rig::op`]): feeding, writing (at once, or lent by
//!   `tx_slices` and committed later, like an asynchronous send that may complete after the
//!   engine closed the connection), answering `Rx` (accept into a sink of chosen size and
//!   `mlen`, discard, reject, or hold and answer later), time steps, sends, connect outcomes, new
//!   accepted connections, EOF and errors, releases, peer control and tunables. An op cut short
//!   by the end of `ctrl` ends it.
//!
//! Then the rest of the stream is fed to the first connection (held messages accepted, writes
//! drained), the engine is shut down, in-flight writes completed or cancelled, every closed
//! connection released, and the books closed (see the parent module). Besides the parent
//! module's checks, from what each connection carried both ways: bytes lent by `tx_slices`
//! stay unchanged until committed; a zero-copy send completes `Ok` only if the peer's session
//! it went to acknowledged its cookie; every ZC-ACK we send acknowledges a cookie that the same
//! peer session (same incarnation) asked for.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;

use super::{
    check_output, covered, make_hdr, parse_input, pattern, size_code, Answer, Books, Cursor,
    PeerSent, Role, Written, SIZES,
};
use crate::engine::pair::SimEngine;
use crate::engine::{
    AcceptPolicy, Action, ConnAddrs, ConnId, Engine, Event, LocalNi, RxId, Time, Tunables,
};
use crate::wire::nid::{LNET_PID_LUSTRE, LNET_PID_USERFLAG};
use crate::wire::{ConnReq, ConnType, Endian, Hello, IpList, Net, Nid, ProcessId, ProtoVersion};

pub const ME_IP: u32 = 0x0a00_0001;
pub const ME: Nid = Nid::new(Net::TCP0, ME_IP);
/// Peers the fuzzer may be: higher NID than ours, lower (it loses connection races), another.
pub const PEER_IPS: [u32; 3] = [0x0a00_0002, 0x0900_0009, 0x0a00_0003];
pub const T0: Time = Time(5_000_000);
/// The peer's incarnation in the hellos the harness builds.
pub const PEER_INCARNATION: u64 = 0x1_0000_0007;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An established connection of this version first.
    Rx(ProtoVersion),
    Passive,
    Active,
}

/// What the harness's upper layer does with a new `Rx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auto {
    Hold,
    AcceptFull,
    Discard,
    Reject,
    AcceptHalf,
    AcceptSmall,
}

struct RigConn {
    id: ConnId,
    active: bool,
    /// For active connections: the NID dialled (the connreq must name it).
    dialled: Option<Nid>,
    released: bool,
    /// Every byte the runtime wrote for this connection (committed).
    out: Vec<u8>,
    /// Bytes lent by `tx_slices` and not committed yet (an asynchronous send in flight).
    inflight: Vec<u8>,
    /// Every byte the engine consumed from the peer on this connection.
    inp: Vec<u8>,
    /// Who the engine said the connection belongs to (`ConnUp`).
    peer: Option<ProcessId>,
}

impl RigConn {
    fn new(id: ConnId, active: bool, dialled: Option<Nid>) -> RigConn {
        RigConn {
            id,
            active,
            dialled,
            released: false,
            out: Vec::new(),
            inflight: Vec::new(),
            inp: Vec::new(),
            peer: None,
        }
    }
}

pub struct Rig<'a> {
    e: SimEngine,
    now: Time,
    books: Books,
    conns: Vec<RigConn>,
    closing: Vec<ConnId>,
    pending_connects: Vec<(ConnId, u32)>,
    held: Vec<RxId>,
    auto: Auto,
    /// Whom sends go to: the peer of the last connection that came up.
    peer: ProcessId,
    sent: BTreeMap<u64, crate::wire::LnetHdr>,
    next_msg: u64,
    verify_csum: bool,
    stream: Cursor<'a>,
    next_port: u16,
    /// Message id → whether its `TxDone` said `Ok`.
    tx_ok: BTreeMap<u64, bool>,
    /// At the end: complete in-flight writes (else cancel them) before the releases.
    complete_at_end: bool,
}

fn peer_nid(i: u8) -> Nid {
    Nid::new(Net::TCP0, PEER_IPS[usize::from(i) % PEER_IPS.len()])
}

/// Tunables from two configuration bytes.
pub fn tunables(c0: u8, c1: u8, c2: u8, protocol: ProtoVersion) -> Tunables {
    Tunables {
        accept: if c0 & 0x80 != 0 {
            AcceptPolicy::All
        } else {
            AcceptPolicy::Secure
        },
        enable_csum: c0 & 0x10 != 0,
        nonblk_zcack: c0 & 0x20 == 0,
        typed_conns: c1 & 0x04 == 0,
        conns_per_peer: u32::from((c1 >> 3) & 3),
        sock_timeout: [50, 1, 5, 10][usize::from(c2 & 3)],
        keepalive: [30, 0, 1, 5][usize::from((c2 >> 2) & 3)],
        accept_timeout: [5, 1][usize::from((c2 >> 4) & 1)],
        zc_min_payload: [16384, 0, 4096, 65536][usize::from((c2 >> 5) & 3)],
        min_reconnectms: 1000,
        protocol,
        ..Tunables::default()
    }
}

/// The peer's hello as the harness writes it.
pub fn peer_hello(v: ProtoVersion, src: Nid, ctype: ConnType, dst: Nid) -> Hello {
    Hello {
        version: v,
        src_nid: src,
        dst_nid: dst,
        src_pid: LNET_PID_LUSTRE,
        dst_pid: 0,
        src_incarnation: PEER_INCARNATION,
        dst_incarnation: 0,
        ctype,
        ips: IpList::EMPTY,
    }
}

pub fn hello_bytes(h: &Hello, e: Endian) -> Vec<u8> {
    let mut b = vec![0u8; h.wire_len()];
    h.encode(e, &mut b).expect("hello encodes");
    b
}

pub fn run(mode: Mode, data: &[u8]) {
    let mut input = Cursor::new(data);
    let cfg = [input.cfg(), input.cfg(), input.cfg(), input.cfg()];
    let ctrl_len = usize::from(input.u16().unwrap_or(0));
    let ctrl = Cursor::new(input.take(ctrl_len));
    let stream = Cursor::new(input.rest());
    let mut rig = Rig::new(mode, cfg, stream);
    rig.setup(mode, cfg);
    rig.run_ops(ctrl);
    rig.final_feed();
    rig.finish();
}

impl<'a> Rig<'a> {
    fn new(mode: Mode, cfg: [u8; 4], stream: Cursor<'a>) -> Rig<'a> {
        let [c0, c1, c2, c3] = cfg;
        let protocol = match mode {
            // Passive: we must speak at least the version; active: we offer exactly it.
            Mode::Rx(v) if c0 & 1 == 0 && c1 & 1 != 0 => ProtoVersion::V3.max(v),
            Mode::Rx(v) => v,
            _ => [ProtoVersion::V3, ProtoVersion::V2, ProtoVersion::V1][usize::from(c1 % 3)],
        };
        let cfg = tunables(c0, c1, c2, protocol);
        let e = Engine::new(
            LocalNi {
                nid: ME,
                pid: LNET_PID_LUSTRE,
                incarnation: 0xabc,
            },
            cfg,
            c0 & 0x40 == 0,
        );
        Rig {
            e,
            now: T0,
            books: Books::default(),
            conns: Vec::new(),
            closing: Vec::new(),
            pending_connects: Vec::new(),
            held: Vec::new(),
            auto: Auto::AcceptFull,
            peer: ProcessId::lustre(peer_nid(c3)),
            sent: BTreeMap::new(),
            next_msg: 0x100,
            verify_csum: true,
            stream,
            next_port: 1023,
            tx_ok: BTreeMap::new(),
            complete_at_end: c3 & 0x80 != 0,
        }
    }

    // ------------------------------------------------------------------------------------------
    // Setup

    fn setup(&mut self, mode: Mode, cfg: [u8; 4]) {
        let [c0, _, _, c3] = cfg;
        let peer_ip = PEER_IPS[usize::from(c3) % PEER_IPS.len()];
        match mode {
            Mode::Passive => {
                let port = if c0 & 0x80 != 0 { 40000 } else { 1023 };
                self.accept(peer_ip, port);
            }
            Mode::Active => {
                self.e.connect_peer(self.now, self.peer, peer_ip, 988);
                self.pump();
                let (c, ip) = self.pending_connects.remove(0);
                self.connect(c, ip);
                self.drain_all();
            }
            Mode::Rx(v) => self.establish(v, c0, peer_ip),
        }
    }

    /// Brings one connection of version `v` up with valid handshake bytes.
    fn establish(&mut self, v: ProtoVersion, c0: u8, peer_ip: u32) {
        let endian = if c0 & 0x08 != 0 {
            Endian::Big
        } else {
            Endian::Little
        };
        let src = Nid::new(Net::TCP0, peer_ip);
        let c = if c0 & 1 == 0 {
            let ctype = [
                ConnType::Control,
                ConnType::BulkIn,
                ConnType::BulkOut,
                ConnType::Any,
            ][usize::from((c0 >> 1) & 3)];
            let port = if c0 & 0x80 != 0 { 40000 } else { 1023 };
            let c = self
                .accept(peer_ip, port)
                .expect("the harness's connection is accepted");
            let mut input = ConnReq::new(ME).to_bytes(endian).to_vec();
            input.extend_from_slice(&hello_bytes(&peer_hello(v, src, ctype, ME), endian));
            let used = self.e.handle_rx(self.now, c, &input);
            assert_eq!(used, input.len(), "the handshake takes exactly its bytes");
            self.conn_mut(c).inp.extend_from_slice(&input);
            c
        } else {
            self.e.connect_peer(self.now, self.peer, peer_ip, 988);
            self.pump();
            let (c, ip) = self.pending_connects.remove(0);
            self.connect(c, ip);
            self.drain_all();
            // Our first connection is CONTROL (typed) or ANY; the peer mirrors it.
            let ctype = if self.e.tunables().typed_conns {
                ConnType::Control
            } else {
                ConnType::Any
            };
            let reply = hello_bytes(&peer_hello(v, src, ctype, ME), endian);
            let used = self.e.handle_rx(self.now, c, &reply);
            assert_eq!(used, reply.len(), "the reply hello is taken whole");
            self.conn_mut(c).inp.extend_from_slice(&reply);
            c
        };
        self.pump();
        self.drain_all();
        assert!(
            self.e.conns().iter().any(|i| i.conn == c && i.version == v),
            "harness setup: no established {v:?} connection"
        );
    }

    fn accept(&mut self, peer_ip: u32, port: u16) -> Option<ConnId> {
        let addrs = ConnAddrs {
            local_ip: ME_IP,
            local_port: 988,
            peer_ip,
            peer_port: port,
        };
        let c = self.e.accepted(self.now, addrs).ok()?;
        self.conns.push(RigConn::new(c, false, None));
        self.pump();
        Some(c)
    }

    fn connect(&mut self, c: ConnId, peer_ip: u32) {
        let port = self.next_port;
        self.next_port = if port <= 512 { 1023 } else { port - 1 };
        let addrs = ConnAddrs {
            local_ip: ME_IP,
            local_port: port,
            peer_ip,
            peer_port: 988,
        };
        self.e.connected(self.now, c, addrs);
        self.pump();
    }

    // ------------------------------------------------------------------------------------------
    // Ops

    fn run_ops(&mut self, mut ctrl: Cursor<'_>) {
        while self.op(&mut ctrl).is_some() {
            self.pump();
            self.check_gauges("after an op");
        }
    }

    fn live(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|c| !c.released)
            .map(|c| c.id)
            .collect()
    }

    fn pick_conn(&self, sel: u8) -> Option<ConnId> {
        let live = self.live();
        if live.is_empty() {
            None
        } else {
            Some(live[usize::from(sel) % live.len()])
        }
    }

    fn conn_mut(&mut self, c: ConnId) -> &mut RigConn {
        self.conns
            .iter_mut()
            .find(|r| r.id == c)
            .expect("a connection the harness knows")
    }

    fn op(&mut self, ctrl: &mut Cursor<'_>) -> Option<()> {
        let op = ctrl.byte()?;
        match op % 18 {
            // Feed the next chunk of the stream to a connection, by copy or direct read.
            0..=2 => {
                let sel = ctrl.byte()?;
                let n = size_code(ctrl.byte()?);
                if let Some(c) = self.pick_conn(sel) {
                    self.feed(c, n, sel & 0x80 != 0);
                }
            }
            // Write (and commit) up to n bytes of what a connection offers; 0 = start only.
            3 => {
                let sel = ctrl.byte()?;
                let code = ctrl.byte()?;
                let n = if code == 0 { 0 } else { size_code(code) };
                if let Some(c) = self.pick_conn(sel) {
                    self.drain(c, n);
                }
            }
            // An asynchronous send: lend up to n bytes now, commit them later.
            4 => {
                let sel = ctrl.byte()?;
                let n = size_code(ctrl.byte()?);
                if let Some(c) = self.pick_conn(sel) {
                    self.lend(c, n);
                }
            }
            // ... and its completion (n of the bytes in flight were written).
            5 => {
                let sel = ctrl.byte()?;
                let n = size_code(ctrl.byte()?);
                if let Some(c) = self.pick_conn(sel) {
                    self.complete(c, n);
                }
            }
            // Answer a held message.
            6 => {
                let idx = ctrl.byte()?;
                let kind = ctrl.byte()?;
                let a = ctrl.byte()?;
                let b = ctrl.byte()?;
                if !self.held.is_empty() {
                    let rx = self.held.remove(usize::from(idx) % self.held.len());
                    self.answer(rx, kind, a, b);
                }
            }
            7 => {
                self.auto = match ctrl.byte()? % 6 {
                    0 => Auto::Hold,
                    1 => Auto::AcceptFull,
                    2 => Auto::Discard,
                    3 => Auto::Reject,
                    4 => Auto::AcceptHalf,
                    _ => Auto::AcceptSmall,
                };
            }
            8 => {
                let t = ctrl.byte()?;
                self.time(t);
            }
            9 => {
                let k = ctrl.byte()?;
                let s = ctrl.byte()?;
                self.send(k, s);
            }
            // The outcome of a pending TCP connect.
            10 => {
                let idx = ctrl.byte()?;
                let how = ctrl.byte()?;
                if !self.pending_connects.is_empty() {
                    let (c, ip) = self
                        .pending_connects
                        .remove(usize::from(idx) % self.pending_connects.len());
                    match how % 4 {
                        0 | 1 => self.connect(c, ip),
                        2 => self.e.connect_failed(self.now, c, 111),
                        _ => self.e.connect_failed(self.now, c, 110),
                    }
                }
            }
            // Another incoming connection (the stream is shared: feeds pick the connection).
            11 => {
                let p = ctrl.byte()?;
                let ip = PEER_IPS[usize::from(p >> 4) % PEER_IPS.len()];
                let port = match p % 4 {
                    0 | 1 => 1023 - u16::from(p >> 2),
                    2 => 40000,
                    _ => 600,
                };
                let _ = self.accept(ip, port);
            }
            12 => {
                let sel = ctrl.byte()?;
                if let Some(c) = self.pick_conn(sel) {
                    if sel & 0x80 != 0 {
                        self.e.io_error(self.now, c, 104);
                    } else {
                        self.e.eof(self.now, c);
                    }
                }
            }
            // Release a connection the engine closed (its socket is gone). A send still in
            // flight completes first, or is cancelled.
            13 => {
                let idx = ctrl.byte()?;
                if !self.closing.is_empty() {
                    let c = self.closing.remove(usize::from(idx) % self.closing.len());
                    self.end_inflight(c, idx & 0x80 != 0);
                    self.release(c);
                }
            }
            14 => {
                let x = ctrl.byte()?;
                let y = ctrl.byte()?;
                let nid = peer_nid(y);
                let id = ProcessId::lustre(nid);
                let now = self.now;
                match x % 6 {
                    0 => {
                        self.e.close_conns(now, None, None);
                    }
                    1 => {
                        self.e.close_conns(now, Some(self.peer.nid), None);
                    }
                    2 => {
                        self.e.del_peer(now, Some(self.peer.nid), None);
                    }
                    3 => {
                        self.e.del_peer(now, None, None);
                    }
                    4 => self.e.connect_peer(now, id, nid.addr(), 988),
                    _ => self.e.add_peer(now, id, nid.addr(), 988),
                }
            }
            15 => {
                let w = ctrl.byte()?;
                let v = ctrl.byte()?;
                let mut t = self.e.tunables().clone();
                match w % 7 {
                    0 => t.enable_csum = v & 1 != 0,
                    1 => t.nonblk_zcack = v & 1 != 0,
                    2 => t.conns_per_peer = u32::from(v % 4),
                    3 => t.typed_conns = v & 1 != 0,
                    4 => t.keepalive = [0, 1, 30][usize::from(v % 3)],
                    5 => t.sock_timeout = [1, 5, 50][usize::from(v % 3)],
                    _ => {
                        t.inject_csum_error = v & 1 != 0;
                        self.verify_csum &= !t.inject_csum_error;
                    }
                }
                self.e.set_tunables(t);
            }
            // Catch up: answer everything held, write everything offered.
            _ => {
                self.answer_all_held();
                self.drain_all();
            }
        }
        Some(())
    }

    fn feed(&mut self, c: ConnId, n: usize, direct: bool) {
        let mut left = n.min(self.stream.rest().len());
        if direct {
            // The runtime's zero-copy path: read straight into the engine's buffer.
            while left > 0 {
                let now = self.now;
                let buf = self.e.rx_buffer(c);
                let k = buf.len().min(left);
                if k == 0 {
                    break;
                }
                let bytes = self.stream.take(k);
                buf[..k].copy_from_slice(bytes);
                self.conn_mut(c).inp.extend_from_slice(bytes);
                self.e.rx_commit(now, c, k);
                left -= k;
                self.pump();
            }
        } else {
            let chunk = &self.stream.rest()[..left];
            let used = self.e.handle_rx(self.now, c, chunk);
            assert!(used <= left, "handle_rx consumed more than given");
            self.conn_mut(c).inp.extend_from_slice(&chunk[..used]);
            self.stream.skip(used);
        }
    }

    /// Copies up to `n` bytes of what `tx_slices` offers for `c` into `into`; returns how many
    /// were offered in all.
    fn offered(&mut self, c: ConnId, n: usize, into: &mut Vec<u8>) -> usize {
        let mut out: [&[u8]; 8] = [&[]; 8];
        let k = self.e.tx_slices(c, &mut out);
        assert!(
            !out[..k].iter().any(|s| s.is_empty()),
            "tx_slices lent an empty slice"
        );
        let mut left = n;
        for s in &out[..k] {
            let t = s.len().min(left);
            into.extend_from_slice(&s[..t]);
            left -= t;
        }
        out[..k].iter().map(|s| s.len()).sum()
    }

    /// Writes and commits up to `n` bytes of `c` (after completing a send in flight).
    fn drain(&mut self, c: ConnId, mut n: usize) {
        self.complete(c, usize::MAX);
        loop {
            let mut bytes = Vec::new();
            self.offered(c, n, &mut bytes);
            let w = bytes.len();
            self.conn_mut(c).out.extend_from_slice(&bytes);
            self.e.tx_commit(self.now, c, w);
            n -= w;
            self.pump();
            if w == 0 || n == 0 {
                return;
            }
        }
    }

    /// Starts an asynchronous send of up to `n` bytes (one in flight per connection).
    fn lend(&mut self, c: ConnId, n: usize) {
        if !self.conn_mut(c).inflight.is_empty() {
            return;
        }
        let mut bytes = Vec::new();
        self.offered(c, n, &mut bytes);
        self.conn_mut(c).inflight = bytes;
        self.pump();
    }

    /// The send in flight on `c` wrote `n` of its bytes. What was lent must still be what the
    /// engine offers (until committed, the runtime may be reading it).
    fn complete(&mut self, c: ConnId, n: usize) {
        let lent = core::mem::take(&mut self.conn_mut(c).inflight);
        if lent.is_empty() {
            return;
        }
        let mut again = Vec::new();
        let offered = self.offered(c, lent.len(), &mut again);
        if offered > 0 {
            assert!(
                again.len() == lent.len() && again == lent,
                "{c:?}: bytes lent by tx_slices changed before they were committed"
            );
        }
        let w = n.min(lent.len());
        let r = self.conn_mut(c);
        r.out.extend_from_slice(&lent[..w]);
        r.inflight = lent[w..].to_vec();
        self.e.tx_commit(self.now, c, w);
        self.pump();
    }

    /// Before a release: the send in flight completes (all its bytes written) or is cancelled.
    fn end_inflight(&mut self, c: ConnId, complete: bool) {
        if complete {
            self.complete(c, usize::MAX);
        } else {
            self.conn_mut(c).inflight.clear();
        }
    }

    fn drain_all(&mut self) {
        for c in self.live() {
            self.drain(c, usize::MAX);
        }
    }

    fn time(&mut self, t: u8) {
        let ms = match t {
            0..=63 => u64::from(t) * 16,
            64..=127 => (u64::from(t) - 63) * 1000,
            128..=191 => self
                .e
                .poll_timeout()
                .map_or(1000, |at| at.since(self.now).max(1)),
            _ => (u64::from(t) - 191) * 10_000,
        };
        self.now = self.now.plus_ms(ms);
        self.e.handle_timeout(self.now);
    }

    fn send(&mut self, k: u8, s: u8) {
        let to = match (k >> 2) & 3 {
            0 | 1 => self.peer,
            2 => ProcessId::lustre(peer_nid(k >> 4)),
            _ if k & 0x40 != 0 => ProcessId::new(self.peer.nid, 40000 | LNET_PID_USERFLAG),
            _ => ProcessId::lustre(Nid::new(Net::new(5, 0), 7)),
        };
        let id = self.next_msg;
        self.next_msg += 1;
        let len = SIZES[usize::from(s) % SIZES.len()];
        let me = ProcessId::lustre(ME);
        let hdr = make_hdr(k, me, to, len as u32, id);
        let len = hdr.payload_length as usize;
        let payload = if len == 0 && s & 0x80 != 0 {
            None
        } else {
            Some(pattern(id, len))
        };
        self.sent.insert(id, hdr);
        let plen = payload.as_ref().map(|p| p.len());
        let tx = self.e.send(self.now, to, hdr, payload);
        self.books.sent(tx, id, plen);
    }

    fn release(&mut self, c: ConnId) {
        self.e.release(self.now, c);
        if let Some(r) = self.conns.iter_mut().find(|r| r.id == c) {
            r.released = true;
        }
        self.pending_connects.retain(|(p, _)| *p != c);
        self.pump();
    }

    // ------------------------------------------------------------------------------------------
    // The upper layer

    fn answer(&mut self, rx: RxId, kind: u8, a: u8, b: u8) {
        let Some(hdr) = self.books.header(rx) else {
            return;
        };
        let rlen = hdr.payload_length as usize;
        let now = self.now;
        match kind % 4 {
            0 => self.recv(rx, Some(rlen), hdr.payload_length),
            1 => {
                let sink = match a % 8 {
                    0 => rlen,
                    1 => 0,
                    2 => rlen / 2,
                    3 => rlen.saturating_sub(1),
                    4 => rlen + 1,
                    5 => usize::from(a >> 3),
                    6 => rlen + usize::from(a >> 3) * 64,
                    _ => rlen.min(4096),
                };
                let mlen = match b % 4 {
                    0 => hdr.payload_length,
                    1 => sink as u32,
                    2 => u32::from(b >> 2),
                    _ => u32::MAX,
                };
                self.recv(rx, Some(sink), mlen);
            }
            2 => self.recv(rx, None, u32::from(a)),
            _ => {
                self.books.answer(rx, Answer::Reject);
                self.e.reject(now, rx, "fuzz harness rejects");
            }
        }
    }

    fn recv(&mut self, rx: RxId, sink: Option<usize>, mlen: u32) {
        self.books.answer(rx, Answer::Recv { sink, mlen });
        self.e.recv(self.now, rx, sink.map(|n| vec![0u8; n]), mlen);
    }

    fn answer_all_held(&mut self) {
        for rx in core::mem::take(&mut self.held) {
            self.answer(rx, 0, 0, 0);
        }
        self.pump();
    }

    fn on_rx(&mut self, rx: RxId, hdr: crate::wire::LnetHdr) {
        self.books.rx(rx, hdr);
        let rlen = hdr.payload_length;
        match self.auto {
            Auto::Hold => self.held.push(rx),
            Auto::AcceptFull => self.recv(rx, Some(rlen as usize), rlen),
            Auto::Discard => self.recv(rx, None, 0),
            Auto::Reject => self.answer(rx, 3, 0, 0),
            Auto::AcceptHalf => self.recv(rx, Some(rlen as usize / 2), rlen),
            Auto::AcceptSmall => self.recv(rx, Some(16), 16),
        }
    }

    /// Performs every action and hears every event until the engine is quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(a) = self.e.poll_action() {
                moved = true;
                match a {
                    Action::Connect {
                        conn,
                        peer,
                        peer_ip,
                        ..
                    } => {
                        assert!(
                            !self.conns.iter().any(|c| c.id == conn),
                            "Connect for an existing {conn:?}"
                        );
                        self.conns.push(RigConn::new(conn, true, Some(peer.nid)));
                        self.pending_connects.push((conn, peer_ip));
                    }
                    Action::Close { conn, .. } => {
                        let known = self.conns.iter().find(|c| c.id == conn);
                        assert!(known.is_some(), "Close for an unknown {conn:?}");
                        if !known.is_some_and(|c| c.released) && !self.closing.contains(&conn) {
                            self.closing.push(conn);
                        }
                        // A connect still in progress is abandoned with its socket.
                        self.pending_connects.retain(|(p, _)| *p != conn);
                    }
                    Action::Send { .. } | Action::Receive { .. } | Action::Configure { .. } => {}
                }
            }
            while let Some(ev) = self.e.poll_event() {
                moved = true;
                match ev {
                    Event::Rx { rx, hdr, .. } => self.on_rx(rx, hdr),
                    Event::RxDone { rx, sink, result } => {
                        self.books.rx_done(rx, sink.as_ref(), &result);
                    }
                    Event::TxDone {
                        tx,
                        payload,
                        result,
                    } => {
                        let msg = self.books.tx_done(tx, payload.as_ref(), &result);
                        self.tx_ok.insert(msg, result.is_ok());
                    }
                    Event::ConnUp { conn, peer, .. } => {
                        self.peer = peer;
                        self.conn_mut(conn).peer = Some(peer);
                    }
                    Event::ConnDown { .. }
                    | Event::PeerDown { .. }
                    | Event::VersionFallback { .. } => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn check_gauges(&self, what: &str) {
        self.books.check_gauges(&self.e, what);
        let live = self.live();
        assert_eq!(
            self.e.stats.conns_open,
            live.len() as u64,
            "{what}: conns_open gauge"
        );
        // The listings (ptlctl/lctl) name only connections the runtime still has.
        for info in self.e.conns() {
            assert!(
                live.contains(&info.conn),
                "{what}: conns() lists {:?}, released",
                info.conn
            );
        }
        // Every peer lists at least once (once per route).
        let listed: BTreeSet<ProcessId> = self.e.peers().iter().map(|p| p.id).collect();
        assert_eq!(
            listed.len() as u64,
            self.e.stats.peers,
            "{what}: peers gauge vs peers()"
        );
    }

    // ------------------------------------------------------------------------------------------
    // The end

    /// Feeds what is left of the stream to the first live connection, accepting whatever
    /// arrives and writing whatever is offered, as long as it makes progress.
    fn final_feed(&mut self) {
        let Some(c) = self.conns.iter().find(|r| !r.released).map(|r| r.id) else {
            return;
        };
        for _ in 0..64 {
            self.answer_all_held();
            let rest = self.stream.rest();
            if rest.is_empty() {
                break;
            }
            let used = self.e.handle_rx(self.now, c, rest);
            self.conn_mut(c).inp.extend_from_slice(&rest[..used]);
            self.stream.skip(used);
            self.pump();
            self.drain_all();
            if used == 0 && self.held.is_empty() {
                break;
            }
        }
        self.check_gauges("after the final feed");
    }

    fn finish(mut self) {
        self.answer_all_held();
        self.drain_all();
        self.e.shutdown(self.now);
        self.pump();
        // The runtime closes every socket the engine asked it to: a send still in flight
        // completes (or is cancelled), then the connection is released.
        for _ in 0..1000 {
            if self.closing.is_empty() {
                break;
            }
            for c in core::mem::take(&mut self.closing) {
                self.end_inflight(c, self.complete_at_end);
                self.release(c);
            }
        }
        assert!(self.closing.is_empty(), "closes keep coming after shutdown");
        let unreleased: Vec<ConnId> = self.live();
        assert!(
            unreleased.is_empty(),
            "shutdown did not close {unreleased:?}"
        );
        self.books.check_final(&self.e, "engine");
        self.check_streams();
    }

    /// Checks what every connection carried, each way and across connections.
    fn check_streams(&self) {
        let mut seen = BTreeSet::new();
        let mut written: Vec<(&RigConn, Written, PeerSent)> = Vec::new();
        for c in &self.conns {
            let role = match (c.active, c.dialled) {
                (true, Some(peer)) => Role::Active { peer },
                _ => Role::Passive,
            };
            let w = check_output(&c.out, role, ME, &self.sent, &mut seen, self.verify_csum)
                .unwrap_or_else(|why| panic!("{:?} ({role:?}) wrote a bad stream: {why}", c.id));
            written.push((c, w, parse_input(&c.inp, !c.active)));
        }
        // A peer session: who, and its incarnation (from its hello on that connection).
        let session = |c: &RigConn, p: &PeerSent| Some((c.peer?, p.hello?.src_incarnation));
        for (c, w, p) in &written {
            let Some(me) = session(c, p) else {
                assert!(
                    w.zc.is_empty() && w.acks.is_empty(),
                    "{:?}: ZC traffic on a connection that never came up",
                    c.id
                );
                continue;
            };
            let same = || {
                written
                    .iter()
                    .filter(|(c2, _, p2)| session(c2, p2) == Some(me))
            };
            // Our ZC-ACKs acknowledge cookies this peer session asked for.
            for a in &w.acks {
                for cookie in covered(a, 4096) {
                    assert!(
                        same().any(|(_, _, p2)| p2.requests.contains(&cookie)),
                        "{:?}: we acknowledged cookie {cookie} ({a:?}) that {me:?} never asked for",
                        c.id
                    );
                }
            }
            // A zero-copy send completed Ok only with its ACK from the session it went to.
            for (msg, cookie) in &w.zc {
                if self.tx_ok.get(msg) == Some(&true) {
                    assert!(
                        same().any(|(_, _, p2)| p2.acks.iter().any(|a| a.covers(*cookie))),
                        "{:?}: ZC message {msg:#x} (cookie {cookie}) completed Ok without an ACK \
                         from {me:?}",
                        c.id
                    );
                }
            }
        }
    }
}
