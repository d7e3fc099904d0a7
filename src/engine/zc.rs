//! Zero-copy cookies (spec §4.2–4.4): allocation on the sender, what a received header
//! acknowledges, and how a queued V3 NOOP absorbs further ACKs as a pair or a range.

use crate::wire::ksock::KEEPALIVE_PING_COOKIE;
use crate::wire::{KsockHdr, KsockMsgType};

/// The first request cookie of a peer; 0 means "none" and 1 is the keepalive ping.
pub const FIRST_COOKIE: u64 = 2;

/// Why a received LNET message asking for a ZC-ACK of cookie 1 (the keepalive's, never handed
/// out by [`next_cookie`]) closes its connection.
pub const RESERVED_REQUEST: &str = "ZC request with the reserved keepalive cookie";

/// Hands out the next request cookie from a per-peer counter: 2, 3, …, and back to 2 on wrap.
pub fn next_cookie(counter: &mut u64) -> u64 {
    if *counter < FIRST_COOKIE {
        *counter = FIRST_COOKIE;
    }
    let c = *counter;
    *counter = match c.checked_add(1) {
        Some(n) => n,
        None => FIRST_COOKIE,
    };
    c
}

/// What a received ksock header acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    Nothing,
    /// A V3 keepalive NOOP `[0, 1]`: ignored.
    Keepalive,
    One(u64),
    /// Two separate cookies (V3 NOOP with `[0] > [1]`).
    Pair(u64, u64),
    /// Every cookie in `lo..=hi` (V3 NOOP with `[0] < [1]`).
    Range(u64, u64),
}

impl Acks {
    /// How many waiting sends this must match, exactly.
    pub fn expected(&self) -> u64 {
        match *self {
            Acks::Nothing | Acks::Keepalive => 0,
            Acks::One(_) => 1,
            Acks::Pair(..) => 2,
            Acks::Range(lo, hi) => hi.saturating_sub(lo).saturating_add(1),
        }
    }

    /// Whether request cookie `c` is acknowledged by this.
    pub fn covers(&self, c: u64) -> bool {
        match *self {
            Acks::Nothing | Acks::Keepalive => false,
            Acks::One(a) => c == a,
            Acks::Pair(a, b) => c == a || c == b,
            Acks::Range(lo, hi) => lo <= c && c <= hi,
        }
    }
}

/// Reads the ACKs a header carries. Only NOOPs use `[0]` as a pair/range partner; on an LNET
/// message `[0]` is that message's own request. `keepalive_allowed` is the protocol's (V3).
/// A cookie-1 "ACK" in any form other than the keepalive NOOP is a protocol error.
pub fn acks_of(hdr: &KsockHdr, keepalive_allowed: bool) -> Result<Acks, &'static str> {
    let [c0, c1] = hdr.zc_cookies;
    if c1 == 0 {
        return Ok(Acks::Nothing);
    }
    let acks = match hdr.msg_type {
        KsockMsgType::Lnet => Acks::One(c1),
        KsockMsgType::Noop if c0 == 0 || c0 == c1 => Acks::One(c1),
        KsockMsgType::Noop if c0 > c1 => Acks::Pair(c0, c1),
        KsockMsgType::Noop => Acks::Range(c0, c1),
    };
    match acks {
        Acks::One(KEEPALIVE_PING_COOKIE)
            if keepalive_allowed && hdr.msg_type == KsockMsgType::Noop =>
        {
            Ok(Acks::Keepalive)
        }
        Acks::One(KEEPALIVE_PING_COOKIE) => Err("keepalive cookie outside a V3 keepalive NOOP"),
        Acks::Pair(_, b) if b <= KEEPALIVE_PING_COOKIE => {
            Err("ZC-ACK pair holds a reserved cookie")
        }
        Acks::Range(lo, _) if lo <= KEEPALIVE_PING_COOKIE => {
            Err("ZC-ACK range holds a reserved cookie")
        }
        a => Ok(a),
    }
}

/// Tries to fold cookie `c` into a queued, not yet started V3 NOOP's cookies (spec §4.4).
/// `carrier` says whether this NOOP may still absorb ACKs; it is cleared when a pair is too far
/// apart to become a range. Returns whether `c` was absorbed (a duplicate counts as absorbed).
pub fn merge_into_noop(cookies: &mut [u64; 2], carrier: &mut bool, c: u64) -> bool {
    if !*carrier {
        return false;
    }
    let [c0, c1] = *cookies;
    // An empty NOOP, or a keepalive, becomes a plain ACK.
    if c1 == 0 || (c0 == 0 && c1 == KEEPALIVE_PING_COOKIE) {
        *cookies = [0, c];
        return true;
    }
    if c0 == 0 || c0 == c1 {
        // One cookie held: make a pair, larger first.
        if c == c1 {
            return true;
        }
        let (hi, lo) = if c > c1 { (c, c1) } else { (c1, c) };
        *cookies = [hi, lo];
        if hi.saturating_sub(lo) > 2 {
            *carrier = false;
        }
        return true;
    }
    if c0 > c1 {
        // A pair (a, b) with a − b ≤ 2: becomes a range if `c` makes it contiguous.
        let (a, b) = (c0, c1);
        if c == a || c == b {
            return true;
        }
        let range = match a.saturating_sub(b) {
            1 if Some(c) == a.checked_add(1) => Some((b, c)),
            1 if Some(c) == b.checked_sub(1) => Some((c, a)),
            2 if Some(c) == b.checked_add(1) => Some((b, a)),
            _ => None,
        };
        return match range {
            Some((lo, hi)) if lo > KEEPALIVE_PING_COOKIE => {
                *cookies = [lo, hi];
                true
            }
            _ => false,
        };
    }
    // A range [lo, hi]: grows by one at either end.
    let (lo, hi) = (c0, c1);
    if lo <= c && c <= hi {
        return true;
    }
    if Some(c) == hi.checked_add(1) {
        cookies[1] = c;
        true
    } else if Some(c) == lo.checked_sub(1) && c > KEEPALIVE_PING_COOKIE {
        cookies[0] = c;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(c0: u64, c1: u64) -> KsockHdr {
        KsockHdr {
            msg_type: KsockMsgType::Noop,
            csum: 0,
            zc_cookies: [c0, c1],
        }
    }

    #[test]
    fn cookies_start_at_two_and_wrap_to_two() {
        let mut ctr = 0;
        assert_eq!(next_cookie(&mut ctr), 2);
        assert_eq!(next_cookie(&mut ctr), 3);
        ctr = u64::MAX;
        assert_eq!(next_cookie(&mut ctr), u64::MAX);
        assert_eq!(next_cookie(&mut ctr), 2);
    }

    #[test]
    fn acks_forms() {
        assert_eq!(acks_of(&noop(0, 5), true), Ok(Acks::One(5)));
        assert_eq!(acks_of(&noop(5, 5), true), Ok(Acks::One(5)));
        assert_eq!(acks_of(&noop(7, 5), true), Ok(Acks::Pair(7, 5)));
        assert_eq!(acks_of(&noop(5, 9), true), Ok(Acks::Range(5, 9)));
        assert_eq!(acks_of(&noop(0, 1), true), Ok(Acks::Keepalive));
        assert!(acks_of(&noop(0, 1), false).is_err());
        assert!(acks_of(&noop(1, 4), true).is_err());
        assert_eq!(acks_of(&noop(9, 0), true), Ok(Acks::Nothing));
        let lnet = KsockHdr {
            msg_type: KsockMsgType::Lnet,
            csum: 0,
            zc_cookies: [9, 4],
        };
        assert_eq!(acks_of(&lnet, true), Ok(Acks::One(4)));
        assert_eq!(Acks::Range(5, 9).expected(), 5);
        assert!(Acks::Range(5, 9).covers(7) && !Acks::Range(5, 9).covers(10));
    }

    #[test]
    fn noop_absorbs_single_pair_then_range() {
        let (mut c, mut carrier) = ([0, 0], true);
        assert!(merge_into_noop(&mut c, &mut carrier, 4));
        assert_eq!(c, [0, 4]);
        assert!(merge_into_noop(&mut c, &mut carrier, 5));
        assert_eq!(c, [5, 4]);
        assert!(merge_into_noop(&mut c, &mut carrier, 6));
        assert_eq!(c, [4, 6]);
        assert!(merge_into_noop(&mut c, &mut carrier, 3));
        assert_eq!(c, [3, 6]);
        assert!(merge_into_noop(&mut c, &mut carrier, 7));
        assert_eq!(c, [3, 7]);
        assert!(!merge_into_noop(&mut c, &mut carrier, 9));
        assert!(carrier);
    }

    #[test]
    fn far_pair_stops_being_a_carrier() {
        let (mut c, mut carrier) = ([0, 10], true);
        assert!(merge_into_noop(&mut c, &mut carrier, 20));
        assert_eq!(c, [20, 10]);
        assert!(!carrier);
        assert!(!merge_into_noop(&mut c, &mut carrier, 21));
    }

    #[test]
    fn gap_of_two_is_filled_into_a_range() {
        let (mut c, mut carrier) = ([0, 10], true);
        assert!(merge_into_noop(&mut c, &mut carrier, 12));
        assert_eq!(c, [12, 10]);
        assert!(merge_into_noop(&mut c, &mut carrier, 11));
        assert_eq!(c, [10, 12]);
    }

    #[test]
    fn keepalive_becomes_an_ack() {
        let (mut c, mut carrier) = ([0, 1], true);
        assert!(merge_into_noop(&mut c, &mut carrier, 8));
        assert_eq!(c, [0, 8]);
    }
}
