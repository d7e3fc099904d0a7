//! Teardown against a transport that does not answer, against the emulation (`--features
//! tdi-emu`): a `TDI_CONNECT` to a host that never answers is cancelled (`IoCancelIrp`) and
//! waited for before the connection object is disassociated and closed, and a graceful
//! `TDI_DISCONNECT` whose FIN the peer never acknowledges is bounded (cancelled, then the
//! connection aborted) instead of holding the thread that tears the connection down.
//!
//! Uses the loopback octets 127.X.160..=169.
#![cfg(all(feature = "tdi-emu", target_os = "linux"))]

#[path = "tdi_common/mod.rs"]
mod common;

use common::*;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tdinal::lnet::LnetEvent;
use tdinal::tdi::emu;
use tdinal::tdi::{TdiRuntime, TdiStopReport};

/// Stops `rt` on another thread; panics if that takes longer than `secs` (the old code blocked
/// for good).
fn stop_within(rt: TdiRuntime, secs: u64) -> (TdiStopReport, Duration) {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let r = rt.stop();
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => (r, t0.elapsed()),
        Err(_) => panic!("TdiRuntime::stop still blocked after {secs} s"),
    }
}

/// A connect to a host that never answers, still pending at stop: cancelled, no violation
/// (disassociating with the connect pending is one), no leak, and the stop does not wait for
/// the connect timeout.
#[test]
fn pending_connect_is_cancelled_at_teardown() {
    let _g = serial();
    emu::set_seed(11);
    let (a_ip, b_ip) = (lo(160, 1), lo(160, 2));
    let mut cfg = config(a_ip, 0xa300, 988);
    cfg.connect_timeout_ms = 60_000;
    let a = start(cfg);
    let held0 = emu::get(&emu::stats().held);
    let cancelled0 = emu::get(&emu::stats().cancelled);
    emu::hold_connects(true);
    let _op = a.with(|l, e, now| l.ping(e, now, pid(b_ip), 30_000));
    wait_until("the TDI_CONNECT to be held", 10, || {
        emu::get(&emu::stats().held) > held0
    });
    let (_report, took) = stop_within(a, 20);
    emu::hold_connects(false);
    if let Some(v) = emu::violation() {
        panic!("kernel rule violated: {v}");
    }
    let cancelled = emu::get(&emu::stats().cancelled) - cancelled0;
    eprintln!("stop took {took:?}, connects cancelled {cancelled}");
    assert!(cancelled >= 1, "the pending connect was not cancelled");
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert_no_leaks();
}

/// A peer that never acknowledges our FIN: the graceful disconnect gives up after
/// `disconnect_timeout_ms`, the connection is aborted, and the stop finishes.
#[test]
fn unacknowledged_fin_is_bounded() {
    let _g = serial();
    emu::set_seed(12);
    let (a_ip, b_ip) = (lo(161, 1), lo(161, 2));
    let mut cfg = config(a_ip, 0xa400, 988);
    cfg.disconnect_timeout_ms = 300;
    let a = start(cfg);
    let b = start(config(b_ip, 0xb400, 988));
    let mut ea = Events::default();
    let op = a.with(|l, e, now| l.ping(e, now, pid(b_ip), 10_000));
    let r = ea.wait(&a, "ping reply", 20, |e| match e {
        LnetEvent::PingDone { op: o, result, .. } if *o == op => Some(result.is_ok()),
        _ => None,
    });
    assert!(r, "ping failed");
    let held0 = emu::get(&emu::stats().held);
    emu::deaf_peers(true);
    let (_report, took) = stop_within(a, 30);
    emu::deaf_peers(false);
    if let Some(v) = emu::violation() {
        panic!("kernel rule violated: {v}");
    }
    let held = emu::get(&emu::stats().held) - held0;
    eprintln!("stop took {took:?} with {held} FIN(s) never acknowledged");
    assert!(
        held >= 1,
        "no graceful disconnect was held: the test did not exercise it"
    );
    assert!(took < Duration::from_secs(15), "stop took {took:?}");
    let _ = b.stop();
    assert_no_leaks();
}
