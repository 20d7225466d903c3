#!/usr/bin/env bash
# librdkafka's own integration test suite (tests/ of the librdkafka release
# that the rdkafka-sys crate bundles, the same source Cargo already
# downloaded for the rdkafka tests) against a fresh `weir serve`.
#
# Every test in tests/test.c's table that needs a broker is run in full mode
# (not -Q), one test number per test-runner process, with upstream's
# settings: auto-created topics with 4 partitions like upstream's test
# cluster, an authorizer open where no ACL applies (its ACL tests need one),
# test.topic.random=true, and TEST_KAFKA_VERSION of a 4.1 broker
# (Weir, like Kafka 4, takes RecordBatch v2 only: the tests leave out the
# older message formats for it). Tests of the "noautocreate" scenario run
# against a second broker with auto_create_topics off, as upstream runs
# them. Tests that create topics with three replicas (three_brokers.txt)
# run against a cluster of three brokers instead, one per scenario, as
# upstream runs its whole suite; tests of SASL credentials and
# re-authentication (sasl.txt) against a SASL/SCRAM broker or cluster. Tests that need what Weir does not have yet are skipped with their
# reason, from skipped.txt beside this file (each names the issue that
# builds it), and so is one that never talks to Weir (0150, librdkafka's
# mock cluster alone, timing-sensitive); a test of which only some subtests
# need it runs subtest by subtest, the others (subtests.txt).
#
#   bash tools/tests/librdkafka/run.sh            # every test
#   bash tools/tests/librdkafka/run.sh 0081 0044  # these test numbers
# Environment:
#   WEIR                 broker binary (default: target/release/weir)
#   LIBRDKAFKA_JOBS      test numbers run at once (default: 5)
#   LIBRDKAFKA_TIMEOUT   seconds one test number may take (default: 900)
#   TEST_TIMEOUT_MULTIPLIER  librdkafka's test.timeout.multiplier (default: 2)
#   LIBRDKAFKA_RUNNER_ARGS   more test-runner flags, e.g. -P (every producer
#                        idempotent, as upstream's idempotent run)
#   TEST_CONSUMER_GROUP_PROTOCOL  classic (default) or consumer: the group
#                        protocol librdkafka's tests use (consumer: KIP-848,
#                        group.protocol=consumer), as upstream's CI sets it;
#                        in consumer mode skipped-consumer.txt is read too.
#                        A group test run in consumer mode:
#     TEST_CONSUMER_GROUP_PROTOCOL=consumer bash tools/tests/librdkafka/run.sh 0029 0030 0033 0040 0045 0056 0069 0089 0102 0113
#
# Prints PASS/FAIL/SKIP per test and ends with "N passed, M failed, K skipped";
# a failed test's log stays in target/librdkafka-tests/logs/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"
source "$ROOT/tools/tests/setup.sh"

require_weir
JOBS=${LIBRDKAFKA_JOBS:-5}
TIMEOUT=${LIBRDKAFKA_TIMEOUT:-900}
MULTIPLIER=${TEST_TIMEOUT_MULTIPLIER:-2}
GROUP_PROTOCOL=${TEST_CONSUMER_GROUP_PROTOCOL:-classic}
case $GROUP_PROTOCOL in
  classic | consumer) ;;
  *) echo "TEST_CONSUMER_GROUP_PROTOCOL must be classic or consumer, not '$GROUP_PROTOCOL'" >&2; exit 2 ;;
esac
WORK="$ROOT/target/librdkafka-tests"

# --- build librdkafka and its test-runner ------------------------------------
# zstd and RapidJSON are optional to librdkafka, but without them the tests
# of zstd and of the statistics JSON are skipped.
apt_install zlib1g-dev libssl-dev libzstd-dev rapidjson-dev

manifest=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rdkafka-sys"))')
source_dir="$(dirname "$manifest")/librdkafka"
version=$(sed -n 's/^#define RD_KAFKA_VERSION *0x\([0-9a-f]*\).*/\1/p' "$source_dir/src/rdkafka.h")
build="$WORK/librdkafka-$version"
runner="$build/tests/test-runner"
if [[ ! -x $runner ]]; then
  log "building librdkafka's test-runner from $source_dir"
  rm -rf "$build"
  mkdir -p "$WORK"
  cp -a "$source_dir" "$build"
  (
    cd "$build"
    ./configure --disable-gssapi --disable-curl > "$WORK/configure.log" 2>&1 ||
      { cat "$WORK/configure.log"; exit 1; }
    make -j"$(nproc)" libs > "$WORK/make.log" 2>&1 || { tail -50 "$WORK/make.log"; exit 1; }
    make -C tests -j"$(nproc)" test-runner > "$WORK/make-tests.log" 2>&1 ||
      { tail -50 "$WORK/make-tests.log"; exit 1; }
  )
fi
tests_dir="$build/tests"
log "librdkafka $(sed -n 's/^#define RD_KAFKA_VERSION *\(0x[0-9a-f]*\).*/\1/p' "$source_dir/src/rdkafka.h")" \
  "($(basename "$(dirname "$source_dir")")), test-runner $runner"

# --- which tests ----------------------------------------------------------------
# Every entry of tests/test.c's table: name, flags, scenario.
table=$(python3 "$HERE/test_table.py" "$tests_dir/test.c")
declare -A skip_reason=()
skip_lists=("$HERE/skipped.txt")
[[ $GROUP_PROTOCOL == consumer ]] && skip_lists+=("$HERE/skipped-consumer.txt")
while IFS= read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  skip_reason[${line%% *}]=${line#* }
done < <(cat "${skip_lists[@]}")

declare -A three_brokers=()
while read -r name _; do
  [[ -z $name || $name == \#* ]] || three_brokers[$name]=1
done < "$HERE/three_brokers.txt"

declare -A over_sasl=()
while read -r name _; do
  [[ -z $name || $name == \#* ]] || over_sasl[$name]=1
done < "$HERE/sasl.txt"

declare -A subtests=()
while read -r name functions; do
  [[ -z $name || $name == \#* ]] || subtests[$name]=$functions
done < "$HERE/subtests.txt"

# The runner picks tests by number: a skipped test's number, in its scenario,
# is not run at all, so its siblings (e.g. 0045_*) are skipped with it.
declare -A skipped_number=()
while read -r name flags scenario; do
  [[ -n ${skip_reason[$name]:-} ]] && skipped_number["${name%%_*} $scenario"]=$name
done <<< "$table"

wanted=("$@")
selected=()   # "number scenario [subtest]"
not_run=()    # SKIP lines of the tests skipped here
while read -r name flags scenario; do
  number=${name%%_*}
  [[ $flags == *TEST_F_LOCAL* || $flags == *TEST_F_MANUAL* ]] && continue
  [[ $flags == *TEST_F_KNOWN_ISSUE* && $flags != *TEST_F_KNOWN_ISSUE_* ]] && continue
  if [[ ${#wanted[@]} -gt 0 && " ${wanted[*]} " != *" $number "* ]]; then continue; fi
  if [[ -n ${skip_reason[$name]:-} ]]; then
    not_run+=("SKIP $name: ${skip_reason[$name]}")
    continue
  fi
  if [[ -n ${skipped_number["$number $scenario"]:-} ]]; then
    not_run+=("SKIP $name: runs only with ${skipped_number["$number $scenario"]}, which is skipped")
    continue
  fi
  case $scenario in
    *default*) scenario=default ;;
    *noautocreate*) scenario=noautocreate ;;
    *) not_run+=("SKIP $name: scenario $scenario only"); continue ;;
  esac
  # A scenario's three-broker cluster is "<scenario>3", its SASL broker
  # "<scenario>sasl", a three-broker cluster with SASL "<scenario>3sasl".
  entry="$number $scenario${three_brokers[$name]:+3}${over_sasl[$name]:+sasl}"
  if [[ -n ${subtests[$name]:-} ]]; then
    for function in ${subtests[$name]}; do selected+=("$entry $function"); done
    for skipped in "${!skip_reason[@]}"; do
      [[ $skipped == "$name:"* ]] && not_run+=("SKIP $skipped: ${skip_reason[$skipped]}")
    done
  elif [[ " ${selected[*]} " != *" $entry "* ]]; then
    selected+=("$entry")
  fi
done <<< "$table"

# The longest tests first (durations measured here, 2026-12-07: 0113's
# u_ subtests take 280 s together, 0077 150 s, 0089 and 0139 90-100 s, 0103 and 0142 80 s), so
# that they do not end the run alone. The tests mostly wait on timers, so
# several run at once on two cores.
slow_first=(0113 0077 0089 0139 0103 0142)
ordered=()
for number in "${slow_first[@]}"; do
  for entry in "${selected[@]}"; do [[ $entry == "$number "* ]] && ordered+=("$entry"); done
done
for entry in "${selected[@]}"; do
  [[ " ${slow_first[*]} " == *" ${entry%% *} "* ]] || ordered+=("$entry")
done
selected=("${ordered[@]}")

# --- brokers --------------------------------------------------------------------
pids=()
dirs=()
stop_brokers() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  for dir in "${dirs[@]}"; do rm -rf "$dir"; done
}
trap stop_brokers EXIT
trap 'exit 130' INT TERM

# start_broker NAME AUTO_CREATE [PROTOCOL [serve flags]]: sets BOOTSTRAP to
# its address and DATA to its data directory. With an authorizer, as
# upstream's test cluster has (its ACL tests need one), open to everyone
# where no ACL names the resource.
start_broker() {
  local port data
  port=$(free_port)
  data=$(mktemp -d -t "weir-librdkafka-$1.XXXXXX")
  dirs+=("$data")
  [[ -z ${SASL_PASSWORD:-} ]] || echo "$SASL_PASSWORD" | "$WEIR" users add test -m SCRAM-SHA-256 --data-dir "$data"
  "$WEIR" serve --listeners "${3:-PLAINTEXT}://127.0.0.1:$port" "${@:4}" --data-dir "$data" --shards 2 \
    --default-partitions 4 --auto-create-topics "$2" --acl-enabled true --allow-everyone-if-no-acl-found true \
    --admin-listen "" > "$WORK/broker-$1.log" 2>&1 &
  pids+=($!)
  wait_for_broker "$!" "$port" "$WORK/broker-$1.log"
  BOOTSTRAP="127.0.0.1:$port"
}
# start_cluster NAME AUTO_CREATE [SASL_PASSWORD]: three brokers, each a
# voter of the metadata quorum, one shard each; sets BOOTSTRAP to their
# addresses once all three are registered. With a password, clients get a
# SASL_PLAINTEXT listener (user "test", sessions of 10 s) and the brokers
# replicate over their PLAINTEXT one.
start_cluster() {
  local id ports=() sasl_ports=() voters=() listed=() data listening
  for id in 1 2 3; do
    ports+=("$(free_port)")
    sasl_ports+=("$(free_port)")
    voters+=("$id@127.0.0.1:$(free_port)")
  done
  for id in 1 2 3; do
    data=$(mktemp -d -t "weir-librdkafka-$1-$id.XXXXXX")
    dirs+=("$data")
    listening=(--listeners "PLAINTEXT://127.0.0.1:${ports[id - 1]}")
    if [[ -n ${3:-} ]]; then
      listening=(--listeners "${listening[1]},SASL_PLAINTEXT://127.0.0.1:${sasl_ports[id - 1]}"
        --connections-max-reauth-ms 10000)
    fi
    "$WEIR" serve --node-id "$id" --controller-quorum-voters "$(IFS=,; echo "${voters[*]}")" \
      "${listening[@]}" --data-dir "$data" --shards 1 --default-partitions 4 \
      --auto-create-topics "$2" --admin-listen "" > "$WORK/broker-$1-$id.log" 2>&1 &
    pids+=($!)
    listed+=("127.0.0.1:${ports[id - 1]}")
  done
  for id in 1 2 3; do wait_for_broker "${pids[-4 + id]}" "${ports[id - 1]}" "$WORK/broker-$1-$id.log"; done
  BOOTSTRAP=$(IFS=,; echo "${listed[*]}")
  for _ in $(seq 100); do
    if [[ $("$WEIR" cluster status -b "$BOOTSTRAP" 2> /dev/null | grep -c ' active$') == 3 ]]; then
      [[ -z ${3:-} ]] && return
      echo "$3" | "$WEIR" users add test -m SCRAM-SHA-256 -b "$BOOTSTRAP" > /dev/null
      BOOTSTRAP=$(for port in "${sasl_ports[@]}"; do echo "127.0.0.1:$port"; done | paste -sd,)
      return
    fi
    sleep 0.2
  done
  echo "cluster $1: three brokers did not all register (logs in $WORK/broker-$1-*.log)" >&2
  exit 1
}
mkdir -p "$WORK/logs"
rm -f "$WORK"/logs/*
start_broker default true
default_bootstrap=$BOOTSTRAP
start_broker noautocreate false
noautocreate_bootstrap=$BOOTSTRAP
scenarios=(default noautocreate)
# Each cluster only where a selected test runs on it.
if [[ " ${selected[*]} " == *" default3"* ]]; then
  start_cluster default3 true
  default3_bootstrap=$BOOTSTRAP
  scenarios+=(default3)
fi
if [[ " ${selected[*]} " == *" noautocreate3"* ]]; then
  start_cluster noautocreate3 false
  noautocreate3_bootstrap=$BOOTSTRAP
  scenarios+=(noautocreate3)
fi
# SASL/SCRAM for the tests of credentials and re-authentication (sasl.txt);
# sessions of 10 s, so that clients re-authenticate (KIP-368) during them.
sasl_password="test-$RANDOM-secret"
if [[ " ${selected[*]} " == *" defaultsasl"* ]]; then
  SASL_PASSWORD=$sasl_password start_broker defaultsasl true SASL_PLAINTEXT --connections-max-reauth-ms 10000
  defaultsasl_bootstrap=$BOOTSTRAP
  scenarios+=(defaultsasl)
fi
if [[ " ${selected[*]} " == *" default3sasl"* ]]; then
  start_cluster default3sasl true "$sasl_password"
  default3sasl_bootstrap=$BOOTSTRAP
  scenarios+=(default3sasl)
fi
for scenario in "${scenarios[@]}"; do
  bootstrap_var=${scenario}_bootstrap
  cat > "$WORK/test-$scenario.conf" <<CONF
bootstrap.servers=${!bootstrap_var}
test.topic.random=true
test.timeout.multiplier=$MULTIPLIER
CONF
done
for scenario in "${scenarios[@]}"; do
  if [[ $scenario == *sasl ]]; then
    cat >> "$WORK/test-$scenario.conf" <<CONF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.username=test
sasl.password=$sasl_password
CONF
  fi
done
# kafka-topics.sh and kafka-acls.sh for the tests that create or change
# topics and ACLs through Kafka's Java CLI, which is not installable here:
# they run `weir topics` and `weir acls`.
mkdir -p "$WORK/kafka/bin"
for tool in topics acls; do
  cat > "$WORK/kafka/bin/kafka-$tool.sh" <<SHIM
#!/usr/bin/env bash
exec python3 "$HERE/kafka_${tool}_shim.py" "$WEIR" "\$@"
SHIM
  chmod +x "$WORK/kafka/bin/kafka-$tool.sh"
done

# --- run --------------------------------------------------------------------------
run_one() { # number scenario [subtest function]
  local number=$1 scenario=$2 subtest=${3:-} bootstrap_var=${2}_bootstrap rc=0
  local out="$WORK/logs/$1-$2${3:+-$3}.log"
  # The scenario upstream's table names: this one less its broker's suffix.
  local upstream_scenario=${scenario%sasl}
  upstream_scenario=${upstream_scenario%3}
  # (A runner that aborts would make bash report it on stderr: the log says more.)
  { (
    cd "$tests_dir"
    LD_LIBRARY_PATH="$build/src:$build/src-cpp" TEST_KAFKA_VERSION=4.1.0 \
      TEST_CONSUMER_GROUP_PROTOCOL="$GROUP_PROTOCOL" \
      RDKAFKA_TEST_CONF="$WORK/test-$scenario.conf" SUBTESTS="${subtest:+$subtest:}" KAFKA_PATH="$WORK/kafka" BROKERS="${!bootstrap_var}" \
      timeout -k 10 "$TIMEOUT" ./test-runner -L ${LIBRDKAFKA_RUNNER_ARGS:-} -s "$upstream_scenario" "$number"
  ) > "$out" 2>&1 || rc=$?; } 2> /dev/null
  # The runner's summary table (| name | STATE | duration | reason), or,
  # where a failure aborted it before the table, its failure lines.
  sed 's/\x1b\[[0-9;]*m//g' "$out" | awk -F'|' -v number="$number" -v rc="$rc" -v subtest="${subtest:+:$subtest}" '
    $2 ~ "^ " number "_" {
      gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); gsub(/^ +| +$/, "", $4); gsub(/^ +| +$/, "", $5)
      # Silent skips: local tests, other scenarios.
      if ($3 == "SKIPPED" && ($5 == "" || $5 ~ /negative test flags/)) next
      state = ($3 == "PASSED") ? "PASS" : ($3 == "SKIPPED") ? "SKIP" : "FAIL"
      printf "%s %s%s (%s)%s\n", state, $2, subtest, $4, ($5 != "" ? ": " $5 : "")
      rows++
      failed += (state == "FAIL")
    }
    /^### Test "/ && $0 !~ /"<MAIN>"/ { why = $0; getline detail; aborted[++n] = why " " detail }
    END {
      if (!rows && n) {
        printf "FAIL %s%s: %s%s\n", number, subtest, aborted[1], (n > 1 ? " (and " n - 1 " more failures)" : "")
        failed++
      }
      # A runner that failed with no failed test: a crash, a timeout, or
      # librdkafka threads left running at exit.
      if (rc != 0 && !failed) printf "FAIL %s%s: test-runner exit %s, see its log\n", number, subtest, rc
    }'
}

export -f run_one
export WORK TIMEOUT tests_dir build GROUP_PROTOCOL "${scenarios[@]/%/_bootstrap}"

log "running ${#selected[@]} test numbers, $JOBS at a time, group protocol $GROUP_PROTOCOL"
results="$WORK/results.txt"
printf '%s\n' "${not_run[@]}" | tee "$results"
printf '%s\n' "${selected[@]}" | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' run_one | tee -a "$results"

passed=$(grep -c '^PASS ' "$results" || true)
failed=$(grep -c '^FAIL ' "$results" || true)
skipped=$(grep -c '^SKIP ' "$results" || true)
if [[ $failed -gt 0 ]]; then
  log "failed: $(grep '^FAIL ' "$results" | cut -d' ' -f2 | tr '\n' ' ')(logs in $WORK/logs)"
fi
echo "librdkafka: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
