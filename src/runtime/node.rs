//! One running node: an [`Engine`] and its [`Lnet`] behind one lock, the acceptor, scheduler
//! and reaper threads around them, and the API the CLI, the control socket and the demo use.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::NodeConfig;
use super::log::Level;
use super::sys::{self, Lent};
use crate::engine::{
    AcceptPolicy, Action, ConnAddrs, ConnId, ConnInfo, Engine, Error, Event, LocalNi, PeerInfo,
    Stats, Time,
};
use crate::lnet::{Lnet, LnetEvent, LnetStats};
use crate::wire::nid::LNET_PID_LUSTRE;
use crate::wire::{ConnType, Nid, ProcessId};

/// What the upper layer sends: shared, immutable buffers (written without a copy).
pub type Payload = Arc<[u8]>;
/// The engine as this runtime instantiates it.
pub type RtEngine = Engine<Payload, Vec<u8>>;

/// The portal user PUTs (`tdinal put`, the demo) go to.
pub const PUT_PORTAL: u32 = 42;
/// PUTs a `put` keeps in flight at once.
pub const PUT_WINDOW: usize = 32;

/// The bytes of a test PUT of `size` bytes: a pattern the receiver's digest can check.
pub fn put_pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(7) ^ (i >> 8) ^ (i >> 16)) as u8)
        .collect()
}

/// A 64-bit hash of one PUT's data (FNV-1a style over little-endian 8-byte words, then the
/// tail bytes, then the length): cheap enough to check every byte of a bulk transfer.
pub fn data_hash(data: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    (h ^ data.len() as u64).wrapping_mul(PRIME)
}

/// The digest a receiver reports for `count` PUTs of `data`: the wrapping sum of their
/// [`data_hash`]es (so the order of arrival does not matter).
pub fn put_digest(data: &[u8], count: u64) -> u64 {
    data_hash(data).wrapping_mul(count)
}

/// A message for a scheduler thread, in order.
pub(crate) enum Msg {
    /// An accepted socket, now owned by the scheduler.
    Adopt(ConnId, TcpStream),
    Act(Action),
}

/// What `conn_list` shows beyond the engine's view: the scheduler and socket buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    pub sched: usize,
    pub txbuf: u32,
    pub rxbuf: u32,
    pub nagle: bool,
}

/// A connection as listed by [`NodeHandle::conns`].
#[derive(Clone, Copy, Debug)]
pub struct ConnView {
    pub info: ConnInfo,
    pub meta: Option<ConnMeta>,
}

/// Who holds a connection's send side. At most one thread at a time has bytes of a connection
/// lent by `tx_slices` (one send in flight, like one TDI_SEND IRP); whoever holds it looks at
/// the engine's queue again (under the lock) before it lets go, so an `Action::Send` that finds
/// the side held needs no hand-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxOwner {
    Free,
    /// The connection's scheduler (writing, or waiting for POLLOUT).
    Sched,
    /// A thread that queued the bytes (or pumped the engine) and writes them itself after the
    /// lock is released ([`Shared::finish`]).
    Caller,
}

/// The send side of an open connection, shared by its scheduler and the threads that write on
/// it directly.
pub(crate) struct TxSide {
    /// The scheduler keeps the socket; this clone keeps the descriptor open while a caller
    /// writes (a close by the scheduler shuts it down, and the write then fails).
    pub sock: Arc<TcpStream>,
    pub sched: usize,
    pub owner: TxOwner,
    /// Only the scheduler sends: a flushing close, a close, or a failed write.
    pub sched_only: bool,
    /// The scheduler closed the connection while a caller held its send side: the caller
    /// releases it in the engine when its write is over (the lent bytes stay valid until then).
    pub release_by_caller: bool,
}

impl TxSide {
    pub fn new(sock: Arc<TcpStream>, sched: usize) -> TxSide {
        TxSide {
            sock,
            sched,
            owner: TxOwner::Free,
            sched_only: false,
            release_by_caller: false,
        }
    }
}

/// A write a caller thread makes outside the lock.
pub(crate) struct DirectJob {
    conn: ConnId,
    sock: Arc<TcpStream>,
    lent: Lent,
    result: Option<io::Result<usize>>,
}

/// Where the answer to an LNet operation goes.
pub(crate) enum Waiter {
    Chan(mpsc::Sender<LnetEvent>),
    Queue(Arc<Completions>),
    /// Called under the node lock, in the thread that got the answer (a scheduler reading, or
    /// any thread pumping): it may start further operations on the `Core` it is given (their
    /// bytes are written as any other sends are), and must not block or take the node lock.
    Call(Callback),
}

/// A completion callback ([`Waiter::Call`]).
pub(crate) type Callback = Arc<dyn Fn(&mut Core, Time, LnetEvent) + Send + Sync>;

impl From<mpsc::Sender<LnetEvent>> for Waiter {
    fn from(tx: mpsc::Sender<LnetEvent>) -> Waiter {
        Waiter::Chan(tx)
    }
}

/// A completion queue for a thread that keeps many operations in flight: answers are queued
/// under the node lock and the waiter is woken once per batch, after the lock is released (it
/// then takes the whole batch with one lock of the queue). No allocation per answer once the
/// queue has grown.
#[derive(Default)]
pub(crate) struct Completions {
    q: Mutex<(Vec<LnetEvent>, bool)>,
    cv: Condvar,
}

impl Completions {
    /// Queues `ev`; true when the waiter must be notified (the first answer since it last
    /// looked).
    fn push(&self, ev: LnetEvent) -> bool {
        let mut g = self.q.lock().unwrap_or_else(|e| e.into_inner());
        g.0.push(ev);
        !std::mem::replace(&mut g.1, true)
    }

    fn notify(&self) {
        self.cv.notify_one();
    }

    /// Waits up to `timeout` for answers and moves them all to `out` (which should be empty;
    /// its capacity is swapped in). False when none came in time.
    pub fn wait(&self, out: &mut Vec<LnetEvent>, timeout: Duration) -> bool {
        let mut g = self.q.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.is_empty() {
            g = self
                .cv
                .wait_timeout_while(g, timeout, |q| q.0.is_empty())
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        g.1 = false;
        if g.0.is_empty() {
            return false;
        }
        std::mem::swap(&mut g.0, out);
        true
    }
}

/// Most rounds of caller-side writes per [`Shared::finish`] (then the scheduler takes over).
const DIRECT_ROUNDS: u32 = 16;

/// The engine, the LNet layer and the runtime's bookkeeping: everything under the one lock.
pub(crate) struct Core {
    pub engine: RtEngine,
    pub lnet: Lnet<Payload>,
    /// Per scheduler: messages waiting for it.
    pub mailboxes: Vec<Vec<Msg>>,
    pub sched_of: HashMap<ConnId, usize>,
    pub sched_load: Vec<usize>,
    /// Connections told `Close { flush: false }`: completed writes are no longer committed.
    pub closed: HashSet<ConnId>,
    pub meta: HashMap<ConnId, ConnMeta>,
    /// Threads waiting for the answer to an LNet operation (ping, PUT).
    pub waiters: HashMap<u64, Waiter>,
    /// Completion queues that got answers under this lock: notified after it is released.
    pub to_notify: Vec<Arc<Completions>>,
    /// Received PUTs, digested after the lock is released.
    pub deferred: Vec<LnetEvent>,
    /// Per peer: the latest ConnDown (sequence number, reason).
    pub last_down: HashMap<ProcessId, (u64, Error)>,
    pub down_seq: u64,
    /// ConnUp events (version, type) seen, for the demo's report.
    pub ups: Vec<(ProcessId, ConnType, crate::wire::ProtoVersion, ConnAddrs)>,
    /// The send side of every open connection.
    pub tx: HashMap<ConnId, TxSide>,
    /// Connections whose send side `route` gave to the lock holder ([`TxOwner::Caller`]): it
    /// writes them in [`Shared::finish`].
    pub direct: Vec<ConnId>,
    /// Caller writes in progress (outside the lock).
    pub callers_writing: usize,
    /// Reused between [`Shared::finish`] calls (no allocation per write).
    pub jobs: Vec<DirectJob>,
    pub lents: Vec<Lent>,
}

/// Counters of the runtime itself (I/O calls, not protocol events).
#[derive(Default)]
pub struct RtCounters {
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub writes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub writes_pending: AtomicU64,
    pub accepts: AtomicU64,
    pub accepts_refused: AtomicU64,
    pub connects: AtomicU64,
    pub connect_port_retries: AtomicU64,
    pub forced_closes: AtomicU64,
    /// Bytes the runtime copied on the send path before writing: none, every slice is lent
    /// (`sys::Lent`); counted here if that ever changes.
    pub tx_copied_bytes: AtomicU64,
    /// Bytes the runtime copied on the receive path after reading (it reads straight into the
    /// engine's buffers, so nothing so far).
    pub rx_copied_bytes: AtomicU64,
    /// Reads that found nothing (EAGAIN).
    pub reads_eagain: AtomicU64,
    /// poll(2) calls of the scheduler threads.
    pub polls: AtomicU64,
    /// Acquisitions of the node lock.
    pub lock_acquisitions: AtomicU64,
    /// Wake-ups written to scheduler threads.
    pub sched_wakeups: AtomicU64,
    /// Writes made by the thread that queued the bytes (not a scheduler), included in `writes`.
    pub direct_writes: AtomicU64,
    /// Caller writes that found the socket full (EAGAIN) and handed the send to the scheduler.
    pub direct_handoffs: AtomicU64,
    /// Connections closed by their scheduler while a caller wrote on them, released by that
    /// caller afterwards.
    pub caller_releases: AtomicU64,
}

/// PUTs received by the LNet layer, as the test portal saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutCounters {
    pub count: u64,
    pub bytes: u64,
    /// Wrapping sum of [`data_hash`] over the PUTs on [`PUT_PORTAL`] ([`put_digest`]).
    pub digest: u64,
}

pub(crate) struct SchedSlot {
    pub waker: UnixStream,
    pub notified: AtomicBool,
}

pub(crate) struct Shared {
    pub core: Mutex<Core>,
    /// Notified when connections come up or go down.
    pub changed: Condvar,
    pub scheds: Vec<SchedSlot>,
    /// Shutdown has begun: schedulers leave once their connections are gone.
    pub stopping: AtomicBool,
    /// A `shutdown` control command (or the API) asked the owner to stop the node.
    pub stop_requested: AtomicBool,
    pub epoch: Instant,
    pub cfg: NodeConfig,
    pub tag: String,
    pub puts: Mutex<PutCounters>,
    pub rt: RtCounters,
    /// Received PUTs and connection closes for the library user (`traffic`).
    pub taps: super::traffic::Taps,
}

std::thread_local! {
    /// Per thread: spare lists swapped with [`Core::deferred`] and [`Core::to_notify`] when the
    /// lock is released.
    static SPARE: std::cell::RefCell<(Vec<LnetEvent>, Vec<Arc<Completions>>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

std::thread_local! {
    /// Per thread: buffers of received PUTs that no tap took (at most [`RETURNED_MAX`], and
    /// [`RETURNED_BYTES_MAX`] bytes), and their bytes, given back to the LNet layer at this
    /// thread's next [`Shared::pump`] to be reused as receive sinks (a scheduler delivers what
    /// it read and then reads again: no allocation per PUT).
    static RETURNED: std::cell::RefCell<(Vec<Vec<u8>>, usize)> =
        const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// Most buffers, and bytes, a thread keeps in [`RETURNED`] between two pumps (a thread that
/// stops pumping keeps them until it exits).
const RETURNED_MAX: usize = 64;
const RETURNED_BYTES_MAX: usize = 4 << 20;

std::thread_local! {
    /// Per thread: whether completion wake-ups are held ([`Shared::hold_notifications`]), and
    /// the queues held.
    static HELD: std::cell::RefCell<(bool, Vec<Arc<Completions>>)> =
        const { std::cell::RefCell::new((false, Vec::new())) };
}

macro_rules! nlog {
    ($sh:expr, $lvl:ident, $($t:tt)*) => {
        $crate::runtime::log::emit(
            $crate::runtime::log::Level::$lvl,
            &$sh.tag,
            format_args!($($t)*),
        )
    };
}
pub(crate) use nlog;

impl Shared {
    pub fn now(&self) -> Time {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Time(ms.saturating_add(1000))
    }

    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.rt.lock_acquisitions.fetch_add(1, Ordering::Relaxed);
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the engine under the lock, then routes what it produced, releases the lock
    /// and handles what must not be done under it.
    pub fn with<R>(&self, f: impl FnOnce(&mut Core, Time) -> R) -> R {
        let mut g = self.lock();
        let now = self.now();
        let r = f(&mut g, now);
        self.pump(&mut g, now);
        self.finish(g);
        r
    }

    /// Ends a step under the lock (after `pump`): writes the connections whose send side this
    /// thread took ([`Core::direct`]) with the lock released — one vectored write each, then
    /// under the lock again `tx_commit`, `pump`, and more rounds while there are bytes (at most
    /// [`DIRECT_ROUNDS`]; a full socket hands the send to the connection's scheduler) — and
    /// hands out the deferred events.
    pub fn finish<'a>(&'a self, mut g: MutexGuard<'a, Core>) {
        let mut rounds = 0u32;
        while !g.direct.is_empty() {
            rounds = rounds.saturating_add(1);
            let mut jobs = std::mem::take(&mut g.jobs);
            let mut direct = std::mem::take(&mut g.direct);
            for conn in direct.drain(..) {
                self.capture_direct(&mut g, conn, &mut jobs);
            }
            direct.append(&mut g.direct);
            g.direct = direct;
            if jobs.is_empty() {
                g.jobs = jobs;
                continue;
            }
            g.callers_writing = g.callers_writing.saturating_add(jobs.len());
            self.unlock(g);
            for j in jobs.iter_mut() {
                let mut sock: &TcpStream = &j.sock;
                let r = loop {
                    match j.lent.write_to(&mut sock) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                j.result = Some(r);
            }
            g = self.lock();
            let now = self.now();
            for j in jobs.drain(..) {
                self.complete_direct(&mut g, now, j, rounds);
            }
            g.jobs = jobs;
            self.pump(&mut g, now);
        }
        self.unlock(g);
    }

    /// Releases the lock, then hands out the deferred events and wakes completion queues
    /// (swapping the lists with this thread's spare ones: no allocation per step).
    fn unlock(&self, mut g: MutexGuard<'_, Core>) {
        if g.deferred.is_empty() && g.to_notify.is_empty() {
            return;
        }
        SPARE.with(|sp| {
            let Ok(mut sp) = sp.try_borrow_mut() else {
                // Re-entered (a tap that calls back into the node): plain lists.
                let d = std::mem::take(&mut g.deferred);
                let n = std::mem::take(&mut g.to_notify);
                drop(g);
                self.deliver_all(d);
                n.iter().for_each(|q| q.notify());
                return;
            };
            let (d, n) = &mut *sp;
            std::mem::swap(&mut g.deferred, d);
            std::mem::swap(&mut g.to_notify, n);
            drop(g);
            HELD.with(|h| match h.try_borrow_mut() {
                Ok(mut h) if h.0 => h.1.append(n),
                _ => n.drain(..).for_each(|q| q.notify()),
            });
            self.deliver(d);
        });
    }

    /// While `on`, this thread keeps the completion queues it should wake and wakes them when
    /// it turns this off: a scheduler reading a socket message by message wakes a waiting
    /// caller once for all the answers it read, not once per answer (the caller then sends its
    /// next messages in one write, not in many).
    pub fn hold_notifications(on: bool) {
        HELD.with(|h| {
            let Ok(mut h) = h.try_borrow_mut() else {
                return;
            };
            h.0 = on;
            if !on {
                h.1.drain(..).for_each(|q| q.notify());
            }
        });
    }

    fn deliver_all(&self, mut evs: Vec<LnetEvent>) {
        self.deliver(&mut evs);
    }

    /// Lends the bytes of `conn` (whose send side this thread holds) for a caller write.
    fn capture_direct(&self, c: &mut Core, conn: ConnId, jobs: &mut Vec<DirectJob>) {
        let Some(side) = c.tx.get_mut(&conn) else {
            return;
        };
        if side.owner != TxOwner::Caller {
            return;
        }
        if side.release_by_caller || side.sched_only {
            self.let_go(c, conn, self.now());
            return;
        }
        let mut lent = c.lents.pop().unwrap_or_default();
        let mut out: [&[u8]; sys::LENT_MAX_IOV] = [&[]; sys::LENT_MAX_IOV];
        let n = c.engine.tx_slices(conn, &mut out);
        lent.capture(out.get(..n).unwrap_or(&[]));
        if lent.is_empty() {
            side.owner = TxOwner::Free;
            c.lents.push(lent);
            return;
        }
        jobs.push(DirectJob {
            conn,
            sock: side.sock.clone(),
            lent,
            result: None,
        });
    }

    /// A caller write is over (under the lock again): commit, or hand over, or fail.
    fn complete_direct(&self, c: &mut Core, now: Time, mut j: DirectJob, rounds: u32) {
        c.callers_writing = c.callers_writing.saturating_sub(1);
        let conn = j.conn;
        j.lent.clear();
        c.lents.push(j.lent);
        drop(j.sock);
        let Some(side) = c.tx.get_mut(&conn) else {
            return;
        };
        match j.result {
            Some(Ok(n)) if n > 0 => {
                self.rt.writes.fetch_add(1, Ordering::Relaxed);
                self.rt.direct_writes.fetch_add(1, Ordering::Relaxed);
                self.rt.write_bytes.fetch_add(n as u64, Ordering::Relaxed);
                let more = !side.release_by_caller && !side.sched_only && rounds < DIRECT_ROUNDS;
                if !side.release_by_caller && !c.closed.contains(&conn) {
                    c.engine.tx_commit(now, conn, n);
                }
                if more {
                    // Still ours: the next round looks at the queue again.
                    c.direct.push(conn);
                } else {
                    self.let_go(c, conn, now);
                }
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.rt.writes_pending.fetch_add(1, Ordering::Relaxed);
                self.rt.direct_handoffs.fetch_add(1, Ordering::Relaxed);
                self.let_go(c, conn, now);
            }
            other => {
                let e = match other {
                    Some(Err(e)) => e,
                    _ => io::Error::from(io::ErrorKind::WriteZero),
                };
                side.sched_only = true;
                let release = side.release_by_caller;
                if !release {
                    nlog!(self, Debug, "connection {}: write failed: {e}", conn);
                    c.engine
                        .io_error(now, conn, e.raw_os_error().unwrap_or(sys::EIO));
                }
                self.let_go(c, conn, now);
            }
        }
    }

    /// This thread gives up the send side of `conn`: releases the connection when its
    /// scheduler closed it meanwhile, else leaves the rest (if any) to the scheduler.
    fn let_go(&self, c: &mut Core, conn: ConnId, now: Time) {
        let Some(side) = c.tx.get_mut(&conn) else {
            return;
        };
        side.owner = TxOwner::Free;
        if side.release_by_caller {
            self.rt.caller_releases.fetch_add(1, Ordering::Relaxed);
            c.engine.release(now, conn);
            Shared::forget(c, conn);
            return;
        }
        let s = side.sched;
        self.push(c, s, Msg::Act(Action::Send { conn }));
    }

    pub fn wake(&self, s: usize) {
        if let Some(slot) = self.scheds.get(s) {
            if super::sched::is_current(self, s) {
                // The scheduler itself (reading, or handling its mailbox): it looks at its
                // mailbox again before it next waits, so no write to its wake-up stream (and
                // no read of it and no extra poll round) is needed.
                slot.notified.store(true, Ordering::Release);
                return;
            }
            if !slot.notified.swap(true, Ordering::AcqRel) {
                self.rt.sched_wakeups.fetch_add(1, Ordering::Relaxed);
                use std::io::Write;
                let _ = (&slot.waker).write(&[1]);
            }
        }
    }

    fn push(&self, c: &mut Core, s: usize, m: Msg) {
        if let Some(mb) = c.mailboxes.get_mut(s) {
            mb.push(m);
            self.wake(s);
        }
    }

    /// The scheduler with the fewest connections.
    pub fn pick_sched(c: &Core) -> usize {
        c.sched_load
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| **n)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    pub fn assign(&self, c: &mut Core, conn: ConnId) -> usize {
        let s = Self::pick_sched(c);
        c.sched_of.insert(conn, s);
        if let Some(n) = c.sched_load.get_mut(s) {
            *n = n.saturating_add(1);
        }
        s
    }

    /// Forgets a released connection's bookkeeping.
    pub fn forget(c: &mut Core, conn: ConnId) {
        if let Some(s) = c.sched_of.remove(&conn) {
            if let Some(n) = c.sched_load.get_mut(s) {
                *n = n.saturating_sub(1);
            }
        }
        c.closed.remove(&conn);
        c.meta.remove(&conn);
        c.tx.remove(&conn);
    }

    fn route(&self, c: &mut Core, a: Action) {
        let conn = match a {
            Action::Connect { conn, .. } => {
                let s = self.assign(c, conn);
                self.push(c, s, Msg::Act(a));
                return;
            }
            Action::Close { conn, flush } => {
                if !flush {
                    c.closed.insert(conn);
                }
                if let Some(side) = c.tx.get_mut(&conn) {
                    side.sched_only = true;
                }
                conn
            }
            Action::Send { conn } => {
                if let Some(side) = c.tx.get_mut(&conn) {
                    match side.owner {
                        // Its holder looks at the queue again before letting go.
                        TxOwner::Sched | TxOwner::Caller => return,
                        TxOwner::Free
                            if !side.sched_only && !super::sched::is_current(self, side.sched) =>
                        {
                            // Written by this thread after the lock is released: no hand-off.
                            // (A scheduler's own connections are left to its loop, which writes
                            // after its reads: the answers to a batch of messages go out in one
                            // write.)
                            side.owner = TxOwner::Caller;
                            c.direct.push(conn);
                            return;
                        }
                        TxOwner::Free => {}
                    }
                }
                conn
            }
            Action::Receive { conn } | Action::Configure { conn } => conn,
        };
        match c.sched_of.get(&conn).copied() {
            Some(s) => self.push(c, s, Msg::Act(a)),
            None => nlog!(self, Debug, "dropping {a:?}: connection already released"),
        }
    }

    /// Drains the engine's actions and events and the LNet layer's events until all is quiet.
    pub fn pump(&self, c: &mut Core, now: Time) {
        let mut news = false;
        RETURNED.with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                let (bufs, bytes) = &mut *r;
                for b in bufs.drain(..) {
                    c.lnet.give_back(b);
                }
                *bytes = 0;
            }
        });
        for _ in 0..1_000_000 {
            let mut moved = false;
            while let Some(a) = c.engine.poll_action() {
                moved = true;
                self.route(c, a);
            }
            while let Some(e) = c.engine.poll_event() {
                moved = true;
                news |= self.note_event(c, &e);
                let Core { engine, lnet, .. } = &mut *c;
                lnet.handle_event(engine, now, e);
            }
            while let Some(le) = c.lnet.poll_event() {
                moved = true;
                self.on_lnet_event(c, now, le);
            }
            if !moved {
                break;
            }
        }
        if news {
            self.changed.notify_all();
        }
    }

    /// Logs connection news; returns whether waiters should look again.
    fn note_event(&self, c: &mut Core, e: &Event<Payload, Vec<u8>>) -> bool {
        match e {
            Event::ConnUp {
                conn,
                peer,
                ctype,
                version,
                addrs,
            } => {
                nlog!(
                    self,
                    Info,
                    "connection {} up: {peer} {} {}:{}->{}:{} protocol V{}",
                    conn,
                    type_name(*ctype),
                    Ipv4Addr::from(addrs.local_ip),
                    addrs.local_port,
                    Ipv4Addr::from(addrs.peer_ip),
                    addrs.peer_port,
                    version.to_wire()
                );
                c.ups.push((*peer, *ctype, *version, *addrs));
                true
            }
            Event::ConnDown { conn, peer, reason } => {
                let who = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
                let lvl = match reason {
                    Error::Shutdown | Error::ConnClosed => Level::Debug,
                    // The normal course of version fallback and connection races.
                    Error::Protocol(w)
                        if w.contains("retry")
                            || w.contains("race")
                            || *w == "unknown protocol version" =>
                    {
                        Level::Debug
                    }
                    _ => Level::Info,
                };
                super::log::emit(
                    lvl,
                    &self.tag,
                    format_args!("connection {} to {who} closed: {reason}", conn),
                );
                self.taps.conn_down(super::traffic::ConnDown {
                    conn: *conn,
                    peer: *peer,
                    reason: *reason,
                });
                if let Some(p) = peer {
                    c.down_seq = c.down_seq.wrapping_add(1);
                    c.last_down.insert(*p, (c.down_seq, *reason));
                }
                true
            }
            Event::PeerDown { peer } => {
                nlog!(self, Info, "peer {peer} has no connection left");
                true
            }
            Event::VersionFallback { peer, from, to } => {
                nlog!(
                    self,
                    Info,
                    "{peer} speaks protocol V{}, not V{}: reconnecting with V{}",
                    to.to_wire(),
                    from.to_wire(),
                    to.to_wire()
                );
                false
            }
            _ => false,
        }
    }

    fn on_lnet_event(&self, c: &mut Core, now: Time, ev: LnetEvent) {
        let op = match &ev {
            LnetEvent::PingDone { op, .. }
            | LnetEvent::PutDone { op, .. }
            | LnetEvent::GetDone { op, .. } => Some(*op),
            _ => None,
        };
        if let Some(op) = op {
            match c.waiters.remove(&op) {
                Some(Waiter::Chan(tx)) => {
                    let _ = tx.send(ev);
                }
                Some(Waiter::Call(f)) => f(c, now, ev),
                Some(Waiter::Queue(q)) => {
                    let first = q.push(ev);
                    if first {
                        c.to_notify.push(q);
                    }
                }
                None => {}
            }
            return;
        }
        match ev {
            LnetEvent::PutReceived { .. } => c.deferred.push(ev),
            LnetEvent::PingServed { from } => nlog!(self, Debug, "answered a ping from {from}"),
            LnetEvent::PushReceived { from, nids } => {
                nlog!(
                    self,
                    Info,
                    "discovery push from {from}: {} NIDs",
                    nids.len()
                )
            }
            LnetEvent::Dropped { from, why } => {
                nlog!(self, Info, "dropped a message from {from}: {why}")
            }
            _ => {}
        }
    }

    /// Work done outside the lock: digesting received PUTs (`evs` is left empty).
    pub fn deliver(&self, evs: &mut Vec<LnetEvent>) {
        for ev in evs.drain(..) {
            if let LnetEvent::PutReceived {
                from,
                portal,
                match_bits,
                hdr_data,
                data,
            } = ev
            {
                let h = if portal == PUT_PORTAL {
                    data_hash(&data)
                } else {
                    0
                };
                {
                    let mut p = self.puts.lock().unwrap_or_else(|e| e.into_inner());
                    p.count = p.count.wrapping_add(1);
                    p.bytes = p.bytes.wrapping_add(data.len() as u64);
                    p.digest = p.digest.wrapping_add(h);
                }
                let untaken = self.taps.put(super::traffic::ReceivedPut {
                    from,
                    portal,
                    match_bits,
                    hdr_data,
                    data,
                });
                if let Some(p) = untaken {
                    RETURNED.with(|r| {
                        if let Ok(mut r) = r.try_borrow_mut() {
                            let (bufs, bytes) = &mut *r;
                            let cap = p.data.capacity();
                            if bufs.len() < RETURNED_MAX
                                && bytes.saturating_add(cap) <= RETURNED_BYTES_MAX
                            {
                                *bytes = bytes.saturating_add(cap);
                                bufs.push(p.data);
                            }
                        }
                    });
                }
            }
        }
    }
}

pub(crate) fn type_name(t: ConnType) -> &'static str {
    match t {
        ConnType::Any => "ANY",
        ConnType::Control => "CONTROL",
        ConnType::BulkIn => "BULK_IN",
        ConnType::BulkOut => "BULK_OUT",
        ConnType::None => "NONE",
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    Listen {
        addr: SocketAddrV4,
        error: io::Error,
    },
    Thread(io::Error),
    Config(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Listen { addr, error } => {
                let hint = match error.raw_os_error() {
                    Some(sys::EACCES) | Some(sys::EPERM) => {
                        "permission denied — run as root or pass --port with a port above 1023"
                    }
                    Some(sys::EADDRINUSE) => {
                        "address in use — another tdinal or a Lustre node (ksocklnd) is listening \
                         there; stop it, or pass --ip or --port"
                    }
                    Some(sys::EADDRNOTAVAIL) => {
                        "address not available — that IP is not configured on any interface; \
                         pass --ip with a local address"
                    }
                    _ => "",
                };
                if hint.is_empty() {
                    write!(f, "cannot bind {addr}: {error}")
                } else {
                    write!(f, "cannot bind {addr}: {hint}")
                }
            }
            StartError::Thread(e) => write!(f, "cannot start a thread: {e}"),
            StartError::Config(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for StartError {}

/// What a clean shutdown left behind (everything should be zero).
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    pub stats: Stats,
    pub idle: bool,
    pub lnet_ops_open: usize,
    pub threads_joined: usize,
    pub forced_closes: u64,
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Ok when the engine is idle and its gauges are zero.
    pub fn check(&self) -> Result<(), String> {
        let s = &self.stats;
        let gauges = [
            ("conns_open", s.conns_open),
            ("peers", s.peers),
            ("rx_msgs_open", s.rx_msgs_open),
            ("tx_msgs_open", s.tx_msgs_open()),
            ("zc_waiting", s.zc_waiting),
        ];
        let left: Vec<String> = gauges
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if self.idle && left.is_empty() && self.forced_closes == 0 && self.lnet_ops_open == 0 {
            Ok(())
        } else {
            Err(format!(
                "unclean shutdown: engine idle={}, forced closes={}, LNet ops open={}, gauges left: {}",
                self.idle,
                self.forced_closes,
                self.lnet_ops_open,
                if left.is_empty() {
                    "none".to_string()
                } else {
                    left.join(" ")
                }
            ))
        }
    }
}

/// Why [`NodeHandle::connect`] failed: the engine's last reason for the peer (if any) and a
/// message saying what to check.
#[derive(Clone, Debug)]
pub struct ConnectFailure {
    pub reason: Option<Error>,
    pub message: String,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectFailure {}

/// Results of [`NodeHandle::put`].
#[derive(Clone, Debug)]
pub struct PutReport {
    pub count: u64,
    pub size: usize,
    pub ok: u64,
    pub failed: Vec<Error>,
    pub elapsed: Duration,
    /// What the receiver's digest must become by these PUTs ([`put_digest`]).
    pub digest: u64,
}

/// Everything `stats` shows.
#[derive(Clone, Debug)]
pub struct NodeStats {
    pub engine: Stats,
    pub lnet: LnetStats,
    pub lnet_ops_open: usize,
    pub puts: PutCounters,
    pub rt: Vec<(&'static str, u64)>,
    pub schedulers: usize,
}

/// A cheap, cloneable handle on a running node (the control server holds one).
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) shared: Arc<Shared>,
}

/// A running node. [`Node::shutdown`] stops it cleanly (dropping it does the same).
pub struct Node {
    handle: NodeHandle,
    acceptor: Option<(JoinHandle<()>, Arc<AtomicBool>, UnixStream)>,
    scheds: Vec<JoinHandle<()>>,
    reaper: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
    listen_addr: Option<SocketAddrV4>,
    done: bool,
}

impl std::ops::Deref for Node {
    type Target = NodeHandle;
    fn deref(&self) -> &NodeHandle {
        &self.handle
    }
}

impl Node {
    /// Starts the node: binds the acceptor (unless `accept=none`), then starts one scheduler
    /// per CPU (or `nscheds`), the acceptor and the reaper.
    pub fn start(cfg: NodeConfig) -> Result<Node, StartError> {
        if cfg.nid.lnd() != crate::wire::nid::lnd::SOCKLND {
            return Err(StartError::Config(format!(
                "{} is not a TCP NID (expected a.b.c.d@tcp or @tcpN)",
                cfg.nid
            )));
        }
        let t = &cfg.tunables;
        let listen_addr = SocketAddrV4::new(cfg.ip, t.accept_port);
        let listener = if t.accept == AcceptPolicy::None {
            None
        } else {
            Some(sys::listen(listen_addr, t.accept_backlog).map_err(|error| {
                StartError::Listen {
                    addr: listen_addr,
                    error,
                }
            })?)
        };
        let incarnation = cfg.incarnation.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(1)
        });
        let ni = LocalNi {
            nid: cfg.nid,
            pid: LNET_PID_LUSTRE,
            incarnation,
        };
        let n = cfg.scheduler_count();
        let mut slots = Vec::new();
        let mut wake_rx = Vec::new();
        for _ in 0..n {
            let (a, b) = UnixStream::pair().map_err(StartError::Thread)?;
            a.set_nonblocking(true).map_err(StartError::Thread)?;
            b.set_nonblocking(true).map_err(StartError::Thread)?;
            slots.push(SchedSlot {
                waker: a,
                notified: AtomicBool::new(false),
            });
            wake_rx.push(b);
        }
        let core = Core {
            engine: Engine::new(ni, cfg.tunables.clone(), true),
            lnet: Lnet::new(ni),
            mailboxes: (0..n).map(|_| Vec::new()).collect(),
            sched_of: HashMap::new(),
            sched_load: vec![0; n],
            closed: HashSet::new(),
            meta: HashMap::new(),
            waiters: HashMap::new(),
            to_notify: Vec::new(),
            deferred: Vec::new(),
            last_down: HashMap::new(),
            down_seq: 0,
            ups: Vec::new(),
            tx: HashMap::new(),
            direct: Vec::new(),
            callers_writing: 0,
            jobs: Vec::new(),
            lents: Vec::new(),
        };
        let tag = cfg.nid.to_string();
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            changed: Condvar::new(),
            scheds: slots,
            stopping: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            epoch: Instant::now(),
            cfg,
            tag,
            puts: Mutex::new(PutCounters::default()),
            rt: RtCounters::default(),
            taps: Default::default(),
        });
        let mut node = Node {
            handle: NodeHandle {
                shared: shared.clone(),
            },
            acceptor: None,
            scheds: Vec::new(),
            reaper: None,
            listen_addr: listener.as_ref().map(|_| listen_addr),
            done: false,
        };
        for (i, rx) in wake_rx.into_iter().enumerate() {
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("tdinal-sched-{i}"))
                .spawn(move || super::sched::run(sh, i, rx))
                .map_err(StartError::Thread)?;
            node.scheds.push(h);
        }
        if let Some(l) = listener {
            let stop = Arc::new(AtomicBool::new(false));
            let (wa, wb) = UnixStream::pair().map_err(StartError::Thread)?;
            wa.set_nonblocking(true).map_err(StartError::Thread)?;
            wb.set_nonblocking(true).map_err(StartError::Thread)?;
            let (sh, st) = (shared.clone(), stop.clone());
            let h = std::thread::Builder::new()
                .name("tdinal-acceptor".into())
                .spawn(move || super::acceptor::run(sh, l, st, wb))
                .map_err(StartError::Thread)?;
            node.acceptor = Some((h, stop, wa));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let h = std::thread::Builder::new()
            .name("tdinal-reaper".into())
            .spawn(move || reaper(sh, st))
            .map_err(StartError::Thread)?;
        node.reaper = Some((h, stop));
        let t = &shared.cfg.tunables;
        nlog!(
            shared,
            Info,
            "node up: {}, accept={} {}, protocol V{}, {} scheduler thread(s)",
            shared.cfg.nid,
            t.accept.name(),
            node.listen_addr
                .map(|a| format!("listening on {a}"))
                .unwrap_or_else(|| "not listening".into()),
            t.protocol.to_wire(),
            n
        );
        Ok(node)
    }

    /// Where the acceptor listens (`None` with `accept=none`).
    pub fn listen_addr(&self) -> Option<SocketAddrV4> {
        self.listen_addr
    }

    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Stops the node: no more accepts; the engine shuts down (every message finalized, every
    /// connection closed); the schedulers close the sockets and release the connections; every
    /// thread is joined. The report says whether anything was left.
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop()
    }

    fn stop(&mut self) -> ShutdownReport {
        let t0 = Instant::now();
        let sh = self.handle.shared.clone();
        let mut joined = 0usize;
        self.done = true;
        if let Some((h, stop, waker)) = self.acceptor.take() {
            stop.store(true, Ordering::Release);
            use std::io::Write;
            let _ = (&waker).write(&[1]);
            if h.join().is_ok() {
                joined += 1;
            }
        }
        sh.with(|c, now| {
            c.engine.shutdown(now);
            // Threads waiting for answers hear "disconnected" and report the shutdown.
            c.waiters.clear();
        });
        sh.stopping.store(true, Ordering::Release);
        for i in 0..sh.scheds.len() {
            sh.wake(i);
        }
        for h in self.scheds.drain(..) {
            if h.join().is_ok() {
                joined += 1;
            }
        }
        // A caller may still be writing on a connection its scheduler closed: it releases the
        // connection when its write returns (at once: the socket is shut down).
        let wait_until = Instant::now() + Duration::from_secs(5);
        while sh.with(|c, _| c.callers_writing > 0 || c.tx.values().any(|t| t.release_by_caller))
            && Instant::now() < wait_until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some((h, stop)) = self.reaper.take() {
            stop.store(true, Ordering::Release);
            if h.join().is_ok() {
                joined += 1;
            }
        }
        let (stats, idle, ops) = sh.with(|c, _| {
            c.waiters.clear();
            // Operations whose answer can no longer come (a lost LNet ACK, a ping in flight)
            // are failed now, each with its one completion; what is still open after that is
            // reported (and fails the clean-shutdown check).
            let open_before = c.lnet.ops_open();
            c.lnet.shutdown();
            while c.lnet.poll_event().is_some() {}
            if open_before > 0 {
                nlog!(
                    sh,
                    Info,
                    "{open_before} LNet operation(s) failed at shutdown"
                );
            }
            (c.engine.stats, c.engine.is_idle(), c.lnet.ops_open())
        });
        sh.changed.notify_all();
        let report = ShutdownReport {
            stats,
            idle,
            lnet_ops_open: ops,
            threads_joined: joined,
            forced_closes: sh.rt.forced_closes.load(Ordering::Relaxed),
            elapsed: t0.elapsed(),
        };
        match report.check() {
            Ok(()) => nlog!(
                sh,
                Info,
                "shut down cleanly in {} ms ({} threads joined)",
                report.elapsed.as_millis(),
                joined
            ),
            Err(e) => nlog!(sh, Error, "{e}"),
        }
        report
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.stop();
        }
    }
}

/// The reaper: timeouts of the engine (handshakes, dead sockets, stale ZC requests,
/// keepalives, reconnects) and of the LNet layer (pings, GETs), ten times a second.
fn reaper(sh: Arc<Shared>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        sh.with(|c, now| {
            c.engine.handle_timeout(now);
            c.lnet.handle_timeout(now);
        });
    }
}

fn wanted_conns(cfg: &NodeConfig) -> usize {
    if cfg.tunables.typed_conns {
        1usize
            .saturating_add(2usize.saturating_mul(cfg.tunables.effective_conns_per_peer() as usize))
    } else {
        1
    }
}

/// Reasons after which waiting for a connection is pointless.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Io(_) | Error::WrongPeer { .. } | Error::Refused(_) | Error::Timeout(_)
    )
}

impl NodeHandle {
    pub fn nid(&self) -> Nid {
        self.shared.cfg.nid
    }
    pub fn id(&self) -> ProcessId {
        ProcessId::lustre(self.shared.cfg.nid)
    }
    pub fn local_ip(&self) -> Ipv4Addr {
        self.shared.cfg.ip
    }
    pub fn config(&self) -> &NodeConfig {
        &self.shared.cfg
    }
    pub fn schedulers(&self) -> usize {
        self.shared.scheds.len()
    }

    /// Asks the node's owner to stop it (the `shutdown` control command).
    pub fn request_stop(&self) {
        self.shared.stop_requested.store(true, Ordering::Release);
        self.shared.changed.notify_all();
    }
    pub fn stop_requested(&self) -> bool {
        self.shared.stop_requested.load(Ordering::Acquire)
    }

    /// `connect`: adds a persistent route to `peer` at `ip:port` and brings up its connections;
    /// waits until all wanted connections are established (returned), one fails for good, or
    /// `timeout` passes.
    pub fn connect(
        &self,
        peer: ProcessId,
        ip: Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<ConnView>, ConnectFailure> {
        let sh = &self.shared;
        let start_seq = sh.with(|c, now| {
            c.engine.connect_peer(now, peer, u32::from(ip), port);
            c.down_seq
        });
        let want = wanted_conns(&sh.cfg);
        let deadline = Instant::now() + timeout;
        let mut g = sh.lock();
        loop {
            let mine: Vec<ConnId> = g
                .engine
                .conns()
                .iter()
                .filter(|c| c.peer == peer)
                .map(|c| c.conn)
                .collect();
            let up = mine.len();
            // Established, and configured by their schedulers (socket options set).
            if up >= want && mine.iter().all(|c| g.meta.contains_key(c)) {
                break;
            }
            if let Some((seq, why)) = g.last_down.get(&peer) {
                if *seq > start_seq && is_fatal(why) && up == 0 {
                    return Err(ConnectFailure {
                        reason: Some(*why),
                        message: format!(
                            "cannot connect to {peer} at {ip}:{port}: {why}{}",
                            connect_hint(why)
                        ),
                    });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let last = g
                    .last_down
                    .get(&peer)
                    .filter(|(s, _)| *s > start_seq)
                    .map(|(_, e)| *e);
                let why = last
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(ConnectFailure {
                    reason: last,
                    message: format!(
                        "cannot connect to {peer} at {ip}:{port}: {up} of {want} connections up \
                         after {} s{why}",
                        timeout.as_secs()
                    ),
                });
            }
            g = sh
                .changed
                .wait_timeout(g, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(g);
        Ok(self
            .conns()
            .into_iter()
            .filter(|c| c.info.peer == peer)
            .collect())
    }

    /// `add_peer`: remembers where `peer` is; connections come when needed.
    pub fn add_peer(&self, peer: ProcessId, ip: Ipv4Addr, port: u16) {
        self.shared
            .with(|c, now| c.engine.add_peer(now, peer, u32::from(ip), port));
    }

    /// `del_peer [nid] [ip]`; returns the connections closed.
    pub fn del_peer(&self, nid: Option<Nid>, ip: Option<Ipv4Addr>) -> usize {
        self.shared
            .with(|c, now| c.engine.del_peer(now, nid, ip.map(u32::from)))
    }

    /// `disconnect [nid] [ip]`; returns the connections closed.
    pub fn disconnect(&self, nid: Option<Nid>, ip: Option<Ipv4Addr>) -> usize {
        self.shared
            .with(|c, now| c.engine.close_conns(now, nid, ip.map(u32::from)))
    }

    /// Pings `target` as `lctl ping` does; returns the ids in its ping info.
    pub fn ping(
        &self,
        target: ProcessId,
        timeout: Duration,
    ) -> Result<Vec<(ProcessId, u32)>, Error> {
        let (tx, rx) = mpsc::channel();
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared.with(|c, now| {
            let Core { engine, lnet, .. } = &mut *c;
            let op = lnet.ping(engine, now, target, ms);
            c.waiters.insert(op, tx.into());
        });
        match self.recv_while_running(&rx, timeout + Duration::from_secs(1)) {
            Ok(LnetEvent::PingDone { result, .. }) => result,
            Ok(_) => Err(Error::Protocol("unexpected answer to a ping")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout("no answer")),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Shutdown),
        }
    }

    /// Sends `count` PUTs of `size` bytes ([`put_pattern`]) to `target`'s [`PUT_PORTAL`], each
    /// asking for an LNet ACK, at most [`PUT_WINDOW`] at a time; waits for all of them. Fails
    /// when no PUT completes for `stall` (the time without progress).
    pub fn put(
        &self,
        target: ProcessId,
        size: usize,
        count: u64,
        stall: Duration,
    ) -> Result<PutReport, String> {
        let data: Payload = Arc::from(put_pattern(size));
        let digest = put_digest(&data, count);
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let (mut sent, mut done, mut ok) = (0u64, 0u64, 0u64);
        let mut failed = Vec::new();
        while done < count {
            let room = (PUT_WINDOW as u64).saturating_sub(sent - done);
            let n = room.min(count - sent);
            if n > 0 {
                self.shared.with(|c, now| {
                    for i in 0..n {
                        let seq = sent + i;
                        let Core { engine, lnet, .. } = &mut *c;
                        let op = lnet.put(
                            engine,
                            now,
                            target,
                            PUT_PORTAL,
                            seq,
                            seq,
                            data.clone(),
                            true,
                        );
                        c.waiters.insert(op, tx.clone().into());
                    }
                });
                sent += n;
            }
            match self.recv_while_running(&rx, stall) {
                Ok(LnetEvent::PutDone { result, .. }) => {
                    done += 1;
                    match result {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "PUTs to {target} stalled: {done} of {count} done, none completed in {} s",
                        stall.as_secs()
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "node shutting down: {done} of {count} PUTs to {target} done"
                    ))
                }
            }
        }
        Ok(PutReport {
            count,
            size,
            ok,
            failed,
            elapsed: t0.elapsed(),
            digest,
        })
    }

    /// `recv_timeout`, but "disconnected" as soon as the node shuts down (the caller may still
    /// hold a sender of its own).
    fn recv_while_running(
        &self,
        rx: &mpsc::Receiver<LnetEvent>,
        timeout: Duration,
    ) -> Result<LnetEvent, mpsc::RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.stopping.load(Ordering::Acquire) {
                return Err(mpsc::RecvTimeoutError::Disconnected);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(mpsc::RecvTimeoutError::Timeout);
            }
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                other => return other,
            }
        }
    }

    /// Waits until every message handed to the engine is finalized (zero-copy sends included:
    /// their ZC-ACKs arrived). False on timeout.
    pub fn wait_sends_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.lock().engine.stats.tx_msgs_open() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the node has received `count` PUTs in all. False on timeout.
    pub fn wait_puts_received(&self, count: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.puts_received().count >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn puts_received(&self) -> PutCounters {
        *self.shared.puts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.shared.lock().engine.peers()
    }

    pub fn conns(&self) -> Vec<ConnView> {
        let g = self.shared.lock();
        g.engine
            .conns()
            .into_iter()
            .map(|info| ConnView {
                info,
                meta: g.meta.get(&info.conn).copied(),
            })
            .collect()
    }

    /// Connection-up events seen so far: (peer, type, version, addresses).
    pub fn conn_ups(&self) -> Vec<(ProcessId, ConnType, crate::wire::ProtoVersion, ConnAddrs)> {
        self.shared.lock().ups.clone()
    }

    pub fn stats(&self) -> NodeStats {
        let (engine, lnet, ops) = {
            let g = self.shared.lock();
            (g.engine.stats, g.lnet.stats, g.lnet.ops_open())
        };
        let r = &self.shared.rt;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NodeStats {
            engine,
            lnet,
            lnet_ops_open: ops,
            puts: self.puts_received(),
            rt: vec![
                ("socket_reads", l(&r.reads)),
                ("socket_read_bytes", l(&r.read_bytes)),
                ("socket_writes", l(&r.writes)),
                ("socket_write_bytes", l(&r.write_bytes)),
                ("socket_writes_pending", l(&r.writes_pending)),
                ("accepts", l(&r.accepts)),
                ("accepts_refused", l(&r.accepts_refused)),
                ("connects", l(&r.connects)),
                ("connect_port_retries", l(&r.connect_port_retries)),
                ("forced_closes", l(&r.forced_closes)),
                ("socket_reads_eagain", l(&r.reads_eagain)),
                ("sched_polls", l(&r.polls)),
                ("tx_copied_bytes", l(&r.tx_copied_bytes)),
                ("rx_copied_bytes", l(&r.rx_copied_bytes)),
                ("lock_acquisitions", l(&r.lock_acquisitions)),
                ("sched_wakeups", l(&r.sched_wakeups)),
                ("direct_writes", l(&r.direct_writes)),
                ("direct_handoffs", l(&r.direct_handoffs)),
                ("caller_releases", l(&r.caller_releases)),
            ],
            schedulers: self.shared.scheds.len(),
        }
    }
}

fn connect_hint(e: &Error) -> &'static str {
    match e {
        Error::Io(111) => " — nothing listens there: is the peer's daemon running, on that port?",
        Error::Io(113) | Error::Io(101) => " — no route to that address",
        Error::Io(13) => {
            " — cannot bind a privileged source port: run as root or pass \
                          --allow-unprivileged (the peer then needs accept=all)"
        }
        Error::Io(98) => " — no privileged source port (1023..512) is free",
        Error::Io(110) | Error::Timeout(_) => " — the peer did not answer in time",
        Error::WrongPeer { .. } => " — a different node answers at that address",
        _ => "",
    }
}

/// Per-peer listing helper: peers sorted by id for stable output.
pub(crate) fn sorted_peers(mut v: Vec<PeerInfo>) -> Vec<PeerInfo> {
    v.sort_by_key(|p| (p.id, p.ip, p.port));
    v
}

/// Connections sorted by (peer, peer address, type: A C I O, local port) for stable output.
pub(crate) fn sorted_conns(mut v: Vec<ConnView>) -> Vec<ConnView> {
    let rank = |t: ConnType| match t {
        ConnType::Any => 0,
        ConnType::Control => 1,
        ConnType::BulkIn => 2,
        ConnType::BulkOut => 3,
        ConnType::None => 4,
    };
    let key = |c: &ConnView| {
        (
            c.info.peer,
            c.info.addrs.peer_ip,
            rank(c.info.ctype),
            std::cmp::Reverse(c.info.addrs.local_port),
            c.info.conn,
        )
    };
    v.sort_by_key(key);
    v
}
