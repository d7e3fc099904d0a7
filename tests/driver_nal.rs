//! The NAL interface end to end under the emulation (`--features driver,tdi-emu`): a fake
//! "portals" driver binds to tdinal the way the kernel LNet does (its `TDINAL_LNET_CALLBACKS`
//! through `nal_if::answer_query` against `Control`, the function the
//! `IRP_MJ_INTERNAL_DEVICE_CONTROL` handler calls), then moves LNet messages through the
//! `extern "system"` entry points with a Linux user-space `runtime::Node` (real sockets):
//! a zero-copy PUT from kvec fragments (Finalize after the ZC-ACK, then the node's LNet ACK
//! parsed and received), a PUT from the node (Parse, Recv into the fake's fragments, Finalize,
//! the fake's own LNet ACK reaching the node), a GET from the node answered with a REPLY, a GET
//! to the node whose REPLY is received, refused arguments, and the stop with a send and a
//! parsed message outstanding (each message finalized exactly once, the emulation left clean).
//! Addresses: 127.0.97.0/24 (driver .1, node .2, a peer that never answers its hello .3) and
//! 127.0.98.0/24 for the unbind test.
#![cfg(all(feature = "driver", feature = "tdi-emu", target_os = "linux"))]

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tdinal::driver::control::{execute_buffered, read_buffered, Control};
use tdinal::driver::nal_if::{
    answer_query, TDINAL_KVEC, TDINAL_LNET_CALLBACKS, TDINAL_NAL_INTERFACE, TDINAL_NAL_VERSION,
};
use tdinal::engine::tunables::Tunables;
use tdinal::ioctl::{encode_request, AcceptPolicy, Command, Era};
use tdinal::kernel::{
    IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, IO_STACK_LOCATION, IRP, MDL, NTSTATUS,
    PASSIVE_LEVEL, STATUS_CANCELLED, STATUS_DEVICE_BUSY, STATUS_DEVICE_NOT_READY,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use tdinal::lnet::LnetEvent;
use tdinal::runtime::{Node, NodeConfig};
use tdinal::tdi::emu;
use tdinal::wire::nid::LNET_PID_LUSTRE;
use tdinal::wire::{LnetHdr, LnetMsg, Net, Nid, ProcessId, WireHandle};

/// One test at a time: the emulation's leak counters are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn ioctl(ctl: &mut Control, cmd: &Command) -> NTSTATUS {
    let mut req = vec![0u8; 512];
    let (code, n) = encode_request(cmd, Era::Portals, &mut req).expect("encode");
    req.truncate(n);
    // SAFETY: IRP and IO_STACK_LOCATION hold integers, raw pointers, Option<fn> and unions of
    // those: all-zero is a valid value of each.
    let mut irp: Box<IRP> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: as above.
    let mut stack: Box<IO_STACK_LOCATION> = Box::new(unsafe { std::mem::zeroed() });
    stack.MajorFunction = tdinal::kernel::IRP_MJ_DEVICE_CONTROL as u8;
    stack.Parameters.DeviceIoControl.IoControlCode = code;
    stack.Parameters.DeviceIoControl.InputBufferLength = n as u32;
    stack.Parameters.DeviceIoControl.OutputBufferLength = n as u32;
    irp.Tail.Overlay.Stack.CurrentStackLocation = &mut *stack;
    irp.AssociatedIrp.SystemBuffer = req.as_mut_ptr().cast();
    // SAFETY: the IRP and its stack location are valid and live for the call.
    match unsafe { read_buffered(&mut *irp, PASSIVE_LEVEL) } {
        // SAFETY: the buffer is the system buffer: n bytes, all initialised.
        Ok(r) => unsafe { execute_buffered(ctl, &r) }.0,
        Err(r) => r.status,
    }
}

fn start_driver(ctl: &mut Control, nid: Nid) {
    assert_eq!(ioctl(ctl, &Command::RegisterMyNid { nid }), STATUS_SUCCESS);
    let start = Command::StartDaemon {
        port: 988,
        accept: AcceptPolicy::Secure,
        backlog: Some(8),
    };
    assert_eq!(ioctl(ctl, &start), STATUS_SUCCESS);
}

fn assert_emulation_clean() {
    let mut o = emu::outstanding();
    for _ in 0..300 {
        if o.irps == 0 && o.mdls == 0 && o.handles == 0 && o.chained_tsdus == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        o = emu::outstanding();
    }
    assert_eq!(
        (o.irps, o.mdls, o.handles, o.chained_tsdus),
        (0, 0, 0, 0),
        "{o:?}"
    );
    if let Some(v) = emu::violation() {
        panic!("kernel rule violated: {v}");
    }
}

// ------------------------------------------------------------------------------------------------
// The fake portals driver: records every callback.

#[derive(Debug, Clone)]
enum Up {
    Parse {
        hdr: LnetHdr,
        from: ProcessId,
        handle: usize,
    },
    Finalize {
        cookie: usize,
        status: NTSTATUS,
        bytes: u32,
    },
    PeerNotify {
        nid: Nid,
        alive: bool,
    },
}

#[derive(Default)]
struct Fake {
    ups: Mutex<Vec<Up>>,
    /// Parse returns this status.
    parse_status: Mutex<NTSTATUS>,
    /// Callbacks made at an IRQL other than PASSIVE_LEVEL, or on the test's own thread.
    wrong_context: Mutex<Vec<String>>,
    test_thread: Mutex<Option<std::thread::ThreadId>>,
    /// The runtime, read from inside Finalize: the engine's ZC-ACK count at each Finalize (the
    /// engine lock must be free during a callback, or this deadlocks).
    runtime: Mutex<Option<usize>>,
    zc_acks_at_finalize: Mutex<BTreeMap<usize, u64>>,
    /// When set, a PUT on [`RECV_IN_PARSE_PORTAL`] is received from inside Parse (LNet's usual
    /// way) into a buffer kept here by cookie.
    recv_in_parse: Mutex<Option<TDINAL_NAL_INTERFACE>>,
    rx_bufs: Mutex<BTreeMap<usize, Vec<u8>>>,
}

// SAFETY (for the statics holding a Fake): the interface is plain pointers to tdinal's
// functions and context, valid while bound; the test serialises access through the mutexes.
unsafe impl Send for Fake {}
// SAFETY: as above.
unsafe impl Sync for Fake {}

const RECV_IN_PARSE_PORTAL: u32 = 20;
/// Cookies of receives made from inside Parse: this plus the handle.
const PARSE_RECV_COOKIE: usize = 0x100_0000;

fn check_context(f: &Fake, what: &str) {
    let irql = tdinal::kernel::KeGetCurrentIrql();
    let on_test_thread = *f.test_thread.lock().unwrap() == Some(std::thread::current().id());
    if irql != PASSIVE_LEVEL || on_test_thread {
        f.wrong_context.lock().unwrap().push(format!(
            "{what} at IRQL {irql}, on the test thread: {on_test_thread}"
        ));
    }
}

unsafe extern "system" fn fake_parse(
    ctx: *mut c_void,
    header: *const u8,
    from_nid: u64,
    from_pid: u32,
    rx: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the test's Fake, alive for the binding.
    let f = unsafe { &*(ctx as *const Fake) };
    check_context(f, "Parse");
    // SAFETY: the interface: 72 header bytes valid during the call.
    let bytes = unsafe { std::slice::from_raw_parts(header, 72) };
    let hdr = LnetHdr::decode(bytes).expect("Parse header decodes");
    f.ups.lock().unwrap().push(Up::Parse {
        hdr,
        from: ProcessId::new(Nid(from_nid), from_pid),
        handle: rx as usize,
    });
    let iface = *f.recv_in_parse.lock().unwrap();
    if let (Some(iface), LnetMsg::Put { ptl_index, .. }) = (iface, hdr.msg) {
        if ptl_index == RECV_IN_PARSE_PORTAL {
            let cookie = PARSE_RECV_COOKIE + rx as usize;
            let mut buf = vec![0u8; hdr.payload_length as usize];
            let iov = [kvec_mut(&mut buf)];
            let n = u32::from(!buf.is_empty());
            // The buffer's heap block does not move with the Vec: lent until Finalize.
            f.rx_bufs.lock().unwrap().insert(cookie, buf);
            // SAFETY: the interface's Recv, from inside Parse (allowed: it only queues).
            unsafe {
                (iface.Recv.unwrap())(
                    iface.Context,
                    rx,
                    iov.as_ptr(),
                    n,
                    hdr.payload_length,
                    cookie as *mut c_void,
                )
            };
        }
    }
    *f.parse_status.lock().unwrap()
}

unsafe extern "system" fn fake_finalize(
    ctx: *mut c_void,
    cookie: *mut c_void,
    status: NTSTATUS,
    bytes: u32,
) {
    // SAFETY: as above.
    let f = unsafe { &*(ctx as *const Fake) };
    check_context(f, "Finalize");
    let rt = *f.runtime.lock().unwrap();
    if let Some(rt) = rt {
        // SAFETY: the test clears the pointer before the runtime stops.
        let rt = unsafe { &*(rt as *const tdinal::tdi::TdiRuntime) };
        let acks = rt.with(|_, e, _| e.stats.zc_acks_received);
        f.zc_acks_at_finalize
            .lock()
            .unwrap()
            .insert(cookie as usize, acks);
    }
    f.ups.lock().unwrap().push(Up::Finalize {
        cookie: cookie as usize,
        status,
        bytes,
    });
}

unsafe extern "system" fn fake_peer_notify(ctx: *mut c_void, nid: u64, alive: u8) {
    // SAFETY: as above.
    let f = unsafe { &*(ctx as *const Fake) };
    check_context(f, "PeerNotify");
    f.ups.lock().unwrap().push(Up::PeerNotify {
        nid: Nid(nid),
        alive: alive != 0,
    });
}

impl Fake {
    fn callbacks(&self) -> TDINAL_LNET_CALLBACKS {
        TDINAL_LNET_CALLBACKS {
            Size: 40,
            Version: TDINAL_NAL_VERSION,
            Reserved: 0,
            Context: self as *const Fake as *mut c_void,
            Parse: Some(fake_parse),
            Finalize: Some(fake_finalize),
            PeerNotify: Some(fake_peer_notify),
        }
    }

    /// Waits for the first recorded upcall matching `f` (not consumed).
    fn wait_for<T>(&self, what: &str, secs: u64, mut f: impl FnMut(&Up) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = self.ups.lock().unwrap().iter().find_map(&mut f) {
                return v;
            }
            if let Some(v) = emu::violation() {
                panic!("kernel rule violated: {v}");
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finalize_of(&self, cookie: usize, secs: u64) -> (NTSTATUS, u32) {
        self.wait_for(&format!("Finalize({cookie:#x})"), secs, |u| match u {
            Up::Finalize {
                cookie: c,
                status,
                bytes,
            } if *c == cookie => Some((*status, *bytes)),
            _ => None,
        })
    }

    /// Every cookie finalized, with how many times.
    fn finalize_counts(&self) -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for u in self.ups.lock().unwrap().iter() {
            if let Up::Finalize { cookie, .. } = u {
                *m.entry(*cookie).or_insert(0) += 1;
            }
        }
        m
    }

    fn parse_matching(
        &self,
        what: &str,
        mut f: impl FnMut(&LnetHdr) -> bool,
    ) -> (LnetHdr, ProcessId, usize) {
        self.wait_for(what, 20, |u| match u {
            Up::Parse { hdr, from, handle } if f(hdr) => Some((*hdr, *from, *handle)),
            _ => None,
        })
    }
}

/// The entry points, called as LNet calls them: at DISPATCH_LEVEL (the highest IRQL the
/// interface allows; the emulation flags any wait or PASSIVE-only routine inside, and a Finalize
/// made from inside the call would be seen at DISPATCH_LEVEL by `check_context`).
struct Nal(TDINAL_NAL_INTERFACE);

// SAFETY: the interface is tdinal's function pointers and context, callable from any thread
// (the contract: entry points at any IRQL <= DISPATCH_LEVEL, from any thread).
unsafe impl Send for Nal {}
// SAFETY: as above.
unsafe impl Sync for Nal {}

fn at_dispatch(f: impl FnOnce()) {
    emu::kernel::at_dispatch("a NAL entry point", f)
}

impl Nal {
    fn send(&self, to: ProcessId, hdr: &LnetHdr, iov: &[TDINAL_KVEC], len: u32, cookie: usize) {
        let mut bytes = [0u8; 72];
        hdr.encode(&mut bytes).expect("encode");
        self.send_raw(to, &bytes, iov, len, cookie);
    }
    fn send_raw(
        &self,
        to: ProcessId,
        hdr: &[u8; 72],
        iov: &[TDINAL_KVEC],
        len: u32,
        cookie: usize,
    ) {
        // SAFETY: the interface's Send; the header is copied during the call; the fragments
        // stay valid and unchanged until the cookie's Finalize (the tests keep them alive).
        at_dispatch(|| unsafe {
            (self.0.Send.unwrap())(
                self.0.Context,
                to.nid.0,
                to.pid,
                hdr.as_ptr(),
                iov.as_ptr(),
                iov.len() as u32,
                len,
                cookie as *mut c_void,
            )
        });
    }
    fn recv(&self, handle: usize, iov: &[TDINAL_KVEC], mlen: u32, cookie: usize) {
        // SAFETY: the interface's Recv; the fragments are lent until Finalize.
        at_dispatch(|| unsafe {
            (self.0.Recv.unwrap())(
                self.0.Context,
                handle as *mut c_void,
                iov.as_ptr(),
                iov.len() as u32,
                mlen,
                cookie as *mut c_void,
            )
        });
    }
    fn send_pages(
        &self,
        to: ProcessId,
        hdr: &LnetHdr,
        mdl: *mut MDL,
        offset: u32,
        len: u32,
        cookie: usize,
    ) {
        let mut bytes = [0u8; 72];
        hdr.encode(&mut bytes).expect("encode");
        self.send_pages_raw(to, &bytes, mdl, offset, len, cookie);
    }
    fn send_pages_raw(
        &self,
        to: ProcessId,
        hdr: &[u8; 72],
        mdl: *mut MDL,
        offset: u32,
        len: u32,
        cookie: usize,
    ) {
        // SAFETY: the interface's SendPages; the MDL chain (built for non-paged memory the test
        // keeps alive) stays valid until the cookie's Finalize.
        at_dispatch(|| unsafe {
            (self.0.SendPages.unwrap())(
                self.0.Context,
                to.nid.0,
                to.pid,
                hdr.as_ptr(),
                mdl,
                offset,
                len,
                cookie as *mut c_void,
            )
        });
    }
    fn recv_pages(&self, handle: usize, mdl: *mut MDL, offset: u32, mlen: u32, cookie: usize) {
        // SAFETY: the interface's RecvPages; the pages are lent until Finalize.
        at_dispatch(|| unsafe {
            (self.0.RecvPages.unwrap())(
                self.0.Context,
                handle as *mut c_void,
                mdl,
                offset,
                mlen,
                cookie as *mut c_void,
            )
        });
    }
    fn dereference(&self) {
        // SAFETY: drops the reference the query handed out.
        unsafe { (self.0.InterfaceDereference.unwrap())(self.0.Context) }
    }
}

fn kvec(buf: &[u8]) -> TDINAL_KVEC {
    TDINAL_KVEC {
        Base: buf.as_ptr() as *mut c_void,
        Length: buf.len(),
    }
}

fn kvec_mut(buf: &mut [u8]) -> TDINAL_KVEC {
    TDINAL_KVEC {
        Base: buf.as_mut_ptr().cast(),
        Length: buf.len(),
    }
}

/// An MDL over `buf`, built for non-paged memory (the emulation's IoAllocateMdl and
/// MmBuildMdlForNonPagedPool), as LNet would lend one.
fn mdl_over(buf: &[u8]) -> *mut MDL {
    // SAFETY: the buffer outlives the MDL (freed by the test with free_mdl before the buffer).
    unsafe {
        let m = IoAllocateMdl(
            buf.as_ptr() as *mut c_void,
            buf.len() as u32,
            0,
            0,
            std::ptr::null_mut(),
        );
        assert!(!m.is_null());
        MmBuildMdlForNonPagedPool(m);
        m
    }
}

fn mdl_over_mut(buf: &mut [u8]) -> *mut MDL {
    mdl_over(buf)
}

fn free_mdl(m: *mut MDL) {
    // SAFETY: an MDL from mdl_over, finalized (no longer referenced by tdinal).
    unsafe { IoFreeMdl(m) }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn hdr(from: Nid, to: Nid, payload_length: u32, msg: LnetMsg) -> LnetHdr {
    LnetHdr {
        dest_nid: to,
        src_nid: from,
        dest_pid: LNET_PID_LUSTRE,
        src_pid: LNET_PID_LUSTRE,
        payload_length,
        msg,
    }
}

/// A TCP peer that accepts connections and never answers: sends to it stay queued.
fn silent_peer(ip: Ipv4Addr) -> (Arc<Mutex<Vec<TcpStream>>>, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind((ip, 988)).expect("bind the silent peer");
    l.set_nonblocking(true).unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    let t = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && Arc::strong_count(&h2) > 1 {
            if let Ok((s, _)) = l.accept() {
                h2.lock().unwrap().push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (held, t)
}

#[test]
fn a_kernel_lnet_sends_and_receives_through_the_nal_interface() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    emu::set_seed(0x4a1);
    let drv_ip = Ipv4Addr::new(127, 0, 97, 1);
    let node_ip = Ipv4Addr::new(127, 0, 97, 2);
    let silent_ip = Ipv4Addr::new(127, 0, 97, 3);
    let drv_nid = Nid::new(Net::TCP0, u32::from(drv_ip));
    let node_nid = Nid::new(Net::TCP0, u32::from(node_ip));
    let silent_nid = Nid::new(Net::TCP0, u32::from(silent_ip));
    let node_id = ProcessId::lustre(node_nid);
    let drv_id = ProcessId::lustre(drv_nid);

    let fake: &'static Fake = Box::leak(Box::default());
    *fake.test_thread.lock().unwrap() = Some(std::thread::current().id());
    let mut ctl = Control::new(Tunables::default());
    ctl.set_starter(tdinal::driver::nal::start);

    // Not started: the query says so.
    assert_eq!(
        answer_query(&fake.callbacks(), ctl.nal_provider())
            .unwrap_err()
            .status,
        STATUS_DEVICE_NOT_READY
    );
    start_driver(&mut ctl, drv_nid);
    let node = Node::start(NodeConfig::new(node_nid)).expect("node start");
    let (tap_tx, tap_rx) = mpsc::channel();
    node.handle().tap_puts(Some(tap_tx));

    // Bind: the interface comes back complete; a second LNet is refused while this one is bound.
    let iface = answer_query(&fake.callbacks(), ctl.nal_provider()).expect("bind");
    assert!(iface.is_complete());
    let nal = Nal(iface);
    let other: &'static Fake = Box::leak(Box::default());
    assert_eq!(
        answer_query(&other.callbacks(), ctl.nal_provider())
            .unwrap_err()
            .status,
        STATUS_DEVICE_BUSY
    );
    let rt = || ctl.driver_nal().and_then(|n| n.runtime()).expect("runtime");
    assert!(rt().external_bound());
    *fake.runtime.lock().unwrap() = Some(rt() as *const _ as usize);
    assert_eq!(rt().with(|_, e, _| e.stats.zc_acks_received), 0);

    // 1. A PUT of 200 KiB in three kvec fragments (zero-copy on V3), with an LNet ACK asked.
    let frags = [pattern(70_000, 1), pattern(1, 2), pattern(134_799, 3)];
    let len: u32 = frags.iter().map(|f| f.len() as u32).sum();
    let iov: Vec<TDINAL_KVEC> = frags.iter().map(|f| kvec(f)).collect();
    let ack_wmd = WireHandle {
        interface_cookie: 0xfeed,
        object_cookie: 1,
    };
    let put = hdr(
        drv_nid,
        node_nid,
        len,
        LnetMsg::Put {
            ack_wmd,
            match_bits: 0x1234,
            hdr_data: 0x55,
            ptl_index: 9,
            offset: 0,
        },
    );
    nal.send(node_id, &put, &iov, len, 0x1001);
    let got = tap_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the node receives the PUT");
    assert_eq!(
        (got.from, got.portal, got.match_bits, got.hdr_data),
        (drv_id, 9, 0x1234, 0x55)
    );
    assert!(
        got.data == frags.concat(),
        "PUT payload as the fragments hold it"
    );
    assert_eq!(fake.finalize_of(0x1001, 20), (STATUS_SUCCESS, len));
    assert_eq!(
        fake.zc_acks_at_finalize.lock().unwrap().get(&0x1001),
        Some(&1),
        "the zero-copy PUT is finalized once its ZC-ACK arrived, not before"
    );
    let zc = rt().with(|_, e, _| {
        (
            e.stats.zc_requests,
            e.stats.zc_acks_received,
            e.stats.zc_waiting,
        )
    });
    assert!(
        zc.0 >= 1 && zc.1 >= 1 && zc.2 == 0,
        "zero-copy send acknowledged: {zc:?}"
    );
    drop(iov);
    // The node's LNet ACK: Parse, then a discarding Recv finalized with 0 bytes.
    let (ack, from, h) = fake.parse_matching(
        "the node's ACK",
        |h| matches!(h.msg, LnetMsg::Ack { dst_wmd, .. } if dst_wmd == ack_wmd),
    );
    assert_eq!(from, node_id);
    assert!(matches!(ack.msg, LnetMsg::Ack { mlength, match_bits: 0x1234, .. } if mlength == len));
    nal.recv(h, &[], 0, 0x1002);
    assert_eq!(fake.finalize_of(0x1002, 10), (STATUS_SUCCESS, 0));

    // 2. A PUT from the node: Parse, Recv into two fragments, Finalize; the fake's ACK reaches
    //    the node's LNet.
    let (done_tx, done_rx) = mpsc::channel();
    let sent = pattern(100_000, 7);
    let op = node.handle().put_with(
        drv_id,
        11,
        0x77,
        0x99,
        Arc::from(sent.clone()),
        true,
        &done_tx,
    );
    let (p, from, h) = fake.parse_matching("the node's PUT", |h| {
        matches!(h.msg, LnetMsg::Put { ptl_index: 11, .. })
    });
    assert_eq!(from, node_id);
    assert_eq!(p.payload_length, 100_000);
    let mut b1 = vec![0u8; 30_000];
    let mut b2 = vec![0u8; 80_000];
    nal.recv(h, &[kvec_mut(&mut b1), kvec_mut(&mut b2)], 100_000, 0x2001);
    assert_eq!(fake.finalize_of(0x2001, 20), (STATUS_SUCCESS, 100_000));
    assert!(
        [&b1[..], &b2[..70_000]].concat() == sent,
        "received in place"
    );
    assert!(b2[70_000..].iter().all(|&b| b == 0), "nothing past mlength");
    let LnetMsg::Put {
        ack_wmd,
        match_bits,
        ..
    } = p.msg
    else {
        unreachable!()
    };
    let ack = hdr(
        drv_nid,
        node_nid,
        0,
        LnetMsg::Ack {
            dst_wmd: ack_wmd,
            match_bits,
            mlength: 100_000,
        },
    );
    nal.send(node_id, &ack, &[], 0, 0x2002);
    assert_eq!(fake.finalize_of(0x2002, 10), (STATUS_SUCCESS, 0));
    match done_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(LnetEvent::PutDone { op: o, result }) => {
            assert_eq!(o, op);
            assert_eq!(
                result,
                Ok(100_000),
                "the node's PUT acknowledged by the fake"
            );
        }
        other => panic!("PutDone: {other:?}"),
    }

    // 3. A GET from the node, answered with a REPLY from one fragment.
    let served = pattern(3000, 9);
    let op = node
        .handle()
        .get_with(drv_id, 12, 0x88, 4096, Duration::from_secs(20), &done_tx);
    let (g, _, h) = fake.parse_matching("the node's GET", |h| {
        matches!(h.msg, LnetMsg::Get { ptl_index: 12, .. })
    });
    nal.recv(h, &[], 0, 0x3001);
    assert_eq!(fake.finalize_of(0x3001, 10), (STATUS_SUCCESS, 0));
    let LnetMsg::Get { return_wmd, .. } = g.msg else {
        unreachable!()
    };
    let reply = hdr(
        drv_nid,
        node_nid,
        3000,
        LnetMsg::Reply {
            dst_wmd: return_wmd,
        },
    );
    nal.send(node_id, &reply, &[kvec(&served)], 3000, 0x3002);
    assert_eq!(fake.finalize_of(0x3002, 10), (STATUS_SUCCESS, 3000));
    match done_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(LnetEvent::GetDone { op: o, result }) => {
            assert_eq!(o, op);
            assert!(result.expect("GET answered") == served, "REPLY data");
        }
        other => panic!("GetDone: {other:?}"),
    }

    // 4. A GET to the node; its REPLY is received into the fake's buffer.
    let data = pattern(5000, 4);
    node.handle().serve(13, 0x99, data.clone());
    let wmd = WireHandle {
        interface_cookie: 0xfeed,
        object_cookie: 2,
    };
    let get = hdr(
        drv_nid,
        node_nid,
        0,
        LnetMsg::Get {
            return_wmd: wmd,
            match_bits: 0x99,
            ptl_index: 13,
            src_offset: 0,
            sink_length: 8192,
        },
    );
    nal.send(node_id, &get, &[], 0, 0x4001);
    assert_eq!(fake.finalize_of(0x4001, 10), (STATUS_SUCCESS, 0));
    let (r, _, h) = fake.parse_matching(
        "the node's REPLY",
        |h| matches!(h.msg, LnetMsg::Reply { dst_wmd } if dst_wmd == wmd),
    );
    assert_eq!(r.payload_length, 5000);
    let mut sink = vec![0u8; 8192];
    nal.recv(h, &[kvec_mut(&mut sink)], 5000, 0x4002);
    assert_eq!(fake.finalize_of(0x4002, 10), (STATUS_SUCCESS, 5000));
    assert!(sink[..5000] == data[..], "REPLY received in place");

    // 4b. Pages: a PUT from a chain of two MDLs, starting 100 bytes in, and a PUT from the
    //     node received into a chain of three MDLs, 10 bytes in.
    let pa = pattern(50_000, 21);
    let pb = pattern(60_000, 22);
    let ma = mdl_over(&pa);
    let mb = mdl_over(&pb);
    // SAFETY: an MDL of ours, just allocated.
    unsafe { (*ma).Next = mb };
    let plen = 50_000 - 100 + 30_000;
    let pput = hdr(
        drv_nid,
        node_nid,
        plen,
        LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 0x16,
            hdr_data: 0,
            ptl_index: 16,
            offset: 0,
        },
    );
    nal.send_pages(node_id, &pput, ma, 100, plen, 0x4101);
    let got = tap_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the node receives the PUT from pages");
    assert_eq!(got.portal, 16);
    assert!(
        got.data == [&pa[100..], &pb[..30_000]].concat(),
        "PUT payload as the pages hold it"
    );
    assert_eq!(fake.finalize_of(0x4101, 20), (STATUS_SUCCESS, plen));
    free_mdl(mb);
    free_mdl(ma);

    let sent = pattern(70_000, 23);
    node.handle().put_with(
        drv_id,
        17,
        0x17,
        0,
        Arc::from(sent.clone()),
        false,
        &done_tx,
    );
    let (_, _, h) = fake.parse_matching("the node's PUT for pages", |h| {
        matches!(h.msg, LnetMsg::Put { ptl_index: 17, .. })
    });
    let mut r1 = vec![0u8; 10_000];
    let mut r2 = vec![0u8; 40_000];
    let mut r3 = vec![0u8; 40_000];
    let (m1, m2, m3) = (
        mdl_over_mut(&mut r1),
        mdl_over_mut(&mut r2),
        mdl_over_mut(&mut r3),
    );
    // SAFETY: MDLs of ours, just allocated.
    unsafe {
        (*m1).Next = m2;
        (*m2).Next = m3;
    }
    nal.recv_pages(h, m1, 10, 70_000, 0x4102);
    assert_eq!(fake.finalize_of(0x4102, 20), (STATUS_SUCCESS, 70_000));
    for m in [m3, m2, m1] {
        free_mdl(m);
    }
    let all = [r1, r2, r3].concat();
    assert!(
        all[10..70_010] == sent[..],
        "received in place into the pages"
    );
    assert!(all[..10].iter().chain(&all[70_010..]).all(|&b| b == 0));
    match done_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(LnetEvent::PutDone { result, .. }) => assert_eq!(result, Ok(0)),
        other => panic!("PutDone: {other:?}"),
    }

    // 5. Refused arguments: each finalized once (from a scheduler thread), nothing sent.
    let mut garbage = [0u8; 72];
    garbage[24..28].copy_from_slice(&77u32.to_le_bytes()); // no such message type
    nal.send_raw(node_id, &garbage, &[], 0, 0x5001);
    // Header and argument disagree on the payload length.
    nal.send(node_id, &put, &[kvec(&served)], 3000, 0x5002);
    // More fragments than LNet allows.
    let many: Vec<TDINAL_KVEC> = (0..257).map(|_| kvec(&served[..1])).collect();
    let put257 = hdr(
        drv_nid,
        node_nid,
        257,
        LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: 9,
            offset: 0,
        },
    );
    nal.send(node_id, &put257, &many, 257, 0x5003);
    // A handle that was already consumed.
    nal.recv(h, &[], 0, 0x5004);
    // A header that does not decode, with pages.
    nal.send_pages_raw(node_id, &garbage, std::ptr::null_mut(), 0, 0, 0x5005);
    // An MDL chain shorter than the payload.
    let short = pattern(1000, 8);
    let ms = mdl_over(&short);
    let put2000 = hdr(
        drv_nid,
        node_nid,
        2000,
        LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: 9,
            offset: 0,
        },
    );
    nal.send_pages(node_id, &put2000, ms, 0, 2000, 0x5006);
    for c in 0x5001..=0x5006 {
        assert_eq!(
            fake.finalize_of(c, 10).0,
            STATUS_INVALID_PARAMETER,
            "{c:#x}"
        );
    }
    free_mdl(ms);

    // 6. Outstanding at stop: a PUT to a peer that never answers its hello (queued behind the
    //    handshake), and a PUT from the node whose Parse the fake leaves unanswered.
    let (held, silent) = silent_peer(silent_ip);
    let stuck = pattern(40_000, 5);
    let stuck_put = hdr(
        drv_nid,
        silent_nid,
        40_000,
        LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 3,
            hdr_data: 0,
            ptl_index: 9,
            offset: 0,
        },
    );
    nal.send(
        ProcessId::lustre(silent_nid),
        &stuck_put,
        &[kvec(&stuck)],
        40_000,
        0x6001,
    );
    let op = node.handle().put_with(
        drv_id,
        14,
        0x66,
        0,
        Arc::from(pattern(20_000, 6)),
        true,
        &done_tx,
    );
    fake.parse_matching("the unanswered PUT", |h| {
        matches!(h.msg, LnetMsg::Put { ptl_index: 14, .. })
    });
    let wait = Instant::now() + Duration::from_secs(10);
    while held.lock().unwrap().is_empty() {
        assert!(Instant::now() < wait, "the silent peer was never dialled");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !fake.finalize_counts().contains_key(&0x6001),
        "the stuck PUT is still outstanding before the stop"
    );
    let outstanding = rt().with_external(|f| f.map(|f| f.outstanding()));
    assert_eq!(outstanding, Some(1), "one send of LNet's inside the engine");

    // The stop delivers what is left on the stopping thread (the schedulers are gone), and a
    // call after it is finalized on the caller's: both are this thread from here on.
    *fake.test_thread.lock().unwrap() = None;
    *fake.runtime.lock().unwrap() = None;
    assert_eq!(ctl.stop(), Some(Ok(())));
    // An error (the engine's verdict: its connection was cut at the handshake, so the peer is
    // unreachable), exactly once (checked below).
    let (st, _) = fake.finalize_of(0x6001, 1);
    assert!(st < 0, "the stuck PUT fails at the stop: {:#x}", st as u32);
    let wrong = fake.wrong_context.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "callbacks in the wrong context: {wrong:?}"
    );
    // A call after the stop (LNet still holds its reference) is finalized, not lost: from
    // inside the call, at the caller's IRQL (the documented exception, docs/nal-interface.md §9).
    nal.send(node_id, &ack, &[], 0, 0x7001);
    assert_eq!(fake.finalize_of(0x7001, 1).0, STATUS_CANCELLED);
    assert_eq!(
        std::mem::take(&mut *fake.wrong_context.lock().unwrap()),
        ["Finalize at IRQL 2, on the test thread: false"]
    );
    nal.dereference();

    // Exactly once per message, every one of them.
    let counts = fake.finalize_counts();
    let want: Vec<usize> = vec![
        0x1001, 0x1002, 0x2001, 0x2002, 0x3001, 0x3002, 0x4001, 0x4002, 0x4101, 0x4102, 0x5001,
        0x5002, 0x5003, 0x5004, 0x5005, 0x5006, 0x6001, 0x7001,
    ];
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), want);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let wrong = fake.wrong_context.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "callbacks in the wrong context: {wrong:?}"
    );
    assert!(
        other.ups.lock().unwrap().is_empty(),
        "the refused LNet got no callback"
    );

    assert_emulation_clean();
    match done_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(LnetEvent::PutDone { op: o, result }) => {
            assert_eq!(o, op);
            assert!(result.is_err(), "the unanswered PUT fails at the node");
        }
        other => panic!("PutDone: {other:?}"),
    }
    drop(held);
    silent.join().unwrap();
    node.shutdown().check().expect("node shutdown clean");
}

/// The last `InterfaceDereference` with messages outstanding (runtime still running): every
/// one is finalized before it returns, the unanswered `Parse` is discarded, the runtime's own
/// LNet layer answers again, and another LNet may bind. `Notify(nid, FALSE)` closes the
/// connections to a peer and `PeerNotify(nid, FALSE)` comes back.
#[test]
fn unbinding_finalizes_everything_and_gives_the_runtime_back() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drv_ip = Ipv4Addr::new(127, 0, 98, 1);
    let node_ip = Ipv4Addr::new(127, 0, 98, 2);
    let silent_ip = Ipv4Addr::new(127, 0, 98, 3);
    let drv_nid = Nid::new(Net::TCP0, u32::from(drv_ip));
    let node_nid = Nid::new(Net::TCP0, u32::from(node_ip));
    let silent_nid = Nid::new(Net::TCP0, u32::from(silent_ip));
    let node_id = ProcessId::lustre(node_nid);
    let drv_id = ProcessId::lustre(drv_nid);

    let fake: &'static Fake = Box::leak(Box::default());
    *fake.test_thread.lock().unwrap() = Some(std::thread::current().id());
    let mut ctl = Control::new(Tunables::default());
    ctl.set_starter(tdinal::driver::nal::start);
    start_driver(&mut ctl, drv_nid);
    let node = Node::start(NodeConfig::new(node_nid)).expect("node start");
    let nal = Nal(answer_query(&fake.callbacks(), ctl.nal_provider()).expect("bind"));
    let rt = || ctl.driver_nal().and_then(|n| n.runtime()).expect("runtime");

    // A small PUT without ACK: finalized once its bytes are handed to TCP.
    let small = pattern(1000, 1);
    let put = |to: Nid, len: u32, bits: u64| {
        hdr(
            drv_nid,
            to,
            len,
            LnetMsg::Put {
                ack_wmd: WireHandle::NONE,
                match_bits: bits,
                hdr_data: 0,
                ptl_index: 9,
                offset: 0,
            },
        )
    };
    nal.send(node_id, &put(node_nid, 1000, 1), &[kvec(&small)], 1000, 0x1);
    assert_eq!(fake.finalize_of(0x1, 20), (STATUS_SUCCESS, 1000));

    // Notify(node, dead) once the three typed connections are up: they close; LNet hears the
    // peer is down.
    let wait = Instant::now() + Duration::from_secs(20);
    while rt().with(|_, e, _| e.conns().len()) < 3 {
        assert!(Instant::now() < wait, "three connections to the node");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: the interface's Notify.
    at_dispatch(|| unsafe { (nal.0.Notify.unwrap())(nal.0.Context, node_nid.0, 0) });
    fake.wait_for("PeerNotify(node, down)", 20, |u| match u {
        Up::PeerNotify { nid, alive: false } if *nid == node_nid => Some(()),
        _ => None,
    });
    // (The node's PUT below must not race the closes: it would fail on a closing connection.)
    let wait = Instant::now() + Duration::from_secs(20);
    while !node.handle().conns().is_empty() {
        assert!(
            Instant::now() < wait,
            "the node sees its connections closed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Outstanding: a PUT stuck behind a handshake that never completes, and a Parse of a PUT
    // from the node left unanswered.
    let (held, silent) = silent_peer(silent_ip);
    let stuck = pattern(30_000, 2);
    nal.send(
        ProcessId::lustre(silent_nid),
        &put(silent_nid, 30_000, 2),
        &[kvec(&stuck)],
        30_000,
        0x2,
    );
    let (done_tx, done_rx) = mpsc::channel();
    node.handle().put_with(
        drv_id,
        15,
        0x5,
        0,
        Arc::from(pattern(5000, 3)),
        true,
        &done_tx,
    );
    fake.parse_matching("the node's PUT", |h| {
        matches!(h.msg, LnetMsg::Put { ptl_index: 15, .. })
    });
    let wait = Instant::now() + Duration::from_secs(10);
    while held.lock().unwrap().is_empty() {
        assert!(Instant::now() < wait, "the silent peer was never dialled");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(rt().with_external(|f| f.map(|f| f.outstanding())), Some(1));

    // The last dereference: the stuck PUT is finalized (an error) before it returns.
    let t = Instant::now();
    nal.dereference();
    eprintln!("unbind with one send outstanding took {:?}", t.elapsed());
    let counts = fake.finalize_counts();
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), vec![0x1, 0x2]);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let (st, _) = fake.finalize_of(0x2, 0);
    assert!(st < 0, "{:#x}", st as u32);
    assert!(!rt().external_bound());
    let n = fake.ups.lock().unwrap().len();
    let wrong = fake.wrong_context.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "callbacks in the wrong context: {wrong:?}"
    );

    // The runtime's own LNet answers again (the node's ping), and another LNet may bind. (The
    // unbind cut the connections: the ping must not race their closes.)
    let wait = Instant::now() + Duration::from_secs(20);
    while !node.handle().conns().is_empty() || rt().conn_count() != 0 {
        assert!(Instant::now() < wait, "the unbind's closes settle");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ids = node
        .handle()
        .ping(drv_id, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the driver's own LNet answers the ping: {e:?}"));
    assert!(ids.iter().any(|(id, _)| id.nid == drv_nid), "{ids:?}");
    let again: &'static Fake = Box::leak(Box::default());
    let nal2 = Nal(answer_query(&again.callbacks(), ctl.nal_provider()).expect("bind again"));
    nal2.dereference();
    assert_eq!(
        fake.ups.lock().unwrap().len(),
        n,
        "no callback after the unbind"
    );

    assert_eq!(ctl.stop(), Some(Ok(())));
    assert_emulation_clean();
    drop(done_rx);
    drop(held);
    silent.join().unwrap();
    node.shutdown().check().expect("node shutdown clean");
}

/// Traffic both ways at once: three threads send 100 PUTs each (two kvec fragments, 0 to 70 KB)
/// through the entry points at DISPATCH_LEVEL while the node sends 100 PUTs that the fake
/// receives from inside Parse. Every payload arrives intact, every message is finalized exactly
/// once with success.
#[test]
fn concurrent_traffic_both_ways_with_recv_from_inside_parse() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drv_ip = Ipv4Addr::new(127, 0, 99, 1);
    let node_ip = Ipv4Addr::new(127, 0, 99, 2);
    let drv_nid = Nid::new(Net::TCP0, u32::from(drv_ip));
    let node_nid = Nid::new(Net::TCP0, u32::from(node_ip));
    let node_id = ProcessId::lustre(node_nid);
    let drv_id = ProcessId::lustre(drv_nid);

    let fake: &'static Fake = Box::leak(Box::default());
    *fake.test_thread.lock().unwrap() = Some(std::thread::current().id());
    let mut ctl = Control::new(Tunables::default());
    ctl.set_starter(tdinal::driver::nal::start);
    start_driver(&mut ctl, drv_nid);
    let node = Node::start(NodeConfig::new(node_nid)).expect("node start");
    let (tap_tx, tap_rx) = mpsc::channel();
    node.handle().tap_puts(Some(tap_tx));
    let iface = answer_query(&fake.callbacks(), ctl.nal_provider()).expect("bind");
    *fake.recv_in_parse.lock().unwrap() = Some(iface);
    let nal = Arc::new(Nal(iface));

    const THREADS: usize = 3;
    const PER_THREAD: usize = 100;
    const FROM_NODE: usize = 100;
    let size = |k: usize| (k * 7919) % 70_001;
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let nal = nal.clone();
            std::thread::spawn(move || {
                // The payloads stay alive (and unchanged) until the test has seen every Finalize.
                let mut keep = Vec::new();
                for i in 0..PER_THREAD {
                    let k = t * PER_THREAD + i;
                    let data = pattern(size(k), k as u8);
                    let cut = data.len() / 3;
                    let len = data.len() as u32;
                    let put = hdr(
                        drv_nid,
                        node_nid,
                        len,
                        LnetMsg::Put {
                            ack_wmd: WireHandle::NONE,
                            match_bits: k as u64,
                            hdr_data: 0,
                            ptl_index: 21,
                            offset: 0,
                        },
                    );
                    let iov = [kvec(&data[..cut]), kvec(&data[cut..])];
                    nal.send(node_id, &put, &iov, len, 0x20_0000 + k);
                    keep.push(data);
                }
                keep
            })
        })
        .collect();
    let (done_tx, done_rx) = mpsc::channel();
    for k in 0..FROM_NODE {
        node.handle().put_with(
            drv_id,
            RECV_IN_PARSE_PORTAL,
            k as u64,
            0,
            Arc::from(pattern(size(k + 1000), k as u8 ^ 0x5a)),
            false,
            &done_tx,
        );
    }
    let kept: Vec<Vec<u8>> = senders
        .into_iter()
        .flat_map(|h| h.join().expect("sender thread"))
        .collect();

    // The node got every PUT intact.
    let mut seen = BTreeMap::new();
    while seen.len() < THREADS * PER_THREAD {
        let p = tap_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {} PUTs reached the node",
                    seen.len(),
                    THREADS * PER_THREAD
                )
            });
        let k = p.match_bits as usize;
        assert!(p.data == pattern(size(k), k as u8), "PUT {k} intact");
        assert!(seen.insert(k, ()).is_none(), "PUT {k} delivered twice");
    }
    for k in 0..THREADS * PER_THREAD {
        assert_eq!(
            fake.finalize_of(0x20_0000 + k, 30),
            (STATUS_SUCCESS, size(k) as u32)
        );
    }
    drop(kept);
    // The node's PUTs: received from inside Parse, each intact.
    for _ in 0..FROM_NODE {
        match done_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(LnetEvent::PutDone { result, .. }) => assert_eq!(result, Ok(0)),
            other => panic!("PutDone: {other:?}"),
        }
    }
    let parses: Vec<(u64, usize)> = fake
        .ups
        .lock()
        .unwrap()
        .iter()
        .filter_map(|u| match u {
            Up::Parse {
                hdr:
                    LnetHdr {
                        msg:
                            LnetMsg::Put {
                                ptl_index: RECV_IN_PARSE_PORTAL,
                                match_bits,
                                ..
                            },
                        ..
                    },
                handle,
                ..
            } => Some((*match_bits, *handle)),
            _ => None,
        })
        .collect();
    assert_eq!(parses.len(), FROM_NODE);
    for (k, h) in parses {
        let k = k as usize;
        let cookie = PARSE_RECV_COOKIE + h;
        assert_eq!(
            fake.finalize_of(cookie, 30),
            (STATUS_SUCCESS, size(k + 1000) as u32)
        );
        let buf = fake
            .rx_bufs
            .lock()
            .unwrap()
            .remove(&cookie)
            .expect("buffer");
        assert!(
            buf == pattern(size(k + 1000), k as u8 ^ 0x5a),
            "node PUT {k} intact"
        );
    }

    let counts = fake.finalize_counts();
    assert_eq!(counts.len(), THREADS * PER_THREAD + FROM_NODE);
    assert!(counts.values().all(|&n| n == 1), "exactly once");
    let wrong = fake.wrong_context.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "callbacks in the wrong context: {wrong:?}"
    );

    *fake.recv_in_parse.lock().unwrap() = None;
    nal.dereference();
    assert_eq!(ctl.stop(), Some(Ok(())));
    assert_emulation_clean();
    node.shutdown().check().expect("node shutdown clean");
}

/// The completion routine of the query IRP (the "LNet" side): records the status and keeps the
/// IRP (it was allocated with IoAllocateIrp).
unsafe extern "system" fn query_done(
    _device: *mut tdinal::kernel::DEVICE_OBJECT,
    irp: *mut IRP,
    ctx: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the test's (status, information) slot, alive until the IRP is
    // freed; the IRP is ours again.
    unsafe {
        *(ctx as *mut (NTSTATUS, usize)) = ((*irp).IoStatus.u.Status, (*irp).IoStatus.Information);
    }
    tdinal::kernel::STATUS_MORE_PROCESSING_REQUIRED
}

/// `IOCTL_TDINAL_QUERY_NAL_INTERFACE` the way a kernel LNet sends it: an IRP with one stack
/// location, `IRP_MJ_INTERNAL_DEVICE_CONTROL`, METHOD_NEITHER buffers (`Type3InputBuffer`,
/// `UserBuffer`), a completion routine, then `IoCallDriver`'s step into the driver's dispatch
/// routine. Returns (dispatch status, completion status, Information, the output).
fn query_by_irp(
    dev: &tdinal::driver::entry::EmulatedControlDevice,
    cb: &TDINAL_LNET_CALLBACKS,
    mode: i8,
) -> (NTSTATUS, (NTSTATUS, usize), TDINAL_NAL_INTERFACE) {
    let mut out = TDINAL_NAL_INTERFACE::empty();
    let mut done: (NTSTATUS, usize) = (1, usize::MAX);
    // SAFETY: the emulation's IoAllocateIrp/IoFreeIrp; every pointer in the IRP (callbacks,
    // output, completion slot) outlives the synchronous call below.
    let st = unsafe {
        let irp = tdinal::kernel::IoAllocateIrp(1, 0);
        assert!(!irp.is_null());
        (*irp).RequestorMode = mode;
        (*irp).UserBuffer = (&mut out as *mut TDINAL_NAL_INTERFACE).cast();
        let next = tdinal::kernel::IoGetNextIrpStackLocation(irp);
        (*next).MajorFunction = tdinal::kernel::IRP_MJ_INTERNAL_DEVICE_CONTROL as u8;
        (*next).Parameters.DeviceIoControl.IoControlCode =
            tdinal::driver::nal_if::IOCTL_TDINAL_QUERY_NAL_INTERFACE;
        (*next).Parameters.DeviceIoControl.InputBufferLength = 40;
        (*next).Parameters.DeviceIoControl.OutputBufferLength = 72;
        (*next).Parameters.DeviceIoControl.Type3InputBuffer =
            (cb as *const TDINAL_LNET_CALLBACKS).cast_mut().cast();
        tdinal::kernel::IoSetCompletionRoutine(
            irp,
            query_done,
            (&mut done as *mut (NTSTATUS, usize)).cast(),
            true,
            true,
            true,
        );
        tdinal::kernel::IoSetNextIrpStackLocation(irp);
        let st = dev.internal_device_control(irp);
        tdinal::kernel::IoFreeIrp(irp);
        st
    };
    (st, done, out)
}

/// The query through the driver's real `IRP_MJ_INTERNAL_DEVICE_CONTROL` dispatch routine, as a
/// kernel LNet sends it: refused before the start and from user mode, the interface written to
/// `UserBuffer` (Information = 72) once started, a second binding refused; the entry points it
/// returns work (a send to an address where nothing listens is finalized with an error).
#[test]
fn the_query_irp_binds_as_a_kernel_caller_would() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drv_ip = Ipv4Addr::new(127, 0, 96, 1);
    let nobody = Nid::new(Net::TCP0, u32::from(Ipv4Addr::new(127, 0, 96, 9)));
    let drv_nid = Nid::new(Net::TCP0, u32::from(drv_ip));
    let fake: &'static Fake = Box::leak(Box::default());
    *fake.test_thread.lock().unwrap() = Some(std::thread::current().id());
    let cb = fake.callbacks();
    let dev = tdinal::driver::entry::EmulatedControlDevice::new(Tunables::default());
    let kernel = tdinal::kernel::KERNEL_MODE;

    let (st, done, _) = query_by_irp(&dev, &cb, kernel);
    assert_eq!(
        (st, done),
        (STATUS_DEVICE_NOT_READY, (STATUS_DEVICE_NOT_READY, 0))
    );
    start_driver(&mut dev.control().expect("control lock"), drv_nid);
    let (st, done, _) = query_by_irp(&dev, &cb, tdinal::kernel::USER_MODE);
    assert_eq!(
        (st, done.0),
        (
            tdinal::kernel::STATUS_ACCESS_DENIED,
            tdinal::kernel::STATUS_ACCESS_DENIED
        )
    );
    let (st, done, iface) = query_by_irp(&dev, &cb, kernel);
    assert_eq!((st, done), (STATUS_SUCCESS, (STATUS_SUCCESS, 72)));
    assert!(iface.is_complete());
    let (st, _, _) = query_by_irp(&dev, &cb, kernel);
    assert_eq!(st, STATUS_DEVICE_BUSY);

    let nal = Nal(iface);
    let data = pattern(3000, 1);
    let put = hdr(
        drv_nid,
        nobody,
        3000,
        LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: 9,
            offset: 0,
        },
    );
    nal.send(ProcessId::lustre(nobody), &put, &[kvec(&data)], 3000, 0x1);
    let (st, _) = fake.finalize_of(0x1, 30);
    assert!(st < 0, "a send to nobody fails: {:#x}", st as u32);
    nal.dereference();
    assert_eq!(fake.finalize_counts().get(&0x1), Some(&1));
    let wrong = fake.wrong_context.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "callbacks in the wrong context: {wrong:?}"
    );
    drop(dev);
    assert_emulation_clean();
}
