//! Malformed requests: each must get the specific error (and status) that says what was wrong.

#[path = "ioctl_common.rs"]
mod common;

use common::*;
use tdinal::ioctl::codes::{self, ctl_code, nal_cmd, FILE_DEVICE_TDINAL, IOCTL_PORTAL_NAL_CMD};
use tdinal::ioctl::error::{errno, ntstatus};
use tdinal::ioctl::libcfs::{self, LibcfsIoctlData};
use tdinal::ioctl::{
    decode, encode_reply, AcceptPolicy, Command, CtlError, Era, IoctlError, Reply, CODES,
    LIBCFS_IOCTL_VERSION, LNET_IOCTL_VERSION2, PORTALS_CFG_VERSION, PORTAL_IOCTL_VERSION,
};
use tdinal::wire::Nid;

const P: usize = 136;

fn portals(cmd: &Command) -> Vec<u8> {
    encode(cmd, Era::Portals).1
}

fn lnet(cmd: &Command) -> (u32, Vec<u8>) {
    encode(cmd, Era::Lnet)
}

fn add_peer() -> Command {
    Command::AddPeer {
        nid: NID_A,
        ip: IP_A,
        port: 988,
    }
}

// ---- lengths ----

#[test]
fn every_short_length_is_short_input() {
    for (cmd, era) in sample_requests() {
        let (code, buf) = encode(&cmd, era);
        for n in 0..buf.len() {
            let e = decode(code, &buf[..n]).unwrap_err();
            assert_eq!(
                e,
                IoctlError::ShortInput {
                    need: buf.len(),
                    have: n
                },
                "{cmd:?} {era:?} len {n}"
            );
            assert_eq!(e.to_ntstatus(), ntstatus::STATUS_INVALID_PARAMETER);
            assert_eq!(e.to_errno(), errno::EINVAL);
        }
    }
}

#[test]
fn ioc_len_must_equal_the_buffer_length() {
    for (cmd, era) in sample_requests() {
        let (code, buf) = encode(&cmd, era);
        let len = buf.len() as u32;
        for bad in [0, 8, len - 1, len + 1, len + 8, u32::MAX] {
            let mut b = buf.clone();
            wr32(&mut b, 0, bad);
            assert_eq!(
                decode(code, &b),
                Err(IoctlError::LengthMismatch {
                    ioc_len: bad,
                    buffer: buf.len()
                }),
                "{cmd:?} {era:?}"
            );
        }
        // A longer buffer than ioc_len says is refused too (no trailing garbage).
        let mut b = buf.clone();
        b.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode(code, &b),
            Err(IoctlError::LengthMismatch {
                ioc_len: len,
                buffer: b.len()
            })
        );
    }
}

#[test]
fn portals_request_is_exactly_224_bytes() {
    let mut b = portals(&add_peer());
    b.extend_from_slice(&[0; 8]);
    wr32(&mut b, 0, 232);
    assert!(matches!(
        decode(IOCTL_PORTAL_NAL_CMD, &b),
        Err(IoctlError::InvalidField {
            field: "ioc_len",
            value: 232,
            ..
        })
    ));
}

#[test]
fn portals_cfg_behind_a_pointer_is_refused_with_the_inline_rule() {
    // What Linux ptlctl sends: 136 bytes, ioc_plen1 = 88, ioc_pbuf1 = a user address.
    let full = portals(&add_peer());
    let mut b = full[..136].to_vec();
    wr32(&mut b, 0, 136);
    wr64(&mut b, 112, 0x7ffc_0000_1000);
    let e = decode(IOCTL_PORTAL_NAL_CMD, &b).unwrap_err();
    assert!(matches!(
        e,
        IoctlError::InvalidField {
            field: "ioc_len",
            value: 136,
            ..
        }
    ));
    assert!(e.to_string().contains("inline"), "{e}");
    assert_eq!(e.to_ntstatus(), ntstatus::STATUS_INVALID_PARAMETER);
}

#[test]
fn lnet_packed_length_rules() {
    let (code, buf) = lnet(&add_peer());
    // inllen1/2 = u32::MAX: the packed length is computed without overflow and refused.
    for (o, name) in [(64, "inllen1"), (80, "inllen2")] {
        let mut b = buf.clone();
        wr32(&mut b, o, u32::MAX);
        let e = decode(code, &b).unwrap_err();
        let IoctlError::PackedLengthMismatch {
            packed, ioc_len, ..
        } = e
        else {
            panic!("{name}: {e:?}")
        };
        assert_eq!(packed, 128 + 0x1_0000_0000);
        assert_eq!(ioc_len, 128);
        assert_eq!(e.to_ntstatus(), ntstatus::STATUS_INVALID_PARAMETER);
    }
    // Both at u32::MAX.
    let mut b = buf.clone();
    wr32(&mut b, 64, u32::MAX);
    wr32(&mut b, 80, u32::MAX);
    assert!(matches!(
        decode(code, &b),
        Err(IoctlError::PackedLengthMismatch {
            packed: 0x2_0000_0080,
            ..
        })
    ));
    // An inline buffer past the end of the request.
    let mut b = buf.clone();
    wr32(&mut b, 64, 1);
    assert!(matches!(
        decode(code, &b),
        Err(IoctlError::PackedLengthMismatch {
            packed: 136,
            ioc_len: 128,
            ..
        })
    ));
    // ioc_len covering the inline data but not its 8-byte padding.
    let mut b = buf.clone();
    b.extend_from_slice(&[0; 5]);
    wr32(&mut b, 0, 133);
    wr32(&mut b, 64, 5);
    assert!(matches!(
        decode(code, &b),
        Err(IoctlError::PackedLengthMismatch {
            packed: 136,
            ioc_len: 133,
            ..
        })
    ));
    // Trailing bytes beyond the packed length.
    let mut b = buf.clone();
    b.extend_from_slice(&[0; 8]);
    wr32(&mut b, 0, 136);
    assert!(matches!(
        decode(code, &b),
        Err(IoctlError::PackedLengthMismatch {
            packed: 128,
            ioc_len: 136,
            ..
        })
    ));
}

#[test]
fn lnet_well_formed_inline_buffers_are_refused_by_commands_that_take_none() {
    let mut d = LibcfsIoctlData::new();
    d.ioc_net = 0x0002_0000;
    d.ioc_count = 1;
    let mut b = vec![0u8; 512];
    let n = libcfs::pack(&d, b"tcp", b"", &mut b).unwrap();
    b.truncate(n);
    assert_eq!(n, 136);
    assert!(libcfs::parse_request(&b).is_ok(), "the envelope is fine");
    assert_eq!(
        decode(codes::IOCTL_LIBCFS_GET_PEER, &b),
        Err(IoctlError::ReservedNotZero {
            field: "ioc_inllen1",
            value: 3,
            command: "IOC_LIBCFS_GET_PEER"
        })
    );
}

#[test]
fn lnet_requests_longer_than_the_limit() {
    let n = tdinal::ioctl::MAX_REQUEST_LEN + 8;
    let mut b = vec![0u8; n];
    let (code, buf) = lnet(&add_peer());
    b[..128].copy_from_slice(&buf);
    wr32(&mut b, 0, n as u32);
    wr32(&mut b, 64, (n - 128) as u32);
    assert_eq!(
        decode(code, &b),
        Err(IoctlError::TooLong {
            len: n,
            max: tdinal::ioctl::MAX_REQUEST_LEN
        })
    );
    let mut out = vec![0u8; n];
    assert!(matches!(
        libcfs::pack(&LibcfsIoctlData::new(), &vec![1u8; n], b"", &mut out),
        Err(IoctlError::TooLong { .. })
    ));
}

#[test]
fn out_of_band_buffers_are_refused() {
    for (cmd, era) in sample_requests() {
        let (code, buf) = encode(&cmd, era);
        let offs: &[usize] = match era {
            Era::Portals => &[120], // ioc_plen2 (ioc_plen1 must be 88)
            Era::Lnet => &[96, 112],
        };
        for &o in offs {
            let mut b = buf.clone();
            wr32(&mut b, o, 16);
            assert!(decode(code, &b).is_err(), "{cmd:?} {era:?} @{o}");
        }
    }
    let mut b = portals(&add_peer());
    for bad in [0, 87, 89, 224] {
        wr32(&mut b, 104, bad);
        assert!(matches!(
            decode(IOCTL_PORTAL_NAL_CMD, &b),
            Err(IoctlError::InvalidField {
                field: "ioc_plen1",
                ..
            })
        ));
    }
}

// ---- versions, NAL, net ----

#[test]
fn wrong_versions() {
    for (cmd, era) in sample_requests() {
        let (code, buf) = encode(&cmd, era);
        let (field, good, bads): (&str, u32, Vec<u32>) = match era {
            Era::Portals => (
                "ioc_version",
                PORTAL_IOCTL_VERSION,
                vec![0, 0x0001_0007, 0x0001_0009, LIBCFS_IOCTL_VERSION, u32::MAX],
            ),
            Era::Lnet => (
                "ioc_version",
                LIBCFS_IOCTL_VERSION,
                vec![0, PORTAL_IOCTL_VERSION, LNET_IOCTL_VERSION2, 0x0a00_0100],
            ),
        };
        for bad in bads {
            let mut b = buf.clone();
            wr32(&mut b, 4, bad);
            let e = decode(code, &b).unwrap_err();
            assert_eq!(
                e,
                IoctlError::BadVersion {
                    field,
                    got: bad,
                    expected: good
                }
            );
            assert_eq!(e.to_ntstatus(), ntstatus::STATUS_REVISION_MISMATCH);
        }
        if era == Era::Portals {
            let mut b = buf.clone();
            wr32(&mut b, P, 0xecf6_0002);
            assert_eq!(
                decode(code, &b),
                Err(IoctlError::BadVersion {
                    field: "pcfg_version",
                    got: 0xecf6_0002,
                    expected: PORTALS_CFG_VERSION
                })
            );
        }
    }
}

#[test]
fn wrong_nal() {
    for cmd in sample_commands()
        .iter()
        .filter(|c| c.exists_in(Era::Portals))
    {
        let buf = portals(cmd);
        for bad in [0, 1, 3, 5, 9, u32::MAX] {
            let mut b = buf.clone();
            wr32(&mut b, P + 8, bad);
            wr32(&mut b, 36, 0); // ioc_nal mirror cleared, so pcfg_nal is what's checked
            let e = decode(IOCTL_PORTAL_NAL_CMD, &b).unwrap_err();
            assert_eq!(e, IoctlError::WrongNal { got: bad });
            assert!(e.to_string().contains("SOCKNAL"));
        }
    }
    // Mirrors that disagree with the portals_cfg.
    let buf = portals(&add_peer());
    for (o, v, field) in [
        (36usize, 1u64, "ioc_nal"),
        (40, 107, "ioc_nal_cmd"),
        (8, NID_B.0, "ioc_nid"),
    ] {
        let mut b = buf.clone();
        if o == 8 {
            wr64(&mut b, o, v);
        } else {
            wr32(&mut b, o, v as u32);
        }
        assert!(
            matches!(decode(IOCTL_PORTAL_NAL_CMD, &b), Err(IoctlError::InvalidField { field: f, .. }) if f == field),
            "{field}"
        );
        // Zero mirrors are fine (Lustre's tools leave ioc_nal at 0).
        let mut b = buf.clone();
        if o == 8 {
            wr64(&mut b, o, 0);
        } else {
            wr32(&mut b, o, 0);
        }
        assert_eq!(decode(IOCTL_PORTAL_NAL_CMD, &b), Ok(add_peer()));
    }
}

#[test]
fn wrong_net() {
    for cmd in sample_commands().iter().filter(|c| encodable(c, Era::Lnet)) {
        let (code, buf) = lnet(cmd);
        if matches!(cmd, Command::GetNi { .. }) {
            // GET_NI is LNet's own: ioc_net is not used and must be 0.
            let mut b = buf.clone();
            wr32(&mut b, 32, 0x0002_0000);
            assert!(matches!(
                decode(code, &b),
                Err(IoctlError::ReservedNotZero {
                    field: "ioc_net",
                    ..
                })
            ));
            continue;
        }
        for bad in [
            0,
            0x0005_0000,
            0x0009_0000,
            0x0102_0000,
            0x0001_0000,
            u32::MAX,
        ] {
            let mut b = buf.clone();
            wr32(&mut b, 32, bad);
            let e = decode(code, &b).unwrap_err();
            assert_eq!(e, IoctlError::WrongNet { net: bad }, "{cmd:?}");
            assert_eq!(e.to_ntstatus(), ntstatus::STATUS_INVALID_PARAMETER);
        }
    }
}

// ---- reserved / ignored fields ----

fn ignored_words(era: Era) -> Vec<usize> {
    match era {
        // Pointers (both halves) and compiler padding.
        Era::Portals => vec![
            76,
            80,
            84,
            92,
            96,
            100,
            108,
            112,
            116,
            124,
            128,
            132,    // portal_ioctl_data
            P + 84, // portals_cfg tail padding
        ],
        Era::Lnet => vec![68, 72, 76, 84, 88, 92, 100, 104, 108, 116, 120, 124],
    }
}

/// No field is silently ignored: changing any 32-bit word of a valid request either changes the
/// decoded command or is an error — except pointers and padding, which never matter.
#[test]
fn every_word_is_validated_or_documented_as_ignored() {
    for (cmd, era) in sample_requests() {
        let (code, buf) = encode(&cmd, era);
        let ignored = ignored_words(era);
        for o in (0..buf.len()).step_by(4) {
            for v in [0x5A5A_5A5Au32, 0x0000_0001, 0x8000_0000] {
                let mut b = buf.clone();
                if rd32(&b, o) == v {
                    continue;
                }
                wr32(&mut b, o, v);
                let r = decode(code, &b);
                if ignored.contains(&o) {
                    assert_eq!(r, Ok(cmd), "{cmd:?} {era:?}: word @{o} should be ignored");
                } else {
                    assert_ne!(
                        r,
                        Ok(cmd),
                        "{cmd:?} {era:?}: word @{o} = {v:#x} was silently ignored"
                    );
                }
            }
        }
    }
}

#[test]
fn unused_fields_name_the_field_and_command() {
    let mut b = portals(&Command::GetPeer { index: 0 });
    wr32(&mut b, P + 52, 988); // pcfg_misc: not used by GET_PEER
    let e = decode(IOCTL_PORTAL_NAL_CMD, &b).unwrap_err();
    assert_eq!(
        e,
        IoctlError::ReservedNotZero {
            field: "pcfg_misc",
            value: 988,
            command: "NAL_CMD_GET_PEER"
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("pcfg_misc") && msg.contains("988") && msg.contains("NAL_CMD_GET_PEER"));

    let (code, mut b) = lnet(&add_peer());
    wr32(&mut b, 48, 7); // ioc_u32[3]
    assert_eq!(
        decode(code, &b),
        Err(IoctlError::ReservedNotZero {
            field: "ioc_u32[3]",
            value: 7,
            command: "IOC_LIBCFS_ADD_PEER"
        })
    );
}

// ---- ports, IPs, NIDs, enumerations ----

#[test]
fn ports_zero_and_above_65535() {
    let port_cmds = [
        add_peer(),
        Command::StartDaemon {
            port: 988,
            accept: AcceptPolicy::Secure,
            backlog: None,
        },
        Command::ConnectPeer {
            nid: NID_A,
            ip: IP_A,
            port: 988,
            ctype: None,
        },
    ];
    for cmd in port_cmds {
        for era in ERAS {
            if !encodable(&cmd, era) {
                continue;
            }
            let (code, buf) = encode(&cmd, era);
            let (o, field) = match era {
                Era::Portals => (P + 52, "pcfg_misc"),
                Era::Lnet => (40, "ioc_u32[1]"),
            };
            for bad in [0, 65536, 70000, u32::MAX] {
                let mut b = buf.clone();
                wr32(&mut b, o, bad);
                let e = decode(code, &b).unwrap_err();
                assert_eq!(e, IoctlError::BadPort { field, value: bad }, "{cmd:?}");
                assert!(e.to_string().contains(field));
            }
            let mut b = buf.clone();
            wr32(&mut b, o, 65535);
            assert!(decode(code, &b).is_ok());
        }
        // The typed encoder refuses port 0 with the same error.
        let zero = match cmd {
            Command::AddPeer { nid, ip, .. } => Command::AddPeer { nid, ip, port: 0 },
            Command::StartDaemon {
                accept, backlog, ..
            } => Command::StartDaemon {
                port: 0,
                accept,
                backlog,
            },
            Command::ConnectPeer { nid, ip, ctype, .. } => Command::ConnectPeer {
                nid,
                ip,
                port: 0,
                ctype,
            },
            _ => unreachable!(),
        };
        let mut out = [0u8; 512];
        assert!(matches!(
            tdinal::ioctl::encode_request(&zero, Era::Portals, &mut out),
            Err(IoctlError::BadPort { value: 0, .. })
        ));
    }
}

#[test]
fn ips_that_cannot_be_used() {
    let bad_ips = [
        0u32,
        0x00FF_FFFF,
        0xE000_0001,
        0xEFFF_FFFF,
        0xF000_0000,
        0xFFFF_FFFF,
    ];
    // Required IPs.
    let required = [
        (add_peer(), Era::Portals, P + 48),
        (add_peer(), Era::Lnet, 36),
        (
            Command::ConnectPeer {
                nid: NID_A,
                ip: IP_A,
                port: 988,
                ctype: None,
            },
            Era::Portals,
            P + 48,
        ),
        (
            Command::AddInterface {
                ip: IP_A,
                netmask: 0xFFFF_FF00,
            },
            Era::Portals,
            P + 48,
        ),
        (
            Command::AddInterface {
                ip: IP_A,
                netmask: 0xFFFF_FF00,
            },
            Era::Lnet,
            36,
        ),
    ];
    for (cmd, era, o) in required {
        let (code, buf) = encode(&cmd, era);
        for bad in bad_ips {
            let mut b = buf.clone();
            wr32(&mut b, o, bad);
            let e = decode(code, &b).unwrap_err();
            assert!(
                matches!(e, IoctlError::BadIp { value, .. } if value == bad),
                "{cmd:?} {era:?} {bad:#x}: {e:?}"
            );
        }
    }
    // Optional IPs: 0 means "any", the rest of the bad list is refused.
    let optional = [
        (
            Command::DelPeer {
                nid: None,
                ip: Some(IP_A),
                single_share: false,
            },
            Era::Portals,
            P + 48,
        ),
        (
            Command::CloseConnection {
                nid: None,
                ip: Some(IP_A),
            },
            Era::Lnet,
            36,
        ),
        (Command::DelInterface { ip: Some(IP_A) }, Era::Lnet, 36),
    ];
    for (cmd, era, o) in optional {
        let (code, buf) = encode(&cmd, era);
        let mut b = buf.clone();
        wr32(&mut b, o, 0);
        assert!(decode(code, &b).is_ok());
        for bad in &bad_ips[1..] {
            let mut b = buf.clone();
            wr32(&mut b, o, *bad);
            assert!(matches!(decode(code, &b), Err(IoctlError::BadIp { .. })));
        }
    }
    // Netmasks.
    let (code, buf) = lnet(&Command::AddInterface {
        ip: IP_A,
        netmask: 0xFFFF_FF00,
    });
    for bad in [0, 0xFF00_FF00, 0x0000_00FF, 0xFFFF_FFFE_u32.rotate_right(1)] {
        let mut b = buf.clone();
        wr32(&mut b, 40, bad);
        let e = decode(code, &b).unwrap_err();
        assert!(
            matches!(
                e,
                IoctlError::BadIp {
                    field: "ioc_u32[1]",
                    ..
                }
            ),
            "{bad:#x}"
        );
        assert!(e.to_string().contains("netmask"));
    }
}

#[test]
fn nid_any_only_where_all_is_meaningful() {
    let forbidden = [
        add_peer(),
        Command::RegisterMyNid { nid: NID_A },
        Command::ConnectPeer {
            nid: NID_A,
            ip: IP_A,
            port: 988,
            ctype: None,
        },
    ];
    for cmd in forbidden {
        for era in ERAS {
            if !encodable(&cmd, era) {
                continue;
            }
            let (code, buf) = encode(&cmd, era);
            let (o, field) = match era {
                Era::Portals => (P + 24, "pcfg_nid"),
                Era::Lnet => (8, "ioc_nid"),
            };
            let mut b = buf.clone();
            wr64(&mut b, o, u64::MAX);
            if era == Era::Portals {
                wr64(&mut b, 8, 0); // ioc_nid mirror
            }
            let e = decode(code, &b).unwrap_err();
            assert!(
                matches!(e, IoctlError::NidAnyNotAllowed { field: f, .. } if f == field),
                "{cmd:?} {era:?}: {e:?}"
            );
            assert!(e.to_string().contains("LNET_NID_ANY"));
        }
        // The typed encoder refuses it too.
        let any = match cmd {
            Command::AddPeer { ip, port, .. } => Command::AddPeer {
                nid: Nid::ANY,
                ip,
                port,
            },
            Command::RegisterMyNid { .. } => Command::RegisterMyNid { nid: Nid::ANY },
            Command::ConnectPeer {
                ip, port, ctype, ..
            } => Command::ConnectPeer {
                nid: Nid::ANY,
                ip,
                port,
                ctype,
            },
            _ => unreachable!(),
        };
        let mut out = [0u8; 512];
        assert!(matches!(
            tdinal::ioctl::encode_request(&any, Era::Portals, &mut out),
            Err(IoctlError::NidAnyNotAllowed { .. })
        ));
    }
    // Allowed (= all) for DEL_PEER, CLOSE_CONNECTION, PUSH_CONNECTION: covered by round trips
    // of the `nid: None` samples; check the wire value here.
    let b = portals(&Command::PushConnection { nid: None });
    assert_eq!(rd64(&b, P + 24), u64::MAX);
}

#[test]
fn nids_that_cannot_name_a_socklnd_peer() {
    let bad = [
        0x0002_0000_0000_0000u64, // 0.0.0.0@tcp
        0x0005_0000_C0A8_0001,    // 192.168.0.1@o2ib
        0x0009_0000_0000_0000,    // 0@lo
        0x0102_0000_C0A8_0001,    // top byte set
        0x0002_0000_E000_0001,    // multicast address
    ];
    for era in ERAS {
        let (code, buf) = encode(&add_peer(), era);
        let o = if era == Era::Portals { P + 24 } else { 8 };
        for nid in bad {
            let mut b = buf.clone();
            wr64(&mut b, o, nid);
            wr64(&mut b, 8, if era == Era::Portals { 0 } else { nid });
            let e = decode(code, &b).unwrap_err();
            assert!(
                matches!(e, IoctlError::BadNid { nid: n, .. } if n == nid),
                "{nid:#x}"
            );
        }
    }
    // Portals-style (net 0) NIDs are fine in the Portals era, not in the LNet era.
    let cmd = Command::AddPeer {
        nid: NID_PORTALS,
        ip: IP_A,
        port: 988,
    };
    assert_eq!(decode(IOCTL_PORTAL_NAL_CMD, &portals(&cmd)), Ok(cmd));
    let mut out = [0u8; 512];
    assert!(matches!(
        tdinal::ioctl::encode_request(&cmd, Era::Lnet, &mut out),
        Err(IoctlError::BadNid { .. })
    ));
    // LNet: a NID on tcp1 in a request for tcp0.
    let (code, mut b) = lnet(&add_peer());
    wr64(&mut b, 8, NID_TCP1.0);
    assert!(matches!(
        decode(code, &b),
        Err(IoctlError::BadNid {
            field: "ioc_nid",
            ..
        })
    ));
}

#[test]
fn enumerated_fields() {
    // Accept policy.
    let b0 = portals(&Command::StartDaemon {
        port: 988,
        accept: AcceptPolicy::Secure,
        backlog: None,
    });
    for (v, want) in [
        (0, Some(AcceptPolicy::Secure)),
        (1, Some(AcceptPolicy::All)),
        (2, Some(AcceptPolicy::None)),
        (3, None),
        (u32::MAX, None),
    ] {
        let mut b = b0.clone();
        wr32(&mut b, P + 12, v);
        match (decode(IOCTL_PORTAL_NAL_CMD, &b), want) {
            (Ok(Command::StartDaemon { accept, .. }), Some(a)) => assert_eq!(accept, a),
            (
                Err(IoctlError::InvalidField {
                    field: "pcfg_flags",
                    ..
                }),
                None,
            ) => {}
            other => panic!("{v}: {other:?}"),
        }
    }
    // Backlog.
    for (v, ok) in [(1, true), (4096, true), (4097, false), (u32::MAX, false)] {
        let mut b = b0.clone();
        wr32(&mut b, P + 60, v);
        assert_eq!(decode(IOCTL_PORTAL_NAL_CMD, &b).is_ok(), ok, "backlog {v}");
    }
    // Connection type.
    let b0 = portals(&Command::ConnectPeer {
        nid: NID_A,
        ip: IP_A,
        port: 988,
        ctype: None,
    });
    for (v, ok) in [(0, true), (3, true), (4, false), (0xFFFF_FFFE, false)] {
        let mut b = b0.clone();
        wr32(&mut b, P + 12, v);
        assert_eq!(decode(IOCTL_PORTAL_NAL_CMD, &b).is_ok(), ok, "ctype {v:#x}");
    }
    // DEL_PEER single share flag.
    let b0 = portals(&Command::DelPeer {
        nid: None,
        ip: None,
        single_share: false,
    });
    let mut b = b0.clone();
    wr32(&mut b, P + 12, 2);
    assert!(matches!(
        decode(IOCTL_PORTAL_NAL_CMD, &b),
        Err(IoctlError::InvalidField {
            field: "pcfg_flags",
            value: 2,
            ..
        })
    ));
}

// ---- codes and commands ----

#[test]
fn unknown_codes() {
    let known: Vec<u32> = CODES.iter().map(|c| c.code).collect();
    let mut bad = vec![
        0,
        u32::MAX,
        0xC008_6523, // the Linux request number, not a Windows code
        ctl_code(FILE_DEVICE_TDINAL, 0x800 + 30, 0, 3),
        ctl_code(FILE_DEVICE_TDINAL, 0x800 + 62, 0, 1),
        ctl_code(FILE_DEVICE_TDINAL, 0x800 + 82, 0, 2),
        ctl_code(0x8066, 0x800 + 75, 0, 2),
        ctl_code(0x0012, 0x800 + 75, 0, 2),
    ];
    for c in CODES {
        bad.push(c.code ^ 0x3); // other method
        bad.push(c.code ^ (0x3 << 14)); // other access
        bad.push(c.code & !(0x3 << 14)); // FILE_ANY_ACCESS
    }
    let req = portals(&add_peer());
    for code in bad {
        if known.contains(&code) {
            continue;
        }
        let e = decode(code, &req).unwrap_err();
        assert_eq!(e, IoctlError::UnknownCode { code });
        assert_eq!(e.to_ntstatus(), ntstatus::STATUS_INVALID_DEVICE_REQUEST);
        assert_eq!(e.to_errno(), errno::ENOTTY);
        let mut out = [0u8; 512];
        assert_eq!(
            tdinal::ioctl::decode_reply(code, &req),
            Err(IoctlError::UnknownCode { code })
        );
        assert!(encode_reply(code, &req, &Reply::None, &mut out).is_err());
    }
}

#[test]
fn unknown_and_unsupported_nal_cmds() {
    let b0 = portals(&Command::GetPeer { index: 0 });
    for nr in [0, 99, 118, 200, u32::MAX] {
        let mut b = b0.clone();
        wr32(&mut b, P + 4, nr);
        wr32(&mut b, 40, 0);
        let e = decode(IOCTL_PORTAL_NAL_CMD, &b).unwrap_err();
        assert_eq!(
            e,
            IoctlError::UnknownCommand {
                era: Era::Portals,
                nr
            }
        );
        assert_eq!(e.to_ntstatus(), ntstatus::STATUS_INVALID_DEVICE_REQUEST);
    }
    for nr in [
        nal_cmd::REGISTER_PEER_FD,
        nal_cmd::GET_TXDESC,
        nal_cmd::ADD_ROUTE,
        nal_cmd::DEL_ROUTE,
        nal_cmd::GET_ROUTE,
        nal_cmd::NOTIFY_ROUTER,
    ] {
        let mut b = b0.clone();
        wr32(&mut b, P + 4, nr);
        wr32(&mut b, 40, nr);
        let e = decode(IOCTL_PORTAL_NAL_CMD, &b).unwrap_err();
        assert!(matches!(e, IoctlError::NotSupported { .. }), "{nr}: {e:?}");
        assert_eq!(e.to_ntstatus(), ntstatus::STATUS_NOT_SUPPORTED);
        assert_eq!(e.to_errno(), errno::EOPNOTSUPP);
    }
}

#[test]
fn unsupported_lnet_codes() {
    for c in CODES.iter().filter(|c| !c.supported) {
        for input in [&[][..], &[0u8; 128][..]] {
            let e = decode(c.code, input).unwrap_err();
            assert!(
                matches!(e, IoctlError::NotSupported { command, .. } if command == c.name),
                "{}: {e:?}",
                c.name
            );
            assert!(e.to_string().contains(c.name));
        }
    }
}

// ---- replies ----

#[test]
fn output_buffer_too_small() {
    let cases = [
        (Command::GetPeer { index: 0 }, Reply::Peer(peer(0))),
        (Command::GetConn { index: 0 }, Reply::Conn(conn(0))),
        (
            Command::GetInterface { index: 0 },
            Reply::Interface(iface(0)),
        ),
        (Command::GetNi { index: 0 }, Reply::Ni(NID_A)),
    ];
    for (cmd, reply) in cases {
        for era in ERAS {
            if !cmd.exists_in(era) {
                continue;
            }
            let (code, req) = encode(&cmd, era);
            for n in 0..req.len() {
                let mut out = vec![0u8; n];
                let e = encode_reply(code, &req, &reply, &mut out).unwrap_err();
                assert_eq!(
                    e,
                    IoctlError::OutputTooSmall {
                        need: req.len(),
                        have: n
                    }
                );
                assert_eq!(e.to_ntstatus(), ntstatus::STATUS_BUFFER_TOO_SMALL);
            }
        }
    }
}

#[test]
fn reply_of_the_wrong_kind() {
    let (code, req) = encode(&Command::GetPeer { index: 0 }, Era::Lnet);
    let mut out = [0u8; 512];
    for reply in [Reply::None, Reply::Conn(conn(0)), Reply::Ni(NID_A)] {
        let e = encode_reply(code, &req, &reply, &mut out).unwrap_err();
        assert_eq!(
            e,
            IoctlError::ReplyMismatch {
                command: "GET_PEER"
            }
        );
    }
    let (code, req) = encode(&add_peer(), Era::Portals);
    assert!(encode_reply(code, &req, &Reply::Peer(peer(0)), &mut out).is_err());
    // A connection reply must carry an established type.
    let (code, req) = encode(&Command::GetConn { index: 0 }, Era::Portals);
    let none = tdinal::ioctl::ConnInfo {
        conn_type: tdinal::wire::ConnType::None,
        ..conn(0)
    };
    assert!(matches!(
        encode_reply(code, &req, &Reply::Conn(none), &mut out),
        Err(IoctlError::InvalidField { .. })
    ));
}

#[test]
fn malformed_replies_are_refused() {
    let (code, req) = encode(&Command::GetConn { index: 0 }, Era::Lnet);
    let mut out = vec![0u8; 128];
    encode_reply(code, &req, &Reply::Conn(conn(0)), &mut out).unwrap();
    let mut b = out.clone();
    wr32(&mut b, 48, 4); // conn type
    assert!(tdinal::ioctl::decode_reply(code, &b).is_err());
    let mut b = out.clone();
    wr32(&mut b, 24, 2); // nagle
    assert!(tdinal::ioctl::decode_reply(code, &b).is_err());
    let mut b = out.clone();
    wr32(&mut b, 40, 65536); // port
    assert!(tdinal::ioctl::decode_reply(code, &b).is_err());
    assert!(tdinal::ioctl::decode_reply(code, &out[..127]).is_err());
}

// ---- error mapping ----

#[test]
fn status_and_errno_mapping() {
    use ntstatus::*;
    assert_eq!(STATUS_INVALID_PARAMETER as u32, 0xC000_000D);
    assert_eq!(STATUS_BUFFER_TOO_SMALL as u32, 0xC000_0023);
    assert_eq!(STATUS_INVALID_DEVICE_REQUEST as u32, 0xC000_0010);
    assert_eq!(STATUS_NO_MORE_ENTRIES as u32, 0x8000_001A);
    assert_eq!(STATUS_REVISION_MISMATCH as u32, 0xC000_0059);
    assert_eq!(STATUS_NOT_SUPPORTED as u32, 0xC000_00BB);
    assert_eq!(STATUS_INVALID_DEVICE_STATE as u32, 0xC000_0184);
    let e = IoctlError::NoMoreEntries;
    assert_eq!(e.to_ntstatus(), STATUS_NO_MORE_ENTRIES);
    assert_eq!(e.to_errno(), errno::ENOENT);
    assert_eq!(
        IoctlError::from(CtlError::NoMoreEntries),
        IoctlError::NoMoreEntries
    );
    let table = [
        (CtlError::NotFound, STATUS_NOT_FOUND, errno::ENOENT),
        (
            CtlError::Exists,
            STATUS_OBJECT_NAME_COLLISION,
            errno::EEXIST,
        ),
        (
            CtlError::InvalidArgument,
            STATUS_INVALID_PARAMETER,
            errno::EINVAL,
        ),
        (
            CtlError::InvalidState,
            STATUS_INVALID_DEVICE_STATE,
            errno::EBUSY,
        ),
        (
            CtlError::NoMemory,
            STATUS_INSUFFICIENT_RESOURCES,
            errno::ENOMEM,
        ),
        (
            CtlError::AddressInUse,
            STATUS_ADDRESS_ALREADY_EXISTS,
            errno::EADDRINUSE,
        ),
        (
            CtlError::ConnectionRefused,
            STATUS_CONNECTION_REFUSED,
            errno::ECONNREFUSED,
        ),
        (
            CtlError::Unreachable,
            STATUS_HOST_UNREACHABLE,
            errno::EHOSTUNREACH,
        ),
        (CtlError::TimedOut, STATUS_IO_TIMEOUT, errno::ETIMEDOUT),
        (
            CtlError::NotSupported,
            STATUS_NOT_SUPPORTED,
            errno::EOPNOTSUPP,
        ),
        (CtlError::Failed { errno: 71 }, STATUS_UNSUCCESSFUL, 71),
        (
            CtlError::Failed { errno: -3 },
            STATUS_UNSUCCESSFUL,
            errno::EIO,
        ),
    ];
    for (c, st, en) in table {
        let e = IoctlError::from(c);
        assert_eq!(e, IoctlError::Ctl(c));
        assert_eq!((e.to_ntstatus(), e.to_errno()), (st, en), "{c:?}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn messages_say_what_was_wrong() {
    let e = IoctlError::BadIp {
        field: "pcfg_id",
        value: 0xE000_0001,
        expected: "x",
    };
    assert!(e.to_string().contains("224.0.0.1") && e.to_string().contains("pcfg_id"));
    let e = IoctlError::LengthMismatch {
        ioc_len: 10,
        buffer: 224,
    };
    assert!(e.to_string().contains("10") && e.to_string().contains("224"));
    let e = IoctlError::BadVersion {
        field: "ioc_version",
        got: 0x0001_000b,
        expected: 0x0001_000a,
    };
    assert!(e.to_string().contains("0x0001000b") && e.to_string().contains("0x0001000a"));
    let e = IoctlError::WrongNet { net: 0x0005_0000 };
    assert!(e.to_string().contains("0x00050000") && e.to_string().contains("LND type 5"));
}
