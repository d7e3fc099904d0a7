//! The kernel runtime: drives `Engine` + `Lnet` over TDI exactly as `engine::pair` does in
//! memory (actions Connect/Send/Receive/Configure/Close, `accepted`, `connected`,
//! `rx_buffer`/`rx_commit`, `tx_slices`/`tx_commit`, `eof`, `io_error`, `release`,
//! `handle_timeout`).
//!
//! Threads (all system threads at PASSIVE_LEVEL): one **scheduler** per CPU, each with a run queue
//! of connections (spin lock) and a synchronization event; one **acceptor**
//! (`super::acceptor`); one **reaper** running the engine's timers every 50 ms.
//!
//! **IRQL rule**: the engine and the LNet layer live behind [`PassiveLock`] — a lock taken only at
//! PASSIVE_LEVEL by the runtime's threads (and by callers of [`TdiRuntime::with`]). Code at
//! DISPATCH_LEVEL (receive handlers, completion routines, `ClientEventConnect`) never touches
//! them: it queues data or results on the connection and wakes its scheduler. So the engine may
//! allocate freely (our allocator is non-paged anyway), may run long (CRC over a 1 MiB payload)
//! without holding a CPU at DISPATCH_LEVEL, and no spin lock is ever held across an engine call.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::acceptor::Listener;
use super::bindings::*;
use super::conn::*;
use super::lent::{NalPayload, NalSink};
use super::obj::{self, KEvent, SysThread};
use super::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, SpinLock};
use super::tsdu::TsduEntry;
use super::upper::{Forwarder, Request, Upcall, UpcallTarget};
use crate::engine::{Action, ConnAddrs, ConnId, Engine, LocalNi, Stats, Time, Tunables};
use crate::kernel::*;
use crate::lnet::{Lnet, LnetEvent};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::c_void;

/// The engine type of the kernel runtime: payloads and sinks are pool buffers of its own or
/// memory lent by the kernel LNet bound through the NAL interface ([`super::lent`]).
pub type TdiEngine = Engine<NalPayload, NalSink>;
/// The runtime's own LNet layer (used while no kernel LNet is bound).
pub type TdiLnet = Lnet<NalPayload, NalSink>;

/// Configuration of a [`TdiRuntime`].
#[derive(Clone, Debug)]
pub struct TdiConfig {
    pub ni: LocalNi,
    pub tunables: Tunables,
    /// Local IPv4 address (host order) for the listener and for active connections.
    pub local_ip: u32,
    /// Listening port (`None`: `tunables.accept_port`; `Some(0)`: any free port).
    pub listen_port: Option<u16>,
    /// Pre-created child connection objects waiting for `ClientEventConnect`.
    pub backlog: u32,
    /// Scheduler threads (0: one per active processor).
    pub schedulers: u32,
    /// `TDI_CONNECT` timeout.
    pub connect_timeout_ms: u32,
    /// How long a graceful `TDI_DISCONNECT` may take before it is cancelled and the connection
    /// aborted (a peer that never acknowledges our FIN must not hold a scheduler thread).
    pub disconnect_timeout_ms: u32,
}

/// Counters of the TDI layer.
#[derive(Default)]
pub struct TdiStats {
    pub accepted: AtomicU64,
    pub refused_no_child: AtomicU64,
    /// Accepted children that found no room on the listener's lists (kept, never freed, rather
    /// than freed with their connection object open). Expected 0: the room is reserved.
    pub accept_children_leaked: AtomicU64,
    /// `TDI_CONNECT`s cancelled at teardown, and graceful disconnects that timed out (then
    /// aborted).
    pub connects_cancelled: AtomicU64,
    pub disconnects_timed_out: AtomicU64,
    pub connects: AtomicU64,
    pub connect_port_retries: AtomicU64,
    pub sends_finished_by_submitter: AtomicU64,
    pub sends_finished_by_completion: AtomicU64,
    pub sends_parked: AtomicU64,
    pub receive_irps: AtomicU64,
    pub pulls: AtomicU64,
    pub rx_irp_bytes: AtomicU64,
    pub chained_retained: AtomicU64,
    pub expedited_dropped: AtomicU64,
    pub error_events: AtomicU64,
    pub teardowns: AtomicU64,
    pub lost_wakeups_avoided: AtomicU64,
    /// NAL entry-point requests that could not be queued (no memory for the queue entry).
    pub upper_requests_lost: AtomicU64,
}

/// What [`TdiRuntime::stop`] left behind: everything should be zero (the user-space runtime's
/// `ShutdownReport` checks the same).
#[derive(Clone, Debug)]
pub struct TdiStopReport {
    /// The engine's counters and gauges after the last connection was released.
    pub stats: Stats,
    /// `engine.is_idle()`: no connection, no peer left.
    pub idle: bool,
    /// LNet operations still open when the engine was done (a ping or GET in flight, a PUT
    /// whose LNet ACK was lost with its connection); `Lnet::shutdown` failed them, each with
    /// its one completion.
    pub lnet_ops_failed: usize,
    /// LNet operations still open after that (a bug).
    pub lnet_ops_open: usize,
    /// Connections the schedulers had not released within the stop's wait, torn down by `stop`.
    pub forced_teardowns: usize,
}

impl TdiStopReport {
    /// Ok when the engine is idle with its gauges at zero, no LNet operation is left and no
    /// connection had to be torn down by force.
    pub fn check(&self) -> Result<(), String> {
        let s = &self.stats;
        let mut left = String::new();
        for (n, v) in [
            ("conns_open", s.conns_open),
            ("peers", s.peers),
            ("rx_msgs_open", s.rx_msgs_open),
            ("tx_msgs_open", s.tx_msgs_open()),
            ("zc_waiting", s.zc_waiting),
        ] {
            if v != 0 {
                left.push_str(&format!(" {n}={v}"));
            }
        }
        if self.idle && left.is_empty() && self.lnet_ops_open == 0 && self.forced_teardowns == 0 {
            Ok(())
        } else {
            Err(format!(
                "unclean stop: engine idle={}, forced teardowns={}, LNet ops open={}, gauges \
                 left:{}",
                self.idle,
                self.forced_teardowns,
                self.lnet_ops_open,
                if left.is_empty() { " none" } else { &left }
            ))
        }
    }
}

/// A lock for the engine: a synchronization event used as a mutex. PASSIVE_LEVEL only (the wait
/// is non-zero), never taken by DISPATCH_LEVEL code.
pub struct PassiveLock<T> {
    gate: Box<KEvent>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through the guard, which holds the gate (mutual exclusion).
unsafe impl<T: Send> Sync for PassiveLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for PassiveLock<T> {}

impl<T> PassiveLock<T> {
    pub fn new(data: T) -> Self {
        PassiveLock {
            gate: KEvent::new(true, true),
            data: UnsafeCell::new(data),
        }
    }
    /// Acquires the lock (waits; PASSIVE_LEVEL).
    pub fn lock(&self) -> PassiveGuard<'_, T> {
        self.gate.wait(None);
        PassiveGuard { lock: self }
    }
}

/// Holds a [`PassiveLock`].
pub struct PassiveGuard<'a, T> {
    lock: &'a PassiveLock<T>,
}
impl<T> core::ops::Deref for PassiveGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the gate.
        unsafe { &*self.lock.data.get() }
    }
}
impl<T> core::ops::DerefMut for PassiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the gate exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}
impl<T> Drop for PassiveGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.gate.set();
    }
}

/// What lives behind the engine lock.
pub struct Core {
    pub engine: TdiEngine,
    /// The upper layer while no kernel LNet is bound.
    pub lnet: TdiLnet,
    /// The upper layer while a kernel LNet is bound (`Some`): engine events go to it instead
    /// of `lnet`.
    pub external: Option<Forwarder>,
    pub conns: BTreeMap<ConnId, Arc<Conn>>,
    /// Connects waiting to be started outside the lock.
    pending_connects: Vec<(ConnId, u32, u16)>,
    /// Connects the engine closed before they were started: released by `drain`.
    release_now: Vec<ConnId>,
}

/// A scheduler's run queue.
pub struct Sched {
    runq: SpinLock<VecDeque<Arc<Conn>>>,
    event: Box<KEvent>,
}

/// State shared by the runtime's threads, handlers and connections.
pub struct Shared {
    pub core: PassiveLock<Core>,
    pub scheds: Vec<Sched>,
    pub events: SpinLock<VecDeque<LnetEvent>>,
    pub stats: TdiStats,
    pub cfg: TdiConfig,
    /// The scheduler threads leave (set last in `stop`, after every connection is gone).
    pub stop: AtomicBool,
    /// The acceptor thread leaves (set first in `stop`). A flag of its own: the schedulers must
    /// keep running while the acceptor is joined, to tear the connections down.
    pub stop_acceptor: AtomicBool,
    next_port: AtomicU32,
    rr: AtomicUsize,
    /// Set when a wake-up could not be queued (no memory): schedulers sweep every connection.
    sweep: AtomicBool,
    pub listener: SpinLock<Option<Arc<Listener>>>,
    pub listen_port: AtomicU32,
    /// Requests of the bound kernel LNet (entry points, any IRQL <= DISPATCH_LEVEL).
    upper_requests: SpinLock<VecDeque<Request>>,
    /// Callbacks for the bound kernel LNet, delivered by scheduler 0 with no lock held.
    upcalls: SpinLock<VecDeque<Upcall>>,
    /// The bound kernel LNet's callbacks.
    upper_target: SpinLock<Option<Arc<dyn UpcallTarget>>>,
    /// Set after a request or an upcall was queued: scheduler 0 has upper-layer work.
    upper_pending: AtomicBool,
    /// Upcalls being delivered right now (popped, callback not returned yet).
    upcalls_delivering: AtomicUsize,
}

impl Shared {
    /// Queues a connection on its scheduler (any IRQL <= DISPATCH_LEVEL).
    pub fn enqueue(&self, conn: Arc<Conn>) {
        let Some(s) = self.scheds.get(conn.sched) else {
            return;
        };
        {
            let mut q = s.runq.lock();
            if q.try_reserve(1).is_err() {
                self.sweep.store(true, Ordering::Release);
                self.stats
                    .lost_wakeups_avoided
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                q.push_back(conn);
            }
        }
        s.event.set();
    }

    /// Picks a scheduler for a new connection.
    pub fn pick_sched(&self) -> usize {
        let n = self.scheds.len().max(1);
        self.rr
            .fetch_add(1, Ordering::Relaxed)
            .checked_rem(n)
            .unwrap_or(0)
    }

    pub fn now(&self) -> Time {
        Time(obj::now_ms().saturating_add(1_000_000))
    }

    /// Queues a request of the bound kernel LNet and wakes scheduler 0 (any IRQL <=
    /// DISPATCH_LEVEL; never blocks, never calls LNet). `Err` gives the request back when the
    /// runtime is stopping or the queue entry could not be allocated.
    // The request comes back whole so that its cookie can be finalized; boxing it would cost
    // an allocation per call at DISPATCH_LEVEL.
    #[allow(clippy::result_large_err)]
    pub fn submit(&self, r: Request) -> Result<(), Request> {
        if self.stop.load(Ordering::Acquire) {
            return Err(r);
        }
        {
            let mut q = self.upper_requests.lock();
            if q.try_reserve(1).is_err() {
                drop(q);
                self.stats
                    .upper_requests_lost
                    .fetch_add(1, Ordering::Relaxed);
                return Err(r);
            }
            q.push_back(r);
        }
        self.upper_pending.store(true, Ordering::Release);
        if let Some(s) = self.scheds.first() {
            s.event.set();
        }
        Ok(())
    }

    fn push_event(&self, e: LnetEvent) {
        let mut q = self.events.lock();
        if q.try_reserve(1).is_ok() {
            q.push_back(e);
        }
    }
}

/// The running TDI transport of one NI.
pub struct TdiRuntime {
    shared: Arc<Shared>,
    threads: Vec<(SysThread, *const ThreadArg)>,
    acceptor: Option<(SysThread, *const ThreadArg)>,
}

// SAFETY: the thread arguments are only freed by `stop` after joining.
unsafe impl Send for TdiRuntime {}
// SAFETY: all shared state is behind locks/atomics.
unsafe impl Sync for TdiRuntime {}

/// What a runtime thread gets.
pub struct ThreadArg {
    pub shared: Arc<Shared>,
    pub index: usize,
}

impl TdiRuntime {
    /// Opens the listener with its backlog and starts the scheduler and acceptor threads.
    /// PASSIVE_LEVEL.
    pub fn start(cfg: TdiConfig) -> Result<TdiRuntime, NTSTATUS> {
        let n = if cfg.schedulers == 0 {
            // SAFETY: callable at any IRQL <= DISPATCH_LEVEL.
            unsafe { KeQueryActiveProcessorCountEx(ALL_PROCESSOR_GROUPS) }.clamp(1, 64)
        } else {
            cfg.schedulers.min(64)
        } as usize;
        let mut scheds = Vec::new();
        for _ in 0..n {
            scheds.push(Sched {
                runq: SpinLock::new(VecDeque::new()),
                event: KEvent::new(true, false),
            });
        }
        let shared = Arc::new(Shared {
            core: PassiveLock::new(Core {
                engine: Engine::new(cfg.ni, cfg.tunables.clone(), true),
                lnet: Lnet::new(cfg.ni),
                external: None,
                conns: BTreeMap::new(),
                pending_connects: Vec::new(),
                release_now: Vec::new(),
            }),
            scheds,
            events: SpinLock::new(VecDeque::new()),
            stats: TdiStats::default(),
            cfg: cfg.clone(),
            stop: AtomicBool::new(false),
            stop_acceptor: AtomicBool::new(false),
            next_port: AtomicU32::new(1023),
            rr: AtomicUsize::new(0),
            sweep: AtomicBool::new(false),
            listener: SpinLock::new(None),
            listen_port: AtomicU32::new(0),
            upper_requests: SpinLock::new(VecDeque::new()),
            upcalls: SpinLock::new(VecDeque::new()),
            upper_target: SpinLock::new(None),
            upper_pending: AtomicBool::new(false),
            upcalls_delivering: AtomicUsize::new(0),
        });
        let mut rt = TdiRuntime {
            shared: shared.clone(),
            threads: Vec::new(),
            acceptor: None,
        };
        let port = cfg.listen_port.unwrap_or(cfg.tunables.accept_port);
        if cfg.tunables.accept != crate::engine::AcceptPolicy::None {
            match Listener::open(&shared, cfg.local_ip, port) {
                Ok(l) => {
                    shared
                        .listen_port
                        .store(u32::from(l.port), Ordering::Release);
                    *shared.listener.lock() = Some(l);
                }
                Err(st) => {
                    rt.stop();
                    return Err(st);
                }
            }
        }
        for i in 0..n {
            let arg = Box::into_raw(Box::new(ThreadArg {
                shared: shared.clone(),
                index: i,
            }));
            match SysThread::spawn(scheduler_main, arg.cast()) {
                Ok(t) => rt.threads.push((t, arg)),
                Err(st) => {
                    // SAFETY: the thread did not start: the argument is still ours.
                    drop(unsafe { Box::from_raw(arg) });
                    rt.stop();
                    return Err(st);
                }
            }
        }
        // The reaper: the engine's timers (connect/handshake/ZC-ACK timeouts, keepalive
        // NOOPs, reconnects, reaping of stalled connections), on a thread of its own so that no
        // amount of traffic on a scheduler delays them. Joined with the schedulers.
        let arg = Box::into_raw(Box::new(ThreadArg {
            shared: shared.clone(),
            index: n,
        }));
        match SysThread::spawn(reaper_main, arg.cast()) {
            Ok(t) => rt.threads.push((t, arg)),
            Err(st) => {
                // SAFETY: the thread did not start: the argument is still ours.
                drop(unsafe { Box::from_raw(arg) });
                rt.stop();
                return Err(st);
            }
        }
        if shared.listener.lock().is_some() {
            let arg = Box::into_raw(Box::new(ThreadArg {
                shared: shared.clone(),
                index: 0,
            }));
            match SysThread::spawn(super::acceptor::acceptor_main, arg.cast()) {
                Ok(t) => rt.acceptor = Some((t, arg)),
                Err(st) => {
                    // SAFETY: as above.
                    drop(unsafe { Box::from_raw(arg) });
                    rt.stop();
                    return Err(st);
                }
            }
        }
        Ok(rt)
    }

    /// The port the listener is bound to (0 without a listener).
    pub fn listen_port(&self) -> u16 {
        u16::try_from(self.shared.listen_port.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// Runs `f` on the LNet layer and engine under the engine lock, then performs what it
    /// asked for. PASSIVE_LEVEL.
    pub fn with<R>(&self, f: impl FnOnce(&mut TdiLnet, &mut TdiEngine, Time) -> R) -> R {
        let now = self.shared.now();
        let r = {
            let mut core = self.shared.core.lock();
            let c = &mut *core;
            let r = f(&mut c.lnet, &mut c.engine, now);
            drain(&self.shared, c, now);
            r
        };
        start_pending_connects(&self.shared);
        r
    }

    /// Makes a kernel LNet the upper layer: from now on engine events go to a [`Forwarder`]
    /// and LNet's callbacks are called through `target`. `STATUS_DEVICE_BUSY` when one is
    /// already bound. Returns the shared state the entry points queue their requests on.
    /// PASSIVE_LEVEL.
    pub fn bind_external(&self, target: Arc<dyn UpcallTarget>) -> Result<Arc<Shared>, NTSTATUS> {
        if self.shared.stop.load(Ordering::Acquire) {
            return Err(STATUS_DEVICE_NOT_READY);
        }
        let mut core = self.shared.core.lock();
        if core.external.is_some() {
            return Err(STATUS_DEVICE_BUSY);
        }
        core.external = Some(Forwarder::new());
        // Requests left by a previous binding after its last dereference broke the contract;
        // they are not applied to this one.
        {
            let mut q = self.shared.upper_requests.lock();
            q.clear();
            // Room for a burst without allocating at DISPATCH_LEVEL (the queue keeps what it
            // grows to; failure here only means the first submits allocate).
            let _ = q.try_reserve(UPPER_QUEUE_RESERVE);
        }
        *self.shared.upper_target.lock() = Some(target);
        Ok(self.shared.clone())
    }

    /// Whether a kernel LNet is bound.
    pub fn external_bound(&self) -> bool {
        self.shared.core.lock().external.is_some()
    }

    /// The bound forwarder's state, read under the engine lock (tests, diagnostics).
    pub fn with_external<R>(&self, f: impl FnOnce(Option<&Forwarder>) -> R) -> R {
        let core = self.shared.core.lock();
        f(core.external.as_ref())
    }

    /// The next LNet event (pings answered, PUTs received, …).
    pub fn poll_event(&self) -> Option<LnetEvent> {
        self.shared.events.lock().pop_front()
    }

    pub fn stats(&self) -> &TdiStats {
        &self.shared.stats
    }

    /// Connections the runtime still holds (engine-known and not yet released).
    pub fn conn_count(&self) -> usize {
        self.shared.core.lock().conns.len()
    }

    /// The addresses of every connection the runtime still holds, established or not (a port
    /// or address not known yet is 0): `(local_ip, local_port, peer_ip, peer_port)`, host order.
    pub fn conn_addrs(&self) -> Vec<ConnAddrs> {
        let core = self.shared.core.lock();
        let mut v = Vec::new();
        if v.try_reserve(core.conns.len()).is_ok() {
            for c in core.conns.values() {
                let (local_ip, local_port) = unpack_addr(c.local.load(Ordering::Acquire));
                let (peer_ip, peer_port) = unpack_addr(c.peer.load(Ordering::Acquire));
                v.push(ConnAddrs {
                    local_ip,
                    local_port,
                    peer_ip,
                    peer_port,
                });
            }
        }
        v
    }

    /// Shuts down: stops accepting, closes every connection through the engine, waits (bounded)
    /// for them to be released, stops the threads, closes the listener and fails the LNet
    /// operations that can no longer complete. PASSIVE_LEVEL. The report says whether anything
    /// was left ([`TdiStopReport::check`]).
    pub fn stop(mut self) -> TdiStopReport {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> TdiStopReport {
        let shared = self.shared.clone();
        // 1. No new connections.
        let listener = shared.listener.lock().clone();
        if let Some(l) = listener.as_ref() {
            l.stop_accepting();
        }
        if let Some((t, arg)) = self.acceptor.take() {
            shared.stop_acceptor.store(true, Ordering::Release);
            if let Some(l) = listener.as_ref() {
                l.event.set();
            }
            t.join();
            // SAFETY: the thread ended: its argument is ours again.
            drop(unsafe { Box::from_raw(arg as *mut ThreadArg) });
        }
        // 2. Close everything through the engine and let the schedulers tear down.
        {
            let now = shared.now();
            let mut core = shared.core.lock();
            let c = &mut *core;
            c.engine.shutdown(now);
            drain(&shared, c, now);
        }
        for _ in 0..2000 {
            if shared.core.lock().conns.is_empty() {
                break;
            }
            obj::sleep_ms(5);
        }
        // 3. Stop the schedulers.
        shared.stop.store(true, Ordering::Release);
        for s in &shared.scheds {
            s.event.set();
        }
        for (t, arg) in self.threads.drain(..) {
            t.join();
            // SAFETY: the thread ended: its argument is ours again.
            drop(unsafe { Box::from_raw(arg as *mut ThreadArg) });
        }
        // Whatever the schedulers did not finish (bounded wait above) is torn down here.
        let left: Vec<Arc<Conn>> = {
            let core = shared.core.lock();
            core.conns.values().cloned().collect()
        };
        let forced_teardowns = left.len();
        for c in left {
            teardown(&shared, &c);
        }
        for s in &shared.scheds {
            while let Some(c) = s.runq.lock().pop_front() {
                drop(c);
            }
        }
        // 4. The listener and its spare children.
        //    It stays in `shared.listener` while it closes: accepts completing meanwhile find
        //    it there (`accept_complete`) and are closed with the rest.
        let l = shared.listener.lock().clone();
        if let Some(l) = l {
            l.close();
        }
        drop(shared.listener.lock().take());
        // 5. A bound kernel LNet: what the engine never answered is finalized (cancelled), and
        //    every upcall still queued is delivered here, on the stopping thread (the
        //    schedulers are gone), with no lock held. Requests queued after the schedulers
        //    stopped are refused by `submit`; those queued before are cancelled.
        finish_external(&shared);
        // 6. LNet operations whose answer can no longer come fail now (each completes once).
        let mut core = shared.core.lock();
        let c = &mut *core;
        let lnet_ops_failed = c.lnet.ops_open();
        c.lnet.shutdown();
        while c.lnet.poll_event().is_some() {}
        TdiStopReport {
            stats: c.engine.stats,
            idle: c.engine.is_idle(),
            lnet_ops_failed,
            lnet_ops_open: c.lnet.ops_open(),
            forced_teardowns,
        }
    }
}

impl Drop for TdiRuntime {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.acceptor.is_some() {
            let _ = self.stop_inner();
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Engine plumbing (PASSIVE_LEVEL, engine lock held)

/// Runs events into the upper layer (the bound kernel LNet's forwarder, or the runtime's own
/// LNet layer) and performs actions until the engine is quiet.
pub fn drain(shared: &Shared, core: &mut Core, now: Time) {
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(ev) = core.engine.poll_event() {
            moved = true;
            match core.external.as_mut() {
                Some(f) => f.handle_event(now, ev),
                None => core.lnet.handle_event(&mut core.engine, now, ev),
            }
        }
        while let Some(e) = core.lnet.poll_event() {
            shared.push_event(e);
        }
        if let Some(f) = core.external.as_mut() {
            let mut queued = false;
            while let Some(u) = f.poll_upcall() {
                let mut q = shared.upcalls.lock();
                if q.try_reserve(1).is_err() {
                    // Kept in the forwarder: delivered once memory allows (next drain).
                    drop(q);
                    f.unpoll_upcall(u);
                    break;
                }
                q.push_back(u);
                queued = true;
            }
            if queued {
                shared.upper_pending.store(true, Ordering::Release);
                if let Some(s) = shared.scheds.first() {
                    s.event.set();
                }
            }
        }
        while let Some(a) = core.engine.poll_action() {
            moved = true;
            act(core, a);
        }
        while let Some(id) = core.release_now.pop() {
            moved = true;
            core.engine.release(now, id);
        }
        if !moved {
            return;
        }
    }
}

fn act(core: &mut Core, a: Action) {
    match a {
        Action::Connect {
            conn,
            peer_ip,
            port,
            ..
        } => core.pending_connects.push((conn, peer_ip, port)),
        Action::Send { conn } | Action::Receive { conn } | Action::Configure { conn } => {
            // Configure: the emulated and the real transport default to what socklnd wants for
            // the tests here; TCP options via IOCTL_TCP_SET_INFORMATION_EX are not issued yet.
            if let Some(c) = core.conns.get(&conn) {
                c.wake();
            }
        }
        Action::Close { conn, flush } => {
            if let Some(c) = core.conns.get(&conn) {
                if flush {
                    c.set(F_CLOSE | F_FLUSH);
                } else {
                    c.clear(F_FLUSH);
                    c.set(F_CLOSE);
                }
                c.wake();
            } else if let Some(i) = core.pending_connects.iter().position(|p| p.0 == conn) {
                // Closed (shutdown, a timeout) before its connect was started: nothing was
                // opened, so it is released at once.
                core.pending_connects.remove(i);
                core.release_now.push(conn);
            }
        }
    }
}

fn next_port(shared: &Shared) -> u16 {
    let p = shared
        .next_port
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
            Some(if p <= 512 { 1023 } else { p.saturating_sub(1) })
        })
        .unwrap_or(1023);
    u16::try_from(p).unwrap_or(1023)
}

/// Starts the connects the engine asked for (outside the engine lock: object creation blocks).
///
/// Each connection enters the table in the critical section that takes it off the pending
/// list, so an `Action::Close` the engine issues at any later point finds it (one issued
/// earlier is handled by `act`). A connection closed before its objects were opened is not
/// opened at all: its first pass tears it down and releases it.
pub fn start_pending_connects(shared: &Arc<Shared>) {
    let started: Vec<Arc<Conn>> = {
        let mut core = shared.core.lock();
        let c = &mut *core;
        let list = core::mem::take(&mut c.pending_connects);
        let mut started = Vec::new();
        for (id, ip, port) in list {
            let conn = Conn::new(shared.clone(), Kind::Active, shared.pick_sched());
            conn.id.store(id.0, Ordering::Release);
            conn.target.store(pack_addr(ip, port), Ordering::Release);
            conn.set(F_REGISTERED);
            if started.try_reserve(1).is_err() {
                // No memory for the list: the connect fails (and is released by its pass).
                conn.connect_status
                    .store(STATUS_INSUFFICIENT_RESOURCES, Ordering::Release);
                conn.set(F_CONNECT_DONE);
                c.conns.insert(id, conn.clone());
                conn.activate();
                continue;
            }
            c.conns.insert(id, conn.clone());
            started.push(conn);
        }
        started
    };
    for conn in started {
        shared.stats.connects.fetch_add(1, Ordering::Relaxed);
        if !conn.has(F_CLOSE) {
            if let Err(st) = open_active(shared, &conn) {
                conn.connect_status.store(st, Ordering::Release);
                conn.set(F_CONNECT_DONE);
            }
        }
        conn.activate();
    }
}

/// Creates an active connection's objects from the next free privileged port and submits the
/// `TDI_CONNECT`.
fn open_active(shared: &Arc<Shared>, conn: &Arc<Conn>) -> Result<(), NTSTATUS> {
    let (ip, port) = unpack_addr(conn.target.load(Ordering::Acquire));
    let ctx = Arc::as_ptr(conn) as *mut c_void;
    let mut last = STATUS_ADDRESS_ALREADY_EXISTS;
    for _ in 0..512 {
        let lport = next_port(shared);
        let addr = match obj::open_address(shared.cfg.local_ip, lport) {
            Ok(a) => a,
            Err(st) if st == STATUS_ADDRESS_ALREADY_EXISTS || st == STATUS_SHARING_VIOLATION => {
                shared
                    .stats
                    .connect_port_retries
                    .fetch_add(1, Ordering::Relaxed);
                last = st;
                continue;
            }
            Err(st) => return Err(st),
        };
        let st = register_receive_handlers(&addr, on_error_conn as *mut c_void, ctx);
        if !nt_success(st) {
            obj::close(addr);
            return Err(st);
        }
        let cobj = match obj::open_connection(ctx) {
            Ok(c) => c,
            Err(st) => {
                obj::close(addr);
                return Err(st);
            }
        };
        let st = obj::associate(&cobj, addr.handle);
        if !nt_success(st) {
            obj::close(cobj);
            obj::close(addr);
            return Err(st);
        }
        conn.local
            .store(pack_addr(shared.cfg.local_ip, lport), Ordering::Release);
        {
            let mut o = conn.objs.lock();
            o.conn = Some(cobj);
            o.addr = Some(addr);
        }
        if submit_connect(conn, ip, port, shared.cfg.connect_timeout_ms) {
            return Ok(());
        }
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    Err(last)
}

/// Closes a connection's transport objects in order: disconnect (graceful unless the peer is
/// gone), disassociate, close the connection object (its pending requests complete), wait for
/// every request to come back, close its own address object.
fn close_objects(conn: &Arc<Conn>, graceful: bool) {
    let (cobj, aobj) = {
        let mut o = conn.objs.lock();
        (o.conn.take(), o.addr.take())
    };
    if let Some(c) = cobj {
        // A connect still at the transport is cancelled and waited for first: the endpoint
        // is not inactive while it is pending (TDI_DISASSOCIATE_ADDRESS), and whether it
        // ends connected decides the disconnect below.
        cancel_connect(conn);
        // A connected endpoint is always disconnected before it is disassociated
        // (TDI_DISASSOCIATE_ADDRESS is for inactive connections), including after the peer's
        // graceful close: TDI_DISCONNECT also acknowledges a disconnect indication from the
        // remote node ("Disconnecting an Endpoint-to-Endpoint Connection"). Only an abortive
        // indication leaves nothing to do. A connection that failed otherwise (a send error)
        // is aborted.
        // Connected, or its connect completed successfully and no pass has seen it yet.
        let connected = conn.has(F_CONNECTED)
            || (conn.has(F_CONNECT_DONE)
                && nt_success(conn.connect_status.load(Ordering::Acquire)));
        if connected && !conn.has(F_PEER_ABORTED) {
            let failed = conn.has(F_PEER_GONE) && !conn.has(F_PEER_RELEASED);
            if graceful && !failed {
                // Bounded: after the timeout the release is cancelled and the connection
                // aborted.
                let (_, timed_out) =
                    obj::disconnect_release_bounded(&c, conn.shared.cfg.disconnect_timeout_ms);
                if timed_out {
                    conn.shared
                        .stats
                        .disconnects_timed_out
                        .fetch_add(1, Ordering::Relaxed);
                }
            } else {
                let _ = obj::disconnect(&c, TDI_DISCONNECT_ABORT);
            }
        }
        let _ = obj::disassociate(&c);
        // The handle goes first (the transport's cleanup completes what is pending); our
        // reference to the file object is dropped only once every IRP we sent for it is back.
        obj::close_after(c, || drain_inflight(conn));
    } else {
        let _ = drain_inflight(conn);
    }
    if let Some(a) = aobj {
        obj::close(a);
    }
    let accept_irp = core::mem::take(&mut conn.objs.lock().accept_irp);
    if accept_irp != 0 {
        // SAFETY: a preallocated accept IRP never handed to the transport.
        unsafe { IoFreeIrp(accept_irp as *mut IRP) };
    }
    conn.rx.clear();
}

/// Waits (up to 20 s) until no IRP of the connection is outstanding at the transport; false if
/// some still are.
fn drain_inflight(conn: &Conn) -> bool {
    for _ in 0..20_000 {
        if conn.inflight.load(Ordering::Acquire) == 0 {
            return true;
        }
        obj::sleep_ms(1);
    }
    false
}

/// Tears a connection down and releases it to the engine. PASSIVE_LEVEL, engine lock not held.
pub fn teardown(shared: &Shared, conn: &Arc<Conn>) {
    if conn.set(F_TORN) & F_TORN != 0 {
        return;
    }
    close_objects(conn, true);
    shared.stats.teardowns.fetch_add(1, Ordering::Relaxed);
    let id = conn.engine_id();
    let now = shared.now();
    let mut core = shared.core.lock();
    let c = &mut *core;
    c.engine.release(now, id);
    c.conns.remove(&id);
    drain(shared, c, now);
}

/// Tears down a connection the engine never knew (a refused or failed child).
pub fn discard(conn: &Arc<Conn>) {
    conn.set(F_TORN);
    close_objects(conn, false);
}

// ------------------------------------------------------------------------------------------------
// Scheduler

unsafe extern "system" fn scheduler_main(context: *mut c_void) {
    // SAFETY: as for this routine.
    unsafe { scheduler_thread(context) };
    // The body's values are all dropped: the thread ends itself.
    obj::terminate_system_thread();
}

/// The scheduler thread's body (everything it owns lives and dies in here).
///
/// # Safety
/// `context` is the `ThreadArg` boxed by `start`, freed only after this thread is joined.
unsafe fn scheduler_thread(context: *mut c_void) {
    // SAFETY: the ThreadArg boxed by `start`, freed only after this thread is joined.
    let arg = unsafe { &*(context as *const ThreadArg) };
    // One scheduler per CPU: scheduler i runs on processor i of group 0 (modulo the active
    // count, for a configured count above it), so a connection's work stays on one CPU's caches.
    // SAFETY: allowed at PASSIVE_LEVEL.
    let cpus = unsafe { KeQueryActiveProcessorCountEx(0) }.clamp(1, usize::BITS);
    let cpu = u32::try_from(arg.index)
        .unwrap_or(0)
        .checked_rem(cpus)
        .unwrap_or(0);
    let mask: KAFFINITY = 1usize.checked_shl(cpu).unwrap_or(1);
    // SAFETY: allowed at PASSIVE_LEVEL; a mask naming no active processor has no effect.
    let previous = unsafe { KeSetSystemAffinityThreadEx(mask) };
    scheduler_loop(arg);
    // SAFETY: restores what KeSetSystemAffinityThreadEx returned, at PASSIVE_LEVEL.
    unsafe { KeRevertToUserAffinityThreadEx(previous) };
}

fn scheduler_loop(arg: &ThreadArg) {
    let shared = &arg.shared;
    let Some(me) = shared.scheds.get(arg.index) else {
        return;
    };
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if arg.index == 0 {
            upper_work(shared);
        }
        let next = me.runq.lock().pop_front();
        match next {
            Some(conn) => process(shared, &conn),
            None => {
                if shared.sweep.swap(false, Ordering::AcqRel) {
                    let all: Vec<Arc<Conn>> = shared.core.lock().conns.values().cloned().collect();
                    for c in all {
                        c.wake.begin_pass();
                        c.wake();
                    }
                }
                me.event.wait(Some(50));
            }
        }
    }
}

/// How often the reaper runs the engine's timers (they have second granularity; LNet
/// operation timeouts are the finest, in milliseconds).
const REAPER_PERIOD_MS: u32 = 50;

unsafe extern "system" fn reaper_main(context: *mut c_void) {
    // SAFETY: as for this routine.
    unsafe { reaper_thread(context) };
    // The body's values are all dropped: the thread ends itself.
    obj::terminate_system_thread();
}

/// The reaper thread's body.
///
/// # Safety
/// `context` is the `ThreadArg` boxed by `start`, freed only after this thread is joined.
unsafe fn reaper_thread(context: *mut c_void) {
    // SAFETY: the ThreadArg boxed by `start`, freed only after this thread is joined.
    let arg = unsafe { &*(context as *const ThreadArg) };
    let shared = &arg.shared;
    while !shared.stop.load(Ordering::Acquire) {
        timers(shared);
        obj::sleep_ms(REAPER_PERIOD_MS);
    }
}

/// Requests the bound kernel LNet can queue before `submit` first allocates.
const UPPER_QUEUE_RESERVE: usize = 256;

/// Scheduler 0's share of the bound kernel LNet: applies its queued requests to the engine,
/// then delivers the queued upcalls with no lock held. PASSIVE_LEVEL.
fn upper_work(shared: &Arc<Shared>) {
    if !shared.upper_pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let applied = {
        let now = shared.now();
        let mut core = shared.core.lock();
        let c = &mut *core;
        // Unbound (or unbinding): requests stay queued for `unbind_external`, which finalizes
        // them.
        match c.external.as_mut() {
            Some(f) => {
                // One at a time, so that the queue keeps its capacity: once it has grown to the
                // load, an entry point's `submit` does not allocate.
                let mut any = false;
                loop {
                    let next = shared.upper_requests.lock().pop_front();
                    let Some(r) = next else {
                        break;
                    };
                    any = true;
                    f.apply(&mut c.engine, now, r);
                }
                drain(shared, c, now);
                any
            }
            None => false,
        }
    };
    if applied {
        start_pending_connects(shared);
    }
    deliver_upcalls(shared);
}

/// Delivers every queued upcall to the bound kernel LNet, one at a time, with no lock held. A
/// refused `Parse` becomes a `Reject` request (applied on the next pass).
fn deliver_upcalls(shared: &Shared) {
    let target = shared.upper_target.lock().clone();
    loop {
        shared.upcalls_delivering.fetch_add(1, Ordering::AcqRel);
        let next = shared.upcalls.lock().pop_front();
        let Some(up) = next else {
            shared.upcalls_delivering.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let parse = match &up {
            Upcall::Parse { handle, .. } => Some(*handle),
            _ => None,
        };
        let accepted = match target.as_ref() {
            Some(t) => t.deliver(up),
            None => true,
        };
        shared.upcalls_delivering.fetch_sub(1, Ordering::AcqRel);
        if let (Some(handle), false) = (parse, accepted) {
            if shared.submit(Request::Reject { handle }).is_err() {
                // Stopping: the engine closes the connection anyway.
            }
        }
    }
}

/// Whether the bound kernel LNet has nothing left inside the runtime: no message of its in the
/// engine, no request or upcall queued or being delivered.
fn external_quiet(shared: &Shared) -> bool {
    let inside = shared
        .core
        .lock()
        .external
        .as_ref()
        .map_or(0, |f| f.outstanding());
    inside == 0
        && shared.upper_requests.lock().is_empty()
        && shared.upcalls.lock().is_empty()
        && shared.upcalls_delivering.load(Ordering::Acquire) == 0
}

/// Releases the bound kernel LNet (its last `InterfaceDereference`; PASSIVE_LEVEL, not from
/// inside one of its callbacks). `Parse` handles it did not answer are discarded; while any of
/// its messages is still inside the engine, the connections are closed (then, if that is not
/// enough, the peers deleted, which fails sends waiting for a connection) so that every message
/// is finalized, and delivered, before this returns. Afterwards the runtime's own LNet layer
/// is the upper layer again. Returns the messages that had to be cancelled by force (0 unless
/// the engine kept one beyond the waits).
pub fn unbind_external(shared: &Arc<Shared>) -> usize {
    if shared.stop.load(Ordering::Acquire) {
        // The runtime stopped: `stop` finalized and delivered everything already.
        return 0;
    }
    for step in 0..3u32 {
        {
            let now = shared.now();
            let mut core = shared.core.lock();
            let c = &mut *core;
            let Some(f) = c.external.as_mut() else {
                return 0;
            };
            f.discard_parsed(&mut c.engine, now);
            if f.outstanding() > 0 {
                match step {
                    0 => {}
                    1 => {
                        c.engine.close_conns(now, None, None);
                    }
                    _ => {
                        c.engine.del_peer(now, None, None);
                    }
                }
            }
            drain(shared, c, now);
        }
        shared.upper_pending.store(true, Ordering::Release);
        if let Some(s) = shared.scheds.first() {
            s.event.set();
        }
        // Messages in flight get a second to complete on their own; then the connections are
        // cut (5 s for them to be released), then the peers deleted (30 s: a connection's
        // teardown waits up to 20 s for its requests to come back from the transport).
        let rounds = match step {
            0 => 200,
            1 => 1000,
            _ => 6000,
        };
        for _ in 0..rounds {
            if external_quiet(shared) {
                break;
            }
            obj::sleep_ms(5);
        }
        if external_quiet(shared) {
            break;
        }
    }
    // Detach the forwarder: from here on engine events go to the runtime's own LNet layer. A
    // `Parse` it produced since the last discard is discarded too (still queued: dropped below;
    // being delivered right now: LNet's Recv for it is finalized `Cancelled` below).
    let mut f = {
        let now = shared.now();
        let mut core = shared.core.lock();
        let c = &mut *core;
        let Some(mut f) = c.external.take() else {
            return 0;
        };
        f.discard_parsed(&mut c.engine, now);
        drain(shared, c, now);
        f
    };
    start_pending_connects(shared);
    shared
        .upcalls
        .lock()
        .retain(|u| !matches!(u, Upcall::Parse { .. }));
    // What the engine still holds (0 unless the waits above were not enough) is cancelled;
    // see docs/nal-interface.md (remaining work).
    let forced = f.outstanding();
    f.cancel_all();
    // Finalize everything left and have scheduler 0 deliver it (callbacks come from scheduler
    // threads only), until no callback is in progress anywhere (scheduler 0 may be inside one,
    // and LNet may call an entry point from it). Scheduler 0 leaves the requests alone while
    // nothing is bound: they are cancelled here.
    for _ in 0..10_000 {
        let reqs = core::mem::take(&mut *shared.upper_requests.lock());
        for r in reqs {
            f.cancel_request(r);
        }
        while let Some(u) = f.poll_upcall() {
            let mut q = shared.upcalls.lock();
            if q.try_reserve(1).is_err() {
                drop(q);
                f.unpoll_upcall(u);
                break;
            }
            q.push_back(u);
        }
        if shared.stop.load(Ordering::Acquire) {
            // The schedulers are leaving (a stop running at the same time).
            deliver_upcalls(shared);
        } else {
            shared.upper_pending.store(true, Ordering::Release);
            if let Some(s) = shared.scheds.first() {
                s.event.set();
            }
        }
        if shared.upcalls_delivering.load(Ordering::Acquire) == 0
            && shared.upper_requests.lock().is_empty()
            && shared.upcalls.lock().is_empty()
        {
            break;
        }
        obj::sleep_ms(1);
    }
    // Scheduler 0 did not get to it in 10 s (LNet broke the rule and dereferenced from inside
    // a callback, which blocks scheduler 0 here): delivered on this thread rather than lost.
    deliver_upcalls(shared);
    *shared.upper_target.lock() = None;
    forced
}

/// Moves the forwarder's upcalls to the delivery queue (stop and forced unbind).
fn move_upcalls(shared: &Shared) {
    let mut core = shared.core.lock();
    if let Some(f) = core.external.as_mut() {
        while let Some(u) = f.poll_upcall() {
            let mut q = shared.upcalls.lock();
            if q.try_reserve(1).is_err() {
                f.unpoll_upcall(u);
                break;
            }
            q.push_back(u);
        }
    }
}

/// The stop's end for a bound kernel LNet (schedulers joined, engine shut down): queued
/// requests are cancelled (each `Send`/`Recv` finalized once), what the engine never answered
/// is cancelled, and every upcall is delivered on this thread, with no lock held. The binding
/// stays (LNet still holds its reference); `submit` refuses from now on.
fn finish_external(shared: &Shared) {
    let reqs = core::mem::take(&mut *shared.upper_requests.lock());
    {
        let now = shared.now();
        let mut core = shared.core.lock();
        let c = &mut *core;
        let Some(f) = c.external.as_mut() else {
            return;
        };
        for r in reqs {
            f.cancel_request(r);
        }
        // The engine is shut down: drain whatever it still produces, then cancel the rest.
        drain(shared, c, now);
        if let Some(f) = c.external.as_mut() {
            f.cancel_all();
        }
    }
    move_upcalls(shared);
    deliver_upcalls(shared);
    // No callback after the stop.
    *shared.upper_target.lock() = None;
}

fn timers(shared: &Arc<Shared>) {
    let now = shared.now();
    {
        let mut core = shared.core.lock();
        let c = &mut *core;
        if c.engine.poll_timeout().is_some_and(|t| now >= t) || c.lnet.ops_open() > 0 {
            c.engine.handle_timeout(now);
            c.lnet.handle_timeout(now);
            drain(shared, c, now);
        }
    }
    start_pending_connects(shared);
}

/// One pass over a connection: results of completions, received data into the engine, sends,
/// closing.
fn process(shared: &Arc<Shared>, conn: &Arc<Conn>) {
    conn.wake.begin_pass();
    if conn.has(F_TORN) {
        return;
    }
    let id = conn.engine_id();
    // Connect completion.
    if conn.clear(F_CONNECT_DONE) & F_CONNECT_DONE != 0 {
        connect_done(shared, conn, id);
    }
    // A send finished by its completion routine (HLD step 11): commit it here at PASSIVE_LEVEL.
    if conn.clear(F_SEND_DONE) & F_SEND_DONE != 0 {
        let (st, n) = unpack_result(conn.send_result.load(Ordering::Acquire));
        conn.clear(F_SEND_INFLIGHT);
        finish_send(shared, conn, id, st, n);
    }
    if conn.has(F_CONNECTED) {
        pump_rx(shared, conn, id);
        pump_tx(shared, conn, id);
    }
    // Closing: once nothing is in flight (a flush first writes what the engine still offers).
    if conn.has(F_CLOSE) && !conn.has(F_FLUSH) {
        if conn.has(F_SEND_INFLIGHT) {
            // A send that may never complete (peer not reading) is cut short by an abortive
            // disconnect; its completion brings us back here.
            if conn.set(F_ABORT_SENT) & F_ABORT_SENT == 0 {
                let target = conn
                    .objs
                    .lock()
                    .conn
                    .as_ref()
                    .map(|o| (o.device, o.file, o.handle));
                if let Some((device, file, handle)) = target {
                    let o = obj::TdiObject {
                        device,
                        file,
                        handle,
                    };
                    let _ = obj::disconnect(&o, TDI_DISCONNECT_ABORT);
                }
            }
            return;
        }
        teardown(shared, conn);
    }
    start_pending_connects(shared);
}

fn connect_done(shared: &Arc<Shared>, conn: &Arc<Conn>, id: ConnId) {
    let st = conn.connect_status.load(Ordering::Acquire);
    let now = shared.now();
    if nt_success(st) {
        conn.set(F_CONNECTED);
        let (lip, lport) = unpack_addr(conn.local.load(Ordering::Acquire));
        let (pip, pport) = unpack_addr(conn.target.load(Ordering::Acquire));
        conn.peer.store(pack_addr(pip, pport), Ordering::Release);
        let addrs = ConnAddrs {
            local_ip: lip,
            local_port: lport,
            peer_ip: pip,
            peer_port: pport,
        };
        let mut core = shared.core.lock();
        let c = &mut *core;
        c.engine.connected(now, id, addrs);
        drain(shared, c, now);
        return;
    }
    // The 4-tuple was in use: close and retry from the next port.
    if st == STATUS_ADDRESS_ALREADY_EXISTS && conn.attempts.fetch_add(1, Ordering::AcqRel) < 16 {
        shared
            .stats
            .connect_port_retries
            .fetch_add(1, Ordering::Relaxed);
        close_objects(conn, false);
        match open_active(shared, conn) {
            Ok(()) => return,
            Err(e) => {
                conn.connect_status.store(e, Ordering::Release);
            }
        }
    }
    let st = conn.connect_status.load(Ordering::Acquire);
    let mut core = shared.core.lock();
    let c = &mut *core;
    c.engine.connect_failed(now, id, errno_of_status(st));
    drain(shared, c, now);
}

fn finish_send(shared: &Shared, conn: &Arc<Conn>, id: ConnId, st: NTSTATUS, n: u32) {
    let now = shared.now();
    let mut core = shared.core.lock();
    let c = &mut *core;
    if nt_success(st) {
        c.engine.tx_commit(now, id, n as usize);
    } else {
        conn.set(F_PEER_GONE);
        c.engine.io_error(now, id, errno_of_status(st));
    }
    drain(shared, c, now);
}

/// Moves queued TSDU data into the engine, reports the stream's end, pulls withheld data.
fn pump_rx(shared: &Arc<Shared>, conn: &Arc<Conn>, id: ConnId) {
    let now = shared.now();
    let mut stalled = false;
    {
        let mut core = shared.core.lock();
        let c = &mut *core;
        'entries: while let Some(mut e) = conn.rx.pop() {
            loop {
                let data = e.data();
                if data.is_empty() {
                    break;
                }
                let mut buf = c.engine.rx_buffer(id);
                if buf.is_empty() {
                    // The engine waits for the upper layer (or closed): let it answer, retry once.
                    drain(shared, c, now);
                    buf = c.engine.rx_buffer(id);
                }
                let k = buf.len().min(data.len());
                if k == 0 {
                    if conn.rx.unpop(e).is_err() {
                        conn.rx.set_error(12);
                    }
                    stalled = true;
                    break 'entries;
                }
                if let (Some(d), Some(s)) = (buf.get_mut(..k), data.get(..k)) {
                    d.copy_from_slice(s);
                }
                c.engine.rx_commit(now, id, k);
                e.consume(k);
            }
            // `e` dropped here: a retained chained TSDU goes back to the transport.
        }
        let state = conn.rx.state();
        if !stalled && state.entries == 0 && !conn.has(F_EOF_REPORTED) {
            if state.end.error != 0 {
                conn.set(F_EOF_REPORTED | F_PEER_GONE);
                c.engine.io_error(now, id, state.end.error);
            } else if state.end.eof {
                conn.set(F_EOF_REPORTED | F_PEER_GONE);
                c.engine.eof(now, id);
            }
        }
        drain(shared, c, now);
    }
    if conn.rx.take_withheld() {
        post_pull(conn);
    }
}

/// Sends while the transport completes inline (HLD step 10), parks on `STATUS_PENDING`.
fn pump_tx(shared: &Arc<Shared>, conn: &Arc<Conn>, id: ConnId) {
    for _ in 0..16 {
        if conn.has(F_SEND_INFLIGHT) || conn.has(F_PEER_GONE) || conn.has(F_TORN) {
            return;
        }
        if conn.has(F_CLOSE) && !conn.has(F_FLUSH) {
            return;
        }
        let outcome = {
            let mut core = shared.core.lock();
            let mut out: [&[u8]; SEND_MAX_SLICES] = [&[]; SEND_MAX_SLICES];
            let n = core.engine.tx_slices(id, &mut out);
            if n == 0 {
                return;
            }
            conn.set(F_SEND_INFLIGHT);
            // The slices stay valid, unchanged and in place until tx_commit/release even after
            // the lock is dropped and more messages are queued (engine contract): the MDLs
            // describe them directly. The IRP is submitted with the engine lock still held.
            submit_send(conn, out.get(..n).unwrap_or(&[]))
        };
        match outcome {
            SendOutcome::Done(st, bytes) => {
                conn.clear(F_SEND_INFLIGHT);
                finish_send(shared, conn, id, st, bytes);
            }
            SendOutcome::Parked => return,
            SendOutcome::Failed => {
                conn.clear(F_SEND_INFLIGHT);
                let now = shared.now();
                let mut core = shared.core.lock();
                let c = &mut *core;
                c.engine.io_error(now, id, 12);
                drain(shared, c, now);
                return;
            }
        }
    }
    // Fairness: come back for the rest.
    conn.wake();
}
