//! The runtime's only `unsafe` code: the few libc calls std does not offer (binding a socket
//! before connecting, listen backlog, poll(2), socket options, signal handlers), and the raw
//! slices a send in flight holds while the engine lock is released. Every block says which
//! contract makes it sound.

use std::io::{self, IoSlice};
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = a.port().to_be();
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    sa
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: i32) -> io::Result<()> {
    let v: libc::c_int = v;
    // SAFETY: `fd` is a socket we own; the option value is a c_int that lives across the call
    // and its size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is a socket we own; `v` and `len` are valid for writes of the sizes given.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// A new non-blocking, close-on-exec IPv4 TCP socket with `SO_REUSEADDR` (so a local port in
/// TIME_WAIT can be bound again, as Lustre's own sockets do).
fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and nobody else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt_int(owned.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    Ok(owned)
}

fn bind(fd: RawFd, local: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr_in(local);
    // SAFETY: `sa` is a valid sockaddr_in whose size is passed; `fd` is our socket.
    cvt(unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Which step of [`connect_from`] failed.
#[derive(Debug)]
pub enum ConnectError {
    Socket(io::Error),
    Bind(io::Error),
    Connect(io::Error),
}

/// Creates a non-blocking socket bound to `local` and starts connecting it to `peer`.
/// `Ok((stream, true))`: connected at once; `Ok((stream, false))`: in progress (wait for
/// POLLOUT, then [`take_error`]).
pub fn connect_from(
    local: SocketAddrV4,
    peer: SocketAddrV4,
) -> Result<(TcpStream, bool), ConnectError> {
    let fd = tcp_socket().map_err(ConnectError::Socket)?;
    bind(fd.as_raw_fd(), local).map_err(ConnectError::Bind)?;
    let sa = sockaddr_in(peer);
    // SAFETY: `sa` is a valid sockaddr_in whose size is passed; `fd` is our socket.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let stream = TcpStream::from(fd);
    if r == 0 {
        return Ok((stream, true));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok((stream, false))
    } else {
        Err(ConnectError::Connect(e))
    }
}

/// The pending error of a socket (`SO_ERROR`), e.g. the outcome of a non-blocking connect.
pub fn take_error(s: &TcpStream) -> io::Result<Option<io::Error>> {
    let e = getsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((e != 0).then(|| io::Error::from_raw_os_error(e)))
}

/// A listening socket on `addr` with `SO_REUSEADDR` and the given backlog, non-blocking.
pub fn listen(addr: SocketAddrV4, backlog: u32) -> io::Result<TcpListener> {
    let fd = tcp_socket()?;
    bind(fd.as_raw_fd(), addr)?;
    let backlog = libc::c_int::try_from(backlog.max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen(2) on our bound socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(TcpListener::from(fd))
}

/// Socket buffer sizes (`SO_SNDBUF`, `SO_RCVBUF`); a size of 0 keeps the system default.
pub fn set_buffers(s: &TcpStream, tx: u32, rx: u32) -> io::Result<()> {
    let fd = s.as_raw_fd();
    if tx > 0 {
        setsockopt_int(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            tx.min(i32::MAX as u32) as i32,
        )?;
    }
    if rx > 0 {
        setsockopt_int(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            rx.min(i32::MAX as u32) as i32,
        )?;
    }
    Ok(())
}

/// The socket's current buffer sizes (send, receive), as `conn_list` prints them.
pub fn buffers(s: &TcpStream) -> (u32, u32) {
    let fd = s.as_raw_fd();
    let get = |name| {
        getsockopt_int(fd, libc::SOL_SOCKET, name)
            .map(|v| u32::try_from(v).unwrap_or(0))
            .unwrap_or(0)
    };
    (get(libc::SO_SNDBUF), get(libc::SO_RCVBUF))
}

/// TCP keepalive: `SO_KEEPALIVE` with idle/count/interval, as ksocklnd sets it (only when all
/// three are positive).
pub fn set_keepalive(s: &TcpStream, idle: u32, count: u32, intvl: u32) -> io::Result<()> {
    let fd = s.as_raw_fd();
    let on = idle > 0 && count > 0 && intvl > 0;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(on))?;
    if on {
        let c = |v: u32| v.min(i32::MAX as u32) as i32;
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, c(idle))?;
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, c(count))?;
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, c(intvl))?;
    }
    Ok(())
}

pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;
pub const POLLERR: i16 = libc::POLLERR;
pub const POLLHUP: i16 = libc::POLLHUP;

/// One poll(2) entry.
pub type PollFd = libc::pollfd;

pub fn pollfd(fd: RawFd, events: i16) -> PollFd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// poll(2) over `fds` for at most `timeout_ms` (EINTR counts as a timeout).
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the length passed.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(usize::try_from(r).unwrap_or(0))
}

/// The bytes of a send in flight, held while the engine lock is released (one TDI_SEND IRP's
/// MDL chain): every slice `Engine::tx_slices` lent — packed framing, which the engine keeps
/// boxed per message at a fixed address, payload buffers and handshake messages — recorded as
/// (pointer, length) and written from where it is, without a copy. The engine keeps those
/// bytes in place and unchanged until `tx_commit` or `release` (its `tx_slices` contract).
#[derive(Default)]
pub struct Lent {
    /// (pointer, length) of every slice in order. Its capacity is kept between sends (no
    /// allocation per send once it has grown).
    parts: Vec<(*const u8, usize)>,
    pub total: usize,
}

/// Most slices one vectored write takes from a [`Lent`] (the runtime asks for no more).
pub const LENT_MAX_IOV: usize = 64;

impl Lent {
    /// Records `slices` (from `Engine::tx_slices`). The caller then releases the engine lock,
    /// and must not call `tx_commit` or `release` for this connection, nor drop its engine,
    /// before it is done with [`Lent::write_to`].
    pub fn capture(&mut self, slices: &[&[u8]]) {
        self.parts.clear();
        self.total = 0;
        for s in slices.iter().take(LENT_MAX_IOV) {
            if s.is_empty() {
                continue;
            }
            self.total = self.total.saturating_add(s.len());
            self.parts.push((s.as_ptr(), s.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn clear(&mut self) {
        self.parts.clear();
        self.total = 0;
    }

    /// One vectored write (writev) of the lent slices to `w`.
    pub fn write_to(&self, mut w: impl io::Write) -> io::Result<usize> {
        let mut iov: [IoSlice<'_>; LENT_MAX_IOV] = [IoSlice::new(&[]); LENT_MAX_IOV];
        let mut n = 0usize;
        for (slot, &(p, len)) in iov.iter_mut().zip(self.parts.iter()) {
            // SAFETY: each (p, len) is a slice lent by `Engine::tx_slices`, which stays valid
            // and unchanged until this connection's `tx_commit` or `release`; the runtime calls
            // neither (and keeps the engine alive) while a `Lent` is outstanding.
            *slot = IoSlice::new(unsafe { std::slice::from_raw_parts(p, len) });
            n += 1;
        }
        w.write_vectored(iov.get(..n).unwrap_or(&[]))
    }
}

// SAFETY: a `Lent` only holds pointers to immutable bytes (see `io_slices`) that outlive it by
// the runtime's protocol; moving it to another thread does not change that.
unsafe impl Send for Lent {}

static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = [1u8];
        // SAFETY: write(2) is async-signal-safe; `fd` is the write end of our socket pair,
        // which lives for the rest of the process (it is leaked on purpose).
        let _ = unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
    }
}

/// Makes SIGINT and SIGTERM write a byte to the returned stream's peer (the self-pipe trick):
/// poll the returned end to learn that a stop was asked for. Call once per process.
pub fn stop_signals() -> io::Result<UnixStream> {
    let (rd, wr) = UnixStream::pair()?;
    rd.set_nonblocking(true)?;
    wr.set_nonblocking(true)?;
    SIGNAL_FD.store(wr.as_raw_fd(), Ordering::Relaxed);
    mem::forget(wr);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; all-zero is a valid starting value.
        let mut sa: libc::sigaction = unsafe { mem::zeroed() };
        sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: installs an async-signal-safe handler for a catchable signal.
        cvt(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) })?;
    }
    Ok(rd)
}

/// Whether the effective user is root (for messages about privileged ports).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Is `ip` assigned to an interface here? (Binding it tells: EADDRNOTAVAIL when not.)
pub fn ip_is_local(ip: Ipv4Addr) -> bool {
    match tcp_socket() {
        Ok(fd) => bind(fd.as_raw_fd(), SocketAddrV4::new(ip, 0)).is_ok(),
        Err(_) => false,
    }
}

/// Sends `sig` to process `pid` (tests and the CLI stop daemons this way).
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

pub const SIGINT: i32 = libc::SIGINT;
pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGSTOP: i32 = libc::SIGSTOP;
pub const SIGCONT: i32 = libc::SIGCONT;

pub const EADDRINUSE: i32 = libc::EADDRINUSE;
pub const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;
pub const EACCES: i32 = libc::EACCES;
pub const EPERM: i32 = libc::EPERM;
pub const ETIMEDOUT: i32 = libc::ETIMEDOUT;
pub const ECONNRESET: i32 = libc::ECONNRESET;
pub const EIO: i32 = libc::EIO;

/// Current resident set size of this process in bytes (`/proc/self/statm`), if readable.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf(3) has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).unwrap_or(4096)))
}

/// CPU time consumed by this process so far, all threads, user + system
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_time() -> std::time::Duration {
    // SAFETY: timespec is plain old data; all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the call to fill.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// A global allocator that counts allocations and bytes while counting is switched on
/// ([`CountingAlloc::set_counting`]), and is plain `System` otherwise (one relaxed load per
/// call). Binaries that want allocation figures install it:
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;` (the `tdinal` CLI does, for
/// `tdinal bench`).
pub struct CountingAlloc;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set once the allocator has served a call: tells whether it is installed.
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static ALLOC_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ALLOC_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static FREE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What [`CountingAlloc`] counted so far (while counting was on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCounts {
    /// `alloc`, `alloc_zeroed` and `realloc` calls.
    pub calls: u64,
    /// Bytes allocated (a realloc counts its new size) and freed (its old size).
    pub bytes: u64,
    pub freed: u64,
}

impl AllocCounts {
    /// Live heap growth between `earlier` and `self` (negative: shrank).
    pub fn live_delta(&self, earlier: &AllocCounts) -> i64 {
        let a = self.bytes.wrapping_sub(earlier.bytes) as i64;
        let f = self.freed.wrapping_sub(earlier.freed) as i64;
        a.wrapping_sub(f)
    }
}

impl CountingAlloc {
    /// Whether this allocator is the process's global allocator.
    pub fn installed() -> bool {
        // Any allocation reaches the global allocator; make one to be sure.
        let probe = std::hint::black_box(Box::new(0u64));
        drop(probe);
        INSTALLED.load(Ordering::Relaxed)
    }
    pub fn set_counting(on: bool) {
        COUNTING.store(on, Ordering::SeqCst);
    }
    pub fn counts() -> AllocCounts {
        AllocCounts {
            calls: ALLOC_CALLS.load(Ordering::SeqCst),
            bytes: ALLOC_BYTES.load(Ordering::SeqCst),
            freed: FREE_BYTES.load(Ordering::SeqCst),
        }
    }
    #[inline]
    fn note(alloc: usize, freed: usize) {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        if COUNTING.load(Ordering::Relaxed) {
            if alloc > 0 {
                ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
                ALLOC_BYTES.fetch_add(alloc as u64, Ordering::Relaxed);
            }
            if freed > 0 {
                FREE_BYTES.fetch_add(freed as u64, Ordering::Relaxed);
            }
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the GlobalAlloc
// contract; the counters are atomics touched only on the side.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::note(layout.size().max(1), 0);
        // SAFETY: forwarded with the caller's layout (the caller upholds alloc's contract).
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::note(layout.size().max(1), 0);
        // SAFETY: as for `alloc`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        Self::note(0, layout.size().max(1));
        // SAFETY: `ptr` was allocated by `System` (through us) with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        Self::note(new.max(1), layout.size().max(1));
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`; the caller
        // upholds realloc's contract for `new`.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}
