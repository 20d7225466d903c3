#!/usr/bin/env bash
# Compatibility tests of the weir broker with real third-party Kafka clients:
# kafka-python and aiokafka (pure Python), confluent-kafka (Python over
# librdkafka), kcat (librdkafka, C), kafkajs (pure JS), and in Go sarama and
# confluent-kafka-go (over librdkafka), built offline from Debian's source
# packages in GOPATH mode (go/src/weir-compat).
#
# Each client lists all topics (the all-topics Metadata request Weir once
# refused from librdkafka), the ones with an admin API run an admin scenario
# (create with configs, describe, alter, create partitions, delete), and each
# writes one topic per compression codec it has, read back by a different
# client on the partitions its writer's documented default partitioner gives
# (cross_read.py). kafkajs writes gzip only: its other codecs are plugins.
# kafka-python and kafkajs then produce and consume through a leader's
# SIGKILL on a cluster of three brokers of their own (failover.py).
#
# SASL (sasl.sh: kcat and confluent-kafka over SASL_PLAINTEXT with PLAIN and
# SCRAM-SHA-256/512, the admin API of KIP-554, re-authentication, and the
# listener's rules byte by byte) runs against a broker of its own, then TLS
# (tls.sh: kcat and confluent-kafka over SSL and SASL_SSL, client
# certificates, an untrusted certificate, a plaintext client) against two.
# Quotas (quotas.sh: a confluent-kafka producer throttled to its
# producer_byte_rate, another client id not) against one more.
#
# Left out: segmentio's kafka-go as Debian packages it (0.2.1): it writes
# message format v1 with Produce v2 and reads with Fetch v2, which Kafka 4
# removed (KIP-724, KIP-896); it has no option for RecordBatch v2.
#
# Usage (from anywhere, after `cargo build --release`):
#   bash tools/tests/clients/run.sh
# Environment:
#   WEIR          broker binary (default: target/release/weir under the repo root)
#   TEST_TIMEOUT  seconds allowed per client test (default: 180)
#
# Installs what is missing, all pinned: kcat and the Go packages from apt, the
# Python clients into tools/tests/clients/.venv (requirements.txt), kafkajs into
# tools/tests/clients/node_modules; builds the Go program into go/bin; starts one
# broker on a free port with a fresh data dir, runs every client test against it
# with its own fresh topic(s), always stops the broker, and ends with the line
# "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"

require_weir
TEST_TIMEOUT=${TEST_TIMEOUT:-180}
REQUIREMENTS="$HERE/requirements.txt"
VENV="$HERE/.venv"
GO_BIN="$HERE/go/bin/weir-compat"

# --- install the clients --------------------------------------------------------
# golang-github-shopify-sarama-dev is sarama 1.22 (import path
# github.com/Shopify/sarama); confluent-kafka-go's package brings librdkafka-dev.
apt_install kcat golang-go golang-github-shopify-sarama-dev golang-github-confluentinc-confluent-kafka-go-dev
log "kcat: $(kcat -V 2>&1 | grep -m1 -o 'Version .*' || true)"

pip_install_pinned "$VENV" "$REQUIREMENTS"
log "python clients: $("$VENV/bin/python" -c 'import importlib.metadata as m, confluent_kafka as c
print(", ".join(n + " " + m.version(n) for n in ("kafka-python", "aiokafka", "confluent-kafka")), "(librdkafka", c.libversion()[0] + ")")')"

npm_install_pinned "$HERE"
log "kafkajs: $(node -p "require('$HERE/node_modules/kafkajs/package.json').version")"

mkdir -p "$HERE/go/bin"
log "building $GO_BIN ($(go version | cut -d' ' -f3), GOPATH mode, offline)"
(cd "$HERE" && GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="/usr/share/gocode:$HERE/go" \
  go build -o "$GO_BIN" weir-compat 2> "$HERE/go/build.log") || { cat "$HERE/go/build.log" >&2; exit 1; }

# --- start the broker -----------------------------------------------------------
PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$PORT
DATA_DIR=$(mktemp -d -t weir-clients-data.XXXXXX)
BROKER_LOG=$(mktemp -t weir-clients-broker.XXXXXX.log)
BROKER_PID=

stop_broker() {
  [[ -z $BROKER_PID ]] || stop_process "$BROKER_PID"
  BROKER_PID=
  rm -rf "$DATA_DIR"
}
trap 'stop_broker; rm -f "$BROKER_LOG"' EXIT
trap 'exit 130' INT TERM

log "starting $WEIR serve --listen $BOOTSTRAP --data-dir $DATA_DIR --shards 2"
"$WEIR" serve --listen "$BOOTSTRAP" --data-dir "$DATA_DIR" --shards 2 > "$BROKER_LOG" 2>&1 &
BROKER_PID=$!
wait_for_broker "$BROKER_PID" "$PORT" "$BROKER_LOG"

# --- run the client tests -------------------------------------------------------
RUN_ID=$(date +%s)-$$
passed=0
failed=0
failed_names=()

run_test() {
  local name=$1
  shift
  log "test $name"
  local start=$SECONDS rc=0
  timeout --kill-after=10 "$TEST_TIMEOUT" "$@" || rc=$?
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    log "PASS $name ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
      log "FAIL $name: timed out after $TEST_TIMEOUT s"
    else
      log "FAIL $name (exit $rc, $((SECONDS - start)) s)"
    fi
  fi
  if ! kill -0 "$BROKER_PID" 2> /dev/null; then
    log "broker is no longer running"
  fi
}

PY="$VENV/bin/python"
P="compat-$RUN_ID"
ALL_CODECS=gzip,snappy,lz4,zstd
run_test partitioner-hashes "$PY" "$HERE/compat.py"
run_test kafka-python "$PY" "$HERE/kafka_python_roundtrip.py" "$BOOTSTRAP" "$P-kafka-python"
run_test kafka-python-groups "$PY" "$HERE/kafka_python_groups.py" "$BOOTSTRAP" "$P-kafka-python-groups"
run_test kafka-python-admin "$PY" "$HERE/kafka_python_admin.py" "$BOOTSTRAP" "$P-kp"
run_test aiokafka "$PY" "$HERE/aiokafka_roundtrip.py" "$BOOTSTRAP" "$P-aiokafka"
run_test confluent-kafka-transactions "$PY" "$HERE/confluent_transactions.py" "$BOOTSTRAP" "$P-confluent-txn"
run_test confluent-kafka-admin "$PY" "$HERE/confluent_admin.py" "$BOOTSTRAP" "$P-ck"
run_test kcat bash "$HERE/kcat_roundtrip.sh" "$BOOTSTRAP" "$P-kcat"
run_test kafkajs node "$HERE/kafkajs_roundtrip.js" "$BOOTSTRAP" "$P-kafkajs"
run_test kafkajs-admin node "$HERE/kafkajs_admin.js" "$BOOTSTRAP" "$P-kjs"
run_test sarama "$GO_BIN" sarama "$BOOTSTRAP" "$P-sarama"
run_test confluent-kafka-go "$GO_BIN" confluent-kafka-go "$BOOTSTRAP" "$P-ckgo"
run_test cross-read-codecs "$PY" "$HERE/cross_read.py" "$BOOTSTRAP" \
  "confluent-kafka:$P-ck:$ALL_CODECS" "kafka-python:$P-kp:$ALL_CODECS" "aiokafka:$P-aiokafka:$ALL_CODECS" \
  "kcat:$P-kcat:$ALL_CODECS" "kafkajs:$P-kjs:gzip" "sarama:$P-sarama:$ALL_CODECS" \
  "confluent-kafka-go:$P-ckgo:$ALL_CODECS"
run_test failover "$PY" "$HERE/failover.py"
run_test sasl bash "$HERE/sasl.sh"
run_test tls bash "$HERE/tls.sh"
run_test quotas bash "$HERE/quotas.sh"

if [[ $failed -gt 0 ]]; then
  log "failed: ${failed_names[*]}; last 40 lines of the broker log:"
  tail -n 40 "$BROKER_LOG"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
