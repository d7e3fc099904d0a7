//! Shared helpers of the TDI tests (`mod` in each `tests/tdi_*.rs`).
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tdinal::engine::{LocalNi, Tunables};
use tdinal::lnet::LnetEvent;
use tdinal::tdi::emu;
use tdinal::tdi::{TdiConfig, TdiRuntime};
use tdinal::wire::nid::LNET_PID_LUSTRE;
use tdinal::wire::{Net, Nid, ProcessId};

/// Tests of one binary run one at a time, so the emulation's leak counters mean something.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
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
