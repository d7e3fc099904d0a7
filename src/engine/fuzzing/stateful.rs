//! Two or three engines over the simulated network of [`crate::engine::pair::Sim`], driven by an
//! op sequence (target `engine_pair_stateful`).
//!
//! Input: `cfg[5]`, then ops until the input ends (at most [`MAX_OPS`]):
//! `cfg[0]` node count (2 or 3) and initial chunking, `cfg[1]` the simulation's seed,
//! `cfg[2..5]` each node's protocol version and tunables.
//!
//! Ops (see [`Harness::op`]): sends of every LNet type and of sizes around `min_bulk` and
//! `zc_min_payload` to each other (and to unreachable targets), chunking changes, single steps
//! and runs, time steps, link resets, reboots (silent or not) with new incarnations and protocol
//! versions, `close_conns`, `del_peer`, `connect_peer`, `add_peer`, refusing connections,
//! tunables (`enable_csum`, `typed_conns`, `nonblk_zcack`, `conns_per_peer`, `protocol`, …),
//! and the upper layer's policy per node (accept, discard, hold and answer later with a sink of
//! chosen size).
//!
//! Checked after every op: each node's books and gauges (parent module), and for every message
//! that arrives: it was sent, to this node, by the peer the connection belongs to, with this
//! exact header, at most once; and every completed receive holds exactly the payload's bytes
//! (the payload is a pattern of the message id the header carries). At the end: everything held
//! is answered, every node shut down, and every node's books closed. A silently rebooted node's
//! old engine is a crashed machine: what it held is gone with it and not checked.
//!
//! Then every byte every engine wrote on every link ([`Sim::record`]) is parsed and checked
//! (parent module: one connreq + hello or one hello, well-framed messages, exactly what was sent,
//! in order, at most once), and the zero-copy sessions are checked across links: a ZC send
//! completed `Ok` only if the receiving incarnation sent an ACK for its cookie back to the
//! sending incarnation, and every ACK an engine sent answers a request of that same pair of
//! incarnations.
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
    check_output, covered, is_pattern, make_hdr, msg_id, pattern, Answer, Books, Cursor, Role,
    SentHeaders, Written, SIZES,
};
use crate::engine::pair::{ip, Chunking, RxPolicy, Sim};
use crate::engine::{RxId, Tunables};
use crate::wire::nid::LNET_PID_USERFLAG;
use crate::wire::{LnetHdr, Net, Nid, ProcessId, ProtoVersion};

/// Most ops one input runs.
pub const MAX_OPS: usize = 256;
/// Node `i` has IP 10.0.0.(i+1).
pub fn node_ip(i: usize) -> u32 {
    ip(10, 0, 0, 1 + i as u8)
}

struct MsgRec {
    from: usize,
    /// The node it is for; `None` for unreachable targets.
    to: Option<usize>,
    hdr: LnetHdr,
    delivered: u32,
}

#[derive(Default)]
struct NodeBooks {
    books: Books,
    held: Vec<RxId>,
}

struct Harness {
    sim: Sim,
    nodes: Vec<NodeBooks>,
    msgs: BTreeMap<u64, MsgRec>,
    next_msg: u64,
    next_incarnation: u64,
    /// Message id → whether its `TxDone` said `Ok`.
    tx_ok: BTreeMap<u64, bool>,
}

pub fn node_tunables(b: u8) -> Tunables {
    Tunables {
        protocol: [
            ProtoVersion::V3,
            ProtoVersion::V2,
            ProtoVersion::V1,
            ProtoVersion::V3,
        ][usize::from(b & 3)],
        enable_csum: b & 4 != 0,
        typed_conns: b & 8 == 0,
        nonblk_zcack: b & 16 == 0,
        conns_per_peer: u32::from((b >> 5) & 3),
        ..Tunables::default()
    }
}

fn chunking(c: u8) -> Chunking {
    match c % 8 {
        0 => Chunking::Whole,
        1 => Chunking::Bytewise,
        2 => Chunking::Random(3),
        3 => Chunking::Random(17),
        4 => Chunking::Random(100),
        5 => Chunking::Random(1500),
        6 => Chunking::Random(7000),
        _ => Chunking::Random(70_000),
    }
}

pub fn run(data: &[u8]) {
    let mut input = Cursor::new(data);
    let c0 = input.cfg();
    let seed = input.cfg();
    let n = 2 + usize::from(c0 & 1);
    let mut sim = Sim::new(u64::from(seed) * 0x9E37_79B9 + 1);
    sim.record = true;
    sim.chunking = chunking(c0 >> 1);
    let mut cfgs = [0u8; 3];
    for c in &mut cfgs {
        *c = input.cfg();
    }
    for (i, c) in cfgs.iter().enumerate().take(n) {
        sim.add_node(node_ip(i), 0x1000 + i as u64, node_tunables(*c));
    }
    let mut h = Harness {
        sim,
        nodes: (0..n).map(|_| NodeBooks::default()).collect(),
        msgs: BTreeMap::new(),
        next_msg: 0x100,
        next_incarnation: 0x2000,
        tx_ok: BTreeMap::new(),
    };
    for _ in 0..MAX_OPS {
        if h.op(&mut input).is_none() {
            break;
        }
        h.harvest_all();
    }
    h.finish();
}

impl Harness {
    fn n(&self) -> usize {
        self.sim.nodes.len()
    }

    fn op(&mut self, input: &mut Cursor<'_>) -> Option<()> {
        let op = input.byte()?;
        let n = self.n();
        match op % 16 {
            0..=3 => {
                let from = usize::from(input.byte()?) % n;
                let x = input.byte()?;
                let s = input.byte()?;
                self.send(from, x, s);
                self.sim.run();
            }
            4 => self.sim.chunking = chunking(input.byte()?),
            5 => {
                for _ in 0..=(input.byte()? % 16) {
                    self.sim.step();
                }
            }
            6 => self.sim.run(),
            7 => {
                let t = input.byte()?;
                match t {
                    0..=63 => self.sim.advance(u64::from(t) * 16),
                    64..=127 => self.sim.advance_secs(u64::from(t - 63)),
                    _ => self.sim.advance((u64::from(t) - 127) * 10_000),
                }
            }
            8 => {
                let node = usize::from(input.byte()?) % n;
                let sel = usize::from(input.byte()?);
                let conns = self.sim.nodes[node].engine.conns();
                if !conns.is_empty() {
                    self.sim.reset_link(node, conns[sel % conns.len()].conn);
                    self.sim.run();
                }
            }
            9 => {
                let node = usize::from(input.byte()?) % n;
                let p = input.byte()?;
                self.reboot(node, p);
            }
            10 => {
                let node = usize::from(input.byte()?) % n;
                let x = input.byte()?;
                let other = self.sim.nodes[usize::from(x >> 2) % n].id().nid;
                let now = self.sim.now;
                let e = &mut self.sim.nodes[node].engine;
                match x & 3 {
                    0 => e.close_conns(now, Some(other), None),
                    1 => e.close_conns(now, None, None),
                    2 => e.del_peer(now, Some(other), None),
                    _ => e.del_peer(now, None, Some(other.addr())),
                };
                self.sim.run();
            }
            11 => {
                let node = usize::from(input.byte()?) % n;
                let w = input.byte()?;
                let v = input.byte()?;
                let e = &mut self.sim.nodes[node].engine;
                let mut t = e.tunables().clone();
                match w % 9 {
                    0 => t.enable_csum = v & 1 != 0,
                    1 => t.typed_conns = v & 1 != 0,
                    2 => t.nonblk_zcack = v & 1 != 0,
                    3 => t.conns_per_peer = u32::from(v % 4),
                    4 => t.keepalive = [0, 1, 30][usize::from(v % 3)],
                    5 => t.sock_timeout = [1, 5, 50][usize::from(v % 3)],
                    6 => t.protocol = node_tunables(v).protocol,
                    7 => t.zc_min_payload = [0, 4096, 16384, 1 << 20][usize::from(v % 4)],
                    _ => t.min_bulk = [0, 1024, 70_000][usize::from(v % 3)],
                }
                e.set_tunables(t);
                self.sim.run();
            }
            12 => {
                let node = usize::from(input.byte()?) % n;
                self.sim.nodes[node].policy = match input.byte()? % 3 {
                    0 => RxPolicy::Accept,
                    1 => RxPolicy::Discard,
                    _ => RxPolicy::Hold,
                };
            }
            13 => {
                let node = usize::from(input.byte()?) % n;
                let idx = usize::from(input.byte()?);
                let kind = input.byte()?;
                let a = input.byte()?;
                if !self.nodes[node].held.is_empty() {
                    let k = idx % self.nodes[node].held.len();
                    let rx = self.nodes[node].held.remove(k);
                    self.answer(node, rx, kind, a);
                    self.sim.run();
                }
            }
            14 => {
                let node = usize::from(input.byte()?) % n;
                let x = input.byte()?;
                let t = usize::from(x >> 1) % n;
                let id = self.sim.nodes[t].id();
                let now = self.sim.now;
                let e = &mut self.sim.nodes[node].engine;
                if x & 1 == 0 {
                    e.connect_peer(now, id, node_ip(t), 988);
                } else {
                    e.add_peer(now, id, node_ip(t), 988);
                }
                self.sim.run();
            }
            _ => {
                let node = usize::from(input.byte()?) % n;
                self.sim.nodes[node].listening = !self.sim.nodes[node].listening;
            }
        }
        Some(())
    }

    fn send(&mut self, from: usize, x: u8, s: u8) {
        let n = self.n();
        let (to_node, to) = if x & 0xc0 == 0xc0 {
            // Nobody there (connects fail), or a userspace process (never connected to).
            let target = if x & 0x20 != 0 {
                ProcessId::lustre(Nid::new(Net::TCP0, ip(10, 0, 0, 99)))
            } else {
                ProcessId::new(
                    self.sim.nodes[(from + 1) % n].id().nid,
                    777 | LNET_PID_USERFLAG,
                )
            };
            (None, target)
        } else {
            let t = (from + 1 + usize::from(x) % (n - 1)) % n;
            (Some(t), self.sim.nodes[t].id())
        };
        let id = self.next_msg;
        self.next_msg += 1;
        // Under tiny chunks a step moves a byte or a few: keep payloads at 4 KiB or less there
        // (every step visits every connection; 64 KiB byte by byte would dominate the run).
        let small_chunks = match self.sim.chunking {
            Chunking::Bytewise => true,
            Chunking::Random(max) => max < 100,
            Chunking::Whole => false,
        };
        let sizes = if small_chunks {
            &SIZES[..10]
        } else {
            &SIZES[..]
        };
        let len = sizes[usize::from(s) % sizes.len()];
        let hdr = make_hdr(x >> 2, self.sim.nodes[from].id(), to, len as u32, id);
        let len = hdr.payload_length as usize;
        let payload = if len == 0 && s & 0x80 != 0 {
            None
        } else {
            Some(pattern(id, len))
        };
        let plen = payload.as_ref().map(|p| p.len());
        self.msgs.insert(
            id,
            MsgRec {
                from,
                to: to_node,
                hdr,
                delivered: 0,
            },
        );
        let tx = self.sim.send(from, to, hdr, payload);
        self.nodes[from].books.sent(tx, id, plen);
    }

    fn reboot(&mut self, node: usize, p: u8) {
        self.harvest_all();
        let cfg = node_tunables(p);
        let inc = self.next_incarnation;
        self.next_incarnation += 1;
        if p & 0x80 != 0 {
            self.sim.reboot(node, inc, cfg);
        } else {
            self.sim.reboot_silently(node, inc, cfg);
        }
        // The old engine is gone with everything it held; the harness forgets its books.
        self.nodes[node] = NodeBooks::default();
        self.sim.run();
    }

    fn answer(&mut self, node: usize, rx: RxId, kind: u8, a: u8) {
        let Some(hdr) = self.nodes[node].books.header(rx) else {
            return;
        };
        let rlen = hdr.payload_length as usize;
        let (sink, mlen) = match kind % 4 {
            0 => (Some(rlen), hdr.payload_length),
            1 => (Some(rlen / 2), hdr.payload_length),
            2 => (Some(rlen + usize::from(a)), u32::from(a) * 97),
            _ => (None, 0),
        };
        let now = self.sim.now;
        if kind & 0x80 != 0 {
            self.nodes[node].books.answer(rx, Answer::Reject);
            self.sim.nodes[node]
                .engine
                .reject(now, rx, "fuzz harness rejects");
        } else {
            self.nodes[node]
                .books
                .answer(rx, Answer::Recv { sink, mlen });
            self.sim.nodes[node]
                .engine
                .recv(now, rx, sink.map(|n| vec![0u8; n]), mlen);
        }
    }

    /// Takes what each node's upper layer was told since the last harvest and checks it.
    fn harvest_all(&mut self) {
        for i in 0..self.n() {
            self.harvest(i);
        }
    }

    fn harvest(&mut self, i: usize) {
        let log = core::mem::take(&mut self.sim.nodes[i].log);
        let policy = self.sim.nodes[i].policy;
        for (rx, peer, hdr) in log.rx {
            self.nodes[i].books.rx(rx, hdr);
            let id = msg_id(&hdr);
            let Some(m) = self.msgs.get_mut(&id) else {
                panic!("node {i}: {rx:?} is no message anyone sent: {hdr:?}");
            };
            assert_eq!(m.hdr, hdr, "node {i}: message {id:#x} arrived altered");
            assert_eq!(m.to, Some(i), "node {i}: message {id:#x} was not for it");
            assert_eq!(
                peer,
                self.sim.nodes[m.from].id(),
                "node {i}: message {id:#x} arrived from the wrong peer"
            );
            m.delivered += 1;
            assert_eq!(m.delivered, 1, "node {i}: message {id:#x} delivered twice");
            if log.held.contains(&rx) {
                self.nodes[i].held.push(rx);
            } else {
                let len = hdr.payload_length;
                let a = match policy {
                    RxPolicy::Accept => Answer::Recv {
                        sink: Some(len as usize),
                        mlen: len,
                    },
                    RxPolicy::Discard => Answer::Recv {
                        sink: None,
                        mlen: 0,
                    },
                    RxPolicy::Hold => panic!("held message {rx:?} not in the held list"),
                };
                self.nodes[i].books.answer(rx, a);
            }
        }
        let books = &mut self.nodes[i].books;
        for (rx, sink, result) in &log.rx_done {
            let (hdr, n) = books.rx_done(*rx, sink.as_ref(), result);
            if let Some(s) = sink {
                assert!(
                    is_pattern(msg_id(&hdr), 0, &s[..n as usize]),
                    "node {i}: {rx:?} received corrupted payload bytes"
                );
            }
        }
        for (tx, payload, result) in &log.tx_done {
            let msg = books.tx_done(*tx, payload.as_ref(), result);
            self.tx_ok.insert(msg, result.is_ok());
        }
        books.check_gauges(&self.sim.nodes[i].engine, "stateful");
    }

    fn finish(mut self) {
        self.harvest_all();
        // Answer everything held (in full); what arrives meanwhile is discarded.
        for i in 0..self.n() {
            self.sim.nodes[i].policy = RxPolicy::Discard;
            for rx in core::mem::take(&mut self.nodes[i].held) {
                self.answer(i, rx, 0, 0);
            }
        }
        self.sim.run();
        self.harvest_all();
        let now = self.sim.now;
        for n in &mut self.sim.nodes {
            n.engine.shutdown(now);
        }
        self.sim.run();
        self.harvest_all();
        for i in 0..self.n() {
            assert!(
                self.nodes[i].held.is_empty(),
                "node {i}: held after shutdown"
            );
            self.nodes[i]
                .books
                .check_final(&self.sim.nodes[i].engine, "stateful node");
        }
        self.check_links();
    }

    /// Checks every byte written on every link, then the zero-copy sessions across links.
    fn check_links(&self) {
        let sent: SentHeaders = self.msgs.iter().map(|(id, m)| (*id, m.hdr)).collect();
        let nid = |n: usize| self.sim.nodes[n].id().nid;
        let mut seen = BTreeSet::new();
        // (writer, reader, what the writer wrote, the reader's hello on the same link).
        let mut dirs: Vec<(usize, usize, Written, Option<u64>)> = Vec::new();
        for (li, l) in self.sim.links().enumerate() {
            let [(a, _), (b, _)] = l.ends;
            let wa = check_output(
                l.written[0],
                Role::Active { peer: nid(b) },
                nid(a),
                &sent,
                &mut seen,
                true,
            )
            .unwrap_or_else(|why| panic!("link {li}: node {a} (connector) wrote: {why}"));
            let wb = check_output(l.written[1], Role::Passive, nid(b), &sent, &mut seen, true)
                .unwrap_or_else(|why| panic!("link {li}: node {b} (acceptor) wrote: {why}"));
            let (ia, ib) = (
                wa.hello.map(|h| h.src_incarnation),
                wb.hello.map(|h| h.src_incarnation),
            );
            dirs.push((a, b, wa, ib));
            dirs.push((b, a, wb, ia));
        }
        // A session: writer, its incarnation, reader, its incarnation.
        let session = |d: &(usize, usize, Written, Option<u64>)| {
            Some((d.0, d.2.hello?.src_incarnation, d.1, d.3?))
        };
        for d in &dirs {
            let Some(me) = session(d) else {
                assert!(d.2.zc.is_empty() && d.2.acks.is_empty());
                continue;
            };
            let back = (me.2, me.3, me.0, me.1);
            let replies = || dirs.iter().filter(|e| session(e) == Some(back));
            for (msg, cookie) in &d.2.zc {
                if self.tx_ok.get(msg) == Some(&true) {
                    assert!(
                        replies().any(|e| e.2.acks.iter().any(|a| a.covers(*cookie))),
                        "node {}: ZC message {msg:#x} (cookie {cookie}) completed Ok without an \
                         ACK from node {} incarnation {:#x}",
                        me.0,
                        me.2,
                        me.3
                    );
                }
            }
            for a in &d.2.acks {
                for cookie in covered(a, 4096) {
                    assert!(
                        replies().any(|e| e.2.zc.iter().any(|z| z.1 == cookie)),
                        "node {} (incarnation {:#x}) acknowledged cookie {cookie} ({a:?}) that \
                         node {} incarnation {:#x} never asked for",
                        me.0,
                        me.1,
                        me.2,
                        me.3
                    );
                }
            }
        }
    }
}
