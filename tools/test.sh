#!/usr/bin/env bash
# The whole test suite: every crate's tests (engine, shards, net, and the
# integration tests that run the real broker against librdkafka), then the
# client compatibility tests (kcat, kafka-python, aiokafka, confluent-kafka,
# kafkajs, sarama, confluent-kafka-go), which install those clients if they
# are missing, then the Jepsen-style history check of a three-broker cluster
# whose partition leaders are SIGKILLed (tools/tests/history: the checker's
# tests, then one run of its driver, about a minute), then the click-stream
# showcase (examples/clickstream: a quixstreams exactly-once pipeline, its
# processor SIGKILLed once, then two instances of it with one SIGKILLed, then
# the same outputs from bytewax, each checked against a recomputation; about
# 1.5 min), then librdkafka's own test suite
# (tools/tests/librdkafka/run.sh), then every fuzz target for a bounded time
# from its committed corpus (tools/fuzz.sh; FUZZ_SECONDS each).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --workspace
cargo test --release --workspace
bash tools/tests/clients/run.sh
(cd tools/tests/history && python3 -m unittest -q test_checker)
tools/tests/clients/.venv/bin/python tools/tests/history/driver.py
KILLS=1 bash examples/clickstream/run.sh
KILLS=1 INSTANCES=2 bash examples/clickstream/run.sh
PROCESSOR=bytewax bash examples/clickstream/run.sh
bash tools/tests/librdkafka/run.sh
bash tools/fuzz.sh
