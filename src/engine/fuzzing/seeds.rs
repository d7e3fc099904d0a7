//! Valid starting inputs for each target, so the fuzzers begin past the handshake and with
//! well-framed messages. `tests/engine_fuzz_regress.rs` checks that `fuzz/seeds/<target>/` holds
//! exactly these (and rewrites them with `TDINAL_WRITE_SEEDS=1`).
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use alloc::vec;
use alloc::vec::Vec;

use super::single::{hello_bytes, peer_hello, ME, PEER_IPS};
use super::Target;
use crate::wire::acceptor::LNET_PROTO_ACCEPTOR_MAGIC;
use crate::wire::hello::LNET_PROTO_MAGIC;
use crate::wire::nid::LNET_PID_LUSTRE;
use crate::wire::{
    ConnReq, ConnType, Endian, KsockHdr, LnetHdr, LnetMsg, Net, Nid, ProtoVersion, WireHandle,
};

/// One seed: its target, a file name, the bytes.
pub struct Seed {
    pub target: Target,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

// ----------------------------------------------------------------------------------------------
// The single-engine input format: cfg[4] ctrl_len:u16le ctrl stream

fn single(cfg: [u8; 4], ctrl: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut v = cfg.to_vec();
    v.extend_from_slice(&(ctrl.len() as u16).to_le_bytes());
    v.extend_from_slice(ctrl);
    v.extend_from_slice(stream);
    v
}

/// Ops of the single-engine harness (`single.rs`).
mod op {
    /// Feed `n` (1..=128) stream bytes to live connection `sel` (copying).
    pub fn feed(sel: u8, n: u8) -> [u8; 3] {
        [0, sel, n - 1]
    }
    /// Write up to everything connection `sel` offers.
    pub fn drain(sel: u8) -> [u8; 3] {
        [3, sel, 255]
    }
    pub fn answer(idx: u8, kind: u8, a: u8, b: u8) -> [u8; 5] {
        [6, idx, kind, a, b]
    }
    /// 0 hold, 1 accept, 2 discard, 3 reject, 4 half sink, 5 16-byte sink.
    pub fn policy(p: u8) -> [u8; 2] {
        [7, p]
    }
    pub fn time(t: u8) -> [u8; 2] {
        [8, t]
    }
    /// Kind `k & 3` (PUT, GET, REPLY, ACK) to the peer, size `SIZES[s % 16]`.
    pub fn send(k: u8, s: u8) -> [u8; 3] {
        [9, k, s]
    }
    pub fn connect(idx: u8) -> [u8; 3] {
        [10, idx, 0]
    }
    pub fn release(idx: u8) -> [u8; 2] {
        [13, idx]
    }
    /// An asynchronous send: lend up to `n` (1..=128) bytes of connection `sel` now...
    pub fn lend(sel: u8, n: u8) -> [u8; 3] {
        [4, sel, n - 1]
    }
    /// ... and write them later (all of them).
    pub fn complete(sel: u8) -> [u8; 3] {
        [5, sel, 255]
    }
    /// Another incoming connection: `p % 4` picks the source port, `p >> 4` the peer.
    pub fn accept(p: u8) -> [u8; 2] {
        [11, p]
    }
    pub fn catch_up() -> [u8; 1] {
        [16]
    }
}

fn ops(list: &[&[u8]]) -> Vec<u8> {
    list.concat()
}

fn peer() -> Nid {
    Nid::new(Net::TCP0, PEER_IPS[0])
}

/// A message from the fuzzer-peer to us.
fn hdr(msg: LnetMsg, len: u32) -> LnetHdr {
    LnetHdr {
        dest_nid: ME,
        src_nid: peer(),
        dest_pid: LNET_PID_LUSTRE,
        src_pid: LNET_PID_LUSTRE,
        payload_length: len,
        msg,
    }
}

fn put(len: u32) -> LnetHdr {
    hdr(
        LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 0x1234,
            hdr_data: 0,
            ptl_index: 4,
            offset: 0,
        },
        len,
    )
}

fn get() -> LnetHdr {
    hdr(
        LnetMsg::Get {
            return_wmd: WireHandle {
                interface_cookie: 1,
                object_cookie: 2,
            },
            match_bits: 0x8000_0000_0000_0000,
            ptl_index: 0,
            src_offset: 0,
            sink_length: 272,
        },
        0,
    )
}

fn lnet_bytes(h: &LnetHdr) -> Vec<u8> {
    let mut b = vec![0u8; 72];
    h.encode(&mut b).unwrap();
    b
}

/// One message as the peer writes it: `[ksock header] LNet header payload`.
fn message(v: ProtoVersion, h: &LnetHdr, zc: [u64; 2], csum: bool, endian: Endian) -> Vec<u8> {
    let payload: Vec<u8> = (0..h.payload_length).map(|i| i as u8).collect();
    let lb = lnet_bytes(h);
    let mut out = Vec::new();
    if v != ProtoVersion::V1 {
        let mut k = KsockHdr {
            zc_cookies: zc,
            ..KsockHdr::lnet()
        };
        if csum {
            k.csum = k.compute_csum_v2(endian, &[&lb, &payload]);
        }
        out.extend_from_slice(&k.to_bytes(endian));
    }
    out.extend_from_slice(&lb);
    out.extend_from_slice(&payload);
    out
}

fn noop(ack: [u64; 2], csum: bool, endian: Endian) -> Vec<u8> {
    let mut k = KsockHdr {
        zc_cookies: ack,
        ..KsockHdr::noop(0)
    };
    if csum {
        k.csum = k.compute_csum_v2(endian, &[]);
    }
    k.to_bytes(endian).to_vec()
}

fn connreq_and_hello(v: ProtoVersion, ctype: ConnType, endian: Endian) -> Vec<u8> {
    let mut b = ConnReq::new(ME).to_bytes(endian).to_vec();
    b.extend_from_slice(&hello_bytes(&peer_hello(v, peer(), ctype, ME), endian));
    b
}

fn rx_seeds(target: Target, v: ProtoVersion) -> Vec<Seed> {
    let le = Endian::Little;
    let csum = v == ProtoVersion::V2;
    let mut seeds = Vec::new();
    // Passive CONTROL connection; a PUT, a GET, a keepalive NOOP, a PUT asking for a ZC-ACK
    // (cookie 2); the final feed takes it all.
    let mut stream = message(v, &put(100), [0, 0], csum, le);
    stream.extend(message(v, &get(), [0, 0], csum, le));
    if v == ProtoVersion::V3 {
        stream.extend(noop([0, 1], false, le));
    }
    stream.extend(message(v, &put(200), [2, 0], csum, le));
    seeds.push(Seed {
        target,
        name: "passive-put-get-zc",
        bytes: single([0x00, 0, 0, 0], &[], &stream),
    });
    // Held and answered later in pieces; our own sends, one large (ZC on V2/V3) that the
    // peer's NOOP then acknowledges (our first cookie is 2).
    let stream2 = [
        message(v, &put(300), [0, 0], false, le),
        if v == ProtoVersion::V1 {
            Vec::new()
        } else {
            noop([0, 2], false, le)
        },
        message(v, &put(5), [0, 0], false, le),
    ]
    .concat();
    let first = if v == ProtoVersion::V1 { 72 } else { 96 };
    let ctrl = ops(&[
        &op::policy(0),
        &op::send(0, 13),
        &op::send(1, 3),
        &op::lend(0, 100),
        &op::feed(0, first),
        &op::complete(0),
        &op::drain(0),
        &op::answer(0, 1, 2, 0),
        &op::feed(0, 100),
        &op::feed(0, 128),
        &op::feed(0, 72),
        &op::time(70),
        &op::catch_up(),
    ]);
    seeds.push(Seed {
        target,
        name: "passive-held-zc-ack",
        bytes: single([0x00, 0x01, 0, 0], &ctrl, &stream2),
    });
    // Active role, big-endian peer, checksums on (V2 checks them).
    let mut stream3 = message(v, &put(150), [0, 0], csum, Endian::Big);
    stream3.extend(message(v, &put(0), [0, 0], csum, Endian::Big));
    seeds.push(Seed {
        target,
        name: "active-big-endian-csum",
        bytes: single(
            [0x19, 0, 0, 0],
            &ops(&[&op::send(2, 9), &op::drain(0)]),
            &stream3,
        ),
    });
    seeds
}

fn handshake_seeds() -> Vec<Seed> {
    let le = Endian::Little;
    let t = Target::HandshakePassive;
    let mut seeds = Vec::new();
    for (name, v, ctype, endian) in [
        ("v3-control", ProtoVersion::V3, ConnType::Control, le),
        (
            "v3-bulk-in-be",
            ProtoVersion::V3,
            ConnType::BulkIn,
            Endian::Big,
        ),
        ("v2-any", ProtoVersion::V2, ConnType::Any, le),
        ("v1-any", ProtoVersion::V1, ConnType::Any, le),
    ] {
        let mut stream = connreq_and_hello(v, ctype, endian);
        stream.extend(message(v, &put(64), [0, 0], false, endian));
        seeds.push(Seed {
            target: t,
            name,
            bytes: single([0, 0, 0, 0], &[], &stream),
        });
    }
    // An unknown hello version (answered with our hello, ctype NONE), the LNet protocol query
    // (answered with the acceptor's version reply), and a second connection from the same peer.
    let mut unknown = ConnReq::new(ME).to_bytes(le).to_vec();
    unknown.extend_from_slice(&LNET_PROTO_MAGIC.to_le_bytes());
    unknown.extend_from_slice(&9u32.to_le_bytes());
    seeds.push(Seed {
        target: t,
        name: "unknown-version",
        bytes: single([0, 0, 0, 0], &[], &unknown),
    });
    seeds.push(Seed {
        target: t,
        name: "proto-query",
        bytes: single([0, 0, 0, 0], &[], &LNET_PROTO_MAGIC.to_le_bytes()),
    });
    let h = connreq_and_hello(ProtoVersion::V3, ConnType::Control, le);
    let stream = [h.clone(), h].concat();
    let ctrl = ops(&[
        &op::feed(0, 72),
        &op::accept(0x01),
        &op::feed(1, 72),
        &op::drain(0),
        &op::drain(1),
    ]);
    seeds.push(Seed {
        target: t,
        name: "duplicate",
        bytes: single([0, 0, 0, 0], &ctrl, &stream),
    });
    let mut bad = LNET_PROTO_ACCEPTOR_MAGIC.to_le_bytes().to_vec();
    bad.extend_from_slice(&2u32.to_le_bytes());
    seeds.push(Seed {
        target: t,
        name: "acceptor-version-2",
        bytes: single([0, 0, 0, 0], &[], &bad),
    });

    // Active: the reply hello for our CONTROL connection; a V1 fallback then its retry.
    let a = Target::HandshakeActive;
    for (name, v, cfg1) in [
        ("v3-reply", ProtoVersion::V3, 0u8),
        ("v2-reply", ProtoVersion::V2, 1),
        ("v1-reply", ProtoVersion::V1, 2),
    ] {
        let mut stream = hello_bytes(&peer_hello(v, peer(), ConnType::Control, ME), le);
        stream.extend(message(v, &put(10), [0, 0], false, le));
        seeds.push(Seed {
            target: a,
            name,
            bytes: single([0, cfg1, 0, 0], &ops(&[&op::send(0, 3)]), &stream),
        });
    }
    let mut stream = hello_bytes(
        &peer_hello(ProtoVersion::V1, peer(), ConnType::None, ME),
        le,
    );
    stream.extend(hello_bytes(
        &peer_hello(ProtoVersion::V1, peer(), ConnType::Control, ME),
        le,
    ));
    let ctrl = ops(&[
        &op::feed(0, 72),
        &op::release(0),
        &op::connect(0),
        &op::drain(0),
        &op::feed(0, 72),
        &op::send(0, 5),
        &op::drain(0),
    ]);
    seeds.push(Seed {
        target: a,
        name: "v1-fallback",
        bytes: single([0, 0, 0, 0], &ctrl, &stream),
    });
    seeds
}

/// Ops of the stateful harness (`stateful.rs`).
fn pair_seeds() -> Vec<Seed> {
    let t = Target::PairStateful;
    // send(from, x, s): x's low bits pick the destination, (x >> 2) & 3 the kind.
    let send = |from: u8, x: u8, s: u8| [0u8, from, x, s];
    let mut seeds = Vec::new();
    for (name, cfg) in [
        ("v3-v3", [0u8, 1, 0, 0, 0]),
        ("v3-v2-csum", [0, 2, 0, 5, 0]),
        ("v1-v3-bytewise", [2, 3, 2, 0, 0]),
        ("three-nodes", [1, 4, 0, 1, 0]),
    ] {
        let body = [
            &send(0, 0, 3)[..],
            &send(1, 0, 15)[..],
            &send(0, 4, 0)[..],
            &send(1, 8, 9)[..],
            &send(0, 12, 0)[..],
            &[7, 70],
            &send(0, 1, 11)[..],
        ]
        .concat();
        seeds.push(Seed {
            target: t,
            name,
            bytes: [&cfg[..], &body].concat(),
        });
    }
    // Hold a large message, reboot the sender silently, answer late, reset links.
    let body = [
        &[12u8, 1, 2][..],
        &send(0, 0, 15),
        &[9, 0, 0x00],
        &send(0, 0, 3),
        &[13, 1, 0, 0, 0],
        &[8, 1, 0],
        &[7, 100],
        &send(1, 0, 11),
        &[11, 0, 3, 2],
        &send(0, 0, 14),
    ]
    .concat();
    seeds.push(Seed {
        target: t,
        name: "hold-reboot-reset",
        bytes: [&[0u8, 5, 0, 0, 0][..], &body].concat(),
    });
    seeds
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut v = Vec::new();
    v.extend(rx_seeds(Target::RxV1, ProtoVersion::V1));
    v.extend(rx_seeds(Target::RxV2, ProtoVersion::V2));
    v.extend(rx_seeds(Target::RxV3, ProtoVersion::V3));
    v.extend(handshake_seeds());
    v.extend(pair_seeds());
    v
}
