//! A connection's transmit queue: messages waiting to be written, their headers packed at first
//! transmission (when the checksum is computed and no ACK can be folded in any more), ZC-ACK
//! piggybacking, and the slices a runtime writes straight from the callers' buffers.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::payload::TxPayload;
use super::proto::{Protocol, ZcAckStyle};
use super::types::TxId;
use super::zc;
use crate::wire::csum::{crc32_le, CRC32_SEED};
use crate::wire::ksock::KSOCK_HDR_SIZE;
use crate::wire::lnet::LNET_HDR_SIZE;
use crate::wire::{Endian, KsockHdr, LnetHdr};

/// Largest packed head: ksock header + LNet header.
pub const MAX_HEAD: usize = KSOCK_HDR_SIZE + LNET_HDR_SIZE;

/// What a queued transmission is.
pub enum TxKind<P> {
    /// Handshake bytes (connreq and/or hello), written as they are.
    Raw(Vec<u8>),
    /// A ksock NOOP (ZC-ACKs or keepalive), V2/V3 only.
    Noop,
    /// An LNet message from the upper layer.
    Lnet {
        id: TxId,
        hdr: LnetHdr,
        payload: Option<P>,
    },
}

/// One queued transmission.
pub struct Tx<P> {
    pub kind: TxKind<P>,
    /// Cookies and checksum; mutable until the transmission starts.
    pub ksock: KsockHdr,
    /// A V3 NOOP that may still absorb ACKs.
    pub carrier: bool,
    /// Packed framing (ksock header and/or LNet header), valid once `started`.
    head: [u8; MAX_HEAD],
    head_len: u8,
    pub started: bool,
    /// Bytes the runtime has confirmed written.
    pub committed: usize,
    /// Bytes on the wire under the connection's protocol ([`Tx::wire_len`]), fixed when the
    /// transmission is queued (the queue's walks read it instead of recomputing it).
    wire: usize,
    /// A zero-copy send whose ZC-ACK arrived before its last bytes were confirmed written.
    pub acked: bool,
}

impl<P: TxPayload> Tx<P> {
    pub fn new_raw(bytes: Vec<u8>) -> Tx<P> {
        Tx::new(TxKind::Raw(bytes))
    }
    pub fn new_noop(ack: u64) -> Tx<P> {
        let mut tx = Tx::new(TxKind::Noop);
        tx.ksock = KsockHdr::noop(ack);
        tx.carrier = true;
        tx
    }
    pub fn new_lnet(id: TxId, hdr: LnetHdr, payload: Option<P>) -> Tx<P> {
        Tx::new(TxKind::Lnet { id, hdr, payload })
    }
    /// Reuses a spare box from `pool` for an LNet message (no allocation in the steady state;
    /// the framing area is not cleared: `pack` writes every byte it lends).
    pub fn boxed_lnet(
        pool: &mut TxPool<P>,
        id: TxId,
        hdr: LnetHdr,
        payload: Option<P>,
    ) -> Box<Tx<P>> {
        // The kind is written in place, not passed through a shared helper by value: moving the
        // LNet variant costs about 22 instructions per message (.ci/engine-cost).
        match pool.spare.pop() {
            Some(mut b) => {
                b.kind = TxKind::Lnet { id, hdr, payload };
                b.ksock = KsockHdr::lnet();
                b.reset_progress();
                b
            }
            None => Box::new(Tx::new_lnet(id, hdr, payload)),
        }
    }
    /// A NOOP carrying ZC-ACK `ack` (or the keepalive's cookie) in a spare box from `pool`.
    pub fn boxed_noop(pool: &mut TxPool<P>, ack: u64) -> Box<Tx<P>> {
        match pool.spare.pop() {
            Some(mut b) => {
                b.kind = TxKind::Noop;
                b.ksock = KsockHdr::noop(ack);
                b.reset_progress();
                b.carrier = true;
                b
            }
            None => Box::new(Tx::new_noop(ack)),
        }
    }
    /// A spare box's state back to "queued, nothing framed or written" (the kind and ksock
    /// header are the caller's).
    #[inline(always)]
    fn reset_progress(&mut self) {
        self.carrier = false;
        self.head_len = 0;
        self.started = false;
        self.committed = 0;
        self.wire = 0;
        self.acked = false;
    }
    fn new(kind: TxKind<P>) -> Tx<P> {
        Tx {
            kind,
            ksock: KsockHdr::lnet(),
            carrier: false,
            head: [0; MAX_HEAD],
            head_len: 0,
            started: false,
            committed: 0,
            wire: 0,
            acked: false,
        }
    }

    pub fn is_lnet(&self) -> bool {
        matches!(self.kind, TxKind::Lnet { .. })
    }
    pub fn is_noop(&self) -> bool {
        matches!(self.kind, TxKind::Noop)
    }
    pub fn payload_len(&self) -> usize {
        match &self.kind {
            TxKind::Lnet {
                payload: Some(p), ..
            } => p.len(),
            _ => 0,
        }
    }

    /// Bytes this transmission puts on the wire under `proto`.
    pub fn wire_len(&self, proto: &Protocol) -> usize {
        let ks = if proto.ksock_header {
            KSOCK_HDR_SIZE
        } else {
            0
        };
        match &self.kind {
            TxKind::Raw(b) => b.len(),
            TxKind::Noop => KSOCK_HDR_SIZE,
            TxKind::Lnet { .. } => ks
                .saturating_add(LNET_HDR_SIZE)
                .saturating_add(self.payload_len()),
        }
    }

    /// Packs the framing; called once, when the transmission starts. `csum` asks for a V2
    /// checksum over everything (with `corrupt` adding one to it, for `inject_csum_error`).
    fn pack(&mut self, proto: &Protocol, endian: Endian, csum: bool, corrupt: bool) {
        let mut len = 0usize;
        if let TxKind::Raw(_) = self.kind {
            self.started = true;
            return;
        }
        if proto.ksock_header {
            self.ksock.csum = 0;
            if let Some(dst) = self.head.get_mut(..KSOCK_HDR_SIZE) {
                let _ = self.ksock.encode(endian, dst);
                len = KSOCK_HDR_SIZE;
            }
        }
        if let TxKind::Lnet { hdr, .. } = &self.kind {
            if let Some(dst) = self.head.get_mut(len..len.saturating_add(LNET_HDR_SIZE)) {
                let _ = hdr.encode(dst);
                len = len.saturating_add(LNET_HDR_SIZE);
            }
        }
        if csum && proto.ksock_header {
            let mut crc = crc32_le(CRC32_SEED, self.head.get(..len).unwrap_or(&[]));
            if let TxKind::Lnet {
                payload: Some(p), ..
            } = &self.kind
            {
                for i in 0..p.frag_count() {
                    crc = crc32_le(crc, p.frag(i));
                }
            }
            if corrupt {
                crc = crc.wrapping_add(1);
            }
            self.ksock.csum = crc;
            if let Some(dst) = self.head.get_mut(..KSOCK_HDR_SIZE) {
                let _ = self.ksock.encode(endian, dst);
            }
        }
        self.head_len = len as u8;
        self.started = true;
    }

    /// Pushes the slices of this transmission from byte `skip` on into `out`; returns how many.
    fn slices<'a>(&'a self, mut skip: usize, out: &mut [&'a [u8]]) -> usize {
        let mut n = 0usize;
        let mut push = |s: &'a [u8], skip: &mut usize| {
            if s.len() <= *skip {
                *skip = skip.saturating_sub(s.len());
                return true;
            }
            let Some(slot) = out.get_mut(n) else {
                return false;
            };
            *slot = s.get(*skip..).unwrap_or(&[]);
            *skip = 0;
            n = n.saturating_add(1);
            true
        };
        match &self.kind {
            TxKind::Raw(b) => {
                push(b, &mut skip);
            }
            TxKind::Noop | TxKind::Lnet { payload: None, .. } => {
                push(
                    self.head.get(..self.head_len as usize).unwrap_or(&[]),
                    &mut skip,
                );
            }
            TxKind::Lnet {
                payload: Some(p), ..
            } => {
                if push(
                    self.head.get(..self.head_len as usize).unwrap_or(&[]),
                    &mut skip,
                ) {
                    for i in 0..p.frag_count() {
                        if !push(p.frag(i), &mut skip) {
                            break;
                        }
                    }
                }
            }
        }
        n
    }
}

/// Most spare transmission boxes an engine keeps (about 250 bytes each, so at most 32 KiB).
/// At least a pipelined burst's worth: with 64 PUTs in flight a sender queues up to 64 boxes
/// (and a receiver up to 64 ACKs) before the first is written, and a pool of 32 left half of
/// each burst to the allocator (`docs/performance.md`, change 13).
pub const TX_POOL_MAX: usize = 128;

/// Finished transmissions' boxes, kept for the next messages: one allocation and one free per
/// message less on the hot path (`docs/performance.md`).
pub struct TxPool<P> {
    spare: Vec<Box<Tx<P>>>,
}

impl<P> Default for TxPool<P> {
    fn default() -> Self {
        TxPool { spare: Vec::new() }
    }
}

impl<P> TxPool<P> {
    /// Keeps `tx`'s box for reuse (its payload and raw bytes are dropped now), up to
    /// [`TX_POOL_MAX`].
    pub fn recycle(&mut self, mut tx: Box<Tx<P>>) {
        if self.spare.len() < TX_POOL_MAX {
            tx.kind = TxKind::Noop;
            self.spare.push(tx);
        }
    }
}

/// How transmissions are framed when they start.
pub struct Framing<'c> {
    pub proto: &'static Protocol,
    /// Our byte order for sender-order structures.
    pub endian: Endian,
    /// `enable_csum` (applies where the protocol generates checksums: V2).
    pub csum: bool,
    /// `inject_csum_error`: corrupt the next checksum generated, then clear.
    pub corrupt: &'c mut bool,
}

/// A connection's queue of transmissions. Each one is boxed so that its packed framing stays at
/// one address while the queue grows: a started transmission's bytes may be referenced by an
/// in-flight send (an MDL under a TDI_SEND IRP) until they are committed.
pub struct TxQueue<P> {
    pub q: VecDeque<Box<Tx<P>>>,
    /// Bytes queued and not yet committed.
    pub queued_bytes: u64,
}

impl<P: TxPayload> Default for TxQueue<P> {
    fn default() -> Self {
        TxQueue {
            q: VecDeque::new(),
            queued_bytes: 0,
        }
    }
}

impl<P: TxPayload> TxQueue<P> {
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Queues an LNet message, applying the piggyback rules: on V2 a queued NOOP that carries an
    /// ACK gives its cookie and its place to the message; otherwise it goes to the back.
    pub fn push_lnet(&mut self, mut tx: Box<Tx<P>>, proto: &Protocol) {
        tx.wire = tx.wire_len(proto);
        self.queued_bytes = self.queued_bytes.saturating_add(tx.wire as u64);
        if proto.zc_ack == ZcAckStyle::Piggyback && tx.ksock.zc_cookies[1] == 0 {
            if let Some(pos) = self.q.iter().position(|t| !t.started && t.is_noop()) {
                if let Some(noop) = self.q.get_mut(pos) {
                    tx.ksock.zc_cookies[1] = noop.ksock.zc_cookies[1];
                    let old = core::mem::replace(noop, tx);
                    self.queued_bytes = self.queued_bytes.saturating_sub(old.wire as u64);
                    return;
                }
            }
        }
        self.q.push_back(tx);
    }

    /// Queues raw handshake bytes or a NOOP at the back.
    pub fn push_back(&mut self, mut tx: Box<Tx<P>>, proto: &Protocol) {
        tx.wire = tx.wire_len(proto);
        self.queued_bytes = self.queued_bytes.saturating_add(tx.wire as u64);
        self.q.push_back(tx);
    }

    /// Queues ZC-ACK `cookie` on this connection by the protocol's rules (spec §4.4).
    /// Returns true if a new NOOP was queued (the runtime must be told there is data).
    /// A new NOOP takes its box from `pool`.
    pub fn queue_zc_ack(
        &mut self,
        cookie: u64,
        style: ZcAckStyle,
        proto: &Protocol,
        pool: &mut TxPool<P>,
    ) -> bool {
        match style {
            ZcAckStyle::None => false,
            ZcAckStyle::Piggyback => {
                // The carrier: the first not-started LNet message without an ACK.
                if let Some(t) = self
                    .q
                    .iter_mut()
                    .find(|t| !t.started && t.is_lnet() && t.ksock.zc_cookies[1] == 0)
                {
                    t.ksock.zc_cookies[1] = cookie;
                    return false;
                }
                self.push_back(Tx::boxed_noop(pool, cookie), proto);
                true
            }
            ZcAckStyle::MergeNoops => {
                if let Some(t) = self
                    .q
                    .iter_mut()
                    .rev()
                    .find(|t| !t.started && t.is_noop() && t.carrier)
                {
                    if zc::merge_into_noop(&mut t.ksock.zc_cookies, &mut t.carrier, cookie) {
                        return false;
                    }
                }
                self.push_back(Tx::boxed_noop(pool, cookie), proto);
                true
            }
        }
    }

    /// Prepares and returns up to `out.len()` slices of unwritten bytes, starting with the head
    /// of the queue. Every transmission included is started (framing packed, no more ACKs
    /// folded in). `before_start` runs on each transmission about to start (cookie assignment).
    pub fn slices<'a>(
        &'a mut self,
        how: Framing<'_>,
        max_bytes: usize,
        mut before_start: impl FnMut(&mut Tx<P>),
        out: &mut [&'a [u8]],
    ) -> usize {
        let Framing {
            proto,
            endian,
            csum,
            corrupt,
        } = how;
        // First pass (mutable): start what will be offered.
        let mut budget = max_bytes;
        let mut take = 0usize;
        for tx in self.q.iter_mut() {
            if budget == 0 {
                break;
            }
            if !tx.started {
                before_start(tx);
                let c = csum && !matches!(tx.kind, TxKind::Raw(_));
                tx.pack(proto, endian, c && proto.generates_csum, *corrupt && c);
                if c && proto.generates_csum {
                    *corrupt = false;
                }
            }
            budget = budget.saturating_sub(tx.wire.saturating_sub(tx.committed));
            take = take.saturating_add(1);
        }
        // Second pass (shared): lend the bytes.
        let this: &'a Self = self;
        let mut n = 0usize;
        for tx in this.q.iter().take(take) {
            let Some(rest) = out.get_mut(n..) else { break };
            if rest.is_empty() {
                break;
            }
            n = n.saturating_add(tx.slices(tx.committed, rest));
        }
        n
    }

    /// Records `n` bytes written; pops and returns the transmissions now complete, in order.
    pub fn commit(&mut self, mut n: usize, done: &mut impl FnMut(Box<Tx<P>>)) -> usize {
        let mut consumed = 0usize;
        while n > 0 {
            let Some(front) = self.q.front_mut() else {
                break;
            };
            let left = front.wire.saturating_sub(front.committed);
            let k = left.min(n);
            front.committed = front.committed.saturating_add(k);
            n = n.saturating_sub(k);
            consumed = consumed.saturating_add(k);
            self.queued_bytes = self.queued_bytes.saturating_sub(k as u64);
            if front.committed >= front.wire {
                if let Some(tx) = self.q.pop_front() {
                    done(tx);
                }
            } else {
                break;
            }
        }
        // Zero-length leftovers (cannot happen with real framing) are popped too.
        consumed
    }

    /// Whether any transmission has been started but not completely written (bytes may be in
    /// an in-flight send).
    pub fn has_started(&self) -> bool {
        self.q.front().is_some_and(|t| t.started)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::arithmetic_side_effects
    )]
    use super::*;
    use crate::engine::proto::{PROTO_V2, PROTO_V3};
    use crate::wire::{LnetMsg, Nid, WireHandle};

    fn lnet(id: u64, len: usize) -> Box<Tx<Vec<u8>>> {
        let hdr = LnetHdr {
            dest_nid: Nid(1),
            src_nid: Nid(2),
            dest_pid: 12345,
            src_pid: 12345,
            payload_length: len as u32,
            msg: LnetMsg::Put {
                ack_wmd: WireHandle::NONE,
                match_bits: 0,
                hdr_data: 0,
                ptl_index: 4,
                offset: 0,
            },
        };
        Box::new(Tx::new_lnet(TxId(id), hdr, Some(vec![0xab; len])))
    }

    fn cookies(q: &TxQueue<Vec<u8>>) -> Vec<(bool, [u64; 2])> {
        q.q.iter()
            .map(|t| (t.is_noop(), t.ksock.zc_cookies))
            .collect()
    }

    #[test]
    fn v2_ack_piggybacks_on_the_first_unstarted_lnet_message() {
        let mut q = TxQueue::default();
        q.push_lnet(lnet(1, 10), &PROTO_V2);
        q.push_lnet(lnet(2, 10), &PROTO_V2);
        assert!(!q.queue_zc_ack(7, ZcAckStyle::Piggyback, &PROTO_V2, &mut TxPool::default()));
        assert!(!q.queue_zc_ack(8, ZcAckStyle::Piggyback, &PROTO_V2, &mut TxPool::default()));
        // A third ACK finds no carrier: a NOOP is queued.
        assert!(q.queue_zc_ack(9, ZcAckStyle::Piggyback, &PROTO_V2, &mut TxPool::default()));
        assert_eq!(
            cookies(&q),
            vec![(false, [0, 7]), (false, [0, 8]), (true, [0, 9])]
        );
    }

    #[test]
    fn v2_started_message_cannot_carry_an_ack() {
        let mut q = TxQueue::default();
        q.push_lnet(lnet(1, 10), &PROTO_V2);
        let mut corrupt = false;
        let mut out: [&[u8]; 4] = [&[]; 4];
        let how = Framing {
            proto: &PROTO_V2,
            endian: Endian::Little,
            csum: false,
            corrupt: &mut corrupt,
        };
        assert!(q.slices(how, 1, |_| {}, &mut out) > 0);
        assert!(q.queue_zc_ack(7, ZcAckStyle::Piggyback, &PROTO_V2, &mut TxPool::default()));
        assert_eq!(cookies(&q), vec![(false, [0, 0]), (true, [0, 7])]);
    }

    #[test]
    fn v2_later_lnet_message_takes_over_the_noop_and_its_place() {
        let mut q = TxQueue::default();
        assert!(q.queue_zc_ack(7, ZcAckStyle::Piggyback, &PROTO_V2, &mut TxPool::default()));
        q.push_back(Box::new(Tx::new_raw(vec![1, 2, 3])), &PROTO_V2);
        q.push_lnet(lnet(1, 10), &PROTO_V2);
        assert_eq!(q.q.len(), 2, "the NOOP was replaced");
        assert!(
            q.q[0].is_lnet() && q.q[0].ksock.zc_cookies == [0, 7],
            "in the NOOP's position"
        );
        assert_eq!(q.queued_bytes, (24 + 72 + 10 + 3) as u64);
    }

    #[test]
    fn v3_noop_merges_acks_and_keepalive_becomes_an_ack() {
        let mut q: TxQueue<Vec<u8>> = TxQueue::default();
        assert!(q.queue_zc_ack(4, ZcAckStyle::MergeNoops, &PROTO_V3, &mut TxPool::default()));
        for c in [5, 6, 3] {
            assert!(!q.queue_zc_ack(c, ZcAckStyle::MergeNoops, &PROTO_V3, &mut TxPool::default()));
        }
        assert_eq!(cookies(&q), vec![(true, [3, 6])]);
        assert!(
            q.queue_zc_ack(
                20,
                ZcAckStyle::MergeNoops,
                &PROTO_V3,
                &mut TxPool::default()
            ),
            "not contiguous: new NOOP"
        );
        let mut ka: TxQueue<Vec<u8>> = TxQueue::default();
        ka.push_back(Box::new(Tx::new_noop(1)), &PROTO_V3);
        assert!(!ka.queue_zc_ack(9, ZcAckStyle::MergeNoops, &PROTO_V3, &mut TxPool::default()));
        assert_eq!(cookies(&ka), vec![(true, [0, 9])]);
    }

    /// Spec A.4: a V2 NOOP acknowledging cookie 5, checksummed (CRC 0x7FBB3464).
    const SPEC_A4_NOOP_ACK_5: [u8; 24] = [
        0xc0, 0, 0, 0, 0x64, 0x34, 0xbb, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// Frames everything queued under V2 with checksums and returns the bytes lent.
    fn v2_csum_bytes(q: &mut TxQueue<Vec<u8>>) -> Vec<u8> {
        let mut corrupt = false;
        let mut out: [&[u8]; 4] = [&[]; 4];
        let how = Framing {
            proto: &PROTO_V2,
            endian: Endian::Little,
            csum: true,
            corrupt: &mut corrupt,
        };
        let n = q.slices(how, usize::MAX, |_| {}, &mut out);
        out[..n].concat()
    }

    #[test]
    fn v2_checksum_covers_everything_and_matches_the_spec_example() {
        let mut q: TxQueue<Vec<u8>> = TxQueue::default();
        q.push_back(Box::new(Tx::new_noop(5)), &PROTO_V2);
        assert_eq!(v2_csum_bytes(&mut q), SPEC_A4_NOOP_ACK_5);
    }

    #[test]
    fn a_zc_ack_noop_reuses_a_spent_box_and_frames_exactly_as_a_new_one() {
        // A used box: an LNet message that carried an ACK, framed with a checksum and written.
        let mut pool = TxPool::default();
        let mut q: TxQueue<Vec<u8>> = TxQueue::default();
        q.push_lnet(lnet(1, 10), &PROTO_V2);
        assert!(!q.queue_zc_ack(3, ZcAckStyle::Piggyback, &PROTO_V2, &mut pool));
        let len = v2_csum_bytes(&mut q).len();
        let mut spent = Vec::new();
        assert_eq!(q.commit(len, &mut |t| spent.push(t)), len);
        assert_eq!(spent.len(), 1);
        pool.recycle(spent.remove(0));
        // The next ACK without a carrier takes that box: the NOOP of spec A.4, byte for byte.
        assert!(q.queue_zc_ack(5, ZcAckStyle::Piggyback, &PROTO_V2, &mut pool));
        assert!(pool.spare.is_empty(), "the spare box was used");
        assert_eq!(v2_csum_bytes(&mut q), SPEC_A4_NOOP_ACK_5);
    }

    #[test]
    fn slices_resume_after_partial_commits_and_lend_payload_without_copy() {
        let mut q = TxQueue::default();
        let tx = lnet(1, 5000);
        q.push_lnet(tx, &PROTO_V3);
        let payload_ptr = match &q.q[0].kind {
            TxKind::Lnet {
                payload: Some(p), ..
            } => p.as_ptr(),
            _ => unreachable!(),
        };
        let mut corrupt = false;
        {
            let mut out: [&[u8]; 4] = [&[]; 4];
            let how = Framing {
                proto: &PROTO_V3,
                endian: Endian::Little,
                csum: false,
                corrupt: &mut corrupt,
            };
            let n = q.slices(how, usize::MAX, |_| {}, &mut out);
            assert_eq!(n, 2);
            assert_eq!(out[0].len(), 96);
            assert_eq!(
                out[1].as_ptr(),
                payload_ptr,
                "the caller's buffer itself, not a copy"
            );
        }
        let mut done = 0;
        q.commit(100, &mut |_| done += 1);
        {
            let mut out: [&[u8]; 4] = [&[]; 4];
            let how = Framing {
                proto: &PROTO_V3,
                endian: Endian::Little,
                csum: false,
                corrupt: &mut corrupt,
            };
            let n = q.slices(how, usize::MAX, |_| {}, &mut out);
            assert_eq!(n, 1);
            assert_eq!(out[0].len(), 5000 - 4);
        }
        q.commit(4996, &mut |_| done += 1);
        assert_eq!(done, 1);
        assert!(q.is_empty() && q.queued_bytes == 0);
    }

    #[test]
    fn lent_framing_keeps_its_address_while_the_queue_grows() {
        let mut q = TxQueue::default();
        q.push_lnet(lnet(1, 10), &PROTO_V3);
        let mut corrupt = false;
        let head_ptr = {
            let mut out: [&[u8]; 4] = [&[]; 4];
            let how = Framing {
                proto: &PROTO_V3,
                endian: Endian::Little,
                csum: false,
                corrupt: &mut corrupt,
            };
            assert!(q.slices(how, usize::MAX, |_| {}, &mut out) >= 1);
            out[0].as_ptr()
        };
        // An in-flight send still references those bytes while many more messages are queued.
        for i in 2..200 {
            q.push_lnet(lnet(i, 10), &PROTO_V3);
        }
        let mut out: [&[u8]; 4] = [&[]; 4];
        let how = Framing {
            proto: &PROTO_V3,
            endian: Endian::Little,
            csum: false,
            corrupt: &mut corrupt,
        };
        q.slices(how, usize::MAX, |_| {}, &mut out);
        assert_eq!(
            out[0].as_ptr(),
            head_ptr,
            "the framing moved while it was lent"
        );
    }
}
