//! The emulated `\Device\Tcp`: TDI address and connection objects over real loopback sockets.
//!
//! - An **address object** is a bound socket (`SO_REUSEADDR`; a bind conflict answers
//!   `STATUS_ADDRESS_ALREADY_EXISTS`). Setting a `TDI_EVENT_CONNECT` handler makes it listen; a
//!   listener thread then offers each incoming connection to `ClientEventConnect` at
//!   DISPATCH_LEVEL and completes the `TDI_ACCEPT` IRP the client returns.
//! - A **connection object** carries the client's `ConnectionContext`, is associated with an
//!   address object, and once connected (by `TDI_CONNECT` from the address's socket, or by an
//!   accept) owns a stream served by two threads: a **reader** that reads random-size chunks and
//!   indicates them at DISPATCH_LEVEL — `ClientEventReceive` (sometimes with
//!   `BytesIndicated < BytesAvailable`, taking the receive IRP the client returns for the rest)
//!   or `ClientEventChainedReceive` (an MDL chain with a `StartingOffset`; the client may retain
//!   it with `STATUS_PENDING` until `TdiReturnChainedReceives`) — honouring
//!   `STATUS_DATA_NOT_ACCEPTED` (no more indications until a `TDI_RECEIVE` is posted), and a
//!   **sender** that writes queued `TDI_SEND` data, copying from the client's MDLs only then (so
//!   buffers freed early are caught as corrupt data).
//! - Each IRP is completed inline (final status returned), inline but reported `STATUS_PENDING`,
//!   or from another thread after `IofCallDriver` returned `STATUS_PENDING` — chosen per IRP from
//!   the endpoint's seeded random stream.
//! - Peer close → `ClientEventDisconnect(TDI_DISCONNECT_RELEASE)` after the data; reset →
//!   `ClientEventError(STATUS_CONNECTION_RESET)` and `ClientEventDisconnect(TDI_DISCONNECT_ABORT)`.
use super::kernel::{
    at_dispatch, complete_irp, file_endpoint, handle_file, lock, require, take_irp, violation,
    TCP_DEVICE,
};
use super::{bump, stats, Rng};
use crate::kernel::*;
use crate::tdi::bindings::*;
use core::ffi::c_void;
use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, LazyLock, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Poll period of the provider's threads (socket timeouts, condvar waits).
const TICK: Duration = Duration::from_millis(20);

mod ffi {
    use core::ffi::{c_int, c_void};
    #[repr(C)]
    pub struct SockAddrIn {
        pub sin_family: u16,
        pub sin_port: u16,
        pub sin_addr: u32,
        pub sin_zero: [u8; 8],
    }
    #[repr(C)]
    pub struct Linger {
        pub l_onoff: c_int,
        pub l_linger: c_int,
    }
    pub const AF_INET: c_int = 2;
    pub const SOCK_STREAM: c_int = 1;
    pub const SOCK_CLOEXEC: c_int = 0o2_000_000;
    pub const SOL_SOCKET: c_int = 1;
    pub const SO_REUSEADDR: c_int = 2;
    pub const SO_LINGER: c_int = 13;
    unsafe extern "C" {
        pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
        pub fn bind(fd: c_int, addr: *const SockAddrIn, len: u32) -> c_int;
        pub fn connect(fd: c_int, addr: *const SockAddrIn, len: u32) -> c_int;
        pub fn listen(fd: c_int, backlog: c_int) -> c_int;
        pub fn getsockname(fd: c_int, addr: *mut SockAddrIn, len: *mut u32) -> c_int;
        pub fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            val: *const c_void,
            len: u32,
        ) -> c_int;
    }
}

fn sockaddr(a: SocketAddrV4) -> ffi::SockAddrIn {
    ffi::SockAddrIn {
        sin_family: ffi::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: u32::from(*a.ip()).to_be(),
        sin_zero: [0; 8],
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_linger0(fd: RawFd) {
    let l = ffi::Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        ffi::setsockopt(
            fd,
            ffi::SOL_SOCKET,
            ffi::SO_LINGER,
            (&l as *const ffi::Linger).cast::<c_void>(),
            core::mem::size_of::<ffi::Linger>() as u32,
        );
    }
}

/// Event handlers registered on an address object: `(handler, context)` per event type.
#[derive(Clone, Copy, Default)]
struct Handlers([(usize, usize); 11]);

impl Handlers {
    fn get(&self, ty: i32) -> Option<(usize, usize)> {
        let (h, c) = *self.0.get(ty as usize)?;
        (h != 0).then_some((h, c))
    }
}

/// What a file object opened on `\Device\Tcp` is.
pub enum Endpoint {
    Control,
    Address(Arc<AddrEp>),
    Conn(Arc<ConnEp>),
}

impl Endpoint {
    pub fn fs_context2(&self) -> usize {
        match self {
            Endpoint::Control => TDI_CONTROL_CHANNEL_FILE,
            Endpoint::Address(_) => TDI_TRANSPORT_ADDRESS_FILE,
            Endpoint::Conn(_) => TDI_CONNECTION_FILE,
        }
    }
    pub fn set_file(&self, f: *mut FILE_OBJECT) {
        match self {
            Endpoint::Control => {}
            Endpoint::Address(a) => a.file.store(f as usize, Ordering::Relaxed),
            Endpoint::Conn(c) => c.file.store(f as usize, Ordering::Relaxed),
        }
    }
}

/// An address object.
pub struct AddrEp {
    local: SocketAddrV4,
    fd: Mutex<Option<OwnedFd>>,
    handlers: Mutex<Handlers>,
    listener: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
    file: AtomicUsize,
    closed: AtomicBool,
}

enum SendItem {
    Bytes(Vec<u8>),
    Irp(usize),
    Fin(usize),
}

#[derive(Default)]
struct ConnSt {
    stream: Option<Arc<TcpStream>>,
    local: Option<SocketAddrV4>,
    peer: Option<SocketAddrV4>,
    closed: bool,
    abort: bool,
    inject: bool,
    sendq: VecDeque<SendItem>,
    sending: bool,
    recv_irps: VecDeque<usize>,
    not_accepting: bool,
    /// `ClientEventDisconnect(TDI_DISCONNECT_RELEASE)` was delivered: the client owes a
    /// `TDI_DISCONNECT` acknowledging it before it closes the connection object.
    release_indicated: bool,
    /// The client issued a `TDI_DISCONNECT` (either kind) on this connection.
    disconnect_requested: bool,
    /// The TCP connection failed (a read error: reset by the peer); the client was told with an
    /// abortive disconnect indication.
    failed: bool,
    /// Connected by a `TDI_CONNECT` whose IRP has not been completed to the client yet.
    connecting: bool,
    /// `TDI_CONNECT`s to a host that does not answer (`emu::hold_connects`): pending until
    /// cancelled, aborted or cleaned up.
    held_connects: Vec<usize>,
    /// Graceful `TDI_DISCONNECT`s whose FIN the peer never acknowledges (`emu::deaf_peers`):
    /// pending until cancelled, aborted or cleaned up.
    held_fins: Vec<usize>,
    threads: Vec<JoinHandle<()>>,
}

/// A connection object.
pub struct ConnEp {
    context: usize,
    file: AtomicUsize,
    addr: Mutex<Option<Arc<AddrEp>>>,
    st: Mutex<ConnSt>,
    cv: Condvar,
    rng: Mutex<Rng>,
    /// Held while a client handler runs for this connection; cleanup takes it so no handler
    /// runs once `ZwClose` returned.
    ind: Mutex<()>,
}

static SERIAL: AtomicU64 = AtomicU64::new(1);
static CONNS: LazyLock<Mutex<Vec<Weak<ConnEp>>>> = LazyLock::new(|| Mutex::new(Vec::new()));

fn new_rng() -> Rng {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    Rng::new(super::seed() ^ serial.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `ZwCreateFile` with a `TransportAddress` EA.
pub fn open_address(ea_value: &[u8]) -> Result<Endpoint, NTSTATUS> {
    let (ip, port) = parse_transport_address(ea_value).ok_or(STATUS_INVALID_ADDRESS)?;
    // SAFETY: plain socket creation.
    let fd = unsafe { ffi::socket(ffi::AF_INET, ffi::SOCK_STREAM | ffi::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: i32 = 1;
    let sa = sockaddr(SocketAddrV4::new(Ipv4Addr::from(ip), port));
    // SAFETY: valid descriptor, option and address of the right sizes.
    let rc = unsafe {
        ffi::setsockopt(
            fd,
            ffi::SOL_SOCKET,
            ffi::SO_REUSEADDR,
            (&one as *const i32).cast(),
            4,
        );
        ffi::bind(fd, &sa, core::mem::size_of::<ffi::SockAddrIn>() as u32)
    };
    if rc != 0 {
        return Err(match errno() {
            98 => STATUS_ADDRESS_ALREADY_EXISTS,
            13 => STATUS_ACCESS_DENIED,
            _ => STATUS_INVALID_ADDRESS,
        });
    }
    let mut out = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut len = core::mem::size_of::<ffi::SockAddrIn>() as u32;
    // SAFETY: valid descriptor and output buffer.
    unsafe { ffi::getsockname(fd, &mut out, &mut len) };
    let local = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(out.sin_addr)),
        u16::from_be(out.sin_port),
    );
    Ok(Endpoint::Address(Arc::new(AddrEp {
        local,
        fd: Mutex::new(Some(owned)),
        handlers: Mutex::new(Handlers::default()),
        listener: Mutex::new(None),
        file: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
    })))
}

/// `ZwCreateFile` with a `ConnectionContext` EA.
pub fn open_connection(context: usize) -> Endpoint {
    let ep = Arc::new(ConnEp {
        context,
        file: AtomicUsize::new(0),
        addr: Mutex::new(None),
        st: Mutex::new(ConnSt::default()),
        cv: Condvar::new(),
        rng: Mutex::new(new_rng()),
        ind: Mutex::new(()),
    });
    let mut all = lock(&CONNS);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&ep));
    Endpoint::Conn(ep)
}

// ------------------------------------------------------------------------------------------------
// Completion helpers

struct IrpPtr(usize);

/// (IRP, status, information, delay in µs).
type Completion = (usize, NTSTATUS, usize, u64);

static COMPLETER: LazyLock<Mutex<mpsc::Sender<Completion>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<Completion>();
    std::thread::Builder::new()
        .name("tdi-emu-completer".into())
        .spawn(move || {
            for (irp, st, info, delay_us) in rx {
                if delay_us > 0 {
                    std::thread::sleep(Duration::from_micros(delay_us));
                }
                complete_irp(irp as *mut IRP, st, info);
            }
        })
        .unwrap_or_else(|_| violation("cannot start the completer thread"));
    Mutex::new(tx)
});

fn mark_pending(irp: *mut IRP) {
    // SAFETY: the transport owns the live IRP; its current location is the transport's.
    unsafe { IoMarkIrpPending(irp) };
}

/// Completes `irp` in a randomly chosen order relative to `IofCallDriver`'s return.
fn finish(rng: &mut Rng, irp: *mut IRP, status: NTSTATUS, info: usize) -> NTSTATUS {
    match rng.range(0, 2) {
        0 => {
            bump(&stats().completed_inline);
            complete_irp(irp, status, info);
            status
        }
        1 => {
            bump(&stats().pending_completed_inline);
            mark_pending(irp);
            complete_irp(irp, status, info);
            STATUS_PENDING
        }
        _ => {
            bump(&stats().completed_async);
            mark_pending(irp);
            let delay = if rng.chance(1, 2) {
                0
            } else {
                rng.range(1, 300)
            };
            let sent = lock(&COMPLETER).send((irp as usize, status, info, delay));
            if sent.is_err() {
                violation("completer thread gone");
            }
            STATUS_PENDING
        }
    }
}

fn current_sp(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: a live IRP owned by the transport.
    unsafe { IoGetCurrentIrpStackLocation(irp) }
}

/// Copies the data an IRP's MDL chain describes (at most `len` bytes).
fn read_mdl_chain(mut mdl: *mut MDL, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while !mdl.is_null() && out.len() < len {
        // SAFETY: the client's MDL chain stays valid while the transport owns the IRP.
        let bytes = unsafe { super::kernel::mdl_bytes(mdl) };
        let take = bytes.len().min(len - out.len());
        out.extend_from_slice(&bytes[..take]);
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    out
}

/// Writes `data` into the buffer an IRP's MDL chain describes; returns the bytes written.
fn write_mdl_chain(mut mdl: *mut MDL, data: &[u8]) -> usize {
    let mut off = 0;
    while !mdl.is_null() && off < data.len() {
        // SAFETY: as in read_mdl_chain; the client's receive buffer is writable.
        let bytes = unsafe { super::kernel::mdl_bytes(mdl) };
        let take = bytes.len().min(data.len() - off);
        bytes[..take].copy_from_slice(&data[off..off + take]);
        off += take;
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    off
}

// ------------------------------------------------------------------------------------------------
// Dispatch (IRP_MJ_INTERNAL_DEVICE_CONTROL)

/// The transport's dispatch routine for an IRP passed with `IofCallDriver`.
pub fn dispatch(irp: *mut IRP) -> NTSTATUS {
    let sp = current_sp(irp);
    // SAFETY: the current location was filled by the client's TdiBuild* call.
    let (major, minor, file) =
        unsafe { ((*sp).MajorFunction, (*sp).MinorFunction, (*sp).FileObject) };
    let mut rng = new_rng();
    if usize::from(major) != IRP_MJ_INTERNAL_DEVICE_CONTROL || file.is_null() {
        return finish(&mut rng, irp, STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    // SAFETY: the file object was opened on our device and is referenced by the client.
    let ep = unsafe { file_endpoint(file) };
    match (minor, ep) {
        (TDI_ASSOCIATE_ADDRESS, Endpoint::Conn(c)) => {
            // SAFETY: TDI_REQUEST_KERNEL_ASSOCIATE overlays the parameters.
            let h = unsafe { (*request_params::<TDI_REQUEST_KERNEL_ASSOCIATE>(sp)).AddressHandle };
            let st = match handle_file(h) {
                // SAFETY: a live file object behind a valid handle.
                Some(f) => match unsafe { file_endpoint(f) } {
                    Endpoint::Address(a) => {
                        let mut cur = lock(&c.addr);
                        if cur.is_some() {
                            STATUS_ADDRESS_ALREADY_ASSOCIATED
                        } else {
                            *cur = Some(a.clone());
                            STATUS_SUCCESS
                        }
                    }
                    _ => STATUS_INVALID_HANDLE,
                },
                None => STATUS_INVALID_HANDLE,
            };
            finish(&mut lock(&c.rng), irp, st, 0)
        }
        (TDI_DISASSOCIATE_ADDRESS, Endpoint::Conn(c)) => {
            {
                let st = lock(&c.st);
                if !st.held_connects.is_empty() {
                    violation(
                        "TDI_DISASSOCIATE_ADDRESS with a TDI_CONNECT still pending: the \
                         endpoint is not inactive (TDI_DISASSOCIATE_ADDRESS); cancel the connect \
                         (IoCancelIrp) and wait for it first",
                    );
                }
                if st.stream.is_some()
                    && !st.abort
                    && !st.failed
                    && !st.connecting
                    && !st.closed
                    && !st.disconnect_requested
                {
                    violation(
                        "TDI_DISASSOCIATE_ADDRESS on a connected endpoint that was neither \
                         disconnected (TDI_DISCONNECT) nor reset: disassociation is for inactive \
                         connections (TDI_DISASSOCIATE_ADDRESS)",
                    );
                }
            }
            let st = if lock(&c.addr).take().is_some() {
                STATUS_SUCCESS
            } else {
                STATUS_INVALID_CONNECTION
            };
            finish(&mut lock(&c.rng), irp, st, 0)
        }
        (TDI_SET_EVENT_HANDLER, Endpoint::Address(a)) => {
            // SAFETY: TDI_REQUEST_KERNEL_SET_EVENT overlays the parameters.
            let r = unsafe { *request_params::<TDI_REQUEST_KERNEL_SET_EVENT>(sp) };
            let st = set_handler(
                a,
                r.EventType,
                r.EventHandler as usize,
                r.EventContext as usize,
            );
            finish(&mut rng, irp, st, 0)
        }
        (TDI_QUERY_INFORMATION, _) => {
            // SAFETY: TDI_REQUEST_KERNEL_QUERY_INFORMATION overlays the parameters.
            let q =
                unsafe { (*request_params::<TDI_REQUEST_KERNEL_QUERY_INFORMATION>(sp)).QueryType };
            let local = match ep {
                Endpoint::Address(a) => Some(a.local),
                Endpoint::Conn(c) => lock(&c.st).local,
                Endpoint::Control => None,
            };
            match (q, local) {
                (TDI_QUERY_ADDRESS_INFO, Some(l)) => {
                    let info = TDI_ADDRESS_INFO_IP {
                        ActivityCount: 1,
                        Address: TA_IP_ADDRESS::new(u32::from(*l.ip()), l.port()),
                    };
                    let mut bytes = vec![0u8; 4];
                    bytes.extend_from_slice(&ta_ip_address_bytes(&{ info.Address }));
                    // SAFETY: the client's buffer MDL.
                    let n = write_mdl_chain(unsafe { (*irp).MdlAddress }, &bytes);
                    let st = if n == bytes.len() {
                        STATUS_SUCCESS
                    } else {
                        STATUS_BUFFER_TOO_SMALL
                    };
                    finish(&mut rng, irp, st, n)
                }
                _ => finish(&mut rng, irp, STATUS_NOT_SUPPORTED, 0),
            }
        }
        (TDI_CONNECT, Endpoint::Conn(c)) => connect(c.clone(), irp, sp),
        (TDI_SEND, Endpoint::Conn(c)) => send(c, irp, sp),
        (TDI_RECEIVE, Endpoint::Conn(c)) => {
            bump(&stats().posted_receives);
            let mut st = lock(&c.st);
            if st.closed || st.abort || st.stream.is_none() {
                drop(st);
                return finish(&mut lock(&c.rng), irp, STATUS_INVALID_CONNECTION, 0);
            }
            mark_pending(irp);
            st.recv_irps.push_back(irp as usize);
            c.cv.notify_all();
            STATUS_PENDING
        }
        (TDI_DISCONNECT, Endpoint::Conn(c)) => {
            // SAFETY: TDI_REQUEST_KERNEL overlays the parameters.
            let flags = unsafe { (*request_params::<TDI_REQUEST_KERNEL>(sp)).RequestFlags } as u32;
            lock(&c.st).disconnect_requested = true;
            if flags & TDI_DISCONNECT_ABORT != 0 {
                abort(c, false);
                return finish(&mut lock(&c.rng), irp, STATUS_SUCCESS, 0);
            }
            let mut st = lock(&c.st);
            if st.stream.is_none() || st.abort {
                drop(st);
                return finish(&mut lock(&c.rng), irp, STATUS_SUCCESS, 0);
            }
            mark_pending(irp);
            if DEAF_PEERS.load(Ordering::SeqCst) {
                st.held_fins.push(irp as usize);
                bump(&stats().held);
                return STATUS_PENDING;
            }
            st.sendq.push_back(SendItem::Fin(irp as usize));
            c.cv.notify_all();
            STATUS_PENDING
        }
        _ => finish(&mut rng, irp, STATUS_NOT_SUPPORTED, 0),
    }
}

fn set_handler(a: &Arc<AddrEp>, ty: i32, handler: usize, ctx: usize) -> NTSTATUS {
    {
        let mut h = lock(&a.handlers);
        let Some(slot) = h.0.get_mut(ty as usize) else {
            return STATUS_INVALID_PARAMETER;
        };
        *slot = (handler, ctx);
    }
    if ty == TDI_EVENT_CONNECT && handler != 0 && lock(&a.listener).is_none() {
        let Some(fd) = lock(&a.fd).take() else {
            return STATUS_INVALID_ADDRESS;
        };
        let raw = fd.into_raw_fd();
        // SAFETY: a bound socket we own.
        if unsafe { ffi::listen(raw, 128) } != 0 {
            return STATUS_INVALID_ADDRESS;
        }
        // SAFETY: raw is a listening socket we own; the listener takes it over.
        let l = unsafe { TcpListener::from_raw_fd(raw) };
        let stop = Arc::new(AtomicBool::new(false));
        let (a2, s2) = (a.clone(), stop.clone());
        let t = std::thread::Builder::new()
            .name("tdi-emu-listener".into())
            .spawn(move || listener_thread(a2, l, s2))
            .unwrap_or_else(|_| violation("cannot start a listener thread"));
        *lock(&a.listener) = Some((stop, t));
    }
    STATUS_SUCCESS
}

/// `emu::hold_connects`.
pub(crate) static HOLD_CONNECTS: AtomicBool = AtomicBool::new(false);
/// `emu::deaf_peers`.
pub(crate) static DEAF_PEERS: AtomicBool = AtomicBool::new(false);

/// `IoCancelIrp` for the IRPs this transport holds cancelable (connects and FINs held by the
/// knobs above): completes it with `STATUS_CANCELLED`. False if it is not one of them.
pub(crate) fn cancel(irp: *mut IRP) -> bool {
    let all: Vec<Arc<ConnEp>> = lock(&CONNS).iter().filter_map(Weak::upgrade).collect();
    for c in all {
        let found = {
            let mut st = lock(&c.st);
            let i = irp as usize;
            let before = st.held_connects.len() + st.held_fins.len();
            st.held_connects.retain(|&x| x != i);
            st.held_fins.retain(|&x| x != i);
            before != st.held_connects.len() + st.held_fins.len()
        };
        if found {
            bump(&stats().cancelled);
            complete_irp(irp, STATUS_CANCELLED, 0);
            return true;
        }
    }
    false
}

fn connect(c: Arc<ConnEp>, irp: *mut IRP, sp: *mut IO_STACK_LOCATION) -> NTSTATUS {
    if HOLD_CONNECTS.load(Ordering::SeqCst) {
        mark_pending(irp);
        lock(&c.st).held_connects.push(irp as usize);
        bump(&stats().held);
        return STATUS_PENDING;
    }
    let addr = lock(&c.addr).clone();
    let mut rng = lock(&c.rng).clone();
    let _ = lock(&c.rng).next();
    let Some(addr) = addr else {
        return finish(&mut rng, irp, STATUS_INVALID_CONNECTION, 0);
    };
    // SAFETY: TDI_REQUEST_KERNEL overlays the parameters; the connection information is valid
    // until completion per the client's contract.
    let remote = unsafe {
        let r = *request_params::<TDI_REQUEST_KERNEL>(sp);
        let info = r.RequestConnectionInformation;
        if info.is_null() || (*info).RemoteAddress.is_null() {
            None
        } else {
            let len = (*info).RemoteAddressLength.max(0) as usize;
            parse_transport_address(core::slice::from_raw_parts(
                (*info).RemoteAddress.cast::<u8>(),
                len,
            ))
        }
    };
    let Some((ip, port)) = remote else {
        return finish(&mut rng, irp, STATUS_INVALID_ADDRESS, 0);
    };
    let Some(fd) = lock(&addr.fd).take() else {
        return finish(&mut rng, irp, STATUS_INVALID_ADDRESS, 0);
    };
    let remote = SocketAddrV4::new(Ipv4Addr::from(ip), port);
    let work = move |c: Arc<ConnEp>, irp: IrpPtr| -> NTSTATUS {
        let sa = sockaddr(remote);
        // SAFETY: a bound socket we own, a valid address.
        let rc = unsafe {
            ffi::connect(
                fd.as_raw_fd(),
                &sa,
                core::mem::size_of::<ffi::SockAddrIn>() as u32,
            )
        };
        let irp = irp.0 as *mut IRP;
        if rc != 0 {
            let st = match errno() {
                111 => STATUS_CONNECTION_REFUSED,
                98 | 99 => STATUS_ADDRESS_ALREADY_EXISTS,
                110 => STATUS_IO_TIMEOUT,
                101 => STATUS_NETWORK_UNREACHABLE,
                _ => STATUS_HOST_UNREACHABLE,
            };
            complete_irp(irp, st, 0);
            return st;
        }
        // SAFETY: fd is a connected socket we own.
        let s = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
        lock(&c.st).connecting = true;
        let st = if attach(&c, s) {
            STATUS_SUCCESS
        } else {
            STATUS_CONNECTION_RESET
        };
        // Indications start only after the client saw the connect complete.
        complete_irp(irp, st, 0);
        lock(&c.st).connecting = false;
        start_threads(&c);
        st
    };
    if rng.chance(1, 2) {
        // Connected and completed before IofCallDriver returns, which returns the final status.
        bump(&stats().completed_inline);
        work(c, IrpPtr(irp as usize))
    } else {
        bump(&stats().completed_async);
        mark_pending(irp);
        let p = IrpPtr(irp as usize);
        std::thread::Builder::new()
            .name("tdi-emu-connect".into())
            .spawn(move || {
                work(c, p);
            })
            .unwrap_or_else(|_| violation("cannot start a connect thread"));
        STATUS_PENDING
    }
}

fn attach(c: &Arc<ConnEp>, s: TcpStream) -> bool {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(TICK));
    let _ = s.set_write_timeout(Some(TICK));
    let (Ok(std::net::SocketAddr::V4(l)), Ok(std::net::SocketAddr::V4(p))) =
        (s.local_addr(), s.peer_addr())
    else {
        return false;
    };
    let mut st = lock(&c.st);
    st.local = Some(l);
    st.peer = Some(p);
    st.stream = Some(Arc::new(s));
    true
}

fn start_threads(c: &Arc<ConnEp>) {
    let stream = match lock(&c.st).stream.clone() {
        Some(s) => s,
        None => return,
    };
    let (c1, s1) = (c.clone(), stream.clone());
    let r = std::thread::Builder::new()
        .name("tdi-emu-reader".into())
        .spawn(move || reader_thread(c1, s1))
        .unwrap_or_else(|_| violation("cannot start a reader thread"));
    let (c2, s2) = (c.clone(), stream);
    let w = std::thread::Builder::new()
        .name("tdi-emu-sender".into())
        .spawn(move || sender_thread(c2, s2))
        .unwrap_or_else(|_| violation("cannot start a sender thread"));
    let mut st = lock(&c.st);
    st.threads.push(r);
    st.threads.push(w);
}

fn send(c: &Arc<ConnEp>, irp: *mut IRP, sp: *mut IO_STACK_LOCATION) -> NTSTATUS {
    bump(&stats().sends);
    // SAFETY: TDI_REQUEST_KERNEL_SEND overlays the parameters.
    let len = unsafe { (*request_params::<TDI_REQUEST_KERNEL_SEND>(sp)).SendLength } as usize;
    let mut rng = lock(&c.rng);
    let mut st = lock(&c.st);
    if st.stream.is_none() || st.abort || st.closed {
        drop(st);
        return finish(&mut rng, irp, STATUS_CONNECTION_RESET, 0);
    }
    if st.sendq.is_empty() && !st.sending && len <= 256 * 1024 && rng.chance(1, 2) {
        // The data fits the socket buffer at once: take it now and complete inline.
        // SAFETY: the client's MDL chain for this send.
        let data = read_mdl_chain(unsafe { (*irp).MdlAddress }, len);
        st.sendq.push_back(SendItem::Bytes(data));
        c.cv.notify_all();
        drop(st);
        bump(&stats().sends_inline);
        let pending = rng.chance(1, 2);
        if pending {
            bump(&stats().pending_completed_inline);
            mark_pending(irp);
        } else {
            bump(&stats().completed_inline);
        }
        drop(rng);
        complete_irp(irp, STATUS_SUCCESS, len);
        return if pending {
            STATUS_PENDING
        } else {
            STATUS_SUCCESS
        };
    }
    bump(&stats().completed_async);
    mark_pending(irp);
    st.sendq.push_back(SendItem::Irp(irp as usize));
    c.cv.notify_all();
    STATUS_PENDING
}

// ------------------------------------------------------------------------------------------------
// Threads

fn listener_thread(a: Arc<AddrEp>, l: TcpListener, stop: Arc<AtomicBool>) {
    let _ = l.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, std::net::SocketAddr::V4(peer))) => incoming(&a, s, peer),
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn incoming(a: &Arc<AddrEp>, s: TcpStream, peer: SocketAddrV4) {
    let _ = s.set_nonblocking(false);
    let Some((h, ctx)) = lock(&a.handlers).get(TDI_EVENT_CONNECT) else {
        return;
    };
    if a.closed.load(Ordering::Relaxed) {
        return;
    }
    bump(&stats().connect_indications);
    let mut remote = TA_IP_ADDRESS::new(u32::from(*peer.ip()), peer.port());
    let mut conn_ctx: CONNECTION_CONTEXT = core::ptr::null_mut();
    let mut accept_irp: *mut IRP = core::ptr::null_mut();
    // SAFETY: the client registered this handler with this signature.
    let f: PTDI_IND_CONNECT = unsafe { core::mem::transmute::<usize, PTDI_IND_CONNECT>(h) };
    let st = at_dispatch("ClientEventConnect", || {
        // SAFETY: valid arguments for the duration of the call.
        unsafe {
            f(
                ctx as *mut c_void,
                core::mem::size_of::<TA_IP_ADDRESS>() as i32,
                (&mut remote as *mut TA_IP_ADDRESS).cast(),
                0,
                core::ptr::null_mut(),
                0,
                core::ptr::null_mut(),
                &mut conn_ctx,
                &mut accept_irp,
            )
        }
    });
    if st != STATUS_MORE_PROCESSING_REQUIRED {
        return; // refused: dropping the socket closes it
    }
    if accept_irp.is_null() {
        violation(
            "ClientEventConnect returned STATUS_MORE_PROCESSING_REQUIRED without an accept IRP",
        );
    }
    take_irp(accept_irp, "accept IRP returned from ClientEventConnect");
    let sp = current_sp(accept_irp);
    // SAFETY: the client built the IRP with TdiBuildAccept and IoSetNextIrpStackLocation.
    let (major, minor, file) =
        unsafe { ((*sp).MajorFunction, (*sp).MinorFunction, (*sp).FileObject) };
    if usize::from(major) != IRP_MJ_INTERNAL_DEVICE_CONTROL || minor != TDI_ACCEPT || file.is_null()
    {
        violation(
            "the IRP returned from ClientEventConnect is not a TDI_ACCEPT at the current stack \
             location (TdiBuildAccept, then IoSetNextIrpStackLocation)",
        );
    }
    // SAFETY: current location belongs to the transport now.
    unsafe { (*sp).DeviceObject = TCP_DEVICE.0 };
    // SAFETY: a live connection file object of ours.
    let Endpoint::Conn(c) = (unsafe { file_endpoint(file) }) else {
        violation("TDI_ACCEPT on a file object that is not a connection object");
    };
    let associated = lock(&c.addr).as_ref().is_some_and(|x| Arc::ptr_eq(x, a));
    if !associated {
        violation("TDI_ACCEPT on a connection object not associated with the listening address");
    }
    if c.context != conn_ctx as usize {
        violation(
            "ClientEventConnect returned a ConnectionContext other than the accepting object's",
        );
    }
    let c = c.clone();
    let ok = attach(&c, s);
    bump(&stats().accepts);
    complete_irp(
        accept_irp,
        if ok {
            STATUS_SUCCESS
        } else {
            STATUS_CONNECTION_RESET
        },
        0,
    );
    if ok {
        start_threads(&c);
    }
}

/// Calls `f` with the indication lock held, unless the connection is closed.
fn indicate<R>(c: &ConnEp, f: impl FnOnce() -> R) -> Option<R> {
    let _g = lock(&c.ind);
    if lock(&c.st).closed {
        return None;
    }
    Some(f())
}

fn handlers_of(c: &ConnEp) -> Handlers {
    match lock(&c.addr).as_ref() {
        Some(a) if !a.closed.load(Ordering::Relaxed) => *lock(&a.handlers),
        _ => Handlers::default(),
    }
}

struct RxBuf {
    data: Vec<u8>,
    off: usize,
}
impl RxBuf {
    fn avail(&self) -> &[u8] {
        &self.data[self.off..]
    }
    fn consume(&mut self, n: usize) {
        self.off += n;
        if self.off == self.data.len() {
            self.data.clear();
            self.off = 0;
        }
    }
}

fn reader_thread(c: Arc<ConnEp>, s: Arc<TcpStream>) {
    let mut rng = lock(&c.rng).clone();
    let _ = lock(&c.rng).next();
    let mut buf = RxBuf {
        data: Vec::new(),
        off: 0,
    };
    let mut eof = false;
    let mut err = 0i32;
    let mut told = false;
    loop {
        let (closed, inject, abort, irp) = {
            let mut st = lock(&c.st);
            let irp = if buf.avail().is_empty() && !eof && err == 0 {
                None
            } else {
                st.recv_irps.pop_front()
            };
            (st.closed, st.inject, st.abort, irp)
        };
        if closed {
            if let Some(i) = irp {
                lock(&c.st).recv_irps.push_front(i);
            }
            return;
        }
        if inject {
            if let Some(i) = irp {
                lock(&c.st).recv_irps.push_front(i);
            }
            reset_from_network(&c, &s);
            return;
        }
        if abort {
            if let Some(i) = irp {
                lock(&c.st).recv_irps.push_front(i);
            }
            return;
        }
        if let Some(i) = irp {
            let irp = i as *mut IRP;
            let sp = current_sp(irp);
            // SAFETY: a posted TDI_RECEIVE.
            let want = unsafe { (*request_params::<TDI_REQUEST_KERNEL_RECEIVE>(sp)).ReceiveLength }
                as usize;
            let n = want.min(buf.avail().len());
            if n > 0 {
                // SAFETY: the client's receive buffer.
                let w = write_mdl_chain(unsafe { (*irp).MdlAddress }, &buf.avail()[..n]);
                buf.consume(w);
                lock(&c.st).not_accepting = false;
                complete_irp(irp, STATUS_SUCCESS, w);
            } else if err != 0 {
                complete_irp(irp, STATUS_CONNECTION_RESET, 0);
            } else {
                complete_irp(irp, STATUS_SUCCESS, 0);
            }
            continue;
        }
        if buf.avail().is_empty() {
            if err != 0 || eof {
                if !told {
                    told = true;
                    let h = handlers_of(&c);
                    if err != 0 {
                        lock(&c.st).failed = true;
                        bump(&stats().disconnect_abort);
                        indicate_error(&c, &h, STATUS_CONNECTION_RESET);
                        indicate_disconnect(&c, &h, TDI_DISCONNECT_ABORT);
                    } else {
                        bump(&stats().disconnect_release);
                        if indicate_disconnect(&c, &h, TDI_DISCONNECT_RELEASE) {
                            lock(&c.st).release_indicated = true;
                        }
                    }
                }
                let st = lock(&c.st);
                let _ = c.cv.wait_timeout(st, TICK);
                continue;
            }
            let want = if rng.chance(1, 4) {
                rng.range(1, 64)
            } else {
                rng.range(1, 64 * 1024)
            } as usize;
            let mut tmp = vec![0u8; want];
            match (&*s).read(&mut tmp) {
                Ok(0) => eof = true,
                Ok(n) => {
                    stats()
                        .bytes_received
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tmp.truncate(n);
                    buf.data.extend_from_slice(&tmp);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => err = e.raw_os_error().unwrap_or(104),
            }
            continue;
        }
        if lock(&c.st).not_accepting {
            let st = lock(&c.st);
            let _ = c.cv.wait_timeout(st, TICK);
            continue;
        }
        let h = handlers_of(&c);
        let recv = h.get(TDI_EVENT_RECEIVE);
        let chained = h.get(TDI_EVENT_CHAINED_RECEIVE);
        let use_chained = match (recv, chained) {
            (None, None) => {
                let st = lock(&c.st);
                let _ = c.cv.wait_timeout(st, TICK);
                continue;
            }
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(_), Some(_)) => rng.chance(1, 2),
        };
        if use_chained {
            if let Some((f, ctx)) = chained {
                indicate_chained(&c, &mut rng, &mut buf, f, ctx);
            }
        } else if let Some((f, ctx)) = recv {
            indicate_receive(&c, &mut rng, &mut buf, f, ctx);
        }
    }
}

fn indicate_receive(c: &Arc<ConnEp>, rng: &mut Rng, buf: &mut RxBuf, f: usize, ctx: usize) {
    let avail = buf.avail().len();
    let indicated = if avail > 1 && rng.chance(1, 3) {
        rng.range(1, avail as u64 - 1) as usize
    } else {
        avail
    };
    bump(&stats().receive_indications);
    if indicated < avail {
        bump(&stats().partial_indications);
    }
    let flags = TDI_RECEIVE_NORMAL
        | TDI_RECEIVE_AT_DISPATCH_LEVEL
        | if indicated == avail {
            TDI_RECEIVE_ENTIRE_MESSAGE
        } else {
            0
        };
    let mut taken: u32 = 0;
    let mut irp_out: *mut IRP = core::ptr::null_mut();
    // SAFETY: the client registered this handler with this signature.
    let handler: PTDI_IND_RECEIVE = unsafe { core::mem::transmute::<usize, PTDI_IND_RECEIVE>(f) };
    let tsdu = buf.avail().as_ptr() as *mut c_void;
    let r = indicate(c, || {
        at_dispatch("ClientEventReceive", || {
            // SAFETY: the TSDU stays valid for the call; out pointers are ours.
            unsafe {
                handler(
                    ctx as *mut c_void,
                    c.context as *mut c_void,
                    flags,
                    indicated as u32,
                    avail as u32,
                    &mut taken,
                    tsdu,
                    &mut irp_out,
                )
            }
        })
    });
    let Some(status) = r else { return };
    if taken as usize > indicated {
        violation("ClientEventReceive took more bytes than were indicated");
    }
    buf.consume(taken as usize);
    match status {
        STATUS_SUCCESS => {}
        STATUS_MORE_PROCESSING_REQUIRED => {
            if irp_out.is_null() {
                violation(
                    "ClientEventReceive returned STATUS_MORE_PROCESSING_REQUIRED without an IRP",
                );
            }
            take_irp(irp_out, "receive IRP returned from ClientEventReceive");
            let sp = current_sp(irp_out);
            // SAFETY: the client built the IRP (TdiBuildReceive + IoSetNextIrpStackLocation).
            let (major, minor, file, want) = unsafe {
                (
                    (*sp).MajorFunction,
                    (*sp).MinorFunction,
                    (*sp).FileObject,
                    (*request_params::<TDI_REQUEST_KERNEL_RECEIVE>(sp)).ReceiveLength as usize,
                )
            };
            if usize::from(major) != IRP_MJ_INTERNAL_DEVICE_CONTROL
                || minor != TDI_RECEIVE
                || file as usize != c.file.load(Ordering::Relaxed)
            {
                violation(
                    "the IRP returned from ClientEventReceive is not a TDI_RECEIVE for this \
                     connection at the current stack location (TdiBuildReceive, then \
                     IoSetNextIrpStackLocation)",
                );
            }
            // SAFETY: the transport owns the current location.
            unsafe { (*sp).DeviceObject = TCP_DEVICE.0 };
            bump(&stats().receive_irps_from_handler);
            let n = want.min(buf.avail().len());
            if n == 0 {
                mark_pending(irp_out);
                lock(&c.st).recv_irps.push_front(irp_out as usize);
            } else {
                // SAFETY: the client's receive buffer.
                let w = write_mdl_chain(unsafe { (*irp_out).MdlAddress }, &buf.avail()[..n]);
                buf.consume(w);
                complete_irp(irp_out, STATUS_SUCCESS, w);
            }
        }
        STATUS_DATA_NOT_ACCEPTED => {
            bump(&stats().data_not_accepted);
            lock(&c.st).not_accepting = true;
        }
        other => violation(&format!(
            "ClientEventReceive returned unexpected status {other:#x}"
        )),
    }
}

/// A chained-receive TSDU: the data buffer and the MDL chain over it.
struct ChainedTsdu {
    _data: Vec<u8>,
    mdls: Vec<usize>,
}

static CHAINED: LazyLock<Mutex<HashSet<usize>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

pub(crate) fn chained_outstanding() -> usize {
    lock(&CHAINED).len()
}

fn free_chained(t: Box<ChainedTsdu>) {
    for &m in &t.mdls {
        // SAFETY: MDLs we allocated for this TSDU (unlocked first when they were locked).
        unsafe {
            if (*(m as *mut MDL)).MdlFlags & MDL_PAGES_LOCKED != 0 {
                MmUnlockPages(m as *mut MDL);
            }
            IoFreeMdl(m as *mut MDL);
        }
    }
    drop(t);
}

fn indicate_chained(c: &Arc<ConnEp>, rng: &mut Rng, buf: &mut RxBuf, f: usize, ctx: usize) {
    let avail = buf.avail().len();
    let k = if avail > 1 && rng.chance(1, 3) {
        rng.range(1, avail as u64) as usize
    } else {
        avail
    };
    let prefix = rng.range(0, 24) as usize;
    let mut data = vec![0xEEu8; prefix];
    data.extend_from_slice(&buf.avail()[..k]);
    // Split into 1..=4 MDLs.
    let total = data.len();
    let parts = rng.range(1, 4.min(total as u64)) as usize;
    let mut cuts: Vec<usize> = (1..parts)
        .map(|_| rng.range(1, total as u64 - 1) as usize)
        .collect();
    cuts.push(0);
    cuts.push(total);
    cuts.sort_unstable();
    cuts.dedup();
    let mut mdls: Vec<usize> = Vec::new();
    let base = data.as_mut_ptr();
    // While mapping failures are injected, the TSDU's MDLs are locked but not mapped (as a
    // miniport's receive buffers may be), so the client has to map them.
    let unmapped = super::kernel::mapping_failures_pending();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        // SAFETY: a sub-range of `data`, which lives as long as the TSDU.
        let m = unsafe {
            let m = IoAllocateMdl(
                base.add(a).cast(),
                (b - a) as u32,
                FALSE,
                FALSE,
                core::ptr::null_mut(),
            );
            if unmapped {
                MmProbeAndLockPages(m, KERNEL_MODE, IO_READ_ACCESS);
            } else {
                MmBuildMdlForNonPagedPool(m);
            }
            m
        };
        if let Some(&prev) = mdls.last() {
            // SAFETY: our MDLs.
            unsafe { (*(prev as *mut MDL)).Next = m };
        }
        mdls.push(m as usize);
    }
    let first = mdls.first().copied().unwrap_or(0) as *mut MDL;
    let t = Box::new(ChainedTsdu { _data: data, mdls });
    let desc = Box::into_raw(t);
    lock(&CHAINED).insert(desc as usize);
    bump(&stats().chained_indications);
    // SAFETY: the client registered this handler with this signature.
    let handler: PTDI_IND_CHAINED_RECEIVE =
        unsafe { core::mem::transmute::<usize, PTDI_IND_CHAINED_RECEIVE>(f) };
    let r = indicate(c, || {
        at_dispatch("ClientEventChainedReceive", || {
            // SAFETY: the MDL chain and descriptor stay valid until returned or freed below.
            unsafe {
                handler(
                    ctx as *mut c_void,
                    c.context as *mut c_void,
                    TDI_RECEIVE_NORMAL | TDI_RECEIVE_ENTIRE_MESSAGE | TDI_RECEIVE_AT_DISPATCH_LEVEL,
                    k as u32,
                    prefix as u32,
                    first,
                    desc.cast(),
                )
            }
        })
    });
    let status = r.unwrap_or(STATUS_DATA_NOT_ACCEPTED);
    match status {
        STATUS_SUCCESS | STATUS_PENDING => {
            buf.consume(k);
            if status == STATUS_PENDING {
                bump(&stats().chained_retained);
                stats().chained_outstanding.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        STATUS_DATA_NOT_ACCEPTED => {
            if r.is_some() {
                bump(&stats().data_not_accepted);
                lock(&c.st).not_accepting = true;
            }
        }
        other => violation(&format!(
            "ClientEventChainedReceive returned unexpected status {other:#x}"
        )),
    }
    lock(&CHAINED).remove(&(desc as usize));
    // SAFETY: not retained: ours to free.
    free_chained(unsafe { Box::from_raw(desc) });
}

#[no_mangle]
pub unsafe extern "system" fn TdiReturnChainedReceives(descs: *mut *mut c_void, n: u32) {
    require(DISPATCH_LEVEL, "TdiReturnChainedReceives");
    for i in 0..n as usize {
        // SAFETY: the caller passes n descriptors.
        let d = unsafe { *descs.add(i) } as usize;
        if !lock(&CHAINED).remove(&d) {
            violation("TdiReturnChainedReceives with a descriptor not retained (returned twice?)");
        }
        stats().chained_outstanding.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: a retained TSDU created by indicate_chained.
        free_chained(unsafe { Box::from_raw(d as *mut ChainedTsdu) });
    }
}

fn indicate_error(c: &ConnEp, h: &Handlers, status: NTSTATUS) {
    if let Some((f, ctx)) = h.get(TDI_EVENT_ERROR) {
        bump(&stats().error_indications);
        // SAFETY: the client registered this handler with this signature.
        let handler: PTDI_IND_ERROR = unsafe { core::mem::transmute::<usize, PTDI_IND_ERROR>(f) };
        // SAFETY: plain arguments.
        indicate(c, || {
            at_dispatch("ClientEventError", || unsafe {
                handler(ctx as *mut c_void, status)
            })
        });
    }
}

/// Calls `ClientEventDisconnect`; true if the client's handler ran.
fn indicate_disconnect(c: &ConnEp, h: &Handlers, flags: u32) -> bool {
    if let Some((f, ctx)) = h.get(TDI_EVENT_DISCONNECT) {
        // SAFETY: the client registered this handler with this signature.
        let handler: PTDI_IND_DISCONNECT =
            unsafe { core::mem::transmute::<usize, PTDI_IND_DISCONNECT>(f) };
        indicate(c, || {
            at_dispatch("ClientEventDisconnect", || {
                // SAFETY: plain arguments.
                unsafe {
                    handler(
                        ctx as *mut c_void,
                        c.context as *mut c_void,
                        0,
                        core::ptr::null_mut(),
                        0,
                        core::ptr::null_mut(),
                        flags,
                    )
                }
            })
        })
        .is_some()
    } else {
        false
    }
}

fn write_all(c: &ConnEp, s: &TcpStream, data: &[u8]) -> bool {
    let mut off = 0;
    while off < data.len() {
        {
            let st = lock(&c.st);
            if st.abort || st.closed {
                return false;
            }
        }
        match (&*s).write(&data[off..]) {
            Ok(0) => return false,
            Ok(n) => {
                stats().bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                off += n;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

fn sender_thread(c: Arc<ConnEp>, s: Arc<TcpStream>) {
    let mut failed = false;
    loop {
        let item = {
            let mut st = lock(&c.st);
            loop {
                if st.closed || st.abort {
                    return;
                }
                if let Some(i) = st.sendq.pop_front() {
                    st.sending = true;
                    break i;
                }
                st =
                    c.cv.wait_timeout(st, TICK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
            }
        };
        match item {
            SendItem::Bytes(v) => {
                if !failed && !write_all(&c, &s, &v) {
                    failed = true;
                }
            }
            SendItem::Irp(i) => {
                let irp = i as *mut IRP;
                let sp = current_sp(irp);
                // SAFETY: a TDI_SEND the transport owns.
                let len =
                    unsafe { (*request_params::<TDI_REQUEST_KERNEL_SEND>(sp)).SendLength } as usize;
                // Copy only now: the client's buffers must still be valid.
                // SAFETY: the client's MDL chain.
                let data = read_mdl_chain(unsafe { (*irp).MdlAddress }, len);
                if !failed && !write_all(&c, &s, &data) {
                    failed = true;
                }
                if failed {
                    complete_irp(irp, STATUS_CONNECTION_RESET, 0);
                } else {
                    complete_irp(irp, STATUS_SUCCESS, len);
                }
            }
            SendItem::Fin(i) => {
                let _ = s.shutdown(Shutdown::Write);
                complete_irp(i as *mut IRP, STATUS_SUCCESS, 0);
            }
        }
        lock(&c.st).sending = false;
    }
}

/// Aborts the connection: RST to the peer; the local client learns of it only when
/// `indicate` (a reset from the network rather than a `TDI_DISCONNECT` with abort).
fn abort(c: &Arc<ConnEp>, indicate_client: bool) {
    let (stream, irps) = {
        let mut st = lock(&c.st);
        if st.abort {
            return;
        }
        st.abort = true;
        let mut irps: Vec<usize> = st.recv_irps.drain(..).collect();
        irps.append(&mut st.held_fins);
        irps.append(&mut st.held_connects);
        for item in st.sendq.drain(..) {
            if let SendItem::Irp(i) | SendItem::Fin(i) = item {
                irps.push(i);
            }
        }
        c.cv.notify_all();
        (st.stream.take(), irps)
    };
    if let Some(s) = stream.as_ref() {
        set_linger0(s.as_raw_fd());
        let _ = s.shutdown(Shutdown::Read);
    }
    if indicate_client {
        let h = handlers_of(c);
        bump(&stats().disconnect_abort);
        indicate_error(c, &h, STATUS_CONNECTION_RESET);
        indicate_disconnect(c, &h, TDI_DISCONNECT_ABORT);
    }
    for i in irps {
        complete_irp(i as *mut IRP, STATUS_CONNECTION_RESET, 0);
    }
}

fn reset_from_network(c: &Arc<ConnEp>, _s: &Arc<TcpStream>) {
    abort(c, true);
}

pub(crate) fn inject_reset(
    pred: &dyn Fn(SocketAddrV4, SocketAddrV4) -> bool,
) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let all: Vec<Arc<ConnEp>> = lock(&CONNS).iter().filter_map(Weak::upgrade).collect();
    let mut reset = Vec::new();
    for c in all {
        let mut st = lock(&c.st);
        if let (Some(l), Some(p), false, false) = (st.local, st.peer, st.closed, st.abort) {
            if pred(l, p) {
                st.inject = true;
                c.cv.notify_all();
                reset.push((l, p));
            }
        }
    }
    reset
}

/// `IRP_MJ_CLEANUP` of a file object (its last handle closed): stops the endpoint, cancels its
/// pending IRPs, and guarantees no event handler runs for it afterwards.
///
/// # Safety
/// `f` must be a live file object of ours.
pub unsafe fn cleanup(f: *mut FILE_OBJECT) {
    // SAFETY: per the contract.
    match unsafe { file_endpoint(f) } {
        Endpoint::Control => {}
        Endpoint::Address(a) => {
            a.closed.store(true, Ordering::Relaxed);
            *lock(&a.handlers) = Handlers::default();
            let l = lock(&a.listener).take();
            if let Some((stop, t)) = l {
                stop.store(true, Ordering::Relaxed);
                let _ = t.join();
            }
            lock(&a.fd).take();
        }
        Endpoint::Conn(c) => {
            {
                let mut st = lock(&c.st);
                if st.release_indicated && !st.disconnect_requested && !st.abort {
                    violation(
                        "connection object closed after a TDI_DISCONNECT_RELEASE indication \
                         without acknowledging it with a TDI_DISCONNECT (TDI_DISCONNECT; \
                         Disconnecting an Endpoint-to-Endpoint Connection)",
                    );
                }
                st.closed = true;
                c.cv.notify_all();
            }
            // Wait for a handler in progress.
            drop(lock(&c.ind));
            let (threads, stream) = {
                let mut st = lock(&c.st);
                (core::mem::take(&mut st.threads), st.stream.take())
            };
            if let Some(s) = stream.as_ref() {
                let _ = s.shutdown(Shutdown::Both);
            }
            for t in threads {
                let _ = t.join();
            }
            let irps: Vec<usize> = {
                let mut st = lock(&c.st);
                let mut v: Vec<usize> = st.recv_irps.drain(..).collect();
                v.append(&mut st.held_fins);
                v.append(&mut st.held_connects);
                for item in st.sendq.drain(..) {
                    if let SendItem::Irp(i) | SendItem::Fin(i) = item {
                        v.push(i);
                    }
                }
                v
            };
            // Some complete during the cleanup, others a little later (a transport may finish
            // cancelling after IRP_MJ_CLEANUP returned): the client must keep its reference to
            // the file object until they are back (checked in `complete_irp`).
            let mut rng = lock(&c.rng).clone();
            for i in irps {
                if rng.chance(1, 2) {
                    complete_irp(i as *mut IRP, STATUS_CANCELLED, 0);
                } else {
                    // (Queued IRPs are marked pending already.)
                    let delay = rng.range(1, 300);
                    if lock(&COMPLETER)
                        .send((i, STATUS_CANCELLED, 0, delay))
                        .is_err()
                    {
                        violation("completer thread gone");
                    }
                }
            }
            lock(&c.addr).take();
        }
    }
}
