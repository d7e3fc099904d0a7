//! The dispatcher against a recording mock NAL.

#[path = "ioctl_common.rs"]
mod common;

use common::*;
use tdinal::ioctl::error::{errno, ntstatus};
use tdinal::ioctl::{
    decode_reply, dispatch, dispatch_in_place, encode_request_on, execute, AcceptPolicy, Command,
    ConnInfo, CtlError, Era, IoctlError, NalControl, PeerInfo, Reply, ReplyKind,
};
use tdinal::wire::{ConnType, Net, Nid};

#[test]
fn every_command_reaches_the_nal_with_its_arguments() {
    for (cmd, era) in sample_requests() {
        let mut nal = MockNal::default();
        let (code, req) = encode(&cmd, era);
        let mut out = vec![0u8; 512];
        let r = dispatch(&mut nal, code, &req, &mut out);
        assert_eq!(nal.calls(), vec![expected_call(&cmd)], "{cmd:?} {era:?}");
        match cmd.reply_kind() {
            ReplyKind::None => assert_eq!(r, Ok(0)),
            _ => {
                let index = match cmd {
                    Command::GetPeer { index }
                    | Command::GetConn { index }
                    | Command::GetInterface { index }
                    | Command::GetNi { index } => index,
                    _ => unreachable!(),
                };
                let n = match r {
                    Ok(n) => n,
                    Err(IoctlError::NoMoreEntries) => {
                        assert!(index >= 1, "{cmd:?}");
                        continue;
                    }
                    Err(e) => panic!("{cmd:?}: {e}"),
                };
                assert_eq!(n, req.len());
                let got = decode_reply(code, &out[..n]).unwrap();
                let want = match cmd {
                    Command::GetPeer { index } => Reply::Peer(peer(index)),
                    Command::GetConn { index } => Reply::Conn(conn(index)),
                    Command::GetInterface { index } => Reply::Interface(iface(index)),
                    Command::GetNi { .. } => Reply::Ni(NID_A),
                    _ => unreachable!(),
                };
                assert_eq!(got, want, "{cmd:?} {era:?}");
            }
        }
    }
}

#[test]
fn start_daemon_default_backlog_is_127() {
    let mut nal = MockNal::default();
    let cmd = Command::StartDaemon {
        port: 988,
        accept: AcceptPolicy::Secure,
        backlog: None,
    };
    let (code, req) = encode(&cmd, Era::Portals);
    assert_eq!(dispatch(&mut nal, code, &req, &mut []), Ok(0));
    assert_eq!(
        nal.calls(),
        vec![Call::StartDaemon(988, AcceptPolicy::Secure, 127)]
    );
}

/// lctl's listing loop: GET_PEER with index 0, 1, … until ENOENT / STATUS_NO_MORE_ENTRIES.
#[test]
fn listing_stops_at_no_more_entries() {
    for era in ERAS {
        let mut nal = MockNal {
            npeers: 4,
            nconns: 2,
            ..MockNal::default()
        };
        let mut peers: Vec<PeerInfo> = Vec::new();
        let mut conns: Vec<ConnInfo> = Vec::new();
        for index in 0.. {
            let (code, req) = encode(&Command::GetPeer { index }, era);
            let mut out = vec![0u8; req.len()];
            match dispatch(&mut nal, code, &req, &mut out) {
                Ok(n) => match decode_reply(code, &out[..n]).unwrap() {
                    Reply::Peer(p) => peers.push(p),
                    other => panic!("{other:?}"),
                },
                Err(e) => {
                    assert_eq!(e, IoctlError::NoMoreEntries);
                    assert_eq!(e.to_ntstatus(), ntstatus::STATUS_NO_MORE_ENTRIES);
                    assert_eq!(e.to_errno(), errno::ENOENT);
                    break;
                }
            }
        }
        for index in 0.. {
            let (code, req) = encode(&Command::GetConn { index }, era);
            let mut out = vec![0u8; req.len()];
            match dispatch(&mut nal, code, &req, &mut out) {
                Ok(n) => match decode_reply(code, &out[..n]).unwrap() {
                    Reply::Conn(c) => conns.push(c),
                    other => panic!("{other:?}"),
                },
                Err(e) => {
                    assert_eq!(e, IoctlError::NoMoreEntries);
                    break;
                }
            }
        }
        assert_eq!(peers, (0..4).map(peer).collect::<Vec<_>>(), "{era:?}");
        assert_eq!(conns, (0..2).map(conn).collect::<Vec<_>>(), "{era:?}");
        assert_eq!(nal.calls().len(), 5 + 3);
    }
}

#[test]
fn output_too_small_is_refused_before_the_nal_is_asked() {
    for era in ERAS {
        for cmd in [
            Command::GetPeer { index: 0 },
            Command::GetConn { index: 0 },
            Command::GetInterface { index: 0 },
        ] {
            let (code, req) = encode(&cmd, era);
            for n in [0, 1, req.len() - 1] {
                let mut nal = MockNal::default();
                let mut out = vec![0u8; n];
                let e = dispatch(&mut nal, code, &req, &mut out).unwrap_err();
                assert_eq!(
                    e,
                    IoctlError::OutputTooSmall {
                        need: req.len(),
                        have: n
                    }
                );
                assert_eq!(e.to_ntstatus(), ntstatus::STATUS_BUFFER_TOO_SMALL);
                assert!(nal.calls().is_empty());
            }
        }
    }
}

#[test]
fn malformed_requests_never_reach_the_nal() {
    for (cmd, era) in sample_requests() {
        let (code, mut req) = encode(&cmd, era);
        req[4] ^= 0xff; // version
        let mut nal = MockNal::default();
        let mut out = vec![0u8; 512];
        assert!(matches!(
            dispatch(&mut nal, code, &req, &mut out),
            Err(IoctlError::BadVersion { .. })
        ));
        assert!(nal.calls().is_empty());
    }
}

#[test]
fn requests_for_a_net_the_nal_does_not_serve() {
    let mut nal = MockNal::default();
    let mut buf = [0u8; 512];
    let (code, n) =
        encode_request_on(&Command::GetPeer { index: 0 }, Era::Lnet, TCP1, &mut buf).unwrap();
    let mut out = [0u8; 512];
    let e = dispatch(&mut nal, code, &buf[..n], &mut out).unwrap_err();
    assert_eq!(e, IoctlError::NoSuchNet { net: TCP1.0 });
    assert_eq!(e.to_errno(), errno::EINVAL);
    assert!(e.to_string().contains("tcp1"), "{e}");
    assert!(nal.calls().is_empty());
}

#[test]
fn nal_errors_are_mapped() {
    let cases = [
        (
            CtlError::AddressInUse,
            ntstatus::STATUS_ADDRESS_ALREADY_EXISTS,
            errno::EADDRINUSE,
        ),
        (
            CtlError::InvalidState,
            ntstatus::STATUS_INVALID_DEVICE_STATE,
            errno::EBUSY,
        ),
        (
            CtlError::NotFound,
            ntstatus::STATUS_NOT_FOUND,
            errno::ENOENT,
        ),
        (
            CtlError::InvalidArgument,
            ntstatus::STATUS_INVALID_PARAMETER,
            errno::EINVAL,
        ),
    ];
    for (fail, st, en) in cases {
        let mut nal = MockNal {
            fail: Some(fail),
            ..MockNal::default()
        };
        let cmd = Command::StartDaemon {
            port: 988,
            accept: AcceptPolicy::All,
            backlog: Some(16),
        };
        let (code, req) = encode(&cmd, Era::Portals);
        let e = dispatch(&mut nal, code, &req, &mut []).unwrap_err();
        assert_eq!(e, IoctlError::Ctl(fail));
        assert_eq!((e.to_ntstatus(), e.to_errno()), (st, en));
        assert_eq!(
            nal.calls(),
            vec![Call::StartDaemon(988, AcceptPolicy::All, 16)]
        );
    }
}

#[test]
fn in_place_dispatch_matches_dispatch() {
    for (cmd, era) in sample_requests() {
        let (code, req) = encode(&cmd, era);
        for out_len in [0, req.len(), 512] {
            let mut a = MockNal::default();
            let mut out = vec![0u8; out_len];
            let ra = dispatch(&mut a, code, &req, &mut out);

            // The system buffer: max(in, out) bytes, request at the start.
            let mut b = MockNal::default();
            let mut sys = vec![0u8; req.len().max(out_len)];
            sys[..req.len()].copy_from_slice(&req);
            let rb = dispatch_in_place(&mut b, code, &mut sys, req.len(), out_len);

            assert_eq!(ra, rb, "{cmd:?} {era:?} out {out_len}");
            assert_eq!(a.calls(), b.calls());
            if let Ok(n) = ra {
                assert_eq!(out[..n], sys[..n]);
            }
        }
    }
    // input_len larger than the buffer is a caller bug, reported, not a panic.
    let mut nal = MockNal::default();
    let mut sys = [0u8; 16];
    assert!(dispatch_in_place(
        &mut nal,
        tdinal::ioctl::IOCTL_PORTAL_NAL_CMD,
        &mut sys,
        224,
        224
    )
    .is_err());
}

/// A NAL without interface support: the trait's defaults answer NOT_SUPPORTED.
struct Minimal;

impl NalControl for Minimal {
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
        Ok(())
    }
    fn add_peer(&mut self, _: Nid, _: u32, _: u16) -> Result<(), CtlError> {
        Ok(())
    }
    fn del_peer(&mut self, _: Option<Nid>, _: Option<u32>, _: bool) -> Result<(), CtlError> {
        Ok(())
    }
    fn get_peer(&self, _: u32) -> Result<PeerInfo, CtlError> {
        Err(CtlError::NoMoreEntries)
    }
    fn get_conn(&self, _: u32) -> Result<ConnInfo, CtlError> {
        Err(CtlError::NoMoreEntries)
    }
    fn close_connection(&mut self, _: Option<Nid>, _: Option<u32>) -> Result<(), CtlError> {
        Ok(())
    }
    fn register_my_nid(&mut self, _: Nid) -> Result<(), CtlError> {
        Err(CtlError::InvalidArgument)
    }
    fn push_connection(&mut self, _: Option<Nid>) -> Result<(), CtlError> {
        Ok(())
    }
    fn get_ni(&self, _: u32) -> Result<Nid, CtlError> {
        Err(CtlError::NoMoreEntries)
    }
}

#[test]
fn default_interface_methods_are_not_supported() {
    let mut m = Minimal;
    for cmd in [
        Command::AddInterface {
            ip: IP_A,
            netmask: 0xFFFF_FF00,
        },
        Command::DelInterface { ip: None },
        Command::GetInterface { index: 0 },
    ] {
        let e = execute(&mut m, &cmd).unwrap_err();
        assert_eq!(e, IoctlError::Ctl(CtlError::NotSupported));
        assert_eq!(e.to_ntstatus(), ntstatus::STATUS_NOT_SUPPORTED);
    }
    // Works through a trait object too (the driver may hold a `dyn NalControl`).
    let dynm: &mut dyn NalControl = &mut m;
    let (code, req) = encode(&Command::RegisterMyNid { nid: NID_A }, Era::Lnet);
    assert_eq!(
        dispatch(dynm, code, &req, &mut []),
        Err(IoctlError::Ctl(CtlError::InvalidArgument))
    );
}
