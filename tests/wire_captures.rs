//! The two real Lustre 2.16.1 captures in `tests/data/captures/` (from `shared/captures/`) decoded end to end with the wire
//! layer, following the protocol the way a receiver does: connreq (active side only), hello,
//! then ksock header → (LNET) LNet header → payload, repeatedly. Every structure must decode to
//! the values the spec's §12 lists, and re-encoding it must give back the captured bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use support::tcp::{self, Stream};
use tdinal::wire::hello::HELLO_V2_SIZE;
use tdinal::wire::ksock::KSOCK_HDR_SIZE;
use tdinal::wire::lnet::{LNET_HDR_SIZE, LNET_PROTO_PING_MATCHBITS};
use tdinal::wire::nid::{LNET_PID_LUSTRE, LNET_RESERVED_PORTAL};
use tdinal::wire::ping::{feat, PingInfo, LNET_NI_STATUS_UP};
use tdinal::wire::{
    ConnReq, ConnType, Endian, Hello, KsockHdr, KsockMsgType, LnetHdr, LnetMsg, Nid, ProtoVersion,
    WireError,
};

const LNET_PORT: u16 = 988;
/// Payloads from this size up are zero-copy candidates on Linux (`zc_min_payload`, spec §4.3).
const ZC_MIN_PAYLOAD: u32 = 16 * 1024;

fn capture_path(name: &str) -> PathBuf {
    // The captures ship with the repo (tests/data/captures, copied from shared/captures, the
    // real Lustre 2.16.1 traffic the project was given as test vectors).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join("captures")
        .join(name);
    assert!(path.exists(), "capture {} not found", path.display());
    path
}

fn streams_of(name: &str) -> Vec<Stream> {
    let capture = support::pcap::read_file(&capture_path(name)).unwrap();
    let segments = tcp::segments(&capture);
    let streams: Vec<Stream> = tcp::reassemble(&segments)
        .into_iter()
        .filter(|s| s.key.src.port == LNET_PORT || s.key.dst.port == LNET_PORT)
        .filter(|s| !s.data.is_empty())
        .collect();
    for s in &streams {
        assert!(s.holes.is_empty(), "{}: holes {:?}", s.key, s.holes);
        assert_eq!(s.conflicting_bytes, 0, "{}: retransmission differs", s.key);
    }
    streams
}

fn nid_of(ip: [u8; 4]) -> Nid {
    Nid::new(tdinal::wire::Net::TCP0, u32::from_be_bytes(ip))
}

/// One ksock message as found in a stream.
#[derive(Debug)]
struct Message {
    /// Offset of the ksock header in the stream.
    at: usize,
    ksock: KsockHdr,
    lnet: Option<LnetHdr>,
    payload: Range<usize>,
}

/// What a stream held, in order.
#[derive(Debug, Default)]
struct Walk {
    connreq: Option<(ConnReq, Endian)>,
    hello: Option<(Hello, Endian)>,
    /// Where message decoding started (0 for streams captured from their SYN).
    sync_at: usize,
    messages: Vec<Message>,
}

/// Decodes one ksock message at `at`, checks that re-encoding its headers gives back the
/// captured bytes, and returns it with the offset of the next message. `None` when the bytes
/// there are not a whole valid message.
fn message_at(data: &[u8], at: usize, endian: Endian) -> Option<(Message, usize)> {
    let rest = data.get(at..)?;
    let ksock = KsockHdr::decode(rest, endian).ok()?;
    let ksock_bytes = &rest[..KSOCK_HDR_SIZE];
    assert_eq!(
        &ksock.to_bytes(endian)[..],
        ksock_bytes,
        "ksock re-encode at {at}"
    );
    match ksock.msg_type {
        KsockMsgType::Noop => {
            let end = at + KSOCK_HDR_SIZE;
            Some((
                Message {
                    at,
                    ksock,
                    lnet: None,
                    payload: end..end,
                },
                end,
            ))
        }
        KsockMsgType::Lnet => {
            let lnet_bytes = rest.get(KSOCK_HDR_SIZE..KSOCK_HDR_SIZE + LNET_HDR_SIZE)?;
            let lnet = LnetHdr::decode(lnet_bytes).ok()?;
            lnet.validate().ok()?;
            let start = at + KSOCK_HDR_SIZE + LNET_HDR_SIZE;
            let end = start + lnet.payload_length as usize;
            if end > data.len() {
                return None;
            }
            Some((
                Message {
                    at,
                    ksock,
                    lnet: Some(lnet),
                    payload: start..end,
                },
                end,
            ))
        }
    }
}

/// Is a plausible message boundary at `at`? Used only for streams captured mid-connection.
///
/// A random position inside a payload could happen to look like a ksock header, so a candidate
/// must pass every check a receiver makes (ksock type, LNet type, payload-length rules) *and*
/// be followed by a second valid message, or by the exact end of the capture. NOOPs must carry
/// an ACK or keepalive cookie and no checksum (V3), LNET messages must name tcp NIDs — bulk
/// payload bytes fail those tests with overwhelming probability.
fn plausible_boundary(data: &[u8], at: usize, endian: Endian) -> bool {
    let looks_real = |m: &Message| match &m.lnet {
        None => m.ksock.csum == 0 && m.ksock.zc_cookies[1] != 0,
        Some(h) => {
            h.src_nid.lnd() == tdinal::wire::nid::lnd::SOCKLND
                && h.dest_nid.lnd() == tdinal::wire::nid::lnd::SOCKLND
        }
    };
    let Some((first, next)) = message_at(data, at, endian) else {
        return false;
    };
    if !looks_real(&first) {
        return false;
    }
    if next == data.len() {
        return true;
    }
    matches!(message_at(data, next, endian), Some((second, _)) if looks_real(&second))
}

/// Finds the first message boundary of a mid-stream capture: the stream bytes start wherever
/// the capture started, possibly inside a 64 KiB payload. Senders write each message starting
/// a new `send` call, so message starts coincide with TCP segment starts far more often than
/// not; we try each captured segment start in order and take the first where
/// [`plausible_boundary`] holds in either byte order. If no segment start qualifies, fall back
/// to scanning every byte offset.
fn find_sync(stream: &Stream) -> Option<(usize, Endian)> {
    let candidates = stream
        .segment_starts
        .iter()
        .copied()
        .chain(0..stream.data.len());
    for at in candidates {
        for endian in [Endian::Little, Endian::Big] {
            if plausible_boundary(&stream.data, at, endian) {
                return Some((at, endian));
            }
        }
    }
    None
}

/// Walks a whole stream. Streams with their SYN start at the connreq (active side, i.e. the
/// side that connected to port 988) or at the hello (passive side); mid-stream captures start
/// at the first boundary [`find_sync`] finds. Every byte from there to the end must belong to a
/// decoded message.
fn walk(stream: &Stream) -> Walk {
    let data = &stream.data;
    let mut w = Walk::default();
    let endian;
    if stream.syn_seen {
        let mut at = 0;
        if stream.key.dst.port == LNET_PORT {
            let (req, e) = ConnReq::decode(data).unwrap();
            assert_eq!(
                &req.to_bytes(e)[..],
                &data[..16],
                "{}: connreq re-encode",
                stream.key
            );
            w.connreq = Some((req, e));
            at = 16;
        }
        let (hello, e, n) = Hello::decode(&data[at..]).unwrap();
        let mut out = vec![0u8; hello.wire_len()];
        assert_eq!(hello.encode(e, &mut out), Ok(n));
        assert_eq!(
            &out[..],
            &data[at..at + n],
            "{}: hello re-encode",
            stream.key
        );
        w.hello = Some((hello, e));
        endian = e;
        at += n;
        w.sync_at = at;
    } else {
        let (at, e) = find_sync(stream).unwrap_or_else(|| panic!("{}: no boundary", stream.key));
        w.sync_at = at;
        endian = e;
    }
    let mut at = w.sync_at;
    while at < data.len() {
        let (m, next) = message_at(data, at, endian).unwrap_or_else(|| {
            panic!(
                "{}: no valid message at stream offset {at}: {:02x?}",
                stream.key,
                &data[at..data.len().min(at + 32)]
            )
        });
        if let Some(h) = &m.lnet {
            let lnet_bytes = &data[m.at + KSOCK_HDR_SIZE..m.payload.start];
            assert_eq!(
                &h.to_bytes()[..],
                lnet_bytes,
                "{}: LNet re-encode at {at}",
                stream.key
            );
        }
        w.messages.push(m);
        at = next;
    }
    assert_eq!(
        at,
        data.len(),
        "{}: stream ends inside a message",
        stream.key
    );
    w
}

/// Decodes a ping info payload, checks it re-encodes to the same bytes, and returns it.
fn ping_info(payload: &[u8]) -> PingInfo<'_> {
    let info = PingInfo::decode(payload).unwrap();
    assert!(!info.is_truncated());
    assert_eq!(info.wire_len(), payload.len());
    let entries: Vec<_> = info.entries().collect();
    let mut out = vec![0u8; payload.len()];
    let n = tdinal::wire::ping::encode_ping_info(
        info.endian,
        info.features,
        info.pid,
        &entries,
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..n], payload, "ping info re-encode");
    info
}

/// Checks a ping info is the one §12 describes for a node with tcp NID `node`.
fn check_node_ping_info(info: &PingInfo<'_>, node: Nid) {
    assert_eq!(info.endian, Endian::Little);
    assert_eq!(
        info.features,
        feat::NI_STATUS | feat::RTE_DISABLED | feat::MULTI_RAIL | feat::DISCOVERY
    );
    assert_eq!(info.features, 0x1e);
    assert_eq!(info.pid, LNET_PID_LUSTRE);
    assert_eq!(info.nnis, 2);
    let e: Vec<_> = info.entries().collect();
    assert_eq!(e[0].nid, Nid::LO_0);
    assert!(
        e[0].status > 0 && e[0].status < 1000,
        "0@lo status is a small sequence number"
    );
    assert_eq!(e[1].nid, node);
    assert_eq!(e[1].status, LNET_NI_STATUS_UP);
}

const HANDSHAKE: &str = "lustre-2.16.1-v3-handshake-ping-discovery.pcap";
const BULK: &str = "lustre-2.16.1-v3-selftest-bulk-zc.pcap";

#[test]
fn handshake_capture_connreqs_and_hellos() {
    let streams = streams_of(HANDSHAKE);
    assert_eq!(streams.len(), 6, "three connections, two directions each");
    let active: Vec<&Stream> = streams
        .iter()
        .filter(|s| s.key.dst.port == LNET_PORT)
        .collect();
    // Connection order (by the frame of each SYN): CONTROL 1023, BULK_IN 1022, BULK_OUT 1021.
    let ports: Vec<u16> = active.iter().map(|s| s.key.src.port).collect();
    assert_eq!(ports, [1023, 1022, 1021]);
    let expected = [ConnType::Control, ConnType::BulkIn, ConnType::BulkOut];
    let mut active_incarnations = Vec::new();
    let mut passive_incarnations = Vec::new();
    for (stream, want) in active.iter().zip(expected) {
        assert!(stream.syn_seen);
        let active_nid = nid_of(stream.key.src.ip);
        let passive_nid = nid_of(stream.key.dst.ip);
        let w = walk(stream);
        let (req, req_endian) = w.connreq.unwrap();
        assert_eq!(req_endian, Endian::Little);
        assert_eq!(req, ConnReq::new(passive_nid), "acr_nid = the NID dialled");
        let (hello, e) = w.hello.unwrap();
        assert_eq!(e, Endian::Little);
        assert_eq!(hello.version, ProtoVersion::V3);
        assert_eq!(hello.ctype, want, "port {}", stream.key.src.port);
        assert_eq!(hello.src_nid, active_nid);
        assert_eq!(hello.dst_nid, passive_nid);
        assert_eq!(hello.src_pid, LNET_PID_LUSTRE);
        assert_eq!(hello.dst_pid, 0, "dst_pid never set");
        assert_eq!(hello.dst_incarnation, 0, "dst_incarnation never set");
        assert!(hello.ips.is_empty());
        active_incarnations.push(hello.src_incarnation);

        let reply_stream = streams
            .iter()
            .find(|s| s.key.src == stream.key.dst && s.key.dst == stream.key.src)
            .unwrap();
        assert!(reply_stream.syn_seen);
        let rw = walk(reply_stream);
        assert!(rw.connreq.is_none());
        let (reply, re) = rw.hello.unwrap();
        assert_eq!(re, Endian::Little);
        assert_eq!(reply.version, ProtoVersion::V3);
        assert_eq!(reply.ctype, want.inverse(), "reply ctype is the inverse");
        assert_eq!(reply.src_nid, passive_nid);
        assert_eq!(
            reply.dst_nid, active_nid,
            "passive reply carries the active's NID"
        );
        assert_eq!(reply.src_pid, LNET_PID_LUSTRE);
        assert_eq!(reply.dst_pid, 0);
        assert_eq!(reply.dst_incarnation, 0);
        assert!(reply.ips.is_empty());
        passive_incarnations.push(reply.src_incarnation);
    }
    // One incarnation per node, and the two nodes differ.
    assert!(active_incarnations
        .iter()
        .all(|&i| i == active_incarnations[0]));
    assert!(passive_incarnations
        .iter()
        .all(|&i| i == passive_incarnations[0]));
    assert_ne!(active_incarnations[0], passive_incarnations[0]);
    assert_eq!(HELLO_V2_SIZE, 56);
}

#[test]
fn handshake_capture_ping_and_discovery() {
    let streams = streams_of(HANDSHAKE);
    let mut gets = Vec::new();
    let mut replies = Vec::new();
    let mut puts = Vec::new();
    let mut acks = Vec::new();
    let mut total_messages = 0;
    for s in &streams {
        let w = walk(s);
        total_messages += w.messages.len();
        let from = nid_of(s.key.src.ip);
        let to = nid_of(s.key.dst.ip);
        for m in &w.messages {
            // V3 never checksums and nothing here is large enough for zero copy.
            assert_eq!(m.ksock.csum, 0);
            assert_eq!(m.ksock.zc_cookies, [0, 0]);
            let h = m.lnet.expect("no NOOPs in the handshake capture");
            assert_eq!((h.src_nid, h.dest_nid), (from, to));
            assert_eq!((h.src_pid, h.dest_pid), (LNET_PID_LUSTRE, LNET_PID_LUSTRE));
            // Everything small travels on the CONTROL connection (port 1023).
            assert!(
                s.key.src.port == 1023 || s.key.dst.port == 1023,
                "{}",
                s.key
            );
            let payload = &s.data[m.payload.clone()];
            match h.msg {
                LnetMsg::Get { .. } => gets.push((s.key, h)),
                LnetMsg::Reply { .. } => replies.push((s.key, h, payload.to_vec())),
                LnetMsg::Put { .. } => puts.push((s.key, h, payload.to_vec())),
                LnetMsg::Ack { .. } => acks.push((s.key, h)),
                LnetMsg::Hello { .. } => panic!("HELLO inside a ksock message"),
            }
        }
    }
    assert_eq!(total_messages, 8);

    // Two pings from the active node: lnetctl ping (3960) then the discovery ping (272).
    assert_eq!(gets.len(), 2);
    let sinks: Vec<u32> = gets
        .iter()
        .map(|(_, h)| match h.msg {
            LnetMsg::Get {
                match_bits,
                ptl_index,
                src_offset,
                sink_length,
                ..
            } => {
                assert_eq!(match_bits, LNET_PROTO_PING_MATCHBITS);
                assert_eq!(ptl_index, LNET_RESERVED_PORTAL);
                assert_eq!(src_offset, 0);
                assert_eq!(h.payload_length, 0);
                sink_length
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(sinks, [3960, 272]);

    // Each GET answered by a 48-byte REPLY to its return_wmd, carrying the ping info.
    assert_eq!(replies.len(), 2);
    for ((get_key, get), (reply_key, reply, payload)) in gets.iter().zip(&replies) {
        assert_eq!(reply_key.src, get_key.dst);
        let (LnetMsg::Get { return_wmd, .. }, LnetMsg::Reply { dst_wmd }) = (get.msg, reply.msg)
        else {
            unreachable!()
        };
        assert_eq!(dst_wmd, return_wmd);
        assert_eq!(reply.payload_length, 48);
        assert_eq!((reply.dest_nid, reply.src_nid), (get.src_nid, get.dest_nid));
        check_node_ping_info(&ping_info(payload), reply.src_nid);
    }

    // Discovery: each side PUTs its own ping info (portal 0, ping match bits, ACK wanted),
    // and each PUT is answered by an ACK with mlength 48.
    assert_eq!(puts.len(), 2);
    assert_eq!(acks.len(), 2);
    assert_ne!(puts[0].0, puts[1].0, "one PUT in each direction");
    for (put_key, put, payload) in &puts {
        let LnetMsg::Put {
            ack_wmd,
            match_bits,
            hdr_data,
            ptl_index,
            offset,
        } = put.msg
        else {
            unreachable!()
        };
        assert_eq!(match_bits, LNET_PROTO_PING_MATCHBITS);
        assert_eq!(ptl_index, LNET_RESERVED_PORTAL);
        assert_eq!((hdr_data, offset), (0, 0));
        assert!(!ack_wmd.is_none(), "discovery PUT asks for an ACK");
        assert_eq!(put.payload_length, 48);
        check_node_ping_info(&ping_info(payload), put.src_nid);
        let (_, ack) = acks
            .iter()
            .find(|(k, _)| k.src == put_key.dst)
            .expect("an ACK from the PUT's receiver");
        let LnetMsg::Ack {
            dst_wmd,
            match_bits: ack_bits,
            mlength,
        } = ack.msg
        else {
            unreachable!()
        };
        assert_eq!(dst_wmd, ack_wmd);
        assert_eq!(ack_bits, LNET_PROTO_PING_MATCHBITS);
        assert_eq!(mlength, 48);
        assert_eq!(ack.payload_length, 0);
    }
}

#[test]
fn bulk_capture_zero_copy_cookies_and_acks() {
    let streams = streams_of(BULK);
    assert_eq!(streams.len(), 6);
    let mut requests: BTreeMap<(tcp::Endpoint, tcp::Endpoint), Vec<u64>> = BTreeMap::new();
    let mut acked: BTreeMap<(tcp::Endpoint, tcp::Endpoint), Vec<u64>> = BTreeMap::new();
    let mut keepalives = 0;
    let mut large = 0;
    let mut retransmissions = 0;
    for s in &streams {
        assert!(!s.syn_seen, "the bulk capture starts mid-stream");
        retransmissions += s.retransmissions;
        let w = walk(s);
        // The capture happens to start at a message boundary in every direction.
        assert_eq!(w.sync_at, 0, "{}", s.key);
        assert!(!w.messages.is_empty());
        let from = nid_of(s.key.src.ip);
        let to = nid_of(s.key.dst.ip);
        for m in &w.messages {
            assert_eq!(m.ksock.csum, 0, "V3 sends no checksums");
            match &m.lnet {
                None => {
                    // NOOP: [0] = 0 and [1] = the cookie acknowledged, or 1 for a keepalive.
                    assert_eq!(m.ksock.zc_cookies[0], 0);
                    match m.ksock.zc_cookies[1] {
                        0 => panic!("{}: NOOP without a cookie", s.key),
                        1 => keepalives += 1,
                        c => acked.entry((s.key.dst, s.key.src)).or_default().push(c),
                    }
                }
                Some(h) => {
                    assert_eq!((h.src_nid, h.dest_nid), (from, to));
                    assert_eq!((h.src_pid, h.dest_pid), (LNET_PID_LUSTRE, LNET_PID_LUSTRE));
                    assert_eq!(m.ksock.zc_cookies[1], 0, "no piggybacked ACKs in V3");
                    let cookie = m.ksock.zc_cookies[0];
                    if h.payload_length >= ZC_MIN_PAYLOAD {
                        large += 1;
                        assert!(matches!(h.msg, LnetMsg::Put { .. } | LnetMsg::Reply { .. }));
                        assert_eq!(h.payload_length, 64 * 1024, "lnet_selftest 64 KiB I/O");
                        assert!(cookie >= 2, "{}: large message without a ZC cookie", s.key);
                        requests
                            .entry((s.key.src, s.key.dst))
                            .or_default()
                            .push(cookie);
                    } else {
                        assert_eq!(cookie, 0, "small messages are not zero-copy");
                    }
                }
            }
        }
    }
    // 8 PUTs (cookies 2..=9) one way, 8 REPLYs (cookies 2..=9) the other.
    assert_eq!(large, 16);
    // Five segments are sent twice in the capture (tshark: "Spurious Retransmission").
    assert_eq!(retransmissions, 5);
    // Keepalives are optional (the capture is short); none is expected here.
    assert_eq!(keepalives, 0);
    assert_eq!(
        requests.len(),
        2,
        "large data flows on two sockets (one per direction)"
    );
    for (flow, cookies) in &requests {
        // Per peer, counting up from 2 by one.
        assert_eq!(cookies[0], 2, "{flow:?}");
        for pair in cookies.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "{flow:?}: cookies {cookies:?}");
        }
        // Acknowledged on the same socket, in the opposite direction, each exactly once.
        assert_eq!(acked.get(flow), Some(cookies), "{flow:?}");
    }
    assert_eq!(
        acked.len(),
        requests.len(),
        "no NOOPs acknowledging unknown cookies"
    );
}

#[test]
fn bulk_capture_roles_of_the_connections() {
    let streams = streams_of(BULK);
    for s in &streams {
        let w = walk(s);
        let lnet_count = w.messages.iter().filter(|m| m.lnet.is_some()).count();
        let noop_count = w.messages.len() - lnet_count;
        let port = if s.key.src.port == LNET_PORT {
            s.key.dst.port
        } else {
            s.key.src.port
        };
        let from_active = s.key.dst.port == LNET_PORT;
        match (port, from_active) {
            // CONTROL: small LNet messages both ways, no NOOPs.
            (1023, _) => assert!(lnet_count > 0 && noop_count == 0, "{}", s.key),
            // The active node's BULK_IN (1022) carries its bulk data towards it (the passive
            // node's PUTs) and only NOOPs back; BULK_OUT (1021) the other way round.
            (1022, false) | (1021, true) => {
                assert!(lnet_count > 0 && noop_count == 0, "{}", s.key)
            }
            (1022, true) | (1021, false) => {
                assert!(lnet_count == 0 && noop_count > 0, "{}: only ZC-ACKs", s.key)
            }
            _ => panic!("unexpected connection {}", s.key),
        }
    }
}

#[test]
fn mid_stream_resync_finds_the_next_boundary() {
    // Start the bulk PUT stream one segment late, i.e. inside the first 64 KiB message: the
    // walker must skip to the second message rather than misread payload as headers.
    let streams = streams_of(BULK);
    let full = streams
        .iter()
        .find(|s| s.key.src.port == LNET_PORT && s.key.dst.port == 1022)
        .unwrap();
    let w = walk(full);
    let second = w.messages[1].at;
    for skip in [1usize, 24, 96, 1448, second - 1] {
        let cut = Stream {
            data: full.data[skip..].to_vec(),
            segment_starts: full
                .segment_starts
                .iter()
                .filter(|&&o| o >= skip)
                .map(|&o| o - skip)
                .collect(),
            ..full.clone()
        };
        let cw = walk(&cut);
        assert_eq!(cw.sync_at, second - skip, "skip {skip}");
        assert_eq!(cw.messages.len(), w.messages.len() - 1);
    }
    // And with no segment starts at all, the byte-by-byte fallback finds the same place.
    let cut = Stream {
        data: full.data[100..].to_vec(),
        segment_starts: Vec::new(),
        ..full.clone()
    };
    assert_eq!(walk(&cut).sync_at, second - 100);
}

#[test]
fn captured_hello_prefixes_report_short_progressively() {
    let streams = streams_of(HANDSHAKE);
    let s = streams.iter().find(|s| s.key.src.port == 1023).unwrap();
    let hello_bytes = &s.data[16..16 + 56];
    for len in 0..56 {
        let need = if len < 8 { 8 } else { 56 };
        assert_eq!(
            Hello::decode(&hello_bytes[..len]),
            Err(WireError::Short { need, have: len })
        );
    }
}
