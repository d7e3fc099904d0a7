//! Helpers of the reliability tests (`tests/reliability_*.rs`): loopback addresses of this run,
//! nodes with small timeouts, hand-built handshake and message bytes (the crate's `wire`
//! encoders), sockets from privileged source ports, bounded waits, and the checks every test
//! ends with (engine gauges at zero, a clean `ShutdownReport`).
#![allow(dead_code)]

pub mod alloc;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tdinal::engine::Stats;
use tdinal::runtime::{sys, Node, NodeConfig, NodeHandle};
use tdinal::wire::acceptor::ConnReq;
use tdinal::wire::hello::{
    LNET_PROTO_MAGIC, OFF_KSHM_NIPS, OFF_V1_PAYLOAD_LENGTH, OFF_V1_VERSION_MAJOR,
};
use tdinal::wire::{
    ConnType, Endian, Hello, IpList, KsockHdr, LnetHdr, LnetMsg, Net, Nid, ProcessId, ProtoVersion,
    WireHandle,
};

/// The second octet of this run's loopback addresses (127.X.…), from the process id, so two
/// runs at once do not collide (the runtime tests use the same scheme with other third octets).
pub fn run_octet() -> u8 {
    (100 + std::process::id() % 100) as u8
}

/// 127.X.`c`.`d`. Third octets 100..=199 belong to the reliability tests.
pub fn addr(c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, run_octet(), c, d)
}

pub fn nid(ip: Ipv4Addr) -> Nid {
    Nid::new(Net::TCP0, u32::from(ip))
}

pub fn pid_of(ip: Ipv4Addr) -> ProcessId {
    ProcessId::lustre(nid(ip))
}

/// Starts a node on `ip` (port 988) with `set` applied after the defaults.
/// Logs at warning level unless `TDINAL_TEST_LOG` is set (`debug`, `info`, …).
pub fn node(ip: Ipv4Addr, set: &[(&str, &str)]) -> Node {
    quiet_logs();
    let mut c = NodeConfig::new(nid(ip));
    for (n, v) in set {
        c.set(n, v)
            .unwrap_or_else(|e| panic!("setting {n}={v}: {e:?}"));
    }
    Node::start(c).unwrap_or_else(|e| panic!("start {ip}: {e}"))
}

/// The runtime's log level for tests: warnings, or `TDINAL_TEST_LOG` (error, warning, info,
/// debug, trace).
pub fn quiet_logs() {
    use tdinal::runtime::log::{set_level, Level};
    let l = match std::env::var("TDINAL_TEST_LOG").as_deref() {
        Ok("error") => Level::Error,
        Ok("info") => Level::Info,
        Ok("debug") => Level::Debug,
        Ok("trace") => Level::Trace,
        _ => Level::Warn,
    };
    set_level(l);
}

/// Polls `cond` every 2 ms until it holds; false after `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The gauges that must return to zero, by name.
pub fn gauges(s: &Stats) -> [(&'static str, u64); 5] {
    [
        ("conns_open", s.conns_open),
        ("peers", s.peers),
        ("rx_msgs_open", s.rx_msgs_open),
        ("tx_msgs_open", s.tx_msgs_open()),
        ("zc_waiting", s.zc_waiting),
    ]
}

/// Waits (at most 5 s) until the node holds no connection, peer or message; panics with the
/// gauges otherwise.
pub fn wait_idle(n: &NodeHandle, what: &str) {
    let ok = wait_for(Duration::from_secs(5), || {
        gauges(&n.stats().engine).iter().all(|(_, v)| *v == 0)
    });
    assert!(
        ok,
        "{what}: node {} not idle after 5 s: {:?}",
        n.nid(),
        gauges(&n.stats().engine)
    );
}

/// Waits until the node holds no connection and no message (peers with routes may stay).
pub fn wait_no_conns(n: &NodeHandle, what: &str) {
    let ok = wait_for(Duration::from_secs(5), || {
        let s = n.stats().engine;
        s.conns_open == 0 && s.rx_msgs_open == 0 && s.tx_msgs_open() == 0 && s.zc_waiting == 0
    });
    assert!(
        ok,
        "{what}: node {} kept connections or messages: {:?}",
        n.nid(),
        gauges(&n.stats().engine)
    );
}

/// Waits until the node has no established connection and no message (a reconnection attempt
/// may be under way).
pub fn wait_no_established(n: &NodeHandle, what: &str) {
    let ok = wait_for(Duration::from_secs(5), || {
        let s = n.stats().engine;
        n.conns().is_empty() && s.rx_msgs_open == 0 && s.tx_msgs_open() == 0 && s.zc_waiting == 0
    });
    assert!(
        ok,
        "{what}: node {} kept connections or messages: {:?} {:?}",
        n.nid(),
        gauges(&n.stats().engine),
        n.conns()
    );
}

/// A runtime counter of the node (`accepts`, `accepts_refused`, …).
pub fn rt_stat(n: &NodeHandle, name: &str) -> u64 {
    n.stats()
        .rt
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no runtime stat {name}"))
}

/// Shuts the node down and asserts the clean-shutdown check (engine idle, gauges zero, no
/// forced close, no LNet operation open).
pub fn clean(n: Node) {
    let nid = n.nid();
    let r = n.shutdown();
    if let Err(e) = r.check() {
        panic!("{nid}: {e}");
    }
    for (name, v) in gauges(&r.stats) {
        assert_eq!(v, 0, "{nid}: {name} after shutdown");
    }
}

/// Runs `body` (one whole test: its nodes, sockets and channels live and die inside it) with
/// the process heap measured around it, one such test at a time: afterwards the heap must be
/// back where it was, to the byte and the block (the user-space stand-in for the driver's pool
/// bytes). Needs the binary to install [`alloc::Counting`]. Dropped connections may still be
/// in the hands of a node's threads for a moment after `shutdown` returned; they are all
/// joined by then, so the comparison is exact and immediate, a short bounded wait aside for
/// the few allocations the test harness itself makes. The body must not print (captured
/// output is heap): it returns plain figures for the caller to print.
pub fn heap_checked<R>(what: &str, body: impl FnOnce() -> R) -> R {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The harness frees the previous test's thread and starts the next one (which then waits
    // here) right as this one begins: let that settle before taking the base.
    std::thread::sleep(Duration::from_millis(100));
    // A blocking channel receive leaves a per-thread waiter context (one block, kept until the
    // thread ends): make it now, on this thread, before the base. The wait must outlast the
    // receiver's spinning before it parks (1 ms did not under valgrind).
    {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let _ = rx.recv_timeout(Duration::from_millis(20));
        drop(tx);
    }
    let base = alloc::Pool::now();
    let r = body();
    let mut after = alloc::Pool::now();
    let t0 = Instant::now();
    while after != base && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
        after = alloc::Pool::now();
    }
    assert_eq!(
        (after.bytes, after.blocks),
        (base.bytes, base.blocks),
        "{what}: heap after the test differs from before it (bytes, blocks)"
    );
    r
}

// ------------------------------------------------------------------------------------------
// Bytes on the wire, built with the crate's encoders

/// A 16-byte acceptor request for `to`.
pub fn connreq(to: Nid, e: Endian) -> Vec<u8> {
    ConnReq::new(to).to_bytes(e).to_vec()
}

/// A hello from `from` to `to` in `v`.
pub fn hello(v: ProtoVersion, from: ProcessId, to: Nid, ctype: ConnType, inc: u64) -> Hello {
    Hello {
        version: v,
        src_nid: from.nid,
        dst_nid: to,
        src_pid: from.pid,
        dst_pid: 0,
        src_incarnation: inc,
        dst_incarnation: 0,
        ctype,
        ips: IpList::EMPTY,
    }
}

pub fn hello_bytes(h: &Hello, e: Endian) -> Vec<u8> {
    let mut b = vec![0u8; h.wire_len()];
    h.encode(e, &mut b).expect("encode hello");
    b
}

/// A hello whose IP list is `ips` as given (any count, zeros allowed): the fixed part from the
/// encoder, the count and entries written by hand (V1: `payload_length` = 4 × count, LE).
pub fn hello_with_raw_ips(h: &Hello, e: Endian, ips: &[u32]) -> Vec<u8> {
    let mut b = hello_bytes(
        &Hello {
            ips: IpList::EMPTY,
            ..*h
        },
        e,
    );
    let n = ips.len() as u32;
    match h.version {
        ProtoVersion::V1 => {
            b[OFF_V1_PAYLOAD_LENGTH..OFF_V1_PAYLOAD_LENGTH + 4]
                .copy_from_slice(&(4 * n).to_le_bytes());
            for ip in ips {
                b.extend_from_slice(&ip.to_le_bytes());
            }
        }
        ProtoVersion::V2 | ProtoVersion::V3 => {
            let w = |x: u32| match e {
                Endian::Little => x.to_le_bytes(),
                Endian::Big => x.to_be_bytes(),
            };
            b[OFF_KSHM_NIPS..OFF_KSHM_NIPS + 4].copy_from_slice(&w(n));
            for ip in ips {
                b.extend_from_slice(&w(*ip));
            }
        }
    }
    b
}

/// A V2-style hello header with an unknown `version` (magic right), fixed part zero-filled.
pub fn hello_unknown_version(version: u32, from: ProcessId, to: Nid) -> Vec<u8> {
    let h = hello(ProtoVersion::V3, from, to, ConnType::Control, 1);
    let mut b = hello_bytes(&h, Endian::Little);
    b[0..4].copy_from_slice(&LNET_PROTO_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&version.to_le_bytes());
    b
}

/// A V1 hello whose major version is `major` (the TCP magic is right).
pub fn hello_v1_major(major: u16, from: ProcessId, to: Nid) -> Vec<u8> {
    let h = hello(ProtoVersion::V1, from, to, ConnType::Control, 1);
    let mut b = hello_bytes(&h, Endian::Little);
    b[OFF_V1_VERSION_MAJOR..OFF_V1_VERSION_MAJOR + 2].copy_from_slice(&major.to_le_bytes());
    b
}

/// An LNet PUT header from `from` to `to` (portal, match bits, hdr_data; no ACK).
pub fn put_hdr(from: ProcessId, to: ProcessId, portal: u32, bits: u64, len: u32) -> LnetHdr {
    LnetHdr {
        dest_nid: to.nid,
        src_nid: from.nid,
        dest_pid: to.pid,
        src_pid: from.pid,
        payload_length: len,
        msg: LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: bits,
            hdr_data: 0,
            ptl_index: portal,
            offset: 0,
        },
    }
}

/// One LNet message as `v` frames it: (V2/V3: the ksock header `k`), the LNet header, the
/// payload.
pub fn frame(v: ProtoVersion, k: KsockHdr, hdr: &LnetHdr, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if v != ProtoVersion::V1 {
        b.extend_from_slice(&k.to_bytes(Endian::Little));
    }
    b.extend_from_slice(&hdr.to_bytes());
    b.extend_from_slice(payload);
    b
}

/// A NOOP (V2/V3) with cookies `c`.
pub fn noop(c: [u64; 2]) -> Vec<u8> {
    KsockHdr {
        zc_cookies: c,
        ..KsockHdr::noop(0)
    }
    .to_bytes(Endian::Little)
    .to_vec()
}

/// A test payload of `n` bytes.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// ------------------------------------------------------------------------------------------
// Sockets

/// Source (IP, port) pairs for hostile connections: privileged ports 1023..512 on
/// 127.X.`base`.1, then 127.X.`base`.2, … (a closed connection leaves its pair in TIME_WAIT,
/// so pairs are not reused).
pub struct Sources {
    base: u8,
    next: AtomicU32,
}

impl Sources {
    pub const fn new(base: u8) -> Sources {
        Sources {
            base,
            next: AtomicU32::new(0),
        }
    }

    /// A blocking socket connected to `to` from the next free privileged source pair.
    pub fn connect(&self, to: SocketAddrV4) -> TcpStream {
        for _ in 0..4096 {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let host = 1 + (n / 512) % 250;
            let port = 1023 - (n % 512) as u16;
            let from = SocketAddrV4::new(addr(self.base, host as u8), port);
            match sys::connect_from(from, to) {
                Ok((s, done)) => {
                    if !done {
                        let mut fds = [sys::pollfd(
                            std::os::fd::AsRawFd::as_raw_fd(&s),
                            sys::POLLOUT,
                        )];
                        let _ = sys::poll(&mut fds, 5000);
                        match sys::take_error(&s) {
                            Ok(None) => {}
                            Ok(Some(e)) | Err(e) => {
                                if retryable(&e) {
                                    continue;
                                }
                                panic!("connect {from} -> {to}: {e}");
                            }
                        }
                    }
                    s.set_nonblocking(false).expect("blocking");
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.set_nodelay(true).unwrap();
                    return s;
                }
                Err(sys::ConnectError::Bind(e)) | Err(sys::ConnectError::Connect(e))
                    if retryable(&e) =>
                {
                    continue
                }
                Err(e) => panic!("connect {from} -> {to}: {e:?}"),
            }
        }
        panic!("no free privileged source pair towards {to}");
    }
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(sys::EADDRINUSE) | Some(sys::EADDRNOTAVAIL)
    )
}

/// Reads exactly `n` bytes (panics on EOF or after the socket's read timeout).
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    b
}

/// Reads until EOF or a reset (bounded by the socket's read timeout): what arrived, and
/// whether the end was a reset.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return (all, false),
            Ok(n) => all.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (all, true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!(
                "waiting for the peer to close: {e} (after {} bytes)",
                all.len()
            ),
        }
    }
}

/// Writes all of `b` (a reset or EPIPE is returned, not a panic: the node may close first).
pub fn send(s: &mut TcpStream, b: &[u8]) -> io::Result<()> {
    s.write_all(b)
}

/// Reads a whole hello (any version) off `s`.
pub fn read_hello(s: &mut TcpStream) -> (Hello, Vec<u8>) {
    let mut b = read_n(s, 8);
    loop {
        match Hello::decode(&b) {
            Ok((h, _, _)) => return (h, b),
            Err(tdinal::wire::WireError::Short { need, .. }) => {
                let more = read_n(s, need - b.len());
                b.extend_from_slice(&more);
            }
            Err(e) => panic!("bad hello from the node: {e:?} in {b:02x?}"),
        }
    }
}
