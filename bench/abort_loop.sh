#!/bin/bash
# Checks for the broker abort "free(): double free detected in tcache 2"
# (glommio wakers crossing threads; ARCHITECTURE.md, shards::reply): serve
# with more shards than cores, a short produce bench, a consume bench;
# repeated ROUNDS times. 84fb96f aborted 3 of 20 rounds, the reply channels
# 0 of 40 (2026-12-06, 2 cores). A broker that exits
# non-zero keeps its data dir and log (and a core file in the current
# directory when `ulimit -c unlimited`); the others are removed. Exits 1 if
# any round failed (tools/sanitize.sh runs it on an AddressSanitizer build).
# Knobs: WEIR (the binary), ROUNDS, SHARDS, ADDRESS.
set -uo pipefail
WEIR=${WEIR:-target/release/weir}
ROUNDS=${ROUNDS:-20}
SHARDS=${SHARDS:-4}
ADDRESS=${ADDRESS:-127.0.0.9}
aborted=0
for round in $(seq 1 "$ROUNDS"); do
    dir=$(mktemp -d)
    "$WEIR" serve --listen "$ADDRESS:19092" --admin-listen "$ADDRESS:19644" --shards "$SHARDS" --data-dir "$dir" >"$dir/log" 2>&1 &
    pid=$!
    until curl -sf "$ADDRESS:19644/health" >/dev/null; do sleep 0.05; done
    "$WEIR" bench produce -b "$ADDRESS:19092" --topic loop --partitions 8 --duration 4 --warmup 0 --message-size 200 >"$dir/produce.txt" 2>&1
    "$WEIR" bench consume -b "$ADDRESS:19092" --topic loop --warmup 0 >"$dir/consume.txt" 2>&1
    kill "$pid" 2>/dev/null
    wait "$pid"
    status=$?
    if [ "$status" -ne 0 ]; then
        aborted=$((aborted + 1))
        echo "round $round: broker exit $status; kept $dir: $(grep -v ' INFO ' "$dir/log" | tail -1)"
    else
        rm -rf "$dir"
    fi
done
echo "$aborted of $ROUNDS rounds ended with the broker failing"
[ "$aborted" -eq 0 ]
