#!/bin/bash
# The first use of a 1 GiB partition after a clean restart, with the producer
# state snapshot the clean stop left and with it moved away (a full replay of
# the log). Prints the time of the first consume and the bytes replayed.
# Knobs: WEIR (the binary), DIR (scratch, removed), ROUNDS.
set -euo pipefail
WEIR=${WEIR:-target/release/weir}
DIR=${DIR:-/tmp/weir-snapshot-restart}
ROUNDS=${ROUNDS:-3}
DATA=$DIR/data
rm -rf "$DIR" && mkdir -p "$DIR/aside"
start() {
    "$WEIR" serve --data-dir "$DATA" --shards 1 --listen 127.0.0.1:19092 --admin-listen 127.0.0.1:19644 2>>"$DIR/broker.log" &
    PID=$!
    trap 'kill $PID 2>/dev/null || true' EXIT
    until curl -sf 127.0.0.1:19644/health >/dev/null; do sleep 0.05; done
}
stop() {
    kill -TERM "$PID"
    wait "$PID" || true
}
first_fetch() {
    local t0 t1
    t0=$(date +%s.%N)
    "$WEIR" consume -b 127.0.0.1:19092 -t big --from-beginning -n 1 >/dev/null
    t1=$(date +%s.%N)
    local replayed
    replayed=$(curl -s 127.0.0.1:19644/metrics | awk '/^weir_producer_state_replayed_bytes_total/ {s += $2} END {print s}')
    echo "first fetch $(echo "$t1 - $t0" | bc) s, replayed $replayed bytes"
}
start
"$WEIR" bench produce -b 127.0.0.1:19092 -t big -p 1 -n 1000000 -s 1024 --consumers 0 --warmup 0 >/dev/null
first_fetch # loads the state from the whole log: no snapshot yet
stop
for _ in $(seq "$ROUNDS"); do
    start && echo -n "with snapshot:    " && first_fetch && stop
    mv "$DATA"/big-0/*.snapshot "$DIR/aside/"
    start && echo -n "without snapshot: " && first_fetch && stop
    mv "$DIR"/aside/*.snapshot "$DATA/big-0/"
done
rm -rf "$DIR"
