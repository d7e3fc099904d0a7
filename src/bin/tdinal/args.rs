//! Hand-rolled command-line parsing: a verb, positional arguments, `--flag value` /
//! `--flag=value` options (some repeatable), boolean switches, `-v`/`-q`.

use std::collections::BTreeMap;

/// Options that take a value.
const VALUED: &[&str] = &[
    "nid",
    "ip",
    "port",
    "accept",
    "config",
    "set",
    "protocol",
    "control",
    "timeout",
    "size",
    "count",
    "protocol-a",
    "protocol-b",
    "nid-a",
    "nid-b",
    "nscheds",
    "reps",
    "plot",
    "only",
    "cpp",
    "sizes",
    "peers",
    "engine-phase",
];
/// Switches.
const SWITCHES: &[&str] = &[
    "allow-unprivileged",
    "verbose",
    "help",
    "quick",
    "no-instructions",
];

/// A parsed command line.
#[derive(Debug, Default)]
pub struct Args {
    pub verb: Option<String>,
    pub pos: Vec<String>,
    opts: BTreeMap<String, Vec<String>>,
    switches: Vec<String>,
    /// `-v` count minus `-q` count.
    pub verbosity: i32,
}

impl Args {
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = argv.into_iter();
        let mut only_pos = false;
        while let Some(t) = it.next() {
            if only_pos || t == "-" || !t.starts_with('-') {
                if a.verb.is_none() {
                    a.verb = Some(t);
                } else {
                    a.pos.push(t);
                }
                continue;
            }
            if t == "--" {
                only_pos = true;
                continue;
            }
            if let Some(long) = t.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                if VALUED.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .ok_or_else(|| format!("option --{name} needs a value"))?,
                    };
                    a.opts.entry(name.to_string()).or_default().push(v);
                } else if SWITCHES.contains(&name) {
                    if inline.is_some() {
                        return Err(format!("option --{name} takes no value"));
                    }
                    a.switches.push(name.to_string());
                } else {
                    return Err(format!("unknown option --{name} (see `tdinal help`)"));
                }
                continue;
            }
            // Short switches: -v, -vv, -q, -h.
            for ch in t.chars().skip(1) {
                match ch {
                    'v' => a.verbosity += 1,
                    'q' => a.verbosity -= 1,
                    'h' => a.switches.push("help".into()),
                    _ => return Err(format!("unknown option -{ch} (see `tdinal help`)")),
                }
            }
        }
        Ok(a)
    }

    /// The last value of `--name`.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.opts
            .get(name)
            .and_then(|v| v.last())
            .map(|s| s.as_str())
    }

    /// Every value of a repeatable `--name`.
    pub fn all(&self, name: &str) -> &[String] {
        self.opts.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// Fails if an option outside `allowed` was given (so typos are not ignored silently).
    pub fn only(&self, verb: &str, allowed: &[&str]) -> Result<(), String> {
        for k in self.opts.keys().chain(self.switches.iter()) {
            if k != "help" && k != "control" && k != "nid" && !allowed.contains(&k.as_str()) {
                return Err(format!("option --{k} does not apply to '{verb}'"));
            }
        }
        Ok(())
    }

    /// Positional arguments between `min` and `max` in number.
    pub fn positional(
        &self,
        verb: &str,
        min: usize,
        max: usize,
        usage: &str,
    ) -> Result<(), String> {
        if self.pos.len() < min || self.pos.len() > max {
            return Err(format!("usage: tdinal {verb} {usage}"));
        }
        Ok(())
    }

    /// `--name` parsed as a number.
    pub fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.opt(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("bad value '{v}' for --{name} (a number)"))
            })
            .transpose()
    }
}

/// A byte count: plain, or with a K/M/G (binary) suffix: `1048576`, `1M`, `64k`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size '{s}' (a byte count, e.g. 4096, 64K or 1M)");
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1u64 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1u64 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, String> {
        Args::parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn verbs_options_and_switches() {
        let a = p(&[
            "-v",
            "daemon",
            "--nid",
            "127.0.0.2@tcp",
            "--set",
            "sock_timeout=5",
            "--set=keepalive=0",
            "--allow-unprivileged",
            "-vq",
            "-v",
        ])
        .unwrap();
        assert_eq!(a.verb.as_deref(), Some("daemon"));
        assert_eq!(a.opt("nid"), Some("127.0.0.2@tcp"));
        assert_eq!(a.all("set"), ["sock_timeout=5", "keepalive=0"]);
        assert!(a.switch("allow-unprivileged"));
        assert_eq!(a.verbosity, 2);
        let a = p(&["ping", "10.0.0.1@tcp", "--timeout", "3"]).unwrap();
        assert_eq!(a.pos, ["10.0.0.1@tcp"]);
        assert_eq!(a.num::<u64>("timeout").unwrap(), Some(3));
        assert!(a.only("ping", &["timeout"]).is_ok());
        assert!(a.only("peer_list", &[]).is_err());
    }

    #[test]
    fn errors_are_explicit() {
        assert!(p(&["daemon", "--nid"])
            .unwrap_err()
            .contains("--nid needs a value"));
        assert!(p(&["daemon", "--frob"])
            .unwrap_err()
            .contains("unknown option --frob"));
        assert!(p(&["daemon", "-x"])
            .unwrap_err()
            .contains("unknown option -x"));
        assert!(p(&["x", "--verbose=1"])
            .unwrap_err()
            .contains("takes no value"));
        let a = p(&["put", "1@tcp", "--size", "big"]).unwrap();
        assert!(a
            .num::<u64>("size")
            .unwrap_err()
            .contains("bad value 'big'"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("").is_err());
    }
}
