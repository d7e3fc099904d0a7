//! A TDI connection as the runtime keeps it, and everything that happens to it at
//! DISPATCH_LEVEL: the receive handlers (HLD §2.3.1), receive IRPs, the send IRP with its
//! two-reference context (HLD §2.3.2), connect/accept completions.
//!
//! IRQL rule: code here that runs at DISPATCH_LEVEL (every `extern "system"` handler and
//! completion routine) never touches the engine, never blocks, never waits. It copies or retains
//! data, records results in atomics or under a spin lock, and wakes the connection's scheduler.
//! The engine is driven only by the scheduler threads at PASSIVE_LEVEL (`super::runtime`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::bindings::*;
use super::falloc::PoolBox;
use super::obj::TdiObject;
use super::runtime::Shared;
use super::sendref::{Finisher, SendRefs, Wake};
use super::sync::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering, SpinLock};
use super::tsdu::{TsduEntry, TsduQueue};
use crate::engine::ConnId;
use crate::kernel::*;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;

/// Bytes a connection's TSDU queue holds before indications are refused.
pub const TSDU_LIMIT: usize = 1 << 20;
/// Below this, withheld data is pulled with a receive IRP.
pub const TSDU_LOW_WATER: usize = 256 << 10;
/// Largest receive IRP posted for the rest of an indication or for withheld data.
pub const RECV_IRP_MAX: usize = 256 << 10;
/// Chained TSDUs up to this size are copied; larger ones are retained (`STATUS_PENDING`).
pub const CHAINED_COPY_MAX: u32 = 2048;
/// Slices per `TDI_SEND`.
pub const SEND_MAX_SLICES: usize = 32;

// Connection flags.
pub const F_CONNECTED: u32 = 1 << 0;
pub const F_CONNECT_DONE: u32 = 1 << 1;
pub const F_SEND_INFLIGHT: u32 = 1 << 2;
pub const F_SEND_DONE: u32 = 1 << 3;
pub const F_CLOSE: u32 = 1 << 4;
pub const F_FLUSH: u32 = 1 << 5;
pub const F_TORN: u32 = 1 << 6;
pub const F_EOF_REPORTED: u32 = 1 << 7;
pub const F_PEER_GONE: u32 = 1 << 8;
pub const F_ABORT_SENT: u32 = 1 << 9;
pub const F_REGISTERED: u32 = 1 << 10;
/// The transport indicated a graceful close by the peer (`TDI_DISCONNECT_RELEASE`): our side must
/// still acknowledge it with a `TDI_DISCONNECT` before closing the connection object.
pub const F_PEER_RELEASED: u32 = 1 << 11;
/// The transport indicated an abortive close (`TDI_DISCONNECT_ABORT`): the connection is gone,
/// nothing to acknowledge.
pub const F_PEER_ABORTED: u32 = 1 << 12;

/// Active (we connected, own address object) or accepted (child of the listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Active,
    Child,
}

/// One queued TSDU.
pub enum RxChunk {
    /// Bytes copied out of an indication or received by a receive IRP.
    Copied { buf: Vec<u8>, off: usize },
    /// A chained-receive TSDU retained by returning `STATUS_PENDING`: the mapped segments of its
    /// MDL chain (after `StartingOffset`, `ReceiveLength` bytes in all), given back with
    /// `TdiReturnChainedReceives` when dropped.
    Chained {
        segs: Vec<(usize, usize)>,
        idx: usize,
        off: usize,
        left: usize,
        desc: *mut c_void,
    },
}

// SAFETY: the retained TSDU's memory belongs to the transport until returned; any thread may
// read it and return it (TdiReturnChainedReceives is callable at IRQL <= DISPATCH_LEVEL).
unsafe impl Send for RxChunk {}

impl TsduEntry for RxChunk {
    fn data(&self) -> &[u8] {
        match self {
            RxChunk::Copied { buf, off } => buf.get(*off..).unwrap_or(&[]),
            RxChunk::Chained { segs, idx, off, .. } => match segs.get(*idx) {
                Some(&(p, n)) => {
                    let rest = n.saturating_sub(*off);
                    // SAFETY: (p, n) is a mapped, resident segment of the retained TSDU, valid
                    // until it is returned (on drop); `off <= n`.
                    unsafe {
                        core::slice::from_raw_parts((p as *const u8).wrapping_add(*off), rest)
                    }
                }
                None => &[],
            },
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            RxChunk::Copied { off, .. } => *off = off.saturating_add(n),
            RxChunk::Chained {
                segs,
                idx,
                off,
                left,
                ..
            } => {
                *off = off.saturating_add(n);
                *left = left.saturating_sub(n);
                if let Some(&(_, len)) = segs.get(*idx) {
                    if *off >= len {
                        *idx = idx.saturating_add(1);
                        *off = 0;
                    }
                }
            }
        }
    }

    fn remaining(&self) -> usize {
        match self {
            RxChunk::Copied { buf, off } => buf.len().saturating_sub(*off),
            RxChunk::Chained { left, .. } => *left,
        }
    }
}

impl Drop for RxChunk {
    fn drop(&mut self) {
        if let RxChunk::Chained { desc, .. } = self {
            if desc.is_null() {
                // Not retained after all (the handler refused the TSDU): nothing to return.
                return;
            }
            let mut d = *desc;
            // SAFETY: a descriptor the transport gave us and we retained; returned once.
            unsafe { TdiReturnChainedReceives(&mut d, 1) };
        }
    }
}

/// The engine-side and TDI-side state of one connection.
pub struct Conn {
    pub shared: Arc<Shared>,
    pub kind: Kind,
    pub sched: usize,
    /// The engine's id (0 until the engine knows the connection).
    pub id: AtomicU64,
    pub flags: AtomicU32,
    pub wake: Wake,
    pub rx: TsduQueue<RxChunk>,
    /// Requests outstanding at the transport (send, receive, connect, accept IRPs).
    pub inflight: AtomicU32,
    /// A send finished by its completion routine: `(status << 32) | bytes`.
    pub send_result: AtomicU64,
    pub connect_status: AtomicI32,
    /// Peer and local addresses: `(ip << 16) | port`.
    pub peer: AtomicU64,
    pub local: AtomicU64,
    /// The connection object and, for active connections, their own address object.
    pub objs: SpinLock<Objects>,
    /// Connect attempts made (address-in-use retries).
    pub attempts: AtomicU32,
    /// The target of an active connection: `(ip << 16) | port`.
    pub target: AtomicU64,
    /// The `TDI_CONNECT` IRP while `connect_state` is not `CONNECT_IDLE`/`CONNECT_DONE`.
    pub connect_irp: AtomicUsize,
    /// Who may free `connect_irp`: see [`cancel_connect`].
    pub connect_state: AtomicU32,
}

/// No `TDI_CONNECT` at the transport.
const CONNECT_IDLE: u32 = 0;
/// A `TDI_CONNECT` at the transport; its completion routine frees the IRP.
const CONNECT_INFLIGHT: u32 = 1;
/// Teardown is inside `IoCancelIrp` for it: a completion running meanwhile leaves the IRP to
/// the canceller.
const CONNECT_CANCELLING: u32 = 2;
/// Completed.
const CONNECT_DONE: u32 = 3;

/// The transport objects of a connection (set at PASSIVE_LEVEL before they can raise events,
/// taken at teardown).
#[derive(Default)]
pub struct Objects {
    pub conn: Option<TdiObject>,
    pub addr: Option<TdiObject>,
    /// The accept IRP of a listener child, allocated in advance so `ClientEventConnect` never
    /// allocates.
    pub accept_irp: usize,
}

pub fn pack_addr(ip: u32, port: u16) -> u64 {
    (u64::from(ip) << 16) | u64::from(port)
}
pub fn unpack_addr(v: u64) -> (u32, u16) {
    ((v >> 16) as u32, v as u16)
}

impl Conn {
    pub fn new(shared: Arc<Shared>, kind: Kind, sched: usize) -> Arc<Conn> {
        Arc::new(Conn {
            shared,
            kind,
            sched,
            id: AtomicU64::new(0),
            flags: AtomicU32::new(0),
            wake: Wake::new(true),
            rx: TsduQueue::new(TSDU_LIMIT, TSDU_LOW_WATER),
            inflight: AtomicU32::new(0),
            send_result: AtomicU64::new(0),
            connect_status: AtomicI32::new(0),
            peer: AtomicU64::new(0),
            local: AtomicU64::new(0),
            objs: SpinLock::new(Objects::default()),
            attempts: AtomicU32::new(0),
            target: AtomicU64::new(0),
            connect_irp: AtomicUsize::new(0),
            connect_state: AtomicU32::new(CONNECT_IDLE),
        })
    }

    pub fn engine_id(&self) -> ConnId {
        ConnId(self.id.load(Ordering::Acquire))
    }
    pub fn has(&self, f: u32) -> bool {
        self.flags.load(Ordering::Acquire) & f != 0
    }
    pub fn set(&self, f: u32) -> u32 {
        self.flags.fetch_or(f, Ordering::AcqRel)
    }
    pub fn clear(&self, f: u32) -> u32 {
        self.flags.fetch_and(!f, Ordering::AcqRel)
    }

    /// The connection object (device, file) for building IRPs.
    pub fn conn_target(&self) -> Option<(*mut DEVICE_OBJECT, *mut FILE_OBJECT, i8)> {
        let g = self.objs.lock();
        g.conn.as_ref().map(|o| (o.device, o.file, o.stack_size()))
    }

    /// Wakes the connection's scheduler (any IRQL <= DISPATCH_LEVEL) after publishing news.
    pub fn wake(self: &Arc<Conn>) {
        if self.wake.request() {
            self.shared.enqueue(self.clone());
        }
    }

    /// First pass: the owner hands the connection to its scheduler.
    pub fn activate(self: &Arc<Conn>) {
        self.wake.begin_pass();
        self.wake();
    }

    pub fn io_start(&self) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
    }
    pub fn io_end(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The `Arc<Conn>` behind a `CONNECTION_CONTEXT`, with a new reference.
///
/// # Safety
/// `ctx` must be `Arc::as_ptr` of a `Conn` kept alive until its connection object is closed
/// (the runtime keeps it in its table until then), and the transport calls handlers only while
/// the connection object is open.
unsafe fn conn_from_ctx(ctx: *mut c_void) -> Arc<Conn> {
    let p = ctx as *const Conn;
    // SAFETY: per the contract the Conn is alive; we add the reference we take.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

fn errno_of(status: NTSTATUS) -> i32 {
    match status {
        STATUS_CONNECTION_RESET => 104,
        STATUS_CONNECTION_REFUSED => 111,
        STATUS_IO_TIMEOUT => 110,
        STATUS_HOST_UNREACHABLE | STATUS_NETWORK_UNREACHABLE => 113,
        STATUS_CANCELLED => 125,
        STATUS_ADDRESS_ALREADY_EXISTS => 98,
        STATUS_INSUFFICIENT_RESOURCES | STATUS_NO_MEMORY => 12,
        _ => 5,
    }
}
pub fn errno_of_status(status: NTSTATUS) -> i32 {
    errno_of(status)
}

// ------------------------------------------------------------------------------------------------
// Receive handlers (DISPATCH_LEVEL)

/// Copies `len` bytes at `p` into a new chunk; `None` if memory is short.
fn copy_chunk(p: *const u8, len: usize) -> Option<RxChunk> {
    let mut buf = super::falloc::try_buf(len)?;
    // SAFETY: the transport's TSDU holds `len` readable bytes at `p` during the indication.
    buf.extend_from_slice(unsafe { core::slice::from_raw_parts(p, len) });
    Some(RxChunk::Copied { buf, off: 0 })
}

/// Refuses an indication the handler cannot take (no memory, no mapping): marks the queue
/// *withheld* and wakes the scheduler, which posts a `TDI_RECEIVE` for the data. This must
/// accompany every `STATUS_DATA_NOT_ACCEPTED`: after it the transport makes no further receive
/// indication on the connection until the client posts a receive request (`ClientEventReceive`,
/// Remarks), so a refusal nobody follows up with a `TDI_RECEIVE` stalls the connection for good.
fn refuse(conn: &Arc<Conn>) -> NTSTATUS {
    conn.rx.withhold();
    conn.wake();
    STATUS_DATA_NOT_ACCEPTED
}

/// `ClientEventReceive`: queue the indicated bytes; when more are available than indicated,
/// return a `TDI_RECEIVE` IRP for the rest.
///
/// # Safety
/// Called by the transport at IRQL <= DISPATCH_LEVEL with the `CONNECTION_CONTEXT` of an open
/// connection object of ours (and valid out-parameters), per the TDI contract.
pub unsafe extern "system" fn on_receive(
    _event_context: *mut c_void,
    connection_context: CONNECTION_CONTEXT,
    _flags: u32,
    indicated: u32,
    available: u32,
    taken: *mut u32,
    tsdu: *mut c_void,
    irp_out: *mut *mut IRP,
) -> NTSTATUS {
    // SAFETY: the transport passes our context for an open connection object.
    let conn = unsafe { conn_from_ctx(connection_context) };
    // SAFETY: out parameters provided by the transport.
    unsafe {
        *taken = 0;
        *irp_out = core::ptr::null_mut();
    }
    if conn.has(F_TORN) {
        // Closing: take and drop.
        // SAFETY: as above.
        unsafe { *taken = indicated };
        return STATUS_SUCCESS;
    }
    if conn.rx.refuse_indication() {
        conn.wake();
        return STATUS_DATA_NOT_ACCEPTED;
    }
    // Everything the indication needs is allocated before anything is queued, so a shortage
    // refuses the whole indication (and the scheduler pulls it with a TDI_RECEIVE) instead of
    // taking part of it and leaving the rest in an unspecified state.
    let rest = available.saturating_sub(indicated) as usize;
    let prepared = if rest > 0 {
        match PreparedRecv::new(&conn, rest.min(RECV_IRP_MAX), false) {
            Some(p) => Some(p),
            None => return refuse(&conn),
        }
    } else {
        None
    };
    // On a refusal below, `prepared` is dropped, which frees its IRP, MDL and buffer.
    let Some(chunk) = copy_chunk(tsdu as *const u8, indicated as usize) else {
        return refuse(&conn);
    };
    if conn.rx.push(chunk).is_err() {
        return refuse(&conn);
    }
    // SAFETY: as above.
    unsafe { *taken = indicated };
    if let Some(p) = prepared {
        let irp = p.arm();
        // SAFETY: a fully built TDI_RECEIVE; the transport processes an IRP returned from a
        // handler as if passed to IoCallDriver, so its location is advanced first.
        unsafe {
            IoSetNextIrpStackLocation(irp);
            *irp_out = irp;
        }
        conn.shared
            .stats
            .receive_irps
            .fetch_add(1, Ordering::Relaxed);
        conn.wake();
        return STATUS_MORE_PROCESSING_REQUIRED;
    }
    conn.wake();
    STATUS_SUCCESS
}

/// `ClientEventReceiveExpedited`: TCP urgent data is outside the byte stream socklnd uses;
/// it is taken and dropped (counted).
///
/// # Safety
/// Called by the transport at IRQL <= DISPATCH_LEVEL with the `CONNECTION_CONTEXT` of an open
/// connection object of ours (and valid out-parameters), per the TDI contract.
pub unsafe extern "system" fn on_receive_expedited(
    _event_context: *mut c_void,
    connection_context: CONNECTION_CONTEXT,
    _flags: u32,
    indicated: u32,
    _available: u32,
    taken: *mut u32,
    _tsdu: *mut c_void,
    irp_out: *mut *mut IRP,
) -> NTSTATUS {
    // SAFETY: as in on_receive.
    let conn = unsafe { conn_from_ctx(connection_context) };
    conn.shared
        .stats
        .expedited_dropped
        .fetch_add(u64::from(indicated), Ordering::Relaxed);
    // SAFETY: out parameters provided by the transport.
    unsafe {
        *taken = indicated;
        *irp_out = core::ptr::null_mut();
    }
    STATUS_SUCCESS
}

/// Maps the MDL chain of a chained TSDU from `start` for `len` bytes into segments.
fn map_chain(mut mdl: *mut MDL, start: u32, len: u32) -> Option<Vec<(usize, usize)>> {
    let mut segs = Vec::new();
    let mut skip = start as usize;
    let mut left = len as usize;
    while left > 0 {
        if mdl.is_null() {
            return None;
        }
        // SAFETY: the transport's MDL chain is valid during the indication (and while retained).
        let (count, next) = unsafe { (MmGetMdlByteCount(mdl) as usize, (*mdl).Next) };
        if skip >= count {
            skip = skip.saturating_sub(count);
            mdl = next;
            continue;
        }
        // SAFETY: locked transport pages; mapping is allowed at DISPATCH_LEVEL.
        let va = unsafe {
            MmGetSystemAddressForMdlSafe(mdl, NORMAL_PAGE_PRIORITY | MDL_MAPPING_NO_EXECUTE)
        };
        if va.is_null() {
            return None;
        }
        let take = count.saturating_sub(skip).min(left);
        segs.try_reserve(1).ok()?;
        segs.push(((va as usize).saturating_add(skip), take));
        left = left.saturating_sub(take);
        skip = 0;
        mdl = next;
    }
    Some(segs)
}

/// `ClientEventChainedReceive`: small TSDUs are copied (`STATUS_SUCCESS`); larger ones are
/// retained in the TSDU queue (`STATUS_PENDING`) and returned once consumed.
///
/// # Safety
/// Called by the transport at IRQL <= DISPATCH_LEVEL with the `CONNECTION_CONTEXT` of an open
/// connection object of ours (and valid out-parameters), per the TDI contract.
pub unsafe extern "system" fn on_chained_receive(
    _event_context: *mut c_void,
    connection_context: CONNECTION_CONTEXT,
    _flags: u32,
    length: u32,
    start: u32,
    tsdu: *mut MDL,
    descriptor: *mut c_void,
) -> NTSTATUS {
    // SAFETY: as in on_receive.
    let conn = unsafe { conn_from_ctx(connection_context) };
    if conn.has(F_TORN) {
        return STATUS_SUCCESS;
    }
    if conn.rx.refuse_indication() {
        conn.wake();
        return STATUS_DATA_NOT_ACCEPTED;
    }
    let Some(segs) = map_chain(tsdu, start, length) else {
        return refuse(&conn);
    };
    if length <= CHAINED_COPY_MAX {
        let Some(mut buf) = super::falloc::try_buf(length as usize) else {
            return refuse(&conn);
        };
        for &(p, n) in &segs {
            // SAFETY: mapped segments of the TSDU, valid during the indication.
            buf.extend_from_slice(unsafe { core::slice::from_raw_parts(p as *const u8, n) });
        }
        if conn.rx.push(RxChunk::Copied { buf, off: 0 }).is_err() {
            return refuse(&conn);
        }
        conn.wake();
        return STATUS_SUCCESS;
    }
    let chunk = RxChunk::Chained {
        segs,
        idx: 0,
        off: 0,
        left: length as usize,
        desc: descriptor,
    };
    match conn.rx.push(chunk) {
        Ok(()) => {
            conn.shared
                .stats
                .chained_retained
                .fetch_add(1, Ordering::Relaxed);
            conn.wake();
            STATUS_PENDING
        }
        Err(mut e) => {
            // Not retained after all: the transport keeps the TSDU; it must not be returned.
            if let RxChunk::Chained { desc, .. } = &mut e {
                *desc = core::ptr::null_mut();
            }
            drop(e);
            refuse(&conn)
        }
    }
}

/// `ClientEventChainedReceiveExpedited`: urgent data, dropped (see [`on_receive_expedited`]).
///
/// # Safety
/// Called by the transport at IRQL <= DISPATCH_LEVEL with the `CONNECTION_CONTEXT` of an open
/// connection object of ours (and valid out-parameters), per the TDI contract.
pub unsafe extern "system" fn on_chained_receive_expedited(
    _event_context: *mut c_void,
    connection_context: CONNECTION_CONTEXT,
    _flags: u32,
    length: u32,
    _start: u32,
    _tsdu: *mut MDL,
    _descriptor: *mut c_void,
) -> NTSTATUS {
    // SAFETY: as in on_receive.
    let conn = unsafe { conn_from_ctx(connection_context) };
    conn.shared
        .stats
        .expedited_dropped
        .fetch_add(u64::from(length), Ordering::Relaxed);
    STATUS_SUCCESS
}

/// `ClientEventDisconnect`: the peer closed (release: EOF after the queued data) or reset
/// (abort: an error).
///
/// # Safety
/// Called by the transport at IRQL <= DISPATCH_LEVEL with the `CONNECTION_CONTEXT` of an open
/// connection object of ours (and valid out-parameters), per the TDI contract.
pub unsafe extern "system" fn on_disconnect(
    _event_context: *mut c_void,
    connection_context: CONNECTION_CONTEXT,
    _data_len: i32,
    _data: *mut c_void,
    _info_len: i32,
    _info: *mut c_void,
    flags: u32,
) -> NTSTATUS {
    // SAFETY: as in on_receive.
    let conn = unsafe { conn_from_ctx(connection_context) };
    if flags & TDI_DISCONNECT_ABORT != 0 {
        conn.set(F_PEER_GONE | F_PEER_ABORTED);
        conn.rx.set_error(104);
    } else {
        // A release still has to be acknowledged with our own TDI_DISCONNECT at teardown.
        conn.set(F_PEER_GONE | F_PEER_RELEASED);
        conn.rx.set_eof();
    }
    conn.wake();
    STATUS_SUCCESS
}

/// `ClientEventError` on an active connection's own address object (context: the connection).
///
/// # Safety
/// Called by the transport at IRQL <= DISPATCH_LEVEL with the `CONNECTION_CONTEXT` of an open
/// connection object of ours (and valid out-parameters), per the TDI contract.
pub unsafe extern "system" fn on_error_conn(
    event_context: *mut c_void,
    status: NTSTATUS,
) -> NTSTATUS {
    if event_context.is_null() {
        return STATUS_SUCCESS;
    }
    // SAFETY: we registered the connection as this address object's event context; the address
    // object is closed before the connection is forgotten.
    let conn = unsafe { conn_from_ctx(event_context) };
    conn.shared
        .stats
        .error_events
        .fetch_add(1, Ordering::Relaxed);
    conn.rx.set_error(errno_of(status));
    conn.wake();
    STATUS_SUCCESS
}

// ------------------------------------------------------------------------------------------------
// Receive IRPs

struct RecvCtx {
    conn: Arc<Conn>,
    buf: Vec<u8>,
    mdl: *mut MDL,
    /// A pull of withheld data (posted by the scheduler) rather than the rest of an indication.
    pull: bool,
}

/// A `TDI_RECEIVE` with everything allocated (buffer, MDL, IRP, context) but not yet built:
/// dropping it frees them all; [`PreparedRecv::arm`] builds the request and hands the IRP out.
struct PreparedRecv {
    /// From `PoolBox::into_raw`; owned until `arm`.
    ctx: *mut RecvCtx,
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    len32: u32,
}

impl PreparedRecv {
    /// Allocates a `TDI_RECEIVE` for up to `len` bytes into a fresh buffer; `None` if any
    /// allocation fails (any IRQL <= DISPATCH_LEVEL, no allocation that cannot fail).
    fn new(conn: &Arc<Conn>, len: usize, pull: bool) -> Option<PreparedRecv> {
        let (device, file, stack) = conn.conn_target()?;
        let len32 = u32::try_from(len).ok()?;
        let mut buf = super::falloc::try_buf(len)?;
        buf.resize(len, 0);
        // SAFETY: IRQL <= DISPATCH_LEVEL; the buffer (non-paged pool) outlives the MDL (both
        // end in the same context, the MDL freed first).
        let mdl = unsafe {
            IoAllocateMdl(
                buf.as_mut_ptr().cast(),
                len32,
                FALSE,
                FALSE,
                core::ptr::null_mut(),
            )
        };
        if mdl.is_null() {
            return None;
        }
        // SAFETY: a fresh MDL over non-paged memory.
        unsafe { MmBuildMdlForNonPagedPool(mdl) };
        let Ok(ctx) = PoolBox::try_new(RecvCtx {
            conn: conn.clone(),
            buf,
            mdl,
            pull,
        }) else {
            // SAFETY: ours, unused.
            unsafe { IoFreeMdl(mdl) };
            return None;
        };
        // SAFETY: IRQL <= DISPATCH_LEVEL.
        let irp = unsafe { IoAllocateIrp(stack, FALSE) };
        if irp.is_null() {
            // SAFETY: ours, unused (the buffer goes with the context).
            unsafe { IoFreeMdl(ctx.mdl) };
            return None;
        }
        Some(PreparedRecv {
            ctx: PoolBox::into_raw(ctx),
            irp,
            device,
            file,
            len32,
        })
    }

    /// Builds the request (counted in flight from here) and gives up ownership of the IRP and
    /// the context to the completion routine.
    fn arm(self) -> *mut IRP {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: the context is ours until the IRP is handed out.
        let (conn, mdl) = unsafe { (&(*me.ctx).conn, (*me.ctx).mdl) };
        conn.io_start();
        // SAFETY: a fresh IRP for the connection's device; the context and MDL live until the
        // completion routine frees them.
        unsafe {
            tdi_build_receive(
                me.irp,
                me.device,
                me.file,
                Some(receive_complete),
                me.ctx.cast(),
                mdl,
                TDI_RECEIVE_NORMAL,
                me.len32,
            )
        };
        me.irp
    }
}

impl Drop for PreparedRecv {
    fn drop(&mut self) {
        // SAFETY: never armed: the IRP, the MDL and the context are still ours, freed once.
        unsafe {
            let ctx = PoolBox::from_raw(self.ctx);
            IoFreeMdl(ctx.mdl);
            IoFreeIrp(self.irp);
        }
    }
}

/// Builds a `TDI_RECEIVE` for up to `len` bytes into a fresh buffer (any IRQL <= DISPATCH).
pub fn build_receive_irp(conn: &Arc<Conn>, len: usize, pull: bool) -> Option<*mut IRP> {
    PreparedRecv::new(conn, len, pull).map(PreparedRecv::arm)
}

unsafe extern "system" fn receive_complete(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the RecvCtx we boxed for this IRP; the IRP is ours again.
    let ctx = unsafe { PoolBox::from_raw(context.cast::<RecvCtx>()) };
    // SAFETY: a completed IRP.
    let (status, info) = unsafe { ((*irp).IoStatus.u.Status, (*irp).IoStatus.Information) };
    // SAFETY: ours: freed once, the MDL first (it is not attached for freeing by the I/O
    // manager: we return STATUS_MORE_PROCESSING_REQUIRED).
    unsafe {
        (*irp).MdlAddress = core::ptr::null_mut();
        IoFreeMdl(ctx.mdl);
        IoFreeIrp(irp);
    }
    let RecvCtx {
        conn,
        mut buf,
        pull,
        ..
    } = ctx.into_inner();
    let n = info.min(buf.len());
    let chunk = if nt_success(status) && n > 0 {
        buf.truncate(n);
        Some(RxChunk::Copied { buf, off: 0 })
    } else {
        None
    };
    let queued = if pull {
        conn.rx.receive_done(chunk)
    } else {
        match chunk {
            Some(c) => conn.rx.push(c),
            None => Ok(()),
        }
    };
    if queued.is_err() {
        conn.rx.set_error(12);
    }
    if !nt_success(status) && status != STATUS_CANCELLED {
        conn.rx.set_error(errno_of(status));
    }
    conn.shared
        .stats
        .rx_irp_bytes
        .fetch_add(n as u64, Ordering::Relaxed);
    conn.io_end();
    conn.wake();
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Posts a receive IRP pulling withheld data (PASSIVE_LEVEL, from the scheduler).
pub fn post_pull(conn: &Arc<Conn>) {
    match build_receive_irp(conn, RECV_IRP_MAX, true) {
        Some(irp) => {
            let Some((device, _, _)) = conn.conn_target() else {
                return;
            };
            conn.shared.stats.pulls.fetch_add(1, Ordering::Relaxed);
            // SAFETY: a fully built IRP; its completion routine always runs.
            unsafe { IofCallDriver(device, irp) };
        }
        None => {
            // Could not allocate: give the mark back so a later pass retries.
            let _ = conn.rx.receive_done(None);
            conn.rx.set_error(12);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Send

/// One in-flight `TDI_SEND`: the two references, the IRP and its MDLs (which describe the
/// engine's lent bytes in place).
pub struct SendCtx {
    refs: SendRefs,
    conn: Arc<Conn>,
    irp: *mut IRP,
    mdls: Vec<*mut MDL>,
}

impl SendCtx {
    /// Frees the IRP and MDLs, then the context (any IRQL <= DISPATCH_LEVEL). The lent engine
    /// slices are not touched: they are the engine's.
    fn free(b: PoolBox<Self>) {
        let irp = b.irp;
        // SAFETY: the IRP and MDLs are ours (completed, not referenced by the transport).
        unsafe {
            (*irp).MdlAddress = core::ptr::null_mut();
            for &m in &b.mdls {
                IoFreeMdl(m);
            }
            IoFreeIrp(irp);
        }
    }
}

fn pack_result(status: NTSTATUS, info: u32) -> u64 {
    (u64::from(status as u32) << 32) | u64::from(info)
}
pub fn unpack_result(v: u64) -> (NTSTATUS, u32) {
    ((v >> 32) as u32 as NTSTATUS, v as u32)
}

/// What became of a send submission.
pub enum SendOutcome {
    /// Completed before the submitter dropped its reference: the submitter finishes it now
    /// (`tx_commit`) — HLD step 10.
    Done(NTSTATUS, u32),
    /// Still in flight (`STATUS_PENDING`): the connection is parked; the completion routine
    /// will record the result and re-activate it — HLD steps 9 and 11.
    Parked,
    /// Could not be built (no memory): nothing was sent.
    Failed,
}

/// Builds one MDL per slice over the engine's own bytes and submits one `TDI_SEND`.
/// PASSIVE_LEVEL; the caller has set `F_SEND_INFLIGHT`.
///
/// Nothing is copied: the engine lends `slices` from `tx_slices` and guarantees they stay
/// valid, unchanged and at the same address until `tx_commit` or `release`, however many
/// messages are queued meanwhile (queued transmissions are boxed, so their packed headers never
/// move). The transport reads them through the MDLs whenever it sends, possibly long after
/// this returns.
pub fn submit_send(conn: &Arc<Conn>, slices: &[&[u8]]) -> SendOutcome {
    let Some((device, file, stack)) = conn.conn_target() else {
        return SendOutcome::Failed;
    };
    let mut mdls: Vec<*mut MDL> = Vec::new();
    let mut total: usize = 0;
    let free_mdls = |mdls: &Vec<*mut MDL>| {
        for &m in mdls {
            // SAFETY: ours, unused.
            unsafe { IoFreeMdl(m) };
        }
    };
    if mdls.try_reserve_exact(slices.len()).is_err() {
        return SendOutcome::Failed;
    }
    for s in slices {
        if s.is_empty() {
            continue;
        }
        let len = s.len();
        let Ok(len32) = u32::try_from(len) else {
            free_mdls(&mdls);
            return SendOutcome::Failed;
        };
        // SAFETY: IRQL <= DISPATCH_LEVEL; the engine's slice stays valid and in place until
        // tx_commit/release, which happen only after this send's IRP and MDLs are freed.
        let m = unsafe {
            IoAllocateMdl(
                s.as_ptr() as *mut c_void,
                len32,
                FALSE,
                FALSE,
                core::ptr::null_mut(),
            )
        };
        if m.is_null() {
            free_mdls(&mdls);
            return SendOutcome::Failed;
        }
        // SAFETY: all driver memory (the engine's buffers included) is non-paged pool.
        unsafe { MmBuildMdlForNonPagedPool(m) };
        // SAFETY: our fresh MDL. It describes the engine's bytes themselves, not a copy.
        debug_assert!(unsafe {
            MmGetMdlVirtualAddress(m) as *const u8 == s.as_ptr() && MmGetMdlByteCount(m) == len32
        });
        if let Some(&prev) = mdls.last() {
            // SAFETY: our MDL, chained before submission.
            unsafe { (*prev).Next = m };
        }
        mdls.push(m);
        total = total.saturating_add(len);
    }
    let (Some(&first), Ok(total32)) = (mdls.first(), u32::try_from(total)) else {
        free_mdls(&mdls);
        return SendOutcome::Failed;
    };
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    let irp = unsafe { IoAllocateIrp(stack, FALSE) };
    if irp.is_null() {
        free_mdls(&mdls);
        return SendOutcome::Failed;
    }
    let ctx = match PoolBox::try_new(SendCtx {
        refs: SendRefs::new(),
        conn: conn.clone(),
        irp,
        mdls,
    }) {
        Ok(b) => PoolBox::into_raw(b),
        Err(c) => {
            free_mdls(&c.mdls);
            // SAFETY: ours, never submitted.
            unsafe { IoFreeIrp(irp) };
            return SendOutcome::Failed;
        }
    };
    conn.io_start();
    // SAFETY: a fresh IRP; the context lives until the last reference is dropped.
    unsafe {
        tdi_build_send(
            irp,
            device,
            file,
            Some(send_complete),
            ctx.cast(),
            first,
            0,
            total32,
        )
    };
    // SAFETY: a fully built IRP; the completion routine always runs.
    unsafe { IofCallDriver(device, irp) };
    // SAFETY: the submitter's reference is still held, so the context is alive.
    let fin = unsafe { (*ctx).refs.submitted() };
    match fin {
        Some(Finisher::Submitter) => {
            // SAFETY: both references dropped, the last by us: the context is ours.
            let b = unsafe { PoolBox::from_raw(ctx) };
            let (st, info) = b.refs.result();
            SendCtx::free(b);
            conn.io_end();
            conn.shared
                .stats
                .sends_finished_by_submitter
                .fetch_add(1, Ordering::Relaxed);
            SendOutcome::Done(st, info)
        }
        // `ctx` may be freed by the completion routine from now on: not touched again.
        _ => {
            conn.shared
                .stats
                .sends_parked
                .fetch_add(1, Ordering::Relaxed);
            SendOutcome::Parked
        }
    }
}

unsafe extern "system" fn send_complete(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let ctx = context.cast::<SendCtx>();
    // SAFETY: the completion routine's reference keeps the context alive until `complete`.
    let (status, info) = unsafe { ((*irp).IoStatus.u.Status, (*irp).IoStatus.Information) };
    let info32 = u32::try_from(info).unwrap_or(u32::MAX);
    // SAFETY: as above.
    let fin = unsafe { (*ctx).refs.complete(status, info32) };
    if let Some(Finisher::Completion) = fin {
        // SAFETY: the submitter already dropped its reference: the context is ours.
        let b = unsafe { PoolBox::from_raw(ctx) };
        let conn = b.conn.clone();
        SendCtx::free(b);
        conn.send_result
            .store(pack_result(status, info32), Ordering::Release);
        conn.set(F_SEND_DONE);
        conn.io_end();
        conn.shared
            .stats
            .sends_finished_by_completion
            .fetch_add(1, Ordering::Relaxed);
        conn.wake();
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

// ------------------------------------------------------------------------------------------------
// Connect

/// The context of a `TDI_CONNECT`: the remote address and the timeout must live until
/// completion.
pub struct ConnectCtx {
    conn: Arc<Conn>,
    remote: TA_IP_ADDRESS,
    info: TDI_CONNECTION_INFORMATION,
    timeout: LARGE_INTEGER,
}

/// Submits a `TDI_CONNECT` to `ip:port` with a relative timeout (PASSIVE_LEVEL).
pub fn submit_connect(conn: &Arc<Conn>, ip: u32, port: u16, timeout_ms: u32) -> bool {
    let Some((device, file, stack)) = conn.conn_target() else {
        return false;
    };
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    let irp = unsafe { IoAllocateIrp(stack, FALSE) };
    if irp.is_null() {
        return false;
    }
    let Ok(ctx) = PoolBox::try_new(ConnectCtx {
        conn: conn.clone(),
        remote: TA_IP_ADDRESS::new(ip, port),
        info: TDI_CONNECTION_INFORMATION::empty(),
        timeout: LARGE_INTEGER {
            QuadPart: 0i64.saturating_sub(i64::from(timeout_ms).saturating_mul(10_000)),
        },
    }) else {
        // SAFETY: ours, never submitted.
        unsafe { IoFreeIrp(irp) };
        return false;
    };
    let ctx = PoolBox::into_raw(ctx);
    // SAFETY: the boxed context is stable; its fields are referenced by the request.
    unsafe {
        (*ctx).info.RemoteAddressLength = core::mem::size_of::<TA_IP_ADDRESS>() as i32;
        (*ctx).info.RemoteAddress = core::ptr::addr_of_mut!((*ctx).remote).cast();
    }
    conn.io_start();
    conn.connect_irp.store(irp as usize, Ordering::Release);
    conn.connect_state
        .store(CONNECT_INFLIGHT, Ordering::Release);
    // SAFETY: a fresh IRP; connection information and timeout live in the context until
    // completion.
    unsafe {
        tdi_build_connect(
            irp,
            device,
            file,
            Some(connect_complete),
            ctx.cast(),
            core::ptr::addr_of_mut!((*ctx).timeout),
            core::ptr::addr_of_mut!((*ctx).info),
            core::ptr::null_mut(),
        );
        IofCallDriver(device, irp);
    }
    true
}

unsafe extern "system" fn connect_complete(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: our boxed context; the IRP is ours again.
    let ctx = unsafe { PoolBox::from_raw(context.cast::<ConnectCtx>()) };
    // SAFETY: a completed IRP.
    let status = unsafe { (*irp).IoStatus.u.Status };
    let conn = ctx.conn.clone();
    drop(ctx);
    conn.connect_status.store(status, Ordering::Release);
    conn.set(F_CONNECT_DONE);
    if conn.connect_state.swap(CONNECT_DONE, Ordering::AcqRel) != CONNECT_CANCELLING {
        conn.connect_irp.store(0, Ordering::Release);
        // SAFETY: completed and ours; no canceller holds it: freed once, here.
        unsafe { IoFreeIrp(irp) };
    }
    conn.io_end();
    conn.wake();
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Cancels the connection's `TDI_CONNECT` if it is still at the transport (`IoCancelIrp`:
/// the IRP is ours, allocated with `IoAllocateIrp`, which is when the routine's page allows a
/// driver to cancel it) and waits (up to 20 s) until it has come back. PASSIVE_LEVEL. True if
/// one was in flight.
///
/// The IRP must stay allocated while `IoCancelIrp` runs, yet the completion routine frees it
/// and may run at any time, even inside `IoCancelIrp` (the transport's cancel routine
/// completes it). `connect_state` settles who frees it: the canceller moves INFLIGHT to
/// CANCELLING before the call and back after it; a completion that finds CANCELLING leaves the
/// IRP to the canceller, which finds DONE instead of CANCELLING and frees it.
pub fn cancel_connect(conn: &Conn) -> bool {
    if conn
        .connect_state
        .compare_exchange(
            CONNECT_INFLIGHT,
            CONNECT_CANCELLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return false;
    }
    let irp = conn.connect_irp.load(Ordering::Acquire) as *mut IRP;
    // SAFETY: while the state is CANCELLING the completion routine does not free the IRP, so
    // it is live; it is our own IRP; IRQL <= DISPATCH_LEVEL.
    unsafe { IoCancelIrp(irp) };
    if conn
        .connect_state
        .compare_exchange(
            CONNECT_CANCELLING,
            CONNECT_INFLIGHT,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // Completed meanwhile: the completion routine left the IRP to us.
        conn.connect_irp.store(0, Ordering::Release);
        // SAFETY: completed, ours, freed once.
        unsafe { IoFreeIrp(irp) };
    }
    for _ in 0..20_000 {
        if conn.connect_state.load(Ordering::Acquire) != CONNECT_INFLIGHT {
            break;
        }
        super::obj::sleep_ms(1);
    }
    conn.shared
        .stats
        .connects_cancelled
        .fetch_add(1, Ordering::Relaxed);
    true
}

/// The event handlers every connection needs, registered on the address object that carries
/// its indications (the listener's for children, its own for active connections).
pub fn register_receive_handlers(
    addr: &TdiObject,
    error_handler: *mut c_void,
    error_ctx: *mut c_void,
) -> NTSTATUS {
    let list: [(i32, *mut c_void, *mut c_void); 6] = [
        (
            TDI_EVENT_RECEIVE,
            on_receive as *mut c_void,
            core::ptr::null_mut(),
        ),
        (
            TDI_EVENT_RECEIVE_EXPEDITED,
            on_receive_expedited as *mut c_void,
            core::ptr::null_mut(),
        ),
        (
            TDI_EVENT_CHAINED_RECEIVE,
            on_chained_receive as *mut c_void,
            core::ptr::null_mut(),
        ),
        (
            TDI_EVENT_CHAINED_RECEIVE_EXPEDITED,
            on_chained_receive_expedited as *mut c_void,
            core::ptr::null_mut(),
        ),
        (
            TDI_EVENT_DISCONNECT,
            on_disconnect as *mut c_void,
            core::ptr::null_mut(),
        ),
        (TDI_EVENT_ERROR, error_handler, error_ctx),
    ];
    for (ty, h, c) in list {
        let st = super::obj::set_event_handler(addr, ty, h, c);
        if !nt_success(st) {
            return st;
        }
    }
    STATUS_SUCCESS
}
