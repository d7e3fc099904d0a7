//! Instruction cost of the engine alone, per message: one node sends, the other receives,
//! through the same calls a runtime makes (send → tx_slices → tx_commit on one side,
//! handle_rx → Rx → recv → RxDone on the other, plus finalization), with nothing else in the
//! loop — no sockets, no harness queues. Run it under `valgrind --tool=callgrind` twice with two
//! message counts: the difference divided by the difference in counts is the marginal cost of
//! one message, free of start-up. `.ci/engine-cost` does exactly that and compares with the
//! baseline in `benches/engine_cost.baseline`.
//!
//! Usage: engine_cost <messages> <payload-bytes> [v1|v2|v3]

use std::hint::black_box;

use tdinal::engine::{Action, ConnAddrs, ConnId, Engine, Event, LocalNi, Time, Tunables};
use tdinal::wire::{LnetHdr, LnetMsg, Net, Nid, ProcessId, ProtoVersion, WireHandle};

type Eng = Engine<Vec<u8>, Vec<u8>>;

const A: Nid = Nid::new(Net::TCP0, 0x0a00_0001);
const B: Nid = Nid::new(Net::TCP0, 0x0a00_0002);
const NOW: Time = Time(1_000_000);

/// Moves everything `from` has to send on `fc` into `to`'s `tc`, answering events on the way.
fn pump(
    from: &mut Eng,
    fc: ConnId,
    to: &mut Eng,
    tc: ConnId,
    wire: &mut Vec<u8>,
    pool: &mut Vec<Vec<u8>>,
) -> bool {
    wire.clear();
    {
        let mut out: [&[u8]; 32] = [&[]; 32];
        let n = from.tx_slices(fc, &mut out);
        for s in &out[..n] {
            wire.extend_from_slice(s);
        }
    }
    if wire.is_empty() {
        return false;
    }
    from.tx_commit(NOW, fc, wire.len());
    let mut off = 0;
    while off < wire.len() {
        off += to.handle_rx(NOW, tc, &wire[off..]);
        answer(to, pool);
    }
    answer(from, pool);
    true
}

/// The upper layer: take every payload into a recycled buffer; finished messages give their
/// buffers back to the pool (as LNet's buffer pools do), so the figure is the engine's, not the
/// allocator's.
fn answer(e: &mut Eng, pool: &mut Vec<Vec<u8>>) {
    while let Some(ev) = e.poll_event() {
        match ev {
            Event::Rx { rx, hdr, .. } => {
                let len = hdr.payload_length;
                let mut sink = pool.pop().unwrap_or_default();
                sink.resize(len as usize, 0);
                e.recv(NOW, rx, Some(sink), len);
            }
            Event::RxDone {
                sink: Some(buf), ..
            }
            | Event::TxDone {
                payload: Some(buf), ..
            } => pool.push(buf),
            other => {
                black_box(other);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = match args.get(3).map(String::as_str) {
        Some("v1") => ProtoVersion::V1,
        Some("v2") => ProtoVersion::V2,
        _ => ProtoVersion::V3,
    };
    let cfg = Tunables {
        protocol: version,
        ..Tunables::default()
    };
    let mut a: Eng = Engine::new(
        LocalNi {
            nid: A,
            pid: 12345,
            incarnation: 1,
        },
        cfg.clone(),
        true,
    );
    let mut b: Eng = Engine::new(
        LocalNi {
            nid: B,
            pid: 12345,
            incarnation: 2,
        },
        cfg,
        true,
    );
    let (ia, ib) = (ProcessId::lustre(A), ProcessId::lustre(B));

    // One connection A → B (CONTROL), set up through the real handshake.
    a.connect_peer(NOW, ib, 0x0a00_0002, 988);
    let mut wire = Vec::with_capacity(1 << 16);
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut pairs: Vec<(ConnId, ConnId)> = Vec::new();
    // Bring up every typed connection, one at a time, as the engine asks.
    for _ in 0..8 {
        let Some(Action::Connect { conn, .. }) =
            std::iter::from_fn(|| a.poll_action()).find(|x| matches!(x, Action::Connect { .. }))
        else {
            break;
        };
        let port = 1023 - pairs.len() as u16;
        let bc = b
            .accepted(
                NOW,
                ConnAddrs {
                    local_ip: 0x0a00_0002,
                    local_port: 988,
                    peer_ip: 0x0a00_0001,
                    peer_port: port,
                },
            )
            .expect("accepted");
        a.connected(
            NOW,
            conn,
            ConnAddrs {
                local_ip: 0x0a00_0001,
                local_port: port,
                peer_ip: 0x0a00_0002,
                peer_port: 988,
            },
        );
        pairs.push((conn, bc));
        for _ in 0..4 {
            pump(&mut a, conn, &mut b, bc, &mut wire, &mut pool);
            pump(&mut b, bc, &mut a, conn, &mut wire, &mut pool);
        }
    }
    assert!(!pairs.is_empty(), "no connection came up");

    let payload = vec![0x5au8; size];
    let hdr = LnetHdr {
        dest_nid: B,
        src_nid: A,
        dest_pid: 12345,
        src_pid: 12345,
        payload_length: size as u32,
        msg: LnetMsg::Put {
            ack_wmd: WireHandle::NONE,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: 4,
            offset: 0,
        },
    };
    let peer_of = |c: ConnId, pairs: &[(ConnId, ConnId)], a_side: bool| {
        pairs
            .iter()
            .find(|p| if a_side { p.0 == c } else { p.1 == c })
            .map(|p| if a_side { p.1 } else { p.0 })
    };
    for _ in 0..count {
        let p = if size == 0 {
            None
        } else {
            Some(payload.clone())
        };
        a.send(NOW, ib, hdr, p);
        // As a runtime does: write only where the engine asked (Action::Send), deliver, and
        // answer the other side's requests the same way (ZC-ACKs for large payloads).
        let mut moved = true;
        while moved {
            moved = false;
            while let Some(act) = a.poll_action() {
                if let Action::Send { conn } = act {
                    if let Some(bc) = peer_of(conn, &pairs, true) {
                        moved |= pump(&mut a, conn, &mut b, bc, &mut wire, &mut pool);
                    }
                }
            }
            while let Some(act) = b.poll_action() {
                if let Action::Send { conn } = act {
                    if let Some(ac) = peer_of(conn, &pairs, false) {
                        moved |= pump(&mut b, conn, &mut a, ac, &mut wire, &mut pool);
                    }
                }
            }
        }
    }
    let sa = a.stats;
    assert_eq!(sa.tx_msgs_done, count, "every message finalized");
    assert_eq!(b.stats.rx_msgs, count);
    black_box(ia);
    eprintln!(
        "sent {count} messages of {size} bytes on {version:?}: tx_bytes {}",
        sa.tx_bytes
    );
}
