//! The portable part of `ptlctl`: the verbs, their arguments, the requests they send and the
//! lines they print. No Windows call here: a verb runs against any [`Device`] (the real
//! `\\.\tdinal` on Windows, `ioctl::dispatch` with a mock NAL in the Linux tests).
//!
//! Every request is built by `tdinal::ioctl::encode_request` in the Portals-era layout (P14
//! `ptlctl`'s, the only one with tdinal's START_DAEMON and CONNECT_PEER) and every reply decoded
//! by `decode_reply`. Lists are read index by index until the driver answers "no more entries",
//! as lctl does; lines follow spec §7.3.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use tdinal::ioctl::command::conn_type_letter;
use tdinal::ioctl::{
    decode_reply, encode_request, AcceptPolicy, Command, ConnInfo, Era, PeerInfo, Reply,
    DEFAULT_ACCEPT_PORT,
};
use tdinal::wire::Nid;

/// The user-mode name of the control device.
pub const DEVICE_PATH: &str = r"\\.\tdinal";

/// The usage text.
pub const USAGE: &str = "\
usage: ptlctl VERB [ARGS]   (talks to the tdinal driver through \\\\.\\tdinal; run as Administrator)

  start_daemon --port P [--accept secure|all|none] [--backlog N]
                          start (or with --accept none, stop) the in-kernel acceptor
  connect NID IP [PORT]   connect to a peer now (PORT defaults to 988)
  add_peer NID IP PORT    add a peer; connections are made on demand
  del_peer [NID|*] [IP]   delete matching peers (default: all)
  peer_list               list peers:       12345-NID [share]myIP->IP:port #conns
  conn_list               list connections: 12345-NID T[sched]myIP->IP:port tx/rx nagle|nonagle
  disconnect [NID|*] [IP] close matching connections (default: all)
  push [NID|*]            flush queued sends (default: all peers)
  mynid NID               check the NID of the NAL (REGISTER_MYNID)
  help                    this text
";

/// What went wrong with an ioctl, as the tool needs to tell it apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevError {
    /// `ERROR_NO_MORE_ITEMS` (the driver's `STATUS_NO_MORE_ENTRIES`): the end of a list.
    #[cfg_attr(not(any(windows, test)), allow(dead_code))]
    NoMoreItems,
    /// Any other failure: the OS error code and its text.
    Os { code: i32, message: String },
}

/// The control device: one `DeviceIoControl` per call.
pub trait Device {
    /// Sends `input` with `code`, receiving up to `output.len()` bytes; returns the count.
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, DevError>;
}

/// A parsed invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    /// One command, no output on success.
    Do {
        verb: &'static str,
        cmd: Command,
    },
    PeerList,
    ConnList,
    Help,
}

fn nid_arg(s: &str) -> Result<Nid, String> {
    s.parse()
        .map_err(|_| format!("bad NID '{s}' (expected e.g. 192.168.0.1@tcp)"))
}

/// `*` or absent = all.
fn opt_nid(s: Option<&String>) -> Result<Option<Nid>, String> {
    match s.map(String::as_str) {
        None | Some("*") => Ok(None),
        Some(s) => nid_arg(s).map(|n| (n != Nid::ANY).then_some(n)),
    }
}

/// A dotted quad, or a host name resolved to its first IPv4 address.
fn ip_arg(s: &str) -> Result<u32, String> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(u32::from(ip));
    }
    let addrs = (s, 0u16)
        .to_socket_addrs()
        .map_err(|e| format!("bad IP address or host name '{s}': {e}"))?;
    addrs
        .filter_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(u32::from(v4)),
            IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("'{s}' has no IPv4 address"))
}

fn port_arg(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port '{s}' (1..65535)"))
}

fn count(verb: &str, pos: &[String], min: usize, max: usize, usage: &str) -> Result<(), String> {
    if pos.len() < min || pos.len() > max {
        return Err(format!("usage: ptlctl {verb} {usage}"));
    }
    Ok(())
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Verb, String> {
    let Some((verb, rest)) = args.split_first() else {
        return Err("no verb given (see `ptlctl help`)".into());
    };
    let verb = verb.as_str();
    // Options (--name value / --name=value) are only taken by start_daemon.
    let mut pos: Vec<String> = Vec::new();
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or_else(|| format!("option --{long} needs a value"))?;
                    (long.to_string(), v.clone())
                }
            };
            opts.push((name, value));
        } else {
            pos.push(a.clone());
        }
    }
    if verb != "start_daemon" {
        if let Some((name, _)) = opts.first() {
            return Err(format!("{verb} takes no option --{name}"));
        }
    }
    let p = |i: usize| pos.get(i);
    let need = |i: usize| pos.get(i).map(String::as_str).unwrap_or_default();
    let doit = |verb: &'static str, cmd: Command| Ok(Verb::Do { verb, cmd });
    match verb {
        "help" | "--help" | "-h" => Ok(Verb::Help),
        "start_daemon" => {
            count(
                verb,
                &pos,
                0,
                0,
                "--port P [--accept secure|all|none] [--backlog N]",
            )?;
            let mut port = None;
            let mut accept = AcceptPolicy::Secure;
            let mut backlog = None;
            for (name, value) in &opts {
                match name.as_str() {
                    "port" => port = Some(port_arg(value)?),
                    "accept" => {
                        accept = match value.as_str() {
                            "secure" => AcceptPolicy::Secure,
                            "all" => AcceptPolicy::All,
                            "none" => AcceptPolicy::None,
                            other => {
                                return Err(format!("bad --accept '{other}' (secure, all or none)"))
                            }
                        }
                    }
                    "backlog" => {
                        backlog = Some(
                            value
                                .parse::<u32>()
                                .ok()
                                .filter(|b| (1..=4096).contains(b))
                                .ok_or_else(|| format!("bad --backlog '{value}' (1..4096)"))?,
                        )
                    }
                    other => return Err(format!("start_daemon takes no option --{other}")),
                }
            }
            let port = port.ok_or("start_daemon needs --port P")?;
            doit(
                "start_daemon",
                Command::StartDaemon {
                    port,
                    accept,
                    backlog,
                },
            )
        }
        "connect" => {
            count(verb, &pos, 2, 3, "NID IP [PORT]")?;
            let nid = nid_arg(need(0))?;
            let ip = ip_arg(need(1))?;
            let port = match p(2) {
                Some(s) => port_arg(s)?,
                None => DEFAULT_ACCEPT_PORT,
            };
            doit(
                "connect",
                Command::ConnectPeer {
                    nid,
                    ip,
                    port,
                    ctype: None,
                },
            )
        }
        "add_peer" => {
            count(verb, &pos, 3, 3, "NID IP PORT")?;
            let cmd = Command::AddPeer {
                nid: nid_arg(need(0))?,
                ip: ip_arg(need(1))?,
                port: port_arg(need(2))?,
            };
            doit("add_peer", cmd)
        }
        "del_peer" => {
            count(verb, &pos, 0, 2, "[NID|*] [IP]")?;
            let cmd = Command::DelPeer {
                nid: opt_nid(p(0))?,
                ip: p(1).map(|s| ip_arg(s)).transpose()?,
                single_share: false,
            };
            doit("del_peer", cmd)
        }
        "disconnect" => {
            count(verb, &pos, 0, 2, "[NID|*] [IP]")?;
            let cmd = Command::CloseConnection {
                nid: opt_nid(p(0))?,
                ip: p(1).map(|s| ip_arg(s)).transpose()?,
            };
            doit("disconnect", cmd)
        }
        "push" => {
            count(verb, &pos, 0, 1, "[NID|*]")?;
            doit(
                "push",
                Command::PushConnection {
                    nid: opt_nid(p(0))?,
                },
            )
        }
        "mynid" => {
            count(verb, &pos, 1, 1, "NID")?;
            doit(
                "mynid",
                Command::RegisterMyNid {
                    nid: nid_arg(need(0))?,
                },
            )
        }
        "peer_list" | "print_peers" => {
            count(verb, &pos, 0, 0, "")?;
            Ok(Verb::PeerList)
        }
        "conn_list" | "print_conns" => {
            count(verb, &pos, 0, 0, "")?;
            Ok(Verb::ConnList)
        }
        other => Err(format!("unknown verb '{other}' (see `ptlctl help`)")),
    }
}

/// `peer_list` line: `12345-NID [share]myIP->peerIP:port #conns`.
pub fn format_peer(p: &PeerInfo) -> String {
    format!(
        "{:<20} [{}]{}->{}:{} #{}",
        format!("{}-{}", p.pid, p.nid),
        p.share_count,
        Ipv4Addr::from(p.my_ip),
        Ipv4Addr::from(p.ip),
        p.port,
        p.conn_count
    )
}

/// `conn_list` line: `12345-NID T[sched]myIP->peerIP:port txbuf/rxbuf nagle|nonagle`.
pub fn format_conn(c: &ConnInfo) -> String {
    format!(
        "{:<20} {}[{}]{}->{}:{} {}/{} {}",
        format!("{}-{}", c.pid, c.nid),
        conn_type_letter(c.conn_type),
        c.scheduler,
        Ipv4Addr::from(c.my_ip),
        Ipv4Addr::from(c.ip),
        c.port,
        c.tx_buf,
        c.rx_buf,
        if c.nagle { "nagle" } else { "nonagle" }
    )
}

/// A failed ioctl as a message: the OS text, plus what it usually means for tdinal.
pub fn describe(verb: &str, e: &DevError) -> String {
    match e {
        DevError::NoMoreItems => format!("{verb}: no such entry"),
        DevError::Os { code, message } => {
            let hint = match code {
                // ERROR_BAD_COMMAND <- STATUS_INVALID_DEVICE_STATE.
                22 => " (is the NAL started? the driver answers this until it is)",
                // ERROR_ACCESS_DENIED.
                5 => " (run ptlctl as Administrator)",
                // ERROR_NOT_SUPPORTED <- STATUS_NOT_SUPPORTED.
                50 => " (tdinal does not implement this command)",
                _ => "",
            };
            format!("{verb}: {message}{hint}")
        }
    }
}

/// Largest request/reply (Portals era: 224 bytes).
const BUF: usize = 512;

fn request(cmd: &Command) -> Result<(u32, Vec<u8>), String> {
    let mut buf = vec![0u8; BUF];
    let (code, n) = encode_request(cmd, Era::Portals, &mut buf)
        .map_err(|e| format!("cannot build the request: {e}"))?;
    buf.truncate(n);
    Ok((code, buf))
}

/// Sends one list request; `Ok(None)` at the end of the list.
fn list_entry(dev: &mut dyn Device, verb: &str, cmd: &Command) -> Result<Option<Reply>, String> {
    let (code, input) = request(cmd)?;
    let mut output = vec![0u8; input.len()];
    match dev.ioctl(code, &input, &mut output) {
        Ok(n) => {
            let reply = output.get(..n).unwrap_or_default();
            decode_reply(code, reply)
                .map(Some)
                .map_err(|e| format!("{verb}: bad reply from the driver: {e}"))
        }
        Err(DevError::NoMoreItems) => Ok(None),
        Err(e) => Err(describe(verb, &e)),
    }
}

/// Runs a parsed verb against `dev`, writing its output lines to `out`.
pub fn run(verb: &Verb, dev: &mut dyn Device, out: &mut String) -> Result<(), String> {
    match verb {
        Verb::Help => {
            out.push_str(USAGE);
            Ok(())
        }
        Verb::Do { verb, cmd } => {
            let (code, input) = request(cmd)?;
            let mut output = [0u8; 0];
            dev.ioctl(code, &input, &mut output)
                .map(|_| ())
                .map_err(|e| describe(verb, &e))
        }
        Verb::PeerList | Verb::ConnList => {
            let peers = *verb == Verb::PeerList;
            let name = if peers { "peer_list" } else { "conn_list" };
            let mut index = 0u32;
            loop {
                let cmd = if peers {
                    Command::GetPeer { index }
                } else {
                    Command::GetConn { index }
                };
                let line = match list_entry(dev, name, &cmd)? {
                    None => return Ok(()),
                    Some(Reply::Peer(p)) => format_peer(&p),
                    Some(Reply::Conn(c)) => format_conn(&c),
                    Some(other) => return Err(format!("{name}: unexpected reply {other:?}")),
                };
                let _ = writeln!(out, "{line}");
                index = index
                    .checked_add(1)
                    .ok_or_else(|| format!("{name}: list too long"))?;
            }
        }
    }
}
