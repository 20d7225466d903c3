#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ on stable Rust (cargo-fuzz's
# instrumentation flags, no sanitizer, so no nightly and no cargo-fuzz
# install) and runs each one for a bounded time from its committed corpus.
# A crash, a panic, a timeout or an out-of-memory fails the run and leaves
# the input in fuzz/artifacts/<target>/.
#
#   bash tools/fuzz.sh                        # every target, FUZZ_SECONDS (25) each
#   bash tools/fuzz.sh record_batch           # one target
#   bash tools/fuzz.sh record_batch -runs=0   # libFuzzer flags follow the target
#   bash tools/fuzz.sh build                  # build only
#   bash tools/fuzz.sh seeds DIR              # write fresh seed inputs into DIR/<target>
#   bash tools/fuzz.sh cmin TARGET DIR...     # re-minimize corpus/TARGET with the inputs in DIR...
#   FUZZ_ASAN=1 bash tools/fuzz.sh ...        # with AddressSanitizer (not in CI: 2x the build)
#
# New inputs a run finds go to fuzz/target/new-corpus/<target>, never into
# the committed corpus (fuzz/corpus/<target>; see ARCHITECTURE.md, Fuzzing).
set -euo pipefail

TARGETS=(request_frame request_decode record_batch segment_recovery sasl_exchange)
FUZZ_SECONDS=${FUZZ_SECONDS:-25}
command=${1:-run}
if [[ $command == seeds || $command == cmin ]]; then
    # Paths given by the caller, made absolute before the cd below.
    args=()
    for arg in "${@:2}"; do
        if [[ -e $arg || $command == seeds ]]; then arg=$(realpath -m "$arg"); fi
        args+=("$arg")
    done
fi
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

# What `cargo fuzz build --sanitizer none` passes (cargo-fuzz 0.12), with
# debug assertions so overflows and debug_assert! fail as in tests.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth
 -Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions ${RUSTFLAGS:-}"
# FUZZ_ASAN=1 adds AddressSanitizer (for the unsafe code: the allocator,
# glommio). Stable rustc takes -Zsanitizer only with RUSTC_BOOTSTRAP=1; its
# own target folder keeps both builds.
if [[ ${FUZZ_ASAN:-0} == 1 ]]; then
    export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/asan
    RUSTFLAGS="$RUSTFLAGS -Zsanitizer=address"
fi
# A --target build keeps the instrumentation out of build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --target "$triple" --bins
bin=${CARGO_TARGET_DIR:-target}/$triple/release

# segment_recovery writes a partition directory per input: on tmpfs that is
# ~40x faster than on disk.
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then
    export TMPDIR=/dev/shm
fi

case $command in
build)
    exit 0
    ;;
seeds)
    exec "$bin/fuzz_seeds" "${args[@]}"
    ;;
cmin)
    target=${args[0]}
    previous=$(mktemp -d)
    mv "corpus/$target" "$previous/"
    mkdir "corpus/$target"
    # One input per coverage edge (not per hit-count bucket): a small corpus.
    "$bin/$target" -merge=1 -use_counters=0 "corpus/$target" "$previous/$target" "${args[@]:1}"
    rm -rf "$previous"
    exit 0
    ;;
run) ;;
*)
    TARGETS=("$command")
    shift
    ;;
esac
for target in "${TARGETS[@]}"; do
    mkdir -p "target/new-corpus/$target" "artifacts/$target"
    echo "fuzzing $target for ${FUZZ_SECONDS}s"
    "$bin/$target" -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" "$@" "target/new-corpus/$target" "corpus/$target"
done
# Reached only when no target failed (set -e stops at the first crash).
echo "fuzz: ${#TARGETS[@]} passed, 0 failed"
