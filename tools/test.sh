#!/usr/bin/env bash
# The whole test suite: every crate's tests (engine, shards, net, and the
# integration tests that run the real broker against librdkafka), then the
# client compatibility tests (kcat, kafka-python, aiokafka, confluent-kafka,
# kafkajs, sarama, confluent-kafka-go), which install those clients if they
# are missing, then the click-stream showcase (examples/clickstream: a
# quixstreams exactly-once pipeline, its processor SIGKILLed once, then two
# instances of it with one SIGKILLed, then the same outputs from bytewax, each
# checked against a recomputation; about 1.5 min), then librdkafka's own test suite
# (tools/tests/librdkafka/run.sh), then every fuzz target for a bounded time
# from its committed corpus (tools/fuzz.sh; FUZZ_SECONDS each).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --workspace
cargo test --release --workspace
bash tools/tests/clients/run.sh
KILLS=1 bash examples/clickstream/run.sh
KILLS=1 INSTANCES=2 bash examples/clickstream/run.sh
PROCESSOR=bytewax bash examples/clickstream/run.sh
bash tools/tests/librdkafka/run.sh
bash tools/fuzz.sh
