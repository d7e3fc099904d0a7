//! IPv4/TCP: pulling segments out of captured frames, reassembling each direction of each
//! connection into its byte stream, and building frames for synthetic captures.

use std::collections::BTreeMap;
use std::fmt;

use super::pcap::{
    Capture, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;

/// One endpoint: IPv4 address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: [u8; 4],
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

/// One direction of one TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src: Endpoint,
    pub dst: Endpoint,
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)
    }
}

/// A TCP segment as captured.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Index of the frame in the capture (0-based).
    pub frame: usize,
    pub key: FlowKey,
    pub seq: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
}

/// Extracts the IPv4 packet from a frame of the given link type.
fn ipv4_packet(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
            let mut off = 14;
            while ethertype == ETHERTYPE_VLAN {
                ethertype = u16::from_be_bytes(frame.get(off + 2..off + 4)?.try_into().ok()?);
                off += 4;
            }
            (ethertype == ETHERTYPE_IPV4).then(|| frame.get(off..))?
        }
        LINKTYPE_LINUX_SLL => {
            let proto = u16::from_be_bytes(frame.get(14..16)?.try_into().ok()?);
            (proto == ETHERTYPE_IPV4).then(|| frame.get(16..))?
        }
        LINKTYPE_LINUX_SLL2 => {
            let proto = u16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
            (proto == ETHERTYPE_IPV4).then(|| frame.get(20..))?
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 => Some(frame),
        _ => None,
    }
}

/// Parses an IPv4/TCP frame; `None` for anything else (IPv6, ARP, UDP, fragments).
pub fn parse_segment(linktype: u32, index: usize, frame: &[u8]) -> Option<Segment> {
    let ip = ipv4_packet(linktype, frame)?;
    let ver_ihl = *ip.first()?;
    if ver_ihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    // Total length, not the frame length: Ethernet pads short frames.
    let total = usize::from(u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?));
    let frag = u16::from_be_bytes(ip.get(6..8)?.try_into().ok()?);
    if frag & 0x3fff != 0 || *ip.get(9)? != IPPROTO_TCP || total < ihl {
        return None;
    }
    let src_ip: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst_ip: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    let tcp = ip.get(ihl..total)?;
    let src_port = u16::from_be_bytes(tcp.get(0..2)?.try_into().ok()?);
    let dst_port = u16::from_be_bytes(tcp.get(2..4)?.try_into().ok()?);
    let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    let data_off = usize::from(*tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    let payload = tcp.get(data_off..)?.to_vec();
    Some(Segment {
        frame: index,
        key: FlowKey {
            src: Endpoint {
                ip: src_ip,
                port: src_port,
            },
            dst: Endpoint {
                ip: dst_ip,
                port: dst_port,
            },
        },
        seq,
        flags,
        payload,
    })
}

/// All IPv4/TCP segments of a capture, in capture order.
pub fn segments(capture: &Capture) -> Vec<Segment> {
    capture
        .records
        .iter()
        .filter_map(|r| parse_segment(capture.linktype, r.index, &r.data))
        .collect()
}

/// One direction of a connection, reassembled.
#[derive(Clone, Debug)]
pub struct Stream {
    pub key: FlowKey,
    /// True if the SYN was captured, i.e. `data` starts at the first byte of the connection.
    pub syn_seen: bool,
    /// Frame index of the first segment (SYN or data) seen in this direction.
    pub first_frame: usize,
    /// The stream bytes from the lowest captured sequence number on.
    pub data: Vec<u8>,
    /// Offsets into `data` where captured segments started (sorted, unique): where a sender's
    /// write is likely to have begun, used to find message boundaries in a mid-stream capture.
    pub segment_starts: Vec<usize>,
    /// Byte ranges of `data` that no segment covered (lost before capture).
    pub holes: Vec<std::ops::Range<usize>>,
    /// Segments that repeated bytes already seen (retransmissions).
    pub retransmissions: usize,
    /// Retransmitted bytes that differed from the first copy (should be none).
    pub conflicting_bytes: usize,
}

/// Reassembles every direction of every connection in `segments`.
///
/// Sequence numbers are taken relative to the SYN if it was captured, else to the lowest
/// sequence number seen (computed with wrapping arithmetic relative to the first segment, so a
/// capture across a sequence-number wrap still orders correctly). Each payload is written at
/// its offset; a byte covered twice (retransmission) keeps its first value and differences are
/// counted. Uncovered ranges are reported as holes.
pub fn reassemble(segments: &[Segment]) -> Vec<Stream> {
    let mut by_key: BTreeMap<FlowKey, Vec<&Segment>> = BTreeMap::new();
    for s in segments {
        by_key.entry(s.key).or_default().push(s);
    }
    let mut streams: Vec<Stream> = by_key
        .into_iter()
        .map(|(key, segs)| reassemble_one(key, &segs))
        .collect();
    streams.sort_by_key(|s| s.first_frame);
    streams
}

fn reassemble_one(key: FlowKey, segs: &[&Segment]) -> Stream {
    let anchor = segs[0].seq;
    let rel = |seq: u32| i64::from(seq.wrapping_sub(anchor) as i32);
    let syn = segs.iter().find(|s| s.flags & TCP_SYN != 0);
    // The first data byte: one past the SYN's sequence number, else the lowest data sequence.
    let base = match syn {
        Some(s) => rel(s.seq) + 1,
        None => segs
            .iter()
            .filter(|s| !s.payload.is_empty())
            .map(|s| rel(s.seq))
            .min()
            .unwrap_or(0),
    };
    let end = segs
        .iter()
        .map(|s| rel(s.seq) + s.payload.len() as i64)
        .max()
        .unwrap_or(base)
        .max(base);
    let len = (end - base) as usize;
    let mut data = vec![0u8; len];
    let mut covered = vec![false; len];
    let mut segment_starts = Vec::new();
    let mut retransmissions = 0;
    let mut conflicting_bytes = 0;
    for s in segs.iter().filter(|s| !s.payload.is_empty()) {
        let start = rel(s.seq) - base;
        let mut repeated = false;
        for (i, &b) in s.payload.iter().enumerate() {
            let at = start + i as i64;
            if at < 0 {
                // Before the SYN's next byte: cannot happen for a well-formed capture.
                conflicting_bytes += 1;
                continue;
            }
            let at = at as usize;
            if covered[at] {
                repeated = true;
                if data[at] != b {
                    conflicting_bytes += 1;
                }
            } else {
                covered[at] = true;
                data[at] = b;
            }
        }
        if repeated {
            retransmissions += 1;
        }
        if start >= 0 {
            segment_starts.push(start as usize);
        }
    }
    segment_starts.sort_unstable();
    segment_starts.dedup();
    let mut holes = Vec::new();
    let mut i = 0;
    while i < len {
        if covered[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < len && !covered[i] {
            i += 1;
        }
        holes.push(start..i);
    }
    Stream {
        key,
        syn_seen: syn.is_some(),
        first_frame: segs[0].frame,
        data,
        segment_starts,
        holes,
        retransmissions,
        conflicting_bytes,
    }
}

/// The Internet checksum (RFC 1071) over `parts` concatenated.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds one Ethernet/IPv4/TCP frame with valid IP and TCP checksums.
pub fn build_frame(
    key: FlowKey,
    seq: u32,
    ack: u32,
    flags: u8,
    ip_id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mac = |ip: [u8; 4]| [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]];
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&key.src.port.to_be_bytes());
    tcp.extend_from_slice(&key.dst.port.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(5 << 4); // 20-byte header, no options
    tcp.push(flags);
    tcp.extend_from_slice(&64_240u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(payload);
    let tcp_len = tcp.len() as u16;
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&key.src.ip);
    pseudo.extend_from_slice(&key.dst.ip);
    pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
    pseudo.extend_from_slice(&tcp_len.to_be_bytes());
    let csum = internet_checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&csum.to_be_bytes());

    let mut ip = Vec::with_capacity(20);
    ip.push(0x45);
    ip.push(0);
    ip.extend_from_slice(&(20 + tcp_len).to_be_bytes());
    ip.extend_from_slice(&ip_id.to_be_bytes());
    ip.extend_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip.push(64); // TTL
    ip.push(IPPROTO_TCP);
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(&key.src.ip);
    ip.extend_from_slice(&key.dst.ip);
    let ip_csum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + ip.len() + tcp.len());
    frame.extend_from_slice(&mac(key.dst.ip));
    frame.extend_from_slice(&mac(key.src.ip));
    frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

/// A synthetic TCP connection: tracks sequence numbers in both directions and emits frames
/// (three-way handshake first) into a pcap writer.
pub struct Connection {
    pub client: Endpoint,
    pub server: Endpoint,
    client_seq: u32,
    server_seq: u32,
    ip_id: u16,
}

impl Connection {
    pub fn new(client: Endpoint, server: Endpoint) -> Connection {
        Connection {
            client,
            server,
            client_seq: 0x1000_0000,
            server_seq: 0x2000_0000,
            ip_id: 1,
        }
    }

    fn key(&self, from_client: bool) -> FlowKey {
        if from_client {
            FlowKey {
                src: self.client,
                dst: self.server,
            }
        } else {
            FlowKey {
                src: self.server,
                dst: self.client,
            }
        }
    }

    fn frame(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let key = self.key(from_client);
        let (seq, ack) = if from_client {
            (self.client_seq, self.server_seq)
        } else {
            (self.server_seq, self.client_seq)
        };
        let frame = build_frame(key, seq, ack, flags, self.ip_id, payload);
        self.ip_id = self.ip_id.wrapping_add(1);
        let advance = payload.len() as u32 + u32::from(flags & (TCP_SYN | TCP_FIN) != 0);
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(advance);
        } else {
            self.server_seq = self.server_seq.wrapping_add(advance);
        }
        frame
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Vec<Vec<u8>> {
        vec![
            self.frame(true, TCP_SYN, &[]),
            self.frame(false, TCP_SYN | TCP_ACK, &[]),
            self.frame(true, TCP_ACK, &[]),
        ]
    }

    /// One data segment carrying `payload`.
    pub fn send(&mut self, from_client: bool, payload: &[u8]) -> Vec<u8> {
        self.frame(from_client, TCP_PSH | TCP_ACK, payload)
    }
}
