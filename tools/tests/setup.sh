# Shell set-up shared by the scripts that test weir with third-party code
# (tools/tests/clients/run.sh, tools/tests/librdkafka/run.sh,
# examples/clickstream/run.sh); sourced, after ROOT is set to the repository
# root.

log() { echo "== $*"; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# require_weir: WEIR (default target/release/weir under ROOT) made absolute,
# exported, and checked to be an executable.
require_weir() {
  WEIR=${WEIR:-target/release/weir}
  [[ $WEIR == /* ]] || WEIR="$ROOT/$WEIR"
  export WEIR
  if [[ ! -x $WEIR ]]; then
    echo "broker binary $WEIR not found or not executable (run cargo build --release)" >&2
    exit 2
  fi
}

# apt_install PACKAGE...: installs those of the Debian packages that are not.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" > /dev/null 2>&1 || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]} (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
  fi
}

# pip_install_pinned VENV REQUIREMENTS: makes the virtualenv VENV hold exactly
# the pinned (name==version) packages of REQUIREMENTS, creating it and
# installing with pip only when one is missing or another version.
pip_install_pinned() {
  local venv=$1 requirements=$2
  local missing
  missing=$("$venv/bin/python" - "$requirements" << 'PY' 2> /dev/null || echo missing
import importlib.metadata as m, sys
for line in open(sys.argv[1]):
    name, _, version = line.strip().partition("==")
    if name and m.version(name) != version:
        print(name)
PY
  )
  [[ -n $missing ]] || return 0
  if [[ ! -x $venv/bin/python ]]; then
    log "creating virtualenv $venv"
    if ! python3 -m venv "$venv" 2> /dev/null; then
      # Debian's own python3 needs python3-venv for `python3 -m venv`.
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  log "installing $(grep -c . "$requirements") pinned packages of $requirements (pip)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
}

# Installs DIR's package.json dependencies (npm ci from its lock file)
# unless node_modules already holds the pinned kafkajs.
npm_install_pinned() {
  local dir=$1 want have
  want=$(node -p "require('$dir/package.json').dependencies.kafkajs")
  have=$(node -p "try { require('$dir/node_modules/kafkajs/package.json').version } catch (e) { '' }")
  if [[ $have != "$want" ]]; then
    log "installing kafkajs (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# stop_process PID [SECONDS]: SIGTERM, up to SECONDS (default 5) to exit,
# then SIGKILL; reaps it.
stop_process() {
  local pid=$1 seconds=${2:-5}
  kill -0 "$pid" 2> /dev/null || return 0
  kill "$pid" 2> /dev/null || true
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for_broker PID PORT LOG: waits up to 20 s for the broker process PID to
# accept connections on PORT; exits with its log if it dies or does not.
wait_for_broker() {
  local pid=$1 port=$2 broker_log=$3
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2> /dev/null; then
      echo "broker exited during startup:" >&2
      cat "$broker_log" >&2
      exit 1
    fi
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$port" 2> /dev/null; then
      return
    fi
    sleep 0.1
  done
  echo "broker did not accept connections on port $port within 20 s:" >&2
  cat "$broker_log" >&2
  exit 1
}
