//! The kernel acceptor (HLD §2.2.1): an address object on the configured port with a
//! `ClientEventConnect` handler and a backlog of pre-created child connection objects already
//! associated with it.
//!
//! 1. `ClientEventConnect` (DISPATCH_LEVEL) takes a free child, records the peer's address,
//!    fills the child's pre-allocated accept IRP (`TdiBuildAccept`), advances it
//!    (`IoSetNextIrpStackLocation`) and returns it with `STATUS_MORE_PROCESSING_REQUIRED`; no
//!    free child: `STATUS_CONNECTION_REFUSED`.
//! 2. The accept completion (DISPATCH_LEVEL) frees the IRP, queues the child on the accepted (or
//!    failed) list and signals the acceptor.
//! 3. The acceptor thread (PASSIVE_LEVEL) hands each accepted child to the engine
//!    (`engine.accepted`), which either adopts it (it gets a scheduler and its first pass) or
//!    refuses it (it is closed), closes failed children, and replenishes the backlog.
//!
//! Children get no handlers of their own: their indications come through the listener's
//! address object, identified by their `ConnectionContext`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::bindings::*;
use super::conn::*;
use super::obj::{self, KEvent, TdiObject};
use super::runtime::{self, Shared, ThreadArg};
use super::sync::{AtomicBool, AtomicUsize, Ordering, SpinLock};
use crate::engine::{ConnAddrs, ConnId};
use crate::kernel::*;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;

/// The listening address object and its children.
pub struct Listener {
    shared: Arc<Shared>,
    addr: SpinLock<Option<TdiObject>>,
    pub ip: u32,
    pub port: u16,
    free: SpinLock<Vec<Arc<Conn>>>,
    accepted: SpinLock<VecDeque<Arc<Conn>>>,
    failed: SpinLock<Vec<Arc<Conn>>>,
    /// Children handed to the transport by `on_connect` whose accept has not completed yet
    /// (changed under the `free` lock when it grows, so `free.len() + accepting_children` is
    /// exact there).
    accepting_children: AtomicUsize,
    pub event: Box<KEvent>,
    accepting: AtomicBool,
}

impl Listener {
    /// Opens the address object, registers the receive-side handlers, creates the backlog and
    /// finally registers `ClientEventConnect`. PASSIVE_LEVEL.
    pub fn open(shared: &Arc<Shared>, ip: u32, port: u16) -> Result<Arc<Listener>, NTSTATUS> {
        let addr = obj::open_address(ip, port)?;
        let (bound_ip, bound_port) = obj::query_address(&addr).unwrap_or((ip, port));
        let l = Arc::new(Listener {
            shared: shared.clone(),
            addr: SpinLock::new(None),
            ip: if bound_ip == 0 { ip } else { bound_ip },
            port: bound_port,
            free: SpinLock::new(Vec::new()),
            accepted: SpinLock::new(VecDeque::new()),
            failed: SpinLock::new(Vec::new()),
            accepting_children: AtomicUsize::new(0),
            event: KEvent::new(true, false),
            accepting: AtomicBool::new(true),
        });
        let st = register_receive_handlers(
            &addr,
            on_error_listener as *mut c_void,
            Arc::as_ptr(&l) as *mut c_void,
        );
        if !nt_success(st) {
            obj::close(addr);
            return Err(st);
        }
        *l.addr.lock() = Some(addr);
        l.replenish();
        let st = {
            let g = l.addr.lock();
            g.as_ref().map(|a| (a.handle, a.file, a.device))
        };
        let Some((handle, file, device)) = st else {
            return Err(STATUS_INVALID_HANDLE);
        };
        let a = TdiObject {
            handle,
            file,
            device,
        };
        let st = obj::set_event_handler(
            &a,
            TDI_EVENT_CONNECT,
            on_connect as *mut c_void,
            Arc::as_ptr(&l) as *mut c_void,
        );
        if !nt_success(st) {
            l.close();
            return Err(st);
        }
        Ok(l)
    }

    fn addr_object(&self) -> Option<TdiObject> {
        self.addr.lock().as_ref().map(|a| TdiObject {
            handle: a.handle,
            file: a.file,
            device: a.device,
        })
    }

    /// Creates children until the backlog is full. PASSIVE_LEVEL.
    pub fn replenish(self: &Arc<Self>) {
        let want = self.shared.cfg.backlog.max(1) as usize;
        for _ in 0..want {
            if self.free.lock().len() >= want || !self.accepting.load(Ordering::Acquire) {
                return;
            }
            match self.new_child() {
                Some(c) => {
                    if let Err(c) = self.add_free(c) {
                        runtime::discard(&c);
                        return;
                    }
                }
                None => return,
            }
        }
    }

    /// Adds a child to the backlog, first making sure that `accepted` and `failed` each have
    /// room, without growing, for every child of the backlog and every accept in flight: a
    /// child leaves `free` in `on_connect` and lands in one of them in `accept_complete`
    /// (DISPATCH_LEVEL), where a failed allocation would lose it with its connection object
    /// still open. `Err` gives the child back when memory is short.
    fn add_free(&self, c: Arc<Conn>) -> Result<(), Arc<Conn>> {
        let mut f = self.free.lock();
        let need = f
            .len()
            .saturating_add(self.accepting_children.load(Ordering::Acquire))
            .saturating_add(1);
        if f.try_reserve(1).is_err()
            || self.accepted.lock().try_reserve(need).is_err()
            || self.failed.lock().try_reserve(need).is_err()
        {
            return Err(c);
        }
        f.push(c);
        Ok(())
    }

    fn new_child(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let shared = &self.shared;
        let a = self.addr_object()?;
        let conn = Conn::new(shared.clone(), Kind::Child, shared.pick_sched());
        let cobj = obj::open_connection(Arc::as_ptr(&conn) as *mut c_void).ok()?;
        if !nt_success(obj::associate(&cobj, a.handle)) {
            obj::close(cobj);
            return None;
        }
        // SAFETY: IRQL <= DISPATCH_LEVEL.
        let irp = unsafe { IoAllocateIrp(cobj.stack_size(), FALSE) };
        if irp.is_null() {
            let _ = obj::disassociate(&cobj);
            obj::close(cobj);
            return None;
        }
        conn.local
            .store(pack_addr(self.ip, self.port), Ordering::Release);
        {
            let mut o = conn.objs.lock();
            o.conn = Some(cobj);
            o.accept_irp = irp as usize;
        }
        Some(conn)
    }

    /// Removes `ClientEventConnect` (PASSIVE_LEVEL): no new connections are offered to us.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
        if let Some(a) = self.addr_object() {
            let _ = obj::set_event_handler(
                &a,
                TDI_EVENT_CONNECT,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            );
        }
    }

    /// Closes the spare children, then the address object. PASSIVE_LEVEL.
    pub fn close(&self) {
        self.stop_accepting();
        // Accepts in flight land in `accepted` or `failed` when they complete (the transport
        // completes or cancels them); wait for them (bounded) so none is missed below.
        for _ in 0..2000 {
            if self.accepting_children.load(Ordering::Acquire) == 0 {
                break;
            }
            obj::sleep_ms(5);
        }
        let spare: Vec<Arc<Conn>> = core::mem::take(&mut *self.free.lock());
        for c in spare {
            runtime::discard(&c);
        }
        loop {
            let next = self.accepted.lock().pop_front();
            match next {
                Some(c) => runtime::discard(&c),
                None => break,
            }
        }
        let failed: Vec<Arc<Conn>> = core::mem::take(&mut *self.failed.lock());
        for c in failed {
            runtime::discard(&c);
        }
        let a = self.addr.lock().take();
        if let Some(a) = a {
            obj::close(a);
        }
    }

    /// Hands accepted children to the engine, closes failed ones, replenishes. PASSIVE_LEVEL.
    fn service(self: &Arc<Self>) {
        loop {
            let next = self.accepted.lock().pop_front();
            let Some(child) = next else { break };
            let (pip, pport) = unpack_addr(child.peer.load(Ordering::Acquire));
            let addrs = ConnAddrs {
                local_ip: self.ip,
                local_port: self.port,
                peer_ip: pip,
                peer_port: pport,
            };
            let shared = &self.shared;
            let now = shared.now();
            let adopted = {
                let mut core = shared.core.lock();
                let c = &mut *core;
                match c.engine.accepted(now, addrs) {
                    Ok(id) => {
                        child.id.store(id.0, Ordering::Release);
                        child.set(F_REGISTERED);
                        c.conns.insert(ConnId(id.0), child.clone());
                        runtime::drain(shared, c, now);
                        true
                    }
                    Err(_) => false,
                }
            };
            if adopted {
                shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                child.activate();
            } else {
                runtime::discard(&child);
            }
        }
        let failed: Vec<Arc<Conn>> = core::mem::take(&mut *self.failed.lock());
        for c in failed {
            runtime::discard(&c);
        }
        self.replenish();
    }
}

/// The acceptor thread.
///
/// # Safety
/// Started by `TdiRuntime::start` with a `ThreadArg` that outlives the thread.
pub unsafe extern "system" fn acceptor_main(context: *mut c_void) {
    // SAFETY: as for this routine.
    unsafe { acceptor_thread(context) };
    // The body's values (the listener reference) are all dropped: the thread ends itself.
    obj::terminate_system_thread();
}

/// The acceptor thread's body (everything it owns lives and dies in here).
///
/// # Safety
/// As for [`acceptor_main`].
unsafe fn acceptor_thread(context: *mut c_void) {
    // SAFETY: the ThreadArg boxed by `TdiRuntime::start`, freed only after this thread ended.
    let arg = unsafe { &*(context as *const ThreadArg) };
    let shared = &arg.shared;
    let Some(l) = shared.listener.lock().clone() else {
        return;
    };
    while !shared.stop_acceptor.load(Ordering::Acquire) {
        l.event.wait(Some(100));
        l.service();
        runtime::start_pending_connects(shared);
    }
}

/// `ClientEventConnect` (DISPATCH_LEVEL).
unsafe extern "system" fn on_connect(
    event_context: *mut c_void,
    remote_len: i32,
    remote: *mut c_void,
    _user_data_len: i32,
    _user_data: *mut c_void,
    _options_len: i32,
    _options: *mut c_void,
    connection_context: *mut CONNECTION_CONTEXT,
    accept_irp: *mut *mut IRP,
) -> NTSTATUS {
    // SAFETY: we registered the listener (kept alive until its address object is closed).
    let l = unsafe { &*(event_context as *const Listener) };
    if !l.accepting.load(Ordering::Acquire) {
        return STATUS_CONNECTION_REFUSED;
    }
    let bytes: &[u8] = if remote.is_null() || remote_len <= 0 {
        &[]
    } else {
        // SAFETY: the transport passes `remote_len` bytes of TRANSPORT_ADDRESS.
        unsafe { core::slice::from_raw_parts(remote as *const u8, remote_len as usize) }
    };
    let Some((ip, port)) = parse_transport_address(bytes) else {
        return STATUS_CONNECTION_REFUSED;
    };
    let popped = {
        let mut f = l.free.lock();
        let c = f.pop();
        if c.is_some() {
            l.accepting_children.fetch_add(1, Ordering::AcqRel);
        }
        c
    };
    let Some(child) = popped else {
        l.shared
            .stats
            .refused_no_child
            .fetch_add(1, Ordering::Relaxed);
        l.event.set();
        return STATUS_CONNECTION_REFUSED;
    };
    let (irp, target) = {
        let mut o = child.objs.lock();
        let irp = core::mem::take(&mut o.accept_irp) as *mut IRP;
        (irp, o.conn.as_ref().map(|c| (c.device, c.file)))
    };
    let Some((device, file)) = target.filter(|_| !irp.is_null()) else {
        // Should not happen; put the child aside for the acceptor to close.
        l.park(child);
        l.event.set();
        return STATUS_CONNECTION_REFUSED;
    };
    child.peer.store(pack_addr(ip, port), Ordering::Release);
    child.io_start();
    let ctx = Arc::into_raw(child.clone());
    // SAFETY: the child's own pre-allocated IRP, sized for its device; the transport treats an
    // IRP returned here as passed to IoCallDriver, so the location is advanced.
    unsafe {
        tdi_build_accept(
            irp,
            device,
            file,
            Some(accept_complete),
            ctx as *mut c_void,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        IoSetNextIrpStackLocation(irp);
        *connection_context = Arc::as_ptr(&child) as *mut c_void;
        *accept_irp = irp;
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

unsafe extern "system" fn accept_complete(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the reference taken with Arc::into_raw in on_connect.
    let child = unsafe { Arc::from_raw(context as *const Conn) };
    // SAFETY: completed, ours again; freed once.
    let status = unsafe {
        let s = (*irp).IoStatus.u.Status;
        IoFreeIrp(irp);
        s
    };
    child.io_end();
    // The listener stays in `shared.listener` until `Listener::close` has waited for the
    // accepts in flight, so it is there.
    let listener = child.shared.listener.lock().clone();
    if let Some(l) = listener {
        if nt_success(status) {
            child.set(F_CONNECTED);
            let mut q = l.accepted.lock();
            if q.try_reserve(1).is_ok() {
                q.push_back(child);
                drop(q);
                l.accepting_children.fetch_sub(1, Ordering::AcqRel);
            } else {
                // Not reached: `add_free` reserved room for it. Failed, then, rather than lost.
                drop(q);
                l.park(child);
            }
        } else {
            l.park(child);
        }
        l.event.set();
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

impl Listener {
    /// Puts a child whose accept failed (or never started) on the `failed` list, for the
    /// acceptor thread to close its objects, and ends its accept (any IRQL <= DISPATCH_LEVEL;
    /// `add_free` reserved the room, so this does not allocate).
    fn park(&self, child: Arc<Conn>) {
        let mut f = self.failed.lock();
        if f.try_reserve(1).is_ok() {
            f.push(child);
        } else {
            // Not reached (see `add_free`). Dropping the last reference here would leave its
            // connection object open with a dangling context, so the reference is kept
            // (leaked) and counted instead.
            self.shared
                .stats
                .accept_children_leaked
                .fetch_add(1, Ordering::Relaxed);
            core::mem::forget(child);
        }
        drop(f);
        self.accepting_children.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `ClientEventError` on the listener's address object: counted (per-connection failures come
/// as `ClientEventDisconnect` with `TDI_DISCONNECT_ABORT`).
unsafe extern "system" fn on_error_listener(
    event_context: *mut c_void,
    _status: NTSTATUS,
) -> NTSTATUS {
    if !event_context.is_null() {
        // SAFETY: the listener, alive while its address object is open.
        let l = unsafe { &*(event_context as *const Listener) };
        l.shared.stats.error_events.fetch_add(1, Ordering::Relaxed);
    }
    STATUS_SUCCESS
}
