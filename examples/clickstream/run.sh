#!/usr/bin/env bash
# The click-stream showcase, end to end against a fresh Weir broker:
# generate clicks (weir demo clicks), run the quixstreams pipeline (exactly-once) until it has
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
#   RATE          events per second weir demo clicks produces while the pipeline
#                 runs (default: 500; 0: as fast as it can)
#   PROCESSOR     quix (default): pipeline_quix.py (quixstreams); bytewax:
#                 pipeline_bytewax.py (bytewax, at-least-once, see its
#                 docstring); same outputs, same checker
#   INSTANCES     processor instances sharing the input in one consumer group
#                 (default: 1)
#   KILLS         times to SIGKILL the pipeline mid-run and restart it (default: 0);
#                 with INSTANCES=2 each kill hits one instance (the second
#                 first, then alternating), and the last killed one is not
#                 restarted: the survivor takes over its partitions
#   KILL_AFTER    seconds from the clicks starting to the first kill (default:
#                 3); each further kill comes KILL_AFTER + 12 s after the
#                 restart (the killed processor's group session lasts 10 s)
#   BROKER_KILL   1 SIGKILLs the broker once while the clicks flow, and restarts
#                 it (default: 0)
#   BROKER_KILL_AFTER  seconds after the processor kills (or the clicks
#                 starting) that it comes (default: 2)
#   GUARANTEE     quixstreams' processing guarantee: exactly-once (default)
#                 or at-least-once (with kills, the checker then reports the
#                 duplicates)
#   BENCH         1 measures (bench.py): throughput, end-to-end latency of the
#                 outputs, the broker's and the processor's CPU time; needs
#                 KILLS=0, BROKER_KILL=0, INSTANCES=1
#   PRELOAD       1 produces all the clicks before the processor starts (with
#                 BENCH=1: the processor's throughput on a backlog, no latency)
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
INSTANCES=${INSTANCES:-1}
KILL_AFTER=${KILL_AFTER:-3}
RATE=${RATE:-500}
BROKER_KILL=${BROKER_KILL:-0}
BROKER_KILL_AFTER=${BROKER_KILL_AFTER:-2}
export GUARANTEE=${GUARANTEE:-exactly-once}
TIMEOUT=${TIMEOUT:-300}
BENCH=${BENCH:-0}
PRELOAD=${PRELOAD:-0}
if [[ $BENCH == 1 && ($KILLS != 0 || $BROKER_KILL != 0 || $INSTANCES != 1) ]]; then
  echo "BENCH=1 needs KILLS=0, BROKER_KILL=0 and INSTANCES=1" >&2
  exit 2
fi
PROCESSOR=${PROCESSOR:-quix}
case $PROCESSOR in
  quix) VENV="$HERE/.venv" REQUIREMENTS="$HERE/requirements.txt" ;;
  bytewax) VENV="$HERE/.venv-bytewax" REQUIREMENTS="$HERE/requirements-bytewax.txt" ;;
  *) echo "PROCESSOR must be quix or bytewax" >&2; exit 2 ;;
esac
PY="$VENV/bin/python"
GROUP=clickstream-$PROCESSOR
if [[ $PROCESSOR == bytewax && $INSTANCES != 1 ]]; then
  echo "PROCESSOR=bytewax runs one instance (bytewax has no consumer groups)" >&2
  exit 2
fi

# --- install the processor -------------------------------------------------------
pip_install_pinned "$VENV" "$REQUIREMENTS"
log "$("$PY" -c 'import importlib.metadata as m, confluent_kafka as c, sys
print(", ".join(n + " " + m.version(n) for n in (sys.argv[1], "confluent-kafka")), "(librdkafka", c.libversion()[0] + ")")' \
  "$([[ $PROCESSOR == quix ]] && echo quixstreams || echo bytewax)")"

# --- start the broker -----------------------------------------------------------
WORK=$(mktemp -d -t weir-clickstream.XXXXXX)
BROKER_LOG=$WORK/broker.log
PIPELINE_LOG=$WORK/pipeline.log # instance 1; instance i > 1 logs to pipeline-i.log
BROKER_PID=
declare -A PIPELINE_PIDS=() # instance -> pid, of those running
GENERATOR_PID=
PROBE_PID=

stop() { # stop PID: SIGTERM, then SIGKILL after 10 s
  [[ -z $1 ]] || stop_process "$1" 10
}
cleanup() {
  stop "$GENERATOR_PID"
  stop "$PROBE_PID"
  for i in "${!PIPELINE_PIDS[@]}"; do stop "${PIPELINE_PIDS[$i]}"; done
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
ADMIN= # the admin endpoint (its /metrics), for BENCH=1 only
[[ $BENCH == 1 ]] && ADMIN=127.0.0.1:$(free_port)
BOOTSTRAP=127.0.0.1:$PORT
log "starting $WEIR serve --listen $BOOTSTRAP --shards 2 (data and logs in $WORK)"
start_broker() {
  "$WEIR" serve --config "$WORK/broker.toml" --listen "$BOOTSTRAP" --data-dir "$WORK/data" \
    --admin-listen "$ADMIN" --shards 2 >> "$BROKER_LOG" 2>&1 &
  BROKER_PID=$!
  wait_for_broker "$BROKER_PID" "$PORT" "$BROKER_LOG"
}
start_broker

"$PY" - "$BOOTSTRAP" "$PARTITIONS" "$PROCESSOR" << 'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, partitions, processor = sys.argv[1], int(sys.argv[2]), sys.argv[3]
admin = AdminClient({"bootstrap.servers": bootstrap})
topics = [
    NewTopic("clicks", partitions, 1),
    NewTopic("page-views-1m", 2, 1),
    NewTopic("sessions", 2, 1),
    # A table: the latest row of each window is its top-N so far.
    NewTopic("top-pages-1m", 2, 1, config={"cleanup.policy": "compact"}),
]
if processor == "bytewax":  # creates no topics itself
    topics.append(NewTopic("repartition__clickstream-bytewax--clicks--by-page", partitions, 1))
for name, future in admin.create_topics(topics).items():
    future.result(30)
print("== created topics clicks (%d partitions), page-views-1m (2), sessions (2), top-pages-1m (2, compacted)" % partitions)
PY

# --- process, generate, check --------------------------------------------------
pipeline_log() { if [[ $1 == 1 ]]; then echo "$PIPELINE_LOG"; else echo "$WORK/pipeline-$1.log"; fi; }
start_pipeline() { # start_pipeline INSTANCE
  if [[ $PROCESSOR == bytewax ]]; then
    "$PY" "$HERE/pipeline_bytewax.py" --bootstrap "$BOOTSTRAP" --progress "$WORK/progress.json" \
      --recovery-dir "$WORK/recovery" >> "$(pipeline_log "$1")" 2>&1 &
  else
    "$PY" "$HERE/pipeline_quix.py" --bootstrap "$BOOTSTRAP" --group "$GROUP" --state-dir "$WORK/state-$1" \
      >> "$(pipeline_log "$1")" 2>&1 &
  fi
  PIPELINE_PIDS[$1]=$!
}
generate() {
  "$WEIR" demo clicks --bootstrap-server "$BOOTSTRAP" --topic clicks --events "$EVENTS" --seed "$SEED" \
    --rate "$RATE" --out "$WORK/clicks.jsonl"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
cpu_sample() {
  # label, time, broker ticks, processor ticks, broker user ticks, broker system ticks
  echo "$1 $(date +%s.%N) $(cpu_ticks "$BROKER_PID") $(cpu_ticks "${PIPELINE_PIDS[1]}")" \
    "$(awk '{print $14, $15}' "/proc/$BROKER_PID/stat")" >> "$WORK/cpu.txt"
  "$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "http://$ADMIN/metrics" > "$WORK/metrics-$1.txt"
}
if [[ $PRELOAD == 1 ]]; then
  generate
fi
start=$SECONDS
for i in $(seq "$INSTANCES"); do
  : > "$(pipeline_log "$i")"
  start_pipeline "$i"
  log "pipeline instance $i started (pid ${PIPELINE_PIDS[$i]}, log $(pipeline_log "$i"))"
done
# Let it create its internal topics and start consuming before the clicks
# flow: a processor that starts on a backlog reads its input partitions at
# equal byte rates rather than in event-time order, which makes many events
# late for the re-keyed page-view windows (the checker still accounts for
# every one of them).
for i in $(seq "$INSTANCES"); do
  for _ in $(seq 300); do
    grep -q 'is now processing incoming messages' "$(pipeline_log "$i")" && break
    kill -0 "${PIPELINE_PIDS[$i]}" 2> /dev/null || { tail -n 30 "$(pipeline_log "$i")"; exit 1; }
    sleep 0.1
  done
done
if [[ $BENCH == 1 && $PRELOAD == 1 ]]; then
  cpu_sample start # as soon as the processor is ready: it is reading the backlog already
elif [[ $BENCH == 1 ]]; then
  sleep 1
  "$PY" "$HERE/bench.py" probe --bootstrap "$BOOTSTRAP" --out "$WORK/visible.jsonl" &
  PROBE_PID=$!
  sleep 1
  # 3 s with every client connected and no clicks: the idle baseline.
  cpu_sample idle
  sleep 3
  cpu_sample start
fi
if [[ $PRELOAD != 1 ]]; then
  sleep 1
  generate &
  GENERATOR_PID=$!
fi
for k in $(seq "$KILLS"); do
  # A restarted processor gets the input only once the broker has expired the
  # killed one's group membership (session.timeout.ms, 10 s): later kills
  # wait for that too, so that each one hits a processor at work.
  sleep $((k == 1 ? KILL_AFTER : KILL_AFTER + 12))
  i=$((INSTANCES == 1 ? 1 : (k % 2 == 1 ? 2 : 1)))
  pid=${PIPELINE_PIDS[$i]}
  if ! kill -0 "$pid" 2> /dev/null; then
    log "pipeline instance $i exited before kill $k:"
    tail -n 30 "$(pipeline_log "$i")"
    exit 1
  fi
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  unset "PIPELINE_PIDS[$i]"
  if [[ $INSTANCES -gt 1 && $k == "$KILLS" ]]; then
    log "kill $k/$KILLS: SIGKILLed pipeline instance $i (pid $pid); the other one takes over its partitions"
    echo "==== run.sh: SIGKILL $k, not restarted ====" >> "$(pipeline_log "$i")"
  else
    log "kill $k/$KILLS: SIGKILLed pipeline instance $i (pid $pid); restarting it"
    echo "==== run.sh: SIGKILL $k, restarting ====" >> "$(pipeline_log "$i")"
    start_pipeline "$i"
  fi
done
if [[ $BROKER_KILL == 1 ]]; then
  sleep "$BROKER_KILL_AFTER"
  kill -9 "$BROKER_PID"
  wait "$BROKER_PID" 2> /dev/null || true
  log "SIGKILLed the broker (pid $BROKER_PID); restarting it on the same port and data directory"
  echo "==== run.sh: broker SIGKILL, restarting ====" >> "$BROKER_LOG"
  start_broker
fi
[[ -z $GENERATOR_PID ]] || wait "$GENERATOR_PID"
for i in "${!PIPELINE_PIDS[@]}"; do
  pid=${PIPELINE_PIDS[$i]}
  if ! kill -0 "$pid" 2> /dev/null; then
    rc=0
    wait "$pid" || rc=$?
    log "pipeline instance $i exited by itself (status $rc); restarting it"
    echo "==== run.sh: the pipeline exited (status $rc), restarting ====" >> "$(pipeline_log "$i")"
    start_pipeline "$i"
  fi
done
WAIT_ARGS=()
[[ $PROCESSOR == bytewax ]] && WAIT_ARGS=(--progress "$WORK/progress.json" --stamp "$WORK/settled.txt")
if ! "$PY" "$HERE/check.py" wait --bootstrap "$BOOTSTRAP" --group "$GROUP" --timeout "$TIMEOUT" "${WAIT_ARGS[@]}"; then
  for i in $(seq "$INSTANCES"); do
    log "last 30 lines of the log of pipeline instance $i:"
    tail -n 30 "$(pipeline_log "$i")"
  done
  exit 1
fi
processed=$SECONDS
[[ $BENCH == 1 ]] && cpu_sample consumed
for i in "${!PIPELINE_PIDS[@]}"; do
  stop "${PIPELINE_PIDS[$i]}"
  unset "PIPELINE_PIDS[$i]"
done
for i in $(seq "$INSTANCES"); do
  grep -h '^clickstream: late' "$(pipeline_log "$i")" | tail -n 1 || true
done
if [[ $INSTANCES -gt 1 ]]; then
  for i in $(seq "$INSTANCES"); do
    # A partition taken over from another instance shows as its state
    # recovered from the changelog topics.
    recovered=$(grep -o 'Recovery successful for <RecoveryPartition "changelog__[^"]*' "$(pipeline_log "$i")" |
      sed "s/.*changelog__$GROUP--//" | sort | uniq -c | awk '{print $2 ($1 > 1 ? " x" $1 : "")}' | paste -sd ' ' || true)
    log "instance $i recovered state from changelogs for: ${recovered:-none}"
  done
fi
log "pipeline consumed all $EVENTS events $((processed - start)) s after its start (including start-up, $INSTANCES instance(s) and $KILLS kill(s)); stopped it"

rc=0
"$PY" "$HERE/check.py" verify --bootstrap "$BOOTSTRAP" --group "$GROUP" --input "$WORK/clicks.jsonl" || rc=$?
if [[ $BENCH == 1 ]]; then
  sleep 1 # the probe's last reads
  stop "$PROBE_PID"
  PROBE_PID=
  "$PY" "$HERE/bench.py" report --bootstrap "$BOOTSTRAP" --group "$GROUP" --input "$WORK/clicks.jsonl" \
    --visible "$WORK/visible.jsonl" --cpu "$WORK/cpu.txt" --preload "$PRELOAD" --metrics "$WORK/metrics-%s.txt" \
    --settled "$WORK/settled.txt"
fi
log "total $((SECONDS - start)) s"
warnings=$(grep -c -E ' (WARN|ERROR) ' "$BROKER_LOG" || true)
if [[ $warnings -gt 0 ]]; then
  log "the broker logged $warnings warning/error lines, the first 20:"
  grep -E ' (WARN|ERROR) ' "$BROKER_LOG" | head -n 20
fi
exit $rc
