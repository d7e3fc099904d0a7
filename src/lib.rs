//! tdinal: Lustre's socklnd (LNet over TCP) as a Windows TDI client driver, in Rust.
//!
//! Layers (see `docs/architecture.md`); each may depend only on the ones above it:
//! - [`wire`]: byte layouts of LNet and socklnd, encode/decode, no allocation on parse.
//! - [`engine`]: the sans-IO socklnd protocol engine (handshake, peers, connections, RX/TX, ZC-ACKs).
//! - [`lnet`]: the minimal LNet layer above the engine (ping responder, discovery ACK, PUT/GET).
//! - [`ioctl`]: the ptlctl/lctl control interface, decoded and validated (portable).
//! - `runtime` (std): the user-space runtime over std sockets and threads.
//! - `kernel`, `tdi`, `driver` (driver / tdi-emu): the only places with `unsafe` FFI.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod engine;
pub mod ioctl;
pub mod lnet;
pub mod wire;

#[cfg(feature = "std")]
pub mod runtime;

/// The seam to the kernel: the one module through which the driver reaches kernel bindings
/// (our own declarations on the cross build, wdk-sys on the eWDK build, the emulation in tests).
#[cfg(any(feature = "driver", feature = "tdi-emu"))]
pub mod kernel;

/// The TDI transport: `\Device\Tcp` objects, acceptor, receive handlers, TSDU queue, IRP sends.
#[cfg(any(feature = "driver", feature = "tdi-emu"))]
pub mod tdi;

/// Driver entry/unload, control device, ioctl dispatch, kernel threads.
#[cfg(feature = "driver")]
pub mod driver;
