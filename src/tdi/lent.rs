//! The kernel runtime's payload and sink types: a buffer of its own (the built-in LNet layer's
//! pings, ACKs and test traffic) or memory **lent** by the kernel LNet bound through the NAL
//! interface (`docs/nal-interface.md` §5): `TDINAL_KVEC` fragments read in place by the
//! engine and `TDI_SEND` (no copy), or written in place by the receive path, until LNet's
//! `Finalize` for the message. The engine (`Engine<P, S>`) is generic over these; it never
//! learns whose memory it is.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use crate::engine::{RxSink, TxPayload};
use crate::lnet::OwnedSink;
use alloc::vec::Vec;

/// Fragments of kernel virtual memory lent for a send: read, never written, until the message
/// is finalized.
#[derive(Debug)]
pub struct LentPayload {
    /// `(address, length)`; no fragment is empty. Never written through (the pointers are
    /// `*mut` because LNet's fragment lists describe receive buffers too: one list type, no
    /// second allocation to convert).
    frags: Vec<(*mut u8, usize)>,
    len: usize,
}

// SAFETY: the fragments are kernel memory (non-paged or locked) that the lender keeps valid and
// unchanged until it gets this payload's Finalize, whichever thread the payload is on.
unsafe impl Send for LentPayload {}

impl LentPayload {
    /// A payload over `frags` (empty ones are skipped).
    ///
    /// # Safety
    /// Every fragment is readable for its length and stays valid and unchanged until the
    /// payload is dropped (the runtime drops it only after the engine handed it back in its
    /// `TxDone`, which the lender learns through `Finalize`).
    pub unsafe fn new(frags: Vec<(*mut u8, usize)>) -> LentPayload {
        let mut frags = frags;
        frags.retain(|&(p, n)| n != 0 && !p.is_null());
        let len = frags
            .iter()
            .fold(0usize, |acc, &(_, n)| acc.saturating_add(n));
        LentPayload { frags, len }
    }
}

impl TxPayload for LentPayload {
    fn len(&self) -> usize {
        self.len
    }
    fn frag_count(&self) -> usize {
        self.frags.len()
    }
    fn frag(&self, i: usize) -> &[u8] {
        match self.frags.get(i) {
            // SAFETY: `new`'s contract: readable for its length while the payload lives.
            Some(&(p, n)) => unsafe { core::slice::from_raw_parts(p.cast_const(), n) },
            None => &[],
        }
    }
}

/// Fragments of kernel virtual memory lent for a receive: written until the message is
/// finalized.
#[derive(Debug)]
pub struct LentSink {
    /// `(address, length)`; no fragment is empty.
    frags: Vec<(*mut u8, usize)>,
    len: usize,
}

// SAFETY: as for LentPayload: the lender keeps the memory valid (and does not touch it) until
// Finalize.
unsafe impl Send for LentSink {}

impl LentSink {
    /// A sink over `frags` (empty ones are skipped).
    ///
    /// # Safety
    /// Every fragment is writable for its length, not accessed by anyone else and valid until
    /// the sink is dropped (after the engine's `RxDone` for it).
    pub unsafe fn new(frags: Vec<(*mut u8, usize)>) -> LentSink {
        let mut frags = frags;
        frags.retain(|&(p, n)| n != 0 && !p.is_null());
        let len = frags
            .iter()
            .fold(0usize, |acc, &(_, n)| acc.saturating_add(n));
        LentSink { frags, len }
    }

    /// The fragment holding byte `offset` and the offset inside it.
    fn locate(&self, offset: usize) -> Option<(*mut u8, usize, usize)> {
        let mut start = 0usize;
        for &(p, n) in &self.frags {
            let end = start.saturating_add(n);
            if offset < end {
                return Some((p, n, offset.saturating_sub(start)));
            }
            start = end;
        }
        None
    }
}

impl RxSink for LentSink {
    fn len(&self) -> usize {
        self.len
    }
    fn region_mut(&mut self, offset: usize) -> &mut [u8] {
        match self.locate(offset) {
            // SAFETY: `new`'s contract (writable, exclusive while the sink lives); `within` <
            // `n`, so the region stays inside the fragment; `&mut self` makes it exclusive.
            Some((p, n, within)) => unsafe {
                core::slice::from_raw_parts_mut(p.add(within), n.saturating_sub(within))
            },
            None => &mut [],
        }
    }
    fn region(&self, offset: usize) -> &[u8] {
        match self.locate(offset) {
            // SAFETY: as above, shared.
            Some((p, n, within)) => unsafe {
                core::slice::from_raw_parts(p.add(within).cast_const(), n.saturating_sub(within))
            },
            None => &[],
        }
    }
}

/// The kernel runtime's send payload.
#[derive(Debug)]
pub enum NalPayload {
    Owned(Vec<u8>),
    Lent(LentPayload),
}

impl From<Vec<u8>> for NalPayload {
    fn from(v: Vec<u8>) -> Self {
        NalPayload::Owned(v)
    }
}

impl TxPayload for NalPayload {
    fn len(&self) -> usize {
        match self {
            NalPayload::Owned(v) => TxPayload::len(v),
            NalPayload::Lent(l) => l.len(),
        }
    }
    fn frag_count(&self) -> usize {
        match self {
            NalPayload::Owned(v) => v.frag_count(),
            NalPayload::Lent(l) => l.frag_count(),
        }
    }
    fn frag(&self, i: usize) -> &[u8] {
        match self {
            NalPayload::Owned(v) => v.frag(i),
            NalPayload::Lent(l) => l.frag(i),
        }
    }
}

/// The kernel runtime's receive sink.
#[derive(Debug)]
pub enum NalSink {
    Owned(Vec<u8>),
    Lent(LentSink),
}

impl From<Vec<u8>> for NalSink {
    fn from(v: Vec<u8>) -> Self {
        NalSink::Owned(v)
    }
}

impl RxSink for NalSink {
    fn len(&self) -> usize {
        match self {
            NalSink::Owned(v) => RxSink::len(v),
            NalSink::Lent(l) => l.len(),
        }
    }
    fn region_mut(&mut self, offset: usize) -> &mut [u8] {
        match self {
            NalSink::Owned(v) => v.region_mut(offset),
            NalSink::Lent(l) => l.region_mut(offset),
        }
    }
    fn region(&self, offset: usize) -> &[u8] {
        match self {
            NalSink::Owned(v) => RxSink::region(v, offset),
            NalSink::Lent(l) => l.region(offset),
        }
    }
}

impl OwnedSink for NalSink {
    fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            NalSink::Owned(v) => Some(v),
            NalSink::Lent(_) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lent_fragments_are_read_and_written_in_place() {
        let a = [1u8, 2, 3];
        let b = [4u8, 5];
        // SAFETY: the arrays outlive the payload.
        let p = unsafe {
            LentPayload::new(alloc::vec![
                (a.as_ptr().cast_mut(), 3),
                (core::ptr::null_mut(), 0),
                (b.as_ptr().cast_mut(), 2)
            ])
        };
        assert_eq!((p.len(), p.frag_count()), (5, 2));
        assert_eq!(p.frag(0).as_ptr(), a.as_ptr(), "no copy");
        assert_eq!(p.frag(1), &[4, 5]);
        assert!(p.frag(2).is_empty());

        let mut x = [0u8; 2];
        let mut y = [0u8; 3];
        // SAFETY: the arrays outlive the sink and are not touched while it lives.
        let mut s = unsafe { LentSink::new(alloc::vec![(x.as_mut_ptr(), 2), (y.as_mut_ptr(), 3)]) };
        assert_eq!(s.len(), 5);
        assert_eq!(s.region_mut(1).len(), 1);
        s.region_mut(0).copy_from_slice(&[9, 8]);
        s.region_mut(2).copy_from_slice(&[7, 6, 5]);
        assert_eq!(s.region(3), &[6, 5]);
        assert!(s.region_mut(5).is_empty());
        drop(s);
        assert_eq!((x, y), ([9, 8], [7, 6, 5]));
    }
}
