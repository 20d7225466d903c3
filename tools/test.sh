#!/usr/bin/env bash
# The whole test suite: every crate's tests (engine, shards, net, and the
# integration tests that run the real broker against librdkafka), then the
# client compatibility tests (kcat, kafka-python, aiokafka, confluent-kafka,
# kafkajs, sarama, confluent-kafka-go), which install those clients if they
# are missing, then the Jepsen-style history check of a three-broker cluster
# whose partition leaders are SIGKILLed, paused, cut off from the other
# brokers, wiped and restarted (SIGTERM), one fault of each kind (tools/tests/history: the
# checker's tests, then one run of its driver, about a minute; the network
# cut needs root, for network namespaces), then the click-stream
# showcase (examples/clickstream: a quixstreams exactly-once pipeline, its
# processor SIGKILLed once, then two instances of it with one SIGKILLed, then
# the same outputs from bytewax, each checked against a recomputation; about
# 1.5 min), then librdkafka's own test suite
# (tools/tests/librdkafka/run.sh), then every fuzz target for a bounded time
# from its committed corpus (tools/fuzz.sh; FUZZ_SECONDS each).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each stage's wall time, so that the CI log shows where its time goes, and
# a limit (seconds, about three times its usual time) so that a hang fails
# the run at the stage that hung, with its output, not at CI's own limit.
stage() {
  local limit=$1 start=$SECONDS
  shift
  timeout --kill-after=30 "$limit" "$@" || {
    local status=$?
    if [[ $status == 124 || $status == 137 ]]; then echo "== stage ran past ${limit} s: $*"; fi
    return "$status"
  }
  echo "== stage took $((SECONDS - start)) s: $*"
}
stage 2400 cargo build --release --workspace
stage 2400 cargo test --release --workspace --no-run
# The fuzz targets (a build of about 8 minutes: every dependency again, with
# coverage instrumentation) build meanwhile on the CPU time the tests below
# leave idle: at the lowest priority, so that the tests run as they would
# alone.
fuzz_build_log=target/fuzz-build.log
setsid nice -n 19 ionice -c 3 bash tools/fuzz.sh build > "$fuzz_build_log" 2>&1 &
fuzz_build=$!
# Its own process group (setsid), stopped with the run if a stage fails.
trap 'kill -- -"$fuzz_build" 2> /dev/null || true' EXIT
stage 1500 cargo test --release --workspace
stage 1200 bash tools/tests/clients/run.sh
(cd tools/tests/history && stage 300 python3 -m unittest -q test_checker)
NEMESIS=mixed KILLS=5 stage 600 tools/tests/clients/.venv/bin/python tools/tests/history/driver.py
KILLS=1 stage 600 bash examples/clickstream/run.sh
KILLS=1 INSTANCES=2 stage 600 bash examples/clickstream/run.sh
PROCESSOR=bytewax stage 600 bash examples/clickstream/run.sh
stage 1800 bash tools/tests/librdkafka/run.sh
wait "$fuzz_build" || { cat "$fuzz_build_log"; exit 1; }
stage 900 bash tools/fuzz.sh
