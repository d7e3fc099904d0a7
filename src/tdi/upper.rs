//! The external upper layer: a kernel LNet bound through the NAL interface
//! (`docs/nal-interface.md`) in place of the runtime's own `Lnet` layer.
//!
//! Three queues keep the IRQL rules. LNet's entry points (≤ DISPATCH_LEVEL) only push a
//! [`Request`] under a spin lock and wake scheduler 0. Scheduler 0 applies the requests to the
//! engine through the [`Forwarder`] under the engine lock (PASSIVE_LEVEL); the forwarder turns
//! engine events into [`Upcall`]s, which `drain` moves to a second spin-locked queue; scheduler
//! 0 delivers them to the [`UpcallTarget`] (LNet's callbacks) with no lock held. One thread
//! delivers, so LNet sees `Parse` and `Finalize` in the order the engine produced them.
//!
//! Exactly once: every `Send`/`Recv` request carries LNet's cookie; the forwarder remembers it
//! by `TxId`/`RxId` until the engine's one `TxDone`/`RxDone`, or finalizes it itself when the
//! request is refused (bad arguments, stale handle) or cancelled (stop). `Parse` handles are
//! the forwarder's own numbers (never 0), mapped to the engine's `RxId` until LNet's one
//! `Recv` (or the refusal of the `Parse`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::lent::{LentPayload, LentSink, NalPayload, NalSink};
use crate::engine::{Engine, Error, Event, RxId, Time, TxId};
use crate::wire::{LnetHdr, Nid, ProcessId};
use alloc::collections::{BTreeMap, VecDeque};

/// LNet's opaque message cookie (`MsgCookie`), as an integer.
pub type Cookie = usize;

/// Length of an encoded LNet header.
pub const HDR_LEN: usize = 72;

/// Why a message was finalized without success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The engine failed it (connection closed, checksum, timeout, …).
    Engine(Error),
    /// The entry point's arguments were refused (header, fragments, length, stale handle).
    Invalid,
    /// The runtime stopped or the binding was released before the message could complete.
    Cancelled,
}

/// What an entry point queues for scheduler 0.
#[derive(Debug)]
pub enum Request {
    Send {
        target: ProcessId,
        hdr: LnetHdr,
        payload: Option<LentPayload>,
        cookie: Cookie,
    },
    Recv {
        handle: u64,
        sink: Option<LentSink>,
        mlen: u32,
        cookie: Cookie,
    },
    /// A `Recv`/`RecvPages` whose arguments were refused: the payload is discarded (the handle
    /// is consumed, the connection goes on) and the request finalized with `why`.
    RecvRefused {
        handle: u64,
        cookie: Cookie,
        why: Failure,
    },
    /// LNet's `Parse` refused the message.
    Reject { handle: u64 },
    /// LNet thinks `nid` is dead: close its connections.
    PeerDead { nid: Nid },
    /// Finalize at once with `why` (the entry point refused its arguments).
    Refuse { cookie: Cookie, why: Failure },
}

/// What scheduler 0 delivers to LNet.
#[derive(Debug)]
pub enum Upcall {
    Parse {
        hdr: [u8; HDR_LEN],
        from: ProcessId,
        handle: u64,
    },
    Finalize {
        cookie: Cookie,
        result: Result<u32, Failure>,
    },
    PeerNotify {
        nid: Nid,
        alive: bool,
    },
}

/// LNet's callbacks (the driver implements it over `TDINAL_LNET_CALLBACKS`). Called at
/// PASSIVE_LEVEL with no runtime lock held.
pub trait UpcallTarget: Send + Sync {
    /// Delivers one upcall; for `Parse`, `false` means LNet refused the message.
    fn deliver(&self, up: Upcall) -> bool;
}

/// Counters of the forwarder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwarderStats {
    pub sends: u64,
    pub recvs: u64,
    pub parses: u64,
    pub finalized: u64,
    pub refused: u64,
}

/// The engine's upper layer while a kernel LNet is bound (lives behind the engine lock).
pub struct Forwarder {
    next_handle: u64,
    /// `Parse` handles waiting for LNet's `Recv`.
    parsed: BTreeMap<u64, RxId>,
    /// Receives waiting for the engine's `RxDone`.
    rx_cookies: BTreeMap<RxId, Cookie>,
    /// Sends waiting for the engine's `TxDone`.
    tx_cookies: BTreeMap<TxId, Cookie>,
    upcalls: VecDeque<Upcall>,
    pub stats: ForwarderStats,
}

type Eng = Engine<NalPayload, NalSink>;

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    pub fn new() -> Forwarder {
        Forwarder {
            next_handle: 1,
            parsed: BTreeMap::new(),
            rx_cookies: BTreeMap::new(),
            tx_cookies: BTreeMap::new(),
            upcalls: VecDeque::new(),
            stats: ForwarderStats::default(),
        }
    }

    /// Messages of LNet's still inside the engine (sends and receives not finalized yet).
    pub fn outstanding(&self) -> usize {
        self.tx_cookies.len().saturating_add(self.rx_cookies.len())
    }

    /// `Parse` handles LNet has not answered yet.
    pub fn parsed_open(&self) -> usize {
        self.parsed.len()
    }

    pub fn poll_upcall(&mut self) -> Option<Upcall> {
        self.upcalls.pop_front()
    }

    fn finalize(&mut self, cookie: Cookie, result: Result<u32, Failure>) {
        self.stats.finalized = self.stats.finalized.wrapping_add(1);
        if result.is_err() {
            self.stats.refused = self
                .stats
                .refused
                .wrapping_add(u64::from(matches!(result, Err(Failure::Invalid))));
        }
        self.upcalls.push_back(Upcall::Finalize { cookie, result });
    }

    /// Applies one request of LNet's to the engine.
    pub fn apply(&mut self, eng: &mut Eng, now: Time, req: Request) {
        match req {
            Request::Send {
                target,
                hdr,
                payload,
                cookie,
            } => {
                self.stats.sends = self.stats.sends.wrapping_add(1);
                let tx = eng.send(now, target, hdr, payload.map(NalPayload::Lent));
                // The engine's TxDone for `tx` (even one produced inside `send`) is still in its
                // event queue: it is read after this insertion.
                self.tx_cookies.insert(tx, cookie);
            }
            Request::Recv {
                handle,
                sink,
                mlen,
                cookie,
            } => match self.parsed.remove(&handle) {
                Some(rx) => {
                    self.stats.recvs = self.stats.recvs.wrapping_add(1);
                    self.rx_cookies.insert(rx, cookie);
                    match sink {
                        Some(s) => eng.recv(now, rx, Some(NalSink::Lent(s)), mlen),
                        None => eng.recv(now, rx, None, 0),
                    }
                }
                None => self.finalize(cookie, Err(Failure::Invalid)),
            },
            Request::RecvRefused {
                handle,
                cookie,
                why,
            } => {
                if let Some(rx) = self.parsed.remove(&handle) {
                    eng.recv(now, rx, None, 0);
                }
                self.finalize(cookie, Err(why));
            }
            Request::Reject { handle } => {
                if let Some(rx) = self.parsed.remove(&handle) {
                    eng.reject(now, rx, "LNet refused the message");
                }
            }
            Request::PeerDead { nid } => {
                eng.close_conns(now, Some(nid), None);
            }
            Request::Refuse { cookie, why } => self.finalize(cookie, Err(why)),
        }
    }

    /// Handles one engine event.
    pub fn handle_event(&mut self, now: Time, ev: Event<NalPayload, NalSink>) {
        let _ = now;
        match ev {
            Event::Rx { rx, peer, hdr } => {
                let mut bytes = [0u8; HDR_LEN];
                let handle = self.next_handle;
                self.next_handle = self.next_handle.wrapping_add(1).max(1);
                self.stats.parses = self.stats.parses.wrapping_add(1);
                // A header the engine decoded always encodes back (same fields, 72 bytes).
                let _ = hdr.encode(&mut bytes);
                self.parsed.insert(handle, rx);
                self.upcalls.push_back(Upcall::Parse {
                    hdr: bytes,
                    from: peer,
                    handle,
                });
            }
            Event::RxDone { rx, sink, result } => {
                // The sink (LNet's memory) is dropped here: the engine is done with it.
                drop(sink);
                if let Some(cookie) = self.rx_cookies.remove(&rx) {
                    self.finalize(cookie, result.map_err(Failure::Engine));
                }
            }
            Event::TxDone {
                tx,
                payload,
                result,
            } => {
                let len = payload.as_ref().map_or(0, |p| {
                    u32::try_from(crate::engine::TxPayload::len(p)).unwrap_or(u32::MAX)
                });
                drop(payload);
                if let Some(cookie) = self.tx_cookies.remove(&tx) {
                    self.finalize(cookie, result.map(|()| len).map_err(Failure::Engine));
                }
            }
            Event::PeerDown { peer } => self.upcalls.push_back(Upcall::PeerNotify {
                nid: peer.nid,
                alive: false,
            }),
            Event::ConnUp { .. } | Event::ConnDown { .. } | Event::VersionFallback { .. } => {}
        }
    }

    /// Puts back an upcall that could not be queued for delivery (it stays first).
    pub fn unpoll_upcall(&mut self, up: Upcall) {
        self.upcalls.push_front(up);
    }

    /// Discards the payload of every `Parse` LNet has not answered (unbinding): the engine
    /// reads it and drops it; no `Finalize` (LNet gave no cookie for them).
    pub fn discard_parsed(&mut self, eng: &mut Eng, now: Time) {
        let open = core::mem::take(&mut self.parsed);
        for rx in open.into_values() {
            eng.recv(now, rx, None, 0);
        }
    }

    /// A request that will never be applied (the runtime stopped): a `Send`/`Recv`/`Refuse` is
    /// finalized (`Cancelled`, or its refusal), the lent memory given back untouched.
    pub fn cancel_request(&mut self, req: Request) {
        match req {
            Request::Send { cookie, .. } | Request::Recv { cookie, .. } => {
                self.finalize(cookie, Err(Failure::Cancelled))
            }
            Request::Refuse { cookie, why } | Request::RecvRefused { cookie, why, .. } => {
                self.finalize(cookie, Err(why))
            }
            Request::Reject { handle } => {
                self.parsed.remove(&handle);
            }
            Request::PeerDead { .. } => {}
        }
    }

    /// The runtime is stopping (the engine already shut down and released everything): what the
    /// engine never answered is finalized `Cancelled`, and `Parse` handles are forgotten.
    pub fn cancel_all(&mut self) {
        self.parsed.clear();
        let tx: alloc::vec::Vec<Cookie> = self.tx_cookies.values().copied().collect();
        let rx: alloc::vec::Vec<Cookie> = self.rx_cookies.values().copied().collect();
        self.tx_cookies.clear();
        self.rx_cookies.clear();
        for c in tx.into_iter().chain(rx) {
            self.finalize(c, Err(Failure::Cancelled));
        }
    }
}
