//! Cross-check our encoders against an independent decoder: write a pcap of V2/V3-style
//! traffic produced by the wire layer (connreq, V3 hellos, a GET, a REPLY with payload, a NOOP
//! carrying a ZC-ACK and a checksum, a PUT with hdr_data split over two TCP segments) and check
//! that Wireshark's LNet dissector (tshark) reads back the values we wrote.
//!
//! Dissector quirks (spec §9): the socklnd checksum is shown as `lnet.ib_csum`; `lnet.src_pid`
//! shows the value at offset 16 (our `dest_pid`) and `lnet.dest_pid` the one at offset 20 (our
//! `src_pid`). Connreqs and hellos are not decoded by it at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::process::Command;

use support::pcap::{Writer, LINKTYPE_ETHERNET};
use support::tcp::{Connection, Endpoint};
use tdinal::wire::lnet::LNET_PROTO_PING_MATCHBITS;
use tdinal::wire::nid::LNET_PID_USERFLAG;
use tdinal::wire::ping::{encode_ping_info, feat, NiStatus, LNET_NI_STATUS_UP};
use tdinal::wire::{
    ConnReq, ConnType, Endian, Hello, IpList, KsockHdr, KsockMsgType, LnetHdr, LnetMsg, Nid,
    ProtoVersion, WireHandle,
};

const A: Nid = Nid(0x0002_0000_C0A8_0001); // 192.168.0.1@tcp, the passive side
const B: Nid = Nid(0x0002_0000_C0A8_0002); // 192.168.0.2@tcp, the active side
const PID_A: u32 = 12345;
/// Distinct from PID_A so the dissector's src/dest swap is visible.
const PID_B: u32 = LNET_PID_USERFLAG | 1023;

fn tshark() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tshark"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "tshark is not on PATH: this test needs it (Debian/Ubuntu: `apt-get install tshark`)"
        )
    })
}

fn ksock_lnet(endian: Endian, ksock: KsockHdr, lnet: &LnetHdr, payload: &[u8]) -> Vec<u8> {
    let mut out = ksock.to_bytes(endian).to_vec();
    out.extend_from_slice(&lnet.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// The capture, and the two checksums it carries (NOOP, PUT).
fn build_capture() -> (Vec<u8>, u32, u32) {
    let e = Endian::Little;
    let mut conn = Connection::new(
        Endpoint {
            ip: [192, 168, 0, 2],
            port: 1023,
        },
        Endpoint {
            ip: [192, 168, 0, 1],
            port: 988,
        },
    );
    let mut frames = conn.handshake();

    frames.push(conn.send(true, &ConnReq::new(A).to_bytes(e)));
    let hello = Hello {
        version: ProtoVersion::V3,
        src_nid: B,
        dst_nid: A,
        src_pid: PID_B,
        dst_pid: 0,
        src_incarnation: 0x17D2_C0FF_EE00_0000,
        dst_incarnation: 0,
        ctype: ConnType::Control,
        ips: IpList::EMPTY,
    };
    let mut buf = vec![0u8; hello.wire_len()];
    hello.encode(e, &mut buf).unwrap();
    frames.push(conn.send(true, &buf));
    let reply = Hello {
        src_nid: A,
        dst_nid: B,
        src_pid: PID_A,
        src_incarnation: 0x17D2_C0FF_EE00_1111,
        ctype: ConnType::Control.inverse(),
        ..hello
    };
    reply.encode(e, &mut buf).unwrap();
    frames.push(conn.send(false, &buf));

    // 1: ping GET, B → A.
    let return_wmd = WireHandle {
        interface_cookie: 0x1122_3344_5566_7788,
        object_cookie: 0x99aa_bbcc_ddee_ff00,
    };
    let get = LnetHdr {
        dest_nid: A,
        src_nid: B,
        dest_pid: PID_A,
        src_pid: PID_B,
        payload_length: 0,
        msg: LnetMsg::Get {
            return_wmd,
            match_bits: LNET_PROTO_PING_MATCHBITS,
            ptl_index: 0,
            src_offset: 0,
            sink_length: 272,
        },
    };
    frames.push(conn.send(true, &ksock_lnet(e, KsockHdr::lnet(), &get, &[])));

    // 2: REPLY with the ping info, A → B, asking for a ZC-ACK of cookie 7.
    let mut info = [0u8; 48];
    let entries = [
        NiStatus {
            nid: Nid::LO_0,
            status: 1,
            msg_size: 0,
        },
        NiStatus {
            nid: A,
            status: LNET_NI_STATUS_UP,
            msg_size: 0,
        },
    ];
    encode_ping_info(e, feat::NI_STATUS, PID_A, &entries, &mut info).unwrap();
    let reply_hdr = LnetHdr {
        dest_nid: B,
        src_nid: A,
        dest_pid: PID_B,
        src_pid: PID_A,
        payload_length: 48,
        msg: LnetMsg::Reply {
            dst_wmd: return_wmd,
        },
    };
    let zc_request = KsockHdr {
        zc_cookies: [7, 0],
        ..KsockHdr::lnet()
    };
    frames.push(conn.send(false, &ksock_lnet(e, zc_request, &reply_hdr, &info)));

    // 3: NOOP acknowledging cookie 7, with a V2 checksum, B → A.
    let mut noop = KsockHdr::noop(7);
    noop.csum = noop.compute_csum_v2(e, &[]);
    frames.push(conn.send(true, &noop.to_bytes(e)));

    // 4: PUT with hdr_data and a checksum, A → B, split over two segments.
    let payload: Vec<u8> = (0..40u8).collect();
    let put = LnetHdr {
        dest_nid: B,
        src_nid: A,
        dest_pid: PID_B,
        src_pid: PID_A,
        payload_length: payload.len() as u32,
        msg: LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 0x62f0_0000_0000_000d,
            hdr_data: 0x0123_4567_89ab_cdef,
            ptl_index: 52,
            offset: 0,
        },
    };
    let mut put_ksock = KsockHdr::lnet();
    put_ksock.csum = put_ksock.compute_csum_v2(e, &[&put.to_bytes(), &payload]);
    let put_bytes = ksock_lnet(e, put_ksock, &put, &payload);
    let (first, second) = put_bytes.split_at(60);
    frames.push(conn.send(false, first));
    frames.push(conn.send(false, second));

    let mut w = Writer::new(LINKTYPE_ETHERNET);
    for (i, f) in frames.iter().enumerate() {
        w.push(1_700_000_000, i as u32 * 1000, f);
    }
    (w.finish(), noop.csum, put_ksock.csum)
}

/// Runs tshark on `pcap` and returns one row per LNet PDU: field name → value.
fn dissect(pcap: &[u8], fields: &[&str]) -> Vec<Vec<(String, String)>> {
    let dir = std::env::temp_dir().join(format!("tdinal-wire-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("synthetic.pcap");
    std::fs::write(&file, pcap).unwrap();
    let mut cmd = Command::new(tshark());
    // A private configuration directory: no user preferences, no root warning dialog state.
    cmd.env("WIRESHARK_CONFIG_DIR", &dir)
        .env("HOME", &dir)
        .arg("-n")
        .arg("-r")
        .arg(&file)
        .args(["-o", "tcp.desegment_tcp_streams:TRUE"])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=;",
        ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            fields
                .iter()
                .zip(line.split('\t').chain(std::iter::repeat("")))
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A tshark number: `0x…` hex or decimal; empty means "field absent".
fn num(v: &str) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    Some(match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => v.parse().unwrap(),
    })
}

#[test]
fn tshark_decodes_what_we_encode() {
    let (pcap, noop_csum, put_csum) = build_capture();
    assert_ne!(noop_csum, 0);
    assert_ne!(put_csum, 0);
    let fields = [
        "frame.number",
        "tcp.srcport",
        "lnet.ksm_type",
        "lnet.ksm_zc_req_cookie",
        "lnet.ksm_zc_ack_cookie",
        "lnet.ib_csum",
        "lnet.msg_type",
        "lnet.payload_length",
        "lnet.src_pid",
        "lnet.dest_pid",
        "lnet.msg_hdr_data",
        "lnet.sink_length",
        "lnet.ptl_index",
        "lnet.msg_dst_match_bits",
        "lnet.msg_dst_interface_cookie",
        "lnet.msg_dst_object_cookie",
        "lnet.nid.addr",
    ];
    let rows = dissect(&pcap, &fields);
    // 3 handshake frames, connreq, 2 hellos, GET, REPLY, NOOP, PUT in two segments.
    assert_eq!(rows.len(), 11, "one row per frame");
    let get = |row: &Vec<(String, String)>, f: &str| -> String {
        row.iter().find(|(k, _)| k == f).unwrap().1.clone()
    };
    let n = |row: &Vec<(String, String)>, f: &str| num(&get(row, f));

    // The connreq and hellos are not LNet PDUs to the dissector: nothing decoded from them.
    for row in &rows[..6] {
        assert_eq!(
            n(row, "lnet.ksm_type"),
            None,
            "frame {}",
            get(row, "frame.number")
        );
    }
    let pdus: Vec<_> = rows
        .iter()
        .filter(|r| n(r, "lnet.ksm_type").is_some())
        .collect();
    assert_eq!(pdus.len(), 4, "GET, REPLY, NOOP, reassembled PUT");
    let (get_row, reply_row, noop_row, put_row) = (pdus[0], pdus[1], pdus[2], pdus[3]);

    // Swapped by the dissector: lnet.src_pid is the value at offset 16 (dest_pid).
    let pids = |r| (n(r, "lnet.src_pid"), n(r, "lnet.dest_pid"));

    assert_eq!(n(get_row, "tcp.srcport"), Some(1023));
    assert_eq!(n(get_row, "lnet.ksm_type"), Some(0xc1));
    assert_eq!(n(get_row, "lnet.ksm_zc_req_cookie"), Some(0));
    assert_eq!(n(get_row, "lnet.ksm_zc_ack_cookie"), Some(0));
    assert_eq!(n(get_row, "lnet.ib_csum"), Some(0));
    assert_eq!(n(get_row, "lnet.msg_type"), Some(2));
    assert_eq!(n(get_row, "lnet.payload_length"), Some(0));
    assert_eq!(
        pids(get_row),
        (Some(u64::from(PID_A)), Some(u64::from(PID_B)))
    );
    assert_eq!(n(get_row, "lnet.sink_length"), Some(272));
    assert_eq!(n(get_row, "lnet.ptl_index"), Some(0));
    assert_eq!(
        n(get_row, "lnet.msg_dst_match_bits"),
        Some(LNET_PROTO_PING_MATCHBITS)
    );
    assert_eq!(
        n(get_row, "lnet.msg_dst_interface_cookie"),
        Some(0x1122_3344_5566_7788)
    );
    assert_eq!(
        n(get_row, "lnet.msg_dst_object_cookie"),
        Some(0x99aa_bbcc_ddee_ff00)
    );
    // dest_nid then src_nid.
    assert_eq!(get(get_row, "lnet.nid.addr"), "192.168.0.1;192.168.0.2");

    assert_eq!(n(reply_row, "tcp.srcport"), Some(988));
    assert_eq!(n(reply_row, "lnet.ksm_type"), Some(0xc1));
    assert_eq!(n(reply_row, "lnet.ksm_zc_req_cookie"), Some(7));
    assert_eq!(n(reply_row, "lnet.ksm_zc_ack_cookie"), Some(0));
    assert_eq!(n(reply_row, "lnet.msg_type"), Some(3));
    assert_eq!(n(reply_row, "lnet.payload_length"), Some(48));
    assert_eq!(
        pids(reply_row),
        (Some(u64::from(PID_B)), Some(u64::from(PID_A)))
    );
    assert_eq!(
        n(reply_row, "lnet.msg_dst_interface_cookie"),
        Some(0x1122_3344_5566_7788)
    );
    assert_eq!(get(reply_row, "lnet.nid.addr"), "192.168.0.2;192.168.0.1");

    assert_eq!(n(noop_row, "tcp.srcport"), Some(1023));
    assert_eq!(n(noop_row, "lnet.ksm_type"), Some(0xc0));
    assert_eq!(n(noop_row, "lnet.ksm_zc_req_cookie"), Some(0));
    assert_eq!(n(noop_row, "lnet.ksm_zc_ack_cookie"), Some(7));
    assert_eq!(n(noop_row, "lnet.ib_csum"), Some(u64::from(noop_csum)));
    assert_eq!(
        n(noop_row, "lnet.msg_type"),
        None,
        "a NOOP has no LNet header"
    );

    assert_eq!(n(put_row, "tcp.srcport"), Some(988));
    assert_eq!(n(put_row, "lnet.ksm_type"), Some(0xc1));
    assert_eq!(n(put_row, "lnet.ib_csum"), Some(u64::from(put_csum)));
    assert_eq!(n(put_row, "lnet.msg_type"), Some(1));
    assert_eq!(n(put_row, "lnet.payload_length"), Some(40));
    assert_eq!(
        pids(put_row),
        (Some(u64::from(PID_B)), Some(u64::from(PID_A)))
    );
    assert_eq!(n(put_row, "lnet.msg_hdr_data"), Some(0x0123_4567_89ab_cdef));
    assert_eq!(n(put_row, "lnet.ptl_index"), Some(52));
    assert_eq!(
        n(put_row, "lnet.msg_dst_match_bits"),
        Some(0x62f0_0000_0000_000d)
    );
    assert_eq!(n(put_row, "lnet.msg_dst_interface_cookie"), Some(u64::MAX));
    assert_eq!(n(put_row, "lnet.msg_dst_object_cookie"), Some(u64::MAX));
    assert_eq!(get(put_row, "lnet.nid.addr"), "192.168.0.2;192.168.0.1");
}

#[test]
fn synthetic_capture_reads_back_with_our_own_stack() {
    // The same capture through our pcap reader, reassembly and decoders: the frames we wrote
    // are well-formed enough to be parsed back (checksums, lengths, sequence numbers).
    let (pcap, noop_csum, _) = build_capture();
    let capture = support::pcap::parse(&pcap).unwrap();
    let streams = support::tcp::reassemble(&support::tcp::segments(&capture));
    assert_eq!(streams.len(), 2);
    let active = streams.iter().find(|s| s.key.dst.port == 988).unwrap();
    assert!(active.syn_seen && active.holes.is_empty());
    let (req, e) = ConnReq::decode(&active.data).unwrap();
    assert_eq!((req, e), (ConnReq::new(A), Endian::Little));
    let (hello, _, n) = Hello::decode(&active.data[16..]).unwrap();
    assert_eq!(hello.ctype, ConnType::Control);
    let noop_at = 16 + n + 96;
    let noop = KsockHdr::decode(&active.data[noop_at..], e).unwrap();
    assert_eq!(noop.msg_type, KsockMsgType::Noop);
    assert_eq!(noop.csum, noop_csum);
    assert_eq!(noop.compute_csum_v2(e, &[]), noop_csum);
    assert_eq!(active.data.len(), noop_at + 24);
    for record in &capture.records {
        let seg = support::tcp::parse_segment(capture.linktype, record.index, &record.data);
        assert!(seg.is_some());
        // IPv4 header checksum verifies (sums to zero with the checksum included).
        let ip = &record.data[14..34];
        assert_eq!(support::tcp::internet_checksum(&[ip]), 0);
    }
}
