//! How the engine sees message payloads without owning their memory model.
//!
//! Sends: the upper layer hands over a [`TxPayload`] (a buffer, a list of fragments, pages behind
//! an MDL). The engine lends its fragments to the runtime for vectored writes — no copy — and
//! gives the payload back in `TxDone` once it is sent, or for zero-copy sends, acknowledged.
//! Receives: the upper layer hands over an [`RxSink`]; the runtime reads straight into it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// A payload to send: a sequence of byte fragments (at most `LNET_MAX_IOV` = 256 in LNet).
pub trait TxPayload {
    /// Total bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of fragments.
    fn frag_count(&self) -> usize;
    /// Fragment `i` (an empty slice past the end).
    fn frag(&self, i: usize) -> &[u8];
}

/// Where a received payload goes: a byte region that may be split in fragments.
pub trait RxSink {
    /// Total capacity in bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The longest contiguous writable region starting at byte `offset` (empty at or past the end).
    fn region_mut(&mut self, offset: usize) -> &mut [u8];
    /// The contiguous readable region starting at `offset` (for checksums over received bytes).
    fn region(&self, offset: usize) -> &[u8];
}

/// Contiguous buffers are payloads of one fragment.
macro_rules! one_fragment_payload {
    ($($t:ty),*) => {$(
        impl TxPayload for $t {
            fn len(&self) -> usize {
                <[u8]>::len(self)
            }
            fn frag_count(&self) -> usize {
                1
            }
            fn frag(&self, i: usize) -> &[u8] {
                if i == 0 {
                    self
                } else {
                    &[]
                }
            }
        }
    )*};
}

one_fragment_payload!(Vec<u8>, Box<[u8]>, Arc<[u8]>);

/// A payload made of several shared buffers (an LNet iov).
#[derive(Clone, Debug, Default)]
pub struct Frags(pub Vec<Arc<[u8]>>);

impl TxPayload for Frags {
    fn len(&self) -> usize {
        self.0.iter().map(|f| f.len()).sum()
    }
    fn frag_count(&self) -> usize {
        self.0.len()
    }
    fn frag(&self, i: usize) -> &[u8] {
        self.0.get(i).map(|f| &f[..]).unwrap_or(&[])
    }
}

/// Contiguous buffers are sinks of one region.
macro_rules! one_region_sink {
    ($($t:ty),*) => {$(
        impl RxSink for $t {
            fn len(&self) -> usize {
                <[u8]>::len(self)
            }
            fn region_mut(&mut self, offset: usize) -> &mut [u8] {
                self.get_mut(offset..).unwrap_or(&mut [])
            }
            fn region(&self, offset: usize) -> &[u8] {
                self.get(offset..).unwrap_or(&[])
            }
        }
    )*};
}

one_region_sink!(Vec<u8>, Box<[u8]>);
