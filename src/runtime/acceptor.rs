//! The acceptor thread (LNet's acceptor, and the TDI design's daemon thread): accepts TCP
//! connections on `ip:accept_port`, asks the engine whether to take each one (`accepted`:
//! accept policy, pending-handshake limit), hands the socket to the least loaded scheduler, or
//! closes it at once when refused.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::node::{nlog, Msg, Shared};
use super::sys;
use crate::engine::ConnAddrs;

pub(crate) fn run(sh: Arc<Shared>, listener: TcpListener, stop: Arc<AtomicBool>, wake: UnixStream) {
    let mut fds = [
        sys::pollfd(listener.as_raw_fd(), sys::POLLIN),
        sys::pollfd(wake.as_raw_fd(), sys::POLLIN),
    ];
    while !stop.load(Ordering::Acquire) {
        for f in fds.iter_mut() {
            f.revents = 0;
        }
        if let Err(e) = sys::poll(&mut fds, 500) {
            nlog!(sh, Error, "acceptor: poll failed: {e}");
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if fds[1].revents != 0 {
            let mut b = [0u8; 16];
            while matches!((&wake).read(&mut b), Ok(n) if n > 0) {}
        }
        // Take everything that is waiting, then poll again.
        for _ in 0..256 {
            match listener.accept() {
                Ok((sock, peer)) => take(&sh, sock, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: say so, and back off a little.
                    nlog!(sh, Warn, "accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            }
        }
    }
    nlog!(sh, Debug, "acceptor stopped");
}

fn take(sh: &Shared, sock: std::net::TcpStream, peer: SocketAddr) {
    let (SocketAddr::V4(peer), Ok(SocketAddr::V4(local))) = (peer, sock.local_addr()) else {
        nlog!(sh, Info, "refusing a non-IPv4 connection from {peer}");
        return;
    };
    if let Err(e) = sock.set_nonblocking(true) {
        nlog!(sh, Warn, "refusing connection from {peer}: {e}");
        return;
    }
    let addrs = ConnAddrs {
        local_ip: u32::from(*local.ip()),
        local_port: local.port(),
        peer_ip: u32::from(*peer.ip()),
        peer_port: peer.port(),
    };
    sh.rt.accepts.fetch_add(1, Ordering::Relaxed);
    let mut sock = Some(sock);
    let r = sh.with(|c, now| match c.engine.accepted(now, addrs) {
        Ok(id) => {
            let s = sh.assign(c, id);
            if let (Some(mb), Some(sock)) = (c.mailboxes.get_mut(s), sock.take()) {
                mb.push(Msg::Adopt(id, sock));
            }
            sh.wake(s);
            Ok(id)
        }
        Err(e) => Err(e),
    });
    match r {
        Ok(id) => nlog!(sh, Debug, "accepted {peer} as connection {}", id),
        Err(e) => {
            sh.rt.accepts_refused.fetch_add(1, Ordering::Relaxed);
            let hint = match e {
                crate::engine::Error::Refused("insecure source port") => {
                    " (accept=secure takes only source ports up to 1023; set accept=all to \
                     allow it)"
                }
                crate::engine::Error::Refused("accept=none") => " (accept=none)",
                _ => "",
            };
            nlog!(sh, Info, "refusing connection from {peer}: {e}{hint}");
            // Dropping the socket closes it before any byte is read.
        }
    }
}
