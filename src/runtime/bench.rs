//! `tdinal bench`: tdinal against raw TCP on the same loopback addresses, in the same run.
//!
//! Every workload runs on real sockets between two (or more) loopback addresses, once through
//! tdinal (nodes in this process: engine, LNet layer, runtime threads) and once as raw TCP with
//! the same framing — a 96-byte header and the payload per message, written with vectored
//! writes of up to 64 slices straight from the sender's buffer, read header first and then
//! straight into a pre-posted buffer, a 96-byte reply per message (the LNet ACK's size), the
//! same number of connections (1 + 2 × `conns_per_peer` per peer; small messages and replies
//! on the first, big ones spread over the "bulk out" ones, the "bulk in" ones idle, as the
//! engine's matcher does) and the same window of messages in flight. tdinal and raw runs
//! alternate (ABBA) and repeat; ratios are taken per pair of runs and summarised by their
//! median and range, so a noisy machine shifts both sides of a ratio alike.
//!
//! Besides timing: syscalls, lock acquisitions and wake-ups per message, bytes copied per
//! payload byte on send and receive, allocations per message (when the binary installs
//! [`sys::CountingAlloc`]), memory per idle connection and per queued message, handshake time
//! per connection, and (with valgrind) the engine's instructions per message on each side and
//! per handshake. `docs/performance.md` explains every figure.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::node::{put_pattern, Callback, Completions, Core, Node, Payload, RtEngine, Waiter};
use super::sys::{self, CountingAlloc};
use super::NodeConfig;
use crate::engine::{Action, ConnAddrs, ConnId, Engine, Event, LocalNi, Stats, Time, Tunables};
use crate::lnet::LnetEvent;
use crate::wire::{LnetHdr, LnetMsg, Net, Nid, ProcessId, WireHandle};

/// The portal benchmark PUTs go to: received and counted, not digested.
pub const BENCH_PORTAL: u32 = 43;
/// Framing per message in the raw baseline: what a V3 LNet message carries (24 + 72).
pub const RAW_HDR: usize = 96;
/// Most slices per vectored write (the runtime's `MAX_IOV`).
const RAW_IOV: usize = 64;
/// Most bytes per read (the runtime's `READ_CHUNK`).
const RAW_READ_CHUNK: usize = 256 << 10;
/// Most bytes read from one socket per poll round (the runtime's `READ_BUDGET`).
const RAW_READ_BUDGET: usize = 4 << 20;
/// Messages at least this long (framing included) go on bulk connections (`min_bulk`).
const MIN_BULK: usize = 1024;
/// A run that makes no progress for this long fails.
const STALL: Duration = Duration::from_secs(30);

const KIND_HELLO: u8 = 1;
const KIND_MSG: u8 = 2;
const KIND_ACK: u8 = 3;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Node A's address; peers take the next ones (A+1, A+2, …).
    pub ip: Ipv4Addr,
    /// tdinal's port (`None`: 988 as root, else 9880).
    pub port: Option<u16>,
    /// Timed runs per side and workload.
    pub reps: usize,
    /// Tiny message counts (tests): seconds, not minutes.
    pub quick: bool,
    /// `conns_per_peer` values for the bulk workloads.
    pub cpps: Vec<u32>,
    /// Payload sizes of the bulk workloads.
    pub bulk_sizes: Vec<usize>,
    /// Payload sizes of the throughput sweep (the plot); `conns_per_peer` 1.
    pub sweep_sizes: Vec<usize>,
    /// Peer counts of the scaling workloads.
    pub peers: Vec<usize>,
    /// Groups to run: `bulk`, `small`, `scale`, `sweep`, `engine` (empty: all).
    pub only: Vec<String>,
    /// Where to find `tdinal` for the valgrind runs of the engine cost (`None`: no such runs).
    pub exe: Option<PathBuf>,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl BenchOptions {
    /// The full benchmark (about two minutes on the project's 2-vCPU VM).
    pub fn full() -> BenchOptions {
        BenchOptions {
            ip: Ipv4Addr::new(127, 0, 4, 1),
            port: None,
            reps: 5,
            quick: false,
            cpps: vec![1, 2, 4],
            bulk_sizes: vec![1 << 20, 64 << 10, 4 << 10],
            sweep_sizes: vec![
                64,
                256,
                1 << 10,
                4 << 10,
                16 << 10,
                64 << 10,
                256 << 10,
                1 << 20,
            ],
            peers: vec![1, 4, 16, 64],
            only: Vec::new(),
            exe: None,
            progress: false,
        }
    }

    /// Every workload with tiny counts and two repetitions: for tests.
    pub fn quick() -> BenchOptions {
        BenchOptions {
            reps: 2,
            quick: true,
            cpps: vec![1, 2],
            sweep_sizes: vec![64, 4 << 10, 1 << 20],
            peers: vec![1, 4],
            ..BenchOptions::full()
        }
    }

    fn wants(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }

    /// Messages per timed run for a payload of `size` bytes.
    fn count_for(&self, size: usize) -> u64 {
        let (budget, lo, hi) = if self.quick {
            (4u64 << 20, 8u64, 200u64)
        } else {
            (256u64 << 20, 64u64, 30_000u64)
        };
        (budget / (size as u64 + RAW_HDR as u64)).clamp(lo, hi)
    }

    fn pingpongs(&self) -> u64 {
        if self.quick {
            50
        } else {
            3000
        }
    }
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Payload MiB/s (higher is better).
    Throughput,
    /// Messages per second (higher is better).
    Rate,
    /// Round-trip time in µs, median over the round trips of a run (lower is better).
    Latency,
}

impl Metric {
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "MiB/s",
            Metric::Rate => "msg/s",
            Metric::Latency => "µs RTT",
        }
    }
}

/// A target from issue 8: the ratio tdinal/raw must be at least (`min`) or at most this.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub bound: f64,
    pub min: bool,
}

impl Target {
    pub fn met(&self, ratio: f64) -> bool {
        if self.min {
            ratio >= self.bound
        } else {
            ratio <= self.bound
        }
    }
}

/// Per-message costs seen during the timed runs of one side.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerMsg {
    pub messages: u64,
    pub payload_bytes: u64,
    /// read(2) calls (every thread and node involved).
    pub reads: f64,
    /// write/writev calls.
    pub writes: f64,
    /// Node-lock acquisitions (tdinal only).
    pub locks: f64,
    /// Scheduler wake-ups written (tdinal only).
    pub wakeups: f64,
    /// Heap allocations per message (from a separate, untimed run with counting on; `None`
    /// when the allocator does not count).
    pub allocs: Option<f64>,
    /// Process CPU time per message, µs (every thread, user + system, kernel TCP work
    /// included): less sensitive to other load than wall-clock time.
    pub cpu_us: f64,
}

/// Copy counters of one workload (tdinal side, every timed run summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    /// Payload bytes handed to `send`.
    pub payload_sent: u64,
    /// Bytes the runtime copied on the send path (framing or payload).
    pub tx_copied: u64,
    /// Payload bytes that reached the receivers' sinks.
    pub payload_received: u64,
    /// Payload bytes the engine copied into sinks (after a runtime copy into a buffer).
    pub rx_engine_copied: u64,
    /// Bytes the runtime copied after reading.
    pub rx_runtime_copied: u64,
}

impl Copies {
    /// User-space copies per payload byte on send: the kernel's own copy into the socket
    /// buffer is not counted (it is the same for raw TCP).
    pub fn tx_per_byte(&self) -> f64 {
        ratio_or_zero(self.tx_copied, self.payload_sent)
    }
    /// Copies per payload byte on receive: the read(2) into the sink (1) plus any copy after it.
    pub fn rx_per_byte(&self) -> f64 {
        1.0 + ratio_or_zero(
            self.rx_engine_copied + self.rx_runtime_copied,
            self.payload_received,
        )
    }
}

fn ratio_or_zero(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One workload: tdinal and raw samples, paired.
#[derive(Clone, Debug)]
pub struct Row {
    pub group: &'static str,
    pub name: String,
    pub metric: Metric,
    pub size: usize,
    pub tdinal: Vec<f64>,
    pub raw: Vec<f64>,
    pub target: Option<Target>,
    pub td: PerMsg,
    pub rw: PerMsg,
    pub copies: Copies,
}

impl Row {
    /// tdinal/raw per pair of runs.
    pub fn ratios(&self) -> Vec<f64> {
        self.tdinal
            .iter()
            .zip(&self.raw)
            .filter(|(_, r)| **r > 0.0)
            .map(|(t, r)| t / r)
            .collect()
    }
    pub fn ratio(&self) -> Option<f64> {
        median(&self.ratios())
    }
    pub fn verdict(&self) -> &'static str {
        match (self.target, self.ratio()) {
            (Some(t), Some(r)) if t.met(r) => "met",
            (Some(_), Some(_)) => "MISSED",
            (Some(_), None) => "no ratio",
            (None, _) => "",
        }
    }
}

/// Memory of idle connections, measured at one scaling step.
#[derive(Clone, Debug, Default)]
pub struct MemStep {
    pub peers: usize,
    pub new_conns: usize,
    /// Live heap growth per new connection endpoint (allocator count; `None` without it).
    pub heap_per_endpoint: Option<f64>,
    /// RSS growth per new connection endpoint.
    pub rss_per_endpoint: Option<f64>,
    /// The same for raw TCP sockets (a socket and its slot in the benchmark's table).
    pub raw_heap_per_endpoint: Option<f64>,
    pub raw_rss_per_endpoint: Option<f64>,
    /// Wall time to bring the new connections up, per connection (tdinal: TCP connect,
    /// handshake, socket options; raw: TCP connect and accept).
    pub td_setup_us: f64,
    pub raw_setup_us: f64,
    /// Process CPU time per new connection (all threads, user + system).
    pub td_cpu_us: f64,
    pub raw_cpu_us: f64,
}

/// Sizes of the structures behind a connection and a message.
#[derive(Clone, Debug, Default)]
pub struct Footprint {
    pub engine_conn: usize,
    pub engine_tx: usize,
    pub engine_peer: usize,
    pub runtime_conn: usize,
    /// Heap growth per queued 8-byte PUT (sender: engine + LNet + runtime bookkeeping).
    pub heap_per_queued_put: Option<f64>,
    pub allocs_per_queued_put: Option<f64>,
}

/// Engine instructions per message / handshake (valgrind callgrind, marginal over two counts).
#[derive(Clone, Debug, Default)]
pub struct EngineCost {
    /// (payload size, sender instructions per message, receiver instructions per message):
    /// the phase functions, i.e. the engine with the minimal runtime loop that drives it.
    pub per_side: Vec<(usize, f64, f64)>,
    /// The same, counting only inside the engine's entry points ([`ENGINE_ENTRY_POINTS`]):
    /// the engine alone, without the loop around it.
    pub per_side_engine: Vec<(usize, f64, f64)>,
    /// Instructions per connection for a complete handshake, both engines.
    pub handshake_per_conn: Option<f64>,
    pub note: String,
}

/// Everything one benchmark run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub started: String,
    pub load_before: String,
    pub load_after: String,
    pub cpus: usize,
    pub reps: usize,
    pub rows: Vec<Row>,
    pub sweep: Vec<Row>,
    pub memory: Vec<MemStep>,
    pub footprint: Footprint,
    pub engine: Option<EngineCost>,
    pub alloc_counting: bool,
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let mut it = v.iter().copied();
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x))))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn nth_ip(base: Ipv4Addr, k: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(k as u32))
}

fn size_name(s: usize) -> String {
    if s >= 1 << 20 && s % (1 << 20) == 0 {
        format!("{}MiB", s >> 20)
    } else if s >= 1 << 10 && s % (1 << 10) == 0 {
        format!("{}KiB", s >> 10)
    } else {
        format!("{s}B")
    }
}

// ============================================================================================
// Raw TCP baseline

#[derive(Default)]
struct RawCounters {
    reads: AtomicU64,
    writes: AtomicU64,
}

fn raw_header(kind: u8, len: u32, seq: u64, idx: u32) -> [u8; RAW_HDR] {
    let mut h = [0u8; RAW_HDR];
    h[0] = kind;
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..20].copy_from_slice(&idx.to_le_bytes());
    h
}

fn hdr_len(h: &[u8; RAW_HDR]) -> usize {
    u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize
}

fn hdr_idx(h: &[u8; RAW_HDR]) -> u32 {
    u32::from_le_bytes([h[16], h[17], h[18], h[19]])
}

/// One raw peer: a listener and a thread that reads messages and answers each with a 96-byte
/// reply on its first connection.
struct RawServer {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<RawCounters>,
}

struct SrvConn {
    sock: TcpStream,
    idx: Option<u32>,
    hdr: [u8; RAW_HDR],
    have: usize,
    /// Payload bytes expected / received for the current message (`None`: reading a header).
    payload: Option<(usize, usize)>,
    sink: Vec<u8>,
}

impl RawServer {
    fn start(ip: Ipv4Addr, max_payload: usize) -> io::Result<RawServer> {
        let listener = sys::listen(SocketAddrV4::new(ip, 0), 1024)?;
        let addr = match listener.local_addr()? {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => return Err(io::ErrorKind::Unsupported.into()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RawCounters::default());
        let (st, ct) = (stop.clone(), counters.clone());
        let thread = std::thread::Builder::new()
            .name("bench-raw-srv".into())
            .spawn(move || raw_server(listener, max_payload, st, ct))?;
        Ok(RawServer {
            addr,
            stop,
            thread: Some(thread),
            counters,
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn raw_server(
    listener: TcpListener,
    max_payload: usize,
    stop: Arc<AtomicBool>,
    ctr: Arc<RawCounters>,
) {
    let mut conns: Vec<SrvConn> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut out_off = 0usize;
    let mut fds: Vec<sys::PollFd> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        fds.clear();
        fds.push(sys::pollfd(listener.as_raw_fd(), sys::POLLIN));
        let ctrl = conns.iter().position(|c| c.idx == Some(0));
        for (i, c) in conns.iter().enumerate() {
            let mut ev = sys::POLLIN;
            if Some(i) == ctrl && out_off < out.len() {
                ev |= sys::POLLOUT;
            }
            fds.push(sys::pollfd(c.sock.as_raw_fd(), ev));
        }
        if sys::poll(&mut fds, 50).is_err() {
            continue;
        }
        if fds[0].revents != 0 {
            for _ in 0..1024 {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(true);
                        let _ = s.set_nodelay(true);
                        conns.push(SrvConn {
                            sock: s,
                            idx: None,
                            hdr: [0; RAW_HDR],
                            have: 0,
                            payload: None,
                            sink: Vec::new(),
                        });
                    }
                    Err(_) => break,
                }
            }
        }
        let mut dead = Vec::new();
        for (i, pfd) in fds.iter().skip(1).enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let Some(c) = conns.get_mut(i) else { continue };
            if pfd.revents & (sys::POLLIN | sys::POLLHUP | sys::POLLERR) != 0
                && !srv_read(c, max_payload, &mut out, &ctr)
            {
                dead.push(i);
            }
        }
        for i in dead.into_iter().rev() {
            conns.remove(i);
        }
        // Flush the replies (all on the first connection), as one write.
        if let Some(c) = conns.iter().find(|c| c.idx == Some(0)) {
            let mut s: &TcpStream = &c.sock;
            while out_off < out.len() {
                match s.write(&out[out_off..]) {
                    Ok(n) if n > 0 => {
                        ctr.writes.fetch_add(1, Ordering::Relaxed);
                        out_off += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    _ => break,
                }
            }
            if out_off == out.len() {
                out.clear();
                out_off = 0;
            }
        }
    }
}

/// Reads what `c` has (header into its buffer, payload into its pre-posted sink); queues a
/// reply per complete message. False: the connection ended.
fn srv_read(c: &mut SrvConn, max_payload: usize, out: &mut Vec<u8>, ctr: &RawCounters) -> bool {
    let mut budget = RAW_READ_BUDGET;
    loop {
        let mut s: &TcpStream = &c.sock;
        let (asked, r) = match c.payload {
            None => {
                let b = &mut c.hdr[c.have..];
                (b.len(), s.read(b))
            }
            Some((len, got)) => {
                let k = (len - got).min(RAW_READ_CHUNK);
                (k, s.read(&mut c.sink[got..got + k]))
            }
        };
        let n = match r {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ctr.reads.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(_) => return false,
        };
        ctr.reads.fetch_add(1, Ordering::Relaxed);
        let mut complete = false;
        match &mut c.payload {
            None => {
                c.have += n;
                if c.have == RAW_HDR {
                    c.have = 0;
                    match c.hdr[0] {
                        KIND_HELLO => c.idx = Some(hdr_idx(&c.hdr)),
                        _ => {
                            let len = hdr_len(&c.hdr).min(max_payload);
                            if c.sink.len() < len {
                                // The pre-posted buffer, allocated once at the largest size.
                                c.sink.resize(len, 0);
                            }
                            if len == 0 {
                                complete = true;
                            } else {
                                c.payload = Some((len, 0));
                            }
                        }
                    }
                }
            }
            Some((len, got)) => {
                *got += n;
                if *got == *len {
                    c.payload = None;
                    complete = true;
                }
            }
        }
        if complete {
            let seq = u64::from_le_bytes(c.hdr[8..16].try_into().unwrap_or([0; 8]));
            out.extend_from_slice(&raw_header(KIND_ACK, 0, seq, 0));
        }
        budget = budget.saturating_sub(n);
        // A short read drained the socket: poll again.
        if n < asked || budget == 0 {
            return true;
        }
    }
}

struct Out {
    hdr: [u8; RAW_HDR],
    len: usize,
    off: usize,
}

struct CliConn {
    sock: TcpStream,
    q: VecDeque<Out>,
    queued: usize,
    hdr: [u8; RAW_HDR],
    have: usize,
}

/// The raw client: connections to every raw peer, driven by the calling thread.
struct RawClient {
    /// Per peer: [control, bulk out × cpp, bulk in × cpp].
    peers: Vec<Vec<CliConn>>,
    cpp: usize,
    reads: u64,
    writes: u64,
}

fn connect_raw(local: Ipv4Addr, to: SocketAddrV4, idx: u32) -> io::Result<TcpStream> {
    let (s, done) = sys::connect_from(SocketAddrV4::new(local, 0), to).map_err(|e| match e {
        sys::ConnectError::Socket(e)
        | sys::ConnectError::Bind(e)
        | sys::ConnectError::Connect(e) => e,
    })?;
    if !done {
        let mut f = [sys::pollfd(s.as_raw_fd(), sys::POLLOUT)];
        sys::poll(&mut f, 5000)?;
        if let Some(e) = sys::take_error(&s)? {
            return Err(e);
        }
    }
    s.set_nodelay(true)?;
    // The hello that tells the server which connection this is (blocking is fine: 96 bytes
    // into an empty socket buffer).
    let mut w: &TcpStream = &s;
    let h = raw_header(KIND_HELLO, 0, 0, idx);
    let mut off = 0;
    for _ in 0..1000 {
        match w.write(&h[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if off == RAW_HDR {
            return Ok(s);
        }
    }
    Err(io::ErrorKind::TimedOut.into())
}

impl RawClient {
    fn new(cpp: usize) -> RawClient {
        RawClient {
            peers: Vec::new(),
            cpp,
            reads: 0,
            writes: 0,
        }
    }

    fn add_peer(&mut self, local: Ipv4Addr, srv: SocketAddrV4) -> io::Result<()> {
        let n = 1 + 2 * self.cpp;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let sock = connect_raw(local, srv, i as u32)?;
            v.push(CliConn {
                sock,
                q: VecDeque::new(),
                queued: 0,
                hdr: [0; RAW_HDR],
                have: 0,
            });
        }
        self.peers.push(v);
        Ok(())
    }

    /// `count` messages of `data` round-robin over the peers, `window` in flight; per-message
    /// round-trip times in `lat` when asked. Returns the elapsed time.
    fn run(
        &mut self,
        data: &[u8],
        count: u64,
        window: usize,
        mut lat: Option<&mut Vec<f64>>,
    ) -> Result<Duration, String> {
        let npeers = self.peers.len();
        if npeers == 0 {
            return Err("raw: no peer".into());
        }
        let size = data.len();
        let bulk = size + RAW_HDR >= MIN_BULK;
        let (mut sent, mut done) = (0u64, 0u64);
        let mut rr = 0usize;
        let mut starts: VecDeque<Instant> = VecDeque::new();
        let mut fds: Vec<sys::PollFd> = Vec::new();
        let mut at: Vec<(usize, usize)> = Vec::new();
        let t0 = Instant::now();
        let mut last_progress = t0;
        while done < count {
            // Refill the window.
            while sent - done < window as u64 && sent < count {
                let p = rr % npeers;
                rr = rr.wrapping_add(1);
                let conns = &mut self.peers[p];
                let ci = if bulk && self.cpp > 0 {
                    (1..=self.cpp).min_by_key(|&i| conns[i].queued).unwrap_or(1)
                } else {
                    0
                };
                let c = &mut conns[ci];
                c.q.push_back(Out {
                    hdr: raw_header(KIND_MSG, size as u32, sent, 0),
                    len: size,
                    off: 0,
                });
                c.queued += RAW_HDR + size;
                if lat.is_some() {
                    starts.push_back(Instant::now());
                }
                sent += 1;
            }
            // Write what is queued.
            for p in 0..npeers {
                for ci in 0..self.peers[p].len() {
                    if !self.peers[p][ci].q.is_empty() {
                        self.flush(p, ci, data)?;
                    }
                }
            }
            // Wait for replies (and writability where a write could not finish).
            fds.clear();
            at.clear();
            for (p, conns) in self.peers.iter().enumerate() {
                for (ci, c) in conns.iter().enumerate() {
                    let mut ev = 0;
                    if ci == 0 {
                        ev |= sys::POLLIN;
                    }
                    if !c.q.is_empty() {
                        ev |= sys::POLLOUT;
                    }
                    if ev != 0 {
                        fds.push(sys::pollfd(c.sock.as_raw_fd(), ev));
                        at.push((p, ci));
                    }
                }
            }
            sys::poll(&mut fds, 1000).map_err(|e| format!("raw: poll: {e}"))?;
            for (k, pfd) in fds.iter().enumerate() {
                if pfd.revents & (sys::POLLIN | sys::POLLHUP | sys::POLLERR) == 0 {
                    continue;
                }
                let (p, ci) = at[k];
                if ci != 0 {
                    continue;
                }
                let got = self.read_replies(p)?;
                for _ in 0..got {
                    if let (Some(l), Some(s)) = (lat.as_deref_mut(), starts.pop_front()) {
                        l.push(s.elapsed().as_secs_f64() * 1e6);
                    }
                }
                done += got;
                if got > 0 {
                    last_progress = Instant::now();
                }
            }
            if last_progress.elapsed() > STALL {
                return Err(format!("raw: stalled at {done} of {count} messages"));
            }
        }
        Ok(t0.elapsed())
    }

    /// Vectored writes of the queued messages (up to 64 slices each) until done or EAGAIN.
    fn flush(&mut self, p: usize, ci: usize, data: &[u8]) -> Result<(), String> {
        let c = &mut self.peers[p][ci];
        for _ in 0..1_000_000 {
            if c.q.is_empty() {
                return Ok(());
            }
            let n = {
                let mut iov: [IoSlice<'_>; RAW_IOV] = [IoSlice::new(&[]); RAW_IOV];
                let mut k = 0;
                for m in c.q.iter() {
                    if k >= RAW_IOV {
                        break;
                    }
                    if m.off < RAW_HDR {
                        iov[k] = IoSlice::new(&m.hdr[m.off..]);
                        k += 1;
                        if m.len > 0 && k < RAW_IOV {
                            iov[k] = IoSlice::new(&data[..m.len]);
                            k += 1;
                        }
                    } else {
                        iov[k] = IoSlice::new(&data[m.off - RAW_HDR..m.len]);
                        k += 1;
                    }
                }
                let mut s: &TcpStream = &c.sock;
                match s.write_vectored(&iov[..k]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writes += 1;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("raw: write: {e}")),
                }
            };
            self.writes += 1;
            let mut left = n;
            c.queued = c.queued.saturating_sub(n);
            while left > 0 {
                let Some(m) = c.q.front_mut() else { break };
                let rest = RAW_HDR + m.len - m.off;
                if left >= rest {
                    left -= rest;
                    c.q.pop_front();
                } else {
                    m.off += left;
                    left = 0;
                }
            }
        }
        Ok(())
    }

    /// Reads the replies waiting on peer `p`'s first connection; returns how many completed.
    fn read_replies(&mut self, p: usize) -> Result<u64, String> {
        let c = &mut self.peers[p][0];
        let mut got = 0u64;
        for _ in 0..1_000_000 {
            let mut s: &TcpStream = &c.sock;
            let asked = RAW_HDR - c.have;
            match s.read(&mut c.hdr[c.have..]) {
                Ok(0) => return Err("raw: server closed".into()),
                Ok(n) => {
                    self.reads += 1;
                    c.have += n;
                    if c.have == RAW_HDR {
                        c.have = 0;
                        if c.hdr[0] == KIND_ACK {
                            got += 1;
                        }
                    }
                    if n < asked {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.reads += 1;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("raw: read: {e}")),
            }
        }
        Ok(got)
    }
}

/// Raw peers and the client's connections to them.
struct RawSet {
    servers: Vec<RawServer>,
    client: RawClient,
    local: Ipv4Addr,
}

impl RawSet {
    fn new(local: Ipv4Addr, cpp: usize) -> RawSet {
        RawSet {
            servers: Vec::new(),
            client: RawClient::new(cpp),
            local,
        }
    }

    fn add_peer(&mut self, ip: Ipv4Addr, max_payload: usize) -> Result<(), String> {
        let srv =
            RawServer::start(ip, max_payload).map_err(|e| format!("raw server on {ip}: {e}"))?;
        self.servers.push(srv);
        Ok(())
    }

    fn connect(&mut self, k: usize) -> Result<(), String> {
        let addr = self.servers[k].addr;
        self.client
            .add_peer(self.local, addr)
            .map_err(|e| format!("raw connect to {addr}: {e}"))
    }

    /// Waits until every server has accepted all its connections and read their hellos.
    fn settle(&self) {
        std::thread::sleep(Duration::from_millis(20));
    }

    fn counts(&self) -> (u64, u64) {
        let (mut r, mut w) = (self.client.reads, self.client.writes);
        for s in &self.servers {
            r += s.counters.reads.load(Ordering::Relaxed);
            w += s.counters.writes.load(Ordering::Relaxed);
        }
        (r, w)
    }
}

// ============================================================================================
// tdinal side

/// Nodes in this process: A and its peers.
struct TdSet {
    a: Node,
    peers: Vec<Node>,
    port: u16,
    unpriv: bool,
}

fn td_config(ip: Ipv4Addr, port: u16, cpp: u32, unpriv: bool) -> NodeConfig {
    let nid = Nid::new(Net::TCP0, u32::from(ip));
    let mut c = NodeConfig::new(nid);
    c.tunables.accept_port = port;
    c.tunables.conns_per_peer = cpp;
    if unpriv {
        // As the demo without root: unprivileged ports make each connection a userspace
        // process of its own to the peer, so one untyped connection and at most V2.
        c.allow_unprivileged = true;
        let _ = c.set("accept", "all");
        let _ = c.set("typed_conns", "0");
        let _ = c.set("protocol", "2");
    }
    c
}

impl TdSet {
    fn start(a_ip: Ipv4Addr, port: u16, cpp: u32, unpriv: bool) -> Result<TdSet, String> {
        let a = Node::start(td_config(a_ip, port, cpp, unpriv))
            .map_err(|e| format!("node {a_ip}: {e}"))?;
        Ok(TdSet {
            a,
            peers: Vec::new(),
            port,
            unpriv,
        })
    }

    fn add_peer(&mut self, ip: Ipv4Addr, cpp: u32) -> Result<(), String> {
        let n = Node::start(td_config(ip, self.port, cpp, self.unpriv))
            .map_err(|e| format!("node {ip}: {e}"))?;
        self.peers.push(n);
        Ok(())
    }

    fn wanted(&self) -> usize {
        let t = &self.a.config().tunables;
        if t.typed_conns {
            1 + 2 * t.effective_conns_per_peer() as usize
        } else {
            1
        }
    }

    /// Connects A to peers `range` at once and waits for every connection on both sides.
    fn connect(&self, range: std::ops::Range<usize>) -> Result<(), String> {
        let sh = &self.a.shared;
        sh.with(|c, now| {
            for p in &self.peers[range.clone()] {
                c.engine
                    .connect_peer(now, p.id(), u32::from(p.local_ip()), self.port);
            }
        });
        let want = self.wanted();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a_ok = {
                let g = sh.lock();
                let conns = g.engine.conns();
                self.peers[..range.end].iter().all(|p| {
                    let mine: Vec<ConnId> = conns
                        .iter()
                        .filter(|c| c.peer == p.id())
                        .map(|c| c.conn)
                        .collect();
                    mine.len() >= want && mine.iter().all(|c| g.meta.contains_key(c))
                })
            };
            let peers_ok = a_ok
                && self.peers[range.clone()].iter().all(|p| {
                    let g = p.shared.lock();
                    let n = g.engine.conns().len();
                    n >= want && g.meta.len() >= want
                });
            if peers_ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "connections to peers {}..{} not all up after 20 s",
                    range.start, range.end
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn all(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.a).chain(self.peers.iter())
    }

    fn shutdown(self) -> Result<(), String> {
        let mut errs = Vec::new();
        for n in self.peers.into_iter().chain(std::iter::once(self.a)) {
            if let Err(e) = n.shutdown().check() {
                errs.push(e);
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }
}

/// Counters summed over nodes.
#[derive(Clone, Copy, Debug, Default)]
struct Snap {
    reads: u64,
    polls: u64,
    writes: u64,
    locks: u64,
    wakes: u64,
    tx_copied: u64,
    rx_copied: u64,
    engine: Stats,
    puts: u64,
}

fn snap<'a>(nodes: impl Iterator<Item = &'a Node>) -> Snap {
    let mut s = Snap::default();
    for n in nodes {
        let r = &n.shared.rt;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        s.reads += l(&r.reads) + l(&r.reads_eagain);
        s.writes += l(&r.writes) + l(&r.writes_pending);
        s.polls += l(&r.polls);
        s.locks += l(&r.lock_acquisitions);
        s.wakes += l(&r.sched_wakeups);
        s.tx_copied += l(&r.tx_copied_bytes);
        s.rx_copied += l(&r.rx_copied_bytes);
        let e = n.shared.lock().engine.stats;
        let t = &mut s.engine;
        t.rx_payload_copied += e.rx_payload_copied;
        t.rx_payload_bytes += e.rx_payload_bytes;
        t.tx_msgs_done += e.tx_msgs_done;
        t.rx_msgs += e.rx_msgs;
        s.puts += n.puts_received().count;
    }
    s
}

/// `count` PUTs of `data` (each with an LNet ACK) from A to `targets` round-robin, `window` in
/// flight; waits for every ACK, then for the receivers and the zero-copy ACKs, so the next
/// run starts from quiet nodes. Per-PUT round-trip times in `lat` when asked.
/// Queues one bench PUT of `data` (match bits `seq`, LNet ACK requested) under the node lock;
/// its completion goes to `waiter`.
fn bench_put(c: &mut Core, now: Time, target: ProcessId, seq: u64, data: &Payload, waiter: Waiter) {
    let Core { engine, lnet, .. } = c;
    let op = lnet.put(
        engine,
        now,
        target,
        BENCH_PORTAL,
        seq,
        0,
        data.clone(),
        true,
    );
    c.waiters.insert(op, waiter);
}

fn td_run(
    set: &TdSet,
    targets: &[ProcessId],
    data: &Payload,
    count: u64,
    window: usize,
    mut lat: Option<&mut Vec<f64>>,
) -> Result<Duration, String> {
    let sh = &set.a.shared;
    let before: u64 = set.peers.iter().map(|p| p.puts_received().count).sum();
    let q = Arc::new(Completions::default());
    let mut evs: Vec<LnetEvent> = Vec::with_capacity(window);
    let (mut sent, mut done, mut failed) = (0u64, 0u64, 0u64);
    let mut rr = 0usize;
    let mut starts: VecDeque<Instant> = VecDeque::new();
    let t0 = Instant::now();
    while done < count {
        let room = (window as u64)
            .saturating_sub(sent - done)
            .min(count - sent);
        if room > 0 {
            if lat.is_some() {
                starts.push_back(Instant::now());
            }
            sh.with(|c, now| {
                for i in 0..room {
                    let target = targets[rr % targets.len()];
                    rr = rr.wrapping_add(1);
                    bench_put(c, now, target, sent + i, data, Waiter::Queue(q.clone()));
                }
            });
            sent += room;
        }
        let mut take = |ev: LnetEvent, lat: &mut Option<&mut Vec<f64>>| {
            if let LnetEvent::PutDone { result, .. } = ev {
                done += 1;
                if result.is_err() {
                    failed += 1;
                }
                if let (Some(l), Some(s)) = (lat.as_deref_mut(), starts.pop_front()) {
                    l.push(s.elapsed().as_secs_f64() * 1e6);
                }
            }
        };
        if !q.wait(&mut evs, STALL) {
            return Err(format!("tdinal: stalled at {done} of {count} PUTs"));
        }
        for ev in evs.drain(..) {
            take(ev, &mut lat);
        }
    }
    let elapsed = t0.elapsed();
    if failed > 0 {
        return Err(format!("tdinal: {failed} of {count} PUTs failed"));
    }
    quiet_down(set, before, count)?;
    Ok(elapsed)
}

/// State of a [`td_run_cb`] run, shared with its completion callback.
struct CbRun {
    count: u64,
    sent: u64,
    done: u64,
    failed: u64,
    rr: usize,
    starts: VecDeque<Instant>,
    lat: Option<Vec<f64>>,
    /// The callback itself (to register for the PUTs it sends); cleared at the end.
    me: Option<Callback>,
}

/// As [`td_run`], but every PUT after the first window is sent by the completion callback of
/// an earlier one, under the node lock in the thread that read its ACK (A's scheduler): the
/// bench thread only starts the window and waits for the end. This is how an LNet user that
/// continues in its event callback drives the network (no thread between the ACK and the next
/// PUT).
fn td_run_cb(
    set: &TdSet,
    targets: &[ProcessId],
    data: &Payload,
    count: u64,
    window: usize,
    lat: Option<&mut Vec<f64>>,
) -> Result<Duration, String> {
    let sh = &set.a.shared;
    let before: u64 = set.peers.iter().map(|p| p.puts_received().count).sum();
    let want_lat = lat.is_some();
    let st = Arc::new((
        std::sync::Mutex::new(CbRun {
            count,
            sent: 0,
            done: 0,
            failed: 0,
            rr: 0,
            starts: VecDeque::with_capacity(window),
            lat: want_lat.then(|| Vec::with_capacity(count as usize)),
            me: None,
        }),
        std::sync::Condvar::new(),
    ));
    let tg: Arc<[ProcessId]> = Arc::from(targets);
    let (st2, data2) = (st.clone(), data.clone());
    // Sends the next PUT (under the node lock); the caller holds the state's lock.
    fn send_next(c: &mut Core, now: Time, s: &mut CbRun, tg: &[ProcessId], data: &Payload) {
        let Some(me) = s.me.clone() else { return };
        let target = tg[s.rr % tg.len()];
        s.rr = s.rr.wrapping_add(1);
        let seq = s.sent;
        s.sent += 1;
        if s.lat.is_some() {
            s.starts.push_back(Instant::now());
        }
        bench_put(c, now, target, seq, data, Waiter::Call(me));
    }
    let tg2 = tg.clone();
    let cb: Callback = Arc::new(move |c: &mut Core, now: Time, ev: LnetEvent| {
        let LnetEvent::PutDone { result, .. } = ev else {
            return;
        };
        let (m, cv) = &*st2;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        s.done += 1;
        if result.is_err() {
            s.failed += 1;
        }
        if let Some(t) = s.starts.pop_front() {
            if let Some(l) = s.lat.as_mut() {
                l.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        if s.sent < s.count {
            send_next(c, now, &mut s, &tg2, &data2);
        }
        if s.done >= s.count {
            cv.notify_all();
        }
    });
    let t0 = Instant::now();
    {
        let mut s = st.0.lock().unwrap_or_else(|e| e.into_inner());
        s.me = Some(cb);
    }
    sh.with(|c, now| {
        let mut s = st.0.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..(window as u64).min(count) {
            send_next(c, now, &mut s, &tg, data);
        }
    });
    let res = {
        let (m, cv) = &*st;
        let g = m.lock().unwrap_or_else(|e| e.into_inner());
        let (mut g, to) = cv
            .wait_timeout_while(g, STALL, |s| s.done < s.count)
            .unwrap_or_else(|e| e.into_inner());
        // Breaks the callback's reference to itself (what is still registered fails at
        // shutdown and finds no callback to send more).
        g.me = None;
        if to.timed_out() {
            Err(format!("tdinal: stalled at {} of {count} PUTs", g.done))
        } else if g.failed > 0 {
            Err(format!("tdinal: {} of {count} PUTs failed", g.failed))
        } else {
            if let (Some(out), Some(l)) = (lat, g.lat.take()) {
                out.extend(l);
            }
            Ok(())
        }
    };
    let elapsed = t0.elapsed();
    res?;
    quiet_down(set, before, count)?;
    Ok(elapsed)
}

/// Waits until every PUT of a run is received and every send finalized (ZC-ACKs in).
fn quiet_down(set: &TdSet, before: u64, count: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: u64 = set.peers.iter().map(|p| p.puts_received().count).sum();
        let open: u64 = set
            .all()
            .map(|n| n.shared.lock().engine.stats.tx_msgs_open())
            .sum();
        if got >= before + count && open == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "tdinal: after the run, {} of {count} PUTs received, {open} sends open",
                got - before
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

// ============================================================================================
// Workloads

struct Workload<'a> {
    group: &'static str,
    name: String,
    metric: Metric,
    size: usize,
    count: u64,
    window: usize,
    target: Option<Target>,
    /// tdinal's next PUT is sent from the completion callback of an earlier one (in the thread
    /// that read its ACK), not by the bench thread after it was woken.
    callback: bool,
    td: &'a TdSet,
    targets: &'a [ProcessId],
    raw: &'a mut RawSet,
}

fn sample(metric: Metric, size: usize, count: u64, elapsed: Duration, lat: &[f64]) -> f64 {
    let secs = elapsed.as_secs_f64().max(1e-9);
    match metric {
        Metric::Throughput => (size as f64 * count as f64) / 1048576.0 / secs,
        Metric::Rate => count as f64 / secs,
        Metric::Latency => median(lat).unwrap_or(0.0),
    }
}

fn progress(opts: &BenchOptions, msg: &str) {
    if opts.progress {
        eprintln!("bench: {msg}");
    }
}

/// Runs one workload: a warm-up of each side, then `reps` timed pairs in ABBA order, then
/// (when the allocator counts) one untimed run of each side with counting on.
fn run_workload(opts: &BenchOptions, w: Workload<'_>) -> Result<Row, String> {
    progress(opts, &format!("{} ...", w.name));
    let data: Payload = Arc::from(put_pattern(w.size));
    let lat_wanted = w.metric == Metric::Latency;
    let warm = (w.count / 4).max(1);
    let td_run = if w.callback { td_run_cb } else { td_run };
    td_run(w.td, w.targets, &data, warm, w.window, None)?;
    w.raw.client.run(&data, warm, w.window, None)?;
    let mut row = Row {
        group: w.group,
        name: w.name.clone(),
        metric: w.metric,
        size: w.size,
        tdinal: Vec::new(),
        raw: Vec::new(),
        target: w.target,
        td: PerMsg::default(),
        rw: PerMsg::default(),
        copies: Copies::default(),
    };
    let (mut td_msgs, mut raw_msgs) = (0u64, 0u64);
    let mut td_delta = Snap::default();
    let (mut raw_r, mut raw_w) = (0u64, 0u64);
    let (mut td_cpu, mut raw_cpu) = (Duration::ZERO, Duration::ZERO);
    for rep in 0..opts.reps.max(1) {
        for side in 0..2 {
            let tdinal_first = rep % 2 == 0;
            let is_td = (side == 0) == tdinal_first;
            let mut lat = Vec::new();
            if is_td {
                let s0 = snap(w.td.all());
                let c0 = sys::process_cpu_time();
                let e = td_run(
                    w.td,
                    w.targets,
                    &data,
                    w.count,
                    w.window,
                    lat_wanted.then_some(&mut lat),
                )?;
                td_cpu += sys::process_cpu_time().saturating_sub(c0);
                let s1 = snap(w.td.all());
                add_delta(&mut td_delta, &s1, &s0);
                td_msgs += w.count;
                row.tdinal.push(sample(w.metric, w.size, w.count, e, &lat));
            } else {
                let (r0, w0) = w.raw.counts();
                let c0 = sys::process_cpu_time();
                let e =
                    w.raw
                        .client
                        .run(&data, w.count, w.window, lat_wanted.then_some(&mut lat))?;
                raw_cpu += sys::process_cpu_time().saturating_sub(c0);
                w.raw.settle();
                let (r1, w1) = w.raw.counts();
                raw_r += r1 - r0;
                raw_w += w1 - w0;
                raw_msgs += w.count;
                row.raw.push(sample(w.metric, w.size, w.count, e, &lat));
            }
        }
    }
    let per = |x: u64, n: u64| x as f64 / n.max(1) as f64;
    row.td = PerMsg {
        messages: td_msgs,
        payload_bytes: td_msgs * w.size as u64,
        reads: per(td_delta.reads, td_msgs),
        writes: per(td_delta.writes, td_msgs),
        locks: per(td_delta.locks, td_msgs),
        wakeups: per(td_delta.wakes, td_msgs),
        allocs: None,
        cpu_us: td_cpu.as_secs_f64() * 1e6 / td_msgs.max(1) as f64,
    };
    row.rw = PerMsg {
        messages: raw_msgs,
        payload_bytes: raw_msgs * w.size as u64,
        reads: per(raw_r, raw_msgs),
        writes: per(raw_w, raw_msgs),
        locks: 0.0,
        wakeups: 0.0,
        allocs: None,
        cpu_us: raw_cpu.as_secs_f64() * 1e6 / raw_msgs.max(1) as f64,
    };
    row.copies = Copies {
        payload_sent: td_msgs * w.size as u64,
        tx_copied: td_delta.tx_copied,
        payload_received: td_delta.engine.rx_payload_bytes,
        rx_engine_copied: td_delta.engine.rx_payload_copied,
        rx_runtime_copied: td_delta.rx_copied,
    };
    if CountingAlloc::installed() {
        let n = w.count.min(2000);
        CountingAlloc::set_counting(true);
        let a0 = CountingAlloc::counts();
        let r = td_run(w.td, w.targets, &data, n, w.window, None);
        let a1 = CountingAlloc::counts();
        let r2 = w.raw.client.run(&data, n, w.window, None);
        w.raw.settle();
        let a2 = CountingAlloc::counts();
        CountingAlloc::set_counting(false);
        r?;
        r2?;
        row.td.allocs = Some(per(a1.calls - a0.calls, n));
        row.rw.allocs = Some(per(a2.calls - a1.calls, n));
    }
    Ok(row)
}

fn add_delta(acc: &mut Snap, s1: &Snap, s0: &Snap) {
    acc.reads += s1.reads - s0.reads;
    acc.polls += s1.polls - s0.polls;
    acc.writes += s1.writes - s0.writes;
    acc.locks += s1.locks - s0.locks;
    acc.wakes += s1.wakes - s0.wakes;
    acc.tx_copied += s1.tx_copied - s0.tx_copied;
    acc.rx_copied += s1.rx_copied - s0.rx_copied;
    acc.engine.rx_payload_copied += s1.engine.rx_payload_copied - s0.engine.rx_payload_copied;
    acc.engine.rx_payload_bytes += s1.engine.rx_payload_bytes - s0.engine.rx_payload_bytes;
    acc.puts += s1.puts - s0.puts;
}

fn pick_port(opts: &BenchOptions) -> (u16, bool) {
    let root = sys::is_root();
    (opts.port.unwrap_or(if root { 988 } else { 9880 }), !root)
}

/// One A–B pair (tdinal and raw) with `cpp` connections per type.
fn pair(opts: &BenchOptions, cpp: u32) -> Result<(TdSet, RawSet, Vec<ProcessId>), String> {
    let (port, unpriv) = pick_port(opts);
    let a_ip = opts.ip;
    let b_ip = nth_ip(opts.ip, 1);
    let mut td = TdSet::start(a_ip, port, cpp, unpriv)?;
    td.add_peer(b_ip, cpp)?;
    td.connect(0..1)?;
    // Without root, one untyped connection, as tdinal then uses.
    let mut raw = RawSet::new(a_ip, if unpriv { 0 } else { cpp as usize });
    raw.add_peer(b_ip, crate::wire::nid::LNET_MTU as usize)?;
    raw.connect(0)?;
    raw.settle();
    let targets = vec![td.peers[0].id()];
    Ok((td, raw, targets))
}

/// Runs everything `opts` asks for.
pub fn run(opts: &BenchOptions) -> Result<Report, String> {
    let t0 = Instant::now();
    let mut rep = Report {
        started: now_utc(),
        load_before: loadavg(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        reps: opts.reps.max(1),
        alloc_counting: CountingAlloc::installed(),
        ..Report::default()
    };
    let (_, unpriv) = pick_port(opts);
    if unpriv {
        rep.notes.push(
            "not root: unprivileged ports, one untyped V2 connection per peer (as the demo)".into(),
        );
    }
    rep.footprint = Footprint {
        engine_conn: RtEngine::conn_footprint(),
        engine_tx: RtEngine::tx_footprint(),
        engine_peer: RtEngine::peer_footprint(),
        runtime_conn: super::sched::rt_conn_footprint(),
        ..Footprint::default()
    };

    // Bulk and the sweep: one pair per conns_per_peer value.
    let mut cpps = opts.cpps.clone();
    if cpps.is_empty() {
        cpps.push(1);
    }
    if opts.wants("sweep") && !cpps.contains(&1) {
        cpps.insert(0, 1);
    }
    for &cpp in &cpps {
        let want_bulk = opts.wants("bulk");
        let want_sweep = opts.wants("sweep") && cpp == 1;
        let want_small = opts.wants("small") && cpp == cpps[0];
        if !(want_bulk || want_sweep || want_small) {
            continue;
        }
        progress(opts, &format!("pair with conns_per_peer={cpp}"));
        let (td, mut raw, targets) = pair(opts, cpp)?;
        let mut sizes: Vec<usize> = Vec::new();
        if want_bulk {
            sizes.extend(&opts.bulk_sizes);
        }
        if want_sweep {
            for s in &opts.sweep_sizes {
                if !sizes.contains(s) {
                    sizes.push(*s);
                }
            }
        }
        for size in sizes {
            let target = if size >= 1 << 20 {
                Some(Target {
                    bound: 0.95,
                    min: true,
                })
            } else if size == 4 << 10 {
                Some(Target {
                    bound: 0.85,
                    min: true,
                })
            } else {
                None
            };
            let row = run_workload(
                opts,
                Workload {
                    group: "bulk",
                    name: format!("bulk {} PUT, conns_per_peer {cpp}", size_name(size)),
                    metric: Metric::Throughput,
                    size,
                    count: opts.count_for(size),
                    window: super::node::PUT_WINDOW,
                    target,
                    callback: false,
                    td: &td,
                    targets: &targets,
                    raw: &mut raw,
                },
            )?;
            if want_sweep && opts.sweep_sizes.contains(&size) {
                rep.sweep.push(row.clone());
            }
            if want_bulk && opts.bulk_sizes.contains(&size) {
                rep.rows.push(row);
            }
        }
        if want_small {
            for size in [0usize, 8] {
                rep.rows.push(run_workload(
                    opts,
                    Workload {
                        group: "small",
                        name: format!("{size}-byte PUT, pipelined (64 in flight)"),
                        metric: Metric::Rate,
                        size,
                        count: if opts.quick { 200 } else { 30_000 },
                        window: 64,
                        target: Some(Target {
                            bound: 0.8,
                            min: true,
                        }),
                        callback: false,
                        td: &td,
                        targets: &targets,
                        raw: &mut raw,
                    },
                )?);
            }
            for size in [0usize, 8] {
                rep.rows.push(run_workload(
                    opts,
                    Workload {
                        group: "small",
                        name: format!("{size}-byte PUT + ACK, ping-pong"),
                        metric: Metric::Latency,
                        size,
                        count: opts.pingpongs(),
                        window: 1,
                        target: Some(Target {
                            bound: 1.2,
                            min: false,
                        }),
                        callback: false,
                        td: &td,
                        targets: &targets,
                        raw: &mut raw,
                    },
                )?);
            }
            for (name, metric, count, window) in [
                (
                    "0-byte PUT, pipelined (64 in flight), next PUT from the completion callback",
                    Metric::Rate,
                    if opts.quick { 200 } else { 30_000 },
                    64,
                ),
                (
                    "0-byte PUT + ACK, ping-pong, next PUT from the completion callback",
                    Metric::Latency,
                    opts.pingpongs(),
                    1,
                ),
            ] {
                rep.rows.push(run_workload(
                    opts,
                    Workload {
                        group: "small",
                        name: name.to_string(),
                        metric,
                        size: 0,
                        count,
                        window,
                        target: None,
                        callback: true,
                        td: &td,
                        targets: &targets,
                        raw: &mut raw,
                    },
                )?);
            }
            rep.footprint.heap_per_queued_put = None;
            if CountingAlloc::installed() {
                let (h, a) = queued_put_memory(&td, &targets)?;
                rep.footprint.heap_per_queued_put = Some(h);
                rep.footprint.allocs_per_queued_put = Some(a);
            }
        }
        drop(raw);
        td.shutdown()
            .map_err(|e| format!("shutdown after conns_per_peer={cpp}: {e}"))?;
    }

    if opts.wants("scale") && !opts.peers.is_empty() {
        scale(opts, &mut rep)?;
    }

    if opts.wants("engine") {
        if let Some(exe) = &opts.exe {
            progress(opts, "engine instruction counts (valgrind)");
            rep.engine = Some(engine_cost(exe, opts.quick));
        }
    }
    rep.load_after = loadavg();
    rep.elapsed = t0.elapsed();
    Ok(rep)
}

/// Heap growth and allocations per PUT queued on A (taken under A's lock, so nothing moves
/// while it is measured), then waits for them to complete.
fn queued_put_memory(td: &TdSet, targets: &[ProcessId]) -> Result<(f64, f64), String> {
    const N: u64 = 1000;
    let data: Payload = Arc::from(put_pattern(8));
    let (tx, rx) = mpsc::channel::<LnetEvent>();
    let sh = &td.a.shared;
    let (a0, a1) = {
        let mut g = sh.lock();
        let now = sh.now();
        CountingAlloc::set_counting(true);
        let a0 = CountingAlloc::counts();
        for i in 0..N {
            bench_put(&mut g, now, targets[0], i, &data, tx.clone().into());
        }
        let a1 = CountingAlloc::counts();
        CountingAlloc::set_counting(false);
        sh.pump(&mut g, now);
        sh.finish(g);
        (a0, a1)
    };
    let mut done = 0;
    while done < N {
        match rx.recv_timeout(STALL) {
            Ok(LnetEvent::PutDone { .. }) => done += 1,
            Ok(_) => {}
            Err(_) => return Err("queued PUTs did not complete".into()),
        }
    }
    Ok((
        a1.live_delta(&a0) as f64 / N as f64,
        (a1.calls - a0.calls) as f64 / N as f64,
    ))
}

/// Scaling: A and up to max(peers) peer nodes; connects them step by step (memory and
/// handshake per step), then an 8-byte PUT rate and a 64 KiB throughput per step.
fn scale(opts: &BenchOptions, rep: &mut Report) -> Result<(), String> {
    let (port, unpriv) = pick_port(opts);
    let maxp = opts.peers.iter().copied().max().unwrap_or(1);
    progress(opts, &format!("scaling: starting {maxp} peer nodes"));
    let mut td = TdSet::start(opts.ip, port, 1, unpriv)?;
    let mut raw = RawSet::new(opts.ip, if unpriv { 0 } else { 1 });
    for k in 1..=maxp {
        td.add_peer(nth_ip(opts.ip, k), 1)?;
        raw.add_peer(nth_ip(opts.ip, k), 64 << 10)?;
    }
    let counting = CountingAlloc::installed();
    let mut steps = opts.peers.clone();
    steps.sort_unstable();
    steps.dedup();
    let mut have = 0usize;
    for &p in &steps {
        progress(opts, &format!("scaling: {p} peer(s)"));
        let p = p.min(maxp);
        let new_conns = (p - have) * td.wanted();
        let mut m = MemStep {
            peers: p,
            new_conns,
            ..MemStep::default()
        };
        // tdinal connections.
        std::thread::sleep(Duration::from_millis(250));
        let rss0 = sys::rss_bytes();
        CountingAlloc::set_counting(counting);
        let h0 = CountingAlloc::counts();
        let (c0, w0) = (sys::process_cpu_time(), Instant::now());
        td.connect(have..p)?;
        let (c1, w1) = (sys::process_cpu_time(), Instant::now());
        std::thread::sleep(Duration::from_millis(250));
        let h1 = CountingAlloc::counts();
        CountingAlloc::set_counting(false);
        let rss1 = sys::rss_bytes();
        let ends = (2 * new_conns).max(1) as f64;
        if counting {
            m.heap_per_endpoint = Some(h1.live_delta(&h0) as f64 / ends);
        }
        if let (Some(a), Some(b)) = (rss0, rss1) {
            m.rss_per_endpoint = Some((b as f64 - a as f64) / ends);
        }
        m.td_setup_us = (w1 - w0).as_secs_f64() * 1e6 / new_conns.max(1) as f64;
        m.td_cpu_us = (c1 - c0).as_secs_f64() * 1e6 / new_conns.max(1) as f64;
        // Raw connections.
        let rss0 = sys::rss_bytes();
        CountingAlloc::set_counting(counting);
        let h0 = CountingAlloc::counts();
        let (c0, w0) = (sys::process_cpu_time(), Instant::now());
        for k in have..p {
            raw.connect(k)?;
        }
        let (c1, w1) = (sys::process_cpu_time(), Instant::now());
        std::thread::sleep(Duration::from_millis(250));
        let h1 = CountingAlloc::counts();
        CountingAlloc::set_counting(false);
        let rss1 = sys::rss_bytes();
        let raw_conns = (p - have) * (1 + 2 * raw.client.cpp);
        let raw_ends = (2 * raw_conns).max(1) as f64;
        if counting {
            m.raw_heap_per_endpoint = Some(h1.live_delta(&h0) as f64 / raw_ends);
        }
        if let (Some(a), Some(b)) = (rss0, rss1) {
            m.raw_rss_per_endpoint = Some((b as f64 - a as f64) / raw_ends);
        }
        m.raw_setup_us = (w1 - w0).as_secs_f64() * 1e6 / raw_conns.max(1) as f64;
        m.raw_cpu_us = (c1 - c0).as_secs_f64() * 1e6 / raw_conns.max(1) as f64;
        rep.memory.push(m);
        have = p;

        let targets: Vec<ProcessId> = td.peers[..p].iter().map(|n| n.id()).collect();
        let rate_count = if opts.quick { 200 } else { 30_000 };
        rep.rows.push(run_workload(
            opts,
            Workload {
                group: "scale",
                name: format!("{p} peer(s): 8-byte PUTs, 16 in flight per peer"),
                metric: Metric::Rate,
                size: 8,
                count: rate_count,
                window: 16 * p,
                target: None,
                callback: false,
                td: &td,
                targets: &targets,
                raw: &mut raw,
            },
        )?);
        rep.rows.push(run_workload(
            opts,
            Workload {
                group: "scale",
                name: format!("{p} peer(s): 64KiB PUTs, 8 in flight per peer"),
                metric: Metric::Throughput,
                size: 64 << 10,
                count: opts.count_for(64 << 10),
                window: 8 * p,
                target: None,
                callback: false,
                td: &td,
                targets: &targets,
                raw: &mut raw,
            },
        )?);
    }
    drop(raw);
    td.shutdown()
        .map_err(|e| format!("shutdown after scaling: {e}"))
}

// ============================================================================================
// Engine instruction counts (valgrind)

type PhaseEngine = Engine<Payload, Vec<u8>>;

const EA: Nid = Nid::new(Net::TCP0, 0x0a00_0001);
const EB: Nid = Nid::new(Net::TCP0, 0x0a00_0002);
const ENOW: Time = Time(1_000_000);

fn phase_engine(nid: Nid, inc: u64) -> PhaseEngine {
    Engine::new(
        LocalNi {
            nid,
            pid: 12345,
            incarnation: inc,
        },
        Tunables::default(),
        true,
    )
}

/// Moves what `from` has for `fc` into `to`'s `tc` (copying, as a socket would); answers
/// events on the way. Returns whether bytes moved.
fn phase_move(
    from: &mut PhaseEngine,
    fc: ConnId,
    to: &mut PhaseEngine,
    tc: ConnId,
    wire: &mut Vec<u8>,
) -> bool {
    wire.clear();
    {
        let mut out: [&[u8]; 64] = [&[]; 64];
        let n = from.tx_slices(fc, &mut out);
        for s in &out[..n] {
            wire.extend_from_slice(s);
        }
    }
    if wire.is_empty() {
        return false;
    }
    from.tx_commit(ENOW, fc, wire.len());
    let mut off = 0;
    for _ in 0..1_000_000 {
        if off >= wire.len() {
            break;
        }
        let k = to.handle_rx(ENOW, tc, &wire[off..]);
        phase_answer(to);
        if k == 0 {
            break;
        }
        off += k;
    }
    phase_answer(from);
    true
}

fn phase_answer(e: &mut PhaseEngine) {
    while let Some(ev) = e.poll_event() {
        if let Event::Rx { rx, hdr, .. } = ev {
            let len = hdr.payload_length;
            e.recv(ENOW, rx, Some(vec![0u8; len as usize]), len);
        }
    }
}

/// Brings up every connection A wants to B (all three typed ones); returns the pairs.
#[inline(never)]
fn phase_handshake(
    a: &mut PhaseEngine,
    b: &mut PhaseEngine,
    wire: &mut Vec<u8>,
) -> Vec<(ConnId, ConnId)> {
    let ib = ProcessId::lustre(EB);
    a.connect_peer(ENOW, ib, EB.addr(), 988);
    let mut pairs = Vec::new();
    for _ in 0..8 {
        let Some(Action::Connect { conn, .. }) =
            std::iter::from_fn(|| a.poll_action()).find(|x| matches!(x, Action::Connect { .. }))
        else {
            break;
        };
        let port = 1023 - pairs.len() as u16;
        let Ok(bc) = b.accepted(
            ENOW,
            ConnAddrs {
                local_ip: EB.addr(),
                local_port: 988,
                peer_ip: EA.addr(),
                peer_port: port,
            },
        ) else {
            break;
        };
        a.connected(
            ENOW,
            conn,
            ConnAddrs {
                local_ip: EA.addr(),
                local_port: port,
                peer_ip: EB.addr(),
                peer_port: 988,
            },
        );
        pairs.push((conn, bc));
        for _ in 0..4 {
            phase_move(a, conn, b, bc, wire);
            phase_move(b, bc, a, conn, wire);
        }
    }
    while a.poll_action().is_some() {}
    while b.poll_action().is_some() {}
    pairs
}

fn phase_hdr(size: usize) -> LnetHdr {
    LnetHdr {
        dest_nid: EB,
        src_nid: EA,
        dest_pid: 12345,
        src_pid: 12345,
        payload_length: size as u32,
        msg: LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: 4,
            offset: 0,
        },
    }
}

/// The sender's whole part of `count` messages, as the runtime drives it: send, the `Send`
/// action, `tx_slices` (lent, not copied: a writev would take them), `tx_commit`, `TxDone`.
#[inline(never)]
fn phase_tx(a: &mut PhaseEngine, count: u64, size: usize, data: &Payload) -> usize {
    let ib = ProcessId::lustre(EB);
    let hdr = phase_hdr(size);
    let mut bytes = 0usize;
    for _ in 0..count {
        a.send(
            ENOW,
            ib,
            hdr,
            if size == 0 { None } else { Some(data.clone()) },
        );
        while let Some(act) = a.poll_action() {
            if let Action::Send { conn } = act {
                for _ in 0..1000 {
                    let n = {
                        let mut out: [&[u8]; 64] = [&[]; 64];
                        let k = a.tx_slices(conn, &mut out);
                        out[..k].iter().map(|s| s.len()).sum::<usize>()
                    };
                    if n == 0 {
                        break;
                    }
                    a.tx_commit(ENOW, conn, n);
                    bytes += n;
                }
            }
        }
        while let Some(ev) = a.poll_event() {
            std::hint::black_box(ev);
        }
    }
    bytes
}

/// The receiver's whole part of the messages in `wire`, as the runtime drives it:
/// `rx_buffer`, the read into it (a copy here, the kernel's in real life), `rx_commit`,
/// `Rx`, `recv` with a sink (recycled, as LNet's buffers are), `RxDone`.
#[inline(never)]
fn phase_rx(b: &mut PhaseEngine, conn: ConnId, wire: &[u8], pool: &mut Vec<Vec<u8>>) -> u64 {
    let mut off = 0usize;
    let mut msgs = 0u64;
    for _ in 0..wire.len() + 16 {
        if off >= wire.len() {
            break;
        }
        let buf = b.rx_buffer(conn);
        let k = buf.len().min(wire.len() - off);
        if k == 0 {
            break;
        }
        buf[..k].copy_from_slice(&wire[off..off + k]);
        b.rx_commit(ENOW, conn, k);
        off += k;
        while let Some(ev) = b.poll_event() {
            match ev {
                Event::Rx { rx, hdr, .. } => {
                    let len = hdr.payload_length;
                    let mut sink = pool.pop().unwrap_or_default();
                    sink.resize(len as usize, 0);
                    b.recv(ENOW, rx, Some(sink), len);
                }
                Event::RxDone { sink, .. } => {
                    msgs += 1;
                    if let Some(s) = sink {
                        pool.push(s);
                    }
                }
                other => {
                    std::hint::black_box(other);
                }
            }
        }
        while b.poll_action().is_some() {}
    }
    msgs
}

/// `tdinal bench --engine-phase tx|rx|hs --count N --size S`: the body valgrind measures.
pub fn engine_phase(which: &str, count: u64, size: usize) -> Result<String, String> {
    let mut wire = Vec::with_capacity(1 << 16);
    if which == "hs" {
        let mut engines: Vec<(PhaseEngine, PhaseEngine)> = (0..count)
            .map(|i| (phase_engine(EA, 1 + i), phase_engine(EB, 1_000_000 + i)))
            .collect();
        let mut conns = 0usize;
        for (a, b) in engines.iter_mut() {
            conns += phase_handshake(a, b, &mut wire).len();
        }
        return Ok(format!("{conns} connections"));
    }
    let mut a = phase_engine(EA, 1);
    let mut b = phase_engine(EB, 2);
    let pairs = phase_handshake(&mut a, &mut b, &mut wire);
    // The connection small messages take: A's CONTROL one (the first).
    let (ac, bc) = *pairs.first().ok_or("no connection came up")?;
    let data: Payload = Arc::from(vec![0x5au8; size]);
    match which {
        "tx" => {
            let n = phase_tx(&mut a, count, size, &data);
            Ok(format!("{n} bytes"))
        }
        "rx" => {
            // The wire bytes come from A (not measured), then B digests them.
            let ib = ProcessId::lustre(EB);
            let hdr = phase_hdr(size);
            // One message's bytes, repeated: small messages carry no cookie or sequence
            // number, so every copy is the same message, and the sender's work is a constant
            // that the marginal figure leaves out.
            let mut one = Vec::new();
            a.send(
                ENOW,
                ib,
                hdr,
                if size == 0 { None } else { Some(data.clone()) },
            );
            let mut out: [&[u8]; 64] = [&[]; 64];
            let k = a.tx_slices(ac, &mut out);
            let mut n = 0;
            for s in &out[..k] {
                one.extend_from_slice(s);
                n += s.len();
            }
            a.tx_commit(ENOW, ac, n);
            while a.poll_event().is_some() {}
            while a.poll_action().is_some() {}
            let all = one.repeat(count as usize);
            let mut pool = Vec::new();
            let n = phase_rx(&mut b, bc, &all, &mut pool);
            if n != count {
                return Err(format!("received {n} of {count}"));
            }
            Ok(format!("{n} messages"))
        }
        _ => Err(format!("unknown engine phase '{which}' (tx, rx or hs)")),
    }
}

/// The engine's methods a runtime calls per message (none calls another): counting only
/// inside them gives the engine's own cost.
pub const ENGINE_ENTRY_POINTS: [&str; 8] = [
    "send",
    "tx_slices",
    "tx_commit",
    "rx_buffer",
    "rx_commit",
    "recv",
    "poll_event",
    "poll_action",
];

/// Runs `exe bench --engine-phase …` under callgrind, collecting only inside `functions`
/// (callgrind toggle patterns).
fn callgrind(
    exe: &Path,
    functions: &[String],
    which: &str,
    count: u64,
    size: usize,
) -> Option<u64> {
    let mut cmd = std::process::Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--callgrind-out-file=/dev/null")
        .arg("--collect-atstart=no");
    for f in functions {
        cmd.arg(format!("--toggle-collect={f}"));
    }
    let out = cmd
        .arg(exe)
        .args(["bench", "--engine-phase", which])
        .args(["--count", &count.to_string(), "--size", &size.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines().find_map(|l| {
        let rest = l.split("Collected :").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn engine_cost(exe: &Path, quick: bool) -> EngineCost {
    let mut ec = EngineCost::default();
    let have = std::process::Command::new("valgrind")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        ec.note = "valgrind not installed: no instruction counts".into();
        return ec;
    }
    let (n1, n2) = if quick {
        (50u64, 150u64)
    } else {
        (2000, 12000)
    };
    let marginal = |f: &[String], which: &str, size: usize| -> Option<f64> {
        let a = callgrind(exe, f, which, n1, size)?;
        let b = callgrind(exe, f, which, n2, size)?;
        Some((b as f64 - a as f64) / (n2 - n1) as f64)
    };
    let phase = |f: &str| vec![format!("*{f}*")];
    // Patterns are anchored: `Engine<P,S>::send` must not match `send_zc_ack`.
    let entries: Vec<String> = ENGINE_ENTRY_POINTS
        .iter()
        .map(|m| format!("tdinal::engine::engine::Engine<P,S>::{m}"))
        .collect();
    for size in [0usize, 8] {
        let tx = marginal(&phase("phase_tx"), "tx", size);
        let rx = marginal(&phase("phase_rx"), "rx", size);
        if let (Some(t), Some(r)) = (tx, rx) {
            ec.per_side.push((size, t, r));
        }
        let tx = marginal(&entries, "tx", size);
        // The rx phase's sender sends one message (a constant, gone in the difference).
        let rx = marginal(&entries, "rx", size);
        if let (Some(t), Some(r)) = (tx, rx) {
            ec.per_side_engine.push((size, t, r));
        }
    }
    let (h1, h2) = if quick { (2u64, 6u64) } else { (20, 120) };
    let a = callgrind(exe, &phase("phase_handshake"), "hs", h1, 0);
    let b = callgrind(exe, &phase("phase_handshake"), "hs", h2, 0);
    if let (Some(a), Some(b)) = (a, b) {
        // Three typed connections per handshake pair.
        ec.handshake_per_conn = Some((b as f64 - a as f64) / ((h2 - h1) * 3) as f64);
    }
    if ec.per_side.is_empty() {
        ec.note = "valgrind runs failed: no instruction counts".into();
    }
    ec
}

// ============================================================================================
// Output

fn fmt_num(x: f64) -> String {
    if x >= 100.0 {
        format!("{:.0}", x)
    } else if x >= 10.0 {
        format!("{:.1}", x)
    } else {
        format!("{:.2}", x)
    }
}

fn fmt_spread(v: &[f64]) -> String {
    match (median(v), min_max(v)) {
        (Some(m), Some((lo, hi))) => format!("{} [{}–{}]", fmt_num(m), fmt_num(lo), fmt_num(hi)),
        _ => "—".into(),
    }
}

fn fmt_bytes(x: f64) -> String {
    if x.abs() >= 1024.0 {
        format!("{:.1} KiB", x / 1024.0)
    } else {
        format!("{:.0} B", x)
    }
}

impl Report {
    /// The report as text lines (what `tdinal bench` prints).
    pub fn lines(&self) -> Vec<String> {
        let mut o = Vec::new();
        o.push(format!(
            "tdinal bench: {} ; {} CPU(s); load average before {} after {}; {} timed run(s) per side and workload, tdinal and raw TCP alternating; {:.0} s",
            self.started,
            self.cpus,
            self.load_before,
            self.load_after,
            self.reps,
            self.elapsed.as_secs_f64()
        ));
        for n in &self.notes {
            o.push(format!("note: {n}"));
        }
        o.push(String::new());
        o.push("workload | metric | tdinal median [min–max] | raw TCP median [min–max] | ratio tdinal/raw median [min–max] | target".into());
        for r in &self.rows {
            let ratios = r.ratios();
            let target = match r.target {
                Some(t) => format!(
                    "{} {:.2}: {}",
                    if t.min { "≥" } else { "≤" },
                    t.bound,
                    r.verdict()
                ),
                None => "—".into(),
            };
            o.push(format!(
                "{} | {} | {} | {} | {} | {}",
                r.name,
                r.metric.unit(),
                fmt_spread(&r.tdinal),
                fmt_spread(&r.raw),
                match (median(&ratios), min_max(&ratios)) {
                    (Some(m), Some((lo, hi))) => format!("{m:.3} [{lo:.3}–{hi:.3}]"),
                    _ => "—".into(),
                },
                target
            ));
        }
        if !self.sweep.is_empty() {
            o.push(String::new());
            o.push("throughput sweep (conns_per_peer 1, 32 PUTs in flight): size | tdinal MiB/s | raw MiB/s | ratio".into());
            for r in &self.sweep {
                o.push(format!(
                    "{} | {} | {} | {}",
                    size_name(r.size),
                    fmt_spread(&r.tdinal),
                    fmt_spread(&r.raw),
                    r.ratio()
                        .map(|x| format!("{x:.3}"))
                        .unwrap_or_else(|| "—".into())
                ));
            }
        }
        o.push(String::new());
        o.push("per message (tdinal: both nodes; raw: both ends): CPU µs | reads | writes | lock acquisitions | scheduler wake-ups | allocations — tdinal vs raw".into());
        for r in &self.rows {
            let al = |a: Option<f64>| a.map(|x| format!("{x:.2}")).unwrap_or_else(|| "?".into());
            o.push(format!(
                "{} | {:.2} vs {:.2} | {:.2} vs {:.2} | {:.2} vs {:.2} | {:.2} | {:.2} | {} vs {}",
                r.name,
                r.td.cpu_us,
                r.rw.cpu_us,
                r.td.reads,
                r.rw.reads,
                r.td.writes,
                r.rw.writes,
                r.td.locks,
                r.td.wakeups,
                al(r.td.allocs),
                al(r.rw.allocs)
            ));
        }
        o.push(String::new());
        o.push("copies per payload byte (tdinal): send = bytes the runtime copied / payload bytes sent (user space; the kernel's copy into the socket buffer is the same for raw TCP); receive = the read(2) into the sink + copies after it".into());
        for r in &self.rows {
            let c = &r.copies;
            o.push(format!(
                "{} | send {:.3} ({} bytes copied, {} payload bytes) | receive {:.3} ({} payload bytes into sinks, engine copied {}, runtime copied {})",
                r.name,
                c.tx_per_byte(),
                c.tx_copied,
                c.payload_sent,
                c.rx_per_byte(),
                c.payload_received,
                c.rx_engine_copied,
                c.rx_runtime_copied
            ));
        }
        o.push(String::new());
        let f = &self.footprint;
        o.push(format!(
            "structures: engine connection (table slot, inline) {} B; runtime connection {} B; queued transmission (boxed) {} B; peer {} B",
            f.engine_conn, f.runtime_conn, f.engine_tx, f.engine_peer
        ));
        if let (Some(h), Some(a)) = (f.heap_per_queued_put, f.allocs_per_queued_put) {
            o.push(format!(
                "per queued 8-byte PUT on the sender (engine + LNet + runtime, measured under the lock): {} heap, {a:.2} allocations",
                fmt_bytes(h)
            ));
        }
        if !self.memory.is_empty() {
            o.push("idle connections (per connection endpoint; both ends are in this process) and setup per connection:".into());
            o.push("peers | new connections | tdinal heap | tdinal RSS | raw heap | raw RSS | setup tdinal µs | raw µs | ratio | CPU tdinal µs | raw µs".into());
            for m in &self.memory {
                let b = |x: Option<f64>| x.map(fmt_bytes).unwrap_or_else(|| "?".into());
                o.push(format!(
                    "{} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0}",
                    m.peers,
                    m.new_conns,
                    b(m.heap_per_endpoint),
                    b(m.rss_per_endpoint),
                    b(m.raw_heap_per_endpoint),
                    b(m.raw_rss_per_endpoint),
                    m.td_setup_us,
                    m.raw_setup_us,
                    m.td_setup_us / m.raw_setup_us.max(1e-9),
                    m.td_cpu_us,
                    m.raw_cpu_us
                ));
            }
        }
        if let Some(e) = &self.engine {
            o.push(String::new());
            if !e.note.is_empty() {
                o.push(format!("engine instructions: {}", e.note));
            }
            for (size, t, r) in &e.per_side {
                o.push(format!(
                    "engine instructions per {size}-byte PUT (V3, callgrind, marginal; engine + its minimal runtime loop): sender {t:.0}, receiver {r:.0}, both {:.0}",
                    t + r
                ));
            }
            for (size, t, r) in &e.per_side_engine {
                o.push(format!(
                    "engine instructions per {size}-byte PUT (V3, callgrind, marginal; inside the engine's entry points only): sender {t:.0}, receiver {r:.0}, both {:.0}",
                    t + r
                ));
            }
            if let Some(h) = e.handshake_per_conn {
                o.push(format!(
                    "engine instructions per connection handshake (both engines, V3 typed): {h:.0}"
                ));
            }
        }
        o
    }

    /// An SVG plot of throughput against message size, tdinal and raw TCP (the sweep).
    pub fn plot_svg(&self) -> Option<String> {
        plot_svg(&self.sweep, &self.started, &self.load_before, self.cpus)
    }
}

fn plot_svg(rows: &[Row], when: &str, load: &str, cpus: usize) -> Option<String> {
    let mut pts: Vec<(usize, f64, f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.size.max(1),
                median(&r.tdinal)?,
                median(&r.raw)?,
                r.ratio()?,
            ))
        })
        .collect();
    // The sweep lists the bulk sizes first: the lines must run from left to right.
    pts.sort_by_key(|p| p.0);
    pts.dedup_by_key(|p| p.0);
    if pts.len() < 2 {
        return None;
    }
    let (w, h) = (820.0f64, 520.0f64);
    let (l, r, t, b) = (90.0f64, 30.0f64, 60.0f64, 90.0f64);
    let xs: Vec<f64> = pts.iter().map(|p| (p.0 as f64).log2()).collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::MAX, f64::min),
        xs.iter().copied().fold(f64::MIN, f64::max),
    );
    let ys: Vec<f64> = pts.iter().flat_map(|p| [p.1, p.2]).collect();
    let ymax = ys.iter().copied().fold(0.0, f64::max);
    let ymin = ys.iter().copied().fold(f64::MAX, f64::min).max(1e-3);
    let (e0, e1) = (
        ymin.log10().floor(),
        ymax.log10().ceil().max(ymin.log10().floor() + 1.0),
    );
    let px = |x: f64| l + (x - x0) / (x1 - x0).max(1e-9) * (w - l - r);
    let py = |y: f64| h - b - (y.max(1e-9).log10() - e0) / (e1 - e0) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">"##
    );
    let _ = writeln!(s, r##"<rect width="{w}" height="{h}" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">PUT throughput against payload size, loopback: tdinal vs raw TCP</text>"##,
        w / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="47" text-anchor="middle" fill="#555">same framing (96-byte header), 32 PUTs in flight, one reply per PUT; median of the runs; {cpus} CPU(s), {when}, load {load}</text>"##,
        w / 2.0
    );
    // Grid and y labels (decades, with 2 and 5 in between).
    let mut e = e0;
    while e <= e1 + 1e-9 {
        for m in [1.0f64, 2.0, 5.0] {
            let v = m * 10f64.powf(e);
            if v.log10() > e1 + 1e-9 {
                continue;
            }
            let y = py(v);
            let major = m == 1.0;
            let _ = writeln!(
                s,
                r##"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="1"/>"##,
                w - r,
                if major { "#ccc" } else { "#eee" }
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{}">{}</text>"##,
                l - 8.0,
                y + 4.0,
                if major { "#222" } else { "#777" },
                fmt_num(v)
            );
        }
        e += 1.0;
    }
    for (i, p) in pts.iter().enumerate() {
        let x = px(xs[i]);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/>"##,
            h - b
        );
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            h - b + 18.0,
            size_name(p.0)
        );
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#1f5fbf" font-size="12">×{:.2}</text>"##,
            h - b + 36.0,
            p.3
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{l}" y="{t}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        w - l - r,
        h - t - b
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">payload size per PUT (log scale); blue figures: tdinal/raw ratio</text>"##,
        l + (w - l - r) / 2.0,
        h - 22.0
    );
    let _ = writeln!(
        s,
        r##"<text x="22" y="{:.1}" text-anchor="middle" transform="rotate(-90 22 {:.1})">payload MiB/s (log scale)</text>"##,
        t + (h - t - b) / 2.0,
        t + (h - t - b) / 2.0
    );
    for (k, (name, color, dash)) in [("raw TCP", "#e07b00", "6 4"), ("tdinal", "#1f5fbf", "none")]
        .iter()
        .enumerate()
    {
        let line: Vec<String> = pts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let v = if k == 0 { p.2 } else { p.1 };
                format!("{:.1},{:.1}", px(xs[i]), py(v))
            })
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}"/>"##,
            line.join(" ")
        );
        for (i, p) in pts.iter().enumerate() {
            let v = if k == 0 { p.2 } else { p.1 };
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"##,
                px(xs[i]),
                py(v)
            );
        }
        let ly = t + 18.0 + k as f64 * 20.0;
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}">{name}</text>"##,
            l + 16.0,
            l + 50.0,
            l + 58.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(min_max(&[2.0, 5.0, 1.0]), Some((1.0, 5.0)));
    }

    #[test]
    fn raw_headers_round_trip() {
        let h = raw_header(KIND_MSG, 4096, 7, 2);
        assert_eq!(hdr_len(&h), 4096);
        assert_eq!(hdr_idx(&h), 2);
        assert_eq!(h[0], KIND_MSG);
    }

    #[test]
    fn plot_lines_run_left_to_right() {
        let row = |size: usize, v: f64| Row {
            group: "sweep",
            name: format!("{size}"),
            metric: Metric::Throughput,
            size,
            tdinal: vec![v],
            raw: vec![2.0 * v],
            target: None,
            td: PerMsg::default(),
            rw: PerMsg::default(),
            copies: Copies::default(),
        };
        let rows = [row(1 << 20, 100.0), row(64, 1.0), row(4096, 10.0)];
        let svg = plot_svg(&rows, "today", "0", 2).expect("a plot");
        for line in svg.lines().filter(|l| l.starts_with("<polyline")) {
            let pts = line.split('"').nth(1).unwrap_or("");
            let xs: Vec<f64> = pts
                .split(' ')
                .filter_map(|p| p.split(',').next()?.parse().ok())
                .collect();
            assert_eq!(xs.len(), 3, "{line}");
            assert!(xs.windows(2).all(|w| w[0] < w[1]), "{line}");
        }
    }

    #[test]
    fn civil_date_is_plausible() {
        let d = now_utc();
        assert!(d.starts_with("20") && d.ends_with("UTC"), "{d}");
    }
}
