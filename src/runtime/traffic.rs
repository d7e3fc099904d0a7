//! LNet traffic driven by the library user (tests, soak runs): PUTs, GETs and pings whose one
//! completion arrives on a channel the caller gives, data served to GETs, a tap that receives
//! every PUT the node takes in, and the recent connection closes with their reasons.
//!
//! The completion of an operation is the LNet layer's event for it (`PutDone`, `GetDone`,
//! `PingDone`), sent exactly once — unless the node shuts down first: then the channel entry is
//! dropped and the operation is failed inside the node (`ShutdownReport` counts none left).

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use super::node::{Core, NodeHandle, Payload};
use crate::engine::{ConnId, Error};
use crate::lnet::LnetEvent;
use crate::wire::ProcessId;

/// How many connection closes [`NodeHandle::conn_downs`] remembers (the most recent ones).
pub const CONN_DOWNS_KEPT: usize = 4096;

/// A PUT the node received, as the upper layer got it.
#[derive(Clone, Debug)]
pub struct ReceivedPut {
    pub from: ProcessId,
    pub portal: u32,
    pub match_bits: u64,
    pub hdr_data: u64,
    pub data: Vec<u8>,
}

/// A connection that closed, and why (the engine's `ConnDown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnDown {
    pub conn: ConnId,
    pub peer: Option<ProcessId>,
    pub reason: Error,
}

/// The node's taps (inside its shared state).
#[derive(Default)]
pub(crate) struct Taps {
    puts: Mutex<Option<mpsc::Sender<ReceivedPut>>>,
    downs: Mutex<VecDeque<ConnDown>>,
}

impl Taps {
    /// A received PUT, after the node counted it: handed to the tap if one is set; given back
    /// when no tap took it (its buffer can then be reused).
    pub(crate) fn put(&self, p: ReceivedPut) -> Option<ReceivedPut> {
        let g = self.puts.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(tx) => tx.send(p).err().map(|e| e.0),
            None => Some(p),
        }
    }

    pub(crate) fn conn_down(&self, d: ConnDown) {
        let mut g = self.downs.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= CONN_DOWNS_KEPT {
            g.pop_front();
        }
        g.push_back(d);
    }
}

impl NodeHandle {
    /// Sends one PUT of `data` to `target`'s `portal` with `match_bits` and `hdr_data`, asking
    /// for an LNet ACK when `want_ack`; its one `PutDone` goes to `done`. Returns the operation.
    #[allow(clippy::too_many_arguments)]
    pub fn put_with(
        &self,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        hdr_data: u64,
        data: Payload,
        want_ack: bool,
        done: &mpsc::Sender<LnetEvent>,
    ) -> u64 {
        self.shared.with(|c, now| {
            let Core { engine, lnet, .. } = &mut *c;
            let op = lnet.put(
                engine, now, target, portal, match_bits, hdr_data, data, want_ack,
            );
            insert_waiter(c, op, done);
            op
        })
    }

    /// Sends one GET of up to `len` bytes from `target`'s `portal`/`match_bits`; its one
    /// `GetDone` (the REPLY's data, or an error after `timeout`) goes to `done`.
    pub fn get_with(
        &self,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        len: u32,
        timeout: Duration,
        done: &mpsc::Sender<LnetEvent>,
    ) -> u64 {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared.with(|c, now| {
            let Core { engine, lnet, .. } = &mut *c;
            let op = lnet.get(engine, now, target, portal, match_bits, len, ms);
            insert_waiter(c, op, done);
            op
        })
    }

    /// Pings `target`; its one `PingDone` goes to `done`.
    pub fn ping_with(
        &self,
        target: ProcessId,
        timeout: Duration,
        done: &mpsc::Sender<LnetEvent>,
    ) -> u64 {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared.with(|c, now| {
            let Core { engine, lnet, .. } = &mut *c;
            let op = lnet.ping(engine, now, target, ms);
            insert_waiter(c, op, done);
            op
        })
    }

    /// Makes `data` the answer to GETs on `portal` with `match_bits`.
    pub fn serve(&self, portal: u32, match_bits: u64, data: Vec<u8>) {
        self.shared
            .with(|c, _| c.lnet.serve(portal, match_bits, data));
    }

    /// Hands every PUT received from now on to `tap` (`None`: stop). PUTs to `PUT_PORTAL` are
    /// counted and digested as before.
    pub fn tap_puts(&self, tap: Option<mpsc::Sender<ReceivedPut>>) {
        *self
            .shared
            .taps
            .puts
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = tap;
    }

    /// The most recent connection closes (at most [`CONN_DOWNS_KEPT`]), oldest first.
    pub fn conn_downs(&self) -> Vec<ConnDown> {
        let g = self
            .shared
            .taps
            .downs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        g.iter().copied().collect()
    }

    /// LNet operations still waiting for their answer.
    pub fn lnet_ops_open(&self) -> usize {
        self.shared.lock().lnet.ops_open()
    }
}

/// Registers `done` for `op`. An operation that failed at once (no route, shutting down) has
/// its completion still inside the engine at this point: `pump` turns it into the LNet event
/// after the closure, so it reaches this waiter too.
fn insert_waiter(c: &mut Core, op: u64, done: &mpsc::Sender<LnetEvent>) {
    c.waiters.insert(op, done.clone().into());
}
