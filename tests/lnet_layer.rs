//! The LNet layer over an in-memory engine pair: ping both ways (the reply is Lustre's 48-byte
//! ping info), a discovery push answered with an LNet ACK, user PUTs with and without ACK, GETs,
//! unmatched PUTs dropped while their ZC cookies are still acknowledged.

use tdinal::engine::pair::{ip, Sim};
use tdinal::engine::{Error, Tunables};
use tdinal::lnet::LnetEvent;
use tdinal::wire::lnet::LNET_PROTO_PING_MATCHBITS;
use tdinal::wire::nid::LNET_PID_LUSTRE;
use tdinal::wire::ping::LNET_NI_STATUS_UP;
use tdinal::wire::{Nid, ProcessId};

fn sim() -> (Sim, ProcessId, ProcessId) {
    let mut sim = Sim::new(42);
    sim.add_node(ip(10, 0, 0, 1), 0xaaaa, Tunables::default());
    sim.add_node(ip(10, 0, 0, 2), 0xbbbb, Tunables::default());
    sim.with_lnet(0);
    sim.with_lnet(1);
    let (a, b) = (sim.nodes[0].id(), sim.nodes[1].id());
    (sim, a, b)
}

macro_rules! with_lnet {
    ($sim:expr, $i:expr, |$l:ident, $e:ident, $now:ident| $body:expr) => {{
        let $now = $sim.now;
        let node = &mut $sim.nodes[$i];
        let $l = node.lnet.as_mut().unwrap();
        let $e = &mut node.engine;
        let r = $body;
        while let Some(ev) = $l.poll_event() {
            node.lnet_events.push(ev);
        }
        r
    }};
}

#[test]
fn ping_both_ways_returns_lustre_ping_info() {
    let (mut sim, a, b) = sim();
    let op = with_lnet!(sim, 0, |l, e, now| l.ping(e, now, b, 5000));
    sim.run();
    let done = sim.nodes[0].lnet_events.iter().find_map(|ev| match ev {
        LnetEvent::PingDone {
            op: o,
            target,
            result,
        } if *o == op => Some((*target, result.clone())),
        _ => None,
    });
    let (target, result) = done.expect("ping answered");
    assert_eq!(target, b);
    let ids = result.expect("ping ok");
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].0.nid, Nid::LO_0);
    assert_eq!(
        ids[1],
        (ProcessId::new(b.nid, LNET_PID_LUSTRE), LNET_NI_STATUS_UP)
    );
    assert!(sim.nodes[1]
        .lnet_events
        .iter()
        .any(|ev| matches!(ev, LnetEvent::PingServed { from } if *from == a)));
    // And back, over the same connections.
    let op = with_lnet!(sim, 1, |l, e, now| l.ping(e, now, a, 5000));
    sim.run();
    assert!(sim.nodes[1].lnet_events.iter().any(|ev| matches!(ev, LnetEvent::PingDone { op: o, result: Ok(v), .. } if *o == op && v.len() == 2)));
}

#[test]
fn discovery_push_is_acknowledged_with_its_length() {
    let (mut sim, a, b) = sim();
    let info = with_lnet!(sim, 0, |l, e, now| {
        let _ = e;
        let _ = now;
        l.ping_info()
    });
    assert_eq!(
        info.len(),
        48,
        "16-byte header + 2 entries, as Lustre 2.16 sends"
    );
    let op = with_lnet!(sim, 0, |l, e, now| l.put(
        e,
        now,
        b,
        0,
        LNET_PROTO_PING_MATCHBITS,
        0,
        info.clone(),
        true
    ));
    sim.run();
    assert!(sim.nodes[0]
        .lnet_events
        .iter()
        .any(|ev| matches!(ev, LnetEvent::PutDone { op: o, result: Ok(48) } if *o == op)));
    assert!(sim.nodes[1].lnet_events.iter().any(
        |ev| matches!(ev, LnetEvent::PushReceived { from, nids } if *from == a && nids.len() == 2)
    ));
}

#[test]
fn user_put_get_and_unmatched_put() {
    let (mut sim, _a, b) = sim();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let op1 = with_lnet!(sim, 0, |l, e, now| l.put(
        e,
        now,
        b,
        9,
        77,
        5,
        data.clone(),
        true
    ));
    let op2 = with_lnet!(sim, 0, |l, e, now| l.put(
        e,
        now,
        b,
        9,
        78,
        6,
        vec![1, 2, 3],
        false
    ));
    // A PUT on the reserved portal with other match bits matches nothing: dropped, but its ZC
    // cookie (64 KiB payload) must still be acknowledged or the sender would stall.
    let op3 = with_lnet!(sim, 0, |l, e, now| l.put(
        e,
        now,
        b,
        0,
        5,
        0,
        vec![9; 65536],
        false
    ));
    with_lnet!(sim, 1, |l, e, now| {
        let _ = (e, now);
        l.serve(12, 1, vec![7; 5000])
    });
    let op4 = with_lnet!(sim, 0, |l, e, now| l.get(e, now, b, 12, 1, 4096, 5000));
    sim.run();
    let ev = &sim.nodes[0].lnet_events;
    assert!(ev
        .iter()
        .any(|e| matches!(e, LnetEvent::PutDone { op, result: Ok(200_000) } if *op == op1)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, LnetEvent::PutDone { op, result: Ok(0) } if *op == op2)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, LnetEvent::PutDone { op, result: Ok(0) } if *op == op3)));
    assert!(ev.iter().any(|e| matches!(e, LnetEvent::GetDone { op, result: Ok(d) } if *op == op4 && d.len() == 4096 && d.iter().all(|b| *b == 7))));
    let evb = &sim.nodes[1].lnet_events;
    assert!(evb.iter().any(|e| matches!(e, LnetEvent::PutReceived { portal: 9, match_bits: 77, hdr_data: 5, data: d, .. } if *d == data)));
    assert!(evb.iter().any(|e| matches!(e, LnetEvent::Dropped { .. })));
    assert_eq!(
        sim.nodes[0].engine.stats.zc_acks_received, 2,
        "both big PUTs acknowledged"
    );
    assert_eq!(sim.nodes[0].lnet.as_ref().unwrap().ops_open(), 0);
}

#[test]
fn ping_to_a_dead_node_fails() {
    let (mut sim, _a, b) = sim();
    sim.nodes[1].listening = false;
    let op = with_lnet!(sim, 0, |l, e, now| l.ping(e, now, b, 5000));
    sim.run();
    assert!(sim.nodes[0].lnet_events.iter().any(|ev| matches!(ev, LnetEvent::PingDone { op: o, result: Err(Error::HostUnreachable), .. } if *o == op)));
}
