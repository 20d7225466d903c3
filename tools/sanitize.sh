#!/usr/bin/env bash
# The sanitizer loop: builds the broker with AddressSanitizer and runs
# bench/abort_loop.sh (more shards than cores, produce then consume, ROUNDS
# times) against it. A use-after-free or double free in the cross-thread
# paths (ARCHITECTURE.md: no glommio waker crosses threads) then fails at its
# first bad access, with both stacks in the kept broker log, instead of only
# when glibc happens to notice. Not in CI: a second full build (about 10 min
# on 2 cores) and a few minutes of rounds.
#
#   bash tools/sanitize.sh              # ROUNDS=10, SHARDS=4
#   ROUNDS=40 bash tools/sanitize.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Stable rustc takes -Zsanitizer only with RUSTC_BOOTSTRAP=1; its own target
# folder keeps the normal build; --target keeps build scripts uninstrumented.
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/asan RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}"
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --target "$triple" -p weir --bin weir
# Leaks are not what this looks for (executors end with the process).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
WEIR=$CARGO_TARGET_DIR/$triple/release/weir ROUNDS=${ROUNDS:-10} bash bench/abort_loop.sh
