#!/usr/bin/env bash
# Round trip through the broker with kcat (librdkafka), plain and compressed, and
# the codec topics that cross_read.py reads with another client.
#
# Usage: [WEIR=path/to/weir] kcat_roundtrip.sh BOOTSTRAP TOPIC_PREFIX
#
# For each codec (none, gzip, snappy): produce 1,000 keyed lines with
# `kcat -P -K:` to a fresh topic, check `kcat -L` lists the topic,
# read everything back with `kcat -C -o beginning -e`, and check that
#   * the multiset of key:value lines is exactly what was sent (exactly once),
#   * offsets are contiguous from 0 in each partition,
#   * within each partition, lines come back in the order they were sent,
#   * the payloads (including a ~10 KiB value) are byte-identical.
# Then for each of gzip, snappy, lz4 and zstd, the codec topic of compat.py's
# records (4 partitions, librdkafka's default partitioner), and `kcat -L` of
# all topics lists them.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BOOTSTRAP TOPIC_PREFIX" >&2
  exit 2
fi
BOOTSTRAP=$1
PREFIX=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=1000
WEIR=${WEIR:-weir}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Idempotence is off by default in librdkafka; stated explicitly because the
# broker has no InitProducerId.
KCAT_COMMON=(-b "$BOOTSTRAP" -X enable.idempotence=false -X api.version.request=true)

fail() { echo "FAIL kcat: $*" >&2; exit 1; }

# Messages: key k<i mod 17>, value "v<i>-<filler>", filler length varies up to ~10 KiB.
python3 - "$N" > "$WORK/sent.txt" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    size = (i * 7919) % 10240 if i % 100 else 10240
    filler = "".join(chr(0x21 + ((i + j) % 90)) for j in range(size)).replace(":", "=")
    print(f"k{i % 17}:v{i:05d}-{filler}")
EOF

run_codec() {
  local codec=$1 topic=$2 partitions=$3
  local zflag=()
  [[ $codec != none ]] && zflag=(-z "$codec")

  # kcat cannot create topics. partitions=auto: let the broker auto-create the
  # topic on first use (1 partition by default). Otherwise create it with the
  # broker's own CLI first -- setup only, nothing under test goes through it.
  if [[ $partitions != auto ]]; then
    timeout 30 "$WEIR" topics create --bootstrap "$BOOTSTRAP" --partitions "$partitions" "$topic" \
        > "$WORK/create.out" 2>&1 \
      || fail "[$codec] setup: weir topics create failed: $(cat "$WORK/create.out")"
  fi

  # Produce (keys via -K:, librdkafka's default partitioner spreads keys).
  local rc=0
  timeout 60 kcat "${KCAT_COMMON[@]}" -P -t "$topic" -K: "${zflag[@]}" -X acks=all \
      < "$WORK/sent.txt" 2> "$WORK/produce.err" || rc=$?
  [[ $rc -eq 124 ]] && fail "[$codec] produce to $topic timed out after 60 s: $(cat "$WORK/produce.err")"
  [[ $rc -ne 0 ]] && fail "[$codec] produce to $topic failed (exit $rc): $(cat "$WORK/produce.err")"

  # Metadata must list the topic.
  timeout 30 kcat "${KCAT_COMMON[@]}" -L -t "$topic" > "$WORK/meta.txt" 2>&1 \
    || fail "[$codec] kcat -L failed: $(cat "$WORK/meta.txt")"
  grep -q "topic \"$topic\" with [0-9]* partitions" "$WORK/meta.txt" \
    || fail "[$codec] kcat -L does not list topic $topic: $(cat "$WORK/meta.txt")"
  if [[ $partitions != auto ]]; then
    grep -q "topic \"$topic\" with $partitions partitions" "$WORK/meta.txt" \
      || fail "[$codec] kcat -L does not show $partitions partitions: $(cat "$WORK/meta.txt")"
  fi
  timeout 30 kcat "${KCAT_COMMON[@]}" -L > "$WORK/meta_all.txt" 2>&1 \
    || fail "[$codec] kcat -L (all topics) failed: $(cat "$WORK/meta_all.txt")"
  grep -q "topic \"$topic\" with" "$WORK/meta_all.txt" \
    || fail "[$codec] kcat -L (all topics) does not list $topic: $(cat "$WORK/meta_all.txt")"

  # Consume everything from the beginning; -e exits at the end of each partition.
  timeout 60 kcat "${KCAT_COMMON[@]}" -C -t "$topic" -o beginning -e \
      -f '%p %o %k:%s\n' > "$WORK/got.txt" 2> "$WORK/consume.err" \
    || fail "[$codec] consume failed: $(cat "$WORK/consume.err")"

  python3 - "$WORK/sent.txt" "$WORK/got.txt" "$codec" <<'EOF' || exit 1
import sys
from collections import Counter, defaultdict
sent = open(sys.argv[1], "rb").read().splitlines()
got_lines = open(sys.argv[2], "rb").read().splitlines()
codec = sys.argv[3]
errs = []
per_part = defaultdict(list)
payloads = []
for ln in got_lines:
    p, o, kv = ln.split(b" ", 2)
    per_part[int(p)].append((int(o), kv))
    payloads.append(kv)
if Counter(payloads) != Counter(sent):
    missing = Counter(sent) - Counter(payloads)
    extra = Counter(payloads) - Counter(sent)
    errs.append(f"content differs: {sum(missing.values())} missing, {sum(extra.values())} extra/duplicated "
                f"(got {len(payloads)} lines, sent {len(sent)})")
order = {kv: i for i, kv in enumerate(sent)}
for p, recs in sorted(per_part.items()):
    offs = [o for o, _ in recs]
    if offs != list(range(len(offs))):
        errs.append(f"partition {p}: offsets not contiguous from 0: {offs[:10]}...")
    idx = [order.get(kv, -1) for _, kv in recs]
    if idx != sorted(idx):
        errs.append(f"partition {p}: lines not in produce order")
if errs:
    for e in errs:
        print(f"FAIL kcat [{codec}]: {e}", file=sys.stderr)
    sys.exit(1)
print(f"ok kcat [{codec}]: {len(sent)} lines back exactly once, "
      f"partitions {dict(sorted((p, len(r)) for p, r in per_part.items()))}, offsets contiguous, order preserved")
EOF
}

run_codec none   "${PREFIX}-plain"  auto
run_codec none   "${PREFIX}-plain3" 3
run_codec gzip   "${PREFIX}-gzip"   3
run_codec snappy "${PREFIX}-snappy" 3

for codec in gzip snappy lz4 zstd; do
  topic="${PREFIX}-codec-kcat-${codec}" # compat.codec_topic
  timeout 30 "$WEIR" topics create --bootstrap "$BOOTSTRAP" --partitions 4 "$topic" > "$WORK/create.out" 2>&1 \
    || fail "[$codec] setup: weir topics create failed: $(cat "$WORK/create.out")"
  python3 "$HERE/compat.py" records kcat "$codec" > "$WORK/codec.txt"
  timeout 60 kcat "${KCAT_COMMON[@]}" -P -t "$topic" -K: -z "$codec" -X acks=all < "$WORK/codec.txt" 2> "$WORK/produce.err" \
    || fail "[$codec] produce to $topic failed: $(cat "$WORK/produce.err")"
done
timeout 30 kcat "${KCAT_COMMON[@]}" -L > "$WORK/meta_all.txt" 2>&1 || fail "kcat -L (all topics) failed: $(cat "$WORK/meta_all.txt")"
for codec in gzip snappy lz4 zstd; do
  grep -q "topic \"${PREFIX}-codec-kcat-${codec}\" with 4 partitions" "$WORK/meta_all.txt" \
    || fail "kcat -L (all topics) does not list ${PREFIX}-codec-kcat-${codec} with 4 partitions"
done
echo "ok kcat: codec topics gzip, snappy, lz4, zstd written, kcat -L lists them"
