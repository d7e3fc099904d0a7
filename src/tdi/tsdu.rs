//! A connection's TSDU queue (HLD §2.3.1): what the receive handlers take from the transport at
//! DISPATCH_LEVEL, kept in order until the connection's scheduler moves it into the engine at
//! PASSIVE_LEVEL.
//!
//! Entries are generic ([`TsduEntry`]): in the driver they are copied buffers or retained
//! chained-receive MDL chains (`super::recv`); in the loom model, byte vectors. The queue is one
//! spin lock around a deque plus the stream's end state:
//! - **producers** (receive/chained-receive handlers, receive-IRP completions, disconnect and
//!   error handlers) append and then wake the scheduler through [`super::sendref::Wake`];
//! - the **consumer** (the connection's scheduler, one at a time thanks to `Wake`) pops the head,
//!   copies it into the engine *without* the lock held, and puts back what the engine did not
//!   take with [`TsduQueue::unpop`] (only the consumer touches the head, so order is kept).
//!
//! Flow control: past `limit` queued bytes a producer is refused (the handler answers
//! `STATUS_DATA_NOT_ACCEPTED`, the transport keeps the data) and the queue is marked *withheld*;
//! when the consumer has drained it below `low_water` it posts a `TDI_RECEIVE` IRP to pull the
//! withheld bytes ([`TsduQueue::take_withheld`]), whose completion appends them.
//!
//! This file uses only `super::sync`, so `tests/tdi_loom.rs` model-checks it with loom.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::sync::SpinLock;
use alloc::collections::VecDeque;

/// One queued TSDU (or what is left of it).
pub trait TsduEntry {
    /// The next contiguous unread bytes (empty when the entry is used up).
    fn data(&self) -> &[u8];
    /// `n` bytes of [`TsduEntry::data`] were consumed.
    fn consume(&mut self, n: usize);
    /// Unread bytes left in the whole entry.
    fn remaining(&self) -> usize;
}

/// The stream's end as the producers reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxEnd {
    /// Graceful close by the peer (`ClientEventDisconnect` with `TDI_DISCONNECT_RELEASE`).
    pub eof: bool,
    /// Errno of an abortive close or error (0: none).
    pub error: i32,
}

struct Inner<E> {
    q: VecDeque<E>,
    bytes: usize,
    end: RxEnd,
    withheld: bool,
    receive_posted: bool,
}

/// The queue (see the module documentation).
pub struct TsduQueue<E> {
    inner: SpinLock<Inner<E>>,
    limit: usize,
    low_water: usize,
}

/// A snapshot for the consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxState {
    pub bytes: usize,
    pub entries: usize,
    pub end: RxEnd,
    pub withheld: bool,
    pub receive_posted: bool,
}

impl<E: TsduEntry> TsduQueue<E> {
    /// An empty queue refusing producers past `limit` bytes and re-opening below `low_water`.
    pub fn new(limit: usize, low_water: usize) -> Self {
        TsduQueue {
            inner: SpinLock::new(Inner {
                q: VecDeque::new(),
                bytes: 0,
                end: RxEnd::default(),
                withheld: false,
                receive_posted: false,
            }),
            limit,
            low_water,
        }
    }

    /// Producer: true when a new indication must be refused (over the limit, withheld, or a
    /// receive IRP is pulling withheld data); marks the queue withheld. Checked before copying.
    pub fn refuse_indication(&self) -> bool {
        let mut g = self.inner.lock();
        if g.withheld || g.receive_posted || g.bytes >= self.limit {
            g.withheld = true;
            true
        } else {
            false
        }
    }

    /// Producer: the handler refuses an indication for another reason (no memory, no mapping):
    /// marks the queue withheld so the consumer pulls the data with a receive request.
    pub fn withhold(&self) {
        self.inner.lock().withheld = true;
    }

    /// Producer: appends an entry. `Err(e)` when the deque cannot grow (no memory): the caller
    /// refuses the data and the queue is marked withheld, to be pulled later.
    pub fn push(&self, e: E) -> Result<(), E> {
        let mut g = self.inner.lock();
        if g.q.try_reserve(1).is_err() {
            g.withheld = true;
            return Err(e);
        }
        g.bytes = g.bytes.saturating_add(e.remaining());
        g.q.push_back(e);
        Ok(())
    }

    /// Producer: the peer closed gracefully (after the data already queued).
    pub fn set_eof(&self) {
        self.inner.lock().end.eof = true;
    }

    /// Producer: the connection failed with `errno` (the first error is kept).
    pub fn set_error(&self, errno: i32) {
        let mut g = self.inner.lock();
        if g.end.error == 0 {
            g.end.error = errno;
        }
    }

    /// Consumer: takes the head entry.
    pub fn pop(&self) -> Option<E> {
        let mut g = self.inner.lock();
        let e = g.q.pop_front()?;
        g.bytes = g.bytes.saturating_sub(e.remaining());
        Some(e)
    }

    /// Consumer: puts back the (partly consumed) head entry it popped, in front of anything
    /// producers appended since. `Err(e)` only when the deque cannot grow (no memory).
    pub fn unpop(&self, e: E) -> Result<(), E> {
        let mut g = self.inner.lock();
        if g.q.try_reserve(1).is_err() {
            return Err(e);
        }
        g.bytes = g.bytes.saturating_add(e.remaining());
        g.q.push_front(e);
        Ok(())
    }

    /// Consumer: when withheld data waits at the transport and the queue has drained below the
    /// low-water mark, marks a receive IRP as posted and returns true: the caller posts one.
    pub fn take_withheld(&self) -> bool {
        let mut g = self.inner.lock();
        if g.withheld && !g.receive_posted && g.bytes < self.low_water {
            g.withheld = false;
            g.receive_posted = true;
            true
        } else {
            false
        }
    }

    /// Receive-IRP completion: appends the pulled bytes (never refused) and clears the posted
    /// mark. `Err(e)` only when the deque cannot grow (the caller records an error).
    pub fn receive_done(&self, e: Option<E>) -> Result<(), E> {
        let mut g = self.inner.lock();
        g.receive_posted = false;
        if let Some(e) = e {
            if g.q.try_reserve(1).is_err() {
                return Err(e);
            }
            g.bytes = g.bytes.saturating_add(e.remaining());
            g.q.push_back(e);
        }
        Ok(())
    }

    /// Consumer: the current state.
    pub fn state(&self) -> RxState {
        let g = self.inner.lock();
        RxState {
            bytes: g.bytes,
            entries: g.q.len(),
            end: g.end,
            withheld: g.withheld,
            receive_posted: g.receive_posted,
        }
    }

    /// Teardown: removes every entry (dropping them releases retained TSDUs) one at a time, so
    /// no entry is dropped with the spin lock held.
    pub fn clear(&self) {
        while let Some(e) = self.pop() {
            drop(e);
        }
    }
}
