//! TDI bindings: what `tdi.h`, `tdikrnl.h` and `tdistat.h` define for a kernel-mode TDI client,
//! written from the public-domain mingw-w64 headers and Microsoft's TDI reference (facts only).
//!
//! - minor function codes of `IRP_MJ_INTERNAL_DEVICE_CONTROL` requests (`TDI_ASSOCIATE_ADDRESS`
//!   … `TDI_SET_EVENT_HANDLER`), event types (`TDI_EVENT_*`), receive/send/disconnect flags;
//! - address structures (`TA_ADDRESS`, `TRANSPORT_ADDRESS`, `TDI_ADDRESS_IP`, `TA_IP_ADDRESS`;
//!   `tdi.h` declares them inside `#pragma pack(1)`), `TDI_CONNECTION_INFORMATION`,
//!   `TDI_ADDRESS_INFO`;
//! - the `TDI_REQUEST_KERNEL_*` structures as they overlay `IO_STACK_LOCATION.Parameters`;
//! - the EA names `TransportAddress` / `ConnectionContext` and EA-buffer builders;
//! - the client event handler signatures (`extern "system" fn` types);
//! - the `TdiBuild*` macros as functions.
//!
//! Every size and offset the driver relies on is asserted at compile time (x64).
#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

use crate::kernel::{
    IoGetNextIrpStackLocation, IoSetCompletionRoutine, DEVICE_OBJECT, FILE_FULL_EA_INFORMATION,
    FILE_FULL_EA_INFORMATION_NAME_OFFSET, FILE_OBJECT, HANDLE, IO_COMPLETION_ROUTINE,
    IO_STACK_LOCATION, IRP, IRP_MJ_INTERNAL_DEVICE_CONTROL, LARGE_INTEGER, MDL, NTSTATUS,
};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

// ---- request codes (IO_STACK_LOCATION.MinorFunction) ----
pub const TDI_ASSOCIATE_ADDRESS: u8 = 0x01;
pub const TDI_DISASSOCIATE_ADDRESS: u8 = 0x02;
pub const TDI_CONNECT: u8 = 0x03;
pub const TDI_LISTEN: u8 = 0x04;
pub const TDI_ACCEPT: u8 = 0x05;
pub const TDI_DISCONNECT: u8 = 0x06;
pub const TDI_SEND: u8 = 0x07;
pub const TDI_RECEIVE: u8 = 0x08;
pub const TDI_SEND_DATAGRAM: u8 = 0x09;
pub const TDI_RECEIVE_DATAGRAM: u8 = 0x0A;
pub const TDI_SET_EVENT_HANDLER: u8 = 0x0B;
pub const TDI_QUERY_INFORMATION: u8 = 0x0C;
pub const TDI_SET_INFORMATION: u8 = 0x0D;
pub const TDI_ACTION: u8 = 0x0E;

// ---- FILE_OBJECT.FsContext2 values a transport uses for its three kinds of open ----
pub const TDI_TRANSPORT_ADDRESS_FILE: usize = 1;
pub const TDI_CONNECTION_FILE: usize = 2;
pub const TDI_CONTROL_CHANNEL_FILE: usize = 3;

// ---- event types (TDI_REQUEST_KERNEL_SET_EVENT.EventType) ----
pub const TDI_EVENT_CONNECT: i32 = 0;
pub const TDI_EVENT_DISCONNECT: i32 = 1;
pub const TDI_EVENT_ERROR: i32 = 2;
pub const TDI_EVENT_RECEIVE: i32 = 3;
pub const TDI_EVENT_RECEIVE_DATAGRAM: i32 = 4;
pub const TDI_EVENT_RECEIVE_EXPEDITED: i32 = 5;
pub const TDI_EVENT_SEND_POSSIBLE: i32 = 6;
pub const TDI_EVENT_CHAINED_RECEIVE: i32 = 7;
pub const TDI_EVENT_CHAINED_RECEIVE_DATAGRAM: i32 = 8;
pub const TDI_EVENT_CHAINED_RECEIVE_EXPEDITED: i32 = 9;
pub const TDI_EVENT_ERROR_EX: i32 = 10;

// ---- receive flags (ReceiveFlags of indications and TDI_REQUEST_KERNEL_RECEIVE) ----
pub const TDI_RECEIVE_TRUNCATED: u32 = 0x0000_0001;
pub const TDI_RECEIVE_FRAGMENT: u32 = 0x0000_0002;
pub const TDI_RECEIVE_BROADCAST: u32 = 0x0000_0004;
pub const TDI_RECEIVE_MULTICAST: u32 = 0x0000_0008;
pub const TDI_RECEIVE_PARTIAL: u32 = 0x0000_0010;
pub const TDI_RECEIVE_NORMAL: u32 = 0x0000_0020;
pub const TDI_RECEIVE_EXPEDITED: u32 = 0x0000_0040;
pub const TDI_RECEIVE_PEEK: u32 = 0x0000_0080;
pub const TDI_RECEIVE_NO_RESPONSE_EXP: u32 = 0x0000_0100;
pub const TDI_RECEIVE_COPY_LOOKAHEAD: u32 = 0x0000_0200;
pub const TDI_RECEIVE_ENTIRE_MESSAGE: u32 = 0x0000_0400;
pub const TDI_RECEIVE_AT_DISPATCH_LEVEL: u32 = 0x0000_0800;
pub const TDI_RECEIVE_CONTROL_INFO: u32 = 0x0000_1000;

// ---- send flags (TDI_REQUEST_KERNEL_SEND.SendFlags) ----
pub const TDI_SEND_EXPEDITED: u32 = 0x0020;
pub const TDI_SEND_PARTIAL: u32 = 0x0040;
pub const TDI_SEND_NO_RESPONSE_EXPECTED: u32 = 0x0080;
pub const TDI_SEND_NON_BLOCKING: u32 = 0x0100;
pub const TDI_SEND_AND_DISCONNECT: u32 = 0x0200;

// ---- disconnect flags (TdiBuildDisconnect, ClientEventDisconnect) ----
pub const TDI_DISCONNECT_WAIT: u32 = 0x0001;
pub const TDI_DISCONNECT_ABORT: u32 = 0x0002;
pub const TDI_DISCONNECT_RELEASE: u32 = 0x0004;

// ---- query types (TDI_REQUEST_KERNEL_QUERY_INFORMATION.QueryType) ----
pub const TDI_QUERY_BROADCAST_ADDRESS: i32 = 0x0000_0001;
pub const TDI_QUERY_PROVIDER_INFO: i32 = 0x0000_0002;
pub const TDI_QUERY_ADDRESS_INFO: i32 = 0x0000_0003;
pub const TDI_QUERY_CONNECTION_INFO: i32 = 0x0000_0004;

// ---- address types ----
pub const TDI_ADDRESS_TYPE_IP: u16 = 2;
/// `TDI_ADDRESS_LENGTH_IP` = `sizeof(TDI_ADDRESS_IP)` (packed).
pub const TDI_ADDRESS_LENGTH_IP: u16 = 14;

// ---- EA names (ZwCreateFile on \Device\Tcp) ----
/// `TdiTransportAddress`: the EA that makes `ZwCreateFile` open an address object.
pub const TDI_TRANSPORT_ADDRESS: &[u8] = b"TransportAddress";
/// `TdiConnectionContext`: the EA that makes `ZwCreateFile` open a connection object.
pub const TDI_CONNECTION_CONTEXT: &[u8] = b"ConnectionContext";
/// `TDI_TRANSPORT_ADDRESS_LENGTH` (without the NUL).
pub const TDI_TRANSPORT_ADDRESS_LENGTH: usize = 16;
/// `TDI_CONNECTION_CONTEXT_LENGTH` (without the NUL).
pub const TDI_CONNECTION_CONTEXT_LENGTH: usize = 17;

/// The transport device TDI clients open for TCP.
pub const TCP_DEVICE_NAME: &str = "\\Device\\Tcp";

/// `CONNECTION_CONTEXT`: the client's pointer for a connection endpoint.
pub type CONNECTION_CONTEXT = *mut c_void;

/// `TDI_ADDRESS_IP`: port and IPv4 address, both in **network byte order** (packed, 14 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TDI_ADDRESS_IP {
    pub sin_port: u16,
    pub in_addr: u32,
    pub sin_zero: [u8; 8],
}

/// `TA_ADDRESS` header: `AddressLength` bytes of `AddressType`-specific address follow.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct TA_ADDRESS {
    pub AddressLength: u16,
    pub AddressType: u16,
    pub Address: [u8; 1],
}

/// `TRANSPORT_ADDRESS`: a count and that many `TA_ADDRESS`es.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct TRANSPORT_ADDRESS {
    pub TAAddressCount: i32,
    pub Address: [TA_ADDRESS; 1],
}

/// `TA_IP_ADDRESS`'s one address.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TA_ADDRESS_IP_ENTRY {
    pub AddressLength: u16,
    pub AddressType: u16,
    pub Address: [TDI_ADDRESS_IP; 1],
}

/// `TA_IP_ADDRESS`: a `TRANSPORT_ADDRESS` with exactly one IPv4 address (22 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TA_IP_ADDRESS {
    pub TAAddressCount: i32,
    pub Address: [TA_ADDRESS_IP_ENTRY; 1],
}

impl TA_IP_ADDRESS {
    /// `ip:port` with both given in host order (stored in network order).
    pub const fn new(ip: u32, port: u16) -> Self {
        TA_IP_ADDRESS {
            TAAddressCount: 1,
            Address: [TA_ADDRESS_IP_ENTRY {
                AddressLength: TDI_ADDRESS_LENGTH_IP,
                AddressType: TDI_ADDRESS_TYPE_IP,
                Address: [TDI_ADDRESS_IP {
                    sin_port: port.to_be(),
                    in_addr: ip.to_be(),
                    sin_zero: [0; 8],
                }],
            }],
        }
    }

    /// The address as host-order `(ip, port)`.
    pub fn ip_port(&self) -> (u32, u16) {
        let a = self.Address[0].Address[0];
        (u32::from_be(a.in_addr), u16::from_be(a.sin_port))
    }
}

/// Parses a `TRANSPORT_ADDRESS` of `len` bytes (as a transport hands it to `ClientEventConnect`)
/// and returns the first IPv4 address in host order. Bounds-checked: a short or non-IP address
/// gives `None`.
pub fn parse_transport_address(bytes: &[u8]) -> Option<(u32, u16)> {
    let count = i32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let mut off = 4usize;
    for _ in 0..count.clamp(0, 16) {
        let alen = u16::from_le_bytes(bytes.get(off..off.checked_add(2)?)?.try_into().ok()?);
        let atype = u16::from_le_bytes(
            bytes
                .get(off.checked_add(2)?..off.checked_add(4)?)?
                .try_into()
                .ok()?,
        );
        let body_start = off.checked_add(4)?;
        let body = bytes.get(body_start..body_start.checked_add(usize::from(alen))?)?;
        if atype == TDI_ADDRESS_TYPE_IP && alen >= TDI_ADDRESS_LENGTH_IP {
            let port = u16::from_be_bytes(body.get(0..2)?.try_into().ok()?);
            let ip = u32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
            return Some((ip, port));
        }
        off = body_start.checked_add(usize::from(alen))?;
    }
    None
}

/// `TDI_CONNECTION_INFORMATION`: user data, options and a remote address for connect, accept,
/// disconnect and datagram requests.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TDI_CONNECTION_INFORMATION {
    pub UserDataLength: i32,
    pub UserData: *mut c_void,
    pub OptionsLength: i32,
    pub Options: *mut c_void,
    pub RemoteAddressLength: i32,
    pub RemoteAddress: *mut c_void,
}

impl TDI_CONNECTION_INFORMATION {
    /// No user data, no options, no address.
    pub const fn empty() -> Self {
        TDI_CONNECTION_INFORMATION {
            UserDataLength: 0,
            UserData: core::ptr::null_mut(),
            OptionsLength: 0,
            Options: core::ptr::null_mut(),
            RemoteAddressLength: 0,
            RemoteAddress: core::ptr::null_mut(),
        }
    }
}

/// `TDI_ADDRESS_INFO` for one IPv4 address (what `TDI_QUERY_ADDRESS_INFO` returns for TCP).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TDI_ADDRESS_INFO_IP {
    pub ActivityCount: u32,
    pub Address: TA_IP_ADDRESS,
}

// ---- the TDI_REQUEST_KERNEL_* structures over IO_STACK_LOCATION.Parameters ----

/// `TDI_REQUEST_KERNEL` (also `_CONNECT`, `_DISCONNECT`, `_LISTEN`, `_DISASSOCIATE`).
/// `RequestFlags` is a `ULONG_PTR` in the WDK (a `ULONG` in mingw; same offsets on x64).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL {
    pub RequestFlags: usize,
    pub RequestConnectionInformation: *mut TDI_CONNECTION_INFORMATION,
    pub ReturnConnectionInformation: *mut TDI_CONNECTION_INFORMATION,
    pub RequestSpecific: *mut c_void,
}
pub type TDI_REQUEST_KERNEL_CONNECT = TDI_REQUEST_KERNEL;
pub type TDI_REQUEST_KERNEL_DISCONNECT = TDI_REQUEST_KERNEL;
pub type TDI_REQUEST_KERNEL_LISTEN = TDI_REQUEST_KERNEL;
pub type TDI_REQUEST_KERNEL_DISASSOCIATE = TDI_REQUEST_KERNEL;

/// `TDI_REQUEST_KERNEL_ASSOCIATE`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL_ASSOCIATE {
    pub AddressHandle: HANDLE,
}

/// `TDI_REQUEST_KERNEL_ACCEPT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL_ACCEPT {
    pub RequestConnectionInformation: *mut TDI_CONNECTION_INFORMATION,
    pub ReturnConnectionInformation: *mut TDI_CONNECTION_INFORMATION,
}

/// `TDI_REQUEST_KERNEL_RECEIVE`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL_RECEIVE {
    pub ReceiveLength: u32,
    pub ReceiveFlags: u32,
}

/// `TDI_REQUEST_KERNEL_SEND`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL_SEND {
    pub SendLength: u32,
    pub SendFlags: u32,
}

/// `TDI_REQUEST_KERNEL_SET_EVENT`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL_SET_EVENT {
    pub EventType: i32,
    pub EventHandler: *mut c_void,
    pub EventContext: *mut c_void,
}

/// `TDI_REQUEST_KERNEL_QUERY_INFORMATION`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TDI_REQUEST_KERNEL_QUERY_INFORMATION {
    pub QueryType: i32,
    pub RequestConnectionInformation: *mut TDI_CONNECTION_INFORMATION,
}

// ---- client event handlers (all may be called at DISPATCH_LEVEL) ----

/// `PTDI_IND_CONNECT` (`ClientEventConnect`).
pub type PTDI_IND_CONNECT = unsafe extern "system" fn(
    TdiEventContext: *mut c_void,
    RemoteAddressLength: i32,
    RemoteAddress: *mut c_void,
    UserDataLength: i32,
    UserData: *mut c_void,
    OptionsLength: i32,
    Options: *mut c_void,
    ConnectionContext: *mut CONNECTION_CONTEXT,
    AcceptIrp: *mut *mut IRP,
) -> NTSTATUS;

/// `PTDI_IND_DISCONNECT` (`ClientEventDisconnect`).
pub type PTDI_IND_DISCONNECT = unsafe extern "system" fn(
    TdiEventContext: *mut c_void,
    ConnectionContext: CONNECTION_CONTEXT,
    DisconnectDataLength: i32,
    DisconnectData: *mut c_void,
    DisconnectInformationLength: i32,
    DisconnectInformation: *mut c_void,
    DisconnectFlags: u32,
) -> NTSTATUS;

/// `PTDI_IND_ERROR` (`ClientEventError`).
pub type PTDI_IND_ERROR =
    unsafe extern "system" fn(TdiEventContext: *mut c_void, Status: NTSTATUS) -> NTSTATUS;

/// `PTDI_IND_RECEIVE` (`ClientEventReceive`) and `PTDI_IND_RECEIVE_EXPEDITED`.
pub type PTDI_IND_RECEIVE = unsafe extern "system" fn(
    TdiEventContext: *mut c_void,
    ConnectionContext: CONNECTION_CONTEXT,
    ReceiveFlags: u32,
    BytesIndicated: u32,
    BytesAvailable: u32,
    BytesTaken: *mut u32,
    Tsdu: *mut c_void,
    IoRequestPacket: *mut *mut IRP,
) -> NTSTATUS;
/// `PTDI_IND_RECEIVE_EXPEDITED` (same signature as [`PTDI_IND_RECEIVE`]).
pub type PTDI_IND_RECEIVE_EXPEDITED = PTDI_IND_RECEIVE;

/// `PTDI_IND_CHAINED_RECEIVE` (`ClientEventChainedReceive`) and the expedited variant.
pub type PTDI_IND_CHAINED_RECEIVE = unsafe extern "system" fn(
    TdiEventContext: *mut c_void,
    ConnectionContext: CONNECTION_CONTEXT,
    ReceiveFlags: u32,
    ReceiveLength: u32,
    StartingOffset: u32,
    Tsdu: *mut MDL,
    TsduDescriptor: *mut c_void,
) -> NTSTATUS;
/// `PTDI_IND_CHAINED_RECEIVE_EXPEDITED` (same signature as [`PTDI_IND_CHAINED_RECEIVE`]).
pub type PTDI_IND_CHAINED_RECEIVE_EXPEDITED = PTDI_IND_CHAINED_RECEIVE;

// ---- EA buffers ----

/// Size of an EA buffer holding one attribute named `name` with a `value_len`-byte value.
pub const fn ea_buffer_len(name_len: usize, value_len: usize) -> usize {
    FILE_FULL_EA_INFORMATION_NAME_OFFSET + name_len + 1 + value_len
}
/// EA buffer size for an address object (`TransportAddress` = `TA_IP_ADDRESS`).
pub const ADDRESS_EA_LEN: usize =
    ea_buffer_len(TDI_TRANSPORT_ADDRESS_LENGTH, size_of::<TA_IP_ADDRESS>());
/// EA buffer size for a connection object (`ConnectionContext` = a pointer).
pub const CONNECTION_EA_LEN: usize = ea_buffer_len(
    TDI_CONNECTION_CONTEXT_LENGTH,
    size_of::<CONNECTION_CONTEXT>(),
);

/// Writes one `FILE_FULL_EA_INFORMATION` (name, NUL, value) into `out`; returns the bytes used,
/// or `None` when `out` is too small or the name/value do not fit the header's fields.
pub fn write_ea(out: &mut [u8], name: &[u8], value: &[u8]) -> Option<usize> {
    let total = ea_buffer_len(name.len(), value.len());
    let name_len = u8::try_from(name.len()).ok()?;
    let value_len = u16::try_from(value.len()).ok()?;
    let dst = out.get_mut(..total)?;
    dst.fill(0);
    // NextEntryOffset = 0 (one entry), Flags = 0.
    *dst.get_mut(offset_of!(FILE_FULL_EA_INFORMATION, EaNameLength))? = name_len;
    let vl = offset_of!(FILE_FULL_EA_INFORMATION, EaValueLength);
    dst.get_mut(vl..vl + 2)?
        .copy_from_slice(&value_len.to_le_bytes());
    let n0 = FILE_FULL_EA_INFORMATION_NAME_OFFSET;
    dst.get_mut(n0..n0 + name.len())?.copy_from_slice(name);
    // The NUL after the name is already there.
    let v0 = n0 + name.len() + 1;
    dst.get_mut(v0..v0 + value.len())?.copy_from_slice(value);
    Some(total)
}

/// The bytes of a `TA_IP_ADDRESS` (packed, so this is its exact memory image).
pub fn ta_ip_address_bytes(a: &TA_IP_ADDRESS) -> [u8; size_of::<TA_IP_ADDRESS>()] {
    let mut out = [0u8; size_of::<TA_IP_ADDRESS>()];
    out[0..4].copy_from_slice(&a.TAAddressCount.to_le_bytes());
    let e = a.Address[0];
    out[4..6].copy_from_slice(&{ e.AddressLength }.to_le_bytes());
    out[6..8].copy_from_slice(&{ e.AddressType }.to_le_bytes());
    let ip = e.Address[0];
    // Network-order fields: their memory image is the big-endian value.
    out[8..10].copy_from_slice(&u16::from_be(ip.sin_port).to_be_bytes());
    out[10..14].copy_from_slice(&u32::from_be(ip.in_addr).to_be_bytes());
    out
}

/// Reads one EA named `name` from an EA buffer (first entry chain), bounds-checked.
pub fn find_ea<'a>(buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut off = 0usize;
    for _ in 0..64 {
        let e = buf.get(off..)?;
        let next = u32::from_le_bytes(e.get(0..4)?.try_into().ok()?) as usize;
        let nlen = usize::from(*e.get(5)?);
        let vlen = usize::from(u16::from_le_bytes(e.get(6..8)?.try_into().ok()?));
        let n0 = FILE_FULL_EA_INFORMATION_NAME_OFFSET;
        let ename = e.get(n0..n0.checked_add(nlen)?)?;
        let v0 = n0.checked_add(nlen)?.checked_add(1)?;
        let value = e.get(v0..v0.checked_add(vlen)?)?;
        if ename == name {
            return Some(value);
        }
        if next == 0 {
            return None;
        }
        off = off.checked_add(next)?;
    }
    None
}

// ---- TdiBuild* ----

/// `TdiBuildBaseIrp`: fills the next stack location for an internal device control with
/// `minor`, and registers `completion` (invoked on success, error and cancel) or none.
///
/// # Safety
/// `irp` must be a caller-owned IRP with a free location below the current one (e.g. from
/// `IoAllocateIrp(device.StackSize)`), `device`/`file` the transport's objects; `context` must
/// stay valid until the completion routine ran.
pub unsafe fn tdi_build_base_irp(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    minor: u8,
) -> *mut IO_STACK_LOCATION {
    // SAFETY: per the contract the next location exists and belongs to us until IoCallDriver.
    unsafe {
        let sp = IoGetNextIrpStackLocation(irp);
        (*sp).MajorFunction = IRP_MJ_INTERNAL_DEVICE_CONTROL as u8;
        (*sp).MinorFunction = minor;
        (*sp).DeviceObject = device;
        (*sp).FileObject = file;
        match completion {
            Some(c) => IoSetCompletionRoutine(irp, c, context, true, true, true),
            None => {
                (*sp).CompletionRoutine = None;
                (*sp).Context = core::ptr::null_mut();
                (*sp).Control = 0;
            }
        }
        sp
    }
}

/// The request parameters of a stack location as a TDI request structure.
///
/// # Safety
/// `sp` must be a valid stack location; `T` one of the `TDI_REQUEST_KERNEL_*` types (all fit the
/// 32-byte `Parameters` union, asserted below).
#[inline]
pub unsafe fn request_params<T>(sp: *mut IO_STACK_LOCATION) -> *mut T {
    // SAFETY: the parameters union is 32 bytes, pointer-aligned; T fits (asserted).
    unsafe { core::ptr::addr_of_mut!((*sp).Parameters).cast::<T>() }
}

/// `TdiBuildAssociateAddress`.
///
/// # Safety
/// As [`tdi_build_base_irp`]; `file` is a connection object, `address` an address object handle.
pub unsafe fn tdi_build_associate_address(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    address: HANDLE,
) {
    // SAFETY: forwarded contract; the parameters are ours to write.
    unsafe {
        let sp = tdi_build_base_irp(
            irp,
            device,
            file,
            completion,
            context,
            TDI_ASSOCIATE_ADDRESS,
        );
        (*request_params::<TDI_REQUEST_KERNEL_ASSOCIATE>(sp)).AddressHandle = address;
    }
}

/// `TdiBuildDisassociateAddress`.
///
/// # Safety
/// As [`tdi_build_base_irp`].
pub unsafe fn tdi_build_disassociate_address(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
) {
    // SAFETY: forwarded contract.
    unsafe {
        tdi_build_base_irp(
            irp,
            device,
            file,
            completion,
            context,
            TDI_DISASSOCIATE_ADDRESS,
        );
    }
}

/// `TdiBuildConnect`: `timeout` (100 ns units, negative = relative) may be null.
///
/// # Safety
/// As [`tdi_build_base_irp`]; the connection information and the timeout must stay valid
/// until completion.
#[allow(clippy::too_many_arguments)]
pub unsafe fn tdi_build_connect(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    timeout: *mut LARGE_INTEGER,
    request: *mut TDI_CONNECTION_INFORMATION,
    ret: *mut TDI_CONNECTION_INFORMATION,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(irp, device, file, completion, context, TDI_CONNECT);
        let r = request_params::<TDI_REQUEST_KERNEL>(sp);
        (*r).RequestFlags = 0;
        (*r).RequestConnectionInformation = request;
        (*r).ReturnConnectionInformation = ret;
        (*r).RequestSpecific = timeout.cast();
    }
}

/// `TdiBuildAccept`.
///
/// # Safety
/// As [`tdi_build_base_irp`]; the connection information must stay valid until completion.
pub unsafe fn tdi_build_accept(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    request: *mut TDI_CONNECTION_INFORMATION,
    ret: *mut TDI_CONNECTION_INFORMATION,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(irp, device, file, completion, context, TDI_ACCEPT);
        let r = request_params::<TDI_REQUEST_KERNEL_ACCEPT>(sp);
        (*r).RequestConnectionInformation = request;
        (*r).ReturnConnectionInformation = ret;
    }
}

/// `TdiBuildDisconnect`.
///
/// # Safety
/// As [`tdi_build_connect`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn tdi_build_disconnect(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    timeout: *mut LARGE_INTEGER,
    flags: u32,
    request: *mut TDI_CONNECTION_INFORMATION,
    ret: *mut TDI_CONNECTION_INFORMATION,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(irp, device, file, completion, context, TDI_DISCONNECT);
        let r = request_params::<TDI_REQUEST_KERNEL>(sp);
        (*r).RequestFlags = flags as usize;
        (*r).RequestConnectionInformation = request;
        (*r).ReturnConnectionInformation = ret;
        (*r).RequestSpecific = timeout.cast();
    }
}

/// `TdiBuildReceive`: `mdl` describes the buffer (locked), `length` bytes at most.
///
/// # Safety
/// As [`tdi_build_base_irp`]; the MDL and its buffer stay valid until completion.
#[allow(clippy::too_many_arguments)]
pub unsafe fn tdi_build_receive(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    mdl: *mut MDL,
    flags: u32,
    length: u32,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(irp, device, file, completion, context, TDI_RECEIVE);
        let r = request_params::<TDI_REQUEST_KERNEL_RECEIVE>(sp);
        (*r).ReceiveFlags = flags;
        (*r).ReceiveLength = length;
        (*irp).MdlAddress = mdl;
    }
}

/// `TdiBuildSend`: `mdl` is the head of a chain describing `length` bytes.
///
/// # Safety
/// As [`tdi_build_receive`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn tdi_build_send(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    mdl: *mut MDL,
    flags: u32,
    length: u32,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(irp, device, file, completion, context, TDI_SEND);
        let r = request_params::<TDI_REQUEST_KERNEL_SEND>(sp);
        (*r).SendFlags = flags;
        (*r).SendLength = length;
        (*irp).MdlAddress = mdl;
    }
}

/// `TdiBuildSetEventHandler`: a null `handler` removes the handler for `event_type`.
///
/// # Safety
/// As [`tdi_build_base_irp`]; `file` is an address object; `handler` must have the signature
/// of `event_type` and stay callable, with `event_context`, until replaced or the object closes.
#[allow(clippy::too_many_arguments)]
pub unsafe fn tdi_build_set_event_handler(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    event_type: i32,
    handler: *mut c_void,
    event_context: *mut c_void,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(
            irp,
            device,
            file,
            completion,
            context,
            TDI_SET_EVENT_HANDLER,
        );
        let r = request_params::<TDI_REQUEST_KERNEL_SET_EVENT>(sp);
        (*r).EventType = event_type;
        (*r).EventHandler = handler;
        (*r).EventContext = event_context;
    }
}

/// `TdiBuildQueryInformation`: the answer is written into the buffer `mdl` describes.
///
/// # Safety
/// As [`tdi_build_receive`].
pub unsafe fn tdi_build_query_information(
    irp: *mut IRP,
    device: *mut DEVICE_OBJECT,
    file: *mut FILE_OBJECT,
    completion: Option<IO_COMPLETION_ROUTINE>,
    context: *mut c_void,
    query_type: i32,
    mdl: *mut MDL,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let sp = tdi_build_base_irp(
            irp,
            device,
            file,
            completion,
            context,
            TDI_QUERY_INFORMATION,
        );
        let r = request_params::<TDI_REQUEST_KERNEL_QUERY_INFORMATION>(sp);
        (*r).QueryType = query_type;
        (*r).RequestConnectionInformation = core::ptr::null_mut();
        (*irp).MdlAddress = mdl;
    }
}

// ---- layout checks (x64; tdi.h's address structures are packed) ----

const_assert_eq!(size_of::<TDI_ADDRESS_IP>(), 14);
const_assert_eq!(offset_of!(TDI_ADDRESS_IP, in_addr), 2);
const_assert_eq!(offset_of!(TDI_ADDRESS_IP, sin_zero), 6);
const_assert_eq!(size_of::<TA_ADDRESS>(), 5);
const_assert_eq!(offset_of!(TA_ADDRESS, AddressType), 2);
const_assert_eq!(offset_of!(TA_ADDRESS, Address), 4);
const_assert_eq!(size_of::<TRANSPORT_ADDRESS>(), 9);
const_assert_eq!(size_of::<TA_IP_ADDRESS>(), 22);
const_assert_eq!(offset_of!(TA_IP_ADDRESS, Address), 4);
const_assert_eq!(size_of::<TDI_ADDRESS_INFO_IP>(), 26);
const_assert_eq!(size_of::<TDI_CONNECTION_INFORMATION>(), 0x30);
const_assert_eq!(offset_of!(TDI_CONNECTION_INFORMATION, UserData), 0x08);
const_assert_eq!(offset_of!(TDI_CONNECTION_INFORMATION, OptionsLength), 0x10);
const_assert_eq!(offset_of!(TDI_CONNECTION_INFORMATION, Options), 0x18);
const_assert_eq!(
    offset_of!(TDI_CONNECTION_INFORMATION, RemoteAddressLength),
    0x20
);
const_assert_eq!(offset_of!(TDI_CONNECTION_INFORMATION, RemoteAddress), 0x28);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL>(), 0x20);
const_assert_eq!(
    offset_of!(TDI_REQUEST_KERNEL, RequestConnectionInformation),
    0x08
);
const_assert_eq!(
    offset_of!(TDI_REQUEST_KERNEL, ReturnConnectionInformation),
    0x10
);
const_assert_eq!(offset_of!(TDI_REQUEST_KERNEL, RequestSpecific), 0x18);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL_ASSOCIATE>(), 0x08);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL_ACCEPT>(), 0x10);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL_RECEIVE>(), 0x08);
const_assert_eq!(offset_of!(TDI_REQUEST_KERNEL_RECEIVE, ReceiveFlags), 0x04);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL_SEND>(), 0x08);
const_assert_eq!(offset_of!(TDI_REQUEST_KERNEL_SEND, SendFlags), 0x04);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL_SET_EVENT>(), 0x18);
const_assert_eq!(offset_of!(TDI_REQUEST_KERNEL_SET_EVENT, EventHandler), 0x08);
const_assert_eq!(offset_of!(TDI_REQUEST_KERNEL_SET_EVENT, EventContext), 0x10);
const_assert_eq!(size_of::<TDI_REQUEST_KERNEL_QUERY_INFORMATION>(), 0x10);
const_assert_eq!(
    offset_of!(
        TDI_REQUEST_KERNEL_QUERY_INFORMATION,
        RequestConnectionInformation
    ),
    0x08
);
// Each request structure fits IO_STACK_LOCATION.Parameters (32 bytes).
const_assert_eq!(size_of::<crate::kernel::IO_STACK_PARAMETERS>(), 0x20);
const_assert_eq!(ADDRESS_EA_LEN, 8 + 16 + 1 + 22);
const_assert_eq!(CONNECTION_EA_LEN, 8 + 17 + 1 + 8);
const_assert_eq!(TDI_TRANSPORT_ADDRESS.len(), TDI_TRANSPORT_ADDRESS_LENGTH);
const_assert_eq!(TDI_CONNECTION_CONTEXT.len(), TDI_CONNECTION_CONTEXT_LENGTH);

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ta_ip_address_round_trip() {
        let a = TA_IP_ADDRESS::new(0x7f00_0001, 988);
        assert_eq!(a.ip_port(), (0x7f00_0001, 988));
        let b = ta_ip_address_bytes(&a);
        // Memory image: count 1, length 14, type 2, port 988 big-endian, 127.0.0.1.
        assert_eq!(&b[..10], &[1, 0, 0, 0, 14, 0, 2, 0, 0x03, 0xdc]);
        assert_eq!(&b[10..14], &[127, 0, 0, 1]);
        // Same as the struct's own memory image.
        // SAFETY: TA_IP_ADDRESS is packed plain data of 22 bytes.
        let raw: [u8; 22] = unsafe { core::mem::transmute(a) };
        assert_eq!(raw, b);
        assert_eq!(parse_transport_address(&b), Some((0x7f00_0001, 988)));
        assert_eq!(parse_transport_address(&b[..12]), None);
    }

    #[test]
    fn ea_buffers() {
        let mut buf = [0u8; ADDRESS_EA_LEN];
        let v = ta_ip_address_bytes(&TA_IP_ADDRESS::new(1, 2));
        assert_eq!(
            write_ea(&mut buf, TDI_TRANSPORT_ADDRESS, &v),
            Some(ADDRESS_EA_LEN)
        );
        assert_eq!(buf[5], 16);
        assert_eq!(&buf[6..8], &22u16.to_le_bytes());
        assert_eq!(&buf[8..24], b"TransportAddress");
        assert_eq!(buf[24], 0);
        assert_eq!(find_ea(&buf, TDI_TRANSPORT_ADDRESS), Some(&v[..]));
        assert_eq!(find_ea(&buf, TDI_CONNECTION_CONTEXT), None);
        let mut small = [0u8; 10];
        assert_eq!(write_ea(&mut small, TDI_TRANSPORT_ADDRESS, &v), None);
    }
}
