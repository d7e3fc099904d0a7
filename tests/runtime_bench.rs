//! `tdinal bench` in its quick mode: every workload runs (tiny counts, two runs per side), every
//! ratio is computed, and the copy counters say what the runtime promises — no user-space copy
//! of a payload on send, one copy (the read into the sink) on receive. Nothing here asserts
//! a time or a ratio's value: the figures depend on the machine and its load.

mod runtime_common;

use runtime_common::{lo, TempDir, BIN};
use tdinal::runtime::bench::{self, BenchOptions, Metric};
use tdinal::runtime::sys::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn quick_bench_computes_every_ratio_and_counts_copies() {
    tdinal::runtime::log::set_level(tdinal::runtime::log::Level::Warn);
    let mut o = BenchOptions::quick();
    o.ip = lo(80, 1);
    let rep = bench::run(&o).expect("quick bench");
    let out = rep.lines().join("\n");

    // Every group ran: bulk (sizes × conns_per_peer), small (pipelined and ping-pong, each
    // also with the next PUT sent from the completion callback),
    // scaling (rate and throughput per peer count).
    let bulk = o.bulk_sizes.len() * o.cpps.len();
    let groups = |g: &str| rep.rows.iter().filter(|r| r.group == g).count();
    assert_eq!(groups("bulk"), bulk, "{out}");
    assert_eq!(groups("small"), 6, "{out}");
    assert_eq!(groups("scale"), 2 * o.peers.len(), "{out}");
    assert_eq!(rep.sweep.len(), o.sweep_sizes.len(), "{out}");
    for r in rep.rows.iter().chain(&rep.sweep) {
        assert_eq!(r.tdinal.len(), o.reps, "{}: tdinal runs", r.name);
        assert_eq!(r.raw.len(), o.reps, "{}: raw runs", r.name);
        let ratios = r.ratios();
        assert_eq!(ratios.len(), o.reps, "{}: a ratio per pair of runs", r.name);
        assert!(
            ratios.iter().all(|x| x.is_finite() && *x > 0.0),
            "{}: {ratios:?}",
            r.name
        );
        assert!(r.ratio().is_some(), "{}", r.name);
        if r.target.is_some() {
            assert!(matches!(r.verdict(), "met" | "MISSED"), "{}", r.name);
        }
        // Per-message counters were taken on both sides.
        assert_eq!(r.td.messages, r.rw.messages, "{}", r.name);
        assert!(r.td.reads > 0.0 && r.rw.reads > 0.0, "{}", r.name);
        assert!(r.td.locks > 0.0, "{}", r.name);
        assert!(r.td.allocs.is_some(), "{}: allocator counts", r.name);

        // Copies: the runtime copies nothing on send, the engine and the runtime nothing on
        // receive (the read lands in the sink), and every payload byte arrived.
        let c = &r.copies;
        assert_eq!(c.tx_copied, 0, "{}: runtime send copies", r.name);
        assert_eq!(c.tx_per_byte(), 0.0, "{}", r.name);
        assert_eq!(c.rx_engine_copied, 0, "{}: engine receive copies", r.name);
        assert_eq!(c.rx_runtime_copied, 0, "{}: runtime receive copies", r.name);
        assert_eq!(c.rx_per_byte(), 1.0, "{}", r.name);
        assert_eq!(c.payload_sent, r.td.payload_bytes, "{}", r.name);
        assert_eq!(c.payload_received, c.payload_sent, "{}", r.name);
        if r.metric == Metric::Throughput {
            assert!(c.payload_sent > 0, "{}", r.name);
        }
    }

    // Memory and handshake per scaling step; structure sizes; queued-message memory.
    assert_eq!(rep.memory.len(), o.peers.len(), "{out}");
    for m in &rep.memory {
        assert!(
            m.new_conns > 0 && m.td_setup_us > 0.0 && m.raw_setup_us > 0.0,
            "{m:?}"
        );
        assert!(m.heap_per_endpoint.is_some() && m.raw_heap_per_endpoint.is_some());
    }
    let f = &rep.footprint;
    assert!(f.engine_conn > 0 && f.runtime_conn > 0 && f.engine_tx > 0 && f.engine_peer > 0);
    assert!(f.heap_per_queued_put.is_some_and(|h| h > 0.0), "{f:?}");

    // The report prints every row, and the plot is an SVG with both curves.
    for r in &rep.rows {
        assert!(out.contains(&r.name), "{} missing from:\n{out}", r.name);
    }
    let svg = rep.plot_svg().expect("plot");
    assert!(svg.starts_with("<svg") && svg.contains("tdinal") && svg.contains("raw TCP"));
    assert_eq!(svg.matches("<polyline").count(), 2);
}

#[test]
fn engine_phases_run_without_valgrind() {
    // The bodies valgrind measures for the engine's instruction counts.
    assert_eq!(bench::engine_phase("rx", 20, 8).expect("rx"), "20 messages");
    assert!(bench::engine_phase("tx", 20, 0)
        .expect("tx")
        .ends_with("bytes"));
    assert_eq!(
        bench::engine_phase("hs", 2, 0).expect("hs"),
        "6 connections"
    );
    assert!(bench::engine_phase("bogus", 1, 0).is_err());
}

#[test]
fn cli_bench_prints_ratios_and_writes_the_plot() {
    let dir = TempDir::new("bench-cli");
    let svg = dir.path("t.svg");
    let ip = lo(81, 1).to_string();
    let o = std::process::Command::new(BIN)
        .args(["bench", "--quick", "--reps", "1", "--only", "sweep"])
        .args([
            "--sizes",
            "64,4K",
            "--no-instructions",
            "--ip",
            &ip,
            "--plot",
        ])
        .arg(&svg)
        .output()
        .expect("run tdinal bench");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("ratio tdinal/raw"), "{text}");
    assert!(text.contains("throughput sweep"), "{text}");
    assert!(text.contains("plot written to"), "{text}");
    let plot = std::fs::read_to_string(&svg).expect("svg written");
    assert!(plot.contains("</svg>"));
}
