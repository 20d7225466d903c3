#!/usr/bin/env bash
# The click-stream showcase, end to end against a fresh Weir broker:
# generate clicks, run the quixstreams pipeline (exactly-once) until it has
# consumed everything, check its output topics against a recomputation.
#
# Usage (from anywhere, after `cargo build --release`):
#   bash examples/clickstream/run.sh
# Environment:
#   WEIR          broker binary (default: target/release/weir under the repo root)
#   EVENTS        click events to generate (default: 3000)
#   SEED          generator seed (default: 16)
#   PARTITIONS    partitions of `clicks` (default: 2; quixstreams then re-keys
#                 through a repartition topic)
#   RATE          events per second the generator produces while the pipeline
#                 runs (default: 500; 0: as fast as it can)
#   KILLS         times to SIGKILL the pipeline mid-run and restart it (default: 0)
#   KILL_AFTER    seconds from the clicks starting to the first kill (default:
#                 3); each further kill comes KILL_AFTER + 12 s after the
#                 restart (the killed processor's group session lasts 10 s)
#   BROKER_KILL   1 SIGKILLs the broker once while the clicks flow, and restarts
#                 it (default: 0)
#   BROKER_KILL_AFTER  seconds after the processor kills (or the clicks
#                 starting) that it comes (default: 2)
#   GUARANTEE     the pipeline's processing guarantee: exactly-once (default)
#                 or at-least-once (with kills, the checker then reports the
#                 duplicates)
#   TIMEOUT       seconds allowed for the pipeline to consume everything (default: 300)
#   KEEP          1 keeps the work directory (broker data and logs)
#
# Installs quixstreams (pinned in requirements.txt) into
# examples/clickstream/.venv on first use. Ends with the checker's verdict
# line, "VERDICT: PASS, 0 differences" or "VERDICT: FAIL, ...", and its status.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"

require_weir
EVENTS=${EVENTS:-3000}
SEED=${SEED:-16}
PARTITIONS=${PARTITIONS:-2}
KILLS=${KILLS:-0}
KILL_AFTER=${KILL_AFTER:-3}
RATE=${RATE:-500}
BROKER_KILL=${BROKER_KILL:-0}
BROKER_KILL_AFTER=${BROKER_KILL_AFTER:-2}
export GUARANTEE=${GUARANTEE:-exactly-once}
TIMEOUT=${TIMEOUT:-300}
VENV="$HERE/.venv"
PY="$VENV/bin/python"
GROUP=clickstream-quix

# --- install quixstreams --------------------------------------------------------
pip_install_pinned "$VENV" "$HERE/requirements.txt"
log "$("$PY" -c 'import importlib.metadata as m, confluent_kafka as c
print(", ".join(n + " " + m.version(n) for n in ("quixstreams", "confluent-kafka")), "(librdkafka", c.libversion()[0] + ")")')"

# --- start the broker -----------------------------------------------------------
WORK=$(mktemp -d -t weir-clickstream.XXXXXX)
BROKER_LOG=$WORK/broker.log
PIPELINE_LOG=$WORK/pipeline.log
BROKER_PID=
PIPELINE_PID=
GENERATOR_PID=

stop() { # stop PID: SIGTERM, then SIGKILL after 10 s
  [[ -z $1 ]] || stop_process "$1" 10
}
cleanup() {
  stop "$GENERATOR_PID"
  stop "$PIPELINE_PID"
  stop "$BROKER_PID"
  if [[ ${KEEP:-0} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Consumer groups here are new ones: no need to wait for more members.
printf 'group_initial_rebalance_delay_ms = 0\n' > "$WORK/broker.toml"
PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$PORT
log "starting $WEIR serve --listen $BOOTSTRAP --shards 2 (data and logs in $WORK)"
start_broker() {
  "$WEIR" serve --config "$WORK/broker.toml" --listen "$BOOTSTRAP" --data-dir "$WORK/data" \
    --admin-listen "" --shards 2 >> "$BROKER_LOG" 2>&1 &
  BROKER_PID=$!
  wait_for_broker "$BROKER_PID" "$PORT" "$BROKER_LOG"
}
start_broker

"$PY" - "$BOOTSTRAP" "$PARTITIONS" << 'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, partitions = sys.argv[1], int(sys.argv[2])
admin = AdminClient({"bootstrap.servers": bootstrap})
topics = [NewTopic("clicks", partitions, 1), NewTopic("page-views-1m", 2, 1), NewTopic("sessions", 2, 1)]
for name, future in admin.create_topics(topics).items():
    future.result(30)
print("== created topics clicks (%d partitions), page-views-1m (2), sessions (2)" % partitions)
PY

# --- process, generate, check --------------------------------------------------
start_pipeline() {
  "$PY" "$HERE/pipeline_quix.py" --bootstrap "$BOOTSTRAP" --group "$GROUP" --state-dir "$WORK/state" \
    >> "$PIPELINE_LOG" 2>&1 &
  PIPELINE_PID=$!
}
start=$SECONDS
: > "$PIPELINE_LOG"
start_pipeline
log "pipeline started (pid $PIPELINE_PID, log $PIPELINE_LOG)"
# Let it create its internal topics and start consuming before the clicks
# flow: a processor that starts on a backlog reads its input partitions at
# equal byte rates rather than in event-time order, which makes many events
# late for the re-keyed page-view windows (the checker still accounts for
# every one of them).
for _ in $(seq 300); do
  grep -q 'is now processing incoming messages' "$PIPELINE_LOG" && break
  kill -0 "$PIPELINE_PID" 2> /dev/null || { tail -n 30 "$PIPELINE_LOG"; exit 1; }
  sleep 0.1
done
sleep 1
"$PY" "$HERE/generate.py" --bootstrap "$BOOTSTRAP" --events "$EVENTS" --seed "$SEED" --rate "$RATE" \
  --out "$WORK/clicks.jsonl" &
GENERATOR_PID=$!
for k in $(seq "$KILLS"); do
  # A restarted processor gets the input only once the broker has expired the
  # killed one's group membership (session.timeout.ms, 10 s): later kills
  # wait for that too, so that each one hits a processor at work.
  sleep $((k == 1 ? KILL_AFTER : KILL_AFTER + 12))
  if ! kill -0 "$PIPELINE_PID" 2> /dev/null; then
    log "pipeline exited before kill $k:"
    tail -n 30 "$PIPELINE_LOG"
    exit 1
  fi
  kill -9 "$PIPELINE_PID"
  wait "$PIPELINE_PID" 2> /dev/null || true
  log "kill $k/$KILLS: SIGKILLed the pipeline (pid $PIPELINE_PID); restarting it"
  echo "==== run.sh: SIGKILL $k, restarting ====" >> "$PIPELINE_LOG"
  start_pipeline
done
if [[ $BROKER_KILL == 1 ]]; then
  sleep "$BROKER_KILL_AFTER"
  kill -9 "$BROKER_PID"
  wait "$BROKER_PID" 2> /dev/null || true
  log "SIGKILLed the broker (pid $BROKER_PID); restarting it on the same port and data directory"
  echo "==== run.sh: broker SIGKILL, restarting ====" >> "$BROKER_LOG"
  start_broker
fi
wait "$GENERATOR_PID"
if ! kill -0 "$PIPELINE_PID" 2> /dev/null; then
  rc=0
  wait "$PIPELINE_PID" || rc=$?
  log "the pipeline exited by itself (status $rc); restarting it"
  echo "==== run.sh: the pipeline exited (status $rc), restarting ====" >> "$PIPELINE_LOG"
  start_pipeline
fi
if ! "$PY" "$HERE/check.py" wait --bootstrap "$BOOTSTRAP" --group "$GROUP" --timeout "$TIMEOUT"; then
  log "last 30 lines of the pipeline log:"
  tail -n 30 "$PIPELINE_LOG"
  exit 1
fi
processed=$SECONDS
stop "$PIPELINE_PID"
PIPELINE_PID=
grep '^clickstream: late' "$PIPELINE_LOG" | tail -n 1 || true
log "pipeline consumed all $EVENTS events $((processed - start)) s after its start (including start-up and $KILLS kill(s)); stopped it"

rc=0
"$PY" "$HERE/check.py" verify --bootstrap "$BOOTSTRAP" --group "$GROUP" --input "$WORK/clicks.jsonl" || rc=$?
log "total $((SECONDS - start)) s"
warnings=$(grep -c -E ' (WARN|ERROR) ' "$BROKER_LOG" || true)
if [[ $warnings -gt 0 ]]; then
  log "the broker logged $warnings warning/error lines, the first 20:"
  grep -E ' (WARN|ERROR) ' "$BROKER_LOG" | head -n 20
fi
exit $rc
