//! The user-space runtime: drives one socklnd [`Engine`](crate::engine::Engine) and its
//! [`Lnet`](crate::lnet::Lnet) over real TCP sockets with std threads, as the Windows driver
//! drives them over TDI (`docs/runtime.md`):
//!
//! - an **acceptor** thread listening on `ip:accept_port` ([`acceptor`]);
//! - **one scheduler thread per CPU**, each owning the sockets of its connections: poll(2)
//!   readiness plays the TDI receive event, bytes go straight from the socket into the engine's
//!   receive buffer, and one send per connection is in flight at a time, committed when it
//!   completes ([`sched`]);
//! - a **reaper** thread for timeouts;
//! - one lock around the engine and the LNet layer, held for short, bounded steps.
//!
//! [`Node`] is the API (the CLI, the control socket and the demo use it); [`control`] is the
//! daemon's control socket; [`config`] reads Lustre tunables by name.
#![cfg(unix)]

pub mod acceptor;
pub mod bench;
pub mod config;
pub mod control;
pub mod log;
pub mod nal;
pub mod node;
pub mod sched;
pub mod sys;
pub mod traffic;

pub use config::NodeConfig;
pub use node::{
    data_hash, put_digest, put_pattern, ConnMeta, ConnView, ConnectFailure, Node, NodeHandle,
    NodeStats, PutCounters, PutReport, ShutdownReport, StartError, PUT_PORTAL,
};
pub use traffic::{ConnDown, ReceivedPut};
