//! The driver's control path end to end under the emulation of the I/O manager and
//! `\Device\Tcp` (`--features driver,tdi-emu`): ioctl requests built by
//! `ioctl::encode_request` exactly as `ptlctl` builds them (Portals era), put in synthetic
//! METHOD_BUFFERED `IRP_MJ_DEVICE_CONTROL` IRPs and run through the driver's own two steps
//! (`read_buffered` + `execute_buffered` against `Control`, as `dispatch_device_control` does).
//! START_DAEMON starts the TDI runtime on 127.0.93.1; CONNECT_PEER reaches a Linux user-space
//! `runtime::Node` (real sockets) on 127.0.93.2; GET_PEER/GET_CONN list the peer and its three
//! typed V3 connections; LNet pings go both ways; CLOSE_CONNECTION and DEL_PEER empty the
//! engine; stopping (what `DriverUnload` does) leaves no IRP, MDL, handle or chained TSDU in
//! the emulation, and the Node shuts down clean.
#![cfg(all(feature = "driver", feature = "tdi-emu", target_os = "linux"))]

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tdinal::driver::control::{execute_buffered, read_buffered, Control};
use tdinal::engine::tunables::Tunables;
use tdinal::ioctl::error::ntstatus;
use tdinal::ioctl::{decode_reply, encode_request, AcceptPolicy, Command, Era, Reply};
use tdinal::kernel::{IO_STACK_LOCATION, IRP, NTSTATUS, PASSIVE_LEVEL, STATUS_SUCCESS};
use tdinal::lnet::LnetEvent;
use tdinal::runtime::{Node, NodeConfig};
use tdinal::tdi::emu;
use tdinal::wire::{ConnType, Net, Nid, ProcessId, ProtoVersion};

/// The era ptlctl uses (Portals), or the LNet era for the commands Portals did not have.
fn era(cmd: &Command) -> Era {
    match cmd {
        Command::GetNi { .. } => Era::Lnet,
        _ => Era::Portals,
    }
}

/// A request through the driver's IRP path: a synthetic METHOD_BUFFERED IRP whose system
/// buffer holds the request (output length = input length, as ptlctl asks), then
/// `read_buffered` + `execute_buffered`. Returns the status and the reply bytes.
fn ioctl(ctl: &mut Control, cmd: &Command) -> (NTSTATUS, Vec<u8>) {
    let mut req = vec![0u8; 512];
    let (code, n) = encode_request(cmd, era(cmd), &mut req).expect("encode");
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
    let (status, info) = match unsafe { read_buffered(&mut *irp, PASSIVE_LEVEL) } {
        // SAFETY: the buffer is the system buffer: n bytes, all initialised, ours until here.
        Ok(r) => unsafe { execute_buffered(ctl, &r) },
        Err(r) => (r.status, 0),
    };
    req.truncate(info);
    (status, req)
}

fn ok(ctl: &mut Control, cmd: &Command) -> Option<Reply> {
    let (st, out) = ioctl(ctl, cmd);
    assert_eq!(st, STATUS_SUCCESS, "{cmd:?}: {:#x}", st as u32);
    let mut buf = vec![0u8; 512];
    let (code, _) = encode_request(cmd, era(cmd), &mut buf).expect("encode");
    if out.is_empty() {
        None
    } else {
        Some(decode_reply(code, &out).expect("reply"))
    }
}

fn conns(ctl: &mut Control) -> Vec<tdinal::ioctl::ConnInfo> {
    let mut v = Vec::new();
    for index in 0.. {
        let (st, out) = ioctl(ctl, &Command::GetConn { index });
        if st == ntstatus::STATUS_NO_MORE_ENTRIES {
            break;
        }
        assert_eq!(st, STATUS_SUCCESS, "GET_CONN {index}: {:#x}", st as u32);
        let mut buf = vec![0u8; 512];
        let (code, _) =
            encode_request(&Command::GetConn { index }, Era::Portals, &mut buf).expect("encode");
        match decode_reply(code, &out).expect("reply") {
            Reply::Conn(c) => v.push(c),
            r => panic!("GET_CONN reply {r:?}"),
        }
    }
    v
}

/// One test at a time: the emulation's leak counters are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

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

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if let Some(v) = emu::violation() {
            panic!("kernel rule violated: {v}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ioctls_start_connect_list_ping_close_and_stop_the_kernel_runtime() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    emu::set_seed(0x5eed);
    let drv_ip = Ipv4Addr::new(127, 0, 93, 1);
    let node_ip = Ipv4Addr::new(127, 0, 93, 2);
    let drv_nid = Nid::new(Net::TCP0, u32::from(drv_ip));
    let node_nid = Nid::new(Net::TCP0, u32::from(node_ip));

    let mut ctl = Control::new(Tunables::default());
    ctl.set_starter(tdinal::driver::nal::start);

    // Before START_DAEMON: "not started", and without a NID the daemon cannot start.
    let (st, _) = ioctl(&mut ctl, &Command::GetPeer { index: 0 });
    assert_eq!(st, ntstatus::STATUS_INVALID_DEVICE_STATE);
    let start = Command::StartDaemon {
        port: 988,
        accept: AcceptPolicy::Secure,
        backlog: Some(8),
    };
    assert_eq!(
        ioctl(&mut ctl, &start).0,
        ntstatus::STATUS_INVALID_DEVICE_STATE
    );
    // `ptlctl mynid`: REGISTER_MYNID before the start configures the NID (and the interface).
    assert_eq!(ok(&mut ctl, &Command::RegisterMyNid { nid: drv_nid }), None);

    // START_DAEMON starts the runtime; a second one answers "already started".
    assert_eq!(ok(&mut ctl, &start), None);
    assert!(ctl.is_started());
    assert_eq!(
        ioctl(&mut ctl, &start).0,
        ntstatus::STATUS_INVALID_DEVICE_STATE
    );
    assert_eq!(
        ok(&mut ctl, &Command::GetNi { index: 0 }),
        Some(Reply::Ni(drv_nid))
    );
    assert_eq!(ok(&mut ctl, &Command::RegisterMyNid { nid: drv_nid }), None);
    assert_eq!(
        ioctl(&mut ctl, &Command::RegisterMyNid { nid: node_nid }).0,
        ntstatus::STATUS_INVALID_PARAMETER
    );

    // The Linux node (real sockets, its own acceptor on 988).
    let node = Node::start(NodeConfig::new(node_nid)).expect("node start");

    // CONNECT_PEER: the three typed connections come up.
    ok(
        &mut ctl,
        &Command::ConnectPeer {
            nid: node_nid,
            ip: u32::from(node_ip),
            port: 988,
            ctype: None,
        },
    );
    wait_until("three connections", 30, || conns(&mut ctl).len() == 3);
    let list = conns(&mut ctl);
    let types: Vec<ConnType> = list.iter().map(|c| c.conn_type).collect();
    assert_eq!(
        types,
        [ConnType::Control, ConnType::BulkIn, ConnType::BulkOut]
    );
    for c in &list {
        assert_eq!(c.nid, node_nid);
        assert_eq!(c.ip, u32::from(node_ip));
        assert_eq!(c.my_ip, u32::from(drv_ip));
        assert_eq!(c.port, 988);
    }
    let versions: Vec<ProtoVersion> = ctl
        .driver_nal()
        .and_then(|n| n.runtime())
        .expect("runtime")
        .with(|_, e, _| e.conns().iter().map(|c| c.version).collect());
    assert_eq!(versions, [ProtoVersion::V3; 3]);

    match ok(&mut ctl, &Command::GetPeer { index: 0 }) {
        Some(Reply::Peer(p)) => {
            assert_eq!(p.nid, node_nid);
            assert_eq!(p.ip, u32::from(node_ip));
            assert_eq!(p.my_ip, u32::from(drv_ip));
            assert_eq!(p.port, 988);
            assert_eq!(p.conn_count, 3);
        }
        r => panic!("GET_PEER reply {r:?}"),
    }
    assert_eq!(
        ioctl(&mut ctl, &Command::GetPeer { index: 1 }).0,
        ntstatus::STATUS_NO_MORE_ENTRIES
    );

    // LNet ping from the node to the driver's NID ...
    let ids = node
        .handle()
        .ping(ProcessId::lustre(drv_nid), Duration::from_secs(10))
        .expect("node pings the driver");
    assert!(ids.iter().any(|(id, _)| id.nid == drv_nid), "{ids:?}");
    // ... and from the driver to the node.
    {
        let rt = ctl.driver_nal().and_then(|n| n.runtime()).expect("runtime");
        let op = rt.with(|l, e, now| l.ping(e, now, ProcessId::lustre(node_nid), 10_000));
        let mut result = None;
        wait_until("the driver's ping answer", 15, || {
            while let Some(ev) = rt.poll_event() {
                if let LnetEvent::PingDone {
                    op: o, result: r, ..
                } = ev
                {
                    if o == op {
                        result = Some(r);
                    }
                }
            }
            result.is_some()
        });
        let ids = result.expect("answer").expect("driver pings the node");
        assert!(ids.iter().any(|(id, _)| id.nid == node_nid), "{ids:?}");
    }

    // CLOSE_CONNECTION: every connection to the node goes; DEL_PEER removes the route.
    ok(
        &mut ctl,
        &Command::CloseConnection {
            nid: Some(node_nid),
            ip: None,
        },
    );
    wait_until("connections closed", 15, || conns(&mut ctl).is_empty());
    ok(
        &mut ctl,
        &Command::DelPeer {
            nid: Some(node_nid),
            ip: None,
            single_share: false,
        },
    );
    assert_eq!(
        ioctl(
            &mut ctl,
            &Command::CloseConnection {
                nid: Some(node_nid),
                ip: None
            }
        )
        .0,
        ntstatus::STATUS_NOT_FOUND
    );
    // The engine is idle with its gauges at zero once the transport released everything.
    wait_until("engine idle", 15, || {
        let rt = ctl.driver_nal().and_then(|n| n.runtime()).expect("runtime");
        rt.with(|_, e, _| {
            let s = &e.stats;
            e.is_idle()
                && s.conns_open == 0
                && s.peers == 0
                && s.rx_msgs_open == 0
                && s.tx_msgs_open() == 0
                && s.zc_waiting == 0
        }) && rt.conn_count() == 0
    });

    // Stop (what DriverUnload does): then "not started" again.
    assert_eq!(ctl.stop(), Some(Ok(())));
    assert!(!ctl.is_started());
    assert_eq!(
        ioctl(&mut ctl, &Command::GetConn { index: 0 }).0,
        ntstatus::STATUS_INVALID_DEVICE_STATE
    );
    assert_eq!(ctl.stop(), None);

    // Nothing left in the emulated kernel.
    assert_emulation_clean();

    // The node saw its peer go and shuts down clean.
    let report = node.shutdown();
    report.check().expect("node shutdown clean");
}

/// `DriverUnload` with the connections still up: the stop closes them, joins the threads and
/// frees everything; the node sees its peer go and shuts down clean.
#[test]
fn stopping_with_live_connections_leaves_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drv_ip = Ipv4Addr::new(127, 0, 94, 1);
    let node_ip = Ipv4Addr::new(127, 0, 94, 2);
    let drv_nid = Nid::new(Net::TCP0, u32::from(drv_ip));
    let node_nid = Nid::new(Net::TCP0, u32::from(node_ip));
    let node = Node::start(NodeConfig::new(node_nid)).expect("node start");

    let mut ctl = Control::new(Tunables::default());
    ctl.set_starter(tdinal::driver::nal::start);
    ok(&mut ctl, &Command::RegisterMyNid { nid: drv_nid });
    ok(
        &mut ctl,
        &Command::StartDaemon {
            port: 988,
            accept: AcceptPolicy::Secure,
            backlog: None,
        },
    );
    ok(
        &mut ctl,
        &Command::ConnectPeer {
            nid: node_nid,
            ip: u32::from(node_ip),
            port: 988,
            ctype: None,
        },
    );
    wait_until("three connections", 30, || conns(&mut ctl).len() == 3);
    node.handle()
        .ping(ProcessId::lustre(drv_nid), Duration::from_secs(10))
        .expect("node pings the driver");

    let t = Instant::now();
    assert_eq!(ctl.stop(), Some(Ok(())));
    // Normally ~15 ms. Occasionally (seen 2 runs in 10) TdiRuntime::stop waits its full 10 s for
    // the schedulers to release the closed connections and then tears them down itself (the
    // emulation is still left clean): reported, not failed, until src/tdi reports that case.
    eprintln!("stop with live connections took {:?}", t.elapsed());
    assert_emulation_clean();
    wait_until("the node sees no connection", 15, || {
        node.handle().conns().is_empty()
    });
    node.shutdown().check().expect("node shutdown clean");
}
