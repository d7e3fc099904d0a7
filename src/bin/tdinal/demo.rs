//! `tdinal demo`: two nodes in this process over loopback: handshake, ping both ways, bulk
//! PUTs with zero-copy ACKs, a summary of what was measured, and a clean shutdown.

use std::net::Ipv4Addr;
use std::time::Duration;

use tdinal::engine::Stats;
use tdinal::runtime::control::format_conns;
use tdinal::runtime::{sys, Node, NodeConfig, StartError};
use tdinal::wire::{Nid, ProcessId};

use crate::args::{parse_size, Args};

const ALT_PORTS: std::ops::RangeInclusive<u16> = 9880..=9899;

fn version_arg(a: &Args, name: &str) -> Result<String, String> {
    let v = a.opt(name).unwrap_or("3");
    match v {
        "1" | "2" | "3" => Ok(v.to_string()),
        _ => Err(format!("bad value '{v}' for --{name} (1, 2 or 3)")),
    }
}

fn nid_arg(a: &Args, name: &str, default: &str) -> Result<Nid, String> {
    let s = a.opt(name).unwrap_or(default);
    let nid: Nid = s
        .parse()
        .map_err(|_| format!("bad NID '{s}' for --{name}"))?;
    if !Ipv4Addr::from(nid.addr()).is_loopback() {
        return Err(format!(
            "--{name} {nid}: the demo stays on loopback (127.0.0.0/8)"
        ));
    }
    Ok(nid)
}

fn node_cfg(nid: Nid, version: &str, port: u16, unprivileged: bool) -> NodeConfig {
    let mut c = NodeConfig::new(nid);
    // Values validated above; `set` cannot fail on them.
    let _ = c.set("protocol", version);
    c.tunables.accept_port = port;
    if unprivileged {
        c.allow_unprivileged = true;
        let _ = c.set("accept", "all");
        // Each connection from an unprivileged port is a process of its own to the acceptor
        // (spec §2.7), so the answers to what arrives on a BULK_OUT connection could only go
        // back on that BULK_IN-typed connection, which V3 never uses for LNet messages: use one
        // untyped connection, which V3 does not allow.
        let _ = c.set("typed_conns", "0");
        if version == "3" {
            let _ = c.set("protocol", "2");
        }
    }
    c
}

fn is_bind_trouble(e: &StartError) -> Option<String> {
    match e {
        StartError::Listen { addr, error } => match error.raw_os_error() {
            Some(sys::EADDRINUSE) => Some(format!("{addr} is in use")),
            Some(sys::EACCES) | Some(sys::EPERM) => Some(format!("{addr} is not bindable")),
            _ => None,
        },
        _ => None,
    }
}

/// Starts both nodes on the first port that works for both.
fn start_pair(
    a: &Args,
    nid_a: Nid,
    nid_b: Nid,
    va: &str,
    vb: &str,
) -> Result<(Node, Node, u16, bool), String> {
    let root = sys::is_root();
    let unpriv = !root;
    let fixed = a.num::<u16>("port")?;
    let mut ports: Vec<u16> = match fixed {
        Some(p) => vec![p],
        None if root => std::iter::once(988).chain(ALT_PORTS).collect(),
        None => ALT_PORTS.collect(),
    };
    if unpriv {
        println!(
            "note: not running as root: privileged ports (988, source ports 1023..512) are not \
             available; using port {} with --allow-unprivileged and accept=all, so each node \
             sees the other's connections as userspace processes (spec §2.7); hence one untyped \
             connection (typed_conns=0) and at most protocol V2. Run as root for the real thing.",
            ports.first().copied().unwrap_or(0)
        );
    }
    let mut notes = Vec::new();
    for port in ports.drain(..) {
        let na = match Node::start(node_cfg(nid_a, va, port, unpriv)) {
            Ok(n) => n,
            Err(e) => match is_bind_trouble(&e) {
                Some(why) if fixed.is_none() => {
                    notes.push(why);
                    continue;
                }
                _ => return Err(e.to_string()),
            },
        };
        match Node::start(node_cfg(nid_b, vb, port, unpriv)) {
            Ok(nb) => {
                if !notes.is_empty() {
                    println!("note: {}: using port {port} instead", notes.join("; "));
                }
                return Ok((na, nb, port, unpriv));
            }
            Err(e) => {
                let _ = na.shutdown();
                match is_bind_trouble(&e) {
                    Some(why) if fixed.is_none() => notes.push(why),
                    _ => return Err(e.to_string()),
                }
            }
        }
    }
    Err(format!(
        "no port works for both nodes ({}); pass --port PORT",
        notes.join("; ")
    ))
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn delta(after: &Stats, before: &Stats, f: fn(&Stats) -> u64) -> u64 {
    f(after).wrapping_sub(f(before))
}

pub fn run(a: &Args) -> Result<(), String> {
    a.only(
        "demo",
        &[
            "protocol-a",
            "protocol-b",
            "size",
            "count",
            "nid-a",
            "nid-b",
            "port",
        ],
    )?;
    if !a.pos.is_empty() {
        return Err(format!("unexpected argument '{}'", a.pos[0]));
    }
    let va = version_arg(a, "protocol-a")?;
    let vb = version_arg(a, "protocol-b")?;
    let size = parse_size(a.opt("size").unwrap_or("1M"))?;
    if size > u64::from(tdinal::wire::nid::LNET_MTU) {
        return Err(format!(
            "--size {size}: one PUT carries at most {} bytes (LNet's MTU); use --count for more",
            tdinal::wire::nid::LNET_MTU
        ));
    }
    let size = size as usize;
    let count = a.num::<u64>("count")?.unwrap_or(64);
    let nid_a = nid_arg(a, "nid-a", "127.0.0.2@tcp")?;
    let nid_b = nid_arg(a, "nid-b", "127.0.0.3@tcp")?;
    if nid_a == nid_b {
        return Err("the two nodes need different NIDs".into());
    }

    let (na, nb, port, unpriv) = start_pair(a, nid_a, nid_b, &va, &vb)?;
    let (ida, idb) = (na.id(), nb.id());
    println!("tdinal demo: two nodes in one process over loopback, port {port}");
    for (n, name) in [(&na, "A"), (&nb, "B")] {
        let t = &n.config().tunables;
        println!(
            "  node {name}: {} speaks up to protocol V{}, accept={}, {}, {} scheduler thread(s)",
            n.id(),
            t.protocol.to_wire(),
            t.accept.name(),
            if t.typed_conns {
                "typed connections"
            } else {
                "one untyped connection"
            },
            n.schedulers()
        );
    }

    // 1. Handshake.
    let conns = na
        .connect(
            idb,
            Ipv4Addr::from(nid_b.addr()),
            port,
            Duration::from_secs(10),
        )
        .map_err(|e| format!("handshake failed: {e}"))?;
    let mut versions: Vec<u32> = conns.iter().map(|c| c.info.version.to_wire()).collect();
    versions.dedup();
    let vb_neg = versions.first().copied().unwrap_or(3);
    let fallbacks = na.stats().engine.fallbacks;
    println!(
        "handshake: A connected to B; negotiated protocol {}{}; {} connection(s):",
        versions
            .iter()
            .map(|v| format!("V{v}"))
            .collect::<Vec<_>>()
            .join("/"),
        if fallbacks > 0 {
            format!(" (after {fallbacks} version fallback(s))")
        } else {
            String::new()
        },
        conns.len()
    );
    for l in format_conns(&conns, true) {
        println!("  {l}");
    }

    // 2. Ping both ways.
    for (from, fname, to) in [(&na, "A", idb), (&nb, "B", ida)] {
        let t0 = std::time::Instant::now();
        let ids = from
            .ping(to, Duration::from_secs(5))
            .map_err(|e| format!("ping {to} from {fname} failed: {e}"))?;
        println!(
            "ping {} from {fname} ({:.2} ms):",
            to.nid,
            t0.elapsed().as_secs_f64() * 1000.0
        );
        for (id, _) in ids {
            println!("  {id}");
        }
    }

    // 3. Bulk PUTs A -> B.
    let (sa0, sb0) = (na.stats(), nb.stats());
    println!(
        "bulk: {count} PUT(s) of {size} bytes ({:.1} MiB) from A to B, up to {} in flight, \
         each with an LNet ACK",
        mib(size as u64 * count),
        tdinal::runtime::node::PUT_WINDOW
    );
    let r = na
        .put(idb, size, count, Duration::from_secs(30))
        .map_err(|e| format!("bulk transfer failed: {e}"))?;
    if !r.failed.is_empty() {
        return Err(format!(
            "{} PUT(s) failed, first: {}",
            r.failed.len(),
            r.failed[0]
        ));
    }
    let got_all = nb.wait_puts_received(sb0.puts.count + count, Duration::from_secs(10));
    let sends_done =
        na.wait_sends_done(Duration::from_secs(10)) & nb.wait_sends_done(Duration::from_secs(10));
    let (sa1, sb1) = (na.stats(), nb.stats());
    let digest_b = sb1.puts.digest.wrapping_sub(sb0.puts.digest);
    let bytes_b = sb1.puts.bytes - sb0.puts.bytes;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!(
        "  done in {:.3} s: {:.1} MiB/s; B received {} PUT(s), {} bytes; data {}",
        secs,
        mib(size as u64 * count) / secs,
        sb1.puts.count - sb0.puts.count,
        bytes_b,
        if got_all && digest_b == r.digest {
            "verified (digest matches)".to_string()
        } else {
            format!(
                "MISMATCH: digest 0x{digest_b:016x}, expected 0x{:016x}",
                r.digest
            )
        }
    );
    let d = |s1: &Stats, s0: &Stats, f: fn(&Stats) -> u64| delta(s1, s0, f);
    println!(
        "  messages: A sent {} and received {} (+{} NOOPs); B received {} and sent {}",
        d(&sa1.engine, &sa0.engine, |s| s.tx_msgs_done),
        d(&sa1.engine, &sa0.engine, |s| s.rx_msgs),
        d(&sa1.engine, &sa0.engine, |s| s.rx_noops),
        d(&sb1.engine, &sb0.engine, |s| s.rx_msgs),
        d(&sb1.engine, &sb0.engine, |s| s.tx_msgs_done),
    );
    println!(
        "  bytes on the wire: A->B {}, B->A {}",
        d(&sa1.engine, &sa0.engine, |s| s.tx_bytes),
        d(&sb1.engine, &sb0.engine, |s| s.tx_bytes),
    );
    println!(
        "  zero copy: A requested {} ZC-ACK(s) and received {}; B put {} into new NOOPs and \
         folded {} into messages already queued; A received {} NOOP(s){}; {}",
        d(&sa1.engine, &sa0.engine, |s| s.zc_requests),
        d(&sa1.engine, &sa0.engine, |s| s.zc_acks_received),
        d(&sb1.engine, &sb0.engine, |s| s.zc_acks_noop),
        d(&sb1.engine, &sb0.engine, |s| s.zc_acks_piggybacked),
        d(&sa1.engine, &sa0.engine, |s| s.rx_noops),
        match vb_neg {
            1 => " (V1 has no ksock header, hence no ZC-ACKs)",
            2 => " (V2: an LNet message queued behind a NOOP takes over its ACK)",
            _ => " (V3: a queued NOOP absorbs more ACKs as a pair or a range)",
        },
        if sends_done {
            "every send finalized"
        } else {
            "sends still waiting for ZC-ACKs after 10 s"
        }
    );
    println!(
        "  receive path: {} payload bytes copied by the engine (the runtime reads straight into \
         the buffers)",
        d(&sb1.engine, &sb0.engine, |s| s.rx_payload_copied)
    );

    // 4. Clean shutdown.
    let ra = na.shutdown();
    let rb = nb.shutdown();
    let ok = ra.check().and(rb.check());
    match &ok {
        Ok(()) => println!(
            "shutdown: clean; no connection, peer or message left on either node ({} + {} \
             threads joined)",
            ra.threads_joined, rb.threads_joined
        ),
        Err(e) => println!("shutdown: {e}"),
    }
    let _ = unpriv;
    if !(got_all && digest_b == r.digest && sends_done) {
        return Err("the bulk transfer did not complete as sent".into());
    }
    let _ = ProcessId::lustre(nid_a);
    ok
}
