#!/usr/bin/env bash
# librdkafka's own integration test suite (tests/ of the librdkafka release
# that the rdkafka-sys crate bundles, the same source Cargo already
# downloaded for the rdkafka tests) against a fresh `weir serve`.
#
# Every test in tests/test.c's table that needs a broker is run in full mode
# (not -Q), one test number per test-runner process, with upstream's
# settings: auto-created topics with 4 partitions like upstream's test
# cluster, test.topic.random=true, and TEST_KAFKA_VERSION of a 4.1 broker
# (Weir, like Kafka 4, takes RecordBatch v2 only: the tests leave out the
# older message formats for it). Tests of the "noautocreate" scenario run
# against a second broker with auto_create_topics off, as upstream runs
# them. Tests that need what Weir does not have yet are skipped with their
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
    *default*) entry="$number default" ;;
    *noautocreate*) entry="$number noautocreate" ;;
    *) not_run+=("SKIP $name: scenario $scenario only"); continue ;;
  esac
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
# u_ subtests take 280 s together, 0077 150 s, 0089 and 0139 90-100 s), so
# that they do not end the run alone. The tests mostly wait on timers, so
# several run at once on two cores.
slow_first=(0113 0077 0089 0139)
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

# start_broker NAME AUTO_CREATE: sets BOOTSTRAP to its address.
start_broker() {
  local port data
  port=$(free_port)
  data=$(mktemp -d -t "weir-librdkafka-$1.XXXXXX")
  dirs+=("$data")
  "$WEIR" serve --listen "127.0.0.1:$port" --data-dir "$data" --shards 2 --default-partitions 4 \
    --auto-create-topics "$2" --admin-listen "" > "$WORK/broker-$1.log" 2>&1 &
  pids+=($!)
  wait_for_broker "$!" "$port" "$WORK/broker-$1.log"
  BOOTSTRAP="127.0.0.1:$port"
}
mkdir -p "$WORK/logs"
rm -f "$WORK"/logs/*
start_broker default true
default_bootstrap=$BOOTSTRAP
start_broker noautocreate false
noautocreate_bootstrap=$BOOTSTRAP
for scenario in default noautocreate; do
  bootstrap_var=${scenario}_bootstrap
  cat > "$WORK/test-$scenario.conf" <<CONF
bootstrap.servers=${!bootstrap_var}
test.topic.random=true
test.timeout.multiplier=$MULTIPLIER
CONF
done
# kafka-topics.sh for the tests that create or change topics through
# Kafka's Java CLI, which is not installable here: it runs `weir topics`.
mkdir -p "$WORK/kafka/bin"
cat > "$WORK/kafka/bin/kafka-topics.sh" <<SHIM
#!/usr/bin/env bash
exec python3 "$HERE/kafka_topics_shim.py" "$WEIR" "\$@"
SHIM
chmod +x "$WORK/kafka/bin/kafka-topics.sh"

# --- run --------------------------------------------------------------------------
run_one() { # number scenario [subtest function]
  local number=$1 scenario=$2 subtest=${3:-} bootstrap_var=${2}_bootstrap rc=0
  local out="$WORK/logs/$1-$2${3:+-$3}.log"
  # (A runner that aborts would make bash report it on stderr: the log says more.)
  { (
    cd "$tests_dir"
    LD_LIBRARY_PATH="$build/src:$build/src-cpp" TEST_KAFKA_VERSION=4.1.0 \
      TEST_CONSUMER_GROUP_PROTOCOL="$GROUP_PROTOCOL" \
      RDKAFKA_TEST_CONF="$WORK/test-$scenario.conf" SUBTESTS="${subtest:+$subtest:}" KAFKA_PATH="$WORK/kafka" BROKERS="${!bootstrap_var}" \
      timeout -k 10 "$TIMEOUT" ./test-runner -L ${LIBRDKAFKA_RUNNER_ARGS:-} -s "$scenario" "$number"
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
export WORK TIMEOUT tests_dir build default_bootstrap noautocreate_bootstrap GROUP_PROTOCOL

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
