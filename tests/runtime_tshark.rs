//! The runtime's real traffic, captured on loopback with dumpcap and decoded by tshark's LNet
//! dissector: what Wireshark sees must be what was sent — the ping GET (portal 0, match bits
//! 0x8000000000000000, sink_length 272) and its 48-byte REPLY both ways, the PUTs of the chosen
//! size carrying zero-copy request cookies 2, 3, 4, … and the ZC-ACKs coming back (V3: NOOPs
//! on the BULK_IN connection, as singles, pairs or ranges; V2: NOOPs or piggybacked on LNet
//! messages, with checksums when `enable_csum=1`).
//!
//! tshark's `lnet.src_pid`/`lnet.dest_pid` are swapped and the socklnd checksum is
//! `lnet.ib_csum` (spec §9). Fails, naming the package, when tshark or dumpcap is missing.

mod runtime_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runtime_common::{expected_digest, lo, run_tdinal, Daemon, TempDir};

const SIZE: usize = 65536;
const COUNT: u64 = 4;
const PING_BITS: u64 = 0x8000_0000_0000_0000;

fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{tool} is missing: apt-get install tshark (it brings dumpcap too)"
    );
}

/// A running dumpcap, stopped with SIGINT (so the file is complete).
struct Capture {
    child: Option<Child>,
}

impl Capture {
    fn start(file: &Path, filter: &str) -> Capture {
        let mut child = Command::new("dumpcap")
            .args(["-i", "lo", "-f", filter, "-a", "duration:60", "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dumpcap");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let t0 = Instant::now();
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains("Capturing on") => break,
                Ok(l) => seen.push(l),
                Err(_) => {}
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("dumpcap exited ({st}): {}", seen.join("\n"));
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dumpcap did not start capturing within 10 s: {}",
                seen.join("\n")
            );
        }
        // Let the capture settle before traffic starts.
        std::thread::sleep(Duration::from_millis(300));
        Capture { child: Some(child) }
    }

    fn stop(mut self) {
        let mut c = self.child.take().expect("child");
        std::thread::sleep(Duration::from_millis(300));
        let _ = tdinal::runtime::sys::kill(c.id(), tdinal::runtime::sys::SIGINT);
        let t0 = Instant::now();
        while c.try_wait().expect("wait").is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                panic!("dumpcap did not stop within 10 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One socklnd PDU as tshark decoded it.
#[derive(Debug, Default, Clone)]
struct Pdu {
    #[allow(dead_code)] // shown in failure messages
    frame: u32,
    sport: u16,
    dport: u16,
    ksm_type: u32,
    csum: u32,
    zc_req: u64,
    zc_ack: u64,
    msg_type: Option<u32>,
    payload_length: Option<u32>,
    match_bits: Option<u64>,
    sink_length: Option<u32>,
    ptl_index: Option<u32>,
    src_pid: Option<u32>,
    dest_pid: Option<u32>,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = line.find(&key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap_or_else(|_| panic!("hex {s}")),
        None => s.parse().unwrap_or_else(|_| panic!("number {s}")),
    }
}

/// Every socklnd PDU in the capture, in order. PDML keeps each PDU's fields together (tshark's
/// field columns would mix a NOOP's values with those of an LNet PDU in the same frame); a PDU
/// starts at its `lnet.ksm_type` field.
fn decode(file: &Path) -> Vec<Pdu> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "pdml"])
        .output()
        .expect("run tshark");
    assert!(
        o.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let mut out: Vec<Pdu> = Vec::new();
    let (mut frame, mut sport, mut dport) = (0u32, 0u16, 0u16);
    let mut in_packet_pdus = 0usize;
    for line in text.lines() {
        let l = line.trim_start();
        if l.starts_with("<packet>") {
            in_packet_pdus = 0;
            continue;
        }
        let Some(name) = attr(l, "name") else {
            continue;
        };
        let Some(show) = attr(l, "show") else {
            continue;
        };
        match name {
            "frame.number" => frame = num(show) as u32,
            "tcp.srcport" => sport = num(show) as u16,
            "tcp.dstport" => dport = num(show) as u16,
            "lnet.ksm_type" => {
                out.push(Pdu {
                    frame,
                    sport,
                    dport,
                    ksm_type: num(show) as u32,
                    ..Pdu::default()
                });
                in_packet_pdus += 1;
            }
            _ if name.starts_with("lnet.") && in_packet_pdus > 0 => {
                let p = out.last_mut().expect("pdu");
                match name {
                    "lnet.ib_csum" => p.csum = num(show) as u32,
                    "lnet.ksm_zc_req_cookie" => p.zc_req = num(show),
                    "lnet.ksm_zc_ack_cookie" => p.zc_ack = num(show),
                    "lnet.msg_type" => p.msg_type = Some(num(show) as u32),
                    "lnet.payload_length" => p.payload_length = Some(num(show) as u32),
                    "lnet.msg_dst_match_bits" => p.match_bits = Some(num(show)),
                    "lnet.sink_length" => p.sink_length = Some(num(show) as u32),
                    "lnet.ptl_index" => p.ptl_index = Some(num(show) as u32),
                    "lnet.src_pid" => p.src_pid = Some(num(show) as u32),
                    "lnet.dest_pid" => p.dest_pid = Some(num(show) as u32),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

/// The cookies a ZC-ACK acknowledges (spec §4.2): an LNET message's `[1]`; a NOOP's `[1]`
/// alone, a pair (`[0] > [1]`) or a range (`[0] < [1]`).
fn acked(p: &Pdu) -> Vec<u64> {
    let (c0, c1) = (p.zc_req, p.zc_ack);
    if c1 == 0 {
        return Vec::new();
    }
    if p.ksm_type == 0xc1 || c0 == 0 || c0 == c1 {
        vec![c1]
    } else if c0 > c1 {
        vec![c1, c0]
    } else {
        (c0..=c1).collect()
    }
}

const GET: u32 = 2;
const REPLY: u32 = 3;
const PUT: u32 = 1;
const ACK: u32 = 0;

/// Checks common to every version: pings both ways, the PUTs with cookies 2..=COUNT+1, the LNet
/// ACKs, and every requested cookie acknowledged exactly once. Returns the PUTs' source port.
fn check_traffic(pdus: &[Pdu]) -> u16 {
    let lnet: Vec<&Pdu> = pdus.iter().filter(|p| p.ksm_type == 0xc1).collect();
    let of = |t: u32| -> Vec<&Pdu> {
        lnet.iter()
            .copied()
            .filter(|p| p.msg_type == Some(t))
            .collect()
    };
    // Pings: a GET each way on the CONTROL connection (A's source port 1023).
    let gets = of(GET);
    assert_eq!(gets.len(), 2, "GETs: {gets:#?}");
    for g in &gets {
        assert_eq!(g.match_bits, Some(PING_BITS), "{g:?}");
        assert_eq!(g.ptl_index, Some(0), "{g:?}");
        assert_eq!(g.sink_length, Some(272), "{g:?}");
        assert_eq!(g.payload_length, Some(0), "{g:?}");
        assert_eq!(g.zc_req, 0, "{g:?}");
        // Both pids are Lustre's 12345 (tshark shows them swapped, spec §9).
        assert_eq!((g.src_pid, g.dest_pid), (Some(12345), Some(12345)));
    }
    assert!(gets.iter().any(|g| g.dport == 988) && gets.iter().any(|g| g.sport == 988));
    let replies = of(REPLY);
    assert_eq!(replies.len(), 2, "REPLYs: {replies:#?}");
    for r in &replies {
        assert_eq!(r.payload_length, Some(48), "{r:?}");
        assert_eq!(r.zc_req, 0, "a 48-byte REPLY is no zero-copy send: {r:?}");
    }
    // PUTs: the chosen size, the test portal, cookies 2, 3, 4, … in order, all on one
    // connection (A's BULK_OUT).
    let puts = of(PUT);
    assert_eq!(puts.len() as u64, COUNT, "PUTs: {puts:#?}");
    let cookies: Vec<u64> = puts.iter().map(|p| p.zc_req).collect();
    let want: Vec<u64> = (2..2 + COUNT).collect();
    assert_eq!(cookies, want, "ZC request cookies");
    let bulk_port = puts[0].sport;
    for p in &puts {
        assert_eq!(p.payload_length, Some(SIZE as u32), "{p:?}");
        assert_eq!(p.ptl_index, Some(tdinal::runtime::PUT_PORTAL), "{p:?}");
        assert_eq!((p.sport, p.dport), (bulk_port, 988), "{p:?}");
    }
    assert!((512..=1023).contains(&bulk_port));
    assert_eq!(of(ACK).len() as u64, COUNT, "one LNet ACK per PUT");
    // Every request cookie acknowledged exactly once, by B (source port 988).
    let mut seen: Vec<u64> = Vec::new();
    for p in pdus.iter().filter(|p| p.zc_ack != 0) {
        assert_eq!(p.sport, 988, "ZC-ACK from A? {p:?}");
        seen.extend(acked(p));
    }
    seen.sort_unstable();
    assert_eq!(seen, want, "cookies acknowledged");
    bulk_port
}

#[test]
fn demo_traffic_v3_decodes_as_sent() {
    need("tshark");
    need("dumpcap");
    let dir = TempDir::new("tshark-v3");
    let (ip_a, ip_b) = (lo(200, 2), lo(200, 3));
    let file = dir.path("demo.pcapng");
    let cap = Capture::start(&file, &format!("tcp port 988 and host {ip_a}"));
    let (nid_a, nid_b) = (format!("{ip_a}@tcp"), format!("{ip_b}@tcp"));
    let o = run_tdinal(
        &[
            "demo",
            "--nid-a",
            &nid_a,
            "--nid-b",
            &nid_b,
            "--size",
            &SIZE.to_string(),
            "--count",
            &COUNT.to_string(),
        ],
        Duration::from_secs(60),
    );
    cap.stop();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("negotiated protocol V3"), "{stdout}");
    let pdus = decode(&file);
    let bulk_port = check_traffic(&pdus);
    // V3: no checksums; ACKs only in NOOPs, going back on the connection the bulk came in on
    // (B's BULK_IN), never on an LNet message.
    for p in &pdus {
        assert_eq!(p.csum, 0, "V3 never checksums: {p:?}");
        if p.zc_ack != 0 {
            assert_eq!(p.ksm_type, 0xc0, "V3 ACKs travel in NOOPs: {p:?}");
            assert_eq!(
                p.dport, bulk_port,
                "ACK not on the BULK_IN connection: {p:?}"
            );
        }
    }
}

#[test]
fn daemon_traffic_v2_with_checksums_decodes_as_sent() {
    need("tshark");
    need("dumpcap");
    let dir = TempDir::new("tshark-v2");
    let (ip_a, ip_b) = (lo(201, 2), lo(201, 3));
    let file = dir.path("v2.pcapng");
    let (nid_a, nid_b) = (format!("{ip_a}@tcp"), format!("{ip_b}@tcp"));
    let cap = Capture::start(&file, &format!("tcp port 988 and host {ip_a}"));
    let args = ["--protocol", "2", "--set", "enable_csum=1"];
    let da = Daemon::start(&dir, "a", &nid_a, &args);
    let db = Daemon::start(&dir, "b", &nid_b, &args);
    da.ok(&["connect", &nid_b, &ip_b.to_string()]);
    da.ok(&["ping", &nid_b]);
    db.ok(&["ping", &nid_a]);
    let out = da.ok(&[
        "put",
        &nid_b,
        "--size",
        &SIZE.to_string(),
        "--count",
        &COUNT.to_string(),
    ]);
    assert!(out[0].contains(&format!("{COUNT} acknowledged, 0 failed")));
    assert_eq!(db.stat("put_digest"), expected_digest(SIZE, COUNT));
    da.shutdown();
    db.shutdown();
    cap.stop();
    let pdus = decode(&file);
    check_traffic(&pdus);
    // V2 with enable_csum=1: every message (NOOPs included) carries a checksum, and B took
    // them all (a bad one closes the connection and fails the message).
    for p in &pdus {
        assert_ne!(p.csum, 0, "V2 with enable_csum=1 sends checksums: {p:?}");
    }
    // V2 piggybacks: an ACK either rides an LNet message or fills a NOOP of its own (one
    // cookie each, never a pair or range).
    let distinct: BTreeSet<u64> = pdus
        .iter()
        .filter(|p| p.zc_ack != 0)
        .map(|p| p.zc_ack)
        .collect();
    assert_eq!(distinct.len() as u64, COUNT);
    for p in pdus.iter().filter(|p| p.ksm_type == 0xc0) {
        assert!(p.zc_req == 0, "V2 NOOPs carry single ACKs: {p:?}");
    }
    let riding = pdus
        .iter()
        .filter(|p| p.ksm_type == 0xc1 && p.zc_ack != 0)
        .count();
    println!("V2: {riding} of {COUNT} ZC-ACKs piggybacked on LNet messages");
}
