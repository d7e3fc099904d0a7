//! The verbs that talk to a running daemon over its control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tdinal::ioctl::{self, Command, Era, Reply};
use tdinal::runtime::control::{self, IoctlFailure, Request};
use tdinal::wire::{Nid, ProcessId};

use crate::args::{parse_size, Args};

/// Which daemon: `--control PATH`, or `--nid NID` (its default socket), or the only one there.
fn control_path(a: &Args) -> Result<PathBuf, String> {
    if let Some(p) = a.opt("control") {
        return Ok(PathBuf::from(p));
    }
    if let Some(n) = a.opt("nid") {
        let nid: Nid = n
            .parse()
            .map_err(|_| format!("bad NID '{n}' for --nid (expected e.g. 192.168.0.1@tcp)"))?;
        let cands = control::candidate_paths(nid);
        return Ok(cands
            .iter()
            .find(|p| p.exists())
            .cloned()
            .unwrap_or_else(|| control::default_path(nid)));
    }
    let mut found = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/run/tdinal") {
        found.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock")),
        );
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        found.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tdinal-") && n.ends_with(".sock"))
        }));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("no daemon found: start `tdinal daemon --nid NID`, or pass --control PATH".into()),
        _ => Err(format!(
            "several daemons run ({}): pass --nid NID or --control PATH",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn nid_arg(s: &str) -> Result<Nid, String> {
    s.parse()
        .map_err(|_| format!("bad NID '{s}' (expected e.g. 192.168.0.1@tcp)"))
}

fn opt_nid_arg(s: Option<&String>) -> Result<Option<Nid>, String> {
    match s.map(|s| s.as_str()) {
        None | Some("*") => Ok(None),
        Some(s) => nid_arg(s).map(Some),
    }
}

fn ip_arg(s: &str) -> Result<std::net::Ipv4Addr, String> {
    s.parse().map_err(|_| format!("bad IPv4 address '{s}'"))
}

fn port_arg(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port '{s}' (1..65535)"))
}

fn secs(a: &Args, pos: Option<&String>, default: f64) -> Result<Duration, String> {
    let v = match (a.opt("timeout"), pos) {
        (Some(t), _) => t.to_string(),
        (None, Some(p)) => p.clone(),
        (None, None) => return Ok(Duration::from_secs_f64(default)),
    };
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad timeout '{v}' (seconds)"))
}

/// Runs one socklnd command as `lctl` does, through its ioctl encoding (LNet era).
fn ioctl(
    path: &Path,
    cmd: &Command,
    wait: Duration,
) -> Result<Result<Reply, IoctlFailure>, String> {
    let mut buf = [0u8; 1024];
    let (code, len) = ioctl::encode_request(cmd, Era::Lnet, &mut buf)
        .map_err(|e| format!("cannot encode {}: {e}", cmd.name()))?;
    let out = match control::ioctl_call(path, code, buf.get(..len).unwrap_or(&[]), wait)? {
        Ok(out) => out,
        Err(f) => return Ok(Err(f)),
    };
    if out.is_empty() {
        return Ok(Ok(Reply::None));
    }
    ioctl::decode_reply(code, &out)
        .map(Ok)
        .map_err(|e| format!("bad {} reply: {e}", cmd.name()))
}

fn ioctl_ok(path: &Path, cmd: &Command, what: &str) -> Result<Reply, String> {
    ioctl(path, cmd, Duration::from_secs(30))?
        .map_err(|f| format!("{what}: {} (errno {})", f.message, f.errno))
}

/// GET_PEER / GET_CONN from index 0 until ENOENT, as lctl lists them.
fn list(path: &Path, conns: bool) -> Result<(), String> {
    for index in 0..1_000_000u32 {
        let cmd = if conns {
            Command::GetConn { index }
        } else {
            Command::GetPeer { index }
        };
        match ioctl(path, &cmd, Duration::from_secs(10))? {
            Ok(Reply::Peer(p)) => println!(
                "{}",
                control::peer_line(
                    ProcessId::new(p.nid, p.pid),
                    p.share_count,
                    p.my_ip.into(),
                    p.ip.into(),
                    p.port,
                    p.conn_count
                )
            ),
            Ok(Reply::Conn(c)) => println!(
                "{}",
                control::conn_line(
                    ProcessId::new(c.nid, c.pid),
                    c.conn_type,
                    c.scheduler,
                    c.my_ip.into(),
                    c.ip.into(),
                    c.port,
                    c.tx_buf,
                    c.rx_buf,
                    c.nagle
                )
            ),
            Ok(other) => return Err(format!("unexpected reply {other:?}")),
            Err(f) if f.errno == 2 => return Ok(()),
            Err(f) => return Err(format!("{} (errno {})", f.message, f.errno)),
        }
    }
    Ok(())
}

pub fn run(verb: &str, a: &Args) -> Result<(), String> {
    let p = &a.pos;
    // The socklnd commands lctl sends as ioctls go through the same encodings here.
    match verb {
        "peer_list" | "conn_list" if !a.switch("verbose") => {
            a.only(verb, &["verbose"])?;
            a.positional(verb, 0, 0, "")?;
            return list(&control_path(a)?, verb == "conn_list");
        }
        "add_peer" => {
            a.only(verb, &[])?;
            a.positional(verb, 3, 3, "NID IP PORT")?;
            let cmd = Command::AddPeer {
                nid: nid_arg(&p[0])?,
                ip: ip_arg(&p[1])?.into(),
                port: port_arg(&p[2])?,
            };
            ioctl_ok(&control_path(a)?, &cmd, "failed to add peer")?;
            return Ok(());
        }
        "del_peer" | "disconnect" => {
            a.only(verb, &[])?;
            a.positional(verb, 0, 2, "[NID|*] [IP]")?;
            let nid = opt_nid_arg(p.first())?;
            let ip = p.get(1).map(|s| ip_arg(s)).transpose()?.map(u32::from);
            let (cmd, what) = if verb == "del_peer" {
                let cmd = Command::DelPeer {
                    nid,
                    ip,
                    single_share: false,
                };
                (cmd, "failed to remove peer")
            } else {
                (Command::CloseConnection { nid, ip }, "failed to disconnect")
            };
            ioctl_ok(&control_path(a)?, &cmd, what)?;
            return Ok(());
        }
        _ => {}
    }
    let (req, wait) = match verb {
        "connect" => {
            a.only(verb, &["timeout"])?;
            a.positional(verb, 2, 3, "NID IP [PORT] [--timeout S]")?;
            let t = secs(a, None, 10.0)?;
            let req = Request::Connect {
                nid: nid_arg(&p[0])?,
                ip: ip_arg(&p[1])?,
                port: p.get(2).map(|s| port_arg(s)).transpose()?.unwrap_or(988),
                timeout_ms: t.as_millis() as u64,
            };
            (req, t + Duration::from_secs(5))
        }
        "ping" => {
            a.only(verb, &["timeout"])?;
            a.positional(verb, 1, 2, "NID [TIMEOUT_S] [--timeout S]")?;
            let id: ProcessId = p[0]
                .parse()
                .map_err(|_| format!("bad NID or PID-NID '{}'", p[0]))?;
            let t = secs(a, p.get(1), 5.0)?;
            let req = Request::Ping {
                id,
                timeout_ms: t.as_millis() as u64,
            };
            (req, t + Duration::from_secs(5))
        }
        "peer_list" | "conn_list" => {
            a.only(verb, &["verbose"])?;
            a.positional(verb, 0, 0, "[--verbose]")?;
            let req = if verb == "conn_list" {
                Request::ConnList { verbose: true }
            } else {
                Request::PeerList
            };
            (req, Duration::from_secs(10))
        }
        "put" => {
            a.only(verb, &["size", "count"])?;
            a.positional(verb, 1, 1, "NID --size BYTES [--count N]")?;
            let id: ProcessId = p[0]
                .parse()
                .map_err(|_| format!("bad NID or PID-NID '{}'", p[0]))?;
            let size = parse_size(a.opt("size").ok_or("--size BYTES is required")?)?;
            let count = a.num::<u64>("count")?.unwrap_or(1);
            let req = Request::Put {
                id,
                size: usize::try_from(size).map_err(|_| "size too large".to_string())?,
                count,
            };
            (req, Duration::from_secs(3600))
        }
        "stats" => {
            a.only(verb, &[])?;
            a.positional(verb, 0, 0, "")?;
            (Request::Stats, Duration::from_secs(10))
        }
        "shutdown" => {
            a.only(verb, &[])?;
            a.positional(verb, 0, 0, "")?;
            (Request::Shutdown, Duration::from_secs(10))
        }
        other => return Err(format!("unknown verb '{other}' (see `tdinal help`)")),
    };
    let path = control_path(a)?;
    let lines = control::call(&path, &req, wait)?;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
