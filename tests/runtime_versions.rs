//! Two `tdinal daemon` processes over loopback for every pair of protocol versions (1..3 on
//! each side): connect, check the negotiated version is min(a, b) on both ends, ping both
//! ways, PUT data and check it arrived intact, then shut both down and check they exited
//! cleanly (idle engine, every gauge zero).

mod runtime_common;

use runtime_common::{expected_digest, lo, Daemon, TempDir};

const SIZE: usize = 300_000;
const COUNT: u64 = 5;

fn pair(a: u8, b: u8) {
    let dir = TempDir::new(&format!("v{a}{b}"));
    let (ip_a, ip_b) = (lo(10 + a * 3 + b, 2), lo(10 + a * 3 + b, 3));
    let (nid_a, nid_b) = (format!("{ip_a}@tcp"), format!("{ip_b}@tcp"));
    let da = Daemon::start(&dir, "a", &nid_a, &["--protocol", &a.to_string()]);
    let db = Daemon::start(&dir, "b", &nid_b, &["--protocol", &b.to_string()]);
    let want = a.min(b);

    // Connect (A is active): three typed connections, all in the negotiated version.
    let conns = da.ok(&["connect", &nid_b, &ip_b.to_string(), "988"]);
    assert_eq!(conns.len(), 3, "{conns:?}");
    for l in &conns {
        assert!(l.starts_with(&format!("12345-{nid_b}")), "{l}");
        assert!(
            l.contains(&format!(" V{want} ")),
            "A sees {l}, want V{want}"
        );
        assert!(l.contains(&format!("{ip_a}->{ip_b}:988")), "{l}");
        assert!(l.ends_with("active"), "{l}");
    }
    let types: Vec<char> = conns
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().chars().next().unwrap())
        .collect();
    assert_eq!(types, ['C', 'I', 'O'], "{conns:?}");
    // The passive side agrees: inverse types, same version, privileged source ports.
    let passive = db.ok(&["conn_list", "--verbose"]);
    assert_eq!(passive.len(), 3, "{passive:?}");
    for l in &passive {
        assert!(
            l.contains(&format!(" V{want} ")),
            "B sees {l}, want V{want}"
        );
        assert!(l.ends_with("passive"), "{l}");
        let port: u16 = l
            .split("->")
            .nth(1)
            .and_then(|r| r.split(':').nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no peer port in {l}"));
        assert!((512..=1023).contains(&port), "source port {port} in {l}");
    }
    let fallbacks = da.stat("fallbacks");
    if a > b {
        assert!(
            fallbacks >= 1,
            "A offered V{a} to a V{b} node: expected a fallback"
        );
        assert!(db.stat("fallback_replies") >= 1);
    } else {
        assert_eq!(fallbacks, 0);
    }

    // Ping both ways: lctl's output, one pid-nid per line.
    assert_eq!(
        da.ok(&["ping", &nid_b]),
        ["12345-0@lo".to_string(), format!("12345-{nid_b}")]
    );
    assert_eq!(
        db.ok(&["ping", &nid_a, "--timeout", "3"]),
        ["12345-0@lo".to_string(), format!("12345-{nid_a}")]
    );

    // PUTs A -> B, each acknowledged; B's digest of what arrived matches what was sent.
    let out = da.ok(&[
        "put",
        &nid_b,
        "--size",
        &SIZE.to_string(),
        "--count",
        &COUNT.to_string(),
    ]);
    assert!(
        out[0].contains(&format!("{COUNT} acknowledged, 0 failed")),
        "{out:?}"
    );
    let digest = format!("digest 0x{:016x}", expected_digest(SIZE, COUNT));
    assert_eq!(out.last().unwrap(), &digest);
    assert_eq!(db.stat("puts_received"), COUNT);
    assert_eq!(db.stat("put_bytes_received"), SIZE as u64 * COUNT);
    assert_eq!(db.stat("put_digest"), expected_digest(SIZE, COUNT));
    // Zero copy exists from V2 on: every 300 kB PUT asked for a ZC-ACK and got it.
    let (zc_req, zc_ack) = (da.stat("zc_requests"), da.stat("zc_acks_received"));
    if want >= 2 {
        assert_eq!((zc_req, zc_ack), (COUNT, COUNT));
    } else {
        assert_eq!((zc_req, zc_ack), (0, 0));
    }
    assert_eq!(da.stat("tx_msgs_failed"), 0);
    assert_eq!(da.stat("tx_msgs_open"), 0);

    // Both sides list each other. `peer_list` and `conn_list` go through the ioctl encodings
    // (GET_PEER / GET_CONN, as lctl sends them); the verbose listing is the text protocol's:
    // both must agree.
    let pl = da.ok(&["peer_list"]);
    assert_eq!(
        pl,
        [format!(
            "{:<20} [1]{ip_a}->{ip_b}:988 #3",
            format!("12345-{nid_b}")
        )]
    );
    let plain = db.ok(&["conn_list"]);
    assert_eq!(plain.len(), 3);
    for (p, v) in plain.iter().zip(passive.iter()) {
        assert!(v.starts_with(&format!("{p} ")), "ioctl: {p}\ntext:  {v}");
    }
    // Unknown peers are reported as lctl would (ENOENT).
    let o = da.cli(&["del_peer", "10.9.9.9@tcp"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("failed to remove peer") && e.contains("errno 2"),
        "{e}"
    );

    // add_peer / disconnect (ioctls too): a route without connections, connections closed
    // while the route stays, and the next ping brings them back.
    let ghost = runtime_common::lo(250, 9);
    da.ok(&[
        "add_peer",
        &format!("{ghost}@tcp"),
        &ghost.to_string(),
        "988",
    ]);
    let pl = da.ok(&["peer_list"]);
    assert_eq!(pl.len(), 2, "{pl:?}");
    assert!(
        pl[1].ends_with(&format!("[1]{ip_a}->{ghost}:988 #0")),
        "{pl:?}"
    );
    da.ok(&["del_peer", &format!("{ghost}@tcp")]);
    da.ok(&["disconnect", &nid_b]);
    let t0 = std::time::Instant::now();
    while !da.ok(&["conn_list"]).is_empty() {
        assert!(t0.elapsed().as_secs() < 5, "connections still listed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(da.ok(&["ping", &nid_b]).len(), 2);
    assert_eq!(da.ok(&["peer_list"]).len(), 1);

    da.shutdown();
    db.shutdown();
}

macro_rules! pairs {
    ($($name:ident: $a:expr, $b:expr;)*) => {
        $(
            #[test]
            fn $name() {
                pair($a, $b);
            }
        )*
    };
}

pairs! {
    v1_to_v1: 1, 1;
    v1_to_v2: 1, 2;
    v1_to_v3: 1, 3;
    v2_to_v1: 2, 1;
    v2_to_v2: 2, 2;
    v2_to_v3: 2, 3;
    v3_to_v1: 3, 1;
    v3_to_v2: 3, 2;
    v3_to_v3: 3, 3;
}
