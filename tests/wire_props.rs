//! Property tests for the wire layer with a small deterministic PRNG (xorshift64*), so every
//! run explores the same cases and a failure names its seed and iteration.
//!
//! - encode → decode gives back the value (and the byte order and length) for every structure;
//! - every proper prefix of an encoding decodes as `Short` with a `need` a streaming reader can
//!   wait for (larger than what it has, never beyond the whole structure);
//! - decoding arbitrary or mutated bytes never panics, and whatever decodes re-encodes to a
//!   canonical form that decodes to the same value;
//! - NIDs and process ids survive `Display` → `FromStr`, and parsing arbitrary text never panics.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use tdinal::wire::csum::{crc32_le, CRC32_SEED};
use tdinal::wire::hello::{probe, MAX_INTERFACES};
use tdinal::wire::lnet;
use tdinal::wire::nid::{lnd, lnd_name, LNET_PID_ANY, LNET_PID_USERFLAG};
use tdinal::wire::ping::{encode_ping_info, NiStatus, PingInfo};
use tdinal::wire::{
    classify_first_word, ConnReq, ConnType, Endian, Hello, IpList, KsockHdr, KsockMsgType, LnetHdr,
    LnetMsg, Net, Nid, ProcessId, ProtoVersion, WireError, WireHandle,
};

const ITERATIONS: usize = 20_000;

/// xorshift64* (Vigna): tiny, fast, good enough to drive tests.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    /// Mostly boundary values, sometimes anything.
    fn u64_interesting(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => self.below(16),
            _ => self.next(),
        }
    }
    fn u32_interesting(&mut self) -> u32 {
        match self.below(6) {
            0 => 0,
            1 => u32::MAX,
            2 => self.below(16) as u32,
            _ => self.u32(),
        }
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn endian(&mut self) -> Endian {
        if self.bool() {
            Endian::Little
        } else {
            Endian::Big
        }
    }
}

fn nid(r: &mut Rng) -> Nid {
    match r.below(4) {
        0 => Nid(r.next()),
        1 => Nid::LO_0,
        2 => Nid::new(Net::new(lnd::SOCKLND, r.below(3) as u16), r.u32()),
        _ => Nid::new(Net::new(r.below(32) as u8, r.next() as u16), r.u32()),
    }
}

fn handle(r: &mut Rng) -> WireHandle {
    if r.below(4) == 0 {
        WireHandle::NONE
    } else {
        WireHandle {
            interface_cookie: r.u64_interesting(),
            object_cookie: r.u64_interesting(),
        }
    }
}

fn lnet_hdr(r: &mut Rng) -> LnetHdr {
    let msg = match r.below(5) {
        0 => LnetMsg::Ack {
            dst_wmd: handle(r),
            match_bits: r.u64_interesting(),
            mlength: r.u32_interesting(),
        },
        1 => LnetMsg::Put {
            ack_wmd: handle(r),
            match_bits: r.u64_interesting(),
            hdr_data: r.u64_interesting(),
            ptl_index: r.u32_interesting(),
            offset: r.u32_interesting(),
        },
        2 => LnetMsg::Get {
            return_wmd: handle(r),
            match_bits: r.u64_interesting(),
            ptl_index: r.u32_interesting(),
            src_offset: r.u32_interesting(),
            sink_length: r.u32_interesting(),
        },
        3 => LnetMsg::Reply { dst_wmd: handle(r) },
        _ => LnetMsg::Hello {
            incarnation: r.u64_interesting(),
            conn_type: r.u32_interesting(),
        },
    };
    LnetHdr {
        dest_nid: nid(r),
        src_nid: nid(r),
        dest_pid: r.u32_interesting(),
        src_pid: r.u32_interesting(),
        payload_length: r.u32_interesting(),
        msg,
    }
}

fn ip_list(r: &mut Rng) -> IpList {
    let n = r.below(MAX_INTERFACES as u64 + 1) as usize;
    let ips: Vec<u32> = (0..n).map(|_| r.u32().max(1)).collect();
    IpList::from_slice(&ips).unwrap()
}

fn hello(r: &mut Rng) -> Hello {
    let version = r.pick(&[ProtoVersion::V1, ProtoVersion::V2, ProtoVersion::V3]);
    let mut src_nid = nid(r);
    if src_nid == Nid::ANY {
        src_nid = Nid::LO_0;
    }
    let v1 = version == ProtoVersion::V1;
    Hello {
        version,
        src_nid,
        // V1 has no dst_nid / dst_incarnation fields: they decode as 0.
        dst_nid: if v1 { Nid(0) } else { nid(r) },
        src_pid: r.u32_interesting(),
        dst_pid: r.u32_interesting(),
        src_incarnation: r.u64_interesting(),
        dst_incarnation: if v1 { 0 } else { r.u64_interesting() },
        ctype: r.pick(&[
            ConnType::None,
            ConnType::Any,
            ConnType::Control,
            ConnType::BulkIn,
            ConnType::BulkOut,
        ]),
        ips: ip_list(r),
    }
}

fn ksock_hdr(r: &mut Rng) -> KsockHdr {
    KsockHdr {
        msg_type: if r.bool() {
            KsockMsgType::Noop
        } else {
            KsockMsgType::Lnet
        },
        csum: r.u32_interesting(),
        zc_cookies: [r.u64_interesting(), r.u64_interesting()],
    }
}

fn ni_status(r: &mut Rng) -> NiStatus {
    NiStatus {
        nid: nid(r),
        status: r.u32_interesting(),
        msg_size: r.u32_interesting(),
    }
}

/// Checks the `Short` contract on every proper prefix of a valid encoding.
fn check_prefixes<T: std::fmt::Debug>(
    bytes: &[u8],
    allowed_needs: &[usize],
    decode: impl Fn(&[u8]) -> Result<T, WireError>,
) {
    for len in 0..bytes.len() {
        match decode(&bytes[..len]) {
            Err(WireError::Short { need, have }) => {
                assert_eq!(have, len);
                assert!(need > len && need <= bytes.len(), "need {need} at {len}");
                assert!(
                    allowed_needs.contains(&need),
                    "need {need} not in {allowed_needs:?}"
                );
            }
            other => panic!("prefix {len} of {bytes:02x?}: {other:?}"),
        }
    }
}

#[test]
fn lnet_hdr_round_trip() {
    let mut r = Rng::new(0x11);
    for i in 0..ITERATIONS {
        let h = lnet_hdr(&mut r);
        let bytes = h.to_bytes();
        assert_eq!(LnetHdr::decode(&bytes), Ok(h), "iteration {i}");
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&r.bytes(8));
        assert_eq!(LnetHdr::decode(&longer), Ok(h));
        if i % 64 == 0 {
            check_prefixes(&bytes, &[72], LnetHdr::decode);
        }
    }
}

#[test]
fn connreq_round_trip() {
    let mut r = Rng::new(0x22);
    for _ in 0..ITERATIONS {
        let req = ConnReq::new(nid(&mut r));
        let e = r.endian();
        let bytes = req.to_bytes(e);
        assert_eq!(ConnReq::decode(&bytes), Ok((req, e)));
        check_prefixes(&bytes, &[4, 8, 16], ConnReq::decode);
    }
}

#[test]
fn hello_round_trip() {
    let mut r = Rng::new(0x33);
    for i in 0..ITERATIONS {
        let h = hello(&mut r);
        let e = r.endian();
        let mut out = vec![0u8; h.wire_len() + 4];
        let n = h.encode(e, &mut out).unwrap();
        assert_eq!(n, h.wire_len());
        let want_endian = if h.version == ProtoVersion::V1 {
            Endian::Little
        } else {
            e
        };
        assert_eq!(
            Hello::decode(&out),
            Ok((h, want_endian, n)),
            "iteration {i}"
        );
        let fixed = h.version.hello_size();
        check_prefixes(&out[..n], &[8, fixed, n], Hello::decode);
        let mut small = vec![0u8; n - 1];
        assert_eq!(
            h.encode(e, &mut small),
            Err(WireError::Short {
                need: n,
                have: n - 1
            })
        );
    }
}

#[test]
fn ksock_hdr_round_trip() {
    let mut r = Rng::new(0x44);
    for _ in 0..ITERATIONS {
        let h = ksock_hdr(&mut r);
        let e = r.endian();
        let bytes = h.to_bytes(e);
        assert_eq!(KsockHdr::decode(&bytes, e), Ok(h));
        check_prefixes(&bytes, &[24], |b| KsockHdr::decode(b, e));
    }
}

#[test]
fn ping_info_round_trip() {
    let mut r = Rng::new(0x55);
    for _ in 0..ITERATIONS / 4 {
        let entries: Vec<NiStatus> = (0..r.below(9)).map(|_| ni_status(&mut r)).collect();
        let e = r.endian();
        let (features, pid) = (r.u32_interesting(), r.u32_interesting());
        let mut out = vec![0u8; 16 + 16 * entries.len()];
        let n = encode_ping_info(e, features, pid, &entries, &mut out).unwrap();
        assert_eq!(n, out.len());
        let info = PingInfo::decode(&out).unwrap();
        assert_eq!(
            (info.endian, info.features, info.pid, info.nnis),
            (e, features, pid, entries.len() as u32)
        );
        assert_eq!(info.entries().collect::<Vec<_>>(), entries);
        // Any truncation keeps the whole entries that remain.
        let cut = r.below(n as u64 + 1) as usize;
        match PingInfo::decode(&out[..cut]) {
            Ok(t) => {
                assert!(cut >= 16);
                assert_eq!(t.entries_present(), (cut - 16) / 16);
                assert!(t
                    .entries()
                    .eq(entries.iter().copied().take((cut - 16) / 16)));
            }
            Err(err) => assert_eq!(
                err,
                WireError::Short {
                    need: 16,
                    have: cut
                }
            ),
        }
    }
}

/// Runs every decoder on `bytes`; whatever decodes must re-encode to bytes that decode to the
/// same value, and re-encoding those gives the same bytes again (a canonical fixpoint).
fn decode_everything(bytes: &[u8]) {
    if let Ok(h) = LnetHdr::decode(bytes) {
        let again = h.to_bytes();
        assert_eq!(LnetHdr::decode(&again), Ok(h));
        let _ = h.validate();
        // Only the type's unused bytes may differ from the input, and they are zero.
        let used = match h.msg {
            LnetMsg::Ack { .. } => lnet::END_ACK,
            LnetMsg::Put { .. } => lnet::END_PUT,
            LnetMsg::Get { .. } => lnet::END_GET,
            LnetMsg::Reply { .. } => lnet::END_REPLY,
            LnetMsg::Hello { .. } => lnet::END_HELLO,
        };
        assert_eq!(&again[..used], &bytes[..used]);
        assert!(again[used..].iter().all(|&b| b == 0));
    }
    if let Ok((req, e)) = ConnReq::decode(bytes) {
        assert_eq!(&req.to_bytes(e)[..], &bytes[..16]);
    }
    if let Ok((h, e, n)) = Hello::decode(bytes) {
        assert_eq!(n, h.wire_len());
        let mut out = vec![0u8; n];
        assert_eq!(h.encode(e, &mut out), Ok(n));
        assert_eq!(Hello::decode(&out), Ok((h, e, n)));
        if h.version != ProtoVersion::V1 {
            // V2/V3 have no unused bytes: the encoding is exactly the input.
            assert_eq!(&out[..], &bytes[..n]);
        }
    }
    let _ = probe(bytes);
    for e in [Endian::Little, Endian::Big] {
        if let Ok(h) = KsockHdr::decode(bytes, e) {
            assert_eq!(&h.to_bytes(e)[..], &bytes[..24]);
        }
    }
    if let Ok(info) = PingInfo::decode(bytes) {
        let entries: Vec<_> = info.entries().collect();
        assert_eq!(entries.len(), info.entries_present());
        let mut out = vec![0u8; info.wire_len()];
        encode_ping_info(info.endian, info.features, info.pid, &entries, &mut out).unwrap();
        let again = PingInfo::decode(&out).unwrap();
        assert!(again.entries().eq(entries.iter().copied()));
        if !info.is_truncated() {
            assert_eq!(&out[..], &bytes[..out.len()]);
        }
    }
    if let Some(first) = bytes.get(..4) {
        let _ = classify_first_word(first.try_into().unwrap());
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut r = Rng::new(0x66);
    for _ in 0..ITERATIONS * 2 {
        let len = r.below(200) as usize;
        let mut bytes = r.bytes(len);
        // Steer a fraction of inputs past the magic checks.
        if len >= 8 && r.below(3) == 0 {
            let magics: [[u8; 4]; 6] = [
                [0x63, 0x69, 0x72, 0x45],
                [0x45, 0x72, 0x69, 0x63],
                [0xed, 0x0d, 0xbc, 0xee],
                [0x00, 0x71, 0xce, 0xac],
                [0x67, 0x6e, 0x69, 0x70],
                [0xc0, 0, 0, 0],
            ];
            bytes[..4].copy_from_slice(&r.pick(&magics));
            bytes[4..8].copy_from_slice(&(r.below(5) as u32).to_le_bytes());
        }
        decode_everything(&bytes);
    }
}

#[test]
fn mutated_valid_encodings_never_panic() {
    let mut r = Rng::new(0x77);
    for _ in 0..ITERATIONS {
        let mut bytes = match r.below(5) {
            0 => lnet_hdr(&mut r).to_bytes().to_vec(),
            1 => ConnReq::new(nid(&mut r)).to_bytes(r.endian()).to_vec(),
            2 => {
                let h = hello(&mut r);
                let mut out = vec![0u8; h.wire_len()];
                h.encode(r.endian(), &mut out).unwrap();
                out
            }
            3 => ksock_hdr(&mut r).to_bytes(r.endian()).to_vec(),
            _ => {
                let entries: Vec<NiStatus> = (0..r.below(4)).map(|_| ni_status(&mut r)).collect();
                let mut out = vec![0u8; 16 + 16 * entries.len()];
                encode_ping_info(r.endian(), r.u32(), r.u32(), &entries, &mut out).unwrap();
                out
            }
        };
        for _ in 0..=r.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = r.below(bytes.len() as u64) as usize;
            bytes[at] = match r.below(3) {
                0 => r.next() as u8,
                1 => bytes[at] ^ (1 << r.below(8)),
                _ => 0xff,
            };
        }
        match r.below(4) {
            0 => bytes.truncate(r.below(bytes.len() as u64 + 1) as usize),
            1 => {
                let n = r.below(80) as usize;
                let extra = r.bytes(n);
                bytes.extend_from_slice(&extra);
            }
            _ => {}
        }
        decode_everything(&bytes);
    }
}

fn printable_nid(r: &mut Rng) -> Nid {
    // Top byte 0 (spec §1.2); loopback only as 0@lo; any other LND with any net number.
    match r.below(4) {
        0 => Nid::LO_0,
        1 => Nid::new(Net::new(lnd::SOCKLND, r.below(3) as u16), r.u32()),
        _ => loop {
            let t = r.below(40) as u8;
            if t != lnd::LOLND {
                break Nid::new(Net::new(t, r.next() as u16), r.u32());
            }
        },
    }
}

#[test]
fn nid_strings_round_trip() {
    let mut r = Rng::new(0x88);
    for _ in 0..ITERATIONS {
        let n = printable_nid(&mut r);
        let text = n.to_string();
        assert_eq!(text.parse::<Nid>(), Ok(n), "{text}");
        assert_eq!(n.net().to_string().parse::<Net>(), Ok(n.net()));
        if lnd_name(n.lnd()).is_none() {
            assert!(text.contains("@<"), "{text}");
        }
        let pid = match r.below(4) {
            0 => LNET_PID_ANY,
            1 => LNET_PID_USERFLAG | r.below(65536) as u32,
            2 => 12345,
            _ => r.u32(),
        };
        let id = ProcessId::new(n, pid);
        assert_eq!(id.to_string().parse::<ProcessId>(), Ok(id), "{id}");
    }
    assert_eq!(Nid::ANY.to_string().parse::<Nid>(), Ok(Nid::ANY));
}

#[test]
fn arbitrary_strings_never_panic() {
    let mut r = Rng::new(0x99);
    let alphabet = b"0123456789abcdefxX.@<>:-U*? tcplo2ibgnmfLNET_PID_ANY\xc3\xa9";
    for _ in 0..ITERATIONS * 2 {
        let len = r.below(40) as usize;
        let raw: Vec<u8> = (0..len).map(|_| r.pick(alphabet)).collect();
        let text = String::from_utf8_lossy(&raw);
        if let Ok(n) = text.parse::<Nid>() {
            // Whatever parses prints as something that parses to the same NID.
            assert_eq!(n.to_string().parse::<Nid>(), Ok(n), "{text:?}");
        }
        if let Ok(id) = text.parse::<ProcessId>() {
            assert_eq!(id.to_string().parse::<ProcessId>(), Ok(id), "{text:?}");
        }
        let _ = text.parse::<Net>();
    }
}

#[test]
fn crc_is_incremental() {
    let mut r = Rng::new(0xaa);
    for _ in 0..2_000 {
        let n = r.below(300) as usize;
        let data = r.bytes(n);
        let split = r.below(data.len() as u64 + 1) as usize;
        let (a, b) = data.split_at(split);
        assert_eq!(
            crc32_le(crc32_le(CRC32_SEED, a), b),
            crc32_le(CRC32_SEED, &data)
        );
    }
}
