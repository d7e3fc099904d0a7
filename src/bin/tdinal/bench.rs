//! `tdinal bench`: tdinal against raw TCP over loopback, same run, same framing; the logic is
//! in `tdinal::runtime::bench` (`docs/performance.md`).

use std::net::Ipv4Addr;

use tdinal::runtime::bench::{self, BenchOptions};

use crate::args::{parse_size, Args};

fn list<T: std::str::FromStr>(
    a: &Args,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, String> {
    let Some(v) = a.opt(name) else {
        return Ok(None);
    };
    v.split(',')
        .map(|x| parse(x.trim()).ok_or_else(|| format!("bad value '{x}' in --{name}")))
        .collect::<Result<Vec<T>, String>>()
        .map(Some)
}

pub fn run(a: &Args) -> Result<(), String> {
    a.only(
        "bench",
        &[
            "quick",
            "reps",
            "ip",
            "port",
            "plot",
            "only",
            "cpp",
            "sizes",
            "peers",
            "no-instructions",
            "engine-phase",
            "count",
            "size",
        ],
    )?;
    if let Some(which) = a.opt("engine-phase") {
        // The body `tdinal bench` runs under valgrind to count engine instructions.
        let count = a.num::<u64>("count")?.unwrap_or(1000);
        let size = parse_size(a.opt("size").unwrap_or("0"))? as usize;
        let out = bench::engine_phase(which, count, size)?;
        println!("{out}");
        return Ok(());
    }
    if !a.pos.is_empty() {
        return Err(format!("unexpected argument '{}'", a.pos[0]));
    }
    let mut o = if a.switch("quick") {
        BenchOptions::quick()
    } else {
        BenchOptions::full()
    };
    if let Some(r) = a.num::<usize>("reps")? {
        o.reps = r.clamp(1, 100);
    }
    if let Some(ip) = a.opt("ip") {
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("bad address '{ip}' for --ip"))?;
        if !ip.is_loopback() {
            return Err(format!(
                "--ip {ip}: the benchmark stays on loopback (127.0.0.0/8)"
            ));
        }
        o.ip = ip;
    }
    o.port = a.num::<u16>("port")?;
    if let Some(v) = list(a, "cpp", |x| {
        x.parse::<u32>().ok().filter(|n| (1..=16).contains(n))
    })? {
        o.cpps = v;
    }
    if let Some(v) = list(a, "sizes", |x| parse_size(x).ok().map(|n| n as usize))? {
        if v.iter().any(|&s| s > tdinal::wire::nid::LNET_MTU as usize) {
            return Err("--sizes: one PUT carries at most 1M (LNet's MTU)".into());
        }
        o.sweep_sizes = v;
    }
    if let Some(v) = list(a, "peers", |x| {
        x.parse::<usize>().ok().filter(|n| (1..=200).contains(n))
    })? {
        o.peers = v;
    }
    if let Some(v) = list(a, "only", |x| {
        ["bulk", "small", "scale", "sweep", "engine"]
            .contains(&x)
            .then(|| x.to_string())
    })? {
        o.only = v;
    }
    if !a.switch("no-instructions") {
        o.exe = std::env::current_exe().ok();
    }
    o.progress = true;
    let report = bench::run(&o)?;
    for l in report.lines() {
        println!("{l}");
    }
    if let Some(path) = a.opt("plot") {
        let svg = report
            .plot_svg()
            .ok_or("no sweep measured (the plot needs --only sweep or all groups)")?;
        std::fs::write(path, svg).map_err(|e| format!("cannot write {path}: {e}"))?;
        println!("plot written to {path}");
    }
    Ok(())
}
