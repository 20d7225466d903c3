#!/usr/bin/env bash
# Compatibility tests of the weir broker with real third-party Kafka clients:
# kafka-python (pure Python), confluent-kafka (Python over librdkafka), kcat
# (librdkafka, C) and kafkajs (pure JS).
#
# Usage (from anywhere, after `cargo build --release`):
#   bash tools/tests/clients/run.sh
# Environment:
#   WEIR          broker binary (default: target/release/weir under the repo root)
#   TEST_TIMEOUT  seconds allowed per client test (default: 180)
#
# Installs what is missing (kcat from apt, kafka-python and confluent-kafka into tools/tests/clients/.venv,
# kafkajs into tools/tests/clients/node_modules, all pinned), starts one broker on a free
# port with a fresh data dir, runs every client test against it with its own fresh
# topic(s), always stops the broker, and ends with the line "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"

WEIR=${WEIR:-target/release/weir}
[[ $WEIR == /* ]] || WEIR="$ROOT/$WEIR"
export WEIR
TEST_TIMEOUT=${TEST_TIMEOUT:-180}

KAFKA_PYTHON_REQ="$HERE/requirements.txt"   # pins kafka-python and confluent-kafka
VENV="$HERE/.venv"

log() { echo "== $*"; }

if [[ ! -x $WEIR ]]; then
  echo "broker binary $WEIR not found or not executable (run cargo build --release)" >&2
  exit 2
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# --- install the clients --------------------------------------------------------
if ! command -v kcat > /dev/null; then
  log "installing kcat (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat
fi
log "kcat: $(kcat -V 2>&1 | grep -m1 -o 'Version .*' || true)"

want_kp=$(sed -n 's/^kafka-python==//p' "$KAFKA_PYTHON_REQ")
have_kp=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("kafka-python"))' 2> /dev/null || true)
want_ck=$(sed -n 's/^confluent-kafka==//p' "$KAFKA_PYTHON_REQ")
have_ck=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("confluent-kafka"))' 2> /dev/null || true)
if [[ $have_kp != "$want_kp" || $have_ck != "$want_ck" ]]; then
  if [[ ! -x $VENV/bin/python ]]; then
    log "creating virtualenv $VENV"
    if ! python3 -m venv "$VENV" 2> /dev/null; then
      # Debian's own python3 needs python3-venv for `python3 -m venv`.
      rm -rf "$VENV"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  log "installing kafka-python $want_kp and confluent-kafka $want_ck (pip)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$KAFKA_PYTHON_REQ"
fi
log "kafka-python: $("$VENV/bin/python" -c 'import kafka; print(kafka.__version__)')"
log "confluent-kafka: $("$VENV/bin/python" -c 'import importlib.metadata as m, confluent_kafka as c; print(m.version("confluent-kafka"), "librdkafka", c.libversion()[0])')"

want_kafkajs=$(node -p "require('$HERE/package.json').dependencies.kafkajs")
have_kafkajs=$(node -p "try { require('$HERE/node_modules/kafkajs/package.json').version } catch (e) { '' }")
if [[ $have_kafkajs != "$want_kafkajs" ]]; then
  log "installing kafkajs (npm ci)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
log "kafkajs: $(node -p "require('$HERE/node_modules/kafkajs/package.json').version")"

# --- start the broker -----------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BOOTSTRAP=127.0.0.1:$PORT
DATA_DIR=$(mktemp -d -t weir-clients-data.XXXXXX)
BROKER_LOG=$(mktemp -t weir-clients-broker.XXXXXX.log)
BROKER_PID=

stop_broker() {
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2> /dev/null; then
    kill "$BROKER_PID" 2> /dev/null || true
    for _ in $(seq 50); do
      kill -0 "$BROKER_PID" 2> /dev/null || break
      sleep 0.1
    done
    kill -9 "$BROKER_PID" 2> /dev/null || true
    wait "$BROKER_PID" 2> /dev/null || true
  fi
  BROKER_PID=
  rm -rf "$DATA_DIR"
}
trap 'stop_broker; rm -f "$BROKER_LOG"' EXIT
trap 'exit 130' INT TERM

log "starting $WEIR serve --listen $BOOTSTRAP --data-dir $DATA_DIR --shards 2"
"$WEIR" serve --listen "$BOOTSTRAP" --data-dir "$DATA_DIR" --shards 2 > "$BROKER_LOG" 2>&1 &
BROKER_PID=$!

ready=0
for _ in $(seq 200); do   # up to 20 s
  if ! kill -0 "$BROKER_PID" 2> /dev/null; then
    echo "broker exited during startup:" >&2
    cat "$BROKER_LOG" >&2
    exit 1
  fi
  if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$PORT" 2> /dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [[ $ready -ne 1 ]]; then
  echo "broker did not accept connections on $BOOTSTRAP within 20 s:" >&2
  cat "$BROKER_LOG" >&2
  exit 1
fi

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

run_test kafka-python "$VENV/bin/python" "$HERE/kafka_python_roundtrip.py" "$BOOTSTRAP" "compat-kafka-python-$RUN_ID"
run_test kafka-python-groups "$VENV/bin/python" "$HERE/kafka_python_groups.py" "$BOOTSTRAP" "compat-kafka-python-groups-$RUN_ID"
run_test confluent-kafka-transactions "$VENV/bin/python" "$HERE/confluent_transactions.py" "$BOOTSTRAP" "compat-confluent-txn-$RUN_ID"
run_test kcat bash "$HERE/kcat_roundtrip.sh" "$BOOTSTRAP" "compat-kcat-$RUN_ID"
run_test kafkajs node "$HERE/kafkajs_roundtrip.js" "$BOOTSTRAP" "compat-kafkajs-$RUN_ID"

if [[ $failed -gt 0 ]]; then
  log "failed: ${failed_names[*]}; last 40 lines of the broker log:"
  tail -n 40 "$BROKER_LOG"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
