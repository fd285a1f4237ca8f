#!/usr/bin/env bash
# Weft on this machine without Docker: the topology of deploy/compose.yaml as processes.
# nats-server with JetStream and the same config (deploy/nats/: users, permissions), one
# coordinator, N workers with the demo tools, the same settings (deploy/weft.env).
#
#   deploy/local.sh [demo] [FILE [INPUT_JSON]]   set up, start, run a workflow, print its timeline, stop
#   deploy/local.sh up                           set up and start in the background
#   deploy/local.sh env                          the client's NATS_URL: eval "$(deploy/local.sh env)"
#   deploy/local.sh status                       what is running
#   deploy/local.sh down                         stop what `up` started
#
# Environment: WEFT_NATS_PORT (4222; monitoring on port + 4000), WEFT_WORKERS (2),
# WEFT_HOME (.weft), WEFT_TLS (0; 1 serves NATS over TLS with deploy/tls.sh's certificates),
# the passwords WEFT_*_PASSWORD (default: generated once into $WEFT_HOME/credentials.env),
# and every setting of deploy/weft.env. Logs and pids: $WEFT_HOME/local/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/deploy/env.sh"
port="${WEFT_NATS_PORT:-4222}"
workers="${WEFT_WORKERS:-2}"
run_dir="$WEFT_HOME/local"
mkdir -p "$run_dir"

# Settings shared with compose: deploy/weft.env, unless already set here.
while IFS='=' read -r key value; do
  [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
  [[ -n "${!key+x}" ]] || export "$key=$value"
done <"$root/deploy/weft.env"

# Passwords: the environment's, else the generated ones.
"$root/deploy/credentials.sh" "$WEFT_HOME/credentials.env"
while IFS='=' read -r key value; do
  [[ "$key" =~ ^WEFT_[A-Z_]*PASSWORD$ ]] || continue
  [[ -n "${!key:-}" ]] || export "$key=$value"
done <"$WEFT_HOME/credentials.env"

if [[ "${WEFT_TLS:-0}" == 1 ]]; then
  scheme=tls
  nats_config="$root/deploy/nats/tls.conf"
  export WEFT_TLS_CERT="$WEFT_HOME/tls/server.pem" WEFT_TLS_KEY="$WEFT_HOME/tls/server-key.pem"
  export SSL_CERT_FILE="$WEFT_HOME/tls/ca.pem"
else
  scheme=nats
  nats_config="$root/deploy/nats/nats.conf"
fi
url() { echo "$scheme://$1:$2@127.0.0.1:$port"; } # user, password
client_url="$(url client "$WEFT_CLIENT_PASSWORD")"

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

# Waits until every worker advertises its tools.
wait_workers() {
  local seen
  for _ in $(seq 1 300); do
    seen="$(NATS_URL="$client_url" "$WEFT_BIN_DIR/weft" tools --json 2>/dev/null | grep -o '"worker": *"[^"]*"' | sort -u | wc -l || true)"
    [[ "$seen" -ge "$workers" ]] && return 0
    sleep 0.1
  done
  echo "workers did not advertise their tools; see $run_dir/*.log" >&2
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
  [[ "$scheme" == tls ]] && "$root/deploy/tls.sh" "$WEFT_HOME/tls"
  echo "starting nats-server ($(basename "$nats_config"), JetStream store $WEFT_HOME/nats) on $scheme://127.0.0.1:$port" >&2
  WEFT_NATS_STORE_DIR="$WEFT_HOME/nats" \
    start nats "$NATS_SERVER" -c "$nats_config" -a 127.0.0.1 -p "$port" -m "$((port + 4000))"
  wait_port
  echo "starting weft-coordinator; logs in $run_dir" >&2
  # Metrics only when asked (WEFT_METRICS_PORT): the coordinator on that port, worker i on
  # the port + i (compose gives each container 9464).
  local metrics_port="${WEFT_METRICS_PORT:-}"
  metrics_addr() { [[ -n "$metrics_port" ]] && echo "127.0.0.1:$((metrics_port + $1))"; true; }
  NATS_URL="$(url coordinator "$WEFT_COORDINATOR_PASSWORD")" OTEL_SERVICE_NAME=weft-coordinator \
    WEFT_METRICS_ADDR="$(metrics_addr 0)" start coordinator "$WEFT_BIN_DIR/weft-coordinator"
  # Workers once the coordinator answers: it creates the streams they consume.
  local answered=0
  for _ in $(seq 1 300); do
    if NATS_URL="$client_url" "$WEFT_BIN_DIR/weft" list --limit 1 >/dev/null 2>&1; then answered=1; break; fi
    sleep 0.1
  done
  ((answered)) || { echo "the coordinator does not answer; see $run_dir/coordinator.log" >&2; return 1; }
  echo "starting $workers weft-worker(s)" >&2
  for i in $(seq 1 "$workers"); do
    NATS_URL="$(url worker "$WEFT_WORKER_PASSWORD")" OTEL_SERVICE_NAME=weft-worker WEFT_WORKER_ID="worker-$i" \
      WEFT_METRICS_ADDR="$(metrics_addr "$i")" start "worker-$i" "$WEFT_BIN_DIR/weft-worker"
  done
  wait_workers
  echo "ready: $scheme://127.0.0.1:$port (as the client user: eval \"\$(deploy/local.sh env)\")" >&2
}

# Stops workers first, then the coordinator, then NATS, each gracefully (SIGTERM), and
# returns once they are gone.
down() {
  local pid
  for name in worker-* coordinator nats; do
    for f in "$run_dir"/$name.pid; do
      [[ -f "$f" ]] || continue
      pid="$(cat "$f")"
      rm -f "$f"
      kill "$pid" 2>/dev/null || continue
      for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
  done
}

env_lines() {
  echo "export NATS_URL='$client_url'"
  [[ "$scheme" == tls ]] && echo "export SSL_CERT_FILE='$SSL_CERT_FILE'"
  return 0
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
  NATS_URL="$client_url" "$WEFT_BIN_DIR/weft" run "$file" --input "$input"
}

case "${1:-demo}" in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  status) for f in "$run_dir"/*.pid; do [[ -f "$f" ]] && echo "$(basename "$f" .pid): pid $(cat "$f")"; done; true ;;
  demo) shift || true; demo "$@" ;;
  *) demo "$@" ;;
esac
