//! A user-space emulation of the parts of the Windows kernel the TDI layer calls, and of
//! `\Device\Tcp` on top of real loopback sockets — so `src/tdi` runs for real in `cargo test`.
//!
//! Test-only: compiled with the `tdi-emu` feature on Linux hosts, never in a driver build. The
//! kernel seam (`src/kernel`) declares the kernel routines as plain `extern "system"` functions on
//! host builds; this module *defines* them (`#[no_mangle] extern "system"`, real names, real
//! ABI), so the TDI code calls exactly what it would call in the kernel and the linker resolves
//! those calls here. (It lives in the library rather than under `tests/` so every test binary
//! and the library's own unit tests get the symbols without a second copy.)
//!
//! - [`kernel`]: per-thread IRQL with the Driver-Verifier-style checks, spin locks, events and
//!   waits, system threads, pool, the object manager (handles, `ObReferenceObjectByHandle`,
//!   `ZwCreateFile` with TDI EA buffers, `ZwClose`), IRPs (`IoAllocateIrp`, `IofCallDriver`,
//!   `IofCompleteRequest` honouring completion routines and `STATUS_MORE_PROCESSING_REQUIRED`),
//!   MDLs.
//! - [`tcp`]: the transport: address objects (bound sockets), connection objects, the listener
//!   with `ClientEventConnect`, `TDI_CONNECT`/`SEND`/`RECEIVE`/`DISCONNECT`/... on real sockets,
//!   indications from reader threads at DISPATCH_LEVEL in random chunks, random completion
//!   orders.
//!
//! A violation of a kernel rule panics with a message starting `tdi-emu:`. Inside an
//! `extern "system"` routine a panic cannot unwind, so the test process aborts after printing it
//! — loudly, which is the point (it stands in for a Driver Verifier bug check).
#![allow(
    non_snake_case,
    clippy::missing_safety_doc,
    clippy::not_unsafe_ptr_arg_deref,
    clippy::should_implement_trait
)]

pub mod kernel;
pub mod tcp;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the emulated transport did, to show a test run covered the interesting
/// orders and shapes (cumulative over the process).
#[derive(Default)]
pub struct Stats {
    /// IRPs completed before `IofCallDriver` returned, which returned the final status.
    pub completed_inline: AtomicU64,
    /// IRPs marked pending and completed before `IofCallDriver` returned `STATUS_PENDING`.
    pub pending_completed_inline: AtomicU64,
    /// IRPs completed by another thread after `IofCallDriver` returned `STATUS_PENDING`
    /// (the completion may still race with the submitter's return).
    pub completed_async: AtomicU64,
    /// `TDI_SEND` IRPs, and of those the ones completed inline.
    pub sends: AtomicU64,
    pub sends_inline: AtomicU64,
    /// `ClientEventReceive` calls, and those with `BytesIndicated < BytesAvailable`.
    pub receive_indications: AtomicU64,
    pub partial_indications: AtomicU64,
    /// IRPs a receive handler returned for the rest of a partial indication.
    pub receive_irps_from_handler: AtomicU64,
    /// `ClientEventChainedReceive` calls, and those the client retained (`STATUS_PENDING`).
    pub chained_indications: AtomicU64,
    pub chained_retained: AtomicU64,
    /// Chained TSDUs retained and not yet returned with `TdiReturnChainedReceives`.
    pub chained_outstanding: AtomicU64,
    /// Indications refused with `STATUS_DATA_NOT_ACCEPTED`.
    pub data_not_accepted: AtomicU64,
    /// `TDI_RECEIVE` IRPs posted through `IofCallDriver`.
    pub posted_receives: AtomicU64,
    /// `ClientEventConnect` calls and accepts.
    pub connect_indications: AtomicU64,
    pub accepts: AtomicU64,
    /// `ClientEventDisconnect` calls (release / abort) and `ClientEventError` calls.
    pub disconnect_release: AtomicU64,
    pub disconnect_abort: AtomicU64,
    pub error_indications: AtomicU64,
    /// Bytes written to and read from the real sockets.
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Requests held pending by `hold_connects` / `deaf_peers`, and IRPs the transport
    /// completed because the client cancelled them (`IoCancelIrp`).
    pub held: AtomicU64,
    pub cancelled: AtomicU64,
}

static STATS: std::sync::LazyLock<Stats> = std::sync::LazyLock::new(Stats::default);

/// The counters.
pub fn stats() -> &'static Stats {
    &STATS
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The system affinities `KeSetSystemAffinityThreadEx` applied since the last call (it empties
/// the record), in order: one processor mask per pinned thread.
pub fn system_affinities() -> Vec<usize> {
    std::mem::take(&mut *kernel::lock(&kernel::AFFINITIES_SET))
}

/// The record `system_affinities` would return, left in place.
pub fn system_affinities_peek() -> Vec<usize> {
    kernel::lock(&kernel::AFFINITIES_SET).clone()
}

static SEED: AtomicU64 = AtomicU64::new(0x5eed_0001);

/// Sets the base seed of the transport's random choices (completion order per IRP, chunk sizes,
/// indication kinds). Each endpoint derives its own stream from the seed and its creation
/// number; thread scheduling still varies from run to run.
pub fn set_seed(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
}

pub(crate) fn seed() -> u64 {
    SEED.load(Ordering::Relaxed)
}

/// What is still allocated in the emulated kernel (for leak checks at the end of a test).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outstanding {
    pub irps: usize,
    pub mdls: usize,
    pub handles: usize,
    pub objects: usize,
    pub pool_blocks: usize,
    pub chained_tsdus: usize,
}

/// Snapshot of [`Outstanding`] (process-wide: tests running in parallel add to it).
pub fn outstanding() -> Outstanding {
    kernel::outstanding()
}

/// The first kernel-rule violation seen (also reported by a panic where it happened).
pub fn violation() -> Option<String> {
    kernel::first_violation()
}

/// Makes the transport reset every connection whose local and peer addresses match `pred`, as
/// if the network had: the local client gets `ClientEventError` and `ClientEventDisconnect`
/// (abort), and the peer's socket gets an RST. Only connections whose TCP connection exists
/// are matched (one still connecting is not). The reset takes effect on each connection's
/// reader thread within a poll period (20 ms): until then its data still flows. Returns the
/// `(local, peer)` addresses of the connections reset.
pub fn inject_reset(
    pred: impl Fn(std::net::SocketAddrV4, std::net::SocketAddrV4) -> bool,
) -> Vec<(std::net::SocketAddrV4, std::net::SocketAddrV4)> {
    tcp::inject_reset(&pred)
}

/// Makes the next `n` mappings of MDLs into system space (`MmMapLockedPagesSpecifyCache`, what
/// `MmGetSystemAddressForMdlSafe` calls for an MDL not yet mapped) fail with NULL, as they may
/// when system PTEs run short; while failures are pending, chained-receive TSDUs come in MDLs
/// that are locked but not mapped. (Process-wide, like the rest of the emulation.)
pub fn fail_mappings(n: u32) {
    kernel::fail_mappings(n);
}

/// Mappings failed on purpose so far (process-wide).
pub fn failed_mappings() -> u64 {
    kernel::FAILED_MAPPINGS.load(Ordering::Relaxed)
}

/// Makes the next `n` pool allocations made at DISPATCH_LEVEL fail, as pool exhaustion would
/// (the TDI layer's DISPATCH_LEVEL contexts come from the pool: `tdi::falloc::PoolBox`).
pub fn fail_dispatch_allocations(n: u32) {
    kernel::fail_dispatch_allocations(n);
}

/// DISPATCH_LEVEL allocations failed on purpose so far (process-wide).
pub fn failed_dispatch_allocations() -> u64 {
    kernel::FAILED_DISPATCH_ALLOCS.load(Ordering::Relaxed)
}

/// While set, `TDI_CONNECT`s stay pending as if to a host that never answers, until the
/// client cancels them (`IoCancelIrp`), closes the connection object, or aborts.
pub fn hold_connects(on: bool) {
    tcp::HOLD_CONNECTS.store(on, Ordering::SeqCst);
}

/// While set, graceful `TDI_DISCONNECT`s stay pending as if the peer never acknowledged the
/// FIN, until the client cancels them (`IoCancelIrp`), aborts the connection
/// (`TDI_DISCONNECT_ABORT`) or closes the connection object.
pub fn deaf_peers(on: bool) {
    tcp::DEAF_PEERS.store(on, Ordering::SeqCst);
}

/// Simple xorshift64* generator used by the emulation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}
