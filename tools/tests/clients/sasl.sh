#!/usr/bin/env bash
# SASL over a SASL_PLAINTEXT listener with real clients: kcat and
# confluent-kafka (librdkafka), and a byte-level check of the listener's rules
# (sasl_raw.py).
#
# Starts its own broker (`--listeners SASL_PLAINTEXT://127.0.0.1:PORT`,
# `--connections-max-reauth-ms 3000`) on a fresh data dir whose first user was
# added with `weir users add --data-dir` before the start (as a SASL-only
# cluster gets its first users), then:
#   * sasl_raw.py: ApiVersions before authentication, anything else closes,
#     error codes 33/34/58, oversized and garbage tokens, v0 bare tokens,
#     session expiry;
#   * kcat, for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512: produce lines and read
#     them back; with a wrong password kcat fails with its authentication error;
#   * sasl_confluent.py: the same with confluent-kafka, the admin API of
#     KIP-554, and a producer living through three re-authentications;
#   * the broker log names the peer of failed authentications and never a password.
#
# Usage (from anywhere, after `cargo build --release`):
#   bash tools/tests/clients/sasl.sh
# Environment: WEIR (broker binary, default target/release/weir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"

require_weir
VENV="$HERE/.venv"
apt_install kcat
pip_install_pinned "$VENV" "$HERE/requirements.txt"
PY="$VENV/bin/python"

USER_NAME=alice
PASSWORD="alice-$RANDOM-secret"
REAUTH_MS=3000
PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$PORT
ADMIN=127.0.0.1:$(free_port)
DATA_DIR=$(mktemp -d -t weir-sasl-data.XXXXXX)
BROKER_LOG=$(mktemp -t weir-sasl-broker.XXXXXX.log)
WORK=$(mktemp -d)
BROKER_PID=
stop_broker() {
  [[ -z $BROKER_PID ]] || stop_process "$BROKER_PID"
  BROKER_PID=
  rm -rf "$DATA_DIR" "$WORK"
}
trap 'stop_broker; rm -f "$BROKER_LOG"' EXIT
trap 'exit 130' INT TERM
fail() {
  echo "FAIL sasl: $*" >&2
  tail -n 30 "$BROKER_LOG" >&2
  exit 1
}

echo "$PASSWORD" | "$WEIR" users add "$USER_NAME" --data-dir "$DATA_DIR"
grep -q -- "$PASSWORD" "$DATA_DIR/metadata.toml" && fail "metadata.toml holds the clear password"
log "starting $WEIR serve --listeners SASL_PLAINTEXT://$BOOTSTRAP --connections-max-reauth-ms $REAUTH_MS"
"$WEIR" serve --listeners "SASL_PLAINTEXT://$BOOTSTRAP" --connections-max-reauth-ms "$REAUTH_MS" \
  --data-dir "$DATA_DIR" --shards 2 --admin-listen "$ADMIN" > "$BROKER_LOG" 2>&1 &
BROKER_PID=$!
wait_for_broker "$BROKER_PID" "$PORT" "$BROKER_LOG"
RUN_ID=$(date +%s)-$$

log "sasl_raw.py"
timeout 120 "$PY" "$HERE/sasl_raw.py" "$BOOTSTRAP" "$USER_NAME" "$PASSWORD" "$REAUTH_MS" || fail "sasl_raw.py"

log "kcat"
seq 1 500 | sed 's/^/line-/' > "$WORK/sent.txt"
for mechanism in PLAIN SCRAM-SHA-256 SCRAM-SHA-512; do
  topic="sasl-$RUN_ID-kcat-$mechanism"
  kcat_sasl=(-b "$BOOTSTRAP" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanism="$mechanism"
    -X sasl.username="$USER_NAME")
  timeout 60 kcat "${kcat_sasl[@]}" -X sasl.password="$PASSWORD" -P -t "$topic" -X acks=all < "$WORK/sent.txt" \
    2> "$WORK/produce.err" || fail "kcat $mechanism produce: $(cat "$WORK/produce.err")"
  timeout 60 kcat "${kcat_sasl[@]}" -X sasl.password="$PASSWORD" -C -t "$topic" -o beginning -e \
    > "$WORK/got.txt" 2> "$WORK/consume.err" || fail "kcat $mechanism consume: $(cat "$WORK/consume.err")"
  cmp -s "$WORK/sent.txt" "$WORK/got.txt" || fail "kcat $mechanism: read back $(wc -l < "$WORK/got.txt") of 500 lines"
  rc=0
  timeout 30 kcat "${kcat_sasl[@]}" -X sasl.password="wrong-$PASSWORD" -L -m 5 > "$WORK/wrong.out" 2>&1 || rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] || fail "kcat $mechanism with a wrong password: exit $rc"
  grep -q "SASL authentication error" "$WORK/wrong.out" \
    || fail "kcat $mechanism with a wrong password: no authentication error: $(cat "$WORK/wrong.out")"
  echo "ok kcat [$mechanism]: 500 lines produced and read back; wrong password: $(grep -m1 -o 'SASL authentication error: [^(]*' "$WORK/wrong.out")"
done

log "sasl_confluent.py"
timeout 300 "$PY" "$HERE/sasl_confluent.py" "$BOOTSTRAP" "sasl-$RUN_ID-ck" "$USER_NAME" "$PASSWORD" "$REAUTH_MS" \
  || fail "sasl_confluent.py"

grep -q "peer=127.0.0.1:[0-9]* error_code=58" "$BROKER_LOG" || fail "no log line with the peer of a failed authentication"
grep -q -- "$PASSWORD" "$BROKER_LOG" && fail "the broker log holds the password"
grep -q "closing connection: Metadata before SASL authentication peer=" "$BROKER_LOG" \
  || fail "no log line for a request before authentication"
# Only sasl_raw.py's connection outlived its session: librdkafka re-authenticated.
expired=$(grep -c "after the SASL session expired" "$BROKER_LOG" || true)
[[ $expired -eq 1 ]] || fail "$expired connections were closed for an expired session (1 wanted: sasl_raw.py's)"
echo "ok sasl: the broker log names the peers of failures and holds no password; only the raw client's session expired"
python3 - "$ADMIN" << 'PY' || fail "SASL metrics"
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
def total(pattern):
    return sum(float(v) for v in re.findall(pattern + r"\S* (\d+)", text))
closed = total(r"weir_connections_sasl_closed_total\{")
failed = total(r'weir_requests_total\{[^}]*api="SaslAuthenticate",error_code="58"')
if closed < 10 or failed < 10:
    sys.exit(f"weir_connections_sasl_closed_total {closed}, SaslAuthenticate error 58 {failed}")
print(f"ok sasl: metrics count {closed:.0f} connections closed by SASL, {failed:.0f} failed authentications")
PY
echo "sasl: all passed"
