#!/usr/bin/env bash
# Runs every `wire_*` cargo-fuzz target for FUZZ_SECONDS seconds each (default 10) and fails on
# the first crash, leak or assertion failure (cargo fuzz exits non-zero; the crashing input is
# left in fuzz/artifacts/<target>/).
#
# What works on the stable 1.95 toolchain (no nightly available), verified:
#   cargo install cargo-fuzz                      # once; v0.13.2
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wire_hello -- -max_total_time=10
# RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Zsanitizer=address / -Cpasses flags cargo-fuzz
# passes; AddressSanitizer (the default) works, no `--sanitizer none` needed.
#
# Usage: fuzz/smoke.sh            (from anywhere)
#        FUZZ_SECONDS=60 fuzz/smoke.sh
set -euo pipefail

cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2
    exit 1
fi

export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target directory; a CARGO_TARGET_DIR set for
# the main crate would only mix sanitizer builds into that cache.
unset CARGO_TARGET_DIR

targets=$(cargo fuzz list | grep '^wire_' || true)
if [ -z "$targets" ]; then
    echo "no wire_* fuzz targets found" >&2
    exit 1
fi

cargo fuzz build
for target in $targets; do
    echo "== $target: ${seconds}s"
    mkdir -p "corpus/$target"
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1
done
echo "all wire_* fuzz targets ran ${seconds}s each without a crash"
