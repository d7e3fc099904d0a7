#!/usr/bin/env bash
# Runs every cargo-fuzz target — the wire decoders (`wire_*`), the engine harnesses (`engine_*`,
# see docs/reliability.md) and the control-request decoder (`ioctl_*`) — for FUZZ_SECONDS seconds
# each (default 8: the whole smoke takes about two minutes once built) and fails on the first
# crash, leak or assertion failure (cargo fuzz exits non-zero; the crashing input is left in
# fuzz/artifacts/<target>/).
#
# Each target starts from its corpus (fuzz/corpus/<target>, not in git), its checked-in seeds
# (fuzz/seeds/<target>) and its saved crashes (fuzz/regressions/<target>, replayed as tests by
# tests/engine_fuzz_regress.rs too).
#
# What works on the stable 1.95 toolchain (no nightly available), verified:
#   cargo install cargo-fuzz                      # once; v0.13.2
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a wire_hello -- -max_total_time=10
# RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Zsanitizer=address / -Cpasses flags cargo-fuzz
# passes; AddressSanitizer (the default) works. `-a` adds debug assertions and overflow checks.
# FUZZ_SANITIZER=none builds without ASan: the fuzzed layers forbid unsafe code, and the engine
# targets run about ten times faster (what the long runs in docs/reliability.md used).
#
# Usage: fuzz/smoke.sh                          (from anywhere)
#        FUZZ_SECONDS=60 fuzz/smoke.sh
#        FUZZ_TARGETS='engine_rx_v3 engine_pair_stateful' fuzz/smoke.sh
set -euo pipefail

cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-8}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2
    exit 1
fi

export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target directory; a CARGO_TARGET_DIR set for
# the main crate would only mix sanitizer builds into that cache.
unset CARGO_TARGET_DIR

targets="${FUZZ_TARGETS:-$(cargo fuzz list | grep -E '^(wire|engine|ioctl)_' || true)}"
if [ -z "$targets" ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

cargo fuzz build -a -s "$sanitizer"
for target in $targets; do
    echo "== $target: ${seconds}s"
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    for extra in seeds regressions; do
        if [ -d "$extra/$target" ]; then
            dirs+=("$extra/$target")
        fi
    done
    cargo fuzz run -a -s "$sanitizer" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1
done
echo "all fuzz targets ran ${seconds}s each without a crash: $(echo $targets | wc -w) targets"
