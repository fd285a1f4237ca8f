#!/usr/bin/env bash
# Weft on this machine without Docker: the same topology as deploy/compose.yaml, as
# processes. nats-server with JetStream, one coordinator, N workers with the demo tools.
#
#   deploy/local.sh [demo] [FILE [INPUT_JSON]]   set up, start, run a workflow, print its timeline, stop
#   deploy/local.sh up                           set up and start in the background
#   deploy/local.sh down                         stop what `up` started
#   deploy/local.sh status                       what is running
#
# Environment: WEFT_NATS_PORT (4222), WEFT_WORKERS (2), WEFT_HOME (.weft), RUST_LOG.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/deploy/env.sh"
port="${WEFT_NATS_PORT:-4222}"
workers="${WEFT_WORKERS:-2}"
export NATS_URL="nats://127.0.0.1:$port"
run_dir="$WEFT_HOME/local"
mkdir -p "$run_dir"

pids() { cat "$run_dir"/*.pid 2>/dev/null || true; }

alive() { [[ -f "$run_dir/$1.pid" ]] && kill -0 "$(cat "$run_dir/$1.pid")" 2>/dev/null; }

start() { # name, command...
  local name="$1"; shift
  "$@" >"$run_dir/$name.log" 2>&1 &
  echo $! >"$run_dir/$name.pid"
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nats-server did not start; see $run_dir/nats.log" >&2
  return 1
}

up() {
  "$root/deploy/setup.sh"
  if alive nats; then
    echo "already running (deploy/local.sh down to stop)" >&2
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken by another program; set WEFT_NATS_PORT" >&2
    return 1
  fi
  echo "starting nats-server (JetStream, store $WEFT_HOME/nats) on $NATS_URL" >&2
  start nats "$NATS_SERVER" -a 127.0.0.1 -p "$port" -js -sd "$WEFT_HOME/nats" -m "$((port + 4000))"
  wait_port
  echo "starting weft-coordinator and $workers weft-worker(s); logs in $run_dir" >&2
  start coordinator "$WEFT_BIN_DIR/weft-coordinator"
  for i in $(seq 1 "$workers"); do
    WEFT_WORKER_ID="worker-$i" start "worker-$i" "$WEFT_BIN_DIR/weft-worker" --demo-tools
  done
  # Ready when every worker advertises its tools.
  for _ in $(seq 1 300); do
    n="$("$WEFT_BIN_DIR/weft" tools --json 2>/dev/null | grep -o '"worker": *"[^"]*"' | sort -u | wc -l || true)"
    [[ "$n" -ge "$workers" ]] && { echo "ready: $NATS_URL" >&2; return 0; }
    sleep 0.1
  done
  echo "workers did not advertise their tools; see $run_dir/*.log" >&2
  return 1
}

down() {
  for name in worker-* coordinator nats; do
    for f in "$run_dir"/$name.pid; do
      [[ -f "$f" ]] || continue
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
  done
}

demo() {
  local file="${1:-$root/examples/chain_notify.json}"
  local input="${2:-}"
  if [[ -z "$input" ]]; then
    local base; base="$(basename "$file")"
    [[ "$file" == */patterns/* ]] && base="patterns_$base"
    input="$(cat "$root/examples/inputs/$base" 2>/dev/null || echo '{}')"
  fi
  trap down EXIT
  up
  echo >&2
  echo "== weft run $(realpath --relative-to="$root" "$file") --input '$input'" >&2
  "$WEFT_BIN_DIR/weft" run "$file" --input "$input"
}

case "${1:-demo}" in
  up) up ;;
  down) down ;;
  status) for f in "$run_dir"/*.pid; do [[ -f "$f" ]] && echo "$(basename "$f" .pid): pid $(cat "$f")"; done ;;
  demo) shift || true; demo "$@" ;;
  *) demo "$@" ;;
esac
