//! The TDI transport (`docs/tdi.md`): tdinal as a TDI client of `\Device\Tcp`.
//!
//! - [`bindings`]: TDI constants, structures, handler types and the `TdiBuild*` functions;
//! - [`obj`]: address/connection/control objects, synchronous requests, threads, events;
//! - [`tsdu`]: the per-connection TSDU queue between the DISPATCH_LEVEL receive handlers and
//!   the scheduler; [`sendref`]: the two-reference send context and the wake flag — both
//!   model-checked with loom (`tests/tdi_loom.rs`) through the [`sync`] shim;
//! - [`conn`]: receive handlers, receive IRPs, the `TDI_SEND` path, connect completion;
//! - [`falloc`]: fallible allocation for DISPATCH_LEVEL code;
//! - [`acceptor`]: the listener, its backlog of child connection objects, `ClientEventConnect`;
//! - [`runtime`]: scheduler threads driving `Engine` + `Lnet` ([`TdiRuntime`]);
//! - [`lent`]: payloads and sinks over memory of the runtime's own or lent by a kernel LNet;
//! - [`upper`]: the kernel LNet bound through the NAL interface as the engine's upper layer.
//!
//! With the `tdi-emu` feature on Linux, [`emu`] serves the kernel routines all this calls from
//! user space, over real loopback sockets.

pub mod acceptor;
pub mod bindings;
pub mod conn;
pub mod falloc;
pub mod lent;
pub mod obj;
pub mod runtime;
pub mod sendref;
pub mod sync;
pub mod tsdu;
pub mod upper;

#[cfg(all(feature = "tdi-emu", target_os = "linux"))]
pub mod emu;

pub use runtime::{TdiConfig, TdiEngine, TdiLnet, TdiRuntime, TdiStats, TdiStopReport};
