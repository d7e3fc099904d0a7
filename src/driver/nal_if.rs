//! The kernel-to-kernel upper interface: how the Windows portals/LNet driver binds to tdinal.
//!
//! LNet opens `\Device\tdinal` (`IoGetDeviceObjectPointer`) and sends one
//! `IRP_MJ_INTERNAL_DEVICE_CONTROL` request, [`IOCTL_TDINAL_QUERY_NAL_INTERFACE`]
//! (`METHOD_NEITHER`: input in `Parameters.DeviceIoControl.Type3InputBuffer`, output at
//! `Irp->UserBuffer`, both kernel addresses), carrying its [`TDINAL_LNET_CALLBACKS`]; tdinal
//! answers with its entry points in a [`TDINAL_NAL_INTERFACE`], the model of
//! `IRP_MN_QUERY_INTERFACE`: a versioned, sized structure whose head is the WDK's `INTERFACE`
//! (`Size`, `Version`, `Context`, `InterfaceReference`, `InterfaceDereference`), returned
//! referenced; the caller dereferences it when it unbinds. `docs/nal-interface.md` is the
//! reference (sequences, IRQLs, buffer ownership, the exactly-once finalize rule).
//!
//! This module holds the `#[repr(C)]` layouts (x64, asserted), the validation of the caller's
//! structure, and the request handler, which answers `STATUS_DEVICE_NOT_READY` until the kernel
//! runtime is attached to [`super::control::Control`]. It lives in `src/driver` because only the
//! driver serves it; it uses no `unsafe` itself (the IRP plumbing is in `entry.rs`) and is
//! unit-tested on the host with `--features driver`.
#![allow(non_camel_case_types, non_snake_case)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use crate::kernel::{
    KERNEL_MODE, KPROCESSOR_MODE, MDL, NTSTATUS, STATUS_ACCESS_DENIED, STATUS_BUFFER_TOO_SMALL,
    STATUS_DEVICE_NOT_READY, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER,
};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// `CTL_CODE(FILE_DEVICE_TDINAL, 0x900, METHOD_NEITHER, FILE_ANY_ACCESS)`: outside the
/// 0x800–0x8FF range of the user-mode control codes, and only valid as an internal request.
pub const IOCTL_TDINAL_QUERY_NAL_INTERFACE: u32 = crate::ioctl::ctl_code(
    crate::ioctl::FILE_DEVICE_TDINAL,
    0x900,
    METHOD_NEITHER,
    FILE_ANY_ACCESS,
);
/// `METHOD_NEITHER`.
pub const METHOD_NEITHER: u32 = 3;
/// `FILE_ANY_ACCESS`.
pub const FILE_ANY_ACCESS: u32 = 0;

/// The interface version this driver implements (both structures).
pub const TDINAL_NAL_VERSION: u16 = 1;
/// `STATUS_REVISION_MISMATCH`: the caller's structure has another version.
pub const STATUS_REVISION_MISMATCH: NTSTATUS = 0xC000_0059_u32 as NTSTATUS;

/// Length of the LNet header passed to `Send` and `Parse` (`lnet_hdr_t`, NID4 form).
pub const LNET_HDR_LEN: usize = 72;

/// One contiguous kernel buffer (`struct kvec`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TDINAL_KVEC {
    pub Base: *mut c_void,
    pub Length: usize,
}

/// LNet's `lnet_parse`: a message header arrived from `from_nid`/`from_pid` on a connection
/// whose receive side now waits. `Header` (72 bytes) is valid only during the call. A success
/// status promises exactly one `Recv`/`RecvPages` on `RxHandle` (possibly later, from another
/// thread); an error status makes tdinal drop the message and close the connection (the
/// "garbage" case), and LNet must not use `RxHandle` again.
pub type TDINAL_LNET_PARSE = unsafe extern "system" fn(
    LnetContext: *mut c_void,
    Header: *const u8,
    FromNid: u64,
    FromPid: u32,
    RxHandle: *mut c_void,
) -> NTSTATUS;

/// LNet's `lnet_finalize`: the send or receive tagged `MsgCookie` is over — exactly once per
/// `Send`/`SendPages`/`Recv`/`RecvPages`. `Bytes` = bytes received into the buffer (receives)
/// or the payload length (sends).
pub type TDINAL_LNET_FINALIZE = unsafe extern "system" fn(
    LnetContext: *mut c_void,
    MsgCookie: *mut c_void,
    Status: NTSTATUS,
    Bytes: u32,
);

/// LNet's peer-health notification (`lnet_notify`): `Alive` = 0 when tdinal lost the last
/// connection to `Nid` and is not reconnecting.
pub type TDINAL_LNET_PEER_NOTIFY =
    unsafe extern "system" fn(LnetContext: *mut c_void, Nid: u64, Alive: u8);

/// What LNet gives tdinal: the input of [`IOCTL_TDINAL_QUERY_NAL_INTERFACE`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TDINAL_LNET_CALLBACKS {
    /// `sizeof(TDINAL_LNET_CALLBACKS)` as the caller compiled it (≥ 40 for version 1).
    pub Size: u16,
    /// [`TDINAL_NAL_VERSION`].
    pub Version: u16,
    /// Must be 0.
    pub Reserved: u32,
    /// Passed back as the first argument of every callback.
    pub Context: *mut c_void,
    /// Required.
    pub Parse: Option<TDINAL_LNET_PARSE>,
    /// Required.
    pub Finalize: Option<TDINAL_LNET_FINALIZE>,
    /// Optional (null: LNet learns of dead peers from failed sends only).
    pub PeerNotify: Option<TDINAL_LNET_PEER_NOTIFY>,
}

/// `PINTERFACE_REFERENCE` / `PINTERFACE_DEREFERENCE`.
pub type INTERFACE_REFERENCE = unsafe extern "system" fn(Context: *mut c_void);

/// `lnd_send` with a payload in kernel virtual memory: send the LNet message whose 72-byte
/// `Header` is given (copied during the call) to `TargetNid`/`TargetPid` (the next hop), with
/// `PayloadLength` bytes gathered from `IovCount` fragments. The fragments must stay valid and
/// unchanged until `Finalize(MsgCookie)`.
pub type TDINAL_NAL_SEND = unsafe extern "system" fn(
    Context: *mut c_void,
    TargetNid: u64,
    TargetPid: u32,
    Header: *const u8,
    Iov: *const TDINAL_KVEC,
    IovCount: u32,
    PayloadLength: u32,
    MsgCookie: *mut c_void,
);

/// `lnd_send` with a payload described by a locked MDL chain: `PayloadLength` bytes starting
/// `Offset` bytes into the chain. The MDLs and their pages stay LNet's and must stay locked until
/// `Finalize(MsgCookie)`.
pub type TDINAL_NAL_SEND_PAGES = unsafe extern "system" fn(
    Context: *mut c_void,
    TargetNid: u64,
    TargetPid: u32,
    Header: *const u8,
    Mdl: *mut MDL,
    Offset: u32,
    PayloadLength: u32,
    MsgCookie: *mut c_void,
);

/// `lnd_recv` into kernel virtual memory: the answer to a successful `Parse`. Receives the first
/// `min(MLength, payload length)` payload bytes into the fragments and discards the rest (slop);
/// `IovCount = 0, MLength = 0` discards the whole payload. The buffers are written until
/// `Finalize(MsgCookie)`.
pub type TDINAL_NAL_RECV = unsafe extern "system" fn(
    Context: *mut c_void,
    RxHandle: *mut c_void,
    Iov: *const TDINAL_KVEC,
    IovCount: u32,
    MLength: u32,
    MsgCookie: *mut c_void,
);

/// `lnd_recv` into a locked MDL chain, `Offset` bytes in.
pub type TDINAL_NAL_RECV_PAGES = unsafe extern "system" fn(
    Context: *mut c_void,
    RxHandle: *mut c_void,
    Mdl: *mut MDL,
    Offset: u32,
    MLength: u32,
    MsgCookie: *mut c_void,
);

/// `lnd_notify`: LNet's view of a peer's health; `Alive` = 0 closes tdinal's connections to it.
pub type TDINAL_NAL_NOTIFY = unsafe extern "system" fn(Context: *mut c_void, Nid: u64, Alive: u8);

/// What tdinal gives LNet: the output of [`IOCTL_TDINAL_QUERY_NAL_INTERFACE`]. The first five
/// fields are the WDK's `INTERFACE`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TDINAL_NAL_INTERFACE {
    pub Size: u16,
    pub Version: u16,
    pub Reserved: u32,
    pub Context: *mut c_void,
    pub InterfaceReference: Option<INTERFACE_REFERENCE>,
    pub InterfaceDereference: Option<INTERFACE_REFERENCE>,
    pub Send: Option<TDINAL_NAL_SEND>,
    pub SendPages: Option<TDINAL_NAL_SEND_PAGES>,
    pub Recv: Option<TDINAL_NAL_RECV>,
    pub RecvPages: Option<TDINAL_NAL_RECV_PAGES>,
    pub Notify: Option<TDINAL_NAL_NOTIFY>,
}

const_assert_eq!(size_of::<TDINAL_KVEC>(), 16);
const_assert_eq!(offset_of!(TDINAL_KVEC, Length), 8);
const_assert_eq!(size_of::<TDINAL_LNET_CALLBACKS>(), 40);
const_assert_eq!(offset_of!(TDINAL_LNET_CALLBACKS, Version), 2);
const_assert_eq!(offset_of!(TDINAL_LNET_CALLBACKS, Reserved), 4);
const_assert_eq!(offset_of!(TDINAL_LNET_CALLBACKS, Context), 8);
const_assert_eq!(offset_of!(TDINAL_LNET_CALLBACKS, Parse), 16);
const_assert_eq!(offset_of!(TDINAL_LNET_CALLBACKS, Finalize), 24);
const_assert_eq!(offset_of!(TDINAL_LNET_CALLBACKS, PeerNotify), 32);
const_assert_eq!(size_of::<TDINAL_NAL_INTERFACE>(), 72);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, Version), 2);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, Context), 8);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, InterfaceReference), 16);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, InterfaceDereference), 24);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, Send), 32);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, SendPages), 40);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, Recv), 48);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, RecvPages), 56);
const_assert_eq!(offset_of!(TDINAL_NAL_INTERFACE, Notify), 64);
// Option<fn> is a nullable function pointer: the C structures hold plain pointers.
const_assert_eq!(size_of::<Option<TDINAL_NAL_SEND>>(), 8);

/// Size of a version-1 [`TDINAL_LNET_CALLBACKS`].
pub const CALLBACKS_V1_SIZE: usize = size_of::<TDINAL_LNET_CALLBACKS>();
/// Size of a version-1 [`TDINAL_NAL_INTERFACE`].
pub const INTERFACE_V1_SIZE: usize = size_of::<TDINAL_NAL_INTERFACE>();

impl TDINAL_NAL_INTERFACE {
    /// An interface with no entry points (what a failed query leaves in the output).
    pub const fn empty() -> Self {
        TDINAL_NAL_INTERFACE {
            Size: 0,
            Version: 0,
            Reserved: 0,
            Context: core::ptr::null_mut(),
            InterfaceReference: None,
            InterfaceDereference: None,
            Send: None,
            SendPages: None,
            Recv: None,
            RecvPages: None,
            Notify: None,
        }
    }

    /// Whether every entry point is present (what the runtime must return).
    pub fn is_complete(&self) -> bool {
        usize::from(self.Size) == INTERFACE_V1_SIZE
            && self.Version == TDINAL_NAL_VERSION
            && self.InterfaceReference.is_some()
            && self.InterfaceDereference.is_some()
            && self.Send.is_some()
            && self.SendPages.is_some()
            && self.Recv.is_some()
            && self.RecvPages.is_some()
            && self.Notify.is_some()
    }
}

/// The parameters of an internal device-control request, as read from the IRP.
#[derive(Clone, Copy, Debug)]
pub struct QueryRequest {
    pub requestor_mode: KPROCESSOR_MODE,
    pub code: u32,
    pub input: *const c_void,
    pub input_len: u32,
    pub output: *mut c_void,
    pub output_len: u32,
}

/// Why a query was refused, with the status it completes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub status: NTSTATUS,
    pub why: &'static str,
}

const fn refuse(status: NTSTATUS, why: &'static str) -> QueryError {
    QueryError { status, why }
}

/// Checks the request envelope: kernel caller, our code, buffers present and large enough.
pub fn check_request(req: &QueryRequest) -> Result<(), QueryError> {
    if req.requestor_mode != KERNEL_MODE {
        return Err(refuse(
            STATUS_ACCESS_DENIED,
            "the NAL interface is for kernel callers only",
        ));
    }
    if req.code != IOCTL_TDINAL_QUERY_NAL_INTERFACE {
        return Err(refuse(
            STATUS_INVALID_DEVICE_REQUEST,
            "unknown internal control code",
        ));
    }
    if req.input.is_null() || req.output.is_null() {
        return Err(refuse(
            STATUS_INVALID_PARAMETER,
            "null callbacks or interface buffer",
        ));
    }
    if usize::try_from(req.input_len).map_or(true, |n| n < CALLBACKS_V1_SIZE) {
        return Err(refuse(
            STATUS_BUFFER_TOO_SMALL,
            "input shorter than TDINAL_LNET_CALLBACKS",
        ));
    }
    if usize::try_from(req.output_len).map_or(true, |n| n < INTERFACE_V1_SIZE) {
        return Err(refuse(
            STATUS_BUFFER_TOO_SMALL,
            "output shorter than TDINAL_NAL_INTERFACE",
        ));
    }
    Ok(())
}

/// Checks LNet's structure: size, version, reserved field, required callbacks.
pub fn check_callbacks(cb: &TDINAL_LNET_CALLBACKS) -> Result<(), QueryError> {
    if cb.Version != TDINAL_NAL_VERSION {
        return Err(refuse(
            STATUS_REVISION_MISMATCH,
            "TDINAL_LNET_CALLBACKS.Version is not 1",
        ));
    }
    if usize::from(cb.Size) < CALLBACKS_V1_SIZE {
        return Err(refuse(
            STATUS_INVALID_PARAMETER,
            "TDINAL_LNET_CALLBACKS.Size is smaller than version 1's",
        ));
    }
    if cb.Reserved != 0 {
        return Err(refuse(
            STATUS_INVALID_PARAMETER,
            "TDINAL_LNET_CALLBACKS.Reserved is not 0",
        ));
    }
    if cb.Parse.is_none() || cb.Finalize.is_none() {
        return Err(refuse(
            STATUS_INVALID_PARAMETER,
            "TDINAL_LNET_CALLBACKS.Parse and .Finalize are required",
        ));
    }
    Ok(())
}

/// What binds LNet to the engine: implemented by the kernel runtime, which owns the engine and
/// its scheduler threads.
pub trait NalInterfaceProvider {
    /// Binds LNet's callbacks (already validated) and returns the entry points, referenced once
    /// on the caller's behalf. Errors are NTSTATUS values (e.g. `STATUS_DEVICE_BUSY` when
    /// another LNet instance is bound).
    fn bind_lnet(
        &mut self,
        callbacks: &TDINAL_LNET_CALLBACKS,
    ) -> Result<TDINAL_NAL_INTERFACE, NTSTATUS>;
}

/// Handles [`IOCTL_TDINAL_QUERY_NAL_INTERFACE`] once the envelope has been checked and the
/// callbacks read: validates them, then asks the runtime (if attached). A runtime answer that is
/// not a complete version-1 interface is refused rather than passed on.
pub fn answer_query(
    callbacks: &TDINAL_LNET_CALLBACKS,
    runtime: Option<&mut dyn NalInterfaceProvider>,
) -> Result<TDINAL_NAL_INTERFACE, QueryError> {
    check_callbacks(callbacks)?;
    let Some(rt) = runtime else {
        return Err(refuse(
            STATUS_DEVICE_NOT_READY,
            "the NAL is not started (no kernel runtime attached)",
        ));
    };
    let iface = rt
        .bind_lnet(callbacks)
        .map_err(|status| refuse(status, "the kernel runtime refused the binding"))?;
    if !iface.is_complete() {
        return Err(refuse(
            crate::kernel::STATUS_UNSUCCESSFUL,
            "the kernel runtime returned an incomplete interface",
        ));
    }
    Ok(iface)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    unsafe extern "system" fn parse(
        _: *mut c_void,
        _: *const u8,
        _: u64,
        _: u32,
        _: *mut c_void,
    ) -> NTSTATUS {
        0
    }
    unsafe extern "system" fn finalize(_: *mut c_void, _: *mut c_void, _: NTSTATUS, _: u32) {}
    unsafe extern "system" fn reference(_: *mut c_void) {}
    unsafe extern "system" fn send(
        _: *mut c_void,
        _: u64,
        _: u32,
        _: *const u8,
        _: *const TDINAL_KVEC,
        _: u32,
        _: u32,
        _: *mut c_void,
    ) {
    }
    unsafe extern "system" fn send_pages(
        _: *mut c_void,
        _: u64,
        _: u32,
        _: *const u8,
        _: *mut MDL,
        _: u32,
        _: u32,
        _: *mut c_void,
    ) {
    }
    unsafe extern "system" fn recv(
        _: *mut c_void,
        _: *mut c_void,
        _: *const TDINAL_KVEC,
        _: u32,
        _: u32,
        _: *mut c_void,
    ) {
    }
    unsafe extern "system" fn recv_pages(
        _: *mut c_void,
        _: *mut c_void,
        _: *mut MDL,
        _: u32,
        _: u32,
        _: *mut c_void,
    ) {
    }
    unsafe extern "system" fn notify(_: *mut c_void, _: u64, _: u8) {}

    fn callbacks() -> TDINAL_LNET_CALLBACKS {
        TDINAL_LNET_CALLBACKS {
            Size: CALLBACKS_V1_SIZE as u16,
            Version: 1,
            Reserved: 0,
            Context: core::ptr::null_mut(),
            Parse: Some(parse),
            Finalize: Some(finalize),
            PeerNotify: None,
        }
    }

    fn full_interface() -> TDINAL_NAL_INTERFACE {
        TDINAL_NAL_INTERFACE {
            Size: INTERFACE_V1_SIZE as u16,
            Version: 1,
            Reserved: 0,
            Context: core::ptr::null_mut(),
            InterfaceReference: Some(reference),
            InterfaceDereference: Some(reference),
            Send: Some(send),
            SendPages: Some(send_pages),
            Recv: Some(recv),
            RecvPages: Some(recv_pages),
            Notify: Some(notify),
        }
    }

    struct Rt {
        answer: Result<TDINAL_NAL_INTERFACE, NTSTATUS>,
        bound: u32,
    }

    impl NalInterfaceProvider for Rt {
        fn bind_lnet(
            &mut self,
            _: &TDINAL_LNET_CALLBACKS,
        ) -> Result<TDINAL_NAL_INTERFACE, NTSTATUS> {
            self.bound += 1;
            self.answer
        }
    }

    #[test]
    fn code_value() {
        // CTL_CODE(0x8065, 0x900, METHOD_NEITHER, FILE_ANY_ACCESS).
        assert_eq!(IOCTL_TDINAL_QUERY_NAL_INTERFACE, 0x8065_2403);
        assert!(crate::ioctl::classify(IOCTL_TDINAL_QUERY_NAL_INTERFACE).is_err());
    }

    #[test]
    fn not_ready_until_a_runtime_is_attached() {
        let e = answer_query(&callbacks(), None).unwrap_err();
        assert_eq!(e.status, STATUS_DEVICE_NOT_READY);
        assert_eq!(e.status as u32, 0xC000_00A3);
    }

    #[test]
    fn attached_runtime_answers_and_is_checked() {
        let mut rt = Rt {
            answer: Ok(full_interface()),
            bound: 0,
        };
        let iface = answer_query(&callbacks(), Some(&mut rt)).unwrap();
        assert!(iface.is_complete());
        assert_eq!(rt.bound, 1);

        let mut partial = full_interface();
        partial.RecvPages = None;
        let mut rt = Rt {
            answer: Ok(partial),
            bound: 0,
        };
        assert_eq!(
            answer_query(&callbacks(), Some(&mut rt))
                .unwrap_err()
                .status,
            crate::kernel::STATUS_UNSUCCESSFUL
        );

        let busy = 0xC000_0184_u32 as NTSTATUS;
        let mut rt = Rt {
            answer: Err(busy),
            bound: 0,
        };
        assert_eq!(
            answer_query(&callbacks(), Some(&mut rt))
                .unwrap_err()
                .status,
            busy
        );
    }

    #[test]
    fn callbacks_are_validated_before_the_runtime_is_asked() {
        let mut rt = Rt {
            answer: Ok(full_interface()),
            bound: 0,
        };
        let mut cb = callbacks();
        cb.Version = 2;
        assert_eq!(
            answer_query(&cb, Some(&mut rt)).unwrap_err().status,
            STATUS_REVISION_MISMATCH
        );
        let mut cb = callbacks();
        cb.Size = 39;
        assert_eq!(
            answer_query(&cb, Some(&mut rt)).unwrap_err().status,
            STATUS_INVALID_PARAMETER
        );
        let mut cb = callbacks();
        cb.Reserved = 1;
        assert_eq!(
            answer_query(&cb, Some(&mut rt)).unwrap_err().status,
            STATUS_INVALID_PARAMETER
        );
        for which in 0..2 {
            let mut cb = callbacks();
            if which == 0 {
                cb.Parse = None;
            } else {
                cb.Finalize = None;
            }
            assert_eq!(
                answer_query(&cb, Some(&mut rt)).unwrap_err().status,
                STATUS_INVALID_PARAMETER
            );
        }
        // A larger (newer-compiled) structure of version 1 is fine; PeerNotify is optional.
        let mut cb = callbacks();
        cb.Size = 64;
        cb.PeerNotify = Some(notify);
        assert!(answer_query(&cb, Some(&mut rt)).is_ok());
        assert_eq!(rt.bound, 1, "the runtime is asked only for valid callbacks");
    }

    #[test]
    fn envelope_checks() {
        let mut out = [0u8; INTERFACE_V1_SIZE];
        let cb = callbacks();
        let good = QueryRequest {
            requestor_mode: KERNEL_MODE,
            code: IOCTL_TDINAL_QUERY_NAL_INTERFACE,
            input: (&cb as *const TDINAL_LNET_CALLBACKS).cast(),
            input_len: CALLBACKS_V1_SIZE as u32,
            output: out.as_mut_ptr().cast(),
            output_len: INTERFACE_V1_SIZE as u32,
        };
        assert_eq!(check_request(&good), Ok(()));
        let cases = [
            (
                QueryRequest {
                    requestor_mode: crate::kernel::USER_MODE,
                    ..good
                },
                STATUS_ACCESS_DENIED,
            ),
            (
                QueryRequest {
                    code: crate::ioctl::IOCTL_PORTAL_NAL_CMD,
                    ..good
                },
                STATUS_INVALID_DEVICE_REQUEST,
            ),
            (
                QueryRequest {
                    input: core::ptr::null(),
                    ..good
                },
                STATUS_INVALID_PARAMETER,
            ),
            (
                QueryRequest {
                    output: core::ptr::null_mut(),
                    ..good
                },
                STATUS_INVALID_PARAMETER,
            ),
            (
                QueryRequest {
                    input_len: 39,
                    ..good
                },
                STATUS_BUFFER_TOO_SMALL,
            ),
            (
                QueryRequest {
                    output_len: 71,
                    ..good
                },
                STATUS_BUFFER_TOO_SMALL,
            ),
        ];
        for (req, want) in cases {
            assert_eq!(check_request(&req).unwrap_err().status, want, "{req:?}");
        }
    }
}
