//! The `tdinal` command line: usage and argument errors, the daemon's configuration (config
//! file, `--set`, flags), its messages when it cannot start, SIGTERM, and the demo.

mod runtime_common;

use std::net::{SocketAddrV4, TcpListener};
use std::time::Duration;

use runtime_common::{lo, run_tdinal, Daemon, TempDir};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn usage_and_argument_errors() {
    let o = run_tdinal(&[], Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stdout).contains("usage: tdinal"));
    let o = run_tdinal(&["help"], Duration::from_secs(10));
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("conn_list [--verbose]"));
    for (args, msg) in [
        (&["daemon"][..], "--nid NID is required"),
        (&["daemon", "--nid", "bogus"], "bad NID 'bogus'"),
        (
            &["daemon", "--nid", "127.0.0.2@tcp", "--protocol", "4"],
            "bad value '4' for protocol (1, 2 or 3)",
        ),
        (
            &["daemon", "--nid", "127.0.0.2@tcp", "--set", "nosuch=1"],
            "unknown setting 'nosuch'",
        ),
        (
            &["daemon", "--nid", "127.0.0.2@tcp", "--size", "1"],
            "--size does not apply to 'daemon'",
        ),
        (&["ping"], "usage: tdinal ping"),
        (&["put", "127.0.0.2@tcp"], "--size BYTES is required"),
        (
            &["put", "127.0.0.2@tcp", "--size", "1.5M"],
            "bad size '1.5M'",
        ),
        (&["frobnicate"], "unknown verb 'frobnicate'"),
        (&["ping", "--frob"], "unknown option --frob"),
    ] {
        let o = run_tdinal(args, Duration::from_secs(10));
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = text(&o.stderr);
        assert!(e.contains(msg), "{args:?}: expected '{msg}' in: {e}");
    }
}

#[test]
fn client_says_how_to_reach_a_daemon() {
    let dir = TempDir::new("cli-nodaemon");
    let sock = dir.path("none.sock");
    let o = run_tdinal(
        &["ping", "127.0.0.2@tcp", "--control", sock.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.contains("cannot reach the daemon at"), "{e}");
    assert!(e.contains("is `tdinal daemon` running?"), "{e}");
}

#[test]
fn daemon_reads_config_file_and_flags_and_stops_on_sigterm() {
    let dir = TempDir::new("cli-config");
    let ip = lo(70, 2);
    let conf = dir.path("tdinal.conf");
    std::fs::write(
        &conf,
        "# test configuration\nprotocol = 2\naccept = all\nnscheds = 3\nsock_timeout = 7\n",
    )
    .unwrap();
    let nid = format!("{ip}@tcp");
    let mut d = Daemon::start(
        &dir,
        "a",
        &nid,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--set",
            "keepalive=0",
            "--port",
            "9988",
        ],
    );
    assert_eq!(d.stat("schedulers"), 3);
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "accept=all listening on {ip}:9988, protocol V2, 3 scheduler"
        )),
        "{log}"
    );
    assert!(d.ok(&["peer_list"]).is_empty());
    tdinal::runtime::sys::kill(d.pid(), tdinal::runtime::sys::SIGTERM).unwrap();
    d.wait_exit_ok();
    assert!(d.log_text().contains("signal received: shutting down"));
    assert!(!d.control.exists(), "control socket removed on exit");

    // A bad config file names the line.
    std::fs::write(&conf, "sock_timeout = 7\nbogus = 1\n").unwrap();
    let o = run_tdinal(
        &["daemon", "--nid", &nid, "--config", conf.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("line 2: unknown setting 'bogus'"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn daemon_explains_a_busy_port() {
    let dir = TempDir::new("cli-busy");
    let ip = lo(71, 2);
    let _taken = TcpListener::bind(SocketAddrV4::new(ip, 988)).unwrap();
    let sock = dir.path("a.sock");
    let o = run_tdinal(
        &[
            "daemon",
            "--nid",
            &format!("{ip}@tcp"),
            "--control",
            sock.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains(&format!("cannot bind {ip}:988: address in use")),
        "{e}"
    );
    assert!(e.contains("pass --ip or --port"), "{e}");
}

#[test]
fn demo_runs_and_moves_to_another_port_when_988_is_taken() {
    let (ia, ib) = (lo(72, 2), lo(72, 3));
    let _taken = TcpListener::bind(SocketAddrV4::new(ia, 988)).unwrap();
    let o = run_tdinal(
        &[
            "demo",
            "--nid-a",
            &format!("{ia}@tcp"),
            "--nid-b",
            &format!("{ib}@tcp"),
            "--size",
            "256K",
            "--count",
            "8",
            "--protocol-b",
            "2",
        ],
        Duration::from_secs(60),
    );
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        &format!("note: {ia}:988 is in use: using port 9880 instead") as &str,
        "over loopback, port 9880",
        "negotiated protocol V2 (after 1 version fallback(s)); 3 connection(s):",
        "12345-0@lo",
        &format!("12345-{ib}@tcp"),
        &format!("12345-{ia}@tcp"),
        "B received 8 PUT(s), 2097152 bytes; data verified",
        "A requested 8 ZC-ACK(s) and received 8",
        "every send finalized",
        "shutdown: clean",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
}

#[test]
fn demo_without_root_uses_unprivileged_ports() {
    let dir = TempDir::new("cli-nonroot");
    let (ia, ib) = (lo(73, 2), lo(73, 3));
    let args = [
        "demo".to_string(),
        "--nid-a".into(),
        format!("{ia}@tcp"),
        "--nid-b".into(),
        format!("{ib}@tcp"),
        "--size".into(),
        "256K".into(),
        "--count".into(),
        "4".into(),
    ];
    let o = if tdinal::runtime::sys::is_root() {
        // Run it as nobody, from a copy of the binary that user can read.
        let bin = dir.path("tdinal");
        std::fs::copy(runtime_common::BIN, &bin).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let st = std::process::Command::new("setpriv")
            .arg("--version")
            .output();
        assert!(
            st.is_ok_and(|o| o.status.success()),
            "setpriv is missing: apt-get install util-linux"
        );
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(&args)
            .output()
            .unwrap()
    } else {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        run_tdinal(&a, Duration::from_secs(60))
    };
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        "note: not running as root",
        "over loopback, port 9880",
        "speaks up to protocol V2, accept=all, one untyped connection",
        "negotiated protocol V2; 1 connection(s):",
        " V2 ANY ",
        "B received 4 PUT(s), 1048576 bytes; data verified",
        "shutdown: clean",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    // The source port was not privileged.
    let line = out.lines().find(|l| l.contains(" V2 ANY ")).unwrap();
    let port: u16 = line
        .rsplit(':')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(port > 1023, "{line}");
}

#[test]
fn a_stalled_peer_times_out_and_both_still_shut_down_cleanly() {
    let dir = TempDir::new("cli-stall");
    let (ia, ib) = (lo(74, 2), lo(74, 3));
    let (nid_a, nid_b) = (format!("{ia}@tcp"), format!("{ib}@tcp"));
    let da = Daemon::start(&dir, "a", &nid_a, &["--set", "sock_timeout=2"]);
    let db = Daemon::start(&dir, "b", &nid_b, &[]);
    da.ok(&["connect", &nid_b, &ib.to_string()]);
    // B stops reading (SIGSTOP): A's sends fill the socket buffers and stay in flight until
    // sock_timeout closes the connections; the PUTs fail.
    use tdinal::runtime::sys::{kill, SIGCONT, SIGSTOP};
    kill(db.pid(), SIGSTOP).unwrap();
    let t0 = std::time::Instant::now();
    let o = da.cli(&["put", &nid_b, "--size", "1M", "--count", "64"]);
    let waited = t0.elapsed();
    kill(db.pid(), SIGCONT).unwrap();
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("0 acknowledged, 64 failed"), "{e}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    assert!(da.log_text().contains("closed: timed out: sending"));
    assert!(da.stat("socket_writes_pending") >= 1);
    assert_eq!(da.stat("tx_msgs_open"), 0);
    assert_eq!(da.stat("zc_waiting"), 0);
    da.shutdown();
    db.shutdown();
}
