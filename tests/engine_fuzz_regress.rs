//! The engine's cargo-fuzz harnesses (`tdinal::engine::fuzzing`) as ordinary tests, so plain
//! `cargo test` exercises them without cargo-fuzz or a nightly toolchain:
//!
//! - every checked-in seed (`fuzz/seeds/<target>/`) is exactly what the seed generator builds
//!   today (`TDINAL_WRITE_SEEDS=1 cargo test --test engine_fuzz_regress` rewrites them);
//! - every seed and every saved crash (`fuzz/regressions/<target>/`) replays without a contract
//!   violation;
//! - a few thousand deterministic pseudo-random inputs per target (xorshift64*, fixed seeds),
//!   half of them mutations of the seeds, run clean. A failure names the target, seed and case.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tdinal::engine::fuzzing::{run, seeds, Target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs one input; on a violation, panics naming the case (the harness's own message is
/// printed above it by the panic hook).
fn replay(target: Target, what: &str, bytes: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| run(target, bytes))).is_err() {
        panic!(
            "{}: {what} ({} bytes) violates the engine's contract; reproduce with \
             `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {} <file>`",
            target.name(),
            bytes.len(),
            target.name()
        );
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn checked_in_seeds_are_the_generated_ones() {
    let write = std::env::var_os("TDINAL_WRITE_SEEDS").is_some();
    let all = seeds::all();
    for t in Target::ALL {
        let dir = fuzz_dir().join("seeds").join(t.name());
        let want: Vec<&seeds::Seed> = all.iter().filter(|s| s.target == t).collect();
        assert!(!want.is_empty(), "no seeds for {}", t.name());
        if write {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            for s in &want {
                fs::write(dir.join(s.name), &s.bytes).unwrap();
            }
        }
        let mut have: Vec<String> = files(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        have.sort();
        let mut names: Vec<String> = want.iter().map(|s| s.name.to_string()).collect();
        names.sort();
        assert_eq!(
            have,
            names,
            "fuzz/seeds/{} differs from the generator: TDINAL_WRITE_SEEDS=1 cargo test --test \
             engine_fuzz_regress",
            t.name()
        );
        for s in want {
            let on_disk = fs::read(dir.join(s.name)).unwrap();
            assert!(
                on_disk == s.bytes,
                "fuzz/seeds/{}/{} is stale: TDINAL_WRITE_SEEDS=1 cargo test --test \
                 engine_fuzz_regress",
                t.name(),
                s.name
            );
        }
    }
}

#[test]
fn seeds_and_saved_crashes_replay_clean() {
    let mut n = 0;
    for t in Target::ALL {
        for kind in ["seeds", "regressions"] {
            for f in files(&fuzz_dir().join(kind).join(t.name())) {
                let bytes = fs::read(&f).unwrap();
                replay(t, &f.display().to_string(), &bytes);
                n += 1;
            }
        }
    }
    assert!(n >= Target::ALL.len(), "only {n} files replayed");
}

/// xorshift64* (Vigna), as in tests/wire_props.rs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A random input: raw bytes, or a seed with a few mutations (byte flips, insertions of random
/// runs, deletions, truncation, splices with another seed).
fn input(rng: &mut Rng, pool: &[&[u8]]) -> Vec<u8> {
    if pool.is_empty() || rng.below(3) == 0 {
        let len = rng.below(400);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut v = pool[rng.below(pool.len())].to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(6) {
            0 | 1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let run: Vec<u8> = (0..1 + rng.below(12)).map(|_| rng.byte()).collect();
                v.splice(i..i, run);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let k = rng.below(v.len() - i + 1).min(16);
                v.drain(i..i + k);
            }
            4 => v.truncate(rng.below(v.len() + 1)),
            _ => {
                let other = pool[rng.below(pool.len())];
                let at = rng.below(other.len() + 1);
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[at..]);
            }
        }
    }
    v
}

fn random_inputs(t: Target, seed: u64, cases: usize) {
    let all = seeds::all();
    let pool: Vec<&[u8]> = all
        .iter()
        .filter(|s| s.target == t)
        .map(|s| &s.bytes[..])
        .collect();
    let mut rng = Rng(seed | 1);
    for case in 0..cases {
        let bytes = input(&mut rng, &pool);
        replay(t, &format!("seed {seed:#x} case {case}"), &bytes);
    }
}

#[test]
fn random_engine_rx_v1() {
    random_inputs(Target::RxV1, 0x51, 1500);
}

#[test]
fn random_engine_rx_v2() {
    random_inputs(Target::RxV2, 0x52, 1500);
}

#[test]
fn random_engine_rx_v3() {
    random_inputs(Target::RxV3, 0x53, 1500);
}

#[test]
fn random_engine_handshake_passive() {
    random_inputs(Target::HandshakePassive, 0x54, 1500);
}

#[test]
fn random_engine_handshake_active() {
    random_inputs(Target::HandshakeActive, 0x55, 1500);
}

#[test]
fn random_engine_pair_stateful() {
    random_inputs(Target::PairStateful, 0x56, 400);
}
