//! The daemon's control socket: a Unix-domain stream socket speaking a small line protocol
//! (the crate's ioctl encodings cover the socklnd commands — they travel inside the `ioctl`
//! request — but not ping, PUT, stats or shutdown, which get text verbs of their own).
//!
//! One request per connection: the client writes one line, `verb arg…`; the server answers with
//! zero or more output lines, each prefixed `= `, then one status line: `ok` or
//! `error <message>`.
//!
//! | request | output |
//! | --- | --- |
//! | `connect NID IP PORT [TIMEOUT_MS]` | the peer's connections, `conn_list` format |
//! | `add_peer NID IP PORT` | — |
//! | `del_peer [NID\|*] [IP]` | `closed N connections` |
//! | `disconnect [NID\|*] [IP]` | `closed N connections` |
//! | `ping ID TIMEOUT_MS` | one `pid-nid` per line |
//! | `peer_list` | `12345-NID [share]myIP->peerIP:port #conns` |
//! | `conn_list [verbose]` | `12345-NID T[sched]myIP->peerIP:port txbuf/rxbuf nagle\|nonagle` |
//! | `put ID SIZE COUNT` | a summary line, then `digest 0x…` |
//! | `stats` | `name value` lines |
//! | `shutdown` | — (the daemon then stops) |
//! | `ioctl CODE HEX` | `errno N`, the reply bytes in hex, and on error a message |
//!
//! `ioctl` carries a control code and request exactly as `DeviceIoControl` would hand them to
//! the Windows driver (`crate::ioctl` encodings, LNet or Portals era); the daemon runs them
//! through the same `ioctl::dispatch` (see [`super::nal`]).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::node::{nlog, sorted_conns, sorted_peers, type_name, ConnView, NodeHandle, NodeStats};
use super::sys;
use crate::engine::PeerInfo;
use crate::wire::{ConnType, Nid, ProcessId};

/// Longest request line accepted.
pub const MAX_LINE: usize = 2 * crate::ioctl::MAX_REQUEST_LEN + 64;

/// A control request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Connect {
        nid: Nid,
        ip: Ipv4Addr,
        port: u16,
        timeout_ms: u64,
    },
    AddPeer {
        nid: Nid,
        ip: Ipv4Addr,
        port: u16,
    },
    DelPeer {
        nid: Option<Nid>,
        ip: Option<Ipv4Addr>,
    },
    Disconnect {
        nid: Option<Nid>,
        ip: Option<Ipv4Addr>,
    },
    Ping {
        id: ProcessId,
        timeout_ms: u64,
    },
    PeerList,
    ConnList {
        verbose: bool,
    },
    Put {
        id: ProcessId,
        size: usize,
        count: u64,
    },
    Stats,
    Shutdown,
    /// An ioctl: control code and request bytes.
    Ioctl {
        code: u32,
        input: Vec<u8>,
    },
}

/// The default wait of `connect`.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

fn parse_nid(s: &str) -> Result<Nid, String> {
    s.parse::<Nid>()
        .map_err(|_| format!("bad NID '{s}' (expected e.g. 192.168.0.1@tcp)"))
}

fn parse_opt_nid(s: Option<&str>) -> Result<Option<Nid>, String> {
    match s {
        None | Some("*") => Ok(None),
        Some(s) => parse_nid(s).map(Some),
    }
}

fn parse_ip(s: &str) -> Result<Ipv4Addr, String> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| format!("bad IPv4 address '{s}'"))
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("bad port '{s}' (1..65535)"))
}

fn parse_id(s: &str) -> Result<ProcessId, String> {
    s.parse::<ProcessId>()
        .map_err(|_| format!("bad NID or PID-NID '{s}' (expected e.g. 192.168.0.1@tcp)"))
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|_| format!("bad {what} '{s}'"))
}

impl Request {
    /// Parses one request line.
    pub fn parse(line: &str) -> Result<Request, String> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (verb, args) = w.split_first().ok_or("empty request")?;
        let n = args.len();
        let arg = |i: usize| args.get(i).copied();
        let usage = |u: &str| -> Result<Request, String> { Err(format!("usage: {u}")) };
        match *verb {
            "connect" => {
                if !(3..=4).contains(&n) {
                    return usage("connect NID IP PORT [TIMEOUT_MS]");
                }
                Ok(Request::Connect {
                    nid: parse_nid(args[0])?,
                    ip: parse_ip(args[1])?,
                    port: parse_port(args[2])?,
                    timeout_ms: match arg(3) {
                        Some(t) => parse_num(t, "timeout")?,
                        None => CONNECT_TIMEOUT_MS,
                    },
                })
            }
            "add_peer" => {
                if n != 3 {
                    return usage("add_peer NID IP PORT");
                }
                Ok(Request::AddPeer {
                    nid: parse_nid(args[0])?,
                    ip: parse_ip(args[1])?,
                    port: parse_port(args[2])?,
                })
            }
            "del_peer" | "disconnect" => {
                if n > 2 {
                    return usage(&format!("{verb} [NID|*] [IP]"));
                }
                let nid = parse_opt_nid(arg(0))?;
                let ip = arg(1).map(parse_ip).transpose()?;
                Ok(if *verb == "del_peer" {
                    Request::DelPeer { nid, ip }
                } else {
                    Request::Disconnect { nid, ip }
                })
            }
            "ping" => {
                if n != 2 {
                    return usage("ping ID TIMEOUT_MS");
                }
                Ok(Request::Ping {
                    id: parse_id(args[0])?,
                    timeout_ms: parse_num(args[1], "timeout")?,
                })
            }
            "peer_list" if n == 0 => Ok(Request::PeerList),
            "conn_list" if n == 0 => Ok(Request::ConnList { verbose: false }),
            "conn_list" if n == 1 && args[0] == "verbose" => {
                Ok(Request::ConnList { verbose: true })
            }
            "put" => {
                if n != 3 {
                    return usage("put ID SIZE COUNT");
                }
                let size: usize = parse_num(args[1], "size")?;
                if size > crate::wire::nid::LNET_MTU as usize {
                    return Err(format!(
                        "size {size} is above LNet's MTU ({} bytes)",
                        crate::wire::nid::LNET_MTU
                    ));
                }
                Ok(Request::Put {
                    id: parse_id(args[0])?,
                    size,
                    count: parse_num(args[2], "count")?,
                })
            }
            "ioctl" => {
                if n != 2 {
                    return usage("ioctl CODE HEX");
                }
                let code = u32::from_str_radix(args[0].trim_start_matches("0x"), 16)
                    .map_err(|_| format!("bad control code '{}'", args[0]))?;
                let input = from_hex(args[1]).ok_or("bad request bytes (hex expected)")?;
                Ok(Request::Ioctl { code, input })
            }
            "stats" if n == 0 => Ok(Request::Stats),
            "shutdown" if n == 0 => Ok(Request::Shutdown),
            "peer_list" | "conn_list" | "stats" | "shutdown" => {
                Err(format!("{verb}: unexpected arguments"))
            }
            other => Err(format!("unknown request '{other}'")),
        }
    }
}

impl fmt::Display for Request {
    /// The request line (what [`Request::parse`] reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt_nid = |n: &Option<Nid>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
        match self {
            Request::Connect {
                nid,
                ip,
                port,
                timeout_ms,
            } => write!(f, "connect {nid} {ip} {port} {timeout_ms}"),
            Request::AddPeer { nid, ip, port } => write!(f, "add_peer {nid} {ip} {port}"),
            Request::DelPeer { nid, ip } | Request::Disconnect { nid, ip } => {
                let verb = if matches!(self, Request::DelPeer { .. }) {
                    "del_peer"
                } else {
                    "disconnect"
                };
                write!(f, "{verb} {}", opt_nid(nid))?;
                if let Some(ip) = ip {
                    write!(f, " {ip}")?;
                }
                Ok(())
            }
            Request::Ping { id, timeout_ms } => write!(f, "ping {id} {timeout_ms}"),
            Request::PeerList => f.write_str("peer_list"),
            Request::ConnList { verbose: false } => f.write_str("conn_list"),
            Request::ConnList { verbose: true } => f.write_str("conn_list verbose"),
            Request::Put { id, size, count } => write!(f, "put {id} {size} {count}"),
            Request::Stats => f.write_str("stats"),
            Request::Shutdown => f.write_str("shutdown"),
            Request::Ioctl { code, input } => write!(f, "ioctl {code:08x} {}", to_hex(input)),
        }
    }
}

/// Lower-case hex of `b`.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes from hex (`None` on odd length or a non-hex digit).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
        .collect()
}

/// One `peer_list` line.
pub fn peer_line(
    id: ProcessId,
    share: u32,
    my_ip: Ipv4Addr,
    ip: Ipv4Addr,
    port: u16,
    conns: u32,
) -> String {
    format!(
        "{:<20} [{share}]{my_ip}->{ip}:{port} #{conns}",
        id.to_string()
    )
}

/// One `conn_list` line.
#[allow(clippy::too_many_arguments)] // the columns of lctl's line
pub fn conn_line(
    id: ProcessId,
    ctype: ConnType,
    sched: u32,
    my_ip: Ipv4Addr,
    ip: Ipv4Addr,
    port: u16,
    txbuf: u32,
    rxbuf: u32,
    nagle: bool,
) -> String {
    format!(
        "{:<20} {}[{sched}]{my_ip}->{ip}:{port} {txbuf}/{rxbuf} {}",
        id.to_string(),
        type_letter(ctype),
        if nagle { "nagle" } else { "nonagle" }
    )
}

/// `peer_list` lines (spec §7.3): `12345-NID [share]myIP->peerIP:port #conns`.
pub fn format_peers(peers: &[PeerInfo], my_ip: Ipv4Addr) -> Vec<String> {
    sorted_peers(peers.to_vec())
        .iter()
        .map(|p| {
            peer_line(
                p.id,
                p.share_count,
                my_ip,
                Ipv4Addr::from(p.ip),
                p.port,
                p.conn_count,
            )
        })
        .collect()
}

/// The letter `conn_list` uses for a connection type.
pub fn type_letter(t: ConnType) -> char {
    match t {
        ConnType::Any => 'A',
        ConnType::Control => 'C',
        ConnType::BulkIn => 'I',
        ConnType::BulkOut => 'O',
        ConnType::None => '?',
    }
}

/// `conn_list` lines (spec §7.3): `12345-NID T[sched]myIP->peerIP:port txbuf/rxbuf nagle`;
/// `verbose` adds the protocol version, the local port and who connected.
pub fn format_conns(conns: &[ConnView], verbose: bool) -> Vec<String> {
    sorted_conns(conns.to_vec())
        .iter()
        .map(|c| {
            let i = &c.info;
            let (sched, tx, rx, nagle) = match c.meta {
                Some(m) => (m.sched, m.txbuf, m.rxbuf, m.nagle),
                None => (0, 0, 0, false),
            };
            let mut s = conn_line(
                i.peer,
                i.ctype,
                sched as u32,
                Ipv4Addr::from(i.addrs.local_ip),
                Ipv4Addr::from(i.addrs.peer_ip),
                i.addrs.peer_port,
                tx,
                rx,
                nagle,
            );
            if verbose {
                s.push_str(&format!(
                    " V{} {} :{} {}",
                    i.version.to_wire(),
                    type_name(i.ctype),
                    i.addrs.local_port,
                    if i.active { "active" } else { "passive" }
                ));
            }
            s
        })
        .collect()
}

/// `stats` lines: `name value`.
pub fn format_stats(s: &NodeStats) -> Vec<String> {
    let e = &s.engine;
    let mut v: Vec<(&str, u64)> = vec![
        ("conns_open", e.conns_open),
        ("peers", e.peers),
        ("rx_msgs_open", e.rx_msgs_open),
        ("tx_msgs_open", e.tx_msgs_open()),
        ("zc_waiting", e.zc_waiting),
        ("tx_msgs_started", e.tx_msgs_started),
        ("tx_msgs_done", e.tx_msgs_done),
        ("tx_msgs_failed", e.tx_msgs_failed),
        ("rx_msgs", e.rx_msgs),
        ("rx_noops", e.rx_noops),
        ("rx_bytes", e.rx_bytes),
        ("tx_bytes", e.tx_bytes),
        ("rx_payload_copied", e.rx_payload_copied),
        ("rx_payload_bytes", e.rx_payload_bytes),
        ("zc_requests", e.zc_requests),
        ("zc_acks_received", e.zc_acks_received),
        ("zc_acks_stale", e.zc_acks_stale),
        ("zc_acks_dropped", e.zc_acks_dropped),
        ("zc_acks_piggybacked", e.zc_acks_piggybacked),
        ("zc_acks_noop", e.zc_acks_noop),
        ("keepalives_sent", e.keepalives_sent),
        ("handshakes_ok", e.handshakes_ok),
        ("handshakes_refused", e.handshakes_refused),
        ("fallbacks", e.fallbacks),
        ("fallback_replies", e.fallback_replies),
        ("races_lost_by_peer", e.races_lost_by_peer),
        ("incarnation_changes", e.incarnation_changes),
        ("refused_insecure", e.refused_insecure),
        ("lnet_pings_served", s.lnet.pings_served),
        ("lnet_pushes", s.lnet.pushes),
        ("lnet_puts_received", s.lnet.puts_received),
        ("lnet_put_bytes_received", s.lnet.put_bytes_received),
        ("lnet_dropped", s.lnet.dropped),
        ("lnet_ops_open", s.lnet_ops_open as u64),
        ("puts_received", s.puts.count),
        ("put_bytes_received", s.puts.bytes),
    ];
    v.extend(s.rt.iter().copied());
    v.push(("schedulers", s.schedulers as u64));
    let mut out: Vec<String> = v.iter().map(|(n, x)| format!("{n} {x}")).collect();
    out.push(format!("put_digest 0x{:016x}", s.puts.digest));
    out
}

/// Executes one request on `node`: output lines, or an error message.
pub fn execute(node: &NodeHandle, req: &Request) -> Result<Vec<String>, String> {
    match req {
        Request::Connect {
            nid,
            ip,
            port,
            timeout_ms,
        } => {
            let conns = node
                .connect(
                    ProcessId::lustre(*nid),
                    *ip,
                    *port,
                    Duration::from_millis(*timeout_ms),
                )
                .map_err(|e| e.message)?;
            Ok(format_conns(&conns, true))
        }
        Request::AddPeer { nid, ip, port } => {
            node.add_peer(ProcessId::lustre(*nid), *ip, *port);
            Ok(Vec::new())
        }
        Request::DelPeer { nid, ip } => {
            let n = node.del_peer(*nid, *ip);
            Ok(vec![format!("closed {n} connections")])
        }
        Request::Disconnect { nid, ip } => {
            let n = node.disconnect(*nid, *ip);
            Ok(vec![format!("closed {n} connections")])
        }
        Request::Ping { id, timeout_ms } => {
            let ids = node
                .ping(*id, Duration::from_millis(*timeout_ms))
                .map_err(|e| format!("failed to ping {id}: {e}"))?;
            Ok(ids.iter().map(|(p, _)| p.to_string()).collect())
        }
        Request::PeerList => Ok(format_peers(&node.peers(), node.local_ip())),
        Request::ConnList { verbose } => Ok(format_conns(&node.conns(), *verbose)),
        Request::Put { id, size, count } => {
            let stall = Duration::from_secs(u64::from(node.config().tunables.sock_timeout.max(5)));
            let r = node.put(*id, *size, *count, stall)?;
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            let bytes = (r.size as u64).saturating_mul(r.ok);
            let mut out = vec![format!(
                "{} PUTs of {} bytes to {id}: {} acknowledged, {} failed, {:.3} s, {:.1} MiB/s",
                r.count,
                r.size,
                r.ok,
                r.failed.len(),
                secs,
                bytes as f64 / secs / 1048576.0
            )];
            for e in r.failed.iter().take(5) {
                out.push(format!("failed: {e}"));
            }
            out.push(format!("digest 0x{:016x}", r.digest));
            if r.failed.is_empty() {
                Ok(out)
            } else {
                Err(out.join("; "))
            }
        }
        Request::Stats => Ok(format_stats(&node.stats())),
        Request::Shutdown => {
            node.request_stop();
            Ok(Vec::new())
        }
        Request::Ioctl { code, input } => {
            let mut nal = super::nal::RuntimeNal { node };
            let mut out = vec![0u8; input.len()];
            Ok(
                match crate::ioctl::dispatch(&mut nal, *code, input, &mut out) {
                    Ok(n) => vec!["errno 0".into(), to_hex(out.get(..n).unwrap_or(&[]))],
                    Err(e) => vec![
                        format!("errno {}", e.to_errno()),
                        String::new(),
                        e.to_string(),
                    ],
                },
            )
        }
    }
}

/// An ioctl the daemon ran and refused: Linux errno and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoctlFailure {
    pub errno: i32,
    pub message: String,
}

/// Runs an ioctl on the daemon: `Ok(Ok(reply bytes))`, `Ok(Err(failure))` when the command
/// failed, `Err` when the daemon could not be asked.
pub fn ioctl_call(
    path: &Path,
    code: u32,
    input: &[u8],
    timeout: Duration,
) -> Result<Result<Vec<u8>, IoctlFailure>, String> {
    let req = Request::Ioctl {
        code,
        input: input.to_vec(),
    };
    let lines = call(path, &req, timeout)?;
    let errno = lines
        .first()
        .and_then(|l| l.strip_prefix("errno "))
        .and_then(|v| v.parse::<i32>().ok())
        .ok_or_else(|| format!("unexpected ioctl answer: {lines:?}"))?;
    if errno == 0 {
        let hex = lines.get(1).map(|s| s.as_str()).unwrap_or("");
        return from_hex(hex)
            .map(Ok)
            .ok_or_else(|| "bad ioctl reply bytes".to_string());
    }
    Ok(Err(IoctlFailure {
        errno,
        message: lines.get(2).cloned().unwrap_or_default(),
    }))
}

/// Where a daemon for `nid` puts its control socket by default: `/run/tdinal/<nid>.sock` when
/// `/run` is writable (root), else `$TMPDIR/tdinal-<nid>.sock`.
pub fn default_path(nid: Nid) -> PathBuf {
    let run = Path::new("/run");
    if run.is_dir() && sys::is_root() {
        run.join("tdinal").join(format!("{nid}.sock"))
    } else {
        std::env::temp_dir().join(format!("tdinal-{nid}.sock"))
    }
}

/// The paths a client tries for `nid`, in order.
pub fn candidate_paths(nid: Nid) -> Vec<PathBuf> {
    vec![
        Path::new("/run/tdinal").join(format!("{nid}.sock")),
        std::env::temp_dir().join(format!("tdinal-{nid}.sock")),
    ]
}

/// Sends one request and returns the output lines (`Err`: the daemon's error message, or why
/// it could not be reached).
pub fn call(path: &Path, req: &Request, timeout: Duration) -> Result<Vec<String>, String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                " — is `tdinal daemon` running? (pass --control PATH or --nid NID)"
            }
            io::ErrorKind::PermissionDenied => " — run as the daemon's user (root?)",
            _ => "",
        };
        format!("cannot reach the daemon at {}: {e}{hint}", path.display())
    })?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{req}\n").as_bytes())
        .map_err(|e| format!("sending to the daemon: {e}"))?;
    let mut out = Vec::new();
    let rd = BufReader::new(s);
    for line in rd.lines() {
        let line = line.map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut {
                format!("no answer from the daemon within {} s", timeout.as_secs())
            } else {
                format!("reading the daemon's answer: {e}")
            }
        })?;
        if let Some(rest) = line.strip_prefix("= ") {
            out.push(rest.to_string());
        } else if line == "=" {
            out.push(String::new());
        } else if line == "ok" {
            return Ok(out);
        } else if let Some(msg) = line.strip_prefix("error ") {
            return Err(msg.to_string());
        } else {
            return Err(format!("unexpected answer from the daemon: {line:?}"));
        }
    }
    Err("the daemon closed the connection without an answer".into())
}

/// A running control server.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    waker: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `path` (creating its directory; replacing a stale socket, refusing a live
    /// one) and serves `node` on a thread.
    pub fn start(node: NodeHandle, path: &Path) -> Result<Server, String> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create {}: {e} — pass --control PATH", dir.display())
                })?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another daemon answers on {} — stop it, or pass --control PATH",
                    path.display()
                ));
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path).map_err(|e| {
            format!(
                "cannot listen on {}: {e} — pass --control PATH",
                path.display()
            )
        })?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let (wa, wb) = UnixStream::pair().map_err(|e| e.to_string())?;
        wa.set_nonblocking(true).map_err(|e| e.to_string())?;
        wb.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tdinal-control".into())
            .spawn(move || serve(node, listener, st, wb))
            .map_err(|e| e.to_string())?;
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            waker: wa,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving, joins the thread and removes the socket file.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = (&self.waker).write(&[1]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.halt();
        }
    }
}

/// Requests served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

fn serve(node: NodeHandle, listener: UnixListener, stop: Arc<AtomicBool>, wake: UnixStream) {
    let sh = node.shared.clone();
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        clients.retain(|h| !h.is_finished());
        let mut fds = [
            sys::pollfd(listener.as_raw_fd(), sys::POLLIN),
            sys::pollfd(wake.as_raw_fd(), sys::POLLIN),
        ];
        if clients.len() >= MAX_CLIENTS {
            // Busy: only wait for the stop signal, then look again.
            fds[0].events = 0;
        }
        if sys::poll(&mut fds, 100).is_err() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        while clients.len() < MAX_CLIENTS {
            match listener.accept() {
                Ok((s, _)) => {
                    // Each request on its own thread: a long `put` or `ping` does not hold up
                    // `stats`.
                    let n = node.clone();
                    let spawned = std::thread::Builder::new()
                        .name("tdinal-control-client".into())
                        .spawn(move || {
                            if let Err(e) = client(&n, s) {
                                nlog!(n.shared, Debug, "control client: {e}");
                            }
                        });
                    match spawned {
                        Ok(h) => clients.push(h),
                        Err(e) => nlog!(sh, Warn, "control socket: cannot start a thread: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    nlog!(sh, Warn, "control socket: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            }
        }
    }
    // Requests in progress end on their own bounds (and at once once the node stops).
    for h in clients {
        let _ = h.join();
    }
}

fn client(node: &NodeHandle, s: UnixStream) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = Vec::new();
    let mut rd = BufReader::new(&s).take(MAX_LINE as u64);
    rd.read_until(b'\n', &mut line)?;
    let text = String::from_utf8_lossy(&line);
    let text = text.trim();
    let sh = &node.shared;
    nlog!(sh, Debug, "control: {text}");
    let answer = Request::parse(text).and_then(|r| execute(node, &r));
    let mut out = String::new();
    match answer {
        Ok(lines) => {
            for l in lines {
                out.push_str("= ");
                out.push_str(&l);
                out.push('\n');
            }
            out.push_str("ok\n");
        }
        Err(e) => {
            nlog!(sh, Debug, "control: '{text}' failed: {e}");
            out.push_str("error ");
            out.push_str(&e.replace('\n', " "));
            out.push('\n');
        }
    }
    (&s).write_all(out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_lines() {
        let reqs = [
            "connect 127.0.0.3@tcp 127.0.0.3 988 10000",
            "add_peer 10.0.0.1@tcp 10.0.0.1 988",
            "del_peer *",
            "del_peer 10.0.0.1@tcp 10.0.0.1",
            "disconnect *",
            "disconnect 10.0.0.1@tcp",
            "ping 12345-10.0.0.1@tcp 1000",
            "peer_list",
            "conn_list",
            "conn_list verbose",
            "put 12345-10.0.0.1@tcp 1048576 64",
            "stats",
            "shutdown",
        ];
        for r in reqs {
            let parsed = Request::parse(r).unwrap();
            assert_eq!(parsed.to_string(), r, "{r}");
            assert_eq!(Request::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn request_defaults_and_errors() {
        assert_eq!(
            Request::parse("connect 127.0.0.3@tcp 127.0.0.3 988").unwrap(),
            Request::Connect {
                nid: "127.0.0.3@tcp".parse().unwrap(),
                ip: Ipv4Addr::new(127, 0, 0, 3),
                port: 988,
                timeout_ms: CONNECT_TIMEOUT_MS
            }
        );
        assert_eq!(
            Request::parse("ping 10.0.0.1@tcp 500").unwrap(),
            Request::Ping {
                id: ProcessId::lustre("10.0.0.1@tcp".parse().unwrap()),
                timeout_ms: 500
            }
        );
        assert_eq!(
            Request::parse("disconnect").unwrap(),
            Request::Disconnect {
                nid: None,
                ip: None
            }
        );
        let err = |l: &str| Request::parse(l).unwrap_err();
        assert_eq!(err(""), "empty request");
        assert!(err("frobnicate").contains("unknown request 'frobnicate'"));
        assert!(err("connect 127.0.0.3@tcp").starts_with("usage: connect"));
        assert!(err("connect nonsense 1.2.3.4 988").contains("bad NID 'nonsense'"));
        assert!(err("connect 1.2.3.4@tcp 1.2.3 988").contains("bad IPv4 address"));
        assert!(err("connect 1.2.3.4@tcp 1.2.3.4 0").contains("bad port '0'"));
        assert!(err("put 1.2.3.4@tcp 2000000 1").contains("MTU"));
        assert!(err("stats now").contains("unexpected arguments"));
        assert!(err("ping 1.2.3.4@tcp soon").contains("bad timeout"));
    }

    #[test]
    fn peer_and_conn_lines_follow_lctl() {
        use crate::engine::{ConnAddrs, ConnId, ConnInfo};
        use crate::wire::ProtoVersion;
        let peer = ProcessId::lustre("127.0.0.3@tcp".parse().unwrap());
        let p = PeerInfo {
            id: peer,
            ip: u32::from(Ipv4Addr::new(127, 0, 0, 3)),
            port: 988,
            conn_count: 3,
            share_count: 1,
            version: Some(ProtoVersion::V3),
        };
        assert_eq!(
            format_peers(&[p], Ipv4Addr::new(127, 0, 0, 2)),
            vec!["12345-127.0.0.3@tcp  [1]127.0.0.2->127.0.0.3:988 #3".to_string()]
        );
        let c = ConnView {
            info: ConnInfo {
                conn: ConnId(4),
                peer,
                ctype: ConnType::BulkIn,
                version: ProtoVersion::V3,
                addrs: ConnAddrs {
                    local_ip: u32::from(Ipv4Addr::new(127, 0, 0, 2)),
                    local_port: 1022,
                    peer_ip: u32::from(Ipv4Addr::new(127, 0, 0, 3)),
                    peer_port: 988,
                },
                active: true,
                tx_queued_bytes: 0,
                zc_capable: true,
            },
            meta: Some(super::super::node::ConnMeta {
                sched: 1,
                txbuf: 2626560,
                rxbuf: 131072,
                nagle: false,
            }),
        };
        assert_eq!(
            format_conns(&[c], false),
            vec![
                "12345-127.0.0.3@tcp  I[1]127.0.0.2->127.0.0.3:988 2626560/131072 nonagle"
                    .to_string()
            ]
        );
        assert_eq!(
            format_conns(&[c], true)[0],
            "12345-127.0.0.3@tcp  I[1]127.0.0.2->127.0.0.3:988 2626560/131072 nonagle \
             V3 BULK_IN :1022 active"
        );
    }
}
