#!/usr/bin/env bash
# Three brokers on this machine, one cluster: each a voter of the metadata
# quorum, on its own loopback address (127.0.0.1, .2, .3), port 9092 for
# clients and 9093 for the other voters, data in $DATA/broker-N, logs in
# $DATA/broker-N.log. With one shard each (the default) each broker is
# pinned to its own core, as far as the machine has cores. Stops them all
# on Ctrl-C.
#
#   bash tools/three_brokers.sh            # builds release, runs in the foreground
#   DATA=/tmp/weir3 SHARDS=2 bash tools/three_brokers.sh
#
# Then: weir topics create clicks --partitions 6 --replication-factor 3 -b 127.0.0.1:9092
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-./weir-cluster}
SHARDS=${SHARDS:-1}
cargo build --release -p weir
WEIR=target/release/weir
VOTERS="1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093"
mkdir -p "$DATA"
pids=()
trap 'kill "${pids[@]}" 2> /dev/null; wait' EXIT INT TERM
cores=$(nproc)
for id in 1 2 3; do
  cpuset=()
  [[ $SHARDS == 1 ]] && cpuset=(--cpuset "$(((id - 1) % cores))")
  "$WEIR" serve "${cpuset[@]}" --node-id "$id" --listen "127.0.0.$id:9092" --data-dir "$DATA/broker-$id" \
    --shards "$SHARDS" --admin-listen "127.0.0.$id:9644" --controller-quorum-voters "$VOTERS" \
    2> "$DATA/broker-$id.log" &
  pids+=($!)
done
for id in 1 2 3; do
  until [[ -s $DATA/broker-$id/listen.addr ]]; do
    kill -0 "${pids[$((id - 1))]}" 2> /dev/null || { echo "broker $id exited; see $DATA/broker-$id.log" >&2; exit 1; }
    sleep 0.2
  done
done
echo "three brokers up: bootstrap 127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092 (Ctrl-C stops them)"
wait
