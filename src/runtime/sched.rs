//! A scheduler thread: owns the sockets of the connections assigned to it, waits on them with
//! poll(2), moves received bytes straight from the socket into the engine's receive buffer,
//! and keeps at most one send in flight per connection whose completion it reports with
//! `tx_commit` (the user-space shape of ksocklnd's scheduler over TDI receive events and
//! TDI_SEND IRPs; see `docs/runtime.md`).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::node::{nlog, ConnMeta, Core, Msg, Shared, TxOwner, TxSide};
use super::sys::{self, ConnectError, Lent};
use crate::engine::{Action, ConnAddrs, ConnId};

/// Most bytes read into the engine under one lock acquisition.
const READ_CHUNK: usize = 256 << 10;
/// Most bytes read from one connection per poll round (then others get their turn).
const READ_BUDGET: usize = 4 << 20;
/// Most bytes written to one connection per poll round.
const WRITE_BUDGET: usize = 8 << 20;
/// Slices asked from `tx_slices` per send.
const MAX_IOV: usize = sys::LENT_MAX_IOV;
/// Lowest privileged source port (Lustre's `LNET_ACCEPTOR_MIN_RESERVED_PORT`).
const MIN_RESERVED_PORT: u16 = 512;
const MAX_RESERVED_PORT: u16 = 1023;
/// How long a flushing close may take before the socket is closed anyway.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for connections to go before closing them by force.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Where the next connect attempt binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortTry {
    Privileged(u16),
    /// Any port (`allow_unprivileged`, after EACCES on the privileged range).
    Any,
}

enum Phase {
    /// Non-blocking connect in progress (wait for POLLOUT).
    Connecting {
        peer: SocketAddrV4,
        port: PortTry,
        deadline: Instant,
    },
    /// The engine has the connection's byte streams.
    Open,
    /// The socket failed or never connected; waiting for the engine's `Close`.
    Dead,
}

struct RtConn {
    id: ConnId,
    /// Shared with the connection's [`TxSide`] once open (callers write on it too).
    sock: Option<Arc<TcpStream>>,
    phase: Phase,
    /// Reading is wanted (connected, no EOF or error yet, not closing).
    reading: bool,
    /// The engine offered no receive buffer (waiting for the upper layer) until `Receive`.
    rx_blocked: bool,
    /// The engine may have bytes to send (until `tx_slices` offers none, or a caller holds the
    /// send side).
    want_send: bool,
    /// This scheduler's send in flight ([`TxOwner::Sched`]): slices lent by `tx_slices`,
    /// waiting for POLLOUT when `pending`.
    lent: Lent,
    pending: bool,
    /// `Close { flush: true }`: write what is left, then close (by this deadline at worst).
    flushing: Option<Instant>,
}

impl RtConn {
    fn new(id: ConnId, sock: Option<Arc<TcpStream>>, phase: Phase) -> RtConn {
        let open = matches!(phase, Phase::Open);
        RtConn {
            id,
            sock,
            phase,
            reading: open,
            rx_blocked: false,
            want_send: false,
            lent: Lent::default(),
            pending: false,
            flushing: None,
        }
    }
}

/// Bytes a connection takes in its scheduler's table (key and state inline; the send in
/// flight's slice list grows on first use).
pub(crate) fn rt_conn_footprint() -> usize {
    std::mem::size_of::<ConnId>() + std::mem::size_of::<RtConn>()
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(sys::EIO)
}

fn addrs_of(s: &TcpStream) -> io::Result<ConnAddrs> {
    let (l, p) = (s.local_addr()?, s.peer_addr()?);
    let v4 = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(a) => Ok(a),
        std::net::SocketAddr::V6(_) => Err(io::Error::from(io::ErrorKind::Unsupported)),
    };
    let (l, p) = (v4(l)?, v4(p)?);
    Ok(ConnAddrs {
        local_ip: u32::from(*l.ip()),
        local_port: l.port(),
        peer_ip: u32::from(*p.ip()),
        peer_port: p.port(),
    })
}

struct Sched {
    sh: Arc<Shared>,
    idx: usize,
    conns: BTreeMap<ConnId, RtConn>,
    stop_since: Option<Instant>,
}

std::thread_local! {
    /// Which scheduler this thread is: its node's `Shared` (as an address) and index.
    static CURRENT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, usize::MAX)) };
}

/// Whether the calling thread is scheduler `idx` of `sh`.
pub(crate) fn is_current(sh: &Shared, idx: usize) -> bool {
    CURRENT.with(|c| c.get() == (sh as *const Shared as usize, idx))
}

/// The scheduler thread's body.
pub(crate) fn run(sh: Arc<Shared>, idx: usize, wake: UnixStream) {
    CURRENT.with(|c| c.set((Arc::as_ptr(&sh) as usize, idx)));
    let mut s = Sched {
        sh,
        idx,
        conns: BTreeMap::new(),
        stop_since: None,
    };
    let mut fds: Vec<sys::PollFd> = Vec::new();
    let mut ids: Vec<ConnId> = Vec::new();
    let mut msgs: Vec<Msg> = Vec::new();
    // The first round looks at the mailbox (messages may have come before this thread ran).
    let mut woken_by_stream = true;
    loop {
        // 1. Messages (actions routed here, adopted sockets), in order. A message is pushed
        // under the lock before `notified` is set (and a byte written when it was clear), so a
        // clear flag means an empty mailbox: no lock and no read of the wake-up stream then.
        let notified =
            s.sh.scheds
                .get(idx)
                .is_some_and(|slot| slot.notified.swap(false, Ordering::AcqRel));
        if notified || woken_by_stream {
            // A wake-up from another thread wrote a byte (poll reports it); a scheduler waking
            // itself only set the flag: no read then.
            if woken_by_stream {
                let mut sink = [0u8; 64];
                while matches!((&wake).read(&mut sink), Ok(n) if n > 0) {}
            }
            {
                let mut g = s.sh.lock();
                if let Some(mb) = g.mailboxes.get_mut(idx) {
                    std::mem::swap(mb, &mut msgs);
                }
            }
            for m in msgs.drain(..) {
                s.handle_msg(m);
            }
        }
        // 2. Leave when shutting down and nothing is left.
        if s.sh.stopping.load(Ordering::Acquire) {
            let since = *s.stop_since.get_or_insert_with(Instant::now);
            if s.conns.is_empty() {
                let empty = s.sh.lock().mailboxes.get(idx).is_none_or(|m| m.is_empty());
                if empty {
                    break;
                }
                woken_by_stream = true;
                continue;
            }
            if since.elapsed() > STOP_LIMIT {
                s.force_close_all();
                continue;
            }
        }
        // 3. Sends that can start now; deadlines.
        let now = Instant::now();
        ids.clear();
        ids.extend(s.conns.keys().copied());
        for &id in &ids {
            s.try_send(id);
            s.check_deadlines(id, now);
        }
        // 4. Wait for the sockets (and the wake-up stream).
        fds.clear();
        ids.clear();
        fds.push(sys::pollfd(wake.as_raw_fd(), sys::POLLIN));
        for c in s.conns.values() {
            let Some(sock) = &c.sock else { continue };
            let mut ev = 0i16;
            match c.phase {
                Phase::Connecting { .. } => ev |= sys::POLLOUT,
                Phase::Open => {
                    if c.reading && !c.rx_blocked {
                        ev |= sys::POLLIN;
                    }
                    if c.pending {
                        ev |= sys::POLLOUT;
                    }
                }
                Phase::Dead => {}
            }
            if ev != 0 {
                fds.push(sys::pollfd(sock.as_raw_fd(), ev));
                ids.push(c.id);
            }
        }
        let self_woken =
            s.sh.scheds
                .get(idx)
                .is_some_and(|slot| slot.notified.load(Ordering::Acquire));
        let timeout = if self_woken {
            // Its own mailbox got work after it was emptied (see `Shared::wake`): only look.
            0
        } else if s.stop_since.is_some() {
            20
        } else {
            200
        };
        s.sh.rt.polls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = sys::poll(&mut fds, timeout) {
            nlog!(s.sh, Error, "scheduler {idx}: poll failed: {e}");
            std::thread::sleep(Duration::from_millis(10));
            woken_by_stream = true;
            continue;
        }
        // 5. Whatever the sockets reported.
        woken_by_stream = fds.first().is_some_and(|w| w.revents != 0);
        for (pfd, id) in fds.iter().skip(1).zip(ids.iter()) {
            let r = pfd.revents;
            if r == 0 {
                continue;
            }
            let connecting = s
                .conns
                .get(id)
                .is_some_and(|c| matches!(c.phase, Phase::Connecting { .. }));
            if connecting {
                s.finish_connect(*id);
                continue;
            }
            if r & (sys::POLLIN | sys::POLLHUP | sys::POLLERR) != 0 {
                s.read(*id);
            }
            if r & (sys::POLLOUT | sys::POLLERR) != 0 {
                if let Some(c) = s.conns.get_mut(id) {
                    if c.pending {
                        s.write_pending(*id);
                    }
                }
            }
        }
    }
    nlog!(s.sh, Debug, "scheduler {idx} stopped");
}

impl Sched {
    fn handle_msg(&mut self, m: Msg) {
        match m {
            Msg::Adopt(id, sock) => {
                let sock = Arc::new(sock);
                self.sh
                    .lock()
                    .tx
                    .insert(id, TxSide::new(sock.clone(), self.idx));
                self.conns
                    .insert(id, RtConn::new(id, Some(sock), Phase::Open));
            }
            Msg::Act(Action::Connect {
                conn,
                peer,
                peer_ip,
                port,
            }) => {
                let to = SocketAddrV4::new(Ipv4Addr::from(peer_ip), port);
                nlog!(
                    self.sh,
                    Debug,
                    "connecting to {peer} at {to} (connection {})",
                    conn
                );
                self.sh.rt.connects.fetch_add(1, Ordering::Relaxed);
                self.conns.insert(
                    conn,
                    RtConn::new(
                        conn,
                        None,
                        Phase::Connecting {
                            peer: to,
                            port: PortTry::Privileged(MAX_RESERVED_PORT),
                            deadline: Instant::now(),
                        },
                    ),
                );
                self.start_connect(conn);
            }
            Msg::Act(Action::Send { conn }) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.want_send = true;
                }
            }
            Msg::Act(Action::Receive { conn }) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.rx_blocked = false;
                }
            }
            Msg::Act(Action::Configure { conn }) => self.configure(conn),
            Msg::Act(Action::Close { conn, flush }) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let can_flush = flush && c.sock.is_some() && matches!(c.phase, Phase::Open);
                if can_flush {
                    c.reading = false;
                    c.want_send = true;
                    c.flushing.get_or_insert(Instant::now() + FLUSH_LIMIT);
                } else {
                    self.close_and_release(conn);
                }
            }
        }
    }

    /// Binds the next candidate source port and starts a non-blocking connect; on failure to
    /// find any port, or another error, tells the engine the connect failed.
    fn start_connect(&mut self, id: ConnId) {
        let local_ip = self.sh.cfg.ip;
        let allow_any = self.sh.cfg.allow_unprivileged;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Phase::Connecting { peer, mut port, .. } = c.phase else {
            return;
        };
        let sock_timeout = u64::from(self.sh.cfg.tunables.sock_timeout.max(1));
        for _ in 0..1024 {
            let (bind_port, next) = match port {
                PortTry::Privileged(p) if p >= MIN_RESERVED_PORT => {
                    (p, PortTry::Privileged(p.saturating_sub(1)))
                }
                PortTry::Privileged(_) if allow_any => (0, PortTry::Privileged(0)),
                PortTry::Privileged(_) => {
                    nlog!(
                        self.sh,
                        Warn,
                        "no privileged port (1023..512) free on {local_ip} to connect to {peer}: \
                         close some connections, or pass --allow-unprivileged"
                    );
                    self.connect_failed(id, sys::EADDRINUSE);
                    return;
                }
                PortTry::Any => (0, PortTry::Privileged(0)),
            };
            let any = bind_port == 0;
            match sys::connect_from(SocketAddrV4::new(local_ip, bind_port), peer) {
                Ok((sock, done)) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.sock = Some(Arc::new(sock));
                        c.phase = Phase::Connecting {
                            peer,
                            port: next,
                            deadline: Instant::now() + Duration::from_secs(sock_timeout),
                        };
                    }
                    if done {
                        self.finish_connect(id);
                    }
                    return;
                }
                Err(ConnectError::Bind(e)) if !any && e.raw_os_error() == Some(sys::EADDRINUSE) => {
                    self.sh
                        .rt
                        .connect_port_retries
                        .fetch_add(1, Ordering::Relaxed);
                    port = next;
                }
                Err(ConnectError::Bind(e))
                    if !any && matches!(e.raw_os_error(), Some(sys::EACCES) | Some(sys::EPERM)) =>
                {
                    if allow_any {
                        nlog!(
                            self.sh,
                            Warn,
                            "cannot bind a privileged port on {local_ip} (permission denied): \
                             connecting to {peer} from an unprivileged port; the peer sees a \
                             userspace process and must have accept=all"
                        );
                        port = PortTry::Any;
                    } else {
                        nlog!(
                            self.sh,
                            Error,
                            "cannot bind a privileged port on {local_ip} to connect to {peer}: \
                             permission denied — run as root, or pass --allow-unprivileged \
                             (the peer then needs accept=all)"
                        );
                        self.connect_failed(id, sys::EACCES);
                        return;
                    }
                }
                Err(ConnectError::Connect(e))
                    if !any
                        && matches!(
                            e.raw_os_error(),
                            Some(sys::EADDRNOTAVAIL) | Some(sys::EADDRINUSE)
                        ) =>
                {
                    // This source port already has a connection to that peer (TIME_WAIT).
                    self.sh
                        .rt
                        .connect_port_retries
                        .fetch_add(1, Ordering::Relaxed);
                    port = next;
                }
                Err(ConnectError::Socket(e) | ConnectError::Bind(e) | ConnectError::Connect(e)) => {
                    let hint = match e.raw_os_error() {
                        Some(sys::EADDRNOTAVAIL) => {
                            " — is that local address (--ip) configured on an interface?"
                        }
                        _ => "",
                    };
                    nlog!(
                        self.sh,
                        Warn,
                        "cannot connect from {local_ip} to {peer}: {e}{hint}"
                    );
                    self.connect_failed(id, errno(&e));
                    return;
                }
            }
        }
        self.connect_failed(id, sys::EADDRINUSE);
    }

    /// The non-blocking connect reported (POLLOUT/POLLERR), or completed at once.
    fn finish_connect(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Phase::Connecting { peer, .. } = c.phase else {
            return;
        };
        let Some(sock) = c.sock.as_ref() else {
            return;
        };
        let res = match sys::take_error(sock) {
            Ok(None) => addrs_of(sock),
            Ok(Some(e)) | Err(e) => Err(e),
        };
        match res {
            Ok(addrs) => {
                c.phase = Phase::Open;
                c.reading = true;
                let side = TxSide::new(sock.clone(), self.idx);
                self.sh.with(|core, now| {
                    core.tx.insert(id, side);
                    core.engine.connected(now, id, addrs)
                });
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(sys::EADDRNOTAVAIL) | Some(sys::EADDRINUSE)
                ) =>
            {
                c.sock = None;
                self.sh
                    .rt
                    .connect_port_retries
                    .fetch_add(1, Ordering::Relaxed);
                self.start_connect(id);
            }
            Err(e) => {
                nlog!(self.sh, Info, "connect to {peer} failed: {e}");
                self.connect_failed(id, errno(&e));
            }
        }
    }

    fn connect_failed(&mut self, id: ConnId, err: i32) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.sock = None;
            c.phase = Phase::Dead;
            c.reading = false;
        }
        self.sh
            .with(|core, now| core.engine.connect_failed(now, id, err));
    }

    /// `Configure`: the socket options ksocklnd sets after the handshake.
    fn configure(&mut self, id: ConnId) {
        let Some(sock) = self.conns.get(&id).and_then(|c| c.sock.as_ref()) else {
            return;
        };
        let t = &self.sh.cfg.tunables;
        let mut errs = Vec::new();
        if let Err(e) = sock.set_nodelay(!t.nagle) {
            errs.push(format!("TCP_NODELAY: {e}"));
        }
        if let Err(e) = sys::set_buffers(sock, t.tx_buffer_size, t.rx_buffer_size) {
            errs.push(format!("buffer sizes: {e}"));
        }
        if let Err(e) =
            sys::set_keepalive(sock, t.keepalive_idle, t.keepalive_count, t.keepalive_intvl)
        {
            errs.push(format!("TCP keepalive: {e}"));
        }
        if !errs.is_empty() {
            nlog!(
                self.sh,
                Warn,
                "connection {}: cannot set socket options: {}",
                id,
                errs.join("; ")
            );
        }
        let (txbuf, rxbuf) = sys::buffers(sock);
        let meta = ConnMeta {
            sched: self.idx,
            txbuf,
            rxbuf,
            nagle: t.nagle,
        };
        self.sh.lock().meta.insert(id, meta);
    }

    /// Reads what the socket has straight into the engine's receive buffer (the one copy:
    /// kernel socket buffer → engine header buffer or the upper layer's sink).
    fn read(&mut self, id: ConnId) {
        Shared::hold_notifications(true);
        self.read_some(id);
        Shared::hold_notifications(false);
    }

    fn read_some(&mut self, id: ConnId) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if !c.reading || c.rx_blocked || !matches!(c.phase, Phase::Open) {
                return;
            }
            let Some(sock) = c.sock.as_ref() else { return };
            let mut sock: &TcpStream = sock;
            let mut g = self.sh.lock();
            let now = self.sh.now();
            let buf = g.engine.rx_buffer(id);
            if buf.is_empty() {
                // The engine waits for the upper layer (or is closing): stop polling for input
                // until a `Receive` comes.
                drop(g);
                c.rx_blocked = true;
                return;
            }
            let want = buf.len().min(READ_CHUNK);
            let r = buf.get_mut(..want).map(|b| sock.read(b));
            let mut stop = true;
            match r {
                Some(Ok(0)) => {
                    c.reading = false;
                    g.engine.eof(now, id);
                }
                Some(Ok(n)) => {
                    self.sh.rt.reads.fetch_add(1, Ordering::Relaxed);
                    self.sh.rt.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    g.engine.rx_commit(now, id, n);
                    budget = budget.saturating_sub(n);
                    stop = budget == 0;
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.sh.rt.reads_eagain.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => stop = false,
                Some(Err(e)) => {
                    c.reading = false;
                    nlog!(self.sh, Debug, "connection {}: read failed: {e}", id);
                    g.engine.io_error(now, id, errno(&e));
                }
                None => {}
            }
            self.sh.pump(&mut g, now);
            self.sh.finish(g);
            if stop {
                return;
            }
        }
    }

    /// Starts sends while the connection has bytes and no send is in flight.
    fn try_send(&mut self, id: ConnId) {
        self.send_from(id, None);
    }

    /// Sends on `id` while it has bytes: takes the send side (unless a caller holds it),
    /// lends, writes without the lock, and commits the write under the same lock acquisition
    /// that lends the next bytes. `done`: a write of this scheduler that completed with that
    /// many bytes and is not committed yet.
    fn send_from(&mut self, id: ConnId, mut done: Option<usize>) {
        let mut budget = WRITE_BUDGET;
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let open = c.sock.is_some() && matches!(c.phase, Phase::Open);
            if done.is_none() && (!c.want_send || c.pending || !open) {
                return;
            }
            let mut g = self.sh.lock();
            let now = self.sh.now();
            if let Some(n) = done.take() {
                // After `Close { flush: false }` the messages fail anyway: nothing more is
                // committed (the engine would otherwise park ZC sends for a dead connection).
                if !g.closed.contains(&id) {
                    g.engine.tx_commit(now, id, n);
                }
                budget = budget.saturating_sub(n);
            }
            let Core { engine, tx, .. } = &mut *g;
            let side = tx.get_mut(&id);
            let mut flushed = false;
            if side.as_ref().is_some_and(|t| t.owner == TxOwner::Caller) {
                // A caller is writing: it looks at the queue again before it lets go, and
                // hands the rest to this scheduler if it cannot finish.
                c.want_send = false;
            } else if budget == 0 || !open {
                if let Some(t) = side {
                    t.owner = TxOwner::Free;
                }
            } else {
                let mut out: [&[u8]; MAX_IOV] = [&[]; MAX_IOV];
                let n = engine.tx_slices(id, &mut out);
                c.lent.capture(out.get(..n).unwrap_or(&[]));
                let owner = if c.lent.is_empty() {
                    c.want_send = false;
                    flushed = c.flushing.is_some();
                    TxOwner::Free
                } else {
                    c.want_send = true;
                    TxOwner::Sched
                };
                if let Some(t) = side {
                    t.owner = owner;
                }
            }
            self.sh.pump(&mut g, now);
            self.sh.finish(g);
            if flushed {
                // Flushed (or nothing left to flush): close now.
                self.close_and_release(id);
                return;
            }
            if budget == 0 || self.conns.get(&id).is_none_or(|c| c.lent.is_empty()) {
                return;
            }
            match self.write_lent(id) {
                Some(n) => done = Some(n),
                None => return,
            }
        }
    }

    /// Retries the send in flight (POLLOUT came).
    fn write_pending(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.pending = false;
        }
        if let Some(n) = self.write_lent(id) {
            self.send_from(id, Some(n));
        }
    }

    /// Writes the lent slices without the lock. `Some(n)`: the send completed with `n` bytes
    /// (to be committed); `None`: pending (EAGAIN) or failed.
    fn write_lent(&mut self, id: ConnId) -> Option<usize> {
        let c = self.conns.get_mut(&id)?;
        let sock = c.sock.as_ref()?;
        let mut sock: &TcpStream = sock;
        let r = loop {
            match c.lent.write_to(&mut sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match r {
            Ok(n) if n > 0 => {
                c.lent.clear();
                self.sh.rt.writes.fetch_add(1, Ordering::Relaxed);
                self.sh
                    .rt
                    .write_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
                Some(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.pending = true;
                self.sh.rt.writes_pending.fetch_add(1, Ordering::Relaxed);
                None
            }
            other => {
                let e = match other {
                    Err(e) => e,
                    _ => io::Error::from(io::ErrorKind::WriteZero),
                };
                c.lent.clear();
                c.want_send = false;
                c.reading = false;
                c.phase = Phase::Dead;
                let flushing = c.flushing.is_some();
                nlog!(self.sh, Debug, "connection {}: write failed: {e}", id);
                self.sh.with(|core, now| {
                    if let Some(t) = core.tx.get_mut(&id) {
                        t.owner = TxOwner::Free;
                        t.sched_only = true;
                    }
                    core.engine.io_error(now, id, errno(&e))
                });
                if flushing {
                    self.close_and_release(id);
                }
                None
            }
        }
    }

    fn check_deadlines(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.conns.get(&id) else { return };
        if let Phase::Connecting { deadline, peer, .. } = c.phase {
            if c.sock.is_some() && now >= deadline {
                nlog!(self.sh, Info, "connect to {peer} timed out");
                self.connect_failed(id, sys::ETIMEDOUT);
                return;
            }
        }
        if c.flushing.is_some_and(|d| now >= d) {
            nlog!(
                self.sh,
                Debug,
                "connection {}: flush timed out, closing",
                id
            );
            self.close_and_release(id);
        }
    }

    /// Closes the socket (abandoning a send in flight) and releases the connection.
    fn close_and_release(&mut self, id: ConnId) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        c.lent.clear();
        if let Some(s) = c.sock.take() {
            // A caller writing on it (through its `TxSide` clone) sees the write fail.
            let _ = s.shutdown(std::net::Shutdown::Both);
            drop(s);
        }
        self.sh.with(|core, now| {
            match core.tx.get_mut(&id) {
                Some(t) if t.owner == TxOwner::Caller => {
                    // Its lent bytes must stay valid until its write returns: it releases.
                    t.release_by_caller = true;
                    t.sched_only = true;
                }
                _ => {
                    core.engine.release(now, id);
                    Shared::forget(core, id);
                }
            }
        });
    }

    fn force_close_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            nlog!(
                self.sh,
                Warn,
                "shutdown: closing connection {} by force",
                id
            );
            self.sh.rt.forced_closes.fetch_add(1, Ordering::Relaxed);
            self.close_and_release(id);
        }
    }
}
