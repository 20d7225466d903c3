#!/usr/bin/env bash
# Broker CPU seconds per GB produced (issue 17), for one or more `weir`
# binaries in the same run: each binary, in turn and ROUNDS times over,
# serves a fresh broker (SHARDS shards on CPUSET) that `weir bench produce`
# (of the first binary, so the load is the same) fills with MESSAGES values
# of SIZE bytes, BATCH records per produce request, acks=ACKS. The broker's
# CPU is utime + stime from /proc/<pid>/stat, read once the topic exists
# and again after the last answer; GB counts record values (as bench/tls.py).
#
# Usage: bench/produce_cpu.sh OLD_WEIR NEW_WEIR...
# Environment: MESSAGES=2000000 SIZE=1024 BATCH=1000 PARTITIONS=4
#              PRODUCERS=2 ACKS=1 SHARDS=1 CPUSET=0 ROUNDS=2
set -euo pipefail
MESSAGES=${MESSAGES:-2000000} SIZE=${SIZE:-1024} BATCH=${BATCH:-1000} PARTITIONS=${PARTITIONS:-4}
PRODUCERS=${PRODUCERS:-2} ACKS=${ACKS:-1} SHARDS=${SHARDS:-1} CPUSET=${CPUSET:-0} ROUNDS=${ROUNDS:-2}
TICK=$(getconf CLK_TCK)
BENCH=$1

cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# One broker, one produce run: prints "binary MB/s CPU-s/GB".
measure() {
    local weir=$1 dir port broker log before after start end
    dir=$(mktemp -d /tmp/weir-produce-cpu.XXXXXX)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$dir.log
    "$weir" serve --listeners "PLAINTEXT://127.0.0.1:$port" --data-dir "$dir" --shards "$SHARDS" \
        --cpuset "$CPUSET" --admin-listen "" >"$log" 2>&1 &
    broker=$!
    trap "kill $broker 2>/dev/null; rm -rf $dir $log" EXIT
    until grep -qs "listening on" "$log"; do sleep 0.1; done
    "$BENCH" topics create -b "127.0.0.1:$port" -p "$PARTITIONS" weir-bench >/dev/null
    before=$(cpu_ticks $broker)
    start=$(date +%s.%N)
    "$BENCH" bench produce -b "127.0.0.1:$port" -p "$PARTITIONS" --producers "$PRODUCERS" -s "$SIZE" \
        --batch-size "$BATCH" --acks "$ACKS" -n "$MESSAGES" --warmup 0 >/dev/null
    end=$(date +%s.%N)
    after=$(cpu_ticks $broker)
    kill $broker
    wait $broker || true
    rm -rf "$dir" "$log"
    trap - EXIT
    awk -v w="$weir" -v b="$before" -v a="$after" -v t="$TICK" -v s="$start" -v e="$end" \
        -v bytes="$((MESSAGES * SIZE))" \
        'BEGIN { gb = bytes / 2^30; printf "%-40s %8.1f %10.3f\n", w, bytes / 2^20 / (e - s), (a - b) / t / gb }'
}

echo "$MESSAGES values of $SIZE B, $BATCH per request, acks=$ACKS, $PARTITIONS partitions," \
    "$PRODUCERS producers, $SHARDS shard(s) on cores $CPUSET"
printf "%-40s %8s %10s\n" binary "MB/s" "CPU s/GB"
for _ in $(seq "$ROUNDS"); do
    for weir in "$@"; do
        measure "$weir"
    done
done
