//! The passive and active handshake against hand-built bytes, pinned to what a real Lustre 2.16.1
//! node did (spec §12) and to the acceptor rules (spec §2.4, §3.6–3.9).

use tdinal::engine::{Action, ConnAddrs, ConnId, Engine, Error, Event, LocalNi, Time, Tunables};
use tdinal::wire::acceptor::{ConnReq, CONNREQ_SIZE};
use tdinal::wire::hello::LNET_PROTO_MAGIC;
use tdinal::wire::{
    ConnType, Endian, Hello, IpList, KsockHdr, LnetHdr, LnetMsg, Net, Nid, ProcessId, ProtoVersion,
    WireHandle,
};

const ME: Nid = Nid::new(Net::TCP0, 0x0a00_0001);
const PEER: Nid = Nid::new(Net::TCP0, 0x0a00_0002);
const LOWER_PEER: Nid = Nid::new(Net::TCP0, 0x0900_0009);
const T0: Time = Time(5_000_000);

type Eng = Engine<Vec<u8>, Vec<u8>>;

fn engine(cfg: Tunables) -> Eng {
    Engine::new(
        LocalNi {
            nid: ME,
            pid: 12345,
            incarnation: 0xabc,
        },
        cfg,
        true,
    )
}

fn addrs(peer_port: u16) -> ConnAddrs {
    ConnAddrs {
        local_ip: 0x0a00_0001,
        local_port: 988,
        peer_ip: 0x0a00_0002,
        peer_port,
    }
}

fn hello(v: ProtoVersion, src: Nid, ctype: ConnType, inc: u64) -> Hello {
    Hello {
        version: v,
        src_nid: src,
        dst_nid: ME,
        src_pid: 12345,
        dst_pid: 0,
        src_incarnation: inc,
        dst_incarnation: 0,
        ctype,
        ips: IpList::EMPTY,
    }
}

fn hello_bytes(h: &Hello, e: Endian) -> Vec<u8> {
    let mut b = vec![0u8; h.wire_len()];
    h.encode(e, &mut b).unwrap();
    b
}

/// What the engine wrote on `conn` (all of it, committed).
fn drain_tx(e: &mut Eng, conn: ConnId) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let mut out: [&[u8]; 16] = [&[]; 16];
        let n = e.tx_slices(conn, &mut out);
        if n == 0 {
            return all;
        }
        let mut k = 0;
        for s in &out[..n] {
            all.extend_from_slice(s);
            k += s.len();
        }
        e.tx_commit(T0, conn, k);
    }
}

/// A 64 KiB PUT to PEER: large enough for a zero-copy request.
fn put_64k() -> LnetHdr {
    LnetHdr {
        dest_nid: PEER,
        src_nid: ME,
        dest_pid: 12345,
        src_pid: 12345,
        payload_length: 65536,
        msg: LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: 4,
            offset: 0,
        },
    }
}

fn actions(e: &mut Eng) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn events(e: &mut Eng) -> Vec<Event<Vec<u8>, Vec<u8>>> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

/// Runs a passive handshake: connreq for `ME`, then `hello`. Returns the conn and what we sent.
fn passive(e: &mut Eng, port: u16, h: &[u8]) -> (ConnId, Vec<u8>) {
    let c = e.accepted(T0, addrs(port)).unwrap();
    let mut input = ConnReq::new(ME).to_bytes(Endian::Little).to_vec();
    input.extend_from_slice(h);
    let used = e.handle_rx(T0, c, &input);
    assert_eq!(used, input.len(), "the handshake takes exactly its bytes");
    (c, drain_tx(e, c))
}

#[test]
fn v3_control_is_answered_with_mirrored_type_and_our_identity() {
    for (ask, want) in [
        (ConnType::Control, ConnType::Control),
        (ConnType::BulkIn, ConnType::BulkOut),
        (ConnType::BulkOut, ConnType::BulkIn),
    ] {
        let mut e = engine(Tunables::default());
        let (c, out) = passive(
            &mut e,
            1023,
            &hello_bytes(&hello(ProtoVersion::V3, PEER, ask, 7), Endian::Little),
        );
        let (reply, endian, n) = Hello::decode(&out).unwrap();
        assert_eq!((n, endian), (56, Endian::Little));
        assert_eq!(reply.version, ProtoVersion::V3);
        assert_eq!(reply.ctype, want);
        assert_eq!(
            (reply.src_nid, reply.src_pid, reply.dst_nid),
            (ME, 12345, PEER)
        );
        assert_eq!(
            (reply.dst_pid, reply.dst_incarnation),
            (0, 0),
            "fields Linux never sets"
        );
        assert_eq!(reply.src_incarnation, 0xabc);
        assert!(actions(&mut e).contains(&Action::Configure { conn: c }));
        assert!(events(&mut e)
            .iter()
            .any(|ev| matches!(ev, Event::ConnUp { ctype, .. } if *ctype == want)));
    }
}

#[test]
fn big_endian_sender_is_flipped_and_its_noops_understood() {
    let mut e = engine(Tunables::default());
    let (c, out) = passive(
        &mut e,
        1000,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::Control, 7),
            Endian::Big,
        ),
    );
    assert_eq!(Hello::decode(&out).unwrap().0.ctype, ConnType::Control);
    // A keepalive NOOP written big-endian: ignored, connection stays.
    let noop = KsockHdr::noop(1).to_bytes(Endian::Big);
    assert_eq!(e.handle_rx(T0, c, &noop), 24);
    assert!(!actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { .. })));
}

#[test]
fn unknown_version_gets_our_newest_hello_with_none_and_our_own_nid_then_close() {
    let mut e = engine(Tunables::default());
    let c = e.accepted(T0, addrs(1023)).unwrap();
    let mut input = ConnReq::new(ME).to_bytes(Endian::Little).to_vec();
    input.extend_from_slice(&LNET_PROTO_MAGIC.to_le_bytes());
    input.extend_from_slice(&9u32.to_le_bytes());
    e.handle_rx(T0, c, &input);
    let out = drain_tx(&mut e, c);
    let (reply, _, _) = Hello::decode(&out).unwrap();
    assert_eq!(reply.version, ProtoVersion::V3);
    assert_eq!(reply.ctype, ConnType::None);
    assert_eq!(reply.dst_nid, ME, "quirk: dst_nid is the replier's own NID");
    assert_eq!(reply.ips.len(), 0);
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c)));
}

#[test]
fn v1_and_v2_are_adopted_without_a_round_trip() {
    for v in [ProtoVersion::V1, ProtoVersion::V2] {
        let mut e = engine(Tunables::default());
        let (_, out) = passive(
            &mut e,
            1023,
            &hello_bytes(&hello(v, PEER, ConnType::Any, 7), Endian::Little),
        );
        let (reply, _, n) = Hello::decode(&out).unwrap();
        assert_eq!(reply.version, v);
        assert_eq!(reply.ctype, ConnType::Any);
        assert_eq!(n, if v == ProtoVersion::V1 { 72 } else { 56 });
    }
}

#[test]
fn second_untyped_v2_connection_from_the_same_peer_is_refused_with_none() {
    let mut e = engine(Tunables::default());
    let h = hello_bytes(
        &hello(ProtoVersion::V2, PEER, ConnType::Any, 7),
        Endian::Little,
    );
    let (_, first) = passive(&mut e, 1023, &h);
    assert_eq!(Hello::decode(&first).unwrap().0.ctype, ConnType::Any);
    let (c2, second) = passive(&mut e, 1022, &h);
    assert_eq!(Hello::decode(&second).unwrap().0.ctype, ConnType::None);
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c2)));
}

#[test]
fn new_incarnation_closes_old_connections_and_is_refused_once_then_accepted() {
    let mut e = engine(Tunables::default());
    let (c1, _) = passive(
        &mut e,
        1023,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::Control, 7),
            Endian::Little,
        ),
    );
    actions(&mut e);
    let (c2, out) = passive(
        &mut e,
        1022,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::Control, 8),
            Endian::Little,
        ),
    );
    assert_eq!(Hello::decode(&out).unwrap().0.ctype, ConnType::None);
    let acts = actions(&mut e);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c1)),
        "old connection closed"
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c2)),
        "new one refused"
    );
    e.release(T0, c1);
    e.release(T0, c2);
    let (_, out) = passive(
        &mut e,
        1021,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::Control, 8),
            Endian::Little,
        ),
    );
    assert_eq!(
        Hello::decode(&out).unwrap().0.ctype,
        ConnType::Control,
        "the retry succeeds"
    );
}

#[test]
fn insecure_port_is_refused_before_any_byte_under_accept_secure() {
    let mut e = engine(Tunables::default());
    assert!(matches!(
        e.accepted(T0, addrs(40000)),
        Err(Error::Refused(_))
    ));
    let mut all = engine(Tunables {
        accept: tdinal::engine::AcceptPolicy::All,
        ..Tunables::default()
    });
    // Under accept=all the unprivileged connector becomes a userspace process (spec §2.7).
    let (c, out) = passive(
        &mut all,
        40000,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::Control, 7),
            Endian::Little,
        ),
    );
    assert_eq!(Hello::decode(&out).unwrap().0.ctype, ConnType::Control);
    let ev = events(&mut all);
    let up = ev
        .iter()
        .find_map(|e| match e {
            Event::ConnUp { conn, peer, .. } if *conn == c => Some(*peer),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        up,
        ProcessId::new(Nid::new(Net::TCP0, 0x0a00_0002), 40000 | 0x8000_0000)
    );
}

#[test]
fn acceptor_refuses_wrong_nid_garbage_old_socknal_and_answers_protocol_query() {
    // Wrong NID in the connreq.
    let mut e = engine(Tunables::default());
    let c = e.accepted(T0, addrs(1023)).unwrap();
    e.handle_rx(T0, c, &ConnReq::new(PEER).to_bytes(Endian::Big));
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { conn, flush: false } if *conn == c)));
    // Garbage and an old socknal hello magic: closed without reply.
    for first in [[1u8, 2, 3, 4], [0xed, 0x0d, 0xbc, 0xee]] {
        let mut e = engine(Tunables::default());
        let c = e.accepted(T0, addrs(1023)).unwrap();
        e.handle_rx(T0, c, &first);
        assert!(drain_tx(&mut e, c).is_empty());
        assert!(actions(&mut e)
            .iter()
            .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c)));
    }
    // LNET_PROTO_MAGIC first: answered with {acceptor magic, version 1, nid 0}, then closed.
    let mut e = engine(Tunables::default());
    let c = e.accepted(T0, addrs(1023)).unwrap();
    e.handle_rx(T0, c, &LNET_PROTO_MAGIC.to_le_bytes());
    let out = drain_tx(&mut e, c);
    assert_eq!(out.len(), CONNREQ_SIZE);
    assert_eq!(
        ConnReq::decode(&out).unwrap().0,
        ConnReq {
            version: 1,
            nid: Nid(0)
        }
    );
}

#[test]
fn race_lower_nid_connecting_while_we_connect_is_refused() {
    let mut e = engine(Tunables::default());
    let lower = ProcessId::lustre(LOWER_PEER);
    e.connect_peer(T0, lower, 0x0a00_0002, 988);
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Connect { .. })));
    let (_, out) = passive(
        &mut e,
        1023,
        &hello_bytes(
            &hello(ProtoVersion::V3, LOWER_PEER, ConnType::Control, 7),
            Endian::Little,
        ),
    );
    assert_eq!(
        Hello::decode(&out).unwrap().0.ctype,
        ConnType::None,
        "our outgoing connection wins"
    );
}

#[test]
fn handshake_times_out_after_accept_timeout() {
    let mut e = engine(Tunables::default());
    let c = e.accepted(T0, addrs(1023)).unwrap();
    e.handle_rx(T0, c, &[0x00, 0x71]);
    e.handle_timeout(T0.plus_ms(4000));
    assert!(!actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { .. })));
    e.handle_timeout(T0.plus_ms(5001));
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c)));
    assert!(events(&mut e).iter().any(|ev| matches!(
        ev,
        Event::ConnDown {
            reason: Error::Timeout("handshake"),
            ..
        }
    )));
}

#[test]
fn active_side_checks_the_reply_and_learns_versions() {
    let peer = ProcessId::lustre(PEER);
    let setup = |e: &mut Eng| -> ConnId {
        e.connect_peer(T0, peer, 0x0a00_0002, 988);
        let c = actions(e)
            .iter()
            .find_map(|a| match a {
                Action::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .unwrap();
        e.connected(
            T0,
            c,
            ConnAddrs {
                local_ip: 0x0a00_0001,
                local_port: 1023,
                peer_ip: 0x0a00_0002,
                peer_port: 988,
            },
        );
        let sent = drain_tx(e, c);
        // connreq for the peer's NID, then our V3 CONTROL hello (spec §12 order).
        assert_eq!(ConnReq::decode(&sent[..16]).unwrap().0.nid, PEER);
        let (h, _, _) = Hello::decode(&sent[16..]).unwrap();
        assert_eq!(
            (h.version, h.ctype, h.dst_nid),
            (ProtoVersion::V3, ConnType::Control, PEER)
        );
        c
    };
    // A reply from someone else: WrongPeer.
    let mut e = engine(Tunables::default());
    let c = setup(&mut e);
    let mut h = hello(ProtoVersion::V3, LOWER_PEER, ConnType::Control, 1);
    e.handle_rx(T0, c, &hello_bytes(&h, Endian::Little));
    assert!(events(&mut e).iter().any(|ev| matches!(
        ev,
        Event::ConnDown {
            reason: Error::WrongPeer { .. },
            ..
        }
    )));
    // A V1 reply with NONE: learn V1, reconnect at once with a 72-byte V1 hello.
    let mut e = engine(Tunables::default());
    let c = setup(&mut e);
    h = hello(ProtoVersion::V1, PEER, ConnType::None, 1);
    e.handle_rx(T0, c, &hello_bytes(&h, Endian::Little));
    let acts = actions(&mut e);
    let c2 = acts
        .iter()
        .find_map(|a| match a {
            Action::Connect { conn, .. } => Some(*conn),
            _ => None,
        })
        .expect("immediate retry");
    e.connected(
        T0,
        c2,
        ConnAddrs {
            local_ip: 0x0a00_0001,
            local_port: 1022,
            peer_ip: 0x0a00_0002,
            peer_port: 988,
        },
    );
    let sent = drain_tx(&mut e, c2);
    assert_eq!(sent.len(), 16 + 72);
    assert_eq!(
        Hello::decode(&sent[16..]).unwrap().0.version,
        ProtoVersion::V1
    );
    // Mismatched types: CONTROL asked, BULK_IN answered.
    let mut e = engine(Tunables::default());
    let c = setup(&mut e);
    e.handle_rx(
        T0,
        c,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::BulkIn, 1),
            Endian::Little,
        ),
    );
    assert!(events(&mut e).iter().any(|ev| matches!(
        ev,
        Event::ConnDown {
            reason: Error::Protocol("mismatched connection types"),
            ..
        }
    )));
}

#[test]
fn a_tcp_connect_that_never_completes_times_out_after_sock_timeout() {
    let mut e = engine(Tunables::default());
    e.connect_peer(T0, ProcessId::lustre(PEER), 0x0a00_0002, 988);
    let c = actions(&mut e)
        .iter()
        .find_map(|a| match a {
            Action::Connect { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap();
    e.handle_timeout(T0.plus_ms(49_000));
    assert!(!actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { .. })));
    e.handle_timeout(T0.plus_ms(50_001));
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::Close { conn, .. } if *conn == c)));
    assert!(events(&mut e).iter().any(|ev| matches!(
        ev,
        Event::ConnDown {
            reason: Error::Timeout("connect"),
            ..
        }
    )));
}

#[test]
fn a_zero_copy_send_written_after_its_connection_closed_fails_instead_of_waiting() {
    let mut e = engine(Tunables::default());
    let (c, _) = passive(
        &mut e,
        1023,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::BulkIn, 7),
            Endian::Little,
        ),
    );
    actions(&mut e);
    events(&mut e);
    let tx = e.send(T0, ProcessId::lustre(PEER), put_64k(), Some(vec![7; 65536]));
    // The runtime starts writing (the engine assigns a ZC cookie), then the connection closes
    // while the write is in flight, and the write completes afterwards.
    let lent: usize = {
        let mut out: [&[u8]; 8] = [&[]; 8];
        let n = e.tx_slices(c, &mut out);
        out[..n].iter().map(|s| s.len()).sum()
    };
    assert_eq!(lent, 24 + 72 + 65536);
    assert_eq!(e.stats.zc_requests, 1);
    e.close_conns(T0, Some(PEER), None);
    e.tx_commit(T0, c, lent);
    let done: Vec<_> = events(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::TxDone { tx: t, result, .. } => Some((t, result)),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![(tx, Err(Error::ConnClosed))]);
    assert_eq!(e.stats.zc_waiting, 0);
    e.release(T0, c);
    assert!(e.is_idle(), "nothing parked under the closed connection");
}

/// A ZC-ACK can cross its send's connection close: V3 receivers answer on another connection,
/// and the sender fails the send when the connection it went on closes. Such an ACK is stale,
/// not unknown: it must not close the peer's other connections. A cookie we never sent still is
/// unknown and closes them (-EPROTO), as Linux does.
#[test]
fn an_ack_for_a_send_failed_by_its_connection_close_is_stale_not_unknown() {
    let mut e = engine(Tunables::default());
    let (bulk, _) = passive(
        &mut e,
        1023,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::BulkIn, 7),
            Endian::Little,
        ),
    );
    let (control, _) = passive(
        &mut e,
        1022,
        &hello_bytes(
            &hello(ProtoVersion::V3, PEER, ConnType::Control, 7),
            Endian::Little,
        ),
    );
    actions(&mut e);
    events(&mut e);
    let tx = e.send(T0, ProcessId::lustre(PEER), put_64k(), Some(vec![7; 65536]));
    let wrote = drain_tx(&mut e, bulk);
    assert_eq!(
        wrote.len(),
        24 + 72 + 65536,
        "the PUT went on the bulk connection"
    );
    let k = KsockHdr::decode(&wrote, Endian::Little).unwrap();
    let cookie = k.zc_cookies[0];
    assert!(cookie >= 2, "a ZC request cookie");
    // The bulk connection dies: the send fails.
    e.io_error(T0, bulk, 104);
    let done: Vec<_> = events(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::TxDone { tx: t, result, .. } => Some((t, result)),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![(tx, Err(Error::ConnClosed))]);
    // The receiver's ACK for it arrives on the control connection: ignored, counted.
    let noop = |c: u64| {
        let mut b = vec![0u8; 24];
        KsockHdr::noop(c).encode(Endian::Little, &mut b).unwrap();
        b
    };
    assert_eq!(e.handle_rx(T0, control, &noop(cookie)), 24);
    assert_eq!(e.stats.zc_acks_stale, 1);
    assert!(
        !events(&mut e)
            .iter()
            .any(|ev| matches!(ev, Event::ConnDown { conn, .. } if *conn == control)),
        "a stale ACK closed the control connection"
    );
    // Only once: the same cookie again is unknown, and closes the connection (-EPROTO).
    assert_eq!(e.handle_rx(T0, control, &noop(cookie)), 24);
    let evs = events(&mut e);
    assert!(
        evs.iter().any(|ev| matches!(
            ev,
            Event::ConnDown { conn, reason: Error::Protocol("unknown ZC-ACK cookie"), .. }
                if *conn == control
        )),
        "{evs:?}"
    );
    assert_eq!(e.stats.zc_acks_stale, 1);
}
