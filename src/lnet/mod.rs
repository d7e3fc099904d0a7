//! The minimal LNet layer above the engine: enough for real work with a real Lustre node
//! (spec §8, §12). It answers pings (GET on portal 0, match bits `0x8000000000000000`) and sends
//! them; takes the discovery PUT a modern node pushes after its first ping and answers with an
//! LNet ACK; drops unmatched PUTs (the engine still acknowledges their zero-copy cookies); and
//! moves user PUT/GET data for tests, the demo and benchmarks. Sans-IO like the engine: it is
//! handed engine events and time, and calls the engine.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod idmap;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use idmap::IdMap;

use crate::engine::{Engine, Error, Event, LocalNi, RxId, RxSink, Time, TxId, TxPayload};
use crate::wire::lnet::LNET_PROTO_PING_MATCHBITS;
use crate::wire::nid::{LNET_MTU, LNET_RESERVED_PORTAL};
use crate::wire::ping::{
    encode_ping_info, feat, ping_info_size, NiStatus, PingInfo, LNET_NI_STATUS_UP,
};
use crate::wire::{ConnType, Endian, LnetHdr, LnetMsg, Nid, ProcessId, ProtoVersion, WireHandle};

/// `pi_features` we advertise: NI_STATUS (2) alone satisfies both Lustre 1.8 pingers (version must
/// be 1 or 2) and modern ones (NI_STATUS bit required); we do not claim multi-rail or discovery.
pub const PING_FEATURES: u32 = feat::NI_STATUS;
/// The largest discovery push we keep (a ping info with 16 entries is 272 bytes).
const MAX_PUSH: u32 = 64 * 1024;
/// Most receive buffers kept for reuse ([`Lnet::give_back`]), and their most bytes in all.
const SPARE_MAX: usize = 64;
const SPARE_BYTES_MAX: usize = 8 << 20;
/// A spare buffer serves a message of `len` bytes if it holds at most this many times as much
/// (or at most [`SPARE_SMALL`]): a small PUT does not pin a bulk-sized buffer.
const SPARE_FIT: usize = 4;
const SPARE_SMALL: usize = 4096;

/// What the LNet layer reports to its user.
#[derive(Debug)]
pub enum LnetEvent {
    /// A ping we sent was answered: the target's process ids (one per entry), or it failed.
    PingDone {
        op: u64,
        target: ProcessId,
        result: Result<Vec<(ProcessId, u32)>, Error>,
    },
    /// We answered a ping from `from`.
    PingServed {
        from: ProcessId,
    },
    /// A discovery push (PUT of ping info) arrived; its NIDs.
    PushReceived {
        from: ProcessId,
        nids: Vec<Nid>,
    },
    /// A user PUT arrived.
    PutReceived {
        from: ProcessId,
        portal: u32,
        match_bits: u64,
        hdr_data: u64,
        data: Vec<u8>,
    },
    /// A PUT we sent is done: acknowledged (`Ok(mlength)`), sent without ACK (`Ok(0)`), or failed.
    PutDone {
        op: u64,
        result: Result<u32, Error>,
    },
    /// A GET we sent got its REPLY (or failed).
    GetDone {
        op: u64,
        result: Result<Vec<u8>, Error>,
    },
    /// A message was dropped: unmatched, or addressed to another NID.
    Dropped {
        from: ProcessId,
        why: &'static str,
    },
    ConnUp {
        peer: ProcessId,
        ctype: ConnType,
        version: ProtoVersion,
    },
    ConnDown {
        peer: Option<ProcessId>,
        reason: Error,
    },
    VersionFallback {
        peer: ProcessId,
        from: ProtoVersion,
        to: ProtoVersion,
    },
    PeerDown {
        peer: ProcessId,
    },
}

enum Op {
    Ping {
        target: ProcessId,
        deadline: Time,
    },
    Get {
        deadline: Time,
    },
    /// A PUT waiting for its LNet ACK (or, without ACK, for its send to finish).
    Put {
        want_ack: bool,
    },
}

enum RxKind {
    Push {
        from: ProcessId,
        ack: Option<(WireHandle, u64)>,
    },
    UserPut {
        from: ProcessId,
        portal: u32,
        match_bits: u64,
        hdr_data: u64,
        ack: Option<WireHandle>,
    },
    Reply {
        op: u64,
    },
    Discard,
}

/// Counters of the LNet layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LnetStats {
    pub pings_served: u64,
    pub pushes: u64,
    pub puts_received: u64,
    pub put_bytes_received: u64,
    pub dropped: u64,
    pub ops_open: u64,
}

/// A receive sink the LNet layer can allocate itself (from a zeroed buffer) and read back once
/// the payload is in. Other sinks (LNet's own buffers, `crate::tdi::lent`) may share the
/// engine's sink type with variants of their own; those are never handed to this layer, and
/// [`OwnedSink::into_vec`] answers `None` for them.
pub trait OwnedSink: RxSink + From<Vec<u8>> {
    /// The received bytes' buffer (`None`: not a buffer this layer allocated).
    fn into_vec(self) -> Option<Vec<u8>>;
}

impl OwnedSink for Vec<u8> {
    fn into_vec(self) -> Option<Vec<u8>> {
        Some(self)
    }
}

/// The LNet layer of one NI. `P` is the engine's payload type, `S` its sink type.
pub struct Lnet<P, S = Vec<u8>> {
    ni: LocalNi,
    ping_seq: u32,
    next_cookie: u64,
    /// Per-message tables, keyed by ids that mostly grow and mostly finish oldest first:
    /// sorted `VecDeque`s that keep their buffers (no allocation per message, unlike B-trees).
    ops: IdMap<u64, Op>,
    /// Our sends that complete an op when they finish (PUT without ACK, failed GET/ping sends).
    tx_ops: IdMap<TxId, u64>,
    rx_kind: IdMap<RxId, RxKind>,
    served: BTreeMap<(u32, u64), Vec<u8>>,
    /// Receive buffers given back by the user ([`Lnet::give_back`]), reused as sinks.
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
    events: VecDeque<LnetEvent>,
    pub stats: LnetStats,
    _p: core::marker::PhantomData<(P, S)>,
}

type Eng<P, S> = Engine<P, S>;

impl<P: TxPayload + From<Vec<u8>>, S: OwnedSink> Lnet<P, S> {
    pub fn new(ni: LocalNi) -> Lnet<P, S> {
        Lnet {
            ni,
            ping_seq: 1,
            next_cookie: 1,
            ops: IdMap::new(),
            tx_ops: IdMap::new(),
            rx_kind: IdMap::new(),
            served: BTreeMap::new(),
            spare: Vec::new(),
            spare_bytes: 0,
            events: VecDeque::new(),
            stats: LnetStats::default(),
            _p: core::marker::PhantomData,
        }
    }

    pub fn poll_event(&mut self) -> Option<LnetEvent> {
        self.events.pop_front()
    }

    /// Gives back the buffer of a `PutReceived` (or `GetDone`) the user is done with: the next
    /// received payloads are read into it instead of a new allocation. Nothing of its old
    /// contents survives: a reused sink is cleared and zero-filled to the new length, exactly
    /// as a new one. Kept up to [`SPARE_MAX`] buffers and [`SPARE_BYTES_MAX`] bytes in all.
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0
            || cap > LNET_MTU as usize
            || self.spare.len() >= SPARE_MAX
            || self.spare_bytes.saturating_add(cap) > SPARE_BYTES_MAX
        {
            return;
        }
        buf.clear();
        self.spare_bytes = self.spare_bytes.saturating_add(cap);
        self.spare.push(buf);
    }

    /// Receive buffers kept for reuse.
    pub fn spare_buffers(&self) -> usize {
        self.spare.len()
    }

    /// A zeroed receive sink of `len` bytes: a spare buffer that fits, else a new one.
    fn sink(&mut self, len: u32) -> S {
        let len = len as usize;
        if len == 0 {
            return S::from(Vec::new());
        }
        let most = len.saturating_mul(SPARE_FIT).max(SPARE_SMALL);
        let fits = self
            .spare
            .iter()
            .rposition(|b| b.capacity() >= len && b.capacity() <= most);
        let buf = match fits {
            Some(i) => {
                let mut b = self.spare.swap_remove(i);
                self.spare_bytes = self.spare_bytes.saturating_sub(b.capacity());
                b.clear();
                b.resize(len, 0);
                b
            }
            None => vec![0u8; len],
        };
        S::from(buf)
    }

    /// Operations (pings, GETs, PUTs) still waiting for an answer.
    pub fn ops_open(&self) -> usize {
        self.ops.len()
    }

    /// An LNet header from us to `to`.
    fn header(&self, to: ProcessId, payload_length: u32, msg: LnetMsg) -> LnetHdr {
        LnetHdr {
            dest_nid: to.nid,
            src_nid: self.ni.nid,
            dest_pid: to.pid,
            src_pid: self.ni.pid,
            payload_length,
            msg,
        }
    }

    fn handle(&mut self) -> (WireHandle, u64) {
        let c = self.next_cookie;
        self.next_cookie = self.next_cookie.wrapping_add(1);
        (
            WireHandle {
                interface_cookie: self.ni.incarnation,
                object_cookie: c,
            },
            c,
        )
    }

    fn add_op(&mut self, cookie: u64, op: Op) {
        self.ops.insert(cookie, op);
        self.stats.ops_open = self.ops.len() as u64;
    }

    fn take_op(&mut self, cookie: u64) -> Option<Op> {
        let op = self.ops.remove(&cookie);
        self.stats.ops_open = self.ops.len() as u64;
        op
    }

    /// Our ping info: `0@lo` with the sequence number, then our NID, UP (spec §8.2, §12).
    pub fn ping_info(&mut self) -> Vec<u8> {
        self.ping_seq = self.ping_seq.wrapping_add(1).max(1);
        let entries = [
            NiStatus {
                nid: Nid::LO_0,
                status: self.ping_seq,
                msg_size: 0,
            },
            NiStatus {
                nid: self.ni.nid,
                status: LNET_NI_STATUS_UP,
                msg_size: 0,
            },
        ];
        let mut buf = vec![0u8; ping_info_size(entries.len()).unwrap_or(0)];
        let n = encode_ping_info(
            Endian::WIRE_DEFAULT,
            PING_FEATURES,
            self.ni.pid,
            &entries,
            &mut buf,
        )
        .unwrap_or(0);
        buf.truncate(n);
        buf
    }

    /// Pings `target` the way `lctl ping` does (a GET of its ping info). Answer: `PingDone`.
    pub fn ping(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        target: ProcessId,
        timeout_ms: u64,
    ) -> u64 {
        let (wmd, cookie) = self.handle();
        let hdr = self.header(
            target,
            0,
            LnetMsg::Get {
                return_wmd: wmd,
                match_bits: LNET_PROTO_PING_MATCHBITS,
                ptl_index: LNET_RESERVED_PORTAL,
                src_offset: 0,
                sink_length: 272,
            },
        );
        self.add_op(
            cookie,
            Op::Ping {
                target,
                deadline: now.plus_ms(timeout_ms),
            },
        );
        let tx = eng.send(now, target, hdr, None);
        self.tx_ops.insert(tx, cookie);
        cookie
    }

    /// Sends a PUT of `data` to `portal`/`match_bits` at `target`. Answer: `PutDone`.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        hdr_data: u64,
        data: impl Into<P>,
        want_ack: bool,
    ) -> u64 {
        let data: P = data.into();
        let (wmd, cookie) = self.handle();
        let hdr = self.header(
            target,
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            LnetMsg::Put {
                ack_wmd: if want_ack { wmd } else { WireHandle::NONE },
                match_bits,
                hdr_data,
                ptl_index: portal,
                offset: 0,
            },
        );
        self.add_op(cookie, Op::Put { want_ack });
        let tx = eng.send(now, target, hdr, Some(data));
        self.tx_ops.insert(tx, cookie);
        cookie
    }

    #[allow(clippy::too_many_arguments)] // LNetGet's own list: target, portal, bits, length, timeout
    /// Sends a GET of up to `len` bytes from `portal`/`match_bits` at `target`. Answer: `GetDone`.
    pub fn get(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        len: u32,
        timeout_ms: u64,
    ) -> u64 {
        let (wmd, cookie) = self.handle();
        let hdr = self.header(
            target,
            0,
            LnetMsg::Get {
                return_wmd: wmd,
                match_bits,
                ptl_index: portal,
                src_offset: 0,
                sink_length: len,
            },
        );
        self.add_op(
            cookie,
            Op::Get {
                deadline: now.plus_ms(timeout_ms),
            },
        );
        let tx = eng.send(now, target, hdr, None);
        self.tx_ops.insert(tx, cookie);
        cookie
    }

    /// Makes `data` the answer to GETs on `portal` with `match_bits`.
    pub fn serve(&mut self, portal: u32, match_bits: u64, data: Vec<u8>) {
        self.served.insert((portal, match_bits), data);
    }

    /// Fails every operation still waiting for an answer (shutdown): each gets its one
    /// `PingDone`/`PutDone`/`GetDone` with `Error::Shutdown`.
    pub fn shutdown(&mut self) {
        let open: Vec<u64> = self.ops.keys().copied().collect();
        for c in open {
            self.fail_op(c, Error::Shutdown);
        }
        self.tx_ops.clear();
    }

    /// Fails operations whose time is up.
    pub fn handle_timeout(&mut self, now: Time) {
        let late: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| match op {
                Op::Ping { deadline, .. } | Op::Get { deadline } => now >= *deadline,
                Op::Put { .. } => false,
            })
            .map(|(c, _)| *c)
            .collect();
        for c in late {
            self.fail_op(c, Error::Timeout("no answer"));
        }
    }

    fn fail_op(&mut self, cookie: u64, e: Error) {
        match self.take_op(cookie) {
            Some(Op::Ping { target, .. }) => self.events.push_back(LnetEvent::PingDone {
                op: cookie,
                target,
                result: Err(e),
            }),
            Some(Op::Get { .. }) => self.events.push_back(LnetEvent::GetDone {
                op: cookie,
                result: Err(e),
            }),
            Some(Op::Put { .. }) => self.events.push_back(LnetEvent::PutDone {
                op: cookie,
                result: Err(e),
            }),
            None => {}
        }
    }

    fn reply(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        to: ProcessId,
        req: &LnetHdr,
        dst_wmd: WireHandle,
        data: Vec<u8>,
    ) {
        let hdr = LnetHdr {
            dest_nid: req.src_nid,
            src_nid: self.ni.nid,
            dest_pid: req.src_pid,
            src_pid: self.ni.pid,
            payload_length: u32::try_from(data.len()).unwrap_or(u32::MAX),
            msg: LnetMsg::Reply { dst_wmd },
        };
        let payload = if data.is_empty() {
            None
        } else {
            Some(P::from(data))
        };
        eng.send(now, to, hdr, payload);
    }

    fn send_ack(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        to: ProcessId,
        wmd: WireHandle,
        match_bits: u64,
        mlength: u32,
    ) {
        let hdr = self.header(
            to,
            0,
            LnetMsg::Ack {
                dst_wmd: wmd,
                match_bits,
                mlength,
            },
        );
        eng.send(now, to, hdr, None);
    }

    fn drop_rx(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        rx: RxId,
        from: ProcessId,
        why: &'static str,
    ) {
        self.stats.dropped = self.stats.dropped.wrapping_add(1);
        self.events.push_back(LnetEvent::Dropped { from, why });
        self.rx_kind.insert(rx, RxKind::Discard);
        eng.recv(now, rx, None, 0);
    }

    /// Handles one engine event.
    pub fn handle_event(&mut self, eng: &mut Eng<P, S>, now: Time, ev: Event<P, S>) {
        match ev {
            Event::Rx { rx, peer, hdr } => self.on_rx(eng, now, rx, peer, hdr),
            Event::RxDone { rx, sink, result } => self.on_rx_done(eng, now, rx, sink, result),
            Event::TxDone { tx, result, .. } => {
                if let Some(cookie) = self.tx_ops.remove(&tx) {
                    match (result, self.ops.get(&cookie)) {
                        (Err(e), Some(_)) => self.fail_op(cookie, e),
                        (Ok(()), Some(Op::Put { want_ack: false })) => {
                            self.take_op(cookie);
                            self.events.push_back(LnetEvent::PutDone {
                                op: cookie,
                                result: Ok(0),
                            });
                        }
                        _ => {}
                    }
                }
            }
            Event::ConnUp {
                peer,
                ctype,
                version,
                ..
            } => self.events.push_back(LnetEvent::ConnUp {
                peer,
                ctype,
                version,
            }),
            Event::ConnDown { peer, reason, .. } => {
                self.events.push_back(LnetEvent::ConnDown { peer, reason })
            }
            Event::PeerDown { peer } => self.events.push_back(LnetEvent::PeerDown { peer }),
            Event::VersionFallback { peer, from, to } => self
                .events
                .push_back(LnetEvent::VersionFallback { peer, from, to }),
        }
    }

    fn on_rx(&mut self, eng: &mut Eng<P, S>, now: Time, rx: RxId, peer: ProcessId, hdr: LnetHdr) {
        let from = ProcessId::new(hdr.src_nid, hdr.src_pid);
        if hdr.dest_nid != self.ni.nid {
            if hdr.dest_nid.net() == self.ni.nid.net() {
                // Spec §1.9: same net but not us — the sender should have gone direct.
                self.rx_kind.insert(rx, RxKind::Discard);
                eng.reject(now, rx, "message for another NID on our net");
            } else {
                self.drop_rx(eng, now, rx, from, "routing disabled");
            }
            return;
        }
        let len = hdr.payload_length;
        match hdr.msg {
            LnetMsg::Get {
                return_wmd,
                match_bits,
                ptl_index,
                src_offset,
                sink_length,
            } => {
                self.rx_kind.insert(rx, RxKind::Discard);
                eng.recv(now, rx, None, 0);
                let data = if ptl_index == LNET_RESERVED_PORTAL
                    && match_bits == LNET_PROTO_PING_MATCHBITS
                {
                    self.stats.pings_served = self.stats.pings_served.wrapping_add(1);
                    self.events.push_back(LnetEvent::PingServed { from });
                    Some(self.ping_info())
                } else {
                    self.served.get(&(ptl_index, match_bits)).map(|d| {
                        let start = (src_offset as usize).min(d.len());
                        d.get(start..).unwrap_or(&[]).to_vec()
                    })
                };
                match data {
                    Some(mut d) => {
                        // The pinger's MD truncates; we send no more than it can take.
                        d.truncate(sink_length as usize);
                        self.reply(eng, now, peer, &hdr, return_wmd, d);
                    }
                    None => {
                        self.stats.dropped = self.stats.dropped.wrapping_add(1);
                        self.events.push_back(LnetEvent::Dropped {
                            from,
                            why: "GET matches nothing",
                        });
                    }
                }
            }
            LnetMsg::Put {
                ack_wmd,
                match_bits,
                hdr_data,
                ptl_index,
                ..
            } => {
                let ack = if ack_wmd.is_none() {
                    None
                } else {
                    Some(ack_wmd)
                };
                if ptl_index == LNET_RESERVED_PORTAL && match_bits == LNET_PROTO_PING_MATCHBITS {
                    if len > MAX_PUSH {
                        self.drop_rx(eng, now, rx, from, "discovery push too large");
                        return;
                    }
                    self.rx_kind.insert(
                        rx,
                        RxKind::Push {
                            from,
                            ack: ack.map(|w| (w, match_bits)),
                        },
                    );
                    let sink = self.sink(len);
                    eng.recv(now, rx, Some(sink), len);
                } else if ptl_index == LNET_RESERVED_PORTAL {
                    self.drop_rx(
                        eng,
                        now,
                        rx,
                        from,
                        "PUT on the reserved portal matches nothing",
                    );
                } else {
                    let len = len.min(LNET_MTU);
                    self.rx_kind.insert(
                        rx,
                        RxKind::UserPut {
                            from,
                            portal: ptl_index,
                            match_bits,
                            hdr_data,
                            ack,
                        },
                    );
                    let sink = self.sink(len);
                    eng.recv(now, rx, Some(sink), len);
                }
            }
            LnetMsg::Reply { dst_wmd } => {
                let op = dst_wmd.object_cookie;
                let known = dst_wmd.interface_cookie == self.ni.incarnation
                    && matches!(self.ops.get(&op), Some(Op::Ping { .. } | Op::Get { .. }));
                if known {
                    self.rx_kind.insert(rx, RxKind::Reply { op });
                    let sink = self.sink(len);
                    eng.recv(now, rx, Some(sink), len);
                } else {
                    self.drop_rx(eng, now, rx, from, "REPLY for an unknown MD");
                }
            }
            LnetMsg::Ack {
                dst_wmd, mlength, ..
            } => {
                self.rx_kind.insert(rx, RxKind::Discard);
                eng.recv(now, rx, None, 0);
                let op = dst_wmd.object_cookie;
                if dst_wmd.interface_cookie == self.ni.incarnation
                    && matches!(self.ops.get(&op), Some(Op::Put { want_ack: true }))
                {
                    self.take_op(op);
                    self.events.push_back(LnetEvent::PutDone {
                        op,
                        result: Ok(mlength),
                    });
                } else {
                    self.stats.dropped = self.stats.dropped.wrapping_add(1);
                    self.events.push_back(LnetEvent::Dropped {
                        from,
                        why: "ACK for an unknown MD",
                    });
                }
            }
            LnetMsg::Hello { .. } => {
                self.rx_kind.insert(rx, RxKind::Discard);
                eng.reject(now, rx, "HELLO is not a data message");
            }
        }
    }

    fn on_rx_done(
        &mut self,
        eng: &mut Eng<P, S>,
        now: Time,
        rx: RxId,
        sink: Option<S>,
        result: Result<u32, Error>,
    ) {
        let Some(kind) = self.rx_kind.remove(&rx) else {
            return;
        };
        let sink = sink.and_then(S::into_vec);
        match kind {
            RxKind::Discard => {}
            RxKind::Push { from, ack } => {
                if let (Ok(n), Some(buf)) = (result, sink) {
                    self.stats.pushes = self.stats.pushes.wrapping_add(1);
                    let bytes = buf.get(..n as usize).unwrap_or(&[]);
                    let nids = PingInfo::decode(bytes)
                        .map(|pi| pi.entries().map(|e| e.nid).collect())
                        .unwrap_or_default();
                    self.events
                        .push_back(LnetEvent::PushReceived { from, nids });
                    if let Some((wmd, mb)) = ack {
                        self.send_ack(eng, now, from, wmd, mb, n);
                    }
                }
            }
            RxKind::UserPut {
                from,
                portal,
                match_bits,
                hdr_data,
                ack,
            } => {
                if let (Ok(n), Some(mut buf)) = (result, sink) {
                    buf.truncate(n as usize);
                    self.stats.puts_received = self.stats.puts_received.wrapping_add(1);
                    self.stats.put_bytes_received =
                        self.stats.put_bytes_received.wrapping_add(u64::from(n));
                    if let Some(wmd) = ack {
                        self.send_ack(eng, now, from, wmd, match_bits, n);
                    }
                    self.events.push_back(LnetEvent::PutReceived {
                        from,
                        portal,
                        match_bits,
                        hdr_data,
                        data: buf,
                    });
                }
            }
            RxKind::Reply { op } => match (self.take_op(op), result, sink) {
                (Some(Op::Ping { target, .. }), Ok(n), Some(buf)) => {
                    let bytes = buf.get(..n as usize).unwrap_or(&[]);
                    let result = match PingInfo::decode(bytes) {
                        Ok(pi) if pi.features & feat::NI_STATUS != 0 || pi.features == 1 => Ok(pi
                            .entries()
                            .map(|e| (ProcessId::new(e.nid, pi.pid), e.status))
                            .collect()),
                        Ok(_) => Err(Error::Protocol("ping reply without NI status")),
                        Err(_) => Err(Error::Protocol("malformed ping reply")),
                    };
                    self.events
                        .push_back(LnetEvent::PingDone { op, target, result });
                }
                (Some(Op::Get { .. }), Ok(n), Some(mut buf)) => {
                    buf.truncate(n as usize);
                    self.events.push_back(LnetEvent::GetDone {
                        op,
                        result: Ok(buf),
                    });
                }
                (Some(op_kind), res, _) => {
                    let e = res.err().unwrap_or(Error::ConnClosed);
                    self.ops.insert(op, op_kind);
                    self.fail_op(op, e);
                }
                (None, _, _) => {}
            },
        }
    }
}
