//! The TDI layer under resource shortage, against the emulation (`--features tdi-emu`): a
//! receive handler that cannot take an indication answers `STATUS_DATA_NOT_ACCEPTED`, and after
//! that the transport makes no further receive indication on the connection until the client
//! posts a `TDI_RECEIVE` (`ClientEventReceive`, Remarks). The emulation models that rule; here
//! the mapping of chained-receive MDLs (`MmGetSystemAddressForMdlSafe`, which may return NULL
//! when system PTEs run short) fails a number of times, and traffic must still complete: every
//! refusal has to be followed by a receive request for the withheld data.
//!
//! Uses the loopback octets 127.X.150..=159.
#![cfg(all(feature = "tdi-emu", target_os = "linux"))]

#[path = "tdi_common/mod.rs"]
mod common;

use common::*;
use tdinal::lnet::LnetEvent;
use tdinal::tdi::emu;
use tdinal::tdi::TdiRuntime;
use tdinal::wire::ProcessId;

fn ping(rt: &TdiRuntime, ev: &mut Events, target: ProcessId) {
    let op = rt.with(|l, e, now| l.ping(e, now, target, 10_000));
    let r = ev.wait(rt, "ping reply", 20, |e| match e {
        LnetEvent::PingDone { op: o, result, .. } if *o == op => Some(result.clone()),
        _ => None,
    });
    if let Err(e) = r {
        panic!("ping of {target} failed: {e}");
    }
}

fn put_and_check(
    (a, ea): (&TdiRuntime, &mut Events),
    (b, eb): (&TdiRuntime, &mut Events),
    target: ProcessId,
    bits: u64,
) {
    let data = pattern(1 << 20, bits as u8);
    let op = a.with(|l, e, now| l.put(e, now, target, 9, bits, 5, data.clone(), true));
    let got = eb.wait(b, "PUT arrival", 20, |e| match e {
        LnetEvent::PutReceived {
            match_bits, data, ..
        } if *match_bits == bits => Some(data.clone()),
        _ => None,
    });
    assert_eq!(got, data, "PUT {bits} data");
    let r = ea.wait(a, "PUT completion", 20, |e| match e {
        LnetEvent::PutDone { op: o, result } if *o == op => Some(*result),
        _ => None,
    });
    assert_eq!(r, Ok(1 << 20));
}

/// Chained-receive MDLs that cannot be mapped: each refused indication must be followed by a
/// `TDI_RECEIVE` for the withheld data, or the connection stalls (the PUTs time out).
#[test]
fn refused_indications_are_pulled_with_a_receive() {
    let _g = serial();
    for (i, seed) in [3u64, 0x10_0001, 77].into_iter().enumerate() {
        emu::set_seed(seed);
        let net = 150 + i as u8;
        let (a_ip, b_ip) = (lo(net, 1), lo(net, 2));
        let a = start(config(a_ip, 0xa100 + seed, 988));
        let b = start(config(b_ip, 0xb100 + seed, 988));
        let (mut ea, mut eb) = (Events::default(), Events::default());
        ping(&a, &mut ea, pid(b_ip));
        ping(&b, &mut eb, pid(a_ip));
        let failed0 = emu::failed_mappings();
        let refused0 = emu::get(&emu::stats().data_not_accepted);
        let posted0 = emu::get(&emu::stats().posted_receives);
        emu::fail_mappings(6);
        for k in 0..3u64 {
            put_and_check((&a, &mut ea), (&b, &mut eb), pid(b_ip), 300 + k);
            put_and_check((&b, &mut eb), (&a, &mut ea), pid(a_ip), 400 + k);
        }
        let failed = emu::failed_mappings() - failed0;
        emu::fail_mappings(0);
        let refused = emu::get(&emu::stats().data_not_accepted) - refused0;
        let posted = emu::get(&emu::stats().posted_receives) - posted0;
        eprintln!(
            "seed {seed}: mappings failed {failed}, refused {refused}, receives posted {posted}"
        );
        assert!(
            failed > 0,
            "no mapping failed: the test did not exercise the refusal"
        );
        assert!(
            refused >= failed && posted > 0,
            "refused {refused}, posted {posted}"
        );
        stop_clean(a, "A");
        stop_clean(b, "B");
        assert_no_leaks();
    }
}

/// Pool exhaustion at DISPATCH_LEVEL: the receive handlers' allocations (the copy of an
/// indicated TSDU, the buffer and context of the `TDI_RECEIVE` for the rest of a partial
/// indication) fail. Each failure must refuse the indication (and have it pulled), never end in
/// an allocation-failure abort (a bug check in the kernel) nor lose data.
#[test]
fn dispatch_allocation_failures_refuse_and_pull() {
    let _g = serial();
    for (i, seed) in [5u64, 0x20_0003].into_iter().enumerate() {
        emu::set_seed(seed);
        let net = 155 + i as u8;
        let (a_ip, b_ip) = (lo(net, 1), lo(net, 2));
        let a = start(config(a_ip, 0xa200 + seed, 988));
        let b = start(config(b_ip, 0xb200 + seed, 988));
        let (mut ea, mut eb) = (Events::default(), Events::default());
        ping(&a, &mut ea, pid(b_ip));
        ping(&b, &mut eb, pid(a_ip));
        let failed0 = emu::failed_dispatch_allocations();
        let refused0 = emu::get(&emu::stats().data_not_accepted);
        emu::fail_dispatch_allocations(40);
        for k in 0..3u64 {
            put_and_check((&a, &mut ea), (&b, &mut eb), pid(b_ip), 500 + k);
            put_and_check((&b, &mut eb), (&a, &mut ea), pid(a_ip), 600 + k);
        }
        let failed = emu::failed_dispatch_allocations() - failed0;
        emu::fail_dispatch_allocations(0);
        let refused = emu::get(&emu::stats().data_not_accepted) - refused0;
        eprintln!("seed {seed}: DISPATCH_LEVEL allocations failed {failed}, refused {refused}");
        assert!(
            failed > 0,
            "no allocation failed: the test did not exercise the refusal"
        );
        assert!(refused >= failed, "failed {failed}, refused {refused}");
        stop_clean(a, "A");
        stop_clean(b, "B");
        assert_no_leaks();
    }
}
