//! Shared helpers of the TDI tests (`mod` in each `tests/tdi_*.rs`).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tdinal::engine::{ConnAddrs, LocalNi, Tunables};
use tdinal::lnet::LnetEvent;
use tdinal::tdi::emu;
use tdinal::tdi::{TdiConfig, TdiRuntime};
use tdinal::wire::nid::LNET_PID_LUSTRE;
use tdinal::wire::{ConnType, Net, Nid, ProcessId};

/// Tests of one binary run one at a time, so the emulation's leak counters mean something.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// The second octet of this run's loopback addresses (127.X.…), from the process id. The
/// runtime tests use 100..=199 (`tests/runtime_common`), the TDI tests 200..=249: the two never
/// share an address (each listens on port 988), and two runs of the TDI tests at the same time
/// collide only when their process ids agree modulo 50.
pub fn run_octet() -> u8 {
    (200 + std::process::id() % 50) as u8
}

/// This run's loopback address 127.X.`c`.`d` (host order). Each test (and each seed) uses a
/// third octet of its own: tdi_pair 10..=19, 30 and 31, tdi_faults 40..=49 and 50..=149,
/// tdi_linux 160..=179.
pub fn lo(c: u8, d: u8) -> u32 {
    ip(127, run_octet(), c, d)
}

pub fn sock(ip: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), port)
}

/// (local, peer) of a connection as socket addresses.
pub fn ends(a: &ConnAddrs) -> (SocketAddrV4, SocketAddrV4) {
    (sock(a.local_ip, a.local_port), sock(a.peer_ip, a.peer_port))
}

/// Polls `f` every 5 ms until it holds; panics after `secs` (or at a kernel-rule violation).
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if f() {
            return t0.elapsed();
        }
        if let Some(v) = emu::violation() {
            panic!("kernel rule violated: {v}");
        }
        if t0.elapsed() >= Duration::from_secs(secs) {
            panic!("timed out after {secs} s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The types of `rt`'s established connections to `peer`.
pub fn conn_types(rt: &TdiRuntime, peer: ProcessId) -> Vec<ConnType> {
    rt.with(|_, e, _| {
        e.conns()
            .iter()
            .filter(|c| c.peer == peer)
            .map(|c| c.ctype)
            .collect()
    })
}

/// A typed connection set is complete (CONTROL, BULK_IN and BULK_OUT) or empty: either way
/// the next message to the peer can be answered (a partial set may not allow the peer to
/// answer at all, e.g. only BULK_OUT left on V3, which the peer may not send LNet messages on).
pub fn complete_or_none(types: &[ConnType]) -> bool {
    types.is_empty()
        || [ConnType::Control, ConnType::BulkIn, ConnType::BulkOut]
            .iter()
            .all(|t| types.contains(t))
}

/// Stops a runtime and checks its report (engine idle, gauges zero, no LNet operation left,
/// nothing torn down by force).
pub fn stop_clean(rt: TdiRuntime, who: &str) {
    let r = rt.stop();
    if let Err(e) = r.check() {
        panic!("{who}: {e}; {r:?}");
    }
}

/// The emulation's leak counters are zero (everything allocated was freed, every retained
/// TSDU returned). Process-wide: call with the `serial()` guard held, after every runtime of
/// the test has stopped.
pub fn assert_no_leaks() {
    // Leftovers of an orderly stop are bugs; give completions a moment to settle.
    let mut o = emu::outstanding();
    for _ in 0..200 {
        if o.irps == 0 && o.mdls == 0 && o.handles == 0 && o.chained_tsdus == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        o = emu::outstanding();
    }
    assert_eq!(o.irps, 0, "IRPs leaked: {o:?}");
    assert_eq!(o.mdls, 0, "MDLs leaked: {o:?}");
    assert_eq!(o.handles, 0, "handles leaked: {o:?}");
    assert_eq!(o.chained_tsdus, 0, "chained TSDUs not returned: {o:?}");
    assert_eq!(o.objects, 0, "objects leaked: {o:?}");
    assert_eq!(o.pool_blocks, 0, "pool blocks leaked: {o:?}");
}

/// Seeds for a repeated test: `default`, or 1..=N when `TDINAL_TDI_SEEDS=N` is set (e.g. 30
/// to show a fault test is stable).
pub fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("TDINAL_TDI_SEEDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(n) => (1..=n.clamp(1, 90)).collect(),
        None => default.to_vec(),
    }
}

pub fn pid(addr: u32) -> ProcessId {
    ProcessId::new(Nid::new(Net::TCP0, addr), LNET_PID_LUSTRE)
}

pub fn config(addr: u32, incarnation: u64, port: u16) -> TdiConfig {
    let t = Tunables {
        accept_port: port,
        ..Tunables::default()
    };
    TdiConfig {
        ni: LocalNi {
            nid: Nid::new(Net::TCP0, addr),
            pid: LNET_PID_LUSTRE,
            incarnation,
        },
        tunables: t,
        local_ip: addr,
        listen_port: None,
        backlog: 4,
        schedulers: 2,
        connect_timeout_ms: 5000,
        disconnect_timeout_ms: 3000,
    }
}

pub fn start(cfg: TdiConfig) -> TdiRuntime {
    TdiRuntime::start(cfg).unwrap_or_else(|st| panic!("TdiRuntime::start failed: {:#x}", st as u32))
}

/// Events a node produced that a test did not consume yet.
#[derive(Default)]
pub struct Events(pub Vec<LnetEvent>);

impl Events {
    /// Waits (bounded) for an event matching `f`, keeping the others.
    pub fn wait<T>(
        &mut self,
        rt: &TdiRuntime,
        what: &str,
        secs: u64,
        mut f: impl FnMut(&LnetEvent) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            while let Some(e) = rt.poll_event() {
                self.0.push(e);
            }
            if let Some(pos) = self.0.iter().position(|e| f(e).is_some()) {
                let e = self.0.remove(pos);
                if let Some(v) = f(&e) {
                    return v;
                }
            }
            if let Some(v) = emu::violation() {
                panic!("kernel rule violated: {v}");
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}; events seen: {:?}", self.0);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Deterministic test data.
pub fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ salt)
        .collect()
}
