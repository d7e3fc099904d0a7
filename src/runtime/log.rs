//! A tiny logger: one line per message on stderr, `[seconds] tag LEVEL: message`. The level is
//! process-wide (`-v`/`-q` on the command line move it).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
    fn from_u8(v: u8) -> Level {
        match v {
            0 | 1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            _ => Level::Trace,
        }
    }
    /// One step more verbose (`-v`), saturating.
    pub fn louder(self) -> Level {
        Level::from_u8((self as u8).saturating_add(1))
    }
    /// One step quieter (`-q`), saturating at errors.
    pub fn quieter(self) -> Level {
        Level::from_u8((self as u8).saturating_sub(1))
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static START: OnceLock<Instant> = OnceLock::new();

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
    START.get_or_init(Instant::now);
}

pub fn level() -> Level {
    Level::from_u8(LEVEL.load(Ordering::Relaxed))
}

pub fn enabled(l: Level) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line (whole, so lines of concurrent threads do not interleave).
pub fn emit(l: Level, tag: &str, args: fmt::Arguments<'_>) {
    if !enabled(l) {
        return;
    }
    let t = START.get_or_init(Instant::now).elapsed();
    let line = format!(
        "[{:>4}.{:03}] {tag} {}: {args}\n",
        t.as_secs(),
        t.subsec_millis(),
        l.name()
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
