//! A node's configuration: its NID and address, Lustre's tunables (set by their Lustre names
//! from flags or a `name = value` file), and the runtime's own knobs.

use std::fmt;
use std::net::Ipv4Addr;

use crate::engine::tunables::TunableError;
use crate::engine::Tunables;
use crate::wire::Nid;

/// Tunable names `Tunables::set` understands (for error messages).
pub const LUSTRE_NAMES: &[&str] = &[
    "accept",
    "accept_port",
    "accept_backlog",
    "accept_timeout",
    "sock_timeout",
    "min_reconnectms",
    "max_reconnectms",
    "typed_conns",
    "min_bulk",
    "conns_per_peer",
    "round_robin",
    "keepalive",
    "enable_csum",
    "inject_csum_error",
    "nonblk_zcack",
    "zc_min_payload",
    "protocol",
    "nagle",
    "tx_buffer_size",
    "rx_buffer_size",
    "keepalive_idle",
    "keepalive_count",
    "keepalive_intvl",
    "max_pending_accepts",
];

/// Names only this runtime knows: `nscheds` (Lustre's name: scheduler threads, 0 = one per
/// CPU) and `allow_unprivileged` (connect from an unprivileged port when no privileged one can
/// be bound; such a node is a "userspace" peer to others, spec §2.7).
pub const RUNTIME_NAMES: &[&str] = &["nscheds", "allow_unprivileged"];

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub nid: Nid,
    /// The local address: listened on (with `tunables.accept_port`) and bound for connects.
    pub ip: Ipv4Addr,
    pub tunables: Tunables,
    pub allow_unprivileged: bool,
    /// Scheduler threads; 0 = one per CPU (`available_parallelism`).
    pub nscheds: usize,
    /// The incarnation announced in hellos; `None` = the current time in microseconds.
    pub incarnation: Option<u64>,
}

impl NodeConfig {
    /// Defaults for `nid`: its own address, Lustre's default tunables.
    pub fn new(nid: Nid) -> NodeConfig {
        NodeConfig {
            nid,
            ip: Ipv4Addr::from(nid.addr()),
            tunables: Tunables::default(),
            allow_unprivileged: false,
            nscheds: 0,
            incarnation: None,
        }
    }

    /// Sets one setting by name (Lustre's tunable names, plus [`RUNTIME_NAMES`]).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let bad = || ConfigError::BadValue {
            name: name.to_string(),
            value: value.to_string(),
        };
        match name {
            "nscheds" => self.nscheds = value.parse().map_err(|_| bad())?,
            "allow_unprivileged" => {
                self.allow_unprivileged = match value {
                    "0" | "false" | "no" | "off" => false,
                    "1" | "true" | "yes" | "on" => true,
                    _ => return Err(bad()),
                }
            }
            _ => match self.tunables.set(name, value) {
                Ok(()) => {}
                Err(TunableError::BadValue) => return Err(bad()),
                Err(TunableError::UnknownName) => {
                    return Err(ConfigError::UnknownName(name.to_string()))
                }
            },
        }
        Ok(())
    }

    /// Applies a `name=value` assignment (the `--set` flag).
    pub fn set_assignment(&mut self, text: &str) -> Result<(), ConfigError> {
        let (n, v) = split_assignment(text).ok_or_else(|| ConfigError::Syntax(text.to_string()))?;
        self.set(n, v)
    }

    /// Applies every line of a config file's text (see [`parse`]).
    pub fn apply_text(&mut self, text: &str) -> Result<(), LineError> {
        for (line, name, value) in parse(text)? {
            self.set(&name, &value)
                .map_err(|error| LineError { line, error })?;
        }
        Ok(())
    }

    /// The number of scheduler threads this configuration asks for.
    pub fn scheduler_count(&self) -> usize {
        if self.nscheds > 0 {
            self.nscheds.min(64)
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(64)
        }
    }
}

fn split_assignment(s: &str) -> Option<(&str, &str)> {
    let (n, v) = s.split_once('=')?;
    let (n, v) = (n.trim(), v.trim());
    (!n.is_empty() && !v.is_empty()).then_some((n, v))
}

/// Parses a config file: one `name = value` per line; `#` starts a comment; blank lines are
/// ignored; values may be quoted with `"`. Returns `(line number, name, value)` triples.
pub fn parse(text: &str) -> Result<Vec<(usize, String, String)>, LineError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i.saturating_add(1);
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let Some((n, v)) = split_assignment(body) else {
            return Err(LineError {
                line,
                error: ConfigError::Syntax(body.to_string()),
            });
        };
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        out.push((line, n.to_string(), v.to_string()));
    }
    Ok(out)
}

/// What was wrong with a setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    UnknownName(String),
    BadValue { name: String, value: String },
    Syntax(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownName(n) => write!(
                f,
                "unknown setting '{n}' (known: {}, {})",
                LUSTRE_NAMES.join(", "),
                RUNTIME_NAMES.join(", ")
            ),
            ConfigError::BadValue { name, value } => {
                let hint = match name.as_str() {
                    "accept" => " (secure, all or none)",
                    "protocol" => " (1, 2 or 3)",
                    "accept_port" => " (1..65535)",
                    "typed_conns" | "enable_csum" | "nonblk_zcack" | "nagle" | "round_robin"
                    | "inject_csum_error" | "allow_unprivileged" => " (0 or 1)",
                    _ => " (a number)",
                };
                write!(f, "bad value '{value}' for {name}{hint}")
            }
            ConfigError::Syntax(s) => write!(f, "expected name = value, got '{s}'"),
        }
    }
}

/// A [`ConfigError`] at a line of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: ConfigError,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AcceptPolicy;
    use crate::wire::ProtoVersion;

    fn cfg() -> NodeConfig {
        NodeConfig::new("127.0.0.2@tcp".parse().unwrap())
    }

    #[test]
    fn defaults_follow_the_nid() {
        let c = cfg();
        assert_eq!(c.ip, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(c.tunables.accept_port, 988);
        assert!(!c.allow_unprivileged);
        assert!(c.scheduler_count() >= 1);
    }

    #[test]
    fn config_file_with_comments_quotes_and_runtime_names() {
        let mut c = cfg();
        let text = "# tdinal test config\n\
                    sock_timeout = 100\n\
                    \n\
                    accept=all   # trailing comment\n\
                    protocol = \"2\"\n\
                    typed_conns = 0\n\
                    nscheds = 3\n\
                    allow_unprivileged = yes\n\
                    zc_min_payload = 4096\n";
        c.apply_text(text).unwrap();
        assert_eq!(c.tunables.sock_timeout, 100);
        assert_eq!(c.tunables.accept, AcceptPolicy::All);
        assert_eq!(c.tunables.protocol, ProtoVersion::V2);
        assert!(!c.tunables.typed_conns);
        assert_eq!(c.scheduler_count(), 3);
        assert!(c.allow_unprivileged);
        assert_eq!(c.tunables.zc_min_payload, 4096);
    }

    #[test]
    fn config_errors_name_the_line_and_the_problem() {
        let mut c = cfg();
        let e = c.apply_text("sock_timeout = 5\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(matches!(e.error, ConfigError::UnknownName(ref n) if n == "bogus"));
        assert!(e.to_string().contains("line 2: unknown setting 'bogus'"));
        let e = c.apply_text("protocol = 4\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: bad value '4' for protocol (1, 2 or 3)"
        );
        let e = c.apply_text("\n\njust words\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.error, ConfigError::Syntax(_)));
        let e = c.apply_text("accept = maybe").unwrap_err();
        assert!(e.to_string().contains("secure, all or none"));
    }

    #[test]
    fn set_flag_form() {
        let mut c = cfg();
        c.set_assignment("keepalive=0").unwrap();
        assert_eq!(c.tunables.keepalive, 0);
        assert!(matches!(
            c.set_assignment("keepalive"),
            Err(ConfigError::Syntax(_))
        ));
        assert!(matches!(
            c.set_assignment("=3"),
            Err(ConfigError::Syntax(_))
        ));
    }
}
