#!/bin/bash
# Mesh messages per request: how many messages the shards serve each other
# for a Produce and for a Fetch (weir_shard_mesh_messages_served_total over
# weir_requests_total, from /metrics), under `weir bench produce` (8
# partitions, 200-byte messages, 5 s) and then `weir bench consume`, with
# 4 shards. Knobs: WEIR (the binary), ADDRESS.
set -euo pipefail
WEIR=${WEIR:-target/release/weir}
ADDRESS=${ADDRESS:-127.0.0.7}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$WEIR" serve --listen "$ADDRESS:19092" --admin-listen "$ADDRESS:19644" --shards 4 --data-dir "$dir/data" >"$dir/log" 2>&1 &
pid=$!
until curl -sf "$ADDRESS:19644/health" >/dev/null; do sleep 0.05; done
"$WEIR" bench produce -b "$ADDRESS:19092" --topic mesh --partitions 8 --duration 5 --warmup 0 --message-size 200 >/dev/null
curl -s "$ADDRESS:19644/metrics" >"$dir/after-produce"
"$WEIR" bench consume -b "$ADDRESS:19092" --topic mesh --warmup 0 >/dev/null
curl -s "$ADDRESS:19644/metrics" >"$dir/after-consume"
kill "$pid"
wait "$pid" || true
total() { awk -v name="$2" -v filter="$3" 'index($0, name) == 1 && index($0, filter) { s += $NF } END { print s + 0 }' "$1"; }
per_request() {
    local label=$1 before=$2 after=$3 api=$4
    local mesh requests
    mesh=$(( $(total "$after" weir_shard_mesh_messages_served_total '') - $(total "$before" weir_shard_mesh_messages_served_total '') ))
    requests=$(( $(total "$after" weir_requests_total "api=\"$api\"") - $(total "$before" weir_requests_total "api=\"$api\"") ))
    echo "$label: $requests requests, $mesh mesh messages, $(echo "scale=2; $mesh / $requests" | bc) per request"
}
: >"$dir/empty"
per_request produce "$dir/empty" "$dir/after-produce" Produce
per_request fetch "$dir/after-produce" "$dir/after-consume" Fetch
