//! `tdinal`: run a socklnd node (`daemon`), talk to one (`ping`, `conn_list`, …, in the
//! manner of `lctl`/`ptlctl`), or watch two nodes work over loopback (`demo`).
//! Reference: `docs/runtime.md`.

#[cfg(unix)]
mod args;
#[cfg(unix)]
mod bench;
#[cfg(unix)]
mod client;
#[cfg(unix)]
mod daemon;
#[cfg(unix)]
mod demo;

#[cfg(unix)]
use tdinal::runtime::log::{self, Level};

/// Counts allocations only while `tdinal bench` switches counting on (a relaxed load per
/// allocation otherwise).
#[cfg(unix)]
#[global_allocator]
static GLOBAL: tdinal::runtime::sys::CountingAlloc = tdinal::runtime::sys::CountingAlloc;

pub const USAGE: &str = "\
usage: tdinal [-v|-q] VERB [ARGS] [OPTIONS]

Run a node:
  daemon --nid NID [--ip IP] [--port PORT] [--accept secure|all|none]
         [--protocol 1|2|3] [--config FILE] [--set NAME=VALUE]... [--nscheds N]
         [--allow-unprivileged] [--control PATH]
      Runs until SIGINT/SIGTERM or `tdinal shutdown`. NAME is a Lustre tunable
      (sock_timeout, keepalive, typed_conns, enable_csum, nonblk_zcack,
      zc_min_payload, protocol, accept, accept_port, ...); FILE holds
      `name = value` lines.

Talk to a running daemon (find it with --control PATH or --nid NID):
  connect NID IP [PORT] [--timeout S]  connect now; prints the connections
  add_peer NID IP PORT                 remember where NID is
  del_peer [NID|*] [IP]                forget peers, close their connections
  disconnect [NID|*] [IP]              close connections
  ping NID [TIMEOUT_S] [--timeout S]   LNet ping; one pid-nid per line
  peer_list                            12345-NID [share]myIP->peerIP:port #conns
  conn_list [--verbose]                12345-NID T[sched]myIP->peerIP:port tx/rx nagle
  put NID --size BYTES [--count N]     user PUTs with LNet ACKs (tests, throughput)
  stats                                counters, one `name value` per line
  shutdown                             stop the daemon cleanly

Measure against raw TCP (docs/performance.md):
  bench [--quick] [--reps N] [--only bulk,small,scale,sweep,engine] [--cpp 1,2,4]
        [--sizes 64,4K,1M] [--peers 1,4,16,64] [--ip IP] [--port PORT]
        [--plot FILE.svg] [--no-instructions]
      tdinal and raw TCP alternating over loopback (A = 127.0.4.1, peers next):
      ratios, syscalls, copies, allocations, memory, handshake, engine cost.

Show two nodes at work:
  demo [--protocol-a V] [--protocol-b V] [--size BYTES] [--count N]
       [--nid-a NID] [--nid-b NID] [--port PORT]
      Two nodes in this process (127.0.0.2@tcp, 127.0.0.3@tcp, port 988):
      handshake, ping both ways, bulk PUTs with zero-copy ACKs, clean shutdown.

Options: -v more log output, -q less (logs go to stderr).";

#[cfg(unix)]
fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = match args::Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tdinal: {e}");
            std::process::exit(2);
        }
    };
    let verb = a.verb.clone().unwrap_or_default();
    if a.switch("help") || matches!(verb.as_str(), "" | "help") {
        println!("{USAGE}");
        std::process::exit(if verb.is_empty() && !a.switch("help") {
            2
        } else {
            0
        });
    }
    // Daemons log what they do; the other verbs only warnings and errors.
    let base = if verb == "daemon" {
        Level::Info
    } else {
        Level::Warn
    };
    let mut lvl = base;
    for _ in 0..a.verbosity.max(0) {
        lvl = lvl.louder();
    }
    for _ in 0..(-a.verbosity).max(0) {
        lvl = lvl.quieter();
    }
    log::set_level(lvl);
    let r = match verb.as_str() {
        "daemon" => daemon::run(&a),
        "demo" => demo::run(&a),
        "bench" => bench::run(&a),
        _ => client::run(&verb, &a),
    };
    if let Err(e) = r {
        eprintln!("tdinal {verb}: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("tdinal: the user-space runtime needs a Unix host\n{USAGE}");
    std::process::exit(2);
}
