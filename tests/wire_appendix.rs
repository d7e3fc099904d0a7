//! Every byte-exact example of the spec's Appendix A (and the §1.2 NID table): decode, check
//! the fields as listed, re-encode, compare the bytes. Sender-order formats are also checked in
//! the big-endian form a big-endian sender would write (every multi-byte field swapped).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use tdinal::wire::csum::{crc32_le, CRC32_SEED};
use tdinal::wire::hello::{probe, HelloProbe};
use tdinal::wire::lnet::LNET_PROTO_PING_MATCHBITS;
use tdinal::wire::{
    ConnReq, ConnType, Endian, Hello, IpList, KsockHdr, KsockMsgType, LnetHdr, LnetMsg, Nid,
    ProtoVersion, WireHandle,
};

const A: Nid = Nid(0x0002_0000_C0A8_0001);
const B: Nid = Nid(0x0002_0000_C0A8_0002);
const INCARNATION: u64 = 0x17D2_C0FF_EE00_0000;

/// Parses the hex dump lines of the appendix ("0000: 00 71 ce ac …").
fn hex(dump: &str) -> Vec<u8> {
    dump.lines()
        .filter_map(|l| l.split_once(':'))
        .flat_map(|(_, bytes)| bytes.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// Swaps the byte order of the fields of `bytes` whose widths are listed in order.
fn swap_fields(bytes: &[u8], widths: &[usize]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    for &w in widths {
        out[at..at + w].reverse();
        at += w;
    }
    assert_eq!(at, bytes.len(), "field widths cover the structure");
    out
}

const CONNREQ_FIELDS: [usize; 3] = [4, 4, 8];
const HELLO_V2_FIELDS: [usize; 10] = [4, 4, 8, 8, 4, 4, 8, 8, 4, 4];
const KSOCK_FIELDS: [usize; 4] = [4, 4, 8, 8];

#[test]
fn a1_connreq() {
    let le = hex("0000: 00 71 ce ac 01 00 00 00 01 00 a8 c0 00 00 02 00");
    let be = swap_fields(&le, &CONNREQ_FIELDS);
    for (bytes, endian) in [(&le, Endian::Little), (&be, Endian::Big)] {
        let (req, e) = ConnReq::decode(bytes).unwrap();
        assert_eq!(e, endian);
        assert_eq!(req.version, 1);
        assert_eq!(req.nid, A, "target is A");
        assert_eq!(&req.to_bytes(e)[..], &bytes[..]);
    }
}

fn a2_bytes() -> Vec<u8> {
    hex("0000: 63 69 72 45 03 00 00 00 02 00 a8 c0 00 00 02 00
         0010: 01 00 a8 c0 00 00 02 00 39 30 00 00 00 00 00 00
         0020: 00 00 00 ee ff c0 d2 17 00 00 00 00 00 00 00 00
         0030: 01 00 00 00 00 00 00 00")
}

#[test]
fn a2_v3_hello_and_retry_reply() {
    let le = a2_bytes();
    assert_eq!(le.len(), 56);
    let be = swap_fields(&le, &HELLO_V2_FIELDS);
    let mut retry_le = le.clone();
    retry_le[48..52].copy_from_slice(&[0xff; 4]);
    let retry_be = swap_fields(&retry_le, &HELLO_V2_FIELDS);
    for (bytes, endian, ctype) in [
        (&le, Endian::Little, ConnType::Control),
        (&be, Endian::Big, ConnType::Control),
        (&retry_le, Endian::Little, ConnType::None),
        (&retry_be, Endian::Big, ConnType::None),
    ] {
        assert_eq!(
            probe(bytes),
            Ok(HelloProbe::Known {
                version: ProtoVersion::V3,
                endian
            })
        );
        let (h, e, n) = Hello::decode(bytes).unwrap();
        assert_eq!((e, n), (endian, 56));
        assert_eq!(
            h,
            Hello {
                version: ProtoVersion::V3,
                src_nid: B,
                dst_nid: A,
                src_pid: 12345,
                dst_pid: 0,
                src_incarnation: INCARNATION,
                dst_incarnation: 0,
                ctype,
                ips: IpList::EMPTY,
            }
        );
        let mut out = [0u8; 56];
        assert_eq!(h.encode(e, &mut out), Ok(56));
        assert_eq!(&out[..], &bytes[..]);
    }
}

#[test]
fn a3_v1_hello() {
    let mut bytes = hex("0000: ed 0d bc ee 01 00 00 00 02 00 a8 c0 00 00 02 00
                         0010: 00 00 00 00 39 30 00 00 04 00 00 00 00 00 00 00
                         0020: 00 00 00 ee ff c0 d2 17 00 00 00 00 00 00 00 00");
    // "0030..0047: 00 …"
    bytes.resize(72, 0);
    assert_eq!(
        probe(&bytes),
        Ok(HelloProbe::Known {
            version: ProtoVersion::V1,
            endian: Endian::Little
        })
    );
    let (h, e, n) = Hello::decode(&bytes).unwrap();
    assert_eq!((e, n), (Endian::Little, 72));
    assert_eq!(
        h,
        Hello {
            version: ProtoVersion::V1,
            src_nid: B,
            dst_nid: Nid(0),
            src_pid: 12345,
            dst_pid: 0,
            src_incarnation: INCARNATION,
            dst_incarnation: 0,
            ctype: ConnType::Any,
            ips: IpList::EMPTY,
        }
    );
    // V1 is little-endian whatever order is asked for.
    for endian in [Endian::Little, Endian::Big] {
        let mut out = [0u8; 72];
        assert_eq!(h.encode(endian, &mut out), Ok(72));
        assert_eq!(&out[..], &bytes[..]);
    }
    // It is also a well-formed LNet HELLO header (dest_nid slot = magic + version).
    let as_lnet = LnetHdr::decode(&bytes).unwrap();
    assert_eq!(
        as_lnet.msg,
        LnetMsg::Hello {
            incarnation: INCARNATION,
            conn_type: 0
        }
    );
}

#[test]
fn a4_noop_zc_ack_with_and_without_csum() {
    let plain = hex("0000: c0 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
                     0010: 05 00 00 00 00 00 00 00");
    let with = hex("0000: c0 00 00 00 64 34 bb 7f 00 00 00 00 00 00 00 00
                    0010: 05 00 00 00 00 00 00 00");
    assert_eq!(crc32_le(CRC32_SEED, &plain), 0x7FBB_3464);
    for (bytes, csum) in [(&plain, 0), (&with, 0x7FBB_3464)] {
        let be = swap_fields(bytes, &KSOCK_FIELDS);
        for (b, endian) in [(bytes, Endian::Little), (&be, Endian::Big)] {
            let h = KsockHdr::decode(b, endian).unwrap();
            assert_eq!(h.msg_type, KsockMsgType::Noop);
            assert_eq!(h.csum, csum);
            assert_eq!(h.zc_cookies, [0, 5]);
            assert_eq!(&h.to_bytes(endian)[..], &b[..]);
        }
    }
    let h = KsockHdr::noop(5);
    assert_eq!(h.compute_csum_v2(Endian::Little, &[]), 0x7FBB_3464);
    // A big-endian sender checksums its own bytes: the CRC is over what is on the wire.
    let be_plain = swap_fields(&plain, &KSOCK_FIELDS);
    assert_eq!(
        h.compute_csum_v2(Endian::Big, &[]),
        crc32_le(CRC32_SEED, &be_plain)
    );
}

#[test]
fn a5_ping_get() {
    let bytes = hex("0000: c1 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
                     0010: 00 00 00 00 00 00 00 00 01 00 a8 c0 00 00 02 00
                     0020: 02 00 a8 c0 00 00 02 00 39 30 00 00 39 30 00 00
                     0030: 02 00 00 00 00 00 00 00 88 77 66 55 44 33 22 11
                     0040: 00 ff ee dd cc bb aa 99 00 00 00 00 00 00 00 80
                     0050: 00 00 00 00 00 00 00 00 10 01 00 00 00 00 00 00");
    assert_eq!(bytes.len(), 96);
    let expected_lnet = LnetHdr {
        dest_nid: A,
        src_nid: B,
        dest_pid: 12345,
        src_pid: 12345,
        payload_length: 0,
        msg: LnetMsg::Get {
            return_wmd: WireHandle {
                interface_cookie: 0x1122_3344_5566_7788,
                object_cookie: 0x99aa_bbcc_ddee_ff00,
            },
            match_bits: LNET_PROTO_PING_MATCHBITS,
            ptl_index: 0,
            src_offset: 0,
            sink_length: 272,
        },
    };
    // The ksock header is sender order; the LNet header after it is always little-endian.
    let mut be = swap_fields(&bytes[..24], &KSOCK_FIELDS);
    be.extend_from_slice(&bytes[24..]);
    for (b, endian) in [(&bytes, Endian::Little), (&be, Endian::Big)] {
        let k = KsockHdr::decode(b, endian).unwrap();
        assert_eq!(k, KsockHdr::lnet());
        let l = LnetHdr::decode(&b[24..]).unwrap();
        assert_eq!(l, expected_lnet);
        assert_eq!(l.validate(), Ok(()));
        let mut out = [0u8; 96];
        k.encode(endian, &mut out).unwrap();
        l.encode(&mut out[24..]).unwrap();
        assert_eq!(&out[..], &b[..]);
    }
}

#[test]
fn a6_crc_check_value() {
    assert_eq!(crc32_le(CRC32_SEED, b"123456789"), 0x340B_C6D9);
}

#[test]
fn s1_2_nid_table() {
    for (text, value, wire) in [
        (
            "192.168.0.1@tcp",
            0x0002_0000_C0A8_0001u64,
            "01 00 a8 c0 00 00 02 00",
        ),
        (
            "10.0.0.5@tcp1",
            0x0002_0001_0A00_0005,
            "05 00 00 0a 01 00 02 00",
        ),
        ("0@lo", 0x0009_0000_0000_0000, "00 00 00 00 00 00 09 00"),
    ] {
        let nid: Nid = text.parse().unwrap();
        assert_eq!(nid, Nid(value));
        assert_eq!(nid.to_string(), text);
        assert_eq!(nid.0.to_le_bytes().to_vec(), hex(&format!("0: {wire}")));
    }
}
