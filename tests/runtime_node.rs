//! The runtime in-process (the library API the CLI is built on): privileged source ports and
//! what happens when one is busy, the acceptor's refusals, clean shutdown with transfers in
//! flight on either side, the control socket server.

mod runtime_common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use runtime_common::lo;
use tdinal::engine::Error;
use tdinal::runtime::control::{self, Request, Server};
use tdinal::runtime::{Node, NodeConfig};
use tdinal::wire::{Nid, ProcessId};

fn nid(ip: Ipv4Addr) -> Nid {
    Nid::new(tdinal::wire::Net::TCP0, u32::from(ip))
}

fn node(ip: Ipv4Addr, set: &[(&str, &str)]) -> Node {
    let mut c = NodeConfig::new(nid(ip));
    for (n, v) in set {
        c.set(n, v).unwrap();
    }
    Node::start(c).unwrap_or_else(|e| panic!("start {ip}: {e}"))
}

fn stat(n: &Node, name: &str) -> u64 {
    n.stats()
        .rt
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no runtime stat {name}"))
}

fn clean(n: Node) {
    let r = n.shutdown();
    r.check().unwrap();
    assert_eq!(r.stats.conns_open, 0);
}

#[test]
fn connects_from_privileged_ports_and_skips_a_busy_one() {
    let (ia, ib) = (lo(50, 2), lo(50, 3));
    // Something else holds 1023 on A's address: the runtime must move on to 1022.
    let _busy = TcpListener::bind(SocketAddrV4::new(ia, 1023)).unwrap();
    let (a, b) = (node(ia, &[]), node(ib, &[]));
    let conns = a
        .connect(ProcessId::lustre(nid(ib)), ib, 988, Duration::from_secs(10))
        .unwrap();
    let mut ports: Vec<u16> = conns.iter().map(|c| c.info.addrs.local_port).collect();
    ports.sort_unstable();
    assert_eq!(ports, [1020, 1021, 1022], "{conns:?}");
    assert!(stat(&a, "connect_port_retries") >= 1);
    // The passive side saw privileged ports: accept=secure took them.
    for c in b.conns() {
        assert!(c.info.addrs.peer_port <= 1023 && !c.info.active, "{c:?}");
        let m = c.meta.expect("configured");
        assert!(!m.nagle && m.txbuf > 0 && m.rxbuf > 0);
    }
    assert_eq!(a.ping(b.id(), Duration::from_secs(5)).unwrap().len(), 2);
    clean(a);
    clean(b);
}

#[test]
fn secure_acceptor_refuses_unprivileged_source_ports() {
    let ib = lo(51, 3);
    let b = node(ib, &[]);
    // A plain connect uses an ephemeral (unprivileged) source port.
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::V4(SocketAddrV4::new(ib, 988)),
        Duration::from_secs(2),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    // Closed before any byte is read: EOF (or a reset), never data.
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the acceptor to close the socket, got {other:?}"),
    }
    assert_eq!(stat(&b, "accepts_refused"), 1);
    assert_eq!(b.stats().engine.refused_insecure, 1);
    clean(b);
}

#[test]
fn accept_none_listens_nowhere_and_connects_fail_with_a_reason() {
    let (ia, ib) = (lo(52, 2), lo(52, 3));
    let b = node(ib, &[("accept", "none")]);
    assert!(b.listen_addr().is_none());
    let a = node(ia, &[]);
    let t0 = Instant::now();
    let e = a
        .connect(ProcessId::lustre(nid(ib)), ib, 988, Duration::from_secs(10))
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "should fail fast");
    assert!(e.to_string().contains("nothing listens there"), "{e}");
    assert_eq!(e.reason, Some(Error::Io(111)));
    // A ping to a node nobody can reach fails (no connection can be made).
    let r = a.ping(ProcessId::lustre(nid(lo(52, 9))), Duration::from_secs(3));
    assert!(
        matches!(r, Err(Error::HostUnreachable) | Err(Error::Io(_))),
        "{r:?}"
    );
    clean(a);
    clean(b);
}

#[test]
fn sender_shutdown_with_puts_in_flight_finalizes_everything() {
    let (ia, ib) = (lo(53, 2), lo(53, 3));
    let (a, b) = (node(ia, &[]), node(ib, &[]));
    let idb = ProcessId::lustre(nid(ib));
    a.connect(idb, ib, 988, Duration::from_secs(10)).unwrap();
    let h = a.handle();
    let t = std::thread::spawn(move || h.put(idb, 1 << 20, 100_000, Duration::from_secs(20)));
    // Let the transfer get going, then stop the sender under it.
    assert!(b.wait_puts_received(3, Duration::from_secs(20)));
    let r = a.shutdown();
    r.check().unwrap();
    let res = t.join().unwrap();
    assert!(res.is_err(), "the PUTs cannot all have completed: {res:?}");
    // The receiver saw its connections go and is idle too.
    let t0 = Instant::now();
    while !b.conns().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "B kept connections");
        std::thread::sleep(Duration::from_millis(10));
    }
    clean(b);
}

#[test]
fn receiver_shutdown_mid_transfer_fails_the_puts_and_leaves_nothing() {
    let (ia, ib) = (lo(54, 2), lo(54, 3));
    let retry = [("min_reconnectms", "100"), ("max_reconnectms", "200")];
    let (a, b) = (node(ia, &retry), node(ib, &[]));
    let idb = ProcessId::lustre(nid(ib));
    a.connect(idb, ib, 988, Duration::from_secs(10)).unwrap();
    let h = a.handle();
    let t = std::thread::spawn(move || h.put(idb, 1 << 20, 200, Duration::from_secs(1)));
    assert!(b.wait_puts_received(3, Duration::from_secs(20)));
    clean(b);
    // The sender's PUTs cannot all succeed: some fail (connections closed, then the peer
    // unreachable) and some wait for LNet ACKs that will never come (LNet has no timeout for
    // those; `put` gives up after 1 s without progress).
    match t.join().unwrap() {
        Ok(rep) => assert!(!rep.failed.is_empty(), "{rep:?}"),
        Err(e) => assert!(e.contains("stalled"), "{e}"),
    }
    // Whatever was still queued, parked or waiting for a ZC-ACK is finalized by shutdown.
    clean(a);
}

#[test]
fn control_server_answers_and_guards_its_socket() {
    let ia = lo(55, 2);
    let a = node(ia, &[]);
    let dir = runtime_common::TempDir::new("ctl");
    let path = dir.path("a.sock");
    let srv = Server::start(a.handle(), &path).unwrap();
    let t = Duration::from_secs(5);
    let stats = control::call(&path, &Request::Stats, t).unwrap();
    assert!(stats.contains(&"conns_open 0".to_string()), "{stats:?}");
    assert!(stats.iter().any(|l| l.starts_with("schedulers ")));
    assert_eq!(
        control::call(&path, &Request::PeerList, t).unwrap(),
        Vec::<String>::new()
    );
    // Errors come back as messages.
    let e = control::call(
        &path,
        &Request::Ping {
            id: ProcessId::lustre(nid(lo(55, 9))),
            timeout_ms: 500,
        },
        t,
    )
    .unwrap_err();
    assert!(e.starts_with("failed to ping 12345-"), "{e}");
    // A second server on a live socket is refused; the first keeps serving.
    let e = Server::start(a.handle(), &path).err().expect("refused");
    assert!(e.contains("another daemon answers"), "{e}");
    assert!(control::call(&path, &Request::Stats, t).is_ok());
    // `shutdown` only asks the owner to stop.
    assert!(!a.stop_requested());
    control::call(&path, &Request::Shutdown, t).unwrap();
    assert!(a.stop_requested());
    srv.stop();
    assert!(!path.exists(), "socket file removed");
    // A stale socket file (no server) is replaced.
    std::os::unix::net::UnixListener::bind(&path)
        .map(drop)
        .unwrap();
    assert!(path.exists());
    let srv = Server::start(a.handle(), &path).unwrap();
    assert!(control::call(&path, &Request::Stats, t).is_ok());
    srv.stop();
    clean(a);
}

#[test]
fn control_requests_are_served_side_by_side() {
    let (ia, ib) = (lo(56, 2), lo(56, 3));
    let (a, b) = (node(ia, &[]), node(ib, &[]));
    let idb = ProcessId::lustre(nid(ib));
    a.connect(idb, ib, 988, Duration::from_secs(10)).unwrap();
    let dir = runtime_common::TempDir::new("ctl2");
    let path = dir.path("a.sock");
    let srv = Server::start(a.handle(), &path).unwrap();
    let p2 = path.clone();
    let put = std::thread::spawn(move || {
        let req = Request::Put {
            id: idb,
            size: 1 << 20,
            count: 400,
        };
        control::call(&p2, &req, Duration::from_secs(60))
    });
    assert!(b.wait_puts_received(2, Duration::from_secs(20)));
    // A long PUT request does not hold up others.
    let t0 = Instant::now();
    let stats = control::call(&path, &Request::Stats, Duration::from_secs(5)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(!put.is_finished(), "stats was answered only after the PUTs");
    assert!(stats.iter().any(|l| l == "conns_open 3"), "{stats:?}");
    let out = put.join().unwrap().unwrap();
    assert!(out[0].contains("400 acknowledged, 0 failed"), "{out:?}");
    assert_eq!(b.puts_received().count, 400);
    srv.stop();
    clean(a);
    clean(b);
}

/// Many threads PUT to the same peer at once: each `put` queues under the node lock and
/// writes on the connection itself when no send is in flight (`direct_writes`), or leaves the
/// bytes to whoever holds the connection's send side. Every byte must arrive once and intact:
/// the receiver's digest is the sum of every thread's.
#[test]
fn concurrent_callers_write_intact_streams_to_one_peer() {
    let (ia, ib) = (lo(57, 2), lo(57, 3));
    let (a, b) = (node(ia, &[]), node(ib, &[]));
    let idb = ProcessId::lustre(nid(ib));
    a.connect(idb, ib, 988, Duration::from_secs(10)).unwrap();
    let sizes: [usize; 8] = [0, 8, 100, 1000, 4096, 10_000, 65_536, 300_000];
    let count = |size: usize| if size >= 65_536 { 60 } else { 600 };
    let threads: Vec<_> = sizes
        .iter()
        .map(|&size| {
            let h = a.handle();
            std::thread::spawn(move || h.put(idb, size, count(size), Duration::from_secs(20)))
        })
        .collect();
    let mut digest = 0u64;
    let mut total = 0u64;
    for (t, &size) in threads.into_iter().zip(sizes.iter()) {
        let rep = t.join().unwrap().unwrap();
        assert_eq!(rep.ok, count(size), "{rep:?}");
        assert!(rep.failed.is_empty(), "{rep:?}");
        digest = digest.wrapping_add(rep.digest);
        total += count(size);
    }
    assert!(b.wait_puts_received(total, Duration::from_secs(20)));
    let got = b.puts_received();
    assert_eq!(got.count, total);
    assert_eq!(
        got.digest, digest,
        "a PUT arrived corrupted, twice or not at all"
    );
    assert!(stat(&a, "direct_writes") > 0, "no caller wrote itself");
    assert!(a.wait_sends_done(Duration::from_secs(10)));
    clean(a);
    clean(b);
}

/// Connections closed again and again while callers write on them: a close must never free
/// bytes a caller is still writing (the caller then releases the connection), no PUT may arrive
/// damaged, and both nodes must end idle.
#[test]
fn closes_racing_caller_writes_leave_nothing_behind() {
    let (ia, ib) = (lo(58, 2), lo(58, 3));
    let retry = [("min_reconnectms", "10"), ("max_reconnectms", "50")];
    let (a, b) = (node(ia, &retry), node(ib, &[]));
    let idb = ProcessId::lustre(nid(ib));
    a.connect(idb, ib, 988, Duration::from_secs(10)).unwrap();
    let (tap, seen) = std::sync::mpsc::channel();
    b.tap_puts(Some(tap));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sizes: [usize; 4] = [0, 64, 5000, 200_000];
    let threads: Vec<_> = sizes
        .iter()
        .map(|&size| {
            let h = a.handle();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && rounds < 200 {
                    // PUTs whose connection closes under them fail, or wait for an LNet ACK
                    // that never comes (`put` gives up after the stall time): both are fine.
                    let _ = h.put(idb, size, 20, Duration::from_millis(300));
                    rounds += 1;
                }
            })
        })
        .collect();
    let mut closed = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        closed += a.disconnect(None, None);
        std::thread::sleep(Duration::from_millis(25));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(closed > 10, "only {closed} connections closed");
    eprintln!(
        "closes racing caller writes: {closed} connections closed, {} caller writes, {} \
         connections released by the caller that was writing",
        stat(&a, "direct_writes"),
        stat(&a, "caller_releases")
    );
    assert!(stat(&a, "direct_writes") > 0, "no caller wrote itself");
    // Whatever arrived is intact.
    let mut n = 0;
    while let Ok(p) = seen.try_recv() {
        assert_eq!(
            p.data,
            tdinal::runtime::put_pattern(p.data.len()),
            "damaged PUT"
        );
        n += 1;
    }
    assert!(n > 0, "no PUT arrived");
    // Both nodes end idle (the sender fails what is still open at shutdown).
    clean(a);
    b.tap_puts(None);
    clean(b);
}
