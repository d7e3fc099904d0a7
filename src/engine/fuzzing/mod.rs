//! Fuzz harnesses for the engine, in one place for the cargo-fuzz targets
//! (`fuzz/fuzz_targets/engine_*.rs`, one line each) and for `tests/engine_fuzz_regress.rs`, which
//! replays the checked-in seeds and regressions and a few thousand pseudo-random inputs under
//! plain `cargo test`. Not part of the driver build.
//!
//! Every harness decodes its input with a [`Cursor`] (running out of bytes ends the run), drives
//! engines through their upper and runtime interfaces only, and panics on any violation of the
//! engine's contract (`docs/upper-interface.md`):
//!
//! - every `send` gets exactly one `TxDone`, with its payload handed back unchanged;
//! - every `Rx` is answered exactly once by the harness and gets exactly one `RxDone`, never before
//!   the answer, with the sink handed back iff one was given and `Ok(n)`, `n = min(mlen, sink,
//!   rlen)`;
//! - the gauges in `engine.stats` always agree with what the harness counts, and after `shutdown`
//!   and the release of every closed connection they are zero and the engine is idle;
//! - what the engine writes on a connection parses: one connreq + hello (active) or one hello /
//!   acceptor reply (passive), then well-framed messages of the negotiated version whose headers
//!   and payloads are exactly what was sent, in send order, each at most once, with correct V2
//!   checksums.
//!
//! Targets: [`Target`]. Input formats: `single.rs` (one engine, the fuzzer is the peer) and
//! `stateful.rs` (two or three engines through [`super::pair::Sim`]); [`seeds`] builds valid
//! starting inputs for each.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::pair::SimEngine;
use super::zc::{acks_of, Acks};
use super::{Error, RxId, TxId};
use crate::wire::acceptor::{CONNREQ_SIZE, LNET_PROTO_ACCEPTOR_MAGIC};
use crate::wire::ksock::KSOCK_HDR_SIZE;
use crate::wire::lnet::LNET_HDR_SIZE;
use crate::wire::{
    ConnReq, ConnType, Endian, Hello, KsockHdr, KsockMsgType, LnetHdr, LnetMsg, Nid, ProcessId,
    ProtoVersion, WireError, WireHandle,
};

pub mod seeds;
mod single;
mod stateful;

/// The engine fuzz targets (the cargo-fuzz binary of each has the same name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An established V1 connection; the input is the rest of the peer's stream.
    RxV1,
    RxV2,
    RxV3,
    /// A freshly accepted connection; the input is the peer's connreq, hello and what follows.
    HandshakePassive,
    /// A connection we dialled; the input is the peer's reply hello and what follows.
    HandshakeActive,
    /// Two or three engines over the simulated network, driven by an op sequence.
    PairStateful,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::RxV1,
        Target::RxV2,
        Target::RxV3,
        Target::HandshakePassive,
        Target::HandshakeActive,
        Target::PairStateful,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::RxV1 => "engine_rx_v1",
            Target::RxV2 => "engine_rx_v2",
            Target::RxV3 => "engine_rx_v3",
            Target::HandshakePassive => "engine_handshake_passive",
            Target::HandshakeActive => "engine_handshake_active",
            Target::PairStateful => "engine_pair_stateful",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Runs one input through a target's harness; panics on a contract violation.
pub fn run(target: Target, data: &[u8]) {
    match target {
        Target::RxV1 => single::run(single::Mode::Rx(ProtoVersion::V1), data),
        Target::RxV2 => single::run(single::Mode::Rx(ProtoVersion::V2), data),
        Target::RxV3 => single::run(single::Mode::Rx(ProtoVersion::V3), data),
        Target::HandshakePassive => single::run(single::Mode::Passive, data),
        Target::HandshakeActive => single::run(single::Mode::Active, data),
        Target::PairStateful => stateful::run(data),
    }
}

// ----------------------------------------------------------------------------------------------
// Input decoding

/// Reads the fuzzer's bytes front to back. Every read may come up empty: the harness then ends
/// the run (or uses a default, for configuration bytes).
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0 }
    }
    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    /// A configuration byte: 0 when the input is exhausted.
    pub fn cfg(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = &self.data[self.pos..end];
        self.pos = end;
        s
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
    pub fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.data.len());
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// A chunk size from one byte: 1..=128 bytes, then 64-byte steps to 4 KiB, then KiB steps to
/// 63 KiB, and 255 = everything.
pub fn size_code(b: u8) -> usize {
    match b {
        0..=127 => usize::from(b) + 1,
        128..=191 => (usize::from(b) - 127) * 64,
        192..=254 => (usize::from(b) - 191) * 1024,
        255 => usize::MAX,
    }
}

/// Payload sizes the harnesses send: the edges of `min_bulk` (1024 with 96 bytes of headers) and
/// of `zc_min_payload` (16384, floor 2048).
pub const SIZES: [usize; 16] = [
    0, 1, 7, 100, 927, 928, 1000, 2047, 2048, 4096, 16383, 16384, 16385, 30000, 40000, 65536,
];

// ----------------------------------------------------------------------------------------------
// Messages the harnesses send: the id rides in the header, the payload is a pattern of the id

/// An LNet header of kind `kind % 4` (PUT, GET, REPLY, ACK) carrying message id `id`. GET and
/// ACK have no payload, so `len` is ignored for them.
pub fn make_hdr(kind: u8, from: ProcessId, to: ProcessId, len: u32, id: u64) -> LnetHdr {
    let (payload_length, msg) = match kind % 4 {
        0 => (
            len,
            LnetMsg::Put {
                ack_wmd: WireHandle {
                    interface_cookie: 7,
                    object_cookie: id ^ 0x5555,
                },
                match_bits: id,
                hdr_data: !id,
                ptl_index: 4,
                offset: 0,
            },
        ),
        1 => (
            0,
            LnetMsg::Get {
                return_wmd: WireHandle {
                    interface_cookie: 1,
                    object_cookie: 2,
                },
                match_bits: id,
                ptl_index: 0,
                src_offset: 0,
                sink_length: len,
            },
        ),
        2 => (
            len,
            LnetMsg::Reply {
                dst_wmd: WireHandle {
                    interface_cookie: 3,
                    object_cookie: id,
                },
            },
        ),
        _ => (
            0,
            LnetMsg::Ack {
                dst_wmd: WireHandle {
                    interface_cookie: 9,
                    object_cookie: 9,
                },
                match_bits: id,
                mlength: len,
            },
        ),
    };
    LnetHdr {
        dest_nid: to.nid,
        src_nid: from.nid,
        dest_pid: to.pid,
        src_pid: from.pid,
        payload_length,
        msg,
    }
}

/// The message id [`make_hdr`] put in `hdr`.
pub fn msg_id(hdr: &LnetHdr) -> u64 {
    match hdr.msg {
        LnetMsg::Put { match_bits, .. }
        | LnetMsg::Get { match_bits, .. }
        | LnetMsg::Ack { match_bits, .. } => match_bits,
        LnetMsg::Reply { dst_wmd } => dst_wmd.object_cookie,
        LnetMsg::Hello { incarnation, .. } => incarnation,
    }
}

/// Byte `i` of message `id`'s payload: changes with the id and with the position, so a
/// misplaced, shifted or foreign byte shows.
pub fn pattern_byte(id: u64, i: usize) -> u8 {
    let block = (i as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (block >> ((i & 7) * 8)) as u8 ^ (i as u8)
}

pub fn pattern(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| pattern_byte(id, i)).collect()
}

/// Whether `bytes` is the payload of message `id` from offset `at` on.
pub fn is_pattern(id: u64, at: usize, bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .all(|(k, b)| *b == pattern_byte(id, at + k))
}

// ----------------------------------------------------------------------------------------------
// Exactly-once bookkeeping of one engine's upper interface

/// How the harness answered an `Rx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `recv` with a sink of this many bytes (or none: discard) and this `mlen`.
    Recv {
        sink: Option<usize>,
        mlen: u32,
    },
    Reject,
}

struct SendRec {
    msg: u64,
    payload: Option<usize>,
    done: bool,
}

struct RxRec {
    hdr: LnetHdr,
    answer: Option<Answer>,
    done: bool,
}

/// What one engine's upper layer was told and did, checked as it happens.
#[derive(Default)]
pub struct Books {
    sends: BTreeMap<TxId, SendRec>,
    rx: BTreeMap<RxId, RxRec>,
    tx_done: u64,
    rx_done: u64,
}

impl Books {
    /// `send` returned `tx` for message `msg` with a payload of `payload` bytes (or none).
    pub fn sent(&mut self, tx: TxId, msg: u64, payload: Option<usize>) {
        let old = self.sends.insert(
            tx,
            SendRec {
                msg,
                payload,
                done: false,
            },
        );
        assert!(old.is_none(), "send returned {tx:?} twice");
    }

    pub fn rx(&mut self, rx: RxId, hdr: LnetHdr) {
        let old = self.rx.insert(
            rx,
            RxRec {
                hdr,
                answer: None,
                done: false,
            },
        );
        assert!(old.is_none(), "Rx {rx:?} announced twice");
    }

    /// The harness answers `rx`; returns its header.
    pub fn answer(&mut self, rx: RxId, a: Answer) -> LnetHdr {
        let r = self
            .rx
            .get_mut(&rx)
            .unwrap_or_else(|| panic!("answering unknown {rx:?}"));
        assert!(r.answer.is_none(), "harness answered {rx:?} twice");
        r.answer = Some(a);
        r.hdr
    }

    pub fn header(&self, rx: RxId) -> Option<LnetHdr> {
        self.rx.get(&rx).map(|r| r.hdr)
    }

    /// Checks an `RxDone`; returns the header and the number of bytes received into the sink.
    pub fn rx_done(
        &mut self,
        rx: RxId,
        sink: Option<&Vec<u8>>,
        result: &Result<u32, Error>,
    ) -> (LnetHdr, u32) {
        let r = self
            .rx
            .get_mut(&rx)
            .unwrap_or_else(|| panic!("RxDone for {rx:?}, never announced by an Rx"));
        let a = r
            .answer
            .unwrap_or_else(|| panic!("RxDone for {rx:?} before the upper layer answered"));
        assert!(!r.done, "second RxDone for {rx:?}: {result:?}");
        r.done = true;
        self.rx_done += 1;
        let rlen = r.hdr.payload_length;
        let (given, mlen) = match a {
            Answer::Recv { sink, mlen } => (sink, mlen),
            Answer::Reject => (None, 0),
        };
        assert_eq!(
            sink.map(|s| s.len()),
            given,
            "RxDone for {rx:?} must hand back exactly the sink given ({a:?}), result {result:?}"
        );
        let mut n = 0;
        if let Ok(got) = result {
            assert!(a != Answer::Reject, "a rejected {rx:?} completed with Ok");
            let cap = u32::try_from(given.unwrap_or(0)).unwrap_or(u32::MAX);
            let want = mlen.min(rlen).min(cap);
            assert_eq!(*got, want, "{rx:?}: Ok(n) with n != min(mlen, rlen, sink)");
            n = *got;
        }
        (r.hdr, n)
    }

    /// Checks a `TxDone`: known, first, payload back unchanged (it is the pattern of its id).
    /// Returns the message id.
    pub fn tx_done(
        &mut self,
        tx: TxId,
        payload: Option<&Vec<u8>>,
        result: &Result<(), Error>,
    ) -> u64 {
        let s = self
            .sends
            .get_mut(&tx)
            .unwrap_or_else(|| panic!("TxDone for {tx:?}, never sent"));
        assert!(!s.done, "second TxDone for {tx:?}: {result:?}");
        s.done = true;
        self.tx_done += 1;
        assert_eq!(
            payload.map(|p| p.len()),
            s.payload,
            "TxDone for {tx:?} must hand back the payload given"
        );
        if let Some(p) = payload {
            assert!(is_pattern(s.msg, 0, p), "{tx:?}: payload altered");
        }
        s.msg
    }

    /// Rx announced but not answered yet, oldest first.
    pub fn unanswered(&self) -> Vec<RxId> {
        self.rx
            .iter()
            .filter(|(_, r)| r.answer.is_none())
            .map(|(k, _)| *k)
            .collect()
    }

    /// The gauges agree with what the upper layer saw (call with no event pending).
    pub fn check_gauges(&self, e: &SimEngine, what: &str) {
        let s = e.stats;
        let rx_open = self.rx.len() as u64 - self.rx_done;
        assert_eq!(s.rx_msgs_open, rx_open, "{what}: rx_msgs_open gauge");
        let tx_open = self.sends.len() as u64 - self.tx_done;
        assert_eq!(s.tx_msgs_open(), tx_open, "{what}: tx_msgs_open gauge");
        assert_eq!(
            s.tx_msgs_started,
            self.sends.len() as u64,
            "{what}: tx_msgs_started"
        );
        assert!(s.zc_waiting <= tx_open, "{what}: zc_waiting > open sends");
    }

    /// After shutdown and every release: everything finalized exactly once, nothing held.
    pub fn check_final(&self, e: &SimEngine, what: &str) {
        for (tx, s) in &self.sends {
            assert!(s.done, "{what}: {tx:?} never got its TxDone");
        }
        for (rx, r) in &self.rx {
            assert!(r.answer.is_some(), "{what}: harness left {rx:?} unanswered");
            assert!(
                r.done,
                "{what}: {rx:?} answered {:?} but never got its RxDone",
                r.answer
            );
        }
        self.check_gauges(e, what);
        let s = e.stats;
        assert_eq!(s.conns_open, 0, "{what}: conns_open after shutdown: {s:?}");
        assert_eq!(s.peers, 0, "{what}: peers after shutdown: {s:?}");
        assert_eq!(s.rx_msgs_open, 0, "{what}: rx_msgs_open after shutdown");
        assert_eq!(s.zc_waiting, 0, "{what}: zc_waiting after shutdown");
        assert_eq!(s.tx_msgs_open(), 0, "{what}: tx_msgs_open after shutdown");
        assert!(e.is_idle(), "{what}: engine not idle after shutdown");
        assert_eq!(
            e.poll_timeout(),
            None,
            "{what}: idle engine still wants a timer"
        );
    }
}

// ----------------------------------------------------------------------------------------------
// What an engine wrote on one connection

/// Which end of the connection wrote the bytes.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// We dialled `peer`: connreq for its NID, then our hello.
    Active { peer: Nid },
    /// We accepted: an acceptor reply, or our hello.
    Passive,
}

/// What the writer is known to have sent: message id → header (payload = pattern of the id).
pub type SentHeaders = BTreeMap<u64, LnetHdr>;

/// What an engine wrote on one connection, once checked.
#[derive(Default, Debug)]
pub struct Written {
    /// Our hello, when it was written whole.
    pub hello: Option<Hello>,
    /// The LNet messages that asked for a ZC-ACK: (message id, cookie).
    pub zc: Vec<(u64, u64)>,
    /// The ZC-ACKs it carried (NOOPs and piggybacked), keepalives excluded.
    pub acks: Vec<Acks>,
}

/// Parses everything an engine wrote on one connection and checks it (see the module doc).
/// `seen` collects the message ids across connections (none may go out twice); `verify_csum`
/// is off when `inject_csum_error` may have corrupted one on purpose. A final partial unit is
/// fine (a write cut short by a close).
pub fn check_output(
    out: &[u8],
    role: Role,
    me: Nid,
    sent: &SentHeaders,
    seen: &mut BTreeSet<u64>,
    verify_csum: bool,
) -> Result<Written, String> {
    let mut w = Written::default();
    let mut at = 0usize;
    if let Role::Active { peer } = role {
        let Some(req) = out.get(..CONNREQ_SIZE) else {
            return Ok(w);
        };
        match ConnReq::decode(req) {
            Ok((r, Endian::Little)) if r.nid == peer => {}
            other => {
                return Err(format!(
                    "active side's connreq: {other:?} (dialled {peer:?})"
                ))
            }
        }
        at = CONNREQ_SIZE;
    } else if out.len() >= 4 && out[..4] == LNET_PROTO_ACCEPTOR_MAGIC.to_le_bytes() {
        // The acceptor's version reply: {magic, 1, NID 0}, and nothing after it.
        if out.len() > CONNREQ_SIZE {
            return Err(format!("{} bytes after the acceptor reply", out.len() - 16));
        }
        return match ConnReq::decode(out) {
            Ok((r, _)) if r == ConnReq::version_reply() => Ok(w),
            Err(WireError::Short { .. }) => Ok(w),
            other => Err(format!("acceptor reply: {other:?}")),
        };
    }
    let hello = match Hello::decode(&out[at..]) {
        Ok((h, Endian::Little, n)) => {
            at += n;
            h
        }
        Err(WireError::Short { .. }) => return Ok(w),
        other => return Err(format!("our hello at byte {at}: {other:?}")),
    };
    if hello.src_nid != me || !hello.ips.is_empty() {
        return Err(format!("our hello says {hello:?}"));
    }
    w.hello = Some(hello);
    if hello.ctype == ConnType::None {
        if matches!(role, Role::Active { .. }) {
            return Err("active side sent ctype NONE".into());
        }
        if at != out.len() {
            return Err(format!("{} bytes after a refusing hello", out.len() - at));
        }
        return Ok(w);
    }
    check_messages(
        &out[at..],
        at,
        hello.version,
        sent,
        seen,
        verify_csum,
        &mut w,
    )?;
    Ok(w)
}

fn check_messages(
    out: &[u8],
    base: usize,
    v: ProtoVersion,
    sent: &SentHeaders,
    seen: &mut BTreeSet<u64>,
    verify_csum: bool,
    w: &mut Written,
) -> Result<(), String> {
    let mut at = 0usize;
    let mut last_id: Option<u64> = None;
    loop {
        let start = at;
        let mut ksock = None;
        if v != ProtoVersion::V1 {
            let Some(kb) = out.get(at..at + KSOCK_HDR_SIZE) else {
                return Ok(());
            };
            let k = KsockHdr::decode(kb, Endian::Little)
                .map_err(|e| format!("ksock header at byte {}: {e:?}", base + at))?;
            at += KSOCK_HDR_SIZE;
            if v == ProtoVersion::V3 && k.csum != 0 {
                return Err(format!(
                    "V3 message with a checksum at byte {}",
                    base + start
                ));
            }
            if k.msg_type == KsockMsgType::Noop {
                if v == ProtoVersion::V2 && k.csum != 0 && verify_csum {
                    let c = k.compute_csum_v2(Endian::Little, &[]);
                    if c != k.csum {
                        return Err(format!("NOOP checksum {:#x} != {c:#x}", k.csum));
                    }
                }
                if k.zc_cookies[1] == 0 {
                    return Err(format!("NOOP without an ACK at byte {}", base + start));
                }
                match acks_of(&k, v == ProtoVersion::V3) {
                    Ok(Acks::Keepalive) => {}
                    Ok(a) => w.acks.push(a),
                    Err(e) => return Err(format!("our NOOP at byte {}: {e}", base + start)),
                }
                continue;
            }
            if k.zc_cookies[0] == 1 {
                return Err("LNET message requesting the keepalive cookie".into());
            }
            match acks_of(&k, v == ProtoVersion::V3) {
                Ok(Acks::Nothing) => {}
                Ok(a) => w.acks.push(a),
                Err(e) => return Err(format!("our LNET header at byte {}: {e}", base + start)),
            }
            ksock = Some(k);
        }
        let Some(lb) = out.get(at..at + LNET_HDR_SIZE) else {
            return Ok(());
        };
        let hdr =
            LnetHdr::decode(lb).map_err(|e| format!("LNet header at byte {}: {e:?}", base + at))?;
        hdr.validate()
            .map_err(|e| format!("LNet header at byte {}: {e:?}", base + at))?;
        at += LNET_HDR_SIZE;
        let id = msg_id(&hdr);
        match sent.get(&id) {
            Some(h) if *h == hdr => {}
            other => {
                return Err(format!(
                    "unknown or altered message {hdr:?} (sent {other:?})"
                ))
            }
        }
        if !seen.insert(id) {
            return Err(format!("message {id:#x} written twice"));
        }
        if let Some(k) = ksock.filter(|k| k.zc_cookies[0] != 0) {
            w.zc.push((id, k.zc_cookies[0]));
        }
        if last_id.is_some_and(|l| l > id) {
            return Err(format!(
                "message {id:#x} overtook an earlier one on its connection"
            ));
        }
        last_id = Some(id);
        let len = hdr.payload_length as usize;
        let body = out.get(at..).unwrap_or(&[]);
        let body = &body[..body.len().min(len)];
        if !is_pattern(id, 0, body) {
            return Err(format!("payload of message {id:#x} altered"));
        }
        if body.len() < len {
            return Ok(());
        }
        at += len;
        if let Some(k) = ksock {
            if v == ProtoVersion::V2 && k.csum != 0 && verify_csum {
                let c = k.compute_csum_v2(Endian::Little, &[lb, body]);
                if c != k.csum {
                    return Err(format!("V2 checksum {:#x} != {c:#x} on {id:#x}", k.csum));
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// What the peer sent on one connection (the bytes the engine consumed)

/// The peer's side of a connection as far as it parses: its hello, the ZC-ACK requests of its
/// LNet messages and the ZC-ACKs it sent. Parsing stops at the first thing that does not parse
/// (the engine closed the connection there).
#[derive(Default, Debug)]
pub struct PeerSent {
    pub hello: Option<Hello>,
    pub requests: BTreeSet<u64>,
    pub acks: Vec<Acks>,
}

pub fn parse_input(inp: &[u8], passive: bool) -> PeerSent {
    let mut p = PeerSent::default();
    let mut at = 0usize;
    if passive {
        if ConnReq::decode(inp).is_err() {
            return p;
        }
        at = CONNREQ_SIZE;
    }
    let Ok((hello, endian, n)) = Hello::decode(&inp[at..]) else {
        return p;
    };
    at += n;
    p.hello = Some(hello);
    if hello.ctype == ConnType::None {
        return p;
    }
    let v = hello.version;
    loop {
        if v != ProtoVersion::V1 {
            let Some(Ok(k)) = inp
                .get(at..at + KSOCK_HDR_SIZE)
                .map(|b| KsockHdr::decode(b, endian))
            else {
                return p;
            };
            at += KSOCK_HDR_SIZE;
            match acks_of(&k, v == ProtoVersion::V3) {
                Ok(Acks::Nothing | Acks::Keepalive) => {}
                Ok(a) => p.acks.push(a),
                Err(_) => return p,
            }
            if k.msg_type == KsockMsgType::Noop {
                continue;
            }
            if k.zc_cookies[0] != 0 {
                p.requests.insert(k.zc_cookies[0]);
            }
        }
        let Some(Ok(hdr)) = inp.get(at..at + LNET_HDR_SIZE).map(LnetHdr::decode) else {
            return p;
        };
        if hdr.validate().is_err() {
            return p;
        }
        at += LNET_HDR_SIZE + hdr.payload_length as usize;
        if at > inp.len() {
            return p;
        }
    }
}

/// The cookies an ACK covers (at most `limit` of them; a range beyond that is reported as is).
pub fn covered(a: &Acks, limit: u64) -> Vec<u64> {
    match *a {
        Acks::Nothing | Acks::Keepalive => Vec::new(),
        Acks::One(c) => alloc::vec![c],
        Acks::Pair(x, y) => alloc::vec![x, y],
        Acks::Range(lo, hi) => (lo..=hi).take(limit as usize).collect(),
    }
}
