//! The engine as an in-memory pair (no sockets): every version pair handshakes and falls back as
//! Lustre does, exchanges PUT/GET/REPLY/ACK with payloads from 0 bytes to 1 MiB under random
//! chunking, and every message is finalized exactly once with nothing left behind.

use tdinal::engine::pair::{ip, Chunking, RxPolicy, Sim};
use tdinal::engine::{Error, Tunables};
use tdinal::wire::{ConnType, LnetHdr, LnetMsg, Nid, ProcessId, ProtoVersion, WireHandle};

const A_IP: u32 = ip(10, 0, 0, 1);
const B_IP: u32 = ip(10, 0, 0, 2);

fn cfg(v: ProtoVersion) -> Tunables {
    Tunables {
        protocol: v,
        ..Tunables::default()
    }
}

fn put(from: ProcessId, to: ProcessId, len: u32, match_bits: u64) -> LnetHdr {
    LnetHdr {
        dest_nid: to.nid,
        src_nid: from.nid,
        dest_pid: to.pid,
        src_pid: from.pid,
        payload_length: len,
        msg: LnetMsg::Put {
            ack_wmd: WireHandle {
                interface_cookie: 7,
                object_cookie: match_bits,
            },
            match_bits,
            hdr_data: 0xfeed,
            ptl_index: 4,
            offset: 0,
        },
    }
}

fn get(from: ProcessId, to: ProcessId, sink: u32) -> LnetHdr {
    LnetHdr {
        dest_nid: to.nid,
        src_nid: from.nid,
        dest_pid: to.pid,
        src_pid: from.pid,
        payload_length: 0,
        msg: LnetMsg::Get {
            return_wmd: WireHandle {
                interface_cookie: 1,
                object_cookie: 2,
            },
            match_bits: 0x8000_0000_0000_0000,
            ptl_index: 0,
            src_offset: 0,
            sink_length: sink,
        },
    }
}

fn reply(from: ProcessId, to: ProcessId, len: u32) -> LnetHdr {
    LnetHdr {
        dest_nid: to.nid,
        src_nid: from.nid,
        dest_pid: to.pid,
        src_pid: from.pid,
        payload_length: len,
        msg: LnetMsg::Reply {
            dst_wmd: WireHandle {
                interface_cookie: 1,
                object_cookie: 2,
            },
        },
    }
}

fn ack(from: ProcessId, to: ProcessId) -> LnetHdr {
    LnetHdr {
        dest_nid: to.nid,
        src_nid: from.nid,
        dest_pid: to.pid,
        src_pid: from.pid,
        payload_length: 0,
        msg: LnetMsg::Ack {
            dst_wmd: WireHandle {
                interface_cookie: 7,
                object_cookie: 9,
            },
            match_bits: 9,
            mlength: 48,
        },
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Shuts both engines down, runs, and checks nothing is left and every message was finalized
/// exactly once.
fn finish(sim: &mut Sim) {
    let now = sim.now;
    for n in &mut sim.nodes {
        n.engine.shutdown(now);
    }
    sim.run();
    for (i, n) in sim.nodes.iter().enumerate() {
        let s = n.engine.stats;
        assert_eq!(s.tx_msgs_open(), 0, "node {i}: unfinalized sends");
        assert_eq!(s.rx_msgs_open, 0, "node {i}: unfinalized receives");
        assert_eq!(s.conns_open, 0, "node {i}: connections left");
        assert_eq!(s.peers, 0, "node {i}: peers left");
        assert_eq!(s.zc_waiting, 0, "node {i}: ZC sends left");
        assert!(n.engine.is_idle(), "node {i} not idle");
        let mut ids: Vec<u64> = n.log.tx_done.iter().map(|t| t.0 .0).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "node {i}: a send finalized twice");
        assert_eq!(
            before as u64, s.tx_msgs_started,
            "node {i}: sends vs finalizations"
        );
        let mut rx: Vec<_> = n.log.rx_done.iter().map(|r| r.0).collect();
        rx.sort();
        let before = rx.len();
        rx.dedup();
        assert_eq!(before, rx.len(), "node {i}: a receive finalized twice");
        assert_eq!(
            n.log.rx.len() - n.log.held.len(),
            n.log.rx_done.len(),
            "node {i}: Rx without RxDone"
        );
    }
}

fn two(va: ProtoVersion, vb: ProtoVersion, seed: u64) -> (Sim, ProcessId, ProcessId) {
    let mut sim = Sim::new(seed);
    sim.add_node(A_IP, 0x1111, cfg(va));
    sim.add_node(B_IP, 0x2222, cfg(vb));
    let (a, b) = (sim.nodes[0].id(), sim.nodes[1].id());
    (sim, a, b)
}

#[test]
fn every_version_pair_handshakes_and_falls_back_like_lustre() {
    use ProtoVersion::*;
    for va in [V1, V2, V3] {
        for vb in [V1, V2, V3] {
            let (mut sim, a, b) = two(va, vb, 7);
            let now = sim.now;
            sim.nodes[0].engine.connect_peer(now, b, B_IP, 988);
            sim.run();
            let want = va.min(vb);
            let ups = &sim.nodes[0].log.conn_up;
            assert_eq!(ups.len(), 3, "{va:?}->{vb:?}: three typed connections");
            let mut types: Vec<ConnType> = ups.iter().map(|u| u.2).collect();
            types.sort();
            assert_eq!(
                types,
                vec![ConnType::Control, ConnType::BulkIn, ConnType::BulkOut]
            );
            assert!(
                ups.iter().all(|u| u.3 == want && u.1 == b),
                "{va:?}->{vb:?}: negotiated {want:?}"
            );
            let fb = &sim.nodes[0].log.fallbacks;
            if va > vb {
                assert_eq!(
                    fb.first(),
                    Some(&(b, va, vb)),
                    "{va:?}->{vb:?}: fallback recorded"
                );
                assert!(sim.nodes[1].engine.stats.fallback_replies >= 1);
            } else {
                assert!(fb.is_empty());
            }
            // The passive side mirrors the types.
            let mut ptypes: Vec<ConnType> = sim.nodes[1].log.conn_up.iter().map(|u| u.2).collect();
            ptypes.sort();
            assert_eq!(
                ptypes,
                vec![ConnType::Control, ConnType::BulkIn, ConnType::BulkOut]
            );
            assert!(sim.nodes[1]
                .log
                .conn_up
                .iter()
                .all(|u| u.1 == a && u.3 == want));
            finish(&mut sim);
        }
    }
}

#[test]
fn messages_of_every_type_and_size_cross_under_random_chunking() {
    use ProtoVersion::*;
    let sizes = [
        0usize,
        1,
        8,
        1000,
        1024,
        4096,
        16383,
        16384,
        65536,
        300_000,
        1 << 20,
    ];
    for (k, (va, vb)) in [(V3, V3), (V2, V3), (V3, V2), (V1, V3), (V3, V1), (V2, V2)]
        .into_iter()
        .enumerate()
    {
        for chunking in [Chunking::Random(7000), Chunking::Whole] {
            let (mut sim, a, b) = two(va, vb, 11 + k as u64);
            sim.chunking = chunking;
            let mut sent = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                let data = pattern(len, i as u8);
                sim.send(0, b, put(a, b, len as u32, i as u64), Some(data.clone()));
                sent.push(data);
            }
            sim.send(0, b, get(a, b, 272), None);
            sim.send(1, a, reply(b, a, 48), Some(pattern(48, 99)));
            sim.send(1, a, ack(b, a), None);
            sim.run();
            let la = &sim.nodes[0].log;
            let lb = &sim.nodes[1].log;
            assert_eq!(
                la.tx_done.len(),
                sizes.len() + 1,
                "{va:?}/{vb:?} {chunking:?}"
            );
            assert!(
                la.tx_done.iter().all(|t| t.2.is_ok()),
                "{:?}",
                la.tx_done.iter().map(|t| &t.2).collect::<Vec<_>>()
            );
            assert!(
                lb.tx_done.iter().all(|t| t.2.is_ok()),
                "{va:?}/{vb:?} {chunking:?} B: {:?} down {:?}",
                lb.tx_done.iter().map(|t| &t.2).collect::<Vec<_>>(),
                lb.conn_down
            );
            // B received every PUT in order with its bytes intact.
            // The PUTs were sent first; the GET (empty sink) comes after them.
            let puts: Vec<&Vec<u8>> = lb
                .rx_done
                .iter()
                .take(sizes.len())
                .filter_map(|r| r.1.as_ref())
                .collect();
            assert_eq!(puts.len(), sizes.len());
            for (got, want) in puts.iter().zip(&sent) {
                assert_eq!(got.len(), want.len());
                assert!(*got == want, "payload corrupted");
            }
            assert!(lb.rx.iter().any(|r| matches!(
                r.2.msg,
                LnetMsg::Get {
                    sink_length: 272,
                    ..
                }
            )));
            assert_eq!(
                la.rx_done
                    .iter()
                    .filter(|r| r.1.as_ref().is_some_and(|p| *p == pattern(48, 99)))
                    .count(),
                1
            );
            assert!(la
                .rx
                .iter()
                .any(|r| matches!(r.2.msg, LnetMsg::Ack { mlength: 48, .. })));
            // Zero-copy: large sends on V2/V3 asked for ZC-ACKs and all were acknowledged.
            let s = sim.nodes[0].engine.stats;
            let v = va.min(vb);
            if v == V1 {
                assert_eq!(s.zc_requests, 0);
            } else {
                let big = sizes.iter().filter(|&&n| n >= 16384).count() as u64;
                assert_eq!(s.zc_requests, big, "{va:?}/{vb:?}: payloads >= 16 KiB");
                assert_eq!(s.zc_acks_received, big);
            }
            finish(&mut sim);
        }
    }
}

#[test]
fn byte_at_a_time_stream_works() {
    let (mut sim, a, b) = two(ProtoVersion::V3, ProtoVersion::V3, 3);
    sim.chunking = Chunking::Bytewise;
    sim.send(0, b, put(a, b, 20_000, 1), Some(pattern(20_000, 5)));
    sim.send(0, b, put(a, b, 10, 2), Some(pattern(10, 6)));
    sim.run();
    let lb = &sim.nodes[1].log;
    assert_eq!(lb.rx_done.len(), 2);
    assert_eq!(lb.rx_done[0].1.as_deref(), Some(&pattern(20_000, 5)[..]));
    assert!(sim.nodes[0].log.tx_done.iter().all(|t| t.2.is_ok()));
    finish(&mut sim);
}

/// A ZC-ACK that arrives before the sender's runtime confirmed the write (the TDI layer's send
/// completion or a user-space scheduler's write report trailing the peer's answer) finishes the
/// send at the commit, and is counted as received like any other ZC-ACK.
#[test]
fn zc_acks_overtaking_the_write_confirmation_are_counted() {
    for v in [ProtoVersion::V2, ProtoVersion::V3] {
        let (mut sim, a, b) = two(v, v, 11);
        sim.send(0, b, put(a, b, 10, 1), Some(pattern(10, 1)));
        sim.run();
        sim.commit_lag = 8;
        for k in 0..3u64 {
            sim.send(
                0,
                b,
                put(a, b, 65536, 10 + k),
                Some(pattern(65536, k as u8)),
            );
        }
        sim.run();
        let s = sim.nodes[0].engine.stats;
        assert_eq!(s.zc_requests, 3, "{v:?}");
        assert_eq!(s.zc_acks_received, 3, "{v:?}: {s:?}");
        assert_eq!(s.zc_waiting, 0);
        let done = &sim.nodes[0].log.tx_done;
        assert_eq!(done.len(), 4);
        assert!(done.iter().all(|t| t.2.is_ok()), "{done:?}");
        assert_eq!(sim.nodes[1].log.rx_done.len(), 4);
        finish(&mut sim);
    }
}

#[test]
fn zc_send_is_held_until_its_ack_and_fails_if_the_ack_never_comes() {
    let (mut sim, a, b) = two(ProtoVersion::V3, ProtoVersion::V3, 5);
    sim.nodes[1].policy = RxPolicy::Hold; // B never finishes receiving: no ZC-ACK.
    sim.send(0, b, put(a, b, 65536, 1), Some(pattern(65536, 1)));
    sim.run();
    assert!(
        sim.nodes[0].log.tx_done.is_empty(),
        "ZC send completed without an ACK"
    );
    assert_eq!(sim.nodes[0].engine.stats.zc_waiting, 1);
    sim.advance_secs(49);
    assert!(sim.nodes[0].log.tx_done.is_empty());
    sim.advance_secs(2);
    let done = &sim.nodes[0].log.tx_done;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].2, Err(Error::ConnClosed));
    assert!(
        done[0].1.as_ref().is_some_and(|p| p.len() == 65536),
        "payload handed back"
    );
    assert!(sim.nodes[0]
        .log
        .conn_down
        .iter()
        .any(|d| d.2 == Error::Timeout("stale ZC_REQs")));
    // The held message is answered late: it fails, exactly once.
    let held = sim.nodes[1].log.held.clone();
    let now = sim.now;
    for rx in held {
        sim.nodes[1]
            .engine
            .recv(now, rx, Some(vec![0; 65536]), 65536);
    }
    sim.run();
    sim.nodes[1].log.held.clear();
    finish(&mut sim);
}

#[test]
fn keepalive_noops_flow_on_idle_v3_connections_only() {
    for v in [ProtoVersion::V3, ProtoVersion::V2] {
        let (mut sim, _a, b) = two(v, v, 9);
        let now = sim.now;
        sim.nodes[0].engine.connect_peer(now, b, B_IP, 988);
        sim.run();
        sim.advance_secs(45);
        let ka =
            sim.nodes[0].engine.stats.keepalives_sent + sim.nodes[1].engine.stats.keepalives_sent;
        if v == ProtoVersion::V3 {
            assert!(ka >= 1, "no keepalive on an idle V3 peer");
            assert!(sim.nodes[0].log.conn_down.is_empty() && sim.nodes[1].log.conn_down.is_empty());
        } else {
            assert_eq!(ka, 0, "keepalive on V2");
        }
        finish(&mut sim);
    }
}

#[test]
fn connection_race_higher_nid_wins() {
    let (mut sim, a, b) = two(ProtoVersion::V3, ProtoVersion::V3, 13);
    let now = sim.now;
    sim.nodes[0].engine.connect_peer(now, b, B_IP, 988);
    sim.nodes[1].engine.connect_peer(now, a, A_IP, 988);
    sim.run();
    sim.advance_secs(3);
    // B (higher NID) refused A's racing connections; B's own outgoing ones won.
    assert!(sim.nodes[1].engine.stats.races_lost_by_peer >= 1);
    let a_conns = sim.nodes[0].engine.conns();
    assert_eq!(a_conns.len(), 3, "{a_conns:?}");
    assert!(
        a_conns.iter().all(|c| !c.active),
        "A keeps only B's connections"
    );
    // Traffic flows both ways over them.
    sim.send(0, b, put(a, b, 100, 1), Some(pattern(100, 1)));
    sim.send(1, a, put(b, a, 100, 2), Some(pattern(100, 2)));
    sim.run();
    assert!(
        sim.nodes[0].log.tx_done.iter().all(|t| t.2.is_ok()) && sim.nodes[0].log.tx_done.len() == 1
    );
    assert_eq!(sim.nodes[1].log.rx_done.len(), 1);
    finish(&mut sim);
}

#[test]
fn incarnation_change_closes_old_connections_and_refuses_once() {
    let (mut sim, a, b) = two(ProtoVersion::V3, ProtoVersion::V3, 17);
    let now = sim.now;
    sim.nodes[1].engine.connect_peer(now, a, A_IP, 988);
    sim.run();
    assert_eq!(sim.nodes[0].engine.conns().len(), 3);
    // B reboots without A noticing (its old sockets look alive to A).
    sim.reboot_silently(1, 0x3333, cfg(ProtoVersion::V3));
    sim.send(1, a, put(b, a, 10, 1), Some(pattern(10, 1)));
    sim.run();
    assert_eq!(sim.nodes[0].engine.stats.incarnation_changes, 1);
    assert!(
        sim.nodes[0]
            .log
            .conn_down
            .iter()
            .filter(|d| d.2 == Error::Protocol("peer rebooted (incarnation changed)"))
            .count()
            == 3
    );
    sim.advance_secs(3);
    assert_eq!(sim.nodes[1].log.tx_done.len(), 1);
    assert!(sim.nodes[1].log.tx_done[0].2.is_ok());
    assert_eq!(sim.nodes[0].log.rx_done.len(), 1);
    let _ = Nid::ANY;
    finish(&mut sim);
}

#[test]
fn send_to_unreachable_peer_fails_once_when_the_connect_fails() {
    let (mut sim, a, b) = two(ProtoVersion::V3, ProtoVersion::V3, 19);
    sim.nodes[1].listening = false;
    sim.send(0, b, put(a, b, 10, 1), Some(pattern(10, 1)));
    sim.run();
    assert_eq!(sim.nodes[0].log.tx_done.len(), 1);
    assert_eq!(sim.nodes[0].log.tx_done[0].2, Err(Error::HostUnreachable));
    finish(&mut sim);
}
