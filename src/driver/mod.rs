//! The kernel driver: entry and unload, the control device (its DACL, its ioctls, the NAL
//! interface for the kernel LNet), registry tunables, the pool allocator, the panic handler,
//! tracing, and the few symbols a Rust `no_std` image needs that neither `core` nor
//! `ntoskrnl.exe` provides.
//!
//! Compiled for every build with the `driver` feature, so `cargo check --features driver` checks
//! it on the host too. What only makes sense inside a Windows kernel image (`#[global_allocator]`,
//! `#[panic_handler]`, the assembly symbols, the `DriverEntry` symbol itself) is additionally
//! gated on `target_os = "windows"` without `std`.
//!
//! All kernel calls go through [`crate::kernel`]; every `unsafe` block states why it is sound.

pub mod control;
pub mod entry;
pub mod lock;
pub mod nal;
pub mod nal_bind;
pub mod nal_if;
pub mod pool;
pub mod registry;
pub mod rt;
pub mod security;
pub mod trace;

/// The driver's bug-check code, raised by the panic handler ("TDNL" in ASCII, so it reads
/// in a crash dump). Parameters: line, column, file-name pointer, file-name length.
pub const TDINAL_BUGCHECK_PANIC: u32 = u32::from_be_bytes(*b"TDNL");
