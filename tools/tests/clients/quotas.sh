#!/usr/bin/env bash
# Client quotas with real clients: a confluent-kafka producer over its
# producer_byte_rate is throttled to it, another client id is not
# (quotas_confluent.py), on a broker of its own whose quota window is 3
# samples of 1 s (quota_window_num), so that the burst a new client may take
# (its quota over the window) is 3 s of it rather than Kafka's 11.
#
# Usage (from anywhere, after `cargo build --release`):
#   bash tools/tests/clients/quotas.sh
# Environment: WEIR (broker binary, default target/release/weir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"

require_weir
VENV="$HERE/.venv"
pip_install_pinned "$VENV" "$HERE/requirements.txt"
PY="$VENV/bin/python"

QUOTA=1048576
PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$PORT
DATA_DIR=$(mktemp -d -t weir-quotas-data.XXXXXX)
BROKER_LOG=$(mktemp -t weir-quotas-broker.XXXXXX.log)
BROKER_PID=
stop_broker() {
  [[ -z $BROKER_PID ]] || stop_process "$BROKER_PID"
  BROKER_PID=
  rm -rf "$DATA_DIR"
}
trap 'stop_broker; rm -f "$BROKER_LOG"' EXIT
trap 'exit 130' INT TERM

printf 'quota_window_num = 3\nquota_window_size_seconds = 1\n' > "$DATA_DIR/weir.toml"
log "starting $WEIR serve --config $DATA_DIR/weir.toml --listen $BOOTSTRAP"
"$WEIR" serve --config "$DATA_DIR/weir.toml" --listen "$BOOTSTRAP" --data-dir "$DATA_DIR/data" --shards 2 \
  > "$BROKER_LOG" 2>&1 &
BROKER_PID=$!
wait_for_broker "$BROKER_PID" "$PORT" "$BROKER_LOG"

"$WEIR" quotas alter -b "$BOOTSTRAP" --client-id throttled --add-config "producer_byte_rate=$QUOTA"
"$WEIR" quotas describe -b "$BOOTSTRAP" --client-id throttled | grep -q "producer_byte_rate *$QUOTA" ||
  { echo "FAIL quotas: the quota set is not described" >&2; exit 1; }
timeout 60 "$PY" "$HERE/quotas_confluent.py" "$BOOTSTRAP" "quotas-$(date +%s)-$$" "$QUOTA" ||
  { tail -n 30 "$BROKER_LOG" >&2; exit 1; }
