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
# Each stage's wall time, so that the CI log shows where its time goes.
stage() {
  local start=$SECONDS
  "$@"
  echo "== stage took $((SECONDS - start)) s: $*"
}
stage cargo build --release --workspace
stage cargo test --release --workspace
stage bash tools/tests/clients/run.sh
(cd tools/tests/history && stage python3 -m unittest -q test_checker)
NEMESIS=mixed KILLS=5 stage tools/tests/clients/.venv/bin/python tools/tests/history/driver.py
KILLS=1 stage bash examples/clickstream/run.sh
KILLS=1 INSTANCES=2 stage bash examples/clickstream/run.sh
PROCESSOR=bytewax stage bash examples/clickstream/run.sh
stage bash tools/tests/librdkafka/run.sh
stage bash tools/fuzz.sh
