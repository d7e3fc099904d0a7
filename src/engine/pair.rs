//! Two (or more) engines wired back to back in memory: a deterministic little network with TCP
//! semantics (ordered bytes, arbitrary segmentation, EOF, connect refusal) and a simulated clock.
//! Used by the engine's scenario tests, the stateful fuzz harness and the instruction-count
//! benchmark. Not part of the driver build.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::{Action, ConnAddrs, ConnId, Engine, Error, Event, LocalNi, RxId, Time, Tunables, TxId};
use crate::wire::{LnetHdr, Nid, ProcessId};

/// The engine type the harness drives: payloads and sinks are plain byte vectors.
pub type SimEngine = Engine<Vec<u8>, Vec<u8>>;

/// How the simulated network cuts the byte streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Everything available at once.
    Whole,
    /// One byte at a time.
    Bytewise,
    /// Random sizes from 1 to the given maximum.
    Random(usize),
}

/// What a node's upper layer does with an incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxPolicy {
    /// Receive the whole payload into a fresh buffer.
    Accept,
    /// Discard the payload.
    Discard,
    /// Leave the message waiting (the test answers with `recv` itself).
    Hold,
}

/// A finished receive as the log keeps it.
pub type RxDoneRecord = (RxId, Option<Vec<u8>>, Result<u32, Error>);
/// A finished send as the log keeps it.
pub type TxDoneRecord = (TxId, Option<Vec<u8>>, Result<(), Error>);

/// Everything a node's upper layer was told, for assertions.
#[derive(Default)]
pub struct Log {
    pub rx: Vec<(RxId, ProcessId, LnetHdr)>,
    pub rx_done: Vec<RxDoneRecord>,
    pub tx_done: Vec<TxDoneRecord>,
    pub conn_up: Vec<(
        ConnId,
        ProcessId,
        crate::wire::ConnType,
        crate::wire::ProtoVersion,
    )>,
    pub conn_down: Vec<(ConnId, Option<ProcessId>, Error)>,
    pub peer_down: Vec<ProcessId>,
    pub fallbacks: Vec<(
        ProcessId,
        crate::wire::ProtoVersion,
        crate::wire::ProtoVersion,
    )>,
    /// Messages held by `RxPolicy::Hold`.
    pub held: Vec<RxId>,
}

pub struct SimNode {
    pub engine: SimEngine,
    /// When set, the node's upper layer is the LNet layer instead of the `policy`.
    pub lnet: Option<crate::lnet::Lnet<Vec<u8>>>,
    pub lnet_events: Vec<crate::lnet::LnetEvent>,
    pub ip: u32,
    pub listening: bool,
    pub policy: RxPolicy,
    pub log: Log,
    next_port: u16,
    closing: Vec<ConnId>,
}

impl SimNode {
    pub fn id(&self) -> ProcessId {
        let ni = self.engine.ni();
        ProcessId::new(ni.nid, ni.pid)
    }
}

/// One direction of a simulated TCP connection.
#[derive(Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// The writer closed: the reader sees EOF after the bytes.
    fin: bool,
    eof_delivered: bool,
}

struct Link {
    ends: [(usize, ConnId); 2],
    pipes: [Pipe; 2],
    /// Every byte written each way (`[0]` by `ends[0]`, the connector), when `Sim::record`.
    written: [Vec<u8>; 2],
}

/// One simulated TCP connection as [`Sim::record`] kept it: its ends (connector first, as
/// (node, connection)) and every byte each end wrote.
pub struct LinkRecord<'a> {
    pub ends: [(usize, ConnId); 2],
    pub written: [&'a [u8]; 2],
}

/// The simulated network of nodes.
pub struct Sim {
    pub nodes: Vec<SimNode>,
    pub now: Time,
    pub chunking: Chunking,
    links: Vec<Link>,
    by_end: BTreeMap<(usize, ConnId), usize>,
    rng: u64,
    /// Bytes that crossed the wire, for checks.
    pub wire_bytes: u64,
    /// Keep every byte written on every link (see [`Sim::links`]).
    pub record: bool,
    /// Steps by which a write's confirmation (`tx_commit`) trails the write itself, as when a
    /// runtime's scheduler reports a finished write after the peer already answered it (the
    /// TDI layer's send completion, a user-space write racing the read of the reply). 0: at once.
    pub commit_lag: u32,
    /// Writes not yet confirmed: (node, connection, bytes, steps left).
    lagging: Vec<(usize, ConnId, usize, u32)>,
}

/// How much of `avail` bytes one read or write moves (xorshift state in `rng`).
fn chunk_of(chunking: Chunking, rng: &mut u64, avail: usize) -> usize {
    match chunking {
        Chunking::Whole => avail,
        Chunking::Bytewise => avail.min(1),
        Chunking::Random(max) => {
            let mut x = *rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *rng = x;
            avail.min(1 + (x as usize) % max.max(1))
        }
    }
}

/// `a.b.c.d` as a host-order integer.
pub const fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        Sim {
            nodes: Vec::new(),
            now: Time(1_000_000),
            chunking: Chunking::Whole,
            links: Vec::new(),
            by_end: BTreeMap::new(),
            rng: seed | 1,
            wire_bytes: 0,
            record: false,
            commit_lag: 0,
            lagging: Vec::new(),
        }
    }

    /// Adds a node with NID `addr@tcp`, PID 12345 and the given tunables; returns its index.
    pub fn add_node(&mut self, addr: u32, incarnation: u64, cfg: Tunables) -> usize {
        let ni = LocalNi {
            nid: Nid::new(crate::wire::Net::TCP0, addr),
            pid: crate::wire::nid::LNET_PID_LUSTRE,
            incarnation,
        };
        self.nodes.push(SimNode {
            engine: Engine::new(ni, cfg, true),
            lnet: None,
            lnet_events: Vec::new(),
            ip: addr,
            listening: true,
            policy: RxPolicy::Accept,
            log: Log::default(),
            next_port: 1023,
            closing: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// Replaces node `i`'s engine by a fresh one (a reboot: new incarnation, nothing remembered).
    /// The old engine's connections are reset.
    pub fn reboot(&mut self, i: usize, incarnation: u64, cfg: Tunables) {
        let ends: Vec<(usize, ConnId)> = self
            .by_end
            .keys()
            .copied()
            .filter(|(n, _)| *n == i)
            .collect();
        for (n, c) in ends {
            self.reset_link(n, c);
        }
        self.reboot_silently(i, incarnation, cfg);
    }

    /// Replaces node `i`'s engine without telling its peers: their old connections still look
    /// alive to them (a crashed and rebooted node whose TCP connections were not reset).
    pub fn reboot_silently(&mut self, i: usize, incarnation: u64, cfg: Tunables) {
        let ends: Vec<(usize, ConnId)> = self
            .by_end
            .keys()
            .copied()
            .filter(|(n, _)| *n == i)
            .collect();
        for e in ends {
            self.by_end.remove(&e);
        }
        let ni = LocalNi {
            incarnation,
            ..self.nodes[i].engine.ni()
        };
        self.nodes[i].engine = Engine::new(ni, cfg, true);
        self.nodes[i].log = Log::default();
        self.nodes[i].closing.clear();
        self.lagging.retain(|l| l.0 != i);
    }

    pub fn send(
        &mut self,
        from: usize,
        to: ProcessId,
        hdr: LnetHdr,
        payload: Option<Vec<u8>>,
    ) -> TxId {
        let now = self.now;
        self.nodes[from].engine.send(now, to, hdr, payload)
    }

    /// Gives node `i` the LNet layer as its upper layer.
    pub fn with_lnet(&mut self, i: usize) {
        let ni = self.nodes[i].engine.ni();
        self.nodes[i].lnet = Some(crate::lnet::Lnet::new(ni));
    }

    /// Advances the clock by `ms` and runs the reapers.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
        let now = self.now;
        for n in &mut self.nodes {
            n.engine.handle_timeout(now);
            if let Some(l) = n.lnet.as_mut() {
                l.handle_timeout(now);
                while let Some(ev) = l.poll_event() {
                    n.lnet_events.push(ev);
                }
            }
        }
        self.run();
    }

    /// Advances the clock in 1-second steps for `secs` seconds, running everything in between.
    pub fn advance_secs(&mut self, secs: u64) {
        for _ in 0..secs {
            self.advance(1000);
        }
    }

    /// Cuts the connection `conn` of node `n` as a reset would: both ends see an error.
    /// Every link made so far, in the order they were made, with what [`Sim::record`] kept.
    pub fn links(&self) -> impl Iterator<Item = LinkRecord<'_>> {
        self.links.iter().map(|l| LinkRecord {
            ends: l.ends,
            written: [&l.written[0][..], &l.written[1][..]],
        })
    }

    pub fn reset_link(&mut self, n: usize, conn: ConnId) {
        let Some(&li) = self.by_end.get(&(n, conn)) else {
            return;
        };
        let ends = self.links[li].ends;
        let now = self.now;
        for (node, c) in ends {
            self.by_end.remove(&(node, c));
            if node < self.nodes.len() {
                self.nodes[node].engine.io_error(now, c, 104);
            }
        }
    }

    /// Runs until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("simulation did not settle");
    }

    /// One round: actions, events, writes, reads. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        for i in 0..self.nodes.len() {
            while let Some(a) = self.nodes[i].engine.poll_action() {
                moved = true;
                self.do_action(i, a);
            }
            while let Some(e) = self.nodes[i].engine.poll_event() {
                moved = true;
                self.do_event(i, e);
            }
        }
        // Late write confirmations.
        for (n, c, w, left) in core::mem::take(&mut self.lagging) {
            moved = true;
            if left == 0 {
                self.nodes[n].engine.tx_commit(now, c, w);
            } else {
                self.lagging.push((n, c, w, left - 1));
            }
        }
        // Writes.
        let ends: Vec<(usize, ConnId)> = self.by_end.keys().copied().collect();
        for (n, c) in ends.iter().copied() {
            if self.lagging.iter().any(|l| (l.0, l.1) == (n, c)) {
                // The engine would offer the unconfirmed bytes again.
                continue;
            }
            let li = self.by_end[&(n, c)];
            let dir = if self.links[li].ends[0] == (n, c) {
                0
            } else {
                1
            };
            let mut out: [&[u8]; 64] = [&[]; 64];
            let k = self.nodes[n].engine.tx_slices(c, &mut out);
            if k == 0 {
                continue;
            }
            let total: usize = out[..k].iter().map(|s| s.len()).sum();
            let w = chunk_of(self.chunking, &mut self.rng, total);
            // Copy only what this write takes (a byte-wise stream would otherwise copy the whole
            // offer once per byte).
            let link = &mut self.links[li];
            let mut left = w;
            for s in &out[..k] {
                let t = s.len().min(left);
                link.pipes[dir].bytes.extend(&s[..t]);
                if self.record {
                    link.written[dir].extend_from_slice(&s[..t]);
                }
                left -= t;
            }
            self.wire_bytes += w as u64;
            if self.commit_lag > 0 && w > 0 {
                self.lagging.push((n, c, w, self.commit_lag));
            } else {
                self.nodes[n].engine.tx_commit(now, c, w);
            }
            moved |= w > 0;
        }
        // Closing ends whose flush is done.
        for i in 0..self.nodes.len() {
            let closing = core::mem::take(&mut self.nodes[i].closing);
            for c in closing {
                let mut out: [&[u8]; 1] = [&[]];
                if self.nodes[i].engine.tx_slices(c, &mut out) > 0 {
                    self.nodes[i].closing.push(c);
                    continue;
                }
                if let Some(li) = self.by_end.remove(&(i, c)) {
                    let dir = if self.links[li].ends[0] == (i, c) {
                        0
                    } else {
                        1
                    };
                    self.links[li].pipes[dir].fin = true;
                }
                self.nodes[i].engine.release(now, c);
                moved = true;
            }
        }
        // Reads.
        for li in 0..self.links.len() {
            for dir in 0..2 {
                let (rn, rc) = self.links[li].ends[1 - dir];
                // The reader's end must still belong to this link (ids restart after a reboot).
                if self.by_end.get(&(rn, rc)) != Some(&li) {
                    continue;
                }
                let avail = self.links[li].pipes[dir].bytes.len();
                if avail > 0 {
                    let k = chunk_of(self.chunking, &mut self.rng, avail);
                    let data = &self.links[li].pipes[dir].bytes.make_contiguous()[..k];
                    let used = self.nodes[rn].engine.handle_rx(now, rc, data);
                    self.links[li].pipes[dir].bytes.drain(..used);
                    moved |= used > 0;
                } else if self.links[li].pipes[dir].fin && !self.links[li].pipes[dir].eof_delivered
                {
                    self.links[li].pipes[dir].eof_delivered = true;
                    self.nodes[rn].engine.eof(now, rc);
                    moved = true;
                }
            }
        }
        moved
    }

    fn do_action(&mut self, i: usize, a: Action) {
        let now = self.now;
        match a {
            Action::Connect {
                conn,
                peer_ip,
                port,
                ..
            } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.ip == peer_ip && n.listening);
                let local_port = self.nodes[i].next_port;
                self.nodes[i].next_port = if local_port <= 512 {
                    1023
                } else {
                    local_port - 1
                };
                let Some(t) = target else {
                    self.nodes[i].engine.connect_failed(now, conn, 111);
                    return;
                };
                let _ = port;
                let addrs_a = ConnAddrs {
                    local_ip: self.nodes[i].ip,
                    local_port,
                    peer_ip,
                    peer_port: 988,
                };
                let addrs_b = ConnAddrs {
                    local_ip: peer_ip,
                    local_port: 988,
                    peer_ip: self.nodes[i].ip,
                    peer_port: local_port,
                };
                match self.nodes[t].engine.accepted(now, addrs_b) {
                    Ok(bc) => {
                        self.links.push(Link {
                            ends: [(i, conn), (t, bc)],
                            pipes: [Pipe::default(), Pipe::default()],
                            written: [Vec::new(), Vec::new()],
                        });
                        let li = self.links.len() - 1;
                        self.by_end.insert((i, conn), li);
                        self.by_end.insert((t, bc), li);
                        self.nodes[i].engine.connected(now, conn, addrs_a);
                    }
                    Err(_) => {
                        // Accepted by TCP, closed at once by the acceptor: the connector sees EOF.
                        self.nodes[i].engine.connected(now, conn, addrs_a);
                        self.nodes[i].engine.eof(now, conn);
                    }
                }
            }
            Action::Send { .. } | Action::Receive { .. } | Action::Configure { .. } => {}
            Action::Close { conn, flush } => {
                if flush {
                    self.nodes[i].closing.push(conn);
                } else {
                    if let Some(li) = self.by_end.remove(&(i, conn)) {
                        let dir = if self.links[li].ends[0] == (i, conn) {
                            0
                        } else {
                            1
                        };
                        self.links[li].pipes[dir].fin = true;
                    }
                    self.nodes[i].engine.release(now, conn);
                }
            }
        }
    }

    fn do_event(&mut self, i: usize, e: Event<Vec<u8>, Vec<u8>>) {
        let now = self.now;
        let node = &mut self.nodes[i];
        if let Some(l) = node.lnet.as_mut() {
            l.handle_event(&mut node.engine, now, e);
            while let Some(ev) = l.poll_event() {
                node.lnet_events.push(ev);
            }
            return;
        }
        match e {
            Event::Rx { rx, peer, hdr } => {
                node.log.rx.push((rx, peer, hdr));
                match node.policy {
                    RxPolicy::Accept => {
                        let len = hdr.payload_length;
                        node.engine
                            .recv(now, rx, Some(alloc::vec![0u8; len as usize]), len);
                    }
                    RxPolicy::Discard => node.engine.recv(now, rx, None, 0),
                    RxPolicy::Hold => node.log.held.push(rx),
                }
            }
            Event::RxDone { rx, sink, result } => node.log.rx_done.push((rx, sink, result)),
            Event::TxDone {
                tx,
                payload,
                result,
            } => node.log.tx_done.push((tx, payload, result)),
            Event::ConnUp {
                conn,
                peer,
                ctype,
                version,
                ..
            } => node.log.conn_up.push((conn, peer, ctype, version)),
            Event::ConnDown { conn, peer, reason } => node.log.conn_down.push((conn, peer, reason)),
            Event::PeerDown { peer } => node.log.peer_down.push(peer),
            Event::VersionFallback { peer, from, to } => node.log.fallbacks.push((peer, from, to)),
        }
    }
}
