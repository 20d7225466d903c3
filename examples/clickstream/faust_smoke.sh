#!/usr/bin/env bash
# faust-streaming (aiokafka transactions) against a fresh Weir broker, with a
# SIGKILL: 1000 records produced, the faust worker (exactly_once) started,
# 4000 more produced at about 250/s, the worker SIGKILLed 4 s into them and
# restarted at once; then `fout` must hold each of the 5000 records exactly
# once (read_committed). See faust_smoke.py.
#
# Usage: bash examples/clickstream/faust_smoke.sh   (WEIR, KEEP as in run.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"
require_weir
VENV="$HERE/.venv-faust"
PY="$VENV/bin/python"
pip_install_pinned "$VENV" "$HERE/requirements-faust.txt"
log "$("$PY" -c 'import importlib.metadata as m
print(", ".join(n + " " + m.version(n) for n in ("faust-streaming", "aiokafka")))')"

WORK=$(mktemp -d -t weir-faust.XXXXXX)
BROKER_PID= WORKER_PID= PRODUCER_PID=
stop() { [[ -z $1 ]] || stop_process "$1"; } # setup.sh's: SIGTERM, SIGKILL after 5 s
cleanup() {
  stop "$PRODUCER_PID"
  stop "$WORKER_PID"
  stop "$BROKER_PID"
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'group_initial_rebalance_delay_ms = 0\n' > "$WORK/broker.toml"
PORT=$(free_port)
export BOOTSTRAP=127.0.0.1:$PORT FAUST_DATADIR=$WORK/faust-data
"$WEIR" serve --config "$WORK/broker.toml" --listen "$BOOTSTRAP" --data-dir "$WORK/data" \
  --admin-listen "" --shards 2 >> "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
wait_for_broker "$BROKER_PID" "$PORT" "$WORK/broker.log"
"$PY" - << 'PY'
import os
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": os.environ["BOOTSTRAP"]})
for name, future in admin.create_topics([NewTopic("fin", 2, 1), NewTopic("fout", 2, 1)]).items():
    future.result(30)
PY
"$PY" "$HERE/faust_smoke.py" produce 0 1000
start_worker() {
  "$PY" "$HERE/faust_smoke.py" worker >> "$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
}
start_worker
log "faust worker started (pid $WORKER_PID, log $WORK/worker.log)"
for _ in $(seq 300); do
  grep -q 'Worker\]: Ready' "$WORK/worker.log" && break
  sleep 0.1
done
"$PY" "$HERE/faust_smoke.py" produce 1000 5000 &
PRODUCER_PID=$!
sleep 4
log "before the kill: $("$PY" "$HERE/faust_smoke.py" check 5000 || true)"
kill -9 "$WORKER_PID"
wait "$WORKER_PID" 2> /dev/null || true
log "SIGKILLed the worker (pid $WORKER_PID) while records flow; restarting it"
echo "==== faust_smoke.sh: SIGKILL, restarting ====" >> "$WORK/worker.log"
start_worker
wait "$PRODUCER_PID"
PRODUCER_PID=
rc=0
"$PY" "$HERE/faust_smoke.py" check 5000 --wait 120 || rc=$?
grep -E ' (WARN|ERROR) ' "$WORK/broker.log" | head -n 20 || true
if [[ $rc == 0 ]]; then echo "VERDICT: PASS, 0 differences"; else echo "VERDICT: FAIL"; tail -n 30 "$WORK/worker.log"; fi
exit $rc
