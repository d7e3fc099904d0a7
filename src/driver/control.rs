//! The control seam between the I/O manager and the kernel runtime.
//!
//! [`Control`] holds the driver's [`Tunables`] (from the registry, `super::registry`) and, once
//! the kernel runtime (TDI transport, scheduler threads, engine) is started, that runtime as a
//! [`KernelRuntime`]: the [`NalControl`] operations the ioctls need and the
//! [`NalInterfaceProvider`] LNet binds through. Until a runtime is attached the state is
//! honest: every command that needs the NAL fails with [`CtlError::InvalidState`], i.e.
//! `STATUS_INVALID_DEVICE_STATE` ("the NAL is not started"), and the NAL interface query with
//! `STATUS_DEVICE_NOT_READY`. Malformed requests still get their precise errors (the decoder runs
//! first), and codes tdinal does not implement still get `STATUS_NOT_SUPPORTED`.
//!
//! `IRP_MJ_DEVICE_CONTROL` goes through two steps (both unit-tested on the host with synthetic
//! IRPs):
//! 1. [`read_buffered`] checks the IRP before anything looks at the buffer: PASSIVE_LEVEL,
//!    `METHOD_BUFFERED` (the only method tdinal's codes use: the transfer type decides what the
//!    buffer pointers mean), no lengths without a system buffer, input at most
//!    [`MAX_REQUEST_LEN`](crate::ioctl::MAX_REQUEST_LEN);
//! 2. [`execute_buffered`] runs [`crate::ioctl::dispatch_in_place`] on the system buffer under
//!    the control lock and returns the completion status and `Information`.
//!
//! With METHOD_BUFFERED the I/O manager allocates `max(in, out)` bytes and copies the `in` bytes
//! of the request into them; the rest of a larger output allocation is *not* initialised. The
//! slice handed to the dispatcher therefore covers exactly the input bytes: a reply is the
//! request with output fields patched, never longer than the request, so it fits, and
//! `Information` (≤ the input length, and checked ≤ the output length) never exposes bytes the
//! driver did not write.
use super::nal::{StartRequest, Starter};
use super::nal_if::NalInterfaceProvider;
use crate::engine::tunables::Tunables;
use crate::ioctl::{
    dispatch_in_place, AcceptPolicy, CtlError, InterfaceInfo, NalControl, MAX_REQUEST_LEN,
};
use crate::ioctl::{ConnInfo, PeerInfo};
use crate::kernel::{
    IoGetCurrentIrpStackLocation, IRP, KIRQL, NTSTATUS, PASSIVE_LEVEL,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use crate::wire::{ConnType, Net, Nid};
use alloc::boxed::Box;
use alloc::string::String;
use core::ffi::c_void;

/// `METHOD_BUFFERED`, the transfer type in the low two bits of a control code.
pub const METHOD_BUFFERED: u32 = 0;
/// `STATUS_INTERNAL_ERROR`.
pub const STATUS_INTERNAL_ERROR: NTSTATUS = 0xC000_00E5_u32 as NTSTATUS;

/// The kernel runtime as the control device sees it: [`super::nal::DriverNal`] over the TDI
/// runtime; tests implement it with mocks.
pub trait KernelRuntime: NalControl + NalInterfaceProvider + Send {
    /// Stops the runtime (PASSIVE_LEVEL): acceptor stopped, connections closed, open operations
    /// failed, threads joined, everything freed. `Err` describes what was left behind.
    fn stop(self: Box<Self>) -> Result<(), String>;
    /// The driver's own NAL, when this is one (tests reach its runtime through it).
    fn as_driver_nal(&self) -> Option<&super::nal::DriverNal> {
        None
    }
}

/// Driver-wide control state: tunables, the local interface, how to start the runtime, and the
/// (optional) running NAL.
pub struct Control {
    tunables: Tunables,
    /// The NI's network and local IPv4 address (host order); `None` until configured.
    local: Option<(Net, u32)>,
    /// Starts the runtime on `NAL_CMD_START_DAEMON` (`None`: the command answers "not started").
    starter: Option<Starter>,
    runtime: Option<Box<dyn KernelRuntime>>,
}

impl Control {
    /// No runtime yet; `tunables` as read from the registry.
    pub fn new(tunables: Tunables) -> Self {
        Control {
            tunables,
            local: None,
            starter: None,
            runtime: None,
        }
    }

    /// Sets how `NAL_CMD_START_DAEMON` starts the runtime (the driver: [`super::nal::start`]).
    pub fn set_starter(&mut self, starter: Starter) {
        self.starter = Some(starter);
    }

    /// Sets the NI's network and local IPv4 address (host order), which START_DAEMON needs
    /// (`NAL_CMD_REGISTER_MYNID` before the start sets it from the NID).
    pub fn set_local_address(&mut self, net: Net, ip: u32) {
        self.local = Some((net, ip));
    }

    /// Stops and detaches the runtime, if one is attached (PASSIVE_LEVEL; `DriverUnload`, and
    /// the stop path of tests). `None`: nothing was running.
    pub fn stop(&mut self) -> Option<Result<(), String>> {
        self.runtime.take().map(|rt| rt.stop())
    }

    /// The attached runtime as the driver's NAL (for tests and diagnostics).
    pub fn driver_nal(&self) -> Option<&super::nal::DriverNal> {
        self.runtime.as_deref().and_then(|rt| rt.as_driver_nal())
    }

    /// The tunables the runtime is to be started with.
    pub fn tunables(&self) -> &Tunables {
        &self.tunables
    }

    /// Whether a runtime is attached ("the NAL is started").
    pub fn is_started(&self) -> bool {
        self.runtime.is_some()
    }

    /// Attaches the started runtime; gives it back if one is already attached.
    pub fn attach(&mut self, rt: Box<dyn KernelRuntime>) -> Result<(), Box<dyn KernelRuntime>> {
        if self.runtime.is_some() {
            return Err(rt);
        }
        self.runtime = Some(rt);
        Ok(())
    }

    /// Detaches the runtime (to stop it); commands fail with "not started" afterwards.
    pub fn detach(&mut self) -> Option<Box<dyn KernelRuntime>> {
        self.runtime.take()
    }

    /// The runtime's NAL interface provider, for the query handler.
    pub fn nal_provider(&mut self) -> Option<&mut dyn NalInterfaceProvider> {
        match self.runtime.as_deref_mut() {
            Some(rt) => Some(rt),
            None => None,
        }
    }

    fn rt(&mut self) -> Result<&mut (dyn KernelRuntime + 'static), CtlError> {
        self.runtime.as_deref_mut().ok_or(CtlError::InvalidState)
    }

    fn rt_ref(&self) -> Result<&(dyn KernelRuntime + 'static), CtlError> {
        self.runtime.as_deref().ok_or(CtlError::InvalidState)
    }
}

/// Every operation goes to the attached runtime, or fails with `InvalidState`
/// (`STATUS_INVALID_DEVICE_STATE`) when the NAL is not started.
impl NalControl for Control {
    /// Without a runtime every net is "served", so LNet-era requests reach the operation and
    /// get "not started" rather than a misleading "no such network".
    fn serves_net(&self, net: Net) -> bool {
        self.rt_ref().map_or(true, |rt| rt.serves_net(net))
    }
    /// Starts the runtime: a [`StartRequest`] from the registry tunables, the local address and
    /// the command, given to the starter; the started runtime is attached. A second
    /// START_DAEMON while running answers `InvalidState` (`STATUS_INVALID_DEVICE_STATE`:
    /// already started; the runtime stops at unload). Without a starter or a local address the
    /// NAL cannot start: `InvalidState` too.
    fn start_daemon(
        &mut self,
        port: u16,
        accept: AcceptPolicy,
        backlog: u32,
    ) -> Result<(), CtlError> {
        if self.runtime.is_some() {
            return Err(CtlError::InvalidState);
        }
        let (Some(starter), Some((net, local_ip))) = (self.starter, self.local) else {
            return Err(CtlError::InvalidState);
        };
        let req = StartRequest {
            tunables: self.tunables.clone(),
            net,
            local_ip,
            port,
            accept,
            backlog,
            schedulers: 0,
        };
        let rt = starter(&req)?;
        self.runtime = Some(rt);
        Ok(())
    }
    fn connect_peer(
        &mut self,
        nid: Nid,
        ip: u32,
        port: u16,
        ctype: Option<ConnType>,
    ) -> Result<(), CtlError> {
        self.rt()?.connect_peer(nid, ip, port, ctype)
    }
    fn add_peer(&mut self, nid: Nid, ip: u32, port: u16) -> Result<(), CtlError> {
        self.rt()?.add_peer(nid, ip, port)
    }
    fn del_peer(
        &mut self,
        nid: Option<Nid>,
        ip: Option<u32>,
        single_share: bool,
    ) -> Result<(), CtlError> {
        self.rt()?.del_peer(nid, ip, single_share)
    }
    fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError> {
        self.rt_ref()?.get_peer(index)
    }
    fn get_conn(&self, index: u32) -> Result<ConnInfo, CtlError> {
        self.rt_ref()?.get_conn(index)
    }
    fn close_connection(&mut self, nid: Option<Nid>, ip: Option<u32>) -> Result<(), CtlError> {
        self.rt()?.close_connection(nid, ip)
    }
    /// Before START_DAEMON this is how the NID is configured (Portals' `ptlctl mynid`, the
    /// socklnd NID's address is the local interface; the decoder already refused non-TCP and
    /// wildcard NIDs). Once started, only the running NI's own NID is accepted.
    fn register_my_nid(&mut self, nid: Nid) -> Result<(), CtlError> {
        if self.runtime.is_none() {
            self.set_local_address(nid.net(), nid.addr());
            return Ok(());
        }
        self.rt()?.register_my_nid(nid)
    }
    fn push_connection(&mut self, nid: Option<Nid>) -> Result<(), CtlError> {
        self.rt()?.push_connection(nid)
    }
    fn get_ni(&self, index: u32) -> Result<Nid, CtlError> {
        self.rt_ref()?.get_ni(index)
    }
    fn add_interface(&mut self, ip: u32, netmask: u32) -> Result<(), CtlError> {
        self.rt()?.add_interface(ip, netmask)
    }
    fn del_interface(&mut self, ip: Option<u32>) -> Result<(), CtlError> {
        self.rt()?.del_interface(ip)
    }
    fn get_interface(&self, index: u32) -> Result<InterfaceInfo, CtlError> {
        self.rt_ref()?.get_interface(index)
    }
}

/// A device-control request that passed the IRP-level checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferedRequest {
    pub code: u32,
    /// The system buffer (null only when both lengths are 0).
    pub buffer: *mut u8,
    pub input_len: usize,
    pub output_len: usize,
}

/// An IRP refused before its buffer was looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrpRefusal {
    pub status: NTSTATUS,
    pub why: &'static str,
}

/// The IRP-level checks, on the values read from the IRP (pure: no memory is touched).
pub fn check_buffered(
    irql: KIRQL,
    code: u32,
    system_buffer: *mut c_void,
    input_len: u32,
    output_len: u32,
) -> Result<BufferedRequest, IrpRefusal> {
    let refuse = |status, why| Err(IrpRefusal { status, why });
    if irql != PASSIVE_LEVEL {
        return refuse(
            STATUS_INVALID_DEVICE_REQUEST,
            "device control above PASSIVE_LEVEL",
        );
    }
    if code & 0x3 != METHOD_BUFFERED {
        return refuse(
            STATUS_INVALID_DEVICE_REQUEST,
            "not a METHOD_BUFFERED code (no tdinal code uses another method)",
        );
    }
    if system_buffer.is_null() && (input_len != 0 || output_len != 0) {
        return refuse(
            STATUS_INVALID_PARAMETER,
            "buffer lengths without a system buffer",
        );
    }
    let (Ok(input_len), Ok(output_len)) = (usize::try_from(input_len), usize::try_from(output_len))
    else {
        return refuse(STATUS_INVALID_PARAMETER, "buffer length");
    };
    if input_len > MAX_REQUEST_LEN {
        return refuse(
            STATUS_INVALID_PARAMETER,
            "input longer than any tdinal request",
        );
    }
    Ok(BufferedRequest {
        code,
        buffer: system_buffer.cast(),
        input_len,
        output_len,
    })
}

/// Reads an `IRP_MJ_DEVICE_CONTROL` IRP's code, system buffer and lengths and checks them with
/// [`check_buffered`]. A missing stack location is refused.
///
/// # Safety
/// `irp` must be a valid IRP whose current stack location (if non-null) is valid.
pub unsafe fn read_buffered(irp: *mut IRP, irql: KIRQL) -> Result<BufferedRequest, IrpRefusal> {
    // SAFETY: per the contract the IRP and its current stack location are valid to read; the
    // DeviceIoControl parameters are the ones a DEVICE_CONTROL IRP carries.
    let (params, system_buffer) = unsafe {
        let stack = IoGetCurrentIrpStackLocation(irp);
        if stack.is_null() {
            return Err(IrpRefusal {
                status: STATUS_INVALID_PARAMETER,
                why: "no current stack location",
            });
        }
        (
            (*stack).Parameters.DeviceIoControl,
            (*irp).AssociatedIrp.SystemBuffer,
        )
    };
    check_buffered(
        irql,
        params.IoControlCode,
        system_buffer,
        params.InputBufferLength,
        params.OutputBufferLength,
    )
}

/// Runs a checked request against `ctl`: decodes, executes and writes the reply in place.
/// Returns the completion status and `Information`.
///
/// # Safety
/// `req.buffer` must be null (both lengths 0) or the METHOD_BUFFERED system buffer of the IRP
/// being dispatched: `max(input_len, output_len)` bytes, the first `input_len` initialised,
/// owned by the caller until the IRP completes.
pub unsafe fn execute_buffered(ctl: &mut Control, req: &BufferedRequest) -> (NTSTATUS, usize) {
    let buf: &mut [u8] = if req.buffer.is_null() || req.input_len == 0 {
        &mut []
    } else {
        // SAFETY: per the contract the first input_len bytes are initialised and exclusively
        // ours; the slice covers no more (see the module notes on the uninitialised tail).
        unsafe { core::slice::from_raw_parts_mut(req.buffer, req.input_len) }
    };
    match dispatch_in_place(ctl, req.code, buf, req.input_len, req.output_len) {
        Ok(n) if n <= req.output_len && n <= req.input_len => (STATUS_SUCCESS, n),
        Ok(_) => (STATUS_INTERNAL_ERROR, 0),
        Err(e) => (e.to_ntstatus(), 0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::driver::nal_if::{TDINAL_LNET_CALLBACKS, TDINAL_NAL_INTERFACE};
    use crate::ioctl::error::ntstatus;
    use crate::ioctl::{decode_reply, encode_request, Command, Era, Reply};
    use crate::kernel::{DISPATCH_LEVEL, IO_STACK_LOCATION};
    use alloc::vec;
    use alloc::vec::Vec;

    /// An IRP_MJ_DEVICE_CONTROL IRP as the I/O manager builds it for METHOD_BUFFERED: one
    /// stack location, a system buffer of max(in, out) bytes holding the input, the rest
    /// filled with 0xAA to show what the driver must not return.
    struct FakeIrp {
        irp: Box<IRP>,
        _stack: Box<IO_STACK_LOCATION>,
        buf: Vec<u8>,
    }

    fn fake(code: u32, input: &[u8], out_len: usize, with_buffer: bool) -> FakeIrp {
        // SAFETY: IRP and IO_STACK_LOCATION hold integers, raw pointers, Option<fn> and unions
        // of those: all-zero is a valid value of each.
        let mut irp: Box<IRP> = Box::new(unsafe { core::mem::zeroed() });
        // SAFETY: as above.
        let mut stack: Box<IO_STACK_LOCATION> = Box::new(unsafe { core::mem::zeroed() });
        let mut buf = vec![0xAAu8; input.len().max(out_len)];
        buf[..input.len()].copy_from_slice(input);
        stack.MajorFunction = crate::kernel::IRP_MJ_DEVICE_CONTROL as u8;
        // Writes of the DeviceIoControl view of the parameters union (safe: plain data).
        stack.Parameters.DeviceIoControl.IoControlCode = code;
        stack.Parameters.DeviceIoControl.InputBufferLength = input.len() as u32;
        stack.Parameters.DeviceIoControl.OutputBufferLength = out_len as u32;
        irp.Tail.Overlay.Stack.CurrentStackLocation = &mut *stack;
        irp.AssociatedIrp.SystemBuffer = if with_buffer {
            buf.as_mut_ptr().cast()
        } else {
            core::ptr::null_mut()
        };
        FakeIrp {
            irp,
            _stack: stack,
            buf,
        }
    }

    /// Runs the two steps the dispatch routine runs.
    fn run(ctl: &mut Control, f: &mut FakeIrp, irql: KIRQL) -> (NTSTATUS, usize) {
        // SAFETY: the fake IRP and its stack location are valid and live.
        match unsafe { read_buffered(&mut *f.irp, irql) } {
            // SAFETY: the buffer is the fake system buffer: max(in, out) bytes, input first.
            Ok(req) => unsafe { execute_buffered(ctl, &req) },
            Err(r) => (r.status, 0),
        }
    }

    fn request(cmd: &Command) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; 512];
        let (code, n) = encode_request(cmd, Era::Portals, &mut out).unwrap();
        out.truncate(n);
        (code, out)
    }

    fn peer() -> PeerInfo {
        PeerInfo {
            nid: "192.168.0.2@tcp".parse().unwrap(),
            pid: 12345,
            my_ip: 0xC0A8_0001,
            ip: 0xC0A8_0002,
            port: 988,
            conn_count: 3,
            share_count: 1,
        }
    }

    #[derive(Default)]
    struct MockRuntime {
        added: Vec<(Nid, u32, u16)>,
    }

    impl NalControl for MockRuntime {
        fn serves_net(&self, _: Net) -> bool {
            true
        }
        fn start_daemon(&mut self, _: u16, _: AcceptPolicy, _: u32) -> Result<(), CtlError> {
            Ok(())
        }
        fn connect_peer(
            &mut self,
            _: Nid,
            _: u32,
            _: u16,
            _: Option<ConnType>,
        ) -> Result<(), CtlError> {
            Err(CtlError::ConnectionRefused)
        }
        fn add_peer(&mut self, nid: Nid, ip: u32, port: u16) -> Result<(), CtlError> {
            self.added.push((nid, ip, port));
            Ok(())
        }
        fn del_peer(&mut self, _: Option<Nid>, _: Option<u32>, _: bool) -> Result<(), CtlError> {
            Ok(())
        }
        fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError> {
            if index == 0 {
                Ok(peer())
            } else {
                Err(CtlError::NoMoreEntries)
            }
        }
        fn get_conn(&self, _: u32) -> Result<ConnInfo, CtlError> {
            Err(CtlError::NoMoreEntries)
        }
        fn close_connection(&mut self, _: Option<Nid>, _: Option<u32>) -> Result<(), CtlError> {
            Ok(())
        }
        fn register_my_nid(&mut self, _: Nid) -> Result<(), CtlError> {
            Ok(())
        }
        fn push_connection(&mut self, _: Option<Nid>) -> Result<(), CtlError> {
            Ok(())
        }
        fn get_ni(&self, _: u32) -> Result<Nid, CtlError> {
            Err(CtlError::NoMoreEntries)
        }
    }

    impl KernelRuntime for MockRuntime {
        fn stop(self: Box<Self>) -> Result<(), String> {
            Ok(())
        }
    }

    impl NalInterfaceProvider for MockRuntime {
        fn bind_lnet(
            &mut self,
            _: &TDINAL_LNET_CALLBACKS,
        ) -> Result<TDINAL_NAL_INTERFACE, NTSTATUS> {
            Err(STATUS_INTERNAL_ERROR)
        }
    }

    const STATUS_INVALID_DEVICE_STATE: NTSTATUS = ntstatus::STATUS_INVALID_DEVICE_STATE;

    #[test]
    fn irp_level_refusals() {
        let ok = core::ptr::NonNull::<u8>::dangling()
            .as_ptr()
            .cast::<c_void>();
        let code = crate::ioctl::IOCTL_PORTAL_NAL_CMD;
        let cases = [
            (
                DISPATCH_LEVEL,
                code,
                ok,
                224,
                224,
                STATUS_INVALID_DEVICE_REQUEST,
            ),
            (
                crate::kernel::APC_LEVEL,
                code,
                ok,
                224,
                224,
                STATUS_INVALID_DEVICE_REQUEST,
            ),
            (
                PASSIVE_LEVEL,
                code | 3,
                ok,
                224,
                224,
                STATUS_INVALID_DEVICE_REQUEST,
            ),
            (
                PASSIVE_LEVEL,
                code | 1,
                ok,
                224,
                224,
                STATUS_INVALID_DEVICE_REQUEST,
            ),
            (
                PASSIVE_LEVEL,
                code,
                core::ptr::null_mut(),
                224,
                0,
                STATUS_INVALID_PARAMETER,
            ),
            (
                PASSIVE_LEVEL,
                code,
                core::ptr::null_mut(),
                0,
                224,
                STATUS_INVALID_PARAMETER,
            ),
            (PASSIVE_LEVEL, code, ok, 8193, 0, STATUS_INVALID_PARAMETER),
        ];
        for (irql, code, buf, i, o, want) in cases {
            let r = check_buffered(irql, code, buf, i, o).unwrap_err();
            assert_eq!(r.status, want, "{irql} {code:#x} {i} {o}: {}", r.why);
        }
        // No buffers at all is fine at this level (the decoder then says what is wrong).
        assert!(check_buffered(PASSIVE_LEVEL, code, core::ptr::null_mut(), 0, 0).is_ok());
        assert!(check_buffered(PASSIVE_LEVEL, code, ok, 8192, 1 << 20).is_ok());
    }

    #[test]
    fn the_emulators_bufferless_requests_get_clean_errors() {
        let mut ctl = Control::new(Tunables::default());
        // The code speakeasy sends (METHOD_IN_DIRECT: refused at the IRP level) and the 0 it
        // reads through its off-by-one stack location (a METHOD_BUFFERED non-tdinal code).
        for code in [0x5d5d_5d5d_u32, 0] {
            let mut f = fake(code, &[], 0, false);
            assert_eq!(
                run(&mut ctl, &mut f, PASSIVE_LEVEL),
                (STATUS_INVALID_DEVICE_REQUEST, 0),
                "{code:#x}"
            );
        }
        // A missing stack location.
        let mut f = fake(0, &[], 0, false);
        f.irp.Tail.Overlay.Stack.CurrentStackLocation = core::ptr::null_mut();
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL).0,
            STATUS_INVALID_PARAMETER
        );
    }

    #[test]
    fn without_a_runtime_commands_say_not_started() {
        let mut ctl = Control::new(Tunables::default());
        assert!(!ctl.is_started());
        for cmd in [
            Command::GetPeer { index: 0 },
            Command::GetConn { index: 0 },
            Command::AddPeer {
                nid: "10.0.0.1@tcp".parse().unwrap(),
                ip: 0x0A00_0001,
                port: 988,
            },
            Command::StartDaemon {
                port: 988,
                accept: AcceptPolicy::Secure,
                backlog: None,
            },
            Command::PushConnection { nid: None },
        ] {
            let (code, input) = request(&cmd);
            let mut f = fake(code, &input, 224, true);
            assert_eq!(
                run(&mut ctl, &mut f, PASSIVE_LEVEL),
                (STATUS_INVALID_DEVICE_STATE, 0),
                "{cmd:?}"
            );
        }
        // Malformed input is still reported as such, and unimplemented codes as unsupported.
        let (code, mut input) = request(&Command::GetPeer { index: 0 });
        input[0] = 1; // ioc_len no longer the buffer length
        let mut f = fake(code, &input, 224, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL).0,
            STATUS_INVALID_PARAMETER
        );
        let ping = crate::ioctl::CODES
            .iter()
            .find(|c| c.name == "IOC_LIBCFS_PING")
            .unwrap()
            .code;
        let mut f = fake(ping, &[0u8; 128], 128, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL).0,
            ntstatus::STATUS_NOT_SUPPORTED
        );
    }

    #[test]
    fn with_a_runtime_replies_land_in_the_system_buffer() {
        let mut ctl = Control::new(Tunables::default());
        assert!(ctl.attach(Box::new(MockRuntime::default())).is_ok());
        assert!(ctl.is_started());
        assert!(ctl.attach(Box::new(MockRuntime::default())).is_err());

        // GET_PEER with an output buffer larger than the request: the reply is the request's
        // 224 bytes, and nothing past them is claimed or touched.
        let (code, input) = request(&Command::GetPeer { index: 0 });
        let mut f = fake(code, &input, 4096, true);
        assert_eq!(run(&mut ctl, &mut f, PASSIVE_LEVEL), (STATUS_SUCCESS, 224));
        assert_eq!(
            decode_reply(code, &f.buf[..224]).unwrap(),
            Reply::Peer(peer())
        );
        assert!(f.buf[224..].iter().all(|&b| b == 0xAA));

        // End of the list; output too small; a state-changing command.
        let (code, input) = request(&Command::GetPeer { index: 1 });
        let mut f = fake(code, &input, 224, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL),
            (ntstatus::STATUS_NO_MORE_ENTRIES, 0)
        );
        let (code, input) = request(&Command::GetPeer { index: 0 });
        let mut f = fake(code, &input, 100, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL),
            (ntstatus::STATUS_BUFFER_TOO_SMALL, 0)
        );
        let nid: Nid = "10.0.0.1@tcp".parse().unwrap();
        let (code, input) = request(&Command::AddPeer {
            nid,
            ip: 0x0A00_0001,
            port: 988,
        });
        let mut f = fake(code, &input, 0, true);
        assert_eq!(run(&mut ctl, &mut f, PASSIVE_LEVEL), (STATUS_SUCCESS, 0));
        let (code, input) = request(&Command::ConnectPeer {
            nid,
            ip: 0x0A00_0001,
            port: 988,
            ctype: None,
        });
        let mut f = fake(code, &input, 0, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL),
            (ntstatus::STATUS_CONNECTION_REFUSED, 0)
        );

        // Detached: back to "not started".
        let rt = ctl.detach();
        assert!(rt.is_some());
        let (code, input) = request(&Command::GetPeer { index: 0 });
        let mut f = fake(code, &input, 224, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL),
            (STATUS_INVALID_DEVICE_STATE, 0)
        );
    }

    #[test]
    fn start_daemon_starts_through_the_starter_once() {
        fn starter(req: &StartRequest) -> Result<Box<dyn KernelRuntime>, CtlError> {
            assert_eq!(
                (req.port, req.accept, req.backlog),
                (988, AcceptPolicy::All, 7)
            );
            assert_eq!(req.local_ip, 0x7F00_0001);
            Ok(Box::new(MockRuntime::default()))
        }
        let start = Command::StartDaemon {
            port: 988,
            accept: AcceptPolicy::All,
            backlog: Some(7),
        };
        let (code, input) = request(&start);
        let mut ctl = Control::new(Tunables::default());
        ctl.set_starter(starter);
        // No local address: cannot start.
        let mut f = fake(code, &input, 224, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL),
            (STATUS_INVALID_DEVICE_STATE, 0)
        );
        // REGISTER_MYNID (ptlctl mynid) configures the address before the start.
        let (mcode, minput) = request(&Command::RegisterMyNid {
            nid: "127.0.0.1@tcp".parse().unwrap(),
        });
        let mut f = fake(mcode, &minput, 224, true);
        assert_eq!(run(&mut ctl, &mut f, PASSIVE_LEVEL), (STATUS_SUCCESS, 0));
        let mut f = fake(code, &input, 224, true);
        assert_eq!(run(&mut ctl, &mut f, PASSIVE_LEVEL), (STATUS_SUCCESS, 0));
        assert!(ctl.is_started());
        // Already started.
        let mut f = fake(code, &input, 224, true);
        assert_eq!(
            run(&mut ctl, &mut f, PASSIVE_LEVEL),
            (STATUS_INVALID_DEVICE_STATE, 0)
        );
        assert!(ctl.driver_nal().is_none());
        assert_eq!(ctl.stop(), Some(Ok(())));
        assert_eq!(ctl.stop(), None);
        assert!(!ctl.is_started());
    }

    #[test]
    fn nal_query_goes_to_the_attached_runtime() {
        let mut ctl = Control::new(Tunables::default());
        assert!(ctl.nal_provider().is_none());
        assert!(ctl.attach(Box::new(MockRuntime::default())).is_ok());
        assert!(ctl.nal_provider().is_some());
    }
}
