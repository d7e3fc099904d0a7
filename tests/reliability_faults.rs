//! Fault injection over real sockets: a hostile peer written here with std sockets and the
//! crate's `wire` encoders, against real `Node`s (and `tdinal daemon` processes), loopback only.
//! Every case ends with the node closing cleanly, the error reported (the reason of the
//! connection's close, the failed message's completion), and nothing left: engine gauges at
//! zero and a clean `ShutdownReport`. Timeouts are small tunables; every wait is bounded.
//!
//! Layout of this run's addresses (127.X.c.d, X from the process id): c = 100..=139 nodes and
//! hostile listeners, c = 140..=159 hostile source addresses.

mod reliability_common;

use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reliability_common::alloc::Counting;
use reliability_common::*;
use tdinal::engine::Error;
use tdinal::lnet::LnetEvent;
use tdinal::runtime::{Node, NodeHandle, PUT_PORTAL};
use tdinal::wire::acceptor::CONNREQ_SIZE;
use tdinal::wire::{ConnType, Endian, Hello, IpList, KsockHdr, ProcessId, ProtoVersion};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Hostile source addresses, one pool per test (disjoint third octets).
static SRC_PASSIVE: [Sources; 3] = [Sources::new(140), Sources::new(141), Sources::new(142)];
static SRC_MISC: Sources = Sources::new(143);
static SRC_FLOOD: Sources = Sources::new(144);
static SRC_REBOOT: Sources = Sources::new(145);
static SRC_SLOW: Sources = Sources::new(146);
static SRC_LIMITS: Sources = Sources::new(147);

const VERSIONS: [ProtoVersion; 3] = [ProtoVersion::V1, ProtoVersion::V2, ProtoVersion::V3];

fn listen_of(n: &Node) -> SocketAddrV4 {
    n.listen_addr().expect("listening")
}

/// The last `n` connection closes of a node, waiting (≤ 5 s) until there are `total`.
fn downs_after(h: &NodeHandle, total: usize, what: &str) -> Vec<tdinal::runtime::ConnDown> {
    let ok = wait_for(Duration::from_secs(5), || h.conn_downs().len() >= total);
    let d = h.conn_downs();
    assert!(ok, "{what}: expected {total} connection closes, saw {d:?}");
    d
}

fn version_idx(v: ProtoVersion) -> u8 {
    v.to_wire() as u8 - 1
}

/// The hello a hostile peer `me` sends to `to`, with two IPs on V1 (so the cut sweeps cover
/// the IP list too).
fn hostile_hello(v: ProtoVersion, me: ProcessId, to: tdinal::wire::Nid, ctype: ConnType) -> Hello {
    let mut h = hello(v, me, to, ctype, 0x1_0000 + u64::from(v.to_wire()));
    if v == ProtoVersion::V1 {
        h.ips = IpList::from_slice(&[u32::from(addr(139, 1)), u32::from(addr(139, 2))]).unwrap();
    }
    h
}

// ------------------------------------------------------------------------------------------
// 1. The connection cut at every byte offset, as the passive side sees it

/// A hostile connector cuts its connection after every prefix of the acceptor request + hello,
/// then of a PUT (ksock header, LNet header, payload) after a complete handshake. Even offsets
/// close with FIN (the node's hello reply read), odd ones with RST (left unread).
fn passive_cut_sweep(v: ProtoVersion) -> usize {
    let vi = version_idx(v);
    // V2 talks big-endian (connreq, hello, ksock headers): the flipped code paths.
    let e = if v == ProtoVersion::V2 {
        Endian::Big
    } else {
        Endian::Little
    };
    let b = node(addr(100 + vi, 3), &[("accept_timeout", "3")]);
    let to = listen_of(&b);
    let me = pid_of(addr(100 + vi, 9));
    let src = &SRC_PASSIVE[vi as usize];
    let mut hs = connreq(b.nid(), e);
    hs.extend_from_slice(&hello_bytes(
        &hostile_hello(v, me, b.nid(), ConnType::Control),
        e,
    ));
    let payload = pattern(40, vi);
    let mut msg = Vec::new();
    if v != ProtoVersion::V1 {
        msg.extend_from_slice(&KsockHdr::lnet().to_bytes(e));
    }
    msg.extend_from_slice(&put_hdr(me, b.id(), PUT_PORTAL, 7, payload.len() as u32).to_bytes());
    msg.extend_from_slice(&payload);
    let mut cuts = 0usize;
    let mut downs = b.conn_downs().len();
    let what =
        |k: usize, stage: &str| format!("V{} passive cut at byte {k} of the {stage}", v.to_wire());

    for k in 0..hs.len() {
        let mut s = src.connect(to);
        send(&mut s, &hs[..k]).unwrap();
        drop(s);
        downs += 1;
        let d = downs_after(&b, downs, &what(k, "handshake"));
        let last = d.last().unwrap();
        assert_eq!(
            last.reason,
            Error::UnexpectedEof,
            "{}",
            what(k, "handshake")
        );
        wait_idle(&b, &what(k, "handshake"));
        cuts += 1;
    }
    assert_eq!(b.puts_received().count, 0);
    for k in 0..=msg.len() {
        let w = what(k, "message");
        let mut s = src.connect(to);
        send(&mut s, &hs).unwrap();
        let rst = k % 2 == 1;
        if !rst {
            let (reply, _) = read_hello(&mut s);
            assert_eq!(reply.ctype, ConnType::Control, "{w}");
            assert_eq!((reply.src_nid, reply.version), (b.nid(), v), "{w}");
        } else {
            // Wait until the reply is there, unread: closing now sends a reset.
            assert!(wait_for(Duration::from_secs(5), || {
                let mut p = [0u8; 1];
                s.peek(&mut p).map(|n| n == 1).unwrap_or(false)
            }));
        }
        let before = b.puts_received().count;
        let _ = send(&mut s, &msg[..k]);
        if k == msg.len() {
            // A whole message is delivered once (wait for it before cutting, so that a reset
            // cannot race with it).
            assert!(
                wait_for(Duration::from_secs(5), || b.puts_received().count
                    == before + 1),
                "{w}: the whole PUT was not delivered"
            );
        }
        drop(s);
        downs += 1;
        let d = downs_after(&b, downs, &w);
        let reason = d.last().unwrap().reason;
        let boundary = k == 0 || k == msg.len();
        if rst {
            assert!(
                reason == Error::Io(sys_econnreset())
                    || reason
                        == if boundary {
                            Error::ConnClosed
                        } else {
                            Error::UnexpectedEof
                        },
                "{w}: {reason:?}"
            );
        } else if boundary {
            assert_eq!(reason, Error::ConnClosed, "{w}");
        } else {
            assert_eq!(reason, Error::UnexpectedEof, "{w}");
        }
        wait_idle(&b, &w);
        let want = before + u64::from(k == msg.len());
        assert_eq!(b.puts_received().count, want, "{w}: PUTs delivered");
        cuts += 1;
    }
    clean(b);
    cuts
}

fn sys_econnreset() -> i32 {
    tdinal::runtime::sys::ECONNRESET
}

#[test]
fn passive_cut_at_every_byte_v1() {
    heap_checked(
        "passive_cut_at_every_byte_v1",
        passive_cut_at_every_byte_v1_case,
    );
}

fn passive_cut_at_every_byte_v1_case() {
    let n = passive_cut_sweep(ProtoVersion::V1);
    assert_eq!(n, 16 + 80 + 72 + 40 + 1);
}

#[test]
fn passive_cut_at_every_byte_v2_big_endian() {
    heap_checked(
        "passive_cut_at_every_byte_v2_big_endian",
        passive_cut_at_every_byte_v2_big_endian_case,
    );
}

fn passive_cut_at_every_byte_v2_big_endian_case() {
    let n = passive_cut_sweep(ProtoVersion::V2);
    assert_eq!(n, 16 + 56 + 24 + 72 + 40 + 1);
}

#[test]
fn passive_cut_at_every_byte_v3() {
    heap_checked(
        "passive_cut_at_every_byte_v3",
        passive_cut_at_every_byte_v3_case,
    );
}

fn passive_cut_at_every_byte_v3_case() {
    let n = passive_cut_sweep(ProtoVersion::V3);
    assert_eq!(n, 16 + 56 + 24 + 72 + 40 + 1);
}

// ------------------------------------------------------------------------------------------
// 2. The connection cut at every byte offset, as the active side sees it

/// A hostile acceptor: a listener at `me`'s address, port 988.
struct HostileAcceptor {
    l: TcpListener,
    me: ProcessId,
}

impl HostileAcceptor {
    fn new(me: ProcessId) -> HostileAcceptor {
        let ip = std::net::Ipv4Addr::from(me.nid.addr());
        let l = TcpListener::bind(SocketAddrV4::new(ip, 988)).expect("bind hostile acceptor");
        l.set_nonblocking(true).unwrap();
        HostileAcceptor { l, me }
    }

    /// Accepts the next connection (≤ 10 s), reads the connreq and the node's hello.
    fn accept(&self) -> (TcpStream, Hello) {
        let t0 = Instant::now();
        let mut s = loop {
            match self.l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(t0.elapsed() < Duration::from_secs(10), "no connection came");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        let req = read_n(&mut s, CONNREQ_SIZE);
        let (r, _) = tdinal::wire::ConnReq::decode(&req).expect("connreq");
        assert_eq!(r.nid, self.me.nid, "the node dialled our NID");
        let (h, _) = read_hello(&mut s);
        (s, h)
    }

    /// Cuts every connection attempt of `n` at once until it has none (≤ 5 s).
    fn drain_attempts(&self, n: &NodeHandle) {
        let ok = wait_for(Duration::from_secs(5), || {
            while let Ok((s, _)) = self.l.accept() {
                drop(s);
            }
            n.stats().engine.conns_open == 0
        });
        assert!(
            ok,
            "the node kept connecting: {:?}",
            gauges(&n.stats().engine)
        );
    }

    /// The normal answer to `h`: our hello in its version, the mirrored type.
    fn reply(&self, h: &Hello) -> Vec<u8> {
        let mut r = hostile_hello(h.version, self.me, h.src_nid, h.ctype.inverse());
        r.src_incarnation = 0x2_0000;
        hello_bytes(&r, Endian::Little)
    }
}

fn one_completion(rx: &mpsc::Receiver<LnetEvent>, what: &str) -> LnetEvent {
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{what}: no completion ({e})"))
}

fn put_result(ev: LnetEvent, what: &str) -> Result<u32, Error> {
    match ev {
        LnetEvent::PutDone { result, .. } => result,
        other => panic!("{what}: unexpected {other:?}"),
    }
}

fn active_cut_sweep(v: ProtoVersion) -> usize {
    let vi = version_idx(v);
    let me = pid_of(addr(110 + vi, 9));
    let acc = HostileAcceptor::new(me);
    let typed = v == ProtoVersion::V3;
    let proto = v.to_wire().to_string();
    let mut set = vec![
        ("protocol", proto.as_str()),
        ("min_reconnectms", "1"),
        ("max_reconnectms", "2"),
        ("sock_timeout", "5"),
    ];
    if !typed {
        set.push(("typed_conns", "0"));
    }
    let a = node(addr(110 + vi, 2), &set);
    let (tx, rx) = mpsc::channel();
    let mut cuts = 0usize;
    let mut downs = a.conn_downs().len();
    let small = std::sync::Arc::<[u8]>::from(pattern(8, 1));
    let what =
        |k: usize, stage: &str| format!("V{} active cut at byte {k} of the {stage}", v.to_wire());

    // The hello reply, cut.
    let reply_len = {
        let h = hostile_hello(v, me, a.nid(), ConnType::Control);
        h.wire_len()
    };
    for k in 0..reply_len {
        let w = what(k, "hello reply");
        a.put_with(me, PUT_PORTAL, k as u64, 0, small.clone(), false, &tx);
        let (mut s, h) = acc.accept();
        assert_eq!(h.version, v, "{w}");
        let reply = acc.reply(&h);
        assert_eq!(reply.len(), reply_len);
        send(&mut s, &reply[..k]).unwrap();
        drop(s);
        let r = put_result(one_completion(&rx, &w), &w);
        assert_eq!(r, Err(Error::HostUnreachable), "{w}");
        downs += 1;
        let d = downs_after(&a, downs, &w);
        assert_eq!(d.last().unwrap().reason, Error::UnexpectedEof, "{w}");
        wait_no_conns(&a, &w);
        std::thread::sleep(Duration::from_millis(3));
        cuts += 1;
    }

    // A message after a complete handshake, cut.
    let payload = pattern(40, 2 + vi);
    let msg = frame(
        v,
        KsockHdr::lnet(),
        &put_hdr(me, a.id(), PUT_PORTAL, 9, payload.len() as u32),
        &payload,
    );
    let put_len = if v == ProtoVersion::V1 {
        72 + 8
    } else {
        24 + 72 + 8
    };
    let main_type = if typed {
        ConnType::Control
    } else {
        ConnType::Any
    };
    for k in 0..=msg.len() {
        let w = what(k, "message");
        // A type that went missing while others lived is reconnected at once; cut such
        // attempts first, so that the round starts from nothing.
        acc.drain_attempts(&a);
        // ... and let the backoff of a cut attempt (max_reconnectms = 2) pass, or the round's
        // PUT would wait for the reaper's next tick.
        std::thread::sleep(Duration::from_millis(3));
        let before = a.puts_received().count;
        a.put_with(
            me,
            PUT_PORTAL,
            1000 + k as u64,
            0,
            small.clone(),
            false,
            &tx,
        );
        let (mut s, h) = acc.accept();
        assert_eq!(h.ctype, main_type, "{w}");
        send(&mut s, &acc.reply(&h)).unwrap();
        let mut bulk = Vec::new();
        if typed {
            for _ in 0..2 {
                let (mut bs, bh) = acc.accept();
                send(&mut bs, &acc.reply(&bh)).unwrap();
                bulk.push(bs);
            }
        }
        // The node's PUT comes on the first connection; read it all, so our close is a FIN.
        let got = read_n(&mut s, put_len);
        assert_eq!(&got[got.len() - 8..], &small[..], "{w}");
        assert_eq!(put_result(one_completion(&rx, &w), &w), Ok(0), "{w}");
        let cid = a
            .conns()
            .iter()
            .find(|c| c.info.ctype == main_type)
            .map(|c| c.info.conn)
            .expect("the node's first connection");
        send(&mut s, &msg[..k]).unwrap();
        if k == msg.len() {
            assert!(
                wait_for(Duration::from_secs(5), || a.puts_received().count
                    == before + 1),
                "{w}: the whole PUT was not delivered"
            );
        }
        drop(s);
        drop(bulk);
        let mut reason = None;
        assert!(
            wait_for(Duration::from_secs(5), || {
                reason = a
                    .conn_downs()
                    .iter()
                    .find(|d| d.conn == cid)
                    .map(|d| d.reason);
                reason.is_some()
            }),
            "{w}: connection {cid} did not close"
        );
        let want = if k == 0 || k == msg.len() {
            Error::ConnClosed
        } else {
            Error::UnexpectedEof
        };
        assert_eq!(reason, Some(want), "{w}");
        wait_no_established(&a, &w);
        assert_eq!(
            a.puts_received().count,
            before + u64::from(k == msg.len()),
            "{w}: PUTs delivered"
        );
        cuts += 1;
    }
    assert!(rx.try_recv().is_err(), "a completion too many");
    clean(a);
    cuts
}

#[test]
fn active_cut_at_every_byte_v1() {
    heap_checked(
        "active_cut_at_every_byte_v1",
        active_cut_at_every_byte_v1_case,
    );
}

fn active_cut_at_every_byte_v1_case() {
    assert_eq!(active_cut_sweep(ProtoVersion::V1), 80 + 72 + 40 + 1);
}

#[test]
fn active_cut_at_every_byte_v2() {
    heap_checked(
        "active_cut_at_every_byte_v2",
        active_cut_at_every_byte_v2_case,
    );
}

fn active_cut_at_every_byte_v2_case() {
    assert_eq!(active_cut_sweep(ProtoVersion::V2), 56 + 24 + 72 + 40 + 1);
}

#[test]
fn active_cut_at_every_byte_v3() {
    heap_checked(
        "active_cut_at_every_byte_v3",
        active_cut_at_every_byte_v3_case,
    );
}

fn active_cut_at_every_byte_v3_case() {
    assert_eq!(active_cut_sweep(ProtoVersion::V3), 56 + 24 + 72 + 40 + 1);
}

// ------------------------------------------------------------------------------------------
// 3. Malformed, hostile or unexpected input: the node closes with the right reason

/// What a passive-side case expects back before the node closes.
enum Reply {
    Nothing,
    /// The 16-byte "I'm an old acceptor" request {magic, version 1, NID 0}.
    OldAcceptor,
    /// A hello of this version with ctype NONE and `dst_nid` = the node's own NID.
    NoneHello(ProtoVersion),
}

/// Sends `input` on a new connection from a privileged port, reads what the node sends until
/// it closes, checks it, and checks the reason of the close and that the node is idle again.
fn passive_case(b: &Node, what: &str, input: &[u8], reply: Reply, reason: Error) {
    let n = b.conn_downs().len();
    let mut s = SRC_MISC.connect(listen_of(b));
    let _ = send(&mut s, input);
    let (got, _) = read_to_end(&mut s);
    match reply {
        Reply::Nothing => assert!(got.is_empty(), "{what}: the node answered {got:02x?}"),
        Reply::OldAcceptor => {
            let mut want = connreq(tdinal::wire::Nid(0), Endian::Little);
            want.truncate(16);
            assert_eq!(got, want, "{what}: not the old-acceptor reply");
        }
        Reply::NoneHello(v) => {
            let (h, _, len) = Hello::decode(&got).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(len, got.len(), "{what}: bytes after the hello");
            assert_eq!(
                (h.version, h.ctype, h.src_nid, h.dst_nid),
                (v, ConnType::None, b.nid(), b.nid()),
                "{what}: {h:?}"
            );
        }
    }
    let d = downs_after(b, n + 1, what);
    assert_eq!(d[n].reason, reason, "{what}");
    assert_eq!(d.len(), n + 1, "{what}: more than one close");
    wait_idle(b, what);
}

#[test]
fn malformed_handshakes_are_refused_with_their_reason() {
    heap_checked(
        "malformed_handshakes_are_refused_with_their_reason",
        malformed_handshakes_are_refused_with_their_reason_case,
    );
}

fn malformed_handshakes_are_refused_with_their_reason_case() {
    let b = node(addr(120, 3), &[("accept_timeout", "3")]);
    let me = pid_of(addr(120, 9));
    let to = b.nid();
    let req = connreq(to, Endian::Little);
    let with_req = |h: &[u8]| [req.as_slice(), h].concat();
    let good = |v: ProtoVersion| hello(v, me, to, ConnType::Control, 5);
    let p = |w: &'static str| Error::Protocol(w);
    let mut cases: Vec<(String, Vec<u8>, Reply, Error)> = vec![
        (
            "garbage first word".into(),
            vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4],
            Reply::Nothing,
            p("unrecognised acceptor protocol"),
        ),
        (
            "old socknal magic (LE)".into(),
            tdinal::wire::hello::LNET_PROTO_TCP_MAGIC
                .to_le_bytes()
                .to_vec(),
            Reply::Nothing,
            Error::Refused("'old' socknal/tcpnal acceptor protocol"),
        ),
        (
            "old socknal magic (BE)".into(),
            tdinal::wire::hello::LNET_PROTO_TCP_MAGIC
                .to_be_bytes()
                .to_vec(),
            Reply::Nothing,
            Error::Refused("'old' socknal/tcpnal acceptor protocol"),
        ),
        (
            "LNet protocol query".into(),
            tdinal::wire::hello::LNET_PROTO_MAGIC.to_le_bytes().to_vec(),
            Reply::OldAcceptor,
            p("LNet protocol query"),
        ),
        (
            "acceptor version 2".into(),
            {
                let mut r = req.clone();
                r[4..8].copy_from_slice(&2u32.to_le_bytes());
                r
            },
            Reply::OldAcceptor,
            p("unknown acceptor version"),
        ),
        (
            "connreq for another NID".into(),
            connreq(nid(addr(120, 77)), Endian::Little),
            Reply::Nothing,
            Error::Refused("no matching NI"),
        ),
        (
            "bad hello magic".into(),
            with_req(&[0x55; 56]),
            Reply::Nothing,
            p("bad hello magic"),
        ),
        (
            "hello version 9".into(),
            with_req(&hello_unknown_version(9, me, to)),
            Reply::NoneHello(ProtoVersion::V3),
            p("unknown protocol version"),
        ),
        (
            "V1 hello with major version 2".into(),
            with_req(&hello_v1_major(2, me, to)),
            Reply::NoneHello(ProtoVersion::V3),
            p("unknown protocol version"),
        ),
        (
            "hello from LNET_NID_ANY".into(),
            with_req(&hello_bytes(
                &hello(
                    ProtoVersion::V3,
                    ProcessId::new(tdinal::wire::Nid::ANY, 12345),
                    to,
                    ConnType::Control,
                    5,
                ),
                Endian::Little,
            )),
            Reply::Nothing,
            p("hello from LNET_NID_ANY"),
        ),
        (
            "hello with ctype NONE".into(),
            with_req(&hello_bytes(
                &hello(ProtoVersion::V3, me, to, ConnType::None, 5),
                Endian::Little,
            )),
            Reply::Nothing,
            p("unexpected connection type NONE"),
        ),
        (
            "hello with ctype 7".into(),
            with_req(&{
                let mut h = hello_bytes(&good(ProtoVersion::V3), Endian::Little);
                h[48..52].copy_from_slice(&7u32.to_le_bytes());
                h
            }),
            Reply::Nothing,
            p("bad connection type in hello"),
        ),
    ];
    for v in VERSIONS {
        let ip = u32::from(addr(139, 1));
        let seventeen: Vec<u32> = (0..17).map(|i| ip + i).collect();
        cases.push((
            format!("V{} hello with 17 IPs", v.to_wire()),
            with_req(&hello_with_raw_ips(&good(v), Endian::Little, &seventeen)),
            Reply::Nothing,
            p("bad hello IP list"),
        ));
        cases.push((
            format!("V{} hello with a zero IP", v.to_wire()),
            with_req(&hello_with_raw_ips(
                &good(v),
                Endian::Little,
                &[ip, 0, ip + 1],
            )),
            Reply::Nothing,
            p("bad hello IP list"),
        ));
        // 16 IPs are allowed: the handshake completes, our close is a normal one.
        let sixteen: Vec<u32> = (0..16).map(|i| ip + i).collect();
        let n = b.conn_downs().len();
        let mut s = SRC_MISC.connect(listen_of(&b));
        send(
            &mut s,
            &with_req(&hello_with_raw_ips(&good(v), Endian::Little, &sixteen)),
        )
        .unwrap();
        let (h, _) = read_hello(&mut s);
        assert_eq!((h.version, h.ctype), (v, ConnType::Control));
        drop(s);
        assert_eq!(
            downs_after(&b, n + 1, "16 IPs")[n].reason,
            Error::ConnClosed
        );
        wait_idle(&b, "16 IPs");
    }
    let total = cases.len();
    for (what, input, reply, reason) in cases {
        passive_case(&b, &what, &input, reply, reason);
    }
    assert_eq!(total, 18);
    assert_eq!(b.puts_received().count, 0);
    clean(b);

    // A node that speaks at most V2 answers a V3 hello as an unknown version, in V2.
    let b2 = node(addr(120, 4), &[("protocol", "2")]);
    passive_case(
        &b2,
        "V3 hello to a V2 node",
        &[
            connreq(b2.nid(), Endian::Little),
            hello_bytes(
                &hello(ProtoVersion::V3, me, b2.nid(), ConnType::Control, 5),
                Endian::Little,
            ),
        ]
        .concat(),
        Reply::NoneHello(ProtoVersion::V2),
        p("unknown protocol version"),
    );
    clean(b2);
}

#[test]
fn insecure_source_port_is_refused_before_any_byte_is_read() {
    heap_checked(
        "insecure_source_port_is_refused_before_any_byte_is_read",
        insecure_source_port_is_refused_before_any_byte_is_read_case,
    );
}

fn insecure_source_port_is_refused_before_any_byte_is_read_case() {
    let b = node(addr(121, 3), &[]);
    let me = pid_of(addr(121, 9));
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::V4(listen_of(&b)),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(s.local_addr().unwrap().port() > 1023);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A whole, valid handshake is on its way before the node could look at it.
    let _ = send(
        &mut s,
        &[
            connreq(b.nid(), Endian::Little),
            hello_bytes(
                &hello(ProtoVersion::V3, me, b.nid(), ConnType::Control, 5),
                Endian::Little,
            ),
        ]
        .concat(),
    );
    let (got, _) = read_to_end(&mut s);
    assert!(got.is_empty(), "the node answered {got:02x?}");
    assert!(wait_for(Duration::from_secs(5), || rt_stat(
        &b,
        "accepts_refused"
    ) == 1));
    let st = b.stats().engine;
    assert_eq!(st.refused_insecure, 1);
    assert_eq!(st.rx_bytes, 0, "nothing was read");
    assert!(b.conn_downs().is_empty(), "no connection was ever made");
    wait_idle(&b, "insecure port");
    clean(b);
}

/// A V3 (or V2) CONTROL connection from `me` to `b`, handshake done.
fn established(b: &Node, src: &Sources, me: ProcessId, v: ProtoVersion, inc: u64) -> TcpStream {
    let mut s = src.connect(listen_of(b));
    send(
        &mut s,
        &[
            connreq(b.nid(), Endian::Little),
            hello_bytes(
                &hello(v, me, b.nid(), ConnType::Control, inc),
                Endian::Little,
            ),
        ]
        .concat(),
    )
    .unwrap();
    let (h, _) = read_hello(&mut s);
    assert_eq!((h.version, h.ctype), (v, ConnType::Control), "{h:?}");
    s
}

/// Sends `input` after a complete handshake; expects the node to close with `reason` (or,
/// `None`, to keep the connection) and to deliver `delivered` PUTs.
fn after_handshake_case(
    b: &Node,
    v: ProtoVersion,
    what: &str,
    input: &[u8],
    reason: Option<Error>,
    delivered: u64,
) {
    let me = pid_of(addr(122, 9));
    let n = b.conn_downs().len();
    let before = b.puts_received().count;
    let mut s = established(b, &SRC_LIMITS, me, v, 5);
    let _ = send(&mut s, input);
    match reason {
        Some(reason) => {
            let (got, _) = read_to_end(&mut s);
            assert!(got.is_empty(), "{what}: the node sent {got:02x?}");
            let d = downs_after(b, n + 1, what);
            assert_eq!(d[n].reason, reason, "{what}");
        }
        None => {
            assert!(
                wait_for(Duration::from_secs(10), || b.puts_received().count
                    == before + delivered),
                "{what}: not delivered"
            );
            drop(s);
            let d = downs_after(b, n + 1, what);
            assert_eq!(d[n].reason, Error::ConnClosed, "{what}");
        }
    }
    assert_eq!(
        b.puts_received().count,
        before + delivered,
        "{what}: delivered"
    );
    wait_idle(b, what);
}

#[test]
fn malformed_messages_close_the_connection_with_their_reason() {
    heap_checked(
        "malformed_messages_close_the_connection_with_their_reason",
        malformed_messages_close_the_connection_with_their_reason_case,
    );
}

fn malformed_messages_close_the_connection_with_their_reason_case() {
    let b = node(addr(122, 3), &[]);
    let me = pid_of(addr(122, 9));
    let v3 = ProtoVersion::V3;
    let p = |w: &'static str| Error::Protocol(w);
    let put = |len: u32| put_hdr(me, b.id(), PUT_PORTAL, 1, len);
    let lnet = KsockHdr::lnet();
    let big = (1u32 << 20) + 1;
    let bad_hdr = p("LNet header fails lnet_parse checks");
    let mut count = 0;
    let mut case = |what: &str, input: Vec<u8>, reason: Option<Error>, delivered: u64| {
        after_handshake_case(&b, v3, what, &input, reason, delivered);
        count += 1;
    };
    case(
        "NOOP acknowledging an unknown cookie",
        noop([0, 99]),
        Some(p("unknown ZC-ACK cookie")),
        0,
    );
    case(
        "NOOP acknowledging an unknown range",
        noop([40, 45]),
        Some(p("unknown ZC-ACK cookie")),
        0,
    );
    case(
        "PUT piggybacking an unknown ZC-ACK",
        frame(
            v3,
            KsockHdr {
                zc_cookies: [0, 77],
                ..lnet
            },
            &put(4),
            &[1, 2, 3, 4],
        ),
        Some(p("unknown ZC-ACK cookie")),
        0,
    );
    case(
        "PUT requesting a ZC-ACK of the keepalive cookie",
        frame(
            v3,
            KsockHdr {
                zc_cookies: [1, 0],
                ..lnet
            },
            &put(4),
            &[1, 2, 3, 4],
        ),
        Some(p("ZC request with the reserved keepalive cookie")),
        0,
    );
    case(
        "PUT of 1 MiB + 1",
        frame(v3, lnet, &put(big), &[]),
        Some(bad_hdr),
        0,
    );
    let mut reply = put(big);
    reply.msg = tdinal::wire::LnetMsg::Reply {
        dst_wmd: tdinal::wire::WireHandle {
            interface_cookie: 1,
            object_cookie: 1,
        },
    };
    case(
        "REPLY of 1 MiB + 1",
        frame(v3, lnet, &reply, &[]),
        Some(bad_hdr),
        0,
    );
    let mut get = put(5);
    get.msg = tdinal::wire::LnetMsg::Get {
        return_wmd: tdinal::wire::WireHandle::NONE,
        match_bits: 0,
        ptl_index: 1,
        src_offset: 0,
        sink_length: 5,
    };
    case(
        "GET with a payload",
        frame(v3, lnet, &get, &[0; 5]),
        Some(bad_hdr),
        0,
    );
    let mut hello_msg = put(0);
    hello_msg.msg = tdinal::wire::LnetMsg::Hello {
        incarnation: 1,
        conn_type: 1,
    };
    case(
        "LNet HELLO as a data message",
        frame(v3, lnet, &hello_msg, &[]),
        Some(bad_hdr),
        0,
    );
    case(
        "unknown ksock message type",
        {
            let mut k = lnet.to_bytes(Endian::Little).to_vec();
            k[0..4].copy_from_slice(&0xc5u32.to_le_bytes());
            k
        },
        Some(p("unknown ksock message type")),
        0,
    );
    let mut other = put(0);
    other.dest_nid = nid(addr(122, 50));
    case(
        "PUT for another NID on our net",
        frame(v3, lnet, &other, &[]),
        Some(p("message for another NID on our net")),
        0,
    );
    // The limit itself is fine: a PUT of exactly 1 MiB is delivered.
    let mib = pattern(1 << 20, 3);
    case(
        "PUT of exactly 1 MiB",
        frame(v3, lnet, &put(1 << 20), &mib),
        None,
        1,
    );
    assert_eq!(count, 11);
    assert_eq!(
        b.puts_received().digest,
        tdinal::runtime::data_hash(&mib),
        "the 1 MiB PUT arrived intact"
    );
    clean(b);

    // V2 with checksums: a wrong one fails the message and closes the connection.
    let b2 = node(addr(122, 4), &[("enable_csum", "1")]);
    let me2 = pid_of(addr(122, 9));
    let payload = pattern(100, 4);
    let hdr = put_hdr(me2, b2.id(), PUT_PORTAL, 1, 100);
    let good_csum = lnet.compute_csum_v2(Endian::Little, &[&hdr.to_bytes(), &payload]);
    for (what, csum, reason, delivered) in [
        ("V2 PUT with a right checksum", good_csum, None, 1),
        (
            "V2 PUT with a wrong checksum",
            good_csum ^ 1,
            Some(Error::Checksum {
                wire: good_csum ^ 1,
                computed: good_csum,
            }),
            0,
        ),
    ] {
        let k = KsockHdr { csum, ..lnet };
        after_handshake_case(
            &b2,
            ProtoVersion::V2,
            what,
            &frame(ProtoVersion::V2, k, &hdr, &payload),
            reason,
            delivered,
        );
    }
    clean(b2);
}

/// Active-side replies the node must refuse: each attempt fails the PUT that caused it with
/// EHOSTUNREACH (once), and the connection's close names the reason.
#[test]
fn bad_hello_replies_fail_the_connect_and_its_messages() {
    heap_checked(
        "bad_hello_replies_fail_the_connect_and_its_messages",
        bad_hello_replies_fail_the_connect_and_its_messages_case,
    );
}

fn bad_hello_replies_fail_the_connect_and_its_messages_case() {
    let me = pid_of(addr(123, 9));
    let acc = HostileAcceptor::new(me);
    let a = node(
        addr(123, 2),
        &[
            ("min_reconnectms", "1"),
            ("max_reconnectms", "2"),
            ("sock_timeout", "5"),
        ],
    );
    let (tx, rx) = mpsc::channel();
    let small = std::sync::Arc::<[u8]>::from(pattern(8, 1));
    let p = |w: &'static str| Error::Protocol(w);
    type Mangle = Box<dyn Fn(&Hello) -> Vec<u8>>;
    let ip = u32::from(addr(139, 1));
    let cases: Vec<(&str, Mangle, Error)> = vec![
        (
            "reply from another NID",
            Box::new(move |h| {
                let mut r = hostile_hello(
                    h.version,
                    pid_of(addr(123, 66)),
                    h.src_nid,
                    h.ctype.inverse(),
                );
                r.src_incarnation = 3;
                hello_bytes(&r, Endian::Little)
            }),
            Error::WrongPeer {
                expected: me,
                got: pid_of(addr(123, 66)),
            },
        ),
        (
            "reply from another PID",
            Box::new(move |h| {
                let r = hostile_hello(
                    h.version,
                    ProcessId::new(me.nid, 12346),
                    h.src_nid,
                    h.ctype.inverse(),
                );
                hello_bytes(&r, Endian::Little)
            }),
            Error::WrongPeer {
                expected: me,
                got: ProcessId::new(me.nid, 12346),
            },
        ),
        (
            "reply with 17 IPs",
            Box::new(move |h| {
                let r = hostile_hello(h.version, me, h.src_nid, h.ctype.inverse());
                let ips: Vec<u32> = (0..17).map(|i| ip + i).collect();
                hello_with_raw_ips(&r, Endian::Little, &ips)
            }),
            p("bad hello IP list"),
        ),
        (
            "reply with a zero IP",
            Box::new(move |h| {
                let r = hostile_hello(h.version, me, h.src_nid, h.ctype.inverse());
                hello_with_raw_ips(&r, Endian::Little, &[0])
            }),
            p("bad hello IP list"),
        ),
        (
            "reply with garbage",
            Box::new(|_| vec![0x5a; 56]),
            p("bad hello magic"),
        ),
        (
            "reply with the wrong type",
            Box::new(move |h| {
                hello_bytes(
                    &hostile_hello(h.version, me, h.src_nid, ConnType::BulkIn),
                    Endian::Little,
                )
            }),
            p("mismatched connection types"),
        ),
        (
            "reply in another version",
            Box::new(move |h| {
                hello_bytes(
                    &hostile_hello(ProtoVersion::V2, me, h.src_nid, h.ctype.inverse()),
                    Endian::Little,
                )
            }),
            p("reply hello in another version"),
        ),
        (
            "reply with version 9",
            Box::new(move |h| hello_unknown_version(9, me, h.src_nid)),
            p("unknown protocol version in reply"),
        ),
    ];
    for (what, mangle, reason) in &cases {
        let n = a.conn_downs().len();
        a.put_with(me, PUT_PORTAL, 1, 0, small.clone(), false, &tx);
        let (mut s, h) = acc.accept();
        assert_eq!(h.version, ProtoVersion::V3, "{what}");
        let _ = send(&mut s, &mangle(&h));
        let (_, _) = read_to_end(&mut s);
        assert_eq!(
            put_result(one_completion(&rx, what), what),
            Err(Error::HostUnreachable),
            "{what}"
        );
        let d = downs_after(&a, n + 1, what);
        assert_eq!(d[n].reason, *reason, "{what}");
        wait_no_conns(&a, what);
        std::thread::sleep(Duration::from_millis(3));
    }
    // connect() says what is wrong when the peer claims another identity.
    let h = a.handle();
    let t = std::thread::spawn(move || {
        h.connect(
            me,
            std::net::Ipv4Addr::from(me.nid.addr()),
            988,
            Duration::from_secs(10),
        )
    });
    let (mut s, hh) = acc.accept();
    let r = hostile_hello(
        hh.version,
        pid_of(addr(123, 66)),
        hh.src_nid,
        hh.ctype.inverse(),
    );
    send(&mut s, &hello_bytes(&r, Endian::Little)).unwrap();
    let e = t.join().unwrap().unwrap_err();
    assert!(e.message.contains("claimed to be"), "{e}");
    assert!(matches!(e.reason, Some(Error::WrongPeer { .. })), "{e:?}");
    a.del_peer(None, None);
    acc.drain_attempts(&a);
    assert!(rx.try_recv().is_err(), "a completion too many");
    clean(a);
}

// ------------------------------------------------------------------------------------------
// 4. A ZC-ACK that never comes

fn zc_ack_never_sent(v: ProtoVersion) {
    let vi = version_idx(v);
    let me = pid_of(addr(124 + vi, 9));
    let acc = HostileAcceptor::new(me);
    let typed = v == ProtoVersion::V3;
    let proto = v.to_wire().to_string();
    let mut set = vec![("protocol", proto.as_str()), ("sock_timeout", "2")];
    if !typed {
        set.push(("typed_conns", "0"));
    }
    let a = node(addr(124 + vi, 2), &set);
    let (tx, rx) = mpsc::channel();
    let data = std::sync::Arc::<[u8]>::from(pattern(64 << 10, 5));
    a.put_with(me, PUT_PORTAL, 1, 0, data.clone(), false, &tx);
    let (mut s, h) = acc.accept();
    send(&mut s, &acc.reply(&h)).unwrap();
    let mut others = Vec::new();
    if typed {
        for _ in 0..2 {
            let (mut bs, bh) = acc.accept();
            send(&mut bs, &acc.reply(&bh)).unwrap();
            others.push(bs);
        }
    }
    let k = KsockHdr::decode(&read_n(&mut s, 24), Endian::Little).unwrap();
    assert_eq!(
        k.zc_cookies,
        [2, 0],
        "the 64 KiB PUT asks for a ZC-ACK with cookie 2"
    );
    read_n(&mut s, 72 + data.len());
    let t0 = Instant::now();
    let cid = a
        .conns()
        .iter()
        .find(|c| c.info.addrs.local_port == s.peer_addr().unwrap().port())
        .map(|c| c.info.conn)
        .unwrap();
    // ... and we never acknowledge it.
    let r = put_result(one_completion(&rx, "ZC PUT"), "ZC PUT");
    let waited = t0.elapsed();
    assert_eq!(r, Err(Error::ConnClosed));
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_millis(3500),
        "failed after {waited:?}, sock_timeout is 2 s"
    );
    let reason = a
        .conn_downs()
        .iter()
        .find(|d| d.conn == cid)
        .map(|d| d.reason);
    assert_eq!(reason, Some(Error::Timeout("stale ZC_REQs")));
    let (rest, _) = read_to_end(&mut s);
    assert!(rest.is_empty(), "{rest:02x?}");
    let st = a.stats().engine;
    assert_eq!((st.zc_requests, st.zc_acks_received), (1, 0));
    drop(others);
    wait_no_established(&a, "ZC PUT");
    clean(a);
}

#[test]
fn zc_ack_never_sent_v2() {
    heap_checked("zc_ack_never_sent_v2", zc_ack_never_sent_v2_case);
}

fn zc_ack_never_sent_v2_case() {
    zc_ack_never_sent(ProtoVersion::V2);
}

#[test]
fn zc_ack_never_sent_v3() {
    heap_checked("zc_ack_never_sent_v3", zc_ack_never_sent_v3_case);
}

fn zc_ack_never_sent_v3_case() {
    zc_ack_never_sent(ProtoVersion::V3);
}

// ------------------------------------------------------------------------------------------
// 5. A peer that sends one byte per second during the handshake

#[test]
fn one_byte_per_second_handshake_is_cut_at_accept_timeout() {
    heap_checked(
        "one_byte_per_second_handshake_is_cut_at_accept_timeout",
        one_byte_per_second_handshake_is_cut_at_accept_timeout_case,
    );
}

fn one_byte_per_second_handshake_is_cut_at_accept_timeout_case() {
    let b = node(addr(127, 3), &[("accept_timeout", "2")]);
    let me = pid_of(addr(127, 9));
    let hs = [
        connreq(b.nid(), Endian::Little),
        hello_bytes(
            &hello(ProtoVersion::V3, me, b.nid(), ConnType::Control, 5),
            Endian::Little,
        ),
    ]
    .concat();
    let mut s = SRC_SLOW.connect(listen_of(&b));
    let t0 = Instant::now();
    let mut w = s.try_clone().unwrap();
    let dribble = std::thread::spawn(move || {
        let mut sent = 0usize;
        for byte in hs {
            if w.write_all(&[byte]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
            if t0.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        sent
    });
    let (got, _) = read_to_end(&mut s);
    let closed_after = t0.elapsed();
    assert!(got.is_empty());
    assert!(
        closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_millis(3500),
        "closed after {closed_after:?}, accept_timeout is 2 s"
    );
    let sent = dribble.join().unwrap();
    assert!((2..=5).contains(&sent), "{sent} bytes dribbled");
    let d = downs_after(&b, 1, "slow handshake");
    assert_eq!(d[0].reason, Error::Timeout("handshake"));
    wait_idle(&b, "slow handshake");
    clean(b);
}

#[test]
fn one_byte_per_second_hello_reply_is_cut_at_sock_timeout() {
    heap_checked(
        "one_byte_per_second_hello_reply_is_cut_at_sock_timeout",
        one_byte_per_second_hello_reply_is_cut_at_sock_timeout_case,
    );
}

fn one_byte_per_second_hello_reply_is_cut_at_sock_timeout_case() {
    let me = pid_of(addr(128, 9));
    let acc = HostileAcceptor::new(me);
    let a = node(addr(128, 2), &[("sock_timeout", "2")]);
    let (tx, rx) = mpsc::channel();
    a.put_with(
        me,
        PUT_PORTAL,
        1,
        0,
        std::sync::Arc::from(pattern(8, 1)),
        false,
        &tx,
    );
    let (mut s, h) = acc.accept();
    let reply = acc.reply(&h);
    let t0 = Instant::now();
    let mut sent = 0;
    for byte in reply {
        if s.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        let mut probe = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        match s.read(&mut probe) {
            Ok(0) | Err(_) if t0.elapsed() < Duration::from_millis(900) => {
                // a timeout of our own read: go on
            }
            Ok(0) => break,
            Ok(_) => panic!("the node wrote during its handshake"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    let closed_after = t0.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_millis(4500),
        "closed after {closed_after:?} ({sent} bytes), sock_timeout is 2 s"
    );
    assert_eq!(
        put_result(one_completion(&rx, "slow reply"), "slow reply"),
        Err(Error::HostUnreachable)
    );
    let d = downs_after(&a, 1, "slow reply");
    assert_eq!(d[0].reason, Error::Timeout("handshake"));
    wait_no_conns(&a, "slow reply");
    clean(a);
}

use std::io::{Read, Write};

// ------------------------------------------------------------------------------------------
// 6. A flood of half-open connections

#[test]
fn half_open_flood_is_bounded_and_a_good_peer_is_served() {
    heap_checked(
        "half_open_flood_is_bounded_and_a_good_peer_is_served",
        half_open_flood_is_bounded_and_a_good_peer_is_served_case,
    );
}

fn half_open_flood_is_bounded_and_a_good_peer_is_served_case() {
    const MAX: u64 = 8;
    const FLOOD: u64 = 40;
    let (ia, ib, ic) = (addr(129, 2), addr(129, 3), addr(129, 4));
    let b = node(ib, &[("max_pending_accepts", "8"), ("accept_timeout", "2")]);
    let retry = [("min_reconnectms", "100"), ("max_reconnectms", "200")];
    let (a, c) = (node(ia, &retry), node(ic, &retry));
    a.connect(b.id(), ib, 988, Duration::from_secs(10)).unwrap();
    let t0 = Instant::now();
    let refused_before = rt_stat(&b, "accepts_refused");
    // Half of them send nothing, half a partial acceptor request.
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|i| {
            let mut s = SRC_FLOOD.connect(listen_of(&b));
            if i % 2 == 1 {
                let _ = send(&mut s, &connreq(b.nid(), Endian::Little)[..7]);
            }
            s
        })
        .collect();
    assert!(wait_for(Duration::from_secs(5), || rt_stat(&b, "accepts")
        >= 3 + FLOOD));
    let refused = rt_stat(&b, "accepts_refused") - refused_before;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the flood took too long to test the bound"
    );
    assert_eq!(
        refused,
        FLOOD - MAX,
        "pending handshakes are bounded by max_pending_accepts"
    );
    // The refused ones are closed at once, the pending ones stay until accept_timeout.
    let mut closed_at_once = 0;
    for s in &mut flood {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut x = [0u8; 1];
        match s.read(&mut x) {
            Ok(0) => closed_at_once += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed_at_once += 1,
            Ok(_) => panic!("the node wrote to a half-open connection"),
            Err(_) => {} // still open: our read timed out
        }
    }
    assert_eq!(closed_at_once, FLOOD - MAX);
    // The good peer's connections carry on during the flood.
    let (tx, rx) = mpsc::channel();
    let mib = std::sync::Arc::<[u8]>::from(pattern(1 << 20, 6));
    for i in 0..4 {
        a.put_with(b.id(), PUT_PORTAL, i, 0, mib.clone(), true, &tx);
    }
    for _ in 0..4 {
        assert_eq!(
            put_result(one_completion(&rx, "flood PUT"), "flood PUT"),
            Ok(1 << 20)
        );
    }
    assert_eq!(a.ping(b.id(), Duration::from_secs(5)).unwrap().len(), 2);
    assert!(
        t0.elapsed() < Duration::from_millis(1900),
        "served before accept_timeout"
    );
    // A new peer gets in once the half-open ones time out (accept_timeout 2 s + a reaper tick).
    // While the slots are full its attempts are refused (reset: `connect` reports that at once,
    // and the route keeps retrying); ask again until it is in.
    let mut refusals = 0;
    let up = wait_for(Duration::from_secs(8), || {
        match c.connect(b.id(), ib, 988, Duration::from_secs(1)) {
            Ok(v) => v.len() == 3,
            Err(_) => {
                refusals += 1;
                std::thread::sleep(Duration::from_millis(50));
                false
            }
        }
    });
    assert!(up, "a new peer could not connect after the flood");
    assert!(
        refusals >= 1,
        "the new peer got in while the slots were full"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "slots freed before accept_timeout"
    );
    let timed_out = b
        .conn_downs()
        .iter()
        .filter(|d| d.reason == Error::Timeout("handshake"))
        .count() as u64;
    assert_eq!(
        timed_out, MAX,
        "the pending ones were cut at accept_timeout"
    );
    for s in &mut flood {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (_, _) = read_to_end(s);
    }
    drop(flood);
    clean(a);
    clean(c);
    wait_idle(&b, "after the flood");
    clean(b);
}

// ------------------------------------------------------------------------------------------
// 7. A peer that reboots (new incarnation) while its old connections are still open

#[test]
fn rebooted_connector_closes_old_connections_is_refused_once_then_served() {
    heap_checked(
        "rebooted_connector_closes_old_connections_is_refused_once_then_served",
        rebooted_connector_closes_old_connections_is_refused_once_then_served_case,
    );
}

fn rebooted_connector_closes_old_connections_is_refused_once_then_served_case() {
    let b = node(addr(130, 3), &[]);
    let me = pid_of(addr(130, 9));
    let mut old = established(&b, &SRC_REBOOT, me, ProtoVersion::V3, 1);
    let n = b.conn_downs().len();
    // The same NID comes back with another incarnation on a new connection.
    let mut s = SRC_REBOOT.connect(listen_of(&b));
    send(
        &mut s,
        &[
            connreq(b.nid(), Endian::Little),
            hello_bytes(
                &hello(ProtoVersion::V3, me, b.nid(), ConnType::BulkIn, 2),
                Endian::Little,
            ),
        ]
        .concat(),
    )
    .unwrap();
    let (reply, _) = read_hello(&mut s);
    assert_eq!(reply.ctype, ConnType::None, "refused once");
    let (rest, _) = read_to_end(&mut s);
    assert!(rest.is_empty());
    // The old connection was closed by the node.
    let (got, _) = read_to_end(&mut old);
    assert!(got.is_empty());
    let d = downs_after(&b, n + 2, "reboot");
    let reasons: Vec<Error> = d[n..].iter().map(|x| x.reason).collect();
    assert!(
        reasons.contains(&Error::Protocol("peer rebooted (incarnation changed)")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&Error::Protocol(
            "peer rebooted or changed protocol (ESTALE)"
        )),
        "{reasons:?}"
    );
    assert_eq!(b.stats().engine.incarnation_changes, 1);
    // The retry with the new incarnation is served.
    let mut new = established(&b, &SRC_REBOOT, me, ProtoVersion::V3, 2);
    let payload = pattern(64, 7);
    send(
        &mut new,
        &frame(
            ProtoVersion::V3,
            KsockHdr::lnet(),
            &put_hdr(me, b.id(), PUT_PORTAL, 1, 64),
            &payload,
        ),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(5), || b.puts_received().count == 1));
    drop(new);
    wait_idle(&b, "after the reboot");
    clean(b);
}

#[test]
fn rebooted_acceptor_is_detected_by_the_connector() {
    heap_checked(
        "rebooted_acceptor_is_detected_by_the_connector",
        rebooted_acceptor_is_detected_by_the_connector_case,
    );
}

fn rebooted_acceptor_is_detected_by_the_connector_case() {
    let me = pid_of(addr(131, 9));
    let acc = HostileAcceptor::new(me);
    let a = node(
        addr(131, 2),
        &[("min_reconnectms", "50"), ("max_reconnectms", "100")],
    );
    let ip = std::net::Ipv4Addr::from(me.nid.addr());
    // Incarnation 1: three connections.
    let h = a.handle();
    let t = std::thread::spawn(move || h.connect(me, ip, 988, Duration::from_secs(10)));
    let mut first = Vec::new();
    for _ in 0..3 {
        let (mut s, hh) = acc.accept();
        let mut r = hostile_hello(hh.version, me, hh.src_nid, hh.ctype.inverse());
        r.src_incarnation = 1;
        send(&mut s, &hello_bytes(&r, Endian::Little)).unwrap();
        first.push((s, hh.ctype));
    }
    assert_eq!(t.join().unwrap().unwrap().len(), 3);
    // "Reboot": the BULK_IN connection goes; the node reconnects it (persistent route) and
    // meets incarnation 2 while CONTROL and BULK_OUT of incarnation 1 are still open.
    let i = first
        .iter()
        .position(|(_, t)| *t == ConnType::BulkIn)
        .unwrap();
    drop(first.remove(i));
    let (mut s, hh) = acc.accept();
    assert_eq!(hh.ctype, ConnType::BulkIn);
    let mut r = hostile_hello(hh.version, me, hh.src_nid, hh.ctype.inverse());
    r.src_incarnation = 2;
    send(&mut s, &hello_bytes(&r, Endian::Little)).unwrap();
    // The node closes everything of incarnation 1 and that attempt, then reconnects at once.
    for (mut o, _) in first {
        let (_, _) = read_to_end(&mut o);
    }
    let (_, _) = read_to_end(&mut s);
    let mut second = Vec::new();
    for _ in 0..3 {
        let (mut s, hh) = acc.accept();
        let mut r = hostile_hello(hh.version, me, hh.src_nid, hh.ctype.inverse());
        r.src_incarnation = 2;
        send(&mut s, &hello_bytes(&r, Endian::Little)).unwrap();
        second.push((s, hh.ctype));
    }
    assert!(wait_for(Duration::from_secs(5), || a.conns().len() == 3));
    assert_eq!(a.stats().engine.incarnation_changes, 1);
    assert!(a
        .conn_downs()
        .iter()
        .any(|d| d.reason == Error::Protocol("peer rebooted (ESTALE)")));
    // And it talks to the new incarnation.
    let (tx, rx) = mpsc::channel();
    a.put_with(
        me,
        PUT_PORTAL,
        1,
        0,
        std::sync::Arc::from(pattern(8, 1)),
        false,
        &tx,
    );
    let ctl = &mut second
        .iter_mut()
        .find(|(_, t)| *t == ConnType::Control)
        .unwrap()
        .0;
    let got = read_n(ctl, 24 + 72 + 8);
    assert_eq!(&got[96..], &pattern(8, 1)[..]);
    assert_eq!(
        put_result(one_completion(&rx, "after reboot"), "after reboot"),
        Ok(0)
    );
    a.del_peer(None, None);
    drop(second);
    acc.drain_attempts(&a);
    clean(a);
}

// ------------------------------------------------------------------------------------------
// 8. A peer process killed in the middle of a bulk transfer, then restarted

mod runtime_common;

#[test]
fn peer_killed_mid_bulk_then_restarted() {
    let (ok_before, failed, lost_acks, settled) = heap_checked(
        "peer_killed_mid_bulk_then_restarted",
        peer_killed_mid_bulk_then_restarted_case,
    );
    eprintln!(
        "kill -9: {ok_before} PUTs acknowledged, {failed} failed, {lost_acks} waiting for a lost LNet ACK, settled in {settled:?}"
    );
}

/// (PUTs acknowledged before the kill, failed, waiting for a lost LNet ACK, time to settle)
fn peer_killed_mid_bulk_then_restarted_case() -> (u64, usize, usize, Duration) {
    const N: u64 = 64;
    let (ia, ib) = (addr(132, 2), addr(132, 3));
    let dir = runtime_common::TempDir::new("reliability-kill");
    let bnid = format!("{ib}@tcp");
    let b = runtime_common::Daemon::start(&dir, "b1", &bnid, &[]);
    let a = node(
        ia,
        &[
            ("min_reconnectms", "100"),
            ("max_reconnectms", "400"),
            ("sock_timeout", "3"),
        ],
    );
    let idb = pid_of(ib);
    a.connect(idb, ib, 988, Duration::from_secs(10)).unwrap();
    let (tx, rx) = mpsc::channel();
    let mib = std::sync::Arc::<[u8]>::from(pattern(1 << 20, 8));
    let mut ops = std::collections::HashSet::new();
    for i in 0..N {
        assert!(ops.insert(a.put_with(idb, PUT_PORTAL, i, i, mib.clone(), true, &tx)));
    }
    let mut done: std::collections::HashMap<u64, Result<u32, Error>> = Default::default();
    let take = |ev: LnetEvent, done: &mut std::collections::HashMap<u64, Result<u32, Error>>| {
        let LnetEvent::PutDone { op, result } = ev else {
            panic!("unexpected {ev:?}")
        };
        assert!(ops.contains(&op), "completion of an unknown operation {op}");
        assert!(
            done.insert(op, result).is_none(),
            "operation {op} completed twice"
        );
    };
    while done.values().filter(|r| r.is_ok()).count() < 8 {
        take(one_completion(&rx, "before the kill"), &mut done);
    }
    // kill -9 in the middle of the transfer.
    tdinal::runtime::sys::kill(b.pid(), 9).unwrap();
    drop(b);
    let t_kill = Instant::now();
    // Everything in flight is finalized: failed (connection closed, then unreachable), or still
    // waiting for an LNet ACK that died with the peer (LNet has no timeout for those).
    let settled = wait_for(Duration::from_secs(10), || {
        while let Ok(ev) = rx.try_recv() {
            take(ev, &mut done);
        }
        let s = a.stats().engine;
        a.conns().is_empty()
            && s.tx_msgs_open() == 0
            && s.zc_waiting == 0
            && s.rx_msgs_open == 0
            && done.len() + a.lnet_ops_open() == N as usize
    });
    assert!(
        settled,
        "after the kill: {} completed, {} open, {:?}",
        done.len(),
        a.lnet_ops_open(),
        gauges(&a.stats().engine)
    );
    let failed: Vec<Error> = done.values().filter_map(|r| r.err()).collect();
    assert!(
        !failed.is_empty(),
        "a kill mid-transfer must fail something"
    );
    for e in &failed {
        assert!(
            matches!(e, Error::ConnClosed | Error::HostUnreachable | Error::Io(_)),
            "unexpected failure {e:?}"
        );
    }
    let ok_before = done.values().filter(|r| r.is_ok()).count() as u64;
    let lost_acks = a.lnet_ops_open();
    let figures = (ok_before, failed.len(), lost_acks, t_kill.elapsed());
    // The peer comes back with a new incarnation; the persistent route finds it.
    let b = runtime_common::Daemon::start(&dir, "b2", &bnid, &[]);
    assert!(
        wait_for(Duration::from_secs(10), || a.conns().len() == 3),
        "no reconnection to the restarted peer: {:?}",
        a.conn_downs().last()
    );
    let mut again = std::collections::HashSet::new();
    for i in 0..8 {
        again.insert(a.put_with(idb, PUT_PORTAL, 100 + i, 0, mib.clone(), true, &tx));
    }
    for _ in 0..8 {
        let ev = one_completion(&rx, "after the restart");
        let LnetEvent::PutDone { op, result } = ev else {
            panic!("unexpected {ev:?}")
        };
        assert!(again.remove(&op), "unexpected completion {op}");
        assert_eq!(result, Ok(1 << 20));
    }
    assert_eq!(b.stat("puts_received"), 8);
    assert_eq!(
        b.stat("put_digest"),
        tdinal::runtime::data_hash(&mib).wrapping_mul(8)
    );
    b.shutdown();
    assert!(rx.try_recv().is_err(), "a completion too many");
    clean(a);
    figures
}
