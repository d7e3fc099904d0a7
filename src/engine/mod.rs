//! The socklnd protocol engine, sans-IO (in the style of quinn-proto and smoltcp).
//!
//! [`Engine`] is one LNet NI's socklnd: peers, typed connections, the handshake with its
//! passive-driven version fallback, races and incarnations, the RX and TX state machines,
//! zero-copy cookies with piggybacked ZC-ACKs, keepalives and timeouts. It has no threads, locks,
//! clocks or sockets. Its two faces (see `docs/upper-interface.md`):
//!
//! - **Upper layer** (LNet): [`Engine::send`], [`Engine::recv`]; events [`Event::Rx`],
//!   [`Event::RxDone`], [`Event::TxDone`] (each message finalized exactly once), peer/conn news.
//! - **Runtime** (sockets or TDI): [`Action`]s to perform; [`Engine::accepted`],
//!   [`Engine::connected`], [`Engine::rx_buffer`]/[`Engine::rx_commit`] (or
//!   [`Engine::handle_rx`]), [`Engine::tx_slices`]/[`Engine::tx_commit`], [`Engine::eof`],
//!   [`Engine::release`], [`Engine::handle_timeout`].
//!
//! Behaviour per protocol version lives in one table ([`proto`]), as in ksocklnd.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod conn;
#[allow(clippy::module_inception)]
mod engine;
#[cfg(any(test, feature = "std"))]
pub mod fuzzing;
pub mod handshake;
#[cfg(any(test, feature = "std"))]
pub mod pair;
pub mod payload;
mod peer;
pub mod proto;
pub mod rx;
pub mod stats;
mod table;
pub mod tunables;
pub mod tx;
pub mod types;
pub mod zc;

pub use engine::Engine;
pub use payload::{Frags, RxSink, TxPayload};
pub use stats::Stats;
pub use tunables::{AcceptPolicy, Tunables};
pub use types::{
    Action, ConnAddrs, ConnId, ConnInfo, Error, Event, LocalNi, PeerInfo, RxId, Time, TxId,
};
