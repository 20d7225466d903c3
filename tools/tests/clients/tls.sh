#!/usr/bin/env bash
# TLS with real clients: kcat and confluent-kafka (librdkafka) over SSL and
# SASL_SSL, against two brokers of its own on certificates made for the run
# (tools/tests/tls_certs.sh, the openssl CLI):
#   * an SSL listener with client certificates requested: kcat produces lines
#     and reads them back; kcat trusting another CA fails with its SSL error;
#     kcat speaking plaintext to the port gets no answer, and the broker logs
#     the failed handshake with the peer's address;
#   * a SASL_SSL listener (SCRAM-SHA-256, its first user added with
#     `weir users add --data-dir`);
#   * tls_confluent.py: confluent-kafka produce and consume over SSL (with and
#     without a client certificate, whose principal the broker logs) and
#     SASL_SSL, an untrusted certificate, a wrong password;
#   * tls_kafka_python.py: the same with kafka-python's own TLS and SCRAM;
#   * tls_kafkajs.js: kafkajs (Node's TLS) producing and reading back over
#     SSL and SASL_SSL, and a wrong password.
#
# Usage (from anywhere, after `cargo build --release`):
#   bash tools/tests/clients/tls.sh
# Environment: WEIR (broker binary, default target/release/weir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"

require_weir
VENV="$HERE/.venv"
apt_install kcat openssl
pip_install_pinned "$VENV" "$HERE/requirements.txt"
npm_install_pinned "$HERE"
PY="$VENV/bin/python"

USER_NAME=alice
PASSWORD="alice-$RANDOM-secret"
WORK=$(mktemp -d -t weir-tls.XXXXXX)
CERTS="$WORK/certs"
SSL_PORT=$(free_port)
SASL_PORT=$(free_port)
SSL_LOG="$WORK/ssl-broker.log"
SASL_LOG="$WORK/sasl-ssl-broker.log"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do stop_process "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "FAIL tls: $*" >&2
  tail -n 20 "$SSL_LOG" "$SASL_LOG" >&2 || true
  exit 1
}

bash "$ROOT/tools/tests/tls_certs.sh" "$CERTS"
TLS_FILES=(--ssl-certificate-location "$CERTS/server.pem" --ssl-key-location "$CERTS/server.key")

log "starting an SSL broker on 127.0.0.1:$SSL_PORT (client certificates requested)"
"$WEIR" serve --listeners "SSL://127.0.0.1:$SSL_PORT" "${TLS_FILES[@]}" --ssl-ca-location "$CERTS/ca.pem" \
  --ssl-client-auth requested --data-dir "$WORK/ssl-data" --shards 2 --admin-listen "" \
  --log info,weir_net=debug > "$SSL_LOG" 2>&1 &
PIDS+=($!)
wait_for_broker "${PIDS[-1]}" "$SSL_PORT" "$SSL_LOG"

echo "$PASSWORD" | "$WEIR" users add "$USER_NAME" -m SCRAM-SHA-256 --data-dir "$WORK/sasl-data"
log "starting a SASL_SSL broker on 127.0.0.1:$SASL_PORT"
"$WEIR" serve --listeners "SASL_SSL://127.0.0.1:$SASL_PORT" "${TLS_FILES[@]}" \
  --data-dir "$WORK/sasl-data" --shards 2 --admin-listen "" > "$SASL_LOG" 2>&1 &
PIDS+=($!)
wait_for_broker "${PIDS[-1]}" "$SASL_PORT" "$SASL_LOG"
RUN_ID=$(date +%s)-$$

log "kcat over SSL"
seq 1 500 | sed 's/^/line-/' > "$WORK/sent.txt"
topic="tls-$RUN_ID-kcat"
kcat_ssl=(-b "127.0.0.1:$SSL_PORT" -X security.protocol=SSL)
timeout 60 kcat "${kcat_ssl[@]}" -X ssl.ca.location="$CERTS/ca.pem" -P -t "$topic" -X acks=all < "$WORK/sent.txt" \
  2> "$WORK/produce.err" || fail "kcat SSL produce: $(cat "$WORK/produce.err")"
timeout 60 kcat "${kcat_ssl[@]}" -X ssl.ca.location="$CERTS/ca.pem" -C -t "$topic" -o beginning -e \
  > "$WORK/got.txt" 2> "$WORK/consume.err" || fail "kcat SSL consume: $(cat "$WORK/consume.err")"
cmp -s "$WORK/sent.txt" "$WORK/got.txt" || fail "kcat SSL: read back $(wc -l < "$WORK/got.txt") of 500 lines"
echo "ok kcat [SSL]: 500 lines produced and read back"

rc=0
timeout 30 kcat "${kcat_ssl[@]}" -X ssl.ca.location="$CERTS/other-ca.pem" -L -m 5 > "$WORK/untrusted.out" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "kcat trusting another CA: exit $rc"
grep -q "certificate verify failed" "$WORK/untrusted.out" \
  || fail "kcat trusting another CA: no certificate error: $(cat "$WORK/untrusted.out")"
echo "ok kcat [SSL]: untrusted certificate: $(grep -m1 -o 'SSL handshake failed: [^(]*' "$WORK/untrusted.out" || true)"

rc=0
timeout 30 kcat -b "127.0.0.1:$SSL_PORT" -L -m 5 > "$WORK/plaintext.out" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "kcat speaking plaintext to the SSL port: exit $rc"
grep -q "closing connection: TLS handshake failed: received corrupt message .* peer=127.0.0.1:[0-9]*" "$SSL_LOG" \
  || fail "no log line with the peer of a plaintext client"
echo "ok kcat [PLAINTEXT to SSL]: refused; the broker logged: $(grep -m1 -o 'TLS handshake failed: received corrupt.*' "$SSL_LOG")"

log "tls_confluent.py"
timeout 300 "$PY" "$HERE/tls_confluent.py" "127.0.0.1:$SSL_PORT" "127.0.0.1:$SASL_PORT" "$CERTS" "tls-$RUN_ID-ck" \
  "$USER_NAME" "$PASSWORD" || fail "tls_confluent.py"
log "tls_kafka_python.py"
timeout 300 "$PY" "$HERE/tls_kafka_python.py" "127.0.0.1:$SSL_PORT" "127.0.0.1:$SASL_PORT" "$CERTS" "tls-$RUN_ID-kp" \
  "$USER_NAME" "$PASSWORD" || fail "tls_kafka_python.py"
log "tls_kafkajs.js"
timeout 300 node "$HERE/tls_kafkajs.js" "127.0.0.1:$SSL_PORT" "127.0.0.1:$SASL_PORT" "$CERTS" "tls-$RUN_ID-kjs" \
  "$USER_NAME" "$PASSWORD" || fail "tls_kafkajs.js"
grep -q "principal=User:CN=client,O=Weir" "$SSL_LOG" || fail "no connection with the client certificate's principal"
grep -q -- "$PASSWORD" "$SASL_LOG" && fail "the broker log holds the password"
for pid in "${PIDS[@]}"; do kill -0 "$pid" || fail "a broker died"; done
echo "tls: all passed"
