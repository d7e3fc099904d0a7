//! Two nodes on two "hosts": network namespaces joined by a veth pair, created by this test
//! (addresses from 10.213.0.0/16 exist only inside them), so the nodes have different IPs and
//! NIDs as real hosts do. The daemons run inside the namespaces (`ip netns exec`); the CLI
//! reaches them through their control sockets (filesystem paths, shared by all namespaces).
//! Nothing outside the test's own namespaces is contacted.
//!
//! Skipped, with the reason printed, only where namespaces cannot be created (not root, no
//! `ip`, EPERM in a container). The namespaces are always deleted, even when the test fails.

mod runtime_common;

use std::process::Command;

use runtime_common::{expected_digest, Daemon, TempDir};

/// Deletes the namespaces (and with them the veth pair) when dropped.
struct Netns {
    names: Vec<String>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// Why namespaces cannot be used here, if they cannot.
fn unavailable() -> Option<String> {
    if !tdinal::runtime::sys::is_root() {
        return Some("not running as root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing: apt-get install iproute2".into()),
    }
}

#[test]
fn two_namespaces_over_veth() {
    if let Some(why) = unavailable() {
        println!("SKIPPED runtime_netns: cannot create network namespaces: {why}");
        return;
    }
    let pid = std::process::id();
    let (na, nb) = (
        format!("tdinal-test-{pid}-a"),
        format!("tdinal-test-{pid}-b"),
    );
    let mut guard = Netns { names: Vec::new() };
    if let Err(e) = ip(&["netns", "add", &na]) {
        if e.contains("Operation not permitted") || e.contains("Permission denied") {
            println!("SKIPPED runtime_netns: cannot create network namespaces: {e}");
            return;
        }
        panic!("{e}");
    }
    guard.names.push(na.clone());
    ip(&["netns", "add", &nb]).unwrap();
    guard.names.push(nb.clone());
    // veth ends are created directly inside the namespaces: nothing is left in the host's.
    let (va, vb) = (format!("tdv{pid}a"), format!("tdv{pid}b"));
    ip(&[
        "link", "add", &va, "netns", &na, "type", "veth", "peer", "name", &vb, "netns", &nb,
    ])
    .unwrap();
    let x = (pid % 250) as u8;
    let (ip_a, ip_b) = (format!("10.213.{x}.1"), format!("10.213.{x}.2"));
    for (ns, dev, addr) in [(&na, &va, &ip_a), (&nb, &vb, &ip_b)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]).unwrap();
        ip(&["-n", ns, "link", "set", dev, "up"]).unwrap();
        ip(&["-n", ns, "link", "set", "lo", "up"]).unwrap();
    }

    let dir = TempDir::new("netns");
    let (nid_a, nid_b) = (format!("{ip_a}@tcp"), format!("{ip_b}@tcp"));
    let da = Daemon::start_with(&dir, "a", &["ip", "netns", "exec", &na], &nid_a, &[]);
    let db = Daemon::start_with(&dir, "b", &["ip", "netns", "exec", &nb], &nid_b, &[]);

    let conns = da.ok(&["connect", &nid_b, &ip_b, "988"]);
    assert_eq!(conns.len(), 3, "{conns:?}");
    for l in &conns {
        assert!(l.contains(&format!("{ip_a}->{ip_b}:988")), "{l}");
        assert!(l.contains(" V3 "), "{l}");
    }
    // B sees A's real address and a privileged source port.
    for l in db.ok(&["conn_list", "--verbose"]) {
        assert!(l.starts_with(&format!("12345-{nid_a}")), "{l}");
        let rest = l
            .split_once(&format!("{ip_b}->{ip_a}:"))
            .unwrap_or_else(|| panic!("{l}"))
            .1;
        let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
        assert!((512..=1023).contains(&port), "{l}");
    }
    assert_eq!(
        da.ok(&["ping", &nid_b]),
        ["12345-0@lo".to_string(), format!("12345-{nid_b}")]
    );
    assert_eq!(
        db.ok(&["ping", &nid_a]),
        ["12345-0@lo".to_string(), format!("12345-{nid_a}")]
    );
    let out = da.ok(&["put", &nid_b, "--size", "1M", "--count", "8"]);
    assert!(out[0].contains("8 acknowledged, 0 failed"), "{out:?}");
    assert_eq!(db.stat("puts_received"), 8);
    assert_eq!(db.stat("put_digest"), expected_digest(1 << 20, 8));
    assert_eq!(da.stat("zc_acks_received"), 8);
    da.shutdown();
    db.shutdown();
    drop(guard);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.contains(&na) && !left.contains(&nb),
        "namespaces left: {left}"
    );
}
