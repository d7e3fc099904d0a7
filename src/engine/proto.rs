//! One table of behaviour per socklnd protocol version, as ksocklnd's `socklnd_proto.c` has:
//! framing, which connection a message may use, how ZC-ACKs are queued, keepalives, checksums.

use crate::wire::{ConnType, ProtoVersion};

/// How well a connection suits a message (ksocklnd's `SOCKNAL_MATCH_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    No,
    May,
    Yes,
}

/// How ZC-ACKs are queued on the connection that carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZcAckStyle {
    /// V1: there is no ksock header, hence no zero-copy cookies at all.
    None,
    /// V2: one cookie per message; piggybacked on the first queued LNet message that has none,
    /// else a NOOP that a later LNet message takes over (with its queue position).
    Piggyback,
    /// V3: non-blocking ACKs go in NOOPs on the BULK_IN connection; a queued NOOP absorbs more
    /// cookies as a pair or a contiguous range.
    MergeNoops,
}

/// What a message looks like to the connection matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgShape {
    /// Bytes on the wire: payload + 72 (+ 24 on V2/V3); a NOOP counts 24.
    pub nob: u32,
    /// A NOOP (ZC-ACK or keepalive) rather than an LNet message.
    pub noop: bool,
    /// A non-blocking ZC-ACK/keepalive (V3: must travel on the BULK_IN connection).
    pub nonblk: bool,
}

/// The behaviour of one protocol version.
#[derive(Debug)]
pub struct Protocol {
    pub version: ProtoVersion,
    /// A 24-byte ksock header precedes every message (V2, V3).
    pub ksock_header: bool,
    pub zc_ack: ZcAckStyle,
    /// Keepalive NOOPs with cookie 1 exist (V3).
    pub keepalive: bool,
    /// Checksums are generated when `enable_csum` is set (V2 only).
    pub generates_csum: bool,
    /// A received checksum covers the ksock header and LNet header too (V2), not just payload.
    pub csum_covers_headers: bool,
    /// Which connection types a message may use.
    pub match_conn: fn(ConnType, MsgShape, u32) -> Match,
}

fn match_v1_v2(ctype: ConnType, m: MsgShape, min_bulk: u32) -> Match {
    match ctype {
        ConnType::Any => Match::Yes,
        ConnType::Control if m.nob < min_bulk => Match::Yes,
        ConnType::BulkOut if m.nob >= min_bulk => Match::Yes,
        ConnType::Control | ConnType::BulkOut | ConnType::BulkIn => Match::May,
        ConnType::None => Match::No,
    }
}

fn match_v3(ctype: ConnType, m: MsgShape, min_bulk: u32) -> Match {
    match ctype {
        ConnType::Any | ConnType::None => Match::No,
        ConnType::Control | ConnType::BulkOut if m.nonblk => Match::No,
        ConnType::Control if m.nob < min_bulk => Match::Yes,
        ConnType::BulkOut if m.nob >= min_bulk => Match::Yes,
        ConnType::Control | ConnType::BulkOut => Match::May,
        ConnType::BulkIn if m.nonblk => Match::Yes,
        ConnType::BulkIn if m.noop => Match::May,
        ConnType::BulkIn => Match::No,
    }
}

pub static PROTO_V1: Protocol = Protocol {
    version: ProtoVersion::V1,
    ksock_header: false,
    zc_ack: ZcAckStyle::None,
    keepalive: false,
    generates_csum: false,
    csum_covers_headers: false,
    match_conn: match_v1_v2,
};

pub static PROTO_V2: Protocol = Protocol {
    version: ProtoVersion::V2,
    ksock_header: true,
    zc_ack: ZcAckStyle::Piggyback,
    keepalive: false,
    generates_csum: true,
    csum_covers_headers: true,
    match_conn: match_v1_v2,
};

pub static PROTO_V3: Protocol = Protocol {
    version: ProtoVersion::V3,
    ksock_header: true,
    zc_ack: ZcAckStyle::MergeNoops,
    keepalive: true,
    generates_csum: false,
    csum_covers_headers: false,
    match_conn: match_v3,
};

/// The table for `version`.
pub fn protocol(version: ProtoVersion) -> &'static Protocol {
    match version {
        ProtoVersion::V1 => &PROTO_V1,
        ProtoVersion::V2 => &PROTO_V2,
        ProtoVersion::V3 => &PROTO_V3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: MsgShape = MsgShape {
        nob: 96,
        noop: false,
        nonblk: false,
    };
    const BIG: MsgShape = MsgShape {
        nob: 4096,
        noop: false,
        nonblk: false,
    };
    const ACK: MsgShape = MsgShape {
        nob: 24,
        noop: true,
        nonblk: true,
    };

    #[test]
    fn v3_never_sends_lnet_on_bulk_in_and_acks_only_there() {
        let m = PROTO_V3.match_conn;
        assert_eq!(m(ConnType::BulkIn, SMALL, 1024), Match::No);
        assert_eq!(m(ConnType::BulkIn, BIG, 1024), Match::No);
        assert_eq!(m(ConnType::BulkIn, ACK, 1024), Match::Yes);
        assert_eq!(m(ConnType::Control, ACK, 1024), Match::No);
        assert_eq!(m(ConnType::BulkOut, ACK, 1024), Match::No);
        assert_eq!(m(ConnType::Any, SMALL, 1024), Match::No);
    }

    #[test]
    fn size_picks_control_or_bulk_out() {
        for p in [&PROTO_V1, &PROTO_V2, &PROTO_V3] {
            let m = p.match_conn;
            assert_eq!(m(ConnType::Control, SMALL, 1024), Match::Yes);
            assert_eq!(m(ConnType::Control, BIG, 1024), Match::May);
            assert_eq!(m(ConnType::BulkOut, BIG, 1024), Match::Yes);
            assert_eq!(m(ConnType::BulkOut, SMALL, 1024), Match::May);
        }
        assert_eq!((PROTO_V2.match_conn)(ConnType::Any, BIG, 1024), Match::Yes);
        assert_eq!(
            (PROTO_V2.match_conn)(ConnType::BulkIn, SMALL, 1024),
            Match::May
        );
    }
}
