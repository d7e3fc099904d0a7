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

/// The received PUTs' data on node `i`, in order (taken out of its event list).
fn take_puts(sim: &mut Sim, i: usize) -> Vec<Vec<u8>> {
    let evs = std::mem::take(&mut sim.nodes[i].lnet_events);
    evs.into_iter()
        .filter_map(|e| match e {
            LnetEvent::PutReceived { data, .. } => Some(data),
            _ => None,
        })
        .collect()
}

/// A buffer given back with `give_back` is reused as the sink of a later PUT: the shorter PUT
/// that lands in it has exactly its own bytes (nothing of the longer one before it), and the
/// buffer is handed to one message only.
#[test]
fn given_back_buffers_are_reused_once_and_carry_only_their_own_bytes() {
    let (mut sim, _a, b) = sim();
    let put = |sim: &mut Sim, data: Vec<u8>| {
        with_lnet!(sim, 0, |l, e, now| l.put(e, now, b, 9, 1, 0, data, true));
    };
    put(&mut sim, vec![0xaa; 3000]);
    sim.run();
    let mut got = take_puts(&mut sim, 1);
    assert_eq!(got.len(), 1);
    let long = got.remove(0);
    assert_eq!(long, vec![0xaa; 3000]);
    let ptr = long.as_ptr();
    with_lnet!(sim, 1, |l, e, now| {
        let _ = (e, now);
        l.give_back(long);
        assert_eq!(l.spare_buffers(), 1);
    });

    // Two PUTs at once: one gets the spare buffer, the other a new one.
    put(&mut sim, vec![0x11; 100]);
    put(&mut sim, vec![0x22; 200]);
    sim.run();
    let got = take_puts(&mut sim, 1);
    assert_eq!(got, vec![vec![0x11; 100], vec![0x22; 200]]);
    assert!(
        got.iter().any(|d| d.as_ptr() == ptr),
        "the buffer given back was reused"
    );
    assert_ne!(got[0].as_ptr(), got[1].as_ptr());
    assert_eq!(sim.nodes[1].lnet.as_ref().unwrap().spare_buffers(), 0);

    // Given back again, the buffers serve a PUT of 50 bytes of 0xff, then one of 2000 bytes of
    // 0x33 (longer than what the buffer last held): each sees exactly its own bytes.
    let mut spare = got;
    for (n, byte) in [(50usize, 0xffu8), (2000, 0x33)] {
        with_lnet!(sim, 1, |l, e, now| {
            let _ = (e, now);
            for d in spare.drain(..) {
                l.give_back(d);
            }
            assert_eq!(l.spare_buffers(), 2);
        });
        put(&mut sim, vec![byte; n]);
        sim.run();
        spare = take_puts(&mut sim, 1);
        assert_eq!(spare, vec![vec![byte; n]]);
        assert_eq!(sim.nodes[1].lnet.as_ref().unwrap().spare_buffers(), 1);
    }
}
