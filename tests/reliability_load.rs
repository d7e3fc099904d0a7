//! Load: dozens of nodes in this process on distinct loopback addresses, hundreds of
//! connections between them, sustained mixed traffic for a bounded time — PUTs of mixed sizes
//! (0 B to 1 MiB) with and without LNet ACK, GETs, pings — and then the accounting:
//!
//! * every operation completes exactly once (none lost, none twice), with no error;
//! * every PUT arrives exactly once at its target (sequence numbers per sender → receiver pair)
//!   and intact: its header names sender, receiver, sequence number, length and the checksum of
//!   the body, the header's own checksum travels in `hdr_data`, and the body is compared byte
//!   for byte with what the sender generated (so the carried checksum is checked too);
//! * every GET's REPLY is the served data, byte for byte;
//! * every node shuts down clean (engine gauges zero, no LNet operation open), and the process
//!   heap is back to where it was before the first node started (bytes and blocks).
//!
//! CI runs it for `TDINAL_SOAK_SECS` (default 15) seconds with `TDINAL_SOAK_NODES` (default 24)
//! nodes; a longer run: `TDINAL_SOAK_SECS=300 cargo test --release --test reliability_load --
//! --nocapture` (the figures are printed).

mod reliability_common;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reliability_common::alloc::{self, Counting, Pool};
use reliability_common::*;
use tdinal::engine::Error;
use tdinal::lnet::LnetEvent;
use tdinal::runtime::{data_hash, Node, NodeHandle, ReceivedPut};
use tdinal::wire::{Nid, ProcessId};

#[global_allocator]
static ALLOC: Counting = Counting;

/// PUTs of the load go here (not `PUT_PORTAL`: the runtime would hash them again).
const LOAD_PORTAL: u32 = 44;
/// GETs are served from here, match bits 0..SERVED.
const GET_PORTAL: u32 = 45;
const SERVED: u64 = 4;
const MAGIC: u32 = 0x10ad_7e57;
/// Header of every load payload: magic, sender, receiver, sequence, length, body checksum,
/// header checksum is in `hdr_data`.
const HDR: usize = 32;
/// Bodies come from this many random buffers of 1 MiB.
const POOL: usize = 16;
const MIB: usize = 1 << 20;

/// Payload sizes (whole payload, header included; below `HDR` the payload is just a header
/// prefix, or nothing).
const SIZES: &[usize] = &[
    0,
    1,
    8,
    31,
    32,
    100,
    1000,
    1023,
    1024,
    2048,
    4095,
    4096,
    9000,
    16383,
    16384,
    16385,
    32768,
    65536,
    100_000,
    131_072,
    262_144,
    500_000,
    524_288,
    786_432,
    1_000_000,
    MIB - 1,
    MIB,
];

struct Shared {
    pool: Vec<Vec<u8>>,
    /// Checksum of pool[b][HDR..len], by (b, len).
    sums: Mutex<HashMap<(usize, usize), u64>>,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let pool = (0..POOL)
            .map(|_| {
                let mut v = vec![0u8; MIB];
                for w in v.chunks_exact_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    w.copy_from_slice(&x.to_le_bytes());
                }
                v
            })
            .collect();
        Shared {
            pool,
            sums: Mutex::new(HashMap::new()),
        }
    })
}

fn body_sum(b: usize, len: usize) -> u64 {
    let s = shared();
    if len <= HDR {
        return 0;
    }
    if let Some(v) = s.sums.lock().unwrap().get(&(b, len)) {
        return *v;
    }
    let v = data_hash(&s.pool[b][HDR..len]);
    s.sums.lock().unwrap().insert((b, len), v);
    v
}

fn pool_index(from: u32, seq: u64) -> usize {
    ((u64::from(from) * 31 + seq) % POOL as u64) as usize
}

/// The payload `from` sends to `to` as its PUT number `seq`, and its header checksum.
fn make_payload(from: u32, to: u32, seq: u64, len: usize) -> (Vec<u8>, u64) {
    let b = pool_index(from, seq);
    let mut h = [0u8; HDR];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&from.to_le_bytes());
    h[8..12].copy_from_slice(&to.to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    h[20..24].copy_from_slice(&(len as u32).to_le_bytes());
    h[24..32].copy_from_slice(&body_sum(b, len).to_le_bytes());
    let hsum = data_hash(&h);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&h[..len.min(HDR)]);
    if len > HDR {
        v.extend_from_slice(&shared().pool[b][HDR..len]);
    }
    (v, hsum)
}

/// What a served GET buffer holds: node `n`'s buffer `j`.
fn served(n: u32, j: u64) -> Vec<u8> {
    let len = [0usize, 272, 65_536, MIB][j as usize];
    make_payload(n, u32::MAX, j, len).0
}

/// The receiver's check of one PUT; returns (sender, seq).
fn verify_put(me: u32, p: &ReceivedPut, index_of: &HashMap<ProcessId, u32>) -> (u32, u64) {
    let from = *index_of
        .get(&p.from)
        .unwrap_or_else(|| panic!("PUT from an unknown node {}", p.from));
    let seq = p.match_bits;
    let len = p.data.len();
    let (want, hsum) = make_payload(from, me, seq, len);
    assert_eq!(p.portal, LOAD_PORTAL);
    assert_eq!(
        p.hdr_data, hsum,
        "PUT {from}->{me} #{seq} ({len} bytes): header checksum"
    );
    if len >= HDR {
        let h = &p.data[..HDR];
        assert_eq!(u32::from_le_bytes(h[0..4].try_into().unwrap()), MAGIC);
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), from);
        assert_eq!(u32::from_le_bytes(h[8..12].try_into().unwrap()), me);
        assert_eq!(u64::from_le_bytes(h[12..20].try_into().unwrap()), seq);
        assert_eq!(
            u32::from_le_bytes(h[20..24].try_into().unwrap()) as usize,
            len
        );
        let carried = u64::from_le_bytes(h[24..32].try_into().unwrap());
        assert_eq!(
            carried,
            body_sum(pool_index(from, seq), len),
            "body checksum"
        );
    }
    // The body is what the sender generated, byte for byte (so its checksum is the carried one).
    assert!(
        p.data == want,
        "PUT {from}->{me} #{seq} ({len} bytes): payload corrupted"
    );
    (from, seq)
}

#[derive(Default)]
struct Totals {
    puts: AtomicU64,
    puts_acked: AtomicU64,
    put_bytes: AtomicU64,
    gets: AtomicU64,
    get_bytes: AtomicU64,
    pings: AtomicU64,
    errors: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Put {
        to: u32,
        seq: u64,
        ack: bool,
        len: usize,
    },
    Get {
        to: u32,
        j: u64,
    },
    Ping {
        to: u32,
    },
}

/// What a completed operation brought back.
#[derive(Debug)]
enum Reply {
    None,
    Data(Vec<u8>),
    Nis(Vec<Nid>),
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One node's traffic: keeps `window` operations in flight to random peers until `stop`, then
/// waits for all of them. Returns the PUTs it saw acknowledged or sent, by (receiver, seq).
#[allow(clippy::too_many_arguments)]
fn drive(
    me: u32,
    h: NodeHandle,
    ids: Arc<Vec<ProcessId>>,
    window: usize,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    failures: Arc<Mutex<Vec<String>>>,
) -> HashSet<(u32, u64)> {
    let n = ids.len() as u32;
    let mut rng = Rng(0x1234_5678_9abc_def1 ^ (u64::from(me) << 32 | 1));
    let (tx, rx) = mpsc::channel();
    let mut open: HashMap<u64, Op> = HashMap::new();
    let mut next_seq: HashMap<u32, u64> = HashMap::new();
    let mut delivered = HashSet::new();
    let mut first_round: Vec<u32> = (0..n).filter(|x| *x != me).collect();
    let deadline_after_stop = Duration::from_secs(60);
    let mut stopped_at: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && stopped_at.is_none() {
            stopped_at = Some(Instant::now());
        }
        while !stopping && open.len() < window {
            // First one ping to every other node (connections everywhere), then the mix.
            let (op, id) = if let Some(to) = first_round.pop() {
                let id = h.ping_with(ids[to as usize], Duration::from_secs(30), &tx);
                (Op::Ping { to }, id)
            } else {
                let mut to = rng.below(u64::from(n - 1)) as u32;
                if to >= me {
                    to += 1;
                }
                let target = ids[to as usize];
                match rng.below(10) {
                    0..=6 => {
                        let seq = next_seq.entry(to).or_insert(0);
                        let s = *seq;
                        *seq += 1;
                        let len = SIZES[rng.below(SIZES.len() as u64) as usize];
                        let ack = rng.below(10) < 7;
                        let (data, hsum) = make_payload(me, to, s, len);
                        let id =
                            h.put_with(target, LOAD_PORTAL, s, hsum, Arc::from(data), ack, &tx);
                        (
                            Op::Put {
                                to,
                                seq: s,
                                ack,
                                len,
                            },
                            id,
                        )
                    }
                    7..=8 => {
                        let j = rng.below(SERVED);
                        let id = h.get_with(
                            target,
                            GET_PORTAL,
                            j,
                            MIB as u32,
                            Duration::from_secs(30),
                            &tx,
                        );
                        (Op::Get { to, j }, id)
                    }
                    _ => {
                        let id = h.ping_with(target, Duration::from_secs(30), &tx);
                        (Op::Ping { to }, id)
                    }
                }
            };
            assert!(open.insert(id, op).is_none(), "operation id {id} reused");
        }
        if stopping && open.is_empty() {
            break;
        }
        if stopped_at.is_some_and(|t| t.elapsed() > deadline_after_stop) {
            failures.lock().unwrap().push(format!(
                "node {me}: {} operations never completed: {:?}",
                open.len(),
                open.values().take(5).collect::<Vec<_>>()
            ));
            break;
        }
        let ev = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => ev,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => panic!("{e}"),
        };
        let (id, result): (u64, Result<Reply, Error>) = match ev {
            LnetEvent::PutDone { op, result } => (op, result.map(|_| Reply::None)),
            LnetEvent::GetDone { op, result } => (op, result.map(Reply::Data)),
            LnetEvent::PingDone { op, result, .. } => (
                op,
                result.map(|nis| Reply::Nis(nis.iter().map(|(p, _)| p.nid).collect())),
            ),
            other => panic!("unexpected {other:?}"),
        };
        let Some(op) = open.remove(&id) else {
            failures.lock().unwrap().push(format!(
                "node {me}: completion of unknown or finished op {id}"
            ));
            continue;
        };
        match (op, result) {
            (_, Err(e)) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                failures
                    .lock()
                    .unwrap()
                    .push(format!("node {me}: {op:?} failed: {e}"));
            }
            (Op::Put { to, seq, ack, len }, Ok(_)) => {
                totals.puts.fetch_add(1, Ordering::Relaxed);
                totals.put_bytes.fetch_add(len as u64, Ordering::Relaxed);
                if ack {
                    totals.puts_acked.fetch_add(1, Ordering::Relaxed);
                }
                delivered.insert((to, seq));
            }
            (Op::Get { to, j }, Ok(reply)) => {
                let Reply::Data(data) = reply else {
                    unreachable!("a GET completes with data")
                };
                totals.gets.fetch_add(1, Ordering::Relaxed);
                totals
                    .get_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if data != served(to, j) {
                    failures.lock().unwrap().push(format!(
                        "node {me}: GET {j} from {to}: {} bytes, not the served data",
                        data.len()
                    ));
                }
            }
            (Op::Ping { to }, Ok(reply)) => {
                totals.pings.fetch_add(1, Ordering::Relaxed);
                let target = ids[to as usize].nid;
                if !matches!(&reply, Reply::Nis(nis) if nis.contains(&target)) {
                    failures.lock().unwrap().push(format!(
                        "node {me}: ping of {target} answered without its NID: {reply:?}"
                    ));
                }
            }
        }
    }
    delivered
}

struct Run {
    nodes: usize,
    secs: u64,
    window: usize,
}

fn run(cfg: Run) {
    // The random pool is made first: the heap is measured from here.
    let _ = shared();
    let base = Pool::now();
    alloc::reset_peak();
    let t_start = Instant::now();
    // Nodes: a mix of protocol versions and options.
    let ips: Vec<Ipv4Addr> = (0..cfg.nodes)
        .map(|i| addr(160 + (i / 200) as u8, 1 + (i % 200) as u8))
        .collect();
    let nodes: Vec<Node> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let proto = ["3", "3", "2", "3", "1", "2"][i % 6];
            let csum = if i % 4 == 2 { "1" } else { "0" };
            node(
                *ip,
                &[
                    ("protocol", proto),
                    ("enable_csum", csum),
                    ("nscheds", "1"),
                    ("sock_timeout", "30"),
                ],
            )
        })
        .collect();
    let ids: Arc<Vec<ProcessId>> = Arc::new(nodes.iter().map(|n| n.id()).collect());
    let index_of: Arc<HashMap<ProcessId, u32>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect(),
    );
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..SERVED {
            n.serve(GET_PORTAL, j, served(i as u32, j));
        }
    }
    // Receivers: every PUT checked and recorded by (sender, seq).
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut checkers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<ReceivedPut>();
        n.tap_puts(Some(tx));
        let index_of = index_of.clone();
        checkers.push(std::thread::spawn(move || {
            let mut seen: HashMap<u32, HashSet<u64>> = HashMap::new();
            let mut dups = Vec::new();
            let mut bytes = 0u64;
            while let Ok(p) = rx.recv() {
                bytes += p.data.len() as u64;
                let (from, seq) = verify_put(i as u32, &p, &index_of);
                if !seen.entry(from).or_default().insert(seq) {
                    dups.push((from, seq));
                }
            }
            (seen, dups, bytes)
        }));
    }
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let drivers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (h, ids, stop, totals, failures) = (
                n.handle(),
                ids.clone(),
                stop.clone(),
                totals.clone(),
                failures.clone(),
            );
            let w = cfg.window;
            std::thread::spawn(move || drive(i as u32, h, ids, w, stop, totals, failures))
        })
        .collect();
    // Sample the connections while the traffic runs.
    let t_traffic = Instant::now();
    let mut max_conns = 0u64;
    let mut max_peers = 0u64;
    while t_traffic.elapsed() < Duration::from_secs(cfg.secs) {
        std::thread::sleep(Duration::from_millis(250));
        let (c, p) = nodes.iter().fold((0, 0), |(c, p), n| {
            let s = n.stats().engine;
            (c + s.conns_open, p + s.peers)
        });
        max_conns = max_conns.max(c);
        max_peers = max_peers.max(p);
    }
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<HashSet<(u32, u64)>> = drivers.into_iter().map(|d| d.join().unwrap()).collect();
    let traffic_secs = t_traffic.elapsed().as_secs_f64();
    // Every node: idle of messages (nothing in flight), then the taps are closed.
    for n in &nodes {
        wait_no_messages(n);
        n.tap_puts(None);
    }
    let got: Vec<_> = checkers.into_iter().map(|c| c.join().unwrap()).collect();
    let fails = failures.lock().unwrap().clone();
    assert!(
        fails.is_empty(),
        "{} failures, first: {:#?}",
        fails.len(),
        &fails[..fails.len().min(10)]
    );
    // Exactly once: what each receiver got from each sender is exactly what that sender saw
    // complete.
    let mut received = 0u64;
    let mut received_bytes = 0u64;
    for (r, (seen, dups, bytes)) in got.iter().enumerate() {
        assert!(dups.is_empty(), "node {r} received duplicates: {dups:?}");
        received_bytes += bytes;
        for (s, seqs) in seen {
            received += seqs.len() as u64;
            let want: HashSet<u64> = sent[*s as usize]
                .iter()
                .filter(|(to, _)| *to as usize == r)
                .map(|(_, q)| *q)
                .collect();
            assert_eq!(
                seqs,
                &want,
                "PUTs {s}->{r}: received {} of {} sent (missing {:?}, extra {:?})",
                seqs.len(),
                want.len(),
                want.difference(seqs).take(5).collect::<Vec<_>>(),
                seqs.difference(&want).take(5).collect::<Vec<_>>()
            );
        }
    }
    let t = &totals;
    let puts = t.puts.load(Ordering::Relaxed);
    assert_eq!(received, puts, "PUTs received vs completed");
    let sent_total: usize = sent.iter().map(|s| s.len()).sum();
    assert_eq!(sent_total as u64, puts);
    let mut conns_made = 0u64;
    let mut zc = 0u64;
    let mut tx_bytes = 0u64;
    for n in &nodes {
        let s = n.stats().engine;
        conns_made += s.handshakes_ok;
        zc += s.zc_acks_received;
        tx_bytes += s.tx_bytes;
    }
    let t_down = Instant::now();
    for n in nodes {
        clean(n);
    }
    let down_secs = t_down.elapsed().as_secs_f64();
    let peak = alloc::peak_bytes() - base.bytes;
    // The report's figures as plain numbers: the heap is measured with every structure of the
    // run dropped, and before the report's own text exists.
    let (puts_acked, put_bytes) = (
        t.puts_acked.load(Ordering::Relaxed),
        t.put_bytes.load(Ordering::Relaxed),
    );
    let (gets, get_bytes) = (
        t.gets.load(Ordering::Relaxed),
        t.get_bytes.load(Ordering::Relaxed),
    );
    let (pings, errors) = (
        t.pings.load(Ordering::Relaxed),
        t.errors.load(Ordering::Relaxed),
    );
    let mesh = 3 * cfg.nodes as u64 * (cfg.nodes as u64 - 1);
    drop((ids, index_of, sent, got, ips, stop, failures, totals));
    shared().sums.lock().unwrap().clear();
    shared().sums.lock().unwrap().shrink_to_fit();
    // Pool bytes: the process heap is back where it was before the first node started, to the
    // byte and the block (measured before anything is printed: captured output is heap too).
    let after = Pool::now();
    let report = format!(
        "load: {} nodes, {:.1} s of traffic: {} PUTs ({} with LNet ACK, {:.1} MiB), {} GETs ({:.1} MiB), \
         {} pings; {} errors; up to {} connections and {} peer records at once, {} handshakes; \
         {} ZC-ACKs; {:.1} MiB on the wire ({:.1} MiB/s); {:.1} MiB received and checked; \
         shutdown of all nodes {:.2} s; heap peak +{:.1} MiB; total {:.1} s",
        cfg.nodes,
        traffic_secs,
        puts,
        puts_acked,
        put_bytes as f64 / MIB as f64,
        gets,
        get_bytes as f64 / MIB as f64,
        pings,
        errors,
        max_conns,
        max_peers,
        conns_made,
        zc,
        tx_bytes as f64 / MIB as f64,
        tx_bytes as f64 / MIB as f64 / traffic_secs,
        received_bytes as f64 / MIB as f64,
        down_secs,
        peak as f64 / MIB as f64,
        t_start.elapsed().as_secs_f64()
    );
    println!("{report}");
    // A full mesh: every pair of nodes has its three typed connections, counted at both ends.
    assert!(
        max_conns >= mesh,
        "only {max_conns} connection ends at once, a full mesh has {mesh}"
    );
    assert_eq!(
        (after.bytes - base.bytes, after.blocks - base.blocks),
        (0, 0),
        "heap after shutdown differs from before the first node (bytes, blocks)"
    );
}

fn wait_no_messages(n: &NodeHandle) {
    let ok = wait_for(Duration::from_secs(30), || {
        let s = n.stats().engine;
        s.tx_msgs_open() == 0 && s.rx_msgs_open == 0 && s.zc_waiting == 0 && n.lnet_ops_open() == 0
    });
    assert!(
        ok,
        "node {} kept messages: {:?}",
        n.nid(),
        gauges(&n.stats().engine)
    );
}

#[test]
fn dozens_of_nodes_hundreds_of_connections_mixed_traffic() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    run(Run {
        nodes: env("TDINAL_SOAK_NODES", 24) as usize,
        secs: env("TDINAL_SOAK_SECS", 15),
        window: env("TDINAL_SOAK_WINDOW", 4) as usize,
    });
}
