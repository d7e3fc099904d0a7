//! Helpers for the runtime tests: daemons started from the built `tdinal` binary (always
//! killed at the end), CLI calls to their control sockets, per-run loopback addresses.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tdinal");

/// The second octet of this run's loopback addresses (127.X.…): different runs of the suite
/// at the same time do not collide on port 988.
pub fn run_octet() -> u8 {
    (100 + std::process::id() % 100) as u8
}

/// A loopback address of this run: 127.X.`c`.`d`.
pub fn lo(c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, run_octet(), c, d)
}

/// A scratch directory removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tdinal-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A `tdinal daemon` child process. Dropping it kills the process if it still runs (and prints
/// its log when the test is failing).
pub struct Daemon {
    pub nid: String,
    pub control: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `[prefix…] tdinal daemon --nid NID --control DIR/NAME.sock ARGS…` and waits until
    /// its control socket answers.
    pub fn start_with(
        dir: &TempDir,
        name: &str,
        prefix: &[&str],
        nid: &str,
        args: &[&str],
    ) -> Daemon {
        let control = dir.path(&format!("{name}.sock"));
        let log = dir.path(&format!("{name}.log"));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("daemon")
            .args(["--nid", nid])
            .arg("--control")
            .arg(&control)
            .args(args)
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(logf));
        let child = cmd.spawn().expect("spawn tdinal daemon");
        let mut d = Daemon {
            nid: nid.to_string(),
            control,
            log,
            child: Some(child),
        };
        d.wait_ready();
        d
    }

    pub fn start(dir: &TempDir, name: &str, nid: &str, args: &[&str]) -> Daemon {
        Daemon::start_with(dir, name, &[], nid, args)
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        loop {
            if self.control.exists() {
                let o = self.cli(&["stats"]);
                if o.status.success() {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "daemon {} exited early ({st}):\n{}",
                        self.nid,
                        self.log_text()
                    );
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "daemon {} not ready after 10 s:\n{}",
                self.nid,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `tdinal VERB ARGS… --control SOCKET`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--control")
            .arg(&self.control)
            .stdin(Stdio::null())
            .output()
            .expect("run tdinal")
    }

    /// Runs a CLI verb that must succeed; returns its stdout lines.
    pub fn ok(&self, args: &[&str]) -> Vec<String> {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "`tdinal {}` on {} failed ({}): {}\n--- daemon log ---\n{}",
            args.join(" "),
            self.nid,
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|s| s.to_string())
            .collect()
    }

    /// `stats` as (name, value) pairs.
    pub fn stats(&self) -> Vec<(String, String)> {
        self.ok(&["stats"])
            .iter()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect()
    }

    pub fn stat(&self, name: &str) -> u64 {
        let s = self.stats();
        let v = s
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no stat {name}"));
        match v.1.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).expect("hex stat"),
            None => v.1.parse().expect("numeric stat"),
        }
    }

    /// Asks the daemon to shut down and waits for its exit; asserts it exited cleanly (exit
    /// status 0: the runtime found the engine idle and every gauge at zero).
    pub fn shutdown(mut self) {
        self.ok(&["shutdown"]);
        self.wait_exit_ok();
    }

    /// Waits (at most 15 s) for the process to end with status 0.
    pub fn wait_exit_ok(&mut self) {
        let mut c = self.child.take().expect("child");
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                assert!(
                    st.success(),
                    "daemon {} exited with {st}:\n{}",
                    self.nid,
                    self.log_text()
                );
                let log = self.log_text();
                assert!(
                    log.contains("shut down cleanly"),
                    "daemon {} did not report a clean shutdown:\n{log}",
                    self.nid
                );
                return;
            }
            if t0.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "daemon {} did not exit within 15 s:\n{}",
                    self.nid,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                eprintln!("--- log of daemon {} ---\n{}", self.nid, self.log_text());
            }
        }
    }
}

/// Runs the `tdinal` binary with `args`, bounded by `limit`.
pub fn run_tdinal(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tdinal");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!(
                "`tdinal {}` did not finish within {:?}:\n{}\n{}",
                args.join(" "),
                limit,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The expected digest of `count` PUTs of `size` bytes (what the receiver's `put_digest` must
/// become), computed here from the pattern.
pub fn expected_digest(size: usize, count: u64) -> u64 {
    tdinal::runtime::put_digest(&tdinal::runtime::put_pattern(size), count)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
