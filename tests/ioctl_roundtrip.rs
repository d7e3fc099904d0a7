//! Round trips (encode_request → decode, encode_reply → decode_reply) and byte layouts checked
//! against the spec's offsets independently of the encoder.

#[path = "ioctl_common.rs"]
mod common;

use common::*;
use tdinal::ioctl::codes::{self, nal_cmd};
use tdinal::ioctl::{
    decode, decode_reply, decode_request, encode_reply, encode_request, encode_request_on,
    AcceptPolicy, Command, ConnInfo, Era, IoctlError, PeerInfo, Reply, TCP0,
};
use tdinal::wire::{ConnType, Nid};

#[test]
fn every_command_round_trips_in_every_era_it_exists_in() {
    let mut seen_portals = 0;
    let mut seen_lnet = 0;
    for cmd in sample_commands() {
        for era in ERAS {
            if !encodable(&cmd, era) {
                continue;
            }
            let (code, buf) = encode(&cmd, era);
            let req = decode_request(code, &buf).unwrap();
            assert_eq!(req.command, cmd, "{era:?}");
            assert_eq!(req.era, era);
            match era {
                Era::Portals => {
                    seen_portals += 1;
                    assert_eq!(code, codes::IOCTL_PORTAL_NAL_CMD);
                    assert_eq!(buf.len(), 224);
                    assert_eq!(req.net, None);
                }
                Era::Lnet => {
                    seen_lnet += 1;
                    assert_eq!(buf.len(), 128);
                    let nr = cmd.libcfs_nr().unwrap();
                    assert_eq!((code >> 2) & 0xfff, 0x800 + nr);
                    let want_net = if nr == codes::IOC_LIBCFS_GET_NI {
                        None
                    } else {
                        Some(TCP0)
                    };
                    assert_eq!(req.net, want_net);
                }
            }
        }
    }
    assert!(
        seen_portals >= 28 && seen_lnet >= 20,
        "{seen_portals} {seen_lnet}"
    );
}

#[test]
fn commands_exist_in_the_expected_eras() {
    for cmd in sample_commands() {
        let (p, l) = (cmd.exists_in(Era::Portals), cmd.exists_in(Era::Lnet));
        match cmd {
            Command::StartDaemon { .. } | Command::ConnectPeer { .. } => assert!(p && !l),
            Command::GetNi { .. } => assert!(!p && l),
            _ => assert!(p && l, "{cmd:?}"),
        }
        for era in ERAS {
            if !cmd.exists_in(era) {
                let mut buf = [0u8; 512];
                assert_eq!(
                    encode_request(&cmd, era, &mut buf),
                    Err(IoctlError::NotInEra {
                        command: cmd.name(),
                        era
                    })
                );
            }
        }
    }
}

#[test]
fn lnet_del_peer_has_no_single_share() {
    let cmd = Command::DelPeer {
        nid: None,
        ip: None,
        single_share: true,
    };
    let mut buf = [0u8; 512];
    assert!(matches!(
        encode_request(&cmd, Era::Lnet, &mut buf),
        Err(IoctlError::InvalidField {
            field: "single_share",
            ..
        })
    ));
}

#[test]
fn lnet_requests_on_another_net() {
    let cmd = Command::AddPeer {
        nid: NID_TCP1,
        ip: 0x0A00_0005,
        port: 988,
    };
    let mut buf = [0u8; 512];
    let (code, len) = encode_request_on(&cmd, Era::Lnet, TCP1, &mut buf).unwrap();
    let req = decode_request(code, &buf[..len]).unwrap();
    assert_eq!(req.command, cmd);
    assert_eq!(req.net, Some(TCP1));
    assert_eq!(rd32(&buf, 32), 0x0002_0001);
    // The same NID addressed to tcp0 is refused: the NID is not on the request's network.
    assert!(matches!(
        encode_request(&cmd, Era::Lnet, &mut buf),
        Err(IoctlError::BadNid {
            field: "ioc_nid",
            ..
        })
    ));
}

#[test]
fn sentinel_options_decode_as_none() {
    let cases = [
        (
            Command::DelPeer {
                nid: Some(Nid::ANY),
                ip: Some(0),
                single_share: false,
            },
            Command::DelPeer {
                nid: None,
                ip: None,
                single_share: false,
            },
        ),
        (
            Command::StartDaemon {
                port: 988,
                accept: AcceptPolicy::All,
                backlog: Some(0),
            },
            Command::StartDaemon {
                port: 988,
                accept: AcceptPolicy::All,
                backlog: None,
            },
        ),
        (
            Command::ConnectPeer {
                nid: NID_A,
                ip: IP_A,
                port: 988,
                ctype: Some(ConnType::None),
            },
            Command::ConnectPeer {
                nid: NID_A,
                ip: IP_A,
                port: 988,
                ctype: None,
            },
        ),
    ];
    for (given, canonical) in cases {
        let (code, buf) = encode(&given, Era::Portals);
        assert_eq!(decode(code, &buf).unwrap(), canonical);
    }
}

// ---- Byte layouts against the spec (§7.1 / §7.2), built by hand ----

const P: usize = 136; // portals_cfg starts here

#[test]
fn portals_add_peer_by_hand() {
    let mut b = vec![0u8; 224];
    wr32(&mut b, 0, 224); // ioc_len
    wr32(&mut b, 4, 0x0001_0008); // ioc_version
    wr32(&mut b, 104, 88); // ioc_plen1
    wr64(&mut b, 112, 0x7ffd_1234_5678); // ioc_pbuf1: a user pointer, ignored
    wr32(&mut b, P, 0xecf6_0001); // pcfg_version
    wr32(&mut b, P + 4, 106); // pcfg_command = ADD_PEER
    wr32(&mut b, P + 8, 2); // pcfg_nal = SOCKNAL
    wr64(&mut b, P + 24, NID_A.0); // pcfg_nid
    wr32(&mut b, P + 48, IP_A); // pcfg_id
    wr32(&mut b, P + 52, 988); // pcfg_misc
    let want = Command::AddPeer {
        nid: NID_A,
        ip: IP_A,
        port: 988,
    };
    assert_eq!(decode(codes::IOCTL_PORTAL_NAL_CMD, &b), Ok(want));

    // The encoder writes the same fields, plus the mirrors Lustre's tools write.
    let (_, e) = encode(&want, Era::Portals);
    wr64(&mut b, 112, 0);
    wr32(&mut b, 36, 2); // ioc_nal
    wr32(&mut b, 40, 106); // ioc_nal_cmd
    wr64(&mut b, 8, NID_A.0); // ioc_nid
    assert_eq!(e, b);
}

#[test]
fn portals_start_daemon_and_connect_by_hand() {
    let mut b = vec![0u8; 224];
    wr32(&mut b, 0, 224);
    wr32(&mut b, 4, 0x0001_0008);
    wr32(&mut b, 104, 88);
    wr32(&mut b, P, 0xecf6_0001);
    wr32(&mut b, P + 4, 116);
    wr32(&mut b, P + 8, 2);
    wr32(&mut b, P + 52, 988); // misc = port
    wr32(&mut b, P + 12, 1); // flags = accept all
    wr32(&mut b, P + 60, 64); // count = backlog
    assert_eq!(
        decode(codes::IOCTL_PORTAL_NAL_CMD, &b),
        Ok(Command::StartDaemon {
            port: 988,
            accept: AcceptPolicy::All,
            backlog: Some(64)
        })
    );
    wr32(&mut b, P + 4, 117);
    wr32(&mut b, P + 60, 0);
    wr64(&mut b, P + 24, NID_B.0);
    wr32(&mut b, P + 48, IP_B);
    wr32(&mut b, P + 12, 3); // flags = BULK_OUT
    assert_eq!(
        decode(codes::IOCTL_PORTAL_NAL_CMD, &b),
        Ok(Command::ConnectPeer {
            nid: NID_B,
            ip: IP_B,
            port: 988,
            ctype: Some(ConnType::BulkOut)
        })
    );
}

#[test]
fn lnet_add_peer_by_hand() {
    let mut b = vec![0u8; 128];
    wr32(&mut b, 0, 128);
    wr32(&mut b, 4, 0x0001_000a);
    wr64(&mut b, 8, NID_A.0);
    wr32(&mut b, 32, 0x0002_0000); // ioc_net = tcp
    wr32(&mut b, 36, IP_A); // ioc_u32[0]
    wr32(&mut b, 40, 988); // ioc_u32[1]
    wr64(&mut b, 72, 0xdead_beef); // ioc_inlbuf1 pointer: ignored
    let want = Command::AddPeer {
        nid: NID_A,
        ip: IP_A,
        port: 988,
    };
    assert_eq!(decode(codes::IOCTL_LIBCFS_ADD_PEER, &b), Ok(want));
    let (code, e) = encode(&want, Era::Lnet);
    assert_eq!(code, codes::IOCTL_LIBCFS_ADD_PEER);
    wr64(&mut b, 72, 0);
    assert_eq!(e, b);
}

#[test]
fn lnet_get_ni_by_hand() {
    let mut b = vec![0u8; 128];
    wr32(&mut b, 0, 128);
    wr32(&mut b, 4, 0x0001_000a);
    wr32(&mut b, 28, 4); // ioc_count
    assert_eq!(
        decode(codes::IOCTL_LIBCFS_GET_NI, &b),
        Ok(Command::GetNi { index: 4 })
    );
}

fn sample_peer() -> PeerInfo {
    PeerInfo {
        nid: NID_B,
        pid: 12345,
        my_ip: IP_A,
        ip: IP_B,
        port: 988,
        conn_count: 3,
        share_count: 2,
    }
}

fn sample_conn() -> ConnInfo {
    ConnInfo {
        nid: NID_B,
        pid: 12345,
        my_ip: IP_A,
        ip: IP_B,
        port: 1021,
        conn_type: ConnType::BulkOut,
        scheduler: 5,
        tx_buf: 65536,
        rx_buf: 131072,
        nagle: true,
    }
}

fn reply_bytes(cmd: &Command, era: Era, reply: &Reply) -> (u32, Vec<u8>) {
    let (code, req) = encode(cmd, era);
    let mut out = vec![0xEEu8; 512];
    let n = encode_reply(code, &req, reply, &mut out).unwrap();
    assert_eq!(n, req.len());
    out.truncate(n);
    (code, out)
}

#[test]
fn get_peer_reply_offsets() {
    let p = sample_peer();
    let (_, b) = reply_bytes(
        &Command::GetPeer { index: 1 },
        Era::Portals,
        &Reply::Peer(p),
    );
    assert_eq!(rd64(&b, P + 24), NID_B.0); // nid
    assert_eq!(rd32(&b, P + 64), IP_A); // size = my IP
    assert_eq!(rd32(&b, P + 48), IP_B); // id = peer IP
    assert_eq!(rd32(&b, P + 52), 988); // misc = port
    assert_eq!(rd32(&b, P + 60), 3); // count = conn count
    assert_eq!(rd32(&b, P + 68), 2); // wait = share count
    assert_eq!(rd32(&b, P + 4), nal_cmd::GET_PEER);

    let (_, b) = reply_bytes(&Command::GetPeer { index: 1 }, Era::Lnet, &Reply::Peer(p));
    assert_eq!(rd64(&b, 8), NID_B.0);
    assert_eq!(rd32(&b, 28), 2); // count = share count
    assert_eq!(rd32(&b, 36), IP_B); // u32[0]
    assert_eq!(rd32(&b, 40), 988); // u32[1]
    assert_eq!(rd32(&b, 44), IP_A); // u32[2] = my IP
    assert_eq!(rd32(&b, 48), 3); // u32[3] = conn count
    assert_eq!(rd32(&b, 52), 12345); // u32[4] = pid
    assert_eq!(rd32(&b, 32), 0x0002_0000); // ioc_net kept
}

#[test]
fn get_conn_reply_offsets() {
    let c = sample_conn();
    let (_, b) = reply_bytes(
        &Command::GetConn { index: 0 },
        Era::Portals,
        &Reply::Conn(c),
    );
    assert_eq!(rd64(&b, P + 24), NID_B.0);
    assert_eq!(rd32(&b, P + 48), IP_B); // id = peer IP
    assert_eq!(rd32(&b, P + 52), 1021); // misc = peer port
    assert_eq!(rd32(&b, P + 56), IP_A); // fd = my IP
    assert_eq!(rd32(&b, P + 12), 3); // flags = type (BULK_OUT)
    assert_eq!(rd32(&b, P + 16), 5); // gw_nal = scheduler
    assert_eq!(rd32(&b, P + 60), 65536); // count = tx buf
    assert_eq!(rd32(&b, P + 64), 131072); // size = rx buf
    assert_eq!(rd32(&b, P + 68), 1); // wait = nagle

    let (_, b) = reply_bytes(&Command::GetConn { index: 0 }, Era::Lnet, &Reply::Conn(c));
    assert_eq!(rd32(&b, 28), 65536); // count = tx buf
    assert_eq!(rd64(&b, 8), NID_B.0);
    assert_eq!(rd32(&b, 24), 1); // flags = nagle
    assert_eq!(rd32(&b, 36), IP_B);
    assert_eq!(rd32(&b, 40), 1021);
    assert_eq!(rd32(&b, 44), IP_A);
    assert_eq!(rd32(&b, 48), 3);
    assert_eq!(rd32(&b, 52), 5);
    assert_eq!(rd32(&b, 56), 131072);
    assert_eq!(rd32(&b, 60), 12345);
}

#[test]
fn get_interface_and_ni_reply_offsets() {
    let i = iface(0);
    let (_, b) = reply_bytes(
        &Command::GetInterface { index: 0 },
        Era::Portals,
        &Reply::Interface(i),
    );
    assert_eq!(rd32(&b, P + 48), i.ip);
    assert_eq!(rd32(&b, P + 52), i.netmask);
    assert_eq!(rd32(&b, P + 56), i.npeers);
    assert_eq!(rd32(&b, P + 60), i.nroutes);
    let (_, b) = reply_bytes(
        &Command::GetInterface { index: 0 },
        Era::Lnet,
        &Reply::Interface(i),
    );
    assert_eq!(
        [rd32(&b, 36), rd32(&b, 40), rd32(&b, 44), rd32(&b, 48)],
        [i.ip, i.netmask, i.npeers, i.nroutes]
    );
    let (_, b) = reply_bytes(&Command::GetNi { index: 0 }, Era::Lnet, &Reply::Ni(NID_A));
    assert_eq!(rd64(&b, 8), NID_A.0);
}

#[test]
fn replies_round_trip() {
    let p = sample_peer();
    let c = sample_conn();
    let cases: Vec<(Command, Reply)> = vec![
        (Command::GetPeer { index: 0 }, Reply::Peer(p)),
        (Command::GetConn { index: 0 }, Reply::Conn(c)),
        (
            Command::GetConn { index: 0 },
            Reply::Conn(ConnInfo {
                conn_type: ConnType::Any,
                nagle: false,
                pid: 12345,
                ..c
            }),
        ),
        (
            Command::GetInterface { index: 0 },
            Reply::Interface(iface(1)),
        ),
        (Command::GetNi { index: 0 }, Reply::Ni(NID_A)),
    ];
    for (cmd, reply) in cases {
        for era in ERAS {
            if !cmd.exists_in(era) {
                continue;
            }
            let (code, b) = reply_bytes(&cmd, era, &reply);
            assert_eq!(decode_reply(code, &b).unwrap(), reply, "{cmd:?} {era:?}");
        }
    }
    // The LNet era carries the peer's PID; the Portals era has none and reports 12345.
    let user = PeerInfo {
        pid: 0x8000_0400,
        ..p
    };
    let (code, b) = reply_bytes(
        &Command::GetPeer { index: 0 },
        Era::Lnet,
        &Reply::Peer(user),
    );
    assert_eq!(decode_reply(code, &b).unwrap(), Reply::Peer(user));
    let (code, b) = reply_bytes(
        &Command::GetPeer { index: 0 },
        Era::Portals,
        &Reply::Peer(user),
    );
    assert_eq!(decode_reply(code, &b).unwrap(), Reply::Peer(p));
}

#[test]
fn commands_without_output_write_nothing() {
    for (cmd, era) in sample_requests() {
        if cmd.reply_kind() != tdinal::ioctl::ReplyKind::None {
            continue;
        }
        let (code, req) = encode(&cmd, era);
        let mut out = [0u8; 0];
        assert_eq!(encode_reply(code, &req, &Reply::None, &mut out), Ok(0));
        // decode_reply of the echoed request says "no output".
        assert_eq!(decode_reply(code, &req), Ok(Reply::None));
    }
}
