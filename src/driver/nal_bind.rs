//! The NAL interface's entry points and LNet's callbacks over the TDI runtime: what
//! [`super::nal::DriverNal`]'s `bind_lnet` hands out (`docs/nal-interface.md`).
//!
//! The interface `Context` is a [`Binding`] (an `Arc` turned into a raw pointer, referenced once
//! for the caller): it holds the runtime's shared state, so LNet's pointer stays valid until its
//! last `InterfaceDereference`, even if the runtime stopped meanwhile. Entry points (≤
//! DISPATCH_LEVEL) check their arguments, describe LNet's fragments in place (no copy) and queue
//! a [`Request`] for scheduler 0 ([`Shared::submit`]); LNet's callbacks are called by scheduler 0
//! through [`LnetCallbacks`] at PASSIVE_LEVEL with no lock held (`crate::tdi::upper`).
//!
//! `SendPages`/`RecvPages` map each MDL of LNet's chain to system space
//! (`MmGetSystemAddressForMdlSafe`, callable at DISPATCH_LEVEL) and describe the mapped pages as
//! fragments, like kvecs: no copy; the TDI send path describes them with MDLs of its own.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::nal_if::{
    TDINAL_KVEC, TDINAL_LNET_CALLBACKS, TDINAL_LNET_FINALIZE, TDINAL_LNET_PARSE,
    TDINAL_LNET_PEER_NOTIFY, TDINAL_NAL_INTERFACE, TDINAL_NAL_VERSION,
};
use crate::engine::Error;
use crate::kernel::{
    MmGetMdlByteCount, MmGetSystemAddressForMdlSafe, MDL, MDL_MAPPING_NO_EXECUTE,
    NORMAL_PAGE_PRIORITY, NTSTATUS, STATUS_CANCELLED, STATUS_CONNECTION_DISCONNECTED,
    STATUS_HOST_UNREACHABLE, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER,
    STATUS_IO_TIMEOUT, STATUS_SUCCESS,
};
use crate::tdi::lent::{LentPayload, LentSink};
use crate::tdi::runtime::{unbind_external, Shared};
use crate::tdi::upper::{Cookie, Failure, Request, Upcall, UpcallTarget, HDR_LEN};
use crate::tdi::TdiRuntime;
use crate::wire::nid::{LNET_MAX_IOV, LNET_MTU};
use crate::wire::{LnetHdr, Nid, ProcessId};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

/// `STATUS_CRC_ERROR`.
pub const STATUS_CRC_ERROR: NTSTATUS = 0xC000_003F_u32 as NTSTATUS;
/// `STATUS_INVALID_NETWORK_RESPONSE`.
pub const STATUS_INVALID_NETWORK_RESPONSE: NTSTATUS = 0xC000_00C3_u32 as NTSTATUS;
/// `STATUS_CONNECTION_REFUSED`.
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = 0xC000_0236_u32 as NTSTATUS;
/// `STATUS_UNEXPECTED_NETWORK_ERROR`.
pub const STATUS_UNEXPECTED_NETWORK_ERROR: NTSTATUS = 0xC000_00C4_u32 as NTSTATUS;

/// The `Finalize` status of a message's outcome (`docs/nal-interface.md` §3).
pub fn finalize_status(result: &Result<u32, Failure>) -> NTSTATUS {
    match result {
        Ok(_) => STATUS_SUCCESS,
        Err(Failure::Invalid) => STATUS_INVALID_PARAMETER,
        Err(Failure::Cancelled) => STATUS_CANCELLED,
        Err(Failure::Engine(e)) => match e {
            Error::ConnClosed => STATUS_CONNECTION_DISCONNECTED,
            Error::Checksum { .. } => STATUS_CRC_ERROR,
            Error::Timeout(_) => STATUS_IO_TIMEOUT,
            Error::HostUnreachable => STATUS_HOST_UNREACHABLE,
            Error::Protocol(_) | Error::UnexpectedEof | Error::WrongPeer { .. } => {
                STATUS_INVALID_NETWORK_RESPONSE
            }
            Error::Refused(_) => STATUS_CONNECTION_REFUSED,
            Error::Io(_) => STATUS_UNEXPECTED_NETWORK_ERROR,
            Error::Shutdown => STATUS_CANCELLED,
            Error::NoMemory => STATUS_INSUFFICIENT_RESOURCES,
        },
    }
}

/// LNet's callbacks, as it gave them (validated by `nal_if::check_callbacks`).
pub struct LnetCallbacks {
    context: usize,
    parse: TDINAL_LNET_PARSE,
    finalize: TDINAL_LNET_FINALIZE,
    peer_notify: Option<TDINAL_LNET_PEER_NOTIFY>,
}

impl LnetCallbacks {
    /// `None` when `Parse` or `Finalize` is missing.
    pub fn new(cb: &TDINAL_LNET_CALLBACKS) -> Option<LnetCallbacks> {
        Some(LnetCallbacks {
            context: cb.Context as usize,
            parse: cb.Parse?,
            finalize: cb.Finalize?,
            peer_notify: cb.PeerNotify,
        })
    }

    /// Finalizes on the calling thread: only for requests that cannot be queued (the runtime
    /// stopped under a bound LNet, or no memory for the queue entry).
    fn finalize_now(&self, cookie: Cookie, why: Failure) {
        self.deliver(Upcall::Finalize {
            cookie,
            result: Err(why),
        });
    }
}

impl UpcallTarget for LnetCallbacks {
    fn deliver(&self, up: Upcall) -> bool {
        let ctx = self.context as *mut c_void;
        match up {
            Upcall::Parse { hdr, from, handle } => {
                // SAFETY: LNet's Parse, called as the interface says: PASSIVE_LEVEL, no lock
                // held, the header valid for the call, the handle opaque.
                let st = unsafe {
                    (self.parse)(
                        ctx,
                        hdr.as_ptr(),
                        from.nid.0,
                        from.pid,
                        handle as *mut c_void,
                    )
                };
                st >= 0
            }
            Upcall::Finalize { cookie, result } => {
                let bytes = *result.as_ref().unwrap_or(&0);
                let st = finalize_status(&result);
                // SAFETY: LNet's Finalize with the cookie it gave, once per message.
                unsafe { (self.finalize)(ctx, cookie as *mut c_void, st, bytes) };
                true
            }
            Upcall::PeerNotify { nid, alive } => {
                if let Some(f) = self.peer_notify {
                    // SAFETY: LNet's optional PeerNotify, PASSIVE_LEVEL, no lock held.
                    unsafe { f(ctx, nid.0, u8::from(alive)) };
                }
                true
            }
        }
    }
}

/// The interface's `Context`: one per bind.
pub struct Binding {
    refs: AtomicUsize,
    shared: Arc<Shared>,
    callbacks: Arc<LnetCallbacks>,
}

impl Binding {
    /// Queues `r`; a `Send`/`Recv` that cannot be queued is finalized at once (see
    /// [`LnetCallbacks::finalize_now`]).
    fn submit(&self, r: Request) {
        if let Err(r) = self.shared.submit(r) {
            match r {
                Request::Send { cookie, .. }
                | Request::Recv { cookie, .. }
                | Request::RecvRefused { cookie, .. } => {
                    self.callbacks.finalize_now(cookie, Failure::Cancelled)
                }
                Request::Refuse { cookie, why } => self.callbacks.finalize_now(cookie, why),
                Request::Reject { .. } | Request::PeerDead { .. } => {}
            }
        }
    }
}

/// Binds LNet to `rt` and builds the interface, referenced once for the caller.
pub fn bind(rt: &TdiRuntime, cb: &TDINAL_LNET_CALLBACKS) -> Result<TDINAL_NAL_INTERFACE, NTSTATUS> {
    let callbacks = Arc::new(LnetCallbacks::new(cb).ok_or(STATUS_INVALID_PARAMETER)?);
    let shared = rt.bind_external(callbacks.clone())?;
    let binding = Arc::new(Binding {
        refs: AtomicUsize::new(1),
        shared,
        callbacks,
    });
    Ok(TDINAL_NAL_INTERFACE {
        Size: super::nal_if::INTERFACE_V1_SIZE as u16,
        Version: TDINAL_NAL_VERSION,
        Reserved: 0,
        Context: Arc::into_raw(binding) as *mut c_void,
        InterfaceReference: Some(nal_reference),
        InterfaceDereference: Some(nal_dereference),
        Send: Some(nal_send),
        SendPages: Some(nal_send_pages),
        Recv: Some(nal_recv),
        RecvPages: Some(nal_recv_pages),
        Notify: Some(nal_notify),
    })
}

/// The binding behind an interface `Context`.
///
/// # Safety
/// `ctx` is a `Context` returned by [`bind`] whose last reference has not been dropped.
unsafe fn binding<'a>(ctx: *mut c_void) -> &'a Binding {
    // SAFETY: the caller's contract: the Arc is alive while LNet holds a reference.
    unsafe { &*(ctx as *const Binding) }
}

unsafe extern "system" fn nal_reference(ctx: *mut c_void) {
    // SAFETY: LNet holds a reference (it got the interface referenced).
    let b = unsafe { binding(ctx) };
    b.refs.fetch_add(1, Ordering::AcqRel);
}

/// The last dereference unbinds: every message of LNet's is finalized before it returns.
/// PASSIVE_LEVEL for the last one, never from inside an LNet callback.
unsafe extern "system" fn nal_dereference(ctx: *mut c_void) {
    // SAFETY: LNet holds the reference it drops here.
    let b = unsafe { binding(ctx) };
    if b.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    unbind_external(&b.shared);
    // SAFETY: the last reference: the Arc made by `bind` is taken back and dropped.
    drop(unsafe { Arc::from_raw(ctx as *const Binding) });
}

/// LNet's `TDINAL_KVEC` array as `(address, length)` pairs covering exactly `len` bytes: `Err`
/// on bad arguments (`Invalid`) or no memory for the list (`NoMemory`). The only allocation is
/// fallible: an entry point never bug-checks on low memory.
///
/// # Safety
/// `iov` points to `n` readable `TDINAL_KVEC`s (when `n` > 0).
unsafe fn fragments(
    iov: *const TDINAL_KVEC,
    n: u32,
    len: u32,
) -> Result<Vec<(*mut u8, usize)>, Failure> {
    let n = usize::try_from(n).map_err(|_| Failure::Invalid)?;
    if n > LNET_MAX_IOV || len > LNET_MTU || (n > 0 && iov.is_null()) {
        return Err(Failure::Invalid);
    }
    let mut left = usize::try_from(len).map_err(|_| Failure::Invalid)?;
    let mut out = Vec::new();
    out.try_reserve(n)
        .map_err(|_| Failure::Engine(Error::NoMemory))?;
    for i in 0..n {
        if left == 0 {
            break;
        }
        // SAFETY: i < n, inside the caller's array.
        let kv = unsafe { core::ptr::read_unaligned(iov.add(i)) };
        if kv.Length == 0 {
            continue;
        }
        if kv.Base.is_null() {
            return Err(Failure::Invalid);
        }
        let take = kv.Length.min(left);
        // Within the reserved capacity (at most n pushes): no allocation.
        out.push((kv.Base.cast::<u8>(), take));
        left = left.saturating_sub(take);
    }
    if left == 0 {
        Ok(out)
    } else {
        Err(Failure::Invalid)
    }
}

/// Most MDLs walked in one chain (a loop guard; LNet's payloads have at most 256 pages).
const MAX_CHAIN: usize = 4 * LNET_MAX_IOV;

/// LNet's MDL chain, `offset` bytes in, as mapped fragments covering exactly `len` bytes: `Err`
/// when the chain is shorter, longer than [`MAX_CHAIN`] MDLs or needs more than 256 fragments
/// (`Invalid`), or a mapping fails (`NoMemory`). Callable at DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` is null or the head of a chain of valid MDLs whose pages are locked (or built for
/// non-paged pool), as the interface requires.
unsafe fn mdl_fragments(
    mdl: *mut MDL,
    offset: u32,
    len: u32,
) -> Result<Vec<(*mut u8, usize)>, Failure> {
    if len > LNET_MTU {
        return Err(Failure::Invalid);
    }
    let mut skip = usize::try_from(offset).map_err(|_| Failure::Invalid)?;
    let mut left = usize::try_from(len).map_err(|_| Failure::Invalid)?;
    let mut out = Vec::new();
    let mut m = mdl;
    let mut walked = 0usize;
    while left > 0 {
        if m.is_null() || walked >= MAX_CHAIN || out.len() >= LNET_MAX_IOV {
            return Err(Failure::Invalid);
        }
        walked = walked.saturating_add(1);
        // SAFETY: a valid MDL of the chain (the caller's contract).
        let n = unsafe { MmGetMdlByteCount(m) } as usize;
        if skip >= n {
            skip = skip.saturating_sub(n);
        } else {
            // SAFETY: a valid, locked MDL; DISPATCH_LEVEL is allowed.
            let va = unsafe {
                MmGetSystemAddressForMdlSafe(m, NORMAL_PAGE_PRIORITY | MDL_MAPPING_NO_EXECUTE)
            };
            if va.is_null() {
                return Err(Failure::Engine(Error::NoMemory));
            }
            let take = n.saturating_sub(skip).min(left);
            out.try_reserve(1)
                .map_err(|_| Failure::Engine(Error::NoMemory))?;
            out.push((va.cast::<u8>().wrapping_add(skip), take));
            left = left.saturating_sub(take);
            skip = 0;
        }
        // SAFETY: as above; `Next` links the chain.
        m = unsafe { (*m).Next };
    }
    Ok(out)
}

/// `Send`'s header checks: the decoded header, or the refusal to queue.
///
/// # Safety
/// `header` is null or points to 72 readable bytes.
unsafe fn send_header(header: *const u8, payload_length: u32) -> Option<LnetHdr> {
    if header.is_null() {
        return None;
    }
    // SAFETY: the interface: `Header` points to the 72 bytes of an LNet header, valid during
    // the call (copied here).
    let bytes = unsafe { core::slice::from_raw_parts(header, HDR_LEN) };
    let hdr = LnetHdr::decode(bytes).ok()?;
    (hdr.payload_length == payload_length).then_some(hdr)
}

/// The `Send` request over checked fragments.
fn send_request(
    target_nid: u64,
    target_pid: u32,
    hdr: LnetHdr,
    frags: Vec<(*mut u8, usize)>,
    cookie: Cookie,
) -> Request {
    let payload = if hdr.payload_length == 0 {
        None
    } else {
        // SAFETY: the interface (§5): LNet keeps the send payload (fragments, or locked MDL
        // pages) valid and unchanged until its Finalize, which comes only after the engine
        // handed the payload back.
        Some(unsafe { LentPayload::new(frags) })
    };
    Request::Send {
        target: ProcessId::new(Nid(target_nid), target_pid),
        hdr,
        payload,
        cookie,
    }
}

/// The `Recv` request over checked fragments, or its refusal when they failed the checks.
fn recv_request(
    handle: u64,
    frags: Result<Vec<(*mut u8, usize)>, Failure>,
    mlen: u32,
    cookie: Cookie,
) -> Request {
    let frags = match frags {
        Ok(frags) => frags,
        Err(why) => {
            return Request::RecvRefused {
                handle,
                cookie,
                why,
            }
        }
    };
    let sink = if mlen == 0 {
        None
    } else {
        // SAFETY: the interface (§5): LNet lends the buffers (fragments, or locked MDL pages)
        // for writing until its Finalize and does not touch them before.
        Some(unsafe { LentSink::new(frags) })
    };
    Request::Recv {
        handle,
        sink,
        mlen,
        cookie,
    }
}

unsafe extern "system" fn nal_send(
    ctx: *mut c_void,
    target_nid: u64,
    target_pid: u32,
    header: *const u8,
    iov: *const TDINAL_KVEC,
    iov_count: u32,
    payload_length: u32,
    cookie: *mut c_void,
) {
    // SAFETY: LNet calls entry points only while it holds a reference.
    let b = unsafe { binding(ctx) };
    let cookie = cookie as Cookie;
    // SAFETY: the interface: `Header` is 72 readable bytes.
    let Some(hdr) = (unsafe { send_header(header, payload_length) }) else {
        return b.submit(Request::Refuse {
            cookie,
            why: Failure::Invalid,
        });
    };
    // SAFETY: the interface: `Iov` holds `IovCount` fragments.
    b.submit(match unsafe { fragments(iov, iov_count, payload_length) } {
        Ok(frags) => send_request(target_nid, target_pid, hdr, frags, cookie),
        Err(why) => Request::Refuse { cookie, why },
    });
}

unsafe extern "system" fn nal_send_pages(
    ctx: *mut c_void,
    target_nid: u64,
    target_pid: u32,
    header: *const u8,
    mdl: *mut MDL,
    offset: u32,
    payload_length: u32,
    cookie: *mut c_void,
) {
    // SAFETY: as for nal_send.
    let b = unsafe { binding(ctx) };
    let cookie = cookie as Cookie;
    // SAFETY: the interface: `Header` is 72 readable bytes.
    let Some(hdr) = (unsafe { send_header(header, payload_length) }) else {
        return b.submit(Request::Refuse {
            cookie,
            why: Failure::Invalid,
        });
    };
    // SAFETY: the interface: a chain of locked MDLs.
    b.submit(
        match unsafe { mdl_fragments(mdl, offset, payload_length) } {
            Ok(frags) => send_request(target_nid, target_pid, hdr, frags, cookie),
            Err(why) => Request::Refuse { cookie, why },
        },
    );
}

unsafe extern "system" fn nal_recv(
    ctx: *mut c_void,
    rx_handle: *mut c_void,
    iov: *const TDINAL_KVEC,
    iov_count: u32,
    mlength: u32,
    cookie: *mut c_void,
) {
    // SAFETY: as for nal_send.
    let b = unsafe { binding(ctx) };
    let cookie = cookie as Cookie;
    let handle = rx_handle as u64;
    // SAFETY: the interface: `Iov` holds `IovCount` fragments.
    let frags = unsafe { fragments(iov, iov_count, mlength) };
    b.submit(recv_request(handle, frags, mlength, cookie));
}

unsafe extern "system" fn nal_recv_pages(
    ctx: *mut c_void,
    rx_handle: *mut c_void,
    mdl: *mut MDL,
    offset: u32,
    mlength: u32,
    cookie: *mut c_void,
) {
    // SAFETY: as for nal_send.
    let b = unsafe { binding(ctx) };
    let cookie = cookie as Cookie;
    let handle = rx_handle as u64;
    // SAFETY: the interface: a chain of locked MDLs.
    let frags = unsafe { mdl_fragments(mdl, offset, mlength) };
    b.submit(recv_request(handle, frags, mlength, cookie));
}

unsafe extern "system" fn nal_notify(ctx: *mut c_void, nid: u64, alive: u8) {
    // SAFETY: as for nal_send.
    let b = unsafe { binding(ctx) };
    if alive == 0 {
        b.submit(Request::PeerDead { nid: Nid(nid) });
    }
}
