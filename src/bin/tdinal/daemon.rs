//! `tdinal daemon`: one node until SIGINT/SIGTERM or a `shutdown` request.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use tdinal::runtime::control::{self, Server};
use tdinal::runtime::{sys, Node, NodeConfig};
use tdinal::wire::Nid;

use crate::args::Args;

/// The node configuration from the command line: defaults, then the config file, then each
/// `--set`, then the explicit flags.
pub fn config_from(a: &Args, nid: Nid) -> Result<NodeConfig, String> {
    let mut cfg = NodeConfig::new(nid);
    if let Some(f) = a.opt("config") {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read config file {f}: {e}"))?;
        cfg.apply_text(&text).map_err(|e| format!("{f}: {e}"))?;
    }
    for s in a.all("set") {
        cfg.set_assignment(s)
            .map_err(|e| format!("--set {s}: {e}"))?;
    }
    for (flag, name) in [
        ("port", "accept_port"),
        ("accept", "accept"),
        ("protocol", "protocol"),
        ("nscheds", "nscheds"),
    ] {
        if let Some(v) = a.opt(flag) {
            cfg.set(name, v).map_err(|e| format!("--{flag}: {e}"))?;
        }
    }
    if a.switch("allow-unprivileged") {
        cfg.allow_unprivileged = true;
    }
    if let Some(ip) = a.opt("ip") {
        cfg.ip = ip
            .parse()
            .map_err(|_| format!("bad IPv4 address '{ip}' for --ip"))?;
    }
    Ok(cfg)
}

pub fn run(a: &Args) -> Result<(), String> {
    a.only(
        "daemon",
        &[
            "ip",
            "port",
            "accept",
            "config",
            "set",
            "protocol",
            "nscheds",
            "allow-unprivileged",
        ],
    )?;
    if !a.pos.is_empty() {
        return Err(format!(
            "unexpected argument '{}' (usage: tdinal daemon --nid NID [options])",
            a.pos[0]
        ));
    }
    let nid_s = a
        .opt("nid")
        .ok_or("--nid NID is required (e.g. --nid 192.168.0.1@tcp)")?;
    let nid: Nid = nid_s
        .parse()
        .map_err(|_| format!("bad NID '{nid_s}' (expected e.g. 192.168.0.1@tcp)"))?;
    let cfg = config_from(a, nid)?;
    // Catch the stop signals before any thread starts, so all threads inherit the handlers.
    let sig = sys::stop_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let node = Node::start(cfg).map_err(|e| e.to_string())?;
    let path = a
        .opt("control")
        .map(PathBuf::from)
        .unwrap_or_else(|| control::default_path(nid));
    let server = match Server::start(node.handle(), &path) {
        Ok(s) => s,
        Err(e) => {
            let _ = node.shutdown();
            return Err(e);
        }
    };
    tdinal::runtime::log::emit(
        tdinal::runtime::log::Level::Info,
        &nid.to_string(),
        format_args!("control socket {}", server.path().display()),
    );
    let mut why = "shutdown requested";
    loop {
        let mut fds = [sys::pollfd(sig.as_raw_fd(), sys::POLLIN)];
        let _ = sys::poll(&mut fds, 100);
        if fds[0].revents != 0 {
            why = "signal received";
            break;
        }
        if node.stop_requested() {
            break;
        }
    }
    tdinal::runtime::log::emit(
        tdinal::runtime::log::Level::Info,
        &nid.to_string(),
        format_args!("{why}: shutting down"),
    );
    let report = node.shutdown();
    server.stop();
    report.check()
}
