//! The two-reference completion context of a `TDI_SEND` (HLD §2.3.2, steps 8–11), and the
//! connection's "scheduled" flag that parks and re-activates it.
//!
//! A send IRP's context starts with **two references**: one for the submitter (dropped after
//! `IoCallDriver` returns, whatever it returned) and one for the completion routine (dropped
//! after it recorded the IRP's final status). Whoever drops the **last** reference finishes the
//! send: frees the IRP and MDLs and hands the result on. Either order is possible — the
//! transport may complete the IRP inside `IoCallDriver` (the submitter finishes, typical for
//! `STATUS_SUCCESS`) or later from a DPC (the completion routine finishes, after the submitter
//! saw `STATUS_PENDING` and parked the connection), or even inside `IoCallDriver` while returning
//! `STATUS_PENDING`. Exactly one side finishes, and it sees the status the completion routine
//! stored.
//!
//! This file uses only `super::sync`, so `tests/tdi_loom.rs` model-checks it with loom.
//! Network input never reaches it, but it runs at DISPATCH_LEVEL: no panics, no indexing.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Which side dropped the last reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finisher {
    /// The submitter, after `IoCallDriver` returned: it finishes the send inline (HLD step 10).
    Submitter,
    /// The completion routine: it finishes and re-activates the connection (HLD step 11).
    Completion,
}

/// The reference count and the recorded result of one in-flight send.
pub struct SendRefs {
    refs: AtomicU32,
    /// `(status as u32) << 32 | information`, stored by the completion routine.
    result: AtomicU64,
}

impl Default for SendRefs {
    fn default() -> Self {
        Self::new()
    }
}

impl SendRefs {
    /// A context holding both references.
    pub fn new() -> Self {
        SendRefs {
            refs: AtomicU32::new(2),
            result: AtomicU64::new(0),
        }
    }

    /// The completion routine: records the IRP's final `status` and `information` (bytes
    /// sent), then drops its reference. `Some(Completion)` when it was the last one.
    pub fn complete(&self, status: i32, information: u32) -> Option<Finisher> {
        let packed = (u64::from(status as u32) << 32) | u64::from(information);
        // Release: the finisher's Acquire (in `release`) sees the result.
        self.result.store(packed, Ordering::Release);
        self.release().then_some(Finisher::Completion)
    }

    /// The submitter, after `IoCallDriver` returned: drops its reference. `Some(Submitter)` when
    /// the completion routine already ran (the send is done and the submitter finishes it);
    /// `None` when the send is still in flight (the connection is parked; the completion
    /// routine will finish and re-activate it).
    pub fn submitted(&self) -> Option<Finisher> {
        self.release().then_some(Finisher::Submitter)
    }

    fn release(&self) -> bool {
        // AcqRel: the last dropper synchronises with the other side's release (and so sees
        // the result stored before it).
        self.refs.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The recorded `(status, information)`. Only meaningful for the finisher.
    pub fn result(&self) -> (i32, u32) {
        let v = self.result.load(Ordering::Acquire);
        ((v >> 32) as u32 as i32, v as u32)
    }

    /// References still held (diagnostics).
    pub fn refs(&self) -> u32 {
        self.refs.load(Ordering::Acquire)
    }
}

/// A connection's "scheduled" flag: set while the connection sits in (or is being taken from)
/// its scheduler's run queue. Producers at DISPATCH_LEVEL (receive handlers, send and receive
/// completions) call [`Wake::request`] after publishing their news and enqueue the connection
/// only when it returns true, so a connection is queued at most once. The scheduler calls
/// [`Wake::begin_pass`] after dequeuing and *before* looking at the connection's state, so news
/// published after it looked always leads to another pass (no lost wake-up).
pub struct Wake {
    scheduled: AtomicBool,
}

impl Wake {
    /// `scheduled` starts true for a connection not yet handed to a scheduler: wake-ups are
    /// absorbed until the owner calls [`Wake::begin_pass`] and enqueues it once itself.
    pub fn new(scheduled: bool) -> Self {
        Wake {
            scheduled: AtomicBool::new(scheduled),
        }
    }

    /// After publishing news: true when the caller must enqueue the connection.
    ///
    /// Producer and scheduler both use read-modify-writes on the flag, so they are totally
    /// ordered: a request after the pass's swap sees `false` and enqueues; a request before it
    /// is acquired by that swap, so the pass sees the news. The first version cleared the flag
    /// with a plain store, and loom found the interleaving where a pass missed a producer's data
    /// while the producer's request was absorbed (`tests/tdi_loom.rs`). The fences are kept as
    /// a margin for the store-buffering shape (spin lock, then flag; flag, then spin lock).
    pub fn request(&self) -> bool {
        core_fence();
        !self.scheduled.swap(true, Ordering::SeqCst)
    }

    /// The scheduler took the connection from its queue and is about to process it.
    pub fn begin_pass(&self) {
        // An RMW rather than a plain store: it is ordered after every earlier request in the
        // flag's modification order, and the fence after it pairs with the producers' fence
        // (anything published before a request that saw `true` is visible to this pass).
        self.scheduled.swap(false, Ordering::SeqCst);
        core_fence();
    }
}

#[inline]
fn core_fence() {
    super::sync::fence(Ordering::SeqCst);
}
